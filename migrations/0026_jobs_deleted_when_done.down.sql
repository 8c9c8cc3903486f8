-- Reverts 0026_jobs_deleted_when_done (jobs that succeeded meanwhile are gone, not restored).
ALTER TABLE queue.jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE queue.jobs ADD CONSTRAINT jobs_state_check
    CHECK (state IN ('queued', 'running', 'completed', 'dead', 'cancelled'));
ALTER TABLE queue.jobs ADD CONSTRAINT jobs_tenant_key UNIQUE (organization_id, id);
