-- Reverts 0042_integration_mappings.
DROP TABLE integration_mappings;
