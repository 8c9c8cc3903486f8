-- Reverts 0027_appointments.
DROP TABLE appointments;
DROP FUNCTION app.check_appointment_status();
DROP EXTENSION IF EXISTS btree_gist;
