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
/// A sign-in body is small; it is read before anyone is known, so it gets little room and
/// little time.
const LOGIN_BODY_BYTES: usize = 8 * 1024;
const LOGIN_BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Password attempts for one address (counted before they are checked; a success clears
/// them) before it must wait.
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Password checks: Argon2id takes ~19 MiB and a few ms of CPU each, so they run a few at
/// a time (one per core), and wrong passwords are counted per address. The count is kept
/// by each replica (with several replicas an address gets that many tries on each); a
/// success clears it.
pub struct PasswordGuard {
    turns: tokio::sync::Semaphore,
    failures: std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
}

impl Default for PasswordGuard {
    fn default() -> Self {
        Self {
            turns: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get)),
            failures: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl PasswordGuard {
    /// Counts a password attempt for `email` before it is checked (so that a burst sent at
    /// once is counted too); `Err` with how long to wait once the address has used up its
    /// tries in the window.
    fn attempt(&self, email: &str) -> Result<(), std::time::Duration> {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 100_000 {
            // bounded: forget the windows that are over
            map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let entry = map.entry(email.to_owned()).or_insert((0, std::time::Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, std::time::Instant::now());
        }
        if entry.0 >= MAX_FAILURES {
            return Err(FAILURE_WINDOW.saturating_sub(entry.1.elapsed()));
        }
        entry.0 += 1;
        Ok(())
    }

    fn succeeded(&self, email: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(email);
    }
}

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
        (status = 401, body = Problem, description = "Wrong token, address or password (`invalid_credentials`)"),
        (status = 429, body = Problem, description = "Too many wrong passwords for the address (`too_many_attempts`); `Retry-After` says how long"),
        (status = 503, body = Problem, description = "Too many sign-ins at once (`server_busy`)")))]
pub async fn login(State(state): State<AppState>, mut body: Body) -> Result<Response, ApiError> {
    let body: LoginBody = body.small_json(&state, LOGIN_BODY_BYTES, LOGIN_BODY_WAIT).await?;
    for (field, value, max) in [
        ("token", &body.token, 512),
        ("email", &body.email, 320),
        ("password", &body.password, 1024),
    ] {
        if value.as_ref().is_some_and(|v| v.chars().count() > max) {
            return Err(ApiError::Coded {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "validation_failed",
                detail: format!("`{field}` is longer than {max} characters"),
            });
        }
    }
    let (user, how, api_token_id) = match (body.token.as_deref().map(str::trim), body.email, body.password) {
        (Some(token), None, None) if !token.is_empty() => {
            let owner = state.store.user_by_token_hash(&tokens::hash(token)).await?;
            let Some(owner) = owner else {
                tracing::info!(method = "token", "sign-in refused");
                return Err(refused());
            };
            (owner.user, "token", Some(owner.token_id))
        }
        (None, Some(email), Some(password)) => {
            let email = email.trim().to_lowercase();
            let guard = &state.passwords;
            if let Err(wait) = guard.attempt(&email) {
                tracing::warn!(
                    method = "password",
                    "sign-in refused: too many wrong passwords for one address"
                );
                return Err(ApiError::TooManyRequests {
                    retry_after: wait.as_secs().max(1),
                    detail: "too many wrong passwords for this address; wait a while, or sign in with an API token"
                        .into(),
                });
            }
            let _turn = tokio::time::timeout(LOGIN_BODY_WAIT, guard.turns.acquire())
                .await
                .map_err(|_| ApiError::Coded {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "server_busy",
                    detail: "too many sign-ins at once; try again shortly".into(),
                })?
                .map_err(|_| ApiError::Internal("the password queue is closed".into()))?;
            let found = state.store.user_with_password(&email).await?;
            let stored = found.as_ref().and_then(|(_, h)| h.clone());
            let hash = stored.clone().unwrap_or_else(|| decoy_hash().to_owned());
            let ok = tokio::task::spawn_blocking(move || tokens::verify_password(&password, &hash))
                .await
                .map_err(|e| ApiError::Internal(format!("password check: {e}")))?;
            match (found, stored, ok) {
                (Some((user, _)), Some(_), true) => {
                    guard.succeeded(&email);
                    (user, "password", None)
                }
                _ => {
                    tracing::info!(method = "password", "sign-in refused");
                    return Err(refused());
                }
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
        .create_session(
            &user.id,
            &tokens::hash(&cookie_value),
            &csrf,
            &expires_at,
            api_token_id.as_deref(),
        )
        .await?;
    tracing::info!(user = %user.id, method = how, "signed in");
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
    let owner = session_owner(&parts, &state, &hash).await?;
    state.store.delete_session(&hash).await?;
    tracing::info!(user = %owner.user.id, "signed out");
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_static("chatterfly_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}
