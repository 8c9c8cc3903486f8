-- Reverts 0015_skew_proof_plans.
CREATE OR REPLACE FUNCTION app.sync_current_value() RETURNS trigger
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
DROP STATISTICS kpi_data_points_kpi_org;
ALTER TABLE kpi_data_points DROP CONSTRAINT kpi_data_points_pkey;
ALTER TABLE kpi_data_points ADD CONSTRAINT kpi_data_points_pkey PRIMARY KEY (organization_id, id);
CREATE INDEX kpis_live ON kpis (organization_id, name) WHERE deleted_at IS NULL;
ALTER TABLE kpi_data_points
    ADD CONSTRAINT kpi_data_points_kpi_id_observed_at_source_key UNIQUE (kpi_id, observed_at, source);
ALTER TABLE kpi_data_points DROP CONSTRAINT kpi_data_points_point;
