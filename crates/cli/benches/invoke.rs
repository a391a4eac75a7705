//! Tool-call overhead: the same loopback upstream called directly and through
//! `POST …/tools/{tool}/invoke`, in one run, on this machine.
//!
//!   cargo bench -p chatterfly --bench invoke             # SQLite
//!   CHATTERFLY_TEST_POSTGRES_URL=postgres://… cargo bench -p chatterfly --bench invoke   # and PostgreSQL
//!
//! Measures sequential latency (p50, p99 over N calls, after a warm-up) and throughput at a
//! fixed concurrency, for both paths, and prints the ratios. Only 127.0.0.1 is contacted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatterfly_testkit::Db;
use chatterfly_testkit::server::test_client;
use serde_json::json;

const SEQUENTIAL: usize = 3000;
const WARMUP: usize = 300;
const CONCURRENCY: usize = 16;
const THROUGHPUT_CALLS: usize = 8000;

struct Figures {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
}

async fn measure<F, Fut>(call: F) -> Figures
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    for i in 0..WARMUP {
        call(i).await;
    }
    let mut lat = Vec::with_capacity(SEQUENTIAL);
    for i in 0..SEQUENTIAL {
        let t = Instant::now();
        call(i).await;
        lat.push(t.elapsed());
    }
    lat.sort();
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (call, next) = (call.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= THROUGHPUT_CALLS {
                    break;
                }
                call(i).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Figures {
        p50: common::percentile(&lat, 0.50),
        p99: common::percentile(&lat, 0.99),
        per_sec: THROUGHPUT_CALLS as f64 / started.elapsed().as_secs_f64(),
    }
}

async fn run(db: Db) {
    let up = common::upstream().await;
    let server = common::server(db).await;
    let body = json!({"name": "Bench", "slug": "bench", "service_type": "http", "base_url": up,
        "auth": {"type": "bearer", "token": "bench-token-123456"},
        "operations": [{"name": "get_item", "method": "GET", "path": "/items/{{id}}",
            "input_schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}}]});
    let (st, c) = server
        .call(reqwest::Method::POST, "/api/workspaces/default/connections", Some(body))
        .await;
    assert_eq!(st, 201, "{c}");

    let client = test_client();
    let direct = {
        let (client, up) = (client.clone(), up.clone());
        measure(move |i| {
            let (client, url) = (client.clone(), format!("{up}/items/{i}"));
            async move {
                let r = client.get(url).bearer_auth("bench-token-123456").send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
        })
        .await
    };
    let invoke_url = format!("{}/api/workspaces/default/tools/bench.get_item/invoke", server.url);
    let token = server.token.clone();
    let via = {
        let client = client.clone();
        measure(move |i| {
            let (client, url, token) = (client.clone(), invoke_url.clone(), token.clone());
            async move {
                let r = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"arguments": {"id": i}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
        })
        .await
    };
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "\n{db:?}: {SEQUENTIAL} sequential calls after {WARMUP} warm-up; {THROUGHPUT_CALLS} calls at concurrency {CONCURRENCY}"
    );
    println!("| path | p50 | p99 | calls/s |");
    println!("|---|---|---|---|");
    println!(
        "| direct | {:.0} µs | {:.0} µs | {:.0} |",
        us(direct.p50),
        us(direct.p99),
        direct.per_sec
    );
    println!(
        "| through invoke | {:.0} µs | {:.0} µs | {:.0} |",
        us(via.p50),
        us(via.p99),
        via.per_sec
    );
    println!(
        "added p50 {:.0} µs, added p99 {:.0} µs, throughput ratio {:.2} (invoke/direct)",
        us(via.p50) - us(direct.p50),
        us(via.p99) - us(direct.p99),
        via.per_sec / direct.per_sec
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
