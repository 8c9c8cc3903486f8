//! SQL of goals and their KPI links.

use uuid::Uuid;

use super::{Goal, GoalChanges, GoalRow, Link, LinkRow, NewGoal};
use crate::kernel::access::require_role;
use crate::kernel::access::Role;
use crate::kernel::error::{Error, Found, OnConstraint, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Page, PageParams};
use crate::lifecycle::Deletable;

const GOAL_SELECT: &str = r"SELECT id, title, description, target_date, status, completed_at, deleted_at,
    created_at, updated_at FROM goals";

/// The KPI links of `goals`, with what progress needs.
async fn links(tx: &mut OrgTx, goals: &[Uuid]) -> Result<Vec<LinkRow>> {
    let org = tx.org();
    Ok(sqlx::query_as(
        r"SELECT l.goal_id, l.kpi_id, k.name, l.weight, k.current_value, k.target_value, k.baseline,
                k.direction, k.deleted_at IS NOT NULL AS deleted
           FROM goal_kpis l JOIN kpis k ON k.organization_id = l.organization_id AND k.id = l.kpi_id
          WHERE l.organization_id = $1 AND l.goal_id = ANY ($2) ORDER BY l.created_at, l.id",
    )
    .bind(org)
    .bind(goals)
    .fetch_all(tx.conn())
    .await?)
}

fn assemble(goals: Vec<GoalRow>, mut links: Vec<LinkRow>) -> Vec<Goal> {
    goals
        .into_iter()
        .map(|g| {
            let (mine, rest): (Vec<LinkRow>, Vec<LinkRow>) =
                links.drain(..).partition(|l| l.goal_id == g.id);
            links = rest;
            Goal::from_rows(g, mine)
        })
        .collect()
}

pub async fn get(tx: &mut OrgTx, id: Uuid, with_deleted: bool) -> Result<Goal> {
    let org = tx.org();
    let goal: GoalRow = sqlx::query_as(&format!(
        r"{GOAL_SELECT} WHERE organization_id = $1 AND id = $2 AND ($3 OR deleted_at IS NULL)"
    ))
    .bind(org)
    .bind(id)
    .bind(with_deleted)
    .fetch_optional(tx.conn())
    .await?
    .found()?;
    let links = links(tx, &[id]).await?;
    Ok(Goal::from_rows(goal, links))
}

pub async fn list(tx: &mut OrgTx, page: &PageParams, deleted: bool) -> Result<Page<Goal>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let rows: Vec<GoalRow> = sqlx::query_as(&format!(
        r"{GOAL_SELECT} WHERE organization_id = $1 AND id > $2 AND (deleted_at IS NOT NULL) = $3 ORDER BY id LIMIT $4"
    ))
    .bind(org)
    .bind(page.after())
    .bind(deleted)
    .bind(page.fetch_limit())
    .fetch_all(tx.conn())
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|g| g.id).collect();
    let links = links(tx, &ids).await?;
    Ok(Page::from_rows(assemble(rows, links), page, |g| g.id))
}

pub async fn create(tx: &mut OrgTx, new: &Valid<NewGoal>) -> Result<Goal> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let id = Uuid::now_v7();
    sqlx::query(
        r"INSERT INTO goals (id, organization_id, title, description, target_date, status) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(org)
    .bind(new.title.trim())
    .bind(new.description.as_deref())
    .bind(new.target_date)
    .bind(new.status.unwrap_or(super::GoalStatus::Active).as_str())
    .execute(tx.conn())
    .await?;
    get(tx, id, false).await
}

pub async fn update(tx: &mut OrgTx, id: Uuid, changes: &Valid<GoalChanges>) -> Result<Goal> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let done = sqlx::query(
        r"UPDATE goals SET title = coalesce($3, title),
            description = CASE WHEN $4 THEN $5 ELSE description END,
            target_date = CASE WHEN $6 THEN $7 ELSE target_date END,
            status = coalesce($8, status)
         WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(org)
    .bind(id)
    .bind(changes.title.as_deref().map(str::trim))
    .bind(changes.description.is_some())
    .bind(changes.description.clone().flatten())
    .bind(changes.target_date.is_some())
    .bind(changes.target_date.flatten())
    .bind(changes.status.map(|s| s.as_str()))
    .execute(tx.conn())
    .await?;
    done.found()?;
    get(tx, id, false).await
}

/// Soft-deletes or restores a goal (its links stay).
pub async fn set_deleted(tx: &mut OrgTx, id: Uuid, deleted: bool) -> Result<Goal> {
    crate::lifecycle::set_deleted(tx, Deletable::Goals, id, deleted).await?;
    get(tx, id, true).await
}

/// Deletes a goal for good (admins).
pub async fn purge(tx: &mut OrgTx, id: Uuid) -> Result<()> {
    crate::lifecycle::purge(tx, Deletable::Goals, id).await
}

/// Links a KPI of the same organization (or changes its weight).
pub async fn link(tx: &mut OrgTx, goal: Uuid, kpi: Uuid, link: &Valid<Link>) -> Result<Goal> {
    let org = tx.org();
    let weight = link.weight.unwrap_or(1.0);
    require_role(tx, Role::Member).await?;
    get(tx, goal, false).await?;
    sqlx::query(
        r"INSERT INTO goal_kpis (organization_id, goal_id, kpi_id, weight) VALUES ($1, $2, $3, $4)
         ON CONFLICT (goal_id, kpi_id) DO UPDATE SET weight = excluded.weight",
    )
    .bind(org)
    .bind(goal)
    .bind(kpi)
    .bind(weight)
    .execute(tx.conn())
    .await
    // The KPI is named in the path: not in this organization, it is not there (404).
    .on_constraint("goal_kpis_organization_id_kpi_id_fkey", |_| Error::NotFound)?;
    get(tx, goal, false).await
}

pub async fn unlink(tx: &mut OrgTx, goal: Uuid, kpi: Uuid) -> Result<Goal> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let done = sqlx::query(
        r"DELETE FROM goal_kpis WHERE organization_id = $1 AND goal_id = $2 AND kpi_id = $3",
    )
    .bind(org)
    .bind(goal)
    .bind(kpi)
    .execute(tx.conn())
    .await?;
    done.found()?;
    get(tx, goal, false).await
}
