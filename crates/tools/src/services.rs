//! Service keys and OAuth clients: the one place every use resolves them.
//!
//! A service key is the workspace's own (when the service is tenant-overridable and the
//! workspace saved one), else the platform's, else `not_configured`, whose message names the
//! service and where an admin adds a key. No environment variable is ever read for these.
//! An OAuth client comes from the admin registry, else from `CONNECT_<ID>_CLIENT_ID` /
//! `CONNECT_<ID>_CLIENT_SECRET`, else `not_configured`. Both are read through the store on
//! every use, so a change takes effect at once on every replica.

use chatterfly_domain::{OAuthProvider, Service};
use chatterfly_store::{PLATFORM, ServiceCredential, Store, aad};
use chatterfly_vault::{KeyRing, Secret};

use crate::ToolError;

/// Where a key in effect comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Workspace,
    Platform,
}

impl KeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workspace => "workspace",
            Self::Platform => "platform",
        }
    }
}

/// A resolved service key.
pub struct ServiceKey {
    pub key: Secret,
    /// The platform's base URL setting for the service (for compatible endpoints, proxies
    /// and tests), whichever key is in effect.
    pub base_url: Option<String>,
    pub source: KeySource,
}

/// Which key is in effect, without opening it (for settings views).
pub fn effective(
    service: Service,
    workspace: Option<&ServiceCredential>,
    platform: Option<&ServiceCredential>,
) -> Option<KeySource> {
    let ws_key = service.overridable() && workspace.is_some_and(ServiceCredential::has_key);
    match (ws_key, platform.is_some_and(ServiceCredential::has_key)) {
        (true, _) => Some(KeySource::Workspace),
        (false, true) => Some(KeySource::Platform),
        (false, false) => None,
    }
}

fn not_configured(service: Service, workspace_slug: Option<&str>) -> ToolError {
    let platform = format!(
        "a platform admin can add one under Platform Admin → Service Credentials (PUT /api/admin/service-credentials/{service})"
    );
    let msg = match (service.overridable(), workspace_slug) {
        (true, Some(ws)) => format!(
            "no API key is configured for `{service}`: a workspace admin can add one under Settings → Workspace → AI & Services \
             (PUT /api/workspaces/{ws}/services/{service}), or {platform}"
        ),
        _ => format!("no API key is configured for `{service}`: {platform}"),
    };
    ToolError::NotConfigured(msg)
}

/// Resolves the key of `service` for a workspace (or for the platform alone).
pub async fn service_key(
    store: &Store,
    keys: &KeyRing,
    workspace: Option<(&str, &str)>,
    service: Service,
) -> Result<ServiceKey, ToolError> {
    let (ws_row, platform_row) = match workspace {
        Some((ws_id, _)) => store.service_credentials_for(ws_id, service.as_str()).await?,
        None => (None, store.service_credential(PLATFORM, service.as_str()).await?),
    };
    let source = effective(service, ws_row.as_ref(), platform_row.as_ref())
        .ok_or_else(|| not_configured(service, workspace.map(|(_, slug)| slug)))?;
    let row = match source {
        KeySource::Workspace => ws_row.as_ref(),
        KeySource::Platform => platform_row.as_ref(),
    }
    .ok_or_else(|| ToolError::Internal("resolved key vanished".into()))?;
    let sealed = row
        .api_key_sealed
        .as_deref()
        .ok_or_else(|| ToolError::Internal("resolved key vanished".into()))?;
    let key = keys
        .open_string(sealed, &aad::service_credential(&row.id))
        .map_err(|e| ToolError::Internal(format!("service key {}: {e}", row.id)))?;
    Ok(ServiceKey {
        key,
        base_url: platform_row.and_then(|p| p.base_url),
        source,
    })
}

/// Where OAuth client credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSource {
    Registry,
    Environment,
}

impl ClientSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registry => "registry",
            Self::Environment => "environment",
        }
    }
}

/// Resolved OAuth client credentials.
pub struct OAuthClientCredentials {
    pub client_id: String,
    pub client_secret: Secret,
    pub source: ClientSource,
    /// The registry entry's endpoint overrides (none for a client from the environment).
    pub endpoints: chatterfly_store::EndpointOverrides,
}

/// The environment's client id and secret for a provider, when both are set.
pub fn env_client(provider: OAuthProvider) -> Option<(String, Secret)> {
    let (id_var, secret_var) = provider.env_names();
    let id = std::env::var(id_var).ok().filter(|v| !v.trim().is_empty())?;
    let secret = std::env::var(secret_var).ok().filter(|v| !v.trim().is_empty())?;
    Some((id.trim().to_owned(), Secret::from(secret.trim().to_owned())))
}

/// Admin registry → environment → `not_configured`. Never the platform's login credentials.
pub async fn oauth_client(
    store: &Store,
    keys: &KeyRing,
    provider: OAuthProvider,
) -> Result<OAuthClientCredentials, ToolError> {
    if let Some(row) = store.oauth_client(provider.as_str()).await? {
        let secret = keys
            .open_string(&row.client_secret_sealed, &aad::oauth_client(&row.id))
            .map_err(|e| ToolError::Internal(format!("oauth client {}: {e}", row.id)))?;
        return Ok(OAuthClientCredentials {
            client_id: row.client_id,
            client_secret: secret,
            source: ClientSource::Registry,
            endpoints: row.endpoints,
        });
    }
    if let Some((client_id, client_secret)) = env_client(provider) {
        return Ok(OAuthClientCredentials {
            client_id,
            client_secret,
            source: ClientSource::Environment,
            endpoints: chatterfly_store::EndpointOverrides::default(),
        });
    }
    let (id_var, secret_var) = provider.env_names();
    Err(ToolError::NotConfigured(format!(
        "no OAuth client is configured for `{provider}`: a platform admin can register one under Platform Admin → OAuth Providers \
         (PUT /api/admin/oauth-providers/{provider}), or set {id_var} and {secret_var}"
    )))
}
