//! Owner-side upkeep of Fast Track data: refreshing the reports, archiving completed entries and
//! bringing them back, purging audit history past its retention. Every step is one transaction
//! over a bounded batch, so a run can be interrupted at any point and simply started again.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{DbError, OwnerPool};

/// Rows moved or removed per transaction.
pub const BATCH: i32 = 1000;

/// Refreshes the reporting views without blocking readers.
pub async fn refresh_reports(owner: &OwnerPool) -> Result<(), DbError> {
    for view in ["tool_access.entry_report", "tool_access.progress_report"] {
        sqlx::query(&format!("REFRESH MATERIALIZED VIEW CONCURRENTLY {view}"))
            .execute(&owner.0)
            .await?;
    }
    Ok(())
}

/// The installed tools' slugs, in sprint order.
pub async fn tool_slugs(owner: &OwnerPool) -> Result<Vec<String>, DbError> {
    Ok(
        sqlx::query_scalar(r"SELECT slug FROM tool_access.tools ORDER BY sprint")
            .fetch_all(&owner.0)
            .await?,
    )
}

/// Runs `batch` (one bounded transaction) until it does nothing; `done_so_far` hears the running
/// total after each batch. Returns the total.
async fn until_done<F, Fut>(mut batch: F, mut done_so_far: impl FnMut(u64)) -> Result<u64, DbError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<i32, sqlx::Error>>,
{
    let mut total = 0u64;
    loop {
        let n = batch().await?;
        if n <= 0 {
            return Ok(total);
        }
        total += n as u64;
        done_so_far(total);
    }
}

/// Moves every entry completed before `completed_before` into the archive, batch by batch;
/// `progress` hears (tool, entries moved so far). Returns the total moved.
pub async fn archive(
    owner: &OwnerPool,
    completed_before: DateTime<Utc>,
    mut progress: impl FnMut(&str, u64),
) -> Result<u64, DbError> {
    let mut total = 0;
    for tool in tool_slugs(owner).await? {
        total += until_done(
            || {
                sqlx::query_scalar(r"SELECT tool_access.archive_entries($1, $2, $3)")
                    .bind(&tool)
                    .bind(completed_before)
                    .bind(BATCH)
                    .fetch_one(&owner.0)
            },
            |moved| progress(&tool, moved),
        )
        .await?;
    }
    Ok(total)
}

/// Brings archived entries of `tool` back (of one organization, or all). Returns how many.
pub async fn restore(owner: &OwnerPool, tool: &str, org: Option<Uuid>) -> Result<u64, DbError> {
    until_done(
        || {
            sqlx::query_scalar(r"SELECT tool_access.restore_entries($1, $2, $3)")
                .bind(tool)
                .bind(org)
                .bind(BATCH)
                .fetch_one(&owner.0)
        },
        |_| {},
    )
    .await
}

/// Makes the audit trail's monthly partitions through `months_ahead` months from now that do
/// not exist yet; returns how many it made.
pub async fn ensure_audit_partitions(owner: &OwnerPool, months_ahead: i32) -> Result<u64, DbError> {
    let made: i32 = sqlx::query_scalar(r"SELECT audit.ensure_partitions($1)")
        .bind(months_ahead)
        .fetch_one(&owner.0)
        .await?;
    Ok(made as u64)
}

/// Removes audit events and tool history older than `before` (at least 7 years ago; the
/// database refuses anything more recent). Returns how many rows went.
pub async fn purge_audit(owner: &OwnerPool, before: DateTime<Utc>) -> Result<u64, DbError> {
    // Whole months of the trail first, one per transaction (each holds the trail's lock only
    // for its drop).
    let mut dropped = 0u64;
    loop {
        let events: Option<i64> = sqlx::query_scalar(r"SELECT audit.drop_oldest_month($1)")
            .bind(before)
            .fetch_one(&owner.0)
            .await?;
        match events {
            Some(events) => dropped += events as u64,
            None => break,
        }
    }
    let batched = until_done(
        || {
            sqlx::query_scalar(r"SELECT tool_access.purge_audit($1, $2)")
                .bind(before)
                .bind(BATCH)
                .fetch_one(&owner.0)
        },
        |_| {},
    )
    .await?;
    Ok(dropped + batched)
}

/// Removes what has expired and serves no one: sessions ended more than a day ago (by their
/// absolute or idle expiry), OpenID Connect flows older than ten minutes (never finished),
/// sign-in failures older than the day the limits look back on, and jobs cancelled more than a
/// week ago (jobs that succeeded are gone already; dead ones stay until an operator retries or
/// clears them). Returns how many rows went.
pub async fn purge_expired(owner: &OwnerPool) -> Result<u64, DbError> {
    let purged: i64 = sqlx::query_scalar(
        r"WITH sessions AS (
              DELETE FROM public.sessions
               WHERE least(expires_at, last_seen_at + idle_timeout) < now() - interval '1 day'
              RETURNING 1),
          flows AS (
              DELETE FROM app.oidc_flows WHERE created_at < now() - interval '10 minutes' RETURNING 1),
          failures AS (
              DELETE FROM app.sign_in_failures WHERE occurred_at < now() - interval '1 day' RETURNING 1),
          jobs AS (
              DELETE FROM queue.jobs
               WHERE finished_at < now() - interval '7 days' AND state = 'cancelled'
              RETURNING 1)
          SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM flows)
                 + (SELECT count(*) FROM failures) + (SELECT count(*) FROM jobs)",
    )
    .fetch_one(&owner.0)
    .await?;
    Ok(purged.max(0) as u64)
}
