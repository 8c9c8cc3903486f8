//! `tenantry bench stripe-webhooks`: Stripe events per second through `POST
//! /v1/webhooks/stripe` (signature on the raw body, the subscription fetched from a local server
//! playing Stripe's API, ledger and effect in one transaction) vs the same transaction sent
//! directly (bound as the service, `app.apply_stripe_event`) vs its two writes as the owner.
//! Every benchmark organization is a Stripe customer; every event is new.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::PgPool;
use tenantry_db::pool::pool_options;
use tenantry_db::{Actor, ConnectionUrls, RequestContext, RuntimePool, TenantTx};
use tenantry_server::billing::stripe::{sign, StripeConfig};
use tenantry_server::http::HttpConfig;
use uuid::Uuid;

use super::{bench_tenants, compare, op, report, spawn_server_with, Op, Settings};
use crate::AnyError;

const SECRET: &str = "whsec_bench";

/// What Stripe's API answers for every subscription: active on the pro plan.
fn subscription(id: &str, customer: &str) -> serde_json::Value {
    let end = chrono::Utc::now().timestamp() + 30 * 86400;
    serde_json::json!({
        "id": id, "object": "subscription", "customer": customer, "status": "active",
        "cancel_at_period_end": false, "trial_end": null,
        "items": {"data": [{"current_period_start": end - 30 * 86400, "current_period_end": end,
                            "price": {"id": "price_pro_month", "recurring": {"interval": "month"}}}]}
    })
}

/// A local server answering `GET /v1/subscriptions/{id}` as Stripe's API does.
async fn fake_stripe() -> Result<String, AnyError> {
    let app = axum::Router::new().route(
        "/v1/subscriptions/{id}",
        axum::routing::get(
            |axum::extract::Path(id): axum::extract::Path<String>| async move {
                let customer = id.replacen("sub_", "cus_", 1);
                axum::Json(subscription(&id, &customer))
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

pub(super) async fn run(urls: &ConnectionUrls, s: &Settings) -> Result<(), AnyError> {
    let runtime = RuntimePool::open(urls, s.connections).await?;
    let direct = pool_options(s.connections).connect(&urls.owner).await?;
    let tenants = bench_tenants(urls, &runtime).await?;
    // Each organization a customer `cus_bench_N`, its subscription `sub_bench_N`.
    sqlx::query(
        r"UPDATE subscriptions s SET stripe_customer_id = 'cus_bench_' || t.n
            FROM unnest($1::uuid[]) WITH ORDINALITY AS t (org, n)
           WHERE s.organization_id = t.org AND s.stripe_customer_id IS DISTINCT FROM 'cus_bench_' || t.n",
    )
    .bind(tenants.iter().map(|t| t.1).collect::<Vec<Uuid>>())
    .execute(&direct)
    .await?;
    let customers: Arc<Vec<(Uuid, String)>> = Arc::new(
        sqlx::query_as(
            r"SELECT organization_id, stripe_customer_id FROM subscriptions
               WHERE stripe_customer_id LIKE 'cus_bench_%'",
        )
        .fetch_all(&direct)
        .await?,
    );
    let api_base = fake_stripe().await?;
    let config = HttpConfig {
        stripe: Some(StripeConfig {
            secret_key: "sk_bench".into(),
            webhook_secrets: vec![SECRET.into()],
            api_base,
        }),
        ..HttpConfig::default()
    };
    let (base, server) = spawn_server_with(&runtime, config).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(s.connections as usize)
        .build()?;
    // Every event id new: a run's own prefix and a counter.
    let run_id = Uuid::now_v7().simple().to_string();
    let events = Arc::new(AtomicU64::new(0));
    let next_event = {
        let (run_id, events) = (run_id.clone(), events.clone());
        move || format!("evt_{run_id}_{}", events.fetch_add(1, Ordering::Relaxed))
    };

    let over_http: Op<(Uuid, String)> = op({
        let (client, base, next_event) = (client.clone(), base.clone(), next_event.clone());
        move |(org, customer): (Uuid, String)| {
            let sub_id = customer.replacen("cus_", "sub_", 1);
            let body = serde_json::json!({
                "id": next_event(), "object": "event", "type": "customer.subscription.updated",
                "data": {"object": subscription(&sub_id, &customer)}
            })
            .to_string();
            let signature = sign(body.as_bytes(), SECRET, chrono::Utc::now().timestamp());
            let request = client
                .post(format!("{base}/v1/webhooks/stripe"))
                .header("stripe-signature", signature)
                .header("content-type", "application/json")
                .body(body);
            async move {
                let response = request.send().await?;
                let status = response.status();
                let answer: serde_json::Value = response.json().await?;
                if !status.is_success() || answer["outcome"] != "applied" {
                    return Err(format!("{status}: {answer}").into());
                }
                Ok(org)
            }
        }
    });
    let same_transaction: Op<(Uuid, String)> = op({
        let (runtime, next_event) = (runtime.clone(), next_event.clone());
        move |(org, customer): (Uuid, String)| {
            let (runtime, event) = (runtime.clone(), next_event());
            async move {
                let sub_id = customer.replacen("cus_", "sub_", 1);
                let ctx = RequestContext {
                    actor: Actor::Service,
                    ..RequestContext::default()
                };
                let mut tx = TenantTx::begin(&runtime, &ctx).await?;
                let outcome: String =
                    sqlx::query_scalar(r"SELECT app.apply_stripe_event($1, $2, $3, $4)")
                        .bind(&event)
                        .bind("customer.subscription.updated")
                        .bind(&customer)
                        .bind(subscription(&sub_id, &customer))
                        .fetch_one(tx.conn())
                        .await?;
                tx.commit().await?;
                if outcome != "applied" {
                    return Err(outcome.into());
                }
                Ok(org)
            }
        }
    });
    let as_owner = plain_writes(&direct, next_event);
    println!(
        "stripe-webhooks: {} customers, {} connections, {} rounds of {:?}",
        customers.len(),
        s.connections,
        s.rounds,
        s.round
    );
    report(
        &mut compare(
            s,
            &customers,
            vec![
                (
                    "POST /v1/webhooks/stripe (HTTP, signature, refetch from Stripe, ledger, effect)",
                    over_http,
                ),
                (
                    "same transaction direct (service binding, app.apply_stripe_event)",
                    same_transaction,
                ),
                ("its two writes as the owner (ledger insert, subscription update)", as_owner),
            ],
        )
        .await?,
    );
    server.abort();
    sqlx::query(r"DELETE FROM stripe_events WHERE event_id LIKE $1")
        .bind(format!("evt_{run_id}_%"))
        .execute(&direct)
        .await?;
    runtime.close().await;
    direct.close().await;
    Ok(())
}

/// The ledger insert and the subscription update, as the owner, in one transaction.
fn plain_writes(
    direct: &PgPool,
    next_event: impl Fn() -> String + Send + Sync + 'static,
) -> Op<(Uuid, String)> {
    let next_event = Arc::new(next_event);
    op({
        let direct = direct.clone();
        move |(org, customer): (Uuid, String)| {
            let (direct, event) = (direct.clone(), next_event());
            async move {
                let sub_id = customer.replacen("cus_", "sub_", 1);
                let mut tx = direct.begin().await?;
                sqlx::query(
                    r"INSERT INTO stripe_events (event_id, type, organization_id, outcome)
                      VALUES ($1, 'customer.subscription.updated', $2, 'applied')",
                )
                .bind(&event)
                .bind(org)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    r"UPDATE subscriptions SET plan_code = 'pro', status = 'active',
                        billing_cycle = 'month', current_period_end = now() + interval '30 days',
                        stripe_subscription_id = $2
                      WHERE organization_id = $1",
                )
                .bind(org)
                .bind(&sub_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(org)
            }
        }
    })
}
