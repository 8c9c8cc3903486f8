//! `tenantry bench pgbouncer`: the service's runtime role through PgBouncer in transaction mode
//! (started here before the managed cluster, as many server connections as clients) vs direct
//! connections, and what the one pooled setting (`statement-cache-capacity=0`) costs on its own
//! on a direct connection: tenant transactions, then `GET /v1/orgs/{org}` over HTTP, rounds
//! alternating.

use std::sync::Arc;

use tenantry_db::cluster::ClusterInfo;
use tenantry_db::pgbouncer::PgBouncer;
use tenantry_db::{ConnectionUrls, OwnerPool, RuntimePool, ServiceKey, RUNTIME_ROLE};
use uuid::Uuid;

use super::{
    bench_credentials, bench_tenants, compare, op, report, send, spawn_server, tenant_transaction,
    Settings, TenantOp, BENCH_DATABASE,
};
use crate::AnyError;

pub(super) async fn run(
    urls: &ConnectionUrls,
    info: Option<&ClusterInfo>,
    s: &Settings,
) -> Result<(), AnyError> {
    let info = info.ok_or(
        "the pgbouncer benchmark puts a PgBouncer before the managed cluster: run it without DATABASE_URL",
    )?;
    let dir = std::env::temp_dir().join(format!("tenantry-bench-pgbouncer-{}", info.port));
    let bouncer = PgBouncer::ensure(info, &dir, s.connections)?;
    // The same hop PgBouncer makes to the cluster, without PgBouncer: what the pooler adds.
    let tcp = format!(
        "postgres://{RUNTIME_ROLE}:{}@127.0.0.1:{}/{BENCH_DATABASE}?statement-cache-capacity=0",
        info.runtime_password, info.port
    );
    let result = compare_paths(urls, &bouncer.runtime_url(info, BENCH_DATABASE), &tcp, s).await;
    bouncer.stop();
    result
}

async fn compare_paths(
    urls: &ConnectionUrls,
    pooled: &str,
    tcp: &str,
    s: &Settings,
) -> Result<(), AnyError> {
    let owner = OwnerPool::connect(&urls.owner).await?;
    let key = ServiceKey::load(&owner).await?;
    owner.0.close().await;
    let separator = if urls.runtime.contains('?') { '&' } else { '?' };
    let uncached = format!("{}{separator}statement-cache-capacity=0", urls.runtime);
    let paths = [
        (
            "through PgBouncer (loopback TCP, statement cache off)",
            pooled,
        ),
        ("direct over loopback TCP, statement cache off", tcp),
        ("direct, statement cache off", uncached.as_str()),
        ("direct", urls.runtime.as_str()),
    ];
    let mut pools = Vec::new();
    for (name, url) in paths {
        pools.push((
            name,
            RuntimePool::connect(url, s.connections, key.clone()).await?,
        ));
    }
    let tenants = Arc::new(bench_tenants(urls, &pools[3].1).await?);
    println!(
        "pgbouncer: {} organizations, {} clients and {} connections per path (PgBouncer: as many \
         server connections; direct: the cluster's Unix socket unless said), {} rounds of {:?} per variant",
        tenants.len(),
        s.connections,
        s.connections,
        s.rounds,
        s.round
    );

    println!("\nA tenant transaction (bind, one indexed SELECT under RLS, commit):");
    let transactions: Vec<(&'static str, TenantOp)> = pools
        .iter()
        .map(|(name, pool)| (*name, tenant_transaction(pool)))
        .collect();
    report(&mut compare(s, &tenants, transactions).await?);

    println!("\nGET /v1/orgs/{{org}} by session token (HTTP, auth, RLS):");
    let credentials = Arc::new(bench_credentials(urls, &pools[3].1, &tenants).await?);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(s.connections as usize)
        .build()?;
    let mut servers = Vec::new();
    let mut requests = Vec::new();
    for (name, pool) in &pools {
        let (base, server) = spawn_server(pool).await?;
        servers.push(server);
        let client = client.clone();
        requests.push((
            *name,
            op(move |(org, session, _): (Uuid, String, String)| {
                let request = client
                    .get(format!("{base}/v1/orgs/{org}"))
                    .bearer_auth(session);
                async move {
                    send(request).await?;
                    Ok(org)
                }
            }),
        ));
    }
    report(&mut compare(s, &credentials, requests).await?);
    // The pools are dropped, not closed: a server's meter still flushes its counts as it stops.
    for server in servers {
        server.abort();
    }
    Ok(())
}
