//! Telegram bots: `send_message`, `get_me` and `get_updates` against the Bot API
//! (`https://api.telegram.org`, or the local Bot API server a connection's `base_url`
//! names). The bot token sits in the URL path (`/bot<token>/<method>`), so these calls:
//! follow no redirect (a redirect would carry the path, token included, wherever it
//! points), hold the token in play for the log's redaction, redact it from whatever comes
//! back, and never put a URL into an error.
//!
//! Telegram answers `{"ok": true, "result": …}` or `{"ok": false, "error_code",
//! "description", "parameters": {"retry_after"}}`; the second becomes a [`ToolError`] whose
//! problem document carries the wait.

use chatterfly_domain::telegram::{ChatId, check_text};
use chatterfly_egress::{Egress, Limits, OutboundRequest};
use chatterfly_vault::{ExposeSecret, Secret};
use http::{HeaderValue, Method, header};
use serde_json::{Map, Value};
use url::Url;

use crate::{Redactor, ToolError};

/// A Telegram answer larger than this is not one of these methods' answers.
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// The Bot API method of a built-in operation.
fn method_of(operation: &str) -> Option<&'static str> {
    Some(match operation {
        "send_message" => "sendMessage",
        "get_me" => "getMe",
        "get_updates" => "getUpdates",
        _ => return None,
    })
}

/// The request body for an operation, after Telegram's own rules (the input schema has
/// been checked already). Nothing is sent when this fails.
pub fn body_for(operation: &str, args: &Map<String, Value>) -> Result<Map<String, Value>, ToolError> {
    let invalid = |pointer: &str, detail: String| ToolError::InvalidArguments {
        pointer: pointer.to_owned(),
        detail,
    };
    let mut body = Map::new();
    match operation {
        "send_message" => {
            let chat = args
                .get("chat_id")
                .ok_or_else(|| invalid("/chat_id", "`chat_id` is required".into()))?;
            let chat = ChatId::parse(chat).map_err(|e| invalid("/chat_id", e))?;
            let text = args
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("/text", "`text` is required".into()))?;
            let mode = args.get("parse_mode").and_then(Value::as_str);
            check_text(text, mode).map_err(|e| invalid("/text", e))?;
            body.insert("chat_id".into(), chat.to_json());
            body.insert("text".into(), Value::String(text.to_owned()));
            if let Some(m) = mode {
                body.insert("parse_mode".into(), Value::String(m.to_owned()));
            }
            if let Some(v) = args.get("disable_notification") {
                body.insert("disable_notification".into(), v.clone());
            }
            whole(args, &mut body, "reply_to_message_id")?;
        }
        "get_me" => {}
        "get_updates" => {
            for key in ["offset", "limit", "timeout"] {
                whole(args, &mut body, key)?;
            }
            if let Some(v) = args.get("allowed_updates") {
                body.insert("allowed_updates".into(), v.clone());
            }
        }
        other => {
            return Err(ToolError::NotFound(format!(
                "Telegram has no built-in operation `{}`",
                crate::short(other)
            )));
        }
    }
    Ok(body)
}

/// Copies an integer argument, which must fit in 64 bits (`1e30` is an integer to JSON
/// Schema, and would reach Telegram as `1e+30`).
fn whole(args: &Map<String, Value>, body: &mut Map<String, Value>, key: &str) -> Result<(), ToolError> {
    if let Some(v) = args.get(key) {
        let n = v.as_i64().ok_or_else(|| ToolError::InvalidArguments {
            pointer: format!("/{key}"),
            detail: format!("`{key}` must be a whole number within 64 bits"),
        })?;
        body.insert(key.into(), Value::from(n));
    }
    Ok(())
}

/// The longest wait passed on from Telegram's `retry_after` (a day).
const MAX_RETRY_AFTER: u64 = 86_400;

/// `<base_url>/bot<token>/<method>`: the base's own path kept (a local Bot API server may
/// live under one).
fn method_url(base_url: &str, token: &str, method: &str) -> Result<Url, ToolError> {
    let mut url = Url::parse(base_url)
        .map_err(|_| ToolError::Internal("the stored base URL of a Telegram connection is not a URL".into()))?;
    {
        let mut segs = url
            .path_segments_mut()
            .map_err(|()| ToolError::Internal("the stored base URL of a Telegram connection has no path".into()))?;
        segs.pop_if_empty();
        segs.push(&format!("bot{token}"));
        segs.push(method);
    }
    Ok(url)
}

/// Calls a built-in operation and returns Telegram's `result`, the token redacted.
pub async fn call(
    egress: &Egress,
    limits: Option<Limits>,
    tenant: Option<std::sync::Arc<str>>,
    base_url: &str,
    operation: &str,
    args: &Map<String, Value>,
    token: &Secret,
) -> Result<Value, ToolError> {
    let method = method_of(operation).ok_or_else(|| {
        ToolError::NotFound(format!(
            "Telegram has no built-in operation `{}`",
            crate::short(operation)
        ))
    })?;
    if !chatterfly_domain::auth::is_bot_token(token.expose_secret()) {
        return Err(ToolError::InvalidCredentials(
            "the bot token is not of Telegram's form (the bot's numeric id, `:`, then letters, digits, `_` or `-`)"
                .into(),
        ));
    }
    let body = body_for(operation, args)?;
    // the redactor holds the token in play (log redaction) for the whole call
    let mut values = vec![token.expose_secret().to_owned()];
    if let Some((_, secret)) = token.expose_secret().split_once(':')
        && secret.len() >= 8
    {
        values.push(secret.to_owned());
    }
    let redactor = Redactor::for_values(values);
    let url = method_url(base_url, token.expose_secret(), method)?;
    let mut req = OutboundRequest::new(Method::POST, url);
    req.tenant = tenant;
    req.headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    req.headers
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    req.body = Some(bytes::Bytes::from(Value::Object(body).to_string()));
    let max = egress.max_limits();
    let mut limits = limits.unwrap_or(max);
    // the token is in the path: a redirect would take it wherever it points
    limits.max_redirects = 0;
    limits.max_response_bytes = limits.max_response_bytes.min(MAX_ANSWER);
    // long polling waits up to `timeout` seconds before Telegram answers
    if let Some(wait) = args.get("timeout").and_then(Value::as_u64) {
        limits.total_timeout = limits
            .total_timeout
            .max(std::time::Duration::from_secs(wait + 10))
            .min(max.total_timeout.max(std::time::Duration::from_secs(35)));
    }
    let resp = egress.send(req, Some(limits)).await.map_err(|e| match e {
        chatterfly_egress::EgressError::TooManyRedirects { .. } => ToolError::Upstream {
            status: 502,
            message: "the Bot API server answered with a redirect; Telegram calls follow no redirects (the bot token is in the URL)".into(),
        },
        other => ToolError::Egress(other),
    })?;
    let answer: Value = serde_json::from_slice(&resp.body).map_err(|_| ToolError::Upstream {
        status: 502,
        message: format!(
            "the Bot API server answered with HTTP {} and a body that is not Telegram's JSON",
            resp.status.as_u16()
        ),
    })?;
    let answer = redactor.value(answer);
    if answer.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(answer.get("result").cloned().unwrap_or(Value::Null));
    }
    let error_code = answer
        .get("error_code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(resp.status.as_u16());
    let description = answer
        .get("description")
        .and_then(Value::as_str)
        .map(crate::short)
        .unwrap_or_else(|| "no description".into());
    let retry_after = answer
        .pointer("/parameters/retry_after")
        .and_then(Value::as_u64)
        .map(|s| s.min(MAX_RETRY_AFTER));
    Err(ToolError::Telegram {
        error_code,
        description,
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_token_is_one_path_segment_after_the_base_path() {
        let u = method_url("https://api.telegram.org", "123:abc", "getMe").unwrap();
        assert_eq!(u.as_str(), "https://api.telegram.org/bot123:abc/getMe");
        let u = method_url("http://127.0.0.1:8081/tg/", "123:abc", "sendMessage").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:8081/tg/bot123:abc/sendMessage");
    }

    #[test]
    fn messages_are_checked_before_anything_is_sent() {
        let args = |v: Value| v.as_object().cloned().unwrap();
        let ok = body_for("send_message", &args(json!({"chat_id": "-100123", "text": "hi"}))).unwrap();
        assert_eq!(ok["chat_id"], json!(-100_123));
        for (v, pointer) in [
            (json!({"chat_id": "bob", "text": "hi"}), "/chat_id"),
            (json!({"chat_id": 1, "text": "x".repeat(5000)}), "/text"),
            (json!({"chat_id": 1, "text": "a\u{7}"}), "/text"),
            (json!({"chat_id": 1, "text": "<x>", "parse_mode": "HTML"}), "/text"),
        ] {
            match body_for("send_message", &args(v.clone())) {
                Err(ToolError::InvalidArguments { pointer: p, .. }) => assert_eq!(p, pointer, "{v}"),
                other => panic!("{v}: {other:?}"),
            }
        }
    }
}
