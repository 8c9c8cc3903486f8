//! Platform upkeep: the jobs that belong to no organization and run as the owner.

use chrono::{Duration, Utc};
use serde_json::Value;
use tenantry_db::maintenance;

use super::{JobError, JobSpec, Registry};

/// Waits `seconds` (at most 300): a harmless job for drills, tests and checking workers run.
pub const SLEEP: JobSpec = JobSpec {
    kind: "system.sleep",
    max_attempts: 3,
};
/// Refreshes the Fast Track reports (`tenantry tools refresh-reports`).
pub const REFRESH_REPORTS: JobSpec = JobSpec {
    kind: "upkeep.refresh_reports",
    max_attempts: 5,
};
/// Moves Fast Track entries completed more than `older_than_days` (default 730) ago to the archive.
pub const ARCHIVE: JobSpec = JobSpec {
    kind: "upkeep.archive",
    max_attempts: 5,
};
/// Removes audit events and tool history older than `older_than_days` (at least, and by
/// default, 7 years and 2 days: the retention seed 003 promises).
pub const PURGE_AUDIT: JobSpec = JobSpec {
    kind: "upkeep.purge_audit",
    max_attempts: 5,
};

/// Makes the audit trail's months a year ahead (`months_ahead`, default 12).
pub const AUDIT_PARTITIONS: JobSpec = JobSpec {
    kind: "upkeep.audit_partitions",
    max_attempts: 5,
};

/// Removes expired sessions, unfinished OpenID Connect flows and old sign-in failures.
pub const PURGE_EXPIRED: JobSpec = JobSpec {
    kind: "upkeep.purge_expired",
    max_attempts: 5,
};

const SEVEN_YEARS_DAYS: i64 = 7 * 365 + 2;

/// A whole number of days from the payload (at most 100 years), or the default; a wrong value
/// fails the job for good.
fn days(payload: &Value, default: i64) -> Result<i64, JobError> {
    match payload.get("older_than_days") {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_i64()
            .filter(|d| (0..=36_600).contains(d))
            .ok_or_else(|| {
                JobError::Fatal(format!(
                    "older_than_days must be a whole number of days up to 36600, not {v}"
                ))
            }),
    }
}

pub fn register(registry: Registry) -> Registry {
    registry
        .register(SLEEP, |run| async move {
            // Platform only: an organization's sleeping jobs could hold every worker's slots.
            run.owner()?;
            let seconds = run.job.payload["seconds"].as_u64().unwrap_or(1).min(300);
            tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
            Ok(())
        })
        .register(PURGE_EXPIRED, |run| async move {
            let purged = maintenance::purge_expired(run.owner()?).await?;
            tracing::info!(
                purged,
                "purged expired sessions, sign-in flows and failures"
            );
            Ok(())
        })
        .register(REFRESH_REPORTS, |run| async move {
            maintenance::refresh_reports(run.owner()?).await?;
            Ok(())
        })
        .register(ARCHIVE, |run| async move {
            let before = Utc::now() - Duration::days(days(&run.job.payload, 730)?);
            let moved = maintenance::archive(run.owner()?, before, |tool, moved| {
                tracing::info!(tool, moved, "archiving");
            })
            .await?;
            tracing::info!(moved, "archived Fast Track entries");
            Ok(())
        })
        .register(AUDIT_PARTITIONS, |run| async move {
            let ahead = match run.job.payload.get("months_ahead") {
                None | Some(Value::Null) => 12,
                Some(v) => v
                    .as_i64()
                    .filter(|m| (1..=120).contains(m))
                    .ok_or_else(|| {
                        JobError::Fatal(format!("months_ahead must be 1 to 120, not {v}"))
                    })?,
            };
            let made = maintenance::ensure_audit_partitions(run.owner()?, ahead as i32).await?;
            tracing::info!(made, months_ahead = ahead, "audit partitions made");
            Ok(())
        })
        .register(PURGE_AUDIT, |run| async move {
            let days = days(&run.job.payload, SEVEN_YEARS_DAYS)?;
            if days < SEVEN_YEARS_DAYS {
                return Err(JobError::Fatal(format!(
                    "audit history is kept at least {SEVEN_YEARS_DAYS} days, not {days}"
                )));
            }
            let purged =
                maintenance::purge_audit(run.owner()?, Utc::now() - Duration::days(days)).await?;
            tracing::info!(purged, "purged audit history");
            Ok(())
        })
}
