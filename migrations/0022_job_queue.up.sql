-- The job queue: background work in PostgreSQL, no second datastore.
--
-- A job is enqueued in the transaction of the write that causes it (the runtime role inserts it
-- under RLS, for the organization the request is bound to and the user acting), so a write that
-- rolls back leaves no job. Workers claim jobs as the owner with `FOR UPDATE SKIP LOCKED` and
-- hold a lease they renew while working; a job whose lease ran out (its worker was killed or
-- lost) is queued again, or dead once it used its attempts. A job that touches tenant data runs
-- in a tenant transaction bound to its organization and actor, as the runtime role, with the
-- request id `job:<id>`: the audit trail of its writes names it. Only the owner claims, renews,
-- finishes or reads jobs: their payloads (an invitation's link) are not the runtime role's to
-- read, whatever settings SQL run as it forges.
--
-- Jobs are work, not tenant records: they are not audited themselves (what they write is).

CREATE SCHEMA queue;
GRANT USAGE ON SCHEMA queue TO tenantry_runtime;

CREATE TABLE queue.jobs (
    id              uuid NOT NULL DEFAULT app.uuid_v7() PRIMARY KEY,
    -- What to do: a handler's name (`outbox.deliver`, `upkeep.purge_sessions`).
    kind            text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$' AND length(kind) <= 100),
    -- The organization and the user the job acts for; both NULL for platform upkeep.
    organization_id uuid REFERENCES public.organizations (id) ON DELETE CASCADE,
    actor_id        uuid,
    payload         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    -- The same logical job is queued once: one pending job per (kind, organization, key).
    unique_key      text CHECK (length(unique_key) BETWEEN 1 AND 200),
    -- Higher first, then the earliest due.
    priority        smallint NOT NULL DEFAULT 0,
    run_at          timestamptz NOT NULL DEFAULT now(),
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'completed', 'dead', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer NOT NULL DEFAULT 10 CHECK (max_attempts BETWEEN 1 AND 100),
    -- Who holds it, until when (set while running).
    worker          text,
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CONSTRAINT jobs_tenant_key UNIQUE (organization_id, id),
    CONSTRAINT jobs_lease CHECK ((state = 'running') = (worker IS NOT NULL AND lease_until IS NOT NULL))
);
CREATE UNIQUE INDEX jobs_unique_key ON queue.jobs (kind, organization_id, unique_key) NULLS NOT DISTINCT
    WHERE unique_key IS NOT NULL AND state IN ('queued', 'running');
-- What a worker claims next, and whose leases ran out.
CREATE INDEX jobs_ready ON queue.jobs (priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_leased ON queue.jobs (lease_until) WHERE state = 'running';
-- Finished jobs, for their purge.
CREATE INDEX jobs_finished ON queue.jobs (finished_at) WHERE finished_at IS NOT NULL;

ALTER TABLE queue.jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE queue.jobs FORCE ROW LEVEL SECURITY;
-- The runtime role only enqueues: for the bound organization, as the acting user, as a new job.
CREATE POLICY jobs_enqueue ON queue.jobs FOR INSERT TO tenantry_runtime
    WITH CHECK (organization_id = (SELECT app.org_with_role('viewer'))
                AND actor_id IS NOT DISTINCT FROM (SELECT app.user_id())
                AND state = 'queued' AND attempts = 0);
GRANT INSERT (id, kind, organization_id, actor_id, payload, unique_key, priority, run_at, max_attempts)
    ON queue.jobs TO tenantry_runtime;
-- `ON CONFLICT DO NOTHING` (a pending job with the same unique key) reads the arbiter index's
-- columns, and so the new row must also pass a SELECT policy: the runtime role sees the kind and
-- state of the jobs its user enqueued in the bound organization, and nothing else (no payload).
GRANT SELECT (kind, organization_id, unique_key, state) ON queue.jobs TO tenantry_runtime;
CREATE POLICY jobs_own ON queue.jobs FOR SELECT TO tenantry_runtime
    USING (organization_id = (SELECT app.org_with_role('viewer'))
           AND actor_id IS NOT DISTINCT FROM (SELECT app.user_id()));

-- Workers waiting on LISTEN wake when jobs are enqueued (delivered at commit, dropped on rollback);
-- without LISTEN (PgBouncer in transaction mode) they poll.
CREATE FUNCTION queue.notify_enqueued() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('queue_jobs', '');
    RETURN NULL;
END $$;
GRANT EXECUTE ON FUNCTION queue.notify_enqueued() TO tenantry_runtime;
CREATE TRIGGER notify_enqueued AFTER INSERT ON queue.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION queue.notify_enqueued();
