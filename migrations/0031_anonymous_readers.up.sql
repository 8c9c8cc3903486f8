-- Anonymous readers (DESIGN §7): a request bound to no user still goes through RLS, and sees
-- exactly the rows a policy makes public to it — never a privileged bypass.
--
-- Two kinds, both bound by app.authenticate like any credential (and MAC'd like any context):
-- * a calendar feed: a member's revocable secret (its SHA-256 kept in calendar_feeds) binds the
--   feed's organization and `calendar_of` = the member; one policy on appointments shows that
--   member's appointments in that organization, read-only, and nothing else;
-- * a public reader: an organization named by its slug (public pages are addressed so) binds
--   that organization with no user and no role; the content policies (next migration) show its
--   published rows only.

ALTER TYPE app.request_context ADD ATTRIBUTE calendar_of uuid;

-- One private feed per member and organization; a new one replaces it, deleting revokes it, and
-- it goes with the membership.
CREATE TABLE calendar_feeds (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL,
    token_hash      bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, user_id),
    FOREIGN KEY (organization_id, user_id)
        REFERENCES organization_members (organization_id, user_id) ON DELETE CASCADE
);
ALTER TABLE calendar_feeds ENABLE ROW LEVEL SECURITY;
ALTER TABLE calendar_feeds FORCE ROW LEVEL SECURITY;
-- A member's own feed only: not even an admin sees or revokes another member's secret URL.
CREATE POLICY calendar_feeds_select ON calendar_feeds FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('viewer')) AND user_id = (SELECT app.user_id()));
CREATE POLICY calendar_feeds_insert ON calendar_feeds FOR INSERT
    WITH CHECK (organization_id = (SELECT app.org_with_role('viewer')) AND user_id = (SELECT app.user_id()));
CREATE POLICY calendar_feeds_delete ON calendar_feeds FOR DELETE
    USING (organization_id = (SELECT app.org_with_role('viewer')) AND user_id = (SELECT app.user_id()));
GRANT SELECT, INSERT (organization_id, user_id, token_hash), DELETE ON calendar_feeds TO tenantry_runtime;
CALL audit.attach('calendar_feeds', 'organization_id', 'id', ARRAY['token_hash']);

-- The feed's reader sees its member's appointments in its organization.
CREATE FUNCTION app.calendar_of() RETURNS uuid
LANGUAGE sql STABLE PARALLEL RESTRICTED AS $$ SELECT (app.context()).calendar_of $$;
GRANT EXECUTE ON FUNCTION app.calendar_of() TO tenantry_runtime;
CREATE POLICY appointments_calendar_feed ON appointments FOR SELECT
    USING (organization_id = (SELECT app.org_id()) AND assigned_to = (SELECT app.calendar_of()));

-- ---------------------------------------------------------------------------------------------
-- The context with `calendar_of` (the settings array gains it last).
CREATE OR REPLACE FUNCTION app.context() RETURNS app.request_context
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mac text := current_setting('app.context_mac', true);
    s text[];
    secret app.secrets;
BEGIN
    IF mac IS NULL OR mac = '' THEN
        RETURN NULL;
    END IF;
    s := ARRAY[current_setting('app.user_id', true), current_setting('app.session_id', true),
               current_setting('app.api_key_id', true), current_setting('app.org_id', true),
               current_setting('app.org_role', true), current_setting('app.service', true),
               current_setting('app.ip', true), current_setting('app.user_agent', true),
               current_setting('app.request_id', true), current_setting('app.calendar_of', true)];
    SELECT * INTO secret FROM app.secrets;
    IF app.context_mac(s, secret.context_inner_key, secret.context_outer_key) IS DISTINCT FROM mac THEN
        RETURN NULL;
    END IF;
    RETURN ROW(nullif(s[1], '')::uuid, nullif(s[2], '')::uuid, nullif(s[3], '')::uuid,
               nullif(s[4], '')::uuid, nullif(s[5], ''), s[6] = 'on', nullif(s[7], '')::inet,
               nullif(s[8], ''), nullif(s[9], ''), nullif(s[10], '')::uuid)::app.request_context;
END $$;

-- Verifies the request's credential and returns the settings to bind, the MAC last. Raises
-- SQLSTATE 28000 for a credential that is unknown, expired or revoked, a wrong service key, an
-- acting user named without the service key, or a feed of another organization than `org`.
-- `org_slug` names the organization by its slug instead of its id (public pages); an unknown
-- slug binds no organization, so nothing is visible.
DROP FUNCTION app.begin_request(bytea, uuid, bytea, bytea, uuid, inet, text, text);
DROP FUNCTION app.authenticate(bytea, uuid, bytea, bytea, uuid, inet, text, text);
CREATE FUNCTION app.authenticate(service_key bytea, actor uuid, session_token_hash bytea,
                                 api_key_hash bytea, calendar_feed_hash bytea, org uuid,
                                 org_slug text, ip inet, user_agent text, request_id text)
RETURNS text[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    secret app.secrets;
    acting_user uuid;
    acting_session uuid;
    acting_key uuid;
    feed_org uuid;
    feed_user uuid;
    is_service boolean := false;
    bound_role text;
    settings text[];
BEGIN
    IF num_nonnulls(service_key, session_token_hash, api_key_hash, calendar_feed_hash) > 1 THEN
        RAISE EXCEPTION 'one credential per request' USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    IF org IS NOT NULL AND org_slug IS NOT NULL THEN
        RAISE EXCEPTION 'name the organization once' USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    IF org_slug IS NOT NULL THEN
        org := (SELECT o.id FROM public.organizations o WHERE o.slug = org_slug);
    END IF;
    SELECT * INTO secret FROM app.secrets;
    IF service_key IS NOT NULL THEN
        -- Hashes compared, so timing says nothing about the key's bytes.
        IF sha256(service_key) IS DISTINCT FROM sha256(secret.service_key) THEN
            RAISE EXCEPTION 'the service key is not valid' USING ERRCODE = 'invalid_authorization_specification';
        END IF;
        acting_user := actor;
        is_service := actor IS NULL;
    ELSIF actor IS NOT NULL THEN
        RAISE EXCEPTION 'only the service names the acting user' USING ERRCODE = 'invalid_authorization_specification';
    ELSIF session_token_hash IS NOT NULL THEN
        SELECT r.user_id, r.session_id INTO acting_user, acting_session FROM app.resolve_session(session_token_hash) r;
    ELSIF api_key_hash IS NOT NULL THEN
        SELECT r.api_key_id INTO acting_key FROM app.resolve_api_key(api_key_hash) r;
    ELSIF calendar_feed_hash IS NOT NULL THEN
        SELECT f.organization_id, f.user_id INTO feed_org, feed_user
          FROM public.calendar_feeds f WHERE f.token_hash = calendar_feed_hash;
        IF feed_user IS NULL OR feed_org IS DISTINCT FROM coalesce(org, feed_org) THEN
            RAISE EXCEPTION 'the calendar feed is not valid' USING ERRCODE = 'invalid_authorization_specification';
        END IF;
        org := feed_org;
    END IF;
    IF org IS NOT NULL AND acting_key IS NOT NULL THEN
        bound_role := (SELECT app.key_role(k.access) FROM public.api_keys k
                  WHERE k.id = acting_key AND k.organization_id = org);
    ELSIF org IS NOT NULL AND acting_user IS NOT NULL THEN
        bound_role := (SELECT m.role FROM public.organization_members m
                  WHERE m.organization_id = org AND m.user_id = acting_user);
    END IF;
    settings := ARRAY[coalesce(acting_user::text, ''), coalesce(acting_session::text, ''),
                      coalesce(acting_key::text, ''), coalesce(org::text, ''), coalesce(bound_role, ''),
                      CASE WHEN is_service THEN 'on' ELSE '' END, coalesce(ip::text, ''),
                      coalesce(user_agent, ''), coalesce(request_id, ''), coalesce(feed_user::text, '')];
    RETURN settings || app.context_mac(settings, secret.context_inner_key, secret.context_outer_key);
END $$;
GRANT EXECUTE ON FUNCTION app.authenticate(bytea, uuid, bytea, bytea, bytea, uuid, text, inet, text, text) TO tenantry_runtime;

-- Binds a request's context to the current transaction (see 0013: the service calls it first,
-- in the same simple query as BEGIN; not SECURITY DEFINER, whose SET clause would undo these
-- transaction-local settings on exit).
CREATE FUNCTION app.begin_request(service_key bytea, actor uuid, session_token_hash bytea,
                                  api_key_hash bytea, calendar_feed_hash bytea, org uuid,
                                  org_slug text, ip inet, user_agent text, request_id text)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s text[] := app.authenticate(service_key, actor, session_token_hash, api_key_hash,
                                 calendar_feed_hash, org, org_slug, ip, user_agent, request_id);
BEGIN
    PERFORM set_config('app.user_id', s[1], true), set_config('app.session_id', s[2], true),
            set_config('app.api_key_id', s[3], true), set_config('app.org_id', s[4], true),
            set_config('app.org_role', s[5], true), set_config('app.service', s[6], true),
            set_config('app.ip', s[7], true), set_config('app.user_agent', s[8], true),
            set_config('app.request_id', s[9], true), set_config('app.calendar_of', s[10], true),
            set_config('app.context_mac', s[11], true);
END $$;
GRANT EXECUTE ON FUNCTION app.begin_request(bytea, uuid, bytea, bytea, bytea, uuid, text, inet, text, text) TO tenantry_runtime;

-- ---------------------------------------------------------------------------------------------
-- A calendar's SEQUENCE (RFC 5545 §3.8.7.4): bumped with every change a calendar shows, so
-- subscribed clients take the newer version.
ALTER TABLE appointments ADD COLUMN revision integer NOT NULL DEFAULT 0;
CREATE FUNCTION app.bump_appointment_revision() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.title, NEW.description, NEW.start_time, NEW.end_time, NEW.status, NEW.location, NEW.meeting_url)
       IS DISTINCT FROM
       (OLD.title, OLD.description, OLD.start_time, OLD.end_time, OLD.status, OLD.location, OLD.meeting_url) THEN
        NEW.revision := OLD.revision + 1;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER bump_revision BEFORE UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION app.bump_appointment_revision();
