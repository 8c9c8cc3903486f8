//! Tasks of a project: subtasks (same project, no cycles), an assignee from the members, hours,
//! tags, and a kanban order within (project, status) that a move changes by writing one row.

pub mod routes;
pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

pub use routes::routes;

use super::customers::{normalized_tags, tag_list};
use super::projects::Priority;
use crate::kernel::input::{decimal, set, text, Checks, Validate};
use crate::text_enum;

text_enum! {
    /// A task's column on the board, in board order.
    pub enum TaskStatus {
        Todo = "todo", InProgress = "in_progress", Review = "review", Done = "done",
        Cancelled = "cancelled",
    }
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Task {
    pub id: Uuid,
    pub project_id: Uuid,
    /// The task this is a subtask of (same project).
    pub parent_task_id: Option<Uuid>,
    pub title: String,
    pub description: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: TaskStatus,
    #[sqlx(try_from = "String")]
    pub priority: Priority,
    /// A member of the organization; cleared when they leave it.
    pub assigned_to: Option<Uuid>,
    /// Who created it (set by the database; absent for API keys and deleted users).
    pub created_by: Option<Uuid>,
    pub due_date: Option<DateTime<Utc>>,
    /// Exact hours as a decimal string.
    pub estimated_hours: Option<String>,
    pub actual_hours: Option<String>,
    pub tags: Vec<String>,
    /// The card's place in its column: cards are ordered by `position`, then `id`.
    pub position: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new task, placed at the end of its column.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    #[schema(min_length = 1, max_length = 300, pattern = r"\S")]
    pub title: String,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    pub parent_task_id: Option<Uuid>,
    /// Default `todo`.
    pub status: Option<TaskStatus>,
    /// Default `medium`.
    pub priority: Option<Priority>,
    pub assigned_to: Option<Uuid>,
    pub due_date: Option<DateTime<Utc>>,
    /// A decimal string, at most 6 digits before the point and 2 after.
    #[schema(pattern = r"^\d{1,6}(\.\d{1,2})?$")]
    pub estimated_hours: Option<String>,
    #[schema(pattern = r"^\d{1,6}(\.\d{1,2})?$")]
    pub actual_hours: Option<String>,
    #[schema(max_items = 50)]
    pub tags: Option<Vec<String>>,
}

/// Changes to a task: absent fields stay; `null` clears an optional one. A new `status` puts
/// the card at the end of that column (a move places it anywhere).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskChanges {
    #[schema(min_length = 1, max_length = 300, pattern = r"\S")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 20000)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub parent_task_id: Option<Option<Uuid>>,
    pub status: Option<TaskStatus>,
    pub priority: Option<Priority>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub assigned_to: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub due_date: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(pattern = r"^\d{1,6}(\.\d{1,2})?$")]
    pub estimated_hours: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(pattern = r"^\d{1,6}(\.\d{1,2})?$")]
    pub actual_hours: Option<Option<String>>,
    #[schema(max_items = 50)]
    pub tags: Option<Vec<String>>,
}

/// Where a card goes: into `status` (default: its own column), right below the card `after` or
/// right above the card `before` (one of them, a card of that column), or at the column's end.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Move {
    pub status: Option<TaskStatus>,
    pub after: Option<Uuid>,
    pub before: Option<Uuid>,
}

/// A task as the board shows it: what a card needs (the rest is one `GET …/tasks/{task}` away),
/// so that a board of thousands stays small.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Card {
    pub id: Uuid,
    pub parent_task_id: Option<Uuid>,
    pub title: String,
    #[sqlx(try_from = "String")]
    pub status: TaskStatus,
    #[sqlx(try_from = "String")]
    pub priority: Priority,
    pub assigned_to: Option<Uuid>,
    pub due_date: Option<DateTime<Utc>>,
    pub estimated_hours: Option<String>,
    pub tags: Vec<String>,
    pub position: String,
}

/// A column of the board: its cards in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Column {
    pub status: TaskStatus,
    pub tasks: Vec<Card>,
}

/// Every column of a project's board, in board order (`todo` … `cancelled`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Board {
    pub columns: Vec<Column>,
}

impl Validate for NewTask {
    fn check(&self, c: &mut Checks) {
        c.field("title", Some(self.title.as_str()), text(1, 300));
        c.field("description", self.description.as_deref(), text(0, 20000));
        c.field(
            "estimated_hours",
            self.estimated_hours.as_deref(),
            decimal(6, 2),
        );
        c.field("actual_hours", self.actual_hours.as_deref(), decimal(6, 2));
        c.field("tags", self.tags.as_deref(), tag_list);
    }
}

impl Validate for TaskChanges {
    fn check(&self, c: &mut Checks) {
        c.field("title", self.title.as_deref(), text(1, 300));
        c.field("description", set(&self.description), text(0, 20000));
        c.field("estimated_hours", set(&self.estimated_hours), decimal(6, 2));
        c.field("actual_hours", set(&self.actual_hours), decimal(6, 2));
        c.field("tags", self.tags.as_deref(), tag_list);
    }
}

impl Validate for Move {
    fn check(&self, c: &mut Checks) {
        c.field("before", self.after.zip(self.before), |_| {
            Err("give after or before, not both".into())
        });
    }
}

/// Tags as stored (trimmed, each once).
pub(crate) fn tags(tags: Option<&[String]>) -> Option<Vec<String>> {
    tags.map(normalized_tags)
}
