//! Tools: the picker's list, invocation, and the audit log of calls.

use std::sync::Arc;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chatterfly_store::User;
use chatterfly_tools::{Call, ConnectionLookup, ToolInfo, connection_tool_name};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::access::WorkspaceAccess;
use crate::call_cache::{CachedCall, CallCache};
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Caller, Credential, ExactJson, Path, Query, session_owner};

#[derive(Serialize, ToSchema)]
pub struct ToolView {
    /// `web_search`, or `slug.operation`.
    pub name: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub input_schema: Value,
}

impl From<ToolInfo> for ToolView {
    fn from(t: ToolInfo) -> Self {
        Self {
            name: t.name,
            description: t.description,
            input_schema: t.input_schema,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ToolsView {
    /// Built-in tools.
    pub standard: Vec<ToolView>,
    /// The workspace's connection tools.
    pub connections: Vec<ToolView>,
}

/// Every tool a workspace's agents can call (any member).
#[utoipa::path(get, path = "/api/workspaces/{ws}/tools", params(("ws" = String, Path)),
    responses((status = 200, body = ToolsView), (status = 404, body = Problem)))]
pub async fn list_tools(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> Result<ExactJson<ToolsView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    // thousands of operations are read and written whole: a few such reads at a time
    let _turn = if state.store.operation_total(&access.workspace.id, None).await? > super::HEAVY_OPERATIONS {
        Some(state.heavy_turn().await?)
    } else {
        None
    };
    let catalog = state.tools.catalog(&access.workspace.id).await?;
    Ok(ExactJson(ToolsView {
        standard: catalog.standard.into_iter().map(Into::into).collect(),
        connections: catalog.connections.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeBody {
    /// The tool's arguments, checked against its input schema before any request.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub arguments: Value,
    /// For `caller` fulfillment: the secret fields of the connection's auth shape, used for
    /// this call only, never stored or logged.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<Map<String, Value>>,
    /// The participant on whose behalf the call is made: a `participant` connection uses
    /// the credentials they gave during onboarding.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub participant: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[derive(Serialize, ToSchema)]
pub struct InvokeView {
    /// For HTTP tools `{"status", "headers", "body"}`, credentials redacted.
    #[schema(value_type = Object)]
    pub output: Value,
    pub duration_ms: u64,
}

/// Call a tool (any member). Upstream HTTP errors are outputs (`output.status`); a refused,
/// failed or invalid call is a problem document with a stable code (`tool_not_found`,
/// `invalid_arguments`, `credentials_required`, `ssrf_blocked`, `upstream_timeout`, …).
/// Gmail tools answer with Gmail's result; an operation outside the tiers the account
/// granted is 403 `insufficient_scope` (nothing sent), an account whose refresh the
/// provider refused is 409 `account_needs_reconnect`.
#[utoipa::path(post, path = "/api/workspaces/{ws}/tools/{tool_name}/invoke",
    params(("ws" = String, Path), ("tool_name" = String, Path)), request_body = InvokeBody,
    responses((status = 200, body = InvokeView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The caller's account must be connected again (`account_needs_reconnect`)"),
        (status = 422, body = Problem), (status = 429, body = Problem, description = "Telegram asked to wait (`rate_limited`, with `retry_after`)"),
        (status = 502, body = Problem), (status = 504, body = Problem)))]
pub async fn invoke(
    State(state): State<AppState>,
    target: InvokeTarget,
    unsent: Option<axum::Extension<crate::listen::Unsent>>,
    mut body: Body,
) -> Result<Response, ApiError> {
    let body: InvokeBody = body.json(&state).await?;
    if body.participant.as_ref().is_some_and(|p| p.is_empty() || p.len() > 64) {
        return Err(chatterfly_domain::FieldErrors::single(
            "/participant",
            "`participant` is a participant's id (1 to 64 characters)",
        )
        .into());
    }
    let out = state
        .tools
        .invoke(Call {
            workspace_id: &target.access.workspace.id,
            workspace_slug: target.access.workspace.slug.as_str(),
            user_id: Some(&target.user.id),
            tool: &target.tool_name,
            arguments: body.arguments,
            credentials: body.credentials,
            participant: body.participant.as_deref(),
            resolved: target.resolved,
            wait_for_room: false,
            run_id: None,
        })
        .await?;
    let view = InvokeView {
        output: out.output,
        duration_ms: out.duration_ms,
    };
    let mut room = out.room;
    if room.bytes() == 0 {
        return Ok(Json(view).into_response());
    }
    let text = if room.answer_len() < chatterfly_egress::heavy::HEAVY_BYTES {
        serde_json::to_vec(&view).map_err(|e| ApiError::Internal(e.to_string()))?
    } else {
        // a large output is serialized off the async workers, in its workspace's lane for
        // outputs: apart from the lane of answers being parsed, so that finished outputs
        // (which free their memory once written) do not wait behind every answer still to
        // parse
        let lane = format!("{}/out", target.access.workspace.id);
        state
            .tools
            .egress()
            .heavy()
            .run(&lane, move || serde_json::to_vec(&view))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(e.to_string()))?
    };
    // the text stays in the budget for answers in flight until it has been sent: a client
    // that does not read its answers holds room, not memory outside the budget
    room.shrink_to(text.len());
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::new(HeldBody {
            rest: hyper::body::Bytes::from(text),
            _room: room,
            unsent: unsent.map(|u| u.0.hold()),
        }),
    )
        .into_response())
}

/// A response body that holds its answer's room in the budget for answers in flight until
/// it has been sent. Handed on in slices of one buffer, so hyper asks for the next only as
/// the client reads, and the room goes with the last. Each slice tells the connection the
/// answer moved: one held and unmoved past the write-stall limit closes the connection
/// (an HTTP/2 client can keep its socket busy and a stream's window shut).
struct HeldBody {
    rest: hyper::body::Bytes,
    _room: chatterfly_egress::answers::AnswerRoom,
    unsent: Option<crate::listen::UnsentAnswer>,
}

/// The slice of a held body handed on at a time: over HTTP/2 an answer moves a slice at a
/// time, so a client reading more slowly than a slice per write-stall limit (16 KiB in
/// 30 s by default) is taken for one that reads nothing.
const HELD_CHUNK: usize = 16 * 1024;

impl hyper::body::Body for HeldBody {
    type Data = hyper::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if self.rest.is_empty() {
            return std::task::Poll::Ready(None);
        }
        let n = self.rest.len().min(HELD_CHUNK);
        let chunk = self.rest.split_to(n);
        if let Some(u) = &self.unsent {
            u.moved();
        }
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(u64::try_from(self.rest.len()).unwrap_or(u64::MAX))
    }
}

/// Who calls which tool where, resolved from the path and the bearer token before the body
/// is read (so an unknown token costs no body). For a connection's tool the caller, their
/// role and the connection with its operation come from one query, for a standard tool the
/// caller and their role; a bearer token's context is then kept in the call-context cache
/// ([`CallCache`]): this is the path agents take thousands of times a day.
pub struct InvokeTarget {
    user: User,
    access: WorkspaceAccess,
    tool_name: String,
    resolved: Option<Arc<ConnectionLookup>>,
}

impl FromRequestParts<AppState> for InvokeTarget {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = Credential::from_parts(parts)?;
        let Path((ws, tool_name)) = Path::<(String, String)>::from_request_parts(parts, state).await?;
        let (hash, session_user) = match credential {
            Credential::Bearer(hash) => (hash, None),
            // the session's life and its CSRF token are checked before anything else
            Credential::Session(hash) => {
                let owner = session_owner(parts, state, &hash).await?;
                (hash, Some(owner.user))
            }
        };
        let Some(name) = connection_tool_name(&tool_name) else {
            // a standard tool: the caller and their role only (the empty slug and operation
            // name no connection, so every standard tool of a token shares one entry)
            let (user, found) = match session_user {
                Some(user) => {
                    let found = state.store.workspace_role(&ws, &user.id).await?;
                    (user, found)
                }
                None => {
                    let call = call_context(state, &hash, &ws, "", "").await?;
                    (call.caller.user.clone(), call.workspace.clone())
                }
            };
            let access = WorkspaceAccess::check(&user, &ws, found)?;
            return Ok(Self {
                user,
                access,
                tool_name,
                resolved: None,
            });
        };
        let call = match session_user {
            // sessions are the web UI's, and expire: they are read every time
            Some(_) => Arc::new(CachedCall::from_context(
                state
                    .store
                    .call_context(&hash, true, &ws, name.slug.as_str(), name.operation.as_str())
                    .await?
                    .ok_or(ApiError::Unauthorized)?,
            )),
            None => call_context(state, &hash, &ws, name.slug.as_str(), name.operation.as_str()).await?,
        };
        let access = WorkspaceAccess::check(&call.caller.user, &ws, call.workspace.clone())?;
        Ok(Self {
            user: call.caller.user.clone(),
            access,
            tool_name,
            resolved: Some(call.connection.clone()),
        })
    }
}

/// A bearer token's call context: from the cache while nothing it depends on changed, else
/// read (one query) and kept when the call may go ahead. `slug` and `operation` empty: a
/// standard tool's (the caller and their role).
async fn call_context(
    state: &AppState,
    hash: &str,
    ws: &str,
    slug: &str,
    operation: &str,
) -> Result<Arc<CachedCall>, ApiError> {
    let key = CallCache::key(hash, ws, slug, operation);
    if let Some(call) = state.calls.get(&key) {
        state.tools.metrics.context_hits.inc();
        return Ok(call);
    }
    state.tools.metrics.context_misses.inc();
    let generation = state.calls.generation();
    let ctx = state
        .store
        .call_context(hash, false, ws, slug, operation)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    // only contexts of calls that may go ahead are kept: refusals and misses do not fill
    // the cache, and a member added back is not refused from it
    let member = matches!(&ctx.workspace, Some((_, role)) if role.is_some() || ctx.caller.user.platform_admin);
    let found = slug.is_empty() || matches!(&ctx.connection, Some((_, Some(_))));
    let call = Arc::new(CachedCall::from_context(ctx));
    if let (Some(generation), true) = (generation, member && found) {
        state.calls.put(key, generation, call.clone());
    }
    Ok(call)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The `id` of the last event of the previous page (`next_before`).
    #[param(pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$")]
    pub before: Option<String>,
    /// Events per page, 1 to 500 (default 100; values outside are brought within).
    pub limit: Option<i64>,
    /// Only calls of this tool (`slug.operation` or a standard tool's name).
    #[param(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub tool: Option<String>,
    /// Only calls of this connection's tools (its slug).
    #[param(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub connection: Option<String>,
    /// Only `ok` or only `error` calls.
    #[param(pattern = "^(ok|error)?$")]
    pub outcome: Option<String>,
    /// Only calls by this user.
    #[param(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub user_id: Option<String>,
    /// Only calls made with this participant's credentials.
    #[param(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub participant: Option<String>,
    /// Only calls made by this agent run.
    #[param(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub run: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    pub id: String,
    pub user_id: Option<String>,
    pub tool: String,
    pub connection: Option<String>,
    /// `ok` or `error`.
    pub outcome: String,
    /// The upstream HTTP status, when there was one.
    pub http_status: Option<i64>,
    pub error_code: Option<String>,
    pub duration_ms: i64,
    pub created_at: String,
    /// The participant whose credentials the call used.
    pub participant_id: Option<String>,
    /// The agent run that made the call.
    pub run_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEventView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<String>,
}

/// The workspace's tool calls, newest first (workspace admins).
#[utoipa::path(get, path = "/api/workspaces/{ws}/audit", params(("ws" = String, Path), AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("read the audit log")?;
    // Rows of this replica's recent calls are written in the background; wait for them so
    // a caller reads its own calls.
    state.tools.flush_audit().await;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    // ids are stored in lower case
    let before_lower = q.before.as_deref().map(str::to_ascii_lowercase);
    let before = before_lower.as_deref().filter(|b| !b.is_empty());
    if before.is_some_and(|b| b.len() != 36 || uuid::Uuid::parse_str(b).is_err()) {
        return Err(ApiError::Coded {
            status: axum::http::StatusCode::BAD_REQUEST,
            code: "invalid_query",
            detail: "`before` is the `id` of an event (the `next_before` of the previous page)".into(),
        });
    }
    for (name, value) in [
        ("tool", &q.tool),
        ("connection", &q.connection),
        ("user_id", &q.user_id),
        ("participant", &q.participant),
        ("run", &q.run),
    ] {
        if value.as_deref().is_some_and(|v| v.chars().any(char::is_control)) {
            return Err(ApiError::Coded {
                status: axum::http::StatusCode::BAD_REQUEST,
                code: "invalid_query",
                detail: format!("`{name}` must not contain control characters"),
            });
        }
    }
    if q.outcome.as_deref().is_some_and(|o| !matches!(o, "" | "ok" | "error")) {
        return Err(ApiError::Coded {
            status: axum::http::StatusCode::BAD_REQUEST,
            code: "invalid_query",
            detail: "`outcome` is `ok` or `error`".into(),
        });
    }
    let events = state
        .store
        .list_audit(
            &access.workspace.id,
            before,
            limit,
            &chatterfly_store::AuditFilter {
                tool: q.tool.filter(|t| !t.is_empty()),
                connection: q.connection.filter(|c| !c.is_empty()),
                outcome: q.outcome.filter(|o| !o.is_empty()),
                user_id: q.user_id.filter(|u| !u.is_empty()),
                participant_id: q.participant.filter(|p| !p.is_empty()),
                run_id: q.run.filter(|r| !r.is_empty()),
            },
        )
        .await?;
    let next_before = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.id.clone()))
        .flatten();
    Ok(Json(AuditPage {
        events: events
            .into_iter()
            .map(|e| AuditEventView {
                id: e.id,
                user_id: e.user_id,
                tool: e.tool,
                connection: e.connection_slug,
                outcome: e.outcome,
                http_status: e.http_status,
                error_code: e.error_code,
                duration_ms: e.duration_ms,
                created_at: e.created_at,
                participant_id: e.participant_id,
                run_id: e.run_id,
            })
            .collect(),
        next_before,
    }))
}
