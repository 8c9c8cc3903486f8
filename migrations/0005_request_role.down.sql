-- Reverts 0005_request_role: the policy helpers read memberships on every call again.
CREATE OR REPLACE FUNCTION app.orgs_with_role(min_role text) RETURNS uuid[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF app.api_key_id() IS NOT NULL THEN
        RETURN (SELECT coalesce(array_agg(k.organization_id), '{}')
                  FROM public.api_keys k
                 WHERE k.id = app.api_key_id()
                   AND app.role_rank(app.key_role(k.access)) >= app.role_rank(min_role)
                   AND (app.org_id() IS NULL OR k.organization_id = app.org_id()));
    END IF;
    RETURN (SELECT coalesce(array_agg(m.organization_id), '{}')
              FROM public.organization_members m
             WHERE m.user_id = app.user_id()
               AND app.role_rank(m.role) >= app.role_rank(min_role)
               AND (app.org_id() IS NULL OR m.organization_id = app.org_id()));
END $$;

CREATE OR REPLACE FUNCTION app.my_role(org uuid) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF app.org_id() IS NOT NULL AND org <> app.org_id() THEN
        RETURN NULL;
    END IF;
    IF app.api_key_id() IS NOT NULL THEN
        RETURN (SELECT app.key_role(k.access) FROM public.api_keys k
                 WHERE k.id = app.api_key_id() AND k.organization_id = org);
    END IF;
    RETURN (SELECT m.role FROM public.organization_members m
             WHERE m.organization_id = org AND m.user_id = app.user_id());
END $$;

CREATE OR REPLACE FUNCTION app.begin_request(actor uuid, session_token_hash bytea, api_key_hash bytea, org uuid,
                                  ip inet, user_agent text, request_id text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    acting_user uuid := actor;
    acting_session uuid;
    acting_key uuid;
BEGIN
    IF session_token_hash IS NOT NULL THEN
        SELECT r.user_id, r.session_id INTO acting_user, acting_session FROM app.resolve_session(session_token_hash) r;
    ELSIF api_key_hash IS NOT NULL THEN
        SELECT r.api_key_id INTO acting_key FROM app.resolve_api_key(api_key_hash) r;
    END IF;
    PERFORM set_config('app.user_id', coalesce(acting_user::text, ''), true),
            set_config('app.session_id', coalesce(acting_session::text, ''), true),
            set_config('app.api_key_id', coalesce(acting_key::text, ''), true),
            set_config('app.org_id', coalesce(org::text, ''), true),
            set_config('app.ip', coalesce(ip::text, ''), true),
            set_config('app.user_agent', coalesce(user_agent, ''), true),
            set_config('app.request_id', coalesce(request_id, ''), true);
END $$;

REVOKE EXECUTE ON FUNCTION app.role_rank(text) FROM tenantry_runtime;
DROP FUNCTION app.member_orgs(text), app.org_role(), app.actor_role(uuid);
