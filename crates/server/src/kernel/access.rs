//! Who may do what in an organization: the roles, and the check a store makes before it writes.
//! Policies decide what a role may see and change; this check only chooses the answer the caller
//! gets — 404 for an organization they are not in (its existence is not revealed), 403 for a
//! role too weak.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{Error, Result};
use super::org_tx::OrgTx;

/// A member's role in an organization, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, writes nothing.
    Viewer,
    /// Reads and writes the organization's data.
    Member,
    /// Also manages members (except owners), teams and settings.
    Admin,
    /// Also manages owners and deletes the organization.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "viewer" => Ok(Role::Viewer),
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

/// The caller's role in `org`, if they are a member (and the request may see it).
pub async fn my_role(tx: &mut OrgTx) -> Result<Option<Role>> {
    let org = tx.org();
    let role: Option<String> = sqlx::query_scalar(r"SELECT app.my_role($1)")
        .bind(org)
        .fetch_one(tx.conn())
        .await?;
    role.map(Role::try_from)
        .transpose()
        .map_err(|e| Error::Database(sqlx::Error::Decode(e.into())))
}

/// The caller's role if it is at least `min`: not a member is 404 (the organization's existence
/// is not revealed), a weaker role is 403.
pub async fn require_role(tx: &mut OrgTx, min: Role) -> Result<Role> {
    match my_role(tx).await? {
        None => Err(Error::NotFound),
        Some(role) if role < min => Err(Error::Forbidden(match min {
            Role::Owner => "only an owner may do this",
            Role::Admin => "only an admin or owner may do this",
            _ => "viewers cannot change anything",
        })),
        Some(role) => Ok(role),
    }
}

/// The parts of the API an API key can be limited to; each organization route belongs to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Module {
    Orgs,
    Kpis,
    Fasttrack,
    Crm,
    Ai,
    Billing,
    Integrations,
    Content,
}

impl Module {
    pub const ALL: [Module; 8] = [
        Module::Orgs,
        Module::Kpis,
        Module::Fasttrack,
        Module::Crm,
        Module::Ai,
        Module::Billing,
        Module::Integrations,
        Module::Content,
    ];

    /// The name API keys list (and the database compares).
    pub fn as_str(self) -> &'static str {
        match self {
            Module::Orgs => "orgs",
            Module::Kpis => "kpis",
            Module::Fasttrack => "fasttrack",
            Module::Crm => "crm",
            Module::Ai => "ai",
            Module::Billing => "billing",
            Module::Integrations => "integrations",
            Module::Content => "content",
        }
    }

    pub fn parse(name: &str) -> Option<Module> {
        Module::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_weakest_first() {
        assert!(
            Role::Viewer < Role::Member && Role::Member < Role::Admin && Role::Admin < Role::Owner
        );
        for r in [Role::Viewer, Role::Member, Role::Admin, Role::Owner] {
            assert_eq!(Role::try_from(r.as_str().to_string()), Ok(r));
        }
        assert!(Role::try_from("root".to_string()).is_err());
    }

    #[test]
    fn module_names_round_trip() {
        for m in Module::ALL {
            assert_eq!(Module::parse(m.as_str()), Some(m));
        }
        assert_eq!(Module::parse("nope"), None);
    }
}
