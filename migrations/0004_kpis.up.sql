-- Sesari KPIs and goals: KPIs with their history of data points, goals weighted over KPIs.
-- Members write, viewers read, everything inside one organization (tenant-scoped keys).

CREATE TABLE kpis (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description     text CHECK (length(description) <= 5000),
    target_value    double precision CHECK (target_value NOT IN ('NaN', 'Infinity', '-Infinity')),
    -- The value of the latest data point, kept by the database (NULL: no data yet).
    current_value   double precision,
    unit            text CHECK (length(unit) <= 50),
    category        text CHECK (length(category) <= 100),
    -- Whether a higher or a lower value is better; progress and trends respect it.
    direction       text NOT NULL DEFAULT 'higher_is_better'
                    CHECK (direction IN ('higher_is_better', 'lower_is_better')),
    -- Where progress starts from (default: 0).
    baseline        double precision CHECK (baseline NOT IN ('NaN', 'Infinity', '-Infinity')),
    -- Tracked (true) or paused by its owners; soft deletion is deleted_at.
    is_active       boolean NOT NULL DEFAULT true,
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);
CREATE INDEX kpis_live ON kpis (organization_id, name) WHERE deleted_at IS NULL;

-- The history (Sesari 3.2): every value a KPI took, with when and from where. One point per
-- (KPI, time, source): a re-sync updates instead of duplicating.
CREATE TABLE kpi_data_points (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL,
    kpi_id          uuid NOT NULL,
    value           double precision NOT NULL CHECK (value NOT IN ('NaN', 'Infinity', '-Infinity')),
    observed_at     timestamptz NOT NULL DEFAULT now(),
    source          text NOT NULL DEFAULT 'manual' CHECK (length(source) BETWEEN 1 AND 100),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, kpi_id) REFERENCES kpis (organization_id, id) ON DELETE CASCADE,
    -- Also serves "latest points of a KPI" (scanned backwards): no second time index needed.
    UNIQUE (kpi_id, observed_at, source)
);

CREATE TABLE goals (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    title           text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    description     text CHECK (length(description) <= 5000),
    target_date     date,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'completed')),
    -- Set by the database when the goal is completed, cleared when it is reopened.
    completed_at    timestamptz,
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    CHECK ((status = 'completed') = (completed_at IS NOT NULL))
);
CREATE INDEX goals_live ON goals (organization_id, status) WHERE deleted_at IS NULL;

CREATE TABLE goal_kpis (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL,
    goal_id         uuid NOT NULL,
    kpi_id          uuid NOT NULL,
    weight          double precision NOT NULL DEFAULT 1 CHECK (weight > 0 AND weight < 'Infinity'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (goal_id, kpi_id),
    -- A goal links only KPIs of its own organization: the keys say so, whatever the caller.
    FOREIGN KEY (organization_id, goal_id) REFERENCES goals (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, kpi_id) REFERENCES kpis (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX goal_kpis_kpi ON goal_kpis (organization_id, kpi_id);

CREATE TRIGGER touch_updated_at BEFORE UPDATE ON kpis FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON goals FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON goal_kpis FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- completed_at follows status (Sesari 4.4).
CREATE FUNCTION app.goal_completion() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'completed' AND (TG_OP = 'INSERT' OR OLD.status <> 'completed') THEN
        NEW.completed_at := now();
    ELSIF NEW.status <> 'completed' THEN
        NEW.completed_at := NULL;
    ELSE
        NEW.completed_at := OLD.completed_at;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER goal_completion BEFORE INSERT OR UPDATE OF status, completed_at ON goals
    FOR EACH ROW EXECUTE FUNCTION app.goal_completion();

-- current_value is always the latest point's value (ties at the same time: the newest row).
-- Statement-level, so a bulk ingest updates each KPI once. SECURITY DEFINER: a point written by a
-- member must move the KPI even though members cannot update current_value themselves.
CREATE FUNCTION app.sync_current_value() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE public.kpis k
           SET current_value = (SELECT p.value FROM public.kpi_data_points p
                                 WHERE p.kpi_id = k.id ORDER BY p.observed_at DESC, p.created_at DESC, p.id DESC LIMIT 1)
         WHERE (k.organization_id, k.id) IN (SELECT DISTINCT organization_id, kpi_id FROM old_rows);
    ELSE
        UPDATE public.kpis k
           SET current_value = (SELECT p.value FROM public.kpi_data_points p
                                 WHERE p.kpi_id = k.id ORDER BY p.observed_at DESC, p.created_at DESC, p.id DESC LIMIT 1)
         WHERE (k.organization_id, k.id) IN (SELECT DISTINCT organization_id, kpi_id FROM new_rows);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER sync_current_value_insert AFTER INSERT ON kpi_data_points REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION app.sync_current_value();
CREATE TRIGGER sync_current_value_update AFTER UPDATE ON kpi_data_points REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION app.sync_current_value();
CREATE TRIGGER sync_current_value_delete AFTER DELETE ON kpi_data_points REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION app.sync_current_value();

-- Members (and write API keys) write, viewers read; purging (hard delete) is for admins.
CALL app.protect_tenant_table('kpis', 'viewer', 'member', 'admin');
CALL app.protect_tenant_table('kpi_data_points', 'viewer', 'member', 'admin');
CALL app.protect_tenant_table('goals', 'viewer', 'member', 'admin');
CALL app.protect_tenant_table('goal_kpis', 'viewer', 'member', 'member');

-- current_value and completed_at are the database's; keys never change.
GRANT SELECT,
      INSERT (id, organization_id, name, description, target_value, unit, category, direction, baseline, is_active),
      UPDATE (name, description, target_value, unit, category, direction, baseline, is_active, deleted_at),
      DELETE
   ON kpis TO tenantry_runtime;
GRANT SELECT, INSERT (id, organization_id, kpi_id, value, observed_at, source), UPDATE (value), DELETE
   ON kpi_data_points TO tenantry_runtime;
GRANT SELECT,
      INSERT (id, organization_id, title, description, target_date, status),
      UPDATE (title, description, target_date, status, deleted_at),
      DELETE
   ON goals TO tenantry_runtime;
GRANT SELECT, INSERT (id, organization_id, goal_id, kpi_id, weight), UPDATE (weight), DELETE
   ON goal_kpis TO tenantry_runtime;

CALL audit.attach('kpis');
-- Points arrive by the thousand: one audit event per KPI and statement, with the row count.
CALL audit.attach('kpi_data_points', 'organization_id', 'kpi_id', '{}', 'summary');
CALL audit.attach('goals');
CALL audit.attach('goal_kpis');
