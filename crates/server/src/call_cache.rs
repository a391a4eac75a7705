//! The call-context cache: what `invoke` with a bearer token needs before it can call
//! (the token's user, the workspace and the caller's role, the connection and the
//! operation), kept across calls so the hot path reads no database.
//!
//! Correct across replicas through the store's change counter ([`Changes`]): an entry is
//! stamped with the generation read *before* the database was, and is served only while
//! the generation is the same. The generation moves when this replica writes through the
//! API ([`note_writes`]) and when the watcher sees another writer's change (at once on a
//! PostgreSQL notification, else within the watcher's poll), so a revoked token, a removed
//! member, an edited or deleted connection stop working on every replica within a second;
//! when the watcher cannot read the counter, nothing is served from the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatterfly_store::changes::Changes;
use chatterfly_store::{TokenOwner, Workspace};
use chatterfly_tools::ConnectionLookup;

/// Entries at most; the cache is emptied when it is full.
const MAX_ENTRIES: usize = 20_000;
/// An entry's longest life, whatever the generation.
const TTL: Duration = Duration::from_secs(60);

/// A call's context, shared by the calls that hit it.
pub struct CachedCall {
    pub caller: TokenOwner,
    pub workspace: Option<(Workspace, Option<chatterfly_domain::WorkspaceRole>)>,
    pub connection: Arc<ConnectionLookup>,
}

impl CachedCall {
    pub fn from_context(ctx: chatterfly_store::CallContext) -> Self {
        Self {
            caller: ctx.caller,
            workspace: ctx.workspace,
            connection: Arc::new(ctx.connection),
        }
    }
}

struct Entry {
    generation: u64,
    at: Instant,
    call: Arc<CachedCall>,
}

pub struct CallCache {
    changes: Arc<Changes>,
    entries: Mutex<HashMap<String, Entry>>,
}

impl CallCache {
    pub fn new(changes: Arc<Changes>) -> Self {
        Self {
            changes,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The key of a bearer token's call of `slug.operation` in workspace `ws`.
    pub fn key(token_hash: &str, ws: &str, slug: &str, operation: &str) -> String {
        let mut key = String::with_capacity(token_hash.len() + ws.len() + slug.len() + operation.len() + 3);
        for (i, part) in [token_hash, ws, slug, operation].into_iter().enumerate() {
            if i > 0 {
                key.push('\0');
            }
            key.push_str(part);
        }
        key
    }

    /// The generation to stamp an entry with: read it before reading the database.
    /// `None`: do not cache now.
    pub fn generation(&self) -> Option<u64> {
        self.changes.generation()
    }

    /// Entries held (some may be stale, waiting to be replaced).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, key: &str) -> Option<Arc<CachedCall>> {
        let generation = self.changes.generation()?;
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(key)?;
        (entry.generation == generation && entry.at.elapsed() < TTL).then(|| entry.call.clone())
    }

    pub fn put(&self, key: String, generation: u64, call: Arc<CachedCall>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(
                key,
                Entry {
                    generation,
                    at: Instant::now(),
                    call,
                },
            );
        }
    }
}

/// Requests that write nothing a call's context is read from: tool calls, starting and
/// cancelling runs, signing in and out. Anything else that is not a read invalidates.
fn leaves_contexts_alone(path: &str) -> bool {
    path.ends_with("/invoke")
        || path.ends_with("/runs")
        || path.ends_with("/cancel")
        || path == "/api/auth/login"
        || path == "/api/auth/logout"
}

/// After every request that may write (any method but GET, HEAD and OPTIONS, except those
/// of [`leaves_contexts_alone`]), this replica's cached contexts are invalidated at once,
/// without waiting for the watcher (which catches every write anyway, within its poll).
pub async fn note_writes(
    axum::extract::State(changes): axum::extract::State<Arc<Changes>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    let writes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && !leaves_contexts_alone(request.uri().path());
    let response = next.run(request).await;
    if writes {
        changes.note_local();
    }
    response
}
