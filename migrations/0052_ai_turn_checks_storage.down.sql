-- Back to 0047's app.start_ai_reply (the binding checks storage again: ai::reply::prepare).

CREATE OR REPLACE FUNCTION app.start_ai_reply(conversation uuid, tool_name text, amount bigint) RETURNS uuid
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
