//! Work on large answers off the async workers.
//!
//! Decoding, redacting, parsing and serializing a 10 MB answer takes tens to hundreds of
//! milliseconds of CPU. Done on the async workers, a few such answers at once stall every
//! other call on the server, whatever its workspace (measured: a small call waited up to
//! 7 s behind sixteen 9.9 MB answers of another workspace). Work on an answer larger than
//! [`HEAVY_BYTES`] runs instead on the blocking pool, at most [`Heavy::permits`] jobs at a
//! time (half the cores, at least one), so the workers stay free for everything else.
//!
//! Jobs wait for the gate in lanes, one per workspace, each lane with at most `permits`
//! jobs at the gate: a workspace with a hundred large answers queued delays another
//! workspace's large answer by at most `permits` jobs, not a hundred. A job's places are
//! held until its work is done, even when the caller has gone (a client that hangs up
//! cannot make room for more work than the cores can do).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Answers at least this large are handled on the blocking pool; below it the work takes
/// well under a millisecond and the hop would cost more than it saves.
pub const HEAVY_BYTES: usize = 256 * 1024;

/// The job panicked (its error is in the log).
#[derive(Debug, thiserror::Error)]
#[error("work on a large answer failed")]
pub struct HeavyFailed;

/// The gate of work on large answers, shared by clones.
#[derive(Clone)]
pub struct Heavy {
    inner: Arc<Inner>,
}

struct Inner {
    permits: usize,
    gate: Arc<Semaphore>,
    lanes: Mutex<HashMap<String, Arc<Semaphore>>>,
    waiting: AtomicUsize,
    done: AtomicU64,
}

/// Counts a job waiting for its places while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for Heavy {
    fn default() -> Self {
        Self::new(Self::default_permits())
    }
}

impl std::fmt::Debug for Heavy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Heavy({} permits)", self.inner.permits)
    }
}

/// A lane's place; its lane is forgotten when the last place of it goes.
struct LanePlace {
    inner: Arc<Inner>,
    key: String,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for LanePlace {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut lanes = self
            .inner
            .lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // the map's own reference is the only one left: nobody waits in or holds this lane
        if lanes.get(&self.key).is_some_and(|s| Arc::strong_count(s) == 1) {
            lanes.remove(&self.key);
        }
    }
}

impl Heavy {
    /// At most `permits` jobs at once (at least one).
    pub fn new(permits: usize) -> Self {
        let permits = permits.max(1);
        Self {
            inner: Arc::new(Inner {
                permits,
                gate: Arc::new(Semaphore::new(permits)),
                lanes: Mutex::new(HashMap::new()),
                waiting: AtomicUsize::new(0),
                done: AtomicU64::new(0),
            }),
        }
    }

    /// Half the cores this process may use, at least one.
    pub fn default_permits() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get() / 2).max(1)
    }

    pub fn permits(&self) -> usize {
        self.inner.permits
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.inner.permits - self.inner.gate.available_permits()
    }

    /// Jobs waiting for their places.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// Jobs done since the start.
    pub fn done(&self) -> u64 {
        self.inner.done.load(Ordering::Relaxed)
    }

    /// Lanes with jobs waiting or running.
    pub fn busy_lanes(&self) -> usize {
        self.inner
            .lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Waits until `lane` and the gate have room, and holds both places until the
    /// returned [`Place`] is dropped: for large work that has to run where it is (a
    /// library parsing on its own task), taking its turn like the jobs of [`Heavy::run`].
    pub async fn place(&self, lane: &str) -> Result<Place, HeavyFailed> {
        let lane_gate = {
            let mut lanes = self
                .inner
                .lanes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            lanes
                .entry(lane.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.inner.permits)))
                .clone()
        };
        let mut lane_place = LanePlace {
            inner: self.inner.clone(),
            key: lane.to_owned(),
            permit: None,
        };
        let waiting = {
            self.inner.waiting.fetch_add(1, Ordering::Relaxed);
            Waiting(&self.inner.waiting)
        };
        // neither semaphore is ever closed
        lane_place.permit = Some(lane_gate.acquire_owned().await.map_err(|_| HeavyFailed)?);
        let gate = self.inner.gate.clone().acquire_owned().await.map_err(|_| HeavyFailed)?;
        drop(waiting);
        Ok(Place {
            inner: self.inner.clone(),
            _gate: gate,
            _lane: lane_place,
        })
    }

    /// Runs `work` on the blocking pool once `lane` and the gate have room.
    pub async fn run<T, F>(&self, lane: &str, work: F) -> Result<T, HeavyFailed>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let place = self.place(lane).await?;
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(place);
            out
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "work on a large answer failed");
            HeavyFailed
        })
    }
}

/// A job's places in its lane and at the gate; the job counts as done when it goes.
pub struct Place {
    inner: Arc<Inner>,
    _gate: OwnedSemaphorePermit,
    _lane: LanePlace,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.inner.done.fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Place")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_permits_jobs_run_at_once_and_lanes_are_forgotten() {
        let heavy = Heavy::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..8)
            .map(|i| {
                let (heavy, running, most) = (heavy.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    heavy
                        .run(if i % 2 == 0 { "a" } else { "b" }, move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(30));
                            running.fetch_sub(1, Ordering::SeqCst);
                            i
                        })
                        .await
                })
            })
            .collect();
        let mut got = Vec::new();
        for j in jobs {
            got.push(j.await.unwrap().unwrap());
        }
        assert_eq!(got, (0..8).collect::<Vec<_>>());
        assert_eq!(
            most.load(Ordering::SeqCst),
            2,
            "the gate lets exactly `permits` jobs run"
        );
        assert_eq!(heavy.busy_lanes(), 0, "idle lanes are forgotten");
        assert_eq!((heavy.done(), heavy.waiting(), heavy.running()), (8, 0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_lanes_queue_does_not_hold_another_lane_back() {
        let heavy = Heavy::new(1);
        let started = Instant::now();
        // workspace `a` queues twenty 50 ms jobs
        let flood: Vec<_> = (0..20)
            .map(|_| {
                let heavy = heavy.clone();
                tokio::spawn(async move { heavy.run("a", || std::thread::sleep(Duration::from_millis(50))).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // workspace `b`'s one job waits for at most the job running and `a`'s one at the gate
        heavy.run("b", || ()).await.unwrap();
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_millis(400),
            "b waited {waited:?}, behind a's whole queue (1 s)"
        );
        for f in flood {
            f.await.unwrap().unwrap();
        }
        assert_eq!(heavy.busy_lanes(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_goes_away_keeps_its_place_until_the_work_is_done() {
        let heavy = Heavy::new(1);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let job = |running: Arc<AtomicUsize>, most: Arc<AtomicUsize>| {
            move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
                running.fetch_sub(1, Ordering::SeqCst);
            }
        };
        // the first caller hangs up while its job runs
        let gone = tokio::time::timeout(
            Duration::from_millis(20),
            heavy.run("a", job(running.clone(), most.clone())),
        )
        .await;
        assert!(gone.is_err());
        heavy.run("a", job(running.clone(), most.clone())).await.unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 1, "the second job ran beside the first");
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_not_a_crash() {
        let heavy = Heavy::new(1);
        let r = heavy.run("a", || -> u8 { panic!("boom") }).await;
        assert!(r.is_err());
        // its places came back
        assert_eq!(heavy.run("a", || 7).await.unwrap(), 7);
    }
}
