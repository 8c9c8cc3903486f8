-- Reverts 0006_fasttrack (the tool migrations after it remove their tools first). The global
-- audit events of tools stay in audit.events until 0001 is reverted.
DROP TRIGGER tag_tool_event ON audit.events;
DROP INDEX audit.events_time;
DROP SCHEMA tool_access CASCADE;
CREATE OR REPLACE FUNCTION audit.forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
