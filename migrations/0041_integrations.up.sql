-- Integrations, first part (issue 19; Sesari requirement 5 and its `Integration` model): an
-- organization's connections to Stripe, Google Analytics and Google Sheets, their status, and
-- their credentials sealed by the vault (crates/server/src/vault).
--
-- * `integrations`: what members may see — provider, name, active flag, configuration that is
--   not secret, schedule, last sync, status and error. Admins manage them.
-- * `integration_secrets`: the sealed credentials (the vault's envelope: AES-256-GCM, a data key
--   wrapped by a key-encryption key that lives in configuration, never here), the id of that
--   key (for rotation), and a masked hint. Admins only; the API never returns the envelope.
--   Kept apart so a member's read of an integration cannot reach even the ciphertext.

CREATE TABLE integrations (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provider        text NOT NULL CHECK (provider IN ('stripe', 'google_analytics', 'google_sheets')),
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    is_active       boolean NOT NULL DEFAULT true,
    -- Not secret: a GA4 property id, a spreadsheet id and range, a currency.
    config          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    -- When syncs run (five-field cron, UTC).
    schedule        text NOT NULL DEFAULT '15 * * * *' CHECK (length(schedule) BETWEEN 9 AND 100),
    last_sync_at    timestamptz,
    sync_status     text NOT NULL DEFAULT 'pending' CHECK (sync_status IN ('pending', 'success', 'error')),
    -- The last failure, secrets redacted.
    error_message   text CHECK (length(error_message) <= 2000),
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, provider, name)
);
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON integrations
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CALL app.protect_tenant_table('integrations', 'viewer', 'admin', 'admin');
GRANT SELECT, INSERT (id, organization_id, provider, name, is_active, config, schedule, created_by),
      UPDATE (name, is_active, config, schedule), DELETE
   ON integrations TO tenantry_runtime;
CALL audit.attach('integrations');

CREATE TABLE integration_secrets (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL,
    integration_id  uuid NOT NULL,
    -- The vault's envelope; opens only for this organization, table, row (integration_id) and
    -- column.
    sealed          bytea NOT NULL CHECK (length(sealed) BETWEEN 64 AND 65536),
    -- The key-encryption key it is wrapped with (`tenantry vault rotate` finds old ones by it).
    key_id          text NOT NULL CHECK (key_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- What the API shows instead: the secret's kind and last characters ("api_key …4242").
    hint            text NOT NULL CHECK (length(hint) <= 200),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, integration_id),
    FOREIGN KEY (organization_id, integration_id) REFERENCES integrations (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX integration_secrets_key_id ON integration_secrets (key_id);
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON integration_secrets
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CALL app.protect_tenant_table('integration_secrets', 'admin', 'admin', 'admin');
GRANT SELECT, INSERT (id, organization_id, integration_id, sealed, key_id, hint),
      UPDATE (sealed, key_id, hint), DELETE
   ON integration_secrets TO tenantry_runtime;
-- Audited without the envelope: the trail says a secret changed, and its hint, never its bytes.
CALL audit.attach('integration_secrets', 'organization_id', 'id', ARRAY['sealed']);

-- Integrations count against the plan (`limits.integrations`), exactly, like seats and KPIs.
ALTER TABLE usage_gauges DROP CONSTRAINT usage_gauges_entitlement_check;
ALTER TABLE usage_gauges ADD CONSTRAINT usage_gauges_entitlement_check
    CHECK (entitlement IN ('seats', 'kpis', 'integrations'));
-- Counts a row of the entitlement named by the trigger's argument (for whatever is counted
-- next, too).
CREATE FUNCTION app.count_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM app.count_usage(NEW.organization_id, TG_ARGV[0], 1);
    ELSE
        PERFORM app.count_usage(OLD.organization_id, TG_ARGV[0], -1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER count_integrations AFTER INSERT OR DELETE ON integrations
    FOR EACH ROW EXECUTE FUNCTION app.count_rows('integrations');

-- The shipped free plan allowed one integration but lacked the feature that turns them on.
UPDATE plans SET features = array_append(features, 'integrations')
 WHERE code = 'free' AND NOT 'integrations' = ANY (features);
