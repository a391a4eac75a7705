//! OpenAPI import: a document in, a draft connection and warnings out; nothing saved. The
//! client reviews and edits the draft, then creates it (the draft carries the source
//! document, which the connection keeps for a later re-import).

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatterfly_domain::SourceKind;
use chatterfly_openapi::{Draft, ImportError, Options, Summary, Warning, import_json};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::access::{WorkspaceAccess, short};
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Caller, Path, too_large};

/// A multipart upload of a document: a `file` part and optional `name` and `slug` parts,
/// nothing else.
#[derive(ToSchema, serde::Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct ImportUpload {
    /// The document, JSON or YAML.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The connection's name (default: the document's title).
    name: Option<String>,
    /// The connection's slug (default: made from the name).
    slug: Option<String>,
}

/// The source document as the answer shows it (borrowed: a large document is not copied).
#[derive(Serialize)]
struct SourceRef<'a> {
    #[serde(rename = "type")]
    kind: SourceKind,
    document: &'a str,
}

/// What an import produces.
#[derive(Serialize, ToSchema)]
pub struct ImportView {
    /// A connection in exactly the shape `POST …/connections` takes (`service_type:
    /// "openapi"`, the source document included). Fill in the secret fields of `auth`
    /// (and `base_url` when a warning says so), edit as you like, and create it.
    #[schema(value_type = Object)]
    pub draft: Draft,
    /// What did not map exactly, each with a JSON pointer into the document.
    #[schema(value_type = Vec<Object>)]
    pub warnings: Vec<Warning>,
    /// Version, syntax, title and operation count.
    #[schema(value_type = Object)]
    pub summary: Summary,
}

/// Media types a raw document may be sent as.
const RAW_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "text/plain",
    "application/octet-stream",
    "application/vnd.oai.openapi",
    "application/vnd.oai.openapi+json",
];

/// Import an OpenAPI 3.0/3.1 or Swagger 2.0 document (workspace admins). The body is the
/// document itself (JSON, YAML or text content type) or a `multipart/form-data` upload with
/// a `file` part (and optional `name` and `slug` parts); `?name=` and `?slug=` choose the
/// connection's name and slug. Saves nothing.
#[utoipa::path(post, path = "/api/workspaces/{ws}/connections/import/openapi",
    params(("ws" = String, Path), ("name" = Option<String>, Query, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]*[^\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb\\u0085][^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb]*$"),
        ("slug" = Option<String>, Query, pattern = "^[a-z][a-z0-9_]{0,62}$")),
    request_body(description = "The document, JSON or YAML (also as `application/x-yaml`, `text/yaml`, `text/x-yaml`, `application/octet-stream`, `application/vnd.oai.openapi[+json]`), or a multipart/form-data upload with a `file` part and optional `name` and `slug` parts",
        content((serde_json::Value = "application/json"), (String = "application/yaml"), (String = "text/plain"),
            (ImportUpload = "multipart/form-data"))),
    responses((status = 200, body = ImportView), (status = 403, body = Problem), (status = 408, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "Not an OpenAPI 3.0/3.1 or Swagger 2.0 document (`invalid_spec`, with line and column or a pointer), or a bad `name` or `slug`", body = Problem),
        (status = 503, body = Problem)))]
pub async fn import_openapi(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    RawQuery(query): RawQuery,
    mut body: Body,
) -> Result<Response, ApiError> {
    let access = WorkspaceAccess::resolve(&state, &caller.user, &ws).await?;
    access.require_admin("import connections")?;
    let mut options = Options::default();
    for (k, v) in url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "name" => options.name = Some(v.into_owned()),
            "slug" => options.slug = Some(v.into_owned()),
            other => {
                return Err(ApiError::Coded {
                    status: StatusCode::BAD_REQUEST,
                    code: "invalid_query",
                    detail: format!("unknown query parameter `{}`: use `name` and `slug`", short(other)),
                });
            }
        }
    }

    let limit = state.limits.max_spec;
    let media = body.media_type();
    let text = if media == "multipart/form-data" {
        // the document may be up to the spec cap; multipart framing gets a little room
        let framed = limit.saturating_add(64 * 1024);
        let content_type = body.content_type();
        // read whole (within the budget and the read timeout), then taken apart in memory
        let raw = body.bytes(&state, framed).await?;
        let mut req = axum::extract::Request::new(axum::body::Body::from(raw));
        if let Some(ct) = content_type {
            req.headers_mut().insert(axum::http::header::CONTENT_TYPE, ct);
        }
        DefaultBodyLimit::max(framed).apply(&mut req);
        let multipart = Multipart::from_request(req, &state)
            .await
            .map_err(|e| ApiError::Coded {
                status: StatusCode::BAD_REQUEST,
                code: "unreadable_body",
                detail: format!("the upload could not be read: {}", e.body_text()),
            })?;
        read_upload(multipart, &mut options, limit).await?
    } else if media.is_empty() || RAW_TYPES.contains(&media.as_str()) {
        utf8(body.bytes(&state, limit).await?.to_vec())?
    } else {
        return Err(ApiError::Coded {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            detail: format!(
                "send the document as JSON, YAML or text (Content-Type application/json, application/yaml or text/plain), or as a multipart/form-data upload; not `{}`",
                short(&media)
            ),
        });
    };
    if let Some(slug) = &options.slug
        && let Err(e) = slug.parse::<chatterfly_domain::Slug>()
    {
        return Err(chatterfly_domain::FieldErrors::single("/slug", e.0).into());
    }
    if let Some(name) = &options.name
        && (name.trim().is_empty() || name.chars().any(char::is_control))
    {
        return Err(chatterfly_domain::FieldErrors::single(
            "/name",
            "`name` must not be blank or hold control characters",
        )
        .into());
    }

    // parsing a large document is CPU work: off the async workers, a few at a time
    let _permit = state
        .imports
        .acquire()
        .await
        .map_err(|_| ApiError::Internal("import queue closed".into()))?;
    // the answer (tens of MB for a large API) is serialized on the blocking thread too
    let result = tokio::task::spawn_blocking(move || {
        // the answer is written operation by operation: the draft is never held whole
        let mut body = Vec::with_capacity(text.len().saturating_mul(2));
        let source = SourceRef {
            kind: SourceKind::Openapi,
            document: &text,
        };
        let (summary, warning_count) = import_json(&text, &options, &source, &mut body)?;
        Ok::<_, ImportError>((body, summary.operations, warning_count, summary.version))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("import task failed: {e}")))?;
    let (body, operations, warnings, version) = result.map_err(ApiError::InvalidSpec)?;
    tracing::info!(
        workspace = %access.workspace.slug,
        operations,
        warnings,
        version = %version,
        "openapi document imported (draft)"
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn utf8(bytes: Vec<u8>) -> Result<String, ApiError> {
    String::from_utf8(bytes).map_err(|e| {
        ApiError::InvalidSpec(ImportError {
            message: format!(
                "the document is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            line: None,
            column: None,
            pointer: None,
        })
    })
}

/// The `file` part (or the first part with a file name) and optional `name` / `slug` parts.
async fn read_upload(mut multipart: Multipart, options: &mut Options, limit: usize) -> Result<String, ApiError> {
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(limit)
        } else {
            ApiError::Coded {
                status: StatusCode::BAD_REQUEST,
                code: "unreadable_body",
                detail: format!("the upload could not be read: {}", e.body_text()),
            }
        }
    };
    let mut document = None;
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let field_name = field.name().unwrap_or("").to_owned();
        let is_file = field.file_name().is_some();
        match field_name.as_str() {
            "name" | "slug" if !is_file => {
                let value = field.text().await.map_err(unreadable)?;
                if field_name == "name" {
                    options.name = Some(value);
                } else {
                    options.slug = Some(value);
                }
            }
            _ if (field_name == "file" || is_file) && document.is_none() => {
                let bytes = field.bytes().await.map_err(unreadable)?;
                if bytes.len() > limit {
                    return Err(too_large(limit));
                }
                document = Some(utf8(bytes.to_vec())?);
            }
            _ if is_file => {
                return Err(ApiError::Coded {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    code: "invalid_body",
                    detail: "the upload holds more than one file; send the document alone".into(),
                });
            }
            other => {
                return Err(ApiError::Coded {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    code: "invalid_body",
                    detail: format!(
                        "the upload has an unknown part `{}`: send `file`, and optionally `name` and `slug`",
                        short(other)
                    ),
                });
            }
        }
    }
    document.ok_or_else(|| ApiError::Coded {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_body",
        detail: "the upload has no `file` part holding the document".into(),
    })
}
