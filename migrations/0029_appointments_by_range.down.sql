-- Reverts 0029_appointments_by_range.
CREATE INDEX appointments_by_start ON appointments (organization_id, start_time, id);
ALTER TABLE appointments DROP COLUMN during;
