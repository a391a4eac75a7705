//! The streaming client (MCP's transports) pools its connections apart from `send`'s: its
//! connections are opened, and driven, on the MCP sessions' runtime, whose threads parse
//! large answers, so an HTTP call must never be handed one of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::routing::get;
use chatterfly_egress::{AllowList, Egress, Limits, OutboundRequest};
use http::Method;
use url::Url;

type Ports = Arc<Mutex<Vec<u16>>>;

/// An upstream answering each request with the client port of its connection.
async fn upstream(ports: Ports) -> String {
    let app = axum::Router::new()
        .route(
            "/port",
            get(
                |State(ports): State<Ports>, ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                    ports.lock().unwrap().push(peer.port());
                    peer.port().to_string()
                },
            ),
        )
        .with_state(ports);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/port", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streaming_client_never_shares_a_connection_with_send() {
    let ports = Ports::default();
    let url = upstream(ports.clone()).await;
    let egress = Egress::new(AllowList::parse("127.0.0.1").unwrap(), Limits::default()).unwrap();
    let send = || egress.send(OutboundRequest::new(Method::GET, Url::parse(&url).unwrap()), None);

    let first = send().await.unwrap();
    assert_eq!(first.status.as_u16(), 200);
    // the streaming client finds the idle connection `send` left, and must not take it
    let streamed = egress.streaming_client(None).unwrap().get(&url).send().await.unwrap();
    assert_eq!(streamed.status(), 200);
    let streamed_port: u16 = streamed.text().await.unwrap().parse().unwrap();
    // and `send` must not take the one the streaming client left
    let again = send().await.unwrap();
    assert_eq!(again.status.as_u16(), 200);
    let again_port: u16 = std::str::from_utf8(&again.body).unwrap().parse().unwrap();

    let seen = ports.lock().unwrap().clone();
    let send_ports: BTreeSet<u16> = [seen[0], again_port].into();
    assert_eq!(send_ports.len(), 1, "send keeps its own connection alive: {seen:?}");
    assert!(
        !send_ports.contains(&streamed_port),
        "a connection was shared: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_never_share_a_streaming_connection() {
    let ports = Ports::default();
    let url = upstream(ports.clone()).await;
    let egress = Egress::new(AllowList::parse("127.0.0.1").unwrap(), Limits::default()).unwrap();
    // held for the whole test, as a workspace's sessions hold theirs
    let clients: std::collections::HashMap<Option<&str>, _> = [Some("ws-a"), Some("ws-b"), None]
        .into_iter()
        .map(|t| (t, egress.streaming_client(t).unwrap()))
        .collect();
    let port = |tenant: Option<&'static str>| {
        let client = clients[&tenant].clone();
        let url = url.clone();
        async move { port_via(&client, &url).await }
    };
    let (mut a, mut b, mut none) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    // one after the other: the connection one workspace just left idle is there to take
    for _ in 0..4 {
        a.insert(port(Some("ws-a")).await);
        b.insert(port(Some("ws-b")).await);
        none.insert(port(None).await);
    }
    let seen = ports.lock().unwrap().clone();
    assert_eq!(
        (a.len(), b.len(), none.len()),
        (1, 1, 1),
        "each keeps its connection: {seen:?}"
    );
    assert_eq!(
        a.union(&b).chain(none.iter()).collect::<BTreeSet<_>>().len(),
        3,
        "a connection was shared: {seen:?}"
    );
}

/// The client port the upstream saw the GET of `url` come from.
async fn port_via(client: &reqwest::Client, url: &str) -> u16 {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap().parse().unwrap()
}

/// An upstream answering each request with its connection's client port, and reporting
/// the port of every connection the client closed.
async fn closing_watch() -> (String, tokio::sync::mpsc::UnboundedReceiver<u16>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (closed_tx, closed) = tokio::sync::mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/port", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut sock, peer) = listener.accept().await.unwrap();
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                loop {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            let _ = closed_tx.send(peer.port());
                            return;
                        }
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        seen.clear();
                        let body = peer.port().to_string();
                        let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                        sock.write_all(answer.as_bytes()).await.unwrap();
                    }
                }
            });
        }
    });
    (url, closed)
}

/// A workspace's client, and its kept-alive connections, last only as long as something
/// holds it (its MCP sessions): a workspace that discovered a server once keeps no socket
/// open after (a thousand such workspaces once held a thousand sockets for a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspaces_connections_close_with_its_last_user() {
    let (url, mut closed) = closing_watch().await;
    let egress = Egress::new(AllowList::parse("127.0.0.1").unwrap(), Limits::default()).unwrap();
    let client = egress.streaming_client(Some("ws-a")).unwrap();
    let held = egress.streaming_client(Some("ws-a")).unwrap();
    let port = port_via(&client, &url).await;
    drop(client);
    // still held: the connection stays, and is used again
    let again = port_via(&held, &url).await;
    assert_eq!(again, port, "kept alive while the workspace's client is held");
    assert!(closed.try_recv().is_err(), "closed while held");
    drop(held);
    let gone = tokio::time::timeout(Duration::from_secs(2), closed.recv()).await;
    assert_eq!(
        gone.ok().flatten(),
        Some(port),
        "the idle connection outlived its last user"
    );
}
