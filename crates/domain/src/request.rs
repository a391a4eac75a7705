//! Building the HTTP request of an operation from a tool call's arguments.
//!
//! Each `{{param}}` is replaced by its argument percent-encoded as exactly one path segment
//! or one query value: everything but RFC 3986's unreserved characters is encoded, so `/`,
//! `?`, `#`, `@`, `%`, CR and LF in a value stay inside it and can never change the target
//! or add a header. `.` and `..` are refused as path values (URL parsers resolve even their
//! encoded forms as dot segments). Arguments the template does not use go to the query
//! string for GET, HEAD and DELETE and to a JSON body otherwise. The result is checked to
//! be on the base URL's origin, as a last line of defence.

use std::fmt::Write;

use serde_json::{Map, Value};
use url::Url;

use crate::operation::HttpMethod;
use crate::template::{Part, PathTemplate};

/// Why a request could not be built; the message names the argument, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("argument `{0}` is required by the path")]
    Missing(String),
    #[error("argument `{0}` must be a string, number or boolean to go in the URL")]
    NotScalar(String),
    #[error("argument `{0}` cannot be `.` or `..` in a path")]
    DotSegment(String),
    #[error("the base URL and path do not make a valid URL: {0}")]
    InvalidUrl(String),
    #[error("the request would leave the connection's origin")]
    OriginChanged,
}

/// The request an operation call turns into (before auth is added).
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltRequest {
    pub method: HttpMethod,
    pub url: Url,
    /// A JSON body, for methods that carry one and arguments left over.
    pub json_body: Option<Value>,
}

/// Percent-encodes everything but unreserved characters (`A-Z a-z 0-9 - . _ ~`).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn scalar(name: &str, v: &Value) -> Result<String, BuildError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err(BuildError::Missing(name.to_owned())),
        _ => Err(BuildError::NotScalar(name.to_owned())),
    }
}

/// Builds the request for `method` + `path` on `base_url` from `args`.
pub fn build_request(
    base_url: &str,
    method: HttpMethod,
    path: &PathTemplate,
    args: &Map<String, Value>,
) -> Result<BuiltRequest, BuildError> {
    let base = Url::parse(base_url).map_err(|e| BuildError::InvalidUrl(e.to_string()))?;
    let mut rendered = String::new();
    let mut used = Vec::new();
    for part in path.parts() {
        match part {
            Part::Literal(text) => rendered.push_str(text),
            Part::Param { name, in_query } => {
                let value = args.get(name).ok_or_else(|| BuildError::Missing(name.clone()))?;
                let text = scalar(name, value)?;
                if !in_query && (text == "." || text == "..") {
                    return Err(BuildError::DotSegment(name.clone()));
                }
                rendered.push_str(&encode_component(&text));
                used.push(name.as_str());
            }
        }
    }
    let mut leftover: Map<String, Value> = args
        .iter()
        .filter(|(k, v)| !used.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    let joined = format!("{}{}", base.as_str().trim_end_matches('/'), rendered);
    let mut url = Url::parse(&joined).map_err(|e| BuildError::InvalidUrl(e.to_string()))?;
    if url.origin() != base.origin() {
        return Err(BuildError::OriginChanged);
    }
    let json_body = if method.args_in_query() {
        if !leftover.is_empty() {
            let mut query = url.query().map(str::to_owned).unwrap_or_default();
            for (k, v) in std::mem::take(&mut leftover) {
                let values: Vec<String> = match &v {
                    // arrays repeat the parameter (`?tag=a&tag=b`), as most APIs expect
                    Value::Array(items) => items.iter().map(|i| scalar(&k, i)).collect::<Result<_, _>>()?,
                    other => vec![scalar(&k, other)?],
                };
                for value in values {
                    if !query.is_empty() {
                        query.push('&');
                    }
                    query.push_str(&encode_component(&k));
                    query.push('=');
                    query.push_str(&encode_component(&value));
                }
            }
            url.set_query(Some(&query));
        }
        None
    } else if leftover.is_empty() {
        None
    } else {
        Some(Value::Object(leftover))
    };
    Ok(BuiltRequest { method, url, json_body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(base: &str, method: HttpMethod, path: &str, args: Value) -> Result<BuiltRequest, BuildError> {
        let t = PathTemplate::parse(path).unwrap();
        build_request(base, method, &t, args.as_object().unwrap())
    }

    fn url(base: &str, path: &str, args: Value) -> String {
        build(base, HttpMethod::Get, path, args).unwrap().url.to_string()
    }

    #[test]
    fn values_stay_inside_their_segment() {
        let base = "https://api.example.com/v1";
        let p = "/repos/{{owner}}/issues/{{n}}";
        for (owner, expected) in [
            ("acme", "https://api.example.com/v1/repos/acme/issues/7"),
            ("../admin", "https://api.example.com/v1/repos/..%2Fadmin/issues/7"),
            ("a/b", "https://api.example.com/v1/repos/a%2Fb/issues/7"),
            ("x?admin=1", "https://api.example.com/v1/repos/x%3Fadmin%3D1/issues/7"),
            ("x#frag", "https://api.example.com/v1/repos/x%23frag/issues/7"),
            ("@evil.com", "https://api.example.com/v1/repos/%40evil.com/issues/7"),
            (
                "https://evil.com/",
                "https://api.example.com/v1/repos/https%3A%2F%2Fevil.com%2F/issues/7",
            ),
            (
                "a\r\nHost: evil",
                "https://api.example.com/v1/repos/a%0D%0AHost%3A%20evil/issues/7",
            ),
            ("%2e%2e", "https://api.example.com/v1/repos/%252e%252e/issues/7"),
            ("ünï", "https://api.example.com/v1/repos/%C3%BCn%C3%AF/issues/7"),
            ("...", "https://api.example.com/v1/repos/.../issues/7"),
        ] {
            assert_eq!(url(base, p, json!({"owner": owner, "n": 7})), expected, "{owner:?}");
        }
    }

    #[test]
    fn dot_segments_are_refused() {
        for v in [".", ".."] {
            let err = build("https://a.io", HttpMethod::Get, "/x/{{p}}", json!({"p": v})).unwrap_err();
            assert_eq!(err, BuildError::DotSegment("p".into()));
        }
        // in a query value they are harmless
        assert_eq!(
            url("https://a.io", "/x?p={{p}}", json!({"p": ".."})),
            "https://a.io/x?p=.."
        );
    }

    #[test]
    fn unused_arguments_go_to_query_or_body() {
        assert_eq!(
            url(
                "https://a.io/",
                "/search?q={{q}}",
                json!({"q": "a b&c", "limit": 5, "tags": ["x", "y z"], "none": null})
            ),
            "https://a.io/search?q=a%20b%26c&limit=5&tags=x&tags=y%20z"
        );
        let r = build(
            "https://a.io",
            HttpMethod::Post,
            "/items/{{id}}",
            json!({"id": 3, "title": "t", "nested": {"a": 1}}),
        )
        .unwrap();
        assert_eq!(r.url.as_str(), "https://a.io/items/3");
        assert_eq!(r.json_body, Some(json!({"title": "t", "nested": {"a": 1}})));
        let r = build(
            "https://a.io",
            HttpMethod::Delete,
            "/items/{{id}}",
            json!({"id": 3, "force": true}),
        )
        .unwrap();
        assert_eq!((r.url.as_str(), r.json_body), ("https://a.io/items/3?force=true", None));
        let r = build("https://a.io", HttpMethod::Post, "/ping", json!({})).unwrap();
        assert_eq!(r.json_body, None);
    }

    #[test]
    fn missing_and_non_scalar_path_arguments() {
        assert_eq!(
            build("https://a.io", HttpMethod::Get, "/u/{{id}}", json!({})).unwrap_err(),
            BuildError::Missing("id".into())
        );
        assert_eq!(
            build("https://a.io", HttpMethod::Get, "/u/{{id}}", json!({"id": null})).unwrap_err(),
            BuildError::Missing("id".into())
        );
        assert_eq!(
            build("https://a.io", HttpMethod::Get, "/u/{{id}}", json!({"id": {"a": 1}})).unwrap_err(),
            BuildError::NotScalar("id".into())
        );
        assert_eq!(
            build("https://a.io", HttpMethod::Get, "/u", json!({"q": {"a": 1}})).unwrap_err(),
            BuildError::NotScalar("q".into())
        );
    }

    #[test]
    fn the_origin_never_changes() {
        for base in [
            "https://a.io",
            "https://a.io/",
            "https://a.io/base/",
            "http://10.0.0.1:8080/x",
        ] {
            let r = build(
                base,
                HttpMethod::Get,
                "/{{a}}/{{b}}",
                json!({"a": "//evil.com", "b": "@x"}),
            )
            .unwrap();
            assert_eq!(r.url.origin(), Url::parse(base).unwrap().origin(), "{base}");
        }
    }
}
