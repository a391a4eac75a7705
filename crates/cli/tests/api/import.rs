//! OpenAPI import through the API: httpbin's own Swagger document imported, saved and its
//! operations called against httpbin; every way of sending a document; refusals that say
//! where; who may import.

use chatterfly_testkit::httpbin_url;
use chatterfly_testkit::server::test_client;

use super::*;

const IMPORT: &str = "/api/workspaces/default/connections/import/openapi";
const CONN: &str = "/api/workspaces/default/connections";

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

db_tests! {
    async fn httpbins_own_description_is_imported_saved_and_called(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let base = httpbin_url();
        let spec = test_client().get(format!("{base}/spec.json")).send().await.unwrap().text().await.unwrap();
        // counted independently: every path × method of the document
        let doc: Value = serde_json::from_str(&spec).unwrap();
        let pairs: usize = doc["paths"].as_object().unwrap().values()
            .map(|item| ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
                .iter().filter(|m| item.get(**m).is_some()).count())
            .sum();
        assert!(pairs > 70, "{pairs}");

        let (st, _, body) = s.raw(Method::POST, &format!("{IMPORT}?slug=httpbin&name=httpbin"), Some("application/json"), spec.clone().into_bytes()).await;
        assert_eq!(st, 200, "{body}");
        let imported = json_of(&body);
        assert_eq!(imported["summary"]["operations"], pairs);
        assert_eq!(imported["summary"]["version"], "2.0");
        let mut draft = imported["draft"].clone();
        assert_eq!(draft["operations"].as_array().unwrap().len(), pairs);
        assert_eq!((draft["slug"].as_str(), draft["service_type"].as_str()), (Some("httpbin"), Some("openapi")));
        assert_eq!(draft["base_url"], "https://httpbin.org", "from host and schemes");
        assert_eq!(draft["source"]["document"], spec);
        // nothing was saved
        assert_eq!(s.call(Method::GET, CONN, None).await.1, json!([]));

        // the user points it at the local httpbin, describes the form `POST /post` takes (the
        // document gives it no parameters), and saves the draft
        draft["base_url"] = json!(base);
        let post = draft["operations"].as_array_mut().unwrap().iter_mut().find(|o| o["name"] == "post_post").unwrap();
        post["input_schema"] = json!({"type": "object", "properties": {"title": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}});
        post["request"] = json!({"content_type": "application/x-www-form-urlencoded", "arguments": {"title": {"in": "body"}, "tags": {"in": "body"}}});
        let (st, created) = s.call(Method::POST, CONN, Some(draft)).await;
        assert_eq!(st, 201, "{created}");
        assert_eq!(created["operation_count"], pairs);
        assert_eq!(created["source"]["size"], spec.len());
        assert_eq!(created["source"]["type"], "openapi");
        let (st, _, kept) = s.raw(Method::GET, &format!("{CONN}/httpbin/source"), None, Vec::new()).await;
        assert_eq!((st, kept.as_str()), (200, spec.as_str()), "the source document is kept as imported");

        // a plain GET, a path parameter, a header parameter, a path parameter that needs encoding
        let (st, v) = invoke(&s, "httpbin.get_get", json!({})).await;
        assert_eq!((st, v["output"]["status"].as_u64()), (200, Some(200)), "{v}");
        assert!(v["output"]["body"]["url"].as_str().unwrap().ends_with("/get"), "{v}");
        let (_, v) = invoke(&s, "httpbin.get_status_codes", json!({"codes": 418})).await;
        assert_eq!(v["output"]["status"], 418, "{v}");
        let (_, v) = invoke(&s, "httpbin.get_cache", json!({"If-None-Match": "\"abc\""})).await;
        assert_eq!(v["output"]["status"], 304, "the header argument reached httpbin: {v}");
        let (_, v) = invoke(&s, "httpbin.get_cache", json!({})).await;
        assert_eq!(v["output"]["status"], 200, "{v}");
        let (_, v) = invoke(&s, "httpbin.post_anything_anything", json!({"anything": "a b/c"})).await;
        assert_eq!(v["output"]["status"], 200, "{v}");
        // (httpbin echoes the path with `%2F` decoded; the encoding itself is unit-tested)
        assert!(v["output"]["body"]["url"].as_str().unwrap().ends_with("/anything/a%20b/c"), "{v}");
        // the operation the user edited before saving: a form body, echoed by httpbin
        let (_, v) = invoke(&s, "httpbin.post_post", json!({"title": "a b&c", "tags": ["x", "y"]})).await;
        assert_eq!(v["output"]["status"], 200, "{v}");
        assert_eq!(v["output"]["body"]["form"], json!({"title": "a b&c", "tags": ["x", "y"]}), "{v}");
        assert_eq!(v["output"]["body"]["headers"]["Content-Type"], "application/x-www-form-urlencoded", "{v}");
        // query arguments
        let (_, v) = invoke(&s, "httpbin.get_drip", json!({"numbytes": 3, "duration": 0, "delay": 0})).await;
        assert_eq!(v["output"]["status"], 200, "{v}");
        assert_eq!(v["output"]["body"], "***", "{v}");
        // arguments are validated against the imported schema first
        let (st, v) = invoke(&s, "httpbin.get_drip", json!({"numbytes": "three"})).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("invalid_arguments")), "{v}");

        // the document declares no auth; the admin adds basic auth to the saved connection
        let (_, v) = invoke(&s, "httpbin.get_basic-auth_user_passwd", json!({"user": "u1", "passwd": "p1"})).await;
        assert_eq!(v["output"]["status"], 401, "{v}");
        let (st, c) = s.call(Method::PATCH, &format!("{CONN}/httpbin"), Some(json!({"auth": {"type": "basic", "username": "u1", "password": "p1"}}))).await;
        assert_eq!(st, 200, "{c}");
        assert_eq!(c["source"]["size"], spec.len(), "an edit keeps the source");
        let (_, v) = invoke(&s, "httpbin.get_basic-auth_user_passwd", json!({"user": "u1", "passwd": "p1"})).await;
        assert_eq!((v["output"]["status"].as_u64(), &v["output"]["body"]["authenticated"]), (Some(200), &json!(true)), "{v}");
    }

    async fn githubs_description_imports_saves_and_lists(db: Db) {
        // 13 MB, 1,223 operations: through the import endpoint, created as drafted, every
        // tool listed, one of them called (against httpbin standing in for api.github.com)
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let path = chatterfly_testkit::specs_dir().join("@octokit/openapi/generated/api.github.com.json");
        let text = std::fs::read_to_string(path).unwrap();
        let (st, _, body) = s.raw(Method::POST, &format!("{IMPORT}?slug=github"), Some("application/json"), text.into_bytes()).await;
        assert_eq!(st, 200, "{}", &body[..body.len().min(2000)]);
        let mut imported = json_of(&body);
        assert_eq!(imported["summary"]["operations"], 1223);
        let draft = &mut imported["draft"];
        assert_eq!(draft["base_url"], "https://api.github.com");
        draft["base_url"] = json!(httpbin_url());
        let (st, created) = s.call(Method::POST, CONN, Some(draft.clone())).await;
        assert_eq!(st, 201, "{}", created.to_string().chars().take(2000).collect::<String>());
        assert_eq!(created["operation_count"], 1223);
        let (st, tools) = s.call(Method::GET, "/api/workspaces/default/tools", None).await;
        assert_eq!(st, 200);
        let listed = tools["connections"].as_array().unwrap().iter()
            .filter(|t| t["name"].as_str().unwrap().starts_with("github.")).count();
        assert_eq!(listed, 1223);
        // `GET /` (meta/root): httpbin answers its index page
        let (st, v) = invoke(&s, "github.meta_root", json!({})).await;
        assert_eq!((st, v["output"]["status"].as_u64()), (200, Some(200)), "{v}");
        // a header parameter and a query parameter of a real GitHub operation
        let issues = draft["operations"].as_array().unwrap().iter().find(|o| o["name"] == "issues_list-for-repo").unwrap();
        assert_eq!(issues["path"], "/repos/{{owner}}/{{repo}}/issues");
        assert_eq!(issues["request"]["arguments"]["per_page"], json!({"in": "query"}));
        assert_eq!(issues["input_schema"]["required"], json!(["owner", "repo"]));
    }

    async fn operations_without_security_send_no_credentials(db: Db) {
        // `security: []` in a document becomes `request.credentials: false`: nothing is sent,
        // and a `caller` connection does not ask the caller for credentials
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let ops = json!([
            {"name": "public", "method": "GET", "path": "/headers", "request": {"credentials": false}},
            {"name": "private", "method": "GET", "path": "/headers"}
        ]);
        for (slug, fulfillment, auth) in [
            ("st", "static", json!({"type": "bearer", "token": "static-token-123"})),
            ("ca", "caller", json!({"type": "bearer"})),
        ] {
            let body = json!({"name": slug, "slug": slug, "service_type": "openapi", "base_url": httpbin_url(),
                "fulfillment": fulfillment, "auth": auth, "operations": ops});
            let (st, c) = s.call(Method::POST, CONN, Some(body)).await;
            assert_eq!(st, 201, "{c}");
            let (st, v) = invoke(&s, &format!("{slug}.public"), json!({})).await;
            assert_eq!((st, v["output"]["status"].as_u64()), (200, Some(200)), "{v}");
            assert!(v["output"]["body"]["headers"].get("Authorization").is_none(), "{v}");
        }
        let (_, v) = invoke(&s, "st.private", json!({})).await;
        assert_eq!(v["output"]["body"]["headers"]["Authorization"], "Bearer [REDACTED]", "{v}");
        let (st, v) = invoke(&s, "ca.private", json!({})).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("credentials_required")), "{v}");
    }

    async fn documents_arrive_as_json_yaml_text_or_upload(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let yaml = "openapi: 3.0.3\ninfo: {title: Tiny API, version: '1'}\nservers: [{url: 'https://tiny.example.com'}]\n\
                    paths:\n  /ping:\n    get: {operationId: ping, responses: {'200': {description: ok}}}\n";
        for ct in ["application/yaml", "text/yaml", "text/plain", "application/x-yaml"] {
            let (st, _, body) = s.raw(Method::POST, IMPORT, Some(ct), yaml.as_bytes().to_vec()).await;
            assert_eq!(st, 200, "{ct}: {body}");
            let v = json_of(&body);
            assert_eq!(v["draft"]["slug"], "tiny_api");
            assert_eq!(v["draft"]["operations"][0]["name"], "ping");
            assert_eq!(v["summary"]["format"], "yaml");
        }
        // multipart: the file part, with name and slug parts
        let boundary = "xYzBoundary";
        let mut upload = Vec::new();
        for (name, value) in [("name", "From Upload"), ("slug", "uploaded")] {
            upload.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
        }
        upload.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"tiny.yaml\"\r\nContent-Type: application/yaml\r\n\r\n{yaml}\r\n--{boundary}--\r\n").as_bytes());
        let (st, _, body) = s.raw(Method::POST, IMPORT, Some(&format!("multipart/form-data; boundary={boundary}")), upload).await;
        assert_eq!(st, 200, "{body}");
        let v = json_of(&body);
        assert_eq!((v["draft"]["name"].as_str(), v["draft"]["slug"].as_str()), (Some("From Upload"), Some("uploaded")));
        // the draft is created as it is (a bearer-less, auth-less API)
        let (st, c) = s.call(Method::POST, CONN, Some(v["draft"].clone())).await;
        assert_eq!(st, 201, "{c}");
        assert_eq!(c["operations"][0]["name"], "ping");
        // an upload without a file part
        let empty = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"slug\"\r\n\r\nx\r\n--{boundary}--\r\n");
        let (st, _, body) = s.raw(Method::POST, IMPORT, Some(&format!("multipart/form-data; boundary={boundary}")), empty.into_bytes()).await;
        assert_eq!(st, 422, "{body}");
        // parts other than file, name and slug are refused, not ignored (found by schemathesis)
        let extra = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nx\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.yaml\"\r\n\r\n{yaml}\r\n--{boundary}--\r\n");
        let (st, _, body) = s.raw(Method::POST, IMPORT, Some(&format!("multipart/form-data; boundary={boundary}")), extra.into_bytes()).await;
        assert_eq!(st, 422, "{body}");
        assert!(body.contains("unknown part `title`"), "{body}");
        // the server's own description imports too (OpenAPI 3.1 from utoipa)
        let (_, own) = s.call(Method::GET, "/api/openapi.json", None).await;
        let (st, _, body) = s.raw(Method::POST, &format!("{IMPORT}?slug=chatterfly"), Some("application/json"), own.to_string().into_bytes()).await;
        assert_eq!(st, 200, "{body}");
        let v = json_of(&body);
        let pairs: usize = own["paths"].as_object().unwrap().values().map(|i| i.as_object().unwrap().len()).sum();
        assert_eq!(v["draft"]["operations"].as_array().unwrap().len(), pairs);
        assert_eq!(v["draft"]["auth"], json!({"type": "bearer"}));
    }

    async fn bad_documents_are_refused_with_where(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[("CHATTERFLY_MAX_SPEC_BYTES", "4096")])).await;
        let problem = |st: u16, ct: &str, body: &str| -> Value {
            assert!(ct.starts_with("application/problem+json"), "{st} {ct} {body}");
            json_of(body)
        };
        // JSON syntax error: line and column
        let (st, ct, body) = s.raw(Method::POST, IMPORT, Some("application/json"), b"{\n  \"openapi\": \"3.0.0\",\n  \"paths\": {,}\n}".to_vec()).await;
        let p = problem(st, &ct, &body);
        assert_eq!((st, p["code"].as_str(), p["line"].as_u64(), p["column"].as_u64()), (422, Some("invalid_spec"), Some(3), Some(13)), "{p}");
        // YAML syntax error
        let (st, ct, body) = s.raw(Method::POST, IMPORT, Some("application/yaml"), b"openapi: 3.0.0\npaths:\n  /a: [x\n".to_vec()).await;
        let p = problem(st, &ct, &body);
        assert_eq!((st, p["code"].as_str()), (422, Some("invalid_spec")), "{p}");
        assert!(p["line"].as_u64().is_some(), "{p}");
        // well-formed, not OpenAPI: a pointer
        let (st, ct, body) = s.raw(Method::POST, IMPORT, Some("application/json"), br#"{"openapi": "2.5", "paths": {}}"#.to_vec()).await;
        let p = problem(st, &ct, &body);
        assert_eq!((st, p["errors"][0]["pointer"].as_str()), (422, Some("/openapi")), "{p}");
        // an alias bomb, nested too deep, not UTF-8, empty
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n", p = i - 1));
        }
        for (ct, doc) in [
            ("application/yaml", bomb.into_bytes()),
            ("application/json", format!("{}{}", "[".repeat(300), "]".repeat(300)).into_bytes()),
            ("text/plain", vec![b'o', 0xff, 0xfe]),
            ("text/plain", b"   ".to_vec()),
        ] {
            let (st, rct, body) = s.raw(Method::POST, IMPORT, Some(ct), doc).await;
            let p = problem(st, &rct, &body);
            assert_eq!((st, p["code"].as_str()), (422, Some("invalid_spec")), "{p}");
        }
        // too large, wrong media type, bad slug, unknown query parameter
        let (st, ct, body) = s.raw(Method::POST, IMPORT, Some("application/yaml"), vec![b'#'; 5000]).await;
        assert_eq!((st, problem(st, &ct, &body)["code"].as_str()), (413, Some("body_too_large")));
        let (st, ct, body) = s.raw(Method::POST, IMPORT, Some("image/png"), b"x".to_vec()).await;
        assert_eq!((st, problem(st, &ct, &body)["code"].as_str()), (415, Some("unsupported_media_type")));
        let ok = b"openapi: 3.1.0\ninfo: {title: T, version: '1'}\npaths: {}\n".to_vec();
        let (st, ct, body) = s.raw(Method::POST, &format!("{IMPORT}?slug=Bad-Slug"), Some("application/yaml"), ok.clone()).await;
        assert_eq!((st, problem(st, &ct, &body)["errors"][0]["pointer"].as_str()), (422, Some("/slug")));
        let (st, _, _) = s.raw(Method::POST, &format!("{IMPORT}?nope=1"), Some("application/yaml"), ok.clone()).await;
        assert_eq!(st, 400);
        let (st, _, body) = s.raw(Method::POST, IMPORT, Some("application/yaml"), ok).await;
        assert_eq!(st, 200, "{body}");
    }

    async fn only_workspace_admins_import(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let (member_id, member) = s.user("member@example.com").await;
        let (st, _) = s.call(Method::PUT, &format!("/api/workspaces/default/members/{member_id}"), Some(json!({"role": "member"}))).await;
        assert_eq!(st, 200);
        let (_, outsider) = s.user("outsider@example.com").await;
        let doc = json!({"openapi": "3.0.0", "info": {"title": "T", "version": "1"}, "paths": {}});
        let (st, v) = s.call_as(&member, Method::POST, IMPORT, Some(doc.clone())).await;
        assert_eq!((st, v["code"].as_str()), (403, Some("forbidden")), "{v}");
        let (st, _) = s.call_as(&outsider, Method::POST, IMPORT, Some(doc.clone())).await;
        assert_eq!(st, 404, "another workspace's import route is not found");
        let (st, _) = s.call_as("", Method::POST, IMPORT, Some(doc)).await;
        assert_eq!(st, 401);
        // a connection without a source has none to show
        let (st, _) = s.call(Method::POST, CONN, Some(json!({"name": "H", "slug": "h", "service_type": "http", "base_url": "https://h.example.com"}))).await;
        assert_eq!(st, 201);
        let (st, v) = s.call(Method::GET, &format!("{CONN}/h/source"), None).await;
        assert_eq!(st, 404, "{v}");
        let (st, v) = s.call(Method::POST, CONN, Some(json!({"name": "H2", "slug": "h2", "service_type": "http", "base_url": "https://h.example.com",
            "source": {"type": "openapi", "document": "x"}}))).await;
        assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some("/source")), "{v}");
        // NUL cannot be stored as text (PostgreSQL refuses it): a clear 422, never a 500
        let (st, v) = s.call(Method::POST, CONN, Some(json!({"name": "O", "slug": "o", "service_type": "openapi", "base_url": "https://h.example.com",
            "operations": [{"name": "x", "method": "GET", "path": "/", "description": "a\u{0}b"}],
            "source": {"type": "openapi", "document": "openapi: 3.0.0\u{0}"}}))).await;
        assert_eq!(st, 422, "{v}");
        let pointers: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
        assert_eq!(pointers, ["/operations/0/description", "/source/document"], "{v}");
    }
}
