//! Sesari KPIs: values tracked over time with a target, a direction and a baseline; every value
//! is a data point (the history), and reads carry progress and change over 7, 30 and 90 days.

pub mod ingest;
pub mod progress;
pub mod routes;
pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

pub use progress::{Change, Direction};
pub use routes::{bulk_routes, routes};

use crate::kernel::input::{finite, set, text, Checks, Validate};

/// Windows of the change figures on every KPI read, in days.
pub const CHANGE_WINDOWS: [u32; 3] = [7, 30, 90];

/// A KPI as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Kpi {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub target_value: Option<f64>,
    /// The latest data point's value; absent while there is no data.
    pub current_value: Option<f64>,
    pub unit: Option<String>,
    pub category: Option<String>,
    pub direction: Direction,
    /// Where progress starts from (absent: 0).
    pub baseline: Option<f64>,
    /// Tracked, or paused.
    pub is_active: bool,
    /// Set while the KPI is deleted (restorable).
    pub deleted_at: Option<DateTime<Utc>>,
    /// Percent of the way from baseline to target, 0–100; absent without target or data.
    pub progress: Option<f64>,
    /// Change against 7, 30 and 90 days ago.
    pub changes: Vec<Change>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub(crate) struct KpiRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub target_value: Option<f64>,
    pub current_value: Option<f64>,
    pub unit: Option<String>,
    pub category: Option<String>,
    #[sqlx(try_from = "String")]
    pub direction: Direction,
    pub baseline: Option<f64>,
    pub is_active: bool,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Values 7, 30 and 90 days ago.
    pub before_7: Option<f64>,
    pub before_30: Option<f64>,
    pub before_90: Option<f64>,
}

impl From<KpiRow> for Kpi {
    fn from(r: KpiRow) -> Self {
        let before = [r.before_7, r.before_30, r.before_90];
        Kpi {
            progress: progress::progress(r.current_value, r.target_value, r.baseline, r.direction),
            changes: CHANGE_WINDOWS
                .iter()
                .zip(before)
                .map(|(days, previous)| {
                    progress::change(*days, r.current_value, previous, r.direction)
                })
                .collect(),
            id: r.id,
            name: r.name,
            description: r.description,
            target_value: r.target_value,
            current_value: r.current_value,
            unit: r.unit,
            category: r.category,
            direction: r.direction,
            baseline: r.baseline,
            is_active: r.is_active,
            deleted_at: r.deleted_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKpi {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    pub target_value: Option<f64>,
    #[schema(max_length = 50)]
    pub unit: Option<String>,
    #[schema(max_length = 100)]
    pub category: Option<String>,
    /// Default `higher_is_better`.
    pub direction: Option<Direction>,
    pub baseline: Option<f64>,
    /// A first data point (source `manual`, now).
    pub initial_value: Option<f64>,
}

/// Changes to a KPI: absent fields stay; `null` clears an optional one. `value` records a new
/// data point (source `manual`, now): the value itself is history, never overwritten.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KpiChanges {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 5000)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub target_value: Option<Option<f64>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 50)]
    pub unit: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 100)]
    pub category: Option<Option<String>>,
    pub direction: Option<Direction>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub baseline: Option<Option<f64>>,
    pub is_active: Option<bool>,
    pub value: Option<f64>,
}

/// One data point.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct DataPoint {
    pub id: Uuid,
    pub value: f64,
    pub observed_at: DateTime<Utc>,
    pub source: String,
}

/// A data point to record; the same (time, source) again replaces the value.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDataPoint {
    pub value: f64,
    /// Default: now.
    pub observed_at: Option<DateTime<Utc>>,
    /// Default `manual`; e.g. `stripe`, `google_analytics`.
    #[schema(min_length = 1, max_length = 100)]
    pub source: Option<String>,
}

impl Validate for NewKpi {
    fn check(&self, c: &mut Checks) {
        c.field("name", Some(self.name.as_str()), text(1, 200));
        c.field("description", self.description.as_deref(), text(0, 5000));
        c.field("unit", self.unit.as_deref(), text(0, 50));
        c.field("category", self.category.as_deref(), text(0, 100));
        c.field("target_value", self.target_value, finite);
        c.field("baseline", self.baseline, finite);
        c.field("initial_value", self.initial_value, finite);
    }
}

impl Validate for KpiChanges {
    fn check(&self, c: &mut Checks) {
        c.field("name", self.name.as_deref(), text(1, 200));
        c.field("description", set(&self.description), text(0, 5000));
        c.field("unit", set(&self.unit), text(0, 50));
        c.field("category", set(&self.category), text(0, 100));
        c.field("target_value", self.target_value.flatten(), finite);
        c.field("baseline", self.baseline.flatten(), finite);
        c.field("value", self.value, finite);
    }
}

/// Points to record (none is fine: nothing is written), each bad one named by its index.
impl Validate for Vec<NewDataPoint> {
    const LIST: bool = true;

    fn check(&self, c: &mut Checks) {
        for (i, p) in self.iter().enumerate() {
            c.field(&format!("points[{i}].value"), Some(p.value), finite);
            c.field(
                &format!("points[{i}].source"),
                p.source.as_deref(),
                text(1, 100),
            );
        }
    }
}

/// Bucket size of a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Day,
    Week,
    Month,
}

/// How a bucket's points become one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// The latest point in the bucket.
    Last,
    Sum,
    Avg,
    Min,
    Max,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
        }
    }
}

impl Aggregate {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Last => "last",
            Aggregate::Sum => "sum",
            Aggregate::Avg => "avg",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
        }
    }
}

/// One bucket of a series.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct SeriesPoint {
    /// Where the bucket starts: local midnight (of the day, the ISO week's Monday, or the
    /// month's first day) in the requested time zone, as an instant.
    pub start: DateTime<Utc>,
    pub value: f64,
    /// Points in the bucket.
    pub points: i64,
}

/// One KPI on the dashboard.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DashboardKpi {
    pub id: Uuid,
    pub name: String,
    pub unit: Option<String>,
    pub category: Option<String>,
    pub direction: Direction,
    pub target_value: Option<f64>,
    pub current_value: Option<f64>,
    pub progress: Option<f64>,
    /// Change against 30 days ago.
    pub change_30d: Change,
    /// The latest 30 values, oldest first.
    pub sparkline: Vec<f64>,
}

#[derive(Debug, Clone, FromRow)]
pub(crate) struct DashboardRow {
    pub id: Uuid,
    pub name: String,
    pub unit: Option<String>,
    pub category: Option<String>,
    #[sqlx(try_from = "String")]
    pub direction: Direction,
    pub target_value: Option<f64>,
    pub current_value: Option<f64>,
    pub baseline: Option<f64>,
    pub before_30: Option<f64>,
    pub sparkline: Vec<f64>,
}

impl From<DashboardRow> for DashboardKpi {
    fn from(r: DashboardRow) -> Self {
        DashboardKpi {
            progress: progress::progress(r.current_value, r.target_value, r.baseline, r.direction),
            change_30d: progress::change(30, r.current_value, r.before_30, r.direction),
            id: r.id,
            name: r.name,
            unit: r.unit,
            category: r.category,
            direction: r.direction,
            target_value: r.target_value,
            current_value: r.current_value,
            sparkline: r.sparkline,
        }
    }
}

/// Every live KPI of an organization, ready to draw.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Dashboard {
    pub kpis: Vec<DashboardKpi>,
}
