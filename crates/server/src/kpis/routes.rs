//! HTTP routes of KPIs under `/v1/orgs/{org}/kpis`.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{
    store, Aggregate, Bucket, Dashboard, DataPoint, Kpi, KpiChanges, NewDataPoint, NewKpi,
    SeriesPoint,
};
use crate::http::{
    AppState, Forbidden, Invalid, Json, NotFound, Path, PaymentRequired, Problem, Query, TooLarge,
};
use crate::kernel::access::Module;
use crate::kernel::error::Result;
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Limit, Page, PageParams};

const MODULE: Module = Module::Kpis;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_kpis, create_kpi))
        .routes(routes!(get_kpi, update_kpi, delete_kpi))
        .routes(routes!(restore_kpi))
        .routes(routes!(purge_kpi))
        .routes(routes!(list_points, record_points))
        .routes(routes!(series))
        .routes(routes!(dashboard))
        .routes(routes!(export_points))
        .layer(axum::Extension(MODULE))
}

/// Routes whose requests may run for minutes (they get the bulk time limit).
pub fn bulk_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ingest))
        .layer(axum::Extension(MODULE))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KpiListParams {
    /// List deleted KPIs (to restore or purge) instead of live ones.
    #[serde(default)]
    pub deleted: bool,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    pub after: Option<Uuid>,
}

/// The organization's KPIs, each with progress and 7/30/90-day change.
#[utoipa::path(get, path = "/v1/orgs/{org}/kpis", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), KpiListParams),
    responses((status = 200, body = Page<Kpi>), NotFound))]
pub async fn list_kpis(
    mut tx: OrgTx,
    Query(params): Query<KpiListParams>,
) -> Result<Json<Page<Kpi>>> {
    let page = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let kpis = store::list(&mut tx, &page, params.deleted).await?;
    tx.commit().await?;
    Ok(Json(kpis))
}

/// Create a KPI (members), optionally with a first value.
#[utoipa::path(post, path = "/v1/orgs/{org}/kpis", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = NewKpi,
    responses(
        (status = 201, body = Kpi),
        PaymentRequired,
        Forbidden,
        NotFound,
        Invalid,
    ))]
pub async fn create_kpi(mut tx: OrgTx, new: Valid<NewKpi>) -> Result<(StatusCode, Json<Kpi>)> {
    let kpi = store::create(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(kpi)))
}

/// One KPI with progress and change.
#[utoipa::path(get, path = "/v1/orgs/{org}/kpis/{kpi}", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("kpi" = Uuid, Path, description = "KPI id")),
    responses((status = 200, body = Kpi), NotFound))]
pub async fn get_kpi(mut tx: OrgTx, Path((_org, kpi)): Path<(Uuid, Uuid)>) -> Result<Json<Kpi>> {
    let found = store::get(&mut tx, kpi, false).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Change a KPI (members); `value` records a new data point.
#[utoipa::path(patch, path = "/v1/orgs/{org}/kpis/{kpi}", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("kpi" = Uuid, Path, description = "KPI id")),
    request_body = KpiChanges,
    responses(
        (status = 200, body = Kpi),
        Forbidden,
        NotFound,
        Invalid,
    ))]
pub async fn update_kpi(
    mut tx: OrgTx,
    Path((_org, kpi)): Path<(Uuid, Uuid)>,
    changes: Valid<KpiChanges>,
) -> Result<Json<Kpi>> {
    let updated = store::update(&mut tx, kpi, &changes).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Delete a KPI (members): hidden from lists and reads, history and goal links kept, restorable.
#[utoipa::path(delete, path = "/v1/orgs/{org}/kpis/{kpi}", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("kpi" = Uuid, Path, description = "KPI id")),
    responses((status = 200, body = Kpi, description = "The deleted KPI"), NotFound))]
pub async fn delete_kpi(mut tx: OrgTx, Path((_org, kpi)): Path<(Uuid, Uuid)>) -> Result<Json<Kpi>> {
    let deleted = store::set_deleted(&mut tx, kpi, true).await?;
    tx.commit().await?;
    Ok(Json(deleted))
}

/// Undo a KPI's deletion (members).
#[utoipa::path(post, path = "/v1/orgs/{org}/kpis/{kpi}/restore", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("kpi" = Uuid, Path, description = "KPI id")),
    responses((status = 200, body = Kpi), PaymentRequired, NotFound))]
pub async fn restore_kpi(
    mut tx: OrgTx,
    Path((_org, kpi)): Path<(Uuid, Uuid)>,
) -> Result<Json<Kpi>> {
    let restored = store::set_deleted(&mut tx, kpi, false).await?;
    tx.commit().await?;
    Ok(Json(restored))
}

/// Delete a KPI for good, with its history and goal links (admins).
#[utoipa::path(post, path = "/v1/orgs/{org}/kpis/{kpi}/purge", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("kpi" = Uuid, Path, description = "KPI id")),
    responses(
        (status = 204, description = "Purged"),
        Forbidden,
        NotFound,
    ))]
pub async fn purge_kpi(mut tx: OrgTx, Path((_org, kpi)): Path<(Uuid, Uuid)>) -> Result<StatusCode> {
    store::purge(&mut tx, kpi).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PointParams {
    /// From this time on (inclusive).
    pub since: Option<DateTime<Utc>>,
    /// Before this time (exclusive).
    pub until: Option<DateTime<Utc>>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    pub after: Option<Uuid>,
}

/// A KPI's data points, newest first.
#[utoipa::path(get, path = "/v1/orgs/{org}/kpis/{kpi}/points", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("kpi" = Uuid, Path, description = "KPI id"), PointParams),
    responses((status = 200, body = Page<DataPoint>), NotFound))]
pub async fn list_points(
    mut tx: OrgTx,
    Path((_org, kpi)): Path<(Uuid, Uuid)>,
    Query(params): Query<PointParams>,
) -> Result<Json<Page<DataPoint>>> {
    let page = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let points = store::points(&mut tx, kpi, params.since, params.until, &page).await?;
    tx.commit().await?;
    Ok(Json(points))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recorded {
    /// Points written (new or replaced).
    pub written: u64,
}

/// Record data points of a KPI (members); the same time and source again replaces the value.
/// All or nothing: any bad point refuses the whole request, naming its index.
#[utoipa::path(post, path = "/v1/orgs/{org}/kpis/{kpi}/points", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("kpi" = Uuid, Path, description = "KPI id")),
    request_body = Vec<NewDataPoint>,
    responses(
        (status = 200, body = Recorded),
        Forbidden,
        NotFound,
        Invalid,
    ))]
pub async fn record_points(
    mut tx: OrgTx,
    Path((_org, kpi)): Path<(Uuid, Uuid)>,
    points: Valid<Vec<NewDataPoint>>,
) -> Result<Json<Recorded>> {
    let written = store::record(&mut tx, kpi, &points).await?;
    tx.commit().await?;
    Ok(Json(Recorded { written }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// `day`, `week` (ISO, from Monday) or `month`.
    #[param(inline)]
    pub bucket: Bucket,
    /// `last` (default), `sum`, `avg`, `min` or `max`.
    #[param(inline)]
    pub aggregate: Option<Aggregate>,
    /// The time zone buckets follow (IANA name; default UTC).
    pub timezone: Option<String>,
    /// From this time on (inclusive).
    pub since: Option<DateTime<Utc>>,
    /// Before this time (exclusive).
    pub until: Option<DateTime<Utc>>,
}

/// A KPI's history in buckets of days, weeks or months of a time zone (at most 5,000 buckets).
#[utoipa::path(get, path = "/v1/orgs/{org}/kpis/{kpi}/series", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("kpi" = Uuid, Path, description = "KPI id"), SeriesParams),
    responses(
        (status = 200, body = Vec<SeriesPoint>),
        NotFound,
        (status = 422, description = "unknown time zone", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn series(
    mut tx: OrgTx,
    Path((_org, kpi)): Path<(Uuid, Uuid)>,
    Query(params): Query<SeriesParams>,
) -> Result<Json<Vec<SeriesPoint>>> {
    let points = store::series(
        &mut tx,
        kpi,
        params.bucket,
        params.aggregate.unwrap_or(Aggregate::Last),
        params.timezone.as_deref().unwrap_or("UTC"),
        params.since,
        params.until,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(points))
}

/// Every live KPI with current value, progress, 30-day change and a 30-point sparkline, in one request.
#[utoipa::path(get, path = "/v1/orgs/{org}/dashboard", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses((status = 200, body = Dashboard), NotFound))]
pub async fn dashboard(mut tx: OrgTx) -> Result<Json<Dashboard>> {
    let board = store::dashboard(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(board))
}

/// Record data points of many KPIs at once: a JSON array or NDJSON of
/// `{"kpi_id", "value", "observed_at"?, "source"?}`, or CSV with a header naming `kpi_id`,
/// `value` and optionally `observed_at`, `source`. Read as a stream; all or nothing: any bad row
/// (unknown KPI, not a finite number, bad time) fails the request, naming each row's index.
#[utoipa::path(post, path = "/v1/orgs/{org}/kpi-points", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    request_body(description = "The rows", content(("application/json"), ("application/x-ndjson"), ("text/csv"))),
    responses(
        (status = 200, body = super::ingest::Ingested),
        (status = 400, description = "malformed body or unsupported content type", body = Problem, content_type = "application/problem+json"),
        Forbidden,
        NotFound,
        TooLarge,
        (status = 422, description = "bad rows, each named rows[i]", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ingest(
    mut tx: OrgTx,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<super::ingest::Ingested>> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let format = super::ingest::Format::from_content_type(content_type).ok_or_else(|| {
        crate::Error::BadRequest(
            "Content-Type must be application/json, application/x-ndjson or text/csv".into(),
        )
    })?;
    let ingested = super::ingest::ingest(&mut tx, format, body).await?;
    tx.commit().await?;
    Ok(Json(ingested))
}

/// A KPI's data points as CSV (`observed_at,value,source`, oldest first) — the format bulk
/// ingest reads, plus a `kpi_id` column there.
#[utoipa::path(get, path = "/v1/orgs/{org}/kpis/{kpi}/points.csv", tag = "kpis", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("kpi" = Uuid, Path, description = "KPI id")),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        NotFound,
    ))]
pub async fn export_points(
    mut tx: OrgTx,
    Path((_org, kpi)): Path<(Uuid, Uuid)>,
) -> Result<([(axum::http::HeaderName, &'static str); 2], String)> {
    let csv = store::export_csv(&mut tx, kpi).await?;
    tx.commit().await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"points.csv\"",
            ),
        ],
        csv,
    ))
}
