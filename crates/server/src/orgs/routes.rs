//! HTTP routes of organizations, members and teams under `/v1/orgs`.

use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{
    store, Member, MemberChanges, NewOrganization, NewTeam, Organization, OrganizationChanges,
    OwnershipTransfer, Team, TeamChanges,
};
use crate::http::{
    AppState, Conflict, Forbidden, Invalid, Json, NotFound, Path, Problem, Query, Unauthorized,
};
use crate::kernel::access::Module;
use crate::kernel::access::{require_role, Role};
use crate::kernel::error::{Found, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::{OrgTx, UserTx};
use crate::kernel::page::{Page, PageParams};

const MODULE: Module = Module::Orgs;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(get_org, update_org, delete_org))
        .routes(routes!(list_members))
        .routes(routes!(transfer_ownership))
        .routes(routes!(update_member, remove_member))
        .routes(routes!(list_teams, create_team))
        .routes(routes!(get_team, update_team, delete_team))
        .routes(routes!(add_team_member, remove_team_member))
        .layer(axum::Extension(MODULE))
}

/// Create an organization; the caller becomes its owner.
#[utoipa::path(post, path = "/v1/orgs", tag = "organizations", security(("bearer" = [])),
    request_body = NewOrganization,
    responses(
        (status = 201, body = Organization),
        Unauthorized,
        (status = 409, description = "slug_taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_org(
    mut tx: UserTx,
    new: Valid<NewOrganization>,
) -> Result<(StatusCode, Json<Organization>)> {
    if tx.user_id().await?.is_none() {
        return Err(crate::Error::Forbidden(
            "API keys cannot create organizations",
        ));
    }
    let org = store::create(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(org)))
}

/// The organizations the caller belongs to.
#[utoipa::path(get, path = "/v1/orgs", tag = "organizations", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<Organization>), Unauthorized))]
pub async fn list_orgs(
    mut tx: UserTx,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Organization>>> {
    let orgs = store::list_mine(&mut tx, &page).await?;
    tx.commit().await?;
    Ok(Json(orgs))
}

/// One organization the caller belongs to.
#[utoipa::path(get, path = "/v1/orgs/{org}", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses((status = 200, body = Organization), NotFound))]
pub async fn get_org(mut tx: OrgTx, Path(org): Path<Uuid>) -> Result<Json<Organization>> {
    let found = store::get(&mut tx, org).await?.found()?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Change an organization (admins).
#[utoipa::path(patch, path = "/v1/orgs/{org}", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = OrganizationChanges,
    responses(
        (status = 200, body = Organization),
        Forbidden,
        NotFound,
        Conflict,
        Invalid,
    ))]
pub async fn update_org(
    mut tx: OrgTx,
    changes: Valid<OrganizationChanges>,
) -> Result<Json<Organization>> {
    let updated = store::update(&mut tx, &changes).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteConfirmation {
    /// The organization's slug, repeated to confirm.
    pub confirm: String,
}

/// Delete an organization and all its data (owners; `confirm` must repeat the slug).
#[utoipa::path(delete, path = "/v1/orgs/{org}", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), DeleteConfirmation),
    responses(
        (status = 204, description = "Deleted"),
        Forbidden,
        NotFound,
        Invalid,
    ))]
pub async fn delete_org(
    mut tx: OrgTx,
    Query(confirmation): Query<DeleteConfirmation>,
) -> Result<StatusCode> {
    store::delete(&mut tx, &confirmation.confirm).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Members of an organization.
#[utoipa::path(get, path = "/v1/orgs/{org}/members", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), PageParams),
    responses((status = 200, body = Page<Member>), NotFound))]
pub async fn list_members(
    mut tx: OrgTx,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Member>>> {
    let members = store::list_members(&mut tx, &page).await?;
    tx.commit().await?;
    Ok(Json(members))
}

/// Change a member's role or permissions (admins; ownership only by owners; the last owner stays).
#[utoipa::path(patch, path = "/v1/orgs/{org}/members/{user}", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("user" = Uuid, Path, description = "User id")),
    request_body = MemberChanges,
    responses(
        (status = 200, body = Member),
        Forbidden,
        NotFound,
        (status = 409, description = "last_owner", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_member(
    mut tx: OrgTx,
    Path((_org, user)): Path<(Uuid, Uuid)>,
    changes: Valid<MemberChanges>,
) -> Result<Json<Member>> {
    let member = store::update_member(&mut tx, user, &changes).await?;
    tx.commit().await?;
    Ok(Json(member))
}

/// Remove a member, or leave when `user` is the caller (the last owner stays).
#[utoipa::path(delete, path = "/v1/orgs/{org}/members/{user}", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("user" = Uuid, Path, description = "User id")),
    responses(
        (status = 204, description = "Removed"),
        Forbidden,
        NotFound,
        (status = 409, description = "last_owner", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_member(
    mut tx: OrgTx,
    Path((_org, user)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::remove_member(&mut tx, user).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Teams of an organization.
#[utoipa::path(get, path = "/v1/orgs/{org}/teams", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), PageParams),
    responses((status = 200, body = Page<Team>), NotFound))]
pub async fn list_teams(mut tx: OrgTx, Query(page): Query<PageParams>) -> Result<Json<Page<Team>>> {
    let teams = store::list_teams(&mut tx, &page).await?;
    tx.commit().await?;
    Ok(Json(teams))
}

/// Create a team (admins).
#[utoipa::path(post, path = "/v1/orgs/{org}/teams", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = NewTeam,
    responses(
        (status = 201, body = Team),
        Forbidden,
        NotFound,
        (status = 409, description = "team_name_taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed or invalid_reference", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_team(mut tx: OrgTx, new: Valid<NewTeam>) -> Result<(StatusCode, Json<Team>)> {
    let team = store::create_team(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(team)))
}

/// One team with its members.
#[utoipa::path(get, path = "/v1/orgs/{org}/teams/{team}", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("team" = Uuid, Path, description = "Team id")),
    responses((status = 200, body = Team), NotFound))]
pub async fn get_team(mut tx: OrgTx, Path((_org, team)): Path<(Uuid, Uuid)>) -> Result<Json<Team>> {
    require_role(&mut tx, Role::Viewer).await?;
    let found = store::get_team(&mut tx, team).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Change a team (admins).
#[utoipa::path(patch, path = "/v1/orgs/{org}/teams/{team}", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("team" = Uuid, Path, description = "Team id")),
    request_body = TeamChanges,
    responses(
        (status = 200, body = Team),
        Forbidden,
        NotFound,
        Invalid,
    ))]
pub async fn update_team(
    mut tx: OrgTx,
    Path((_org, team)): Path<(Uuid, Uuid)>,
    changes: Valid<TeamChanges>,
) -> Result<Json<Team>> {
    let updated = store::update_team(&mut tx, team, &changes).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Delete a team (admins).
#[utoipa::path(delete, path = "/v1/orgs/{org}/teams/{team}", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("team" = Uuid, Path, description = "Team id")),
    responses(
        (status = 204, description = "Deleted"),
        Forbidden,
        NotFound,
    ))]
pub async fn delete_team(
    mut tx: OrgTx,
    Path((_org, team)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::delete_team(&mut tx, team).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Put a member of the organization into a team (admins; idempotent).
#[utoipa::path(put, path = "/v1/orgs/{org}/teams/{team}/members/{user}", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("team" = Uuid, Path, description = "Team id"), ("user" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, body = Team),
        Forbidden,
        NotFound,
        (status = 422, description = "invalid_reference: not a member", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn add_team_member(
    mut tx: OrgTx,
    Path((_org, team, user)): Path<(Uuid, Uuid, Uuid)>,
) -> Result<Json<Team>> {
    let updated = store::add_team_member(&mut tx, team, user).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Take a member out of a team (admins).
#[utoipa::path(delete, path = "/v1/orgs/{org}/teams/{team}/members/{user}", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("team" = Uuid, Path, description = "Team id"), ("user" = Uuid, Path, description = "User id")),
    responses(
        (status = 204, description = "Removed"),
        Forbidden,
        NotFound,
    ))]
pub async fn remove_team_member(
    mut tx: OrgTx,
    Path((_org, team, user)): Path<(Uuid, Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::remove_team_member(&mut tx, team, user).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Hand ownership to another member: they become an owner, the caller an admin (owners).
#[utoipa::path(post, path = "/v1/orgs/{org}/transfer-ownership", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = OwnershipTransfer,
    responses(
        (status = 200, body = Member, description = "The new owner"),
        Forbidden,
        NotFound,
        Invalid,
    ))]
pub async fn transfer_ownership(
    mut tx: OrgTx,
    Json(transfer): Json<OwnershipTransfer>,
) -> Result<Json<Member>> {
    let owner = store::transfer_ownership(&mut tx, transfer.user_id).await?;
    tx.commit().await?;
    Ok(Json(owner))
}
