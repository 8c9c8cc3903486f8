//! The public site: published content by organization slug and content slug, without a
//! credential. Each request is bound to the organization as an anonymous reader (no user, no
//! role) and reads through RLS, where the policy `content_select` shows such a reader the
//! organization's published rows only — the queries below filter on neither organization nor
//! status themselves. Markdown is rendered to safe HTML.

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use tenantry_db::{Actor, TenantTx};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::markdown;
use super::{ContentType, SeoMeta};
use crate::http::{cacheable, AppState, ClientInfo, NotFound, Path, Query};
use crate::kernel::error::{Error, Result};
use crate::kernel::page::{Limit, SortCursor, Sorted, SortedPage};

/// Shared caches may keep a page a minute; the ETag makes revalidation cheap.
const CACHE_CONTROL: &str = "public, max-age=60";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(public_list))
        .routes(routes!(public_page))
}

/// A published page as the public sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicContent {
    pub title: String,
    pub slug: String,
    pub content_type: ContentType,
    pub excerpt: Option<String>,
    /// The Markdown rendered to HTML: raw HTML in it shown as text, only http(s), mailto and
    /// relative links.
    pub html: String,
    pub seo_meta: SeoMeta,
    pub published_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A page by its slug `$1`; the organization and the status are the policy's.
pub const PAGE_SQL: &str = r"SELECT title, slug, content_type, content, excerpt, seo_meta,
    published_at, updated_at FROM content WHERE slug = $1";

#[derive(Debug, FromRow)]
struct PublishedRow {
    title: String,
    slug: String,
    #[sqlx(try_from = "String")]
    content_type: ContentType,
    content: String,
    excerpt: Option<String>,
    #[sqlx(json)]
    seo_meta: SeoMeta,
    published_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

/// An entry of a public list.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct PublicSummary {
    #[serde(skip)]
    pub id: Uuid,
    pub title: String,
    pub slug: String,
    #[sqlx(try_from = "String")]
    pub content_type: ContentType,
    pub excerpt: Option<String>,
    #[sqlx(json)]
    pub seo_meta: SeoMeta,
    pub published_at: Option<DateTime<Utc>>,
}

/// A transaction of an anonymous reader of the organization `org_slug`. The queries below name
/// no organization: the policy's is the bound one (its index condition), and an unknown slug
/// binds none, so they find nothing.
async fn reader(state: &AppState, client: &ClientInfo, org_slug: &str) -> Result<TenantTx> {
    if org_slug.is_empty() || org_slug.len() > 63 {
        return Err(Error::NotFound);
    }
    let ctx = client.context(Actor::PublicReader(org_slug.to_string()));
    Ok(TenantTx::begin(&state.db, &ctx).await?)
}

/// A published page, rendered. An old slug of a published page answers 301 to its current
/// address; drafts, archived pages and other organizations' pages are 404.
#[utoipa::path(get, path = "/v1/public/{org_slug}/content/{slug}", tag = "content",
    params(("org_slug" = String, Path, description = "The organization's slug"),
           ("slug" = String, Path, description = "The page's slug")),
    responses(
        (status = 200, body = PublicContent, description = "The page, with `ETag` and `Cache-Control`"),
        (status = 301, description = "Moved: `Location` is the page's current address"),
        (status = 304, description = "Not modified since the ETag sent"),
        NotFound,
    ))]
pub async fn public_page(
    State(state): State<AppState>,
    client: ClientInfo,
    Path((org_slug, slug)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let mut tx = reader(&state, &client, &org_slug).await?;
    let row: Option<PublishedRow> = sqlx::query_as(PAGE_SQL)
        .bind(&slug)
        .fetch_optional(tx.conn())
        .await?;
    let Some(row) = row else {
        let moved: Option<String> = sqlx::query_scalar(
            r"SELECT c.slug FROM content_redirects r
                JOIN content c ON c.organization_id = r.organization_id AND c.id = r.content_id
               WHERE r.slug = $1",
        )
        .bind(&slug)
        .fetch_optional(tx.conn())
        .await?;
        tx.commit().await?;
        let moved = moved.ok_or(Error::NotFound)?;
        // Both slugs are lowercase letters, digits and dashes: a valid header value.
        let location = HeaderValue::from_str(&format!("/v1/public/{org_slug}/content/{moved}"))
            .map_err(|e| Error::Internal(e.to_string()))?;
        return Ok((StatusCode::MOVED_PERMANENTLY, [(LOCATION, location)]).into_response());
    };
    tx.commit().await?;
    let page = PublicContent {
        html: markdown::to_html(&row.content),
        title: row.title,
        slug: row.slug,
        content_type: row.content_type,
        excerpt: row.excerpt,
        seo_meta: row.seo_meta,
        published_at: row.published_at,
        updated_at: row.updated_at,
    };
    let body = serde_json::to_string(&page).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(cacheable(&headers, "application/json", CACHE_CONTROL, body))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublicListParams {
    /// Only this type (`blog_post` for a blog).
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<ContentType>)]
    pub content_type: Option<ContentType>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
}

/// The organization's published content, newest first (a blog: `?type=blog_post`).
#[utoipa::path(get, path = "/v1/public/{org_slug}/content", tag = "content",
    params(("org_slug" = String, Path, description = "The organization's slug"), PublicListParams),
    responses(
        (status = 200, body = SortedPage<PublicSummary>, description = "With `ETag` and `Cache-Control`"),
        (status = 304, description = "Not modified since the ETag sent"),
        NotFound,
    ))]
pub async fn public_list(
    State(state): State<AppState>,
    client: ClientInfo,
    Path(org_slug): Path<String>,
    Query(params): Query<PublicListParams>,
    headers: HeaderMap,
) -> Result<Response> {
    const SORT: &str = "-published";
    // An empty `after` is the first page, as no `after` is.
    let after = params
        .after
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(|a| SortCursor::decode(a, SORT))
        .transpose()?;
    let limit = params.limit.unwrap_or(Limit::DEFAULT);
    let mut tx = reader(&state, &client, &org_slug).await?;
    let rows: Vec<Sorted<PublicSummary>> = sqlx::query_as(
        r"SELECT id, title, slug, content_type, excerpt, seo_meta, published_at,
                 published_at::text AS sort_key
            FROM content
           WHERE ($1::text IS NULL OR content_type = $1)
             AND ($2::text IS NULL OR (published_at, id) < ($2::timestamptz, $3))
           ORDER BY published_at DESC, id DESC LIMIT $4",
    )
    .bind(params.content_type.map(ContentType::as_str))
    .bind(after.as_ref().map(|c| c.key.clone()))
    .bind(after.as_ref().map(|c| c.id))
    .bind(i64::from(limit.get()) + 1)
    .fetch_all(tx.conn())
    .await?;
    tx.commit().await?;
    let page = SortedPage::from_rows(rows, limit, SORT, |c| c.id);
    let body = serde_json::to_string(&page).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(cacheable(&headers, "application/json", CACHE_CONTROL, body))
}
