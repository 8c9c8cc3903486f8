//! `tenantry bench NAME`: benchmarks that compare variants side by side in one run. Rounds of
//! the variants alternate, so a noisy neighbour slows both rather than one. A crate of its own,
//! linked into `tenantry` only with its `bench` feature: the release build carries none of it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use sqlx::{Connection, PgConnection, PgPool};
use tenantry_db::cluster::Role;
use tenantry_db::pool::pool_options;
use tenantry_db::{
    migrate, ConnectionUrls, OwnerPool, RequestContext, RuntimePool, TenantTx, REQUEST_SETTINGS,
};
use tenantry_server::api_keys::{self, Access, NewApiKey};
use tenantry_server::http::{self, AppState, HttpConfig};
use tenantry_server::identity::{self, NewAccount};
use tenantry_server::kernel::input::Valid;
use tenantry_server::kernel::org_tx::OrgTx;
use uuid::Uuid;

/// Any error of a benchmark run (they report and stop).
pub type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The database a benchmark runs against: the managed cluster (a `tenantry_bench` database is
/// made in it) or an external server (its database, which should be a scratch one).
pub struct Target {
    pub urls: ConnectionUrls,
    pub managed: Option<tenantry_db::cluster::ClusterInfo>,
}

mod ai;
mod appointments;
mod burst;
mod content;
mod crm;
mod export;
mod fasttrack;
mod integrations;
mod jobs;
mod kpis;
mod pooler;
mod stripe;
mod vault;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Benchmark {
    /// A tenant transaction (begin, bind context, one indexed select under RLS, commit) vs the
    /// same statements sent directly by the owner (RLS bypassed), same connection count.
    TenantTx,
    /// `GET /v1/orgs/{org}` over HTTP, authenticated by session token and by API key, vs the
    /// same SQL sent directly by the owner, same connection count.
    HttpAuth,
    /// Bulk ingest of 100,000 points over HTTP vs `COPY` of the same rows by the owner (on the
    /// KPI data set: 1,000 organizations, over 5 million points, built on first use).
    KpiIngest,
    /// The dashboard of 50 KPIs × 3 years of daily points: over HTTP, its SQL under RLS, and the
    /// same SQL as owner with RLS off (one request at a time; on the KPI data set).
    KpiDashboard,
    /// `GET` one KPI with progress and change over HTTP vs its SQL in a tenant transaction vs the
    /// same SQL sent directly by the owner (on the KPI data set).
    KpiRead,
    /// A burst of 500 concurrent wrong sign-ins (per round) against a `tenantry serve` child
    /// process: its resident memory at start, at each burst's peak and after it.
    SignInBurst,
    /// Fast Track on 1,000,000 WOOP entries (built on first use): my entries across all tools
    /// with progress, and a JSONB containment search; plans and times, RLS vs owner.
    Fasttrack,
    /// The CRM on 2 million customers and 2 million tasks (built on first use; one organization
    /// with 100,000 customers and a 5,000-task project): customer search and the board (HTTP,
    /// RLS, owner), kanban moves vs a plain single-row UPDATE, rows written per move.
    Crm,
    /// The job queue: no-op jobs per second with 1, 2 and 8 workers vs the same number of plain
    /// `DELETE … RETURNING` loops, and enqueue-to-start latency with LISTEN/NOTIFY and polling.
    Jobs,
    /// Bookings per second with the exclusion constraint that refuses double-booking vs the same
    /// table without it, and our whole booking for scale (100 appointments per organization, one
    /// with 10,000).
    Appointments,
    /// A published page read by the public: over HTTP (rendered) vs its SQL as a public reader
    /// under RLS vs the same SQL as owner (20 pages per organization, one with 2,000).
    Content,
    /// Stripe webhook events per second: over HTTP (signature, refetch from a local Stripe,
    /// ledger, effect) vs the same transaction sent directly vs its writes as owner.
    StripeWebhooks,
    /// The cost of metering API calls: `GET` one KPI by session and by API key from a server
    /// that meters vs one that does not (on the KPI data set, skewed).
    Metering,
    /// The credential vault: seals and opens per second, and the rotation of 100,000 stored
    /// secrets vs a plain rewrite of the same rows.
    Vault,
    /// A Google Analytics backfill of 3 years × 20 daily metrics by the sync job from a local
    /// GA4 server vs the same points posted to bulk ingest.
    Integrations,
    /// One organization's export (`tenantry org export`) of the largest benchmark organization
    /// vs plain `COPY` of its rows from every table, into files: rows per second.
    OrgExport,
    /// The runtime role through PgBouncer in transaction mode (started here, before the managed
    /// cluster) vs direct connections with and without the statement cache: tenant transactions
    /// and `GET /v1/orgs/{org}` over HTTP.
    Pgbouncer,
    /// The web console's dashboard of 50 KPIs in headless Chromium: time until every card is on
    /// the page, cold and warm, beside its API request; script and style bytes sent (on the KPI
    /// data set; needs Node.js and the walk's npm packages, `scripts/ensure-node`).
    Console,
    /// The assistant: time to the first streamed piece of a reply through Tenantry vs straight
    /// from the local provider; a user's 10,000 conversations listed and read (HTTP, RLS, owner).
    Ai,
}

const BENCH_DATABASE: &str = "tenantry_bench";
const BENCH_ORGS: usize = 1000;

pub async fn run(
    database: &Target,
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
        Benchmark::HttpAuth => http_auth(&urls, &settings).await,
        Benchmark::Fasttrack => fasttrack::run(&urls, &settings).await,
        Benchmark::Crm => crm::run(&urls, &settings).await,
        Benchmark::Jobs => jobs::run(&urls, &settings).await,
        Benchmark::Appointments => appointments::run(&urls, &settings).await,
        Benchmark::Content => content::run(&urls, &settings).await,
        Benchmark::StripeWebhooks => stripe::run(&urls, &settings).await,
        Benchmark::Vault => vault::run(&urls, &settings).await,
        Benchmark::Integrations => integrations::run(&urls, &settings).await,
        Benchmark::Ai => ai::run(&urls, &settings).await,
        Benchmark::OrgExport => export::run(&urls, &settings).await,
        Benchmark::Pgbouncer => pooler::run(&urls, database.managed.as_ref(), &settings).await,
        Benchmark::SignInBurst => burst::run(&urls, settings.rounds).await,
        Benchmark::KpiIngest
        | Benchmark::KpiDashboard
        | Benchmark::KpiRead
        | Benchmark::Metering
        | Benchmark::Console => kpis::run(&urls, &settings, name).await,
    }
}

struct Settings {
    round: Duration,
    rounds: u32,
    connections: u32,
}

/// The HTTP service on a free local port, and its base URL.
async fn spawn_server(
    runtime: &RuntimePool,
) -> Result<(String, tokio::task::JoinHandle<std::io::Result<()>>), AnyError> {
    spawn_server_with(runtime, HttpConfig::default()).await
}

/// The same with `config`.
async fn spawn_server_with(
    runtime: &RuntimePool,
    config: HttpConfig,
) -> Result<(String, tokio::task::JoinHandle<std::io::Result<()>>), AnyError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let state = AppState::new(runtime.clone(), config)?;
    let server = tokio::spawn(http::serve(listener, state, std::future::pending()));
    Ok((base, server))
}

/// A database of its own for benchmarks: `tenantry_bench` in the managed cluster, or the
/// configured database when an external server is used (point it at a scratch database).
async fn bench_database(database: &Target) -> Result<ConnectionUrls, AnyError> {
    let urls = match &database.managed {
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
    if let Some(info) = &database.managed {
        tenantry_db::leakproof::mark(&info.url(Role::Superuser, BENCH_DATABASE)).await?;
    }
    Ok(urls)
}

/// (user, organization) pairs of the benchmark's owners, created through sign-up on first use.
async fn bench_tenants(
    urls: &ConnectionUrls,
    runtime: &RuntimePool,
) -> Result<Vec<(Uuid, Uuid)>, AnyError> {
    let owner = OwnerPool::connect(&urls.owner).await?;
    let query = r"SELECT m.user_id, m.organization_id FROM organization_members m JOIN users u ON u.id = m.user_id
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
                    email_verified: false,
                    organization_name: Some(format!("Bench Org {i}")),
                },
            )
            .await?;
        }
        sqlx::query(r"ANALYZE users, organizations, organization_members")
            .execute(&owner.0)
            .await?;
        pairs = sqlx::query_as(query).fetch_all(&owner.0).await?;
    }
    owner.0.close().await;
    Ok(pairs)
}

async fn tenant_tx(urls: &ConnectionUrls, s: &Settings) -> Result<(), AnyError> {
    let runtime = RuntimePool::open(urls, s.connections).await?;
    let direct = pool_options(s.connections).connect(&urls.owner).await?;
    let tenants = Arc::new(bench_tenants(urls, &runtime).await?);

    let ours = tenant_transaction(&runtime);
    // The same statements sent directly, with or without the limits every request sets in its
    // binding's message (`REQUEST_SETTINGS`): what those settings cost by themselves.
    let direct_sql = |begin: &'static str| {
        let direct = direct.clone();
        op(move |(_, org): (Uuid, Uuid)| {
            let direct = direct.clone();
            async move {
                let mut tx = direct.begin_with(begin).await?;
                let row: (Uuid, String, String) = sqlx::query_as(TENANT_SELECT)
                    .bind(org)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, AnyError>(row.0)
            }
        })
    };
    let with_settings: &'static str = format!("SELECT {REQUEST_SETTINGS}; BEGIN").leak();

    println!(
        "tenant-tx: {} organizations, {} connections, {} rounds of {:?} per variant",
        tenants.len(),
        s.connections,
        s.rounds,
        s.round
    );
    report(
        &mut compare(
            s,
            &tenants,
            vec![
                (
                    "tenant transaction (runtime role, RLS, context bound)",
                    ours,
                ),
                (
                    "same SQL direct with the request's settings (owner, RLS bypassed)",
                    direct_sql(with_settings),
                ),
                ("same SQL direct (owner, RLS bypassed)", direct_sql("BEGIN")),
            ],
        )
        .await?,
    );
    runtime.close().await;
    direct.close().await;
    Ok(())
}

/// What [`tenant_transaction`] reads: its organization's row.
const TENANT_SELECT: &str = r"SELECT id, name, slug FROM organizations WHERE id = $1";

/// A tenant transaction of the tenant's owner on `runtime` (bind the context, read its
/// organization's row under RLS, commit).
fn tenant_transaction(runtime: &RuntimePool) -> TenantOp {
    let runtime = runtime.clone();
    op(move |(user, org): (Uuid, Uuid)| {
        let runtime = runtime.clone();
        async move {
            let mut tx = TenantTx::begin(&runtime, &RequestContext::user(user).in_org(org)).await?;
            let row: (Uuid, String, String) = sqlx::query_as(TENANT_SELECT)
                .bind(org)
                .fetch_one(tx.conn())
                .await?;
            tx.commit().await?;
            Ok::<_, AnyError>(row.0)
        }
    })
}

/// Sends a request and reads its whole answer, which must be a success.
async fn send(request: reqwest::RequestBuilder) -> Result<(), AnyError> {
    let response = request.send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(())
}

/// An operation that sends `request` (a GET with its credential) and reads the whole answer.
fn get_op(request: reqwest::RequestBuilder) -> Op<(Uuid, Uuid)> {
    op(move |(_, org): (Uuid, Uuid)| {
        let request = request.try_clone();
        async move {
            send(request.ok_or("request not clonable")?).await?;
            Ok(org)
        }
    })
}

/// An operation on one (user, organization).
type TenantOp = Op<(Uuid, Uuid)>;

/// One benchmarked operation on one tenant.
type Op<T> =
    Arc<dyn Fn(T) -> Pin<Box<dyn Future<Output = Result<Uuid, AnyError>> + Send>> + Send + Sync>;

fn op<T, F, Fut>(f: F) -> Op<T>
where
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Uuid, AnyError>> + Send + 'static,
{
    Arc::new(move |t| Box::pin(f(t)))
}

/// Statements run on one connection for one organization, for [`under_rls_and_as_owner`].
type SqlWork = Arc<
    dyn for<'c> Fn(
            &'c mut PgConnection,
            Uuid,
        ) -> Pin<Box<dyn Future<Output = Result<(), AnyError>> + Send + 'c>>
        + Send
        + Sync,
>;

/// The same statements `work` runs, in a tenant transaction of the tenant's user (RLS) and in
/// an owner transaction (RLS off): the pair every "RLS vs owner" comparison times.
fn under_rls_and_as_owner(
    runtime: &RuntimePool,
    direct: &PgPool,
    work: SqlWork,
) -> (TenantOp, TenantOp) {
    let under_rls = op({
        let (runtime, work) = (runtime.clone(), work.clone());
        move |(user, org): (Uuid, Uuid)| {
            let (runtime, work) = (runtime.clone(), work.clone());
            async move {
                let mut tx =
                    TenantTx::begin(&runtime, &RequestContext::user(user).in_org(org)).await?;
                work(tx.conn(), org).await?;
                tx.commit().await?;
                Ok(org)
            }
        }
    });
    let as_owner = op({
        let direct = direct.clone();
        move |(_, org): (Uuid, Uuid)| {
            let (direct, work) = (direct.clone(), work.clone());
            async move {
                let mut tx = direct.begin().await?;
                work(&mut tx, org).await?;
                tx.commit().await?;
                Ok(org)
            }
        }
    });
    (under_rls, as_owner)
}

/// Warms every named variant, then alternates rounds of them; each one's totals, in order.
async fn compare<T: Clone + Send + Sync + 'static>(
    s: &Settings,
    tenants: &Arc<Vec<T>>,
    variants: Vec<(&'static str, Op<T>)>,
) -> Result<Vec<(&'static str, Stats)>, AnyError> {
    for (_, variant) in &variants {
        measure(tenants, s.connections, Duration::from_secs(1), variant).await?;
    }
    let mut totals: Vec<Stats> = variants.iter().map(|_| Stats::default()).collect();
    for _ in 0..s.rounds {
        for ((_, variant), total) in variants.iter().zip(totals.iter_mut()) {
            total.add(measure(tenants, s.connections, s.round, variant).await?);
        }
    }
    Ok(variants
        .into_iter()
        .map(|(name, _)| name)
        .zip(totals)
        .collect())
}

/// Prints the variants as a table and each one's throughput relative to the last (the baseline).
fn report(variants: &mut [(&str, Stats)]) {
    println!("| variant | per second | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    for (name, stats) in variants.iter_mut() {
        stats.print(name);
    }
    if let Some((baseline, rest)) = variants.split_last() {
        for (name, stats) in rest {
            println!(
                "ratio {name} / {}: {:.2}",
                baseline.0,
                stats.rate() / baseline.1.rate()
            );
        }
    }
}

/// A session token of `user` for a benchmark (an hour long).
async fn bench_session(runtime: &RuntimePool, user: Uuid) -> Result<String, AnyError> {
    Ok(identity::create_session(
        runtime,
        user,
        Duration::from_secs(3600),
        None,
        Some("tenantry bench"),
    )
    .await?
    .token)
}

/// Puts `org` on `bench-unlimited` (made on first use): every feature a benchmark needs, no limit.
async fn on_unlimited_plan(owner: &PgPool, org: Uuid) -> Result<(), AnyError> {
    sqlx::query(
        r"INSERT INTO plans (code, name, tier, features, limits, listed)
          VALUES ('bench-unlimited', 'Bench', 'enterprise', '{integrations,ai}', '{}', false)
          ON CONFLICT (code) DO NOTHING",
    )
    .execute(owner)
    .await?;
    sqlx::query(
        r"UPDATE subscriptions SET plan_code = 'bench-unlimited', status = 'active',
                 stripe_subscription_id = NULL, current_period_end = NULL
           WHERE organization_id = $1",
    )
    .bind(org)
    .execute(owner)
    .await?;
    Ok(())
}

/// Fresh credentials for every benchmark tenant: a session token and a read API key each.
async fn bench_credentials(
    urls: &ConnectionUrls,
    runtime: &RuntimePool,
    tenants: &[(Uuid, Uuid)],
) -> Result<Vec<(Uuid, String, String)>, AnyError> {
    let owner = OwnerPool::connect(&urls.owner).await?;
    sqlx::query(r"DELETE FROM sessions WHERE user_agent = 'tenantry bench'")
        .execute(&owner.0)
        .await?;
    sqlx::query(r"DELETE FROM api_keys WHERE name = 'tenantry bench'")
        .execute(&owner.0)
        .await?;
    owner.0.close().await;
    let mut credentials = Vec::with_capacity(tenants.len());
    for (user, org) in tenants {
        let session = bench_session(runtime, *user).await?;
        let mut tx = OrgTx::begin(runtime, &RequestContext::user(*user), *org).await?;
        let key = api_keys::store::create(
            &mut tx,
            &Valid::new(NewApiKey {
                name: "tenantry bench".into(),
                access: Access::Read,
                modules: None,
                expires_at: None,
            })?,
        )
        .await?
        .secret;
        tx.commit().await?;
        credentials.push((*org, session, key));
    }
    Ok(credentials)
}

async fn http_auth(urls: &ConnectionUrls, s: &Settings) -> Result<(), AnyError> {
    let runtime = RuntimePool::open(urls, s.connections).await?;
    let direct = pool_options(s.connections).connect(&urls.owner).await?;
    let tenants = bench_tenants(urls, &runtime).await?;
    let credentials = Arc::new(bench_credentials(urls, &runtime, &tenants).await?);

    let (base, server) = spawn_server(&runtime).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(s.connections as usize)
        .build()?;

    let get_org = |use_key: bool| {
        let (client, base) = (client.clone(), base.clone());
        op(move |(org, session, key): (Uuid, String, String)| {
            let request = client
                .get(format!("{base}/v1/orgs/{org}"))
                .bearer_auth(if use_key { key } else { session });
            async move {
                send(request).await?;
                Ok(org)
            }
        })
    };
    let same_sql_direct = op({
        let direct = direct.clone();
        move |(org, _, _): (Uuid, String, String)| {
            let direct = direct.clone();
            async move {
                let mut tx = direct.begin().await?;
                let _row: (Uuid, String, String, serde_json::Value) = sqlx::query_as(
                    r"SELECT o.id, o.name, o.slug, o.settings FROM organizations o WHERE o.id = $1",
                )
                .bind(org)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, AnyError>(org)
            }
        }
    });

    println!(
        "http-auth: {} organizations, {} connections (HTTP clients and database), {} rounds of {:?} per variant",
        credentials.len(),
        s.connections,
        s.rounds,
        s.round
    );
    report(
        &mut compare(
            s,
            &credentials,
            vec![
                (
                    "GET /v1/orgs/{org} by session token (HTTP, auth, RLS)",
                    get_org(false),
                ),
                (
                    "GET /v1/orgs/{org} by API key (HTTP, auth, RLS)",
                    get_org(true),
                ),
                ("same SQL direct (owner, RLS bypassed)", same_sql_direct),
            ],
        )
        .await?,
    );
    server.abort();
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

    /// One timed piece of work that did `ops` operations.
    fn record(&mut self, ops: u64, elapsed: Duration) {
        self.ops += ops;
        self.elapsed += elapsed;
        self.latencies_us
            .push(elapsed.as_micros().min(u128::from(u32::MAX)) as u32);
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
async fn measure<T: Clone + Send + Sync + 'static>(
    tenants: &Arc<Vec<T>>,
    connections: u32,
    duration: Duration,
    op: &Op<T>,
) -> Result<Stats, AnyError> {
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
                op(tenants[i % tenants.len()].clone()).await?;
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
