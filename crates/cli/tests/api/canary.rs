//! The canary test: secrets of every auth type, each a unique marker, go through every
//! endpoint; the marker (or its base64) must then appear nowhere: not in a response, not in
//! a log line at trace level, not in the raw SQLite file, not in any PostgreSQL row.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chatterfly_testkit::server::Options;

use super::*;

/// Every form in which a secret could leak: as is, base64 (standard and URL-safe), and a
/// Basic pair.
pub fn forms(secrets: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for s in secrets {
        out.push(s.clone());
        out.push(STANDARD.encode(s));
        out.push(URL_SAFE_NO_PAD.encode(s));
        // a substring survives re-encoding alignment: check the middle of the base64 too
        let b = STANDARD.encode(s);
        out.push(b[4..b.len() - 4].to_owned());
    }
    out
}

pub fn assert_clean(what: &str, text: &str, forms: &[String]) {
    for f in forms {
        assert!(!text.contains(f.as_str()), "{what} contains a secret form `{f}`");
    }
}

/// The server's SQLite files in `dir` (the database, its WAL) hold no form of a secret.
pub fn assert_sqlite_files_clean(dir: &std::path::Path, forms: &[String]) {
    let mut read = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("chatterfly.db") {
            let bytes = std::fs::read(&path).unwrap();
            read += bytes.len();
            assert_clean(&name, &String::from_utf8_lossy(&bytes), forms);
        }
    }
    assert!(read > 10_000, "{read} bytes of database files");
}

pub async fn postgres_dump(url: &str) -> String {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    assert!(tables.contains(&"connections".to_owned()), "{tables:?}");
    let mut dump = String::new();
    for t in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT t::text FROM \"{t}\" t")))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for r in rows {
            dump.push_str(&r.get::<String, _>(0));
            dump.push('\n');
        }
    }
    dump
}

db_tests! {
    async fn no_secret_leaks_anywhere(db: Db) {
        let s = TestServer::start_with(BIN, db, Options {
            rust_log: "trace,rmcp=trace".into(),
            env: vec![("CHATTERFLY_ALLOW_PRIVATE".into(), "127.0.0.1".into())],
        }).await;
        let run = uuid::Uuid::new_v4().simple().to_string();
        let c = |field: &str| format!("CANARY{run}{field}");
        let secrets = [c("hkey"), c("qkey"), c("bearer"), c("user"), c("pass"), c("mcp"), c("tg"), c("sa"), c("new"), c("bad"),
            c("callr"), c("echo"), c("psvc"), c("wsvc"), c("oauth"), c("tgsvc")];
        let mut forms = forms(&secrets);
        forms.push(STANDARD.encode(format!("{}:{}", c("user"), c("pass"))));

        // a real key (the key file is checked when saved), the canary in its other fields
        let (private_key, _) = super::accounts::rsa_key_pair("rsa");
        forms.extend(private_key.lines().filter(|l| l.len() == 64).map(str::to_owned));
        let sa = json!({"type": "service_account", "client_email": "bot@example.iam.gserviceaccount.com",
            "private_key": private_key, "private_key_id": c("sa"), "client_id": c("sa")});
        let conns = [
            json!({"name": "H", "slug": "h", "service_type": "http", "base_url": "https://a.example.com",
                "auth": {"type": "api_key_header", "header": "X-Key", "key": c("hkey")},
                "operations": [{"name": "op", "method": "GET", "path": "/x"}]}),
            json!({"name": "Q", "slug": "q", "service_type": "openapi", "base_url": "https://a.example.com",
                "auth": {"type": "api_key_query", "param": "k", "key": c("qkey")},
                "source": {"type": "openapi", "document": "openapi: 3.0.0\npaths: {}\n"}}),
            json!({"name": "B", "slug": "b", "service_type": "http", "base_url": "https://a.example.com",
                "auth": {"type": "bearer", "token": c("bearer")}}),
            json!({"name": "Ba", "slug": "ba", "service_type": "http", "base_url": "https://a.example.com",
                "auth": {"type": "basic", "username": c("user"), "password": c("pass")}}),
            json!({"name": "M", "slug": "m", "service_type": "mcp", "base_url": "https://mcp.example.com/mcp",
                "auth": {"type": "bearer", "token": c("mcp")}, "transport": "sse", "operations": []}),
            json!({"name": "T", "slug": "t", "service_type": "telegram", "auth": {"type": "bot_token", "token": format!("4242:{}", c("tg"))}}),
            json!({"name": "G", "slug": "g", "service_type": "gmail",
                "auth": {"type": "service_account", "subject": "a@example.com", "service_account_json": sa}}),
        ];
        let mut responses = String::new();
        let mut record = |label: &str, status: u16, body: &Value| {
            responses.push_str(&format!("{label} {status} {body}\n"));
        };
        for body in &conns {
            let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections", Some(body.clone())).await;
            assert_eq!(st, 201, "{v}");
            record("create", st, &v);
        }
        // every endpoint, reading and editing
        let admin = s.call(Method::GET, "/api/me", None).await.1["id"].as_str().unwrap().to_owned();
        let (uid, member) = s.user("m@example.com").await;
        for (method, path, body) in [
            (Method::GET, "/api/me".to_owned(), None),
            (Method::GET, "/api/health".to_owned(), None),
            (Method::GET, "/api/openapi.json".to_owned(), None),
            (Method::GET, "/api/users".to_owned(), None),
            (Method::GET, "/api/workspaces".to_owned(), None),
            (Method::GET, "/api/workspaces/default".to_owned(), None),
            (Method::GET, "/api/workspaces/default/members".to_owned(), None),
            (Method::PUT, format!("/api/workspaces/default/members/{uid}"), Some(json!({"role": "member"}))),
            (Method::POST, format!("/api/users/{admin}/tokens"), Some(json!({"name": "x"}))),
            (Method::POST, "/api/workspaces".to_owned(), Some(json!({"name": "W", "slug": "w"}))),
            (Method::GET, "/api/workspaces/default/connections".to_owned(), None),
            (Method::GET, "/api/workspaces/default/connections/q".to_owned(), None),
            (Method::GET, "/api/workspaces/default/connections/q/source".to_owned(), None),
            (Method::POST, "/api/workspaces/default/connections/import/openapi".to_owned(),
                Some(json!({"openapi": "3.0.0", "info": {"title": "T", "version": "1"}, "paths": {"/x": {"get": {}}},
                    "components": {"securitySchemes": {"k": {"type": "apiKey", "in": "query", "name": "k"}}}}))),
            (Method::PATCH, "/api/workspaces/default/connections/q".to_owned(),
                Some(json!({"source": {"type": "openapi", "document": "openapi: 3.1.0\npaths: {}\n"}}))),
            (Method::PATCH, "/api/workspaces/default/connections/ba".to_owned(),
                Some(json!({"auth": {"type": "basic", "username": "", "password": c("new")}}))),
            (Method::PATCH, "/api/workspaces/default/connections/b".to_owned(), Some(json!({"name": "B2"}))),
            (Method::PATCH, "/api/workspaces/default/connections/h".to_owned(),
                Some(json!({"auth": {"type": "api_key_header", "header": "X-Key", "key": ""}}))),
            // rejected edits that carry a secret in its proper field
            (Method::PATCH, "/api/workspaces/default/connections/b".to_owned(),
                Some(json!({"auth": {"type": "bearer", "token": format!("{}\r\nX: y", c("bad"))}}))),
            (Method::PATCH, "/api/workspaces/default/connections/ba".to_owned(),
                Some(json!({"auth": {"type": "basic", "username": format!("{}:x", c("bad")), "password": "p"}}))),
            (Method::PATCH, "/api/workspaces/default/connections/g".to_owned(),
                Some(json!({"auth": {"type": "service_account", "subject": "a@b.c", "service_account_json": c("bad")}}))),
            (Method::POST, "/api/workspaces/default/connections".to_owned(),
                Some(json!({"name": "C", "slug": "c", "service_type": "http", "base_url": "https://a.example.com",
                    "fulfillment": "caller", "auth": {"type": "bearer", "token": c("bad")}}))),
            (Method::POST, "/api/workspaces/default/connections".to_owned(),
                Some(json!({"name": "D", "slug": "b", "service_type": "http", "base_url": "https://a.example.com",
                    "auth": {"type": "bearer", "token": c("bad")}}))),
        ] {
            let (st, v) = s.call(method.clone(), &path, body).await;
            assert!(st < 500, "{method} {path}: {v}");
            record(&format!("{method} {path}"), st, &v);
        }
        // tool calls whose upstream (httpbin) echoes the credentials back
        let hb = chatterfly_testkit::httpbin_url();
        let echo_ops = json!([
            {"name": "headers", "method": "GET", "path": "/headers"},
            {"name": "get", "method": "GET", "path": "/get"},
            {"name": "anything", "method": "POST", "path": "/anything"},
            {"name": "basic", "method": "GET", "path": "/basic-auth/{{u}}/{{p}}",
                "input_schema": {"type": "object", "properties": {"u": {"type": "string"}, "p": {"type": "string"}}}},
        ]);
        for (slug, auth, fulfillment) in [
            ("eh", json!({"type": "api_key_header", "header": "X-Key", "key": c("echo")}), "static"),
            ("eq", json!({"type": "api_key_query", "param": "key", "key": c("qkey")}), "static"),
            ("eb", json!({"type": "basic", "username": c("user"), "password": c("pass")}), "static"),
            ("ec", json!({"type": "bearer"}), "caller"),
        ] {
            let body = json!({"name": slug, "slug": slug, "service_type": "http", "base_url": hb, "auth": auth,
                "fulfillment": fulfillment, "operations": echo_ops});
            let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections", Some(body)).await;
            assert_eq!(st, 201, "{v}");
        }
        let mut echoed = 0;
        for (tool, args, creds) in [
            ("eh.headers", json!({}), None),
            ("eq.get", json!({"x": 1}), None),
            ("eb.headers", json!({}), None),
            ("eb.basic", json!({"u": c("user"), "p": c("pass")}), None),
            ("ec.anything", json!({"note": "hi"}), Some(json!({"token": c("callr")}))),
            ("ec.headers", json!({}), Some(json!({"token": format!("{}\n", c("bad"))}))),
        ] {
            let mut body = json!({"arguments": args});
            if let Some(cr) = creds {
                body["credentials"] = cr;
            }
            let (st, v) = s.call(Method::POST, &format!("/api/workspaces/default/tools/{tool}/invoke"), Some(body)).await;
            assert!(st < 500, "{tool}: {v}");
            if v.to_string().contains("[REDACTED]") {
                echoed += 1;
            }
            record(&format!("invoke {tool}"), st, &v);
        }
        assert!(echoed >= 4, "the upstream did echo the credentials ({echoed} redacted outputs)");
        // service keys and OAuth client secrets, then a search that uses them
        for (method, path, body) in [
            (Method::PUT, "/api/admin/service-credentials/brave", json!({"api_key": c("psvc"), "base_url": hb})),
            (Method::PUT, "/api/admin/service-credentials/telegram", json!({"api_key": c("tgsvc")})),
            (Method::PUT, "/api/workspaces/default/services/brave", json!({"api_key": c("wsvc")})),
            (Method::PUT, "/api/workspaces/default/services/openai", json!({"api_key": format!("{}\u{0}", c("bad"))})),
            (Method::PUT, "/api/admin/oauth-providers/gmail", json!({"client_id": "cid", "client_secret": c("oauth")})),
            (Method::PUT, "/api/admin/oauth-providers/gmail", json!({"client_id": "cid2", "client_secret": ""})),
        ] {
            let (st, v) = s.call(method.clone(), path, Some(body)).await;
            assert!(st < 500, "{path}: {v}");
            record(path, st, &v);
        }
        for path in ["/api/admin/service-credentials/brave", "/api/admin/service-credentials/telegram",
            "/api/workspaces/default/services", "/api/admin/oauth-providers/gmail"] {
            let (st, v) = s.call(Method::GET, path, None).await;
            assert_eq!(st, 200, "{path}: {v}");
            record(path, st, &v);
        }
        // httpbin stands in for the search API: its 404 for /res/v1/... is an upstream error
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/tools/web_search/invoke",
            Some(json!({"arguments": {"query": "q"}}))).await;
        assert_eq!(st, 502, "{v}");
        record("web_search", st, &v);

        let (st, v) = s.call(Method::GET, "/api/workspaces/default/audit", None).await;
        assert_eq!(st, 200);
        assert!(v["events"].as_array().unwrap().len() >= 6);
        record("audit", st, &v);
        let (st, v) = s.call(Method::GET, "/api/workspaces/default/tools", None).await;
        record("tools", st, &v);

        for slug in ["h", "q", "b", "ba", "m", "t", "g"] {
            let path = format!("/api/workspaces/default/connections/{slug}");
            let (st, v) = s.call(Method::GET, &path, None).await;
            assert_eq!(st, 200);
            record(&path, st, &v);
            let (st, v) = s.call_as(&member, Method::GET, &path, None).await;
            record(&path, st, &v);
        }
        // the web UI: signed in with a session, every page and every module it loads, and
        // the session's own answers (pages are drawn from the API, checked above)
        let login = chatterfly_testkit::server::test_client()
            .post(format!("{}/api/auth/login", s.url))
            .json(&json!({"token": s.token}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        let cookie = login.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();
        responses.push_str(&login.text().await.unwrap());
        let web = chatterfly_testkit::server::test_client();
        let mut pages = String::new();
        for page in ["/", "/login", "/connections", "/connections/new", "/connections/h", "/connections/b", "/tools", "/audit",
            "/settings/workspace/services", "/admin/service-credentials", "/admin/oauth-providers", "/admin/users", "/admin/workspaces"] {
            let html = web.get(format!("{}{page}", s.url)).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
            for asset in html.split("/assets/").skip(1).filter_map(|a| a.split('"').next()) {
                let text = web.get(format!("{}/assets/{asset}", s.url)).send().await.unwrap().text().await.unwrap();
                for module in text.lines().filter_map(|l| l.split("from \"./").nth(1)).filter_map(|m| m.split('"').next()) {
                    let dir = asset.rsplit_once('/').map_or("", |(d, _)| d);
                    pages.push_str(&web.get(format!("{}/assets/{dir}/{module}", s.url)).send().await.unwrap().text().await.unwrap());
                }
                pages.push_str(&text);
            }
            pages.push_str(&html);
        }
        let session = web.get(format!("{}/api/auth/session", s.url)).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
        pages.push_str(&session);
        assert!(pages.contains("Chatterfly") && pages.contains("csrf_token") && pages.len() > 20_000, "the pages were read");
        assert_clean("the web UI's pages and modules", &pages, &forms);

        let (st, _) = s.call(Method::DELETE, "/api/workspaces/default/connections/q", None).await;
        assert_eq!(st, 204);

        assert_clean("the API responses", &responses, &forms);
        // sanity: the check can fail, the secrets did reach the server
        assert!(responses.contains("\"password_set\":true"));

        let (tdb, logs) = s.stop();
        assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "logs were captured at a verbose level");
        assert!(logs.lines().count() > 50, "{} log lines", logs.lines().count());
        assert_clean("the server logs", &logs, &forms);

        match db {
            Db::Sqlite => {
                let dir = tdb.dir.path();
                let mut seen = 0;
                for entry in std::fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().to_string();
                    if name.starts_with("chatterfly.db") {
                        let bytes = std::fs::read(&path).unwrap();
                        seen += bytes.len();
                        assert_clean(&name, &String::from_utf8_lossy(&bytes), &forms);
                    }
                }
                assert!(seen > 10_000, "read {seen} bytes of database files");
            }
            Db::Postgres => {
                let dump = postgres_dump(&tdb.url).await;
                assert!(dump.contains("cf1:"), "the dump holds sealed values");
                assert_clean("the PostgreSQL rows", &dump, &forms);
            }
        }
    }
}

/// An MCP server that answers every request with an error echoing the request's
/// Authorization header, in the body and in headers (as a careless or hostile server
/// might): `/e400/…` 400, `/e401/…` 401 with the token in `WWW-Authenticate`, `/e500/…`
/// 500. Whatever a client library logs of such an answer must not show the token.
async fn echoing_mcp_server() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
    use axum::response::IntoResponse;
    async fn echo(uri: Uri, headers: HeaderMap) -> axum::response::Response {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bare = auth.strip_prefix("Bearer ").unwrap_or(&auth).to_owned();
        let status = if uri.path().starts_with("/e401") {
            StatusCode::UNAUTHORIZED
        } else if uri.path().starts_with("/e500") {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::BAD_REQUEST
        };
        let mut resp = (status, format!("auth={auth} token={bare}")).into_response();
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&format!("token={bare}")) {
            h.insert("x-echo", v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!(
            "Bearer realm=\"mcp\", error=\"invalid_token\", error_description=\"{bare} is not valid\""
        )) {
            h.insert("www-authenticate", v);
        }
        resp
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(echo);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

async fn mcp_echo_leaks_nothing(db: Db, rust_log: &str) {
    let (base, server) = echoing_mcp_server().await;
    let mut options = local_upstreams(&[]);
    options.rust_log = rust_log.to_owned();
    let s = TestServer::start_with(BIN, db, options).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let c = |field: &str| format!("MCPCANARY{run}{field}");
    let secrets = [
        c("disc"),
        c("stored"),
        c("callr"),
        c("patched"),
        c("urlq"),
        c("urlpath"),
    ];
    let forms = forms(&secrets);
    let mut responses = String::new();
    let op = json!([{"name": "echo", "description": "echo", "input_schema": {"type": "object"}}]);
    // keys in a server URL's query and path (as hosted MCP servers give them): the MCP
    // library logs the URL whole when a session fails, to a server that fails and to one
    // that cannot be reached
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    for (slug, url) in [
        ("u1", format!("{base}/e500/mcp?key={}&v=1", c("urlq"))),
        (
            "u2",
            format!("http://127.0.0.1:{closed}/k/{}/mcp?key={}", c("urlpath"), c("urlq")),
        ),
    ] {
        let (st, v) = s
            .call(
                Method::POST,
                "/api/workspaces/default/connections",
                Some(
                    json!({"name": slug, "slug": slug, "service_type": "mcp", "base_url": url,
                    "transport": "streamable_http", "operations": op}),
                ),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        let (st, v) = invoke(&s, &format!("{slug}.echo"), json!({})).await;
        assert!((400..600).contains(&st) && st != 500, "call {slug}: {st} {v}");
        if slug == "u2" {
            assert_eq!(v["code"], "upstream_unreachable", "{v}");
        }
        responses.push_str(&format!("{v}\n"));
    }
    let mut n = 0;
    for status in ["e400", "e401", "e500"] {
        for (transport, path) in [("streamable_http", "mcp"), ("auto", "mcp"), ("sse", "sse")] {
            n += 1;
            let url = format!("{base}/{status}/{path}");
            // discovery with a token used for this request only
            let (st, v) = s
                .call(
                    Method::POST,
                    "/api/workspaces/default/connections/discover/mcp",
                    Some(json!({"url": url, "transport": transport, "auth": {"type": "bearer", "token": c("disc")}})),
                )
                .await;
            assert!(
                (400..600).contains(&st) && st != 500,
                "discover {url} {transport}: {st} {v}"
            );
            if status == "e401" {
                assert_eq!(v["code"], "upstream_unauthorized", "discover {url} {transport}: {v}");
            }
            responses.push_str(&format!("{v}\n"));
            // a stored token: create (no discovery: the operations are given), call, refresh
            let slug = format!("s{n}");
            let (st, v) = s
                .call(
                    Method::POST,
                    "/api/workspaces/default/connections",
                    Some(json!({
                "name": slug, "slug": slug, "service_type": "mcp", "base_url": url,
                "transport": if transport == "auto" { "streamable_http" } else { transport },
                "auth": {"type": "bearer", "token": c("stored")}, "operations": op})),
                )
                .await;
            assert_eq!(st, 201, "{v}");
            let (st, v) = invoke(&s, &format!("{slug}.echo"), json!({})).await;
            assert!((400..600).contains(&st) && st != 500, "call {url}: {st} {v}");
            if status == "e401" {
                assert_eq!(v["code"], "upstream_unauthorized", "call {url} {transport}: {v}");
            }
            responses.push_str(&format!("{v}\n"));
            let (st, v) = s
                .call(
                    Method::POST,
                    &format!("/api/workspaces/default/connections/{slug}/refresh"),
                    None,
                )
                .await;
            assert!((400..600).contains(&st) && st != 500, "refresh {url}: {st} {v}");
            responses.push_str(&format!("{v}\n"));
            // a token edited in, then used
            let (st, v) = s
                .call(
                    Method::PATCH,
                    &format!("/api/workspaces/default/connections/{slug}"),
                    Some(json!({"auth": {"type": "bearer", "token": c("patched")}})),
                )
                .await;
            assert_eq!(st, 200, "{v}");
            let (st, v) = invoke(&s, &format!("{slug}.echo"), json!({})).await;
            assert!(st >= 400, "{v}");
            responses.push_str(&format!("{v}\n"));
            // a caller's token, passed with the call
            let slug = format!("c{n}");
            let (st, v) = s
                .call(
                    Method::POST,
                    "/api/workspaces/default/connections",
                    Some(json!({
                "name": slug, "slug": slug, "service_type": "mcp", "base_url": url, "fulfillment": "caller",
                "transport": if transport == "auto" { "streamable_http" } else { transport },
                "auth": {"type": "bearer"}, "operations": op})),
                )
                .await;
            assert_eq!(st, 201, "{v}");
            let (st, v) = s
                .call(
                    Method::POST,
                    &format!("/api/workspaces/default/tools/{slug}.echo/invoke"),
                    Some(json!({"arguments": {}, "credentials": {"token": c("callr")}})),
                )
                .await;
            assert!((400..600).contains(&st) && st != 500, "caller call {url}: {st} {v}");
            responses.push_str(&format!("{v}\n"));
        }
    }
    assert_clean("the API responses", &responses, &forms);
    // errors speak of the server's answer, not of the client library's types
    for needle in [
        "rmcp",
        "::",
        "WorkerTransport",
        "GuardedHttp",
        "UnexpectedServerResponse",
    ] {
        assert!(!responses.contains(needle), "a response shows `{needle}`:\n{responses}");
    }
    // the errors reached the server and were written about: the check can fail
    let (_db, logs) = s.stop();
    server.abort();
    assert_clean("the server logs", &logs, &forms);
    assert!(
        logs.contains("[REDACTED]"),
        "the echoed tokens were logged, redacted:\n{logs}"
    );
}

db_tests! {
    async fn mcp_servers_echoing_tokens_leak_nothing_at_the_default_level(db: Db) {
        mcp_echo_leaks_nothing(db, "info,sqlx=warn").await;
    }

    async fn mcp_servers_echoing_tokens_leak_nothing_at_trace_level(db: Db) {
        // every dependency at trace, rmcp named so that its lines are on too
        mcp_echo_leaks_nothing(db, "trace,rmcp=trace").await;
    }
}
