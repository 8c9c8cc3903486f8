//! Schedules: each due schedule's job is enqueued once per slot, whatever the number of workers
//! (`tenantry_db::queue::advance_schedule` is a compare-and-set). Cron expressions are read in
//! the schedule's time zone: the wall-clock time now comes from PostgreSQL, the next matching
//! wall-clock time from the expression, and PostgreSQL turns it back into an instant, so no
//! time-zone database is linked and daylight-saving changes follow PostgreSQL's rules.

use chrono::{NaiveDateTime, TimeZone, Utc};
use sqlx::PgPool;
use tenantry_db::queue;
use tenantry_db::DbError;

use super::Registry;

/// The first wall-clock time after `local_now` that `cron` (five fields) names.
pub fn next_local(cron: &str, local_now: NaiveDateTime) -> Result<NaiveDateTime, String> {
    cron_parser::parse(cron, &Utc.from_utc_datetime(&local_now))
        .map(|next| next.naive_utc())
        .map_err(|e| format!("cron expression {cron:?}: {e:?}"))
}

/// Enqueues the jobs of the schedules whose slot is due and moves each to its next slot.
/// Returns how many jobs this call enqueued.
pub async fn run_due(owner: &PgPool, registry: &Registry) -> Result<usize, DbError> {
    let mut enqueued = 0;
    for due in queue::due_schedules(owner).await? {
        let next = match next_local(&due.cron, due.local_now) {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(schedule = %due.name, error = %e, "schedule skipped");
                continue;
            }
        };
        // A kind this build does not know still gets its job: another worker may run it.
        let max_attempts = registry.get(&due.kind).map_or(10, |k| k.spec.max_attempts);
        if let Some(job) =
            queue::advance_schedule(owner, &due.name, due.next_run_at, next, max_attempts).await?
        {
            tracing::info!(schedule = %due.name, kind = %due.kind, %job, "scheduled job enqueued");
            enqueued += 1;
        }
    }
    Ok(enqueued)
}
