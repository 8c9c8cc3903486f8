-- A sign-in attempt counts against the per-email and per-IP limits before its password is
-- hashed, not after: a burst of concurrent guesses cannot all pass the check while none has
-- failed yet. The check and the record are one step, serialized per email and per IP.

-- Seconds to wait (0: the attempt is recorded and may go on). A successful sign-in removes the
-- email's attempts (app.clear_sign_in_failures); a failed one leaves its attempt counted.
CREATE FUNCTION app.begin_sign_in_attempt(email text, ip inet) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    wait integer;
BEGIN
    PERFORM app.require_service();
    -- Email first, then IP, in every caller: no two attempts wait on each other in a cycle.
    PERFORM pg_advisory_xact_lock(hashtextextended('sign-in email ' || lower(begin_sign_in_attempt.email), 0));
    IF ip IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('sign-in ip ' || host(ip), 0));
    END IF;
    wait := app.sign_in_wait(email, ip);
    IF wait = 0 THEN
        DELETE FROM app.sign_in_failures WHERE occurred_at < now() - interval '1 day';
        INSERT INTO app.sign_in_failures (email, ip_address) VALUES (lower(begin_sign_in_attempt.email), ip);
    END IF;
    RETURN wait;
END $$;
GRANT EXECUTE ON FUNCTION app.begin_sign_in_attempt(text, inet) TO tenantry_runtime;
