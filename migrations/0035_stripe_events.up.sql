-- Billing, second part: Stripe's webhooks, applied once each.
--
-- Every event id goes into `stripe_events` in the same transaction as its effect: a redelivered
-- event, or the same one delivered twice at once, finds its id there (the second insert waits
-- for the first to commit, then does nothing) and changes nothing. The subscription's state is
-- the one the server fetched from Stripe's API when the event arrived, not the event's copy, so
-- events arriving out of order never move it backwards. The organization is found from the
-- Stripe customer stored on its subscription, never from anything the event's sender wrote.
-- Only the server applies events (the service key; `app.require_service`).

CREATE TABLE stripe_events (
    id              uuid NOT NULL DEFAULT app.uuid_v7() PRIMARY KEY,
    event_id        text NOT NULL UNIQUE CHECK (length(event_id) BETWEEN 1 AND 255),
    type            text NOT NULL CHECK (length(type) BETWEEN 1 AND 255),
    -- The organization whose customer it concerns (none for a customer we do not know).
    organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
    -- `applied` or `unknown_customer`.
    outcome         text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id)
);
ALTER TABLE stripe_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE stripe_events FORCE ROW LEVEL SECURITY;
-- Written and read by the definer function below only.
CREATE POLICY stripe_events_none ON stripe_events FOR SELECT USING (false);
CALL audit.attach('stripe_events', 'organization_id', 'id', '{}', 'summary');

-- A Unix time in a Stripe object, or NULL.
CREATE FUNCTION app.stripe_time(value text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$ SELECT to_timestamp(value::bigint) $$;

-- Records Stripe event `event_id` and applies `subscription` (Stripe's current subscription
-- object, fetched by the server; NULL for events that change none) to the organization whose
-- customer is `customer`. Returns `applied`, `duplicate` or `unknown_customer`.
CREATE FUNCTION app.apply_stripe_event(event_id text, event_type text, customer text,
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
GRANT EXECUTE ON FUNCTION app.apply_stripe_event(text, text, text, jsonb) TO tenantry_runtime;
