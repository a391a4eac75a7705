//! Validation errors that point at the offending field with a JSON pointer (RFC 6901), so a
//! client (or a person reading the message) knows exactly what to change.

use serde::Serialize;

/// One problem with one field of an input document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON pointer into the request body, e.g. `/operations/2/name`.
    pub pointer: String,
    /// What is wrong and what to do instead. Never contains a secret value.
    pub detail: String,
}

/// All the problems found in one input document.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.summary())]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.push(pointer, detail);
        errors
    }

    pub fn push(&mut self, pointer: impl Into<String>, detail: impl Into<String>) {
        self.0.push(FieldError {
            pointer: pointer.into(),
            detail: detail.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends every error of `other` with `prefix` put before its pointer.
    pub fn extend_under(&mut self, prefix: &str, other: FieldErrors) {
        for e in other.0 {
            self.0.push(FieldError {
                pointer: format!("{prefix}{}", e.pointer),
                detail: e.detail,
            });
        }
    }

    /// `Ok(value)` when no error was collected.
    pub fn into_result<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }

    /// One line naming the first problem, and how many more there are.
    pub fn summary(&self) -> String {
        match self.0.as_slice() {
            [] => "no errors".to_owned(),
            [one] => format!("{}: {}", display_pointer(&one.pointer), one.detail),
            [first, rest @ ..] => format!(
                "{}: {} (and {} more problem{})",
                display_pointer(&first.pointer),
                first.detail,
                rest.len(),
                if rest.len() == 1 { "" } else { "s" }
            ),
        }
    }
}

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() { "body" } else { pointer }
}

/// Escapes one reference token of a JSON pointer (`~` → `~0`, `/` → `~1`).
pub fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
