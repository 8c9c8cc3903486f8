//! Identity: users, profiles, sign-up and sessions. (Sign-in flows come with the identity issue;
//! until then sessions are created through [`create_session`].)

pub mod external;
pub mod password;
pub mod routes;
pub mod store;

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

pub use routes::routes;
pub use store::{create_session, sign_up, IssuedSession};

use crate::kernel::error::{Error, FieldError, Result};
use crate::orgs::Organization;

/// A user as other members of their organizations see them.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    /// How the account signs in: `password`, `google`, `oidc` or `clerk`.
    pub provider: String,
    /// Platform role (distinct from organization roles).
    pub role: String,
    pub is_active: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The signed-in user's own profile settings.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Profile {
    pub avatar_url: Option<String>,
    pub timezone: String,
    pub language: String,
    pub preferences: serde_json::Value,
}

pub(crate) const USER_COLUMNS: &str =
    "id, email, name, avatar_url, provider, role, is_active, last_login_at, created_at, updated_at";

/// A new account, as a sign-in method hands it over.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub email: String,
    pub name: Option<String>,
    /// An Argon2id PHC string, for password accounts.
    pub password_hash: Option<String>,
    pub provider: String,
    pub provider_id: Option<String>,
    /// The external provider's user id (Clerk), for accounts it provisions.
    pub clerk_user_id: Option<String>,
    /// Whether an identity provider proved the email address belongs to this person.
    pub email_verified: bool,
    /// Name of the first organization; derived from the user's name or email when absent.
    pub organization_name: Option<String>,
}

/// What sign-up creates: the user and their first organization, which they own.
#[derive(Debug, Clone)]
pub struct SignedUp {
    pub user: User,
    pub organization: Organization,
}

pub(crate) fn validate_account(account: &NewAccount) -> Result<()> {
    let mut errors = Vec::new();
    let email = account.email.trim();
    let valid_email = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !email.chars().any(char::is_whitespace)
        })
        && email.matches('@').count() == 1;
    if !valid_email {
        errors.push(FieldError::new("email", "must be an email address"));
    }
    if account
        .name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 200)
    {
        errors.push(FieldError::new("name", "must be at most 200 characters"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

/// Every session token starts with this; API keys (`tnt_k_`) and invitations (`tnt_i_`) have
/// prefixes of their own, so no random token can be mistaken for another kind.
pub const SESSION_PREFIX: &str = "tnt_s_";

/// A new opaque secret: `prefix` and 256 random bits, URL-safe.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The CSRF token of a session: derived from the session token, so it needs no storage, and
/// unguessable without it. Cookie-authenticated writes must send it as `X-CSRF-Token`.
pub fn csrf_token_for(token: &str) -> String {
    let digest = Sha256::digest(format!("csrf:{token}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// What the database stores of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The signed-in user and their profile.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Me {
    pub user: User,
    pub profile: Profile,
}

/// Changes to the signed-in user: absent fields stay; `null` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeChanges {
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub name: Option<Option<String>>,
    /// The user's own picture (overrides the identity provider's).
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub avatar_url: Option<Option<String>>,
    /// An IANA time zone name, e.g. `Europe/Berlin`.
    pub timezone: Option<String>,
    /// A language tag, e.g. `en` or `pt-BR`.
    pub language: Option<String>,
    /// Replaces the preferences object.
    pub preferences: Option<serde_json::Value>,
}

impl MeChanges {
    pub(crate) fn validate(&self) -> Result<()> {
        let mut errors = Vec::new();
        if self
            .name
            .clone()
            .flatten()
            .is_some_and(|n| n.chars().count() > 200)
        {
            errors.push(FieldError::new("name", "must be at most 200 characters"));
        }
        if let Some(Some(url)) = &self.avatar_url {
            if url.len() > 2048 || !(url.starts_with("https://") || url.starts_with("http://")) {
                errors.push(FieldError::new(
                    "avatar_url",
                    "must be an http(s) URL of at most 2048 characters",
                ));
            }
        }
        if self
            .timezone
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.len() > 64)
        {
            errors.push(FieldError::new("timezone", "must be a time zone name"));
        }
        if self.preferences.as_ref().is_some_and(|p| !p.is_object()) {
            errors.push(FieldError::new("preferences", "must be a JSON object"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(errors))
        }
    }
}

/// One of the signed-in user's sessions.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// The session this request uses.
    pub current: bool,
}

/// Sign-up with email and password.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordSignUp {
    pub email: String,
    /// 8 to 256 characters.
    pub password: String,
    pub name: Option<String>,
    /// Name of the first organization (default: "<name>'s organization").
    pub organization_name: Option<String>,
}

/// Sign-in with email and password.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordSignIn {
    pub email: String,
    pub password: String,
}

/// A password change: the current one proves it is the user.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}
