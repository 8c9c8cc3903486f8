-- The AI assistant's replies (issue 20): token budgets that hold under concurrency.
--
-- Before asking a provider for a reply, the request reserves the most tokens it can spend (an
-- upper bound of its input plus the output cap it sends) against the organization's monthly
-- `ai_tokens` limit; afterwards it settles: the reservation goes, the tokens actually spent are
-- added to `usage_tracking` and to the conversation, in one transaction. Reserving and settling
-- take the same per-organization lock, so a reservation sees every other one and every settled
-- count: twenty requests racing for room for five get five through, and usage never passes the
-- limit as long as replies stay within what they reserved (the input bound is in bytes, which
-- no tokenizer exceeds). A reservation left behind by a process that died mid-reply expires.

CREATE TABLE ai_token_reservations (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id uuid NOT NULL,
    tokens          bigint NOT NULL CHECK (tokens > 0),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, id)
);
-- Members see what their organization holds in flight; only the functions below write it. Not
-- audited: a hold on a count, like the counts themselves (the replies are audited).
ALTER TABLE ai_token_reservations ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_token_reservations FORCE ROW LEVEL SECURITY;
CREATE POLICY ai_token_reservations_select ON ai_token_reservations FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('viewer')));
GRANT SELECT ON ai_token_reservations TO tenantry_runtime;

-- The bound member reserves `amount` tokens for a reply in their own `conversation`; returns
-- the reservation. Refused with SQLSTATE TP402 (`plan_limit`; DETAIL: limit, used including
-- outstanding reservations, requested) when the period's use plus what is reserved plus
-- `amount` would pass the plan's limit.
CREATE FUNCTION app.reserve_ai_tokens(conversation uuid, amount bigint) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid := app.org_with_role('member');
    who uuid := app.user_id();
    lim bigint;
    used bigint;
    id uuid;
BEGIN
    IF org IS NULL OR who IS NULL THEN
        RAISE EXCEPTION 'only a member asks for replies' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF amount IS NULL OR amount <= 0 THEN
        RAISE EXCEPTION 'a reservation is at least one token' USING ERRCODE = 'check_violation';
    END IF;
    IF NOT EXISTS (SELECT FROM public.ai_conversations c
                    WHERE c.organization_id = org AND c.id = conversation AND c.user_id = who) THEN
        RAISE EXCEPTION 'no conversation % of yours', conversation USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- One reserver or settler of the organization at a time; each statement after the lock
    -- reads what the previous holder committed.
    PERFORM pg_advisory_xact_lock(hashtextextended('ai_tokens:' || org::text, 0));
    DELETE FROM public.ai_token_reservations r WHERE r.organization_id = org AND r.expires_at <= now();
    -- One statement over the inlinable plan and period functions (app.usage_of, made of
    -- definer functions, cost 2.8 ms per call here; this, a tenth of it).
    SELECT (p.limits ->> 'ai_tokens')::bigint,
           coalesce((SELECT sum(t.usage_amount) FROM public.usage_tracking t
                      WHERE t.organization_id = org
                        AND t.billing_period = (app.period_starts(s, now()) AT TIME ZONE 'UTC')::date
                        AND t.resource_type = 'ai_tokens'), 0)::bigint
           + coalesce((SELECT sum(r.tokens) FROM public.ai_token_reservations r
                        WHERE r.organization_id = org), 0)::bigint
      INTO lim, used
      FROM public.plans p LEFT JOIN public.subscriptions s ON s.organization_id = org
     WHERE app.plan_applies(p, s, now());
    IF lim IS NOT NULL AND used + amount > lim THEN
        RAISE EXCEPTION 'the plan allows % ai_tokens this billing period: % are used or reserved and this reply may need %',
                lim, used, amount
            USING ERRCODE = 'TP402',
                  DETAIL = jsonb_build_object('entitlement', 'ai_tokens', 'limit', lim, 'used', used,
                                              'requested', amount)::text;
    END IF;
    INSERT INTO public.ai_token_reservations (organization_id, user_id, conversation_id, tokens, expires_at)
    VALUES (org, who, conversation, amount, now() + interval '15 minutes')
    RETURNING ai_token_reservations.id INTO id;
    RETURN id;
END $$;
REVOKE EXECUTE ON FUNCTION app.reserve_ai_tokens(uuid, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.reserve_ai_tokens(uuid, bigint) TO tenantry_runtime;

-- The bound member settles `reservation`: it goes, and `input + output` tokens of `model` are
-- added to the period's usage and to its conversation (when that still exists). Returns the
-- period's total. Settling an expired or unknown reservation still counts the tokens: they
-- were spent.
CREATE FUNCTION app.settle_ai_tokens(reservation uuid, conversation uuid, model text,
                                     input bigint, output bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid := app.org_with_role('member');
    who uuid := app.user_id();
    total bigint;
BEGIN
    IF org IS NULL OR who IS NULL THEN
        RAISE EXCEPTION 'only a member settles replies' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF input IS NULL OR output IS NULL OR input < 0 OR output < 0 THEN
        RAISE EXCEPTION 'tokens are counts of at least 0' USING ERRCODE = 'check_violation';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('ai_tokens:' || org::text, 0));
    DELETE FROM public.ai_token_reservations r
     WHERE r.organization_id = org AND r.id = reservation AND r.user_id = who;
    total := app.add_usage(org, 'ai_tokens', coalesce(model, ''), who, input + output);
    UPDATE public.ai_conversations c SET usage_tokens = c.usage_tokens + input + output
     WHERE c.organization_id = org AND c.id = conversation AND c.user_id = who;
    RETURN total;
END $$;
REVOKE EXECUTE ON FUNCTION app.settle_ai_tokens(uuid, uuid, text, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.settle_ai_tokens(uuid, uuid, text, bigint, bigint) TO tenantry_runtime;

-- A tool is data: its tier, what it needs (`configuration.context`: `project` — a conversation
-- about a project — or `kpi` — a `kpi_id` with the message) and what the model is told
-- (`configuration.instructions`). Platform admins add and change tools without a release.
UPDATE ai_tools SET configuration = configuration || jsonb_build_object('instructions',
    'Summarise the project''s status from its tasks: progress, what is overdue or blocked, what comes next.')
 WHERE name = 'project_status';
UPDATE ai_tools SET configuration = configuration || jsonb_build_object('instructions',
    'Explain this KPI''s trend from its values: direction, pace, how far it is from its target, anything unusual.')
 WHERE name = 'kpi_trend';
ALTER TABLE ai_tools ADD CONSTRAINT ai_tools_configuration CHECK (
    (NOT configuration ? 'context' OR configuration ->> 'context' IN ('project', 'kpi'))
    AND (NOT configuration ? 'instructions'
         OR (jsonb_typeof(configuration -> 'instructions') = 'string'
             AND length(configuration ->> 'instructions') BETWEEN 1 AND 4000)));

-- Staff screens check the caller's platform role first (it raises unless they are staff).
GRANT EXECUTE ON FUNCTION app.require_platform_role(text[]) TO tenantry_runtime;

-- Adds the tool `tool_name`, or changes it (platform admins; a tool is never deleted, it is
-- switched off). Returns its id.
CREATE FUNCTION app.platform_put_ai_tool(tool_name text, description text, tool_type text,
                                         required_tier text, configuration jsonb, is_active boolean)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id uuid;
BEGIN
    PERFORM app.require_platform_role(ARRAY['admin']);
    INSERT INTO public.ai_tools AS t (name, description, tool_type, required_tier, configuration, is_active)
    VALUES (tool_name, description, tool_type, required_tier, configuration, is_active)
    ON CONFLICT (name) DO UPDATE
       SET description = excluded.description, tool_type = excluded.tool_type,
           required_tier = excluded.required_tier, configuration = excluded.configuration,
           is_active = excluded.is_active
    RETURNING t.id INTO id;
    RETURN id;
END $$;
REVOKE EXECUTE ON FUNCTION app.platform_put_ai_tool(text, text, text, text, jsonb, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.platform_put_ai_tool(text, text, text, text, jsonb, boolean) TO tenantry_runtime;
