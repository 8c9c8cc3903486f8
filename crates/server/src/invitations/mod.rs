//! Invitations: an admin invites an email address with a role; the invitee accepts with a
//! single-use, expiring token. The email that would carry the link goes to the outbox, and the
//! link is returned to the inviter.

pub mod routes;
pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

pub use routes::routes;

use crate::kernel::access::Role;
use crate::kernel::input::{email, Checks, Validate};
use crate::orgs::Organization;

/// Every invitation token starts with this.
pub const TOKEN_PREFIX: &str = "tnt_i_";
/// How long an invitation stays valid.
pub const VALID_FOR: chrono::Duration = chrono::Duration::days(7);

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub invited_by: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_by: Option<Uuid>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    #[schema(
        max_length = 254,
        pattern = r"^[\s\u0085]*[^@\s\u0085]+@[^@\s\u0085]+[\s\u0085]*$"
    )]
    pub email: String,
    pub role: Role,
}

/// An invitation with its link (the token is shown to the inviter, and sent to the invitee).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedInvitation {
    pub invitation: Invitation,
    pub token: String,
    pub accept_url: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    pub token: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    pub organization: Organization,
}

impl Validate for NewInvitation {
    fn check(&self, c: &mut Checks) {
        c.field("email", Some(self.email.as_str()), email);
    }
}
