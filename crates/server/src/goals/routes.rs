//! HTTP routes of goals under `/v1/orgs/{org}/goals`.

use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{store, Goal, GoalChanges, Link, NewGoal};
use crate::http::{AppState, Forbidden, Invalid, Json, NotFound, Path, Problem, Query};
use crate::kernel::access::Module;
use crate::kernel::error::Result;
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Limit, Page, PageParams};

const MODULE: Module = Module::Kpis;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_goals, create_goal))
        .routes(routes!(get_goal, update_goal, delete_goal))
        .routes(routes!(restore_goal))
        .routes(routes!(purge_goal))
        .routes(routes!(link_kpi, unlink_kpi))
        .layer(axum::Extension(MODULE))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GoalListParams {
    /// List deleted goals instead of live ones.
    #[serde(default)]
    pub deleted: bool,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    pub after: Option<Uuid>,
}

/// The organization's goals with their KPIs and progress.
#[utoipa::path(get, path = "/v1/orgs/{org}/goals", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), GoalListParams),
    responses((status = 200, body = Page<Goal>), NotFound))]
pub async fn list_goals(
    mut tx: OrgTx,
    Query(params): Query<GoalListParams>,
) -> Result<Json<Page<Goal>>> {
    let page = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let goals = store::list(&mut tx, &page, params.deleted).await?;
    tx.commit().await?;
    Ok(Json(goals))
}

/// Create a goal (members).
#[utoipa::path(post, path = "/v1/orgs/{org}/goals", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = NewGoal,
    responses(
        (status = 201, body = Goal),
        Forbidden,
        Invalid,
    ))]
pub async fn create_goal(mut tx: OrgTx, new: Valid<NewGoal>) -> Result<(StatusCode, Json<Goal>)> {
    let goal = store::create(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(goal)))
}

/// One goal with its KPIs and progress.
#[utoipa::path(get, path = "/v1/orgs/{org}/goals/{goal}", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("goal" = Uuid, Path, description = "Goal id")),
    responses((status = 200, body = Goal), NotFound))]
pub async fn get_goal(mut tx: OrgTx, Path((_org, goal)): Path<(Uuid, Uuid)>) -> Result<Json<Goal>> {
    let found = store::get(&mut tx, goal, false).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Change a goal (members): completing sets `completed_at`, reopening clears it.
#[utoipa::path(patch, path = "/v1/orgs/{org}/goals/{goal}", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("goal" = Uuid, Path, description = "Goal id")),
    request_body = GoalChanges,
    responses(
        (status = 200, body = Goal),
        Forbidden,
        NotFound,
        Invalid,
    ))]
pub async fn update_goal(
    mut tx: OrgTx,
    Path((_org, goal)): Path<(Uuid, Uuid)>,
    changes: Valid<GoalChanges>,
) -> Result<Json<Goal>> {
    let updated = store::update(&mut tx, goal, &changes).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Delete a goal (members): hidden, links kept, restorable.
#[utoipa::path(delete, path = "/v1/orgs/{org}/goals/{goal}", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("goal" = Uuid, Path, description = "Goal id")),
    responses((status = 200, body = Goal, description = "The deleted goal"), NotFound))]
pub async fn delete_goal(
    mut tx: OrgTx,
    Path((_org, goal)): Path<(Uuid, Uuid)>,
) -> Result<Json<Goal>> {
    let deleted = store::set_deleted(&mut tx, goal, true).await?;
    tx.commit().await?;
    Ok(Json(deleted))
}

/// Undo a goal's deletion (members).
#[utoipa::path(post, path = "/v1/orgs/{org}/goals/{goal}/restore", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("goal" = Uuid, Path, description = "Goal id")),
    responses((status = 200, body = Goal), NotFound))]
pub async fn restore_goal(
    mut tx: OrgTx,
    Path((_org, goal)): Path<(Uuid, Uuid)>,
) -> Result<Json<Goal>> {
    let restored = store::set_deleted(&mut tx, goal, false).await?;
    tx.commit().await?;
    Ok(Json(restored))
}

/// Delete a goal for good (admins).
#[utoipa::path(post, path = "/v1/orgs/{org}/goals/{goal}/purge", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("goal" = Uuid, Path, description = "Goal id")),
    responses(
        (status = 204, description = "Purged"),
        Forbidden,
        NotFound,
    ))]
pub async fn purge_goal(
    mut tx: OrgTx,
    Path((_org, goal)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::purge(&mut tx, goal).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Link a KPI of the same organization to the goal, or change its weight (members).
#[utoipa::path(put, path = "/v1/orgs/{org}/goals/{goal}/kpis/{kpi}", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("goal" = Uuid, Path, description = "Goal id"), ("kpi" = Uuid, Path, description = "KPI id")),
    request_body = Link,
    responses(
        (status = 200, body = Goal),
        NotFound,
        (status = 422, description = "invalid_reference: no such KPI here; validation_failed: weight", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn link_kpi(
    mut tx: OrgTx,
    Path((_org, goal, kpi)): Path<(Uuid, Uuid, Uuid)>,
    link: Valid<Link>,
) -> Result<Json<Goal>> {
    let linked = store::link(&mut tx, goal, kpi, &link).await?;
    tx.commit().await?;
    Ok(Json(linked))
}

/// Unlink a KPI from the goal (members).
#[utoipa::path(delete, path = "/v1/orgs/{org}/goals/{goal}/kpis/{kpi}", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("goal" = Uuid, Path, description = "Goal id"), ("kpi" = Uuid, Path, description = "KPI id")),
    responses((status = 200, body = Goal), NotFound))]
pub async fn unlink_kpi(
    mut tx: OrgTx,
    Path((_org, goal, kpi)): Path<(Uuid, Uuid, Uuid)>,
) -> Result<Json<Goal>> {
    let unlinked = store::unlink(&mut tx, goal, kpi).await?;
    tx.commit().await?;
    Ok(Json(unlinked))
}
