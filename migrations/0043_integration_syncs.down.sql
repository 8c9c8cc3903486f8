-- Reverts 0043_integration_syncs.
REVOKE UPDATE (last_sync_at, sync_status, error_message, consecutive_failures) ON integrations FROM tenantry_runtime;
ALTER TABLE integrations DROP COLUMN consecutive_failures;
DROP TABLE integration_syncs;
