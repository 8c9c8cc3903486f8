//! The `tenantry` command.

mod ai;
mod backup;
mod database;
mod jobs;
mod key_file;
mod orgs;
mod plans;
mod seed;
mod tools;
mod users;
mod vault;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sqlx::types::ipnetwork::IpNetwork;
use tenantry_db::cluster::{ClusterStatus, ManagedCluster, Role};
use tenantry_db::{guard, leakproof, migrate};
use tenantry_server::http::{self, AppState, HttpConfig};

use crate::database::Database;

#[derive(Parser)]
#[command(
    name = "tenantry",
    version,
    about = "Multi-tenant business backend on PostgreSQL with row-level security"
)]
struct Cli {
    /// Data directory of the managed PostgreSQL cluster (used when DATABASE_URL is not set).
    #[arg(
        long,
        global = true,
        env = "TENANTRY_DATA_DIR",
        default_value = ".tenantry"
    )]
    data_dir: PathBuf,
    /// Address the HTTP API listens on.
    #[arg(
        long,
        global = true,
        env = "TENANTRY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    listen: SocketAddr,
    /// Where `serve` and `worker` answer Prometheus at /metrics (default: nowhere). Keep it
    /// private: it tells routes, volumes and queue depth.
    #[arg(long, global = true, env = "TENANTRY_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Log format on stderr: `text` for people, `json` for log collectors.
    #[arg(long, global = true, env = "TENANTRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    vault: vault::VaultOptions,
    #[command(flatten)]
    backup: backup::BackupOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

// Parsed once per process; the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API (starts, migrates and at exit stops the managed cluster when it owns it).
    Serve {
        /// Connections the service keeps to PostgreSQL.
        #[arg(long, env = "TENANTRY_DB_POOL", default_value_t = 16)]
        pool_size: u32,
        /// Where users reach the service, for links in emails (default: http://LISTEN).
        #[arg(long, env = "TENANTRY_PUBLIC_URL")]
        public_url: Option<String>,
        /// Seconds a request may take before it is answered 503 and rolled back.
        #[arg(long, env = "TENANTRY_REQUEST_TIMEOUT", default_value_t = 30)]
        request_timeout: u64,
        /// The same for bulk ingests, whose bodies may take minutes to arrive.
        #[arg(long, env = "TENANTRY_BULK_TIMEOUT", default_value_t = 900)]
        bulk_timeout: u64,
        /// Seconds a connection has to send a request's headers, from when it opens or its last
        /// response went out; slow-header and idle keep-alive connections are closed after it.
        #[arg(long, env = "TENANTRY_HEADER_TIMEOUT", default_value_t = 10)]
        header_timeout: u64,
        /// A reverse proxy in front of the service (address or CIDR, repeatable; the variable takes
        /// a comma-separated list): its requests carry the client's address in `X-Forwarded-For`,
        /// which audit records and sign-in limits then use. Others' `X-Forwarded-For` is ignored.
        #[arg(
            long = "trusted-proxy",
            env = "TENANTRY_TRUSTED_PROXIES",
            value_delimiter = ','
        )]
        trusted_proxies: Vec<IpNetwork>,
        #[command(flatten)]
        sign_in: SignInOptions,
        #[command(flatten)]
        worker: jobs::WorkerOptions,
        #[command(flatten)]
        ai: ai::AiOptions,
        /// Serve the API only, and leave background jobs to `tenantry worker` processes.
        #[arg(long, env = "TENANTRY_NO_WORKER")]
        no_worker: bool,
    },
    /// Run background jobs only (no API): scale workers apart from the API. Stops on SIGTERM or
    /// Ctrl-C after finishing (or giving back) the jobs in hand.
    Worker {
        /// Connections the worker's jobs use.
        #[arg(long, env = "TENANTRY_DB_POOL", default_value_t = 8)]
        pool_size: u32,
        #[command(flatten)]
        worker: jobs::WorkerOptions,
    },
    /// The job queue: list, retry, cancel, or queue platform upkeep now.
    Jobs {
        #[command(subcommand)]
        action: jobs::JobsAction,
    },
    /// Apply, revert or list migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Manage the local PostgreSQL cluster.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
    /// Backups of the managed cluster (pgBackRest: compressed, encrypted; its WAL is archived
    /// continuously, so a restore reaches any moment since the oldest backup).
    Backup {
        #[command(subcommand)]
        action: backup::BackupAction,
    },
    /// Bring the stopped managed cluster back to a moment (or the latest archived commit) from
    /// its backups and WAL archive.
    Restore {
        /// The moment to restore to (RFC 3339, e.g. 2026-12-01T10:43:59Z): every commit before
        /// it, none after.
        #[arg(long, conflicts_with = "latest")]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Every archived commit.
        #[arg(long)]
        latest: bool,
        /// Restore a copy into this new data directory (absent or empty) instead of in place;
        /// the cluster may keep running.
        #[arg(long)]
        into: Option<std::path::PathBuf>,
    },
    /// Create a demo organization with members and teams, and print how to sign in.
    Seed,
    /// One organization's data: export it as a bundle, import a bundle, erase it for good.
    Org {
        #[command(subcommand)]
        action: orgs::OrgAction,
    },
    /// The plan catalog: list, export to JSON, import from JSON.
    Plans {
        #[command(subcommand)]
        action: plans::PlansAction,
    },
    /// The credential vault: a new key, which keys seal what, rotation.
    Vault {
        #[command(subcommand)]
        action: vault::VaultAction,
    },
    /// Accounts: name the first platform admin (who manages roles over the API afterwards).
    Users {
        #[command(subcommand)]
        action: users::UsersAction,
    },
    /// Fast Track upkeep: reports, archival, audit retention.
    Tools {
        #[command(subcommand)]
        action: tools::ToolsAction,
    },
    /// Run a named benchmark and print ratios measured side by side (in a build with the
    /// `bench` feature: `cargo build --release -p tenantry --features bench`).
    Bench {
        /// tenant-tx, http-auth, kpi-ingest, kpi-dashboard, kpi-read, sign-in-burst, fasttrack, crm,
        /// jobs, appointments, content, stripe-webhooks, metering, vault, integrations, ai,
        /// org-export
        name: String,
        /// Seconds per measured round (rounds alternate between the compared variants).
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// Rounds per variant.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Concurrent connections, the same for every variant.
        #[arg(long, default_value_t = 8)]
        connections: u32,
    },
}

/// External sign-in methods (all optional).
#[derive(clap::Args)]
struct SignInOptions {
    /// OAuth client id at Google (or at the issuer named by --oidc-issuer): enables OpenID Connect sign-in.
    #[arg(long, env = "TENANTRY_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,
    #[arg(long, env = "TENANTRY_OIDC_CLIENT_SECRET", hide_env_values = true)]
    oidc_client_secret: Option<String>,
    /// Another OpenID Connect issuer instead of Google.
    #[arg(long, env = "TENANTRY_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// The callback URL registered with the provider (default: PUBLIC_URL/v1/auth/oidc/callback).
    #[arg(long, env = "TENANTRY_OIDC_REDIRECT_URL")]
    oidc_redirect_url: Option<String>,
    /// Issuer of external bearer JWTs (e.g. your Clerk frontend API URL): enables them.
    #[arg(long, env = "TENANTRY_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Its JWKS URL (default: ISSUER/.well-known/jwks.json).
    #[arg(long, env = "TENANTRY_JWT_JWKS_URL")]
    jwt_jwks_url: Option<String>,
    /// Required `aud`, if the tokens carry one.
    #[arg(long, env = "TENANTRY_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Accepted `azp` values, comma-separated (e.g. your app's origins).
    #[arg(long, env = "TENANTRY_JWT_AUTHORIZED_PARTIES", value_delimiter = ',')]
    jwt_authorized_parties: Vec<String>,
}

impl SignInOptions {
    fn apply(self, config: &mut HttpConfig) -> Result<(), AnyError> {
        use tenantry_server::identity::external::{JwtConfig, OidcConfig};
        if let Some(client_id) = self.oidc_client_id {
            let secret = self
                .oidc_client_secret
                .ok_or("TENANTRY_OIDC_CLIENT_SECRET is required with TENANTRY_OIDC_CLIENT_ID")?;
            let redirect = self.oidc_redirect_url.unwrap_or_else(|| {
                format!(
                    "{}/v1/auth/oidc/callback",
                    config.public_url.trim_end_matches('/')
                )
            });
            let mut oidc = OidcConfig::google(client_id, secret, redirect);
            if let Some(issuer) = self.oidc_issuer.filter(|i| i != OidcConfig::GOOGLE_ISSUER) {
                oidc.issuer = issuer;
                oidc.provider = "oidc".into();
            }
            config.oidc = Some(oidc);
        }
        if let Some(issuer) = self.jwt_issuer {
            let jwks_url = self.jwt_jwks_url.unwrap_or_else(|| {
                format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'))
            });
            config.jwt = Some(JwtConfig {
                issuer,
                jwks_url,
                audience: self.jwt_audience,
                authorized_parties: self.jwt_authorized_parties,
                algorithms: vec![
                    jsonwebtoken::Algorithm::RS256,
                    jsonwebtoken::Algorithm::ES256,
                ],
            });
        }
        Ok(())
    }
}

/// Billing through Stripe (all three, or none: billing then stays on the plans operators set).
/// The API takes webhooks and opens checkout with it; workers reconcile with it.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct StripeOptions {
    /// Stripe's secret API key (`sk_…`).
    #[arg(long, env = "TENANTRY_STRIPE_SECRET_KEY", hide_env_values = true)]
    stripe_secret_key: Option<String>,
    /// The webhook endpoint's signing secrets (`whsec_…`), comma-separated while rotating.
    #[arg(
        long,
        env = "TENANTRY_STRIPE_WEBHOOK_SECRET",
        value_delimiter = ',',
        hide_env_values = true
    )]
    stripe_webhook_secret: Vec<String>,
    /// Stripe's API base URL.
    #[arg(
        long,
        env = "TENANTRY_STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    pub(crate) stripe_api_base: String,
}

impl StripeOptions {
    pub(crate) fn config(
        &self,
    ) -> Result<Option<tenantry_server::billing::stripe::StripeConfig>, AnyError> {
        match (
            &self.stripe_secret_key,
            self.stripe_webhook_secret.is_empty(),
        ) {
            (None, true) => Ok(None),
            (Some(secret_key), false) => Ok(Some(tenantry_server::billing::stripe::StripeConfig {
                secret_key: secret_key.clone(),
                webhook_secrets: self.stripe_webhook_secret.clone(),
                api_base: self.stripe_api_base.clone(),
            })),
            _ => Err(
                "TENANTRY_STRIPE_SECRET_KEY and TENANTRY_STRIPE_WEBHOOK_SECRET go together".into(),
            ),
        }
    }
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply pending migrations (all, or up to --to).
    Up {
        #[arg(long)]
        to: Option<i64>,
    },
    /// Revert the newest migration, or every migration above --to.
    Down {
        #[arg(long)]
        to: Option<i64>,
    },
    /// List migrations and when each was applied.
    Status,
}

#[derive(Subcommand)]
enum DbAction {
    /// Create (first time) and start the managed cluster; it keeps running.
    Start,
    /// Stop the managed cluster.
    Stop,
    /// Say whether the managed cluster exists and runs.
    Status,
    /// Print a connection URL that psql accepts.
    Url {
        #[arg(long, value_enum, default_value_t = UrlRole::Runtime)]
        role: UrlRole,
    },
    /// Check the isolation rules (RLS everywhere, audit triggers, runtime role rights).
    Check,
}

#[derive(Clone, Copy, ValueEnum)]
enum UrlRole {
    Owner,
    Runtime,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Benchmarks print their own results: no line per request or slow statement in between.
    let default_filter = match cli.command {
        Command::Bench { .. } => "info,sqlx=error,tower_http=warn",
        _ => "info,sqlx=warn,tower_http=info",
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TENANTRY_LOG")
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

async fn run(cli: Cli) -> Result<(), AnyError> {
    let mut cluster = ManagedCluster::new(&cli.data_dir);
    // The managed cluster archives its WAL for backups; an external server's are its operator's.
    if std::env::var_os("DATABASE_URL").is_none() {
        cluster = cluster.with_backups(cli.backup.settings(&cli.data_dir)?);
    }
    match cli.command {
        Command::Backup { action } => backup::run(&cluster, action).await,
        Command::Restore { to, latest, into } => backup::restore(&cluster, to, latest, into).await,
        Command::Db { action } => db(&cluster, action).await,
        Command::Serve {
            pool_size,
            public_url,
            request_timeout,
            bulk_timeout,
            header_timeout,
            trusted_proxies,
            sign_in,
            worker,
            ai,
            no_worker,
        } => {
            let mut config = HttpConfig {
                public_url: public_url.unwrap_or_else(|| format!("http://{}", cli.listen)),
                request_timeout: std::time::Duration::from_secs(request_timeout),
                bulk_timeout: std::time::Duration::from_secs(bulk_timeout),
                header_timeout: std::time::Duration::from_secs(header_timeout),
                trusted_proxies,
                ..HttpConfig::default()
            };
            sign_in.apply(&mut config)?;
            config.stripe = worker.stripe.config()?;
            config.google_oauth = worker.google.oauth(&config.public_url)?;
            config.ai = ai.config();
            config.vault = Some(std::sync::Arc::new(cli.vault.load(&cli.data_dir)?));
            let database = Database::open(&cluster).await?;
            let worker = (!no_worker).then_some(worker);
            let result = serve(
                &database,
                (cli.listen, cli.metrics_listen),
                pool_size,
                config,
                worker,
            )
            .await;
            database.close().await?;
            result
        }
        Command::Worker { pool_size, worker } => {
            let database = Database::open(&cluster).await?;
            let owner = database.owner_pool().await?;
            let migrated = database.migrate(&owner, None).await;
            owner.0.close().await;
            let result = match migrated {
                Ok(_) => match cli.vault.load(&cli.data_dir) {
                    Ok(vault) => {
                        let vault = std::sync::Arc::new(vault);
                        let (stop, stopping) = tokio::sync::watch::channel(false);
                        tokio::spawn(async move {
                            shutdown_signal().await;
                            let _ = stop.send(true);
                        });
                        let metrics =
                            serve_metrics(&database, cli.metrics_listen, None, &stopping).await;
                        match metrics {
                            Ok(metrics) => {
                                let worked = jobs::run_worker(
                                    &database,
                                    &worker,
                                    vault,
                                    pool_size,
                                    stopped(stopping),
                                )
                                .await;
                                finish_metrics(metrics).await;
                                worked
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            database.close().await?;
            result
        }
        Command::Jobs { action } => {
            let database = Database::open(&cluster).await?;
            let result = jobs::run(&database, action).await;
            database.close().await?;
            result
        }
        Command::Migrate { action } => {
            let database = Database::open(&cluster).await?;
            let result = migrate_cmd(&database, action).await;
            database.close().await?;
            result
        }
        Command::Seed => {
            let database = Database::open(&cluster).await?;
            let result = seed::run(&database, cli.listen).await;
            database.close().await?;
            result
        }
        Command::Org { action } => {
            let database = Database::open(&cluster).await?;
            let result = orgs::run(&database, action).await;
            database.close().await?;
            result
        }
        Command::Plans { action } => {
            let database = Database::open(&cluster).await?;
            let result = plans::run(&database, action).await;
            database.close().await?;
            result
        }
        Command::Vault { action } => {
            let database = Database::open(&cluster).await?;
            let result = vault::run(&database, &cli.vault, &cli.data_dir, action).await;
            database.close().await?;
            result
        }
        Command::Users { action } => {
            let database = Database::open(&cluster).await?;
            let result = users::run(&database, action).await;
            database.close().await?;
            result
        }
        Command::Tools { action } => {
            let database = Database::open(&cluster).await?;
            let result = tools::run(&database, action).await;
            database.close().await?;
            result
        }
        Command::Bench {
            name,
            seconds,
            rounds,
            connections,
        } => bench(&cluster, &name, seconds, rounds, connections).await,
    }
}

#[cfg(feature = "bench")]
async fn bench(
    cluster: &ManagedCluster,
    name: &str,
    seconds: u64,
    rounds: u32,
    connections: u32,
) -> Result<(), AnyError> {
    let name = <tenantry_bench::Benchmark as ValueEnum>::from_str(name, true)
        .map_err(|e| format!("unknown benchmark {name:?}: {e}"))?;
    let database = Database::open(cluster).await?;
    let target = tenantry_bench::Target {
        urls: database.urls.clone(),
        managed: database.managed_info().cloned(),
    };
    let result = tenantry_bench::run(&target, name, seconds, rounds, connections).await;
    database.close().await?;
    result
}

#[cfg(not(feature = "bench"))]
async fn bench(_: &ManagedCluster, _: &str, _: u64, _: u32, _: u32) -> Result<(), AnyError> {
    Err("this tenantry was built without benchmarks: build it with \
         `cargo build --release -p tenantry --features bench`"
        .into())
}

/// Resolves once `stopping` says stop.
async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// Starts the metrics listener when one is configured; it stops with `stopping`.
async fn serve_metrics(
    database: &Database,
    listen: Option<SocketAddr>,
    runtime: Option<tenantry_db::RuntimePool>,
    stopping: &tokio::sync::watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, AnyError> {
    let Some(listen) = listen else {
        return Ok(None);
    };
    tenantry_server::metrics::install()?;
    let sources = tenantry_server::metrics::Sources {
        runtime,
        owner: database.owner_pool().await?,
        cluster: database.managed_cluster().cloned(),
    };
    let stop = stopped(stopping.clone());
    // Bound here, so a taken address fails the start instead of a task later.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen} for metrics: {e}"))?;
    Ok(Some(tokio::spawn(async move {
        let owner = sources.owner.clone();
        if let Err(e) = tenantry_server::metrics::serve(listener, sources, stop).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
        owner.0.close().await;
    })))
}

/// Waits for the metrics listener to finish (it stops with the service).
async fn finish_metrics(metrics: Option<tokio::task::JoinHandle<()>>) {
    if let Some(task) = metrics {
        let _ = task.await;
    }
}

async fn serve(
    database: &Database,
    (listen, metrics_listen): (SocketAddr, Option<SocketAddr>),
    pool_size: u32,
    config: HttpConfig,
    worker: Option<jobs::WorkerOptions>,
) -> Result<(), AnyError> {
    let owner = database.owner_pool().await?;
    let applied = database.migrate(&owner, None).await?;
    owner.0.close().await;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied migrations");
    }
    let pool = database.runtime_pool(pool_size).await?;
    let vault = config.vault.clone().ok_or("serve needs the vault's keys")?;
    let state = AppState::new(pool.clone(), config)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    println!("Tenantry API on http://{addr} (docs: http://{addr}/docs); Ctrl-C stops it");
    // One signal stops both the API and the worker beside it.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let metrics = serve_metrics(database, metrics_listen, Some(pool.clone()), &stopping).await?;
    let api = http::serve(listener, state, stopped(stopping.clone()));
    let worked = async {
        match &worker {
            Some(options) => {
                jobs::run_worker(
                    database,
                    options,
                    vault.clone(),
                    pool_size.div_ceil(4).max(2),
                    stopped(stopping),
                )
                .await
            }
            None => Ok(()),
        }
    };
    let (served, worked) = tokio::join!(api, worked);
    finish_metrics(metrics).await;
    pool.close().await;
    tracing::info!("stopped serving");
    served?;
    worked
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

async fn migrate_cmd(database: &Database, action: MigrateAction) -> Result<(), AnyError> {
    let owner = database.owner_pool().await?;
    match action {
        MigrateAction::Up { to } => {
            let applied = database.migrate(&owner, to).await?;
            if applied.is_empty() {
                println!("nothing to apply");
            }
            for v in applied {
                println!("applied {v}");
            }
        }
        MigrateAction::Down { to } => {
            let reverted = migrate::down(&owner, to).await?;
            if reverted.is_empty() {
                println!("nothing to revert");
            }
            for v in reverted {
                println!("reverted {v}");
            }
        }
        MigrateAction::Status => {
            for m in migrate::status(&owner).await? {
                let state = m
                    .applied_at
                    .map(|at| format!("applied {}", at.to_rfc3339()))
                    .unwrap_or_else(|| "pending".into());
                println!("{:04} {:<30} {state}", m.version, m.description);
            }
        }
    }
    owner.0.close().await;
    Ok(())
}

async fn db(cluster: &ManagedCluster, action: DbAction) -> Result<(), AnyError> {
    match action {
        DbAction::Start => {
            let running = cluster.ensure_running().await?;
            let owner = tenantry_db::OwnerPool::connect(
                &running.info.url(Role::Owner, tenantry_db::DATABASE_NAME),
            )
            .await?;
            migrate::up(&owner, None).await?;
            owner.0.close().await;
            leakproof::mark(
                &running
                    .info
                    .url(Role::Superuser, tenantry_db::DATABASE_NAME),
            )
            .await?;
            let verb = if running.started_here {
                "started"
            } else {
                "already running"
            };
            println!(
                "{verb}: {} (port {})",
                cluster.root().display(),
                running.info.port
            );
        }
        DbAction::Stop => {
            if cluster.stop().await? {
                println!("stopped");
            } else {
                println!("not running");
            }
        }
        DbAction::Status => match cluster.status() {
            ClusterStatus::NotInitialized => println!("no cluster in {}", cluster.root().display()),
            ClusterStatus::Stopped => println!("stopped ({})", cluster.root().display()),
            ClusterStatus::Running { pid } => {
                let port = cluster
                    .info()
                    .map(|i| i.port.to_string())
                    .unwrap_or_else(|_| "?".into());
                println!(
                    "running (pid {pid}, port {port}, {})",
                    cluster.root().display()
                );
            }
        },
        DbAction::Url { role } => {
            let running = cluster.ensure_running().await?;
            let role = match role {
                UrlRole::Owner => Role::Owner,
                UrlRole::Runtime => Role::Runtime,
            };
            println!("{}", running.info.url(role, tenantry_db::DATABASE_NAME));
        }
        DbAction::Check => {
            let database = Database::open(cluster).await?;
            let owner = database.owner_pool().await?;
            let mut conn = owner.0.acquire().await?;
            let found = guard::violations(&mut conn).await?;
            let slow = leakproof::missing(&mut conn).await?;
            drop(conn);
            owner.0.close().await;
            database.close().await?;
            if !found.is_empty() {
                return Err(format!("isolation rules violated:\n  {}", found.join("\n  ")).into());
            }
            println!("ok: every table is under forced row-level security; the runtime role is unprivileged");
            if !slow.is_empty() {
                println!(
                    "note: customer search and tag filters read whole organizations (correct, but slow) \
                     until a superuser runs, in this database:\n{}",
                    leakproof::mark_sql()
                );
            }
        }
    }
    Ok(())
}
