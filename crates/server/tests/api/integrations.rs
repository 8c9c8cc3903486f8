//! Integrations and the credential vault (migration 0041): credentials sealed, write-only and
//! masked; another organization, a member or a moved ciphertext gets nothing; rotation re-seals
//! everything so the old key can go.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_db::RequestContext;
use tenantry_server::http::HttpConfig;
use tenantry_server::integrations::store;
use tenantry_server::kernel::access::Role;
use tenantry_server::kernel::org_tx::OrgTx;
use tenantry_server::vault::Vault;
use uuid::Uuid;

use crate::billing::on_plan;
use crate::helpers::{assert_problem, refused_fields, TestApp, TestUser};

pub(crate) const SECRET: &str = "rk_live_51HxSecretValueThatMustNeverShow4242";

pub(crate) fn vault(spec: &str) -> Arc<Vault> {
    Arc::new(Vault::from_spec(spec).expect("vault"))
}

pub(crate) async fn with_vault(spec: &str) -> TestApp {
    TestApp::spawn_with(HttpConfig {
        vault: Some(vault(spec)),
        ..HttpConfig::default()
    })
    .await
}

pub(crate) async fn connect(
    app: &TestApp,
    admin: &TestUser,
    name: &str,
    key: &str,
) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        admin,
        &format!("/v1/orgs/{}/integrations", admin.org),
        Some(json!({"provider": "stripe", "name": name, "credentials": {"api_key": key}})),
    )
    .await
}

pub(crate) fn id_of(body: &Value) -> Uuid {
    body["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id")
}

/// The credentials as a sync would open them: in `user`'s transaction, with `vault`.
async fn opened(app: &TestApp, vault: &Vault, user: &TestUser, id: Uuid) -> Result<String, String> {
    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(user.id), user.org)
        .await
        .expect("begin");
    store::credentials(&mut tx, vault, id)
        .await
        .map(|c| c.get("api_key").cloned().unwrap_or_default())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn credentials_are_sealed_write_only_and_shown_only_as_a_hint() {
    let spec = Vault::new_key_entry("k1");
    let app = with_vault(&spec).await;
    let alice = app.user("alice@example.com").await;
    let carol = app.user("carol@example.com").await;
    app.add_member(&alice, alice.org, &carol, Role::Member)
        .await;
    let (status, created) = connect(&app, &alice, "Billing", SECRET).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["credentials_hint"], "api_key …4242");
    assert_eq!(created["sync_status"], "pending");
    let id = id_of(&created);
    let path = format!("/v1/orgs/{}/integrations/{id}", alice.org);
    // Admins see the hint; members see the status without it; nobody sees the secret.
    let (_, as_admin) = app.call(Method::GET, &alice, &path, None).await;
    let (status, as_member) = app.call(Method::GET, &carol, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(as_member["credentials_hint"], Value::Null);
    assert_eq!(as_member["provider"], "stripe");
    let (_, listed) = app
        .call(
            Method::GET,
            &carol,
            &format!("/v1/orgs/{}/integrations", alice.org),
            None,
        )
        .await;
    for body in [&created, &as_admin, &as_member, &listed] {
        assert!(!body.to_string().contains("SecretValue"), "{body}");
    }
    // Stored sealed, under the primary key; the audit trail never holds it either.
    let owner = app.db.owner().await;
    let (sealed, key_id): (Vec<u8>, String) =
        sqlx::query_as("SELECT sealed, key_id FROM integration_secrets WHERE integration_id = $1")
            .bind(id)
            .fetch_one(&owner.0)
            .await
            .expect("secret");
    assert_eq!(key_id, "k1");
    assert!(!sealed.windows(11).any(|w| w == b"SecretValue"));
    let leaks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.events WHERE coalesce(old_data::text, '') || coalesce(new_data::text, '') LIKE '%SecretValue%'",
    )
    .fetch_one(&owner.0)
    .await
    .expect("audit");
    assert_eq!(leaks, 0);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.events WHERE entity_type = 'integration_secrets' AND user_id = $1",
    )
    .bind(alice.id)
    .fetch_one(&owner.0)
    .await
    .expect("audit");
    assert_eq!(audited, 1, "that a secret was stored is recorded");
    // A sync opens them in the admin's transaction; a member's cannot even read the envelope.
    let keys = vault(&spec);
    assert_eq!(
        opened(&app, &keys, &alice, id).await,
        Ok(SECRET.to_string())
    );
    assert!(opened(&app, &keys, &carol, id).await.is_err());
    // New credentials replace the old; the hint follows.
    let (status, changed) = app
        .call(
            Method::PATCH,
            &alice,
            &path,
            Some(json!({"credentials": {"api_key": "rk_live_51HxAnotherSecretValue9999"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["credentials_hint"], "api_key …9999");
    assert_eq!(
        opened(&app, &keys, &alice, id).await,
        Ok("rk_live_51HxAnotherSecretValue9999".to_string())
    );
}

#[tokio::test]
async fn bad_input_is_refused_whole_and_the_plan_limits_integrations() {
    let app = with_vault(&Vault::new_key_entry("k1")).await;
    let alice = app.user("alice@example.com").await;
    let carol = app.user("carol@example.com").await;
    app.add_member(&alice, alice.org, &carol, Role::Member)
        .await;
    let path = format!("/v1/orgs/{}/integrations", alice.org);
    for (body, field) in [
        (
            json!({"provider": "stripe", "credentials": {}}),
            "credentials",
        ),
        (
            json!({"provider": "stripe", "credentials": {"token": "x"}}),
            "credentials",
        ),
        (
            json!({"provider": "stripe", "credentials": {"api_key": "pk_live_123"}}),
            "credentials",
        ),
        (
            json!({"provider": "google_analytics", "credentials": {"api_key": "rk_1"},
                   "config": {"property_id": "123"}}),
            "credentials",
        ),
        (
            json!({"provider": "google_analytics",
                   "credentials": {"refresh_token": "1//x", "service_account_key": "{}"},
                   "config": {"property_id": "123"}}),
            "credentials",
        ),
        (
            json!({"provider": "google_sheets",
                   "credentials": {"service_account_key": "{\"client_email\": \"a@b\", \"private_key\": \"no\"}"},
                   "config": {"spreadsheet_id": "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"}}),
            "credentials",
        ),
        (
            json!({"provider": "google_sheets", "credentials": {"refresh_token": "1//x", "client_id": "c"},
                   "config": {"spreadsheet_id": "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"}}),
            "credentials",
        ),
        (
            json!({"provider": "google_analytics", "credentials": {"refresh_token": "1//x"},
                   "config": {"property_id": "G-ABC123"}}),
            "config",
        ),
        (
            json!({"provider": "google_sheets", "credentials": {"refresh_token": "1//x"},
                   "config": {"spreadsheet_id": "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms",
                              "date_column": "B", "value_column": "B"}}),
            "config",
        ),
        (
            json!({"provider": "stripe", "credentials": {"api_key": "rk_1"}, "schedule": "every hour"}),
            "schedule",
        ),
        (
            json!({"provider": "stripe", "credentials": {"api_key": "rk_1"}, "config": []}),
            "config",
        ),
    ] {
        let got = app
            .call(Method::POST, &alice, &path, Some(body.clone()))
            .await;
        assert_eq!(refused_fields(&got), [field], "{body}");
    }
    let got = app
        .call(
            Method::POST,
            &alice,
            &path,
            Some(json!({"provider": "zapier", "credentials": {"api_key": "x"}})),
        )
        .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    // Members do not connect.
    let got = app
        .call(
            Method::POST,
            &carol,
            &path,
            Some(json!({"provider": "stripe", "credentials": {"api_key": SECRET}})),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // The free plan allows one.
    assert_eq!(
        connect(&app, &alice, "First", SECRET).await.0,
        StatusCode::CREATED
    );
    let got = connect(&app, &alice, "Second", SECRET).await;
    assert_problem(&got, StatusCode::PAYMENT_REQUIRED, "plan_limit");
    assert_eq!(got.1["entitlement"], "integrations");
    // More on a bigger plan; a name is unique per provider.
    on_plan(&app, &alice, "many", json!({"integrations": 10})).await;
    sqlx::query("UPDATE plans SET features = '{integrations}' WHERE code = 'many'")
        .execute(&app.db.owner().await.0)
        .await
        .expect("feature");
    let got = connect(&app, &alice, "First", SECRET).await;
    assert_problem(&got, StatusCode::CONFLICT, "integration_name_taken");
    assert_eq!(
        connect(&app, &alice, "Second", SECRET).await.0,
        StatusCode::CREATED
    );
    // A plan without the feature: none at all.
    sqlx::query("UPDATE plans SET features = '{}' WHERE code = 'many'")
        .execute(&app.db.owner().await.0)
        .await
        .expect("no feature");
    let got = connect(&app, &alice, "Third", SECRET).await;
    assert_problem(&got, StatusCode::PAYMENT_REQUIRED, "feature_unavailable");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM integrations")
        .fetch_one(&app.db.owner().await.0)
        .await
        .expect("count");
    assert_eq!(count, 2, "nothing of the refused ones was written");
    // A server without vault keys says so instead of storing anything.
    let bare = TestApp::spawn().await;
    let dave = bare.user("dave@example.com").await;
    let got = connect(&bare, &dave, "Billing", SECRET).await;
    assert_problem(&got, StatusCode::SERVICE_UNAVAILABLE, "not_configured");
}

#[tokio::test]
async fn another_organization_gets_nothing_and_a_moved_ciphertext_does_not_open() {
    let spec = Vault::new_key_entry("k1");
    let keys = vault(&spec);
    let app = with_vault(&spec).await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let (_, mine) = connect(&app, &alice, "Billing", SECRET).await;
    let (_, his) = connect(&app, &bob, "Billing", "rk_live_51HxBobsOwnSecretKey7777").await;
    let (mine, his) = (id_of(&mine), id_of(&his));
    // Bob names Alice's integration under his organization or hers: not found, nothing changed.
    for org in [bob.org, alice.org] {
        let path = format!("/v1/orgs/{org}/integrations/{mine}");
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(json!({"is_active": false}))),
            (Method::DELETE, None),
        ] {
            let got = app.call(method, &bob, &path, body).await;
            assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
        }
    }
    assert!(opened(&app, &keys, &bob, mine).await.is_err());
    // Nor can he trigger, read the log of, or map Alice's integration.
    for org in [bob.org, alice.org] {
        let base = format!("/v1/orgs/{org}/integrations/{mine}");
        for (method, path, body) in [
            (Method::POST, format!("{base}/sync"), None),
            (Method::GET, format!("{base}/syncs"), None),
            (Method::GET, format!("{base}/mappings"), None),
            (
                Method::PUT,
                format!("{base}/mappings"),
                Some(json!({"mappings": {}})),
            ),
        ] {
            let got = app.call(method, &bob, &path, body).await;
            assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
        }
    }
    // A viewer of Alice's organization reads the log but starts nothing.
    let vera = app.user("vera@example.com").await;
    app.add_member(&alice, alice.org, &vera, Role::Viewer).await;
    let base = format!("/v1/orgs/{}/integrations/{mine}", alice.org);
    assert_eq!(
        app.call(Method::GET, &vera, &format!("{base}/syncs"), None)
            .await
            .0,
        StatusCode::OK
    );
    let got = app
        .call(Method::POST, &vera, &format!("{base}/sync"), None)
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM queue.jobs WHERE kind = 'integrations.sync'")
            .fetch_one(&app.db.owner().await.0)
            .await
            .expect("jobs");
    assert_eq!(queued, 0, "no sync was queued by anyone refused");
    // In SQL, as the runtime role bound to Bob: none of Alice's rows.
    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(bob.id), alice.org)
        .await
        .expect("begin");
    for table in [
        "integrations",
        "integration_secrets",
        "integration_mappings",
        "integration_syncs",
    ] {
        let seen: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(tx.conn())
            .await
            .expect(table);
        assert_eq!(seen, 0, "{table}");
    }
    drop(tx);
    // Alice's envelope copied onto Bob's row (by someone with the database): it does not open
    // there, and says so; his own still opens.
    let owner = app.db.owner().await;
    sqlx::query(
        "UPDATE integration_secrets SET sealed = (SELECT sealed FROM integration_secrets WHERE integration_id = $1)
          WHERE integration_id = $2",
    )
    .bind(mine)
    .bind(his)
    .execute(&owner.0)
    .await
    .expect("moved");
    let refused = opened(&app, &keys, &bob, his).await.expect_err("moved");
    assert!(refused.contains("does not open here"), "{refused}");
    assert_eq!(
        opened(&app, &keys, &alice, mine).await,
        Ok(SECRET.to_string())
    );
}

#[tokio::test]
async fn rotation_reseals_everything_so_the_old_key_can_go() {
    let old = Vault::new_key_entry("k1");
    let app = with_vault(&old).await;
    let mut admins = Vec::new();
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        let admin = app.user(&format!("{name}@example.com")).await;
        let (status, body) = connect(&app, &admin, "Billing", &format!("{SECRET}-{name}")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        admins.push((admin, id_of(&body)));
    }
    let new = Vault::new_key_entry("k2");
    let both = vault(&format!("{new},{old}"));
    let owner = app.db.owner().await;
    // In batches of 2: 2, 2, 1, then nothing left.
    let mut batches = Vec::new();
    loop {
        let n = store::rewrap_batch(&owner.0, &both, 2)
            .await
            .expect("rewrap");
        if n == 0 {
            break;
        }
        batches.push(n);
    }
    assert_eq!(batches, [2, 2, 1]);
    assert_eq!(
        store::sealed_by_key(&owner.0).await.expect("keys"),
        [("k2".to_string(), 5)]
    );
    // The old key retired: everything opens with the new one alone.
    let only_new = vault(&new);
    for (name, (admin, id)) in ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .zip(&admins)
    {
        assert_eq!(
            opened(&app, &only_new, admin, *id).await,
            Ok(format!("{SECRET}-{name}"))
        );
    }
    // A vault that lost the new key fails closed and names the key it needs.
    let refused = opened(&app, &vault(&old), &admins[0].0, admins[0].1)
        .await
        .expect_err("k2 missing");
    assert!(refused.contains("\"k2\""), "{refused}");
}

#[tokio::test]
async fn a_mapping_names_a_metric_of_the_provider_and_a_live_kpi_of_this_organization_only() {
    let app = with_vault(&Vault::new_key_entry("k1")).await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let carol = app.user("carol@example.com").await;
    app.add_member(&alice, alice.org, &carol, Role::Member)
        .await;
    let kpi = |user: TestUser, name: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app
                .call(
                    Method::POST,
                    &user,
                    &format!("/v1/orgs/{}/kpis", user.org),
                    Some(json!({"name": name})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            id_of(&body)
        }
    };
    let (mrr, revenue) = (
        kpi(alice.clone(), "MRR").await,
        kpi(alice.clone(), "Revenue").await,
    );
    let bobs = kpi(bob.clone(), "Bob's MRR").await;
    let (_, created) = connect(&app, &alice, "Billing", SECRET).await;
    let path = format!(
        "/v1/orgs/{}/integrations/{}/mappings",
        alice.org,
        id_of(&created)
    );
    let (status, set) = app
        .call(
            Method::PUT,
            &alice,
            &path,
            Some(json!({"mappings": {"mrr": mrr, "revenue": revenue}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set.as_array().map(Vec::len), Some(2));
    // Members read them; they do not change them.
    let (status, read) = app.call(Method::GET, &carol, &path, None).await;
    assert_eq!(
        (status, read[0]["metric"].as_str()),
        (StatusCode::OK, Some("mrr"))
    );
    let got = app
        .call(Method::PUT, &carol, &path, Some(json!({"mappings": {}})))
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // Bob's KPI, a metric Stripe does not have, a KPI in the trash: refused, naming each.
    let (status, _) = app
        .call(
            Method::DELETE,
            &alice,
            &format!("/v1/orgs/{}/kpis/{revenue}", alice.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let got = app
        .call(
            Method::PUT,
            &alice,
            &path,
            Some(json!({"mappings": {"mrr": bobs, "sessions": mrr, "revenue": revenue}})),
        )
        .await;
    let mut fields = refused_fields(&got);
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["mappings.mrr", "mappings.revenue", "mappings.sessions"]
    );
    let (_, unchanged) = app.call(Method::GET, &alice, &path, None).await;
    assert_eq!(unchanged, read, "nothing changed");
    // In SQL as Alice's runtime role: the database itself refuses Bob's KPI.
    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(alice.id), alice.org)
        .await
        .expect("begin");
    let refused = sqlx::query(
        "INSERT INTO integration_mappings (organization_id, integration_id, metric, kpi_id) VALUES ($1, $2, 'new_customers', $3)",
    )
    .bind(alice.org)
    .bind(id_of(&created))
    .bind(bobs)
    .execute(tx.conn())
    .await
    .expect_err("another organization's KPI");
    assert_eq!(
        refused
            .as_database_error()
            .and_then(|d| d.code())
            .as_deref(),
        Some("23503")
    );
    drop(tx);
    // Bob reads nothing of Alice's mappings.
    let got = app.call(Method::GET, &bob, &path, None).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    // An empty set removes them.
    let (status, none) = app
        .call(Method::PUT, &alice, &path, Some(json!({"mappings": {}})))
        .await;
    assert_eq!((status, none), (StatusCode::OK, json!([])));
}

/// A Stripe account as the connector reads it: lists of balance transactions, customers and
/// subscriptions, two to a page, behind one API key; or failing with `fail`.
#[derive(Clone, Default)]
pub(crate) struct StripeAccount {
    key: String,
    lists: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<Value>>>>,
    fail: Arc<std::sync::Mutex<Option<u16>>>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
}

async fn stripe_list(
    axum::extract::State(account): axum::extract::State<StripeAccount>,
    axum::extract::Path(list): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> (axum::http::StatusCode, axum::Json<Value>) {
    account
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let sent = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_string();
    if sent != account.key {
        // Echoing the key, as a careless provider might: the service must redact it.
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"type": "invalid_request_error",
                "message": format!("Invalid API Key provided: {sent}")}})),
        );
    }
    if let Some(status) = *account.fail.lock().expect("lock") {
        return (
            axum::http::StatusCode::from_u16(status).expect("status"),
            axum::Json(json!({"error": {"type": "api_error", "message": "try again later"}})),
        );
    }
    let all = account
        .lists
        .lock()
        .expect("lock")
        .get(&list)
        .cloned()
        .unwrap_or_default();
    let bound = |name: &str| query.get(name).and_then(|v| v.parse::<i64>().ok());
    let matching: Vec<Value> = all
        .into_iter()
        .filter(|o| {
            let created = o["created"].as_i64().unwrap_or(0);
            bound("created[gte]").is_none_or(|b| created >= b)
                && bound("created[lt]").is_none_or(|b| created < b)
                && query
                    .get("status")
                    .is_none_or(|s| o["status"] == s.as_str())
        })
        .collect();
    let start = query
        .get("starting_after")
        .and_then(|after| matching.iter().position(|o| o["id"] == after.as_str()))
        .map_or(0, |i| i + 1);
    let page: Vec<Value> = matching.iter().skip(start).take(2).cloned().collect();
    let has_more = start + page.len() < matching.len();
    (
        axum::http::StatusCode::OK,
        axum::Json(json!({"object": "list", "data": page, "has_more": has_more})),
    )
}

impl StripeAccount {
    pub(crate) async fn start(key: &str) -> (Self, String) {
        let account = StripeAccount {
            key: key.into(),
            ..StripeAccount::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .route("/v1/{list}", axum::routing::get(stripe_list))
            .with_state(account.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (account, base)
    }

    pub(crate) fn set(&self, list: &str, objects: Vec<Value>) {
        self.lists
            .lock()
            .expect("lock")
            .insert(list.into(), objects);
    }
}

/// Runs the queued syncs with the integrations' connectors (Stripe at `stripe_base`).
pub(crate) async fn run_jobs(app: &TestApp, keys: Arc<Vault>, stripe_base: &str) {
    let endpoints = tenantry_server::integrations::sync::Endpoints {
        stripe_api: stripe_base.to_string(),
        ..Default::default()
    };
    run_syncs(app, keys, endpoints).await;
}

/// Runs the queued syncs with connectors to `endpoints`.
pub(crate) async fn run_syncs(
    app: &TestApp,
    keys: Arc<Vault>,
    endpoints: tenantry_server::integrations::sync::Endpoints,
) {
    let connectors =
        tenantry_server::integrations::sync::Connectors::new(keys, endpoints).expect("connectors");
    crate::helpers::run_jobs(
        app,
        tenantry_server::jobs::registry(None, None, Some(connectors)),
        "integrations.sync",
    )
    .await;
}

/// The integration as Alice reads it.
pub(crate) async fn integration_of(app: &TestApp, alice: &TestUser, id: Uuid) -> Value {
    let (status, integration) = app
        .call(
            Method::GET,
            alice,
            &format!("/v1/orgs/{}/integrations/{id}", alice.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{integration}");
    integration
}

fn at(days_ago: u64, hour: u32) -> i64 {
    let day = chrono::Utc::now().date_naive() - chrono::Days::new(days_ago);
    day.and_hms_opt(hour, 0, 0)
        .expect("time")
        .and_utc()
        .timestamp()
}

/// Alice's organization with KPIs mapped from a Stripe integration (10 days of backfill).
pub(crate) async fn mapped(
    app: &TestApp,
    alice: &TestUser,
    key: &str,
) -> (Uuid, std::collections::HashMap<String, Uuid>) {
    connected(
        app,
        alice,
        json!({"provider": "stripe", "credentials": {"api_key": key}, "config": {"backfill_days": 10}}),
        &["revenue", "new_customers", "mrr", "active_subscriptions"],
    )
    .await
}

/// Connects an integration (`body` as posted) and maps `metrics` to new KPIs of their names.
pub(crate) async fn connected(
    app: &TestApp,
    alice: &TestUser,
    body: Value,
    metrics: &[&str],
) -> (Uuid, std::collections::HashMap<String, Uuid>) {
    let created = created_id(app, alice, "integrations", body).await;
    let mut kpis = std::collections::HashMap::new();
    for metric in metrics {
        let kpi = created_id(app, alice, "kpis", json!({"name": metric})).await;
        kpis.insert(metric.to_string(), kpi);
    }
    let (status, body) = app
        .call(
            Method::PUT,
            alice,
            &format!("/v1/orgs/{}/integrations/{created}/mappings", alice.org),
            Some(json!({"mappings": kpis})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (created, kpis)
}

/// POSTs `body` to the organization's `collection`; the new row's id.
pub(crate) async fn created_id(
    app: &TestApp,
    alice: &TestUser,
    collection: &str,
    body: Value,
) -> Uuid {
    let (status, created) = app
        .call(
            Method::POST,
            alice,
            &format!("/v1/orgs/{}/{collection}", alice.org),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    id_of(&created)
}

pub(crate) async fn sync_now(app: &TestApp, alice: &TestUser, id: Uuid) {
    let (status, body) = app
        .call(
            Method::POST,
            alice,
            &format!("/v1/orgs/{}/integrations/{id}/sync", alice.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

pub(crate) async fn runs(app: &TestApp, alice: &TestUser, id: Uuid) -> Vec<Value> {
    let path = format!("/v1/orgs/{}/integrations/{id}/syncs", alice.org);
    crate::helpers::items(app, alice, &path).await
}

/// A KPI's points (day, value, source) as Alice's runtime role reads them.
pub(crate) async fn points(
    app: &TestApp,
    alice: &TestUser,
    kpi: Uuid,
) -> Vec<(chrono::NaiveDate, f64, String)> {
    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(alice.id), alice.org)
        .await
        .expect("begin");
    sqlx::query_as(
        "SELECT (observed_at AT TIME ZONE 'UTC')::date, value::float8, source FROM kpi_data_points WHERE kpi_id = $1 ORDER BY observed_at",
    )
    .bind(kpi)
    .fetch_all(tx.conn())
    .await
    .expect("points")
}

#[tokio::test]
async fn a_first_sync_backfills_from_stripe_and_a_resync_changes_nothing() {
    let spec = Vault::new_key_entry("k1");
    let app = with_vault(&spec).await;
    let alice = app.user("alice@example.com").await;
    let (stripe, base) = StripeAccount::start(SECRET).await;
    stripe.set(
        "balance_transactions",
        vec![
            json!({"id": "txn_1", "amount": 1000, "created": at(2, 9), "type": "charge"}),
            json!({"id": "txn_2", "amount": 2500, "created": at(2, 15), "type": "charge"}),
            json!({"id": "txn_3", "amount": -500, "created": at(2, 16), "type": "refund"}),
            json!({"id": "txn_4", "amount": 4000, "created": at(1, 10), "type": "payment"}),
            json!({"id": "txn_5", "amount": -99999, "created": at(1, 11), "type": "payout"}),
            json!({"id": "txn_6", "amount": 7777, "created": at(20, 11), "type": "charge"}),
        ],
    );
    stripe.set(
        "customers",
        vec![
            json!({"id": "cus_1", "created": at(2, 8)}),
            json!({"id": "cus_2", "created": at(2, 9)}),
            json!({"id": "cus_3", "created": at(0, 0)}),
        ],
    );
    stripe.set(
        "subscriptions",
        vec![
            json!({"id": "sub_1", "status": "active", "created": at(30, 0), "items": {"object": "list", "data": [
                {"quantity": 1, "price": {"unit_amount": 1900, "recurring": {"interval": "month", "interval_count": 1}}}]}}),
            json!({"id": "sub_2", "status": "active", "created": at(40, 0), "items": {"object": "list", "data": [
                {"quantity": 2, "price": {"unit_amount": 12000, "recurring": {"interval": "year"}}}]}}),
            json!({"id": "sub_3", "status": "canceled", "created": at(50, 0), "items": {"object": "list", "data": [
                {"quantity": 1, "price": {"unit_amount": 50000, "recurring": {"interval": "month"}}}]}}),
        ],
    );
    let (id, kpis) = mapped(&app, &alice, SECRET).await;
    sync_now(&app, &alice, id).await;
    run_jobs(&app, vault(&spec), &base).await;

    let logged = runs(&app, &alice, id).await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    let today = chrono::Utc::now().date_naive();
    assert_eq!(
        (
            logged[0]["trigger"].as_str(),
            logged[0]["status"].as_str(),
            logged[0]["points_written"].as_i64(),
            logged[0]["range_from"].as_str(),
        ),
        (
            Some("backfill"),
            Some("success"),
            Some(22),
            Some((today - chrono::Days::new(9)).to_string().as_str())
        ),
        "{logged:?}"
    );
    let revenue = points(&app, &alice, kpis["revenue"]).await;
    assert_eq!(revenue.len(), 10, "a point for every day, 0 without sales");
    let on = |day: u64| {
        revenue
            .iter()
            .find(|(d, _, _)| *d == today - chrono::Days::new(day))
            .map(|(_, v, s)| (*v, s.clone()))
    };
    assert_eq!(
        on(2),
        Some((30.0, "stripe".to_string())),
        "charges less the refund"
    );
    assert_eq!(
        on(1),
        Some((40.0, "stripe".to_string())),
        "payouts are not revenue"
    );
    assert_eq!(on(0), Some((0.0, "stripe".to_string())));
    let customers = points(&app, &alice, kpis["new_customers"]).await;
    assert_eq!(customers.iter().map(|p| p.1).sum::<f64>(), 3.0);
    assert_eq!(
        points(&app, &alice, kpis["mrr"]).await,
        [(today, 39.0, "stripe".to_string())],
        "19 a month plus 2 × 120 a year"
    );
    assert_eq!(
        points(&app, &alice, kpis["active_subscriptions"]).await,
        [(today, 2.0, "stripe".to_string())]
    );
    let integration = integration_of(&app, &alice, id).await;
    assert_eq!(integration["sync_status"], "success");
    assert!(integration["last_sync_at"].is_string());

    // Again: the last two days are read again and replace what is there; nothing doubles.
    sync_now(&app, &alice, id).await;
    run_jobs(&app, vault(&spec), &base).await;
    let logged = runs(&app, &alice, id).await;
    assert_eq!(logged.len(), 2);
    assert_eq!(
        (
            logged[0]["trigger"].as_str(),
            logged[0]["status"].as_str(),
            logged[0]["range_from"].as_str()
        ),
        (
            Some("manual"),
            Some("success"),
            Some((today - chrono::Days::new(1)).to_string().as_str())
        )
    );
    assert_eq!(points(&app, &alice, kpis["revenue"]).await, revenue);
    assert_eq!(points(&app, &alice, kpis["new_customers"]).await, customers);
}

#[tokio::test]
async fn a_refused_key_turns_the_integration_to_error_without_keeping_the_key_anywhere() {
    let spec = Vault::new_key_entry("k1");
    let app = with_vault(&spec).await;
    let alice = app.user("alice@example.com").await;
    let (_stripe, base) = StripeAccount::start("rk_live_51HxTheRightKeyIsAnother0000").await;
    let (id, _) = mapped(&app, &alice, SECRET).await;
    sync_now(&app, &alice, id).await;
    run_jobs(&app, vault(&spec), &base).await;
    let logged = runs(&app, &alice, id).await;
    assert_eq!(logged.len(), 1, "refused at once, not retried: {logged:?}");
    assert_eq!(logged[0]["status"], "error");
    let error = logged[0]["error"].as_str().expect("error");
    assert!(
        error.contains("401") && error.contains("[redacted]"),
        "{error}"
    );
    let integration = integration_of(&app, &alice, id).await;
    assert_eq!(integration["sync_status"], "error");
    // Nowhere: not in the run, the integration, the job's last error, or the audit trail.
    let owner = app.db.owner().await;
    let leaks: i64 = sqlx::query_scalar(
        r"SELECT (SELECT count(*) FROM integration_syncs WHERE error LIKE '%SecretValue%')
               + (SELECT count(*) FROM integrations WHERE error_message LIKE '%SecretValue%')
               + (SELECT count(*) FROM queue.jobs WHERE coalesce(last_error, '') LIKE '%SecretValue%')
               + (SELECT count(*) FROM audit.events
                   WHERE coalesce(old_data::text, '') || coalesce(new_data::text, '') LIKE '%SecretValue%')",
    )
    .fetch_one(&owner.0)
    .await
    .expect("leaks");
    assert_eq!(leaks, 0);
    assert!(!integration.to_string().contains("SecretValue"));
}

#[tokio::test]
async fn provider_failures_are_retried_and_logged_then_mark_the_integration_error() {
    let spec = Vault::new_key_entry("k1");
    let app = with_vault(&spec).await;
    let alice = app.user("alice@example.com").await;
    let (stripe, base) = StripeAccount::start(SECRET).await;
    *stripe.fail.lock().expect("lock") = Some(503);
    let (id, kpis) = mapped(&app, &alice, SECRET).await;
    sync_now(&app, &alice, id).await;
    run_jobs(&app, vault(&spec), &base).await;
    let logged = runs(&app, &alice, id).await;
    // Every attempt of the job is a run in the log, each an error; then the job is dead.
    assert_eq!(logged.len(), 5, "{logged:?}");
    assert!(logged
        .iter()
        .all(|r| r["status"] == "error" && r["error"].as_str().is_some_and(|e| e.contains("503"))));
    let integration = integration_of(&app, &alice, id).await;
    assert_eq!(integration["sync_status"], "error");
    assert!(points(&app, &alice, kpis["revenue"]).await.is_empty());
    // The provider recovers: the next sync succeeds and the status with it.
    *stripe.fail.lock().expect("lock") = None;
    sync_now(&app, &alice, id).await;
    run_jobs(&app, vault(&spec), &base).await;
    assert_eq!(runs(&app, &alice, id).await[0]["status"], "success");
    let integration = integration_of(&app, &alice, id).await;
    assert_eq!(integration["sync_status"], "success");
    assert_eq!(points(&app, &alice, kpis["revenue"]).await.len(), 10);
    // The failures had pushed the schedule back hours; the success returns it to its slot.
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(integration["next_sync_at"].clone()).expect("next");
    assert!(
        next <= chrono::Utc::now() + chrono::Duration::hours(1),
        "{integration}"
    );
}
