-- The request context becomes unforgeable by the runtime role.
--
-- Before: the policies trusted app.user_id, app.org_id and app.org_role as they found them, and
-- any SQL the runtime role ran could set them with set_config (or call app.begin_request with a
-- made-up user id). Now:
-- * app.authenticate (owner, SECURITY DEFINER) verifies a credential — a session or API key hash,
--   or the service key the server alone holds (read from app.secrets by the owner at start) — and
--   returns the settings to bind with an HMAC-SHA256 over them, the backend's pid and the
--   transaction's start time, keyed by a secret only the owner can read;
-- * app.begin_request (the runtime role) binds those settings transaction-locally;
-- * app.context() recomputes the HMAC and returns the context only when it matches: a setting
--   changed, added, copied from another transaction or connection, or replayed in a later
--   transaction counts as no identity at all. Every helper the policies use reads app.context(),
--   and nothing else reads the request settings (the guard checks it).

-- ---------------------------------------------------------------------------------------------
-- Secrets: one row, readable by the owner only (RLS forced with no visible row, no grant).
CREATE TABLE app.secrets (
    singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- The context HMAC's 64-byte key, stored as its two padded forms (key XOR ipad, key XOR opad).
    context_inner_key bytea NOT NULL CHECK (length(context_inner_key) = 64),
    context_outer_key bytea NOT NULL CHECK (length(context_outer_key) = 64),
    -- Proves that the server itself is asking: it may name the acting user (after verifying a
    -- password, an OpenID Connect sign-in or an external JWT) and run the steps before sign-in.
    service_key       bytea NOT NULL CHECK (length(service_key) = 32)
);
ALTER TABLE app.secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY secrets_none ON app.secrets FOR SELECT USING (false);

-- 256 random bits from three v4 UUIDs (366 bits of pg_strong_random) each.
CREATE FUNCTION app.random_256() RETURNS bytea
LANGUAGE sql VOLATILE AS $$
    SELECT sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
$$;

DO $$
DECLARE
    key bytea := app.random_256() || app.random_256();
    inner_key bytea := key;
    outer_key bytea := key;
BEGIN
    FOR i IN 0..63 LOOP
        inner_key := set_byte(inner_key, i, get_byte(key, i) # 54);  -- 0x36
        outer_key := set_byte(outer_key, i, get_byte(key, i) # 92);  -- 0x5c
    END LOOP;
    INSERT INTO app.secrets (context_inner_key, context_outer_key, service_key)
    VALUES (inner_key, outer_key, app.random_256());
END $$;

-- ---------------------------------------------------------------------------------------------
-- The context and its MAC.

CREATE TYPE app.request_context AS (
    user_id    uuid,
    session_id uuid,
    api_key_id uuid,
    org_id     uuid,
    -- The actor's role in org_id, read from the tables when the request was bound.
    org_role   text,
    -- The server itself, before anyone signed in (sign-up, sign-in, provisioning).
    service    boolean,
    ip         inet,
    user_agent text,
    request_id text
);
GRANT USAGE ON TYPE app.request_context TO tenantry_runtime;

-- The settings in binding order; app.begin_request sets them, app.context reads them.
-- HMAC-SHA256 of the settings (as JSON: unambiguous), the backend and the transaction's start:
-- the same settings in another connection or a later transaction have another MAC.
-- Not granted to the runtime role (it could not use it without the keys anyway).
CREATE FUNCTION app.context_mac(settings text[], inner_key bytea, outer_key bytea) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT encode(sha256(outer_key || sha256(inner_key || convert_to(
        pg_backend_pid() || '|' || (extract(epoch FROM transaction_timestamp()) * 1000000)::bigint
        || '|' || array_to_json(settings), 'UTF8'))), 'hex')
$$;

-- The verified context of this transaction; NULL (no identity) unless app.begin_request bound
-- it in this transaction, on this connection, and nothing changed it since.
-- PARALLEL RESTRICTED: a parallel worker has another pid, so the leader verifies (policies
-- evaluate it in an initplan, which the leader runs anyway).
CREATE FUNCTION app.context() RETURNS app.request_context
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
GRANT EXECUTE ON FUNCTION app.context() TO tenantry_runtime;

-- Verifies the request's credential and returns the settings to bind, the MAC last. Raises
-- SQLSTATE 28000 for a credential that is unknown, expired or revoked, a wrong service key, or
-- an acting user named without the service key.
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

-- Binds a request's context to the current transaction (the service calls it first, in the same
-- simple query as BEGIN, which adopts its transaction). Not SECURITY DEFINER: a function with a
-- SET clause would undo these transaction-local settings on exit.
DROP FUNCTION app.begin_request(uuid, bytea, bytea, uuid, inet, text, text);
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

-- Credentials are resolved by app.authenticate only.
REVOKE EXECUTE ON FUNCTION app.resolve_session(bytea), app.resolve_api_key(bytea) FROM tenantry_runtime;

-- ---------------------------------------------------------------------------------------------
-- Every accessor reads the verified context (inlined: one app.context() call each).
CREATE OR REPLACE FUNCTION app.user_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL RESTRICTED AS $$ SELECT (app.context()).user_id $$;
CREATE OR REPLACE FUNCTION app.session_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL RESTRICTED AS $$ SELECT (app.context()).session_id $$;
CREATE OR REPLACE FUNCTION app.org_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL RESTRICTED AS $$ SELECT (app.context()).org_id $$;
CREATE OR REPLACE FUNCTION app.api_key_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL RESTRICTED AS $$ SELECT (app.context()).api_key_id $$;
CREATE OR REPLACE FUNCTION app.client_ip() RETURNS inet
LANGUAGE sql STABLE PARALLEL RESTRICTED AS $$ SELECT (app.context()).ip $$;
CREATE OR REPLACE FUNCTION app.user_agent() RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED AS $$ SELECT (app.context()).user_agent $$;
CREATE OR REPLACE FUNCTION app.request_id() RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED AS $$ SELECT (app.context()).request_id $$;
CREATE OR REPLACE FUNCTION app.org_role() RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED AS $$ SELECT (app.context()).org_role $$;

-- The steps before anyone signed in (password check, account lookups, sign-in limits, OpenID
-- Connect flows) are the server's alone: a transaction bound with the service key.
CREATE FUNCTION app.require_service() RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF (app.context()).service IS NOT TRUE THEN
        RAISE EXCEPTION 'only the service itself may do this' USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$;
GRANT EXECUTE ON FUNCTION app.require_service() TO tenantry_runtime;

-- The policy helpers: one verification per call (they are called once per statement). Not
-- SECURITY DEFINER themselves: they decide from the verified context alone (a definer call costs
-- more than the arithmetic); only the path without an organization reads memberships, through
-- app.member_orgs.
DROP FUNCTION app.member_orgs(text);
CREATE FUNCTION app.member_orgs(min_role text) RETURNS uuid[]
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c app.request_context := app.context();
BEGIN
    IF c.api_key_id IS NOT NULL THEN
        RETURN (SELECT coalesce(array_agg(k.organization_id), '{}') FROM public.api_keys k
                 WHERE k.id = c.api_key_id AND app.role_rank(app.key_role(k.access)) >= app.role_rank(min_role));
    END IF;
    RETURN (SELECT coalesce(array_agg(m.organization_id), '{}') FROM public.organization_members m
             WHERE m.user_id = c.user_id AND app.role_rank(m.role) >= app.role_rank(min_role));
END $$;
GRANT EXECUTE ON FUNCTION app.member_orgs(text) TO tenantry_runtime;

CREATE OR REPLACE FUNCTION app.orgs_with_role(min_role text) RETURNS uuid[]
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED AS $$
DECLARE
    c app.request_context := app.context();
BEGIN
    IF c.user_id IS NULL AND c.api_key_id IS NULL THEN
        RETURN '{}';
    ELSIF c.org_id IS NOT NULL THEN
        RETURN CASE WHEN app.role_rank(c.org_role) >= app.role_rank(min_role) THEN ARRAY[c.org_id] ELSE '{}' END;
    END IF;
    RETURN app.member_orgs(min_role);
END $$;

CREATE OR REPLACE FUNCTION app.my_role(org uuid) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED AS $$
DECLARE
    c app.request_context := app.context();
BEGIN
    IF c.org_id IS NOT NULL THEN
        RETURN CASE WHEN org = c.org_id THEN c.org_role END;
    END IF;
    RETURN app.role_in(org);
END $$;

-- The actor's role in `org` from the tables (requests that name no organization).
CREATE FUNCTION app.role_in(org uuid) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c app.request_context := app.context();
BEGIN
    IF c.api_key_id IS NOT NULL THEN
        RETURN (SELECT app.key_role(k.access) FROM public.api_keys k
                 WHERE k.id = c.api_key_id AND k.organization_id = org);
    END IF;
    RETURN (SELECT m.role FROM public.organization_members m
             WHERE m.organization_id = org AND m.user_id = c.user_id);
END $$;
GRANT EXECUTE ON FUNCTION app.role_in(uuid) TO tenantry_runtime;

CREATE OR REPLACE FUNCTION app.actor_may_use(module text) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    key_id uuid := (app.context()).api_key_id;
BEGIN
    IF key_id IS NULL THEN
        RETURN true;
    END IF;
    RETURN coalesce((SELECT k.modules IS NULL OR module = ANY (k.modules)
                       FROM public.api_keys k WHERE k.id = key_id), false);
END $$;

CREATE OR REPLACE FUNCTION tool_access.orgs_with_access(tool text, min_level text) RETURNS uuid[]
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c app.request_context := app.context();
BEGIN
    IF c.user_id IS NULL THEN
        RETURN '{}';
    END IF;
    RETURN (SELECT coalesce(array_agg(m.organization_id), '{}')
              FROM public.organization_members m
              LEFT JOIN tool_access.permissions p
                     ON p.organization_id = m.organization_id AND p.user_id = m.user_id
                    AND p.tool_slug = tool AND (p.expires_at IS NULL OR p.expires_at > now())
             WHERE m.user_id = c.user_id
               AND (c.org_id IS NULL OR m.organization_id = c.org_id)
               AND (m.role IN ('admin', 'owner')
                    OR tool_access.level_rank(p.access_level) >= tool_access.level_rank(min_level)));
END $$;

-- Superseded by app.authenticate (it read the settings unverified).
DROP FUNCTION app.actor_role(uuid);

-- The audit trail reads the context once per statement.
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
    c app.request_context := app.context();
BEGIN
    IF summarize THEN
        IF TG_OP = 'DELETE' THEN
            INSERT INTO audit.events (organization_id, user_id, api_key_id, action, entity_type, entity_id,
                                      new_data, ip_address, user_agent, request_id)
            SELECT (j ->> org_column)::uuid, c.user_id, c.api_key_id, action, entity,
                   (j ->> key_column)::uuid, jsonb_build_object('rows', count(*)), c.ip, c.user_agent, c.request_id
              FROM (SELECT to_jsonb(r) AS j FROM old_rows r) o
             GROUP BY j ->> org_column, j ->> key_column;
        ELSE
            INSERT INTO audit.events (organization_id, user_id, api_key_id, action, entity_type, entity_id,
                                      new_data, ip_address, user_agent, request_id)
            SELECT (j ->> org_column)::uuid, c.user_id, c.api_key_id, action, entity,
                   (j ->> key_column)::uuid, jsonb_build_object('rows', count(*)), c.ip, c.user_agent, c.request_id
              FROM (SELECT to_jsonb(r) AS j FROM new_rows r) n
             GROUP BY j ->> org_column, j ->> key_column;
        END IF;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO audit.events (organization_id, user_id, api_key_id, action, entity_type, entity_id,
                                  new_data, ip_address, user_agent, request_id)
        SELECT (n.j ->> org_column)::uuid, c.user_id, c.api_key_id, 'insert', entity,
               (n.j ->> key_column)::uuid, n.j - redacted, c.ip, c.user_agent, c.request_id
          FROM (SELECT to_jsonb(r) AS j FROM new_rows r) n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO audit.events (organization_id, user_id, api_key_id, action, entity_type, entity_id,
                                  old_data, new_data, ip_address, user_agent, request_id)
        SELECT (n.j ->> org_column)::uuid, c.user_id, c.api_key_id, 'update', entity,
               (n.j ->> key_column)::uuid, o.j - redacted, n.j - redacted, c.ip, c.user_agent, c.request_id
          FROM (SELECT to_jsonb(r) AS j FROM new_rows r) n
          JOIN (SELECT to_jsonb(r) AS j FROM old_rows r) o ON o.j -> key_column = n.j -> key_column
         WHERE o.j IS DISTINCT FROM n.j;
    ELSE
        INSERT INTO audit.events (organization_id, user_id, api_key_id, action, entity_type, entity_id,
                                  old_data, ip_address, user_agent, request_id)
        SELECT (o.j ->> org_column)::uuid, c.user_id, c.api_key_id, 'delete', entity,
               (o.j ->> key_column)::uuid, o.j - redacted, c.ip, c.user_agent, c.request_id
          FROM (SELECT to_jsonb(r) AS j FROM old_rows r) o;
    END IF;
    RETURN NULL;
END $$;

-- ---------------------------------------------------------------------------------------------
-- The steps before sign-in answer only the service.
CREATE OR REPLACE FUNCTION app.sign_in_wait(email text, ip inet) RETURNS integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    by_email timestamptz;
    by_ip timestamptz;
BEGIN
    PERFORM app.require_service();
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
    SELECT app.require_service();
    DELETE FROM app.sign_in_failures WHERE occurred_at < now() - interval '1 day';
    INSERT INTO app.sign_in_failures (email, ip_address) VALUES (lower($1), $2);
$$;

CREATE OR REPLACE FUNCTION app.clear_sign_in_failures(email text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT app.require_service();
    DELETE FROM app.sign_in_failures WHERE email = lower($1);
$$;

CREATE OR REPLACE FUNCTION app.password_credentials(email text, OUT user_id uuid, OUT password_hash text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.require_service();
    SELECT u.id, u.password_hash INTO user_id, password_hash FROM public.users u
     WHERE lower(u.email) = lower(password_credentials.email) AND u.is_active AND u.password_hash IS NOT NULL;
END $$;

CREATE OR REPLACE FUNCTION app.user_by_identity(issuer text, subject text, OUT user_id uuid, OUT is_active boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.require_service();
    SELECT u.id, u.is_active INTO user_id, is_active
      FROM public.identities i JOIN public.users u ON u.id = i.user_id
     WHERE i.issuer = user_by_identity.issuer AND i.subject = user_by_identity.subject;
END $$;

CREATE OR REPLACE FUNCTION app.user_by_email(email text, OUT user_id uuid, OUT is_active boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.require_service();
    SELECT u.id, u.is_active INTO user_id, is_active FROM public.users u
     WHERE lower(u.email) = lower(user_by_email.email);
END $$;

CREATE OR REPLACE FUNCTION app.user_by_clerk_id(clerk_user_id text, OUT user_id uuid, OUT is_active boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.require_service();
    SELECT u.id, u.is_active INTO user_id, is_active FROM public.users u
     WHERE u.clerk_user_id = user_by_clerk_id.clerk_user_id;
END $$;

CREATE OR REPLACE FUNCTION app.begin_oidc_flow(state_hash bytea, nonce text, code_verifier text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT app.require_service();
    DELETE FROM app.oidc_flows WHERE created_at < now() - interval '10 minutes';
    INSERT INTO app.oidc_flows (state_hash, nonce, code_verifier) VALUES ($1, $2, $3);
$$;

CREATE OR REPLACE FUNCTION app.finish_oidc_flow(state_hash bytea, OUT nonce text, OUT code_verifier text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.require_service();
    DELETE FROM app.oidc_flows f
     WHERE f.state_hash = finish_oidc_flow.state_hash AND f.created_at > now() - interval '10 minutes'
    RETURNING f.nonce, f.code_verifier INTO nonce, code_verifier;
END $$;

CREATE OR REPLACE FUNCTION app.claim_verified_email(account uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.require_service();
    UPDATE public.users SET password_hash = NULL
     WHERE id = account AND email_verified_at IS NULL AND password_hash IS NOT NULL;
    IF FOUND THEN
        DELETE FROM public.sessions WHERE user_id = account;
    END IF;
    UPDATE public.users SET email_verified_at = now() WHERE id = account AND email_verified_at IS NULL;
END $$;
