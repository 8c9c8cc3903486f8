//! Prometheus metrics on a listen address of their own (`TENANTRY_METRICS_LISTEN`, off by
//! default: what they tell — routes, volumes, queue depth — is for operators, not for the API's
//! clients). Requests are counted and timed in the API's middleware as they are served; the
//! gauges (pool, job queue, WAL archive, last backup) are read when Prometheus scrapes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tenantry_db::cluster::ManagedCluster;
use tenantry_db::{queue, OwnerPool, RuntimePool};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics: {0}")]
    Install(String),
    #[error("TENANTRY_METRICS_LISTEN {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Request latency buckets, in seconds: from a cached read to the request time limit.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the process's recorder (once; later calls return the same handle). Until it is
/// installed, recording a metric costs next to nothing and keeps nothing.
pub fn install() -> Result<&'static PrometheusHandle, MetricsError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
        .map_err(|e| MetricsError::Install(e.to_string()))?
        .install_recorder()
        .map_err(|e| MetricsError::Install(e.to_string()))?;
    Ok(HANDLE.get_or_init(|| handle))
}

/// Middleware: counts and times every request by method, route (its template, never the path
/// with its ids) and status. A streamed reply is timed to its first byte.
pub async fn track(request: Request, next: Next) -> Response {
    if HANDLE.get().is_none() {
        return next.run(request).await;
    }
    let started = Instant::now();
    // The methods the API serves by name; any other token a client sends is one label, so
    // no request can mint new series.
    let method = match request.method().as_str() {
        known @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => known,
        _ => "other",
    }
    .to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("tenantry_http_requests_total", &labels).increment(1);
    metrics::histogram!("tenantry_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// What the gauges are read from at each scrape.
#[derive(Clone)]
pub struct Sources {
    pub runtime: Option<RuntimePool>,
    pub owner: OwnerPool,
    /// The managed cluster, for the age of its last backup (None: an external server's
    /// backups are its operator's).
    pub cluster: Option<ManagedCluster>,
}

/// The last backup's finish, read from the repository at most once a minute (it runs
/// pgBackRest).
#[derive(Default)]
struct BackupCache {
    read_at: Option<Instant>,
    finished_at: Option<chrono::DateTime<Utc>>,
}

impl Sources {
    async fn refresh(&self, backups: &Mutex<BackupCache>) {
        if let Some(runtime) = &self.runtime {
            let (open, idle, max) = runtime.usage();
            metrics::gauge!("tenantry_db_pool_connections", "state" => "idle").set(idle as f64);
            metrics::gauge!("tenantry_db_pool_connections", "state" => "in_use")
                .set(open.saturating_sub(idle as u32) as f64);
            metrics::gauge!("tenantry_db_pool_max_connections").set(f64::from(max));
        }
        match queue::depth(&self.owner.0).await {
            Ok(depth) => {
                metrics::gauge!("tenantry_jobs_due").set(depth.due as f64);
                metrics::gauge!("tenantry_jobs_running").set(depth.running as f64);
                metrics::gauge!("tenantry_jobs_oldest_due_seconds")
                    .set(depth.oldest_due_seconds.unwrap_or(0.0));
            }
            Err(e) => tracing::warn!(error = %e, "metrics: reading the job queue failed"),
        }
        match tenantry_db::backup::archive_health(&self.owner.0).await {
            Ok(health) => {
                metrics::gauge!("tenantry_wal_archiving")
                    .set(f64::from(u8::from(health.archiving)));
                metrics::gauge!("tenantry_wal_archive_failing")
                    .set(f64::from(u8::from(health.problem().is_some())));
                if let Some(at) = health.last_archived_at {
                    metrics::gauge!("tenantry_wal_last_archived_age_seconds").set(age_seconds(at));
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: reading the WAL archiver failed"),
        }
        if let Some(cluster) = &self.cluster {
            let stale = backups
                .lock()
                .map(|c| {
                    c.read_at
                        .is_none_or(|at| at.elapsed() > Duration::from_secs(60))
                })
                .unwrap_or(true);
            if stale {
                let finished_at = match cluster.backups().await {
                    Ok(sets) => sets.last().map(|set| set.finished_at),
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics: listing the backups failed");
                        None
                    }
                };
                if let Ok(mut cache) = backups.lock() {
                    *cache = BackupCache {
                        read_at: Some(Instant::now()),
                        finished_at,
                    };
                }
            }
            let finished_at = backups.lock().ok().and_then(|c| c.finished_at);
            // No backup yet: as old as can be, so an alert on age fires.
            metrics::gauge!("tenantry_backup_last_age_seconds")
                .set(finished_at.map_or(f64::INFINITY, age_seconds));
        }
    }
}

fn age_seconds(at: chrono::DateTime<Utc>) -> f64 {
    (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sources: Sources,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), MetricsError> {
    let handle = install()?;
    let listen = listener
        .local_addr()
        .map_err(|e| MetricsError::Listen(([0, 0, 0, 0], 0).into(), e))?;
    let backups = Arc::new(Mutex::new(BackupCache::default()));
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let (sources, backups) = (sources.clone(), backups.clone());
            async move {
                sources.refresh(&backups).await;
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    );
    // Histograms keep their samples until upkeep folds them in: without it, memory would grow
    // between scrapes (or forever, with no scraper).
    let upkeep = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
    tracing::info!(%listen, "metrics on http://{listen}/metrics");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| MetricsError::Listen(listen, e));
    upkeep.abort();
    served
}
