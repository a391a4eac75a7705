//! Integration tests: the real `chatterfly` binary on a random port, spoken to over HTTP,
//! each test on a fresh SQLite database and again on a fresh PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod agents;
mod cache;
mod canary;
mod connections;
mod crash;
mod errors;
mod import;
mod keys;
mod limits;
mod matrix;
mod mcp;
mod openapi;
mod ops;
mod participants;
mod replicas;
mod schemathesis;
mod services;
mod telegram;
mod tenancy;
mod tools;
mod web;
mod workflows;

pub const BIN: &str = env!("CARGO_BIN_EXE_chatterfly");

pub use chatterfly_testkit::server::TestServer;
pub use chatterfly_testkit::{Db, db_tests};
pub use reqwest::Method;
pub use serde_json::{Value, json};

/// Server options for tests whose upstreams listen on this machine: loopback is allowed
/// past the SSRF guard (only here), plus any extra environment.
pub fn local_upstreams(extra: &[(&str, &str)]) -> chatterfly_testkit::server::Options {
    let mut env = vec![("CHATTERFLY_ALLOW_PRIVATE".to_owned(), "127.0.0.1,localhost".to_owned())];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    chatterfly_testkit::server::Options {
        env,
        ..chatterfly_testkit::server::Options::default()
    }
}

/// A counter or gauge from `/metrics` (read from loopback, which the default allow-list
/// lets in), 0 when the server has not counted it yet.
pub async fn metric(s: &TestServer, name: &str) -> f64 {
    let text = chatterfly_testkit::server::test_client()
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .map_or(0.0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

/// Calls a tool in workspace `default` as the bootstrap admin.
pub async fn invoke(s: &TestServer, tool: &str, args: Value) -> (u16, Value) {
    s.call(
        Method::POST,
        &format!("/api/workspaces/default/tools/{tool}/invoke"),
        Some(json!({"arguments": args})),
    )
    .await
}

/// httpbin's `/ip`, `/anything` (an echo of the JSON body) and `/delay/{n}` as a local
/// server whose `/delay/2` answers only once `true` is sent on the returned sender (other
/// delays last their seconds): a browser test sees a run while its slow call still runs,
/// however slow the machine. Its URL.
pub async fn held_delays() -> (String, tokio::sync::watch::Sender<bool>) {
    use axum::extract::{Path, State};
    let (tx, rx) = tokio::sync::watch::channel(false);
    let app = axum::Router::new()
        .route(
            "/ip",
            axum::routing::get(|| async { axum::Json(json!({"origin": "127.0.0.1"})) }),
        )
        .route(
            "/anything",
            axum::routing::any(|body: bytes::Bytes| async move {
                axum::Json(json!({"json": serde_json::from_slice::<Value>(&body).ok()}))
            }),
        )
        .route(
            "/delay/{n}",
            axum::routing::get(
                |State(mut rx): State<tokio::sync::watch::Receiver<bool>>, Path(n): Path<u64>| async move {
                    if n == 2 {
                        let _ = rx.wait_for(|go| *go).await;
                    } else {
                        tokio::time::sleep(std::time::Duration::from_secs(n)).await;
                    }
                    axum::Json(json!({"delayed": n}))
                },
            ),
        )
        .with_state(rx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, tx)
}
