//! The web UI: sessions and CSRF over HTTP, then pages driven in real headless Chromium
//! through WebDriver, clicking and typing as a person would, against the real binary.

use chatterfly_testkit::browser::Browser;
use fantoccini::Locator;

use super::*;

const XSS: &str = "<img src=x onerror=alert(1)>";

/// A request with a cookie (and optionally a CSRF token): (status, body).
async fn with_cookie(
    s: &TestServer,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let mut req = chatterfly_testkit::server::test_client()
        .request(method, format!("{}{path}", s.url))
        .header("cookie", cookie);
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let st = resp.status().as_u16();
    (st, resp.text().await.unwrap())
}

db_tests! {
    async fn validate_checks_without_saving(db: Db) {
        let s = TestServer::start(BIN, db).await;
        const V: &str = "/api/workspaces/default/connections/validate";
        let good = json!({"name": "A", "slug": "a", "service_type": "http", "base_url": "https://a.example",
            "operations": [{"name": "get", "method": "GET", "path": "/x/{{id}}", "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}}}]});
        let (st, v) = s.call(Method::POST, V, Some(good.clone())).await;
        assert_eq!((st, &v), (200, &json!({"valid": true})));
        let (_, list) = s.call(Method::GET, "/api/workspaces/default/connections", None).await;
        assert_eq!(list, json!([]), "nothing saved");
        let mut bad = good.clone();
        bad["operations"][0]["path"] = json!("/x/{{nope}}");
        bad["base_url"] = json!("ftp://a.example");
        let (st, v) = s.call(Method::POST, V, Some(bad)).await;
        assert_eq!(st, 422, "{v}");
        let pointers: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
        assert!(pointers.contains(&"/base_url") && pointers.iter().any(|p| p.starts_with("/operations/0")), "{v}");
        let (st, _) = s.call(Method::POST, "/api/workspaces/default/connections", Some(good.clone())).await;
        assert_eq!(st, 201);
        let (st, v) = s.call(Method::POST, V, Some(good)).await;
        assert_eq!(st, 409, "{v}");
        assert_eq!(v["code"], "slug_taken");
    }

    async fn platform_admins_stay_admins_and_audit_cursors_are_checked(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let (st, u) = s.call(Method::POST, "/api/users", Some(json!({"email": "wa@example.com", "name": "WA"}))).await;
        assert_eq!(st, 201);
        let uid = u["id"].as_str().unwrap().to_owned();
        let (_, t) = s.call(Method::POST, &format!("/api/users/{uid}/tokens"), Some(json!({"name": "t"}))).await;
        let wa = t["token"].as_str().unwrap().to_owned();
        let (st, _) = s.call(Method::PUT, &format!("/api/workspaces/default/members/{uid}"), Some(json!({"role": "admin"}))).await;
        assert_eq!(st, 200);
        // the workspace admin demotes the platform admin in this workspace...
        let admin = s.call(Method::GET, "/api/me", None).await.1["id"].as_str().unwrap().to_owned();
        let (st, v) = s.call_as(&wa, Method::PUT, &format!("/api/workspaces/default/members/{admin}"), Some(json!({"role": "member"}))).await;
        assert_eq!(st, 200, "{v}");
        // ...who stays an admin of every workspace
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections", Some(json!({
            "name": "A", "slug": "a", "service_type": "http", "base_url": "https://a.example"}))).await;
        assert_eq!(st, 201, "{v}");
        let (st, _) = s.call(Method::GET, "/api/workspaces/default/audit", None).await;
        assert_eq!(st, 200);
        // audit cursors: empty is the first page, anything but an event id is refused
        let (st, v) = s.call(Method::GET, "/api/workspaces/default/audit?before=", None).await;
        assert_eq!(st, 200, "{v}");
        for bad in ["zzz", "01a236eb-cf29-71f7-85e7-c95ee471d96", "01a236ebcf2971f785e7c95ee471d960"] {
            let (st, v) = s.call(Method::GET, &format!("/api/workspaces/default/audit?before={bad}"), None).await;
            assert_eq!(st, 400, "{bad}: {v}");
            assert_eq!(v["code"], "invalid_query");
        }
        let (st, _) = s.call(Method::GET, "/api/workspaces/default/audit?before=01a236eb-cf29-71f7-85e7-c95ee471d960", None).await;
        assert_eq!(st, 200);
    }

    async fn a_burst_of_password_guesses_is_counted_before_checking(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let (st, _) = s.call(Method::POST, "/api/users", Some(json!({"email": "dave@example.com", "name": "Dave", "password": "daves real password"}))).await;
        assert_eq!(st, 201);
        // 40 guesses at once, the right one among them: at most ten are checked at all
        let mut calls = Vec::new();
        for i in 0..40 {
            let url = format!("{}/api/auth/login", s.url);
            let password = if i == 30 { "daves real password".to_owned() } else { format!("guess number {i}") };
            calls.push(tokio::spawn(async move {
                http().post(url).json(&json!({"email": "dave@example.com", "password": password})).send().await.unwrap().status().as_u16()
            }));
        }
        let mut counts = std::collections::BTreeMap::new();
        for c in calls {
            *counts.entry(c.await.unwrap()).or_insert(0) += 1;
        }
        let checked = counts.get(&401).copied().unwrap_or(0) + counts.get(&200).copied().unwrap_or(0);
        assert!(checked <= 10 && counts.get(&429).copied().unwrap_or(0) >= 30, "{counts:?}");
    }

    async fn sessions_sign_in_csrf_and_sign_out(db: Db) {
        // a known key: `chatterfly admin set-password` below opens the same database
        let key = chatterfly_testkit::server::random_key();
        let s = TestServer::start_with(BIN, db, chatterfly_testkit::server::Options {
            env: vec![("INTEGRATION_ENCRYPTION_KEY".into(), key.clone())],
            ..Default::default()
        }).await;
        // a user with a password, by the users API
        let (st, u) = s.call(Method::POST, "/api/users", Some(json!({"email": "Pat@Example.com", "name": "Pat", "password": "correct horse battery"}))).await;
        assert_eq!(st, 201, "{u}");
        let login = |body: Value| {
            let s = &s;
            async move {
                let resp = http().post(format!("{}/api/auth/login", s.url)).json(&body).send().await.unwrap();
                let st = resp.status().as_u16();
                let cookie = resp.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned());
                (st, cookie, resp.text().await.unwrap())
            }
        };
        for wrong in [json!({"token": "cft_nope"}), json!({"email": "pat@example.com", "password": "wrong password!"}),
            json!({"email": "nobody@example.com", "password": "correct horse battery"})] {
            let (st, cookie, body) = login(wrong.clone()).await;
            assert_eq!(st, 401, "{wrong}: {body}");
            assert!(body.contains("invalid_credentials") && cookie.is_none(), "{body}");
        }
        let (st, _, body) = login(json!({"token": s.token, "email": "pat@example.com"})).await;
        assert_eq!(st, 422, "{body}");
        // e-mail (any case) and password
        let (st, cookie, body) = login(json!({"email": "pat@EXAMPLE.com", "password": "correct horse battery"})).await;
        assert_eq!(st, 200, "{body}");
        assert!(cookie.is_some_and(|c| c.starts_with("chatterfly_session=")));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["user"]["email"], "pat@example.com");
        // the API token signs in too
        let (st, cookie_admin, body) = login(json!({"token": s.token})).await;
        assert_eq!(st, 200, "{body}");
        let set = cookie_admin.unwrap();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/") && !set.contains("Secure"), "{set}");
        let cookie = set.split(';').next().unwrap().to_owned();
        assert!(!cookie.contains(&s.token), "the cookie is a session, not the token");
        let (st, body) = with_cookie(&s, Method::GET, "/api/auth/session", &cookie, None, None).await;
        assert_eq!(st, 200, "{body}");
        let csrf = serde_json::from_str::<Value>(&body).unwrap()["csrf_token"].as_str().unwrap().to_owned();
        // reads need no CSRF token; changes do
        let (st, _) = with_cookie(&s, Method::GET, "/api/me", &cookie, None, None).await;
        assert_eq!(st, 200);
        let ws = json!({"name": "Made", "slug": "made"});
        let (st, body) = with_cookie(&s, Method::POST, "/api/workspaces", &cookie, None, Some(ws.clone())).await;
        assert_eq!(st, 403, "{body}");
        assert!(body.contains("csrf_failed"), "{body}");
        let (st, _) = with_cookie(&s, Method::POST, "/api/workspaces", &cookie, Some("not-the-token"), Some(ws.clone())).await;
        assert_eq!(st, 403);
        let (st, body) = with_cookie(&s, Method::POST, "/api/workspaces/default/tools/current_time/invoke", &cookie, None, Some(json!({"arguments": {}}))).await;
        assert_eq!(st, 403, "invoke with the cookie alone: {body}");
        let (st, body) = with_cookie(&s, Method::POST, "/api/workspaces", &cookie, Some(&csrf), Some(ws)).await;
        assert_eq!(st, 201, "{body}");
        let (st, body) = with_cookie(&s, Method::POST, "/api/workspaces/default/tools/current_time/invoke", &cookie, Some(&csrf), Some(json!({"arguments": {}}))).await;
        assert_eq!(st, 200, "{body}");
        // signing out needs the CSRF token, then the cookie is worthless
        let (st, _) = with_cookie(&s, Method::POST, "/api/auth/logout", &cookie, None, None).await;
        assert_eq!(st, 403);
        let (st, _) = with_cookie(&s, Method::POST, "/api/auth/logout", &cookie, Some(&csrf), None).await;
        assert_eq!(st, 204);
        for path in ["/api/me", "/api/auth/session"] {
            let (st, _) = with_cookie(&s, Method::GET, path, &cookie, None, None).await;
            assert_eq!(st, 401, "{path}");
        }
        // `chatterfly admin set-password` sets a password (and ends the user's sessions)
        let (st, c2, _) = login(json!({"email": "pat@example.com", "password": "correct horse battery"})).await;
        assert_eq!(st, 200);
        let pat_cookie = c2.unwrap().split(';').next().unwrap().to_owned();
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("--data-dir").arg(s.db.dir.path()).args(["admin", "set-password", "--user", "pat@example.com"]);
        if s.db.kind == Db::Postgres {
            cmd.arg("--database-url").arg(&s.db.url);
        }
        cmd.env("INTEGRATION_ENCRYPTION_KEY", &key);
        let out = run_with_stdin(cmd, "a brand new password\n");
        assert!(out.0, "{}", out.1);
        let (st, _) = with_cookie(&s, Method::GET, "/api/me", &pat_cookie, None, None).await;
        assert_eq!(st, 401, "the old session ended");
        let (st, _, _) = login(json!({"email": "pat@example.com", "password": "correct horse battery"})).await;
        assert_eq!(st, 401);
        let (st, _, _) = login(json!({"email": "pat@example.com", "password": "a brand new password"})).await;
        assert_eq!(st, 200);

        // a sign-in body is small and read quickly: no room to hold for anyone unknown
        let big = json!({"email": "pat@example.com", "password": "x".repeat(20_000)});
        let (st, _, body) = login(big).await;
        assert_eq!(st, 413, "{body}");
        // wrong passwords are counted per address: the 11th try within the window waits,
        // whatever the password; an API token still signs in
        for i in 0..10 {
            let (st, _, _) = login(json!({"email": "pat@example.com", "password": format!("wrong password {i}")})).await;
            assert_eq!(st, 401);
        }
        let resp = http().post(format!("{}/api/auth/login", s.url)).json(&json!({"email": "PAT@example.com", "password": "a brand new password"})).send().await.unwrap();
        assert_eq!(resp.status(), 429);
        let retry: u64 = resp.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
        assert!(retry > 0 && retry <= 900, "{retry}");
        assert!(resp.text().await.unwrap().contains("too_many_attempts"));
        let (st, _, _) = login(json!({"token": s.token})).await;
        assert_eq!(st, 200);
        // API answers are not cached and not sniffed
        let me = http().get(format!("{}/api/me", s.url)).bearer_auth(&s.token).send().await.unwrap();
        assert_eq!(me.headers().get("cache-control").unwrap(), "no-store");
        assert_eq!(me.headers().get("x-content-type-options").unwrap(), "nosniff");

        // every page is the same shell with the browser protections; assets are versioned
        for page in ["/", "/login", "/connections", "/connections/new", "/connections/some_slug", "/tools", "/admin/users", "/admin/workspaces"] {
            let resp = http().get(format!("{}{page}", s.url)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{page}");
            let h = resp.headers().clone();
            let csp = h.get("content-security-policy").unwrap().to_str().unwrap().to_owned();
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'"), "{page}: {csp}");
            assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
            assert_eq!(h.get("referrer-policy").unwrap(), "same-origin");
            assert!(h.get("content-type").unwrap().to_str().unwrap().starts_with("text/html"));
            let html = resp.text().await.unwrap();
            let asset = html.split("src=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
            let js = http().get(format!("{}{asset}", s.url)).send().await.unwrap();
            assert_eq!(js.status(), 200, "{asset}");
            assert!(js.headers().get("cache-control").unwrap().to_str().unwrap().contains("immutable"));
        }
        let stale = http().get(format!("{}/assets/0000000000000000/app.js", s.url)).send().await.unwrap();
        assert_eq!(stale.status(), 404);
    }

    async fn pages_in_chromium_sign_in_create_try_edit_and_stay_safe(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let upstream = chatterfly_testkit::httpbin_url();
        // a connection whose name and descriptions are HTML
        let (st, c) = s.call(Method::POST, "/api/workspaces/default/connections", Some(json!({
            "name": XSS, "slug": "xss", "service_type": "http", "base_url": upstream,
            "operations": [{"name": "get", "method": "GET", "path": "/get", "description": XSS}]}))).await;
        assert_eq!(st, 201, "{c}");

        let b = Browser::open().await;
        // `next` never leaves the site, however it is spelled (the browser drops tabs and
        // line breaks: `/\t/host` would be `//host`)
        for next in ["%2F%09%2F127.0.0.1%3A9%2Fpwn", "%2F%0A%2F127.0.0.1%3A9%2Fpwn", "%2F%5C127.0.0.1%3A9", "javascript%3Aalert(1)", "https%3A%2F%2F127.0.0.1%3A9%2F",
            "%2F.%2F%2F127.0.0.1%3A9%2F", "%2F..%2F%2F127.0.0.1%3A9%2F", "%2Fx%2F..%2F%2F127.0.0.1%3A9%2F", "%2F%252e%2F%2F127.0.0.1%3A9%2F", "%2F.%5C%2F127.0.0.1%3A9%2F"] {
            b.client.goto(&format!("{}/login?next={next}", s.url)).await.unwrap();
            b.fill("#token", &s.token).await;
            b.click("#token-form button[type=submit]").await;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let url = b.client.current_url().await.unwrap();
            assert_eq!(url.origin().ascii_serialization(), s.url, "{next} led to {url}");
            assert!(!b.dialog_open().await);
            b.wait("main h1").await;
            b.click("#sign-out").await;
            b.wait_path("/login").await;
        }
        b.client.goto(&format!("{}/connections", s.url)).await.unwrap();
        b.wait_path("/login").await;
        b.screenshot("login").await;
        // with the keyboard: the token, then Enter
        b.fill("#token", &format!("{}\u{E007}", s.token)).await;
        b.wait_path("/connections").await;
        let row = b.wait("tr[data-slug=xss]").await;
        let text = row.text().await.unwrap();
        assert!(text.contains(XSS), "the name shows as text: {text}");
        assert!(b.client.find_all(Locator::Css("#connections img")).await.unwrap().is_empty(), "no element was made from the name");
        assert!(!b.dialog_open().await);
        // search narrows the list
        b.fill("#search", "nothing-matches-this").await;
        b.wait_text(".count", "0 of 1").await;
        b.fill("#search", "xss").await;
        b.wait_text(".count", "1 of 1").await;
        assert!(b.client.find(Locator::Css("#platform-admin")).await.is_ok(), "a platform admin sees Platform Admin");
        b.screenshot("hub").await;

        // the wizard: an HTTP API with bearer auth against httpbin
        b.click("#new-connection").await;
        b.wait_path("/connections/new").await;
        b.fill("#name", "Echo Bin").await;
        let slug = b.wait("#slug").await.prop("value").await.unwrap().unwrap_or_default();
        assert_eq!(slug, "echo_bin", "the slug is suggested from the name");
        b.fill("#base-url", &upstream).await;
        b.wait("#auth-type").await.select_by_value("bearer").await.unwrap();
        b.fill("#auth-token", "wizard-secret-123").await;
        b.fill(".op-name", "anything").await;
        b.wait(".op-method").await.select_by_value("POST").await.unwrap();
        b.fill(".op-path", "/anything/{{id}}").await;
        b.fill(".op-input", r#"{"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}"#).await;
        // an error from the API shows next to its field: a path parameter the schema lacks
        // checked as you type through the API's own validation, the error next to its field
        b.fill(".op-path", "/anything/{{missing}}").await;
        let err = b.wait(".operation .field-error.live").await.text().await.unwrap();
        assert!(err.contains("missing"), "{err}");
        b.fill(".op-path", "/anything/{{id}}").await;
        b.wait("#looks-good").await;
        assert!(b.client.find(Locator::Css(".field-error")).await.is_err(), "the error went away");
        b.screenshot("wizard").await;
        b.click("#save").await;
        b.wait_path("/connections/echo_bin").await;

        // try it: a form built from the input schema, sent through invoke
        b.click("details[data-tool='echo_bin.anything'] summary").await;
        b.fill("form[data-tool='echo_bin.anything'] input[name=id]", "abc").await;
        b.click("form[data-tool='echo_bin.anything'] button[type=submit]").await;
        let out = b.wait_text("form[data-tool='echo_bin.anything'] .result", "/anything/abc").await;
        assert!(out.contains("HTTP 200") && out.contains("[REDACTED]"), "{out}");
        assert!(!out.contains("wizard-secret-123"));
        let dom = b.client.source().await.unwrap();
        assert!(!dom.contains("wizard-secret-123") && dom.contains("[REDACTED]"), "no secret anywhere in the page");
        b.screenshot("connection").await;

        // edit with the secret left blank: the old secret is kept and still sent
        b.client.execute("document.querySelector('section details').open = true", vec![]).await.unwrap();
        let placeholder = b.wait("#auth-token").await.attr("placeholder").await.unwrap().unwrap_or_default();
        assert!(placeholder.contains("a value is set"), "{placeholder}");
        b.fill("#edit-name", "Echo Bin Renamed").await;
        b.click("#edit-form button[type=submit]").await;
        b.wait_text("h1", "Echo Bin Renamed").await;
        let (st, v) = invoke(&s, "echo_bin.anything", json!({"id": "kept"})).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["output"]["body"]["headers"]["Authorization"], "Bearer [REDACTED]", "{v}");

        // the tool picker as agents see it, with the HTML description as text
        b.client.goto(&format!("{}/tools", s.url)).await.unwrap();
        b.wait("#standard-tools details.tool").await;
        let xss_tool = b.wait("details[data-tool='xss.get']").await.text().await.unwrap();
        assert!(xss_tool.contains(XSS), "{xss_tool}");
        assert!(b.client.find_all(Locator::Css("main img")).await.unwrap().is_empty());
        b.screenshot("tools").await;

        // delete asks for the slug
        b.client.goto(&format!("{}/connections/echo_bin", s.url)).await.unwrap();
        let delete = b.wait("#delete-connection").await;
        assert!(!delete.is_enabled().await.unwrap(), "disabled until the slug is typed");
        b.fill("#confirm-slug", "echo_bin").await;
        b.click("#delete-connection").await;
        b.wait_path("/connections").await;
        let (st, _) = s.call(Method::GET, "/api/workspaces/default/connections/echo_bin", None).await;
        assert_eq!(st, 404);
        assert!(!b.dialog_open().await, "no script ran from the names");

        // signing out makes the old cookie useless
        let cookie = b.client.get_named_cookie("chatterfly_session").await.unwrap();
        let old = format!("chatterfly_session={}", cookie.value());
        let (st, _) = with_cookie(&s, Method::GET, "/api/me", &old, None, None).await;
        assert_eq!(st, 200);
        b.click("#sign-out").await;
        b.wait_path("/login").await;
        let (st, _) = with_cookie(&s, Method::GET, "/api/me", &old, None, None).await;
        assert_eq!(st, 401);
        b.close().await;
        // no secret reached a page or the log
        assert!(!s.output().contains("wizard-secret-123"));
    }

    async fn a_members_pages_have_no_admin_controls(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let (st, u) = s.call(Method::POST, "/api/users", Some(json!({"email": "m@example.com", "name": "Mem", "password": "member password 1"}))).await;
        assert_eq!(st, 201, "{u}");
        let id = u["id"].as_str().unwrap();
        let (st, _) = s.call(Method::PUT, &format!("/api/workspaces/default/members/{id}"), Some(json!({"role": "member"}))).await;
        assert_eq!(st, 200);
        let (st, _) = s.call(Method::POST, "/api/workspaces/default/connections", Some(json!({
            "name": "Bin", "slug": "bin", "service_type": "http", "base_url": chatterfly_testkit::httpbin_url(),
            "operations": [{"name": "get", "method": "GET", "path": "/get"}]}))).await;
        assert_eq!(st, 201);
        // many connections: the hub lists a page of them at a time, search reaches all
        for i in 0..120 {
            let (st, _) = s.call(Method::POST, "/api/workspaces/default/connections", Some(json!({
                "name": format!("Many {i:03}"), "slug": format!("many_{i:03}"), "service_type": "http", "base_url": "https://a.example"}))).await;
            assert_eq!(st, 201);
        }
        let b = Browser::open_sized(420, 900).await; // a narrow screen
        b.client.goto(&format!("{}/login", s.url)).await.unwrap();
        b.fill("#email", "m@example.com").await;
        b.fill("#password", "member password 1").await;
        b.click("#password-form button[type=submit]").await;
        b.wait_path("/connections").await;
        b.wait_text(".count", "121 of 121 connections, the first 100 listed").await;
        b.wait_count("#connections tbody tr", 100).await;
        b.click("#show-more").await;
        b.wait_count("#connections tbody tr", 121).await;
        b.fill("#search", "many_119").await;
        b.wait_count("#connections tbody tr", 1).await;
        b.fill("#search", "").await;
        b.wait("tr[data-slug=bin]").await;
        for admin_only in ["#new-connection", "#platform-admin"] {
            assert!(b.client.find(Locator::Css(admin_only)).await.is_err(), "{admin_only} shown to a member");
        }
        b.screenshot("hub-member-narrow").await;
        b.client.goto(&format!("{}/connections/bin", s.url)).await.unwrap();
        b.wait("details[data-tool='bin.get']").await;
        for admin_only in ["#edit-form", "#delete-connection", "#refresh"] {
            assert!(b.client.find(Locator::Css(admin_only)).await.is_err(), "{admin_only} shown to a member");
        }
        // a member can still try a tool
        b.click("details[data-tool='bin.get'] summary").await;
        b.click("form[data-tool='bin.get'] button[type=submit]").await;
        b.wait_text("form[data-tool='bin.get'] .result", "HTTP 200").await;
        // the admin pages' API refuses them, and the page says so in words
        b.client.goto(&format!("{}/admin/users", s.url)).await.unwrap();
        let msg = b.wait(".notice.error").await.text().await.unwrap();
        assert!(!msg.contains('{'), "a human message, not JSON: {msg}");
        b.client.goto(&format!("{}/connections/new", s.url)).await.unwrap();
        b.wait_text("main", "Only workspace admins").await;
        assert!(b.client.find(Locator::Css("a[href='/audit']")).await.is_err(), "no audit link for a member");
        // AI & Services: what is in effect, but nothing to change
        b.client.goto(&format!("{}/settings/workspace/services", s.url)).await.unwrap();
        b.wait_text("tr[data-service=openai] .in-effect", "Not configured").await;
        assert!(b.client.find(Locator::Css("#save-openai")).await.is_err());
        b.client.goto(&format!("{}/audit", s.url)).await.unwrap();
        let msg = b.wait(".notice.error").await.text().await.unwrap();
        assert!(msg.contains("admin"), "{msg}");
        b.close().await;
    }
}

fn http() -> reqwest::Client {
    chatterfly_testkit::server::test_client()
}

/// Runs `chatterfly` with `input` on stdin and the server's database settings.
fn run_with_stdin(mut cmd: std::process::Command, input: &str) -> (bool, String) {
    use std::io::Write;
    cmd.env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn chatterfly");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const PETSTORE: &str = "@readme/oas-examples/3.0/yaml/petstore.yaml";

/// The operation names a document imports into (the API's own answer).
async fn imported_names(s: &TestServer, text: &str) -> Vec<(String, String)> {
    let (st, _, body) = s
        .raw(
            Method::POST,
            "/api/workspaces/default/connections/import/openapi",
            Some("text/plain"),
            text.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["draft"]["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_owned(),
                o["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The draft's secret field, whichever the document's scheme made it.
async fn fill_secret(b: &Browser) {
    for field in ["#auth-token", "#auth-key"] {
        if b.client.find(Locator::Css(field)).await.is_ok() {
            b.fill(field, "petstore-secret-123").await;
            return;
        }
    }
    panic!("the review shows no secret field");
}

async fn stored_names(s: &TestServer, slug: &str) -> Vec<String> {
    let (st, c) = s
        .call(
            Method::GET,
            &format!("/api/workspaces/default/connections/{slug}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let mut names: Vec<String> = c["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

db_tests! {
    async fn an_openapi_document_is_pasted_or_uploaded_reviewed_and_saved(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let path = chatterfly_testkit::specs_dir().join(PETSTORE);
        let text = std::fs::read_to_string(&path).unwrap();
        let all = imported_names(&s, &text).await;
        assert!(all.len() > 10, "{all:?}");
        let b = Browser::open().await;
        b.client.goto(&format!("{}/login", s.url)).await.unwrap();
        b.fill("#token", &s.token).await;
        b.click("#token-form button[type=submit]").await;
        b.wait_path("/connections").await;
        b.click("#new-connection").await;
        b.click("#kind-openapi").await;

        // paste: keep only the /pet operations, less one
        b.wait("#spec-text").await;
        b.client.execute("const t = document.querySelector('#spec-text'); t.value = arguments[0]; t.dispatchEvent(new Event('input'));", vec![json!(text)]).await.unwrap();
        b.click("#import").await;
        b.wait("#op-list .op-row").await;
        b.wait_text("#op-count", &format!("{n} of {n} operations selected", n = all.len())).await;
        b.click("#select-none").await;
        b.wait_text("#op-count", &format!("0 of {}", all.len())).await;
        b.fill("#op-search", "/pet").await;
        let pets: Vec<&(String, String)> = all.iter().filter(|(_, p)| p.contains("/pet")).collect();
        b.wait_count("#op-list .op-row", pets.len()).await;
        b.click("#select-all").await;
        b.wait_text("#op-count", &format!("{} of {}", pets.len(), all.len())).await;
        let dropped = &pets[0].0;
        b.click(&format!(".op-row[data-op='{dropped}'] input[type=checkbox]")).await;
        b.wait_text("#op-count", &format!("{} of {}", pets.len() - 1, all.len())).await;
        b.fill("#review-slug", "pets_pasted").await;
        // without the secret the API's answer shows next to the field
        b.click("#save-import").await;
        let err = b.wait("[data-pointer='/auth/token'] .field-error, [data-pointer='/auth/key'] .field-error").await.text().await.unwrap();
        assert!(err.contains("needs"), "{err}");
        fill_secret(&b).await;
        b.screenshot("openapi-review").await;
        b.click("#save-import").await;
        b.wait_path("/connections/pets_pasted").await;
        let mut want: Vec<String> = pets.iter().map(|(n, _)| n.clone()).filter(|n| n != dropped).collect();
        want.sort();
        assert_eq!(stored_names(&s, "pets_pasted").await, want, "exactly the kept operations");

        // upload: everything but one
        b.client.goto(&format!("{}/connections/new?type=openapi", s.url)).await.unwrap();
        b.wait("#spec-file").await.send_keys(path.to_str().unwrap()).await.unwrap();
        b.click("#import").await;
        b.wait("#op-list .op-row").await;
        let last = &all[all.len() - 1].0;
        b.click(&format!(".op-row[data-op='{last}'] input[type=checkbox]")).await;
        b.fill("#review-slug", "pets_uploaded").await;
        fill_secret(&b).await;
        b.click("#save-import").await;
        b.wait_path("/connections/pets_uploaded").await;
        let mut want: Vec<String> = all.iter().map(|(n, _)| n.clone()).filter(|n| n != last).collect();
        want.sort();
        assert_eq!(stored_names(&s, "pets_uploaded").await, want);

        // GitHub's description (1,200+ operations) stays usable: searchable, select/deselect all
        let github = chatterfly_testkit::specs_dir().join("@octokit/openapi/generated/api.github.com.json");
        b.client.goto(&format!("{}/connections/new?type=openapi", s.url)).await.unwrap();
        b.wait("#spec-file").await.send_keys(github.to_str().unwrap()).await.unwrap();
        b.click("#import").await;
        let count = b.wait_text_within("#op-count", "operations selected", 120).await;
        let total: usize = count.split(" of ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
        assert!(total > 1000, "{count}");
        b.fill("#op-search", "/readme").await;
        b.wait_text("#op-list", "/readme").await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await; // the list settles
        let shown = b.client.find_all(Locator::Css("#op-list .op-row")).await.unwrap().len();
        assert!((1..20).contains(&shown), "search narrows the list: {shown}");
        b.click("#select-none").await;
        b.wait_text("#op-count", &format!("{} of {total}", total - shown)).await;
        b.fill("#op-search", "").await;
        b.wait_count("#op-list .op-row", total).await;
        b.click("#select-none").await;
        b.wait_text("#op-count", &format!("0 of {total}")).await;
        b.click("#select-all").await;
        b.wait_text("#op-count", &format!("{total} of {total}")).await;
        b.screenshot("openapi-github").await;
        b.close().await;
    }

    async fn an_mcp_server_is_discovered_saved_and_called(db: Db) {
        use chatterfly_testkit::peers::{McpPeer, McpPeerKind};
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        // the MCP reference server (server-everything, npm)
        let peer = McpPeer::start(McpPeerKind::EverythingHttp);
        let b = Browser::open().await;
        sign_in(&b, &s).await;
        b.client.goto(&format!("{}/connections/new?type=mcp", s.url)).await.unwrap();
        b.fill("#mcp-url", &peer.url).await;
        b.click("#discover").await;
        b.wait("#mcp-preview details[data-tool='get-sum']").await;
        let preview = b.wait("#mcp-preview").await.text().await.unwrap();
        assert!(preview.contains("streamable_http") && preview.contains("echo"), "{preview}");
        // the schemas are shown with each tool
        b.click("#mcp-preview details[data-tool='get-sum'] summary .desc").await;
        b.wait_text("#mcp-preview details[data-tool='get-sum'] pre", "\"a\"").await;
        // keep all but one
        b.click("#mcp-preview details[data-tool='echo'] input[type=checkbox]").await;
        b.fill("#mcp-slug", "ev").await;
        b.screenshot("mcp-preview").await;
        b.click("#save-mcp").await;
        b.wait_path("/connections/ev").await;
        assert!(b.client.find(Locator::Css("details[data-tool='ev.echo']")).await.is_err(), "the deselected tool was left out");
        b.click("details[data-tool='ev.get-sum'] summary").await;
        b.fill("form[data-tool='ev.get-sum'] input[name=a]", "2").await;
        b.fill("form[data-tool='ev.get-sum'] input[name=b]", "40").await;
        b.click("form[data-tool='ev.get-sum'] button[type=submit]").await;
        let out = b.wait_text("form[data-tool='ev.get-sum'] .result", "42").await;
        assert!(out.contains("ms"), "{out}");
        // refresh reports what changed: the tool left out comes back as added
        b.click("#refresh").await;
        b.wait_text("main", "Added: echo").await;

        // an MCP tool described in HTML shows as text
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections", Some(json!({
            "name": "Hostile MCP", "slug": "hostile", "service_type": "mcp", "base_url": peer.url, "transport": "streamable_http",
            "operations": [{"name": "x_tool", "description": XSS, "input_schema": {"type": "object", "properties": {"q": {"type": "string", "description": XSS}}}}]}))).await;
        assert_eq!(st, 201, "{v}");
        for page in ["/connections/hostile", "/tools"] {
            b.client.goto(&format!("{}{page}", s.url)).await.unwrap();
            let tool = b.wait("details[data-tool='hostile.x_tool']").await.text().await.unwrap();
            assert!(tool.contains(XSS), "{page}: {tool}");
            assert!(b.client.find_all(Locator::Css("main img")).await.unwrap().is_empty(), "{page}");
            assert!(!b.dialog_open().await, "{page}");
        }
        b.close().await;
    }
}

async fn sign_in(b: &Browser, s: &TestServer) {
    b.client.goto(&format!("{}/login", s.url)).await.unwrap();
    b.fill("#token", &s.token).await;
    b.click("#token-form button[type=submit]").await;
    b.wait_path("/connections").await;
}

db_tests! {
    async fn services_platform_admin_and_audit_pages(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let b = Browser::open().await;
        sign_in(&b, &s).await;

        // a platform key, then the workspace's own: the key in effect follows
        b.client.goto(&format!("{}/settings/workspace/services", s.url)).await.unwrap();
        b.wait_text("tr[data-service=brave] .in-effect", "Not configured").await;
        b.client.goto(&format!("{}/admin/service-credentials", s.url)).await.unwrap();
        b.fill("#platform-key-brave", "platform-brave-key-1").await;
        b.click("section[data-service=brave] button[type=submit]").await;
        b.wait_text("section[data-service=brave] .meta", "A key is set").await;
        b.client.goto(&format!("{}/settings/workspace/services", s.url)).await.unwrap();
        b.wait_text("tr[data-service=brave] .in-effect", "Platform key").await;
        b.fill("#key-brave", "workspace-brave-key-2").await;
        b.click("#save-brave").await;
        b.wait_text("tr[data-service=brave] .in-effect", "Workspace key").await;
        b.screenshot("services").await;
        b.click("#remove-brave").await;
        b.wait_text("tr[data-service=brave] .in-effect", "Platform key").await;
        let dom = b.client.source().await.unwrap();
        assert!(!dom.contains("brave-key"), "keys are write-only");

        // OAuth providers: the redirect URI to copy, a client saved
        b.client.goto(&format!("{}/admin/oauth-providers", s.url)).await.unwrap();
        let redirect = b.wait("#redirect-gmail").await.prop("value").await.unwrap().unwrap_or_default();
        assert_eq!(redirect, format!("{}/api/auth/connect/gmail/callback", s.url));
        b.fill("#client-id-gmail", "gmail-client-id.apps.example").await;
        b.fill("#client-secret-gmail", "gmail-client-secret-3").await;
        b.click("section[data-provider=gmail] button[type=submit]").await;
        b.wait_text("section[data-provider=gmail] .meta", "Configured here").await;
        assert!(!b.client.source().await.unwrap().contains("gmail-client-secret-3"));
        b.screenshot("oauth-providers").await;

        // users and workspaces: create both, make the user a member
        b.client.goto(&format!("{}/admin/users", s.url)).await.unwrap();
        b.fill("#new-user-email", "newbie@example.com").await;
        b.fill("#new-user-name", "Newbie").await;
        b.click("#create-user button[type=submit]").await;
        b.wait("tr[data-user='newbie@example.com']").await;
        b.client.goto(&format!("{}/admin/workspaces", s.url)).await.unwrap();
        b.fill("#new-ws-name", "Second").await;
        b.fill("#new-ws-slug", "second").await;
        b.click("#create-workspace button[type=submit]").await;
        b.click("details[data-workspace=second] summary").await;
        let add = b.wait("details[data-workspace=second] .inline-form").await;
        add.find(Locator::Css("select")).await.unwrap().select_by_label("newbie@example.com").await.unwrap();
        add.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
        b.wait("details[data-workspace=second] tr[data-user='newbie@example.com']").await;
        let (_, members) = s.call(Method::GET, "/api/workspaces/second/members", None).await;
        assert!(members.to_string().contains("newbie@example.com"), "{members}");
        // the workspace switcher in the header: the hub of the other workspace
        b.client.goto(&format!("{}/connections", s.url)).await.unwrap();
        b.wait("#workspace-switcher option[value=second]").await.click().await.unwrap();
        b.wait_path("/connections").await;
        b.wait_text(".count", "No connections yet").await;
        let chosen = b.wait("#workspace-switcher").await.prop("value").await.unwrap().unwrap_or_default();
        assert_eq!(chosen, "second");
        b.wait("#workspace-switcher option[value=default]").await.click().await.unwrap();
        b.wait_text("#workspace-switcher", "Default").await;

        // the audit log shows calls, filtered
        let (st, _) = invoke(&s, "current_time", json!({})).await;
        assert_eq!(st, 200);
        let (st, _) = s.call(Method::POST, "/api/workspaces/default/connections", Some(json!({
            "name": "Bin", "slug": "bin", "service_type": "http", "base_url": "http://127.0.0.1:9",
            "operations": [{"name": "fail", "method": "GET", "path": "/nothing-listens-here"}]}))).await;
        assert_eq!(st, 201);
        let (st, v) = invoke(&s, "bin.fail", json!({})).await;
        assert!(st >= 500, "{st} {v}");
        b.client.goto(&format!("{}/audit", s.url)).await.unwrap();
        b.wait_text("#audit", "current_time").await;
        b.wait("#filter-outcome").await.select_by_value("error").await.unwrap();
        b.click("#apply-filters").await;
        // the filtered table replaces the whole one: wait until it has
        let mut only_errors = String::new();
        for _ in 0..150 {
            only_errors = b.wait_text("#audit tbody", "bin.fail").await;
            if !only_errors.contains("current_time") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(!only_errors.contains("current_time"), "{only_errors}");
        b.fill("#filter-tool", "nothing.here").await;
        b.click("#apply-filters").await;
        b.wait_text(".count", "No calls match").await;
        b.screenshot("audit").await;
        b.close().await;
    }
}

db_tests! {
    async fn gmail_and_telegram_are_set_up_from_the_wizard(db: Db) {
        let tg = chatterfly_testkit::peers::ScriptPeer::telegram();
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let b = Browser::open().await;
        sign_in(&b, &s).await;
        // Telegram: the bot is checked with Telegram (getMe) before anything is saved
        b.client.goto(&format!("{}/connections/new?type=telegram", s.url)).await.unwrap();
        b.fill("#base-url", &tg.url).await;
        b.fill("#auth-token", "4010001:refused-by-telegram").await;
        b.click("#save").await;
        let refused = b.wait_text("#bot-check .notice.error", "Telegram").await;
        assert!(refused.contains("401") || refused.to_lowercase().contains("unauthorized"), "{refused}");
        let (_, list) = s.call(Method::GET, "/api/workspaces/default/connections", None).await;
        assert_eq!(list, json!([]), "nothing saved with a token Telegram refuses");
        b.fill("#auth-token", "not a bot token").await;
        b.click("#check-bot").await;
        b.wait_text("#bot-check .notice.error", "@BotFather").await;
        b.fill("#auth-token", "123456:telegram-bot-secret").await;
        b.click("#check-bot").await;
        b.wait_text("#bot-name", "Test First name").await;
        assert_eq!(b.wait("#bot-name").await.attr("data-username").await.unwrap().as_deref(), Some("TestNameBot"));
        b.screenshot("telegram-wizard").await;
        b.click("#save").await;
        b.wait_path("/connections/telegram").await;
        b.wait("#tools details.tool").await;
        let page = b.client.source().await.unwrap();
        assert!(!page.contains("telegram-bot-secret") && page.contains("a value is set"), "write-only");
        let (_, c) = s.call(Method::GET, "/api/workspaces/default/connections/telegram", None).await;
        assert_eq!((c["service_type"].as_str(), c["auth"]["type"].as_str(), c["auth"]["token_set"].as_bool()), (Some("telegram"), Some("bot_token"), Some(true)), "{c}");
        assert!(c["operations"].as_array().unwrap().len() >= 2, "built-in operations: {c}");
        // try it: a message sent through the page reaches the Bot API
        b.click("details.tool[data-tool='telegram.send_message'] summary").await;
        // raw JSON (a form is built only for schemas it can render)
        if let Ok(raw) = b.client.find(Locator::Css("form.try-it[data-tool='telegram.send_message'] input[type=checkbox]")).await
            && !raw.is_selected().await.unwrap()
        {
            raw.click().await.unwrap();
        }
        b.fill("form.try-it[data-tool='telegram.send_message'] textarea.json", r#"{"chat_id": 77, "text": "sent from the page"}"#).await;
        b.click("form.try-it[data-tool='telegram.send_message'] button[type=submit]").await;
        b.wait_text("form.try-it[data-tool='telegram.send_message'] .output", "sent from the page").await;
        let history: Value = super::accounts::no_redirects().post(format!("{}/getUpdatesHistory", tg.url))
            .json(&json!({"token": "123456:telegram-bot-secret"})).send().await.unwrap().json().await.unwrap();
        assert_eq!(history["result"][0]["message"]["text"], "sent from the page", "{history}");
        // Gmail: each run's own account, so per-caller credentials
        b.client.goto(&format!("{}/connections/new?type=gmail", s.url)).await.unwrap();
        b.wait("#auth-type").await.select_by_value("oauth").await.unwrap();
        // OAuth means each person's own account: the wizard says where, and takes `caller`
        b.wait_text("#oauth-explain", "My Accounts").await;
        b.click("#save").await;
        b.wait_path("/connections/gmail").await;
        let (_, c) = s.call(Method::GET, "/api/workspaces/default/connections/gmail", None).await;
        assert_eq!((c["auth"]["type"].as_str(), c["fulfillment"].as_str()), (Some("oauth"), Some("caller")), "{c}");
        // Gmail with a service account: the key file uploaded, the subject, send only
        let (private, _) = super::accounts::rsa_key_pair("rsa");
        let key = super::accounts::key_file("robot@p.iam.gserviceaccount.com", &private, "https://oauth2.googleapis.com/token");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(&path, &key).unwrap();
        b.client.goto(&format!("{}/connections/new?type=gmail", s.url)).await.unwrap();
        b.fill("#name", "Team mail").await;
        b.fill("#slug", "team_mail").await;
        b.wait("#sa-file").await.send_keys(&path.display().to_string()).await.unwrap();
        let mut loaded = String::new();
        for _ in 0..50 {
            loaded = b.wait("#auth-service_account_json").await.prop("value").await.unwrap().unwrap_or_default();
            if loaded.contains("robot@p.iam.gserviceaccount.com") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(loaded.contains("robot@p.iam.gserviceaccount.com"), "the uploaded key file is read into the form");
        b.fill("#auth-subject", "alice@example.com").await;
        b.click("#sa-tier-read").await;
        b.click("#save").await;
        b.wait_path("/connections/team_mail").await;
        let (_, c) = s.call(Method::GET, "/api/workspaces/default/connections/team_mail", None).await;
        assert_eq!((c["auth"]["type"].as_str(), c["auth"]["subject"].as_str(), c["auth"]["tiers"].as_str()),
            (Some("service_account"), Some("alice@example.com"), Some("send")), "{c}");
        assert_eq!(c["auth"]["service_account_json_set"], true);
        assert!(!b.client.source().await.unwrap().contains("PRIVATE KEY"), "the key is never shown again");
        b.screenshot("gmail-service-account").await;
        b.close().await;
    }
}

db_tests! {
    async fn accounts_are_connected_with_tiers_in_chromium(db: Db) {
        use super::accounts::Setup;
        let setup = Setup::start(db).await;
        let s = &setup.s;
        let b = Browser::open().await;
        sign_in(&b, s).await;
        // the admin page shows the redirect URI and the overrides in effect
        b.client.goto(&format!("{}/admin/oauth-providers", s.url)).await.unwrap();
        let token_url = b.wait("#token-url-gmail").await.prop("value").await.unwrap().unwrap_or_default();
        assert_eq!(token_url, format!("{}/token", setup.oauth.url));
        let placeholder = b.wait("#token-url-github").await.attr("placeholder").await.unwrap().unwrap_or_default();
        assert_eq!(placeholder, "https://github.com/login/oauth/access_token");

        // My Accounts: choose the tiers, connect, come back to a card with the granted ones
        setup.configure(json!({"identity": {"sub": "admin-g", "email": "admin@gmail.example", "login": "admin"}})).await;
        b.client.goto(&format!("{}/settings/accounts", s.url)).await.unwrap();
        b.wait("section.account-card[data-provider=gmail] button.connect").await;
        b.click("#tier-gmail-read").await;
        b.click("section.account-card[data-provider=gmail] button.connect").await;
        b.wait_text("#account-notice", "Connected your Google (Gmail) account").await;
        b.wait_path("/settings/accounts").await;
        b.wait_text("section.account-card[data-provider=gmail] .identity", "admin@gmail.example").await;
        b.wait_count("section.account-card[data-provider=gmail] .tier", 2).await;
        let tiers: Vec<String> = {
            let mut out = Vec::new();
            for e in b.client.find_all(fantoccini::Locator::Css("section.account-card[data-provider=gmail] .tier")).await.unwrap() {
                out.push(e.attr("data-tier").await.unwrap().unwrap_or_default());
            }
            out
        };
        assert_eq!(tiers, ["send", "read"]);
        b.wait_text("section.account-card[data-provider=gmail] .status", "Connected").await;
        b.screenshot("my-accounts").await;

        // refused consent: a clear message, nothing stored
        setup.configure(json!({"deny_next": 1})).await;
        b.click("section.account-card[data-provider=github] button.connect").await;
        let notice = b.wait("#account-notice[data-code=access_denied]").await.text().await.unwrap();
        assert!(notice.to_lowercase().contains("refused"), "{notice}");
        let (_, list) = s.call(Method::GET, "/api/me/accounts", None).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

        // a personal key for a caller connection
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections",
            Some(json!({"name": "Bin", "slug": "bin", "service_type": "http", "base_url": "https://bin.example.com",
                "auth": {"type": "bearer"}, "fulfillment": "caller"}))).await;
        assert_eq!(st, 201, "{v}");
        b.client.goto(&format!("{}/settings/accounts", s.url)).await.unwrap();
        b.fill("#key-bin-token", "personal-browser-key-5521").await;
        b.click("form.personal-key[data-slug=bin] button.save-key").await;
        b.wait_text("form.personal-key[data-slug=bin] .key-state", "Saved").await;
        assert!(!b.client.source().await.unwrap().contains("personal-browser-key-5521"));
        let (_, mine) = s.call(Method::GET, "/api/workspaces/default/connections/bin/my-credentials", None).await;
        assert_eq!(mine["set"], true);

        // disconnect: revoked at the provider and gone
        b.click("section.account-card[data-provider=gmail] button.disconnect").await;
        b.click("section.account-card[data-provider=gmail] .confirm-disconnect button.confirm").await;
        b.wait_text("section.account-card[data-provider=gmail] .status", "Not connected").await;
        assert_eq!(setup.stats().await["revoked"].as_array().unwrap().len(), 1);
        let (_, list) = s.call(Method::GET, "/api/me/accounts", None).await;
        assert!(list.as_array().unwrap().is_empty(), "{list}");
        b.close().await;
    }
}

db_tests! {
    async fn participants_onboard_in_chromium(db: Db) {
        use super::accounts::Setup;
        let httpbin = std::env::var("CHATTERFLY_TEST_HTTPBIN_URL").expect("CHATTERFLY_TEST_HTTPBIN_URL");
        let setup = Setup::start(db).await;
        let s = &setup.s;
        let b = Browser::open().await;
        sign_in(&b, s).await;
        // the admin adds a role on the Participants page
        b.client.goto(&format!("{}/participants", s.url)).await.unwrap();
        b.fill("#role-name", "customer").await;
        b.fill("#role-description", "People we sell to").await;
        b.click("#add-role").await;
        b.wait("tr[data-role=customer]").await;
        // two connections collect credentials from customers: a key, and a GitHub account
        for body in [
            json!({"name": "CRM", "slug": "crm", "service_type": "http", "base_url": httpbin, "auth": {"type": "api_key_header", "header": "X-Api-Key"},
                "fulfillment": "participant", "participant_role": "customer", "operations": [{"name": "headers", "method": "GET", "path": "/headers"}]}),
            json!({"name": "GitHub", "slug": "gh", "service_type": "http", "base_url": setup.oauth.url, "auth": {"type": "bearer"},
                "fulfillment": "participant", "participant_role": "customer", "oauth_provider": "github",
                "operations": [{"name": "whoami", "method": "GET", "path": "/user"}]}),
        ] {
            let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections", Some(body)).await;
            assert_eq!(st, 201, "{v}");
        }
        let (st, carl) = s.call(Method::POST, "/api/workspaces/default/participants", Some(json!({"name": "Carl", "role": "customer"}))).await;
        assert_eq!(st, 201);
        // a participant added by typing; the link is shown once, to copy
        b.client.goto(&format!("{}/participants", s.url)).await.unwrap();
        b.fill("#participant-name", "Ada Lovelace").await;
        b.fill("#participant-email", "ada@example.com").await;
        b.click("#add-participant").await;
        let link = b.wait(".participant[data-name='Ada Lovelace'] .onboarding-url").await.prop("value").await.unwrap().unwrap_or_default();
        assert!(link.starts_with(&format!("{}/onboard/", s.url)), "{link}");
        b.wait_text(".participant[data-name='Ada Lovelace'] .link-state", "Link active").await;
        b.wait_text(".participant[data-name='Ada Lovelace'] li[data-connection=crm]", "not given").await;
        b.screenshot("participants").await;
        b.close().await;

        // the participant, in a browser of their own with no account
        setup.configure(json!({"identity": {"sub": "ada-gh", "email": "ada@example.com", "login": "ada-gh"}})).await;
        let p = Browser::open().await;
        p.client.goto(&link).await.unwrap();
        p.wait_text("main h1", "Welcome, Ada Lovelace").await;
        p.wait_text("#onboarding-intro", "Default").await;
        p.wait_path("/onboard").await;
        let page = p.client.source().await.unwrap();
        assert!(!page.contains(link.rsplit('/').next().unwrap()), "the token left the address bar and the page");
        p.fill("#key-crm-key", "ada-browser-key-31").await;
        p.click("section[data-slug=crm] button.save-key").await;
        p.wait_text("#onboarding-notice", "Saved").await;
        p.wait("section[data-slug=crm][data-set=true]").await;
        // the OAuth flow through oauth2-mock-server and back
        p.click("section[data-slug=gh] button.connect-account").await;
        p.wait_text("#onboarding-notice", "Connected").await;
        p.wait_text("section[data-slug=gh] .status", "ada-gh").await;
        assert!(!p.client.source().await.unwrap().contains("ada-browser-key-31"), "write-only");
        p.screenshot("onboarding").await;
        // refused links say why
        p.client.goto(&format!("{}/onboard/{}", s.url, "A".repeat(43))).await.unwrap();
        p.wait_text("h1#refused[data-code=onboarding_link_invalid]", "does not work").await;
        p.client.goto(&format!("{}/onboard/short", s.url)).await.unwrap();
        p.wait_text("h1#refused", "does not work").await;
        p.wait_text("main p", "wrong length").await;
        let carl_id = carl["id"].as_str().unwrap();
        let carl_link = carl["onboarding_url"].as_str().unwrap().to_owned();
        assert_eq!(s.call(Method::POST, &format!("/api/workspaces/default/participants/{carl_id}/link"), Some(json!({}))).await.0, 200);
        p.client.goto(&carl_link).await.unwrap();
        p.wait_text("h1#refused[data-code=onboarding_link_revoked]", "revoked").await;
        let expired = "E".repeat(43);
        let store = chatterfly_store::Store::connect(&s.db.url).await.unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        use sha2::Digest;
        store.issue_onboarding_link(carl_id, &hex::encode(sha2::Sha256::digest(expired.as_bytes())), now - 1).await.unwrap();
        p.client.goto(&format!("{}/onboard/{expired}", s.url)).await.unwrap();
        p.wait_text("h1#refused[data-code=onboarding_link_expired]", "expired").await;
        p.close().await;

        // back as the admin: who gave what, and calls on their behalf from the try-it panel
        let b = Browser::open().await;
        sign_in(&b, s).await;
        b.client.goto(&format!("{}/connections/crm", s.url)).await.unwrap();
        b.wait("#connection-participants tr[data-set=true]").await;
        b.wait("#connection-participants tr[data-set=false]").await;
        b.click("details.tool[data-tool='crm.headers'] summary").await;
        let ada_id = s.call(Method::GET, "/api/workspaces/default/participants", None).await.1.as_array().unwrap().iter()
            .find(|p| p["name"] == "Ada Lovelace").unwrap()["id"].as_str().unwrap().to_owned();
        b.wait("form.try-it[data-tool='crm.headers'] select.participant-select").await.select_by_value(&ada_id).await.unwrap();
        b.click("form.try-it[data-tool='crm.headers'] button[type=submit]").await;
        let out = b.wait_text("form.try-it[data-tool='crm.headers'] .output", "X-Api-Key").await;
        assert!(out.contains("\"X-Api-Key\": \"[REDACTED]\""), "httpbin got exactly Ada's key: {out}");
        b.wait("form.try-it[data-tool='crm.headers'] select.participant-select").await.select_by_value(carl_id).await.unwrap();
        b.click("form.try-it[data-tool='crm.headers'] button[type=submit]").await;
        b.wait_text("form.try-it[data-tool='crm.headers'] .notice.error", "has given no credentials").await;
        // revoke Ada's key from the connection page
        b.click(&format!("#connection-participants tr[data-participant='{ada_id}'] button")).await;
        b.client.accept_alert().await.unwrap();
        b.wait(&format!("#connection-participants tr[data-participant='{ada_id}'][data-set=false]")).await;
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/tools/crm.headers/invoke", Some(json!({"participant": ada_id}))).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("credentials_required")), "{v}");
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/tools/gh.whoami/invoke", Some(json!({"participant": ada_id}))).await;
        assert_eq!((st, v["output"]["body"]["login"].as_str()), (200, Some("ada-gh")), "{v}");
        b.close().await;
    }
}

db_tests! {
    async fn api_tokens_are_made_and_revoked_in_chromium(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let b = Browser::open().await;
        sign_in(&b, &s).await;
        b.client.goto(&format!("{}/settings/accounts", s.url)).await.unwrap();
        b.wait("#api-tokens #token-list table").await;
        b.fill("#token-name", "ci-bot").await;
        b.click("#token-form button[type=submit]").await;
        let token = b.wait_text("#new-token", "cft_").await;
        b.wait("#token-list tr[data-token] button[aria-label='Revoke ci-bot']").await;
        b.client.execute("document.getElementById('api-tokens').scrollIntoView()", vec![]).await.unwrap();
        b.screenshot("api-tokens").await;
        let (st, me) = s.call_as(&token, Method::GET, "/api/me", None).await;
        assert_eq!((st, me["email"].as_str()), (200, Some("admin@localhost")), "{me}");
        b.click("button[aria-label='Revoke ci-bot']").await;
        b.client.accept_alert().await.unwrap();
        b.wait_text("#token-shown", "revoked").await;
        // the list is drawn again without it (the notice shows as the list is fetched)
        b.wait_count("button[aria-label='Revoke ci-bot']", 0).await;
        assert_eq!(s.call_as(&token, Method::GET, "/api/me", None).await.0, 401);
        // a name with markup stays text
        b.fill("#token-name", "<img src=x onerror=alert(1)>").await;
        b.click("#token-form button[type=submit]").await;
        b.wait_text("#token-shown", "created").await;
        // its row is drawn, with the name as text
        b.wait("#token-list button[aria-label='Revoke <img src=x onerror=alert(1)>']").await;
        assert!(b.client.find_all(fantoccini::Locator::Css("#token-list img")).await.unwrap().is_empty());
        b.close().await;
    }
}
