-- Reverts 0018_bound_org_policies.
CALL app.rewrite_org_policies(ARRAY['api_keys', 'customer_fields', 'customers', 'goal_kpis', 'goals',
    'kpi_data_points', 'kpis', 'outbox', 'projects', 'tasks', 'team_members', 'teams'], false);
CREATE OR REPLACE PROCEDURE app.protect_tenant_table(tbl regclass, read_role text, write_role text, delete_role text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = tbl);
    member_of text := 'organization_id = ANY ((SELECT app.orgs_with_role(%L))::uuid[])';
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('CREATE POLICY %I ON %s FOR SELECT USING (' || member_of || ')', name || '_select', tbl, read_role);
    EXECUTE format('CREATE POLICY %I ON %s FOR INSERT WITH CHECK (' || member_of || ')', name || '_insert', tbl, write_role);
    EXECUTE format('CREATE POLICY %I ON %s FOR UPDATE USING (' || member_of || ') WITH CHECK (' || member_of || ')',
                   name || '_update', tbl, write_role, write_role);
    EXECUTE format('CREATE POLICY %I ON %s FOR DELETE USING (' || member_of || ')', name || '_delete', tbl, delete_role);
END $$;
DROP PROCEDURE app.rewrite_org_policies(text[], boolean);
DROP FUNCTION app.org_with_role(text);
