//! `tenantry bench appointments`: bookings per second into a table with the exclusion constraint
//! that refuses double-booking vs the same table without it (the price of never double-booking),
//! and our whole booking (tenant transaction: RLS, checks, savepoint, audit) for scale. Every
//! benchmark organization's owner has 100 appointments, the big organization's 10,000 (built once
//! in `appointments`; the two comparison tables are copies made for the run and dropped after).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::PgPool;
use tenantry_db::pool::pool_options;
use tenantry_db::{ConnectionUrls, RequestContext, RuntimePool};
use tenantry_server::crm::appointments::{store, NewAppointment};
use tenantry_server::kernel::input::Valid;
use tenantry_server::kernel::org_tx::OrgTx;
use uuid::Uuid;

use super::{bench_tenants, compare, op, report, Settings, TenantOp};
use crate::AnyError;

const PER_OWNER: i32 = 100;
const BIG_OWNER: i32 = 10_000;
const PAST_TITLE: &str = "Bench past appointment";

pub(super) async fn run(urls: &ConnectionUrls, s: &Settings) -> Result<(), AnyError> {
    let runtime = RuntimePool::open(urls, s.connections.max(2)).await?;
    let direct = pool_options(s.connections.max(2))
        .connect(&urls.owner)
        .await?;
    let tenants = Arc::new(bench_tenants(urls, &runtime).await?);
    build(&direct, &tenants).await?;
    // What an interrupted run left behind would take the slots this run books.
    sqlx::query(r"DELETE FROM appointments WHERE title = 'Bench booking'")
        .execute(&direct)
        .await?;
    copy_tables(&direct).await?;
    let stored: i64 = sqlx::query_scalar(r"SELECT count(*) FROM appointments")
        .fetch_one(&direct)
        .await?;
    println!(
        "appointments: {} organizations, {stored} appointments ({PER_OWNER} per owner, {BIG_OWNER} in the big organization); {} connections, {} rounds of {:?}",
        tenants.len(),
        s.connections,
        s.rounds,
        s.round
    );
    // Every booking takes a slot of its own (an hour after the previous one), so none overlaps:
    // what is timed is the constraint's check and index, not refusals.
    let slots = Arc::new(AtomicI64::new(0));
    let ours = booking_through_the_api(&runtime, slots.clone());
    let with = plain_insert(&direct, "bench_booking_with", slots.clone());
    let without = plain_insert(&direct, "bench_booking_without", slots);
    report(
        &mut compare(
            s,
            &tenants,
            vec![
                (
                    "our booking (tenant transaction: RLS, checks, audit, two reminders queued)",
                    ours,
                ),
                ("INSERT with the exclusion constraint (owner)", with),
                ("same INSERT, table without the constraint (owner)", without),
            ],
        )
        .await?,
    );
    sqlx::raw_sql(
        r"DROP TABLE bench_booking_with, bench_booking_without;
          DELETE FROM appointments WHERE title = 'Bench booking';",
    )
    .execute(&direct)
    .await?;
    runtime.close().await;
    direct.close().await;
    Ok(())
}

/// The start of slot `n`: hours after 2031-01-01, far from every past appointment.
fn slot(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + Duration::hours(n)
}

fn booking_through_the_api(runtime: &RuntimePool, slots: Arc<AtomicI64>) -> TenantOp {
    let runtime = runtime.clone();
    op(move |(user, org): (Uuid, Uuid)| {
        let (runtime, start) = (runtime.clone(), slot(slots.fetch_add(1, Ordering::Relaxed)));
        async move {
            let mut tx = OrgTx::begin(&runtime, &RequestContext::user(user), org).await?;
            let booked = store::create(
                &mut tx,
                &Valid::new(NewAppointment {
                    title: "Bench booking".into(),
                    description: None,
                    start_time: start,
                    end_time: start + Duration::minutes(30),
                    timezone: Some("Europe/Berlin".into()),
                    customer_id: None,
                    assigned_to: None,
                    status: None,
                    location: None,
                    meeting_url: None,
                })?,
            )
            .await?;
            tx.commit().await?;
            Ok(booked.id)
        }
    })
}

fn plain_insert(direct: &PgPool, table: &'static str, slots: Arc<AtomicI64>) -> TenantOp {
    let direct = direct.clone();
    op(move |(user, org): (Uuid, Uuid)| {
        let (direct, start) = (direct.clone(), slot(slots.fetch_add(1, Ordering::Relaxed)));
        async move {
            let id = Uuid::now_v7();
            sqlx::query(&format!(
                r"INSERT INTO {table} (id, organization_id, assigned_to, title, start_time, end_time, timezone)
                  VALUES ($1, $2, $3, 'Bench booking', $4, $4 + interval '30 minutes', 'Europe/Berlin')"
            ))
            .bind(id)
            .bind(org)
            .bind(user)
            .bind(start)
            .execute(&direct)
            .await?;
            Ok(id)
        }
    })
}

/// Past appointments for every owner, once (hourly, completed), the big organization's 100×.
async fn build(direct: &PgPool, tenants: &[(Uuid, Uuid)]) -> Result<(), AnyError> {
    let built: bool =
        sqlx::query_scalar(r"SELECT EXISTS (SELECT FROM appointments WHERE title = $1)")
            .bind(PAST_TITLE)
            .fetch_one(direct)
            .await?;
    if built {
        return Ok(());
    }
    println!("building the appointments data set...");
    let big = tenants.get(1).map(|t| t.1);
    let (users, orgs): (Vec<Uuid>, Vec<Uuid>) = tenants.iter().copied().unzip();
    sqlx::query(
        r"INSERT INTO appointments (organization_id, assigned_to, title, start_time, end_time)
          SELECT t.org, t.usr, $3, s, s + interval '45 minutes'
            FROM unnest($1::uuid[], $2::uuid[]) AS t (usr, org)
           CROSS JOIN LATERAL generate_series(
                 timestamptz '2025-01-01', timestamptz '2025-01-01'
                   + make_interval(hours => CASE WHEN t.org = $4 THEN $5 ELSE $6 END - 1),
                 interval '1 hour') AS s",
    )
    .bind(&users)
    .bind(&orgs)
    .bind(PAST_TITLE)
    .bind(big)
    .bind(BIG_OWNER)
    .bind(PER_OWNER)
    .execute(direct)
    .await?;
    // Booked as scheduled (the database allows nothing else), then held: completed.
    sqlx::query(r"UPDATE appointments SET status = 'completed' WHERE title = $1")
        .bind(PAST_TITLE)
        .execute(direct)
        .await?;
    sqlx::query(r"ANALYZE appointments").execute(direct).await?;
    Ok(())
}

/// Two copies of `appointments` (columns, checks, keys and indexes; no triggers or policies), one
/// without the exclusion constraint, holding the same rows.
async fn copy_tables(direct: &PgPool) -> Result<(), AnyError> {
    // Every column but the generated one.
    const COLS: &str =
        "id, organization_id, customer_id, assigned_to, title, description, start_time, \
        end_time, timezone, status, location, meeting_url, reminders_sent, created_at, updated_at";
    sqlx::raw_sql(
        &r"DROP TABLE IF EXISTS bench_booking_with, bench_booking_without;
          CREATE TABLE bench_booking_with (LIKE appointments INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS INCLUDING INDEXES);
          CREATE TABLE bench_booking_without (LIKE appointments INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS INCLUDING INDEXES);
          INSERT INTO bench_booking_with (COLS) SELECT COLS FROM appointments;
          INSERT INTO bench_booking_without (COLS) SELECT COLS FROM appointments;"
            .replace("COLS", COLS),
    )
    .execute(direct)
    .await?;
    let exclusion: String = sqlx::query_scalar(
        r"SELECT conname::text FROM pg_constraint
           WHERE conrelid = 'bench_booking_without'::regclass AND contype = 'x'",
    )
    .fetch_one(direct)
    .await?;
    sqlx::raw_sql(&format!(
        r#"ALTER TABLE bench_booking_without DROP CONSTRAINT "{exclusion}";
           ANALYZE bench_booking_with, bench_booking_without;"#
    ))
    .execute(direct)
    .await?;
    Ok(())
}
