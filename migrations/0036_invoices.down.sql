-- Reverts 0036_invoices.
DROP FUNCTION app.record_stripe_invoice(jsonb);
DROP TABLE invoices;
