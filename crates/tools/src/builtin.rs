//! Built-in tools, resolved before connection tools. `current_time` is the first; web and
//! news search arrive with service credentials.

use serde_json::{Value, json};

use crate::{ToolError, ToolInfo};

pub fn all() -> Vec<ToolInfo> {
    vec![ToolInfo {
        name: "current_time".into(),
        description: "The current date and time in UTC (RFC 3339) and as Unix milliseconds.".into(),
        input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
    }]
}

pub fn is_builtin(name: &str) -> bool {
    name == "current_time"
}

/// `Some` when `name` is a built-in.
pub fn call(name: &str, args: &Value) -> Option<Result<Value, ToolError>> {
    match name {
        "current_time" => Some(current_time(args)),
        _ => None,
    }
}

fn current_time(args: &Value) -> Result<Value, ToolError> {
    if !args.as_object().is_some_and(|m| m.is_empty()) {
        return Err(ToolError::InvalidArguments {
            pointer: String::new(),
            detail: "current_time takes no arguments; send {}".into(),
        });
    }
    let now = chrono::Utc::now();
    Ok(json!({
        "utc": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "unix_ms": now.timestamp_millis(),
    }))
}
