//! SQL of the identity domain.

use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use tenantry_db::{RequestContext, RuntimePool, TenantTx};
use uuid::Uuid;

use super::external::ExternalIdentity;
use super::{
    csrf_token_for, hash_token, new_token, password, Me, MeChanges, NewAccount, PasswordChange,
    PasswordSignIn, PasswordSignUp, Profile, SessionInfo, SignedUp, User, USER_COLUMNS,
};
use crate::kernel::error::{Error, Found, OnConstraint, Result};
use crate::kernel::input::{email_as_stored, Valid};
use crate::orgs::{self, NewOrganization};

/// Creates a user, their profile, their first organization and their owner membership, in one
/// transaction (Sesari 1.1, 2.1-2.2): either all exist afterwards or none does.
pub async fn sign_up(pool: &RuntimePool, account: NewAccount) -> Result<SignedUp> {
    let account = Valid::new(account)?;
    let user_id = Uuid::now_v7();
    let mut tx = TenantTx::begin(pool, &RequestContext::user(user_id)).await?;
    let user: User = sqlx::query_as(&format!(
        r"INSERT INTO users (id, email, name, password_hash, provider, provider_id, clerk_user_id, email_verified_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8 THEN now() END) RETURNING {USER_COLUMNS}"
    ))
    .bind(user_id)
    .bind(email_as_stored(&account.email))
    .bind(account.name.as_deref().map(str::trim))
    .bind(account.password_hash.as_deref())
    .bind(&account.provider)
    .bind(account.provider_id.as_deref())
    .bind(account.clerk_user_id.as_deref())
    .bind(account.email_verified)
    .fetch_one(tx.conn())
    .await
    .on_conflict("users_email_key", "email_taken", "an account with this email exists")?;
    sqlx::query(r"INSERT INTO profiles (user_id) VALUES ($1)")
        .bind(user_id)
        .execute(tx.conn())
        .await?;
    let org_name = account.organization_name.clone().unwrap_or_else(|| {
        let who = user
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| user.email.split('@').next().unwrap_or("My").to_string());
        // A 200-character name must still make a valid (at most 200 characters) org name.
        let who: String = who.chars().take(180).collect();
        format!("{who}'s organization")
    });
    let organization = orgs::store::create(
        &mut tx,
        &Valid::new(NewOrganization {
            name: org_name,
            ..NewOrganization::default()
        })?,
    )
    .await?;
    tx.commit().await?;
    Ok(SignedUp { user, organization })
}

/// A new session: its bearer token (shown once, stored as a hash) and its CSRF token.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct IssuedSession {
    pub id: Uuid,
    /// Send as `Authorization: Bearer <token>`; also set as the `tenantry_session` cookie.
    pub token: String,
    /// Send as `X-CSRF-Token` on writes authenticated by the cookie.
    pub csrf_token: String,
    pub expires_at: chrono::DateTime<Utc>,
}

/// Opens a session for `user_id`.
pub async fn create_session(
    pool: &RuntimePool,
    user_id: Uuid,
    ttl: Duration,
    ip: Option<IpAddr>,
    user_agent: Option<&str>,
) -> Result<IssuedSession> {
    let token = new_token(super::SESSION_PREFIX);
    let ttl = chrono::Duration::from_std(ttl)
        .map_err(|_| Error::BadRequest("session lifetime out of range".into()))?;
    let id = Uuid::now_v7();
    let expires_at = Utc::now() + ttl;
    let mut tx = TenantTx::begin(pool, &RequestContext::user(user_id)).await?;
    sqlx::query(
        r"INSERT INTO sessions (id, user_id, token_hash, expires_at, ip_address, user_agent)
         VALUES ($1, $2, $3, $4, $5::inet, $6)",
    )
    .bind(id)
    .bind(user_id)
    .bind(hash_token(&token).as_slice())
    .bind(expires_at)
    .bind(ip.map(|ip| ip.to_string()))
    .bind(user_agent)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    let csrf_token = csrf_token_for(&token);
    Ok(IssuedSession {
        id,
        token,
        csrf_token,
        expires_at,
    })
}

/// Creates a password account (with its first organization, as every sign-up).
/// Creates a password account. Sign-up must say when an address is taken, so probing addresses
/// through it counts against the same per-IP limit as failed sign-ins.
pub async fn sign_up_with_password(
    pool: &RuntimePool,
    input: &Valid<PasswordSignUp>,
    ip: Option<IpAddr>,
) -> Result<SignedUp> {
    let account = NewAccount {
        email: input.email.clone(),
        name: input.name.clone(),
        password_hash: None,
        provider: "password".into(),
        provider_id: None,
        clerk_user_id: None,
        email_verified: false,
        organization_name: input.organization_name.clone(),
    };
    let ticket = password::Ticket::take()?;
    let ip_text = ip.map(|ip| ip.to_string());
    let mut tx = TenantTx::begin(pool, &RequestContext::service()).await?;
    // Only the IP counts here: a stranger's probing must not lock an address's owner out.
    let wait: i32 = sqlx::query_scalar(r"SELECT app.sign_in_wait(NULL, $1::inet)")
        .bind(ip_text.as_deref())
        .fetch_one(tx.conn())
        .await?;
    tx.commit().await?;
    if wait > 0 {
        return Err(Error::RateLimited {
            retry_after: wait as u64,
        });
    }
    let hash = ticket.hash(input.password.clone()).await?;
    let result = sign_up(
        pool,
        NewAccount {
            password_hash: Some(hash),
            ..account
        },
    )
    .await;
    if matches!(
        &result,
        Err(Error::Conflict {
            code: "email_taken",
            ..
        })
    ) {
        let mut tx = TenantTx::begin(pool, &RequestContext::service()).await?;
        sqlx::query(r"SELECT app.record_sign_in_failure('', $1::inet)")
            .bind(ip_text.as_deref())
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
    }
    result
}

/// Checks an email and password; the user id on success. Unknown email and wrong password are the
/// same answer, in the same time. Too many failures for the email or the IP: 429. The attempt
/// counts against both limits before the password is hashed; a success clears the email's count.
pub async fn sign_in(
    pool: &RuntimePool,
    input: &PasswordSignIn,
    ip: Option<IpAddr>,
) -> Result<Uuid> {
    let ticket = password::Ticket::take()?;
    let email = email_as_stored(&input.email);
    let ctx = RequestContext {
        ip,
        ..RequestContext::service()
    };
    let mut tx = TenantTx::begin(pool, &ctx).await?;
    let wait: i32 = sqlx::query_scalar(r"SELECT app.begin_sign_in_attempt($1, $2::inet)")
        .bind(email)
        .bind(ip.map(|ip| ip.to_string()))
        .fetch_one(tx.conn())
        .await?;
    if wait > 0 {
        return Err(Error::RateLimited {
            retry_after: wait as u64,
        });
    }
    let credentials: Option<(Uuid, String)> = sqlx::query_as(
        r"SELECT user_id, password_hash FROM app.password_credentials($1) WHERE user_id IS NOT NULL",
    )
    .bind(email)
    .fetch_optional(tx.conn())
    .await?;
    tx.commit().await?;

    let (user_id, stored) = match credentials {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    let verified = ticket.verify(input.password.clone(), stored).await?;
    let Some(user_id) = user_id.filter(|_| verified) else {
        return Err(Error::InvalidCredentials);
    };
    let mut tx = TenantTx::begin(pool, &ctx).await?;
    sqlx::query(r"SELECT app.clear_sign_in_failures($1)")
        .bind(email)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    let ctx = RequestContext {
        actor: tenantry_db::Actor::User(user_id),
        ..ctx
    };
    let mut tx = TenantTx::begin(pool, &ctx).await?;
    sqlx::query(r"UPDATE users SET last_login_at = now() WHERE id = $1")
        .bind(user_id)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(user_id)
}

/// The acting user's sessions, newest first.
pub async fn list_sessions(tx: &mut TenantTx) -> Result<Vec<SessionInfo>> {
    Ok(sqlx::query_as(
        r"SELECT id, created_at, last_seen_at, expires_at, host(ip_address) AS ip_address, user_agent,
                (id = (SELECT app.session_id())) IS TRUE AS current
           FROM sessions WHERE expires_at > now() AND last_seen_at + idle_timeout > now()
          ORDER BY created_at DESC",
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Ends one of the acting user's sessions (404 for anyone else's).
pub async fn end_session(tx: &mut TenantTx, id: Uuid) -> Result<()> {
    let done = sqlx::query(r"DELETE FROM sessions WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    done.found()?;
    Ok(())
}

/// Ends the acting user's sessions: all of them, or all but the current one.
pub async fn end_sessions(tx: &mut TenantTx, keep_current: bool) -> Result<u64> {
    let done = sqlx::query(
        r"DELETE FROM sessions WHERE NOT ($1 AND (id = (SELECT app.session_id())) IS TRUE)",
    )
    .bind(keep_current)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

/// Changes the acting user's password after checking the current one; ends their other sessions.
pub async fn change_password(tx: &mut TenantTx, change: &Valid<PasswordChange>) -> Result<()> {
    let ticket = password::Ticket::take()?;
    let stored: Option<String> = sqlx::query_scalar(r"SELECT app.my_password_hash()")
        .fetch_one(tx.conn())
        .await?;
    if !ticket
        .verify(change.current_password.clone(), stored)
        .await?
    {
        return Err(Error::invalid(
            "current_password",
            "is not the current password",
        ));
    }
    let hash = ticket.hash(change.new_password.clone()).await?;
    let user_id = tx.user_id().await?.ok_or(Error::Unauthenticated)?;
    sqlx::query(r"UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user_id)
        .bind(hash)
        .execute(tx.conn())
        .await?;
    end_sessions(tx, true).await?;
    Ok(())
}

/// The acting user and their profile.
pub async fn me(tx: &mut TenantTx) -> Result<Me> {
    let user_id = tx.user_id().await?.ok_or(Error::Unauthenticated)?;
    let user: User = sqlx::query_as(&format!(r"SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(user_id)
        .fetch_one(tx.conn())
        .await?;
    let profile: Profile = sqlx::query_as(
        r"SELECT avatar_url, timezone, language, preferences FROM profiles WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(tx.conn())
    .await?;
    Ok(Me { user, profile })
}

/// Changes the acting user's name and profile together: both tables or neither (Sesari 2.4).
pub async fn update_me(tx: &mut TenantTx, changes: &Valid<MeChanges>) -> Result<Me> {
    let user_id = tx.user_id().await?.ok_or(Error::Unauthenticated)?;
    if let Some(name) = &changes.name {
        sqlx::query(r"UPDATE users SET name = $2 WHERE id = $1")
            .bind(user_id)
            .bind(name.as_deref().map(str::trim))
            .execute(tx.conn())
            .await?;
    }
    sqlx::query(
        r"UPDATE profiles SET avatar_url = CASE WHEN $2 THEN $3 ELSE avatar_url END,
            timezone = coalesce($4, timezone), language = coalesce($5, language),
            preferences = coalesce($6, preferences)
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

/// Deletes the acting user's account: refused while they are the only owner of an organization
/// that has other members; organizations where they are alone go with them.
pub async fn delete_me(tx: &mut TenantTx) -> Result<()> {
    let user_id = tx.user_id().await?.ok_or(Error::Unauthenticated)?;
    let sole: Vec<(Uuid, i64)> = sqlx::query_as(
        r"SELECT organization_id, other_members FROM app.solely_owned_organizations()",
    )
    .fetch_all(tx.conn())
    .await?;
    let blocking: Vec<String> = sole
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(org, _)| org.to_string())
        .collect();
    if !blocking.is_empty() {
        return Err(Error::Conflict {
            code: "last_owner",
            detail: format!(
                "you are the only owner of organizations with other members ({}); transfer ownership or delete them first",
                blocking.join(", ")
            ),
        });
    }
    for (org, _) in &sole {
        sqlx::query(r"DELETE FROM organizations WHERE id = $1")
            .bind(org)
            .execute(tx.conn())
            .await?;
    }
    sqlx::query(r"DELETE FROM users WHERE id = $1")
        .bind(user_id)
        .execute(tx.conn())
        .await
        .on_conflict(
            "organization_members_last_owner",
            "last_owner",
            "you are the only owner of an organization with other members",
        )?;
    Ok(())
}

/// An account found by one of the lookup functions: its id and whether it may sign in.
async fn lookup(pool: &RuntimePool, sql: &str, args: &[&str]) -> Result<Option<(Uuid, bool)>> {
    let mut tx = TenantTx::begin(pool, &RequestContext::service()).await?;
    let mut query = sqlx::query_as::<_, (Option<Uuid>, Option<bool>)>(sql);
    for arg in args {
        query = query.bind(*arg);
    }
    let found = query.fetch_optional(tx.conn()).await?;
    tx.commit().await?;
    Ok(match found {
        Some((Some(id), Some(active))) => Some((id, active)),
        _ => None,
    })
}

/// Remembers the state, nonce and PKCE verifier of a sign-in started at the provider.
pub async fn begin_oidc_flow(
    pool: &RuntimePool,
    state: &str,
    nonce: &str,
    code_verifier: &str,
) -> Result<()> {
    let mut tx = TenantTx::begin(pool, &RequestContext::service()).await?;
    sqlx::query(r"SELECT app.begin_oidc_flow($1, $2, $3)")
        .bind(hash_token(state).as_slice())
        .bind(nonce)
        .bind(code_verifier)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The nonce and PKCE verifier of the flow with this `state`, consumed (single use).
pub async fn finish_oidc_flow(pool: &RuntimePool, state: &str) -> Result<Option<(String, String)>> {
    let mut tx = TenantTx::begin(pool, &RequestContext::service()).await?;
    let flow: Option<(Option<String>, Option<String>)> =
        sqlx::query_as(r"SELECT nonce, code_verifier FROM app.finish_oidc_flow($1)")
            .bind(hash_token(state).as_slice())
            .fetch_optional(tx.conn())
            .await?;
    tx.commit().await?;
    Ok(match flow {
        Some((Some(nonce), Some(verifier))) => Some((nonce, verifier)),
        _ => None,
    })
}

/// The account for an OpenID Connect identity: found by issuer + subject; else linked to the
/// account with the same email, only when the provider verified that email; else created (with
/// its first organization). Name and picture follow the provider.
pub async fn sign_in_with_identity(
    pool: &RuntimePool,
    identity: &ExternalIdentity,
    provider: &str,
) -> Result<Uuid> {
    let known = lookup(
        pool,
        r"SELECT user_id, is_active FROM app.user_by_identity($1, $2)",
        &[&identity.issuer, &identity.subject],
    )
    .await?;
    let user_id = match known {
        Some((_, false)) => return Err(Error::InvalidCredentials),
        Some((id, true)) => id,
        None => {
            let email = identity
                .email
                .as_deref()
                .filter(|_| identity.email_verified)
                .ok_or(Error::InvalidToken(
                    "the provider has not verified this email address",
                ))?;
            let existing = lookup(
                pool,
                r"SELECT user_id, is_active FROM app.user_by_email($1)",
                &[email],
            )
            .await?;
            let id = match existing {
                Some((_, false)) => return Err(Error::InvalidCredentials),
                Some((id, true)) => {
                    let mut tx = TenantTx::begin(pool, &RequestContext::service()).await?;
                    sqlx::query(r"SELECT app.claim_verified_email($1)")
                        .bind(id)
                        .execute(tx.conn())
                        .await?;
                    tx.commit().await?;
                    id
                }
                None => {
                    let account = NewAccount {
                        email: email.to_string(),
                        name: identity.name.clone(),
                        password_hash: None,
                        provider: provider.to_string(),
                        provider_id: Some(identity.subject.clone()),
                        clerk_user_id: None,
                        // Reaching here required the provider's verification.
                        email_verified: true,
                        organization_name: None,
                    };
                    sign_up(pool, account).await?.user.id
                }
            };
            let mut tx = TenantTx::begin(pool, &RequestContext::user(id)).await?;
            sqlx::query(
                r"INSERT INTO identities (user_id, issuer, subject, email) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(&identity.issuer)
            .bind(&identity.subject)
            .bind(email)
            .execute(tx.conn())
            .await?;
            tx.commit().await?;
            id
        }
    };
    let mut tx = TenantTx::begin(pool, &RequestContext::user(user_id)).await?;
    sqlx::query(
        r"UPDATE users SET name = coalesce($2, name), avatar_url = coalesce($3, avatar_url), last_login_at = now()
         WHERE id = $1",
    )
    .bind(user_id)
    .bind(identity.name.as_deref())
    .bind(identity.picture.as_deref())
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(user_id)
}

/// The account for an external bearer JWT's subject (`clerk_user_id`), provisioned on first use.
pub async fn user_for_external_jwt(
    pool: &RuntimePool,
    identity: &ExternalIdentity,
) -> Result<Uuid> {
    let sql = r"SELECT user_id, is_active FROM app.user_by_clerk_id($1)";
    match lookup(pool, sql, &[&identity.subject]).await? {
        Some((_, false)) => Err(Error::InvalidCredentials),
        Some((id, true)) => Ok(id),
        None => {
            let account = NewAccount {
                // Session tokens carry an email only when the provider is set up to add it.
                email: identity.email.clone().unwrap_or_else(|| {
                    format!("{}@users.noreply.invalid", identity.subject.to_lowercase())
                }),
                name: identity.name.clone(),
                password_hash: None,
                provider: "clerk".into(),
                provider_id: Some(identity.subject.clone()),
                clerk_user_id: Some(identity.subject.clone()),
                email_verified: false,
                organization_name: None,
            };
            match sign_up(pool, account).await {
                Ok(signed_up) => Ok(signed_up.user.id),
                // Two first requests at once: the other one provisioned the account (or the
                // address belongs to another account, and the lookup finds none).
                Err(e)
                    if matches!(
                        e,
                        Error::Conflict {
                            code: "email_taken",
                            ..
                        }
                    ) || e.database_code().as_deref() == Some("23505") =>
                {
                    lookup(pool, sql, &[&identity.subject])
                        .await?
                        .map(|(id, _)| id)
                        .ok_or(Error::InvalidCredentials)
                }
                Err(e) => Err(e),
            }
        }
    }
}
