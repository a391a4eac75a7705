//! Operation path templates: `/repos/{{owner}}/{{repo}}/issues?state={{state}}`.
//!
//! A template is parsed once into literal text and named placeholders. Placeholders stand
//! for whole values that are percent-encoded when the request is built, so no argument can
//! change the target of a call; this module only guarantees the template itself is sound.

use std::collections::BTreeSet;

use crate::names::shorten;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied as written.
    Literal(String),
    /// `{{name}}`; `in_query` tells whether it stands after the `?`.
    Param { name: String, in_query: bool },
}

/// A parsed, valid operation path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    raw: String,
    parts: Vec<Part>,
}

impl PathTemplate {
    pub const MAX_LEN: usize = 2048;

    /// Parses a path such as `/users/{{id}}`. The message of an error says what to fix.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() > Self::MAX_LEN {
            return Err(format!("path is longer than {} bytes", Self::MAX_LEN));
        }
        if !raw.starts_with('/') {
            return Err(format!(
                "path `{}` must start with `/`; the base URL goes in `base_url`",
                shorten(raw)
            ));
        }
        if raw.starts_with("//") {
            return Err("path must not start with `//` (that would name another host)".into());
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut in_query = false;
        let mut rest = raw;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("{{") {
                let Some(end) = after.find("}}") else {
                    return Err("a `{{` is never closed with `}}`".into());
                };
                let name = after[..end].trim();
                if !valid_param_name(name) {
                    return Err(format!(
                        "`{{{{{}}}}}` is not a valid placeholder: use ASCII letters, digits, `_`, `-` and `.`",
                        shorten(name)
                    ));
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Param {
                    name: name.to_owned(),
                    in_query,
                });
                rest = &after[end + 2..];
                continue;
            }
            if rest.starts_with("}}") {
                return Err("a `}}` has no matching `{{`".into());
            }
            let Some(c) = rest.chars().next() else { break };
            if c.is_whitespace() || c.is_control() {
                return Err("path must not contain spaces or control characters".into());
            }
            if c == '#' {
                return Err("path must not contain a fragment (`#`)".into());
            }
            if c == '?' {
                if in_query {
                    return Err("path has more than one `?`".into());
                }
                in_query = true;
            }
            literal.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self {
            raw: raw.to_owned(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The names of every placeholder, each once.
    pub fn params(&self) -> BTreeSet<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Param { name, .. } => Some(name.as_str()),
                Part::Literal(_) => None,
            })
            .collect()
    }
}

fn valid_param_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: Result<&[&str], &str>) {
        match (PathTemplate::parse(raw), expected) {
            (Ok(t), Ok(params)) => {
                assert_eq!(t.params().into_iter().collect::<Vec<_>>(), params, "{raw}")
            }
            (Err(e), Err(fragment)) => assert!(e.contains(fragment), "{raw}: {e}"),
            (got, want) => panic!("{raw}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn templates() {
        check("/", Ok(&[]));
        check("/repos/{{owner}}/{{repo}}", Ok(&["owner", "repo"]));
        check("/a/{{ id }}", Ok(&["id"]));
        check("/search?q={{q}}&x=1", Ok(&["q"]));
        check("/v1/{{user.id}}/{{x-y}}", Ok(&["user.id", "x-y"]));
        check("/same/{{a}}/{{a}}", Ok(&["a"]));
        check("repos", Err("must start with `/`"));
        check("https://evil.example/x", Err("must start with `/`"));
        check("//evil.example/x", Err("another host"));
        check("/a/{{b", Err("never closed"));
        check("/a/b}}", Err("no matching"));
        check("/a/{{}}", Err("not a valid placeholder"));
        check("/a/{{a b}}", Err("not a valid placeholder"));
        check("/a/{{a/b}}", Err("not a valid placeholder"));
        check("/a b", Err("spaces"));
        check("/a\r\nHost: x", Err("spaces or control"));
        check("/a#frag", Err("fragment"));
        check("/a?b?c", Err("more than one"));
    }

    #[test]
    fn query_placeholders_are_marked() {
        let t = PathTemplate::parse("/p/{{id}}?q={{q}}").unwrap();
        let flags: Vec<_> = t
            .parts()
            .iter()
            .filter_map(|p| match p {
                Part::Param { name, in_query } => Some((name.as_str(), *in_query)),
                Part::Literal(_) => None,
            })
            .collect();
        assert_eq!(flags, [("id", false), ("q", true)]);
    }
}
