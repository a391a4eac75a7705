//! Persistence for Chatterfly on SQLite (the embedded default) and PostgreSQL (for several
//! replicas), through one `sqlx::AnyPool` and one set of query texts.
//!
//! The schema uses only types both databases share (text, big integers), placeholders are
//! `$1, $2, …` (which SQLite accepts too), and one migrations folder serves both, applied
//! on start. The store keeps no state in memory but its view of the change counter
//! ([`changes`]), which tells caches above it when to forget: any number of servers can
//! share one PostgreSQL database.
//!
//! The store never sees a secret in plain text: sealed columns hold what the vault made, and
//! [`aad`] is the one place that names the associated data binding a sealed value to its row.

/// A query text built with `format!` from this crate's own constants (column lists, table
/// names from the sealed-column list, placeholder numbers), never from input.
macro_rules! sql {
    ($($t:tt)*) => { sqlx::AssertSqlSafe(format!($($t)*)) };
}

pub mod aad;
mod accounts;
mod agents;
mod audit;
mod calls;
pub mod changes;
mod connections;
mod invitations;
mod participants;
mod services;
mod sessions;
mod tenancy;
mod vault;
mod workflows;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor};

pub use accounts::{
    AccountOwner, AccountRecord, AccountWrite, OAuthState, PersonalCredentials, StateTaken, personal_credentials_id,
};
pub use agents::{AgentRecord, AgentWrite, NewStep, RunEnd, RunRecord, StepRecord};
pub use audit::{AuditEvent, AuditFilter, NewAuditEvent};
pub use calls::CallContext;
pub use connections::{ConnectionRecord, NewConnection, SealedUpdate, SourceMeta};
pub use invitations::Invitation;
pub use participants::{
    LinkLookup, LinkRecord, ParticipantCredentials, ParticipantRecord, ParticipantRoleRecord, ParticipantWrite,
    RoleDelete, participant_credentials_id,
};
pub use services::{EndpointOverrides, OAuthClient, PLATFORM, ServiceCredential, service_credential_id};
pub use sessions::SessionOwner;
pub use tenancy::{Member, Membership, NewUser, TokenOwner, User, Workspace};
pub use vault::{SealedValue, VaultRewrite};
pub use workflows::{
    DeployedTools, EVENT_FIELD_BYTES, FencedStepWrite, NewWorkflowRun, NewWorkflowStep, RunEnding, StepWrite,
    WorkflowRecord, WorkflowRunFilter, WorkflowRunRecord, WorkflowStepRecord, WorkflowVersion, now_ms,
};

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pooled PostgreSQL connection idle this long is pinged before it is used again.
const PING_AFTER_IDLE: Duration = Duration::from_secs(5);

/// What went wrong in the store, in the store's own terms.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; `what` names it (`slug`, `email`, …).
    #[error("{what} is already taken")]
    Conflict { what: &'static str },
    #[error("not found")]
    NotFound,
    /// A stored row could not be read back into domain types: data written by something else.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Maps a unique violation to [`StoreError::Conflict`].
fn conflict(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict { what },
        _ => StoreError::Database(e),
    }
}

/// The handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// Where writes go. On SQLite, one connection of its own: writers wait their turn for
    /// it in order, in the process, instead of polling the file's lock (SQLite's busy
    /// handler sleeps up to 100 ms between tries, and a writer can lose every race for
    /// seconds under load). On PostgreSQL, the same pool.
    writer: AnyPool,
    backend: Backend,
    /// The database URL, for connections outside the pool (PostgreSQL's `LISTEN`).
    url: Option<String>,
    /// This process's view of the change counter ([`changes`]).
    changes: std::sync::Arc<changes::Changes>,
}

impl Store {
    /// Connects to `sqlite://…` or `postgres://…` and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                "the database URL must start with sqlite: or postgres://".into(),
            )));
        };
        let options = AnyConnectOptions::from_str(url)?;
        // sqlx pings every connection it hands out unless told otherwise: a second round trip
        // (PostgreSQL) or thread hop (SQLite) for every query. Connections are pinged when
        // they go back to the pool anyway, so a SQLite file's are never re-tested, and a
        // PostgreSQL connection only after it sat idle for a while (the server may have
        // restarted or dropped it since).
        let sqlite_options = |max: u32, wait: u64| {
            AnyPoolOptions::new()
                .max_connections(max)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(wait))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; \
                         PRAGMA busy_timeout = 30000; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                        Ok(())
                    })
                })
        };
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                let pool = sqlite_options(8, 10).connect_with(options.clone()).await?;
                // a writer waits its turn as long as SQLite's busy timeout would have let it
                let writer = sqlite_options(1, 30).connect_with(options).await?;
                (pool, writer)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= PING_AFTER_IDLE {
                                conn.ping().await?;
                            }
                            Ok(true)
                        })
                    })
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                (pool.clone(), pool)
            }
        };
        let store = Self {
            pool,
            writer,
            backend,
            url: Some(url.to_owned()),
            changes: Default::default(),
        };
        store.migrate().await?;
        store.install_change_triggers().await?;
        Ok(store)
    }

    /// Applies the migrations. One folder serves both databases because the schema keeps
    /// to what both share; a migration that ever needs database-specific SQL can branch on
    /// [`Backend`] here. On PostgreSQL sqlx takes an advisory lock, so replicas starting at
    /// once apply each migration once.
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so it waits for other writers (busy_timeout) instead of failing
    /// when a read inside it would later need upgrading to a write.
    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pools' connections: (open, idle), the SQLite writer's included.
    pub fn pool_state(&self) -> (u32, usize) {
        let (open, idle) = (self.pool.size(), self.pool.num_idle());
        match self.backend {
            Backend::Sqlite => (open + self.writer.size(), idle + self.writer.num_idle()),
            Backend::Postgres => (open, idle),
        }
    }

    /// Workflow runs by status (`queued`, `running`): the work waiting in the database.
    pub async fn workflow_run_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM workflow_runs WHERE status IN ('queued', 'running') GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// Now, as stored: RFC 3339 UTC with milliseconds (sorts as text).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new row id: UUID v7 (time-ordered).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
