//! Identity: users, profiles, sign-up and sessions. (Sign-in flows come with the identity issue;
//! until then sessions are created through [`create_session`].)

pub mod routes;

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::FromRow;
use tenantry_db::{RequestContext, RuntimePool, TenantTx};
use utoipa::ToSchema;
use uuid::Uuid;

pub use routes::routes;

use crate::error::{Error, FieldError, Result};
use crate::orgs::{self, NewOrganization, Organization};

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
    /// Name of the first organization; derived from the user's name or email when absent.
    pub organization_name: Option<String>,
}

/// What sign-up creates: the user and their first organization, which they own.
#[derive(Debug, Clone)]
pub struct SignedUp {
    pub user: User,
    pub organization: Organization,
}

fn validate_account(account: &NewAccount) -> Result<()> {
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

/// Creates a user, their profile, their first organization and their owner membership, in one
/// transaction (Sesari 1.1, 2.1-2.2): either all exist afterwards or none does.
pub async fn sign_up(pool: &RuntimePool, account: NewAccount) -> Result<SignedUp> {
    validate_account(&account)?;
    let user_id = Uuid::now_v7();
    let mut tx = TenantTx::begin(pool, &RequestContext::user(user_id)).await?;
    let user: User = sqlx::query_as(&format!(
        "INSERT INTO users (id, email, name, password_hash, provider, provider_id) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLUMNS}"
    ))
    .bind(user_id)
    .bind(account.email.trim())
    .bind(account.name.as_deref().map(str::trim))
    .bind(account.password_hash.as_deref())
    .bind(&account.provider)
    .bind(account.provider_id.as_deref())
    .fetch_one(tx.conn())
    .await?;
    sqlx::query("INSERT INTO profiles (user_id) VALUES ($1)")
        .bind(user_id)
        .execute(tx.conn())
        .await?;
    let org_name = account.organization_name.clone().unwrap_or_else(|| {
        let who = user
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| user.email.split('@').next().unwrap_or("My").to_string());
        format!("{who}'s organization")
    });
    let organization = orgs::store::create(
        &mut tx,
        &NewOrganization {
            name: org_name,
            ..NewOrganization::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(SignedUp { user, organization })
}

/// A new opaque session token: 256 random bits, URL-safe, with a recognizable prefix.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "tnt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What the database stores of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Opens a session for `user_id` and returns its bearer token (shown once, stored as a hash).
pub async fn create_session(
    pool: &RuntimePool,
    user_id: Uuid,
    ttl: Duration,
    ip: Option<IpAddr>,
    user_agent: Option<&str>,
) -> Result<String> {
    let token = new_token();
    let ttl = chrono::Duration::from_std(ttl)
        .map_err(|_| Error::BadRequest("session lifetime out of range".into()))?;
    let mut tx = TenantTx::begin(pool, &RequestContext::user(user_id)).await?;
    sqlx::query(
        "INSERT INTO sessions (user_id, token_hash, expires_at, ip_address, user_agent) \
         VALUES ($1, $2, $3, $4::inet, $5)",
    )
    .bind(user_id)
    .bind(hash_token(&token).as_slice())
    .bind(Utc::now() + ttl)
    .bind(ip.map(|ip| ip.to_string()))
    .bind(user_agent)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(token)
}
