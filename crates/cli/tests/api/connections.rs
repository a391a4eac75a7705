//! Connections of every service type: create, list, read, patch, delete; write-only secrets
//! checked by opening what the store holds with the key the server used.

use chatterfly_store::{Store, aad};
use chatterfly_testkit::server::{Options, random_key};
use chatterfly_vault::{ExposeSecret, Key, KeyRing};

use super::*;

async fn server_with_key(db: Db) -> (TestServer, String) {
    let key = random_key();
    let s = TestServer::start_with(
        BIN,
        db,
        Options {
            env: vec![("INTEGRATION_ENCRYPTION_KEY".into(), key.clone())],
            ..Options::default()
        },
    )
    .await;
    (s, key)
}

/// The secrets stored for a connection, opened as the server would.
async fn stored_secrets(s: &TestServer, key: &str, slug: &str) -> Option<Value> {
    let store = Store::connect(&s.db.url).await.unwrap();
    let ws = store.workspace_by_slug("default").await.unwrap().unwrap();
    let rec = store.get_connection(&ws.id, slug).await.unwrap().unwrap();
    let ring = KeyRing::new(Key::parse(key).unwrap(), vec![]);
    let sealed = rec.auth_sealed?;
    let plain = ring.open_string(&sealed, &aad::connection_auth(&rec.id)).unwrap();
    store.close().await;
    Some(serde_json::from_str(plain.expose_secret()).unwrap())
}

const BASE: &str = "/api/workspaces/default/connections";

fn http(slug: &str, auth: Value) -> Value {
    json!({"name": "HTTP API", "slug": slug, "service_type": "http", "base_url": "https://api.example.com/v1",
        "auth": auth,
        "operations": [{"name": "get_issue", "method": "GET", "path": "/repos/{{owner}}/{{repo}}/issues/{{number}}",
            "description": "Get one issue",
            "input_schema": {"type": "object", "required": ["owner"], "properties": {
                "owner": {"type": "string"}, "repo": {"type": "string"}, "number": {"type": "integer"}}}}]})
}

db_tests! {
    async fn every_service_type_and_auth_shape(db: Db) {
        let (s, key) = server_with_key(db).await;
        let (private_key, _) = super::accounts::rsa_key_pair("rsa");
        let sa = json!({"type": "service_account", "client_email": "bot@p.iam.gserviceaccount.com", "private_key": private_key});
        let cases = [
            (http("h_none", json!({"type": "none"})), json!({"type": "none"}), None),
            (http("h_header", json!({"type": "api_key_header", "header": "X-Api-Key", "key": "k1"})),
                json!({"type": "api_key_header", "header": "X-Api-Key", "key_set": true}), Some(json!({"key": "k1"}))),
            (http("h_query", json!({"type": "api_key_query", "param": "api_key", "key": "k2"})),
                json!({"type": "api_key_query", "param": "api_key", "key_set": true}), Some(json!({"key": "k2"}))),
            (http("h_bearer", json!({"type": "bearer", "token": "t3"})),
                json!({"type": "bearer", "token_set": true}), Some(json!({"token": "t3"}))),
            (http("h_basic", json!({"type": "basic", "username": "u4", "password": "p4"})),
                json!({"type": "basic", "username_set": true, "password_set": true}), Some(json!({"username": "u4", "password": "p4"}))),
            (json!({"name": "Spec", "slug": "spec", "service_type": "openapi", "base_url": "https://petstore.example.com",
                "auth": {"type": "bearer", "token": "t5"}, "operations": []}),
                json!({"type": "bearer", "token_set": true}), Some(json!({"token": "t5"}))),
            (json!({"name": "MCP", "slug": "mcp", "service_type": "mcp", "base_url": "https://mcp.example.com/mcp",
                "auth": {"type": "bearer", "token": "t6"}, "transport": "streamable_http",
                "operations": [{"name": "get-roots-list", "description": "roots", "input_schema": {"type": "object"}}]}),
                json!({"type": "bearer", "token_set": true}), Some(json!({"token": "t6"}))),
            (json!({"name": "Mail", "slug": "mail", "service_type": "gmail",
                "auth": {"type": "service_account", "subject": "ops@example.com", "service_account_json": sa}}),
                json!({"type": "service_account", "subject": "ops@example.com", "service_account_json_set": true}), Some(json!({"service_account_json": sa.to_string()}))),
            (json!({"name": "My mail", "slug": "mymail", "service_type": "gmail", "auth": {"type": "oauth"}, "fulfillment": "caller"}),
                json!({"type": "oauth"}), None),
            (json!({"name": "Bot", "slug": "bot", "service_type": "telegram", "auth": {"type": "bot_token", "token": "123:ABC"}}),
                json!({"type": "bot_token", "token_set": true}), Some(json!({"token": "123:ABC"}))),
        ];
        for (body, auth, secrets) in &cases {
            let slug = body["slug"].as_str().unwrap();
            let (status, c) = s.call(Method::POST, BASE, Some(body.clone())).await;
            assert_eq!(status, 201, "{slug}: {c}");
            assert_eq!(&c["auth"], auth, "{slug}");
            let (status, got) = s.call(Method::GET, &format!("{BASE}/{slug}"), None).await;
            assert_eq!(status, 200);
            assert_eq!(&got["auth"], auth, "{slug}");
            assert_eq!(got["operations"].as_array().unwrap().len() as i64, got["operation_count"].as_i64().unwrap());
            assert_eq!(&stored_secrets(&s, &key, slug).await, secrets, "{slug}");
        }
        let (_, gmail) = s.call(Method::GET, &format!("{BASE}/mail"), None).await;
        assert_eq!(gmail["base_url"], "https://gmail.googleapis.com");
        let names: Vec<_> = gmail["operations"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["send_email", "list_messages", "get_message"]);
        let (_, mcp) = s.call(Method::GET, &format!("{BASE}/mcp"), None).await;
        assert_eq!(mcp["operations"][0]["name"], "get-roots-list");
        assert_eq!(mcp["operations"][0]["method"], Value::Null);
        let (_, h) = s.call(Method::GET, &format!("{BASE}/h_basic"), None).await;
        assert_eq!(h["operations"][0]["path"], "/repos/{{owner}}/{{repo}}/issues/{{number}}");
        assert_eq!(h["operations"][0]["input_schema"]["required"], json!(["owner"]));

        let (status, list) = s.call(Method::GET, BASE, None).await;
        assert_eq!(status, 200);
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), cases.len());
        assert!(list.iter().all(|c| c.get("operations").is_none() && c["operation_count"].is_i64()));
    }

    async fn secrets_are_write_only_and_blank_keeps(db: Db) {
        let (s, key) = server_with_key(db).await;
        let (status, _) = s.call(Method::POST, BASE, Some(http("api", json!({"type": "basic", "username": "u", "password": "p"})))).await;
        assert_eq!(status, 201);
        // rename and edit without auth on the same host: secrets kept
        let (_, before) = s.call(Method::GET, &format!("{BASE}/api"), None).await;
        let same_host = format!("{}/v2", before["base_url"].as_str().unwrap().trim_end_matches('/'));
        let (status, c) = s.call(Method::PATCH, &format!("{BASE}/api"), Some(json!({"name": "Renamed", "base_url": same_host}))).await;
        assert_eq!(status, 200, "{c}");
        assert_eq!(c["name"], "Renamed");
        assert_eq!(stored_secrets(&s, &key, "api").await, Some(json!({"username": "u", "password": "p"})));
        // another host: the stored credentials do not follow unless given again
        let (status, p) = s.call(Method::PATCH, &format!("{BASE}/api"), Some(json!({"base_url": "https://attacker.example.net"}))).await;
        assert_eq!((status, p["errors"][0]["pointer"].as_str()), (422, Some("/auth")), "{p}");
        let (status, p) = s.call(Method::PATCH, &format!("{BASE}/api"),
            Some(json!({"base_url": "https://attacker.example.net", "auth": {"type": "basic", "username": "", "password": "p9"}}))).await;
        assert_eq!(status, 422, "a partial edit keeps a stored field: {p}");
        assert_eq!(stored_secrets(&s, &key, "api").await, Some(json!({"username": "u", "password": "p"})));
        let (status, c) = s.call(Method::PATCH, &format!("{BASE}/api"),
            Some(json!({"base_url": "https://api2.example.com", "auth": {"type": "basic", "username": "u", "password": "p"}}))).await;
        assert_eq!(status, 200, "{c}");
        // blank username keeps it, new password replaces only the password
        let (status, _) = s.call(Method::PATCH, &format!("{BASE}/api"),
            Some(json!({"auth": {"type": "basic", "username": "", "password": "p2"}}))).await;
        assert_eq!(status, 200);
        assert_eq!(stored_secrets(&s, &key, "api").await, Some(json!({"username": "u", "password": "p2"})));
        // echoing a response back (`*_set`) changes nothing
        let (_, c) = s.call(Method::GET, &format!("{BASE}/api"), None).await;
        let (status, _) = s.call(Method::PATCH, &format!("{BASE}/api"), Some(json!({"auth": c["auth"]}))).await;
        assert_eq!(status, 200);
        assert_eq!(stored_secrets(&s, &key, "api").await, Some(json!({"username": "u", "password": "p2"})));
        // a new auth type needs its secrets
        let (status, p) = s.call(Method::PATCH, &format!("{BASE}/api"), Some(json!({"auth": {"type": "bearer"}}))).await;
        assert_eq!((status, p["errors"][0]["pointer"].as_str()), (422, Some("/auth/token")), "{p}");
        let (status, c) = s.call(Method::PATCH, &format!("{BASE}/api"), Some(json!({"auth": {"type": "bearer", "token": "tk"}}))).await;
        assert_eq!((status, &c["auth"]), (200, &json!({"type": "bearer", "token_set": true})));
        assert_eq!(stored_secrets(&s, &key, "api").await, Some(json!({"token": "tk"})));
        // switching to caller fulfillment drops the stored secret
        let (status, c) = s.call(Method::PATCH, &format!("{BASE}/api"), Some(json!({"fulfillment": "caller"}))).await;
        assert_eq!(status, 200, "{c}");
        assert_eq!(c["auth"], json!({"type": "bearer", "token_set": false}));
        assert_eq!(stored_secrets(&s, &key, "api").await, None);
        // and back to static needs the token again
        let (status, _) = s.call(Method::PATCH, &format!("{BASE}/api"), Some(json!({"fulfillment": "static"}))).await;
        assert_eq!(status, 422);
    }

    async fn fulfillment_rules(db: Db) {
        let (s, _key) = server_with_key(db).await;
        let mut body = http("caller_api", json!({"type": "bearer", "token": "should-not-store"}));
        body["fulfillment"] = json!("caller");
        let (status, p) = s.call(Method::POST, BASE, Some(body.clone())).await;
        assert_eq!((status, p["errors"][0]["pointer"].as_str()), (422, Some("/auth/token")));
        body["auth"] = json!({"type": "bearer"});
        let (status, c) = s.call(Method::POST, BASE, Some(body.clone())).await;
        assert_eq!(status, 201, "{c}");
        assert_eq!(c["fulfillment"], "caller");

        body["slug"] = json!("participant_api");
        body["fulfillment"] = json!("participant");
        let (status, p) = s.call(Method::POST, BASE, Some(body.clone())).await;
        assert_eq!((status, p["errors"][0]["pointer"].as_str()), (422, Some("/participant_role")));
        body["participant_role"] = json!("customer");
        // a role the workspace does not have is refused at the field
        let (status, p) = s.call(Method::POST, BASE, Some(body.clone())).await;
        assert_eq!((status, p["errors"][0]["pointer"].as_str()), (422, Some("/participant_role")), "{p}");
        let (status, _) = s.call(Method::POST, "/api/workspaces/default/participant-roles", Some(json!({"name": "customer"}))).await;
        assert_eq!(status, 201);
        let (status, c) = s.call(Method::POST, BASE, Some(body.clone())).await;
        assert_eq!((status, c["participant_role"].as_str()), (201, Some("customer")));
        let (status, c) = s.call(Method::PATCH, &format!("{BASE}/participant_api"), Some(json!({"fulfillment": "caller", "participant_role": null}))).await;
        assert_eq!((status, &c["participant_role"]), (200, &Value::Null), "{c}");
        let (status, _) = s.call(Method::PATCH, &format!("{BASE}/participant_api"), Some(json!({"participant_role": "customer"}))).await;
        assert_eq!(status, 422, "participant_role without participant fulfillment");
    }

    async fn slugs_names_and_operations_are_validated(db: Db) {
        let (s, _key) = server_with_key(db).await;
        let (status, _) = s.call(Method::POST, BASE, Some(http("github", json!({"type": "none"})))).await;
        assert_eq!(status, 201);
        let (status, p) = s.call(Method::POST, BASE, Some(http("github", json!({"type": "none"})))).await;
        assert_eq!((status, p["code"].as_str()), (409, Some("slug_taken")));
        assert!(p["detail"].as_str().unwrap().contains("`github`"));

        for (slug, ok) in [("GitHub", false), ("9lives", false), ("has-dash", false), ("a", true), ("x_1", true)] {
            let (status, p) = s.call(Method::POST, BASE, Some(http(slug, json!({"type": "none"})))).await;
            assert_eq!(status == 201, ok, "{slug}: {p}");
            if !ok {
                assert_eq!(p["errors"][0]["pointer"], "/slug");
            }
        }
        let mut bad = http("bad_ops", json!({"type": "none"}));
        bad["operations"] = json!([
            {"name": "ok", "method": "GET", "path": "/x"},
            {"name": "ok", "method": "GET", "path": "/y"},
            {"name": "bad name!", "method": "FETCH", "path": "no-slash"},
            {"name": "tmpl", "method": "GET", "path": "/u/{{id}}"}
        ]);
        let (status, p) = s.call(Method::POST, BASE, Some(bad)).await;
        assert_eq!(status, 422);
        let pointers: Vec<_> = p["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap().to_owned()).collect();
        assert_eq!(pointers, ["/operations/1/name", "/operations/2/name", "/operations/2/method", "/operations/2/path", "/operations/3/input_schema/properties"]);

        // rename moves the tools; the old slug is gone; a taken slug conflicts
        let (status, _) = s.call(Method::POST, BASE, Some(http("other", json!({"type": "none"})))).await;
        assert_eq!(status, 201);
        let (status, p) = s.call(Method::PATCH, &format!("{BASE}/other"), Some(json!({"slug": "github"}))).await;
        assert_eq!((status, p["code"].as_str()), (409, Some("slug_taken")));
        let (status, c) = s.call(Method::PATCH, &format!("{BASE}/other"), Some(json!({"slug": "renamed", "operations": []}))).await;
        assert_eq!((status, c["slug"].as_str(), c["operation_count"].as_i64()), (200, Some("renamed"), Some(0)));
        let (status, _) = s.call(Method::GET, &format!("{BASE}/other"), None).await;
        assert_eq!(status, 404);
        let (status, p) = s.call(Method::PATCH, &format!("{BASE}/renamed"), Some(json!({"service_type": "mcp"}))).await;
        assert_eq!((status, p["errors"][0]["pointer"].as_str()), (422, Some("/service_type")));

        let (status, _) = s.call(Method::DELETE, &format!("{BASE}/renamed"), None).await;
        assert_eq!(status, 204);
        let (status, p) = s.call(Method::DELETE, &format!("{BASE}/renamed"), None).await;
        assert_eq!((status, p["code"].as_str()), (404, Some("not_found")));
    }

    async fn a_large_api_round_trips(db: Db) {
        let (s, _key) = server_with_key(db).await;
        let ops: Vec<Value> = (0..1500).map(|i| json!({"name": format!("op_{i}"), "method": "POST", "path": format!("/things/{i}/{{{{id}}}}"),
            "description": "x".repeat(200),
            "input_schema": {"type": "object", "properties": {"id": {"type": "string"}, "body": {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}}}}}})).collect();
        let mut body = http("big", json!({"type": "none"}));
        body["operations"] = json!(ops);
        let (status, c) = s.call(Method::POST, BASE, Some(body)).await;
        assert_eq!(status, 201, "{c}");
        let (_, c) = s.call(Method::GET, &format!("{BASE}/big"), None).await;
        assert_eq!(c["operation_count"], 1500);
        assert_eq!(c["operations"][1499]["name"], "op_1499");
    }
}
