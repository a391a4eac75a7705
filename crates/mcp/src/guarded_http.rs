//! The Streamable HTTP client rmcp drives: the guarded egress client, plus one correction.
//!
//! The specification says a server answers 404 to a request carrying a session id it no
//! longer knows, and rmcp then re-initializes transparently. The TypeScript SDK's servers
//! (the reference server among them) answer 400 with a JSON-RPC error that has no `id`
//! ("No valid session ID provided") instead, which rmcp cannot match to the request, so
//! the call would wait until it times out. Such an answer to a request that carried a
//! session id is treated as the 404 it means.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, JsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use sse_stream::Sse;

#[derive(Clone)]
pub(crate) struct GuardedHttp(pub(crate) reqwest::Client, pub(crate) Refusal);

/// The HTTP status of the last answer that refused a POST (0: none). rmcp flattens the
/// refusal into text inside its worker, so the status is kept here for the error that the
/// session's owner reports (a 401 is `upstream_unauthorized`, not a protocol error).
#[derive(Clone, Default)]
pub(crate) struct Refusal(Arc<std::sync::atomic::AtomicU16>);

impl Refusal {
    pub(crate) fn status(&self) -> Option<u16> {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            s => Some(s),
        }
    }

    fn note(&self, result: &PostResult) {
        let status = match result {
            Err(StreamableHttpError::AuthRequired(_)) => 401,
            Err(StreamableHttpError::InsufficientScope(_)) => 403,
            Err(StreamableHttpError::UnexpectedServerResponse(text)) => {
                match text
                    .strip_prefix("HTTP ")
                    .and_then(|t| t.get(..3))
                    .and_then(|c| c.parse().ok())
                {
                    Some(code) => code,
                    None => return,
                }
            }
            _ => return,
        };
        self.0.store(status, std::sync::atomic::Ordering::Relaxed);
    }
}

type PostResult = Result<StreamableHttpPostResponse, StreamableHttpError<reqwest::Error>>;

fn forgotten_session(session: bool, result: PostResult) -> PostResult {
    match result {
        Ok(StreamableHttpPostResponse::Json(JsonRpcMessage::Error(e), _)) if session && e.id.is_none() => {
            Err(StreamableHttpError::SessionExpired)
        }
        other => other,
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
        let session = session_id.is_some();
        let result = self
            .0
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await;
        self.1.note(&result);
        forgotten_session(session, result)
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
        let session = session_id.is_some();
        let result = self
            .0
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await;
        self.1.note(&result);
        forgotten_session(session, result)
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
        let session = session_id.is_some();
        let result = self
            .0
            .post_message_with_response_limits(uri, message, session_id, auth_header, custom_headers, limits)
            .await;
        self.1.note(&result);
        forgotten_session(session, result)
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<reqwest::Error>> {
        self.0
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
        self.0
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
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
        self.0
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}
