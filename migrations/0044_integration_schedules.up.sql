-- Integrations, fourth part (issue 19): syncs on their own schedule, backfills per mapping, one
-- email when an integration stops syncing, and the plan's allowance.
--
-- * `integrations.next_sync_at`: when the platform's dispatcher (job `integrations.dispatch`,
--   every minute) next queues a sync of it, acting for the admin who connected it. Due at once
--   for a new one; advanced to the schedule's next slot when queued; later while failures back
--   off; NULL (paused) after a refusal (a revoked token, a bad sheet) until an admin changes its
--   credentials, configuration or mappings, or asks for a sync.
-- * `integration_mappings.synced_at`: the last successful sync that covered this mapping. A
--   mapping never synced is backfilled by the next run (mapping a metric later backfills it too).
-- * `integrations.error_notified_at`: when its admins were told it turned `error`; once per
--   turn, cleared by the next success.
-- * `app.integration_in_plan(org, id)`: whether the plan in force lets this integration sync —
--   the feature is in it, and the integration is among the first `limits.integrations` active
--   ones (oldest first: ids are time-ordered, and the primary key counts them). A plan that lapses to fewer pauses the newest; none is deleted.

ALTER TABLE integrations ADD COLUMN next_sync_at timestamptz DEFAULT now();
ALTER TABLE integrations ADD COLUMN error_notified_at timestamptz;
GRANT UPDATE (next_sync_at, error_notified_at) ON integrations TO tenantry_runtime;
GRANT INSERT (next_sync_at) ON integrations TO tenantry_runtime;
-- The dispatcher's scan: only what is due.
CREATE INDEX integrations_due ON integrations (next_sync_at) WHERE is_active;

ALTER TABLE integration_mappings ADD COLUMN synced_at timestamptz;
GRANT UPDATE (kpi_id, synced_at) ON integration_mappings TO tenantry_runtime;

-- Whether the plan in force lets `integration` of `org` sync. The owner's (the dispatcher's);
-- the runtime role reaches it only through the function below, for its bound organization.
CREATE FUNCTION app.integration_allowed(org uuid, integration uuid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'integrations' = ANY (p.features)
           AND (p.limits ->> 'integrations' IS NULL
                OR (SELECT count(*) FROM public.integrations o
                     WHERE o.organization_id = org AND o.is_active AND o.id <= i.id)
                   <= (p.limits ->> 'integrations')::bigint)
      FROM public.integrations i, app.plan_in_force(org) p
     WHERE i.organization_id = org AND i.id = integration
$$;
REVOKE EXECUTE ON FUNCTION app.integration_allowed(uuid, uuid) FROM PUBLIC;

-- The same for the runtime role, about the organization it is bound to only (another's answer
-- is NULL).
CREATE FUNCTION app.integration_in_plan(org uuid, integration uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT app.integration_allowed(org, integration) WHERE org = app.org_with_role('viewer')
$$;
REVOKE EXECUTE ON FUNCTION app.integration_in_plan(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.integration_in_plan(uuid, uuid) TO tenantry_runtime;

-- Raises what connecting one more would (TPF01 without the feature, TP402 over the count) when
-- the bound organization's plan does not let `integration` sync.
CREATE FUNCTION app.require_integration_in_plan(integration uuid) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid := app.org_with_role('viewer');
BEGIN
    IF app.integration_allowed(org, integration) IS NOT false THEN
        RETURN;
    END IF;
    PERFORM app.require_feature('integrations');
    PERFORM app.refuse_over_limit('integrations', ((app.plan_in_force(org)).limits ->> 'integrations')::bigint,
        (SELECT count(*) FROM public.integrations i WHERE i.organization_id = org AND i.is_active));
END $$;
REVOKE EXECUTE ON FUNCTION app.require_integration_in_plan(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.require_integration_in_plan(uuid) TO tenantry_runtime;

-- Tells the bound organization's owners and admins that `integration` stopped syncing, once:
-- nothing when they were told since it last succeeded. The caller is a sync acting for an
-- admin.
CREATE FUNCTION app.announce_integration_error(integration uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    org uuid := app.org_with_role('admin');
    i public.integrations;
    org_name text;
    subject text;
    body text;
BEGIN
    UPDATE public.integrations SET error_notified_at = now()
     WHERE organization_id = org AND id = integration AND sync_status = 'error'
       AND error_notified_at IS NULL
    RETURNING * INTO i;
    IF i.id IS NULL THEN
        RETURN;
    END IF;
    SELECT o.name INTO org_name FROM public.organizations o WHERE o.id = org;
    subject := 'The integration ' || i.name || ' of ' || org_name || ' stopped syncing';
    body := 'The ' || i.provider || ' integration "' || i.name || '" of ' || org_name
            || ' failed: ' || coalesce(i.error_message, 'no message')
            || CASE WHEN i.next_sync_at IS NULL
                    THEN E'\nIts scheduled syncs are paused until an admin connects it again (new credentials or configuration) or starts a sync.'
                    ELSE E'\nScheduled syncs keep trying, less often, until one succeeds.' END
            || E'\nThe KPIs it feeds get no new values meanwhile.';
    INSERT INTO public.outbox (organization_id, kind, recipient, subject, body, html_body)
    SELECT org, 'integration_error', u.email, subject, body,
           '<p>' || replace(app.html_escape(body), E'\n', '<br>') || '</p>'
      FROM public.organization_members m JOIN public.users u ON u.id = m.user_id
     WHERE m.organization_id = org AND m.role IN ('owner', 'admin') AND u.is_active;
END $$;
REVOKE EXECUTE ON FUNCTION app.announce_integration_error(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.announce_integration_error(uuid) TO tenantry_runtime;

INSERT INTO queue.schedules (name, cron, kind) VALUES ('integration-syncs', '* * * * *', 'integrations.dispatch');
