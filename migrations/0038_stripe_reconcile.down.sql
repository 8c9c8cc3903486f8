-- Reverts 0038_stripe_reconcile.
DELETE FROM queue.schedules WHERE name = 'stripe-reconcile';
-- Records Stripe event `event_id` and applies `subscription` (Stripe's current subscription
-- object, fetched by the server; NULL for events that change none) to the organization whose
-- customer is `customer`. Returns `applied`, `duplicate` or `unknown_customer`.
CREATE OR REPLACE FUNCTION app.apply_stripe_event(event_id text, event_type text, customer text,
                                       subscription jsonb) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid;
    recorded uuid;
    price text := subscription #>> '{items,data,0,price,id}';
    cycle text := subscription #>> '{items,data,0,price,recurring,interval}';
    plan text;
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
        plan := (SELECT p.code FROM public.plans p
                  WHERE EXISTS (SELECT FROM jsonb_each(p.prices) e WHERE e.value ->> 'stripe_price_id' = price));
        -- Newer API versions keep the period on the subscription's items.
        UPDATE public.subscriptions s SET
            plan_code = coalesce(plan, s.plan_code),
            status = subscription ->> 'status',
            billing_cycle = CASE WHEN cycle IN ('month', 'year') THEN cycle ELSE s.billing_cycle END,
            current_period_start = coalesce(
                app.stripe_time(coalesce(subscription ->> 'current_period_start',
                                         subscription #>> '{items,data,0,current_period_start}')),
                s.current_period_start),
            current_period_end = app.stripe_time(coalesce(subscription ->> 'current_period_end',
                                                          subscription #>> '{items,data,0,current_period_end}')),
            trial_ends_at = app.stripe_time(subscription ->> 'trial_end'),
            cancel_at_period_end = coalesce((subscription ->> 'cancel_at_period_end')::boolean, false),
            stripe_subscription_id = subscription ->> 'id'
         WHERE s.organization_id = org;
    END IF;
    RETURN 'applied';
END $$;
DROP FUNCTION app.sync_stripe_subscription(uuid, jsonb);
