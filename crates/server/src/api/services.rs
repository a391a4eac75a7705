//! Service credentials: platform keys (platform admins), workspace keys (workspace admins),
//! and the OAuth client registry (platform admins). Keys and secrets are write-only: a
//! response says whether one is set, never what it is; a blank or missing key on update
//! keeps the stored one.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chatterfly_domain::{FieldErrors, OAuthProvider, Service, check_http_url};
use chatterfly_store::{PLATFORM, StoreError, aad, service_credential_id};
use chatterfly_tools::services::{effective, env_client};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::access::{WorkspaceAccess, require_platform_admin, short};
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Caller, Path};

fn service(name: &str) -> Result<Service, ApiError> {
    name.parse().map_err(|e: String| ApiError::NotFound(e))
}

fn provider(name: &str) -> Result<OAuthProvider, ApiError> {
    name.parse().map_err(|e: String| ApiError::NotFound(e))
}

/// A non-blank secret, or `None` (keep what is stored). Never echoed in errors.
fn secret_input(v: Option<String>, field: &str) -> Result<Option<String>, ApiError> {
    match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if s.len() > 16 * 1024 || s.chars().any(char::is_control) => Err(FieldErrors::single(
            format!("/{field}"),
            format!("`{field}` must be at most 16 KiB without control characters"),
        )
        .into()),
        Some(s) => Ok(Some(s)),
    }
}

#[derive(Serialize, ToSchema)]
pub struct PlatformServiceView {
    pub service: String,
    /// `llm_provider`, `search` or `messaging`.
    pub kind: String,
    pub overridable: bool,
    pub api_key_set: bool,
    pub base_url: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPlatformService {
    /// Write-only; blank or missing keeps the stored key.
    #[serde(default)]
    pub api_key: Option<String>,
    /// For compatible endpoints, proxies and tests; null or blank clears it.
    #[serde(default)]
    pub base_url: Option<String>,
}

async fn platform_view(state: &AppState, s: Service) -> Result<PlatformServiceView, ApiError> {
    let row = state.store.service_credential(PLATFORM, s.as_str()).await?;
    Ok(PlatformServiceView {
        service: s.as_str().into(),
        kind: s.kind().into(),
        overridable: s.overridable(),
        api_key_set: row.as_ref().is_some_and(|r| r.has_key()),
        base_url: row.as_ref().and_then(|r| r.base_url.clone()),
        updated_at: row.map(|r| r.updated_at),
    })
}

/// A platform service key's settings (platform admins).
#[utoipa::path(get, path = "/api/admin/service-credentials/{service}", params(("service" = String, Path)),
    responses((status = 200, body = PlatformServiceView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_platform_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<PlatformServiceView>, ApiError> {
    require_platform_admin(&caller.user, "manage platform service credentials")?;
    Ok(Json(platform_view(&state, service(&name)?).await?))
}

/// Set a platform service key and base URL (platform admins).
#[utoipa::path(put, path = "/api/admin/service-credentials/{service}", params(("service" = String, Path)),
    request_body = PutPlatformService,
    responses((status = 200, body = PlatformServiceView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_platform_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    mut body: Body,
) -> Result<Json<PlatformServiceView>, ApiError> {
    require_platform_admin(&caller.user, "manage platform service credentials")?;
    let body: PutPlatformService = body.json(&state).await?;
    let s = service(&name)?;
    let base_url = match body.base_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => Some(check_http_url(u).map_err(|e| FieldErrors::single("/base_url", e))?),
        None => None,
    };
    put_key(
        &state,
        PLATFORM,
        s,
        secret_input(body.api_key, "api_key")?,
        base_url.as_deref(),
    )
    .await?;
    Ok(Json(platform_view(&state, s).await?))
}

/// Seals and stores a key, or keeps the stored one when none is given. A platform row may
/// hold only a base URL; a workspace row always holds a key.
async fn put_key(
    state: &AppState,
    scope: &str,
    s: Service,
    key: Option<String>,
    base_url: Option<&str>,
) -> Result<(), ApiError> {
    let sealed = match key {
        Some(k) => Some(state.keys.seal(
            k.as_bytes(),
            &aad::service_credential(&service_credential_id(scope, s.as_str())),
        )?),
        None => state
            .store
            .service_credential(scope, s.as_str())
            .await?
            .and_then(|row| row.api_key_sealed),
    };
    if sealed.is_none() && (scope != PLATFORM || base_url.is_none()) {
        return Err(FieldErrors::single(
            "/api_key",
            format!("`api_key` is required: no key is stored for `{s}` yet"),
        )
        .into());
    }
    state
        .store
        .put_service_credential(scope, s.as_str(), sealed.as_deref(), base_url)
        .await?;
    tracing::info!(scope = if scope == PLATFORM { "platform" } else { "workspace" }, service = %s, "service key saved");
    Ok(())
}

fn removed(e: StoreError, what: String) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound(what),
        other => other.into(),
    }
}

/// Remove a platform service key (platform admins).
#[utoipa::path(delete, path = "/api/admin/service-credentials/{service}", params(("service" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_platform_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_platform_admin(&caller.user, "manage platform service credentials")?;
    let s = service(&name)?;
    state
        .store
        .delete_service_credential(PLATFORM, s.as_str())
        .await
        .map_err(|e| removed(e, format!("no platform key is set for `{s}`")))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceServiceView {
    pub service: String,
    pub kind: String,
    pub overridable: bool,
    pub workspace_key_set: bool,
    pub platform_key_set: bool,
    /// `workspace`, `platform`, or null when no key is configured.
    pub in_effect: Option<String>,
}

async fn workspace_views(state: &AppState, ws_id: &str) -> Result<Vec<WorkspaceServiceView>, ApiError> {
    let mine = state.store.service_credentials(ws_id).await?;
    let platform = state.store.service_credentials(PLATFORM).await?;
    Ok(Service::ALL
        .into_iter()
        .map(|s| {
            let w = mine.iter().find(|r| r.service == s.as_str());
            let p = platform.iter().find(|r| r.service == s.as_str());
            WorkspaceServiceView {
                service: s.as_str().into(),
                kind: s.kind().into(),
                overridable: s.overridable(),
                workspace_key_set: s.overridable() && w.is_some_and(|r| r.has_key()),
                platform_key_set: p.is_some_and(|r| r.has_key()),
                in_effect: effective(s, w, p).map(|k| k.as_str().to_owned()),
            }
        })
        .collect())
}

/// Every service, which key is in effect for this workspace, never a key (any member).
#[utoipa::path(get, path = "/api/workspaces/{ws}/services", params(("ws" = String, Path)),
    responses((status = 200, body = Vec<WorkspaceServiceView>), (status = 404, body = Problem)))]
pub async fn list_workspace_services(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> Result<Json<Vec<WorkspaceServiceView>>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    Ok(Json(workspace_views(&state, &access.workspace.id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutWorkspaceService {
    /// Write-only; blank or missing keeps the stored key.
    #[serde(default)]
    pub api_key: Option<String>,
}

/// Bring the workspace's own key for a tenant-overridable service (workspace admins).
#[utoipa::path(put, path = "/api/workspaces/{ws}/services/{service}", params(("ws" = String, Path), ("service" = String, Path)),
    request_body = PutWorkspaceService,
    responses((status = 200, body = WorkspaceServiceView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_workspace_service(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, name)): Path<(String, String)>,
    mut body: Body,
) -> Result<Json<WorkspaceServiceView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("manage workspace service keys")?;
    let body: PutWorkspaceService = body.json(&state).await?;
    let s = service(&name)?;
    if !s.overridable() {
        return Err(ApiError::Coded {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "not_overridable",
            detail: format!("`{s}` uses the platform's key only; workspaces cannot bring their own"),
        });
    }
    put_key(
        &state,
        &access.workspace.id,
        s,
        secret_input(body.api_key, "api_key")?,
        None,
    )
    .await?;
    let views = workspace_views(&state, &access.workspace.id).await?;
    views
        .into_iter()
        .find(|v| v.service == s.as_str())
        .map(Json)
        .ok_or_else(|| ApiError::Internal("service view missing".into()))
}

/// Remove the workspace's own key: the platform key applies again (workspace admins).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/services/{service}", params(("ws" = String, Path), ("service" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_workspace_service(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("manage workspace service keys")?;
    let s = service(&name)?;
    state
        .store
        .delete_service_credential(&access.workspace.id, s.as_str())
        .await
        .map_err(|e| removed(e, format!("this workspace has no key of its own for `{s}`")))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct OAuthProviderView {
    pub id: String,
    /// The client id in effect (not a secret), if any.
    pub client_id: Option<String>,
    pub client_secret_set: bool,
    /// `registry`, `environment`, or null when not configured.
    pub source: Option<String>,
    /// Register this with the provider: `<APP_URL>/api/auth/connect/<provider>/callback`.
    pub redirect_uri: String,
    pub updated_at: Option<String>,
    /// The registry's endpoint overrides (null: the provider's own).
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub revoke_url: Option<String>,
    pub api_base_url: Option<String>,
    /// The provider's own endpoints.
    pub defaults: EndpointsView,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointsView {
    pub authorize_url: String,
    pub token_url: String,
    /// None for GitHub, whose grants are revoked through its API.
    pub revoke_url: Option<String>,
    pub api_base_url: String,
}

async fn provider_view(state: &AppState, p: OAuthProvider) -> Result<OAuthProviderView, ApiError> {
    let row = state.store.oauth_client(p.as_str()).await?;
    let redirect_uri = chatterfly_tools::accounts::redirect_uri(&state.app_url, p);
    let d = p.default_endpoints();
    let defaults = EndpointsView {
        authorize_url: d.authorize_url.into(),
        token_url: d.token_url.into(),
        revoke_url: d.revoke_url.map(str::to_owned),
        api_base_url: d.api_base_url.into(),
    };
    Ok(match row {
        Some(r) => OAuthProviderView {
            id: p.as_str().into(),
            client_id: Some(r.client_id),
            client_secret_set: true,
            source: Some("registry".into()),
            redirect_uri,
            updated_at: Some(r.updated_at),
            authorize_url: r.endpoints.authorize_url,
            token_url: r.endpoints.token_url,
            revoke_url: r.endpoints.revoke_url,
            api_base_url: r.endpoints.api_base_url,
            defaults,
        },
        None => {
            let env = env_client(p);
            OAuthProviderView {
                id: p.as_str().into(),
                client_secret_set: env.is_some(),
                source: env.is_some().then(|| "environment".to_owned()),
                client_id: env.map(|(id, _)| id),
                redirect_uri,
                updated_at: None,
                authorize_url: None,
                token_url: None,
                revoke_url: None,
                api_base_url: None,
                defaults,
            }
        }
    })
}

/// An OAuth provider's client settings (platform admins).
#[utoipa::path(get, path = "/api/admin/oauth-providers/{id}", params(("id" = String, Path)),
    responses((status = 200, body = OAuthProviderView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_oauth_provider(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OAuthProviderView>, ApiError> {
    require_platform_admin(&caller.user, "manage OAuth providers")?;
    Ok(Json(provider_view(&state, provider(&id)?).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutOAuthProvider {
    pub client_id: String,
    /// Write-only; blank or missing keeps the stored secret.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Endpoint overrides for compatible servers (GitHub Enterprise) and tests; missing or
    /// blank: the provider's own. Each is an outbound target like any other (SSRF).
    #[serde(default)]
    pub authorize_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub revoke_url: Option<String>,
    #[serde(default)]
    pub api_base_url: Option<String>,
}

fn endpoint_input(v: Option<String>, field: &str, errors: &mut FieldErrors) -> Option<String> {
    let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())?;
    match check_http_url(&v) {
        Ok(normalized) => Some(normalized),
        Err(e) => {
            errors.push(format!("/{field}"), e);
            None
        }
    }
}

/// Register an OAuth client (platform admins); takes effect on the next use, everywhere.
#[utoipa::path(put, path = "/api/admin/oauth-providers/{id}", params(("id" = String, Path)), request_body = PutOAuthProvider,
    responses((status = 200, body = OAuthProviderView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_oauth_provider(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    mut body: Body,
) -> Result<Json<OAuthProviderView>, ApiError> {
    require_platform_admin(&caller.user, "manage OAuth providers")?;
    let body: PutOAuthProvider = body.json(&state).await?;
    let p = provider(&id)?;
    let client_id = body.client_id.trim();
    if client_id.is_empty()
        || client_id.len() > 512
        || client_id
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || chatterfly_domain::connection::is_invisible_format(c))
    {
        return Err(FieldErrors::single("/client_id", "`client_id` must be 1 to 512 characters without spaces").into());
    }
    let sealed = match secret_input(body.client_secret, "client_secret")? {
        Some(secret) => state.keys.seal(secret.as_bytes(), &aad::oauth_client(p.as_str()))?,
        None => match state.store.oauth_client(p.as_str()).await? {
            Some(row) => row.client_secret_sealed,
            None => {
                return Err(
                    FieldErrors::single("/client_secret", "`client_secret` is required: none is stored yet").into(),
                );
            }
        },
    };
    let mut errors = FieldErrors::new();
    let endpoints = chatterfly_store::EndpointOverrides {
        authorize_url: endpoint_input(body.authorize_url, "authorize_url", &mut errors),
        token_url: endpoint_input(body.token_url, "token_url", &mut errors),
        revoke_url: endpoint_input(body.revoke_url, "revoke_url", &mut errors),
        api_base_url: endpoint_input(body.api_base_url, "api_base_url", &mut errors),
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    state
        .store
        .put_oauth_client(p.as_str(), client_id, &sealed, &endpoints)
        .await?;
    tracing::info!(provider = %p.as_str(), "OAuth client saved");
    Ok(Json(provider_view(&state, p).await?))
}

/// Remove a registered OAuth client (platform admins); the environment applies again.
#[utoipa::path(delete, path = "/api/admin/oauth-providers/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_oauth_provider(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_platform_admin(&caller.user, "manage OAuth providers")?;
    let p = provider(&id)?;
    state
        .store
        .delete_oauth_client(p.as_str())
        .await
        .map_err(|e| removed(e, format!("no OAuth client is registered for `{}`", short(p.as_str()))))?;
    Ok(StatusCode::NO_CONTENT)
}
