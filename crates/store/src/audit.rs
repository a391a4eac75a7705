//! The audit log of tool invocations. Rows hold names, outcomes and timings only: never
//! arguments and never credentials, so nothing secret can reach it by construction.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, new_id, now};

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

    /// Writes many events in few statements (the tool path batches its audit rows).
    pub async fn record_audit_batch(&self, events: &[NewAuditEvent]) -> Result<()> {
        for chunk in events.chunks(EVENTS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO audit_events (id, workspace_id, user_id, tool, connection_slug, outcome, http_status, \
                 error_code, duration_ms, created_at, participant_id, run_id) VALUES ",
            );
            for i in 0..chunk.len() {
                let b = i * 12;
                if i > 0 {
                    sql.push_str(", ");
                }
                let params: Vec<String> = (1..=12).map(|k| format!("${}", b + k)).collect();
                sql.push('(');
                sql.push_str(&params.join(", "));
                sql.push(')');
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            let at = now();
            for e in chunk {
                q = q
                    .bind(new_id())
                    .bind(e.workspace_id.clone())
                    .bind(e.user_id.clone())
                    .bind(e.tool.clone())
                    .bind(e.connection_slug.clone())
                    .bind(if e.ok { "ok" } else { "error" })
                    .bind(e.http_status.map(i64::from))
                    .bind(e.error_code)
                    .bind(i64::try_from(e.duration_ms).unwrap_or(i64::MAX))
                    .bind(at.clone())
                    .bind(e.participant_id.clone())
                    .bind(e.run_id.clone());
            }
            q.execute(&self.pool).await?;
        }
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
