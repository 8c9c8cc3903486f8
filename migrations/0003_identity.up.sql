-- Identity: password sign-in with rate limiting.

-- Users set their own password (after the service checked the current one) and sign-in time.
GRANT UPDATE (password_hash, last_login_at) ON users TO tenantry_runtime;

-- Failed sign-ins, for rate limiting per email and per IP. Reached only through the functions
-- below; no role reads the table directly.
CREATE TABLE app.sign_in_failures (
    id          uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    email       text NOT NULL,
    ip_address  inet,
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_in_failures_email ON app.sign_in_failures (email, occurred_at DESC);
CREATE INDEX sign_in_failures_ip ON app.sign_in_failures (ip_address, occurred_at DESC);
ALTER TABLE app.sign_in_failures ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.sign_in_failures FORCE ROW LEVEL SECURITY;
CREATE POLICY sign_in_failures_none ON app.sign_in_failures FOR SELECT USING (false);

-- Seconds until another sign-in may be tried for this email or IP: 0 when allowed. At most 5
-- failures per email and 20 per IP in any 15 minutes.
CREATE FUNCTION app.sign_in_wait(email text, ip inet) RETURNS integer
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

CREATE FUNCTION app.record_sign_in_failure(email text, ip inet) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM app.sign_in_failures WHERE occurred_at < now() - interval '1 day';
    INSERT INTO app.sign_in_failures (email, ip_address) VALUES (lower($1), $2);
$$;

CREATE FUNCTION app.clear_sign_in_failures(email text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM app.sign_in_failures WHERE email = lower($1);
$$;

-- The account and password hash for an email (case-insensitive), for the service to verify a
-- password. Only active password accounts.
CREATE FUNCTION app.password_credentials(email text, OUT user_id uuid, OUT password_hash text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.id, u.password_hash FROM public.users u
     WHERE lower(u.email) = lower($1) AND u.is_active AND u.password_hash IS NOT NULL
$$;

-- The acting user's own password hash (to check the current password before a change).
CREATE FUNCTION app.my_password_hash() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.password_hash FROM public.users u WHERE u.id = app.user_id()
$$;

GRANT EXECUTE ON FUNCTION app.sign_in_wait(text, inet), app.record_sign_in_failure(text, inet),
    app.clear_sign_in_failures(text), app.password_credentials(text), app.my_password_hash()
    TO tenantry_runtime;

-- ---------------------------------------------------------------------------------------------
-- Invitations: an admin invites an email with a role; a single-use, expiring token accepts it.

CREATE TABLE invitations (
    id              uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           text NOT NULL CHECK (length(email) <= 254 AND email ~ '^[^@\s]+@[^@\s]+$'),
    role            text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    token_hash      bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    invited_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    expires_at      timestamptz NOT NULL,
    accepted_at     timestamptz,
    accepted_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id)
);
-- One open invitation per address and organization (resend renews it).
CREATE UNIQUE INDEX invitations_open_email ON invitations (organization_id, lower(email))
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON invitations FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY invitations_select ON invitations FOR SELECT
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));
CREATE POLICY invitations_insert ON invitations FOR INSERT
    WITH CHECK (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[])
                AND (role <> 'owner' OR organization_id = ANY ((SELECT app.orgs_with_role('owner'))::uuid[])));
CREATE POLICY invitations_update ON invitations FOR UPDATE
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[])
           AND (role <> 'owner' OR organization_id = ANY ((SELECT app.orgs_with_role('owner'))::uuid[])))
    WITH CHECK (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[])
                AND (role <> 'owner' OR organization_id = ANY ((SELECT app.orgs_with_role('owner'))::uuid[])));
GRANT SELECT (id, organization_id, email, role, invited_by, expires_at, accepted_at, accepted_by, revoked_at,
              created_at, updated_at),
      INSERT (id, organization_id, email, role, token_hash, invited_by, expires_at),
      UPDATE (token_hash, expires_at, revoked_at)
   ON invitations TO tenantry_runtime;
CALL audit.attach('invitations', 'organization_id', 'id', ARRAY['token_hash']);

-- Accepts an invitation for the acting user: 'accepted', 'already_member', 'email_mismatch' or
-- 'invalid' (unknown, expired, used or revoked: indistinguishable on purpose). Single use even
-- under concurrency: the invitation row is locked while it is checked and consumed.
CREATE FUNCTION app.accept_invitation(token_hash bytea, OUT outcome text, OUT organization_id uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    invitation public.invitations;
    my_email text;
BEGIN
    SELECT * INTO invitation FROM public.invitations i
     WHERE i.token_hash = accept_invitation.token_hash FOR UPDATE;
    IF invitation.id IS NULL OR invitation.accepted_at IS NOT NULL OR invitation.revoked_at IS NOT NULL
       OR invitation.expires_at <= now() OR app.user_id() IS NULL THEN
        outcome := 'invalid';
        RETURN;
    END IF;
    organization_id := invitation.organization_id;
    SELECT u.email INTO my_email FROM public.users u WHERE u.id = app.user_id();
    IF lower(my_email) <> lower(invitation.email) THEN
        outcome := 'email_mismatch';
        RETURN;
    END IF;
    INSERT INTO public.organization_members (organization_id, user_id, role)
    VALUES (invitation.organization_id, app.user_id(), invitation.role)
    ON CONFLICT ON CONSTRAINT organization_members_organization_id_user_id_key DO NOTHING;
    outcome := CASE WHEN FOUND THEN 'accepted' ELSE 'already_member' END;
    UPDATE public.invitations SET accepted_at = now(), accepted_by = app.user_id() WHERE id = invitation.id;
END $$;
GRANT EXECUTE ON FUNCTION app.accept_invitation(bytea) TO tenantry_runtime;

-- ---------------------------------------------------------------------------------------------
-- Outbox: messages that would be emailed. A sender can deliver them later (sent_at, attempts).

CREATE TABLE outbox (
    id              uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind            text NOT NULL,
    recipient       text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    UNIQUE (organization_id, id)
);
CREATE INDEX outbox_unsent ON outbox (created_at) WHERE sent_at IS NULL;
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY outbox_select ON outbox FOR SELECT
    USING (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));
CREATE POLICY outbox_insert ON outbox FOR INSERT
    WITH CHECK (organization_id = ANY ((SELECT app.orgs_with_role('admin'))::uuid[]));
GRANT SELECT, INSERT (id, organization_id, kind, recipient, subject, body) ON outbox TO tenantry_runtime;
CALL audit.attach('outbox');

-- ---------------------------------------------------------------------------------------------
-- Account deletion: the organizations where the acting user is the only owner, with how many
-- other members each has (the service refuses while any has members; it deletes the rest).
CREATE FUNCTION app.solely_owned_organizations(OUT organization_id uuid, OUT other_members bigint)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT m.organization_id,
           (SELECT count(*) FROM public.organization_members o
             WHERE o.organization_id = m.organization_id AND o.user_id <> m.user_id)
      FROM public.organization_members m
     WHERE m.user_id = app.user_id() AND m.role = 'owner'
       AND NOT EXISTS (SELECT FROM public.organization_members o
                        WHERE o.organization_id = m.organization_id AND o.role = 'owner'
                          AND o.user_id <> m.user_id)
$$;
GRANT EXECUTE ON FUNCTION app.solely_owned_organizations() TO tenantry_runtime;

-- ---------------------------------------------------------------------------------------------
-- External identities (OpenID Connect, external JWT issuers): keyed on issuer + subject, never
-- on email. Users see and add their own.

CREATE TABLE identities (
    id           uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issuer       text NOT NULL,
    subject      text NOT NULL,
    email        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (issuer, subject)
);
CREATE INDEX identities_user ON identities (user_id);
ALTER TABLE identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE identities FORCE ROW LEVEL SECURITY;
CREATE POLICY identities_own ON identities FOR ALL
    USING (user_id = (SELECT app.user_id())) WITH CHECK (user_id = (SELECT app.user_id()));
GRANT SELECT, INSERT (id, user_id, issuer, subject, email), DELETE ON identities TO tenantry_runtime;
CALL audit.attach('identities', '');

-- The account behind an external identity, an email, or an external issuer's subject, with
-- whether it is active. Sign-in needs these before anyone is signed in.
CREATE FUNCTION app.user_by_identity(issuer text, subject text, OUT user_id uuid, OUT is_active boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.id, u.is_active FROM public.identities i JOIN public.users u ON u.id = i.user_id
     WHERE i.issuer = $1 AND i.subject = $2
$$;
CREATE FUNCTION app.user_by_email(email text, OUT user_id uuid, OUT is_active boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.id, u.is_active FROM public.users u WHERE lower(u.email) = lower($1)
$$;
CREATE FUNCTION app.user_by_clerk_id(clerk_user_id text, OUT user_id uuid, OUT is_active boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.id, u.is_active FROM public.users u WHERE u.clerk_user_id = $1
$$;

-- OpenID Connect authorization-code flows in progress: state (stored hashed), nonce and PKCE
-- verifier. Single use, valid 10 minutes; reached only through the two functions below.
CREATE TABLE app.oidc_flows (
    state_hash    bytea PRIMARY KEY CHECK (length(state_hash) = 32),
    nonce         text NOT NULL,
    code_verifier text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE app.oidc_flows ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.oidc_flows FORCE ROW LEVEL SECURITY;
CREATE POLICY oidc_flows_none ON app.oidc_flows FOR SELECT USING (false);

CREATE FUNCTION app.begin_oidc_flow(state_hash bytea, nonce text, code_verifier text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM app.oidc_flows WHERE created_at < now() - interval '10 minutes';
    INSERT INTO app.oidc_flows (state_hash, nonce, code_verifier) VALUES ($1, $2, $3);
$$;
CREATE FUNCTION app.finish_oidc_flow(state_hash bytea, OUT nonce text, OUT code_verifier text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM app.oidc_flows f
     WHERE f.state_hash = $1 AND f.created_at > now() - interval '10 minutes'
    RETURNING f.nonce, f.code_verifier
$$;

-- An identity provider proved that `account`'s email address belongs to the person signing in.
-- Against pre-registration takeovers: a password set on the account by someone who never proved
-- the address stops working, and that someone's sessions end.
CREATE FUNCTION app.claim_verified_email(account uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE public.users SET password_hash = NULL
     WHERE id = account AND email_verified_at IS NULL AND password_hash IS NOT NULL;
    IF FOUND THEN
        DELETE FROM public.sessions WHERE user_id = account;
    END IF;
    UPDATE public.users SET email_verified_at = now() WHERE id = account AND email_verified_at IS NULL;
END $$;
GRANT EXECUTE ON FUNCTION app.claim_verified_email(uuid) TO tenantry_runtime;

GRANT EXECUTE ON FUNCTION app.user_by_identity(text, text), app.user_by_email(text),
    app.user_by_clerk_id(text), app.begin_oidc_flow(bytea, text, text), app.finish_oidc_flow(bytea)
    TO tenantry_runtime;
