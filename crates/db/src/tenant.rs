//! The tenant transaction: the only path from the service to tenant data.
//!
//! Every request runs in one transaction whose first statement binds the request's identity with
//! `set_config(..., true)`: transaction scope, so nothing leaks to the next user of a pooled
//! connection (or through PgBouncer in transaction mode). Row-level security policies read those
//! settings; a transaction that set nothing sees no tenant row at all.

use std::net::IpAddr;

use sqlx::{PgConnection, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::{DbError, RuntimePool};

/// Who is acting in a request.
#[derive(Clone, Debug, Default)]
pub enum Actor {
    /// No identity: policies show no tenant row.
    #[default]
    Anonymous,
    /// A known user (sign-up, sign-in, background work on a user's behalf).
    User(Uuid),
    /// The SHA-256 of a bearer session token; resolved to its user inside the transaction.
    SessionTokenHash([u8; 32]),
}

/// Everything PostgreSQL learns about a request: identity for the policies, the rest for the audit trail.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub actor: Actor,
    /// The organization the request is about; policies then show that organization only.
    pub org_id: Option<Uuid>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl RequestContext {
    pub fn user(user_id: Uuid) -> Self {
        Self {
            actor: Actor::User(user_id),
            ..Self::default()
        }
    }

    pub fn in_org(mut self, org_id: Uuid) -> Self {
        self.org_id = Some(org_id);
        self
    }
}

/// A transaction of the runtime role with the request's identity bound. Store functions take
/// `&mut TenantTx`; dropping it without [`TenantTx::commit`] rolls everything back.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    user_id: Option<Uuid>,
}

impl TenantTx {
    /// Begins a transaction and binds the context in one round trip. A session token that does not
    /// resolve to an active session is [`DbError::Unauthenticated`].
    pub async fn begin(pool: &RuntimePool, ctx: &RequestContext) -> Result<Self, DbError> {
        let mut tx = pool.pool.begin().await?;
        let (user_id, token_hash) = match &ctx.actor {
            Actor::Anonymous => (None, None),
            Actor::User(id) => (Some(*id), None),
            Actor::SessionTokenHash(hash) => (None, Some(hash.as_slice())),
        };
        // One statement sets every setting; only the first column (the bound user) is read back.
        let row = sqlx::query(
            "SELECT set_config('app.user_id', coalesce(coalesce($1::uuid, \
                        CASE WHEN $2::bytea IS NULL THEN NULL ELSE app.session_user_id($2) END)::text, ''), true), \
                    set_config('app.org_id', coalesce($3::text, ''), true), \
                    set_config('app.ip', coalesce($4::text, ''), true), \
                    set_config('app.user_agent', coalesce($5::text, ''), true), \
                    set_config('app.request_id', coalesce($6::text, ''), true)",
        )
        .bind(user_id)
        .bind(token_hash)
        .bind(ctx.org_id.map(|id| id.to_string()))
        .bind(ctx.ip.map(|ip| ip.to_string()))
        .bind(ctx.user_agent.as_deref())
        .bind(ctx.request_id.as_deref())
        .fetch_one(&mut *tx)
        .await?;
        let bound_user: String = row.try_get(0)?;
        let user_id = if bound_user.is_empty() {
            None
        } else {
            Some(Uuid::parse_str(&bound_user).map_err(|e| sqlx::Error::Decode(Box::new(e)))?)
        };
        if token_hash.is_some() && user_id.is_none() {
            return Err(DbError::Unauthenticated);
        }
        Ok(Self { tx, user_id })
    }

    /// The acting user, once known.
    pub fn user_id(&self) -> Option<Uuid> {
        self.user_id
    }

    /// The connection to run queries on, inside this transaction.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<(), DbError> {
        self.tx.commit().await?;
        Ok(())
    }
}
