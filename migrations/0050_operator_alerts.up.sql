-- Alerts to the operator: problems of the platform itself (WAL archiving failing), emailed to
-- the operator's address (TENANTRY_OPERATOR_EMAIL) once per episode. An episode has a key that
-- stays the same while the problem lasts (WAL archiving: the last segment archived before the
-- failures began), so any number of workers noticing it every minute raise one alert; the same
-- problem coming back after a recovery is a new episode, with a new key, and a new email.
-- Raised by the owner (the worker), in the transaction that queues its `operator.alert` job.

CREATE TABLE queue.alerts (
    key        text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 200),
    subject    text NOT NULL CHECK (length(subject) BETWEEN 1 AND 300),
    body       text NOT NULL,
    raised_at  timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz,
    attempts   integer NOT NULL DEFAULT 0,
    last_error text
);
ALTER TABLE queue.alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE queue.alerts FORCE ROW LEVEL SECURITY;
-- The owner alone reads and writes alerts (BYPASSRLS); no policy opens them to anyone else.
CREATE POLICY alerts_none ON queue.alerts FOR SELECT USING (false);
