-- Accounts (issue 13): people's own accounts at OAuth providers (My Accounts), the connect
-- flow's pending states, personal keys for `caller` connections, and a registry entry's
-- endpoint overrides.

-- A registered provider may point at compatible servers (GitHub Enterprise, tests).
ALTER TABLE oauth_providers ADD COLUMN authorize_url TEXT;
ALTER TABLE oauth_providers ADD COLUMN token_url TEXT;
ALTER TABLE oauth_providers ADD COLUMN revoke_url TEXT;
ALTER TABLE oauth_providers ADD COLUMN api_base_url TEXT;

-- A `caller` http/openapi connection may take its bearer token from the caller's account.
ALTER TABLE connections ADD COLUMN oauth_provider TEXT;

-- A connect flow in progress: the row id is the SHA-256 of the `state` sent to the provider
-- (the state itself is never stored); the PKCE verifier is sealed, bound to the row.
-- `used_at` is set when the callback consumes it, so a replay is told apart from a forgery.
CREATE TABLE oauth_states (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    scopes TEXT NOT NULL,
    verifier_sealed TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at TEXT
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

-- One account per person and provider. `tokens_sealed` holds {access_token, refresh_token}
-- sealed with the row id; `expires_at` (unix seconds) is when the access token expires;
-- `version` counts token writes and `refresh_lease` (unix milliseconds) lets one replica
-- refresh while the others wait for its result.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
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
    UNIQUE (user_id, provider)
);

-- A person's own key for a `caller` connection; id is '<user id>:<connection id>', the
-- identity the sealed fields are bound to.
CREATE TABLE personal_credentials (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    secrets_sealed TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (user_id, connection_id)
);
