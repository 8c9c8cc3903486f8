//! HTTP routes of billing: the public plan catalog, an organization's subscription and usage.

use axum::extract::State;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tenantry_db::{RequestContext, TenantTx};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Invoice, Plan, Subscription, Usage};
use crate::http::Query;
use crate::http::{AppState, ClientInfo, Forbidden, Json, NotFound};
use crate::kernel::access::{require_role, Module, Role};
use crate::kernel::error::{Found, Result};
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Page, PageParams};
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_subscription))
        .routes(routes!(get_usage))
        .routes(routes!(list_invoices))
        .layer(axum::Extension(Module::Billing))
        .routes(routes!(list_plans))
        .merge(super::webhooks::routes())
        .merge(super::checkout::routes())
}

/// The plans on offer (no credential needed: a pricing page reads them).
#[utoipa::path(get, path = "/v1/plans", tag = "billing",
    responses((status = 200, body = Vec<Plan>)))]
pub async fn list_plans(
    State(state): State<AppState>,
    client: ClientInfo,
) -> Result<Json<Vec<Plan>>> {
    let ctx: RequestContext = client.context(tenantry_db::Actor::Anonymous);
    let mut tx = TenantTx::begin(&state.db, &ctx).await?;
    let plans: Vec<Plan> = sqlx::query_as(
        r"SELECT code, name, tier, features, limits, prices, trial_days, is_default
            FROM plans WHERE listed ORDER BY sort_order, code",
    )
    .fetch_all(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(Json(plans))
}

/// The subscription and the plan in force. The plan in force is the subscribed one while the
/// subscription is in good standing, else the default plan.
const SUBSCRIPTION_SQL: &str = r"SELECT s.plan_code, s.status, s.billing_cycle, s.current_period_start,
        s.current_period_end, s.trial_ends_at, s.cancel_at_period_end,
        app.subscription_in_force(s, now()) AS in_good_standing,
        p.code AS in_force_code, p.tier AS in_force_tier, p.features AS in_force_features,
        p.limits AS in_force_limits
   FROM subscriptions s
   JOIN plans p ON p.code = CASE WHEN app.subscription_in_force(s, now()) THEN s.plan_code
                                 ELSE (SELECT d.code FROM plans d WHERE d.is_default) END
  WHERE s.organization_id = $1";

async fn subscription(tx: &mut OrgTx) -> Result<Subscription> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    sqlx::query_as(SUBSCRIPTION_SQL)
        .bind(org)
        .fetch_optional(tx.conn())
        .await?
        .found()
}

/// The organization's subscription and the plan in force (members and viewers).
#[utoipa::path(get, path = "/v1/orgs/{org}/subscription", tag = "billing", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses((status = 200, body = Subscription), NotFound))]
pub async fn get_subscription(mut tx: OrgTx) -> Result<Json<Subscription>> {
    let found = subscription(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// What the organization uses: counts kept exact by triggers (seats, KPIs), the current
/// billing period's metered totals (API calls, AI tokens), the last measured storage.
const USAGE_SQL: &str = r"
WITH period AS (SELECT starts_at, ends_at, (starts_at AT TIME ZONE 'UTC')::date AS day
                  FROM app.billing_period($1, now()))
SELECT e.entitlement, coalesce(g.used, 0) AS used, NULL::timestamptz AS period_start,
       NULL::timestamptz AS period_end, NULL::timestamptz AS measured_at
  FROM unnest(ARRAY['seats', 'kpis']) AS e (entitlement)
  LEFT JOIN usage_gauges g ON g.organization_id = $1 AND g.entitlement = e.entitlement
UNION ALL
SELECT e.entitlement,
       coalesce((SELECT sum(t.usage_amount) FROM usage_tracking t
                  WHERE t.organization_id = $1 AND t.billing_period = p.day
                    AND t.resource_type = e.entitlement), 0)::bigint,
       p.starts_at, p.ends_at, NULL
  FROM unnest(ARRAY['api_calls', 'ai_tokens']) AS e (entitlement), period p
UNION ALL
SELECT 'storage', coalesce(s.usage_amount, 0), NULL, NULL, s.updated_at
  FROM (SELECT 1) one
  LEFT JOIN LATERAL (SELECT t.usage_amount, t.updated_at FROM usage_tracking t
                      WHERE t.organization_id = $1 AND t.resource_type = 'storage'
                      ORDER BY t.billing_period DESC LIMIT 1) s ON true";

#[derive(FromRow)]
struct Counted {
    entitlement: String,
    used: i64,
    period_start: Option<DateTime<Utc>>,
    period_end: Option<DateTime<Utc>>,
    measured_at: Option<DateTime<Utc>>,
}

/// Usage of every counted entitlement against the plan in force (members and viewers).
#[utoipa::path(get, path = "/v1/orgs/{org}/usage", tag = "billing", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses((status = 200, body = Vec<Usage>), NotFound))]
pub async fn get_usage(mut tx: OrgTx) -> Result<Json<Vec<Usage>>> {
    let plan = subscription(&mut tx).await?.plan_in_force;
    let org = tx.org();
    let counted: Vec<Counted> = sqlx::query_as(USAGE_SQL)
        .bind(org)
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    let usage = counted
        .into_iter()
        .map(|c| {
            let limit = plan.limits.get(&c.entitlement).and_then(|l| l.as_i64());
            Usage {
                percent: limit.map(|l| {
                    if l == 0 {
                        100.0
                    } else {
                        (c.used as f64 * 1000.0 / l as f64).round() / 10.0
                    }
                }),
                entitlement: c.entitlement,
                used: c.used,
                limit,
                period_start: c.period_start,
                period_end: c.period_end,
                measured_at: c.measured_at,
            }
        })
        .collect();
    Ok(Json(usage))
}

/// The organization's invoices, newest first (admins and owners): amounts, currency, status and
/// Stripe's page of each.
#[utoipa::path(get, path = "/v1/orgs/{org}/invoices", tag = "billing", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), PageParams),
    responses((status = 200, body = Page<Invoice>), Forbidden, NotFound))]
pub async fn list_invoices(
    mut tx: OrgTx,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Invoice>>> {
    let org = tx.org();
    require_role(&mut tx, Role::Admin).await?;
    // Newest first: ids are time-ordered, so the cursor is the last id and pages go down.
    let after = page.after.unwrap_or(Uuid::max());
    let rows: Vec<Invoice> = sqlx::query_as(
        r"SELECT id, stripe_invoice_id, number, status, currency, amount_due, amount_paid,
                 hosted_invoice_url, period_start, period_end, paid_at, issued_at
            FROM invoices WHERE organization_id = $1 AND id < $2
           ORDER BY id DESC LIMIT $3",
    )
    .bind(org)
    .bind(after)
    .bind(page.fetch_limit())
    .fetch_all(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |i| i.id)))
}
