//! The finishing pass over the OpenAPI document utoipa builds from the annotations: the
//! parts that are the same for every operation are said here once, so the document stays
//! true to the server as routes are added.
//!
//! - Every error is a problem document: `application/problem+json`, never
//!   `application/json`.
//! - The statuses the shared extractors send are listed on every operation that can meet
//!   them: 401 (every route but the public ones), 400 (unreadable path, query or body), 404
//!   (every route under `{ws}`: the workspace), and on routes with a JSON body 408, 413,
//!   415, 422 and 503; 500 everywhere.
//! - Every response has a description (OpenAPI requires one).
//! - A free-form object (`{"type": "object"}` with nothing else said) allows any property,
//!   as the server does (generators otherwise read it as an object with no properties).

use serde_json::{Map, Value, json};

/// Applies the finishing pass to the serialized document.
pub fn finish(mut doc: Value) -> Value {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, op) in item.iter_mut() {
                if !matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch") {
                    continue;
                }
                if let Some(op) = op.as_object_mut() {
                    finish_operation(path, op);
                }
            }
        }
    }
    open_free_form_objects(&mut doc);
    add_links(&mut doc);
    doc
}

/// OpenAPI links: where the answer of a create leads (clients and test generators follow
/// them). `source` is left out: only connections imported from a document have one.
type Link = (&'static str, &'static str, &'static [(&'static str, &'static str)]);

const LINKS: &[(&str, &str, &[Link])] = &[
    (
        "/api/workspaces/{ws}/connections",
        "post",
        &[
            (
                "get",
                "get_connection",
                &[("ws", "$request.path.ws"), ("slug", "$response.body#/slug")],
            ),
            (
                "edit",
                "patch_connection",
                &[("ws", "$request.path.ws"), ("slug", "$response.body#/slug")],
            ),
            (
                "delete",
                "delete_connection",
                &[("ws", "$request.path.ws"), ("slug", "$response.body#/slug")],
            ),
        ],
    ),
    (
        "/api/workspaces",
        "post",
        &[("get", "get_workspace", &[("ws", "$response.body#/slug")])],
    ),
    (
        "/api/users",
        "post",
        &[("token", "create_token", &[("id", "$response.body#/id")])],
    ),
    (
        "/api/workspaces/{ws}/invitations",
        "post",
        &[(
            "withdraw",
            "delete_invitation",
            &[("ws", "$request.path.ws"), ("id", "$response.body#/id")],
        )],
    ),
];

fn add_links(doc: &mut Value) {
    for (path, method, links) in LINKS {
        let Some(created) = doc
            .get_mut("paths")
            .and_then(|p| p.get_mut(*path))
            .and_then(|i| i.get_mut(*method))
            .and_then(|o| o.get_mut("responses"))
            .and_then(|r| r.get_mut("201"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let mut out = Map::new();
        for (name, operation_id, params) in *links {
            let parameters: Map<String, Value> = params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                .collect();
            out.insert(
                (*name).to_owned(),
                json!({"operationId": operation_id, "parameters": parameters}),
            );
        }
        created.insert("links".into(), Value::Object(out));
    }
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn finish_operation(path: &str, op: &mut Map<String, Value>) {
    let public = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|r| r.as_object().is_some_and(Map::is_empty)));
    let json_body = op
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_object)
        .is_some_and(|c| c.contains_key("application/json"));
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    for resp in responses.values_mut() {
        let Some(content) = resp.get_mut("content").and_then(Value::as_object_mut) else {
            continue;
        };
        let is_problem = content
            .get("application/json")
            .and_then(|c| c.pointer("/schema/$ref"))
            .and_then(Value::as_str)
            .is_some_and(|r| r.ends_with("/Problem"));
        if is_problem && let Some(c) = content.shift_remove("application/json") {
            content.insert("application/problem+json".into(), c);
        }
    }
    let mut add = |code: &str, description: &str| {
        responses.entry(code).or_insert_with(|| problem(description));
    };
    if !public {
        add("401", "No API token, or an unknown one (`unauthorized`)");
    }
    if !public || json_body {
        add(
            "400",
            "A path segment, the query or the body that cannot be read (`invalid_path`, `invalid_query`, `malformed_json`, `unreadable_body`)",
        );
    }
    if path.contains("{ws}") {
        add(
            "404",
            "No such workspace for the caller, or no such object in it (`not_found`)",
        );
    }
    if json_body {
        add("408", "The body did not arrive in time (`body_timeout`)");
        add("413", "The body is larger than this route takes (`body_too_large`)");
        add("415", "The body is not sent as JSON (`unsupported_media_type`)");
        add(
            "422",
            "The body has the wrong shape or breaks a rule (`invalid_body`, `validation_failed`)",
        );
        add(
            "503",
            "Too many large bodies arriving at once; try again shortly (`server_busy`)",
        );
    }
    add(
        "500",
        "A fault on the server's side (`internal`); the detail is logged, not returned",
    );
    for (code, resp) in responses.iter_mut() {
        let Some(resp) = resp.as_object_mut() else { continue };
        if resp
            .get("description")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            let reason = code
                .parse::<u16>()
                .ok()
                .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Response");
            resp.insert("description".into(), Value::String(reason.to_owned()));
        }
    }
    // keep the statuses in order for readers
    responses.sort_keys();
}

/// `{"type": "object"}` with no `properties`, `additionalProperties` or composition says
/// nothing about the keys: the server takes any, and the document says so.
fn open_free_form_objects(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let is_object = match o.get("type") {
                Some(Value::String(t)) => t == "object",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
                _ => false,
            };
            let says_nothing = [
                "properties",
                "additionalProperties",
                "patternProperties",
                "$ref",
                "allOf",
                "oneOf",
                "anyOf",
            ]
            .iter()
            .all(|k| !o.contains_key(*k));
            if is_object && says_nothing {
                o.insert("additionalProperties".into(), Value::Bool(true));
            }
            for child in o.values_mut() {
                open_free_form_objects(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(open_free_form_objects),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_statuses_descriptions_and_free_form_objects() {
        let doc = json!({"paths": {"/api/workspaces/{ws}/things": {"post": {
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {
            "201": {"content": {"application/json": {"schema": {"type": "object", "properties": {"a": {"type": "object"}}}}}},
            "409": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        }}}}});
        let out = finish(doc);
        let op = &out["paths"]["/api/workspaces/{ws}/things"]["post"];
        for code in [
            "201", "400", "401", "404", "408", "409", "413", "415", "422", "500", "503",
        ] {
            let r = &op["responses"][code];
            assert!(!r["description"].as_str().unwrap_or("").is_empty(), "{code}: {r}");
        }
        assert!(op["responses"]["409"]["content"]["application/problem+json"].is_object());
        assert!(op["responses"]["409"]["content"]["application/json"].is_null());
        assert_eq!(
            op["requestBody"]["content"]["application/json"]["schema"]["additionalProperties"],
            true
        );
        let created = &op["responses"]["201"]["content"]["application/json"]["schema"];
        assert!(
            created.get("additionalProperties").is_none(),
            "has properties: {created}"
        );
        assert_eq!(created["properties"]["a"]["additionalProperties"], true);
    }

    #[test]
    fn public_routes_get_no_401() {
        let doc =
            json!({"paths": {"/api/health": {"get": {"security": [{}], "responses": {"200": {"description": "ok"}}}}}});
        let out = finish(doc);
        assert!(out["paths"]["/api/health"]["get"]["responses"]["401"].is_null());
    }
}
