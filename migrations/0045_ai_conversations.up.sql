-- The AI assistant, first part (issue 20; Strive seed 004: AI_CONVERSATIONS, AI_TOOLS,
-- relationship 7, the index on user_id + created_at).
--
-- * `ai_tools`: the platform-wide catalog (not tenant data): every signed-in caller reads it;
--   platform admins manage it. `required_tier` gates a tool by the organization's plan.
-- * `ai_conversations`: a member's conversation, optionally about a project, customer or task
--   of the same organization — one the author can read (checked under the author's RLS by a
--   trigger, so a context in another organization, or hidden from them, is refused like any
--   cross-tenant reference). Private to its author; the organization's admins read them only
--   while its owner has turned on `settings.ai.admins_read_conversations` (only an owner may
--   change `settings.ai`; the change is audited like any other).
-- * `ai_messages`: the turns, one row each, in order — not the seed's `conversation_data`
--   document: a long conversation must not rewrite a growing JSON value on every turn, and a
--   reply cut off mid-stream is a row marked `partial`.

CREATE TABLE ai_tools (
    id              uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    name            text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    description     text NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    tool_type       text NOT NULL CHECK (tool_type IN ('chatbot', 'analysis', 'automation', 'integration')),
    required_tier   text NOT NULL CHECK (required_tier IN ('basic', 'pro', 'enterprise')),
    configuration   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(configuration) = 'object'),
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON ai_tools
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
-- Not tenant data: every caller reads the catalog; only the owner (platform admins, through
-- definer functions) writes it.
ALTER TABLE ai_tools ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_tools FORCE ROW LEVEL SECURITY;
CREATE POLICY ai_tools_read ON ai_tools FOR SELECT USING (true);
GRANT SELECT ON ai_tools TO tenantry_runtime;
INSERT INTO ai_tools (name, description, tool_type, required_tier, configuration) VALUES
    ('assistant', 'Ask about your organization''s work in a conversation.', 'chatbot', 'basic', '{}'),
    ('project_status', 'Summarise a project''s status from its tasks.', 'analysis', 'pro', '{"context": "project"}'),
    ('kpi_trend', 'Explain a KPI''s trend from its series.', 'analysis', 'pro', '{"context": "kpi"}');

-- The tier of the plan in force for the bound organization (NULL when none is bound).
CREATE FUNCTION app.bound_plan_tier() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT (app.plan_in_force(org)).tier FROM (SELECT app.org_with_role('viewer') AS org) b
     WHERE org IS NOT NULL
$$;
REVOKE EXECUTE ON FUNCTION app.bound_plan_tier() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.bound_plan_tier() TO tenantry_runtime;

CREATE TABLE ai_conversations (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title           text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    context_type    text NOT NULL DEFAULT 'general'
                    CHECK (context_type IN ('general', 'project', 'customer', 'task')),
    context_id      uuid,
    ai_model        text NOT NULL DEFAULT 'openai_gpt4'
                    CHECK (ai_model IN ('openai_gpt4', 'claude_sonnet', 'gemini')),
    -- Input and output tokens of every reply, for billing.
    usage_tokens    bigint NOT NULL DEFAULT 0 CHECK (usage_tokens >= 0),
    is_archived     boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    CONSTRAINT ai_conversations_context_pair CHECK ((context_type = 'general') = (context_id IS NULL))
);
-- "My conversations, newest first": the seed's user_id + created_at, inside the organization,
-- by id (time-ordered, and unique: a cursor).
CREATE INDEX ai_conversations_mine ON ai_conversations (organization_id, user_id, id DESC);
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON ai_conversations
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Whether the bound organization's admins may read its members' conversations.
CREATE FUNCTION app.admins_read_conversations(org uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((o.settings #>> '{ai,admins_read_conversations}')::boolean, false)
      FROM public.organizations o
     WHERE o.id = org AND org = app.org_with_role('admin')
$$;
REVOKE EXECUTE ON FUNCTION app.admins_read_conversations(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.admins_read_conversations(uuid) TO tenantry_runtime;

ALTER TABLE ai_conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_conversations FORCE ROW LEVEL SECURITY;
CREATE POLICY ai_conversations_select ON ai_conversations FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('viewer'))
           AND (user_id = (SELECT app.user_id())
                OR coalesce((SELECT app.admins_read_conversations(app.org_with_role('viewer'))), false)));
CREATE POLICY ai_conversations_insert ON ai_conversations FOR INSERT
    WITH CHECK (organization_id = (SELECT app.org_with_role('member')) AND user_id = (SELECT app.user_id()));
CREATE POLICY ai_conversations_update ON ai_conversations FOR UPDATE
    USING (organization_id = (SELECT app.org_with_role('member')) AND user_id = (SELECT app.user_id()))
    WITH CHECK (organization_id = (SELECT app.org_with_role('member')) AND user_id = (SELECT app.user_id()));
CREATE POLICY ai_conversations_delete ON ai_conversations FOR DELETE
    USING (organization_id = (SELECT app.org_with_role('member')) AND user_id = (SELECT app.user_id()));
GRANT SELECT, INSERT (id, organization_id, user_id, title, context_type, context_id, ai_model),
      UPDATE (title, is_archived), DELETE
   ON ai_conversations TO tenantry_runtime;
CALL audit.attach('ai_conversations');

-- A conversation's context must be a record of its organization that its author can read:
-- checked with the caller's rights (invoker), so RLS decides.
CREATE FUNCTION app.check_ai_context() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found boolean;
BEGIN
    found := CASE NEW.context_type
        WHEN 'general' THEN true
        WHEN 'project' THEN EXISTS (SELECT FROM public.projects p
                                     WHERE p.organization_id = NEW.organization_id AND p.id = NEW.context_id)
        WHEN 'customer' THEN EXISTS (SELECT FROM public.customers c
                                      WHERE c.organization_id = NEW.organization_id AND c.id = NEW.context_id)
        WHEN 'task' THEN EXISTS (SELECT FROM public.tasks t
                                  WHERE t.organization_id = NEW.organization_id AND t.id = NEW.context_id)
    END;
    IF NOT found THEN
        RAISE EXCEPTION 'no % % in this organization', NEW.context_type, NEW.context_id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'ai_conversations_context';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER check_context BEFORE INSERT ON ai_conversations
    FOR EACH ROW EXECUTE FUNCTION app.check_ai_context();

CREATE TABLE ai_messages (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL,
    conversation_id uuid NOT NULL,
    -- The conversation's author (every turn is added by them, replies included): the policy
    -- reads it off the row instead of joining each message to its conversation.
    user_id         uuid NOT NULL,
    role            text NOT NULL CHECK (role IN ('user', 'assistant')),
    content         text NOT NULL CHECK (length(content) <= 200000),
    -- An assistant reply cut off (the client left, the provider failed) is kept as `partial`.
    status          text NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'partial')),
    -- The provider's model and the reply's tokens (estimated when the provider sent none).
    model           text CHECK (length(model) <= 200),
    input_tokens    integer CHECK (input_tokens >= 0),
    output_tokens   integer CHECK (output_tokens >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, conversation_id) REFERENCES ai_conversations (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX ai_messages_in_order ON ai_messages (organization_id, conversation_id, id);
ALTER TABLE ai_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_messages FORCE ROW LEVEL SECURITY;
-- A message is as visible as its conversation: the same rule, on the same columns.
CREATE POLICY ai_messages_select ON ai_messages FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('viewer'))
           AND (user_id = (SELECT app.user_id())
                OR coalesce((SELECT app.admins_read_conversations(app.org_with_role('viewer'))), false)));
-- Only the author adds turns, to their own conversation.
CREATE POLICY ai_messages_insert ON ai_messages FOR INSERT
    WITH CHECK (organization_id = (SELECT app.org_with_role('member')) AND user_id = (SELECT app.user_id())
                AND EXISTS (SELECT FROM ai_conversations c
                             WHERE c.organization_id = ai_messages.organization_id
                               AND c.id = ai_messages.conversation_id AND c.user_id = ai_messages.user_id));
GRANT SELECT, INSERT (id, organization_id, conversation_id, user_id, role, content, status, model,
                      input_tokens, output_tokens)
   ON ai_messages TO tenantry_runtime;
-- The trail says a turn was added, not what it said (the conversation holds that).
CALL audit.attach('ai_messages', 'organization_id', 'id', ARRAY['content']);

-- Only an owner changes `settings.ai` (whether admins read members' conversations).
CREATE FUNCTION app.guard_ai_settings() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.settings -> 'ai' IS DISTINCT FROM OLD.settings -> 'ai'
       AND app.org_with_role('owner') IS DISTINCT FROM NEW.id
       AND current_user = 'tenantry_runtime' THEN
        RAISE EXCEPTION 'only an owner changes settings.ai'
            USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'organizations_ai_settings';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER guard_ai_settings BEFORE UPDATE OF settings ON organizations
    FOR EACH ROW EXECUTE FUNCTION app.guard_ai_settings();
