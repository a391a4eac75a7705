//! The one place where errors become HTTP responses: RFC 9457 `application/problem+json`
//! with a stable `code`. Messages say what happened and what to do; they never carry a
//! secret or an upstream response. Internal errors are logged with detail and answered
//! with a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatterfly_domain::FieldErrors;
use chatterfly_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:chatterfly:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `slug_taken`, `not_found`, `validation_failed`.
    pub code: String,
    /// Field-level problems, each with a JSON pointer into the request body.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// Where in an imported document the problem is (`invalid_spec`): 1-based line and column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// How many seconds to wait before trying again (also in `Retry-After`), when the
    /// upstream said (Telegram's `retry_after`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The upstream's own error code (Telegram's `error_code`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_code: Option<u16>,
    /// `in_use`: what uses the connection (`kind`, `id`, `name`, `tools`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub used_by: Option<serde_json::Value>,
    /// The request's id (also its `X-Request-Id` header and a field of its log lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldProblem {
    pub pointer: String,
    pub detail: String,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid API token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("{0}")]
    Validation(FieldErrors),
    /// Any other problem with its own status and code: an unreadable body (400, 413, 415,
    /// 422), a method the route does not take (405), a setting that cannot apply (422).
    #[error("{detail}")]
    Coded {
        status: StatusCode,
        code: &'static str,
        detail: String,
    },
    /// An OpenAPI document that cannot be imported (422 `invalid_spec`), with where.
    #[error("{0}")]
    InvalidSpec(chatterfly_openapi::ImportError),
    /// A tool call that failed, with its own code.
    #[error("{0}")]
    Tool(chatterfly_tools::ToolError),
    /// Too many attempts: 429 `too_many_attempts` with `Retry-After` (seconds).
    #[error("{detail}")]
    TooManyRequests { retry_after: u64, detail: String },
    /// A connection that deployed workflows or agents use (409 `in_use`), with what uses it.
    #[error("{detail}")]
    InUse { detail: String, used_by: serde_json::Value },
    /// Something broke on our side; the text is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::Coded { status, code, .. } => (*status, code),
            Self::InvalidSpec(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_spec"),
            Self::Tool(e) => (tool_status(e), e.code()),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            Self::InUse { .. } => (StatusCode::CONFLICT, "in_use"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

fn egress_status(e: &chatterfly_egress::EgressError) -> StatusCode {
    use chatterfly_egress::EgressError as E;
    match e {
        E::Blocked { .. } => StatusCode::FORBIDDEN,
        E::InvalidUrl(_) => StatusCode::UNPROCESSABLE_ENTITY,
        E::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        E::Setup(_) => StatusCode::INTERNAL_SERVER_ERROR,
        E::Busy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

fn tool_status(e: &chatterfly_tools::ToolError) -> StatusCode {
    use chatterfly_mcp::McpError as M;
    use chatterfly_tools::ToolError as T;
    match e {
        T::NotFound(_) => StatusCode::NOT_FOUND,
        T::InvalidArguments { .. }
        | T::Build(_)
        | T::CredentialsRequired(_)
        | T::InvalidCredentials(_)
        | T::NotConfigured(_) => StatusCode::UNPROCESSABLE_ENTITY,
        T::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
        T::AccountNeedsReconnect(_) => StatusCode::CONFLICT,
        T::InsufficientScope(_) | T::AccountOrigin(_) => StatusCode::FORBIDDEN,
        T::AccountRefresh(_) | T::Upstream { .. } => StatusCode::BAD_GATEWAY,
        T::ParticipantNotFound(_) => StatusCode::NOT_FOUND,
        T::ParticipantRole(_) => StatusCode::FORBIDDEN,
        T::Telegram { error_code: 429, .. } => StatusCode::TOO_MANY_REQUESTS,
        T::Telegram {
            error_code: 401 | 404 | 400 | 403,
            ..
        } => StatusCode::UNPROCESSABLE_ENTITY,
        T::Telegram { .. } => StatusCode::BAD_GATEWAY,
        T::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        T::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
        T::Egress(e) | T::Mcp(M::Egress(e)) => egress_status(e),
        T::Mcp(M::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
        T::Mcp(_) => StatusCode::BAD_GATEWAY,
    }
}

impl From<chatterfly_tools::ToolError> for ApiError {
    fn from(e: chatterfly_tools::ToolError) -> Self {
        Self::Tool(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("not found".into()),
            StoreError::Conflict { what } => Self::Conflict {
                code: "conflict",
                detail: format!("{what} is already taken"),
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        Self::Validation(e)
    }
}

impl From<chatterfly_vault::VaultError> for ApiError {
    fn from(e: chatterfly_vault::VaultError) -> Self {
        Self::Internal(format!("vault: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let detail = match &self {
            Self::Internal(msg) | Self::Tool(chatterfly_tools::ToolError::Internal(msg)) => {
                tracing::error!(error = %msg, "request failed");
                "something went wrong on the server; the error was logged".to_owned()
            }
            Self::Validation(errors) => errors.summary(),
            other => other.to_string(),
        };
        let retry_after = match &self {
            Self::TooManyRequests { retry_after, .. } => Some(*retry_after),
            Self::Tool(chatterfly_tools::ToolError::Telegram { retry_after, .. }) => *retry_after,
            Self::Tool(
                chatterfly_tools::ToolError::Busy { .. }
                | chatterfly_tools::ToolError::Egress(chatterfly_egress::EgressError::Busy)
                | chatterfly_tools::ToolError::Mcp(chatterfly_mcp::McpError::Egress(
                    chatterfly_egress::EgressError::Busy,
                )),
            ) => Some(1),
            Self::Coded {
                code: "server_busy", ..
            } => Some(1),
            _ => None,
        };
        let upstream_code = match &self {
            Self::Tool(chatterfly_tools::ToolError::Telegram { error_code, .. }) => Some(*error_code),
            _ => None,
        };
        let (line, column) = match &self {
            Self::InvalidSpec(e) => (e.line, e.column),
            _ => (None, None),
        };
        let used_by = match &self {
            Self::InUse { used_by, .. } => Some(used_by.clone()),
            _ => None,
        };
        let errors = match self {
            Self::InvalidSpec(e) => e
                .pointer
                .clone()
                .map(|pointer| {
                    vec![FieldProblem {
                        pointer,
                        detail: e.message.clone(),
                    }]
                })
                .unwrap_or_default(),
            Self::Tool(chatterfly_tools::ToolError::InvalidArguments { pointer, detail }) => vec![FieldProblem {
                pointer: format!("/arguments{pointer}"),
                detail,
            }],
            Self::Validation(errors) => errors
                .0
                .into_iter()
                .map(|e| FieldProblem {
                    pointer: e.pointer,
                    detail: e.detail,
                })
                .collect(),
            _ => Vec::new(),
        };
        let problem = Problem {
            kind: format!("urn:chatterfly:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            errors,
            line,
            column,
            retry_after,
            upstream_code,
            used_by,
            request_id: crate::ops::current_request_id(),
        };
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
