//! Billing: the plan catalog, each organization's one subscription, and its usage against the
//! limits of the plan in force (migration 0034). Limits are enforced in one place, the database:
//! a write that would pass one fails with SQLSTATE TP402, answered 402 `plan_limit` naming the
//! entitlement, the limit and the usage. A subscription not in good standing leaves the
//! organization on the default plan's entitlements — nothing is deleted or hidden.

pub mod checkout;
pub mod meter;
pub mod reconcile;
pub mod routes;
pub mod storage;
pub mod stripe;
pub mod webhooks;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

pub use routes::routes;

use crate::text_enum;

text_enum! {
    /// A plan's tier (Strive's `subscription_tier`).
    pub enum Tier {
        Free = "free", Basic = "basic", Pro = "pro", Enterprise = "enterprise",
    }
}

/// A plan of the catalog.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Plan {
    pub code: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub tier: Tier,
    /// Features this plan turns on (`ai`, `integrations`, …).
    pub features: Vec<String>,
    /// Limits by entitlement (`seats`, `kpis`, `integrations`, `ai_tokens` and `api_calls` per
    /// month, `storage` in bytes); an absent one is unlimited.
    #[schema(value_type = Object)]
    pub limits: serde_json::Value,
    /// Prices by billing cycle (`month`, `year`): `amount` in the currency's smallest unit.
    #[schema(value_type = Object)]
    pub prices: serde_json::Value,
    pub trial_days: i32,
    /// The plan every organization starts on, and falls back to when its subscription lapses.
    pub is_default: bool,
}

/// An organization's subscription and the plan in force.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Subscription {
    /// The plan subscribed to.
    pub plan_code: String,
    /// `trialing`, `active`, `past_due`, `canceled`, `unpaid`, `incomplete`,
    /// `incomplete_expired` or `paused` (Stripe's).
    pub status: String,
    pub billing_cycle: Option<String>,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    /// Whether the subscription is in good standing: active, trialing until the trial ends, or
    /// past due for up to 7 days after the period ended.
    pub in_good_standing: bool,
    /// The plan whose entitlements apply now: the subscribed one in good standing, else the
    /// default plan.
    #[sqlx(flatten)]
    pub plan_in_force: PlanInForce,
}

/// The plan whose entitlements apply.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct PlanInForce {
    #[sqlx(rename = "in_force_code")]
    pub code: String,
    #[sqlx(rename = "in_force_tier", try_from = "String")]
    pub tier: Tier,
    #[sqlx(rename = "in_force_features")]
    pub features: Vec<String>,
    #[sqlx(rename = "in_force_limits")]
    #[schema(value_type = Object)]
    pub limits: serde_json::Value,
}

/// Use of one entitlement against the plan in force.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Usage {
    pub entitlement: String,
    pub used: i64,
    /// Absent: unlimited.
    pub limit: Option<i64>,
    /// `used` as a percentage of `limit` (absent when unlimited).
    pub percent: Option<f64>,
    /// The billing period a metered entitlement (`api_calls`, `ai_tokens`) is counted in: the
    /// subscription's current period, else the calendar month (UTC). Absent for counts.
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    /// When `storage` was last measured (a daily job); absent before the first measurement.
    pub measured_at: Option<DateTime<Utc>>,
}

/// An invoice of the organization's subscription (the transaction history), as Stripe last
/// reported it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Invoice {
    pub id: uuid::Uuid,
    pub stripe_invoice_id: String,
    pub number: Option<String>,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: String,
    /// ISO 4217, lowercase.
    pub currency: String,
    /// In the currency's smallest unit.
    pub amount_due: i64,
    pub amount_paid: i64,
    /// Stripe's page of the invoice.
    pub hosted_invoice_url: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub issued_at: DateTime<Utc>,
}
