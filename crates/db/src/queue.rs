//! The job queue's statements (migration 0022): enqueue in a tenant transaction, and, as the
//! owner, claim with a lease, renew, finish (a job that succeeded is deleted), fail with a
//! backoff, and requeue what lost its lease.
//! The worker loop that drives them is the server's (`tenantry_server::jobs`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::{DbError, OwnerPool, TenantTx};

/// A job to enqueue.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub kind: String,
    pub payload: Value,
    /// One pending job per (kind, organization, key): a second enqueue is a no-op.
    pub unique_key: Option<String>,
    pub priority: i16,
    /// Not before (default: now).
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
}

impl NewJob {
    pub fn new(kind: &str, payload: Value) -> Self {
        Self {
            kind: kind.into(),
            payload,
            unique_key: None,
            priority: 0,
            run_at: None,
            max_attempts: 10,
        }
    }
}

/// A claimed job, leased to the worker that claimed it.
#[derive(Clone, Debug, FromRow, serde::Deserialize)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub kind: String,
    pub organization_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub payload: Value,
    /// This run's number, from 1.
    pub attempts: i32,
    pub max_attempts: i32,
}

/// A job as the operator sees it.
#[derive(Clone, Debug, FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub kind: String,
    pub organization_id: Option<Uuid>,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const INSERT: &str = r"INSERT INTO queue.jobs (id, kind, organization_id, actor_id, payload, unique_key,
                                  priority, run_at, max_attempts)
    VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, now()), $9)
    ON CONFLICT (kind, organization_id, unique_key) WHERE unique_key IS NOT NULL AND state IN ('queued', 'running')
    DO NOTHING";

/// Enqueues `job` for the organization `org` the transaction is bound to, acting as its user:
/// it commits or rolls back with the transaction. None when a job of that kind with that unique
/// key is already pending.
pub async fn enqueue(tx: &mut TenantTx, org: Uuid, job: &NewJob) -> Result<Option<Uuid>, DbError> {
    let actor = tx.user_id().await?;
    insert(tx.conn(), Some(org), actor, job).await
}

/// Enqueues a platform job (no organization, no actor), as the owner.
pub async fn enqueue_platform(owner: &OwnerPool, job: &NewJob) -> Result<Option<Uuid>, DbError> {
    let mut conn = owner.0.acquire().await?;
    insert(&mut conn, None, None, job).await
}

/// Enqueues `job` for `org` acting for `actor`, on the owner's connection `conn`: platform
/// upkeep that queues an organization's own work (scheduled integration syncs).
pub async fn enqueue_for(
    conn: &mut PgConnection,
    org: Uuid,
    actor: Option<Uuid>,
    job: &NewJob,
) -> Result<Option<Uuid>, DbError> {
    insert(conn, Some(org), actor, job).await
}

async fn insert(
    conn: &mut PgConnection,
    org: Option<Uuid>,
    actor: Option<Uuid>,
    job: &NewJob,
) -> Result<Option<Uuid>, DbError> {
    let id = Uuid::now_v7();
    let inserted = sqlx::query(INSERT)
        .bind(id)
        .bind(&job.kind)
        .bind(org)
        .bind(actor)
        .bind(&job.payload)
        .bind(&job.unique_key)
        .bind(job.priority)
        .bind(job.run_at)
        .bind(job.max_attempts)
        .execute(conn)
        .await?;
    Ok((inserted.rows_affected() == 1).then_some(id))
}

/// Connections for a worker's bookkeeping of the queue (claims, leases, outcomes), as the owner:
/// - committed without waiting for the WAL flush: a crash of the database can lose the last
///   fraction of a second of it, and that only makes jobs run again (delivery is at least once
///   anyway), never loses one. Enqueueing and what handlers write stay synchronous.
/// - with generic plans only: the statements below are written to need no parameter values
///   to plan well (ids looked up, never joined; no `state = 'running'` to lure a plan into a
///   partial index), and planning the claim on every call cost more than running it.
pub fn bookkeeping_pool(owner: &OwnerPool, max_connections: u32) -> PgPool {
    crate::pool::pool_options(max_connections).connect_lazy_with(
        owner.0.connect_options().as_ref().clone().options([
            ("synchronous_commit", "off"),
            ("plan_cache_mode", "force_generic_plan"),
        ]),
    )
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A claim: the job and the attempt it was claimed for. Every statement after the claim names
/// both, so a run whose lease ran out (its job since claimed again, maybe by the same worker)
/// can no longer renew, finish or give back the job. Those statements match `worker` (set only
/// while running: the `jobs_lease` check) and not `state = 'running'`, which would let a generic
/// plan walk the `jobs_leased` index, dead entries and all, instead of looking ids up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Claim {
    pub id: Uuid,
    pub attempt: i32,
}

impl ClaimedJob {
    pub fn claim(&self) -> Claim {
        Claim {
            id: self.id,
            attempt: self.attempts,
        }
    }
}

fn split(claims: &[Claim]) -> (Vec<Uuid>, Vec<i32>) {
    claims.iter().map(|c| (c.id, c.attempt)).unzip()
}

/// What one round of a worker did: how many of the jobs it reported done were still its own
/// (and are now gone), and the jobs it claimed next.
#[derive(Debug, Default)]
pub struct Round {
    pub completed: u64,
    pub claimed: Vec<ClaimedJob>,
}

/// One statement (one commit) per round of a worker: deletes the jobs of `done` that `worker`
/// still holds (they succeeded) and claims up to `limit` due jobs of `kinds`, highest priority
/// then earliest first, leased to `worker` for `lease`. Jobs other workers hold locked are
/// skipped, not waited for.
pub async fn complete_and_claim(
    owner: &PgPool,
    worker: &str,
    done: &[Claim],
    kinds: &[String],
    limit: i64,
    lease: Duration,
) -> Result<Round, DbError> {
    let (ids, attempts) = split(done);
    // `id = ANY (ARRAY(…))`, not a join to the claimed rows: a generic plan (the statement is
    // prepared) cannot know LIMIT is small and would hash-join the whole table.
    let (completed, claimed): (i64, sqlx::types::Json<Vec<ClaimedJob>>) = sqlx::query_as(
        r"WITH done AS (
              DELETE FROM queue.jobs j
               USING unnest($3::uuid[], $4::int[]) AS c (id, attempt)
               WHERE j.id = c.id AND j.attempts = c.attempt AND j.worker = $1
              RETURNING 1),
          claimed AS (
              UPDATE queue.jobs j
                 SET state = 'running', attempts = j.attempts + 1, worker = $1,
                     lease_until = now() + make_interval(secs => $6)
               WHERE j.id = ANY (ARRAY(
                     SELECT id FROM queue.jobs
                      WHERE state = 'queued' AND run_at <= now() AND kind = ANY ($2)
                      ORDER BY priority DESC, run_at, id
                      LIMIT $5 FOR UPDATE SKIP LOCKED))
              RETURNING j.id, j.kind, j.organization_id, j.actor_id, j.payload, j.attempts, j.max_attempts)
          SELECT (SELECT count(*) FROM done),
                 coalesce((SELECT json_agg(claimed) FROM claimed), '[]')",
    )
    .bind(worker)
    .bind(kinds)
    .bind(ids)
    .bind(attempts)
    .bind(limit)
    .bind(seconds(lease))
    .fetch_one(owner)
    .await?;
    Ok(Round {
        completed: completed.max(0) as u64,
        claimed: claimed.0,
    })
}

/// Renews `worker`'s leases on `claims`; returns the ids it still holds (a job whose lease ran
/// out and was claimed again is no longer this run's).
pub async fn renew(
    owner: &PgPool,
    worker: &str,
    claims: &[Claim],
    lease: Duration,
) -> Result<Vec<Uuid>, DbError> {
    let (ids, attempts) = split(claims);
    Ok(sqlx::query_scalar(
        r"UPDATE queue.jobs j SET lease_until = now() + make_interval(secs => $4)
            FROM unnest($2::uuid[], $3::int[]) AS c (id, attempt)
           WHERE j.id = c.id AND j.attempts = c.attempt AND j.worker = $1
          RETURNING j.id",
    )
    .bind(worker)
    .bind(ids)
    .bind(attempts)
    .bind(seconds(lease))
    .fetch_all(owner)
    .await?)
}

/// Records a failed run of `worker`'s job: queued again at `retry_at`, or dead (keeping `error`)
/// once it used its attempts or when `retry_at` is None (a failure retrying cannot fix).
/// Returns the job's new state, None when the worker no longer held it.
pub async fn fail(
    owner: &PgPool,
    worker: &str,
    claim: Claim,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<Option<String>, DbError> {
    Ok(sqlx::query_scalar(
        r"UPDATE queue.jobs
             SET state = CASE WHEN $4::timestamptz IS NULL OR attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
                 run_at = coalesce($4, run_at), worker = NULL, lease_until = NULL, last_error = $3,
                 finished_at = CASE WHEN $4::timestamptz IS NULL OR attempts >= max_attempts THEN now() END
           WHERE id = $2 AND attempts = $5 AND worker = $1
          RETURNING state",
    )
    .bind(worker)
    .bind(claim.id)
    .bind(error)
    .bind(retry_at)
    .bind(claim.attempt)
    .fetch_optional(owner)
    .await?)
}

/// Gives `worker`'s unstarted or interrupted jobs back (a graceful stop): queued again at once,
/// the attempt not counted.
pub async fn release(owner: &PgPool, worker: &str, claims: &[Claim]) -> Result<u64, DbError> {
    let (ids, attempts) = split(claims);
    let released = sqlx::query(
        r"UPDATE queue.jobs j SET state = 'queued', attempts = j.attempts - 1, worker = NULL, lease_until = NULL
            FROM unnest($2::uuid[], $3::int[]) AS c (id, attempt)
           WHERE j.id = c.id AND j.attempts = c.attempt AND j.worker = $1",
    )
    .bind(worker)
    .bind(ids)
    .bind(attempts)
    .execute(owner)
    .await?;
    Ok(released.rows_affected())
}

/// Jobs whose lease ran out (their worker stopped renewing it: killed, lost, stuck): queued
/// again, or dead once they used their attempts. Returns how many.
pub async fn requeue_expired(owner: &PgPool) -> Result<u64, DbError> {
    let requeued = sqlx::query(
        r"UPDATE queue.jobs
             SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
                 last_error = format('the lease of worker %s ran out during attempt %s', worker, attempts),
                 finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
                 worker = NULL, lease_until = NULL
           WHERE state = 'running' AND lease_until < now()",
    )
    .execute(owner)
    .await?;
    Ok(requeued.rows_affected())
}

/// One job, for operators and tests.
pub async fn get(owner: &PgPool, id: Uuid) -> Result<Option<JobRow>, DbError> {
    Ok(sqlx::query_as(
        r"SELECT id, kind, organization_id, state, attempts, max_attempts, run_at, last_error,
                 created_at, finished_at
            FROM queue.jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(owner)
    .await?)
}

/// The newest jobs (of `state`, when given), at most `limit`.
pub async fn list(owner: &PgPool, state: Option<&str>, limit: i64) -> Result<Vec<JobRow>, DbError> {
    Ok(sqlx::query_as(
        r"SELECT id, kind, organization_id, state, attempts, max_attempts, run_at, last_error,
                 created_at, finished_at
            FROM queue.jobs WHERE $1::text IS NULL OR state = $1
           ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(state)
    .bind(limit)
    .fetch_all(owner)
    .await?)
}

/// Queues a dead or cancelled job again, its attempts reset; false when it is neither.
pub async fn retry(owner: &PgPool, id: Uuid) -> Result<bool, DbError> {
    let done = sqlx::query(
        r"UPDATE queue.jobs SET state = 'queued', attempts = 0, run_at = now(), finished_at = NULL
           WHERE id = $1 AND state IN ('dead', 'cancelled')",
    )
    .bind(id)
    .execute(owner)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Cancels a queued job; false when it is not queued (a running one finishes its attempt).
pub async fn cancel(owner: &PgPool, id: Uuid) -> Result<bool, DbError> {
    let done = sqlx::query(
        r"UPDATE queue.jobs SET state = 'cancelled', finished_at = now()
           WHERE id = $1 AND state = 'queued'",
    )
    .bind(id)
    .execute(owner)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How the queue stands: jobs due and waiting, the oldest one's wait, jobs running.
#[derive(Clone, Debug, FromRow)]
pub struct Depth {
    pub due: i64,
    pub oldest_due_seconds: Option<f64>,
    pub running: i64,
}

pub async fn depth(owner: &PgPool) -> Result<Depth, DbError> {
    Ok(sqlx::query_as(
        r"SELECT count(*) FILTER (WHERE state = 'queued' AND run_at <= now()) AS due,
                 extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'queued' AND run_at <= now()))::float8
                     AS oldest_due_seconds,
                 count(*) FILTER (WHERE state = 'running') AS running
            FROM queue.jobs WHERE state IN ('queued', 'running')",
    )
    .fetch_one(owner)
    .await?)
}

/// A schedule as a worker reads it when due.
#[derive(Clone, Debug, FromRow)]
pub struct DueSchedule {
    pub name: String,
    pub cron: String,
    pub time_zone: String,
    pub kind: String,
    /// The slot due now; None when it was never computed.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The wall-clock time now in the schedule's zone.
    pub local_now: chrono::NaiveDateTime,
}

/// Enabled schedules whose slot is due (or was never computed).
pub async fn due_schedules(owner: &PgPool) -> Result<Vec<DueSchedule>, DbError> {
    Ok(sqlx::query_as(
        r"SELECT name, cron, time_zone, kind, next_run_at, (now() AT TIME ZONE time_zone) AS local_now
            FROM queue.schedules
           WHERE enabled AND (next_run_at IS NULL OR next_run_at <= now())
           ORDER BY name",
    )
    .fetch_all(owner)
    .await?)
}

/// Moves schedule `name` from slot `due` to the instant of wall-clock time `next_local` in its
/// zone, and — when `due` was a slot — enqueues its job (platform, unique per slot) in the same
/// statement. Compare-and-set: of several workers seeing the same slot, one does it. Returns
/// the job's id when this call enqueued one.
pub async fn advance_schedule(
    owner: &PgPool,
    name: &str,
    due: Option<DateTime<Utc>>,
    next_local: chrono::NaiveDateTime,
    max_attempts: i32,
) -> Result<Option<Uuid>, DbError> {
    let job = Uuid::now_v7();
    let enqueued: Option<Option<Uuid>> = sqlx::query_scalar(
        r"WITH advanced AS (
              UPDATE queue.schedules
                 SET next_run_at = ($3::timestamp AT TIME ZONE time_zone),
                     last_run_at = CASE WHEN $2::timestamptz IS NULL THEN last_run_at ELSE now() END,
                     last_job_id = CASE WHEN $2::timestamptz IS NULL THEN last_job_id ELSE $4 END
               WHERE name = $1 AND next_run_at IS NOT DISTINCT FROM $2
              RETURNING kind, payload),
          job AS (
              INSERT INTO queue.jobs (id, kind, payload, unique_key, max_attempts)
              SELECT $4, kind, payload, $1 || '@' || $2::timestamptz, $5 FROM advanced
               WHERE $2::timestamptz IS NOT NULL
              ON CONFLICT DO NOTHING
              RETURNING id)
          SELECT (SELECT id FROM job) FROM advanced",
    )
    .bind(name)
    .bind(due)
    .bind(next_local)
    .bind(job)
    .bind(max_attempts)
    .fetch_optional(owner)
    .await?;
    Ok(enqueued.flatten())
}

/// The instant of wall-clock time `local` in `time_zone` (PostgreSQL's rules: a time skipped
/// by a daylight-saving change moves forward).
pub async fn instant_in_zone(
    owner: &PgPool,
    local: chrono::NaiveDateTime,
    time_zone: &str,
) -> Result<DateTime<Utc>, DbError> {
    Ok(sqlx::query_scalar(r"SELECT $1::timestamp AT TIME ZONE $2")
        .bind(local)
        .bind(time_zone)
        .fetch_one(owner)
        .await?)
}

/// A schedule as operators see it.
#[derive(Clone, Debug, FromRow)]
pub struct ScheduleRow {
    pub name: String,
    pub cron: String,
    pub time_zone: String,
    pub kind: String,
    pub payload: Value,
    pub enabled: bool,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
}

pub async fn schedules(owner: &PgPool) -> Result<Vec<ScheduleRow>, DbError> {
    Ok(sqlx::query_as(
        r"SELECT name, cron, time_zone, kind, payload, enabled, next_run_at, last_run_at
            FROM queue.schedules ORDER BY name",
    )
    .fetch_all(owner)
    .await?)
}

/// Creates a schedule unless one of its name exists (what an operator changed stays); true
/// when created.
pub async fn add_schedule(owner: &PgPool, s: &ScheduleRow) -> Result<bool, DbError> {
    Ok(write_schedule(owner, s, "DO NOTHING").await? == 1)
}

/// Creates or changes a schedule; its next slot is computed again by the next worker to look.
pub async fn set_schedule(owner: &PgPool, s: &ScheduleRow) -> Result<(), DbError> {
    write_schedule(
        owner,
        s,
        r"DO UPDATE SET cron = EXCLUDED.cron, time_zone = EXCLUDED.time_zone, kind = EXCLUDED.kind,
                        payload = EXCLUDED.payload, enabled = EXCLUDED.enabled, next_run_at = NULL",
    )
    .await?;
    Ok(())
}

/// Inserts `s`, `on_conflict` deciding what happens to a schedule of that name; rows written.
async fn write_schedule(
    owner: &PgPool,
    s: &ScheduleRow,
    on_conflict: &'static str,
) -> Result<u64, DbError> {
    let written = sqlx::query(&format!(
        r"INSERT INTO queue.schedules (name, cron, time_zone, kind, payload, enabled)
          VALUES ($1, $2, $3, $4, $5, $6)
          ON CONFLICT (name) {on_conflict}"
    ))
    .bind(&s.name)
    .bind(&s.cron)
    .bind(&s.time_zone)
    .bind(&s.kind)
    .bind(&s.payload)
    .bind(s.enabled)
    .execute(owner)
    .await?;
    Ok(written.rows_affected())
}

/// The job that emails an alert to the operator (payload `{"key": …}`).
pub const ALERT_KIND: &str = "operator.alert";

/// A problem of the platform for the operator; `key` names its episode (the same while the
/// problem lasts).
#[derive(Clone, Debug)]
pub struct Alert {
    pub key: String,
    pub subject: String,
    pub body: String,
}

/// Raises `alert` once per key: records it and queues its email in one transaction; false when
/// that episode was already raised (by this worker or another).
pub async fn raise_alert(owner: &PgPool, alert: &Alert) -> Result<bool, DbError> {
    let mut tx = owner.begin().await?;
    let raised = sqlx::query(
        r"INSERT INTO queue.alerts (key, subject, body) VALUES ($1, $2, $3)
          ON CONFLICT (key) DO NOTHING",
    )
    .bind(&alert.key)
    .bind(&alert.subject)
    .bind(&alert.body)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if raised {
        let job = NewJob {
            unique_key: Some(alert.key.clone()),
            max_attempts: 20,
            ..NewJob::new(ALERT_KIND, serde_json::json!({ "key": alert.key }))
        };
        insert(&mut tx, None, None, &job).await?;
    }
    tx.commit().await?;
    Ok(raised)
}
