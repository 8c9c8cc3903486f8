//! The CRM at a glance: customers by status and source, projects by status, tasks by status and
//! by assignee, and what is overdue — counted by the database in three statements, for one
//! organization, under RLS.

pub mod routes;
pub mod store;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub use routes::routes;

/// Counts keyed by status (or source), every value present (0 when none).
pub type Counts = BTreeMap<&'static str, i64>;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CrmDashboard {
    pub customers: CustomerCounts,
    pub projects: ProjectCounts,
    pub tasks: TaskCounts,
    /// Members with open tasks, most open first (at most 50).
    pub assignees: Vec<AssigneeLoad>,
    /// When the counts were taken; "overdue" is relative to it.
    pub as_of: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerCounts {
    pub total: i64,
    #[schema(value_type = BTreeMap<String, i64>)]
    pub by_status: Counts,
    #[schema(value_type = BTreeMap<String, i64>)]
    pub by_source: Counts,
    /// Created in the 30 days before `as_of`.
    pub new_last_30_days: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectCounts {
    pub total: i64,
    #[schema(value_type = BTreeMap<String, i64>)]
    pub by_status: Counts,
    /// Not completed or cancelled, and due before `as_of`'s date (UTC).
    pub overdue: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskCounts {
    pub total: i64,
    #[schema(value_type = BTreeMap<String, i64>)]
    pub by_status: Counts,
    /// Open (to do, in progress or in review) and due before `as_of`.
    pub overdue: i64,
    /// Open and assigned to no one.
    pub unassigned_open: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssigneeLoad {
    pub user_id: Uuid,
    /// To do, in progress or in review.
    pub open: i64,
    pub overdue: i64,
}
