//! Configuration: one typed struct, from flags or the environment, shared by every command.
//! Encryption keys are read from the environment only (never flags, so they stay out of
//! process listings and shell history).

use std::path::PathBuf;

/// Settings common to `serve` and every other command.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Directory for the embedded SQLite database and the generated key file.
    #[arg(
        long,
        env = "CHATTERFLY_DATA_DIR",
        default_value = "./chatterfly-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Address to listen on.
    #[arg(long, env = "CHATTERFLY_ADDR", default_value = "127.0.0.1:8080", global = true)]
    pub addr: String,

    /// `postgres://…` to keep all state in PostgreSQL (default: SQLite in the data dir).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Public base URL (default `http://<addr>`); OAuth redirect URIs are built from it.
    #[arg(long, env = "APP_URL", global = true)]
    pub app_url: Option<String>,

    /// Largest request body accepted on ordinary routes, in bytes.
    #[arg(long, env = "CHATTERFLY_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_body_bytes: usize,

    /// Largest connection document (create, edit, import), in bytes.
    #[arg(long, env = "CHATTERFLY_MAX_SPEC_BYTES", default_value_t = 32 * 1024 * 1024, global = true)]
    pub max_spec_bytes: usize,

    /// Request bodies of all requests in flight together, in bytes: a request waits for room
    /// (at most the body read timeout, then 503) rather than push the server past it
    /// (default: four times the spec cap).
    #[arg(long, env = "CHATTERFLY_MAX_INFLIGHT_BODY_BYTES", global = true)]
    pub max_inflight_body_bytes: Option<usize>,

    /// Upstream answers being handled at once, server-wide, counted as what they cost in
    /// memory (a JSON answer about 24 times its size, any other 3 times; answers under
    /// 64 KiB free): a call whose answer finds no room waits up to 10 s, then 503
    /// `server_busy`.
    #[arg(
        long,
        env = "CHATTERFLY_MAX_INFLIGHT_ANSWER_BYTES",
        default_value_t = chatterfly_egress::answers::DEFAULT_BYTES,
        global = true
    )]
    pub max_inflight_answer_bytes: usize,

    /// Most client connections open at once; more wait in the listen backlog.
    #[arg(long, env = "CHATTERFLY_MAX_CONNECTIONS", default_value_t = 4096, global = true)]
    pub max_connections: usize,

    /// Time a client may read nothing of an answer being sent before its connection is
    /// closed, in milliseconds (any progress starts it again).
    #[arg(
        long,
        env = "CHATTERFLY_WRITE_STALL_TIMEOUT_MS",
        default_value_t = 30_000,
        global = true
    )]
    pub write_stall_timeout_ms: u64,

    /// Time a client has to send a request's headers (and that an idle keep-alive
    /// connection stays open), in milliseconds.
    #[arg(
        long,
        env = "CHATTERFLY_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub header_read_timeout_ms: u64,

    /// Time a client has to send a request's whole body, in milliseconds (408 after it).
    #[arg(
        long,
        env = "CHATTERFLY_BODY_READ_TIMEOUT_MS",
        default_value_t = 60_000,
        global = true
    )]
    pub body_read_timeout_ms: u64,

    /// The operator's exceptions to SSRF protection: comma-separated CIDRs, addresses and
    /// host names (`*.corp.example` for a whole domain). Empty by default.
    #[arg(long, env = "CHATTERFLY_ALLOW_PRIVATE", default_value = "", global = true)]
    pub allow_private: String,

    /// Outbound calls: connect timeout, in milliseconds.
    #[arg(
        long,
        env = "CHATTERFLY_EGRESS_CONNECT_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub egress_connect_timeout_ms: u64,

    /// Outbound calls: total time for one call, redirects and body included, in milliseconds.
    #[arg(long, env = "CHATTERFLY_EGRESS_TIMEOUT_MS", default_value_t = 30_000, global = true)]
    pub egress_timeout_ms: u64,

    /// Outbound calls: largest response body, in bytes.
    #[arg(long, env = "CHATTERFLY_EGRESS_MAX_RESPONSE_BYTES", default_value_t = 10 * 1024 * 1024, global = true)]
    pub egress_max_response_bytes: usize,

    /// Outbound calls: most redirects followed.
    #[arg(long, env = "CHATTERFLY_EGRESS_MAX_REDIRECTS", default_value_t = 5, global = true)]
    pub egress_max_redirects: usize,

    /// Agents: how long one model turn may take (the provider's answer), in seconds.
    #[arg(long, env = "CHATTERFLY_MODEL_TIMEOUT_SECS", default_value_t = 120, global = true)]
    pub model_timeout_secs: u64,

    /// Agents: how often a model turn refused with 429, 500, 502, 503, 504 or 529 is asked
    /// again (after the provider's Retry-After, up to 20 s, else 1 s, then 2 s, …).
    #[arg(long, env = "CHATTERFLY_MODEL_RETRIES", default_value_t = 2, global = true)]
    pub model_retries: u32,

    /// Agents: a run whose server has not marked it alive for this many seconds (the
    /// server stopped) is ended as failed by any replica.
    #[arg(long, env = "CHATTERFLY_RUN_STALE_SECS", default_value_t = 60, global = true)]
    pub run_stale_secs: u64,

    /// The log's format: `text` (default) or `json` (one object per line).
    #[arg(long, env = "CHATTERFLY_LOG_FORMAT", value_enum, default_value_t = crate::logging::LogFormat::Text, global = true)]
    pub log_format: crate::logging::LogFormat,

    /// Tool calls one workspace may have under way on one server at once (more are refused
    /// with 429 `workspace_busy` and `Retry-After`).
    #[arg(
        long,
        env = "CHATTERFLY_MAX_CALLS_PER_WORKSPACE",
        default_value_t = 64,
        global = true
    )]
    pub max_calls_per_workspace: u32,

    /// `/metrics` (Prometheus): the bearer token it asks for. Without one, only addresses in
    /// `CHATTERFLY_METRICS_ALLOW` may read it.
    #[arg(long, env = "CHATTERFLY_METRICS_TOKEN", hide_env_values = true, global = true)]
    pub metrics_token: Option<String>,

    /// `/metrics`: client addresses (CIDRs) that may read it without the token.
    #[arg(
        long,
        env = "CHATTERFLY_METRICS_ALLOW",
        default_value = "127.0.0.1/32,::1/128",
        global = true
    )]
    pub metrics_allow: String,

    /// Agents: runs one workspace may have going on at once (more are refused with 429).
    #[arg(long, env = "CHATTERFLY_MAX_RUNS_PER_WORKSPACE", default_value_t = 20, global = true)]
    pub max_runs_per_workspace: u32,

    /// Workflows: how long (ms) a replica holds a run it executes without renewing its
    /// lease; a run whose replica died is taken over this long after its last renewal.
    #[arg(long, env = "CHATTERFLY_WORKFLOW_LEASE_MS", default_value_t = 4000, global = true)]
    pub workflow_lease_ms: u64,

    /// Workflows: runs one replica executes at once.
    #[arg(long, env = "CHATTERFLY_WORKFLOW_WORKERS", default_value_t = 32, global = true)]
    pub workflow_workers: usize,

    /// Workflows: runs of one workspace executing at once, all replicas together (its
    /// other runs wait, and other workspaces' runs go first).
    #[arg(
        long,
        env = "CHATTERFLY_WORKFLOW_WORKSPACE_SHARE",
        default_value_t = 16,
        global = true
    )]
    pub workflow_workspace_share: u32,

    /// Workflows: runs one workspace may have queued or running (more: 429).
    #[arg(
        long,
        env = "CHATTERFLY_MAX_WORKFLOW_RUNS_PER_WORKSPACE",
        default_value_t = 1000,
        global = true
    )]
    pub max_workflow_runs_per_workspace: u32,
}

/// Environment variable names read directly (secrets and operator exceptions).
pub mod env {
    pub const KEY: &str = "INTEGRATION_ENCRYPTION_KEY";
    pub const PREVIOUS_KEYS: &str = "INTEGRATION_ENCRYPTION_PREVIOUS_KEYS";
    pub const BOOTSTRAP_TOKEN: &str = "CHATTERFLY_BOOTSTRAP_ADMIN_TOKEN";
}

impl Config {
    /// The database URL in effect: the given one, or SQLite in the data dir.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.trim().is_empty() => url.trim().to_owned(),
            _ => format!("sqlite://{}?mode=rwc", self.data_dir.join("chatterfly.db").display()),
        }
    }

    pub fn uses_postgres(&self) -> bool {
        let url = self.effective_database_url();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }

    /// The database URL with any password replaced, for messages.
    pub fn database_url_for_display(&self) -> String {
        let url = self.effective_database_url();
        match url::Url::parse(&url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("****"));
                u.to_string()
            }
            _ => url,
        }
    }

    /// The operator's maxima for outbound calls.
    pub fn egress_limits(&self) -> chatterfly_egress::Limits {
        use std::time::Duration;
        chatterfly_egress::Limits {
            connect_timeout: Duration::from_millis(self.egress_connect_timeout_ms),
            total_timeout: Duration::from_millis(self.egress_timeout_ms),
            max_response_bytes: self.egress_max_response_bytes,
            max_redirects: self.egress_max_redirects,
        }
    }

    /// Request bodies in flight together, in bytes.
    pub fn inflight_body_bytes(&self) -> usize {
        self.max_inflight_body_bytes
            .unwrap_or_else(|| self.max_spec_bytes.saturating_mul(4))
            .max(self.max_spec_bytes)
    }

    pub fn key_file(&self) -> PathBuf {
        self.data_dir.join("integration.key")
    }
}
