//! Bad input is a 4xx problem document a person can act on, never a 500.

use chatterfly_testkit::server::Options;

use super::*;

fn is_problem(ct: &str, body: &str, status: u16, code: &str) {
    assert_eq!(ct, "application/problem+json", "{body}");
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["status"], status, "{body}");
    assert_eq!(v["code"], code, "{body}");
    assert_eq!(v["type"], format!("urn:chatterfly:problem:{code}"));
    assert!(!v["title"].as_str().unwrap().is_empty());
    assert!(!v["detail"].as_str().unwrap().is_empty());
}

const CONN: &str = "/api/workspaces/default/connections";

db_tests! {
    async fn unreadable_bodies(db: Db) {
        let s = TestServer::start_with(BIN, db, Options {
            env: vec![("CHATTERFLY_MAX_SPEC_BYTES".into(), "2000000".into()), ("CHATTERFLY_MAX_BODY_BYTES".into(), "4096".into())],
            ..Options::default()
        }).await;
        let json = Some("application/json");
        let (st, ct, b) = s.raw(Method::POST, CONN, json, b"{\"name\": \"x\",\n \"slug\": }".to_vec()).await;
        assert_eq!(st, 400);
        is_problem(&ct, &b, 400, "malformed_json");
        assert!(b.contains("line 2"), "{b}");
        let (st, ct, b) = s.raw(Method::POST, CONN, json, Vec::new()).await;
        is_problem(&ct, &b, st, "malformed_json");
        let (st, ct, b) = s.raw(Method::POST, CONN, json, b"{\"name\": \"\xff\xfe\"}".to_vec()).await;
        assert_eq!(st, 400, "{b}");
        is_problem(&ct, &b, 400, "malformed_json");
        // nesting past serde_json's recursion limit, inside a field that takes any JSON
        let deep = format!(r#"{{"name": "x", "slug": "x", "service_type": "http", "auth": {}{}}}"#, "[".repeat(2_000), "]".repeat(2_000));
        let (st, ct, b) = s.raw(Method::POST, CONN, json, deep.into_bytes()).await;
        // (`auth` is read as text first, bounded, then parsed: the field is named)
        assert_eq!(st, 422, "{b}");
        is_problem(&ct, &b, 422, "invalid_body");
        assert!(b.contains("recursion limit") && b.contains("`auth`"), "{b}");

        let (st, ct, b) = s.raw(Method::POST, CONN, Some("text/plain"), b"{}".to_vec()).await;
        is_problem(&ct, &b, st, "unsupported_media_type");
        assert_eq!(st, 415);
        let (st, ct, b) = s.raw(Method::POST, CONN, None, b"{}".to_vec()).await;
        assert_eq!(st, 415, "{ct} {b}");
        // wrong shapes point at the field
        let (st, ct, b) = s.raw(Method::POST, CONN, json, br#"{"name": "x", "slug": 5, "service_type": "http"}"#.to_vec()).await;
        is_problem(&ct, &b, st, "invalid_body");
        assert!(b.contains("`slug`"), "{b}");
        let (st, _, b) = s.raw(Method::POST, CONN, json, br#"{"name": "x", "slug": "x", "service_type": "ftp"}"#.to_vec()).await;
        assert_eq!(st, 422);
        assert!(b.contains("service_type") && b.contains("http"), "{b}");
        let (st, _, b) = s.raw(Method::POST, CONN, json, br#"{"name": "x", "slug": "x", "service_type": "http", "fulfilment": "static"}"#.to_vec()).await;
        assert_eq!(st, 422);
        assert!(b.contains("fulfilment"), "{b}");
        let (st, _, b) = s.raw(Method::POST, CONN, json, b"[1, 2]".to_vec()).await;
        assert_eq!(st, 422, "{b}");
        // a key named twice in `auth`: which one is the secret is not guessed
        let twice = br#"{"name": "x", "slug": "dup", "service_type": "http", "base_url": "https://a.io",
            "auth": {"type": "bearer", "token": "first-secret-1", "token": "second-secret-2"}}"#;
        let (st, _, b) = s.raw(Method::POST, CONN, json, twice.to_vec()).await;
        assert_eq!(st, 422, "{b}");
        assert!(b.contains("appears twice") && !b.contains("secret-"), "{b}");
        // serde reads a struct from an array (its fields in order, `[]` when all are
        // optional): found by schemathesis, an array is refused wherever an object goes
        for (method, path) in [
            (Method::POST, "/api/workspaces/default/tools/current_time/invoke"),
            (Method::PUT, "/api/workspaces/default/services/brave"),
            (Method::PUT, "/api/admin/service-credentials/brave"),
            (Method::POST, "/api/workspaces/default/connections/discover/mcp"),
        ] {
            let (st, ct, b) = s.raw(method.clone(), path, json, b" []".to_vec()).await;
            assert_eq!(st, 422, "{method} {path}: {b}");
            is_problem(&ct, &b, 422, "invalid_body");
        }
        let (st, _, b) = s.raw(Method::POST, CONN, json,
            br#"{"name": "x", "slug": "arr", "service_type": "http", "base_url": "https://a.io", "limits": [5]}"#.to_vec()).await;
        assert_eq!(st, 422, "{b}");
        assert!(b.contains("limits"), "{b}");
        let (st, _, b) = s.raw(Method::POST, CONN, json,
            br#"{"name": "x", "slug": "arr", "service_type": "openapi", "base_url": "https://a.io", "source": ["openapi", "{}"]}"#.to_vec()).await;
        assert_eq!(st, 422, "{b}");
        assert!(b.contains("source"), "{b}");
        // limits: small routes take 4 KiB, connection routes 3 × the 2 MB spec cap
        let (st, ct, b) = s.raw(Method::POST, "/api/workspaces", json, vec![b' '; 5000]).await;
        assert_eq!(st, 413);
        is_problem(&ct, &b, 413, "body_too_large");
        let big = json!({"name": "x", "slug": "x", "service_type": "http", "base_url": "https://a.io", "operations": [],
            "auth": {"type": "none"}, "participant_role": null}).to_string();
        let padded = format!("{}{}", big, " ".repeat(100_000));
        let (st, _, b) = s.raw(Method::POST, CONN, json, padded.into_bytes()).await;
        assert_eq!(st, 201, "100 KB fits the connection limit: {b}");
        // (a declared length over the connection cap is refused unread: limits.rs)
    }

    async fn unknown_routes_and_methods(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let (st, ct, b) = s.raw(Method::GET, "/api/nope", None, Vec::new()).await;
        is_problem(&ct, &b, st, "not_found");
        // outside /api a browser gets the page (404, with the browser protections)
        let (st, ct, b) = s.raw(Method::GET, "/no/such/page", None, Vec::new()).await;
        assert_eq!(st, 404);
        assert!(ct.starts_with("text/html") && b.contains("/assets/"), "{ct} {b}");
        let (st, ct, b) = s.raw(Method::POST, "/no/such/page", None, Vec::new()).await;
        is_problem(&ct, &b, st, "not_found");
        let (st, ct, b) = s.raw(Method::PUT, "/api/me", None, Vec::new()).await;
        assert_eq!(st, 405);
        is_problem(&ct, &b, st, "method_not_allowed");
        let (st, ct, b) = s.raw(Method::GET, "/api/workspaces/default/connections/%ff%fe", None, Vec::new()).await;
        assert!((400..500).contains(&st), "{st} {b}");
        let _ = ct;
    }

    async fn hostile_bodies_never_cause_a_500(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let seed = json!({"name": "API", "slug": "api", "service_type": "http", "base_url": "https://api.example.com",
            "auth": {"type": "basic", "username": "u", "password": "p"}, "fulfillment": "static",
            "operations": [{"name": "op", "method": "GET", "path": "/a/{{id}}",
                "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}}}]});
        let text = seed.to_string();
        let odd = [
            Value::Null, json!(true), json!(-1), json!(1e308), json!(""), json!("../../etc"), json!("\u{0}"),
            json!([]), json!({}), json!("a".repeat(70_000)), json!({"$ref": "#/x"}), json!([[[[[]]]]]),
        ];
        // Replace every value in the seed, one at a time, with each odd value.
        let mut cases = Vec::new();
        fn paths(v: &Value, at: String, out: &mut Vec<String>) {
            out.push(at.clone());
            match v {
                Value::Object(m) => m.iter().for_each(|(k, v)| paths(v, format!("{at}/{k}"), out)),
                Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| paths(v, format!("{at}/{i}"), out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        paths(&seed, String::new(), &mut all);
        for p in all.iter().filter(|p| !p.is_empty()) {
            for o in &odd {
                let mut v = seed.clone();
                *v.pointer_mut(p).unwrap() = o.clone();
                cases.push(v.to_string());
            }
        }
        // And truncations of the valid text.
        for cut in (1..text.len()).step_by(7) {
            cases.push(text[..cut].to_owned());
        }
        let n = cases.len();
        for (i, body) in cases.into_iter().enumerate() {
            let slug_free = body.replace("\"api\"", &format!("\"api{i}\""));
            for (method, path) in [(Method::POST, CONN.to_owned()), (Method::PATCH, format!("{CONN}/api"))] {
                let (st, ct, b) = s.raw(method.clone(), &path, Some("application/json"), slug_free.clone().into_bytes()).await;
                assert!(st < 500, "{method} {path} with {slug_free:.200}: {st} {b}");
                if st >= 400 {
                    assert_eq!(ct, "application/problem+json", "{b}");
                }
            }
            if i == 0 {
                // make sure PATCH has something to edit
                let (st, _) = s.call(Method::POST, CONN, Some(seed.clone())).await;
                assert_eq!(st, 201);
            }
        }
        assert!(n > 250, "{n} cases");
    }

    async fn control_characters_and_undecodable_paths_are_refused(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let hostile = "a\u{0001}\u{0007}\u{001b}[31m";
        let (st, v) = s.call(Method::POST, "/api/users", Some(json!({"email": "c@example.com", "name": hostile}))).await;
        assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some("/name")), "{v}");
        let (st, v) = s.call(Method::POST, "/api/workspaces", Some(json!({"name": hostile, "slug": "ctl"}))).await;
        assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some("/name")), "{v}");
        let (st, v) = s.call(Method::POST, "/api/workspaces", Some(json!({"name": "a\u{0000}b", "slug": "nul"}))).await;
        assert_eq!(st, 422, "{v}");
        let me = s.call(Method::GET, "/api/me", None).await.1["id"].as_str().unwrap().to_owned();
        let (st, v) = s.call(Method::POST, &format!("/api/users/{me}/tokens"), Some(json!({"name": "t\u{001b}[2J"}))).await;
        assert_eq!(st, 422, "{v}");
        for base_url in ["https://a.example/\u{0000}\r\n", "https://a.example/x y", "https://a.example/\u{001b}"] {
            let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections", Some(json!({
                "name": "C", "slug": "c", "service_type": "http", "base_url": base_url}))).await;
            assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some("/base_url")), "{base_url:?}: {v}");
        }
        for path in ["/api/workspaces/%ff/connections", "/api/workspaces/default/connections/%ff%fe",
            "/api/workspaces/default/tools/a.%ff/invoke", "/api/workspaces/default/audit?limit=x"] {
            let method = if path.ends_with("invoke") { Method::POST } else { Method::GET };
            let (st, ct, body) = s.raw(method, path, Some("application/json"), b"{}".to_vec()).await;
            assert_eq!((st, ct.as_str()), (400, "application/problem+json"), "{path}: {body}");
        }
    }
}
