//! The session pool against a real server (the Python SDK's, started by the project's
//! script): sessions are reused, bounded in number, closed when idle, and a closed one is
//! opened again on the next call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chatterfly_egress::{AllowList, Egress, Limits};
use chatterfly_mcp::{McpClient, PoolSettings, Target};
use chatterfly_testkit::peers::{McpPeer, McpPeerKind};
use serde_json::json;

fn target(url: &str, token: Option<&str>) -> Target {
    Target {
        url: url.parse().unwrap(),
        bearer: token.map(str::to_owned),
        transport: chatterfly_domain::McpTransport::StreamableHttp,
        limits: Limits::default(),
        workspace: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_reused_bounded_and_closed_when_idle() {
    let peer = McpPeer::start(McpPeerKind::PythonHttp);
    let egress = Egress::new(AllowList::parse("127.0.0.1").unwrap(), Limits::default()).unwrap();
    let (client, _changes) = McpClient::new(
        egress,
        PoolSettings {
            max_sessions: 2,
            idle_timeout: Duration::from_millis(600),
        },
    );
    let args = json!({"text": "hi"}).as_object().unwrap().clone();
    let t = target(&peer.url, None);
    for _ in 0..3 {
        let out = client.call("c1", &t, "echo", args.clone()).await.unwrap();
        assert_eq!(out["content"][0]["text"], "hi");
    }
    assert_eq!(client.open_sessions().await, 1, "one connection, one session");
    // other credentials never share a session
    client
        .call("c1", &target(&peer.url, Some("token-b")), "echo", args.clone())
        .await
        .unwrap();
    assert_eq!(client.open_sessions().await, 2);
    // a third key: the least recently used session is closed to make room
    client.call("c2", &t, "echo", args.clone()).await.unwrap();
    assert_eq!(client.open_sessions().await, 2, "bounded");
    // idle sessions are closed
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(client.open_sessions().await, 0, "closed when idle");
    let out = client.call("c1", &t, "echo", args).await.unwrap();
    assert_eq!(out["content"][0]["text"], "hi", "a new session after the idle close");
    assert_eq!(client.open_sessions().await, 1);
}
