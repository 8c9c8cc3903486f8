//! `tenantry bench integrations`: a Google Analytics backfill of three years (1,096 days) of 20
//! daily metrics — a sync job run by a worker, reading a local server that speaks GA4's
//! `runReport` (and Google's token endpoint), writing KPI points — against the same points
//! posted to bulk ingest (`POST …/kpi-points`, CSV) by the same server. Each round connects
//! fresh: 20 new KPIs per variant, removed (untimed) afterwards. The organization
//! (`integrations@bench.local`) is on a plan without limits.

use std::time::{Duration, Instant};

use axum::extract::{Json, Path};
use chrono::{Days, NaiveDate, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use tenantry_db::pool::pool_options;
use tenantry_db::{ConnectionUrls, OwnerPool, RuntimePool};
use tenantry_server::http::HttpConfig;
use tenantry_server::identity::{self, NewAccount};
use tenantry_server::integrations::sync::{Connectors, Endpoints};
use tenantry_server::jobs::{Worker, WorkerConfig};
use tenantry_server::vault::Vault;
use uuid::Uuid;

use super::{report, send, spawn_server_with, Settings, Stats};
use crate::AnyError;

const DAYS: u64 = 1096;
/// The three built-in metrics and 17 configured ones.
const CUSTOM_METRICS: usize = 17;
const EMAIL: &str = "integrations@bench.local";

/// What the local GA4 answers for a metric (by its position in the request) on a day.
fn ga_value(metric: &str, day: NaiveDate) -> f64 {
    let n = (day - NaiveDate::MIN).num_days() as f64;
    (n * 7.0 + metric.len() as f64 * 13.0) % 1000.0
}

async fn token() -> Json<Value> {
    Json(json!({"access_token": "ya29.bench", "expires_in": 3599, "token_type": "Bearer"}))
}

async fn run_report(Path(_spec): Path<String>, Json(body): Json<Value>) -> Json<Value> {
    let metrics: Vec<String> = body["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str().map(str::to_string))
        .collect();
    let date = |key: &str| {
        body["dateRanges"][0][key]
            .as_str()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    let (Some(from), Some(to)) = (date("startDate"), date("endDate")) else {
        return Json(json!({"error": {"code": 400, "status": "INVALID_ARGUMENT"}}));
    };
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let rows: Vec<Value> = days
        .iter()
        .map(|day| {
            json!({
                "dimensionValues": [{"value": day.format("%Y%m%d").to_string()}],
                "metricValues": metrics.iter().map(|m| json!({"value": ga_value(m, *day).to_string()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({"rows": rows, "rowCount": days.len(), "kind": "analyticsData#runReport"}))
}

/// The local Google: its base URL.
async fn local_google() -> Result<String, AnyError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .route("/v1beta/properties/{spec}", axum::routing::post(run_report));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

/// The bench organization (made on first use) on a plan without limits: (user, organization).
async fn organization(owner: &PgPool, runtime: &RuntimePool) -> Result<(Uuid, Uuid), AnyError> {
    let found: Option<(Uuid, Uuid)> = sqlx::query_as(
        r"SELECT m.user_id, m.organization_id FROM organization_members m JOIN users u ON u.id = m.user_id
           WHERE u.email = $1 AND m.role = 'owner'",
    )
    .bind(EMAIL)
    .fetch_optional(owner)
    .await?;
    let (user, org) = match found {
        Some(pair) => pair,
        None => {
            let signed_up = identity::sign_up(
                runtime,
                NewAccount {
                    email: EMAIL.into(),
                    name: Some("Integrations bench".into()),
                    password_hash: None,
                    provider: "password".into(),
                    provider_id: None,
                    clerk_user_id: None,
                    email_verified: false,
                    organization_name: Some("Integrations bench".into()),
                },
            )
            .await?;
            (signed_up.user.id, signed_up.organization.id)
        }
    };
    super::on_unlimited_plan(owner, org).await?;
    Ok((user, org))
}

struct Bench {
    client: reqwest::Client,
    base: String,
    session: String,
    org: Uuid,
}

impl Bench {
    async fn post(&self, path: &str, body: Value) -> Result<Value, AnyError> {
        let response = self
            .client
            .post(format!("{}/v1/orgs/{}/{path}", self.base, self.org))
            .bearer_auth(&self.session)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("POST {path}: {status}: {answer}").into());
        }
        Ok(answer)
    }

    /// 20 new KPIs named after the metrics.
    async fn kpis(&self, metrics: &[String], round: u32) -> Result<Vec<Uuid>, AnyError> {
        let mut ids = Vec::new();
        for metric in metrics {
            let kpi = self
                .post(
                    "kpis",
                    json!({"name": format!("{metric} {round} {}", Uuid::now_v7())}),
                )
                .await?;
            ids.push(kpi["id"].as_str().ok_or("a KPI without id")?.parse()?);
        }
        Ok(ids)
    }
}

pub(super) async fn run(urls: &ConnectionUrls, s: &Settings) -> Result<(), AnyError> {
    let runtime = RuntimePool::open(urls, 8).await?;
    let owner = pool_options(2).connect(&urls.owner).await?;
    let (user, org) = organization(&owner, &runtime).await?;
    let google = local_google().await?;
    let vault = std::sync::Arc::new(Vault::from_spec(&Vault::new_key_entry("bench"))?);
    let (base, _server) = spawn_server_with(
        &runtime,
        HttpConfig {
            vault: Some(vault.clone()),
            metering: None,
            ..HttpConfig::default()
        },
    )
    .await?;
    let connectors = Connectors::new(
        vault,
        Endpoints {
            google_token: format!("{google}/token"),
            google_analytics_api: google,
            google_client: Some(("bench".into(), "bench".into())),
            ..Endpoints::default()
        },
    )?;
    let worker = Worker::new(
        OwnerPool::connect(&urls.owner).await?,
        runtime.clone(),
        tenantry_server::jobs::registry(None, None, Some(connectors)),
        WorkerConfig {
            poll: Duration::from_millis(50),
            schedules: None,
            ..WorkerConfig::default()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(async move {
        worker
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    let session = super::bench_session(&runtime, user).await?;
    let bench = Bench {
        client: reqwest::Client::new(),
        base,
        session,
        org,
    };
    let custom: serde_json::Map<String, Value> = (1..=CUSTOM_METRICS)
        .map(|i| {
            (
                format!("custom_{i:02}"),
                json!(format!("customEvent:step{i}")),
            )
        })
        .collect();
    let metrics: Vec<String> = ["active_users", "sessions", "conversions"]
        .into_iter()
        .map(str::to_string)
        .chain(custom.keys().cloned())
        .collect();
    let ga_name = |metric: &str| -> String {
        match metric {
            "active_users" => "activeUsers".into(),
            "sessions" => "sessions".into(),
            "conversions" => "keyEvents".into(),
            other => custom[other].as_str().unwrap_or_default().to_string(),
        }
    };
    let today = Utc::now().date_naive();
    let first = today - Days::new(DAYS - 1);
    let points = metrics.len() as u64 * DAYS;
    println!(
        "integrations: a GA4 backfill of {} metrics × {DAYS} days = {points} points, {} rounds each, alternating",
        metrics.len(),
        s.rounds
    );
    let (mut synced, mut ingested) = (Stats::default(), Stats::default());
    // The first round of each warms up and is not counted.
    for round in 0..=s.rounds {
        // Sync: connect, map, ask; timed from the request to the run's end.
        let kpis = bench.kpis(&metrics, round).await?;
        let integration = bench
            .post(
                "integrations",
                json!({"provider": "google_analytics", "name": format!("GA {round} {}", Uuid::now_v7()),
                       "credentials": {"refresh_token": "1//bench-refresh-token"},
                       "config": {"property_id": "1234", "backfill_days": DAYS, "metrics": custom}}),
            )
            .await?;
        let id: Uuid = integration["id"].as_str().ok_or("no id")?.parse()?;
        let mappings: serde_json::Map<String, Value> = metrics
            .iter()
            .zip(&kpis)
            .map(|(m, k)| (m.clone(), json!(k)))
            .collect();
        let response = bench
            .client
            .put(format!(
                "{}/v1/orgs/{org}/integrations/{id}/mappings",
                bench.base
            ))
            .bearer_auth(&bench.session)
            .json(&json!({"mappings": mappings}))
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("mappings: {}", response.text().await?).into());
        }
        let started = Instant::now();
        bench
            .post(&format!("integrations/{id}/sync"), json!({}))
            .await?;
        let written = finished(&owner, id).await?;
        let took = started.elapsed();
        if written != points as i32 {
            return Err(format!("the sync wrote {written} points, not {points}").into());
        }
        if round > 0 {
            synced.record(points, took);
        }

        // Ingest: the same points as CSV to 20 other new KPIs.
        let other = bench.kpis(&metrics, round).await?;
        let mut csv = String::from("kpi_id,value,observed_at,source\n");
        for (metric, kpi) in metrics.iter().zip(&other) {
            let name = ga_name(metric);
            for day in first.iter_days().take_while(|d| *d <= today) {
                csv.push_str(&format!(
                    "{kpi},{},{day}T00:00:00Z,google_analytics\n",
                    ga_value(&name, day)
                ));
            }
        }
        let started = Instant::now();
        send(
            bench
                .client
                .post(format!("{}/v1/orgs/{org}/kpi-points", bench.base))
                .bearer_auth(&bench.session)
                .header("content-type", "text/csv")
                .body(csv),
        )
        .await?;
        if round > 0 {
            ingested.record(points, started.elapsed());
        }
        clear(&owner, org).await?;
    }
    let _ = stop.send(());
    worker.await??;
    report(&mut [
        (
            "GA4 backfill: sync job (local GA4 over HTTP, token, 2 reports, write, points/s)",
            synced,
        ),
        (
            "the same points, POST …/kpi-points CSV (HTTP, auth, RLS, points/s)",
            ingested,
        ),
    ]);
    Ok(())
}

/// Waits for the integration's first run to end; the points it wrote.
async fn finished(owner: &PgPool, id: Uuid) -> Result<i32, AnyError> {
    for _ in 0..60_000 {
        let run: Option<(String, i32, Option<String>)> = sqlx::query_as(
            r"SELECT status, points_written, error FROM integration_syncs
               WHERE integration_id = $1 AND status <> 'running'",
        )
        .bind(id)
        .fetch_optional(owner)
        .await?;
        match run {
            Some((status, written, _)) if status == "success" => return Ok(written),
            Some((_, _, error)) => return Err(format!("the sync failed: {error:?}").into()),
            None => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
    Err("the sync did not finish".into())
}

/// Removes the round's integrations and KPIs (their points go with them).
async fn clear(owner: &PgPool, org: Uuid) -> Result<(), AnyError> {
    sqlx::query("DELETE FROM integrations WHERE organization_id = $1")
        .bind(org)
        .execute(owner)
        .await?;
    sqlx::query("DELETE FROM kpis WHERE organization_id = $1")
        .bind(org)
        .execute(owner)
        .await?;
    Ok(())
}
