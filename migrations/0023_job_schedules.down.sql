-- Reverts 0023_job_schedules.
DROP TABLE queue.schedules;
