//! HTTP routes of platform administration, under `/v1/platform` (platform staff only: anyone
//! else is 403, whatever organizations they belong to).

use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{PlanGrant, PlatformOrganization, PlatformUser, RoleChange};
use crate::http::{AppState, Forbidden, Invalid, Json, NotFound, Path, Query};
use crate::kernel::error::{Error, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::UserTx;
use crate::kernel::page::{Limit, Page};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_organizations))
        .routes(routes!(set_plan))
        .routes(routes!(list_users))
        .routes(routes!(deactivate_user))
        .routes(routes!(reactivate_user))
        .routes(routes!(set_role))
}

/// A page of a staff list, optionally filtered.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Items per page, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    /// The `next_cursor` of the previous page.
    pub after: Option<Uuid>,
    /// Only those whose name, slug or email contains this (case-insensitive).
    pub q: Option<String>,
}

impl SearchParams {
    fn page(&self) -> crate::kernel::page::PageParams {
        crate::kernel::page::PageParams {
            limit: self.limit,
            after: self.after,
        }
    }

    fn search(&self) -> Option<&str> {
        self.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
    }
}

/// The functions refuse anyone but staff with SQLSTATE 42501; that is 403 here.
fn staff_only(e: sqlx::Error) -> Error {
    Error::forbidden_if_refused(e, "platform staff only")
}

/// What a staff act's function answered, as the caller sees it.
fn outcome(answer: &str) -> Result<()> {
    match answer {
        "set" => Ok(()),
        "no_such_organization" | "no_such_user" => Err(Error::NotFound),
        "no_such_plan" => Err(Error::invalid("plan", "no plan has this code")),
        "billed_by_stripe" => Err(Error::Conflict {
            code: "billed_by_stripe",
            detail: "Stripe bills this organization: cancel its subscription there first".into(),
        }),
        "not_yourself" => Err(Error::Conflict {
            code: "not_yourself",
            detail: "staff cannot change their own account or role here".into(),
        }),
        "staff_only_by_admins" => Err(Error::Forbidden(
            "only admins deactivate or reactivate staff",
        )),
        other => Err(Error::Internal(format!("unknown outcome {other}"))),
    }
}

/// A staff act: the function's answer, as the caller sees it, committed when it is `set`.
async fn staff_act(
    mut tx: UserTx,
    act: sqlx::query::QueryScalar<'_, sqlx::Postgres, String, sqlx::postgres::PgArguments>,
) -> Result<StatusCode> {
    let answer = act.fetch_one(tx.conn()).await.map_err(staff_only)?;
    outcome(&answer)?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Organizations with their plan and usage, by id (staff: admins, moderators, employees).
#[utoipa::path(get, path = "/v1/platform/organizations", tag = "platform", security(("bearer" = [])),
    params(SearchParams),
    responses((status = 200, body = Page<PlatformOrganization>), Forbidden))]
pub async fn list_organizations(
    tx: UserTx,
    Query(params): Query<SearchParams>,
) -> Result<Json<Page<PlatformOrganization>>> {
    staff_page(
        tx,
        r"SELECT * FROM app.platform_organizations($1, $2::integer, $3)",
        &params,
        |o: &PlatformOrganization| o.id,
    )
    .await
}

/// One page of a staff list function (`after`, rows, search).
async fn staff_page<T>(
    mut tx: UserTx,
    sql: &'static str,
    params: &SearchParams,
    id: impl Fn(&T) -> Uuid,
) -> Result<Json<Page<T>>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let page = params.page();
    let rows: Vec<T> = sqlx::query_as(sql)
        .bind(page.after())
        .bind(page.fetch_limit())
        .bind(params.search())
        .fetch_all(tx.conn())
        .await
        .map_err(staff_only)?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, id)))
}

/// Put an organization on a plan by hand — a comped account (admins). Refused with 409
/// `billed_by_stripe` while Stripe bills it.
#[utoipa::path(put, path = "/v1/platform/organizations/{org}/plan", tag = "platform", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = PlanGrant,
    responses((status = 204, description = "The plan is set"), Forbidden, NotFound, Invalid,
        (status = 409, description = "`billed_by_stripe`", body = crate::http::Problem, content_type = "application/problem+json")))]
pub async fn set_plan(
    tx: UserTx,
    Path(org): Path<Uuid>,
    grant: Valid<PlanGrant>,
) -> Result<StatusCode> {
    staff_act(
        tx,
        sqlx::query_scalar(r"SELECT app.platform_set_plan($1, $2, $3, $4)")
            .bind(org)
            .bind(&grant.plan)
            .bind(grant.until)
            .bind(grant.reason.as_deref()),
    )
    .await
}

/// Users with their platform role and state, by id (staff).
#[utoipa::path(get, path = "/v1/platform/users", tag = "platform", security(("bearer" = [])),
    params(SearchParams),
    responses((status = 200, body = Page<PlatformUser>), Forbidden))]
pub async fn list_users(
    tx: UserTx,
    Query(params): Query<SearchParams>,
) -> Result<Json<Page<PlatformUser>>> {
    staff_page(
        tx,
        r"SELECT * FROM app.platform_users($1, $2::integer, $3)",
        &params,
        |u: &PlatformUser| u.id,
    )
    .await
}

async fn set_active(tx: UserTx, user: Uuid, active: bool) -> Result<StatusCode> {
    staff_act(
        tx,
        sqlx::query_scalar(r"SELECT app.platform_set_active($1, $2)")
            .bind(user)
            .bind(active),
    )
    .await
}

/// Deactivate a user: their sessions end at once and signing in is refused (admins and
/// moderators; staff only by admins; not oneself).
#[utoipa::path(post, path = "/v1/platform/users/{user}/deactivate", tag = "platform", security(("bearer" = [])),
    params(("user" = Uuid, Path, description = "User id")),
    responses((status = 204, description = "Deactivated"), Forbidden, NotFound))]
pub async fn deactivate_user(tx: UserTx, Path(user): Path<Uuid>) -> Result<StatusCode> {
    set_active(tx, user, false).await
}

/// Reactivate a user (admins and moderators; staff only by admins).
#[utoipa::path(post, path = "/v1/platform/users/{user}/reactivate", tag = "platform", security(("bearer" = [])),
    params(("user" = Uuid, Path, description = "User id")),
    responses((status = 204, description = "Reactivated"), Forbidden, NotFound))]
pub async fn reactivate_user(tx: UserTx, Path(user): Path<Uuid>) -> Result<StatusCode> {
    set_active(tx, user, true).await
}

/// Change a user's platform role (admins; not their own).
#[utoipa::path(put, path = "/v1/platform/users/{user}/role", tag = "platform", security(("bearer" = [])),
    params(("user" = Uuid, Path, description = "User id")), request_body = RoleChange,
    responses((status = 204, description = "The role is set"), Forbidden, NotFound, Invalid))]
pub async fn set_role(
    tx: UserTx,
    Path(user): Path<Uuid>,
    change: Valid<RoleChange>,
) -> Result<StatusCode> {
    staff_act(
        tx,
        sqlx::query_scalar(r"SELECT app.platform_set_role($1, $2)")
            .bind(user)
            .bind(change.role.as_str()),
    )
    .await
}
