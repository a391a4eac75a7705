//! The floor under `invoke`: the same HTTP stack with none of Chatterfly's work. An axum
//! server whose one route, `POST /invoke`, reads `{"arguments":{"id":…}}`, calls
//! `GET {upstream}/items/{id}` with a bearer header through a pooled reqwest client, parses
//! the JSON answer and wraps it as `{"output":{"status","body"},"duration_ms"}`: what
//! `invoke` answers, without the token, the cache, the schema, the vault, the guard, the
//! redaction, the audit or the metrics. `bench/proxy.sh` measures it beside nginx and
//! Chatterfly, so the gap between them is split into the stack's and Chatterfly's own.
//!
//! Two experiments on the stack itself, for the next step of the outbound path:
//! `--inline` sends through hyper's HTTP/1 connections driven by the calling task itself
//! (a small pool of idle connections; no hand-off to a connection task and back), and
//! `--one-thread` runs everything on one thread.
//!
//!   cargo run --release -p chatterfly-bare-proxy -- 127.0.0.1:PORT http://UPSTREAM [--inline] [--one-thread]

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// The same allocator as Chatterfly's binary, so that the floor is the stack's and nothing else.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Connection = Pin<Box<http1::Connection<TokioIo<TcpStream>, Empty<Bytes>>>>;
type Idle = (http1::SendRequest<Empty<Bytes>>, Connection);

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    base: String,
    /// `host:port` of the upstream, for `--inline`.
    authority: String,
    /// Idle connections for `--inline`, `None` when reqwest sends.
    idle: Option<Arc<Mutex<Vec<Idle>>>>,
}

/// One exchange on a connection this task drives: the request and the whole body are
/// awaited while the connection itself is polled here too; the connection goes back to the
/// pool after.
async fn inline(up: &Upstream, idle: &Mutex<Vec<Idle>>, path: String) -> Result<(u16, Bytes), StatusCode> {
    let taken = idle.lock().map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?.pop();
    let (mut sender, mut conn) = match taken {
        Some(idle) => idle,
        None => {
            let tcp = TcpStream::connect(&up.authority)
                .await
                .map_err(|_| StatusCode::BAD_GATEWAY)?;
            let _ = tcp.set_nodelay(true);
            let (sender, conn) = http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|_| StatusCode::BAD_GATEWAY)?;
            (sender, Box::pin(conn))
        }
    };
    let request = hyper::Request::get(path)
        .header("host", &up.authority)
        .header("authorization", "Bearer bare-proxy")
        .body(Empty::new())
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let mut sent = std::pin::pin!(sender.send_request(request));
    let response = tokio::select! {
        biased;
        r = &mut sent => r.map_err(|_| StatusCode::BAD_GATEWAY)?,
        _ = &mut conn => return Err(StatusCode::BAD_GATEWAY),
    };
    let status = response.status().as_u16();
    let mut body = std::pin::pin!(response.into_body().collect());
    let bytes = tokio::select! {
        biased;
        b = &mut body => b.map_err(|_| StatusCode::BAD_GATEWAY)?.to_bytes(),
        _ = &mut conn => return Err(StatusCode::BAD_GATEWAY),
    };
    if let Ok(mut idle) = idle.lock() {
        idle.push((sender, conn));
    }
    Ok((status, bytes))
}

async fn invoke(State(up): State<Upstream>, Json(body): Json<Value>) -> Result<Json<Value>, StatusCode> {
    let started = std::time::Instant::now();
    let id = body["arguments"]["id"]
        .as_str()
        .ok_or(StatusCode::UNPROCESSABLE_ENTITY)?;
    let (status, body) = match &up.idle {
        Some(idle) => {
            let (status, bytes) = inline(&up, idle, format!("/items/{id}")).await?;
            let body: Value = serde_json::from_slice(&bytes).map_err(|_| StatusCode::BAD_GATEWAY)?;
            (status, body)
        }
        None => {
            let resp = up
                .client
                .get(format!("{}/items/{id}", up.base))
                .header("authorization", "Bearer bare-proxy")
                .send()
                .await
                .map_err(|_| StatusCode::BAD_GATEWAY)?;
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
            (status, body)
        }
    };
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(Json(
        json!({"output": {"status": status, "body": body}, "duration_ms": duration_ms}),
    ))
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("--"))
        .collect();
    let mut positional = args.iter().filter(|a| !a.starts_with("--"));
    let (Some(addr), Some(base)) = (positional.next().cloned(), positional.next().cloned()) else {
        eprintln!("usage: bare-proxy ADDR UPSTREAM_URL [--inline] [--one-thread]");
        return std::process::ExitCode::FAILURE;
    };
    let built = if flags.contains(&"--one-thread") {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    };
    let runtime = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bare-proxy: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let inline = flags.contains(&"--inline");
    let served = runtime.block_on(async move {
        // plain HTTP only, but the client is built with TLS and wants a provider
        let _ = rustls::crypto::ring::default_provider().install_default();
        // a benchmark's yardstick, not a path of the product: it calls only the upstream
        // it is given on the command line
        #[allow(clippy::disallowed_methods)]
        let client = reqwest::Client::new();
        let authority = base.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let up = Upstream {
            client,
            base,
            authority,
            idle: inline.then(|| Arc::new(Mutex::new(Vec::new()))),
        };
        let app = Router::new().route("/invoke", post(invoke)).with_state(up);
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        axum::serve(listener, app).await
    });
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare-proxy: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
