//! Hostile MCP servers, written here so the attack is exact: a server that floods the
//! client with requests of its own (`ping`, methods the client does not know) before it
//! answers a call. Each request would cost a task, a POST and (for unknown methods) a log
//! line; the session answers a bounded number and ignores the rest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chatterfly_egress::{AllowList, Egress, Limits};
use chatterfly_mcp::{McpClient, PoolSettings, Target};
use serde_json::{Value, json};

const FLOOD: usize = 3000;

#[derive(Clone, Default)]
struct Seen {
    /// Answers the client POSTed back to the server's requests.
    answers: Arc<AtomicUsize>,
}

async fn mcp(axum::extract::State(seen): axum::extract::State<Seen>, body: Bytes) -> Response {
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    match msg.get("method").and_then(Value::as_str) {
        Some("initialize") => {
            let mut h = HeaderMap::new();
            h.insert("mcp-session-id", "s1".parse().unwrap());
            h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
            let answer = json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": "2025-03-26",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "flood", "version": "1"}}});
            (h, answer.to_string()).into_response()
        }
        Some("tools/call") => {
            let tool = msg["params"]["name"].as_str().unwrap_or("").to_owned();
            let mut events = String::new();
            for i in 0..FLOOD {
                let req = match tool.as_str() {
                    "ping_flood" => json!({"jsonrpc": "2.0", "id": format!("p{i}"), "method": "ping"}),
                    _ => json!({"jsonrpc": "2.0", "id": format!("u{i}"), "method": "nosuch/method",
                                "params": {"x": "r".repeat(200)}}),
                };
                events.push_str(&format!("event: message\ndata: {req}\n\n"));
            }
            let answer = json!({"jsonrpc": "2.0", "id": id, "result": {
                "content": [{"type": "text", "text": "done"}], "isError": false}});
            events.push_str(&format!("event: message\ndata: {answer}\n\n"));
            ([(header::CONTENT_TYPE, "text/event-stream")], events).into_response()
        }
        Some(_) => StatusCode::ACCEPTED.into_response(),
        None => {
            // an answer to one of the server's requests
            seen.answers.fetch_add(1, SeqCst);
            StatusCode::ACCEPTED.into_response()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_flooding_the_client_with_requests_gets_a_bounded_number_answered() {
    let seen = Seen::default();
    let app = axum::Router::new()
        .route(
            "/mcp",
            post(mcp)
                .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
                .delete(|| async { StatusCode::OK }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let egress = Egress::new(AllowList::parse("127.0.0.1").unwrap(), Limits::default()).unwrap();
    let (client, _changes) = McpClient::new(egress, PoolSettings::default());
    let target = Target {
        url: url.parse().unwrap(),
        bearer: None,
        transport: chatterfly_domain::McpTransport::StreamableHttp,
        limits: Limits::default(),
        workspace: None,
    };
    for tool in ["ping_flood", "unknown_flood"] {
        let out = client.call("c1", &target, tool, serde_json::Map::new()).await.unwrap();
        assert_eq!(out["content"][0]["text"], "done", "{tool}: the answer still arrives");
    }
    // let the answers that were sent land
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answered = seen.answers.load(SeqCst);
    assert!(answered >= 1, "the first requests are answered");
    assert!(
        answered <= 64,
        "{answered} of {} server requests answered: the session must bound them",
        2 * FLOOD
    );
}
