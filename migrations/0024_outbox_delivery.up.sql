-- The outbox is delivered: every message written to it (in the transaction that causes it, such
-- as an invitation) enqueues its delivery job in the same transaction, by a trigger, so no
-- message is ever without one and none is sent for a write that rolled back. Delivery is the
-- platform's (like a mail server it runs as the owner): the job reads the message, hands it to
-- SMTP, and records `sent_at`, `attempts` and `last_error` here. Without SMTP configured, the
-- jobs wait unclaimed and the messages stay in the outbox until a worker with SMTP runs.

-- The HTML alternative of the message (the text body stays, for clients that show only text).
ALTER TABLE outbox ADD COLUMN html_body text;
GRANT INSERT (html_body) ON outbox TO tenantry_runtime;

CREATE FUNCTION app.enqueue_outbox_delivery() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO queue.jobs (kind, payload, unique_key, max_attempts)
    VALUES ('outbox.deliver', jsonb_build_object('outbox_id', NEW.id), NEW.id::text, 20);
    RETURN NULL;
END $$;
CREATE TRIGGER enqueue_outbox_delivery AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION app.enqueue_outbox_delivery();

-- Messages written before this migration get their jobs too.
INSERT INTO queue.jobs (kind, payload, unique_key, max_attempts)
SELECT 'outbox.deliver', jsonb_build_object('outbox_id', id), id::text, 20
  FROM outbox WHERE sent_at IS NULL;
