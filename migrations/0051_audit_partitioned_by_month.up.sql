-- The audit trail partitioned by month, so seven years of it stay cheap to keep and to let go:
-- retention drops whole months (instant; no long DELETE, no bloat), and months are made a year
-- ahead by a daily job. Partitioned on occurred_at, the primary key becomes (id, occurred_at)
-- (a partitioned table's keys include its partition key; ids stay unique, being UUIDv7). The
-- activity feed pages by id: each month's (organization_id, id) index gives its newest first and
-- the months are merged, so a page reads a page per month at most, never an organization's whole
-- trail. A default partition takes any event outside the months made (none, while the job
-- runs), so an audited write never fails for want of a partition; retention deletes from it the
-- old way.
--
-- Every partition keeps the guarantees: the parent's indexes and row triggers (append-only, the
-- tool tag) are cloned onto it; TRUNCATE is refused on each one; row-level security is enabled
-- and forced with no policy that opens it (reads go through the parent, whose policy decides;
-- the runtime role has no grant on a partition). Every event is moved, checked by count.

ALTER TABLE audit.events RENAME TO events_unpartitioned;
ALTER TABLE audit.events_unpartitioned RENAME CONSTRAINT events_pkey TO events_unpartitioned_pkey;
ALTER INDEX audit.events_org_time RENAME TO events_unpartitioned_org_time;
ALTER INDEX audit.events_user_time RENAME TO events_unpartitioned_user_time;
ALTER INDEX audit.events_entity RENAME TO events_unpartitioned_entity;
ALTER INDEX audit.events_tool_time RENAME TO events_unpartitioned_tool_time;
ALTER INDEX audit.events_time RENAME TO events_unpartitioned_time;

CREATE TABLE audit.events (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
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
    tool_slug       text,
    CONSTRAINT events_pkey PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);
-- The feed: an organization's events by id (its pages), newest first.
CREATE INDEX events_org_id ON audit.events (organization_id, id);
CREATE INDEX events_org_time ON audit.events (organization_id, occurred_at DESC);
CREATE INDEX events_user_time ON audit.events (user_id, occurred_at DESC);
CREATE INDEX events_entity ON audit.events (entity_type, entity_id);
CREATE INDEX events_tool_time ON audit.events (tool_slug, occurred_at DESC) WHERE tool_slug IS NOT NULL;
-- The default partition's retention deletes its oldest first.
CREATE INDEX events_time ON audit.events (occurred_at);

ALTER TABLE audit.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit.events FORCE ROW LEVEL SECURITY;
-- The trail's read policy, as it stands (later migrations rewrote it), copied over.
DO $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT polname, polcmd, polroles, pg_get_expr(polqual, polrelid) AS qual
               FROM pg_policy WHERE polrelid = 'audit.events_unpartitioned'::regclass LOOP
        IF p.polcmd <> 'r' OR p.polroles <> '{0}' THEN
            RAISE EXCEPTION 'unexpected policy % on audit.events', p.polname;
        END IF;
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

-- Makes a partition of the audit trail as every partition is made (see the top).
CREATE FUNCTION audit.make_partition(name text, bounds text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('CREATE TABLE audit.%I PARTITION OF audit.events %s', name, bounds);
    EXECUTE format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON audit.%I
                        FOR EACH STATEMENT EXECUTE FUNCTION audit.forbid_change()', name);
    EXECUTE format('ALTER TABLE audit.%I ENABLE ROW LEVEL SECURITY', name);
    EXECUTE format('ALTER TABLE audit.%I FORCE ROW LEVEL SECURITY', name);
    EXECUTE format('CREATE POLICY partition_closed ON audit.%I FOR SELECT USING (false)', name);
END $$;

-- Makes the months from `from_month` through `months_ahead` months after this one that do not
-- exist yet (in UTC); returns how many it made. A month whose events already sit in the default
-- partition (no month was made for a year) is left there, said as a warning: nothing is moved
-- or lost.
CREATE FUNCTION audit.ensure_partitions(months_ahead int, from_month timestamptz DEFAULT now())
RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    month timestamptz;
    made int := 0;
    name text;
BEGIN
    -- Making a month locks the trail for a moment: wait for readers briefly, not forever (the
    -- daily job tries again).
    PERFORM set_config('lock_timeout', '5s', true);
    FOR month IN SELECT generate_series(date_trunc('month', from_month, 'UTC'),
                                        date_trunc('month', now(), 'UTC') + make_interval(months => months_ahead),
                                        interval '1 month') LOOP
        name := 'events_' || to_char(month AT TIME ZONE 'UTC', 'YYYY_MM');
        CONTINUE WHEN to_regclass('audit.' || name) IS NOT NULL;
        BEGIN
            PERFORM audit.make_partition(name, format('FOR VALUES FROM (%L) TO (%L)',
                month, month + interval '1 month'));
            made := made + 1;
        EXCEPTION WHEN check_violation THEN
            RAISE WARNING 'audit partition % not made: events of that month are in audit.events_default', name;
        END;
    END LOOP;
    RETURN made;
END $$;

SELECT audit.make_partition('events_default', 'DEFAULT');
SELECT audit.ensure_partitions(12, coalesce((SELECT min(occurred_at) FROM audit.events_unpartitioned), now()));

-- Every event moves, in id order, with its triggers quiet (each is a copy, not a new event).
ALTER TABLE audit.events DISABLE TRIGGER tag_tool_event;
INSERT INTO audit.events SELECT * FROM audit.events_unpartitioned ORDER BY id;
ALTER TABLE audit.events ENABLE TRIGGER tag_tool_event;
DO $$
BEGIN
    IF (SELECT count(*) FROM audit.events) <> (SELECT count(*) FROM audit.events_unpartitioned) THEN
        RAISE EXCEPTION 'audit events were not all moved';
    END IF;
END $$;
DROP TABLE audit.events_unpartitioned;

-- Retention (seed: keep audit logs for 7 years), in two parts the service runs one transaction
-- at a time: the oldest month that ended before `before` is counted and dropped (NULL when none
-- is left) — dropping takes the trail's lock, held only until this call commits, at most 5 s
-- waited for; then the old rows of the default partition and of tool history go in batches.
CREATE FUNCTION audit.drop_oldest_month(before timestamptz) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    oldest regclass;
    events bigint;
BEGIN
    IF before > now() - interval '7 years' THEN
        RAISE EXCEPTION 'audit events are kept for 7 years; % is too recent', before
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.oid::regclass INTO oldest
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'audit.events'::regclass
       AND (substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)'))::timestamptz <= before
     ORDER BY c.relname LIMIT 1;
    IF oldest IS NULL THEN
        RETURN NULL;
    END IF;
    -- Counted before the trail is locked: the count reads only this month.
    EXECUTE format('SELECT count(*) FROM %s', oldest) INTO events;
    PERFORM set_config('lock_timeout', '5s', true);
    EXECUTE format('DROP TABLE %s', oldest);
    RETURN events;
END $$;

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
    DELETE FROM audit.events_default WHERE id IN (
        SELECT id FROM audit.events_default WHERE occurred_at < before ORDER BY occurred_at LIMIT batch);
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

-- The months ahead, made daily (a year ahead: a worker down for months loses nothing either).
INSERT INTO queue.schedules (name, cron, kind) VALUES
    ('audit-partitions', '20 3 * * *', 'upkeep.audit_partitions');
