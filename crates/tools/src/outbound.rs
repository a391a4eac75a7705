//! Fair shares and counts of tool calls.
//!
//! [`Outbound`] bounds the calls one workspace has under way on this server at once, so a
//! tenant whose upstream is slow holds at most that many of the server's connections,
//! tasks and memory, and the other workspaces' calls keep their latency. A call past the
//! bound is refused at once (`429 workspace_busy` with `Retry-After`, in the audit like any
//! call), not queued: an agent retries, and a queue would only move the wait elsewhere.
//!
//! [`CallMetrics`] counts calls by tool kind and outcome, their latency, upstream errors by
//! class and SSRF refusals, for `/metrics`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The default bound of one workspace's calls under way on one server.
pub const DEFAULT_PER_WORKSPACE: usize = 64;

/// Calls under way per workspace, and the bound.
#[derive(Debug)]
pub struct Outbound {
    limit: AtomicUsize,
    in_flight: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
    /// Wakes runs waiting for room.
    room: tokio::sync::Notify,
    /// When each workspace's last refusal was audited.
    audited: Mutex<HashMap<String, std::time::Instant>>,
}

impl Default for Outbound {
    fn default() -> Self {
        Self {
            limit: AtomicUsize::new(DEFAULT_PER_WORKSPACE),
            in_flight: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
            room: tokio::sync::Notify::new(),
            audited: Mutex::new(HashMap::new()),
        }
    }
}

/// How often a workspace's refusals are written to the audit (each is counted in
/// `/metrics`): a client hammering a full workspace must not flood the audit log.
pub const REFUSAL_AUDIT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long an agent or workflow run's call waits for room before it is refused.
pub const RUN_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// One call's place among its workspace's; given back when dropped.
pub struct Slot<'a> {
    outbound: &'a Outbound,
    workspace: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.outbound.in_flight.lock()
            && let Some(n) = map.get_mut(&self.workspace)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.workspace);
            }
        }
        self.outbound.total.fetch_sub(1, Ordering::AcqRel);
        self.outbound.room.notify_waiters();
    }
}

impl Outbound {
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Acquire)
    }

    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit.max(1), Ordering::Release);
    }

    /// A place for one more call of `workspace`, or `None` when it has its bound under way.
    pub fn enter(&self, workspace: &str) -> Option<Slot<'_>> {
        let limit = self.limit();
        let mut map = self.in_flight.lock().ok()?;
        let n = map.entry(workspace.to_owned()).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        drop(map);
        self.total.fetch_add(1, Ordering::AcqRel);
        Some(Slot {
            outbound: self,
            workspace: workspace.to_owned(),
        })
    }

    /// A place for one more call of `workspace`, waiting up to `limit` for one (runs wait:
    /// a refusal comes before any call is made, so waiting changes nothing but the time).
    pub async fn enter_waiting(&self, workspace: &str, limit: std::time::Duration) -> Option<Slot<'_>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if let Some(slot) = self.enter(workspace) {
                return Some(slot);
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return None;
            }
        }
    }

    /// Whether this refusal of `workspace` goes to the audit: the first in each
    /// [`REFUSAL_AUDIT_EVERY`].
    pub fn audit_refusal(&self, workspace: &str) -> bool {
        let Ok(mut map) = self.audited.lock() else { return true };
        let now = std::time::Instant::now();
        if map.len() > 10_000 {
            map.retain(|_, at| now.duration_since(*at) < REFUSAL_AUDIT_EVERY);
        }
        match map.get(workspace) {
            Some(at) if now.duration_since(*at) < REFUSAL_AUDIT_EVERY => false,
            _ => {
                map.insert(workspace.to_owned(), now);
                true
            }
        }
    }

    /// Calls under way on this server, all workspaces together.
    pub fn in_flight(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Workspaces with calls under way.
    pub fn busy_workspaces(&self) -> usize {
        self.in_flight.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// `http`, `openapi`, `mcp`, `gmail`, `telegram`, `builtin` or `unknown` (not found).
    pub kind: &'static str,
    /// `ok`, or the error code.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    /// The error code: `upstream_timeout`, `upstream_unreachable`, `upstream_error`, …
    pub class: &'static str,
}

/// Counts of tool calls, for `/metrics`.
pub struct CallMetrics {
    pub calls: Family<CallLabels, Counter>,
    pub duration: Family<KindLabels, Histogram>,
    pub upstream_errors: Family<ClassLabels, Counter>,
    pub ssrf_refusals: Counter,
    pub busy_refusals: Counter,
    /// Calls answered from the call-context cache, and calls that read the database.
    pub context_hits: Counter<u64, AtomicU64>,
    pub context_misses: Counter<u64, AtomicU64>,
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ])
            }),
            upstream_errors: Family::default(),
            ssrf_refusals: Counter::default(),
            busy_refusals: Counter::default(),
            context_hits: Counter::default(),
            context_misses: Counter::default(),
        }
    }
}

impl CallMetrics {
    /// Counts one finished call.
    pub fn record(&self, kind: &'static str, outcome: Result<(), &'static str>, seconds: f64) {
        let outcome_label = match outcome {
            Ok(()) => "ok",
            Err(code) => code,
        };
        self.calls
            .get_or_create(&CallLabels {
                kind,
                outcome: outcome_label,
            })
            .inc();
        self.duration.get_or_create(&KindLabels { kind }).observe(seconds);
        if let Err(code) = outcome {
            if code == "ssrf_blocked" {
                self.ssrf_refusals.inc();
            } else if code == "workspace_busy" {
                self.busy_refusals.inc();
            } else if code.starts_with("upstream_") || code.starts_with("mcp_") || code == "too_many_redirects" {
                self.upstream_errors.get_or_create(&ClassLabels { class: code }).inc();
            }
        }
    }

    /// Adds these metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "chatterfly_tool_calls",
            "Tool calls by tool kind and outcome (ok or the error code)",
            self.calls.clone(),
        );
        registry.register(
            "chatterfly_tool_call_duration_seconds",
            "Tool call latency by tool kind, as the server measured it",
            self.duration.clone(),
        );
        registry.register(
            "chatterfly_upstream_errors",
            "Tool calls that failed on the upstream's side, by class",
            self.upstream_errors.clone(),
        );
        registry.register(
            "chatterfly_ssrf_refusals",
            "Outbound calls refused by the SSRF guard",
            self.ssrf_refusals.clone(),
        );
        registry.register(
            "chatterfly_workspace_busy_refusals",
            "Tool calls refused because their workspace had its bound of calls under way",
            self.busy_refusals.clone(),
        );
        registry.register(
            "chatterfly_call_context_cache_hits",
            "Bearer-token tool calls whose context came from the cache",
            self.context_hits.clone(),
        );
        registry.register(
            "chatterfly_call_context_cache_misses",
            "Bearer-token tool calls whose context was read from the database",
            self.context_misses.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_is_bounded_and_its_places_come_back() {
        let o = Outbound::default();
        o.set_limit(2);
        let a = o.enter("w1").unwrap();
        let _b = o.enter("w1").unwrap();
        assert!(o.enter("w1").is_none());
        // another workspace is not affected
        let _c = o.enter("w2").unwrap();
        assert_eq!(o.in_flight(), 3);
        drop(a);
        assert!(o.enter("w1").is_some());
        assert_eq!(o.busy_workspaces(), 2);
    }

    #[tokio::test]
    async fn a_run_waits_for_room_and_refusals_are_audited_once_a_second() {
        let o = std::sync::Arc::new(Outbound::default());
        o.set_limit(1);
        let held = o.enter("w").unwrap();
        // nobody gives room back: refused after the wait
        let started = std::time::Instant::now();
        assert!(
            o.enter_waiting("w", std::time::Duration::from_millis(100))
                .await
                .is_none()
        );
        assert!(started.elapsed() >= std::time::Duration::from_millis(100));
        // room given back while waiting: it goes ahead
        let o2 = o.clone();
        let waiter =
            tokio::spawn(async move { o2.enter_waiting("w", std::time::Duration::from_secs(5)).await.is_some() });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(held);
        assert!(waiter.await.unwrap());
        assert!(o.audit_refusal("w"));
        assert!(!o.audit_refusal("w"));
        assert!(o.audit_refusal("other"));
    }
}
