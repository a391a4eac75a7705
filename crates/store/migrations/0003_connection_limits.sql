-- A connection's own bounds on its outbound calls (JSON: timeout_ms, max_response_bytes,
-- max_redirects), capped by the operator's maxima at call time. NULL: the operator's.
ALTER TABLE connections ADD COLUMN limits TEXT;
