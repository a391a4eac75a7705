-- Users, tokens, workspaces, memberships, connections and their operations, vault check.
-- Identifiers are UUID text, times are RFC 3339 UTC text, flags are 0/1 integers: the same
-- column types on SQLite and PostgreSQL, so one query text serves both.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT,
    platform_admin BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE memberships (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    service_type TEXT NOT NULL,
    base_url TEXT NOT NULL,
    auth_type TEXT NOT NULL,
    -- non-secret auth fields as a JSON object (header name, query parameter, subject)
    auth_public TEXT NOT NULL,
    -- the secret fields as one vault-sealed JSON object; NULL when none are stored
    auth_sealed TEXT,
    fulfillment TEXT NOT NULL,
    participant_role TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, slug)
);

CREATE TABLE connection_operations (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    name TEXT NOT NULL,
    method TEXT,
    path TEXT,
    description TEXT NOT NULL,
    input_schema TEXT NOT NULL,
    output_schema TEXT,
    PRIMARY KEY (connection_id, name)
);

-- One sealed sentinel per database: lets start-up prove the configured keys open the data
-- even before any secret is stored.
CREATE TABLE vault_check (
    id TEXT PRIMARY KEY,
    sealed TEXT NOT NULL
);
