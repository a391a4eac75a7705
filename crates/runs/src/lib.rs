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
