//! The transactions of requests: on one organization's data ([`OrgTx`]), or on the caller's own
//! account and memberships ([`UserTx`]). Each is made, and its credential verified, before any
//! other part of the request is looked at (`http::extract`).

use std::ops::{Deref, DerefMut};

use tenantry_db::{RequestContext, RuntimePool, TenantTx};
use uuid::Uuid;

use super::error::Result;

/// A tenant transaction bound to the one organization a request names, for one module (an API
/// key limited to other modules never gets one). Store functions run on it as on any
/// [`TenantTx`]; [`OrgTx::org`] is the organization it was bound to.
pub struct OrgTx {
    tx: TenantTx,
    org: Uuid,
}

impl OrgTx {
    /// Wraps a transaction whose context names `org` (`http::extract` binds them so).
    pub(crate) fn new(tx: TenantTx, org: Uuid) -> Self {
        Self { tx, org }
    }

    /// Begins a transaction of `ctx`'s actor bound to `org`, whatever organization `ctx` named
    /// (for work outside HTTP: the seed, benchmarks, tests).
    pub async fn begin(pool: &RuntimePool, ctx: &RequestContext, org: Uuid) -> Result<Self> {
        let tx = TenantTx::begin(pool, &ctx.clone().in_org(org)).await?;
        Ok(Self { tx, org })
    }

    pub fn org(&self) -> Uuid {
        self.org
    }

    pub async fn commit(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }
}

impl Deref for OrgTx {
    type Target = TenantTx;
    fn deref(&self) -> &TenantTx {
        &self.tx
    }
}

impl DerefMut for OrgTx {
    fn deref_mut(&mut self) -> &mut TenantTx {
        &mut self.tx
    }
}

/// An [`OrgTx`] bound as a read whatever the request's method: for a `POST` that stores nothing
/// (a preview), so it goes on while the organization's storage is over its limit.
pub struct OrgReadTx(pub OrgTx);

/// A tenant transaction of a request that names no organization (the caller's account, sessions,
/// organizations list), bound to the caller's credential.
pub struct UserTx(TenantTx);

impl UserTx {
    pub fn new(tx: TenantTx) -> Self {
        Self(tx)
    }

    pub async fn commit(self) -> Result<()> {
        Ok(self.0.commit().await?)
    }
}

impl Deref for UserTx {
    type Target = TenantTx;
    fn deref(&self) -> &TenantTx {
        &self.0
    }
}

impl DerefMut for UserTx {
    fn deref_mut(&mut self) -> &mut TenantTx {
        &mut self.0
    }
}
