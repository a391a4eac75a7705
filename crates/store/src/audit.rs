//! The audit log of tool invocations. Rows hold names, outcomes and timings only: never
//! arguments and never credentials, so nothing secret can reach it by construction.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Backend, Result, Store, new_id, now};

/// One invocation, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: String,
    pub user_id: Option<String>,
    pub tool: String,
    pub connection_slug: Option<String>,
    /// `ok` or `error`.
    pub outcome: String,
    pub http_status: Option<i64>,
    pub error_code: Option<String>,
    pub duration_ms: i64,
    pub created_at: String,
    /// The participant whose credentials the call used.
    pub participant_id: Option<String>,
    /// The agent run that made the call.
    pub run_id: Option<String>,
}

/// Which events to list (every set field must match).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tool: Option<String>,
    pub connection: Option<String>,
    /// `ok` or `error`.
    pub outcome: Option<String>,
    pub user_id: Option<String>,
    pub participant_id: Option<String>,
    pub run_id: Option<String>,
}

/// What to record.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub workspace_id: String,
    pub user_id: Option<String>,
    pub tool: String,
    pub connection_slug: Option<String>,
    pub ok: bool,
    pub http_status: Option<u16>,
    pub error_code: Option<&'static str>,
    pub duration_ms: u64,
    /// The participant on whose behalf the call was made.
    pub participant_id: Option<String>,
    /// The agent run that made the call.
    pub run_id: Option<String>,
}

/// Rows per INSERT statement: 12 parameters each.
const EVENTS_PER_INSERT: usize = 100;

fn event(row: &AnyRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        tool: row.try_get(2)?,
        connection_slug: row.try_get(3)?,
        outcome: row.try_get(4)?,
        http_status: row.try_get(5)?,
        error_code: row.try_get(6)?,
        duration_ms: row.try_get(7)?,
        created_at: row.try_get(8)?,
        participant_id: row.try_get(9)?,
        run_id: row.try_get(10)?,
    })
}

impl Store {
    pub async fn record_audit(&self, e: &NewAuditEvent) -> Result<()> {
        self.record_audit_batch(std::slice::from_ref(e)).await
    }

    /// Writes many events in one statement per [`EVENTS_PER_INSERT`] (the tool path batches
    /// its audit rows), all in one transaction: one turn at the writer (on SQLite a batch
    /// waits behind the writes queued before it once, not once per statement) and all or
    /// nothing (a batch written again after a failure is not written twice). The rows
    /// travel as one JSON parameter, so the statement's text is always the same (prepared
    /// once per connection) and binding costs nothing per row; a row whose workspace was
    /// deleted meanwhile is dropped, not the batch.
    pub async fn record_audit_batch(&self, events: &[NewAuditEvent]) -> Result<()> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "INSERT INTO audit_events (id, workspace_id, user_id, tool, connection_slug, outcome, http_status, \
                 error_code, duration_ms, created_at, participant_id, run_id) \
                 SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
                 json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
                 json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'), \
                 json_extract(value, '$[9]'), json_extract(value, '$[10]'), json_extract(value, '$[11]') \
                 FROM json_each($1) \
                 WHERE EXISTS (SELECT 1 FROM workspaces w WHERE w.id = json_extract(value, '$[1]'))"
            }
            Backend::Postgres => {
                "INSERT INTO audit_events (id, workspace_id, user_id, tool, connection_slug, outcome, http_status, \
                 error_code, duration_ms, created_at, participant_id, run_id) \
                 SELECT r->>0, r->>1, r->>2, r->>3, r->>4, r->>5, (r->>6)::bigint, r->>7, (r->>8)::bigint, \
                 r->>9, r->>10, r->>11 \
                 FROM jsonb_array_elements($1::jsonb) AS r \
                 WHERE EXISTS (SELECT 1 FROM workspaces w WHERE w.id = r->>1)"
            }
        };
        let mut tx = self.write_tx().await?;
        for chunk in events.chunks(EVENTS_PER_INSERT) {
            let at = now();
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|e| {
                    serde_json::json!([
                        new_id(),
                        e.workspace_id,
                        e.user_id,
                        e.tool,
                        e.connection_slug,
                        if e.ok { "ok" } else { "error" },
                        e.http_status.map(i64::from),
                        e.error_code,
                        i64::try_from(e.duration_ms).unwrap_or(i64::MAX),
                        at,
                        e.participant_id,
                        e.run_id,
                    ])
                })
                .collect();
            sqlx::query(sql)
                .bind(serde_json::Value::Array(rows).to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Newest first; `before` is the id of the last event of the previous page; each set
    /// field of `filter` must match exactly.
    pub async fn list_audit(
        &self,
        workspace_id: &str,
        before: Option<&str>,
        limit: i64,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT id, user_id, tool, connection_slug, outcome, http_status, error_code, duration_ms, created_at, \
             participant_id, run_id FROM audit_events WHERE workspace_id = $1 AND ($2 IS NULL OR id < $2) \
             AND ($4 IS NULL OR tool = $4) AND ($5 IS NULL OR connection_slug = $5) \
             AND ($6 IS NULL OR outcome = $6) AND ($7 IS NULL OR user_id = $7) \
             AND ($8 IS NULL OR participant_id = $8) AND ($9 IS NULL OR run_id = $9) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(workspace_id)
        .bind(before)
        .bind(limit)
        .bind(filter.tool.as_deref())
        .bind(filter.connection.as_deref())
        .bind(filter.outcome.as_deref())
        .bind(filter.user_id.as_deref())
        .bind(filter.participant_id.as_deref())
        .bind(filter.run_id.as_deref())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event).collect()
    }
}
