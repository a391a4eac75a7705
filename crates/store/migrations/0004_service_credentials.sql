-- API keys of services (AI providers, search, messaging): platform-wide (scope 'platform')
-- or a workspace's own (scope = the workspace id). The id is '<scope>:<service>', which is
-- also the identity the sealed key is bound to.
CREATE TABLE service_credentials (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    service TEXT NOT NULL,
    -- NULL on a platform row that only sets the base URL (workspaces bring the keys)
    api_key_sealed TEXT,
    base_url TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX service_credentials_scope ON service_credentials (scope);

-- OAuth client credentials registered by the operator (id: gmail, github).
CREATE TABLE oauth_providers (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    client_secret_sealed TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
