//! `tenantry bench NAME`: benchmarks that compare variants side by side in one run. Rounds of
//! the variants alternate, so a noisy neighbour slows both rather than one.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use tenantry_db::cluster::Role;
use tenantry_db::{migrate, ConnectionUrls, OwnerPool, RequestContext, RuntimePool, TenantTx};
use tenantry_server::identity::{self, NewAccount};
use uuid::Uuid;

use crate::database::Database;
use crate::AnyError;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Benchmark {
    /// A tenant transaction (begin, bind context, one indexed select under RLS, commit) vs the
    /// same statements sent directly by the owner (RLS bypassed), same connection count.
    TenantTx,
}

const BENCH_DATABASE: &str = "tenantry_bench";
const BENCH_ORGS: usize = 1000;

pub async fn run(
    database: &Database,
    name: Benchmark,
    seconds: u64,
    rounds: u32,
    connections: u32,
) -> Result<(), AnyError> {
    let urls = bench_database(database).await?;
    let settings = Settings {
        round: Duration::from_secs(seconds.max(1)),
        rounds: rounds.max(1),
        connections: connections.max(1),
    };
    match name {
        Benchmark::TenantTx => tenant_tx(&urls, &settings).await,
    }
}

struct Settings {
    round: Duration,
    rounds: u32,
    connections: u32,
}

/// A database of its own for benchmarks: `tenantry_bench` in the managed cluster, or the
/// configured database when an external server is used (point it at a scratch database).
async fn bench_database(database: &Database) -> Result<ConnectionUrls, AnyError> {
    let urls = match database.managed_info() {
        Some(info) => {
            let mut admin = PgConnection::connect(&info.url(Role::Superuser, "postgres")).await?;
            tenantry_db::cluster::create_database_if_missing(&mut admin, BENCH_DATABASE).await?;
            admin.close().await?;
            ConnectionUrls {
                runtime: info.url(Role::Runtime, BENCH_DATABASE),
                owner: info.url(Role::Owner, BENCH_DATABASE),
            }
        }
        None => database.urls.clone(),
    };
    let owner = OwnerPool::connect(&urls.owner).await?;
    migrate::up(&owner, None).await?;
    owner.0.close().await;
    Ok(urls)
}

/// (user, organization) pairs of the benchmark's owners, created through sign-up on first use.
async fn bench_tenants(
    urls: &ConnectionUrls,
    runtime: &RuntimePool,
) -> Result<Vec<(Uuid, Uuid)>, AnyError> {
    let owner = OwnerPool::connect(&urls.owner).await?;
    let query = "SELECT m.user_id, m.organization_id FROM organization_members m JOIN users u ON u.id = m.user_id \
                 WHERE u.email LIKE 'bench-%@bench.local' AND m.role = 'owner' ORDER BY u.email";
    let mut pairs: Vec<(Uuid, Uuid)> = sqlx::query_as(query).fetch_all(&owner.0).await?;
    if pairs.len() < BENCH_ORGS {
        println!(
            "creating {} benchmark organizations...",
            BENCH_ORGS - pairs.len()
        );
        for i in pairs.len()..BENCH_ORGS {
            identity::sign_up(
                runtime,
                NewAccount {
                    email: format!("bench-{i:05}@bench.local"),
                    name: Some(format!("Bench {i}")),
                    password_hash: None,
                    provider: "password".into(),
                    provider_id: None,
                    clerk_user_id: None,
                    organization_name: Some(format!("Bench Org {i}")),
                },
            )
            .await?;
        }
        sqlx::query("ANALYZE users, organizations, organization_members")
            .execute(&owner.0)
            .await?;
        pairs = sqlx::query_as(query).fetch_all(&owner.0).await?;
    }
    owner.0.close().await;
    Ok(pairs)
}

async fn tenant_tx(urls: &ConnectionUrls, s: &Settings) -> Result<(), AnyError> {
    let runtime = RuntimePool::connect(&urls.runtime, s.connections).await?;
    let direct = PgPoolOptions::new()
        .max_connections(s.connections)
        .connect(&urls.owner)
        .await?;
    let tenants = Arc::new(bench_tenants(urls, &runtime).await?);
    const SELECT: &str = "SELECT id, name, slug FROM organizations WHERE id = $1";

    let ours = {
        let runtime = runtime.clone();
        move |(user, org): (Uuid, Uuid)| {
            let runtime = runtime.clone();
            async move {
                let mut tx =
                    TenantTx::begin(&runtime, &RequestContext::user(user).in_org(org)).await?;
                let row: (Uuid, String, String) = sqlx::query_as(SELECT)
                    .bind(org)
                    .fetch_one(tx.conn())
                    .await?;
                tx.commit().await?;
                Ok::<_, AnyError>(row.0)
            }
        }
    };
    let same_sql_direct = {
        let direct = direct.clone();
        move |(_, org): (Uuid, Uuid)| {
            let direct = direct.clone();
            async move {
                let mut tx = direct.begin().await?;
                let row: (Uuid, String, String) =
                    sqlx::query_as(SELECT).bind(org).fetch_one(&mut *tx).await?;
                tx.commit().await?;
                Ok::<_, AnyError>(row.0)
            }
        }
    };

    println!(
        "tenant-tx: {} organizations, {} connections, {} rounds of {:?} per variant",
        tenants.len(),
        s.connections,
        s.rounds,
        s.round
    );
    // Warm both pools and caches.
    measure(&tenants, s.connections, Duration::from_secs(1), &ours).await?;
    measure(
        &tenants,
        s.connections,
        Duration::from_secs(1),
        &same_sql_direct,
    )
    .await?;
    let mut a = Stats::default();
    let mut b = Stats::default();
    for _ in 0..s.rounds {
        a.add(measure(&tenants, s.connections, s.round, &ours).await?);
        b.add(measure(&tenants, s.connections, s.round, &same_sql_direct).await?);
    }
    println!("| variant | tx/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    a.print("tenant transaction (runtime role, RLS, context bound)");
    b.print("same SQL direct (owner, RLS bypassed)");
    println!("ratio ours/direct (throughput): {:.2}", a.rate() / b.rate());
    runtime.close().await;
    direct.close().await;
    Ok(())
}

#[derive(Default)]
struct Stats {
    ops: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Stats {
    fn add(&mut self, other: Stats) {
        self.ops += other.ops;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
    }

    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }

    fn print(&mut self, name: &str) {
        let (p50, p99) = (self.percentile_ms(0.5), self.percentile_ms(0.99));
        println!("| {name} | {:.0} | {p50:.3} | {p99:.3} |", self.rate());
    }
}

/// Runs `op` on `connections` concurrent workers for `duration`, cycling through `tenants`.
async fn measure<F, Fut>(
    tenants: &Arc<Vec<(Uuid, Uuid)>>,
    connections: u32,
    duration: Duration,
    op: &F,
) -> Result<Stats, AnyError>
where
    F: Fn((Uuid, Uuid)) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Uuid, AnyError>> + Send,
{
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::new();
    for w in 0..connections as usize {
        let tenants = tenants.clone();
        let op = op.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = w;
            while Instant::now() < deadline {
                let t = Instant::now();
                op(tenants[i % tenants.len()]).await?;
                latencies.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                i += connections as usize;
            }
            Ok::<_, AnyError>(latencies)
        }));
    }
    let mut stats = Stats::default();
    for worker in workers {
        let latencies = worker.await??;
        stats.ops += latencies.len() as u64;
        stats.latencies_us.extend(latencies);
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}
