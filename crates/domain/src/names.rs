//! Names with rules: connection slugs, workspace slugs, operation names, tool names,
//! participant roles and workspace roles. Each is parsed once; holding one means it is valid.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a name was refused; the message says what the rule is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                s.parse()
            }
        }
    };
}

/// A connection slug: `^[a-z][a-z0-9_]{0,62}$`. It prefixes the connection's tool names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);
string_newtype!(Slug);

impl FromStr for Slug {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        slug_like(s, false, "slug", "lowercase letters, digits and `_`").map(Self)
    }
}

/// A workspace slug: `^[a-z][a-z0-9_-]{0,62}$` (like a connection slug, `-` allowed too).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceSlug(String);
string_newtype!(WorkspaceSlug);

impl FromStr for WorkspaceSlug {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        slug_like(s, true, "workspace slug", "lowercase letters, digits, `_` and `-`").map(Self)
    }
}

/// A participant role name such as `customer`; same rule as a workspace slug.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParticipantRole(String);
string_newtype!(ParticipantRole);

impl FromStr for ParticipantRole {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        slug_like(s, true, "participant role", "lowercase letters, digits, `_` and `-`").map(Self)
    }
}

/// The one rule behind slugs and role names: 1 to 63 characters, a lowercase letter first,
/// then lowercase letters, digits, `_` (and `-` where allowed).
fn slug_like(s: &str, allow_dash: bool, what: &str, chars: &str) -> Result<String, NameError> {
    let bytes = s.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || (allow_dash && b == b'-'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(NameError(format!(
            "`{}` is not a valid {what}: use 1 to 63 characters, {chars}, starting with a letter",
            shorten(s)
        )))
    }
}

/// An operation name: 1 to 128 ASCII letters, digits, `_`, `-` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperationName(String);
string_newtype!(OperationName);

impl FromStr for OperationName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError(format!(
                "`{}` is not a valid operation name: use 1 to 128 characters, ASCII letters, digits, `_`, `-` and `.`",
                shorten(s)
            )))
        }
    }
}

/// A connection tool's name, `slug.operation`, split at the first dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToolName {
    pub slug: Slug,
    pub operation: OperationName,
}

impl FromStr for ToolName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let Some((slug, operation)) = s.split_once('.') else {
            return Err(NameError(format!(
                "`{}` is not a tool name: connection tools are named `slug.operation`",
                shorten(s)
            )));
        };
        Ok(Self {
            slug: slug.parse()?,
            operation: operation.parse()?,
        })
    }
}

impl fmt::Display for ToolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.slug, self.operation)
    }
}

/// A user's role in one workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceRole {
    Admin,
    Member,
}

impl WorkspaceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

impl FromStr for WorkspaceRole {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        match s {
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            other => Err(NameError(format!(
                "`{}` is not a role: use `admin` or `member`",
                shorten(other)
            ))),
        }
    }
}

/// Cuts an echoed input short so an error message stays readable.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: FromStr>(input: &str, ok: bool) {
        assert_eq!(input.parse::<T>().is_ok(), ok, "{input:?}");
    }

    #[test]
    fn slugs() {
        for (s, ok) in [
            ("github", true),
            ("a", true),
            ("my_mcp2", true),
            (&"a".repeat(63), true),
            (&"a".repeat(64), false),
            ("", false),
            ("2fa", false),
            ("_x", false),
            ("Git", false),
            ("git-hub", false),
            ("git.hub", false),
            ("gît", false),
            ("a b", false),
        ] {
            check::<Slug>(s, ok);
        }
        check::<WorkspaceSlug>("acme-corp", true);
        check::<WorkspaceSlug>("-acme", false);
    }

    #[test]
    fn operation_names() {
        for (s, ok) in [
            ("get_issue", true),
            ("get-roots-list", true),
            ("v1.users.get", true),
            ("X", true),
            (&"x".repeat(128), true),
            (&"x".repeat(129), false),
            ("", false),
            ("has space", false),
            ("slash/y", false),
            ("émoji", false),
        ] {
            check::<OperationName>(s, ok);
        }
    }

    #[test]
    fn tool_names_split_at_first_dot() {
        let t: ToolName = "my_mcp.v1.search".parse().unwrap();
        assert_eq!(t.slug.as_str(), "my_mcp");
        assert_eq!(t.operation.as_str(), "v1.search");
        assert_eq!(t.to_string(), "my_mcp.v1.search");
        check::<ToolName>("web_search", false);
        check::<ToolName>("Bad.op", false);
        check::<ToolName>("ok.", false);
    }

    #[test]
    fn long_inputs_are_shortened_in_messages() {
        let err = "X".repeat(500).parse::<Slug>().unwrap_err();
        assert!(err.0.len() < 300, "{}", err.0);
    }
}
