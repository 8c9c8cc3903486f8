-- Reverts 0028_appointment_reminders (queued reminder jobs are dropped).
DELETE FROM queue.jobs WHERE kind = 'appointments.remind';
DROP TRIGGER schedule_reminders ON appointments;
DROP TABLE appointment_settings;
DROP FUNCTION app.send_appointment_reminder(uuid, interval, timestamptz), app.html_escape(text),
              app.reminder_settings_changed(), app.appointment_changed(), app.reminder_offsets(uuid),
              app.schedule_reminders(public.appointments, interval[], interval[]),
              app.reminder_time(timestamptz, text, interval), app.reminder_offsets_valid(interval[]),
              app.reminder_name(interval);
