-- Platform: privileges, helper schema `app`, the audit trail.
-- Runs as the owner role. The runtime role (tenantry_runtime) must already exist.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenantry_runtime') THEN
        RAISE EXCEPTION 'role tenantry_runtime does not exist: create it first (README, "External PostgreSQL")';
    END IF;
END $$;

-- Nobody but the owner creates anything: not in public, not temporary tables.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO tenantry_runtime;
-- Functions are private unless granted one by one.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

CREATE SCHEMA app;
GRANT USAGE ON SCHEMA app TO tenantry_runtime;

-- Database-level grants are not copied by CREATE DATABASE ... TEMPLATE, so they live in a
-- procedure that clones call again.
CREATE PROCEDURE app.secure_database()
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO tenantry_runtime', current_database());
END $$;
CALL app.secure_database();

-- UUIDv7: time-ordered ids keep indexes compact. (PostgreSQL 15 has no built-in.)
CREATE FUNCTION app.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;
GRANT EXECUTE ON FUNCTION app.uuid_v7() TO tenantry_runtime;

-- The request context, bound per transaction by the service (set_config(..., true)).
-- A setting once set on a connection reads '' afterwards, never NULL: hence NULLIF.
CREATE FUNCTION app.user_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;
CREATE FUNCTION app.session_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.session_id', true), '')::uuid $$;
CREATE FUNCTION app.org_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.org_id', true), '')::uuid $$;
CREATE FUNCTION app.api_key_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.api_key_id', true), '')::uuid $$;
CREATE FUNCTION app.client_ip() RETURNS inet
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.ip', true), '')::inet $$;
CREATE FUNCTION app.user_agent() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.user_agent', true), '') $$;
CREATE FUNCTION app.request_id() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.request_id', true), '') $$;
GRANT EXECUTE ON FUNCTION app.user_id(), app.session_id(), app.org_id(), app.api_key_id(), app.client_ip(),
    app.user_agent(), app.request_id() TO tenantry_runtime;

-- updated_at is the database's job.
CREATE FUNCTION app.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Audit trail (Fast Track audit.events + Strive activity_logs): append-only.
CREATE SCHEMA audit;
GRANT USAGE ON SCHEMA audit TO tenantry_runtime;

CREATE TABLE audit.events (
    id              uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- NULL only for rows of global tables (users, profiles).
    organization_id uuid,
    -- Who: a user, or a service account's API key (no foreign keys: history outlives its actors).
    user_id         uuid,
    api_key_id      uuid,
    action          text NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
    entity_type     text NOT NULL,
    entity_id       uuid,
    old_data        jsonb,
    new_data        jsonb,
    ip_address      inet,
    user_agent      text,
    request_id      text,
    tool_slug       text
);
CREATE INDEX events_org_time ON audit.events (organization_id, occurred_at DESC);
CREATE INDEX events_user_time ON audit.events (user_id, occurred_at DESC);
CREATE INDEX events_entity ON audit.events (entity_type, entity_id);
CREATE INDEX events_tool_time ON audit.events (tool_slug, occurred_at DESC) WHERE tool_slug IS NOT NULL;

ALTER TABLE audit.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit.events FORCE ROW LEVEL SECURITY;
-- Read policy is added with the membership helpers (next migration). No write policy and no
-- write grant: rows arrive only through audit.record_change(), which runs as the owner.
GRANT SELECT ON audit.events TO tenantry_runtime;

CREATE FUNCTION audit.forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON audit.events
    FOR EACH ROW EXECUTE FUNCTION audit.forbid_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON audit.events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.forbid_change();

-- One trigger function for every audited table. Statement-level with transition tables, so a
-- bulk write costs one INSERT ... SELECT, not one insert per row.
-- TG_ARGV[0]: the column holding the organization id ('' for global tables);
-- TG_ARGV[1]: the row's key column (entity_id; pairs old and new rows of an UPDATE);
-- TG_ARGV[2]: 'rows' (one event per row, with old and new data) or 'summary' (for high-volume
--             tables such as time series: one event per organization and key per statement,
--             new_data = {"rows": n});
-- TG_ARGV[3..]: columns never copied into the trail (secrets).
CREATE FUNCTION audit.record_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org_column text := nullif(TG_ARGV[0], '');
    key_column text := TG_ARGV[1];
    summarize boolean := TG_ARGV[2] = 'summary';
    redacted text[] := coalesce(TG_ARGV[3:], '{}');
    entity text := CASE WHEN TG_TABLE_SCHEMA = 'public' THEN TG_TABLE_NAME
                        ELSE TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME END;
    action text := lower(TG_OP);
BEGIN
    IF summarize THEN
        IF TG_OP = 'DELETE' THEN
            INSERT INTO audit.events (organization_id, user_id, api_key_id, action, entity_type, entity_id,
                                      new_data, ip_address, user_agent, request_id)
            SELECT (j ->> org_column)::uuid, app.user_id(), app.api_key_id(), action, entity,
                   (j ->> key_column)::uuid, jsonb_build_object('rows', count(*)), app.client_ip(),
                   app.user_agent(), app.request_id()
              FROM (SELECT to_jsonb(r) AS j FROM old_rows r) o
             GROUP BY j ->> org_column, j ->> key_column;
        ELSE
            INSERT INTO audit.events (organization_id, user_id, api_key_id, action, entity_type, entity_id,
                                      new_data, ip_address, user_agent, request_id)
            SELECT (j ->> org_column)::uuid, app.user_id(), app.api_key_id(), action, entity,
                   (j ->> key_column)::uuid, jsonb_build_object('rows', count(*)), app.client_ip(),
                   app.user_agent(), app.request_id()
              FROM (SELECT to_jsonb(r) AS j FROM new_rows r) n
             GROUP BY j ->> org_column, j ->> key_column;
        END IF;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO audit.events (organization_id, user_id, api_key_id, action, entity_type, entity_id,
                                  new_data, ip_address, user_agent, request_id)
        SELECT (n.j ->> org_column)::uuid, app.user_id(), app.api_key_id(), 'insert', entity,
               (n.j ->> key_column)::uuid, n.j - redacted, app.client_ip(), app.user_agent(), app.request_id()
          FROM (SELECT to_jsonb(r) AS j FROM new_rows r) n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO audit.events (organization_id, user_id, api_key_id, action, entity_type, entity_id,
                                  old_data, new_data, ip_address, user_agent, request_id)
        SELECT (n.j ->> org_column)::uuid, app.user_id(), app.api_key_id(), 'update', entity,
               (n.j ->> key_column)::uuid, o.j - redacted, n.j - redacted, app.client_ip(), app.user_agent(), app.request_id()
          FROM (SELECT to_jsonb(r) AS j FROM new_rows r) n
          JOIN (SELECT to_jsonb(r) AS j FROM old_rows r) o ON o.j -> key_column = n.j -> key_column
         WHERE o.j IS DISTINCT FROM n.j;
    ELSE
        INSERT INTO audit.events (organization_id, user_id, api_key_id, action, entity_type, entity_id,
                                  old_data, ip_address, user_agent, request_id)
        SELECT (o.j ->> org_column)::uuid, app.user_id(), app.api_key_id(), 'delete', entity,
               (o.j ->> key_column)::uuid, o.j - redacted, app.client_ip(), app.user_agent(), app.request_id()
          FROM (SELECT to_jsonb(r) AS j FROM old_rows r) o;
    END IF;
    RETURN NULL;
END $$;

-- Attaches the audit trigger (one per operation: transition tables allow one event each).
CREATE PROCEDURE audit.attach(tbl regclass, org_column text DEFAULT 'organization_id',
                              key_column text DEFAULT 'id', redact text[] DEFAULT '{}',
                              mode text DEFAULT 'rows')
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    args text := array_to_string(
        ARRAY(SELECT quote_literal(a) FROM unnest(ARRAY[org_column, key_column, mode] || redact) a), ', ');
BEGIN
    EXECUTE format('CREATE TRIGGER audit_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION audit.record_change(%s)', tbl, args);
    EXECUTE format('CREATE TRIGGER audit_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION audit.record_change(%s)', tbl, args);
    EXECUTE format('CREATE TRIGGER audit_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION audit.record_change(%s)', tbl, args);
END $$;
