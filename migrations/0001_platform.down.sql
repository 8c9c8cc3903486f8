-- Reverts 0001_platform: back to PostgreSQL 15's defaults.
DROP SCHEMA audit CASCADE;
DROP SCHEMA app CASCADE;
ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
REVOKE ALL ON SCHEMA public FROM tenantry_runtime;
GRANT USAGE ON SCHEMA public TO PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM tenantry_runtime', current_database());
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
END $$;
