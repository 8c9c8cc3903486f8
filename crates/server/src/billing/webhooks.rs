//! `POST /v1/webhooks/stripe`: Stripe's events, verified on the raw body before anything is
//! parsed, applied once each (migration 0035), answered 2xx only after their transaction
//! committed (anything else, and Stripe delivers again).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tenantry_db::{RequestContext, TenantTx};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::stripe::verify_signature;
use crate::http::{AppState, ClientInfo, Json, NotFound, Problem};
use crate::kernel::error::{Error, Result};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stripe_webhook))
}

/// The parts of an event this service reads.
#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: serde_json::Value,
}

/// What became of an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    /// `applied`, `duplicate` (seen before: nothing done), `unknown_customer` (recorded, no
    /// organization has that Stripe customer) or `ignored` (a type this service does not use).
    pub outcome: String,
}

/// Stripe's webhook endpoint. `Stripe-Signature` must match the raw body under one of the
/// configured secrets, within 300 s; otherwise 400 and nothing is read further. A subscription
/// event applies the subscription as Stripe's API has it now (so late or reordered events cannot
/// move it backwards) to the organization whose Stripe customer it names; an `invoice.*` event
/// also records the invoice as Stripe has it now (the transaction history).
#[utoipa::path(post, path = "/v1/webhooks/stripe", tag = "billing",
    request_body(content = Object, description = "A Stripe event, signed"),
    responses(
        (status = 200, body = Received),
        (status = 400, description = "Signature missing, wrong or stale", body = Problem, content_type = "application/problem+json"),
        NotFound,
        (status = 503, description = "Stripe's API did not answer; Stripe retries", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Received>> {
    let stripe = super::checkout::stripe(&state)?;
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    verify_signature(
        signature,
        &body,
        &stripe.config().webhook_secrets,
        chrono::Utc::now().timestamp(),
    )
    .map_err(|e| Error::BadRequest(e.to_string()))?;
    let event: Event = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("not a Stripe event: {e}")))?;
    let object = &event.data.object;
    let text = |key: &str| object.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let (customer, subscription_id, invoice_id) = match event.kind.as_str() {
        k if k.starts_with("customer.subscription.") => (text("customer"), text("id"), None),
        "checkout.session.completed" => (text("customer"), text("subscription"), None),
        k if k.starts_with("invoice.") => (text("customer"), text("subscription"), text("id")),
        _ => {
            return Ok(Json(Received {
                outcome: "ignored".into(),
            }))
        }
    };
    let Some(customer) = customer else {
        return Err(Error::BadRequest("the event names no customer".into()));
    };
    // Stripe's current state, not the event's copy of it.
    let unavailable = |e: String| {
        tracing::warn!(event = %event.id, error = %e, "fetching from Stripe");
        Error::Unavailable
    };
    let subscription = match subscription_id {
        Some(id) => Some(stripe.subscription(&id).await.map_err(unavailable)?),
        None => None,
    };
    let invoice = match invoice_id {
        Some(id) => Some(stripe.invoice(&id).await.map_err(unavailable)?),
        None => None,
    };
    let ctx = RequestContext {
        request_id: Some(format!("stripe:{}", event.id)),
        ..client.context(tenantry_db::Actor::Service)
    };
    let mut tx = TenantTx::begin(&state.db, &ctx).await?;
    let outcome: String = sqlx::query_scalar(r"SELECT app.apply_stripe_event($1, $2, $3, $4)")
        .bind(&event.id)
        .bind(&event.kind)
        .bind(&customer)
        .bind(subscription)
        .fetch_one(tx.conn())
        .await?;
    if let (Some(invoice), "applied") = (invoice, outcome.as_str()) {
        sqlx::query(r"SELECT app.record_stripe_invoice($1)")
            .bind(invoice)
            .execute(tx.conn())
            .await?;
    }
    tx.commit().await?;
    Ok(Json(Received { outcome }))
}
