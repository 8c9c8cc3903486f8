//! Metering (migration 0039): API calls counted per organization and billing period without a
//! lock on the request path, AI tokens recorded by members, storage measured by a job; limits
//! on them answered 402, and owners and admins told once at 80 % and at 100 %.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_db::{Actor, RequestContext, TenantTx};
use tenantry_server::billing::meter::Meter;
use tenantry_server::http::HttpConfig;
use tenantry_server::kernel::access::Role;
use tenantry_server::kernel::org_tx::OrgTx;

use crate::billing::{on_plan, usage};
use crate::helpers::{api_key, assert_problem, TestApp, TestUser};

async fn metered() -> TestApp {
    TestApp::spawn_with(HttpConfig {
        metering: Some(Duration::from_millis(50)),
        ..HttpConfig::default()
    })
    .await
}

async fn get(app: &TestApp, caller: &TestUser, path: &str) -> (StatusCode, Value) {
    app.call(Method::GET, caller, path, None).await
}

/// Waits until the organization's `api_calls` reads `expected` plus the usage reads this made
/// (each read is a call too, counted by a later flush — the read itself too, when a flush falls
/// between its count and its query); fails if it ever reads more.
async fn until_calls(app: &TestApp, reader: &TestUser, expected: i64) -> Value {
    for reads_before in 0..200 {
        let calls = usage(app, reader, "api_calls").await;
        let used = calls["used"].as_i64().expect("used");
        assert!(
            used <= expected + reads_before + 1,
            "counted {used}, at most {expected} + {reads_before} reads + this one"
        );
        if used >= expected + reads_before {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("api_calls never reached {expected}");
}

fn sqlstate(error: sqlx::Error) -> String {
    error
        .as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.to_string())
        .unwrap_or_default()
}

async fn usage_emails(app: &TestApp, org: uuid::Uuid) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT recipient, subject FROM outbox WHERE organization_id = $1 AND kind = 'usage_alert' ORDER BY created_at, subject",
    )
    .bind(org)
    .fetch_all(&app.db.owner().await.0)
    .await
    .expect("outbox")
}

#[tokio::test]
async fn api_calls_count_for_the_organization_of_their_caller_only() {
    let app = metered().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let key = api_key(&app, &alice, "read", json!(["kpis"])).await;
    let kpis = format!("/v1/orgs/{}/kpis", alice.org);
    // Creating the key was one call of Alice's.
    for _ in 0..4 {
        assert_eq!(get(&app, &alice, &kpis).await.0, StatusCode::OK);
    }
    for _ in 0..3 {
        assert_eq!(get(&app, &key, &kpis).await.0, StatusCode::OK);
    }
    // Bob names Alice's organization: refused, and counted for nobody — he cannot run up
    // another organization's bill.
    for _ in 0..5 {
        assert!(get(&app, &bob, &kpis).await.0.is_client_error());
    }
    let calls = until_calls(&app, &alice, 8).await;
    assert_eq!(calls["limit"], 100_000, "the free plan's");
    // The calendar month on a plan without a billing period.
    let month_start = chrono::Utc::now().format("%Y-%m-01T00:00:00Z").to_string();
    assert_eq!(calls["period_start"], month_start);
    // Bob's own organization counts only his usage reads (checked on each).
    until_calls(&app, &bob, 0).await;
}

#[tokio::test]
async fn the_period_follows_the_subscription_and_a_stop_flushes_what_was_counted() {
    let app = TestApp::spawn_with(HttpConfig {
        metering: None,
        ..HttpConfig::default()
    })
    .await;
    let alice = app.user("alice@example.com").await;
    let owner = app.db.owner().await;
    let start = chrono::Utc::now() - chrono::Duration::days(3);
    let end = start + chrono::Duration::days(30);
    sqlx::query(
        "UPDATE subscriptions SET status = 'active', stripe_subscription_id = 'sub_1', current_period_start = $2, current_period_end = $3
          WHERE organization_id = $1",
    )
    .bind(alice.org)
    .bind(start)
    .bind(end)
    .execute(&owner.0)
    .await
    .expect("period");
    // Metering off: nothing counted.
    let calls = usage(&app, &alice, "api_calls").await;
    assert_eq!(calls["used"], 0);
    let period_start: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(calls["period_start"].clone()).expect("start");
    assert_eq!(period_start.timestamp_micros(), start.timestamp_micros());
    // A meter counts by credential; its last flush, when it stops, writes what it holds.
    let meter = Meter::new();
    let session = tenantry_server::identity::hash_token(&alice.token);
    for _ in 0..7 {
        meter.count(alice.org, &Actor::SessionTokenHash(session));
    }
    // A credential of nobody in the organization, and a public reader: not counted.
    meter.count(alice.org, &Actor::SessionTokenHash([7; 32]));
    meter.count(alice.org, &Actor::PublicReader("alice".into()));
    meter
        .clone()
        .run(app.db.runtime.clone(), Duration::from_secs(3600), async {})
        .await;
    assert_eq!(usage(&app, &alice, "api_calls").await["used"], 7);
}

#[tokio::test]
async fn an_api_key_stops_at_the_call_limit_people_do_not_and_admins_hear_once() {
    let app = metered().await;
    let alice = app.user("alice@example.com").await;
    let carol = app.user("carol@example.com").await;
    app.add_member(&alice, alice.org, &carol, Role::Member)
        .await;
    let key = api_key(&app, &alice, "read", json!(["kpis"])).await;
    on_plan(&app, &alice, "tiny", json!({"api_calls": 10})).await;
    let kpis = format!("/v1/orgs/{}/kpis", alice.org);
    for _ in 0..6 {
        assert_eq!(get(&app, &key, &kpis).await.0, StatusCode::OK);
    }
    // Creating the key was a call, then 6; the usage reads count too.
    let calls = until_calls(&app, &alice, 7).await;
    assert_eq!(calls["limit"], 10);
    // At 10 the key is refused (a flush later at most), naming the entitlement.
    let mut refused = None;
    for _ in 0..100 {
        let got = get(&app, &key, &kpis).await;
        if got.0 != StatusCode::OK {
            refused = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("the key was refused");
    assert_problem(&refused, StatusCode::PAYMENT_REQUIRED, "plan_limit");
    assert_eq!(refused.1["entitlement"], "api_calls");
    assert_eq!(refused.1["limit"], 10);
    assert!(refused.1["used"].as_i64().expect("used") >= 10);
    // People still read and write.
    assert_eq!(get(&app, &alice, &kpis).await.0, StatusCode::OK);
    assert_eq!(get(&app, &carol, &kpis).await.0, StatusCode::OK);
    // Owners and admins heard, once per threshold; the member did not.
    let emails = usage_emails(&app, alice.org).await;
    assert!(!emails.is_empty() && emails.len() <= 2, "{emails:?}");
    assert!(emails.iter().all(|(to, _)| to == "alice@example.com"));
    assert!(
        emails.last().expect("one").1.contains("100 %"),
        "{emails:?}"
    );
    for _ in 0..3 {
        let _ = get(&app, &alice, &kpis).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        usage_emails(&app, alice.org).await,
        emails,
        "once per period"
    );
    // A larger plan lets the key back in at once.
    on_plan(&app, &alice, "tiny", json!({"api_calls": 1000})).await;
    assert_eq!(get(&app, &key, &kpis).await.0, StatusCode::OK);
}

#[tokio::test]
async fn members_record_ai_tokens_within_the_budget_of_their_own_organization() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let viewer = app.user("vera@example.com").await;
    app.add_member(&alice, alice.org, &viewer, Role::Viewer)
        .await;
    on_plan(&app, &alice, "tokens", json!({"ai_tokens": 1500})).await;
    let record = |who: uuid::Uuid, org: uuid::Uuid, what: &'static str, amount: i64| {
        let db = app.db.runtime.clone();
        async move {
            let mut tx = OrgTx::begin(&db, &RequestContext::user(who), org)
                .await
                .expect("begin");
            let total = sqlx::query_scalar::<_, i64>("SELECT app.meter_usage($1, 'gpt-4o', $2)")
                .bind(what)
                .bind(amount)
                .fetch_one(tx.conn())
                .await;
            if total.is_ok() {
                tx.commit().await.expect("commit");
            }
            total.map_err(sqlstate)
        }
    };
    let budget = |who: uuid::Uuid, org: uuid::Uuid| {
        let db = app.db.runtime.clone();
        async move {
            let mut tx = OrgTx::begin(&db, &RequestContext::user(who), org)
                .await
                .expect("begin");
            sqlx::query("SELECT app.require_within_budget('ai_tokens')")
                .execute(tx.conn())
                .await
                .map(|_| ())
                .map_err(sqlstate)
        }
    };
    assert_eq!(
        record(alice.id, alice.org, "ai_tokens", 1000).await,
        Ok(1000)
    );
    assert_eq!(budget(alice.id, alice.org).await, Ok(()));
    // Only a member, only tokens, only counts; never in another organization.
    assert_eq!(
        record(viewer.id, alice.org, "ai_tokens", 10).await,
        Err("42501".into())
    );
    assert_eq!(
        record(bob.id, alice.org, "ai_tokens", 10).await,
        Err("42501".into())
    );
    assert_eq!(
        record(alice.id, alice.org, "api_calls", 10).await,
        Err("23514".into())
    );
    assert_eq!(
        record(alice.id, alice.org, "ai_tokens", -5).await,
        Err("23514".into())
    );
    // The reply that crosses the budget is recorded (the tokens were spent); the next is refused.
    assert_eq!(
        record(alice.id, alice.org, "ai_tokens", 600).await,
        Ok(1600)
    );
    assert_eq!(budget(alice.id, alice.org).await, Err("TP402".into()));
    assert_eq!(
        budget(bob.id, bob.org).await,
        Ok(()),
        "Bob's budget is his own"
    );
    let tokens = usage(&app, &alice, "ai_tokens").await;
    assert_eq!(
        (tokens["used"].as_i64(), tokens["limit"].as_i64()),
        (Some(1600), Some(1500))
    );
    assert_eq!(usage(&app, &bob, "ai_tokens").await["used"], 0);
}

#[tokio::test]
async fn storage_is_measured_daily_and_over_its_limit_writes_stop_but_reads_and_deletes_go_on() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let kpis = format!("/v1/orgs/{}/kpis", alice.org);
    let (status, kpi) = app
        .call(Method::POST, &alice, &kpis, Some(json!({"name": "MRR"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{kpi}");
    let conversation =
        crate::integrations::created_id(&app, &alice, "conversations", json!({})).await;
    assert_eq!(
        usage(&app, &alice, "storage").await["measured_at"],
        Value::Null
    );
    run_storage_job(&app).await;
    let measured = usage(&app, &alice, "storage").await;
    let bytes = measured["used"].as_i64().expect("bytes");
    assert!(bytes > 0, "{measured}");
    assert!(measured["measured_at"].is_string());
    assert!(
        usage(&app, &bob, "storage").await["used"].as_i64() < Some(bytes),
        "Bob's organization holds less"
    );
    on_plan(&app, &alice, "small", json!({"storage": bytes - 1})).await;
    let refused = app
        .call(Method::POST, &alice, &kpis, Some(json!({"name": "ARR"})))
        .await;
    assert_problem(&refused, StatusCode::PAYMENT_REQUIRED, "plan_limit");
    assert_eq!(refused.1["entitlement"], "storage");
    assert_eq!(refused.1["used"], bytes);
    // An assistant's turn is a write too (checked when its tokens are reserved).
    let refused = app
        .call(
            Method::POST,
            &alice,
            &format!(
                "/v1/orgs/{}/conversations/{conversation}/messages",
                alice.org
            ),
            Some(json!({"content": "Hello"})),
        )
        .await;
    assert_problem(&refused, StatusCode::PAYMENT_REQUIRED, "plan_limit");
    assert_eq!(refused.1["entitlement"], "storage");
    assert_eq!(
        app.call(Method::GET, &alice, &kpis, None).await.0,
        StatusCode::OK
    );
    // A preview is a POST that stores nothing: a read, given as reads are.
    let (status, preview) = app
        .call(
            Method::POST,
            &alice,
            &format!("/v1/orgs/{}/content/preview", alice.org),
            Some(json!({"content": "*draft*"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let id = kpi["id"].as_str().expect("id");
    assert_eq!(
        app.call(Method::DELETE, &alice, &format!("{kpis}/{id}"), None)
            .await
            .0,
        StatusCode::OK,
        "deleting makes room"
    );
    // Bob's organization is not Alice's: his writes go on.
    let (status, _) = app
        .call(
            Method::POST,
            &bob,
            &format!("/v1/orgs/{}/kpis", bob.org),
            Some(json!({"name": "NPS"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn run_storage_job(app: &TestApp) {
    tenantry_db::queue::enqueue_platform(
        &app.db.owner().await,
        &tenantry_server::billing::storage::MEASURE_STORAGE.job(json!({})),
    )
    .await
    .expect("enqueue");
    crate::helpers::run_jobs(
        app,
        tenantry_server::jobs::registry(None, None, None),
        "billing.storage",
    )
    .await;
}

#[tokio::test]
async fn the_runtime_role_cannot_write_usage_or_flush_calls_itself() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let ctx = RequestContext::user(alice.id).in_org(alice.org);
    for sql in [
        "INSERT INTO usage_tracking (organization_id, resource_type, billing_period) VALUES ($1, 'api_calls', current_date)",
        "UPDATE usage_tracking SET usage_amount = 0 WHERE organization_id = $1",
        "DELETE FROM usage_alerts WHERE organization_id = $1",
        "SELECT app.record_api_calls(ARRAY[$1::uuid], ARRAY[NULL::bytea], ARRAY[NULL::bytea], ARRAY[NULL::uuid], ARRAY[1000000::bigint])",
        "SELECT app.add_usage($1, 'api_calls', '', NULL, -100)",
        "SELECT app.measure_storage() WHERE $1::uuid IS NOT NULL",
    ] {
        let mut tx = TenantTx::begin(&app.db.runtime, &ctx).await.expect("begin");
        let refused = sqlx::query(sql).bind(alice.org).execute(tx.conn()).await;
        assert_eq!(sqlstate(refused.expect_err(sql)), "42501", "{sql}");
    }
}
