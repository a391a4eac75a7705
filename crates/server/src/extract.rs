//! Extractors: the authenticated caller, and a JSON body reader whose errors are problem
//! documents that say where the body went wrong (line and column, or the field's path).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use chatterfly_store::User;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::AppState;
use crate::error::ApiError;
use crate::tokens;

/// The user behind the request: its `Authorization: Bearer` token, or else the web UI's
/// session cookie (with the session's CSRF token in `X-CSRF-Token` on every request that
/// is not a GET, HEAD or OPTIONS).
pub struct Caller {
    pub user: User,
    /// The id of the API token the request came with (none for a web session).
    pub token_id: Option<String>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Credential::from_parts(parts)? {
            Credential::Bearer(hash) => Self::from_hash(state, &hash).await,
            Credential::Session(hash) => Ok(Self {
                user: session_owner(parts, state, &hash).await?.user,
                token_id: None,
            }),
        }
    }
}

impl Caller {
    /// The holder of the token whose hash is `hash`.
    pub async fn from_hash(state: &AppState, hash: &str) -> Result<Self, ApiError> {
        let owner = state
            .store
            .user_by_token_hash(hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Self {
            user: owner.user,
            token_id: Some(owner.token_id),
        })
    }
}

/// The web UI's session cookie.
pub const SESSION_COOKIE: &str = "chatterfly_session";
/// The header that carries a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How a request says who sends it, not yet looked up: the hash of its bearer token, or of
/// its session cookie. A bearer token wins when both are sent. 401 with neither.
pub enum Credential {
    Bearer(String),
    Session(String),
}

impl Credential {
    pub fn from_parts(parts: &Parts) -> Result<Self, ApiError> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let value = value.to_str().map_err(|_| ApiError::Unauthorized)?;
            let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthorized)?;
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(ApiError::Unauthorized);
            }
            return Ok(Self::Bearer(tokens::hash(token.trim())));
        }
        session_cookie(&parts.headers)
            .map(|v| Self::Session(tokens::hash(v)))
            .ok_or(ApiError::Unauthorized)
    }
}

/// The value of the session cookie, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// The live session whose cookie hashes to `hash`; a request that changes anything must
/// carry the session's CSRF token (403 `csrf_failed` otherwise).
pub async fn session_owner(
    parts: &Parts,
    state: &AppState,
    hash: &str,
) -> Result<chatterfly_store::SessionOwner, ApiError> {
    let owner = state
        .store
        .user_by_session_hash(hash)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .map(axum::http::HeaderValue::as_bytes)
            .unwrap_or_default();
        let expected = owner.csrf_token.as_bytes();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(sent, expected)) {
            return Err(ApiError::Coded {
                status: StatusCode::FORBIDDEN,
                code: "csrf_failed",
                detail: "this request needs the session's CSRF token in `X-CSRF-Token`; reload the page".into(),
            });
        }
    }
    Ok(owner)
}

/// A request body not read yet. Handlers decide who is asking, and whether they may,
/// before they read it: an unknown token, another workspace or a member where an admin is
/// needed costs the server no body. Reading refuses a declared length over the cap at once
/// (413), takes room in the in-flight body budget as bytes arrive (held until the handler
/// ends), gives the client `--body-read-timeout-ms` to send it all (408), and makes a body
/// over the ordinary cap wait for a heavy turn (one per core).
///
/// Rejections when read as JSON: 415 without a JSON content type, 413 past the limit, 400
/// for malformed JSON (with line and column), 422 for a well-formed body of the wrong shape
/// (with the path of the offending field).
pub struct Body {
    req: Option<Request>,
    _room: Option<OwnedSemaphorePermit>,
    /// The room taken from the sender's share of the budget ([`BodyBudget::share_of`]).
    _share: Option<OwnedSemaphorePermit>,
    _heavy: Option<OwnedSemaphorePermit>,
}

impl FromRequest<AppState> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self, ApiError> {
        Ok(Self {
            req: Some(req),
            _room: None,
            _share: None,
            _heavy: None,
        })
    }
}

impl Body {
    fn headers(&self) -> Option<&HeaderMap> {
        self.req.as_ref().map(Request::headers)
    }

    /// The body's `Content-Type` header as sent.
    pub fn content_type(&self) -> Option<axum::http::HeaderValue> {
        self.headers().and_then(|h| h.get(header::CONTENT_TYPE)).cloned()
    }

    /// The media type of the body, lowercased, without parameters (empty when none).
    pub fn media_type(&self) -> String {
        self.headers()
            .and_then(|h| h.get(header::CONTENT_TYPE))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// A JSON body of at most `--max-body-bytes`.
    pub async fn json<T: DeserializeOwned>(&mut self, state: &AppState) -> Result<T, ApiError> {
        self.read_json(state, state.limits.max_body).await
    }

    /// A connection document (create, edit): at most [`Limits::max_connection`], and no
    /// denser than [`MIN_BYTES_PER_VALUE`] (checked on the text, before it is parsed).
    pub async fn connection_json<T: DeserializeOwned>(&mut self, state: &AppState) -> Result<T, ApiError> {
        self.check_json_type()?;
        let bytes = self.bytes(state, state.limits.max_connection).await?;
        check_density(&bytes)?;
        object_json(&bytes)
    }

    /// Like [`Body::json`] for endpoints whose body may be left out: an empty body (with
    /// or without a content type) is `T::default()`.
    pub async fn optional_json<T: DeserializeOwned + Default>(&mut self, state: &AppState) -> Result<T, ApiError> {
        let empty = self.headers().is_none_or(|h| {
            h.get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "0")
                || (h.get(header::CONTENT_TYPE).is_none()
                    && h.get(header::CONTENT_LENGTH).is_none()
                    && h.get(header::TRANSFER_ENCODING).is_none())
        });
        if empty {
            return Ok(T::default());
        }
        self.check_json_type()?;
        let bytes = self.bytes(state, state.limits.max_body).await?;
        // a JSON body with nothing in it (chunked, no length) is the body left out too
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        // `null` is the body left out, too
        Ok(object_json::<Option<T>>(&bytes)?.unwrap_or_default())
    }

    async fn read_json<T: DeserializeOwned>(&mut self, state: &AppState, limit: usize) -> Result<T, ApiError> {
        self.check_json_type()?;
        let bytes = self.bytes(state, limit).await?;
        object_json(&bytes)
    }

    /// 415 unless the body is sent as JSON.
    fn check_json_type(&self) -> Result<(), ApiError> {
        let is_json = self
            .headers()
            .and_then(|h| h.get(header::CONTENT_TYPE))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if is_json {
            Ok(())
        } else {
            Err(ApiError::Coded {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "unsupported_media_type",
                detail: "send the body as JSON with `Content-Type: application/json`".into(),
            })
        }
    }

    /// The whole body, at most `limit` bytes: 413 `body_too_large` past it (at once when
    /// the declared length is over it), 408 `body_timeout` when it is not all sent in time,
    /// 503 `server_busy` when no room frees in the in-flight budget meanwhile, 400
    /// `unreadable_body` when it cannot be read. Room in the budget is taken when the first
    /// bytes arrive (a client that declares much and sends nothing holds nothing), for the
    /// whole declared length at once (see [`BodyBudget::cover`]).
    pub async fn bytes(&mut self, state: &AppState, limit: usize) -> Result<Bytes, ApiError> {
        self.bytes_within(state, limit, state.limits.body_read_timeout).await
    }

    /// A small JSON body read before anyone is known (signing in): its own small cap and
    /// a short time to arrive, so that such bodies cannot hold the shared budget.
    pub async fn small_json<T: DeserializeOwned>(
        &mut self,
        state: &AppState,
        limit: usize,
        wait: Duration,
    ) -> Result<T, ApiError> {
        self.check_json_type()?;
        let bytes = self.bytes_within(state, limit, wait).await?;
        object_json(&bytes)
    }

    async fn bytes_within(&mut self, state: &AppState, limit: usize, wait: Duration) -> Result<Bytes, ApiError> {
        use http_body_util::BodyExt;
        let declared = self
            .headers()
            .ok_or_else(|| ApiError::Internal("the body was read twice".into()))?
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(n) = declared
            && n > limit as u64
        {
            return Err(too_large(limit));
        }
        let req = self
            .req
            .take()
            .ok_or_else(|| ApiError::Internal("the body was read twice".into()))?;
        // who sends it: their credential (a token or a session), so that one sender's
        // bodies cannot take the whole budget
        let sender = [header::AUTHORIZATION, header::COOKIE]
            .iter()
            .find_map(|h| req.headers().get(h))
            .map(|v| state.bodies.sender_key(v.as_bytes()));
        let deadline = tokio::time::Instant::now() + wait;
        let mut body = req.into_body();
        let mut buf: Vec<u8> = Vec::new();
        let mut room: Option<OwnedSemaphorePermit> = None;
        let mut share: Option<OwnedSemaphorePermit> = None;
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => return Err(body_timeout(wait)),
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(ApiError::Coded {
                        status: StatusCode::BAD_REQUEST,
                        code: "unreadable_body",
                        detail: format!("the request body could not be read: {e}"),
                    });
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            if buf.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            if let Some(sender) = sender {
                let of_sender = state.bodies.share_of(sender);
                cover_in(&of_sender, &mut share, buf.len() + data.len(), declared, deadline).await?;
            }
            state
                .bodies
                .cover(&mut room, buf.len() + data.len(), declared, deadline)
                .await?;
            buf.extend_from_slice(&data);
        }
        self._room = room;
        self._share = share;
        if buf.len() > state.limits.max_body {
            // parsed, a large body takes many times its size: a few at a time
            self._heavy = Some(state.heavy_turn().await?);
        }
        Ok(Bytes::from(buf))
    }
}

/// How long, and how much of, a body that was refused unread is still taken in and thrown
/// away, so that a client still sending it reads the answer (a "lingering close"); past
/// either bound the connection is closed.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 8 * 1024 * 1024;

impl Drop for Body {
    fn drop(&mut self) {
        let Some(req) = self.req.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            use http_body_util::BodyExt;
            let mut body = req.into_body();
            let drain = async {
                let mut seen = 0usize;
                while let Some(Ok(frame)) = body.frame().await {
                    seen += frame.data_ref().map_or(0, Bytes::len);
                    if seen > LINGER_BYTES {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER, drain).await;
        });
    }
}

pub fn too_large(limit: usize) -> ApiError {
    ApiError::Coded {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "body_too_large",
        detail: format!("the request body is larger than this endpoint accepts ({limit} bytes)"),
    }
}

pub fn body_timeout(t: Duration) -> ApiError {
    ApiError::Coded {
        status: StatusCode::REQUEST_TIMEOUT,
        code: "body_timeout",
        detail: format!("the request body was not sent within {t:?}"),
    }
}

/// How long a body that holds room waits for more before it gives its room back (only
/// bodies without a declared length ever wait holding room).
const GROW_WAIT: Duration = Duration::from_secs(2);

/// Room for the request bodies in flight, together: each reading request takes room for
/// the bytes it has received (in KiB), and gives it back when the request ends.
///
/// One sender (one token or session) may hold at most a quarter of it
/// ([`SENDER_SHARE`]): bodies that declare much and send slowly would otherwise let one
/// user hold the whole budget and stall everyone's uploads until the read timeout.
#[derive(Clone)]
pub struct BodyBudget {
    kib: Budget,
    shares: Arc<std::sync::Mutex<std::collections::HashMap<u64, Budget>>>,
    share_kib: u32,
    hasher: std::hash::RandomState,
}

/// The part of the body budget one sender may hold: one in this many.
pub const SENDER_SHARE: u32 = 4;

/// A semaphore of KiB and its size.
#[derive(Clone)]
struct Budget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl Budget {
    fn new(total_kib: u32) -> Self {
        Self {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX >> 3).max(1);
        Self {
            kib: Budget::new(total_kib),
            shares: Arc::default(),
            share_kib: (total_kib / SENDER_SHARE).max(1),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// A key for the sender of a body, from its credential (not kept).
    fn sender_key(&self, credential: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(credential)
    }

    /// The sender's share of the budget. Shares nobody holds or waits for are dropped.
    fn share_of(&self, sender: u64) -> Budget {
        let Ok(mut shares) = self.shares.lock() else {
            return Budget::new(self.share_kib);
        };
        if shares.len() > 16 {
            shares.retain(|_, b| Arc::strong_count(&b.kib) > 1);
        }
        shares
            .entry(sender)
            .or_insert_with(|| Budget::new(self.share_kib))
            .clone()
    }

    async fn cover(
        &self,
        room: &mut Option<OwnedSemaphorePermit>,
        need: usize,
        declared: Option<u64>,
        deadline: tokio::time::Instant,
    ) -> Result<(), ApiError> {
        cover_in(&self.kib, room, need, declared, deadline).await
    }

    #[cfg(test)]
    async fn reserve(&self, bytes: usize, wait: Duration) -> Result<OwnedSemaphorePermit, ApiError> {
        reserve_until(&self.kib, bytes, tokio::time::Instant::now() + wait).await
    }
}

/// Room for `bytes` more (rounded up to KiB) in `budget`, waiting until `deadline` at
/// most: 503 `server_busy` after that.
async fn reserve_until(
    budget: &Budget,
    bytes: usize,
    deadline: tokio::time::Instant,
) -> Result<OwnedSemaphorePermit, ApiError> {
    let want = u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, budget.total_kib);
    match tokio::time::timeout_at(deadline, budget.kib.clone().acquire_many_owned(want)).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err(ApiError::Internal("the body budget is closed".into())),
        Err(_) => Err(ApiError::Coded {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "server_busy",
            detail: "too many large requests are being received at once; try again shortly".into(),
        }),
    }
}

/// Makes `room` cover `need` bytes of one body. The first time, a body that declared
/// its length takes room for all of it in one go; a body without a declared length
/// (chunked) takes room as its bytes arrive. Taken piece by piece, room would let
/// large uploads deadlock: each holding part of the budget, each waiting for more,
/// none finishing until the read timeout. Taken whole, a body waits holding nothing,
/// and once it has room it never waits again. A chunked body cannot be taken whole, so
/// when it must wait for more while holding some, it waits [`GROW_WAIT`] at most and
/// then gives its room back with `503 server_busy` (and `Retry-After`): of several
/// chunked uploads stuck on each other, the first to give up lets the others finish.
async fn cover_in(
    budget: &Budget,
    room: &mut Option<OwnedSemaphorePermit>,
    need: usize,
    declared: Option<u64>,
    deadline: tokio::time::Instant,
) -> Result<(), ApiError> {
    let held = room.as_ref().map_or(0, |r| r.num_permits().saturating_mul(1024));
    if need <= held {
        return Ok(());
    }
    let ask = match (room.is_none(), declared) {
        (true, Some(n)) => usize::try_from(n).unwrap_or(usize::MAX).max(need),
        _ => need - held,
    };
    let deadline = if room.is_some() {
        deadline.min(tokio::time::Instant::now() + GROW_WAIT)
    } else {
        deadline
    };
    let more = reserve_until(budget, ask, deadline).await?;
    match room {
        Some(r) => r.merge(more),
        None => *room = Some(more),
    }
    Ok(())
}

pub use chatterfly_domain::density::{FREE_VALUES, MIN_BYTES_PER_VALUE, json_values};

fn check_density(bytes: &[u8]) -> Result<(), ApiError> {
    let values = json_values(bytes);
    if values > FREE_VALUES && values.saturating_mul(MIN_BYTES_PER_VALUE) > bytes.len() {
        return Err(ApiError::Coded {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "too_many_values",
            detail: format!(
                "the body holds about {values} JSON values in {} bytes; past {FREE_VALUES} values a connection must average at least {MIN_BYTES_PER_VALUE} bytes per value (long lists of tiny values cost the server many times their size): shorten the longest enums or lists",
                bytes.len()
            ),
        });
    }
    Ok(())
}

/// Parses a JSON body that must be an object (or `null` where it may be left out).
fn object_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = parse_json(bytes)?;
    // serde reads a struct from an array too (its fields in order): every body here
    // is an object (or `null` where it may be left out)
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{' | b'n') => Ok(value),
        _ => Err(ApiError::Coded {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_body",
            detail: "the body must be a JSON object".into(),
        }),
    }
}

/// Parses JSON, telling syntax errors (400) from shape errors (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| (e.path().to_string(), e.into_inner()))
        .and_then(|v| de.end().map(|()| v).map_err(|e| (String::new(), e)));
    value.map_err(|(path, inner)| {
        if inner.is_data() {
            let at = if path == "." || path.is_empty() {
                "the body".to_owned()
            } else {
                format!("`{path}`")
            };
            ApiError::Coded {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_body",
                detail: format!("{at}: {}", without_string_values(strip_position(&inner.to_string()))),
            }
        } else if inner.is_eof() && bytes.iter().all(u8::is_ascii_whitespace) {
            ApiError::Coded {
                status: StatusCode::BAD_REQUEST,
                code: "malformed_json",
                detail: "the request body is empty; send a JSON object".into(),
            }
        } else {
            ApiError::Coded {
                status: StatusCode::BAD_REQUEST,
                code: "malformed_json",
                detail: format!(
                    "the body is not valid JSON: {} at line {}, column {}",
                    strip_position(&inner.to_string()),
                    inner.line(),
                    inner.column()
                ),
            }
        }
    })
}

/// serde quotes a mistyped string value (`invalid type: string "…", expected …`); a value
/// put in the wrong field may be a secret, so the message keeps only its kind.
fn without_string_values(msg: &str) -> String {
    match (msg.strip_prefix("invalid type: string \""), msg.rfind("\", expected")) {
        (Some(_), Some(end)) => format!("invalid type: a string{}", &msg[end + 1..]),
        _ => msg.to_owned(),
    }
}

fn strip_position(msg: &str) -> &str {
    msg.rsplit_once(" at line ").map_or(msg, |(m, _)| m)
}

/// A JSON response written into a buffer of exactly its size (axum's `Json` grows its
/// buffer by doubling: a large API's 12 MB answer would briefly take 24 MB more).
pub struct ExactJson<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for ExactJson<T> {
    fn into_response(self) -> axum::response::Response {
        let len = chatterfly_domain::operation::json_len(&self.0);
        let mut buf = Vec::with_capacity(len);
        match serde_json::to_writer(&mut buf, &self.0) {
            Ok(()) => ([(header::CONTENT_TYPE, "application/json")], buf).into_response(),
            Err(e) => ApiError::Internal(format!("cannot write the answer: {e}")).into_response(),
        }
    }
}

/// axum's `Path`, with its rejections as problem documents (400 `invalid_path`): a segment
/// that does not decode (`%ff`) is bad input, not plain text.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|e| ApiError::Coded {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_path",
                detail: format!("the URL path cannot be read: {}", e.body_text()),
            })
    }
}

/// axum's `Query`, with its rejections as problem documents (400 `invalid_query`).
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e| ApiError::Coded {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_query",
                detail: format!("the query string cannot be read: {}", e.body_text()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_counted_outside_strings_and_dense_bodies_refused() {
        assert_eq!(json_values(b"1"), 1);
        assert_eq!(json_values(br#"{"a": [1, 2, 3], "b": {"c": "x,[{"}}"#), 7);
        assert_eq!(json_values(br#"["a\",b", "c"]"#), 3);
        // an ordinary schema passes; a long list of one-letter strings does not
        let ordinary = serde_json::to_vec(&serde_json::json!({"operations": (0..6000).map(|i| serde_json::json!({
            "name": format!("list_items_{i}"), "method": "GET", "path": "/items/{{id}}", "description": "Lists the items of an account",
            "input_schema": {"type": "object", "properties": {"id": {"type": "string", "description": "The account's id"}}}})).collect::<Vec<_>>()}))
        .unwrap();
        assert!(json_values(&ordinary) > FREE_VALUES);
        assert!(check_density(&ordinary).is_ok());
        let dense = format!(r#"{{"e": [{}"z"]}}"#, "\"a\",".repeat(60_000));
        assert!(matches!(
            check_density(dense.as_bytes()),
            Err(ApiError::Coded {
                code: "too_many_values",
                ..
            })
        ));
        // small bodies are never refused for it
        let small = format!(r#"{{"e": [{}0]}}"#, "1,".repeat(FREE_VALUES - 10));
        assert!(check_density(small.as_bytes()).is_ok());
    }

    #[tokio::test]
    async fn the_body_budget_makes_late_requests_wait_then_refuses_them() {
        let budget = BodyBudget::new(64 * 1024);
        let first = budget.reserve(48 * 1024, Duration::from_millis(50)).await;
        assert!(first.is_ok());
        // no room for another 32 KiB while the first holds 48 of 64
        match budget.reserve(32 * 1024, Duration::from_millis(50)).await {
            Err(ApiError::Coded { status, code, .. }) => {
                assert_eq!((status, code), (StatusCode::SERVICE_UNAVAILABLE, "server_busy"));
            }
            _ => panic!("a second large body fitted in the budget"),
        }
        // a small one fits beside it
        assert!(budget.reserve(8 * 1024, Duration::from_millis(50)).await.is_ok());
        // a request waiting for room gets it when the first one ends
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(32 * 1024, Duration::from_secs(5)).await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert!(matches!(waiting.await, Ok(true)));
    }

    #[tokio::test]
    async fn large_bodies_sent_together_all_finish() {
        // four bodies of 40 KiB, sent 10 KiB at a time in turns, through a 100 KiB budget:
        // taken piece by piece, each would hold 20 to 30 KiB and wait for the rest forever
        let budget = BodyBudget::new(100 * 1024);
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let budget = budget.clone();
            tasks.push(tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                let mut room = None;
                for chunk in 1..=4usize {
                    budget
                        .cover(&mut room, chunk * 10 * 1024, Some(40 * 1024), deadline)
                        .await?;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok::<usize, ApiError>(room.map_or(0, |r| r.num_permits()))
            }));
        }
        for t in tasks {
            assert!(matches!(t.await, Ok(Ok(40))), "a body did not finish with its 40 KiB");
        }
        // without a declared length, room is taken as the bytes come
        let mut room = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        assert!(budget.cover(&mut room, 3 * 1024, None, deadline).await.is_ok());
        assert!(budget.cover(&mut room, 5 * 1024, None, deadline).await.is_ok());
        assert_eq!(room.map(|r| r.num_permits()), Some(5));
    }

    #[tokio::test]
    async fn one_sender_holds_at_most_a_share_of_the_budget() {
        // a sender declaring much and sending little: its bodies beyond its quarter wait
        // holding nothing, and another sender still finds room
        let budget = BodyBudget::new(400 * 1024);
        let greedy = budget.sender_key(b"Bearer greedy");
        let deadline = || tokio::time::Instant::now() + Duration::from_millis(300);
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut share = None;
            let share_budget = budget.share_of(greedy);
            let mut room = None;
            let taken = async {
                cover_in(&share_budget, &mut share, 1024, Some(50 * 1024), deadline()).await?;
                budget.cover(&mut room, 1024, Some(50 * 1024), deadline()).await
            }
            .await;
            held.push((taken.is_ok(), share, room));
        }
        let ok = held.iter().filter(|(ok, ..)| *ok).count();
        assert_eq!(ok, 2, "two bodies of 50 KiB fill a 100 KiB share");
        assert_eq!(budget.kib.kib.available_permits(), 300);
        let other = budget.share_of(budget.sender_key(b"Bearer other"));
        let (mut share, mut room) = (None, None);
        assert!(
            cover_in(&other, &mut share, 1024, Some(90 * 1024), deadline())
                .await
                .is_ok()
        );
        assert!(budget.cover(&mut room, 1024, Some(90 * 1024), deadline()).await.is_ok());
        drop(held);
        drop((share, room, other));
        for i in 0..40u32 {
            drop(budget.share_of(budget.sender_key(&i.to_be_bytes())));
        }
        assert!(
            budget.shares.lock().map(|s| s.len()).unwrap_or(99) <= 17,
            "idle shares are dropped"
        );
    }

    #[tokio::test]
    async fn chunked_bodies_stuck_on_each_other_do_not_wait_out_the_read_timeout() {
        // four chunked bodies of 40 KiB through a 100 KiB budget, 10 KiB at a time: each
        // holds part of the budget and needs more. They cannot all finish; the ones that
        // give up must do so within GROW_WAIT, not at the read timeout, and let the rest on
        let budget = BodyBudget::new(100 * 1024);
        let started = tokio::time::Instant::now();
        let read_timeout = Duration::from_secs(40);
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let budget = budget.clone();
            tasks.push(tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + read_timeout;
                let mut room = None;
                for chunk in 1..=4usize {
                    budget.cover(&mut room, chunk * 10 * 1024, None, deadline).await?;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok::<_, ApiError>(tokio::time::Instant::now())
            }));
        }
        let (mut finished, mut busy) = (0, 0);
        for t in tasks {
            match t.await {
                Ok(Ok(at)) => {
                    finished += 1;
                    assert!(
                        at - started < read_timeout / 3,
                        "finished only after {:?}",
                        at - started
                    );
                }
                Ok(Err(ApiError::Coded { code, .. })) => {
                    assert_eq!(code, "server_busy");
                    busy += 1;
                }
                other => panic!("unexpected: {:?}", other.map(|r| r.map(|_| ()))),
            }
        }
        assert!(finished >= 2, "{finished} finished, {busy} busy");
        assert_eq!(budget.kib.kib.available_permits(), 100, "all room given back");
    }
}
