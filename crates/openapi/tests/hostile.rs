//! Hostile and malformed documents: random structures in every place of a document and
//! random byte edits of real ones never panic, never hang, and whatever imports is a draft
//! the create endpoint accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatterfly_domain::{ConnectionDraft, ConnectionInput};
use chatterfly_openapi::{Options, import};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const WORDS: &[&str] = &[
    "",
    "{",
    "}",
    "{id}",
    "{{x}}",
    "/",
    "//",
    "/a/{b}",
    "/a/{b",
    "a b",
    "#",
    "?",
    "$ref",
    "#/",
    "#/components/schemas/A",
    "#/components/schemas/B",
    "#/definitions/A",
    "#/paths",
    "#",
    "other.yaml#/A",
    "https://example.com/s.json",
    "string",
    "object",
    "array",
    "integer",
    "number",
    "boolean",
    "null",
    "file",
    "path",
    "query",
    "header",
    "cookie",
    "body",
    "formData",
    "application/json",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "text/plain",
    "*/*",
    "bearer",
    "basic",
    "apiKey",
    "http",
    "oauth2",
    "(",
    "[a-z]+",
    "\u{0}",
    "é☃",
    "3.0.0",
    "3.1.0",
    "2.0",
    "deepObject",
    "pipeDelimited",
    "csv",
    "multi",
];

const KEYS: &[&str] = &[
    "type",
    "properties",
    "items",
    "$ref",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "required",
    "enum",
    "nullable",
    "additionalProperties",
    "in",
    "name",
    "schema",
    "parameters",
    "requestBody",
    "content",
    "responses",
    "200",
    "2XX",
    "default",
    "security",
    "servers",
    "url",
    "variables",
    "operationId",
    "get",
    "post",
    "put",
    "summary",
    "description",
    "style",
    "explode",
    "collectionFormat",
    "format",
    "pattern",
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "example",
    "examples",
    "readOnly",
    "writeOnly",
    "components",
    "schemas",
    "securitySchemes",
    "scheme",
    "consumes",
    "x-a",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..100_000).prop_map(|n| json!(n)),
        (-1.0e3f64..1.0e3).prop_map(|f| json!(f)),
        prop::sample::select(WORDS).prop_map(|w| json!(w)),
        "[ -~]{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 80, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())),
        ]
    })
}

/// A document skeleton with random parts where the importer looks.
fn document() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["openapi 3.0.3", "openapi 3.1.0", "swagger 2.0"][..]),
        prop::collection::vec((prop::sample::select(WORDS), value()), 0..4),
        value(),
        value(),
        value(),
        value(),
    )
        .prop_map(|(version, paths, schemas, security, servers, extra_op)| {
            let (key, v) = version.split_once(' ').unwrap();
            let mut doc = json!({key: v, "info": {"title": "Fuzz", "version": "1"},
                "components": {"schemas": {"A": schemas.clone(), "B": {"$ref": "#/components/schemas/A"}},
                    "securitySchemes": {"s": security}},
                "definitions": {"A": schemas},
                "security": [{"s": []}], "servers": servers});
            let mut p = Map::new();
            for (path, item) in paths {
                p.insert(format!("/{path}"), item);
            }
            p.insert("/fixed/{id}".into(), json!({"get": extra_op}));
            doc["paths"] = Value::Object(p);
            doc
        })
}

fn accepted(draft: &chatterfly_openapi::Draft) -> Result<(), String> {
    let mut v = serde_json::to_value(draft).unwrap();
    let auth = v["auth"].as_object_mut().unwrap();
    for f in ["token", "key", "username", "password"] {
        auth.insert(f.into(), json!("x"));
    }
    let t = auth["type"].as_str().unwrap().to_owned();
    auth.retain(|k, _| match t.as_str() {
        "bearer" => k == "type" || k == "token",
        "api_key_header" => k == "type" || k == "key" || k == "header",
        "api_key_query" => k == "type" || k == "key" || k == "param",
        "basic" => k == "type" || k == "username" || k == "password",
        _ => k == "type",
    });
    if v["base_url"] == "" {
        v["base_url"] = json!("https://api.example.com");
    }
    let input: ConnectionInput = serde_json::from_value(v).map_err(|e| e.to_string())?;
    ConnectionDraft::parse(input).map(|_| ()).map_err(|e| format!("{e:?}"))
}

proptest! {
    // 600 cases in every run; PROPTEST_CASES=… for a longer hunt
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(600),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_documents_import_or_refuse_cleanly(doc in document()) {
        let text = doc.to_string();
        if let Ok((draft, _, _)) = import(&text, &Options::default()) {
            prop_assert!(accepted(&draft).is_ok(), "{}\n{:?}", text, accepted(&draft));
        }
    }

    #[test]
    fn byte_edits_of_real_documents_never_panic(
        which in 0usize..2,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let seeds = [PETSTORE_JSON, PETSTORE_YAML];
        let mut bytes = seeds[which].as_bytes().to_vec();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len().max(1));
            match kind {
                0 if !bytes.is_empty() => {
                    let last = bytes.len() - 1;
                    bytes[i.min(last)] = byte;
                }
                1 => bytes.insert(i.min(bytes.len()), byte),
                _ => bytes.truncate(i),
            }
        }
        if let Ok(text) = String::from_utf8(bytes)
            && let Ok((draft, _, _)) = import(&text, &Options::default())
        {
            prop_assert!(accepted(&draft).is_ok(), "{:?}", accepted(&draft));
        }
    }
}

/// Inputs that a quadratic step would turn into a hang: they must import in linear time
/// (this test would take hours otherwise).
#[test]
fn large_documents_stay_linear() {
    // a YAML mapping of 200,000 keys, one of them repeated
    let mut yaml = String::from("openapi: 3.0.0\ninfo: {title: T, version: '1'}\npaths: {}\nx-big:\n");
    for i in 0..200_000 {
        yaml.push_str(&format!("  k{i}: {i}\n"));
    }
    yaml.push_str("  k7: last\n");
    let (d, _, _) = import(&yaml, &Options::default()).unwrap();
    assert!(d.operations.is_empty());

    // 100,000 schemas, one operation referring to every one of them; 100,000 query
    // parameters whose names all sanitize to `a`; the same parameter 50,000 times
    let n = 100_000;
    let schemas: Map<String, Value> = (0..n).map(|i| (format!("S{i}"), json!({"type": "integer"}))).collect();
    let props: Map<String, Value> = (0..n)
        .map(|i| (format!("p{i}"), json!({"$ref": format!("#/components/schemas/S{i}")})))
        .collect();
    let mut params: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("a{}", char::from_u32(0x1_0000 + i).unwrap()), "in": "query"}))
        .collect();
    params.extend((0..50_000).map(|_| json!({"name": "same", "in": "header"})));
    let doc = json!({"openapi": "3.0.0", "info": {"title": "T", "version": "1"},
        "components": {"schemas": schemas},
        "paths": {"/x": {"post": {"parameters": params,
            "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": props}}}}}}}});
    let (d, warnings, _) = import(&doc.to_string(), &Options::default()).unwrap();
    // 200,001 arguments cannot be a tool (a tool's input schema holds at most 256 KiB): the
    // operation is built (linearly: names numbered from a counter) and then left out
    assert!(d.operations.is_empty());
    assert!(
        warnings.iter().any(|w| w.reason.contains("too many arguments")),
        "{warnings:?}"
    );
    // with 2,000 of each it is a tool, and the names are unique
    let small = |k: u32| {
        let params: Vec<Value> = (0..k)
            .map(|i| json!({"name": format!("a{}", char::from_u32(0x1_0000 + i).unwrap()), "in": "query"}))
            .collect();
        json!({"openapi": "3.0.0", "info": {"title": "T", "version": "1"}, "paths": {"/x": {"post": {"parameters": params}}}})
    };
    let (d, _, _) = import(&small(2000).to_string(), &Options::default()).unwrap();
    let args = d.operations[0].input_schema["properties"].as_object().unwrap();
    assert!(
        args.contains_key("a") && args.contains_key("query_a") && args.contains_key("query_a_1999"),
        "{:?}",
        args.keys().take(5).collect::<Vec<_>>()
    );
    assert_eq!(args.len(), 2000);

    // 5,000 operations with one operationId
    let paths: Map<String, Value> = (0..5000)
        .map(|i| (format!("/p{i}"), json!({"get": {"operationId": "same"}})))
        .collect();
    let doc = json!({"openapi": "3.0.0", "info": {"title": "T", "version": "1"}, "paths": paths});
    let (d, _, _) = import(&doc.to_string(), &Options::default()).unwrap();
    assert_eq!(d.operations[4999].name, "same_5000");
}

const PETSTORE_JSON: &str = r##"{"openapi": "3.0.0", "info": {"title": "Pets", "version": "1"},
 "servers": [{"url": "https://{env}.pets.example.com/v1", "variables": {"env": {"default": "api"}}}],
 "components": {"securitySchemes": {"k": {"type": "apiKey", "in": "header", "name": "X-Key"}},
   "schemas": {"Pet": {"type": "object", "required": ["name"], "properties": {"id": {"type": "integer", "readOnly": true},
     "name": {"type": "string", "nullable": true}, "kids": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}}}}},
 "security": [{"k": []}],
 "paths": {"/pets/{petId}": {"parameters": [{"name": "petId", "in": "path", "required": true, "schema": {"type": "integer"}}],
   "get": {"operationId": "getPet", "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}},
   "put": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}, "responses": {}}},
  "/pets": {"get": {"parameters": [{"name": "tags", "in": "query", "style": "form", "explode": false,
     "schema": {"type": "array", "items": {"type": "string"}}}], "security": [], "responses": {}}}}}"##;

const PETSTORE_YAML: &str = "swagger: '2.0'
info: {title: Pets, version: '1'}
host: pets.example.com
basePath: /v1
securityDefinitions:
  b: {type: basic}
security: [{b: []}]
definitions:
  Pet: &pet
    type: object
    properties:
      name: {type: string}
      kids: {type: array, items: {$ref: '#/definitions/Pet'}}
paths:
  /pets/{petId}:
    get:
      operationId: getPet
      parameters: [{name: petId, in: path, required: true, type: integer}]
      responses:
        200: {description: ok, schema: {$ref: '#/definitions/Pet'}}
    post:
      consumes: [application/x-www-form-urlencoded]
      parameters:
        - {name: petId, in: path, required: true, type: integer}
        - {name: name, in: formData, type: string}
        - {name: tags, in: formData, type: array, items: {type: string}, collectionFormat: multi}
      responses: {}
  /pets:
    put:
      parameters: [{name: body, in: body, schema: *pet}]
      responses: {}
";

#[test]
fn invisible_characters_in_a_title_do_not_reach_the_name() {
    // a right-to-left override (and friends) would make the name read backwards; the
    // create endpoint refuses such a name, so the importer drops them
    let doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Pay\u{202E}lapyaP \u{200B}API\u{2066}", "version": "1"},
        "servers": [{"url": "https://api.example.com"}],
        "paths": {"/a": {"get": {"responses": {"200": {"description": "ok"}}}}}
    });
    let (draft, _, _) = import(&doc.to_string(), &Options::default()).unwrap();
    assert_eq!(draft.name, "PaylapyaP API");
    assert!(accepted(&draft).is_ok(), "{:?}", accepted(&draft));
}

#[test]
fn a_deeply_nested_schema_still_makes_a_draft_the_api_can_read() {
    // schemas ten levels deep, each ending in a `$ref` to the next: expanded, far deeper
    // than a document may nest; the draft, sent as JSON, must stay within serde_json's
    // 128 levels
    let mut schemas = Map::new();
    for i in 0..30 {
        let mut schema = json!({"$ref": format!("#/components/schemas/S{}", i + 1)});
        for _ in 0..10 {
            schema = json!({"type": "object", "properties": {"n": schema}});
        }
        schemas.insert(format!("S{i}"), schema);
    }
    schemas.insert("S30".into(), json!({"type": "string"}));
    let doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Deep", "version": "1"},
        "servers": [{"url": "https://api.example.com"}],
        "components": {"schemas": schemas},
        "paths": {"/a": {"post": {
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}},
            "responses": {"200": {"description": "ok"}}
        }}}
    });
    let (draft, _, _) = import(&doc.to_string(), &Options::default()).unwrap();
    let body = serde_json::to_string(&json!({"draft": draft})).unwrap();
    assert!(body.len() > 2000, "the schemas were expanded");
    assert!(
        serde_json::from_str::<Value>(&body).is_ok(),
        "the draft is deeper than the API reads"
    );
    assert!(accepted(&draft).is_ok(), "{:?}", accepted(&draft));
}
