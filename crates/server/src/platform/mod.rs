//! Platform administration (migration 0040): the platform's staff (`users.role`: `admin`,
//! `moderator`, `employee`) list organizations with their plan and usage, and users; admins put
//! an organization on a plan by hand (comped accounts) and change platform roles; admins and
//! moderators deactivate and reactivate users. Every act is a narrow definer function that checks
//! the caller's platform role itself; none of them reads an organization's business rows, and the
//! audit trail records each change with the staff member as actor.

pub mod routes;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::kernel::input::{text, Checks, Validate};
use crate::text_enum;

pub use routes::routes;

text_enum! {
    /// A platform role (Strive's `users.role`), apart from any organization role.
    pub enum PlatformRole {
        Admin = "admin", Moderator = "moderator", Employee = "employee", Client = "client",
        User = "user",
    }
}

/// An organization as the platform's staff see it: no business data, its plan and usage.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct PlatformOrganization {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
    /// The plan subscribed to, and the subscription's status (Stripe's words).
    pub plan_code: Option<String>,
    pub subscription_status: Option<String>,
    /// The plan whose entitlements apply now.
    pub plan_in_force: String,
    /// Whether the plan was set by hand (`PUT …/plan`).
    pub comped: Option<bool>,
    pub stripe_customer_id: Option<String>,
    pub seats: i64,
    pub kpis: i64,
    /// This billing period's.
    pub api_calls: i64,
    /// Bytes, as last measured.
    pub storage: i64,
}

/// A user as the platform's staff see them.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct PlatformUser {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    #[sqlx(try_from = "String")]
    pub role: PlatformRole,
    pub is_active: bool,
    /// The highest tier in force among the organizations they own (`free` when none).
    pub subscription_tier: String,
    /// Organizations they are a member of.
    pub organizations: i64,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// A plan set by hand.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanGrant {
    /// A plan of the catalog, listed or not.
    #[schema(min_length = 1, max_length = 40)]
    pub plan: String,
    /// When the plan ends (the organization falls back to the default plan); absent: until
    /// changed again.
    pub until: Option<DateTime<Utc>>,
    /// Why (kept with the subscription and in the audit trail).
    #[schema(min_length = 1, max_length = 500)]
    pub reason: Option<String>,
}

impl Validate for PlanGrant {
    fn check(&self, checks: &mut Checks) {
        checks.field("plan", Some(self.plan.as_str()), text(1, 40));
        checks.field("reason", self.reason.as_deref(), text(1, 500));
        checks.field("until", self.until, |until| {
            if until > Utc::now() {
                Ok(())
            } else {
                Err("must be in the future".into())
            }
        });
    }
}

/// A platform role to give.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: PlatformRole,
}

impl Validate for RoleChange {
    fn check(&self, _: &mut Checks) {}
}
