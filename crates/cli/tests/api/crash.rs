//! Crash safety: the server is SIGKILLed while clients create connections and call tools,
//! then started again on the same database, several times over. Every write that was
//! answered 2xx is there, whole; the audit has no torn rows; the server starts cleanly.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatterfly_testkit::httpbin_url;
use chatterfly_testkit::server::{random_key, test_client};

use super::*;

const ROUNDS: usize = 3;
const CLIENTS: usize = 6;
/// Traffic before each kill.
const ROUND: Duration = Duration::from_secs(2);
/// How far behind the calls the audit writer may be when the process dies: rows of calls
/// answered earlier than this before a kill must be in the audit. Its batches are 25 ms
/// apart; the rest is room for a loaded machine (a batch waits its turn to write).
const AUDIT_LAG: Duration = Duration::from_secs(1);

fn connection(slug: &str) -> Value {
    json!({"name": format!("Crash {slug}"), "slug": slug, "service_type": "http", "base_url": httpbin_url(),
        "auth": {"type": "bearer", "token": format!("tok-{slug}")},
        "operations": [
            {"name": "get", "method": "GET", "path": "/get", "input_schema": {"type": "object"}},
            {"name": "post", "method": "POST", "path": "/post", "input_schema": {"type": "object"}}]})
}

db_tests! {
    async fn answered_writes_survive_a_kill(db: Db) {
        let mut options = local_upstreams(&[]);
        options.env.push(("INTEGRATION_ENCRYPTION_KEY".into(), random_key()));
        options.rust_log = "info".into();
        let mut s = TestServer::start_with(BIN, db, options.clone()).await;
        assert_eq!(s.call(Method::POST, "/api/workspaces/default/connections", Some(connection("hb"))).await.0, 201);
        let answered: Arc<Mutex<Vec<String>>> = Arc::default();
        let (mut calls_ok, mut calls_sent, mut due_in_audit) = (0, 0, 0);
        for round in 0..ROUNDS {
            let client = test_client();
            let stop_at = Instant::now() + ROUND;
            let tasks: Vec<_> = (0..CLIENTS).map(|c| {
                let (client, url, token, answered) = (client.clone(), s.url.clone(), s.token.clone(), answered.clone());
                tokio::spawn(async move {
                    // when each call was answered 200, and how many calls were sent
                    let (mut ok_calls, mut sent) = (Vec::new(), 0);
                    for i in 0.. {
                        if Instant::now() > stop_at + Duration::from_secs(3) {
                            break;
                        }
                        let slug = format!("r{round}c{c}n{i}");
                        let created = client.post(format!("{url}/api/workspaces/default/connections"))
                            .bearer_auth(&token).json(&connection(&slug)).timeout(Duration::from_secs(5)).send().await;
                        match created {
                            Ok(r) if r.status() == 201 => answered.lock().unwrap().push(slug),
                            Ok(r) => assert!(r.status().is_server_error(), "create answered {}", r.status()),
                            Err(_) => break, // the server is gone
                        }
                        sent += 1;
                        let called = client.post(format!("{url}/api/workspaces/default/tools/hb.get/invoke"))
                            .bearer_auth(&token).json(&json!({"arguments": {}})).timeout(Duration::from_secs(5)).send().await;
                        match called {
                            Ok(r) if r.status() == 200 => ok_calls.push(Instant::now()),
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    (ok_calls, sent)
                })
            }).collect();
            tokio::time::sleep(ROUND).await;
            let (tdb, _) = s.stop(); // SIGKILL, mid-traffic
            let killed_at = Instant::now();
            for t in tasks {
                let (ok_calls, sent) = t.await.unwrap();
                calls_ok += ok_calls.len();
                calls_sent += sent;
                due_in_audit += ok_calls.iter().filter(|at| **at + AUDIT_LAG < killed_at).count();
            }
            s = TestServer::spawn(Path::new(BIN), tdb, &options)
                .unwrap_or_else(|e| panic!("round {round}: the server did not start again: {e:?}"));
        }
        let answered = answered.lock().unwrap().clone();
        assert!(answered.len() > 30 && calls_ok > 30, "{} creates, {calls_ok} calls answered", answered.len());
        // every answered create is there, whole
        let (st, list) = s.call(Method::GET, "/api/workspaces/default/connections", None).await;
        assert_eq!(st, 200);
        let listed: std::collections::HashSet<&str> =
            list.as_array().unwrap().iter().map(|c| c["slug"].as_str().unwrap()).collect();
        for slug in &answered {
            assert!(listed.contains(slug.as_str()), "{slug} was answered 201 and is gone");
        }
        for slug in answered.iter().step_by(7) {
            let (st, c) = s.call(Method::GET, &format!("/api/workspaces/default/connections/{slug}"), None).await;
            assert_eq!(st, 200);
            assert_eq!(c["name"], format!("Crash {slug}"));
            assert_eq!(c["operations"].as_array().unwrap().len(), 2, "{c}");
            assert_eq!(c["auth"]["token_set"], true, "{c}");
        }
        // a connection created before a kill still calls with its sealed key
        let slug = &answered[0];
        let (st, v) = s.call(Method::POST, &format!("/api/workspaces/default/tools/{slug}.get/invoke"),
            Some(json!({"arguments": {}}))).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["output"]["body"]["headers"]["Authorization"], "Bearer [REDACTED]");
        // the audit: no torn rows (every field whole), and most answered calls recorded
        let mut rows = 0;
        let mut before = String::new();
        loop {
            let q = if before.is_empty() { String::new() } else { format!("&before={before}") };
            let (st, page) = s.call(Method::GET, &format!("/api/workspaces/default/audit?limit=500{q}"), None).await;
            assert_eq!(st, 200);
            for e in page["events"].as_array().unwrap() {
                rows += 1;
                assert!(e["outcome"] == "ok" || e["outcome"] == "error", "{e}");
                assert!(e["tool"].as_str().is_some_and(|t| t.contains('.')), "{e}");
                assert!(e["duration_ms"].as_i64().is_some_and(|d| d >= 0), "{e}");
                assert!(e["created_at"].as_str().is_some_and(|t| t.len() == 24 && t.ends_with('Z')), "{e}");
                assert!(e["user_id"].is_string(), "{e}");
            }
            match page["next_before"].as_str() {
                Some(b) => before = b.to_owned(),
                None => break,
            }
        }
        eprintln!("{ROUNDS} kills: {} creates and {calls_ok} calls answered ({calls_sent} sent, {due_in_audit} over \
            {AUDIT_LAG:?} before a kill), {rows} audit rows", answered.len());
        // only rows the writer had not written yet when the process died are lost: every call
        // answered well before a kill is there, and no row is there twice or made up (the
        // last call above may be written already)
        assert!(rows >= due_in_audit, "{rows} audit rows, and {due_in_audit} calls were answered over {AUDIT_LAG:?} before a kill");
        assert!(rows <= calls_sent + 1, "{rows} audit rows for {calls_sent} calls sent");
    }
}
