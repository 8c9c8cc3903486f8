-- Reverts 0035_stripe_events.
DROP FUNCTION app.apply_stripe_event(text, text, text, jsonb), app.stripe_time(text);
DROP TABLE stripe_events;
