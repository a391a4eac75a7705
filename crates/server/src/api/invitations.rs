//! Invitations: workspace admins add people by e-mail address, and the invited user
//! accepts. Inviting answers the same whether or not the address has an account (nothing
//! about other users is learned from it); a user sees only the invitations addressed to
//! their own e-mail address.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chatterfly_domain::{FieldErrors, WorkspaceRole};
use chatterfly_store::{Invitation, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::access::{WorkspaceAccess, short};
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Caller, Path};

/// How long an invitation stays open.
const VALID_FOR_DAYS: i64 = 14;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    /// The address of the person to add; they accept once they have an account with it.
    #[schema(
        max_length = 320,
        pattern = "^[^@\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]+@[^@\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]+$"
    )]
    pub email: String,
    /// Default `member`.
    #[serde(default)]
    #[schema(value_type = Option<super::workspaces::RoleName>)]
    pub role: Option<WorkspaceRole>,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationView {
    pub id: String,
    /// The workspace's slug.
    pub workspace: String,
    pub workspace_name: String,
    pub email: String,
    /// `admin` or `member`.
    pub role: String,
    pub created_at: String,
    pub expires_at: String,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> Self {
        Self {
            id: i.id,
            workspace: i.workspace_slug.to_string(),
            workspace_name: i.workspace_name,
            email: i.email,
            role: i.role.as_str().to_owned(),
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

/// The caller's new standing, after accepting.
#[derive(Serialize, ToSchema)]
pub struct AcceptedView {
    /// The workspace's slug.
    pub workspace: String,
    /// `admin` or `member`.
    pub role: String,
}

/// A plausible e-mail address, lowercased; `None` when it is not one.
pub(crate) fn parse_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 320
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || chatterfly_domain::connection::is_invisible_format(c));
    valid.then_some(email)
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("invitation `{}` not found", short(id)))
}

/// Invite someone to the workspace by e-mail address (workspace admins). The answer is the
/// same whether or not the address has an account; inviting the same address again
/// replaces the role and renews the expiry (14 days).
#[utoipa::path(post, path = "/api/workspaces/{ws}/invitations", params(("ws" = String, Path)), request_body = Invite,
    responses((status = 201, body = InvitationView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    mut body: Body,
) -> Result<(StatusCode, Json<InvitationView>), ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("invite people")?;
    let body: Invite = body.json(&state).await?;
    let email = parse_email(&body.email)
        .ok_or_else(|| FieldErrors::single("/email", "`email` must be an email address such as ada@example.com"))?;
    let expires = (chrono::Utc::now() + chrono::Duration::days(VALID_FOR_DAYS))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let inv = state
        .store
        .invite(
            &access.workspace.id,
            &email,
            body.role.unwrap_or(WorkspaceRole::Member),
            &caller.user.id,
            &expires,
        )
        .await?;
    tracing::info!(workspace = %access.workspace.slug, "invitation sent");
    Ok((StatusCode::CREATED, Json(inv.into())))
}

/// The workspace's open invitations (workspace admins).
#[utoipa::path(get, path = "/api/workspaces/{ws}/invitations", params(("ws" = String, Path)),
    responses((status = 200, body = Vec<InvitationView>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> Result<Json<Vec<InvitationView>>, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("see invitations")?;
    let list = state.store.invitations_of_workspace(&access.workspace.id).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Withdraw an invitation (workspace admins).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/invitations/{id}", params(("ws" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("withdraw invitations")?;
    match state.store.delete_invitation(&access.workspace.id, &id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound) => Err(not_found(&id)),
        Err(e) => Err(e.into()),
    }
}

/// The open invitations addressed to the caller's e-mail address.
#[utoipa::path(get, path = "/api/me/invitations",
    responses((status = 200, body = Vec<InvitationView>), (status = 401, body = Problem)))]
pub async fn my_invitations(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<InvitationView>>, ApiError> {
    let list = state
        .store
        .invitations_for(&caller.user.email, &chatterfly_store::now())
        .await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Accept an invitation addressed to the caller: the caller becomes a member with the
/// invited role (an admin stays admin).
#[utoipa::path(post, path = "/api/me/invitations/{id}/accept", params(("id" = String, Path)),
    responses((status = 200, body = AcceptedView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AcceptedView>, ApiError> {
    let inv = match state
        .store
        .accept_invitation(&id, &caller.user.id, &caller.user.email, &chatterfly_store::now())
        .await
    {
        Ok(inv) => inv,
        Err(StoreError::NotFound) => return Err(not_found(&id)),
        Err(e) => return Err(e.into()),
    };
    let role = state
        .store
        .workspace_role(inv.workspace_slug.as_str(), &caller.user.id)
        .await?
        .and_then(|(_, r)| r)
        .unwrap_or(inv.role);
    tracing::info!(workspace = %inv.workspace_slug, "invitation accepted");
    Ok(Json(AcceptedView {
        workspace: inv.workspace_slug.to_string(),
        role: role.as_str().to_owned(),
    }))
}
