-- Reverts 0046_ai_replies.
DROP FUNCTION app.platform_put_ai_tool(text, text, text, text, jsonb, boolean);
REVOKE EXECUTE ON FUNCTION app.require_platform_role(text[]) FROM tenantry_runtime;
ALTER TABLE ai_tools DROP CONSTRAINT ai_tools_configuration;
UPDATE ai_tools SET configuration = configuration - 'instructions';
DROP FUNCTION app.settle_ai_tokens(uuid, uuid, text, bigint, bigint);
DROP FUNCTION app.reserve_ai_tokens(uuid, bigint);
DROP TABLE ai_token_reservations;
