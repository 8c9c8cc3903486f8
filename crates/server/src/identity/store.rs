//! SQL of the identity domain.

use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use tenantry_db::{RequestContext, RuntimePool, TenantTx};
use uuid::Uuid;

use super::{
    hash_token, new_token, validate_account, Me, MeChanges, NewAccount, Profile, SignedUp, User,
    USER_COLUMNS,
};
use crate::error::{Error, Result};
use crate::orgs::{self, NewOrganization};

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

/// The acting user and their profile.
pub async fn me(tx: &mut TenantTx) -> Result<Me> {
    let user_id = tx.user_id().await?.ok_or(Error::Unauthenticated)?;
    let user: User = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(user_id)
        .fetch_one(tx.conn())
        .await?;
    let profile: Profile = sqlx::query_as(
        "SELECT avatar_url, timezone, language, preferences FROM profiles WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(tx.conn())
    .await?;
    Ok(Me { user, profile })
}

/// Changes the acting user's name and profile together: both tables or neither (Sesari 2.4).
pub async fn update_me(tx: &mut TenantTx, changes: &MeChanges) -> Result<Me> {
    changes.validate()?;
    let user_id = tx.user_id().await?.ok_or(Error::Unauthenticated)?;
    if let Some(name) = &changes.name {
        sqlx::query("UPDATE users SET name = $2 WHERE id = $1")
            .bind(user_id)
            .bind(name.as_deref().map(str::trim))
            .execute(tx.conn())
            .await?;
    }
    sqlx::query(
        "UPDATE profiles SET avatar_url = CASE WHEN $2 THEN $3 ELSE avatar_url END, \
            timezone = coalesce($4, timezone), language = coalesce($5, language), \
            preferences = coalesce($6, preferences) \
         WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(changes.avatar_url.is_some())
    .bind(changes.avatar_url.clone().flatten())
    .bind(changes.timezone.as_deref())
    .bind(changes.language.as_deref())
    .bind(changes.preferences.as_ref())
    .execute(tx.conn())
    .await?;
    me(tx).await
}
