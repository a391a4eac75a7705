//! The providers' rules on a declaration, as a check: what the tests hold every
//! declaration we build to (the whole OpenAPI corpus, every MCP reference-server tool), so
//! that a rule is written down once, here and in [`crate::Rules`], with its source.

use serde_json::Value;

use crate::{Provider, names};

/// Keywords of Gemini's `Schema` object (Gemini API reference, generativelanguage v1beta,
/// `Schema`; the same fields as `google.genai.types.Schema`).
pub const GEMINI_KEYS: [&str; 20] = [
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "properties",
    "required",
    "items",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "anyOf",
    "default",
];

const GEMINI_TYPES: [&str; 6] = ["STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"];

/// Whether one declared tool (`name` and its schema as the provider receives it) keeps
/// the provider's rules; the first rule broken, with where.
pub fn declaration(provider: Provider, name: &str, schema: Option<&Value>) -> Result<(), String> {
    if !names::is_valid(provider, name) {
        return Err(format!("name `{name}` breaks {}'s naming rule", provider));
    }
    match provider {
        Provider::OpenAi | Provider::Anthropic => {
            let s = schema.ok_or("no schema: OpenAI and Anthropic take an object schema")?;
            if s.get("type") != Some(&Value::String("object".into())) {
                return Err("the top level is not `type: object`".into());
            }
            for k in ["anyOf", "oneOf", "allOf", "enum", "not", "const"] {
                if s.get(k).is_some() {
                    return Err(format!("`{k}` at the top level"));
                }
            }
            no_refs(s, "")
        }
        Provider::Gemini => match schema {
            None => Ok(()),
            Some(s) => {
                if s.get("type") != Some(&Value::String("OBJECT".into())) {
                    return Err("`parameters` is not an OBJECT".into());
                }
                gemini_schema(s, "")
            }
        },
    }
}

fn no_refs(v: &Value, at: &str) -> Result<(), String> {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if matches!(k.as_str(), "$ref" | "$defs" | "definitions" | "$dynamicRef") {
                    return Err(format!("`{k}` at {at}"));
                }
                // values, not schemas
                if matches!(k.as_str(), "enum" | "const" | "default" | "examples") {
                    continue;
                }
                // names, then schemas
                if matches!(k.as_str(), "properties" | "patternProperties" | "dependentSchemas")
                    && let Value::Object(props) = x
                {
                    for (name, p) in props {
                        no_refs(p, &format!("{at}/{k}/{name}"))?;
                    }
                    continue;
                }
                no_refs(x, &format!("{at}/{k}"))?;
            }
            Ok(())
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| no_refs(x, &format!("{at}/{i}"))),
        _ => Ok(()),
    }
}

fn gemini_schema(s: &Value, at: &str) -> Result<(), String> {
    let o = s
        .as_object()
        .ok_or_else(|| format!("{at}: a schema must be an object"))?;
    for k in o.keys() {
        if !GEMINI_KEYS.contains(&k.as_str()) {
            return Err(format!("{at}: `{k}` is not a field of Gemini's Schema"));
        }
    }
    let t = o.get("type").and_then(Value::as_str);
    if o.contains_key("anyOf") {
        let forms = o
            .get("anyOf")
            .and_then(Value::as_array)
            .filter(|f| !f.is_empty())
            .ok_or_else(|| format!("{at}: `anyOf` must be a non-empty list"))?;
        for (i, f) in forms.iter().enumerate() {
            gemini_schema(f, &format!("{at}/anyOf/{i}"))?;
        }
    } else {
        let t = t.ok_or_else(|| format!("{at}: no `type`"))?;
        if !GEMINI_TYPES.contains(&t) {
            return Err(format!("{at}: type `{t}`"));
        }
    }
    if let Some(t) = t
        && !GEMINI_TYPES.contains(&t)
    {
        return Err(format!("{at}: type `{t}`"));
    }
    match t {
        Some("OBJECT") => {
            let props = o
                .get("properties")
                .and_then(Value::as_object)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| format!("{at}: an OBJECT needs properties"))?;
            for (name, p) in props {
                gemini_schema(p, &format!("{at}/properties/{name}"))?;
            }
            if let Some(req) = o.get("required") {
                let req = req
                    .as_array()
                    .ok_or_else(|| format!("{at}: `required` must be a list"))?;
                for r in req {
                    let r = r
                        .as_str()
                        .ok_or_else(|| format!("{at}: `required` holds a non-string"))?;
                    if !props.contains_key(r) {
                        return Err(format!("{at}: `required` names `{r}`, which is not a property"));
                    }
                }
            }
        }
        Some("ARRAY") => {
            let items = o.get("items").ok_or_else(|| format!("{at}: an ARRAY needs items"))?;
            gemini_schema(items, &format!("{at}/items"))?;
        }
        _ => {
            for k in ["properties", "items", "required"] {
                if o.contains_key(k) {
                    return Err(format!("{at}: `{k}` on a {}", t.unwrap_or("schema without a type")));
                }
            }
        }
    }
    if let Some(e) = o.get("enum") {
        let ok = t == Some("STRING")
            && e.as_array()
                .is_some_and(|e| !e.is_empty() && e.iter().all(Value::is_string));
        if !ok {
            return Err(format!("{at}: `enum` must be strings on a STRING"));
        }
    }
    if let Some(f) = o.get("format") {
        let ok = matches!(
            (t, f.as_str()),
            (Some("STRING"), Some("enum" | "date-time"))
                | (Some("INTEGER"), Some("int32" | "int64"))
                | (Some("NUMBER"), Some("float" | "double"))
        );
        if !ok {
            return Err(format!("{at}: format {f} on {}", t.unwrap_or("?")));
        }
    }
    for k in [
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
    ] {
        if let Some(v) = o.get(k)
            && !v.is_u64()
        {
            return Err(format!("{at}: `{k}` must be a non-negative integer"));
        }
    }
    for k in ["minimum", "maximum"] {
        if let Some(v) = o.get(k)
            && !v.is_number()
        {
            return Err(format!("{at}: `{k}` must be a number"));
        }
    }
    for k in ["description", "title", "pattern"] {
        if let Some(v) = o.get(k)
            && !v.is_string()
        {
            return Err(format!("{at}: `{k}` must be a string"));
        }
    }
    if let Some(v) = o.get("nullable")
        && !v.is_boolean()
    {
        return Err(format!("{at}: `nullable` must be a boolean"));
    }
    Ok(())
}
