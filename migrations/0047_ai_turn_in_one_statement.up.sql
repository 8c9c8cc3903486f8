-- The AI assistant's first byte (issue 20): what a turn checks and writes before the provider
-- is asked, in one statement; and conversations kept out of the audit trail admins read.
--
-- 1. A conversation's title comes from its first message, so it is as private as the message:
--    the trail (admins read it) records conversations without their titles, and the titles it
--    recorded before are removed from it — the one change ever made to past events, to take
--    back what should never have been there.
-- 2. Turns are not audited: each is an immutable row carrying its author and time, and their
--    events told admins who talked to the assistant when, about what, at what cost, in
--    conversations the organization keeps private from them. The conversation's own lifecycle
--    (started, archived, deleted) stays in the trail.
-- 3. The platform's tool catalog is audited like users: no organization, the staff member as
--    actor.
-- 4. app.start_ai_reply checks the tool's tier and reserves the reply's tokens in one call (the
--    tier check alone cost a definer function planned per call); the caller inserts the user's
--    message in the same statement. The title is set when the reply is settled.

DROP TRIGGER audit_insert ON ai_conversations;
DROP TRIGGER audit_update ON ai_conversations;
DROP TRIGGER audit_delete ON ai_conversations;
CALL audit.attach('ai_conversations', 'organization_id', 'id', ARRAY['title']);
ALTER TABLE audit.events DISABLE TRIGGER events_append_only;
UPDATE audit.events SET old_data = old_data - 'title', new_data = new_data - 'title'
 WHERE entity_type = 'ai_conversations' AND (old_data ? 'title' OR new_data ? 'title');
ALTER TABLE audit.events ENABLE TRIGGER events_append_only;

DROP TRIGGER audit_insert ON ai_messages;
DROP TRIGGER audit_update ON ai_messages;
DROP TRIGGER audit_delete ON ai_messages;

CALL audit.attach('ai_tools', '', 'id');

-- The bound member starts a reply with the active tool `tool_name` in their own `conversation`:
-- refused with SQLSTATE TPF01 (`feature_unavailable`) when the tool needs a higher tier than the
-- plan in force, with TP402 (`plan_limit`; DETAIL: limit, used including outstanding
-- reservations, requested) when `amount` tokens more would pass the month's `ai_tokens`; else
-- `amount` is reserved (see 0046) and the reservation returned.
CREATE FUNCTION app.start_ai_reply(conversation uuid, tool_name text, amount bigint) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid := app.org_with_role('member');
    who uuid := app.user_id();
    needed_tier text;
    plan record;
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
    SELECT t.required_tier INTO needed_tier FROM public.ai_tools t WHERE t.name = tool_name AND t.is_active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no active tool of the catalog is called %', tool_name
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'tool';
    END IF;
    -- One reserver or settler of the organization at a time; each statement after the lock
    -- reads what the previous holder committed.
    PERFORM pg_advisory_xact_lock(hashtextextended('ai_tokens:' || org::text, 0));
    DELETE FROM public.ai_token_reservations r WHERE r.organization_id = org AND r.expires_at <= now();
    -- The plan in force and the period's use, in one statement over inlinable functions.
    SELECT p.code, p.name, p.tier, (p.limits ->> 'ai_tokens')::bigint AS lim,
           coalesce((SELECT sum(t.usage_amount) FROM public.usage_tracking t
                      WHERE t.organization_id = org
                        AND t.billing_period = (app.period_starts(s, now()) AT TIME ZONE 'UTC')::date
                        AND t.resource_type = 'ai_tokens'), 0)::bigint
           + coalesce((SELECT sum(r.tokens) FROM public.ai_token_reservations r
                        WHERE r.organization_id = org), 0)::bigint AS used
      INTO plan
      FROM public.plans p LEFT JOIN public.subscriptions s ON s.organization_id = org
     WHERE app.plan_applies(p, s, now());
    IF app.tier_rank(plan.tier) < app.tier_rank(needed_tier) THEN
        RAISE EXCEPTION '% needs the % tier; the % plan is %', tool_name, needed_tier, plan.name, plan.tier
            USING ERRCODE = 'TPF01',
                  DETAIL = jsonb_build_object('entitlement', tool_name, 'plan', plan.code,
                                              'required_tier', needed_tier)::text;
    END IF;
    IF plan.lim IS NOT NULL AND plan.used + amount > plan.lim THEN
        RAISE EXCEPTION 'the plan allows % ai_tokens this billing period: % are used or reserved and this reply may need %',
                plan.lim, plan.used, amount
            USING ERRCODE = 'TP402',
                  DETAIL = jsonb_build_object('entitlement', 'ai_tokens', 'limit', plan.lim, 'used', plan.used,
                                              'requested', amount)::text;
    END IF;
    INSERT INTO public.ai_token_reservations (organization_id, user_id, conversation_id, tokens, expires_at)
    VALUES (org, who, conversation, amount, now() + interval '15 minutes')
    RETURNING ai_token_reservations.id INTO id;
    RETURN id;
END $$;
REVOKE EXECUTE ON FUNCTION app.start_ai_reply(uuid, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.start_ai_reply(uuid, text, bigint) TO tenantry_runtime;
DROP FUNCTION app.reserve_ai_tokens(uuid, bigint);

-- Settles as in 0046 and names an untitled conversation `title` (its first message's), in the
-- same update. 'New conversation' is the API's placeholder for a conversation started without
-- a title.
CREATE FUNCTION app.settle_ai_tokens(reservation uuid, conversation uuid, model text,
                                     input bigint, output bigint, title text) RETURNS bigint
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
    UPDATE public.ai_conversations c
       SET usage_tokens = c.usage_tokens + input + output,
           title = CASE WHEN c.title = 'New conversation' THEN coalesce(settle_ai_tokens.title, c.title)
                        ELSE c.title END
     WHERE c.organization_id = org AND c.id = conversation AND c.user_id = who;
    RETURN total;
END $$;
REVOKE EXECUTE ON FUNCTION app.settle_ai_tokens(uuid, uuid, text, bigint, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.settle_ai_tokens(uuid, uuid, text, bigint, bigint, text) TO tenantry_runtime;
DROP FUNCTION app.settle_ai_tokens(uuid, uuid, text, bigint, bigint);
