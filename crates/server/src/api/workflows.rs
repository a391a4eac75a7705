//! Workflows: definitions (members read and run them, workspace admins write and deploy
//! them), deployed versions, durable runs (started here, executed by any replica's
//! workers), and what uses each connection (the "used by" guard of connection renames and
//! deletes).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use chatterfly_domain::FieldErrors;
use chatterfly_runs::{Definition, Edge, FlowError, Node, NodeKind, StartFlow, WorkflowDef};
use chatterfly_store::{StoreError, WorkflowRecord, WorkflowRunFilter, WorkflowRunRecord, WorkflowStepRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::access::{WorkspaceAccess, short};
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Caller, Path, Query};

/// `POST …/workflows`, and the fields a `PATCH` changes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRequest {
    #[schema(max_length = 100)]
    pub name: Option<String>,
    /// `{"id", "type": "tool", "tool_name", "input"}` or `{"id", "type": "agent", "agent",
    /// "input"}`, optionally `"on_interrupt": "retry"|"fail"`; `input` may hold templates
    /// (`{{input.<path>}}`, `{{steps.<node id>.output.<path>}}`).
    #[schema(value_type = Option<Vec<Object>>)]
    pub nodes: Option<Vec<Value>>,
    /// `[{"from", "to"}]`: the nodes run as a graph. Left out (or null): in the order given.
    #[schema(value_type = Option<Vec<Object>>)]
    #[serde(default, deserialize_with = "present")]
    pub edges: Option<Value>,
}

/// A field that is present (even as null) is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Serialize, ToSchema)]
pub struct NodeWarning {
    pub node: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub deployed_by: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct WorkflowView {
    pub id: String,
    pub name: String,
    /// The draft's nodes (or, with `?version=N`, that version's).
    #[schema(value_type = Vec<Object>)]
    pub nodes: Vec<Node>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub edges: Option<Vec<Edge>>,
    /// The version runs use; null until the first deploy.
    pub deployed_version: Option<i64>,
    /// Which version `nodes` and `edges` show: null for the draft.
    pub version: Option<i64>,
    /// The draft differs from the deployed version (deploy to use it).
    pub undeployed_changes: bool,
    pub versions: Vec<VersionView>,
    /// Nodes naming tools or agents the workspace does not have (a run fails there).
    pub warnings: Vec<NodeWarning>,
    pub created_at: String,
    pub updated_at: String,
}

fn definition_of(text: &str) -> Result<Definition, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::Internal(format!("stored workflow definition: {e}")))
}

/// Nodes whose tool or agent the workspace does not have.
async fn warnings(state: &AppState, workspace_id: &str, def: &Definition) -> Result<Vec<NodeWarning>, ApiError> {
    let tools = def.tools();
    let slugs: Vec<&str> = tools
        .iter()
        .filter_map(|t| chatterfly_tools::connection_tool_name(t).map(|_| t.split_once('.').map_or("", |(s, _)| s)))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let existing: HashSet<String> = state
        .store
        .tools_of_slugs(workspace_id, &slugs)
        .await?
        .into_iter()
        .collect();
    let standard: HashSet<String> = match tools
        .iter()
        .any(|t| chatterfly_tools::connection_tool_name(t).is_none())
    {
        true => state
            .tools
            .catalog(workspace_id)
            .await?
            .standard
            .into_iter()
            .map(|t| t.name)
            .collect(),
        false => HashSet::new(),
    };
    let agents: HashSet<String> = if def.agents().is_empty() {
        HashSet::new()
    } else {
        state
            .store
            .agents(workspace_id)
            .await?
            .into_iter()
            .map(|a| a.id)
            .collect()
    };
    let mut out = Vec::new();
    for n in &def.nodes {
        let target = n.target();
        let missing = match n.kind {
            NodeKind::Tool => !existing.contains(target) && !standard.contains(target),
            NodeKind::Agent => !agents.contains(target),
        };
        if missing {
            out.push(NodeWarning {
                node: n.id.clone(),
                message: match n.kind {
                    NodeKind::Tool => format!(
                        "`{}` is not a tool of this workspace: a run fails at this node until it exists",
                        short(target)
                    ),
                    NodeKind::Agent => format!(
                        "there is no agent `{}` in this workspace: a run fails at this node",
                        short(target)
                    ),
                },
            });
        }
    }
    Ok(out)
}

async fn view(state: &AppState, w: WorkflowRecord, version: Option<i64>) -> Result<WorkflowView, ApiError> {
    let versions = state.store.workflow_versions(&w.id).await?;
    let deployed_text = match w.deployed_version {
        Some(v) => state.store.workflow_version(&w.id, v).await?.map(|v| v.definition),
        None => None,
    };
    let shown = match version {
        None => definition_of(&w.definition)?,
        Some(v) => {
            let stored = state
                .store
                .workflow_version(&w.id, v)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("version {v}")))?;
            definition_of(&stored.definition)?
        }
    };
    let warnings = warnings(state, &w.workspace_id, &shown).await?;
    Ok(WorkflowView {
        undeployed_changes: deployed_text.as_deref() != Some(w.definition.as_str()),
        id: w.id,
        name: w.name,
        nodes: shown.nodes,
        edges: shown.edges,
        deployed_version: w.deployed_version,
        version,
        versions: versions
            .into_iter()
            .map(|v| VersionView {
                version: v.version,
                deployed_by: v.deployed_by,
                created_at: v.created_at,
            })
            .collect(),
        warnings,
        created_at: w.created_at,
        updated_at: w.updated_at,
    })
}

/// The request's nodes and edges into a definition (field errors point into the body).
fn parse_definition(nodes: Vec<Value>, edges: Option<Value>) -> Result<Definition, ApiError> {
    if nodes.len() > chatterfly_runs::workflow::MAX_NODES {
        return Err(FieldErrors::single(
            "/nodes",
            format!(
                "a workflow has at most {} nodes (this one has {})",
                chatterfly_runs::workflow::MAX_NODES,
                nodes.len()
            ),
        )
        .into());
    }
    let mut errors = FieldErrors::default();
    let mut parsed = Vec::new();
    for (i, n) in nodes.into_iter().enumerate() {
        match serde_path_to_error::deserialize::<_, Node>(n) {
            Ok(n) => parsed.push(n),
            Err(e) => {
                let path = e.path().to_string();
                let at = if path == "." {
                    format!("/nodes/{i}")
                } else {
                    format!("/nodes/{i}/{}", path.replace('.', "/"))
                };
                errors.push(at, e.into_inner().to_string());
            }
        }
    }
    let edges = match edges {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if items.len() > chatterfly_runs::workflow::MAX_EDGES => {
            return Err(FieldErrors::single(
                "/edges",
                format!("a workflow has at most {} edges", chatterfly_runs::workflow::MAX_EDGES),
            )
            .into());
        }
        Some(v) => match serde_json::from_value::<Vec<Edge>>(v) {
            Ok(e) => Some(e),
            Err(e) => {
                errors.push(
                    "/edges",
                    format!("`edges` is a list of {{\"from\": <node id>, \"to\": <node id>}}: {e}"),
                );
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    Ok(Definition { nodes: parsed, edges })
}

fn name_taken(name: &str) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::Conflict { .. } => ApiError::Conflict {
            code: "workflow_name_taken",
            detail: format!("the workspace has a workflow named `{name}` already; choose another name"),
        },
        other => other.into(),
    }
}

async fn workflow_of(state: &AppState, access: &WorkspaceAccess, id: &str) -> Result<WorkflowRecord, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::not_found("workflow"));
    }
    state
        .store
        .workflow(&access.workspace.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("workflow"))
}

fn text_of(def: &Definition) -> Result<String, ApiError> {
    serde_json::to_string(def).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The workspace's workflows (members).
#[utoipa::path(get, path = "/api/workspaces/{ws}/workflows", params(("ws" = String, Path)),
    responses((status = 200, body = [WorkflowView]), (status = 404, body = Problem)))]
pub async fn list_workflows(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> Result<Json<Vec<WorkflowView>>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let mut out = Vec::new();
    for w in state.store.workflows(&access.workspace.id).await? {
        out.push(view(&state, w, None).await?);
    }
    Ok(Json(out))
}

/// Create a workflow (workspace admins): a draft; deploy it to run it.
#[utoipa::path(post, path = "/api/workspaces/{ws}/workflows", params(("ws" = String, Path)), request_body = WorkflowRequest,
    responses((status = 201, body = WorkflowView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The name is taken (`workflow_name_taken`)"), (status = 422, body = Problem)))]
pub async fn create_workflow(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    mut body: Body,
) -> Result<(StatusCode, Json<WorkflowView>), ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("create workflows")?;
    let req: WorkflowRequest = body.json(&state).await?;
    let Some(name) = req.name else {
        return Err(FieldErrors::single("/name", "`name` is required").into());
    };
    let def = parse_definition(req.nodes.unwrap_or_default(), req.edges)?;
    let def = WorkflowDef::check(&name, def)?;
    let w = state
        .store
        .create_workflow(
            &access.workspace.id,
            &def.name,
            &text_of(&def.definition)?,
            Some(&caller.user.id),
        )
        .await
        .map_err(name_taken(&def.name))?;
    tracing::info!(workspace = %access.workspace.slug, workflow = %w.id, "workflow created");
    Ok((StatusCode::CREATED, Json(view(&state, w, None).await?)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// A deployed version to show instead of the draft.
    pub version: Option<i64>,
}

/// A workflow (members): its draft, or a deployed version with `?version=N`.
#[utoipa::path(get, path = "/api/workspaces/{ws}/workflows/{id}", params(("ws" = String, Path), ("id" = String, Path), VersionQuery),
    responses((status = 200, body = WorkflowView), (status = 404, body = Problem)))]
pub async fn get_workflow(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<WorkflowView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let w = workflow_of(&state, &access, &id).await?;
    Ok(Json(view(&state, w, q.version).await?))
}

/// Change a workflow's draft (workspace admins); fields left out keep their values, `edges:
/// null` goes back to running the nodes in order. Runs keep using the deployed version.
#[utoipa::path(patch, path = "/api/workspaces/{ws}/workflows/{id}", params(("ws" = String, Path), ("id" = String, Path)),
    request_body = WorkflowRequest,
    responses((status = 200, body = WorkflowView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_workflow(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    mut body: Body,
) -> Result<Json<WorkflowView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("edit workflows")?;
    let w = workflow_of(&state, &access, &id).await?;
    let req: WorkflowRequest = body.json(&state).await?;
    let base = definition_of(&w.definition)?;
    let nodes = match req.nodes {
        Some(n) => n,
        None => base
            .nodes
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    };
    let edges = match req.edges {
        Some(e) => Some(e),
        None => base
            .edges
            .map(|e| serde_json::to_value(e).map_err(|e| ApiError::Internal(e.to_string())))
            .transpose()?,
    };
    let def = parse_definition(nodes, edges)?;
    let def = WorkflowDef::check(req.name.as_deref().unwrap_or(&w.name), def)?;
    let w = state
        .store
        .update_workflow(&access.workspace.id, &w.id, &def.name, &text_of(&def.definition)?)
        .await
        .map_err(name_taken(&def.name))?;
    Ok(Json(view(&state, w, None).await?))
}

/// Delete a workflow with its versions and runs (workspace admins).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/workflows/{id}", params(("ws" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_workflow(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("delete workflows")?;
    let w = workflow_of(&state, &access, &id).await?;
    state.store.delete_workflow(&access.workspace.id, &w.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Freeze the draft as the next version and make it the one runs use (workspace admins).
/// Refused while a node names a tool or an agent the workspace does not have.
#[utoipa::path(post, path = "/api/workspaces/{ws}/workflows/{id}/deploy", params(("ws" = String, Path), ("id" = String, Path)),
    responses((status = 201, body = WorkflowView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "No nodes, or nodes naming tools or agents the workspace lacks (`unknown_tools`)")))]
pub async fn deploy_workflow(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<WorkflowView>), ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("deploy workflows")?;
    let w = workflow_of(&state, &access, &id).await?;
    let def = definition_of(&w.definition)?;
    if def.nodes.is_empty() {
        return Err(FieldErrors::single("/nodes", "a workflow needs at least one node to be deployed").into());
    }
    let missing = warnings(&state, &access.workspace.id, &def).await?;
    if !missing.is_empty() {
        return Err(ApiError::Coded {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "unknown_tools",
            detail: format!(
                "not deployed: {}",
                missing
                    .iter()
                    .map(|m| format!("node `{}`: {}", m.node, m.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        });
    }
    let tools = json!(def.tools()).to_string();
    let v = state
        .store
        .deploy_workflow(
            &access.workspace.id,
            &w.id,
            &w.definition,
            &tools,
            Some(&caller.user.id),
        )
        .await?;
    tracing::info!(workspace = %access.workspace.slug, workflow = %w.id, version = v.version, "workflow deployed");
    let w = workflow_of(&state, &access, &w.id).await?;
    Ok((StatusCode::CREATED, Json(view(&state, w, None).await?)))
}

/// `POST …/workflows/{id}/runs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRunRequest {
    /// Any JSON; templates read it as `{{input.<path>}}`.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub input: Value,
    /// Credentials for `caller` connections, by connection slug: `{"github": {"token":
    /// "…"}}`; sealed to the run while it lasts and removed when it ends.
    #[schema(value_type = Object)]
    pub credentials: Option<Map<String, Value>>,
    /// The participant on whose behalf the run's calls are made.
    pub participant: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WorkflowRunView {
    pub id: String,
    pub workflow_id: String,
    pub version: i64,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    #[schema(value_type = Object)]
    pub input: Value,
    /// The output of the workflow's last node (the last one nothing waits for).
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    pub error: Option<String>,
    /// Each node's step: `{"id", "type", "tool_name"|"agent", "status", "input", "output",
    /// "error", "attempts", "started_at", "finished_at", "duration_ms"}` (absent in lists).
    #[schema(value_type = Option<Vec<Object>>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Value>>,
    /// How many times a server took the run (more than 1: one stopped while running it).
    pub claims: i64,
    pub participant_id: Option<String>,
    pub started_by: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

fn step_json(s: WorkflowStepRecord) -> Value {
    let parse = |t: Option<String>| t.map(|t| serde_json::from_str::<Value>(&t).unwrap_or(Value::String(t)));
    let mut out = Map::new();
    out.insert("id".into(), json!(s.node_id));
    out.insert("type".into(), json!(s.kind));
    out.insert(
        if s.kind == "agent" { "agent" } else { "tool_name" }.into(),
        json!(s.target),
    );
    out.insert("status".into(), json!(s.status));
    out.insert("input".into(), parse(s.input).unwrap_or(Value::Null));
    out.insert("output".into(), parse(s.output).unwrap_or(Value::Null));
    out.insert("error".into(), parse(s.error).unwrap_or(Value::Null));
    out.insert(
        "attempts".into(),
        serde_json::from_str(&s.attempts).unwrap_or(json!([])),
    );
    out.insert("started_at".into(), json!(s.started_at));
    out.insert("finished_at".into(), json!(s.finished_at));
    out.insert("duration_ms".into(), json!(s.duration_ms));
    if s.cut {
        // an event leaves a large input, output or error out: the run's record has it
        out.insert("cut".into(), json!(true));
    }
    Value::Object(out)
}

fn run_view(r: WorkflowRunRecord, steps: Option<Vec<WorkflowStepRecord>>) -> WorkflowRunView {
    WorkflowRunView {
        id: r.id,
        workflow_id: r.workflow_id,
        version: r.version,
        status: r.status,
        input: serde_json::from_str(&r.input).unwrap_or(Value::Null),
        output: r.output.and_then(|o| serde_json::from_str(&o).ok()),
        error: r.error,
        steps: steps.map(|s| s.into_iter().map(step_json).collect()),
        claims: r.claims,
        participant_id: r.participant_id,
        started_by: r.started_by,
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
    }
}

/// Start a run of the deployed version (members). It is queued at once; any server's
/// workers execute it: follow it with `GET …/runs/{id}` or its events.
#[utoipa::path(post, operation_id = "workflow_start_run", path = "/api/workspaces/{ws}/workflows/{id}/runs", params(("ws" = String, Path), ("id" = String, Path)),
    request_body = WorkflowRunRequest,
    responses((status = 201, body = WorkflowRunView), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The workflow has not been deployed (`not_deployed`)"),
        (status = 422, body = Problem), (status = 429, body = Problem, description = "Too many runs queued or running in the workspace (`too_many_runs`)")))]
pub async fn start_run(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    mut body: Body,
) -> Result<(StatusCode, Json<WorkflowRunView>), ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let w = workflow_of(&state, &access, &id).await?;
    let req: WorkflowRunRequest = body.json(&state).await?;
    if let Some(p) = &req.participant
        && (p.is_empty() || p.len() > 64)
    {
        return Err(FieldErrors::single("/participant", "`participant` is a participant's id").into());
    }
    if let Some(creds) = req.credentials.as_ref().filter(|c| !c.is_empty()) {
        check_credentials(&state, &access, &w, creds).await?;
    }
    let (run, steps) = state
        .flows
        .start(StartFlow {
            workspace_id: access.workspace.id.clone(),
            workflow: w,
            input: req.input,
            credentials: req.credentials,
            participant: req.participant,
            user_id: Some(caller.user.id.clone()),
        })
        .await
        .map_err(|e| match e {
            FlowError::NotDeployed(detail) => ApiError::Conflict {
                code: "not_deployed",
                detail,
            },
            FlowError::TooMany(detail) => ApiError::Coded {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "too_many_runs",
                detail,
            },
            FlowError::Tool(t) => t.into(),
            FlowError::Store(s) => s.into(),
        })?;
    Ok((StatusCode::CREATED, Json(run_view(run, Some(steps)))))
}

/// Per-run credentials only for `caller` connections the deployed version calls (through
/// its tool nodes or its agents).
async fn check_credentials(
    state: &AppState,
    access: &WorkspaceAccess,
    w: &WorkflowRecord,
    creds: &Map<String, Value>,
) -> Result<(), ApiError> {
    let mut slugs: HashSet<String> = HashSet::new();
    if let Some(v) = w.deployed_version
        && let Some(stored) = state.store.workflow_version(&w.id, v).await?
    {
        let def = definition_of(&stored.definition)?;
        let mut tools = def.tools();
        for agent in def.agents() {
            if let Some(a) = state.store.agent(&access.workspace.id, &agent).await? {
                tools.extend(serde_json::from_str::<Vec<String>>(&a.tools).unwrap_or_default());
            }
        }
        slugs.extend(
            tools
                .iter()
                .filter_map(|t| t.split_once('.').map(|(s, _)| s.to_owned())),
        );
    }
    let caller_conns: HashSet<String> = state
        .store
        .list_connections(&access.workspace.id)
        .await?
        .into_iter()
        .filter(|c| c.draft.fulfillment == chatterfly_domain::Fulfillment::Caller)
        .map(|c| c.draft.slug.to_string())
        .collect();
    for (slug, fields) in creds {
        let at = format!("/credentials/{}", chatterfly_domain::error::pointer_token(slug));
        if !fields.is_object() {
            return Err(FieldErrors::single(
                at,
                "each connection's credentials are an object of its secret fields, such as {\"token\": \"…\"}",
            )
            .into());
        }
        if !slugs.contains(slug) || !caller_conns.contains(slug) {
            return Err(FieldErrors::single(
                at,
                format!(
                    "`{}` is not a connection this workflow calls with the caller's own credentials",
                    short(slug)
                ),
            )
            .into());
        }
    }
    Ok(())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Runs per page, 1 to 200 (default 50), newest first.
    pub limit: Option<i64>,
    /// Only runs with this status (`queued`, `running`, `succeeded`, `failed`, `cancelled`).
    #[param(pattern = "^(queued|running|succeeded|failed|cancelled)?$")]
    pub status: Option<String>,
    /// Runs started before this run (the last id of the page before).
    pub before: Option<String>,
}

const STATUSES: [&str; 5] = ["queued", "running", "succeeded", "failed", "cancelled"];

/// A workflow's runs, newest first (members see the runs they started; admins all).
#[utoipa::path(get, operation_id = "workflow_list_runs", path = "/api/workspaces/{ws}/workflows/{id}/runs", params(("ws" = String, Path), ("id" = String, Path), RunsQuery),
    responses((status = 200, body = [WorkflowRunView]), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Vec<WorkflowRunView>>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let w = workflow_of(&state, &access, &id).await?;
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = status
        && !STATUSES.contains(&s)
    {
        return Err(FieldErrors::single("/status", format!("`status` is one of {}", STATUSES.join(", "))).into());
    }
    let runs = state
        .store
        .workflow_runs_of(
            &access.workspace.id,
            &w.id,
            &WorkflowRunFilter {
                started_by: super::access::own_runs_only(&access, &caller),
                status,
                before: q.before.as_deref().filter(|b| !b.is_empty() && b.len() <= 64),
                limit: q.limit.unwrap_or(50).clamp(1, 200),
            },
        )
        .await?;
    Ok(Json(runs.into_iter().map(|r| run_view(r, None)).collect()))
}

async fn run_of(
    state: &AppState,
    access: &WorkspaceAccess,
    caller: &Caller,
    workflow: &str,
    run: &str,
) -> Result<WorkflowRunRecord, ApiError> {
    if run.len() > 64 || workflow.len() > 64 {
        return Err(ApiError::not_found("run"));
    }
    let only = super::access::own_runs_only(access, caller);
    state
        .store
        .workflow_run(&access.workspace.id, run)
        .await?
        .filter(|r| r.workflow_id == workflow)
        .filter(|r| only.is_none_or(|me| r.started_by.as_deref() == Some(me)))
        .ok_or_else(|| ApiError::not_found("run"))
}

/// A run with each node's step (members).
#[utoipa::path(get, operation_id = "workflow_get_run", path = "/api/workspaces/{ws}/workflows/{id}/runs/{run_id}",
    params(("ws" = String, Path), ("id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, body = WorkflowRunView), (status = 404, body = Problem)))]
pub async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id, run_id)): Path<(String, String, String)>,
) -> Result<Json<WorkflowRunView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let run = run_of(&state, &access, &caller, &id, &run_id).await?;
    let steps = state.store.workflow_steps(&run.id).await?;
    Ok(Json(run_view(run, Some(steps))))
}

/// Cancel a run (members): a queued run ends at once; a running one within its server's
/// next look (at most a third of the lease).
#[utoipa::path(post, operation_id = "workflow_cancel_run", path = "/api/workspaces/{ws}/workflows/{id}/runs/{run_id}/cancel",
    params(("ws" = String, Path), ("id" = String, Path), ("run_id" = String, Path)),
    responses((status = 202), (status = 404, body = Problem), (status = 409, body = Problem, description = "The run has ended (`run_ended`)")))]
pub async fn cancel_run(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id, run_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let run = run_of(&state, &access, &caller, &id, &run_id).await?;
    if !state.flows.cancel(&access.workspace.id, &run.id).await? {
        return Err(ApiError::Conflict {
            code: "run_ended",
            detail: format!("the run has ended ({})", run.status),
        });
    }
    Ok(StatusCode::ACCEPTED)
}

/// Steps read at a time by an events follower.
const EVENTS_PAGE: i64 = 20;

/// The run's steps as server-sent events (members): a `step` event each time a step
/// changes (started, ended; each with the whole step, except an input, output or error
/// over 64 KiB, left out with `"cut": true`: the run's record has it), then one `end`
/// event with the run.
#[utoipa::path(get, operation_id = "workflow_run_events", path = "/api/workspaces/{ws}/workflows/{id}/runs/{run_id}/events",
    params(("ws" = String, Path), ("id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream", description = "`step` events, then `end`"), (status = 404, body = Problem)))]
pub async fn run_events(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id, run_id)): Path<(String, String, String)>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let run = run_of(&state, &access, &caller, &id, &run_id).await?;
    let rx = state.flows.subscribe();
    struct Follow {
        state: AppState,
        workspace: String,
        run: String,
        /// The last change sent: (change count, step place).
        after: (i64, i64),
        rx: tokio::sync::broadcast::Receiver<String>,
        pending: std::collections::VecDeque<Event>,
        ended: bool,
    }
    let follow = Follow {
        state,
        workspace: access.workspace.id.clone(),
        run: run.id,
        after: (0, i64::MAX),
        rx,
        pending: std::collections::VecDeque::new(),
        ended: false,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(e) = f.pending.pop_front() {
                return Some((Ok(e), f));
            }
            if f.ended {
                return None;
            }
            let run = f.state.store.workflow_run(&f.workspace, &f.run).await.ok().flatten();
            let steps = f
                .state
                .store
                .workflow_steps_changed(&f.run, f.after, EVENTS_PAGE)
                .await
                .unwrap_or_default();
            let full_page = i64::try_from(steps.len()).unwrap_or(i64::MAX) >= EVENTS_PAGE;
            for s in steps {
                f.after = (s.rev, s.seq);
                f.pending
                    .push_back(Event::default().event("step").data(step_json(s).to_string()));
            }
            match run {
                Some(r) if matches!(r.status.as_str(), "succeeded" | "failed" | "cancelled") && !full_page => {
                    let mut end = serde_json::to_value(run_view(r, None)).unwrap_or_default();
                    // a large output stays in the run's record
                    if end["output"].to_string().len() > chatterfly_store::EVENT_FIELD_BYTES {
                        end["output"] = Value::Null;
                        end["cut"] = json!(true);
                    }
                    let end = end.to_string();
                    f.pending.push_back(Event::default().event("end").data(end));
                    f.ended = true;
                }
                None => f.ended = true,
                Some(_) => {}
            }
            if !f.pending.is_empty() {
                continue;
            }
            let wait = async {
                loop {
                    match f.rx.recv().await {
                        Ok(id) if id == f.run => return,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await;
                        }
                    }
                }
            };
            // another replica may run it: look again in a while in any case
            let _ = tokio::time::timeout(Duration::from_millis(500), wait).await;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// What uses a connection: an agent naming one of its tools, or a deployed workflow whose
/// version calls one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsedBy {
    /// `agent` or `workflow`.
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    /// The connection's tools it uses.
    pub tools: Vec<String>,
}

/// What uses each connection of the workspace, by slug.
pub async fn used_by_all(state: &AppState, workspace_id: &str) -> Result<HashMap<String, Vec<UsedBy>>, ApiError> {
    let mut out: HashMap<String, Vec<UsedBy>> = HashMap::new();
    let mut add = |kind: &'static str, id: &str, name: &str, tools: Vec<String>| {
        let mut by_slug: HashMap<String, Vec<String>> = HashMap::new();
        for t in tools {
            if let Some((slug, _)) = t.split_once('.')
                && chatterfly_tools::connection_tool_name(&t).is_some()
            {
                by_slug.entry(slug.to_owned()).or_default().push(t.clone());
            }
        }
        for (slug, tools) in by_slug {
            out.entry(slug).or_default().push(UsedBy {
                kind,
                id: id.to_owned(),
                name: name.to_owned(),
                tools,
            });
        }
    };
    for a in state.store.agents(workspace_id).await? {
        add(
            "agent",
            &a.id,
            &a.name,
            serde_json::from_str::<Vec<String>>(&a.tools).unwrap_or_default(),
        );
    }
    for w in state.store.deployed_tools(workspace_id).await? {
        add(
            "workflow",
            &w.workflow_id,
            &w.name,
            serde_json::from_str::<Vec<String>>(&w.tools).unwrap_or_default(),
        );
    }
    Ok(out)
}

/// 409 `in_use` when something uses connection `slug` (and `force` is not given).
pub async fn guard_in_use(
    state: &AppState,
    workspace_id: &str,
    slug: &str,
    doing: &str,
    force: bool,
) -> Result<(), ApiError> {
    if force {
        return Ok(());
    }
    let used = used_by_all(state, workspace_id).await?.remove(slug).unwrap_or_default();
    if used.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = used
        .iter()
        .take(10)
        .map(|u| format!("{} `{}`", u.kind, short(&u.name)))
        .collect();
    Err(ApiError::InUse {
        detail: format!(
            "{doing} connection `{}` would break what uses its tools: {}{}; update them first, or add `?force=true`",
            short(slug),
            names.join(", "),
            if used.len() > 10 { ", …" } else { "" }
        ),
        used_by: serde_json::to_value(&used).unwrap_or(Value::Null),
    })
}
