DROP FUNCTION app.claim_verified_email(uuid), app.user_by_identity(text, text), app.user_by_email(text), app.user_by_clerk_id(text),
    app.begin_oidc_flow(bytea, text, text), app.finish_oidc_flow(bytea);
DROP TABLE app.oidc_flows, identities;
DROP FUNCTION app.solely_owned_organizations(), app.accept_invitation(bytea);
DROP TABLE outbox, invitations;
DROP FUNCTION app.sign_in_wait(text, inet), app.record_sign_in_failure(text, inet),
    app.clear_sign_in_failures(text), app.password_credentials(text), app.my_password_hash();
DROP TABLE app.sign_in_failures;
REVOKE UPDATE (password_hash, last_login_at) ON users FROM tenantry_runtime;
