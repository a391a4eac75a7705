//! The tool registry and the call path every agent and workflow goes through.
//!
//! A tool name is resolved against the built-ins first ([`builtin`]), then parsed as
//! `slug.operation` and looked up in the workspace's connections. A call validates its
//! arguments against the operation's input schema before any request is made, finds the
//! credentials (sealed in the vault for `static`, passed with the call for `caller`),
//! builds the request (`chatterfly_domain::build_request`), adds the auth, sends it through
//! the guarded egress client, and returns `{status, headers, body}` with every credential
//! value replaced by `[REDACTED]`. Every call leaves an audit record with names, outcome
//! and timing only.

pub mod accounts;
mod audit;
mod builtin;
mod credentials;
pub mod gmail;
pub mod mcp;
pub mod outbound;
mod redact;
mod search;
pub mod services;
pub mod telegram;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chatterfly_domain::connection::Fulfillment;
use chatterfly_domain::{BuildError, HttpMethod, Operation, SecretFields, ServiceType, ToolName, build_request};
use chatterfly_egress::{Egress, EgressError, OutboundRequest};
use chatterfly_store::{AccountOwner, ConnectionRecord, NewAuditEvent, ParticipantRecord, Store, StoreError};
use chatterfly_vault::KeyRing;
use serde_json::{Map, Value};

pub use redact::Redactor;

/// A tool as the picker shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// `GET …/tools`: built-ins and the workspace's connection tools.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    pub standard: Vec<ToolInfo>,
    pub connections: Vec<ToolInfo>,
}

/// Why a call failed. Messages name tools, connections and argument paths, never values
/// of credentials.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{0}")]
    NotFound(String),
    #[error("the arguments do not match the tool's input schema at `{pointer}`: {detail}")]
    InvalidArguments { pointer: String, detail: String },
    #[error("{0}")]
    CredentialsRequired(String),
    #[error("{0}")]
    InvalidCredentials(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error("{0}")]
    Egress(#[from] EgressError),
    #[error("{0}")]
    NotConfigured(String),
    #[error("{0}")]
    Mcp(#[from] chatterfly_mcp::McpError),
    /// The caller's account must be connected again (its refresh was refused).
    #[error("{0}")]
    AccountNeedsReconnect(String),
    /// The account's token could not be refreshed (the provider was unreachable).
    #[error("{0}")]
    AccountRefresh(String),
    /// The operation needs a permission tier the account did not grant.
    #[error("{0}")]
    InsufficientScope(String),
    /// A person's account token would go to another origin than its provider's API.
    #[error("{0}")]
    AccountOrigin(String),
    /// The upstream API answered with an error (built-in operations).
    #[error("{message}")]
    Upstream { status: u16, message: String },
    /// `participant` names no participant of this workspace.
    #[error("{0}")]
    ParticipantNotFound(String),
    /// The participant's role is not the one the connection collects credentials from.
    #[error("{0}")]
    ParticipantRole(String),
    /// The Telegram Bot API answered `ok: false`.
    #[error("Telegram refused the call ({error_code}): {description}{}", retry_after.map(|s| format!("; retry after {s} s")).unwrap_or_default())]
    Telegram {
        error_code: u16,
        description: String,
        retry_after: Option<u64>,
    },
    /// The workspace has its bound of calls under way on this server.
    #[error(
        "this workspace has {limit} tool calls under way on this server, its bound (CHATTERFLY_MAX_CALLS_PER_WORKSPACE); try again in a moment"
    )]
    Busy { limit: usize },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ToolError {
    /// The stable problem code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "tool_not_found",
            Self::InvalidArguments { .. } | Self::Build(_) => "invalid_arguments",
            Self::CredentialsRequired(_) => "credentials_required",
            Self::InvalidCredentials(_) => "invalid_credentials",
            Self::Unsupported(_) => "not_supported",
            Self::Egress(e) => e.code(),
            Self::NotConfigured(_) => "not_configured",
            Self::Mcp(e) => e.code(),
            Self::AccountNeedsReconnect(_) => "account_needs_reconnect",
            Self::AccountRefresh(_) => "account_refresh_failed",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::AccountOrigin(_) => "account_origin_mismatch",
            Self::Upstream { .. } => "upstream_error",
            Self::ParticipantNotFound(_) => "participant_not_found",
            Self::ParticipantRole(_) => "participant_role_mismatch",
            Self::Telegram { error_code: 429, .. } => "rate_limited",
            Self::Telegram {
                error_code: 401 | 404, ..
            } => "invalid_credentials",
            Self::Telegram { .. } => "telegram_error",
            Self::Busy { .. } => "workspace_busy",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ToolError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// One call.
pub struct Call<'a> {
    pub workspace_id: &'a str,
    /// For messages that tell an admin where to act.
    pub workspace_slug: &'a str,
    pub user_id: Option<&'a str>,
    pub tool: &'a str,
    pub arguments: Value,
    /// Credentials passed with the call (`caller` fulfillment): used for this call only.
    pub credentials: Option<Map<String, Value>>,
    /// The participant on whose behalf the call is made (`participant` fulfillment uses
    /// their credentials).
    pub participant: Option<&'a str>,
    /// The connection and operation of a `slug.operation` tool, when the caller has read
    /// them already (the API reads them in the same query as the caller's token and role);
    /// `None`: looked up here.
    /// Wait (up to [`outbound::RUN_WAIT`]) when the workspace has its bound of calls under
    /// way, instead of being refused at once: agent and workflow runs.
    pub wait_for_room: bool,
    pub resolved: Option<Arc<ConnectionLookup>>,
    /// The agent run making the call (named in the audit row).
    pub run_id: Option<&'a str>,
}

/// A connection of the workspace with the tool's operation, if it has one; `None`: the
/// workspace has no connection of that slug.
pub type ConnectionLookup = Option<(ConnectionRecord, Option<Operation>)>;

/// Whether `tool` names a connection's tool (`slug.operation`), not a standard one; the
/// parts of the name when it does. A name that is neither fails later, in `invoke`.
pub fn connection_tool_name(tool: &str) -> Option<ToolName> {
    if builtin::is_builtin(tool) || search::kind(tool).is_some() {
        return None;
    }
    tool.parse().ok()
}

/// The result of a successful call.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub output: Value,
    pub duration_ms: u64,
    /// The answer's room in the server-wide budget for answers in flight
    /// ([`chatterfly_egress::answers`]), held until the output has been handed on.
    pub room: chatterfly_egress::answers::AnswerRoom,
}

type ValidatorKey = (String, String, String);

/// A call under way: its audit row is written (and the call counted) only if the call is
/// dropped before it ends. Holds the call's names, not copies: nothing is built on the
/// path every call takes.
struct Unfinished<'a> {
    tools: &'a Tools,
    started: Instant,
    call: Option<CallNames<'a>>,
}

/// The names of a call its audit row is made of.
struct CallNames<'a> {
    workspace_id: &'a str,
    user_id: Option<&'a str>,
    tool: &'a str,
    participant: Option<&'a str>,
    run_id: Option<&'a str>,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        let Some(CallNames {
            workspace_id,
            user_id,
            tool,
            participant,
            run_id,
        }) = self.call.take()
        else {
            return;
        };
        let elapsed = self.started.elapsed();
        self.tools
            .metrics
            .record("unknown", Err("client_closed"), elapsed.as_secs_f64());
        self.tools.audit.record_now(NewAuditEvent {
            workspace_id: workspace_id.to_owned(),
            user_id: user_id.map(str::to_owned),
            tool: tool.to_owned(),
            connection_slug: tool.split_once('.').map(|(s, _)| s.to_owned()),
            ok: false,
            http_status: None,
            error_code: Some("client_closed"),
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            participant_id: participant.map(str::to_owned),
            run_id: run_id.map(str::to_owned),
        });
    }
}

/// The registry and invoker. Holds only caches derived from the store (keyed by the
/// connection's `updated_at`, so an edit on any replica takes effect at once).
pub struct Tools {
    store: Store,
    keys: Arc<KeyRing>,
    egress: Egress,
    validators: Mutex<HashMap<ValidatorKey, Arc<jsonschema::Validator>>>,
    audit: audit::AuditWriter,
    mcp: Arc<chatterfly_mcp::McpClient>,
    refresh_locks: accounts::RefreshLocks,
    sa_tokens: gmail::ServiceAccountTokens,
    /// Calls under way per workspace, and their bound.
    pub outbound: outbound::Outbound,
    /// Counts of calls, for `/metrics`.
    pub metrics: outbound::CallMetrics,
}

const VALIDATOR_CACHE: usize = 4096;

impl Tools {
    /// Must be called inside a tokio runtime (it starts the audit writer, the MCP session
    /// reaper and the listener for MCP tool-list changes).
    pub fn new(store: Store, keys: Arc<KeyRing>, egress: Egress) -> Self {
        Self::with_mcp_pool(store, keys, egress, chatterfly_mcp::PoolSettings::default())
    }

    pub fn with_mcp_pool(store: Store, keys: Arc<KeyRing>, egress: Egress, pool: chatterfly_mcp::PoolSettings) -> Self {
        let (mcp, changes) = chatterfly_mcp::McpClient::new(egress.clone(), pool);
        mcp::start_listener(store.clone(), changes);
        Self {
            audit: audit::AuditWriter::start(store.clone()),
            store,
            keys,
            egress,
            validators: Mutex::new(HashMap::new()),
            mcp,
            refresh_locks: accounts::RefreshLocks::default(),
            sa_tokens: gmail::ServiceAccountTokens::default(),
            outbound: outbound::Outbound::default(),
            metrics: outbound::CallMetrics::default(),
        }
    }

    /// Audit rows recorded and not yet written.
    pub fn audit_backlog(&self) -> usize {
        self.audit.backlog()
    }

    /// My Accounts: the connect flow, access tokens, disconnecting.
    /// The guarded HTTP client every outbound request goes through.
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// The store the registry reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The keys that open sealed values.
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    pub fn accounts(&self) -> accounts::Accounts<'_> {
        accounts::Accounts {
            store: &self.store,
            keys: &self.keys,
            egress: &self.egress,
            locks: &self.refresh_locks,
        }
    }

    /// Waits until every audit row of calls made so far is written.
    pub async fn flush_audit(&self) {
        self.audit.flush().await;
    }

    /// Writes the queued audit rows and stops the writer, and closes MCP sessions (on
    /// shutdown).
    pub async fn close(&self) {
        self.audit.close().await;
        self.mcp.close_all().await;
    }

    /// The tool picker's view of a workspace.
    pub async fn catalog(&self, workspace_id: &str) -> Result<Catalog, ToolError> {
        let connections = self
            .store
            .workspace_operations(workspace_id)
            .await?
            .into_iter()
            .map(|(slug, op)| ToolInfo {
                name: format!("{slug}.{}", op.name),
                description: op.description,
                input_schema: op.input_schema,
            })
            .collect();
        let mut standard = builtin::all();
        standard.extend(search::infos());
        Ok(Catalog { standard, connections })
    }

    /// Calls a tool and records the call in the audit log.
    pub async fn invoke(&self, mut call: Call<'_>) -> Result<Output, ToolError> {
        let started = Instant::now();
        let mut slug = None;
        let mut participant_used = None;
        let mut kind = "unknown";
        let mut room = chatterfly_egress::answers::AnswerRoom::none();
        let slot = if call.wait_for_room {
            self.outbound.enter_waiting(call.workspace_id, outbound::RUN_WAIT).await
        } else {
            self.outbound.enter(call.workspace_id)
        };
        let result = match slot {
            Some(_slot) => {
                // a call whose caller hangs up part-way is dropped here, perhaps after its
                // request went out: it is audited (and counted) as `client_closed`
                let mut unfinished = Unfinished {
                    tools: self,
                    started,
                    call: Some(CallNames {
                        workspace_id: call.workspace_id,
                        user_id: call.user_id,
                        tool: call.tool,
                        participant: call.participant,
                        run_id: call.run_id,
                    }),
                };
                let result = self
                    .dispatch(&mut call, &mut slug, &mut participant_used, &mut kind, &mut room)
                    .await;
                unfinished.call = None;
                result
            }
            None => {
                slug = call.tool.split_once('.').map(|(s, _)| s.to_owned());
                Err(ToolError::Busy {
                    limit: self.outbound.limit(),
                })
            }
        };
        let elapsed = started.elapsed();
        self.metrics.record(
            kind,
            result.as_ref().map(|_| ()).map_err(ToolError::code),
            elapsed.as_secs_f64(),
        );
        let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if matches!(result, Err(ToolError::Busy { .. })) && !self.outbound.audit_refusal(call.workspace_id) {
            return result.map(|output| Output {
                output,
                duration_ms,
                room,
            });
        }
        let (ok, http_status, code) = match &result {
            Ok(v) => (
                true,
                v.get("status")
                    .and_then(Value::as_u64)
                    .and_then(|s| u16::try_from(s).ok()),
                None,
            ),
            Err(e) => (false, None, Some(e.code())),
        };
        self.audit
            .record(NewAuditEvent {
                workspace_id: call.workspace_id.to_owned(),
                user_id: call.user_id.map(str::to_owned),
                tool: call.tool.to_owned(),
                connection_slug: slug,
                ok,
                http_status,
                error_code: code,
                duration_ms,
                participant_id: participant_used,
                run_id: call.run_id.map(str::to_owned),
            })
            .await;
        result.map(|output| Output {
            output,
            duration_ms,
            room,
        })
    }

    async fn dispatch(
        &self,
        call: &mut Call<'_>,
        slug_out: &mut Option<String>,
        participant_out: &mut Option<String>,
        kind_out: &mut &'static str,
        room: &mut chatterfly_egress::answers::AnswerRoom,
    ) -> Result<Value, ToolError> {
        // a participant is always one of this workspace's, whatever the tool
        let participant = match call.participant {
            Some(id) => Some(self.participant(call.workspace_id, id).await?),
            None => None,
        };
        if let Some(result) = builtin::call(call.tool, &call.arguments) {
            *kind_out = "builtin";
            return result;
        }
        if let Some(kind) = search::kind(call.tool) {
            *kind_out = "builtin";
            return self
                .search(kind, (call.workspace_id, call.workspace_slug), &call.arguments)
                .await;
        }
        let name: ToolName = call.tool.parse().map_err(|e: chatterfly_domain::NameError| {
            ToolError::NotFound(format!("tool `{}` not found: {}", short(call.tool), e.0))
        })?;
        *slug_out = Some(name.slug.to_string());
        let found = match call.resolved.take() {
            Some(found) => found,
            None => Arc::new(
                self.store
                    .connection_tool(call.workspace_id, name.slug.as_str(), name.operation.as_str())
                    .await?,
            ),
        };
        let (conn, op) = found.as_ref().as_ref().ok_or_else(|| {
            ToolError::NotFound(format!(
                "tool `{name}` not found: there is no connection `{}` in this workspace (renamed or deleted?)",
                name.slug
            ))
        })?;
        let op = op.as_ref().ok_or_else(|| {
            ToolError::NotFound(format!(
                "tool `{name}` not found: connection `{}` has no operation `{}`",
                name.slug, name.operation
            ))
        })?;
        *kind_out = conn.draft.service_type.as_str();
        self.validate(conn, op, &call.arguments)?;
        let on_behalf = match (&participant, conn.draft.fulfillment) {
            (Some(p), Fulfillment::Participant) => {
                check_participant_role(p, conn)?;
                *participant_out = Some(p.id.clone());
                Some(p)
            }
            (None, Fulfillment::Participant) => {
                return Err(ToolError::CredentialsRequired(format!(
                    "connection `{}` uses the credentials of a participant (role `{}`): name one with `participant`",
                    conn.draft.slug,
                    conn.draft
                        .participant_role
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                )));
            }
            _ => None,
        };
        let who = Who {
            user: call.user_id,
            participant: on_behalf,
        };
        if conn.draft.service_type == ServiceType::Gmail {
            return self
                .call_gmail(conn, op, &call.arguments, call.credentials.as_ref(), who)
                .await;
        }
        // `security: []` in the source document: this operation is called without credentials
        let secrets = if op.request.as_ref().is_none_or(|m| m.credentials) {
            Some(self.credentials(conn, call.credentials.as_ref(), who).await?)
        } else {
            None
        };
        match conn.draft.service_type {
            ServiceType::Http | ServiceType::Openapi => {
                self.call_http(conn, op, &call.arguments, secrets.as_ref(), room).await
            }
            ServiceType::Mcp => {
                let none = SecretFields::default();
                self.call_mcp(conn, op, &call.arguments, secrets.as_ref().unwrap_or(&none), room)
                    .await
            }
            ServiceType::Telegram => {
                let token = secrets
                    .as_ref()
                    .and_then(|s| s.get("token"))
                    .ok_or_else(|| ToolError::Internal("a Telegram connection without its bot token".into()))?;
                let empty = Map::new();
                telegram::call(
                    &self.egress,
                    self.limits_for(conn),
                    Some(conn.workspace_id.as_str().into()),
                    &conn.draft.base_url,
                    op.name.as_str(),
                    call.arguments.as_object().unwrap_or(&empty),
                    token,
                )
                .await
            }
            ServiceType::Gmail => Err(ToolError::Internal("Gmail is dispatched above".into())),
        }
    }

    /// A participant of this workspace (another workspace's is as unknown as a made-up id).
    pub async fn participant(&self, workspace_id: &str, id: &str) -> Result<ParticipantRecord, ToolError> {
        self.store.participant(workspace_id, id).await?.ok_or_else(|| {
            ToolError::ParticipantNotFound(format!("there is no participant `{}` in this workspace", short(id)))
        })
    }

    /// Checks a bot token with `getMe` before a connection is saved: the bot's own
    /// description, or Telegram's refusal.
    pub async fn telegram_check(&self, base_url: &str, token: &chatterfly_vault::Secret) -> Result<Value, ToolError> {
        telegram::call(&self.egress, None, None, base_url, "get_me", &Map::new(), token).await
    }

    fn validate(&self, conn: &ConnectionRecord, op: &Operation, args: &Value) -> Result<(), ToolError> {
        if !args.is_object() {
            return Err(ToolError::InvalidArguments {
                pointer: String::new(),
                detail: "`arguments` must be a JSON object".into(),
            });
        }
        let key = (conn.id.clone(), op.name.to_string(), conn.updated_at.clone());
        let cached = self.validators.lock().ok().and_then(|m| m.get(&key).cloned());
        let validator = match cached {
            Some(v) => v,
            None => {
                let v = Arc::new(
                    jsonschema::validator_for(&op.input_schema)
                        .map_err(|e| ToolError::Internal(format!("stored input schema does not compile: {e}")))?,
                );
                if let Ok(mut m) = self.validators.lock() {
                    if m.len() >= VALIDATOR_CACHE {
                        m.clear();
                    }
                    m.insert(key, v.clone());
                }
                v
            }
        };
        if let Some(err) = validator.iter_errors(args).next() {
            return Err(ToolError::InvalidArguments {
                pointer: err.instance_path().to_string(),
                detail: err.to_string(),
            });
        }
        Ok(())
    }

    /// The call's credentials. `caller`: those passed with the call, else the caller's My
    /// Accounts (the account of the connection's provider, or the key saved for the
    /// connection), else `credentials_required`. Never another person's. `participant`:
    /// the participant's account or key for this connection (their role checked before).
    async fn credentials(
        &self,
        conn: &ConnectionRecord,
        passed: Option<&Map<String, Value>>,
        who: Who<'_>,
    ) -> Result<SecretFields, ToolError> {
        let none_passed = passed.is_none_or(Map::is_empty);
        if conn.draft.fulfillment == Fulfillment::Participant
            && let Some(p) = who.participant
        {
            if !none_passed {
                return Err(ToolError::InvalidCredentials(format!(
                    "connection `{}` uses the credentials participant `{}` gave; a call passes none",
                    conn.draft.slug, p.id
                )));
            }
            if let Some(provider) = conn.draft.account_provider() {
                let t = self.account_token(conn, provider, Some(p), None).await?;
                return Ok(token_fields(t.token));
            }
            let saved = self
                .store
                .participant_credentials(&p.id, &conn.id)
                .await?
                .ok_or_else(|| {
                    ToolError::CredentialsRequired(format!(
                        "participant `{}` has given no credentials for connection `{}`: send them their onboarding link",
                        p.id, conn.draft.slug
                    ))
                })?;
            return self.open_fields(
                &saved.secrets_sealed,
                &chatterfly_store::aad::participant_credentials(&saved.id),
            );
        }
        if conn.draft.fulfillment == Fulfillment::Caller
            && none_passed
            && let Some(user) = who.user
        {
            if let Some(provider) = conn.draft.account_provider() {
                let t = self.account_token(conn, provider, None, Some(user)).await?;
                return Ok(token_fields(t.token));
            }
            if !conn.draft.auth_type.secret_fields().is_empty()
                && let Some(saved) = self.store.personal_credentials(user, &conn.id).await?
            {
                return self.open_fields(
                    &saved.secrets_sealed,
                    &chatterfly_store::aad::personal_credentials(&saved.id),
                );
            }
        }
        credentials::resolve(&self.keys, conn, passed)
    }

    fn open_fields(&self, sealed: &str, aad: &[u8]) -> Result<SecretFields, ToolError> {
        let plain = self
            .keys
            .open_string(sealed, aad)
            .map_err(|e| ToolError::Internal(format!("saved credentials: {e}")))?;
        SecretFields::from_sealed_json(chatterfly_vault::ExposeSecret::expose_secret(&plain))
            .map_err(|e| ToolError::Internal(e.to_owned()))
    }

    /// The access token of the caller's account, or of the participant's for this
    /// connection, after checking it may go where the connection points.
    async fn account_token(
        &self,
        conn: &ConnectionRecord,
        provider: chatterfly_domain::OAuthProvider,
        participant: Option<&ParticipantRecord>,
        user: Option<&str>,
    ) -> Result<accounts::AccountToken, ToolError> {
        let accounts = self.accounts();
        let slug = conn.draft.slug.as_str();
        accounts.check_target(provider, &conn.draft.base_url, slug).await?;
        let owner = match (participant, user) {
            (Some(p), _) => AccountOwner::Participant {
                participant_id: &p.id,
                connection_id: &conn.id,
            },
            (None, Some(u)) => AccountOwner::User(u),
            (None, None) => {
                return Err(ToolError::CredentialsRequired(format!(
                    "connection `{slug}` uses the caller's own {} account; this call has no caller",
                    provider.label()
                )));
            }
        };
        accounts.access_token(owner, provider, slug).await
    }

    /// A Gmail operation: a token from the service account or the caller's Google
    /// account, the scope check, then the request.
    async fn call_gmail(
        &self,
        conn: &ConnectionRecord,
        op: &Operation,
        args: &Value,
        passed: Option<&Map<String, Value>>,
        who: Who<'_>,
    ) -> Result<Value, ToolError> {
        use chatterfly_domain::AuthType;
        use chatterfly_vault::ExposeSecret;
        let slug = conn.draft.slug.as_str();
        if passed.is_some_and(|p| !p.is_empty()) {
            return Err(ToolError::InvalidCredentials(format!(
                "Gmail connection `{slug}` takes no `credentials`: its token comes from {}",
                if conn.draft.auth_type == AuthType::Oauth {
                    "your Google account under My Accounts"
                } else {
                    "its service account"
                }
            )));
        }
        if chatterfly_domain::gmail_operation_scopes(op.name.as_str()).is_none() {
            return Err(ToolError::NotFound(format!("Gmail has no operation `{}`", op.name)));
        }
        let (token, scopes) = match conn.draft.auth_type {
            AuthType::ServiceAccount => {
                let secrets = credentials::resolve(&self.keys, conn, None)?;
                let key = secrets
                    .get("service_account_json")
                    .ok_or_else(|| ToolError::Internal(format!("connection `{slug}` has no service account key")))?;
                let subject = conn
                    .draft
                    .auth_public
                    .get("subject")
                    .ok_or_else(|| ToolError::Internal(format!("connection `{slug}` has no subject")))?;
                // the scope check needs no token: fail before the token request
                let wanted = gmail::service_account_scopes(conn.draft.auth_public.get("tiers").map(String::as_str))
                    .map_err(ToolError::InvalidCredentials)?;
                gmail::check_scope(op.name.as_str(), &wanted)?;
                self.sa_tokens
                    .token(
                        &self.egress,
                        (conn.id.clone(), conn.updated_at.clone()),
                        key.expose_secret(),
                        subject,
                        conn.draft.auth_public.get("tiers").map(String::as_str),
                    )
                    .await?
            }
            AuthType::Oauth => {
                let t = self
                    .account_token(conn, chatterfly_domain::OAuthProvider::Gmail, who.participant, who.user)
                    .await?;
                // before any request: the tiers this account granted
                gmail::check_scope(op.name.as_str(), &t.scopes)?;
                (t.token, t.scopes)
            }
            other => {
                return Err(ToolError::Internal(format!("a Gmail connection with auth `{other}`")));
            }
        };
        let empty = Map::new();
        gmail::call(
            &self.egress,
            (self.limits_for(conn), Some(conn.workspace_id.as_str().into())),
            &conn.draft.base_url,
            op.name.as_str(),
            args.as_object().unwrap_or(&empty),
            &token,
            &scopes,
        )
        .await
    }

    async fn call_http(
        &self,
        conn: &ConnectionRecord,
        op: &Operation,
        args: &Value,
        secrets: Option<&SecretFields>,
        room: &mut chatterfly_egress::answers::AnswerRoom,
    ) -> Result<Value, ToolError> {
        let (Some(method), Some(path)) = (op.method, op.path.as_ref()) else {
            return Err(ToolError::Internal("an HTTP operation without method or path".into()));
        };
        let empty = Map::new();
        let mapping = op.request.as_ref();
        let built = build_request(
            &conn.draft.base_url,
            method,
            path,
            args.as_object().unwrap_or(&empty),
            mapping,
        )?;
        let mut req = OutboundRequest::new(to_http_method(method), built.url);
        req.tenant = Some(conn.workspace_id.as_str().into());
        req.headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json, */*;q=0.5"),
        );
        for (name, value) in &built.headers {
            // names were checked when the operation was saved; values by build_request
            let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) else {
                return Err(ToolError::InvalidArguments {
                    pointer: String::new(),
                    detail: format!("header `{}` cannot carry that value", short(name)),
                });
            };
            req.headers.append(name, value);
        }
        if let Some(body) = built.body {
            let ct = http::HeaderValue::from_str(&body.content_type)
                .map_err(|_| ToolError::Internal("stored content type is not a header value".into()))?;
            req.headers.insert(http::header::CONTENT_TYPE, ct);
            req.body = Some(bytes::Bytes::from(body.bytes));
        }
        let none = SecretFields::default();
        if let Some(secrets) = secrets {
            credentials::inject(conn.draft.auth_type, &conn.draft.auth_public, secrets, &mut req)?;
        }
        let redactor = Redactor::for_secrets(conn.draft.auth_type, secrets.unwrap_or(&none));
        let resp = self.egress.send(req, self.limits_for(conn)).await?;
        *room = resp.room;
        let status = resp.status.as_u16();
        if resp.body.len() < chatterfly_egress::heavy::HEAVY_BYTES {
            return Ok(redactor.output(status, &resp.headers, &resp.body));
        }
        // a large answer is redacted and parsed off the async workers, in its workspace's lane
        let (headers, body) = (resp.headers, resp.body);
        self.egress
            .heavy()
            .run(&conn.workspace_id, move || redactor.output(status, &headers, &body))
            .await
            .map_err(|e| ToolError::Internal(e.to_string()))
    }
}

impl Tools {
    /// The connection's own limits, each capped by the operator's maximum (egress caps
    /// again: a connection can never loosen the operator's bounds).
    fn limits_for(&self, conn: &ConnectionRecord) -> Option<chatterfly_egress::Limits> {
        let own = conn.draft.limits?;
        let max = self.egress.max_limits();
        Some(
            chatterfly_egress::Limits {
                connect_timeout: max.connect_timeout,
                total_timeout: own
                    .timeout_ms
                    .map_or(max.total_timeout, std::time::Duration::from_millis),
                max_response_bytes: own
                    .max_response_bytes
                    .map_or(max.max_response_bytes, |b| usize::try_from(b).unwrap_or(usize::MAX)),
                max_redirects: own.max_redirects.map_or(max.max_redirects, |r| r as usize),
            }
            .within(max),
        )
    }
}

/// Whose credentials a call may use: the calling person's (`caller`) and the participant's
/// it is made for (`participant`, role already checked).
#[derive(Clone, Copy)]
pub(crate) struct Who<'a> {
    pub(crate) user: Option<&'a str>,
    pub(crate) participant: Option<&'a ParticipantRecord>,
}

/// A participant's credentials serve only the connections of their role.
fn check_participant_role(p: &ParticipantRecord, conn: &ConnectionRecord) -> Result<(), ToolError> {
    let wanted = conn.draft.participant_role.as_ref().map(ToString::to_string);
    if wanted.as_deref() != Some(p.role.as_str()) {
        return Err(ToolError::ParticipantRole(format!(
            "connection `{}` takes the credentials of participants with role `{}`; participant `{}` does not have it",
            conn.draft.slug,
            wanted.unwrap_or_default(),
            p.id
        )));
    }
    Ok(())
}

fn token_fields(token: chatterfly_vault::Secret) -> SecretFields {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("token".to_owned(), token);
    SecretFields(fields)
}

fn to_http_method(m: HttpMethod) -> http::Method {
    match m {
        HttpMethod::Get => http::Method::GET,
        HttpMethod::Post => http::Method::POST,
        HttpMethod::Put => http::Method::PUT,
        HttpMethod::Patch => http::Method::PATCH,
        HttpMethod::Delete => http::Method::DELETE,
        HttpMethod::Head => http::Method::HEAD,
        HttpMethod::Options => http::Method::OPTIONS,
        HttpMethod::Trace => http::Method::TRACE,
    }
}

fn short(s: &str) -> String {
    if s.chars().count() > 100 {
        format!("{}…", s.chars().take(100).collect::<String>())
    } else {
        s.to_owned()
    }
}
