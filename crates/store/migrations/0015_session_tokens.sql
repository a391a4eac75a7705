-- A web session opened with an API token ends when that token is revoked (issue 17).
ALTER TABLE sessions ADD COLUMN api_token_id TEXT;
CREATE INDEX sessions_api_token ON sessions (api_token_id);
