//! SQL of KPIs and their data points.

use std::sync::LazyLock;

use uuid::Uuid;

use super::{DataPoint, Kpi, KpiChanges, KpiRow, NewDataPoint, NewKpi};
use crate::kernel::access::require_role;
use crate::kernel::access::Role;
use crate::kernel::error::{Found, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Page, PageParams};
use crate::lifecycle::Deletable;

/// The KPIs `chosen` (a query over `kpis`), each with the values it had 7, 30 and 90 days ago
/// (the latest point at or before then, read backwards along the (organization_id, kpi_id,
/// observed_at, source) index). The points are named once, in one subquery run per day count:
/// every reference to a table adds its policy check to the plan, and this read is the hottest
/// there is. `chosen` limits the KPIs before any point is read.
fn with_changes(chosen: &str) -> String {
    format!(
        r"SELECT k.id, k.name, k.description, k.target_value, k.current_value, k.unit,
    k.category, k.direction, k.baseline, k.is_active, k.deleted_at, k.created_at, k.updated_at,
    before[1] AS before_7, before[2] AS before_30, before[3] AS before_90
    FROM ({chosen}) AS k
    CROSS JOIN LATERAL (
      SELECT array_agg(
               (SELECT p.value FROM kpi_data_points p
                 WHERE p.organization_id = k.organization_id AND p.kpi_id = k.id
                   AND p.observed_at <= now() - make_interval(days => d.days)
                 ORDER BY p.observed_at DESC LIMIT 1)
               ORDER BY d.days) AS before
        FROM unnest(ARRAY[7, 30, 90]) AS d (days)) AS b"
    )
}

/// The SQL of [`get`] (also run directly by the benchmarks): organization, id, with deleted.
/// Built once: it is the hottest read.
pub fn get_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        with_changes(
            r"SELECT * FROM kpis WHERE organization_id = $1 AND id = $2 AND ($3 OR deleted_at IS NULL)",
        )
    });
    &SQL
}

/// The SQL of [`list`]: organization, after id, deleted ones, limit.
pub fn list_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let page = with_changes(
            r"SELECT * FROM kpis WHERE organization_id = $1 AND id > $2 AND (deleted_at IS NOT NULL) = $3
               ORDER BY id LIMIT $4",
        );
        format!("{page} ORDER BY k.id")
    });
    &SQL
}

/// A KPI of `org`; deleted ones only when `with_deleted`.
pub async fn get(tx: &mut OrgTx, id: Uuid, with_deleted: bool) -> Result<Kpi> {
    let org = tx.org();
    let row: Option<KpiRow> = sqlx::query_as(get_sql())
        .bind(org)
        .bind(id)
        .bind(with_deleted)
        .fetch_optional(tx.conn())
        .await?;
    row.map(Kpi::from).found()
}

pub async fn list(tx: &mut OrgTx, page: &PageParams, deleted: bool) -> Result<Page<Kpi>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let rows: Vec<KpiRow> = sqlx::query_as(list_sql())
        .bind(org)
        .bind(page.after())
        .bind(deleted)
        .bind(page.fetch_limit())
        .fetch_all(tx.conn())
        .await?;
    Ok(Page::from_rows(
        rows.into_iter().map(Kpi::from).collect(),
        page,
        |k| k.id,
    ))
}

pub async fn create(tx: &mut OrgTx, new: &Valid<NewKpi>) -> Result<Kpi> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let id = Uuid::now_v7();
    sqlx::query(
        r"INSERT INTO kpis (id, organization_id, name, description, target_value, unit, category, direction, baseline)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(org)
    .bind(new.name.trim())
    .bind(new.description.as_deref())
    .bind(new.target_value)
    .bind(new.unit.as_deref())
    .bind(new.category.as_deref())
    .bind(new.direction.unwrap_or(super::Direction::HigherIsBetter).as_str())
    .bind(new.baseline)
    .execute(tx.conn())
    .await?;
    if let Some(value) = new.initial_value {
        record_now(tx, id, value).await?;
    }
    get(tx, id, false).await
}

pub async fn update(tx: &mut OrgTx, id: Uuid, changes: &Valid<KpiChanges>) -> Result<Kpi> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let updated = sqlx::query(
        r"UPDATE kpis SET name = coalesce($3, name),
            description = CASE WHEN $4 THEN $5 ELSE description END,
            target_value = CASE WHEN $6 THEN $7 ELSE target_value END,
            unit = CASE WHEN $8 THEN $9 ELSE unit END,
            category = CASE WHEN $10 THEN $11 ELSE category END,
            direction = coalesce($12, direction),
            baseline = CASE WHEN $13 THEN $14 ELSE baseline END,
            is_active = coalesce($15, is_active)
         WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(org)
    .bind(id)
    .bind(changes.name.as_deref().map(str::trim))
    .bind(changes.description.is_some())
    .bind(changes.description.clone().flatten())
    .bind(changes.target_value.is_some())
    .bind(changes.target_value.flatten())
    .bind(changes.unit.is_some())
    .bind(changes.unit.clone().flatten())
    .bind(changes.category.is_some())
    .bind(changes.category.clone().flatten())
    .bind(changes.direction.map(|d| d.as_str()))
    .bind(changes.baseline.is_some())
    .bind(changes.baseline.flatten())
    .bind(changes.is_active)
    .execute(tx.conn())
    .await?;
    updated.found()?;
    if let Some(value) = changes.value {
        record_now(tx, id, value).await?;
    }
    get(tx, id, false).await
}

/// Soft-deletes (`deleted = true`) or restores a KPI; its points and goal links stay.
pub async fn set_deleted(tx: &mut OrgTx, id: Uuid, deleted: bool) -> Result<Kpi> {
    crate::lifecycle::set_deleted(tx, Deletable::Kpis, id, deleted).await?;
    get(tx, id, true).await
}

/// Deletes a KPI for good, with its history and goal links (admins).
pub async fn purge(tx: &mut OrgTx, id: Uuid) -> Result<()> {
    crate::lifecycle::purge(tx, Deletable::Kpis, id).await
}

/// Records `value` as observed now, by hand (a KPI's first value, or a PATCH's `value`).
async fn record_now(tx: &mut OrgTx, kpi: Uuid, value: f64) -> Result<u64> {
    let point = NewDataPoint {
        value,
        observed_at: None,
        source: None,
    };
    record(tx, kpi, &Valid::new(vec![point])?).await
}

/// Records points of one live KPI (upsert on time and source); how many were written.
pub async fn record(tx: &mut OrgTx, kpi: Uuid, points: &Valid<Vec<NewDataPoint>>) -> Result<u64> {
    require_role(tx, Role::Member).await?;
    get(tx, kpi, false).await?;
    let mut rows: Vec<super::ingest::Row> = points
        .iter()
        .map(|p| super::ingest::Row {
            kpi_id: kpi,
            value: p.value,
            observed_at: p.observed_at,
            source: p.source.clone().unwrap_or_else(|| "manual".into()),
        })
        .collect();
    super::ingest::write(tx, &mut rows).await
}

/// The SQL of [`points`]: organization, KPI, since, until, the page's cursor (the time and
/// source of the last point of the page before), limit. Every bound is an index condition on
/// (organization_id, kpi_id, observed_at, source) (absent ones are infinities, not
/// `$n IS NULL OR …`), so a page reads its rows and no others, however deep.
///
/// Not kept prepared (`persistent(false)`: an unnamed statement is planned for its parameters on
/// every run): its best plan depends on their values (how wide a range, how deep a page), a
/// generic plan cannot tell a minute from ten years, and PostgreSQL switches to the generic one
/// after five runs because it looks cheap. Reads whose plan is the same for any value (one KPI,
/// the dashboard) keep theirs.
pub const POINTS_SQL: &str = r"SELECT id, value, observed_at, source FROM kpi_data_points
 WHERE organization_id = $1 AND kpi_id = $2
   AND observed_at >= coalesce($3, '-infinity') AND observed_at < coalesce($4, 'infinity')
   AND (observed_at, source) < (coalesce($5, 'infinity'), coalesce($6, ''))
 ORDER BY observed_at DESC, source DESC LIMIT $7";

/// A KPI's points, newest first, optionally within [since, until).
pub async fn points(
    tx: &mut OrgTx,
    kpi: Uuid,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
    page: &PageParams,
) -> Result<Page<DataPoint>> {
    let org = tx.org();
    get(tx, kpi, false).await?;
    // The cursor names the last point of the page before; its own round trip keeps the page's
    // bounds plain parameters the planner sees.
    let cursor: Option<(chrono::DateTime<chrono::Utc>, String)> = match page.after {
        None => None,
        Some(after) => {
            let found = sqlx::query_as(
                r"SELECT observed_at, source FROM kpi_data_points
                   WHERE id = $1 AND organization_id = $2 AND kpi_id = $3",
            )
            .bind(after)
            .bind(org)
            .bind(kpi)
            .fetch_optional(tx.conn())
            .await?;
            // A cursor that names no point of this KPI ends the listing.
            if found.is_none() {
                return Ok(Page::from_rows(Vec::new(), page, |p: &DataPoint| p.id));
            }
            found
        }
    };
    let (cursor_at, cursor_source) = cursor.unzip();
    let rows: Vec<DataPoint> = sqlx::query_as(POINTS_SQL)
        .persistent(false)
        .bind(org)
        .bind(kpi)
        .bind(since)
        .bind(until)
        .bind(cursor_at)
        .bind(cursor_source)
        .bind(page.fetch_limit())
        .fetch_all(tx.conn())
        .await?;
    Ok(Page::from_rows(rows, page, |p| p.id))
}

/// Most buckets one series answer holds.
pub const MAX_BUCKETS: i64 = 5000;

/// The SQL of [`series`]: organization, KPI, bucket, aggregate, time zone, since, until, most
/// buckets. Planned for its parameters on every run, like [`POINTS_SQL`].
pub const SERIES_SQL: &str = r"SELECT date_trunc($3, p.observed_at AT TIME ZONE $5) AT TIME ZONE $5 AS start,
        CASE $4 WHEN 'sum' THEN sum(p.value) WHEN 'avg' THEN avg(p.value)
                WHEN 'min' THEN min(p.value) WHEN 'max' THEN max(p.value)
                ELSE (array_agg(p.value ORDER BY p.observed_at DESC, p.created_at DESC))[1]
        END AS value,
        count(*) AS points
   FROM kpi_data_points p
  WHERE p.organization_id = $1 AND p.kpi_id = $2
    AND p.observed_at >= coalesce($6, '-infinity') AND p.observed_at < coalesce($7, 'infinity')
  GROUP BY 1 ORDER BY 1 LIMIT $8";

/// A KPI's points in buckets of local days, weeks or months of `timezone`, one value each.
#[allow(clippy::too_many_arguments)]
pub async fn series(
    tx: &mut OrgTx,
    kpi: Uuid,
    bucket: super::Bucket,
    aggregate: super::Aggregate,
    timezone: &str,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Vec<super::SeriesPoint>> {
    let org = tx.org();
    get(tx, kpi, false).await?;
    Ok(sqlx::query_as(SERIES_SQL)
        .persistent(false)
        .bind(org)
        .bind(kpi)
        .bind(bucket.as_str())
        .bind(aggregate.as_str())
        .bind(timezone)
        .bind(since)
        .bind(until)
        .bind(MAX_BUCKETS)
        .fetch_all(tx.conn())
        .await?)
}

/// The dashboard in one query: every live KPI of organization $1 with its current value, 30-day
/// change and its latest 30 values (each KPI read backwards along its time index).
pub const DASHBOARD_SQL: &str = r"SELECT k.id, k.name, k.unit, k.category, k.direction,
    k.target_value, k.current_value, k.baseline,
    (SELECT p.value FROM kpi_data_points p
      WHERE p.organization_id = k.organization_id AND p.kpi_id = k.id
        AND p.observed_at <= now() - interval '30 days'
      ORDER BY p.observed_at DESC LIMIT 1) AS before_30,
    coalesce((SELECT array_agg(s.value ORDER BY s.observed_at) FROM
      (SELECT p.value, p.observed_at FROM kpi_data_points p
        WHERE p.organization_id = k.organization_id AND p.kpi_id = k.id
        ORDER BY p.observed_at DESC LIMIT 30) s), '{}') AS sparkline
    FROM kpis k WHERE k.organization_id = $1 AND k.deleted_at IS NULL ORDER BY k.name, k.id";

/// The dashboard: every live KPI with progress, 30-day change and sparkline.
pub async fn dashboard(tx: &mut OrgTx) -> Result<super::Dashboard> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let rows: Vec<super::DashboardRow> = sqlx::query_as(DASHBOARD_SQL)
        .bind(org)
        .fetch_all(tx.conn())
        .await?;
    Ok(super::Dashboard {
        kpis: rows.into_iter().map(super::DashboardKpi::from).collect(),
    })
}

/// A KPI's points as CSV (`observed_at,value,source`, oldest first).
pub async fn export_csv(tx: &mut OrgTx, kpi: Uuid) -> Result<String> {
    let org = tx.org();
    get(tx, kpi, false).await?;
    let rows: Vec<(chrono::DateTime<chrono::Utc>, f64, String)> = sqlx::query_as(
        r"SELECT observed_at, value, source FROM kpi_data_points
         WHERE organization_id = $1 AND kpi_id = $2 ORDER BY observed_at, source",
    )
    .bind(org)
    .bind(kpi)
    .fetch_all(tx.conn())
    .await?;
    let mut csv = String::from("observed_at,value,source\n");
    for (at, value, source) in rows {
        csv.push_str(&format!(
            "{},{value},{}\n",
            at.to_rfc3339(),
            crate::kernel::csv::field(&source)
        ));
    }
    Ok(csv)
}
