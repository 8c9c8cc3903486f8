//! A member's private calendar feed: a secret URL (`…/calendar.ics?token=…`) that Google
//! Calendar, Outlook or Apple Calendar subscribe to. The token is the credential of an anonymous
//! reader bound to no user: the database binds the feed's organization and member, and one
//! policy shows that member's appointments there, read-only (migration 0031). A new feed
//! replaces the old one; deleting it, or leaving the organization, revokes it.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use tenantry_db::{Actor, TenantTx};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::ical::{self, Event};
use crate::http::{
    cacheable, AppState, ClientInfo, Forbidden, Json, NotFound, Path, Query, Unauthorized,
};
use crate::identity::{hash_token, new_token};
use crate::kernel::access::{require_role, Module, Role};
use crate::kernel::error::{Error, Found, Result};
use crate::kernel::org_tx::OrgTx;

/// Every calendar feed token starts with this.
pub const TOKEN_PREFIX: &str = "tnt_c_";

/// How far back and ahead a feed reaches, and the most events it holds.
const PAST: Duration = Duration::days(90);
const AHEAD: Duration = Duration::days(366);
const MOST_EVENTS: i64 = 5000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_feed, create_feed, delete_feed))
        .layer(axum::Extension(Module::Crm))
        .routes(routes!(calendar_ics))
}

/// A member's calendar feed.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct CalendarFeed {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    /// The subscription URL, secret: shown once, when the feed is made.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[sqlx(skip)]
    pub url: Option<String>,
}

/// The caller's own user: feeds belong to signed-in members, not API keys.
async fn member(tx: &mut OrgTx) -> Result<Uuid> {
    require_role(tx, Role::Viewer).await?;
    tx.user_id().await?.ok_or(Error::Forbidden(
        "a calendar feed belongs to a signed-in member, not an API key",
    ))
}

/// The caller's calendar feed in this organization (its URL is not shown again).
#[utoipa::path(get, path = "/v1/orgs/{org}/calendar-feed", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses((status = 200, body = CalendarFeed), Forbidden, NotFound))]
pub async fn get_feed(mut tx: OrgTx) -> Result<Json<CalendarFeed>> {
    let user = member(&mut tx).await?;
    let org = tx.org();
    let feed: CalendarFeed = sqlx::query_as(
        r"SELECT id, created_at FROM calendar_feeds WHERE organization_id = $1 AND user_id = $2",
    )
    .bind(org)
    .bind(user)
    .fetch_optional(tx.conn())
    .await?
    .found()?;
    tx.commit().await?;
    Ok(Json(feed))
}

/// Make the caller's private calendar feed (any member, viewers too): its URL, shown once, lists
/// their appointments from 90 days ago to a year ahead. Replaces (revokes) an earlier feed.
#[utoipa::path(post, path = "/v1/orgs/{org}/calendar-feed", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses((status = 201, body = CalendarFeed), Forbidden, NotFound))]
pub async fn create_feed(
    mut tx: OrgTx,
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<(StatusCode, Json<CalendarFeed>)> {
    let user = member(&mut tx).await?;
    let org = tx.org();
    let token = new_token(TOKEN_PREFIX);
    sqlx::query(r"DELETE FROM calendar_feeds WHERE organization_id = $1 AND user_id = $2")
        .bind(org)
        .bind(user)
        .execute(tx.conn())
        .await?;
    let mut feed: CalendarFeed = sqlx::query_as(
        r"INSERT INTO calendar_feeds (organization_id, user_id, token_hash) VALUES ($1, $2, $3)
          RETURNING id, created_at",
    )
    .bind(org)
    .bind(user)
    .bind(hash_token(&token).as_slice())
    .fetch_one(tx.conn())
    .await?;
    tx.commit().await?;
    feed.url = Some(format!(
        "{}/v1/orgs/{org}/calendar.ics?token={token}",
        state.config.public_url.trim_end_matches('/')
    ));
    Ok((StatusCode::CREATED, Json(feed)))
}

/// Revoke the caller's calendar feed: its URL stops working at once.
#[utoipa::path(delete, path = "/v1/orgs/{org}/calendar-feed", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses((status = 204), Forbidden, NotFound))]
pub async fn delete_feed(mut tx: OrgTx) -> Result<StatusCode> {
    let user = member(&mut tx).await?;
    let org = tx.org();
    let deleted =
        sqlx::query(r"DELETE FROM calendar_feeds WHERE organization_id = $1 AND user_id = $2")
            .bind(org)
            .bind(user)
            .execute(tx.conn())
            .await?
            .rows_affected();
    if deleted == 0 {
        return Err(Error::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// The feed's secret, from its URL.
    pub token: Option<String>,
}

/// A member's appointments as iCalendar (RFC 5545), for calendar subscriptions. No bearer token:
/// the feed's secret `token` is the credential, and it reads its member's appointments in this
/// organization only (cancelled ones marked `STATUS:CANCELLED`).
#[utoipa::path(get, path = "/v1/orgs/{org}/calendar.ics", tag = "crm",
    params(("org" = Uuid, Path, description = "Organization id"), FeedParams),
    responses(
        (status = 200, content_type = "text/calendar", body = String, description = "The calendar"),
        (status = 304, description = "Not modified since the ETag sent"),
        Unauthorized,
    ))]
pub async fn calendar_ics(
    axum::extract::State(state): axum::extract::State<AppState>,
    client: ClientInfo,
    Path(org): Path<Uuid>,
    Query(params): Query<FeedParams>,
    headers: HeaderMap,
) -> Result<Response> {
    let token = params
        .token
        .filter(|t| t.starts_with(TOKEN_PREFIX))
        .ok_or(Error::Unauthenticated)?;
    let mut ctx = client.context(Actor::CalendarFeedHash(hash_token(&token)));
    ctx.org_id = Some(org);
    let mut tx = TenantTx::begin(&state.db, &ctx).await?;
    let now = Utc::now();
    // The policy shows the feed's member only; naming them lets the range index serve it.
    let events: Vec<Event> = sqlx::query_as(
        r"SELECT id, title, description, location, meeting_url, start_time, end_time, status,
                 revision, created_at, updated_at
            FROM appointments
           WHERE organization_id = $1 AND assigned_to = app.calendar_of()
             AND during && tstzrange($2, $3)
           ORDER BY start_time, id
           LIMIT $4",
    )
    .bind(org)
    .bind(now - PAST)
    .bind(now + AHEAD)
    .bind(MOST_EVENTS)
    .fetch_all(tx.conn())
    .await?;
    tx.commit().await?;
    let body = ical::calendar("Appointments", &events);
    Ok(cacheable(
        &headers,
        "text/calendar; charset=utf-8",
        "private, max-age=300",
        body,
    ))
}
