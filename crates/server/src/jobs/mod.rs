//! Background work: the handlers of each job kind and the worker that runs them.
//!
//! Jobs live in PostgreSQL (`queue.jobs`, statements in `tenantry_db::queue`). A worker claims
//! due jobs as the owner, with a lease it renews while they run; a job of an organization runs
//! in a tenant transaction bound to that organization and the user it acts for
//! ([`JobRun::org_tx`]), as the runtime role under RLS, so it can do no more than that user
//! could in a request. A job whose worker dies is queued again when its lease runs out: handlers
//! must be safe to run twice (delivery at least once).

pub mod schedule;
pub mod upkeep;
pub mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tenantry_db::queue::{ClaimedJob, NewJob};
use tenantry_db::{Actor, DbError, OwnerPool, RequestContext, RuntimePool};

use crate::kernel::org_tx::OrgTx;

pub use worker::{Worker, WorkerConfig};

/// Why a run failed, and whether another attempt may help.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt later (a server away, a connection lost).
    #[error("{0}")]
    Retry(String),
    /// No attempt will do better (a payload that makes no sense): the job is dead at once.
    #[error("{0}")]
    Fatal(String),
}

impl From<DbError> for JobError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Sqlx(e) => JobError::from(e),
            other => JobError::Retry(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for JobError {
    /// Refusals (data, integrity, privileges, plan limits: SQLSTATE classes 22, 23, 42, TP) will
    /// be refused again; anything else (a lost connection, a deadlock, a restart) may pass next
    /// time.
    fn from(e: sqlx::Error) -> Self {
        let refused = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| ["22", "23", "42", "TP"].iter().any(|c| code.starts_with(c)));
        if refused {
            JobError::Fatal(e.to_string())
        } else {
            JobError::Retry(e.to_string())
        }
    }
}

impl From<crate::kernel::error::Error> for JobError {
    fn from(e: crate::kernel::error::Error) -> Self {
        use crate::kernel::error::Error;
        match e {
            Error::Database(e) => JobError::from(e),
            // The server itself or a service it calls: another attempt may pass.
            Error::Internal(_)
            | Error::Unavailable
            | Error::Busy { .. }
            | Error::Timeout
            | Error::Upstream(_) => JobError::Retry(e.to_string()),
            // Refused (gone, forbidden, invalid): it will be refused again.
            other => JobError::Fatal(other.to_string()),
        }
    }
}

/// One run of a claimed job, as its handler receives it.
pub struct JobRun {
    pub job: ClaimedJob,
    runtime: RuntimePool,
    owner: OwnerPool,
}

impl JobRun {
    /// The owner's pool, for platform upkeep: refused to a job of an organization, which runs
    /// only as its actor ([`JobRun::org_tx`]).
    pub fn owner(&self) -> Result<&OwnerPool, JobError> {
        match self.job.organization_id {
            None => Ok(&self.owner),
            Some(org) => Err(JobError::Fatal(format!(
                "job {} of organization {org} may not run as the owner",
                self.job.id
            ))),
        }
    }

    /// A tenant transaction bound to the job's organization and the user it acts for (the
    /// service when none), with request id `job:<id>` so the audit trail of its writes names it.
    pub async fn org_tx(&self) -> Result<OrgTx, JobError> {
        let org = self
            .job
            .organization_id
            .ok_or_else(|| JobError::Fatal(format!("job {} has no organization", self.job.id)))?;
        let ctx = RequestContext {
            actor: self.job.actor_id.map_or(Actor::Service, Actor::User),
            request_id: Some(format!("job:{}", self.job.id)),
            ..RequestContext::default()
        };
        Ok(OrgTx::begin(&self.runtime, &ctx, org).await?)
    }
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;
type Handler = Arc<dyn Fn(JobRun) -> HandlerFuture + Send + Sync>;

/// A job kind's name and how many attempts its jobs get: declared once, next to its handler,
/// and used by whoever enqueues it.
#[derive(Clone, Copy, Debug)]
pub struct JobSpec {
    pub kind: &'static str,
    pub max_attempts: i32,
}

impl JobSpec {
    /// A job of this kind, to enqueue.
    pub fn job(self, payload: serde_json::Value) -> NewJob {
        NewJob {
            max_attempts: self.max_attempts,
            ..NewJob::new(self.kind, payload)
        }
    }
}

/// A job kind and what runs it.
#[derive(Clone)]
pub struct JobKind {
    pub spec: JobSpec,
    handler: Handler,
}

/// Every job kind of the service; outbox delivery only with a mailer (SMTP configured), the
/// Stripe reconcile comparing only with Stripe configured.
pub fn registry(
    mailer: Option<Arc<crate::email::Mailer>>,
    stripe: Option<crate::billing::stripe::StripeClient>,
    connectors: Option<crate::integrations::sync::Connectors>,
) -> Registry {
    let registry = crate::integrations::sync::register(Registry::default(), connectors);
    let registry = crate::crm::appointments::reminders::register(registry);
    let registry = crate::content::routes::register(registry);
    let registry = crate::billing::reconcile::register(registry, stripe);
    let registry = crate::billing::storage::register(registry);
    crate::email::register(upkeep::register(registry), mailer)
}

/// The job kinds a worker runs.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: HashMap<&'static str, JobKind>,
}

impl Registry {
    /// Adds a kind; `handler` runs each of its jobs.
    pub fn register<F, Fut>(mut self, spec: JobSpec, handler: F) -> Self
    where
        F: Fn(JobRun) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |run| Box::pin(handler(run)));
        self.kinds.insert(spec.kind, JobKind { spec, handler });
        self
    }

    pub fn get(&self, name: &str) -> Option<&JobKind> {
        self.kinds.get(name)
    }

    /// The kinds' names, which a worker claims.
    pub fn names(&self) -> Vec<String> {
        self.kinds.keys().map(|k| k.to_string()).collect()
    }
}
