-- Appointment reminders (issue 17): jobs, sent once each, to the assignee (and to the customer
-- when the organization says so).
--
-- An organization's offsets (default 1 day and 1 hour before) are intervals: the days of an
-- offset count in the appointment's own zone (1 day before 10:00 is 10:00 the day before, across
-- a daylight-saving change), the hours and minutes count as elapsed time. Booking, rescheduling,
-- reassigning or cancelling an appointment replaces its queued reminder jobs in the same
-- transaction (a trigger); a change of the offsets does the same for the organization's coming
-- appointments. Each job acts for the assignee, under RLS, and calls one function that sends the
-- reminder at most once: it locks the appointment, checks that the reminder is still wanted
-- (live, still the assignee's, the same start, the offset still configured, not sent yet),
-- writes the email to the outbox and records it in `reminders_sent` in that one transaction. A
-- reminder that comes due while no worker runs is sent late, once — unless the appointment has
-- started by then: a reminder after the fact is noise, so it is recorded as skipped.

CREATE TABLE appointment_settings (
    id               uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    reminder_offsets interval[] NOT NULL DEFAULT '{1 day, 1 hour}',
    -- Also remind the appointment's customer, when they have an email address.
    remind_customers boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    CONSTRAINT appointment_settings_one UNIQUE (organization_id)
);

-- An offset's name, as reminders_sent and job keys say it: `1d`, `2h`, `1d12h`, `30m`.
CREATE FUNCTION app.reminder_name(o interval) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT concat(nullif(extract(day FROM o)::int, 0) || 'd', nullif(extract(hour FROM o)::int, 0) || 'h',
                  nullif(extract(minute FROM o)::int, 0) || 'm')
$$;

-- Offsets: 1 to 5 of different lengths, each 5 minutes to 30 days in whole minutes, no months.
CREATE FUNCTION app.reminder_offsets_valid(offsets interval[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT cardinality(offsets) BETWEEN 1 AND 5
       AND (SELECT bool_and(o IS NOT NULL AND extract(month FROM o) = 0 AND extract(year FROM o) = 0
                            AND extract(second FROM o) = 0 AND o >= interval '5 minutes'
                            AND o <= interval '30 days')
                   -- Intervals compare by length: `1 day` equals `24 hours`, one is enough.
                   AND count(DISTINCT o) = count(*)
              FROM unnest(offsets) o)
$$;
ALTER TABLE appointment_settings ADD CONSTRAINT appointment_settings_offsets
    CHECK (app.reminder_offsets_valid(reminder_offsets));
-- The check runs with the writer's rights; the API names offsets as the database does.
GRANT EXECUTE ON FUNCTION app.reminder_name(interval), app.reminder_offsets_valid(interval[]) TO tenantry_runtime;

-- When the reminder `o` before `start` is due: the offset's days in the zone's wall-clock time,
-- the rest as elapsed time.
CREATE FUNCTION app.reminder_time(start timestamptz, zone text, o interval) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT ((start AT TIME ZONE zone) - make_interval(days => extract(day FROM o)::int)) AT TIME ZONE zone
           - (o - make_interval(days => extract(day FROM o)::int))
$$;

-- Replaces the queued reminder jobs of appointment `a` (those of the offsets `previous` too):
-- one per offset of `offsets` still ahead, while it is live and assigned. Runs as the owner:
-- the jobs act for the assignee, whoever changed the appointment.
CREATE FUNCTION app.schedule_reminders(a public.appointments, offsets interval[], previous interval[])
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

-- The offsets of organization `org`.
CREATE FUNCTION app.reminder_offsets(org uuid) RETURNS interval[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT s.reminder_offsets FROM public.appointment_settings s WHERE s.organization_id = org),
                    '{1 day, 1 hour}')
$$;

CREATE FUNCTION app.appointment_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.schedule_reminders(NEW, app.reminder_offsets(NEW.organization_id), '{}');
    RETURN NULL;
END $$;
CREATE TRIGGER schedule_reminders AFTER INSERT OR UPDATE OF start_time, timezone, status, assigned_to
    ON appointments FOR EACH ROW EXECUTE FUNCTION app.appointment_changed();

CREATE FUNCTION app.reminder_settings_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM app.schedule_reminders(a, NEW.reminder_offsets,
                                   CASE WHEN TG_OP = 'UPDATE' THEN OLD.reminder_offsets ELSE '{1 day, 1 hour}' END)
       FROM public.appointments a
      WHERE a.organization_id = NEW.organization_id AND a.start_time > now()
        AND a.status IN ('scheduled', 'confirmed');
    RETURN NULL;
END $$;
CREATE TRIGGER schedule_reminders AFTER INSERT OR UPDATE OF reminder_offsets
    ON appointment_settings FOR EACH ROW EXECUTE FUNCTION app.reminder_settings_changed();

CREATE FUNCTION app.html_escape(t text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT replace(replace(replace(replace(replace(t, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;')
$$;

-- Sends reminder `o` of `appointment`, due at `remind_at`, at most once; called by the reminder
-- job in a transaction bound to the organization and acting for the assignee. Returns what it
-- did: sent, skipped (the appointment had started), or why it was no longer wanted (gone,
-- reassigned, not_live, superseded, already_sent).
CREATE FUNCTION app.send_appointment_reminder(appointment uuid, o interval, remind_at timestamptz)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a public.appointments;
    name text := app.reminder_name(o);
    local_start text;
    subject text;
    body text;
    html text;
    customer_email text;
BEGIN
    SELECT * INTO a FROM public.appointments
     WHERE id = appointment AND organization_id = (SELECT app.org_with_role('viewer'))
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'gone';
    END IF;
    IF a.assigned_to IS DISTINCT FROM app.user_id() THEN
        RETURN 'reassigned';
    END IF;
    IF a.status NOT IN ('scheduled', 'confirmed') THEN
        RETURN 'not_live';
    END IF;
    IF (a.reminders_sent -> name ->> 'for')::timestamptz IS NOT DISTINCT FROM a.start_time THEN
        RETURN 'already_sent';
    END IF;
    IF remind_at IS DISTINCT FROM app.reminder_time(a.start_time, a.timezone, o)
       OR NOT o = ANY (app.reminder_offsets(a.organization_id)) THEN
        RETURN 'superseded';
    END IF;
    IF now() >= a.start_time THEN
        UPDATE public.appointments
           SET reminders_sent = reminders_sent || jsonb_build_object(name, jsonb_build_object(
                   'for', a.start_time, 'skipped_at', now(), 'reason', 'the appointment had started'))
         WHERE organization_id = a.organization_id AND id = a.id;
        RETURN 'skipped';
    END IF;
    local_start := to_char(a.start_time AT TIME ZONE a.timezone, 'Dy DD Mon YYYY, HH24:MI') || ' (' || a.timezone || ')';
    subject := 'Reminder: ' || regexp_replace(a.title, '[[:cntrl:]]', ' ', 'g') || ', ' || local_start;
    body := a.title || E'\n' || local_start
            || coalesce(E'\nWhere: ' || a.location, '') || coalesce(E'\nJoin: ' || a.meeting_url, '')
            || coalesce(E'\n\n' || a.description, '');
    html := '<p><strong>' || app.html_escape(a.title) || '</strong><br>' || app.html_escape(local_start)
            || coalesce('<br>Where: ' || app.html_escape(a.location), '')
            || coalesce('<br><a href="' || app.html_escape(a.meeting_url) || '">Join the meeting</a>', '')
            || '</p>' || coalesce('<p>' || app.html_escape(a.description) || '</p>', '');
    INSERT INTO public.outbox (organization_id, kind, recipient, subject, body, html_body)
    SELECT a.organization_id, 'appointment_reminder', u.email, subject, body, html
      FROM public.users u WHERE u.id = a.assigned_to;
    SELECT c.email INTO customer_email FROM public.customers c
      JOIN public.appointment_settings s ON s.organization_id = c.organization_id AND s.remind_customers
     WHERE c.organization_id = a.organization_id AND c.id = a.customer_id;
    IF customer_email IS NOT NULL THEN
        INSERT INTO public.outbox (organization_id, kind, recipient, subject, body, html_body)
        VALUES (a.organization_id, 'appointment_reminder', customer_email, subject, body, html);
    END IF;
    UPDATE public.appointments
       SET reminders_sent = reminders_sent || jsonb_build_object(name, jsonb_build_object(
               'for', a.start_time, 'sent_at', now()))
     WHERE organization_id = a.organization_id AND id = a.id;
    RETURN 'sent';
END $$;
GRANT EXECUTE ON FUNCTION app.send_appointment_reminder(uuid, interval, timestamptz) TO tenantry_runtime;

CREATE TRIGGER touch_updated_at BEFORE UPDATE ON appointment_settings
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
-- Everyone reads the organization's settings; admins change them.
CALL app.protect_tenant_table('appointment_settings', 'viewer', 'admin', 'admin');
GRANT SELECT, INSERT (id, organization_id, reminder_offsets, remind_customers),
      UPDATE (reminder_offsets, remind_customers)
   ON appointment_settings TO tenantry_runtime;
CALL audit.attach('appointment_settings');
