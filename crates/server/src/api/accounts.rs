//! My Accounts: a person's own accounts at OAuth providers (the connect flow, its callback,
//! the list, disconnecting) and their own keys for `caller` connections. Everything here
//! is the caller's own: another person's account or key is never shown or used.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatterfly_domain::connection::Fulfillment;
use chatterfly_domain::{AuthSpec, AuthType, FieldErrors, OAuthProvider, SecretFields};
use chatterfly_store::{AccountRecord, aad, personal_credentials_id};
use chatterfly_tools::accounts::{CallbackParams, ConnectError, ConnectFor};
use chatterfly_vault::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::AppState;
use super::access::WorkspaceAccess;
use super::connections::connection_not_found;
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Caller, Path, session_cookie};

fn provider(name: &str) -> Result<OAuthProvider, ApiError> {
    name.parse().map_err(ApiError::NotFound)
}

fn connect_error(e: ConnectError) -> ApiError {
    let status = match e.code {
        "not_configured" | "invalid_tiers" => StatusCode::UNPROCESSABLE_ENTITY,
        "not_found" => StatusCode::NOT_FOUND,
        "internal" => return ApiError::Internal(e.message),
        _ => StatusCode::BAD_GATEWAY,
    };
    ApiError::Coded {
        status,
        code: e.code,
        detail: e.message,
    }
}

/// A connected account (tokens never shown).
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    /// `gmail` or `github`.
    pub provider: String,
    /// Who the account is at the provider: the Google e-mail address, the GitHub login.
    pub identity: String,
    /// The permission tiers the provider granted (not those asked for).
    pub tiers: Vec<String>,
    /// The scopes the provider granted.
    pub scopes: Vec<String>,
    /// `connected`, or `needs_reconnect` when the provider refused to refresh its token.
    pub status: String,
    pub connected_at: String,
    pub updated_at: String,
}

impl AccountView {
    fn new(a: AccountRecord) -> Self {
        let tiers = a
            .provider
            .parse::<OAuthProvider>()
            .map(|p| p.tiers_granted(&a.scopes).into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        Self {
            id: a.id,
            tiers,
            scopes: chatterfly_domain::split_scopes(&a.scopes).map(str::to_owned).collect(),
            provider: a.provider,
            identity: a.identity,
            status: a.status,
            connected_at: a.connected_at,
            updated_at: a.updated_at,
        }
    }
}

/// The caller's connected accounts.
#[utoipa::path(get, path = "/api/me/accounts",
    responses((status = 200, body = [AccountView]), (status = 401, body = Problem)))]
pub async fn list_accounts(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<AccountView>>, ApiError> {
    let accounts = state.store.accounts_of(&caller.user.id).await?;
    Ok(Json(accounts.into_iter().map(AccountView::new).collect()))
}

#[derive(Serialize, ToSchema)]
pub struct TierView {
    pub id: String,
    pub label: String,
    pub scope: String,
}

/// A provider people can connect, with its tiers.
#[derive(Serialize, ToSchema)]
pub struct AccountProviderView {
    pub id: String,
    pub label: String,
    /// Whether an OAuth client is configured (registry or environment).
    pub configured: bool,
    pub tiers: Vec<TierView>,
}

/// The providers people can connect accounts at, their tiers and whether they are set up.
#[utoipa::path(get, path = "/api/me/account-providers",
    responses((status = 200, body = [AccountProviderView]), (status = 401, body = Problem)))]
pub async fn list_account_providers(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<AccountProviderView>>, ApiError> {
    let mut out = Vec::new();
    for p in OAuthProvider::ALL {
        let configured = state.store.oauth_client(p.as_str()).await?.is_some()
            || chatterfly_tools::services::env_client(p).is_some();
        out.push(AccountProviderView {
            id: p.as_str().into(),
            label: p.label().into(),
            configured,
            tiers: p
                .tiers()
                .iter()
                .map(|t| TierView {
                    id: t.id.into(),
                    label: t.label.into(),
                    scope: t.scope.into(),
                })
                .collect(),
        });
    }
    Ok(Json(out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// The permission tiers to grant (gmail: `send`, `read`, `full`; github: `read`,
    /// `repo`, `org`). Tiers granted before are asked for again, so none is lost.
    #[schema(min_items = 1)]
    pub tiers: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectView {
    /// Send the person's browser here; the provider comes back to the callback.
    pub authorize_url: String,
}

/// Start connecting an account: the provider's authorize URL (PKCE S256, a state bound to
/// the caller that expires after ten minutes and works once).
#[utoipa::path(post, path = "/api/me/accounts/{provider}/connect", params(("provider" = String, Path)),
    request_body = ConnectRequest,
    responses((status = 200, body = ConnectView), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "Unknown tiers, or no OAuth client configured (`not_configured`)")))]
pub async fn connect(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    mut body: Body,
) -> Result<Json<ConnectView>, ApiError> {
    let p = provider(&name)?;
    let req: ConnectRequest = body.json(&state).await?;
    if req.tiers.len() > 16 {
        return Err(FieldErrors::single("/tiers", "name at most 16 tiers").into());
    }
    let authorize_url = state
        .tools
        .accounts()
        .start_connect(ConnectFor::User(&caller.user.id), p, &req.tiers, &state.app_url)
        .await
        .map_err(|e| match e.code {
            "invalid_tiers" => ApiError::Validation(FieldErrors::single("/tiers", e.message)),
            _ => connect_error(e),
        })?;
    Ok(Json(ConnectView { authorize_url }))
}

/// Where the provider sends the person back. Connected: a redirect to My Accounts
/// (`?connected=<provider>`). Failed: nothing is stored, and the answer is the error's
/// status (400 for a forged, spent, expired or malformed callback or refused consent, 403
/// for another person's, 502 when the provider fails) with a small page that moves the
/// browser on to `/settings/accounts?error=<code>&provider=<provider>`, which says why.
#[utoipa::path(get, path = "/api/auth/connect/{provider}/callback", params(("provider" = String, Path),
    ("code" = Option<String>, Query), ("state" = Option<String>, Query), ("error" = Option<String>, Query)),
    security(()),
    responses((status = 303, description = "Connected: to `/settings/accounts?connected=<provider>`"),
        (status = 400, description = "A forged, spent, expired or malformed callback, or refused consent (an HTML page that moves on to My Accounts)", content_type = "text/html"),
        (status = 403, description = "The flow was started by another person", content_type = "text/html"),
        (status = 404, body = Problem),
        (status = 422, description = "No OAuth client is configured", content_type = "text/html"),
        (status = 502, description = "The provider failed (unreachable, refused the client, not a token, blocked)", content_type = "text/html")))]
pub async fn callback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    method: axum::http::Method,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let p = provider(&name)?;
    if method == axum::http::Method::HEAD {
        // a link checker's HEAD must not spend the state the browser's GET needs
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let mut params = CallbackParams::default();
    // read leniently: a malformed query is the provider's (or a forger's), answered on the page
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        let slot = match k.as_ref() {
            "code" => &mut params.code,
            "state" => &mut params.state,
            "error" => &mut params.error,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.into_owned());
        }
    }
    let session_user = match session_cookie(&headers) {
        Some(cookie) => state
            .store
            .user_by_session_hash(&crate::tokens::hash(cookie))
            .await?
            .map(|o| o.user.id),
        None => None,
    };
    // a participant's flow finishes in the browser holding its cookie (and goes back to
    // the onboarding page, whose link the browser keeps)
    let flow_cookie = super::onboarding::flow_cookie(&headers);
    let browser_hash = flow_cookie.as_deref().map(chatterfly_tools::accounts::hash_hex);
    let outcome = state
        .tools
        .accounts()
        .finish_connect(
            session_user.as_deref(),
            browser_hash.as_deref(),
            p,
            params,
            &state.app_url,
        )
        .await;
    let onboarding = match &outcome {
        Ok(a) => a.participant_id.is_some(),
        Err(e) => e.for_participant,
    };
    match outcome {
        Ok(account) if onboarding => {
            let slug = match &account.connection_id {
                Some(c) => state.store.connection_slug_of(c).await?.unwrap_or_default(),
                None => String::new(),
            };
            let target = format!("/onboard?connected={slug}");
            let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response();
            super::onboarding::clear_flow_cookie(&mut r, &state);
            Ok(r)
        }
        Ok(_) => {
            let target = format!("/settings/accounts?connected={}", p.as_str());
            Ok((StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response())
        }
        Err(e) => {
            tracing::info!(provider = %p, code = e.code, "connect failed");
            // the error's own status (a forged or spent callback is the request's fault, a
            // provider that fails is a gateway's), and a page that moves on to My Accounts,
            // which says what happened
            let status = match e.code {
                "state_other_user" | "state_other_browser" => StatusCode::FORBIDDEN,
                "link_invalid" => StatusCode::GONE,
                "not_asked" => StatusCode::CONFLICT,
                "not_configured" => StatusCode::UNPROCESSABLE_ENTITY,
                "client_refused"
                | "provider_unreachable"
                | "provider_invalid"
                | "identity_failed"
                | "ssrf_blocked"
                | "provider_error" => StatusCode::BAD_GATEWAY,
                "internal" => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            if onboarding {
                let target = format!("/onboard?error={}&provider={}", e.code, p.as_str());
                // a participant is not the operator: what went wrong on our side is not
                // theirs to read (addresses, settings)
                let message = match e.code {
                    "access_denied"
                    | "state_other_browser"
                    | "link_invalid"
                    | "not_asked"
                    | "state_expired"
                    | "state_used"
                    | "state_unknown"
                    | "bad_callback" => e.message.clone(),
                    _ => format!(
                        "connecting your {} account did not work ({}); try again later, or tell whoever sent you the link",
                        p.label(),
                        e.code
                    ),
                };
                let mut r = crate::web::failure_page(status, &message, &target, "Back to your onboarding page");
                super::onboarding::clear_flow_cookie(&mut r, &state);
                return Ok(r);
            }
            let target = format!("/settings/accounts?error={}&provider={}", e.code, p.as_str());
            Ok(crate::web::failure_page(
                status,
                &e.message,
                &target,
                "Continue to My Accounts",
            ))
        }
    }
}

/// Disconnect an account: revoke its grant at the provider where it can, then delete it.
#[utoipa::path(delete, path = "/api/me/accounts/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn disconnect(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::not_found("account"));
    }
    state
        .tools
        .accounts()
        .disconnect(&caller.user.id, &id)
        .await
        .map_err(connect_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which of a connection's secret fields the caller has saved (never the values).
#[derive(Serialize, ToSchema)]
pub struct MyCredentialsView {
    pub connection: String,
    pub auth_type: String,
    /// The fields a key for this connection has.
    pub fields: Vec<String>,
    /// Whether the caller saved a key for it.
    pub set: bool,
    pub updated_at: Option<String>,
}

async fn caller_connection(
    state: &AppState,
    caller: &Caller,
    ws: &str,
    slug: &str,
) -> Result<chatterfly_store::ConnectionRecord, ApiError> {
    let access = WorkspaceAccess::resolve(state, &caller.user, ws).await?;
    let conn = state
        .store
        .connection_head(&access.workspace.id, slug)
        .await?
        .ok_or_else(|| connection_not_found(slug))?;
    let d = &conn.draft;
    if d.fulfillment != Fulfillment::Caller
        || d.auth_type.secret_fields().is_empty()
        || d.account_provider().is_some()
        || matches!(d.auth_type, AuthType::ServiceAccount | AuthType::Oauth)
    {
        return Err(ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "not_personal",
            detail: format!(
                "connection `{}` does not take personal keys: only `caller` connections with a key, token or password do{}",
                d.slug,
                if d.account_provider().is_some() {
                    " (this one uses your account under My Accounts)"
                } else {
                    ""
                }
            ),
        });
    }
    Ok(conn)
}

fn my_view(
    conn: &chatterfly_store::ConnectionRecord,
    saved: Option<&chatterfly_store::PersonalCredentials>,
) -> MyCredentialsView {
    MyCredentialsView {
        connection: conn.draft.slug.to_string(),
        auth_type: conn.draft.auth_type.as_str().into(),
        fields: conn
            .draft
            .auth_type
            .secret_fields()
            .iter()
            .map(|f| (*f).to_owned())
            .collect(),
        set: saved.is_some(),
        updated_at: saved.map(|s| s.updated_at.clone()),
    }
}

/// Whether the caller saved their own key for a `caller` connection.
#[utoipa::path(get, path = "/api/workspaces/{ws}/connections/{slug}/my-credentials",
    params(("ws" = String, Path), ("slug" = String, Path)),
    responses((status = 200, body = MyCredentialsView), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The connection takes no personal keys (`not_personal`)")))]
pub async fn get_my_credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, slug)): Path<(String, String)>,
) -> Result<Json<MyCredentialsView>, ApiError> {
    let conn = caller_connection(&state, &caller, &ws, &slug).await?;
    let saved = state.store.personal_credentials(&caller.user.id, &conn.id).await?;
    Ok(Json(my_view(&conn, saved.as_ref())))
}

/// Save the caller's own key for a `caller` connection: the secret fields of its auth shape
/// (`{"token"}`, `{"key"}`, `{"username","password"}`). Write-only; a blank field keeps
/// the saved value.
#[utoipa::path(put, path = "/api/workspaces/{ws}/connections/{slug}/my-credentials",
    params(("ws" = String, Path), ("slug" = String, Path)), request_body = Object,
    responses((status = 200, body = MyCredentialsView), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The connection takes no personal keys (`not_personal`)"), (status = 422, body = Problem)))]
pub async fn put_my_credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, slug)): Path<(String, String)>,
    mut body: Body,
) -> Result<Json<MyCredentialsView>, ApiError> {
    let conn = caller_connection(&state, &caller, &ws, &slug).await?;
    let given: Map<String, Value> = body.json(&state).await?;
    let id = personal_credentials_id(&caller.user.id, &conn.id);
    let saved = state.store.personal_credentials(&caller.user.id, &conn.id).await?;
    let fields = merged_key(
        &state,
        &conn,
        given,
        saved
            .as_ref()
            .map(|s| (s.secrets_sealed.as_str(), aad::personal_credentials(&s.id))),
    )?;
    let plain = fields.to_sealable_json();
    let sealed = state
        .keys
        .seal(plain.as_bytes(), &aad::personal_credentials(&id))
        .map_err(|e| ApiError::Internal(format!("sealing: {e}")))?;
    let saved = state
        .store
        .put_personal_credentials(&caller.user.id, &conn.id, &sealed)
        .await?;
    tracing::info!(user = %caller.user.id, connection = %conn.id, "personal key saved");
    Ok(Json(my_view(&conn, Some(&saved))))
}

/// A key for a connection from the fields given, checked as the connection's auth shape
/// checks them, on top of the key saved before (`saved`: sealed, with its associated data):
/// a blank field keeps the saved value; every field must be there in the end.
pub(crate) fn merged_key(
    state: &AppState,
    conn: &chatterfly_store::ConnectionRecord,
    given: Map<String, Value>,
    saved: Option<(&str, Vec<u8>)>,
) -> Result<SecretFields, ApiError> {
    let t = conn.draft.auth_type;
    let mut auth = Map::new();
    auth.insert("type".into(), Value::String(t.as_str().into()));
    for (k, v) in &conn.draft.auth_public {
        auth.insert(k.clone(), Value::String(v.clone()));
    }
    for (k, v) in given {
        if !t.secret_fields().contains(&k.as_str()) {
            return Err(FieldErrors::single(
                format!("/{}", chatterfly_domain::error::pointer_token(&k)),
                format!(
                    "`{}` is not a field of a `{t}` key; give {}",
                    k.chars().take(40).collect::<String>(),
                    t.secret_fields().join(", ")
                ),
            )
            .into());
        }
        auth.insert(k, v);
    }
    let spec = AuthSpec::parse(&Value::Object(auth)).map_err(ApiError::Validation)?;
    let mut fields = match saved {
        Some((sealed, aad)) => {
            let plain = state
                .keys
                .open_string(sealed, &aad)
                .map_err(|e| ApiError::Internal(format!("saved credentials: {e}")))?;
            SecretFields::from_sealed_json(plain.expose_secret()).map_err(|e| ApiError::Internal(e.to_owned()))?
        }
        None => SecretFields::default(),
    };
    for (k, v) in spec.secrets.0 {
        fields.0.insert(k, v);
    }
    let mut missing = FieldErrors::new();
    for f in t.secret_fields() {
        if fields.get(f).is_none() {
            missing.push(format!("/{f}"), format!("a `{t}` key needs `{f}`"));
        }
    }
    if !missing.is_empty() {
        return Err(missing.into());
    }
    Ok(fields)
}

/// Remove the caller's own key for a connection.
#[utoipa::path(delete, path = "/api/workspaces/{ws}/connections/{slug}/my-credentials",
    params(("ws" = String, Path), ("slug" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The connection takes no personal keys (`not_personal`)")))]
pub async fn delete_my_credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, slug)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let conn = caller_connection(&state, &caller, &ws, &slug).await?;
    state
        .store
        .delete_personal_credentials(&caller.user.id, &conn.id)
        .await
        .map_err(|e| match e {
            chatterfly_store::StoreError::NotFound => {
                ApiError::NotFound(format!("you have no key saved for `{}`", conn.draft.slug))
            }
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}
