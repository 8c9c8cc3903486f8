-- Reverts 0022_job_queue.
DROP SCHEMA queue CASCADE;
