//! The older MCP transport, HTTP+SSE (protocol 2024-11-05), as an rmcp [`Transport`], so
//! that sessions, tool calls and discovery are the same code whichever transport a server
//! speaks.
//!
//! The client opens `GET <url>` as an event stream; the server's first `endpoint` event
//! names the URL to POST messages to, and its replies arrive as `message` events on the
//! stream. The announced endpoint must be on the server URL's origin: a server cannot send
//! the client (and its Authorization header) anywhere else, including a private address
//! that would dodge the SSRF check made on the server URL.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http::HeaderValue;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use sse_stream::{Sse, SseStream};
use url::Url;

/// Why the SSE transport failed.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("the MCP server answered the event-stream request with HTTP {0}")]
    Status(u16),
    #[error("the MCP server did not answer with an event stream (content type {0})")]
    NotEventStream(String),
    #[error("the event stream ended before the server announced its message endpoint")]
    NoEndpoint,
    #[error("the announced message endpoint is not a URL")]
    BadEndpoint,
    #[error("the announced message endpoint is on another origin ({0}); it must stay on the server URL's origin")]
    OtherOrigin(String),
    #[error("the event stream failed: {0}")]
    Stream(String),
    #[error("one event is larger than {0} bytes")]
    EventTooLarge(usize),
    #[error("the MCP server refused the message with HTTP {0}")]
    PostStatus(u16),
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("cannot encode the message: {0}")]
    Encode(#[from] serde_json::Error),
}

type Events = BoxStream<'static, Result<Sse, sse_stream::Error>>;

/// An open HTTP+SSE session.
pub struct SseTransport {
    client: std::sync::Arc<reqwest::Client>,
    endpoint: Url,
    auth: Option<HeaderValue>,
    events: Option<Events>,
    post_timeout: Duration,
    /// The bound on the requests the server sends ([`crate::peer_requests`]).
    allowance: crate::peer_requests::Allowance,
    warned: bool,
    /// Where large messages are parsed ([`crate::turns`]).
    turns: Option<crate::turns::Turns>,
}

impl SseTransport {
    /// Opens the event stream and waits for the `endpoint` event. The caller has checked
    /// `url` against the SSRF guard; `auth` is the whole Authorization value.
    pub(crate) async fn connect(
        client: std::sync::Arc<reqwest::Client>,
        url: &Url,
        auth: Option<HeaderValue>,
        max_event_bytes: usize,
        post_timeout: Duration,
        turns: Option<crate::turns::Turns>,
    ) -> Result<Self, SseError> {
        let mut req = client
            .get(url.clone())
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(a) = &auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let resp = req.send().await.map_err(reqwest::Error::without_url)?;
        if !resp.status().is_success() {
            return Err(SseError::Status(resp.status().as_u16()));
        }
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        if !ct.to_ascii_lowercase().starts_with("text/event-stream") {
            return Err(SseError::NotEventStream(ct.chars().take(100).collect()));
        }
        let bytes = Limited::new(resp.bytes_stream(), max_event_bytes);
        let mut events: Events = SseStream::from_bytes_stream(bytes).boxed();
        let endpoint = loop {
            match events.next().await {
                None => return Err(SseError::NoEndpoint),
                Some(Err(e)) => return Err(event_error(e, max_event_bytes)),
                Some(Ok(ev)) if ev.event.as_deref() == Some("endpoint") => {
                    let data = ev.data.unwrap_or_default();
                    let endpoint = url.join(data.trim()).map_err(|_| SseError::BadEndpoint)?;
                    if endpoint.origin() != url.origin() {
                        return Err(SseError::OtherOrigin(origin_text(&endpoint)));
                    }
                    break endpoint;
                }
                Some(Ok(_)) => continue,
            }
        };
        Ok(Self {
            client,
            endpoint,
            auth,
            events: Some(events),
            post_timeout,
            allowance: crate::peer_requests::Allowance::default(),
            warned: false,
            turns,
        })
    }
}

fn origin_text(u: &Url) -> String {
    // scheme, host and port only: the path and query may carry anything
    u.origin().ascii_serialization()
}

fn event_error(e: sse_stream::Error, max: usize) -> SseError {
    match e {
        sse_stream::Error::Body(b) if matches!(b.downcast_ref::<StreamError>(), Some(StreamError::TooLarge)) => {
            SseError::EventTooLarge(max)
        }
        // the body error is a reqwest error without its URL
        other => SseError::Stream(other.to_string()),
    }
}

impl Transport<RoleClient> for SseTransport {
    type Error = SseError;

    fn send(&mut self, item: ClientJsonRpcMessage) -> impl Future<Output = Result<(), SseError>> + Send + 'static {
        let client = self.client.clone();
        let endpoint = self.endpoint.clone();
        let auth = self.auth.clone();
        let timeout = self.post_timeout;
        async move {
            let body = serde_json::to_vec(&item)?;
            let mut req = client
                .post(endpoint)
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .timeout(timeout)
                .body(body);
            if let Some(a) = auth {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = req.send().await.map_err(reqwest::Error::without_url)?;
            let status = resp.status();
            // the reply arrives on the event stream; the POST's own body is not needed
            drop(resp);
            if status.is_success() {
                Ok(())
            } else {
                Err(SseError::PostStatus(status.as_u16()))
            }
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        let events = self.events.as_mut()?;
        loop {
            match events.next().await {
                None => return None,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "MCP event stream failed");
                    self.events = None;
                    return None;
                }
                Some(Ok(ev)) => {
                    if !matches!(ev.event.as_deref(), None | Some("message")) {
                        continue;
                    }
                    let Some(data) = ev.data.filter(|d| !d.trim().is_empty()) else {
                        continue;
                    };
                    if !self.allowance.admits(&data) {
                        if !self.warned {
                            self.warned = true;
                            tracing::warn!(
                                "the MCP server sends more requests than a session answers, or requests or notifications over 64 KiB; they are ignored"
                            );
                        }
                        continue;
                    }
                    let parsed = match &self.turns {
                        // a large message is parsed off the sessions' runtime, in its turn
                        Some(turns) if crate::turns::Turns::needed(data.len()) => {
                            match turns
                                .run(move || serde_json::from_str::<ServerJsonRpcMessage>(&data))
                                .await
                            {
                                Ok(parsed) => parsed,
                                Err(e) => {
                                    tracing::debug!(error = %e, "an MCP event could not be parsed");
                                    continue;
                                }
                            }
                        }
                        _ => serde_json::from_str::<ServerJsonRpcMessage>(&data),
                    };
                    match parsed {
                        Ok(m) => return Some(m),
                        Err(e) => tracing::debug!(error = %e, "ignoring an MCP event that is not a JSON-RPC message"),
                    }
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), SseError> {
        self.events = None;
        Ok(())
    }
}

/// What the bounded byte stream can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    #[error("event too large")]
    TooLarge,
    #[error("{0}")]
    Body(reqwest::Error),
}

/// Bounds the size of one event (the bytes since the last blank line), so a server cannot
/// make the client buffer an endless event.
pub(crate) struct Limited<S> {
    inner: S,
    max: usize,
    current: usize,
    /// The last byte seen was a line end (`\n`; a `\r\n` pair counts as one).
    at_line_start: bool,
    failed: bool,
}

impl<S> Limited<S> {
    pub(crate) fn new(inner: S, max: usize) -> Self {
        Self {
            inner,
            max,
            current: 0,
            at_line_start: true,
            failed: false,
        }
    }

    fn observe(&mut self, chunk: &[u8]) -> bool {
        for &b in chunk {
            match b {
                b'\r' => {}
                b'\n' if self.at_line_start => self.current = 0,
                b'\n' => self.at_line_start = true,
                _ => {
                    self.at_line_start = false;
                    self.current += 1;
                    if self.current > self.max {
                        return false;
                    }
                }
            }
        }
        true
    }
}

impl<S> Stream for Limited<S>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Unpin,
{
    type Item = Result<Bytes, StreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if self.observe(&chunk) {
                    Poll::Ready(Some(Ok(chunk)))
                } else {
                    self.failed = true;
                    Poll::Ready(Some(Err(StreamError::TooLarge)))
                }
            }
            Poll::Ready(Some(Err(e))) => {
                self.failed = true;
                Poll::Ready(Some(Err(StreamError::Body(e.without_url()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_one_event_at_a_time() {
        let mut l = Limited::new(futures::stream::empty::<Result<Bytes, reqwest::Error>>(), 12);
        assert!(l.observe(b"data: 12345\n\n"));
        assert!(l.observe(b"data: 1234\r\n\r\ndata: 1\n"));
        assert!(!l.observe(b"data: 123456"));
        let mut l = Limited::new(futures::stream::empty::<Result<Bytes, reqwest::Error>>(), 15);
        // split across chunks, lines of one event add up (7 + 4, then 11 + 7 > 15)
        assert!(l.observe(b"data: 1"));
        assert!(l.observe(b"\ndata"));
        assert!(!l.observe(b": 12345\n"));
    }
}
