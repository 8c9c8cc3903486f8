-- Reverts 0051_audit_partitioned_by_month: one plain table again, every event kept.
DELETE FROM queue.schedules WHERE name = 'audit-partitions';

ALTER TABLE audit.events RENAME TO events_partitioned;
ALTER TABLE audit.events_partitioned RENAME CONSTRAINT events_pkey TO events_partitioned_pkey;
ALTER INDEX audit.events_org_id RENAME TO events_partitioned_org_id;
ALTER INDEX audit.events_org_time RENAME TO events_partitioned_org_time;
ALTER INDEX audit.events_user_time RENAME TO events_partitioned_user_time;
ALTER INDEX audit.events_entity RENAME TO events_partitioned_entity;
ALTER INDEX audit.events_tool_time RENAME TO events_partitioned_tool_time;
ALTER INDEX audit.events_time RENAME TO events_partitioned_time;

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
CREATE INDEX events_time ON audit.events (occurred_at);
ALTER TABLE audit.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit.events FORCE ROW LEVEL SECURITY;
DO $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT polname, pg_get_expr(polqual, polrelid) AS qual
               FROM pg_policy WHERE polrelid = 'audit.events_partitioned'::regclass LOOP
        EXECUTE format('CREATE POLICY %I ON audit.events FOR SELECT USING (%s)', p.polname, p.qual);
    END LOOP;
END $$;
GRANT SELECT ON audit.events TO tenantry_runtime;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON audit.events
    FOR EACH ROW EXECUTE FUNCTION audit.forbid_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON audit.events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.forbid_change();
CREATE TRIGGER tag_tool_event BEFORE INSERT ON audit.events
    FOR EACH ROW WHEN (NEW.entity_type LIKE 'sprint\_%') EXECUTE FUNCTION tool_access.tag_tool_event();

ALTER TABLE audit.events DISABLE TRIGGER tag_tool_event;
INSERT INTO audit.events SELECT * FROM audit.events_partitioned ORDER BY id;
ALTER TABLE audit.events ENABLE TRIGGER tag_tool_event;
DO $$
BEGIN
    IF (SELECT count(*) FROM audit.events) <> (SELECT count(*) FROM audit.events_partitioned) THEN
        RAISE EXCEPTION 'audit events were not all moved';
    END IF;
END $$;
DROP TABLE audit.events_partitioned;
DROP FUNCTION audit.drop_oldest_month(timestamptz);
DROP FUNCTION audit.ensure_partitions(int, timestamptz);
DROP FUNCTION audit.make_partition(text, text);

CREATE OR REPLACE FUNCTION tool_access.purge_audit(before timestamptz, batch int) RETURNS int
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
