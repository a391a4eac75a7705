-- Agents (issue 15): a model with instructions and tools, per workspace; their runs and
-- each run's steps (model turns and tool calls, outputs already redacted).

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    instructions TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    -- JSON array of tool names, in the agent's order
    tools TEXT NOT NULL,
    max_steps INTEGER NOT NULL,
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE agent_runs (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    -- running, succeeded, failed, max_steps, cancelled
    status TEXT NOT NULL,
    -- JSON: the run's input messages (never its credentials)
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    steps INTEGER NOT NULL DEFAULT 0,
    participant_id TEXT REFERENCES participants (id) ON DELETE SET NULL,
    started_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX agent_runs_agent ON agent_runs (agent_id, created_at);

CREATE TABLE agent_run_steps (
    run_id TEXT NOT NULL REFERENCES agent_runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    -- model or tool
    kind TEXT NOT NULL,
    -- JSON: a model turn (text, calls, usage) or a tool call (tool, arguments, output or
    -- error), redacted before it is written
    data TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

ALTER TABLE audit_events ADD COLUMN run_id TEXT;
