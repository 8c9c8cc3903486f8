-- Billing, third part: the transaction history (Sesari requirement 6.3) — the invoices Stripe
-- reports through `invoice.*` events, as its API has them when the event arrives, kept per
-- organization and read by its admins.

CREATE TABLE invoices (
    id                 uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id    uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    stripe_invoice_id  text NOT NULL UNIQUE,
    number             text,
    status             text NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'uncollectible', 'void')),
    currency           text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    -- In the currency's smallest unit (cents).
    amount_due         bigint NOT NULL,
    amount_paid        bigint NOT NULL,
    hosted_invoice_url text CHECK (hosted_invoice_url ~ '^https?://[^[:space:]]+$'),
    period_start       timestamptz,
    period_end         timestamptz,
    paid_at            timestamptz,
    -- When Stripe made it.
    issued_at          timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);
CREATE INDEX invoices_by_issue ON invoices (organization_id, issued_at DESC, id DESC);
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON invoices
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoices FORCE ROW LEVEL SECURITY;
-- Billing history is the admins'.
CREATE POLICY invoices_select ON invoices FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('admin')));
GRANT SELECT ON invoices TO tenantry_runtime;
CALL audit.attach('invoices');

-- Records `invoice` (Stripe's current invoice object, fetched by the server) for the
-- organization whose Stripe customer it names; the service's alone, like app.apply_stripe_event.
CREATE FUNCTION app.record_stripe_invoice(invoice jsonb) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid;
BEGIN
    PERFORM app.require_service();
    org := (SELECT s.organization_id FROM public.subscriptions s
             WHERE s.stripe_customer_id = invoice ->> 'customer');
    IF org IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO public.invoices AS i (organization_id, stripe_invoice_id, number, status, currency,
                                      amount_due, amount_paid, hosted_invoice_url, period_start,
                                      period_end, paid_at, issued_at)
    VALUES (org, invoice ->> 'id', invoice ->> 'number', invoice ->> 'status', invoice ->> 'currency',
            (invoice ->> 'amount_due')::bigint, (invoice ->> 'amount_paid')::bigint,
            invoice ->> 'hosted_invoice_url', app.stripe_time(invoice ->> 'period_start'),
            app.stripe_time(invoice ->> 'period_end'),
            app.stripe_time(invoice #>> '{status_transitions,paid_at}'),
            app.stripe_time(invoice ->> 'created'))
    ON CONFLICT (stripe_invoice_id) DO UPDATE SET
        number = EXCLUDED.number, status = EXCLUDED.status, amount_due = EXCLUDED.amount_due,
        amount_paid = EXCLUDED.amount_paid, hosted_invoice_url = EXCLUDED.hosted_invoice_url,
        period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
        paid_at = EXCLUDED.paid_at
    -- An invoice stays with the organization it was first recorded for.
    WHERE i.organization_id = EXCLUDED.organization_id;
    RETURN true;
END $$;
GRANT EXECUTE ON FUNCTION app.record_stripe_invoice(jsonb) TO tenantry_runtime;
