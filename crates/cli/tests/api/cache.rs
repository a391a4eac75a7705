//! The call-context cache across replicas: a token's calls (of connection tools and of
//! standard tools) are served without a database read while nothing they depend on
//! changes, and a revoked token, a removed member, an edited or a deleted connection stop
//! working on the *other* replica within a second (PostgreSQL: `NOTIFY` and the watcher's
//! poll; SQLite: two servers on one file, the poll).

use std::path::Path;
use std::time::{Duration, Instant};

use chatterfly_testkit::server::{Options, random_key};
use chatterfly_testkit::{fresh_database, httpbin_url};

use super::replicas::same_database;
use super::*;

const TOOL: &str = "/api/workspaces/default/tools/hb.get/invoke";
/// A standard tool: its calls need the caller and their role only.
const STANDARD: &str = "/api/workspaces/default/tools/current_time/invoke";

async fn call(s: &TestServer, token: &str) -> (u16, Value) {
    call_tool(s, token, TOOL).await
}

async fn call_tool(s: &TestServer, token: &str, tool: &str) -> (u16, Value) {
    s.call_as(token, Method::POST, tool, Some(json!({"arguments": {}})))
        .await
}

/// Calls through `s` until `done` holds; the time it took (fails after 3 s).
async fn until(s: &TestServer, token: &str, what: &str, done: impl Fn(u16, &Value) -> bool) -> Duration {
    until_tool(s, token, TOOL, what, done).await
}

async fn until_tool(
    s: &TestServer,
    token: &str,
    tool: &str,
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let (st, v) = call_tool(s, token, tool).await;
        if done(st, &v) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what}: still {st} {v} after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The call-context cache hits a server counted.
async fn hits(s: &TestServer) -> f64 {
    metric(s, "chatterfly_call_context_cache_hits_total").await
}

async fn warm(s: &TestServer, token: &str) {
    for tool in [TOOL, STANDARD] {
        for _ in 0..3 {
            let (st, v) = call_tool(s, token, tool).await;
            assert_eq!(st, 200, "{} {tool}: {v}", s.url);
        }
    }
}

db_tests! {
    async fn changes_reach_the_other_replicas_cache_within_a_second(db: Db) {
        let db = fresh_database(db).await;
        let mut env = local_upstreams(&[]).env;
        env.push(("INTEGRATION_ENCRYPTION_KEY".into(), random_key()));
        // SQLite: both servers open the one file (each has its own data directory)
        env.push(("DATABASE_URL".into(), db.url.clone()));
        let options = Options { env, ..Options::default() };
        let a = TestServer::spawn(Path::new(BIN), same_database(&db), &options).expect("replica a");
        let b = TestServer::spawn(Path::new(BIN), same_database(&db), &options).expect("replica b");
        let body = json!({"name": "hb", "slug": "hb", "service_type": "http", "base_url": httpbin_url(),
            "operations": [{"name": "get", "method": "GET", "path": "/get", "input_schema": {"type": "object"}}]});
        let (st, v) = a.call(Method::POST, "/api/workspaces/default/connections", Some(body)).await;
        assert_eq!(st, 201, "{v}");
        let (uid, token) = a.user("cached@example.com").await;
        let member = format!("/api/workspaces/default/members/{uid}");
        assert_eq!(a.call(Method::PUT, &member, Some(json!({"role": "member"}))).await.0, 200);
        let mut took = Vec::new();

        // a revoked token
        warm(&b, &token).await;
        warm(&a, &token).await;
        // a standard tool's calls come from the cache too (five in a row, once b's watcher
        // has seen the writes above: each one it sees empties the cache)
        let mut served = 0.0;
        for _ in 0..10 {
            let before = hits(&b).await;
            for _ in 0..5 {
                assert_eq!(call_tool(&b, &token, STANDARD).await.0, 200);
            }
            served = hits(&b).await - before;
            if served == 5.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(served, 5.0, "standard tool calls served from the cache");
        let (st, list) = a.call(Method::GET, &format!("/api/users/{uid}/tokens"), None).await;
        assert_eq!(st, 200, "{list}");
        let token_id = list[0]["id"].as_str().unwrap().to_owned();
        assert!(list[0].get("token").is_none() && list[0].get("token_hash").is_none(), "{list}");
        let (st, _) = a.call(Method::DELETE, &format!("/api/users/{uid}/tokens/{token_id}"), None).await;
        assert_eq!(st, 204);
        // on the replica that wrote: at the next call
        assert_eq!(call(&a, &token).await.0, 401);
        assert_eq!(call_tool(&a, &token, STANDARD).await.0, 401);
        took.push(("revoked token", until(&b, &token, "revoked token", |st, _| st == 401).await));
        took.push(("revoked token, standard tool",
            until_tool(&b, &token, STANDARD, "revoked token", |st, _| st == 401).await));

        // a removed member
        let (_, t) = a.call(Method::POST, &format!("/api/users/{uid}/tokens"), Some(json!({"name": "two"}))).await;
        let token = t["token"].as_str().unwrap().to_owned();
        warm(&b, &token).await;
        assert_eq!(a.call(Method::DELETE, &member, None).await.0, 204);
        took.push(("removed member", until(&b, &token, "removed member", |st, _| st == 404).await));
        took.push(("removed member, standard tool",
            until_tool(&b, &token, STANDARD, "removed member", |st, _| st == 404).await));

        // an edited connection: its new address is used
        assert_eq!(a.call(Method::PUT, &member, Some(json!({"role": "member"}))).await.0, 200);
        until(&b, &token, "member added back", |st, _| st == 200).await;
        warm(&b, &token).await;
        let (st, v) = a.call(Method::PATCH, "/api/workspaces/default/connections/hb",
            Some(json!({"base_url": "http://127.0.0.1:9"}))).await;
        assert_eq!(st, 200, "{v}");
        took.push(("edited connection", until(&b, &token, "edited connection",
            |st, v| st != 200 && v["code"] == "upstream_unreachable").await));

        // a deleted connection
        let (st, _) = a.call(Method::PATCH, "/api/workspaces/default/connections/hb",
            Some(json!({"base_url": httpbin_url()}))).await;
        assert_eq!(st, 200);
        until(&b, &token, "restored connection", |st, _| st == 200).await;
        warm(&b, &token).await;
        assert_eq!(a.call(Method::DELETE, "/api/workspaces/default/connections/hb", None).await.0, 204);
        took.push(("deleted connection", until(&b, &token, "deleted connection",
            |st, v| st == 404 && v["code"] == "tool_not_found").await));

        // PostgreSQL: TRUNCATE by hand (no row triggers fire) reaches the caches too
        if db.kind == Db::Postgres {
            let (st, t) = a.call(Method::POST, &format!("/api/users/{uid}/tokens"), Some(json!({"name": "three"}))).await;
            assert_eq!(st, 201);
            let token = t["token"].as_str().unwrap().to_owned();
            let body = json!({"name": "hb", "slug": "hb", "service_type": "http", "base_url": httpbin_url(),
                "operations": [{"name": "get", "method": "GET", "path": "/get", "input_schema": {"type": "object"}}]});
            assert_eq!(a.call(Method::POST, "/api/workspaces/default/connections", Some(body)).await.0, 201);
            until(&b, &token, "recreated connection", |st, _| st == 200).await;
            warm(&b, &token).await;
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
            sqlx::query("TRUNCATE api_tokens").execute(&mut conn).await.unwrap();
            took.push(("TRUNCATE api_tokens", until(&b, &token, "truncated tokens", |st, _| st == 401).await));
        }
        // the calls on b were served from its cache
        let hits = hits(&b).await;
        assert!(hits >= 8.0, "{hits} cache hits on b");
        eprintln!("{:?}: {took:?}, {hits} hits on b", db.kind);
        for (what, t) in took {
            assert!(t < Duration::from_secs(1), "{what} took {t:?} to reach the other replica");
        }
    }
}

/// Tokens are listed and revoked by their owner (or a platform admin) only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_listed_and_revoked_by_their_owner() {
    let s = TestServer::start(BIN, Db::Sqlite).await;
    let (uid, token) = s.user("one@example.com").await;
    let (other, _) = s.user("two@example.com").await;
    let (st, v) = s
        .call_as(&token, Method::GET, &format!("/api/users/{uid}/tokens"), None)
        .await;
    assert_eq!((st, v[0]["current"].as_bool()), (200, Some(true)), "{v}");
    let id = v[0]["id"].as_str().unwrap().to_owned();
    // another user's tokens: 404, listed or revoked
    assert_eq!(
        s.call_as(&token, Method::GET, &format!("/api/users/{other}/tokens"), None)
            .await
            .0,
        404
    );
    let admin = s.call(Method::GET, "/api/me", None).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        s.call_as(&token, Method::DELETE, &format!("/api/users/{admin}/tokens/{id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        s.call_as(&token, Method::DELETE, &format!("/api/users/{uid}/tokens/nope"), None)
            .await
            .0,
        404
    );
    // a web session opened with the token
    let client = chatterfly_testkit::server::test_client();
    let r = client
        .post(format!("{}/api/auth/login", s.url))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me = |cookie: String| {
        let (client, url) = (client.clone(), s.url.clone());
        async move {
            client
                .get(format!("{url}/api/me"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(me(cookie.clone()).await, 200);
    // the user revokes their own token; it no longer works, nor does the session it opened
    assert_eq!(
        s.call_as(&token, Method::DELETE, &format!("/api/users/{uid}/tokens/{id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(s.call_as(&token, Method::GET, "/api/me", None).await.0, 401);
    assert_eq!(me(cookie).await, 401);
}
