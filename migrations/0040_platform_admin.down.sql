-- Reverts 0040_platform_admin.
ALTER TABLE organizations ADD COLUMN subscription_status text NOT NULL DEFAULT 'trial'
    CHECK (subscription_status IN ('active', 'inactive', 'trial'));
ALTER TABLE users ADD COLUMN subscription_tier text NOT NULL DEFAULT 'free'
    CHECK (subscription_tier IN ('free', 'basic', 'pro', 'enterprise'));
GRANT SELECT (subscription_tier) ON users TO tenantry_runtime;
DROP FUNCTION app.platform_set_role(uuid, text), app.platform_set_active(uuid, boolean),
    app.platform_set_plan(uuid, text, timestamptz, text), app.platform_users(uuid, integer, text),
    app.platform_organizations(uuid, integer, text), app.subscription_status_of(uuid),
    app.require_platform_role(text[]);
