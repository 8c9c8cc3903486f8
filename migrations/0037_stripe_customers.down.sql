-- Reverts 0037_stripe_customers.
DROP FUNCTION app.set_stripe_customer(uuid, text);
