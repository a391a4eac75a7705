//! Test helpers shared by the crates' integration tests.
//!
//! - [`fresh_database`]: an empty SQLite file in a temp dir, or a new database on the
//!   PostgreSQL cluster that `scripts/test.sh` starts (`CHATTERFLY_TEST_POSTGRES_URL`).
//!   A PostgreSQL test without that variable fails loudly; it never skips.
//! - [`db_tests!`]: writes each test twice, once per database.
//! - [`server::TestServer`]: the real `chatterfly` binary on a random port, its logs kept.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

pub mod browser;
pub mod peers;
pub mod server;

use sqlx::Connection;
use tempfile::TempDir;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A fresh, empty database; the SQLite file lives as long as this value.
pub struct TestDb {
    pub url: String,
    pub kind: Db,
    pub dir: TempDir,
    /// The bootstrap admin token a server on this database is started with; the same
    /// across restarts, since bootstrap happens once per database.
    pub admin_token: String,
}

pub const PG_ENV: &str = "CHATTERFLY_TEST_POSTGRES_URL";

/// The PostgreSQL admin URL; panics with instructions when the test command did not set it.
pub fn postgres_admin_url() -> String {
    std::env::var(PG_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{PG_ENV} is not set. PostgreSQL tests need the throwaway cluster that scripts/test.sh starts; \
             run the suite with `scripts/test.sh` (or start one with scripts/postgres.sh and export {PG_ENV})"
            )
        })
}

pub const HTTPBIN_ENV: &str = "CHATTERFLY_TEST_HTTPBIN_URL";

/// The httpbin peer's base URL; panics with instructions when the test command did not
/// start it.
pub fn httpbin_url() -> String {
    std::env::var(HTTPBIN_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{HTTPBIN_ENV} is not set. Tool-call tests need httpbin, which scripts/test.sh starts; \
             run the suite with `scripts/test.sh` (or start it with scripts/httpbin.sh PORT and export {HTTPBIN_ENV})"
            )
        })
}

const API_DOC_ENV: &str = "CHATTERFLY_TEST_API_DOC_TOOLS";

/// The directory holding the tools that check the API description (scripts/api-doc-tools.sh:
/// `node/node_modules` and `venv`); panics with instructions when it is not installed.
pub fn api_doc_tools() -> std::path::PathBuf {
    let dir = std::env::var(API_DOC_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{API_DOC_ENV} is not set. The API description tests need swagger-parser, openapi-spec-validator, openapi-typescript and schemathesis, which scripts/test.sh installs; \
             run the suite with `scripts/test.sh` (or export {API_DOC_ENV}=$(scripts/api-doc-tools.sh))"
            )
        });
    let dir = std::path::PathBuf::from(dir);
    assert!(
        dir.join("node/node_modules/openapi-typescript").is_dir()
            && dir.join("venv/bin/openapi-spec-validator").is_file()
            && dir.join("venv/bin/st").is_file(),
        "{API_DOC_ENV}={} does not hold the tools; run scripts/api-doc-tools.sh",
        dir.display()
    );
    dir
}

const SPECS_ENV: &str = "CHATTERFLY_TEST_SPECS_DIR";

/// The `node_modules` directory holding the OpenAPI corpus (scripts/specs.sh); panics with
/// instructions when the test command did not install it.
pub fn specs_dir() -> std::path::PathBuf {
    let dir = std::env::var(SPECS_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{SPECS_ENV} is not set. The importer tests need the OpenAPI corpus, which scripts/test.sh installs; \
             run the suite with `scripts/test.sh` (or export {SPECS_ENV}=$(scripts/specs.sh))"
            )
        });
    let dir = std::path::PathBuf::from(dir);
    assert!(
        dir.join("@readme/oas-examples").is_dir(),
        "{SPECS_ENV}={} holds no @readme/oas-examples; run scripts/specs.sh",
        dir.display()
    );
    dir
}

/// Creates a fresh database of the given kind.
pub async fn fresh_database(kind: Db) -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match kind {
        Db::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("chatterfly.db").display()),
        Db::Postgres => {
            let admin = postgres_admin_url();
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin}: {e}"));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create database");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            format!("{base}/{name}")
        }
    };
    let admin_token = format!("cft_test_{}", uuid::Uuid::new_v4().simple());
    TestDb {
        url,
        kind,
        dir,
        admin_token,
    }
}

/// PostgreSQL only: ends every other session on the test's database (what a server restart
/// or a dropped network connection does to a pool's idle connections); the number ended.
pub async fn terminate_other_sessions(db: &TestDb) -> i64 {
    assert_eq!(db.kind, Db::Postgres, "only PostgreSQL has sessions to end");
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let ended: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut conn)
    .await
    .expect("terminate");
    ended.iter().filter(|(ok,)| *ok).count() as i64
}

/// Declares each `async fn name(db: Db) { … }` as two tests, `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! db_tests {
    ($(async fn $name:ident($db:ident : Db) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($db: $crate::Db) $body
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() { run($crate::Db::Sqlite).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() { run($crate::Db::Postgres).await }
            }
        )*
    };
}
