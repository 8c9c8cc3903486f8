-- Reverts 0047_ai_turn_in_one_statement (the titles removed from the trail stay removed).
DROP FUNCTION app.settle_ai_tokens(uuid, uuid, text, bigint, bigint, text);
DROP FUNCTION app.start_ai_reply(uuid, text, bigint);
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
DROP TRIGGER audit_insert ON ai_tools;
DROP TRIGGER audit_update ON ai_tools;
DROP TRIGGER audit_delete ON ai_tools;
CALL audit.attach('ai_messages', 'organization_id', 'id', ARRAY['content']);
DROP TRIGGER audit_insert ON ai_conversations;
DROP TRIGGER audit_update ON ai_conversations;
DROP TRIGGER audit_delete ON ai_conversations;
CALL audit.attach('ai_conversations');
