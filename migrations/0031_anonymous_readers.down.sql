-- Reverts 0031_anonymous_readers.
DROP TRIGGER bump_revision ON appointments;
DROP FUNCTION app.bump_appointment_revision();
ALTER TABLE appointments DROP COLUMN revision;
DROP POLICY appointments_calendar_feed ON appointments;
DROP FUNCTION app.calendar_of();
DROP TABLE calendar_feeds;
DROP FUNCTION app.begin_request(bytea, uuid, bytea, bytea, bytea, uuid, text, inet, text, text);
DROP FUNCTION app.authenticate(bytea, uuid, bytea, bytea, bytea, uuid, text, inet, text, text);
ALTER TYPE app.request_context DROP ATTRIBUTE calendar_of;

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
               current_setting('app.request_id', true)];
    SELECT * INTO secret FROM app.secrets;
    IF app.context_mac(s, secret.context_inner_key, secret.context_outer_key) IS DISTINCT FROM mac THEN
        RETURN NULL;
    END IF;
    RETURN ROW(nullif(s[1], '')::uuid, nullif(s[2], '')::uuid, nullif(s[3], '')::uuid,
               nullif(s[4], '')::uuid, nullif(s[5], ''), s[6] = 'on', nullif(s[7], '')::inet,
               nullif(s[8], ''), nullif(s[9], ''))::app.request_context;
END $$;

CREATE FUNCTION app.authenticate(service_key bytea, actor uuid, session_token_hash bytea,
                                 api_key_hash bytea, org uuid, ip inet, user_agent text,
                                 request_id text) RETURNS text[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    secret app.secrets;
    acting_user uuid;
    acting_session uuid;
    acting_key uuid;
    is_service boolean := false;
    bound_role text;
    settings text[];
BEGIN
    IF num_nonnulls(service_key, session_token_hash, api_key_hash) > 1 THEN
        RAISE EXCEPTION 'one credential per request' USING ERRCODE = 'invalid_authorization_specification';
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
                      coalesce(user_agent, ''), coalesce(request_id, '')];
    RETURN settings || app.context_mac(settings, secret.context_inner_key, secret.context_outer_key);
END $$;
GRANT EXECUTE ON FUNCTION app.authenticate(bytea, uuid, bytea, bytea, uuid, inet, text, text) TO tenantry_runtime;

CREATE FUNCTION app.begin_request(service_key bytea, actor uuid, session_token_hash bytea,
                                  api_key_hash bytea, org uuid, ip inet, user_agent text,
                                  request_id text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s text[] := app.authenticate(service_key, actor, session_token_hash, api_key_hash, org, ip,
                                 user_agent, request_id);
BEGIN
    PERFORM set_config('app.user_id', s[1], true), set_config('app.session_id', s[2], true),
            set_config('app.api_key_id', s[3], true), set_config('app.org_id', s[4], true),
            set_config('app.org_role', s[5], true), set_config('app.service', s[6], true),
            set_config('app.ip', s[7], true), set_config('app.user_agent', s[8], true),
            set_config('app.request_id', s[9], true), set_config('app.context_mac', s[10], true);
END $$;
GRANT EXECUTE ON FUNCTION app.begin_request(bytea, uuid, bytea, bytea, uuid, inet, text, text) TO tenantry_runtime;
