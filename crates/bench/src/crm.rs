//! `tenantry bench crm`: the Strive CRM at scale. The data — 1,000 organizations with 1,900
//! customers each, one of them with 100,000; ten projects of 200 tasks each everywhere, and in
//! the big organization a project of 5,000 tasks: over 2 million customers and 2 million tasks —
//! is built once, by the owner, and kept in `tenantry_bench`.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use sqlx::{PgConnection, PgPool};
use tenantry_db::pool::pool_options;
use tenantry_db::{ConnectionUrls, RequestContext, RuntimePool, TenantTx};
use tenantry_server::crm::customers::store::{
    list_query, prefixed_list_query, CustomerFilter, CustomerSort,
};
use tenantry_server::crm::customers::{Customer, CustomerStatus};
use tenantry_server::crm::dashboard;
use tenantry_server::crm::tasks::store::BOARD_SQL;
use tenantry_server::crm::tasks::{self, Move};
use tenantry_server::kernel::input::Valid;
use tenantry_server::kernel::org_tx::OrgTx;
use tenantry_server::kernel::page::Sorted;
use uuid::Uuid;

use super::{
    bench_tenants, compare, get_op, op, report, send, spawn_server, under_rls_and_as_owner,
    Settings,
};
use crate::AnyError;

const CUSTOMERS_PER_ORG: i32 = 1_900;
const BIG_ORG_CUSTOMERS: i32 = 100_000;
const PROJECTS_PER_ORG: i32 = 10;
const TASKS_PER_PROJECT: i32 = 200;
const BIG_PROJECT_TASKS: i32 = 5_000;
const BIG_PROJECT: &str = "Bench big project";
/// Organizations filled per transaction while building.
const BUILD_CHUNK: usize = 50;
/// The search: part of a surname, a tag and a status.
const SEARCH: (&str, &str, CustomerStatus) = ("hopkin", "vip", CustomerStatus::Active);

pub(super) async fn run(urls: &ConnectionUrls, s: &Settings) -> Result<(), AnyError> {
    let runtime = RuntimePool::open(urls, s.connections.max(2)).await?;
    let direct = pool_options(s.connections.max(2))
        .connect(&urls.owner)
        .await?;
    let tenants = bench_tenants(urls, &runtime).await?;
    let (user, big) = tenants[1];
    build(&direct, &tenants, big).await?;
    let (customers, tasks_count): (i64, i64) =
        sqlx::query_as(r"SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM tasks)")
            .fetch_one(&direct)
            .await?;
    println!("crm: {} organizations, {customers} customers, {tasks_count} tasks; the big organization has {BIG_ORG_CUSTOMERS} customers and a {BIG_PROJECT_TASKS}-task project", tenants.len());
    let project: Uuid =
        sqlx::query_scalar(r"SELECT id FROM projects WHERE organization_id = $1 AND name = $2")
            .bind(big)
            .bind(BIG_PROJECT)
            .fetch_one(&direct)
            .await?;
    let session = super::bench_session(&runtime, user).await?;
    let (base, server) = spawn_server(&runtime).await?;
    let client = reqwest::Client::new();
    let one_at_a_time = Settings {
        connections: 1,
        ..*s
    };
    let me = Arc::new(vec![(user, big)]);

    // 1. Customer search in the big organization.
    let filter = Arc::new(CustomerFilter {
        q: Some(SEARCH.0.into()),
        statuses: vec![SEARCH.2],
        tags_any: vec![SEARCH.1.into()],
        ..CustomerFilter::all(CustomerSort::Relevance)
    });
    println!(
        "\n## customer search in the big organization: q={:?}, tags_any={}, status={}, by relevance, 50 a page",
        SEARCH.0,
        SEARCH.1,
        SEARCH.2.as_str()
    );
    let mut tx = TenantTx::begin(&runtime, &RequestContext::user(user).in_org(big)).await?;
    let plan: Vec<String> = prefixed_list_query("EXPLAIN (ANALYZE, BUFFERS) ", big, &filter)
        .build_query_scalar()
        .persistent(false)
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    println!(
        "plan as the runtime role (RLS):\n```\n{}\n```",
        plan.join("\n")
    );
    let search_url = format!(
        "{base}/v1/orgs/{big}/customers?q={}&tags_any={}&status={}",
        SEARCH.0,
        SEARCH.1,
        SEARCH.2.as_str()
    );
    let over_http = get_op(client.get(&search_url).bearer_auth(&session));
    let (under_rls, as_owner) = under_rls_and_as_owner(
        &runtime,
        &direct,
        Arc::new(move |conn: &mut PgConnection, org| {
            let filter = filter.clone();
            Box::pin(async move {
                let rows: Vec<Sorted<Customer>> = list_query(org, &filter)
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(conn)
                    .await?;
                expect_some(rows.len())
            })
        }),
    );
    let mut results = compare(
        &one_at_a_time,
        &me,
        vec![
            (
                "GET …/customers?q&tags_any&status (HTTP, auth, RLS)",
                over_http,
            ),
            ("search SQL in a tenant transaction (RLS)", under_rls),
            ("same SQL as owner (RLS off)", as_owner),
        ],
    )
    .await?;
    medians(&mut results);
    report(&mut results);

    // 2. The board of the 5,000-task project.
    println!(
        "\n## board of the {BIG_PROJECT_TASKS}-task project (every column, every card, one query)"
    );
    let board_url = format!("{base}/v1/orgs/{big}/projects/{project}/board");
    let over_http = get_op(client.get(&board_url).bearer_auth(&session));
    let (under_rls, as_owner) = under_rls_and_as_owner(
        &runtime,
        &direct,
        Arc::new(move |conn: &mut PgConnection, org| {
            Box::pin(async move {
                let rows = sqlx::query(BOARD_SQL)
                    .bind(org)
                    .bind(project)
                    .fetch_all(conn)
                    .await?;
                expect_cards(rows.len())
            })
        }),
    );
    let mut results = compare(
        &one_at_a_time,
        &me,
        vec![
            (
                "GET …/projects/{project}/board (HTTP, auth, RLS)",
                over_http,
            ),
            ("board SQL in a tenant transaction (RLS)", under_rls),
            ("same SQL as owner (RLS off)", as_owner),
        ],
    )
    .await?;
    medians(&mut results);
    report(&mut results);

    // 3. The CRM dashboard of the big organization (three grouped counts).
    println!("\n## CRM dashboard of the big organization (customers, projects, tasks counted)");
    let dashboard_url = format!("{base}/v1/orgs/{big}/crm/dashboard");
    let over_http = get_op(client.get(&dashboard_url).bearer_auth(&session));
    let (under_rls, as_owner) = under_rls_and_as_owner(
        &runtime,
        &direct,
        Arc::new(|conn: &mut PgConnection, org| {
            Box::pin(async move {
                let counted = dashboard::store::counts(conn, org, Utc::now()).await?;
                expect_customers(counted.customers.total)
            })
        }),
    );
    let mut results = compare(
        &one_at_a_time,
        &me,
        vec![
            ("GET …/crm/dashboard (HTTP, auth, RLS)", over_http),
            (
                "its three statements in a tenant transaction (RLS)",
                under_rls,
            ),
            ("same statements as owner (RLS off)", as_owner),
        ],
    )
    .await?;
    medians(&mut results);
    report(&mut results);

    // 4. Kanban moves within the big project's `todo` column.
    let todo: Vec<Uuid> = sqlx::query_scalar(
        r"SELECT id FROM tasks WHERE organization_id = $1 AND project_id = $2 AND status = 'todo'
           ORDER BY position, id",
    )
    .bind(big)
    .bind(project)
    .fetch_all(&direct)
    .await?;
    // Pseudo-random (card, the card it goes below) pairs, never a card below itself.
    let mut seed: u64 = 15;
    let mut pairs = Vec::with_capacity(20_000);
    while pairs.len() < 20_000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (a, b) = (
            (seed >> 33) as usize % todo.len(),
            (seed >> 13) as usize % todo.len(),
        );
        if a != b {
            pairs.push((todo[a], todo[b]));
        }
    }
    let pairs = Arc::new(pairs);
    println!(
        "\n## kanban moves in the {}-card todo column of the big project",
        todo.len()
    );
    let written = rows_written(&runtime, &direct, user, big, project, &pairs[..200]).await?;
    println!(
        "rows written by 200 moves of distinct cards: {written} ({:.2} per move)",
        written as f64 / 200.0
    );
    let moves_over_http = op({
        let (client, session, base) = (client.clone(), session.clone(), base.clone());
        move |(card, below): (Uuid, Uuid)| {
            let request = client
                .post(format!(
                    "{base}/v1/orgs/{big}/projects/{project}/tasks/{card}/move"
                ))
                .bearer_auth(&session)
                .json(&serde_json::json!({ "after": below }));
            async move {
                send(request).await?;
                Ok(card)
            }
        }
    });
    let moves_in_tx = op({
        let runtime = runtime.clone();
        move |(card, below): (Uuid, Uuid)| {
            let runtime = runtime.clone();
            async move {
                move_card(&runtime, user, big, project, card, below).await?;
                Ok(card)
            }
        }
    });
    let plain_update = op({
        let direct = direct.clone();
        move |(card, _): (Uuid, Uuid)| {
            let direct = direct.clone();
            async move {
                let mut tx = direct.begin().await?;
                let done = sqlx::query(
                    r"UPDATE tasks SET position = position WHERE organization_id = $1 AND id = $2",
                )
                .bind(big)
                .bind(card)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                if done.rows_affected() != 1 {
                    return Err("the plain update missed its row".into());
                }
                Ok(card)
            }
        }
    });
    let mut results = compare(
        s,
        &pairs,
        vec![
            (
                "POST …/tasks/{task}/move (HTTP, auth, RLS)",
                moves_over_http,
            ),
            ("move in a tenant transaction (RLS)", moves_in_tx),
            (
                "plain single-row UPDATE of the card, direct (owner)",
                plain_update,
            ),
        ],
    )
    .await?;
    report(&mut results);
    let longest: i32 = sqlx::query_scalar(
        r"SELECT max(length(position)) FROM tasks WHERE organization_id = $1 AND project_id = $2",
    )
    .bind(big)
    .bind(project)
    .fetch_one(&direct)
    .await?;
    println!("longest key in the big project afterwards: {longest} characters");

    server.abort();
    runtime.close().await;
    direct.close().await;
    Ok(())
}

async fn move_card(
    runtime: &RuntimePool,
    user: Uuid,
    org: Uuid,
    project: Uuid,
    card: Uuid,
    below: Uuid,
) -> Result<(), AnyError> {
    let mut tx = OrgTx::begin(runtime, &RequestContext::user(user), org).await?;
    let to = Valid::new(Move {
        status: None,
        after: Some(below),
        before: None,
    })?;
    tasks::store::move_task(&mut tx, project, card, &to).await?;
    tx.commit().await?;
    Ok(())
}

/// Rows of the project whose version changed while `pairs` were moved one after another.
async fn rows_written(
    runtime: &RuntimePool,
    direct: &PgPool,
    user: Uuid,
    org: Uuid,
    project: Uuid,
    pairs: &[(Uuid, Uuid)],
) -> Result<usize, AnyError> {
    let versions = || async {
        sqlx::query_as::<_, (Uuid, String)>(
            r"SELECT id, xmin::text FROM tasks WHERE organization_id = $1 AND project_id = $2 ORDER BY id",
        )
        .bind(org)
        .bind(project)
        .fetch_all(direct)
        .await
    };
    let before = versions().await?;
    let mut moved = std::collections::HashSet::new();
    let started = Instant::now();
    for (card, below) in pairs {
        if moved.insert(*card) {
            move_card(runtime, user, org, project, *card, *below).await?;
        }
    }
    let after = versions().await?;
    println!("({} moves in {:.0?})", moved.len(), started.elapsed());
    Ok(before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.1 != a.1)
        .count())
}

fn medians(results: &mut [(&str, super::Stats)]) {
    let all: Vec<String> = results
        .iter_mut()
        .map(|(name, stats)| format!("{name} {:.3}", stats.percentile_ms(0.5)))
        .collect();
    println!("median ms: {}", all.join("; "));
    if let [.., (_, rls), (_, owner)] = results {
        println!(
            "RLS / owner median time: {:.2}",
            rls.percentile_ms(0.5) / owner.percentile_ms(0.5)
        );
    }
}

fn expect_some(rows: usize) -> Result<(), AnyError> {
    if rows == 0 {
        return Err("the search found nothing".into());
    }
    Ok(())
}

fn expect_customers(total: i64) -> Result<(), AnyError> {
    if total != i64::from(BIG_ORG_CUSTOMERS) {
        return Err(
            format!("the dashboard counts {total} customers, not {BIG_ORG_CUSTOMERS}").into(),
        );
    }
    Ok(())
}

fn expect_cards(rows: usize) -> Result<(), AnyError> {
    if rows != BIG_PROJECT_TASKS as usize {
        return Err(format!("the board has {rows} cards, not {BIG_PROJECT_TASKS}").into());
    }
    Ok(())
}

/// Fills the benchmark organizations with customers, projects and tasks, where missing. Loaded
/// as a restore would be: the tables' own triggers off for the load (audit, derived columns),
/// the projects' task weights computed after it in one statement.
async fn build(direct: &PgPool, tenants: &[(Uuid, Uuid)], big: Uuid) -> Result<(), AnyError> {
    let have: bool = sqlx::query_scalar(
        r"SELECT EXISTS (SELECT FROM projects WHERE organization_id = $1 AND name = $2)",
    )
    .bind(big)
    .bind(BIG_PROJECT)
    .fetch_one(direct)
    .await?;
    if have {
        return Ok(());
    }
    println!(
        "giving {} organizations their customers, projects and tasks...",
        tenants.len()
    );
    let started = Instant::now();
    for (i, chunk) in tenants.chunks(BUILD_CHUNK).enumerate() {
        let owners: Vec<Uuid> = chunk.iter().map(|(u, _)| *u).collect();
        let orgs: Vec<Uuid> = chunk.iter().map(|(_, o)| *o).collect();
        let counts: Vec<i32> = orgs
            .iter()
            .map(|o| {
                if *o == big {
                    BIG_ORG_CUSTOMERS
                } else {
                    CUSTOMERS_PER_ORG
                }
            })
            .collect();
        let mut tx = direct.begin().await?;
        sqlx::query(r"ALTER TABLE customers DISABLE TRIGGER USER")
            .execute(&mut *tx)
            .await?;
        sqlx::query(r"ALTER TABLE tasks DISABLE TRIGGER USER")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            r"INSERT INTO customers (organization_id, name, email, company, status, source, tags,
                                    assigned_to, created_at, updated_at)
              SELECT t.org, f.name || ' ' || l.name,
                     lower(f.name || '.' || l.name || '.' || n) || '@example.com',
                     l.name || ' ' || (ARRAY['Labs', 'Systems', 'Group', 'Health', 'Capital', 'Foods', 'Logistics'])[1 + n % 7],
                     (ARRAY['lead', 'prospect', 'active', 'churned'])[1 + (n / 3) % 4],
                     (ARRAY['website', 'referral', 'social', 'email', 'other'])[1 + n % 5],
                     (ARRAY['{vip}', '{vip,partner}', '{newsletter}', '{newsletter,trial}', '{}', '{}', '{}', '{}', '{}', '{}'])[1 + n % 10]::text[],
                     CASE WHEN n % 3 = 0 THEN t.owner END,
                     now() - make_interval(mins => n), now() - make_interval(secs => n)
                FROM unnest($1::uuid[], $2::uuid[], $3::int[]) AS t (org, owner, customers),
                     generate_series(1, t.customers) n,
                     LATERAL (SELECT (ARRAY['Ada', 'Grace', 'Alan', 'Katherine', 'Margaret', 'Edsger', 'Barbara',
                                            'Donald', 'Frances', 'John', 'Radia', 'Tim', 'Linus', 'Guido', 'Anita',
                                            'Dennis', 'Ken', 'Bjarne', 'Sophie', 'Hedy', 'Claude', 'Jean', 'Mary',
                                            'Annie', 'Evelyn'])[1 + (n * 7) % 25] AS name) f,
                     LATERAL (SELECT (ARRAY['Lovelace', 'Hopper', 'Turing', 'Johnson', 'Hamilton', 'Dijkstra',
                                            'Liskov', 'Knuth', 'Allen', 'Backus', 'Perlman', 'Berners', 'Torvalds',
                                            'Rossum', 'Borg', 'Ritchie', 'Thompson', 'Stroustrup', 'Wilson',
                                            'Lamarr', 'Shannon', 'Sammet', 'Keller', 'Easley', 'Boyd', 'Hopkins',
                                            'Bartik', 'Clarke', 'Goldberg', 'Kay', 'Engelbart', 'Wirth', 'Hoare',
                                            'Milner', 'Codd', 'Gray', 'Stonebraker', 'Cerf', 'Kahn', 'Metcalfe',
                                            'Bell', 'Babbage', 'Noyce', 'Moore', 'Kilby', 'Wozniak', 'Jobs',
                                            'Gates', 'Page', 'Brin'])[1 + (n * 13 + n / 50) % 50] AS name) l",
        )
        .bind(&orgs)
        .bind(&owners)
        .bind(&counts)
        .execute(&mut *tx)
        .await?;
        // Ten projects of 200 tasks each; the big organization also a project of 5,000. Cards
        // are spread over the columns, keyed in order within each (fixed width, ending in V).
        sqlx::query(
            r"WITH new_projects AS (
                INSERT INTO projects (organization_id, name, status)
                SELECT t.org, 'Bench project ' || k, 'active'
                  FROM unnest($1::uuid[]) AS t (org), generate_series(1, $3) k
                UNION ALL
                SELECT $4, $5, 'active' WHERE $4 = ANY ($1)
                RETURNING organization_id, id, name)
              INSERT INTO tasks (organization_id, project_id, title, status, priority, assigned_to,
                                 created_by, due_date, estimated_hours, tags, position)
              SELECT p.organization_id, p.id, 'Task ' || j,
                     (ARRAY['todo', 'todo', 'in_progress', 'review', 'done'])[1 + j % 5],
                     (ARRAY['low', 'medium', 'high', 'critical'])[1 + j % 4],
                     CASE WHEN j % 4 = 0 THEN o.owner END, o.owner,
                     now() + make_interval(hours => j), CASE WHEN j % 3 = 0 THEN 1 + j % 8 END,
                     CASE WHEN j % 6 = 0 THEN '{bug}'::text[] ELSE '{}' END,
                     (SELECT string_agg(substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
                                               ((j / power(62, 2 - d)::int) % 62) + 1, 1), '' ORDER BY d)
                        FROM generate_series(0, 2) d) || 'V'
                FROM new_projects p
                JOIN unnest($1::uuid[], $2::uuid[]) AS o (org, owner) ON o.org = p.organization_id,
                     generate_series(1, CASE WHEN p.name = $5 THEN $6 ELSE $7 END) j",
        )
        .bind(&orgs)
        .bind(&owners)
        .bind(PROJECTS_PER_ORG)
        .bind(big)
        .bind(BIG_PROJECT)
        .bind(BIG_PROJECT_TASKS)
        .bind(TASKS_PER_PROJECT)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            r"UPDATE projects p SET task_weight_total = w.total, task_weight_done = w.done
                FROM (SELECT organization_id, project_id,
                             sum(coalesce(estimated_hours, 1)) FILTER (WHERE status <> 'cancelled') AS total,
                             coalesce(sum(coalesce(estimated_hours, 1)) FILTER (WHERE status = 'done'), 0) AS done
                        FROM tasks WHERE organization_id = ANY ($1) GROUP BY 1, 2) w
               WHERE p.organization_id = w.organization_id AND p.id = w.project_id",
        )
        .bind(&orgs)
        .execute(&mut *tx)
        .await?;
        sqlx::query(r"ALTER TABLE customers ENABLE TRIGGER USER")
            .execute(&mut *tx)
            .await?;
        sqlx::query(r"ALTER TABLE tasks ENABLE TRIGGER USER")
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
    sqlx::query(r"VACUUM ANALYZE customers, projects, tasks")
        .execute(direct)
        .await?;
    Ok(())
}
