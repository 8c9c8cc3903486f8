-- Strive appointments (seed 004, relationship 10): a member's calendar inside one organization.
--
-- One member cannot hold two live appointments that overlap: an exclusion constraint over the
-- time range refuses the second booking in the database itself, so two concurrent bookings of
-- one slot cannot both commit (the second waits for the first and then fails). Cancelled and
-- no-show appointments do not hold their slot. Times are instants; `timezone` keeps the IANA zone
-- the appointment was booked in, so reminders can be placed in its local time.

-- GiST support for `=` on uuid, so the constraint can say "same organization, same member".
-- Ships with PostgreSQL and is trusted: the database's owner may create it.
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;

CREATE TABLE appointments (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    customer_id     uuid,
    -- Required when booking (the API defaults it to the caller); cleared only when the member
    -- leaves the organization, so their past appointments stay, unassigned.
    assigned_to     uuid,
    title           text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    description     text CHECK (length(description) <= 10000),
    start_time      timestamptz NOT NULL,
    end_time        timestamptz NOT NULL,
    timezone        text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) <= 64),
    status          text NOT NULL DEFAULT 'scheduled'
                    CHECK (status IN ('scheduled', 'confirmed', 'completed', 'cancelled', 'no_show')),
    location        text CHECK (length(location) <= 500),
    meeting_url     text CHECK (length(meeting_url) <= 2048 AND meeting_url ~ '^https?://[^[:space:]]+$'),
    -- Reminders sent: offset name -> when ({"24h": "2026-12-01T09:00:00Z"}); the reminder jobs'.
    reminders_sent  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(reminders_sent) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    CONSTRAINT appointments_time CHECK (end_time > start_time AND end_time - start_time <= interval '31 days'),
    CONSTRAINT appointments_customer FOREIGN KEY (organization_id, customer_id)
        REFERENCES customers (organization_id, id) ON DELETE SET NULL (customer_id),
    CONSTRAINT appointments_assignee FOREIGN KEY (organization_id, assigned_to)
        REFERENCES organization_members (organization_id, user_id) ON DELETE SET NULL (assigned_to),
    CONSTRAINT appointments_no_double_booking EXCLUDE USING gist (
        organization_id WITH =, assigned_to WITH =, tstzrange(start_time, end_time) WITH &&)
        WHERE (status IN ('scheduled', 'confirmed', 'completed'))
);
-- The organization's calendar by start (a range query also bounds start from below: an
-- appointment lasts at most 31 days); a member's calendar uses the exclusion constraint's index.
CREATE INDEX appointments_by_start ON appointments (organization_id, start_time, id);
CREATE INDEX appointments_by_customer ON appointments (organization_id, customer_id) WHERE customer_id IS NOT NULL;

CREATE TRIGGER check_timezone BEFORE INSERT OR UPDATE OF timezone ON appointments
    FOR EACH ROW EXECUTE FUNCTION app.check_timezone();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Moves that make sense: an appointment is confirmed (or unconfirmed), cancelled (and restored,
-- if its slot is still free), and once it has started, marked completed or no-show (and the one
-- corrected into the other). A new appointment starts scheduled or confirmed.
CREATE FUNCTION app.check_appointment_status() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    from_status text := CASE WHEN TG_OP = 'INSERT' THEN 'new' ELSE OLD.status END;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    IF NOT (from_status, NEW.status) IN (
            ('new', 'scheduled'), ('new', 'confirmed'),
            ('scheduled', 'confirmed'), ('confirmed', 'scheduled'),
            ('scheduled', 'cancelled'), ('confirmed', 'cancelled'), ('cancelled', 'scheduled'),
            ('scheduled', 'completed'), ('confirmed', 'completed'),
            ('scheduled', 'no_show'), ('confirmed', 'no_show'),
            ('completed', 'no_show'), ('no_show', 'completed')) THEN
        RAISE EXCEPTION 'an appointment cannot go from % to %', from_status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'appointments_status_move';
    END IF;
    IF NEW.status IN ('completed', 'no_show') AND NEW.start_time > now() THEN
        RAISE EXCEPTION 'an appointment can be % only once it has started', NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'appointments_status_move';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER check_status BEFORE INSERT OR UPDATE OF status ON appointments
    FOR EACH ROW EXECUTE FUNCTION app.check_appointment_status();

-- Viewers read, members book and change, admins delete (members cancel).
CALL app.protect_tenant_table('appointments', 'viewer', 'member', 'admin');
GRANT SELECT,
      INSERT (id, organization_id, customer_id, assigned_to, title, description, start_time, end_time,
              timezone, status, location, meeting_url),
      UPDATE (customer_id, assigned_to, title, description, start_time, end_time, timezone, status,
              location, meeting_url),
      DELETE
   ON appointments TO tenantry_runtime;
CALL audit.attach('appointments');
