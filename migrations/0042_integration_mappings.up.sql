-- Integrations, second part: which KPI each provider metric feeds (issue 19, item 2). A mapping
-- names a KPI through the tenant-scoped key (organization_id, kpi_id), so it can only name a KPI
-- of the integration's own organization — refused by the database, like any cross-tenant
-- reference. One KPI per metric of an integration; a KPI deleted for good takes its mappings.

CREATE TABLE integration_mappings (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL,
    integration_id  uuid NOT NULL,
    -- The provider's metric (`mrr`, `revenue`, `active_users`, …; `value` for a sheet).
    metric          text NOT NULL CHECK (metric ~ '^[a-z][a-z0-9_]{0,62}$'),
    kpi_id          uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, integration_id, metric),
    FOREIGN KEY (organization_id, integration_id) REFERENCES integrations (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, kpi_id) REFERENCES kpis (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX integration_mappings_kpi ON integration_mappings (organization_id, kpi_id);
CALL app.protect_tenant_table('integration_mappings', 'viewer', 'admin', 'admin');
GRANT SELECT, INSERT (id, organization_id, integration_id, metric, kpi_id), DELETE
   ON integration_mappings TO tenantry_runtime;
CALL audit.attach('integration_mappings');
