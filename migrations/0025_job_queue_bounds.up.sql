-- What the runtime role may ask of the queue is bounded (a review finding): jobs it enqueues
-- never outrank platform work (priority at most 0) and get at most 20 attempts, so SQL run as it
-- cannot push its jobs ahead of everyone's email and upkeep.
DROP POLICY jobs_enqueue ON queue.jobs;
CREATE POLICY jobs_enqueue ON queue.jobs FOR INSERT TO tenantry_runtime
    WITH CHECK (organization_id = (SELECT app.org_with_role('viewer'))
                AND actor_id IS NOT DISTINCT FROM (SELECT app.user_id())
                AND state = 'queued' AND attempts = 0 AND priority <= 0 AND max_attempts <= 20);
