//! The Streamable HTTP client rmcp drives: the guarded egress client, plus one correction.
//!
//! The specification says a server answers 404 to a request carrying a session id it no
//! longer knows, and rmcp then re-initializes transparently. The TypeScript SDK's servers
//! (the reference server among them) answer 400 with a JSON-RPC error that has no `id`
//! ("No valid session ID provided") instead, which rmcp cannot match to the request, so
//! the call would wait until it times out. Such an answer to a request that carried a
//! session id is treated as the 404 it means.
//!
//! And one addition: rmcp drops a POST's event stream as soon as the stream has carried
//! the answer, before the server ends it, so the HTTP/1.1 connection could not go back to
//! the pool and every call paid for a new connection (the Python SDK's servers answer each
//! POST with an event stream). The stream is handed to rmcp wrapped in [`Drained`], which
//! reads what is left of it in the background, within a short time and a few events, so
//! the connection is kept for the next call.
//!
//! Every event stream (a POST's, and the standalone GET one) passes through the session's
//! [`Allowance`] for requests the server sends the client ([`crate::peer_requests`]).

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage, RequestId};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use sse_stream::Sse;

use crate::peer_requests::{Allowance, Bounded};
use crate::turns::Turns;

#[derive(Clone)]
pub(crate) struct GuardedHttp {
    pub(crate) client: std::sync::Arc<reqwest::Client>,
    pub(crate) refusal: Refusal,
    /// The session's allowance for requests the server sends ([`crate::peer_requests`]).
    pub(crate) allowance: Allowance,
    /// Where the session's large messages take their turn ([`crate::turns`]).
    pub(crate) turns: Option<Turns>,
    /// Whether `tools/call`s are POSTed by [`crate::post`] (a workspace's sessions) rather
    /// than by rmcp's client (sessions without a workspace: tests and tools).
    pub(crate) own_calls: bool,
    /// The session as rmcp last established it, for calls sent past rmcp
    /// ([`crate::direct`]).
    pub(crate) seen: crate::direct::Seen,
}

/// The HTTP status of the last answer that refused a POST (0: none), and why the last POST
/// that reached no server did not. rmcp flattens both into text inside its worker, so they
/// are kept here for the error that the session's owner reports (a 401 is
/// `upstream_unauthorized`, a refused connection `upstream_unreachable`, not protocol
/// errors).
#[derive(Clone)]
pub(crate) struct Refusal {
    status: Arc<std::sync::atomic::AtomicU16>,
    unreached: Arc<std::sync::Mutex<Option<chatterfly_egress::EgressError>>>,
    url: Arc<url::Url>,
}

impl Refusal {
    pub(crate) fn new(url: &url::Url) -> Self {
        Self {
            status: Arc::default(),
            unreached: Arc::default(),
            url: Arc::new(url.clone()),
        }
    }

    pub(crate) fn status(&self) -> Option<u16> {
        match self.status.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            s => Some(s),
        }
    }

    /// Why the last POST that reached no server did not (a refused or timed-out
    /// connection, a name that does not resolve, a blocked address).
    pub(crate) fn unreached(&self) -> Option<chatterfly_egress::EgressError> {
        self.unreached.lock().ok().and_then(|u| u.clone())
    }

    fn note(&self, result: &PostResult) {
        if let Err(e) = result {
            self.note_error(e);
        }
    }

    pub(crate) fn note_error(&self, e: &StreamableHttpError<reqwest::Error>) {
        let status = match e {
            StreamableHttpError::AuthRequired(_) => 401,
            StreamableHttpError::InsufficientScope(_) => 403,
            StreamableHttpError::UnexpectedServerResponse(text) => {
                match text
                    .strip_prefix("HTTP ")
                    .and_then(|t| t.get(..3))
                    .and_then(|c| c.parse().ok())
                {
                    Some(code) => code,
                    None => return,
                }
            }
            StreamableHttpError::Client(e) => {
                if let Some(why) = chatterfly_egress::Egress::classify(e, &self.url)
                    && let Ok(mut slot) = self.unreached.lock()
                {
                    *slot = Some(why);
                }
                return;
            }
            _ => return,
        };
        self.status.store(status, std::sync::atomic::Ordering::Relaxed);
    }
}

type PostResult = Result<StreamableHttpPostResponse, StreamableHttpError<reqwest::Error>>;

fn forgotten_session(
    session: bool,
    result: PostResult,
    allowance: &Allowance,
    turns: Option<(&Turns, Option<RequestId>)>,
) -> PostResult {
    match result {
        Ok(StreamableHttpPostResponse::Json(JsonRpcMessage::Error(e), _)) if session && e.id.is_none() => {
            Err(StreamableHttpError::SessionExpired)
        }
        Ok(StreamableHttpPostResponse::Sse(stream, session_id)) => Ok(StreamableHttpPostResponse::Sse(
            Box::pin(Drained(Some(Box::pin(Bounded::new(
                stream,
                allowance.clone(),
                turns.map(|(t, call)| t.clone().for_call(call)),
            ))))),
            session_id,
        )),
        other => other,
    }
}

/// How long, and for how many events, the rest of a dropped POST event stream is read
/// (servers end it right after the answer: the Python SDK's within a millisecond).
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_millis(250);
const DRAIN_EVENTS: usize = 16;
/// At most this many streams are drained at once in the process; past it a stream is
/// dropped as rmcp would (its connection closed), so a server that holds its streams open
/// cannot pile up background reads and connections.
const MAX_DRAINING: usize = 256;
static DRAINING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One stream being drained; counted out when the drain ends however it ends.
struct DrainSlot;

impl DrainSlot {
    fn take() -> Option<Self> {
        use std::sync::atomic::Ordering::Relaxed;
        DRAINING
            .fetch_update(Relaxed, Relaxed, |n| (n < MAX_DRAINING).then_some(n + 1))
            .ok()
            .map(|_| Self)
    }
}

impl Drop for DrainSlot {
    fn drop(&mut self) {
        DRAINING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

type SseStream = BoxStream<'static, Result<Sse, SseError>>;

/// A POST's event stream that, when dropped before its end, is read to its end in the
/// background (at most [`DRAIN_EVENTS`] events within [`DRAIN_FOR`], at most
/// [`MAX_DRAINING`] at once), so that its connection returns to the pool instead of being
/// closed. A server that keeps the stream
/// open longer only costs the connection, as before.
struct Drained(Option<SseStream>);

impl futures::Stream for Drained {
    type Item = Result<Sse, SseError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let Some(stream) = self.0.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let next = stream.as_mut().poll_next(cx);
        if let std::task::Poll::Ready(None) = next {
            // ended: nothing left to drain
            self.0 = None;
        }
        next
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        let Some(mut stream) = self.0.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(slot) = DrainSlot::take() else { return };
        runtime.spawn(async move {
            let _slot = slot;
            let rest = async {
                let mut events = 0;
                while let Some(Ok(_)) = futures::StreamExt::next(&mut stream).await {
                    events += 1;
                    if events >= DRAIN_EVENTS {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_FOR, rest).await;
        });
    }
}

/// The id of a `tools/call` request (its answer may be held: [`crate::turns`]).
fn tool_call_id(message: &ClientJsonRpcMessage) -> Option<RequestId> {
    match message {
        JsonRpcMessage::Request(r) if matches!(r.request, ClientRequest::CallToolRequest(_)) => Some(r.id.clone()),
        _ => None,
    }
}

impl GuardedHttp {
    /// What a POST answered, as rmcp gets it: a session the server forgot is reported so,
    /// and an event stream is bounded ([`Bounded`]: a `tools/call`'s large answer is
    /// parsed at the large-answer gate) and drained when dropped ([`Drained`]).
    fn finish_post(&self, session: bool, call: Option<RequestId>, result: PostResult) -> PostResult {
        self.refusal.note(&result);
        forgotten_session(session, result, &self.allowance, self.turns.as_ref().map(|t| (t, call)))
    }

    /// [`GuardedHttp::finish_post`] for a call whose answer is read by its caller
    /// ([`crate::direct`]), which parses large events at the gate itself: the stream only
    /// bounds the server's requests.
    pub(crate) fn finish_own_post(&self, session: bool, result: PostResult) -> PostResult {
        self.refusal.note(&result);
        forgotten_session(session, result, &self.allowance, None)
    }

    /// A stream resumed for a call whose answer is read by its caller (as
    /// [`GuardedHttp::finish_own_post`]).
    pub(crate) async fn resume_own_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: String,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_event_size: usize,
    ) -> Result<SseStream, StreamableHttpError<reqwest::Error>> {
        self.client
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                Some(last_event_id),
                auth_header,
                custom_headers,
                max_event_size,
            )
            .await
            .map(|s| Box::pin(Drained(Some(Box::pin(Bounded::new(s, self.allowance.clone(), None))))) as SseStream)
    }
}

impl StreamableHttpClient for GuardedHttp {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> PostResult {
        let (session, call) = (session_id.is_some(), tool_call_id(&message));
        self.seen.note(&message, session_id.as_ref(), &custom_headers);
        let result = self
            .client
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await;
        self.finish_post(session, call, result)
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> PostResult {
        let (session, call) = (session_id.is_some(), tool_call_id(&message));
        self.seen.note(&message, session_id.as_ref(), &custom_headers);
        let result = self
            .client
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await;
        self.finish_post(session, call, result)
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> PostResult {
        let (session, call) = (session_id.is_some(), tool_call_id(&message));
        self.seen.note(&message, session_id.as_ref(), &custom_headers);
        let result = match (&call, &self.turns) {
            // a call's answer may be large: read here, so it is parsed in its turn
            (Some(_), Some(_)) if self.own_calls => {
                self.post_call(uri, message, session_id, auth_header, custom_headers, limits, &mut 0)
                    .await
            }
            _ => {
                self.client
                    .post_message_with_response_limits(uri, message, session_id, auth_header, custom_headers, limits)
                    .await
            }
        };
        self.finish_post(session, call, result)
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<reqwest::Error>> {
        self.client
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<reqwest::Error>> {
        self.client
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
            .map(|s| Box::pin(Bounded::new(s, self.allowance.clone(), self.turns.clone())) as SseStream)
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<reqwest::Error>> {
        self.client
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
            .map(|s| Box::pin(Bounded::new(s, self.allowance.clone(), self.turns.clone())) as SseStream)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    use futures::StreamExt;

    use super::*;

    fn counted(read: &Arc<AtomicUsize>, events: impl futures::Stream<Item = usize> + Send + 'static) -> Drained {
        let read = read.clone();
        Drained(Some(Box::pin(events.map(move |_| {
            read.fetch_add(1, SeqCst);
            Ok(Sse::default())
        }))))
    }

    #[tokio::test]
    async fn a_dropped_stream_is_read_to_its_end_within_bounds() {
        // the answer, then the rest: read in the background once rmcp drops it
        let read = Arc::new(AtomicUsize::new(0));
        let mut s = counted(&read, futures::stream::iter(0..5));
        assert!(s.next().await.is_some());
        drop(s);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(read.load(SeqCst), 5);

        // a server that never stops sending: at most DRAIN_EVENTS more are read
        let read = Arc::new(AtomicUsize::new(0));
        drop(counted(&read, futures::stream::iter(0..)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(read.load(SeqCst), DRAIN_EVENTS);

        // one that holds the stream open: given up after DRAIN_FOR, and never more than
        // MAX_DRAINING at once
        for _ in 0..MAX_DRAINING + 50 {
            drop(counted(&read, futures::stream::pending()));
        }
        assert_eq!(DRAINING.load(SeqCst), MAX_DRAINING);
        tokio::time::sleep(DRAIN_FOR + Duration::from_millis(200)).await;
        assert_eq!(DRAINING.load(SeqCst), 0);
    }
}
