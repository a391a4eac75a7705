//! An agent's definition as the API takes it, checked: a name, instructions, a provider
//! and model, the tools it may call (by name, in order) and the most model turns a run may
//! take.

use chatterfly_domain::FieldErrors;
use chatterfly_providers::Provider;
use chatterfly_providers::chat::Message;
use serde::Deserialize;
use serde_json::Value;

/// The most tools an agent names (more than any provider takes in one request).
pub const MAX_TOOLS: usize = 1000;
/// The most model turns a run may take.
pub const MAX_STEPS: i64 = 100;
pub const DEFAULT_STEPS: i64 = 10;
const MAX_NAME: usize = 100;
const MAX_INSTRUCTIONS: usize = 32 * 1024;
const MAX_TOOL_NAME: usize = 300;

/// `POST …/agents` and the fields of a `PATCH`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentInput {
    pub name: Option<String>,
    pub instructions: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub tools: Option<Vec<String>>,
    pub max_steps: Option<i64>,
}

/// A checked agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentDef {
    pub name: String,
    pub instructions: String,
    pub provider: Provider,
    pub model: String,
    pub tools: Vec<String>,
    pub max_steps: i64,
}

impl AgentDef {
    /// A new agent from `input` (name, provider and model required).
    pub fn create(input: AgentInput) -> Result<Self, FieldErrors> {
        Self::check(input, None)
    }

    /// The definition of a stored agent.
    pub fn from_record(a: &chatterfly_store::AgentRecord) -> Result<Self, String> {
        Ok(Self {
            name: a.name.clone(),
            instructions: a.instructions.clone(),
            provider: a
                .provider
                .parse::<Provider>()
                .map_err(|e| format!("agent provider: {e}"))?,
            model: a.model.clone(),
            tools: serde_json::from_str(&a.tools).map_err(|e| format!("agent tools: {e}"))?,
            max_steps: a.max_steps,
        })
    }

    /// `base` with `input`'s fields applied.
    pub fn patch(base: &AgentDef, input: AgentInput) -> Result<Self, FieldErrors> {
        Self::check(input, Some(base))
    }

    fn check(input: AgentInput, base: Option<&AgentDef>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = match (input.name, base) {
            (Some(n), _) => {
                chatterfly_domain::connection::check_name_within(&n, MAX_NAME, &mut errors).unwrap_or_default()
            }
            (None, Some(b)) => b.name.clone(),
            (None, None) => {
                errors.push("/name", "`name` is required");
                String::new()
            }
        };
        let instructions = match (input.instructions, base) {
            (Some(i), _) => {
                if i.len() > MAX_INSTRUCTIONS {
                    errors.push(
                        "/instructions",
                        format!("`instructions` is longer than {} KiB", MAX_INSTRUCTIONS / 1024),
                    );
                }
                if i.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
                    errors.push("/instructions", "`instructions` must not contain control characters");
                }
                i
            }
            (None, Some(b)) => b.instructions.clone(),
            (None, None) => String::new(),
        };
        let provider = match (input.provider, base) {
            (Some(p), _) => match p.parse::<Provider>() {
                Ok(p) => Some(p),
                Err(e) => {
                    errors.push("/provider", e);
                    None
                }
            },
            (None, Some(b)) => Some(b.provider),
            (None, None) => {
                errors.push("/provider", "`provider` is required: `openai`, `anthropic` or `gemini`");
                None
            }
        };
        let model = match (input.model, base) {
            (Some(m), _) => {
                let m = m.trim().to_owned();
                if !chatterfly_providers::wire::valid_model(&m) {
                    errors.push(
                        "/model",
                        "`model` must be a model name: 1 to 128 letters, digits, `.`, `-`, `_`, `:` or `@` (e.g. `gpt-4.1`, `claude-sonnet-4-5`, `gemini-2.5-flash`)",
                    );
                }
                m
            }
            (None, Some(b)) => b.model.clone(),
            (None, None) => {
                errors.push("/model", "`model` is required");
                String::new()
            }
        };
        let tools = match (input.tools, base) {
            (Some(t), _) => {
                if t.len() > MAX_TOOLS {
                    errors.push("/tools", format!("an agent names at most {MAX_TOOLS} tools"));
                }
                let mut seen = std::collections::HashSet::new();
                let mut out = Vec::new();
                for (i, name) in t.into_iter().enumerate().take(MAX_TOOLS + 1) {
                    let name = name.trim().to_owned();
                    if name.is_empty() || name.len() > MAX_TOOL_NAME || name.chars().any(char::is_control) {
                        errors.push(
                            format!("/tools/{i}"),
                            format!("a tool name is 1 to {MAX_TOOL_NAME} characters without control characters"),
                        );
                        continue;
                    }
                    if seen.insert(name.clone()) {
                        out.push(name);
                    }
                }
                out
            }
            (None, Some(b)) => b.tools.clone(),
            (None, None) => Vec::new(),
        };
        let max_steps = match (input.max_steps, base) {
            (Some(n), _) => {
                if !(1..=MAX_STEPS).contains(&n) {
                    errors.push(
                        "/max_steps",
                        format!("`max_steps` must be 1 to {MAX_STEPS} (model turns per run)"),
                    );
                }
                n
            }
            (None, Some(b)) => b.max_steps,
            (None, None) => DEFAULT_STEPS,
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let Some(provider) = provider else {
            return Err(FieldErrors::single("/provider", "`provider` is required"));
        };
        Ok(Self {
            name,
            instructions,
            provider,
            model,
            tools,
            max_steps,
        })
    }
}

/// A run's input: text, or messages `[{"role": "user"|"assistant", "content": "…"}]`
/// ending with the user's.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInput(pub Vec<Message>);

const MAX_MESSAGES: usize = 200;
const MAX_INPUT_BYTES: usize = 512 * 1024;

impl RunInput {
    pub fn parse(v: &Value) -> Result<Self, FieldErrors> {
        let err = |p: &str, m: &str| FieldErrors::single(p, m);
        match v {
            Value::String(s) => {
                if s.trim().is_empty() {
                    return Err(err("/input", "`input` is empty"));
                }
                if s.len() > MAX_INPUT_BYTES {
                    return Err(err("/input", "`input` is longer than 512 KiB"));
                }
                Ok(Self(vec![Message::User { text: s.clone() }]))
            }
            Value::Array(items) => {
                if items.is_empty() || items.len() > MAX_MESSAGES {
                    return Err(err("/input", "`input` holds 1 to 200 messages"));
                }
                let mut total = 0;
                let mut out = Vec::new();
                for (i, m) in items.iter().enumerate() {
                    let at = format!("/input/{i}");
                    let role = m.get("role").and_then(Value::as_str);
                    let text = m
                        .get("content")
                        .and_then(Value::as_str)
                        .ok_or_else(|| FieldErrors::single(format!("{at}/content"), "a message's `content` is text"))?;
                    total += text.len();
                    let msg = match role {
                        Some("user") => Message::User { text: text.to_owned() },
                        Some("assistant") => Message::Assistant {
                            text: Some(text.to_owned()),
                            calls: Vec::new(),
                        },
                        _ => {
                            return Err(err(
                                &format!("{at}/role"),
                                "a message's `role` is `user` or `assistant`",
                            ));
                        }
                    };
                    out.push(msg);
                }
                if total > MAX_INPUT_BYTES {
                    return Err(err("/input", "`input` is longer than 512 KiB"));
                }
                if !matches!(out.last(), Some(Message::User { .. })) {
                    return Err(err("/input", "the last message is the user's"));
                }
                Ok(Self(out))
            }
            _ => Err(err("/input", "`input` is text, or a list of messages")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: Value) -> AgentInput {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn agents_are_checked_field_by_field() {
        let ok = AgentDef::create(input(
            json!({"name": " Triage ", "provider": "openai", "model": "gpt-4.1", "tools": ["web_search", "gh.list", "web_search"]}),
        ));
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (ok.name.as_str(), ok.max_steps, ok.tools.len()),
            ("Triage", DEFAULT_STEPS, 2)
        );
        for (v, pointer) in [
            (json!({"provider": "openai", "model": "m"}), "/name"),
            (json!({"name": "a", "provider": "mistral", "model": "m"}), "/provider"),
            (json!({"name": "a", "provider": "openai", "model": "../x"}), "/model"),
            (
                json!({"name": "a", "provider": "openai", "model": "m", "max_steps": 0}),
                "/max_steps",
            ),
            (
                json!({"name": "a", "provider": "openai", "model": "m", "max_steps": 10000}),
                "/max_steps",
            ),
            (
                json!({"name": "a", "provider": "openai", "model": "m", "tools": [""]}),
                "/tools/0",
            ),
            (json!({"name": "a\u{7}", "provider": "openai", "model": "m"}), "/name"),
            (
                json!({"name": "admin\u{202E}txt", "provider": "openai", "model": "m"}),
                "/name",
            ),
            (
                json!({"name": "a\u{200B}b", "provider": "openai", "model": "m"}),
                "/name",
            ),
            (
                json!({"name": "a\u{E0041}b", "provider": "openai", "model": "m"}),
                "/name",
            ),
        ] {
            let e = AgentDef::create(input(v.clone())).expect_err("refused");
            assert_eq!(e.0[0].pointer, pointer, "{v}");
        }
        let patched = AgentDef::patch(&ok, input(json!({"max_steps": 3}))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((patched.max_steps, patched.name.as_str()), (3, "Triage"));
    }

    #[test]
    fn run_inputs_are_text_or_messages() {
        assert_eq!(RunInput::parse(&json!("hi")).map(|r| r.0.len()), Ok(1));
        let m = json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]);
        assert_eq!(RunInput::parse(&m).map(|r| r.0.len()), Ok(3));
        for bad in [
            json!(""),
            json!(42),
            json!([]),
            json!([{"role": "system", "content": "x"}]),
            json!([{"role": "user"}]),
            json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]),
        ] {
            assert!(RunInput::parse(&bad).is_err(), "{bad}");
        }
    }
}
