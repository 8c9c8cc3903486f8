//! Metering of API calls (migration 0039): every request bound to an organization is counted in
//! memory, keyed by organization and credential, and the counts are flushed to
//! `usage_tracking` in one transaction every interval — so no request waits on a counter row's
//! lock. The database adds a count only where the credential belongs to the organization (a
//! request naming an organization its caller is not in counts for nobody). A crash loses at
//! most one interval's counts; a graceful stop flushes what is left.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tenantry_db::{Actor, DbError, RequestContext, RuntimePool, TenantTx};
use uuid::Uuid;

/// Who made the counted calls: the credential, as the request carried it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Caller {
    Session([u8; 32]),
    ApiKey([u8; 32]),
    User(Uuid),
}

/// Requests counted since the last flush.
#[derive(Debug, Default)]
pub struct Meter {
    pending: Mutex<HashMap<(Uuid, Caller), i64>>,
}

impl Meter {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts one request of `actor` to `org` (credentials that name no member are not counted:
    /// calendar feeds and public readers read, they do not call the API).
    pub fn count(&self, org: Uuid, actor: &Actor) {
        let caller = match actor {
            Actor::SessionTokenHash(hash) => Caller::Session(*hash),
            Actor::ApiKeyHash(hash) => Caller::ApiKey(*hash),
            Actor::User(id) => Caller::User(*id),
            _ => return,
        };
        // A poisoned lock only means another request panicked mid-increment: the map is whole.
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        *pending.entry((org, caller)).or_default() += 1;
    }

    /// Writes the counts so far (one transaction as the service); on failure they are put back
    /// to go with the next flush. Returns how many organizations were counted.
    pub async fn flush(&self, db: &RuntimePool) -> Result<i32, DbError> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if taken.is_empty() {
            return Ok(0);
        }
        match write(db, &taken).await {
            Ok(counted) => Ok(counted),
            Err(e) => {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for (key, n) in taken {
                    *pending.entry(key).or_default() += n;
                }
                Err(e)
            }
        }
    }

    /// Flushes every `interval` until `stop` resolves, then once more.
    pub async fn run(
        self: Arc<Self>,
        db: RuntimePool,
        interval: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = &mut stop => break,
            }
            if let Err(error) = self.flush(&db).await {
                tracing::warn!(%error, "metering: the flush failed; its counts go with the next");
            }
        }
        if let Err(error) = self.flush(&db).await {
            tracing::error!(%error, "metering: the last flush failed; these counts are lost");
        }
    }
}

async fn write(db: &RuntimePool, counts: &HashMap<(Uuid, Caller), i64>) -> Result<i32, DbError> {
    let n = counts.len();
    let (mut orgs, mut sessions, mut keys, mut users, mut calls) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((org, caller), count) in counts {
        orgs.push(*org);
        let (session, key, user) = match caller {
            Caller::Session(hash) => (Some(hash.to_vec()), None, None),
            Caller::ApiKey(hash) => (None, Some(hash.to_vec()), None),
            Caller::User(id) => (None, None, Some(*id)),
        };
        sessions.push(session);
        keys.push(key);
        users.push(user);
        calls.push(*count);
    }
    let mut tx = TenantTx::begin(db, &RequestContext::service()).await?;
    let counted: i32 = sqlx::query_scalar(r"SELECT app.record_api_calls($1, $2, $3, $4, $5)")
        .bind(&orgs)
        .bind(&sessions)
        .bind(&keys)
        .bind(&users)
        .bind(&calls)
        .fetch_one(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(counted)
}
