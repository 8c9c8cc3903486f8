//! Syncs (migrations 0043, 0044): a job per run (`integrations.sync`), queued on demand or by
//! the platform's dispatcher on the integration's schedule, acting for an admin, under RLS: it
//! opens the credentials, asks the provider for the days since its mappings' last sync (a
//! backfill for a mapping never synced), writes each mapped metric's daily values as KPI points
//! with `source` = the provider through the one write path of points (upserts: a re-sync
//! replaces, never duplicates), and records the run. A failure is recorded with secrets
//! redacted, retried with the queue's backoff, and backs the schedule off; a refused credential,
//! or `FAILURES_BEFORE_ERROR` failures in a row, turns the integration to `error` and tells its
//! admins once; a refusal also pauses its schedule until an admin changes something.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{store, Provider};
use crate::jobs::{JobError, JobRun, JobSpec, Registry};
use crate::kernel::error::Error;
use crate::kernel::org_tx::OrgTx;
use crate::kpis::ingest::{write, Row};
use crate::vault::Vault;

pub const SYNC: JobSpec = JobSpec {
    kind: "integrations.sync",
    max_attempts: 5,
};

/// Failed runs in a row after which the integration shows `error`.
pub const FAILURES_BEFORE_ERROR: i32 = 3;
/// Days read on the first sync, unless `config.backfill_days` says otherwise (at most 1,100).
pub const BACKFILL_DAYS: u64 = 90;

/// One metric's value on one day (UTC).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyValue {
    pub metric: String,
    pub day: NaiveDate,
    pub value: f64,
}

/// A provider's failure: worth retrying (429, 5xx, timeouts) or not (a refused credential).
#[derive(Debug, Clone)]
pub struct ConnectorError {
    pub retry: bool,
    pub message: String,
}

impl ConnectorError {
    pub fn retry(message: String) -> Self {
        Self {
            retry: true,
            message,
        }
    }

    pub fn fatal(message: String) -> Self {
        Self {
            retry: false,
            message,
        }
    }

    /// A request to `what` that got no answer (retried): says so plainly when it timed out.
    pub fn transport(what: &str, e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            return Self::retry(format!("{what}: no answer in time (timed out)"));
        }
        let mut message = format!("{what}: {e}");
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Self::retry(message)
    }
}

/// Where the providers' APIs are (the real ones by default; tests point them at their own
/// servers) and the OAuth client Google refresh tokens belong to.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub stripe_api: String,
    pub google_token: String,
    pub google_analytics_api: String,
    pub google_sheets_api: String,
    /// The server's Google OAuth client (id, secret), unless an integration stores its own.
    pub google_client: Option<(String, String)>,
    /// The first wait after a quota refusal; it doubles with each refusal in a run.
    pub quota_backoff: std::time::Duration,
    /// How long a provider may take to answer one request.
    pub timeout: std::time::Duration,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            stripe_api: "https://api.stripe.com".into(),
            google_token: "https://oauth2.googleapis.com/token".into(),
            google_analytics_api: "https://analyticsdata.googleapis.com".into(),
            google_sheets_api: "https://sheets.googleapis.com".into(),
            google_client: None,
            quota_backoff: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// What syncs need: the vault, an HTTP client and the providers' endpoints.
#[derive(Clone)]
pub struct Connectors {
    pub vault: Arc<Vault>,
    pub http: reqwest::Client,
    pub endpoints: Endpoints,
}

impl Connectors {
    pub fn new(vault: Arc<Vault>, endpoints: Endpoints) -> Result<Self, reqwest::Error> {
        Ok(Self {
            vault,
            // A provider that stops answering fails the run (retried) instead of holding it.
            http: reqwest::Client::builder()
                .timeout(endpoints.timeout)
                .build()?,
            endpoints,
        })
    }
}

/// A sync run, as the log shows it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct SyncRun {
    pub id: Uuid,
    /// `schedule`, `manual` or `backfill`.
    pub trigger: String,
    /// `running`, `success` or `error`.
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub range_from: Option<NaiveDate>,
    pub range_to: Option<NaiveDate>,
    pub points_written: i32,
    /// The provider's error, secrets redacted.
    pub error: Option<String>,
}

/// The platform's dispatcher (schedule `integration-syncs`, every minute): queues a sync of
/// every active integration that is due and that its plan lets sync.
pub const DISPATCH: JobSpec = JobSpec {
    kind: "integrations.dispatch",
    max_attempts: 3,
};

/// Integrations queued per statement by the dispatcher.
const DISPATCH_BATCH: i64 = 500;

pub fn register(registry: Registry, connectors: Option<Connectors>) -> Registry {
    let registry = registry.register(DISPATCH, |run| async move {
        let owner = run.owner()?;
        let mut queued = 0usize;
        loop {
            let (batch, more) = dispatch(owner).await?;
            queued += batch;
            if !more {
                break;
            }
        }
        if queued > 0 {
            tracing::info!(queued, "integrations.dispatch queued scheduled syncs");
        }
        Ok(())
    });
    registry.register(SYNC, move |run| {
        let connectors = connectors.clone();
        async move {
            let Some(connectors) = connectors else {
                return Err(JobError::Retry(
                    "this worker has no vault keys (TENANTRY_VAULT_KEYS); a worker with them will run the sync".into(),
                ));
            };
            let Some(id) = run.job.payload["integration_id"]
                .as_str()
                .and_then(|v| v.parse::<Uuid>().ok())
            else {
                return Err(JobError::Fatal(format!(
                    "the payload names no integration: {}",
                    run.job.payload
                )));
            };
            let trigger = match run.job.payload["trigger"].as_str() {
                Some("schedule") => "schedule",
                _ => "manual",
            };
            sync(&run, &connectors, id, trigger).await
        }
    })
}

/// The first slot of `schedule` (five-field cron, UTC) after `after`.
pub fn next_slot(schedule: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron_parser::parse(schedule, &after).ok()
}

/// The dispatcher's batch of due integrations, locked ($1 rows): whom each acts for (the
/// connecting admin while they are one, else the first owner) and whether its plan lets it sync.
pub const DUE_SQL: &str = r"SELECT i.organization_id, i.id, i.schedule,
       coalesce((SELECT m.user_id FROM organization_members m
                  WHERE m.organization_id = i.organization_id AND m.user_id = i.created_by
                    AND m.role IN ('owner', 'admin')),
                (SELECT m.user_id FROM organization_members m
                  WHERE m.organization_id = i.organization_id AND m.role = 'owner'
                  ORDER BY m.created_at LIMIT 1)) AS actor,
       app.integration_allowed(i.organization_id, i.id) AS in_plan
  FROM integrations i
 WHERE i.is_active AND i.next_sync_at <= now()
 ORDER BY i.next_sync_at LIMIT $1
   FOR UPDATE OF i SKIP LOCKED";

/// An integration the dispatcher found due.
#[derive(FromRow)]
struct Due {
    organization_id: Uuid,
    id: Uuid,
    schedule: String,
    /// Whom its sync acts for.
    actor: Option<Uuid>,
    in_plan: Option<bool>,
}

/// Queues one batch of due syncs, as the owner; returns how many and whether more may be due.
/// Each acts for the admin who connected the integration while they are one, else for the
/// organization's first owner. An integration its plan does not let sync is not queued, only
/// moved to its next slot: it resumes when the plan allows it again.
async fn dispatch(owner: &tenantry_db::OwnerPool) -> Result<(usize, bool), Error> {
    let mut tx = owner.0.begin().await?;
    let due: Vec<Due> = sqlx::query_as(DUE_SQL)
        .bind(DISPATCH_BATCH)
        .fetch_all(&mut *tx)
        .await?;
    // The database's clock decides what is due, so it decides the next slots too.
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await?;
    let mut queued = 0;
    let (mut orgs, mut ids, mut next) = (Vec::new(), Vec::new(), Vec::new());
    for Due {
        organization_id: org,
        id,
        schedule,
        actor,
        in_plan,
    } in &due
    {
        if *in_plan == Some(true) {
            let job = tenantry_db::queue::NewJob {
                unique_key: Some(id.to_string()),
                ..SYNC.job(serde_json::json!({"integration_id": id, "trigger": "schedule"}))
            };
            if tenantry_db::queue::enqueue_for(&mut tx, *org, *actor, &job)
                .await?
                .is_some()
            {
                queued += 1;
            }
        }
        orgs.push(*org);
        ids.push(*id);
        // A schedule the database holds but cron cannot read (none pass the API's check):
        // a day later, rather than every minute.
        next.push(next_slot(schedule, now).unwrap_or(now + chrono::Duration::days(1)));
    }
    sqlx::query(
        r"UPDATE integrations i SET next_sync_at = u.next
            FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS u (org, id, next)
           WHERE i.organization_id = u.org AND i.id = u.id",
    )
    .bind(&orgs)
    .bind(&ids)
    .bind(&next)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((queued, due.len() as i64 == DISPATCH_BATCH))
}

/// Replaces every credential value in `text` (a provider may echo what it was sent).
fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret.as_str(), "[redacted]");
    }
    out.chars().take(2000).collect()
}

async fn sync(run: &JobRun, c: &Connectors, id: Uuid, trigger: &str) -> Result<(), JobError> {
    let mut tx = run.org_tx().await?;
    let org = tx.org();
    let integration = match store::get(&mut tx, id).await {
        Ok(found) => found,
        // Deleted since the sync was asked for: nothing to do.
        Err(Error::NotFound) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !integration.is_active {
        return Ok(());
    }
    let in_plan: Option<bool> = sqlx::query_scalar(r"SELECT app.integration_in_plan($1, $2)")
        .bind(org)
        .bind(id)
        .fetch_one(tx.conn())
        .await
        .map_err(Error::from)?;
    if in_plan != Some(true) {
        tracing::info!(%org, integration = %id, "sync skipped: the plan in force does not let this integration sync");
        return Ok(());
    }
    let known = integration.metrics();
    // Mappings of metrics the integration still has (a custom GA4 metric may have been removed
    // from its configuration since).
    let mapped: Vec<_> = store::mappings(&mut tx, id)
        .await?
        .into_iter()
        .filter(|m| known.contains(&m.metric))
        .collect();
    // The oldest of the mappings' last syncs; None when one was never synced (a backfill).
    let synced_through = mapped.iter().map(|m| m.synced_at).min().flatten();
    let mappings: HashMap<String, Uuid> =
        mapped.into_iter().map(|m| (m.metric, m.kpi_id)).collect();
    let today = Utc::now().date_naive();
    let backfill = integration.config["backfill_days"]
        .as_u64()
        .unwrap_or(BACKFILL_DAYS)
        .clamp(1, 1100);
    let from = match synced_through {
        // A sheet is read whole: a person may correct any row of it.
        Some(_) if integration.provider == Provider::GoogleSheets => {
            today.checked_sub_days(Days::new(backfill - 1))
        }
        // Days before the last sync too: late data lands there (refunds; GA4 takes up to two
        // days to finish processing a day).
        Some(last) => last
            .date_naive()
            .checked_sub_days(Days::new(integration.provider.late_days())),
        None => today.checked_sub_days(Days::new(backfill - 1)),
    }
    .unwrap_or(today);
    let trigger = if synced_through.is_none() && !mappings.is_empty() {
        "backfill"
    } else {
        trigger
    };
    // One sync of an integration runs at a time (the queue's unique key): a run still marked
    // running is one whose worker stopped mid-way.
    sqlx::query(
        r"UPDATE integration_syncs SET status = 'error', finished_at = now(),
                 error = 'interrupted: the worker running it stopped'
           WHERE organization_id = $1 AND integration_id = $2 AND status = 'running'",
    )
    .bind(org)
    .bind(id)
    .execute(tx.conn())
    .await
    .map_err(Error::from)?;
    let run_id: Uuid = sqlx::query_scalar(
        r"INSERT INTO integration_syncs (organization_id, integration_id, trigger, range_from, range_to)
          VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(org)
    .bind(id)
    .bind(trigger)
    .bind(from)
    .bind(today)
    .fetch_one(tx.conn())
    .await
    .map_err(Error::from)?;
    let credentials = match store::credentials(&mut tx, &c.vault, id).await {
        Ok(found) => found,
        Err(Error::NotFound) => {
            let message = "no credentials to read: none are stored yet (connect it: POST …/authorize for Google, or PATCH its credentials), or the member this sync acts for is no longer an admin";
            let outcome = Outcome::Failed {
                message,
                refused: true,
            };
            finish(&mut tx, id, run_id, outcome).await?;
            tx.commit().await?;
            return Err(JobError::Fatal(format!("integration {id}: {message}")));
        }
        Err(e) => return Err(e.into()),
    };
    let secrets = secrets_of(&credentials, c);
    tx.commit().await?;

    // The provider is asked outside any transaction: no connection waits on the network.
    let metrics: Vec<String> = integration
        .metrics()
        .into_iter()
        .filter(|m| mappings.contains_key(m))
        .collect();
    let fetched = if metrics.is_empty() {
        Ok(Vec::new())
    } else {
        let config = &integration.config;
        match integration.provider {
            Provider::Stripe => match credentials.get("api_key") {
                Some(key) => {
                    super::stripe::fetch(
                        &c.http,
                        &c.endpoints.stripe_api,
                        key,
                        &metrics.iter().map(String::as_str).collect::<Vec<_>>(),
                        from,
                        today,
                        today,
                    )
                    .await
                }
                None => Err(ConnectorError::fatal("no api_key is stored".into())),
            },
            Provider::GoogleAnalytics => {
                super::google::analytics(c, &credentials, config, &metrics, from, today).await
            }
            Provider::GoogleSheets => {
                super::google::sheet(c, &credentials, config, from, today).await
            }
        }
    };

    let written = match fetched {
        Ok(values) => write_points(run, &integration, &mappings, &metrics, values).await,
        Err(e) => {
            let message = redact(&e.message, &secrets);
            let mut tx = run.org_tx().await?;
            let outcome = Outcome::Failed {
                message: &message,
                refused: !e.retry,
            };
            finish(&mut tx, id, run_id, outcome).await?;
            tx.commit().await?;
            return Err(if e.retry {
                JobError::Retry(message)
            } else {
                JobError::Fatal(message)
            });
        }
    };
    let mut tx = run.org_tx().await?;
    match written {
        Ok(written) => {
            let next = next_slot(&integration.schedule, Utc::now());
            finish(&mut tx, id, run_id, Outcome::Synced { written, next }).await?;
            tx.commit().await?;
            Ok(())
        }
        // Writing failed (the points rolled back): the run says so, and the queue retries.
        Err(e) => {
            let message = format!("writing the points failed: {e}");
            let outcome = Outcome::Failed {
                message: &message,
                refused: false,
            };
            finish(&mut tx, id, run_id, outcome).await?;
            tx.commit().await?;
            Err(JobError::Retry(message))
        }
    }
}

/// The values as points of their mapped KPIs, and the mappings marked synced: one
/// transaction, all or nothing.
async fn write_points(
    run: &JobRun,
    integration: &super::Integration,
    mappings: &HashMap<String, Uuid>,
    metrics: &[String],
    values: Vec<DailyValue>,
) -> Result<u64, Error> {
    let mut tx = run
        .org_tx()
        .await
        .map_err(|e| Error::Internal(format!("{e:?}")))?;
    let source = integration.provider.as_str();
    let mut rows: Vec<Row> = values
        .iter()
        .filter_map(|v| {
            Some(Row {
                kpi_id: *mappings.get(&v.metric)?,
                value: v.value,
                observed_at: v.day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
                source: source.to_string(),
            })
        })
        .collect();
    let written = write(&mut tx, &mut rows).await?;
    sqlx::query(
        r"UPDATE integration_mappings SET synced_at = now()
           WHERE organization_id = $1 AND integration_id = $2 AND metric = ANY ($3)",
    )
    .bind(tx.org())
    .bind(integration.id)
    .bind(metrics)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(written)
}

/// Every secret a run's errors must not show: the stored credentials, a service account's
/// private key as decoded, and the server's OAuth client secret.
fn secrets_of(credentials: &super::Credentials, c: &Connectors) -> Vec<String> {
    let mut secrets: Vec<String> = credentials.values().cloned().collect();
    if let Some(key) = credentials
        .get("service_account_key")
        .and_then(|k| super::google::ServiceAccountKey::parse(k).ok())
    {
        secrets.push(key.private_key);
    }
    if let Some((_, secret)) = &c.endpoints.google_client {
        secrets.push(secret.clone());
    }
    secrets
}

/// How a run ended.
enum Outcome<'a> {
    /// Points written; the schedule's next slot (to resume a paused one).
    Synced {
        written: u64,
        next: Option<DateTime<Utc>>,
    },
    /// The provider's error, redacted; `refused` when retrying cannot help.
    Failed { message: &'a str, refused: bool },
}

/// Records the run's outcome on the run and on the integration: a success clears the failures
/// (and resumes a paused schedule at `next`); a failure counts, backs the schedule off (1 h,
/// 2 h, 4 h … at most a day), or pauses it when the provider refused (`refused`); turning
/// `error` tells the admins, once.
async fn finish(tx: &mut OrgTx, id: Uuid, run_id: Uuid, outcome: Outcome<'_>) -> Result<(), Error> {
    let org = tx.org();
    let (status, points, next, error, refused) = match outcome {
        Outcome::Synced { written, next } => ("success", written, next, None, false),
        Outcome::Failed { message, refused } => ("error", 0, None, Some(message), refused),
    };
    sqlx::query(
        r"UPDATE integration_syncs SET status = $3, finished_at = now(), points_written = $4, error = $5
           WHERE organization_id = $1 AND id = $2",
    )
    .bind(org)
    .bind(run_id)
    .bind(status)
    .bind(i32::try_from(points).unwrap_or(i32::MAX))
    .bind(error)
    .execute(tx.conn())
    .await?;
    let failed: bool = sqlx::query_scalar(
        r"UPDATE integrations
             SET last_sync_at = CASE WHEN $3 IS NULL THEN now() ELSE last_sync_at END,
                 consecutive_failures = CASE WHEN $3 IS NULL THEN 0 ELSE consecutive_failures + 1 END,
                 error_message = $3,
                 sync_status = CASE WHEN $3 IS NULL THEN 'success'
                                    WHEN $4 OR consecutive_failures + 1 >= $5 THEN 'error'
                                    ELSE sync_status END,
                 error_notified_at = CASE WHEN $3 IS NULL THEN NULL ELSE error_notified_at END,
                 -- A success returns to the schedule (a paused one resumes); a refusal pauses;
                 -- another failure backs off, and leaves a paused one paused.
                 next_sync_at = CASE WHEN $3 IS NULL THEN coalesce($6, next_sync_at)
                                     WHEN $4 OR next_sync_at IS NULL THEN NULL
                                     ELSE greatest(next_sync_at,
                                                   now() + least(interval '1 hour' * 2 ^ least(consecutive_failures, 5),
                                                                 interval '1 day'))
                                END
           WHERE organization_id = $1 AND id = $2
       RETURNING sync_status = 'error'",
    )
    .bind(org)
    .bind(id)
    .bind(error)
    .bind(refused)
    .bind(FAILURES_BEFORE_ERROR)
    .bind(next)
    .fetch_optional(tx.conn())
    .await?
    .unwrap_or(false);
    if failed {
        sqlx::query(r"SELECT app.announce_integration_error($1)")
            .bind(id)
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}
