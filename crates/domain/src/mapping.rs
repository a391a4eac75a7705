//! Where each argument of an HTTP tool call goes in the request.
//!
//! An agent sees one flat object of arguments; an HTTP API wants some of them in the path,
//! some in the query string, some in headers and the rest in a body. An operation without a
//! mapping follows the default rule (placeholders fill the path, the rest goes to the query
//! string for GET/HEAD/DELETE and to a JSON body otherwise). An operation imported from an
//! OpenAPI document carries an explicit [`RequestMapping`]: each argument's location, its name
//! on the wire (API parameter names such as `filter[name]` or `X-Api-Version` are not good
//! argument names), how arrays and objects are serialized in the query string, the body's
//! media type, and whether the connection's credentials are sent at all (`security: []`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::FieldErrors;
use crate::names::shorten;
use crate::operation::HttpMethod;
use crate::template::PathTemplate;

/// How an operation's arguments become a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMapping {
    /// Argument name → where it goes. Arguments not listed follow the default rule.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arguments: BTreeMap<String, ArgumentTarget>,
    /// The body's media type (`application/json` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `false`: the connection's credentials are not sent (OpenAPI `security: []`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub credentials: bool,
}

impl Default for RequestMapping {
    fn default() -> Self {
        Self {
            arguments: BTreeMap::new(),
            content_type: None,
            credentials: true,
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Where one argument goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgumentTarget {
    #[serde(rename = "in")]
    pub location: Location,
    /// The name on the wire (query parameter, header, body property); the argument's own
    /// name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Query serialization of arrays and objects (OpenAPI `style`); `form` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<QueryStyle>,
    /// OpenAPI `explode`: repeat the parameter per array item (`true`, the default for
    /// `form`) or join the items with the style's separator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explode: Option<bool>,
}

impl ArgumentTarget {
    pub fn new(location: Location) -> Self {
        Self {
            location,
            name: None,
            style: None,
            explode: None,
        }
    }

    pub fn named(location: Location, name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::new(location)
        }
    }

    /// The wire name of argument `arg`.
    pub fn wire_name<'a>(&'a self, arg: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(arg)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// A `{{placeholder}}` of the path template (named after the argument).
    Path,
    Query,
    Header,
    /// One property of a JSON or form body object.
    Body,
    /// The argument is the whole body.
    WholeBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryStyle {
    /// `tags=a&tags=b` (explode) or `tags=a,b`.
    Form,
    /// `tags=a%20b`.
    SpaceDelimited,
    /// `tags=a|b`.
    PipeDelimited,
    /// `filter[name]=x&filter[size]=2`.
    DeepObject,
}

/// Headers an argument may never set: they belong to the transport or to the credentials.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "expect",
    "host",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A query parameter or body field name: 1 to 256 bytes, no control characters.
pub fn valid_wire_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && !name.chars().any(char::is_control)
}

/// Whether an argument may set header `name` (case-insensitive).
pub fn header_allowed(name: &str) -> bool {
    !RESERVED_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// An HTTP header name (RFC 9110 token), at most 256 bytes.
pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// A media type the body may be sent as: `type/subtype` with optional parameters, printable
/// ASCII only (it becomes a header value).
pub fn valid_media_type(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim();
    let mut parts = essence.split('/');
    let ok = |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && valid_header_name(s));
    ct.len() <= 200
        && ct.bytes().all(|b| (0x20..0x7f).contains(&b))
        && ok(parts.next())
        && ok(parts.next())
        && parts.next().is_none()
}

impl RequestMapping {
    /// Checks the mapping against the operation it belongs to; pointers are relative to the
    /// mapping (`/arguments/<name>/…`).
    pub fn check(&self, path: Option<&PathTemplate>, input_schema: &Value) -> FieldErrors {
        let mut errors = FieldErrors::new();
        let props = input_schema.get("properties").and_then(Value::as_object);
        let placeholders = path.map(PathTemplate::params).unwrap_or_default();
        let mut whole = None;
        let mut body_props = 0;
        let mut seen_wire: BTreeMap<(Location, String), &str> = BTreeMap::new();
        for (arg, target) in &self.arguments {
            let at = format!("/arguments/{}", crate::error::pointer_token(arg));
            if !props.is_some_and(|p| p.contains_key(arg)) {
                errors.push(
                    at.clone(),
                    format!(
                        "argument `{}` is mapped but the input schema has no property of that name",
                        shorten(arg)
                    ),
                );
            }
            let wire = target.wire_name(arg);
            if !valid_wire_name(wire) {
                errors.push(
                    format!("{at}/name"),
                    "a wire name is 1 to 256 characters without control characters",
                );
            }
            match target.location {
                Location::Path => {
                    if target.name.is_some() {
                        errors.push(
                            format!("{at}/name"),
                            "path arguments fill `{{argument}}` in the path: they take no `name`",
                        );
                    }
                    if !placeholders.contains(arg.as_str()) {
                        errors.push(
                            format!("{at}/in"),
                            format!("the path has no `{{{{{}}}}}` for this argument", shorten(arg)),
                        );
                    }
                }
                Location::Header => {
                    if !valid_header_name(wire) {
                        errors.push(
                            format!("{at}/name"),
                            format!("`{}` is not a valid header name", shorten(wire)),
                        );
                    } else if !header_allowed(wire) {
                        errors.push(
                            format!("{at}/name"),
                            format!(
                                "header `{wire}` cannot be set by an argument (it belongs to the connection or the transport)"
                            ),
                        );
                    }
                }
                Location::Body => body_props += 1,
                Location::WholeBody => {
                    if whole.replace(arg.as_str()).is_some() {
                        errors.push(at.clone(), "only one argument can be the whole body");
                    }
                }
                Location::Query => {}
            }
            if (target.style.is_some() || target.explode.is_some()) && target.location != Location::Query {
                errors.push(
                    format!("{at}/style"),
                    "`style` and `explode` apply to query arguments only",
                );
            }
            if matches!(target.location, Location::Query | Location::Header | Location::Body) {
                let key = (
                    target.location,
                    if target.location == Location::Header {
                        wire.to_ascii_lowercase()
                    } else {
                        wire.to_owned()
                    },
                );
                if let Some(other) = seen_wire.insert(key, arg) {
                    errors.push(
                        format!("{at}/name"),
                        format!(
                            "arguments `{}` and `{}` both go to the same {:?} name `{}`",
                            shorten(other),
                            shorten(arg),
                            target.location,
                            shorten(wire)
                        ),
                    );
                }
            }
        }
        if whole.is_some() && body_props > 0 {
            errors.push(
                "/arguments",
                "an argument that is the whole body cannot be combined with body-property arguments",
            );
        }
        if let Some(ct) = &self.content_type
            && !valid_media_type(ct)
        {
            errors.push(
                "/content_type",
                format!("`{}` is not a media type such as application/json", shorten(ct)),
            );
        }
        errors
    }

    /// Whether the body is JSON (`application/json`, `…+json`, or no media type given).
    pub fn json_body(&self) -> bool {
        self.content_type.as_deref().is_none_or(is_json_media_type)
    }
}

/// `application/json`, `application/problem+json`, `text/json`, with or without parameters.
pub fn is_json_media_type(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

/// Where an argument that is neither mapped nor a placeholder goes by default.
pub fn default_location(method: HttpMethod) -> Location {
    if method.args_in_query() {
        Location::Query
    } else {
        Location::Body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(v: Value) -> RequestMapping {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn round_trip_keeps_defaults_out() {
        let m = mapping(json!({"arguments": {"a": {"in": "query"}}}));
        assert!(m.credentials);
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"arguments": {"a": {"in": "query"}}})
        );
        let m = mapping(json!({"credentials": false, "content_type": "application/x-www-form-urlencoded"}));
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"credentials": false, "content_type": "application/x-www-form-urlencoded"})
        );
        assert!(serde_json::from_value::<RequestMapping>(json!({"argumentz": {}})).is_err());
        assert!(serde_json::from_value::<RequestMapping>(json!({"arguments": {"a": {"in": "cookie"}}})).is_err());
    }

    #[test]
    fn checks_point_at_problems() {
        let path = PathTemplate::parse("/u/{{id}}").unwrap();
        let schema = json!({"type": "object", "properties": {"id": {}, "q": {}, "h": {}, "b": {}, "w": {}}});
        let m = mapping(json!({"arguments": {
            "id": {"in": "path", "name": "x"},
            "q": {"in": "header", "name": "Authorization"},
            "h": {"in": "header", "name": "bad header"},
            "b": {"in": "body", "style": "form"},
            "w": {"in": "whole_body"},
            "missing": {"in": "query"}
        }, "content_type": "json"}));
        let errors = m.check(Some(&path), &schema);
        let pointers: Vec<_> = errors.0.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/arguments/b/style",
                "/arguments/h/name",
                "/arguments/id/name",
                "/arguments/missing",
                "/arguments/q/name",
                "/arguments",
                "/content_type"
            ],
            "{errors:?}"
        );
        let ok = mapping(json!({"arguments": {
            "id": {"in": "path"}, "q": {"in": "query", "name": "filter[q]", "style": "deep_object"},
            "h": {"in": "header", "name": "X-Api-Version"}, "b": {"in": "body", "name": "@type"}
        }, "content_type": "application/json; charset=utf-8"}));
        assert!(ok.check(Some(&path), &schema).is_empty());
    }

    #[test]
    fn two_arguments_cannot_share_a_wire_name() {
        let schema = json!({"type": "object", "properties": {"a": {}, "b": {}}});
        let m =
            mapping(json!({"arguments": {"a": {"in": "header", "name": "X-A"}, "b": {"in": "header", "name": "x-a"}}}));
        assert_eq!(m.check(None, &schema).0.len(), 1);
        let m = mapping(json!({"arguments": {"a": {"in": "query", "name": "x"}, "b": {"in": "header", "name": "x"}}}));
        assert!(m.check(None, &schema).is_empty());
    }

    #[test]
    fn media_types() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("application/vnd.api+json; charset=utf-8"));
        assert!(!is_json_media_type("application/x-www-form-urlencoded"));
        assert!(valid_media_type("multipart/form-data"));
        assert!(!valid_media_type("multipart/form-data\r\nX: y"));
        assert!(!valid_media_type("text"));
    }
}
