//! Stripe's webhooks over HTTP, with a local server playing Stripe's API (its documented
//! subscription objects) and events signed as Stripe signs them: forgeries change nothing,
//! every event applies once however often and however concurrently it arrives, and the final
//! state is Stripe's whatever order the events come in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::get;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_server::billing::stripe::{sign, StripeConfig};
use tenantry_server::http::HttpConfig;

use crate::billing::subscription_of;
use crate::helpers::{assert_problem, read, TestApp, TestUser};

const SECRET_KEY: &str = "sk_test_tenantry";
const WEBHOOK_SECRET: &str = "whsec_current";

/// Stripe's API as far as billing reads it: subscriptions by id.
#[derive(Clone, Default)]
struct FakeStripe {
    objects: Arc<Mutex<HashMap<String, Value>>>,
    /// Every POST: its path and form.
    posts: Arc<Mutex<Vec<Post>>>,
    /// Where it listens.
    base: String,
}

/// A POST to the fake Stripe: its path and form fields.
type Post = (String, HashMap<String, String>);

impl FakeStripe {
    async fn start() -> (Self, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let stripe = FakeStripe {
            base: base.clone(),
            ..FakeStripe::default()
        };
        let app = axum::Router::new()
            .route("/v1/{collection}/{id}", get(object))
            .route("/v1/customers", axum::routing::post(create))
            .route("/v1/checkout/sessions", axum::routing::post(create))
            .route("/v1/billing_portal/sessions", axum::routing::post(create))
            .with_state(stripe.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (stripe, base)
    }

    /// Stripe's current state of an object (a subscription, an invoice).
    fn set(&self, object: Value) {
        let id = object["id"].as_str().expect("id").to_string();
        self.objects.lock().expect("lock").insert(id, object);
    }
}

/// Creates a customer or a session, as Stripe answers: an id, and a URL for sessions.
async fn create(
    State(stripe): State<FakeStripe>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Result<axum::Json<Value>, AxumStatus> {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {SECRET_KEY}"))
    {
        return Err(AxumStatus::UNAUTHORIZED);
    }
    let mut posts = stripe.posts.lock().expect("lock");
    posts.push((uri.path().to_string(), form));
    let n = posts.len();
    Ok(axum::Json(match uri.path() {
        "/v1/customers" => json!({"id": format!("cus_new{n}"), "object": "customer"}),
        "/v1/checkout/sessions" => json!({"id": format!("cs_{n}"), "object": "checkout.session",
                                          "url": format!("https://checkout.stripe.test/cs_{n}")}),
        _ => json!({"id": format!("bps_{n}"), "object": "billing_portal.session",
                    "url": format!("https://billing.stripe.test/bps_{n}")}),
    }))
}

async fn object(
    State(stripe): State<FakeStripe>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, AxumStatus> {
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {SECRET_KEY}"));
    if !authorized {
        return Err(AxumStatus::UNAUTHORIZED);
    }
    let found = stripe.objects.lock().expect("lock").get(&id).cloned();
    let kind = match collection.as_str() {
        "subscriptions" => "subscription",
        "invoices" => "invoice",
        _ => return Err(AxumStatus::NOT_FOUND),
    };
    found
        .filter(|o| o["object"] == kind)
        .map(axum::Json)
        .ok_or(AxumStatus::NOT_FOUND)
}

/// A subscription object as Stripe's API returns it (API version 2025: the period on the item).
fn stripe_subscription(
    id: &str,
    customer: &str,
    status: &str,
    price: &str,
    period_end: i64,
) -> Value {
    json!({
        "id": id, "object": "subscription", "customer": customer, "status": status,
        "cancel_at_period_end": false, "trial_end": null,
        "items": {"object": "list", "data": [{
            "id": "si_1", "object": "subscription_item",
            "current_period_start": period_end - 30 * 86400, "current_period_end": period_end,
            "price": {"id": price, "object": "price", "recurring": {"interval": "month"}}
        }]}
    })
}

fn event(id: &str, kind: &str, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": chrono::Utc::now().timestamp(),
           "data": {"object": object}})
}

async fn deliver(app: &TestApp, body: &str, signature: Option<String>) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(format!("{}/v1/webhooks/stripe", app.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(signature) = signature {
        req = req.header("stripe-signature", signature);
    }
    read(req.send().await.expect("send")).await
}

fn signed(body: &str) -> Option<String> {
    Some(sign(
        body.as_bytes(),
        WEBHOOK_SECRET,
        chrono::Utc::now().timestamp(),
    ))
}

/// A service talking to the fake Stripe, with Alice's organization a Stripe customer.
async fn setup() -> (TestApp, FakeStripe, TestUser) {
    let (stripe, base) = FakeStripe::start().await;
    let app = TestApp::spawn_with(HttpConfig {
        stripe: Some(StripeConfig {
            secret_key: SECRET_KEY.into(),
            webhook_secrets: vec!["whsec_previous".into(), WEBHOOK_SECRET.into()],
            api_base: base,
        }),
        ..HttpConfig::default()
    })
    .await;
    let alice = app.user("alice@example.com").await;
    let owner = app.db.owner().await;
    sqlx::query(
        "UPDATE subscriptions SET stripe_customer_id = 'cus_alice' WHERE organization_id = $1",
    )
    .bind(alice.org)
    .execute(&owner.0)
    .await
    .expect("customer");
    (app, stripe, alice)
}

async fn ledger(app: &TestApp) -> i64 {
    let owner = app.db.owner().await;
    sqlx::query_scalar("SELECT count(*) FROM stripe_events")
        .fetch_one(&owner.0)
        .await
        .expect("ledger")
}

#[tokio::test]
async fn forged_stale_or_reserialized_webhooks_change_nothing() {
    let (app, stripe, alice) = setup().await;
    let period_end = chrono::Utc::now().timestamp() + 30 * 86400;
    stripe.set(stripe_subscription(
        "sub_1",
        "cus_alice",
        "active",
        "price_pro_month",
        period_end,
    ));
    let body = event(
        "evt_1",
        "customer.subscription.updated",
        stripe_subscription(
            "sub_1",
            "cus_alice",
            "active",
            "price_pro_month",
            period_end,
        ),
    )
    .to_string();
    // Whole seconds: the server's clock may read one second later than ours when it checks, so
    // a timestamp from the future is 302 s ahead (301 could read as 300, within the tolerance).
    let now = chrono::Utc::now().timestamp();
    let reserialized =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).expect("json"))
            .expect("json");
    for (what, payload, signature) in [
        ("no signature", body.clone(), None),
        (
            "a forged signature",
            body.clone(),
            Some(format!("t={now},v1={}", "ab".repeat(32))),
        ),
        (
            "an unknown secret",
            body.clone(),
            Some(sign(body.as_bytes(), "whsec_attacker", now)),
        ),
        (
            "a stale timestamp",
            body.clone(),
            Some(sign(body.as_bytes(), WEBHOOK_SECRET, now - 301)),
        ),
        (
            "a timestamp from the future",
            body.clone(),
            Some(sign(body.as_bytes(), WEBHOOK_SECRET, now + 302)),
        ),
        (
            "the body re-serialized",
            reserialized,
            Some(sign(body.as_bytes(), WEBHOOK_SECRET, now)),
        ),
    ] {
        let got = deliver(&app, &payload, signature).await;
        assert_problem(&got, StatusCode::BAD_REQUEST, "bad_request");
        assert_eq!(ledger(&app).await, 0, "{what}");
    }
    assert_eq!(subscription_of(&app, &alice).await["plan_code"], "free");
    // The rotating secret still in use is accepted.
    let got = deliver(
        &app,
        &body,
        Some(sign(body.as_bytes(), "whsec_previous", now)),
    )
    .await;
    assert_eq!(
        (got.0, got.1["outcome"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{}",
        got.1
    );
    let sub = subscription_of(&app, &alice).await;
    assert_eq!(
        (sub["plan_code"].as_str(), sub["status"].as_str()),
        (Some("pro"), Some("active"))
    );
    assert_eq!(sub["billing_cycle"], "month");
    assert_eq!(sub["plan_in_force"]["code"], "pro");
}

#[tokio::test]
async fn an_event_applies_once_however_often_and_however_concurrently_it_arrives() {
    let (app, stripe, alice) = setup().await;
    let period_end = chrono::Utc::now().timestamp() + 30 * 86400;
    let sub = stripe_subscription(
        "sub_1",
        "cus_alice",
        "active",
        "price_basic_month",
        period_end,
    );
    stripe.set(sub.clone());
    let body = event("evt_once", "customer.subscription.created", sub).to_string();
    let first = deliver(&app, &body, signed(&body)).await;
    assert_eq!(first.1["outcome"], "applied");
    let again = deliver(&app, &body, signed(&body)).await;
    assert_eq!(
        (again.0, again.1["outcome"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    // Another event (an upgrade), delivered ten times at once.
    let upgraded = stripe_subscription(
        "sub_1",
        "cus_alice",
        "active",
        "price_pro_month",
        period_end,
    );
    stripe.set(upgraded.clone());
    let body = event("evt_racing", "customer.subscription.updated", upgraded).to_string();
    let deliveries = (0..10).map(|_| deliver(&app, &body, signed(&body)));
    let outcomes: Vec<String> = futures_util::future::join_all(deliveries)
        .await
        .into_iter()
        .map(|(status, got)| {
            assert_eq!(status, StatusCode::OK, "{got}");
            got["outcome"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| *o == "applied").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| *o == "duplicate").count(), 9);
    assert_eq!(ledger(&app).await, 2);
    // Applied once each: two updates of the subscription in the audit trail, each naming its event.
    let owner = app.db.owner().await;
    let updates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.events WHERE entity_type = 'subscriptions' AND action = 'update'
           AND organization_id = $1 AND request_id LIKE 'stripe:evt_%'",
    )
    .bind(alice.org)
    .fetch_one(&owner.0)
    .await
    .expect("audit");
    assert_eq!(updates, 2);
    assert_eq!(subscription_of(&app, &alice).await["plan_code"], "pro");
}

#[tokio::test]
async fn events_out_of_order_end_in_stripe_s_state() {
    let (app, stripe, alice) = setup().await;
    let period_end = chrono::Utc::now().timestamp() + 30 * 86400;
    // Stripe's state now: canceled. The events arrive newest first, then the stale ones.
    stripe.set(stripe_subscription(
        "sub_1",
        "cus_alice",
        "canceled",
        "price_pro_month",
        period_end,
    ));
    let deleted = event(
        "evt_3",
        "customer.subscription.deleted",
        stripe_subscription(
            "sub_1",
            "cus_alice",
            "canceled",
            "price_pro_month",
            period_end,
        ),
    );
    let updated = event(
        "evt_2",
        "customer.subscription.updated",
        stripe_subscription(
            "sub_1",
            "cus_alice",
            "active",
            "price_pro_month",
            period_end,
        ),
    );
    let created = event(
        "evt_1",
        "customer.subscription.created",
        stripe_subscription(
            "sub_1",
            "cus_alice",
            "trialing",
            "price_pro_month",
            period_end,
        ),
    );
    for e in [&updated, &deleted, &created, &updated] {
        let body = e.to_string();
        let (status, got) = deliver(&app, &body, signed(&body)).await;
        assert_eq!(status, StatusCode::OK, "{got}");
    }
    let sub = subscription_of(&app, &alice).await;
    assert_eq!(
        (sub["status"].as_str(), sub["in_good_standing"].as_bool()),
        (Some("canceled"), Some(false))
    );
    assert_eq!(
        sub["plan_in_force"]["code"], "free",
        "a canceled plan falls back to the default"
    );
}

#[tokio::test]
async fn the_organization_comes_from_the_stored_customer_only() {
    let (app, stripe, alice) = setup().await;
    let victim = app.user("victor@example.com").await;
    let period_end = chrono::Utc::now().timestamp() + 30 * 86400;
    // A customer nobody has, with metadata naming the victim's organization.
    let mut foreign = stripe_subscription(
        "sub_9",
        "cus_stranger",
        "active",
        "price_pro_month",
        period_end,
    );
    foreign["metadata"] = json!({"organization_id": victim.org.to_string()});
    stripe.set(foreign.clone());
    let body = event("evt_x", "customer.subscription.created", foreign).to_string();
    let got = deliver(&app, &body, signed(&body)).await;
    assert_eq!(got.1["outcome"], "unknown_customer");
    assert_eq!(subscription_of(&app, &victim).await["plan_code"], "free");
    assert_eq!(subscription_of(&app, &alice).await["plan_code"], "free");
    // Events of types billing does not use are acknowledged and ignored.
    let body = event("evt_y", "customer.created", json!({"id": "cus_new"})).to_string();
    let got = deliver(&app, &body, signed(&body)).await;
    assert_eq!(got.1["outcome"], "ignored");
    // Without Stripe configured, the endpoint is not there.
    let plain = TestApp::spawn().await;
    let got = deliver(&plain, &body, signed(&body)).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    // Stripe's own SQL entry point is the service's alone.
    let mut tx = tenantry_server::kernel::org_tx::OrgTx::begin(
        &app.db.runtime,
        &tenantry_db::RequestContext::user(alice.id),
        alice.org,
    )
    .await
    .expect("begin");
    let refused = sqlx::query("SELECT app.apply_stripe_event('evt_z', 'customer.subscription.updated', 'cus_alice', NULL)")
        .execute(tx.conn())
        .await;
    let code = refused.err().and_then(|e| {
        e.as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.to_string())
    });
    assert_eq!(code.as_deref(), Some("42501"));
}

fn stripe_invoice(id: &str, status: &str, amount: i64) -> Value {
    let created = chrono::Utc::now().timestamp();
    json!({
        "id": id, "object": "invoice", "customer": "cus_alice", "subscription": "sub_1",
        "number": format!("INV-{id}"), "status": status, "currency": "usd",
        "amount_due": amount, "amount_paid": if status == "paid" { amount } else { 0 },
        "hosted_invoice_url": format!("https://invoice.stripe.test/{id}"),
        "period_start": created - 30 * 86400, "period_end": created, "created": created,
        "status_transitions": {"paid_at": if status == "paid" { Some(created) } else { None }}
    })
}

#[tokio::test]
async fn invoices_are_the_admins_transaction_history() {
    let (app, stripe, alice) = setup().await;
    let period_end = chrono::Utc::now().timestamp() + 30 * 86400;
    stripe.set(stripe_subscription(
        "sub_1",
        "cus_alice",
        "active",
        "price_pro_month",
        period_end,
    ));
    stripe.set(stripe_invoice("in_1", "paid", 4900));
    let paid = event(
        "evt_paid",
        "invoice.paid",
        stripe_invoice("in_1", "paid", 4900),
    )
    .to_string();
    assert_eq!(
        deliver(&app, &paid, signed(&paid)).await.1["outcome"],
        "applied"
    );
    // A second invoice fails; its late, stale `payment_failed` for the first changes nothing.
    stripe.set(stripe_subscription(
        "sub_1",
        "cus_alice",
        "past_due",
        "price_pro_month",
        period_end,
    ));
    stripe.set(stripe_invoice("in_2", "open", 4900));
    for (id, invoice) in [("evt_failed", "in_2"), ("evt_failed_late", "in_1")] {
        let body = event(
            id,
            "invoice.payment_failed",
            stripe_invoice(invoice, "open", 4900),
        )
        .to_string();
        assert_eq!(
            deliver(&app, &body, signed(&body)).await.1["outcome"],
            "applied"
        );
    }
    let (status, page) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/invoices", alice.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: Vec<(&str, &str, i64, i64)> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["stripe_invoice_id"].as_str().unwrap_or_default(),
                i["status"].as_str().unwrap_or_default(),
                i["amount_due"].as_i64().unwrap_or_default(),
                i["amount_paid"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("in_2", "open", 4900, 0), ("in_1", "paid", 4900, 4900)]
    );
    assert_eq!(
        page["items"][1]["hosted_invoice_url"],
        "https://invoice.stripe.test/in_1"
    );
    assert_eq!(page["items"][1]["currency"], "usd");
    // Past due: still in good standing during the grace period.
    let sub = subscription_of(&app, &alice).await;
    assert_eq!(
        (sub["status"].as_str(), sub["in_good_standing"].as_bool()),
        (Some("past_due"), Some(true))
    );
    // Members and other organizations see no invoices.
    let mia = app.user("mia@example.com").await;
    app.add_member(
        &alice,
        alice.org,
        &mia,
        tenantry_server::kernel::access::Role::Member,
    )
    .await;
    let mia = TestUser {
        org: alice.org,
        ..mia
    };
    let got = app
        .call(
            Method::GET,
            &mia,
            &format!("/v1/orgs/{}/invoices", alice.org),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let mallory = app.user("mallory@example.com").await;
    let got = app
        .call(
            Method::GET,
            &mallory,
            &format!("/v1/orgs/{}/invoices", alice.org),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn admins_subscribe_through_checkout_and_manage_payment_in_the_portal() {
    let (app, stripe, _) = setup().await;
    // A fresh organization: not a Stripe customer yet.
    let owner = app.user("owen@example.com").await;
    let checkout = format!("/v1/orgs/{}/subscription/checkout", owner.org);
    let portal = format!("/v1/orgs/{}/subscription/portal", owner.org);
    let request = json!({"plan": "pro", "billing_cycle": "year",
                         "success_url": "https://app.example.com/billing/done",
                         "cancel_url": "https://app.example.com/billing"});
    let got = app
        .call(
            Method::POST,
            &owner,
            &portal,
            Some(json!({"return_url": "https://app.example.com/billing"})),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "no_billing_account");
    let (status, redirect) = app
        .call(Method::POST, &owner, &checkout, Some(request.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{redirect}");
    assert!(redirect["url"]
        .as_str()
        .is_some_and(|u| u.starts_with("https://checkout.stripe.test/")));
    {
        let posts = stripe.posts.lock().expect("lock");
        assert_eq!(posts.len(), 2, "a customer, then a session");
        assert_eq!(posts[0].0, "/v1/customers");
        assert_eq!(
            posts[0].1.get("metadata[organization_id]"),
            Some(&owner.org.to_string())
        );
        assert_eq!(posts[1].0, "/v1/checkout/sessions");
        let session = &posts[1].1;
        assert_eq!(
            session.get("customer").map(String::as_str),
            Some("cus_new1")
        );
        assert_eq!(
            session.get("line_items[0][price]").map(String::as_str),
            Some("price_pro_year")
        );
        assert_eq!(
            session.get("mode").map(String::as_str),
            Some("subscription")
        );
        assert_eq!(
            session.get("client_reference_id"),
            Some(&owner.org.to_string())
        );
    }
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT stripe_customer_id FROM subscriptions WHERE organization_id = $1",
    )
    .bind(owner.org)
    .fetch_one(&app.db.owner().await.0)
    .await
    .expect("customer");
    assert_eq!(stored.as_deref(), Some("cus_new1"));
    // Again: the same customer, no new one.
    let (status, _) = app
        .call(Method::POST, &owner, &checkout, Some(request.clone()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stripe
            .posts
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _)| p == "/v1/customers")
            .count(),
        1
    );
    // The portal, now that there is a customer.
    let (status, redirect) = app
        .call(
            Method::POST,
            &owner,
            &portal,
            Some(json!({"return_url": "https://app.example.com/billing"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{redirect}");
    assert!(redirect["url"]
        .as_str()
        .is_some_and(|u| u.starts_with("https://billing.stripe.test/")));

    // A plan without that price, or none at all: 422. A member: 403. Another organization: 404.
    for (plan, cycle) in [("free", "month"), ("nope", "month"), ("enterprise", "year")] {
        let got = app
            .call(Method::POST, &owner, &checkout,
                  Some(json!({"plan": plan, "billing_cycle": cycle, "success_url": "https://a.example/x", "cancel_url": "https://a.example/y"})))
            .await;
        assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let got = app
        .call(Method::POST, &owner, &checkout,
              Some(json!({"plan": "pro", "success_url": "javascript:alert(1)", "cancel_url": "https://a.example/y"})))
        .await;
    assert_eq!(crate::helpers::refused_fields(&got), ["success_url"]);
    let mia = app.user("mia@example.com").await;
    app.add_member(
        &owner,
        owner.org,
        &mia,
        tenantry_server::kernel::access::Role::Member,
    )
    .await;
    let mia = TestUser {
        org: owner.org,
        ..mia
    };
    for (path, body) in [
        (&checkout, request.clone()),
        (
            &portal,
            json!({"return_url": "https://app.example.com/billing"}),
        ),
    ] {
        let got = app.call(Method::POST, &mia, path, Some(body)).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let mallory = app.user("mallory@example.com").await;
    let got = app
        .call(Method::POST, &mallory, &checkout, Some(request))
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        stripe.posts.lock().expect("lock").len(),
        4,
        "no call to Stripe for refused requests"
    );
}

#[tokio::test]
async fn the_daily_reconcile_repairs_what_a_missed_webhook_left() {
    let (app, stripe, alice) = setup().await;
    let period_end = chrono::Utc::now().timestamp() + 30 * 86400;
    // Alice subscribed (the subscription is known) but the webhook of her upgrade never came.
    let owner = app.db.owner().await;
    sqlx::query("UPDATE subscriptions SET stripe_subscription_id = 'sub_1', plan_code = 'basic' WHERE organization_id = $1")
        .bind(alice.org)
        .execute(&owner.0)
        .await
        .expect("subscribed");
    stripe.set(stripe_subscription(
        "sub_1",
        "cus_alice",
        "active",
        "price_pro_month",
        period_end,
    ));
    // A subscription Stripe no longer knows does not stop the others (the job retries later).
    let bob = app.user("bob@example.com").await;
    sqlx::query("UPDATE subscriptions SET stripe_customer_id = 'cus_bob', stripe_subscription_id = 'sub_gone' WHERE organization_id = $1")
        .bind(bob.org)
        .execute(&owner.0)
        .await
        .expect("subscribed");
    let client = tenantry_server::billing::stripe::StripeClient::new(StripeConfig {
        secret_key: SECRET_KEY.into(),
        webhook_secrets: vec![WEBHOOK_SECRET.into()],
        api_base: stripe.base.clone(),
    })
    .expect("client");
    tenantry_db::queue::enqueue_platform(
        &owner,
        &tenantry_server::billing::reconcile::RECONCILE.job(json!({})),
    )
    .await
    .expect("enqueue");
    // Bob's subscription cannot be fetched: the job retries until it is dead; Alice's is set
    // on every attempt.
    crate::helpers::run_jobs(
        &app,
        tenantry_server::jobs::registry(None, Some(client), None),
        "billing.reconcile",
    )
    .await;
    let sub = subscription_of(&app, &alice).await;
    assert_eq!(
        (
            sub["plan_code"].as_str(),
            sub["plan_in_force"]["code"].as_str()
        ),
        (Some("pro"), Some("pro"))
    );
    assert_eq!(
        subscription_of(&app, &bob).await["plan_code"],
        "free",
        "Bob's unknown subscription is left as it was"
    );
    // The reconcile is on the migrated schedule, daily.
    let scheduled: String =
        sqlx::query_scalar("SELECT cron FROM queue.schedules WHERE kind = 'billing.reconcile'")
            .fetch_one(&owner.0)
            .await
            .expect("schedule");
    assert_eq!(scheduled, "20 2 * * *");
}
