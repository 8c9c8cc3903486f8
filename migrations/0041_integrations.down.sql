-- Reverts 0041_integrations.
UPDATE plans SET features = array_remove(features, 'integrations') WHERE code = 'free';
DROP TRIGGER count_integrations ON integrations;
DROP FUNCTION app.count_rows();
DELETE FROM usage_gauges WHERE entitlement = 'integrations';
ALTER TABLE usage_gauges DROP CONSTRAINT usage_gauges_entitlement_check;
ALTER TABLE usage_gauges ADD CONSTRAINT usage_gauges_entitlement_check
    CHECK (entitlement IN ('seats', 'kpis'));
DROP TABLE integration_secrets, integrations;
