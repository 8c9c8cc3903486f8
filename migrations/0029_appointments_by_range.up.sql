-- Calendars read by range overlap, through a GiST index on the organization and the time range:
-- a week's view reads that week's appointments, where the B-tree on the start had to read every
-- appointment starting in the 31 days before the week too (the longest an appointment lasts) and
-- throw most away. It replaces that index. The range is a stored column so that the calendar's
-- condition applies one operator (`&&`, declared LEAKPROOF with the search operators: see
-- `tenantry_db::leakproof`) to a column: row-level security lets an index serve only such
-- conditions, and the range constructor, which raises an error for bounds out of order, could
-- never be declared so.
ALTER TABLE appointments ADD COLUMN during tstzrange NOT NULL GENERATED ALWAYS AS (tstzrange(start_time, end_time)) STORED;
CREATE INDEX appointments_by_range ON appointments USING gist (organization_id, during);
DROP INDEX appointments_by_start;
