-- Billing: a daily reconcile of every Stripe subscription, so a missed webhook cannot leave an
-- organization on the wrong plan for more than a day. The part of app.apply_stripe_event that
-- sets a subscription from Stripe's object becomes app.sync_stripe_subscription, which the
-- reconcile job (platform upkeep, as the owner) calls too; not granted to the runtime role.

-- Sets the subscription of `org` from Stripe's subscription object; true when that changed it.
CREATE FUNCTION app.sync_stripe_subscription(org uuid, subscription jsonb) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    price text := subscription #>> '{items,data,0,price,id}';
    cycle text := subscription #>> '{items,data,0,price,recurring,interval}';
    plan text := (SELECT p.code FROM public.plans p
                   WHERE EXISTS (SELECT FROM jsonb_each(p.prices) e WHERE e.value ->> 'stripe_price_id' = price));
    -- Newer API versions keep the period on the subscription's items.
    period_start timestamptz := app.stripe_time(coalesce(subscription ->> 'current_period_start',
                                                         subscription #>> '{items,data,0,current_period_start}'));
    period_end timestamptz := app.stripe_time(coalesce(subscription ->> 'current_period_end',
                                                       subscription #>> '{items,data,0,current_period_end}'));
    cancel_at_end boolean := coalesce((subscription ->> 'cancel_at_period_end')::boolean, false);
    changed integer;
BEGIN
    UPDATE public.subscriptions s SET
        plan_code = coalesce(plan, s.plan_code),
        status = subscription ->> 'status',
        billing_cycle = CASE WHEN cycle IN ('month', 'year') THEN cycle ELSE s.billing_cycle END,
        current_period_start = coalesce(period_start, s.current_period_start),
        current_period_end = period_end,
        trial_ends_at = app.stripe_time(subscription ->> 'trial_end'),
        cancel_at_period_end = cancel_at_end,
        stripe_subscription_id = subscription ->> 'id'
     WHERE s.organization_id = org
       AND (s.plan_code, s.status, s.current_period_end, s.trial_ends_at, s.cancel_at_period_end,
            s.stripe_subscription_id)
           IS DISTINCT FROM
           (coalesce(plan, s.plan_code), subscription ->> 'status', period_end,
            app.stripe_time(subscription ->> 'trial_end'), cancel_at_end, subscription ->> 'id');
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed > 0;
END $$;

CREATE OR REPLACE FUNCTION app.apply_stripe_event(event_id text, event_type text, customer text,
                                                  subscription jsonb) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid;
    recorded uuid;
BEGIN
    PERFORM app.require_service();
    org := (SELECT s.organization_id FROM public.subscriptions s WHERE s.stripe_customer_id = customer);
    INSERT INTO public.stripe_events (event_id, type, organization_id, outcome)
    VALUES (event_id, event_type, org, CASE WHEN org IS NULL THEN 'unknown_customer' ELSE 'applied' END)
    ON CONFLICT ON CONSTRAINT stripe_events_event_id_key DO NOTHING
    RETURNING id INTO recorded;
    IF recorded IS NULL THEN
        RETURN 'duplicate';
    ELSIF org IS NULL THEN
        RETURN 'unknown_customer';
    END IF;
    IF subscription IS NOT NULL THEN
        PERFORM app.sync_stripe_subscription(org, subscription);
    END IF;
    RETURN 'applied';
END $$;

INSERT INTO queue.schedules (name, cron, kind) VALUES ('stripe-reconcile', '20 2 * * *', 'billing.reconcile');
