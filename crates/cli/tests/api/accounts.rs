//! My Accounts against real third-party servers: oauth2-mock-server as Google's and GitHub's
//! authorization server (`scripts/oauth2.sh`), and a Gmail fake whose routes, parameters and
//! scopes come from Google's discovery document and which verifies service-account
//! assertions with google-auth (`scripts/gmail-fake.sh`). Both databases.

use chatterfly_testkit::peers::{ScriptPeer, gmail_python};
use chatterfly_testkit::server::{Options, random_key};

use super::*;

/// The peers of one test and the server, with both providers registered at the peers.
pub struct Setup {
    pub s: TestServer,
    pub oauth: ScriptPeer,
    pub gmail: ScriptPeer,
    pub http: reqwest::Client,
}

/// A test client of the peers and the server (tests reach loopback directly, not through
/// egress).
#[allow(clippy::disallowed_methods)]
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl Setup {
    pub async fn start(db: Db) -> Self {
        Self::start_with(db, Options::default()).await
    }

    pub async fn start_with(db: Db, mut options: Options) -> Self {
        let oauth = ScriptPeer::oauth2();
        let gmail = ScriptPeer::gmail(&oauth.url);
        let base = local_upstreams(&[]);
        options.env.extend(base.env);
        let s = TestServer::start_with(BIN, db, options).await;
        let setup = Self {
            s,
            oauth,
            gmail,
            http: no_redirects(),
        };
        setup.register(&setup.s).await;
        setup
    }

    /// Registers both providers' clients with the peers' endpoints.
    pub async fn register(&self, s: &TestServer) {
        let o = &self.oauth.url;
        for (p, api) in [("gmail", self.gmail.url.as_str()), ("github", o.as_str())] {
            let (st, v) = s
                .call(
                    Method::PUT,
                    &format!("/api/admin/oauth-providers/{p}"),
                    Some(
                        json!({"client_id": format!("{p}-client"), "client_secret": format!("{p}-secret-Zq81"),
                        "authorize_url": format!("{o}/authorize"), "token_url": format!("{o}/token"),
                        "revoke_url": format!("{o}/revoke"), "api_base_url": api}),
                    ),
                )
                .await;
            assert_eq!(st, 200, "{v}");
        }
    }

    pub async fn peer(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.oauth.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap().json().await.unwrap()
    }

    pub async fn configure(&self, body: Value) {
        self.peer(Method::POST, "/__test/config", Some(body)).await;
    }

    pub async fn stats(&self) -> Value {
        self.peer(Method::GET, "/__test/stats", None).await
    }

    pub async fn fake(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.gmail.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap().json().await.unwrap()
    }
}

/// A member of `default` signed in: (user id, API token, session cookie).
pub async fn person(s: &TestServer, email: &str) -> (String, String, String) {
    let (id, token) = s.user(email).await;
    let (st, v) = s
        .call(
            Method::PUT,
            &format!("/api/workspaces/default/members/{id}"),
            Some(json!({"role": "member"})),
        )
        .await;
    assert!(st == 200 || st == 204, "{st} {v}");
    let cookie = sign_in(s, &token).await;
    (id, token, cookie)
}

/// Signs in with an API token; the session cookie as a `Cookie` header value.
pub async fn sign_in(s: &TestServer, token: &str) -> String {
    let resp = no_redirects()
        .post(format!("{}/api/auth/login", s.url))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("chatterfly_session="))
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// Where a redirect goes.
fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The connect flow up to the provider's answer: POST connect as `token`, follow the
/// authorize URL at the peer; the callback URL it sends the browser to.
pub async fn authorize(setup: &Setup, token: &str, provider: &str, tiers: &[&str]) -> String {
    let (st, v) = setup
        .s
        .call_as(
            token,
            Method::POST,
            &format!("/api/me/accounts/{provider}/connect"),
            Some(json!({"tiers": tiers})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let url = v["authorize_url"].as_str().unwrap();
    let parsed = url::Url::parse(url).unwrap();
    let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(
        q["redirect_uri"],
        format!("{}/api/auth/connect/{provider}/callback", setup.s.url)
    );
    let resp = setup.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    location(&resp)
}

/// The browser's visit to the callback with `cookie`: where it lands (a redirect when
/// connected; on a failure the error's status and a page that refreshes to My Accounts).
pub async fn land(setup: &Setup, callback: &str, cookie: Option<&str>) -> String {
    let mut req = setup.http.get(callback);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    if status == 303 {
        return location(&resp);
    }
    assert!([400, 403, 422, 502].contains(&status), "{status} for {callback}");
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let body = resp.text().await.unwrap();
    let target = body
        .split("content=\"0;url=")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .replace("&amp;", "&");
    let code = target
        .split("error=")
        .nth(1)
        .unwrap_or("")
        .split('&')
        .next()
        .unwrap_or("");
    let expected = match code {
        "state_other_user" => 403,
        "not_configured" => 422,
        "client_refused"
        | "provider_unreachable"
        | "provider_invalid"
        | "identity_failed"
        | "ssrf_blocked"
        | "provider_error" => 502,
        _ => 400,
    };
    assert_eq!(status, expected, "{code}: {body}");
    target
}

pub async fn connect(setup: &Setup, token: &str, cookie: &str, provider: &str, tiers: &[&str]) -> String {
    let callback = authorize(setup, token, provider, tiers).await;
    land(setup, &callback, Some(cookie)).await
}

async fn accounts(s: &TestServer, token: &str) -> Vec<Value> {
    let (st, v) = s.call_as(token, Method::GET, "/api/me/accounts", None).await;
    assert_eq!(st, 200, "{v}");
    v.as_array().unwrap().clone()
}

fn invoke_path(tool: &str) -> String {
    format!("/api/workspaces/default/tools/{tool}/invoke")
}

/// A `caller` Gmail connection (OAuth) at the fake, and a `caller` GitHub-style HTTP
/// connection whose token is the caller's GitHub account (`GET /user` at the peer).
async fn caller_connections(setup: &Setup) {
    let (st, v) = setup
        .s
        .call(
            Method::POST,
            "/api/workspaces/default/connections",
            Some(
                json!({"name": "My Gmail", "slug": "mymail", "service_type": "gmail", "base_url": setup.gmail.url,
                "auth": {"type": "oauth"}, "fulfillment": "caller"}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = setup
        .s
        .call(
            Method::POST,
            "/api/workspaces/default/connections",
            Some(
                json!({"name": "GitHub", "slug": "gh", "service_type": "http", "base_url": setup.oauth.url,
                "auth": {"type": "bearer"}, "fulfillment": "caller", "oauth_provider": "github",
                "operations": [{"name": "whoami", "method": "GET", "path": "/user"}]}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["oauth_provider"], "github");
}

db_tests! {
    async fn people_connect_accounts_with_tiers_and_their_calls_use_them(db: Db) {
        let setup = Setup::start(db).await;
        let s = &setup.s;
        caller_connections(&setup).await;
        let (_a, alice, alice_cookie) = person(s, "alice@example.com").await;
        let (_b, bob, bob_cookie) = person(s, "bob@example.com").await;

        // providers and their tiers
        let (_, providers) = s.call_as(&alice, Method::GET, "/api/me/account-providers", None).await;
        assert_eq!(providers[0]["id"], "gmail");
        assert_eq!(providers[0]["configured"], true);
        assert_eq!(providers[0]["tiers"].as_array().unwrap().len(), 3);

        // no account yet: the call says where to connect
        let (st, p) = s.call_as(&alice, Method::POST, &invoke_path("mymail.send_email"),
            Some(json!({"arguments": {"to": "x@example.com", "subject": "s", "text": "t"}}))).await;
        assert_eq!((st, p["code"].as_str()), (422, Some("credentials_required")), "{p}");
        assert!(p["detail"].as_str().unwrap().contains("My Accounts"), "{p}");

        // Alice connects Gmail with `send` only
        setup.configure(json!({"identity": {"sub": "alice-g", "email": "alice@gmail.example", "login": "alice"}})).await;
        let landed = connect(&setup, &alice, &alice_cookie, "gmail", &["send"]).await;
        assert_eq!(landed, "/settings/accounts?connected=gmail");
        let list = accounts(s, &alice).await;
        assert_eq!(list.len(), 1);
        assert_eq!((list[0]["identity"].as_str(), list[0]["status"].as_str()), (Some("alice@gmail.example"), Some("connected")));
        assert_eq!(list[0]["tiers"], json!(["send"]));
        let account_id = list[0]["id"].as_str().unwrap().to_owned();
        assert!(accounts(s, &bob).await.is_empty(), "Bob sees no one else's account");

        // her calls use it: the message reaches Gmail, sent as her
        let (st, out) = s.call_as(&alice, Method::POST, &invoke_path("mymail.send_email"),
            Some(json!({"arguments": {"to": "Carl <carl@example.com>", "subject": "Hello from Alice", "text": "Hi Carl"}}))).await;
        assert_eq!(st, 200, "{out}");
        assert!(out["output"]["id"].is_string(), "{out}");
        let sent = setup.fake(Method::GET, "/__fake/sent", None).await;
        assert_eq!(sent.as_array().unwrap().len(), 1);
        assert_eq!(sent[0]["subject"], "Hello from Alice");
        assert_eq!(sent[0]["to"][0][1], "carl@example.com");

        // reading is outside the `send` tier: refused before any request
        let before = setup.fake(Method::GET, "/__fake/requests", None).await.as_array().unwrap().len();
        let (st, p) = s.call_as(&alice, Method::POST, &invoke_path("mymail.list_messages"), Some(json!({"arguments": {}}))).await;
        assert_eq!((st, p["code"].as_str()), (403, Some("insufficient_scope")), "{p}");
        let after = setup.fake(Method::GET, "/__fake/requests", None).await.as_array().unwrap().len();
        assert_eq!(before, after, "nothing was sent to Gmail");

        // connecting again with `read` adds it to the same account (incremental consent)
        let landed = connect(&setup, &alice, &alice_cookie, "gmail", &["read"]).await;
        assert_eq!(landed, "/settings/accounts?connected=gmail");
        let list = accounts(s, &alice).await;
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["id"], account_id.as_str(), "the same account");
        assert_eq!(list[0]["tiers"], json!(["send", "read"]));
        let (st, out) = s.call_as(&alice, Method::POST, &invoke_path("mymail.list_messages"), Some(json!({"arguments": {"max_results": 5}}))).await;
        assert_eq!(st, 200, "{out}");
        let id = out["output"]["messages"][0]["id"].as_str().unwrap().to_owned();
        let (st, out) = s.call_as(&alice, Method::POST, &invoke_path("mymail.get_message"), Some(json!({"arguments": {"id": id}}))).await;
        assert_eq!(st, 200, "{out}");
        assert_eq!(out["output"]["subject"], "Hello from Alice");
        assert_eq!(out["output"]["text"].as_str().map(str::trim_end), Some("Hi Carl"));

        // GitHub: the login is the identity, and the caller connection's token is Bob's own
        setup.configure(json!({"identity": {"sub": "bob-gh", "email": "bob@users.example", "login": "bobby"}})).await;
        assert_eq!(connect(&setup, &bob, &bob_cookie, "github", &["read", "repo"]).await, "/settings/accounts?connected=github");
        let bob_list = accounts(s, &bob).await;
        assert_eq!((bob_list[0]["identity"].as_str(), &bob_list[0]["tiers"]), (Some("bobby"), &json!(["read", "repo"])));
        let (st, out) = s.call_as(&bob, Method::POST, &invoke_path("gh.whoami"), Some(json!({"arguments": {}}))).await;
        assert_eq!((st, out["output"]["body"]["login"].as_str()), (200, Some("bobby")), "{out}");
        // a connection aimed anywhere but GitHub's API never gets Bob's token
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections",
            Some(json!({"name": "Elsewhere", "slug": "elsewhere", "service_type": "http", "base_url": setup.gmail.url,
                "auth": {"type": "bearer"}, "fulfillment": "caller", "oauth_provider": "github",
                "operations": [{"name": "grab", "method": "GET", "path": "/grab"}]}))).await;
        assert_eq!(st, 201, "{v}");
        let seen = setup.fake(Method::GET, "/__fake/requests", None).await.as_array().unwrap().len();
        let (st, p) = s.call_as(&bob, Method::POST, &invoke_path("elsewhere.grab"), Some(json!({"arguments": {}}))).await;
        assert_eq!((st, p["code"].as_str()), (403, Some("account_origin_mismatch")), "{p}");
        // moving an existing connection does not help either
        let (st, _) = s.call(Method::PATCH, "/api/workspaces/default/connections/gh", Some(json!({"base_url": setup.gmail.url}))).await;
        assert_eq!(st, 200);
        let (st, p) = s.call_as(&bob, Method::POST, &invoke_path("gh.whoami"), Some(json!({"arguments": {}}))).await;
        assert_eq!((st, p["code"].as_str()), (403, Some("account_origin_mismatch")), "{p}");
        assert_eq!(setup.fake(Method::GET, "/__fake/requests", None).await.as_array().unwrap().len(), seen, "no token was sent there");
        let (st, _) = s.call(Method::PATCH, "/api/workspaces/default/connections/gh", Some(json!({"base_url": setup.oauth.url}))).await;
        assert_eq!(st, 200);
        // Alice has no GitHub account: Bob's is never used for her
        let (st, p) = s.call_as(&alice, Method::POST, &invoke_path("gh.whoami"), Some(json!({"arguments": {}}))).await;
        assert_eq!((st, p["code"].as_str()), (422, Some("credentials_required")), "{p}");
        // credentials passed with the call still win
        let (st, out) = s.call_as(&alice, Method::POST, &invoke_path("gh.whoami"),
            Some(json!({"arguments": {}, "credentials": {"token": "not-a-jwt"}}))).await;
        assert_eq!((st, out["output"]["status"].as_u64()), (200, Some(401)), "{out}");

        // Bob cannot disconnect Alice's account; Alice can, and it is revoked at the provider
        assert_eq!(s.call_as(&bob, Method::DELETE, &format!("/api/me/accounts/{account_id}"), None).await.0, 404);
        let revoked_before = setup.stats().await["revoked"].as_array().unwrap().len();
        assert_eq!(s.call_as(&alice, Method::DELETE, &format!("/api/me/accounts/{account_id}"), None).await.0, 204);
        assert_eq!(setup.stats().await["revoked"].as_array().unwrap().len(), revoked_before + 1);
        assert!(accounts(s, &alice).await.is_empty());
        let (st, p) = s.call_as(&alice, Method::POST, &invoke_path("mymail.send_email"),
            Some(json!({"arguments": {"to": "x@example.com", "subject": "s", "text": "t"}}))).await;
        assert_eq!((st, p["code"].as_str()), (422, Some("credentials_required")), "{p}");
    }

    async fn every_failed_connect_says_why_and_stores_nothing(db: Db) {
        let setup = Setup::start(db).await;
        let s = &setup.s;
        let (_a, alice, alice_cookie) = person(s, "alice@example.com").await;
        let (_b, _bob, bob_cookie) = person(s, "bob@example.com").await;
        let error = |landed: String| landed.split("error=").nth(1).unwrap_or("").split('&').next().unwrap_or("").to_owned();

        // consent refused
        setup.configure(json!({"deny_next": 1})).await;
        let callback = authorize(&setup, &alice, "gmail", &["send"]).await;
        assert!(callback.contains("error=access_denied"), "{callback}");
        assert_eq!(error(land(&setup, &callback, Some(&alice_cookie)).await), "access_denied");

        // a forged state, none at all, and a reused one
        let callback = authorize(&setup, &alice, "gmail", &["send"]).await;
        // a HEAD (a link checker) does not spend it
        let head = setup.http.head(&callback).header("cookie", &alice_cookie).send().await.unwrap();
        assert_eq!(head.status(), 204);
        let forged = callback.replace("state=", "state=x");
        assert_eq!(error(land(&setup, &forged, Some(&alice_cookie)).await), "state_unknown");
        let stateless = format!("{}/api/auth/connect/gmail/callback?code=abc", s.url);
        assert_eq!(error(land(&setup, &stateless, Some(&alice_cookie)).await), "state_unknown");
        // another person's browser cannot finish Alice's flow (and it is spent by trying)
        assert_eq!(error(land(&setup, &callback, Some(&bob_cookie)).await), "state_other_user");
        assert_eq!(error(land(&setup, &callback, Some(&alice_cookie)).await), "state_used");
        let callback = authorize(&setup, &alice, "gmail", &["send"]).await;
        assert_eq!(error(land(&setup, &callback, None).await), "not_signed_in");
        // a state for another provider
        let callback = authorize(&setup, &alice, "gmail", &["send"]).await;
        let elsewhere = callback.replace("/gmail/", "/github/");
        assert_eq!(error(land(&setup, &elsewhere, Some(&alice_cookie)).await), "state_unknown");

        // a huge or undecodable code never reaches the token endpoint
        let tokens_before = setup.stats().await["token"].clone();
        let callback = authorize(&setup, &alice, "gmail", &["send"]).await;
        let huge = url::Url::parse(&callback).unwrap();
        let state = huge.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
        let big = format!("{}/api/auth/connect/gmail/callback?state={state}&code={}", s.url, "A".repeat(40_000));
        assert_eq!(error(land(&setup, &big, Some(&alice_cookie)).await), "bad_callback");
        let callback = authorize(&setup, &alice, "gmail", &["send"]).await;
        let state = url::Url::parse(&callback).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
        let bad = format!("{}/api/auth/connect/gmail/callback?state={state}&code=%ff%fe%00", s.url);
        assert_eq!(error(land(&setup, &bad, Some(&alice_cookie)).await), "bad_callback");
        let callback = authorize(&setup, &alice, "gmail", &["send"]).await;
        let state = url::Url::parse(&callback).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
        let bad = format!("{}/api/auth/connect/gmail/callback?state={state}&code=%ff%feab", s.url);
        assert_eq!(error(land(&setup, &bad, Some(&alice_cookie)).await), "bad_callback");
        assert_eq!(setup.stats().await["token"], tokens_before, "no token request was made");

        // at most ten flows in progress per person: the oldest is dropped
        let first = authorize(&setup, &alice, "gmail", &["send"]).await;
        for _ in 0..10 {
            let (st, _) = s.call_as(&alice, Method::POST, "/api/me/accounts/gmail/connect", Some(json!({"tiers": ["send"]}))).await;
            assert_eq!(st, 200);
        }
        assert_eq!(error(land(&setup, &first, Some(&alice_cookie)).await), "state_unknown");

        // an identity with invisible formatting (a login that reads backwards)
        for login in ["abc\u{202e}exe", "victim\u{3164}gh", "a\u{34f}b", "a b"] {
            setup.configure(json!({"identity": {"sub": "x", "email": "x@example.com", "login": login}})).await;
            assert_eq!(error(connect(&setup, &alice, &alice_cookie, "github", &["read"]).await), "identity_failed", "{login}");
        }
        setup.configure(json!({"identity": {"sub": "alice", "email": "alice@example.com", "login": "alice"}})).await;

        // the token endpoint refusing the code, the client secret, or answering garbage
        for (failure, code) in [
            (json!({"token_failures": [{"status": 400, "body": {"error": "invalid_grant"}}]}), "token_refused"),
            (json!({"client_secret": "another-secret"}), "client_refused"),
            (json!({"client_secret": null, "token_failures": [{"status": 200, "body": "<html>not json</html>"}]}), "provider_invalid"),
            (json!({"token_failures": [{"status": 200, "body": {"token_type": "Bearer", "expires_in": 3600}}]}), "provider_invalid"),
            (json!({"token_failures": [{"status": 200, "body": {"access_token": "at-1", "token_type": "Bearer", "expires_in": -5}}]}), "provider_invalid"),
            (json!({"token_failures": [{"status": 503, "body": {}}]}), "provider_unreachable"),
            (json!({"token_failures": [{"status": 500, "body": {"error": "server_error"}}]}), "provider_unreachable"),
            (json!({"token_failures": [{"status": 200, "body": {"access_token": "has spaces in it", "token_type": "Bearer"}}]}), "provider_invalid"),
        ] {
            setup.configure(failure.clone()).await;
            let landed = connect(&setup, &alice, &alice_cookie, "gmail", &["send"]).await;
            assert_eq!(error(landed), code, "{failure}");
        }
        setup.configure(json!({"client_secret": null, "token_failures": []})).await;

        // a token endpoint the SSRF guard refuses
        let (st, v) = s.call(Method::PUT, "/api/admin/oauth-providers/github",
            Some(json!({"client_id": "gh", "client_secret": "gh-secret-1", "authorize_url": format!("{}/authorize", setup.oauth.url),
                "token_url": "http://169.254.169.254/token", "api_base_url": setup.oauth.url}))).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(error(connect(&setup, &alice, &alice_cookie, "github", &["read"]).await), "ssrf_blocked");

        // unknown tiers and providers
        let (st, p) = s.call_as(&alice, Method::POST, "/api/me/accounts/gmail/connect", Some(json!({"tiers": ["write"]}))).await;
        assert_eq!((st, p["errors"][0]["pointer"].as_str()), (422, Some("/tiers")), "{p}");
        let (st, _) = s.call_as(&alice, Method::POST, "/api/me/accounts/gmail/connect", Some(json!({"tiers": []}))).await;
        assert_eq!(st, 422);
        assert_eq!(s.call_as(&alice, Method::POST, "/api/me/accounts/dropbox/connect", Some(json!({"tiers": ["x"]}))).await.0, 404);

        assert!(accounts(s, &alice).await.is_empty(), "nothing was stored");
        // a provider without a client: not_configured
        assert_eq!(s.call(Method::DELETE, "/api/admin/oauth-providers/gmail", None).await.0, 204);
        let (st, p) = s.call_as(&alice, Method::POST, "/api/me/accounts/gmail/connect", Some(json!({"tiers": ["send"]}))).await;
        assert_eq!((st, p["code"].as_str()), (422, Some("not_configured")), "{p}");
    }

    async fn personal_keys_serve_their_owner_only(db: Db) {
        let httpbin = chatterfly_testkit::httpbin_url();
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections",
            Some(json!({"name": "Bin", "slug": "bin", "service_type": "http", "base_url": httpbin,
                "auth": {"type": "bearer"}, "fulfillment": "caller",
                "operations": [{"name": "bearer", "method": "GET", "path": "/bearer"}]}))).await;
        assert_eq!(st, 201, "{v}");
        let (_a, alice, _) = person(&s, "alice@example.com").await;
        let (_b, bob, _) = person(&s, "bob@example.com").await;
        let path = "/api/workspaces/default/connections/bin/my-credentials";
        let (_, v) = s.call_as(&alice, Method::GET, path, None).await;
        assert_eq!((v["set"].as_bool(), &v["fields"]), (Some(false), &json!(["token"])));
        let (st, p) = s.call_as(&alice, Method::PUT, path, Some(json!({"key": "x"}))).await;
        assert_eq!((st, p["errors"][0]["pointer"].as_str()), (422, Some("/key")), "{p}");
        let (st, p) = s.call_as(&alice, Method::PUT, path, Some(json!({}))).await;
        assert_eq!((st, p["errors"][0]["pointer"].as_str()), (422, Some("/token")), "{p}");
        let (st, v) = s.call_as(&alice, Method::PUT, path, Some(json!({"token": "alice-personal-7731"}))).await;
        assert_eq!((st, v["set"].as_bool()), (200, Some(true)), "{v}");
        assert!(!v.to_string().contains("alice-personal-7731"));

        let (st, out) = s.call_as(&alice, Method::POST, &invoke_path("bin.bearer"), Some(json!({"arguments": {}}))).await;
        assert_eq!((st, out["output"]["status"].as_u64()), (200, Some(200)), "{out}");
        assert_eq!(out["output"]["body"]["token"], "[REDACTED]", "{out}");
        // Bob has saved nothing: Alice's key is not his
        let (st, p) = s.call_as(&bob, Method::POST, &invoke_path("bin.bearer"), Some(json!({"arguments": {}}))).await;
        assert_eq!((st, p["code"].as_str()), (422, Some("credentials_required")), "{p}");
        assert!(p["detail"].as_str().unwrap().contains("My Accounts"), "{p}");
        assert_eq!(s.call_as(&bob, Method::GET, path, None).await.1["set"], false);
        // moving the connection to another host drops the personal keys
        let (st, v) = s.call(Method::PATCH, "/api/workspaces/default/connections/bin",
            Some(json!({"base_url": "http://localhost:9"}))).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(s.call_as(&alice, Method::GET, path, None).await.1["set"], false);
        let (st, _) = s.call_as(&alice, Method::PUT, path, Some(json!({"token": "alice-personal-7731"}))).await;
        assert_eq!(st, 200);
        assert_eq!(s.call_as(&alice, Method::DELETE, path, None).await.0, 204);
        assert_eq!(s.call_as(&alice, Method::DELETE, path, None).await.0, 404);
        // a static connection takes no personal keys
        let (st, _) = s.call(Method::POST, "/api/workspaces/default/connections",
            Some(json!({"name": "S", "slug": "st", "service_type": "http", "base_url": "https://s.example.com",
                "auth": {"type": "bearer", "token": "tok-static-1"}}))).await;
        assert_eq!(st, 201);
        let (st, p) = s.call_as(&alice, Method::PUT, "/api/workspaces/default/connections/st/my-credentials", Some(json!({"token": "x1234"}))).await;
        assert_eq!((st, p["code"].as_str()), (409, Some("not_personal")), "{p}");
        // oauth_provider only where it fits
        let (st, p) = s.call(Method::POST, "/api/workspaces/default/connections",
            Some(json!({"name": "S", "slug": "st2", "service_type": "http", "base_url": "https://s.example.com",
                "auth": {"type": "bearer", "token": "t-1234"}, "oauth_provider": "github"}))).await;
        assert_eq!((st, p["errors"][0]["pointer"].as_str()), (422, Some("/oauth_provider")), "{p}");
    }
}

/// A fresh RSA key pair as (PKCS#8 PEM private key, SubjectPublicKeyInfo PEM), made by
/// Python's cryptography in the Gmail venv.
pub fn rsa_key_pair(kind: &str) -> (String, String) {
    let script = match kind {
        "rsa" => {
            "from cryptography.hazmat.primitives.asymmetric import rsa\nk = rsa.generate_private_key(public_exponent=65537, key_size=2048)"
        }
        _ => "from cryptography.hazmat.primitives.asymmetric import ec\nk = ec.generate_private_key(ec.SECP256R1())",
    };
    let code = format!(
        "{script}\nfrom cryptography.hazmat.primitives import serialization as s\nimport json\n\
         print(json.dumps([k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()).decode(), \
         k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode()]))"
    );
    let out = std::process::Command::new(gmail_python())
        .arg("-c")
        .arg(code)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (v[0].as_str().unwrap().to_owned(), v[1].as_str().unwrap().to_owned())
}

/// A service-account key file for `client_email` whose token URI is the fake's.
pub fn key_file(client_email: &str, private_pem: &str, token_uri: &str) -> String {
    json!({"type": "service_account", "project_id": "p", "private_key_id": "kid-1", "private_key": private_pem,
        "client_email": client_email, "client_id": "1", "token_uri": token_uri})
    .to_string()
}

db_tests! {
    async fn a_service_account_sends_and_reads_mail(db: Db) {
        let setup = Setup::start(db).await;
        let s = &setup.s;
        let (private, public) = rsa_key_pair("rsa");
        let sa = "robot@p.iam.gserviceaccount.com";
        setup.fake(Method::POST, "/__fake/service-accounts", Some(json!({"client_email": sa, "public_key_pem": public}))).await;
        let key = key_file(sa, &private, &format!("{}/token", setup.gmail.url));

        // bad keys and subjects are refused before anything is stored
        let (ec_private, _) = rsa_key_pair("ec");
        for (auth, pointer) in [
            (json!({"type": "service_account", "subject": "alice@example.com", "service_account_json": key_file(sa, &ec_private, "https://oauth2.googleapis.com/token")}), "/auth/service_account_json"),
            (json!({"type": "service_account", "subject": "alice@example.com", "service_account_json": {"client_email": sa}}), "/auth/service_account_json"),
            (json!({"type": "service_account", "subject": "alice", "service_account_json": key.clone()}), "/auth/subject"),
            (json!({"type": "service_account", "subject": "alice@example.com", "service_account_json": "not json"}), "/auth/service_account_json"),
        ] {
            let (st, p) = s.call(Method::POST, "/api/workspaces/default/connections",
                Some(json!({"name": "G", "slug": "g", "service_type": "gmail", "base_url": setup.gmail.url, "auth": auth}))).await;
            assert_eq!((st, p["errors"][0]["pointer"].as_str()), (422, Some(pointer)), "{p}");
            assert!(!p.to_string().contains("PRIVATE KEY"), "{p}");
        }
        assert_eq!(s.call(Method::GET, "/api/workspaces/default/connections/g", None).await.0, 404);

        let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections",
            Some(json!({"name": "Team mail", "slug": "team", "service_type": "gmail", "base_url": setup.gmail.url,
                "auth": {"type": "service_account", "subject": "alice@example.com", "service_account_json": key, "tiers": ["send", "read"]}}))).await;
        assert_eq!(st, 201, "{v}");
        assert_eq!(v["auth"]["service_account_json_set"], true);
        assert_eq!(v["auth"]["tiers"], "send read");
        let names: Vec<&str> = v["operations"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["send_email", "list_messages", "get_message"]);

        // a message with everything: non-ASCII subject and names, text and HTML, cc, bcc,
        // reply-to, a reply in a thread
        let args = json!({"to": ["Zoë Ünlü <zoe@example.com>", "bob@example.com"], "cc": "\"Doe, Jane\" <jane@example.com>",
            "bcc": ["hidden@example.com"], "subject": "Grüße aus Köln — 👋", "text": "Hallo Zoë,\nbis bald.",
            "html": "<p>Hallo <b>Zoë</b></p>", "reply_to": "Replies <replies@example.com>",
            "thread_id": "abc123", "in_reply_to": "<orig-1@mail.example.com>"});
        let (st, out) = invoke(s, "team.send_email", args).await;
        assert_eq!(st, 200, "{out}");
        assert_eq!(out["output"]["thread_id"], "abc123");
        let sent = setup.fake(Method::GET, "/__fake/sent", None).await;
        let m = &sent[0];
        assert_eq!(m["subject"], "Grüße aus Köln — 👋");
        assert_eq!(m["to"], json!([["Zoë Ünlü", "zoe@example.com"], ["", "bob@example.com"]]));
        assert_eq!(m["cc"], json!([["Doe, Jane", "jane@example.com"]]));
        assert_eq!(m["bcc"], json!([["", "hidden@example.com"]]));
        assert_eq!(m["reply_to"], json!([["Replies", "replies@example.com"]]));
        assert_eq!(m["text"].as_str().map(|t| t.replace("\r\n", "\n").trim_end().to_owned()).as_deref(), Some("Hallo Zoë,\nbis bald."));
        assert_eq!(m["html"].as_str().map(str::trim_end), Some("<p>Hallo <b>Zoë</b></p>"));
        assert_eq!(m["in_reply_to"], "<orig-1@mail.example.com>");
        assert_eq!(m["threadId"], "abc123");
        assert_eq!(m["defects"], json!([]), "{m}");
        assert!(m["raw"].as_str().unwrap().is_ascii(), "every header and body is encoded");

        // the token is reused: one assertion for several calls
        let (st, _) = invoke(s, "team.send_email", json!({"to": "a@example.com", "subject": "again", "text": "x"})).await;
        assert_eq!(st, 200);
        assert_eq!(setup.fake(Method::GET, "/__fake/stats", None).await["sa_tokens"], 1);

        // reading: decoded headers and the text
        let (st, out) = invoke(s, "team.list_messages", json!({"query": "subject:Köln", "max_results": 10})).await;
        assert_eq!(st, 200, "{out}");
        let id = out["output"]["messages"][0]["id"].as_str().unwrap().to_owned();
        let (st, out) = invoke(s, "team.get_message", json!({"id": id})).await;
        assert_eq!(st, 200, "{out}");
        let o = &out["output"];
        assert_eq!(o["subject"], "Grüße aus Köln — 👋");
        assert_eq!(o["to"][0]["name"], "Zoë Ünlü");
        assert_eq!(o["headers"]["Subject"], "Grüße aus Köln — 👋");
        assert_eq!(o["text"].as_str().map(|t| t.replace("\r\n", "\n").trim_end().to_owned()).as_deref(), Some("Hallo Zoë,\nbis bald."));
        assert_eq!(o["html"].as_str().map(str::trim_end), Some("<p>Hallo <b>Zoë</b></p>"));

        let (st, p) = invoke(s, "team.get_message", json!({"id": ".."})).await;
        assert_eq!((st, p["code"].as_str()), (422, Some("invalid_arguments")), "{p}");
        // bad arguments: a clear 422, nothing sent
        let count = setup.fake(Method::GET, "/__fake/sent", None).await.as_array().unwrap().len();
        for bad in [
            json!({"to": "not-an-address", "subject": "s", "text": "x"}),
            json!({"to": "a@example.com", "subject": "Hi\r\nBcc: everyone@example.com", "text": "x"}),
            json!({"to": "Eve\r\nBcc: x@example.com <e@example.com>", "subject": "s", "text": "x"}),
            json!({"to": "a@example.com", "subject": "s"}),
            json!({"to": "a@example.com", "subject": "s", "text": "x", "unknown": 1}),
        ] {
            let (st, p) = invoke(s, "team.send_email", bad.clone()).await;
            assert_eq!((st, p["code"].as_str()), (422, Some("invalid_arguments")), "{bad}: {p}");
        }
        assert_eq!(setup.fake(Method::GET, "/__fake/sent", None).await.as_array().unwrap().len(), count);

        // a send-only service account cannot read: refused before any request
        let (st, _) = s.call(Method::PATCH, "/api/workspaces/default/connections/team",
            Some(json!({"auth": {"type": "service_account", "subject": "alice@example.com", "tiers": "send"}}))).await;
        assert_eq!(st, 200);
        let requests = setup.fake(Method::GET, "/__fake/requests", None).await.as_array().unwrap().len();
        let (st, p) = invoke(s, "team.list_messages", json!({})).await;
        assert_eq!((st, p["code"].as_str()), (403, Some("insufficient_scope")), "{p}");
        assert_eq!(setup.fake(Method::GET, "/__fake/requests", None).await.as_array().unwrap().len(), requests);

        // a key Google refuses (another key pair): a clear error, not a 500
        let (other_private, _) = rsa_key_pair("rsa");
        let (st, _) = s.call(Method::PATCH, "/api/workspaces/default/connections/team",
            Some(json!({"auth": {"type": "service_account", "subject": "alice@example.com",
                "service_account_json": key_file(sa, &other_private, &format!("{}/token", setup.gmail.url))}}))).await;
        assert_eq!(st, 200);
        let (st, p) = invoke(s, "team.send_email", json!({"to": "a@example.com", "subject": "s", "text": "x"})).await;
        assert_eq!((st, p["code"].as_str()), (422, Some("invalid_credentials")), "{p}");
        assert!(setup.fake(Method::GET, "/__fake/stats", None).await["sa_refused"].as_u64().unwrap() >= 1);
    }
}

/// `gh.whoami` as `token` on each of `urls` (servers), all at once.
async fn whoami_at_once(urls: &[String], token: &str) -> Vec<(u16, Value)> {
    let mut set = tokio::task::JoinSet::new();
    for url in urls {
        let (url, token) = (url.clone(), token.to_owned());
        set.spawn(async move {
            let r = no_redirects()
                .post(format!("{url}{}", invoke_path("gh.whoami")))
                .bearer_auth(token)
                .json(&json!({"arguments": {}}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        });
    }
    set.join_all().await
}

/// Refresh across two replicas on PostgreSQL: twenty calls that all need a new token cause
/// one refresh at the provider; a rotated refresh token replaces the old one; a refused
/// refresh marks the account and calls fail until the person reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_are_refreshed_once_across_replicas() {
    let key = random_key();
    let options = Options {
        env: vec![("INTEGRATION_ENCRYPTION_KEY".into(), key.clone())],
        ..Options::default()
    };
    let setup = Setup::start_with(Db::Postgres, options).await;
    let mut second_options = local_upstreams(&[("INTEGRATION_ENCRYPTION_KEY", &key)]);
    second_options.rust_log = "debug".into();
    let second_db = chatterfly_testkit::TestDb {
        url: setup.s.db.url.clone(),
        kind: Db::Postgres,
        dir: tempfile::tempdir().unwrap(),
        admin_token: setup.s.db.admin_token.clone(),
    };
    let second =
        TestServer::spawn(std::path::Path::new(BIN), second_db, &second_options).expect("the second replica starts");
    let s = &setup.s;
    caller_connections(&setup).await;
    let (_a, alice, cookie) = person(s, "alice@example.com").await;

    // connected with a token that is about to expire; refreshes are slow to answer
    setup
        .configure(
            json!({"expires_in": 30, "identity": {"sub": "a", "email": "alice@gmail.example", "login": "alice"}}),
        )
        .await;
    assert_eq!(
        connect(&setup, &alice, &cookie, "github", &["read"]).await,
        "/settings/accounts?connected=github"
    );
    setup.configure(json!({"refresh_delay_ms": 400})).await;
    let urls: Vec<String> = (0..20)
        .map(|i| if i % 2 == 0 { s.url.clone() } else { second.url.clone() })
        .collect();
    let results = whoami_at_once(&urls, &alice).await;
    for (st, out) in &results {
        assert_eq!(
            (*st, out["output"]["body"]["login"].as_str()),
            (200, Some("alice")),
            "{out}"
        );
    }
    let stats = setup.stats().await;
    assert_eq!(
        stats["token"]["refresh_token"], 1,
        "one refresh for twenty calls on two replicas: {}",
        stats["token"]
    );

    // the refreshed token is about to expire too: the next call refreshes again, which works
    // only with the rotated refresh token (the peer refuses a used one)
    let (st, out) = second
        .call_as(
            &alice,
            Method::POST,
            &invoke_path("gh.whoami"),
            Some(json!({"arguments": {}})),
        )
        .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(setup.stats().await["token"]["refresh_token"], 2);

    // the provider fails to answer a refresh: the calls waiting on it fail with it (one
    // request, not one per waiting call)
    setup
        .configure(
            json!({"refresh_delay_ms": 300, "token_failures": [{"status": 503, "body": {"error": "temporarily_unavailable"}}]}),
        )
        .await;
    for (st, p) in whoami_at_once(&vec![s.url.clone(); 5], &alice).await {
        assert_eq!((st, p["code"].as_str()), (502, Some("account_refresh_failed")), "{p}");
    }
    assert_eq!(
        setup.stats().await["token"]["refresh_token"],
        3,
        "one refresh request for the five waiting calls"
    );

    // the provider refuses the refresh: the account needs reconnecting, calls say so (asked
    // on the other replica: this one remembers the failure above for a few seconds)
    setup
        .configure(
            json!({"refresh_delay_ms": 0, "token_failures": [{"status": 400, "body": {"error": "invalid_grant"}}]}),
        )
        .await;
    let (st, p) = second
        .call_as(
            &alice,
            Method::POST,
            &invoke_path("gh.whoami"),
            Some(json!({"arguments": {}})),
        )
        .await;
    assert_eq!((st, p["code"].as_str()), (409, Some("account_needs_reconnect")), "{p}");
    let (st, p) = s
        .call_as(
            &alice,
            Method::POST,
            &invoke_path("gh.whoami"),
            Some(json!({"arguments": {}})),
        )
        .await;
    assert_eq!((st, p["code"].as_str()), (409, Some("account_needs_reconnect")), "{p}");
    assert_eq!(
        setup.stats().await["token"]["refresh_token"],
        4,
        "no more refreshes once refused"
    );
    assert_eq!(accounts(s, &alice).await[0]["status"], "needs_reconnect");
    // reconnecting brings it back
    setup.configure(json!({"expires_in": 3600})).await;
    assert_eq!(
        connect(&setup, &alice, &cookie, "github", &["read"]).await,
        "/settings/accounts?connected=github"
    );
    assert_eq!(accounts(&second, &alice).await[0]["status"], "connected");
    let (st, _) = second
        .call_as(
            &alice,
            Method::POST,
            &invoke_path("gh.whoami"),
            Some(json!({"arguments": {}})),
        )
        .await;
    assert_eq!(st, 200);
}

/// Reads every file of a SQLite database (the WAL too) or dumps every PostgreSQL row.
pub(crate) async fn database_text(tdb: &chatterfly_testkit::TestDb) -> String {
    match tdb.kind {
        Db::Sqlite => {
            let mut all = String::new();
            for entry in std::fs::read_dir(tdb.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.file_name().unwrap().to_string_lossy().starts_with("chatterfly.db") {
                    all.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
                }
            }
            all
        }
        Db::Postgres => super::canary::postgres_dump(&tdb.url).await,
    }
}

// Access tokens, refresh tokens, id tokens, authorization codes, the service account's
// private key and personal keys: never in a response, a log line (trace level), an audit row
// or the database in plain text; `keys rotate` re-seals every new column.
db_tests! {
    async fn account_secrets_leak_nowhere_and_rotate(db: Db) {
        let (k1, k2) = (random_key(), random_key());
        let setup = Setup::start_with(db, Options {
            env: vec![("INTEGRATION_ENCRYPTION_KEY".into(), k1.clone())],
            rust_log: "trace".into(),
        }).await;
        let s = &setup.s;
        let mut responses = String::new();
        let mut record = |v: &Value| responses.push_str(&v.to_string());
        caller_connections(&setup).await;
        let httpbin = chatterfly_testkit::httpbin_url();
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections",
            Some(json!({"name": "Bin", "slug": "bin", "service_type": "http", "base_url": httpbin,
                "auth": {"type": "bearer"}, "fulfillment": "caller",
                "operations": [{"name": "bearer", "method": "GET", "path": "/bearer"}]}))).await;
        assert_eq!(st, 201, "{v}");
        let (_a, alice, cookie) = person(s, "alice@example.com").await;

        // accounts at both providers, one refreshed (its first token about to expire)
        setup.configure(json!({"expires_in": 30, "identity": {"sub": "a", "email": "alice@gmail.example", "login": "alice"}})).await;
        connect(&setup, &alice, &cookie, "gmail", &["send", "read"]).await;
        connect(&setup, &alice, &cookie, "github", &["read"]).await;
        setup.configure(json!({"expires_in": 3600})).await;
        for (tool, args) in [
            ("gh.whoami", json!({})),
            ("mymail.send_email", json!({"to": "b@example.com", "subject": "canary", "text": "x"})),
            ("mymail.list_messages", json!({})),
        ] {
            let (st, out) = s.call_as(&alice, Method::POST, &invoke_path(tool), Some(json!({"arguments": args}))).await;
            assert_eq!(st, 200, "{tool}: {out}");
            record(&out);
        }
        assert!(setup.stats().await["token"]["refresh_token"].as_u64().unwrap() >= 1, "a refresh happened");
        // a flow left pending (its verifier sealed in the store)
        authorize(&setup, &alice, "github", &["repo"]).await;
        // a personal key, used
        let personal = "personal-canary-token-9d2f".to_owned();
        let (_, v) = s.call_as(&alice, Method::PUT, "/api/workspaces/default/connections/bin/my-credentials",
            Some(json!({"token": personal}))).await;
        record(&v);
        let (st, out) = s.call_as(&alice, Method::POST, &invoke_path("bin.bearer"), Some(json!({"arguments": {}}))).await;
        assert_eq!(st, 200, "{out}");
        record(&out);
        // a service account
        let (private, public) = rsa_key_pair("rsa");
        let sa = "robot@p.iam.gserviceaccount.com";
        setup.fake(Method::POST, "/__fake/service-accounts", Some(json!({"client_email": sa, "public_key_pem": public}))).await;
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections",
            Some(json!({"name": "Team", "slug": "team", "service_type": "gmail", "base_url": setup.gmail.url,
                "auth": {"type": "service_account", "subject": "alice@example.com",
                    "service_account_json": key_file(sa, &private, &format!("{}/token", setup.gmail.url))}}))).await;
        assert_eq!(st, 201, "{v}");
        record(&v);
        let (st, out) = invoke(s, "team.send_email", json!({"to": "c@example.com", "subject": "sa", "text": "y"})).await;
        assert_eq!(st, 200, "{out}");
        record(&out);
        for path in ["/api/me/accounts", "/api/workspaces/default/audit", "/api/workspaces/default/connections/team",
            "/api/admin/oauth-providers/gmail", "/api/workspaces/default/tools"] {
            let (_, v) = s.call_as(&alice, Method::GET, path, None).await;
            record(&v);
            let (_, v) = s.call(Method::GET, path, None).await;
            record(&v);
        }

        let stats = setup.stats().await;
        let mut secrets: Vec<String> = stats["issued"].as_array().unwrap().iter().chain(stats["codes"].as_array().unwrap())
            .map(|v| v.as_str().unwrap().to_owned()).collect();
        assert!(secrets.len() >= 8, "tokens and codes were issued: {}", secrets.len());
        // the private key's material: each full line of its base64 body
        secrets.extend(private.lines().filter(|l| l.len() == 64).map(str::to_owned));
        secrets.push(personal.clone());
        secrets.push("gmail-secret-Zq81".into());
        let forms = super::canary::forms(&secrets);
        super::canary::assert_clean("the API responses", &responses, &forms);
        assert!(responses.contains("\"set\":true") && responses.contains("alice@gmail.example"), "the check can fail");

        let Setup { s, oauth, gmail, http } = setup;
        let (tdb, logs) = s.stop();
        assert!(logs.contains("TRACE"), "logs were captured at trace level");
        super::canary::assert_clean("the server logs", &logs, &forms);
        let text = database_text(&tdb).await;
        assert!(text.contains("cf1:"), "the database holds sealed values");
        super::canary::assert_clean("the database", &text, &forms);

        // keys rotate re-seals the accounts' tokens, pending verifiers and personal keys
        let bin = std::path::Path::new(BIN);
        let env = |current: &str, previous: Option<&str>| {
            let mut e = vec![("INTEGRATION_ENCRYPTION_KEY".to_owned(), current.to_owned())];
            if let Some(p) = previous {
                e.push(("INTEGRATION_ENCRYPTION_PREVIOUS_KEYS".to_owned(), p.to_owned()));
            }
            e
        };
        let (code, out) = chatterfly_testkit::server::run_command(bin, &tdb, &["keys", "rotate"], &env(&k2, Some(&k1)));
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("0 remain"), "{out}");
        let store = chatterfly_store::Store::connect(&tdb.url).await.unwrap();
        let tables: std::collections::BTreeSet<&str> = store.sealed_values().await.unwrap().iter().map(|v| v.table).collect();
        for t in ["accounts", "oauth_states", "personal_credentials", "oauth_providers", "connections"] {
            assert!(tables.contains(t), "{t} holds sealed values: {tables:?}");
        }
        store.close().await;
        // the new key alone opens everything: the account, its refresh, the personal key
        let mut options = local_upstreams(&[]);
        options.env.extend(env(&k2, None));
        let s = TestServer::spawn(bin, tdb, &options).expect("starts with the new key alone");
        let setup = Setup { s, oauth, gmail, http };
        setup.configure(json!({"expires_in": 3600})).await;
        for tool in ["gh.whoami", "bin.bearer", "mymail.list_messages"] {
            let (st, out) = setup.s.call_as(&alice, Method::POST, &invoke_path(tool), Some(json!({"arguments": {}}))).await;
            assert_eq!(st, 200, "{tool} after rotation: {out}");
        }
    }
}
