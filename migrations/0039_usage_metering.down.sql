-- Reverts 0039_usage_metering.
DELETE FROM queue.schedules WHERE name = 'measure-storage';
CREATE OR REPLACE FUNCTION app.count_usage(org uuid, what text, delta integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    now_used bigint;
    lim bigint;
BEGIN
    IF delta < 0 THEN
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
DROP FUNCTION app.measure_storage(), app.record_api_calls(uuid[], bytea[], bytea[], uuid[], bigint[]),
    app.require_within_budget(text), app.meter_usage(text, text, bigint), app.within_limits(boolean),
    app.require_below_limit(uuid, text), app.usage_of(uuid, text), app.add_usage(uuid, text, text, uuid, bigint),
    app.alert_usage(uuid, text, bigint, bigint);
DROP FUNCTION app.require_tier(text, text), app.require_feature(text), app.tier_rank(text);
DROP TABLE usage_alerts, usage_tracking;
DROP FUNCTION app.billing_period(uuid, timestamptz), app.refuse_over_limit(text, bigint, bigint);
CREATE OR REPLACE FUNCTION app.plan_in_force(org uuid) RETURNS public.plans
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT p.* FROM public.plans p
     WHERE p.code = coalesce(
               (SELECT s.plan_code FROM public.subscriptions s
                 WHERE s.organization_id = org AND app.subscription_in_force(s, now())),
               (SELECT d.code FROM public.plans d WHERE d.is_default))
$$;
DROP FUNCTION app.plan_applies(public.plans, public.subscriptions, timestamptz),
    app.period_ends(public.subscriptions, timestamptz), app.period_starts(public.subscriptions, timestamptz),
    app.in_paid_period(public.subscriptions, timestamptz);
