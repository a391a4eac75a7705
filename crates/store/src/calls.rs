//! The read behind a tool call: who is calling, their standing in the workspace, and the
//! connection and operation, in one query (one round trip on PostgreSQL, one trip to the
//! connection's thread on SQLite) instead of three.

use chatterfly_domain::{Operation, WorkspaceRole};
use sqlx::Row;

use crate::connections::{COLS, COLS_COUNT, OP_COLS, operation_at, record_at};
use crate::tenancy::{USER_COLS, WS_COLS, role, user, workspace};
use crate::{ConnectionRecord, Result, Store, TokenOwner, Workspace, now};

/// What one tool call needs from the database. `workspace` is absent when no workspace has
/// the slug; `connection` when the workspace has no connection of that slug (or there is no
/// workspace); its operation when the connection has no operation of that name. The caller
/// must check the role before using anything of the workspace.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub caller: TokenOwner,
    pub workspace: Option<(Workspace, Option<WorkspaceRole>)>,
    pub connection: Option<(ConnectionRecord, Option<Operation>)>,
}

/// Columns: user (5), token id (1), workspace (4), role (1), connection, operation.
const TOKEN_AT: usize = 5;
const WS_AT: usize = 6;
const ROLE_AT: usize = 10;
const CONN_AT: usize = 11;
const OP_AT: usize = CONN_AT + COLS_COUNT;

impl Store {
    /// Resolves a call of `{connection_slug}.{operation}` in workspace `{workspace_slug}` by
    /// the holder of the token whose hash is `token_hash` (`session`: of the live web
    /// session whose cookie hashes to it). `None`: no such token or session.
    pub async fn call_context(
        &self,
        token_hash: &str,
        session: bool,
        workspace_slug: &str,
        connection_slug: &str,
        operation: &str,
    ) -> Result<Option<CallContext>> {
        let (from, live) = if session {
            ("sessions", " AND t.expires_at > $5")
        } else {
            ("api_tokens", "")
        };
        let query = sql!(
            "SELECT {USER_COLS}, t.id, {WS_COLS}, m.role, {COLS}, {OP_COLS} \
             FROM {from} t JOIN users u ON u.id = t.user_id \
             LEFT JOIN workspaces w ON w.slug = $2 \
             LEFT JOIN memberships m ON m.workspace_id = w.id AND m.user_id = u.id \
             LEFT JOIN connections c ON c.workspace_id = w.id AND c.slug = $3 \
             LEFT JOIN connection_operations o ON o.connection_id = c.id AND o.name = $4 \
             WHERE t.token_hash = $1{live}"
        );
        let mut q = sqlx::query(query)
            .bind(token_hash)
            .bind(workspace_slug)
            .bind(connection_slug)
            .bind(operation);
        if session {
            q = q.bind(now());
        }
        let row = q.fetch_optional(&self.pool).await?;
        let Some(r) = row else { return Ok(None) };
        let caller = TokenOwner {
            user: user(&r)?, // columns 0..5
            token_id: r.try_get(TOKEN_AT)?,
        };
        let workspace = match r.try_get::<Option<String>, _>(WS_AT)? {
            None => None,
            Some(_) => {
                let role_text: Option<String> = r.try_get(ROLE_AT)?;
                Some((workspace(&r, WS_AT)?, role_text.as_deref().map(role).transpose()?))
            }
        };
        let connection = match r.try_get::<Option<String>, _>(CONN_AT)? {
            None => None,
            Some(_) => {
                let rec = record_at(&r, CONN_AT)?;
                let op = match r.try_get::<Option<String>, _>(OP_AT)? {
                    None => None,
                    Some(_) => Some(operation_at(&r, OP_AT)?),
                };
                Some((rec, op))
            }
        };
        Ok(Some(CallContext {
            caller,
            workspace,
            connection,
        }))
    }
}
