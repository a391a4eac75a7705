//! MCP connections: calls through the pooled client, discovery, and refreshes (from the
//! API, or started by a `notifications/tools/list_changed` on a live session).

use std::collections::BTreeMap;

use chatterfly_domain::{
    AuthType, ConnectionDraft, McpServerInfo, McpTransport, Operation, OperationKind, SecretFields, ServiceType,
};
use chatterfly_mcp::{Discovery, McpError, Target, ToolDef, operations_from_tools};
use chatterfly_store::{ConnectionRecord, SealedUpdate, Store};
use chatterfly_vault::ExposeSecret;
use serde_json::{Map, Value};

use crate::{Redactor, ToolError, Tools};

/// What a refresh changed, by operation name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshReport {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub warnings: Vec<String>,
}

impl RefreshReport {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Discovery's answer with the operations a connection would store.
#[derive(Debug, Clone)]
pub struct DiscoveredServer {
    pub discovery: Discovery,
    pub operations: Vec<Operation>,
    pub warnings: Vec<String>,
}

/// A server's tools as valid operations, with warnings for what was renamed, replaced or
/// left out.
fn operations_of(tools: &[ToolDef]) -> (Vec<Operation>, Vec<String>) {
    let (inputs, mut warnings) = operations_from_tools(tools);
    let mut operations = Vec::with_capacity(inputs.len());
    for input in inputs {
        let name = input.name.clone();
        match Operation::parse(input, OperationKind::McpTool) {
            Ok(op) => operations.push(op),
            Err(e) => warnings.push(format!("tool `{name}` was left out: {}", e.summary())),
        }
    }
    (operations, warnings)
}

pub(crate) fn bearer(auth: AuthType, secrets: &SecretFields) -> Option<String> {
    match auth {
        AuthType::Bearer => secrets.get("token").map(|t| t.expose_secret().to_owned()),
        _ => None,
    }
}

/// Every text the server sent about itself and its tools (not the tool names, which calls
/// need exactly), with the call's credentials replaced.
fn redact_discovery(d: &mut chatterfly_mcp::Discovery, r: &Redactor) {
    let s = &mut d.server;
    s.name = r.text(&s.name);
    s.version = r.text(&s.version);
    s.protocol_version = r.text(&s.protocol_version);
    for text in [&mut s.title, &mut s.instructions].into_iter().flatten() {
        *text = r.text(text);
    }
    for t in &mut d.tools {
        for text in [&mut t.title, &mut t.description].into_iter().flatten() {
            *text = r.text(text);
        }
        t.input_schema = r.value(std::mem::take(&mut t.input_schema));
        t.output_schema = t.output_schema.take().map(|v| r.value(v));
        t.annotations = t.annotations.take().map(|v| r.value(v));
    }
}

fn mcp_error(e: McpError, redactor: &Redactor) -> ToolError {
    // server-sent text may echo what it was sent
    match e {
        McpError::Rpc { code, message } => ToolError::Mcp(McpError::Rpc {
            code,
            message: redactor.text(&message),
        }),
        McpError::Protocol(m) => ToolError::Mcp(McpError::Protocol(redactor.text(&m))),
        other => ToolError::Mcp(other),
    }
}

impl Tools {
    fn mcp_target(
        &self,
        conn_url: &str,
        transport: McpTransport,
        bearer: Option<String>,
        conn: Option<&ConnectionRecord>,
        workspace_id: &str,
    ) -> Result<Target, ToolError> {
        let url = url::Url::parse(conn_url).map_err(|e| ToolError::Internal(format!("stored MCP URL: {e}")))?;
        let limits = conn
            .and_then(|c| self.limits_for(c))
            .unwrap_or(self.egress.max_limits());
        Ok(Target {
            url,
            bearer,
            transport,
            limits,
            // its large messages wait in the workspace's lane, and its connections are the
            // workspace's own (`Egress::streaming_client`)
            workspace: Some(std::sync::Arc::from(workspace_id)),
        })
    }

    pub(crate) async fn call_mcp(
        &self,
        conn: &ConnectionRecord,
        op: &Operation,
        args: &Value,
        secrets: &SecretFields,
        room: &mut chatterfly_egress::answers::AnswerRoom,
    ) -> Result<Value, ToolError> {
        let transport = conn.draft.transport.unwrap_or_default();
        let target = self.mcp_target(
            &conn.draft.base_url,
            transport,
            bearer(conn.draft.auth_type, secrets),
            Some(conn),
            &conn.workspace_id,
        )?;
        let tool = op.mcp_tool.as_deref().unwrap_or(op.name.as_str());
        let redactor = std::sync::Arc::new(Redactor::for_secrets(conn.draft.auth_type, secrets));
        let args = args.as_object().cloned().unwrap_or_default();
        // the answer is redacted and measured where the MCP client parsed it, on the MCP
        // sessions' threads: an MCP server's large answers take no more of the machine
        // than those threads
        let finish = {
            let redactor = redactor.clone();
            move |out: Value| {
                let out = redactor.value(out);
                let len = chatterfly_domain::operation::value_len(&out);
                (out, len)
            }
        };
        let (out, len) = match self.mcp.call_then(&conn.id, &target, tool, args, finish).await {
            Ok(done) => done,
            Err(e) => return Err(mcp_error(e, &redactor)),
        };
        // the MCP client has read and parsed the answer already (within the per-call cap):
        // from here on it counts in the budget for answers in flight like any other
        let answers = self.egress.answers();
        *room = chatterfly_egress::answers::AnswerRoom::of(Some(conn.workspace_id.as_str().into()));
        if !answers
            .cover(room, len, chatterfly_egress::answers::PARSED_FACTOR)
            .await
        {
            if len >= chatterfly_egress::heavy::HEAVY_BYTES {
                // freeing a large answer is work too
                tokio::task::spawn_blocking(move || drop(out));
            }
            return Err(ToolError::Egress(chatterfly_egress::EgressError::Busy));
        }
        Ok(out)
    }

    /// Connects to a server, lists its tools and turns them into operations; saves nothing.
    pub async fn discover_mcp(
        &self,
        url: &str,
        transport: McpTransport,
        auth: AuthType,
        secrets: &SecretFields,
        conn: Option<&ConnectionRecord>,
        workspace_id: &str,
    ) -> Result<DiscoveredServer, ToolError> {
        let target = self.mcp_target(url, transport, bearer(auth, secrets), conn, workspace_id)?;
        let redactor = Redactor::for_secrets(auth, secrets);
        let mut discovery = self.mcp.discover(&target).await.map_err(|e| mcp_error(e, &redactor))?;
        // what the server says of itself is stored and shown to every member: a server
        // that echoes the token it was sent must not get it stored
        redact_discovery(&mut discovery, &redactor);
        let (operations, warnings) = operations_of(&discovery.tools);
        Ok(DiscoveredServer {
            discovery,
            operations,
            warnings,
        })
    }

    /// `POST …/connections/{slug}/refresh`: lists the tools again with the connection's
    /// credentials (or the caller's, for `caller` fulfillment) and stores the new list.
    pub async fn refresh_mcp(
        &self,
        conn: &ConnectionRecord,
        passed: Option<&Map<String, Value>>,
    ) -> Result<(RefreshReport, ConnectionDraft, String), ToolError> {
        if conn.draft.service_type != ServiceType::Mcp {
            return Err(ToolError::Unsupported(format!(
                "only mcp connections can be refreshed; `{}` is {}",
                conn.draft.slug, conn.draft.service_type
            )));
        }
        let secrets = self
            .credentials(
                conn,
                passed,
                crate::Who {
                    user: None,
                    participant: None,
                },
            )
            .await?;
        let found = self
            .discover_mcp(
                &conn.draft.base_url,
                conn.draft.transport.unwrap_or_default(),
                conn.draft.auth_type,
                &secrets,
                Some(conn),
                &conn.workspace_id,
            )
            .await?;
        apply(
            &self.store,
            conn,
            found.operations,
            Some((found.discovery.server, found.discovery.transport)),
            found.warnings,
        )
        .await
    }
}

/// Compares and stores a new tool list; returns what changed, the new draft and its
/// `updated_at` (unchanged when nothing changed).
pub(crate) async fn apply(
    store: &Store,
    conn: &ConnectionRecord,
    operations: Vec<Operation>,
    server: Option<(McpServerInfo, McpTransport)>,
    warnings: Vec<String>,
) -> Result<(RefreshReport, ConnectionDraft, String), ToolError> {
    let old: BTreeMap<&str, &Operation> = conn.draft.operations.iter().map(|o| (o.name.as_str(), o)).collect();
    let new: BTreeMap<&str, &Operation> = operations.iter().map(|o| (o.name.as_str(), o)).collect();
    let mut report = RefreshReport {
        warnings,
        ..Default::default()
    };
    for (name, op) in &new {
        match old.get(name) {
            None => report.added.push((*name).to_owned()),
            Some(o) if o != op => report.changed.push((*name).to_owned()),
            Some(_) => {}
        }
    }
    report.removed = old
        .keys()
        .filter(|n| !new.contains_key(*n))
        .map(|n| (*n).to_owned())
        .collect();
    let mut draft = conn.draft.clone();
    let mut meta_changed = false;
    if let Some((info, transport)) = server {
        // an explicit transport stays as the admin set it; `auto` learns the one found
        if draft.transport.is_none_or(|t| t == McpTransport::Auto) && transport != McpTransport::Auto {
            meta_changed |= draft.transport != Some(transport);
            draft.transport = Some(transport);
        }
        meta_changed |= draft.mcp_server.as_ref() != Some(&info);
        draft.mcp_server = Some(info);
    }
    let ops_changed = !report.is_empty()
        || operations
            .iter()
            .map(|o| o.name.as_str())
            .ne(conn.draft.operations.iter().map(|o| o.name.as_str()));
    draft.operations = operations;
    draft.source = None;
    if !ops_changed && !meta_changed {
        return Ok((report, draft, conn.updated_at.clone()));
    }
    let at = store
        .update_connection(&conn.id, &conn.workspace_id, &draft, SealedUpdate::Keep, ops_changed)
        .await?;
    Ok((report, draft, at))
}

/// Applies tool lists announced changed on live sessions, for as long as the client lives.
pub(crate) fn start_listener(store: Store, mut rx: tokio::sync::mpsc::UnboundedReceiver<chatterfly_mcp::ToolsChanged>) {
    tokio::spawn(async move {
        while let Some(change) = rx.recv().await {
            if let Err(e) = apply_change(&store, &change.connection_id, &change.tools).await {
                tracing::warn!(connection = %change.connection_id, error = %e, "cannot store the changed MCP tool list");
            }
        }
    });
}

async fn apply_change(store: &Store, connection_id: &str, tools: &[ToolDef]) -> Result<(), ToolError> {
    let Some(conn) = store.connection_by_id(connection_id).await? else {
        return Ok(()); // deleted meanwhile
    };
    let (operations, warnings) = operations_of(tools);
    let (report, _, _) = apply(store, &conn, operations, None, warnings).await?;
    tracing::info!(
        connection = %conn.draft.slug,
        added = report.added.len(),
        changed = report.changed.len(),
        removed = report.removed.len(),
        "MCP tool list changed on the server; operations refreshed"
    );
    Ok(())
}
