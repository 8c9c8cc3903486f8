-- Tenancy core: users, profiles, organizations, members, teams, sessions; membership helpers;
-- row-level security on all of them. Seed column mapping: docs/SEED_MAP.md.

-- ---------------------------------------------------------------------------------------------
-- Tables

CREATE TABLE users (
    id                uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    email             text NOT NULL CHECK (length(email) <= 254 AND email ~ '^[^@\s]+@[^@\s]+$'),
    name              text CHECK (length(name) <= 200),
    -- The identity provider's picture (Sesari image, Strive avatar_url); profiles.avatar_url overrides it.
    avatar_url        text CHECK (length(avatar_url) <= 2048),
    provider          text NOT NULL DEFAULT 'password' CHECK (provider IN ('password', 'google', 'oidc', 'clerk')),
    provider_id       text,
    clerk_user_id     text UNIQUE,
    password_hash     text,
    -- Platform role (Strive users.role), distinct from organization roles.
    role              text NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'moderator', 'employee', 'client', 'user')),
    subscription_tier text NOT NULL DEFAULT 'free' CHECK (subscription_tier IN ('free', 'basic', 'pro', 'enterprise')),
    is_active         boolean NOT NULL DEFAULT true,
    -- When an identity provider proved the address belongs to this account (NULL: never).
    email_verified_at timestamptz,
    last_login_at     timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_provider_key ON users (provider, provider_id) WHERE provider_id IS NOT NULL;

CREATE TABLE profiles (
    user_id     uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    avatar_url  text CHECK (length(avatar_url) <= 2048),
    timezone    text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) <= 64),
    language    text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
    preferences jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(preferences) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE organizations (
    id                  uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    name                text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    slug                text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    description         text CHECK (length(description) <= 5000),
    industry            text CHECK (length(industry) <= 100),
    size                text CHECK (length(size) <= 50),
    settings            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    subscription_status text NOT NULL DEFAULT 'trial' CHECK (subscription_status IN ('active', 'inactive', 'trial')),
    billing_email       text CHECK (length(billing_email) <= 254 AND billing_email ~ '^[^@\s]+@[^@\s]+$'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE organization_members (
    id              uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    permissions     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(permissions) = 'object'),
    joined_at       timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, user_id)
);
-- The membership lookup behind every policy: by user, covering org and role.
CREATE INDEX organization_members_user ON organization_members (user_id) INCLUDE (organization_id, role);

CREATE TABLE teams (
    id              uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description     text CHECK (length(description) <= 5000),
    lead_user_id    uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, name),
    -- The lead must be a member of the same organization; leaving clears the lead.
    FOREIGN KEY (organization_id, lead_user_id)
        REFERENCES organization_members (organization_id, user_id) ON DELETE SET NULL (lead_user_id)
);

CREATE TABLE team_members (
    id              uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL,
    team_id         uuid NOT NULL,
    user_id         uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    UNIQUE (team_id, user_id),
    FOREIGN KEY (organization_id, team_id) REFERENCES teams (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, user_id)
        REFERENCES organization_members (organization_id, user_id) ON DELETE CASCADE
);
CREATE INDEX team_members_member ON team_members (organization_id, user_id);

-- Bearer sessions: only the SHA-256 of each token is stored.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    -- Absolute expiry, and idle expiry: unused for idle_timeout, the session ends.
    expires_at   timestamptz NOT NULL,
    idle_timeout interval NOT NULL DEFAULT interval '7 days' CHECK (idle_timeout > interval '0'),
    ip_address   inet,
    user_agent   text
);
CREATE INDEX sessions_user ON sessions (user_id);

-- API keys of service accounts: they act inside one organization only, with the rights of a
-- viewer (read) or a member (write), optionally for some modules only. Only the SHA-256 of the
-- secret is stored; the prefix identifies a key in lists and logs.
CREATE TABLE api_keys (
    id              uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    prefix          text NOT NULL UNIQUE,
    secret_hash     bytea NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
    access          text NOT NULL CHECK (access IN ('read', 'write')),
    -- NULL: every module.
    modules         text[] CHECK (modules IS NULL OR cardinality(modules) > 0),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id)
);

-- When each key was last used: kept apart from api_keys so that use is not an audited change.
CREATE TABLE api_key_usage (
    api_key_id   uuid PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    last_used_at timestamptz NOT NULL
);

CREATE TRIGGER touch_updated_at BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON profiles FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON organizations FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON organization_members FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON teams FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON api_keys FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- A time zone PostgreSQL does not know is refused with a clear error (22023).
CREATE FUNCTION app.check_timezone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM now() AT TIME ZONE NEW.timezone;
    RETURN NEW;
END $$;
CREATE TRIGGER check_timezone BEFORE INSERT OR UPDATE OF timezone ON profiles
    FOR EACH ROW EXECUTE FUNCTION app.check_timezone();

-- ---------------------------------------------------------------------------------------------
-- Membership helpers for policies. SECURITY DEFINER (the owner bypasses RLS) so a policy on
-- organization_members can ask about memberships without recursing; called as (SELECT ...) so
-- PostgreSQL evaluates them once per statement.

CREATE FUNCTION app.role_rank(role text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE role WHEN 'viewer' THEN 1 WHEN 'member' THEN 2 WHEN 'admin' THEN 3 WHEN 'owner' THEN 4 END
$$;

-- The role an API key acts with: read keys as viewers, write keys as members.
CREATE FUNCTION app.key_role(access text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE access WHEN 'write' THEN 'member' ELSE 'viewer' END
$$;

-- Organizations where the actor (a user, or an API key) holds at least min_role; only app.org_id
-- when the request names one. PL/pgSQL, not SQL: its plans are cached per connection instead of
-- made on every call.
CREATE FUNCTION app.orgs_with_role(min_role text) RETURNS uuid[]
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

-- The actor's role in one organization (NULL: none, or not the organization the request names).
CREATE FUNCTION app.my_role(org uuid) RETURNS text
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
GRANT EXECUTE ON FUNCTION app.my_role(uuid) TO tenantry_runtime;

-- Whether the actor may use `module` (users: always; API keys: when their scope names it).
CREATE FUNCTION app.actor_may_use(module text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF app.api_key_id() IS NULL THEN
        RETURN true;
    END IF;
    RETURN coalesce((SELECT k.modules IS NULL OR module = ANY (k.modules)
                       FROM public.api_keys k WHERE k.id = app.api_key_id()), false);
END $$;
GRANT EXECUTE ON FUNCTION app.actor_may_use(text) TO tenantry_runtime;
GRANT EXECUTE ON FUNCTION app.orgs_with_role(text) TO tenantry_runtime;

-- The usual protection of a tenant table, in one call: RLS enabled and forced, and policies
-- letting `read_role` read, `write_role` insert and update (WITH CHECK), `delete_role` delete,
-- each within the organizations where the actor holds that role.
CREATE PROCEDURE app.protect_tenant_table(tbl regclass, read_role text, write_role text, delete_role text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = tbl);
    member_of text := 'organization_id = ANY ((SELECT app.orgs_with_role(%L))::uuid[])';
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('CREATE POLICY %I ON %s FOR SELECT USING (' || member_of || ')', name || '_select', tbl, read_role);
    EXECUTE format('CREATE POLICY %I ON %s FOR INSERT WITH CHECK (' || member_of || ')', name || '_insert', tbl, write_role);
    EXECUTE format('CREATE POLICY %I ON %s FOR UPDATE USING (' || member_of || ') WITH CHECK (' || member_of || ')',
                   name || '_update', tbl, write_role, write_role);
    EXECUTE format('CREATE POLICY %I ON %s FOR DELETE USING (' || member_of || ')', name || '_delete', tbl, delete_role);
END $$;

-- The session and user behind a live token hash, or SQLSTATE 28000 (not authenticated).
-- Refreshes last_seen_at at most once a minute, so reads do not turn into writes.
CREATE FUNCTION app.resolve_session(token_hash bytea, OUT user_id uuid, OUT session_id uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seen timestamptz;
BEGIN
    SELECT s.user_id, s.id, s.last_seen_at INTO user_id, session_id, seen
      FROM public.sessions s JOIN public.users u ON u.id = s.user_id
     WHERE s.token_hash = resolve_session.token_hash
       AND s.expires_at > now() AND s.last_seen_at + s.idle_timeout > now() AND u.is_active;
    IF user_id IS NULL THEN
        RAISE EXCEPTION 'the session token is not valid' USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    IF seen < now() - interval '1 minute' THEN
        UPDATE public.sessions SET last_seen_at = now() WHERE id = session_id;
    END IF;
END $$;
GRANT EXECUTE ON FUNCTION app.resolve_session(bytea) TO tenantry_runtime;

-- The live API key behind a secret hash, with its organization, or SQLSTATE 28000. Refreshes
-- last_used_at at most once a minute.
CREATE FUNCTION app.resolve_api_key(secret_hash bytea, OUT api_key_id uuid, OUT organization_id uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    used timestamptz;
BEGIN
    SELECT k.id, k.organization_id, u.last_used_at INTO api_key_id, organization_id, used
      FROM public.api_keys k LEFT JOIN public.api_key_usage u ON u.api_key_id = k.id
     WHERE k.secret_hash = resolve_api_key.secret_hash AND k.revoked_at IS NULL
       AND (k.expires_at IS NULL OR k.expires_at > now());
    IF api_key_id IS NULL THEN
        RAISE EXCEPTION 'the API key is not valid' USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    IF used IS NULL OR used < now() - interval '1 minute' THEN
        INSERT INTO public.api_key_usage AS u (api_key_id, last_used_at)
        VALUES (resolve_api_key.api_key_id, now())
        ON CONFLICT ON CONSTRAINT api_key_usage_pkey DO UPDATE SET last_used_at = excluded.last_used_at;
    END IF;
END $$;
GRANT EXECUTE ON FUNCTION app.resolve_api_key(bytea) TO tenantry_runtime;

-- Binds a request's context to the current transaction: the acting user (given, or resolved from
-- a session token), the API key, the organization, and what the audit trail records. The service
-- calls it first in every request, before BEGIN, in the same round trip. Deliberately not
-- SECURITY DEFINER: a function with a SET clause would undo these transaction-local settings on
-- exit. It can only resolve credentials through the definer functions above.
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
END $$;
GRANT EXECUTE ON FUNCTION app.begin_request(uuid, bytea, bytea, uuid, inet, text, text) TO tenantry_runtime;

-- Whoever creates an organization becomes its first owner, in the same statement.
CREATE FUNCTION app.add_creator_as_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO public.organization_members (organization_id, user_id, role)
    VALUES (NEW.id, app.user_id(), 'owner');
    RETURN NULL;
END $$;
CREATE TRIGGER creator_is_owner AFTER INSERT ON organizations
    FOR EACH ROW EXECUTE FUNCTION app.add_creator_as_owner();

-- The last owner can never be removed or demoted. Owner changes are serialized per organization
-- (row lock), so two owners demoting each other at once cannot both succeed. Deleting the
-- organization itself removes every member and is allowed.
CREATE FUNCTION app.keep_an_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF OLD.role = 'owner' AND (TG_OP = 'DELETE' OR NEW.role <> 'owner') THEN
        PERFORM FROM public.organizations WHERE id = OLD.organization_id FOR UPDATE;
        IF FOUND AND NOT EXISTS (
            SELECT FROM public.organization_members
             WHERE organization_id = OLD.organization_id AND role = 'owner' AND id <> OLD.id
        ) THEN
            RAISE EXCEPTION 'an organization must keep at least one owner'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'organization_members_last_owner';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER keep_an_owner BEFORE UPDATE OF role OR DELETE ON organization_members
    FOR EACH ROW EXECUTE FUNCTION app.keep_an_owner();

-- ---------------------------------------------------------------------------------------------
-- Row-level security: enabled and forced everywhere.

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE profiles FORCE ROW LEVEL SECURITY;
ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
ALTER TABLE organization_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE organization_members FORCE ROW LEVEL SECURITY;
ALTER TABLE team_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE team_members FORCE ROW LEVEL SECURITY;
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE api_key_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_key_usage FORCE ROW LEVEL SECURITY;

-- Organizations: members read; admins update; owners delete; any signed-in user creates one.
CREATE POLICY organizations_select ON organizations FOR SELECT
    USING (id = ANY ((SELECT app.orgs_with_role('viewer'))::uuid[]));
CREATE POLICY organizations_insert ON organizations FOR INSERT
    WITH CHECK ((SELECT app.user_id()) IS NOT NULL AND (SELECT app.api_key_id()) IS NULL);
CREATE POLICY organizations_update ON organizations FOR UPDATE
    USING (id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]))
    WITH CHECK (id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));
CREATE POLICY organizations_delete ON organizations FOR DELETE
    USING (id = ANY ((SELECT app.orgs_with_role('owner'))::uuid[]));

-- Members: members read; admins manage non-owners; only owners grant, change or remove ownership;
-- anyone may remove themselves (leave).
CREATE POLICY organization_members_select ON organization_members FOR SELECT
    USING (organization_id = ANY ((SELECT app.orgs_with_role('viewer'))::uuid[]));
CREATE POLICY organization_members_insert ON organization_members FOR INSERT
    WITH CHECK (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[])
                AND (role <> 'owner' OR organization_id = ANY ((SELECT app.orgs_with_role('owner'))::uuid[])));
CREATE POLICY organization_members_update ON organization_members FOR UPDATE
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[])
           AND (role <> 'owner' OR organization_id = ANY ((SELECT app.orgs_with_role('owner'))::uuid[])))
    WITH CHECK (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[])
                AND (role <> 'owner' OR organization_id = ANY ((SELECT app.orgs_with_role('owner'))::uuid[])));
CREATE POLICY organization_members_delete ON organization_members FOR DELETE
    USING ((organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[])
            AND (role <> 'owner' OR organization_id = ANY ((SELECT app.orgs_with_role('owner'))::uuid[])))
           OR (user_id = (SELECT app.user_id()) AND organization_id = ANY ((SELECT app.orgs_with_role('viewer'))::uuid[])));

-- Teams and their members: members read, admins write.
CALL app.protect_tenant_table('teams', 'viewer', 'admin', 'admin');

CREATE POLICY team_members_select ON team_members FOR SELECT
    USING (organization_id = ANY ((SELECT app.orgs_with_role('viewer'))::uuid[]));
CREATE POLICY team_members_insert ON team_members FOR INSERT
    WITH CHECK (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));
CREATE POLICY team_members_delete ON team_members FOR DELETE
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));

-- Users and profiles: visible to themselves and to people who share an organization with them
-- (the subquery runs under organization_members' own policy); writable by themselves only.
CREATE POLICY users_select ON users FOR SELECT
    USING (id = (SELECT app.user_id())
           OR EXISTS (SELECT FROM organization_members m WHERE m.user_id = users.id));
CREATE POLICY users_insert ON users FOR INSERT
    WITH CHECK (id = (SELECT app.user_id()));
CREATE POLICY users_update ON users FOR UPDATE
    USING (id = (SELECT app.user_id())) WITH CHECK (id = (SELECT app.user_id()));
CREATE POLICY users_delete ON users FOR DELETE
    USING (id = (SELECT app.user_id()));

CREATE POLICY profiles_select ON profiles FOR SELECT
    USING (user_id = (SELECT app.user_id())
           OR EXISTS (SELECT FROM organization_members m WHERE m.user_id = profiles.user_id));
CREATE POLICY profiles_insert ON profiles FOR INSERT
    WITH CHECK (user_id = (SELECT app.user_id()));
CREATE POLICY profiles_update ON profiles FOR UPDATE
    USING (user_id = (SELECT app.user_id())) WITH CHECK (user_id = (SELECT app.user_id()));

-- Sessions: a user sees and ends only their own.
CREATE POLICY sessions_own ON sessions FOR ALL
    USING (user_id = (SELECT app.user_id())) WITH CHECK (user_id = (SELECT app.user_id()));

-- API keys: an organization's admins manage them; keys never see keys.
CREATE POLICY api_keys_select ON api_keys FOR SELECT
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));
CREATE POLICY api_keys_insert ON api_keys FOR INSERT
    WITH CHECK (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));
CREATE POLICY api_keys_update ON api_keys FOR UPDATE
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]))
    WITH CHECK (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));
CREATE POLICY api_keys_delete ON api_keys FOR DELETE
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));
-- Usage is visible with its key (the subquery runs under api_keys' policy).
CREATE POLICY api_key_usage_select ON api_key_usage FOR SELECT
    USING (EXISTS (SELECT FROM api_keys k WHERE k.id = api_key_usage.api_key_id));

-- Audit events: an organization's admins read its trail.
CREATE POLICY events_select ON audit.events FOR SELECT
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));

-- ---------------------------------------------------------------------------------------------
-- Grants to the runtime role: only what the service needs. Column lists keep secrets unreadable
-- (password_hash, token_hash) and keys immutable (no one re-parents a row to another organization).

GRANT SELECT (id, email, name, avatar_url, provider, provider_id, clerk_user_id, role,
              subscription_tier, is_active, email_verified_at, last_login_at, created_at, updated_at),
      INSERT (id, email, name, avatar_url, provider, provider_id, clerk_user_id, password_hash,
              email_verified_at),
      UPDATE (name, avatar_url),
      DELETE
   ON users TO tenantry_runtime;
GRANT SELECT, INSERT (user_id, avatar_url, timezone, language, preferences),
      UPDATE (avatar_url, timezone, language, preferences)
   ON profiles TO tenantry_runtime;
GRANT SELECT, INSERT (id, name, slug, description, industry, size, settings, billing_email),
      UPDATE (name, slug, description, industry, size, settings, billing_email), DELETE
   ON organizations TO tenantry_runtime;
GRANT SELECT, INSERT (id, organization_id, user_id, role, permissions),
      UPDATE (role, permissions), DELETE
   ON organization_members TO tenantry_runtime;
GRANT SELECT, INSERT (id, organization_id, name, description, lead_user_id),
      UPDATE (name, description, lead_user_id), DELETE
   ON teams TO tenantry_runtime;
GRANT SELECT, INSERT (id, organization_id, team_id, user_id), DELETE
   ON team_members TO tenantry_runtime;
GRANT SELECT (id, user_id, created_at, last_seen_at, expires_at, idle_timeout, ip_address, user_agent),
      INSERT (id, user_id, token_hash, expires_at, idle_timeout, ip_address, user_agent), DELETE
   ON sessions TO tenantry_runtime;

GRANT SELECT (id, organization_id, name, prefix, access, modules, expires_at, revoked_at,
              created_by, created_at, updated_at),
      INSERT (id, organization_id, name, prefix, secret_hash, access, modules, expires_at, created_by),
      UPDATE (name, revoked_at), DELETE
   ON api_keys TO tenantry_runtime;
GRANT SELECT ON api_key_usage TO tenantry_runtime;

-- ---------------------------------------------------------------------------------------------
-- Audit: every tenant table, plus users and profiles (secrets redacted).
CALL audit.attach('organizations', 'id');
CALL audit.attach('organization_members');
CALL audit.attach('teams');
CALL audit.attach('team_members');
CALL audit.attach('api_keys', 'organization_id', 'id', ARRAY['secret_hash']);
CALL audit.attach('users', '', 'id', ARRAY['password_hash']);
CALL audit.attach('profiles', '', 'user_id');
