//! Durable workflow runs. Starting a run writes it to the store (`queued`, one `pending`
//! step per node, its `caller` credentials sealed to it) and nothing else: every replica
//! has workers that take runs from the store ([`Store::claim_workflow_run`]) with a lease
//! they renew while they work, so a run started on one replica may run on another, and a
//! run whose replica died (its lease ran out) is taken over by the next worker that looks.
//!
//! Each step is written twice, under the lease: `running` with a new attempt (replica,
//! time) before its tool is called, and its end after. A worker taking over a run finds
//! the step the dead replica had started still `running`: that attempt is marked
//! `interrupted` (the call may or may not have reached the tool) and the step is run again
//! as a new attempt, or failed when its node says `"on_interrupt": "fail"`. So a step is
//! run at least once, and a step that may have run twice says so in its attempts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatterfly_store::{
    FencedStepWrite, NewWorkflowRun, NewWorkflowStep, RunEnding, StepWrite, Store, StoreError, WorkflowRecord,
    WorkflowRunRecord, WorkflowStepRecord, now, now_ms,
};
use chatterfly_tools::{Call, Redactor, ToolError, Tools};
use chatterfly_vault::ExposeSecret;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};

use crate::agent::{AgentDef, RunInput};
use crate::runner::{Runner, StartRun};
use crate::template::{self, Scope};
use crate::workflow::{Definition, Node, NodeKind, OnInterrupt};

/// The most a step's output takes (its JSON text, redacted); a larger one fails the step.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// The most a step's input takes after templating.
pub const MAX_RENDERED_INPUT: usize = 4 * 1024 * 1024;
/// The most the outputs of one run's steps take together (later steps' templates read
/// them).
pub const MAX_RUN_STATE: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct FlowOptions {
    /// How long a replica holds a run without renewing; a run whose replica died is taken
    /// over this long after the last renewal (renewed every third of it).
    pub lease: Duration,
    /// Runs one replica executes at once.
    pub workers: usize,
    /// How often idle workers look for runs (a run started here wakes them at once).
    pub poll: Duration,
    /// Runs a workspace may have queued or running (all replicas together).
    pub max_unfinished_per_workspace: u32,
    /// Runs of one workspace executing at once (all replicas together): a workspace's
    /// backlog leaves the other workers to other workspaces.
    pub workspace_share: u32,
}

impl Default for FlowOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(4),
            workers: 32,
            poll: Duration::from_millis(250),
            max_unfinished_per_workspace: 1000,
            workspace_share: 16,
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("{0}")]
    NotDeployed(String),
    #[error("{0}")]
    TooMany(String),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a run starts with.
pub struct StartFlow {
    pub workspace_id: String,
    pub workflow: WorkflowRecord,
    pub input: Value,
    /// Credentials for `caller` connections, by connection slug; sealed to the run and
    /// removed when it ends.
    pub credentials: Option<Map<String, Value>>,
    pub participant: Option<String>,
    pub user_id: Option<String>,
}

/// The workflow engine of one replica: starts runs, and executes runs from the store.
#[derive(Clone)]
pub struct Flows {
    inner: Arc<Inner>,
}

struct Inner {
    tools: Arc<Tools>,
    runner: Runner,
    options: FlowOptions,
    /// This replica's name in leases and attempts.
    replica: String,
    wake: Notify,
    events: broadcast::Sender<String>,
    /// Runs executing here, with the signal that stops them.
    live: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Step writes on their way to the database, committed together (see [`step_writer`]).
    writes: mpsc::UnboundedSender<QueuedWrite>,
    queued_writes: Mutex<Option<mpsc::UnboundedReceiver<QueuedWrite>>>,
    /// Deployed versions read lately (they never change), by workflow and version.
    versions: Mutex<HashMap<(String, i64), Arc<Definition>>>,
    /// Workspace slugs (for messages), with when they were read.
    slugs: Mutex<HashMap<String, (Instant, String)>>,
}

/// Versions kept in memory (all workspaces together).
const VERSIONS_KEPT: usize = 512;
/// Runs taken from the store at once, at most.
const CLAIM_AT_ONCE: usize = 16;

/// A step write waiting for the writer, and who waits for its outcome.
struct QueuedWrite {
    run_id: String,
    owner: String,
    rev: i64,
    node_id: String,
    status: &'static str,
    input: Option<String>,
    output: Option<String>,
    error: Option<String>,
    attempts: String,
    duration_ms: Option<i64>,
    done: oneshot::Sender<Result<bool, String>>,
}

/// Writes the replica's step writes: whatever queued while the last commit went on is
/// written in one transaction. Each step write must reach the database before its call
/// is made (the attempt is the record that the call may have happened), so the writes of
/// many runs share one commit rather than each waiting for its own.
async fn step_writer(store: Store, mut rx: mpsc::UnboundedReceiver<QueuedWrite>) {
    let mut batch: Vec<QueuedWrite> = Vec::new();
    while rx.recv_many(&mut batch, 256).await > 0 {
        let writes: Vec<FencedStepWrite<'_>> = batch
            .iter()
            .map(|q| FencedStepWrite {
                run_id: &q.run_id,
                owner: &q.owner,
                rev: q.rev,
                write: StepWrite {
                    node_id: &q.node_id,
                    status: q.status,
                    input: q.input.as_deref(),
                    output: q.output.as_deref(),
                    error: q.error.as_deref(),
                    attempts: &q.attempts,
                    duration_ms: q.duration_ms,
                },
            })
            .collect();
        let result = store.write_workflow_steps(&writes).await;
        drop(writes);
        match result {
            Ok(held) => {
                for (q, held) in batch.drain(..).zip(held) {
                    let _ = q.done.send(Ok(held));
                }
            }
            Err(e) => {
                let why = e.to_string();
                for q in batch.drain(..) {
                    let _ = q.done.send(Err(why.clone()));
                }
            }
        }
    }
}

impl Flows {
    pub fn new(tools: Arc<Tools>, runner: Runner, options: FlowOptions) -> Self {
        let (events, _) = broadcast::channel(1024);
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        let replica = format!(
            "{}{}{}",
            host.chars().take(40).collect::<String>(),
            if host.is_empty() { "" } else { "/" },
            &chatterfly_store::new_id()[..13]
        );
        let (writes, queued_writes) = mpsc::unbounded_channel();
        Self {
            inner: Arc::new(Inner {
                tools,
                runner,
                options,
                replica,
                wake: Notify::new(),
                events,
                live: Mutex::new(HashMap::new()),
                writes,
                queued_writes: Mutex::new(Some(queued_writes)),
                versions: Mutex::new(HashMap::new()),
                slugs: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// This replica's name as runs record it.
    pub fn replica(&self) -> &str {
        &self.inner.replica
    }

    /// Run ids, each sent when one of that run's steps changed here.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.inner.events.subscribe()
    }

    fn store(&self) -> &Store {
        self.inner.tools.store()
    }

    /// Starts a run of the workflow's deployed version; a worker (here or on another
    /// replica) executes it.
    pub async fn start(&self, s: StartFlow) -> Result<(WorkflowRunRecord, Vec<WorkflowStepRecord>), FlowError> {
        let Some(version) = s.workflow.deployed_version else {
            return Err(FlowError::NotDeployed(format!(
                "workflow `{}` has not been deployed: deploy it first (runs use the deployed version)",
                s.workflow.name
            )));
        };
        let def = self
            .version(&s.workflow.id, version)
            .await
            .map_err(ToolError::Internal)?
            .ok_or(StoreError::NotFound)?;
        if let Some(p) = &s.participant {
            self.inner.tools.participant(&s.workspace_id, p).await?;
        }
        let unfinished = self.store().unfinished_workflow_runs(&s.workspace_id).await?;
        let max = self.inner.options.max_unfinished_per_workspace;
        if unfinished >= i64::from(max) {
            return Err(FlowError::TooMany(format!(
                "{unfinished} workflow runs are queued or running in this workspace already (at most {max}): wait for some to end or cancel some"
            )));
        }
        let id = chatterfly_store::new_id();
        let sealed = match s.credentials.as_ref().filter(|c| !c.is_empty()) {
            Some(c) => Some(
                self.inner
                    .tools
                    .keys()
                    .seal(
                        Value::Object(c.clone()).to_string().as_bytes(),
                        &chatterfly_store::aad::workflow_run_credentials(&id),
                    )
                    .map_err(|e| ToolError::Internal(format!("sealing the run's credentials: {e}")))?,
            ),
            None => None,
        };
        let input = s.input.to_string();
        let steps: Vec<NewWorkflowStep<'_>> = def
            .nodes
            .iter()
            .map(|n| NewWorkflowStep {
                node_id: &n.id,
                kind: n.kind.as_str(),
                target: n.target(),
            })
            .collect();
        let run = self
            .store()
            .create_workflow_run(&NewWorkflowRun {
                id: &id,
                workspace_id: &s.workspace_id,
                workflow_id: &s.workflow.id,
                version,
                input: &input,
                credentials_sealed: sealed.as_deref(),
                participant_id: s.participant.as_deref(),
                started_by: s.user_id.as_deref(),
                steps: &steps,
            })
            .await?;
        self.inner.wake.notify_one();
        // the steps as just written: every one pending
        let pending = def
            .nodes
            .iter()
            .zip(0..)
            .map(|(n, seq)| WorkflowStepRecord {
                node_id: n.id.clone(),
                seq,
                kind: n.kind.as_str().to_owned(),
                target: n.target().to_owned(),
                status: "pending".into(),
                input: None,
                output: None,
                error: None,
                attempts: "[]".into(),
                started_at: None,
                finished_at: None,
                duration_ms: None,
                rev: 0,
                cut: false,
            })
            .collect();
        Ok((run, pending))
    }

    /// Stops a run: a queued one at once; a running one through the store (whichever
    /// replica holds it sees the flag when it renews its lease) and at once when it runs
    /// here. Whether it had not ended.
    pub async fn cancel(&self, workspace_id: &str, run_id: &str) -> Result<bool, StoreError> {
        let was = self.store().cancel_workflow_run(workspace_id, run_id).await?;
        if let Some(tx) = self
            .inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(run_id)
        {
            let _ = tx.send(true);
        }
        let _ = self.inner.events.send(run_id.to_owned());
        Ok(was)
    }

    /// Starts this replica's workers (they take runs from the store as long as the
    /// process lives) and its step writer.
    pub fn start_workers(&self) {
        let queued = self
            .inner
            .queued_writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(queued) = queued else {
            return;
        };
        tokio::spawn(step_writer(self.store().clone(), queued));
        let this = self.clone();
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(this.inner.options.workers.max(1)));
            loop {
                // a free worker, and as many more as are free (up to CLAIM_AT_ONCE)
                let Ok(first) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut permits = vec![first];
                while permits.len() < CLAIM_AT_ONCE {
                    match slots.clone().try_acquire_owned() {
                        Ok(p) => permits.push(p),
                        Err(_) => break,
                    }
                }
                let until = now_ms() + millis(this.inner.options.lease);
                let want = i64::try_from(permits.len()).unwrap_or(1);
                let share = i64::from(this.inner.options.workspace_share);
                match this
                    .store()
                    .claim_workflow_runs(&this.inner.replica, until, want, share)
                    .await
                {
                    Ok(runs) if !runs.is_empty() => {
                        for run in runs {
                            let Some(permit) = permits.pop() else { break };
                            let this = this.clone();
                            tokio::spawn(async move {
                                let id = run.id.clone();
                                this.execute(run).await;
                                let _ = this.inner.events.send(id);
                                drop(permit);
                                // a worker is free, and the workspace has room in its share
                                // again: look for the next run now, not at the next poll
                                this.inner.wake.notify_one();
                            });
                        }
                    }
                    Ok(_) => {
                        drop(permits);
                        let _ = tokio::time::timeout(this.inner.options.poll, this.inner.wake.notified()).await;
                    }
                    Err(e) => {
                        drop(permits);
                        tracing::warn!(error = %e, "taking workflow runs");
                        tokio::time::sleep(this.inner.options.poll).await;
                    }
                }
            }
        });
    }

    /// A deployed version's definition (kept: versions never change).
    async fn version(&self, workflow_id: &str, version: i64) -> Result<Option<Arc<Definition>>, String> {
        let key = (workflow_id.to_owned(), version);
        if let Some(d) = self
            .inner
            .versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            return Ok(Some(d.clone()));
        }
        let Some(stored) = self
            .store()
            .workflow_version(workflow_id, version)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let def: Arc<Definition> = Arc::new(
            serde_json::from_str(&stored.definition)
                .map_err(|e| format!("the stored workflow version cannot be read: {e}"))?,
        );
        let mut cache = self
            .inner
            .versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= VERSIONS_KEPT {
            cache.clear();
        }
        cache.insert(key, def.clone());
        Ok(Some(def))
    }

    /// A workspace's slug, read at most once a minute.
    async fn slug(&self, workspace_id: &str) -> Result<String, StoreError> {
        if let Some((at, slug)) = self
            .inner
            .slugs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(workspace_id)
            && at.elapsed() < Duration::from_secs(60)
        {
            return Ok(slug.clone());
        }
        let slug = self.store().workspace_slug(workspace_id).await?.unwrap_or_default();
        let mut cache = self
            .inner
            .slugs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= 4096 {
            cache.clear();
        }
        cache.insert(workspace_id.to_owned(), (Instant::now(), slug.clone()));
        Ok(slug)
    }

    async fn execute(&self, run: WorkflowRunRecord) {
        let (tx, rx) = watch::channel(false);
        self.inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(run.id.clone(), tx.clone());
        if run.claims > 1 {
            tracing::warn!(run = %run.id, claims = run.claims, "taking over a workflow run another replica held");
        }
        // the lease: renewed every third of it; a cancel asked on another replica arrives here
        let (lost_tx, lost_rx) = watch::channel(false);
        let keeper = {
            let this = self.clone();
            let id = run.id.clone();
            let cancel = tx.clone();
            tokio::spawn(async move {
                let every = (this.inner.options.lease / 3).max(Duration::from_millis(100));
                loop {
                    tokio::time::sleep(every).await;
                    let until = now_ms() + millis(this.inner.options.lease);
                    match this.store().renew_workflow_lease(&id, &this.inner.replica, until).await {
                        Ok(Some(cancelled)) => {
                            if cancelled {
                                let _ = cancel.send(true);
                            }
                        }
                        Ok(None) => {
                            let _ = lost_tx.send(true);
                            return;
                        }
                        Err(e) => tracing::warn!(run = %id, error = %e, "renewing a workflow run's lease"),
                    }
                }
            })
        };
        let run_id = run.id.clone();
        let end = Exec::prepare(self, run, rx, lost_rx).await;
        keeper.abort();
        self.inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&run_id);
        match end {
            Ok(()) => {}
            Err(Halt::Lost) => {
                tracing::warn!(run = %run_id, "lost a workflow run's lease: another replica goes on with it")
            }
            Err(Halt::Cancelled) => {}
            Err(Halt::Store(e)) => {
                tracing::error!(run = %run_id, error = %e, "a workflow run stopped on a database error; it is taken over when its lease runs out")
            }
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Why an execution stopped without ending its run.
enum Halt {
    /// The lease went to another replica.
    Lost,
    /// A step could not start: a cancel was asked for (on any replica).
    Cancelled,
    Store(StoreError),
}

impl From<StoreError> for Halt {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// One step's state in memory.
struct StepState {
    status: String,
    output: Option<Value>,
    attempts: Vec<Value>,
}

/// How a step ended.
enum Outcome {
    Succeeded(Value, usize),
    Failed(String),
}

/// One execution of a run on this replica.
struct Exec<'a> {
    flows: &'a Flows,
    run: WorkflowRunRecord,
    workspace_slug: String,
    def: Arc<Definition>,
    input: Value,
    credentials: Option<Map<String, Value>>,
    redactor: Arc<Redactor>,
    cancel: watch::Receiver<bool>,
    lost: watch::Receiver<bool>,
    /// The run's change count: each step write is the next (events followers read the
    /// changes after theirs); only the replica holding the run writes.
    rev: std::sync::atomic::AtomicI64,
}

struct RunScope<'a> {
    input: &'a Value,
    outputs: HashMap<&'a str, &'a Value>,
}

impl Scope for RunScope<'_> {
    fn input(&self) -> &Value {
        self.input
    }
    fn step(&self, id: &str) -> Option<&Value> {
        self.outputs.get(id).copied()
    }
}

impl<'a> Exec<'a> {
    async fn prepare(
        flows: &'a Flows,
        run: WorkflowRunRecord,
        cancel: watch::Receiver<bool>,
        lost: watch::Receiver<bool>,
    ) -> Result<(), Halt> {
        let store = flows.store();
        let owner = flows.inner.replica.clone();
        let fail = |why: String| {
            let run_id = run.id.clone();
            let owner = owner.clone();
            async move {
                let end = RunEnding {
                    status: "failed",
                    output: None,
                    error: Some(&why),
                    // after any change an earlier holder made
                    close: Some(("skipped", i64::MAX / 2)),
                };
                if !store.finish_workflow_run(&run_id, &owner, &end).await? {
                    return Err(Halt::Lost);
                }
                Ok(())
            }
        };
        let def = match flows.version(&run.workflow_id, run.version).await {
            Ok(Some(d)) => d,
            Ok(None) => return fail(format!("version {} of the workflow is gone", run.version)).await,
            Err(e) => return fail(e).await,
        };
        let input: Value = serde_json::from_str(&run.input).unwrap_or(Value::Null);
        let credentials = match &run.credentials_sealed {
            None => None,
            Some(sealed) => {
                let opened = flows
                    .inner
                    .tools
                    .keys()
                    .open_string(sealed, &chatterfly_store::aad::workflow_run_credentials(&run.id))
                    .ok()
                    .and_then(|s| serde_json::from_str::<Map<String, Value>>(s.expose_secret()).ok());
                match opened {
                    Some(c) => Some(c),
                    None => {
                        return fail("the run's credentials cannot be opened with this server's keys".into()).await;
                    }
                }
            }
        };
        let mut secrets = Vec::new();
        for fields in credentials.iter().flat_map(|c| c.values()) {
            if let Value::Object(f) = fields {
                secrets.extend(f.values().filter_map(Value::as_str).map(str::to_owned));
            }
        }
        let workspace_slug = flows.slug(&run.workspace_id).await?;
        let exec = Exec {
            flows,
            run,
            workspace_slug,
            def,
            input,
            credentials,
            redactor: Arc::new(Redactor::for_values(secrets)),
            cancel,
            lost,
            rev: std::sync::atomic::AtomicI64::new(0),
        };
        exec.go().await
    }

    fn owner(&self) -> &str {
        &self.flows.inner.replica
    }

    fn store(&self) -> &Store {
        self.flows.store()
    }

    fn hide(&self, text: &str) -> String {
        crate::hide(&self.redactor, text)
    }

    fn announce(&self) {
        let _ = self.flows.inner.events.send(self.run.id.clone());
    }

    async fn write(&self, w: &StepWrite<'_>) -> Result<(), Halt> {
        let (done, outcome) = oneshot::channel();
        let queued = QueuedWrite {
            run_id: self.run.id.clone(),
            owner: self.owner().to_owned(),
            rev: self.next_rev(),
            node_id: w.node_id.to_owned(),
            status: match w.status {
                "running" => "running",
                "succeeded" => "succeeded",
                "cancelled" => "cancelled",
                _ => "failed",
            },
            input: w.input.map(str::to_owned),
            output: w.output.map(str::to_owned),
            error: w.error.map(str::to_owned),
            attempts: w.attempts.to_owned(),
            duration_ms: w.duration_ms,
            done,
        };
        if self.flows.inner.writes.send(queued).is_err() {
            return Err(Halt::Store(StoreError::Corrupt("the step writer stopped".into())));
        }
        match outcome.await {
            Ok(Ok(true)) => {
                self.announce();
                Ok(())
            }
            // a step's start refused: the run was cancelled, or is no longer this replica's
            Ok(Ok(false)) if w.status == "running" => {
                match self.store().workflow_run(&self.run.workspace_id, &self.run.id).await {
                    Ok(Some(r)) if r.cancel_requested && r.lease_owner.as_deref() == Some(self.owner()) => {
                        Err(Halt::Cancelled)
                    }
                    _ => Err(Halt::Lost),
                }
            }
            Ok(Ok(false)) => Err(Halt::Lost),
            Ok(Err(why)) => Err(Halt::Store(StoreError::Corrupt(why))),
            Err(_) => Err(Halt::Store(StoreError::Corrupt("the step writer stopped".into()))),
        }
    }

    fn next_rev(&self) -> i64 {
        self.rev.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    async fn finish(&self, status: &str, output: Option<&str>, error: Option<&str>) -> Result<(), Halt> {
        let close = match status {
            "succeeded" => None,
            "cancelled" => Some(("cancelled", self.next_rev())),
            _ => Some(("skipped", self.next_rev())),
        };
        let end = RunEnding {
            status,
            output,
            error,
            close,
        };
        if !self
            .store()
            .finish_workflow_run(&self.run.id, self.owner(), &end)
            .await?
        {
            return Err(Halt::Lost);
        }
        tracing::info!(run = %self.run.id, status, "workflow run ended");
        self.announce();
        Ok(())
    }

    async fn go(self) -> Result<(), Halt> {
        let plan = match self.def.plan() {
            Ok(p) => p,
            Err(e) => return self.finish("failed", None, Some(&e)).await,
        };
        let n = self.def.nodes.len();
        // a run taken for the first time has every step pending: nothing to read
        let stored = if self.run.claims > 1 {
            self.store().workflow_steps(&self.run.id).await?
        } else {
            Vec::new()
        };
        self.rev.store(
            stored.iter().map(|s| s.rev).max().unwrap_or(0),
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut by_node: HashMap<String, StepState> = stored
            .into_iter()
            .map(|s| {
                let output = s.output.as_deref().and_then(|o| serde_json::from_str(o).ok());
                let attempts = serde_json::from_str(&s.attempts).unwrap_or_default();
                (
                    s.node_id,
                    StepState {
                        status: s.status,
                        output,
                        attempts,
                    },
                )
            })
            .collect();
        let mut state: Vec<StepState> = self
            .def
            .nodes
            .iter()
            .map(|node| {
                by_node.remove(&node.id).unwrap_or(StepState {
                    status: "pending".into(),
                    output: None,
                    attempts: Vec::new(),
                })
            })
            .collect();
        let mut held: usize = state
            .iter()
            .filter_map(|s| s.output.as_ref())
            .map(|o| o.to_string().len())
            .sum();
        let mut in_flight = vec![false; n];
        let mut failure: Option<String> = None;
        let mut cancel = self.cancel.clone();
        let mut lost = self.lost.clone();
        if self.run.cancel_requested || state.iter().any(|s| s.status == "cancelled") {
            // (or the replica before died between writing a step's end and the run's)
            self.settle(&state, &in_flight, true).await?;
            return self.finish("cancelled", None, Some("the run was cancelled")).await;
        }
        // a run waits in the queue (or for a server to take it over): whoever started it
        // may have left the workspace since
        if let Some(who) = &self.run.started_by
            && !self.store().may_act_in(&self.run.workspace_id, who).await?
        {
            self.settle(&state, &in_flight, false).await?;
            let why = "the person who started the run is no longer a member of the workspace";
            return self.finish("failed", None, Some(why)).await;
        }
        if let Some(i) = state.iter().position(|s| s.status == "failed" || s.status == "skipped") {
            failure = Some(format!("step `{}` failed", self.def.nodes[i].id));
        }
        let mut running = FuturesUnordered::new();
        loop {
            if failure.is_none() {
                for i in 0..n {
                    let ready = matches!(state[i].status.as_str(), "pending" | "running")
                        && !in_flight[i]
                        && plan.preds[i].iter().all(|&p| state[p].status == "succeeded");
                    if !ready {
                        continue;
                    }
                    in_flight[i] = true;
                    let scope = RunScope {
                        input: &self.input,
                        outputs: self
                            .def
                            .nodes
                            .iter()
                            .zip(&state)
                            .filter(|(_, s)| s.status == "succeeded")
                            .filter_map(|(node, s)| Some((node.id.as_str(), s.output.as_ref()?)))
                            .collect(),
                    };
                    let rendered = template::render(&self.def.nodes[i].input, &scope);
                    let interrupted = state[i].status == "running";
                    let attempts = state[i].attempts.clone();
                    let step = self.step(i, rendered, interrupted, attempts);
                    running.push(async move { (i, step.await) });
                }
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                Some((i, done)) = running.next() => {
                    in_flight[i] = false;
                    let (outcome, attempts) = match done {
                        Ok((_, outcome, attempts)) => (outcome, attempts),
                        // this step's start was refused (it never ran): the others stop
                        Err(Halt::Cancelled) => {
                            drop(running);
                            self.settle(&state, &in_flight, true).await?;
                            return self.finish("cancelled", None, Some("the run was cancelled")).await;
                        }
                        Err(e) => return Err(e),
                    };
                    state[i].attempts = attempts;
                    match outcome {
                        Outcome::Succeeded(v, size) => {
                            held += size;
                            state[i].status = "succeeded".into();
                            state[i].output = Some(v);
                            if held > MAX_RUN_STATE && failure.is_none() {
                                failure = Some(format!(
                                    "the steps' outputs together are larger than {} MiB (later steps read them): return less from the tools",
                                    MAX_RUN_STATE / (1024 * 1024)
                                ));
                            }
                        }
                        Outcome::Failed(why) => {
                            state[i].status = "failed".into();
                            if failure.is_none() {
                                failure = Some(format!("step `{}` failed: {why}", self.def.nodes[i].id));
                            }
                        }
                    }
                }
                true = async { cancel.wait_for(|c| *c).await.is_ok() } => {
                    drop(running);
                    self.settle(&state, &in_flight, true).await?;
                    return self.finish("cancelled", None, Some("the run was cancelled")).await;
                }
                true = async { lost.wait_for(|l| *l).await.is_ok() } => {
                    return Err(Halt::Lost);
                }
            }
        }
        if let Some(why) = failure {
            self.settle(&state, &in_flight, false).await?;
            return self.finish("failed", None, Some(&self.hide(&why))).await;
        }
        let output = plan
            .sinks()
            .last()
            .and_then(|&i| state[i].output.as_ref())
            .map(Value::to_string);
        self.finish("succeeded", output.as_deref(), None).await
    }

    /// Before a run ends without finishing its steps: each step that was under way (here,
    /// dropped by a cancel; or on a server that died) is written with its attempt's
    /// outcome, since its call may have been made: `cancelled` (stopped here) or
    /// `interrupted` (its server stopped).
    async fn settle(&self, state: &[StepState], in_flight: &[bool], cancelled: bool) -> Result<(), Halt> {
        for (i, st) in state.iter().enumerate() {
            let here = in_flight.get(i).copied().unwrap_or(false);
            if !here && st.status != "running" {
                continue;
            }
            let mut attempts = st.attempts.clone();
            let note = "stopped while under way: the call may have been made";
            if here {
                attempts.push(json!({"attempt": attempts.len() + 1, "replica": self.owner(),
                    "ended_at": now(), "outcome": "cancelled", "note": note}));
            } else if let Some(last) = attempts.last_mut() {
                last["outcome"] = json!("interrupted");
                last["note"] = json!(
                    "the server running this attempt stopped before it recorded an end: the call may have been made"
                );
            }
            let (status, code) = if cancelled {
                ("cancelled", "cancelled")
            } else {
                ("failed", "interrupted")
            };
            let error = json!({"code": code, "message": note}).to_string();
            let attempts_text = Value::Array(attempts).to_string();
            self.write(&StepWrite {
                node_id: &self.def.nodes[i].id,
                status,
                input: None,
                output: None,
                error: Some(&error),
                attempts: &attempts_text,
                duration_ms: None,
            })
            .await?;
        }
        Ok(())
    }

    /// Runs node `i` once more: its attempt recorded before the call, its end after.
    async fn step(
        &self,
        i: usize,
        rendered: Result<Value, String>,
        interrupted: bool,
        mut attempts: Vec<Value>,
    ) -> Result<(usize, Outcome, Vec<Value>), Halt> {
        let node = &self.def.nodes[i];
        if interrupted && let Some(last) = attempts.last_mut() {
            last["outcome"] = json!("interrupted");
            last["note"] =
                json!("the server running this attempt stopped before it recorded an end: the call may have been made");
        }
        if interrupted && node.on_interrupt == OnInterrupt::Fail {
            // the interrupted attempt stays the last, marked so; no new one is made
            let why =
                "an earlier attempt was interrupted and may have called the tool; the node says `on_interrupt: fail`";
            let attempts_text = Value::Array(attempts.clone()).to_string();
            let error = json!({"code": "interrupted", "message": why}).to_string();
            self.write(&StepWrite {
                node_id: &node.id,
                status: "failed",
                input: None,
                output: None,
                error: Some(&error),
                attempts: &attempts_text,
                duration_ms: None,
            })
            .await?;
            return Ok((i, Outcome::Failed(why.to_owned()), attempts));
        }
        attempts.push(json!({
            "attempt": attempts.len() + 1,
            "replica": self.owner(),
            "started_at": now(),
        }));
        let args = match rendered {
            Ok(v) => v,
            Err(why) => return self.failed(i, None, "template_error", &why, attempts, None).await,
        };
        let input_text = self.hide(&args.to_string());
        if input_text.len() > MAX_RENDERED_INPUT {
            let why = format!(
                "the input after templating is larger than {} MiB",
                MAX_RENDERED_INPUT / (1024 * 1024)
            );
            return self.failed(i, None, "input_too_large", &why, attempts, None).await;
        }
        let attempts_text = Value::Array(attempts.clone()).to_string();
        self.write(&StepWrite {
            node_id: &node.id,
            status: "running",
            input: Some(&input_text),
            output: None,
            error: None,
            attempts: &attempts_text,
            duration_ms: None,
        })
        .await?;
        let started = Instant::now();
        let result = match node.kind {
            NodeKind::Tool => self.call_tool(node, args).await,
            NodeKind::Agent => self.run_agent(node, args).await,
        };
        let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        match result {
            Ok(out) => {
                // an HTTP tool's answer (`{"status", "headers", "body"}`) with an error status
                let status = out.get("status").and_then(Value::as_u64).filter(|_| {
                    node.kind == NodeKind::Tool && out.get("headers").is_some() && out.get("body").is_some()
                });
                let text =
                    match crate::hidden_output(&self.flows.inner.tools, &self.run.workspace_id, &self.redactor, out)
                        .await
                    {
                        Ok(text) => text,
                        Err(why) => {
                            return self
                                .failed(i, Some(&input_text), "internal", &why, attempts, Some(ms))
                                .await;
                        }
                    };
                if text.len() > MAX_OUTPUT_BYTES {
                    let why = format!(
                        "the output is {} bytes, more than a step keeps ({} MiB)",
                        text.len(),
                        MAX_OUTPUT_BYTES / (1024 * 1024)
                    );
                    return self
                        .failed(i, Some(&input_text), "output_too_large", &why, attempts, Some(ms))
                        .await;
                }
                if let Some(s) = status.filter(|s| *s >= 400) {
                    let why = format!("the upstream answered HTTP {s}");
                    self.end_attempt(&mut attempts, "failed");
                    let attempts_text = Value::Array(attempts.clone()).to_string();
                    let error = json!({"code": "upstream_status", "message": why}).to_string();
                    self.write(&StepWrite {
                        node_id: &node.id,
                        status: "failed",
                        input: None,
                        output: Some(&text),
                        error: Some(&error),
                        attempts: &attempts_text,
                        duration_ms: Some(ms),
                    })
                    .await?;
                    return Ok((i, Outcome::Failed(why), attempts));
                }
                self.end_attempt(&mut attempts, "succeeded");
                let attempts_text = Value::Array(attempts.clone()).to_string();
                self.write(&StepWrite {
                    node_id: &node.id,
                    status: "succeeded",
                    input: None,
                    output: Some(&text),
                    error: None,
                    attempts: &attempts_text,
                    duration_ms: Some(ms),
                })
                .await?;
                let value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
                Ok((i, Outcome::Succeeded(value, text.len()), attempts))
            }
            Err((code, why)) => {
                let why = self.hide(&why);
                self.failed(i, Some(&input_text), code, &why, attempts, Some(ms)).await
            }
        }
    }

    fn end_attempt(&self, attempts: &mut [Value], outcome: &str) {
        if let Some(last) = attempts.last_mut() {
            last["ended_at"] = json!(now());
            last["outcome"] = json!(outcome);
        }
    }

    async fn failed(
        &self,
        i: usize,
        input: Option<&str>,
        code: &str,
        why: &str,
        mut attempts: Vec<Value>,
        ms: Option<i64>,
    ) -> Result<(usize, Outcome, Vec<Value>), Halt> {
        self.end_attempt(&mut attempts, "failed");
        let attempts_text = Value::Array(attempts.clone()).to_string();
        let error = json!({"code": code, "message": why}).to_string();
        self.write(&StepWrite {
            node_id: &self.def.nodes[i].id,
            status: "failed",
            input,
            output: None,
            error: Some(&error),
            attempts: &attempts_text,
            duration_ms: ms,
        })
        .await?;
        Ok((i, Outcome::Failed(why.to_owned()), attempts))
    }

    async fn call_tool(&self, node: &Node, args: Value) -> Result<Value, (&'static str, String)> {
        let tool = node.tool_name.as_deref().unwrap_or_default();
        let credentials = tool
            .split_once('.')
            .and_then(|(slug, _)| self.credentials.as_ref()?.get(slug))
            .and_then(Value::as_object)
            .cloned();
        self.flows
            .inner
            .tools
            .invoke(Call {
                workspace_id: &self.run.workspace_id,
                workspace_slug: &self.workspace_slug,
                user_id: self.run.started_by.as_deref(),
                tool,
                arguments: args,
                credentials,
                participant: self.run.participant_id.as_deref(),
                resolved: None,
                wait_for_room: true,
                run_id: Some(&self.run.id),
            })
            .await
            .map(|o| o.output)
            .map_err(|e| (e.code(), e.to_string()))
    }

    /// Runs the agent as an agent run of its own (with this run's credentials or
    /// participant) and waits for its end: its answer, or its error.
    async fn run_agent(&self, node: &Node, args: Value) -> Result<Value, (&'static str, String)> {
        let store = self.store();
        let agent_id = node.agent.as_deref().unwrap_or_default();
        let agent = match store.agent(&self.run.workspace_id, agent_id).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                return Err((
                    "agent_not_found",
                    format!("there is no agent `{agent_id}` in this workspace"),
                ));
            }
            Err(e) => return Err(("internal", e.to_string())),
        };
        let def = AgentDef::from_record(&agent).map_err(|e| ("internal", e))?;
        let input = match &args {
            Value::String(_) | Value::Array(_) => args.clone(),
            other => Value::String(other.to_string()),
        };
        let input = RunInput::parse(&input).map_err(|e| ("invalid_arguments", format!("the agent's input: {e}")))?;
        // only the credentials of the agent's own connections
        let credentials = self.credentials.as_ref().map(|c| {
            c.iter()
                .filter(|(slug, _)| {
                    def.tools
                        .iter()
                        .any(|t| t.split_once('.').is_some_and(|(s, _)| s == slug.as_str()))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Map<String, Value>>()
        });
        let runner = &self.flows.inner.runner;
        let mut events = runner.subscribe();
        let started = runner
            .start(StartRun {
                workspace_id: self.run.workspace_id.clone(),
                workspace_slug: self.workspace_slug.clone(),
                user_id: self.run.started_by.clone(),
                agent,
                def,
                input: input.0,
                credentials,
                participant: self.run.participant_id.clone(),
            })
            .await
            .map_err(|e| match e {
                crate::RunError::UnknownTools(m) => ("unknown_tools", m),
                crate::RunError::TooMany(m) => ("too_many_runs", m),
                crate::RunError::Tool(t) => (t.code(), t.to_string()),
                crate::RunError::Store(s) => ("internal", s.to_string()),
            })?;
        // dropped before the agent run ends (this run cancelled or taken over): stop it
        let guard = StopAgentRun {
            runner: runner.clone(),
            workspace_id: self.run.workspace_id.clone(),
            run_id: Some(started.id.clone()),
        };
        loop {
            match store.run(&self.run.workspace_id, &started.id).await {
                Ok(Some(r)) if r.status != "running" => {
                    let mut guard = guard;
                    guard.run_id = None;
                    let text: Option<String> = r.output.as_deref().and_then(|o| serde_json::from_str(o).ok());
                    let out = json!({"text": text, "run_id": r.id, "status": r.status,
                                     "usage": {"input_tokens": r.input_tokens, "output_tokens": r.output_tokens}});
                    return if r.status == "succeeded" {
                        Ok(out)
                    } else {
                        Err((
                            "agent_failed",
                            format!("agent run {} ended {}: {}", r.id, r.status, r.error.unwrap_or_default()),
                        ))
                    };
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading an agent run"),
            }
            let wait = async {
                loop {
                    match events.recv().await {
                        Ok(id) if id == started.id => return,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_millis(500), wait).await;
        }
    }
}

/// Cancels an agent run a workflow step started, unless disarmed.
struct StopAgentRun {
    runner: Runner,
    workspace_id: String,
    run_id: Option<String>,
}

impl Drop for StopAgentRun {
    fn drop(&mut self) {
        if let Some(id) = self.run_id.take() {
            let runner = self.runner.clone();
            let ws = std::mem::take(&mut self.workspace_id);
            tokio::spawn(async move {
                let _ = runner.cancel(&ws, &id).await;
            });
        }
    }
}
