//! Model providers' wire formats: what a model is told about the tools it may call, and
//! (later in this crate) the requests and answers of each provider's API. Pure: no IO, no
//! clock, no secrets. The runner (in `runs`) sends what this builds through Chatterfly's
//! guarded HTTP client and never anywhere else.
//!
//! The rules each provider sets on tool declarations are written down once, in
//! [`Provider::rules`], with where they come from; [`names`] maps tool names into them
//! reversibly, [`schema`] adapts input schemas to the subset each accepts, and [`declare`]
//! puts a whole agent's tools together within the provider's limits.

pub mod chat;
pub mod check;
pub mod declare;
pub mod names;
pub mod schema;
pub mod wire;

use std::fmt;
use std::str::FromStr;

/// A model provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::OpenAi, Provider::Anthropic, Provider::Gemini];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
        }
    }

    /// The rules the provider sets on tool declarations.
    pub fn rules(self) -> &'static Rules {
        match self {
            Self::OpenAi => &OPENAI,
            Self::Anthropic => &ANTHROPIC,
            Self::Gemini => &GEMINI,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown provider `{}`: use `openai`, `anthropic` or `gemini`", short(s)))
    }
}

fn short(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// What a provider accepts in a request's tool declarations.
#[derive(Debug)]
pub struct Rules {
    /// Characters a tool name may have.
    pub name_chars: fn(char) -> bool,
    /// Characters a tool name may start with.
    pub name_first: fn(char) -> bool,
    /// The longest tool name, in characters (all allowed characters are ASCII).
    pub name_max: usize,
    /// The most tools one request may declare.
    pub max_tools: usize,
    /// Our bound on all declarations together, in bytes of JSON: what is left over is for
    /// the conversation (a whole imported API's schemas would fill a model's context).
    pub max_total_bytes: usize,
    /// Our bound on one tool's declaration, in bytes of JSON: a bigger schema is cut down
    /// (see [`schema::shrink`]).
    pub max_tool_bytes: usize,
    /// Where the rules come from.
    pub source: &'static str,
}

fn word_or_dash(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn any_name_char(c: char) -> bool {
    word_or_dash(c)
}

fn letter_or_underscore(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn gemini_name_char(c: char) -> bool {
    word_or_dash(c) || c == '.'
}

/// OpenAI Chat Completions, `tools[].function.name`: "Must be a-z, A-Z, 0-9, or contain
/// underscores and dashes, with a maximum length of 64"; `tools`: "A max of 128 functions
/// are supported".
static OPENAI: Rules = Rules {
    name_chars: word_or_dash,
    name_first: any_name_char,
    name_max: 64,
    max_tools: 128,
    max_total_bytes: 192 * 1024,
    max_tool_bytes: 16 * 1024,
    source: "OpenAI API reference, Chat Completions: tools[].function.name and tools",
};

/// Anthropic Messages, `tools[].name`: must match `^[a-zA-Z0-9_-]{1,64}$`; `input_schema`
/// must be an object schema. No count is documented: we hold to OpenAI's 128.
static ANTHROPIC: Rules = Rules {
    name_chars: word_or_dash,
    name_first: any_name_char,
    name_max: 64,
    max_tools: 128,
    max_total_bytes: 192 * 1024,
    max_tool_bytes: 16 * 1024,
    source: "Anthropic API reference, Messages: tools[].name, tools[].input_schema",
};

/// Gemini generateContent, `FunctionDeclaration.name`: "Must start with a letter or an
/// underscore. Must be a-z, A-Z, 0-9, or contain underscores, dots and dashes, with a
/// maximum length of 64" (some versions also allow colons; not relied on);
/// `Tool.functionDeclarations`: "Maximum 128 function declarations can be provided";
/// `parameters` is an OpenAPI 3.0 Schema subset ([`schema`] lists it).
static GEMINI: Rules = Rules {
    name_chars: gemini_name_char,
    name_first: letter_or_underscore,
    name_max: 64,
    max_tools: 128,
    max_total_bytes: 192 * 1024,
    max_tool_bytes: 16 * 1024,
    source: "Gemini API reference (generativelanguage v1beta): FunctionDeclaration, Tool, Schema",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_parse_by_name_only() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>(), Ok(p));
        }
        for bad in ["OpenAI", "", "mistral", "gemini "] {
            assert!(bad.parse::<Provider>().is_err(), "{bad}");
        }
        let long = "x".repeat(5000);
        assert!(long.parse::<Provider>().unwrap_err().len() < 200);
    }
}
