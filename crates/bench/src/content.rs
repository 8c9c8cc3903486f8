//! `tenantry bench content`: the public site's page read — `GET /v1/public/{org}/content/{slug}`
//! over HTTP (anonymous, bound as a public reader, Markdown rendered) vs the same statements in
//! a tenant transaction of a public reader (RLS) vs the same statements sent directly by the
//! owner (RLS off). Every benchmark organization has 20 published pages and 5 drafts, the big
//! organization 2,000 and 500 (built once; pages of about 3 KB of Markdown).

use std::sync::Arc;

use sqlx::{PgConnection, PgPool};
use tenantry_db::pool::pool_options;
use tenantry_db::{Actor, ConnectionUrls, RequestContext, RuntimePool, TenantTx};
use uuid::Uuid;

use super::{bench_tenants, compare, op, report, send, spawn_server, Op, Settings};
use crate::AnyError;

const PUBLISHED: i32 = 20;
const DRAFTS: i32 = 5;
const BIG: i32 = 100;
const MARK: &str = "Bench page";

/// A page to read: the organization's slug and id, and the page's slug.
type Target = (String, Uuid, String);

pub(super) async fn run(urls: &ConnectionUrls, s: &Settings) -> Result<(), AnyError> {
    let runtime = RuntimePool::open(urls, s.connections).await?;
    let direct = pool_options(s.connections).connect(&urls.owner).await?;
    let tenants = bench_tenants(urls, &runtime).await?;
    build(&direct, &tenants).await?;
    let targets = Arc::new(targets(&direct, tenants.get(1).map(|t| t.1)).await?);
    let stored: (i64, i64) = sqlx::query_as(
        r"SELECT count(*) FILTER (WHERE status = 'published'), count(*) FROM content",
    )
    .fetch_one(&direct)
    .await?;
    let (base, server) = spawn_server(&runtime).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(s.connections as usize)
        .build()?;
    println!(
        "content: {} organizations, {} published of {} pages ({PUBLISHED} published per organization, {} in the big one), {} pages read in turn; {} connections, {} rounds of {:?}",
        tenants.len(),
        stored.0,
        stored.1,
        PUBLISHED * BIG,
        targets.len(),
        s.connections,
        s.rounds,
        s.round
    );
    let over_http = op({
        let (client, base) = (client.clone(), base.clone());
        move |(org_slug, org, slug): Target| {
            let request = client.get(format!("{base}/v1/public/{org_slug}/content/{slug}"));
            async move {
                send(request).await?;
                Ok(org)
            }
        }
    });
    let under_rls = op({
        let runtime = runtime.clone();
        move |(org_slug, org, slug): Target| {
            let runtime = runtime.clone();
            async move {
                let ctx = RequestContext {
                    actor: Actor::PublicReader(org_slug),
                    ..RequestContext::default()
                };
                let mut tx = TenantTx::begin(&runtime, &ctx).await?;
                read_page(tx.conn(), None, &slug).await?;
                tx.commit().await?;
                Ok(org)
            }
        }
    });
    let as_owner = op({
        let direct = direct.clone();
        move |(org_slug, org, slug): Target| {
            let direct = direct.clone();
            async move {
                let mut tx = direct.begin().await?;
                read_page(&mut tx, Some(&org_slug), &slug).await?;
                tx.commit().await?;
                Ok(org)
            }
        }
    });
    let variants: Vec<(&'static str, Op<Target>)> = vec![
        (
            "GET /v1/public/{org}/content/{slug} (HTTP, public reader, RLS, Markdown rendered)",
            over_http,
        ),
        ("same SQL as a public reader (runtime role, RLS)", under_rls),
        (
            "same SQL direct (owner, RLS bypassed, status filtered)",
            as_owner,
        ),
    ];
    report(&mut compare(s, &targets, variants).await?);
    server.abort();
    runtime.close().await;
    direct.close().await;
    Ok(())
}

/// The public route's statement: the page by slug, the organization and status the policy's
/// under RLS; the owner, whom no policy filters, says both itself (the organization looked up
/// by slug in the same statement).
async fn read_page(
    conn: &mut PgConnection,
    owner_looks_up: Option<&str>,
    slug: &str,
) -> Result<(), AnyError> {
    let row: Option<(String, String)> = match owner_looks_up {
        Some(org_slug) => {
            sqlx::query_as(
                r"SELECT title, content FROM content
                   WHERE organization_id = (SELECT id FROM organizations WHERE slug = $1)
                     AND slug = $2 AND status = 'published'",
            )
            .bind(org_slug)
            .bind(slug)
            .fetch_optional(&mut *conn)
            .await?
        }
        None => {
            sqlx::query_as(r"SELECT title, content FROM content WHERE slug = $1")
                .bind(slug)
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    row.ok_or("the page is not there")?;
    Ok(())
}

/// About 3 KB of Markdown: headings, paragraphs, a list, links, a table, code.
fn markdown(n: &str) -> String {
    let paragraph = "Teams that measure what matters grow faster. This page explains how we \
                     work, what we offer and how to reach us, with [links](https://example.com/more) \
                     and **emphasis** where it helps.";
    format!(
        "# Page {n}\n\n{paragraph}\n\n## Details\n\n{paragraph}\n\n- one\n- two\n- three\n\n\
         | plan | price |\n|---|---|\n| free | 0 |\n| pro | 49 |\n\n```\ncurl https://example.com\n```\n\n{}",
        [paragraph; 12].join("\n\n")
    )
}

async fn build(direct: &PgPool, tenants: &[(Uuid, Uuid)]) -> Result<(), AnyError> {
    let built: bool =
        sqlx::query_scalar(r"SELECT EXISTS (SELECT FROM content WHERE title LIKE $1)")
            .bind(format!("{MARK}%"))
            .fetch_one(direct)
            .await?;
    if built {
        return Ok(());
    }
    println!("building the content data set...");
    let big = tenants.get(1).map(|t| t.1);
    let orgs: Vec<Uuid> = tenants.iter().map(|t| t.1).collect();
    // Every page the same Markdown but its heading: the text's size is what matters here.
    sqlx::query(
        r"INSERT INTO content (organization_id, title, slug, content_type, content, status)
          SELECT o.org, $2 || ' ' || n, 'page-' || n,
                 CASE WHEN n % 3 = 0 THEN 'blog_post' ELSE 'page' END,
                 replace($3, '{n}', n::text),
                 CASE WHEN n % 5 = 0 THEN 'draft' ELSE 'published' END
            FROM unnest($1::uuid[]) AS o (org)
           CROSS JOIN LATERAL generate_series(1,
                 (CASE WHEN o.org = $4 THEN $5 ELSE 1 END) * ($6 + $7)) AS n",
    )
    .bind(&orgs)
    .bind(MARK)
    .bind(markdown("{n}"))
    .bind(big)
    .bind(BIG)
    .bind(PUBLISHED)
    .bind(DRAFTS)
    .execute(direct)
    .await?;
    sqlx::query(r"ANALYZE content, content_versions, organizations")
        .execute(direct)
        .await?;
    Ok(())
}

/// The pages read in turn: three published pages of every organization, and 100 times as many
/// of the big one's, shuffled.
async fn targets(direct: &PgPool, big: Option<Uuid>) -> Result<Vec<Target>, AnyError> {
    Ok(sqlx::query_as(
        r"SELECT o.slug, o.id, c.slug
            FROM organizations o
           CROSS JOIN LATERAL (
                 SELECT c.slug FROM content c
                  WHERE c.organization_id = o.id AND c.status = 'published' AND c.title LIKE $1
                  ORDER BY c.id LIMIT CASE WHEN o.id = $2 THEN 300 ELSE 3 END) c
           ORDER BY random()",
    )
    .bind(format!("{MARK}%"))
    .bind(big)
    .fetch_all(direct)
    .await?)
}
