//! Tool calls through `invoke` against httpbin, a real server no one here wrote: every auth
//! type checked by httpbin's own endpoints, redirects, redaction, limits, SSRF refusals,
//! resolution errors and the audit log.

use chatterfly_testkit::httpbin_url;

use super::*;

const CONN: &str = "/api/workspaces/default/connections";

fn op(name: &str, method: &str, path: &str, props: &[&str]) -> Value {
    let properties: serde_json::Map<String, Value> = props
        .iter()
        .map(|p| ((*p).to_owned(), json!({"type": ["string", "integer"]})))
        .collect();
    json!({"name": name, "method": method, "path": path, "input_schema": {"type": "object", "properties": properties}})
}

fn httpbin_ops() -> Value {
    json!([
        op("basic", "GET", "/basic-auth/{{user}}/{{passwd}}", &["user", "passwd"]),
        op("bearer", "GET", "/bearer", &[]),
        op("headers", "GET", "/headers", &[]),
        op("get", "GET", "/get", &[]),
        op("post", "POST", "/anything/{{id}}", &["id"]),
        op("redirect", "GET", "/redirect-to?url={{url}}", &["url"]),
        op("delay", "GET", "/delay/{{s}}", &["s"]),
        op("bytes", "GET", "/bytes/{{n}}", &["n"]),
        op("status", "GET", "/status/{{code}}", &["code"]),
        {"name": "typed", "method": "GET", "path": "/get", "input_schema": {"type": "object", "required": ["count"],
            "properties": {"count": {"type": "integer", "minimum": 1}}, "additionalProperties": false}},
    ])
}

async fn connection(s: &TestServer, slug: &str, auth: Value, fulfillment: &str) {
    let role = (fulfillment == "participant").then_some("customer");
    if role.is_some() {
        let (st, _) = s
            .call(
                Method::POST,
                "/api/workspaces/default/participant-roles",
                Some(json!({"name": "customer"})),
            )
            .await;
        assert!(st == 201 || st == 409, "{st}");
    }
    let body = json!({"name": slug, "slug": slug, "service_type": "http", "base_url": httpbin_url(),
        "auth": auth, "fulfillment": fulfillment, "participant_role": role, "operations": httpbin_ops()});
    let (st, c) = s.call(Method::POST, CONN, Some(body)).await;
    assert_eq!(st, 201, "{c}");
}

db_tests! {
    async fn compressed_answers_are_decoded_before_redaction(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let secret = "zip-secret-7f3a9c";
        let body = json!({"name": "z", "slug": "z", "service_type": "http", "base_url": httpbin_url(),
            "auth": {"type": "bearer", "token": secret},
            "operations": [op("gzip", "GET", "/gzip", &[]), op("deflate", "GET", "/deflate", &[]), op("brotli", "GET", "/brotli", &[]),
                op("zstd", "GET", "/response-headers?Content-Encoding=zstd&echo={{e}}", &["e"])]});
        let (st, c) = s.call(Method::POST, CONN, Some(body)).await;
        assert_eq!(st, 201, "{c}");
        // httpbin echoes the request's headers, compressed: decoded, the token is redacted
        for (tool, flag) in [("z.gzip", "gzipped"), ("z.deflate", "deflated"), ("z.brotli", "brotli")] {
            let (st, v) = invoke(&s, tool, json!({})).await;
            assert_eq!(st, 200, "{tool}: {v}");
            assert_eq!(v["output"]["body"][flag], true, "{tool}: decoded JSON: {v}");
            assert_eq!(v["output"]["body"]["headers"]["Authorization"], "Bearer [REDACTED]", "{tool}: {v}");
            assert!(!v.to_string().contains(secret) && v["output"]["body"].get("base64").is_none(), "{tool}: {v}");
        }
        // an encoding that is not decoded is withheld, not passed on undecoded
        let (st, v) = invoke(&s, "z.zstd", json!({"e": "x"})).await;
        assert_eq!(st, 502, "{v}");
        assert_eq!(v["code"], "upstream_encoding", "{v}");
        assert!(!s.output().contains(secret));
    }

    async fn every_auth_type_reaches_httpbin(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        connection(&s, "hb_basic", json!({"type": "basic", "username": "alice-user", "password": "s3cret-pass"}), "static").await;
        connection(&s, "hb_bearer", json!({"type": "bearer", "token": "tok-abcdef-123"}), "static").await;
        connection(&s, "hb_header", json!({"type": "api_key_header", "header": "X-Api-Key", "key": "hdr-key-98765"}), "static").await;
        connection(&s, "hb_query", json!({"type": "api_key_query", "param": "api_key", "key": "qry-key-55555"}), "static").await;
        connection(&s, "hb_none", json!({"type": "none"}), "static").await;

        let (st, v) = invoke(&s, "hb_basic.basic", json!({"user": "alice-user", "passwd": "s3cret-pass"})).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["output"]["status"], 200, "{v}");
        assert_eq!(v["output"]["body"]["authenticated"], true);
        assert!(v["duration_ms"].is_u64());
        let (_, v) = invoke(&s, "hb_basic.basic", json!({"user": "alice-user", "passwd": "other"})).await;
        assert_eq!(v["output"]["status"], 401, "the wrong pair is refused by httpbin: {v}");

        let (_, v) = invoke(&s, "hb_bearer.bearer", json!({})).await;
        assert_eq!((v["output"]["status"].as_u64(), &v["output"]["body"]["authenticated"]), (Some(200), &json!(true)), "{v}");
        assert_eq!(v["output"]["body"]["token"], "[REDACTED]");
        let (_, v) = invoke(&s, "hb_none.bearer", json!({})).await;
        assert_eq!(v["output"]["status"], 401, "no auth, no bearer: {v}");

        let (_, v) = invoke(&s, "hb_header.headers", json!({})).await;
        assert_eq!(v["output"]["body"]["headers"]["X-Api-Key"], "[REDACTED]", "{v}");
        let (_, v) = invoke(&s, "hb_query.get", json!({"q": "x y"})).await;
        assert_eq!(v["output"]["body"]["args"]["api_key"], "[REDACTED]", "{v}");
        assert_eq!(v["output"]["body"]["args"]["q"], "x y");
        assert!(!v.to_string().contains("qry-key-55555"));

        // unused arguments go to a JSON body for POST; the path value stays one segment
        // (httpbin echoes its URL with %2F decoded, so `/` is checked in the unit tests)
        let (_, v) = invoke(&s, "hb_none.post", json!({"id": "a?b#c", "title": "hello", "n": 3})).await;
        assert_eq!(v["output"]["body"]["json"], json!({"title": "hello", "n": 3}), "{v}");
        assert!(v["output"]["body"]["url"].as_str().unwrap().ends_with("/anything/a%3Fb%23c"), "{v}");
        assert_eq!(v["output"]["body"]["args"], json!({}), "nothing leaked into the query: {v}");

        // an upstream error status is an output, not a failure
        let (st, v) = invoke(&s, "hb_none.status", json!({"code": 418})).await;
        assert_eq!((st, v["output"]["status"].as_u64()), (200, Some(418)));

        let body = s.output();
        for secret in ["alice-user", "s3cret-pass", "tok-abcdef-123", "hdr-key-98765", "qry-key-55555"] {
            assert!(!body.contains(secret), "{secret} in the server log");
        }
    }

    async fn caller_credentials_are_per_call(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        connection(&s, "mine", json!({"type": "bearer"}), "caller").await;
        let url = "/api/workspaces/default/tools/mine.bearer/invoke";
        let (st, p) = s.call(Method::POST, url, Some(json!({"arguments": {}}))).await;
        assert_eq!((st, p["code"].as_str()), (422, Some("credentials_required")), "{p}");
        assert!(p["detail"].as_str().unwrap().contains("\"token\""), "{p}");
        let (st, v) = s.call(Method::POST, url, Some(json!({"arguments": {}, "credentials": {"token": "caller-token-777"}}))).await;
        assert_eq!((st, v["output"]["status"].as_u64()), (200, Some(200)), "{v}");
        assert_eq!(v["output"]["body"]["token"], "[REDACTED]");
        let (st, p) = s.call(Method::POST, url, Some(json!({"arguments": {}, "credentials": {"key": "x"}}))).await;
        assert_eq!((st, p["code"].as_str()), (422, Some("invalid_credentials")), "{p}");
        // a token with outer spaces (HTTP drops them: the upstream would echo another
        // value), or longer than a stored secret may be
        for token in [" caller-token-888".to_owned(), "caller-token-888 ".to_owned(), "t".repeat(16 * 1024 + 1)] {
            let (st, p) = s.call(Method::POST, url, Some(json!({"arguments": {}, "credentials": {"token": token}}))).await;
            assert_eq!((st, p["code"].as_str()), (422, Some("invalid_credentials")), "{p}");
        }
        // never stored
        let (_, c) = s.call(Method::GET, &format!("{CONN}/mine"), None).await;
        assert_eq!(c["auth"]["token_set"], false);
        assert!(!s.output().contains("caller-token-777"));

        connection(&s, "theirs", json!({"type": "bearer"}), "participant").await;
        let (_, p) = s.call(Method::POST, &format!("{CONN}/../tools/theirs.bearer/invoke").replace("/connections/..", ""), Some(json!({"arguments": {}}))).await;
        assert_eq!(p["code"], "credentials_required", "{p}");
    }

    async fn redirects_keep_or_drop_authorization(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        connection(&s, "hb", json!({"type": "bearer", "token": "tok-redirect-1"}), "static").await;
        // same origin: Authorization travels (and comes back redacted)
        let (_, v) = invoke(&s, "hb.redirect", json!({"url": "/headers"})).await;
        assert_eq!(v["output"]["body"]["headers"]["Authorization"], "Bearer [REDACTED]", "{v}");
        // another origin (localhost instead of 127.0.0.1): dropped
        let port = url::Url::parse(&httpbin_url()).unwrap().port().unwrap();
        let (_, v) = invoke(&s, "hb.redirect", json!({"url": format!("http://localhost:{port}/headers")})).await;
        assert_eq!(v["output"]["status"], 200, "{v}");
        assert!(v["output"]["body"]["headers"].get("Authorization").is_none(), "{v}");
        // a redirect to a private address is refused
        let (st, p) = invoke(&s, "hb.redirect", json!({"url": "http://169.254.169.254/latest/meta-data/"})).await;
        assert_eq!((st, p["code"].as_str()), (403, Some("ssrf_blocked")), "{p}");
    }

    async fn limits_are_clean_errors(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[
            ("CHATTERFLY_EGRESS_TIMEOUT_MS", "1000"),
            ("CHATTERFLY_EGRESS_MAX_RESPONSE_BYTES", "50000"),
        ])).await;
        connection(&s, "hb", json!({"type": "none"}), "static").await;
        let (st, p) = invoke(&s, "hb.bytes", json!({"n": 80000})).await;
        assert_eq!((st, p["code"].as_str()), (502, Some("upstream_too_large")), "{p}");
        let (st, v) = invoke(&s, "hb.bytes", json!({"n": 1000})).await;
        assert_eq!(st, 200, "{v}");
        assert!(v["output"]["body"]["base64"].is_string() || v["output"]["body"].is_string(), "{v}");
        let started = std::time::Instant::now();
        let (st, p) = invoke(&s, "hb.delay", json!({"s": 3})).await;
        assert_eq!((st, p["code"].as_str()), (504, Some("upstream_timeout")), "{p}");
        assert!(started.elapsed() < std::time::Duration::from_millis(2500), "{:?}", started.elapsed());
    }

    async fn connection_limits_within_the_operators(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[("CHATTERFLY_EGRESS_TIMEOUT_MS", "1500")])).await;
        let body = json!({"name": "hb", "slug": "hb", "service_type": "http", "base_url": httpbin_url(),
            "limits": {"timeout_ms": 300, "max_response_bytes": 2000, "max_redirects": 0}, "operations": httpbin_ops()});
        let (st, c) = s.call(Method::POST, CONN, Some(body)).await;
        assert_eq!((st, &c["limits"]), (201, &json!({"timeout_ms": 300, "max_response_bytes": 2000, "max_redirects": 0})), "{c}");
        let t = std::time::Instant::now();
        let (st, p) = invoke(&s, "hb.delay", json!({"s": 1})).await;
        assert_eq!((st, p["code"].as_str()), (504, Some("upstream_timeout")), "{p}");
        assert!(t.elapsed() < std::time::Duration::from_millis(1000), "the connection's 300 ms applied: {:?}", t.elapsed());
        let (_, p) = invoke(&s, "hb.bytes", json!({"n": 3000})).await;
        assert_eq!(p["code"], "upstream_too_large", "{p}");
        let (_, p) = invoke(&s, "hb.redirect", json!({"url": "/get"})).await;
        assert_eq!(p["code"], "too_many_redirects", "{p}");
        // asking for more than the operator allows gets the operator's 1.5 s
        let (st, c) = s.call(Method::PATCH, &format!("{CONN}/hb"), Some(json!({"limits": {"timeout_ms": 60000}}))).await;
        assert_eq!((st, &c["limits"]), (200, &json!({"timeout_ms": 60000})), "{c}");
        let t = std::time::Instant::now();
        let (_, p) = invoke(&s, "hb.delay", json!({"s": 3})).await;
        assert_eq!(p["code"], "upstream_timeout", "{p}");
        assert!(t.elapsed() < std::time::Duration::from_millis(2500), "{:?}", t.elapsed());
        // null clears; bad values are refused
        let (_, c) = s.call(Method::PATCH, &format!("{CONN}/hb"), Some(json!({"limits": null}))).await;
        assert_eq!(c["limits"], Value::Null);
        let (st, p) = s.call(Method::PATCH, &format!("{CONN}/hb"), Some(json!({"limits": {"timeout_ms": 0, "max_redirects": 99}}))).await;
        assert_eq!(st, 422, "{p}");
        assert_eq!(p["errors"].as_array().unwrap().len(), 2);
        let (st, _) = s.call(Method::PATCH, &format!("{CONN}/hb"), Some(json!({"limits": {"timeout": 5}}))).await;
        assert_eq!(st, 422);
    }

    async fn ssrf_is_refused_without_the_exception(db: Db) {
        let s = TestServer::start(BIN, db).await; // no CHATTERFLY_ALLOW_PRIVATE
        connection(&s, "local", json!({"type": "none"}), "static").await;
        let (st, p) = invoke(&s, "local.get", json!({})).await;
        assert_eq!((st, p["code"].as_str()), (403, Some("ssrf_blocked")), "{p}");
        let bases = ["http://169.254.169.254", "http://2130706433", "http://[::ffff:10.0.0.1]", "http://0x7f.1:8080",
            // refused by name, whatever this machine's resolver knows
            "http://localhost:8080", "http://api.localhost.", "http://metadata.google.internal.", "http://instance-data",
            "http://metadata"];
        for (i, base) in bases.iter().enumerate() {
            let slug = format!("t{i}");
            let body = json!({"name": "x", "slug": slug, "service_type": "http", "base_url": base,
                "operations": [op("get", "GET", "/x", &[])]});
            let (st, c) = s.call(Method::POST, CONN, Some(body)).await;
            assert_eq!(st, 201, "{c}");
            let (st, p) = invoke(&s, &format!("{slug}.get"), json!({})).await;
            assert_eq!((st, p["code"].as_str()), (403, Some("ssrf_blocked")), "{base}: {p}");
        }
    }

    async fn resolution_validation_and_audit(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        connection(&s, "hb", json!({"type": "none"}), "static").await;
        let (st, tools) = s.call(Method::GET, "/api/workspaces/default/tools", None).await;
        assert_eq!(st, 200);
        assert_eq!(tools["standard"][0]["name"], "current_time");
        let names: Vec<_> = tools["connections"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"hb.basic") && names.contains(&"hb.typed"), "{names:?}");
        assert!(tools["connections"][0]["input_schema"].is_object());

        let (st, v) = invoke(&s, "current_time", json!({})).await;
        assert_eq!(st, 200);
        assert!(v["output"]["unix_ms"].as_i64().unwrap() > 1_700_000_000_000);

        let (st, p) = invoke(&s, "hb.typed", json!({"count": "three"})).await;
        assert_eq!((st, p["code"].as_str(), p["errors"][0]["pointer"].as_str()), (422, Some("invalid_arguments"), Some("/arguments/count")), "{p}");
        let (st, p) = invoke(&s, "hb.typed", json!({})).await;
        assert_eq!((st, p["code"].as_str()), (422, Some("invalid_arguments")), "{p}");
        let (st, p) = invoke(&s, "hb.basic", json!({"user": "..", "passwd": "x"})).await;
        assert_eq!((st, p["code"].as_str()), (422, Some("invalid_arguments")), "{p}");

        for (tool, fragment) in [("nope.get", "no connection `nope`"), ("hb.nope", "has no operation `nope`"), ("Bad-Name", "not found")] {
            let (st, p) = invoke(&s, tool, json!({})).await;
            assert_eq!((st, p["code"].as_str()), (404, Some("tool_not_found")), "{tool}: {p}");
            assert!(p["detail"].as_str().unwrap().contains(fragment), "{p}");
        }
        // a renamed connection's old tools fail naming the missing slug
        let (st, _) = s.call(Method::PATCH, &format!("{CONN}/hb"), Some(json!({"slug": "hb2"}))).await;
        assert_eq!(st, 200);
        let (_, p) = invoke(&s, "hb.get", json!({})).await;
        assert!(p["detail"].as_str().unwrap().contains("`hb`"), "{p}");
        let (st, v) = invoke(&s, "hb2.get", json!({})).await;
        assert_eq!(st, 200, "{v}");

        let (st, page) = s.call(Method::GET, "/api/workspaces/default/audit?limit=3", None).await;
        assert_eq!(st, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0]["tool"], "hb2.get");
        assert_eq!(events[0]["outcome"], "ok");
        assert_eq!(events[0]["http_status"], 200);
        assert_eq!(events[1]["error_code"], "tool_not_found");
        let next = page["next_before"].as_str().unwrap();
        let (_, page2) = s.call(Method::GET, &format!("/api/workspaces/default/audit?limit=100&before={next}"), None).await;
        assert_eq!(page2["events"].as_array().unwrap().len(), 6, "{page2}");
        assert!(page2["next_before"].is_null());
        let (st, p) = s.call(Method::GET, "/api/workspaces/default/audit?limit=abc", None).await;
        assert_eq!((st, p["code"].as_str()), (400, Some("invalid_query")));
        let (_, member) = s.user("m@example.com").await;
        let uid = s.call_as(&member, Method::GET, "/api/me", None).await.1["id"].as_str().unwrap().to_owned();
        s.call(Method::PUT, &format!("/api/workspaces/default/members/{uid}"), Some(json!({"role": "member"}))).await;
        let (st, _) = s.call_as(&member, Method::GET, "/api/workspaces/default/audit", None).await;
        assert_eq!(st, 403);
        let (st, _) = s.call_as(&member, Method::POST, "/api/workspaces/default/tools/hb2.get/invoke", Some(json!({"arguments": {}}))).await;
        assert_eq!(st, 200, "members call tools");

        // who may call: the connection-tool path reads token, role and connection in one
        // query; its answers must be the same as everywhere else
        let (_, stranger) = s.user("stranger@example.com").await;
        for tool in ["hb2.get", "hb2.nope", "nope.get", "current_time"] {
            let url = format!("/api/workspaces/default/tools/{tool}/invoke");
            let (st, p) = s.call_as(&stranger, Method::POST, &url, Some(json!({"arguments": {}}))).await;
            assert_eq!((st, p["code"].as_str()), (404, Some("not_found")), "a non-member calling {tool}: {p}");
            assert!(p["detail"].as_str().unwrap().contains("workspace `default`"), "{p}");
            let (st, _) = s.call_as("cft_not-a-real-token-at-all", Method::POST, &url, Some(json!({"arguments": {}}))).await;
            assert_eq!(st, 401, "an unknown token calling {tool}");
            let (st, _) = s.call_as("", Method::POST, &url, Some(json!({"arguments": {}}))).await;
            assert_eq!(st, 401, "no token calling {tool}");
            // the token is judged before the body
            let (st, _) = s.call_as("cft_not-a-real-token-at-all", Method::POST, &url, Some(json!({"nonsense": 1}))).await;
            assert_eq!(st, 401, "an unknown token with a bad body calling {tool}");
        }
        let (st, p) = s.call(Method::POST, "/api/workspaces/ghost/tools/hb2.get/invoke", Some(json!({"arguments": {}}))).await;
        assert_eq!((st, p["code"].as_str()), (404, Some("not_found")), "{p}");
        let (st, p) = s.call(Method::POST, "/api/workspaces/default/tools/hb2.get/invoke", Some(json!({"nonsense": 1}))).await;
        assert_eq!((st, p["code"].as_str()), (422, Some("invalid_body")), "{p}");
    }
}
