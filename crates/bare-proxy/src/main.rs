//! The floor under `invoke`: the same HTTP stack with none of Chatterfly's work. An axum
//! server whose one route, `POST /invoke`, reads `{"arguments":{"id":…}}`, calls
//! `GET {upstream}/items/{id}` with a bearer header through a pooled reqwest client, parses
//! the JSON answer and wraps it as `{"output":{"status","body"},"duration_ms"}`: what
//! `invoke` answers, without the token, the cache, the schema, the vault, the guard, the
//! redaction, the audit or the metrics. `bench/proxy.sh` measures it beside nginx and
//! Chatterfly, so the gap between them is split into the stack's and Chatterfly's own.
//!
//!   cargo run --release -p chatterfly-bare-proxy -- 127.0.0.1:PORT http://UPSTREAM

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// The same allocator as Chatterfly's binary, so that the floor is the stack's and nothing else.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    base: String,
}

async fn invoke(State(up): State<Upstream>, Json(body): Json<Value>) -> Result<Json<Value>, StatusCode> {
    let started = std::time::Instant::now();
    let id = body["arguments"]["id"]
        .as_str()
        .ok_or(StatusCode::UNPROCESSABLE_ENTITY)?;
    let resp = up
        .client
        .get(format!("{}/items/{id}", up.base))
        .header("authorization", "Bearer bare-proxy")
        .send()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(Json(
        json!({"output": {"status": status, "body": body}, "duration_ms": duration_ms}),
    ))
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(base)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_proxy ADDR UPSTREAM_URL");
        return std::process::ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bare_proxy: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async move {
        // a benchmark's yardstick, not a path of the product: it calls only the upstream
        // it is given on the command line
        // plain HTTP only, but the client is built with TLS and wants a provider
        let _ = rustls::crypto::ring::default_provider().install_default();
        #[allow(clippy::disallowed_methods)]
        let client = reqwest::Client::new();
        let up = Upstream { client, base };
        let app = Router::new().route("/invoke", post(invoke)).with_state(up);
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        axum::serve(listener, app).await
    });
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare_proxy: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
