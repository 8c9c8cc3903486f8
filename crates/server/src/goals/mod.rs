//! Sesari goals: a title, a target date and a status, with KPIs linked by weight; a goal's
//! progress is the weighted mean of its KPIs' progress.

pub mod routes;
pub mod store;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

pub use routes::routes;

use crate::kernel::input::{positive, set, text, Checks, Validate};
use crate::kpis::progress::{self, Direction};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GoalStatus {
    Active,
    Paused,
    Completed,
}

impl GoalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GoalStatus::Active => "active",
            GoalStatus::Paused => "paused",
            GoalStatus::Completed => "completed",
        }
    }
}

impl TryFrom<String> for GoalStatus {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "active" => Ok(GoalStatus::Active),
            "paused" => Ok(GoalStatus::Paused),
            "completed" => Ok(GoalStatus::Completed),
            other => Err(format!("unknown status {other:?}")),
        }
    }
}

/// A KPI linked to a goal, with its weight and progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkedKpi {
    pub kpi_id: Uuid,
    pub name: String,
    pub weight: f64,
    pub progress: Option<f64>,
    /// Deleted KPIs keep their link but do not count toward the goal's progress.
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Goal {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub target_date: Option<NaiveDate>,
    pub status: GoalStatus,
    /// Set when the goal was completed; cleared when reopened.
    pub completed_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Weighted mean of the linked KPIs' progress, 0–100; absent without KPIs.
    pub progress: Option<f64>,
    pub kpis: Vec<LinkedKpi>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub(crate) struct GoalRow {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub target_date: Option<NaiveDate>,
    #[sqlx(try_from = "String")]
    pub status: GoalStatus,
    pub completed_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub(crate) struct LinkRow {
    pub goal_id: Uuid,
    pub kpi_id: Uuid,
    pub name: String,
    pub weight: f64,
    pub current_value: Option<f64>,
    pub target_value: Option<f64>,
    pub baseline: Option<f64>,
    #[sqlx(try_from = "String")]
    pub direction: Direction,
    pub deleted: bool,
}

impl Goal {
    pub(crate) fn from_rows(goal: GoalRow, links: Vec<LinkRow>) -> Self {
        let kpis: Vec<LinkedKpi> = links
            .into_iter()
            .map(|l| LinkedKpi {
                progress: progress::progress(
                    l.current_value,
                    l.target_value,
                    l.baseline,
                    l.direction,
                ),
                kpi_id: l.kpi_id,
                name: l.name,
                weight: l.weight,
                deleted: l.deleted,
            })
            .collect();
        let counted: Vec<(Option<f64>, f64)> = kpis
            .iter()
            .filter(|k| !k.deleted)
            .map(|k| (k.progress, k.weight))
            .collect();
        Goal {
            progress: progress::goal_progress(&counted),
            kpis,
            id: goal.id,
            title: goal.title,
            description: goal.description,
            target_date: goal.target_date,
            status: goal.status,
            completed_at: goal.completed_at,
            deleted_at: goal.deleted_at,
            created_at: goal.created_at,
            updated_at: goal.updated_at,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGoal {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub title: String,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    pub target_date: Option<NaiveDate>,
    /// Default `active`.
    pub status: Option<GoalStatus>,
}

/// Changes to a goal: absent fields stay; `null` clears an optional one. Completing sets
/// `completed_at`; reopening clears it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoalChanges {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 5000)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub target_date: Option<Option<NaiveDate>>,
    pub status: Option<GoalStatus>,
}

/// A link's weight (default 1; must be positive).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    #[schema(exclusive_minimum = 0.0)]
    pub weight: Option<f64>,
}

impl Validate for NewGoal {
    fn check(&self, c: &mut Checks) {
        c.field("title", Some(self.title.as_str()), text(1, 200));
        c.field("description", self.description.as_deref(), text(0, 5000));
    }
}

impl Validate for GoalChanges {
    fn check(&self, c: &mut Checks) {
        c.field("title", self.title.as_deref(), text(1, 200));
        c.field("description", set(&self.description), text(0, 5000));
    }
}

impl Validate for Link {
    fn check(&self, c: &mut Checks) {
        c.field("weight", self.weight, positive);
    }
}
