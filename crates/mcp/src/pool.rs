//! Initialized MCP sessions, reused across calls.
//!
//! A session is keyed by the connection and a fingerprint of everything it was opened
//! with (URL, transport, credentials, limits), so an edited connection or another caller's
//! credentials never share a session. One session is opened at a time per key (callers of
//! the same key wait for it); the pool holds at most `max_sessions` (the least recently
//! used is closed to make room) and closes sessions idle longer than `idle_timeout`.
//! The pool is memory only: a replica that has no session for a key opens one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex, Weak};
use std::time::{Duration, Instant};

use rmcp::RoleClient;
use rmcp::service::Peer;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::direct::Direct;
use crate::{McpClient, McpError, Session, Target};

/// Bounds of the session pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_sessions: usize,
    pub idle_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_sessions: 256,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    connection_id: String,
    fingerprint: [u8; 32],
}

impl Key {
    pub(crate) fn new(connection_id: &str, t: &Target) -> Self {
        let mut h = Sha256::new();
        for part in [
            t.url.as_str(),
            t.transport.as_str(),
            t.bearer.as_deref().unwrap_or(""),
            &format!("{:?}", t.limits),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        Self {
            connection_id: connection_id.to_owned(),
            fingerprint: h.finalize().into(),
        }
    }
}

struct Live {
    session: Session,
    direct: Option<Direct>,
    generation: u64,
}

struct Slot {
    live: Mutex<Option<Live>>,
    last_used: SyncMutex<Instant>,
}

impl Slot {
    fn touch(&self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_used.lock().map(|t| t.elapsed()).unwrap_or_default()
    }
}

pub(crate) struct Pool {
    settings: PoolSettings,
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    generation: std::sync::atomic::AtomicU64,
}

/// A session handed to a caller: its peer, whether it was opened for this call, and its
/// generation (to forget exactly this one if it fails).
pub(crate) struct Lease {
    pub peer: Peer<RoleClient>,
    /// How calls are sent past rmcp on this session ([`crate::direct`]).
    pub direct: Option<Direct>,
    pub fresh: bool,
    pub generation: u64,
}

impl Pool {
    pub(crate) fn new(settings: PoolSettings) -> Self {
        Self {
            settings: PoolSettings {
                max_sessions: settings.max_sessions.max(1),
                ..settings
            },
            slots: Mutex::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Closes idle sessions every few seconds while the client lives.
    pub(crate) fn start_reaper(client: Weak<McpClient>) {
        tokio::spawn(async move {
            loop {
                let every = match client.upgrade() {
                    Some(c) => {
                        (c.pool.settings.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(15))
                    }
                    None => return,
                };
                tokio::time::sleep(every).await;
                match client.upgrade() {
                    Some(c) => c.pool.reap().await,
                    None => return,
                }
            }
        });
    }

    async fn reap(&self) {
        let idle = self.settings.idle_timeout;
        let mut slots = self.slots.lock().await;
        slots.retain(|_, slot| slot.idle_for() < idle);
    }

    /// The live session for `key`, opened with `open` when there is none (or it closed).
    pub(crate) async fn session<F, Fut>(&self, key: &Key, open: F) -> Result<Lease, McpError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Session, Option<Direct>), McpError>>,
    {
        let slot = {
            let mut slots = self.slots.lock().await;
            if !slots.contains_key(key) && slots.len() >= self.settings.max_sessions {
                let oldest = slots.iter().max_by_key(|(_, s)| s.idle_for()).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    slots.remove(&k);
                }
            }
            slots
                .entry(key.clone())
                .or_insert_with(|| {
                    Arc::new(Slot {
                        live: Mutex::new(None),
                        last_used: SyncMutex::new(Instant::now()),
                    })
                })
                .clone()
        };
        slot.touch();
        let mut live = slot.live.lock().await;
        if let Some(l) = live.as_ref()
            && !l.session.is_closed()
        {
            return Ok(Lease {
                peer: l.session.peer().clone(),
                direct: l.direct.clone(),
                fresh: false,
                generation: l.generation,
            });
        }
        let (session, direct) = open().await?;
        let generation = self.generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let peer = session.peer().clone();
        *live = Some(Live {
            session,
            direct: direct.clone(),
            generation,
        });
        Ok(Lease {
            peer,
            direct,
            fresh: true,
            generation,
        })
    }

    /// Closes the session of `key` if it is still the one of `generation`.
    pub(crate) async fn forget(&self, key: &Key, generation: u64) {
        let slot = self.slots.lock().await.get(key).cloned();
        if let Some(slot) = slot {
            let mut live = slot.live.lock().await;
            if live.as_ref().is_some_and(|l| l.generation == generation) {
                *live = None;
            }
        }
    }

    pub(crate) async fn clear(&self) {
        self.slots.lock().await.clear();
    }

    pub(crate) async fn len(&self) -> usize {
        let slots: Vec<Arc<Slot>> = self.slots.lock().await.values().cloned().collect();
        let mut n = 0;
        for s in slots {
            if s.live.lock().await.as_ref().is_some_and(|l| !l.session.is_closed()) {
                n += 1;
            }
        }
        n
    }
}
