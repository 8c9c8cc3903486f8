-- Reverts 0030_reminder_upkeep.
DROP TRIGGER drop_reminders ON appointments;
DROP FUNCTION app.appointment_deleted();
CREATE OR REPLACE FUNCTION app.appointment_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.schedule_reminders(NEW, app.reminder_offsets(NEW.organization_id), '{}');
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION app.schedule_reminders(a public.appointments, offsets interval[], previous interval[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM queue.jobs j
     WHERE j.kind = 'appointments.remind' AND j.organization_id = a.organization_id
       AND j.state = 'queued'
       AND j.unique_key = ANY (SELECT a.id || '/' || app.reminder_name(o)
                                 FROM unnest(offsets || previous) o);
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
DROP FUNCTION app.drop_reminders(uuid, uuid, interval[]);
DROP TRIGGER notify_enqueued ON queue.jobs;
CREATE OR REPLACE FUNCTION queue.notify_enqueued() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('queue_jobs', '');
    RETURN NULL;
END $$;
CREATE TRIGGER notify_enqueued AFTER INSERT ON queue.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION queue.notify_enqueued();
