-- Reverts 0045_ai_conversations.
DROP TRIGGER guard_ai_settings ON organizations;
DROP FUNCTION app.guard_ai_settings();
DROP TABLE ai_messages;
DROP TABLE ai_conversations;
DROP FUNCTION app.check_ai_context();
DROP FUNCTION app.admins_read_conversations(uuid);
DROP FUNCTION app.bound_plan_tier();
DROP TABLE ai_tools;
