-- The actor's role in the request's organization, read once per request instead of once per
-- policy check. app.begin_request binds it as app.org_role next to app.user_id; the policy helpers
-- answer from it when the request names an organization. A role granted or taken away during a
-- request counts from the next request on (each request is one transaction); other transactions'
-- changes count from the next request, as before.

-- The actor's (user's or API key's) role in `org`, from the tables (NULL: none).
CREATE FUNCTION app.actor_role(org uuid) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF app.api_key_id() IS NOT NULL THEN
        RETURN (SELECT app.key_role(k.access) FROM public.api_keys k
                 WHERE k.id = app.api_key_id() AND k.organization_id = org);
    END IF;
    RETURN (SELECT m.role FROM public.organization_members m
             WHERE m.organization_id = org AND m.user_id = app.user_id());
END $$;
GRANT EXECUTE ON FUNCTION app.actor_role(uuid) TO tenantry_runtime;

-- The role bound for the request's organization (NULL: none). Only app.begin_request sets it,
-- from the tables, next to the actor it belongs to; like app.user_id it is trusted as bound.
-- Without an actor it counts for nothing.
CREATE FUNCTION app.org_role() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.org_role', true), '') $$;
GRANT EXECUTE ON FUNCTION app.org_role() TO tenantry_runtime;

-- Organizations where the actor holds at least min_role, from the tables (no organization named).
CREATE FUNCTION app.member_orgs(min_role text) RETURNS uuid[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF app.api_key_id() IS NOT NULL THEN
        RETURN (SELECT coalesce(array_agg(k.organization_id), '{}')
                  FROM public.api_keys k
                 WHERE k.id = app.api_key_id()
                   AND app.role_rank(app.key_role(k.access)) >= app.role_rank(min_role));
    END IF;
    RETURN (SELECT coalesce(array_agg(m.organization_id), '{}')
              FROM public.organization_members m
             WHERE m.user_id = app.user_id()
               AND app.role_rank(m.role) >= app.role_rank(min_role));
END $$;
GRANT EXECUTE ON FUNCTION app.member_orgs(text), app.role_rank(text) TO tenantry_runtime;

-- The policy helpers become plain SQL the planner inlines: with an organization named, the
-- answer comes from the bound role and reads no table; only without one do they ask the tables.
CREATE OR REPLACE FUNCTION app.orgs_with_role(min_role text) RETURNS uuid[]
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN app.org_id() IS NULL THEN app.member_orgs(min_role)
                WHEN app.user_id() IS NULL AND app.api_key_id() IS NULL THEN '{}'::uuid[]
                WHEN app.role_rank(app.org_role()) >= app.role_rank(min_role) THEN ARRAY[app.org_id()]
                ELSE '{}'::uuid[] END
$$;

CREATE OR REPLACE FUNCTION app.my_role(org uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN app.org_id() IS NULL THEN app.actor_role(org)
                WHEN org = app.org_id() THEN app.org_role() END
$$;

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
    -- After the actor is bound: actor_role reads it.
    PERFORM set_config('app.org_role', coalesce(CASE WHEN org IS NOT NULL THEN app.actor_role(org) END, ''), true);
END $$;
