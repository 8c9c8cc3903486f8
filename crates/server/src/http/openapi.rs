//! The OpenAPI 3.1 document, assembled from every handler's `#[utoipa::path]`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::Problem;
use crate::kernel::error::FieldError;
use crate::{api_keys, audit, fasttrack, goals, identity, invitations, kpis, orgs};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tenantry API", description = "Multi-tenant business backend. Every organization's data is isolated by PostgreSQL row-level security."),
    paths(
        super::healthz, super::readyz,
        identity::routes::sign_up, identity::routes::sign_in, identity::routes::sign_out,
        identity::routes::oidc_start, identity::routes::oidc_callback,
        identity::routes::me, identity::routes::update_me, identity::routes::change_password,
        identity::routes::list_sessions, identity::routes::end_session, identity::routes::end_all_sessions,
        orgs::routes::create_org, orgs::routes::list_orgs, orgs::routes::get_org,
        orgs::routes::update_org, orgs::routes::delete_org,
        orgs::routes::list_members, orgs::routes::update_member, orgs::routes::remove_member,
        orgs::routes::list_teams, orgs::routes::create_team, orgs::routes::get_team,
        orgs::routes::update_team, orgs::routes::delete_team,
        orgs::routes::add_team_member, orgs::routes::remove_team_member,
        invitations::routes::invite, invitations::routes::list_invitations,
        invitations::routes::resend_invitation, invitations::routes::revoke_invitation,
        invitations::routes::accept_invitation,
        audit::routes::activity,
        kpis::routes::list_kpis, kpis::routes::create_kpi, kpis::routes::get_kpi, kpis::routes::update_kpi,
        kpis::routes::delete_kpi, kpis::routes::restore_kpi, kpis::routes::purge_kpi,
        kpis::routes::list_points, kpis::routes::record_points, kpis::routes::series, kpis::routes::dashboard, kpis::routes::ingest, kpis::routes::export_points,
        goals::routes::list_goals, goals::routes::create_goal, goals::routes::get_goal, goals::routes::update_goal,
        goals::routes::delete_goal, goals::routes::restore_goal, goals::routes::purge_goal,
        goals::routes::link_kpi, goals::routes::unlink_kpi,
        orgs::routes::transfer_ownership, identity::routes::delete_me,
        api_keys::routes::create_key, api_keys::routes::list_keys, api_keys::routes::revoke_key,
        fasttrack::routes::list_tools, fasttrack::routes::list_entries, fasttrack::routes::create_entry,
        fasttrack::routes::get_entry, fasttrack::routes::update_entry, fasttrack::routes::change_status,
        fasttrack::routes::entry_history, fasttrack::routes::list_grants, fasttrack::routes::put_grant,
        fasttrack::routes::revoke_grant, fasttrack::routes::tool_report, fasttrack::routes::my_entries, fasttrack::routes::list_archived,
        fasttrack::routes::list_rows, fasttrack::routes::add_row, fasttrack::routes::update_row, fasttrack::routes::delete_row,
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "identity", description = "The signed-in user"),
        (name = "organizations", description = "Organizations, members and teams"),
        (name = "api keys", description = "API keys of service accounts"),
        (name = "kpis", description = "KPIs, their history, progress and change"),
        (name = "fasttrack", description = "Fast Track coaching tools: entries, history, grants, progress"),
    )
)]
pub struct ApiDoc;

impl ApiDoc {
    pub fn build() -> utoipa::openapi::OpenApi {
        Self::openapi()
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
