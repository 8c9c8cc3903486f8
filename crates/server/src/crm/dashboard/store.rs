//! The dashboard's counts. Each statement reads one table of the organization once, grouped;
//! the caller's tenant transaction scopes them (RLS) and the organization names the index.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{AssigneeLoad, Counts, CrmDashboard, CustomerCounts, ProjectCounts, TaskCounts};
use crate::crm::customers::{CustomerSource, CustomerStatus};
use crate::crm::projects::ProjectStatus;
use crate::crm::tasks::TaskStatus;
use crate::kernel::access::{require_role, Role};
use crate::kernel::error::Result;
use crate::kernel::org_tx::OrgTx;

/// Customers of `$1` by status and source, with those created since `$2`.
pub const CUSTOMERS_SQL: &str = r"SELECT c.status, c.source, count(*), count(*) FILTER (WHERE c.created_at >= $2)
   FROM customers c WHERE c.organization_id = $1 GROUP BY c.status, c.source";

/// Projects of `$1` by status, with the open ones due before `$2` (a date).
pub const PROJECTS_SQL: &str = r"SELECT p.status, count(*),
        count(*) FILTER (WHERE p.due_date < $2 AND p.status NOT IN ('completed', 'cancelled'))
   FROM projects p WHERE p.organization_id = $1 GROUP BY p.status";

/// Tasks of `$1` by status and assignee, with those due before `$2`.
pub const TASKS_SQL: &str = r"SELECT t.status, t.assigned_to, count(*), count(*) FILTER (WHERE t.due_date < $2)
   FROM tasks t WHERE t.organization_id = $1 GROUP BY t.status, t.assigned_to";

const OPEN: [TaskStatus; 3] = [TaskStatus::Todo, TaskStatus::InProgress, TaskStatus::Review];

/// Every value of an enum at 0.
fn zeros(values: impl Iterator<Item = &'static str>) -> Counts {
    values.map(|v| (v, 0)).collect()
}

/// Adds `n` to the count of `key` when it is one of the counted values (a value the database
/// holds but this build does not know is left out rather than invented).
fn add(counts: &mut Counts, key: &str, n: i64) {
    if let Some(count) = counts.get_mut(key) {
        *count += n;
    }
}

pub async fn dashboard(tx: &mut OrgTx) -> Result<CrmDashboard> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    Ok(counts(tx.conn(), org, Utc::now()).await?)
}

/// The dashboard of `org` as of `as_of`, read through `conn` (a tenant transaction's; the
/// benchmark also reads it as the owner).
pub async fn counts(
    conn: &mut PgConnection,
    org: Uuid,
    as_of: DateTime<Utc>,
) -> sqlx::Result<CrmDashboard> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(CUSTOMERS_SQL)
        .bind(org)
        .bind(as_of - chrono::Duration::days(30))
        .fetch_all(&mut *conn)
        .await?;
    let mut customers = CustomerCounts {
        total: 0,
        by_status: zeros(CustomerStatus::ALL.iter().map(|s| s.as_str())),
        by_source: zeros(CustomerSource::ALL.iter().map(|s| s.as_str())),
        new_last_30_days: 0,
    };
    for (status, source, n, new) in rows {
        customers.total += n;
        customers.new_last_30_days += new;
        add(&mut customers.by_status, &status, n);
        add(&mut customers.by_source, &source, n);
    }

    let rows: Vec<(String, i64, i64)> = sqlx::query_as(PROJECTS_SQL)
        .bind(org)
        .bind(as_of.date_naive())
        .fetch_all(&mut *conn)
        .await?;
    let mut projects = ProjectCounts {
        total: 0,
        by_status: zeros(ProjectStatus::ALL.iter().map(|s| s.as_str())),
        overdue: 0,
    };
    for (status, n, overdue) in rows {
        projects.total += n;
        projects.overdue += overdue;
        add(&mut projects.by_status, &status, n);
    }

    let rows: Vec<(String, Option<Uuid>, i64, i64)> = sqlx::query_as(TASKS_SQL)
        .bind(org)
        .bind(as_of)
        .fetch_all(&mut *conn)
        .await?;
    let mut tasks = TaskCounts {
        total: 0,
        by_status: zeros(TaskStatus::ALL.iter().map(|s| s.as_str())),
        overdue: 0,
        unassigned_open: 0,
    };
    let mut assignees: Vec<AssigneeLoad> = Vec::new();
    for (status, assignee, n, overdue) in rows {
        tasks.total += n;
        add(&mut tasks.by_status, &status, n);
        if !OPEN.iter().any(|open| open.as_str() == status) {
            continue;
        }
        tasks.overdue += overdue;
        let Some(user_id) = assignee else {
            tasks.unassigned_open += n;
            continue;
        };
        match assignees.iter_mut().find(|a| a.user_id == user_id) {
            Some(load) => {
                load.open += n;
                load.overdue += overdue;
            }
            None => assignees.push(AssigneeLoad {
                user_id,
                open: n,
                overdue,
            }),
        }
    }
    assignees.sort_by(|a, b| b.open.cmp(&a.open).then(a.user_id.cmp(&b.user_id)));
    assignees.truncate(50);

    Ok(CrmDashboard {
        customers,
        projects,
        tasks,
        assignees,
        as_of,
    })
}
