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

use crate::mapping::{Location, QueryStyle, RequestMapping, default_location, is_json_media_type};
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
    #[error("argument `{0}` cannot be sent in a header (control characters or not text)")]
    BadHeader(String),
    #[error("the base URL and path do not make a valid URL: {0}")]
    InvalidUrl(String),
    #[error("the request would leave the connection's origin")]
    OriginChanged,
}

/// A request body and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The request an operation call turns into (before auth is added).
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltRequest {
    pub method: HttpMethod,
    pub url: Url,
    /// Headers set by arguments (names already checked by the mapping).
    pub headers: Vec<(String, String)>,
    pub body: Option<Body>,
}

impl BuiltRequest {
    /// The body parsed back as JSON, when it is JSON (for tests and logs of shape).
    pub fn json_body(&self) -> Option<Value> {
        let body = self.body.as_ref()?;
        is_json_media_type(&body.content_type)
            .then(|| serde_json::from_slice(&body.bytes).ok())
            .flatten()
    }
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

/// A value as text inside a body field or header: scalars as themselves, anything else as
/// its JSON text.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Builds the request for `method` + `path` on `base_url` from `args`, placing each argument
/// where `mapping` says (the default rule for arguments it does not list).
pub fn build_request(
    base_url: &str,
    method: HttpMethod,
    path: &PathTemplate,
    args: &Map<String, Value>,
    mapping: Option<&RequestMapping>,
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
    let has_whole_body = mapping.is_some_and(|m| m.arguments.values().any(|t| t.location == Location::WholeBody));
    let fallback = if has_whole_body {
        Location::Query
    } else {
        default_location(method)
    };

    let mut query: Vec<(String, String)> = Vec::new();
    let mut headers = Vec::new();
    let mut body_fields = Map::new();
    let mut whole_body = None;
    for (arg, value) in args {
        if used.contains(&arg.as_str()) || value.is_null() {
            continue;
        }
        let target = mapping.and_then(|m| m.arguments.get(arg));
        let location = target.map_or(fallback, |t| t.location);
        let wire = target.map_or(arg.as_str(), |t| t.wire_name(arg));
        match location {
            // a path argument the template does not use (edited away): nothing to fill
            Location::Path => {}
            // without a mapping an object has no agreed query form
            Location::Query if target.is_none() && value.is_object() => {
                return Err(BuildError::NotScalar(arg.clone()));
            }
            Location::Query => {
                let style = target.and_then(|t| t.style).unwrap_or(QueryStyle::Form);
                let explode = target.and_then(|t| t.explode).unwrap_or(style == QueryStyle::Form);
                query_pairs(wire, value, style, explode, &mut query)?;
            }
            Location::Header => {
                let text = match value {
                    Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
                    Value::Object(map) => map
                        .iter()
                        .flat_map(|(k, v)| [k.clone(), text(v)])
                        .collect::<Vec<_>>()
                        .join(","),
                    other => text(other),
                };
                if text.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                    return Err(BuildError::BadHeader(arg.clone()));
                }
                headers.push((wire.to_owned(), text));
            }
            Location::Body => {
                body_fields.insert(wire.to_owned(), value.clone());
            }
            Location::WholeBody => whole_body = Some(value.clone()),
        }
    }

    let joined = format!("{}{}", base.as_str().trim_end_matches('/'), rendered);
    let mut url = Url::parse(&joined).map_err(|e| BuildError::InvalidUrl(e.to_string()))?;
    if url.origin() != base.origin() {
        return Err(BuildError::OriginChanged);
    }
    if !query.is_empty() {
        let mut q = url.query().map(str::to_owned).unwrap_or_default();
        for (k, v) in &query {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(&encode_component(k));
            q.push('=');
            q.push_str(&encode_component(v));
        }
        url.set_query(Some(&q));
    }

    let content_type = mapping
        .and_then(|m| m.content_type.clone())
        .unwrap_or_else(|| "application/json".to_owned());
    let body = match (whole_body, body_fields.is_empty()) {
        (Some(v), _) => Some(encode_body(&content_type, v)),
        (None, false) => Some(encode_body(&content_type, Value::Object(body_fields))),
        (None, true) => None,
    };
    Ok(BuiltRequest {
        method,
        url,
        headers,
        body,
    })
}

/// Adds the query pairs of one argument, serialized in OpenAPI's `style` / `explode`.
fn query_pairs(
    name: &str,
    value: &Value,
    style: QueryStyle,
    explode: bool,
    out: &mut Vec<(String, String)>,
) -> Result<(), BuildError> {
    let sep = match style {
        QueryStyle::Form | QueryStyle::DeepObject => ",",
        QueryStyle::SpaceDelimited => " ",
        QueryStyle::PipeDelimited => "|",
    };
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|i| scalar(name, i)).collect::<Result<_, _>>()?;
            if explode {
                out.extend(items.into_iter().map(|i| (name.to_owned(), i)));
            } else {
                out.push((name.to_owned(), items.join(sep)));
            }
        }
        Value::Object(map) => match (style, explode) {
            (QueryStyle::DeepObject, _) => {
                for (k, v) in map {
                    out.push((format!("{name}[{k}]"), text(v)));
                }
            }
            (_, true) => {
                for (k, v) in map {
                    out.push((k.clone(), text(v)));
                }
            }
            (_, false) => {
                let joined: Vec<String> = map.iter().flat_map(|(k, v)| [k.clone(), text(v)]).collect();
                out.push((name.to_owned(), joined.join(sep)));
            }
        },
        other => out.push((name.to_owned(), scalar(name, other)?)),
    }
    Ok(())
}

/// Encodes a body value in the operation's media type: JSON; `application/x-www-form-urlencoded`
/// and `multipart/form-data` from an object's fields (arrays repeat the field, objects are
/// sent as JSON text); any other type takes a string as it is and anything else as JSON.
fn encode_body(content_type: &str, value: Value) -> Body {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let fields = |value: &Value| -> Vec<(String, String)> {
        match value {
            Value::Object(map) => map
                .iter()
                .flat_map(|(k, v)| match v {
                    Value::Array(items) => items.iter().map(|i| (k.clone(), text(i))).collect::<Vec<_>>(),
                    Value::Null => Vec::new(),
                    other => vec![(k.clone(), text(other))],
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    match essence.as_str() {
        _ if is_json_media_type(&essence) => Body {
            content_type: content_type.to_owned(),
            bytes: value.to_string().into_bytes(),
        },
        "application/x-www-form-urlencoded" if value.is_object() => {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in fields(&value) {
                ser.append_pair(&k, &v);
            }
            Body {
                content_type: content_type.to_owned(),
                bytes: ser.finish().into_bytes(),
            }
        }
        "multipart/form-data" if value.is_object() => multipart(&fields(&value)),
        _ => Body {
            content_type: content_type.to_owned(),
            bytes: match value {
                Value::String(s) => s.into_bytes(),
                other => other.to_string().into_bytes(),
            },
        },
    }
}

/// A `multipart/form-data` body of text fields (RFC 7578). The boundary is chosen so that it
/// occurs in no field; names are sent with `"` and line breaks escaped.
fn multipart(fields: &[(String, String)]) -> Body {
    let mut n: u64 = 0x9e37_79b9_7f4a_7c15;
    let boundary = loop {
        let candidate = format!("chatterfly-{n:016x}");
        if !fields
            .iter()
            .any(|(k, v)| k.contains(&candidate) || v.contains(&candidate))
        {
            break candidate;
        }
        n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    };
    let mut out = Vec::new();
    for (name, value) in fields {
        let name = name.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A");
        out.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Body {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        bytes: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(base: &str, method: HttpMethod, path: &str, args: Value) -> Result<BuiltRequest, BuildError> {
        let t = PathTemplate::parse(path).unwrap();
        build_request(base, method, &t, args.as_object().unwrap(), None)
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
        assert_eq!(r.json_body(), Some(json!({"title": "t", "nested": {"a": 1}})));
        let r = build(
            "https://a.io",
            HttpMethod::Delete,
            "/items/{{id}}",
            json!({"id": 3, "force": true}),
        )
        .unwrap();
        assert_eq!(
            (r.url.as_str(), r.json_body()),
            ("https://a.io/items/3?force=true", None)
        );
        let r = build("https://a.io", HttpMethod::Post, "/ping", json!({})).unwrap();
        assert_eq!(r.body, None);
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

    fn mapped(method: HttpMethod, path: &str, mapping: Value, args: Value) -> BuiltRequest {
        let t = PathTemplate::parse(path).unwrap();
        let m: RequestMapping = serde_json::from_value(mapping).unwrap();
        build_request("https://a.io/v1", method, &t, args.as_object().unwrap(), Some(&m)).unwrap()
    }

    #[test]
    fn mapped_arguments_go_where_they_belong() {
        let r = mapped(
            HttpMethod::Post,
            "/orgs/{{org}}/items",
            json!({"arguments": {
                "org": {"in": "path"},
                "per_page": {"in": "query"},
                "filter_name": {"in": "query", "name": "filter[name]"},
                "api_version": {"in": "header", "name": "X-Api-Version"},
                "type_": {"in": "body", "name": "@type"},
                "title": {"in": "body"}
            }}),
            json!({"org": "a b", "per_page": 5, "filter_name": "x&y", "api_version": "2022-11-28",
                   "type_": "Item", "title": "t", "unmapped": 1}),
        );
        assert_eq!(
            r.url.as_str(),
            "https://a.io/v1/orgs/a%20b/items?per_page=5&filter%5Bname%5D=x%26y"
        );
        assert_eq!(r.headers, [("X-Api-Version".to_owned(), "2022-11-28".to_owned())]);
        assert_eq!(
            r.json_body(),
            Some(json!({"@type": "Item", "title": "t", "unmapped": 1}))
        );
        assert_eq!(r.body.unwrap().content_type, "application/json");
    }

    #[test]
    fn whole_body_and_leftovers() {
        let r = mapped(
            HttpMethod::Put,
            "/items",
            json!({"arguments": {"body": {"in": "whole_body"}}}),
            json!({"body": [1, 2], "dry_run": true}),
        );
        assert_eq!(r.url.as_str(), "https://a.io/v1/items?dry_run=true");
        assert_eq!(r.json_body(), Some(json!([1, 2])));
    }

    #[test]
    fn query_styles() {
        let q = |target: Value, value: Value| {
            mapped(
                HttpMethod::Get,
                "/s",
                json!({"arguments": {"v": target}}),
                json!({"v": value}),
            )
            .url
            .query()
            .unwrap_or("")
            .to_owned()
        };
        assert_eq!(q(json!({"in": "query"}), json!(["a", "b"])), "v=a&v=b");
        assert_eq!(
            q(json!({"in": "query", "explode": false}), json!(["a", "b"])),
            "v=a%2Cb"
        );
        assert_eq!(
            q(json!({"in": "query", "style": "space_delimited"}), json!(["a", "b"])),
            "v=a%20b"
        );
        assert_eq!(
            q(json!({"in": "query", "style": "pipe_delimited"}), json!(["a", "b"])),
            "v=a%7Cb"
        );
        assert_eq!(
            q(
                json!({"in": "query", "style": "deep_object"}),
                json!({"x": 1, "y": "z"})
            ),
            "v%5Bx%5D=1&v%5By%5D=z"
        );
        assert_eq!(q(json!({"in": "query"}), json!({"x": 1, "y": "z"})), "x=1&y=z");
        assert_eq!(q(json!({"in": "query", "explode": false}), json!({"x": 1})), "v=x%2C1");
    }

    #[test]
    fn form_and_multipart_bodies() {
        let r = mapped(
            HttpMethod::Post,
            "/f",
            json!({"content_type": "application/x-www-form-urlencoded"}),
            json!({"a": "x y&z", "tags": ["1", "2"], "n": 3}),
        );
        let body = r.body.unwrap();
        assert_eq!(body.content_type, "application/x-www-form-urlencoded");
        assert_eq!(String::from_utf8(body.bytes).unwrap(), "a=x+y%26z&tags=1&tags=2&n=3");
        let r = mapped(
            HttpMethod::Post,
            "/f",
            json!({"content_type": "multipart/form-data"}),
            json!({"name": "pet", "meta": {"a": 1}}),
        );
        let body = r.body.unwrap();
        let boundary = body
            .content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap()
            .to_owned();
        let text = String::from_utf8(body.bytes).unwrap();
        assert_eq!(
            text,
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\npet\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\n{{\"a\":1}}\r\n--{boundary}--\r\n"
            )
        );
        let r = mapped(
            HttpMethod::Post,
            "/t",
            json!({"content_type": "text/plain", "arguments": {"text": {"in": "whole_body"}}}),
            json!({"text": "hello"}),
        );
        assert_eq!(r.body.unwrap().bytes, b"hello");
    }

    #[test]
    fn header_values_cannot_break_lines() {
        let t = PathTemplate::parse("/h").unwrap();
        let m: RequestMapping =
            serde_json::from_value(json!({"arguments": {"h": {"in": "header", "name": "X-H"}}})).unwrap();
        let args = json!({"h": "a\r\nX-Evil: 1"});
        assert_eq!(
            build_request("https://a.io", HttpMethod::Get, &t, args.as_object().unwrap(), Some(&m)).unwrap_err(),
            BuildError::BadHeader("h".into())
        );
    }
}
