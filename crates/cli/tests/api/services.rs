//! Service keys and OAuth clients: the precedence matrix checked by real `web_search` calls
//! against a local fake of the Brave Search API that records which key it received;
//! blank-keeps, removal-reverts, permissions, and the OAuth registry with its environment
//! fallback.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::routing::get;

use super::*;

/// What the fake received: (path, subscription token, query).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A fake Brave Search API: records (path, key, query) and answers in Brave's shapes.
async fn fake_brave() -> (String, Seen) {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let record = |path: &'static str, seen: Seen| {
        move |headers: HeaderMap, Query(q): Query<std::collections::HashMap<String, String>>| {
            let seen = seen.clone();
            async move {
                let key = headers
                    .get("x-subscription-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                seen.lock()
                    .unwrap()
                    .push((path.to_owned(), key, q.get("q").cloned().unwrap_or_default()));
                let item = json!({"title": "Rust", "url": "https://www.rust-lang.org/", "description": "A language", "age": "1d"});
                let items = vec![item; 5];
                if path == "web" {
                    axum::Json(json!({"type": "search", "web": {"results": items}}))
                } else {
                    axum::Json(json!({"type": "news", "results": items}))
                }
            }
        }
    };
    let app = Router::new()
        .route("/res/v1/web/search", get(record("web", seen.clone())))
        .route("/res/v1/news/search", get(record("news", seen.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

async fn search(s: &TestServer, token: &str, ws: &str) -> (u16, Value) {
    s.call_as(
        token,
        Method::POST,
        &format!("/api/workspaces/{ws}/tools/web_search/invoke"),
        Some(json!({"arguments": {"query": "rust lang", "count": 3}})),
    )
    .await
}

fn last_key(seen: &Seen) -> String {
    seen.lock()
        .unwrap()
        .last()
        .map(|(_, k, _)| k.clone())
        .unwrap_or_default()
}

db_tests! {
    async fn precedence_matrix_through_web_search(db: Db) {
        let (brave, seen) = fake_brave().await;
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let admin = s.token.clone();
        // the base URL only: no platform key yet
        let (st, v) = s.call(Method::PUT, "/api/admin/service-credentials/brave", Some(json!({"base_url": brave}))).await;
        assert_eq!((st, &v["api_key_set"]), (200, &json!(false)), "{v}");

        for (ws_key, platform_key) in [(false, false), (false, true), (true, false), (true, true)] {
            // arrange this cell of the matrix
            let plat = if platform_key { json!({"api_key": "platform-key-1111", "base_url": brave}) } else { json!({"base_url": brave}) };
            if platform_key {
                assert_eq!(s.call(Method::PUT, "/api/admin/service-credentials/brave", Some(plat)).await.0, 200);
            } else {
                let _ = s.call(Method::DELETE, "/api/admin/service-credentials/brave", None).await;
                assert_eq!(s.call(Method::PUT, "/api/admin/service-credentials/brave", Some(plat)).await.0, 200);
            }
            if ws_key {
                let (st, v) = s.call(Method::PUT, "/api/workspaces/default/services/brave", Some(json!({"api_key": "workspace-key-2222"}))).await;
                assert_eq!(st, 200, "{v}");
            } else {
                let _ = s.call(Method::DELETE, "/api/workspaces/default/services/brave", None).await;
            }
            let (st, v) = search(&s, &admin, "default").await;
            let (_, services) = s.call(Method::GET, "/api/workspaces/default/services", None).await;
            let brave_view = services.as_array().unwrap().iter().find(|x| x["service"] == "brave").unwrap().clone();
            match (ws_key, platform_key) {
                (false, false) => {
                    assert_eq!((st, v["code"].as_str()), (422, Some("not_configured")), "{v}");
                    let detail = v["detail"].as_str().unwrap();
                    assert!(detail.contains("brave") && detail.contains("/api/workspaces/default/services/brave")
                        && detail.contains("/api/admin/service-credentials/brave"), "{detail}");
                    assert_eq!(brave_view["in_effect"], Value::Null);
                }
                (false, true) => {
                    assert_eq!(st, 200, "{v}");
                    assert_eq!(last_key(&seen), "platform-key-1111");
                    assert_eq!(brave_view["in_effect"], "platform");
                }
                (true, _) => {
                    assert_eq!(st, 200, "{v}");
                    assert_eq!(last_key(&seen), "workspace-key-2222");
                    assert_eq!(brave_view["in_effect"], "workspace");
                }
            }
            assert_eq!(brave_view["workspace_key_set"], ws_key);
            assert_eq!(brave_view["platform_key_set"], platform_key);
            assert!(!services.to_string().contains("key-1111") && !services.to_string().contains("key-2222"));
        }
        // results are mapped to {title, url, description} and `count` is honoured
        let (_, v) = search(&s, &admin, "default").await;
        assert_eq!(v["output"].as_array().unwrap().len(), 3, "{v}");
        assert_eq!(v["output"][0], json!({"title": "Rust", "url": "https://www.rust-lang.org/", "description": "A language"}));
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/tools/news_search/invoke", Some(json!({"arguments": {"query": "rust"}}))).await;
        assert_eq!((st, v["output"].as_array().unwrap().len()), (200, 5), "{v}");
        assert_eq!(seen.lock().unwrap().last().unwrap().0, "news");
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/tools/web_search/invoke", Some(json!({"arguments": {"query": ""}}))).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("invalid_arguments")), "{v}");
        let (_, tools) = s.call(Method::GET, "/api/workspaces/default/tools", None).await;
        let std_names: Vec<_> = tools["standard"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert!(std_names.contains(&"web_search") && std_names.contains(&"news_search"), "{std_names:?}");
        assert!(!s.output().contains("key-1111") && !s.output().contains("key-2222"), "keys never logged");
    }

    async fn telegram_is_platform_only_blank_keeps_removal_reverts(db: Db) {
        let (brave, seen) = fake_brave().await;
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let (st, p) = s.call(Method::PUT, "/api/workspaces/default/services/telegram", Some(json!({"api_key": "123:abc"}))).await;
        assert_eq!((st, p["code"].as_str()), (422, Some("not_overridable")), "{p}");
        assert_eq!(s.call(Method::PUT, "/api/admin/service-credentials/telegram", Some(json!({"api_key": "123:platform"}))).await.0, 200);
        let (_, services) = s.call(Method::GET, "/api/workspaces/default/services", None).await;
        let tg = services.as_array().unwrap().iter().find(|x| x["service"] == "telegram").unwrap();
        assert_eq!((&tg["overridable"], &tg["in_effect"]), (&json!(false), &json!("platform")));
        assert_eq!(services.as_array().unwrap().len(), 5);

        assert_eq!(s.call(Method::PUT, "/api/admin/service-credentials/brave", Some(json!({"api_key": "platform-key-3333", "base_url": brave}))).await.0, 200);
        assert_eq!(s.call(Method::PUT, "/api/workspaces/default/services/brave", Some(json!({"api_key": "ws-key-4444"}))).await.0, 200);
        // blank keeps: the workspace key, and the platform key when only the base URL changes
        assert_eq!(s.call(Method::PUT, "/api/workspaces/default/services/brave", Some(json!({"api_key": "  "}))).await.0, 200);
        assert_eq!(search(&s, &s.token, "default").await.0, 200);
        assert_eq!(last_key(&seen), "ws-key-4444");
        let (st, v) = s.call(Method::PUT, "/api/admin/service-credentials/brave", Some(json!({"base_url": brave}))).await;
        assert_eq!((st, &v["api_key_set"]), (200, &json!(true)), "{v}");
        // removing the workspace key reverts to the platform key
        assert_eq!(s.call(Method::DELETE, "/api/workspaces/default/services/brave", None).await.0, 204);
        assert_eq!(s.call(Method::DELETE, "/api/workspaces/default/services/brave", None).await.0, 404);
        assert_eq!(search(&s, &s.token, "default").await.0, 200);
        assert_eq!(last_key(&seen), "platform-key-3333");
        // a new workspace key needs a value
        let (st, p) = s.call(Method::PUT, "/api/workspaces/default/services/brave", Some(json!({}))).await;
        assert_eq!((st, p["errors"][0]["pointer"].as_str()), (422, Some("/api_key")));
        let (st, _) = s.call(Method::PUT, "/api/workspaces/default/services/nosuch", Some(json!({"api_key": "x"}))).await;
        assert_eq!(st, 404);
        let (st, p) = s.call(Method::PUT, "/api/admin/service-credentials/brave", Some(json!({"base_url": "ftp://x"}))).await;
        assert_eq!((st, p["errors"][0]["pointer"].as_str()), (422, Some("/base_url")));
    }

    async fn members_and_other_workspaces_cannot_touch_keys(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let (mid, member) = s.user("m@example.com").await;
        let (oid, other) = s.user("o@example.com").await;
        s.call(Method::PUT, &format!("/api/workspaces/default/members/{mid}"), Some(json!({"role": "member"}))).await;
        s.call(Method::POST, "/api/workspaces", Some(json!({"name": "Other", "slug": "other"}))).await;
        s.call(Method::PUT, &format!("/api/workspaces/other/members/{oid}"), Some(json!({"role": "admin"}))).await;
        assert_eq!(s.call(Method::PUT, "/api/workspaces/default/services/openai", Some(json!({"api_key": "sk-default-5555"}))).await.0, 200);

        let (st, v) = s.call_as(&member, Method::GET, "/api/workspaces/default/services", None).await;
        assert_eq!(st, 200, "members may see which key is in effect");
        assert!(!v.to_string().contains("sk-default"));
        assert_eq!(s.call_as(&member, Method::PUT, "/api/workspaces/default/services/openai", Some(json!({"api_key": "x-1234"}))).await.0, 403);
        assert_eq!(s.call_as(&member, Method::DELETE, "/api/workspaces/default/services/openai", None).await.0, 403);
        for (m, path) in [(Method::GET, "/api/workspaces/default/services"), (Method::DELETE, "/api/workspaces/default/services/openai")] {
            assert_eq!(s.call_as(&other, m, path, None).await.0, 404, "{path}");
        }
        let (_, theirs) = s.call_as(&other, Method::GET, "/api/workspaces/other/services", None).await;
        let openai = theirs.as_array().unwrap().iter().find(|x| x["service"] == "openai").unwrap();
        assert_eq!(openai["workspace_key_set"], false, "another workspace's key is not theirs");
        for (path, body) in [
            ("/api/admin/service-credentials/openai", json!({"api_key": "x-1234"})),
            ("/api/admin/oauth-providers/gmail", json!({"client_id": "y", "client_secret": "z-1234"})),
        ] {
            assert_eq!(s.call_as(&other, Method::GET, path, None).await.0, 403, "{path}");
            assert_eq!(s.call_as(&member, Method::PUT, path, Some(body)).await.0, 403, "{path}");
            assert_eq!(s.call_as(&member, Method::DELETE, path, None).await.0, 403, "{path}");
        }
    }

    async fn oauth_registry_then_environment_then_nothing(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[
            ("APP_URL", "https://chatterfly.example.com/"),
            ("CONNECT_GITHUB_CLIENT_ID", "env-github-id"),
            ("CONNECT_GITHUB_CLIENT_SECRET", "env-github-secret-6666"),
        ])).await;
        let (st, v) = s.call(Method::GET, "/api/admin/oauth-providers/github", None).await;
        assert_eq!(st, 200);
        assert_eq!((&v["source"], &v["client_id"], &v["client_secret_set"]), (&json!("environment"), &json!("env-github-id"), &json!(true)));
        assert_eq!(v["redirect_uri"], "https://chatterfly.example.com/api/auth/connect/github/callback");
        let (_, v) = s.call(Method::GET, "/api/admin/oauth-providers/gmail", None).await;
        assert_eq!((&v["source"], &v["client_secret_set"]), (&Value::Null, &json!(false)));
        assert_eq!(v["redirect_uri"], "https://chatterfly.example.com/api/auth/connect/gmail/callback");

        let (st, p) = s.call(Method::PUT, "/api/admin/oauth-providers/gmail", Some(json!({"client_id": "gid"}))).await;
        assert_eq!((st, p["errors"][0]["pointer"].as_str()), (422, Some("/client_secret")));
        let (st, v) = s.call(Method::PUT, "/api/admin/oauth-providers/gmail", Some(json!({"client_id": "gid", "client_secret": "gsecret-7777"}))).await;
        assert_eq!((st, &v["source"], &v["client_id"]), (200, &json!("registry"), &json!("gid")));
        // blank keeps the secret while the id changes
        let (st, v) = s.call(Method::PUT, "/api/admin/oauth-providers/gmail", Some(json!({"client_id": "gid2", "client_secret": ""}))).await;
        assert_eq!((st, &v["client_id"], &v["client_secret_set"]), (200, &json!("gid2"), &json!(true)));
        // the registry wins over the environment, and removal reverts to it
        assert_eq!(s.call(Method::PUT, "/api/admin/oauth-providers/github", Some(json!({"client_id": "reg-id", "client_secret": "reg-secret-8888"}))).await.0, 200);
        assert_eq!(s.call(Method::GET, "/api/admin/oauth-providers/github", None).await.1["client_id"], "reg-id");
        assert_eq!(s.call(Method::DELETE, "/api/admin/oauth-providers/github", None).await.0, 204);
        assert_eq!(s.call(Method::GET, "/api/admin/oauth-providers/github", None).await.1["source"], "environment");
        assert_eq!(s.call(Method::GET, "/api/admin/oauth-providers/google", None).await.0, 404);
        for secret in ["env-github-secret-6666", "gsecret-7777", "reg-secret-8888"] {
            assert!(!s.output().contains(secret), "{secret} logged");
        }
    }
}
