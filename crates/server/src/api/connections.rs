//! Connections: create, list, read, edit, delete. Secret fields are sealed by the vault,
//! bound to the connection's id, before the store sees them; responses show `<field>_set`.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chatterfly_domain::{
    ConnectionDraft, ConnectionInput, ConnectionPatch, McpTransport, Operation, SecretFields, SecretsChange,
    ServiceType, auth_response,
};
use chatterfly_store::{ConnectionRecord, NewConnection, SealedUpdate, SourceMeta, StoreError, aad, new_id};
use chatterfly_vault::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::access::{WorkspaceAccess, short};
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Caller, ExactJson, Path, Query};

/// One operation (tool) of a connection.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OperationView {
    /// 1 to 128 ASCII letters, digits, `_`, `-`, `.`; unique in the connection.
    pub name: String,
    /// HTTP method; null for MCP tools.
    pub method: Option<String>,
    /// Path template with `{{param}}` placeholders; null for MCP tools.
    pub path: Option<String>,
    pub description: String,
    #[schema(value_type = Object)]
    pub input_schema: Value,
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    /// Where each argument goes (`arguments`: name → `{"in": "path"|"query"|"header"|"body"|
    /// "whole_body", "name"?, "style"?, "explode"?}`), the body's `content_type`, and
    /// `credentials: false` for operations called without the connection's credentials.
    /// Left out: the default rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub request: Option<Value>,
    /// MCP tools: the server's exact tool name, sent with `tools/call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_tool: Option<String>,
}

impl From<Operation> for OperationView {
    /// Moves the schemas: a large API's operations are never copied to be shown.
    fn from(o: Operation) -> Self {
        Self {
            name: o.name.to_string(),
            method: o.method.map(|m| m.as_str().to_owned()),
            path: o.path.as_ref().map(|p| p.as_str().to_owned()),
            request: o.request.as_ref().and_then(|r| serde_json::to_value(r).ok()),
            description: o.description,
            input_schema: o.input_schema,
            output_schema: o.output_schema,
            mcp_tool: o.mcp_tool,
        }
    }
}

impl From<&Operation> for OperationView {
    fn from(o: &Operation) -> Self {
        Self {
            name: o.name.to_string(),
            method: o.method.map(|m| m.as_str().to_owned()),
            path: o.path.as_ref().map(|p| p.as_str().to_owned()),
            description: o.description.clone(),
            input_schema: o.input_schema.clone(),
            output_schema: o.output_schema.clone(),
            request: o.request.as_ref().and_then(|r| serde_json::to_value(r).ok()),
            mcp_tool: o.mcp_tool.clone(),
        }
    }
}

/// A connection as the API shows it: never a secret, `<field>_set` in its place.
#[derive(Serialize, ToSchema)]
pub struct ConnectionView {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// `http`, `openapi`, `mcp`, `gmail` or `telegram`.
    pub service_type: String,
    pub base_url: String,
    /// `{"type": …, public fields…, "<secret field>_set": bool}`.
    #[schema(value_type = Object)]
    pub auth: Value,
    /// `static`, `caller` or `participant`.
    pub fulfillment: String,
    pub participant_role: Option<String>,
    /// Present when reading one connection; left out of lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operations: Option<Vec<OperationView>>,
    pub operation_count: i64,
    /// The connection's own bounds on outbound calls (`timeout_ms`, `max_response_bytes`,
    /// `max_redirects`), each capped by the operator's maximum; null when it uses the
    /// operator's values.
    #[schema(value_type = Option<Object>)]
    pub limits: Option<chatterfly_domain::ConnectionLimits>,
    /// The document an openapi connection was imported from (its text at `…/source`);
    /// shown when reading one connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceView>,
    /// mcp connections: `auto`, `streamable_http` or `sse` (discovery stores the one found).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// mcp connections: the server as last discovered (`name`, `title`, `version`,
    /// `protocol_version`, `instructions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub mcp_server: Option<chatterfly_domain::McpServerInfo>,
    /// `caller`/`participant` http and openapi connections: the OAuth provider (`github`,
    /// `gmail`) whose account gives each call its bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_provider: Option<String>,
    /// What uses the connection's tools: agents, and deployed workflows
    /// (`{"kind", "id", "name", "tools"}`); renaming or deleting it is refused while this
    /// is not empty (409 `in_use`, unless `?force=true`).
    pub used_by: Vec<super::workflows::UsedBy>,
    pub created_at: String,
    pub updated_at: String,
}

/// What is kept of an imported document.
#[derive(Serialize, ToSchema)]
pub struct SourceView {
    /// `openapi`.
    #[serde(rename = "type")]
    pub kind: String,
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
    pub updated_at: String,
}

impl From<SourceMeta> for SourceView {
    fn from(m: SourceMeta) -> Self {
        Self {
            kind: m.kind.as_str().to_owned(),
            sha256: m.sha256,
            size: m.size,
            updated_at: m.updated_at,
        }
    }
}

impl ConnectionView {
    /// The view of a record, its operations moved in (`with_operations`) or left out.
    pub(crate) fn new(rec: ConnectionRecord, with_operations: bool) -> Self {
        let mut d = rec.draft;
        let sealed = rec.auth_sealed.is_some();
        let operations = std::mem::take(&mut d.operations);
        Self {
            id: rec.id,
            name: d.name.clone(),
            slug: d.slug.to_string(),
            service_type: d.service_type.as_str().to_owned(),
            base_url: d.base_url.clone(),
            auth: auth_response(d.auth_type, &d.auth_public, |_| sealed),
            fulfillment: d.fulfillment.as_str().to_owned(),
            participant_role: d.participant_role.as_ref().map(ToString::to_string),
            operations: with_operations.then(|| operations.into_iter().map(OperationView::from).collect()),
            operation_count: rec.operation_count,
            limits: d.limits,
            source: None,
            transport: d.transport.map(|t| t.as_str().to_owned()),
            mcp_server: d.mcp_server,
            oauth_provider: d.oauth_provider.map(|p| p.as_str().to_owned()),
            created_at: rec.created_at,
            used_by: Vec::new(),
            updated_at: rec.updated_at,
        }
    }
}

/// The body of a create request (documentation of the shape; see SPEC "A connection").
#[derive(ToSchema, Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    /// Up to 200 characters, not blank, no control characters.
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]*[^\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb\\u0085][^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]*$",
        max_length = 200
    )]
    name: String,
    /// Unique in the workspace.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,62}$")]
    slug: String,
    service_type: ServiceTypeName,
    /// Required for http, openapi and mcp; defaults for gmail and telegram. An absolute
    /// http(s) URL without user, password, fragment, spaces or control characters.
    #[schema(
        pattern = "^[hH][tT][tT][pP][sS]?://([A-Za-z0-9][A-Za-z0-9-]*\\.)*[A-Za-z][A-Za-z0-9-]*(:[1-9][0-9]{0,3})?([/?][^\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb#]*)?$",
        max_length = 2048
    )]
    base_url: Option<String>,
    /// One of the auth shapes; secret fields are write-only.
    #[schema(value_type = Option<Object>)]
    auth: Option<Value>,
    fulfillment: Option<FulfillmentName>,
    /// Required with participant fulfillment.
    #[schema(pattern = "^\\s*([a-z][a-z0-9_-]{0,62})?\\s*$")]
    participant_role: Option<String>,
    operations: Option<Vec<OperationBody>>,
    limits: Option<LimitsBody>,
    /// openapi only: kept for a later re-import (the import endpoint's draft carries it).
    source: Option<SourceBody>,
    transport: Option<TransportName>,
    /// `caller`/`participant` http or openapi connections with bearer auth: `github` or
    /// `gmail`, whose account (under My Accounts) gives each call its token.
    oauth_provider: Option<OAuthProviderName>,
}

/// An OAuth provider.
#[derive(ToSchema, Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "snake_case")]
enum OAuthProviderName {
    Gmail,
    Github,
}

/// An edit: every field optional; left out (or `null`) keeps the stored value, except
/// `participant_role` and `limits`, which `null` clears. The service type cannot change.
#[derive(ToSchema, Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatchBody {
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]*[^\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb\\u0085][^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]*$",
        max_length = 200
    )]
    name: Option<String>,
    #[schema(pattern = "^[a-z][a-z0-9_]{0,62}$")]
    slug: Option<String>,
    /// Must be the connection's own service type.
    service_type: Option<ServiceTypeName>,
    #[schema(
        pattern = "^[hH][tT][tT][pP][sS]?://([A-Za-z0-9][A-Za-z0-9-]*\\.)*[A-Za-z][A-Za-z0-9-]*(:[1-9][0-9]{0,3})?([/?][^\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb#]*)?$",
        max_length = 2048
    )]
    base_url: Option<String>,
    /// A secret field left out or blank keeps the stored secret.
    #[schema(value_type = Option<Object>)]
    auth: Option<Value>,
    fulfillment: Option<FulfillmentName>,
    #[schema(pattern = "^\\s*([a-z][a-z0-9_-]{0,62})?\\s*$")]
    participant_role: Option<String>,
    /// Replaces every operation.
    operations: Option<Vec<OperationBody>>,
    limits: Option<LimitsBody>,
    source: Option<SourceBody>,
    transport: Option<TransportName>,
    /// `null` clears it.
    oauth_provider: Option<OAuthProviderName>,
}

/// One operation as written (create and edit): only `name` is required.
#[derive(ToSchema, Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct OperationBody {
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,128}$")]
    name: String,
    /// HTTP operations: `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD` or `OPTIONS`.
    method: Option<String>,
    /// HTTP operations: a path template with `{{param}}` placeholders.
    path: Option<String>,
    #[schema(max_length = 16384)]
    description: Option<String>,
    /// JSON Schema of the arguments, an object schema (default: no arguments); at most
    /// 256 KiB of JSON.
    #[schema(value_type = Option<Object>)]
    input_schema: Option<Value>,
    #[schema(value_type = Option<Object>)]
    output_schema: Option<Value>,
    /// Where each argument goes; see the import rules.
    #[schema(value_type = Option<Object>)]
    request: Option<Value>,
    /// MCP tools: the server's exact tool name.
    mcp_tool: Option<String>,
}

/// A connection's own bounds on outbound calls, each capped by the operator's maximum.
#[derive(ToSchema, Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    #[schema(minimum = 1, maximum = 600000)]
    timeout_ms: Option<u64>,
    #[schema(minimum = 1, maximum = 1073741824)]
    max_response_bytes: Option<u64>,
    #[schema(minimum = 0, maximum = 20)]
    max_redirects: Option<u32>,
}

/// The document an openapi connection was imported from.
#[derive(ToSchema, Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct SourceBody {
    #[serde(rename = "type")]
    #[schema(pattern = "^openapi$")]
    kind: String,
    /// The document's text, JSON or YAML.
    #[schema(min_length = 1)]
    document: String,
}

#[derive(ToSchema, Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "snake_case")]
pub enum ServiceTypeName {
    Http,
    Openapi,
    Mcp,
    Gmail,
    Telegram,
}

#[derive(ToSchema, Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "snake_case")]
pub enum FulfillmentName {
    Static,
    Caller,
    Participant,
}

#[derive(ToSchema, Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "snake_case")]
pub enum TransportName {
    Auto,
    StreamableHttp,
    Sse,
}

fn slug_taken(slug: &str) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::Conflict { what: "slug" } => ApiError::Conflict {
            code: "slug_taken",
            detail: format!("slug `{slug}` is taken in this workspace; choose another"),
        },
        other => other.into(),
    }
}

/// A `participant` connection's role must be one of the workspace's participant roles.
async fn check_role_exists(state: &AppState, workspace_id: &str, draft: &ConnectionDraft) -> Result<(), ApiError> {
    if let Some(role) = &draft.participant_role
        && !state.store.participant_role_exists(workspace_id, role.as_str()).await?
    {
        return Err(chatterfly_domain::FieldErrors::single(
            "/participant_role",
            format!("the workspace has no participant role `{role}`; add it under Participants → Roles first"),
        )
        .into());
    }
    Ok(())
}

pub(crate) fn connection_not_found(slug: &str) -> ApiError {
    ApiError::NotFound(format!("connection `{}` not found in this workspace", short(slug)))
}

/// A Gmail service account's key must be one Google would take: a key file with an RSA
/// private key (checked here, where the vault's plaintext is at hand, before it is sealed).
fn check_service_account(secrets: &SecretFields) -> Result<(), ApiError> {
    if let Some(json) = secrets.get("service_account_json") {
        chatterfly_tools::gmail::ServiceAccountKey::parse(json.expose_secret())
            .map_err(|e| chatterfly_domain::FieldErrors::single("/auth/service_account_json", e))?;
    }
    Ok(())
}

fn seal(state: &AppState, connection_id: &str, secrets: &SecretFields) -> Result<Option<String>, ApiError> {
    if secrets.is_empty() {
        return Ok(None);
    }
    let plain = secrets.to_sealable_json();
    Ok(Some(
        state
            .keys
            .seal(plain.as_bytes(), &aad::connection_auth(connection_id))?,
    ))
}

/// List a workspace's connections (any member).
#[utoipa::path(get, path = "/api/workspaces/{ws}/connections", params(("ws" = String, Path)),
    responses((status = 200, body = Vec<ConnectionView>), (status = 404, body = Problem)))]
pub async fn list_connections(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> Result<Json<Vec<ConnectionView>>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let list = state.store.list_connections(&access.workspace.id).await?;
    let mut used = super::workflows::used_by_all(&state, &access.workspace.id).await?;
    Ok(Json(
        list.into_iter()
            .map(|r| {
                let slug = r.draft.slug.to_string();
                let mut v = ConnectionView::new(r, false);
                v.used_by = used.remove(&slug).unwrap_or_default();
                v
            })
            .collect(),
    ))
}

/// Create a connection (workspace admins).
#[utoipa::path(post, path = "/api/workspaces/{ws}/connections", params(("ws" = String, Path)), request_body = ConnectionBody,
    responses((status = 201, body = ConnectionView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem),
        (status = 502, description = "mcp: the server could not be reached or did not speak MCP", body = Problem),
        (status = 504, description = "mcp: the server did not answer in time", body = Problem)))]
pub async fn create_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    mut body: Body,
) -> Result<(StatusCode, ExactJson<ConnectionView>), ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("create connections")?;
    let input: ConnectionInput = body.connection_json(&state).await?;
    let operations_given = input.operations.is_some();
    let (mut draft, secrets) = ConnectionDraft::parse(input)?;
    check_service_account(&secrets)?;
    check_role_exists(&state, &access.workspace.id, &draft).await?;
    if draft.service_type == ServiceType::Mcp
        && (!operations_given || draft.transport.is_none_or(|t| t == McpTransport::Auto))
    {
        // the tools the server offers now, and the transport it speaks
        let found = state
            .tools
            .discover_mcp(
                &draft.base_url,
                draft.transport.unwrap_or_default(),
                draft.auth_type,
                &secrets,
                None,
                &access.workspace.id,
            )
            .await?;
        if !operations_given {
            draft.operations = found.operations;
        }
        draft.transport = Some(found.discovery.transport);
        draft.mcp_server = Some(found.discovery.server);
    }
    let id = new_id();
    let sealed = seal(&state, &id, &secrets)?;
    drop(secrets);
    let rec = state
        .store
        .insert_connection(NewConnection {
            id: &id,
            workspace_id: &access.workspace.id,
            draft: &draft,
            auth_sealed: sealed.as_deref(),
            created_by: Some(&caller.user.id),
        })
        .await
        .map_err(slug_taken(draft.slug.as_str()))?;
    tracing::info!(workspace = %access.workspace.slug, connection = %draft.slug, service_type = %draft.service_type, "connection created");
    let id = rec.id.clone();
    // the record carries no operations (the store does not copy them): the view takes the
    // draft's
    let mut view = ConnectionView::new(rec, false);
    view.operations = Some(draft.operations.into_iter().map(OperationView::from).collect());
    if draft.source.is_some() {
        view.source = state.store.source_meta(&id).await?.map(SourceView::from);
    }
    Ok((StatusCode::CREATED, ExactJson(view)))
}

#[derive(Serialize, ToSchema)]
pub struct ValidationView {
    /// Always true: an invalid body is a 422 that names each problem.
    pub valid: bool,
}

/// Check a connection as `POST …/connections` would, saving nothing and calling nothing:
/// the same rules, the same 422 with a JSON pointer per problem, 409 when the slug is
/// taken (workspace admins). The web UI checks a form with it as the user types.
#[utoipa::path(post, path = "/api/workspaces/{ws}/connections/validate", params(("ws" = String, Path)), request_body = ConnectionBody,
    responses((status = 200, body = ValidationView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn validate_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    mut body: Body,
) -> Result<Json<ValidationView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("create connections")?;
    let input: ConnectionInput = body.connection_json(&state).await?;
    let (draft, secrets) = ConnectionDraft::parse(input)?;
    check_service_account(&secrets)?;
    drop(secrets);
    check_role_exists(&state, &access.workspace.id, &draft).await?;
    if state
        .store
        .connection_head(&access.workspace.id, draft.slug.as_str())
        .await?
        .is_some()
    {
        return Err(slug_taken(draft.slug.as_str())(StoreError::Conflict { what: "slug" }));
    }
    Ok(Json(ValidationView { valid: true }))
}

/// Read one connection with its operations (any member).
#[utoipa::path(get, path = "/api/workspaces/{ws}/connections/{slug}", params(("ws" = String, Path), ("slug" = String, Path)),
    responses((status = 200, body = ConnectionView), (status = 404, body = Problem)))]
pub async fn get_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, slug)): Path<(String, String)>,
) -> Result<ExactJson<ConnectionView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let _turn = if state.store.operation_total(&access.workspace.id, Some(&slug)).await? > super::HEAVY_OPERATIONS {
        Some(state.heavy_turn().await?)
    } else {
        None
    };
    let rec = state
        .store
        .get_connection(&access.workspace.id, &slug)
        .await?
        .ok_or_else(|| connection_not_found(&slug))?;
    let meta = state.store.source_meta(&rec.id).await?;
    let slug = rec.draft.slug.to_string();
    let mut view = ConnectionView::new(rec, true);
    view.source = meta.map(SourceView::from);
    view.used_by = super::workflows::used_by_all(&state, &access.workspace.id)
        .await?
        .remove(&slug)
        .unwrap_or_default();
    Ok(ExactJson(view))
}

/// The document an openapi connection was imported from, as it was imported (any member).
#[utoipa::path(get, path = "/api/workspaces/{ws}/connections/{slug}/source", params(("ws" = String, Path), ("slug" = String, Path)),
    responses((status = 200, description = "The document as imported: JSON (`application/json`) or YAML (`application/yaml`)",
        content((serde_json::Value = "application/json"), (serde_json::Value = "application/yaml"))),
        (status = 404, body = Problem)))]
pub async fn get_connection_source(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, slug)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let rec = state
        .store
        .connection_head(&access.workspace.id, &slug)
        .await?
        .ok_or_else(|| connection_not_found(&slug))?;
    let source = state
        .store
        .source_document(&rec.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("connection `{}` has no source document", short(&slug))))?;
    let media = if source.document.trim_start().starts_with(['{', '[']) {
        "application/json"
    } else {
        "application/yaml"
    };
    Ok(([(header::CONTENT_TYPE, media)], source.document).into_response())
}

/// Edit a connection (workspace admins). Fields left out stay as they are; a secret field
/// left out or blank keeps the stored value; `operations`, when given, replaces the list.
#[utoipa::path(patch, path = "/api/workspaces/{ws}/connections/{slug}", params(("ws" = String, Path), ("slug" = String, Path), ForceQuery),
    request_body = ConnectionPatchBody,
    responses((status = 200, body = ConnectionView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The slug is taken, or a new slug would break agents or deployed workflows using the connection (`in_use`, with `used_by`)"),
        (status = 422, body = Problem)))]
pub async fn patch_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, slug)): Path<(String, String)>,
    Query(force): Query<ForceQuery>,
    mut body: Body,
) -> Result<ExactJson<ConnectionView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("edit connections")?;
    let rec = state
        .store
        .get_connection(&access.workspace.id, &slug)
        .await?
        .ok_or_else(|| connection_not_found(&slug))?;
    let patch: ConnectionPatch = body.connection_json(&state).await?;
    let stored: BTreeSet<String> = match rec.auth_sealed {
        Some(_) => rec
            .draft
            .auth_type
            .secret_fields()
            .iter()
            .map(|f| (*f).to_owned())
            .collect(),
        None => BTreeSet::new(),
    };
    let origin = |u: &str| url::Url::parse(u).map(|u| u.origin().ascii_serialization()).ok();
    let old_origin = origin(&rec.draft.base_url);
    let (draft, change, ops_changed) = rec.draft.apply_patch(patch, &stored)?;
    if draft.slug != rec.draft.slug {
        super::workflows::guard_in_use(
            &state,
            &access.workspace.id,
            rec.draft.slug.as_str(),
            "renaming",
            force.force.unwrap_or(false),
        )
        .await?;
    }
    if draft.participant_role != rec.draft.participant_role {
        check_role_exists(&state, &access.workspace.id, &draft).await?;
    }
    if let SecretsChange::Replace(s) | SecretsChange::Merge(s) = &change {
        check_service_account(s)?;
    }
    // stored credentials follow a connection to another host only when given again: an
    // admin cannot point someone else's key at a server of their own
    let given_again = match &change {
        SecretsChange::Replace(_) => true,
        SecretsChange::Merge(new) => draft.auth_type.secret_fields().iter().all(|f| new.get(f).is_some()),
        SecretsChange::Keep => false,
    };
    if rec.auth_sealed.is_some() && !given_again && origin(&draft.base_url) != old_origin {
        return Err(chatterfly_domain::FieldErrors::single(
            "/auth",
            "`base_url` moves the connection to another host: give its credentials again in `auth` (the stored ones are only sent where they were given for)",
        )
        .into());
    }
    let sealed = match change {
        SecretsChange::Keep => None,
        SecretsChange::Replace(secrets) => Some(seal(&state, &rec.id, &secrets)?),
        SecretsChange::Merge(new) => {
            let aad = aad::connection_auth(&rec.id);
            let old = match &rec.auth_sealed {
                Some(s) => state.keys.open_string(s, &aad)?,
                None => return Err(ApiError::Internal("merge without stored secrets".into())),
            };
            let mut merged =
                SecretFields::from_sealed_json(old.expose_secret()).map_err(|e| ApiError::Internal(e.to_owned()))?;
            merged.0.extend(new.0);
            Some(seal(&state, &rec.id, &merged)?)
        }
    };
    let update = match &sealed {
        None => SealedUpdate::Keep,
        Some(v) => SealedUpdate::Set(v.as_deref()),
    };
    let updated_at = state
        .store
        .update_connection(&rec.id, &access.workspace.id, &draft, update, ops_changed)
        .await
        .map_err(slug_taken(draft.slug.as_str()))?;
    // people's own keys are only sent where they were given for: a new host or auth type
    // drops them
    if origin(&draft.base_url) != old_origin || draft.auth_type != rec.draft.auth_type {
        let dropped = state.store.delete_personal_credentials_of(&rec.id).await?;
        if dropped > 0 {
            tracing::info!(connection = %draft.slug, dropped, "personal keys dropped: the connection moved");
        }
    }
    // participants gave theirs for this host, auth type and role
    if origin(&draft.base_url) != old_origin
        || draft.auth_type != rec.draft.auth_type
        || draft.participant_role != rec.draft.participant_role
        || draft.fulfillment != rec.draft.fulfillment
    {
        let dropped = state.store.delete_participant_credentials_of(&rec.id).await?;
        if dropped > 0 {
            tracing::info!(connection = %draft.slug, dropped, "participants' credentials dropped: the connection changed");
        }
    }
    tracing::info!(workspace = %access.workspace.slug, connection = %draft.slug, "connection updated");
    // The response is what was just written; no second read of every operation.
    let rec = ConnectionRecord {
        operation_count: i64::try_from(draft.operations.len()).unwrap_or(i64::MAX),
        auth_sealed: match sealed {
            None => rec.auth_sealed,
            Some(v) => v,
        },
        draft,
        updated_at,
        ..rec
    };
    let meta = state.store.source_meta(&rec.id).await?;
    let slug = rec.draft.slug.to_string();
    let mut view = ConnectionView::new(rec, true);
    view.source = meta.map(SourceView::from);
    view.used_by = super::workflows::used_by_all(&state, &access.workspace.id)
        .await?
        .remove(&slug)
        .unwrap_or_default();
    Ok(ExactJson(view))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForceQuery {
    /// Rename or delete even though agents or deployed workflows use the connection (they
    /// fail at the nodes calling it until updated).
    pub force: Option<bool>,
}

/// Delete a connection (workspace admins). Its tools stop resolving at once. Refused while
/// agents or deployed workflows use it, unless `?force=true`.
#[utoipa::path(delete, path = "/api/workspaces/{ws}/connections/{slug}", params(("ws" = String, Path), ("slug" = String, Path), ForceQuery),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Agents or deployed workflows use it (`in_use`, with `used_by`)")))]
pub async fn delete_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, slug)): Path<(String, String)>,
    Query(force): Query<ForceQuery>,
) -> Result<StatusCode, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("delete connections")?;
    if state
        .store
        .connection_head(&access.workspace.id, &slug)
        .await?
        .is_some()
    {
        super::workflows::guard_in_use(
            &state,
            &access.workspace.id,
            &slug,
            "deleting",
            force.force.unwrap_or(false),
        )
        .await?;
    }
    state
        .store
        .delete_connection(&access.workspace.id, &slug)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => connection_not_found(&slug),
            other => other.into(),
        })?;
    tracing::info!(workspace = %access.workspace.slug, connection = %short(&slug), "connection deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelegramCheckBody {
    /// The Bot API server (`https://api.telegram.org` unless given).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The bot token from @BotFather (`<bot id>:<secret>`); never stored by this check.
    pub token: String,
}

#[derive(Serialize, ToSchema)]
pub struct TelegramCheckView {
    /// The bot as Telegram describes it (`getMe`): `id`, `first_name`, `username`, …
    #[schema(value_type = Object)]
    pub bot: Value,
}

/// Check a bot token before saving a Telegram connection (workspace admins): calls
/// `getMe` and answers with the bot's name; saves nothing. A token Telegram refuses is
/// 422 `invalid_credentials`.
#[utoipa::path(post, path = "/api/workspaces/{ws}/connections/telegram-check", params(("ws" = String, Path)),
    request_body = TelegramCheckBody,
    responses((status = 200, body = TelegramCheckView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem), (status = 502, body = Problem), (status = 504, body = Problem)))]
pub async fn check_telegram(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    mut body: Body,
) -> Result<Json<TelegramCheckView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("check bot tokens")?;
    let req: TelegramCheckBody = body.json(&state).await?;
    // the same rules as a Telegram connection's
    let probe = serde_json::json!({
        "name": "check", "slug": "check", "service_type": "telegram",
        "base_url": req.base_url,
        "auth": {"type": "bot_token", "token": req.token},
    });
    let input: ConnectionInput =
        serde_json::from_value(probe).map_err(|e| ApiError::Internal(format!("telegram check: {e}")))?;
    // the same rules, reported at this request's own fields
    let (draft, secrets) = ConnectionDraft::parse(input).map_err(|e| {
        let mut out = chatterfly_domain::FieldErrors::new();
        for f in e.0 {
            let pointer = match f.pointer.as_str() {
                "/auth/token" => "/token".to_owned(),
                other => other.to_owned(),
            };
            out.push(pointer, f.detail);
        }
        ApiError::Validation(out)
    })?;
    let token = secrets
        .get("token")
        .ok_or_else(|| chatterfly_domain::FieldErrors::single("/token", "give the bot token"))?;
    let bot = state.tools.telegram_check(&draft.base_url, token).await?;
    Ok(Json(TelegramCheckView { bot }))
}
