//! Projects: for a customer or not, with a manager from the organization's members, dates, an
//! exact budget, and progress derived from the tasks unless set by hand.

pub mod routes;
pub mod store;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

pub use routes::routes;

use crate::kernel::input::{decimal, set, text, Checks, Rule, Validate};
use crate::text_enum;

text_enum! {
    /// Where a project stands; `completed` sets `completion_date`, reopening clears it.
    pub enum ProjectStatus {
        Planning = "planning", Active = "active", OnHold = "on_hold", Completed = "completed",
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// How urgent a project or task is.
    pub enum Priority { Low = "low", Medium = "medium", High = "high", Critical = "critical" }
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Project {
    pub id: Uuid,
    /// A customer of the same organization.
    pub customer_id: Option<Uuid>,
    pub name: String,
    pub description: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: ProjectStatus,
    #[sqlx(try_from = "String")]
    pub priority: Priority,
    pub start_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    /// Set by the database when the status becomes `completed`.
    pub completion_date: Option<NaiveDate>,
    /// Exact, as a decimal string (`"1234.50"`).
    pub budget: Option<String>,
    /// 0–100: `progress_manual` when set, else from the tasks — the estimated hours (1 for a task
    /// without an estimate) of the done tasks over those of all tasks not cancelled.
    pub progress_percentage: i32,
    pub progress_manual: Option<i32>,
    /// A member of the organization; cleared when they leave it.
    pub project_manager_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    pub customer_id: Option<Uuid>,
    /// Default `planning`.
    pub status: Option<ProjectStatus>,
    /// Default `medium`.
    pub priority: Option<Priority>,
    pub start_date: Option<NaiveDate>,
    /// Not before `start_date`.
    pub due_date: Option<NaiveDate>,
    /// A decimal string, at most 12 digits before the point and 2 after.
    #[schema(pattern = r"^\d{1,12}(\.\d{1,2})?$")]
    pub budget: Option<String>,
    #[schema(minimum = 0, maximum = 100)]
    pub progress_manual: Option<i32>,
    pub project_manager_id: Option<Uuid>,
}

/// Changes to a project: absent fields stay; `null` clears an optional one (`progress_manual`
/// back to derived).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectChanges {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 10000)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub customer_id: Option<Option<Uuid>>,
    pub status: Option<ProjectStatus>,
    pub priority: Option<Priority>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub start_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub due_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(pattern = r"^\d{1,12}(\.\d{1,2})?$")]
    pub budget: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(minimum = 0, maximum = 100)]
    pub progress_manual: Option<Option<i32>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub project_manager_id: Option<Option<Uuid>>,
}

pub(crate) fn percentage(value: i32) -> Rule {
    (0..=100)
        .contains(&value)
        .then_some(())
        .ok_or_else(|| "must be 0 to 100".into())
}

fn dates_in_order(
    start: Option<NaiveDate>,
    due: Option<NaiveDate>,
) -> Option<(NaiveDate, NaiveDate)> {
    start.zip(due)
}

fn due_not_before_start((start, due): (NaiveDate, NaiveDate)) -> Rule {
    (due >= start)
        .then_some(())
        .ok_or_else(|| "must not be before start_date".into())
}

impl Validate for NewProject {
    fn check(&self, c: &mut Checks) {
        c.field("name", Some(self.name.as_str()), text(1, 200));
        c.field("description", self.description.as_deref(), text(0, 10000));
        c.field("budget", self.budget.as_deref(), decimal(12, 2));
        c.field("progress_manual", self.progress_manual, percentage);
        c.field(
            "due_date",
            dates_in_order(self.start_date, self.due_date),
            due_not_before_start,
        );
    }
}

impl Validate for ProjectChanges {
    fn check(&self, c: &mut Checks) {
        c.field("name", self.name.as_deref(), text(1, 200));
        c.field("description", set(&self.description), text(0, 10000));
        c.field("budget", set(&self.budget), decimal(12, 2));
        c.field(
            "progress_manual",
            self.progress_manual.flatten(),
            percentage,
        );
        c.field(
            "due_date",
            dates_in_order(self.start_date.flatten(), self.due_date.flatten()),
            due_not_before_start,
        );
    }
}
