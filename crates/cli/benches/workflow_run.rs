//! Workflow runs: the rate of runs of a 5-tool-node workflow against a local upstream,
//! versus the same five calls made through `invoke` one after the other, in one run; on
//! SQLite, and on two PostgreSQL replicas sharing the work. Then the time from a replica's
//! death (SIGKILL) to its runs resuming on the other.
//!
//!   cargo bench -p chatterfly --bench workflow_run             # SQLite
//!   CHATTERFLY_TEST_POSTGRES_URL=postgres://… cargo bench -p chatterfly --bench workflow_run   # and PostgreSQL
//!
//! Both paths have `CLIENTS` callers at once. Invoke: each caller makes the five calls in
//! turn, as a script would. Workflows: the callers start runs (`POST …/runs`), and the
//! rate counts from the first start to the moment the last run is seen ended. Only
//! 127.0.0.1 is contacted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chatterfly_testkit::server::{Options, TestServer, random_key, test_client};
use chatterfly_testkit::{Db, TestDb, fresh_database};
use serde_json::{Value, json};

const CLIENTS: usize = 16;
const RUNS: usize = 400;
const ROUNDS: usize = 3;
const WS: &str = "/api/workspaces/default";

async fn setup(server: &TestServer, up: &str) -> String {
    let body = json!({"name": "Up", "slug": "up", "service_type": "http", "base_url": up,
        "auth": {"type": "bearer", "token": "bench-token-123456"},
        "operations": [
            {"name": "item", "method": "GET", "path": "/items/{{id}}",
             "input_schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}},
            {"name": "slow", "method": "GET", "path": "/slow/{{ms}}",
             "input_schema": {"type": "object", "required": ["ms"], "properties": {"ms": {"type": "integer"}}}}]});
    let (st, c) = server
        .call(reqwest::Method::POST, &format!("{WS}/connections"), Some(body))
        .await;
    assert_eq!(st, 201, "{c}");
    // five nodes, each reading the one before (as a real workflow carries values along)
    let mut nodes = vec![json!({"id": "n1", "type": "tool", "tool_name": "up.item", "input": {"id": "{{input.id}}"}})];
    for i in 2..=5 {
        nodes.push(json!({"id": format!("n{i}"), "type": "tool", "tool_name": "up.item",
            "input": {"id": format!("{{{{steps.n{}.output.body.id}}}}", i - 1)}}));
    }
    let (st, w) = server
        .call(
            reqwest::Method::POST,
            &format!("{WS}/workflows"),
            Some(json!({"name": "Five", "nodes": nodes})),
        )
        .await;
    assert_eq!(st, 201, "{w}");
    let id = w["id"].as_str().unwrap().to_owned();
    let (st, d) = server
        .call(reqwest::Method::POST, &format!("{WS}/workflows/{id}/deploy"), None)
        .await;
    assert_eq!(st, 201, "{d}");
    id
}

/// `RUNS` sequences of five invokes, `CLIENTS` at once: sequences per second.
async fn invokes(servers: &[TestServer]) -> f64 {
    let client = test_client();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, next) = (client.clone(), next.clone());
            let s = &servers[c % servers.len()];
            let (url, token) = (s.url.clone(), s.token.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < RUNS {
                    let mut id = 1;
                    for _ in 0..5 {
                        let r = client
                            .post(format!("{url}{WS}/tools/up.item/invoke"))
                            .bearer_auth(&token)
                            .json(&json!({"arguments": {"id": id}}))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 200);
                        let v: Value = r.json().await.unwrap();
                        id = v["output"]["body"]["id"].as_u64().unwrap();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    RUNS as f64 / started.elapsed().as_secs_f64()
}

/// `RUNS` workflow runs started by `CLIENTS` callers at once: runs per second, from the
/// first start to the last run seen ended.
async fn workflows(servers: &[TestServer], id: &str) -> f64 {
    let client = test_client();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, next) = (client.clone(), next.clone());
            let s = &servers[c % servers.len()];
            let (url, token, id) = (s.url.clone(), s.token.clone(), id.to_owned());
            tokio::spawn(async move {
                let mut runs = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < RUNS {
                    let r = client
                        .post(format!("{url}{WS}/workflows/{id}/runs"))
                        .bearer_auth(&token)
                        .json(&json!({"input": {"id": 1}}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    let v: Value = r.json().await.unwrap();
                    runs.push(v["id"].as_str().unwrap().to_owned());
                }
                // then each run to its end, the last started first (runs are taken oldest
                // first, so when it has ended the others mostly have too: the looking is
                // not what is measured)
                for run in runs.into_iter().rev() {
                    loop {
                        let v: Value = client
                            .get(format!("{url}{WS}/workflows/{id}/runs/{run}"))
                            .bearer_auth(&token)
                            .send()
                            .await
                            .unwrap()
                            .json()
                            .await
                            .unwrap();
                        match v["status"].as_str() {
                            Some("succeeded") => {
                                assert_eq!(v["output"]["body"]["id"], 1);
                                break;
                            }
                            Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(50)).await,
                            other => panic!("run ended {other:?}: {v}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    RUNS as f64 / started.elapsed().as_secs_f64()
}

fn same(db: &TestDb) -> TestDb {
    TestDb {
        url: db.url.clone(),
        kind: db.kind,
        dir: tempfile::tempdir().unwrap(),
        admin_token: db.admin_token.clone(),
    }
}

fn options(extra: &[(&str, &str)]) -> Options {
    let mut env = vec![
        ("CHATTERFLY_ALLOW_PRIVATE".to_owned(), "127.0.0.1".to_owned()),
        ("INTEGRATION_ENCRYPTION_KEY".to_owned(), random_key()),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Options {
        env,
        rust_log: "warn".into(),
    }
}

async fn rate(label: &str, servers: &[TestServer], up: &str) {
    let id = setup(&servers[0], up).await;
    // warm-up
    let _ = invokes(servers).await;
    let _ = workflows(servers, &id).await;
    let (mut i, mut w) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        i.push(invokes(servers).await);
        w.push(workflows(servers, &id).await);
    }
    i.sort_by(f64::total_cmp);
    w.sort_by(f64::total_cmp);
    let (im, wm) = (i[ROUNDS / 2], w[ROUNDS / 2]);
    println!("\n{label}: {RUNS} runs of 5 tool calls, {CLIENTS} callers at once, {ROUNDS} rounds interleaved (median)");
    println!("| path | runs/s (each round) | median |");
    println!("|---|---|---|");
    let list = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
    println!("| five `invoke` calls in turn | {} | {im:.0} |", list(&i));
    println!("| one 5-node workflow run | {} | {wm:.0} |", list(&w));
    println!("ratio workflow / invoke: {:.2} (target ≥ 0.8)", wm / im);
}

/// Two replicas; runs with a slow middle node; one replica killed while it holds runs:
/// the time from the kill to each of its runs' next attempt, as the other replica records it.
async fn resume(up: &str) {
    let db = fresh_database(Db::Postgres).await;
    // the workspace's share above the runs started: what is measured is the takeover,
    // not the share (a takeover waits for room in its workspace's share like any run)
    let opts = options(&[("CHATTERFLY_WORKFLOW_WORKSPACE_SHARE", "64")]);
    let bin = Path::new(env!("CARGO_BIN_EXE_chatterfly"));
    let a = TestServer::spawn(bin, same(&db), &opts).unwrap();
    let b = TestServer::spawn(bin, same(&db), &opts).unwrap();
    let (st, c) = a
        .call(reqwest::Method::POST, &format!("{WS}/connections"), Some(json!({"name": "Up", "slug": "up",
            "service_type": "http", "base_url": up, "operations": [{"name": "slow", "method": "GET", "path": "/slow/{{ms}}",
            "input_schema": {"type": "object", "required": ["ms"], "properties": {"ms": {"type": "integer"}}}}]})))
        .await;
    assert_eq!(st, 201, "{c}");
    let (_, w) = a
        .call(
            reqwest::Method::POST,
            &format!("{WS}/workflows"),
            Some(json!({"name": "Slow", "nodes": [
            {"id": "wait", "type": "tool", "tool_name": "up.slow", "input": {"ms": 3000}},
            {"id": "after", "type": "tool", "tool_name": "up.slow", "input": {"ms": 1}}]})),
        )
        .await;
    let id = w["id"].as_str().unwrap().to_owned();
    a.call(reqwest::Method::POST, &format!("{WS}/workflows/{id}/deploy"), None)
        .await;
    let mut runs = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { &a } else { &b };
        let (st, r) = s
            .call(
                reqwest::Method::POST,
                &format!("{WS}/workflows/{id}/runs"),
                Some(json!({})),
            )
            .await;
        assert_eq!(st, 201, "{r}");
        runs.push(r["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let killed = chrono::Utc::now();
    let _ = a.stop();
    let mut waits = Vec::new();
    for run in &runs {
        let r = loop {
            let (_, r) = b
                .call(reqwest::Method::GET, &format!("{WS}/workflows/{id}/runs/{run}"), None)
                .await;
            if r["status"] == "succeeded" {
                break r;
            }
            assert!(r["status"] != "failed", "{r}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let attempts = r["steps"][0]["attempts"].as_array().unwrap();
        if attempts.len() > 1 {
            let again: chrono::DateTime<chrono::Utc> = attempts[1]["started_at"].as_str().unwrap().parse().unwrap();
            waits.push((again - killed).num_milliseconds());
        }
    }
    waits.sort_unstable();
    assert!(!waits.is_empty(), "the killed replica held runs");
    println!(
        "\nreplica killed holding {} of 40 runs (lease 4 s, the default): resumed on the other after {} ms (first), {} ms (median), {} ms (last); target ≤ 5000 ms",
        waits.len(),
        waits[0],
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let up = common::upstream().await;
        let s = common::server(Db::Sqlite).await;
        rate("SQLite, one server", std::slice::from_ref(&s), &up).await;
        drop(s);
        if std::env::var(chatterfly_testkit::PG_ENV).is_ok() {
            let db = fresh_database(Db::Postgres).await;
            let opts = options(&[]);
            let bin = Path::new(env!("CARGO_BIN_EXE_chatterfly"));
            let servers = vec![
                TestServer::spawn(bin, same(&db), &opts).unwrap(),
                TestServer::spawn(bin, same(&db), &opts).unwrap(),
            ];
            rate("PostgreSQL, two replicas", &servers, &up).await;
            drop(servers);
            resume(&up).await;
        }
    });
}
