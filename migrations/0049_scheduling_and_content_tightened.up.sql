-- Issue 17, tightened after review:
-- 1. A time zone is an IANA (tz database) name: `Europe/Berlin`, `UTC`, `Etc/GMT+3` — not the
--    POSIX strings PostgreSQL also accepts (`UTC+3` means three hours *west* of UTC there, the
--    opposite of what most people read in it). Checked against a table of the database's zone
--    names, because pg_timezone_names reads the zone files on every call (75 ms); the service
--    refreshes it whenever it applies migrations, so an upgraded tz database's new zones count.
-- 2. An appointment is booked for someone: assigned_to is required when a row is inserted and
--    cannot be cleared by hand; it becomes NULL only when its member leaves the organization.
-- 3. What was once public stays an editor's to remove: members delete only pages that were never
--    published (their versions would go with them), and only editors give a slug that redirects
--    to a page once published to another page (links to it would stop working); slugs made from
--    titles avoid such slugs.

CREATE TABLE app.time_zones (name text PRIMARY KEY);
-- Reference data everyone reads; only the refresh below writes it.
ALTER TABLE app.time_zones ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.time_zones FORCE ROW LEVEL SECURITY;
CREATE POLICY time_zones_read ON app.time_zones FOR SELECT USING (true);
-- Not zones people live in: the default rules file, the placeholder zone, the server's own.
CREATE FUNCTION app.refresh_time_zones() RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH added AS (
        INSERT INTO app.time_zones (name)
        SELECT z.name FROM pg_timezone_names z
         WHERE z.name NOT IN ('posixrules', 'Factory', 'localtime')
        ON CONFLICT (name) DO NOTHING
        RETURNING 1)
    SELECT count(*)::integer FROM added
$$;
REVOKE EXECUTE ON FUNCTION app.refresh_time_zones() FROM PUBLIC;
SELECT app.refresh_time_zones();

GRANT SELECT ON app.time_zones TO tenantry_runtime;

CREATE OR REPLACE FUNCTION app.check_timezone() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM app.time_zones z WHERE z.name = NEW.timezone) THEN
        RAISE EXCEPTION 'time zone "%" is not an IANA time zone name (such as Europe/Berlin)', NEW.timezone
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'timezone';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION app.check_appointment_assignee() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- pg_trigger_depth() = 1: a statement's own change, not the foreign key's SET NULL when the
    -- member leaves (that runs inside the key's trigger).
    IF NEW.assigned_to IS NULL AND (TG_OP = 'INSERT' OR pg_trigger_depth() = 1) THEN
        RAISE EXCEPTION 'an appointment is assigned to a member'
            USING ERRCODE = 'not_null_violation', COLUMN = 'assigned_to';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER check_assignee BEFORE INSERT OR UPDATE OF assigned_to ON appointments
    FOR EACH ROW EXECUTE FUNCTION app.check_appointment_assignee();

-- Members delete plain drafts that were never published; editors anything.
ALTER POLICY content_delete ON content
    USING (organization_id = (SELECT app.org_with_role('member'))
           AND ((status = 'draft' AND publish_at IS NULL AND published_at IS NULL)
                OR (SELECT app.may_publish_content())));

CREATE OR REPLACE FUNCTION app.prepare_content() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    base text;
    n integer := 1;
BEGIN
    IF NEW.slug IS NULL THEN
        base := app.slugify(NEW.title);
        NEW.slug := base;
        WHILE EXISTS (SELECT FROM public.content c
                       WHERE c.organization_id = NEW.organization_id AND c.slug = NEW.slug)
           OR EXISTS (SELECT FROM public.content_redirects r
                       WHERE r.organization_id = NEW.organization_id AND r.slug = NEW.slug) LOOP
            n := n + 1;
            NEW.slug := left(base, 80) || '-' || n;
        END LOOP;
    ELSIF (TG_OP = 'INSERT' OR NEW.slug IS DISTINCT FROM OLD.slug)
          AND EXISTS (SELECT FROM public.content_redirects r
                        JOIN public.content c ON c.organization_id = r.organization_id AND c.id = r.content_id
                       WHERE r.organization_id = NEW.organization_id AND r.slug = NEW.slug
                         AND r.content_id <> NEW.id AND c.published_at IS NOT NULL)
          AND NOT app.may_publish_content() THEN
        RAISE EXCEPTION 'the slug % leads to a page that was published; an editor may give it to another page', NEW.slug
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'content_slug_redirects';
    END IF;
    IF NEW.status = 'published' THEN
        NEW.publish_at := NULL;
        IF NEW.published_at IS NULL THEN
            NEW.published_at := now();
        END IF;
    END IF;
    RETURN NEW;
END $$;
