//! From a loaded document to a connection draft: base URL, auth, and one operation per
//! path × method, each with one flat input schema and the mapping that puts every argument
//! back where the API wants it.

use std::collections::{BTreeMap, HashMap, HashSet};

use chatterfly_domain::auth::check_public;
use chatterfly_domain::error::pointer_token;
use chatterfly_domain::mapping::{
    ArgumentTarget, Location, QueryStyle, RequestMapping, header_allowed, is_json_media_type, valid_header_name,
    valid_media_type, valid_wire_name,
};
use chatterfly_domain::operation::{MAX_DESCRIPTION, MAX_OPERATIONS, MAX_SCHEMA_BYTES, value_len};
use chatterfly_domain::{AuthType, SourceDocument, check_http_url};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::doc::{Format, Node, Object};
use crate::json::Json;
use crate::names;
use crate::schema::{Bounds, Converter, Dialect, Direction, Warning};

/// The HTTP methods of a path item, in the order OpenAPI lists them.
pub const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Most warnings one import reports; the rest are counted in a last one.
const MAX_WARNINGS: usize = 1000;

/// What a document is about, for people.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `openapi` or `swagger` as the document states it.
    pub version: String,
    pub format: Format,
    pub title: String,
    pub operations: usize,
}

/// A connection draft in the shape the create endpoint takes (`ConnectionInput`).
#[derive(Debug, Clone, Serialize)]
pub struct Draft {
    pub name: String,
    pub slug: String,
    pub service_type: &'static str,
    pub base_url: String,
    pub auth: Value,
    pub fulfillment: &'static str,
    pub operations: Vec<DraftOperation<'static>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceDocument>,
}

/// One operation of a draft (`OperationInput`). Its output schema borrows from the document
/// ([`DraftOperation::into_owned`] for one that outlives it).
#[derive(Debug, Clone, Serialize)]
pub struct DraftOperation<'d> {
    pub name: String,
    pub method: String,
    pub path: String,
    pub description: String,
    pub input_schema: Value,
    pub output_schema: Option<Json<'d>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestMapping>,
}

impl DraftOperation<'_> {
    /// The same operation, owning its output schema.
    pub fn into_owned(self) -> DraftOperation<'static> {
        DraftOperation {
            name: self.name,
            method: self.method,
            path: self.path,
            description: self.description,
            input_schema: self.input_schema,
            output_schema: self.output_schema.map(Json::into_owned),
            request: self.request,
        }
    }

    /// Appends the operation as compact JSON: what `serde_json` writes for it (the
    /// corpus test holds the two equal), with the output schema written by
    /// [`Json::write_to`].
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"name\":");
        serde_json::to_writer(&mut *out, &self.name)?;
        out.extend_from_slice(b",\"method\":");
        serde_json::to_writer(&mut *out, &self.method)?;
        out.extend_from_slice(b",\"path\":");
        serde_json::to_writer(&mut *out, &self.path)?;
        out.extend_from_slice(b",\"description\":");
        serde_json::to_writer(&mut *out, &self.description)?;
        out.extend_from_slice(b",\"input_schema\":");
        serde_json::to_writer(&mut *out, &self.input_schema)?;
        out.extend_from_slice(b",\"output_schema\":");
        match &self.output_schema {
            Some(schema) => schema.write_to(out)?,
            None => out.extend_from_slice(b"null"),
        }
        if let Some(request) = &self.request {
            out.extend_from_slice(b",\"request\":");
            serde_json::to_writer(&mut *out, request)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// Why a document cannot be imported at all, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ImportError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// JSON pointer into the document, for problems found after parsing.
    pub pointer: Option<String>,
}

impl ImportError {
    fn at(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            line: None,
            column: None,
            pointer: Some(pointer.into()),
        }
    }

    fn describe(&self) -> String {
        match (&self.pointer, self.line, self.column) {
            (Some(p), _, _) => format!("{}: {}", if p.is_empty() { "document" } else { p }, self.message),
            (None, Some(l), Some(c)) => format!("line {l}, column {c}: {}", self.message),
            _ => self.message.clone(),
        }
    }
}

impl From<crate::doc::SyntaxError> for ImportError {
    fn from(e: crate::doc::SyntaxError) -> Self {
        Self {
            message: e.message,
            line: e.line,
            column: e.column,
            pointer: None,
        }
    }
}

/// Choices made by the caller.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The connection's name (the document's `info.title` when absent).
    pub name: Option<String>,
    /// The connection's slug (made from the name when absent).
    pub slug: Option<String>,
}

/// An import in progress: the header (name, base URL, auth) is worked out when it is
/// created; operations are produced one at a time by [`Importer::each_operation`].
pub struct Importer<'d, 'a> {
    root: &'d Node<'a>,
    conv: Converter<'d, 'a>,
    pub summary: Summary,
    pub name: String,
    pub slug: String,
    pub base_url: String,
    pub auth: Value,
    /// The security scheme the connection's auth stands for.
    scheme: Option<String>,
    /// Operations asking for another scheme, and naming their own servers (one warning each).
    foreign_security: usize,
    foreign_servers: usize,
    dropped_warnings: usize,
    /// Global `consumes` (Swagger 2.0).
    consumes: Vec<&'d str>,
}

impl<'d, 'a> Importer<'d, 'a> {
    pub fn new(root: &'d Node<'a>, format: Format, options: &Options) -> Result<Self, ImportError> {
        let Some(top) = root.as_object() else {
            return Err(ImportError::at(
                "",
                format!("the document is {}; an OpenAPI document is an object", root.kind()),
            ));
        };
        let (dialect, version) = dialect_of(top)?;
        let mut conv = Converter::new(root, dialect);
        if version.starts_with("3.2") {
            conv.warn("/openapi", format!("OpenAPI {version} is read as 3.1"));
        }
        let title = root
            .get("info")
            .and_then(|i| i.str_at("title"))
            .map(|t| {
                t.chars()
                    .filter(|c| !c.is_control() && !chatterfly_domain::connection::is_invisible_format(*c))
                    .collect::<String>()
                    .trim()
                    .to_owned()
            })
            .filter(|t| !t.is_empty());
        let name = options
            .name
            .clone()
            .or_else(|| title.clone())
            .map(|n| names::cut(&n, 200))
            .unwrap_or_else(|| "Imported API".to_owned());
        let slug = options.slug.clone().unwrap_or_else(|| names::slug_from_title(&name));

        let paths = match top.get("paths") {
            None => {
                conv.warn(
                    "/paths",
                    "the document has no `paths`: there are no operations to import",
                );
                None
            }
            Some(Node::Object(p)) => Some(p),
            Some(other) => {
                return Err(ImportError::at(
                    "/paths",
                    format!("`paths` is {}; it must be an object of path items", other.kind()),
                ));
            }
        };
        let mut operation_pairs = 0;
        if let Some(paths) = paths {
            for (_, item) in paths.iter() {
                if let Some(item) = item.as_object() {
                    operation_pairs += item.iter().filter(|(k, _)| METHODS.contains(k)).count();
                }
            }
        }
        if operation_pairs > MAX_OPERATIONS {
            return Err(ImportError::at(
                "/paths",
                format!("the document has {operation_pairs} operations; a connection holds at most {MAX_OPERATIONS}"),
            ));
        }
        let consumes = root
            .get("consumes")
            .and_then(Node::as_array)
            .map(|a| a.iter().filter_map(Node::as_str).collect())
            .unwrap_or_default();

        let mut me = Self {
            root,
            conv,
            summary: Summary {
                version,
                format,
                title: title.unwrap_or_default(),
                operations: operation_pairs,
            },
            name,
            slug,
            base_url: String::new(),
            auth: json!({"type": "none"}),
            scheme: None,
            foreign_security: 0,
            foreign_servers: 0,
            dropped_warnings: 0,
            consumes,
        };
        me.base_url = me.base_url();
        me.choose_auth();
        Ok(me)
    }

    /// The base URL: 3.x `servers[0]` with its variables' defaults, 2.0 scheme + host +
    /// basePath. Relative, missing or unusable → a warning and an empty base URL.
    fn base_url(&mut self) -> String {
        let root = self.root;
        let (raw, at) = if self.conv.dialect == Dialect::Swagger2 {
            let Some(host) = root.str_at("host").filter(|h| !h.trim().is_empty()) else {
                self.conv.warn(
                    "/host",
                    "the document names no `host`: fill in the base URL (such as https://api.example.com)",
                );
                return String::new();
            };
            let schemes: Vec<&str> = root
                .get("schemes")
                .and_then(Node::as_array)
                .map(|a| a.iter().filter_map(Node::as_str).collect())
                .unwrap_or_default();
            let scheme = if schemes.is_empty() || schemes.contains(&"https") {
                "https"
            } else if schemes.contains(&"http") {
                "http"
            } else {
                "https"
            };
            let base_path = root.str_at("basePath").unwrap_or("");
            let base_path = if base_path.is_empty() || base_path.starts_with('/') {
                base_path.to_owned()
            } else {
                format!("/{base_path}")
            };
            (format!("{scheme}://{}{base_path}", host.trim()), "/host")
        } else {
            let Some(server) = root.get("servers").and_then(Node::as_array).and_then(|s| s.first()) else {
                self.conv.warn(
                    "/servers",
                    "the document lists no `servers`: fill in the base URL (such as https://api.example.com)",
                );
                return String::new();
            };
            let Some(url) = server.str_at("url") else {
                self.conv
                    .warn("/servers/0/url", "`servers[0]` has no `url`: fill in the base URL");
                return String::new();
            };
            (self.substitute_variables(url, server), "/servers/0/url")
        };
        let trimmed = raw.trim().trim_end_matches('/').to_owned();
        if !trimmed.contains("://") {
            self.conv.warn(
                at,
                format!(
                    "the server URL `{}` is relative: fill in the base URL (the API's scheme and host{})",
                    names::cut(&raw, 200),
                    if trimmed.is_empty() { "" } else { ", then this path" }
                ),
            );
            return String::new();
        }
        match check_http_url(&trimmed) {
            Ok(url) => url,
            Err(e) => {
                self.conv
                    .warn(at, format!("the server URL cannot be used ({e}): fill in the base URL"));
                String::new()
            }
        }
    }

    fn substitute_variables(&mut self, url: &str, server: &Node<'a>) -> String {
        let vars = server.get("variables").and_then(Node::as_object);
        let mut out = String::with_capacity(url.len());
        let mut rest = url;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else { break };
            out.push_str(&rest[..start]);
            let name = &rest[start + 1..start + len];
            let value = vars.and_then(|v| v.get(name)).and_then(|v| match v.get("default") {
                Some(Node::String(s)) => Some(s.to_string()),
                Some(Node::Number(n)) => Some(n.to_string()),
                _ => None,
            });
            match value {
                Some(v) => out.push_str(&v),
                None => {
                    self.conv.warn(
                        "/servers/0/variables",
                        format!(
                            "server variable `{}` has no default: fill in the base URL",
                            names::cut(name, 100)
                        ),
                    );
                    out.push_str(&rest[start..=start + len]);
                }
            }
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Maps one security scheme to an auth shape (public fields only), warning about what
    /// does not map exactly.
    fn auth_for(&mut self, name: &str) -> Option<Value> {
        let root = self.root;
        let (defs_at, defs) = if self.conv.dialect == Dialect::Swagger2 {
            ("/securityDefinitions", root.get("securityDefinitions"))
        } else {
            (
                "/components/securitySchemes",
                root.get("components").and_then(|c| c.get("securitySchemes")),
            )
        };
        let at = format!("{defs_at}/{}", pointer_token(name));
        let Some(raw) = defs.and_then(|d| d.get(name)) else {
            self.conv
                .warn(at, "the security requirement names a scheme that is not defined");
            return None;
        };
        let scheme = self.conv.deref(raw, &at)?;
        let kind = scheme.str_at("type").unwrap_or("");
        match kind {
            "apiKey" => {
                let param = scheme.str_at("name").unwrap_or("");
                let usable = |t: AuthType, field: &str| check_public(t, field, param);
                match scheme.str_at("in") {
                    Some(place @ ("header" | "query")) if !param.is_empty() => {
                        let (t, field) = if place == "header" {
                            (AuthType::ApiKeyHeader, "header")
                        } else {
                            (AuthType::ApiKeyQuery, "param")
                        };
                        match usable(t, field) {
                            Ok(()) => Some(json!({"type": t.as_str(), field: param})),
                            Err(e) => {
                                self.conv.warn(at, format!("the API key scheme cannot be used: {e}"));
                                None
                            }
                        }
                    }
                    Some("cookie") => {
                        self.conv.warn(
                            at,
                            "API keys sent in a cookie are not supported: choose another auth type or none",
                        );
                        None
                    }
                    _ => {
                        self.conv.warn(at, "the API key scheme has no usable `name` and `in`");
                        None
                    }
                }
            }
            "basic" => Some(json!({"type": "basic"})),
            "http" => match scheme.str_at("scheme").map(str::to_ascii_lowercase).as_deref() {
                Some("bearer") => Some(json!({"type": "bearer"})),
                Some("basic") => Some(json!({"type": "basic"})),
                other => {
                    self.conv.warn(
                        at,
                        format!(
                            "HTTP auth scheme `{}` is not supported: choose another auth type or none",
                            names::cut(other.unwrap_or(""), 50)
                        ),
                    );
                    None
                }
            },
            "oauth2" | "openIdConnect" => {
                self.conv.warn(
                    at,
                    format!(
                        "{kind} becomes a bearer token: paste an access token obtained outside Chatterfly (tokens are not refreshed)"
                    ),
                );
                Some(json!({"type": "bearer"}))
            }
            other => {
                self.conv.warn(
                    at,
                    format!(
                        "security scheme type `{}` is not supported: choose another auth type or none",
                        names::cut(other, 50)
                    ),
                );
                None
            }
        }
    }

    /// The global security requirement decides the auth: its first alternative that maps.
    /// Without one, the requirement most operations state is used (with a warning).
    fn choose_auth(&mut self) {
        let root = self.root;
        let global = root.get("security").and_then(Node::as_array);
        let (alternatives, at): (Vec<&Object<'a>>, String) = match global {
            Some(list) => (
                list.iter().filter_map(Node::as_object).collect(),
                "/security".to_owned(),
            ),
            None => {
                // count the schemes operations ask for
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                let mut first_seen: Vec<&str> = Vec::new();
                if let Some(paths) = root.get("paths").and_then(Node::as_object) {
                    for (_, item) in paths.iter() {
                        for (m, op) in item
                            .as_object()
                            .map(|o| o.iter().collect::<Vec<_>>())
                            .unwrap_or_default()
                        {
                            if !METHODS.contains(&m) {
                                continue;
                            }
                            if let Some(req) = op.get("security").and_then(Node::as_array).and_then(|a| a.first())
                                && let Some((name, _)) = req.as_object().and_then(|o| o.iter().next())
                            {
                                if !counts.contains_key(name) {
                                    first_seen.push(name);
                                }
                                *counts.entry(name).or_default() += 1;
                            }
                        }
                    }
                }
                // a tie goes to the scheme declared first (securitySchemes or
                // securityDefinitions), then to the one an operation asked for first
                let declared: Vec<&str> = if self.conv.dialect == Dialect::Swagger2 {
                    root.get("securityDefinitions")
                } else {
                    root.get("components").and_then(|c| c.get("securitySchemes"))
                }
                .and_then(Node::as_object)
                .map(|o| o.iter().map(|(k, _)| k).collect())
                .unwrap_or_default();
                let order = |n: &str| {
                    (
                        declared.iter().position(|d| *d == n).unwrap_or(usize::MAX),
                        first_seen.iter().position(|x| *x == n).unwrap_or(usize::MAX),
                    )
                };
                let Some(top) = counts.values().copied().max() else {
                    return;
                };
                let mut tied: Vec<&str> = first_seen.iter().copied().filter(|n| counts[n] == top).collect();
                tied.sort_by_key(|n| order(n));
                let Some(best) = tied.first().copied() else { return };
                if let Some(auth) = self.auth_for(best) {
                    let mut message = format!(
                        "the document has no global security requirement; the connection uses `{}`, which {} of {} operations ask for",
                        names::cut(best, 100),
                        counts[best],
                        self.summary.operations
                    );
                    if tied.len() > 1 {
                        let others: Vec<String> = tied[1..]
                            .iter()
                            .take(5)
                            .map(|n| format!("`{}`", names::cut(n, 100)))
                            .collect();
                        message.push_str(&format!(
                            "; it ties with {} and comes first in the document's order",
                            others.join(", ")
                        ));
                    }
                    self.conv.warn("/security", message);
                    self.auth = auth;
                    self.scheme = Some(best.to_owned());
                }
                return;
            }
        };
        if alternatives.is_empty() || alternatives.iter().any(|a| a.is_empty()) && alternatives.len() == 1 {
            return;
        }
        for (i, alt) in alternatives.iter().enumerate() {
            if alt.is_empty() {
                continue;
            }
            let names: Vec<&str> = alt.iter().map(|(k, _)| k).collect();
            for name in &names {
                if let Some(auth) = self.auth_for(name) {
                    if names.len() > 1 {
                        self.conv.warn(
                            format!("{at}/{i}"),
                            format!(
                                "this requirement combines {} schemes; only `{}` is sent",
                                names.len(),
                                names::cut(name, 100)
                            ),
                        );
                    }
                    self.auth = auth;
                    self.scheme = Some((*name).to_owned());
                    return;
                }
            }
        }
    }

    /// Produces every operation, in document order, handing each to `f`. Warnings collect in
    /// the importer.
    pub fn each_operation(&mut self, mut f: impl FnMut(DraftOperation<'d>)) {
        let root = self.root;
        let Some(paths) = root.get("paths").and_then(Node::as_object) else {
            return;
        };
        let mut taken = names::Taken::default();
        for (path, item) in paths.iter() {
            let item_at = format!("/paths/{}", pointer_token(path));
            let Some(item) = self.conv.deref(item, &item_at) else {
                continue;
            };
            let Some(item_obj) = item.as_object() else {
                self.conv
                    .warn(item_at, format!("a path item is {}; skipped", item.kind()));
                continue;
            };
            for (method, op) in item_obj.iter() {
                if !METHODS.contains(&method) {
                    continue;
                }
                let at = format!("{item_at}/{method}");
                let Some(op_obj) = op.as_object() else {
                    self.conv.warn(at, format!("an operation is {}; skipped", op.kind()));
                    continue;
                };
                let (draft, input_len) = self.operation(path, method, item, op_obj, &at, &mut taken);
                // a tool's schema holds at most MAX_SCHEMA_BYTES: an operation whose
                // arguments alone (their names) take more cannot be a tool
                if input_len > MAX_SCHEMA_BYTES {
                    self.conv.warn(
                        at.clone(),
                        format!(
                            "operation `{}` has too many arguments to be a tool (its input schema would be over {MAX_SCHEMA_BYTES} bytes); left out",
                            names::cut(&draft.name, 100)
                        ),
                    );
                    continue;
                }
                f(draft);
            }
        }
        if self.foreign_security > 0
            && let Some(scheme) = &self.scheme
        {
            let reason = format!(
                "{} operations ask for security other than `{}`; they are called with the connection's auth",
                self.foreign_security,
                names::cut(scheme, 100)
            );
            self.conv.warn("/paths", reason);
        }
        if self.foreign_servers > 0 {
            let reason = format!(
                "{} operations name their own `servers`; every call goes to the connection's base URL",
                self.foreign_servers
            );
            self.conv.warn("/paths", reason);
        }
    }

    /// The warnings so far, capped.
    pub fn warnings(&mut self) -> Vec<Warning> {
        let mut w = std::mem::take(&mut self.conv.warnings);
        if w.len() > MAX_WARNINGS {
            self.dropped_warnings += w.len() - MAX_WARNINGS;
            w.truncate(MAX_WARNINGS);
            w.push(Warning {
                pointer: String::new(),
                reason: format!("{} more warnings not shown", self.dropped_warnings),
            });
        }
        w
    }

    fn operation(
        &mut self,
        path: &'d str,
        method: &str,
        item: &'d Node<'a>,
        op: &'d Object<'a>,
        at: &str,
        taken: &mut names::Taken,
    ) -> (DraftOperation<'d>, usize) {
        let mut args = Args::default();
        let params = self.parameters(item, op, at);

        // path, query, header parameters become arguments; 2.0 body and formData are bodies
        let mut body_param: Option<(&'d Node<'a>, String)> = None;
        let mut form_params: Vec<(&'d Node<'a>, String)> = Vec::new();
        for (param, p_at) in params {
            let name = param.str_at("name").unwrap_or("");
            let location = param.str_at("in").unwrap_or("");
            match location {
                "body" => {
                    body_param = Some((param, p_at));
                    continue;
                }
                "formData" => {
                    form_params.push((param, p_at));
                    continue;
                }
                "cookie" => {
                    self.conv.warn(
                        p_at,
                        format!(
                            "cookie parameter `{}` is not supported; it is never sent",
                            names::cut(name, 100)
                        ),
                    );
                    continue;
                }
                "path" | "query" | "header" => {}
                other => {
                    self.conv.warn(
                        p_at,
                        format!(
                            "parameter location `{}` is not supported; skipped",
                            names::cut(other, 50)
                        ),
                    );
                    continue;
                }
            }
            if name.is_empty() {
                self.conv.warn(p_at, "a parameter without a `name`; skipped");
                continue;
            }
            let sendable = match location {
                "header" => valid_header_name(name),
                _ => valid_wire_name(name),
            };
            if !sendable {
                self.conv.warn(
                    p_at,
                    format!(
                        "parameter name `{}` cannot be sent as a {location} parameter; skipped",
                        names::cut(name, 100)
                    ),
                );
                continue;
            }
            // OpenAPI: header parameters named Accept, Content-Type or Authorization are ignored
            let described_elsewhere = ["accept", "content-type", "authorization"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h));
            if location == "header" && (described_elsewhere || !header_allowed(name)) {
                if !described_elsewhere {
                    self.conv.warn(
                        p_at,
                        format!(
                            "header parameter `{}` is set by the connection or the transport, not by an argument; skipped",
                            names::cut(name, 100)
                        ),
                    );
                }
                continue;
            }
            let schema = self.parameter_schema(param, &p_at);
            let loc = match location {
                "path" => Location::Path,
                "query" => Location::Query,
                _ => Location::Header,
            };
            let required = loc == Location::Path || param.get("required").and_then(Node::as_bool) == Some(true);
            let mut target = ArgumentTarget::new(loc);
            if loc == Location::Query {
                let (style, explode) = self.query_style(param);
                target.style = style;
                target.explode = explode;
            }
            args.add(name, loc, target, schema, required);
        }

        // the path template, with every `{param}` as `{{argument}}`
        let template = self.template(path, &mut args, at);

        // the body
        let mut content_type = None;
        let body_required;
        let body_schema = if let Some((param, p_at)) = body_param {
            body_required = param.get("required").and_then(Node::as_bool) == Some(true);
            let consumes = op_consumes(op).unwrap_or_else(|| self.consumes.clone());
            content_type = consumes
                .iter()
                .find(|c| is_json_media_type(c) && valid_media_type(c))
                .map(|c| (*c).to_owned());
            param.get("schema").map(|s| {
                self.conv
                    .schema(s, Direction::Request, Bounds::REQUEST, &format!("{p_at}/schema"))
                    .into_value()
            })
        } else if !form_params.is_empty() {
            let consumes = op_consumes(op).unwrap_or_else(|| self.consumes.clone());
            let multipart = consumes.contains(&"multipart/form-data")
                || form_params.iter().any(|(p, _)| p.str_at("type") == Some("file"));
            content_type = Some(if multipart {
                "multipart/form-data".to_owned()
            } else {
                "application/x-www-form-urlencoded".to_owned()
            });
            let mut props = Map::new();
            let mut required = Vec::new();
            for (p, p_at) in &form_params {
                let name = p.str_at("name").unwrap_or("");
                if name.is_empty() {
                    continue;
                }
                props.insert(name.to_owned(), self.parameter_schema(p, p_at));
                if p.get("required").and_then(Node::as_bool) == Some(true) {
                    required.push(json!(name));
                }
            }
            body_required = !required.is_empty();
            Some(json!({"type": "object", "properties": props, "required": required}))
        } else if let Some(rb) = op.get("requestBody") {
            let rb_at = format!("{at}/requestBody");
            match self.conv.deref(rb, &rb_at) {
                Some(rb) => {
                    body_required = rb.get("required").and_then(Node::as_bool) == Some(true);
                    match choose_media_type(rb.get("content")) {
                        Some((ct, media)) => {
                            content_type = Some(ct.to_owned());
                            let schema_at = format!("{rb_at}/content/{}/schema", pointer_token(ct));
                            Some(match media.get("schema") {
                                Some(s) => self
                                    .conv
                                    .schema(s, Direction::Request, Bounds::REQUEST, &schema_at)
                                    .into_value(),
                                None => json!({}),
                            })
                        }
                        None => {
                            if rb.get("content").is_some() {
                                self.conv.warn(
                                    format!("{rb_at}/content"),
                                    "the request body has no usable media type; it is left out",
                                );
                            }
                            None
                        }
                    }
                }
                None => {
                    body_required = false;
                    None
                }
            }
        } else {
            body_required = false;
            None
        };
        if let Some(schema) = body_schema {
            let json_body = content_type.as_deref().is_none_or(is_json_media_type);
            let form_body = matches!(
                content_type.as_deref(),
                Some("application/x-www-form-urlencoded" | "multipart/form-data")
            );
            let flattened = (json_body || form_body) && args.flatten_body(&schema, body_required);
            if !flattened {
                let name = args.free_name("body", "request_body");
                let mut schema = schema;
                describe(&mut schema, "The request body.");
                args.push(name, ArgumentTarget::new(Location::WholeBody), schema, body_required);
            }
        }

        // security and servers
        let mut credentials = true;
        if let Some(sec) = op.get("security").and_then(Node::as_array) {
            if sec.is_empty() {
                credentials = false;
            } else if let Some(scheme) = &self.scheme {
                let names_it = sec.iter().filter_map(Node::as_object);
                let ok = names_it.clone().any(|r| r.is_empty() || r.get(scheme).is_some());
                if !ok {
                    self.foreign_security += 1;
                }
            }
        }
        if op.get("servers").is_some() || item.get("servers").is_some() {
            self.foreign_servers += 1;
        }

        let output_schema = self.output_schema(op, at);
        let name = names::unique(
            names::operation_name(op.get("operationId").and_then(Node::as_str), method, path),
            taken,
            names::MAX_OPERATION_NAME,
        );
        let description = description_of(op);

        let (mut input_schema, arguments) = args.finish();
        let mut input_len = value_len(&input_schema);
        if input_len > MAX_SCHEMA_BYTES && shrink_arguments(&mut input_schema) {
            self.conv.warn(
                at,
                format!(
                    "the arguments' schemas together are over {MAX_SCHEMA_BYTES} bytes; the largest accept any value"
                ),
            );
            input_len = value_len(&input_schema);
        }
        let content_type = content_type.filter(|c| !c.eq_ignore_ascii_case("application/json"));
        let mapping = RequestMapping {
            arguments,
            content_type,
            credentials,
        };
        let request = (mapping != RequestMapping::default()).then_some(mapping);
        let draft = DraftOperation {
            name,
            method: method.to_ascii_uppercase(),
            path: template,
            description,
            input_schema,
            output_schema,
            request,
        };
        (draft, input_len)
    }

    /// Path-item parameters merged with the operation's (the operation's win), each
    /// `$ref` followed; with the pointer of each.
    fn parameters(&mut self, item: &'d Node<'a>, op: &'d Object<'a>, at: &str) -> Vec<(&'d Node<'a>, String)> {
        let item_at = &at[..at.rfind('/').unwrap_or(0)];
        // a later parameter with the same location and name replaces the earlier one
        let mut out: Vec<Option<(&'d Node<'a>, String)>> = Vec::new();
        let mut at_index: HashMap<(Option<&'d str>, Option<&'d str>), usize> = HashMap::new();
        let lists = [
            (item.get("parameters"), format!("{item_at}/parameters")),
            (op.get("parameters"), format!("{at}/parameters")),
        ];
        for (list, list_at) in lists {
            let Some(list) = list else { continue };
            let Some(items) = list.as_array() else {
                self.conv.warn(list_at, "`parameters` is not an array; ignored");
                continue;
            };
            for (i, p) in items.iter().enumerate() {
                let p_at = format!("{list_at}/{i}");
                let Some(p) = self.conv.deref(p, &p_at) else { continue };
                if p.as_object().is_none() {
                    self.conv.warn(p_at, "a parameter is not an object; skipped");
                    continue;
                }
                let key = (p.str_at("in"), p.str_at("name"));
                if let Some(old) = at_index.insert(key, out.len()) {
                    out[old] = None;
                }
                out.push(Some((p, p_at)));
            }
        }
        out.into_iter().flatten().collect()
    }

    /// A parameter's schema: 3.x `schema` or `content`, 2.0 the parameter itself; with the
    /// parameter's description and examples.
    fn parameter_schema(&mut self, param: &'d Node<'a>, at: &str) -> Value {
        let mut schema = if self.conv.dialect == Dialect::Swagger2 {
            self.conv
                .schema(param, Direction::Request, Bounds::REQUEST, at)
                .into_value()
        } else if let Some(s) = param.get("schema") {
            self.conv
                .schema(s, Direction::Request, Bounds::REQUEST, &format!("{at}/schema"))
                .into_value()
        } else if let Some((ct, media)) = choose_media_type(param.get("content")) {
            match media.get("schema") {
                Some(s) => self
                    .conv
                    .schema(
                        s,
                        Direction::Request,
                        Bounds::REQUEST,
                        &format!("{at}/content/{}/schema", pointer_token(ct)),
                    )
                    .into_value(),
                None => json!({}),
            }
        } else {
            json!({"type": "string"})
        };
        if let Value::Object(map) = &mut schema {
            if let Some(d) = param.str_at("description").filter(|d| !d.trim().is_empty()) {
                map.insert("description".into(), json!(names::cut(d.trim(), 4096)));
            }
            if param.get("deprecated").and_then(Node::as_bool) == Some(true) {
                map.insert("deprecated".into(), json!(true));
            }
            if !map.contains_key("examples")
                && let Some(ex) = param.get("example")
            {
                map.insert("examples".into(), json!([ex.to_value()]));
            }
        }
        schema
    }

    /// A query parameter's style and explode, when they differ from `form` + explode.
    fn query_style(&self, param: &Node<'a>) -> (Option<QueryStyle>, Option<bool>) {
        if self.conv.dialect == Dialect::Swagger2 {
            if param.str_at("type") != Some("array") {
                return (None, None);
            }
            return match param.str_at("collectionFormat").unwrap_or("csv") {
                "multi" => (None, None),
                "ssv" => (Some(QueryStyle::SpaceDelimited), Some(false)),
                "pipes" => (Some(QueryStyle::PipeDelimited), Some(false)),
                _ => (None, Some(false)),
            };
        }
        let style = match param.str_at("style") {
            Some("spaceDelimited") => Some(QueryStyle::SpaceDelimited),
            Some("pipeDelimited") => Some(QueryStyle::PipeDelimited),
            Some("deepObject") => Some(QueryStyle::DeepObject),
            _ => None,
        };
        let explode = param.get("explode").and_then(Node::as_bool);
        let default_explode = style.is_none();
        (
            style,
            explode.filter(|e| *e != default_explode).or(match style {
                Some(QueryStyle::SpaceDelimited | QueryStyle::PipeDelimited) => Some(false),
                _ => None,
            }),
        )
    }

    /// The path with `{param}` turned into `{{argument}}`; placeholders that no parameter
    /// declares become string arguments (with a warning). Characters a template cannot hold
    /// are percent-encoded.
    fn template(&mut self, path: &str, args: &mut Args, at: &str) -> String {
        let mut used: HashSet<String> = HashSet::new();
        let mut out = String::with_capacity(path.len() + 8);
        if !path.starts_with('/') {
            out.push('/');
        }
        let mut rest = path;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{')
                && let Some(end) = after.find('}')
            {
                let wire = &after[..end];
                let arg = match args.path_argument(wire) {
                    Some(a) => a,
                    None => {
                        self.conv.warn(
                            at,
                            format!(
                                "the path uses `{{{}}}` but no path parameter declares it; it becomes a required string argument",
                                names::cut(wire, 100)
                            ),
                        );
                        let name = args.free_name(&names::argument_name(wire), "path_param");
                        args.push_named_wire(name.clone(), wire, json!({"type": "string"}));
                        name
                    }
                };
                out.push_str("{{");
                out.push_str(&arg);
                out.push_str("}}");
                used.insert(arg);
                rest = &after[end + 1..];
                continue;
            }
            let Some(c) = rest.chars().next() else { break };
            if c.is_whitespace() || c.is_control() || matches!(c, '#' | '?' | '{' | '}') {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            } else if c == '/' && out == "/" {
                // a leading `//` would name another host
            } else {
                out.push(c);
            }
            rest = &rest[c.len_utf8()..];
        }
        // a declared path parameter the path does not use cannot be sent anywhere
        let unused: Vec<(String, String)> = args
            .path_args
            .iter()
            .filter(|(_, arg)| !used.contains(*arg))
            .map(|(w, a)| (w.clone(), a.clone()))
            .collect();
        for (wire, arg) in unused {
            self.conv.warn(
                at,
                format!(
                    "path parameter `{}` does not appear in the path; it is left out",
                    names::cut(&wire, 100)
                ),
            );
            args.remove(&wire, &arg);
        }
        out
    }

    fn output_schema(&mut self, op: &'d Object<'a>, at: &str) -> Option<Json<'d>> {
        let responses = op.get("responses")?.as_object()?;
        let mut codes: Vec<(&str, &'d Node<'a>)> = responses
            .iter()
            .filter(|(code, _)| {
                let b = code.as_bytes();
                b.len() == 3
                    && b[0] == b'2'
                    && (b[1..].iter().all(u8::is_ascii_digit) || code.eq_ignore_ascii_case("2xx"))
            })
            .collect();
        codes.sort_by_key(|(c, _)| (c.eq_ignore_ascii_case("2xx"), *c));
        for (code, resp) in codes {
            let r_at = format!("{at}/responses/{code}");
            let Some(resp) = self.conv.deref(resp, &r_at) else {
                continue;
            };
            if self.conv.dialect == Dialect::Swagger2 {
                if let Some(s) = resp.get("schema") {
                    return Some(
                        self.conv
                            .schema(s, Direction::Response, Bounds::RESPONSE, &format!("{r_at}/schema")),
                    );
                }
                continue;
            }
            let Some(content) = resp.get("content").and_then(Node::as_object) else {
                continue;
            };
            let json_media = content
                .iter()
                .find(|(ct, _)| is_json_media_type(ct))
                .or_else(|| content.iter().find(|(ct, _)| *ct == "*/*"));
            if let Some((ct, media)) = json_media
                && let Some(s) = media.get("schema")
            {
                let s_at = format!("{r_at}/content/{}/schema", pointer_token(ct));
                return Some(self.conv.schema(s, Direction::Response, Bounds::RESPONSE, &s_at));
            }
        }
        None
    }
}

/// The dialect and version string of a document.
fn dialect_of(top: &Object<'_>) -> Result<(Dialect, String), ImportError> {
    let text = |n: &Node<'_>| match n {
        Node::String(s) => Some(s.trim().to_owned()),
        Node::Number(n) => Some(n.to_string()),
        _ => None,
    };
    if let Some(v) = top.get("openapi") {
        let version = text(v).unwrap_or_default();
        return if version.starts_with("3.0") {
            Ok((Dialect::OpenApi30, version))
        } else if version.starts_with("3.1") || version.starts_with("3.2") {
            Ok((Dialect::OpenApi31, version))
        } else {
            Err(ImportError::at(
                "/openapi",
                format!(
                    "OpenAPI version `{}` is not supported: use 3.0.x, 3.1.x or Swagger 2.0",
                    names::cut(&version, 50)
                ),
            ))
        };
    }
    if let Some(v) = top.get("swagger") {
        let version = text(v).unwrap_or_default();
        return if version == "2.0" || version == "2" {
            Ok((Dialect::Swagger2, "2.0".to_owned()))
        } else {
            Err(ImportError::at(
                "/swagger",
                format!(
                    "Swagger version `{}` is not supported: use 2.0 (or OpenAPI 3.x)",
                    names::cut(&version, 50)
                ),
            ))
        };
    }
    Err(ImportError::at(
        "",
        "this is not an OpenAPI document: it has neither an `openapi` nor a `swagger` field",
    ))
}

/// An operation's own `consumes` (Swagger 2.0).
fn op_consumes<'d>(op: &'d Object<'_>) -> Option<Vec<&'d str>> {
    op.get("consumes")
        .and_then(Node::as_array)
        .map(|a| a.iter().filter_map(Node::as_str).collect())
}

/// The media type a body is sent as: JSON first, then URL-encoded and multipart forms,
/// then whatever comes first.
fn choose_media_type<'d, 'a>(content: Option<&'d Node<'a>>) -> Option<(&'d str, &'d Node<'a>)> {
    let content = content?.as_object()?;
    // `*/*` and `application/*` cannot go in a Content-Type header: JSON is sent for them
    let usable: Vec<(&'d str, &'d Node<'a>)> = content
        .iter()
        .filter_map(|(ct, m)| {
            if ct.contains('*') {
                Some(("application/json", m))
            } else {
                valid_media_type(ct).then_some((ct, m))
            }
        })
        .collect();
    let find = |pred: &dyn Fn(&str) -> bool| usable.iter().find(|(ct, _)| pred(ct)).copied();
    find(&|ct| is_json_media_type(ct))
        .or_else(|| find(&|ct| ct == "application/x-www-form-urlencoded"))
        .or_else(|| find(&|ct| ct == "multipart/form-data"))
        .or_else(|| usable.first().copied())
}

fn description_of(op: &Object<'_>) -> String {
    let summary = op.get("summary").and_then(Node::as_str).map(str::trim).unwrap_or("");
    let details = op
        .get("description")
        .and_then(Node::as_str)
        .map(str::trim)
        .unwrap_or("");
    let mut text = match (summary.is_empty(), details.is_empty()) {
        (false, false) if details.starts_with(summary) => details.to_owned(),
        (false, false) => format!("{summary}\n\n{details}"),
        (false, true) => summary.to_owned(),
        (true, _) => details.to_owned(),
    };
    if op.get("deprecated").and_then(Node::as_bool) == Some(true) {
        text = format!("(Deprecated) {text}");
    }
    // NUL (possible through a JSON `\u0000` escape) cannot be stored as text
    names::cut(&text.replace('\0', ""), MAX_DESCRIPTION)
}

fn describe(schema: &mut Value, text: &str) {
    if let Value::Object(map) = schema {
        map.entry("description").or_insert_with(|| json!(text));
    }
}

/// The arguments of one operation being assembled.
#[derive(Default)]
struct Args {
    properties: Map<String, Value>,
    required: Vec<String>,
    targets: BTreeMap<String, ArgumentTarget>,
    /// path parameter wire name → argument name (ordered: the warnings about unused ones
    /// come out the same every time)
    path_args: BTreeMap<String, String>,
    /// the next number to try after each name (so many clashes stay linear)
    next_suffix: HashMap<String, usize>,
}

impl Args {
    fn taken(&self, name: &str) -> bool {
        self.properties.contains_key(name)
    }

    /// `preferred`, else `alternative`, else `alternative_2`, …
    fn free_name(&mut self, preferred: &str, alternative: &str) -> String {
        if !self.taken(preferred) {
            return preferred.to_owned();
        }
        if !self.taken(alternative) {
            return alternative.to_owned();
        }
        let next = self.next_suffix.entry(alternative.to_owned()).or_insert(2);
        loop {
            let candidate = format!("{alternative}_{next}");
            *next += 1;
            if !self.properties.contains_key(&candidate) {
                return candidate;
            }
        }
    }

    fn add(&mut self, wire: &str, loc: Location, mut target: ArgumentTarget, schema: Value, required: bool) {
        let base = names::argument_name(wire);
        let prefix = match loc {
            Location::Path => "path",
            Location::Query => "query",
            Location::Header => "header",
            Location::Body | Location::WholeBody => "body",
        };
        let name = self.free_name(&base, &format!("{prefix}_{base}"));
        if loc == Location::Path {
            self.path_args.insert(wire.to_owned(), name.clone());
        } else if name != wire {
            target.name = Some(wire.to_owned());
        }
        self.push(name, target, schema, required);
    }

    fn push(&mut self, name: String, target: ArgumentTarget, schema: Value, required: bool) {
        if required {
            self.required.push(name.clone());
        }
        self.properties.insert(name.clone(), schema);
        self.targets.insert(name, target);
    }

    fn push_named_wire(&mut self, name: String, wire: &str, schema: Value) {
        self.path_args.insert(wire.to_owned(), name.clone());
        self.push(name, ArgumentTarget::new(Location::Path), schema, true);
    }

    fn remove(&mut self, wire: &str, arg: &str) {
        self.path_args.remove(wire);
        self.properties.shift_remove(arg);
        self.targets.remove(arg);
        self.required.retain(|r| r != arg);
    }

    fn path_argument(&self, wire: &str) -> Option<String> {
        self.path_args.get(wire).cloned()
    }

    /// Spreads an object body's properties into the arguments when none collides with an
    /// argument already there (or with each other once sanitized). `allOf` of plain objects
    /// is merged first.
    fn flatten_body(&mut self, schema: &Value, body_required: bool) -> bool {
        let Some((props, required)) = object_parts(schema) else {
            return false;
        };
        if props.is_empty() {
            return false;
        }
        let mut names = HashSet::new();
        for wire in props.keys() {
            if !valid_wire_name(wire) {
                return false;
            }
            let arg = names::argument_name(wire);
            if self.taken(&arg) || !names.insert(arg) {
                return false;
            }
        }
        for (wire, prop) in props {
            let arg = names::argument_name(&wire);
            let target = if arg == wire {
                ArgumentTarget::new(Location::Body)
            } else {
                ArgumentTarget::named(Location::Body, wire.clone())
            };
            let req = body_required && required.contains(&wire);
            self.push(arg, target, prop, req);
        }
        true
    }

    /// The input schema and the targets of its arguments. Path arguments need no entry
    /// (placeholders are named after them) and neither do body properties whose wire name
    /// is their own with a JSON body… but they are kept: the mapping is then complete and
    /// unmapped arguments cannot stray.
    fn finish(self) -> (Value, BTreeMap<String, ArgumentTarget>) {
        let mut schema = Map::new();
        schema.insert("type".into(), json!("object"));
        schema.insert("properties".into(), Value::Object(self.properties));
        if !self.required.is_empty() {
            schema.insert("required".into(), json!(self.required));
        }
        (Value::Object(schema), self.targets)
    }
}

/// The properties and required names of an object schema, merging `allOf` members that are
/// plain objects; `None` for anything else (unions, arrays, scalars).
fn object_parts(schema: &Value) -> Option<(Map<String, Value>, Vec<String>)> {
    let obj = schema.as_object()?;
    let composite = ["anyOf", "oneOf", "not", "if", "then", "else", "prefixItems", "items"];
    if composite.iter().any(|k| obj.contains_key(*k)) {
        return None;
    }
    match obj.get("type") {
        None => {}
        Some(Value::String(t)) if t == "object" => {}
        _ => return None,
    }
    let mut props = Map::new();
    let mut required: Vec<String> = Vec::new();
    if let Some(Value::Object(p)) = obj.get("properties") {
        props.extend(p.clone());
    }
    if let Some(Value::Array(r)) = obj.get("required") {
        required.extend(r.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    if let Some(Value::Array(members)) = obj.get("allOf") {
        for m in members {
            let (p, r) = object_parts(m)?;
            for (k, v) in p {
                if props.contains_key(&k) {
                    return None;
                }
                props.insert(k, v);
            }
            required.extend(r);
        }
    }
    if !obj.contains_key("properties") && !obj.contains_key("allOf") {
        return None;
    }
    Some((props, required))
}

/// Imports a whole document (the convenience the server uses): every operation collected.
pub fn import(text: &str, options: &Options) -> Result<(Draft, Vec<Warning>, Summary), ImportError> {
    let (root, format) = crate::doc::load(text, max_nodes_for(text.len()))?;
    let mut importer = Importer::new(&root, format, options)?;
    let mut operations = Vec::with_capacity(importer.summary.operations);
    importer.each_operation(|op| operations.push(op.into_owned()));
    importer.summary.operations = operations.len();
    let warnings = importer.warnings();
    let draft = Draft {
        name: importer.name.clone(),
        slug: importer.slug.clone(),
        service_type: "openapi",
        base_url: importer.base_url.clone(),
        auth: importer.auth.clone(),
        fulfillment: "static",
        operations,
        source: None,
    };
    Ok((draft, warnings, importer.summary.clone()))
}

/// Replaces the largest argument schemas of an object schema with permissive ones until
/// the whole fits in [`MAX_SCHEMA_BYTES`]; whether anything was replaced.
fn shrink_arguments(schema: &mut Value) -> bool {
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return false;
    };
    let mut sizes: Vec<(usize, String)> = props.iter().map(|(k, v)| (value_len(v), k.clone())).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let mut total: usize = sizes.iter().map(|(n, k)| n + k.len() + 4).sum();
    let mut changed = false;
    for (n, k) in sizes {
        if total <= MAX_SCHEMA_BYTES - 4096 || n <= 64 {
            break;
        }
        if let Some(v) = props.get_mut(&k) {
            *v = json!({"description": "not expanded: the arguments are too large together"});
            total = total.saturating_sub(n) + 64;
            changed = true;
        }
    }
    changed
}

/// The import answer, `{"draft": {…, "operations": […], "source": …}, "warnings": […],
/// "summary": {…}}`, written to `out` one operation at a time: the draft is never held
/// whole, so a large API costs about its answer's size in memory. Returns the summary and
/// the number of warnings.
pub fn import_json(
    text: &str,
    options: &Options,
    source: &impl Serialize,
    out: &mut Vec<u8>,
) -> Result<(Summary, usize), ImportError> {
    use std::io::Write;
    let written = |e: std::io::Error| ImportError {
        message: format!("the draft could not be written: {e}"),
        line: None,
        column: None,
        pointer: None,
    };
    let json = |e: serde_json::Error| ImportError {
        message: format!("the draft could not be written: {e}"),
        line: None,
        column: None,
        pointer: None,
    };
    let (root, format) = crate::doc::load(text, max_nodes_for(text.len()))?;
    let mut importer = Importer::new(&root, format, options)?;
    write!(
        out,
        "{{\"draft\":{{\"name\":{},\"slug\":{},\"service_type\":\"openapi\",\"base_url\":{},\"auth\":{},\"fulfillment\":\"static\",\"operations\":[",
        serde_json::to_string(&importer.name).map_err(json)?,
        serde_json::to_string(&importer.slug).map_err(json)?,
        serde_json::to_string(&importer.base_url).map_err(json)?,
        importer.auth,
    )
    .map_err(written)?;
    let mut count = 0usize;
    let mut failed = None;
    importer.each_operation(|op| {
        if failed.is_some() {
            return;
        }
        if count > 0 {
            out.push(b',');
        }
        count += 1;
        if let Err(e) = op.write_json(out) {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(json(e));
    }
    importer.summary.operations = count;
    let warnings = importer.warnings();
    out.extend_from_slice(b"],\"source\":");
    serde_json::to_writer(&mut *out, source).map_err(json)?;
    out.extend_from_slice(b"},\"warnings\":");
    serde_json::to_writer(&mut *out, &warnings).map_err(json)?;
    out.extend_from_slice(b",\"summary\":");
    serde_json::to_writer(&mut *out, &importer.summary).map_err(json)?;
    out.push(b'}');
    Ok((importer.summary.clone(), warnings.len()))
}

/// How many nodes a YAML document of `len` bytes may expand to through aliases: generous for
/// real documents (anchors reused a few times), far below what an alias bomb needs.
pub fn max_nodes_for(len: usize) -> usize {
    len.saturating_mul(4).max(1_000_000)
}
