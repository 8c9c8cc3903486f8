//! API keys of service accounts: created by an organization's admins, acting inside that
//! organization only, as a viewer (`read`) or a member (`write`), optionally for some modules.

pub mod routes;
pub mod store;

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::distributions::{Alphanumeric, DistString};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

pub use routes::routes;

use crate::kernel::access::Module;
use crate::kernel::input::{text, Checks, Validate};

/// Every API key starts with this, so the server tells keys from session tokens.
pub const KEY_PREFIX: &str = "tnt_k_";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Reads, as a viewer.
    Read,
    /// Reads and writes data, as a member (never manages members, keys or settings).
    Write,
}

impl Access {
    fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// Identifies the key in lists and logs (the secret is never shown again).
    pub prefix: String,
    /// `read` or `write`.
    pub access: String,
    /// Modules the key may use; absent: all.
    pub modules: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    pub access: Access,
    /// Limit the key to these modules (see `kernel::access::Module`); absent: all.
    pub modules: Option<Vec<String>>,
    /// Absent: the key does not expire (until revoked).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new key: the secret is in this response only.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    /// Send as `Authorization: Bearer <secret>`.
    pub secret: String,
}

impl Validate for NewApiKey {
    fn check(&self, c: &mut Checks) {
        c.field("name", Some(self.name.as_str()), text(1, 200));
        c.field("modules", self.modules.as_deref(), |modules| {
            if !modules.is_empty() && modules.iter().all(|m| Module::parse(m).is_some()) {
                return Ok(());
            }
            let names: Vec<&str> = Module::ALL.iter().map(|m| m.as_str()).collect();
            Err(format!("must be a non-empty list of: {}", names.join(", ")))
        });
        c.field("expires_at", self.expires_at, |at| {
            (at > Utc::now())
                .then_some(())
                .ok_or_else(|| "must be in the future".into())
        });
    }
}

/// A new key's visible prefix and full secret (`tnt_k_<prefix>_<256 random bits>`).
fn new_secret() -> (String, String) {
    let prefix = Alphanumeric
        .sample_string(&mut rand::thread_rng(), 8)
        .to_lowercase();
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = format!(
        "{KEY_PREFIX}{prefix}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    (format!("{KEY_PREFIX}{prefix}"), secret)
}
