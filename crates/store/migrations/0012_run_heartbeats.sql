-- Runs outlive no replica (issue 15): the replica running a run marks it alive every few
-- seconds; a run whose mark is too old is ended as failed by whichever replica sees it.
ALTER TABLE agent_runs ADD COLUMN heartbeat_at TEXT;
CREATE INDEX agent_runs_running ON agent_runs (status, heartbeat_at);
