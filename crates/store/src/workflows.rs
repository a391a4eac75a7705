//! Workflows, their deployed versions, and durable runs. A run's whole state is here, so
//! that any replica executes it: a replica takes a run (`claim_workflow_run`: the oldest
//! run nobody holds, `FOR UPDATE SKIP LOCKED` on PostgreSQL, one statement under SQLite's
//! single writer) with a lease it renews while it works; every write it makes for the run
//! is fenced by that lease (a replica that lost its run, because it stalled past the lease
//! and another took over, writes nothing more). Step data arrives redacted; the run's
//! `caller` credentials arrive sealed and are removed when the run ends.

use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

use crate::{Backend, Result, Store, StoreError, conflict, new_id, now};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    /// JSON `{"nodes", "edges"}`: the draft.
    pub definition: String,
    pub deployed_version: Option<i64>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowVersion {
    pub workflow_id: String,
    pub version: i64,
    pub definition: String,
    /// JSON array of the tool names its tool nodes call.
    pub tools: String,
    pub deployed_by: Option<String>,
    pub created_at: String,
}

/// A deployed workflow (its deployed version) and the tools that version calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedTools {
    pub workflow_id: String,
    pub name: String,
    pub version: i64,
    /// JSON array of tool names.
    pub tools: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRunRecord {
    pub id: String,
    pub workspace_id: String,
    pub workflow_id: String,
    pub version: i64,
    pub status: String,
    /// JSON.
    pub input: String,
    /// The run's `caller` credentials, sealed to the run (`aad::workflow_run_credentials`).
    pub credentials_sealed: Option<String>,
    /// JSON.
    pub output: Option<String>,
    pub error: Option<String>,
    pub participant_id: Option<String>,
    pub started_by: Option<String>,
    pub cancel_requested: bool,
    pub lease_owner: Option<String>,
    /// How many times a replica took the run.
    pub claims: i64,
    pub rev: i64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowStepRecord {
    pub node_id: String,
    pub seq: i64,
    pub kind: String,
    pub target: String,
    pub status: String,
    /// JSON, redacted.
    pub input: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    /// JSON array of attempts.
    pub attempts: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub rev: i64,
    /// Read for events: `input`, `output` or `error` was larger than
    /// [`EVENT_FIELD_BYTES`] and is left out (the run's record has it).
    pub cut: bool,
}

/// The most of a step's input, output or error an events read carries.
pub const EVENT_FIELD_BYTES: usize = 64 * 1024;

/// A node as a new run's step.
#[derive(Debug, Clone, Copy)]
pub struct NewWorkflowStep<'a> {
    pub node_id: &'a str,
    pub kind: &'a str,
    pub target: &'a str,
}

/// A run to create.
#[derive(Debug, Clone, Copy)]
pub struct NewWorkflowRun<'a> {
    /// Chosen by the caller ([`crate::new_id`]): the sealed credentials are bound to it.
    pub id: &'a str,
    pub workspace_id: &'a str,
    pub workflow_id: &'a str,
    pub version: i64,
    pub input: &'a str,
    pub credentials_sealed: Option<&'a str>,
    pub participant_id: Option<&'a str>,
    pub started_by: Option<&'a str>,
    pub steps: &'a [NewWorkflowStep<'a>],
}

/// A step's start or end, written under the run's lease.
#[derive(Debug, Clone, Copy)]
pub struct StepWrite<'a> {
    pub node_id: &'a str,
    pub status: &'a str,
    pub input: Option<&'a str>,
    pub output: Option<&'a str>,
    pub error: Option<&'a str>,
    pub attempts: &'a str,
    pub duration_ms: Option<i64>,
}

/// How a run ends.
#[derive(Debug, Clone, Copy)]
pub struct RunEnding<'a> {
    pub status: &'a str,
    /// JSON.
    pub output: Option<&'a str>,
    pub error: Option<&'a str>,
    /// The status the steps that never ended get, and the change it is.
    pub close: Option<(&'a str, i64)>,
}

/// A step write with the run it belongs to and the replica that holds it.
#[derive(Debug, Clone, Copy)]
pub struct FencedStepWrite<'a> {
    pub run_id: &'a str,
    pub owner: &'a str,
    pub rev: i64,
    pub write: StepWrite<'a>,
}

/// Filters of a run list.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkflowRunFilter<'a> {
    pub started_by: Option<&'a str>,
    pub status: Option<&'a str>,
    /// Runs created before this one (paging, newest first).
    pub before: Option<&'a str>,
    pub limit: i64,
}

const WF_COLS: &str = "id, workspace_id, name, definition, deployed_version, created_by, created_at, updated_at";
const VERSION_COLS: &str = "workflow_id, version, definition, tools, deployed_by, created_at";
const RUN_COLS: &str = "id, workspace_id, workflow_id, version, status, input, credentials_sealed, output, error, \
    participant_id, started_by, cancel_requested, lease_owner, claims, rev, created_at, started_at, finished_at";
const STEP_COLS: &str =
    "node_id, seq, kind, target, status, input, output, error, attempts, started_at, finished_at, duration_ms, rev";
/// [`STEP_COLS`] with large fields left out (a stalled events follower holds a page).
const STEP_COLS_EVENTS: &str = "node_id, seq, kind, target, status, \
    CASE WHEN length(input) > 65536 THEN NULL ELSE input END, \
    CASE WHEN length(output) > 65536 THEN NULL ELSE output END, \
    CASE WHEN length(error) > 65536 THEN NULL ELSE error END, \
    attempts, started_at, finished_at, duration_ms, rev, \
    CASE WHEN length(input) > 65536 OR length(output) > 65536 OR length(error) > 65536 THEN 1 ELSE 0 END";
/// Step writes per statement (twelve parameters each).
const STEP_WRITES_PER_STATEMENT: usize = 200;
/// Steps per INSERT (four parameters each, plus one).
const STEPS_PER_INSERT: usize = 200;
/// The most candidates one claim of workflow runs looks at (the oldest): the numbering by
/// workspace sorts only these, however long the backlog.
const CLAIM_WINDOW: usize = 128;

fn workflow(r: &AnyRow) -> Result<WorkflowRecord> {
    Ok(WorkflowRecord {
        id: r.try_get(0)?,
        workspace_id: r.try_get(1)?,
        name: r.try_get(2)?,
        definition: r.try_get(3)?,
        deployed_version: r.try_get(4)?,
        created_by: r.try_get(5)?,
        created_at: r.try_get(6)?,
        updated_at: r.try_get(7)?,
    })
}

fn version_row(r: &AnyRow) -> Result<WorkflowVersion> {
    Ok(WorkflowVersion {
        workflow_id: r.try_get(0)?,
        version: r.try_get(1)?,
        definition: r.try_get(2)?,
        tools: r.try_get(3)?,
        deployed_by: r.try_get(4)?,
        created_at: r.try_get(5)?,
    })
}

fn wf_run(r: &AnyRow) -> Result<WorkflowRunRecord> {
    Ok(WorkflowRunRecord {
        id: r.try_get(0)?,
        workspace_id: r.try_get(1)?,
        workflow_id: r.try_get(2)?,
        version: r.try_get(3)?,
        status: r.try_get(4)?,
        input: r.try_get(5)?,
        credentials_sealed: r.try_get(6)?,
        output: r.try_get(7)?,
        error: r.try_get(8)?,
        participant_id: r.try_get(9)?,
        started_by: r.try_get(10)?,
        cancel_requested: r.try_get::<i64, _>(11)? != 0,
        lease_owner: r.try_get(12)?,
        claims: r.try_get(13)?,
        rev: r.try_get(14)?,
        created_at: r.try_get(15)?,
        started_at: r.try_get(16)?,
        finished_at: r.try_get(17)?,
    })
}

fn step(r: &AnyRow) -> Result<WorkflowStepRecord> {
    Ok(WorkflowStepRecord {
        node_id: r.try_get(0)?,
        seq: r.try_get(1)?,
        kind: r.try_get(2)?,
        target: r.try_get(3)?,
        status: r.try_get(4)?,
        input: r.try_get(5)?,
        output: r.try_get(6)?,
        error: r.try_get(7)?,
        attempts: r.try_get(8)?,
        started_at: r.try_get(9)?,
        finished_at: r.try_get(10)?,
        duration_ms: r.try_get(11)?,
        rev: r.try_get(12)?,
        cut: false,
    })
}

/// [`step`] of a row read with [`STEP_COLS_EVENTS`].
fn step_light(r: &AnyRow) -> Result<WorkflowStepRecord> {
    let mut s = step(r)?;
    s.cut = r.try_get::<i64, _>(13)? != 0;
    Ok(s)
}

/// Now in unix milliseconds (leases).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    pub async fn create_workflow(
        &self,
        workspace_id: &str,
        name: &str,
        definition: &str,
        created_by: Option<&str>,
    ) -> Result<WorkflowRecord> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO workflows (id, workspace_id, name, definition, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(workspace_id)
        .bind(name)
        .bind(definition)
        .bind(created_by)
        .bind(now())
        .execute(&self.writer)
        .await
        .map_err(conflict("workflow name"))?;
        self.workflow(workspace_id, &id).await?.ok_or(StoreError::NotFound)
    }

    /// A workflow of this workspace (never another's).
    pub async fn workflow(&self, workspace_id: &str, id: &str) -> Result<Option<WorkflowRecord>> {
        let row = sqlx::query(sql!(
            "SELECT {WF_COLS} FROM workflows WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(workflow).transpose()
    }

    pub async fn workflows(&self, workspace_id: &str) -> Result<Vec<WorkflowRecord>> {
        let rows = sqlx::query(sql!(
            "SELECT {WF_COLS} FROM workflows WHERE workspace_id = $1 ORDER BY name, id"
        ))
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(workflow).collect()
    }

    pub async fn update_workflow(
        &self,
        workspace_id: &str,
        id: &str,
        name: &str,
        definition: &str,
    ) -> Result<WorkflowRecord> {
        let done = sqlx::query(
            "UPDATE workflows SET name = $3, definition = $4, updated_at = $5 WHERE workspace_id = $1 AND id = $2",
        )
        .bind(workspace_id)
        .bind(id)
        .bind(name)
        .bind(definition)
        .bind(now())
        .execute(&self.writer)
        .await
        .map_err(conflict("workflow name"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.workflow(workspace_id, id).await?.ok_or(StoreError::NotFound)
    }

    /// Deletes a workflow with its versions and runs.
    pub async fn delete_workflow(&self, workspace_id: &str, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM workflows WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Freezes `definition` as the workflow's next version and makes it the deployed one,
    /// in one transaction (two deploys at once get two numbers).
    pub async fn deploy_workflow(
        &self,
        workspace_id: &str,
        id: &str,
        definition: &str,
        tools: &str,
        deployed_by: Option<&str>,
    ) -> Result<WorkflowVersion> {
        let mut tx = self.write_tx().await?;
        let next: Option<i64> = sqlx::query_scalar(
            "UPDATE workflows SET deployed_version = COALESCE(deployed_version, 0) + 1 \
             WHERE workspace_id = $1 AND id = $2 RETURNING deployed_version",
        )
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(next) = next else {
            return Err(StoreError::NotFound);
        };
        sqlx::query(
            "INSERT INTO workflow_versions (workflow_id, version, workspace_id, definition, tools, deployed_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(next)
        .bind(workspace_id)
        .bind(definition)
        .bind(tools)
        .bind(deployed_by)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.workflow_version(id, next).await?.ok_or(StoreError::NotFound)
    }

    pub async fn workflow_version(&self, workflow_id: &str, version: i64) -> Result<Option<WorkflowVersion>> {
        let row = sqlx::query(sql!(
            "SELECT {VERSION_COLS} FROM workflow_versions WHERE workflow_id = $1 AND version = $2"
        ))
        .bind(workflow_id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(version_row).transpose()
    }

    /// A workflow's versions, newest first, without their definitions' text.
    pub async fn workflow_versions(&self, workflow_id: &str) -> Result<Vec<WorkflowVersion>> {
        let rows = sqlx::query(sql!(
            "SELECT workflow_id, version, '' AS definition, tools, deployed_by, created_at FROM workflow_versions \
             WHERE workflow_id = $1 ORDER BY version DESC LIMIT 200"
        ))
        .bind(workflow_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_row).collect()
    }

    /// Every deployed workflow of the workspace with the tools its deployed version calls.
    pub async fn deployed_tools(&self, workspace_id: &str) -> Result<Vec<DeployedTools>> {
        let rows = sqlx::query(
            "SELECT w.id, w.name, v.version, v.tools FROM workflows w \
             JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.deployed_version \
             WHERE w.workspace_id = $1 ORDER BY w.name, w.id",
        )
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeployedTools {
                    workflow_id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    version: r.try_get(2)?,
                    tools: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// A new run, `queued`, with one `pending` step per node, in one transaction.
    pub async fn create_workflow_run(&self, new: &NewWorkflowRun<'_>) -> Result<WorkflowRunRecord> {
        let created_at = now();
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO workflow_runs (id, workspace_id, workflow_id, version, status, input, credentials_sealed, \
             participant_id, started_by, created_at) VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9)",
        )
        .bind(new.id)
        .bind(new.workspace_id)
        .bind(new.workflow_id)
        .bind(new.version)
        .bind(new.input)
        .bind(new.credentials_sealed)
        .bind(new.participant_id)
        .bind(new.started_by)
        .bind(&created_at)
        .execute(&mut *tx)
        .await?;
        for (chunk_no, chunk) in new.steps.chunks(STEPS_PER_INSERT).enumerate() {
            let mut text = String::from(
                "INSERT INTO workflow_run_steps (run_id, node_id, seq, kind, target, status, attempts) VALUES ",
            );
            for i in 0..chunk.len() {
                let p = i * 4 + 2;
                if i > 0 {
                    text.push_str(", ");
                }
                text.push_str(&format!(
                    "($1, ${p}, ${}, ${}, ${}, 'pending', '[]')",
                    p + 1,
                    p + 2,
                    p + 3
                ));
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(text)).bind(new.id);
            for (i, s) in chunk.iter().enumerate() {
                let seq = i64::try_from(chunk_no * STEPS_PER_INSERT + i).unwrap_or(i64::MAX);
                q = q.bind(s.node_id).bind(seq).bind(s.kind).bind(s.target);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        // what was just written (no second read)
        Ok(WorkflowRunRecord {
            id: new.id.to_owned(),
            workspace_id: new.workspace_id.to_owned(),
            workflow_id: new.workflow_id.to_owned(),
            version: new.version,
            status: "queued".into(),
            input: new.input.to_owned(),
            credentials_sealed: new.credentials_sealed.map(str::to_owned),
            output: None,
            error: None,
            participant_id: new.participant_id.map(str::to_owned),
            started_by: new.started_by.map(str::to_owned),
            cancel_requested: false,
            lease_owner: None,
            claims: 0,
            rev: 0,
            created_at,
            started_at: None,
            finished_at: None,
        })
    }

    /// A run of this workspace (never another's).
    pub async fn workflow_run(&self, workspace_id: &str, id: &str) -> Result<Option<WorkflowRunRecord>> {
        let row = sqlx::query(sql!(
            "SELECT {RUN_COLS} FROM workflow_runs WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(wf_run).transpose()
    }

    /// A workflow's runs, newest first.
    pub async fn workflow_runs_of(
        &self,
        workspace_id: &str,
        workflow_id: &str,
        f: &WorkflowRunFilter<'_>,
    ) -> Result<Vec<WorkflowRunRecord>> {
        let rows = sqlx::query(sql!(
            "SELECT {RUN_COLS} FROM workflow_runs WHERE workspace_id = $1 AND workflow_id = $2 \
             AND ($3 IS NULL OR started_by = $3) AND ($4 IS NULL OR status = $4) \
             AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6"
        ))
        .bind(workspace_id)
        .bind(workflow_id)
        .bind(f.started_by)
        .bind(f.status)
        .bind(f.before)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(wf_run).collect()
    }

    /// A run's steps in the workflow's order.
    pub async fn workflow_steps(&self, run_id: &str) -> Result<Vec<WorkflowStepRecord>> {
        let rows = sqlx::query(sql!(
            "SELECT {STEP_COLS} FROM workflow_run_steps WHERE run_id = $1 ORDER BY seq"
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(step).collect()
    }

    /// Steps changed after the change `(rev, seq)` (a step's change count and place), in
    /// the order they changed, at most `limit`; fields over [`EVENT_FIELD_BYTES`] left out
    /// (`cut`). Several steps may share a change (the
    /// steps closed at a run's end): the place orders them, so paging loses none.
    pub async fn workflow_steps_changed(
        &self,
        run_id: &str,
        after: (i64, i64),
        limit: i64,
    ) -> Result<Vec<WorkflowStepRecord>> {
        let rows = sqlx::query(sql!(
            "SELECT {STEP_COLS_EVENTS} FROM workflow_run_steps WHERE run_id = $1 AND (rev > $2 OR (rev = $2 AND seq > $3)) \
             ORDER BY rev, seq LIMIT $4"
        ))
        .bind(run_id)
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(step_light).collect()
    }

    /// The tools (`slug.operation`) that the workspace's connections of these slugs have.
    pub async fn tools_of_slugs(&self, workspace_id: &str, slugs: &[&str]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for chunk in slugs.chunks(200) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let mut q = sqlx::query_scalar::<_, String>(sql!(
                "SELECT c.slug || '.' || o.name FROM connection_operations o JOIN connections c ON c.id = o.connection_id \
                 WHERE c.workspace_id = $1 AND c.slug IN ({})",
                marks.join(", ")
            ))
            .bind(workspace_id);
            for s in chunk {
                q = q.bind(*s);
            }
            out.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(out)
    }

    /// Whether a person may still act in the workspace: a member, or a platform admin.
    pub async fn may_act_in(&self, workspace_id: &str, user_id: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM memberships WHERE workspace_id = $1 AND user_id = $2 \
             UNION ALL SELECT 1 FROM users WHERE id = $2 AND platform_admin = 1 LIMIT 1",
        )
        .bind(workspace_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// A workspace's slug, by its id.
    pub async fn workspace_slug(&self, workspace_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT slug FROM workspaces WHERE id = $1")
            .bind(workspace_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Runs of a workspace not ended yet (queued or running).
    pub async fn unfinished_workflow_runs(&self, workspace_id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM workflow_runs WHERE workspace_id = $1 AND status IN ('queued', 'running')",
        )
        .bind(workspace_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Takes the oldest run that no replica holds (queued, or running with its lease run
    /// out) for `owner` until `until` (unix ms). Two replicas never take the same run at
    /// once: PostgreSQL skips rows another transaction has locked; SQLite has one writer.
    pub async fn claim_workflow_run(&self, owner: &str, until: i64) -> Result<Option<WorkflowRunRecord>> {
        Ok(self
            .claim_workflow_runs(owner, until, 1, i64::MAX)
            .await?
            .into_iter()
            .next())
    }

    /// [`Store::claim_workflow_run`] for up to `limit` runs at once (runs to take over
    /// first, `running` sorting after `queued` descending, then the oldest), from
    /// workspaces holding fewer than `share` runs (all replicas together), so that one
    /// workspace's backlog leaves workers to the others: one claim takes at most what is
    /// left of each workspace's share, and on PostgreSQL replicas claim one at a time.
    pub async fn claim_workflow_runs(
        &self,
        owner: &str,
        until: i64,
        limit: i64,
        share: i64,
    ) -> Result<Vec<WorkflowRunRecord>> {
        let at = now_ms();
        // the oldest candidates of workspaces below their share (at most CLAIM_WINDOW), each
        // workspace's numbered in the order they are taken after the runs it has running:
        // only those within its share are taken, however many one claim asks for (a
        // workspace that fills the window is at its share at the next claim, which then
        // looks past it)
        let fair = format!(
            "WITH busy AS (SELECT workspace_id, COUNT(*) AS n FROM workflow_runs \
             WHERE status = 'running' AND lease_until >= $3 GROUP BY workspace_id), \
             cand AS (SELECT id, workspace_id, status, created_at FROM workflow_runs \
             WHERE status IN ('queued', 'running') AND lease_until < $3 \
             AND workspace_id NOT IN (SELECT workspace_id FROM busy WHERE n >= $6) \
             ORDER BY status DESC, created_at LIMIT {CLAIM_WINDOW}), \
             ranked AS (SELECT c.id, c.status, c.created_at, COALESCE(b.n, 0) AS held, \
             ROW_NUMBER() OVER (PARTITION BY c.workspace_id ORDER BY c.status DESC, c.created_at) AS nth \
             FROM cand c LEFT JOIN busy b ON b.workspace_id = c.workspace_id) \
             SELECT id FROM ranked WHERE held + nth <= $6 ORDER BY status DESC, created_at LIMIT $5"
        );
        let pick = match self.backend {
            Backend::Postgres => format!("SELECT id FROM workflow_runs WHERE id IN ({fair}) FOR UPDATE SKIP LOCKED"),
            Backend::Sqlite => fair,
        };
        let claim = sqlx::query(sql!(
            "UPDATE workflow_runs SET status = 'running', lease_owner = $1, lease_until = $2, claims = claims + 1, \
             started_at = COALESCE(started_at, $4) WHERE id IN ({pick}) AND lease_until < $3 RETURNING {RUN_COLS}"
        ))
        .bind(owner)
        .bind(until)
        .bind(at)
        .bind(now())
        .bind(limit.max(1))
        .bind(share.max(1));
        let rows = match self.backend {
            // replicas claim one at a time, so that each counts the runs the others took
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                tx.execute("SELECT pg_advisory_xact_lock(7242031118)").await?;
                let rows = claim.fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows
            }
            // one writer at a time already
            Backend::Sqlite => claim.fetch_all(&self.writer).await?,
        };
        let mut runs = rows.iter().map(wf_run).collect::<Result<Vec<_>>>()?;
        runs.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(runs)
    }

    /// Extends `owner`'s lease of a run to `until`: whether a cancel was asked for, or
    /// `None` when the run is no longer `owner`'s (ended, or taken over).
    pub async fn renew_workflow_lease(&self, run_id: &str, owner: &str, until: i64) -> Result<Option<bool>> {
        let row: Option<i64> = sqlx::query_scalar(
            "UPDATE workflow_runs SET lease_until = $3 WHERE id = $1 AND lease_owner = $2 AND status = 'running' \
             RETURNING cancel_requested",
        )
        .bind(run_id)
        .bind(owner)
        .bind(until)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(|c| c != 0))
    }

    /// Writes a step's state as change `rev` of the run (the holder counts them), if
    /// `owner` still holds the run; whether it did.
    pub async fn write_workflow_step(&self, run_id: &str, owner: &str, rev: i64, w: &StepWrite<'_>) -> Result<bool> {
        let done = self
            .write_workflow_steps(&[FencedStepWrite {
                run_id,
                owner,
                rev,
                write: *w,
            }])
            .await?;
        Ok(done.first().copied().unwrap_or(false))
    }

    /// Many step writes (of any runs) in one statement: what a replica's runs wrote
    /// meanwhile goes to the database together (one round trip and one commit for all, not
    /// one each). Per write, whether its `owner` still held its run (and, for a step's
    /// start, whether no cancel was asked: a cancelled run starts no step). On PostgreSQL the runs'
    /// rows are taken in share mode first, so a replica taking a run over waits for the
    /// commit (and then reads the steps with these writes in them); on SQLite the one
    /// writer does the same.
    pub async fn write_workflow_steps(&self, writes: &[FencedStepWrite<'_>]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(writes.len());
        for chunk in writes.chunks(STEP_WRITES_PER_STATEMENT) {
            out.extend(self.write_step_chunk(chunk).await?);
        }
        Ok(out)
    }

    async fn write_step_chunk(&self, writes: &[FencedStepWrite<'_>]) -> Result<Vec<bool>> {
        let at = now();
        let mut rows = Vec::with_capacity(writes.len());
        for i in 0..writes.len() {
            let p = i * 12;
            let cast = |n: usize, t: &str| match self.backend {
                Backend::Postgres => format!("${}::{t}", p + n),
                Backend::Sqlite => format!("${}", p + n),
            };
            rows.push(format!(
                "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                cast(1, "text"),
                cast(2, "text"),
                cast(3, "text"),
                cast(4, "text"),
                cast(5, "text"),
                cast(6, "text"),
                cast(7, "text"),
                cast(8, "text"),
                cast(9, "text"),
                cast(10, "bigint"),
                cast(11, "bigint"),
                cast(12, "text"),
            ));
        }
        let lock = match self.backend {
            Backend::Postgres => " FOR SHARE",
            Backend::Sqlite => "",
        };
        let text = format!(
            "WITH v (run_id, node_id, status, input, output, error, attempts, started_at, finished_at, duration_ms, rev, owner) \
             AS (VALUES {}), \
             held AS (SELECT r.id, r.lease_owner, r.cancel_requested FROM workflow_runs r \
             WHERE r.id IN (SELECT run_id FROM v) AND r.status = 'running'{lock}) \
             UPDATE workflow_run_steps SET status = v.status, input = COALESCE(v.input, workflow_run_steps.input), \
             output = v.output, error = v.error, attempts = v.attempts, \
             started_at = COALESCE(v.started_at, workflow_run_steps.started_at), finished_at = v.finished_at, \
             duration_ms = v.duration_ms, rev = v.rev \
             FROM v JOIN held ON held.id = v.run_id AND held.lease_owner = v.owner \
             AND (v.status <> 'running' OR held.cancel_requested = 0) \
             WHERE workflow_run_steps.run_id = v.run_id AND workflow_run_steps.node_id = v.node_id \
             RETURNING workflow_run_steps.run_id, workflow_run_steps.node_id",
            rows.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
        for f in writes {
            let w = &f.write;
            let (started, finished) = match w.status {
                "running" => (Some(at.clone()), None),
                _ => (None, Some(at.clone())),
            };
            q = q
                .bind(f.run_id)
                .bind(w.node_id)
                .bind(w.status)
                .bind(w.input)
                .bind(w.output)
                .bind(w.error)
                .bind(w.attempts)
                .bind(started)
                .bind(finished)
                .bind(w.duration_ms)
                .bind(f.rev)
                .bind(f.owner);
        }
        let done: std::collections::HashSet<(String, String)> = q
            .fetch_all(&self.writer)
            .await?
            .iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
            .collect::<Result<_>>()?;
        Ok(writes
            .iter()
            .map(|f| done.contains(&(f.run_id.to_owned(), f.write.node_id.to_owned())))
            .collect())
    }

    /// Ends a run `owner` holds, in one transaction: its status, output or error, its
    /// credentials removed, its lease let go; with `close`, the steps that never ended
    /// (`pending`, `running`) marked with that status as that change. The run's row is
    /// written first, so a step write of the run that comes later finds the run no longer
    /// held and changes nothing. Whether `owner` held it.
    pub async fn finish_workflow_run(&self, run_id: &str, owner: &str, end: &RunEnding<'_>) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE workflow_runs SET status = $3, output = $4, error = $5, finished_at = $6, credentials_sealed = NULL, \
             lease_owner = NULL, lease_until = 0, rev = rev + 1 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(run_id)
        .bind(owner)
        .bind(end.status)
        .bind(end.output)
        .bind(end.error)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some((status, rev)) = end.close {
            sqlx::query(
                "UPDATE workflow_run_steps SET status = $2, rev = $3 WHERE run_id = $1 AND status IN ('pending', 'running')",
            )
            .bind(run_id)
            .bind(status)
            .bind(rev)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Asks a run to stop: a queued run ends `cancelled` at once (its steps too); a
    /// running one is flagged for the replica holding it. Whether it had not ended.
    pub async fn cancel_workflow_run(&self, workspace_id: &str, run_id: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let queued = sqlx::query(
            "UPDATE workflow_runs SET status = 'cancelled', cancel_requested = 1, error = 'the run was cancelled', \
             finished_at = $3, credentials_sealed = NULL, rev = rev + 1 \
             WHERE workspace_id = $1 AND id = $2 AND status = 'queued'",
        )
        .bind(workspace_id)
        .bind(run_id)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        if queued.rows_affected() > 0 {
            sqlx::query("UPDATE workflow_run_steps SET status = 'cancelled' WHERE run_id = $1 AND status = 'pending'")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(true);
        }
        let running = sqlx::query(
            "UPDATE workflow_runs SET cancel_requested = 1 WHERE workspace_id = $1 AND id = $2 AND status = 'running'",
        )
        .bind(workspace_id)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(running.rows_affected() > 0)
    }
}
