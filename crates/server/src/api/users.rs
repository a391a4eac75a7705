//! Platform users and their API tokens.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chatterfly_domain::FieldErrors;
use chatterfly_store::{NewUser, StoreError, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::access::{require_platform_admin, short};
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Caller, Path};
use crate::tokens;

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    pub created_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            name: u.name,
            platform_admin: u.platform_admin,
            created_at: u.created_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// An address such as `ada@example.com`; stored lowercased.
    #[schema(
        max_length = 320,
        pattern = "^[^@\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]+@[^@\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]+$"
    )]
    pub email: String,
    /// Up to 200 characters, not blank, no control characters.
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]*[^\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb\\u0085][^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]*$",
        max_length = 200
    )]
    pub name: String,
    /// Optional (empty: none); otherwise at least 12 characters. Stored as an Argon2id hash.
    #[serde(default)]
    #[schema(pattern = "^$|^[\\s\\S]{12,}$")]
    pub password: Option<String>,
    #[serde(default)]
    pub platform_admin: bool,
}

/// Create a user (platform admins).
#[utoipa::path(post, path = "/api/users", request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    mut body: Body,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    require_platform_admin(&caller.user, "create users")?;
    let body: CreateUser = body.json(&state).await?;
    let mut errors = FieldErrors::new();
    let email = super::invitations::parse_email(&body.email).unwrap_or_else(|| {
        errors.push("/email", "`email` must be an email address such as ada@example.com");
        String::new()
    });
    let name = chatterfly_domain::connection::check_display_name(&body.name, &mut errors).unwrap_or_default();
    let password = body.password.filter(|p| !p.is_empty());
    if password.as_ref().is_some_and(|p| p.chars().count() < 12) {
        errors.push("/password", "`password` must be at least 12 characters");
    }
    errors.into_result(())?;
    let password_hash = password
        .map(|p| tokens::hash_password(&p))
        .transpose()
        .map_err(ApiError::Internal)?;
    let user = state
        .store
        .create_user(&NewUser {
            email: email.clone(),
            name,
            password_hash,
            platform_admin: body.platform_admin,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::Conflict {
                code: "email_taken",
                detail: format!("a user with email `{email}` exists already"),
            },
            other => other.into(),
        })?;
    tracing::info!(by = %caller.user.id, user = %user.id, platform_admin = user.platform_admin, "user created");
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Every user (platform admins).
#[utoipa::path(get, path = "/api/users", responses((status = 200, body = Vec<UserView>), (status = 403, body = Problem)))]
pub async fn list_users(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<UserView>>, ApiError> {
    require_platform_admin(&caller.user, "list users")?;
    Ok(Json(
        state.store.list_users().await?.into_iter().map(Into::into).collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for, e.g. `ci` or `laptop`: up to 100 characters, not blank.
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]*[^\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb\\u0085][^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]*$",
        max_length = 100
    )]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    /// The token itself: shown this once, never again.
    pub token: String,
}

/// Mint an API token for a user (the user itself, or a platform admin).
#[utoipa::path(post, path = "/api/users/{id}/tokens", request_body = CreateToken, params(("id" = String, Path)),
    responses((status = 201, body = TokenView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    mut body: Body,
) -> Result<(StatusCode, Json<TokenView>), ApiError> {
    let not_found = || ApiError::NotFound(format!("user `{}` not found", short(&id)));
    if caller.user.id != id && !caller.user.platform_admin {
        // Another user's id is not confirmed to exist.
        return Err(not_found());
    }
    let body: CreateToken = body.json(&state).await?;
    let mut errors = FieldErrors::new();
    let name = chatterfly_domain::connection::check_name_within(&body.name, 100, &mut errors);
    let name = errors.into_result(name)?.unwrap_or_default();
    let user = state.store.get_user(&id).await?.ok_or_else(not_found)?;
    let token = tokens::generate();
    let token_id = state.store.create_token(&user.id, &name, &tokens::hash(&token)).await?;
    tracing::info!(by = %caller.user.id, user = %user.id, token = %token_id, "API token minted");
    Ok((
        StatusCode::CREATED,
        Json(TokenView {
            id: token_id,
            name,
            token,
        }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub created_at: String,
    /// The token this request was made with.
    pub current: bool,
}

/// A user's API tokens (the user itself, or a platform admin); never the tokens themselves.
#[utoipa::path(get, path = "/api/users/{id}/tokens", params(("id" = String, Path)),
    responses((status = 200, body = Vec<TokenInfo>), (status = 404, body = Problem)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    if caller.user.id != id && !caller.user.platform_admin {
        return Err(ApiError::NotFound(format!("user `{}` not found", short(&id))));
    }
    let user = state
        .store
        .get_user(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user `{}` not found", short(&id))))?;
    let current = caller.token_id.as_deref();
    Ok(Json(
        state
            .store
            .list_tokens(&user.id)
            .await?
            .into_iter()
            .map(|(id, name, created_at)| TokenInfo {
                current: current == Some(id.as_str()),
                id,
                name,
                created_at,
            })
            .collect(),
    ))
}

/// Revoke an API token (the user itself, or a platform admin). It stops working on every
/// replica within a second; calls already under way finish.
#[utoipa::path(delete, path = "/api/users/{id}/tokens/{token_id}", params(("id" = String, Path), ("token_id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if caller.user.id != id && !caller.user.platform_admin {
        return Err(ApiError::NotFound(format!("user `{}` not found", short(&id))));
    }
    if !state.store.delete_token(&id, &token_id).await? {
        return Err(ApiError::NotFound(format!("token `{}` not found", short(&token_id))));
    }
    tracing::info!(by = %caller.user.id, user = %id, token = %token_id, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}
