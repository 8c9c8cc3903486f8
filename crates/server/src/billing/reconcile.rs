//! The daily reconcile (schedule `stripe-reconcile`): every subscription Stripe bills is fetched
//! from Stripe's API and set from it, so a webhook that never arrived leaves an organization on
//! the wrong plan for a day at most. Platform upkeep: it runs as the owner and says so.

use super::stripe::StripeClient;
use crate::jobs::{JobError, JobSpec, Registry};

pub const RECONCILE: JobSpec = JobSpec {
    kind: "billing.reconcile",
    max_attempts: 5,
};

/// Registers the reconcile; without Stripe configured it has nothing to compare and says so.
pub fn register(registry: Registry, stripe: Option<StripeClient>) -> Registry {
    registry.register(RECONCILE, move |run| {
        let stripe = stripe.clone();
        async move {
            let owner = run.owner()?;
            let Some(stripe) = stripe else {
                tracing::info!("billing.reconcile: Stripe is not configured; nothing to compare");
                return Ok(());
            };
            let billed: Vec<(uuid::Uuid, String)> = sqlx::query_as(
                r"SELECT organization_id, stripe_subscription_id FROM subscriptions
                   WHERE stripe_subscription_id IS NOT NULL ORDER BY organization_id",
            )
            .fetch_all(&owner.0)
            .await?;
            let (mut repaired, mut failed) = (0, 0);
            for (org, id) in &billed {
                // One subscription Stripe cannot answer for does not stop the others.
                let subscription = match stripe.subscription(id).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(%org, subscription = %id, error = %e, "billing.reconcile");
                        failed += 1;
                        continue;
                    }
                };
                let changed: bool =
                    sqlx::query_scalar(r"SELECT app.sync_stripe_subscription($1, $2)")
                        .bind(org)
                        .bind(subscription)
                        .fetch_one(&owner.0)
                        .await?;
                if changed {
                    tracing::warn!(%org, subscription = %id, "billing.reconcile repaired a subscription a webhook had not");
                    repaired += 1;
                }
            }
            tracing::info!(checked = billed.len(), repaired, failed, "billing.reconcile");
            if failed > 0 {
                return Err(JobError::Retry(format!(
                    "{failed} of {} subscriptions could not be fetched from Stripe",
                    billed.len()
                )));
            }
            Ok(())
        }
    })
}
