-- Where each argument of an imported operation goes (JSON, see domain::mapping); NULL for
-- operations that follow the default rule.
ALTER TABLE connection_operations ADD COLUMN request TEXT;

-- The document an openapi connection was imported from, kept for a later re-import.
-- One row per connection; replaced by a re-import.
CREATE TABLE connection_sources (
    connection_id TEXT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    document TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
