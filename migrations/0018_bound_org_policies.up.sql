-- Policies of tables only ever read inside one organization's request compare with that one
-- organization, a scalar, instead of testing membership in an array of organizations.
--
-- `organization_id = ANY (array)` made the B-tree set up array keys at every rescan (about 230 µs
-- of the 50-KPI dashboard's 1.3 ms, measured as the owner), and its selectivity, multiplied with
-- the store's own `organization_id = $1`, made the planner expect a handful of rows where there
-- were 100,000 (issue 15's search). `organization_id = (SELECT app.org_with_role(…))` is one
-- equality the index takes like the store's. A request without an organization sees no row of
-- these tables; organizations, memberships and invitations keep the array form (signing up,
-- listing one's organizations and accepting an invitation happen before one is chosen).

-- The organization this request is bound to, when the actor's role in it is at least `min_role`;
-- else NULL (no row matches). From the verified context, like every policy helper.
CREATE FUNCTION app.org_with_role(min_role text) RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED AS $$
DECLARE
    c app.request_context := app.context();
BEGIN
    RETURN CASE WHEN app.role_rank(c.org_role) >= app.role_rank(min_role) THEN c.org_id END;
END $$;
GRANT EXECUTE ON FUNCTION app.org_with_role(text) TO tenantry_runtime;

-- Rewrites the policies of `tables` from one form to the other (`to_scalar` or back).
CREATE PROCEDURE app.rewrite_org_policies(tables text[], to_scalar boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p record;
    array_form text := 'organization_id = ANY \(\( SELECT app\.orgs_with_role\(''([a-z]+)''::text\) AS orgs_with_role\)::uuid\[\]\)';
    scalar_form text := 'organization_id = \( SELECT app\.org_with_role\(''([a-z]+)''::text\) AS org_with_role\)';
    using_expr text;
    check_expr text;
    rewrite text;
BEGIN
    FOR p IN SELECT pol.polname, pol.polrelid::regclass AS tbl, pol.polcmd,
                    pg_get_expr(pol.polqual, pol.polrelid) AS qual,
                    pg_get_expr(pol.polwithcheck, pol.polrelid) AS with_check
               FROM pg_policy pol
              WHERE pol.polrelid = ANY (SELECT ('public.' || t)::regclass FROM unnest(tables) t) LOOP
        IF to_scalar THEN
            using_expr := regexp_replace(p.qual, array_form, 'organization_id = (SELECT app.org_with_role(''\1''))', 'g');
            check_expr := regexp_replace(p.with_check, array_form, 'organization_id = (SELECT app.org_with_role(''\1''))', 'g');
        ELSE
            using_expr := regexp_replace(p.qual, scalar_form, 'organization_id = ANY ((SELECT app.orgs_with_role(''\1''))::uuid[])', 'g');
            check_expr := regexp_replace(p.with_check, scalar_form, 'organization_id = ANY ((SELECT app.orgs_with_role(''\1''))::uuid[])', 'g');
        END IF;
        -- Every policy of these tables has the form being replaced: one left behind is an error.
        IF concat(using_expr, ' ', check_expr) ~ (CASE WHEN to_scalar THEN 'orgs_with_role' ELSE 'org_with_role\(' END) THEN
            RAISE EXCEPTION 'policy % on % was not rewritten: %', p.polname, p.tbl, concat(using_expr, ' ', check_expr);
        END IF;
        rewrite := format('ALTER POLICY %I ON %s', p.polname, p.tbl);
        IF using_expr IS NOT NULL THEN
            rewrite := rewrite || format(' USING (%s)', using_expr);
        END IF;
        IF check_expr IS NOT NULL THEN
            rewrite := rewrite || format(' WITH CHECK (%s)', check_expr);
        END IF;
        EXECUTE rewrite;
    END LOOP;
END $$;

CALL app.rewrite_org_policies(ARRAY['api_keys', 'customer_fields', 'customers', 'goal_kpis', 'goals',
    'kpi_data_points', 'kpis', 'outbox', 'projects', 'tasks', 'team_members', 'teams'], true);

-- Tables protected from now on get the scalar form.
CREATE OR REPLACE PROCEDURE app.protect_tenant_table(tbl regclass, read_role text, write_role text, delete_role text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = tbl);
    in_org text := 'organization_id = (SELECT app.org_with_role(%L))';
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('CREATE POLICY %I ON %s FOR SELECT USING (' || in_org || ')', name || '_select', tbl, read_role);
    EXECUTE format('CREATE POLICY %I ON %s FOR INSERT WITH CHECK (' || in_org || ')', name || '_insert', tbl, write_role);
    EXECUTE format('CREATE POLICY %I ON %s FOR UPDATE USING (' || in_org || ') WITH CHECK (' || in_org || ')',
                   name || '_update', tbl, write_role, write_role);
    EXECUTE format('CREATE POLICY %I ON %s FOR DELETE USING (' || in_org || ')', name || '_delete', tbl, delete_role);
END $$;
