//! Integrations on their own (migration 0044): the dispatcher queues due syncs on each
//! integration's schedule acting for its admin; a mapping added later is backfilled; turning
//! `error` emails the admins once and a refusal pauses the schedule; a plan that lapses to fewer
//! integrations pauses the newest; API keys reach integrations only with that module.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_db::queue::{enqueue_platform, NewJob};
use tenantry_server::vault::Vault;
use uuid::Uuid;

use crate::api_keys::create_key;
use crate::billing::on_plan;
use crate::helpers::{assert_problem, TestApp, TestUser};
use crate::integrations::{
    connect, id_of, integration_of, mapped, points, run_jobs, runs, sync_now, vault, with_vault,
    StripeAccount, SECRET,
};
use tenantry_server::kernel::access::Role;

/// Runs the platform's dispatcher once, as the schedule would.
async fn dispatch(app: &TestApp) {
    enqueue_platform(
        &app.db.owner().await,
        &NewJob::new("integrations.dispatch", json!({})),
    )
    .await
    .expect("enqueue");
    crate::helpers::run_jobs(
        app,
        tenantry_server::jobs::registry(None, None, None),
        "integrations.dispatch",
    )
    .await;
}

/// The sync jobs waiting: (organization, actor, integration, trigger).
async fn queued_syncs(app: &TestApp) -> Vec<(Uuid, Option<Uuid>, String, String)> {
    sqlx::query_as(
        r"SELECT organization_id, actor_id, payload ->> 'integration_id', payload ->> 'trigger'
            FROM queue.jobs WHERE kind = 'integrations.sync' AND state = 'queued' ORDER BY id",
    )
    .fetch_all(&app.db.owner().await.0)
    .await
    .expect("jobs")
}

/// Makes the integration due now, as time passing would.
async fn make_due(app: &TestApp, id: Uuid) {
    sqlx::query("UPDATE integrations SET next_sync_at = now() - interval '1 minute' WHERE id = $1")
        .bind(id)
        .execute(&app.db.owner().await.0)
        .await
        .expect("due");
}

/// POST …/sync as `user`: the answer.
async fn ask_sync(app: &TestApp, user: &TestUser, id: Uuid) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        user,
        &format!("/v1/orgs/{}/integrations/{id}/sync", user.org),
        None,
    )
    .await
}

async fn patch(app: &TestApp, alice: &TestUser, id: Uuid, body: Value) -> Value {
    let (status, body) = app
        .call(
            Method::PATCH,
            alice,
            &format!("/v1/orgs/{}/integrations/{id}", alice.org),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn stripe_day(account: &StripeAccount) {
    let yesterday = chrono::Utc::now().timestamp() - 86_400;
    account.set(
        "balance_transactions",
        vec![json!({"id": "txn_1", "amount": 1000, "created": yesterday, "type": "charge"})],
    );
}

#[tokio::test]
async fn the_dispatcher_queues_due_syncs_on_each_schedule_acting_for_the_admin() {
    let spec = Vault::new_key_entry("k1");
    let app = with_vault(&spec).await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let (stripe, base) = StripeAccount::start(SECRET).await;
    stripe_day(&stripe);
    let (id, kpis) = mapped(&app, &alice, SECRET).await;
    let (other, _) = mapped(&app, &bob, SECRET).await;
    patch(&app, &bob, other, json!({"is_active": false})).await;

    // New and mapped: due at once. Bob's is switched off: never queued.
    dispatch(&app).await;
    let queued = queued_syncs(&app).await;
    assert_eq!(
        queued,
        [(
            alice.org,
            Some(alice.id),
            id.to_string(),
            "schedule".to_string()
        )]
    );
    let integration = integration_of(&app, &alice, id).await;
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(integration["next_sync_at"].clone()).expect("next");
    assert!(next > chrono::Utc::now(), "{integration}");
    assert_eq!(
        chrono::Timelike::minute(&next),
        15,
        "the default hourly slot at :15"
    );
    run_jobs(&app, vault(&spec), &base).await;
    let log = runs(&app, &alice, id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["trigger"], "backfill");
    assert_eq!(points(&app, &alice, kpis["revenue"]).await.len(), 10);

    // Not due again before its slot; at its slot, a scheduled (incremental) run.
    dispatch(&app).await;
    assert!(queued_syncs(&app).await.is_empty());
    make_due(&app, id).await;
    dispatch(&app).await;
    run_jobs(&app, vault(&spec), &base).await;
    let log = runs(&app, &alice, id).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["trigger"], "schedule");
    assert_eq!(points(&app, &alice, kpis["revenue"]).await.len(), 10);

    // A new schedule is read as cron and takes effect at once.
    let changed = patch(&app, &alice, id, json!({"schedule": "0 6 * * 1"})).await;
    let due: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(changed["next_sync_at"].clone()).expect("next");
    assert!(due <= chrono::Utc::now());
    dispatch(&app).await;
    let integration = integration_of(&app, &alice, id).await;
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(integration["next_sync_at"].clone()).expect("next");
    assert_eq!(
        (
            chrono::Datelike::weekday(&next),
            chrono::Timelike::hour(&next)
        ),
        (chrono::Weekday::Mon, 6)
    );

    // The admin who connected it is no longer one: the organization's owner is acted for.
    let carol = app.user("carol@example.com").await;
    app.add_member(&alice, alice.org, &carol, Role::Admin).await;
    on_plan(&app, &alice, "more", json!({"integrations": 5})).await;
    sqlx::query("UPDATE plans SET features = '{integrations}' WHERE code = 'more'")
        .execute(&app.db.owner().await.0)
        .await
        .expect("feature");
    let carol_here = TestUser {
        org: alice.org,
        ..carol.clone()
    };
    let (status, created) = connect(&app, &carol_here, "Carol's", SECRET).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let carols = id_of(&created);
    sqlx::query(
        "UPDATE organization_members SET role = 'member' WHERE user_id = $1 AND organization_id = $2",
    )
    .bind(carol.id)
    .bind(alice.org)
        .execute(&app.db.owner().await.0)
        .await
        .expect("demote");
    dispatch(&app).await;
    let queued = queued_syncs(&app).await;
    assert!(
        queued.contains(&(
            alice.org,
            Some(alice.id),
            carols.to_string(),
            "schedule".to_string()
        )),
        "{queued:?}"
    );
}

#[tokio::test]
async fn a_mapping_added_later_is_backfilled_and_kept_ones_stay_incremental() {
    let spec = Vault::new_key_entry("k1");
    let app = with_vault(&spec).await;
    let alice = app.user("alice@example.com").await;
    let (stripe, base) = StripeAccount::start(SECRET).await;
    stripe_day(&stripe);
    let (id, kpis) = mapped(&app, &alice, SECRET).await;
    sync_now(&app, &alice, id).await;
    run_jobs(&app, vault(&spec), &base).await;
    // Re-point revenue to a new KPI; keep new customers as it was.
    let (status, body) = app
        .call(
            Method::POST,
            &alice,
            &format!("/v1/orgs/{}/kpis", alice.org),
            Some(json!({"name": "Revenue (new)"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let revenue = id_of(&body);
    let (status, mappings) = app
        .call(
            Method::PUT,
            &alice,
            &format!("/v1/orgs/{}/integrations/{id}/mappings", alice.org),
            Some(json!({"mappings": {"revenue": revenue, "new_customers": kpis["new_customers"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{mappings}");
    let synced: Vec<(String, bool)> = mappings
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["metric"].as_str().unwrap_or("").to_string(),
                m["synced_at"].is_null(),
            )
        })
        .collect();
    assert_eq!(
        synced,
        [
            ("new_customers".to_string(), false),
            ("revenue".to_string(), true)
        ]
    );
    sync_now(&app, &alice, id).await;
    run_jobs(&app, vault(&spec), &base).await;
    let log = runs(&app, &alice, id).await;
    assert_eq!(log[0]["trigger"], "backfill", "{log:?}");
    assert_eq!(points(&app, &alice, revenue).await.len(), 10);
}

#[tokio::test]
async fn turning_error_emails_the_admins_once_and_a_refusal_pauses_the_schedule() {
    let spec = Vault::new_key_entry("k1");
    let app = with_vault(&spec).await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let carol = app.user("carol@example.com").await;
    app.add_member(&alice, alice.org, &bob, Role::Admin).await;
    app.add_member(&alice, alice.org, &carol, Role::Member)
        .await;
    let (_stripe, base) = StripeAccount::start(SECRET).await;
    let wrong = "rk_live_51HxNotTheKeyStripeKnows000";
    let (id, _) = mapped(&app, &alice, wrong).await;
    let emails = || async {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT recipient, subject, body FROM outbox WHERE kind = 'integration_error' ORDER BY recipient",
        )
        .fetch_all(&app.db.owner().await.0)
        .await
        .expect("outbox");
        rows
    };
    sync_now(&app, &alice, id).await;
    run_jobs(&app, vault(&spec), &base).await;
    let integration = integration_of(&app, &alice, id).await;
    assert_eq!(integration["sync_status"], "error");
    assert!(
        integration["next_sync_at"].is_null(),
        "paused: {integration}"
    );
    let sent = emails().await;
    let recipients: Vec<&str> = sent.iter().map(|(to, _, _)| to.as_str()).collect();
    assert_eq!(recipients, ["alice@example.com", "bob@example.com"]);
    assert!(
        sent[0].2.contains("paused") && sent[0].2.contains("401"),
        "{}",
        sent[0].2
    );
    assert!(!sent[0].2.contains(wrong), "the key is not in the email");
    // Paused: the dispatcher does not queue it; failing again does not email again.
    dispatch(&app).await;
    assert!(queued_syncs(&app).await.is_empty());
    sync_now(&app, &alice, id).await;
    run_jobs(&app, vault(&spec), &base).await;
    assert_eq!(runs(&app, &alice, id).await.len(), 2);
    assert_eq!(emails().await.len(), 2, "once per turn to error");

    // The right key: pending, due at once, and it syncs; breaking again tells them again.
    let fixed = patch(
        &app,
        &alice,
        id,
        json!({"credentials": {"api_key": SECRET}}),
    )
    .await;
    assert_eq!(fixed["sync_status"], "pending", "{fixed}");
    assert!(fixed["error_message"].is_null(), "{fixed}");
    // A run whose worker died stays `running`; the next run of the integration closes it.
    sqlx::query(
        "INSERT INTO integration_syncs (organization_id, integration_id, trigger) VALUES ($1, $2, 'schedule')",
    )
    .bind(alice.org)
    .bind(id)
    .execute(&app.db.owner().await.0)
    .await
    .expect("orphan");
    dispatch(&app).await;
    run_jobs(&app, vault(&spec), &base).await;
    let recovered = integration_of(&app, &alice, id).await;
    assert_eq!(recovered["sync_status"], "success");
    // Back on its schedule (the next :15), not where the failures had pushed it.
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(recovered["next_sync_at"].clone()).expect("next");
    assert!(
        next <= chrono::Utc::now() + chrono::Duration::hours(1),
        "{recovered}"
    );
    let log = runs(&app, &alice, id).await;
    assert!(
        log.iter().all(|r| r["status"] != "running"),
        "no run is left running: {log:?}"
    );
    assert!(
        log.iter().any(|r| r["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("interrupted"))),
        "{log:?}"
    );
    patch(&app, &alice, id, json!({"credentials": {"api_key": wrong}})).await;
    sync_now(&app, &alice, id).await;
    run_jobs(&app, vault(&spec), &base).await;
    assert_eq!(emails().await.len(), 4);
}

#[tokio::test]
async fn a_plan_that_lapses_to_fewer_integrations_pauses_the_newest_until_it_allows_them() {
    let spec = Vault::new_key_entry("k1");
    let app = with_vault(&spec).await;
    let alice = app.user("alice@example.com").await;
    let (_stripe, base) = StripeAccount::start(SECRET).await;
    on_plan(&app, &alice, "team", json!({"integrations": 3})).await;
    let owner = app.db.owner().await;
    sqlx::query("UPDATE plans SET features = '{integrations}' WHERE code = 'team'")
        .execute(&owner.0)
        .await
        .expect("feature");
    let (status, first) = connect(&app, &alice, "First", SECRET).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, second) = connect(&app, &alice, "Second", SECRET).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let (first, second) = (id_of(&first), id_of(&second));
    // The plan now allows one.
    sqlx::query(r#"UPDATE plans SET limits = '{"integrations": 1}' WHERE code = 'team'"#)
        .execute(&owner.0)
        .await
        .expect("lapse");
    assert_eq!(
        integration_of(&app, &alice, first).await["within_plan"],
        true
    );
    assert_eq!(
        integration_of(&app, &alice, second).await["within_plan"],
        false
    );
    dispatch(&app).await;
    let queued: Vec<String> = queued_syncs(&app)
        .await
        .into_iter()
        .map(|(_, _, id, _)| id)
        .collect();
    assert_eq!(queued, [first.to_string()]);
    let got = ask_sync(&app, &alice, second).await;
    assert_problem(&got, StatusCode::PAYMENT_REQUIRED, "plan_limit");
    // Switching the first off makes room for the second; nothing was deleted.
    patch(&app, &alice, first, json!({"is_active": false})).await;
    assert_eq!(
        integration_of(&app, &alice, second).await["within_plan"],
        true
    );
    let got = ask_sync(&app, &alice, first).await;
    assert_problem(&got, StatusCode::CONFLICT, "integration_inactive");
    sync_now(&app, &alice, second).await;
    run_jobs(&app, vault(&spec), &base).await;
    assert_eq!(runs(&app, &alice, second).await.len(), 1);
    // A plan without the feature: nothing syncs.
    sqlx::query("UPDATE plans SET features = '{}' WHERE code = 'team'")
        .execute(&owner.0)
        .await
        .expect("no feature");
    make_due(&app, second).await;
    dispatch(&app).await;
    assert!(queued_syncs(&app).await.is_empty());
    let got = ask_sync(&app, &alice, second).await;
    assert_problem(&got, StatusCode::PAYMENT_REQUIRED, "feature_unavailable");
}

#[tokio::test]
async fn api_keys_reach_integrations_only_with_that_module_and_never_their_secrets() {
    let spec = Vault::new_key_entry("k1");
    let app = with_vault(&spec).await;
    let alice = app.user("alice@example.com").await;
    let (id, _) = mapped(&app, &alice, SECRET).await;
    let (_, reader) = create_key(
        &app,
        &alice,
        json!({"name": "dashboards", "access": "read", "modules": ["integrations"]}),
    )
    .await;
    let (_, kpis_only) = create_key(
        &app,
        &alice,
        json!({"name": "kpis", "access": "write", "modules": ["kpis"]}),
    )
    .await;
    let list = format!("/v1/orgs/{}/integrations", alice.org);
    let (status, listed) = app.call(Method::GET, &reader, &list, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["items"][0]["id"], json!(id));
    assert!(listed["items"][0]["credentials_hint"].is_null(), "{listed}");
    assert!(!listed.to_string().contains("SecretValue"));
    let (status, _) = app
        .call(
            Method::GET,
            &reader,
            &format!("/v1/orgs/{}/integrations/{id}/syncs", alice.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A read key neither syncs nor changes; a key for other modules gets nothing.
    let got = ask_sync(&app, &reader, id).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    for (method, path) in [
        (Method::GET, list.clone()),
        (Method::GET, format!("{list}/{id}")),
        (Method::POST, format!("{list}/{id}/sync")),
        (Method::DELETE, format!("{list}/{id}")),
    ] {
        let got = app.call(method, &kpis_only, &path, None).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    assert!(queued_syncs(&app).await.is_empty());
    assert_eq!(integration_of(&app, &alice, id).await["id"], json!(id));
}
