//! A `tools/call` POST, sent and read here rather than by rmcp's HTTP client.
//!
//! rmcp's client reads a POST's plain JSON answer and parses it where it runs: on the MCP
//! sessions' thread ([`crate::sessions_runtime`]), which every workspace shares. One
//! workspace's large answers sent as JSON bodies would then hold up every other
//! workspace's MCP calls, as its large event-stream answers did before
//! [`crate::turns`]. So a `tools/call` is POSTed here: an answer of
//! [`chatterfly_egress::heavy::HEAVY_BYTES`] or more is parsed on the large-answer gate's
//! threads, in its workspace's lane, and rmcp gets the parsed message. Everything else is
//! read as rmcp reads it: the same request headers, the same answers to `401`/`403`
//! challenges, `202`, a forgotten session's `404`, rate limits and server errors,
//! JSON-RPC errors in error bodies, event streams (bounded per event by [`Limited`], then through
//! [`crate::peer_requests::Bounded`] like any other), and the same limits.
//!
//! One difference on purpose: an answer the server did send that cannot be used (an error
//! status without a JSON-RPC error, a body that is not JSON-RPC, another content type, over
//! the limit; a JSON body that answers another request or none: [`for_call`]; in the
//! call's event stream, an event over the limit, a result to another request, or the
//! stream's end before the answer: [`for_call_events`])
//! reaches rmcp as an error answer to that call ([`failed_answer`]), not as a failure of
//! the transport. rmcp closed the session on the latter, failing every call on it, and the
//! call was sent again on a new session.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http::{HeaderName, HeaderValue, StatusCode, header};
use rmcp::model::{
    ClientJsonRpcMessage, ErrorCode, ErrorData, JsonRpcError, JsonRpcMessage, RequestId, ServerJsonRpcMessage,
};
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, InsufficientScopeError, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::{Sse, SseStream};

use crate::guarded_http::GuardedHttp;
use crate::sse::{Limited, StreamError};
use crate::turns::Turns;

type PostResult = Result<StreamableHttpPostResponse, StreamableHttpError<reqwest::Error>>;
type SseItem = Result<Sse, sse_stream::Error>;

const SESSION_HEADER: &str = "mcp-session-id";
const EVENT_STREAM: &str = "text/event-stream";
const JSON: &str = "application/json";
/// Headers the transport sets itself; a custom header may not name them (the protocol
/// version, which rmcp passes as a custom header, may).
const RESERVED: [&str; 3] = ["accept", SESSION_HEADER, "last-event-id"];
/// The longest `Retry-After` kept.
const MAX_RETRY_AFTER: usize = 128;

impl GuardedHttp {
    /// POSTs a `tools/call` request and reads its answer, parsing a large JSON answer in
    /// its turn at the gate; `received` is set to the length of a JSON answer's body (a
    /// caller that goes on to work on the parsed answer knows what a large one costs).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn post_call(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
        received: &mut usize,
    ) -> PostResult {
        let mut request = self
            .client
            .post(uri.as_ref())
            .header(header::ACCEPT, format!("{EVENT_STREAM}, {JSON}"));
        if let Some(token) = auth {
            request = request.bearer_auth(token);
        }
        for (name, value) in custom_headers {
            if RESERVED.iter().any(|r| name.as_str().eq_ignore_ascii_case(r)) {
                return Err(StreamableHttpError::ReservedHeaderConflict(name.to_string()));
            }
            request = request.header(name, value);
        }
        let attached = session_id.is_some();
        if let Some(id) = session_id {
            request = request.header(SESSION_HEADER, id.as_ref());
        }
        let id = match &message {
            JsonRpcMessage::Request(r) => Some(r.id.clone()),
            _ => None,
        };
        // no answer came: the session's failure, as through rmcp
        let response = request.json(&message).send().await?;
        match (self.read_answer(response, attached, limits, received).await, id) {
            // an event over the limit, a result to another request or the stream's end
            // before the answer fail this call, as an unusable answer does
            (Ok(StreamableHttpPostResponse::Sse(events, session)), Some(id)) => Ok(StreamableHttpPostResponse::Sse(
                for_call_events(events, id, limits.max_sse_event_size),
                session,
            )),
            // a JSON answer that answers no call (another id, or not a response) would
            // leave this call waiting for its timeout: it fails now; an error without an
            // id (the server could not read the request) is this call's
            (Ok(StreamableHttpPostResponse::Json(message, session)), Some(id)) => match for_call(message, &id) {
                Ok(message) => Ok(StreamableHttpPostResponse::Json(message, session)),
                Err(what) => {
                    let e = StreamableHttpError::UnexpectedServerResponse(Cow::Borrowed(what));
                    self.refusal.note_error(&e);
                    failed_answer(&id, e)
                }
            },
            // the server answered this call, unusably: this call fails, not the session
            // (rmcp would close the session, failing every call on it, and the call would
            // be sent again on a new one)
            (Err(e), Some(id)) if !matches!(e, StreamableHttpError::SessionExpired) => {
                self.refusal.note_error(&e);
                failed_answer(&id, e)
            }
            (result, _) => result,
        }
    }

    /// What the server answered a POST: rmcp's reading of it, a large JSON answer parsed
    /// in its turn.
    async fn read_answer(
        &self,
        response: reqwest::Response,
        attached: bool,
        limits: StreamableHttpResponseLimits,
        received: &mut usize,
    ) -> PostResult {
        let status = response.status();
        if let Some(challenge) = response.headers().get(header::WWW_AUTHENTICATE)
            && matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        {
            let challenge = challenge
                .to_str()
                .map_err(|_| {
                    StreamableHttpError::UnexpectedServerResponse(Cow::Borrowed(
                        "invalid www-authenticate header value",
                    ))
                })?
                .to_owned();
            return Err(if status == StatusCode::UNAUTHORIZED {
                StreamableHttpError::AuthRequired(AuthRequiredError::new(challenge))
            } else {
                let scope = scope_of(&challenge);
                StreamableHttpError::InsufficientScope(InsufficientScopeError::new(challenge, scope))
            });
        }
        if matches!(status, StatusCode::ACCEPTED | StatusCode::NO_CONTENT) {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if status == StatusCode::NOT_FOUND && attached {
            return Err(StreamableHttpError::SessionExpired);
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let is_json = content_type.as_deref().is_some_and(|c| media_type_is(c, JSON));
        let is_stream = content_type.as_deref().is_some_and(|c| media_type_is(c, EVENT_STREAM));
        // rate limits, and server errors without a JSON body, are their status alone
        let status_error = (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()).then(|| {
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .filter(|v| v.len() <= MAX_RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            HttpStatusError::new(status.as_u16(), retry_after)
        });
        if let Some(e) = status_error.as_ref()
            && (!is_json || status == StatusCode::TOO_MANY_REQUESTS)
        {
            return Err(HttpStatusError::new(e.status, e.retry_after.clone()).into());
        }
        let session = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_length = response.content_length();
        let body = response.bytes_stream();

        if !status.is_success() {
            let unauthorized = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
            let said = if is_json && !unauthorized {
                match read_bounded(body, content_length, limits.max_json_response_size).await {
                    Ok(bytes) => {
                        // a JSON-RPC error is the call's answer, except a 400 with an id-less
                        // error to a request that carried a session id: how the TypeScript
                        // SDK's servers (the reference server among them) say they forgot
                        // the session, which is re-initialized as after a 404
                        if let Ok(JsonRpcMessage::Error(error)) = serde_json::from_slice::<ServerJsonRpcMessage>(&bytes)
                        {
                            if attached && error.id.is_none() && status == StatusCode::BAD_REQUEST {
                                return Err(StreamableHttpError::SessionExpired);
                            }
                            return Ok(StreamableHttpPostResponse::Json(JsonRpcMessage::Error(error), session));
                        }
                        text_prefix(&bytes, limits.max_error_response_size)
                    }
                    Err(e @ StreamableHttpError::ResponseBodyTooLarge { .. }) => {
                        return Err(status_error.map_or(e, StreamableHttpError::from));
                    }
                    Err(StreamableHttpError::Client(_)) => UNREADABLE.to_owned(),
                    Err(e) => return Err(e),
                }
            } else {
                match read_prefix(body, limits.max_error_response_size).await {
                    Ok(bytes) => text_prefix(&bytes, limits.max_error_response_size),
                    Err(_) => UNREADABLE.to_owned(),
                }
            };
            if let Some(e) = status_error {
                return Err(e.into());
            }
            return Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(format!(
                "HTTP {status}: {said}"
            ))));
        }
        if is_stream {
            let events = SseStream::from_bytes_stream(Limited::new(body, limits.max_sse_event_size)).boxed();
            return Ok(StreamableHttpPostResponse::Sse(events, session));
        }
        if !is_json {
            return Err(StreamableHttpError::UnexpectedContentType(content_type));
        }
        let bytes = read_bounded(body, content_length, limits.max_json_response_size).await?;
        *received = bytes.len();
        let parsed = match self.turns.as_ref() {
            Some(turns) if Turns::needed(bytes.len()) => turns
                .run(move || crate::turns::parse_message(&bytes).map_err(|e| e.to_string()))
                .await
                .map_err(|_| {
                    StreamableHttpError::UnexpectedServerResponse(Cow::Borrowed("the answer could not be read"))
                })?,
            _ => serde_json::from_slice::<ServerJsonRpcMessage>(&bytes).map_err(|e| e.to_string()),
        };
        match parsed {
            Ok(message) => Ok(StreamableHttpPostResponse::Json(message, session)),
            Err(e) => Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(format!(
                "the answer is not a JSON-RPC message: {e}"
            )))),
        }
    }
}

const UNREADABLE: &str = "<failed to read response body>";

/// `message`, a POST's JSON answer, as the answer to the call `id`; what is wrong with it
/// when it answers no call. rmcp routes an answer by its id and drops one that matches no
/// call, or has none: the call would wait for its timeout.
///
/// A JSON-RPC error in the body is this call's whatever its id: the server refused the
/// request it was sent, and could not always say which (an error without an id when it
/// could not read it; the Python SDK's middleware answers with the id `"server-error"`).
/// The TypeScript SDK's forgotten session (a 400 with an id-less error) does not come
/// here: [`GuardedHttp::read_answer`] reads it as the expired session it is. A result with
/// another id is not this call's.
fn for_call(message: ServerJsonRpcMessage, id: &RequestId) -> Result<ServerJsonRpcMessage, &'static str> {
    match message {
        JsonRpcMessage::Response(r) if r.id == *id => Ok(JsonRpcMessage::Response(r)),
        JsonRpcMessage::Error(mut e) => {
            e.id = Some(id.clone());
            Ok(JsonRpcMessage::Error(e))
        }
        JsonRpcMessage::Response(_) => Err("the answer is to another request than the call sent"),
        JsonRpcMessage::Request(_) | JsonRpcMessage::Notification(_) => {
            Err("the answer is a request or a notification, not an answer to the call")
        }
    }
}

/// The `data` key of an error answer standing for a failure kept here.
const FAILED_KEY: &str = "io.chatterfly/failed";
/// How long a failure waits for its call (which takes it at once, unless it has gone).
const FAILED_FOR: Duration = Duration::from_secs(60);
/// The most failures kept at once, and the most text they hold (an error's text may carry
/// 64 KiB of the server's body); past either the failure ends the session, as through rmcp.
const FAILED_MAX: usize = 4096;
const FAILED_MAX_BYTES: usize = 8 * 1024 * 1024;

type Failure = StreamableHttpError<reqwest::Error>;

type Kept = HashMap<String, (Instant, usize, Failure)>;

fn failures() -> &'static Mutex<Kept> {
    static FAILED: OnceLock<Mutex<Kept>> = OnceLock::new();
    FAILED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// An error answer to the call `id` standing for `e` (kept under a 122-bit random name the
/// call takes back: [`take_failure`]), so that the failure reaches the call as it came,
/// without ending the session; `Err(e)` when there is no room.
fn failed_answer(id: &RequestId, e: Failure) -> PostResult {
    failed_message(id, e).map(|answer| StreamableHttpPostResponse::Json(answer, None))
}

/// The error answer of [`failed_answer`], as a message.
fn failed_message(id: &RequestId, e: Failure) -> Result<ServerJsonRpcMessage, Failure> {
    let Ok(mut map) = failures().lock() else {
        return Err(e);
    };
    let now = Instant::now();
    map.retain(|_, (at, _, _)| now.duration_since(*at) < FAILED_FOR);
    let len = e.to_string().len();
    let held: usize = map.values().map(|(_, n, _)| n).sum();
    if map.len() >= FAILED_MAX || held.saturating_add(len) > FAILED_MAX_BYTES {
        return Err(e);
    }
    let name = uuid::Uuid::new_v4().simple().to_string();
    let error = ErrorData::new(
        ErrorCode::INTERNAL_ERROR,
        "the MCP server's answer could not be used",
        Some(serde_json::json!({FAILED_KEY: name})),
    );
    map.insert(name, (now, len, e));
    Ok(JsonRpcMessage::Error(JsonRpcError::new(Some(id.clone()), error)))
}

/// What a call's event stream has come to.
enum CallStream {
    /// The call's answer has not come yet.
    Waiting(RequestId),
    /// The answer came (rmcp drops the stream then): the rest passes as it is.
    Answered,
    /// A stand-in answer was the last event.
    Ended,
}

/// The fields of a message that say what it is, read without keeping anything else.
#[derive(serde::Deserialize)]
struct Probe {
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default)]
    method: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    result: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

/// An event standing for a failure of the call `id` ([`failed_message`]); `None` without
/// room to keep the failure.
fn failed_event(id: &RequestId, e: Failure) -> Option<Sse> {
    let answer = failed_message(id, e).ok()?;
    Some(Sse {
        event: None,
        data: Some(serde_json::to_string(&answer).ok()?),
        id: None,
        retry: None,
    })
}

/// A call's event stream, read as far as the call's answer, where what would fail the
/// whole session through rmcp fails the call alone, as an error answer to it
/// ([`failed_message`]), which ends the stream:
/// - an event over `max` bytes (cut short by [`Limited`]): `upstream_too_large`;
/// - a result to another request: rmcp drops it, and the call waited for its timeout;
/// - the stream ending without the answer, when no event carried an id to resume it from:
///   rmcp ended the session (every call on it failed, and was sent again on a new one).
///   A stream with event ids is left to end as it does, for rmcp to resume (`GET` with
///   `Last-Event-ID`: a server may close a call's stream early and answer on the resumed
///   one).
///
/// A JSON-RPC error is the call's whatever its id, as in a JSON body ([`for_call`]).
/// Requests and notifications pass; so does an event of [`Turns::needed`] size (read at
/// the large-answer gate, not here: taken for the answer). Without room to keep a failure,
/// the stream goes on as before.
fn for_call_events(events: BoxStream<'static, SseItem>, id: RequestId, max: usize) -> BoxStream<'static, SseItem> {
    futures::stream::unfold(
        (events, false, CallStream::Waiting(id)),
        move |(mut events, resumable, state)| async move {
            let id = match state {
                CallStream::Ended => return None,
                CallStream::Answered => return Some((events.next().await?, (events, resumable, CallStream::Answered))),
                CallStream::Waiting(id) => id,
            };
            let Some(item) = events.next().await else {
                if resumable {
                    return None;
                }
                let e = StreamableHttpError::UnexpectedServerResponse(Cow::Borrowed(
                    "the event stream ended without an answer to the call",
                ));
                return failed_event(&id, e).map(|event| (Ok(event), (events, resumable, CallStream::Ended)));
            };
            let event = match item {
                Err(sse_stream::Error::Body(e))
                    if matches!(e.downcast_ref::<StreamError>(), Some(StreamError::TooLarge)) =>
                {
                    let item = failed_event(&id, StreamableHttpError::ResponseBodyTooLarge { max_size: max })
                        .ok_or(sse_stream::Error::Body(e));
                    return Some((item, (events, resumable, CallStream::Ended)));
                }
                Err(e) => return Some((Err(e), (events, resumable, CallStream::Waiting(id)))),
                Ok(event) => event,
            };
            let resumable = resumable || event.id.is_some();
            let message = event.event.as_deref().is_none_or(|kind| kind == "message");
            let probe = match event.data.as_deref() {
                Some(data) if message && Turns::needed(data.len()) => {
                    return Some((Ok(event), (events, resumable, CallStream::Answered)));
                }
                Some(data) if message => serde_json::from_str::<Probe>(data).ok(),
                _ => None,
            };
            let Some(probe) = probe else {
                return Some((Ok(event), (events, resumable, CallStream::Waiting(id))));
            };
            if probe.method.is_some() {
                return Some((Ok(event), (events, resumable, CallStream::Waiting(id))));
            }
            if probe.error.is_some() {
                if probe.id.as_ref() == Some(&id) {
                    return Some((Ok(event), (events, resumable, CallStream::Answered)));
                }
                // the call's, under its id
                let ours = event
                    .data
                    .as_deref()
                    .and_then(|data| serde_json::from_str::<ServerJsonRpcMessage>(data).ok())
                    .and_then(|message| for_call(message, &id).ok())
                    .and_then(|message| serde_json::to_string(&message).ok());
                return match ours {
                    Some(data) => Some((
                        Ok(Sse {
                            data: Some(data),
                            ..event
                        }),
                        (events, resumable, CallStream::Answered),
                    )),
                    None => Some((Ok(event), (events, resumable, CallStream::Waiting(id)))),
                };
            }
            if probe.result.is_some() && probe.id.as_ref().is_some_and(|other| *other != id) {
                let e = StreamableHttpError::UnexpectedServerResponse(Cow::Borrowed(
                    "the answer is to another request than the call sent",
                ));
                return match failed_event(&id, e) {
                    Some(failed) => Some((Ok(failed), (events, resumable, CallStream::Ended))),
                    None => Some((Ok(event), (events, resumable, CallStream::Waiting(id)))),
                };
            }
            let answered = probe.result.is_some();
            Some((
                Ok(event),
                (
                    events,
                    resumable,
                    if answered {
                        CallStream::Answered
                    } else {
                        CallStream::Waiting(id)
                    },
                ),
            ))
        },
    )
    .boxed()
}

/// The failure an error answer stands for ([`failed_answer`]), once; `None` for any other
/// error (the server's own, or a name this process never gave).
pub(crate) fn take_failure(error: &ErrorData) -> Option<Failure> {
    let name = error.data.as_ref()?.get(FAILED_KEY)?.as_str()?;
    failures().lock().ok()?.remove(name).map(|(_, _, e)| e)
}

/// Whether a `Content-Type` value names `expected` (its type and subtype, any case, any
/// parameters).
fn media_type_is(value: &str, expected: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

/// The `scope` a `WWW-Authenticate` challenge asks for (quoted or not).
fn scope_of(challenge: &str) -> Option<String> {
    let at = challenge.to_ascii_lowercase().find("scope=")? + "scope=".len();
    let rest = challenge.get(at..)?;
    let value = match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"')?],
        None => &rest[..rest.find([',', ';', ' ', '\t']).unwrap_or(rest.len())],
    };
    (!value.is_empty()).then(|| value.to_owned())
}

/// A body of at most `max` bytes, whole; longer is [`StreamableHttpError::ResponseBodyTooLarge`].
async fn read_bounded(
    mut body: impl Stream<Item = reqwest::Result<Bytes>> + Unpin,
    length: Option<u64>,
    max: usize,
) -> Result<Vec<u8>, StreamableHttpError<reqwest::Error>> {
    if length.is_some_and(|n| n > max as u64) {
        return Err(StreamableHttpError::ResponseBodyTooLarge { max_size: max });
    }
    let mut bytes = Vec::with_capacity(length.map_or(0, |n| n as usize));
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if chunk.len() > max - bytes.len() {
            return Err(StreamableHttpError::ResponseBodyTooLarge { max_size: max });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The first `max` bytes of a body (an error's text: the rest is not read).
async fn read_prefix(
    mut body: impl Stream<Item = reqwest::Result<Bytes>> + Unpin,
    max: usize,
) -> reqwest::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    while bytes.len() < max {
        let Some(chunk) = body.next().await else { break };
        let chunk = chunk?;
        bytes.extend_from_slice(&chunk[..chunk.len().min(max - bytes.len())]);
    }
    Ok(bytes)
}

fn text_prefix(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_failure_is_taken_once_by_its_answer_only() {
        let id = RequestId::Number(3);
        let Ok(StreamableHttpPostResponse::Json(JsonRpcMessage::Error(answer), _)) = failed_answer(
            &id,
            StreamableHttpError::UnexpectedServerResponse(Cow::Borrowed("HTTP 500: down")),
        ) else {
            panic!("an error answer");
        };
        assert_eq!(answer.id, Some(id));
        let taken = take_failure(&answer.error).map(|e| e.to_string());
        assert_eq!(taken.as_deref(), Some("unexpected server response: HTTP 500: down"));
        assert!(take_failure(&answer.error).is_none(), "once");
        let forged = ErrorData::new(
            ErrorCode::INTERNAL_ERROR,
            "x",
            Some(serde_json::json!({FAILED_KEY: "0".repeat(32)})),
        );
        assert!(take_failure(&forged).is_none());
        assert!(take_failure(&ErrorData::new(ErrorCode::INTERNAL_ERROR, "x", None)).is_none());
        // past the bytes kept, the failure is the session's again
        let big = "x".repeat(FAILED_MAX_BYTES + 1);
        let over = failed_answer(
            &RequestId::Number(4),
            StreamableHttpError::UnexpectedServerResponse(Cow::Owned(big)),
        );
        assert!(over.is_err());
    }

    #[test]
    fn media_types_and_scopes_are_read_as_the_specifications_say() {
        assert!(media_type_is("Application/JSON; charset=utf-8", JSON));
        assert!(media_type_is(" text/event-stream", EVENT_STREAM));
        assert!(!media_type_is("application/json-seq", JSON));
        assert_eq!(
            scope_of(r#"Bearer error="insufficient_scope", scope="files:read files:write""#).as_deref(),
            Some("files:read files:write")
        );
        assert_eq!(scope_of("Bearer Scope=read:data, x=1").as_deref(), Some("read:data"));
        assert_eq!(scope_of(r#"Bearer scope="unterminated"#), None);
        assert_eq!(scope_of("Bearer realm=x"), None);
    }
}
