//! My Accounts: the OAuth connect flow (authorization code with PKCE S256, a single-use
//! `state` bound to the person), the accounts it stores (tokens sealed to the account row),
//! access tokens for calls (refreshed before they expire, once per account across
//! replicas), and disconnecting (revoking at the provider where it can).
//!
//! Every request to a provider goes through the guarded egress client: a registry entry's
//! endpoint overrides are outbound targets like any other. Tokens and codes are held in
//! play for the log's redaction while they are used, and never formatted into an error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatterfly_domain::{Fulfillment, OAuthProvider};
use chatterfly_egress::{Egress, EgressError, Limits, OutboundRequest, in_play};
use chatterfly_store::{
    AccountOwner, AccountRecord, AccountWrite, OAuthState, StateTaken, Store, StoreError, aad, new_id,
};
use chatterfly_vault::{ExposeSecret, KeyRing, Secret};
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use crate::ToolError;
use crate::services::{OAuthClientCredentials, oauth_client};

/// How long a connect flow may take between Connect and the callback.
pub const STATE_TTL_SECS: i64 = 600;
/// An access token this close to its expiry is refreshed before a call.
pub const REFRESH_MARGIN_SECS: i64 = 60;
/// How long a replica may hold an account's refresh before another may take it over.
const LEASE_MS: i64 = 30_000;
/// The longest `code` a callback takes (providers' codes are well under 1 KB).
const MAX_CODE_LEN: usize = 2048;
/// A provider's token or identity answer larger than this is not one.
const MAX_PROVIDER_ANSWER: usize = 256 * 1024;

/// Why the connect flow or an account operation failed: a stable code the My Accounts page
/// turns into a message, and the message itself for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    pub code: &'static str,
    pub message: String,
    /// The flow was a participant's (so its page is the onboarding page, not My Accounts).
    pub for_participant: bool,
}

impl ConnectError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            for_participant: false,
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<StoreError> for ConnectError {
    fn from(e: StoreError) -> Self {
        Self::new("internal", format!("internal error: {e}"))
    }
}

impl From<ToolError> for ConnectError {
    fn from(e: ToolError) -> Self {
        match e {
            ToolError::NotConfigured(m) => Self::new("not_configured", m),
            other => Self::new("internal", other.to_string()),
        }
    }
}

/// A provider's endpoints in effect: the registry's overrides, else the provider's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEndpoints {
    pub authorize_url: String,
    pub token_url: String,
    pub revoke_url: Option<String>,
    pub api_base_url: String,
}

pub fn endpoints(provider: OAuthProvider, over: &chatterfly_store::EndpointOverrides) -> ResolvedEndpoints {
    let d = provider.default_endpoints();
    ResolvedEndpoints {
        authorize_url: over.authorize_url.clone().unwrap_or_else(|| d.authorize_url.to_owned()),
        token_url: over.token_url.clone().unwrap_or_else(|| d.token_url.to_owned()),
        revoke_url: over.revoke_url.clone().or_else(|| d.revoke_url.map(str::to_owned)),
        api_base_url: over
            .api_base_url
            .clone()
            .unwrap_or_else(|| d.api_base_url.to_owned())
            .trim_end_matches('/')
            .to_owned(),
    }
}

/// The redirect URI registered with providers.
pub fn redirect_uri(app_url: &str, provider: OAuthProvider) -> String {
    format!(
        "{}/api/auth/connect/{}/callback",
        app_url.trim_end_matches('/'),
        provider.as_str()
    )
}

/// Whose account a connect flow makes.
#[derive(Debug, Clone)]
pub enum ConnectFor<'a> {
    /// A signed-in person's own (My Accounts).
    User(&'a str),
    /// A participant's, for one connection, through one onboarding link, in the browser
    /// holding the flow cookie whose SHA-256 is `browser_hash`.
    Participant {
        participant_id: &'a str,
        connection_id: &'a str,
        link_id: &'a str,
        browser_hash: String,
    },
}

impl ConnectFor<'_> {
    fn owner(&self) -> AccountOwner<'_> {
        match self {
            Self::User(u) => AccountOwner::User(u),
            Self::Participant {
                participant_id,
                connection_id,
                ..
            } => AccountOwner::Participant {
                participant_id,
                connection_id,
            },
        }
    }
}

/// The SHA-256 (hex) of a value kept only as its hash (onboarding tokens, flow cookies).
pub fn hash_hex(value: &str) -> String {
    hex_lower(&Sha256::digest(value.as_bytes()))
}

/// What the callback received (raw query parameters).
#[derive(Debug, Default, Clone)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// The sealed token pair of an account.
struct Tokens {
    access: Secret,
    refresh: Option<Secret>,
}

impl Tokens {
    fn seal(&self, keys: &KeyRing, account_id: &str) -> Result<String, ToolError> {
        let mut obj = Map::new();
        obj.insert(
            "access_token".into(),
            Value::String(self.access.expose_secret().to_owned()),
        );
        if let Some(r) = &self.refresh {
            obj.insert("refresh_token".into(), Value::String(r.expose_secret().to_owned()));
        }
        let text = Secret::from(Value::Object(obj).to_string());
        keys.seal(text.expose_secret().as_bytes(), &aad::account_tokens(account_id))
            .map_err(|e| ToolError::Internal(format!("sealing tokens: {e}")))
    }

    fn open(keys: &KeyRing, account: &AccountRecord) -> Result<Self, ToolError> {
        let plain = keys
            .open_string(&account.tokens_sealed, &aad::account_tokens(&account.id))
            .map_err(|e| ToolError::Internal(format!("account {}: {e}", account.id)))?;
        let v: Value = serde_json::from_str(plain.expose_secret())
            .map_err(|_| ToolError::Internal(format!("account {}: sealed tokens are not JSON", account.id)))?;
        let access = v
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| ToolError::Internal(format!("account {}: no access token", account.id)))?;
        Ok(Self {
            access: Secret::from(access.to_owned()),
            refresh: v
                .get("refresh_token")
                .and_then(Value::as_str)
                .map(|r| Secret::from(r.to_owned())),
        })
    }
}

/// A valid token answer from a provider.
struct TokenAnswer {
    access: Secret,
    refresh: Option<Secret>,
    expires_in: Option<i64>,
    scope: Option<String>,
    id_token: Option<String>,
    _held: in_play::SecretGuard,
}

/// What went wrong at the token endpoint.
enum TokenFailure {
    /// `invalid_grant` or another refusal of the code or refresh token.
    Refused(String),
    /// The client id or secret was refused.
    Client,
    Blocked(String),
    Unreachable(String),
    Garbage(String),
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The store id of a state: its SHA-256, hex.
fn state_id(state: &str) -> String {
    hex_lower(&Sha256::digest(state.as_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn provider_limits(egress: &Egress) -> Option<Limits> {
    let max = egress.max_limits();
    Some(
        Limits {
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(20),
            max_response_bytes: MAX_PROVIDER_ANSWER,
            max_redirects: 0,
        }
        .within(max),
    )
}

fn form_body(pairs: &[(&str, &str)]) -> bytes::Bytes {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    bytes::Bytes::from(s.finish())
}

/// A form POST to an OAuth endpoint (token, revocation) that answers JSON.
pub(crate) fn form_post(url: Url, pairs: &[(&str, &str)]) -> OutboundRequest {
    let mut req = OutboundRequest::new(Method::POST, url);
    req.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    req.headers
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    req.body = Some(form_body(pairs));
    req
}

/// Single-flight of refreshes within this process (the store's lease does it across
/// replicas): one task per account goes to the database and the provider.
#[derive(Default)]
pub struct RefreshLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The last refresh of an account (at a version) that failed without an answer, so
    /// the calls that queued behind it fail with it instead of trying again one by one.
    failures: Mutex<HashMap<String, (i64, std::time::Instant)>>,
}

/// How long a failed refresh answers for the calls that waited on it.
const FAILURE_SHARED_FOR: Duration = Duration::from_secs(10);

impl RefreshLocks {
    pub(crate) fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 10_000 {
            map.retain(|_, l| Arc::strong_count(l) > 1);
        }
        map.entry(id.to_owned()).or_default().clone()
    }

    fn failed(&self, id: &str, version: i64) {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < FAILURE_SHARED_FOR);
        }
        map.insert(id.to_owned(), (version, std::time::Instant::now()));
    }

    fn failed_recently(&self, id: &str, version: i64) -> bool {
        let map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(id)
            .is_some_and(|(v, at)| *v == version && at.elapsed() < FAILURE_SHARED_FOR)
    }
}

/// The origin of a URL (`scheme://host:port`), for comparing where a token may go.
fn origin_of(url: &str) -> Option<String> {
    Url::parse(url).ok().map(|u| u.origin().ascii_serialization())
}

/// The account side of the tool registry.
pub struct Accounts<'a> {
    pub store: &'a Store,
    pub keys: &'a KeyRing,
    pub egress: &'a Egress,
    pub locks: &'a RefreshLocks,
}

/// An access token for a call, and the scopes the account granted.
pub struct AccountToken {
    pub token: Secret,
    pub scopes: String,
    pub identity: String,
}

impl Accounts<'_> {
    async fn client(
        &self,
        provider: OAuthProvider,
    ) -> Result<(OAuthClientCredentials, ResolvedEndpoints), ConnectError> {
        let client = oauth_client(self.store, self.keys, provider).await?;
        let ep = endpoints(provider, &client.endpoints);
        Ok((client, ep))
    }

    /// Starts a connect flow: the provider's authorize URL, with the tiers' scopes (and
    /// those already granted, so reconnecting never loses a tier), PKCE S256 and a state
    /// bound to the person, valid for ten minutes and once.
    pub async fn start_connect(
        &self,
        who: ConnectFor<'_>,
        provider: OAuthProvider,
        tiers: &[String],
        app_url: &str,
    ) -> Result<String, ConnectError> {
        if tiers.is_empty() {
            return Err(ConnectError::new(
                "invalid_tiers",
                format!(
                    "choose at least one tier: {}",
                    provider.tiers().iter().map(|t| t.id).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let mut wanted: Vec<String> = tiers.to_vec();
        if let Some(existing) = self.store.account_for(who.owner(), provider.as_str()).await?
            && existing.status == "connected"
        {
            for t in provider.tiers_granted(&existing.scopes) {
                if !wanted.iter().any(|w| w == t) {
                    wanted.push(t.to_owned());
                }
            }
        }
        let scopes = provider
            .scopes_for(&wanted)
            .map_err(|m| ConnectError::new("invalid_tiers", m))?;
        let (client, ep) = self.client(provider).await?;
        let mut url = Url::parse(&ep.authorize_url).map_err(|_| {
            ConnectError::new(
                "not_configured",
                format!("the authorize URL of `{provider}` is not a URL"),
            )
        })?;
        let state = random_token();
        let verifier = random_token();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let id = state_id(&state);
        let verifier_sealed = self
            .keys
            .seal(verifier.as_bytes(), &aad::oauth_state(&id))
            .map_err(|e| ConnectError::new("internal", format!("sealing: {e}")))?;
        let (user_id, participant_id, connection_id, link_id, browser_hash) = match &who {
            ConnectFor::User(u) => (Some((*u).to_owned()), None, None, None, None),
            ConnectFor::Participant {
                participant_id,
                connection_id,
                link_id,
                browser_hash,
            } => (
                None,
                Some((*participant_id).to_owned()),
                Some((*connection_id).to_owned()),
                Some((*link_id).to_owned()),
                Some(browser_hash.clone()),
            ),
        };
        self.store
            .create_oauth_state(&OAuthState {
                id,
                user_id,
                participant_id,
                connection_id,
                link_id,
                browser_hash,
                provider: provider.as_str().to_owned(),
                scopes: scopes.join(" "),
                verifier_sealed,
                expires_at: now_secs() + STATE_TTL_SECS,
            })
            .await?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &client.client_id)
                .append_pair("redirect_uri", &redirect_uri(app_url, provider))
                .append_pair("scope", &scopes.join(" "))
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if provider == OAuthProvider::Gmail {
                // a refresh token on every consent, and earlier grants kept
                q.append_pair("access_type", "offline")
                    .append_pair("prompt", "consent")
                    .append_pair("include_granted_scopes", "true");
            }
        }
        Ok(url.into())
    }

    /// The callback: checks the state (known, unused, unexpired, this provider's, and this
    /// person's, or for a participant this browser's with its onboarding link still valid),
    /// exchanges the code, learns the identity, and saves the account. On any failure
    /// nothing is stored. `browser_hash`: the SHA-256 of the participant flow cookie, when
    /// the browser sent one.
    pub async fn finish_connect(
        &self,
        session_user: Option<&str>,
        browser_hash: Option<&str>,
        provider: OAuthProvider,
        params: CallbackParams,
        app_url: &str,
    ) -> Result<AccountRecord, ConnectError> {
        let mut participant = browser_hash.is_some();
        self.finish_inner(session_user, browser_hash, provider, params, app_url, &mut participant)
            .await
            .map_err(|e| ConnectError {
                for_participant: participant,
                ..e
            })
    }

    async fn finish_inner(
        &self,
        session_user: Option<&str>,
        browser_hash: Option<&str>,
        provider: OAuthProvider,
        params: CallbackParams,
        app_url: &str,
        participant_flow: &mut bool,
    ) -> Result<AccountRecord, ConnectError> {
        let again = if browser_hash.is_some() {
            "open your onboarding link again"
        } else {
            "start again from My Accounts"
        };
        let state = params
            .state
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(|| ConnectError::new("state_unknown", "the answer from the provider has no valid `state`"))?;
        let taken = self.store.take_oauth_state(&state_id(&state)).await?;
        let pending = match taken {
            StateTaken::Unknown => {
                return Err(ConnectError::new(
                    "state_unknown",
                    format!("this connect link was not started here (unknown `state`); {again}"),
                ));
            }
            StateTaken::Used { participant } => {
                *participant_flow |= participant;
                let again = if participant {
                    "open your onboarding link again"
                } else {
                    again
                };
                return Err(ConnectError::new(
                    "state_used",
                    format!("this connect link was already used; {again}"),
                ));
            }
            StateTaken::Taken(s) => s,
        };
        *participant_flow = pending.participant_id.is_some();
        let again = if pending.participant_id.is_some() {
            "open your onboarding link again"
        } else {
            "start again from My Accounts"
        };
        if pending.provider != provider.as_str() {
            return Err(ConnectError::new(
                "state_unknown",
                format!("this connect link was started for another provider; {again}"),
            ));
        }
        if pending.expires_at < now_secs() {
            return Err(ConnectError::new(
                "state_expired",
                format!("the connect link expired (it lasts ten minutes); {again}"),
            ));
        }
        let mut participant_ws = String::new();
        let owner = match (&pending.user_id, &pending.participant_id, &pending.connection_id) {
            (Some(user), _, _) => {
                match session_user {
                    None => {
                        return Err(ConnectError::new(
                            "not_signed_in",
                            "sign in to Chatterfly in this browser, then connect again",
                        ));
                    }
                    Some(u) if u != user => {
                        return Err(ConnectError::new(
                            "state_other_user",
                            "this connect link was started by another person; start your own from My Accounts",
                        ));
                    }
                    Some(_) => {}
                }
                AccountOwner::User(user)
            }
            (None, Some(participant), Some(connection)) => {
                // the flow finishes in the browser that started it, while its link is valid
                if browser_hash.is_none() || pending.browser_hash.as_deref() != browser_hash {
                    return Err(ConnectError::new(
                        "state_other_browser",
                        "this connect link was started in another browser; open your onboarding link in this one and connect again",
                    ));
                }
                let link = match &pending.link_id {
                    Some(l) => self.store.onboarding_link(l).await?,
                    None => None,
                };
                let Some(link) = link.filter(|l| {
                    l.participant.id == *participant && l.link.revoked_at.is_none() && l.link.expires_at > now_secs()
                }) else {
                    return Err(ConnectError::new(
                        "link_invalid",
                        "the onboarding link this was started from is no longer valid (revoked or expired); ask for a new one",
                    ));
                };
                self.still_asked_of(&link.participant.role, connection, provider)
                    .await?;
                participant_ws = link.participant.workspace_id;
                AccountOwner::Participant {
                    participant_id: participant,
                    connection_id: connection,
                }
            }
            _ => return Err(ConnectError::new("internal", "a connect flow without an owner")),
        };
        if let Some(error) = params.error {
            return Err(if error == "access_denied" {
                ConnectError::new(
                    "access_denied",
                    format!("consent was refused at {}: nothing was connected", provider.label()),
                )
            } else {
                ConnectError::new(
                    "provider_error",
                    format!(
                        "{} answered with an error instead of a code; nothing was connected",
                        provider.label()
                    ),
                )
            });
        }
        let code = params.code.unwrap_or_default();
        // RFC 6749: a code is visible ASCII; anything else (a decoding's U+FFFD, a line
        // break) is not a code a provider issued
        if code.is_empty() || code.len() > MAX_CODE_LEN || !code.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConnectError::new(
                "bad_callback",
                format!("the answer from the provider carries no usable `code`; {again}"),
            ));
        }
        let _code_held = in_play::hold([code.as_str()]);
        let verifier = self
            .keys
            .open_string(&pending.verifier_sealed, &aad::oauth_state(&pending.id))
            .map_err(|e| ConnectError::new("internal", format!("opening the verifier: {e}")))?;
        let (client, ep) = self.client(provider).await?;
        let redirect = redirect_uri(app_url, provider);
        let answer = self
            .token_request(
                &ep.token_url,
                &client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &redirect),
                    ("code_verifier", verifier.expose_secret()),
                ],
            )
            .await
            .map_err(|f| connect_failure(provider, f))?;
        let identity = self.identity(provider, &ep, &answer).await.map_err(|m| {
            if m.contains("not allowed") {
                ConnectError::new("ssrf_blocked", m)
            } else {
                ConnectError::new("identity_failed", m)
            }
        })?;
        let granted = answer.scope.clone().unwrap_or(pending.scopes);
        let existing = self.store.account_for(owner, provider.as_str()).await?;
        let id = existing.as_ref().map_or_else(new_id, |a| a.id.clone());
        // a reconnect without a new refresh token keeps the one stored
        let refresh = match (&answer.refresh, &existing) {
            (Some(r), _) => Some(r.clone()),
            (None, Some(a)) => Tokens::open(self.keys, a).ok().and_then(|t| t.refresh),
            (None, None) => None,
        };
        let tokens = Tokens {
            access: answer.access.clone(),
            refresh,
        };
        let sealed = tokens.seal(self.keys, &id).map_err(ConnectError::from)?;
        let expires_at = answer.expires_in.map(|s| now_secs() + s);
        if let AccountOwner::Participant {
            participant_id,
            connection_id,
        } = owner
        {
            // the exchange took a while: an admin may have moved the participant to another
            // role, or the connection to another role, meanwhile
            let role = self
                .store
                .participant(&participant_ws, participant_id)
                .await?
                .map(|p| p.role)
                .ok_or_else(|| {
                    ConnectError::new("link_invalid", "this participant was removed; nothing was connected")
                })?;
            self.still_asked_of(&role, connection_id, provider).await?;
        }
        let saved = self
            .store
            .save_account(&AccountWrite {
                id: &id,
                owner,
                provider: provider.as_str(),
                identity: &identity,
                scopes: &granted,
                tokens_sealed: &sealed,
                expires_at,
            })
            .await?;
        tracing::info!(
            user = ?pending.user_id,
            participant = ?pending.participant_id,
            provider = %provider,
            account = %saved.id,
            "account connected"
        );
        Ok(saved)
    }

    /// A participant's connect flow stands only while the connection still asks the
    /// participant's role for credentials (an admin may have changed either meanwhile).
    async fn still_asked_of(
        &self,
        role: &str,
        connection_id: &str,
        provider: OAuthProvider,
    ) -> Result<(), ConnectError> {
        let conn = self.store.connection_by_id(connection_id).await?;
        let asked = conn.is_some_and(|c| {
            c.draft.fulfillment == Fulfillment::Participant
                && c.draft.participant_role.as_ref().is_some_and(|r| r.as_str() == role)
                && c.draft.account_provider() == Some(provider)
        });
        if asked {
            Ok(())
        } else {
            Err(ConnectError::new(
                "not_asked",
                "this connection no longer asks you for an account (your role or the connection changed meanwhile); nothing was connected",
            ))
        }
    }

    async fn token_request(
        &self,
        token_url: &str,
        client: &OAuthClientCredentials,
        pairs: &[(&str, &str)],
    ) -> Result<TokenAnswer, TokenFailure> {
        let url = Url::parse(token_url).map_err(|_| TokenFailure::Unreachable("the token URL is not a URL".into()))?;
        let mut all: Vec<(&str, &str)> = pairs.to_vec();
        all.push(("client_id", &client.client_id));
        all.push(("client_secret", client.client_secret.expose_secret()));
        let _held = in_play::hold(
            pairs
                .iter()
                .filter(|(k, _)| ["code", "refresh_token", "code_verifier"].contains(k))
                .map(|(_, v)| *v)
                .chain([client.client_secret.expose_secret()]),
        );
        let req = form_post(url, &all);
        let resp = match self.egress.send(req, provider_limits(self.egress)).await {
            Ok(r) => r,
            Err(e @ EgressError::Blocked { .. }) => return Err(TokenFailure::Blocked(e.to_string())),
            Err(e @ EgressError::TooLarge { .. }) => return Err(TokenFailure::Garbage(e.to_string())),
            Err(e) => return Err(TokenFailure::Unreachable(e.to_string())),
        };
        let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
        let error = body
            .as_ref()
            .and_then(|b| b.get("error"))
            .and_then(Value::as_str)
            .map(short_code);
        // a provider in trouble (5xx, whatever its body says: `server_error`,
        // `temporarily_unavailable`) has refused nothing: the account stays connected
        if resp.status.is_server_error() {
            return Err(TokenFailure::Unreachable(format!(
                "the token endpoint answered HTTP {}",
                resp.status.as_u16()
            )));
        }
        if resp.status == StatusCode::UNAUTHORIZED || error.as_deref() == Some("invalid_client") {
            return Err(TokenFailure::Client);
        }
        if let Some(e) = error {
            return Err(TokenFailure::Refused(e));
        }
        if resp.status.is_client_error() {
            return Err(TokenFailure::Refused(format!("HTTP {}", resp.status.as_u16())));
        }
        if !resp.status.is_success() {
            return Err(TokenFailure::Unreachable(format!(
                "the token endpoint answered HTTP {}",
                resp.status.as_u16()
            )));
        }
        let Some(Value::Object(body)) = body else {
            return Err(TokenFailure::Garbage(
                "the token endpoint's answer is not a JSON object".into(),
            ));
        };
        let access = match body.get("access_token") {
            Some(Value::String(s)) if token_text(s) => s,
            _ => {
                return Err(TokenFailure::Garbage(
                    "the token endpoint's answer has no usable `access_token`".into(),
                ));
            }
        };
        let held = in_play::hold(
            [access.as_str()]
                .into_iter()
                .chain(body.get("refresh_token").and_then(Value::as_str))
                .chain(body.get("id_token").and_then(Value::as_str)),
        );
        if let Some(t) = body.get("token_type").and_then(Value::as_str)
            && !t.eq_ignore_ascii_case("bearer")
        {
            return Err(TokenFailure::Garbage(format!(
                "the token type is `{}`, not bearer",
                short_code(t)
            )));
        }
        let expires_in = match body.get("expires_in") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let n = v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .filter(|n| (0..=10 * 365 * 86_400).contains(n));
                Some(n.ok_or_else(|| {
                    TokenFailure::Garbage("`expires_in` is not a non-negative number of seconds".into())
                })?)
            }
        };
        let refresh = match body.get("refresh_token") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if token_text(s) => Some(Secret::from(s.clone())),
            Some(_) => return Err(TokenFailure::Garbage("`refresh_token` is not a token".into())),
        };
        let scope = match body.get("scope") {
            Some(Value::String(s)) if s.len() <= 8192 && !s.chars().any(char::is_control) => Some(s.clone()),
            Some(Value::Array(a)) => Some(a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")),
            _ => None,
        };
        Ok(TokenAnswer {
            access: Secret::from(access.clone()),
            refresh,
            expires_in,
            scope,
            id_token: body.get("id_token").and_then(Value::as_str).map(str::to_owned),
            _held: held,
        })
    }

    /// Google: the e-mail address in the id token (received straight from the token
    /// endpoint over TLS, so not re-verified; OpenID Connect Core 3.1.3.7), else Gmail's
    /// profile. GitHub: the login from `GET /user`.
    async fn identity(
        &self,
        provider: OAuthProvider,
        ep: &ResolvedEndpoints,
        answer: &TokenAnswer,
    ) -> Result<String, String> {
        match provider {
            OAuthProvider::Gmail => {
                if let Some(email) = answer
                    .id_token
                    .as_deref()
                    .and_then(jwt_claims)
                    .and_then(|c| c.get("email").and_then(Value::as_str).map(str::to_owned))
                    && chatterfly_domain::email::check_address(&email).is_ok()
                {
                    return Ok(email);
                }
                let v = self
                    .api_get(
                        &format!("{}/gmail/v1/users/me/profile", ep.api_base_url),
                        &answer.access,
                    )
                    .await?;
                v.get("emailAddress")
                    .and_then(Value::as_str)
                    .filter(|e| chatterfly_domain::email::check_address(e).is_ok())
                    .map(str::to_owned)
                    .ok_or_else(|| "Google did not tell which account this is (no e-mail address)".to_owned())
            }
            OAuthProvider::Github => {
                let v = self
                    .api_get(&format!("{}/user", ep.api_base_url), &answer.access)
                    .await?;
                v.get("login")
                    .and_then(Value::as_str)
                    // GitHub logins are ASCII letters, digits and hyphens: nothing invisible
                    // or look-alike can pass
                    .filter(|l| {
                        !l.is_empty() && l.len() <= 100 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    })
                    .map(str::to_owned)
                    .ok_or_else(|| "GitHub did not tell which account this is (no login)".to_owned())
            }
        }
    }

    async fn api_get(&self, url: &str, token: &Secret) -> Result<Value, String> {
        let url = Url::parse(url).map_err(|_| "the provider's API URL is not a URL".to_owned())?;
        let mut req = OutboundRequest::new(Method::GET, url);
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| "the access token cannot be sent in a header".to_owned())?;
        auth.set_sensitive(true);
        req.headers.insert(header::AUTHORIZATION, auth);
        req.headers
            .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        req.headers
            .insert(header::USER_AGENT, HeaderValue::from_static("chatterfly"));
        let resp = self
            .egress
            .send(req, provider_limits(self.egress))
            .await
            .map_err(|e| format!("asking the provider who this is failed: {e}"))?;
        if !resp.status.is_success() {
            return Err(format!(
                "asking the provider who this is failed: HTTP {}",
                resp.status.as_u16()
            ));
        }
        serde_json::from_slice(&resp.body).map_err(|_| "the provider's answer about the account is not JSON".to_owned())
    }

    /// A valid access token of the person's account at `provider`, refreshed first when it
    /// is about to expire.
    /// The only origin a person's token for `provider` is sent to: its API's (the registry's
    /// `api_base_url`, else the provider's own).
    pub async fn api_origin(&self, provider: OAuthProvider) -> Result<String, ToolError> {
        let over = match self.store.oauth_client(provider.as_str()).await? {
            Some(row) => row.endpoints,
            None => chatterfly_store::EndpointOverrides::default(),
        };
        let ep = endpoints(provider, &over);
        origin_of(&ep.api_base_url)
            .ok_or_else(|| ToolError::Internal(format!("the API URL of `{provider}` is not a URL")))
    }

    /// Refuses to hand a person's token to a connection aimed anywhere but the provider's
    /// API: a workspace admin must not be able to point a `caller` connection at a server of
    /// their own and collect the tokens of everyone who calls it.
    pub async fn check_target(&self, provider: OAuthProvider, base_url: &str, slug: &str) -> Result<(), ToolError> {
        let allowed = self.api_origin(provider).await?;
        if origin_of(base_url).as_deref() != Some(allowed.as_str()) {
            return Err(ToolError::AccountOrigin(format!(
                "connection `{slug}` would send your {} token to {}, but tokens of {} accounts only go to {allowed}; a workspace admin must point the connection there",
                provider.label(),
                origin_of(base_url).unwrap_or_else(|| "an unknown address".into()),
                provider.label()
            )));
        }
        Ok(())
    }

    pub async fn access_token(
        &self,
        owner: AccountOwner<'_>,
        provider: OAuthProvider,
        slug: &str,
    ) -> Result<AccountToken, ToolError> {
        let missing = || match owner {
            AccountOwner::User(_) => ToolError::CredentialsRequired(format!(
                "connection `{slug}` uses your own {} account, and none is connected: connect it under Settings → My Accounts (/settings/accounts), or pass `credentials`",
                provider.label()
            )),
            AccountOwner::Participant { participant_id, .. } => ToolError::CredentialsRequired(format!(
                "participant `{participant_id}` has not connected a {} account for connection `{slug}`: send them their onboarding link",
                provider.label()
            )),
        };
        let account = self
            .store
            .account_for(owner, provider.as_str())
            .await?
            .ok_or_else(missing)?;
        if let Some(token) = self.usable(&account, false)? {
            return Ok(token);
        }
        let seen = account.version;
        let lock = self.locks.lock_for(&account.id);
        let _one = lock.lock().await;
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(u64::try_from(LEASE_MS).unwrap_or(30_000) + 5_000);
        loop {
            let account = self
                .store
                .account_for(owner, provider.as_str())
                .await?
                .ok_or_else(missing)?;
            // a token another call (or replica) refreshed meanwhile is used while it is valid
            if let Some(token) = self.usable(&account, account.version != seen)? {
                return Ok(token);
            }
            if self.locks.failed_recently(&account.id, account.version) {
                return Err(ToolError::AccountRefresh(format!(
                    "refreshing the {} token failed a moment ago; try again shortly",
                    provider.label()
                )));
            }
            let now = now_ms();
            if self
                .store
                .lease_refresh(&account.id, account.version, now, now + LEASE_MS)
                .await?
            {
                return self.refresh(provider, &account).await;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ToolError::AccountRefresh(format!(
                    "the {} account's token could not be refreshed in time; try again",
                    provider.label()
                )));
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    /// The account's token when it can be used as it is; `None`: it needs a refresh. A
    /// token refreshed since the caller first looked (`just_refreshed`) is used while it is
    /// valid at all, so a short-lived token is not refreshed once per waiting call.
    fn usable(&self, account: &AccountRecord, just_refreshed: bool) -> Result<Option<AccountToken>, ToolError> {
        if account.status != "connected" {
            return Err(ToolError::AccountNeedsReconnect(format!(
                "the {} account `{}` must be connected again (the provider refused to refresh its token): {}",
                provider_label(&account.provider),
                account.identity,
                reconnect_where(account)
            )));
        }
        let margin = if just_refreshed { 5 } else { REFRESH_MARGIN_SECS };
        let fresh = account.expires_at.is_none_or(|e| e - now_secs() > margin);
        if !fresh {
            return Ok(None);
        }
        let tokens = Tokens::open(self.keys, account)?;
        Ok(Some(AccountToken {
            token: tokens.access,
            scopes: account.scopes.clone(),
            identity: account.identity.clone(),
        }))
    }

    async fn refresh(&self, provider: OAuthProvider, account: &AccountRecord) -> Result<AccountToken, ToolError> {
        let tokens = Tokens::open(self.keys, account)?;
        let Some(refresh) = tokens.refresh else {
            self.store.mark_needs_reconnect(&account.id, account.version).await?;
            return Err(ToolError::AccountNeedsReconnect(format!(
                "the {} account `{}` has expired and cannot be refreshed: {}",
                provider.label(),
                account.identity,
                reconnect_where(account)
            )));
        };
        let (client, ep) = match self.client(provider).await {
            Ok(c) => c,
            Err(e) => {
                self.store.release_refresh(&account.id, account.version).await?;
                return Err(ToolError::NotConfigured(e.message));
            }
        };
        let result = self
            .token_request(
                &ep.token_url,
                &client,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.expose_secret()),
                ],
            )
            .await;
        match result {
            Ok(answer) => {
                let new = Tokens {
                    access: answer.access.clone(),
                    // a rotated refresh token replaces the old one
                    refresh: answer.refresh.clone().or(Some(refresh)),
                };
                let sealed = new.seal(self.keys, &account.id)?;
                let expires_at = answer.expires_in.map(|s| now_secs() + s);
                self.store
                    .store_refreshed(
                        &account.id,
                        account.version,
                        &sealed,
                        expires_at,
                        answer.scope.as_deref(),
                    )
                    .await?;
                tracing::info!(account = %account.id, provider = %provider, "access token refreshed");
                Ok(AccountToken {
                    token: answer.access,
                    scopes: answer.scope.unwrap_or_else(|| account.scopes.clone()),
                    identity: account.identity.clone(),
                })
            }
            Err(TokenFailure::Refused(_)) => {
                self.store.mark_needs_reconnect(&account.id, account.version).await?;
                tracing::info!(account = %account.id, provider = %provider, "refresh refused: account needs reconnecting");
                Err(ToolError::AccountNeedsReconnect(format!(
                    "{} refused to refresh the token of `{}`: {}",
                    provider.label(),
                    account.identity,
                    reconnect_where(account)
                )))
            }
            Err(f) => {
                self.locks.failed(&account.id, account.version);
                self.store.release_refresh(&account.id, account.version).await?;
                Err(ToolError::AccountRefresh(format!(
                    "refreshing the {} token failed: {}",
                    provider.label(),
                    failure_text(&f)
                )))
            }
        }
    }

    /// Revokes the account's grant at the provider (where it can) and deletes it. Returns
    /// whether the provider confirmed the revocation.
    pub async fn disconnect(&self, user_id: &str, id: &str) -> Result<bool, ConnectError> {
        let account = self
            .store
            .account(user_id, id)
            .await?
            .ok_or_else(|| ConnectError::new("not_found", "no such account"))?;
        let revoked = match account.provider.parse::<OAuthProvider>() {
            Ok(provider) => self.revoke(provider, &account).await,
            Err(_) => false,
        };
        match self.store.delete_account(user_id, id).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user = %user_id, account = %id, revoked, "account disconnected");
        Ok(revoked)
    }

    async fn revoke(&self, provider: OAuthProvider, account: &AccountRecord) -> bool {
        let Ok(tokens) = Tokens::open(self.keys, account) else {
            return false;
        };
        let Ok((client, ep)) = self.client(provider).await else {
            return false;
        };
        let token = tokens.refresh.as_ref().unwrap_or(&tokens.access);
        let _held = in_play::hold([token.expose_secret(), tokens.access.expose_secret()]);
        let req = if let Some(revoke_url) = &ep.revoke_url {
            // RFC 7009
            let Ok(url) = Url::parse(revoke_url) else { return false };
            form_post(
                url,
                &[
                    ("token", token.expose_secret()),
                    ("client_id", &client.client_id),
                    ("client_secret", client.client_secret.expose_secret()),
                ],
            )
        } else {
            // GitHub: DELETE /applications/{client_id}/grant with the client's Basic auth
            let Ok(url) = Url::parse(&format!(
                "{}/applications/{}/grant",
                ep.api_base_url,
                chatterfly_domain::encode_component(&client.client_id)
            )) else {
                return false;
            };
            let mut req = OutboundRequest::new(Method::DELETE, url);
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                client.client_id,
                client.client_secret.expose_secret()
            ));
            let Ok(mut v) = HeaderValue::from_str(&format!("Basic {basic}")) else {
                return false;
            };
            v.set_sensitive(true);
            req.headers.insert(header::AUTHORIZATION, v);
            req.headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            req.headers
                .insert(header::USER_AGENT, HeaderValue::from_static("chatterfly"));
            req.body = Some(bytes::Bytes::from(
                json!({"access_token": tokens.access.expose_secret()}).to_string(),
            ));
            req
        };
        // revoking is a courtesy to the provider: the account is deleted whatever it answers,
        // so a provider that hangs holds the person up for a few seconds at most
        let limits = provider_limits(self.egress).map(|l| Limits {
            total_timeout: l.total_timeout.min(Duration::from_secs(5)),
            ..l
        });
        matches!(self.egress.send(req, limits).await, Ok(r) if r.status.is_success())
    }
}

/// Where an account is connected again: My Accounts, or the participant's onboarding link.
fn reconnect_where(account: &AccountRecord) -> String {
    match &account.participant_id {
        Some(p) => format!("participant `{p}` must connect it again through their onboarding link"),
        None => "reconnect it under Settings → My Accounts".to_owned(),
    }
}

/// Revokes a participant's account for a connection at the provider (where it can) and
/// deletes it; whether there was one.
impl Accounts<'_> {
    pub async fn disconnect_participant(
        &self,
        participant_id: &str,
        connection_id: &str,
    ) -> Result<bool, ConnectError> {
        let owner = AccountOwner::Participant {
            participant_id,
            connection_id,
        };
        let mut found = false;
        for provider in OAuthProvider::ALL {
            if let Some(account) = self.store.account_for(owner, provider.as_str()).await? {
                self.revoke(provider, &account).await;
                found = true;
            }
        }
        self.store
            .delete_participant_account(participant_id, connection_id)
            .await?;
        Ok(found)
    }
}

fn provider_label(id: &str) -> &'static str {
    id.parse::<OAuthProvider>().map_or("OAuth", OAuthProvider::label)
}

fn failure_text(f: &TokenFailure) -> String {
    match f {
        TokenFailure::Refused(e) => format!("the provider refused (`{e}`)"),
        TokenFailure::Client => "the provider refused the client id or secret".into(),
        TokenFailure::Blocked(m) | TokenFailure::Unreachable(m) | TokenFailure::Garbage(m) => m.clone(),
    }
}

fn connect_failure(provider: OAuthProvider, f: TokenFailure) -> ConnectError {
    let label = provider.label();
    match f {
        TokenFailure::Refused(e) => ConnectError::new(
            "token_refused",
            format!("{label} refused the authorization code (`{e}`); nothing was connected, start again"),
        ),
        TokenFailure::Client => ConnectError::new(
            "client_refused",
            format!(
                "{label} refused Chatterfly's client id or secret; a platform admin must check the OAuth provider settings"
            ),
        ),
        TokenFailure::Blocked(m) => ConnectError::new(
            "ssrf_blocked",
            format!("the {label} token endpoint is not allowed: {m}"),
        ),
        TokenFailure::Unreachable(m) => {
            ConnectError::new("provider_unreachable", format!("{label} could not be reached: {m}"))
        }
        TokenFailure::Garbage(m) => ConnectError::new(
            "provider_invalid",
            format!("{label} answered something that is not a token: {m}"),
        ),
    }
}

/// A token as RFC 6750 allows it in a header: 1 to 16 KiB of visible ASCII.
fn token_text(s: &str) -> bool {
    !s.is_empty() && s.len() <= 16 * 1024 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// A provider's error code, cut to something safe to show.
fn short_code(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect()
}

/// The claims of a JWT (unverified).
fn jwt_claims(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_ids_are_hashes_and_tokens_are_random() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert_eq!(state_id("x").len(), 64);
        assert_ne!(state_id(&a), a);
    }

    #[test]
    fn endpoints_take_overrides_and_trim() {
        let over = chatterfly_store::EndpointOverrides {
            api_base_url: Some("http://127.0.0.1:9/".into()),
            ..Default::default()
        };
        let e = endpoints(OAuthProvider::Github, &over);
        assert_eq!(e.api_base_url, "http://127.0.0.1:9");
        assert_eq!(e.token_url, "https://github.com/login/oauth/access_token");
        assert!(e.revoke_url.is_none());
        assert_eq!(
            redirect_uri("https://x.example/", OAuthProvider::Gmail),
            "https://x.example/api/auth/connect/gmail/callback"
        );
    }

    #[test]
    fn claims_of_a_jwt() {
        let jwt = format!("h.{}.s", URL_SAFE_NO_PAD.encode(br#"{"email":"a@b.co"}"#));
        assert_eq!(jwt_claims(&jwt).unwrap()["email"], "a@b.co");
        assert!(jwt_claims("garbage").is_none());
        assert_eq!(short_code("invalid_grant<script>"), "invalid_grantscript");
    }
}
