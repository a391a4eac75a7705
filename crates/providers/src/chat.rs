//! A conversation with a model, in one shape for every provider: what the runner keeps,
//! and what [`crate::wire`] turns into each provider's request and reads back from its
//! answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    User {
        text: String,
    },
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        calls: Vec<ToolCall>,
    },
    /// The results of the previous assistant message's calls, in their order.
    Tool {
        results: Vec<ToolResult>,
    },
}

/// A call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call (made up for Gemini, which may send none).
    pub id: String,
    /// The declared name (see `names`).
    pub name: String,
    /// The arguments, when they were a JSON object.
    pub arguments: Value,
    /// What the model wrote instead, when its arguments were not a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<String>,
}

/// What a call gave back, as the model reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub id: String,
    /// The declared name of the tool.
    pub name: String,
    /// JSON text of the output (or of the error).
    pub content: String,
    pub is_error: bool,
}

/// Tokens a model turn used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Self) {
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
    }
}

/// One answer of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub text: Option<String>,
    pub calls: Vec<ToolCall>,
    pub usage: Usage,
    /// The provider's reason for stopping, as it says it (`stop`, `tool_use`, `STOP`, …).
    pub stop: Option<String>,
}
