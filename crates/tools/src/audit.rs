//! The audit writer: tool calls hand their audit row to a background task, which writes
//! rows in batches, so the call path never waits on a database write. Nothing is dropped:
//! the buffer is bounded (a full buffer makes calls wait, it does not lose rows), a write
//! that fails is retried once and then logged with its count, and [`AuditWriter::flush`]
//! and [`AuditWriter::close`] wait until everything recorded is written.
//!
//! A call does not wake the writer unless the buffer was empty: the writer, once woken,
//! gathers rows for [`LINGER`] (a flush or a full batch ends the wait) and writes them
//! together. Waking a sleeping thread for every call cost the calls themselves about half
//! a millisecond on a 2-core machine (measured with the MCP benchmark, docs/benchmarks.md).

use std::sync::{Arc, Mutex};

use chatterfly_store::{NewAuditEvent, Store};
use tokio::sync::{Notify, oneshot};

const QUEUE: usize = 10_000;
const BATCH: usize = 500;
const LINGER: std::time::Duration = std::time::Duration::from_millis(25);

#[derive(Default)]
struct State {
    rows: Vec<NewAuditEvent>,
    flushes: Vec<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer (a permit is kept when it is busy, so no wake-up is lost).
    wake: Notify,
    /// Wakes calls waiting for room in a full buffer.
    space: Notify,
}

pub struct AuditWriter {
    shared: Arc<Shared>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl AuditWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn start(store: Store) -> Self {
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(run(store, shared.clone()));
        Self {
            shared,
            task: tokio::sync::Mutex::new(Some(task)),
        }
    }

    /// Rows recorded and not yet written.
    pub fn backlog(&self) -> usize {
        self.shared.state.lock().map(|st| st.rows.len()).unwrap_or(0)
    }

    pub async fn record(&self, event: NewAuditEvent) {
        let mut event = Some(event);
        loop {
            let space = self.shared.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            {
                let Ok(mut st) = self.shared.state.lock() else {
                    tracing::error!("the audit buffer is poisoned; an audit row was not written");
                    return;
                };
                if st.rows.len() < QUEUE {
                    let first = st.rows.is_empty();
                    if let Some(e) = event.take() {
                        st.rows.push(e);
                    }
                    let full_batch = st.rows.len() == BATCH;
                    drop(st);
                    if first || full_batch {
                        self.shared.wake.notify_one();
                    }
                    return;
                }
            }
            // full: make sure the writer runs, then wait for room
            self.shared.wake.notify_one();
            space.await;
        }
    }

    /// Records at once, without waiting for room: for a call dropped part-way (its caller
    /// hung up), whose row is written from `Drop`. The queue may go past its bound for
    /// these, up to twice it; past that (callers hanging up faster than the database
    /// writes) the row is dropped and the log says so.
    pub fn record_now(&self, event: NewAuditEvent) {
        let Ok(mut st) = self.shared.state.lock() else {
            tracing::error!("the audit buffer is poisoned; an audit row was not written");
            return;
        };
        if st.rows.len() >= 2 * QUEUE {
            drop(st);
            tracing::warn!(tool = %event.tool, "the audit queue is full; the row of a call whose client hung up was not written");
            return;
        }
        st.rows.push(event);
        drop(st);
        self.shared.wake.notify_one();
    }

    /// Waits until every row recorded before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        match self.shared.state.lock() {
            Ok(mut st) => st.flushes.push(done),
            Err(_) => return,
        }
        self.shared.wake.notify_one();
        let _ = wait.await;
    }

    /// Writes what is recorded and stops the writer (on shutdown).
    pub async fn close(&self) {
        self.flush().await;
        if let Some(task) = self.task.lock().await.take() {
            task.abort();
        }
    }
}

fn urgent(shared: &Shared) -> bool {
    shared
        .state
        .lock()
        .map(|st| !st.flushes.is_empty() || st.rows.len() >= BATCH)
        .unwrap_or(true)
}

async fn run(store: Store, shared: Arc<Shared>) {
    loop {
        shared.wake.notified().await;
        if !urgent(&shared) {
            // gather more rows; a flush or a full batch (which notifies) ends the wait
            tokio::select! {
                () = tokio::time::sleep(LINGER) => {}
                () = shared.wake.notified() => {}
            }
        }
        let (rows, flushes) = match shared.state.lock() {
            Ok(mut st) => (std::mem::take(&mut st.rows), std::mem::take(&mut st.flushes)),
            Err(_) => return,
        };
        shared.space.notify_waiters();
        // everything taken in one write (one transaction): on SQLite each write waits its
        // turn behind the writes queued before it, so a backlog written a batch at a time
        // fell further behind with every large write queued meanwhile
        if !rows.is_empty()
            && let Err(first) = store.record_audit_batch(&rows).await
            && let Err(again) = store.record_audit_batch(&rows).await
        {
            tracing::error!(rows = rows.len(), error = %again, first = %first, "cannot write audit rows");
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}
