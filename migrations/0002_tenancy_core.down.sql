-- Reverts 0002_tenancy_core. Audit events of these tables stay in audit.events until 0001 is reverted.
DROP POLICY events_select ON audit.events;
DROP TABLE api_key_usage, api_keys, sessions, team_members, teams, organization_members, organizations, profiles, users;
DROP PROCEDURE app.protect_tenant_table(regclass, text, text, text);
DROP FUNCTION app.add_creator_as_owner(), app.keep_an_owner(), app.check_timezone(),
    app.begin_request(uuid, bytea, bytea, uuid, inet, text, text), app.resolve_session(bytea), app.resolve_api_key(bytea), app.orgs_with_role(text), app.my_role(uuid), app.actor_may_use(text),
    app.key_role(text), app.role_rank(text);
