-- Workflows (issue 16): a definition per workflow (the draft being edited), the versions
-- frozen by each deploy, durable runs (their state here, so that any replica executes
-- them: a replica holds a run while its lease lasts and renews it; a run whose lease ran
-- out is taken over by another) and each run's steps, one row per node.

CREATE TABLE workflows (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- JSON {"nodes": [...], "edges": [...]}: the draft
    definition TEXT NOT NULL,
    -- the version runs use; NULL until the first deploy
    deployed_version INTEGER,
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE workflow_versions (
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    definition TEXT NOT NULL,
    -- JSON array of the tool names the version's tool nodes call (the "used by" guard)
    tools TEXT NOT NULL,
    deployed_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

CREATE TABLE workflow_runs (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    -- queued, running, succeeded, failed, cancelled
    status TEXT NOT NULL,
    -- JSON: the run's input
    input TEXT NOT NULL,
    -- the run's `caller` credentials, sealed to the run; removed when the run ends
    credentials_sealed TEXT,
    output TEXT,
    error TEXT,
    participant_id TEXT REFERENCES participants (id) ON DELETE SET NULL,
    started_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    -- the replica executing the run, and until when (unix ms) it holds it
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    -- how many times a replica took the run (more than one: a replica stopped)
    claims INTEGER NOT NULL DEFAULT 0,
    -- moves with every change of a step (events followers read what changed after theirs)
    rev BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX workflow_runs_ready ON workflow_runs (status, lease_until, created_at);
CREATE INDEX workflow_runs_of ON workflow_runs (workflow_id, created_at);
CREATE INDEX workflow_runs_unfinished ON workflow_runs (workspace_id, status);

CREATE TABLE workflow_run_steps (
    run_id TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    -- the node's place in the workflow
    seq INTEGER NOT NULL,
    -- tool or agent
    kind TEXT NOT NULL,
    -- the tool's name or the agent's id
    target TEXT NOT NULL,
    -- pending, running, succeeded, failed, skipped, cancelled
    status TEXT NOT NULL,
    -- JSON, redacted: the input after templating, the output, the error
    input TEXT,
    output TEXT,
    error TEXT,
    -- JSON array: one entry per attempt (replica, start, end, outcome)
    attempts TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    duration_ms BIGINT,
    rev BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, node_id)
);
CREATE INDEX workflow_run_steps_rev ON workflow_run_steps (run_id, rev);
