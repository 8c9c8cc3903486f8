//! Subscribing and managing payment through Stripe's hosted pages: a Checkout Session to
//! subscribe or change plan, a Customer Portal session to manage payment methods and invoices.
//! Admins and owners only; the organization becomes a Stripe customer on first checkout.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use tenantry_db::{Actor, TenantTx};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::stripe::StripeClient;
use crate::http::{AppState, ClientInfo, Conflict, Forbidden, Invalid, Json, NotFound};
use crate::kernel::access::{require_role, Module, Role};
use crate::kernel::error::{Error, Found, Result};
use crate::kernel::input::{web_link, Checks, Valid, Validate};
use crate::kernel::org_tx::OrgTx;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_checkout))
        .routes(routes!(open_portal))
        .layer(axum::Extension(Module::Billing))
}

/// Where to send the admin: Stripe's hosted page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redirect {
    pub url: String,
}

/// A plan to subscribe to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// A plan of the catalog with a price for `billing_cycle`.
    pub plan: String,
    /// `month` (default) or `year`.
    #[schema(pattern = "^(month|year)$")]
    pub billing_cycle: Option<String>,
    /// Where Stripe sends the admin after paying (http(s)).
    #[schema(max_length = 2048, pattern = r"^https?://[!-~]+$")]
    pub success_url: String,
    /// …and after giving up.
    #[schema(max_length = 2048, pattern = r"^https?://[!-~]+$")]
    pub cancel_url: String,
}

impl Validate for CheckoutRequest {
    fn check(&self, c: &mut Checks) {
        c.field("success_url", Some(self.success_url.as_str()), web_link);
        c.field("cancel_url", Some(self.cancel_url.as_str()), web_link);
        c.field("billing_cycle", self.billing_cycle.as_deref(), |cycle| {
            matches!(cycle, "month" | "year")
                .then_some(())
                .ok_or_else(|| "must be month or year".into())
        });
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalRequest {
    /// Where the portal's "back" link goes (http(s)).
    #[schema(max_length = 2048, pattern = r"^https?://[!-~]+$")]
    pub return_url: String,
}

impl Validate for PortalRequest {
    fn check(&self, c: &mut Checks) {
        c.field("return_url", Some(self.return_url.as_str()), web_link);
    }
}

/// Stripe's client; without Stripe configured, billing's Stripe routes are not there.
pub(super) fn stripe(state: &AppState) -> Result<&StripeClient> {
    state.stripe.as_ref().ok_or(Error::NotFound)
}

fn upstream(e: String) -> Error {
    tracing::warn!(error = %e, "calling Stripe");
    Error::Unavailable
}

/// The organization's Stripe customer: the stored one, or a new one recorded by the service
/// (the first recorded wins a race).
async fn customer(
    state: &AppState,
    client: &ClientInfo,
    stripe: &StripeClient,
    org: Uuid,
    stored: Option<String>,
    name: &str,
    email: Option<&str>,
) -> Result<String> {
    if let Some(customer) = stored {
        return Ok(customer);
    }
    let created = stripe
        .create_customer(org, name, email)
        .await
        .map_err(upstream)?;
    let mut tx = TenantTx::begin(&state.db, &client.context(Actor::Service)).await?;
    let kept: Option<String> = sqlx::query_scalar(r"SELECT app.set_stripe_customer($1, $2)")
        .bind(org)
        .bind(&created)
        .fetch_one(tx.conn())
        .await?;
    tx.commit().await?;
    kept.found()
}

/// Start subscribing (or changing plan) through Stripe Checkout (admins and owners); the answer
/// is the page to send the admin to. The plan changes when Stripe reports the subscription
/// (`POST /v1/webhooks/stripe`), not here.
#[utoipa::path(post, path = "/v1/orgs/{org}/subscription/checkout", tag = "billing", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = CheckoutRequest,
    responses((status = 200, body = Redirect), Forbidden, NotFound, Invalid))]
pub async fn start_checkout(
    State(state): State<AppState>,
    client: ClientInfo,
    mut tx: OrgTx,
    request: Valid<CheckoutRequest>,
) -> Result<Json<Redirect>> {
    let stripe = stripe(&state)?;
    let org = tx.org();
    require_role(&mut tx, Role::Admin).await?;
    let cycle = request.billing_cycle.as_deref().unwrap_or("month");
    let price: Option<String> =
        sqlx::query_scalar(r"SELECT prices -> $2 ->> 'stripe_price_id' FROM plans WHERE code = $1")
            .bind(&request.plan)
            .bind(cycle)
            .fetch_optional(tx.conn())
            .await?
            .flatten();
    let Some(price) = price else {
        return Err(Error::invalid(
            "plan",
            format!("no plan {:?} with a {cycle}ly price", request.plan),
        ));
    };
    let (stored, name, email): (Option<String>, String, Option<String>) = sqlx::query_as(
        r"SELECT s.stripe_customer_id, o.name, o.billing_email
            FROM organizations o JOIN subscriptions s ON s.organization_id = o.id WHERE o.id = $1",
    )
    .bind(org)
    .fetch_optional(tx.conn())
    .await?
    .found()?;
    tx.commit().await?;
    let customer = customer(
        &state,
        &client,
        stripe,
        org,
        stored,
        &name,
        email.as_deref(),
    )
    .await?;
    let url = stripe
        .checkout_session(
            &customer,
            &price,
            org,
            &request.success_url,
            &request.cancel_url,
        )
        .await
        .map_err(upstream)?;
    Ok(Json(Redirect { url }))
}

/// Open Stripe's Customer Portal to manage payment methods, invoices and cancellation (admins
/// and owners of an organization that has subscribed through Stripe).
#[utoipa::path(post, path = "/v1/orgs/{org}/subscription/portal", tag = "billing", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = PortalRequest,
    responses((status = 200, body = Redirect), Forbidden, NotFound, Conflict, Invalid))]
pub async fn open_portal(
    State(state): State<AppState>,
    mut tx: OrgTx,
    request: Valid<PortalRequest>,
) -> Result<Json<Redirect>> {
    let stripe = stripe(&state)?;
    let org = tx.org();
    require_role(&mut tx, Role::Admin).await?;
    let stored: Option<String> = sqlx::query_scalar(
        r"SELECT stripe_customer_id FROM subscriptions WHERE organization_id = $1",
    )
    .bind(org)
    .fetch_optional(tx.conn())
    .await?
    .flatten();
    tx.commit().await?;
    let customer = stored.ok_or_else(|| Error::Conflict {
        code: "no_billing_account",
        detail: "this organization has not subscribed through Stripe yet; start with checkout"
            .into(),
    })?;
    let url = stripe
        .portal_session(&customer, &request.return_url)
        .await
        .map_err(upstream)?;
    Ok(Json(Redirect { url }))
}
