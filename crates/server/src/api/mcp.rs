//! MCP servers: discovery before a connection exists, and refreshing a connection's tools.

use axum::Json;
use axum::extract::State;
use chatterfly_domain::{AuthSpec, AuthType, FieldErrors, McpServerInfo, McpTransport, ServiceType, check_http_url};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::AppState;
use super::access::WorkspaceAccess;
use super::connections::{ConnectionView, OperationView, connection_not_found};
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Caller, Path};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverBody {
    /// The MCP server's URL (Streamable HTTP endpoint such as `…/mcp`, or an SSE stream
    /// such as `…/sse`).
    #[schema(
        pattern = "^[hH][tT][tT][pP][sS]?://([A-Za-z0-9][A-Za-z0-9-]*\\.)*[A-Za-z][A-Za-z0-9-]*(:[1-9][0-9]{0,3})?([/?][^\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb#]*)?$",
        max_length = 2048
    )]
    pub url: String,
    /// `{"type": "none"}` (default) or `{"type": "bearer", "token": …}`; used for this
    /// request only, never stored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub auth: Option<Value>,
    /// `auto` (default: Streamable HTTP, then SSE), `streamable_http` or `sse`.
    #[serde(default)]
    #[schema(value_type = Option<crate::api::connections::TransportName>)]
    pub transport: Option<McpTransport>,
}

#[derive(Serialize, ToSchema)]
pub struct ServerView {
    pub name: String,
    pub title: Option<String>,
    pub version: String,
    pub protocol_version: String,
    pub instructions: Option<String>,
}

impl From<McpServerInfo> for ServerView {
    fn from(s: McpServerInfo) -> Self {
        Self {
            name: s.name,
            title: s.title,
            version: s.version,
            protocol_version: s.protocol_version,
            instructions: s.instructions,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DiscoveryView {
    pub server: ServerView,
    /// The transport that worked: `streamable_http` or `sse`.
    pub transport: String,
    /// The tools as the server announced them: `name`, `title`, `description`,
    /// `input_schema`, `output_schema`, `annotations`.
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Value>,
    /// The operations a connection would store (the `operations` of a create body).
    pub operations: Vec<OperationView>,
    /// Tools renamed or left out, schemas replaced.
    pub warnings: Vec<String>,
}

/// Connect to an MCP server, initialize, list every tool; saves nothing (workspace admins).
#[utoipa::path(post, path = "/api/workspaces/{ws}/connections/discover/mcp", params(("ws" = String, Path)),
    request_body = DiscoverBody,
    responses((status = 200, body = DiscoveryView), (status = 403, body = Problem), (status = 422, body = Problem),
        (status = 502, body = Problem), (status = 504, body = Problem)))]
pub async fn discover_mcp(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    mut body: Body,
) -> Result<Json<DiscoveryView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("discover MCP servers")?;
    let body: DiscoverBody = body.json(&state).await?;
    let url = check_http_url(&body.url).map_err(|e| FieldErrors::single("/url", e.replace("`base_url`", "`url`")))?;
    let auth = match &body.auth {
        None | Some(Value::Null) => AuthSpec::none(),
        Some(v) => AuthSpec::parse(v).map_err(|e| {
            let mut errors = FieldErrors::new();
            errors.extend_under("/auth", e);
            errors
        })?,
    };
    if !ServiceType::Mcp.allowed_auth().contains(&auth.auth_type) {
        return Err(FieldErrors::single("/auth/type", "an MCP server takes auth none or bearer").into());
    }
    if auth.auth_type == AuthType::Bearer && auth.secrets.get("token").is_none() {
        return Err(FieldErrors::single("/auth/token", "bearer auth needs `token`").into());
    }
    let found = state
        .tools
        .discover_mcp(
            &url,
            body.transport.unwrap_or_default(),
            auth.auth_type,
            &auth.secrets,
            None,
            &access.workspace.id,
        )
        .await?;
    drop(auth);
    Ok(Json(DiscoveryView {
        server: found.discovery.server.into(),
        transport: found.discovery.transport.as_str().to_owned(),
        tools: found
            .discovery
            .tools
            .iter()
            .map(chatterfly_mcp::ToolDef::to_json)
            .collect(),
        operations: found.operations.iter().map(OperationView::from).collect(),
        warnings: found.warnings,
    }))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// `caller` fulfillment: the credentials to list the tools with (`{"token": …}`),
    /// used for this request only.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<Map<String, Value>>,
}

#[derive(Serialize, ToSchema)]
pub struct RefreshView {
    /// Operation names the server now offers that the connection did not have.
    pub added: Vec<String>,
    /// Operations whose description, schemas or tool name changed.
    pub changed: Vec<String>,
    /// Operations the server no longer offers (their tools stop resolving).
    pub removed: Vec<String>,
    pub warnings: Vec<String>,
    pub connection: ConnectionView,
}

/// List an MCP connection's tools again and store them; reports what changed (workspace
/// admins).
#[utoipa::path(post, path = "/api/workspaces/{ws}/connections/{slug}/refresh", params(("ws" = String, Path), ("slug" = String, Path)),
    request_body(content = RefreshBody, description = "Optional: leave the body out (or send `null` or `{}`) to use the connection's own credentials"),
    responses((status = 200, body = RefreshView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, description = "Not an mcp connection (`not_mcp`), or a bad body", body = Problem), (status = 502, body = Problem), (status = 504, body = Problem)))]
pub async fn refresh_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, slug)): Path<(String, String)>,
    mut body: Body,
) -> Result<Json<RefreshView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("refresh connections")?;
    let body: RefreshBody = body.optional_json(&state).await?;
    let rec = state
        .store
        .get_connection(&access.workspace.id, &slug)
        .await?
        .ok_or_else(|| connection_not_found(&slug))?;
    if rec.draft.service_type != chatterfly_domain::ServiceType::Mcp {
        // the client asked for something this connection cannot do: not a server fault
        return Err(ApiError::Coded {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "not_mcp",
            detail: format!(
                "only mcp connections can be refreshed; `{}` is {}",
                rec.draft.slug, rec.draft.service_type
            ),
        });
    }
    let (report, draft, updated_at) = state.tools.refresh_mcp(&rec, body.credentials.as_ref()).await?;
    tracing::info!(workspace = %access.workspace.slug, connection = %draft.slug,
        added = report.added.len(), changed = report.changed.len(), removed = report.removed.len(), "MCP tools refreshed");
    let rec = chatterfly_store::ConnectionRecord {
        operation_count: i64::try_from(draft.operations.len()).unwrap_or(i64::MAX),
        draft,
        updated_at,
        ..rec
    };
    Ok(Json(RefreshView {
        added: report.added,
        changed: report.changed,
        removed: report.removed,
        warnings: report.warnings,
        connection: ConnectionView::new(rec, true),
    }))
}
