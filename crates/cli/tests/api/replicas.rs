//! Several replicas on one PostgreSQL database: started at the same moment (migrations and
//! bootstrap race), then serving the same data with nothing kept in memory between them.

use std::path::Path;

use chatterfly_testkit::server::{Options, random_key};
use chatterfly_testkit::{TestDb, fresh_database};

use super::*;

/// Another server's view of the same database (its own data directory).
pub fn same_database(db: &TestDb) -> TestDb {
    TestDb {
        url: db.url.clone(),
        kind: db.kind,
        dir: tempfile::tempdir().unwrap(),
        admin_token: db.admin_token.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_postgres_database() {
    let db = fresh_database(Db::Postgres).await;
    let options = Options {
        env: vec![("INTEGRATION_ENCRYPTION_KEY".into(), random_key())],
        ..Options::default()
    };
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (d, o) = (same_database(&db), options.clone());
            std::thread::spawn(move || TestServer::spawn(Path::new(BIN), d, &o))
        })
        .collect();
    let servers: Vec<TestServer> = handles
        .into_iter()
        .map(|h| h.join().unwrap().expect("every replica starts"))
        .collect();
    let bootstraps = servers
        .iter()
        .filter(|s| s.output().contains("Created workspace `default`"))
        .count();
    assert_eq!(bootstraps, 1, "exactly one replica bootstraps");

    // a write through one replica is read through the others at once
    let body = json!({"name": "A", "slug": "a", "service_type": "http", "base_url": "https://a.example.com",
        "auth": {"type": "bearer", "token": "t"}});
    assert_eq!(
        servers[0]
            .call(Method::POST, "/api/workspaces/default/connections", Some(body))
            .await
            .0,
        201
    );
    let (st, c) = servers[1]
        .call(
            Method::PATCH,
            "/api/workspaces/default/connections/a",
            Some(json!({"name": "B"})),
        )
        .await;
    assert_eq!((st, c["name"].as_str()), (200, Some("B")));
    let (st, c) = servers[2]
        .call(Method::GET, "/api/workspaces/default/connections/a", None)
        .await;
    assert_eq!(
        (st, c["name"].as_str(), &c["auth"]["token_set"]),
        (200, Some("B"), &json!(true))
    );
    // a token minted on one replica works on another
    let (_, token) = servers[2].user("r@example.com").await;
    let (st, me) = servers[0].call_as(&token, Method::GET, "/api/me", None).await;
    assert_eq!((st, me["email"].as_str()), (200, Some("r@example.com")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_changes_reach_every_replica_at_once() {
    let db = fresh_database(Db::Postgres).await;
    let options = Options {
        env: vec![("INTEGRATION_ENCRYPTION_KEY".into(), random_key())],
        ..Options::default()
    };
    let a = TestServer::spawn(Path::new(BIN), same_database(&db), &options).expect("replica a");
    let b = TestServer::spawn(Path::new(BIN), same_database(&db), &options).expect("replica b");
    let (st, _) = a
        .call(
            Method::PUT,
            "/api/admin/oauth-providers/github",
            Some(json!({"client_id": "one", "client_secret": "s1-secret"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        b.call(Method::GET, "/api/admin/oauth-providers/github", None).await.1["client_id"],
        "one"
    );
    a.call(
        Method::PUT,
        "/api/admin/oauth-providers/github",
        Some(json!({"client_id": "two"})),
    )
    .await;
    assert_eq!(
        b.call(Method::GET, "/api/admin/oauth-providers/github", None).await.1["client_id"],
        "two"
    );
    a.call(
        Method::PUT,
        "/api/workspaces/default/services/brave",
        Some(json!({"api_key": "k-12345"})),
    )
    .await;
    let (_, v) = b.call(Method::GET, "/api/workspaces/default/services", None).await;
    let brave = v.as_array().unwrap().iter().find(|x| x["service"] == "brave").unwrap();
    assert_eq!(brave["in_effect"], "workspace");
    b.call(Method::DELETE, "/api/workspaces/default/services/brave", None)
        .await;
    let (_, v) = a.call(Method::GET, "/api/workspaces/default/services", None).await;
    let brave = v.as_array().unwrap().iter().find(|x| x["service"] == "brave").unwrap();
    assert_eq!(brave["in_effect"], Value::Null);
    drop(db);
}
