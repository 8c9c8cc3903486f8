-- Platform administration (issue 18, item 7; Strive `users.role`, `users.is_active`): the
-- platform's staff list organizations with their plan and usage, set a plan by hand (comped
-- accounts), deactivate and reactivate users, and change platform roles.
--
-- Platform access is this narrow set of definer functions, each checking the acting user's
-- platform role and doing one thing — not the owner role, not a policy that opens tenant tables.
-- They read organizations, subscriptions, plans and usage; no business row (KPIs, customers,
-- entries): a platform admin without a membership reads none, as before. Every change they make
-- is a row change the audit trail records with the admin as actor (users; subscriptions under
-- the organization).
--
-- Roles: `admin` does everything here; `moderator` lists and (de)activates users who are not
-- staff; `employee` lists (support); `client` and `user` nothing.
--
-- `users.subscription_tier` and `organizations.subscription_status` (seed columns nothing wrote)
-- are dropped: they were copies of what the subscription says and would go stale as trials and
-- periods end without any row changing. Both are computed where they are shown.

-- The acting user's platform role, if they are active staff with one of `roles`; else 42501.
CREATE FUNCTION app.require_platform_role(roles text[]) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r text;
BEGIN
    SELECT u.role INTO r FROM public.users u WHERE u.id = app.user_id() AND u.is_active;
    IF r IS NULL OR NOT r = ANY (roles) THEN
        RAISE EXCEPTION 'platform staff only' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN r;
END $$;

-- The status an organization's members see: `trial`, `active` (the subscription in good
-- standing) or `inactive`; NULL to anyone not in the organization.
CREATE FUNCTION app.subscription_status_of(org uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN NOT app.subscription_in_force(s, now()) THEN 'inactive'
                WHEN s.status = 'trialing' THEN 'trial' ELSE 'active' END
      FROM public.subscriptions s
     WHERE s.organization_id = org AND app.my_role(org) IS NOT NULL
$$;
GRANT EXECUTE ON FUNCTION app.subscription_status_of(uuid) TO tenantry_runtime;

-- Organizations, by id after `after`, whose name or slug contains `search` (NULL: all), with
-- their plan and usage. Staff only.
CREATE FUNCTION app.platform_organizations(after uuid, max_rows integer, search text)
RETURNS TABLE (id uuid, name text, slug text, created_at timestamptz, plan_code text,
               subscription_status text, plan_in_force text, comped boolean,
               stripe_customer_id text, seats bigint, kpis bigint, api_calls bigint,
               storage bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.require_platform_role(ARRAY['admin', 'moderator', 'employee']);
    RETURN QUERY
    SELECT o.id, o.name, o.slug, o.created_at, s.plan_code, s.status, p.code,
           s.metadata ? 'comped', s.stripe_customer_id,
           coalesce((SELECT g.used FROM public.usage_gauges g
                      WHERE g.organization_id = o.id AND g.entitlement = 'seats'), 0),
           coalesce((SELECT g.used FROM public.usage_gauges g
                      WHERE g.organization_id = o.id AND g.entitlement = 'kpis'), 0),
           coalesce((SELECT t.usage_amount FROM public.usage_tracking t
                      WHERE t.organization_id = o.id
                        AND t.billing_period = (app.period_starts(s, now()) AT TIME ZONE 'UTC')::date
                        AND t.resource_type = 'api_calls' AND t.resource_name = '' AND t.user_id IS NULL), 0),
           coalesce((SELECT t.usage_amount FROM public.usage_tracking t
                      WHERE t.organization_id = o.id AND t.resource_type = 'storage'
                      ORDER BY t.billing_period DESC LIMIT 1), 0)
      FROM public.organizations o
      LEFT JOIN public.subscriptions s ON s.organization_id = o.id
      JOIN public.plans p ON app.plan_applies(p, s, now())
     WHERE o.id > coalesce(after, '00000000-0000-0000-0000-000000000000')
       AND (search IS NULL OR strpos(lower(o.name), lower(search)) > 0
            OR strpos(o.slug, lower(search)) > 0)
     ORDER BY o.id
     LIMIT max_rows;
END $$;
GRANT EXECUTE ON FUNCTION app.platform_organizations(uuid, integer, text) TO tenantry_runtime;

-- Users, by id after `after`, whose email or name contains `search` (NULL: all), with the
-- highest tier in force among the organizations they own. Staff only.
CREATE FUNCTION app.platform_users(after uuid, max_rows integer, search text)
RETURNS TABLE (id uuid, email text, name text, role text, is_active boolean,
               subscription_tier text, organizations bigint, created_at timestamptz,
               last_login_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.require_platform_role(ARRAY['admin', 'moderator', 'employee']);
    RETURN QUERY
    SELECT u.id, u.email, u.name, u.role, u.is_active,
           coalesce((SELECT p.tier FROM public.organization_members m
                       JOIN public.subscriptions s ON s.organization_id = m.organization_id
                       JOIN public.plans p ON app.plan_applies(p, s, now())
                      WHERE m.user_id = u.id AND m.role = 'owner'
                      ORDER BY app.tier_rank(p.tier) DESC LIMIT 1), 'free'),
           (SELECT count(*) FROM public.organization_members m WHERE m.user_id = u.id),
           u.created_at, u.last_login_at
      FROM public.users u
     WHERE u.id > coalesce(after, '00000000-0000-0000-0000-000000000000')
       AND (search IS NULL OR strpos(lower(u.email), lower(search)) > 0
            OR strpos(lower(coalesce(u.name, '')), lower(search)) > 0)
     ORDER BY u.id
     LIMIT max_rows;
END $$;
GRANT EXECUTE ON FUNCTION app.platform_users(uuid, integer, text) TO tenantry_runtime;

-- Puts `org` on `plan` by hand (a comped account) until `until` (NULL: until changed again),
-- noting who, when and why in the subscription's metadata. Admins only. Refused while Stripe
-- bills the organization (its webhooks and the reconcile would undo it: cancel there first).
-- Returns `set`, `no_such_organization`, `no_such_plan` or `billed_by_stripe`.
CREATE FUNCTION app.platform_set_plan(org uuid, plan text, until timestamptz, reason text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s public.subscriptions;
BEGIN
    PERFORM app.require_platform_role(ARRAY['admin']);
    SELECT * INTO s FROM public.subscriptions WHERE organization_id = org FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'no_such_organization';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.plans p WHERE p.code = plan) THEN
        RETURN 'no_such_plan';
    END IF;
    IF s.stripe_subscription_id IS NOT NULL
       AND s.status NOT IN ('canceled', 'incomplete_expired') THEN
        RETURN 'billed_by_stripe';
    END IF;
    UPDATE public.subscriptions
       SET plan_code = plan, status = 'active', billing_cycle = NULL, current_period_start = now(),
           current_period_end = until, cancel_at_period_end = until IS NOT NULL,
           trial_ends_at = NULL, stripe_subscription_id = NULL,
           metadata = metadata || jsonb_build_object('comped', jsonb_build_object(
               'by', app.user_id(), 'at', now(), 'until', until, 'reason', reason))
     WHERE organization_id = org;
    RETURN 'set';
END $$;
GRANT EXECUTE ON FUNCTION app.platform_set_plan(uuid, text, timestamptz, text) TO tenantry_runtime;

-- Deactivates (their sessions end at once; sign-in is refused) or reactivates `target`. Admins
-- and moderators; a moderator not other staff; nobody themselves. Returns `set`,
-- `no_such_user`, `not_yourself` or `staff_only_by_admins`.
CREATE FUNCTION app.platform_set_active(target uuid, active boolean) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mine text := app.require_platform_role(ARRAY['admin', 'moderator']);
    theirs text;
BEGIN
    SELECT u.role INTO theirs FROM public.users u WHERE u.id = target FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'no_such_user';
    END IF;
    IF target = app.user_id() THEN
        RETURN 'not_yourself';
    END IF;
    IF mine <> 'admin' AND theirs IN ('admin', 'moderator', 'employee') THEN
        RETURN 'staff_only_by_admins';
    END IF;
    UPDATE public.users SET is_active = active WHERE id = target AND is_active IS DISTINCT FROM active;
    IF NOT active THEN
        DELETE FROM public.sessions WHERE user_id = target;
    END IF;
    RETURN 'set';
END $$;
GRANT EXECUTE ON FUNCTION app.platform_set_active(uuid, boolean) TO tenantry_runtime;

-- Sets `target`'s platform role. Admins only, never their own (so one admin always remains).
-- Returns `set`, `no_such_user`, `not_yourself` or `no_such_role`.
CREATE FUNCTION app.platform_set_role(target uuid, new_role text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.require_platform_role(ARRAY['admin']);
    IF new_role IS NULL OR new_role NOT IN ('admin', 'moderator', 'employee', 'client', 'user') THEN
        RETURN 'no_such_role';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = target) THEN
        RETURN 'no_such_user';
    END IF;
    IF target = app.user_id() THEN
        RETURN 'not_yourself';
    END IF;
    UPDATE public.users SET role = new_role WHERE id = target AND role IS DISTINCT FROM new_role;
    RETURN 'set';
END $$;
GRANT EXECUTE ON FUNCTION app.platform_set_role(uuid, text) TO tenantry_runtime;

REVOKE SELECT (subscription_tier) ON users FROM tenantry_runtime;
ALTER TABLE users DROP COLUMN subscription_tier;
ALTER TABLE organizations DROP COLUMN subscription_status;
