//! Service credentials (platform and workspace API keys) and the OAuth client registry.
//! Keys and client secrets arrive sealed; ids are the rows' identities ('<scope>:<service>'
//! and the provider name), which the sealed values are bound to (see [`crate::aad`]).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, StoreError, now};

/// The scope of platform-wide keys.
pub const PLATFORM: &str = "platform";

/// A stored service key (sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCredential {
    pub id: String,
    pub scope: String,
    pub service: String,
    /// `None` on a platform row that only sets the base URL.
    pub api_key_sealed: Option<String>,
    pub base_url: Option<String>,
    pub updated_at: String,
}

impl ServiceCredential {
    pub fn has_key(&self) -> bool {
        self.api_key_sealed.is_some()
    }
}

/// A registered OAuth client (secret sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub id: String,
    pub client_id: String,
    pub client_secret_sealed: String,
    pub updated_at: String,
    pub endpoints: EndpointOverrides,
}

/// A registry entry's own endpoints, each `None` for the provider's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOverrides {
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub revoke_url: Option<String>,
    pub api_base_url: Option<String>,
}

/// The row id (and sealing identity) of a service key.
pub fn service_credential_id(scope: &str, service: &str) -> String {
    format!("{scope}:{service}")
}

fn credential(row: &AnyRow) -> Result<ServiceCredential> {
    Ok(ServiceCredential {
        id: row.try_get(0)?,
        scope: row.try_get(1)?,
        service: row.try_get(2)?,
        api_key_sealed: row.try_get(3)?,
        base_url: row.try_get(4)?,
        updated_at: row.try_get(5)?,
    })
}

fn client(row: &AnyRow) -> Result<OAuthClient> {
    Ok(OAuthClient {
        id: row.try_get(0)?,
        client_id: row.try_get(1)?,
        client_secret_sealed: row.try_get(2)?,
        endpoints: EndpointOverrides {
            authorize_url: row.try_get(4)?,
            token_url: row.try_get(5)?,
            revoke_url: row.try_get(6)?,
            api_base_url: row.try_get(7)?,
        },
        updated_at: row.try_get(3)?,
    })
}

impl Store {
    /// Every key of a scope (`PLATFORM` or a workspace id).
    pub async fn service_credentials(&self, scope: &str) -> Result<Vec<ServiceCredential>> {
        let rows = sqlx::query(
            "SELECT id, scope, service, api_key_sealed, base_url, updated_at FROM service_credentials \
             WHERE scope = $1 ORDER BY service",
        )
        .bind(scope)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credential).collect()
    }

    pub async fn service_credential(&self, scope: &str, service: &str) -> Result<Option<ServiceCredential>> {
        let row = sqlx::query(
            "SELECT id, scope, service, api_key_sealed, base_url, updated_at FROM service_credentials WHERE id = $1",
        )
        .bind(service_credential_id(scope, service))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(credential).transpose()
    }

    /// The workspace's key and the platform's key of a service, in one query.
    pub async fn service_credentials_for(
        &self,
        workspace_id: &str,
        service: &str,
    ) -> Result<(Option<ServiceCredential>, Option<ServiceCredential>)> {
        let rows = sqlx::query(
            "SELECT id, scope, service, api_key_sealed, base_url, updated_at FROM service_credentials \
             WHERE id IN ($1, $2)",
        )
        .bind(service_credential_id(workspace_id, service))
        .bind(service_credential_id(PLATFORM, service))
        .fetch_all(&self.pool)
        .await?;
        let mut ws = None;
        let mut platform = None;
        for r in &rows {
            let c = credential(r)?;
            if c.scope == PLATFORM {
                platform = Some(c);
            } else {
                ws = Some(c);
            }
        }
        Ok((ws, platform))
    }

    /// Creates or replaces a key; `api_key_sealed` must be sealed with the row's identity.
    pub async fn put_service_credential(
        &self,
        scope: &str,
        service: &str,
        api_key_sealed: Option<&str>,
        base_url: Option<&str>,
    ) -> Result<ServiceCredential> {
        let id = service_credential_id(scope, service);
        let at = now();
        sqlx::query(
            "INSERT INTO service_credentials (id, scope, service, api_key_sealed, base_url, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
             api_key_sealed = excluded.api_key_sealed, base_url = excluded.base_url, updated_at = excluded.updated_at",
        )
        .bind(&id)
        .bind(scope)
        .bind(service)
        .bind(api_key_sealed)
        .bind(base_url)
        .bind(&at)
        .execute(&self.writer)
        .await?;
        Ok(ServiceCredential {
            id,
            scope: scope.to_owned(),
            service: service.to_owned(),
            api_key_sealed: api_key_sealed.map(str::to_owned),
            base_url: base_url.map(str::to_owned),
            updated_at: at,
        })
    }

    /// Deletes a key; `NotFound` when there is none.
    pub async fn delete_service_credential(&self, scope: &str, service: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM service_credentials WHERE id = $1")
            .bind(service_credential_id(scope, service))
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn oauth_client(&self, provider: &str) -> Result<Option<OAuthClient>> {
        let row = sqlx::query(
            "SELECT id, client_id, client_secret_sealed, updated_at, authorize_url, token_url, revoke_url, \
                 api_base_url FROM oauth_providers WHERE id = $1",
        )
        .bind(provider)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(client).transpose()
    }

    /// Creates or replaces a provider's client; the secret is sealed with the provider id.
    pub async fn put_oauth_client(
        &self,
        provider: &str,
        client_id: &str,
        secret_sealed: &str,
        endpoints: &EndpointOverrides,
    ) -> Result<OAuthClient> {
        let at = now();
        sqlx::query(
            "INSERT INTO oauth_providers (id, client_id, client_secret_sealed, updated_at, authorize_url, token_url, \
             revoke_url, api_base_url) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id, \
             client_secret_sealed = excluded.client_secret_sealed, updated_at = excluded.updated_at, \
             authorize_url = excluded.authorize_url, token_url = excluded.token_url, \
             revoke_url = excluded.revoke_url, api_base_url = excluded.api_base_url",
        )
        .bind(provider)
        .bind(client_id)
        .bind(secret_sealed)
        .bind(&at)
        .bind(&endpoints.authorize_url)
        .bind(&endpoints.token_url)
        .bind(&endpoints.revoke_url)
        .bind(&endpoints.api_base_url)
        .execute(&self.writer)
        .await?;
        Ok(OAuthClient {
            id: provider.to_owned(),
            client_id: client_id.to_owned(),
            client_secret_sealed: secret_sealed.to_owned(),
            updated_at: at,
            endpoints: endpoints.clone(),
        })
    }

    pub async fn delete_oauth_client(&self, provider: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM oauth_providers WHERE id = $1")
            .bind(provider)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
