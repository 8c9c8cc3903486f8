-- Reverts 0024_outbox_delivery.
DELETE FROM queue.jobs WHERE kind = 'outbox.deliver';
DROP TRIGGER enqueue_outbox_delivery ON outbox;
DROP FUNCTION app.enqueue_outbox_delivery();
ALTER TABLE outbox DROP COLUMN html_body;
