-- Identity: password sign-in with rate limiting.

-- Users set their own password (after the service checked the current one) and sign-in time.
GRANT UPDATE (password_hash, last_login_at) ON users TO tenantry_runtime;

-- Failed sign-ins, for rate limiting per email and per IP. Reached only through the functions
-- below; no role reads the table directly.
CREATE TABLE app.sign_in_failures (
    id          uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    email       text NOT NULL,
    ip_address  inet,
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_in_failures_email ON app.sign_in_failures (email, occurred_at DESC);
CREATE INDEX sign_in_failures_ip ON app.sign_in_failures (ip_address, occurred_at DESC);
ALTER TABLE app.sign_in_failures ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.sign_in_failures FORCE ROW LEVEL SECURITY;
CREATE POLICY sign_in_failures_none ON app.sign_in_failures FOR SELECT USING (false);

-- Seconds until another sign-in may be tried for this email or IP: 0 when allowed. At most 5
-- failures per email and 20 per IP in any 15 minutes.
CREATE FUNCTION app.sign_in_wait(email text, ip inet) RETURNS integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    by_email timestamptz;
    by_ip timestamptz;
BEGIN
    SELECT f.occurred_at INTO by_email FROM app.sign_in_failures f
     WHERE f.email = lower(sign_in_wait.email) AND f.occurred_at > now() - interval '15 minutes'
     ORDER BY f.occurred_at DESC OFFSET 4 LIMIT 1;
    IF ip IS NOT NULL THEN
        SELECT f.occurred_at INTO by_ip FROM app.sign_in_failures f
         WHERE f.ip_address = sign_in_wait.ip AND f.occurred_at > now() - interval '15 minutes'
         ORDER BY f.occurred_at DESC OFFSET 19 LIMIT 1;
    END IF;
    IF by_email IS NULL AND by_ip IS NULL THEN
        RETURN 0;
    END IF;
    RETURN greatest(1, ceil(extract(epoch FROM greatest(by_email, by_ip) + interval '15 minutes' - now())))::integer;
END $$;

CREATE FUNCTION app.record_sign_in_failure(email text, ip inet) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM app.sign_in_failures WHERE occurred_at < now() - interval '1 day';
    INSERT INTO app.sign_in_failures (email, ip_address) VALUES (lower($1), $2);
$$;

CREATE FUNCTION app.clear_sign_in_failures(email text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM app.sign_in_failures WHERE email = lower($1);
$$;

-- The account and password hash for an email (case-insensitive), for the service to verify a
-- password. Only active password accounts.
CREATE FUNCTION app.password_credentials(email text, OUT user_id uuid, OUT password_hash text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.id, u.password_hash FROM public.users u
     WHERE lower(u.email) = lower($1) AND u.is_active AND u.password_hash IS NOT NULL
$$;

-- The acting user's own password hash (to check the current password before a change).
CREATE FUNCTION app.my_password_hash() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.password_hash FROM public.users u WHERE u.id = app.user_id()
$$;

GRANT EXECUTE ON FUNCTION app.sign_in_wait(text, inet), app.record_sign_in_failure(text, inet),
    app.clear_sign_in_failures(text), app.password_credentials(text), app.my_password_hash()
    TO tenantry_runtime;
