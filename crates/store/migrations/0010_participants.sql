-- Participants (issue 14): people outside the platform who give their own credentials for
-- a workspace's `participant` connections through an onboarding link.

-- The roles a workspace's participants can have; a `participant` connection names one.
CREATE TABLE participant_roles (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, name)
);
-- roles that connections already named
INSERT INTO participant_roles (workspace_id, name, description, created_at)
    SELECT workspace_id, participant_role, '', MIN(created_at) FROM connections
    WHERE participant_role IS NOT NULL GROUP BY workspace_id, participant_role;

CREATE TABLE participants (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    email TEXT,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX participants_workspace ON participants (workspace_id, role);

-- Onboarding links: the id is the SHA-256 (hex) of the token in the link; the token itself
-- is never stored. Reissuing revokes the participant's earlier links.
CREATE TABLE onboarding_links (
    id TEXT PRIMARY KEY,
    participant_id TEXT NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX onboarding_links_participant ON onboarding_links (participant_id);

-- A participant's keys for a connection; id is '<participant id>:<connection id>', the
-- identity the sealed fields are bound to.
CREATE TABLE participant_credentials (
    id TEXT PRIMARY KEY,
    participant_id TEXT NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    secrets_sealed TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (participant_id, connection_id)
);
CREATE INDEX participant_credentials_connection ON participant_credentials (connection_id);

-- An account belongs to a person (one per provider) or to a participant for one
-- connection: the table is rebuilt with `user_id` optional.
CREATE TABLE accounts_v2 (
    id TEXT PRIMARY KEY,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    participant_id TEXT REFERENCES participants (id) ON DELETE CASCADE,
    connection_id TEXT REFERENCES connections (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    identity TEXT NOT NULL,
    scopes TEXT NOT NULL,
    status TEXT NOT NULL,
    tokens_sealed TEXT NOT NULL,
    expires_at BIGINT,
    version BIGINT NOT NULL,
    refresh_lease BIGINT,
    connected_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (user_id, provider),
    UNIQUE (participant_id, connection_id)
);
INSERT INTO accounts_v2 (id, user_id, provider, identity, scopes, status, tokens_sealed, expires_at, version,
    refresh_lease, connected_at, updated_at)
    SELECT id, user_id, provider, identity, scopes, status, tokens_sealed, expires_at, version, refresh_lease,
    connected_at, updated_at FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_v2 RENAME TO accounts;
CREATE INDEX accounts_connection ON accounts (connection_id);

-- A connect flow is a person's or a participant's (for one connection, through one
-- onboarding link, in the browser holding the cookie whose SHA-256 is `browser_hash`).
CREATE TABLE oauth_states_v2 (
    id TEXT PRIMARY KEY,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    participant_id TEXT REFERENCES participants (id) ON DELETE CASCADE,
    connection_id TEXT REFERENCES connections (id) ON DELETE CASCADE,
    link_id TEXT,
    browser_hash TEXT,
    provider TEXT NOT NULL,
    scopes TEXT NOT NULL,
    verifier_sealed TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at TEXT
);
INSERT INTO oauth_states_v2 (id, user_id, provider, scopes, verifier_sealed, created_at, expires_at, used_at)
    SELECT id, user_id, provider, scopes, verifier_sealed, created_at, expires_at, used_at FROM oauth_states;
DROP TABLE oauth_states;
ALTER TABLE oauth_states_v2 RENAME TO oauth_states;
CREATE INDEX oauth_states_expiry_v2 ON oauth_states (expires_at);

-- Which participant's credentials a call used (never their values).
ALTER TABLE audit_events ADD COLUMN participant_id TEXT;
