-- Reverts 0034_billing.
DROP TRIGGER start_subscription ON organizations;
DROP TRIGGER count_kpis ON kpis;
DROP TRIGGER count_seats ON organization_members;
DROP FUNCTION app.start_subscription(), app.count_kpis(), app.count_seats(),
    app.count_usage(uuid, text, integer), app.plan_in_force(uuid),
    app.subscription_in_force(public.subscriptions, timestamptz);
DROP TABLE usage_gauges, subscriptions, plans;
