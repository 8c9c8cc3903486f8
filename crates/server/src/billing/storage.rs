//! The daily storage measurement (schedule `measure-storage`): every organization's rows, in
//! every table that has an `organization_id`, are sized and the total recorded as its
//! `storage` usage for the period. Platform upkeep: it runs as the owner and says so.

use crate::jobs::{JobSpec, Registry};

pub const MEASURE_STORAGE: JobSpec = JobSpec {
    kind: "billing.storage",
    max_attempts: 3,
};

pub fn register(registry: Registry) -> Registry {
    registry.register(MEASURE_STORAGE, |run| async move {
        let owner = run.owner()?;
        let started = std::time::Instant::now();
        let measured: i32 = sqlx::query_scalar(r"SELECT app.measure_storage()")
            .fetch_one(&owner.0)
            .await?;
        tracing::info!(
            organizations = measured,
            took_ms = started.elapsed().as_millis() as u64,
            "billing.storage measured"
        );
        Ok(())
    })
}
