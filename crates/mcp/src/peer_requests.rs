//! A bound on the requests an MCP server sends to the client.
//!
//! A server may ask the client things (`ping`, `roots/list`, sampling): rmcp answers each
//! one in a task of its own and sends the answer back as a POST of its own. A server that
//! sends requests without end (a `ping` per event, or methods the client does not know,
//! each of which rmcp also logs) would make the client pile up tasks, POSTs and log lines
//! without bound: gigabytes within one call. Each session gets a bucket of
//! [`BURST`] requests, filled again at [`REFILL_PER_SEC`]; requests past it are dropped
//! before rmcp sees them (the server gets no answer to them), with one warning per stream.
//! Requests and notifications larger than [`MAX_UNASKED_BYTES`] are dropped too. Answers,
//! and notifications within that size, pass untouched.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use chatterfly_egress::heavy::{HeavyFailed, Place};
use futures::Stream;
use sse_stream::Sse;

use rmcp::model::{JsonRpcMessage, JsonRpcResponse, RequestId, ServerResult};

use crate::turns::Turns;

/// The requests a session answers at once.
pub(crate) const BURST: f64 = 32.0;
/// How many more it answers each second after that.
pub(crate) const REFILL_PER_SEC: f64 = 1.0;

/// One session's allowance, shared by all its event streams (every answer rmcp POSTs may
/// come back with an event stream of its own, which must not bring a fresh allowance).
#[derive(Clone)]
pub(crate) struct Allowance(Arc<Mutex<Bucket>>);

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Default for Allowance {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Bucket {
            tokens: BURST,
            at: Instant::now(),
        })))
    }
}

impl Allowance {
    /// Takes one request's room; false when there is none left.
    pub(crate) fn take(&self) -> bool {
        let Ok(mut b) = self.0.lock() else {
            return false;
        };
        let now = Instant::now();
        let refill = now.duration_since(b.at).as_secs_f64() * REFILL_PER_SEC;
        b.tokens = (b.tokens + refill).min(BURST);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether this message, sent by the server, may go on to rmcp: anything but a request
    /// over the allowance, or a request or notification larger than [`MAX_UNASKED_BYTES`].
    /// `data` is one event's data (one JSON-RPC message, or a batch).
    pub(crate) fn admits(&self, data: &str) -> bool {
        let (requests, unasked) = unasked_in(data);
        if unasked > 0 && data.len() > MAX_UNASKED_BYTES {
            return false;
        }
        (0..requests).all(|_| self.take())
    }
}

/// The largest request or notification a server may send the client. The client has no
/// use for a large one (it reads `notifications/tools/list_changed` only), and each would
/// be parsed and queued whole, outside the budget for answers, before rmcp dropped it.
pub(crate) const MAX_UNASKED_BYTES: usize = 64 * 1024;

/// How many requests (messages with both `method` and `id`) `data` holds.
#[cfg(test)]
pub(crate) fn requests_in(data: &str) -> usize {
    unasked_in(data).0
}

/// How many requests (messages with both `method` and `id`) and how many messages with a
/// `method` (requests and notifications) `data` holds. A quick scan first: a message
/// without a `"method"` key (every answer) is not parsed again.
fn unasked_in(data: &str) -> (usize, usize) {
    if !data.contains("\"method\"") {
        return (0, 0);
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        method: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        id: Option<serde::de::IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Message {
        One(Probe),
        Batch(Vec<Probe>),
    }
    let is_request = |p: &Probe| p.method.is_some() && p.id.is_some();
    match serde_json::from_str::<Message>(data) {
        Ok(Message::One(p)) => (usize::from(is_request(&p)), usize::from(p.method.is_some())),
        Ok(Message::Batch(ps)) => (
            ps.iter().filter(|p| is_request(p)).count(),
            ps.iter().filter(|p| p.method.is_some()).count(),
        ),
        // rmcp will not take it either
        Err(_) => (0, 0),
    }
}

type Waiting = Pin<Box<dyn Future<Output = Result<Place, HeavyFailed>> + Send>>;
type Parsing = Pin<Box<dyn Future<Output = Result<Parsed, HeavyFailed>> + Send>>;

/// What a large answer parsed at the gate came to.
enum Parsed {
    /// Held for its call ([`crate::turns::hold`]): the stand-in's text.
    Held(String),
    /// Anything else, as its text: rmcp parses it (in its turn).
    Other(String),
    /// Not a message: rmcp would skip it too.
    Nothing,
}

/// Parses a large event's text (on the gate's threads) and holds it when it is the
/// answer to `call`.
fn parse_held(data: String, call: RequestId) -> Parsed {
    let len = data.len();
    match crate::turns::parse_message(data.as_bytes()) {
        Ok(JsonRpcMessage::Response(JsonRpcResponse {
            id,
            result: ServerResult::CallToolResult(result),
            ..
        })) if id == call => match crate::turns::hold(&id, result, len) {
            Some(stand_in) => Parsed::Held(stand_in),
            None => Parsed::Other(data),
        },
        Ok(_) => Parsed::Other(data),
        Err(_) => Parsed::Nothing,
    }
}

/// Whether an event carries a message (rmcp reads only these).
pub(crate) fn is_message_event(ev: &Sse) -> bool {
    matches!(ev.event.as_deref(), None | Some("" | "message"))
}

/// An event stream with the session's allowance applied to the requests it carries, and
/// large events handled in their turn ([`crate::turns`]): a call's large answer parsed at
/// the gate and replaced by a stand-in, any other large event given to rmcp once it has
/// a place.
pub(crate) struct Bounded<S> {
    inner: S,
    allowance: Allowance,
    warned: bool,
    turns: Option<Turns>,
    /// A large answer being parsed at the gate (the event, its text taken out).
    parsing: Option<(Sse, Parsing)>,
    /// A large event waiting for its place.
    waiting: Option<(Sse, Waiting)>,
    /// The place of the large event handed out last, held until the next event is asked
    /// for (rmcp parses an event and passes it on before it asks for the next).
    place: Option<Place>,
}

impl<S> Bounded<S> {
    pub(crate) fn new(inner: S, allowance: Allowance, turns: Option<Turns>) -> Self {
        Self {
            inner,
            allowance,
            warned: false,
            turns,
            parsing: None,
            waiting: None,
            place: None,
        }
    }
}

impl<S, E> Stream for Bounded<S>
where
    S: Stream<Item = Result<Sse, E>> + Unpin,
{
    type Item = Result<Sse, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // the event handed out last has been parsed by now
        self.place = None;
        loop {
            if let Some((_, parsing)) = self.parsing.as_mut() {
                let Poll::Ready(parsed) = parsing.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                let Some((mut ev, _)) = self.parsing.take() else {
                    continue;
                };
                match parsed {
                    Ok(Parsed::Held(stand_in)) => {
                        ev.data = Some(stand_in);
                        return Poll::Ready(Some(Ok(ev)));
                    }
                    Ok(Parsed::Other(data)) => {
                        ev.data = Some(data);
                        match self.turns.clone() {
                            Some(turns) => self.waiting = Some((ev, Box::pin(turns.take()))),
                            None => return Poll::Ready(Some(Ok(ev))),
                        }
                    }
                    Ok(Parsed::Nothing) | Err(_) => continue,
                }
            }
            if let Some((_, waiting)) = self.waiting.as_mut() {
                let Poll::Ready(place) = waiting.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                // the gate never closes; were it to, the event goes on without a place
                self.place = place.ok();
                if let Some((ev, _)) = self.waiting.take() {
                    return Poll::Ready(Some(Ok(ev)));
                }
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(mut ev))) => {
                    let admitted = ev.data.as_deref().is_none_or(|d| self.allowance.admits(d));
                    if admitted {
                        let large = ev.data.as_ref().is_some_and(|d| Turns::needed(d.len()));
                        match self.turns.clone() {
                            Some(turns) if large && is_message_event(&ev) && turns.call.is_some() => {
                                let (Some(data), Some(call)) = (ev.data.take(), turns.call.clone()) else {
                                    continue;
                                };
                                let parse = async move { turns.run(move || parse_held(data, call)).await };
                                self.parsing = Some((ev, Box::pin(parse)));
                                continue;
                            }
                            Some(turns) if large => {
                                self.waiting = Some((ev, Box::pin(turns.take())));
                                continue;
                            }
                            _ => return Poll::Ready(Some(Ok(ev))),
                        }
                    }
                    if !self.warned {
                        self.warned = true;
                        tracing::warn!(
                            "the MCP server sends more requests than a session answers ({BURST} at once, \
                             {REFILL_PER_SEC} a second), or requests or notifications over {MAX_UNASKED_BYTES} bytes; \
                             they are ignored"
                        );
                    }
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_are_counted() {
        assert_eq!(requests_in(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), 1);
        assert_eq!(requests_in(r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#), 0);
        assert_eq!(
            requests_in(r#"{"jsonrpc":"2.0","id":1,"result":{"x":"\"method\""}}"#),
            0
        );
        assert_eq!(requests_in(r#"{"jsonrpc":"2.0","id":1,"result":{"method":"x"}}"#), 0);
        assert_eq!(
            requests_in(r#"[{"id":1,"method":"ping"},{"method":"n"},{"id":"a","method":"roots/list"}]"#),
            2
        );
        assert_eq!(requests_in("not json \"method\""), 0);
    }

    #[test]
    fn the_allowance_is_a_burst_then_a_trickle() {
        let a = Allowance::default();
        let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let admitted = (0..1000).filter(|_| a.admits(ping)).count();
        assert_eq!(admitted, BURST as usize);
        // answers and notifications always pass
        assert!(a.admits(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#));
        assert!(a.admits(r#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(a.admits(ping), "refilled after a while");
    }

    #[test]
    fn large_requests_and_notifications_are_dropped_and_answers_of_any_size_pass() {
        let a = Allowance::default();
        let pad = "k".repeat(MAX_UNASKED_BYTES);
        let note = format!(r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"data":"{pad}"}}}}"#);
        assert!(!a.admits(&note));
        let request =
            format!(r#"{{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":{{"x":"{pad}"}}}}"#);
        assert!(!a.admits(&request));
        let batch = format!(r#"[{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"x":"{pad}"}}}}]"#);
        assert!(!a.admits(&batch));
        // an answer carrying a "method" key of its own, and a large answer
        let answer = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"method":"{pad}"}}}}"#);
        assert!(a.admits(&answer));
        assert!(a.admits(&format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"x":"{pad}{pad}"}}}}"#)));
        // a small notification passes
        assert!(a.admits(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#));
    }
}
