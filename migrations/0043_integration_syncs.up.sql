-- Integrations, third part: every sync run recorded (issue 19, item 4) — when it started and
-- finished, what started it, the days it covered, the points it wrote, and its error with
-- secrets redacted — and the count of consecutive failures that turns an integration to `error`.

CREATE TABLE integration_syncs (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL,
    integration_id  uuid NOT NULL,
    trigger         text NOT NULL CHECK (trigger IN ('schedule', 'manual', 'backfill')),
    status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'success', 'error')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    -- The days synced (UTC), both included.
    range_from      date,
    range_to        date,
    points_written  integer NOT NULL DEFAULT 0 CHECK (points_written >= 0),
    -- The provider's error, secrets redacted.
    error           text CHECK (length(error) <= 2000),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, integration_id) REFERENCES integrations (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX integration_syncs_newest ON integration_syncs (organization_id, integration_id, id DESC);
CALL app.protect_tenant_table('integration_syncs', 'viewer', 'admin', 'admin');
GRANT SELECT, INSERT (id, organization_id, integration_id, trigger, range_from, range_to),
      UPDATE (status, finished_at, points_written, error)
   ON integration_syncs TO tenantry_runtime;
CALL audit.attach('integration_syncs');

ALTER TABLE integrations ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0
    CHECK (consecutive_failures >= 0);
GRANT UPDATE (last_sync_at, sync_status, error_message, consecutive_failures) ON integrations TO tenantry_runtime;
