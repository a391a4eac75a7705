//! Agents and their runs: definitions (members read and run them, workspace admins write
//! them), the declarations a model receives, runs started, listed, read, cancelled, and
//! followed as server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use chatterfly_providers::Provider;
use chatterfly_runs::{AgentDef, AgentInput, RunError, RunInput, StartRun};
use chatterfly_store::{AgentRecord, AgentWrite, RunRecord, StepRecord, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::access::WorkspaceAccess;
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Caller, Path, Query};

/// `POST …/agents`, and the fields a `PATCH` changes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentRequest {
    #[schema(max_length = 100)]
    pub name: Option<String>,
    /// The system prompt.
    pub instructions: Option<String>,
    /// `openai`, `anthropic` or `gemini`.
    pub provider: Option<String>,
    /// The provider's model name (`gpt-4.1`, `claude-sonnet-4-5`, `gemini-2.5-flash`).
    pub model: Option<String>,
    /// Tool names: standard tools (`web_search`) and connection tools (`slug.operation`).
    pub tools: Option<Vec<String>>,
    /// The most model turns a run takes (1 to 100; default 10).
    pub max_steps: Option<i64>,
}

impl From<AgentRequest> for AgentInput {
    fn from(r: AgentRequest) -> Self {
        Self {
            name: r.name,
            instructions: r.instructions,
            provider: r.provider,
            model: r.model,
            tools: r.tools,
            max_steps: r.max_steps,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ToolWarning {
    pub tool: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub instructions: String,
    pub provider: String,
    pub model: String,
    pub tools: Vec<String>,
    pub max_steps: i64,
    pub created_at: String,
    pub updated_at: String,
    /// Tools the agent names that do not exist in the workspace (a run would fail), and
    /// tools left out of what the model receives.
    pub warnings: Vec<ToolWarning>,
}

fn def_of(a: &AgentRecord) -> Result<AgentDef, ApiError> {
    let tools: Vec<String> =
        serde_json::from_str(&a.tools).map_err(|e| ApiError::Internal(format!("agent tools: {e}")))?;
    Ok(AgentDef {
        name: a.name.clone(),
        instructions: a.instructions.clone(),
        provider: a
            .provider
            .parse::<Provider>()
            .map_err(|e| ApiError::Internal(format!("agent provider: {e}")))?,
        model: a.model.clone(),
        tools,
        max_steps: a.max_steps,
    })
}

async fn view(state: &AppState, a: AgentRecord) -> Result<AgentView, ApiError> {
    let def = def_of(&a)?;
    let declared = state.runner.declarations(&a.workspace_id, &def, def.provider).await?;
    let mut warnings: Vec<ToolWarning> = declared
        .unknown
        .iter()
        .map(|t| ToolWarning {
            message: format!("`{t}` is not a tool of this workspace: a run will fail until it exists or is removed"),
            tool: t.clone(),
        })
        .collect();
    warnings.extend(declared.decls.left_out.iter().map(|l| ToolWarning {
        message: format!("left out of what {} receives: {}", def.provider, l.reason),
        tool: l.tool.clone(),
    }));
    Ok(AgentView {
        id: a.id,
        name: a.name,
        instructions: a.instructions,
        provider: a.provider,
        model: a.model,
        tools: def.tools,
        max_steps: a.max_steps,
        created_at: a.created_at,
        updated_at: a.updated_at,
        warnings,
    })
}

fn write_of<'a>(def: &'a AgentDef, tools: &'a str) -> AgentWrite<'a> {
    AgentWrite {
        name: &def.name,
        instructions: &def.instructions,
        provider: def.provider.as_str(),
        model: &def.model,
        tools,
        max_steps: def.max_steps,
    }
}

fn name_taken(name: &str) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::Conflict { .. } => ApiError::Conflict {
            code: "agent_name_taken",
            detail: format!("the workspace has an agent named `{name}` already; choose another name"),
        },
        other => other.into(),
    }
}

async fn agent_of(state: &AppState, access: &WorkspaceAccess, id: &str) -> Result<AgentRecord, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::not_found("agent"));
    }
    state
        .store
        .agent(&access.workspace.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))
}

/// The workspace's agents (members).
#[utoipa::path(get, path = "/api/workspaces/{ws}/agents", params(("ws" = String, Path)),
    responses((status = 200, body = [AgentView]), (status = 404, body = Problem)))]
pub async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> Result<Json<Vec<AgentView>>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let mut out = Vec::new();
    for a in state.store.agents(&access.workspace.id).await? {
        out.push(view(&state, a).await?);
    }
    Ok(Json(out))
}

/// Create an agent (workspace admins). Tools that do not exist are kept and reported in
/// `warnings`.
#[utoipa::path(post, path = "/api/workspaces/{ws}/agents", params(("ws" = String, Path)), request_body = AgentRequest,
    responses((status = 201, body = AgentView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The name is taken (`agent_name_taken`)"), (status = 422, body = Problem)))]
pub async fn create_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    mut body: Body,
) -> Result<(StatusCode, Json<AgentView>), ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("create agents")?;
    let req: AgentRequest = body.json(&state).await?;
    let def = AgentDef::create(req.into())?;
    let tools = json!(def.tools).to_string();
    let a = state
        .store
        .create_agent(&access.workspace.id, &write_of(&def, &tools), Some(&caller.user.id))
        .await
        .map_err(name_taken(&def.name))?;
    tracing::info!(workspace = %access.workspace.slug, agent = %a.id, "agent created");
    Ok((StatusCode::CREATED, Json(view(&state, a).await?)))
}

/// An agent (members).
#[utoipa::path(get, path = "/api/workspaces/{ws}/agents/{id}", params(("ws" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = Problem)))]
pub async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<AgentView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let a = agent_of(&state, &access, &id).await?;
    Ok(Json(view(&state, a).await?))
}

/// Change an agent's fields (workspace admins); fields left out keep their values.
#[utoipa::path(patch, path = "/api/workspaces/{ws}/agents/{id}", params(("ws" = String, Path), ("id" = String, Path)),
    request_body = AgentRequest,
    responses((status = 200, body = AgentView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    mut body: Body,
) -> Result<Json<AgentView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("edit agents")?;
    let a = agent_of(&state, &access, &id).await?;
    let req: AgentRequest = body.json(&state).await?;
    let def = AgentDef::patch(&def_of(&a)?, req.into())?;
    let tools = json!(def.tools).to_string();
    let a = state
        .store
        .update_agent(&access.workspace.id, &a.id, &write_of(&def, &tools))
        .await
        .map_err(name_taken(&def.name))?;
    Ok(Json(view(&state, a).await?))
}

/// Delete an agent with its runs (workspace admins).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/agents/{id}", params(("ws" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("delete agents")?;
    let a = agent_of(&state, &access, &id).await?;
    state.store.delete_agent(&access.workspace.id, &a.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeclarationsQuery {
    /// `openai`, `anthropic` or `gemini` (default: the agent's).
    #[param(pattern = "^(openai|anthropic|gemini)?$")]
    pub provider: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LeftOutView {
    pub tool: String,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeclaredNote {
    pub tool: String,
    /// The name the model calls it by.
    pub name: String,
    pub notes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeclarationsView {
    pub provider: String,
    /// Exactly the provider's `tools` field.
    #[schema(value_type = Object)]
    pub tools: Value,
    /// Tools the agent names that the workspace does not have.
    pub unknown: Vec<String>,
    pub left_out: Vec<LeftOutView>,
    /// Per declared tool: its name for the model and what was adapted.
    pub declared: Vec<DeclaredNote>,
}

/// What the model receives: the tool declarations for a provider (members).
#[utoipa::path(get, path = "/api/workspaces/{ws}/agents/{id}/declarations",
    params(("ws" = String, Path), ("id" = String, Path), DeclarationsQuery),
    responses((status = 200, body = DeclarationsView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn declarations(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    Query(q): Query<DeclarationsQuery>,
) -> Result<Json<DeclarationsView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let a = agent_of(&state, &access, &id).await?;
    let def = def_of(&a)?;
    let provider = match q.provider.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => p
            .parse::<Provider>()
            .map_err(|e| chatterfly_domain::FieldErrors::single("/provider", e))?,
        None => def.provider,
    };
    let declared = state.runner.declarations(&access.workspace.id, &def, provider).await?;
    let (decls, unknown) = (&declared.decls, declared.unknown.clone());
    Ok(Json(DeclarationsView {
        provider: provider.as_str().into(),
        tools: decls.wire(),
        unknown,
        left_out: decls
            .left_out
            .iter()
            .map(|l| LeftOutView {
                tool: l.tool.clone(),
                reason: l.reason.clone(),
            })
            .collect(),
        declared: decls
            .tools
            .iter()
            .map(|d| DeclaredNote {
                tool: d.tool.clone(),
                name: d.name.clone(),
                notes: d.adapted.notes.clone(),
            })
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Text, or messages `[{"role": "user"|"assistant", "content": "…"}]` ending with the
    /// user's.
    #[schema(value_type = Object)]
    pub input: Value,
    /// Credentials for `caller` connections, by connection slug:
    /// `{"github": {"token": "…"}}`; used for this run only, never stored.
    #[schema(value_type = Object)]
    pub credentials: Option<Map<String, Value>>,
    /// The participant on whose behalf the run's calls are made.
    pub participant: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Usage {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

#[derive(Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub agent_id: String,
    /// `running`, `succeeded`, `failed`, `max_steps` or `cancelled`.
    pub status: String,
    #[schema(value_type = Object)]
    pub input: Value,
    /// The final answer.
    pub output: Option<String>,
    /// Why it did not end with an answer.
    pub error: Option<String>,
    pub usage: Usage,
    pub step_count: i64,
    /// Each step: `{"seq", "kind": "model"|"tool", …, "duration_ms", "created_at"}`
    /// (absent in lists).
    #[schema(value_type = Option<Vec<Object>>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Value>>,
    pub participant_id: Option<String>,
    pub started_by: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

fn step_json(s: StepRecord) -> Value {
    let mut out = Map::new();
    out.insert("seq".into(), json!(s.seq));
    out.insert("kind".into(), json!(s.kind));
    if let Ok(Value::Object(data)) = serde_json::from_str::<Value>(&s.data) {
        for (k, v) in data {
            out.entry(k).or_insert(v);
        }
    }
    out.insert("duration_ms".into(), json!(s.duration_ms));
    out.insert("created_at".into(), json!(s.created_at));
    Value::Object(out)
}

fn run_view(r: RunRecord, steps: Option<Vec<StepRecord>>) -> RunView {
    RunView {
        id: r.id,
        agent_id: r.agent_id,
        status: r.status,
        input: serde_json::from_str(&r.input).unwrap_or(Value::Null),
        output: r.output.and_then(|o| serde_json::from_str::<String>(&o).ok()),
        error: r.error,
        usage: Usage {
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
        },
        step_count: r.steps,
        steps: steps.map(|s| s.into_iter().map(step_json).collect()),
        participant_id: r.participant_id,
        started_by: r.started_by,
        created_at: r.created_at,
        finished_at: r.finished_at,
    }
}

/// Start a run (members). It goes on in the background: follow it with `GET …/runs/{id}`
/// or its events.
#[utoipa::path(post, path = "/api/workspaces/{ws}/agents/{id}/runs", params(("ws" = String, Path), ("id" = String, Path)),
    request_body = RunRequest,
    responses((status = 201, body = RunView), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "Bad input, tools the workspace lacks (`unknown_tools`), or no key for the provider (`not_configured`)"),
        (status = 429, body = Problem, description = "The workspace has as many runs going on as it may (`too_many_runs`)")))]
pub async fn start_run(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    mut body: Body,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let a = agent_of(&state, &access, &id).await?;
    let req: RunRequest = body.json(&state).await?;
    let input = RunInput::parse(&req.input)?;
    if let Some(creds) = &req.credentials {
        for (slug, fields) in creds {
            if !fields.is_object() {
                return Err(chatterfly_domain::FieldErrors::single(
                    format!("/credentials/{}", chatterfly_domain::error::pointer_token(slug)),
                    "each connection's credentials are an object of its secret fields, such as {\"token\": \"…\"}",
                )
                .into());
            }
        }
    }
    if let Some(p) = &req.participant
        && (p.is_empty() || p.len() > 64)
    {
        return Err(
            chatterfly_domain::FieldErrors::single("/participant", "`participant` is a participant's id").into(),
        );
    }
    let def = def_of(&a)?;
    // credentials only for the agent's connections that take the caller's
    if let Some(creds) = req.credentials.as_ref().filter(|c| !c.is_empty()) {
        let slugs: std::collections::HashSet<&str> = def
            .tools
            .iter()
            .filter_map(|t| t.split_once('.').map(|(s, _)| s))
            .collect();
        let caller_conns: std::collections::HashSet<String> = state
            .store
            .list_connections(&access.workspace.id)
            .await?
            .into_iter()
            .filter(|c| c.draft.fulfillment == chatterfly_domain::Fulfillment::Caller)
            .map(|c| c.draft.slug.to_string())
            .collect();
        for slug in creds.keys() {
            if !slugs.contains(slug.as_str()) || !caller_conns.contains(slug) {
                return Err(chatterfly_domain::FieldErrors::single(
                    format!("/credentials/{}", chatterfly_domain::error::pointer_token(slug)),
                    format!(
                        "`{}` is not a connection this agent calls with the caller's own credentials",
                        crate::api::access::short(slug)
                    ),
                )
                .into());
            }
        }
    }
    let run = state
        .runner
        .start(StartRun {
            workspace_id: access.workspace.id.clone(),
            workspace_slug: access.workspace.slug.to_string(),
            user_id: Some(caller.user.id.clone()),
            agent: a,
            def,
            input: input.0,
            credentials: req.credentials,
            participant: req.participant,
        })
        .await
        .map_err(|e| match e {
            RunError::UnknownTools(detail) => ApiError::Coded {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "unknown_tools",
                detail,
            },
            RunError::TooMany(detail) => ApiError::Coded {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "too_many_runs",
                detail,
            },
            RunError::Tool(t) => t.into(),
            RunError::Store(s) => s.into(),
        })?;
    Ok((StatusCode::CREATED, Json(run_view(run, Some(Vec::new())))))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Runs per page, 1 to 200 (default 50), newest first.
    pub limit: Option<i64>,
}

/// An agent's runs, newest first (members).
#[utoipa::path(get, path = "/api/workspaces/{ws}/agents/{id}/runs", params(("ws" = String, Path), ("id" = String, Path), RunsQuery),
    responses((status = 200, body = [RunView]), (status = 404, body = Problem)))]
pub async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let a = agent_of(&state, &access, &id).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let runs = state
        .store
        .runs_of(
            &access.workspace.id,
            &a.id,
            super::access::own_runs_only(&access, &caller),
            limit,
        )
        .await?;
    Ok(Json(runs.into_iter().map(|r| run_view(r, None)).collect()))
}

async fn run_of(
    state: &AppState,
    access: &WorkspaceAccess,
    caller: &Caller,
    agent: &str,
    run: &str,
) -> Result<RunRecord, ApiError> {
    if run.len() > 64 || agent.len() > 64 {
        return Err(ApiError::not_found("run"));
    }
    let only = super::access::own_runs_only(access, caller);
    state
        .store
        .run(&access.workspace.id, run)
        .await?
        .filter(|r| r.agent_id == agent)
        .filter(|r| only.is_none_or(|me| r.started_by.as_deref() == Some(me)))
        .ok_or_else(|| ApiError::not_found("run"))
}

/// A run with every step so far (members).
#[utoipa::path(get, path = "/api/workspaces/{ws}/agents/{id}/runs/{run_id}",
    params(("ws" = String, Path), ("id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, body = RunView), (status = 404, body = Problem)))]
pub async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id, run_id)): Path<(String, String, String)>,
) -> Result<Json<RunView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let run = run_of(&state, &access, &caller, &id, &run_id).await?;
    let steps = state.store.steps(&run.id, 0).await?;
    Ok(Json(run_view(run, Some(steps))))
}

/// Cancel a running run (members): it stops at once, recorded as `cancelled`.
#[utoipa::path(post, path = "/api/workspaces/{ws}/agents/{id}/runs/{run_id}/cancel",
    params(("ws" = String, Path), ("id" = String, Path), ("run_id" = String, Path)),
    responses((status = 202), (status = 404, body = Problem), (status = 409, body = Problem, description = "The run has ended (`run_ended`)")))]
pub async fn cancel_run(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id, run_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let run = run_of(&state, &access, &caller, &id, &run_id).await?;
    if !state.runner.cancel(&access.workspace.id, &run.id).await? {
        return Err(ApiError::Conflict {
            code: "run_ended",
            detail: format!("the run has ended ({})", run.status),
        });
    }
    Ok(StatusCode::ACCEPTED)
}

/// Steps read at a time by an events follower.
const EVENTS_PAGE: i64 = 20;

/// The run's steps as server-sent events (members): each step as an event `step`, then
/// one `end` event with the run. Steps already taken come first.
#[utoipa::path(get, path = "/api/workspaces/{ws}/agents/{id}/runs/{run_id}/events",
    params(("ws" = String, Path), ("id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream", description = "`step` events, then `end`"), (status = 404, body = Problem)))]
pub async fn run_events(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id, run_id)): Path<(String, String, String)>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let run = run_of(&state, &access, &caller, &id, &run_id).await?;
    let rx = state.runner.subscribe();
    let workspace = access.workspace.id.clone();
    struct Follow {
        state: AppState,
        workspace: String,
        run: String,
        next: i64,
        rx: tokio::sync::broadcast::Receiver<String>,
        pending: std::collections::VecDeque<Event>,
        ended: bool,
    }
    let follow = Follow {
        state,
        workspace,
        run: run.id,
        next: 0,
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
            // what the store has now: new steps, and the run's state
            let run = f.state.store.run(&f.workspace, &f.run).await.ok().flatten();
            // a page at a time: a follower holds at most a page of a big run, and reads
            // the next when the client has taken this one
            let steps = f
                .state
                .store
                .steps_page(&f.run, f.next, EVENTS_PAGE)
                .await
                .unwrap_or_default();
            for s in steps {
                f.next = s.seq + 1;
                let data = step_json(s).to_string();
                f.pending.push_back(Event::default().event("step").data(data));
            }
            match run {
                Some(r) if r.status != "running" && f.next >= r.steps => {
                    let end = serde_json::to_string(&run_view(r, None)).unwrap_or_default();
                    f.pending.push_back(Event::default().event("end").data(end));
                    f.ended = true;
                }
                None => f.ended = true,
                Some(_) => {}
            }
            if !f.pending.is_empty() {
                continue;
            }
            // wait for a step of this run here, or look again in a while (another replica
            // may run it)
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
            let _ = tokio::time::timeout(Duration::from_millis(500), wait).await;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
