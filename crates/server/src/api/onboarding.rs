//! Onboarding: a participant, with no platform account, opens `<APP_URL>/onboard/<token>`
//! and gives their credentials for the workspace's `participant` connections of their role.
//!
//! The token travels in the `X-Onboarding-Token` header of these API calls (never in an API
//! path, so it reaches no request log) and is stored only as its SHA-256. A link names one
//! participant, expires, and can be revoked or reissued (which revokes the earlier one). A
//! participant's OAuth connect flow is bound to the browser that started it by a cookie
//! (`chatterfly_onboard_flow`, HttpOnly, SameSite=Lax, for the callback's path only) whose
//! hash the flow's state keeps, and comes back to `/onboard` (no token in the redirect).

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatterfly_domain::OAuthProvider;
use chatterfly_domain::connection::Fulfillment;
use chatterfly_store::{AccountOwner, ConnectionRecord, LinkLookup, aad, participant_credentials_id};
use chatterfly_tools::accounts::{ConnectFor, hash_hex, random_token};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::AppState;
use super::accounts::{ConnectView, merged_key};
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Path};

/// The header that carries the onboarding token.
pub const TOKEN_HEADER: &str = "x-onboarding-token";
/// The cookie binding a participant's connect flow to their browser.
pub const FLOW_COOKIE: &str = "chatterfly_onboard_flow";
/// An onboarding token: 32 random bytes, base64url without padding.
pub const TOKEN_LEN: usize = 43;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether `token` has an onboarding token's form (length and alphabet), before any lookup.
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new token and its hash (what the store keeps).
pub fn new_token() -> (String, String) {
    let token = random_token();
    let hash = hash_hex(&token);
    (token, hash)
}

/// The link a participant opens.
pub fn onboarding_url(app_url: &str, token: &str) -> String {
    format!("{}/onboard/{token}", app_url.trim_end_matches('/'))
}

/// Why a link does not open: (status, code, message).
fn refusal(found: Option<&LinkLookup>, well_formed: bool) -> Option<(StatusCode, &'static str, &'static str)> {
    if !well_formed {
        return Some((
            StatusCode::NOT_FOUND,
            "onboarding_link_invalid",
            "this is not an onboarding link (it has the wrong length or characters); check that the whole link was copied",
        ));
    }
    match found {
        None => Some((
            StatusCode::NOT_FOUND,
            "onboarding_link_invalid",
            "this onboarding link is not valid; ask whoever sent it for a new one",
        )),
        Some(l) if l.link.revoked_at.is_some() => Some((
            StatusCode::GONE,
            "onboarding_link_revoked",
            "this onboarding link was revoked (a newer one may have been sent); ask for a new one",
        )),
        Some(l) if l.link.expires_at <= now_secs() => Some((
            StatusCode::GONE,
            "onboarding_link_expired",
            "this onboarding link has expired; ask for a new one",
        )),
        Some(_) => None,
    }
}

async fn lookup(state: &AppState, token: &str) -> Result<Result<LinkLookup, ApiError>, ApiError> {
    let ok = well_formed(token);
    let found = if ok {
        state.store.onboarding_link(&hash_hex(token)).await?
    } else {
        None
    };
    Ok(match refusal(found.as_ref(), ok) {
        Some((status, code, detail)) => Err(ApiError::Coded {
            status,
            code,
            detail: detail.into(),
        }),
        None => found.ok_or_else(|| ApiError::Internal("a valid link without its row".into())),
    })
}

/// The participant a valid link names (from the `X-Onboarding-Token` header).
pub struct Onboarding(pub LinkLookup);

impl FromRequestParts<AppState> for Onboarding {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(TOKEN_HEADER).ok_or_else(|| ApiError::Coded {
            status: StatusCode::UNAUTHORIZED,
            code: "onboarding_link_invalid",
            detail: "send the token of your onboarding link in the `X-Onboarding-Token` header".into(),
        })?;
        // a value that is not text is a token of the wrong alphabet
        let token = header.to_str().unwrap_or("");
        lookup(state, token).await?.map(Onboarding)
    }
}

/// `GET /onboard/{token}`: the page, with the link's status as the answer's (200, 404 for
/// a forged or malformed link, 410 for a revoked or expired one); the page says which.
pub async fn onboard_page(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    let status = match lookup(&state, &token).await {
        Ok(Ok(_)) => StatusCode::OK,
        Ok(Err(e)) => e.status(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut r = crate::web::page().await;
    *r.status_mut() = status;
    r
}

/// The flow cookie's value, if the browser sent one.
pub fn flow_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == FLOW_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| well_formed(v))
}

fn cookie_path() -> &'static str {
    "/api/auth/connect/"
}

pub fn clear_flow_cookie(r: &mut Response, _state: &AppState) {
    let v = format!(
        "{FLOW_COOKIE}=; Path={}; HttpOnly; SameSite=Lax; Max-Age=0",
        cookie_path()
    );
    if let Ok(v) = HeaderValue::from_str(&v) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// What a participant gives for one connection.
#[derive(Serialize, ToSchema)]
pub struct OnboardingConnectionView {
    pub slug: String,
    pub name: String,
    pub service_type: String,
    /// `key` (fields to fill in), `account` (an OAuth account to connect), or `none`
    /// (nothing to give).
    pub kind: String,
    /// `key`: the fields of the key (write-only).
    pub fields: Vec<String>,
    /// `account`: the provider (`gmail`, `github`) and the tiers the connection asks for.
    pub provider: Option<String>,
    pub tiers: Vec<String>,
    /// Whether the participant has given what it needs.
    pub set: bool,
    /// `account`: who the connected account is, and whether it must be connected again.
    pub identity: Option<String>,
    pub status: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OnboardingView {
    pub workspace: OnboardingWorkspace,
    pub participant: OnboardingParticipant,
    /// When the link stops working (unix seconds).
    pub expires_at: i64,
    pub connections: Vec<OnboardingConnectionView>,
}

#[derive(Serialize, ToSchema)]
pub struct OnboardingWorkspace {
    pub slug: String,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct OnboardingParticipant {
    pub name: String,
    pub role: String,
}

pub(crate) enum Needs {
    Key,
    Account(OAuthProvider),
    Nothing,
}

pub(crate) fn needs(conn: &ConnectionRecord) -> Needs {
    if let Some(p) = conn.draft.account_provider() {
        Needs::Account(p)
    } else if conn.draft.auth_type.secret_fields().is_empty() {
        Needs::Nothing
    } else {
        Needs::Key
    }
}

/// What a participant has given for a connection: (set, identity, status, updated_at).
pub(crate) async fn given(
    state: &AppState,
    participant_id: &str,
    conn: &ConnectionRecord,
) -> Result<(bool, Option<String>, Option<String>, Option<String>), ApiError> {
    Ok(match needs(conn) {
        Needs::Key => {
            let saved = state.store.participant_credentials(participant_id, &conn.id).await?;
            (saved.is_some(), None, None, saved.map(|s| s.updated_at))
        }
        Needs::Account(p) => {
            let owner = AccountOwner::Participant {
                participant_id,
                connection_id: &conn.id,
            };
            let account = state.store.account_for(owner, p.as_str()).await?;
            match account {
                Some(a) => (
                    a.status == "connected",
                    Some(a.identity),
                    Some(a.status),
                    Some(a.updated_at),
                ),
                None => (false, None, None, None),
            }
        }
        Needs::Nothing => (true, None, None, None),
    })
}

async fn connection_view(
    state: &AppState,
    participant_id: &str,
    conn: &ConnectionRecord,
) -> Result<OnboardingConnectionView, ApiError> {
    let (set, identity, status, updated_at) = given(state, participant_id, conn).await?;
    let (kind, provider) = match needs(conn) {
        Needs::Key => ("key", None),
        Needs::Account(p) => ("account", Some(p.as_str().to_owned())),
        Needs::Nothing => ("none", None),
    };
    Ok(OnboardingConnectionView {
        slug: conn.draft.slug.to_string(),
        name: conn.draft.name.clone(),
        service_type: conn.draft.service_type.as_str().into(),
        kind: kind.into(),
        fields: if kind == "key" {
            conn.draft
                .auth_type
                .secret_fields()
                .iter()
                .map(|f| (*f).to_owned())
                .collect()
        } else {
            Vec::new()
        },
        provider,
        tiers: conn.draft.account_tiers(),
        set,
        identity,
        status,
        updated_at,
    })
}

/// The participant's onboarding: the workspace, who they are, and each connection that
/// asks for their credentials, with what they gave (never the values).
#[utoipa::path(get, path = "/api/onboarding", operation_id = "get_onboarding", security(()),
    params(("X-Onboarding-Token" = String, Header, description = "The token of the onboarding link")),
    responses((status = 200, body = OnboardingView),
        (status = 401, body = Problem, description = "No token sent"),
        (status = 404, body = Problem, description = "Not a valid link (`onboarding_link_invalid`)"),
        (status = 410, body = Problem, description = "A revoked or expired link (`onboarding_link_revoked`, `onboarding_link_expired`)")))]
pub async fn get_onboarding(State(state): State<AppState>, Onboarding(o): Onboarding) -> Result<Response, ApiError> {
    let conns = state
        .store
        .participant_connections(&o.participant.workspace_id, &o.participant.role)
        .await?;
    let mut connections = Vec::with_capacity(conns.len());
    for c in &conns {
        connections.push(connection_view(&state, &o.participant.id, c).await?);
    }
    let mut r = Json(OnboardingView {
        workspace: OnboardingWorkspace {
            slug: o.workspace_slug,
            name: o.workspace_name,
        },
        participant: OnboardingParticipant {
            name: o.participant.name,
            role: o.participant.role,
        },
        expires_at: o.link.expires_at,
        connections,
    })
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// One of the participant's connections (of their workspace and role, `participant`).
async fn participant_connection(state: &AppState, o: &LinkLookup, slug: &str) -> Result<ConnectionRecord, ApiError> {
    let conn = if slug.len() <= 63 {
        state.store.connection_head(&o.participant.workspace_id, slug).await?
    } else {
        None
    };
    conn.filter(|c| {
        c.draft.fulfillment == Fulfillment::Participant
            && c.draft.participant_role.as_ref().map(ToString::to_string).as_deref()
                == Some(o.participant.role.as_str())
    })
    .ok_or_else(|| {
        ApiError::NotFound(format!(
            "no connection `{}` asks for your credentials",
            super::access::short(slug)
        ))
    })
}

/// Give (or update) a key for a connection: the secret fields of its auth shape
/// (`{"token"}`, `{"key"}`, `{"username","password"}`). Write-only; a blank field keeps
/// the value given before.
#[utoipa::path(put, path = "/api/onboarding/connections/{slug}", operation_id = "onboarding_put_credentials", security(()),
    params(("slug" = String, Path), ("X-Onboarding-Token" = String, Header)), request_body = Object,
    responses((status = 200, body = OnboardingConnectionView), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The connection takes an account, not a key (`not_a_key`), or it or the participant's role changed while the key was being saved (`not_asked`)"),
        (status = 410, body = Problem), (status = 422, body = Problem)))]
pub async fn put_credentials(
    State(state): State<AppState>,
    Onboarding(o): Onboarding,
    Path(slug): Path<String>,
    mut body: Body,
) -> Result<Json<OnboardingConnectionView>, ApiError> {
    let conn = participant_connection(&state, &o, &slug).await?;
    if !matches!(needs(&conn), Needs::Key) {
        return Err(ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "not_a_key",
            detail: format!(
                "connection `{}` takes no key: {}",
                conn.draft.slug,
                if matches!(needs(&conn), Needs::Account(_)) {
                    "connect your account for it instead"
                } else {
                    "it needs nothing from you"
                }
            ),
        });
    }
    let given: Map<String, Value> = body.json(&state).await?;
    let id = participant_credentials_id(&o.participant.id, &conn.id);
    let saved = state.store.participant_credentials(&o.participant.id, &conn.id).await?;
    let fields = merged_key(
        &state,
        &conn,
        given,
        saved
            .as_ref()
            .map(|s| (s.secrets_sealed.as_str(), aad::participant_credentials(&s.id))),
    )?;
    let sealed = state
        .keys
        .seal(fields.to_sealable_json().as_bytes(), &aad::participant_credentials(&id))
        .map_err(|e| ApiError::Internal(format!("sealing: {e}")))?;
    let stored = state
        .store
        .put_participant_credentials(&o.participant.id, &conn.id, &conn.updated_at, &sealed)
        .await?;
    if stored.is_none() {
        // the connection was edited, or the participant's role changed, since this request
        // read them: a key given for what it was then is not kept
        return Err(ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "not_asked",
            detail: format!(
                "connection `{}` changed while your key was being saved; open your onboarding link again",
                conn.draft.slug
            ),
        });
    }
    tracing::info!(participant = %o.participant.id, connection = %conn.id, "participant key saved");
    Ok(Json(connection_view(&state, &o.participant.id, &conn).await?))
}

/// Withdraw what the participant gave for a connection (a key, or an account, which is
/// revoked at the provider where it can be).
#[utoipa::path(delete, path = "/api/onboarding/connections/{slug}", operation_id = "onboarding_delete_credentials", security(()),
    params(("slug" = String, Path), ("X-Onboarding-Token" = String, Header)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn delete_credentials(
    State(state): State<AppState>,
    Onboarding(o): Onboarding,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    let conn = participant_connection(&state, &o, &slug).await?;
    let removed = withdraw(&state, &o.participant.id, &conn).await?;
    if !removed {
        return Err(ApiError::NotFound(format!(
            "you have given nothing for `{}`",
            conn.draft.slug
        )));
    }
    tracing::info!(participant = %o.participant.id, connection = %conn.id, "participant withdrew credentials");
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a participant's key or account for a connection; whether there was one.
pub(crate) async fn withdraw(
    state: &AppState,
    participant_id: &str,
    conn: &ConnectionRecord,
) -> Result<bool, ApiError> {
    let key = state
        .store
        .delete_participant_credentials(participant_id, &conn.id)
        .await?;
    let account = state
        .tools
        .accounts()
        .disconnect_participant(participant_id, &conn.id)
        .await
        .map_err(|e| ApiError::Internal(e.message))?;
    Ok(key || account)
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct OnboardingConnectRequest {
    /// Tiers to grant besides those the connection asks for.
    #[serde(default)]
    pub tiers: Vec<String>,
}

/// Start connecting the participant's account for a connection (Gmail `oauth`, or an
/// `oauth_provider` connection): the provider's authorize URL, with the tiers the
/// connection asks for. Sets the cookie that binds the flow to this browser.
#[utoipa::path(post, path = "/api/onboarding/connections/{slug}/connect", operation_id = "onboarding_connect", security(()),
    params(("slug" = String, Path), ("X-Onboarding-Token" = String, Header)), request_body = Option<OnboardingConnectRequest>,
    responses((status = 200, body = ConnectView), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The connection takes a key, not an account (`not_an_account`)"),
        (status = 410, body = Problem), (status = 422, body = Problem)))]
pub async fn connect(
    State(state): State<AppState>,
    Onboarding(o): Onboarding,
    Path(slug): Path<String>,
    mut body: Body,
) -> Result<Response, ApiError> {
    let conn = participant_connection(&state, &o, &slug).await?;
    let Needs::Account(provider) = needs(&conn) else {
        return Err(ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "not_an_account",
            detail: format!("connection `{}` takes a key, not an account", conn.draft.slug),
        });
    };
    let req: OnboardingConnectRequest = body.optional_json(&state).await?;
    if req.tiers.len() > 16 {
        return Err(chatterfly_domain::FieldErrors::single("/tiers", "name at most 16 tiers").into());
    }
    let mut tiers = conn.draft.account_tiers();
    for t in req.tiers {
        if !tiers.contains(&t) {
            tiers.push(t);
        }
    }
    let browser = random_token();
    let authorize_url = state
        .tools
        .accounts()
        .start_connect(
            ConnectFor::Participant {
                participant_id: &o.participant.id,
                connection_id: &conn.id,
                link_id: &o.link.id,
                browser_hash: hash_hex(&browser),
            },
            provider,
            &tiers,
            &state.app_url,
        )
        .await
        .map_err(|e| match e.code {
            "invalid_tiers" => ApiError::Validation(chatterfly_domain::FieldErrors::single("/tiers", e.message)),
            "not_configured" => {
                // the operator's settings are not the participant's to read
                tracing::info!(provider = %provider, detail = %e.message, "participant connect: provider not configured");
                ApiError::Coded {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    code: "not_configured",
                    detail: format!(
                        "connecting a {} account is not set up here yet; tell whoever sent you the link",
                        provider.label()
                    ),
                }
            }
            _ => ApiError::Internal(e.message),
        })?;
    let secure = if state.app_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{FLOW_COOKIE}={browser}; Path={}; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        cookie_path(),
        chatterfly_tools::accounts::STATE_TTL_SECS
    );
    let mut r = Json(ConnectView { authorize_url }).into_response();
    let v = HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(format!("cookie: {e}")))?;
    r.headers_mut().insert(header::SET_COOKIE, v);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_one_form() {
        let (t, h) = new_token();
        assert!(well_formed(&t), "{t}");
        assert_eq!(h.len(), 64);
        assert_ne!(t, h);
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}!", "a".repeat(42)),
            &format!("{}é", "a".repeat(41)),
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
