//! Room for the upstream answers being read and handled at once, process-wide.
//!
//! An answer costs memory while it is read, decoded, redacted, parsed and handed on: a
//! JSON answer up to about [`PARSED_FACTOR`] times its size once parsed (the density rule
//! in `chatterfly_domain::density` hands denser ones on as text), any other about
//! [`TEXT_FACTOR`] times. A bound on calls per workspace does not bound that across
//! workspaces: 64 calls in each of three workspaces, each answered with 10 MB of JSON,
//! took a server past 3 GB. So every answer takes room for what it will cost from one
//! budget, before its body is read when it declares a length (waiting up to [`WAIT`]
//! holding nothing), else as its bytes arrive (waiting [`GROW_WAIT`] at most while holding
//! some, so answers cannot hold each other up); and again for its decoded size when it
//! came compressed. The room travels with the response (and the call's output) until it
//! has been handed on. No room in time: [`crate::EgressError::Busy`] (`server_busy`).
//!
//! A room made for a tenant (a workspace: [`AnswerRoom::of`]) takes from that tenant's
//! share first, a quarter of the budget, then from the budget: one workspace's answers
//! (slow ones that hold their room while they trickle in, say) wait in their own queue
//! once they hold a quarter, instead of filling the budget's queue ahead of everyone
//! else's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a JSON answer may cost, per byte of its text (the density rule's 20, plus the
/// redacted copy and the text it is written back as).
pub const PARSED_FACTOR: usize = 24;
/// What any other answer costs, per byte (the body, its redacted copy, the string).
pub const TEXT_FACTOR: usize = 3;
/// How long an answer waits for room while it holds none.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long an answer that holds some room waits for more.
pub const GROW_WAIT: Duration = Duration::from_secs(2);
/// The default budget: 2 GiB of estimated cost (about eight 10 MB JSON answers at once).
pub const DEFAULT_BYTES: usize = 2 << 30;
/// Answers smaller than this take no room: the bounds on calls cover them.
pub const FREE_BYTES: usize = 64 * 1024;

/// One answer's room, given back when dropped. A clone holds none (outputs are cloned to
/// be stored; the room is for the one being handed on), and every room compares equal.
#[derive(Debug, Default)]
pub struct AnswerRoom {
    permit: Option<OwnedSemaphorePermit>,
    /// Whose answer it is, and the room held in their share.
    tenant: Option<Arc<str>>,
    share: Option<OwnedSemaphorePermit>,
    /// The size of the answer covered (its largest form: decoded when it was encoded).
    len: usize,
}

impl AnswerRoom {
    /// Room that holds nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Room that holds nothing yet, for `tenant`'s answer (taken from their share first).
    pub fn of(tenant: Option<Arc<str>>) -> Self {
        Self {
            tenant,
            ..Self::default()
        }
    }

    /// The size of the answer this room was asked to cover, in bytes (0 for no answer).
    pub fn answer_len(&self) -> usize {
        self.len
    }

    /// Gives back all the room held past `bytes` (what the answer still costs once it has
    /// been handled: the text being sent, say).
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = bytes.div_ceil(1024);
        for p in [self.permit.as_mut(), self.share.as_mut()].into_iter().flatten() {
            if p.num_permits() > keep {
                let surplus = p.num_permits() - keep;
                drop(p.split(surplus));
            }
        }
    }

    /// Bytes of cost held.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits().saturating_mul(1024))
    }
}

impl Clone for AnswerRoom {
    fn clone(&self) -> Self {
        Self::none()
    }
}

/// Tenants' shares, kept while someone holds or waits for room in them.
#[derive(Debug, Default)]
struct Shares(Mutex<HashMap<Arc<str>, Arc<Semaphore>>>);

/// Past this many tenants in the map, the idle ones are forgotten.
const SHARES_KEPT: usize = 256;

impl PartialEq for AnswerRoom {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The budget. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Answers {
    kib: Arc<Semaphore>,
    total_kib: u32,
    shares: Arc<Shares>,
}

impl Default for Answers {
    fn default() -> Self {
        Self::new(DEFAULT_BYTES)
    }
}

fn merge(held: &mut Option<OwnedSemaphorePermit>, more: OwnedSemaphorePermit) {
    match held {
        Some(p) => p.merge(more),
        None => *held = Some(more),
    }
}

/// What one byte of an answer with these headers costs.
pub fn factor(headers: &HeaderMap) -> usize {
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if json { PARSED_FACTOR } else { TEXT_FACTOR }
}

impl Answers {
    pub fn new(bytes: usize) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX >> 3).max(1);
        Self {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
            shares: Arc::default(),
        }
    }

    /// A tenant's share: a quarter of the budget.
    fn share_of(&self, tenant: &Arc<str>) -> (Arc<Semaphore>, u32) {
        let size = (self.total_kib / 4).max(1);
        let mut map = self.shares.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !map.contains_key(tenant) && map.len() >= SHARES_KEPT {
            // a share nobody holds or waits for has only the map's reference
            map.retain(|_, s| Arc::strong_count(s) > 1);
        }
        let share = map
            .entry(tenant.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(size as usize)))
            .clone();
        (share, size)
    }

    /// Makes `room` hold the cost of `len` bytes at `factor` (nothing under
    /// [`FREE_BYTES`]): waiting [`WAIT`] when it holds nothing yet, [`GROW_WAIT`] when it
    /// does. False when no room came in time.
    pub async fn cover(&self, room: &mut AnswerRoom, len: usize, factor: usize) -> bool {
        room.len = room.len.max(len);
        if len < FREE_BYTES {
            return true;
        }
        let want = u32::try_from(len.saturating_mul(factor).div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        let held = room
            .permit
            .as_ref()
            .map_or(0, |p| u32::try_from(p.num_permits()).unwrap_or(u32::MAX));
        if want <= held {
            return true;
        }
        let wait = if room.permit.is_some() { GROW_WAIT } else { WAIT };
        let deadline = tokio::time::Instant::now() + wait;
        // the tenant's share first (an answer larger than the share takes all of it)
        if let Some(tenant) = room.tenant.clone() {
            let (share, size) = self.share_of(&tenant);
            let in_share = room
                .share
                .as_ref()
                .map_or(0, |p| u32::try_from(p.num_permits()).unwrap_or(u32::MAX));
            let share_want = want.min(size);
            if share_want > in_share {
                match tokio::time::timeout_at(deadline, share.acquire_many_owned(share_want - in_share)).await {
                    Ok(Ok(more)) => merge(&mut room.share, more),
                    _ => return false,
                }
            }
        }
        match tokio::time::timeout_at(deadline, self.kib.clone().acquire_many_owned(want - held)).await {
            Ok(Ok(more)) => {
                merge(&mut room.permit, more);
                true
            }
            _ => false,
        }
    }

    /// Room held by answers in flight, in KiB.
    pub fn held_kib(&self) -> usize {
        (self.total_kib as usize).saturating_sub(self.kib.available_permits())
    }

    /// Room left, in KiB.
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
        let mut small = AnswerRoom::none();
        assert!(answers.cover(&mut small, 1000, PARSED_FACTOR).await);
        assert_eq!(answers.available_kib(), 100 << 10, "small answers are free");
        // a 2 MB JSON answer costs 48 MB; two fit, the third waits for one to go
        let (mut a, mut b) = (AnswerRoom::none(), AnswerRoom::none());
        assert!(answers.cover(&mut a, 2 << 20, PARSED_FACTOR).await);
        assert!(answers.cover(&mut b, 2 << 20, PARSED_FACTOR).await);
        assert_eq!(answers.available_kib(), 4 << 10);
        let waiter = {
            let answers = answers.clone();
            tokio::spawn(async move { answers.cover(&mut AnswerRoom::none(), 2 << 20, PARSED_FACTOR).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "no room: it waits");
        drop(a);
        assert!(matches!(waiter.await, Ok(true)), "room given back lets it on");
        // growing: from 1 MB to 2 MB of text takes the difference
        let mut t = AnswerRoom::none();
        assert!(answers.cover(&mut t, 1 << 20, TEXT_FACTOR).await);
        assert!(answers.cover(&mut t, 2 << 20, TEXT_FACTOR).await);
        assert_eq!(t.bytes(), 6 << 20);
        // one that holds room and cannot grow gives up after GROW_WAIT, not WAIT
        let started = std::time::Instant::now();
        assert!(!answers.cover(&mut t, 100 << 20, PARSED_FACTOR).await);
        assert!(started.elapsed() < WAIT);
        drop(b);
        drop(t);
        assert_eq!(answers.available_kib(), 100 << 10);
    }

    #[tokio::test]
    async fn a_room_gives_back_what_its_answer_no_longer_costs() {
        let answers = Answers::new(100 << 20);
        let mut room = AnswerRoom::none();
        assert!(answers.cover(&mut room, 1 << 20, PARSED_FACTOR).await);
        assert_eq!(room.bytes(), 24 << 20);
        assert_eq!(room.answer_len(), 1 << 20);
        // the answer became 1.2 MB of text to send
        room.shrink_to(1_200_000);
        assert_eq!(room.bytes(), 1_200_000usize.div_ceil(1024) * 1024);
        assert_eq!(answers.available_kib(), (100 << 10) - 1_200_000usize.div_ceil(1024));
        // never grows, and gives back everything at 0
        room.shrink_to(50 << 20);
        assert_eq!(room.bytes(), 1_200_000usize.div_ceil(1024) * 1024);
        room.shrink_to(0);
        assert_eq!(answers.available_kib(), 100 << 10);
        drop(room);
        assert_eq!(answers.available_kib(), 100 << 10);
    }

    #[tokio::test]
    async fn a_tenant_past_its_share_waits_in_its_own_queue() {
        let answers = Answers::new(100 << 20);
        let a: Option<Arc<str>> = Some("ws-a".into());
        // 1 MB JSON answers cost 24 MB: a tenant's share (25 MB) holds one
        let mut first = AnswerRoom::of(a.clone());
        assert!(answers.cover(&mut first, 1 << 20, PARSED_FACTOR).await);
        // its second waits for its own share, not for the budget
        let mut second = AnswerRoom::of(a.clone());
        let waited = tokio::time::timeout(
            Duration::from_millis(200),
            answers.cover(&mut second, 1 << 20, PARSED_FACTOR),
        )
        .await;
        assert!(waited.is_err(), "it had to wait");
        assert_eq!(second.bytes(), 0);
        // while another tenant (and an answer of no tenant) gets room at once
        let mut other = AnswerRoom::of(Some("ws-b".into()));
        assert!(answers.cover(&mut other, 1 << 20, PARSED_FACTOR).await);
        let mut nobody = AnswerRoom::none();
        assert!(answers.cover(&mut nobody, 1 << 20, PARSED_FACTOR).await);
        assert_eq!(answers.held_kib(), (3 * 24) << 10);
        // the share comes back with the room
        drop(first);
        assert!(answers.cover(&mut second, 1 << 20, PARSED_FACTOR).await);
        drop((second, other, nobody));
        assert_eq!(answers.held_kib(), 0);
        // shrinking gives back in the share too
        let mut big = AnswerRoom::of(a.clone());
        assert!(answers.cover(&mut big, 1 << 20, PARSED_FACTOR).await);
        big.shrink_to(1 << 20);
        let mut next = AnswerRoom::of(a);
        assert!(answers.cover(&mut next, 512 << 10, PARSED_FACTOR).await);
    }
}
