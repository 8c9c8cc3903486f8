//! The worker: claims due jobs up to its concurrency, runs each in its own task, renews their
//! leases while they run, records how each ended, and requeues jobs whose lease ran out (their
//! worker died). It wakes on `NOTIFY queue_jobs` from a dedicated connection and also polls, so
//! it keeps working where LISTEN does not (PgBouncer in transaction mode) or when that connection
//! drops. It also enqueues the jobs of due schedules (once per slot across all workers).
//! Stopping finishes the jobs in hand, within a grace period, and gives back the rest.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tenantry_db::queue::{self, Claim, ClaimedJob};
use tenantry_db::{DbError, OwnerPool, RuntimePool};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{schedule, JobError, JobRun, Registry};

/// How a worker paces itself.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Jobs run at once.
    pub concurrency: usize,
    /// How long a claim holds without renewal; renewed every third of it.
    pub lease: Duration,
    /// How often to look for due jobs without a notification.
    pub poll: Duration,
    /// Wait before the second attempt; doubled for each further one, up to `backoff_max`, with
    /// ±50 % jitter so failures of many jobs at once do not retry in step.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a stop waits for the jobs in hand before giving them back.
    pub grace: Duration,
    /// How often to look for due schedules (cron slots are minutes); None: this worker leaves
    /// schedules to others.
    pub schedules: Option<Duration>,
    /// Wake on NOTIFY (off: polling only, as behind PgBouncer in transaction mode).
    pub listen: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(2),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(3600),
            grace: Duration::from_secs(30),
            schedules: Some(Duration::from_secs(5)),
            listen: true,
        }
    }
}

/// A worker of one process; several may run against one database.
pub struct Worker {
    id: String,
    owner: OwnerPool,
    runtime: RuntimePool,
    registry: Arc<Registry>,
    config: WorkerConfig,
}

impl Worker {
    pub fn new(
        owner: OwnerPool,
        runtime: RuntimePool,
        registry: Registry,
        config: WorkerConfig,
    ) -> Self {
        let id = format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            id,
            owner,
            runtime,
            registry: Arc::new(registry),
            config,
        }
    }

    /// The name this worker holds leases under.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs until `shutdown` resolves, then finishes or gives back the jobs in hand.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), DbError> {
        let wake = Arc::new(Notify::new());
        let listener = self
            .config
            .listen
            .then(|| tokio::spawn(listen(self.owner.0.clone(), wake.clone())));
        let in_hand: Arc<Mutex<HashSet<Claim>>> = Arc::default();
        let mut running = JoinSet::new();
        let kinds = self.registry.names();
        let mut renewals = tokio::time::interval(self.config.lease / 3);
        renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Expired leases are looked for twice per lease: a dead worker's job waits at most a
        // lease and a half.
        let mut expiries = tokio::time::interval(self.config.lease / 2);
        expiries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reports = tokio::time::interval(Duration::from_secs(60));
        reports.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut schedules =
            tokio::time::interval(self.config.schedules.unwrap_or(Duration::from_secs(3600)));
        schedules.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        tracing::info!(worker = %self.id, ?kinds, "worker started");
        loop {
            // Finished runs leave the set, so their slots count as free.
            while running.try_join_next().is_some() {}
            let free = self.config.concurrency.saturating_sub(running.len());
            let mut claimed = 0;
            if free > 0 {
                match self.claim(&kinds, free).await {
                    Ok(jobs) => {
                        claimed = jobs.len();
                        for job in jobs {
                            lock(&in_hand).insert(job.claim());
                            running.spawn(self.execute(job, in_hand.clone()));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming jobs failed"),
                }
            }
            // A full batch: more may be due at once, so look again without waiting (the timers
            // below still get their turn: select! picks among ready branches at random).
            let more = claimed > 0 && claimed == free;
            tokio::select! {
                () = &mut shutdown => break,
                () = std::future::ready(()), if more => {}
                () = wake.notified() => {}
                () = tokio::time::sleep(self.config.poll) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = renewals.tick() => self.renew(&in_hand).await,
                _ = expiries.tick() => self.requeue_expired().await,
                _ = reports.tick() => self.report().await,
                _ = schedules.tick(), if self.config.schedules.is_some() => {
                    if let Err(e) = schedule::run_due(&self.owner.0, &self.registry).await {
                        tracing::warn!(error = %e, "running due schedules failed");
                    }
                }
            }
        }
        if let Some(listener) = listener {
            listener.abort();
        }
        self.stop(running, &in_hand).await
    }

    /// Queues again the jobs whose worker stopped renewing their lease.
    async fn requeue_expired(&self) {
        match queue::requeue_expired(&self.owner.0).await {
            Ok(0) => {}
            Ok(requeued) => tracing::warn!(
                requeued,
                "jobs whose worker stopped renewing their lease are queued again"
            ),
            Err(e) => tracing::warn!(error = %e, "requeueing expired leases failed"),
        }
    }

    /// Claims up to `limit` due jobs.
    async fn claim(&self, kinds: &[String], limit: usize) -> Result<Vec<ClaimedJob>, DbError> {
        queue::claim(
            &self.owner.0,
            &self.id,
            kinds,
            limit as i64,
            self.config.lease,
        )
        .await
    }

    /// The queue's depth and its oldest due job's wait, for the logs (every minute).
    async fn report(&self) {
        match queue::depth(&self.owner.0).await {
            Ok(d) => tracing::info!(
                due = d.due,
                oldest_due_seconds = d.oldest_due_seconds.unwrap_or(0.0).round(),
                running = d.running,
                "job queue"
            ),
            Err(e) => tracing::warn!(error = %e, "reading the queue's depth failed"),
        }
    }

    async fn renew(&self, in_hand: &Mutex<HashSet<Claim>>) {
        let ids: Vec<Claim> = lock(in_hand).iter().copied().collect();
        if ids.is_empty() {
            return;
        }
        match queue::renew(&self.owner.0, &self.id, &ids, self.config.lease).await {
            Ok(held) if held.len() < ids.len() => {
                tracing::warn!(
                    lost = ids.len() - held.len(),
                    "leases lost: those jobs may run twice"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "renewing leases failed"),
        }
    }

    /// Runs one job in its own task (a panic is a failed attempt) and records how it ended.
    fn execute(
        &self,
        job: ClaimedJob,
        in_hand: Arc<Mutex<HashSet<Claim>>>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (owner, worker, config) = (self.owner.0.clone(), self.id.clone(), self.config.clone());
        let kind = self.registry.get(&job.kind).cloned();
        let run = JobRun {
            job: job.clone(),
            runtime: self.runtime.clone(),
            owner: self.owner.clone(),
        };
        async move {
            let outcome = match kind {
                Some(kind) => {
                    // Its own task, so a panic is a failed attempt; aborted with this one (a stop
                    // past its grace period), so a job given back is no longer running here.
                    let mut handler = AbortOnDrop(tokio::spawn((kind.handler)(run)));
                    match (&mut handler.0).await {
                        Ok(outcome) => outcome,
                        Err(e) => Err(JobError::Retry(format!("the handler panicked: {e}"))),
                    }
                }
                None => Err(JobError::Fatal(format!("no handler for {}", job.kind))),
            };
            let recorded = match &outcome {
                Ok(()) => queue::complete(&owner, &worker, job.claim())
                    .await
                    .map(|held| held.then(|| "completed".to_string())),
                Err(e) => {
                    let retry_at = match e {
                        JobError::Retry(_) => Some(Utc::now() + backoff(&config, job.attempts)),
                        JobError::Fatal(_) => None,
                    };
                    queue::fail(&owner, &worker, job.claim(), &e.to_string(), retry_at).await
                }
            };
            match recorded {
                Ok(Some(state)) => {
                    if let Err(e) = &outcome {
                        tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, %state, error = %e, "job failed");
                    }
                }
                Ok(None) => {
                    tracing::warn!(job = %job.id, "the job's lease was lost before it ended: it may run again")
                }
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "recording the job's end failed")
                }
            }
            lock(&in_hand).remove(&job.claim());
        }
    }

    /// Waits up to the grace period for the jobs in hand, then gives back the unfinished ones.
    async fn stop(
        &self,
        mut running: JoinSet<()>,
        in_hand: &Mutex<HashSet<Claim>>,
    ) -> Result<(), DbError> {
        let finished = tokio::time::timeout(self.config.grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
        let unfinished: Vec<Claim> = lock(in_hand).drain().collect();
        if !unfinished.is_empty() {
            let released = queue::release(&self.owner.0, &self.id, &unfinished).await?;
            tracing::info!(released, "unfinished jobs given back");
        }
        tracing::info!(worker = %self.id, "worker stopped");
        Ok(())
    }
}

/// The wait before the attempt after attempt `attempt` (from 1): doubling from the base, capped,
/// ±50 % jitter.
fn backoff(config: &WorkerConfig, attempt: i32) -> chrono::Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    let wait = config
        .backoff_base
        .saturating_mul(2_u32.saturating_pow(doublings))
        .min(config.backoff_max);
    let jittered = wait.mul_f64(rand::thread_rng().gen_range(0.5..1.5));
    chrono::Duration::from_std(jittered).unwrap_or(chrono::Duration::MAX)
}

/// Wakes the worker on each `NOTIFY queue_jobs`; reconnects after a lost connection. The
/// listening connection is its own, not one of the owner pool's (which the jobs need).
async fn listen(owner: PgPool, wake: Arc<Notify>) {
    let dedicated = tenantry_db::pool::pool_options(1)
        .connect_lazy_with(owner.connect_options().as_ref().clone());
    loop {
        match PgListener::connect_with(&dedicated).await {
            Ok(mut listener) => match listener.listen("queue_jobs").await {
                Ok(()) => loop {
                    match listener.recv().await {
                        Ok(_) => wake.notify_one(),
                        Err(e) => {
                            tracing::warn!(error = %e, "LISTEN connection lost; polling until it is back");
                            break;
                        }
                    }
                },
                Err(e) => tracing::warn!(error = %e, "LISTEN failed; polling"),
            },
            Err(e) => tracing::warn!(error = %e, "LISTEN connection failed; polling"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Aborts the task when dropped (when the task awaiting it is aborted).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding it cannot leave the set half-changed: take it anyway.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}
