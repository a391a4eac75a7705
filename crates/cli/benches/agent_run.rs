//! Agent-run overhead: the same 10-round conversation (a model turn that calls a tool, the
//! tool call, …, then the answer) against the LLM peer (aimock, `scripts/llm.sh`) and a
//! local upstream, made directly by this process and run by Chatterfly, in one run.
//!
//!   cargo bench -p chatterfly --bench agent_run             # SQLite
//!   CHATTERFLY_TEST_POSTGRES_URL=postgres://… cargo bench -p chatterfly --bench agent_run   # and PostgreSQL
//!
//! Direct: this process builds each model request with the same wire code Chatterfly uses
//! (`chatterfly-providers`), posts it to the peer, reads the tool call, calls the upstream,
//! and goes on until the answer. Through Chatterfly: `POST …/agents/{id}/runs`, then the
//! run's events until `end`. Only 127.0.0.1 is contacted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use chatterfly_providers::Provider;
use chatterfly_providers::chat::{Message, ToolResult};
use chatterfly_providers::declare::{ToolSpec, declare};
use chatterfly_providers::wire::{self, Request};
use chatterfly_testkit::Db;
use chatterfly_testkit::peers::ScriptPeer;
use chatterfly_testkit::server::{TestServer, test_client};
use serde_json::{Value, json};

const ROUNDS: usize = 10;
const RUNS: usize = 40;
const WARMUP: usize = 5;
const KEY: &str = "sk-bench-key";

/// The peer's script: at each of the first ROUNDS assistant turns a call of `bench__item`,
/// then the answer.
fn fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut list: Vec<Value> = (0..ROUNDS)
        .map(|i| {
            json!({"match": {"userMessage": "bench", "turnIndex": i},
                "response": {"toolCalls": [{"name": "bench__item", "arguments": {"id": i}}]}})
        })
        .collect();
    list.push(
        json!({"match": {"userMessage": "bench", "turnIndex": ROUNDS}, "response": {"content": "All items read."}}),
    );
    std::fs::write(dir.path().join("fixtures.json"), json!({"fixtures": list}).to_string()).unwrap();
    dir
}

/// One conversation made directly: model turns and tool calls, as Chatterfly makes them.
async fn direct(client: &reqwest::Client, llm: &str, up: &str, schema: &Value) -> usize {
    let specs = [ToolSpec {
        name: "bench.item",
        description: "Reads an item",
        input_schema: schema,
    }];
    let decls = declare(Provider::OpenAi, &specs);
    let mut messages = vec![Message::User { text: "bench".into() }];
    let mut steps = 0;
    loop {
        let req = wire::build(
            Provider::OpenAi,
            &Request {
                model: "bench-model",
                system: "Read the items.",
                messages: &messages,
                tools: &decls,
                max_tokens: 4096,
            },
        );
        let mut post = client.post(format!("{llm}{}", req.path)).json(&req.body);
        for (name, value) in wire::key_headers(Provider::OpenAi, KEY) {
            post = post.header(name, value);
        }
        let resp = post.send().await.unwrap();
        let status = resp.status().as_u16();
        let turn = wire::parse(Provider::OpenAi, status, &resp.bytes().await.unwrap()).unwrap();
        steps += 1;
        if turn.calls.is_empty() {
            assert_eq!(turn.text.as_deref(), Some("All items read."));
            return steps;
        }
        let mut results = Vec::new();
        for c in &turn.calls {
            let id = c.arguments["id"].as_u64().unwrap();
            let r = client
                .get(format!("{up}/items/{id}"))
                .bearer_auth("bench-token-123456")
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            results.push(ToolResult {
                id: c.id.clone(),
                name: c.name.clone(),
                content: json!({"status": status, "body": body}).to_string(),
                is_error: false,
            });
            steps += 1;
        }
        messages.push(Message::Assistant {
            text: turn.text,
            calls: turn.calls,
        });
        messages.push(Message::Tool { results });
    }
}

/// One run through Chatterfly, followed on its events until the end.
async fn through(client: &reqwest::Client, server: &TestServer, agent: &str) -> usize {
    let base = format!("{}/api/workspaces/default/agents/{agent}/runs", server.url);
    let r = client
        .post(&base)
        .bearer_auth(&server.token)
        .json(&json!({"input": "bench"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let run: Value = r.json().await.unwrap();
    let id = run["id"].as_str().unwrap();
    let mut events = client
        .get(format!("{base}/{id}/events"))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while let Some(chunk) = events.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if text.contains("event: end") && text.ends_with("\n\n") {
            break;
        }
    }
    assert!(text.contains("\"status\":\"succeeded\""), "{text}");
    text.matches("event: step").count()
}

async fn run(db: Db) {
    let up = common::upstream().await;
    let dir = fixtures();
    let llm = ScriptPeer::llm(dir.path().to_str().unwrap(), KEY);
    let server = common::server(db).await;
    let schema = json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}});
    let body = json!({"name": "Bench", "slug": "bench", "service_type": "http", "base_url": up,
        "auth": {"type": "bearer", "token": "bench-token-123456"},
        "operations": [{"name": "item", "method": "GET", "path": "/items/{{id}}", "description": "Reads an item", "input_schema": schema}]});
    let (st, c) = server
        .call(reqwest::Method::POST, "/api/workspaces/default/connections", Some(body))
        .await;
    assert_eq!(st, 201, "{c}");
    let (st, v) = server
        .call(
            reqwest::Method::PUT,
            "/api/admin/service-credentials/openai",
            Some(json!({"api_key": KEY, "base_url": llm.url})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, a) = server
        .call(reqwest::Method::POST, "/api/workspaces/default/agents", Some(json!({"name": "Bench", "provider": "openai",
            "model": "bench-model", "instructions": "Read the items.", "tools": ["bench.item"], "max_steps": ROUNDS + 1})))
        .await;
    assert_eq!(st, 201, "{a}");
    let agent = a["id"].as_str().unwrap().to_owned();

    let client = test_client();
    let (mut d, mut t) = (Vec::new(), Vec::new());
    let (mut d_steps, mut t_steps) = (0, 0);
    // interleaved, so that the machine's noise falls on both alike
    for i in 0..WARMUP + RUNS {
        let s = Instant::now();
        d_steps = direct(&client, &llm.url, &up, &schema).await;
        let dd = s.elapsed();
        let s = Instant::now();
        t_steps = through(&client, &server, &agent).await;
        let tt = s.elapsed();
        if i >= WARMUP {
            d.push(dd);
            t.push(tt);
        }
    }
    assert_eq!(d_steps, t_steps, "both made the same model turns and tool calls");
    d.sort();
    t.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    let (dp50, tp50) = (common::percentile(&d, 0.5), common::percentile(&t, 0.5));
    let (dp90, tp90) = (common::percentile(&d, 0.9), common::percentile(&t, 0.9));
    println!(
        "\n{db:?}: {RUNS} runs of {ROUNDS} rounds ({t_steps} steps: {} model turns, {ROUNDS} tool calls) after {WARMUP} warm-up, interleaved",
        ROUNDS + 1
    );
    println!("| path | p50 | p90 |");
    println!("|---|---|---|");
    println!("| direct (this process) | {:.2} ms | {:.2} ms |", ms(dp50), ms(dp90));
    println!("| through Chatterfly | {:.2} ms | {:.2} ms |", ms(tp50), ms(tp90));
    println!(
        "added per step at p50: {:.3} ms ({:.2} ms per run over {t_steps} steps); ratio {:.2}",
        (ms(tp50) - ms(dp50)) / t_steps as f64,
        ms(tp50) - ms(dp50),
        ms(tp50) / ms(dp50)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run(Db::Sqlite).await;
        if std::env::var(chatterfly_testkit::PG_ENV).is_ok() {
            run(Db::Postgres).await;
        }
    });
}
