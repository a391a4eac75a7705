//! Chatterfly's MCP client, on the official Rust SDK (`rmcp`).
//!
//! Both transports run under the same rmcp client service, so sessions, discovery and tool
//! calls are one code path: Streamable HTTP is rmcp's own transport over the guarded
//! egress client ([`chatterfly_egress::Egress::streaming_client`]); HTTP+SSE is
//! [`sse::SseTransport`]. `auto` tries Streamable HTTP first and falls back to SSE when
//! the server answers the `initialize` POST with an error (the MCP specification's
//! backwards-compatibility rule).
//!
//! The SSRF guard applies to every request: the server URL is checked before a session
//! opens (names are checked again by the guarded resolver on every connection), rmcp only
//! ever sends to that URL, no redirect is followed, and the SSE transport's announced
//! message endpoint must stay on the URL's origin.
//!
//! [`McpClient::call`] keeps initialized sessions in a pool ([`pool`]) keyed by connection
//! and credentials; [`McpClient::discover`] always uses a fresh session.

mod direct;
mod guarded_http;
mod peer_requests;
mod pool;
mod post;
pub mod sse;
mod turns;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use chatterfly_domain::{McpServerInfo, McpTransport, OperationInput, OperationName};
use chatterfly_egress::{Egress, EgressError};
use http::HeaderValue;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, PaginatedRequestParams, Tool,
};
use rmcp::service::{ClientInitializeError, NotificationContext, Peer, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, InsufficientScopeError, StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use url::Url;

pub use pool::PoolSettings;

/// The most tools one server may list (a connection's operation cap).
pub const MAX_TOOLS: usize = chatterfly_domain::operation::MAX_OPERATIONS;
/// The most `tools/list` pages followed.
const MAX_PAGES: usize = 500;
/// The most a server's tool list may hold, as JSON (after each description is cut to the
/// stored length and each schema past what a tool may hold is dropped): what a
/// connection's operations may hold.
const MAX_TOOLS_BYTES: usize = chatterfly_domain::operation::MAX_OPERATIONS_BYTES;

/// Where and how to reach one MCP server.
#[derive(Clone)]
pub struct Target {
    pub url: Url,
    /// The bearer token, when the connection has one. Lives only as long as the session.
    pub bearer: Option<String>,
    pub transport: McpTransport,
    /// Bounds: `total_timeout` for opening a session and for each request,
    /// `max_response_bytes` for each message.
    pub limits: chatterfly_egress::Limits,
    /// The workspace whose calls the session carries: its large messages wait for their
    /// turn in that workspace's lane of the large-answer gate ([`turns`]); `None`: a lane
    /// of their own (tests, tools).
    pub workspace: Option<Arc<str>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("origin", &self.url.origin().ascii_serialization())
            .field("bearer", &self.bearer.as_ref().map(|_| "[REDACTED]"))
            .field("transport", &self.transport)
            .finish()
    }
}

/// One tool as the server announced it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub input_schema: Value,
    pub output_schema: Option<Value>,
    pub annotations: Option<Value>,
}

impl ToolDef {
    fn from_rmcp(t: Tool) -> Self {
        let title = t.title.or_else(|| t.annotations.as_ref().and_then(|a| a.title.clone()));
        Self {
            name: t.name.into_owned(),
            title,
            description: t.description.map(|d| d.into_owned()),
            input_schema: Value::Object((*t.input_schema).clone()),
            output_schema: t.output_schema.map(|s| Value::Object((*s).clone())),
            annotations: t.annotations.and_then(|a| serde_json::to_value(a).ok()),
        }
    }

    /// The tool as the API shows it.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
        });
        if let (Some(a), Some(o)) = (&self.annotations, v.as_object_mut()) {
            o.insert("annotations".into(), a.clone());
        }
        v
    }
}

/// What discovery found.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub server: McpServerInfo,
    /// The transport that worked (never `auto`).
    pub transport: McpTransport,
    pub tools: Vec<ToolDef>,
}

/// A tool list the server announced changed on a live session, listed again on that
/// session.
#[derive(Debug, Clone)]
pub struct ToolsChanged {
    pub connection_id: String,
    pub tools: Vec<ToolDef>,
}

/// Why an MCP exchange failed. Messages never carry a credential or a URL's query.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("{0}")]
    Egress(#[from] EgressError),
    #[error("the MCP server refused the credentials (HTTP {0}); check the connection's token")]
    Unauthorized(u16),
    #[error("the MCP server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the MCP server answered with JSON-RPC error {code}: {message}")]
    Rpc { code: i32, message: String },
    #[error("{0}")]
    Protocol(String),
}

impl McpError {
    /// The stable problem code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Egress(e) => e.code(),
            Self::Unauthorized(_) => "upstream_unauthorized",
            Self::Timeout(_) => "upstream_timeout",
            Self::Rpc { .. } => "mcp_error",
            Self::Protocol(_) => "mcp_protocol_error",
        }
    }

    /// Whether `auto` should try the other transport after this failure of Streamable
    /// HTTP: the server was reached and did not speak it.
    fn falls_back(&self) -> bool {
        matches!(self, Self::Protocol(_) | Self::Rpc { .. })
    }
}

/// The result of `tools/call` as agents get it.
pub fn call_output(result: rmcp::model::CallToolResult) -> Value {
    json!({
        "content": serde_json::to_value(&result.content).unwrap_or(Value::Array(Vec::new())),
        "structured_content": result.structured_content.unwrap_or(Value::Null),
        "is_error": result.is_error.unwrap_or(false),
    })
}

/// The client handler every session runs: reports `notifications/tools/list_changed`.
#[derive(Clone)]
struct Handler {
    info: ClientConfig,
    /// Set for pooled sessions of a stored connection.
    changes: Option<(Arc<str>, mpsc::UnboundedSender<ToolsChanged>)>,
    /// 0: no listing running; 1: one running; 2: one running and another notification
    /// came meanwhile (list once more). A server repeating the notification gets at most
    /// one listing at a time per session.
    listing: Arc<AtomicU8>,
    /// The session's bearer token stays listed for the log's redaction while the session
    /// lives (rmcp's worker may log a server's error body that echoes it).
    _in_play: Option<chatterfly_egress::in_play::SecretGuard>,
    /// The forms of the session's token to take out of tool lists the server announces
    /// (they are stored, and shown to every member).
    scrub: Arc<Vec<String>>,
}

impl Handler {
    fn new(
        info: ClientConfig,
        changes: Option<(Arc<str>, mpsc::UnboundedSender<ToolsChanged>)>,
        target: &Target,
    ) -> Self {
        Self {
            info,
            changes,
            listing: Arc::new(AtomicU8::new(0)),
            _in_play: Some(chatterfly_egress::in_play::hold(
                target
                    .bearer
                    .as_deref()
                    .into_iter()
                    .chain(url_secrets(&target.url).iter().map(String::as_str)),
            )),
            scrub: Arc::new(target.bearer.as_deref().map(scrub_forms).unwrap_or_default()),
        }
    }
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) -> impl Future<Output = ()> + Send + '_ {
        self.tools_changed(context.peer);
        std::future::ready(())
    }
}

impl Handler {
    /// The server said its tools changed: they are listed again on `peer` (the session's),
    /// in a task of its own.
    fn tools_changed(&self, peer: Peer<RoleClient>) {
        if let Some((id, tx)) = self.changes.clone() {
            let state = self.listing.clone();
            // already listing: ask for one more round and leave it to the running task
            if state
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                let _ = state.compare_exchange(1, 2, Ordering::AcqRel, Ordering::Acquire);
                return;
            }
            let scrub = self.scrub.clone();
            // listed in a task of its own: the session's message loop is waiting for us
            tokio::spawn(async move {
                loop {
                    match tokio::time::timeout(Duration::from_secs(60), list_tools(&peer)).await {
                        Ok(Ok(mut tools)) => {
                            for t in &mut tools {
                                scrub_tool(t, &scrub);
                            }
                            let _ = tx.send(ToolsChanged {
                                connection_id: id.to_string(),
                                tools,
                            });
                        }
                        Ok(Err(e)) => tracing::warn!(connection = %id, error = %e, "cannot list the changed MCP tools"),
                        Err(_) => tracing::warn!(connection = %id, "listing the changed MCP tools timed out"),
                    }
                    if state
                        .compare_exchange(1, 0, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return;
                    }
                    state.store(1, Ordering::Release);
                }
            });
        }
    }
}

type Session = RunningService<RoleClient, Handler>;

/// The MCP client: discovery and pooled tool calls. Cheap to share behind an `Arc`.
pub struct McpClient {
    egress: Egress,
    pool: pool::Pool,
    changes: mpsc::UnboundedSender<ToolsChanged>,
    info: ClientConfig,
}

impl McpClient {
    /// A client and the receiver of tool-list changes seen on live sessions. Must be
    /// called inside a tokio runtime (it starts the pool's idle reaper).
    pub fn new(egress: Egress, settings: PoolSettings) -> (Arc<Self>, mpsc::UnboundedReceiver<ToolsChanged>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("chatterfly", env!("CARGO_PKG_VERSION")),
        );
        let client = Arc::new(Self {
            egress,
            pool: pool::Pool::new(settings),
            changes: tx,
            info,
        });
        pool::Pool::start_reaper(Arc::downgrade(&client));
        (client, rx)
    }

    /// Opens a fresh session, reads the server's identity and every tool, and closes it.
    pub async fn discover(&self, target: &Target) -> Result<Discovery, McpError> {
        let handler = Handler::new(self.info.clone(), None, target);
        let (session, transport, _) = self.open(target, handler).await?;
        let result = self.describe(&session, transport, target).await;
        // closing (a DELETE of the session) need not hold up the answer
        tokio::spawn(async move {
            let _ = session.cancel().await;
        });
        result
    }

    async fn describe(
        &self,
        session: &Session,
        transport: McpTransport,
        target: &Target,
    ) -> Result<Discovery, McpError> {
        let info = session
            .peer_info()
            .ok_or_else(|| McpError::Protocol("the MCP server sent no initialize result".into()))?;
        let server = McpServerInfo {
            name: info.server_info.as_ref().map(|i| i.name.clone()).unwrap_or_default(),
            title: info.server_info.as_ref().and_then(|i| i.title.clone()),
            version: info.server_info.as_ref().map(|i| i.version.clone()).unwrap_or_default(),
            protocol_version: info.protocol_version.as_str().to_owned(),
            instructions: info.instructions.clone(),
        };
        let tools = within(target.limits.total_timeout, list_tools(session.peer())).await?;
        Ok(Discovery {
            server,
            transport,
            tools,
        })
    }

    /// Calls one tool on a pooled session of the connection `connection_id`. A session the
    /// server dropped (restart, expiry, closed stream) is replaced and the call sent once
    /// more; rmcp itself re-initializes a Streamable HTTP session the server answers 404
    /// for.
    pub async fn call(
        &self,
        connection_id: &str,
        target: &Target,
        tool: &str,
        args: Map<String, Value>,
    ) -> Result<Value, McpError> {
        self.call_then(connection_id, target, tool, args, |v| v).await
    }

    /// [`McpClient::call`], with `finish` applied to the output on the sessions' runtime
    /// (where the answer was parsed): the caller's work on a large answer (redacting it,
    /// measuring it) stays on the threads MCP work is confined to.
    pub async fn call_then<T: Send + 'static>(
        &self,
        connection_id: &str,
        target: &Target,
        tool: &str,
        args: Map<String, Value>,
        finish: impl FnOnce(Value) -> T + Clone + Send + 'static,
    ) -> Result<T, McpError> {
        let key = pool::Key::new(connection_id, target);
        for attempt in 0..2 {
            let lease = self
                .pool
                .session(&key, || self.open_pooled(connection_id, target))
                .await?;
            let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args.clone());
            if let Some(direct) = lease.direct.as_ref().filter(|d| d.ready()) {
                let limit = target.limits.total_timeout;
                let outcome = tokio::time::timeout(limit, direct.call(&lease.peer, params.clone()))
                    .await
                    .map_err(|_| McpError::Timeout(limit))?;
                let url = &target.url;
                match outcome {
                    direct::Outcome::Answered(result, len) if turns::Turns::needed(len) => {
                        // a large answer is turned into the output on the MCP threads
                        let finish = finish.clone();
                        return on_sessions_runtime(async move { finish(call_output(result)) })
                            .await
                            .map_err(|e| McpError::Protocol(format!("the MCP call failed: {e}")));
                    }
                    direct::Outcome::Answered(result, _) => return Ok(finish.clone()(call_output(result))),
                    direct::Outcome::Refused(error) => {
                        return Err(service_error(ServiceError::McpError(error), url, target.limits));
                    }
                    direct::Outcome::TooLarge => {
                        return Err(McpError::Egress(chatterfly_egress::EgressError::TooLarge {
                            limit: target.limits.max_response_bytes,
                        }));
                    }
                    direct::Outcome::Failed(why) => {
                        return Err(McpError::Protocol(format!("the MCP call failed: {why}")));
                    }
                    direct::Outcome::Lost(e) => {
                        // as a session whose transport failed under rmcp: closed, and the
                        // call sent once more on a new one if this one was not new
                        let err = classify_chain(&e, url, target.limits).unwrap_or_else(|| {
                            McpError::Protocol(format!("the MCP exchange failed: {}", plain_reason(&e)))
                        });
                        self.pool.forget(&key, lease.generation).await;
                        if !lease.fresh && attempt == 0 {
                            tracing::debug!(connection = connection_id, error = %err, "MCP session lost; opening a new one");
                            continue;
                        }
                        return Err(err);
                    }
                    direct::Outcome::Expired => {
                        // the server did not take the call: a new session, and the call sent
                        // once more on it (as rmcp re-initializes and sends it again)
                        self.pool.forget(&key, lease.generation).await;
                        if attempt == 0 {
                            continue;
                        }
                        return Err(McpError::Protocol(
                            "the MCP server did not know the session, again after a new one was opened \
                             (the call was sent on each)"
                                .into(),
                        ));
                    }
                    // not established: rmcp sends it
                    direct::Outcome::NotReady => {}
                }
            }
            // the answer is parsed, and turned into the output, on the sessions' runtime
            let peer = lease.peer.clone();
            let finish = finish.clone();
            let calling = on_sessions_runtime(async move {
                peer.call_tool(params)
                    .await
                    .map(|r| finish(call_output(turns::redeem(r))))
            });
            let result = tokio::time::timeout(target.limits.total_timeout, calling).await;
            match result {
                Err(_) => return Err(McpError::Timeout(target.limits.total_timeout)),
                Ok(Err(e)) => return Err(McpError::Protocol(format!("the MCP call failed: {e}"))),
                Ok(Ok(Ok(output))) => return Ok(output),
                Ok(Ok(Err(e))) => {
                    // the session itself failed (stream closed, server gone or restarted),
                    // as opposed to an answer the server gave
                    let session_lost = matches!(e, ServiceError::TransportClosed | ServiceError::TransportSend(_));
                    // rmcp re-initializes a forgotten session and sends the call again once;
                    // forgotten again, the call is not sent a third and fourth time here
                    let forgotten_twice = session_lost && session_expired_in(&e);
                    let err = if forgotten_twice {
                        McpError::Protocol(
                            "the MCP server did not know the session, again after a new one was opened \
                             (the call was sent on each)"
                                .into(),
                        )
                    } else {
                        service_error(e, &target.url, target.limits)
                    };
                    if session_lost {
                        self.pool.forget(&key, lease.generation).await;
                    }
                    if session_lost && !forgotten_twice && !lease.fresh && attempt == 0 {
                        tracing::debug!(connection = connection_id, error = %err, "MCP session lost; opening a new one");
                        continue;
                    }
                    return Err(err);
                }
            }
        }
        Err(McpError::Protocol("the MCP session could not be re-established".into()))
    }

    async fn open_pooled(
        &self,
        connection_id: &str,
        target: &Target,
    ) -> Result<(Session, Option<direct::Direct>), McpError> {
        let handler = Handler::new(
            self.info.clone(),
            Some((Arc::from(connection_id), self.changes.clone())),
            target,
        );
        self.open(target, handler).await.map(|(s, _, d)| (s, d))
    }

    /// Opens an initialized session with the target's transport (`auto`: Streamable HTTP,
    /// then SSE), on the sessions' own runtime ([`sessions_runtime`]): the session's tasks
    /// (the transport that reads and parses every message, and the loop that hands them
    /// out) run there, so a server's large answers are parsed on its threads and never hold
    /// up the server's workers.
    async fn open(&self, target: &Target, handler: Handler) -> Result<Opened, McpError> {
        let egress = self.egress.clone();
        let target = target.clone();
        on_sessions_runtime(async move { open_session(&egress, &target, handler).await })
            .await
            .unwrap_or_else(|e| Err(McpError::Protocol(format!("opening the MCP session failed: {e}"))))
    }

    /// Closes every pooled session (shutdown, tests).
    pub async fn close_all(&self) {
        self.pool.clear().await;
    }

    /// How many sessions are open.
    pub async fn open_sessions(&self) -> usize {
        self.pool.len().await
    }
}

/// The runtime MCP sessions run on: half the cores (at least one thread), built on first
/// use and kept for the life of the process. `None` when its threads cannot be started;
/// sessions then run on the caller's runtime, as they would without it.
fn sessions_runtime() -> Option<&'static tokio::runtime::Handle> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("chatterfly-mcp")
                .enable_all()
                .build()
                .inspect_err(|e| tracing::warn!(error = %e, "cannot start the MCP sessions' runtime; sessions run on the server's"))
                .ok()
        })
        .as_ref()
        .map(tokio::runtime::Runtime::handle)
}

/// Runs `work` on the sessions' runtime (or here, when it has none) and waits for it, in
/// the caller's span (the request's id stays on its log lines); if the caller stops
/// waiting, the work is stopped too, as it would be if it ran here.
async fn on_sessions_runtime<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    match sessions_runtime() {
        Some(runtime) => {
            let work = tracing::Instrument::in_current_span(work);
            let mut task = AbortOnDrop(runtime.spawn(work));
            (&mut task.0).await
        }
        None => Ok(work.await),
    }
}

/// An opened session, the transport it speaks, and (Streamable HTTP) what calls sent past
/// rmcp need ([`direct`]).
type Opened = (Session, McpTransport, Option<direct::Direct>);

async fn open_session(egress: &Egress, target: &Target, handler: Handler) -> Result<Opened, McpError> {
    egress.check_target(&target.url).await?;
    match target.transport {
        McpTransport::StreamableHttp => {
            let (session, direct) = open_streamable(egress, target, handler).await?;
            Ok((session, McpTransport::StreamableHttp, Some(direct)))
        }
        McpTransport::Sse => Ok((open_sse(egress, target, handler).await?, McpTransport::Sse, None)),
        McpTransport::Auto => match open_streamable(egress, target, handler.clone()).await {
            Ok((s, direct)) => Ok((s, McpTransport::StreamableHttp, Some(direct))),
            Err(first) if first.falls_back() => match open_sse(egress, target, handler).await {
                Ok(s) => Ok((s, McpTransport::Sse, None)),
                Err(McpError::Protocol(second)) => Err(McpError::Protocol(format!(
                    "the server speaks neither MCP transport: Streamable HTTP: {first}; HTTP+SSE: {second}"
                ))),
                Err(other) => Err(other),
            },
            Err(first) => Err(first),
        },
    }
}

async fn open_streamable(
    egress: &Egress,
    target: &Target,
    handler: Handler,
) -> Result<(Session, direct::Direct), McpError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(target.url.as_str());
    config.auth_header = target.bearer.clone();
    config.max_sse_event_size = target.limits.max_response_bytes;
    config.max_json_response_size = target.limits.max_response_bytes;
    config.reinit_on_expired_session = true;
    let refusal = guarded_http::Refusal::new(&target.url);
    let guarded = guarded_http::GuardedHttp {
        client: egress.streaming_client(target.workspace.as_deref())?,
        refusal: refusal.clone(),
        allowance: peer_requests::Allowance::default(),
        turns: Some(turns_of(egress, target)),
        own_calls: target.workspace.is_some(),
        seen: direct::Seen::default(),
    };
    let mut limits = rmcp::transport::streamable_http_client::StreamableHttpResponseLimits::default();
    limits.max_sse_event_size = config.max_sse_event_size;
    limits.max_json_response_size = config.max_json_response_size;
    limits.max_error_response_size = config.max_error_response_size;
    let direct = direct::Direct {
        http: guarded.clone(),
        uri: Arc::from(target.url.as_str()),
        auth: target.bearer.clone(),
        limits,
        handler: handler.clone(),
    };
    let transport = StreamableHttpClientTransport::with_client(guarded, config);
    let session = within(target.limits.total_timeout, async {
        handler.serve(transport).await.map_err(|e| {
            let err = init_error(e, &target.url, target.limits);
            match (refusal.status(), err) {
                (Some(code @ (401 | 403)), _) => McpError::Unauthorized(code),
                (Some(code), McpError::Protocol(_)) => McpError::Protocol(
                    format!(
                        "initialize failed: the MCP server answered HTTP {code} {}",
                        http::StatusCode::from_u16(code)
                            .ok()
                            .and_then(|s| s.canonical_reason())
                            .unwrap_or("")
                    )
                    .trim_end()
                    .to_owned(),
                ),
                // the server was not reached (refused, timed out, not resolved): said so
                (None, McpError::Protocol(_)) if let Some(why) = refusal.unreached() => McpError::Egress(why),
                (_, err) => err,
            }
        })
    })
    .await?;
    Ok((session, direct))
}

async fn open_sse(egress: &Egress, target: &Target, handler: Handler) -> Result<Session, McpError> {
    let auth = match &target.bearer {
        None => None,
        Some(t) => {
            let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| McpError::Protocol("the bearer token cannot be sent in a header".into()))?;
            v.set_sensitive(true);
            Some(v)
        }
    };
    within(target.limits.total_timeout, async {
        let transport = sse::SseTransport::connect(
            egress.streaming_client(target.workspace.as_deref())?,
            &target.url,
            auth,
            target.limits.max_response_bytes,
            target.limits.total_timeout,
            Some(turns_of(egress, target)),
        )
        .await
        .map_err(|e| sse_error(e, &target.url))?;
        handler
            .serve(transport)
            .await
            .map_err(|e| init_error(e, &target.url, target.limits))
    })
    .await
}

/// The lane a target's large messages wait in: its workspace's.
fn turns_of(egress: &Egress, target: &Target) -> turns::Turns {
    let lane = target.workspace.clone().unwrap_or_else(|| Arc::from("mcp"));
    turns::Turns::new(egress.heavy().clone(), lane)
}

async fn within<T>(limit: Duration, f: impl Future<Output = Result<T, McpError>>) -> Result<T, McpError> {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or(Err(McpError::Timeout(limit)))
}

/// Every tool, following `nextCursor`, bounded in pages and tools.
async fn list_tools(peer: &Peer<RoleClient>) -> Result<Vec<ToolDef>, McpError> {
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen = HashSet::new();
    let mut total = 0usize;
    for _ in 0..MAX_PAGES {
        let params = PaginatedRequestParams::default().with_cursor(cursor.take());
        let page = peer
            .list_tools(Some(params))
            .await
            .map_err(|e| McpError::Protocol(format!("tools/list failed: {}", short(&e.to_string()))))?;
        for tool in page.tools {
            let mut t = ToolDef::from_rmcp(tool);
            bound_tool(&mut t);
            total = total.saturating_add(chatterfly_domain::operation::json_len(&t.to_json()));
            if total > MAX_TOOLS_BYTES {
                return Err(McpError::Protocol(format!(
                    "the server's tool list is larger than {MAX_TOOLS_BYTES} bytes"
                )));
            }
            tools.push(t);
        }
        if tools.len() > MAX_TOOLS {
            return Err(McpError::Protocol(format!(
                "the server lists more than {MAX_TOOLS} tools"
            )));
        }
        match page.next_cursor {
            None => return Ok(tools),
            Some(c) => {
                if !seen.insert(c.clone()) {
                    return Err(McpError::Protocol("the server repeated a tools/list cursor".into()));
                }
                cursor = Some(c);
            }
        }
    }
    Err(McpError::Protocol(format!(
        "the server's tool list has more than {MAX_PAGES} pages"
    )))
}

/// The parts of a server URL that may be credentials, for the log's redaction while the
/// session lives (the MCP library logs the URL whole when a session fails): the password,
/// query values of 8 characters or more (raw and decoded), and path segments that look
/// like keys (20 characters or more, with letters and digits: hosted MCP servers put
/// tokens there).
fn url_secrets(url: &Url) -> Vec<String> {
    let mut out: Vec<String> = url.password().map(str::to_owned).into_iter().collect();
    if let Some(query) = url.query() {
        out.extend(
            query
                .split('&')
                .filter_map(|pair| pair.split_once('=').map(|(_, v)| v.to_owned())),
        );
        out.extend(url.query_pairs().map(|(_, v)| v.into_owned()));
    }
    if let Some(segments) = url.path_segments() {
        out.extend(
            segments
                .filter(|s| {
                    s.len() >= 20 && s.bytes().any(|b| b.is_ascii_digit()) && s.bytes().any(|b| b.is_ascii_alphabetic())
                })
                .map(str::to_owned),
        );
    }
    out.retain(|s| s.len() >= 8);
    out
}

/// The forms in which a server could echo the session's token: as is, and base64 of it and
/// of the Authorization header that carried it.
fn scrub_forms(token: &str) -> Vec<String> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let header = format!("Bearer {token}");
    let mut out = vec![
        token.to_owned(),
        STANDARD_NO_PAD.encode(token),
        URL_SAFE_NO_PAD.encode(token),
        STANDARD_NO_PAD.encode(&header),
    ];
    out.retain(|f| f.len() >= 4);
    out.sort_by_key(|f| std::cmp::Reverse(f.len()));
    out
}

/// Every text of a tool announced on a live session (not its name), without the session's
/// token.
fn scrub_tool(t: &mut ToolDef, forms: &[String]) {
    fn text(s: &str, forms: &[String]) -> String {
        let mut out = s.to_owned();
        for f in forms {
            if out.contains(f.as_str()) {
                out = out.replace(f.as_str(), "[REDACTED]");
            }
        }
        out
    }
    fn value(v: &mut Value, forms: &[String]) {
        match v {
            Value::String(s) => *s = text(s, forms),
            Value::Array(a) => a.iter_mut().for_each(|x| value(x, forms)),
            Value::Object(o) => {
                let keys: Vec<String> = o.keys().cloned().collect();
                for k in keys {
                    if let Some(mut x) = o.remove(&k) {
                        value(&mut x, forms);
                        o.insert(text(&k, forms), x);
                    }
                }
            }
            _ => {}
        }
    }
    if forms.is_empty() {
        return;
    }
    for s in [&mut t.title, &mut t.description].into_iter().flatten() {
        *s = text(s, forms);
    }
    value(&mut t.input_schema, forms);
    if let Some(o) = &mut t.output_schema {
        value(o, forms);
    }
    if let Some(a) = &mut t.annotations {
        value(a, forms);
    }
}

#[cfg(test)]
mod scrub_tests {
    use super::*;

    #[test]
    fn a_urls_keys_are_held_and_its_plain_words_are_not() {
        let Ok(url) = Url::parse(
            "https://u:pa55w0rd-long@mcp.example.com/servers/0123456789abcdefghij1/mcp/modelcontextprotocol?api_key=k%2Fey-12345&format=json&flag",
        ) else {
            panic!("a URL");
        };
        let held = url_secrets(&url);
        for want in ["pa55w0rd-long", "k%2Fey-12345", "k/ey-12345", "0123456789abcdefghij1"] {
            assert!(held.iter().any(|h| h == want), "{want} in {held:?}");
        }
        for not in ["json", "servers", "modelcontextprotocol", "mcp.example.com"] {
            assert!(!held.iter().any(|h| h == not), "{not} in {held:?}");
        }
    }

    #[test]
    fn announced_tools_lose_the_session_token() {
        let token = "sess-token-0123456789";
        let forms = scrub_forms(token);
        let mut t = ToolDef {
            name: "t".into(),
            title: Some(format!("about {token}")),
            description: Some(format!(
                "auth={} b64={}",
                token,
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("Bearer {token}"))
            )),
            input_schema: json!({"type": "object", "properties": {token: {"default": token}}}),
            output_schema: None,
            annotations: Some(json!({"x": [token]})),
        };
        scrub_tool(&mut t, &forms);
        let all = format!(
            "{:?} {:?} {} {:?}",
            t.title, t.description, t.input_schema, t.annotations
        );
        assert!(!all.contains(token) && !all.contains("c2Vzcy10b2tlbi0w"), "{all}");
        assert!(all.contains("[REDACTED]"));
    }
}

/// Cuts what a server says of one tool to what a connection keeps: the description to the
/// stored length, schemas past what a tool may hold left out (a permissive input schema).
fn bound_tool(t: &mut ToolDef) {
    use chatterfly_domain::operation::{MAX_DESCRIPTION, MAX_SCHEMA_BYTES, json_len};
    for text in [&mut t.description, &mut t.title].into_iter().flatten() {
        if text.len() > MAX_DESCRIPTION {
            let mut end = MAX_DESCRIPTION;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
    }
    if json_len(&t.input_schema) > MAX_SCHEMA_BYTES {
        t.input_schema = json!({"type": "object", "description": "not kept: the server's schema is too large"});
    }
    if t.output_schema.as_ref().is_some_and(|o| json_len(o) > MAX_SCHEMA_BYTES) {
        t.output_schema = None;
    }
    if t.annotations.as_ref().is_some_and(|a| json_len(a) > MAX_SCHEMA_BYTES) {
        t.annotations = None;
    }
}

/// Finds what went wrong inside an rmcp error chain.
fn classify_chain(
    e: &(dyn std::error::Error + 'static),
    url: &Url,
    limits: chatterfly_egress::Limits,
) -> Option<McpError> {
    if let Some(g) = Egress::classify(e, url) {
        return Some(McpError::Egress(g));
    }
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<AuthRequiredError>() {
            return Some(McpError::Unauthorized(401));
        }
        if s.is::<InsufficientScopeError>() {
            return Some(McpError::Unauthorized(403));
        }
        if let Some(StreamableHttpError::<reqwest::Error>::ResponseBodyTooLarge { .. }) = s.downcast_ref() {
            return Some(McpError::Egress(EgressError::TooLarge {
                limit: limits.max_response_bytes,
            }));
        }
        if let Some(sse::SseError::EventTooLarge(n)) = s.downcast_ref() {
            return Some(McpError::Egress(EgressError::TooLarge { limit: *n }));
        }
        if let Some(sse::SseError::OtherOrigin(o)) = s.downcast_ref() {
            return Some(McpError::Egress(EgressError::Blocked {
                host: o.clone(),
                addr: None,
                reason: "another origin than the MCP server URL (the SSE message endpoint must stay on it)",
            }));
        }
        if let Some(sse::SseError::Status(401 | 403) | sse::SseError::PostStatus(401 | 403)) = s.downcast_ref() {
            return Some(McpError::Unauthorized(401));
        }
        // rmcp reports a refusal of the Streamable HTTP POST as text (`HTTP 401 …`)
        if let Some((code @ (401 | 403), _)) = http_status_in(&s.to_string()) {
            return Some(McpError::Unauthorized(code));
        }
        source = s.source();
    }
    None
}

/// Whether `e` is rmcp's "session expired": the server did not know the session (a 404,
/// or the TypeScript SDK's 400 with an id-less error), after rmcp had already opened a new
/// one and sent the request again. The typed error is often flattened into text inside
/// rmcp's worker, so its text is looked for too.
fn session_expired_in(e: &(dyn std::error::Error + 'static)) -> bool {
    let expired = StreamableHttpError::<reqwest::Error>::SessionExpired.to_string();
    let mut source = Some(e);
    while let Some(s) = source {
        if matches!(
            s.downcast_ref(),
            Some(StreamableHttpError::<reqwest::Error>::SessionExpired)
        ) || s.to_string().contains(&expired)
        {
            return true;
        }
        source = s.source();
    }
    false
}

fn init_error(e: ClientInitializeError, url: &Url, limits: chatterfly_egress::Limits) -> McpError {
    if let Some(found) = classify_chain(&e, url, limits) {
        return found;
    }
    match e {
        ClientInitializeError::JsonRpcError(d) => McpError::Rpc {
            code: d.code.0,
            message: short(&d.message),
        },
        other => McpError::Protocol(format!("initialize failed: {}", plain_reason(&other))),
    }
}

/// The HTTP status an rmcp error reports for the server's answer (`HTTP 401 …`), found in
/// the error's text: the typed error is flattened into a string inside rmcp's worker.
fn http_status_in(text: &str) -> Option<(u16, String)> {
    let mut rest = text;
    while let Some(i) = rest.find("HTTP ") {
        let after = &rest[i + 5..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if digits.len() == 3
            && let Ok(code) = digits.parse::<u16>()
        {
            let reason = http::StatusCode::from_u16(code)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            return Some((code, reason.to_owned()));
        }
        rest = after;
    }
    None
}

/// What went wrong, for a person: the server's HTTP status when there was one, else the
/// innermost error's own words when they are plain (no Rust type names, no server text).
fn plain_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut source = Some(e);
    let mut innermost = e.to_string();
    while let Some(s) = source {
        text.push_str(&s.to_string());
        text.push('\n');
        innermost = s.to_string();
        source = s.source();
    }
    if let Some((code, reason)) = http_status_in(&text) {
        return format!("the MCP server answered HTTP {code} {reason}")
            .trim_end()
            .to_owned();
    }
    let plain = innermost.len() <= 200
        && !innermost.contains("::")
        && !innermost.contains('<')
        && !innermost.contains('(')
        && !innermost.contains('"');
    if plain {
        innermost
    } else {
        "the server's answer is not MCP".into()
    }
}

fn sse_error(e: sse::SseError, url: &Url) -> McpError {
    classify_chain(&e, url, chatterfly_egress::Limits::default())
        .unwrap_or_else(|| McpError::Protocol(short(&e.to_string())))
}

fn service_error(e: ServiceError, url: &Url, limits: chatterfly_egress::Limits) -> McpError {
    match e {
        // an answer the server sent this call that could not be used ([`post`])
        ServiceError::McpError(d) if let Some(failed) = post::take_failure(&d) => classify_chain(&failed, url, limits)
            .unwrap_or_else(|| McpError::Protocol(format!("the MCP call failed: {}", plain_reason(&failed)))),
        ServiceError::McpError(d) => McpError::Rpc {
            code: d.code.0,
            message: short(&d.message),
        },
        ServiceError::Timeout { timeout } => McpError::Timeout(timeout),
        ServiceError::TransportClosed => McpError::Protocol("the MCP server closed the session".into()),
        other => classify_chain(&other, url, limits)
            .unwrap_or_else(|| McpError::Protocol(format!("the MCP exchange failed: {}", plain_reason(&other)))),
    }
}

fn short(s: &str) -> String {
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s.to_owned()
    }
}

/// Turns a server's tools into operations: the operation name is the tool name when it is
/// a valid operation name, else the name with every other character replaced by `_` (made
/// unique); the exact name is kept in `mcp_tool` for the call. Returns warnings for names
/// changed and schemas replaced.
pub fn operations_from_tools(tools: &[ToolDef]) -> (Vec<OperationInput>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut taken: HashSet<String> = tools
        .iter()
        .filter(|t| t.name.parse::<OperationName>().is_ok())
        .map(|t| t.name.clone())
        .collect();
    let mut ops = Vec::with_capacity(tools.len());
    for t in tools {
        if chatterfly_domain::check_mcp_tool_name(&t.name).is_err() {
            warnings.push(format!(
                "tool `{}` was left out: its name is empty, too long or has control characters",
                short(&t.name.escape_debug().to_string())
            ));
            continue;
        }
        let name = if t.name.parse::<OperationName>().is_ok() {
            t.name.clone()
        } else {
            let base: String = t
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                        c
                    } else {
                        '_'
                    }
                })
                .take(120)
                .collect();
            let mut candidate = base.clone();
            let mut n = 2;
            while !taken.insert(candidate.clone()) {
                candidate = format!("{base}_{n}");
                n += 1;
            }
            warnings.push(format!(
                "tool `{}` is called `{candidate}` here (its name has characters tool names cannot have)",
                short(&t.name)
            ));
            candidate
        };
        let description = t.description.clone().or_else(|| t.title.clone()).unwrap_or_default();
        let input_schema = usable_schema(&t.input_schema, true).unwrap_or_else(|| {
            warnings.push(format!(
                "tool `{name}`: its input schema is not a valid JSON Schema object; arguments are passed unchecked"
            ));
            json!({"type": "object"})
        });
        let output_schema = match &t.output_schema {
            None => None,
            Some(s) => usable_schema(s, false).or_else(|| {
                warnings.push(format!(
                    "tool `{name}`: its output schema is not a valid JSON Schema and was left out"
                ));
                None
            }),
        };
        ops.push(OperationInput {
            name,
            method: None,
            path: None,
            description: Some(truncate_bytes(
                description,
                chatterfly_domain::operation::MAX_DESCRIPTION,
            )),
            input_schema: Some(input_schema),
            output_schema,
            request: None,
            mcp_tool: Some(t.name.clone()),
        });
    }
    (ops, warnings)
}

fn usable_schema(schema: &Value, input: bool) -> Option<Value> {
    let probe = OperationInput {
        name: "probe".into(),
        method: None,
        path: None,
        description: None,
        input_schema: Some(if input {
            schema.clone()
        } else {
            json!({"type": "object"})
        }),
        output_schema: if input { None } else { Some(schema.clone()) },
        request: None,
        mcp_tool: None,
    };
    chatterfly_domain::Operation::parse(probe, chatterfly_domain::OperationKind::McpTool)
        .ok()
        .map(|_| schema.clone())
}

fn truncate_bytes(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s.replace('\0', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> ToolDef {
        ToolDef {
            name: name.into(),
            title: None,
            description: Some("d".into()),
            input_schema: json!({"type": "object", "properties": {}}),
            output_schema: None,
            annotations: None,
        }
    }

    #[test]
    fn tool_names_map_to_operation_names() {
        let (ops, warnings) = operations_from_tools(&[
            tool("get-roots-list"),
            tool("a.b"),
            tool("say hi"),
            tool("say_hi"),
            tool(""),
        ]);
        let names: Vec<_> = ops.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["get-roots-list", "a.b", "say_hi_2", "say_hi"]);
        assert_eq!(ops[2].mcp_tool.as_deref(), Some("say hi"));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn bad_schemas_are_replaced_with_warnings() {
        let mut t = tool("x");
        t.input_schema = json!({"type": "string"});
        t.output_schema = Some(json!({"type": 12}));
        let (ops, warnings) = operations_from_tools(&[t]);
        assert_eq!(ops[0].input_schema, Some(json!({"type": "object"})));
        assert_eq!(ops[0].output_schema, None);
        assert_eq!(warnings.len(), 2);
    }
}
