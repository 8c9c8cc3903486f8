//! `bench jobs`: no-op jobs completed per second by 1, 2 and 8 workers against the floor of any
//! PostgreSQL queue (the same number of loops sending `DELETE … RETURNING` of one row directly),
//! and enqueue-to-start latency with LISTEN/NOTIFY and with polling only. Workers run one job at
//! a time (the plain loops' shape) and with the default concurrency (as `tenantry worker` runs).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tenantry_db::pool::pool_options;
use tenantry_db::queue;
use tenantry_db::{ConnectionUrls, OwnerPool, RuntimePool};
use tenantry_server::jobs::{JobSpec, Registry, Worker, WorkerConfig};
use tokio::sync::{mpsc, oneshot, Notify};
use uuid::Uuid;

use super::Settings;
use crate::AnyError;

const NOOP: JobSpec = JobSpec {
    kind: "bench.noop",
    max_attempts: 1,
};
/// Jobs per measured batch.
const BATCH: i64 = 5_000;

pub async fn run(urls: &ConnectionUrls, s: &Settings) -> Result<(), AnyError> {
    let owner = OwnerPool::connect(&urls.owner).await?;
    let direct = pool_options(8).connect(&urls.owner).await?;
    let runtime = RuntimePool::open(urls, 2).await?;
    sqlx::raw_sql(
        r"CREATE TABLE IF NOT EXISTS bench_plain_queue (id bigserial PRIMARY KEY, payload jsonb NOT NULL);
          TRUNCATE bench_plain_queue;
          DELETE FROM queue.jobs WHERE kind LIKE 'bench.%';",
    )
    .execute(&owner.0)
    .await?;

    println!(
        "## no-op jobs completed per second ({BATCH} per batch, {} rounds)",
        s.rounds
    );
    let default = WorkerConfig::default().concurrency;
    println!("| workers (loops) | ours, 1 job at a time | ours, {default} at a time (default) | the queue's statement in a loop | plain DELETE … RETURNING | ours (1) / plain | ours ({default}) / plain |");
    println!("|---|---|---|---|---|---|---|");
    for loops in [1_usize, 2, 8] {
        let (mut single, mut batched, mut statements, mut plain) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..s.rounds {
            single.push(ours(&owner, &urls.owner, &runtime, loops, 1).await?);
            batched.push(ours(&owner, &urls.owner, &runtime, loops, default).await?);
            statements.push(statement_loops(&owner, loops).await?);
            plain.push(plain_loops(&direct, loops).await?);
        }
        let (single, batched, statements, plain) = (
            median(single),
            median(batched),
            median(statements),
            median(plain),
        );
        println!(
            "| {loops} | {single:.0} | {batched:.0} | {statements:.0} | {plain:.0} | **{:.2}** | **{:.2}** |",
            single / plain,
            batched / plain
        );
    }

    println!("\n## enqueue-to-start latency (one worker, jobs enqueued one at a time)");
    println!("| wake-up | samples | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    for (name, listen, samples) in [
        ("LISTEN/NOTIFY", true, 200),
        ("polling every 2 s only", false, 40),
    ] {
        let mut latencies = latency(&owner, &runtime, listen, samples).await?;
        latencies.sort_by(f64::total_cmp);
        println!(
            "| {name} | {samples} | {:.1} | {:.1} |",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    runtime.close().await;
    direct.close().await;
    owner.0.close().await;
    Ok(())
}

fn config(concurrency: usize, listen: bool) -> WorkerConfig {
    WorkerConfig {
        concurrency,
        listen,
        schedules: None,
        ..WorkerConfig::default()
    }
}

/// Jobs per second: `loops` workers of `concurrency` each drain a batch of no-op jobs.
async fn ours(
    owner: &OwnerPool,
    urls_owner: &str,
    runtime: &RuntimePool,
    loops: usize,
    concurrency: usize,
) -> Result<f64, AnyError> {
    insert_noops(owner).await?;
    // The handlers count their runs (polling the table would load the database measured).
    let ran = Arc::new(AtomicI64::new(0));
    let all_ran = Arc::new(Notify::new());
    let started = Instant::now();
    let mut stops = Vec::new();
    let mut runs = Vec::new();
    for _ in 0..loops {
        // Each worker its own owner pool, as each `tenantry worker` process would have.
        let pool = OwnerPool::connect(urls_owner).await?;
        let (ran, all_ran) = (ran.clone(), all_ran.clone());
        let registry = Registry::default().register(NOOP, move |_run| {
            if ran.fetch_add(1, Ordering::Relaxed) + 1 == BATCH {
                all_ran.notify_one();
            }
            async { Ok(()) }
        });
        let worker = Worker::new(pool, runtime.clone(), registry, config(concurrency, true));
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        runs.push(tokio::spawn(worker.run(async {
            let _ = stopped.await;
        })));
    }
    all_ran.notified().await;
    // Stopping records the last successes: the time counts until every job is deleted.
    for stop in stops {
        let _ = stop.send(());
    }
    for run in runs {
        run.await??;
    }
    let elapsed = started.elapsed();
    let left: i64 =
        sqlx::query_scalar(r"SELECT count(*) FROM queue.jobs WHERE kind = 'bench.noop'")
            .fetch_one(&owner.0)
            .await?;
    if left != 0 {
        return Err(format!("{left} no-op jobs were not recorded as done").into());
    }
    sqlx::query(r"DELETE FROM queue.jobs WHERE kind = 'bench.noop'")
        .execute(&owner.0)
        .await?;
    Ok(BATCH as f64 / elapsed.as_secs_f64())
}

/// Jobs per second through the worker's statement alone, no worker around it: `loops` loops
/// each record the job they hold as done and claim the next, on a worker's bookkeeping pool.
async fn statement_loops(owner: &OwnerPool, loops: usize) -> Result<f64, AnyError> {
    insert_noops(owner).await?;
    let pool = queue::bookkeeping_pool(owner, loops as u32);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..loops {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let (worker, kinds) = (format!("loop-{n}"), vec![NOOP.kind.to_string()]);
            let mut held = Vec::new();
            loop {
                let round = queue::complete_and_claim(
                    &pool,
                    &worker,
                    &held,
                    &kinds,
                    1,
                    Duration::from_secs(60),
                )
                .await?;
                if round.claimed.is_empty() {
                    return Ok::<_, tenantry_db::DbError>(());
                }
                held = round.claimed.iter().map(|job| job.claim()).collect();
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    pool.close().await;
    Ok(BATCH as f64 / elapsed.as_secs_f64())
}

/// Rows per second: `loops` connections each delete one row at a time, oldest first, skipping
/// locked rows, until the table is empty (the least any PostgreSQL queue can do per job).
async fn plain_loops(direct: &PgPool, loops: usize) -> Result<f64, AnyError> {
    sqlx::query(r"INSERT INTO bench_plain_queue (payload) SELECT '{}' FROM generate_series(1, $1)")
        .bind(BATCH)
        .execute(direct)
        .await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..loops {
        let direct = direct.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let taken: Option<i64> = sqlx::query_scalar(
                    r"DELETE FROM bench_plain_queue
                       WHERE id = (SELECT id FROM bench_plain_queue ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
                      RETURNING id",
                )
                .fetch_optional(&direct)
                .await?;
                if taken.is_none() {
                    return Ok::<_, sqlx::Error>(());
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(BATCH as f64 / started.elapsed().as_secs_f64())
}

/// Milliseconds from each job's commit to its handler's start, `samples` jobs one at a time.
async fn latency(
    owner: &OwnerPool,
    runtime: &RuntimePool,
    listen: bool,
    samples: usize,
) -> Result<Vec<f64>, AnyError> {
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<(Uuid, Instant)>();
    let started_tx = Arc::new(Mutex::new(started_tx));
    let registry = Registry::default().register(NOOP, move |run| {
        let started_tx = started_tx.clone();
        async move {
            let now = Instant::now();
            if let Ok(tx) = started_tx.lock() {
                let _ = tx.send((run.job.id, now));
            }
            Ok(())
        }
    });
    let worker = Worker::new(owner.clone(), runtime.clone(), registry, config(1, listen));
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    // Let it start (and LISTEN) before the first job.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::with_capacity(samples);
    let mut seed: u64 = 16;
    for _ in 0..samples {
        let enqueued = Instant::now();
        let id = queue::enqueue_platform(owner, &NOOP.job(serde_json::json!({})))
            .await?
            .ok_or("enqueue")?;
        loop {
            let (started, at) = started_rx.recv().await.ok_or("the worker stopped")?;
            if started == id {
                latencies.push(at.duration_since(enqueued).as_secs_f64() * 1000.0);
                break;
            }
        }
        // Not in step with the poll: a pseudo-random pause of 0–50 ms.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis((seed >> 33) % 50)).await;
    }
    let _ = stop.send(());
    running.await??;
    sqlx::query(r"DELETE FROM queue.jobs WHERE kind = 'bench.noop'")
        .execute(&owner.0)
        .await?;
    Ok(latencies)
}

/// A batch of no-op jobs, none left from before.
async fn insert_noops(owner: &OwnerPool) -> Result<(), AnyError> {
    sqlx::query(r"DELETE FROM queue.jobs WHERE kind = 'bench.noop'")
        .execute(&owner.0)
        .await?;
    sqlx::query(
        r"INSERT INTO queue.jobs (kind, max_attempts) SELECT 'bench.noop', 1 FROM generate_series(1, $1)",
    )
    .bind(BATCH)
    .execute(&owner.0)
    .await?;
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}
