-- Billing: an organization becomes a Stripe customer when an admin first opens checkout. The
-- server creates the customer in Stripe, then records its id here as the service: the first
-- one recorded stays (two concurrent checkouts keep one), and it is what webhooks find the
-- organization by.

CREATE FUNCTION app.set_stripe_customer(org uuid, customer text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.require_service();
    UPDATE public.subscriptions s SET stripe_customer_id = customer
     WHERE s.organization_id = org AND s.stripe_customer_id IS NULL;
    RETURN (SELECT s.stripe_customer_id FROM public.subscriptions s WHERE s.organization_id = org);
END $$;
GRANT EXECUTE ON FUNCTION app.set_stripe_customer(uuid, text) TO tenantry_runtime;
