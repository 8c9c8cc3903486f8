//! SQL of tasks, their board and their moves.

use uuid::Uuid;

use super::{tags, Board, Card, Column, Move, NewTask, Task, TaskChanges, TaskStatus};
use crate::crm::customers::store::Assignee;
use crate::crm::projects::Priority;
use crate::crm::rank;
use crate::kernel::access::{require_role, Role};
use crate::kernel::error::{Error, FieldError, Found, OnConstraint, Result};
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
    let (_, position) = place(tx, project, Some(status), Placement::End, None).await?;
    sqlx::query_as(&format!(
        r"INSERT INTO tasks AS t (id, organization_id, project_id, parent_task_id, title, description, status,
                                 priority, assigned_to, due_date, estimated_hours, actual_hours, tags, position)
          VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, 'medium'), $9, $10, $11::numeric,
                  $12::numeric, coalesce($13, '{{}}'), $14)
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
    .bind(position)
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
    // A new column: the card goes to its end.
    let position = match c.status {
        Some(status) if get(tx, project, id).await?.status != status => Some(
            place(tx, project, Some(status), Placement::End, Some(id))
                .await?
                .1,
        ),
        _ => None,
    };
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
            position = coalesce($20, t.position)
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
    .bind(position)
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

/// Where in a column a card goes.
enum Placement {
    End,
    After(Uuid),
    Before(Uuid),
}

/// The column a card goes to (`status`, or the moving card's own) and the neighbours' keys
/// around the placement there (`moving` itself left out), in one statement: 422 when the named
/// neighbour is not in that column of this project, 404 when the moving card is not there.
async fn neighbours(
    tx: &mut OrgTx,
    project: Uuid,
    status: Option<TaskStatus>,
    placement: &Placement,
    moving: Option<Uuid>,
) -> Result<(TaskStatus, Option<String>, Option<String>)> {
    let org = tx.org();
    // The target column: the one asked for, or the moving card's.
    const COLUMN: &str = r"coalesce($3, (SELECT m.status FROM tasks m
        WHERE m.organization_id = $1 AND m.project_id = $2 AND m.id = $5))";
    let (sql, card, field) = match placement {
        Placement::End => (
            format!(
                r"SELECT c.status,
                         (SELECT t.position FROM tasks t
                           WHERE t.organization_id = $1 AND t.project_id = $2 AND t.status = c.status
                             AND t.id IS DISTINCT FROM $5
                           ORDER BY t.status DESC, t.position DESC, t.id DESC LIMIT 1),
                         NULL::text
                    FROM (SELECT {COLUMN} AS status, $4::uuid AS unused) c WHERE c.status IS NOT NULL"
            ),
            None,
            "",
        ),
        Placement::After(card) => (
            format!(
                r"SELECT a.status, a.position,
                         (SELECT t.position FROM tasks t
                           WHERE t.organization_id = $1 AND t.project_id = $2 AND t.status = a.status
                             AND (t.position, t.id) > (a.position, a.id) AND t.id IS DISTINCT FROM $5
                           ORDER BY t.status, t.position, t.id LIMIT 1)
                    FROM tasks a
                   WHERE a.organization_id = $1 AND a.project_id = $2 AND a.id = $4
                     AND a.id IS DISTINCT FROM $5 AND a.status = {COLUMN}"
            ),
            Some(*card),
            "after",
        ),
        Placement::Before(card) => (
            format!(
                r"SELECT b.status,
                         (SELECT t.position FROM tasks t
                           WHERE t.organization_id = $1 AND t.project_id = $2 AND t.status = b.status
                             AND (t.position, t.id) < (b.position, b.id) AND t.id IS DISTINCT FROM $5
                           ORDER BY t.status DESC, t.position DESC, t.id DESC LIMIT 1),
                         b.position
                    FROM tasks b
                   WHERE b.organization_id = $1 AND b.project_id = $2 AND b.id = $4
                     AND b.id IS DISTINCT FROM $5 AND b.status = {COLUMN}"
            ),
            Some(*card),
            "before",
        ),
    };
    let found: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(&sql)
        .bind(org)
        .bind(project)
        .bind(status.map(TaskStatus::as_str))
        .bind(card)
        .bind(moving)
        .fetch_optional(tx.conn())
        .await?;
    let Some((column, low, high)) = found else {
        // Not placed: the moving card is not here (404), or the neighbour is not beside it (422).
        if let Some(moving) = moving {
            get(tx, project, moving).await?;
        }
        if card.is_none() {
            return Err(Error::NotFound);
        }
        return Err(Error::Validation(vec![FieldError::new(
            field,
            "must be another card of the target column",
        )]));
    };
    let column =
        TaskStatus::try_from(column).map_err(|e| Error::Database(sqlx::Error::Decode(e.into())))?;
    Ok((column, low, high))
}

/// The column and key for a card at `placement`; when the neighbours leave no room (two cards
/// with one key, from moves at the same moment) or keys got long, the column gets fresh keys
/// first.
async fn place(
    tx: &mut OrgTx,
    project: Uuid,
    status: Option<TaskStatus>,
    placement: Placement,
    moving: Option<Uuid>,
) -> Result<(TaskStatus, String)> {
    let (column, low, high) = neighbours(tx, project, status, &placement, moving).await?;
    if let Some(key) =
        rank::between(low.as_deref(), high.as_deref()).filter(|k| k.len() <= rank::LONG)
    {
        return Ok((column, key));
    }
    rebalance(tx, project, column).await?;
    let (column, low, high) = neighbours(tx, project, Some(column), &placement, moving).await?;
    rank::between(low.as_deref(), high.as_deref())
        .map(|key| (column, key))
        .ok_or_else(|| Error::Internal("no kanban key after a rebalance".into()))
}

/// Gives a column's cards fresh, evenly spaced keys in their current order (rare: see `place`).
async fn rebalance(tx: &mut OrgTx, project: Uuid, status: TaskStatus) -> Result<()> {
    let org = tx.org();
    let ids: Vec<Uuid> = sqlx::query_scalar(
        r"SELECT t.id FROM tasks t
           WHERE t.organization_id = $1 AND t.project_id = $2 AND t.status = $3
           ORDER BY t.position, t.id FOR UPDATE",
    )
    .bind(org)
    .bind(project)
    .bind(status.as_str())
    .fetch_all(tx.conn())
    .await?;
    sqlx::query(
        r"UPDATE tasks t SET position = k.position
            FROM unnest($2::uuid[], $3::text[]) AS k (id, position)
           WHERE t.organization_id = $1 AND t.id = k.id",
    )
    .bind(org)
    .bind(&ids)
    .bind(rank::evenly(ids.len()))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Moves a card: into another column and/or next to another card. Writes the card's row only
/// (outside a rebalance), in two statements: where it goes, then the move. Who may move is
/// asked only when the move did not happen (403 for a viewer, 404 for a stranger).
pub async fn move_task(tx: &mut OrgTx, project: Uuid, id: Uuid, to: &Valid<Move>) -> Result<Task> {
    let org = tx.org();
    let placement = match (to.after, to.before) {
        (Some(card), _) => Placement::After(card),
        (None, Some(card)) => Placement::Before(card),
        (None, None) => Placement::End,
    };
    let (status, position) = match place(tx, project, to.status, placement, Some(id)).await {
        Ok(placed) => placed,
        Err(refused) => {
            require_role(tx, Role::Member).await?;
            return Err(refused);
        }
    };
    let moved: Option<Task> = sqlx::query_as(&format!(
        r"UPDATE tasks t SET status = $4, position = $5
           WHERE t.organization_id = $1 AND t.project_id = $2 AND t.id = $3
           RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(project)
    .bind(id)
    .bind(status.as_str())
    .bind(position)
    .fetch_optional(tx.conn())
    .await?;
    match moved {
        Some(task) => Ok(task),
        None => {
            require_role(tx, Role::Member).await?;
            Err(Error::NotFound)
        }
    }
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
