//! `tools/call` sent past rmcp's message loop, on the caller's own task.
//!
//! Through rmcp a call crossed three tasks and two threads before its POST was sent (the
//! server's worker handed it to the MCP sessions' runtime, whose task handed it to the
//! session's message loop, which handed it to the transport's worker) and as many on the
//! way back, and its answer was parsed twice over as an untagged enum of every result.
//! Timed on this project's machines that was about two thirds of the ~330 µs Chatterfly
//! added to each call (docs/benchmarks.md). So once rmcp has established a Streamable HTTP
//! session ([`Seen`]: the session id and protocol version it sent with
//! `notifications/initialized`), a call is POSTed here with the session's headers, by the
//! same reader as before ([`GuardedHttp::post_call`], then the same bounds:
//! [`GuardedHttp::finish_post`]), and its answer read here:
//! - a JSON body or the call's event stream, with large answers parsed at the large-answer
//!   gate, in the workspace's lane, as before ([`crate::turns`]);
//! - requests the server sends meanwhile are answered as rmcp's default client answers
//!   them (`ping`; `roots/list`: none; an elicitation: declined; anything else: method not
//!   found), within the session's allowance ([`crate::peer_requests`]);
//! - `notifications/tools/list_changed` lists the tools again, as on rmcp's loop;
//! - a stream that ends with event ids and no answer is resumed (`GET` with
//!   `Last-Event-ID`), as rmcp does.
//!
//! A session the server forgot (`404`, and the TypeScript SDK's `400`) is replaced by a new
//! one and the call sent once more, as rmcp did. What this reader does not handle goes
//! through rmcp: a session not established yet, and protocol versions from `2026-07-28`
//! on (requests carry headers taken from the tool's schema). Sessions without a workspace
//! (tests, tools) call through rmcp.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use http::{HeaderName, HeaderValue};
use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientJsonRpcMessage, ClientNotification, ClientRequest, ClientResult,
    ElicitResult, ElicitationAction, ErrorCode, ErrorData, JsonRpcError, JsonRpcMessage, JsonRpcRequest,
    JsonRpcResponse, JsonRpcVersion2_0, Request, RequestId,
};
use rmcp::service::Peer;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use serde_json::value::RawValue;

use crate::guarded_http::GuardedHttp;
use crate::turns::Turns;

const PROTOCOL_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// The protocol versions whose calls are sent here: those whose requests carry no header
/// but the session's and the version's.
const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The most times a call's event stream is resumed.
const MAX_RESUMES: usize = 3;
/// The longest wait a server's `retry` field asks for before a resume (the call's timeout
/// bounds the whole).
const MAX_RETRY: Duration = Duration::from_secs(5);

/// How much of a call's event stream is read on the calling task (event data, and
/// [`EVENT_COST`] per event), and how long an event is waited for there; the rest is read
/// on the MCP sessions' runtime. A server's answer usually follows its answer head within
/// microseconds; a 10 MB event takes tens of milliseconds to arrive and be framed, which
/// the server's workers must not spend (measured: `/api/health`'s p99 went from 23–31 to
/// 75–148 ms under a flood of them before the wait was bounded).
const INLINE_BYTES: usize = 1024 * 1024;
const INLINE_WAIT: Duration = Duration::from_millis(5);
const EVENT_COST: usize = 64;

type Events =
    futures::stream::BoxStream<'static, Result<sse_stream::Sse, rmcp::transport::streamable_http_client::SseError>>;

/// How far a call's event stream has been read.
#[derive(Default)]
struct Reading {
    /// What was read, as counted for [`INLINE_BYTES`].
    read: usize,
    /// Whether the rest is read on the sessions' runtime.
    away: bool,
    last_event: Option<String>,
    retry: Option<Duration>,
    resumes: usize,
}

/// Ids of calls sent here: far above rmcp's own (counted from 0 per session), below the
/// largest integer a JavaScript server reads exactly.
static NEXT_ID: AtomicI64 = AtomicI64::new(1 << 50);

/// A session as rmcp established it.
#[derive(Clone)]
pub(crate) struct Established {
    session: Option<Arc<str>>,
    version: HeaderValue,
}

/// The session as rmcp last established it; empty before that, after a session the
/// server forgot, and for protocol versions not in [`VERSIONS`].
#[derive(Clone, Default)]
pub(crate) struct Seen(Arc<Mutex<Option<Established>>>);

impl Seen {
    /// Notes a POST rmcp sends: `notifications/initialized` carries the session id (none
    /// for a server without sessions) and the protocol version the session was opened with.
    pub(crate) fn note(
        &self,
        message: &ClientJsonRpcMessage,
        session: Option<&Arc<str>>,
        headers: &HashMap<HeaderName, HeaderValue>,
    ) {
        let JsonRpcMessage::Notification(n) = message else {
            return;
        };
        if !matches!(n.notification, ClientNotification::InitializedNotification(_)) {
            return;
        }
        let version = headers
            .get(&PROTOCOL_HEADER)
            .filter(|v| VERSIONS.iter().any(|known| v.as_bytes() == known.as_bytes()))
            .cloned();
        if let Ok(mut slot) = self.0.lock() {
            *slot = version.map(|version| Established {
                session: session.cloned(),
                version,
            });
        }
    }

    fn get(&self) -> Option<Established> {
        self.0.lock().ok().and_then(|s| s.clone())
    }

    /// Forgets `session` (the server no longer knows it), unless rmcp has established
    /// another meanwhile.
    fn forget(&self, session: &Option<Arc<str>>) {
        if let Ok(mut slot) = self.0.lock()
            && slot.as_ref().is_some_and(|e| e.session == *session)
        {
            *slot = None;
        }
    }
}

/// What a call sent here came to.
pub(crate) enum Outcome {
    /// The server's answer, and the length of the text it was parsed from.
    Answered(CallToolResult, usize),
    /// Not sent: the session is not established. rmcp sends the call.
    NotReady,
    /// The server no longer knows the session (and did not take the call).
    Expired,
    /// The POST got no answer: the session's connection failed (as rmcp's transport
    /// failing).
    Lost(StreamableHttpError<reqwest::Error>),
    /// The server refused the call with a JSON-RPC error.
    Refused(ErrorData),
    /// An event of a resumed stream was over the limit.
    TooLarge,
    /// The call reached the server and its answer could not be used, or its event stream
    /// broke off.
    Failed(Cow<'static, str>),
}

/// Whether an event stream failed on an event over its limit (rmcp's bounded stream says so
/// in its text only).
fn too_large(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.to_string().contains("exceeded the maximum size") {
            return true;
        }
        source = s.source();
    }
    false
}

/// Tells the server a call sent here was given up (its caller hung up, or it timed out),
/// as rmcp does for its calls: dropped before the call ended, it POSTs
/// `notifications/cancelled` in a task of its own.
struct Cancel {
    direct: Direct,
    session: Established,
    id: RequestId,
    armed: bool,
}

impl Drop for Cancel {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let notice = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": self.id, "reason": "the caller stopped waiting"}});
        let (Ok(message), Ok(runtime)) = (
            serde_json::from_value::<ClientJsonRpcMessage>(notice),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let d = self.direct.clone();
        let session = self.session.session.clone();
        let headers = HashMap::from([(PROTOCOL_HEADER, self.session.version.clone())]);
        runtime.spawn(async move {
            let sent = d.http.post_message_with_response_limits(
                d.uri.clone(),
                message,
                session,
                d.auth.clone(),
                headers,
                d.limits,
            );
            let _ = tokio::time::timeout(Duration::from_secs(5), sent).await;
        });
    }
}

/// What a session's calls sent here need.
#[derive(Clone)]
pub(crate) struct Direct {
    pub(crate) http: GuardedHttp,
    pub(crate) uri: Arc<str>,
    pub(crate) auth: Option<String>,
    pub(crate) limits: StreamableHttpResponseLimits,
    pub(crate) handler: crate::Handler,
}

/// The fields of a message that say what it is; the result is kept unparsed until it is
/// known to be the call's.
#[derive(serde::Deserialize)]
struct Incoming<'a> {
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default, borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<ErrorData>,
}

/// What one event's message meant for the call.
enum Read {
    Answer(CallToolResult),
    Refusal(ErrorData),
    /// A request the server sent: its id and method.
    Asked(RequestId, String),
    ToolsChanged,
    Other,
    Unusable(&'static str),
}

fn read(data: &str, call: &RequestId) -> Read {
    let Ok(m) = serde_json::from_str::<Incoming<'_>>(data) else {
        return Read::Other;
    };
    match (m.id, m.method, m.result, m.error) {
        (Some(id), Some(method), _, _) => Read::Asked(id, method.into_owned()),
        (None, Some(method), _, _) => {
            if method == "notifications/tools/list_changed" {
                Read::ToolsChanged
            } else {
                Read::Other
            }
        }
        (Some(id), None, Some(result), _) if id == *call => match crate::turns::sparse_result(result.get()) {
            Ok(r) => Read::Answer(r),
            Err(_) => Read::Unusable("the answer to the call is not a tool result"),
        },
        (Some(id), None, None, Some(error)) if id == *call => Read::Refusal(error),
        _ => Read::Other,
    }
}

impl Direct {
    /// Whether calls can be sent here now.
    pub(crate) fn ready(&self) -> bool {
        self.http.own_calls && self.http.seen.get().is_some()
    }

    /// Sends the call and reads its answer. `peer` lists the tools again when the server
    /// says they changed.
    pub(crate) async fn call(&self, peer: &Peer<RoleClient>, params: CallToolRequestParams) -> Outcome {
        let Some(session) = self.http.seen.get() else {
            return Outcome::NotReady;
        };
        let id = RequestId::Number(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let mut cancel = Cancel {
            direct: self.clone(),
            session: session.clone(),
            id: id.clone(),
            armed: true,
        };
        let outcome = self.send(peer, params, session, id).await;
        cancel.armed = false;
        outcome
    }

    async fn send(
        &self,
        peer: &Peer<RoleClient>,
        params: CallToolRequestParams,
        session: Established,
        id: RequestId,
    ) -> Outcome {
        let message = ClientJsonRpcMessage::Request(JsonRpcRequest::new(
            id.clone(),
            ClientRequest::CallToolRequest(Request::new(params)),
        ));
        let headers = HashMap::from([(PROTOCOL_HEADER, session.version.clone())]);
        let mut received = 0;
        let result = self
            .http
            .post_call(
                self.uri.clone(),
                message,
                session.session.clone(),
                self.auth.clone(),
                headers.clone(),
                self.limits,
                &mut received,
            )
            .await;
        match self.http.finish_own_post(session.session.is_some(), result) {
            Err(StreamableHttpError::SessionExpired) => {
                self.http.seen.forget(&session.session);
                Outcome::Expired
            }
            Err(e) => Outcome::Lost(e),
            Ok(StreamableHttpPostResponse::Accepted) => {
                Outcome::Failed(Cow::Borrowed("the MCP server accepted the call without answering it"))
            }
            Ok(StreamableHttpPostResponse::Json(message, _)) => match message {
                JsonRpcMessage::Response(r) => match r.result {
                    rmcp::model::ServerResult::CallToolResult(result) => Outcome::Answered(result, received),
                    _ => Outcome::Failed(Cow::Borrowed("the answer to the call is not a tool result")),
                },
                JsonRpcMessage::Error(e) => Outcome::Refused(e.error),
                _ => Outcome::Failed(Cow::Borrowed("the answer is a request or a notification")),
            },
            Ok(StreamableHttpPostResponse::Sse(events, _)) => {
                self.clone()
                    .read_events(events, id, session, headers, peer.clone(), Reading::default())
                    .await
            }
            Ok(_) => Outcome::Failed(Cow::Borrowed(
                "the MCP server's answer to the call is of an unknown kind",
            )),
        }
    }

    /// Reads the call's event stream to its answer: on the calling task while the stream
    /// has carried less than [`INLINE_BYTES`] and each event came within [`INLINE_WAIT`],
    /// and the rest on the MCP sessions' runtime (a server that sends a stream of
    /// notifications, or one large event, keeps those threads busy, not the server's
    /// workers, as when rmcp read every stream).
    fn read_events(
        self,
        mut events: Events,
        id: RequestId,
        session: Established,
        headers: HashMap<HeaderName, HeaderValue>,
        peer: Peer<RoleClient>,
        mut at: Reading,
    ) -> futures::future::BoxFuture<'static, Outcome> {
        Box::pin(async move {
            loop {
                if !at.away && at.read > INLINE_BYTES {
                    at.away = true;
                    let rest = self.clone().read_events(events, id, session, headers, peer, at);
                    return crate::on_sessions_runtime(rest)
                        .await
                        .unwrap_or_else(|_| Outcome::Failed(Cow::Borrowed("reading the call's event stream failed")));
                }
                let next = if at.away {
                    events.next().await
                } else {
                    // an event that takes long to come (a slow tool, or a large event being
                    // read and framed here) is waited for on the sessions' runtime; reading an
                    // event can be stopped and taken up again there without losing bytes
                    match tokio::time::timeout(INLINE_WAIT, events.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            at.read = usize::MAX;
                            continue;
                        }
                    }
                };
                let Some(item) = next else {
                    // ended without the answer: resumed when the server gave it ids
                    let Some(last) = at.last_event.clone().filter(|_| at.resumes < MAX_RESUMES) else {
                        return Outcome::Failed(Cow::Borrowed("the event stream ended without an answer to the call"));
                    };
                    at.resumes += 1;
                    if let Some(wait) = at.retry {
                        tokio::time::sleep(wait.min(MAX_RETRY)).await;
                    }
                    match self
                        .http
                        .resume_own_stream(
                            self.uri.clone(),
                            session.session.clone(),
                            last,
                            self.auth.clone(),
                            headers.clone(),
                            self.limits.max_sse_event_size,
                        )
                        .await
                    {
                        Ok(resumed) => {
                            events = resumed;
                            continue;
                        }
                        // the server has the call: it is not sent again
                        Err(e) => {
                            return Outcome::Failed(Cow::Owned(format!(
                                "the call's event stream ended before its answer and could not be resumed: {}",
                                crate::plain_reason(&e)
                            )));
                        }
                    }
                };
                let event = match item {
                    Ok(event) => event,
                    // an event over the limit on a resumed stream (on the POST's own
                    // stream it comes as an error answer naming the failure)
                    Err(e) if too_large(&e) => return Outcome::TooLarge,
                    // (its text may name the URL, query and all)
                    Err(_) => {
                        return Outcome::Failed(Cow::Borrowed("the call's event stream broke off before its answer"));
                    }
                };
                at.read = at
                    .read
                    .saturating_add(EVENT_COST)
                    .saturating_add(event.data.as_ref().map_or(0, String::len));
                if event.id.is_some() {
                    at.last_event = event.id.clone();
                }
                if let Some(ms) = event.retry {
                    at.retry = Some(Duration::from_millis(ms));
                }
                if !crate::peer_requests::is_message_event(&event) {
                    continue;
                }
                let Some(data) = event.data else { continue };
                let len = data.len();
                let what = match self.http.turns.as_ref() {
                    // a large message (the answer, most likely) is parsed at the large-answer
                    // gate, in the workspace's lane
                    Some(turns) if Turns::needed(len) => {
                        let call = id.clone();
                        match turns.run(move || read(&data, &call)).await {
                            Ok(what) => what,
                            Err(_) => Read::Unusable("the answer could not be read"),
                        }
                    }
                    _ => read(&data, &id),
                };
                match what {
                    Read::Answer(result) => return Outcome::Answered(result, len),
                    Read::Refusal(error) => return Outcome::Refused(error),
                    Read::Unusable(why) => return Outcome::Failed(Cow::Borrowed(why)),
                    Read::Asked(asked, method) => self.answer(asked, &method, &session, &headers),
                    Read::ToolsChanged => self.handler.tools_changed(peer.clone()),
                    Read::Other => {}
                }
            }
        })
    }

    /// Answers a request the server sent during the call, in a task of its own (as rmcp
    /// does): what rmcp's default client answers.
    fn answer(&self, id: RequestId, method: &str, session: &Established, headers: &HashMap<HeaderName, HeaderValue>) {
        #[allow(deprecated)]
        let result = match method {
            "ping" => Ok(ClientResult::empty(())),
            "roots/list" => Ok(ClientResult::ListRootsResult(rmcp::model::ListRootsResult::default())),
            "elicitation/create" => Ok(ClientResult::ElicitResult(ElicitResult::new(
                ElicitationAction::Decline,
            ))),
            other => Err(ErrorData::new(ErrorCode::METHOD_NOT_FOUND, other.to_owned(), None)),
        };
        let message = match result {
            Ok(result) => ClientJsonRpcMessage::Response(JsonRpcResponse {
                jsonrpc: JsonRpcVersion2_0,
                id,
                result,
            }),
            Err(error) => ClientJsonRpcMessage::Error(JsonRpcError::new(Some(id), error)),
        };
        let (http, uri, auth, limits) = (self.http.clone(), self.uri.clone(), self.auth.clone(), self.limits);
        let (session, headers) = (session.session.clone(), headers.clone());
        let timeout = Duration::from_secs(30);
        tokio::spawn(async move {
            let sent = http.post_message_with_response_limits(uri, message, session, auth, headers, limits);
            if let Ok(Err(e)) = tokio::time::timeout(timeout, sent).await {
                tracing::debug!(error = %e, "answering the MCP server's request failed");
            }
        });
    }
}
