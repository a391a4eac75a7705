//! Room for the answers being handled at once, server-wide.
//!
//! An upstream's answer costs memory while it is redacted, parsed and handed on: a JSON
//! answer up to about [`PARSED_FACTOR`] times its size once parsed (the density rule in
//! `chatterfly_domain::density` hands denser ones on as text), any other about
//! [`TEXT_FACTOR`] times. The per-workspace bound on calls does not bound that across
//! workspaces: 64 calls in each of three workspaces, each answered with 10 MB of JSON,
//! took a server past 3 GB. Each answer therefore takes room for what it will cost from
//! one budget before it is handled, and keeps it until its output has been handed on (the
//! room travels with [`crate::Output`]). An answer that finds no room waits up to
//! [`WAIT`], then the call ends with `503 server_busy`. Room is taken whole, once the
//! answer has been read, so answers never wait on each other while holding some.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a JSON answer may cost parsed, per byte of its text (the density rule's 20,
/// plus the redacted copy and the text it is written back as).
pub const PARSED_FACTOR: usize = 24;
/// What any other answer costs, per byte (the body, its redacted copy, the string).
pub const TEXT_FACTOR: usize = 3;
/// How long an answer waits for room.
pub const WAIT: Duration = Duration::from_secs(10);
/// The default budget: 2 GiB of estimated cost (about eight 10 MB JSON answers at once).
pub const DEFAULT_BYTES: usize = 2 << 30;

/// One answer's room, given back when dropped. A clone holds none (outputs are cloned to
/// be stored; the room is for the one being handed on), and every room compares equal.
#[derive(Debug, Default)]
pub struct AnswerRoom {
    _permit: Option<OwnedSemaphorePermit>,
}

impl AnswerRoom {
    /// Room that holds nothing (answers too small to count, tests).
    pub fn none() -> Self {
        Self::default()
    }
}

impl Clone for AnswerRoom {
    fn clone(&self) -> Self {
        Self::none()
    }
}

impl PartialEq for AnswerRoom {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[derive(Debug, Clone)]
pub struct Answers {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl Default for Answers {
    fn default() -> Self {
        Self::new(DEFAULT_BYTES)
    }
}

/// Answers smaller than this take no room: their cost is covered by the bound on calls.
const FREE_BYTES: usize = 64 * 1024;

impl Answers {
    pub fn new(bytes: usize) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX >> 3).max(1);
        Self {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Room for an answer of `len` bytes (`json`: it may be parsed), waiting up to
    /// [`WAIT`]; `None` when none freed meanwhile.
    pub async fn take(&self, len: usize, json: bool) -> Option<AnswerRoom> {
        if len < FREE_BYTES {
            return Some(AnswerRoom::none());
        }
        let cost = len.saturating_mul(if json { PARSED_FACTOR } else { TEXT_FACTOR });
        let want = u32::try_from(cost.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        match tokio::time::timeout(WAIT, self.kib.clone().acquire_many_owned(want)).await {
            Ok(Ok(permit)) => Some(AnswerRoom { _permit: Some(permit) }),
            _ => None,
        }
    }

    /// Room left, in KiB (for `/metrics` and tests).
    pub fn available_kib(&self) -> usize {
        self.kib.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_take_room_by_cost_and_give_it_back() {
        let answers = Answers::new(100 << 20);
        let small = answers.take(1000, true).await;
        assert!(small.is_some());
        assert_eq!(answers.available_kib(), 100 << 10, "small answers are free");
        // a 2 MB JSON answer costs 48 MB; two fit, the third waits for one to go
        let a = answers.take(2 << 20, true).await;
        let b = answers.take(2 << 20, true).await;
        assert!(a.is_some() && b.is_some());
        assert_eq!(answers.available_kib(), 4 << 10);
        let waiter = {
            let answers = answers.clone();
            tokio::spawn(async move { answers.take(2 << 20, true).await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "no room: it waits");
        drop(a);
        assert!(matches!(waiter.await, Ok(true)), "room given back lets it on");
        drop(b);
        // text costs less
        let t = answers.take(2 << 20, false).await;
        assert!(t.is_some());
        assert_eq!(answers.available_kib(), (100 << 10) - (6 << 10));
    }
}
