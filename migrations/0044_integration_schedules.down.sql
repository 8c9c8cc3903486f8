-- Reverts 0044_integration_schedules.
DELETE FROM queue.schedules WHERE name = 'integration-syncs';
DELETE FROM queue.jobs WHERE kind = 'integrations.dispatch';
DROP FUNCTION app.announce_integration_error(uuid);
DROP FUNCTION app.require_integration_in_plan(uuid);
DROP FUNCTION app.integration_in_plan(uuid, uuid);
DROP FUNCTION app.integration_allowed(uuid, uuid);
ALTER TABLE integration_mappings DROP COLUMN synced_at;
DROP INDEX integrations_due;
ALTER TABLE integrations DROP COLUMN error_notified_at, DROP COLUMN next_sync_at;
