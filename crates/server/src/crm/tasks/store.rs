//! SQL of tasks, their board and their moves.

use uuid::Uuid;

use super::{tags, Board, Card, Column, Move, NewTask, Task, TaskChanges, TaskStatus};
use crate::crm::customers::store::Assignee;
use crate::crm::projects::Priority;
use crate::kernel::access::{require_role, Role};
use crate::kernel::error::{Error, Found, OnConstraint, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Limit, Page, PageParams, SortCursor, Sorted, SortedPage};

const COLUMNS: &str = r"t.id, t.project_id, t.parent_task_id, t.title, t.description, t.status,
    t.priority, t.assigned_to, t.created_by, t.due_date, t.estimated_hours::text AS estimated_hours,
    t.actual_hours::text AS actual_hours, t.tags, t.position, t.created_at, t.updated_at";

trait TaskConstraints<T> {
    fn on_task_constraints(self) -> Result<T>;
}

impl<T, E: Into<Error>> TaskConstraints<T> for std::result::Result<T, E> {
    fn on_task_constraints(self) -> Result<T> {
        // The project is the path's: not one of this organization's is not found.
        self.on_constraint("tasks_project", |_| Error::NotFound)
            .on_field(
                "tasks_parent",
                "parent_task_id",
                "must be a task of the same project",
            )
            .on_field(
                "tasks_not_own_parent",
                "parent_task_id",
                "a task cannot be its own subtask",
            )
            .on_field(
                "tasks_assignee",
                "assigned_to",
                "must be a member of this organization",
            )
    }
}

pub async fn get(tx: &mut OrgTx, project: Uuid, id: Uuid) -> Result<Task> {
    let org = tx.org();
    sqlx::query_as(&format!(
        r"SELECT {COLUMNS} FROM tasks t
           WHERE t.organization_id = $1 AND t.project_id = $2 AND t.id = $3"
    ))
    .bind(org)
    .bind(project)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .found()
}

/// 404 unless the project is one of this organization's.
async fn require_project(tx: &mut OrgTx, project: Uuid) -> Result<()> {
    let org = tx.org();
    let found: bool = sqlx::query_scalar(
        r"SELECT EXISTS (SELECT FROM projects WHERE organization_id = $1 AND id = $2)",
    )
    .bind(org)
    .bind(project)
    .fetch_one(tx.conn())
    .await?;
    found.then_some(()).ok_or(Error::NotFound)
}

/// A project's tasks by id, optionally of some statuses or the subtasks of one task.
pub async fn list(
    tx: &mut OrgTx,
    project: Uuid,
    page: &PageParams,
    statuses: &[TaskStatus],
    parent: Option<Uuid>,
) -> Result<Page<Task>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    require_project(tx, project).await?;
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let rows: Vec<Task> = sqlx::query_as(&format!(
        r"SELECT {COLUMNS} FROM tasks t
           WHERE t.organization_id = $1 AND t.project_id = $2 AND t.id > $3
             AND (cardinality($4::text[]) = 0 OR t.status = ANY ($4))
             AND ($5::uuid IS NULL OR t.parent_task_id = $5)
           ORDER BY t.id LIMIT $6"
    ))
    .bind(org)
    .bind(project)
    .bind(page.after())
    .bind(&statuses)
    .bind(parent)
    .bind(page.fetch_limit())
    .persistent(false)
    .fetch_all(tx.conn())
    .await?;
    Ok(Page::from_rows(rows, page, |t| t.id))
}

pub async fn create(tx: &mut OrgTx, project: Uuid, new: &Valid<NewTask>) -> Result<Task> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let status = new.status.unwrap_or(TaskStatus::Todo);
    // At the end of its column (app.kanban_place).
    sqlx::query_as(&format!(
        r"INSERT INTO tasks AS t (id, organization_id, project_id, parent_task_id, title, description, status,
                                 priority, assigned_to, due_date, estimated_hours, actual_hours, tags, position)
          SELECT $1, $2, $3, $4, $5, $6, p.status, coalesce($8, 'medium'), $9, $10, $11::numeric,
                 $12::numeric, coalesce($13, '{{}}'), p.position
            FROM app.kanban_place($2, $3, $7, NULL, NULL, NULL) p
          RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(org)
    .bind(project)
    .bind(new.parent_task_id)
    .bind(new.title.trim())
    .bind(new.description.as_deref())
    .bind(status.as_str())
    .bind(new.priority.map(Priority::as_str))
    .bind(new.assigned_to)
    .bind(new.due_date)
    .bind(new.estimated_hours.as_deref())
    .bind(new.actual_hours.as_deref())
    .bind(tags(new.tags.as_deref()))
    .fetch_one(tx.conn())
    .await
    .on_task_constraints()
}

pub async fn update(
    tx: &mut OrgTx,
    project: Uuid,
    id: Uuid,
    changes: &Valid<TaskChanges>,
) -> Result<Task> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let c = &**changes;
    sqlx::query_as(&format!(
        r"UPDATE tasks t SET title = coalesce($4, t.title),
            description = CASE WHEN $5 THEN $6 ELSE t.description END,
            parent_task_id = CASE WHEN $7 THEN $8 ELSE t.parent_task_id END,
            status = coalesce($9, t.status),
            priority = coalesce($10, t.priority),
            assigned_to = CASE WHEN $11 THEN $12 ELSE t.assigned_to END,
            due_date = CASE WHEN $13 THEN $14 ELSE t.due_date END,
            estimated_hours = CASE WHEN $15 THEN $16::numeric ELSE t.estimated_hours END,
            actual_hours = CASE WHEN $17 THEN $18::numeric ELSE t.actual_hours END,
            tags = coalesce($19, t.tags),
            -- A new column: the card goes to its end.
            position = CASE WHEN $9 <> t.status
                THEN (SELECT p.position FROM app.kanban_place($1, $2, $9, NULL, NULL, $3) p)
                ELSE t.position END
          WHERE t.organization_id = $1 AND t.project_id = $2 AND t.id = $3
          RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(project)
    .bind(id)
    .bind(c.title.as_deref().map(str::trim))
    .bind(c.description.is_some())
    .bind(c.description.clone().flatten())
    .bind(c.parent_task_id.is_some())
    .bind(c.parent_task_id.flatten())
    .bind(c.status.map(TaskStatus::as_str))
    .bind(c.priority.map(Priority::as_str))
    .bind(c.assigned_to.is_some())
    .bind(c.assigned_to.flatten())
    .bind(c.due_date.is_some())
    .bind(c.due_date.flatten())
    .bind(c.estimated_hours.is_some())
    .bind(c.estimated_hours.clone().flatten())
    .bind(c.actual_hours.is_some())
    .bind(c.actual_hours.clone().flatten())
    .bind(tags(c.tags.as_deref()))
    .fetch_optional(tx.conn())
    .await
    .on_task_constraints()?
    .found()
}

/// Deletes a task and its subtasks (admins).
pub async fn delete(tx: &mut OrgTx, project: Uuid, id: Uuid) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    sqlx::query(r"DELETE FROM tasks WHERE organization_id = $1 AND project_id = $2 AND id = $3")
        .bind(org)
        .bind(project)
        .bind(id)
        .execute(tx.conn())
        .await?
        .found()?;
    Ok(())
}

/// The board's cards, column after column (`$1` organization, `$2` project).
pub const BOARD_SQL: &str = r"SELECT t.id, t.parent_task_id, t.title, t.status, t.priority,
        t.assigned_to, t.due_date, t.estimated_hours::text AS estimated_hours, t.tags, t.position
   FROM tasks t WHERE t.organization_id = $1 AND t.project_id = $2
  ORDER BY t.status, t.position, t.id";

/// The board: every column in board order, each card in order, in one query.
pub async fn board(tx: &mut OrgTx, project: Uuid) -> Result<Board> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    require_project(tx, project).await?;
    let cards: Vec<Card> = sqlx::query_as(BOARD_SQL)
        .bind(org)
        .bind(project)
        .fetch_all(tx.conn())
        .await?;
    let mut columns: Vec<Column> = TaskStatus::ALL
        .iter()
        .map(|status| Column {
            status: *status,
            tasks: Vec::new(),
        })
        .collect();
    for card in cards {
        if let Some(column) = columns.iter_mut().find(|c| c.status == card.status) {
            column.tasks.push(card);
        }
    }
    Ok(Board { columns })
}

/// Moves a card: into another column and/or next to another card, in one statement
/// (app.kanban_place finds the key under its column's lock). Writes the card's row only, outside
/// a rare rebalance. Why a move did not happen is asked only then: 403 for a viewer, 404 for a
/// card not in the project, 422 for a neighbour not in the target column.
pub async fn move_task(tx: &mut OrgTx, project: Uuid, id: Uuid, to: &Valid<Move>) -> Result<Task> {
    let org = tx.org();
    let moved: Option<Task> = sqlx::query_as(&format!(
        r"UPDATE tasks t SET status = p.status, position = p.position
            FROM app.kanban_place($1, $2, $4, $5, $6, $3) p
           WHERE t.organization_id = $1 AND t.project_id = $2 AND t.id = $3
           RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(project)
    .bind(id)
    .bind(to.status.map(TaskStatus::as_str))
    .bind(to.after)
    .bind(to.after.is_none().then_some(to.before).flatten())
    .fetch_optional(tx.conn())
    .await?;
    if let Some(task) = moved {
        return Ok(task);
    }
    require_role(tx, Role::Member).await?;
    get(tx, project, id).await?;
    let field = if to.after.is_some() {
        "after"
    } else {
        "before"
    };
    Err(Error::invalid(
        field,
        "must be another card of the target column",
    ))
}

/// The SQL of [`assigned`] (for plan tests too): $1 organization, $2 assignee (NULL: me),
/// $3 statuses, $4/$5 the cursor's due date and id, $6 the page size plus one. A person's tasks
/// are few: read them all through `tasks_by_assignee`, then sort.
pub fn assigned_sql() -> String {
    format!(
        r"SELECT {COLUMNS}, coalesce(t.due_date, 'infinity')::text AS sort_key FROM tasks t
           WHERE t.organization_id = $1 AND t.assigned_to = coalesce($2, (SELECT app.user_id()))
             AND t.status = ANY ($3)
             AND ($4::text IS NULL OR (coalesce(t.due_date, 'infinity'), t.id) > ($4::timestamptz, $5))
           ORDER BY coalesce(t.due_date, 'infinity'), t.id LIMIT $6"
    )
}

/// Open (or the given statuses') tasks assigned to someone, across projects, soonest due first
/// (no due date last).
pub async fn assigned(
    tx: &mut OrgTx,
    assignee: Assignee,
    statuses: &[TaskStatus],
    limit: Limit,
    after: Option<&SortCursor>,
) -> Result<SortedPage<Task>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let statuses: Vec<&str> = if statuses.is_empty() {
        vec!["todo", "in_progress", "review"]
    } else {
        statuses.iter().map(|s| s.as_str()).collect()
    };
    let user = match assignee {
        Assignee::User(user) => Some(user),
        Assignee::Me => None,
    };
    let rows: Vec<Sorted<Task>> = sqlx::query_as(&assigned_sql())
        .bind(org)
        .bind(user)
        .bind(&statuses)
        .bind(after.map(|c| c.key.clone()))
        .bind(after.map(|c| c.id))
        .bind(i64::from(limit.get()) + 1)
        .persistent(false)
        .fetch_all(tx.conn())
        .await?;
    Ok(SortedPage::from_rows(rows, limit, "due", |t| t.id))
}
