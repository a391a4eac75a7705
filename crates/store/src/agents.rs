//! Agents and their runs: an agent's definition (the model, its instructions, its tools by
//! name), each run's status and totals, and each run's steps in order. The store keeps
//! what it is given: step data arrives redacted, and no credential is ever passed here.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, StoreError, conflict, new_id, now};

/// An agent as it is written.
#[derive(Debug, Clone, Copy)]
pub struct AgentWrite<'a> {
    pub name: &'a str,
    pub instructions: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    /// JSON array of tool names.
    pub tools: &'a str,
    pub max_steps: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub instructions: String,
    pub provider: String,
    pub model: String,
    /// JSON array of tool names.
    pub tools: String,
    pub max_steps: i64,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A run of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: String,
    pub workspace_id: String,
    pub agent_id: String,
    pub status: String,
    /// JSON of the input messages.
    pub input: String,
    /// JSON of the final answer.
    pub output: Option<String>,
    pub error: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub steps: i64,
    pub participant_id: Option<String>,
    pub started_by: Option<String>,
    pub cancel_requested: bool,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    pub seq: i64,
    pub kind: String,
    /// JSON, redacted.
    pub data: String,
    pub duration_ms: i64,
    pub created_at: String,
}

/// A step to append.
#[derive(Debug, Clone, Copy)]
pub struct NewStep<'a> {
    pub kind: &'a str,
    /// JSON, redacted.
    pub data: &'a str,
    pub duration_ms: i64,
    /// Tokens the step used (input, output).
    pub tokens: (i64, i64),
}

/// Steps per INSERT statement (six parameters each; SQLite allows 32,766).
const STEPS_PER_INSERT: usize = 100;

/// How a run ended.
#[derive(Debug, Clone, Copy)]
pub struct RunEnd<'a> {
    pub status: &'a str,
    pub output: Option<&'a str>,
    pub error: Option<&'a str>,
}

const AGENT_COLS: &str =
    "id, workspace_id, name, instructions, provider, model, tools, max_steps, created_by, created_at, updated_at";
const RUN_COLS: &str = "id, workspace_id, agent_id, status, input, output, error, input_tokens, output_tokens, steps, \
    participant_id, started_by, cancel_requested, created_at, finished_at";

fn agent(r: &AnyRow) -> Result<AgentRecord> {
    Ok(AgentRecord {
        id: r.try_get(0)?,
        workspace_id: r.try_get(1)?,
        name: r.try_get(2)?,
        instructions: r.try_get(3)?,
        provider: r.try_get(4)?,
        model: r.try_get(5)?,
        tools: r.try_get(6)?,
        max_steps: r.try_get(7)?,
        created_by: r.try_get(8)?,
        created_at: r.try_get(9)?,
        updated_at: r.try_get(10)?,
    })
}

fn run(r: &AnyRow) -> Result<RunRecord> {
    Ok(RunRecord {
        id: r.try_get(0)?,
        workspace_id: r.try_get(1)?,
        agent_id: r.try_get(2)?,
        status: r.try_get(3)?,
        input: r.try_get(4)?,
        output: r.try_get(5)?,
        error: r.try_get(6)?,
        input_tokens: r.try_get(7)?,
        output_tokens: r.try_get(8)?,
        steps: r.try_get(9)?,
        participant_id: r.try_get(10)?,
        started_by: r.try_get(11)?,
        cancel_requested: r.try_get::<i64, _>(12)? != 0,
        created_at: r.try_get(13)?,
        finished_at: r.try_get(14)?,
    })
}

impl Store {
    pub async fn create_agent(
        &self,
        workspace_id: &str,
        a: &AgentWrite<'_>,
        created_by: Option<&str>,
    ) -> Result<AgentRecord> {
        let id = new_id();
        let at = now();
        sqlx::query(
            "INSERT INTO agents (id, workspace_id, name, instructions, provider, model, tools, max_steps, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&id)
        .bind(workspace_id)
        .bind(a.name)
        .bind(a.instructions)
        .bind(a.provider)
        .bind(a.model)
        .bind(a.tools)
        .bind(a.max_steps)
        .bind(created_by)
        .bind(&at)
        .execute(&self.writer)
        .await
        .map_err(conflict("agent name"))?;
        self.agent(workspace_id, &id).await?.ok_or(StoreError::NotFound)
    }

    /// An agent of this workspace (never another's).
    pub async fn agent(&self, workspace_id: &str, id: &str) -> Result<Option<AgentRecord>> {
        let row = sqlx::query(sql!(
            "SELECT {AGENT_COLS} FROM agents WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(agent).transpose()
    }

    pub async fn agents(&self, workspace_id: &str) -> Result<Vec<AgentRecord>> {
        let rows = sqlx::query(sql!(
            "SELECT {AGENT_COLS} FROM agents WHERE workspace_id = $1 ORDER BY name, id"
        ))
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(agent).collect()
    }

    pub async fn update_agent(&self, workspace_id: &str, id: &str, a: &AgentWrite<'_>) -> Result<AgentRecord> {
        let done = sqlx::query(
            "UPDATE agents SET name = $3, instructions = $4, provider = $5, model = $6, tools = $7, max_steps = $8, \
             updated_at = $9 WHERE workspace_id = $1 AND id = $2",
        )
        .bind(workspace_id)
        .bind(id)
        .bind(a.name)
        .bind(a.instructions)
        .bind(a.provider)
        .bind(a.model)
        .bind(a.tools)
        .bind(a.max_steps)
        .bind(now())
        .execute(&self.writer)
        .await
        .map_err(conflict("agent name"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.agent(workspace_id, id).await?.ok_or(StoreError::NotFound)
    }

    /// Deletes an agent with its runs.
    pub async fn delete_agent(&self, workspace_id: &str, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM agents WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// A new run, `running`.
    pub async fn create_run(
        &self,
        agent: &AgentRecord,
        input: &str,
        participant_id: Option<&str>,
        started_by: Option<&str>,
    ) -> Result<RunRecord> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO agent_runs (id, workspace_id, agent_id, status, input, participant_id, started_by, created_at, heartbeat_at) \
             VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $7)",
        )
        .bind(&id)
        .bind(&agent.workspace_id)
        .bind(&agent.id)
        .bind(input)
        .bind(participant_id)
        .bind(started_by)
        .bind(now())
        .execute(&self.writer)
        .await?;
        self.run(&agent.workspace_id, &id).await?.ok_or(StoreError::NotFound)
    }

    /// A run of this workspace (never another's).
    pub async fn run(&self, workspace_id: &str, id: &str) -> Result<Option<RunRecord>> {
        let row = sqlx::query(sql!(
            "SELECT {RUN_COLS} FROM agent_runs WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run).transpose()
    }

    /// An agent's runs, newest first, at most `limit`.
    /// An agent's runs, newest first; only those `started_by` started when it is given.
    pub async fn runs_of(
        &self,
        workspace_id: &str,
        agent_id: &str,
        started_by: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query(sql!(
            "SELECT {RUN_COLS} FROM agent_runs WHERE workspace_id = $1 AND agent_id = $2 \
             AND ($3 IS NULL OR started_by = $3) ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(workspace_id)
        .bind(agent_id)
        .bind(started_by)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run).collect()
    }

    /// Appends one step: its number is the next of the run's.
    pub async fn append_step(
        &self,
        run_id: &str,
        kind: &str,
        data: &str,
        duration_ms: i64,
        tokens: (i64, i64),
    ) -> Result<StepRecord> {
        let mut out = self
            .append_steps(
                run_id,
                &[NewStep {
                    kind,
                    data,
                    duration_ms,
                    tokens,
                }],
            )
            .await?;
        out.pop().ok_or(StoreError::NotFound)
    }

    /// Appends steps in their order, in one transaction of two statements: the run's row
    /// is taken first (its count moves by all of them at once), so steps appended at the
    /// same moment by another writer get numbers of their own.
    pub async fn append_steps(&self, run_id: &str, steps: &[NewStep<'_>]) -> Result<Vec<StepRecord>> {
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let n = i64::try_from(steps.len()).unwrap_or(i64::MAX);
        let (input, output) = steps.iter().fold((0i64, 0i64), |(i, o), s| {
            (i.saturating_add(s.tokens.0), o.saturating_add(s.tokens.1))
        });
        let mut tx = self.write_tx().await?;
        let count: i64 = sqlx::query_scalar(
            "UPDATE agent_runs SET steps = steps + $2, input_tokens = input_tokens + $3, output_tokens = output_tokens + $4, \
             heartbeat_at = $5 WHERE id = $1 RETURNING steps",
        )
        .bind(run_id)
        .bind(n)
        .bind(input)
        .bind(output)
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let first = count - n;
        let at = now();
        let mut out = Vec::with_capacity(steps.len());
        for (c, chunk) in steps.chunks(STEPS_PER_INSERT).enumerate() {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let b = i * 6;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6
                    )
                })
                .collect();
            let mut q = sqlx::query(sql!(
                "INSERT INTO agent_run_steps (run_id, seq, kind, data, duration_ms, created_at) VALUES {}",
                values.join(", ")
            ));
            for (i, st) in chunk.iter().enumerate() {
                let seq = first + i64::try_from(c * STEPS_PER_INSERT + i).unwrap_or(i64::MAX);
                q = q
                    .bind(run_id.to_owned())
                    .bind(seq)
                    .bind(st.kind.to_owned())
                    .bind(st.data.to_owned())
                    .bind(st.duration_ms)
                    .bind(at.clone());
                out.push(StepRecord {
                    seq,
                    kind: st.kind.to_owned(),
                    data: st.data.to_owned(),
                    duration_ms: st.duration_ms,
                    created_at: at.clone(),
                });
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// A run's steps from `from` on, in order.
    pub async fn steps(&self, run_id: &str, from: i64) -> Result<Vec<StepRecord>> {
        self.steps_page(run_id, from, i64::MAX).await
    }

    /// At most `limit` of a run's steps from `from` on, in order (a follower reads a big
    /// run a page at a time).
    pub async fn steps_page(&self, run_id: &str, from: i64, limit: i64) -> Result<Vec<StepRecord>> {
        let rows = sqlx::query(
            "SELECT seq, kind, data, duration_ms, created_at FROM agent_run_steps WHERE run_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
        )
        .bind(run_id)
        .bind(from)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StepRecord {
                    seq: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    data: r.try_get(2)?,
                    duration_ms: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Ends a run that is still running; whether it was.
    pub async fn finish_run(&self, run_id: &str, end: &RunEnd<'_>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE agent_runs SET status = $2, output = $3, error = $4, finished_at = $5 WHERE id = $1 AND status = 'running'",
        )
        .bind(run_id)
        .bind(end.status)
        .bind(end.output)
        .bind(end.error)
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Asks a running run to stop (whichever replica runs it sees the flag); whether it
    /// was running.
    pub async fn request_cancel(&self, workspace_id: &str, run_id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE agent_runs SET cancel_requested = 1 WHERE workspace_id = $1 AND id = $2 AND status = 'running'",
        )
        .bind(workspace_id)
        .bind(run_id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// How many runs of a workspace are going on.
    pub async fn running_runs(&self, workspace_id: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM agent_runs WHERE workspace_id = $1 AND status = 'running'")
                .bind(workspace_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Marks a run alive (its replica is still running it); whether it is still running
    /// (`false`: it ended, or another replica gave it up as stale).
    pub async fn touch_run(&self, run_id: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE agent_runs SET heartbeat_at = $2 WHERE id = $1 AND status = 'running'")
            .bind(run_id)
            .bind(now())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// [`Store::fail_stale_runs`] for runs not marked alive for `silent`.
    pub async fn fail_runs_silent_for(&self, silent: std::time::Duration, why: &str) -> Result<u64> {
        let silent = chrono::Duration::from_std(silent).unwrap_or(chrono::Duration::MAX);
        let cutoff = chrono::Utc::now()
            .checked_sub_signed(silent)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.fail_stale_runs(&cutoff, why).await
    }

    /// Runs left `running` whose replica has not marked them alive since `older_than` (an
    /// RFC 3339 time, as [`now`] writes them): ended as failed with `why`. How many.
    pub async fn fail_stale_runs(&self, older_than: &str, why: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE agent_runs SET status = 'failed', error = $2, finished_at = $3 \
             WHERE status = 'running' AND COALESCE(heartbeat_at, created_at) < $1",
        )
        .bind(older_than)
        .bind(why)
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}
