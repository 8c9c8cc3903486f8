//! `tenantry bench kpis`: KPIs at scale. The data (50 KPIs × 3 years of daily points in the
//! first benchmark organization, 5 KPIs × 3 years in each of the other 999: about 5.5 million
//! points) is built once, by the owner, and kept in `tenantry_bench` for later runs.

use std::sync::Arc;
use std::time::Instant;

use sqlx::PgPool;
use tenantry_db::pool::pool_options;
use tenantry_db::{Actor, ConnectionUrls, RequestContext, RuntimePool, TenantTx};
use tenantry_server::http::HttpConfig;
use tenantry_server::identity::hash_token;
use tenantry_server::kpis::store::{get_sql, DASHBOARD_SQL};
use uuid::Uuid;

use super::{
    bench_credentials, bench_tenants, compare, get_op, op, report, send, spawn_server,
    spawn_server_with, Benchmark, Settings, Stats,
};
use crate::AnyError;

/// KPIs of the dashboard organization, and of every other one.
const DASHBOARD_KPIS: i32 = 50;
const KPIS_PER_ORG: i32 = 5;
/// Daily points per KPI: three years.
const DAYS: i32 = 3 * 365 + 1;
/// Organizations given their KPIs and points per statement while building.
const BUILD_CHUNK: usize = 50;
/// One ingest: this many KPIs with this many points each.
const INGEST_KPIS: i32 = 10;
const INGEST_POINTS_PER_KPI: usize = 10_000;

pub(super) async fn run(
    urls: &ConnectionUrls,
    s: &Settings,
    name: Benchmark,
) -> Result<(), AnyError> {
    let runtime = RuntimePool::open(urls, s.connections).await?;
    let direct = pool_options(s.connections).connect(&urls.owner).await?;
    let tenants = bench_tenants(urls, &runtime).await?;
    build(&direct, &tenants).await?;
    let (points, orgs): (i64, i64) = sqlx::query_as(
        r"SELECT (SELECT count(*) FROM kpi_data_points), (SELECT count(*) FROM organizations)",
    )
    .fetch_one(&direct)
    .await?;
    println!("kpis: {orgs} organizations, {points} data points");
    let credentials = bench_credentials(urls, &runtime, &tenants).await?;
    let (base, server) = spawn_server(&runtime).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(s.connections as usize)
        .build()?;
    let http = Http { client, base };

    if name == Benchmark::KpiIngest {
        ingest_vs_copy(&http, &direct, &credentials[1], s.rounds).await?;
    } else if name == Benchmark::Metering {
        set_skew(&direct, tenants[1].1, true).await?;
        metering(&http, &runtime, &direct, &credentials, s).await?;
    } else {
        // Twice: on the data as built, then after one KPI of another organization received
        // 1.1 million points and the table was analyzed — the statistics that once made
        // every dashboard 100 times slower (issue 13).
        for skewed in [false, true] {
            set_skew(&direct, tenants[1].1, skewed).await?;
            println!(
                "\n== {} ==",
                if skewed {
                    "after ANALYZE of skewed data (one KPI of another organization with 1.1 million points)"
                } else {
                    "after ANALYZE of the data as built"
                }
            );
            if name == Benchmark::KpiDashboard {
                dashboard(&http, &runtime, &direct, tenants[0], &credentials[0].1, s).await?;
            } else if name == Benchmark::Console {
                console(&http.base, tenants[0].1, &credentials[0].1, s.rounds).await?;
            } else {
                get_kpi(&http, &runtime, &direct, &credentials, s).await?;
            }
        }
    }

    server.abort();
    runtime.close().await;
    direct.close().await;
    Ok(())
}

struct Http {
    client: reqwest::Client,
    base: String,
}

/// Points of the skew: one KPI, one a minute back from now, as a sync would write them.
const WHALE_POINTS: i32 = 1_100_000;

/// Gives `org` a KPI with [`WHALE_POINTS`] points (`skewed`) or removes it, then runs what
/// autovacuum would (VACUUM ANALYZE) so the planner sees the data as it is.
async fn set_skew(direct: &PgPool, org: Uuid, skewed: bool) -> Result<(), AnyError> {
    let present: bool =
        sqlx::query_scalar(r"SELECT EXISTS (SELECT FROM kpis WHERE name = 'Bench whale')")
            .fetch_one(direct)
            .await?;
    if skewed && !present {
        let started = Instant::now();
        sqlx::query(
            r"WITH whale AS (
               INSERT INTO kpis (organization_id, name, unit) VALUES ($1, 'Bench whale', 'events')
               RETURNING organization_id, id)
             INSERT INTO kpi_data_points (organization_id, kpi_id, value, observed_at, source)
             SELECT w.organization_id, w.id, g % 1000, now() - make_interval(mins => g), 'sync'
               FROM whale w, generate_series(1, $2) g",
        )
        .bind(org)
        .bind(WHALE_POINTS)
        .execute(direct)
        .await?;
        println!(
            "added the whale KPI ({WHALE_POINTS} points) in {:.0?}",
            started.elapsed()
        );
    } else if !skewed && present {
        sqlx::query(r"DELETE FROM kpis WHERE name = 'Bench whale'")
            .execute(direct)
            .await?;
    }
    if skewed != present {
        sqlx::query(r"VACUUM ANALYZE kpis, kpi_data_points")
            .execute(direct)
            .await?;
    }
    Ok(())
}

/// Gives every benchmark organization its KPIs and three years of daily points, where missing.
async fn build(direct: &PgPool, tenants: &[(Uuid, Uuid)]) -> Result<(), AnyError> {
    let orgs: Vec<Uuid> = tenants.iter().map(|(_, org)| *org).collect();
    let missing: Vec<Uuid> = sqlx::query_scalar(
        r"SELECT o FROM unnest($1::uuid[]) WITH ORDINALITY AS t(o, n) WHERE NOT EXISTS
           (SELECT 1 FROM kpis k WHERE k.organization_id = o AND k.name LIKE 'Bench KPI %') ORDER BY n",
    )
    .bind(&orgs)
    .fetch_all(direct)
    .await?;
    if missing.is_empty() {
        return Ok(());
    }
    println!(
        "giving {} organizations their KPIs and {DAYS} days of points...",
        missing.len()
    );
    let started = Instant::now();
    for (i, chunk) in missing.chunks(BUILD_CHUNK).enumerate() {
        let counts: Vec<i32> = chunk
            .iter()
            .map(|org| {
                if *org == orgs[0] {
                    DASHBOARD_KPIS
                } else {
                    KPIS_PER_ORG
                }
            })
            .collect();
        // A daily series per KPI: a level, a slow trend and a weekly swing.
        sqlx::query(
            r"WITH new_kpis AS (
               INSERT INTO kpis (organization_id, name, unit, target_value, baseline)
               SELECT t.org, format('Bench KPI %s', lpad(n::text, 2, '0')), 'units', 2000 + n * 10, 0
                 FROM unnest($1::uuid[], $2::int[]) AS t(org, kpi_count), generate_series(1, t.kpi_count) n
               RETURNING organization_id, id, target_value)
             INSERT INTO kpi_data_points (organization_id, kpi_id, value, observed_at, source)
             SELECT k.organization_id, k.id,
                    round((k.target_value / 2 + ($3 - d) * 0.5 + 20 * sin(d / 7.0))::numeric, 2),
                    date_trunc('day', now()) - make_interval(days => d), 'bench'
               FROM new_kpis k CROSS JOIN generate_series(0, $3 - 1) d",
        )
        .bind(chunk)
        .bind(&counts)
        .bind(DAYS)
        .execute(direct)
        .await?;
        println!(
            "  {} of {} organizations ({:.0?})",
            (i * BUILD_CHUNK + chunk.len()),
            missing.len(),
            started.elapsed()
        );
    }
    sqlx::query(r"ANALYZE kpis, kpi_data_points")
        .execute(direct)
        .await?;
    Ok(())
}

/// Rows of one ingest: `INGEST_KPIS` KPIs × `INGEST_POINTS_PER_KPI` hourly points each, as the
/// CSV body of `POST /kpi-points` and as the same rows for `COPY` (organization added).
struct IngestRows {
    org: Uuid,
    kpis: Vec<Uuid>,
    ingest_csv: String,
    copy_csv: String,
    count: usize,
}

async fn ingest_rows(direct: &PgPool, org: Uuid) -> Result<IngestRows, AnyError> {
    sqlx::query(
        r"INSERT INTO kpis (organization_id, name, unit)
         SELECT $1, format('Ingest KPI %s', lpad(n::text, 2, '0')), 'units' FROM generate_series(1, $2) n
         WHERE NOT EXISTS (SELECT 1 FROM kpis WHERE organization_id = $1 AND name LIKE 'Ingest KPI %')",
    )
    .bind(org)
    .bind(INGEST_KPIS)
    .execute(direct)
    .await?;
    let kpis: Vec<Uuid> = sqlx::query_scalar(
        r"SELECT id FROM kpis WHERE organization_id = $1 AND name LIKE 'Ingest KPI %' ORDER BY name",
    )
    .bind(org)
    .fetch_all(direct)
    .await?;
    let start = chrono::DateTime::parse_from_rfc3339("2001-01-01T00:00:00Z")?;
    let mut ingest_csv = String::from("kpi_id,value,observed_at,source\n");
    let mut copy_csv = String::new();
    for (j, kpi) in kpis.iter().enumerate() {
        for i in 0..INGEST_POINTS_PER_KPI {
            let value = i as f64 * 0.25 + j as f64;
            let at = (start + chrono::Duration::hours(i as i64)).to_rfc3339();
            ingest_csv.push_str(&format!("{kpi},{value},{at},import\n"));
            copy_csv.push_str(&format!("{org},{kpi},{value},{at},import\n"));
        }
    }
    Ok(IngestRows {
        org,
        count: kpis.len() * INGEST_POINTS_PER_KPI,
        kpis,
        ingest_csv,
        copy_csv,
    })
}

/// Bulk ingest over HTTP (CSV) vs `COPY` of the same rows by the owner, alternating; the rows
/// are removed (untimed) before each.
async fn ingest_vs_copy(
    http: &Http,
    direct: &PgPool,
    (org, session, _): &(Uuid, String, String),
    rounds: u32,
) -> Result<(), AnyError> {
    let rows = ingest_rows(direct, *org).await?;
    let clear = || async {
        sqlx::query(r"DELETE FROM kpi_data_points WHERE organization_id = $1 AND kpi_id = ANY($2)")
            .bind(rows.org)
            .bind(&rows.kpis)
            .execute(direct)
            .await
    };
    let ingest = || {
        send(
            http.client
                .post(format!("{}/v1/orgs/{}/kpi-points", http.base, rows.org))
                .bearer_auth(session)
                .header("content-type", "text/csv")
                .body(rows.ingest_csv.clone()),
        )
    };
    let copy = || async {
        let mut conn = direct.acquire().await?;
        let mut copy = conn
            .copy_in_raw(
                r"COPY kpi_data_points (organization_id, kpi_id, value, observed_at, source)
                 FROM STDIN (FORMAT csv)",
            )
            .await?;
        copy.send(rows.copy_csv.as_bytes()).await?;
        copy.finish().await?;
        Ok::<_, AnyError>(())
    };
    println!(
        "ingest: {} rows ({} KPIs × {}), {} rounds each, alternating",
        rows.count, INGEST_KPIS, INGEST_POINTS_PER_KPI, rounds
    );
    let (mut ours, mut copied) = (Stats::default(), Stats::default());
    // The first round of each warms up and is not counted.
    for round in 0..=rounds {
        for (variant, stats) in [(0, &mut ours), (1, &mut copied)] {
            clear().await?;
            let started = Instant::now();
            if variant == 0 {
                ingest().await?;
            } else {
                copy().await?;
            }
            if round > 0 {
                stats.record(rows.count as u64, started.elapsed());
            }
        }
    }
    clear().await?;
    report(&mut [
        (
            "POST /v1/orgs/{org}/kpi-points, CSV (HTTP, auth, RLS, rows/s)",
            ours,
        ),
        (r"COPY of the same rows by the owner (rows/s)", copied),
    ]);
    Ok(())
}

/// The dashboard of the 50-KPI organization: its SQL in a tenant transaction (RLS) vs the same
/// SQL by the owner (RLS off), and the whole request over HTTP; one request at a time, since
/// the question is each request's latency.
async fn dashboard(
    http: &Http,
    runtime: &RuntimePool,
    direct: &PgPool,
    (user, org): (Uuid, Uuid),
    session: &str,
    s: &Settings,
) -> Result<(), AnyError> {
    let one_at_a_time = Settings {
        connections: 1,
        ..*s
    };
    let tenant = Arc::new(vec![(user, org)]);
    let over_http = get_op(
        http.client
            .get(format!("{}/v1/orgs/{org}/dashboard", http.base))
            .bearer_auth(session),
    );
    let under_rls = op({
        let runtime = runtime.clone();
        move |(user, org): (Uuid, Uuid)| {
            let runtime = runtime.clone();
            async move {
                let mut tx =
                    TenantTx::begin(&runtime, &RequestContext::user(user).in_org(org)).await?;
                let rows = sqlx::query(DASHBOARD_SQL)
                    .bind(org)
                    .fetch_all(tx.conn())
                    .await?;
                tx.commit().await?;
                expect_kpis(rows.len())?;
                Ok(org)
            }
        }
    });
    let as_owner = op({
        let direct = direct.clone();
        move |(_, org): (Uuid, Uuid)| {
            let direct = direct.clone();
            async move {
                let mut tx = direct.begin().await?;
                let rows = sqlx::query(DASHBOARD_SQL)
                    .bind(org)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                expect_kpis(rows.len())?;
                Ok(org)
            }
        }
    });
    println!(
        "dashboard: {DASHBOARD_KPIS} KPIs × {DAYS} daily points, 1 connection, {} rounds of {:?} per variant",
        s.rounds, s.round
    );
    let mut results = compare(
        &one_at_a_time,
        &tenant,
        vec![
            ("GET /v1/orgs/{org}/dashboard (HTTP, auth, RLS)", over_http),
            ("dashboard SQL in a tenant transaction (RLS)", under_rls),
            ("same SQL as owner (RLS off)", as_owner),
        ],
    )
    .await?;
    if let [(_, http), (_, rls), (_, owner)] = results.as_mut_slice() {
        println!(
            "median ms: HTTP {:.3}, SQL under RLS {:.3}, as owner (RLS off) {:.3}; RLS / owner time: {:.2}",
            http.percentile_ms(0.5),
            rls.percentile_ms(0.5),
            owner.percentile_ms(0.5),
            owner.rate() / rls.rate()
        );
    }
    report(&mut results);
    Ok(())
}

/// The web console's dashboard of the 50-KPI organization in headless Chromium (Debian's), cold
/// and warm, beside its API request in the same loads, and the script and style it is sent:
/// `crates/server/tests/console/bench.mjs` (its npm packages from `scripts/ensure-node`).
async fn console(base: &str, org: Uuid, session: &str, rounds: u32) -> Result<(), AnyError> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../server/tests/console/bench.mjs"
    );
    let args = [
        script.to_string(),
        base.to_string(),
        org.to_string(),
        session.to_string(),
        DASHBOARD_KPIS.to_string(),
        (5 * rounds.max(1)).to_string(),
    ];
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node").args(&args).status()
    })
    .await?
    .map_err(|e| format!("node {script}: {e} (Node.js 20 or later, and scripts/ensure-node)"))?;
    if !status.success() {
        return Err(format!("node {script} failed: {status}").into());
    }
    Ok(())
}

fn expect_kpis(rows: usize) -> Result<(), AnyError> {
    if rows != DASHBOARD_KPIS as usize {
        return Err(format!("dashboard: {rows} KPIs instead of {DASHBOARD_KPIS}").into());
    }
    Ok(())
}

/// Every organization's first KPI, with its credentials: (organization, KPI, session, API key).
async fn first_kpis(
    direct: &PgPool,
    credentials: &[(Uuid, String, String)],
) -> Result<Vec<(Uuid, Uuid, String, String)>, AnyError> {
    let first_kpis: Vec<(Uuid, Uuid)> = sqlx::query_as(
        r"SELECT DISTINCT ON (organization_id) organization_id, id FROM kpis
         WHERE name LIKE 'Bench KPI %' ORDER BY organization_id, name",
    )
    .fetch_all(direct)
    .await?;
    let first_kpi: std::collections::HashMap<Uuid, Uuid> = first_kpis.into_iter().collect();
    Ok(credentials
        .iter()
        .filter_map(|(org, session, key)| {
            first_kpi
                .get(org)
                .map(|kpi| (*org, *kpi, session.clone(), key.clone()))
        })
        .collect())
}

/// The cost of metering API calls: `GET` one KPI by session and by API key from a server that
/// meters (flushing every second) and from one that does not, rounds alternating.
async fn metering(
    http: &Http,
    runtime: &RuntimePool,
    direct: &PgPool,
    credentials: &[(Uuid, String, String)],
    s: &Settings,
) -> Result<(), AnyError> {
    let targets = Arc::new(first_kpis(direct, credentials).await?);
    let (unmetered, server) = spawn_server_with(
        runtime,
        HttpConfig {
            metering: None,
            ..HttpConfig::default()
        },
    )
    .await?;
    let get = |base: String, by_key: bool| {
        let client = http.client.clone();
        op(
            move |(org, kpi, session, key): (Uuid, Uuid, String, String)| {
                let request = client
                    .get(format!("{base}/v1/orgs/{org}/kpis/{kpi}"))
                    .bearer_auth(if by_key { key } else { session });
                async move {
                    send(request).await?;
                    Ok(kpi)
                }
            },
        )
    };
    println!(
        "metering: {} organizations, {} connections, {} rounds of {:?} per variant",
        targets.len(),
        s.connections,
        s.rounds,
        s.round
    );
    // Each credential on its own, so each ratio is metered / not metered.
    for (by_key, metered) in [
        (false, "GET /v1/orgs/{org}/kpis/{kpi} by session, metered"),
        (
            true,
            "GET /v1/orgs/{org}/kpis/{kpi} by API key (with the limit check), metered",
        ),
    ] {
        report(
            &mut compare(
                s,
                &targets,
                vec![
                    (metered, get(http.base.clone(), by_key)),
                    ("the same, not metered", get(unmetered.clone(), by_key)),
                ],
            )
            .await?,
        );
    }
    server.abort();
    let counted: i64 = sqlx::query_scalar(
        r"SELECT coalesce(sum(usage_amount), 0)::bigint FROM usage_tracking WHERE resource_type = 'api_calls'",
    )
    .fetch_one(direct)
    .await?;
    println!("api_calls recorded in usage_tracking so far: {counted}");
    Ok(())
}

/// `GET` one KPI (progress, 7/30/90-day change) over HTTP vs the same SQL sent directly by the
/// owner, cycling through every organization's first KPI.
async fn get_kpi(
    http: &Http,
    runtime: &RuntimePool,
    direct: &PgPool,
    credentials: &[(Uuid, String, String)],
    s: &Settings,
) -> Result<(), AnyError> {
    let targets: Arc<Vec<(Uuid, Uuid, String)>> = Arc::new(
        first_kpis(direct, credentials)
            .await?
            .into_iter()
            .map(|(org, kpi, session, _)| (org, kpi, session))
            .collect(),
    );
    let over_http = op({
        let (client, base) = (http.client.clone(), http.base.clone());
        move |(org, kpi, session): (Uuid, Uuid, String)| {
            let request = client
                .get(format!("{base}/v1/orgs/{org}/kpis/{kpi}"))
                .bearer_auth(session);
            async move {
                send(request).await?;
                Ok(kpi)
            }
        }
    });
    let sql = get_sql();
    let in_tenant_tx = op({
        let runtime = runtime.clone();
        move |(org, kpi, session): (Uuid, Uuid, String)| {
            let runtime = runtime.clone();
            let ctx = RequestContext {
                actor: Actor::SessionTokenHash(hash_token(&session)),
                ..RequestContext::default()
            }
            .in_org(org);
            async move {
                let mut tx = TenantTx::begin(&runtime, &ctx).await?;
                sqlx::query(sql)
                    .bind(org)
                    .bind(kpi)
                    .bind(false)
                    .fetch_one(tx.conn())
                    .await?;
                tx.commit().await?;
                Ok(kpi)
            }
        }
    });
    let same_sql_direct = op({
        let direct = direct.clone();
        move |(org, kpi, _): (Uuid, Uuid, String)| {
            let direct = direct.clone();
            async move {
                let mut tx = direct.begin().await?;
                sqlx::query(sql)
                    .bind(org)
                    .bind(kpi)
                    .bind(false)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(kpi)
            }
        }
    });
    println!(
        "get-kpi: {} organizations, {} connections, {} rounds of {:?} per variant",
        targets.len(),
        s.connections,
        s.rounds,
        s.round
    );
    report(
        &mut compare(
            s,
            &targets,
            vec![
                (
                    "GET /v1/orgs/{org}/kpis/{kpi} by session (HTTP, auth, RLS)",
                    over_http,
                ),
                (
                    "its SQL in a tenant transaction by session (no HTTP)",
                    in_tenant_tx,
                ),
                ("same SQL direct (owner, RLS bypassed)", same_sql_direct),
            ],
        )
        .await?,
    );
    Ok(())
}
