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

use crate::kernel::input::{email, http_url, json_object, set, text, Checks, Validate};
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

impl Validate for NewAccount {
    fn check(&self, c: &mut Checks) {
        c.field("email", Some(self.email.as_str()), email);
        c.field("name", self.name.as_deref(), text(0, 200));
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
    #[schema(max_length = 200)]
    pub name: Option<Option<String>>,
    /// The user's own picture (overrides the identity provider's).
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub avatar_url: Option<Option<String>>,
    /// An IANA time zone name, e.g. `Europe/Berlin`.
    #[schema(min_length = 1, max_length = 64)]
    pub timezone: Option<String>,
    /// A language tag, e.g. `en` or `pt-BR`.
    #[schema(pattern = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
    pub language: Option<String>,
    /// Replaces the preferences object.
    #[schema(value_type = Option<Object>)]
    pub preferences: Option<serde_json::Value>,
}

impl Validate for MeChanges {
    fn check(&self, c: &mut Checks) {
        c.field("name", set(&self.name), text(0, 200));
        c.field("avatar_url", set(&self.avatar_url), http_url);
        c.field("timezone", self.timezone.as_deref(), |zone| {
            // Whether PostgreSQL knows the zone its constraint says; this keeps junk out first.
            (!zone.is_empty() && zone.len() <= 64)
                .then_some(())
                .ok_or_else(|| "must be a time zone name".into())
        });
        c.field("preferences", self.preferences.as_ref(), json_object);
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
    #[schema(
        max_length = 254,
        pattern = r"^[\s\u0085]*[^@\s\u0085]+@[^@\s\u0085]+[\s\u0085]*$"
    )]
    pub email: String,
    /// 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// Name of the first organization (default: "<name>'s organization").
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
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
    #[schema(min_length = 8, max_length = 256)]
    pub new_password: String,
}

impl Validate for PasswordSignUp {
    fn check(&self, c: &mut Checks) {
        c.field("email", Some(self.email.as_str()), email);
        c.field(
            "password",
            Some(self.password.as_str()),
            password::new_password,
        );
        c.field("name", self.name.as_deref(), text(0, 200));
        c.field(
            "organization_name",
            self.organization_name.as_deref(),
            text(1, 200),
        );
    }
}

impl Validate for PasswordChange {
    fn check(&self, c: &mut Checks) {
        c.field(
            "new_password",
            Some(self.new_password.as_str()),
            password::new_password,
        );
    }
}
