-- A request's checks ride in the round trip that binds it (TenantTx::begin_checked): an API key
-- limited to other modules, an API key over its calls, a write over the storage limit are
-- refused before the transaction begins, with no statement of their own. This one raises where
-- app.actor_may_use answered false, so it can stand alone in that batch.
CREATE FUNCTION app.require_module(module text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT app.actor_may_use(module) THEN
        RAISE EXCEPTION 'this API key is not allowed to use the % module', module
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$;
GRANT EXECUTE ON FUNCTION app.require_module(text) TO tenantry_runtime;
