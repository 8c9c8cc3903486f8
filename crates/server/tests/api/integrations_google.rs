//! The Google connectors against a local server speaking Google's documented formats: the OAuth
//! 2.0 token endpoint (refresh tokens and service-account JWT assertions, checked with the key's
//! public half), GA4's `runReport` and Sheets' `values.get`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::Json;
use base64::Engine;
use chrono::{Days, NaiveDate, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Validation};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Digest;
use tenantry_server::integrations::sync::Endpoints;
use tenantry_server::kernel::access::Role;
use tenantry_server::vault::Vault;
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser};
use crate::integrations::{
    connected, integration_of, points, run_syncs, runs, sync_now, vault, with_vault,
};

const REFRESH_TOKEN: &str = "1//0gRefreshTokenThatMustNeverShowAnywhere9876";
const CLIENT_ID: &str = "tenantry-test.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "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w";
const PROPERTY: &str = "314159265";
const SPREADSHEET: &str = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms";
const SERVICE_ACCOUNT: &str = "kpi-reader@tenantry-test.iam.gserviceaccount.com";

/// What GA4 reports for a metric on a day: different per metric and day, so a value written
/// to the wrong KPI or day shows.
fn ga_value(metric: &str, day: NaiveDate) -> f64 {
    let n = f64::from(day.format("%j").to_string().parse::<u32>().unwrap_or(0));
    match metric {
        "activeUsers" => 100.0 + n,
        "sessions" => 1000.0 + 2.0 * n,
        // keyEvents and any other: different per name too.
        other => n % 7.0 + 10.0 * other.len() as f64,
    }
}

#[derive(Default)]
struct Google {
    token_url: String,
    refresh_tokens: HashSet<String>,
    access_tokens: HashSet<String>,
    /// Answers given to the next `runReport` calls before the real one (status, body).
    report_script: VecDeque<(u16, Value)>,
    report_calls: usize,
    /// The metric names the last report asked for.
    report_metrics: Vec<String>,
    sheet_values: Value,
    sheet_requests: Vec<(String, String)>,
    service_account_grants: usize,
    /// How long `runReport` takes to answer.
    report_delay: Duration,
    /// Codes given on consent: code → (PKCE challenge, redirect URI).
    codes: HashMap<String, (String, String)>,
}

#[derive(Clone)]
struct FakeGoogle(Arc<Mutex<Google>>);

fn public_key() -> DecodingKey {
    let jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&private_key(), jsonwebtoken::Algorithm::RS256)
            .expect("jwk");
    DecodingKey::from_jwk(&jwk).expect("decoding key")
}

fn private_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(private_pem().as_bytes()).expect("rsa")
}

fn private_pem() -> String {
    std::fs::read_to_string(format!(
        "{}/tests/api/fixtures/rsa1.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("pem")
}

/// A service account's JSON key as Google's console gives it (its `token_uri` is Google's: the
/// service must use its configured endpoint, not this).
fn service_account_key() -> String {
    json!({
        "type": "service_account",
        "project_id": "tenantry-test",
        "private_key_id": "key-1",
        "private_key": private_pem(),
        "client_email": SERVICE_ACCOUNT,
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string()
}

async fn token(
    State(google): State<FakeGoogle>,
    Form(form): Form<HashMap<String, String>>,
) -> (AxumStatus, Json<Value>) {
    let mut g = google.0.lock().expect("lock");
    let refused = |error: &str, description: &str| {
        (
            AxumStatus::BAD_REQUEST,
            Json(json!({"error": error, "error_description": description})),
        )
    };
    match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
                || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
            {
                return (
                    AxumStatus::UNAUTHORIZED,
                    Json(json!({"error": "invalid_client", "error_description": "Unauthorized"})),
                );
            }
            if !form
                .get("refresh_token")
                .is_some_and(|t| g.refresh_tokens.contains(t))
            {
                return refused("invalid_grant", "Token has been expired or revoked.");
            }
        }
        Some("authorization_code") => {
            if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
                || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
            {
                return refused("invalid_client", "Unauthorized");
            }
            // A code is good once, for the redirect it was given to, with its PKCE verifier.
            let Some((challenge, redirect)) = form.get("code").and_then(|c| g.codes.remove(c))
            else {
                return refused("invalid_grant", "Malformed auth code.");
            };
            let verified = form.get("code_verifier").is_some_and(|v| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(sha2::Sha256::digest(v.as_bytes()))
                    == challenge
            });
            if !verified || form.get("redirect_uri") != Some(&redirect) {
                return refused("invalid_grant", "Bad code verifier or redirect_uri.");
            }
            let refresh = format!("1//0g{}", Uuid::new_v4().simple());
            g.refresh_tokens.insert(refresh.clone());
            let access = format!("ya29.{}", Uuid::new_v4().simple());
            g.access_tokens.insert(access.clone());
            return (
                AxumStatus::OK,
                Json(
                    json!({"access_token": access, "refresh_token": refresh, "expires_in": 3599,
                            "token_type": "Bearer", "scope": ANALYTICS_SCOPE}),
                ),
            );
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_audience(&[g.token_url.clone()]);
            validation.set_issuer(&[SERVICE_ACCOUNT]);
            let Some(claims) = form
                .get("assertion")
                .and_then(|a| jsonwebtoken::decode::<Value>(a, &public_key(), &validation).ok())
            else {
                return refused("invalid_grant", "Invalid JWT Signature.");
            };
            if claims.claims["scope"] != "https://www.googleapis.com/auth/spreadsheets.readonly" {
                return refused("invalid_scope", "wrong scope");
            }
            g.service_account_grants += 1;
        }
        _ => return refused("unsupported_grant_type", "Invalid grant_type"),
    }
    let access = format!("ya29.{}", Uuid::new_v4().simple());
    g.access_tokens.insert(access.clone());
    (
        AxumStatus::OK,
        Json(json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer"})),
    )
}

fn authorized(g: &Google, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| g.access_tokens.contains(t))
}

fn google_error(status: AxumStatus, reason: &str) -> (AxumStatus, Json<Value>) {
    (
        status,
        Json(
            json!({"error": {"code": status.as_u16(), "message": format!("{reason} (test)"), "status": reason}}),
        ),
    )
}

async fn run_report(
    State(google): State<FakeGoogle>,
    Path(spec): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (AxumStatus, Json<Value>) {
    let delay = google.0.lock().expect("lock").report_delay;
    tokio::time::sleep(delay).await;
    let mut g = google.0.lock().expect("lock");
    g.report_calls += 1;
    if !authorized(&g, &headers) {
        return google_error(AxumStatus::UNAUTHORIZED, "UNAUTHENTICATED");
    }
    if spec != format!("{PROPERTY}:runReport") {
        return google_error(AxumStatus::FORBIDDEN, "PERMISSION_DENIED");
    }
    if let Some((status, answer)) = g.report_script.pop_front() {
        return (AxumStatus::from_u16(status).expect("status"), Json(answer));
    }
    let metrics: Vec<String> = body["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str().map(str::to_string))
        .collect();
    if metrics.len() > 10 {
        // GA4's own limit.
        return google_error(AxumStatus::BAD_REQUEST, "INVALID_ARGUMENT");
    }
    g.report_metrics.clone_from(&metrics);
    let date = |key: &str| {
        body["dateRanges"][0][key]
            .as_str()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    let (Some(from), Some(to)) = (date("startDate"), date("endDate")) else {
        return google_error(AxumStatus::BAD_REQUEST, "INVALID_ARGUMENT");
    };
    let number = |key: &str| {
        body[key]
            .as_str()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    };
    // Fewer rows a page than asked for (GA4 caps `limit` too), so paging is exercised.
    let (limit, offset) = (number("limit").clamp(1, 500), number("offset"));
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    // GA4 orders rows by nothing in particular unless asked: newest first here.
    let rows: Vec<Value> = days
        .iter()
        .rev()
        .skip(offset)
        .take(limit)
        .map(|day| {
            json!({
                "dimensionValues": [{"value": day.format("%Y%m%d").to_string()}],
                "metricValues": metrics.iter().map(|m| json!({"value": ga_value(m, *day).to_string()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    (
        AxumStatus::OK,
        Json(json!({
            "dimensionHeaders": [{"name": "date"}],
            "metricHeaders": metrics.iter().map(|m| json!({"name": m, "type": "TYPE_INTEGER"})).collect::<Vec<_>>(),
            "rows": rows,
            "rowCount": days.len(),
            "metadata": {"currencyCode": "USD", "timeZone": "Etc/UTC"},
            "kind": "analyticsData#runReport",
        })),
    )
}

async fn values_get(
    State(google): State<FakeGoogle>,
    Path((spreadsheet, range)): Path<(String, String)>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (AxumStatus, Json<Value>) {
    let mut g = google.0.lock().expect("lock");
    if !authorized(&g, &headers) {
        return google_error(AxumStatus::UNAUTHORIZED, "UNAUTHENTICATED");
    }
    if spreadsheet != SPREADSHEET {
        return google_error(AxumStatus::NOT_FOUND, "NOT_FOUND");
    }
    g.sheet_requests.push((
        range.clone(),
        query
            .get("dateTimeRenderOption")
            .cloned()
            .unwrap_or_default(),
    ));
    (
        AxumStatus::OK,
        Json(json!({"range": range, "majorDimension": "ROWS", "values": g.sheet_values})),
    )
}

impl FakeGoogle {
    async fn start() -> (Self, Endpoints) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let google = FakeGoogle(Arc::new(Mutex::new(Google {
            token_url: format!("{base}/token"),
            refresh_tokens: HashSet::from([REFRESH_TOKEN.to_string()]),
            ..Google::default()
        })));
        let app = axum::Router::new()
            .route("/token", axum::routing::post(token))
            .route("/v1beta/properties/{spec}", axum::routing::post(run_report))
            .route(
                "/v4/spreadsheets/{id}/values/{range}",
                axum::routing::get(values_get),
            )
            .with_state(google.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let endpoints = Endpoints {
            google_token: format!("{base}/token"),
            google_analytics_api: base.clone(),
            google_sheets_api: base,
            google_client: Some((CLIENT_ID.into(), CLIENT_SECRET.into())),
            quota_backoff: Duration::from_millis(10),
            ..Endpoints::default()
        };
        (google, endpoints)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Google) -> T) -> T {
        f(&mut self.0.lock().expect("lock"))
    }

    /// What Google's consent screen does when the person agrees: checks the request, and
    /// gives a code for the redirect. Returns (code, state).
    fn consent(&self, authorization_url: &str) -> (String, String) {
        let url = reqwest::Url::parse(authorization_url).expect("url");
        assert!(url.path().ends_with("/authorize"), "{url}");
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        for (key, value) in [
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("scope", ANALYTICS_SCOPE),
            ("access_type", "offline"),
            ("prompt", "consent"),
            ("code_challenge_method", "S256"),
        ] {
            assert_eq!(query.get(key).map(String::as_str), Some(value), "{key}");
        }
        let code = format!("4/0A{}", Uuid::new_v4().simple());
        self.with(|g| {
            g.codes.insert(
                code.clone(),
                (query["code_challenge"].clone(), REDIRECT.into()),
            )
        });
        (code, query["state"].clone())
    }
}

const ANALYTICS_SCOPE: &str = "https://www.googleapis.com/auth/analytics.readonly";
const REDIRECT: &str = "https://tenantry.example/v1/integrations/oauth/callback";

/// A server with a vault (its key spec), Alice's organization, and Google.
async fn world() -> (String, TestApp, TestUser, FakeGoogle, Endpoints) {
    let spec = Vault::new_key_entry("k1");
    let app = with_vault(&spec).await;
    let alice = app.user("alice@example.com").await;
    let (google, endpoints) = FakeGoogle::start().await;
    (spec, app, alice, google, endpoints)
}

/// Asks for a sync as Alice and runs it with connectors to `endpoints`.
async fn sync(app: &TestApp, alice: &TestUser, id: Uuid, spec: &str, endpoints: &Endpoints) {
    sync_now(app, alice, id).await;
    run_syncs(app, vault(spec), endpoints.clone()).await;
}

fn analytics(backfill_days: u64) -> Value {
    json!({"provider": "google_analytics", "credentials": {"refresh_token": REFRESH_TOKEN},
           "config": {"property_id": PROPERTY, "backfill_days": backfill_days}})
}

#[tokio::test]
async fn a_first_ga4_sync_backfills_every_day_and_a_resync_changes_nothing() {
    let (spec, app, alice, google, endpoints) = world().await;
    let (id, kpis) = connected(
        &app,
        &alice,
        analytics(40),
        &["active_users", "sessions", "conversions"],
    )
    .await;
    sync(&app, &alice, id, &spec, &endpoints).await;

    let today = Utc::now().date_naive();
    let first = today - Days::new(39);
    assert_eq!(
        google.with(|g| g.report_metrics.clone()),
        ["activeUsers", "sessions", "keyEvents"],
        "conversions are GA4's key events by default"
    );
    for (metric, ga_metric) in [
        ("active_users", "activeUsers"),
        ("sessions", "sessions"),
        ("conversions", "keyEvents"),
    ] {
        let got = points(&app, &alice, kpis[metric]).await;
        let expected: Vec<(NaiveDate, f64, String)> = first
            .iter_days()
            .take_while(|d| *d <= today)
            .map(|d| (d, ga_value(ga_metric, d), "google_analytics".to_string()))
            .collect();
        assert_eq!(got, expected, "{metric}");
    }
    let integration = integration_of(&app, &alice, id).await;
    assert_eq!(integration["sync_status"], "success", "{integration}");

    // Again: the last days are read again and replaced, nothing added.
    sync(&app, &alice, id, &spec, &endpoints).await;
    assert_eq!(points(&app, &alice, kpis["sessions"]).await.len(), 40);
    let log = runs(&app, &alice, id).await;
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log.iter().all(|r| r["status"] == "success"), "{log:?}");
    let mut triggers: Vec<&str> = log.iter().filter_map(|r| r["trigger"].as_str()).collect();
    triggers.sort_unstable();
    assert_eq!(triggers, ["backfill", "manual"]);
    let incremental = log
        .iter()
        .find(|r| r["trigger"] == "manual")
        .expect("incremental run");
    // GA4 finishes a day within two: the three days before the last sync are read again.
    assert_eq!(
        incremental["range_from"],
        json!((today - Days::new(3)).to_string())
    );
}

#[tokio::test]
async fn a_long_backfill_reads_every_page_of_the_report() {
    let (spec, app, alice, google, endpoints) = world().await;
    // Three years: more rows than one page holds, in the fake's newest-first order.
    let (id, kpis) = connected(&app, &alice, analytics(1100), &["sessions"]).await;
    sync(&app, &alice, id, &spec, &endpoints).await;
    let got = points(&app, &alice, kpis["sessions"]).await;
    assert_eq!(got.len(), 1100);
    assert!(got
        .iter()
        .all(|(day, value, _)| *value == ga_value("sessions", *day)));
    assert_eq!(google.with(|g| g.report_calls), 3, "pages of 500 rows");
}

#[tokio::test]
async fn custom_ga4_metrics_are_read_ten_to_a_request_and_checked_when_configured() {
    let (spec, app, alice, google, endpoints) = world().await;
    let custom: serde_json::Map<String, Value> = (1..=12)
        .map(|i| {
            (
                format!("custom_{i:02}"),
                json!(format!("customEvent:step{i}")),
            )
        })
        .collect();
    let mut body = analytics(3);
    body["config"]["metrics"] = Value::Object(custom.clone());
    let names: Vec<&str> = custom
        .keys()
        .map(String::as_str)
        .chain(["sessions"])
        .collect();
    let (id, kpis) = connected(&app, &alice, body, &names).await;
    sync(&app, &alice, id, &spec, &endpoints).await;
    assert_eq!(google.with(|g| g.report_calls), 2, "13 metrics: 10 + 3");
    let today = Utc::now().date_naive();
    for (ours, theirs) in &custom {
        let got = points(&app, &alice, kpis[ours]).await;
        let theirs = theirs.as_str().unwrap_or_default();
        assert_eq!(got.len(), 3, "{ours}");
        assert!(
            got.iter()
                .all(|(day, value, _)| *value == ga_value(theirs, *day) && *day <= today),
            "{ours}: {got:?}"
        );
    }
    // A metric neither built in nor configured cannot be mapped; bad names are refused.
    let got = app
        .call(
            Method::PUT,
            &alice,
            &format!("/v1/orgs/{}/integrations/{id}/mappings", alice.org),
            Some(json!({"mappings": {"bounce_rate": kpis["sessions"]}})),
        )
        .await;
    assert_eq!(
        crate::helpers::refused_fields(&got),
        ["mappings.bounce_rate"]
    );
    for metrics in [
        json!({"sessions": "sessions"}),
        json!({"Bad-Name": "sessions"}),
        json!({"fine": "no spaces"}),
        json!({"fine": 3}),
    ] {
        let got = app
            .call(
                Method::PATCH,
                &alice,
                &format!("/v1/orgs/{}/integrations/{id}", alice.org),
                Some(json!({"config": {"property_id": PROPERTY, "metrics": metrics}})),
            )
            .await;
        assert_eq!(
            crate::helpers::refused_fields(&got),
            ["config"],
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn quota_refusals_are_waited_out_and_only_persistent_ones_fail_the_run() {
    let (spec, app, alice, google, endpoints) = world().await;
    let (id, kpis) = connected(&app, &alice, analytics(5), &["active_users"]).await;
    let exhausted = json!({"error": {"code": 429, "message": "Exhausted property tokens per hour.", "status": "RESOURCE_EXHAUSTED"}});
    google.with(|g| {
        g.report_script.push_back((429, exhausted.clone()));
        // Google also says it with other statuses; the reason decides.
        g.report_script.push_back((
            403,
            json!({"error": {"code": 403, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}),
        ));
    });
    sync(&app, &alice, id, &spec, &endpoints).await;
    assert_eq!(
        google.with(|g| g.report_calls),
        3,
        "two refusals, then the report"
    );
    let log = runs(&app, &alice, id).await;
    assert_eq!(log.len(), 1, "one run, not failed: {log:?}");
    assert_eq!(log[0]["status"], "success");
    assert_eq!(points(&app, &alice, kpis["active_users"]).await.len(), 5);

    // A quota that stays exhausted fails the run (retried later by the queue) and says why.
    google.with(|g| {
        for _ in 0..60 {
            g.report_script.push_back((429, exhausted.clone()));
        }
    });
    sync(&app, &alice, id, &spec, &endpoints).await;
    let log = runs(&app, &alice, id).await;
    let failed: Vec<&Value> = log.iter().filter(|r| r["status"] == "error").collect();
    assert!(!failed.is_empty(), "{log:?}");
    assert!(
        failed[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("RESOURCE_EXHAUSTED") && e.contains("still out of quota")),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_provider_that_does_not_answer_in_time_is_retried_logged_and_then_marked_error() {
    let (spec, app, alice, google, endpoints) = world().await;
    let (id, kpis) = connected(&app, &alice, analytics(5), &["sessions"]).await;
    google.with(|g| g.report_delay = Duration::from_secs(5));
    let impatient = Endpoints {
        timeout: Duration::from_millis(300),
        ..endpoints.clone()
    };
    sync(&app, &alice, id, &spec, &impatient).await;
    let log = runs(&app, &alice, id).await;
    assert_eq!(log.len(), 5, "every attempt is a run: {log:?}");
    assert!(
        log.iter().all(|r| r["status"] == "error"
            && r["error"].as_str().is_some_and(|e| e.contains("timed out"))),
        "{log:?}"
    );
    let integration = integration_of(&app, &alice, id).await;
    assert_eq!(integration["sync_status"], "error");
    assert!(
        !integration["next_sync_at"].is_null(),
        "not a refusal: it keeps trying"
    );
    assert!(points(&app, &alice, kpis["sessions"]).await.is_empty());
}

#[tokio::test]
async fn a_revoked_refresh_token_marks_the_integration_error_and_no_secret_shows_anywhere() {
    let logs = crate::helpers::capture_logs();
    let (spec, app, alice, google, endpoints) = world().await;
    // The integration brings its own OAuth client; the server's is not used for it.
    let (id, kpis) = connected(
        &app,
        &alice,
        json!({"provider": "google_analytics",
               "credentials": {"refresh_token": REFRESH_TOKEN, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
               "config": {"property_id": PROPERTY, "backfill_days": 3}}),
        &["sessions"],
    )
    .await;
    let without_server_client = Endpoints {
        google_client: None,
        ..endpoints
    };
    sync(&app, &alice, id, &spec, &without_server_client).await;
    assert_eq!(points(&app, &alice, kpis["sessions"]).await.len(), 3);

    // The person revokes Tenantry's access at Google.
    google.with(|g| g.refresh_tokens.clear());
    sync(&app, &alice, id, &spec, &without_server_client).await;
    let integration = integration_of(&app, &alice, id).await;
    assert_eq!(integration["sync_status"], "error", "{integration}");
    let message = integration["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains("invalid_grant") && message.contains("connect the integration again"),
        "{message}"
    );
    let log = runs(&app, &alice, id).await;
    assert_eq!(
        log.iter().filter(|r| r["status"] == "error").count(),
        1,
        "refused at once, not retried: {log:?}"
    );

    // Nothing the test produced holds a secret: responses, stored rows, audit, jobs, logs.
    let mut seen = format!("{integration}{log:?}");
    let (_, listed) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/integrations", alice.org),
            None,
        )
        .await;
    seen.push_str(&listed.to_string());
    let owner = app.db.owner().await;
    for query in [
        "SELECT coalesce(string_agg(to_jsonb(e)::text, ''), '') FROM audit.events e",
        "SELECT coalesce(string_agg(to_jsonb(j)::text, ''), '') FROM queue.jobs j",
        "SELECT coalesce(string_agg(to_jsonb(s)::text, ''), '') FROM integration_syncs s",
        "SELECT coalesce(string_agg(to_jsonb(i)::text, ''), '') FROM integrations i",
        "SELECT coalesce(string_agg(to_jsonb(o)::text, ''), '') FROM outbox o",
    ] {
        let text: String = sqlx::query_scalar(query)
            .fetch_one(&owner.0)
            .await
            .expect(query);
        seen.push_str(&text);
    }
    let logged = String::from_utf8_lossy(&logs.lock().expect("logs")).to_string();
    assert!(
        logged.contains("integrations.sync"),
        "the capture holds the worker's log"
    );
    seen.push_str(&logged);
    for secret in [REFRESH_TOKEN, CLIENT_SECRET] {
        assert!(!seen.contains(secret), "{secret} leaked");
    }
    let issued: Vec<String> = google.with(|g| g.access_tokens.iter().cloned().collect());
    assert!(!issued.is_empty());
    for token in issued {
        assert!(!seen.contains(&token), "an access token leaked");
    }
}

#[tokio::test]
async fn a_service_account_reads_a_sheet_into_a_kpi_and_a_bad_row_writes_nothing() {
    let (spec, app, alice, google, endpoints) = world().await;
    let today = Utc::now().date_naive();
    let serial = |days_ago: u64| {
        let day = today - Days::new(days_ago);
        (day - NaiveDate::from_ymd_opt(1899, 12, 30).expect("epoch")).num_days()
    };
    // Columns A (date) and C (value) of the sheet "Bob's KPIs": the range reads A:C.
    google.with(|g| {
        g.sheet_values = json!([
            ["Date", "Note", "Signups"],
            [serial(3), "launch", 12],
            [(today - Days::new(2)).to_string(), "", "1,204.5"],
            [serial(1), "typo fixed below"],
            [],
            ["Total", "", 1216.5],
            [serial(1), "", 7],
            [serial(500), "too old for the backfill", 1],
        ]);
    });
    let (id, kpis) = connected(
        &app,
        &alice,
        json!({"provider": "google_sheets",
               "credentials": {"service_account_key": service_account_key()},
               "config": {"spreadsheet_id": SPREADSHEET, "sheet": "Bob's KPIs",
                          "date_column": "A", "value_column": "C", "backfill_days": 30}}),
        &["value"],
    )
    .await;
    let integration = integration_of(&app, &alice, id).await;
    assert_eq!(
        integration["credentials_hint"],
        format!("service_account_key ({SERVICE_ACCOUNT})")
    );
    sync(&app, &alice, id, &spec, &endpoints).await;
    let got = points(&app, &alice, kpis["value"]).await;
    let source = "google_sheets".to_string();
    assert_eq!(
        got,
        [
            (today - Days::new(3), 12.0, source.clone()),
            (today - Days::new(2), 1204.5, source.clone()),
            (today - Days::new(1), 7.0, source.clone()),
        ]
    );
    assert_eq!(
        google.with(|g| g.sheet_requests.clone()),
        [("'Bob''s KPIs'!A:C".to_string(), "SERIAL_NUMBER".to_string())]
    );
    assert_eq!(google.with(|g| g.service_account_grants), 1);

    // Someone types text into a dated row: the run fails naming the row; nothing changes.
    google.with(|g| {
        g.sheet_values = json!([
            ["Date", "", "Signups"],
            [serial(3), "", 99],
            [serial(2), "", "n/a"]
        ]);
    });
    sync(&app, &alice, id, &spec, &endpoints).await;
    assert_eq!(points(&app, &alice, kpis["value"]).await, got);
    let integration = integration_of(&app, &alice, id).await;
    assert_eq!(integration["sync_status"], "error");
    assert!(
        integration["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("row 3") && m.contains("n/a")),
        "{integration}"
    );
}

/// A server whose Google OAuth client is the fake's, and Google.
async fn consenting_world() -> (String, TestApp, TestUser, FakeGoogle, Endpoints) {
    let spec = Vault::new_key_entry("k1");
    let (google, endpoints) = FakeGoogle::start().await;
    let base = endpoints
        .google_token
        .trim_end_matches("/token")
        .to_string();
    let app = TestApp::spawn_with(tenantry_server::http::HttpConfig {
        vault: Some(vault(&spec)),
        google_oauth: Some(tenantry_server::integrations::oauth::GoogleOAuthConfig {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            authorization_url: format!("{base}/authorize"),
            token_url: endpoints.google_token.clone(),
            redirect_url: REDIRECT.into(),
        }),
        ..tenantry_server::http::HttpConfig::default()
    })
    .await;
    let alice = app.user("alice@example.com").await;
    (spec, app, alice, google, endpoints)
}

/// Google's redirect back, arriving in a browser signed in as `user` (its session cookie), or
/// in one signed in as nobody, holding the flow cookie `browser` or none.
async fn callback(
    app: &TestApp,
    user: Option<&TestUser>,
    browser: Option<&str>,
    query: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = app
        .request(Method::GET, None, "/v1/integrations/oauth/callback")
        .query(query);
    let mut cookies = Vec::new();
    if let Some(user) = user {
        cookies.push(format!("tenantry_session={}", user.token));
    }
    if let Some(browser) = browser {
        cookies.push(format!("tenantry_integration_flow={browser}"));
    }
    if !cookies.is_empty() {
        request = request.header("cookie", cookies.join("; "));
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Starts connecting as `user`: the answer, and the flow cookie it set.
async fn authorize(app: &TestApp, user: &TestUser, id: Uuid) -> ((StatusCode, Value), String) {
    let response = app
        .request(
            Method::POST,
            Some(&user.token),
            &format!("/v1/orgs/{}/integrations/{id}/authorize", user.org),
        )
        .send()
        .await
        .expect("send");
    let browser = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("tenantry_integration_flow="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_string();
    let status = response.status();
    (
        (status, response.json().await.unwrap_or(Value::Null)),
        browser,
    )
}

#[tokio::test]
async fn connecting_on_googles_consent_screen_stores_a_refresh_token_for_the_person_who_started() {
    let (spec, app, alice, google, endpoints) = consenting_world().await;
    let carol = app.user("carol@example.com").await;
    app.add_member(&alice, alice.org, &carol, Role::Admin).await;
    let dave = app.user("dave@example.com").await;
    app.add_member(&alice, alice.org, &dave, Role::Member).await;
    crate::billing::on_plan(&app, &alice, "team", json!({"integrations": 5})).await;
    sqlx::query("UPDATE plans SET features = '{integrations}' WHERE code = 'team'")
        .execute(&app.db.owner().await.0)
        .await
        .expect("feature");
    // Created without credentials: it waits to be connected, and says so if synced.
    let (id, kpis) = connected(
        &app,
        &alice,
        json!({"provider": "google_analytics", "config": {"property_id": PROPERTY, "backfill_days": 3}}),
        &["sessions"],
    )
    .await;
    sync(&app, &alice, id, &spec, &endpoints).await;
    let waiting = integration_of(&app, &alice, id).await;
    assert_eq!(waiting["sync_status"], "error");
    assert!(
        waiting["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("authorize")),
        "{waiting}"
    );

    let ((status, started), flow_cookie) = authorize(&app, &alice, id).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert!(!flow_cookie.is_empty(), "the flow cookie is set");
    let browser = Some(flow_cookie.as_str());
    let (code, state) = google.consent(started["authorization_url"].as_str().expect("url"));
    // The callback with Google's code, as `user` in a browser holding `browser`, for `state`.
    let with_code = async |user: Option<&TestUser>, browser: Option<&str>, state: &str| {
        callback(&app, user, browser, &[("code", &code), ("state", state)]).await
    };

    // Refused, and nothing stored: nobody signed in, another admin of the organization, a
    // stranger, a tampered state, a state moved to another integration, Google's refusal.
    let hint = || async { integration_of(&app, &alice, id).await["credentials_hint"].clone() };
    assert_eq!(
        with_code(None, browser, &state).await.0,
        StatusCode::UNAUTHORIZED
    );
    let got = with_code(Some(&carol), browser, &state).await;
    crate::helpers::assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let stranger = app.user("mallory@example.com").await;
    let got = with_code(Some(&stranger), browser, &state).await;
    assert!(
        matches!(got.0, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "{got:?}"
    );
    let mut tampered = state.clone();
    let last = tampered.pop().expect("char");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let got = with_code(Some(&alice), browser, &tampered).await;
    crate::helpers::assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_token");
    let (other, _) = connected(
        &app,
        &alice,
        json!({"provider": "google_sheets", "name": "Sheet",
               "config": {"spreadsheet_id": SPREADSHEET}}),
        &[],
    )
    .await;
    let moved = state.replacen(&id.to_string(), &other.to_string(), 1);
    let got = with_code(Some(&alice), browser, &moved).await;
    crate::helpers::assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_token");
    let got = callback(
        &app,
        Some(&alice),
        browser,
        &[("error", "access_denied"), ("state", &state)],
    )
    .await;
    assert_eq!(got.0, StatusCode::BAD_REQUEST, "{got:?}");
    // An expired one (sealed as the server would, a minute past its 10).
    let expired = {
        let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(flow_cookie.as_bytes()));
        let flow = json!({"user": alice.id, "verifier": "v", "browser": digest,
                          "expires_at": Utc::now().timestamp() - 60});
        let sealed = vault(&spec).seal(
            &tenantry_server::vault::Place {
                org: alice.org,
                table: "integration_oauth",
                row: id,
                column: "state",
            },
            flow.to_string().as_bytes(),
        );
        format!(
            "{}.{id}.{}",
            alice.org,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
        )
    };
    let got = with_code(Some(&alice), browser, &expired).await;
    crate::helpers::assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_token");
    // Alice herself, in a browser that did not start it (no flow cookie).
    let got = with_code(Some(&alice), None, &state).await;
    crate::helpers::assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(hint().await.is_null(), "nothing was stored");

    // The person who started, in their browser: connected, due at once, and it syncs.
    let (status, connected_now) = with_code(Some(&alice), browser, &state).await;
    assert_eq!(status, StatusCode::OK, "{connected_now}");
    assert_eq!(connected_now["sync_status"], "pending");
    assert!(
        connected_now["credentials_hint"]
            .as_str()
            .is_some_and(|h| h.starts_with("refresh_token …")),
        "{connected_now}"
    );
    // The code was good once.
    let again = with_code(Some(&alice), browser, &state).await;
    assert_eq!(again.0, StatusCode::BAD_GATEWAY, "{again:?}");
    sync(&app, &alice, id, &spec, &endpoints).await;
    assert_eq!(points(&app, &alice, kpis["sessions"]).await.len(), 3);

    // Only admins start; Stripe has no consent screen; a server without the client says so.
    let dave_here = TestUser {
        org: alice.org,
        ..dave.clone()
    };
    crate::helpers::assert_problem(
        &authorize(&app, &dave_here, id).await.0,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let (status, stripe) =
        crate::integrations::connect(&app, &alice, "Billing", crate::integrations::SECRET).await;
    assert_eq!(status, StatusCode::CREATED, "{stripe}");
    let stripe = stripe["id"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .expect("id");
    crate::helpers::assert_problem(
        &authorize(&app, &alice, stripe).await.0,
        StatusCode::CONFLICT,
        "integration_not_oauth",
    );
    let plain = with_vault(&spec).await;
    let erin = plain.user("erin@example.com").await;
    let (lone, _) = connected(
        &plain,
        &erin,
        json!({"provider": "google_analytics", "config": {"property_id": PROPERTY}}),
        &[],
    )
    .await;
    crate::helpers::assert_problem(
        &authorize(&plain, &erin, lone).await.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "not_configured",
    );
}
