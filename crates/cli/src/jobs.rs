//! `tenantry worker` (background jobs alone), the worker `serve` runs beside the API, and
//! `tenantry jobs` (list, retry, cancel, enqueue upkeep).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use tenantry_db::queue::{self, NewJob};
use tenantry_server::email::Mailer;
use tenantry_server::jobs::{self, Worker, WorkerConfig};
use uuid::Uuid;

use crate::database::Database;
use crate::AnyError;

/// How the worker runs (`serve` and `worker`).
#[derive(Args, Clone, Debug)]
pub struct WorkerOptions {
    /// Jobs run at once by this process.
    #[arg(long, env = "TENANTRY_WORKER_CONCURRENCY", default_value_t = 4)]
    pub worker_concurrency: usize,
    /// Seconds a claimed job stays this worker's without renewal; a killed worker's jobs run
    /// again after it.
    #[arg(long, env = "TENANTRY_JOB_LEASE_SECONDS", default_value_t = 60)]
    pub job_lease_seconds: u64,
    /// Seconds between looks for due jobs when no notification arrives.
    #[arg(long, env = "TENANTRY_JOB_POLL_SECONDS", default_value_t = 2)]
    pub job_poll_seconds: u64,
    /// Poll only, without LISTEN (for PgBouncer in transaction mode).
    #[arg(long, env = "TENANTRY_JOB_NO_LISTEN")]
    pub job_no_listen: bool,
    /// The SMTP server outbox messages go through: `smtps://host:465` (TLS) or
    /// `smtp://host:587?tls=required` (STARTTLS), with `user:password@` to sign in; plain
    /// `smtp://` only to a relay on this machine. Without it, messages stay in the outbox.
    #[arg(long, env = "TENANTRY_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of outbox messages.
    #[arg(
        long,
        env = "TENANTRY_SMTP_FROM",
        default_value = "Tenantry <noreply@localhost>"
    )]
    pub smtp_from: String,
    /// Who hears of the platform's own problems (WAL archiving failing), by email through the
    /// SMTP server, once per episode.
    #[arg(long, env = "TENANTRY_OPERATOR_EMAIL")]
    pub operator_email: Option<String>,
    /// Seconds between the worker's reports: the queue's depth in the log, the WAL archive
    /// checked (an error logged each time it fails, the operator alerted once).
    #[arg(long, env = "TENANTRY_WORKER_REPORT_SECONDS", default_value_t = 60)]
    pub worker_report_seconds: u64,
    #[command(flatten)]
    pub stripe: crate::StripeOptions,
    #[command(flatten)]
    pub google: GoogleOptions,
}

/// Google, for the Analytics and Sheets integrations' syncs.
#[derive(Args, Clone, Debug)]
pub struct GoogleOptions {
    /// The OAuth client Google refresh tokens were issued to (unless an integration stores its
    /// own `client_id` and `client_secret`).
    #[arg(long, env = "TENANTRY_GOOGLE_CLIENT_ID")]
    pub google_client_id: Option<String>,
    #[arg(long, env = "TENANTRY_GOOGLE_CLIENT_SECRET", hide_env_values = true)]
    pub google_client_secret: Option<String>,
    /// Google's OAuth 2.0 token endpoint.
    #[arg(
        long,
        env = "TENANTRY_GOOGLE_TOKEN_URL",
        default_value = "https://oauth2.googleapis.com/token"
    )]
    pub google_token_url: String,
    /// Google's consent screen (connecting an integration with `POST …/authorize`).
    #[arg(
        long,
        env = "TENANTRY_GOOGLE_AUTHORIZATION_URL",
        default_value = "https://accounts.google.com/o/oauth2/v2/auth"
    )]
    pub google_authorization_url: String,
    /// The callback registered with Google for connecting integrations (default:
    /// PUBLIC_URL/v1/integrations/oauth/callback).
    #[arg(long, env = "TENANTRY_GOOGLE_REDIRECT_URL")]
    pub google_redirect_url: Option<String>,
    /// The Google Analytics Data API's base URL.
    #[arg(
        long,
        env = "TENANTRY_GOOGLE_ANALYTICS_API_BASE",
        default_value = "https://analyticsdata.googleapis.com"
    )]
    pub google_analytics_api_base: String,
    /// The Google Sheets API's base URL.
    #[arg(
        long,
        env = "TENANTRY_GOOGLE_SHEETS_API_BASE",
        default_value = "https://sheets.googleapis.com"
    )]
    pub google_sheets_api_base: String,
}

impl GoogleOptions {
    /// The server's OAuth client at Google (id, secret), when configured.
    fn client(&self) -> Result<Option<(String, String)>, AnyError> {
        match (&self.google_client_id, &self.google_client_secret) {
            (Some(id), Some(secret)) => Ok(Some((id.clone(), secret.clone()))),
            (None, None) => Ok(None),
            _ => Err(
                "TENANTRY_GOOGLE_CLIENT_ID and TENANTRY_GOOGLE_CLIENT_SECRET go together".into(),
            ),
        }
    }

    /// Connecting integrations on Google's consent screen, when a client is configured.
    pub fn oauth(
        &self,
        public_url: &str,
    ) -> Result<Option<tenantry_server::integrations::oauth::GoogleOAuthConfig>, AnyError> {
        Ok(self.client()?.map(|(client_id, client_secret)| {
            tenantry_server::integrations::oauth::GoogleOAuthConfig {
                client_id,
                client_secret,
                authorization_url: self.google_authorization_url.clone(),
                token_url: self.google_token_url.clone(),
                redirect_url: self.google_redirect_url.clone().unwrap_or_else(|| {
                    format!(
                        "{}/v1/integrations/oauth/callback",
                        public_url.trim_end_matches('/')
                    )
                }),
            }
        }))
    }
}

impl WorkerOptions {
    /// Where the integrations' connectors find their providers.
    fn endpoints(&self) -> Result<tenantry_server::integrations::sync::Endpoints, AnyError> {
        let g = &self.google;
        let google_client = g.client()?;
        Ok(tenantry_server::integrations::sync::Endpoints {
            stripe_api: self.stripe.stripe_api_base.clone(),
            google_token: g.google_token_url.clone(),
            google_analytics_api: g.google_analytics_api_base.clone(),
            google_sheets_api: g.google_sheets_api_base.clone(),
            google_client,
            ..Default::default()
        })
    }
}

impl WorkerOptions {
    fn config(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: self.worker_concurrency.max(1),
            lease: Duration::from_secs(self.job_lease_seconds.max(1)),
            poll: Duration::from_secs(self.job_poll_seconds.max(1)),
            listen: !self.job_no_listen,
            report: Duration::from_secs(self.worker_report_seconds.max(1)),
            ..WorkerConfig::default()
        }
    }
}

/// Runs the service's job kinds until `shutdown`, then finishes or gives back its jobs.
pub async fn run_worker(
    database: &Database,
    options: &WorkerOptions,
    vault: Arc<tenantry_server::vault::Vault>,
    pool_size: u32,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AnyError> {
    let owner = database.owner_pool().await?;
    let mailer = match &options.smtp_url {
        Some(url) => Some(Arc::new(Mailer::new(url, &options.smtp_from)?)),
        None => {
            let waiting: i64 =
                sqlx::query_scalar(r"SELECT count(*) FROM outbox WHERE sent_at IS NULL")
                    .fetch_one(&owner.0)
                    .await?;
            tracing::warn!(
                waiting,
                "SMTP is not configured (TENANTRY_SMTP_URL): outbox messages are kept, not sent"
            );
            None
        }
    };
    let stripe = options
        .stripe
        .config()?
        .map(tenantry_server::billing::stripe::StripeClient::new)
        .transpose()?;
    let runtime = database.runtime_pool(pool_size).await?;
    if database.managed_cluster().is_some() {
        crate::backup::schedule(&owner).await?;
    }
    if options.operator_email.is_none() {
        tracing::warn!(
            "no operator address (TENANTRY_OPERATOR_EMAIL): the platform's problems are only logged"
        );
    }
    let registry = tenantry_server::email::register_alerts(
        jobs::registry(
            mailer.clone(),
            stripe,
            Some(tenantry_server::integrations::sync::Connectors::new(
                vault,
                options.endpoints()?,
            )?),
        ),
        mailer,
        options.operator_email.clone(),
    );
    let worker = Worker::new(
        owner.clone(),
        runtime.clone(),
        crate::backup::register(registry, database.managed_cluster()),
        options.config(),
    );

    let result = worker.run(shutdown).await;
    runtime.close().await;
    owner.0.close().await;
    Ok(result?)
}

#[derive(Subcommand)]
pub enum JobsAction {
    /// The newest jobs, with their state, attempts and last error.
    List {
        /// queued, running, dead or cancelled (jobs that succeeded are deleted).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue a dead or cancelled job again, its attempts reset.
    Retry { id: Uuid },
    /// Cancel a queued job.
    Cancel { id: Uuid },
    /// The schedules: cron, zone, job kind, next and last run.
    Schedules,
    /// Create or change a schedule (five-field cron, in UTC or a named zone).
    Schedule {
        name: String,
        #[arg(long)]
        cron: String,
        #[arg(long)]
        kind: String,
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        #[arg(long, default_value = "{}")]
        payload: String,
        /// Keep it, but stop running it.
        #[arg(long)]
        disabled: bool,
    },
    /// Queue a platform upkeep job now (system.sleep, upkeep.refresh_reports, upkeep.archive,
    /// upkeep.purge_audit, upkeep.audit_partitions, backup.take, backup.verify) with an optional
    /// JSON payload.
    Enqueue {
        kind: String,
        #[arg(long, default_value = "{}")]
        payload: String,
    },
}

pub async fn run(database: &Database, action: JobsAction) -> Result<(), AnyError> {
    let owner = database.owner_pool().await?;
    database.migrate(&owner, None).await?;
    let result = act(&owner, &known_kinds(database), action).await;
    owner.0.close().await;
    result
}

async fn act(
    owner: &tenantry_db::OwnerPool,
    known_kinds: &jobs::Registry,
    action: JobsAction,
) -> Result<(), AnyError> {
    match action {
        JobsAction::List { state, limit } => {
            let rows = queue::list(&owner.0, state.as_deref(), limit.clamp(1, 1000)).await?;
            if rows.is_empty() {
                println!("no jobs");
            }
            for j in rows {
                println!(
                    "{}  {:<9}  {}/{}  {}  run at {}{}",
                    j.id,
                    j.state,
                    j.attempts,
                    j.max_attempts,
                    j.kind,
                    j.run_at.to_rfc3339(),
                    j.last_error
                        .map(|e| format!("  last error: {e}"))
                        .unwrap_or_default()
                );
            }
        }
        JobsAction::Retry { id } => {
            if !queue::retry(&owner.0, id).await? {
                return Err(format!("job {id} is not dead or cancelled").into());
            }
            println!("job {id} queued again");
        }
        JobsAction::Cancel { id } => {
            if !queue::cancel(&owner.0, id).await? {
                return Err(format!("job {id} is not queued").into());
            }
            println!("job {id} cancelled");
        }
        JobsAction::Schedules => {
            for s in queue::schedules(&owner.0).await? {
                println!(
                    "{:<16} {:<14} {:<14} {:<24} {}  next {}  last {}",
                    s.name,
                    s.cron,
                    s.time_zone,
                    s.kind,
                    if s.enabled { "on " } else { "off" },
                    s.next_run_at
                        .map_or("(not computed yet)".into(), |t| t.to_rfc3339()),
                    s.last_run_at.map_or("never".into(), |t| t.to_rfc3339())
                );
            }
        }
        JobsAction::Schedule {
            name,
            cron,
            kind,
            time_zone,
            payload,
            disabled,
        } => {
            jobs::schedule::next_local(&cron, chrono::Utc::now().naive_utc())?;
            if known_kinds.get(&kind).is_none() {
                return Err(format!("no job kind {kind:?}").into());
            }
            let row = queue::ScheduleRow {
                name: name.clone(),
                cron,
                time_zone,
                kind,
                payload: json_payload(&payload)?,
                enabled: !disabled,
                next_run_at: None,
                last_run_at: None,
            };
            queue::set_schedule(&owner.0, &row).await?;
            println!("schedule {name} saved");
        }
        JobsAction::Enqueue { kind, payload } => {
            let spec = known_kinds
                .get(&kind)
                .map(|k| k.spec)
                .ok_or_else(|| format!("no job kind {kind:?}"))?;
            let job: NewJob = spec.job(json_payload(&payload)?);
            let id = queue::enqueue_platform(owner, &job)
                .await?
                .ok_or("a job of that kind and key is already pending")?;
            println!("{id}");
        }
    }
    Ok(())
}

/// Every job kind a worker on this database runs (their handlers unconfigured).
fn known_kinds(database: &Database) -> jobs::Registry {
    crate::backup::register(jobs::registry(None, None, None), database.managed_cluster())
}

/// A `--payload`: a JSON object.
fn json_payload(text: &str) -> Result<serde_json::Value, AnyError> {
    match serde_json::from_str(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err("--payload must be a JSON object".into()),
        Err(e) => Err(format!("--payload is not JSON: {e}").into()),
    }
}
