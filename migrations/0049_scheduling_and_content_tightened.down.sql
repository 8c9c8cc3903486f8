-- Reverts 0049_scheduling_and_content_tightened.
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
                       WHERE c.organization_id = NEW.organization_id AND c.slug = NEW.slug) LOOP
            n := n + 1;
            NEW.slug := left(base, 80) || '-' || n;
        END LOOP;
    END IF;
    IF NEW.status = 'published' THEN
        NEW.publish_at := NULL;
        IF NEW.published_at IS NULL THEN
            NEW.published_at := now();
        END IF;
    END IF;
    RETURN NEW;
END $$;
ALTER POLICY content_delete ON content
    USING (organization_id = (SELECT app.org_with_role('member'))
           AND ((status = 'draft' AND publish_at IS NULL) OR (SELECT app.may_publish_content())));
DROP TRIGGER check_assignee ON appointments;
DROP FUNCTION app.check_appointment_assignee();
CREATE OR REPLACE FUNCTION app.check_timezone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM now() AT TIME ZONE NEW.timezone;
    RETURN NEW;
END $$;
DROP FUNCTION app.refresh_time_zones();
DROP TABLE app.time_zones;
