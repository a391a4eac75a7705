//! Input schemas adapted to what each provider accepts, without losing what the model
//! needs to call the tool correctly.
//!
//! All providers: local `$ref`s are inlined (a reference into itself becomes a permissive
//! node that says so), boolean schemas become objects, and the top level is an object
//! schema (`allOf` merged; top-level `anyOf`/`oneOf` forms merged into one object whose
//! description lists them; anything else becomes an empty object), as OpenAI and Anthropic
//! require. Nodes nested deeper than [`Options::max_depth`] become permissive.
//!
//! OpenAI and Anthropic then take JSON Schema as it is, less the keywords that only name
//! or hold other schemas (`$schema`, `$id`, `$defs`, `definitions`, `$comment`, `$anchor`).
//!
//! Gemini takes an OpenAPI 3.0 Schema subset (its `Schema` object: `type` (one, upper
//! case), `format`, `title`, `description`, `nullable`, `enum` (strings), `properties`,
//! `required`, `items`, `minItems`, `maxItems`, `minProperties`, `maxProperties`,
//! `minLength`, `maxLength`, `pattern`, `minimum`, `maximum`, `anyOf`, `default`), so:
//! `type` arrays become `nullable` or `anyOf`; `oneOf` becomes `anyOf`; `allOf` is merged;
//! `const` becomes a one-value `enum`; a non-string `enum`, a `format` Gemini does not
//! know (it knows `enum` and `date-time` for strings, `int32`/`int64`, `float`/`double`),
//! `exclusiveMinimum`/`exclusiveMaximum`, `multipleOf` and the like move into the
//! description in words. What Gemini cannot describe at all (an object without
//! properties, an array without items, a value of any type) is declared as a string of
//! JSON text, and [`Adapted::restore`] turns the model's text back into JSON before the
//! tool is called.

use serde_json::{Map, Value, json};

use crate::Provider;

/// How much of a schema to keep (a big one is declared again with less; see `declare`).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Nodes nested deeper become permissive.
    pub max_depth: usize,
    /// Whether nodes below the top-level properties keep their descriptions.
    pub nested_descriptions: bool,
    /// Descriptions are cut to this many characters.
    pub description_max: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_depth: 12,
            nested_descriptions: true,
            description_max: 1024,
        }
    }
}

/// One step from a value to a value inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Property(String),
    Item,
}

/// A schema as a provider receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Adapted {
    /// The parameters to declare; `None` for a tool that takes nothing and a provider that
    /// wants no schema then (Gemini).
    pub schema: Option<Value>,
    /// Where the model writes JSON as text (Gemini), to be parsed back.
    pub as_text: Vec<Vec<Step>>,
    /// Whether the whole arguments object was declared as one text property
    /// ([`WRAPPED`]), for a free-form object Gemini cannot declare.
    pub wrapped: bool,
    /// What was changed in a way the model could notice, in words.
    pub notes: Vec<String>,
}

/// The one property a free-form arguments object is declared as, for Gemini.
pub const WRAPPED: &str = "arguments_json";

/// The most schema nodes an inlined schema may have: a reference used many times over
/// must not multiply without end.
const NODE_BUDGET: usize = 20_000;

/// `schema` (a tool's input schema) as `provider` accepts it.
pub fn adapt(provider: Provider, schema: &Value, opts: Options) -> Adapted {
    let mut notes = Vec::new();
    let mut budget = NODE_BUDGET;
    let inlined = inline(schema, schema, &mut Vec::new(), &mut budget, &mut notes, 0);
    let root = top_object(inlined, &mut notes);
    match provider {
        Provider::OpenAi | Provider::Anthropic => {
            let mut out = json_schema(&root, 0, opts);
            if let Value::Object(o) = &mut out {
                o.insert("type".into(), json!("object"));
                o.entry("properties").or_insert_with(|| json!({}));
            }
            Adapted {
                schema: Some(out),
                as_text: Vec::new(),
                wrapped: false,
                notes,
            }
        }
        Provider::Gemini => {
            let mut ctx = Gemini {
                opts,
                as_text: Vec::new(),
                notes,
            };
            let has_properties = root
                .get("properties")
                .and_then(Value::as_object)
                .is_some_and(|p| !p.is_empty());
            let free_form = root.get("additionalProperties").is_some_and(|a| a != &json!(false));
            if has_properties {
                let out = ctx.node(&root, &mut Vec::new(), 0);
                Adapted {
                    schema: Some(out),
                    as_text: ctx.as_text,
                    wrapped: false,
                    notes: ctx.notes,
                }
            } else if free_form {
                ctx.notes.push(format!(
                    "the arguments are a free-form object, which Gemini cannot declare: the model writes them as JSON text in `{WRAPPED}`"
                ));
                let desc = description_of(&root, opts.description_max);
                let mut inner = Map::new();
                inner.insert("type".into(), json!("STRING"));
                inner.insert(
                    "description".into(),
                    json!(join_words(
                        desc.as_deref(),
                        "The arguments: a JSON object, written as text."
                    )),
                );
                Adapted {
                    schema: Some(json!({"type": "OBJECT", "properties": {WRAPPED: inner}, "required": [WRAPPED]})),
                    as_text: Vec::new(),
                    wrapped: true,
                    notes: ctx.notes,
                }
            } else {
                Adapted {
                    schema: None,
                    as_text: Vec::new(),
                    wrapped: false,
                    notes: ctx.notes,
                }
            }
        }
    }
}

impl Adapted {
    /// The model's arguments as the tool takes them: JSON written as text parsed back
    /// where the declaration asked for text.
    pub fn restore(&self, arguments: Value) -> Value {
        let mut args = arguments;
        if self.wrapped {
            args = match args.get(WRAPPED) {
                Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
                Some(v) => v.clone(),
                None => json!({}),
            };
            return args;
        }
        for path in &self.as_text {
            restore_at(&mut args, path);
        }
        args
    }
}

fn restore_at(v: &mut Value, path: &[Step]) {
    match path.split_first() {
        None => {
            if let Value::String(s) = v
                && let Ok(parsed) = serde_json::from_str::<Value>(s)
                && !parsed.is_string()
            {
                *v = parsed;
            }
        }
        Some((Step::Property(name), rest)) => {
            if let Some(inner) = v.get_mut(name.as_str()) {
                restore_at(inner, rest);
            }
        }
        Some((Step::Item, rest)) => {
            if let Value::Array(items) = v {
                for item in items {
                    restore_at(item, rest);
                }
            }
        }
    }
}

/// `node` with local references replaced by what they point at.
fn inline(
    root: &Value,
    node: &Value,
    stack: &mut Vec<String>,
    budget: &mut usize,
    notes: &mut Vec<String>,
    depth: usize,
) -> Value {
    if *budget == 0 || depth > 64 {
        note(
            notes,
            "the schema is too large to declare whole: parts of it are left open",
        );
        return json!({});
    }
    *budget -= 1;
    match node {
        Value::Bool(true) => json!({}),
        Value::Bool(false) => json!({"not": {}}),
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                let mut rest = o.clone();
                rest.remove("$ref");
                let target = if stack.contains(r) {
                    note(notes, "the schema refers to itself: the inner repeat is left open");
                    json!({"description": "(the same structure again, nested)"})
                } else {
                    match r
                        .strip_prefix('#')
                        .and_then(|p| root.pointer(&percent_encoding::percent_decode_str(p).decode_utf8_lossy()))
                    {
                        Some(t) => {
                            stack.push(r.clone());
                            let v = inline(root, t, stack, budget, notes, depth + 1);
                            stack.pop();
                            v
                        }
                        None => {
                            note(notes, "a reference the schema does not hold is left open");
                            json!({})
                        }
                    }
                };
                // sibling keywords of `$ref` (a description) apply too
                let mut merged = match target {
                    Value::Object(t) => t,
                    _ => Map::new(),
                };
                for (k, v) in &rest {
                    if k == "$defs" || k == "definitions" {
                        continue;
                    }
                    let v = inline_keyword(root, k, v, stack, budget, notes, depth);
                    merged.insert(k.clone(), v);
                }
                return Value::Object(merged);
            }
            let mut out = Map::new();
            for (k, v) in o {
                if k == "$defs" || k == "definitions" {
                    continue;
                }
                out.insert(k.clone(), inline_keyword(root, k, v, stack, budget, notes, depth));
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

/// One keyword's value with the references in the schemas it holds inlined.
fn inline_keyword(
    root: &Value,
    k: &str,
    v: &Value,
    stack: &mut Vec<String>,
    budget: &mut usize,
    notes: &mut Vec<String>,
    depth: usize,
) -> Value {
    match k {
        // keywords whose values are schemas, or maps or lists of them
        "properties" | "patternProperties" | "dependentSchemas" => match v {
            Value::Object(props) => Value::Object(
                props
                    .iter()
                    .map(|(name, s)| (name.clone(), inline(root, s, stack, budget, notes, depth + 1)))
                    .collect(),
            ),
            other => other.clone(),
        },
        "items"
        | "additionalProperties"
        | "not"
        | "contains"
        | "if"
        | "then"
        | "else"
        | "propertyNames"
        | "unevaluatedItems"
        | "unevaluatedProperties"
        | "additionalItems" => match v {
            Value::Array(list) => Value::Array(
                list.iter()
                    .map(|s| inline(root, s, stack, budget, notes, depth + 1))
                    .collect(),
            ),
            s @ (Value::Object(_) | Value::Bool(_)) => inline(root, s, stack, budget, notes, depth + 1),
            other => other.clone(),
        },
        "allOf" | "anyOf" | "oneOf" | "prefixItems" => match v {
            Value::Array(list) => Value::Array(
                list.iter()
                    .map(|s| inline(root, s, stack, budget, notes, depth + 1))
                    .collect(),
            ),
            other => other.clone(),
        },
        _ => v.clone(),
    }
}

fn note(notes: &mut Vec<String>, n: &str) {
    if !notes.iter().any(|x| x == n) {
        notes.push(n.to_owned());
    }
}

/// `allOf` merged into the node: properties and `required` united, other keywords the
/// first one's.
fn merge_all_of(node: &Value) -> Value {
    let Some(o) = node.as_object() else {
        return node.clone();
    };
    let Some(Value::Array(parts)) = o.get("allOf") else {
        return node.clone();
    };
    let mut out = o.clone();
    out.remove("allOf");
    for part in parts {
        let part = merge_all_of(part);
        let Some(p) = part.as_object() else { continue };
        for (k, v) in p {
            match k.as_str() {
                "properties" => {
                    let props = out.entry("properties").or_insert_with(|| json!({}));
                    if let (Value::Object(into), Value::Object(from)) = (props, v) {
                        for (name, s) in from {
                            into.entry(name.clone()).or_insert_with(|| s.clone());
                        }
                    }
                }
                "required" => {
                    let req = out.entry("required").or_insert_with(|| json!([]));
                    if let (Value::Array(into), Value::Array(from)) = (req, v) {
                        for r in from {
                            if !into.contains(r) {
                                into.push(r.clone());
                            }
                        }
                    }
                }
                "description" => {
                    if !out.contains_key("description") {
                        out.insert(k.clone(), v.clone());
                    }
                }
                _ => {
                    out.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    Value::Object(out)
}

/// The top level as an object schema.
fn top_object(root: Value, notes: &mut Vec<String>) -> Value {
    let root = merge_all_of(&root);
    let Value::Object(mut o) = root else {
        return json!({"type": "object", "properties": {}});
    };
    for k in ["$schema", "$id", "$comment", "$anchor"] {
        o.remove(k);
    }
    let forms = ["anyOf", "oneOf"]
        .iter()
        .find_map(|k| o.get(*k).and_then(Value::as_array).cloned().map(|f| (*k, f)));
    if let Some((key, forms)) = forms
        && !o.contains_key("properties")
    {
        // one object with every form's properties, required only what all forms require
        o.remove(key);
        let mut props = Map::new();
        let mut required: Option<Vec<Value>> = None;
        let mut words = Vec::new();
        for (i, f) in forms.iter().enumerate() {
            let f = merge_all_of(f);
            let fp = f
                .get("properties")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let fr = f.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
            words.push(format!(
                "{}: {}",
                i + 1,
                if fp.is_empty() {
                    "no arguments".to_owned()
                } else {
                    fp.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            ));
            for (k, v) in fp {
                props.entry(k).or_insert(v);
            }
            required = Some(match required {
                None => fr,
                Some(r) => r.into_iter().filter(|x| fr.contains(x)).collect(),
            });
        }
        note(
            notes,
            "the top level offers alternative forms: declared as one object with all their properties",
        );
        let desc = o
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        o.insert(
            "description".into(),
            json!(join_words(
                Some(&desc),
                &format!("Give the properties of one of these forms: {}.", words.join("; "))
            )),
        );
        o.insert("properties".into(), Value::Object(props));
        if let Some(r) = required.filter(|r| !r.is_empty()) {
            o.insert("required".into(), Value::Array(r));
        }
    }
    let is_object = match o.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        None => true,
        _ => false,
    };
    if !is_object {
        note(
            notes,
            "the top level is not an object schema: declared as an object without properties",
        );
        return json!({"type": "object", "properties": {}});
    }
    for k in ["anyOf", "oneOf", "not", "enum", "const", "if", "then", "else"] {
        if o.remove(k).is_some() {
            note(notes, &format!("`{k}` at the top level is left out"));
        }
    }
    o.insert("type".into(), json!("object"));
    Value::Object(o)
}

fn join_words(a: Option<&str>, b: &str) -> String {
    match a.map(str::trim).filter(|a| !a.is_empty()) {
        Some(a) if a.ends_with(['.', '!', '?', ':']) => format!("{a} {b}"),
        Some(a) => format!("{a}. {b}"),
        None => b.to_owned(),
    }
}

/// `s` cut to `max` characters, the last one `…` when cut.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn description_of(node: &Value, max: usize) -> Option<String> {
    node.get("description")
        .and_then(Value::as_str)
        .map(|d| cut(d, max))
        .filter(|d| !d.trim().is_empty())
}

/// OpenAI and Anthropic: the JSON Schema 2020-12 keywords, each with a value of the
/// kind the keyword takes (anything else, `x-…` and OpenAPI's `nullable` included, is left
/// out: `nullable: true` becomes `"null"` in `type`), cut at the depth bound.
fn json_schema(node: &Value, depth: usize, opts: Options) -> Value {
    let Value::Object(o) = node else {
        return json!({});
    };
    if depth > opts.max_depth {
        return json!({"description": "(nested too deep to describe here: any JSON value)"});
    }
    let sub = |v: &Value| json_schema(v, depth + 1, opts);
    let subs = |v: &Value| v.as_array().map(|l| Value::Array(l.iter().map(sub).collect()));
    let mut out = Map::new();
    for (k, v) in o {
        let kept = match k.as_str() {
            "type" => match v {
                Value::String(t) if JSON_TYPES.contains(&t.as_str()) => Some(v.clone()),
                Value::Array(ts)
                    if !ts.is_empty() && ts.iter().all(|t| t.as_str().is_some_and(|t| JSON_TYPES.contains(&t))) =>
                {
                    let mut seen: Vec<Value> = Vec::new();
                    for t in ts {
                        if !seen.contains(t) {
                            seen.push(t.clone());
                        }
                    }
                    Some(Value::Array(seen))
                }
                _ => None,
            },
            "description" => match v {
                Value::String(d) if depth <= 1 || opts.nested_descriptions => Some(json!(cut(d, opts.description_max))),
                _ => None,
            },
            "title" | "format" | "pattern" | "contentEncoding" | "contentMediaType" => v.is_string().then(|| v.clone()),
            "multipleOf" | "maximum" | "exclusiveMaximum" | "minimum" | "exclusiveMinimum" => {
                v.is_number().then(|| v.clone())
            }
            "maxLength" | "minLength" | "maxItems" | "minItems" | "maxContains" | "minContains" | "maxProperties"
            | "minProperties" => v.is_u64().then(|| v.clone()),
            "uniqueItems" | "deprecated" | "readOnly" | "writeOnly" => v.is_boolean().then(|| v.clone()),
            "required" => v.as_array().map(|r| {
                let mut names: Vec<Value> = Vec::new();
                for n in r.iter().filter(|n| n.is_string()) {
                    if !names.contains(n) {
                        names.push(n.clone());
                    }
                }
                Value::Array(names)
            }),
            "enum" => v.as_array().filter(|e| !e.is_empty()).map(|_| v.clone()),
            "examples" => v.is_array().then(|| v.clone()),
            "const" | "default" => Some(v.clone()),
            "dependentRequired" => v.is_object().then(|| v.clone()),
            "properties" | "patternProperties" | "dependentSchemas" => v
                .as_object()
                .map(|props| Value::Object(props.iter().map(|(n, s)| (n.clone(), sub(s))).collect())),
            "items"
            | "additionalProperties"
            | "not"
            | "contains"
            | "if"
            | "then"
            | "else"
            | "propertyNames"
            | "unevaluatedItems"
            | "unevaluatedProperties"
            | "additionalItems" => match v {
                Value::Object(_) => Some(sub(v)),
                Value::Bool(_) => Some(v.clone()),
                _ => None,
            },
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                subs(v).filter(|l| l.as_array().is_some_and(|l| !l.is_empty()))
            }
            _ => None,
        };
        if let Some(v) = kept {
            out.insert(k.clone(), v);
        }
    }
    if o.get("nullable") == Some(&json!(true))
        && let Some(Value::String(t)) = out.get("type").cloned()
        && t != "null"
    {
        out.insert("type".into(), json!([t, "null"]));
    }
    Value::Object(out)
}

const JSON_TYPES: [&str; 7] = ["object", "array", "string", "integer", "number", "boolean", "null"];

struct Gemini {
    opts: Options,
    as_text: Vec<Vec<Step>>,
    notes: Vec<String>,
}

const GEMINI_KEEP_NUMBERS: [&str; 8] = [
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
];

impl Gemini {
    /// A value Gemini cannot describe, as JSON text.
    fn text(&mut self, node: &Value, path: &[Step], what: &str, depth: usize) -> Value {
        self.as_text.push(path.to_vec());
        let desc = self.description(node, depth);
        json!({"type": "STRING", "description": join_words(desc.as_deref(), &format!("{what}, written as JSON text."))})
    }

    fn description(&self, node: &Value, depth: usize) -> Option<String> {
        if depth > 1 && !self.opts.nested_descriptions {
            return None;
        }
        let title = node
            .get("title")
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty());
        let desc = description_of(node, self.opts.description_max);
        match (title, desc) {
            (Some(t), None) => Some(cut(t, self.opts.description_max)),
            (_, d) => d,
        }
    }

    fn node(&mut self, node: &Value, path: &mut Vec<Step>, depth: usize) -> Value {
        let node = merge_all_of(node);
        if depth > self.opts.max_depth {
            return self.text(&node, path, "Any JSON value (nested too deep to describe here)", depth);
        }
        let Some(o) = node.as_object() else {
            return self.text(&node, path, "Any JSON value", depth);
        };
        let mut nullable = o.get("nullable") == Some(&json!(true));
        // the forms: `type` (a list of them, with "null" as nullable), `anyOf`/`oneOf`
        let mut types: Vec<String> = match o.get("type") {
            Some(Value::String(t)) => vec![t.clone()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        if types.iter().any(|t| t == "null") {
            nullable = true;
            types.retain(|t| t != "null");
        }
        let alternatives: Option<Vec<Value>> = ["anyOf", "oneOf"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_array).cloned());
        if let Some(mut alts) = alternatives {
            let before = alts.len();
            alts.retain(|a| a.get("type") != Some(&json!("null")));
            nullable |= alts.len() < before;
            let mut base = o.clone();
            base.remove("anyOf");
            base.remove("oneOf");
            let mut out = Map::new();
            if let Some(d) = self.description(&node, depth) {
                out.insert("description".into(), json!(d));
            }
            if alts.len() == 1 {
                // one form left once null is out: that form, with this node's words
                let mut merged = alts.remove(0);
                if let (Value::Object(m), Some(d)) = (&mut merged, o.get("description")) {
                    m.entry("description").or_insert_with(|| d.clone());
                }
                let mut v = self.node(&merged, path, depth);
                if nullable && let Value::Object(m) = &mut v {
                    m.insert("nullable".into(), json!(true));
                }
                return v;
            }
            let forms: Vec<Value> = alts
                .iter()
                .map(|a| {
                    let mut a = merge_all_of(a);
                    // keywords of the node around the alternatives apply to each form
                    if let Value::Object(m) = &mut a {
                        for (k, v) in &base {
                            if k != "description" && k != "title" {
                                m.entry(k.clone()).or_insert_with(|| v.clone());
                            }
                        }
                    }
                    self.node(&a, path, depth + 1)
                })
                .collect();
            if forms.is_empty() {
                return self.text(&node, path, "Any JSON value", depth);
            }
            out.insert("anyOf".into(), Value::Array(forms));
            if nullable {
                out.insert("nullable".into(), json!(true));
            }
            return Value::Object(out);
        }
        if types.is_empty() {
            // no `type`: what the other keywords say it is
            if o.contains_key("properties") {
                types.push("object".into());
            } else if o.contains_key("items") {
                types.push("array".into());
            } else if let Some(Value::Array(e)) = o.get("enum") {
                if !e.is_empty() && e.iter().all(Value::is_string) {
                    types.push("string".into());
                }
            } else if let Some(c) = o.get("const") {
                match c {
                    Value::String(_) => types.push("string".into()),
                    Value::Bool(_) => types.push("boolean".into()),
                    Value::Number(n) if n.is_i64() || n.is_u64() => types.push("integer".into()),
                    Value::Number(_) => types.push("number".into()),
                    _ => {}
                }
            }
        }
        if types.len() > 1 {
            let forms: Vec<Value> = types
                .iter()
                .map(|t| {
                    let mut one = o.clone();
                    one.insert("type".into(), json!(t));
                    one.remove("description");
                    one.remove("title");
                    self.node(&Value::Object(one), path, depth + 1)
                })
                .collect();
            let mut out = Map::new();
            if let Some(d) = self.description(&node, depth) {
                out.insert("description".into(), json!(d));
            }
            out.insert("anyOf".into(), Value::Array(forms));
            if nullable {
                out.insert("nullable".into(), json!(true));
            }
            return Value::Object(out);
        }
        let Some(t) = types.first().cloned() else {
            return self.text(&node, path, "Any JSON value", depth);
        };
        let mut out = Map::new();
        let mut words: Vec<String> = Vec::new();
        match t.as_str() {
            "object" => {
                let props = o
                    .get("properties")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if props.is_empty() {
                    let mut v = self.text(&node, path, "A JSON object", depth);
                    if nullable && let Value::Object(m) = &mut v {
                        m.insert("nullable".into(), json!(true));
                    }
                    return v;
                }
                out.insert("type".into(), json!("OBJECT"));
                let mut declared = Map::new();
                for (name, s) in &props {
                    path.push(Step::Property(name.clone()));
                    declared.insert(name.clone(), self.node(s, path, depth + 1));
                    path.pop();
                }
                out.insert("properties".into(), Value::Object(declared));
                if let Some(Value::Array(req)) = o.get("required") {
                    let req: Vec<Value> = req
                        .iter()
                        .filter(|r| r.as_str().is_some_and(|r| props.contains_key(r)))
                        .cloned()
                        .collect();
                    if !req.is_empty() {
                        out.insert("required".into(), Value::Array(req));
                    }
                }
                if o.get("additionalProperties").is_some_and(|a| a != &json!(false)) {
                    words.push("other properties are not declared here".into());
                }
            }
            "array" => {
                out.insert("type".into(), json!("ARRAY"));
                path.push(Step::Item);
                let items = match o.get("items") {
                    Some(i @ Value::Object(m)) if !m.is_empty() => self.node(i, path, depth + 1),
                    _ => self.text(&json!({}), path, "Any JSON value", depth + 1),
                };
                path.pop();
                out.insert("items".into(), items);
            }
            "string" => {
                out.insert("type".into(), json!("STRING"));
                match o.get("format").and_then(Value::as_str) {
                    Some(f @ ("date-time" | "enum")) => {
                        out.insert("format".into(), json!(f));
                    }
                    Some(f) => words.push(format!("format: {f}")),
                    None => {}
                }
            }
            "integer" | "number" => {
                out.insert("type".into(), json!(if t == "integer" { "INTEGER" } else { "NUMBER" }));
                match o.get("format").and_then(Value::as_str) {
                    Some(f @ ("int32" | "int64")) if t == "integer" => {
                        out.insert("format".into(), json!(f));
                    }
                    Some(f @ ("float" | "double")) if t == "number" => {
                        out.insert("format".into(), json!(f));
                    }
                    Some(f) => words.push(format!("format: {f}")),
                    None => {}
                }
                for (k, w) in [("exclusiveMinimum", "greater than"), ("exclusiveMaximum", "less than")] {
                    if let Some(Value::Number(n)) = o.get(k) {
                        words.push(format!("{w} {n}"));
                    }
                }
                if let Some(Value::Number(n)) = o.get("multipleOf") {
                    words.push(format!("a multiple of {n}"));
                }
            }
            "boolean" => {
                out.insert("type".into(), json!("BOOLEAN"));
            }
            _ => return self.text(&node, path, "Any JSON value", depth),
        }
        // enum and const: strings as Gemini's enum, other values in words
        let values: Option<Vec<Value>> = match (o.get("enum"), o.get("const")) {
            (Some(Value::Array(e)), _) => Some(e.clone()),
            (None, Some(c)) => Some(vec![c.clone()]),
            _ => None,
        };
        if let Some(values) = values.filter(|v| !v.is_empty()) {
            if t == "string" && values.iter().all(Value::is_string) {
                out.insert("format".into(), json!("enum"));
                out.insert("enum".into(), Value::Array(values));
            } else {
                let shown: Vec<String> = values.iter().take(50).map(Value::to_string).collect();
                words.push(format!("one of: {}", shown.join(", ")));
            }
        }
        for k in GEMINI_KEEP_NUMBERS {
            if let Some(Value::Number(n)) = o.get(k) {
                let ok = match k {
                    "minimum" | "maximum" => t == "integer" || t == "number",
                    "minLength" | "maxLength" => t == "string",
                    "minItems" | "maxItems" => t == "array",
                    _ => t == "object",
                };
                if ok && (k == "minimum" || k == "maximum" || n.is_u64()) {
                    out.insert(k.into(), Value::Number(n.clone()));
                }
            }
        }
        if t == "string"
            && let Some(Value::String(p)) = o.get("pattern")
        {
            out.insert("pattern".into(), json!(p));
        }
        if let Some(d) = o.get("default")
            && matches!(
                (d, t.as_str()),
                (Value::String(_), "string") | (Value::Bool(_), "boolean") | (Value::Number(_), "integer" | "number")
            )
        {
            out.insert("default".into(), d.clone());
        }
        if nullable {
            out.insert("nullable".into(), json!(true));
        }
        let desc = self.description(&node, depth);
        let text = match (desc, words.is_empty()) {
            (d, true) => d,
            (d, false) => Some(join_words(d.as_deref(), &format!("({}).", words.join("; ")))),
        };
        if let Some(d) = text {
            out.insert("description".into(), json!(d));
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests;
