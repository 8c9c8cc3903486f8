-- Reverts 0025_job_queue_bounds.
DROP POLICY jobs_enqueue ON queue.jobs;
CREATE POLICY jobs_enqueue ON queue.jobs FOR INSERT TO tenantry_runtime
    WITH CHECK (organization_id = (SELECT app.org_with_role('viewer'))
                AND actor_id IS NOT DISTINCT FROM (SELECT app.user_id())
                AND state = 'queued' AND attempts = 0);
