//! PostgreSQL for Tenantry.
//!
//! - [`cluster`]: the managed local PostgreSQL cluster (the embedded default).
//! - [`backup`]: its WAL archiving, backups and point-in-time restore (pgBackRest).
//! - [`migrate`]: the embedded, numbered, reversible SQL migrations.
//! - [`pool`]: connection pools for the two roles (owner and runtime).
//! - [`tenant`]: the tenant transaction, the only way the service reaches tenant data.
//! - [`guard`]: the catalog check that every tenant table is protected by row-level security.
//! - [`leakproof`]: the search operators declared LEAKPROOF so indexes serve them under RLS.
//! - [`maintenance`]: owner-side upkeep: reports, archival, audit retention.
//! - [`queue`]: the job queue's statements (enqueue, claim with a lease, finish, retry).

pub mod backup;
pub mod bundle;
pub mod cluster;
pub mod drill;
pub mod guard;
pub mod leakproof;
pub mod maintenance;
pub mod migrate;
#[cfg(feature = "testing")]
pub mod pgbouncer;
pub mod pool;
pub mod queue;
pub mod tenant;
#[cfg(feature = "testing")]
pub mod testing;

pub use pool::{ConnectionUrls, OwnerPool, RuntimePool, ServiceKey};
pub use tenant::{connection_lost, Actor, RequestContext, TenantTx, REQUEST_SETTINGS};

/// Name of the role the service connects as: LOGIN, no superuser, no BYPASSRLS, owns nothing.
/// Migrations grant to it by this name.
pub const RUNTIME_ROLE: &str = "tenantry_runtime";
/// Name of the role that runs migrations and owns every object (managed cluster default).
pub const OWNER_ROLE: &str = "tenantry_owner";
/// Name of the application database in the managed cluster.
pub const DATABASE_NAME: &str = "tenantry";

/// Errors from the database layer that callers act on.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the credential is not valid or has expired")]
    Unauthenticated,
}
