//! SQL of the activity feed.

use super::{Event, EventFilter};
use crate::kernel::access::require_role;
use crate::kernel::access::Role;
use crate::kernel::error::Result;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Page, PageParams};

/// A page of an organization's events, newest first: each month's `(organization_id, id)` index
/// read backwards, the months merged, so a page reads about a page (and a row per month).
pub const FEED_SQL: &str = r"SELECT id, occurred_at, user_id, api_key_id, action, entity_type, entity_id, old_data, new_data,
        host(ip_address) AS ip_address, user_agent, request_id
   FROM audit.events
  WHERE organization_id = $1
    AND ($2::uuid IS NULL OR id < $2)
    AND ($3::uuid IS NULL OR user_id = $3)
    AND ($4::uuid IS NULL OR api_key_id = $4)
    AND ($5::text IS NULL OR entity_type = $5)
    AND ($6::uuid IS NULL OR entity_id = $6)
    AND ($7::text IS NULL OR action = $7)
    AND ($8::timestamptz IS NULL OR occurred_at >= $8)
    AND ($9::timestamptz IS NULL OR occurred_at < $9)
  ORDER BY id DESC LIMIT $10";

/// An organization's events, newest first (admins; policies show admins their organization's only).
pub async fn list(tx: &mut OrgTx, filter: &EventFilter) -> Result<Page<Event>> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let page = PageParams {
        limit: filter.limit,
        after: filter.after,
    };
    let rows: Vec<Event> = sqlx::query_as(FEED_SQL)
        .bind(org)
        .bind(filter.after)
        .bind(filter.user_id)
        .bind(filter.api_key_id)
        .bind(filter.entity_type.as_deref())
        .bind(filter.entity_id)
        .bind(filter.action.as_deref())
        .bind(filter.since)
        .bind(filter.until)
        .bind(page.fetch_limit())
        .fetch_all(tx.conn())
        .await?;
    Ok(Page::from_rows(rows, &page, |e| e.id))
}
