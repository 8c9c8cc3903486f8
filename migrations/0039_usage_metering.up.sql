-- Billing, metering: what an organization uses per billing period (seed 004 USAGE_TRACKING and
-- relationship 9), the limits on it, and the alerts at 80 % and 100 % of a limit.
--
-- * `usage_tracking` holds one row per organization, billing period, resource and name (and
--   user, for what a user spends): `api_calls` (added by the service in batches: it counts
--   requests in memory and flushes every second, so no request waits on a row lock),
--   `ai_tokens` (recorded by the AI module per reply, through app.meter_usage), `storage` (the
--   organization's data size, set by a scheduled job). Members read it; nobody writes it except
--   through the functions here.
-- * The billing period is the subscription's (Stripe's current period) while one is running,
--   else the calendar month (UTC); `billing_period` is its first day.
-- * Limits: `api_calls` and `ai_tokens` per period, `storage` in bytes (plans.limits).
--   app.within_limits refuses an API key's request once the period's calls reached the limit,
--   and any write while the last measured size exceeds the storage limit (SQLSTATE TP402,
--   answered as 402 plan_limit). Requests of signed-in people are counted but never refused for
--   api_calls, so people can always reach their data and change the plan.
-- * Alerts: the first time in a period an entitlement reaches 80 % or 100 % of its limit, the
--   organization's owners and admins get an email (outbox) — once per threshold and period.

-- The billing period: the running period of a subscription Stripe bills (in good standing),
-- else the calendar month (UTC) — a plan set by hand has no billing period of its own. Plain SQL functions of the subscription row, which the planner inlines
-- into the statements that use them (the limit check before every API key's request among them).
CREATE FUNCTION app.in_paid_period(s public.subscriptions, at timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT s.stripe_subscription_id IS NOT NULL AND s.current_period_end IS NOT NULL
           AND at >= s.current_period_start
           AND at < s.current_period_end AND app.subscription_in_force(s, at)
$$;
CREATE FUNCTION app.period_starts(s public.subscriptions, at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN app.in_paid_period(s, at) THEN s.current_period_start
                ELSE date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' END
$$;
CREATE FUNCTION app.period_ends(s public.subscriptions, at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN app.in_paid_period(s, at) THEN s.current_period_end
                ELSE (date_trunc('month', at AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC' END
$$;
-- Whether plan `p` is the one in force under subscription `s` (NULL: none): the subscribed plan
-- while in good standing, else the default plan.
CREATE FUNCTION app.plan_applies(p public.plans, s public.subscriptions, at timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN app.subscription_in_force(s, at) THEN p.code = s.plan_code ELSE p.is_default END
$$;
GRANT EXECUTE ON FUNCTION app.in_paid_period(public.subscriptions, timestamptz),
    app.period_starts(public.subscriptions, timestamptz), app.period_ends(public.subscriptions, timestamptz),
    app.plan_applies(public.plans, public.subscriptions, timestamptz) TO tenantry_runtime;

CREATE OR REPLACE FUNCTION app.plan_in_force(org uuid) RETURNS public.plans
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT p.* FROM public.plans p LEFT JOIN public.subscriptions s ON s.organization_id = org
     WHERE app.plan_applies(p, s, now())
$$;

-- The billing period of `org` at `at`.
CREATE FUNCTION app.billing_period(org uuid, at timestamptz,
                                   OUT starts_at timestamptz, OUT ends_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT app.period_starts(s, at), app.period_ends(s, at)
      FROM (SELECT) one LEFT JOIN public.subscriptions s ON s.organization_id = org
$$;
GRANT EXECUTE ON FUNCTION app.billing_period(uuid, timestamptz) TO tenantry_runtime;

-- Refuses what would go beyond a limit: SQLSTATE TP402, with the JSON the API answers with.
CREATE FUNCTION app.refuse_over_limit(what text, lim bigint, used bigint) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE EXCEPTION 'the plan allows % %', lim, what
        USING ERRCODE = 'TP402',
              DETAIL = jsonb_build_object('entitlement', what, 'limit', lim, 'used', used)::text;
END $$;

CREATE TABLE usage_tracking (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- Who spent it, where that is known (ai_tokens); NULL for the organization as a whole.
    user_id         uuid REFERENCES users (id) ON DELETE SET NULL,
    resource_type   text NOT NULL CHECK (resource_type IN ('ai_tokens', 'api_calls', 'storage', 'seats')),
    -- What within the resource (an AI model); '' when the resource has no parts.
    resource_name   text NOT NULL DEFAULT '' CHECK (length(resource_name) <= 100),
    usage_amount    bigint NOT NULL DEFAULT 0 CHECK (usage_amount >= 0),
    -- The first day of the billing period (UTC).
    billing_period  date NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    CONSTRAINT usage_tracking_one_row UNIQUE NULLS NOT DISTINCT
        (organization_id, billing_period, resource_type, resource_name, user_id)
);
ALTER TABLE usage_tracking ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_tracking FORCE ROW LEVEL SECURITY;
CREATE POLICY usage_tracking_select ON usage_tracking FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('viewer')));
GRANT SELECT ON usage_tracking TO tenantry_runtime;
-- Not audited: counters (the guard knows); the acts they count are.

-- Which thresholds of which limits were announced in which period.
CREATE TABLE usage_alerts (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    billing_period  date NOT NULL,
    entitlement     text NOT NULL,
    threshold       smallint NOT NULL CHECK (threshold IN (80, 100)),
    sent_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, billing_period, entitlement, threshold),
    UNIQUE (organization_id, id)
);
ALTER TABLE usage_alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_alerts FORCE ROW LEVEL SECURITY;
CREATE POLICY usage_alerts_select ON usage_alerts FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('viewer')));
GRANT SELECT ON usage_alerts TO tenantry_runtime;

-- Announces to the owners and admins of `org` that `what` reached 80 % or 100 % of `lim`, the
-- first time in the period (a no-op below 80 % or without a limit).
CREATE FUNCTION app.alert_usage(org uuid, what text, used bigint, lim bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    period date;
    reached smallint;
    newest smallint;
    org_name text;
    subject text;
    body text;
BEGIN
    -- A limit of 0 is a feature the plan lacks, not an allowance being used up.
    IF lim IS NULL OR lim = 0 OR used * 100 < lim * 80 THEN
        RETURN;
    END IF;
    reached := CASE WHEN used >= lim THEN 100 ELSE 80 END;
    period := ((app.billing_period(org, now())).starts_at AT TIME ZONE 'UTC')::date;
    IF EXISTS (SELECT 1 FROM public.usage_alerts a WHERE a.organization_id = org
                  AND a.billing_period = period AND a.entitlement = what AND a.threshold = reached) THEN
        RETURN;
    END IF;
    -- Both thresholds are recorded when usage jumps past both; one email names the higher.
    WITH added AS (
        INSERT INTO public.usage_alerts (organization_id, billing_period, entitlement, threshold)
        SELECT org, period, what, t FROM unnest(ARRAY[80, 100]::smallint[]) t WHERE t <= reached
        ON CONFLICT DO NOTHING RETURNING threshold)
    SELECT max(threshold) INTO newest FROM added;
    IF newest IS NULL THEN
        RETURN;
    END IF;
    SELECT o.name INTO org_name FROM public.organizations o WHERE o.id = org;
    subject := org_name || ' has used ' || newest || ' % of its plan''s ' || replace(what, '_', ' ');
    body := org_name || ' has used ' || used || ' of the ' || lim || ' ' || replace(what, '_', ' ')
            || ' its plan allows' || CASE WHEN what IN ('api_calls', 'ai_tokens') THEN ' this billing period' ELSE '' END
            || '.' || CASE WHEN newest = 100
                      THEN E'\nWhat would go beyond the limit is refused until the plan allows more.'
                      ELSE E'\nAt the limit, what would go beyond it is refused.' END
            || E'\nOwners and admins can change the plan in the billing settings.';
    INSERT INTO public.outbox (organization_id, kind, recipient, subject, body, html_body)
    SELECT org, 'usage_alert', u.email, subject, body,
           '<p>' || replace(app.html_escape(body), E'\n', '<br>') || '</p>'
      FROM public.organization_members m JOIN public.users u ON u.id = m.user_id
     WHERE m.organization_id = org AND m.role IN ('owner', 'admin') AND u.is_active;
END $$;

-- Adds `amount` of `what` (`name`, `who`) to `org`'s current period; returns the period's total
-- of `what` and announces thresholds crossed.
CREATE FUNCTION app.add_usage(org uuid, what text, name text, who uuid, amount bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    period date := ((app.billing_period(org, now())).starts_at AT TIME ZONE 'UTC')::date;
    total bigint;
BEGIN
    INSERT INTO public.usage_tracking AS t (organization_id, user_id, resource_type, resource_name,
                                            usage_amount, billing_period)
    VALUES (org, who, what, name, amount, period)
    ON CONFLICT ON CONSTRAINT usage_tracking_one_row
    DO UPDATE SET usage_amount = t.usage_amount + excluded.usage_amount, updated_at = now();
    SELECT sum(t.usage_amount) INTO total FROM public.usage_tracking t
     WHERE t.organization_id = org AND t.billing_period = period AND t.resource_type = what;
    PERFORM app.alert_usage(org, what, total, ((app.plan_in_force(org)).limits ->> what)::bigint);
    RETURN total;
END $$;

-- The period's total of `what` for `org` (the latest measurement for storage) and its limit.
CREATE FUNCTION app.usage_of(org uuid, what text, OUT used bigint, OUT lim bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN what = 'storage' THEN
                    (SELECT t.usage_amount FROM public.usage_tracking t
                      WHERE t.organization_id = org AND t.resource_type = 'storage'
                      ORDER BY t.billing_period DESC LIMIT 1)
                ELSE
                    (SELECT sum(t.usage_amount)::bigint FROM public.usage_tracking t
                      WHERE t.organization_id = org AND t.resource_type = what
                        AND t.billing_period = ((app.billing_period(org, now())).starts_at AT TIME ZONE 'UTC')::date)
           END,
           ((app.plan_in_force(org)).limits ->> what)::bigint
$$;

-- Raises TP402 for the bound organization's `what` when its use has reached the limit.
CREATE FUNCTION app.require_below_limit(org uuid, what text) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    u record := app.usage_of(org, what);
BEGIN
    -- Storage may reach its limit; calls and tokens stop at it.
    IF u.lim IS NOT NULL AND (coalesce(u.used, 0) > u.lim OR what <> 'storage' AND coalesce(u.used, 0) >= u.lim) THEN
        PERFORM app.refuse_over_limit(what, u.lim, coalesce(u.used, 0));
    END IF;
END $$;

-- Whether the bound caller's request may go on as far as usage goes (raises TP402 if not): an
-- API key's request while the period's api_calls are below the limit; a write (`write`) while
-- the measured storage is within its limit. True otherwise.
CREATE FUNCTION app.within_limits(write boolean) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid := app.org_with_role('viewer');
    by_key boolean := app.api_key_id() IS NOT NULL;
    u record;
BEGIN
    IF org IS NULL OR NOT (by_key OR write) THEN
        RETURN true;
    END IF;
    -- One statement, planned once per connection (it runs before every API key's request):
    -- the limits of the plan in force, the period's calls, the last measured storage.
    SELECT (p.limits ->> 'api_calls')::bigint AS call_limit, (p.limits ->> 'storage')::bigint AS storage_limit,
           coalesce((SELECT t.usage_amount FROM public.usage_tracking t
                      WHERE t.organization_id = org
                        AND t.billing_period = (app.period_starts(s, now()) AT TIME ZONE 'UTC')::date
                        AND t.resource_type = 'api_calls' AND t.resource_name = '' AND t.user_id IS NULL), 0) AS calls,
           coalesce((SELECT t.usage_amount FROM public.usage_tracking t
                      WHERE t.organization_id = org AND t.resource_type = 'storage'
                      ORDER BY t.billing_period DESC LIMIT 1), 0) AS bytes
      INTO u
      FROM public.plans p LEFT JOIN public.subscriptions s ON s.organization_id = org
     WHERE app.plan_applies(p, s, now());
    IF by_key AND u.calls >= u.call_limit THEN
        PERFORM app.refuse_over_limit('api_calls', u.call_limit, u.calls);
    END IF;
    -- Storage may reach its limit; only beyond it do writes stop.
    IF write AND u.bytes > u.storage_limit THEN
        PERFORM app.refuse_over_limit('storage', u.storage_limit, u.bytes);
    END IF;
    RETURN true;
END $$;
GRANT EXECUTE ON FUNCTION app.within_limits(boolean) TO tenantry_runtime;

-- The bound member records `amount` of `what` they spent (`ai_tokens` only; `name`: the model).
-- Returns the period's total. The AI module calls it with every reply, and
-- app.require_within_budget before asking for one.
CREATE FUNCTION app.meter_usage(what text, name text, amount bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid := app.org_with_role('member');
    who uuid := app.user_id();
BEGIN
    IF org IS NULL OR who IS NULL THEN
        RAISE EXCEPTION 'only a member records usage' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF what IS DISTINCT FROM 'ai_tokens' THEN
        RAISE EXCEPTION 'usage of % is not recorded by members', what USING ERRCODE = 'check_violation';
    END IF;
    IF amount IS NULL OR amount < 0 THEN
        RAISE EXCEPTION 'usage is a count of at least 0' USING ERRCODE = 'check_violation';
    END IF;
    RETURN app.add_usage(org, what, coalesce(name, ''), who, amount);
END $$;
GRANT EXECUTE ON FUNCTION app.meter_usage(text, text, bigint) TO tenantry_runtime;

-- Raises TP402 when the bound organization's `what` (`ai_tokens`) has reached its limit.
CREATE FUNCTION app.require_within_budget(what text) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid := app.org_with_role('viewer');
BEGIN
    IF org IS NULL THEN
        RAISE EXCEPTION 'no organization is bound' USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM app.require_below_limit(org, what);
END $$;
GRANT EXECUTE ON FUNCTION app.require_within_budget(text) TO tenantry_runtime;

-- Features (plans.features: `integrations`, `ai`, …) and tiers (`free` < `basic` < `pro` <
-- `enterprise`, for what names a required tier, like an AI tool): a module calls these before a
-- write its plan must allow; they raise SQLSTATE TPF01 with a JSON DETAIL, answered 402
-- `feature_unavailable`. A lapsed plan falls back to the default plan's features, so what a paid
-- feature made stays readable and its writes come back with the plan.
CREATE FUNCTION app.tier_rank(tier text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_position(ARRAY['free', 'basic', 'pro', 'enterprise'], tier)
$$;
GRANT EXECUTE ON FUNCTION app.tier_rank(text) TO tenantry_runtime;

CREATE FUNCTION app.require_feature(feature text) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid := app.org_with_role('viewer');
    p public.plans;
BEGIN
    IF org IS NULL THEN
        RAISE EXCEPTION 'no organization is bound' USING ERRCODE = 'insufficient_privilege';
    END IF;
    p := app.plan_in_force(org);
    IF NOT feature = ANY (p.features) THEN
        RAISE EXCEPTION 'the % plan does not include %', p.name, feature
            USING ERRCODE = 'TPF01',
                  DETAIL = jsonb_build_object('entitlement', feature, 'plan', p.code)::text;
    END IF;
END $$;
GRANT EXECUTE ON FUNCTION app.require_feature(text) TO tenantry_runtime;

-- The same for `what` (an AI tool, say) that needs plans of `tier` or above.
CREATE FUNCTION app.require_tier(tier text, what text) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid := app.org_with_role('viewer');
    p public.plans;
BEGIN
    IF org IS NULL THEN
        RAISE EXCEPTION 'no organization is bound' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF app.tier_rank(tier) IS NULL THEN
        RAISE EXCEPTION 'no tier is called %', tier USING ERRCODE = 'invalid_parameter_value';
    END IF;
    p := app.plan_in_force(org);
    IF app.tier_rank(p.tier) < app.tier_rank(tier) THEN
        RAISE EXCEPTION '% needs the % tier; the % plan is %', what, tier, p.name, p.tier
            USING ERRCODE = 'TPF01',
                  DETAIL = jsonb_build_object('entitlement', what, 'plan', p.code, 'required_tier', tier)::text;
    END IF;
END $$;
GRANT EXECUTE ON FUNCTION app.require_tier(text, text) TO tenantry_runtime;

-- The service's flush of counted requests: for each organization, the calls of credentials that
-- belong to it (a session of one of its members, one of its API keys, a member) — a request that
-- named an organization its caller is not in counts for nobody. One statement for all of them
-- (a thousand organizations a second must not cost a thousand round trips of functions).
-- Returns how many organizations were counted. Service only.
CREATE FUNCTION app.record_api_calls(orgs uuid[], session_hashes bytea[], key_hashes bytea[],
                                     users uuid[], calls bigint[]) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    counted integer;
BEGIN
    PERFORM app.require_service();
    WITH valid AS (
        SELECT c.org, sum(c.n)::bigint AS n
          FROM unnest(orgs, session_hashes, key_hashes, users, calls) AS c (org, session_hash, key_hash, user_id, n)
         WHERE c.n > 0 AND (
               EXISTS (SELECT 1 FROM public.api_keys k
                        WHERE k.secret_hash = c.key_hash AND k.organization_id = c.org)
            OR EXISTS (SELECT 1 FROM public.sessions s
                         JOIN public.organization_members m ON m.user_id = s.user_id
                        WHERE s.token_hash = c.session_hash AND m.organization_id = c.org)
            OR EXISTS (SELECT 1 FROM public.organization_members m
                        WHERE m.user_id = c.user_id AND m.organization_id = c.org))
         GROUP BY c.org),
    added AS (
        -- In organization order, so two flushes never wait on each other's rows in a cycle.
        INSERT INTO public.usage_tracking AS t (organization_id, resource_type, usage_amount, billing_period)
        SELECT v.org, 'api_calls', v.n, (app.period_starts(s, now()) AT TIME ZONE 'UTC')::date
          FROM valid v LEFT JOIN public.subscriptions s ON s.organization_id = v.org
         ORDER BY v.org
        ON CONFLICT ON CONSTRAINT usage_tracking_one_row
        DO UPDATE SET usage_amount = t.usage_amount + excluded.usage_amount, updated_at = now()
        -- One api_calls row per organization and period: its amount is the period's total.
        RETURNING t.organization_id, t.usage_amount),
    limited AS (
        SELECT a.organization_id, a.usage_amount, (p.limits ->> 'api_calls')::bigint AS lim
          FROM added a LEFT JOIN public.subscriptions s ON s.organization_id = a.organization_id
          JOIN public.plans p ON app.plan_applies(p, s, now())),
    alerted AS (
        SELECT app.alert_usage(l.organization_id, 'api_calls', l.usage_amount, l.lim)
          FROM limited l WHERE l.usage_amount * 100 >= l.lim * 80)
    SELECT (SELECT count(*) FROM added)::integer + 0 * (SELECT count(*) FROM alerted)::integer
      INTO counted;
    RETURN counted;
END $$;
GRANT EXECUTE ON FUNCTION app.record_api_calls(uuid[], bytea[], bytea[], uuid[], bigint[]) TO tenantry_runtime;

-- Sets every organization's measured storage (bytes of its rows in every table that has an
-- organization_id), for the current period. Platform upkeep (the owner runs it).
CREATE FUNCTION app.measure_storage() RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    parts text[] := '{}';
    measured integer;
BEGIN
    FOR t IN
        SELECT c.oid::regclass AS tbl FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'organization_id' AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'queue')
           AND c.relname NOT IN ('usage_tracking', 'usage_alerts', 'usage_gauges')
         ORDER BY 1
    LOOP
        parts := parts || format('SELECT organization_id, sum(pg_column_size(x.*))::bigint AS bytes FROM %s x GROUP BY 1', t.tbl);
    END LOOP;
    EXECUTE format(
        $q$WITH sizes AS (SELECT organization_id, sum(bytes)::bigint AS bytes FROM (%s) s GROUP BY 1),
                all_orgs AS (SELECT o.id, coalesce(z.bytes, 0) AS bytes FROM public.organizations o
                               LEFT JOIN sizes z ON z.organization_id = o.id),
                stored AS (
                    INSERT INTO public.usage_tracking AS t (organization_id, resource_type, usage_amount, billing_period)
                    SELECT a.id, 'storage', a.bytes,
                           ((app.billing_period(a.id, now())).starts_at AT TIME ZONE 'UTC')::date
                      FROM all_orgs a
                    ON CONFLICT ON CONSTRAINT usage_tracking_one_row
                    DO UPDATE SET usage_amount = excluded.usage_amount, updated_at = now()
                    RETURNING organization_id, usage_amount)
           SELECT count(*) FROM (SELECT app.alert_usage(s.organization_id, 'storage', s.usage_amount,
                                     ((app.plan_in_force(s.organization_id)).limits ->> 'storage')::bigint)
                                   FROM stored s) alerted$q$,
        array_to_string(parts, ' UNION ALL '))
    INTO measured;
    RETURN measured;
END $$;
REVOKE EXECUTE ON FUNCTION app.measure_storage() FROM PUBLIC;

INSERT INTO queue.schedules (name, cron, kind) VALUES ('measure-storage', '40 3 * * *', 'billing.storage');

-- Seats and KPIs announce thresholds too.
CREATE OR REPLACE FUNCTION app.count_usage(org uuid, what text, delta integer) RETURNS void
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
            PERFORM app.refuse_over_limit(what, lim, now_used - delta);
        END IF;
        PERFORM app.alert_usage(org, what, now_used, lim);
    END IF;
END $$;
