//! A workflow's definition as the API takes it, checked: nodes (`tool` nodes call a tool by
//! name, `agent` nodes run an agent), each with an `input` that may hold templates, run in
//! the order given or, with `edges`, as a graph (a node runs when every node with an edge
//! to it has succeeded; nodes with no path between them run at once). Checked: ids unique,
//! edges between known nodes and without a cycle, every template naming a node that runs
//! before (an ancestor in the graph, or an earlier node in the list).

use std::collections::HashMap;

use chatterfly_domain::FieldErrors;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::template::{self, Root};

/// The most nodes a workflow has.
pub const MAX_NODES: usize = 250;
/// The most edges.
pub const MAX_EDGES: usize = 2000;
/// The most a node's `input` holds (its JSON text).
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// How deep a node's `input` nests.
pub const MAX_INPUT_DEPTH: usize = 32;
const MAX_NAME: usize = 100;
const MAX_ID: usize = 64;
const MAX_TARGET: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Tool,
    Agent,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Agent => "agent",
        }
    }
}

/// What a replica taking over a run does with a step the stopped replica had started (its
/// tool may have been called): call it again (the default), or fail the step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInterrupt {
    #[default]
    Retry,
    Fail,
}

impl OnInterrupt {
    fn is_default(&self) -> bool {
        *self == Self::Retry
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// A `tool` node's tool (`slug.operation`, or a standard tool's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// An `agent` node's agent (its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// A tool node's arguments; an agent node's input (text, messages, or any JSON, sent
    /// as its text). Templates anywhere in it.
    #[serde(default = "empty_object")]
    pub input: Value,
    #[serde(default, skip_serializing_if = "OnInterrupt::is_default")]
    pub on_interrupt: OnInterrupt,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl Node {
    /// The tool's name or the agent's id.
    pub fn target(&self) -> &str {
        match self.kind {
            NodeKind::Tool => self.tool_name.as_deref().unwrap_or_default(),
            NodeKind::Agent => self.agent.as_deref().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    pub from: String,
    pub to: String,
}

/// What is stored as a workflow's definition (the draft, and each deployed version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub nodes: Vec<Node>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<Edge>>,
}

/// A checked workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowDef {
    pub name: String,
    pub definition: Definition,
}

/// The order of a checked definition: each node's predecessors and whether one node runs
/// before another.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Per node (by index), the nodes that must succeed first.
    pub preds: Vec<Vec<usize>>,
    /// `before[a][b]`: node `a` runs (and succeeds) before node `b` starts.
    before: Vec<Vec<bool>>,
    pub index: HashMap<String, usize>,
}

impl Plan {
    pub fn runs_before(&self, a: usize, b: usize) -> bool {
        self.before[a][b]
    }

    /// Nodes no other node waits for, in the workflow's order.
    pub fn sinks(&self) -> Vec<usize> {
        let n = self.preds.len();
        let mut has_succ = vec![false; n];
        for ps in &self.preds {
            for &p in ps {
                has_succ[p] = true;
            }
        }
        (0..n).filter(|&i| !has_succ[i]).collect()
    }
}

impl Definition {
    /// The plan of a definition whose edges are known to be sound (checked when saved);
    /// an error for one that is not.
    pub fn plan(&self) -> Result<Plan, String> {
        let n = self.nodes.len();
        let mut index = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if index.insert(node.id.clone(), i).is_some() {
                return Err(format!("node id `{}` is used twice", node.id));
            }
        }
        let mut preds = vec![Vec::new(); n];
        match &self.edges {
            None => {
                for (i, p) in preds.iter_mut().enumerate().skip(1) {
                    p.push(i - 1);
                }
            }
            Some(edges) => {
                for e in edges {
                    let (Some(&f), Some(&t)) = (index.get(&e.from), index.get(&e.to)) else {
                        return Err(format!(
                            "the edge {} → {} names a node that does not exist",
                            e.from, e.to
                        ));
                    };
                    if !preds[t].contains(&f) {
                        preds[t].push(f);
                    }
                }
            }
        }
        // Kahn's order; what is left over is on a cycle
        let mut indegree: Vec<usize> = preds.iter().map(Vec::len).collect();
        let mut succs = vec![Vec::new(); n];
        for (t, ps) in preds.iter().enumerate() {
            for &f in ps {
                succs[f].push(t);
            }
        }
        let mut queue: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = queue.pop() {
            order.push(i);
            for &s in &succs[i] {
                indegree[s] -= 1;
                if indegree[s] == 0 {
                    queue.push(s);
                }
            }
        }
        if order.len() < n {
            let on_cycle: Vec<&str> = (0..n)
                .filter(|&i| indegree[i] > 0)
                .map(|i| self.nodes[i].id.as_str())
                .take(10)
                .collect();
            return Err(format!(
                "the edges make a cycle (through {}): a workflow runs each node once",
                on_cycle.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        // ancestors, in topological order
        let mut before = vec![vec![false; n]; n];
        for &i in &order {
            for &p in &preds[i] {
                before[p][i] = true;
                for row in &mut before {
                    if row[p] {
                        row[i] = true;
                    }
                }
            }
        }
        Ok(Plan { preds, before, index })
    }

    /// The names of the tools its tool nodes call, once each, in order.
    pub fn tools(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in &self.nodes {
            if n.kind == NodeKind::Tool
                && let Some(t) = &n.tool_name
                && !out.contains(t)
            {
                out.push(t.clone());
            }
        }
        out
    }

    /// The agents its agent nodes run, once each.
    pub fn agents(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in &self.nodes {
            if n.kind == NodeKind::Agent
                && let Some(a) = &n.agent
                && !out.contains(a)
            {
                out.push(a.clone());
            }
        }
        out
    }
}

impl WorkflowDef {
    /// Checks a workflow: its name, its nodes and edges, and its templates.
    pub fn check(name: &str, definition: Definition) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = chatterfly_domain::connection::check_name_within(name, MAX_NAME, &mut errors).unwrap_or_default();
        let nodes = &definition.nodes;
        if nodes.len() > MAX_NODES {
            errors.push(
                "/nodes",
                format!(
                    "a workflow has at most {MAX_NODES} nodes (this one has {})",
                    nodes.len()
                ),
            );
            return Err(errors);
        }
        if let Some(edges) = &definition.edges
            && edges.len() > MAX_EDGES
        {
            errors.push(
                "/edges",
                format!(
                    "a workflow has at most {MAX_EDGES} edges (this one has {})",
                    edges.len()
                ),
            );
            return Err(errors);
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, node) in nodes.iter().enumerate() {
            let at = format!("/nodes/{i}");
            check_id(&node.id, &format!("{at}/id"), &mut errors);
            if let Some(first) = seen.insert(node.id.as_str(), i) {
                errors.push(
                    format!("{at}/id"),
                    format!(
                        "node id `{}` is used by node {first} already: ids are unique",
                        short(&node.id)
                    ),
                );
            }
            match node.kind {
                NodeKind::Tool => {
                    if node.agent.is_some() {
                        errors.push(
                            format!("{at}/agent"),
                            "a `tool` node names a `tool_name`, not an `agent`",
                        );
                    }
                    check_target(node.tool_name.as_deref(), "tool_name", &at, &mut errors);
                    if !node.input.is_object() {
                        errors.push(
                            format!("{at}/input"),
                            "a tool node's `input` is an object: the tool's arguments",
                        );
                    }
                }
                NodeKind::Agent => {
                    if node.tool_name.is_some() {
                        errors.push(
                            format!("{at}/tool_name"),
                            "an `agent` node names an `agent`, not a `tool_name`",
                        );
                    }
                    check_target(node.agent.as_deref(), "agent", &at, &mut errors);
                }
            }
            if depth(&node.input) > MAX_INPUT_DEPTH {
                errors.push(
                    format!("{at}/input"),
                    format!("`input` nests deeper than {MAX_INPUT_DEPTH} levels"),
                );
            } else if node.input.to_string().len() > MAX_INPUT_BYTES {
                errors.push(
                    format!("{at}/input"),
                    format!("`input` is larger than {} KiB", MAX_INPUT_BYTES / 1024),
                );
            }
        }
        if let Some(edges) = &definition.edges {
            for (i, e) in edges.iter().enumerate() {
                for (field, id) in [("from", &e.from), ("to", &e.to)] {
                    if !seen.contains_key(id.as_str()) {
                        errors.push(
                            format!("/edges/{i}/{field}"),
                            format!("`{}` is not a node of this workflow", short(id)),
                        );
                    }
                }
                if e.from == e.to {
                    errors.push(format!("/edges/{i}"), "an edge joins two different nodes");
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let plan = definition.plan().map_err(|e| FieldErrors::single("/edges", e))?;
        for (i, node) in nodes.iter().enumerate() {
            let at = format!("/nodes/{i}/input");
            let found = match template::expressions(&node.input) {
                Ok(f) => f,
                Err((p, e)) => {
                    errors.push(format!("{at}{p}"), e);
                    continue;
                }
            };
            for (p, expr) in found {
                if let Root::Step(id) = &expr.root {
                    match plan.index.get(id) {
                        None => errors.push(
                            format!("{at}{p}"),
                            format!("`{{{{{expr}}}}}`: there is no node `{}`", short(id)),
                        ),
                        Some(&j) if !plan.runs_before(j, i) => errors.push(
                            format!("{at}{p}"),
                            format!(
                                "`{{{{{expr}}}}}`: node `{}` does not run before `{}`{}",
                                short(id),
                                node.id,
                                if definition.edges.is_some() {
                                    " (add an edge path from it to this node)"
                                } else {
                                    " (nodes run in the order given)"
                                }
                            ),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self { name, definition })
    }
}

fn check_id(id: &str, at: &str, errors: &mut FieldErrors) {
    if id.is_empty() || id.len() > MAX_ID || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        errors.push(
            at,
            format!("a node id is 1 to {MAX_ID} letters, digits, `_` or `-` (templates name it: `{{{{steps.<id>.output}}}}`)"),
        );
    }
}

fn check_target(v: Option<&str>, field: &str, at: &str, errors: &mut FieldErrors) {
    match v {
        None => errors.push(format!("{at}/{field}"), format!("`{field}` is required")),
        Some(t) if t.trim().is_empty() || t.len() > MAX_TARGET || t.chars().any(char::is_control) => {
            errors.push(
                format!("{at}/{field}"),
                format!("`{field}` is 1 to {MAX_TARGET} characters"),
            );
        }
        Some(_) => {}
    }
}

fn short(s: &str) -> String {
    let cut: String = s.chars().take(64).collect();
    if cut.len() < s.len() { format!("{cut}…") } else { cut }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn def(v: Value) -> Definition {
        serde_json::from_value(v).unwrap()
    }

    fn errs(v: Value) -> String {
        format!("{:?}", WorkflowDef::check("w", def(v)).unwrap_err())
    }

    #[test]
    fn nodes_in_order_see_earlier_nodes_only() {
        let ok = def(json!({"nodes": [
            {"id": "a", "type": "tool", "tool_name": "hb.get", "input": {}},
            {"id": "b", "type": "tool", "tool_name": "hb.post", "input": {"x": "{{steps.a.output.body}}"}},
            {"id": "c", "type": "agent", "agent": "ag1", "input": "sum {{steps.a.output}} {{input.q}}"}
        ]}));
        let w = WorkflowDef::check(" w ", ok).unwrap();
        assert_eq!(w.name, "w");
        assert_eq!(w.definition.tools(), ["hb.get", "hb.post"]);
        let plan = w.definition.plan().unwrap();
        assert!(plan.runs_before(0, 2));
        assert_eq!(plan.sinks(), [2]);
        let e = errs(json!({"nodes": [
            {"id": "a", "type": "tool", "tool_name": "hb.get", "input": {"x": "{{steps.b.output}}"}},
            {"id": "b", "type": "tool", "tool_name": "hb.get"}
        ]}));
        assert!(
            e.contains("/nodes/0/input/x") && e.contains("does not run before"),
            "{e}"
        );
        let e = errs(
            json!({"nodes": [{"id": "a", "type": "tool", "tool_name": "hb.get", "input": {"x": "{{steps.zz.output}}"}}]}),
        );
        assert!(e.contains("there is no node `zz`"), "{e}");
    }

    #[test]
    fn graphs_are_checked() {
        let g = def(json!({"nodes": [
            {"id": "a", "type": "tool", "tool_name": "t.a"},
            {"id": "b", "type": "tool", "tool_name": "t.b"},
            {"id": "c", "type": "tool", "tool_name": "t.c", "input": {"x": "{{steps.a.output}}"}}
        ], "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}));
        let w = WorkflowDef::check("g", g).unwrap();
        let plan = w.definition.plan().unwrap();
        assert_eq!(plan.preds[2], [1]);
        assert!(plan.runs_before(0, 2));
        // parallel branches do not see each other
        let e = errs(json!({"nodes": [
            {"id": "a", "type": "tool", "tool_name": "t.a"},
            {"id": "b", "type": "tool", "tool_name": "t.b", "input": {"x": "{{steps.a.output}}"}}
        ], "edges": []}));
        assert!(e.contains("add an edge path"), "{e}");
        let e = errs(json!({"nodes": [
            {"id": "a", "type": "tool", "tool_name": "t.a"},
            {"id": "b", "type": "tool", "tool_name": "t.b"},
            {"id": "c", "type": "tool", "tool_name": "t.c"}
        ], "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "b"}]}));
        assert!(e.contains("cycle") && e.contains("`b`") && e.contains("`c`"), "{e}");
        let e = errs(
            json!({"nodes": [{"id": "a", "type": "tool", "tool_name": "t.a"}], "edges": [{"from": "a", "to": "nope"}, {"from": "a", "to": "a"}]}),
        );
        assert!(e.contains("/edges/0/to") && e.contains("/edges/1"), "{e}");
    }

    #[test]
    fn bad_nodes_are_named() {
        let e = errs(json!({"nodes": [
            {"id": "a", "type": "tool", "tool_name": "t.a"},
            {"id": "a", "type": "tool", "tool_name": "t.b"},
            {"id": "bad id", "type": "tool"},
            {"id": "d", "type": "agent", "tool_name": "x", "agent": "g"},
            {"id": "e", "type": "tool", "tool_name": "t.e", "input": "text"},
            {"id": "f", "type": "tool", "tool_name": "t.f", "input": {"x": "{{input.a"}}
        ]}));
        for want in [
            "/nodes/1/id",
            "used by node 0",
            "/nodes/2/id",
            "/nodes/2/tool_name",
            "/nodes/3/tool_name",
            "/nodes/4/input",
        ] {
            assert!(e.contains(want), "{want} in {e}");
        }
        let many: Vec<Value> = (0..10_000)
            .map(|i| json!({"id": format!("n{i}"), "type": "tool", "tool_name": "t.x"}))
            .collect();
        let e = errs(json!({"nodes": many}));
        assert!(e.contains("at most 250 nodes (this one has 10000)"), "{e}");
        let mut deep = json!("x");
        for _ in 0..40 {
            deep = json!({"d": deep});
        }
        let e = errs(json!({"nodes": [{"id": "a", "type": "tool", "tool_name": "t.a", "input": deep}]}));
        assert!(e.contains("deeper than 32"), "{e}");
        let e = errs(
            json!({"nodes": [{"id": "a", "type": "tool", "tool_name": "t.a", "input": {"x": "y".repeat(70_000)}}]}),
        );
        assert!(e.contains("larger than 64 KiB"), "{e}");
    }
}
