//! A server's large answers are parsed on the MCP sessions' own runtime, never on the
//! caller's: the caller here is a single-threaded runtime with a task that ticks every
//! 2 ms, and while a 6 MB answer (half a million JSON values) is read and parsed its
//! ticks go on. Were the parse done on the caller's thread, the ticker would stop for as
//! long as the parse takes, which the test measures on the same answer.
//!
//! And a workspace's large answers take turns in its lane of the large-answer gate, so
//! another workspace's calls do not queue behind all of them on the sessions' runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chatterfly_egress::{AllowList, Egress, Limits};
use chatterfly_mcp::{McpClient, PoolSettings, Target};
use serde_json::{Value, json};

/// Entries of the large answer's `structuredContent` (about 6 MB of JSON).
const ENTRIES: usize = 500_000;

fn large_result() -> Value {
    let mut map = serde_json::Map::with_capacity(ENTRIES);
    for i in 0..ENTRIES {
        map.insert(format!("k{i}"), json!(i % 10));
    }
    json!({"content": [{"type": "text", "text": "large"}], "structuredContent": map, "isError": false})
}

#[derive(serde::Deserialize)]
struct Mode {
    /// `json` or `sse`: how the server answers a POST.
    mode: String,
}

async fn mcp(
    Query(mode): Query<Mode>,
    axum::extract::State(large): axum::extract::State<Arc<Value>>,
    body: Bytes,
) -> Response {
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let result = match msg.get("method").and_then(Value::as_str) {
        Some("initialize") => json!({
            "protocolVersion": "2025-03-26",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "large", "version": "1"}}),
        Some("tools/call") if msg["params"]["name"] == "large" => (*large).clone(),
        Some("tools/call")
            if ["large_text", "large_after_note", "large_wrong_id"]
                .contains(&msg["params"]["name"].as_str().unwrap_or("")) =>
        {
            // the same answer, its text made once: the server sends it as fast as asked
            static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let text = TEXT.get_or_init(|| json!({"jsonrpc": "2.0", "id": "ID", "result": *large}).to_string());
            let name = msg["params"]["name"].as_str().unwrap_or("");
            let answer_id = if name == "large_wrong_id" {
                json!(987_654)
            } else {
                id.clone()
            };
            let answer = text.replacen("\"ID\"", &answer_id.to_string(), 1);
            // a comment, an empty event and a notification may come first
            let before = if name == "large_after_note" {
                ": hello\n\ndata:\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"working\"}}\n\n"
            } else {
                ""
            };
            let mut h = HeaderMap::new();
            h.insert("mcp-session-id", "s1".parse().unwrap());
            h.insert(header::CONTENT_TYPE, "text/event-stream".parse().unwrap());
            return (h, format!("{before}event: message\ndata: {answer}\n\n")).into_response();
        }
        Some("tools/call") => json!({"content": [{"type": "text", "text": "small"}], "isError": false}),
        _ => return StatusCode::ACCEPTED.into_response(),
    };
    let answer = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
    let mut h = HeaderMap::new();
    h.insert("mcp-session-id", "s1".parse().unwrap());
    if mode.mode == "sse" {
        h.insert(header::CONTENT_TYPE, "text/event-stream".parse().unwrap());
        (h, format!("event: message\ndata: {answer}\n\n")).into_response()
    } else {
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        (h, answer).into_response()
    }
}

/// The server, on a runtime of its own on another thread.
fn start_server(large: Arc<Value>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new()
                .route(
                    "/mcp",
                    post(mcp)
                        .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
                        .delete(|| async { StatusCode::OK }),
                )
                .with_state(large);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}/mcp", listener.local_addr().unwrap()))
                .unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

#[test]
fn large_answers_are_parsed_off_the_callers_runtime() {
    let large = Arc::new(large_result());
    let text = json!({"jsonrpc": "2.0", "id": 1, "result": *large}).to_string();
    assert!(
        text.len() > 5_000_000 && text.len() < 10_000_000,
        "{} bytes",
        text.len()
    );
    // what parsing this answer takes on one thread of this machine (the least of three)
    let parse = (0..3)
        .map(|_| {
            let t = Instant::now();
            let v: Value = serde_json::from_str(&text).unwrap();
            let took = t.elapsed();
            drop(v);
            took
        })
        .min()
        .unwrap();
    drop(text);
    assert!(
        parse >= Duration::from_millis(40),
        "the answer parses in {parse:?}: too fast to tell"
    );

    let url = start_server(large);
    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    caller.block_on(async {
        let limits = Limits {
            max_response_bytes: 16 * 1024 * 1024,
            ..Limits::default()
        };
        let egress = Egress::new(AllowList::parse("127.0.0.1").unwrap(), limits).unwrap();
        let (client, _changes) = McpClient::new(egress, PoolSettings::default());
        for mode in ["json", "sse"] {
            let target = Target {
                url: format!("{url}?mode={mode}").parse().unwrap(),
                bearer: None,
                transport: chatterfly_domain::McpTransport::StreamableHttp,
                limits,
                workspace: None,
            };
            // the session is opened first, with a small call
            let out = client.call(mode, &target, "small", serde_json::Map::new()).await.unwrap();
            assert_eq!(out["content"][0]["text"], "small");

            let stop = Arc::new(AtomicBool::new(false));
            let ticker = tokio::spawn({
                let stop = stop.clone();
                async move {
                    let mut worst = Duration::ZERO;
                    let mut last = Instant::now();
                    while !stop.load(SeqCst) {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        worst = worst.max(last.elapsed());
                        last = Instant::now();
                    }
                    worst
                }
            });
            let started = Instant::now();
            let out = client.call(mode, &target, "large", serde_json::Map::new()).await.unwrap();
            let took = started.elapsed();
            stop.store(true, SeqCst);
            let worst = ticker.await.unwrap();

            let entries = out["structured_content"].as_object().map_or(0, serde_json::Map::len);
            assert_eq!(entries, ENTRIES, "{mode}: the whole answer arrives");
            assert!(took >= parse, "{mode}: the call took {took:?}, less than the parse alone ({parse:?})");
            assert!(
                worst * 3 < parse,
                "{mode}: the caller's runtime stalled for {worst:?} while the answer was parsed (the parse alone takes {parse:?})"
            );
        }
    });
}

/// A two-worker runtime for a test's calls.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A client allowed 16 MB answers, and the large-answer gate its sessions use.
fn client(limits: Limits) -> (Arc<McpClient>, chatterfly_egress::heavy::Heavy) {
    let egress = Egress::new(AllowList::parse("127.0.0.1").unwrap(), limits).unwrap();
    let heavy = egress.heavy().clone();
    (McpClient::new(egress, PoolSettings::default()).0, heavy)
}

/// The test server, answering with event streams, as workspace `ws` calls it.
fn sse_target(url: &str, limits: Limits, ws: &str) -> Target {
    target(url, limits, ws, "sse")
}

/// The test server, answering as `mode` says (`sse` or `json`), as workspace `ws` calls it.
fn target(url: &str, limits: Limits, ws: &str, mode: &str) -> Target {
    Target {
        url: format!("{url}?mode={mode}").parse().unwrap(),
        bearer: None,
        transport: chatterfly_domain::McpTransport::StreamableHttp,
        limits,
        workspace: Some(Arc::from(ws)),
    }
}

#[test]
fn a_workspaces_large_answers_take_turns() {
    large_answers_take_turns("sse");
}

/// The same with answers sent as plain JSON bodies (rmcp's client would parse these on
/// the sessions' runtime: a `tools/call` is POSTed by Chatterfly's own code).
#[test]
fn a_workspaces_large_json_answers_take_turns() {
    large_answers_take_turns("json");
}

fn large_answers_take_turns(mode: &str) {
    let url = start_server(Arc::new(large_result()));
    runtime().block_on(async {
        let limits = Limits {
            max_response_bytes: 16 * 1024 * 1024,
            ..Limits::default()
        };
        let (client, heavy) = client(limits);
        let (a, b) = (target(&url, limits, "a", mode), target(&url, limits, "b", mode));
        for (id, t) in [("conn-a", &a), ("conn-b", &b)] {
            let out = client.call(id, t, "small", serde_json::Map::new()).await.unwrap();
            assert_eq!(out["content"][0]["text"], "small");
        }
        let done_before = heavy.done();

        // workspace a's lane is taken (as by a large answer being parsed)...
        let held = heavy.place("a").await.unwrap();
        // ...when it asks for six large answers at once
        const FLOOD: usize = 6;
        let flood: Vec<_> = (0..FLOOD)
            .map(|i| {
                let (client, a) = (client.clone(), a.clone());
                // in event streams, half of them after a comment, an empty event and a
                // notification
                let tool = match (mode, i % 2) {
                    ("json", _) => "large",
                    (_, 0) => "large_text",
                    _ => "large_after_note",
                };
                tokio::spawn(async move { client.call("conn-a", &a, tool, serde_json::Map::new()).await })
            })
            .collect();
        // each answer arrives and waits for its turn, unparsed
        let deadline = Instant::now() + Duration::from_secs(30);
        while heavy.waiting() < FLOOD {
            assert!(
                Instant::now() < deadline && !flood.iter().any(tokio::task::JoinHandle::is_finished),
                "a's large answers did not wait for their turn ({} waiting)",
                heavy.waiting()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // meanwhile workspace b's calls go through
        let out = client
            .call("conn-b", &b, "small", serde_json::Map::new())
            .await
            .unwrap();
        assert_eq!(out["content"][0]["text"], "small");
        assert!(!flood.iter().any(tokio::task::JoinHandle::is_finished));
        // once the lane is free, a's answers are parsed one after another, whole
        drop(held);
        for f in flood {
            let out = f.await.unwrap().unwrap();
            let entries = out["structured_content"].as_object().map_or(0, serde_json::Map::len);
            assert_eq!(entries, ENTRIES, "the whole answer arrives");
        }
        assert_eq!(
            heavy.done() - done_before,
            FLOOD as u64 + 1,
            "each large answer took its turn"
        );
        assert_eq!(heavy.waiting(), 0);
    });
}

#[test]
fn a_large_answer_with_another_id_fails_the_call_at_once() {
    let url = start_server(Arc::new(large_result()));
    runtime().block_on(async {
        let limits = Limits {
            max_response_bytes: 16 * 1024 * 1024,
            total_timeout: Duration::from_secs(20),
            ..Limits::default()
        };
        let (client, _heavy) = client(limits);
        let target = sse_target(&url, limits, "w");
        let started = Instant::now();
        let result = client
            .call("conn", &target, "large_wrong_id", serde_json::Map::new())
            .await;
        let took = started.elapsed();
        assert!(result.is_err(), "an answer to another request is no answer");
        assert!(
            took < Duration::from_secs(10),
            "the call waited {took:?} for its timeout"
        );
        // and the session still answers
        let out = client
            .call("conn", &target, "large_text", serde_json::Map::new())
            .await
            .unwrap();
        assert_eq!(
            out["structured_content"].as_object().map_or(0, serde_json::Map::len),
            ENTRIES
        );
    });
}
