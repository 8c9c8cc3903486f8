-- Schedules: cron expressions (five fields: minute, hour, day of month, month, day of week) in
-- UTC or a named time zone, stored here so operators change them without a release. A worker
-- enqueues a schedule's job when its slot is due, advancing `next_run_at` with a compare-and-set
-- in the same statement: with any number of workers, one job per slot. A slot missed while no
-- worker ran is run once, late; the slots in between are skipped.

CREATE TABLE queue.schedules (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_.-]*$' AND length(name) <= 100),
    cron        text NOT NULL CHECK (length(cron) <= 200),
    -- A zone PostgreSQL knows (an invalid one is refused on write: AT TIME ZONE raises).
    time_zone   text NOT NULL DEFAULT 'UTC'
                CHECK (('2000-01-01 00:00+00'::timestamptz AT TIME ZONE time_zone) IS NOT NULL),
    kind        text NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    enabled     boolean NOT NULL DEFAULT true,
    -- The next slot; NULL until a worker first computes it.
    next_run_at timestamptz,
    last_run_at timestamptz,
    last_job_id uuid
);
ALTER TABLE queue.schedules ENABLE ROW LEVEL SECURITY;
ALTER TABLE queue.schedules FORCE ROW LEVEL SECURITY;
-- The owner alone reads and writes schedules (BYPASSRLS); no policy opens them to anyone else.
CREATE POLICY schedules_none ON queue.schedules FOR SELECT USING (false);

-- The platform's upkeep, as seed 003 and the tenancy core ask for it.
INSERT INTO queue.schedules (name, cron, kind) VALUES
    ('purge-expired', '*/15 * * * *', 'upkeep.purge_expired'),
    ('refresh-reports', '5 * * * *', 'upkeep.refresh_reports'),
    ('archive', '30 3 * * *', 'upkeep.archive'),
    ('purge-audit', '0 4 * * 0', 'upkeep.purge_audit');
