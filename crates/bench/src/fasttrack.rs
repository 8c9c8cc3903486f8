//! `tenantry bench fasttrack`: Fast Track reads at scale. The data (1,000,000 WOOP entries, 1,000
//! per organization, and 5 entries in each other tool per member, with progress) is built once,
//! by the owner, and kept in `tenantry_bench`.

use std::sync::Arc;
use std::time::Instant;

use sqlx::PgPool;
use tenantry_db::pool::pool_options;
use tenantry_db::{ConnectionUrls, RequestContext, RuntimePool, TenantTx};
use tenantry_server::fasttrack::Catalog;
use uuid::Uuid;

use super::{bench_tenants, compare, op, report, Settings};
use crate::AnyError;

const WOOP_ENTRIES: i64 = 1_000_000;
const OTHER_ENTRIES_PER_TOOL: i32 = 5;
/// Organizations filled per statement while building.
const BUILD_CHUNK: usize = 100;
/// The containment the benchmark asks for: one wish in a thousand.
const WISH: &str = r#"{"wish": "wish 42"}"#;

pub(super) async fn run(urls: &ConnectionUrls, s: &Settings) -> Result<(), AnyError> {
    let runtime = RuntimePool::open(urls, 1).await?;
    let direct = pool_options(1).connect(&urls.owner).await?;
    let tenants = bench_tenants(urls, &runtime).await?;
    build(&direct, &tenants).await?;
    let catalog = Catalog::shipped()?;
    let (user, org) = tenants[7];
    let one_at_a_time = Settings {
        connections: 1,
        ..*s
    };
    let me = Arc::new(vec![(user, org)]);

    // 1. My entries across all tools, with my progress.
    let mine = Arc::new(catalog.my_entries_sql());
    println!("\n## my entries across all tools with progress (one member, 6 tools, 1,025 entries of theirs)");
    explain(&runtime, user, org, &mine, &[]).await?;
    let under_rls = op({
        let (runtime, sql) = (runtime.clone(), mine.clone());
        move |(user, org): (Uuid, Uuid)| {
            let (runtime, sql) = (runtime.clone(), sql.clone());
            async move {
                let mut tx =
                    TenantTx::begin(&runtime, &RequestContext::user(user).in_org(org)).await?;
                // As the service runs it: planned per run, the member as a value.
                let rows = sqlx::query(&sql)
                    .persistent(false)
                    .bind(org)
                    .bind(50i64)
                    .bind(user)
                    .fetch_all(tx.conn())
                    .await?;
                tx.commit().await?;
                expect_rows(rows.len(), 50)?;
                Ok(org)
            }
        }
    });
    let as_owner = op({
        let (direct, sql) = (direct.clone(), mine.clone());
        move |(user, org): (Uuid, Uuid)| {
            let (direct, sql) = (direct.clone(), sql.clone());
            async move {
                let mut tx = direct.begin().await?;
                bind_user(&mut tx, user).await?;
                let rows = sqlx::query(&sql)
                    .persistent(false)
                    .bind(org)
                    .bind(50i64)
                    .bind(user)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                expect_rows(rows.len(), 50)?;
                Ok(org)
            }
        }
    });
    report(
        &mut compare(
            &one_at_a_time,
            &me,
            vec![
                ("my entries, tenant transaction (RLS)", under_rls),
                ("same SQL as owner (RLS off)", as_owner),
            ],
        )
        .await?,
    );

    // 2. JSONB containment on one tool with a million entries.
    println!("\n## JSONB containment on WOOP ({WOOP_ENTRIES} entries): data @> '{WISH}'");
    let in_org = r"SELECT id, data FROM sprint_00_woop.tool_data WHERE organization_id = $1 AND data @> $2::jsonb";
    let everywhere = r"SELECT count(*) FROM sprint_00_woop.tool_data WHERE data @> $1::jsonb";
    println!("\n### an organization owner's search in their organization (RLS)");
    explain(&runtime, user, org, in_org, &[WISH]).await?;
    println!("\n### the owner role across all organizations (maintenance, RLS off)");
    let started = Instant::now();
    let count: i64 = sqlx::query_scalar(everywhere)
        .bind(WISH)
        .fetch_one(&direct)
        .await?;
    println!("{count} matching entries in {:?}", started.elapsed());
    let plan: Vec<String> =
        sqlx::query_scalar(&format!(r"EXPLAIN (ANALYZE, BUFFERS) {everywhere}"))
            .bind(WISH)
            .fetch_all(&direct)
            .await?;
    println!("```\n{}\n```", plan.join("\n"));
    let search = op({
        let runtime = runtime.clone();
        move |(user, org): (Uuid, Uuid)| {
            let runtime = runtime.clone();
            async move {
                let mut tx =
                    TenantTx::begin(&runtime, &RequestContext::user(user).in_org(org)).await?;
                let rows = sqlx::query(in_org)
                    .bind(org)
                    .bind(WISH)
                    .fetch_all(tx.conn())
                    .await?;
                tx.commit().await?;
                expect_rows(rows.len(), 1)?;
                Ok(org)
            }
        }
    });
    let search_as_owner = op({
        let direct = direct.clone();
        move |(_, org): (Uuid, Uuid)| {
            let direct = direct.clone();
            async move {
                let mut tx = direct.begin().await?;
                let rows = sqlx::query(in_org)
                    .bind(org)
                    .bind(WISH)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                expect_rows(rows.len(), 1)?;
                Ok(org)
            }
        }
    });
    report(
        &mut compare(
            &one_at_a_time,
            &me,
            vec![
                (
                    "containment in my organization, tenant transaction (RLS)",
                    search,
                ),
                ("same SQL as owner (RLS off)", search_as_owner),
            ],
        )
        .await?,
    );
    runtime.close().await;
    direct.close().await;
    Ok(())
}

fn expect_rows(got: usize, want: usize) -> Result<(), AnyError> {
    if got != want {
        return Err(format!("{got} rows instead of {want}").into());
    }
    Ok(())
}

/// Binds `user` as the acting user of an owner transaction (the SQL reads app.user_id(), which
/// only a context bound by app.begin_request answers; the owner reads the service key itself).
async fn bind_user(tx: &mut sqlx::PgConnection, user: Uuid) -> Result<(), AnyError> {
    sqlx::query(
        r"SELECT app.begin_request((SELECT service_key FROM app.secrets), $1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .bind(user)
        .execute(tx)
        .await?;
    Ok(())
}

/// Prints the plan and timing of `sql` in the member's tenant transaction; binds the
/// organization, then `texts` (or, with none, a limit of 50 and the member).
async fn explain(
    runtime: &RuntimePool,
    user: Uuid,
    org: Uuid,
    sql: &str,
    texts: &[&str],
) -> Result<(), AnyError> {
    let mut tx = TenantTx::begin(runtime, &RequestContext::user(user).in_org(org)).await?;
    let explain = format!(r"EXPLAIN (ANALYZE, BUFFERS) {sql}");
    let mut query = sqlx::query_scalar::<_, String>(&explain).bind(org);
    query = if texts.is_empty() {
        query.bind(50i64).bind(user)
    } else {
        texts.iter().fold(query, |q, t| q.bind(*t))
    };
    let plan = query.fetch_all(tx.conn()).await?;
    tx.commit().await?;
    println!("```\n{}\n```", plan.join("\n"));
    Ok(())
}

/// Fills the benchmark organizations with entries, where missing: 1,000 WOOP entries each (one
/// wish in a thousand is "wish 42"), 5 in every other tool, and the members' progress.
async fn build(direct: &PgPool, tenants: &[(Uuid, Uuid)]) -> Result<(), AnyError> {
    let have: i64 = sqlx::query_scalar(r"SELECT count(*) FROM sprint_00_woop.tool_data")
        .fetch_one(direct)
        .await?;
    if have >= WOOP_ENTRIES {
        return Ok(());
    }
    let per_org = WOOP_ENTRIES / tenants.len() as i64;
    println!(
        "adding {per_org} WOOP entries to each of {} organizations...",
        tenants.len()
    );
    let started = Instant::now();
    for (i, chunk) in tenants.chunks(BUILD_CHUNK).enumerate() {
        let users: Vec<Uuid> = chunk.iter().map(|(u, _)| *u).collect();
        let orgs: Vec<Uuid> = chunk.iter().map(|(_, o)| *o).collect();
        let mut tx = direct.begin().await?;
        // Loaded as the owner's restore would: rows as they are, no per-row history.
        sqlx::query(r"SELECT set_config('app.archiving', 'on', true)")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            r"INSERT INTO sprint_00_woop.tool_data (organization_id, user_id, data, status, completed_at, submitted_at)
             SELECT t.org, t.usr,
                    jsonb_build_object('wish', 'wish ' || (n % 1000), 'outcome', 'outcome ' || n,
                                       'obstacle', 'obstacle ' || (n % 97), 'plan', 'if ' || (n % 89) || ' then act'),
                    s.status, CASE WHEN s.status IN ('completed', 'submitted') THEN now() END,
                    CASE WHEN s.status = 'submitted' THEN now() END
               FROM unnest($1::uuid[], $2::uuid[]) AS t(usr, org), generate_series(1, $3) n,
                    LATERAL (SELECT (ARRAY['draft', 'in_progress', 'completed', 'submitted'])[n % 4 + 1] AS status) s",
        )
        .bind(&users)
        .bind(&orgs)
        .bind(per_org as i32)
        .execute(&mut *tx)
        .await?;
        for schema in [
            "sprint_01_know_thyself",
            "sprint_02_dream",
            "sprint_15_value_proposition",
            "sprint_24_fit_abc_analysis",
            "sprint_29_digital_heart",
        ] {
            sqlx::query(&format!(
                r"INSERT INTO {schema}.tool_data (organization_id, user_id, data, status)
                 SELECT t.org, t.usr, '{{}}', 'in_progress'
                   FROM unnest($1::uuid[], $2::uuid[]) AS t(usr, org), generate_series(1, $3)"
            ))
            .bind(&users)
            .bind(&orgs)
            .bind(OTHER_ENTRIES_PER_TOOL)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            r"INSERT INTO tool_access.progress (organization_id, user_id, tool_slug, status, progress_percentage, last_accessed_at)
             SELECT t.org, t.usr, tools.slug, 'in_progress', 50, now()
               FROM unnest($1::uuid[], $2::uuid[]) AS t(usr, org), tool_access.tools tools
             ON CONFLICT DO NOTHING",
        )
        .bind(&users)
        .bind(&orgs)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        println!(
            "  {} of {} organizations ({:.0?})",
            i * BUILD_CHUNK + chunk.len(),
            tenants.len(),
            started.elapsed()
        );
    }
    sqlx::query("ANALYZE").execute(direct).await?;
    Ok(())
}
