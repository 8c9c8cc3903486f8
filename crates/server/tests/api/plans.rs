//! The hot reads keep their plan whatever the statistics say: each is EXPLAINed as the runtime
//! role, custom and generic plan alike, on data with heavy skew (one KPI with a million points,
//! one organization with 100 times the others' data) after ANALYZE, and fails when it reads
//! more rows than its answer needs by a wide margin.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::Postgres;
use tenantry_db::{Actor, RequestContext, TenantTx};
use tenantry_server::content::public::PAGE_SQL;
use tenantry_server::crm::appointments::store as appointments_store;
use tenantry_server::crm::customers::store::{prefixed_list_query, CustomerFilter, CustomerSort};
use tenantry_server::crm::customers::CustomerStatus;
use tenantry_server::crm::dashboard::store::{CUSTOMERS_SQL, PROJECTS_SQL, TASKS_SQL};
use tenantry_server::crm::tasks::store::{assigned_sql, BOARD_SQL};
use tenantry_server::fasttrack::{self, Catalog};
use tenantry_server::kernel::org_tx::OrgTx;
use tenantry_server::kpis::store;
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser};

/// A statement parameter, typed for `PREPARE` as well as bound.
#[derive(Clone)]
enum Param {
    Id(Option<Uuid>),
    Flag(bool),
    Count(i64),
    Text(Option<String>),
    Time(Option<DateTime<Utc>>),
    Date(NaiveDate),
    Texts(Vec<String>),
}

impl Param {
    fn sql_type(&self) -> &'static str {
        match self {
            Param::Id(_) => "uuid",
            Param::Flag(_) => "boolean",
            Param::Count(_) => "bigint",
            Param::Text(_) => "text",
            Param::Time(_) => "timestamptz",
            Param::Date(_) => "date",
            Param::Texts(_) => "text[]",
        }
    }

    /// The value as a SQL literal (for `EXECUTE`, which takes no bound parameters in EXPLAIN).
    fn literal(&self) -> String {
        let quoted = |text: Option<String>| match text {
            Some(text) => format!("'{text}'::{}", self.sql_type()),
            None => format!("NULL::{}", self.sql_type()),
        };
        match self {
            Param::Id(v) => quoted(v.map(|v| v.to_string())),
            Param::Flag(v) => v.to_string(),
            Param::Count(v) => v.to_string(),
            Param::Text(v) => quoted(v.as_ref().map(|v| v.replace('\'', "''"))),
            Param::Time(v) => quoted(v.map(|v| v.to_rfc3339())),
            Param::Date(v) => quoted(Some(v.to_string())),
            Param::Texts(v) => {
                let items: Vec<String> = v
                    .iter()
                    .map(|t| format!("'{}'", t.replace('\'', "''")))
                    .collect();
                format!("ARRAY[{}]::text[]", items.join(", "))
            }
        }
    }

    fn bind<'q>(self, query: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        match self {
            Param::Id(v) => query.bind(v),
            Param::Flag(v) => query.bind(v),
            Param::Count(v) => query.bind(v),
            Param::Text(v) => query.bind(v),
            Param::Time(v) => query.bind(v),
            Param::Date(v) => query.bind(v),
            Param::Texts(v) => query.bind(v),
        }
    }
}

/// Rows the plan's scans read (returned by them, or removed by their filters and rechecks),
/// over all loops. A bitmap heap scan's rows were counted as its index scans' entries (all of
/// them: a BitmapAnd of two indexes reads both).
fn rows_read(plan: &Value) -> f64 {
    let n = |key: &str| plan[key].as_f64().unwrap_or(0.0);
    let removed = n("Rows Removed by Filter") + n("Rows Removed by Index Recheck");
    let own = match plan["Node Type"].as_str().unwrap_or_default() {
        "Seq Scan" | "Index Scan" | "Index Only Scan" | "Bitmap Index Scan" => {
            (n("Actual Rows") + removed) * n("Actual Loops")
        }
        "Bitmap Heap Scan" => removed * n("Actual Loops"),
        _ => 0.0,
    };
    own + plan["Plans"]
        .as_array()
        .map(|children| children.iter().map(rows_read).sum())
        .unwrap_or(0.0)
}

/// EXPLAIN ANALYZE of `statement` with `params`, as JSON.
async fn explain(tx: &mut TenantTx, statement: &str, params: &[Param]) -> Value {
    let text = format!("EXPLAIN (ANALYZE, FORMAT JSON) {statement}");
    let mut query = sqlx::query(&text);
    for p in params {
        query = p.clone().bind(query);
    }
    let row = query.fetch_one(tx.conn()).await.expect("explain");
    let plan: Value = sqlx::Row::get(&row, 0);
    plan[0]["Plan"].clone()
}

/// Which plans a statement runs with: a prepared one the custom plans of its first runs, then
/// (mostly) the generic plan; one planned per run (`persistent(false)`) only custom plans.
#[derive(PartialEq)]
enum Prepared {
    Kept,
    PerRun,
}

/// The custom plan of `sql` (parameters known) and, for a kept statement, its generic plan.
async fn plans(
    tx: &mut TenantTx,
    sql: &str,
    params: &[Param],
    prepared: Prepared,
) -> Vec<(&'static str, Value)> {
    let custom = explain(tx, sql, params).await;
    if prepared == Prepared::PerRun {
        return vec![("custom", custom)];
    }
    let types: Vec<&str> = params.iter().map(Param::sql_type).collect();
    let literals: Vec<String> = params.iter().map(Param::literal).collect();
    sqlx::raw_sql(&format!(
        "PREPARE hot ({}) AS {sql}; SET LOCAL plan_cache_mode = force_generic_plan",
        types.join(", ")
    ))
    .execute(tx.conn())
    .await
    .expect("prepare");
    let generic = explain(tx, &format!("EXECUTE hot ({})", literals.join(", ")), &[]).await;
    sqlx::raw_sql("DEALLOCATE hot; SET LOCAL plan_cache_mode = auto")
        .execute(tx.conn())
        .await
        .expect("deallocate");
    vec![("custom", custom), ("generic", generic)]
}

/// Asserts every plan `sql` runs with reads at most `most` rows.
async fn assert_reads_at_most(
    tx: &mut TenantTx,
    what: &str,
    (sql, prepared): (&str, Prepared),
    params: &[Param],
    most: f64,
) {
    for (kind, plan) in plans(tx, sql, params, prepared).await {
        // A plan that answers nothing (a policy hiding the data) would pass for the wrong reason.
        assert!(
            plan["Actual Rows"].as_f64().unwrap_or(0.0) > 0.0,
            "{what} ({kind} plan) answered no rows:\n{plan:#}"
        );
        let read = rows_read(&plan);
        assert!(
            read <= most,
            "{what} ({kind} plan) read {read} rows, more than {most}:\n{plan:#}"
        );
    }
}

/// Runs `sql` as the owner, then what autovacuum would do next: statistics of the skewed data,
/// dead versions gone.
async fn bulk_load(owner: &tenantry_db::OwnerPool, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(&owner.0)
        .await
        .expect("bulk load");
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&owner.0)
        .await
        .expect("vacuum analyze");
}

/// `n` other organizations, named `Org 1`…, created as their owner would (the database makes
/// the creator their owner).
/// A service with a big organization among 300 filler ones, and the owner role (to load data).
async fn big_among_fillers() -> (TestApp, TestUser, tenantry_db::OwnerPool) {
    let app = TestApp::spawn().await;
    let big = app.user("big@example.com").await;
    filler_organizations(&app, 300).await;
    let owner = app.db.owner().await;
    (app, big, owner)
}

async fn filler_organizations(app: &TestApp, n: i32) {
    let filler = app.user("filler@example.com").await;
    let mut tx = tenantry_db::TenantTx::begin(&app.db.runtime, &RequestContext::user(filler.id))
        .await
        .expect("begin");
    sqlx::query(
        r"INSERT INTO organizations (id, name, slug)
          SELECT app.uuid_v7(), 'Org ' || g, 'org-' || g FROM generate_series(1, $1) g",
    )
    .bind(n)
    .execute(tx.conn())
    .await
    .expect("organizations");
    tx.commit().await.expect("commit");
}

/// The data: `big` has 50 KPIs of 1,000 daily points (100 times each of 300 other
/// organizations' 5 KPIs of 100 points); `whale` has one KPI with a million points a minute
/// apart (and four small ones). Returns (big's first KPI, the whale KPI).
async fn skewed_data(app: &TestApp, big: &TestUser, whale: &TestUser) -> (Uuid, Uuid) {
    filler_organizations(app, 300).await;
    let owner = app.db.owner().await;
    bulk_load(
        &owner,
        &format!(
            r"INSERT INTO kpis (id, organization_id, name)
          SELECT app.uuid_v7(), o.id, 'KPI ' || g FROM organizations o, generate_series(1, 5) g
           WHERE o.id <> '{big}';
          INSERT INTO kpis (id, organization_id, name)
          SELECT app.uuid_v7(), '{big}', 'KPI ' || g FROM generate_series(1, 50) g;
          INSERT INTO kpi_data_points (organization_id, kpi_id, value, observed_at, source)
          SELECT k.organization_id, k.id, g, now() - make_interval(days => g), 'manual'
            FROM kpis k, generate_series(1, 100) g WHERE k.organization_id <> '{big}';
          INSERT INTO kpi_data_points (organization_id, kpi_id, value, observed_at, source)
          SELECT k.organization_id, k.id, g, now() - make_interval(days => g), 'manual'
            FROM kpis k, generate_series(1, 1000) g WHERE k.organization_id = '{big}';
          INSERT INTO kpi_data_points (organization_id, kpi_id, value, observed_at, source)
          SELECT k.organization_id, k.id, g, now() - make_interval(mins => g), 'sync'
            FROM (SELECT * FROM kpis WHERE organization_id = '{whale}' ORDER BY id LIMIT 1) k,
                 generate_series(1, 1000000) g",
            big = big.org,
            whale = whale.org,
        ),
    )
    .await;
    let first = |org: Uuid| {
        let owner = owner.0.clone();
        async move {
            sqlx::query_scalar::<_, Uuid>(
                "SELECT id FROM kpis WHERE organization_id = $1 ORDER BY id LIMIT 1",
            )
            .bind(org)
            .fetch_one(&owner)
            .await
            .expect("kpi")
        }
    };
    (first(big.org).await, first(whale.org).await)
}

#[tokio::test]
async fn kpi_reads_read_what_they_return_under_heavy_skew() {
    let app = TestApp::spawn().await;
    let big = app.user("big@example.com").await;
    let whale = app.user("whale@example.com").await;
    let (big_kpi, whale_kpi) = skewed_data(&app, &big, &whale).await;
    let now = Utc::now();

    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(big.id), big.org)
        .await
        .expect("begin");
    let get = [
        Param::Id(Some(big.org)),
        Param::Id(Some(big_kpi)),
        Param::Flag(false),
    ];
    // One KPI and the three points that give its 7/30/90-day change.
    assert_reads_at_most(
        &mut tx,
        "KPI read",
        (store::get_sql(), Prepared::Kept),
        &get,
        8.0,
    )
    .await;
    // A page of 20 KPIs (21 fetched), each with its three points. Sorting the organization's
    // 50 KPIs to pick the page is fair (the planner knows how many a large organization has);
    // reading points of KPIs off the page is not.
    let list = [
        Param::Id(Some(big.org)),
        Param::Id(Some(Uuid::nil())),
        Param::Flag(false),
        Param::Count(21),
    ];
    let needed = 50.0 + 21.0 * 3.0;
    assert_reads_at_most(
        &mut tx,
        "KPI list",
        (store::list_sql(), Prepared::Kept),
        &list,
        1.5 * needed,
    )
    .await;
    // 50 KPIs, each with its 30-day-old point and 30 sparkline points.
    let dashboard = [Param::Id(Some(big.org))];
    assert_reads_at_most(
        &mut tx,
        "dashboard",
        (store::DASHBOARD_SQL, Prepared::Kept),
        &dashboard,
        2.0 * 50.0 * 32.0,
    )
    .await;
    // Every daily point of a KPI, in daily buckets: 1,000 read for 1,000 answered.
    let series_all = [
        Param::Id(Some(big.org)),
        Param::Id(Some(big_kpi)),
        Param::Text(Some("day".into())),
        Param::Text(Some("last".into())),
        Param::Text(Some("UTC".into())),
        Param::Time(None),
        Param::Time(None),
        Param::Count(5000),
    ];
    assert_reads_at_most(
        &mut tx,
        "series",
        (store::SERIES_SQL, Prepared::PerRun),
        &series_all,
        1.1 * 1000.0,
    )
    .await;
    tx.commit().await.expect("commit");

    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(whale.id), whale.org)
        .await
        .expect("begin");
    let dashboard = [Param::Id(Some(whale.org))];
    assert_reads_at_most(
        &mut tx,
        "whale dashboard",
        (store::DASHBOARD_SQL, Prepared::Kept),
        &dashboard,
        2.0 * 5.0 * 32.0,
    )
    .await;
    let get = [
        Param::Id(Some(whale.org)),
        Param::Id(Some(whale_kpi)),
        Param::Flag(false),
    ];
    assert_reads_at_most(
        &mut tx,
        "whale KPI read",
        (store::get_sql(), Prepared::Kept),
        &get,
        8.0,
    )
    .await;
    // Pages of 50 (51 fetched) of the million points: the newest, one deep in the history, and
    // one inside a day's window.
    let deep: (DateTime<Utc>, String) = sqlx::query_as(
        "SELECT observed_at, source FROM kpi_data_points WHERE organization_id = $1
          AND kpi_id = $2 AND observed_at < now() - interval '300 days'
          ORDER BY observed_at DESC LIMIT 1",
    )
    .bind(whale.org)
    .bind(whale_kpi)
    .fetch_one(tx.conn())
    .await
    .expect("deep point");
    for (what, since, until, cursor) in [
        ("newest points", None, None, None),
        ("points deep in history", None, None, Some(deep)),
        (
            "points of one day",
            Some(now - Duration::days(200)),
            Some(now - Duration::days(199)),
            None,
        ),
    ] {
        let (cursor_at, cursor_source) = cursor.unzip();
        let points = [
            Param::Id(Some(whale.org)),
            Param::Id(Some(whale_kpi)),
            Param::Time(since),
            Param::Time(until),
            Param::Time(cursor_at),
            Param::Text(cursor_source),
            Param::Count(51),
        ];
        assert_reads_at_most(
            &mut tx,
            what,
            (store::POINTS_SQL, Prepared::PerRun),
            &points,
            2.0 * 51.0,
        )
        .await;
    }
    // A month of minutes in daily buckets reads that month's points and no others.
    let in_month: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM kpi_data_points WHERE organization_id = $1 AND kpi_id = $2
          AND observed_at >= now() - interval '30 days'",
    )
    .bind(whale.org)
    .bind(whale_kpi)
    .fetch_one(tx.conn())
    .await
    .expect("count");
    let series_month = [
        Param::Id(Some(whale.org)),
        Param::Id(Some(whale_kpi)),
        Param::Text(Some("day".into())),
        Param::Text(Some("avg".into())),
        Param::Text(Some("UTC".into())),
        Param::Time(Some(now - Duration::days(30))),
        Param::Time(None),
        Param::Count(5000),
    ];
    assert_reads_at_most(
        &mut tx,
        "series of a month",
        (store::SERIES_SQL, Prepared::PerRun),
        &series_month,
        1.1 * in_month as f64,
    )
    .await;
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn fast_track_listings_read_the_callers_entries_not_the_organizations() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let filler = app.user("filler@example.com").await;
    let catalog = Catalog::shipped().expect("catalog");
    let tool = catalog.get("woop").expect("woop");
    // 50,000 entries of one member and 30 of alice in alice's organization; 10 submitted.
    // Written as the owner's archival writes (no history, no progress per row: a bulk load).
    let owner = app.db.owner().await;
    bulk_load(
        &owner,
        &format!(
        r"BEGIN;
          SET LOCAL app.archiving = 'on';
          INSERT INTO {schema}.tool_data (organization_id, user_id, status, completed_at, submitted_at)
          SELECT '{org}', '{filler}', 'draft', NULL, NULL FROM generate_series(1, 50000);
          INSERT INTO {schema}.tool_data (organization_id, user_id, status, completed_at, submitted_at)
          SELECT '{org}', '{alice}', 'in_progress', NULL, NULL FROM generate_series(1, 30);
          INSERT INTO {schema}.tool_data (organization_id, user_id, status, completed_at, submitted_at)
          SELECT '{org}', '{filler}', 'submitted', now(), now() FROM generate_series(1, 10);
          COMMIT;",
        schema = tool.schema_name,
        org = alice.org,
        filler = filler.id,
        alice = alice.id,
    ))
    .await;

    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(alice.id), alice.org)
        .await
        .expect("begin");
    let every_status: Vec<String> = fasttrack::Status::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    let page = |statuses: Vec<String>, whose: Option<Uuid>| {
        let mut params = vec![
            Param::Id(Some(alice.org)),
            Param::Texts(statuses),
            Param::Id(Some(Uuid::nil())),
            Param::Count(21),
        ];
        params.extend(whose.map(|user| Param::Id(Some(user))));
        params
    };
    // Alice's 30 entries are read (and sorted) for her page, not the organization's 50,000.
    assert_reads_at_most(
        &mut tx,
        "my entries of a tool",
        (&fasttrack::store::list_sql(tool, false), Prepared::PerRun),
        &page(every_status.clone(), Some(alice.id)),
        2.0 * 30.0,
    )
    .await;
    assert_reads_at_most(
        &mut tx,
        "everyone's entries of a tool",
        (&fasttrack::store::list_sql(tool, true), Prepared::PerRun),
        &page(every_status, None),
        2.0 * 21.0,
    )
    .await;
    assert_reads_at_most(
        &mut tx,
        "everyone's submitted entries",
        (&fasttrack::store::list_sql(tool, true), Prepared::PerRun),
        &page(vec!["submitted".into()], None),
        2.0 * 10.0,
    )
    .await;
    assert_reads_at_most(
        &mut tx,
        "my entries across tools",
        (&catalog.my_entries_sql(), Prepared::PerRun),
        &[
            Param::Id(Some(alice.org)),
            Param::Count(20),
            Param::Id(Some(alice.id)),
        ],
        2.0 * 30.0,
    )
    .await;
    tx.commit().await.expect("commit");
}

/// A customer list's plan as the service runs it (planned for its values), checked like the
/// others.
async fn assert_list_reads_at_most(tx: &mut OrgTx, what: &str, filter: &CustomerFilter, most: f64) {
    let org = tx.org();
    let plan: Value = prefixed_list_query("EXPLAIN (ANALYZE, FORMAT JSON) ", org, filter)
        .build_query_scalar()
        .persistent(false)
        .fetch_one(tx.conn())
        .await
        .expect("explain");
    let plan = plan[0]["Plan"].clone();
    assert!(
        plan["Actual Rows"].as_f64().unwrap_or(0.0) > 0.0,
        "{what} answered no rows:\n{plan:#}"
    );
    let read = rows_read(&plan);
    assert!(
        read <= most,
        "{what} read {read} rows, more than {most}:\n{plan:#}"
    );
}

#[tokio::test]
async fn crm_reads_read_what_they_return_under_heavy_skew() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    // 200 other organizations with 200 customers and a 200-task project each; alice's has 100
    // times the customers (20,000) and a 2,000-task project. (With fewer tasks in all, reading
    // the whole table is rightly the cheaper plan for the board.)
    filler_organizations(&app, 200).await;
    let owner = app.db.owner().await;
    let key = r"(SELECT string_agg(substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
                 ((g / power(62, 2 - d)::int) % 62) + 1, 1), '' ORDER BY d) FROM generate_series(0, 2) d) || 'V'";
    bulk_load(
        &owner,
        &format!(
            r"INSERT INTO customers (organization_id, name, email, company, status, tags)
              SELECT o.id, 'Customer ' || g, 'c' || g || '@example.com',
                     CASE WHEN (o.id = '{big}' AND g % 500 = 0) OR (o.id <> '{big}' AND g % 5 = 0)
                          THEN 'Zephyr Logistics' ELSE 'Company ' || g % 50 END,
                     (ARRAY['lead', 'prospect', 'active', 'churned'])[1 + g % 4],
                     CASE WHEN (o.id = '{big}' AND g % 1000 = 0) OR (o.id <> '{big}' AND g % 20 = 0)
                          THEN '{{rare,vip}}'::text[]
                          WHEN g % 10 = 0 THEN '{{vip}}' ELSE '{{}}' END
                FROM organizations o, generate_series(1, CASE WHEN o.id = '{big}' THEN 20000 ELSE 200 END) g
               WHERE o.id = '{big}' OR o.name LIKE 'Org %';
              INSERT INTO projects (organization_id, name)
              SELECT o.id, 'Project' FROM organizations o WHERE o.id = '{big}' OR o.name LIKE 'Org %';
              INSERT INTO tasks (organization_id, project_id, title, status, position, assigned_to)
              SELECT p.organization_id, p.id, 'Task ' || g,
                     (ARRAY['todo', 'in_progress', 'review', 'done', 'cancelled'])[1 + g % 5], {key},
                     CASE WHEN p.organization_id = '{big}' AND g % 100 = 0 THEN '{alice}'::uuid END
                FROM projects p, generate_series(1, CASE WHEN p.organization_id = '{big}' THEN 2000 ELSE 200 END) g",
            big = alice.org,
            alice = alice.id,
        ),
    )
    .await;
    let project: Uuid = sqlx::query_scalar("SELECT id FROM projects WHERE organization_id = $1")
        .bind(alice.org)
        .fetch_one(&owner.0)
        .await
        .expect("project");

    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(alice.id), alice.org)
        .await
        .expect("begin");
    assert_reads_at_most(
        &mut tx,
        "the board",
        (BOARD_SQL, Prepared::Kept),
        &[Param::Id(Some(alice.org)), Param::Id(Some(project))],
        1.1 * 2000.0,
    )
    .await;
    let page = |sort, statuses: Vec<CustomerStatus>| CustomerFilter {
        statuses,
        ..CustomerFilter::all(sort)
    };
    for sort in [
        CustomerSort::Name,
        CustomerSort::CreatedDesc,
        CustomerSort::UpdatedDesc,
    ] {
        assert_list_reads_at_most(
            &mut tx,
            &format!("customers by {}", sort.as_str()),
            &page(sort, vec![]),
            2.0 * 51.0,
        )
        .await;
    }
    // A quarter are active: a page of them is read through the name order, not the 20,000.
    assert_list_reads_at_most(
        &mut tx,
        "active customers by name",
        &page(CustomerSort::Name, vec![CustomerStatus::Active]),
        4.0 * 2.0 * 51.0,
    )
    .await;
    // 40 of the 20,000 work at Zephyr (and 40 in each other organization); 20 carry the rare
    // tag, which one in twenty of the other organizations' customers carry (so the statistics
    // call it common). Each is read through the index that starts with the organization, not
    // by walking the organization's customers in the sort's order.
    let search = |q: &str| CustomerFilter {
        q: Some(q.into()),
        ..CustomerFilter::all(CustomerSort::Relevance)
    };
    let by_name = CustomerFilter::all(CustomerSort::Name);
    for (what, filter, matches) in [
        ("a search", search("zephyr"), 40.0),
        ("a misspelled search", search("zefyr logistic"), 40.0),
        (
            "customers with a rare tag by name",
            CustomerFilter {
                tags_any: vec!["rare".into()],
                ..by_name.clone()
            },
            20.0,
        ),
        (
            "customers with all of a rare tag's tags",
            CustomerFilter {
                tags_all: vec!["rare".into(), "vip".into()],
                ..by_name.clone()
            },
            20.0,
        ),
    ] {
        assert_list_reads_at_most(&mut tx, what, &filter, 2.0 * matches).await;
    }
    // The dashboard counts every customer, project and task of the organization: it reads
    // those (20,000, 1 and 2,000), not the other organizations' (40,000, 200 and 40,000).
    let now = Utc::now();
    for (what, sql, since, most) in [
        (
            "dashboard customers",
            CUSTOMERS_SQL,
            Param::Time(Some(now)),
            20_000.0,
        ),
        (
            "dashboard projects",
            PROJECTS_SQL,
            Param::Date(now.date_naive()),
            1.0,
        ),
        (
            "dashboard tasks",
            TASKS_SQL,
            Param::Time(Some(now)),
            2_000.0,
        ),
    ] {
        assert_reads_at_most(
            &mut tx,
            what,
            (sql, Prepared::Kept),
            &[Param::Id(Some(alice.org)), since],
            1.1 * most,
        )
        .await;
    }
    // 20 open tasks of 2,000 are alice's.
    assert_reads_at_most(
        &mut tx,
        "my tasks",
        (&assigned_sql(), Prepared::PerRun),
        &[
            Param::Id(Some(alice.org)),
            Param::Id(None),
            Param::Texts(vec!["todo".into(), "in_progress".into(), "review".into()]),
            Param::Text(None),
            Param::Id(None),
            Param::Count(51),
        ],
        2.0 * 20.0,
    )
    .await;
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn a_calendar_reads_its_range_under_heavy_skew() {
    let (app, big, owner) = big_among_fillers().await;
    // 100 past appointments in each of 300 organizations; 10,000 hourly ones, past and coming,
    // in the big one (100×).
    bulk_load(
        &owner,
        &format!(
            r"INSERT INTO appointments (organization_id, assigned_to, title, start_time, end_time)
              SELECT m.organization_id, m.user_id, 'Past', now() - make_interval(days => g),
                     now() - make_interval(days => g) + interval '45 minutes'
                FROM organization_members m JOIN organizations o ON o.id = m.organization_id,
                     generate_series(1, 100) g
               WHERE o.name LIKE 'Org %' AND m.role = 'owner';
              INSERT INTO appointments (organization_id, assigned_to, title, start_time, end_time)
              SELECT '{org}', '{user}', 'Busy', now() + make_interval(hours => g - 5000),
                     now() + make_interval(hours => g - 5000) + interval '45 minutes'
                FROM generate_series(1, 10000) g",
            org = big.org,
            user = big.id,
        ),
    )
    .await;
    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(big.id), big.org)
        .await
        .expect("begin");
    let from = Utc::now();
    let week = from + Duration::days(7);
    // A week holds 168 of them; a page is 50 (51 fetched). The B-tree on the start this replaced
    // read the 744 starting in the 31 days before the week as well.
    for (what, member) in [
        ("the organization's week", None),
        ("a member's week", Some(big.id)),
    ] {
        assert_reads_at_most(
            &mut tx,
            what,
            (&appointments_store::list_sql(), Prepared::PerRun),
            &[
                Param::Id(Some(big.org)),
                Param::Time(Some(from)),
                Param::Time(Some(week)),
                Param::Id(member),
                Param::Id(None),
                Param::Texts(vec![]),
                Param::Id(None),
                Param::Count(51),
            ],
            400.0,
        )
        .await;
    }
}

#[tokio::test]
async fn a_public_page_is_read_by_its_index_under_heavy_skew() {
    let (app, big, owner) = big_among_fillers().await;
    // 20 pages (a quarter drafts) in each of 300 organizations, 2,000 in the big one (100×).
    bulk_load(
        &owner,
        &format!(
            r"INSERT INTO content (organization_id, title, slug, status)
              SELECT o.id, 'Page ' || g, 'page-' || g, CASE WHEN g % 4 = 0 THEN 'draft' ELSE 'published' END
                FROM organizations o, generate_series(1, 20) g WHERE o.name LIKE 'Org %';
              INSERT INTO content (organization_id, title, slug, status)
              SELECT '{org}', 'Page ' || g, 'page-' || g, CASE WHEN g % 4 = 0 THEN 'draft' ELSE 'published' END
                FROM generate_series(1, 2000) g",
            org = big.org,
        ),
    )
    .await;
    let slug: String = sqlx::query_scalar("SELECT slug FROM organizations WHERE id = $1")
        .bind(big.org)
        .fetch_one(&owner.0)
        .await
        .expect("slug");
    let reader = RequestContext {
        actor: Actor::PublicReader(slug),
        ..RequestContext::default()
    };
    let mut tx = TenantTx::begin(&app.db.runtime, &reader)
        .await
        .expect("begin");
    // The organization comes from the policy, as the index condition: one row read, in the big
    // organization as in any other, with the parameter known or not.
    assert_reads_at_most(
        &mut tx,
        "a public page",
        (PAGE_SQL, Prepared::Kept),
        &[Param::Text(Some("page-1999".into()))],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn integration_reads_read_what_they_return_under_heavy_skew() {
    let (app, big, owner) = big_among_fillers().await;
    // `big` has 300 integrations (100 times each of the others' 3), one of them with 50,000
    // runs; five integrations in all are due, the rest an hour away.
    bulk_load(
        &owner,
        &format!(
            r"UPDATE plans SET limits = limits - 'integrations' WHERE is_default;
              INSERT INTO integrations (id, organization_id, provider, name, next_sync_at)
              SELECT app.uuid_v7(), o.id, 'stripe', 'Stripe ' || g, now() + interval '1 hour'
                FROM organizations o,
                     generate_series(1, CASE WHEN o.id = '{big}' THEN 300 ELSE 3 END) g;
              INSERT INTO integration_secrets (organization_id, integration_id, sealed, key_id, hint)
              SELECT organization_id, id, decode(repeat('ab', 64), 'hex'), 'k1', 'api_key'
                FROM integrations;
              UPDATE integrations SET next_sync_at = now() - interval '1 minute'
               WHERE id IN (SELECT id FROM integrations ORDER BY id DESC LIMIT 5);
              INSERT INTO integration_syncs (organization_id, integration_id, trigger, status, started_at)
              SELECT i.organization_id, i.id, 'schedule', 'success', now() - make_interval(mins => g)
                FROM (SELECT * FROM integrations WHERE organization_id = '{big}' ORDER BY id LIMIT 1) i,
                     generate_series(1, 50000) g",
            big = big.org
        ),
    )
    .await;
    let busy: Uuid = sqlx::query_scalar(
        "SELECT integration_id FROM integration_syncs GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )
    .fetch_one(&owner.0)
    .await
    .expect("busy");

    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(big.id), big.org)
        .await
        .expect("begin");
    // A page of 20 (21 fetched), each with its secret's hint and its plan check.
    let list_sql = tenantry_server::integrations::store::list_sql();
    let list = [
        Param::Id(Some(big.org)),
        Param::Id(Some(Uuid::nil())),
        Param::Count(21),
    ];
    assert_reads_at_most(
        &mut tx,
        "integration list",
        (&list_sql, Prepared::Kept),
        &list,
        1.5 * 42.0,
    )
    .await;
    // The newest 20 of 50,000 runs.
    let syncs = [
        Param::Id(Some(big.org)),
        Param::Id(Some(busy)),
        Param::Id(Some(Uuid::max())),
        Param::Count(21),
    ];
    assert_reads_at_most(
        &mut tx,
        "sync log",
        (
            tenantry_server::integrations::store::SYNCS_SQL,
            Prepared::Kept,
        ),
        &syncs,
        1.5 * 21.0,
    )
    .await;
    tx.commit().await.expect("commit");

    // The dispatcher, as the owner, every minute: the due five, not the 1,200 waiting.
    let mut tx = owner.0.begin().await.expect("begin");
    let row = sqlx::query(&format!(
        "EXPLAIN (ANALYZE, FORMAT JSON) {}",
        tenantry_server::integrations::sync::DUE_SQL
    ))
    .bind(500_i64)
    .fetch_one(&mut *tx)
    .await
    .expect("explain");
    let plan: Value = sqlx::Row::get(&row, 0);
    let plan = &plan[0]["Plan"];
    assert_eq!(plan["Actual Rows"].as_f64(), Some(5.0), "{plan:#}");
    let read = rows_read(plan);
    assert!(
        read <= 5.0 * 6.0,
        "the dispatcher read {read} rows:\n{plan:#}"
    );
    tx.rollback().await.expect("rollback");
}

#[tokio::test]
async fn my_conversations_read_what_they_return_under_heavy_skew() {
    let (app, big, owner) = big_among_fillers().await;
    // `big`'s owner has 10,000 conversations among 300 organizations with 10 each (by their
    // owner), and 20,000 messages in one of them.
    bulk_load(
        &owner,
        &format!(
            r"INSERT INTO ai_conversations (id, organization_id, user_id, title)
              SELECT app.uuid_v7(), o.id, m.user_id, 'Chat ' || g
                FROM organizations o JOIN organization_members m ON m.organization_id = o.id AND m.role = 'owner',
                     generate_series(1, CASE WHEN o.id = '{big}' THEN 10000 ELSE 10 END) g;
              INSERT INTO ai_messages (organization_id, conversation_id, user_id, role, content)
              SELECT c.organization_id, c.id, c.user_id, CASE WHEN g % 2 = 0 THEN 'user' ELSE 'assistant' END, 'turn ' || g
                FROM (SELECT * FROM ai_conversations WHERE organization_id = '{big}' ORDER BY id LIMIT 1) c,
                     generate_series(1, 20000) g",
            big = big.org
        ),
    )
    .await;
    let busy: Uuid = sqlx::query_scalar(
        "SELECT conversation_id FROM ai_messages GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )
    .fetch_one(&owner.0)
    .await
    .expect("busy");
    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(big.id), big.org)
        .await
        .expect("begin");
    // The newest 20 (21 fetched) of 10,000.
    let mine = [
        Param::Id(Some(big.org)),
        Param::Id(Some(big.id)),
        Param::Flag(false),
        Param::Id(Some(Uuid::max())),
        Param::Count(21),
    ];
    assert_reads_at_most(
        &mut tx,
        "my conversations",
        (tenantry_server::ai::store::MINE_SQL, Prepared::Kept),
        &mine,
        1.5 * 21.0,
    )
    .await;
    // The first 50 (51 fetched) of 20,000 turns.
    let messages = [
        Param::Id(Some(big.org)),
        Param::Id(Some(busy)),
        Param::Id(Some(Uuid::nil())),
        Param::Count(51),
    ];
    assert_reads_at_most(
        &mut tx,
        "a conversation's messages",
        (tenantry_server::ai::store::MESSAGES_SQL, Prepared::Kept),
        &messages,
        1.5 * 51.0,
    )
    .await;
    // A turn's start in that conversation: it, the tool and the latest 40 of its 20,000 turns
    // (with a tool not in the catalog, so that nothing is written).
    let turn = [
        Param::Id(Some(big.org)),
        Param::Id(Some(busy)),
        Param::Text(Some("no such tool".into())),
        Param::Count(tenantry_server::ai::store::HISTORY_TURNS),
        Param::Count(tenantry_server::ai::store::HISTORY_BYTES),
        Param::Id(Some(Uuid::now_v7())),
        Param::Text(Some("Hello".into())),
        Param::Id(None),
        Param::Count(2000),
        Param::Count(8),
        Param::Count(8),
        Param::Count(8000),
    ];
    assert_reads_at_most(
        &mut tx,
        "a turn's start",
        (tenantry_server::ai::store::START_TURN_SQL, Prepared::Kept),
        &turn,
        1.5 * (2.0 + 40.0),
    )
    .await;
}

#[tokio::test]
async fn the_activity_feed_reads_a_page_whatever_the_trail_holds() {
    let (app, big, owner) = big_among_fillers().await;
    // Thirteen months of the trail: 100,000 events of big's, 30 of each of 300 other
    // organizations', spread over the months (each in its month's partition).
    bulk_load(
        &owner,
        &format!(
            r"SELECT audit.ensure_partitions(12, now() - interval '12 months');
              INSERT INTO audit.events (occurred_at, organization_id, action, entity_type, entity_id)
              SELECT now() - make_interval(mins => g * 5), '{big}', 'update', 'kpis', gen_random_uuid()
                FROM generate_series(1, 100000) g;
              INSERT INTO audit.events (occurred_at, organization_id, action, entity_type, entity_id)
              SELECT now() - make_interval(days => g * 11), o.id, 'update', 'kpis', gen_random_uuid()
                FROM organizations o, generate_series(1, 30) g WHERE o.id <> '{big}'",
            big = big.org
        ),
    )
    .await;
    let months: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit.events'::regclass",
    )
    .fetch_one(&owner.0)
    .await
    .expect("months");
    assert!(
        months >= 25,
        "the past year, the year ahead and the default: {months}"
    );

    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(big.id), big.org)
        .await
        .expect("begin");
    let page = |org: Uuid, entity_type: Option<&str>| {
        vec![
            Param::Id(Some(org)),
            Param::Id(None),
            Param::Id(None),
            Param::Id(None),
            Param::Text(entity_type.map(str::to_string)),
            Param::Id(None),
            Param::Text(None),
            Param::Time(None),
            Param::Time(None),
            Param::Count(51),
        ]
    };
    // A page of 51 (and at most a row more from each month), not 100,000 sorted.
    assert_reads_at_most(
        &mut tx,
        "the activity feed",
        (tenantry_server::audit::store::FEED_SQL, Prepared::Kept),
        &page(big.org, None),
        2.0 * 51.0 + months as f64,
    )
    .await;
    assert_reads_at_most(
        &mut tx,
        "the activity feed of one kind of record",
        (tenantry_server::audit::store::FEED_SQL, Prepared::Kept),
        &page(big.org, Some("kpis")),
        2.0 * 51.0 + months as f64,
    )
    .await;
    tx.commit().await.expect("commit");
}
