//! Platform administration (migration 0040), from the side of whoever tries it: staff list and
//! act within their role, everyone else is refused, every act is audited with the staff member
//! as actor, and no platform role opens an organization's business rows.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_db::{RequestContext, TenantTx};
use uuid::Uuid;

use crate::auth::sign_up;
use crate::billing::subscription_of;
use crate::helpers::{assert_problem, read, TestApp, TestUser};

pub(crate) async fn make_staff(app: &TestApp, user: &TestUser, role: &str) {
    sqlx::query("UPDATE users SET role = $2 WHERE id = $1")
        .bind(user.id)
        .bind(role)
        .execute(&app.db.owner().await.0)
        .await
        .expect("role");
}

async fn audited(app: &TestApp, entity: &str, id: Uuid, actor: Uuid) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT new_data FROM audit.events WHERE entity_type = $1 AND entity_id = $2 AND user_id = $3 AND action = 'update' ORDER BY occurred_at",
    )
    .bind(entity)
    .bind(id)
    .bind(actor)
    .fetch_all(&app.db.owner().await.0)
    .await
    .expect("audit")
}

fn ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect()
}

#[tokio::test]
async fn staff_list_organizations_and_users_and_nobody_else_does() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let erin = app.user("erin@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    make_staff(&app, &bob, "admin").await;
    make_staff(&app, &erin, "employee").await;
    make_staff(&app, &mallory, "client").await;
    let (status, _) = app
        .call(
            Method::POST,
            &alice,
            &format!("/v1/orgs/{}/kpis", alice.org),
            Some(json!({"name": "MRR"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Mallory owns an organization and is a client of the platform: no staff access.
    for (method, path, body) in [
        (Method::GET, "/v1/platform/organizations".to_string(), None),
        (Method::GET, "/v1/platform/users".to_string(), None),
        (
            Method::PUT,
            format!("/v1/platform/organizations/{}/plan", mallory.org),
            Some(json!({"plan": "enterprise"})),
        ),
        (
            Method::POST,
            format!("/v1/platform/users/{}/deactivate", alice.id),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/platform/users/{}/role", mallory.id),
            Some(json!({"role": "admin"})),
        ),
    ] {
        let got = app.call(method, &mallory, &path, body).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(subscription_of(&app, &mallory).await["plan_code"], "free");
    // An employee reads the lists (support) but changes nothing.
    let (status, orgs) = app
        .call(Method::GET, &erin, "/v1/platform/organizations", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{orgs}");
    assert_eq!(ids(&orgs).len(), 4);
    let listed = orgs["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|o| o["id"] == alice.org.to_string())
        .expect("Alice's organization");
    assert_eq!(
        (
            listed["plan_in_force"].as_str(),
            listed["seats"].as_i64(),
            listed["kpis"].as_i64()
        ),
        (Some("free"), Some(1), Some(1))
    );
    assert!(listed.get("description").is_none(), "no business data");
    let got = app
        .call(
            Method::PUT,
            &erin,
            &format!("/v1/platform/organizations/{}/plan", alice.org),
            Some(json!({"plan": "pro"})),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // Search and pages.
    let (_, found) = app
        .call(Method::GET, &bob, "/v1/platform/users?q=ALICE@", None)
        .await;
    assert_eq!(ids(&found), [alice.id.to_string()]);
    assert_eq!(found["items"][0]["subscription_tier"], "free");
    let (_, first) = app
        .call(Method::GET, &bob, "/v1/platform/users?limit=3", None)
        .await;
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, rest) = app
        .call(
            Method::GET,
            &bob,
            &format!("/v1/platform/users?limit=3&after={cursor}"),
            None,
        )
        .await;
    assert_eq!(ids(&first).len() + ids(&rest).len(), 4);
    assert_eq!(rest["next_cursor"], Value::Null);

    // An admin is no member: Alice's business rows stay closed to him, over HTTP and in SQL.
    let got = app
        .call(
            Method::GET,
            &bob,
            &format!("/v1/orgs/{}/kpis", alice.org),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let mut tx = TenantTx::begin(
        &app.db.runtime,
        &RequestContext::user(bob.id).in_org(alice.org),
    )
    .await
    .expect("begin");
    for table in [
        "kpis",
        "customers",
        "content",
        "usage_tracking",
        "subscriptions",
        "audit.events",
    ] {
        let seen: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(tx.conn())
            .await
            .expect(table);
        assert_eq!(seen, 0, "{table}");
    }
}

#[tokio::test]
async fn an_admin_comps_a_plan_until_a_date_and_the_trail_names_him() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    make_staff(&app, &bob, "admin").await;
    let until = chrono::Utc::now() + chrono::Duration::days(30);
    let plan_path = format!("/v1/platform/organizations/{}/plan", alice.org);
    let (status, body) = app
        .call(
            Method::PUT,
            &bob,
            &plan_path,
            Some(json!({"plan": "pro", "until": until, "reason": "launch partner"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let sub = subscription_of(&app, &alice).await;
    assert_eq!(sub["plan_in_force"]["code"], "pro");
    let (_, orgs) = app
        .call(
            Method::GET,
            &bob,
            "/v1/platform/organizations?q=alice",
            None,
        )
        .await;
    assert_eq!(orgs["items"][0]["comped"], true, "{orgs}");
    let (status, users) = app
        .call(Method::GET, &bob, "/v1/platform/users?q=alice", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(users["items"][0]["subscription_tier"], "pro");
    let subscription: Uuid =
        sqlx::query_scalar("SELECT id FROM subscriptions WHERE organization_id = $1")
            .bind(alice.org)
            .fetch_one(&app.db.owner().await.0)
            .await
            .expect("subscription");
    let trail = audited(&app, "subscriptions", subscription, bob.id).await;
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0]["plan_code"], "pro");
    assert_eq!(trail[0]["metadata"]["comped"]["reason"], "launch partner");

    // Bad requests change nothing.
    for (body, code, status) in [
        (
            json!({"plan": "platinum"}),
            "validation_failed",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"plan": "basic", "until": "2001-01-01T00:00:00Z"}),
            "validation_failed",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"plan": "basic", "extra": 1}),
            "validation_failed",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let got = app.call(Method::PUT, &bob, &plan_path, Some(body)).await;
        assert_problem(&got, status, code);
    }
    let got = app
        .call(
            Method::PUT,
            &bob,
            &format!("/v1/platform/organizations/{}/plan", Uuid::now_v7()),
            Some(json!({"plan": "basic"})),
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(subscription_of(&app, &alice).await["plan_code"], "pro");

    // The comp ends: the default plan is in force again, nothing deleted.
    let owner = app.db.owner().await;
    sqlx::query("UPDATE subscriptions SET current_period_end = now() - interval '1 second' WHERE organization_id = $1")
        .bind(alice.org)
        .execute(&owner.0)
        .await
        .expect("expire");
    assert_eq!(
        subscription_of(&app, &alice).await["plan_in_force"]["code"],
        "free"
    );

    // While Stripe bills an organization, its webhooks decide: a comp is refused.
    sqlx::query("UPDATE subscriptions SET stripe_subscription_id = 'sub_1', status = 'active', current_period_end = NULL WHERE organization_id = $1")
        .bind(alice.org)
        .execute(&owner.0)
        .await
        .expect("billed");
    let got = app
        .call(
            Method::PUT,
            &bob,
            &plan_path,
            Some(json!({"plan": "enterprise"})),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "billed_by_stripe");
    assert_eq!(subscription_of(&app, &alice).await["plan_code"], "pro");
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> (StatusCode, Value) {
    read(
        app.request(Method::POST, None, "/v1/auth/signin")
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("send"),
    )
    .await
}

#[tokio::test]
async fn a_deactivated_user_is_out_at_once_and_cannot_sign_in_until_reactivated() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob@example.com").await;
    let dave = app.user("dave@example.com").await;
    let erin = app.user("erin@example.com").await;
    make_staff(&app, &bob, "admin").await;
    make_staff(&app, &dave, "moderator").await;
    make_staff(&app, &erin, "employee").await;
    let (carol, _) = sign_up(&app, "carol@example.com", "correct horse battery").await;
    assert_eq!(
        app.call(Method::GET, &carol, "/v1/me", None).await.0,
        StatusCode::OK
    );

    // A moderator deactivates a user; her session ends with the request that did it.
    let deactivate = format!("/v1/platform/users/{}/deactivate", carol.id);
    let (status, body) = app.call(Method::POST, &dave, &deactivate, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_problem(
        &app.call(Method::GET, &carol, "/v1/me", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_problem(
        &sign_in(&app, "carol@example.com", "correct horse battery").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    let trail = audited(&app, "users", carol.id, dave.id).await;
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0]["is_active"], false);
    assert!(trail[0].get("password_hash").is_none(), "redacted");

    // A moderator cannot touch staff; nobody deactivates themselves; strangers are not found.
    let got = app
        .call(
            Method::POST,
            &dave,
            &format!("/v1/platform/users/{}/deactivate", erin.id),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .call(
            Method::POST,
            &bob,
            &format!("/v1/platform/users/{}/deactivate", bob.id),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "not_yourself");
    let got = app
        .call(
            Method::POST,
            &bob,
            &format!("/v1/platform/users/{}/deactivate", Uuid::now_v7()),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.call(Method::GET, &erin, "/v1/me", None).await.0,
        StatusCode::OK
    );

    // Reactivated: she signs in again (the old session stays ended).
    let (status, _) = app
        .call(
            Method::POST,
            &bob,
            &format!("/v1/platform/users/{}/reactivate", carol.id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.call(Method::GET, &carol, "/v1/me", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = sign_in(&app, "carol@example.com", "correct horse battery").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn only_admins_change_platform_roles_and_never_their_own() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob@example.com").await;
    let erin = app.user("erin@example.com").await;
    make_staff(&app, &bob, "admin").await;
    let role = |user: &TestUser| format!("/v1/platform/users/{}/role", user.id);
    let (status, body) = app
        .call(
            Method::PUT,
            &bob,
            &role(&erin),
            Some(json!({"role": "moderator"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let trail = audited(&app, "users", erin.id, bob.id).await;
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0]["role"], "moderator");
    // A moderator does not make admins, herself least of all.
    let got = app
        .call(
            Method::PUT,
            &erin,
            &role(&erin),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // An admin does not demote himself (so an admin always remains).
    let got = app
        .call(
            Method::PUT,
            &bob,
            &role(&bob),
            Some(json!({"role": "user"})),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "not_yourself");
    let got = app
        .call(
            Method::PUT,
            &bob,
            &role(&erin),
            Some(json!({"role": "root"})),
        )
        .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    let (_, users) = app
        .call(Method::GET, &bob, "/v1/platform/users?q=erin", None)
        .await;
    assert_eq!(users["items"][0]["role"], "moderator", "{users}");
    // A deactivated admin is no admin.
    make_staff(&app, &erin, "admin").await;
    let (status, _) = app
        .call(
            Method::POST,
            &erin,
            &format!("/v1/platform/users/{}/deactivate", bob.id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = app
        .call(Method::GET, &bob, "/v1/platform/users", None)
        .await;
    assert_eq!(got.0, StatusCode::UNAUTHORIZED);
}
