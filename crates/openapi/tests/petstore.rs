//! Detailed checks on the petstore documents of each version (ReadMe's OAS examples), and
//! on small documents written here for the rules the corpus does not pin down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatterfly_openapi::{Draft, DraftOperation, Options, Warning, import};
use chatterfly_testkit::specs_dir;
use serde_json::{Value, json};

fn petstore(version: &str, syntax: &str) -> (Draft, Vec<Warning>) {
    let path = specs_dir()
        .join("@readme/oas-examples")
        .join(version)
        .join(syntax)
        .join(format!("petstore.{syntax}"));
    let (draft, warnings, _) = import(&std::fs::read_to_string(path).unwrap(), &Options::default()).unwrap();
    (draft, warnings)
}

fn op<'a>(d: &'a Draft, name: &str) -> &'a DraftOperation<'static> {
    d.operations
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no operation {name}"))
}

fn mapping(o: &DraftOperation) -> Value {
    serde_json::to_value(&o.request).unwrap()
}

/// The output schema as written out (`null` when there is none).
fn output(o: &DraftOperation) -> Value {
    serde_json::to_value(&o.output_schema).unwrap()
}

#[test]
fn petstore_in_every_version() {
    for (version, syntax) in [("2.0", "json"), ("3.0", "yaml"), ("3.1", "json")] {
        let (d, warnings) = petstore(version, syntax);
        let at = format!("{version} {syntax}");
        assert_eq!(d.name, "Swagger Petstore", "{at}");
        assert_eq!(d.slug, "swagger_petstore", "{at}");
        assert_eq!(d.service_type, "openapi");
        assert_eq!(d.base_url, "http://petstore.swagger.io/v2", "{at}");
        assert_eq!(d.operations.len(), 20, "{at}");
        // oauth2 is the scheme most operations ask for: a bearer token, with warnings saying so
        assert_eq!(d.auth, json!({"type": "bearer"}), "{at}");
        assert!(
            warnings
                .iter()
                .any(|w| w.reason.contains("oauth2 becomes a bearer token")),
            "{at}"
        );
        assert!(warnings.iter().any(|w| w.pointer == "/security"), "{at}");

        let names: Vec<&str> = d.operations.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            &names[..5],
            [
                "addPet",
                "updatePet",
                "findPetsByStatus",
                "findPetsByTags",
                "getPetById"
            ],
            "{at}"
        );

        // path parameter → placeholder; `api_key` header; both required where the document says
        let del = op(&d, "deletePet");
        assert_eq!(
            (del.method.as_str(), del.path.as_str()),
            ("DELETE", "/pet/{{petId}}"),
            "{at}"
        );
        assert_eq!(del.input_schema["required"], json!(["petId"]), "{at}");
        assert_eq!(del.input_schema["properties"]["petId"]["type"], "integer", "{at}");
        assert_eq!(
            del.input_schema["properties"]["petId"]["description"], "Pet id to delete",
            "{at}"
        );
        assert_eq!(
            mapping(del),
            json!({"arguments": {"api_key": {"in": "header"}, "petId": {"in": "path"}}}),
            "{at}"
        );

        // a form body spreads its fields into the arguments
        let form = op(&d, "updatePetWithForm");
        assert_eq!(form.path, "/pet/{{petId}}", "{at}");
        let m = mapping(form);
        assert_eq!(m["content_type"], "application/x-www-form-urlencoded", "{at}");
        assert_eq!(m["arguments"]["name"], json!({"in": "body"}), "{at}");
        assert_eq!(m["arguments"]["status"], json!({"in": "body"}), "{at}");

        // query parameters, and the response schema of the 200
        let login = op(&d, "loginUser");
        assert_eq!(login.input_schema["required"], json!(["username", "password"]), "{at}");
        assert_eq!(mapping(login)["arguments"]["username"], json!({"in": "query"}), "{at}");
        assert_eq!(output(login), json!({"type": "string"}), "{at}");
        let get = op(&d, "getPetById");
        let out = output(get);
        assert_eq!(out["type"], "object", "{at}");
        assert_eq!(out["required"], json!(["name", "photoUrls"]), "{at}");
        assert_eq!(
            out["properties"]["category"]["properties"]["name"]["type"], "string",
            "{at}"
        );
        assert_eq!(output(op(&d, "deleteOrder")), Value::Null, "{at}");

        // a JSON body (Pet) is flattened; `readOnly` id is not an argument in 3.x
        let add = op(&d, "addPet");
        let props = add.input_schema["properties"].as_object().unwrap();
        for p in ["name", "photoUrls", "category", "tags", "status"] {
            assert!(props.contains_key(p), "{at}: {p}");
            assert_eq!(mapping(add)["arguments"][p], json!({"in": "body"}), "{at}");
        }
        assert_eq!(add.input_schema["required"], json!(["name", "photoUrls"]), "{at}");
        assert_eq!(props["status"]["enum"], json!(["available", "pending", "sold"]), "{at}");

        // an array body cannot be flattened: it is the `body` argument
        let list = op(&d, "createUsersWithArrayInput");
        assert_eq!(list.input_schema["properties"]["body"]["type"], "array", "{at}");
        assert_eq!(mapping(list)["arguments"]["body"], json!({"in": "whole_body"}), "{at}");

        // deprecated operations say so
        assert!(op(&d, "findPetsByTags").description.starts_with("(Deprecated)"), "{at}");
    }
    // Swagger 2.0 specifics: the multipart upload, and `id` (not readOnly in 2.0) kept
    let (d, _) = petstore("2.0", "json");
    let upload = op(&d, "uploadFile");
    assert_eq!(mapping(upload)["content_type"], "multipart/form-data");
    assert_eq!(
        upload.input_schema["properties"]["file"],
        json!({"description": "file to upload", "type": "string", "format": "binary"})
    );
    assert!(op(&d, "addPet").input_schema["properties"].get("id").is_some());
    // 3.x: `id` is readOnly, so it is no argument
    let (d, _) = petstore("3.0", "yaml");
    assert!(op(&d, "addPet").input_schema["properties"].get("id").is_none());
}

fn draft_of(doc: Value) -> (Draft, Vec<Warning>) {
    let (d, w, _) = import(&doc.to_string(), &Options::default()).unwrap();
    (d, w)
}

#[test]
fn security_schemes_map_to_auth_types() {
    let cases = [
        (
            json!({"type": "apiKey", "in": "header", "name": "X-Key"}),
            json!({"type": "api_key_header", "header": "X-Key"}),
            false,
        ),
        (
            json!({"type": "apiKey", "in": "query", "name": "api_key"}),
            json!({"type": "api_key_query", "param": "api_key"}),
            false,
        ),
        (
            json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}),
            json!({"type": "bearer"}),
            false,
        ),
        (
            json!({"type": "http", "scheme": "Basic"}),
            json!({"type": "basic"}),
            false,
        ),
        (
            json!({"type": "openIdConnect", "openIdConnectUrl": "https://x/.well-known"}),
            json!({"type": "bearer"}),
            true,
        ),
        (json!({"type": "oauth2", "flows": {}}), json!({"type": "bearer"}), true),
        (
            json!({"type": "apiKey", "in": "cookie", "name": "sid"}),
            json!({"type": "none"}),
            true,
        ),
        (
            json!({"type": "http", "scheme": "digest"}),
            json!({"type": "none"}),
            true,
        ),
    ];
    for (scheme, auth, warns) in cases {
        let (d, w) = draft_of(json!({"openapi": "3.0.3", "info": {"title": "T", "version": "1"},
            "servers": [{"url": "https://api.example.com/v1/"}],
            "components": {"securitySchemes": {"s": scheme}}, "security": [{"s": []}], "paths": {}}));
        assert_eq!(d.auth, auth, "{scheme}");
        let warned = w.iter().any(|w| w.pointer == "/components/securitySchemes/s");
        assert_eq!(warned, warns, "{scheme}: {w:?}");
        assert_eq!(d.base_url, "https://api.example.com/v1");
    }
    // Swagger 2.0 basic; an operation with `security: []` is called without credentials
    let (d, _) = draft_of(
        json!({"swagger": "2.0", "info": {"title": "T", "version": "1"}, "host": "api.example.com",
        "schemes": ["http", "https"], "basePath": "/v2",
        "securityDefinitions": {"b": {"type": "basic"}}, "security": [{"b": []}],
        "paths": {"/public": {"get": {"security": [], "responses": {}}}, "/private": {"get": {"responses": {}}}}}),
    );
    assert_eq!(d.auth, json!({"type": "basic"}));
    assert_eq!(d.base_url, "https://api.example.com/v2");
    assert_eq!(mapping(&d.operations[0]), json!({"credentials": false}));
    assert_eq!(d.operations[1].request, None);
    // optional auth only (`[{}]`): none
    let (d, _) = draft_of(json!({"openapi": "3.1.0", "info": {"title": "T", "version": "1"},
        "components": {"securitySchemes": {"s": {"type": "http", "scheme": "bearer"}}}, "security": [{}], "paths": {}}));
    assert_eq!(d.auth, json!({"type": "none"}));
}

#[test]
fn base_urls() {
    let doc = |servers: Value| {
        draft_of(json!({"openapi": "3.0.0", "info": {"title": "T", "version": "1"}, "servers": servers, "paths": {}}))
    };
    let (d, w) = doc(json!([{"url": "https://{region}.example.com:{port}/{base}",
        "variables": {"region": {"default": "eu", "enum": ["eu", "us"]}, "port": {"default": "8443"}, "base": {"default": "v2"}}}]));
    assert_eq!(d.base_url, "https://eu.example.com:8443/v2");
    assert!(w.is_empty(), "{w:?}");
    for servers in [
        json!([{"url": "/api/v3"}]),
        json!([]),
        json!([{"url": "ftp://example.com"}]),
    ] {
        let (d, w) = doc(servers.clone());
        assert_eq!(d.base_url, "", "{servers}");
        assert!(
            w.iter()
                .any(|w| w.pointer.starts_with("/servers") && w.reason.contains("fill in the base URL")),
            "{servers}: {w:?}"
        );
    }
    // 2.0 without a host
    let (d, w) = draft_of(json!({"swagger": "2.0", "info": {"title": "T", "version": "1"}, "paths": {}}));
    assert_eq!(d.base_url, "");
    assert_eq!(w[0].pointer, "/host");
}

#[test]
fn operations_parameters_and_bodies() {
    let (d, w) = draft_of(
        json!({"openapi": "3.0.3", "info": {"title": "Shop API", "version": "1"},
        "servers": [{"url": "https://shop.example.com"}],
        "paths": {
            "/orgs/{org}/items/{item-id}": {
                "parameters": [
                    {"name": "org", "in": "path", "required": true, "schema": {"type": "string"}, "description": "path level"},
                    {"name": "X-Trace", "in": "header", "schema": {"type": "string"}}
                ],
                "get": {
                    "operationId": "items/get",
                    "parameters": [
                        {"name": "org", "in": "path", "required": true, "schema": {"type": "string"}, "description": "op level wins"},
                        {"name": "item-id", "in": "path", "required": true, "schema": {"type": "integer"}},
                        {"name": "filter[name]", "in": "query", "schema": {"type": "string"}},
                        {"name": "tags", "in": "query", "style": "pipeDelimited", "schema": {"type": "array", "items": {"type": "string"}}},
                        {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                        {"name": "Accept", "in": "header", "schema": {"type": "string"}}
                    ],
                    "responses": {"201": {"description": "x"}, "200": {"description": "ok",
                        "content": {"application/json": {"schema": {"type": "object", "properties": {"id": {"type": "integer"}}}}}}}
                },
                "post": {
                    "operationId": "items/get",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["org", "name"],
                        "properties": {"org": {"type": "string"}, "name": {"type": "string"}}}}}},
                    "responses": {}
                },
                "put": {
                    "requestBody": {"content": {"application/json": {"schema": {
                        "allOf": [{"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
                                  {"type": "object", "properties": {"@type": {"type": "string"}}}]}}}},
                    "responses": {}
                }
            },
            "/": {"delete": {"responses": {}}}
        }}),
    );
    let get = &d.operations[0];
    assert_eq!(get.name, "items_get");
    assert_eq!(get.path, "/orgs/{{org}}/items/{{item-id}}");
    assert_eq!(get.input_schema["properties"]["org"]["description"], "op level wins");
    assert_eq!(get.input_schema["required"], json!(["org", "item-id"]));
    assert_eq!(
        mapping(get),
        json!({"arguments": {
            "X-Trace": {"in": "header"},
            "filter_name": {"in": "query", "name": "filter[name]"},
            "item-id": {"in": "path"},
            "org": {"in": "path"},
            "tags": {"in": "query", "style": "pipe_delimited", "explode": false}
        }})
    );
    assert!(get.input_schema["properties"].get("session").is_none());
    assert!(get.input_schema["properties"].get("Accept").is_none());
    assert!(
        w.iter().any(|w| w.reason.contains("cookie parameter `session`")),
        "{w:?}"
    );
    assert_eq!(output(get)["properties"]["id"]["type"], "integer");

    // same operationId: a deterministic suffix; a body property colliding with a path
    // parameter keeps the body whole under `body`
    let post = &d.operations[1];
    assert_eq!(post.name, "items_get_2");
    assert_eq!(mapping(post)["arguments"]["body"], json!({"in": "whole_body"}));
    assert_eq!(post.input_schema["required"], json!(["org", "item-id", "body"]));
    // allOf of objects is merged and flattened; `@type` becomes `type` on the wire
    let put = &d.operations[2];
    assert_eq!(put.name, "put_orgs_org_items_item-id");
    assert_eq!(
        mapping(put)["arguments"]["type"],
        json!({"in": "body", "name": "@type"})
    );
    assert_eq!(mapping(put)["arguments"]["name"], json!({"in": "body"}));
    // the body is optional, so none of its properties is required
    assert_eq!(put.input_schema["required"], json!(["org", "item-id"]));
    assert_eq!(d.operations[3].name, "delete_root");
    assert_eq!(d.operations[3].path, "/");
}

#[test]
fn undeclared_placeholders_and_odd_paths() {
    let (d, w) = draft_of(
        json!({"swagger": "2.0", "info": {"title": "T", "version": "1"}, "host": "x.io",
        "paths": {"/files/{name}.json": {"get": {"responses": {}}}, "/a b#c": {"get": {"responses": {}}}}}),
    );
    assert_eq!(d.operations[0].path, "/files/{{name}}.json");
    assert_eq!(d.operations[0].input_schema["required"], json!(["name"]));
    assert!(w.iter().any(|w| w.reason.contains("no path parameter declares it")));
    assert_eq!(d.operations[1].path, "/a%20b%23c");
}

#[test]
fn unused_path_parameters_are_reported_in_the_same_order_every_time() {
    let params: Vec<Value> = ["d", "b", "a", "c"]
        .iter()
        .map(|n| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    let doc = json!({"openapi": "3.0.3", "info": {"title": "T", "version": "1"},
        "paths": {"/p": {"get": {"parameters": params, "responses": {}}}}});
    for _ in 0..20 {
        let (d, w) = draft_of(doc.clone());
        assert_eq!(d.operations[0].input_schema["properties"], json!({}));
        let unused: Vec<&str> = w
            .iter()
            .filter(|w| w.reason.contains("does not appear in the path"))
            .map(|w| w.reason.as_str())
            .collect();
        let expected: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| format!("path parameter `{n}` does not appear in the path; it is left out"))
            .collect();
        assert_eq!(unused, expected);
    }
}

#[test]
fn refused_documents_say_where() {
    let cases = [
        (json!({"openapi": "4.0.0", "paths": {}}), "/openapi"),
        (json!({"swagger": "1.2"}), "/swagger"),
        (json!({"info": {}}), ""),
        (json!([1, 2]), ""),
        (json!({"openapi": "3.0.0", "paths": []}), "/paths"),
    ];
    for (doc, pointer) in cases {
        let err = import(&doc.to_string(), &Options::default()).unwrap_err();
        assert_eq!(err.pointer.as_deref(), Some(pointer), "{doc}: {err}");
    }
    let mut paths = serde_json::Map::new();
    for i in 0..1001 {
        paths.insert(
            format!("/p{i}"),
            json!({"get": {}, "put": {}, "post": {}, "delete": {}, "patch": {}}),
        );
    }
    let err = import(
        &json!({"openapi": "3.0.0", "paths": paths}).to_string(),
        &Options::default(),
    )
    .unwrap_err();
    assert!(err.message.contains("5005 operations"), "{err}");
    let err = import("openapi: 3.0.0\npaths:\n  /a: [unclosed\n", &Options::default()).unwrap_err();
    assert!(err.line.is_some(), "{err}");
}

#[test]
fn external_references_are_never_fetched() {
    let (d, w) = draft_of(json!({"openapi": "3.1.0", "info": {"title": "T", "version": "1"},
        "paths": {"/x": {"post": {"requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "properties": {"a": {"$ref": "https://example.com/schemas/a.json"}, "b": {"type": "string"}}}}}},
            "responses": {}}}}}));
    assert_eq!(d.operations[0].input_schema["properties"]["a"], json!({}));
    let warning = w.iter().find(|w| w.reason.contains("never fetched")).unwrap();
    assert_eq!(
        warning.pointer,
        "/paths/~1x/post/requestBody/content/application~1json/schema"
    );
}

#[test]
fn names_and_slugs_can_be_chosen() {
    let doc = json!({"openapi": "3.0.0", "info": {"title": "Ünïcode API!", "version": "1"}, "paths": {}}).to_string();
    let (d, _, _) = import(&doc, &Options::default()).unwrap();
    assert_eq!((d.name.as_str(), d.slug.as_str()), ("Ünïcode API!", "n_code_api"));
    let (d, _, _) = import(
        &doc,
        &Options {
            name: Some("Mine".into()),
            slug: Some("mine".into()),
        },
    )
    .unwrap();
    assert_eq!((d.name.as_str(), d.slug.as_str()), ("Mine", "mine"));
}

#[test]
fn a_tie_between_security_schemes_goes_to_the_first_declared() {
    // `header_key` is declared first but asked for after `query_key`; both by two operations
    let doc = |dialect: &str| {
        let ops = json!({
            "/a": {"get": {"operationId": "a", "security": [{"query_key": []}], "responses": {"200": {"description": "ok"}}},
                   "post": {"operationId": "b", "security": [{"header_key": []}], "responses": {"200": {"description": "ok"}}}},
            "/c": {"get": {"operationId": "c", "security": [{"query_key": []}], "responses": {"200": {"description": "ok"}}},
                   "put": {"operationId": "d", "security": [{"header_key": []}], "responses": {"200": {"description": "ok"}}},
                   "delete": {"operationId": "e", "security": [{"basic": []}], "responses": {"200": {"description": "ok"}}}}
        });
        let schemes = json!({
            "header_key": {"type": "apiKey", "in": "header", "name": "X-Key"},
            "basic": {"type": "http", "scheme": "basic"},
            "query_key": {"type": "apiKey", "in": "query", "name": "key"}
        });
        if dialect == "3" {
            json!({"openapi": "3.0.3", "info": {"title": "Tie", "version": "1"},
                   "servers": [{"url": "https://api.example.com"}],
                   "components": {"securitySchemes": schemes}, "paths": ops})
        } else {
            let mut schemes = schemes;
            schemes["basic"] = json!({"type": "basic"});
            json!({"swagger": "2.0", "info": {"title": "Tie", "version": "1"}, "host": "api.example.com",
                   "schemes": ["https"], "securityDefinitions": schemes, "paths": ops})
        }
    };
    for dialect in ["3", "2"] {
        let text = doc(dialect).to_string();
        let (d, warnings, _) = import(&text, &Options::default()).unwrap();
        assert_eq!(d.auth["type"], "api_key_header", "{dialect}: {}", d.auth);
        let w = warnings.iter().find(|w| w.pointer == "/security").unwrap();
        assert!(w.reason.contains("uses `header_key`, which 2 of 5"), "{}", w.reason);
        assert!(
            w.reason
                .contains("ties with `query_key` and comes first in the document's order"),
            "{}",
            w.reason
        );
        // swapping the names: now `query_key` (the X-Key header) is declared first and
        // asked for second, and is still the one chosen
        let flipped = text
            .replace("header_key", "tmp_key")
            .replace("query_key", "header_key")
            .replace("tmp_key", "query_key");
        let (d, warnings, _) = import(&flipped, &Options::default()).unwrap();
        assert_eq!(d.auth["type"], "api_key_header", "{dialect}: {}", d.auth);
        let w = warnings.iter().find(|w| w.pointer == "/security").unwrap();
        assert!(
            w.reason.contains("uses `query_key`") && w.reason.contains("ties with `header_key`"),
            "{}",
            w.reason
        );
    }
}
