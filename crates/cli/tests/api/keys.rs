//! Encryption keys at start-up: generated key file, refusals, previous keys, rotation.

use std::path::Path;

use chatterfly_store::Store;
use chatterfly_testkit::fresh_database;
use chatterfly_testkit::server::{Options, random_key, run_command};
use chatterfly_vault::{Key, sealed_key_id};

use super::*;

fn key_env(current: &str, previous: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![("INTEGRATION_ENCRYPTION_KEY".to_owned(), current.to_owned())];
    if let Some(p) = previous {
        env.push(("INTEGRATION_ENCRYPTION_PREVIOUS_KEYS".to_owned(), p.to_owned()));
    }
    env
}

fn opts(env: Vec<(String, String)>) -> Options {
    Options {
        env,
        ..Options::default()
    }
}

async fn key_ids_in_db(url: &str) -> Vec<String> {
    let store = Store::connect(url).await.unwrap();
    let ids = store
        .sealed_values()
        .await
        .unwrap()
        .iter()
        .map(|v| sealed_key_id(&v.sealed).unwrap().to_owned())
        .collect();
    store.close().await;
    ids
}

db_tests! {
    async fn a_different_key_is_refused(db: Db) {
        let (k1, k2) = (random_key(), random_key());
        let s = TestServer::start_with(BIN, db, opts(key_env(&k1, None))).await;
        let body = json!({"name": "A", "slug": "a", "service_type": "http", "base_url": "https://a.example.com",
            "auth": {"type": "bearer", "token": "tok"}});
        assert_eq!(s.call(Method::POST, "/api/workspaces/default/connections", Some(body)).await.0, 201);
        let (db_, _) = s.stop();
        let bin = Path::new(BIN);

        // a different key: refused, clearly, without printing either key
        let err = TestServer::spawn(bin, db_, &opts(key_env(&k2, None))).err().expect("must refuse");
        assert_ne!(err.code, Some(0));
        assert!(err.output.contains("cannot open the stored credentials"), "{}", err.output);
        assert!(err.output.contains("INTEGRATION_ENCRYPTION_PREVIOUS_KEYS") && err.output.contains("keys rotate"), "{}", err.output);
        assert!(!err.output.contains(&k1) && !err.output.contains(&k2));
        // nothing was changed by the refused start: the right key still works
        let s = TestServer::spawn(bin, err.db, &opts(key_env(&k1, None))).expect("the original key starts");
        let (st, c) = s.call(Method::GET, "/api/workspaces/default/connections/a", None).await;
        assert_eq!((st, &c["auth"]["token_set"]), (200, &json!(true)));
    }

    async fn previous_keys_then_rotate(db: Db) {
        let (k1, k2) = (random_key(), random_key());
        let s = TestServer::start_with(BIN, db, opts(key_env(&k1, None))).await;
        for slug in ["a", "b", "c"] {
            let body = json!({"name": slug, "slug": slug, "service_type": "http", "base_url": "https://a.example.com",
                "auth": {"type": "basic", "username": "u", "password": "p"}});
            assert_eq!(s.call(Method::POST, "/api/workspaces/default/connections", Some(body)).await.0, 201);
        }
        let (tdb, _) = s.stop();
        let id1 = Key::parse(&k1).unwrap().id().to_string();
        let id2 = Key::parse(&k2).unwrap().id().to_string();
        assert!(key_ids_in_db(&tdb.url).await.iter().all(|i| *i == id1));

        let bin = Path::new(BIN);
        let (code, out) = run_command(bin, &tdb, &["keys", "status"], &key_env(&k2, None));
        assert_ne!(code, Some(0), "status with the wrong key must refuse: {out}");

        // with the old key as a previous key it starts and reads
        let s = TestServer::spawn(bin, tdb, &opts(key_env(&k2, Some(&k1)))).expect("starts with previous key");
        let (st, c) = s.call(Method::GET, "/api/workspaces/default/connections/a", None).await;
        assert_eq!((st, &c["auth"]["password_set"]), (200, &json!(true)));
        // new writes use the current key already
        let body = json!({"name": "d", "slug": "d", "service_type": "http", "base_url": "https://a.example.com",
            "auth": {"type": "bearer", "token": "t"}});
        assert_eq!(s.call(Method::POST, "/api/workspaces/default/connections", Some(body)).await.0, 201);
        let (tdb, _) = s.stop();

        let (code, out) = run_command(bin, &tdb, &["keys", "rotate"], &key_env(&k2, Some(&k1)));
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("re-sealed 4 of 5") && out.contains("0 remain"), "{out}");
        assert!(key_ids_in_db(&tdb.url).await.iter().all(|i| *i == id2), "nothing left under the old key");
        let (code, out) = run_command(bin, &tdb, &["keys", "rotate"], &key_env(&k2, None));
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("re-sealed 0 of 5"), "{out}");

        // the new key alone now suffices, and the data still opens
        let s = TestServer::spawn(bin, tdb, &opts(key_env(&k2, None))).expect("starts with the new key alone");
        let (st, _) = s.call(Method::PATCH, "/api/workspaces/default/connections/a",
            Some(json!({"auth": {"type": "basic", "username": "", "password": "p2"}}))).await;
        assert_eq!(st, 200, "merging needs the stored secret to open");
    }

    async fn bad_keys_are_refused_without_echo(db: Db) {
        let bin = Path::new(BIN);
        for bad in ["not-a-key", "c2hvcnQ=", &"ab".repeat(31), "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg"] {
            let tdb = fresh_database(db).await;
            let err = TestServer::spawn(bin, tdb, &opts(key_env(bad, None))).err().expect("refused");
            assert!(err.output.contains("32 bytes"), "{bad}: {}", err.output);
            assert!(!err.output.contains(bad) || bad.len() < 12, "{}", err.output);
        }
        let tdb = fresh_database(db).await;
        let err = TestServer::spawn(bin, tdb, &opts(key_env(&random_key(), Some("oops")))).err().expect("refused");
        assert!(err.output.contains("INTEGRATION_ENCRYPTION_PREVIOUS_KEYS"), "{}", err.output);
    }
}

#[tokio::test]
async fn postgres_without_a_key_refuses_to_start() {
    let tdb = fresh_database(Db::Postgres).await;
    let err = TestServer::spawn(Path::new(BIN), tdb, &Options::default())
        .err()
        .expect("refused");
    assert_ne!(err.code, Some(0));
    assert!(
        err.output
            .contains("INTEGRATION_ENCRYPTION_KEY is required with PostgreSQL"),
        "{}",
        err.output
    );
}

#[tokio::test]
async fn sqlite_generates_a_private_key_file_once() {
    let s = TestServer::start(BIN, Db::Sqlite).await;
    let key_file = s.db.dir.path().join("integration.key");
    let out = s.output();
    assert!(out.contains("generated a new encryption key file"), "{out}");
    let body = json!({"name": "A", "slug": "a", "service_type": "http", "base_url": "https://a.example.com",
        "auth": {"type": "bearer", "token": "tok"}});
    assert_eq!(
        s.call(Method::POST, "/api/workspaces/default/connections", Some(body))
            .await
            .0,
        201
    );
    let (tdb, _) = s.stop();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let first = std::fs::read_to_string(&key_file).unwrap();
    assert!(!out.contains(first.trim()), "the key is never printed");
    // a restart reuses the file (and warns no more), and the data opens
    let s = TestServer::spawn(Path::new(BIN), tdb, &Options::default()).expect("restart");
    assert!(!s.output().contains("generated a new encryption key file"));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), first);
    let (st, _) = s
        .call(
            Method::PATCH,
            "/api/workspaces/default/connections/a",
            Some(json!({"auth": {"type": "bearer", "token": "tok2"}})),
        )
        .await;
    assert_eq!(st, 200);
    // the bootstrap happened once: the admin token from the first start still works
    let (tdb, _) = s.stop();
    let (code, out) = run_command(Path::new(BIN), &tdb, &["keys", "status"], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("(current)"), "{out}");
    // a different key in the environment is refused even though the file exists
    let err = TestServer::spawn(
        Path::new(BIN),
        tdb,
        &Options {
            env: vec![("INTEGRATION_ENCRYPTION_KEY".into(), random_key())],
            ..Options::default()
        },
    )
    .err()
    .expect("refused");
    assert!(
        err.output.contains("cannot open the stored credentials"),
        "{}",
        err.output
    );
}
