-- Invitations: how workspace admins add people, by e-mail address. The answer to an
-- invitation is the same whether or not the address has an account; the invited user sees
-- it under /api/me/invitations and accepts it. One pending invitation per address and
-- workspace (inviting again replaces its role and expiry).
CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    invited_by TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    UNIQUE (workspace_id, email)
);
CREATE INDEX invitations_email ON invitations (email);
