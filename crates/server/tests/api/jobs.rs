//! The job queue and its worker against real PostgreSQL: jobs of rolled-back transactions never
//! run, no job runs twice at once, unique keys, retries that back off and end dead, leases that
//! outlive a dead worker, tenant jobs under RLS as their actor, and the runtime role kept out.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tenantry_db::queue::{self, NewJob};
use tenantry_db::RequestContext;
use tenantry_server::jobs::{self, JobError, JobSpec, Registry, Worker, WorkerConfig};
use tenantry_server::kernel::org_tx::OrgTx;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::helpers::{until, TestApp};

const RECORD: JobSpec = JobSpec {
    kind: "test.record",
    max_attempts: 3,
};

/// Settings that make a test quick: short leases, fast polls and backoffs.
fn quick() -> WorkerConfig {
    WorkerConfig {
        concurrency: 4,
        lease: Duration::from_secs(2),
        poll: Duration::from_millis(100),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        grace: Duration::from_secs(5),
        // The migrated default schedules stay out of these tests (a slot may fall within one).
        schedules: None,
        listen: true,
        report: Duration::from_secs(60),
    }
}

/// A running worker, stopped (gracefully) by [`Running::stop`].
struct Running {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.done.await.expect("the worker stopped");
    }
}

async fn start(app: &TestApp, registry: Registry, config: WorkerConfig) -> Running {
    let owner = app.db.owner().await;
    let worker = Worker::new(owner, app.db.runtime.clone(), registry, config);
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        worker
            .run(async {
                let _ = stopped.await;
            })
            .await
            .expect("worker");
    });
    Running { stop, done }
}

async fn states(app: &TestApp) -> HashMap<String, i64> {
    let owner = app.db.owner().await;
    sqlx::query_as("SELECT state, count(*) FROM queue.jobs GROUP BY state")
        .fetch_all(&owner.0)
        .await
        .expect("states")
        .into_iter()
        .collect()
}

/// Each run's payload `n` and attempt number.
type Runs = Arc<Mutex<Vec<(i64, i32)>>>;

/// A registry whose one kind records its runs.
fn recording() -> (Registry, Runs) {
    let runs: Runs = Arc::default();
    let registry = Registry::default().register(RECORD, {
        let runs = runs.clone();
        move |run| {
            let runs = runs.clone();
            async move {
                let n = run.job.payload["n"].as_i64().unwrap_or(-1);
                runs.lock().expect("runs").push((n, run.job.attempts));
                Ok(())
            }
        }
    });
    (registry, runs)
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_runs() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let ctx = RequestContext::user(alice.id);
    let mut rolled_back = OrgTx::begin(&app.db.runtime, &ctx, alice.org)
        .await
        .expect("begin");
    queue::enqueue(&mut rolled_back, alice.org, &RECORD.job(json!({"n": 1})))
        .await
        .expect("enqueue");
    drop(rolled_back);
    let mut committed = OrgTx::begin(&app.db.runtime, &ctx, alice.org)
        .await
        .expect("begin");
    queue::enqueue(&mut committed, alice.org, &RECORD.job(json!({"n": 2})))
        .await
        .expect("enqueue");
    committed.commit().await.expect("commit");

    let (registry, runs) = recording();
    let worker = start(&app, registry, quick()).await;
    until("the committed job ran", || {
        !runs.lock().expect("runs").is_empty()
    })
    .await;
    worker.stop().await;
    assert_eq!(*runs.lock().expect("runs"), [(2, 1)]);
    assert_eq!(states(&app).await, HashMap::new(), "it succeeded: deleted");
}

#[tokio::test]
async fn two_workers_never_run_one_job_at_once_and_run_each_once() {
    let app = TestApp::spawn().await;
    let owner = app.db.owner().await;
    for n in 0..200 {
        queue::enqueue_platform(&owner, &RECORD.job(json!({"n": n})))
            .await
            .expect("enqueue");
    }
    let in_flight: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    let overlaps = Arc::new(Mutex::new(0));
    let runs: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let registry = Registry::default().register(RECORD, {
        let (in_flight, overlaps, runs) = (in_flight.clone(), overlaps.clone(), runs.clone());
        move |run| {
            let (in_flight, overlaps, runs) = (in_flight.clone(), overlaps.clone(), runs.clone());
            async move {
                if !in_flight.lock().expect("set").insert(run.job.id) {
                    *overlaps.lock().expect("overlaps") += 1;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                in_flight.lock().expect("set").remove(&run.job.id);
                runs.lock().expect("runs").push(run.job.id);
                Ok(())
            }
        }
    });
    let first = start(&app, registry.clone(), quick()).await;
    let second = start(&app, registry, quick()).await;
    until("all 200 ran", || runs.lock().expect("runs").len() >= 200).await;
    first.stop().await;
    second.stop().await;
    assert_eq!(*overlaps.lock().expect("overlaps"), 0);
    let runs = runs.lock().expect("runs").clone();
    let distinct: HashSet<Uuid> = runs.iter().copied().collect();
    assert_eq!((runs.len(), distinct.len()), (200, 200), "each job once");
    assert_eq!(states(&app).await, HashMap::new(), "all succeeded: deleted");
}

#[tokio::test]
async fn a_unique_key_keeps_a_duplicate_out_while_one_is_pending() {
    let app = TestApp::spawn().await;
    let owner = app.db.owner().await;
    let job = NewJob {
        unique_key: Some("reminder:42:24h".into()),
        ..RECORD.job(json!({"n": 1}))
    };
    let first = queue::enqueue_platform(&owner, &job)
        .await
        .expect("enqueue");
    let again = queue::enqueue_platform(&owner, &job)
        .await
        .expect("enqueue");
    assert!(first.is_some());
    assert_eq!(again, None, "a pending job with that key exists");

    let (registry, runs) = recording();
    let worker = start(&app, registry, quick()).await;
    until("the job ran", || !runs.lock().expect("runs").is_empty()).await;
    worker.stop().await;
    assert!(
        queue::enqueue_platform(&owner, &job)
            .await
            .expect("enqueue")
            .is_some(),
        "once it ran, the key is free again"
    );
}

#[tokio::test]
async fn a_failing_job_backs_off_and_ends_dead_with_its_error() {
    let app = TestApp::spawn().await;
    let owner = app.db.owner().await;
    const FLAKY: JobSpec = JobSpec {
        kind: "test.flaky",
        max_attempts: 3,
    };
    const BROKEN: JobSpec = JobSpec {
        kind: "test.broken",
        max_attempts: 5,
    };
    const PANICS: JobSpec = JobSpec {
        kind: "test.panics",
        max_attempts: 2,
    };
    let attempts: Arc<Mutex<Vec<(String, i32)>>> = Arc::default();
    let registry = Registry::default()
        .register(FLAKY, {
            let attempts = attempts.clone();
            move |run| {
                let attempts = attempts.clone();
                async move {
                    attempts
                        .lock()
                        .expect("attempts")
                        .push(("flaky".into(), run.job.attempts));
                    Err(JobError::Retry(format!(
                        "server away (attempt {})",
                        run.job.attempts
                    )))
                }
            }
        })
        .register(BROKEN, {
            let attempts = attempts.clone();
            move |run| {
                let attempts = attempts.clone();
                async move {
                    attempts
                        .lock()
                        .expect("attempts")
                        .push(("broken".into(), run.job.attempts));
                    Err(JobError::Fatal("the payload names no recipient".into()))
                }
            }
        })
        .register(PANICS, |run| async move {
            let slot: Option<i64> = run.job.payload["slot"].as_i64();
            // A bug in a handler: the worker survives it, the attempt counts as failed.
            let _ = slot.expect("a slot in the payload");
            Ok(())
        });
    let flaky = queue::enqueue_platform(&owner, &FLAKY.job(json!({})))
        .await
        .expect("enqueue")
        .expect("id");
    let broken = queue::enqueue_platform(&owner, &BROKEN.job(json!({})))
        .await
        .expect("enqueue")
        .expect("id");
    let panics = queue::enqueue_platform(&owner, &PANICS.job(json!({})))
        .await
        .expect("enqueue")
        .expect("id");
    let worker = start(&app, registry, quick()).await;
    let mut dead = Vec::new();
    until_ended(&app, &[flaky, broken, panics], &mut dead).await;
    worker.stop().await;
    let [Some(flaky_job), Some(broken_job), Some(panicking_job)] = &dead[..] else {
        panic!("all three stay, dead: {dead:?}");
    };
    assert_eq!(
        (
            panicking_job.state.as_str(),
            panicking_job.attempts,
            panicking_job.last_error.as_deref()
        ),
        (
            "dead",
            2,
            Some("the handler panicked: a slot in the payload")
        ),
        "a panic is a failed attempt, retried like any other"
    );
    assert_eq!(
        (flaky_job.state.as_str(), flaky_job.attempts),
        ("dead", 3),
        "retried up to its kind's maximum"
    );
    assert_eq!(
        flaky_job.last_error.as_deref(),
        Some("server away (attempt 3)")
    );
    assert!(flaky_job.finished_at.is_some());
    assert_eq!(
        (broken_job.state.as_str(), broken_job.attempts),
        ("dead", 1),
        "a failure retrying cannot fix is not retried"
    );
    let mut seen = attempts.lock().expect("attempts").clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("broken".to_string(), 1),
            ("flaky".to_string(), 1),
            ("flaky".to_string(), 2),
            ("flaky".to_string(), 3)
        ]
    );
}

#[tokio::test]
async fn a_job_whose_worker_died_runs_again_once_its_lease_runs_out() {
    let app = TestApp::spawn().await;
    let owner = app.db.owner().await;
    let id = queue::enqueue_platform(&owner, &RECORD.job(json!({"n": 7})))
        .await
        .expect("enqueue")
        .expect("id");
    // A worker claims it and dies without a word: its lease is all that is left of it.
    let claimed = claim(&owner.0, "dead-worker", 10, Duration::from_secs(1)).await;
    assert_eq!(claimed.len(), 1);

    let (registry, runs) = recording();
    let worker = start(&app, registry, quick()).await;
    until("the job ran again", || {
        !runs.lock().expect("runs").is_empty()
    })
    .await;
    worker.stop().await;
    assert_eq!(*runs.lock().expect("runs"), [(7, 2)], "its second attempt");
    let job = queue::get(&owner.0, id).await.expect("get");
    assert!(job.is_none(), "it succeeded: deleted, {job:?}");
}

/// Claims up to `limit` test jobs for `worker`, finishing none.
async fn claim(
    owner: &sqlx::PgPool,
    worker: &str,
    limit: i64,
    lease: Duration,
) -> Vec<queue::ClaimedJob> {
    queue::complete_and_claim(owner, worker, &[], &[RECORD.kind.to_string()], limit, lease)
        .await
        .expect("claim")
        .claimed
}

/// Records `claim` as succeeded, claiming nothing; how many jobs that deleted.
async fn complete(owner: &sqlx::PgPool, worker: &str, claim: queue::Claim) -> u64 {
    queue::complete_and_claim(owner, worker, &[claim], &[], 0, Duration::from_secs(60))
        .await
        .expect("complete")
        .completed
}

#[tokio::test]
async fn a_tenant_job_acts_as_its_user_under_rls_and_the_audit_trail_names_it() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(
        &alice,
        alice.org,
        &bob,
        tenantry_server::kernel::access::Role::Member,
    )
    .await;
    const ADD: JobSpec = JobSpec {
        kind: "test.add_customer",
        max_attempts: 3,
    };
    let registry = Registry::default().register(ADD, |run| async move {
        let mut tx = run.org_tx().await?;
        let org = tx.org();
        sqlx::query("INSERT INTO customers (organization_id, name) VALUES ($1, $2)")
            .bind(org)
            .bind(run.job.payload["name"].as_str().unwrap_or_default())
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(())
    });
    let mut ids = Vec::new();
    for (user, name) in [
        (&alice, "Added by alice's job"),
        (&bob, "Added by bob's job"),
    ] {
        let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(user.id), alice.org)
            .await
            .expect("begin");
        let id = queue::enqueue(&mut tx, alice.org, &ADD.job(json!({"name": name})))
            .await
            .expect("enqueue")
            .expect("id");
        tx.commit().await.expect("commit");
        ids.push(id);
    }
    // Bob leaves before his job runs: it may do no more than he could now, which is nothing.
    let owner = app.db.owner().await;
    sqlx::query("DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2")
        .bind(alice.org)
        .bind(bob.id)
        .execute(&owner.0)
        .await
        .expect("bob leaves");

    let worker = start(&app, registry, quick()).await;
    let mut ended = Vec::new();
    until_ended(&app, &ids, &mut ended).await;
    worker.stop().await;
    assert!(ended[0].is_none(), "alice's job succeeded: {:?}", ended[0]);
    let bobs = ended[1].as_ref().expect("bob's job stays");
    assert_eq!(bobs.state, "dead", "{:?}", bobs.last_error);
    assert!(
        bobs.last_error
            .as_deref()
            .is_some_and(|e| e.contains("row-level security")),
        "{:?}",
        bobs.last_error
    );
    let audited: Vec<(Option<Uuid>, Option<String>)> = sqlx::query_as(
        r"SELECT user_id, request_id FROM audit.events
           WHERE entity_type = 'customers' AND new_data ->> 'name' LIKE 'Added by%'",
    )
    .fetch_all(&owner.0)
    .await
    .expect("audit");
    assert_eq!(
        audited,
        [(Some(alice.id), Some(format!("job:{}", ids[0])))],
        "one customer, by alice, through the job"
    );
}

/// Waits until every job of `ids` succeeded (None: deleted) or is dead, and collects them.
async fn until_ended(app: &TestApp, ids: &[Uuid], ended: &mut Vec<Option<queue::JobRow>>) {
    let owner = app.db.owner().await;
    for _ in 0..400 {
        ended.clear();
        for id in ids {
            ended.push(queue::get(&owner.0, *id).await.expect("get"));
        }
        if ended
            .iter()
            .all(|j| j.as_ref().is_none_or(|j| j.state == "dead"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the jobs did not end: {ended:?}");
}

#[tokio::test]
async fn the_runtime_role_only_enqueues_for_its_organization_as_its_user() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let owner = app.db.owner().await;
    // A platform job with a secret in it.
    queue::enqueue_platform(
        &owner,
        &RECORD.job(json!({"link": "https://example.com/secret"})),
    )
    .await
    .expect("enqueue");
    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(alice.id), alice.org)
        .await
        .expect("begin");
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM queue.jobs")
        .fetch_one(tx.conn())
        .await
        .expect("count");
    assert_eq!(visible, 0, "no job is visible to the runtime role");
    drop(tx);
    let attempts = [
        ("read a payload", "SELECT payload FROM queue.jobs".to_string()),
        ("cancel a job", "UPDATE queue.jobs SET state = 'cancelled'".to_string()),
        ("delete the jobs", "DELETE FROM queue.jobs".to_string()),
        (
            "enqueue for another organization",
            format!(
                "INSERT INTO queue.jobs (kind, organization_id, actor_id) VALUES ('test.record', '{}', '{}')",
                bob.org, alice.id
            ),
        ),
        (
            "enqueue as another user",
            format!(
                "INSERT INTO queue.jobs (kind, organization_id, actor_id) VALUES ('test.record', '{}', '{}')",
                alice.org, bob.id
            ),
        ),
        (
            "enqueue a job ahead of platform work",
            format!(
                "INSERT INTO queue.jobs (kind, organization_id, actor_id, priority) VALUES ('test.record', '{}', '{}', 10)",
                alice.org, alice.id
            ),
        ),
        (
            "enqueue a job with endless attempts",
            format!(
                "INSERT INTO queue.jobs (kind, organization_id, actor_id, max_attempts) VALUES ('test.record', '{}', '{}', 100)",
                alice.org, alice.id
            ),
        ),
        (
            "enqueue a job already running",
            format!(
                "INSERT INTO queue.jobs (kind, organization_id, actor_id, state, worker, lease_until)
                 VALUES ('test.record', '{}', '{}', 'running', 'w', now())",
                alice.org, alice.id
            ),
        ),
    ];
    for (what, sql) in attempts {
        let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(alice.id), alice.org)
            .await
            .expect("begin");
        let result = sqlx::raw_sql(&sql).execute(tx.conn()).await;
        assert!(result.is_err(), "the runtime role could {what}");
    }
    assert_eq!(
        states(&app).await,
        HashMap::from([("queued".into(), 1)]),
        "nothing changed"
    );
}

#[tokio::test]
async fn a_stopping_worker_gives_back_the_jobs_it_could_not_finish() {
    let app = TestApp::spawn().await;
    let owner = app.db.owner().await;
    const SLOW: JobSpec = JobSpec {
        kind: "test.slow",
        max_attempts: 3,
    };
    let registry = Registry::default().register(SLOW, |_run| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    });
    let id = queue::enqueue_platform(&owner, &SLOW.job(json!({})))
        .await
        .expect("enqueue")
        .expect("id");
    let worker = start(
        &app,
        registry,
        WorkerConfig {
            grace: Duration::from_millis(200),
            ..quick()
        },
    )
    .await;
    let mut started = false;
    for _ in 0..200 {
        let job = queue::get(&owner.0, id).await.expect("get").expect("job");
        if job.state == "running" {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(started, "the worker took the job");
    worker.stop().await;
    let job = queue::get(&owner.0, id).await.expect("get").expect("job");
    assert_eq!(
        (job.state.as_str(), job.attempts),
        ("queued", 0),
        "queued again at once, the interrupted attempt not counted"
    );
}

#[tokio::test]
async fn a_schedule_fires_once_per_slot_with_three_workers() {
    let app = TestApp::spawn().await;
    let owner = app.db.owner().await;
    sqlx::query(
        r#"INSERT INTO queue.schedules (name, cron, time_zone, kind, payload)
           VALUES ('new-year', '0 0 1 1 *', 'Europe/Berlin', 'test.record', '{"n": 1}')"#,
    )
    .execute(&owner.0)
    .await
    .expect("schedule");
    // Its real slot comes once a year, so only the two slots made due by hand below fire (a
    // minute schedule fired a third time whenever the test ran across a minute boundary).
    // Only this schedule: the migrated upkeep ones wait for their slots far away.
    sqlx::query("UPDATE queue.schedules SET enabled = false WHERE name <> 'new-year'")
        .execute(&owner.0)
        .await
        .expect("others off");
    let (registry, runs) = recording();
    let config = WorkerConfig {
        schedules: Some(Duration::from_millis(50)),
        ..quick()
    };
    let workers = [
        start(&app, registry.clone(), config.clone()).await,
        start(&app, registry.clone(), config.clone()).await,
        start(&app, registry, config).await,
    ];
    // The first look computes the next slot (no job); then two slots are made due by hand.
    let next_slot = || async {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT next_run_at FROM queue.schedules WHERE name = 'new-year'",
        )
        .fetch_one(&app.db.owner().await.0)
        .await
        .expect("next")
    };
    for _ in 0..100 {
        if next_slot().await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = next_slot().await.expect("a slot was computed");
    assert!(first > chrono::Utc::now(), "the next slot is ahead");
    for slot in 1..=2 {
        sqlx::query(
            "UPDATE queue.schedules SET next_run_at = now() - interval '1 second' WHERE name = 'new-year'",
        )
        .execute(&owner.0)
        .await
        .expect("due");
        until("the slot ran", || runs.lock().expect("runs").len() >= slot).await;
        // Every worker looked at the schedule a few more times meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for worker in workers {
        worker.stop().await;
    }
    assert_eq!(runs.lock().expect("runs").len(), 2, "one job per slot");
    let (jobs, last): (i64, Option<Uuid>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM queue.jobs), (SELECT last_job_id FROM queue.schedules WHERE name = 'new-year')",
    )
    .fetch_one(&owner.0)
    .await
    .expect("jobs");
    assert_eq!(jobs, 0, "both succeeded: deleted");
    assert!(last.is_some());
}

#[tokio::test]
async fn a_schedule_keeps_its_wall_clock_time_across_daylight_saving() {
    let app = TestApp::spawn().await;
    let owner = app.db.owner().await;
    // 09:00 in Berlin every day: 08:00 UTC before the change of 29 March 2026, 07:00 after.
    let local = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("time");
    let mut instants = Vec::new();
    for now in ["2026-03-27 10:00", "2026-03-28 10:00"] {
        let next =
            tenantry_server::jobs::schedule::next_local("0 9 * * *", local(now)).expect("next");
        instants.push(
            queue::instant_in_zone(&owner.0, next, "Europe/Berlin")
                .await
                .expect("instant")
                .to_rfc3339(),
        );
    }
    assert_eq!(
        instants,
        ["2026-03-28T08:00:00+00:00", "2026-03-29T07:00:00+00:00"]
    );
    // 02:30 does not exist on 29 March in Berlin: the slot moves to 03:30 CEST (01:30 UTC).
    let skipped = queue::instant_in_zone(&owner.0, local("2026-03-29 02:30"), "Europe/Berlin")
        .await
        .expect("instant");
    assert_eq!(skipped.to_rfc3339(), "2026-03-29T01:30:00+00:00");
    assert!(
        tenantry_server::jobs::schedule::next_local("61 * * * *", local("2026-03-28 10:00"))
            .is_err(),
        "a wrong expression is an error, not a guess"
    );
}

#[tokio::test]
async fn the_upkeep_job_removes_what_expired_and_keeps_what_serves() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let owner = app.db.owner().await;
    sqlx::raw_sql(&format!(
        r"INSERT INTO sessions (user_id, token_hash, expires_at, last_seen_at)
          VALUES ('{user}', sha256('ended'), now() - interval '2 days', now() - interval '3 days'),
                 ('{user}', sha256('idle'), now() + interval '20 days', now() - interval '9 days');
          INSERT INTO app.sign_in_failures (email, occurred_at)
          VALUES ('old@example.com', now() - interval '2 days'), ('new@example.com', now());
          INSERT INTO app.oidc_flows (state_hash, nonce, code_verifier, created_at)
          VALUES (sha256('abandoned'), 'n', 'v', now() - interval '1 hour'),
                 (sha256('under way'), 'n', 'v', now());
          INSERT INTO queue.jobs (kind, state, finished_at)
          VALUES ('test.record', 'cancelled', now() - interval '8 days'),
                 ('test.record', 'dead', now() - interval '8 days'),
                 ('test.record', 'cancelled', now() - interval '1 day');",
        user = alice.id
    ))
    .execute(&owner.0)
    .await
    .expect("expired rows");
    let id = queue::enqueue_platform(&owner, &jobs::upkeep::PURGE_EXPIRED.job(json!({})))
        .await
        .expect("enqueue")
        .expect("id");
    let worker = start(&app, jobs::registry(None, None, None), quick()).await;
    let mut ended = Vec::new();
    until_ended(&app, &[id], &mut ended).await;
    worker.stop().await;
    assert!(ended[0].is_none(), "it succeeded: {:?}", ended[0]);
    let left: (i64, Vec<String>, i64, Vec<String>) = sqlx::query_as(
        r"SELECT (SELECT count(*) FROM sessions WHERE user_id = $1),
                 (SELECT array_agg(email) FROM app.sign_in_failures),
                 (SELECT count(*) FROM app.oidc_flows),
                 (SELECT array_agg(state || ':' || (finished_at > now() - interval '2 days') ORDER BY state)
                    FROM queue.jobs WHERE kind = 'test.record')",
    )
    .bind(alice.id)
    .fetch_one(&owner.0)
    .await
    .expect("left");
    assert_eq!(
        left,
        (
            1,
            vec!["new@example.com".to_string()],
            1,
            vec!["cancelled:true".to_string(), "dead:false".to_string()]
        ),
        "alice's live session, the recent failure, the flow under way, the recent and the dead job stay"
    );
    // And alice's live session still works.
    let (status, _) = app.call(reqwest::Method::GET, &alice, "/v1/me", None).await;
    assert_eq!(status, reqwest::StatusCode::OK);
}

#[tokio::test]
async fn a_run_that_lost_its_lease_cannot_finish_the_job_claimed_again() {
    let app = TestApp::spawn().await;
    let owner = app.db.owner().await;
    let id = queue::enqueue_platform(&owner, &RECORD.job(json!({})))
        .await
        .expect("enqueue")
        .expect("id");
    let first = claim(&owner.0, "w", 1, Duration::from_millis(200))
        .await
        .remove(0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(queue::requeue_expired(&owner.0).await.expect("requeue"), 1);
    // The same worker claims it again: only the second run's claim holds now.
    let second = claim(&owner.0, "w", 1, Duration::from_secs(60))
        .await
        .remove(0);
    assert_eq!((second.id, second.attempts), (id, 2));
    assert_eq!(complete(&owner.0, "w", first.claim()).await, 0);
    assert!(
        queue::renew(&owner.0, "w", &[first.claim()], Duration::from_secs(60))
            .await
            .expect("renew")
            .is_empty()
    );
    assert_eq!(
        queue::release(&owner.0, "w", &[first.claim()])
            .await
            .expect("release"),
        0
    );
    let job = queue::get(&owner.0, id).await.expect("get").expect("job");
    assert_eq!(
        (job.state.as_str(), job.attempts),
        ("running", 2),
        "the second run's, untouched"
    );
    assert_eq!(complete(&owner.0, "w", second.claim()).await, 1);
    assert!(queue::get(&owner.0, id).await.expect("get").is_none());
}

#[tokio::test]
async fn a_run_whose_lease_was_taken_is_stopped() {
    let app = TestApp::spawn().await;
    let owner = app.db.owner().await;
    const LONG: JobSpec = JobSpec {
        kind: "test.long",
        max_attempts: 3,
    };
    /// Says when the run it lives in ends, finished or stopped.
    struct Ended(Arc<Mutex<Option<&'static str>>>);
    impl Drop for Ended {
        fn drop(&mut self) {
            let mut ended = self.0.lock().expect("ended");
            ended.get_or_insert("stopped");
        }
    }
    let ended: Arc<Mutex<Option<&'static str>>> = Arc::default();
    let registry = Registry::default().register(LONG, {
        let ended = ended.clone();
        move |_run| {
            let guard = Ended(ended.clone());
            async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                guard.0.lock().expect("ended").replace("finished");
                Ok(())
            }
        }
    });
    let id = queue::enqueue_platform(&owner, &LONG.job(json!({})))
        .await
        .expect("enqueue")
        .expect("id");
    let worker = start(&app, registry, quick()).await;
    let mut taken = false;
    for _ in 0..200 {
        // As if the worker had stalled past its lease and another had claimed the job.
        taken = sqlx::query(
            "UPDATE queue.jobs SET worker = 'another', attempts = attempts + 1 WHERE id = $1 AND state = 'running'",
        )
        .bind(id)
        .execute(&owner.0)
        .await
        .expect("take")
        .rows_affected()
            == 1;
        if taken {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(taken, "the worker claimed the job");
    until("the run was stopped", || {
        ended.lock().expect("ended").is_some()
    })
    .await;
    assert_eq!(*ended.lock().expect("ended"), Some("stopped"));
    worker.stop().await;
    let job = queue::get(&owner.0, id).await.expect("get").expect("job");
    assert_eq!(
        (job.state.as_str(), job.attempts),
        ("running", 2),
        "the other worker's claim, untouched"
    );
}
