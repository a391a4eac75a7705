use serde_json::{Value, json};

use super::*;
use crate::check;

fn all(schema: Value) -> [Adapted; 3] {
    Provider::ALL.map(|p| {
        let a = adapt(p, &schema, Options::default());
        check::declaration(p, "t", a.schema.as_ref())
            .unwrap_or_else(|e| panic!("{p}: {e}\n{:#}", a.schema.clone().unwrap_or_default()));
        a
    })
}

#[test]
fn references_are_inlined_and_recursion_is_cut() {
    let schema = json!({
        "type": "object",
        "$defs": {
            "Node": {"type": "object", "properties": {"name": {"type": "string"}, "child": {"$ref": "#/$defs/Node"}}},
            "Tag": {"type": "string", "enum": ["a", "b"]}
        },
        "properties": {"root": {"$ref": "#/$defs/Node", "description": "the tree"}, "tag": {"$ref": "#/$defs/Tag"}},
        "required": ["root"]
    });
    let [openai, _, gemini] = all(schema);
    let o = openai.schema.unwrap_or_default();
    assert_eq!(o["properties"]["tag"], json!({"type": "string", "enum": ["a", "b"]}));
    assert_eq!(o["properties"]["root"]["description"], "the tree");
    assert_eq!(o["properties"]["root"]["properties"]["name"], json!({"type": "string"}));
    let child = &o["properties"]["root"]["properties"]["child"]["description"];
    assert!(child.as_str().unwrap_or_default().contains("same structure"), "{o}");
    assert!(
        openai.notes.iter().any(|n| n.contains("refers to itself")),
        "{:?}",
        openai.notes
    );
    let g = gemini.schema.unwrap_or_default();
    assert_eq!(
        g["properties"]["tag"],
        json!({"type": "STRING", "format": "enum", "enum": ["a", "b"]})
    );
    assert_eq!(g["required"], json!(["root"]));
}

#[test]
fn the_top_level_is_always_an_object() {
    for (schema, props) in [
        (json!({}), json!({})),
        (json!(true), json!({})),
        (json!({"type": "string"}), json!({})),
        (
            json!({"allOf": [{"properties": {"a": {"type": "string"}}}, {"properties": {"b": {"type": "integer"}}, "required": ["b"]}]}),
            json!({"a": {"type": "string"}, "b": {"type": "integer"}}),
        ),
        (
            json!({"oneOf": [{"properties": {"id": {"type": "integer"}}, "required": ["id"]}, {"properties": {"name": {"type": "string"}}, "required": ["name"]}]}),
            json!({"id": {"type": "integer"}, "name": {"type": "string"}}),
        ),
    ] {
        let [openai, anthropic, _] = all(schema.clone());
        for a in [openai, anthropic] {
            let s = a.schema.unwrap_or_default();
            assert_eq!(s["type"], "object", "{schema}");
            assert_eq!(s["properties"], props, "{schema}");
        }
    }
    // alternative forms: none of their properties is required, and the description says so
    let [openai, ..] = all(
        json!({"anyOf": [{"properties": {"id": {"type": "integer"}}, "required": ["id"]}, {"properties": {"name": {"type": "string"}}}]}),
    );
    let s = openai.schema.unwrap_or_default();
    assert!(s.get("required").is_none(), "{s}");
    assert!(
        s["description"].as_str().unwrap_or_default().contains("1: id; 2: name"),
        "{s}"
    );
}

#[test]
fn gemini_gets_its_subset() {
    let schema = json!({
        "type": "object",
        "properties": {
            "maybe": {"type": ["string", "null"], "format": "uri", "description": "A link"},
            "either": {"type": ["string", "integer"]},
            "kind": {"const": "issue"},
            "level": {"type": "integer", "enum": [1, 2, 3], "exclusiveMinimum": 0},
            "when": {"type": "string", "format": "date-time"},
            "meta": {"type": "object", "additionalProperties": {"type": "string"}},
            "anything": {},
            "list": {"type": "array"},
            "shape": {"oneOf": [{"type": "object", "properties": {"r": {"type": "number"}}}, {"type": "null"}]},
            "pair": {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"x": {"type": "number"}}}]}
        },
        "required": ["kind", "ghost"]
    });
    let [_, _, gemini] = all(schema);
    let g = gemini.schema.clone().unwrap_or_default();
    let p = &g["properties"];
    assert_eq!(
        p["maybe"],
        json!({"type": "STRING", "nullable": true, "description": "A link. (format: uri)."})
    );
    assert_eq!(p["either"]["anyOf"], json!([{"type": "STRING"}, {"type": "INTEGER"}]));
    assert_eq!(
        p["kind"],
        json!({"type": "STRING", "format": "enum", "enum": ["issue"]})
    );
    assert_eq!(
        p["level"],
        json!({"type": "INTEGER", "description": "(greater than 0; one of: 1, 2, 3)."})
    );
    assert_eq!(p["when"], json!({"type": "STRING", "format": "date-time"}));
    assert_eq!(p["meta"]["type"], "STRING");
    assert_eq!(p["anything"]["type"], "STRING");
    assert_eq!(
        p["list"],
        json!({"type": "ARRAY", "items": {"type": "STRING", "description": "Any JSON value, written as JSON text."}})
    );
    assert_eq!(
        p["shape"],
        json!({"type": "OBJECT", "properties": {"r": {"type": "NUMBER"}}, "nullable": true})
    );
    assert_eq!(p["pair"]["anyOf"][1]["type"], "OBJECT");
    assert_eq!(
        g["required"],
        json!(["kind"]),
        "a required name without a property is dropped"
    );
    // what went as text comes back as JSON
    let args =
        json!({"meta": "{\"a\": \"b\"}", "anything": "42", "list": ["{\"x\":1}", "plain", "[1]"], "kind": "issue"});
    assert_eq!(
        gemini.restore(args),
        json!({"meta": {"a": "b"}, "anything": 42, "list": [{"x": 1}, "plain", [1]], "kind": "issue"})
    );
}

#[test]
fn gemini_declares_no_parameters_or_wraps_free_form_ones() {
    for s in [
        json!({"type": "object"}),
        json!({"type": "object", "properties": {}}),
        json!({}),
    ] {
        let [_, _, g] = all(s);
        assert_eq!(g.schema, None);
    }
    let [_, _, g] = all(json!({"type": "object", "additionalProperties": true, "description": "Anything"}));
    let s = g.schema.clone().unwrap_or_default();
    assert_eq!(s["properties"][WRAPPED]["type"], "STRING");
    assert!(g.wrapped);
    assert_eq!(g.restore(json!({WRAPPED: "{\"a\": [1, 2]}"})), json!({"a": [1, 2]}));
}

#[test]
fn depth_and_description_bounds_hold() {
    let mut deep = json!({"type": "string", "description": "leaf"});
    for i in 0..40 {
        deep = json!({"type": "object", "description": format!("level {i}"), "properties": {"n": deep}});
    }
    let opts = Options {
        max_depth: 4,
        nested_descriptions: false,
        description_max: 10,
    };
    for p in Provider::ALL {
        let a = adapt(p, &deep, opts);
        let text = a.schema.clone().unwrap_or_default().to_string();
        assert!(!text.contains("leaf"), "{p}: {text}");
        assert!(!text.contains("level 30"), "{p}: {text}");
        check::declaration(p, "t", a.schema.as_ref()).unwrap_or_else(|e| panic!("{p}: {e}"));
    }
    let long = json!({"type": "object", "description": "x".repeat(5000), "properties": {"a": {"type": "string"}}});
    let a = adapt(Provider::OpenAi, &long, Options::default());
    assert_eq!(
        a.schema.unwrap_or_default()["description"]
            .as_str()
            .map(|d| d.chars().count()),
        Some(1024)
    );
}

#[test]
fn a_reference_used_everywhere_does_not_multiply_without_end() {
    // each level refers to the next one twice: 2^30 nodes if expanded whole
    let mut defs = serde_json::Map::new();
    for i in 0..30 {
        defs.insert(
            format!("L{i}"),
            json!({"type": "object", "properties": {"a": {"$ref": format!("#/$defs/L{}", i + 1)}, "b": {"$ref": format!("#/$defs/L{}", i + 1)}}}),
        );
    }
    defs.insert("L30".into(), json!({"type": "string"}));
    let schema = json!({"type": "object", "$defs": defs, "properties": {"root": {"$ref": "#/$defs/L0"}}});
    for p in Provider::ALL {
        let a = adapt(p, &schema, Options::default());
        assert!(a.schema.as_ref().map_or(0, |s| s.to_string().len()) < 20_000_000);
        check::declaration(p, "t", a.schema.as_ref()).unwrap_or_else(|e| panic!("{p}: {e}"));
    }
}

fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "object",
            "array",
            "string",
            "integer",
            "number",
            "boolean",
            "null",
            "uri",
            "date-time",
            "#/$defs/a",
            "#",
            "#/properties",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        let keys = prop::sample::select(vec![
            "type",
            "properties",
            "items",
            "required",
            "enum",
            "const",
            "anyOf",
            "oneOf",
            "allOf",
            "$ref",
            "$defs",
            "additionalProperties",
            "format",
            "description",
            "nullable",
            "minimum",
            "maxLength",
            "a",
            "b",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest::proptest! {
    #[test]
    fn any_schema_becomes_a_declaration_each_provider_accepts(schema in any_json()) {
        for p in Provider::ALL {
            let a = adapt(p, &schema, Options::default());
            if let Err(e) = check::declaration(p, "t", a.schema.as_ref()) {
                proptest::prop_assert!(false, "{}: {} for {} → {}", p, e, schema, a.schema.unwrap_or_default());
            }
            let _ = a.restore(json!({"a": "{}", "b": ["1"]}));
        }
    }
}
