//! Change notes for caches that must stay correct across replicas.
//!
//! A call's context (token → user, workspace and role, connection and operation) is read
//! from [`WATCHED`] tables. Database triggers (installed on start, one set per database)
//! move the `change_epoch` counter forward on every write to them, whoever writes: this
//! server, another replica, the CLI or an operator's SQL. On PostgreSQL the trigger also
//! sends a `NOTIFY`, which wakes every replica's watcher at once. Each replica's watcher
//! reads the counter every [`POLL`] (and at once on a notification) and, when it moved,
//! moves [`Changes::generation`] forward, which invalidates everything cached under the old
//! one. A watcher that has not read the counter for [`FRESH`] turns caching off
//! ([`Changes::generation`] answers `None`) until it reads it again, so a lost connection
//! cannot keep a revoked token working.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Executor;

use crate::{Backend, Result, Store};

/// The tables a call's context is read from.
pub const WATCHED: &[&str] = &[
    "users",
    "api_tokens",
    "workspaces",
    "memberships",
    "connections",
    "connection_operations",
];

/// How often a watcher reads the counter.
pub const POLL: Duration = Duration::from_millis(200);
/// How old the watcher's last read may be before caches are bypassed.
pub const FRESH: Duration = Duration::from_millis(800);
/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "chatterfly_changes";

/// This process's view of the change counter.
#[derive(Debug)]
pub struct Changes {
    started: Instant,
    generation: AtomicU64,
    db_epoch: AtomicI64,
    /// Milliseconds since `started` of the watcher's last successful read; 0: never.
    last_read_ms: AtomicU64,
    watching: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Default for Changes {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            generation: AtomicU64::new(1),
            db_epoch: AtomicI64::new(i64::MIN),
            last_read_ms: AtomicU64::new(0),
            watching: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        }
    }
}

impl Changes {
    /// The generation caches stamp entries with, or `None` when nothing may be served from
    /// a cache (no watcher, or its last read is older than [`FRESH`]). Read it before
    /// reading the database: an entry is good while the generation is the same.
    pub fn generation(&self) -> Option<u64> {
        if !self.watching.load(Ordering::Acquire) {
            return None;
        }
        let last = self.last_read_ms.load(Ordering::Acquire);
        let now = self.now_ms();
        if last == 0 || now.saturating_sub(last) > FRESH.as_millis() as u64 {
            return None;
        }
        Some(self.generation.load(Ordering::Acquire))
    }

    /// Something this process wrote may have changed a watched table: invalidate now,
    /// without waiting for the watcher.
    pub fn note_local(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn saw(&self, epoch: i64) {
        if self.db_epoch.swap(epoch, Ordering::AcqRel) != epoch {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        self.last_read_ms.store(self.now_ms(), Ordering::Release);
    }
}

impl Store {
    /// This process's view of the change counter (shared by every clone of the store).
    pub fn changes(&self) -> &Arc<Changes> {
        &self.changes
    }

    /// The change counter as the database has it.
    pub async fn change_epoch(&self) -> Result<i64> {
        // read to the end (not `fetch_one`): a SQLite statement left unfinished keeps its
        // connection's read snapshot open, and later queries on it would read the past
        let rows: Vec<i64> = sqlx::query_scalar("SELECT n FROM change_epoch WHERE id = 1")
            .fetch_all(&self.pool)
            .await?;
        rows.first().copied().ok_or(crate::StoreError::NotFound)
    }

    /// Installs the triggers that move the counter (idempotent; replicas starting at once
    /// are serialized by an advisory lock on PostgreSQL, by the write lock on SQLite).
    pub(crate) async fn install_change_triggers(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => {
                let mut tx = self.write_tx().await?;
                for table in WATCHED {
                    for event in ["INSERT", "UPDATE", "DELETE"] {
                        let ddl = format!(
                            "CREATE TRIGGER IF NOT EXISTS cf_changes_{table}_{} AFTER {event} ON {table} \
                             BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; END",
                            event.to_ascii_lowercase()
                        );
                        tx.execute(sqlx::AssertSqlSafe(ddl)).await?;
                    }
                }
                tx.commit().await?;
            }
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                tx.execute("SELECT pg_advisory_xact_lock(7242031117)").await?;
                tx.execute(sqlx::AssertSqlSafe(format!(
                    "CREATE OR REPLACE FUNCTION cf_note_change() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN UPDATE change_epoch SET n = n + 1 WHERE id = 1; PERFORM pg_notify('{CHANNEL}', ''); \
                     RETURN NULL; END $$"
                )))
                .await?;
                for table in WATCHED {
                    // TRUNCATE too: the first thing an operator reaches for to cut everyone off
                    tx.execute(sqlx::AssertSqlSafe(format!(
                        "DROP TRIGGER IF EXISTS cf_changes_{table} ON {table}"
                    )))
                    .await?;
                    tx.execute(sqlx::AssertSqlSafe(format!(
                        "CREATE TRIGGER cf_changes_{table} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} \
                         FOR EACH STATEMENT EXECUTE FUNCTION cf_note_change()"
                    )))
                    .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Starts this process's watcher (once; later calls do nothing): reads the counter
    /// every [`POLL`], and on PostgreSQL also at once when a notification comes.
    pub fn watch_changes(&self) {
        if self.changes.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(epoch) = store.change_epoch().await {
                    store.changes.saw(epoch);
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = store.changes.wake.notified() => {}
                }
            }
        });
        if self.backend == Backend::Postgres
            && let Some(url) = self.url.clone()
        {
            let changes = self.changes.clone();
            tokio::spawn(async move {
                loop {
                    if let Ok(mut listener) = sqlx::postgres::PgListener::connect(&url).await
                        && listener.listen(CHANNEL).await.is_ok()
                    {
                        while listener.recv().await.is_ok() {
                            changes.wake.notify_one();
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
    }
}
