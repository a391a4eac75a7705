//! What the benches share: the loopback upstream, a percentile, and the server under test.

#![allow(dead_code)] // each bench uses some of these

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::routing::get;
use chatterfly_testkit::server::{Options, TestServer};
use chatterfly_testkit::{Db, fresh_database};
use serde_json::json;

/// A small axum handler on 127.0.0.1 answering `GET /items/{id}` with a JSON object (and
/// `GET /slow/{ms}` the same after `ms` milliseconds); its URL.
pub async fn upstream() -> String {
    let app = Router::new()
        .route(
            "/items/{id}",
            get(|UrlPath(id): UrlPath<u64>| async move { axum::Json(json!({"id": id, "name": "widget", "ok": true})) }),
        )
        .route(
            "/slow/{ms}",
            get(|UrlPath(ms): UrlPath<u64>| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                axum::Json(json!({"slept_ms": ms}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// The release `chatterfly serve` on a fresh database, loopback allowed, logging warnings.
pub async fn server(db: Db) -> TestServer {
    let tdb = fresh_database(db).await;
    let mut env = vec![("CHATTERFLY_ALLOW_PRIVATE".to_owned(), "127.0.0.1".to_owned())];
    if db == Db::Postgres {
        env.push((
            "INTEGRATION_ENCRYPTION_KEY".into(),
            chatterfly_testkit::server::random_key(),
        ));
    }
    TestServer::spawn(
        Path::new(env!("CARGO_BIN_EXE_chatterfly")),
        tdb,
        &Options {
            env,
            rust_log: "warn".into(),
        },
    )
    .expect("server starts")
}
