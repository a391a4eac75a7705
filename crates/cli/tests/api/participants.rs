//! Participants: roles, onboarding links (single-participant, expiring, revocable,
//! reissuable, kept as a hash), credentials given through the link (keys, and accounts
//! through oauth2-mock-server), calls on a participant's behalf reaching httpbin with that
//! participant's credentials and no other's, and nothing crossing workspaces. Both databases.

use chatterfly_store::Store;
use sha2::Digest;

use super::accounts::{Setup, no_redirects};
use super::*;

const WS: &str = "/api/workspaces/default";

fn httpbin_url() -> String {
    std::env::var("CHATTERFLY_TEST_HTTPBIN_URL").expect("CHATTERFLY_TEST_HTTPBIN_URL: the tool-call tests need httpbin")
}

/// A participant: (id, onboarding token).
async fn participant(s: &TestServer, ws: &str, name: &str, role: &str) -> (String, String) {
    let (st, v) = s
        .call(
            Method::POST,
            &format!("/api/workspaces/{ws}/participants"),
            Some(json!({"name": name, "role": role})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let url = v["onboarding_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/onboard/", s.url)), "{url}");
    (
        v["id"].as_str().unwrap().to_owned(),
        url.rsplit('/').next().unwrap().to_owned(),
    )
}

async fn role(s: &TestServer, ws: &str, name: &str) {
    let (st, v) = s
        .call(
            Method::POST,
            &format!("/api/workspaces/{ws}/participant-roles"),
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
}

/// An onboarding API call with the link's token: (status, body).
async fn onboard(s: &TestServer, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = no_redirects()
        .request(method, format!("{}{path}", s.url))
        .header("x-onboarding-token", token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let st = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (st, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn invoke_for(s: &TestServer, tool: &str, participant: Option<&str>, args: Value) -> (u16, Value) {
    let mut body = json!({"arguments": args});
    if let Some(p) = participant {
        body["participant"] = json!(p);
    }
    s.call(Method::POST, &format!("{WS}/tools/{tool}/invoke"), Some(body))
        .await
}

/// The status the page `/onboard/<token>` answers with.
async fn page_status(s: &TestServer, token: &str) -> u16 {
    no_redirects()
        .get(format!("{}/onboard/{token}", s.url))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Two `participant` connections of role `customer` at httpbin (a key in a header, and
/// Basic auth) and one of role `vendor`.
async fn connections(s: &TestServer) {
    for (slug, auth, role) in [
        (
            "crm",
            json!({"type": "api_key_header", "header": "X-Api-Key"}),
            "customer",
        ),
        ("shop", json!({"type": "basic"}), "customer"),
        ("supply", json!({"type": "bearer"}), "vendor"),
    ] {
        let (st, v) = s
            .call(
                Method::POST,
                &format!("{WS}/connections"),
                Some(json!({"name": slug.to_uppercase(), "slug": slug, "service_type": "http", "base_url": httpbin_url(),
                    "auth": auth, "fulfillment": "participant", "participant_role": role,
                    "operations": [
                        {"name": "headers", "method": "GET", "path": "/headers"},
                        {"name": "login", "method": "GET", "path": "/basic-auth/{{user}}/{{password}}",
                         "input_schema": {"type": "object", "properties": {"user": {"type": "string"}, "password": {"type": "string"}}}}]})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
    }
}

db_tests! {
    async fn a_key_saved_while_the_role_changes_never_outlives_it(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        role(&s, "default", "customer").await;
        role(&s, "default", "vendor").await;
        connections(&s).await;
        let (dee, link) = participant(&s, "default", "Dee", "customer").await;
        let path = format!("{WS}/participants/{dee}");
        for round in 0..40 {
            let (st, _) = s.call(Method::PATCH, &path, Some(json!({"role": "customer"}))).await;
            assert_eq!(st, 200);
            let (put, patch) = tokio::join!(
                onboard(&s, &link, Method::PUT, "/api/onboarding/connections/crm", Some(json!({"key": format!("dee-key-{round:04}")}))),
                s.call(Method::PATCH, &path, Some(json!({"role": "vendor"}))),
            );
            assert_eq!(patch.0, 200, "{patch:?}");
            assert!(put.0 == 200 || put.0 == 409 || put.0 == 404, "round {round}: {put:?}");
            // back in the role: whatever was given for it went with the change
            let (st, _) = s.call(Method::PATCH, &path, Some(json!({"role": "customer"}))).await;
            assert_eq!(st, 200);
            let (_, o) = onboard(&s, &link, Method::GET, "/api/onboarding", None).await;
            let crm = o["connections"].as_array().unwrap().iter().find(|c| c["slug"] == "crm").cloned().unwrap();
            assert_eq!(crm["set"], false, "round {round}: a key outlived the role change (PUT answered {})", put.0);
        }
    }

    async fn participants_give_keys_and_calls_use_exactly_theirs(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        role(&s, "default", "customer").await;
        role(&s, "default", "vendor").await;
        connections(&s).await;
        let (ada, ada_link) = participant(&s, "default", "Ada Lovelace", "customer").await;
        let (bob, bob_link) = participant(&s, "default", "Bob", "customer").await;
        let (vic, _) = participant(&s, "default", "Vic", "vendor").await;

        // the onboarding page's data: the workspace, who, and the connections of the role
        let (st, o) = onboard(&s, &ada_link, Method::GET, "/api/onboarding", None).await;
        assert_eq!(st, 200, "{o}");
        assert_eq!((o["workspace"]["name"].as_str(), o["participant"]["name"].as_str()), (Some("Default"), Some("Ada Lovelace")));
        let slugs: Vec<&str> = o["connections"].as_array().unwrap().iter().map(|c| c["slug"].as_str().unwrap()).collect();
        assert_eq!(slugs, ["crm", "shop"], "only the connections of her role: {o}");
        assert_eq!(o["connections"][0]["fields"], json!(["key"]));
        assert_eq!(o["connections"][1]["fields"], json!(["username", "password"]));
        assert_eq!(page_status(&s, &ada_link).await, 200);

        // bad keys: refused at the field, nothing stored
        for (slug, body, pointer) in [
            ("crm", json!({"key": "line\nbreak"}), "/key"),
            ("crm", json!({"token": "x"}), "/token"),
            ("crm", json!({"key": "kéy✓"}), "/key"),
            // httpbin (like most servers) drops a header value's outer spaces and echoes the
            // rest, which redaction would not know as the key
            ("crm", json!({"key": " ada-key-spaced "}), "/key"),
            ("crm", json!({"key": "k".repeat(16 * 1024 + 1)}), "/key"),
            ("shop", json!({"username": "ada:x", "password": "p"}), "/username"),
            ("shop", json!({"username": "ada"}), "/password"),
        ] {
            let (st, v) = onboard(&s, &ada_link, Method::PUT, &format!("/api/onboarding/connections/{slug}"), Some(body)).await;
            assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some(pointer)), "{v}");
        }
        let (st, v) = onboard(&s, &ada_link, Method::PUT, "/api/onboarding/connections/supply", Some(json!({"token": "x"}))).await;
        assert_eq!(st, 404, "another role's connection: {v}");
        let (_, o) = onboard(&s, &ada_link, Method::GET, "/api/onboarding", None).await;
        assert!(o["connections"].as_array().unwrap().iter().all(|c| c["set"] == false), "{o}");

        // Ada gives hers; Bob gives a different key
        let (st, v) = onboard(&s, &ada_link, Method::PUT, "/api/onboarding/connections/crm", Some(json!({"key": "ada-key-7f3"}))).await;
        assert_eq!((st, v["set"].as_bool()), (200, Some(true)), "{v}");
        assert!(!v.to_string().contains("ada-key-7f3"));
        let (st, _) = onboard(&s, &ada_link, Method::PUT, "/api/onboarding/connections/shop", Some(json!({"username": "ada", "password": "ada-pw-2"}))).await;
        assert_eq!(st, 200);
        let (st, _) = onboard(&s, &bob_link, Method::PUT, "/api/onboarding/connections/crm", Some(json!({"key": "bob-key-9c1"}))).await;
        assert_eq!(st, 200);

        // a call on Ada's behalf reaches httpbin with exactly her key (redacted as hers),
        // Bob's with his
        let (st, v) = invoke_for(&s, "crm.headers", Some(&ada), json!({})).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["output"]["body"]["headers"]["X-Api-Key"], "[REDACTED]", "exactly Ada's key: {v}");
        let (st, v) = invoke_for(&s, "shop.login", Some(&ada), json!({"user": "ada", "password": "ada-pw-2"})).await;
        assert_eq!((st, v["output"]["status"].as_u64()), (200, Some(200)), "httpbin accepted Ada's password: {v}");
        let (st, v) = invoke_for(&s, "crm.headers", Some(&bob), json!({})).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["output"]["body"]["headers"]["X-Api-Key"], "[REDACTED]");
        // Bob's password is not Ada's: with Ada's user and password in the path, Bob's call
        // carries no credentials of his for `shop` at all
        let (st, v) = invoke_for(&s, "shop.login", Some(&bob), json!({"user": "ada", "password": "ada-pw-2"})).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("credentials_required")), "{v}");
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.contains(&bob) && detail.contains("shop") && detail.contains("onboarding link"), "{detail}");
        // another role, an unknown participant, none at all
        let (st, v) = invoke_for(&s, "crm.headers", Some(&vic), json!({})).await;
        assert_eq!((st, v["code"].as_str()), (403, Some("participant_role_mismatch")), "{v}");
        let (st, v) = invoke_for(&s, "crm.headers", Some("01a23850-0000-7000-8000-000000000000"), json!({})).await;
        assert_eq!((st, v["code"].as_str()), (404, Some("participant_not_found")), "{v}");
        let (st, v) = invoke_for(&s, "crm.headers", None, json!({})).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("credentials_required")), "{v}");
        // a participant's call passes no credentials of its own
        let (st, v) = s.call(Method::POST, &format!("{WS}/tools/crm.headers/invoke"), Some(json!({"participant": ada, "credentials": {"key": "x"}}))).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("invalid_credentials")), "{v}");

        // the audit says whose credentials, never what they were
        let (_, audit) = s.call(Method::GET, &format!("{WS}/audit?participant={ada}"), None).await;
        let events = audit["events"].as_array().unwrap();
        assert!(events.len() >= 2 && events.iter().all(|e| e["participant_id"] == ada.as_str()), "{audit}");
        let (_, all) = s.call(Method::GET, &format!("{WS}/audit?limit=100"), None).await;
        assert!(all["events"].as_array().unwrap().iter().any(|e| e["participant_id"] == bob.as_str()));
        for secret in ["ada-key-7f3", "bob-key-9c1", "ada-pw-2"] {
            assert!(!all.to_string().contains(secret));
            assert!(!s.output().contains(secret), "{secret} in the log");
        }

        // admins see who gave what, and when
        let (st, people) = s.call(Method::GET, &format!("{WS}/connections/crm/participants"), None).await;
        assert_eq!(st, 200, "{people}");
        let by_name = |n: &str| people.as_array().unwrap().iter().find(|p| p["name"] == n).cloned().unwrap();
        assert_eq!((by_name("Ada Lovelace")["set"].as_bool(), by_name("Bob")["set"].as_bool()), (Some(true), Some(true)));
        assert!(by_name("Ada Lovelace")["updated_at"].is_string());
        assert_eq!(people.as_array().unwrap().len(), 2, "only the connection's role: {people}");
        let (st, v) = s.call(Method::GET, &format!("{WS}/connections/supply/participants"), None).await;
        assert_eq!((st, v.as_array().map(Vec::len)), (200, Some(1)));
        let (_, p) = s.call(Method::GET, &format!("{WS}/participants/{bob}"), None).await;
        let given: Vec<(String, bool)> = p["credentials"].as_array().unwrap().iter().map(|c| (c["connection"].as_str().unwrap().to_owned(), c["set"].as_bool().unwrap())).collect();
        assert_eq!(given, [("crm".to_owned(), true), ("shop".to_owned(), false)]);
        assert!(!p.to_string().contains("bob-key-9c1"));

        // an admin revokes Bob's key; Bob withdraws nothing more; Ada withdraws hers
        let (st, _) = s.call(Method::DELETE, &format!("{WS}/participants/{bob}/credentials/crm"), None).await;
        assert_eq!(st, 204);
        let (st, v) = invoke_for(&s, "crm.headers", Some(&bob), json!({})).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("credentials_required")), "{v}");
        let (st, _) = s.call(Method::DELETE, &format!("{WS}/participants/{bob}/credentials/crm"), None).await;
        assert_eq!(st, 404);
        let (st, _) = onboard(&s, &ada_link, Method::DELETE, "/api/onboarding/connections/shop", None).await;
        assert_eq!(st, 204);
        let (st, v) = invoke_for(&s, "shop.login", Some(&ada), json!({"user": "ada", "password": "ada-pw-2"})).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("credentials_required")), "{v}");
        // she comes back through her link and updates her key: a blank field keeps it
        let (st, _) = onboard(&s, &ada_link, Method::PUT, "/api/onboarding/connections/crm", Some(json!({"key": ""}))).await;
        assert_eq!(st, 200);
        let (st, _) = invoke_for(&s, "crm.headers", Some(&ada), json!({})).await;
        assert_eq!(st, 200);

        // a participant id is an id
        let (st, v) = invoke_for(&s, "crm.headers", Some(&"x".repeat(65)), json!({})).await;
        assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some("/participant")), "{v}");
        // a new role takes what was given for the old role's connections away
        let (st, _) = onboard(&s, &bob_link, Method::PUT, "/api/onboarding/connections/crm", Some(json!({"key": "bob-key-2"}))).await;
        assert_eq!(st, 200);
        let (st, v) = s.call(Method::PATCH, &format!("{WS}/participants/{bob}"), Some(json!({"role": "vendor"}))).await;
        assert_eq!((st, v["role"].as_str()), (200, Some("vendor")), "{v}");
        let (st, v) = s.call(Method::PATCH, &format!("{WS}/participants/{bob}"), Some(json!({"role": "customer"}))).await;
        assert_eq!(st, 200, "{v}");
        assert!(v["credentials"].as_array().unwrap().iter().all(|c| c["set"] == false), "nothing comes back with the role: {v}");

        // a connection moved to another host drops what participants gave for it
        let (st, v) = s.call(Method::PATCH, &format!("{WS}/connections/crm"), Some(json!({"base_url": httpbin_url().replace("127.0.0.1", "localhost")}))).await;
        assert_eq!(st, 200, "{v}");
        let (st, v) = invoke_for(&s, "crm.headers", Some(&ada), json!({})).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("credentials_required")), "{v}");
    }

    async fn links_expire_are_revoked_reissued_and_forgeries_are_refused(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        role(&s, "default", "customer").await;
        let (ada, first) = participant(&s, "default", "Ada", "customer").await;
        let (_, p) = s.call(Method::GET, &format!("{WS}/participants/{ada}"), None).await;
        assert_eq!(p["link"]["status"], "active");
        assert!(p.get("onboarding_url").is_none(), "the link is shown only when issued: {p}");
        let days = (p["link"]["expires_at"].as_i64().unwrap() - chrono_now()) as f64 / 86_400.0;
        assert!((6.9..=7.0).contains(&days), "seven days by default: {days}");
        // only the hash is stored
        let db_text = super::accounts::database_text(&s.db).await;
        assert!(!db_text.contains(&first), "the token itself is not stored");
        assert!(db_text.contains(&hex::encode(sha2::Sha256::digest(first.as_bytes()))), "its hash is");

        // reissued: the old link is revoked, the new one works
        let (st, v) = s.call(Method::POST, &format!("{WS}/participants/{ada}/link"), Some(json!({"link_days": 2}))).await;
        assert_eq!(st, 200, "{v}");
        let second = v["onboarding_url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
        let (st, v) = onboard(&s, &first, Method::GET, "/api/onboarding", None).await;
        assert_eq!((st, v["code"].as_str()), (410, Some("onboarding_link_revoked")), "{v}");
        assert_eq!(page_status(&s, &first).await, 410);
        let (st, _) = onboard(&s, &second, Method::GET, "/api/onboarding", None).await;
        assert_eq!(st, 200);
        // a reissue with a JSON content type and no body takes the defaults
        let resp = no_redirects()
            .post(format!("{}{WS}/participants/{ada}/link", s.url))
            .bearer_auth(&s.token)
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        let second = v["onboarding_url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
        // revoked
        let (st, _) = s.call(Method::DELETE, &format!("{WS}/participants/{ada}/link"), None).await;
        assert_eq!(st, 204);
        let (st, v) = onboard(&s, &second, Method::PUT, "/api/onboarding/connections/x", Some(json!({}))).await;
        assert_eq!((st, v["code"].as_str()), (410, Some("onboarding_link_revoked")), "{v}");
        let (_, p) = s.call(Method::GET, &format!("{WS}/participants/{ada}"), None).await;
        assert_eq!(p["link"]["status"], "revoked");
        // expired: a link whose time has passed (written straight to the store)
        let store = Store::connect(&s.db.url).await.unwrap();
        let expired = "E".repeat(43);
        store
            .issue_onboarding_link(&ada, &hex::encode(sha2::Sha256::digest(expired.as_bytes())), chrono_now() - 1)
            .await
            .unwrap();
        let (st, v) = onboard(&s, &expired, Method::GET, "/api/onboarding", None).await;
        assert_eq!((st, v["code"].as_str()), (410, Some("onboarding_link_expired")), "{v}");
        assert_eq!(page_status(&s, &expired).await, 410);
        let (_, p) = s.call(Method::GET, &format!("{WS}/participants/{ada}"), None).await;
        assert_eq!(p["link"]["status"], "expired");
        // forged, malformed, missing
        for (token, status) in [
            ("A".repeat(43), 404),
            ("short".to_owned(), 404),
            ("A".repeat(44), 404),
            (format!("{}!", "A".repeat(42)), 404),
            (format!("{}é", "A".repeat(41)), 404),
            ("%2e%2e".to_owned(), 404),
        ] {
            let (st, v) = onboard(&s, &token, Method::GET, "/api/onboarding", None).await;
            assert_eq!((st, v["code"].as_str()), (status, Some("onboarding_link_invalid")), "{token}: {v}");
            // (a client resolves `%2e%2e` in a path before sending it)
            if !token.contains('%') {
                assert_eq!(page_status(&s, &token).await, status, "{token}");
            }
        }
        let (st, v) = s.call(Method::GET, "/api/onboarding", None).await;
        assert_eq!((st, v["code"].as_str()), (401, Some("onboarding_link_invalid")), "a bearer token is not a link: {v}");
        // the page of a refused link is still the page (it says why)
        let resp = no_redirects().get(format!("{}/onboard/{}", s.url, "A".repeat(43))).send().await.unwrap();
        assert!(resp.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
        assert!(resp.text().await.unwrap().contains("/app.js"));

        // bad input when adding participants: nothing stored
        for (body, pointer) in [
            (json!({"name": "X", "role": "nope"}), "/role"),
            (json!({"name": "X", "role": "Not A Role"}), "/role"),
            (json!({"name": " ", "role": "customer"}), "/name"),
            (json!({"name": "A\u{202e}B", "role": "customer"}), "/name"),
            (json!({"name": "X", "role": "customer", "email": "not an address"}), "/email"),
            (json!({"name": "X", "role": "customer", "link_days": 0}), "/link_days"),
            (json!({"name": "X", "role": "customer", "link_days": 91}), "/link_days"),
        ] {
            let (st, v) = s.call(Method::POST, &format!("{WS}/participants"), Some(body.clone())).await;
            assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some(pointer)), "{body}: {v}");
        }
        let (st, v) = s.call(Method::POST, &format!("{WS}/participants"), Some(json!({"name": "X", "role": "customer", "extra": 1}))).await;
        assert_eq!(st, 422, "{v}");
        let (_, list) = s.call(Method::GET, &format!("{WS}/participants"), None).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
        for (body, pointer) in [(json!({"name": "Bad Name"}), "/name"), (json!({"name": "x".repeat(64)}), "/name")] {
            let (st, v) = s.call(Method::POST, &format!("{WS}/participant-roles"), Some(body)).await;
            assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some(pointer)), "{v}");
        }
        let (st, v) = s.call(Method::POST, &format!("{WS}/participant-roles"), Some(json!({"name": "customer"}))).await;
        assert_eq!((st, v["code"].as_str()), (409, Some("role_taken")));
        let (st, v) = s.call(Method::DELETE, &format!("{WS}/participant-roles/customer"), None).await;
        assert_eq!((st, v["code"].as_str()), (409, Some("role_in_use")), "{v}");
        // edits: the role must exist; removing takes the links along
        let (st, v) = s.call(Method::PATCH, &format!("{WS}/participants/{ada}"), Some(json!({"role": "nope"}))).await;
        assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some("/role")));
        let (st, v) = s.call(Method::PATCH, &format!("{WS}/participants/{ada}"), Some(json!({"name": "Ada L.", "email": "ada@example.com"}))).await;
        assert_eq!((st, v["name"].as_str(), v["email"].as_str()), (200, Some("Ada L."), Some("ada@example.com")), "{v}");
        let (st, _) = s.call(Method::DELETE, &format!("{WS}/participants/{ada}"), None).await;
        assert_eq!(st, 204);
        let (st, v) = onboard(&s, &expired, Method::GET, "/api/onboarding", None).await;
        assert_eq!((st, v["code"].as_str()), (404, Some("onboarding_link_invalid")));
        let (st, _) = s.call(Method::DELETE, &format!("{WS}/participant-roles/customer"), None).await;
        assert_eq!(st, 204);
    }

    async fn participants_and_links_cross_no_workspace(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let (a_id, _a) = s.user("a@example.com").await;
        let (b_id, b) = s.user("b@example.com").await;
        let (m_id, m) = s.user("m@example.com").await;
        for (slug, uid) in [("wa", &a_id), ("wb", &b_id)] {
            assert_eq!(s.call(Method::POST, "/api/workspaces", Some(json!({"name": slug, "slug": slug}))).await.0, 201);
            assert_eq!(s.call(Method::PUT, &format!("/api/workspaces/{slug}/members/{uid}"), Some(json!({"role": "admin"}))).await.0, 200);
        }
        assert_eq!(s.call(Method::PUT, &format!("/api/workspaces/wa/members/{m_id}"), Some(json!({"role": "member"}))).await.0, 200);
        for w in ["wa", "wb"] {
            role(&s, w, "customer").await;
            let (st, v) = s.call(Method::POST, &format!("/api/workspaces/{w}/connections"), Some(json!({"name": "Same", "slug": "same",
                "service_type": "http", "base_url": httpbin_url(), "auth": {"type": "bearer"}, "fulfillment": "participant",
                "participant_role": "customer", "operations": [{"name": "headers", "method": "GET", "path": "/headers"}]}))).await;
            assert_eq!(st, 201, "{v}");
        }
        let (pa, link_a) = participant(&s, "wa", "Alice of A", "customer").await;
        let (pb, link_b) = participant(&s, "wb", "Bert of B", "customer").await;
        let (st, _) = onboard(&s, &link_a, Method::PUT, "/api/onboarding/connections/same", Some(json!({"token": "alice-token-a1"}))).await;
        assert_eq!(st, 200);
        // b, admin of wb, reaches nothing of wa's participants by any path
        let paths = [
            (Method::GET, "/api/workspaces/wa/participants".to_owned(), None),
            (Method::POST, "/api/workspaces/wa/participants".to_owned(), Some(json!({"name": "x", "role": "customer"}))),
            (Method::GET, format!("/api/workspaces/wa/participants/{pa}"), None),
            (Method::PATCH, format!("/api/workspaces/wa/participants/{pa}"), Some(json!({"name": "pwned"}))),
            (Method::POST, format!("/api/workspaces/wa/participants/{pa}/link"), Some(json!({}))),
            (Method::DELETE, format!("/api/workspaces/wa/participants/{pa}/link"), None),
            (Method::DELETE, format!("/api/workspaces/wa/participants/{pa}/credentials/same"), None),
            (Method::DELETE, format!("/api/workspaces/wa/participants/{pa}"), None),
            (Method::GET, "/api/workspaces/wa/participant-roles".to_owned(), None),
            (Method::POST, "/api/workspaces/wa/participant-roles".to_owned(), Some(json!({"name": "x"}))),
            (Method::DELETE, "/api/workspaces/wa/participant-roles/customer".to_owned(), None),
            (Method::GET, "/api/workspaces/wa/connections/same/participants".to_owned(), None),
        ];
        for (method, path, body) in &paths {
            let (st, v) = s.call_as(&b, method.clone(), path, body.clone()).await;
            assert_eq!(st, 404, "{method} {path}: {v}");
            assert!(!v.to_string().contains("Alice"), "{v}");
            // wa's participant through wb's own routes is as unknown
            let own = path.replace("/wa/", "/wb/");
            if own.contains(&pa) {
                let (st, v) = s.call_as(&b, method.clone(), &own, body.clone()).await;
                assert_eq!(st, 404, "{method} {own}: {v}");
            }
        }
        // a member of wa manages no participants
        for (method, path, body) in &paths {
            let (st, v) = s.call_as(&m, method.clone(), path, body.clone()).await;
            assert_eq!(st, 403, "{method} {path}: {v}");
        }
        // calls: wa's participant does not exist in wb, and the other way round
        let (st, v) = s.call_as(&b, Method::POST, "/api/workspaces/wb/tools/same.headers/invoke", Some(json!({"participant": pa}))).await;
        assert_eq!((st, v["code"].as_str()), (404, Some("participant_not_found")), "{v}");
        let (st, v) = s.call_as(&m, Method::POST, "/api/workspaces/wa/tools/same.headers/invoke", Some(json!({"participant": pb}))).await;
        assert_eq!((st, v["code"].as_str()), (404, Some("participant_not_found")), "{v}");
        // a member of wa may call on behalf of wa's participant
        let (st, v) = s.call_as(&m, Method::POST, "/api/workspaces/wa/tools/same.headers/invoke", Some(json!({"participant": pa}))).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["output"]["body"]["headers"]["Authorization"], "Bearer [REDACTED]");
        // a link shows and takes only its own workspace's connections
        let (_, o) = onboard(&s, &link_b, Method::GET, "/api/onboarding", None).await;
        assert_eq!((o["workspace"]["slug"].as_str(), o["connections"][0]["set"].as_bool()), (Some("wb"), Some(false)), "{o}");
        let (st, _) = onboard(&s, &link_b, Method::DELETE, "/api/onboarding/connections/same", None).await;
        assert_eq!(st, 404, "Bert has given nothing; Alice's is not his to withdraw");
        let (st, v) = s.call_as(&m, Method::POST, "/api/workspaces/wa/tools/same.headers/invoke", Some(json!({"participant": pa}))).await;
        assert_eq!(st, 200, "Alice's key is still there: {v}");
        let (st, v) = s.call_as(&b, Method::POST, "/api/workspaces/wb/tools/same.headers/invoke", Some(json!({"participant": pb}))).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("credentials_required")), "{v}");
        assert!(!s.output().contains("alice-token-a1"));
    }

    async fn participants_connect_accounts_through_their_link(db: Db) {
        let setup = Setup::start(db).await;
        let s = &setup.s;
        role(s, "default", "customer").await;
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "GitHub", "slug": "gh",
            "service_type": "http", "base_url": setup.oauth.url, "auth": {"type": "bearer", "tiers": ["read", "repo"]},
            "fulfillment": "participant", "participant_role": "customer", "oauth_provider": "github",
            "operations": [{"name": "whoami", "method": "GET", "path": "/user"}]}))).await;
        assert_eq!(st, 201, "{v}");
        assert_eq!(v["auth"]["tiers"], "read repo");
        let (ada, ada_link) = participant(s, "default", "Ada", "customer").await;
        let (bob, bob_link) = participant(s, "default", "Bob", "customer").await;
        let (_, o) = onboard(s, &ada_link, Method::GET, "/api/onboarding", None).await;
        let gh = &o["connections"][0];
        assert_eq!((gh["kind"].as_str(), gh["provider"].as_str(), gh["tiers"].clone()), (Some("account"), Some("github"), json!(["read", "repo"])), "{o}");
        let (st, v) = onboard(s, &ada_link, Method::PUT, "/api/onboarding/connections/gh", Some(json!({"token": "x"}))).await;
        assert_eq!((st, v["code"].as_str()), (409, Some("not_a_key")), "{v}");

        // the flow: authorize at the peer with the connection's tiers, back in the same browser
        let flow = async |link: &str, login: &str| -> (String, String) {
            setup.configure(json!({"identity": {"sub": login, "email": format!("{login}@example.com"), "login": login}})).await;
            let resp = no_redirects()
                .post(format!("{}/api/onboarding/connections/gh/connect", s.url))
                .header("x-onboarding-token", link)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
            assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/api/auth/connect/"), "{cookie}");
            let cookie = cookie.split(';').next().unwrap().to_owned();
            let v: Value = resp.json().await.unwrap();
            let url = url::Url::parse(v["authorize_url"].as_str().unwrap()).unwrap();
            let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
            assert_eq!(q["scope"], "read:user repo");
            let resp = setup.http.get(url.as_str()).send().await.unwrap();
            assert_eq!(resp.status(), 302);
            (resp.headers()["location"].to_str().unwrap().to_owned(), cookie)
        };
        // a callback in another browser (no flow cookie) is refused, nothing stored
        let (callback, _) = flow(&ada_link, "ada-gh").await;
        let resp = setup.http.get(&callback).send().await.unwrap();
        assert_eq!(resp.status(), 403);
        let page = resp.text().await.unwrap();
        assert!(page.contains("another browser"), "{page}");
        assert!(page.contains("url=/onboard?error=state_other_browser"), "back to the onboarding page, not My Accounts: {page}");
        // replayed: the same
        let resp = setup.http.get(&callback).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        assert!(resp.text().await.unwrap().contains("url=/onboard?error=state_used"));
        let (st, v) = invoke_for(s, "gh.whoami", Some(&ada), json!({})).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("credentials_required")), "{v}");
        // the same browser: connected, back on the onboarding page (no token in the redirect)
        for (link, login) in [(&ada_link, "ada-gh"), (&bob_link, "bob-gh")] {
            let (callback, cookie) = flow(link, login).await;
            let resp = setup.http.get(&callback).header("cookie", &cookie).send().await.unwrap();
            assert_eq!(resp.status(), 303);
            let to = resp.headers()["location"].to_str().unwrap().to_owned();
            assert_eq!(to, "/onboard?connected=gh");
            assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"), "the flow cookie is cleared");
        }
        // each participant's call uses their own account
        let (st, v) = invoke_for(s, "gh.whoami", Some(&ada), json!({})).await;
        assert_eq!((st, v["output"]["body"]["login"].as_str()), (200, Some("ada-gh")), "{v}");
        let (st, v) = invoke_for(s, "gh.whoami", Some(&bob), json!({})).await;
        assert_eq!((st, v["output"]["body"]["login"].as_str()), (200, Some("bob-gh")), "{v}");
        // none of it is the admin's own (My Accounts stays empty)
        let (_, mine) = s.call(Method::GET, "/api/me/accounts", None).await;
        assert_eq!(mine, json!([]));
        let (_, o) = onboard(s, &ada_link, Method::GET, "/api/onboarding", None).await;
        assert_eq!((o["connections"][0]["set"].as_bool(), o["connections"][0]["identity"].as_str()), (Some(true), Some("ada-gh")), "{o}");
        let (_, people) = s.call(Method::GET, &format!("{WS}/connections/gh/participants"), None).await;
        assert!(people.as_array().unwrap().iter().all(|p| p["set"] == true), "{people}");

        // Gmail with the participant's own Google account (send and read by default)
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "Their mail", "slug": "pmail",
            "service_type": "gmail", "base_url": setup.gmail.url, "auth": {"type": "oauth"},
            "fulfillment": "participant", "participant_role": "customer"}))).await;
        assert_eq!(st, 201, "{v}");
        setup.configure(json!({"identity": {"sub": "ada-g", "email": "ada@gmail.example", "login": "ada"}})).await;
        let resp = no_redirects()
            .post(format!("{}/api/onboarding/connections/pmail/connect", s.url))
            .header("x-onboarding-token", &ada_link)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let v: Value = resp.json().await.unwrap();
        let scope: String = url::Url::parse(v["authorize_url"].as_str().unwrap()).unwrap().query_pairs()
            .find(|(k, _)| k == "scope").unwrap().1.into_owned();
        assert!(scope.contains("gmail.send") && scope.contains("gmail.readonly"), "{scope}");
        let callback = setup.http.get(v["authorize_url"].as_str().unwrap()).send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
        let landed = setup.http.get(&callback).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(landed.headers()["location"], "/onboard?connected=pmail");
        let (st, v) = invoke_for(s, "pmail.send_email", Some(&ada), json!({"to": "carl@example.com", "subject": "From Ada", "text": "Hi"})).await;
        assert_eq!(st, 200, "{v}");
        let sent = setup.fake(Method::GET, "/__fake/sent", None).await;
        assert_eq!(sent[0]["subject"], "From Ada", "{sent}");
        let (st, v) = invoke_for(s, "pmail.list_messages", Some(&bob), json!({})).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("credentials_required")), "Bob connected no Google account: {v}");

        // a link revoked during the flow: the callback refuses it
        let (callback, cookie) = flow(&bob_link, "bob-gh").await;
        s.call(Method::DELETE, &format!("{WS}/participants/{bob}/link"), None).await;
        let resp = setup.http.get(&callback).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(resp.status(), 410);
        assert!(resp.text().await.unwrap().contains("/onboard?error=link_invalid"));
        // a role change during the flow: the connection no longer asks this participant
        role(s, "default", "partner").await;
        let (cy, cy_link) = participant(s, "default", "Cy", "customer").await;
        let (callback, cookie) = flow(&cy_link, "cy-gh").await;
        let (st, v) = s.call(Method::PATCH, &format!("{WS}/participants/{cy}"), Some(json!({"role": "partner"}))).await;
        assert_eq!(st, 200, "{v}");
        let resp = setup.http.get(&callback).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(resp.status(), 409);
        let page = resp.text().await.unwrap();
        assert!(page.contains("/onboard?error=not_asked") && page.contains("no longer asks you"), "{page}");
        let (st, _) = s.call(Method::PATCH, &format!("{WS}/participants/{cy}"), Some(json!({"role": "customer"}))).await;
        assert_eq!(st, 200);
        let (st, v) = invoke_for(s, "gh.whoami", Some(&cy), json!({})).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("credentials_required")), "nothing was stored for Cy: {v}");
        // Ada withdraws: revoked at the provider, her calls stop
        let revoked_before = setup.stats().await["revoked"].as_array().map_or(0, Vec::len);
        let (st, _) = onboard(s, &ada_link, Method::DELETE, "/api/onboarding/connections/gh", None).await;
        assert_eq!(st, 204);
        assert!(setup.stats().await["revoked"].as_array().map_or(0, Vec::len) > revoked_before, "revoked at the provider");
        let (st, v) = invoke_for(s, "gh.whoami", Some(&ada), json!({})).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("credentials_required")), "{v}");
        assert!(v["detail"].as_str().unwrap().contains(&ada));
    }

    async fn participant_secrets_and_links_leak_nowhere(db: Db) {
        let mut options = local_upstreams(&[]);
        options.rust_log = "trace".into();
        let setup = Setup::start_with(db, options).await;
        let s = &setup.s;
        role(s, "default", "customer").await;
        role(s, "default", "vendor").await;
        connections(s).await;
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "GitHub", "slug": "gh",
            "service_type": "http", "base_url": setup.oauth.url, "auth": {"type": "bearer"},
            "fulfillment": "participant", "participant_role": "customer", "oauth_provider": "github",
            "operations": [{"name": "whoami", "method": "GET", "path": "/user"}]}))).await;
        assert_eq!(st, 201, "{v}");
        let run = uuid::Uuid::new_v4().simple().to_string();
        let key = format!("PCANARY{run}key");
        let password = format!("PCANARY{run}pw");
        let (ada, link) = participant(s, "default", "Ada", "customer").await;
        let mut answers = String::new();
        let (_, v) = onboard(s, &link, Method::PUT, "/api/onboarding/connections/crm", Some(json!({"key": key}))).await;
        answers.push_str(&v.to_string());
        let (_, v) = onboard(s, &link, Method::PUT, "/api/onboarding/connections/shop", Some(json!({"username": "ada", "password": password}))).await;
        answers.push_str(&v.to_string());
        // a rejected key carries the canary in its proper field
        let (st, v) = onboard(s, &link, Method::PUT, "/api/onboarding/connections/crm", Some(json!({"key": format!("{key}\r\nX: y")}))).await;
        assert_eq!(st, 422);
        answers.push_str(&v.to_string());
        // the OAuth account, through the browser flow
        let resp = no_redirects()
            .post(format!("{}/api/onboarding/connections/gh/connect", s.url))
            .header("x-onboarding-token", &link)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let url: Value = resp.json().await.unwrap();
        let callback = setup.http.get(url["authorize_url"].as_str().unwrap()).send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
        let landed = setup.http.get(&callback).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(landed.status(), 303);
        answers.push_str(landed.headers()["location"].to_str().unwrap());
        for (tool, args) in [("crm.headers", json!({})), ("shop.login", json!({"user": "ada", "password": password})), ("gh.whoami", json!({}))] {
            let (st, v) = invoke_for(s, tool, Some(&ada), args).await;
            assert_eq!(st, 200, "{tool}: {v}");
            answers.push_str(&v.to_string());
        }
        for path in [format!("{WS}/participants"), format!("{WS}/participants/{ada}"), format!("{WS}/connections/crm/participants"),
            format!("{WS}/connections/gh/participants"), format!("{WS}/audit?limit=100"), format!("{WS}/connections/crm")] {
            answers.push_str(&s.call(Method::GET, &path, None).await.1.to_string());
        }
        let (_, o) = onboard(s, &link, Method::GET, "/api/onboarding", None).await;
        answers.push_str(&o.to_string());
        // the page of the link (its path is in the request log)
        assert_eq!(page_status(s, &link).await, 200);
        s.call(Method::GET, "/api/health", None).await;

        let stats = setup.stats().await;
        let mut secrets = vec![key.clone(), password.clone(), format!("PCANARY{run}")];
        for t in stats["issued"].as_array().into_iter().chain(stats["codes"].as_array()).flatten() {
            secrets.push(t.as_str().unwrap().to_owned());
        }
        assert!(secrets.len() >= 5, "the peer's tokens and codes are in the check: {stats}");
        let mut forms = super::canary::forms(&secrets);
        // the onboarding token: in no answer but the one that issued it, no log line, and
        // not in the database
        forms.push(link.clone());
        super::canary::assert_clean("the answers", &answers, &forms);
        let log = s.output();
        assert!(log.contains("/onboard/…"), "the page's path is logged without its token");
        super::canary::assert_clean("the log (trace)", &log, &forms);
        let db_text = super::accounts::database_text(&s.db).await;
        assert!(db_text.contains("Ada"), "the database was read");
        super::canary::assert_clean("the database", &db_text, &forms);
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
