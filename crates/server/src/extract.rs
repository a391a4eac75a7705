//! Extractors: the authenticated caller, and a JSON body reader whose errors are problem
//! documents that say where the body went wrong (line and column, or the field's path).

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use chatterfly_store::User;
use serde::de::DeserializeOwned;

use crate::api::AppState;
use crate::error::ApiError;
use crate::tokens;

/// The user behind the request's `Authorization: Bearer` token.
pub struct Caller {
    pub user: User,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let BearerHash(hash) = BearerHash::from_request_parts(parts, state).await?;
        Self::from_hash(state, &hash).await
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
        Ok(Self { user: owner.user })
    }
}

/// The hash of the request's `Authorization: Bearer` token, not yet looked up (for handlers
/// that read the token's holder together with other rows). 401 without one.
pub struct BearerHash(pub String);

impl FromRequestParts<AppState> for BearerHash {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(ApiError::Unauthorized);
        }
        Ok(Self(tokens::hash(token.trim())))
    }
}

/// A JSON request body of at most `--max-body-bytes`. Rejections: 415 without a JSON
/// content type, 413 past the limit, 400 for malformed JSON (with line and column), 422 for
/// a well-formed body of the wrong shape (with the path of the offending field).
pub struct ApiJson<T>(pub T);

/// Like [`ApiJson`], for connection documents: three times `--max-spec-bytes`, because an
/// imported draft carries its source document (up to the spec cap) and the operations made
/// from it (an imported API can have thousands).
pub struct LargeJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        read_json(req, state.limits.max_body).await.map(Self)
    }
}

/// Like [`ApiJson`] for endpoints whose body may be left out: an empty body (with or
/// without a content type) is `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0")
            || (req.headers().get(header::CONTENT_TYPE).is_none()
                && req.headers().get(header::CONTENT_LENGTH).is_none()
                && req.headers().get(header::TRANSFER_ENCODING).is_none());
        if empty {
            return Ok(Self(T::default()));
        }
        read_json(req, state.limits.max_body).await.map(Self)
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for LargeJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        read_json(req, state.limits.max_spec.saturating_mul(3)).await.map(Self)
    }
}

async fn read_json<T: DeserializeOwned>(mut req: Request, limit: usize) -> Result<T, ApiError> {
    {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::Coded {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "unsupported_media_type",
                detail: "send the body as JSON with `Content-Type: application/json`".into(),
            });
        }
        let bytes = read_bytes(&mut req, limit).await?;
        parse_json(&bytes)
    }
}

/// The whole body, at most `limit` bytes: 413 `body_too_large` past it, 400
/// `unreadable_body` when it cannot be read.
pub async fn read_bytes(req: &mut Request, limit: usize) -> Result<Bytes, ApiError> {
    DefaultBodyLimit::max(limit).apply(req);
    let req = std::mem::take(req);
    Bytes::from_request(req, &()).await.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::Coded {
                status,
                code: "body_too_large",
                detail: format!("the request body is larger than this endpoint accepts ({limit} bytes)"),
            }
        } else {
            ApiError::Coded {
                status: StatusCode::BAD_REQUEST,
                code: "unreadable_body",
                detail: format!("the request body could not be read: {}", rejection.body_text()),
            }
        }
    })
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
