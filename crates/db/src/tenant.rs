//! The tenant transaction: the only path from the service to tenant data.
//!
//! Every request runs in one transaction whose first statement, `app.begin_request`, verifies the
//! request's credential in the database and binds the identity with `set_config(..., true)`:
//! transaction scope, so nothing leaks to the next user of a pooled connection (or through
//! PgBouncer in transaction mode). The settings carry an HMAC keyed by a secret only the owner
//! role reads; the policies trust them only while it matches, so SQL run as the runtime role
//! cannot make up, change or replay an identity (docs/ARCHITECTURE.md, "Request path").

use std::net::IpAddr;

use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::{DbError, RuntimePool};

/// Who is acting in a request.
#[derive(Clone, Debug, Default)]
pub enum Actor {
    /// No identity: policies show no tenant row.
    #[default]
    Anonymous,
    /// The server itself, before anyone has signed in: sign-up, password checks, account
    /// lookups, sign-in limits, OpenID Connect flows. Proven with the pool's service key.
    Service,
    /// A user the server verified itself (a password, an OpenID Connect sign-in, an external
    /// JWT; sign-up; background work on a user's behalf). Proven with the pool's service key.
    User(Uuid),
    /// The SHA-256 of a bearer session token; resolved to its user inside the transaction.
    SessionTokenHash([u8; 32]),
    /// The SHA-256 of an API key; resolved to the key (and its organization) inside the transaction.
    ApiKeyHash([u8; 32]),
    /// The SHA-256 of a member's calendar feed token: no user, read access to that member's
    /// appointments in the feed's organization only.
    CalendarFeedHash([u8; 32]),
    /// Anyone, reading the public pages of the organization with this slug: no user, no role;
    /// the policies show that organization's published rows only.
    PublicReader(String),
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

    pub fn service() -> Self {
        Self {
            actor: Actor::Service,
            ..Self::default()
        }
    }

    pub fn in_org(mut self, org_id: Uuid) -> Self {
        self.org_id = Some(org_id);
        self
    }
}

/// The request's server-side settings, sent with its binding (in the same message: no round
/// trip) rather than once per connection, so they hold whichever server connection a pooler in
/// transaction mode (PgBouncer) hands the transaction: limits so work abandoned by a cancelled
/// request cannot run or hold locks forever, and the CRM search's word similarity (a word of
/// the query matches a word it resembles this much: pg_trgm's default, 0.6, misses "smiht" for
/// "smith"; 0.4 takes "hopper" for "hopkin"). They are expressions of the binding's own
/// `SELECT` (transaction-local `set_config`s): three `SET LOCAL` statements cost the binding
/// 0.25 ms more (pgbench, docs/BENCHMARKS.md).
pub const REQUEST_SETTINGS: &str = "set_config('statement_timeout', '30s', true), \
     set_config('idle_in_transaction_session_timeout', '60s', true), \
     set_config('pg_trgm.word_similarity_threshold', '0.5', true)";

/// A transaction of the runtime role with the request's identity bound. Store functions take
/// `&mut TenantTx`; dropping it without [`TenantTx::commit`] rolls everything back.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    /// The acting user once known (`Some(None)`: anonymous).
    user_id: Option<Option<Uuid>>,
}

impl TenantTx {
    /// Begins a transaction and binds the context. A credential that does not resolve to a live
    /// session or key is [`DbError::Unauthenticated`].
    pub async fn begin(pool: &RuntimePool, ctx: &RequestContext) -> Result<Self, DbError> {
        Self::begin_checked(pool, ctx, None).await
    }

    /// [`TenantTx::begin`], with `checks` (SQL statements, no parameters) run right after the
    /// binding, in the same round trip: one that raises leaves no transaction and is the error.
    pub async fn begin_checked(
        pool: &RuntimePool,
        ctx: &RequestContext,
        checks: Option<&str>,
    ) -> Result<Self, DbError> {
        let service_key = Some(pool.service_key.0.as_slice());
        let (mut service, mut actor, mut session, mut key, mut feed, mut org_slug) =
            (None, None, None, None, None, None);
        let user_id = match &ctx.actor {
            Actor::Anonymous => Some(None),
            Actor::Service => {
                service = service_key;
                Some(None)
            }
            Actor::User(id) => {
                (service, actor) = (service_key, Some(*id));
                Some(Some(*id))
            }
            Actor::SessionTokenHash(hash) => {
                session = Some(hash.as_slice());
                None
            }
            Actor::ApiKeyHash(hash) => {
                key = Some(hash.as_slice());
                Some(None)
            }
            Actor::CalendarFeedHash(hash) => {
                feed = Some(hash.as_slice());
                Some(None)
            }
            Actor::PublicReader(slug) => {
                org_slug = Some(slug.as_str());
                Some(None)
            }
        };
        let hex_bytes = |bytes: Option<&[u8]>| {
            bytes.map_or_else(|| "NULL".to_string(), |b| format!("'\\x{}'::bytea", hex(b)))
        };
        let literal =
            |value: Option<String>| value.map_or_else(|| "NULL".to_string(), |v| format!("'{v}'"));
        // One simple query, which takes no parameters: every value is spelled with characters
        // that cannot end a literal (UUIDs and IPs as Rust formats them, the rest as hex).
        // app.begin_request runs first and BEGIN last: a refused credential (SQLSTATE 28000) or
        // a failed check never starts a transaction, and the connection goes back to the pool
        // idle. BEGIN adopts the implicit transaction, so the settings stay transaction-local,
        // and the binding's MAC names that transaction. The text carries credentials: no other session
        // of the runtime role can read it (pg_stat_activity is closed to it; the guard checks).
        // Behind a pooler, the server connection may hold another client's statements, whose
        // names (sqlx numbers them per client connection, even with its cache off) ours repeat.
        let forget = if pool.behind_pooler {
            "DEALLOCATE ALL;"
        } else {
            ""
        };
        let statement = format!(
            r"{forget} SELECT {REQUEST_SETTINGS}, app.begin_request({}, {}::uuid, {}, {}, {}, {}::uuid, {}, {}::inet, {}, {});{} BEGIN",
            hex_bytes(service),
            literal(actor.map(|id| id.to_string())),
            hex_bytes(session),
            hex_bytes(key),
            hex_bytes(feed),
            literal(ctx.org_id.map(|id| id.to_string())),
            text_literal(org_slug),
            literal(ctx.ip.map(|ip| ip.to_string())),
            text_literal(ctx.user_agent.as_deref()),
            text_literal(ctx.request_id.as_deref()),
            checks.map_or_else(String::new, |checks| format!(" {checks};")),
        );
        // A pooled connection the server dropped since its last use (a restart, an idle reaper)
        // fails on this first statement. Nothing of the request ran, so another connection is
        // tried: each failure removes a dead one, at most the whole pool.
        let mut attempts = 0;
        let started = std::time::Instant::now();
        let begun = loop {
            match pool.pool.begin_with(statement.clone()).await {
                Err(e) if connection_lost(&e) && attempts < pool.pool.size() => attempts += 1,
                begun => break begun,
            }
        };
        // The wait for a pooled connection and the binding's round trip: a pool too small
        // for the load shows here first.
        metrics::histogram!("tenantry_db_begin_seconds").record(started.elapsed().as_secs_f64());
        let tx =
            begun.map_err(
                |e| match e.as_database_error().and_then(|d| d.code()).as_deref() {
                    Some("28000") => DbError::Unauthenticated,
                    _ => DbError::Sqlx(e),
                },
            )?;
        Ok(Self { tx, user_id })
    }

    /// The acting user (`None` for an anonymous transaction).
    pub async fn user_id(&mut self) -> Result<Option<Uuid>, DbError> {
        if let Some(known) = self.user_id {
            return Ok(known);
        }
        let id: Option<Uuid> = sqlx::query_scalar(r"SELECT app.user_id()")
            .fetch_one(&mut *self.tx)
            .await?;
        self.user_id = Some(id);
        Ok(id)
    }

    /// The session the request authenticated with, if it used one.
    pub async fn session_id(&mut self) -> Result<Option<Uuid>, DbError> {
        Ok(sqlx::query_scalar(r"SELECT app.session_id()")
            .fetch_one(&mut *self.tx)
            .await?)
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

/// The connection is gone: an I/O error, or the server ended the session (SQLSTATE class 57P:
/// shut down or terminated by an administrator; class 08: connection exception).
pub fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")),
        _ => false,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A SQL expression for `text` (or NULL when absent) that needs no quoting.
fn text_literal(text: Option<&str>) -> String {
    match text {
        Some(t) if !t.is_empty() => format!(
            "convert_from(decode('{}', 'hex'), 'UTF8')",
            hex(t.as_bytes())
        ),
        _ => "NULL".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_is_hex_so_it_cannot_break_out_of_the_literal() {
        let evil = "x', true); DROP TABLE users; --";
        let sql = text_literal(Some(evil));
        assert!(!sql.contains(';'));
        assert_eq!(sql.matches('\'').count(), 6);
        assert_eq!(text_literal(None), "NULL");
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
