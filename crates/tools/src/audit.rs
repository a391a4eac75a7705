//! The audit writer: tool calls hand their audit row to a background task, which writes
//! rows in batches, so the call path never waits on a database write. Nothing is dropped:
//! the queue is bounded (a full queue makes calls wait, it does not lose rows), a write
//! that fails is retried once and then logged with its count, and [`AuditWriter::flush`]
//! and [`AuditWriter::close`] wait until everything queued is written.

use chatterfly_store::{NewAuditEvent, Store};
use tokio::sync::{mpsc, oneshot};

const QUEUE: usize = 10_000;
const BATCH: usize = 500;

enum Msg {
    Event(NewAuditEvent),
    Flush(oneshot::Sender<()>),
}

pub struct AuditWriter {
    tx: mpsc::Sender<Msg>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl AuditWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(store, rx));
        Self {
            tx,
            task: tokio::sync::Mutex::new(Some(task)),
        }
    }

    pub async fn record(&self, event: NewAuditEvent) {
        if self.tx.send(Msg::Event(event)).await.is_err() {
            tracing::error!("the audit writer has stopped; an audit row was not written");
        }
    }

    /// Waits until every row queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes what is queued and stops accepting rows (on shutdown).
    pub async fn close(&self) {
        self.flush().await;
        if let Some(task) = self.task.lock().await.take() {
            task.abort();
        }
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Msg>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiting = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(e) => batch.push(e),
                Msg::Flush(done) => waiting.push(done),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            if let Err(first) = store.record_audit_batch(&batch).await
                && let Err(again) = store.record_audit_batch(&batch).await
            {
                tracing::error!(rows = batch.len(), error = %again, first = %first, "cannot write audit rows");
            }
            batch.clear();
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}
