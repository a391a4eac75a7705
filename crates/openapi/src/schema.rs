//! OpenAPI schema objects (Swagger 2.0, OpenAPI 3.0 and 3.1 dialects) to self-contained
//! JSON Schema 2020-12 for a tool's `input_schema` / `output_schema`.
//!
//! - Local `$ref`s are resolved and inlined, so an agent sees one plain schema; each target
//!   is found once per document (a cache) and only the parts an operation uses are copied.
//! - A reference that is already being expanded further up (recursion), references nested
//!   deeper than a fixed depth, and schemas that grow beyond a node budget are cut: the cut
//!   point becomes a valid, permissive schema (`{"type": "object", "description": …}`).
//! - External references (other files, URLs) are never fetched: a warning, and `{}`.
//! - 3.0 `nullable`, boolean `exclusiveMinimum`/`exclusiveMaximum`, `example`, 2.0 `file`,
//!   3.1 type arrays and boolean schemas become their JSON Schema 2020-12 forms; OpenAPI-only
//!   keywords (`discriminator`, `xml`, `externalDocs`, `x-…`) and keywords with values JSON
//!   Schema would refuse (a negative `minLength`, a `pattern` that does not compile) are left
//!   out, so every schema produced compiles.
//! - Request schemas leave out `readOnly` properties; response schemas `writeOnly` ones
//!   and examples.

use std::collections::HashMap;

use serde_json::json;

use crate::doc::{Node, Object};
use crate::json::{Json, Obj};

/// The dialect of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dialect {
    Swagger2,
    OpenApi30,
    OpenApi31,
}

/// Which way data flows: arguments an agent sends, or a response it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// How far a schema is expanded.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Nested `$ref` expansions on one branch.
    pub max_ref_depth: usize,
    /// How many times one reference may be expanded inside itself.
    pub max_repeat: usize,
    /// Schema objects produced for one operation's schema.
    pub max_nodes: usize,
    /// About how many bytes of JSON one schema may grow to before its references are no
    /// longer expanded.
    pub max_bytes: usize,
}

/// What all the schemas of one document may expand into together, in bytes of JSON: past
/// it, schemas are no longer expanded (a permissive schema and a warning). A small document
/// whose schemas refer to each other many times over can otherwise expand into gigabytes;
/// GitHub's 1,223 operations take about 6 MB.
pub const DOCUMENT_BUDGET: usize = 12 * 1024 * 1024;

impl Bounds {
    pub const REQUEST: Self = Self {
        max_ref_depth: 12,
        max_repeat: 1,
        max_nodes: 4000,
        max_bytes: 160 * 1024,
    };
    /// Output schemas only tell an agent what comes back: kept shorter (GitHub's event
    /// lists would otherwise describe 150 KB each).
    pub const RESPONSE: Self = Self {
        max_ref_depth: 4,
        max_repeat: 1,
        max_nodes: 400,
        max_bytes: 48 * 1024,
    };
}

/// The deepest a conversion recurses (document nesting plus reference expansion); beyond
/// it the schema is cut. Keeps the stack bounded whatever the document, and the draft
/// sendable: a schema level is at most two levels of JSON (`properties`, then the name),
/// and a draft sent to the create endpoint is read with serde_json's limit of 128 levels,
/// eight of which the draft's own structure takes.
const MAX_WALK_DEPTH: usize = 56;

/// A problem worth telling the user, with the document pointer it concerns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub pointer: String,
    pub reason: String,
}

/// What a `$ref` led to.
#[derive(Clone, Copy)]
enum Target<'d, 'a> {
    Found(&'d Node<'a>),
    Missing,
    External,
}

/// Converts schemas of one document; holds the caches shared by all its operations.
pub struct Converter<'d, 'a> {
    root: &'d Node<'a>,
    pub dialect: Dialect,
    refs: HashMap<&'d str, Target<'d, 'a>>,
    /// Key indexes of the large objects references walk through (`components/schemas`
    /// of a big API has thousands of entries), by the object's address.
    indexes: HashMap<usize, HashMap<&'d str, &'d Node<'a>>>,
    patterns: HashMap<String, bool>,
    /// External or missing references already warned about.
    warned: std::collections::HashSet<String>,
    pub warnings: Vec<Warning>,
    /// Bytes of JSON the document's schemas have expanded into so far.
    spent: usize,
    budget: usize,
    /// Schemas left unexpanded because the budget ran out.
    pub unexpanded: usize,
}

/// The state of one schema's conversion.
struct Walk<'d, 's> {
    direction: Direction,
    bounds: Bounds,
    stack: Vec<&'d str>,
    nodes: usize,
    /// About how many bytes this schema has grown to.
    bytes: usize,
    depth: usize,
    /// Where the schema being converted sits in the document, for warnings.
    at: &'s str,
}

impl<'d, 'a> Converter<'d, 'a> {
    pub fn new(root: &'d Node<'a>, dialect: Dialect) -> Self {
        Self {
            root,
            dialect,
            refs: HashMap::new(),
            indexes: HashMap::new(),
            patterns: HashMap::new(),
            warned: std::collections::HashSet::new(),
            warnings: Vec::new(),
            spent: 0,
            budget: DOCUMENT_BUDGET,
            unexpanded: 0,
        }
    }

    /// Sets the document budget (tests).
    pub fn with_budget(mut self, bytes: usize) -> Self {
        self.budget = bytes;
        self
    }

    pub fn warn(&mut self, pointer: impl Into<String>, reason: impl Into<String>) {
        self.warnings.push(Warning {
            pointer: pointer.into(),
            reason: reason.into(),
        });
    }

    /// Follows `$ref`s of a non-schema object (a parameter, request body, response, path
    /// item) to the object itself; `None` (with a warning) when a reference cannot be
    /// followed or a chain of them loops.
    pub fn deref(&mut self, node: &'d Node<'a>, at: &str) -> Option<&'d Node<'a>> {
        let mut node = node;
        for _ in 0..32 {
            let Some(r) = node.str_at("$ref") else {
                return Some(node);
            };
            match self.target(r) {
                Target::Found(t) => node = t,
                Target::Missing => {
                    self.warn_ref(at, r, "does not point at anything in the document; left out");
                    return None;
                }
                Target::External => {
                    self.warn_ref(at, r, "is an external reference, which is never fetched; left out");
                    return None;
                }
            }
        }
        self.warn(at, "a chain of `$ref`s loops; left out");
        None
    }

    fn warn_ref(&mut self, at: &str, r: &str, what: &str) {
        if self.warned.insert(format!("{at}\u{0}{r}")) {
            let reason = format!("`$ref: {}` {what}", crate::names::cut(r, 200));
            self.warn(at, reason);
        }
    }

    fn target(&mut self, r: &'d str) -> Target<'d, 'a> {
        if let Some(t) = self.refs.get(r) {
            return *t;
        }
        let t = match r.strip_prefix('#') {
            Some(pointer) => self.resolve(pointer).map_or(Target::Missing, Target::Found),
            None => Target::External,
        };
        self.refs.insert(r, t);
        t
    }

    /// Follows a local JSON pointer (`~0`/`~1` escapes, percent-encoding) from the root,
    /// looking keys of large objects up through an index built on first use, so that
    /// thousands of references into one object stay linear.
    fn resolve(&mut self, pointer: &str) -> Option<&'d Node<'a>> {
        const INDEXED: usize = 32;
        if pointer.is_empty() {
            return Some(self.root);
        }
        let mut node: &'d Node<'a> = self.root;
        for raw in pointer.strip_prefix('/')?.split('/') {
            let token = crate::doc::unescape_token(raw);
            node = match node {
                Node::Object(o) if o.len() > INDEXED => {
                    let index = self
                        .indexes
                        .entry(std::ptr::from_ref(o) as usize)
                        .or_insert_with(|| o.iter().collect());
                    index.get(token.as_str()).copied()?
                }
                Node::Object(o) => o.get(&token)?,
                Node::Array(a) => a.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Converts the schema at `node`; `at` is its document pointer (for warnings).
    ///
    /// Once the document's schemas have expanded into [`DOCUMENT_BUDGET`] bytes, later
    /// schemas are not converted at all: they accept any value, and one warning says so.
    /// A schema larger than the store keeps (`MAX_SCHEMA_BYTES`) is replaced the same way.
    pub fn schema(&mut self, node: &'d Node<'a>, direction: Direction, mut bounds: Bounds, at: &str) -> Json<'d> {
        let left = self.budget.saturating_sub(self.spent);
        if left == 0 {
            if self.unexpanded == 0 {
                self.warn(
                    at,
                    format!(
                        "the document's schemas expand into more than {} bytes together; this schema and every later one accept any value",
                        self.budget
                    ),
                );
            }
            self.unexpanded += 1;
            return not_expanded("the document's schemas are too large together");
        }
        bounds.max_bytes = bounds.max_bytes.min(left);
        let mut walk = Walk {
            direction,
            bounds,
            stack: Vec::new(),
            nodes: 0,
            bytes: 0,
            depth: 0,
            at,
        };
        let v = self.convert(node, &mut walk);
        let n = v.written_len();
        self.spent = self.spent.saturating_add(n);
        if n > chatterfly_domain::operation::MAX_SCHEMA_BYTES {
            self.warn(
                at,
                format!(
                    "the schema expands into {n} bytes, more than a tool's schema may hold ({}); any value is accepted there",
                    chatterfly_domain::operation::MAX_SCHEMA_BYTES
                ),
            );
            return not_expanded("too large");
        }
        v
    }

    fn convert(&mut self, node: &'d Node<'a>, w: &mut Walk<'d, '_>) -> Json<'d> {
        match node {
            Node::Bool(b) if self.dialect == Dialect::OpenApi31 => Json::Bool(*b),
            Node::Object(o) => {
                if w.depth >= MAX_WALK_DEPTH {
                    return Json::object([("description", Json::str("nested too deeply: not expanded"))]);
                }
                w.depth += 1;
                let v = self.object(o, w);
                w.depth -= 1;
                v
            }
            // not a schema: accept anything rather than refuse the operation
            _ => Json::empty(),
        }
    }

    fn object(&mut self, o: &'d Object<'a>, w: &mut Walk<'d, '_>) -> Json<'d> {
        if let Some(r) = o.get("$ref").and_then(Node::as_str) {
            let mut out = self.reference(r, w);
            // siblings of `$ref` (allowed in 3.1, common anyway): annotations are laid over
            // the target; anything that constrains is combined with `allOf`
            if o.len() > 1 {
                let only_annotations = o.iter().filter(|(k, _)| *k != "$ref").all(|(k, _)| {
                    matches!(
                        k,
                        "description"
                            | "title"
                            | "example"
                            | "examples"
                            | "default"
                            | "deprecated"
                            | "readOnly"
                            | "writeOnly"
                    ) || k.starts_with("x-")
                        || k == "nullable"
                });
                // `plain` ignores `$ref`, so it converts exactly the siblings
                let nullable = self.nullable(o);
                let extra = self.plain(o, w, false);
                out = match (only_annotations, out, extra) {
                    (_, out, Json::Object(extra)) if extra.is_empty() => out,
                    (true, Json::Object(mut target), Json::Object(extra)) => {
                        for (k, v) in extra {
                            target.insert(k, v);
                        }
                        Json::Object(target)
                    }
                    (_, out, extra) => Json::object([("allOf", Json::Array(vec![out, extra]))]),
                };
                if nullable {
                    out = any_of_null(out);
                }
            }
            return out;
        }
        self.plain(o, w, true)
    }

    fn reference(&mut self, r: &'d str, w: &mut Walk<'d, '_>) -> Json<'d> {
        match self.target(r) {
            Target::Found(target) => {
                let repeats = w.stack.iter().filter(|s| **s == r).count();
                if repeats > w.bounds.max_repeat
                    || w.stack.len() >= w.bounds.max_ref_depth
                    || w.nodes >= w.bounds.max_nodes
                    || w.bytes >= w.bounds.max_bytes
                {
                    return stub(target, r, repeats > 0);
                }
                w.stack.push(r);
                let v = self.convert(target, w);
                w.stack.pop();
                v
            }
            Target::Missing => {
                let at = w.at;
                self.warn_ref(
                    at,
                    r,
                    "does not point at anything in the document; any value is accepted there",
                );
                Json::empty()
            }
            Target::External => {
                let at = w.at;
                self.warn_ref(
                    at,
                    r,
                    "is an external reference, which is never fetched; any value is accepted there",
                );
                Json::empty()
            }
        }
    }

    fn nullable(&self, o: &Object<'a>) -> bool {
        let key = if self.dialect == Dialect::Swagger2 {
            "x-nullable"
        } else {
            "nullable"
        };
        self.dialect != Dialect::OpenApi31 && o.get(key).and_then(Node::as_bool) == Some(true)
    }

    /// A schema object without `$ref`.
    fn plain(&mut self, o: &'d Object<'a>, w: &mut Walk<'d, '_>, apply_nullable: bool) -> Json<'d> {
        w.nodes += 1;
        // this object's own text (its children charge theirs): keys, strings, literal values
        w.bytes = w.bytes.saturating_add(16 + own_size(o));
        let mut out = Obj::with_capacity(o.len());
        let mut hidden: Vec<&str> = Vec::new();
        let mut exclusive_min = false;
        let mut exclusive_max = false;
        for (k, v) in o.iter() {
            match k {
                "type" => match v {
                    Node::String(t) if t == "file" => {
                        out.insert("type", Json::str("string"));
                        if !out.contains_key("format") {
                            out.insert("format", Json::str("binary"));
                        }
                    }
                    Node::String(t) if is_type_name(t) => {
                        out.insert("type", Json::String(t.as_ref().into()));
                    }
                    Node::Array(items) => {
                        let mut types: Vec<Json<'d>> = Vec::new();
                        for t in items.iter().filter_map(Node::as_str).filter(|t| is_type_name(t)) {
                            if !types.iter().any(|x| x.is_str(t)) {
                                types.push(Json::String(t.into()));
                            }
                        }
                        if !types.is_empty() {
                            out.insert("type", Json::Array(types));
                        }
                    }
                    _ => {}
                },
                "properties" | "patternProperties" | "dependentSchemas" => {
                    if let Some(props) = v.as_object() {
                        let mut map = Obj::with_capacity(props.len());
                        for (name, schema) in props.iter() {
                            if k == "properties" && self.hidden_in(schema, w.direction) {
                                hidden.push(name);
                                continue;
                            }
                            if k == "patternProperties" && !self.pattern_ok(name) {
                                continue;
                            }
                            // a document object's keys are unique
                            map.push_new(name, self.convert(schema, w));
                        }
                        out.insert(k, Json::Object(map));
                    }
                }
                "items" => match v {
                    Node::Array(items) => {
                        if !items.is_empty() {
                            let list = items.iter().map(|i| self.convert(i, w)).collect();
                            out.insert("prefixItems", Json::Array(list));
                        }
                    }
                    other => {
                        out.insert("items", self.convert(other, w));
                    }
                },
                "additionalProperties"
                | "not"
                | "contains"
                | "propertyNames"
                | "if"
                | "then"
                | "else"
                | "unevaluatedProperties"
                | "unevaluatedItems" => {
                    let converted = match v {
                        Node::Bool(b) => Json::Bool(*b),
                        other => self.convert(other, w),
                    };
                    out.insert(k, converted);
                }
                "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                    if let Some(items) = v.as_array()
                        && !items.is_empty()
                    {
                        let list = items.iter().map(|i| self.convert(i, w)).collect();
                        out.insert(k, Json::Array(list));
                    }
                }
                "required" => {
                    if let Some(items) = v.as_array() {
                        let mut names: Vec<Json<'d>> = Vec::new();
                        for n in items.iter().filter_map(Node::as_str) {
                            if !names.iter().any(|x| x.is_str(n)) {
                                names.push(Json::String(n.into()));
                            }
                        }
                        out.insert("required", Json::Array(names));
                    }
                }
                "enum" => {
                    if let Some(items) = v.as_array() {
                        out.insert("enum", Json::Array(items.iter().map(Json::from_node).collect()));
                    }
                }
                "const" | "default" => {
                    out.insert(k, Json::from_node(v));
                }
                // examples teach an agent what to send; a response needs none
                "example" | "examples" if w.direction == Direction::Response => {}
                "example" if !o.iter().any(|(k, _)| k == "examples") => {
                    out.insert("examples", Json::Array(vec![Json::from_node(v)]));
                }
                "examples" => {
                    if let Some(items) = v.as_array() {
                        out.insert("examples", Json::Array(items.iter().map(Json::from_node).collect()));
                    }
                }
                "description" | "title" | "format" | "contentMediaType" | "contentEncoding" => {
                    if let Some(s) = v.as_str() {
                        out.insert(k, Json::String(s.into()));
                    }
                }
                "pattern" => {
                    if let Some(p) = v.as_str()
                        && self.pattern_ok(p)
                    {
                        out.insert("pattern", Json::String(p.into()));
                    }
                }
                "minimum" | "maximum" => {
                    if let Node::Number(n) = v {
                        out.insert(k, Json::Number(n.clone()));
                    }
                }
                "exclusiveMinimum" | "exclusiveMaximum" => match v {
                    Node::Number(n) => {
                        out.insert(k, Json::Number(n.clone()));
                    }
                    Node::Bool(true) if k == "exclusiveMinimum" => exclusive_min = true,
                    Node::Bool(true) => exclusive_max = true,
                    _ => {}
                },
                "multipleOf" => {
                    if let Node::Number(n) = v
                        && n.as_f64().is_some_and(|f| f > 0.0)
                    {
                        out.insert(k, Json::Number(n.clone()));
                    }
                }
                "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties" | "maxProperties"
                | "minContains" | "maxContains" => {
                    if let Some(n) = non_negative_integer(v) {
                        out.insert(k, Json::Number(n.into()));
                    }
                }
                "uniqueItems" | "readOnly" | "writeOnly" | "deprecated" => {
                    if let Some(b) = v.as_bool() {
                        out.insert(k, Json::Bool(b));
                    }
                }
                "dependentRequired" => {
                    if let Some(map) = v.as_object()
                        && map
                            .iter()
                            .all(|(_, list)| list.as_array().is_some_and(|l| l.iter().all(|s| s.as_str().is_some())))
                    {
                        out.insert(k, Json::from_node(v));
                    }
                }
                _ => {}
            }
        }
        if !hidden.is_empty()
            && let Some(Json::Array(required)) = out.get_mut("required")
        {
            required.retain(|n| !n.as_str().is_some_and(|n| hidden.contains(&n)));
        }
        if exclusive_min && let Some(min) = out.remove("minimum") {
            out.insert("exclusiveMinimum", min);
        }
        if exclusive_max && let Some(max) = out.remove("maximum") {
            out.insert("exclusiveMaximum", max);
        }
        if apply_nullable && self.nullable(o) {
            return make_nullable(out);
        }
        Json::Object(out)
    }

    /// Whether a property is left out in this direction (`readOnly` in requests,
    /// `writeOnly` in responses), looking through one `$ref`.
    fn hidden_in(&mut self, schema: &'d Node<'a>, direction: Direction) -> bool {
        let key = match direction {
            Direction::Request => "readOnly",
            Direction::Response => "writeOnly",
        };
        if schema.get(key).and_then(Node::as_bool) == Some(true) {
            return true;
        }
        if let Some(r) = schema.str_at("$ref")
            && let Target::Found(t) = self.target(r)
        {
            return t.get(key).and_then(Node::as_bool) == Some(true);
        }
        false
    }

    /// Whether JSON Schema validation can compile this `pattern` (checked once per pattern,
    /// with the validator the tool calls use).
    fn pattern_ok(&mut self, pattern: &str) -> bool {
        if let Some(ok) = self.patterns.get(pattern) {
            return *ok;
        }
        let ok = pattern.len() <= 4096 && jsonschema::validator_for(&json!({"pattern": pattern})).is_ok();
        self.patterns.insert(pattern.to_owned(), ok);
        ok
    }
}

/// What stands at a cut: the target's type when it has a simple one, and a description
/// naming what was not expanded.
/// About how many bytes an object's own keys and literal values take, without its child
/// schemas.
fn own_size(o: &Object<'_>) -> usize {
    o.iter()
        .map(|(k, v)| {
            k.len()
                + 4
                + match k {
                    "properties" | "patternProperties" | "dependentSchemas" => v
                        .as_object()
                        .map_or(0, |p| p.iter().map(|(name, _)| name.len() + 4).sum()),
                    "enum" | "const" | "default" | "examples" | "example" | "dependentRequired" | "required" => {
                        v.approx_json_len()
                    }
                    _ => v.as_str().map_or(8, str::len),
                }
        })
        .sum()
}

/// The permissive schema put where a schema was not expanded.
fn not_expanded<'d>(why: &str) -> Json<'d> {
    Json::object([("description", Json::String(format!("not expanded: {why}").into()))])
}

fn stub<'d>(target: &'d Node<'_>, r: &str, recursive: bool) -> Json<'d> {
    let name = r.rsplit('/').next().unwrap_or(r);
    let why = if recursive { "recursive" } else { "nested too deep" };
    let mut out = Obj::with_capacity(2);
    if let Some(t) = target.str_at("type").filter(|t| is_type_name(t)) {
        out.push_new("type", Json::String(t.into()));
    }
    let description = format!("{}: not expanded ({why})", crate::names::cut(name, 120));
    out.push_new("description", Json::String(description.into()));
    Json::Object(out)
}

/// `{"anyOf": [schema, {"type": "null"}]}`
fn any_of_null(schema: Json<'_>) -> Json<'_> {
    let null = Json::object([("type", Json::str("null"))]);
    Json::object([("anyOf", Json::Array(vec![schema, null]))])
}

fn make_nullable(mut out: Obj<'_>) -> Json<'_> {
    match out.get_mut("type") {
        Some(Json::String(t)) => {
            let t = std::mem::take(t);
            out.insert("type", Json::Array(vec![Json::String(t), Json::str("null")]));
        }
        Some(Json::Array(types)) => {
            if !types.iter().any(|t| t.is_str("null")) {
                types.push(Json::str("null"));
            }
        }
        _ => return any_of_null(Json::Object(out)),
    }
    if let Some(Json::Array(values)) = out.get_mut("enum")
        && !values.contains(&Json::Null)
    {
        values.push(Json::Null);
    }
    Json::Object(out)
}

fn is_type_name(t: &str) -> bool {
    matches!(
        t,
        "string" | "number" | "integer" | "boolean" | "object" | "array" | "null"
    )
}

fn non_negative_integer(v: &Node<'_>) -> Option<u64> {
    match v {
        Node::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 9.0e15)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::load;
    use serde_json::Value;

    fn convert(doc: &str, dialect: Dialect, pointer: &str, direction: Direction) -> (Value, Vec<Warning>) {
        let (root, _) = load(doc, 100_000).unwrap();
        let mut c = Converter::new(&root, dialect);
        let node = root.pointer(pointer).unwrap();
        let bounds = match direction {
            Direction::Request => Bounds::REQUEST,
            Direction::Response => Bounds::RESPONSE,
        };
        let v = c.schema(node, direction, bounds, "/here").into_value();
        assert!(jsonschema::validator_for(&v).is_ok(), "does not compile: {v}");
        (v, c.warnings)
    }

    #[test]
    fn refs_are_inlined_with_escapes() {
        let doc = r##"{"components": {"schemas": {
            "a/b~c": {"type": "string", "x-internal": true},
            "Pet": {"type": "object", "required": ["name", "id"], "properties": {
                "id": {"type": "integer", "readOnly": true},
                "name": {"$ref": "#/components/schemas/a~1b~0c", "description": "the name"},
                "tag": {"$ref": "#/components/schemas/a~1b~0c", "maxLength": 5}}}}},
            "s": {"$ref": "#/components/schemas/Pet"}}"##;
        let (v, warnings) = convert(doc, Dialect::OpenApi31, "/s", Direction::Request);
        assert!(warnings.is_empty());
        assert_eq!(
            v,
            json!({"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "description": "the name"},
                "tag": {"allOf": [{"type": "string"}, {"maxLength": 5}]}}})
        );
        // responses keep readOnly properties
        let (v, _) = convert(doc, Dialect::OpenApi31, "/s", Direction::Response);
        assert_eq!(v["required"], json!(["name", "id"]));
    }

    #[test]
    fn recursion_is_cut_into_a_valid_schema() {
        let doc = r##"{"definitions": {"Node": {"type": "object", "properties": {
            "value": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}}}}},
            "s": {"$ref": "#/definitions/Node"},
            "self": {"$ref": "#/self"}}"##;
        let (v, _) = convert(doc, Dialect::Swagger2, "/s", Direction::Request);
        let inner = &v["properties"]["children"]["items"];
        assert_eq!(inner["properties"]["value"], json!({"type": "string"}));
        let cut = &inner["properties"]["children"]["items"];
        assert_eq!(cut["type"], "object");
        assert!(cut["description"].as_str().unwrap().contains("recursive"), "{cut}");
        assert!(cut.get("properties").is_none());
        let (v, _) = convert(doc, Dialect::Swagger2, "/self", Direction::Request);
        assert!(v["description"].as_str().is_some(), "{v}");
    }

    #[test]
    fn dialect_forms_become_json_schema() {
        let doc = r##"{"s": {"type": "object", "properties": {
            "a": {"type": "string", "nullable": true, "enum": ["x", "y"]},
            "b": {"type": "number", "minimum": 1, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": false},
            "c": {"nullable": true, "allOf": [{"type": "integer"}]},
            "d": {"type": "string", "example": "ex", "discriminator": {"propertyName": "x"}, "xml": {}},
            "e": {"type": "string", "minLength": -1, "maxLength": 3.0, "multipleOf": 0, "pattern": "(unclosed"},
            "f": {"type": "file"}}}}"##;
        let (v, _) = convert(doc, Dialect::OpenApi30, "/s", Direction::Request);
        let p = &v["properties"];
        assert_eq!(p["a"], json!({"type": ["string", "null"], "enum": ["x", "y", null]}));
        assert_eq!(p["b"], json!({"type": "number", "exclusiveMinimum": 1, "maximum": 9}));
        assert_eq!(
            p["c"],
            json!({"anyOf": [{"allOf": [{"type": "integer"}]}, {"type": "null"}]})
        );
        assert_eq!(p["d"], json!({"type": "string", "examples": ["ex"]}));
        assert_eq!(p["e"], json!({"type": "string", "maxLength": 3}));
        assert_eq!(p["f"], json!({"type": "string", "format": "binary"}));
        // 3.1: type arrays and boolean schemas stay; `nullable` means nothing there
        let doc31 = r##"{"s": {"type": ["string", "null", "bogus"], "nullable": true, "items": false,
            "properties": {"t": true}}}"##;
        let (v, _) = convert(doc31, Dialect::OpenApi31, "/s", Direction::Request);
        assert_eq!(
            v,
            json!({"type": ["string", "null"], "items": false, "properties": {"t": true}})
        );
    }

    #[test]
    fn external_and_missing_refs_warn_once() {
        let doc = r##"{"s": {"type": "object", "properties": {
            "a": {"$ref": "other.yaml#/Pet"}, "b": {"$ref": "other.yaml#/Pet"},
            "c": {"$ref": "#/nowhere"}}}}"##;
        let (v, warnings) = convert(doc, Dialect::OpenApi30, "/s", Direction::Request);
        assert_eq!(v["properties"]["a"], json!({}));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].reason.contains("never fetched"));
        assert!(warnings[1].reason.contains("does not point"));
        assert_eq!(warnings[0].pointer, "/here");
    }

    #[test]
    fn budgets_bound_the_output() {
        // a wide, deep, non-recursive graph: 2^20 paths if fully inlined
        let mut defs = Vec::new();
        for i in 0..20 {
            defs.push(format!(
                r##""N{i}": {{"type": "object", "properties": {{"l": {{"$ref": "#/d/N{n}"}}, "r": {{"$ref": "#/d/N{n}"}}}}}}"##,
                n = i + 1
            ));
        }
        defs.push(r##""N20": {"type": "string"}"##.into());
        let doc = format!(r##"{{"d": {{{}}}, "s": {{"$ref": "#/d/N0"}}}}"##, defs.join(","));
        let (v, _) = convert(&doc, Dialect::OpenApi30, "/s", Direction::Request);
        let size = v.to_string().len();
        assert!(size < 2_000_000, "{size}");
    }
}
