//! The runner: one task per run, on the replica that started it. Each step (a model turn, a
//! tool call) is written to the store as it ends, redacted, and announced on a channel the
//! events stream listens to; a cancel is a flag in the store (any replica can set it) and a
//! signal to the task when it runs here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatterfly_domain::Service;
use chatterfly_egress::{EgressError, Limits, OutboundRequest};
use chatterfly_providers::Provider;
use chatterfly_providers::chat::{Message, ToolCall, ToolResult, Turn, Usage};
use chatterfly_providers::declare::{Declarations, ToolSpec, declare};
use chatterfly_providers::wire::{self, AnswerError, Request};
use chatterfly_store::{AgentRecord, NewStep, RunEnd, RunRecord, Store, StoreError};
use chatterfly_tools::{Call, Redactor, ToolError, Tools};
use chatterfly_vault::ExposeSecret;
use http::{HeaderName, HeaderValue, Method, header};
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use url::Url;

use crate::agent::AgentDef;

/// The longest Retry-After a run waits out; a provider asking for more fails the turn.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(20);
/// The largest answer read from a provider.
const MODEL_MAX_BYTES: usize = 8 * 1024 * 1024;
/// What a model turn may write.
const MAX_TOKENS: u32 = 4096;
/// A tool's output is cut to this for the model (the run record keeps the same).
const RESULT_MAX_BYTES: usize = 64 * 1024;
/// The most tool calls of one model turn that are made; the rest are left out (a model
/// asking for hundreds at once is looping, or hostile).
const MAX_CALLS_PER_TURN: usize = 32;
/// The most a run's conversation (input, answers, tool results) may hold: past it the run
/// fails rather than growing without end.
const MAX_CONVERSATION_BYTES: usize = 16 * 1024 * 1024;
/// How often a run checks the store for a cancel set on another replica.
const CANCEL_POLL: Duration = Duration::from_millis(500);

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The agent names tools that do not exist (any more).
    #[error("{0}")]
    UnknownTools(String),
    /// The workspace has as many runs going on as it may.
    #[error("{0}")]
    TooMany(String),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a run starts with.
pub struct StartRun {
    pub workspace_id: String,
    pub workspace_slug: String,
    pub user_id: Option<String>,
    pub agent: AgentRecord,
    pub def: AgentDef,
    pub input: Vec<Message>,
    /// Credentials for `caller` connections, by connection slug; kept in memory for the
    /// run only.
    pub credentials: Option<Map<String, Value>>,
    pub participant: Option<String>,
}

/// How runs talk to providers.
#[derive(Debug, Clone, Copy)]
pub struct RunnerOptions {
    /// How long one model turn may take.
    pub model_timeout: Duration,
    /// How often a turn refused for a passing reason (429, 5xx) is asked again.
    pub model_retries: u32,
    /// A run its replica has not marked alive for this long is ended as failed (its
    /// replica stopped); live runs are marked every third of it.
    pub stale_after: Duration,
    /// Runs one workspace may have going on at once (all replicas together).
    pub max_running_per_workspace: u32,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            model_timeout: Duration::from_secs(120),
            model_retries: 2,
            stale_after: Duration::from_secs(60),
            max_running_per_workspace: 20,
        }
    }
}

/// What an agent's tools declare for one provider, and the tools that do not exist.
#[derive(Debug)]
pub struct Declared {
    pub decls: Declarations,
    pub unknown: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DeclaredKey {
    workspace: String,
    provider: Provider,
    tools: Vec<String>,
    /// The workspace's connections as of the build (`Store::catalog_stamp`).
    stamp: String,
}

/// Declarations built lately, with when.
type DeclaredCache = HashMap<DeclaredKey, (Instant, Arc<Declared>)>;

/// Declarations kept (all workspaces together), and for how long.
const DECLARED_KEPT: usize = 256;
const DECLARED_FOR: Duration = Duration::from_secs(300);
/// Declarations built at once, all workspaces together (each reads a workspace's schemas
/// and may take a while); one workspace builds one at a time.
const DECLARE_AT_ONCE: usize = 4;
/// Provider answers parsed at once.
const PARSE_AT_ONCE: usize = 4;

/// Starts runs and tells who listens when a step ends.
#[derive(Clone)]
pub struct Runner {
    tools: Arc<Tools>,
    options: RunnerOptions,
    declared: Arc<Mutex<DeclaredCache>>,
    /// One declaration build at a time per workspace (so that one workspace's builds do
    /// not make another's wait), and at most [`DECLARE_AT_ONCE`] in all.
    declaring: Arc<Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>>,
    declaring_all: Arc<tokio::sync::Semaphore>,
    /// Provider answers read into values at once (a hostile 8 MiB answer takes ~150 MB).
    parsing: Arc<tokio::sync::Semaphore>,
    events: broadcast::Sender<String>,
    live: Arc<Mutex<HashMap<String, watch::Sender<bool>>>>,
}

impl Runner {
    pub fn new(tools: Arc<Tools>, options: RunnerOptions) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            tools,
            options,
            declared: Arc::new(Mutex::new(HashMap::new())),
            declaring: Arc::new(Mutex::new(HashMap::new())),
            declaring_all: Arc::new(tokio::sync::Semaphore::new(DECLARE_AT_ONCE)),
            parsing: Arc::new(tokio::sync::Semaphore::new(PARSE_AT_ONCE)),
            events,
            live: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Starts the upkeep of runs on this replica: live runs marked alive every third of
    /// `stale_after` (a run another replica gave up meanwhile is stopped here), and runs
    /// whose replica went silent ended as failed, whichever replica ran them.
    pub fn start_upkeep(&self) {
        let this = self.clone();
        let every = (self.options.stale_after / 3).max(Duration::from_millis(200));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                this.upkeep().await;
            }
        });
    }

    async fn upkeep(&self) {
        let live: Vec<(String, watch::Sender<bool>)> = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(id, tx)| (id.clone(), tx.clone()))
            .collect();
        for (id, tx) in live {
            match self.store().touch_run(&id).await {
                Ok(true) => {}
                // ended elsewhere (given up as stale while this replica could not reach
                // the database): stop making calls for it
                Ok(false) => {
                    let _ = tx.send(true);
                }
                Err(e) => tracing::warn!(run = %id, error = %e, "marking a run alive"),
            }
        }
        let why = format!(
            "the server running it stopped or lost the database (no sign of life for {} s)",
            self.options.stale_after.as_secs()
        );
        match self.store().fail_runs_silent_for(self.options.stale_after, &why).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(runs = n, "runs whose server went silent ended as failed"),
            Err(e) => tracing::warn!(error = %e, "looking for runs whose server went silent"),
        }
    }

    /// Run ids, each sent when one of that run's steps ended or the run did.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.events.subscribe()
    }

    fn store(&self) -> &Store {
        self.tools.store()
    }

    /// Stops a run: the flag in the store (for whichever replica runs it) and the signal
    /// here. Whether it was running.
    pub async fn cancel(&self, workspace_id: &str, run_id: &str) -> Result<bool, StoreError> {
        let was = self.store().request_cancel(workspace_id, run_id).await?;
        if let Some(tx) = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(run_id)
        {
            let _ = tx.send(true);
        }
        Ok(was)
    }

    /// The declarations `def`'s tools make for its provider in this workspace, and the
    /// names of tools that do not exist. Kept a while per workspace, provider and tool list
    /// while the workspace's connections are unchanged (an imported API's hundreds of
    /// schemas take a moment to declare); one at a time per workspace, at most
    /// [`DECLARE_AT_ONCE`] in all.
    pub async fn declarations(
        &self,
        workspace_id: &str,
        def: &AgentDef,
        provider: Provider,
    ) -> Result<Arc<Declared>, ToolError> {
        let stamp = self.store().catalog_stamp(workspace_id).await?;
        let key = DeclaredKey {
            workspace: workspace_id.to_owned(),
            provider,
            tools: def.tools.clone(),
            stamp,
        };
        if let Some(hit) = self.declared_cached(&key) {
            return Ok(hit);
        }
        let mine = {
            let mut map = self.declaring.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if map.len() > 1024 {
                map.retain(|_, s| Arc::strong_count(s) > 1);
            }
            map.entry(workspace_id.to_owned())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1)))
                .clone()
        };
        let _turn = mine
            .acquire()
            .await
            .map_err(|_| ToolError::Internal("the declaration builder closed".into()))?;
        let _any = self
            .declaring_all
            .acquire()
            .await
            .map_err(|_| ToolError::Internal("the declaration builder closed".into()))?;
        // built meanwhile by whoever held the turn before
        if let Some(hit) = self.declared_cached(&key) {
            return Ok(hit);
        }
        let catalog = self.tools.catalog(workspace_id).await?;
        let mut by_name: HashMap<&str, &chatterfly_tools::ToolInfo> = HashMap::new();
        for t in catalog.standard.iter().chain(catalog.connections.iter()) {
            // built-in names first, as in resolution
            by_name.entry(t.name.as_str()).or_insert(t);
        }
        let mut specs = Vec::new();
        let mut unknown = Vec::new();
        for name in &def.tools {
            match by_name.get(name.as_str()) {
                Some(t) => specs.push(ToolSpec {
                    name: &t.name,
                    description: &t.description,
                    input_schema: &t.input_schema,
                }),
                None => unknown.push(name.clone()),
            }
        }
        let declared = Arc::new(Declared {
            decls: declare(provider, &specs),
            unknown,
        });
        let mut cache = self.declared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= DECLARED_KEPT {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), declared.clone()));
        Ok(declared)
    }

    fn declared_cached(&self, key: &DeclaredKey) -> Option<Arc<Declared>> {
        let cache = self.declared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < DECLARED_FOR)
            .map(|(_, d)| d.clone())
    }

    /// Starts a run; it goes on in the background.
    pub async fn start(&self, start: StartRun) -> Result<RunRecord, RunError> {
        let declared = self
            .declarations(&start.workspace_id, &start.def, start.def.provider)
            .await?;
        let unknown = &declared.unknown;
        if !unknown.is_empty() {
            return Err(RunError::UnknownTools(format!(
                "agent `{}` names tools that do not exist in this workspace: {}; edit the agent or add them",
                start.agent.name,
                unknown.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
            )));
        }
        if let Some(p) = &start.participant {
            self.tools.participant(&start.workspace_id, p).await?;
        }
        let service: Service = start
            .def
            .provider
            .as_str()
            .parse()
            .map_err(|_| ToolError::Internal("a provider without a service".into()))?;
        let key = chatterfly_tools::services::service_key(
            self.store(),
            self.tools.keys(),
            Some((&start.workspace_id, &start.workspace_slug)),
            service,
        )
        .await?;
        let base = key
            .base_url
            .clone()
            .unwrap_or_else(|| default_base(start.def.provider).to_owned());
        let input_json = serde_json::to_string(&start.input).map_err(|e| ToolError::Internal(e.to_string()))?;
        let running = self.store().running_runs(&start.workspace_id).await?;
        if running >= i64::from(self.options.max_running_per_workspace) {
            return Err(RunError::TooMany(format!(
                "{running} runs are going on in this workspace already (at most {}): wait for one to end or cancel one",
                self.options.max_running_per_workspace
            )));
        }
        let run = self
            .store()
            .create_run(
                &start.agent,
                &input_json,
                start.participant.as_deref(),
                start.user_id.as_deref(),
            )
            .await?;
        let (tx, rx) = watch::channel(false);
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(run.id.clone(), tx);
        let this = self.clone();
        let run_id = run.id.clone();
        tokio::spawn(async move {
            let mut secrets = vec![key.key.expose_secret().to_owned()];
            if let Some(creds) = &start.credentials {
                for fields in creds.values() {
                    if let Value::Object(f) = fields {
                        secrets.extend(f.values().filter_map(Value::as_str).map(str::to_owned));
                    }
                }
            }
            // steps are written in order by a writer of their own, off the run's path: the
            // model and the tools do not wait for the database
            let (steps, mut queued) = mpsc::unbounded_channel::<QueuedStep>();
            let writer = {
                let this = this.clone();
                let run_id = run_id.clone();
                tokio::spawn(async move {
                    // what queued while the last write went on is written at once
                    let mut batch = Vec::new();
                    while queued.recv_many(&mut batch, 256).await > 0 {
                        let steps: Vec<NewStep<'_>> = batch
                            .iter()
                            .map(|q| NewStep {
                                kind: q.kind,
                                data: &q.text,
                                duration_ms: q.ms,
                                tokens: q.tokens,
                            })
                            .collect();
                        if let Err(e) = this.store().append_steps(&run_id, &steps).await {
                            tracing::error!(run = %run_id, error = %e, "recording steps");
                        }
                        batch.clear();
                        let _ = this.events.send(run_id.clone());
                    }
                })
            };
            let task = Task {
                runner: &this,
                run_id: &run_id,
                start: &start,
                decls: &declared.decls,
                key: key.key,
                base,
                redactor: Arc::new(Redactor::for_values(secrets)),
                cancel: rx,
                steps,
                store_checked: Mutex::new(Instant::now()),
            };
            let end = task.run().await;
            // every step is in the store before the run's end is
            if let Err(e) = writer.await {
                tracing::error!(run = %run_id, error = %e, "the step writer stopped");
            }
            let output = end.output.map(|o| json!(o).to_string());
            let done = RunEnd {
                status: end.status,
                output: output.as_deref(),
                error: end.error.as_deref(),
            };
            if let Err(e) = this.store().finish_run(&run_id, &done).await {
                tracing::error!(run = %run_id, error = %e, "recording the end of a run");
            }
            tracing::info!(run = %run_id, status = end.status, "agent run ended");
            this.live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&run_id);
            let _ = this.events.send(run_id);
        });
        Ok(run)
    }
}

fn default_base(p: Provider) -> &'static str {
    match p {
        Provider::OpenAi => "https://api.openai.com",
        Provider::Anthropic => "https://api.anthropic.com",
        Provider::Gemini => "https://generativelanguage.googleapis.com",
    }
}

struct End {
    status: &'static str,
    output: Option<String>,
    error: Option<String>,
}

impl End {
    fn failed(error: String) -> Self {
        Self {
            status: "failed",
            output: None,
            error: Some(error),
        }
    }
}

struct Task<'a> {
    runner: &'a Runner,
    run_id: &'a str,
    start: &'a StartRun,
    decls: &'a Declarations,
    key: chatterfly_vault::Secret,
    base: String,
    redactor: Arc<Redactor>,
    cancel: watch::Receiver<bool>,
    steps: mpsc::UnboundedSender<QueuedStep>,
    /// When the store was last asked whether the run is cancelled.
    store_checked: Mutex<Instant>,
}

/// A step on its way to the store.
struct QueuedStep {
    kind: &'static str,
    text: String,
    ms: i64,
    tokens: (i64, i64),
}

enum Waited<T> {
    Done(T),
    Cancelled,
}

impl Task<'_> {
    async fn run(self) -> End {
        let mut messages = self.start.input.clone();
        let mut conversation: usize = serde_json::to_string(&messages).map_or(0, |t| t.len());
        let provider = self.start.def.provider;
        for turn_no in 0..self.start.def.max_steps {
            let started = Instant::now();
            let (answer, retries) = match self.cancellable(self.ask(&messages)).await {
                Waited::Done(a) => a,
                Waited::Cancelled => return self.cancelled(),
            };
            let ms = elapsed_ms(started);
            let turn = match answer {
                Ok(t) => t,
                Err(message) => {
                    let message = self.hide(&message);
                    self.step(
                        "model",
                        json!({"turn": turn_no, "error": message, "retries": retries}),
                        ms,
                        Usage::default(),
                    );
                    return End::failed(message);
                }
            };
            // a turn asking for more calls than are made: the rest are left out of the
            // run and of the conversation (so the provider expects no result for them),
            // counted in the step
            let mut turn = turn;
            let left_out = turn.calls.len().saturating_sub(MAX_CALLS_PER_TURN);
            turn.calls.truncate(MAX_CALLS_PER_TURN);
            let calls: Vec<Value> = turn
                .calls
                .iter()
                .map(|c| {
                    let tool = self.decls.by_name(&c.name).map(|d| d.tool.clone());
                    json!({"id": c.id, "name": c.name, "tool": tool, "arguments": c.arguments, "malformed": c.malformed})
                })
                .collect();
            self.step(
                "model",
                json!({"turn": turn_no, "text": turn.text, "calls": calls, "calls_left_out": left_out, "usage": turn.usage, "stop": turn.stop, "retries": retries}),
                ms,
                turn.usage,
            );
            if turn.calls.is_empty() {
                return End {
                    status: "succeeded",
                    output: Some(self.hide(&turn.text.unwrap_or_default())),
                    error: None,
                };
            }
            let Turn { text, calls, .. } = turn;
            let results = match self.cancellable(self.call_all(&calls)).await {
                Waited::Done(r) => r,
                Waited::Cancelled => return self.cancelled(),
            };
            conversation += text.as_ref().map_or(0, String::len)
                + calls
                    .iter()
                    .map(|c| c.arguments.to_string().len() + c.name.len())
                    .sum::<usize>()
                + results.iter().map(|r| r.content.len()).sum::<usize>();
            messages.push(Message::Assistant { text, calls });
            messages.push(Message::Tool { results });
            if conversation > MAX_CONVERSATION_BYTES {
                return End::failed(format!(
                    "the conversation grew past {} MiB of text (answers and tool results); give the agent fewer or smaller tool results",
                    MAX_CONVERSATION_BYTES / (1024 * 1024)
                ));
            }
            if self.cancel_seen().await {
                return self.cancelled();
            }
        }
        End {
            status: "max_steps",
            output: None,
            error: Some(format!(
                "stopped after {} model turns (the agent's max_steps) without a final answer from {provider}",
                self.start.def.max_steps
            )),
        }
    }

    fn cancelled(&self) -> End {
        End {
            status: "cancelled",
            output: None,
            error: Some("the run was cancelled".into()),
        }
    }

    /// A cancel here, or (looked up at most every CANCEL_POLL, so that quick turns do
    /// not each wait for the database) one set on another replica.
    async fn cancel_seen(&self) -> bool {
        if *self.cancel.borrow() {
            return true;
        }
        {
            let mut last = self
                .store_checked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.elapsed() < CANCEL_POLL {
                return false;
            }
            *last = Instant::now();
        }
        self.cancel_requested().await
    }

    async fn cancel_requested(&self) -> bool {
        if *self.cancel.borrow() {
            return true;
        }
        matches!(
            self.runner.store().run(&self.start.workspace_id, self.run_id).await,
            Ok(Some(r)) if r.cancel_requested
        )
    }

    /// `fut`, unless the run is cancelled first (here, or on another replica).
    async fn cancellable<T>(&self, fut: impl std::future::Future<Output = T>) -> Waited<T> {
        let mut local = self.cancel.clone();
        let poll = async {
            loop {
                tokio::time::sleep(CANCEL_POLL).await;
                if self.cancel_requested().await {
                    return;
                }
            }
        };
        tokio::select! {
            v = fut => Waited::Done(v),
            _ = local.wait_for(|c| *c) => Waited::Cancelled,
            () = poll => Waited::Cancelled,
        }
    }

    /// `text` with the run's secrets hidden: the provider key and the run's credentials,
    /// and every credential this server used within the last minute (a saved key or an
    /// account's token one of the run's calls used, which a model might repeat).
    fn hide(&self, text: &str) -> String {
        crate::hide(&self.redactor, text)
    }

    fn step(&self, kind: &'static str, data: Value, ms: u64, usage: Usage) {
        let text = self.hide(&data.to_string());
        let tokens = (
            i64::try_from(usage.input_tokens).unwrap_or(i64::MAX),
            i64::try_from(usage.output_tokens).unwrap_or(i64::MAX),
        );
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        // the writer lives until the run's end, after its last step
        let _ = self.steps.send(QueuedStep { kind, text, ms, tokens });
    }

    /// One model turn, asked again after a passing refusal (429, 5xx) as the provider
    /// says (Retry-After) or after a short wait: the answer, or why there is none (words
    /// for the run record), with how often it was asked again.
    async fn ask(&self, messages: &[Message]) -> (Result<Turn, String>, u32) {
        let mut retries = 0;
        loop {
            match self.ask_once(messages).await {
                Ok(t) => return (Ok(t), retries),
                // (the provider's words stay out of the log: some repeat part of the key)
                Err(Refusal { again: Some(after), .. }) if retries < self.runner.options.model_retries => {
                    let wait = after.unwrap_or(Duration::from_secs(1 << retries.min(5)));
                    let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                    tracing::info!(run = %self.run_id, wait_ms, "model turn refused for now; asking again");
                    retries += 1;
                    tokio::time::sleep(wait).await;
                }
                Err(Refusal { message, .. }) => {
                    let message = if retries > 0 {
                        format!("{message} (asked {} times)", retries + 1)
                    } else {
                        message
                    };
                    return (Err(message), retries);
                }
            }
        }
    }

    async fn ask_once(&self, messages: &[Message]) -> Result<Turn, Refusal> {
        let provider = self.start.def.provider;
        let req = wire::build(
            provider,
            &Request {
                model: &self.start.def.model,
                system: &self.start.def.instructions,
                messages,
                tools: self.decls,
                max_tokens: MAX_TOKENS,
            },
        );
        let url = Url::parse(&format!("{}{}", self.base.trim_end_matches('/'), req.path))
            .map_err(|_| Refusal::last(format!("the base URL set for {provider} is not a URL")))?;
        let mut out = OutboundRequest::new(Method::POST, url);
        out.tenant = Some(self.start.workspace_id.as_str().into());
        // a completion changes nothing upstream: it may go on a connection idle for long and
        // be sent again if that connection was closed under it
        out.repeatable = Some(true);
        out.headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in wire::key_headers(provider, self.key.expose_secret()) {
            let name = HeaderName::from_static(name);
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                Refusal::last(format!(
                    "the {provider} key cannot be sent in a header (it has characters HTTP does not allow)"
                ))
            })?;
            if name != "anthropic-version" {
                value.set_sensitive(true);
                if name != header::AUTHORIZATION {
                    out.credential_headers.push(name.clone());
                }
            }
            out.headers.insert(name, value);
        }
        out.body = Some(Bytes::from(req.body.to_string()));
        let limits = Limits {
            connect_timeout: Duration::from_secs(10),
            total_timeout: self.runner.options.model_timeout,
            max_response_bytes: MODEL_MAX_BYTES,
            max_redirects: 0,
        };
        let resp = match self.runner.tools.egress().send(out, Some(limits)).await {
            Ok(r) => r,
            Err(EgressError::Timeout(d)) => {
                return Err(Refusal::last(format!(
                    "{provider} did not answer within {} s",
                    d.as_secs()
                )));
            }
            Err(e @ EgressError::TooLarge { .. }) => {
                return Err(Refusal::last(format!("{provider}'s answer is too large: {e}")));
            }
            Err(e @ (EgressError::Resolve { .. } | EgressError::Connect { .. } | EgressError::Blocked { .. })) => {
                return Err(Refusal::last(format!("{provider} could not be reached: {e}")));
            }
            Err(e) => {
                return Err(Refusal::last(format!(
                    "{provider}'s answer could not be read whole: {e}"
                )));
            }
        };
        let status = resp.status.as_u16();
        let parsed = {
            let _parse = self
                .runner
                .parsing
                .acquire()
                .await
                .map_err(|_| Refusal::last("the server is stopping".into()))?;
            wire::parse(provider, status, &resp.body)
        };
        match parsed {
            Ok(t) => Ok(t),
            Err(AnswerError::Refused { message, .. }) => {
                let retry_after = resp
                    .headers
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(retry_after);
                let said = retry_after
                    .map(|d| format!(" (retry after {} s)", d.as_secs_f64().ceil()))
                    .unwrap_or_default();
                let passing = matches!(status, 408 | 429 | 500 | 502 | 503 | 504 | 529);
                let again = match retry_after {
                    _ if !passing => None,
                    Some(d) if d > MAX_RETRY_AFTER => None,
                    Some(d) => Some(Some(d)),
                    None => Some(None),
                };
                Err(Refusal {
                    message: format!("{provider} answered HTTP {status}: {message}{said}"),
                    again,
                })
            }
            Err(e) => Err(Refusal::last(e.to_string())),
        }
    }

    /// Every call of one turn, at once; results in the calls' order.
    async fn call_all(&self, calls: &[ToolCall]) -> Vec<ToolResult> {
        futures::future::join_all(calls.iter().map(|c| self.call_one(c))).await
    }

    async fn call_one(&self, c: &ToolCall) -> ToolResult {
        let started = Instant::now();
        let error = |code: &str, message: String| (json!({"error": {"code": code, "message": message}}), true);
        let (tool, (content, is_error)) = match self.decls.by_name(&c.name) {
            None => (
                None,
                error(
                    "tool_not_found",
                    format!(
                        "`{}` is not one of this agent's tools",
                        c.name.chars().take(100).collect::<String>()
                    ),
                ),
            ),
            Some(_) if c.malformed.is_some() => (
                None,
                error("invalid_arguments", "the arguments are not a JSON object".into()),
            ),
            Some(d) => {
                let arguments = d.adapted.restore(c.arguments.clone());
                let slug = d.tool.split_once('.').map(|(s, _)| s);
                let credentials = slug
                    .and_then(|s| self.start.credentials.as_ref()?.get(s))
                    .and_then(Value::as_object)
                    .cloned();
                let result = self
                    .runner
                    .tools
                    .invoke(Call {
                        workspace_id: &self.start.workspace_id,
                        workspace_slug: &self.start.workspace_slug,
                        user_id: self.start.user_id.as_deref(),
                        tool: &d.tool,
                        arguments,
                        credentials,
                        participant: self.start.participant.as_deref(),
                        resolved: None,
                        wait_for_room: true,
                        run_id: Some(self.run_id),
                    })
                    .await;
                let r = match result {
                    Ok(out) => (out.output, false),
                    Err(e) => error(e.code(), e.to_string()),
                };
                (Some(d.tool.clone()), r)
            }
        };
        let ms = elapsed_ms(started);
        let (text, is_error) =
            match crate::hidden_output(&self.runner.tools, &self.start.workspace_id, &self.redactor, content).await {
                Ok(text) => (text, is_error),
                // the output could not be kept: the model is told, and the step is an error
                Err(why) => (json!({"error": {"code": "internal", "message": why}}).to_string(), true),
            };
        let text = cut(&text, RESULT_MAX_BYTES);
        let mut recorded: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!(text));
        if is_error && let Some(inner) = recorded.get_mut("error").map(Value::take) {
            recorded = inner;
        }
        self.step(
            "tool",
            json!({"call_id": c.id, "name": c.name, "tool": tool, "arguments": c.arguments,
                   "is_error": is_error, if is_error { "error" } else { "output" }: recorded}),
            ms,
            Usage::default(),
        );
        ToolResult {
            id: c.id.clone(),
            name: c.name.clone(),
            content: text,
            is_error,
        }
    }
}

/// Why a model turn has no answer, and whether it is worth asking again: after the
/// provider's Retry-After, or (`Some(None)`) after a wait of our own.
struct Refusal {
    message: String,
    again: Option<Option<Duration>>,
}

impl Refusal {
    fn last(message: String) -> Self {
        Self { message, again: None }
    }
}

/// A Retry-After value: seconds (fractions too, as some providers send), or an HTTP date.
fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn elapsed_ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// `s` cut to `max` bytes at a character's end, saying how much was left out.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes more, cut)", &s[..end], s.len() - end)
}
