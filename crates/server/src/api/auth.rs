//! Web UI sessions: sign in with an API token or an e-mail address and password, read the
//! session (and its CSRF token), sign out. The session cookie is HttpOnly, SameSite=Lax,
//! `Secure` when `APP_URL` is https; the store keeps only its hash.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::me::{MeView, me_view};
use crate::error::{ApiError, Problem};
use crate::extract::{Body, SESSION_COOKIE, session_cookie, session_owner};
use crate::tokens;

/// How long a session lives after signing in.
pub const SESSION_HOURS: i64 = 12;

/// `{"token"}`, or `{"email", "password"}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// An API token (such as the one the first start printed).
    #[schema(max_length = 512)]
    pub token: Option<String>,
    #[schema(max_length = 320)]
    pub email: Option<String>,
    #[schema(max_length = 1024)]
    pub password: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub user: MeView,
    /// Send it in `X-CSRF-Token` with every request that changes something.
    pub csrf_token: String,
    pub expires_at: String,
}

fn refused() -> ApiError {
    ApiError::Coded {
        status: StatusCode::UNAUTHORIZED,
        code: "invalid_credentials",
        detail: "that token, or that e-mail address and password, is not right".into(),
    }
}

/// An Argon2id hash of nothing anyone knows: checked against when the address is unknown,
/// so that the answer takes as long as for a known one.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| tokens::hash_password(&tokens::generate()).unwrap_or_default())
}

/// Sign in. Sets the session cookie and answers the session's CSRF token.
#[utoipa::path(post, path = "/api/auth/login", request_body = LoginBody, security(()),
    responses((status = 200, body = SessionView, description = "Signed in; the `chatterfly_session` cookie is set"),
        (status = 401, body = Problem, description = "Wrong token, address or password (`invalid_credentials`)")))]
pub async fn login(State(state): State<AppState>, mut body: Body) -> Result<Response, ApiError> {
    let body: LoginBody = body.json(&state).await?;
    let user = match (body.token.as_deref().map(str::trim), body.email, body.password) {
        (Some(token), None, None) if !token.is_empty() => {
            state
                .store
                .user_by_token_hash(&tokens::hash(token))
                .await?
                .ok_or_else(refused)?
                .user
        }
        (None, Some(email), Some(password)) => {
            let email = email.trim().to_lowercase();
            let found = state.store.user_with_password(&email).await?;
            let stored = found.as_ref().and_then(|(_, h)| h.clone());
            let hash = stored.clone().unwrap_or_else(|| decoy_hash().to_owned());
            let ok = tokio::task::spawn_blocking(move || tokens::verify_password(&password, &hash))
                .await
                .map_err(|e| ApiError::Internal(format!("password check: {e}")))?;
            match (found, stored, ok) {
                (Some((user, _)), Some(_), true) => user,
                _ => return Err(refused()),
            }
        }
        _ => {
            return Err(ApiError::Coded {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "validation_failed",
                detail: "send either `token`, or `email` and `password`".into(),
            });
        }
    };
    let cookie_value = tokens::generate();
    let csrf = hex::encode(rand::random::<[u8; 32]>());
    let expires = chrono::Utc::now() + chrono::Duration::hours(SESSION_HOURS);
    let expires_at = expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    state
        .store
        .create_session(&user.id, &tokens::hash(&cookie_value), &csrf, &expires_at)
        .await?;
    let view = SessionView {
        user: me_view(&state, user).await?,
        csrf_token: csrf,
        expires_at,
    };
    let secure = if state.app_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={cookie_value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        SESSION_HOURS * 3600
    );
    let mut response = Json(view).into_response();
    let value = HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(format!("cookie: {e}")))?;
    response.headers_mut().insert(header::SET_COOKIE, value);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The session of the request's cookie, with its CSRF token (the web UI reads it on load).
#[utoipa::path(get, path = "/api/auth/session", security(()),
    responses((status = 200, body = SessionView), (status = 401, body = Problem, description = "No live session (`unauthorized`)")))]
pub async fn session(State(state): State<AppState>, parts: axum::http::request::Parts) -> Result<Response, ApiError> {
    let cookie = session_cookie(&parts.headers).ok_or(ApiError::Unauthorized)?;
    let owner = session_owner(&parts, &state, &tokens::hash(cookie)).await?;
    let view = SessionView {
        user: me_view(&state, owner.user).await?,
        csrf_token: owner.csrf_token,
        expires_at: owner.expires_at,
    };
    let mut response = Json(view).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Sign out: the session ends (its cookie is worthless from now on) and the cookie is
/// cleared. Needs the CSRF token.
#[utoipa::path(post, path = "/api/auth/logout", security(()),
    responses((status = 204, description = "Signed out"), (status = 401, body = Problem), (status = 403, body = Problem, description = "No CSRF token (`csrf_failed`)")))]
pub async fn logout(State(state): State<AppState>, parts: axum::http::request::Parts) -> Result<Response, ApiError> {
    let cookie = session_cookie(&parts.headers).ok_or(ApiError::Unauthorized)?;
    let hash = tokens::hash(cookie);
    session_owner(&parts, &state, &hash).await?;
    state.store.delete_session(&hash).await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_static("chatterfly_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}
