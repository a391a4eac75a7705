//! The `/api` routes. Each handler is annotated where it is written (utoipa), and the router
//! is built with utoipa-axum, so the OpenAPI document served at `/api/openapi.json` lists
//! exactly the routes that exist.

mod access;
mod accounts;
mod agents;
mod auth;
mod connections;
mod document;
mod import;
mod invitations;
mod mcp;
mod me;
pub mod onboarding;
mod participants;
mod services;
mod system;
mod tools;
mod users;
mod workflows;
mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use chatterfly_store::Store;
use chatterfly_vault::KeyRing;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::startup::App;

/// What every handler can reach. Holds no request state: replicas share only the database.
/// One `Arc`: every extractor of every request clones the state, and one reference count
/// costs less than the twenty-odd of its fields (docs/benchmarks.md, the `invoke` profile).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state's fields, behind [`AppState`].
pub struct Shared {
    pub store: Store,
    pub keys: Arc<KeyRing>,
    pub tools: Arc<chatterfly_tools::Tools>,
    /// Agent runs started on this replica, and who follows them.
    pub runner: chatterfly_runs::Runner,
    /// Workflow runs: started here, executed by any replica's workers.
    pub flows: chatterfly_runs::Flows,
    pub app_url: Arc<str>,
    pub limits: Limits,
    /// OpenAPI imports running at once (CPU and memory heavy): one per core.
    pub imports: Arc<tokio::sync::Semaphore>,
    /// Room for request bodies in flight, together.
    pub bodies: crate::extract::BodyBudget,
    /// Requests that parse or build large JSON (a body over the ordinary cap, a large
    /// connection read back) run a few at a time: one per core. Parsed JSON takes many
    /// times its text in memory, so this, not the body budget, bounds their sum.
    pub heavy: Arc<tokio::sync::Semaphore>,
    /// Password checks a few at a time, and wrong passwords counted per address.
    pub passwords: Arc<auth::PasswordGuard>,
    /// Call contexts of bearer tokens' tool calls, kept while nothing they depend on changes.
    pub calls: Arc<crate::call_cache::CallCache>,
    /// Who may read `/metrics`.
    pub metrics_access: Arc<crate::ops::MetricsAccess>,
}

impl AppState {
    /// A turn among the heavy requests, waiting at most the body read timeout (then 503
    /// `server_busy`).
    pub async fn heavy_turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        match tokio::time::timeout(self.limits.body_read_timeout, self.heavy.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(ApiError::Internal("the heavy-request queue is closed".into())),
            Err(_) => Err(ApiError::Coded {
                status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                code: "server_busy",
                detail: "too many large requests at once; try again shortly".into(),
            }),
        }
    }
}

/// Operations above which reading connections back counts as a heavy request.
pub const HEAVY_OPERATIONS: i64 = 500;

/// Inbound body limits, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Ordinary JSON bodies.
    pub max_body: usize,
    /// Imported documents.
    pub max_spec: usize,
    /// Connection create and edit bodies: a document of up to `max_spec` plus its
    /// operations (at most [`chatterfly_domain::operation::MAX_OPERATIONS_BYTES`]).
    pub max_connection: usize,
    /// Time a client has to send a whole body.
    pub body_read_timeout: std::time::Duration,
}

impl AppState {
    pub fn new(app: &App, listen_url: &str, egress: chatterfly_egress::Egress) -> Self {
        let app_url = app.config.app_url.clone().unwrap_or_else(|| listen_url.to_owned());
        let tools = Arc::new(chatterfly_tools::Tools::new(
            app.store.clone(),
            app.keys.clone(),
            egress,
        ));
        tools
            .outbound
            .set_limit(usize::try_from(app.config.max_calls_per_workspace).unwrap_or(usize::MAX));
        let runner = chatterfly_runs::Runner::new(
            tools.clone(),
            chatterfly_runs::RunnerOptions {
                model_timeout: std::time::Duration::from_secs(app.config.model_timeout_secs.max(1)),
                model_retries: app.config.model_retries.min(10),
                stale_after: std::time::Duration::from_secs(app.config.run_stale_secs.max(1)),
                max_running_per_workspace: app.config.max_runs_per_workspace.max(1),
            },
        );
        let flows = chatterfly_runs::Flows::new(
            tools.clone(),
            runner.clone(),
            chatterfly_runs::FlowOptions {
                lease: std::time::Duration::from_millis(app.config.workflow_lease_ms.clamp(300, 600_000)),
                workers: app.config.workflow_workers.clamp(1, 1024),
                max_unfinished_per_workspace: app.config.max_workflow_runs_per_workspace.max(1),
                workspace_share: app.config.workflow_workspace_share.max(1),
                ..chatterfly_runs::FlowOptions::default()
            },
        );
        Self(Arc::new(Shared {
            store: app.store.clone(),
            keys: app.keys.clone(),
            runner,
            flows,
            tools,
            app_url: app_url.trim_end_matches('/').into(),
            limits: Limits {
                max_body: app.config.max_body_bytes,
                max_spec: app.config.max_spec_bytes,
                max_connection: app
                    .config
                    .max_spec_bytes
                    .saturating_add(chatterfly_domain::operation::MAX_OPERATIONS_BYTES),
                body_read_timeout: std::time::Duration::from_millis(app.config.body_read_timeout_ms.max(1)),
            },
            bodies: crate::extract::BodyBudget::new(
                app.config.inflight_body_bytes().max(
                    app.config
                        .max_spec_bytes
                        .saturating_add(chatterfly_domain::operation::MAX_OPERATIONS_BYTES),
                ),
            ),
            imports: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            )),
            heavy: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            )),
            passwords: Arc::new(auth::PasswordGuard::default()),
            metrics_access: Arc::new(
                crate::ops::MetricsAccess::new(app.config.metrics_token.as_deref(), &app.config.metrics_allow)
                    .unwrap_or_else(|e| {
                        tracing::error!("{e}; /metrics is readable from loopback only");
                        crate::ops::MetricsAccess {
                            token_hash: None,
                            allow: vec![
                                ipnet::IpNet::from(std::net::IpAddr::from([127, 0, 0, 1])),
                                ipnet::IpNet::from(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
                            ],
                        }
                    }),
            ),
            calls: {
                app.store.watch_changes();
                Arc::new(crate::call_cache::CallCache::new(app.store.changes().clone()))
            },
        }))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chatterfly Connections",
        description = "Credentialed, outbound connections for agents and workflows. Errors are RFC 9457 problem documents with a stable `code`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(crate::error::Problem))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document and the router, built together. Body limits are applied by the JSON
/// extractors (see `extract`), so the layer here only lifts axum's own default out of the way.
pub fn api(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(crate::ops::ready))
        .routes(routes!(me::me))
        .routes(routes!(auth::login))
        .routes(routes!(auth::session))
        .routes(routes!(auth::logout))
        .routes(routes!(workspaces::create_workspace, workspaces::list_workspaces))
        .routes(routes!(workspaces::get_workspace))
        .routes(routes!(workspaces::list_members))
        .routes(routes!(workspaces::set_member, workspaces::remove_member))
        .routes(routes!(invitations::invite, invitations::list_invitations))
        .routes(routes!(invitations::delete_invitation))
        .routes(routes!(invitations::my_invitations))
        .routes(routes!(invitations::accept_invitation))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::create_token, users::list_tokens))
        .routes(routes!(users::delete_token))
        .routes(routes!(connections::list_connections, connections::create_connection))
        .routes(routes!(import::import_openapi))
        .routes(routes!(connections::validate_connection))
        .routes(routes!(mcp::discover_mcp))
        .routes(routes!(mcp::refresh_connection))
        .routes(routes!(connections::get_connection_source))
        .routes(routes!(
            connections::get_connection,
            connections::patch_connection,
            connections::delete_connection
        ))
        .routes(routes!(tools::list_tools))
        .routes(routes!(tools::invoke))
        .routes(routes!(tools::audit))
        .routes(routes!(
            services::get_platform_service,
            services::put_platform_service,
            services::delete_platform_service
        ))
        .routes(routes!(services::list_workspace_services))
        .routes(routes!(
            services::put_workspace_service,
            services::delete_workspace_service
        ))
        .routes(routes!(accounts::list_accounts))
        .routes(routes!(accounts::list_account_providers))
        .routes(routes!(accounts::connect))
        .routes(routes!(accounts::callback))
        .routes(routes!(accounts::disconnect))
        .routes(routes!(
            accounts::get_my_credentials,
            accounts::put_my_credentials,
            accounts::delete_my_credentials
        ))
        .routes(routes!(
            services::get_oauth_provider,
            services::put_oauth_provider,
            services::delete_oauth_provider
        ))
        .routes(routes!(participants::list_roles, participants::create_role))
        .routes(routes!(participants::delete_role))
        .routes(routes!(
            participants::list_participants,
            participants::create_participant
        ))
        .routes(routes!(
            participants::get_participant,
            participants::update_participant,
            participants::delete_participant
        ))
        .routes(routes!(participants::reissue_link, participants::revoke_link))
        .routes(routes!(participants::revoke_credentials))
        .routes(routes!(participants::connection_participants))
        .routes(routes!(onboarding::get_onboarding))
        .routes(routes!(onboarding::put_credentials, onboarding::delete_credentials))
        .routes(routes!(onboarding::connect))
        .routes(routes!(connections::check_telegram))
        .routes(routes!(agents::list_agents, agents::create_agent))
        .routes(routes!(agents::get_agent, agents::patch_agent, agents::delete_agent))
        .routes(routes!(agents::declarations))
        .routes(routes!(agents::start_run, agents::list_runs))
        .routes(routes!(agents::get_run))
        .routes(routes!(agents::cancel_run))
        .routes(routes!(agents::run_events))
        .routes(routes!(workflows::list_workflows, workflows::create_workflow))
        .routes(routes!(
            workflows::get_workflow,
            workflows::patch_workflow,
            workflows::delete_workflow
        ))
        .routes(routes!(workflows::deploy_workflow))
        .routes(routes!(workflows::start_run, workflows::list_runs))
        .routes(routes!(workflows::get_run))
        .routes(routes!(workflows::cancel_run))
        .routes(routes!(workflows::run_events))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
        .split_for_parts();
    (router, doc)
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let changes = state.store.changes().clone();
    let (api, doc) = api(state.clone());
    // serialized once: the finished document is the same for every request
    let doc = serde_json::to_value(&doc).map(document::finish).unwrap_or_default();
    let doc: Arc<[u8]> = serde_json::to_vec(&doc).unwrap_or_default().into();
    api.route(
        "/api/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], doc.to_vec()) }
        }),
    )
    .merge(crate::web::router())
    .route(
        "/onboard/{token}",
        get(onboarding::onboard_page).with_state(state.clone()),
    )
    .fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
        // a person's browser gets a page; a client of the API a problem document
        if method == axum::http::Method::GET && !uri.path().starts_with("/api/") && uri.path() != "/api" {
            crate::web::not_found_page().await
        } else {
            axum::response::IntoResponse::into_response(ApiError::NotFound(
                "no such route; see /api/openapi.json for the API".into(),
            ))
        }
    })
    .method_not_allowed_fallback(|| async {
        ApiError::Coded {
            status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            detail: "this route does not take that method; see /api/openapi.json".into(),
        }
    })
    .layer(axum::middleware::map_response(api_headers))
    .layer(axum::middleware::from_fn_with_state(
        changes,
        crate::call_cache::note_writes,
    ))
    .route("/metrics", get(crate::ops::metrics).with_state(state))
    .layer(TraceLayer::new_for_http().make_span_with(request_span))
    .layer(axum::middleware::from_fn(crate::ops::request_id))
    .layer(axum::middleware::from_fn(crate::ops::close_if_body_unread))
}

/// Every answer is `nosniff`; API answers are not cached unless they say otherwise (they
/// may carry a CSRF token or workspace data, and the cookie authenticates them).
async fn api_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let h = response.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The span of a request in the log: its id, method, path and HTTP version, never the query string
/// (an OAuth callback's carries the authorization code and the state).
/// A path can carry an onboarding link's token (`/onboard/<token>`, or any path a visitor
/// makes up around one: `//ONBOARD/<token>`, `/onboard%2F<token>`): see [`masked_path`].
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let path = masked_path(req.uri().path());
    let id = req
        .headers()
        .get(crate::ops::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %path, version = ?req.version())
}

/// `path` with every run of 40 or more URL-safe characters (`A-Z a-z 0-9 _ -`) written
/// `…`: an onboarding token is 43 of them; ids (UUIDs) are 36, and a slug longer than 39
/// only loses its letters in the log line.
pub(crate) fn masked_path(path: &str) -> std::borrow::Cow<'_, str> {
    // percent-escapes decoded first (a token is accepted with its letters escaped), until
    // nothing changes (an escape of an escape)
    let mut decoded = std::borrow::Cow::Borrowed(path);
    for _ in 0..4 {
        if !decoded.contains('%') {
            break;
        }
        let next: String = percent_encoding::percent_decode_str(&decoded)
            .decode_utf8_lossy()
            .into_owned();
        if next == *decoded {
            break;
        }
        decoded = std::borrow::Cow::Owned(next);
    }
    match decoded {
        std::borrow::Cow::Borrowed(p) => mask_runs(p),
        std::borrow::Cow::Owned(p) => std::borrow::Cow::Owned(mask_runs(&p).into_owned()),
    }
}

fn mask_runs(path: &str) -> std::borrow::Cow<'_, str> {
    const RUN: usize = 40;
    let token_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let bytes = path.as_bytes();
    let mut out = String::new();
    let (mut copied, mut i) = (0, 0);
    while i < bytes.len() {
        if !token_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && token_byte(bytes[i]) {
            i += 1;
        }
        if i - start >= RUN {
            out.push_str(&path[copied..start]);
            out.push('…');
            copied = i;
        }
    }
    if copied == 0 {
        return std::borrow::Cow::Borrowed(path);
    }
    out.push_str(&path[copied..]);
    std::borrow::Cow::Owned(out)
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or set.
pub(crate) fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::masked_path;

    #[test]
    fn onboarding_tokens_never_reach_a_logged_path() {
        let tok = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCd0";
        assert_eq!(tok.len(), 43);
        for path in [
            format!("/onboard/{tok}"),
            format!("//onboard/{tok}"),
            format!("/ONBOARD/{tok}"),
            format!("/onboard%2F{tok}"),
            format!("/api/onboarding/{tok}"),
            format!("/x/{tok}{tok}/y"),
            format!("/onboard/{tok}.png"),
            format!("/onboard/{}", tok.replace('a', "%61").replace('0', "%30")),
            format!(
                "/onboard/{}",
                tok.bytes().map(|b| format!("%{b:02X}")).collect::<String>()
            ),
            format!(
                "/onboard/{}",
                tok.bytes().map(|b| format!("%25{b:02X}")).collect::<String>()
            ),
        ] {
            let masked = masked_path(&path);
            assert!(!masked.contains(&tok[..20]), "{path} → {masked}");
            assert!(masked.contains('…'), "{masked}");
        }
        // ordinary paths are kept as they are
        for path in [
            "/api/workspaces/acme/connections/github/operations",
            "/api/audit/01937a2e-7c1f-7b3e-9d1a-1b2c3d4e5f60",
            "/",
            "/onboard/short",
        ] {
            assert_eq!(masked_path(path), path);
        }
    }
}
