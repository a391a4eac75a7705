//! Workspaces and their members.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chatterfly_domain::{FieldErrors, WorkspaceRole, WorkspaceSlug};
use chatterfly_store::{StoreError, Workspace};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::access::{WorkspaceAccess, require_platform_admin, short};
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Caller, Path};

#[derive(Serialize, ToSchema)]
pub struct WorkspaceView {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: String,
    /// The caller's role here; absent for a platform admin who is not a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl WorkspaceView {
    pub fn new(w: Workspace, role: Option<WorkspaceRole>) -> Self {
        Self {
            id: w.id,
            slug: w.slug.to_string(),
            name: w.name,
            created_at: w.created_at,
            role: role.map(|r| r.as_str().to_owned()),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// Up to 200 characters, not blank, no control characters.
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]*[^\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb\\u0085][^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]*$",
        max_length = 200
    )]
    pub name: String,
    #[schema(pattern = "^[a-z][a-z0-9_-]{0,62}$")]
    pub slug: String,
}

/// Create a workspace (platform admins); the creator becomes its admin.
#[utoipa::path(post, path = "/api/workspaces", request_body = CreateWorkspace,
    responses((status = 201, body = WorkspaceView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_workspace(
    State(state): State<AppState>,
    caller: Caller,
    mut body: Body,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    require_platform_admin(&caller.user, "create workspaces")?;
    let body: CreateWorkspace = body.json(&state).await?;
    let mut errors = FieldErrors::new();
    let name = chatterfly_domain::connection::check_display_name(&body.name, &mut errors).unwrap_or_default();
    let name = name.as_str();
    let slug = body
        .slug
        .parse::<WorkspaceSlug>()
        .map_err(|e| errors.push("/slug", e.0))
        .ok();
    let Some(slug) = errors.into_result(slug)? else {
        return Err(ApiError::Internal("slug parse".into()));
    };
    let ws = state
        .store
        .create_workspace(&slug, name, &caller.user.id)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::Conflict {
                code: "slug_taken",
                detail: format!("workspace slug `{slug}` is taken; choose another"),
            },
            other => other.into(),
        })?;
    tracing::info!(by = %caller.user.id, workspace = %ws.slug, "workspace created");
    Ok((
        StatusCode::CREATED,
        Json(WorkspaceView::new(ws, Some(WorkspaceRole::Admin))),
    ))
}

/// Workspaces the caller can see: its own, or all of them for a platform admin.
#[utoipa::path(get, path = "/api/workspaces", responses((status = 200, body = Vec<WorkspaceView>)))]
pub async fn list_workspaces(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<WorkspaceView>>, ApiError> {
    let mine = state.store.memberships_of(&caller.user.id).await?;
    if !caller.user.platform_admin {
        return Ok(Json(
            mine.into_iter()
                .map(|m| WorkspaceView::new(m.workspace, Some(m.role)))
                .collect(),
        ));
    }
    let all = state.store.list_workspaces().await?;
    Ok(Json(
        all.into_iter()
            .map(|w| {
                let role = mine.iter().find(|m| m.workspace.id == w.id).map(|m| m.role);
                WorkspaceView::new(w, role)
            })
            .collect(),
    ))
}

/// One workspace.
#[utoipa::path(get, path = "/api/workspaces/{ws}", params(("ws" = String, Path)),
    responses((status = 200, body = WorkspaceView), (status = 404, body = Problem)))]
pub async fn get_workspace(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    Ok(Json(WorkspaceView::new(access.workspace, Some(access.role))))
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
}

/// The members of a workspace (any member may look).
#[utoipa::path(get, path = "/api/workspaces/{ws}/members", params(("ws" = String, Path)),
    responses((status = 200, body = Vec<MemberView>), (status = 404, body = Problem)))]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    let members = state.store.members_of(&access.workspace.id).await?;
    Ok(Json(
        members
            .into_iter()
            .map(|m| MemberView {
                user_id: m.user_id,
                email: m.email,
                name: m.name,
                role: m.role.as_str().to_owned(),
            })
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMember {
    #[schema(value_type = RoleName)]
    pub role: WorkspaceRole,
}

/// A role in a workspace.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
pub enum RoleName {
    Admin,
    Member,
}

fn last_admin(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict { what: "last admin" } => ApiError::Conflict {
            code: "last_admin",
            detail: "this is the workspace's last admin; make someone else admin first".into(),
        },
        StoreError::NotFound => ApiError::NotFound("that user is not a member of this workspace".into()),
        other => other.into(),
    }
}

/// Change a member's role (workspace admins). People are added by invitation (`POST
/// …/invitations`); only a platform admin, who sees every user anyway, adds a user here
/// directly. A user who is not a member answers 404 whether or not the id exists.
#[utoipa::path(put, path = "/api/workspaces/{ws}/members/{user_id}", request_body = SetMember,
    params(("ws" = String, Path), ("user_id" = String, Path)),
    responses((status = 200, body = MemberView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn set_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, user_id)): Path<(String, String)>,
    mut body: Body,
) -> Result<Json<MemberView>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("manage members")?;
    let body: SetMember = body.json(&state).await?;
    let not_member = || {
        ApiError::NotFound(format!(
            "`{}` is not a member of this workspace; add people by inviting their e-mail address (POST /api/workspaces/{}/invitations)",
            short(&user_id),
            access.workspace.slug
        ))
    };
    if !caller.user.platform_admin {
        let role = state
            .store
            .workspace_role(access.workspace.slug.as_str(), &user_id)
            .await?
            .and_then(|(_, r)| r);
        if role.is_none() {
            return Err(not_member());
        }
    }
    let user = state.store.get_user(&user_id).await?.ok_or_else(not_member)?;
    state
        .store
        .set_member(&access.workspace.id, &user.id, body.role)
        .await
        .map_err(last_admin)?;
    tracing::info!(by = %caller.user.id, workspace = %access.workspace.slug, user = %user.id, role = body.role.as_str(), "membership set");
    Ok(Json(MemberView {
        user_id: user.id,
        email: user.email,
        name: user.name,
        role: body.role.as_str().to_owned(),
    }))
}

/// Remove a member (workspace admins).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/members/{user_id}",
    params(("ws" = String, Path), ("user_id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("manage members")?;
    state
        .store
        .remove_member(&access.workspace.id, &user_id)
        .await
        .map_err(last_admin)?;
    tracing::info!(by = %caller.user.id, workspace = %access.workspace.slug, user = ?short(&user_id), "member removed");
    Ok(StatusCode::NO_CONTENT)
}
