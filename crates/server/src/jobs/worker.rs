//! The worker: claims due jobs up to its concurrency, runs each in its own task, renews their
//! leases while they run, records how each ended, and requeues jobs whose lease ran out (their
//! worker died). Jobs that succeeded are deleted in the statement that claims the next ones, so
//! a busy worker commits once per round, not twice per job. It wakes on `NOTIFY queue_jobs` from a dedicated connection and also polls, so
//! it keeps working where LISTEN does not (PgBouncer in transaction mode) or when that connection
//! drops. It also enqueues the jobs of due schedules (once per slot across all workers).
//! Stopping finishes the jobs in hand, within a grace period, and gives back the rest.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use rand::Rng;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tenantry_db::queue::{self, Claim, ClaimedJob};
use tenantry_db::{DbError, OwnerPool, RuntimePool};
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet};
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
    /// How often the queue's depth is logged and the WAL archive checked.
    pub report: Duration,
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
            report: Duration::from_secs(60),
        }
    }
}

/// The claims a worker holds and their runs (finished runs stay until their success is
/// recorded, so their leases are renewed meanwhile).
type InHand = Mutex<HashMap<Claim, AbortHandle>>;

/// A worker of one process; several may run against one database.
pub struct Worker {
    id: String,
    owner: OwnerPool,
    /// For claims, leases and outcomes (`queue::bookkeeping_pool`: asynchronous commit).
    bookkeeping: PgPool,
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
        let bookkeeping = queue::bookkeeping_pool(&owner, 2);
        Self {
            id,
            owner,
            bookkeeping,
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
        let in_hand: Arc<InHand> = Arc::default();
        // Succeeded, still in hand (their leases renewed) until the next round deletes them.
        let succeeded: Arc<Mutex<Vec<Claim>>> = Arc::default();
        let mut running = JoinSet::new();
        let kinds = self.registry.names();
        let mut renewals = tokio::time::interval(self.config.lease / 3);
        renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Expired leases are looked for twice per lease: a dead worker's job waits at most a
        // lease and a half.
        let mut expiries = tokio::time::interval(self.config.lease / 2);
        expiries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reports = tokio::time::interval(self.config.report);
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
            let done = std::mem::take(&mut *lock(&succeeded));
            let mut claimed = 0;
            if free > 0 || !done.is_empty() {
                match self.round(&done, &kinds, free).await {
                    Ok(round) => {
                        self.forget(&in_hand, &done, round.completed);
                        claimed = round.claimed.len();
                        for job in round.claimed {
                            let claim = job.claim();
                            // Held while spawning, so the run cannot leave the set before it
                            // enters it.
                            let mut hand = lock(&in_hand);
                            let run = self.execute(job, in_hand.clone(), succeeded.clone());
                            hand.insert(claim, running.spawn(run));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming jobs failed");
                        // Still held: the next round tries again.
                        lock(&succeeded).extend(done);
                    }
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
        self.stop(running, &in_hand, &succeeded).await
    }

    /// Queues again the jobs whose worker stopped renewing their lease.
    async fn requeue_expired(&self) {
        match queue::requeue_expired(&self.bookkeeping).await {
            Ok(0) => {}
            Ok(requeued) => tracing::warn!(
                requeued,
                "jobs whose worker stopped renewing their lease are queued again"
            ),
            Err(e) => tracing::warn!(error = %e, "requeueing expired leases failed"),
        }
    }

    /// Deletes the jobs that succeeded and claims up to `limit` due jobs, in one statement.
    async fn round(
        &self,
        done: &[Claim],
        kinds: &[String],
        limit: usize,
    ) -> Result<queue::Round, DbError> {
        queue::complete_and_claim(
            &self.bookkeeping,
            &self.id,
            done,
            kinds,
            limit as i64,
            self.config.lease,
        )
        .await
    }

    /// Drops the succeeded jobs a round recorded from the jobs in hand; says so when some of
    /// them were no longer this worker's (their lease ran out: they may run again).
    fn forget(&self, in_hand: &InHand, done: &[Claim], completed: u64) {
        let mut in_hand = lock(in_hand);
        for claim in done {
            in_hand.remove(claim);
        }
        let lost = (done.len() as u64).saturating_sub(completed);
        if lost > 0 {
            tracing::warn!(
                lost,
                "jobs succeeded after their lease ran out: they may run again"
            );
        }
    }

    /// The queue's depth and its oldest due job's wait, for the logs, and the WAL archive's
    /// health: an error in the log each time, an alert to the operator once per episode.
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
        // Every minute while it lasts: backups stop covering new commits.
        match tenantry_db::backup::archive_health(&self.owner.0).await {
            Ok(health) => {
                if let Some(problem) = health.problem() {
                    tracing::error!(%problem, "WAL archive");
                }
                if let Some(alert) = health.alert(&hostname()) {
                    match queue::raise_alert(&self.owner.0, &alert).await {
                        Ok(true) => tracing::info!(key = %alert.key, "operator alerted"),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "raising the operator's alert failed"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the WAL archiver's state failed"),
        }
    }

    /// Renews the leases in hand. A run whose lease was lost (this worker stalled past it, and
    /// the job may be running elsewhere now) is stopped: it could no longer record its end.
    async fn renew(&self, in_hand: &InHand) {
        let claims: Vec<Claim> = lock(in_hand).keys().copied().collect();
        if claims.is_empty() {
            return;
        }
        match queue::renew(&self.bookkeeping, &self.id, &claims, self.config.lease).await {
            Ok(held) if held.len() < claims.len() => {
                let held: HashSet<Uuid> = held.into_iter().collect();
                let mut hand = lock(in_hand);
                for lost in claims.iter().filter(|c| !held.contains(&c.id)) {
                    if let Some(run) = hand.remove(lost) {
                        run.abort();
                    }
                }
                tracing::warn!(
                    lost = claims.len() - held.len(),
                    "leases lost: those runs are stopped, their jobs may run again"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "renewing leases failed"),
        }
    }

    /// Runs one job (a panic is a failed attempt) and records how it ended. Aborting the task
    /// this runs in (a stop past its grace period) drops the handler with it, so a job given
    /// back is no longer running here.
    fn execute(
        &self,
        job: ClaimedJob,
        in_hand: Arc<InHand>,
        succeeded: Arc<Mutex<Vec<Claim>>>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (bookkeeping, worker, config) = (
            self.bookkeeping.clone(),
            self.id.clone(),
            self.config.clone(),
        );
        let kind = self.registry.get(&job.kind).cloned();
        let run = JobRun {
            job: job.clone(),
            runtime: self.runtime.clone(),
            owner: self.owner.clone(),
        };
        async move {
            let outcome = match kind {
                Some(kind) => match AssertUnwindSafe((kind.handler)(run)).catch_unwind().await {
                    Ok(outcome) => outcome,
                    Err(panic) => Err(JobError::Retry(format!(
                        "the handler panicked: {}",
                        panic_message(panic.as_ref())
                    ))),
                },
                None => Err(JobError::Fatal(format!("no handler for {}", job.kind))),
            };
            let error = match outcome {
                Ok(()) => {
                    // The worker's next round deletes it (its slot is free already).
                    lock(&succeeded).push(job.claim());
                    return;
                }
                Err(e) => e,
            };
            let retry_at = match error {
                JobError::Retry(_) => Some(Utc::now() + backoff(&config, job.attempts)),
                JobError::Fatal(_) => None,
            };
            let recorded = queue::fail(
                &bookkeeping,
                &worker,
                job.claim(),
                &error.to_string(),
                retry_at,
            )
            .await;
            match recorded {
                Ok(Some(state)) => {
                    tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, %state, %error, "job failed");
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

    /// Waits up to the grace period for the jobs in hand, records those that succeeded, then
    /// gives back the unfinished ones.
    async fn stop(
        &self,
        mut running: JoinSet<()>,
        in_hand: &InHand,
        succeeded: &Mutex<Vec<Claim>>,
    ) -> Result<(), DbError> {
        let finished = tokio::time::timeout(self.config.grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
        let done = std::mem::take(&mut *lock(succeeded));
        if !done.is_empty() {
            // Never given back: a job that succeeded must not run again. Should this fail, their
            // leases run out and they do run again (at least once, never lost).
            let round = self.round(&done, &[], 0).await?;
            self.forget(in_hand, &done, round.completed);
        }
        let unfinished: Vec<Claim> = lock(in_hand).drain().map(|(claim, _)| claim).collect();
        if !unfinished.is_empty() {
            let released = queue::release(&self.bookkeeping, &self.id, &unfinished).await?;
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

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
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
