//! Two workspaces' sessions with one MCP server never share a connection: a server that
//! sends an answer nobody asked for leaves it on its connection, where the next request
//! would read it as its own, so pooled by origin alone another workspace's call could get
//! an answer made with the first workspace's credentials.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chatterfly_egress::{AllowList, Egress, Limits};
use chatterfly_mcp::{McpClient, PoolSettings, Target};
use serde_json::{Value, json};

/// Each request's bearer token and the client port of its connection.
type Seen = Arc<Mutex<Vec<(String, u16)>>>;

async fn mcp(
    State(seen): State<Seen>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim_start_matches("Bearer ")
        .to_owned();
    seen.lock().unwrap().push((token, peer.port()));
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let json_answer = |result: Value| {
        (
            [(header::CONTENT_TYPE, "application/json")],
            json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
        )
            .into_response()
    };
    match msg.get("method").and_then(Value::as_str) {
        Some("initialize") => {
            let mut r = json_answer(json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "tenants", "version": "1"}}));
            r.headers_mut().insert("mcp-session-id", "s1".parse().unwrap());
            r
        }
        Some("tools/call") => json_answer(json!({
            "content": [{"type": "text", "text": msg["params"]["arguments"]["text"]}], "isError": false})),
        Some("tools/list") => json_answer(json!({"tools": []})),
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

fn target(url: &str, token: &str, workspace: &str) -> Target {
    Target {
        url: url.parse().unwrap(),
        bearer: Some(token.to_owned()),
        transport: chatterfly_domain::McpTransport::StreamableHttp,
        limits: Limits::default(),
        workspace: Some(Arc::from(workspace)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workspaces_never_share_a_connection_to_one_server() {
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
    tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await });

    let egress = Egress::new(AllowList::parse("127.0.0.1").unwrap(), Limits::default()).unwrap();
    let (client, _changes) = McpClient::new(egress, PoolSettings::default());
    let a = target(&url, "token-a", "ws-a");
    let b = target(&url, "token-b", "ws-b");
    // one after the other, so an idle connection one workspace just left is there for the
    // other to take
    for i in 0..6 {
        for (conn, t) in [("conn-a", &a), ("conn-b", &b)] {
            let args = json!({"text": format!("{conn} {i}")}).as_object().unwrap().clone();
            let out = client.call(conn, t, "echo", args).await.unwrap();
            assert_eq!(out["content"][0]["text"], format!("{conn} {i}"));
        }
    }
    // discovery opens a session of its own, on its workspace's connections too
    client.discover(&b).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    let ports_of =
        |token: &str| -> BTreeSet<u16> { seen.iter().filter(|(t, _)| t == token).map(|(_, p)| *p).collect() };
    let (ports_a, ports_b) = (ports_of("token-a"), ports_of("token-b"));
    let requests_a = seen.iter().filter(|(t, _)| t == "token-a").count();
    assert!(requests_a >= 7, "initialize and six calls: {seen:?}");
    assert!(
        ports_a.len() < requests_a,
        "a workspace's requests reuse its connections: {seen:?}"
    );
    assert!(
        ports_a.is_disjoint(&ports_b),
        "a connection carried both workspaces' requests: {seen:?}"
    );
}
