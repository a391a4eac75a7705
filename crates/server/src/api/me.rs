//! `GET /api/me`: the caller, its workspaces and roles.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::workspaces::WorkspaceView;
use crate::error::{ApiError, Problem};
use crate::extract::Caller;

#[derive(Serialize, ToSchema)]
pub struct MeView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    pub workspaces: Vec<WorkspaceView>,
}

/// The authenticated caller.
#[utoipa::path(get, path = "/api/me", responses((status = 200, body = MeView), (status = 401, body = Problem)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<MeView>, ApiError> {
    Ok(Json(me_view(&state, caller.user).await?))
}

/// A user with their workspaces and roles.
pub async fn me_view(state: &AppState, u: chatterfly_store::User) -> Result<MeView, ApiError> {
    let memberships = state.store.memberships_of(&u.id).await?;
    Ok(MeView {
        id: u.id,
        email: u.email,
        name: u.name,
        platform_admin: u.platform_admin,
        workspaces: memberships
            .into_iter()
            .map(|m| WorkspaceView::new(m.workspace, Some(m.role)))
            .collect(),
    })
}
