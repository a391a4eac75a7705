//! Operations: the tools a connection exposes. An HTTP operation is a method, a path template
//! and the JSON Schema of its arguments; an MCP operation is a tool the server announced.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::FieldErrors;
use crate::mapping::RequestMapping;
use crate::names::{OperationName, shorten};
use crate::template::PathTemplate;

/// The HTTP methods an operation may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    Trace,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Head => "HEAD",
            Self::Options => "OPTIONS",
            Self::Trace => "TRACE",
        }
    }

    /// Methods whose unused arguments go to the query string rather than a JSON body.
    pub fn args_in_query(self) -> bool {
        matches!(self, Self::Get | Self::Head | Self::Delete)
    }
}

impl FromStr for HttpMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            "HEAD" => Self::Head,
            "OPTIONS" => Self::Options,
            "TRACE" => Self::Trace,
            _ => {
                return Err(format!(
                    "`{}` is not an HTTP method: use GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or TRACE",
                    shorten(s)
                ));
            }
        })
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operation as a client sends it (create, patch, import draft).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationInput {
    pub name: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "bounded_schema")]
    pub input_schema: Option<Value>,
    #[serde(default, deserialize_with = "bounded_schema")]
    pub output_schema: Option<Value>,
    /// Where each argument goes (HTTP operations); the default rule when absent.
    #[serde(default)]
    pub request: Option<RequestMapping>,
    /// MCP tools: the server's exact tool name, sent with `tools/call` (defaults to `name`).
    #[serde(default)]
    pub mcp_tool: Option<String>,
}

/// A valid operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    pub name: OperationName,
    /// `None` for MCP tools, which are not HTTP requests.
    #[serde(serialize_with = "ser_method")]
    pub method: Option<HttpMethod>,
    /// `None` for MCP tools.
    #[serde(serialize_with = "ser_path")]
    pub path: Option<PathTemplate>,
    pub description: String,
    pub input_schema: Value,
    pub output_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestMapping>,
    /// MCP tools: the server's exact tool name (`None` for HTTP operations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_tool: Option<String>,
}

fn ser_method<S: serde::Serializer>(m: &Option<HttpMethod>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(m.as_str()),
        None => s.serialize_none(),
    }
}

fn ser_path<S: serde::Serializer>(p: &Option<PathTemplate>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(p.as_str()),
        None => s.serialize_none(),
    }
}

/// Whether operations of a connection are HTTP requests or MCP tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Http,
    McpTool,
}

pub const MAX_OPERATIONS: usize = 5_000;
/// The longest MCP tool name kept (the MCP specification asks for at most 128 characters).
pub const MAX_MCP_TOOL_NAME: usize = 1024;
pub const MAX_DESCRIPTION: usize = 16 * 1024;
/// The largest input or output schema of one operation, as JSON text. Reading a
/// connection back (its tools listed for every agent run) must stay cheap.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;
/// The most a connection's operations may hold together, as JSON text (schemas,
/// descriptions, mappings). GitHub's 1,223 operations take about a fifth of it.
pub const MAX_OPERATIONS_BYTES: usize = 24 * 1024 * 1024;

/// Reads a JSON value only when its text is at most `limit` bytes: parsed, JSON takes many
/// times its text, so an oversized field is refused before it is parsed.
pub fn bounded_json<'de, D: serde::Deserializer<'de>>(
    d: D,
    limit: usize,
    what: &str,
) -> Result<Option<Value>, D::Error> {
    use serde::Deserialize;
    use serde::de::Error;
    let raw: Option<Box<serde_json::value::RawValue>> = Option::deserialize(d)?;
    match raw {
        None => Ok(None),
        Some(r) if r.get().len() > limit => Err(D::Error::custom(format!(
            "{what} is {} bytes of JSON; at most {limit} are taken",
            r.get().len()
        ))),
        Some(r) => serde_json::from_str(r.get()).map(Some).map_err(D::Error::custom),
    }
}

fn bounded_schema<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    bounded_json(d, MAX_SCHEMA_BYTES, "a schema")
}

/// The length of `v` written as compact JSON by serde_json, counted without writing it: the
/// importer measures every schema it makes, and counting through a serializer cost it more
/// than building them. Equal to `serde_json::to_string(v).len()` (a property test holds it
/// to that).
pub fn value_len(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => number_len(n),
        Value::String(s) => string_len(s),
        Value::Array(items) => {
            // brackets and the commas between items
            let mut n = 2 + items.len().saturating_sub(1);
            for item in items {
                n = n.saturating_add(value_len(item));
            }
            n
        }
        Value::Object(map) => {
            // braces, commas, and a colon per entry
            let mut n = 2 + map.len().saturating_sub(1) + map.len();
            for (k, item) in map {
                n = n.saturating_add(string_len(k)).saturating_add(value_len(item));
            }
            n
        }
    }
}

/// A number's length as serde_json writes it.
pub fn number_len(n: &serde_json::Number) -> usize {
    if let Some(u) = n.as_u64() {
        digits(u)
    } else if let Some(i) = n.as_i64() {
        1 + digits(i.unsigned_abs())
    } else {
        n.to_string().len()
    }
}

fn digits(mut u: u64) -> usize {
    let mut n = 1;
    while u >= 10 {
        u /= 10;
        n += 1;
    }
    n
}

/// Whether JSON must escape any byte of `s` (`"`, `\`, control characters): a byte-wide
/// pass the compiler vectorizes.
pub fn needs_escape(s: &str) -> bool {
    s.as_bytes().chunks(64).any(|c| {
        c.iter()
            .fold(false, |any, &b| any | (b < 0x20) | (b == b'"') | (b == b'\\'))
    })
}

/// A string's length quoted and escaped as serde_json writes it: `"` and `\` and the short
/// control escapes take two bytes, other control characters six (`\u00XX`).
pub fn string_len(s: &str) -> usize {
    // most strings need no escape at all: looked for first (the counts below widen every
    // byte to a word)
    if !needs_escape(s) {
        return s.len() + 2;
    }
    let bytes = s.as_bytes();
    // counting passes without branches: every escaped byte takes one more, and a control
    // character without a short escape four more again
    let escaped = bytes.iter().filter(|&&b| b < 0x20 || b == b'"' || b == b'\\').count();
    let long = bytes
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d))
        .count();
    s.len() + 2 + escaped + 4 * long
}

/// The length of `v` written as compact JSON, without writing it anywhere.
pub fn json_len<T: serde::Serialize + ?Sized>(v: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // writing to a counter cannot fail; a value that cannot be serialized counts as huge
    match serde_json::to_writer(&mut c, v) {
        Ok(()) => c.0,
        Err(_) => usize::MAX,
    }
}

impl Operation {
    /// Validates one operation; errors carry pointers relative to the operation.
    pub fn parse(input: OperationInput, kind: OperationKind) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = input
            .name
            .parse::<OperationName>()
            .map_err(|e| errors.push("/name", e.0))
            .ok();

        let (method, path) = match kind {
            OperationKind::Http => {
                let method = match input.method.as_deref() {
                    None | Some("") => {
                        errors.push("/method", "an HTTP operation needs a `method`");
                        None
                    }
                    Some(m) => m.parse::<HttpMethod>().map_err(|e| errors.push("/method", e)).ok(),
                };
                let path = match input.path.as_deref() {
                    None | Some("") => {
                        errors.push("/path", "an HTTP operation needs a `path`, such as `/users/{{id}}`");
                        None
                    }
                    Some(p) => PathTemplate::parse(p).map_err(|e| errors.push("/path", e)).ok(),
                };
                (method, path)
            }
            OperationKind::McpTool => {
                if input.method.as_deref().is_some_and(|m| !m.is_empty())
                    || input.path.as_deref().is_some_and(|p| !p.is_empty())
                {
                    errors.push("", "MCP tools have no `method` or `path`; leave them out");
                }
                (None, None)
            }
        };

        let description = input.description.unwrap_or_default();
        if description.contains('\0') {
            errors.push("/description", "description must not contain NUL characters");
        }
        if description.len() > MAX_DESCRIPTION {
            errors.push(
                "/description",
                format!("description is longer than {MAX_DESCRIPTION} bytes"),
            );
        }

        let input_schema = input
            .input_schema
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        check_schema(&input_schema, "/input_schema", true, &mut errors);
        check_schema_size(&input_schema, "/input_schema", &mut errors);
        let output_schema = match input.output_schema {
            None | Some(Value::Null) => None,
            Some(s) => {
                check_schema(&s, "/output_schema", false, &mut errors);
                check_schema_size(&s, "/output_schema", &mut errors);
                Some(s)
            }
        };

        // Every placeholder must be an argument the caller can see and fill.
        if let Some(path) = &path
            && input_schema.is_object()
        {
            let props = input_schema.get("properties").and_then(Value::as_object);
            for param in path.params() {
                if !props.is_some_and(|p| p.contains_key(param)) {
                    errors.push(
                        "/input_schema/properties",
                        format!(
                            "the path uses `{{{{{param}}}}}` but the input schema has no property `{param}`; add it"
                        ),
                    );
                }
            }
        }

        let request = match (kind, input.request) {
            (_, None) => None,
            (OperationKind::McpTool, Some(_)) => {
                errors.push("/request", "MCP tools have no `request` mapping; leave it out");
                None
            }
            (OperationKind::Http, Some(m)) => {
                errors.extend_under("/request", m.check(path.as_ref(), &input_schema));
                Some(m)
            }
        };

        let mcp_tool = match (kind, input.mcp_tool) {
            (OperationKind::Http, None) => None,
            (OperationKind::Http, Some(_)) => {
                errors.push("/mcp_tool", "only MCP tools have an `mcp_tool`; leave it out");
                None
            }
            (OperationKind::McpTool, None) => name.as_ref().map(|n: &OperationName| n.to_string()),
            (OperationKind::McpTool, Some(t)) => {
                if let Err(e) = check_mcp_tool_name(&t) {
                    errors.push("/mcp_tool", e);
                }
                Some(t)
            }
        };

        match (name, errors.is_empty()) {
            (Some(name), true) => Ok(Self {
                name,
                method,
                path,
                description,
                input_schema,
                output_schema,
                request,
                mcp_tool,
            }),
            _ => Err(errors),
        }
    }

    /// What the operation takes up stored, as JSON text (near enough: names, description,
    /// schemas and mapping).
    pub fn stored_len(&self) -> usize {
        let mut n = self.name.as_str().len() + self.description.len() + value_len(&self.input_schema) + 64;
        if let Some(o) = &self.output_schema {
            n = n.saturating_add(value_len(o));
        }
        if let Some(r) = &self.request {
            n = n.saturating_add(json_len(r));
        }
        if let Some(p) = &self.path {
            n += p.as_str().len();
        }
        n
    }

    /// Rebuilds an operation read back from the store. Names and paths are parsed again
    /// (cheap); schemas and the mapping were validated when written and are taken as they are.
    #[allow(clippy::too_many_arguments)]
    pub fn from_stored(
        name: &str,
        method: Option<&str>,
        path: Option<&str>,
        description: String,
        input_schema: Value,
        output_schema: Option<Value>,
        request: Option<RequestMapping>,
        mcp_tool: Option<String>,
    ) -> Result<Self, String> {
        Ok(Self {
            name: name.parse().map_err(|e: crate::names::NameError| e.0)?,
            method: method.map(str::parse).transpose()?,
            path: path.map(PathTemplate::parse).transpose()?,
            description,
            input_schema,
            output_schema,
            request,
            mcp_tool,
        })
    }

    /// Validates a list: each operation, then names unique within the list.
    pub fn parse_all(inputs: Vec<OperationInput>, kind: OperationKind) -> Result<Vec<Self>, FieldErrors> {
        let mut errors = FieldErrors::new();
        if inputs.len() > MAX_OPERATIONS {
            errors.push("", format!("a connection has at most {MAX_OPERATIONS} operations"));
            return Err(errors);
        }
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(inputs.len());
        let mut total = 0usize;
        for (i, input) in inputs.into_iter().enumerate() {
            match Self::parse(input, kind) {
                Ok(op) => {
                    total = total.saturating_add(op.stored_len());
                    if total > MAX_OPERATIONS_BYTES {
                        errors.push(
                            format!("/{i}"),
                            format!(
                                "the operations hold more than {MAX_OPERATIONS_BYTES} bytes of JSON together (from this one on); keep fewer operations or smaller schemas"
                            ),
                        );
                        return Err(errors);
                    }
                    if !seen.insert(op.name.as_str().to_owned()) {
                        errors.push(
                            format!("/{i}/name"),
                            format!(
                                "operation name `{}` is used twice; names must be unique in a connection",
                                op.name
                            ),
                        );
                    }
                    out.push(op);
                }
                Err(e) => errors.extend_under(&format!("/{i}"), e),
            }
        }
        errors.into_result(out)
    }
}

/// An MCP tool name as a server may send it: not empty, at most [`MAX_MCP_TOOL_NAME`]
/// bytes, no control characters (it travels in JSON only, so anything else is kept as is).
pub fn check_mcp_tool_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an MCP tool name must not be empty".into());
    }
    if name.len() > MAX_MCP_TOOL_NAME {
        return Err(format!("an MCP tool name is at most {MAX_MCP_TOOL_NAME} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err("an MCP tool name must not contain control characters".into());
    }
    Ok(())
}

/// A schema must be a JSON object that compiles as JSON Schema; an input schema must
/// describe an object (its properties are the tool's arguments).
fn check_schema_size(schema: &Value, at: &str, errors: &mut FieldErrors) {
    let n = value_len(schema);
    if n > MAX_SCHEMA_BYTES {
        errors.push(
            at,
            format!("the schema is {n} bytes of JSON; at most {MAX_SCHEMA_BYTES} are kept per schema"),
        );
    }
}

fn check_schema(schema: &Value, pointer: &str, must_be_object_type: bool, errors: &mut FieldErrors) {
    let Some(obj) = schema.as_object() else {
        errors.push(pointer, "a schema must be a JSON object");
        return;
    };
    if must_be_object_type {
        match obj.get("type") {
            None => {}
            Some(Value::String(t)) if t == "object" => {}
            Some(_) => {
                errors.push(
                    format!("{pointer}/type"),
                    "an input schema describes the tool's arguments, so its `type` must be `object`",
                );
                return;
            }
        }
    }
    if let Err(e) = jsonschema::validator_for(schema) {
        errors.push(pointer, format!("not a valid JSON Schema: {}", shorten(&e.to_string())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(v: Value) -> OperationInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn http_operation_round_trip() {
        let o = Operation::parse(
            op(json!({"name": "get_issue", "method": "get", "path": "/repos/{{owner}}",
                "input_schema": {"type": "object", "properties": {"owner": {"type": "string"}}}})),
            OperationKind::Http,
        )
        .unwrap();
        assert_eq!(o.method, Some(HttpMethod::Get));
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/repos/{{owner}}");
    }

    #[test]
    fn errors_point_at_fields() {
        let err = Operation::parse(
            op(json!({"name": "bad name", "method": "FETCH", "path": "x",
                "input_schema": {"type": "array"}, "output_schema": 3})),
            OperationKind::Http,
        )
        .unwrap_err();
        let pointers: Vec<_> = err.0.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/name", "/method", "/path", "/input_schema/type", "/output_schema"]
        );
    }

    #[test]
    fn placeholders_need_properties() {
        let err = Operation::parse(
            op(json!({"name": "x", "method": "GET", "path": "/u/{{id}}"})),
            OperationKind::Http,
        )
        .unwrap_err();
        assert!(err.summary().contains("no property `id`"), "{}", err.summary());
    }

    #[test]
    fn invalid_json_schema_is_refused() {
        let err = Operation::parse(
            op(json!({"name": "x", "method": "GET", "path": "/",
                "input_schema": {"type": "object", "properties": {"a": {"type": "strin"}}}})),
            OperationKind::Http,
        )
        .unwrap_err();
        assert!(err.summary().contains("not a valid JSON Schema"), "{}", err.summary());
        let err = Operation::parse(
            op(json!({"name": "x", "method": "GET", "path": "/",
                "input_schema": {"$ref": "https://example.com/schema.json"}})),
            OperationKind::Http,
        )
        .unwrap_err();
        assert!(err.summary().contains("not a valid JSON Schema"), "{}", err.summary());
    }

    #[test]
    fn duplicate_names_are_refused() {
        let err = Operation::parse_all(
            vec![
                op(json!({"name": "a", "method": "GET", "path": "/"})),
                op(json!({"name": "a", "method": "POST", "path": "/"})),
            ],
            OperationKind::Http,
        )
        .unwrap_err();
        assert_eq!(err.0[0].pointer, "/1/name");
    }

    #[test]
    fn mcp_tools_have_no_method() {
        let o = Operation::parse(op(json!({"name": "get-roots-list"})), OperationKind::McpTool).unwrap();
        assert_eq!(o.method, None);
        assert!(Operation::parse(op(json!({"name": "t", "method": "GET"})), OperationKind::McpTool).is_err());
    }
}
