//! Organizations (the tenant), their members with roles, and teams.

pub mod export;
pub mod routes;
pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

pub use routes::routes;

use crate::kernel::access::Role;
use crate::kernel::input::{email, json_object, set, slug, text, Checks, Validate};

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    /// Unique, URL-safe: lowercase letters, digits and dashes.
    pub slug: String,
    pub description: Option<String>,
    pub industry: Option<String>,
    pub size: Option<String>,
    /// Organization-specific configuration (a JSON object).
    pub settings: serde_json::Value,
    /// `active`, `inactive` or `trial`.
    pub subscription_status: String,
    pub billing_email: Option<String>,
    /// The caller's role in this organization.
    #[sqlx(try_from = "String")]
    pub my_role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Input to create an organization.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    /// Chosen from the name when absent.
    #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub slug: Option<String>,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    #[schema(max_length = 100)]
    pub industry: Option<String>,
    #[schema(max_length = 50)]
    pub size: Option<String>,
    #[schema(
        max_length = 254,
        pattern = r"^[\s\u0085]*[^@\s\u0085]+@[^@\s\u0085]+[\s\u0085]*$"
    )]
    pub billing_email: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

/// Changes to an organization: absent fields stay; `null` clears an optional field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationChanges {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub slug: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 5000)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 100)]
    pub industry: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 50)]
    pub size: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(
        max_length = 254,
        pattern = r"^[\s\u0085]*[^@\s\u0085]+@[^@\s\u0085]+[\s\u0085]*$"
    )]
    pub billing_email: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Grants finer than the role (a JSON object).
    pub permissions: serde_json::Value,
    pub joined_at: DateTime<Utc>,
    /// Membership id (the pagination cursor).
    pub id: Uuid,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberChanges {
    pub role: Option<Role>,
    #[schema(value_type = Option<Object>)]
    pub permissions: Option<serde_json::Value>,
}

/// Whom to hand ownership to.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnershipTransfer {
    /// A member of the organization; they become an owner and the caller an admin.
    pub user_id: Uuid,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub lead_user_id: Option<Uuid>,
    /// User ids of the team's members.
    pub member_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    /// Must be a member of the organization.
    pub lead_user_id: Option<Uuid>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamChanges {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 5000)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub lead_user_id: Option<Option<Uuid>>,
}

/// A slug from a name: "Acme, Inc." -> "acme-inc".
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_matches('-').to_string();
    if slug.is_empty() {
        "org".into()
    } else {
        slug
    }
}

impl Validate for NewOrganization {
    fn check(&self, c: &mut Checks) {
        c.field("name", Some(self.name.as_str()), text(1, 200));
        c.field("slug", self.slug.as_deref(), slug);
        c.field("description", self.description.as_deref(), text(0, 5000));
        c.field("industry", self.industry.as_deref(), text(0, 100));
        c.field("size", self.size.as_deref(), text(0, 50));
        c.field("billing_email", self.billing_email.as_deref(), email);
        c.field("settings", self.settings.as_ref(), json_object);
    }
}

impl Validate for OrganizationChanges {
    fn check(&self, c: &mut Checks) {
        c.field("name", self.name.as_deref(), text(1, 200));
        c.field("slug", self.slug.as_deref(), slug);
        c.field("description", set(&self.description), text(0, 5000));
        c.field("industry", set(&self.industry), text(0, 100));
        c.field("size", set(&self.size), text(0, 50));
        c.field("billing_email", set(&self.billing_email), email);
        c.field("settings", self.settings.as_ref(), json_object);
    }
}

impl Validate for MemberChanges {
    fn check(&self, c: &mut Checks) {
        c.field("permissions", self.permissions.as_ref(), json_object);
    }
}

impl Validate for NewTeam {
    fn check(&self, c: &mut Checks) {
        c.field("name", Some(self.name.as_str()), text(1, 200));
        c.field("description", self.description.as_deref(), text(0, 5000));
    }
}

impl Validate for TeamChanges {
    fn check(&self, c: &mut Checks) {
        c.field("name", self.name.as_deref(), text(1, 200));
        c.field("description", set(&self.description), text(0, 5000));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Acme, Inc."), "acme-inc");
        assert_eq!(slugify("  --  "), "org");
        assert_eq!(slugify("Ünïcode Čafé"), "n-code-af");
        assert!(slug(&slugify(&"x".repeat(300))).is_ok());
    }
}
