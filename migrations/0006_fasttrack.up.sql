-- Fast Track (seed 003): coaching tools, each in its own schema `sprint_NN_slug` holding the
-- users' entries (`tool_data`, JSONB validated against the tool's JSON Schema by the service,
-- status and version kept by the database) and their history (`audit_log`). This migration builds
-- what every tool shares; each tool then comes with one manifest (tools/sprint_NN_slug.json) and
-- one migration that calls tool_access.install_tool with it.
--
-- The seed's shared schemas map onto the tenancy core: users.accounts/profiles are public.users
-- and profiles, organizations.companies/teams are public.organizations and teams (+ team_members),
-- audit.events is audit.events. tool_access is this schema.

CREATE SCHEMA tool_access;
GRANT USAGE ON SCHEMA tool_access TO tenantry_runtime;

-- The registry, filled from the manifests by the tool migrations. Global: everyone reads it.
CREATE TABLE tool_access.tools (
    slug         text PRIMARY KEY CHECK (slug ~ '^[a-z][a-z0-9_]{0,40}$'),
    sprint       int NOT NULL UNIQUE CHECK (sprint BETWEEN 0 AND 99),
    schema_name  text NOT NULL UNIQUE,
    name         text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '',
    -- JSON Schema of an entry's `data`.
    data_schema  jsonb NOT NULL CHECK (jsonb_typeof(data_schema) = 'object'),
    -- Fields of `data` naming an entry of another tool: {"field": "other_slug"} (checked by the service).
    refs         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(refs) = 'object'),
    -- The tool's own normalized tables besides tool_data and audit_log.
    tables       text[] NOT NULL DEFAULT '{}',
    installed_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE tool_access.tools ENABLE ROW LEVEL SECURITY;
ALTER TABLE tool_access.tools FORCE ROW LEVEL SECURITY;
CREATE POLICY tools_select ON tool_access.tools FOR SELECT USING (true);
GRANT SELECT ON tool_access.tools TO tenantry_runtime;

-- Grants: who may use which tool in an organization, up to when. Organization admins and owners
-- hold `admin` on every tool without a grant.
CREATE TABLE tool_access.permissions (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL,
    tool_slug       text NOT NULL REFERENCES tool_access.tools (slug) ON DELETE CASCADE,
    access_level    text NOT NULL CHECK (access_level IN ('view', 'edit', 'admin')),
    granted_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    granted_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, user_id, tool_slug),
    -- Only members of the organization can hold a grant in it; leaving ends the grants.
    FOREIGN KEY (organization_id, user_id) REFERENCES organization_members (organization_id, user_id) ON DELETE CASCADE
);
CREATE INDEX permissions_user ON tool_access.permissions (user_id, tool_slug);

-- Progress per member and tool, kept by the database from the member's entries.
CREATE TABLE tool_access.progress (
    id                  uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tool_slug           text NOT NULL REFERENCES tool_access.tools (slug) ON DELETE CASCADE,
    status              text NOT NULL DEFAULT 'not_started'
                        CHECK (status IN ('not_started', 'in_progress', 'completed')),
    progress_percentage int NOT NULL DEFAULT 0 CHECK (progress_percentage BETWEEN 0 AND 100),
    last_accessed_at    timestamptz,
    completed_at        timestamptz,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, user_id, tool_slug)
);
CREATE INDEX progress_user ON tool_access.progress (user_id, tool_slug);

CREATE FUNCTION tool_access.level_rank(level text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE level WHEN 'view' THEN 1 WHEN 'edit' THEN 2 WHEN 'admin' THEN 3 END
$$;
GRANT EXECUTE ON FUNCTION tool_access.level_rank(text) TO tenantry_runtime;

-- Organizations where the acting user holds at least `min_level` on `tool`: as an organization
-- admin or owner, or through a grant that has not expired. API keys hold none (entries belong to
-- people). Narrowed to app.org_id when the request names one. Called once per statement by the
-- policies below.
CREATE FUNCTION tool_access.orgs_with_access(tool text, min_level text) RETURNS uuid[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF app.user_id() IS NULL THEN
        RETURN '{}';
    END IF;
    RETURN (SELECT coalesce(array_agg(m.organization_id), '{}')
              FROM public.organization_members m
              LEFT JOIN tool_access.permissions p
                     ON p.organization_id = m.organization_id AND p.user_id = m.user_id
                    AND p.tool_slug = tool AND (p.expires_at IS NULL OR p.expires_at > now())
             WHERE m.user_id = app.user_id()
               AND (app.org_id() IS NULL OR m.organization_id = app.org_id())
               AND (m.role IN ('admin', 'owner')
                    OR tool_access.level_rank(p.access_level) >= tool_access.level_rank(min_level)));
END $$;
GRANT EXECUTE ON FUNCTION tool_access.orgs_with_access(text, text) TO tenantry_runtime;

-- Grants: admins manage them; members see their own.
ALTER TABLE tool_access.permissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE tool_access.permissions FORCE ROW LEVEL SECURITY;
CREATE POLICY permissions_select ON tool_access.permissions FOR SELECT
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[])
           OR (user_id = (SELECT app.user_id()) AND organization_id = ANY ((SELECT app.orgs_with_role('viewer'))::uuid[])));
CREATE POLICY permissions_insert ON tool_access.permissions FOR INSERT
    WITH CHECK (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));
CREATE POLICY permissions_update ON tool_access.permissions FOR UPDATE
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]))
    WITH CHECK (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));
CREATE POLICY permissions_delete ON tool_access.permissions FOR DELETE
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));
GRANT SELECT, DELETE ON tool_access.permissions TO tenantry_runtime;
GRANT INSERT (organization_id, user_id, tool_slug, access_level, expires_at) ON tool_access.permissions TO tenantry_runtime;
GRANT UPDATE (access_level, expires_at) ON tool_access.permissions TO tenantry_runtime;

-- Who granted and when is the database's to say.
CREATE FUNCTION tool_access.stamp_grant() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.granted_by := app.user_id();
    NEW.granted_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER stamp_grant BEFORE INSERT OR UPDATE ON tool_access.permissions
    FOR EACH ROW EXECUTE FUNCTION tool_access.stamp_grant();

-- Progress: members see their own, admins everyone's; nobody writes it but the database.
ALTER TABLE tool_access.progress ENABLE ROW LEVEL SECURITY;
ALTER TABLE tool_access.progress FORCE ROW LEVEL SECURITY;
CREATE POLICY progress_select ON tool_access.progress FOR SELECT
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[])
           OR (user_id = (SELECT app.user_id()) AND organization_id = ANY ((SELECT app.orgs_with_role('viewer'))::uuid[])));
GRANT SELECT ON tool_access.progress TO tenantry_runtime;

CALL audit.attach('tool_access.permissions');
CALL audit.attach('tool_access.progress');

-- Whether this transaction is the owner's archival or restore (tool_access.archive_entries /
-- restore_entries): the runtime role can set the setting but is never the session user here.
CREATE FUNCTION tool_access.archiving() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT current_setting('app.archiving', true) = 'on' AND session_user = 'tenantry_owner'
$$;
GRANT EXECUTE ON FUNCTION tool_access.archiving() TO tenantry_runtime;

-- Entry status: draft -> in_progress -> completed -> submitted; a completed entry may be reopened
-- (back to in_progress); a submitted one is final. completed_at and submitted_at are set here,
-- version counts every change (the service compares it for optimistic concurrency).
CREATE FUNCTION tool_access.entry_rules() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF tool_access.archiving() THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.status NOT IN ('draft', 'in_progress') THEN
            RAISE EXCEPTION 'a new entry starts as draft or in_progress, not %', NEW.status
                USING ERRCODE = 'check_violation', CONSTRAINT = 'entry_status_transition';
        END IF;
        NEW.version := 1;
        NEW.created_at := now();
        NEW.updated_at := now();
        NEW.completed_at := NULL;
        NEW.submitted_at := NULL;
        RETURN NEW;
    END IF;
    IF OLD.status = 'submitted' THEN
        RAISE EXCEPTION 'a submitted entry cannot change'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'entry_status_transition';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND (OLD.status, NEW.status) NOT IN (
           ('draft', 'in_progress'), ('in_progress', 'completed'),
           ('completed', 'in_progress'), ('completed', 'submitted')) THEN
        RAISE EXCEPTION 'an entry cannot go from % to %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'entry_status_transition';
    END IF;
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    NEW.completed_at := CASE WHEN NEW.status IN ('completed', 'submitted')
                             THEN coalesce(OLD.completed_at, now()) END;
    NEW.submitted_at := CASE WHEN NEW.status = 'submitted' THEN now() END;
    RETURN NEW;
END $$;

-- After every change of an entry: its history row in the tool's audit_log, and its owner's
-- progress on the tool (from the best status among their entries). Runs as the owner: the
-- runtime role can write neither table.
CREATE FUNCTION tool_access.after_entry_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tool text := TG_ARGV[0];
    entry record := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    changes jsonb := '{}';
    best int;
BEGIN
    -- Archiving and restoring move entries without changing them: no history row, same progress.
    IF tool_access.archiving() THEN
        RETURN NULL;
    END IF;
    -- An entry removed because its organization or its author is being deleted leaves nothing
    -- to record (and nothing to record it against).
    IF TG_OP = 'DELETE' AND (NOT EXISTS (SELECT FROM public.organizations o WHERE o.id = OLD.organization_id)
                             OR NOT EXISTS (SELECT FROM public.users u WHERE u.id = OLD.user_id)) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        changes := jsonb_build_object('data', jsonb_build_object('to', NEW.data),
                                      'status', jsonb_build_object('to', NEW.status));
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.data IS DISTINCT FROM OLD.data THEN
            changes := changes || jsonb_build_object('data', jsonb_build_object('from', OLD.data, 'to', NEW.data));
        END IF;
        IF NEW.status IS DISTINCT FROM OLD.status THEN
            changes := changes || jsonb_build_object('status', jsonb_build_object('from', OLD.status, 'to', NEW.status));
        END IF;
    ELSE
        changes := jsonb_build_object('data', jsonb_build_object('from', OLD.data),
                                      'status', jsonb_build_object('from', OLD.status));
    END IF;
    EXECUTE format('INSERT INTO %I.audit_log (organization_id, tool_data_id, entry_user_id, user_id, action, version, changes)
                    VALUES ($1, $2, $3, $4, $5, $6, $7)', TG_TABLE_SCHEMA)
        USING entry.organization_id, entry.id, entry.user_id, app.user_id(), lower(TG_OP),
              CASE WHEN TG_OP = 'DELETE' THEN OLD.version ELSE NEW.version END, changes;

    -- One writer at a time per member and tool, so that the best status read below is current.
    PERFORM pg_advisory_xact_lock(hashtextextended(entry.organization_id::text || entry.user_id::text || tool, 0));
    EXECUTE format('SELECT max(CASE status WHEN ''draft'' THEN 10 WHEN ''in_progress'' THEN 50 ELSE 100 END)
                      FROM (SELECT status FROM %I.tool_data WHERE organization_id = $1 AND user_id = $2
                            UNION ALL
                            SELECT status FROM tool_access.archive
                             WHERE organization_id = $1 AND user_id = $2 AND tool_slug = $3) s', TG_TABLE_SCHEMA)
        INTO best USING entry.organization_id, entry.user_id, tool;
    INSERT INTO tool_access.progress AS p (organization_id, user_id, tool_slug, status, progress_percentage,
                                           last_accessed_at, completed_at)
    VALUES (entry.organization_id, entry.user_id, tool,
            CASE WHEN best IS NULL THEN 'not_started' WHEN best = 100 THEN 'completed' ELSE 'in_progress' END,
            coalesce(best, 0), now(), CASE WHEN best = 100 THEN now() END)
    ON CONFLICT (organization_id, user_id, tool_slug) DO UPDATE
       SET status = excluded.status, progress_percentage = excluded.progress_percentage,
           last_accessed_at = excluded.last_accessed_at,
           completed_at = CASE WHEN excluded.status = 'completed' THEN coalesce(p.completed_at, now()) END;
    RETURN NULL;
END $$;

-- Global audit events of a tool's tables carry the tool's slug.
CREATE FUNCTION tool_access.tag_tool_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.tool_slug := (SELECT t.slug FROM tool_access.tools t WHERE t.schema_name = split_part(NEW.entity_type, '.', 1));
    RETURN NEW;
END $$;
CREATE TRIGGER tag_tool_event BEFORE INSERT ON audit.events
    FOR EACH ROW WHEN (NEW.entity_type LIKE 'sprint\_%') EXECUTE FUNCTION tool_access.tag_tool_event();

-- Reporting (seed: materialized views for reporting). Per organization and tool: entries by
-- status (entry_report, over every tool's tool_data, rebuilt when a tool is installed or removed)
-- and members' progress (progress_report). Refreshed concurrently by `tenantry tools
-- refresh-reports`. Materialized views have no RLS: the runtime role has no grant on them and
-- reads them only through tool_access.report(org), which answers for organizations the caller
-- administers.
CREATE PROCEDURE tool_access.rebuild_reports()
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    entries text;
BEGIN
    SELECT string_agg(format('SELECT organization_id, %L::text AS tool_slug, status, updated_at FROM %I.tool_data',
                             slug, schema_name), ' UNION ALL ' ORDER BY sprint)
      INTO entries FROM tool_access.tools;
    DROP MATERIALIZED VIEW IF EXISTS tool_access.entry_report;
    EXECUTE format('CREATE MATERIALIZED VIEW tool_access.entry_report AS
                    SELECT organization_id, tool_slug, status, count(*) AS entries, max(updated_at) AS last_change
                      FROM (%s) e GROUP BY 1, 2, 3',
                   coalesce(entries, 'SELECT NULL::uuid AS organization_id, NULL::text AS tool_slug,
                                             NULL::text AS status, NULL::timestamptz AS updated_at WHERE false'));
    CREATE UNIQUE INDEX entry_report_key ON tool_access.entry_report (organization_id, tool_slug, status);
END $$;
CALL tool_access.rebuild_reports();

CREATE MATERIALIZED VIEW tool_access.progress_report AS
    SELECT organization_id, tool_slug, count(*) AS members,
           count(*) FILTER (WHERE status = 'completed') AS members_completed,
           round(avg(progress_percentage), 1) AS average_progress
      FROM tool_access.progress GROUP BY 1, 2;
CREATE UNIQUE INDEX progress_report_key ON tool_access.progress_report (organization_id, tool_slug);

-- The report of one organization, for its admins (nothing for anyone else).
CREATE FUNCTION tool_access.report(org uuid)
RETURNS TABLE (tool_slug text, draft bigint, in_progress bigint, completed bigint, submitted bigint,
               last_change timestamptz, members bigint, members_completed bigint, average_progress numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.slug,
           coalesce(sum(e.entries) FILTER (WHERE e.status = 'draft'), 0)::bigint,
           coalesce(sum(e.entries) FILTER (WHERE e.status = 'in_progress'), 0)::bigint,
           coalesce(sum(e.entries) FILTER (WHERE e.status = 'completed'), 0)::bigint,
           coalesce(sum(e.entries) FILTER (WHERE e.status = 'submitted'), 0)::bigint,
           max(e.last_change),
           coalesce(max(p.members), 0), coalesce(max(p.members_completed), 0), max(p.average_progress)
      FROM tool_access.tools t
      LEFT JOIN tool_access.entry_report e ON e.organization_id = org AND e.tool_slug = t.slug
      LEFT JOIN tool_access.progress_report p ON p.organization_id = org AND p.tool_slug = t.slug
     WHERE org = ANY (app.orgs_with_role('admin'))
     GROUP BY t.slug, t.sprint
     ORDER BY t.sprint
$$;
GRANT EXECUTE ON FUNCTION tool_access.report(uuid) TO tenantry_runtime;

-- Archive (seed: archive completed entries after 2 years, compressed). Entries keep every column;
-- rows over 128 bytes are compressed by TOAST (lz4 where the server has it). Their history stays in
-- the tool's audit_log. Organization admins can read the archive; only the owner moves rows.
CREATE TABLE tool_access.archive (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id              uuid NOT NULL,
    tool_slug       text NOT NULL REFERENCES tool_access.tools (slug) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    data            jsonb NOT NULL,
    -- The entry's rows in its tool's own tables: {"hypotheses": [row, ...]}.
    rows            jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL,
    version         int NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    submitted_at    timestamptz,
    completed_at    timestamptz,
    archived_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
) WITH (toast_tuple_target = 128);
CREATE INDEX archive_tool ON tool_access.archive (tool_slug, archived_at);
CREATE INDEX archive_member ON tool_access.archive (organization_id, user_id, tool_slug);
DO $$
BEGIN
    ALTER TABLE tool_access.archive ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL; -- a server built without lz4 keeps pglz
END $$;
ALTER TABLE tool_access.archive ENABLE ROW LEVEL SECURITY;
ALTER TABLE tool_access.archive FORCE ROW LEVEL SECURITY;
CREATE POLICY archive_select ON tool_access.archive FOR SELECT
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));
GRANT SELECT ON tool_access.archive TO tenantry_runtime;
CALL audit.attach('tool_access.archive', mode => 'summary');

-- Moves up to `batch` entries of `tool` completed before `completed_before` into the archive;
-- returns how many. Each call is one transaction: interrupted work is either done or not.
CREATE FUNCTION tool_access.archive_entries(tool text, completed_before timestamptz, batch int) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t tool_access.tools := (SELECT x FROM tool_access.tools x WHERE x.slug = tool);
    -- {"table": [rows of the entry]} for each of the tool's own tables.
    own_rows text := coalesce(
        (SELECT 'jsonb_build_object(' || string_agg(format(
                    '%L, (SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.id), ''[]'') FROM %I.%I c
                          WHERE c.organization_id = gone.organization_id AND c.tool_data_id = gone.id)',
                    own, t.schema_name, own), ', ') || ')'
           FROM unnest(t.tables) own),
        '''{}''::jsonb');
    moved int;
BEGIN
    PERFORM set_config('app.archiving', 'on', true);
    -- The entries' own rows go with them (ON DELETE CASCADE); the statement reads them before.
    EXECUTE format(
        'WITH picked AS (SELECT organization_id, id FROM %1$I.tool_data
                          WHERE status IN (''completed'', ''submitted'') AND completed_at < $1
                          ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED),
              gone AS (DELETE FROM %1$I.tool_data d USING picked p
                        WHERE d.organization_id = p.organization_id AND d.id = p.id RETURNING d.*)
         INSERT INTO tool_access.archive (organization_id, id, tool_slug, user_id, data, rows, status, version,
                                          created_at, updated_at, submitted_at, completed_at)
         SELECT organization_id, id, $3, user_id, data, %2$s, status, version, created_at, updated_at,
                submitted_at, completed_at FROM gone',
        t.schema_name, own_rows)
        USING completed_before, batch, tool;
    GET DIAGNOSTICS moved = ROW_COUNT;
    PERFORM set_config('app.archiving', '', true);
    RETURN moved;
END $$;

-- Brings up to `batch` archived entries of `tool` (of one organization, or all) back with their
-- own rows; returns how many.
CREATE FUNCTION tool_access.restore_entries(tool text, org uuid, batch int) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t tool_access.tools := (SELECT x FROM tool_access.tools x WHERE x.slug = tool);
    keys uuid[];
    own text;
BEGIN
    PERFORM set_config('app.archiving', 'on', true);
    SELECT array_agg(a.id) INTO keys FROM (
        SELECT id FROM tool_access.archive
         WHERE tool_slug = tool AND (org IS NULL OR organization_id = org)
         ORDER BY archived_at LIMIT batch FOR UPDATE SKIP LOCKED) a;
    IF keys IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format(
        'INSERT INTO %I.tool_data (organization_id, id, user_id, data, status, version, created_at,
                                   updated_at, submitted_at, completed_at)
         SELECT organization_id, id, user_id, data, status, version, created_at, updated_at,
                submitted_at, completed_at FROM tool_access.archive WHERE tool_slug = $1 AND id = ANY ($2)',
        t.schema_name) USING tool, keys;
    FOREACH own IN ARRAY t.tables LOOP
        EXECUTE format(
            'INSERT INTO %1$I.%2$I SELECT r.* FROM tool_access.archive a,
                    jsonb_populate_recordset(NULL::%1$I.%2$I, a.rows -> %2$L) r
              WHERE a.tool_slug = $1 AND a.id = ANY ($2)',
            t.schema_name, own) USING tool, keys;
    END LOOP;
    DELETE FROM tool_access.archive WHERE tool_slug = tool AND id = ANY (keys);
    PERFORM set_config('app.archiving', '', true);
    RETURN cardinality(keys);
END $$;

-- Retention (seed: keep audit logs for 7 years): removes up to `batch` global audit events and
-- tool history rows older than `before`; returns how many. Audit events are otherwise
-- append-only, even for the owner.
CREATE FUNCTION tool_access.purge_audit(before timestamptz, batch int) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    purged int;
    more int;
    tool record;
BEGIN
    IF before > now() - interval '7 years' THEN
        RAISE EXCEPTION 'audit events are kept for 7 years; % is too recent', before
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('app.purging_audit', 'on', true);
    DELETE FROM audit.events WHERE id IN (
        SELECT id FROM audit.events WHERE occurred_at < before ORDER BY occurred_at LIMIT batch);
    GET DIAGNOSTICS purged = ROW_COUNT;
    FOR tool IN SELECT schema_name FROM tool_access.tools LOOP
        EXECUTE format('DELETE FROM %1$I.audit_log WHERE (organization_id, id) IN (
                          SELECT organization_id, id FROM %1$I.audit_log WHERE occurred_at < $1 LIMIT $2)',
                       tool.schema_name) USING before, batch;
        GET DIAGNOSTICS more = ROW_COUNT;
        purged := purged + more;
    END LOOP;
    PERFORM set_config('app.purging_audit', '', true);
    RETURN purged;
END $$;

-- Retention removes the oldest events first.
CREATE INDEX events_time ON audit.events (occurred_at);

-- audit.events stays append-only except for purge_audit's retention run by the owner.
CREATE OR REPLACE FUNCTION audit.forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('app.purging_audit', true) = 'on'
       AND session_user = 'tenantry_owner' AND OLD.occurred_at < now() - interval '7 years' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only' USING ERRCODE = 'insufficient_privilege';
END $$;

-- Installs a tool from its manifest: the registry row, the schema sprint_NN_slug with tool_data
-- and audit_log, their indexes, triggers, policies and grants. The tool's own tables come after
-- this call in its migration.
CREATE PROCEDURE tool_access.install_tool(manifest jsonb)
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
    -- the queries: a member's entries newest first (within the request's organization), an
    -- organization's by status, open entries.
    EXECUTE format('CREATE INDEX ON %s (organization_id, user_id, updated_at DESC)', data);
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

-- Removes a tool: its schema with every entry and its history, its grants and progress, its
-- registry row. The global audit events stay.
CREATE PROCEDURE tool_access.uninstall_tool(tool text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('DROP SCHEMA %I CASCADE', (SELECT schema_name FROM tool_access.tools WHERE slug = tool));
    DELETE FROM tool_access.tools WHERE slug = tool;
    CALL tool_access.rebuild_reports();
END $$;

-- Protects a tool's own table whose rows belong to an entry (organization_id, tool_data_id): rows
-- are seen as their entry is, and written by whoever may write the entry while it is not
-- submitted. Audited like every tenant table.
CREATE PROCEDURE tool_access.protect_entry_table(tbl regclass, tool text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    entries text := format('%I.tool_data', (SELECT schema_name FROM tool_access.tools WHERE slug = tool));
    visible text := format('EXISTS (SELECT FROM %s d WHERE d.organization_id = %s.organization_id AND d.id = %s.tool_data_id)',
                           entries, tbl, tbl);
    writable text := format('EXISTS (SELECT FROM %s d WHERE d.organization_id = %s.organization_id AND d.id = %s.tool_data_id
                                       AND d.user_id = (SELECT app.user_id()) AND d.status <> ''submitted''
                                       AND d.organization_id = ANY ((SELECT tool_access.orgs_with_access(%L, ''edit''))::uuid[]))',
                            entries, tbl, tbl, tool);
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('CREATE POLICY entry_rows_select ON %s FOR SELECT USING (%s)', tbl, visible);
    EXECUTE format('CREATE POLICY entry_rows_insert ON %s FOR INSERT WITH CHECK (%s)', tbl, writable);
    EXECUTE format('CREATE POLICY entry_rows_update ON %s FOR UPDATE USING (%s) WITH CHECK (%s)', tbl, writable, writable);
    EXECUTE format('CREATE POLICY entry_rows_delete ON %s FOR DELETE USING (%s)', tbl, writable);
    -- INSERT and UPDATE are granted by the tool's migration on its own columns (never id or
    -- created_at; the keys on INSERT only).
    EXECUTE format('GRANT SELECT, DELETE ON %s TO tenantry_runtime', tbl);
    EXECUTE format('CALL audit.attach(%L)', tbl);
END $$;
