//! Agents and their runs. [`agent`] parses and checks an agent's definition; [`runner`]
//! runs one: it asks the model (through `providers`' wire formats and `egress`'s guarded
//! client), executes the tool calls it answers with through `tools` (the same path as
//! `invoke`: resolution, schema check, credentials, SSRF guard, redaction, audit), feeds
//! the results back, and records every step, redacted, in the store.
//!
//! Never calls a tool around `tools`, never sends a request around `egress`, never writes
//! a credential (a provider key, a run's credentials) to the store or a log line.

pub mod agent;
pub mod flow;
pub mod runner;
pub mod template;
pub mod workflow;

pub use agent::{AgentDef, AgentInput, RunInput};
pub use flow::{FlowError, FlowOptions, Flows, StartFlow};
pub use runner::{Declared, RunError, Runner, RunnerOptions, StartRun};
pub use workflow::{Definition, Edge, Node, NodeKind, WorkflowDef};

use std::sync::Arc;

use chatterfly_tools::{Redactor, Tools};
use serde_json::Value;

/// `text` with the run's secrets (and every secret in play) hidden.
pub(crate) fn hide(redactor: &Redactor, text: &str) -> String {
    let text = redactor.text(text);
    match chatterfly_egress::in_play::redact_log(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(hidden) => hidden,
    }
}

/// A tool's output as the text a run keeps, with the run's secrets (and every secret in
/// play) hidden. An output of 256 KiB or more is written and searched off the async
/// workers, in its workspace's lane of the large-answer gate (`{workspace}/run`), so a
/// run's 10 MB tool output does not hold up other calls. `Err` (the reason) when that work
/// failed: nothing of the output is kept, and the step is an error, never a success.
pub(crate) async fn hidden_output(
    tools: &Tools,
    workspace_id: &str,
    redactor: &Arc<Redactor>,
    out: Value,
) -> Result<String, String> {
    if chatterfly_domain::operation::value_len(&out) < chatterfly_egress::heavy::HEAVY_BYTES {
        return Ok(hide(redactor, &out.to_string()));
    }
    let redactor = redactor.clone();
    let work = move || hide(&redactor, &out.to_string());
    let lane = format!("{workspace_id}/run");
    tools.egress().heavy().run(&lane, work).await.map_err(|e| e.to_string())
}
