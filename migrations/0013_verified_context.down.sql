-- Reverts 0013_verified_context: the policies trust the request settings as they find them again.

CREATE OR REPLACE FUNCTION app.user_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;
CREATE OR REPLACE FUNCTION app.session_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.session_id', true), '')::uuid $$;
CREATE OR REPLACE FUNCTION app.org_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.org_id', true), '')::uuid $$;
CREATE OR REPLACE FUNCTION app.api_key_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.api_key_id', true), '')::uuid $$;
CREATE OR REPLACE FUNCTION app.client_ip() RETURNS inet
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.ip', true), '')::inet $$;
CREATE OR REPLACE FUNCTION app.user_agent() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.user_agent', true), '') $$;
CREATE OR REPLACE FUNCTION app.request_id() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.request_id', true), '') $$;

CREATE OR REPLACE FUNCTION app.org_role() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT nullif(current_setting('app.org_role', true), '') $$;

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
DROP FUNCTION app.member_orgs(text);
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
GRANT EXECUTE ON FUNCTION app.actor_role(uuid), app.member_orgs(text) TO tenantry_runtime;

CREATE OR REPLACE FUNCTION app.actor_may_use(module text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF app.api_key_id() IS NULL THEN
        RETURN true;
    END IF;
    RETURN coalesce((SELECT k.modules IS NULL OR module = ANY (k.modules)
                       FROM public.api_keys k WHERE k.id = app.api_key_id()), false);
END $$;
CREATE OR REPLACE FUNCTION tool_access.orgs_with_access(tool text, min_level text) RETURNS uuid[]
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
CREATE OR REPLACE FUNCTION audit.record_change() RETURNS trigger
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
CREATE OR REPLACE FUNCTION app.sign_in_wait(email text, ip inet) RETURNS integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    by_email timestamptz;
    by_ip timestamptz;
BEGIN
    SELECT f.occurred_at INTO by_email FROM app.sign_in_failures f
     WHERE f.email = lower(sign_in_wait.email) AND f.occurred_at > now() - interval '15 minutes'
     ORDER BY f.occurred_at DESC OFFSET 4 LIMIT 1;
    IF ip IS NOT NULL THEN
        SELECT f.occurred_at INTO by_ip FROM app.sign_in_failures f
         WHERE f.ip_address = sign_in_wait.ip AND f.occurred_at > now() - interval '15 minutes'
         ORDER BY f.occurred_at DESC OFFSET 19 LIMIT 1;
    END IF;
    IF by_email IS NULL AND by_ip IS NULL THEN
        RETURN 0;
    END IF;
    RETURN greatest(1, ceil(extract(epoch FROM greatest(by_email, by_ip) + interval '15 minutes' - now())))::integer;
END $$;
CREATE OR REPLACE FUNCTION app.record_sign_in_failure(email text, ip inet) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM app.sign_in_failures WHERE occurred_at < now() - interval '1 day';
    INSERT INTO app.sign_in_failures (email, ip_address) VALUES (lower($1), $2);
$$;
CREATE OR REPLACE FUNCTION app.clear_sign_in_failures(email text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM app.sign_in_failures WHERE email = lower($1);
$$;
CREATE OR REPLACE FUNCTION app.password_credentials(email text, OUT user_id uuid, OUT password_hash text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.id, u.password_hash FROM public.users u
     WHERE lower(u.email) = lower($1) AND u.is_active AND u.password_hash IS NOT NULL
$$;
CREATE OR REPLACE FUNCTION app.user_by_identity(issuer text, subject text, OUT user_id uuid, OUT is_active boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.id, u.is_active FROM public.identities i JOIN public.users u ON u.id = i.user_id
     WHERE i.issuer = $1 AND i.subject = $2
$$;
CREATE OR REPLACE FUNCTION app.user_by_email(email text, OUT user_id uuid, OUT is_active boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.id, u.is_active FROM public.users u WHERE lower(u.email) = lower($1)
$$;
CREATE OR REPLACE FUNCTION app.user_by_clerk_id(clerk_user_id text, OUT user_id uuid, OUT is_active boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.id, u.is_active FROM public.users u WHERE u.clerk_user_id = $1
$$;
CREATE OR REPLACE FUNCTION app.begin_oidc_flow(state_hash bytea, nonce text, code_verifier text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM app.oidc_flows WHERE created_at < now() - interval '10 minutes';
    INSERT INTO app.oidc_flows (state_hash, nonce, code_verifier) VALUES ($1, $2, $3);
$$;
CREATE OR REPLACE FUNCTION app.finish_oidc_flow(state_hash bytea, OUT nonce text, OUT code_verifier text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM app.oidc_flows f
     WHERE f.state_hash = $1 AND f.created_at > now() - interval '10 minutes'
    RETURNING f.nonce, f.code_verifier
$$;
CREATE OR REPLACE FUNCTION app.claim_verified_email(account uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE public.users SET password_hash = NULL
     WHERE id = account AND email_verified_at IS NULL AND password_hash IS NOT NULL;
    IF FOUND THEN
        DELETE FROM public.sessions WHERE user_id = account;
    END IF;
    UPDATE public.users SET email_verified_at = now() WHERE id = account AND email_verified_at IS NULL;
END $$;

DROP FUNCTION app.begin_request(bytea, uuid, bytea, bytea, uuid, inet, text, text);

CREATE FUNCTION app.begin_request(actor uuid, session_token_hash bytea, api_key_hash bytea, org uuid,
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
GRANT EXECUTE ON FUNCTION app.begin_request(uuid, bytea, bytea, uuid, inet, text, text) TO tenantry_runtime;
GRANT EXECUTE ON FUNCTION app.resolve_session(bytea), app.resolve_api_key(bytea) TO tenantry_runtime;

DROP FUNCTION app.role_in(uuid);
DROP FUNCTION app.require_service(), app.authenticate(bytea, uuid, bytea, bytea, uuid, inet, text, text),
    app.context(), app.context_mac(text[], bytea, bytea), app.random_256();
DROP TYPE app.request_context;
DROP TABLE app.secrets;
