-- Web UI sessions: the cookie holds a random token, the store only its SHA-256 (like API
-- tokens). Each session has its own CSRF token, which state-changing requests made with
-- the cookie must send in `X-CSRF-Token`. Signing out deletes the row; expired rows are
-- ignored and removed as new sessions are made.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
