//! Large MCP answers are parsed off the MCP sessions' threads, in their workspace's turn.
//!
//! rmcp reads and parses every message a server sends on the sessions' runtime
//! ([`crate::sessions_runtime`]), which all workspaces share: one workspace's dozen 4 MB
//! answers, parsed one after another there, held up every other workspace's MCP calls for
//! as long as they took (measured: another workspace's small call waited 0.6 to 0.8 s at
//! the median). So the event stream rmcp reads ([`crate::peer_requests::Bounded`]) parses
//! a `tools/call`'s answer of [`HEAVY_BYTES`] or more itself, on the large-answer gate's
//! threads ([`chatterfly_egress::heavy`]) in its workspace's lane (the lane its HTTP
//! answers are parsed in), keeps the result here ([`hold`]) and hands rmcp, in the
//! answer's place in the stream, a small stand-in naming it, which the call redeems
//! ([`redeem`]). Any other large event (an answer with another id, on the GET stream)
//! waits for a place in the same lane before rmcp parses it. Either way a workspace has at
//! most the gate's share of large messages being parsed at once.
//!
//! The stand-in's name is 122 random bits, never sent anywhere: a server cannot name
//! another call's answer. Answers not redeemed (their caller gone) are let go after
//! [`HELD_FOR`]; at most [`HELD_MAX_BYTES`] of answers (by the length of their text) are
//! held at once, past which rmcp parses them as before (in their turn).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatterfly_egress::heavy::{HEAVY_BYTES, Heavy, HeavyFailed, Place};
use rmcp::model::{
    CallToolResult, ContentBlock as Content, JsonRpcMessage, JsonRpcResponse, JsonRpcVersion2_0, RequestId,
    ServerJsonRpcMessage, ServerResult,
};

/// A large message a server sent, parsed: as serde_json parses it, unless it answers a call
/// with a result too dense to parse whole (`chatterfly_domain::density::too_dense`: a
/// long list of tiny values, which parsed takes 60 or more times its text; a 10 MB answer
/// took the server past 1.3 GB). Then the result's fields are parsed one by one, and a
/// field too dense is kept as its text: `structuredContent` as a string,
/// `content` as one text block, `_meta` left out (as HTTP tools hand on such an answer
/// as text).
pub(crate) fn parse_message(data: &[u8]) -> Result<ServerJsonRpcMessage, serde_json::Error> {
    use chatterfly_domain::density::{FREE_VALUES, too_dense};
    if data.len() < FREE_VALUES || !too_dense(data) {
        return serde_json::from_slice(data);
    }
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        id: RequestId,
        #[serde(borrow)]
        result: &'a serde_json::value::RawValue,
    }
    match serde_json::from_slice::<Envelope<'_>>(data) {
        Ok(e) => Ok(JsonRpcMessage::Response(JsonRpcResponse {
            jsonrpc: JsonRpcVersion2_0,
            id: e.id,
            result: ServerResult::CallToolResult(sparse_result(e.result.get())?),
        })),
        // not a result (an error, a request): parsed as it is
        Err(_) => serde_json::from_slice(data),
    }
}

/// A tool's result whose text may be too dense to parse whole (see [`parse_message`]).
pub(crate) fn sparse_result(text: &str) -> Result<CallToolResult, serde_json::Error> {
    use chatterfly_domain::density::{FREE_VALUES, too_dense};
    if text.len() < FREE_VALUES || !too_dense(text.as_bytes()) {
        return serde_json::from_str(text);
    }
    let raw: std::collections::BTreeMap<String, &serde_json::value::RawValue> = serde_json::from_str(text)?;
    let mut out = serde_json::Map::new();
    for (key, value) in raw {
        let field = value.get();
        let dense = field.len() >= FREE_VALUES && too_dense(field.as_bytes());
        let parsed = match (dense, key.as_str()) {
            (false, _) => serde_json::from_str(field)?,
            (true, "content") => serde_json::json!([{"type": "text", "text": field}]),
            (true, "_meta") => continue,
            (true, _) => serde_json::Value::String(field.to_owned()),
        };
        out.insert(key, parsed);
    }
    serde_json::from_value(serde_json::Value::Object(out))
}

/// The `_meta` key of a stand-in.
const HELD_KEY: &str = "io.chatterfly/held";
/// How long a parsed answer waits for its call (which takes it within milliseconds, unless
/// the call has gone: then it is let go at the next hold after this).
const HELD_FOR: Duration = Duration::from_secs(10);
/// The most answer text held at once. A parsed answer takes many times its text (up to
/// 70 times for deep nesting), and held answers are outside the budget for answers in
/// flight until their call takes them: a workspace that calls and hangs up cannot pile
/// them up beyond this.
const HELD_MAX_BYTES: usize = 32 * 1024 * 1024;

struct Held {
    at: Instant,
    len: usize,
    result: CallToolResult,
}

fn held() -> &'static Mutex<HashMap<String, Held>> {
    static HELD: std::sync::OnceLock<Mutex<HashMap<String, Held>>> = std::sync::OnceLock::new();
    HELD.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Keeps a parsed answer (`len` bytes of text) for its call; the stand-in's text for the
/// answer to `id`, or `None` when there is no room (the answer is freed here, and the
/// caller hands rmcp the text).
pub(crate) fn hold(id: &RequestId, result: CallToolResult, len: usize) -> Option<String> {
    let Ok(mut map) = held().lock() else {
        return None;
    };
    let now = Instant::now();
    map.retain(|_, h| now.duration_since(h.at) < HELD_FOR);
    let total: usize = map.values().map(|h| h.len).sum();
    if total.saturating_add(len) > HELD_MAX_BYTES {
        return None;
    }
    let name = uuid::Uuid::new_v4().simple().to_string();
    let stand_in = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {"content": [], "_meta": {HELD_KEY: name}},
    });
    map.insert(name, Held { at: now, len, result });
    Some(stand_in.to_string())
}

/// The answer a call got: the held answer its stand-in names, or the answer itself.
pub(crate) fn redeem(result: CallToolResult) -> CallToolResult {
    let Some(name) = result
        .meta
        .as_ref()
        .and_then(|m| m.0.get(HELD_KEY))
        .and_then(serde_json::Value::as_str)
    else {
        return result;
    };
    let found = held().lock().ok().and_then(|mut map| map.remove(name));
    match found {
        Some(h) => h.result,
        None => CallToolResult::error(vec![Content::text(
            "the answer was not collected in time and was let go",
        )]),
    }
}

/// The lane a session's large messages wait in, and the call whose answer a stream
/// carries (a POST's stream).
#[derive(Clone)]
pub(crate) struct Turns {
    heavy: Heavy,
    lane: Arc<str>,
    pub(crate) call: Option<RequestId>,
}

impl Turns {
    pub(crate) fn new(heavy: Heavy, lane: Arc<str>) -> Self {
        Self {
            heavy,
            lane,
            call: None,
        }
    }

    /// The same lane, for the stream of the call `call`.
    pub(crate) fn for_call(mut self, call: Option<RequestId>) -> Self {
        self.call = call;
        self
    }

    /// Whether a message of this many bytes waits for its turn.
    pub(crate) fn needed(len: usize) -> bool {
        len >= HEAVY_BYTES
    }

    /// Waits for a place in the lane and at the gate.
    pub(crate) async fn take(self) -> Result<Place, HeavyFailed> {
        self.heavy.place(&self.lane).await
    }

    /// Runs `work` on the gate's threads in this lane (a parse the client does itself).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HeavyFailed> {
        self.heavy.run(&self.lane, work).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_answers_are_redeemed_once_by_their_stand_in_only() {
        let id = RequestId::Number(7);
        let answer = CallToolResult::success(vec![Content::text("large")]);
        let stand_in = hold(&id, answer, 10).unwrap_or_default();
        let parsed: serde_json::Value = serde_json::from_str(&stand_in).unwrap_or_default();
        assert_eq!(parsed["id"], 7);
        let name = parsed["result"]["_meta"][HELD_KEY]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(name.len(), 32);
        let standing: CallToolResult =
            serde_json::from_value(parsed["result"].clone()).unwrap_or_else(|_| CallToolResult::error(vec![]));
        let got = redeem(standing.clone());
        assert_eq!(
            got.content.first().and_then(|c| c.as_text()).map(|t| t.text.as_str()),
            Some("large")
        );
        // a second time, or a name the client never gave: no answer
        assert_eq!(redeem(standing).is_error, Some(true));
        let mut forged = CallToolResult::success(vec![]);
        forged.meta = serde_json::from_value(serde_json::json!({HELD_KEY: "0".repeat(32)})).ok();
        assert_eq!(redeem(forged).is_error, Some(true));
        // an ordinary answer passes untouched
        let plain = CallToolResult::success(vec![Content::text("small")]);
        assert_eq!(redeem(plain.clone()), plain);
    }
}
