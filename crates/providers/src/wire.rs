//! Each provider's request and answer, built from and read into [`crate::chat`]'s shapes:
//! OpenAI Chat Completions, Anthropic Messages, Gemini generateContent. The runner sends
//! the request through Chatterfly's guarded client with the key in the header named by
//! [`key_headers`] (never in the URL); these types are ours rather than a provider SDK's
//! because the SDKs bring their own HTTP clients, which would bypass the SSRF guard.

use serde_json::{Map, Value, json};

use crate::Provider;
use crate::chat::{Message, ToolCall, Turn, Usage};
use crate::declare::Declarations;

/// What a model turn is asked with.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub model: &'a str,
    pub system: &'a str,
    pub messages: &'a [Message],
    pub tools: &'a Declarations,
    pub max_tokens: u32,
}

/// An HTTP request, less the key and the base URL.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// Appended to the provider's base URL.
    pub path: String,
    pub body: Value,
}

/// Why an answer is not a turn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The provider refused (its status and its own message, cut short).
    #[error("{provider} answered HTTP {status}: {message}")]
    Refused {
        provider: Provider,
        status: u16,
        message: String,
    },
    /// The answer is not what the provider's API documents.
    #[error("{provider}'s answer could not be read: {0}", provider = .1)]
    Malformed(String, Provider),
}

/// Ids we make up for calls that came without one start so (and are not sent back).
const LOCAL_ID: &str = "chatterfly_call_";

/// The headers a request carries the key in (name, value), and the API version header.
pub fn key_headers(provider: Provider, key: &str) -> Vec<(&'static str, String)> {
    match provider {
        Provider::OpenAi => vec![("authorization", format!("Bearer {key}"))],
        Provider::Anthropic => vec![
            ("x-api-key", key.to_owned()),
            ("anthropic-version", "2023-06-01".into()),
        ],
        Provider::Gemini => vec![("x-goog-api-key", key.to_owned())],
    }
}

/// Whether `model` is a model name we put in a request (and in Gemini's URL path).
pub fn valid_model(model: &str) -> bool {
    (1..=128).contains(&model.len())
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'@'))
}

/// The provider's request for `req`.
pub fn build(provider: Provider, req: &Request<'_>) -> HttpRequest {
    match provider {
        Provider::OpenAi => openai(req),
        Provider::Anthropic => anthropic(req),
        Provider::Gemini => gemini(req),
    }
}

fn openai(req: &Request<'_>) -> HttpRequest {
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        messages.push(json!({"role": "system", "content": req.system}));
    }
    for m in req.messages {
        match m {
            Message::User { text } => messages.push(json!({"role": "user", "content": text})),
            Message::Assistant { text, calls } => {
                let mut a = Map::new();
                a.insert("role".into(), json!("assistant"));
                a.insert("content".into(), text.as_ref().map_or(Value::Null, |t| json!(t)));
                if !calls.is_empty() {
                    let calls: Vec<Value> = calls
                        .iter()
                        .map(|c| {
                            let args = c.malformed.clone().unwrap_or_else(|| c.arguments.to_string());
                            json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": args}})
                        })
                        .collect();
                    a.insert("tool_calls".into(), Value::Array(calls));
                }
                messages.push(Value::Object(a));
            }
            Message::Tool { results } => {
                for r in results {
                    messages.push(json!({"role": "tool", "tool_call_id": r.id, "content": r.content}));
                }
            }
        }
    }
    let mut body = json!({"model": req.model, "messages": messages, "max_completion_tokens": req.max_tokens});
    if !req.tools.tools.is_empty() {
        body["tools"] = req.tools.wire();
    }
    HttpRequest {
        path: "/v1/chat/completions".into(),
        body,
    }
}

fn anthropic(req: &Request<'_>) -> HttpRequest {
    let mut messages = Vec::new();
    for m in req.messages {
        match m {
            Message::User { text } => {
                messages.push(json!({"role": "user", "content": [{"type": "text", "text": text}]}))
            }
            Message::Assistant { text, calls } => {
                let mut content = Vec::new();
                if let Some(t) = text.as_ref().filter(|t| !t.is_empty()) {
                    content.push(json!({"type": "text", "text": t}));
                }
                for c in calls {
                    let input = if c.arguments.is_object() {
                        c.arguments.clone()
                    } else {
                        json!({})
                    };
                    content.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
                }
                messages.push(json!({"role": "assistant", "content": content}));
            }
            Message::Tool { results } => {
                let content: Vec<Value> = results
                    .iter()
                    .map(|r| json!({"type": "tool_result", "tool_use_id": r.id, "content": r.content, "is_error": r.is_error}))
                    .collect();
                messages.push(json!({"role": "user", "content": content}));
            }
        }
    }
    let mut body = json!({"model": req.model, "max_tokens": req.max_tokens, "messages": messages});
    if !req.system.is_empty() {
        body["system"] = json!(req.system);
    }
    if !req.tools.tools.is_empty() {
        body["tools"] = req.tools.wire();
    }
    HttpRequest {
        path: "/v1/messages".into(),
        body,
    }
}

fn gemini(req: &Request<'_>) -> HttpRequest {
    let mut contents = Vec::new();
    for m in req.messages {
        match m {
            Message::User { text } => contents.push(json!({"role": "user", "parts": [{"text": text}]})),
            Message::Assistant { text, calls } => {
                let mut parts = Vec::new();
                if let Some(t) = text.as_ref().filter(|t| !t.is_empty()) {
                    parts.push(json!({"text": t}));
                }
                for c in calls {
                    let mut call = json!({"name": c.name, "args": if c.arguments.is_object() { c.arguments.clone() } else { json!({}) }});
                    if !c.id.starts_with(LOCAL_ID) {
                        call["id"] = json!(c.id);
                    }
                    parts.push(json!({"functionCall": call}));
                }
                contents.push(json!({"role": "model", "parts": parts}));
            }
            Message::Tool { results } => {
                let parts: Vec<Value> = results
                    .iter()
                    .map(|r| {
                        let value: Value = serde_json::from_str(&r.content).unwrap_or_else(|_| json!(r.content));
                        let key = if r.is_error { "error" } else { "output" };
                        let mut resp = json!({"name": r.name, "response": {key: value}});
                        if !r.id.starts_with(LOCAL_ID) {
                            resp["id"] = json!(r.id);
                        }
                        json!({"functionResponse": resp})
                    })
                    .collect();
                contents.push(json!({"role": "user", "parts": parts}));
            }
        }
    }
    let mut body = json!({"contents": contents, "generationConfig": {"maxOutputTokens": req.max_tokens}});
    if !req.system.is_empty() {
        body["systemInstruction"] = json!({"parts": [{"text": req.system}]});
    }
    if !req.tools.tools.is_empty() {
        body["tools"] = req.tools.wire();
    }
    let model: String = req
        .model
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HttpRequest {
        path: format!("/v1beta/models/{model}:generateContent"),
        body,
    }
}

/// The turn in an answer of HTTP `status` with `body`.
pub fn parse(provider: Provider, status: u16, body: &[u8]) -> Result<Turn, AnswerError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if !(200..300).contains(&status) {
        let message = json
            .as_ref()
            .and_then(|j| j.pointer("/error/message"))
            .and_then(Value::as_str)
            .map(clean)
            .unwrap_or_else(|| "no error message".into());
        return Err(AnswerError::Refused {
            provider,
            status,
            message,
        });
    }
    let Some(json) = json else {
        return Err(AnswerError::Malformed("not JSON".into(), provider));
    };
    let bad = |what: &str| AnswerError::Malformed(what.to_owned(), provider);
    match provider {
        Provider::OpenAi => {
            let msg = json
                .pointer("/choices/0/message")
                .ok_or_else(|| bad("no `choices[0].message`"))?;
            let text = msg.get("content").and_then(Value::as_str).map(str::to_owned);
            let mut calls = Vec::new();
            for (i, c) in msg
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let name = c
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("a tool call without a name"))?;
                let raw = c.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
                let id = c
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("{LOCAL_ID}{i}"), str::to_owned);
                calls.push(call(id, name, raw));
            }
            Ok(Turn {
                text,
                calls,
                usage: Usage {
                    input_tokens: u(&json, "/usage/prompt_tokens"),
                    output_tokens: u(&json, "/usage/completion_tokens"),
                },
                stop: json
                    .pointer("/choices/0/finish_reason")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        }
        Provider::Anthropic => {
            let content = json
                .get("content")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("no `content`"))?;
            let mut text: Option<String> = None;
            let mut calls = Vec::new();
            for (i, block) in content.iter().enumerate() {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = block.get("text").and_then(Value::as_str).unwrap_or_default();
                        text = Some(match text {
                            Some(prev) => format!("{prev}{t}"),
                            None => t.to_owned(),
                        });
                    }
                    Some("tool_use") => {
                        let name = block
                            .get("name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| bad("a tool_use without a name"))?;
                        let id = block
                            .get("id")
                            .and_then(Value::as_str)
                            .map_or_else(|| format!("{LOCAL_ID}{i}"), str::to_owned);
                        let input = block.get("input").cloned().unwrap_or(json!({}));
                        calls.push(object_call(id, name, input));
                    }
                    _ => {}
                }
            }
            Ok(Turn {
                text,
                calls,
                usage: Usage {
                    input_tokens: u(&json, "/usage/input_tokens"),
                    output_tokens: u(&json, "/usage/output_tokens"),
                },
                stop: json.get("stop_reason").and_then(Value::as_str).map(str::to_owned),
            })
        }
        Provider::Gemini => {
            let Some(cand) = json.pointer("/candidates/0") else {
                let why = json
                    .pointer("/promptFeedback/blockReason")
                    .and_then(Value::as_str)
                    .map_or_else(
                        || "no candidates".to_owned(),
                        |r| format!("the prompt was blocked ({})", clean(r)),
                    );
                return Err(bad(&why));
            };
            let mut text: Option<String> = None;
            let mut calls = Vec::new();
            for (i, part) in cand
                .pointer("/content/parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if let Some(t) = part.get("text").and_then(Value::as_str) {
                    if part.get("thought") == Some(&json!(true)) {
                        continue;
                    }
                    text = Some(match text {
                        Some(prev) => format!("{prev}{t}"),
                        None => t.to_owned(),
                    });
                } else if let Some(fc) = part.get("functionCall") {
                    let name = fc
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("a functionCall without a name"))?;
                    let id = fc
                        .get("id")
                        .and_then(Value::as_str)
                        .map_or_else(|| format!("{LOCAL_ID}{i}"), str::to_owned);
                    calls.push(object_call(id, name, fc.get("args").cloned().unwrap_or(json!({}))));
                }
            }
            Ok(Turn {
                text,
                calls,
                usage: Usage {
                    input_tokens: u(&json, "/usageMetadata/promptTokenCount"),
                    output_tokens: u(&json, "/usageMetadata/candidatesTokenCount"),
                },
                stop: cand.get("finishReason").and_then(Value::as_str).map(str::to_owned),
            })
        }
    }
}

fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

fn call(id: String, name: &str, raw: &str) -> ToolCall {
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => object_call(id, name, v),
        _ => ToolCall {
            id,
            name: name.to_owned(),
            arguments: json!({}),
            malformed: Some(raw.chars().take(4096).collect()),
        },
    }
}

fn object_call(id: String, name: &str, input: Value) -> ToolCall {
    if input.is_object() {
        ToolCall {
            id,
            name: name.to_owned(),
            arguments: input,
            malformed: None,
        }
    } else {
        ToolCall {
            id,
            name: name.to_owned(),
            arguments: json!({}),
            malformed: Some(input.to_string().chars().take(4096).collect()),
        }
    }
}

/// A provider's message as we pass it on: no control characters, at most 500 characters.
fn clean(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(500).collect();
    if s.chars().filter(|c| !c.is_control()).count() > 500 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests;
