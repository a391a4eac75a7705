-- One row per tool invocation: who called what, how it went, how long it took. Never
-- arguments, never credentials.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id TEXT,
    tool TEXT NOT NULL,
    connection_slug TEXT,
    outcome TEXT NOT NULL,
    http_status BIGINT,
    error_code TEXT,
    duration_ms BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, id);
