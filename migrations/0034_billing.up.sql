-- Billing, first part: plans and their entitlements, one subscription per organization, and
-- limits that hold under concurrency (seed 004 SUBSCRIPTIONS and relationship 8; Sesari
-- requirement 6; DESIGN §7 "the organization pays").
--
-- * `plans` is the operators' catalog (a table, not code): a tier, features, limits, prices.
--   Exactly one plan is the default; every organization starts on it (or on its trial).
-- * `subscriptions`: one per organization, written by the platform only (a trigger at creation
--   now; Stripe's webhooks and the reconcile job next) — members read it.
-- * The plan in force is the subscription's while it is in good standing (active; trialing
--   until the trial ends; past due for 7 days after the period ended), else the default plan's:
--   a lapsed organization keeps every row and reads everything, and what goes beyond the
--   default plan's limits cannot grow until the plan comes back.
-- * Counted entitlements (`seats`, `kpis`) are gauges kept by triggers on the counted rows: the
--   gauge row is updated in the same statement as the insert, so its row lock serializes racing
--   writers and each sees the count the previous one left — N racing writers at limit − 1 let
--   exactly one through. Over the limit the statement fails with SQLSTATE TP402 and a JSON
--   DETAIL (entitlement, limit, used) that the API answers as 402 `plan_limit`.

CREATE TABLE plans (
    code          text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_-]{0,39}$'),
    name          text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    tier          text NOT NULL CHECK (tier IN ('free', 'basic', 'pro', 'enterprise')),
    -- Features this plan turns on (`ai`, `integrations`, …); absent ones are off.
    features      text[] NOT NULL DEFAULT '{}',
    -- Limits by entitlement; an absent one is unlimited. Counts (`seats`, `kpis`,
    -- `integrations`), per month (`ai_tokens`, `api_calls`), bytes (`storage`).
    limits        jsonb NOT NULL DEFAULT '{}' CONSTRAINT plans_limits CHECK (
                      jsonb_typeof(limits) = 'object'
                      AND NOT jsonb_path_exists(limits, '$.* ? (@.type() != "number" || @ < 0 || @ != @.floor())')),
    -- Prices by billing cycle: {"month": {"stripe_price_id": "price_…", "amount": 900,
    -- "currency": "usd"}, "year": {…}}; empty for a free plan.
    prices        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(prices) = 'object'),
    trial_days    integer NOT NULL DEFAULT 0 CHECK (trial_days BETWEEN 0 AND 365),
    is_default    boolean NOT NULL DEFAULT false,
    -- Listed by GET /v1/plans (a comped or legacy plan need not be).
    listed        boolean NOT NULL DEFAULT true,
    sort_order    integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX plans_one_default ON plans (is_default) WHERE is_default;
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON plans
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
ALTER TABLE plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE plans FORCE ROW LEVEL SECURITY;
-- The catalog is public (a pricing page reads it); only operators change it (as the owner).
CREATE POLICY plans_read ON plans FOR SELECT USING (true);
GRANT SELECT ON plans TO tenantry_runtime;

-- The catalog shipped; operators replace it (`tenantry plans import`).
INSERT INTO plans (code, name, tier, features, limits, prices, trial_days, is_default, sort_order) VALUES
    ('free', 'Free', 'free', '{}',
     '{"seats": 5, "kpis": 100, "integrations": 1, "ai_tokens": 50000, "api_calls": 100000, "storage": 536870912}',
     '{}', 0, true, 0),
    ('basic', 'Basic', 'basic', '{integrations}',
     '{"seats": 15, "kpis": 500, "integrations": 5, "ai_tokens": 500000, "api_calls": 1000000, "storage": 5368709120}',
     '{"month": {"stripe_price_id": "price_basic_month", "amount": 1900, "currency": "usd"},
       "year": {"stripe_price_id": "price_basic_year", "amount": 19000, "currency": "usd"}}', 14, false, 1),
    ('pro', 'Pro', 'pro', '{integrations,ai}',
     '{"seats": 50, "kpis": 5000, "integrations": 25, "ai_tokens": 5000000, "api_calls": 10000000, "storage": 53687091200}',
     '{"month": {"stripe_price_id": "price_pro_month", "amount": 4900, "currency": "usd"},
       "year": {"stripe_price_id": "price_pro_year", "amount": 49000, "currency": "usd"}}', 14, false, 2),
    ('enterprise', 'Enterprise', 'enterprise', '{integrations,ai}', '{}', '{}', 0, false, 3);

CREATE TABLE subscriptions (
    id                     uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id        uuid NOT NULL UNIQUE REFERENCES organizations (id) ON DELETE CASCADE,
    plan_code              text NOT NULL REFERENCES plans (code),
    status                 text NOT NULL DEFAULT 'active'
                           CHECK (status IN ('trialing', 'active', 'past_due', 'canceled', 'unpaid',
                                             'incomplete', 'incomplete_expired', 'paused')),
    billing_cycle          text CHECK (billing_cycle IN ('month', 'year')),
    current_period_start   timestamptz NOT NULL DEFAULT now(),
    current_period_end     timestamptz,
    trial_ends_at          timestamptz,
    cancel_at_period_end   boolean NOT NULL DEFAULT false,
    stripe_customer_id     text UNIQUE,
    stripe_subscription_id text UNIQUE,
    metadata               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscriptions FORCE ROW LEVEL SECURITY;
-- Members read their organization's; the platform writes (definer functions, jobs as owner).
CREATE POLICY subscriptions_select ON subscriptions FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('viewer')));
GRANT SELECT ON subscriptions TO tenantry_runtime;
CALL audit.attach('subscriptions');

-- Counted entitlements, kept by triggers.
CREATE TABLE usage_gauges (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    entitlement     text NOT NULL CHECK (entitlement IN ('seats', 'kpis')),
    used            bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
    PRIMARY KEY (organization_id, entitlement),
    UNIQUE (organization_id, id)
);
ALTER TABLE usage_gauges ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_gauges FORCE ROW LEVEL SECURITY;
CREATE POLICY usage_gauges_select ON usage_gauges FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('viewer')));
GRANT SELECT ON usage_gauges TO tenantry_runtime;
-- Not audited: counts derived from audited rows (the guard knows).

-- ---------------------------------------------------------------------------------------------
-- Whether a subscription is in good standing at `at`.
CREATE FUNCTION app.subscription_in_force(s public.subscriptions, at timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE s.status
        WHEN 'active' THEN s.current_period_end IS NULL OR NOT s.cancel_at_period_end
                           OR at < s.current_period_end
        WHEN 'trialing' THEN s.trial_ends_at IS NULL OR at < s.trial_ends_at
        WHEN 'past_due' THEN s.current_period_end IS NULL OR at < s.current_period_end + interval '7 days'
        ELSE false
    END
$$;
GRANT EXECUTE ON FUNCTION app.subscription_in_force(public.subscriptions, timestamptz) TO tenantry_runtime;

-- The plan in force for an organization: its subscription's while in good standing, else the
-- default plan.
CREATE FUNCTION app.plan_in_force(org uuid) RETURNS public.plans
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT p.* FROM public.plans p
     WHERE p.code = coalesce(
               (SELECT s.plan_code FROM public.subscriptions s
                 WHERE s.organization_id = org AND app.subscription_in_force(s, now())),
               (SELECT d.code FROM public.plans d WHERE d.is_default))
$$;

-- Counts `delta` (±1) of the entitlement `what` for `org`; growing past the limit in force raises TP402.
CREATE FUNCTION app.count_usage(org uuid, what text, delta integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    now_used bigint;
    lim bigint;
BEGIN
    IF delta < 0 THEN
        -- Update only: the organization may be going (a cascade deletes its members).
        UPDATE public.usage_gauges g SET used = greatest(g.used + delta, 0)
         WHERE g.organization_id = org AND g.entitlement = what;
        RETURN;
    END IF;
    INSERT INTO public.usage_gauges AS g (organization_id, entitlement, used)
    VALUES (org, what, delta)
    ON CONFLICT (organization_id, entitlement) DO UPDATE SET used = g.used + delta
    RETURNING g.used INTO now_used;
    IF delta > 0 THEN
        lim := ((app.plan_in_force(org)).limits ->> what)::bigint;
        IF lim IS NOT NULL AND now_used > lim THEN
            RAISE EXCEPTION 'the plan allows % %', lim, what
                USING ERRCODE = 'TP402',
                      DETAIL = jsonb_build_object('entitlement', what, 'limit', lim,
                                                  'used', now_used - delta)::text;
        END IF;
    END IF;
END $$;

-- Members are seats. (Definer trigger functions: the runtime role cannot call app.count_usage,
-- so it cannot move a count by itself.)
CREATE FUNCTION app.count_seats() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM app.count_usage(NEW.organization_id, 'seats', 1);
    ELSE
        PERFORM app.count_usage(OLD.organization_id, 'seats', -1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER count_seats AFTER INSERT OR DELETE ON organization_members
    FOR EACH ROW EXECUTE FUNCTION app.count_seats();

-- Live KPIs count; one in the trash does not (restoring it counts again).
CREATE FUNCTION app.count_kpis() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.deleted_at IS NULL
       OR TG_OP = 'UPDATE' AND OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL THEN
        PERFORM app.count_usage(NEW.organization_id, 'kpis', 1);
    ELSIF TG_OP = 'DELETE' AND OLD.deleted_at IS NULL
       OR TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        PERFORM app.count_usage(OLD.organization_id, 'kpis', -1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER count_kpis AFTER INSERT OR DELETE OR UPDATE OF deleted_at ON kpis
    FOR EACH ROW EXECUTE FUNCTION app.count_kpis();

-- Every organization starts on the default plan (on its trial, if it has one).
CREATE FUNCTION app.start_subscription() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO public.subscriptions (organization_id, plan_code, status, trial_ends_at)
    SELECT NEW.id, p.code, CASE WHEN p.trial_days > 0 THEN 'trialing' ELSE 'active' END,
           CASE WHEN p.trial_days > 0 THEN now() + make_interval(days => p.trial_days) END
      FROM public.plans p WHERE p.is_default;
    RETURN NULL;
END $$;
CREATE TRIGGER start_subscription AFTER INSERT ON organizations
    FOR EACH ROW EXECUTE FUNCTION app.start_subscription();

-- The organizations there are: on the default plan, their counts as they stand.
INSERT INTO subscriptions (organization_id, plan_code)
SELECT o.id, (SELECT code FROM plans WHERE is_default) FROM organizations o;
INSERT INTO usage_gauges (organization_id, entitlement, used)
SELECT o.id, 'seats', (SELECT count(*) FROM organization_members m WHERE m.organization_id = o.id)
  FROM organizations o;
INSERT INTO usage_gauges (organization_id, entitlement, used)
SELECT o.id, 'kpis', (SELECT count(*) FROM kpis k WHERE k.organization_id = o.id AND k.deleted_at IS NULL)
  FROM organizations o;
