-- Hot reads whose good plan is the only cheap one, whatever the statistics say (one tenant with
-- millions of points, one KPI with most of a table): every index a tenant read uses leads with
-- organization_id, so the query's own `organization_id = $1` (and the policy's
-- `organization_id = ANY (…)`) narrow the same index the read walks in order, instead of
-- offering the planner a second index on organization_id to AND with.

-- A KPI's points, walked backwards from the newest (latest value, 7/30/90-day change,
-- sparkline, points list, series ranges). Replaces UNIQUE (kpi_id, observed_at, source): the same
-- uniqueness (a KPI belongs to one organization), now scoped to the tenant like every other key.
ALTER TABLE kpi_data_points
    ADD CONSTRAINT kpi_data_points_point UNIQUE (organization_id, kpi_id, observed_at, source);
ALTER TABLE kpi_data_points DROP CONSTRAINT kpi_data_points_kpi_id_observed_at_source_key;
-- The key leads with id: a point is looked up by its id (a page cursor), and an index leading
-- with organization_id would be a second way to read a KPI's points (all of its organization's,
-- filtered). In a generic plan the planner multiplies the policy's `organization_id = ANY (…)`
-- with the query's `organization_id = $1`, expects one row either way, and picks the smaller
-- index. organization_id stays in the key (tenant-scoped, and Citus distributes by it).
ALTER TABLE kpi_data_points DROP CONSTRAINT kpi_data_points_pkey;
ALTER TABLE kpi_data_points ADD CONSTRAINT kpi_data_points_pkey PRIMARY KEY (id, organization_id);
-- A KPI id names its organization: without this the planner multiplies the two selectivities
-- and expects ~0 points for any KPI, which makes "read everything and sort" look free.
CREATE STATISTICS kpi_data_points_kpi_org (dependencies) ON organization_id, kpi_id FROM kpi_data_points;

-- A KPI is found by its key (organization_id, id). The partial (organization_id, name) index
-- offered a second way that reads every live KPI of the organization to find one (it was picked
-- for the literal `deleted_at IS NULL`); the dashboard reads them all anyway and sorts them.
DROP INDEX kpis_live;

-- current_value follows the same index.
CREATE OR REPLACE FUNCTION app.sync_current_value() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE public.kpis k
           SET current_value = (SELECT p.value FROM public.kpi_data_points p
                                 WHERE p.organization_id = k.organization_id AND p.kpi_id = k.id
                                 ORDER BY p.observed_at DESC, p.created_at DESC, p.id DESC LIMIT 1)
         WHERE (k.organization_id, k.id) IN (SELECT DISTINCT organization_id, kpi_id FROM old_rows);
    ELSE
        UPDATE public.kpis k
           SET current_value = (SELECT p.value FROM public.kpi_data_points p
                                 WHERE p.organization_id = k.organization_id AND p.kpi_id = k.id
                                 ORDER BY p.observed_at DESC, p.created_at DESC, p.id DESC LIMIT 1)
         WHERE (k.organization_id, k.id) IN (SELECT DISTINCT organization_id, kpi_id FROM new_rows);
    END IF;
    RETURN NULL;
END $$;
