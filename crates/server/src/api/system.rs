//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::error::ApiError;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the server and its database answer.
    pub status: String,
}

/// Health: answers 200 when the database does. No authentication.
#[utoipa::path(get, path = "/api/health", security(()), responses((status = 200, body = Health)))]
pub async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store.ping().await?;
    Ok(Json(Health { status: "ok".into() }))
}
