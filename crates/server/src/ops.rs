//! Operating the server: request ids, readiness, and Prometheus metrics.
//!
//! - Every response carries `X-Request-Id`: the client's own when it sent a well-formed
//!   one (1 to 64 of `A-Z a-z 0-9 . _ : -`), else a new one. The id is a field of the
//!   request's log span (so every line logged while serving it, in text or JSON, names it)
//!   and the `request_id` of any problem document it answers.
//! - `GET /api/health/ready`: 200 when the database answers and the encryption keys open
//!   what they seal, else 503 naming what failed; `/api/health` stays the liveness check.
//! - `GET /metrics`: Prometheus text; readable with `CHATTERFLY_METRICS_TOKEN` as a bearer
//!   token, or from an address in `CHATTERFLY_METRICS_ALLOW` (loopback by default).
//! - An HTTP/1 answer given before the request's body was read to its end (a refused token,
//!   an unknown tool or workspace, a body over its limit) says `Connection: close`: the
//!   connection cannot carry another request (the rest of the body is still on it), and a
//!   client told so opens a new one instead of sending its next request into a socket that
//!   is being closed ([`close_if_body_unread`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::AppState;
use crate::error::ApiError;

pub const REQUEST_ID: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: Arc<str>;
}

/// The id of the request being served, when there is one.
pub fn current_request_id() -> Option<String> {
    CURRENT.try_with(|id| id.to_string()).ok()
}

fn acceptable(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Gives the request its id (kept in its `X-Request-Id` header for the log span), serves it
/// with the id in scope, and puts the id on the response.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(REQUEST_ID, value.clone());
    let mut response = CURRENT.scope(Arc::from(id), next.run(request)).await;
    response.headers_mut().insert(REQUEST_ID, value);
    response
}

/// Marks an HTTP/1 answer `Connection: close` when the handler answered without reading
/// the request's body to its end. hyper closes such a connection after the answer anyway;
/// without the header a keep-alive client sends its next request on it and gets no answer.
pub async fn close_if_body_unread(request: Request, next: Next) -> Response {
    use http_body::Body as _;
    if request.body().is_end_stream() || request.version() >= axum::http::Version::HTTP_2 {
        return next.run(request).await;
    }
    let read = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let request = request.map(|inner| {
        axum::body::Body::new(Watched {
            inner,
            read: read.clone(),
        })
    });
    let mut response = next.run(request).await;
    if !read.load(std::sync::atomic::Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that notes when it has been read to its end.
struct Watched {
    inner: axum::body::Body,
    read: Arc<std::sync::atomic::AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            std::task::Poll::Ready(None) => true,
            std::task::Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            self.read.store(true, std::sync::atomic::Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The client's address, set by the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// Who may read `/metrics`.
pub struct MetricsAccess {
    /// SHA-256 of the token, hex.
    pub token_hash: Option<String>,
    pub allow: Vec<ipnet::IpNet>,
}

impl MetricsAccess {
    pub fn new(token: Option<&str>, allow: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in allow.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("CHATTERFLY_METRICS_ALLOW: `{entry}` is not a CIDR or an address"))?;
            nets.push(net);
        }
        Ok(Self {
            token_hash: token.filter(|t| !t.is_empty()).map(crate::tokens::hash),
            allow: nets,
        })
    }

    fn allows(&self, peer: Option<IpAddr>, bearer: Option<&str>) -> bool {
        if let (Some(expected), Some(given)) = (&self.token_hash, bearer) {
            let given = crate::tokens::hash(given);
            if subtle_eq(expected.as_bytes(), given.as_bytes()) {
                return true;
            }
        }
        peer.is_some_and(|ip| {
            let ip = ip.to_canonical();
            self.allow.iter().any(|n| n.contains(&ip))
        })
    }
}

fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Prometheus metrics (text exposition format).
pub async fn metrics(State(state): State<AppState>, request: Request) -> Response {
    let peer = request.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    if !state.metrics_access.allows(peer, bearer) {
        return ApiError::Forbidden(
            "metrics are read with CHATTERFLY_METRICS_TOKEN or from an address in CHATTERFLY_METRICS_ALLOW".into(),
        )
        .into_response();
    }
    let mut registry = Registry::default();
    state.tools.metrics.register(&mut registry);
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: i64| {
        let g: Gauge = Gauge::default();
        g.set(value);
        registry.register(name, help, g);
    };
    let (open, idle) = state.store.pool_state();
    let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    gauge(
        &mut registry,
        "chatterfly_db_pool_connections",
        "Database connections open",
        i64::from(open),
    );
    gauge(
        &mut registry,
        "chatterfly_db_pool_idle",
        "Database connections idle",
        n(idle),
    );
    gauge(
        &mut registry,
        "chatterfly_audit_backlog",
        "Audit rows recorded and not yet written",
        n(state.tools.audit_backlog()),
    );
    gauge(
        &mut registry,
        "chatterfly_tool_calls_in_flight",
        "Tool calls under way on this server",
        n(state.tools.outbound.in_flight()),
    );
    gauge(
        &mut registry,
        "chatterfly_workspaces_with_calls_in_flight",
        "Workspaces with tool calls under way on this server",
        n(state.tools.outbound.busy_workspaces()),
    );
    gauge(
        &mut registry,
        "chatterfly_call_context_cache_entries",
        "Call contexts cached on this server",
        n(state.calls.len()),
    );
    gauge(
        &mut registry,
        "chatterfly_answers_held_bytes",
        "Room held in the budget for answers in flight (--max-inflight-answer-bytes), by answers being read, handled or sent",
        n(state.tools.egress().answers().held_kib().saturating_mul(1024)),
    );
    let heavy = state.tools.egress().heavy();
    gauge(
        &mut registry,
        "chatterfly_large_answer_jobs_running",
        "Large answers being decoded, redacted, parsed or serialized off the async workers",
        n(heavy.running()),
    );
    gauge(
        &mut registry,
        "chatterfly_large_answer_jobs_waiting",
        "Large answers waiting for a place to be worked on",
        n(heavy.waiting()),
    );
    let done: Counter = Counter::default();
    done.inc_by(heavy.done());
    registry.register(
        "chatterfly_large_answer_jobs",
        "Large answers worked on off the async workers since the start",
        done,
    );
    let (mut queued, mut running) = (0, 0);
    if let Ok(Ok(counts)) = tokio::time::timeout(Duration::from_secs(2), state.store.workflow_run_counts()).await {
        for (status, count) in counts {
            match status.as_str() {
                "queued" => queued = count,
                "running" => running = count,
                _ => {}
            }
        }
    }
    gauge(
        &mut registry,
        "chatterfly_workflow_runs_queued",
        "Workflow runs waiting for a worker (all replicas)",
        queued,
    );
    gauge(
        &mut registry,
        "chatterfly_workflow_runs_running",
        "Workflow runs under way (all replicas)",
        running,
    );
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        return ApiError::Internal("the metrics could not be written".into()).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, or `not_ready`.
    pub status: String,
    /// Each check: `ok`, or why it failed.
    pub checks: std::collections::BTreeMap<String, String>,
}

/// Readiness: 200 when the database answers and the encryption keys work, else 503 naming
/// what failed. `/api/health` is the liveness check. No authentication.
#[utoipa::path(get, path = "/api/health/ready", security(()),
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let mut checks = std::collections::BTreeMap::new();
    let database = match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => {
            // the details (names, addresses) go to the log, not to an unauthenticated caller
            tracing::warn!(error = %e, "readiness: the database does not answer");
            "the database does not answer".to_owned()
        }
        Err(_) => "the database did not answer within 2 s".to_owned(),
    };
    checks.insert("database".to_owned(), database);
    let probe = b"chatterfly readiness probe";
    let keys = match state
        .keys
        .seal(probe, b"readiness")
        .and_then(|sealed| state.keys.open(&sealed, b"readiness"))
    {
        Ok(plain) if plain.as_slice() == probe => "ok".to_owned(),
        Ok(_) => "the current key does not open what it seals".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the encryption keys do not work");
            "the encryption keys do not work".to_owned()
        }
    };
    checks.insert("keys".to_owned(), keys);
    let ok = checks.values().all(|v| v == "ok");
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Readiness {
            status: if ok { "ready" } else { "not_ready" }.to_owned(),
            checks,
        }),
    )
}
