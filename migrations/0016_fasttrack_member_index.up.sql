-- A member's entries of a tool are listed through (organization_id, user_id, id), walked in the
-- listing's id order, instead of (organization_id, user_id, updated_at DESC): with the latter the
-- planner walked the organization's primary key and filtered, reading every entry of the
-- organization to list a member's few (issue 13). Their latest entries across tools read these
-- few and sort them. Existing tools get the new index; tools installed later are made with it.
DO $$
DECLARE
    tool record;
    old_index regclass;
BEGIN
    FOR tool IN SELECT schema_name FROM tool_access.tools LOOP
        SELECT i.indexrelid::regclass INTO old_index
          FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = format('%I.tool_data', tool.schema_name)::regclass
           AND pg_get_indexdef(i.indexrelid) LIKE '%(organization_id, user_id, updated_at DESC)';
        EXECUTE format('CREATE INDEX tool_data_member ON %I.tool_data (organization_id, user_id, id)', tool.schema_name);
        EXECUTE format('DROP INDEX %s', old_index);
    END LOOP;
END $$;

CREATE OR REPLACE PROCEDURE tool_access.install_tool(manifest jsonb)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    slug text := manifest ->> 'slug';
    schema text := format('sprint_%s_%s', lpad(manifest ->> 'sprint', 2, '0'), manifest ->> 'slug');
    data text;
    read_own text;
    write_own text;
    path text;
BEGIN
    INSERT INTO tool_access.tools (slug, sprint, schema_name, name, description, data_schema, refs, tables)
    VALUES (slug, (manifest ->> 'sprint')::int, schema, manifest ->> 'name', coalesce(manifest ->> 'description', ''),
            manifest -> 'data_schema', coalesce(manifest -> 'refs', '{}'),
            ARRAY(SELECT jsonb_array_elements_text(coalesce(manifest -> 'tables', '[]'))));
    EXECUTE format('CREATE SCHEMA %I', schema);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO tenantry_runtime', schema);
    data := format('%I.tool_data', schema);

    EXECUTE format($t$
        CREATE TABLE %s (
            id              uuid NOT NULL DEFAULT app.uuid_v7(),
            organization_id uuid NOT NULL REFERENCES public.organizations (id) ON DELETE CASCADE,
            user_id         uuid NOT NULL DEFAULT app.user_id() REFERENCES public.users (id) ON DELETE CASCADE,
            data            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(data) = 'object'),
            status          text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'in_progress', 'completed', 'submitted')),
            version         int NOT NULL DEFAULT 1,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now(),
            submitted_at    timestamptz,
            completed_at    timestamptz,
            PRIMARY KEY (organization_id, id),
            CHECK ((status = 'submitted') = (submitted_at IS NOT NULL)),
            CHECK ((status IN ('completed', 'submitted')) = (completed_at IS NOT NULL))
        )$t$, data);
    -- The seed's indexes (user, organization, status, updated_at DESC, GIN on data), shaped for
    -- the queries: a member's entries in id order (within the request's organization; their
    -- latest ones are these few sorted), an organization's by status, open entries.
    EXECUTE format('CREATE INDEX tool_data_member ON %s (organization_id, user_id, id)', data);
    EXECUTE format('CREATE INDEX ON %s (organization_id, status, updated_at DESC)', data);
    EXECUTE format('CREATE INDEX ON %s (organization_id, user_id) WHERE status IN (''draft'', ''in_progress'')', data);
    EXECUTE format('CREATE INDEX ON %s USING gin (data jsonb_path_ops)', data);
    -- Archival picks completed entries oldest first.
    EXECUTE format('CREATE INDEX ON %s (completed_at) WHERE status IN (''completed'', ''submitted'')', data);
    FOR path IN SELECT jsonb_array_elements_text(coalesce(manifest -> 'indexed_fields', '[]')) LOOP
        EXECUTE format('CREATE INDEX ON %s ((data ->> %L))', data, path);
    END LOOP;

    EXECUTE format($t$
        CREATE TABLE %I.audit_log (
            id              uuid NOT NULL DEFAULT app.uuid_v7(),
            organization_id uuid NOT NULL REFERENCES public.organizations (id) ON DELETE CASCADE,
            tool_data_id    uuid NOT NULL,
            -- Whose entry it is, and who changed it.
            entry_user_id   uuid NOT NULL,
            user_id         uuid,
            action          text NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
            version         int NOT NULL,
            changes         jsonb NOT NULL,
            occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (organization_id, id)
        )$t$, schema);
    EXECUTE format('CREATE INDEX ON %I.audit_log (organization_id, tool_data_id, version)', schema);
    EXECUTE format('CREATE INDEX ON %I.audit_log (occurred_at)', schema);

    EXECUTE format('CREATE TRIGGER entry_rules BEFORE INSERT OR UPDATE ON %s
                    FOR EACH ROW EXECUTE FUNCTION tool_access.entry_rules()', data);
    EXECUTE format('CREATE TRIGGER after_entry_change AFTER INSERT OR UPDATE OR DELETE ON %s
                    FOR EACH ROW EXECUTE FUNCTION tool_access.after_entry_change(%L)', data, slug);
    EXECUTE format('CALL audit.attach(%L)', data);

    -- Who sees and changes what: tool admins (organization admins, or an admin grant) every entry
    -- of their organization; everyone else their own entries, reading with a view grant and
    -- writing with an edit grant. An expired grant counts for nothing.
    read_own := format('(organization_id = ANY ((SELECT tool_access.orgs_with_access(%L, ''admin''))::uuid[])
                         OR (%%s = (SELECT app.user_id())
                             AND organization_id = ANY ((SELECT tool_access.orgs_with_access(%L, ''view''))::uuid[])))',
                       slug, slug);
    write_own := format('(user_id = (SELECT app.user_id())
                          AND organization_id = ANY ((SELECT tool_access.orgs_with_access(%L, ''edit''))::uuid[]))', slug);
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', data);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', data);
    EXECUTE format('CREATE POLICY tool_data_select ON %s FOR SELECT USING %s', data, format(read_own, 'user_id'));
    EXECUTE format('CREATE POLICY tool_data_insert ON %s FOR INSERT WITH CHECK %s', data, write_own);
    EXECUTE format('CREATE POLICY tool_data_update ON %s FOR UPDATE USING %s WITH CHECK %s', data, write_own, write_own);
    EXECUTE format('CREATE POLICY tool_data_delete ON %s FOR DELETE
                    USING (organization_id = ANY ((SELECT tool_access.orgs_with_access(%L, ''admin''))::uuid[]))', data, slug);
    EXECUTE format('GRANT SELECT, DELETE ON %s TO tenantry_runtime', data);
    EXECUTE format('GRANT INSERT (organization_id, data, status) ON %s TO tenantry_runtime', data);
    EXECUTE format('GRANT UPDATE (data, status) ON %s TO tenantry_runtime', data);

    -- History is visible as its entry is; it is written only by after_entry_change.
    EXECUTE format('ALTER TABLE %I.audit_log ENABLE ROW LEVEL SECURITY', schema);
    EXECUTE format('ALTER TABLE %I.audit_log FORCE ROW LEVEL SECURITY', schema);
    EXECUTE format('CREATE POLICY audit_log_select ON %I.audit_log FOR SELECT USING %s', schema, format(read_own, 'entry_user_id'));
    EXECUTE format('GRANT SELECT ON %I.audit_log TO tenantry_runtime', schema);
    CALL tool_access.rebuild_reports();
END $$;
