//! What the model is told about the record a conversation is about: a compact summary read in
//! the caller's own transaction, so row-level security decides what goes in — the model never
//! sees what the caller could not read.

use std::fmt::Write;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::{ContextType, Conversation};
use crate::kernel::error::Result;
use crate::kernel::org_tx::OrgTx;

/// Tasks of a project listed in its summary (the most recently changed).
const RECENT_TASKS: i64 = 25;
/// Characters of a description kept in a summary.
const DESCRIPTION_CHARS: usize = 1000;

fn clipped(text: &str) -> String {
    let mut kept: String = text.chars().take(DESCRIPTION_CHARS).collect();
    if kept.len() < text.len() {
        kept.push('…');
    }
    kept
}

fn or_none<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "none".into(), |v| v.to_string())
}

/// The summary of the conversation's record, or `None` for a general conversation. A record
/// gone (deleted, or no longer readable by the caller) is said to be so.
pub async fn summary(tx: &mut OrgTx, conversation: &Conversation) -> Result<Option<String>> {
    let Some(id) = conversation.context_id else {
        return Ok(None);
    };
    let found = match conversation.context_type {
        ContextType::General => return Ok(None),
        ContextType::Project => project(tx, id).await?,
        ContextType::Customer => customer(tx, id).await?,
        ContextType::Task => task(tx, id).await?,
    };
    Ok(Some(found.unwrap_or_else(|| {
        format!(
            "The {} this conversation is about no longer exists or is no longer visible to the user.",
            conversation.context_type.as_str()
        )
    })))
}

type ProjectRow = (
    String,
    String,
    String,
    Option<NaiveDate>,
    Option<NaiveDate>,
    i32,
    Option<String>,
    Option<String>,
);

/// A task in a project's summary: title, status, priority, due, assigned.
type TaskLine = (String, String, String, Option<DateTime<Utc>>, bool);

/// A customer: name, company, status, source, tags.
type CustomerRow = (String, Option<String>, String, String, Vec<String>);

/// A project: its fields, its tasks counted by status, overdue ones, the latest changed.
pub async fn project(tx: &mut OrgTx, id: Uuid) -> Result<Option<String>> {
    let org = tx.org();
    let found: Option<ProjectRow> = sqlx::query_as(
        r"SELECT p.name, p.status, p.priority, p.start_date, p.due_date, p.progress_percentage,
                 p.description, c.name
            FROM projects p
            LEFT JOIN customers c ON c.organization_id = p.organization_id AND c.id = p.customer_id
           WHERE p.organization_id = $1 AND p.id = $2",
    )
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some((name, status, priority, start, due, progress, description, customer)) = found else {
        return Ok(None);
    };
    let mut out = String::new();
    let _ = writeln!(out, "Project: {name}");
    let _ = writeln!(
        out,
        "Status: {status}; priority: {priority}; progress: {progress} %; start: {}; due: {}; customer: {}",
        or_none(start),
        or_none(due),
        or_none(customer)
    );
    if let Some(description) = description.filter(|d| !d.trim().is_empty()) {
        let _ = writeln!(out, "Description: {}", clipped(&description));
    }
    let counts: Vec<(String, i64, i64)> = sqlx::query_as(
        r"SELECT status, count(*), count(*) FILTER (WHERE due_date < now() AND status NOT IN ('done', 'cancelled'))
            FROM tasks WHERE organization_id = $1 AND project_id = $2
           GROUP BY status ORDER BY status",
    )
    .bind(org)
    .bind(id)
    .fetch_all(tx.conn())
    .await?;
    let total: i64 = counts.iter().map(|(_, n, _)| n).sum();
    let overdue: i64 = counts.iter().map(|(_, _, o)| o).sum();
    let by_status: Vec<String> = counts.iter().map(|(s, n, _)| format!("{s} {n}")).collect();
    let _ = writeln!(
        out,
        "Tasks: {total} ({}); overdue: {overdue}",
        if by_status.is_empty() {
            "none".into()
        } else {
            by_status.join(", ")
        }
    );
    let tasks: Vec<TaskLine> = sqlx::query_as(
        r"SELECT title, status, priority, due_date, assigned_to IS NOT NULL
            FROM tasks WHERE organization_id = $1 AND project_id = $2
           ORDER BY updated_at DESC, id DESC LIMIT $3",
    )
    .bind(org)
    .bind(id)
    .bind(RECENT_TASKS)
    .fetch_all(tx.conn())
    .await?;
    if !tasks.is_empty() {
        let _ = writeln!(out, "Latest changed tasks:");
    }
    for (title, status, priority, due, assigned) in tasks {
        let _ = writeln!(
            out,
            "- {title} [{status}, {priority} priority, due {}{}]",
            due.map_or_else(|| "none".into(), |d| d.date_naive().to_string()),
            if assigned { "" } else { ", unassigned" }
        );
    }
    Ok(Some(out))
}

async fn customer(tx: &mut OrgTx, id: Uuid) -> Result<Option<String>> {
    let org = tx.org();
    let found: Option<CustomerRow> = sqlx::query_as(
        r"SELECT name, company, status, source, tags FROM customers
           WHERE organization_id = $1 AND id = $2",
    )
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some((name, company, status, source, tags)) = found else {
        return Ok(None);
    };
    let mut out = String::new();
    let _ = writeln!(out, "Customer: {name}");
    let _ = writeln!(
        out,
        "Company: {}; status: {status}; source: {source}; tags: {}",
        or_none(company),
        if tags.is_empty() {
            "none".into()
        } else {
            tags.join(", ")
        }
    );
    let projects: Vec<(String, String, i32)> = sqlx::query_as(
        r"SELECT name, status, progress_percentage FROM projects
           WHERE organization_id = $1 AND customer_id = $2 ORDER BY updated_at DESC LIMIT 10",
    )
    .bind(org)
    .bind(id)
    .fetch_all(tx.conn())
    .await?;
    for (name, status, progress) in projects {
        let _ = writeln!(out, "- project {name} [{status}, {progress} %]");
    }
    Ok(Some(out))
}

type TaskRow = (
    String,
    String,
    String,
    Option<DateTime<Utc>>,
    Option<String>,
    String,
    i64,
);

async fn task(tx: &mut OrgTx, id: Uuid) -> Result<Option<String>> {
    let org = tx.org();
    let found: Option<TaskRow> = sqlx::query_as(
        r"SELECT t.title, t.status, t.priority, t.due_date, t.description, p.name,
                 (SELECT count(*) FROM tasks s WHERE s.organization_id = t.organization_id AND s.parent_task_id = t.id)
            FROM tasks t JOIN projects p ON p.organization_id = t.organization_id AND p.id = t.project_id
           WHERE t.organization_id = $1 AND t.id = $2",
    )
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some((title, status, priority, due, description, project, subtasks)) = found else {
        return Ok(None);
    };
    let mut out = String::new();
    let _ = writeln!(out, "Task: {title} (project {project})");
    let _ = writeln!(
        out,
        "Status: {status}; priority: {priority}; due: {}; subtasks: {subtasks}",
        due.map_or_else(|| "none".into(), |d| d.date_naive().to_string())
    );
    if let Some(description) = description.filter(|d| !d.trim().is_empty()) {
        let _ = writeln!(out, "Description: {}", clipped(&description));
    }
    Ok(Some(out))
}

/// A KPI and its weekly values over the last half year (the series API's), for the trend tool.
pub async fn kpi(tx: &mut OrgTx, id: Uuid) -> Result<String> {
    use crate::kpis::{store, Aggregate, Bucket};
    let kpi = store::get(tx, id, false).await?;
    let since = Utc::now() - chrono::Duration::days(182);
    let series = store::series(
        tx,
        id,
        Bucket::Week,
        Aggregate::Last,
        "UTC",
        Some(since),
        None,
    )
    .await?;
    let mut out = String::new();
    let unit = kpi.unit.clone().unwrap_or_default();
    let _ = writeln!(out, "KPI: {} ({})", kpi.name, kpi.direction.as_str());
    let _ = writeln!(
        out,
        "Current value: {} {unit}; target: {}; baseline: {}",
        or_none(kpi.current_value),
        or_none(kpi.target_value),
        or_none(kpi.baseline)
    );
    if let Some(description) = kpi.description.filter(|d| !d.trim().is_empty()) {
        let _ = writeln!(out, "Description: {}", clipped(&description));
    }
    if series.is_empty() {
        let _ = writeln!(out, "No values in the last half year.");
    } else {
        let _ = writeln!(out, "Weekly values (last of each week, UTC):");
    }
    for point in series {
        let _ = writeln!(
            out,
            "- week of {}: {} {unit}",
            point.start.date_naive(),
            point.value
        );
    }
    Ok(out)
}
