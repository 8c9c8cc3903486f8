//! SQL of projects.

use uuid::Uuid;

use super::{NewProject, Priority, Project, ProjectChanges, ProjectStatus};
use crate::kernel::access::{require_role, Role};
use crate::kernel::error::{Error, Found, OnConstraint, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Page, PageParams};

const COLUMNS: &str = r"p.id, p.customer_id, p.name, p.description, p.status, p.priority,
    p.start_date, p.due_date, p.completion_date, p.budget::text AS budget, p.progress_percentage,
    p.progress_manual, p.project_manager_id, p.created_at, p.updated_at";

trait ProjectConstraints<T> {
    fn on_project_constraints(self) -> Result<T>;
}

impl<T, E: Into<Error>> ProjectConstraints<T> for std::result::Result<T, E> {
    fn on_project_constraints(self) -> Result<T> {
        self.on_field(
            "projects_customer",
            "customer_id",
            "must be a customer of this organization",
        )
        .on_field(
            "projects_manager",
            "project_manager_id",
            "must be a member of this organization",
        )
        .on_field(
            "projects_dates",
            "due_date",
            "must not be before start_date",
        )
    }
}

pub async fn get(tx: &mut OrgTx, id: Uuid) -> Result<Project> {
    let org = tx.org();
    sqlx::query_as(&format!(
        r"SELECT {COLUMNS} FROM projects p WHERE p.organization_id = $1 AND p.id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .found()
}

/// Projects by id, optionally of some statuses or of one customer.
pub async fn list(
    tx: &mut OrgTx,
    page: &PageParams,
    statuses: &[ProjectStatus],
    customer: Option<Uuid>,
) -> Result<Page<Project>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let rows: Vec<Project> = sqlx::query_as(&format!(
        r"SELECT {COLUMNS} FROM projects p
           WHERE p.organization_id = $1 AND p.id > $2
             AND (cardinality($3::text[]) = 0 OR p.status = ANY ($3))
             AND ($4::uuid IS NULL OR p.customer_id = $4)
           ORDER BY p.id LIMIT $5"
    ))
    .bind(org)
    .bind(page.after())
    .bind(&statuses)
    .bind(customer)
    .bind(page.fetch_limit())
    .persistent(false)
    .fetch_all(tx.conn())
    .await?;
    Ok(Page::from_rows(rows, page, |p| p.id))
}

pub async fn create(tx: &mut OrgTx, new: &Valid<NewProject>) -> Result<Project> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    sqlx::query_as(&format!(
        r"INSERT INTO projects AS p (id, organization_id, customer_id, name, description, status, priority,
                                    start_date, due_date, budget, progress_manual, project_manager_id)
          VALUES ($1, $2, $3, $4, $5, coalesce($6, 'planning'), coalesce($7, 'medium'), $8, $9,
                  $10::numeric, $11, $12)
          RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(org)
    .bind(new.customer_id)
    .bind(new.name.trim())
    .bind(new.description.as_deref())
    .bind(new.status.map(ProjectStatus::as_str))
    .bind(new.priority.map(Priority::as_str))
    .bind(new.start_date)
    .bind(new.due_date)
    .bind(new.budget.as_deref())
    .bind(new.progress_manual)
    .bind(new.project_manager_id)
    .fetch_one(tx.conn())
    .await
    .on_project_constraints()
}

pub async fn update(tx: &mut OrgTx, id: Uuid, changes: &Valid<ProjectChanges>) -> Result<Project> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let c = &**changes;
    sqlx::query_as(&format!(
        r"UPDATE projects p SET name = coalesce($3, p.name),
            description = CASE WHEN $4 THEN $5 ELSE p.description END,
            customer_id = CASE WHEN $6 THEN $7 ELSE p.customer_id END,
            status = coalesce($8, p.status),
            priority = coalesce($9, p.priority),
            start_date = CASE WHEN $10 THEN $11 ELSE p.start_date END,
            due_date = CASE WHEN $12 THEN $13 ELSE p.due_date END,
            budget = CASE WHEN $14 THEN $15::numeric ELSE p.budget END,
            progress_manual = CASE WHEN $16 THEN $17 ELSE p.progress_manual END,
            project_manager_id = CASE WHEN $18 THEN $19 ELSE p.project_manager_id END
          WHERE p.organization_id = $1 AND p.id = $2
          RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(id)
    .bind(c.name.as_deref().map(str::trim))
    .bind(c.description.is_some())
    .bind(c.description.clone().flatten())
    .bind(c.customer_id.is_some())
    .bind(c.customer_id.flatten())
    .bind(c.status.map(ProjectStatus::as_str))
    .bind(c.priority.map(Priority::as_str))
    .bind(c.start_date.is_some())
    .bind(c.start_date.flatten())
    .bind(c.due_date.is_some())
    .bind(c.due_date.flatten())
    .bind(c.budget.is_some())
    .bind(c.budget.clone().flatten())
    .bind(c.progress_manual.is_some())
    .bind(c.progress_manual.flatten())
    .bind(c.project_manager_id.is_some())
    .bind(c.project_manager_id.flatten())
    .fetch_optional(tx.conn())
    .await
    .on_project_constraints()?
    .found()
}

/// Deletes a project with its tasks (admins).
pub async fn delete(tx: &mut OrgTx, id: Uuid) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    sqlx::query(r"DELETE FROM projects WHERE organization_id = $1 AND id = $2")
        .bind(org)
        .bind(id)
        .execute(tx.conn())
        .await?
        .found()?;
    Ok(())
}
