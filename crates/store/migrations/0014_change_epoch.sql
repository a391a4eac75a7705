-- Caches across replicas (issue 17): one counter that every write to the tables a call's
-- context is read from moves forward (triggers installed on start, per database: see
-- `changes.rs`). Each replica watches it and drops what it cached when it moves.
CREATE TABLE change_epoch (
    id BIGINT PRIMARY KEY,
    n BIGINT NOT NULL
);
INSERT INTO change_epoch (id, n) VALUES (1, 0);
