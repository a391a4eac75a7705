//! Start-up: open the store, load the keys and prove they open the stored data, bootstrap
//! the first admin, serve. Every refusal here is a clear message and a non-zero exit, never
//! a surprise at the first call.

use std::collections::BTreeMap;
use std::sync::Arc;

use chatterfly_domain::WorkspaceSlug;
use chatterfly_store::{NewUser, Store, StoreError, VaultRewrite};
use chatterfly_vault::{Key, KeyError, KeyRing, sealed_key_id};

use crate::config::{Config, env};
use crate::tokens;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}")]
    Keys(String),
    #[error("cannot open the database at {url}: {source}")]
    Database { url: String, source: StoreError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("{0}")]
    Config(String),
}

/// The opened application: the store and the key ring, checked against each other.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub keys: Arc<KeyRing>,
}

impl App {
    /// Opens the store (applying migrations), loads the keys and checks that they open every
    /// stored secret's key. Used by `serve` and by every other command.
    pub async fn open(config: Config) -> Result<Self, StartupError> {
        if !config.uses_postgres() {
            create_data_dir(&config)?;
        }
        // Load keys before touching the database, so PostgreSQL without a key never starts.
        let keys = load_keys(&config)?;
        let store = Store::connect(&config.effective_database_url())
            .await
            .map_err(|source| StartupError::Database {
                url: config.database_url_for_display(),
                source,
            })?;
        verify_keys(&store, &keys).await?;
        store
            .ensure_vault_check(|aad| keys.seal(b"chatterfly vault check", aad).ok())
            .await?;
        // built-in operations follow this build's definitions (new arguments, schemas)
        for st in [
            chatterfly_domain::ServiceType::Gmail,
            chatterfly_domain::ServiceType::Telegram,
        ] {
            let changed = store
                .sync_builtin_operations(st.as_str(), &chatterfly_domain::builtin_operations(st))
                .await?;
            if changed > 0 {
                tracing::info!(service_type = %st, changed, "built-in operations brought up to date");
            }
        }
        Ok(Self {
            config,
            store,
            keys: Arc::new(keys),
        })
    }

    /// First start with no users: workspace `default`, platform admin `admin`, and a token
    /// (`CHATTERFLY_BOOTSTRAP_ADMIN_TOKEN`, or a random one returned to be printed once).
    pub async fn bootstrap(&self) -> Result<Bootstrap, StartupError> {
        if self.store.count_users().await? > 0 {
            return Ok(Bootstrap::AlreadyDone);
        }
        let (token, from_env) = match std::env::var(env::BOOTSTRAP_TOKEN) {
            Ok(t) if !t.trim().is_empty() => {
                let t = t.trim().to_owned();
                if t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(StartupError::Config(format!(
                        "{} must be at least 16 characters with no spaces",
                        env::BOOTSTRAP_TOKEN
                    )));
                }
                (t, true)
            }
            _ => (tokens::generate(), false),
        };
        let admin = NewUser {
            email: "admin@localhost".into(),
            name: "admin".into(),
            password_hash: None,
            platform_admin: true,
        };
        let default = WorkspaceSlug::try_from("default".to_owned()).map_err(|e| StartupError::Config(e.0))?;
        if !self.store.bootstrap(&admin, &default, &tokens::hash(&token)).await? {
            return Ok(Bootstrap::AlreadyDone);
        }
        Ok(if from_env {
            Bootstrap::CreatedWithEnvToken
        } else {
            Bootstrap::Created { token }
        })
    }

    /// Mints an API token for the user with this email or id.
    pub async fn mint_token(&self, user: &str, name: &str) -> Result<String, StartupError> {
        let users = self.store.list_users().await?;
        let found = users
            .iter()
            .find(|u| u.id == user || u.email.eq_ignore_ascii_case(user))
            .ok_or_else(|| StartupError::Config(format!("no user with email or id `{user}`")))?;
        let token = tokens::generate();
        self.store.create_token(&found.id, name, &tokens::hash(&token)).await?;
        Ok(token)
    }

    /// Sets a user's password (by email or id); ends the user's web sessions. The same
    /// rule as the users API: at least 12 characters.
    pub async fn set_password(&self, user: &str, password: &str) -> Result<(), StartupError> {
        if password.chars().count() < 12 {
            return Err(StartupError::Config(
                "the password must have at least 12 characters".into(),
            ));
        }
        let users = self.store.list_users().await?;
        let found = users
            .iter()
            .find(|u| u.id == user || u.email.eq_ignore_ascii_case(user))
            .ok_or_else(|| StartupError::Config(format!("no user with email or id `{user}`")))?;
        let hash = tokens::hash_password(password).map_err(StartupError::Config)?;
        self.store.set_password(&found.id, Some(&hash)).await?;
        Ok(())
    }

    /// Re-seals every stored secret under the current key, in one transaction.
    pub async fn rotate_keys(&self) -> Result<VaultRewrite, StartupError> {
        let keys = &self.keys;
        let outcome = self
            .store
            .rewrite_sealed(|v| {
                keys.reseal(&v.sealed, &v.aad)
                    .map_err(|e| format!("{} row {}: {e}", v.table, v.row_id))
            })
            .await?;
        outcome.map_err(|e| StartupError::Keys(format!("rotation failed and nothing was changed: {e}")))
    }

    /// How many stored values each key id sealed.
    pub async fn key_usage(&self) -> Result<BTreeMap<String, usize>, StartupError> {
        let mut usage = BTreeMap::new();
        for v in self.store.sealed_values().await? {
            let id = sealed_key_id(&v.sealed).unwrap_or("malformed").to_owned();
            *usage.entry(id).or_insert(0) += 1;
        }
        Ok(usage)
    }
}

/// What [`App::bootstrap`] did.
pub enum Bootstrap {
    AlreadyDone,
    CreatedWithEnvToken,
    Created { token: String },
}

fn create_data_dir(config: &Config) -> Result<(), StartupError> {
    let dir = &config.data_dir;
    let err = |source| StartupError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
    }
    Ok(())
}

/// The current key: `INTEGRATION_ENCRYPTION_KEY`; with SQLite and no key, the key file in
/// the data dir (generated on first start); with PostgreSQL and no key, a refusal.
fn load_keys(config: &Config) -> Result<KeyRing, StartupError> {
    let current = match std::env::var(env::KEY) {
        Ok(text) if !text.trim().is_empty() => Key::parse(&text)?,
        _ if config.uses_postgres() => {
            return Err(StartupError::Keys(format!(
                "{} is required with PostgreSQL (every replica must use the same key); \
                 generate one with `chatterfly keys generate` and set it in the environment of every replica",
                env::KEY
            )));
        }
        _ => {
            let path = config.key_file();
            if path.exists() {
                chatterfly_vault::read_key_file(&path)?
            } else {
                let key = chatterfly_vault::generate_key_file(&path)?;
                tracing::warn!(
                    path = %path.display(),
                    key_id = %key.id(),
                    "no {} set: generated a new encryption key file; back it up, stored credentials cannot be read without it",
                    env::KEY
                );
                key
            }
        }
    };
    let previous = match std::env::var(env::PREVIOUS_KEYS) {
        Ok(text) => Key::parse_list(&text, env::PREVIOUS_KEYS)?,
        Err(_) => Vec::new(),
    };
    Ok(KeyRing::new(current, previous))
}

/// Refuses keys that cannot open what is stored: every key id found in the data must be in
/// the ring, and the sentinel must open. A single unreadable row is reported, not fatal.
async fn verify_keys(store: &Store, keys: &KeyRing) -> Result<(), StartupError> {
    let values = store.sealed_values().await?;
    let mut missing: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &values {
        match sealed_key_id(&v.sealed) {
            Ok(id) if keys.has_key(id) => {}
            Ok(id) => *missing.entry(id).or_insert(0) += 1,
            Err(_) => tracing::warn!(table = v.table, row = %v.row_id, "a stored secret is malformed"),
        }
    }
    if !missing.is_empty() {
        let list: Vec<_> = missing
            .iter()
            .map(|(id, n)| format!("{n} sealed with key {id}"))
            .collect();
        return Err(StartupError::Keys(format!(
            "the configured keys cannot open the stored credentials ({}); {} is key {}. \
             Start with the key they were sealed with, or to change keys put the old key in {} and run `chatterfly keys rotate`",
            list.join(", "),
            env::KEY,
            keys.current_id(),
            env::PREVIOUS_KEYS,
        )));
    }
    if let Some(check) = store.vault_check().await?
        && keys.open(&check.sealed, &check.aad).is_err()
    {
        return Err(StartupError::Keys(format!(
            "{} has the id of the key that sealed this database but does not open it; the database or key is damaged",
            env::KEY
        )));
    }
    let unreadable = values.iter().filter(|v| keys.open(&v.sealed, &v.aad).is_err()).count();
    if unreadable > 0 {
        tracing::warn!(
            count = unreadable,
            "stored secrets that do not open with their key (altered or moved rows)"
        );
    }
    Ok(())
}

/// Every client connection, kept-alive upstream connection and MCP session is an open
/// file; the soft limit many systems start a process with (1,024) is reached by a few
/// hundred workspaces' sessions and a few hundred clients. Raised to the hard limit, as
/// Go's runtime and nginx's `worker_rlimit_nofile` do; said at start either way.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "the open-file limit could not be raised"),
    }
}

/// `chatterfly serve`: start-up, bootstrap, listen until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> Result<(), StartupError> {
    raise_open_file_limit();
    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .map_err(|source| StartupError::Bind {
            addr: config.addr.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| StartupError::Bind {
        addr: config.addr.clone(),
        source,
    })?;
    let app = App::open(config).await?;
    let url = format!("http://{local}");
    let bootstrap = app.bootstrap().await?;
    let allow = chatterfly_egress::AllowList::parse(&app.config.allow_private).map_err(StartupError::Config)?;
    if !allow.is_empty() {
        tracing::warn!(
            "SSRF exceptions in force (CHATTERFLY_ALLOW_PRIVATE): {}",
            app.config.allow_private
        );
    }
    let egress = chatterfly_egress::Egress::new(allow, app.config.egress_limits())
        .map_err(|e| StartupError::Config(e.to_string()))?
        .with_answers(chatterfly_egress::answers::Answers::new(
            app.config.max_inflight_answer_bytes,
        ));
    let state = crate::api::AppState::new(&app, &url, egress);
    state.runner.start_upkeep();
    state.flows.start_workers();
    let tools = state.tools.clone();
    let router = crate::api::router(state);
    tracing::info!(%url, database = ?app.store.backend(), key_id = %app.keys.current_id(), "ready");
    // The banner goes to stdout: the URL always, the bootstrap token once.
    match bootstrap {
        Bootstrap::Created { token } => {
            println!("Created workspace `default` and platform admin `admin`.");
            println!("Admin API token (shown once, keep it): {token}");
            println!("Try: curl -H \"Authorization: Bearer $TOKEN\" {url}/api/me");
        }
        Bootstrap::CreatedWithEnvToken => {
            println!(
                "Created workspace `default` and platform admin `admin` with the token from {}.",
                env::BOOTSTRAP_TOKEN
            );
        }
        Bootstrap::AlreadyDone => {}
    }
    println!("Chatterfly Connections listening on {url}");
    crate::listen::run(
        listener,
        router,
        crate::listen::Settings::from(&app.config),
        shutdown_signal(),
    )
    .await;
    tools.close().await;
    app.store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
