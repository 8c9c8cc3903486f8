//! Organizations (the tenant), their members with roles, and teams.

pub mod routes;
pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

pub use routes::routes;

use crate::kernel::access::Role;
use crate::kernel::error::{Error, FieldError, Result};

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
    pub name: String,
    /// Chosen from the name when absent.
    pub slug: Option<String>,
    pub description: Option<String>,
    pub industry: Option<String>,
    pub size: Option<String>,
    pub billing_email: Option<String>,
    pub settings: Option<serde_json::Value>,
}

/// Changes to an organization: absent fields stay; `null` clears an optional field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationChanges {
    pub name: Option<String>,
    pub slug: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub industry: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub size: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub billing_email: Option<Option<String>>,
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
    pub name: String,
    pub description: Option<String>,
    /// Must be a member of the organization.
    pub lead_user_id: Option<Uuid>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamChanges {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub lead_user_id: Option<Option<Uuid>>,
}

/// Collects field errors; `finish` turns them into one 422.
#[derive(Default)]
struct Checks(Vec<FieldError>);

impl Checks {
    fn text(&mut self, field: &str, value: Option<&str>, min: usize, max: usize) {
        if let Some(v) = value {
            let len = v.trim().chars().count();
            if len < min || v.chars().count() > max {
                self.0.push(FieldError::new(
                    field,
                    format!("must be {min} to {max} characters"),
                ));
            }
        }
    }

    fn slug(&mut self, value: Option<&str>) {
        if let Some(slug) = value {
            if !is_slug(slug) {
                self.0.push(FieldError::new(
                    "slug",
                    "must be 1 to 63 lowercase letters, digits or dashes, not starting or ending with a dash",
                ));
            }
        }
    }

    fn email(&mut self, field: &str, value: Option<&str>) {
        if let Some(v) = value {
            let ok = v.len() <= 254
                && v.matches('@').count() == 1
                && !v.starts_with('@')
                && !v.ends_with('@')
                && !v.chars().any(char::is_whitespace);
            if !ok {
                self.0
                    .push(FieldError::new(field, "must be an email address"));
            }
        }
    }

    fn object(&mut self, field: &str, value: Option<&serde_json::Value>) {
        if value.is_some_and(|v| !v.is_object()) {
            self.0.push(FieldError::new(field, "must be a JSON object"));
        }
    }

    fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }
}

pub fn is_slug(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
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

impl NewOrganization {
    fn validate(&self) -> Result<()> {
        let mut c = Checks::default();
        c.text("name", Some(&self.name), 1, 200);
        c.slug(self.slug.as_deref());
        c.text("description", self.description.as_deref(), 0, 5000);
        c.text("industry", self.industry.as_deref(), 0, 100);
        c.text("size", self.size.as_deref(), 0, 50);
        c.email("billing_email", self.billing_email.as_deref());
        c.object("settings", self.settings.as_ref());
        c.finish()
    }
}

impl OrganizationChanges {
    fn validate(&self) -> Result<()> {
        let mut c = Checks::default();
        c.text("name", self.name.as_deref(), 1, 200);
        c.slug(self.slug.as_deref());
        c.text(
            "description",
            self.description.clone().flatten().as_deref(),
            0,
            5000,
        );
        c.text(
            "industry",
            self.industry.clone().flatten().as_deref(),
            0,
            100,
        );
        c.text("size", self.size.clone().flatten().as_deref(), 0, 50);
        c.email(
            "billing_email",
            self.billing_email.clone().flatten().as_deref(),
        );
        c.object("settings", self.settings.as_ref());
        c.finish()
    }
}

impl MemberChanges {
    fn validate(&self) -> Result<()> {
        let mut c = Checks::default();
        c.object("permissions", self.permissions.as_ref());
        c.finish()
    }
}

impl NewTeam {
    fn validate(&self) -> Result<()> {
        let mut c = Checks::default();
        c.text("name", Some(&self.name), 1, 200);
        c.text("description", self.description.as_deref(), 0, 5000);
        c.finish()
    }
}

impl TeamChanges {
    fn validate(&self) -> Result<()> {
        let mut c = Checks::default();
        c.text("name", self.name.as_deref(), 1, 200);
        c.text(
            "description",
            self.description.clone().flatten().as_deref(),
            0,
            5000,
        );
        c.finish()
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
        assert!(is_slug(&slugify(&"x".repeat(300))));
        assert!(is_slug("a-b-1"));
        for bad in ["", "-a", "a-", "A", "a b", "a_b", &"a".repeat(64)] {
            assert!(!is_slug(bad), "{bad:?}");
        }
    }
}
