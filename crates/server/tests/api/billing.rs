//! Billing over HTTP: the plan catalog, every organization on a plan, usage against its limits,
//! limits that hold when writers race, and a lapsed plan that keeps every row.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_server::kernel::access::Role;

use crate::helpers::{assert_problem, read, TestApp, TestUser};

/// Puts `user`'s organization on a plan `code` with these limits (as an operator would).
pub(crate) async fn on_plan(app: &TestApp, user: &TestUser, code: &str, limits: Value) {
    let owner = app.db.owner().await;
    sqlx::query(
        "INSERT INTO plans (code, name, tier, limits) VALUES ($1, $1, 'pro', $2)
         ON CONFLICT (code) DO UPDATE SET limits = EXCLUDED.limits",
    )
    .bind(code)
    .bind(limits)
    .execute(&owner.0)
    .await
    .expect("plan");
    sqlx::query(
        "UPDATE subscriptions SET plan_code = $2, status = 'active' WHERE organization_id = $1",
    )
    .bind(user.org)
    .bind(code)
    .execute(&owner.0)
    .await
    .expect("subscribe");
}

async fn set_status(app: &TestApp, user: &TestUser, status: &str) {
    let owner = app.db.owner().await;
    sqlx::query("UPDATE subscriptions SET status = $2 WHERE organization_id = $1")
        .bind(user.org)
        .bind(status)
        .execute(&owner.0)
        .await
        .expect("status");
}

async fn new_kpi(app: &TestApp, user: &TestUser, name: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        user,
        &format!("/v1/orgs/{}/kpis", user.org),
        Some(json!({"name": name})),
    )
    .await
}

/// The organization's subscription, as its member reads it.
pub(crate) async fn subscription_of(app: &TestApp, user: &TestUser) -> Value {
    let (status, sub) = app
        .call(
            Method::GET,
            user,
            &format!("/v1/orgs/{}/subscription", user.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sub}");
    sub
}

pub(crate) async fn usage(app: &TestApp, user: &TestUser, entitlement: &str) -> Value {
    let (status, all) = app
        .call(
            Method::GET,
            user,
            &format!("/v1/orgs/{}/usage", user.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    all.as_array()
        .expect("usage")
        .iter()
        .find(|u| u["entitlement"] == entitlement)
        .cloned()
        .expect("the entitlement")
}

#[tokio::test]
async fn every_organization_starts_on_the_default_plan() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    // The catalog is public.
    let (status, plans) = read(
        app.request(Method::GET, None, "/v1/plans")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{plans}");
    let codes: Vec<&str> = plans
        .as_array()
        .expect("plans")
        .iter()
        .filter_map(|p| p["code"].as_str())
        .collect();
    assert_eq!(codes, ["free", "basic", "pro", "enterprise"]);
    assert_eq!(plans[0]["is_default"], true);
    assert_eq!(plans[1]["prices"]["month"]["amount"], 1900);

    let sub = subscription_of(&app, &alice).await;
    assert_eq!(
        (sub["plan_code"].as_str(), sub["status"].as_str()),
        (Some("free"), Some("active"))
    );
    assert_eq!(sub["in_good_standing"], true);
    assert_eq!(sub["plan_in_force"]["code"], "free");
    let seats = usage(&app, &alice, "seats").await;
    assert_eq!(
        (seats["used"].as_i64(), seats["limit"].as_i64()),
        (Some(1), Some(5))
    );
    assert_eq!(seats["percent"].as_f64(), Some(20.0));
    let kpis = usage(&app, &alice, "kpis").await;
    assert_eq!(
        (kpis["used"].as_i64(), kpis["limit"].as_i64()),
        (Some(0), Some(100))
    );

    // Members and viewers read it; another organization does not.
    let vic = app.user("vic@example.com").await;
    app.add_member(&alice, alice.org, &vic, Role::Viewer).await;
    let vic = TestUser {
        org: alice.org,
        ..vic
    };
    let (status, _) = app
        .call(
            Method::GET,
            &vic,
            &format!("/v1/orgs/{}/subscription", alice.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usage(&app, &alice, "seats").await["used"], 2);
    let mallory = app.user("mallory@example.com").await;
    for rest in ["subscription", "usage"] {
        let got = app
            .call(
                Method::GET,
                &mallory,
                &format!("/v1/orgs/{}/{rest}", alice.org),
                None,
            )
            .await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn writers_racing_at_the_limit_let_exactly_one_through() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    on_plan(&app, &alice, "tiny", json!({"kpis": 10})).await;
    for n in 0..9 {
        let (status, body) = new_kpi(&app, &alice, &format!("KPI {n}")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // 50 at once at limit − 1.
    let attempts = (0..50).map(|n| {
        let (app, alice) = (&app, &alice);
        async move { new_kpi(app, alice, &format!("Racer {n}")).await }
    });
    let results = futures_util::future::join_all(attempts).await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one of the racers");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_problem(
            &(*status, body.clone()),
            StatusCode::PAYMENT_REQUIRED,
            "plan_limit",
        );
        assert_eq!(
            (
                body["entitlement"].as_str(),
                body["limit"].as_i64(),
                body["used"].as_i64()
            ),
            (Some("kpis"), Some(10), Some(10)),
            "{body}"
        );
    }
    assert_eq!(usage(&app, &alice, "kpis").await["used"], 10);
    let owner = app.db.owner().await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM kpis WHERE organization_id = $1")
        .bind(alice.org)
        .fetch_one(&owner.0)
        .await
        .expect("count");
    assert_eq!(stored, 10);

    // A KPI in the trash frees its slot; restoring it while the slot is taken is refused.
    let (_, page) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/kpis", alice.org),
            None,
        )
        .await;
    let first = page["items"][0]["id"].as_str().expect("id").to_string();
    let (status, _) = app
        .call(
            Method::DELETE,
            &alice,
            &format!("/v1/orgs/{}/kpis/{first}", alice.org),
            None,
        )
        .await;
    assert!(status.is_success(), "{status}");
    assert_eq!(usage(&app, &alice, "kpis").await["used"], 9);
    let (status, body) = new_kpi(&app, &alice, "Replacement").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let got = app
        .call(
            Method::POST,
            &alice,
            &format!("/v1/orgs/{}/kpis/{first}/restore", alice.org),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::PAYMENT_REQUIRED, "plan_limit");
    assert_eq!(usage(&app, &alice, "kpis").await["used"], 10);
}

#[tokio::test]
async fn a_lapsed_plan_keeps_every_row_and_stops_growth_until_it_comes_back() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    // The operator's default plan allows 3 KPIs and 2 seats; Alice pays for more.
    let owner = app.db.owner().await;
    sqlx::query(
        r#"UPDATE plans SET limits = limits || '{"kpis": 3, "seats": 2}' WHERE code = 'free'"#,
    )
    .execute(&owner.0)
    .await
    .expect("catalog");
    on_plan(&app, &alice, "big", json!({"kpis": 50, "seats": 10})).await;
    for n in 0..5 {
        let (status, body) = new_kpi(&app, &alice, &format!("KPI {n}")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let mut team = Vec::new();
    for email in ["bo@example.com", "cy@example.com"] {
        let user = app.user(email).await;
        app.add_member(&alice, alice.org, &user, Role::Member).await;
        team.push(user);
    }

    // Canceled: the default plan is in force. Everything reads; nothing is lost; no growth.
    set_status(&app, &alice, "canceled").await;
    let sub = subscription_of(&app, &alice).await;
    assert_eq!(
        (
            sub["in_good_standing"].as_bool(),
            sub["plan_in_force"]["code"].as_str()
        ),
        (Some(false), Some("free"))
    );
    let got = new_kpi(&app, &alice, "One more").await;
    assert_problem(&got, StatusCode::PAYMENT_REQUIRED, "plan_limit");
    assert_eq!(
        (got.1["limit"].as_i64(), got.1["used"].as_i64()),
        (Some(3), Some(5))
    );
    let (status, page) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/kpis", alice.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(5),
        "every KPI still there"
    );
    let first = page["items"][0]["id"].as_str().expect("id").to_string();
    let (status, body) = app
        .call(
            Method::POST,
            &alice,
            &format!("/v1/orgs/{}/kpis/{first}/points", alice.org),
            Some(json!([{"value": 42}])),
        )
        .await;
    assert!(
        status.is_success(),
        "existing KPIs keep their data coming: {body}"
    );
    let newcomer = app.user("dee@example.com").await;
    // Members join by invitation or an admin adding them: either way, the seat count refuses.
    let mut tx = tenantry_server::kernel::org_tx::OrgTx::begin(
        &app.db.runtime,
        &tenantry_db::RequestContext::user(alice.id),
        alice.org,
    )
    .await
    .expect("begin");
    let refused =
        tenantry_server::orgs::store::add_member(&mut tx, newcomer.id, Role::Member).await;
    assert_eq!(
        refused
            .err()
            .and_then(|e| e.plan_refusal())
            .map(|l| (l.entitlement, l.limit, l.used)),
        Some(("seats".to_string(), Some(2), Some(3)))
    );
    drop(tx);

    // Paid again: growth resumes.
    set_status(&app, &alice, "active").await;
    let (status, body) = new_kpi(&app, &alice, "One more").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(usage(&app, &alice, "kpis").await["used"], 6);
}

#[tokio::test]
async fn a_feature_or_tier_the_plan_lacks_is_refused_402_until_the_plan_has_it() {
    use axum::response::IntoResponse;
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    // What a module asks before a write (here as Alice's own transaction, under RLS).
    let ask = |sql: &'static str, user: TestUser| {
        let db = app.db.runtime.clone();
        async move {
            let mut tx = tenantry_server::kernel::org_tx::OrgTx::begin(
                &db,
                &tenantry_db::RequestContext::user(user.id),
                user.org,
            )
            .await
            .expect("begin");
            let asked = sqlx::query(sql).execute(tx.conn()).await.map(|_| ());
            asked.map_err(tenantry_server::kernel::error::Error::from)
        }
    };
    let problem = |refused: tenantry_server::kernel::error::Error| async move {
        let response = refused.into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice::<Value>(&body).expect("problem"),
        )
    };
    let ai = "SELECT app.require_feature('ai')";
    let outline = "SELECT app.require_tier('basic', 'ai_tool:outline')";
    let summarise = "SELECT app.require_tier('pro', 'ai_tool:summarise')";
    // Free: neither.
    let refused = problem(ask(ai, alice.clone()).await.expect_err("free")).await;
    assert_problem(
        &refused,
        StatusCode::PAYMENT_REQUIRED,
        "feature_unavailable",
    );
    assert_eq!(refused.1["entitlement"], "ai");
    assert_eq!(refused.1["plan"], "free");
    let refused = problem(ask(summarise, alice.clone()).await.expect_err("free")).await;
    assert_problem(
        &refused,
        StatusCode::PAYMENT_REQUIRED,
        "feature_unavailable",
    );
    assert_eq!(
        (
            refused.1["entitlement"].as_str(),
            refused.1["required_tier"].as_str()
        ),
        (Some("ai_tool:summarise"), Some("pro"))
    );
    // On the basic plan: the basic tier, neither the AI feature nor the pro tier.
    let owner = app.db.owner().await;
    sqlx::query("UPDATE subscriptions SET plan_code = 'basic', status = 'active' WHERE organization_id = $1")
        .bind(alice.org)
        .execute(&owner.0)
        .await
        .expect("basic");
    assert!(ask(outline, alice.clone()).await.is_ok());
    assert!(ask(ai, alice.clone()).await.is_err());
    assert!(ask(summarise, alice.clone()).await.is_err());
    sqlx::query("UPDATE subscriptions SET plan_code = 'pro' WHERE organization_id = $1")
        .bind(alice.org)
        .execute(&owner.0)
        .await
        .expect("pro");
    assert!(ask(summarise, alice.clone()).await.is_ok());
    assert!(ask(ai, alice.clone()).await.is_ok());
    // Another organization's plan is not Bob's.
    assert!(ask(ai, bob.clone()).await.is_err());
    // Lapsed: the default plan's features again; back with the plan.
    set_status(&app, &alice, "canceled").await;
    assert!(ask(ai, alice.clone()).await.is_err());
    set_status(&app, &alice, "active").await;
    assert!(ask(ai, alice.clone()).await.is_ok());
    let unknown = problem(
        ask("SELECT app.require_tier('platinum', 'x')", alice.clone())
            .await
            .expect_err("no such tier"),
    )
    .await;
    assert_eq!(unknown.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", unknown.1);
}
