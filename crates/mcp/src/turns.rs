//! Large MCP messages take turns with the other large answers of their workspace.
//!
//! rmcp reads and parses every message a server sends on the sessions' runtime
//! ([`crate::sessions_runtime`]), which all workspaces share: without turns, one
//! workspace's dozen 4 MB answers, parsed one after another there, would hold up every
//! other workspace's MCP calls for as long as they take (measured: a small call of another
//! workspace waited 0.55 to 0.81 s at the median). An event of [`HEAVY_BYTES`] or more
//! is handed to rmcp only once it has a place in its workspace's lane of the large-answer
//! gate ([`chatterfly_egress::heavy`], the lane its HTTP answers are parsed in), and keeps
//! the place until rmcp asks for the next event, which it does once the message is parsed
//! and passed on. So a workspace has at most the gate's share of large messages being
//! parsed at once, and another workspace's messages wait behind at most that many.

use std::sync::Arc;

use chatterfly_egress::heavy::{HEAVY_BYTES, Heavy, HeavyFailed, Place};

/// The lane a session's large messages wait in.
#[derive(Clone)]
pub(crate) struct Turns {
    heavy: Heavy,
    lane: Arc<str>,
}

impl Turns {
    pub(crate) fn new(heavy: Heavy, lane: Arc<str>) -> Self {
        Self { heavy, lane }
    }

    /// Whether a message of this many bytes waits for its turn.
    pub(crate) fn needed(len: usize) -> bool {
        len >= HEAVY_BYTES
    }

    /// Waits for a place in the lane and at the gate.
    pub(crate) async fn take(self) -> Result<Place, HeavyFailed> {
        self.heavy.place(&self.lane).await
    }

    /// Runs `work` on the gate's threads in this lane (a parse the client does itself).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HeavyFailed> {
        self.heavy.run(&self.lane, work).await
    }
}
