-- Two findings of the booking benchmark:
-- * Workers are woken (NOTIFY) only when a job due now is enqueued. A reminder due tomorrow has
--   nothing to wake anyone for (a poll finds it when due), and every NOTIFY serializes its commit
--   with every other one on a database-wide lock: bookings, which enqueue two reminders each,
--   paid for it.
-- * Deleting an appointment drops its queued reminders too (they would have found it gone), and
--   booking no longer looks for queued reminders to drop: a new appointment has none.
CREATE OR REPLACE FUNCTION queue.notify_enqueued() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM new_jobs WHERE run_at <= now()) THEN
        PERFORM pg_notify('queue_jobs', '');
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER notify_enqueued ON queue.jobs;
CREATE TRIGGER notify_enqueued AFTER INSERT ON queue.jobs REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION queue.notify_enqueued();

-- Dropping an appointment's queued reminders looks their keys up in the queue's unique index
-- (an array, not a subquery, which let the plan scan the queue); a new appointment has none to
-- drop, so booking skips the lookup.
CREATE FUNCTION app.drop_reminders(appointment uuid, org uuid, offsets interval[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM queue.jobs j
     WHERE j.kind = 'appointments.remind' AND j.organization_id = org AND j.state = 'queued'
       AND j.unique_key = ANY (ARRAY(SELECT appointment || '/' || app.reminder_name(o) FROM unnest(offsets) o))
$$;

-- `previous`: the offsets whose queued reminders to drop first; NULL for a new appointment.
CREATE OR REPLACE FUNCTION app.schedule_reminders(a public.appointments, offsets interval[], previous interval[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF previous IS NOT NULL THEN
        PERFORM app.drop_reminders(a.id, a.organization_id, offsets || previous);
    END IF;
    IF a.status IN ('scheduled', 'confirmed') AND a.assigned_to IS NOT NULL THEN
        INSERT INTO queue.jobs (kind, organization_id, actor_id, payload, unique_key, run_at, max_attempts)
        SELECT 'appointments.remind', a.organization_id, a.assigned_to,
               jsonb_build_object('appointment_id', a.id, 'offset', o::text, 'remind_at', r.at),
               a.id || '/' || app.reminder_name(o), r.at, 10
          FROM unnest(offsets) o
         CROSS JOIN LATERAL (SELECT app.reminder_time(a.start_time, a.timezone, o) AS at) r
         WHERE r.at > now()
        ON CONFLICT DO NOTHING;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION app.appointment_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.schedule_reminders(NEW, app.reminder_offsets(NEW.organization_id),
                                   CASE WHEN TG_OP = 'UPDATE' THEN '{}'::interval[] END);
    RETURN NULL;
END $$;

CREATE FUNCTION app.appointment_deleted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.drop_reminders(OLD.id, OLD.organization_id, app.reminder_offsets(OLD.organization_id));
    RETURN NULL;
END $$;
CREATE TRIGGER drop_reminders AFTER DELETE ON appointments
    FOR EACH ROW EXECUTE FUNCTION app.appointment_deleted();
