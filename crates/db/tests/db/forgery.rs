//! The request context from the attacker's side: SQL run as the runtime role — as an injection
//! anywhere in the service would run — tries to make up, copy or replay an identity. Every
//! attempt must see no row and change none, in every table the runtime role can read (taken from
//! the catalog, so tables added later are covered).

use sqlx::{Connection, PgConnection};
use tenantry_db::cluster::Role;
use tenantry_db::testing::TestDb;
use tenantry_db::{RequestContext, TenantTx};
use uuid::Uuid;

use crate::support::{add_member, org, user};

/// Every setting app.begin_request binds, in its order.
const SETTINGS: [&str; 11] = [
    "app.user_id",
    "app.session_id",
    "app.api_key_id",
    "app.org_id",
    "app.org_role",
    "app.service",
    "app.ip",
    "app.user_agent",
    "app.request_id",
    "app.calendar_of",
    "app.context_mac",
];

const ALICE_SESSION: [u8; 32] = [7; 32];
const BOB_SESSION: [u8; 32] = [8; 32];
const EXPIRED_SESSION: [u8; 32] = [9; 32];
const A_KEY: [u8; 32] = [10; 32];
const REVOKED_KEY: [u8; 32] = [11; 32];
const B_KEY: [u8; 32] = [12; 32];
const DAVE_FEED: [u8; 32] = [13; 32];

struct World {
    db: TestDb,
    alice: Uuid, // owner of A, the victim
    dave: Uuid,  // a member of A
    a: Uuid,
    b: Uuid,
}

/// Two organizations; A holds a row in most tenant tables, written as its owner.
async fn world() -> World {
    let db = TestDb::new().await;
    let p = &db.runtime;
    let alice = user(p, "alice@example.com").await;
    let dave = user(p, "dave@example.com").await;
    let bob = user(p, "bob@example.com").await;
    let a = org(p, alice, "acme").await;
    let b = org(p, bob, "bobco").await;
    add_member(p, alice, a, dave, "member").await;
    let fill_a = format!(
        "INSERT INTO teams (id, organization_id, name) VALUES ('{team}', '{a}', 'core');
         INSERT INTO team_members (organization_id, team_id, user_id) VALUES ('{a}', '{team}', '{alice}');
         INSERT INTO kpis (id, organization_id, name, target_value) VALUES ('{kpi}', '{a}', 'MRR', 100);
         INSERT INTO kpi_data_points (organization_id, kpi_id, observed_at, value) VALUES ('{a}', '{kpi}', now(), 5);
         INSERT INTO goals (id, organization_id, title) VALUES ('{goal}', '{a}', 'Grow');
         INSERT INTO goal_kpis (organization_id, goal_id, kpi_id) VALUES ('{a}', '{goal}', '{kpi}');
         INSERT INTO invitations (organization_id, email, role, token_hash, expires_at)
              VALUES ('{a}', 'eve@example.com', 'member', '\\x{inv}', now() + interval '1 day');
         INSERT INTO outbox (organization_id, kind, recipient, subject, body)
              VALUES ('{a}', 'invitation', 'eve@example.com', 'hi', 'hello');
         INSERT INTO api_keys (organization_id, name, prefix, secret_hash, access)
              VALUES ('{a}', 'ci', 'tnt_k_a', '\\x{a_key}', 'write'),
                     ('{a}', 'old', 'tnt_k_r', '\\x{revoked}', 'write');
         UPDATE api_keys SET revoked_at = now() WHERE prefix = 'tnt_k_r';
         INSERT INTO sprint_00_woop.tool_data (organization_id, data, status) VALUES ('{a}', '{{}}', 'draft');
         INSERT INTO tool_access.permissions (organization_id, user_id, tool_slug, access_level)
              VALUES ('{a}', '{dave}', 'woop', 'view');
         INSERT INTO sessions (user_id, token_hash, expires_at) VALUES ('{alice}', '\\x{alice_s}', now() + interval '1 day');
         INSERT INTO sessions (user_id, token_hash, expires_at) VALUES ('{alice}', '\\x{expired}', now() - interval '1 second');
         INSERT INTO identities (user_id, issuer, subject) VALUES ('{alice}', 'https://idp.example', 'alice');
         INSERT INTO appointments (organization_id, assigned_to, title, start_time, end_time)
              VALUES ('{a}', '{alice}', 'Board', now() + interval '1 day', now() + interval '25 hours'),
                     ('{a}', '{dave}', 'Demo', now() + interval '1 day', now() + interval '25 hours');
         INSERT INTO content (organization_id, title, slug, status)
              VALUES ('{a}', 'Home', 'home', 'published'), ('{a}', 'Plans', 'plans', 'draft'),
                     ('{a}', 'Old', 'old', 'archived');
         UPDATE content SET slug = 'welcome' WHERE slug = 'home';
         UPDATE content SET slug = 'plans-2027' WHERE slug = 'plans';",
        team = Uuid::now_v7(),
        kpi = Uuid::now_v7(),
        goal = Uuid::now_v7(),
        inv = hex(&[3; 32]),
        a_key = hex(&A_KEY),
        revoked = hex(&REVOKED_KEY),
        alice_s = hex(&ALICE_SESSION),
        expired = hex(&EXPIRED_SESSION),
    );
    let fill_b = format!(
        "INSERT INTO sessions (user_id, token_hash, expires_at) VALUES ('{bob}', '\\x{bob_s}', now() + interval '1 day');
         INSERT INTO api_keys (organization_id, name, prefix, secret_hash, access)
              VALUES ('{b}', 'ci', 'tnt_k_b', '\\x{b_key}', 'write');",
        bob_s = hex(&BOB_SESSION),
        b_key = hex(&B_KEY),
    );
    for (owner, org, sql) in [(alice, a, fill_a), (bob, b, fill_b)] {
        let mut tx = TenantTx::begin(p, &RequestContext::user(owner).in_org(org))
            .await
            .expect("begin");
        sqlx::raw_sql(&sql)
            .execute(tx.conn())
            .await
            .expect("fill an organization");
        tx.commit().await.expect("commit");
    }
    World {
        db,
        alice,
        dave,
        a,
        b,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A plain connection of the runtime role: what an injected statement runs on.
async fn runtime_conn(w: &World) -> PgConnection {
    PgConnection::connect(&w.db.url(Role::Runtime))
        .await
        .expect("connect as runtime")
}

/// Every table the runtime role can read, with whether it holds tenant or user data.
async fn readable_tables(conn: &mut PgConnection) -> Vec<(String, bool)> {
    sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname),
                EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND NOT a.attisdropped
                          AND a.attname IN ('organization_id', 'user_id'))
                OR c.oid IN ('public.users'::regclass, 'public.organizations'::regclass)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND has_table_privilege(current_user, c.oid, 'SELECT')
          ORDER BY 1",
    )
    .fetch_all(conn)
    .await
    .expect("list tables")
}

/// Rows visible in each readable table, in the current transaction.
async fn visible(conn: &mut PgConnection) -> Vec<(String, i64)> {
    visible_of(conn, false).await
}

/// Rows visible in each readable table (or only those of tenants and users), in the current
/// transaction.
async fn visible_of(conn: &mut PgConnection, only_private: bool) -> Vec<(String, i64)> {
    let mut counts = Vec::new();
    for (table, private) in readable_tables(conn).await {
        if only_private && !private {
            continue;
        }
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *conn)
            .await
            .expect("count");
        counts.push((table, n));
    }
    counts
}

/// Tries to change every row of every table the runtime role may write (UPDATE of one writable
/// column to itself, DELETE), each in a savepoint; returns the rows it changed, by table.
async fn try_writes(conn: &mut PgConnection) -> Vec<(String, u64)> {
    let targets: Vec<(String, Option<String>, bool)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname),
                (SELECT quote_ident(a.attname) FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                    AND has_column_privilege(current_user, c.oid, a.attnum, 'UPDATE')
                  ORDER BY a.attnum LIMIT 1),
                has_table_privilege(current_user, c.oid, 'DELETE')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("list writable tables");
    let mut changed = Vec::new();
    for (table, column, deletable) in targets {
        let mut statements = Vec::new();
        if let Some(column) = column {
            statements.push(format!("UPDATE {table} SET {column} = {column}"));
        }
        if deletable {
            statements.push(format!("DELETE FROM {table}"));
        }
        for sql in statements {
            sqlx::raw_sql("SAVEPOINT attempt")
                .execute(&mut *conn)
                .await
                .expect("savepoint");
            match sqlx::query(&sql).execute(&mut *conn).await {
                Ok(done) => {
                    changed.push((sql, done.rows_affected()));
                    sqlx::raw_sql("RELEASE SAVEPOINT attempt")
                        .execute(&mut *conn)
                        .await
                        .expect("release");
                }
                // Refused outright (no privilege, a trigger): nothing changed either.
                Err(_) => {
                    sqlx::raw_sql("ROLLBACK TO SAVEPOINT attempt")
                        .execute(&mut *conn)
                        .await
                        .expect("rollback to savepoint");
                }
            }
        }
    }
    changed
}

/// Runs a transaction-control statement (`BEGIN`, `COMMIT`, `ROLLBACK`, savepoints).
async fn run(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sql).execute(conn).await.expect(sql);
}

async fn set(conn: &mut PgConnection, values: &[(&str, String)]) {
    for (name, value) in values {
        sqlx::query("SELECT set_config($1, $2, true)")
            .bind(name)
            .bind(value)
            .execute(&mut *conn)
            .await
            .expect("set_config");
    }
}

/// The current values of every context setting.
async fn current_settings(conn: &mut PgConnection) -> Vec<(&'static str, String)> {
    let mut values = Vec::new();
    for name in SETTINGS {
        let value: Option<String> = sqlx::query_scalar("SELECT current_setting($1, true)")
            .bind(name)
            .fetch_one(&mut *conn)
            .await
            .expect("current_setting");
        values.push((name, value.unwrap_or_default()));
    }
    values
}

/// Binds a real credential on `conn`, as the service does.
async fn begin_request(
    conn: &mut PgConnection,
    session: Option<[u8; 32]>,
    key: Option<[u8; 32]>,
    org: Option<Uuid>,
) -> Result<(), String> {
    sqlx::query("SELECT app.begin_request(NULL, NULL, $1, $2, NULL, $3, NULL, NULL, NULL, NULL)")
        .bind(session.as_ref().map(|h| h.as_slice()))
        .bind(key.as_ref().map(|h| h.as_slice()))
        .bind(org)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| {
            e.as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.to_string())
                .unwrap_or_default()
        })
}

/// What a transaction with no identity sees (only global, public rows: the tool catalog).
async fn anonymous_view(conn: &mut PgConnection) -> Vec<(String, i64)> {
    run(&mut *conn, "BEGIN").await;
    let view = visible(conn).await;
    run(&mut *conn, "ROLLBACK").await;
    view
}

/// Runs the attack `forge` in a transaction of `conn`, then asserts that it saw what an
/// anonymous transaction sees (nothing of any tenant), and changed no row.
async fn assert_forgery_fails(conn: &mut PgConnection, what: &str, forged: &[(&str, String)]) {
    let anonymous = anonymous_view(conn).await;
    run(&mut *conn, "BEGIN").await;
    set(conn, forged).await;
    assert_eq!(visible(conn).await, anonymous, "{what}: rows leaked");
    for (sql, rows) in try_writes(conn).await {
        assert_eq!(rows, 0, "{what}: {sql} changed rows");
    }
    run(&mut *conn, "COMMIT").await;
}

/// The owner's view of A, through a genuine request: unchanged by every attack.
async fn alice_view(w: &World) -> Vec<(String, i64)> {
    let mut tx = TenantTx::begin(&w.db.runtime, &RequestContext::user(w.alice).in_org(w.a))
        .await
        .expect("begin");
    let view = visible(tx.conn()).await;
    tx.commit().await.expect("commit");
    view
}

#[tokio::test]
async fn made_up_settings_see_nothing_and_change_nothing() {
    let w = world().await;
    let before = alice_view(&w).await;
    // The control: A is visible to its owner in most tables, so a leak would show.
    let filled = before.iter().filter(|(_, n)| *n > 0).count();
    assert!(filled >= 15, "the fixture fills too few tables: {before:?}");

    let mut conn = runtime_conn(&w).await;
    // Nothing of any tenant is visible without an identity; the tool catalog is public.
    for ((table, tenant_data), (_, n)) in readable_tables(&mut conn)
        .await
        .into_iter()
        .zip(anonymous_view(&mut conn).await)
    {
        if tenant_data {
            assert_eq!(n, 0, "{table} is visible without an identity");
        }
    }

    let victim = [
        ("app.user_id", w.alice.to_string()),
        ("app.session_id", Uuid::now_v7().to_string()),
        ("app.api_key_id", Uuid::now_v7().to_string()),
        ("app.org_id", w.a.to_string()),
        ("app.org_role", "owner".to_string()),
        ("app.service", "on".to_string()),
        ("app.context_mac", hex(&[0xab; 32])),
    ];
    // Each setting alone, every pair, and all of them at once.
    for (i, one) in victim.iter().enumerate() {
        assert_forgery_fails(&mut conn, one.0, std::slice::from_ref(one)).await;
        for other in &victim[i + 1..] {
            let what = format!("{} + {}", one.0, other.0);
            assert_forgery_fails(&mut conn, &what, &[one.clone(), other.clone()]).await;
        }
    }
    assert_forgery_fails(&mut conn, "every setting", &victim).await;
    assert_eq!(alice_view(&w).await, before, "A changed");
}

#[tokio::test]
async fn a_binding_copied_from_another_transaction_or_connection_counts_for_nothing() {
    let w = world().await;
    let before = alice_view(&w).await;

    // A live request of A's owner on another connection: its settings, MAC included, copied.
    let mut live = TenantTx::begin(&w.db.runtime, &RequestContext::user(w.alice).in_org(w.a))
        .await
        .expect("begin");
    let copied = current_settings(live.conn()).await;
    let mut conn = runtime_conn(&w).await;
    assert_forgery_fails(&mut conn, "copied from a live transaction", &copied).await;
    live.commit().await.expect("commit");

    // A genuine binding on this very connection, replayed in a later transaction.
    run(&mut conn, "BEGIN").await;
    begin_request(&mut conn, Some(ALICE_SESSION), None, Some(w.a))
        .await
        .expect("alice's own session binds");
    let bound = current_settings(&mut conn).await;
    // The control: the genuine binding does see A (the attack below could leak).
    let genuine = visible(&mut conn).await;
    assert!(genuine.iter().any(|(t, n)| t == "public.kpis" && *n == 1));
    run(&mut conn, "COMMIT").await;
    assert_forgery_fails(&mut conn, "replayed in a later transaction", &bound).await;

    // Genuinely bound, then one setting changed: no identity at all, not even the genuine one.
    for (name, value) in [
        ("app.org_id", w.b.to_string()),
        // Any other value than the bound one (A's owner is bound as owner).
        ("app.org_role", "admin".to_string()),
        ("app.user_id", Uuid::now_v7().to_string()),
        ("app.service", "on".to_string()),
        ("app.ip", "10.0.0.1".to_string()),
    ] {
        run(&mut conn, "BEGIN").await;
        begin_request(&mut conn, Some(ALICE_SESSION), None, Some(w.a))
            .await
            .expect("bind");
        set(&mut conn, &[(name, value)]).await;
        let seen = visible(&mut conn).await;
        run(&mut conn, "ROLLBACK").await;
        assert_eq!(
            seen,
            anonymous_view(&mut conn).await,
            "{name} changed after binding"
        );
    }
    assert_eq!(alice_view(&w).await, before, "A changed");
}

#[tokio::test]
async fn begin_request_refuses_bad_credentials_and_another_tenants_reach_nothing_in_ours() {
    let w = world().await;
    let mut conn = runtime_conn(&w).await;
    // Expired sessions, revoked keys, unknown hashes, a user named without the service key or
    // with a wrong one: refused before anything is bound.
    for (what, sql, arg) in [
        (
            "expired session",
            "SELECT app.begin_request(NULL, NULL, $1, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
            EXPIRED_SESSION.to_vec(),
        ),
        (
            "unknown session",
            "SELECT app.begin_request(NULL, NULL, $1, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
            vec![1; 32],
        ),
        (
            "revoked key",
            "SELECT app.begin_request(NULL, NULL, NULL, $1, NULL, NULL, NULL, NULL, NULL, NULL)",
            REVOKED_KEY.to_vec(),
        ),
        (
            "a user named with a made-up service key",
            "SELECT app.begin_request($1, (SELECT gen_random_uuid()), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
            vec![0; 32],
        ),
    ] {
        let refused = sqlx::query(sql).bind(arg).execute(&mut conn).await;
        let code = refused
            .err()
            .and_then(|e| e.as_database_error().and_then(|d| d.code()).map(|c| c.to_string()));
        assert_eq!(code.as_deref(), Some("28000"), "{what}");
    }
    let named = sqlx::query(
        "SELECT app.begin_request(NULL, $1, NULL, NULL, NULL, $2, NULL, NULL, NULL, NULL)",
    )
    .bind(w.alice)
    .bind(w.a)
    .execute(&mut conn)
    .await;
    let code = named.err().and_then(|e| {
        e.as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.to_string())
    });
    assert_eq!(code.as_deref(), Some("28000"), "a user named without proof");

    // Credentials resolve only inside app.begin_request.
    for sql in [
        "SELECT app.resolve_session('\\x00'::bytea)",
        "SELECT app.resolve_api_key('\\x00'::bytea)",
        "SELECT * FROM app.secrets",
    ] {
        let denied = sqlx::query(sql).execute(&mut conn).await;
        let code = denied.err().and_then(|e| {
            e.as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.to_string())
        });
        assert_eq!(code.as_deref(), Some("42501"), "{sql}");
    }

    // Another tenant's genuine session or key, naming A: nothing of A.
    let of_a: Vec<(String,)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND has_table_privilege(current_user, c.oid, 'SELECT')
            AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'organization_id')",
    )
    .fetch_all(&mut conn)
    .await
    .expect("tenant tables");
    for (what, session, key) in [
        ("B's owner's session", Some(BOB_SESSION), None),
        ("B's key", None, Some(B_KEY)),
    ] {
        for named_org in [Some(w.a), None] {
            run(&mut conn, "BEGIN").await;
            begin_request(&mut conn, session, key, named_org)
                .await
                .expect("a genuine credential binds");
            for (table,) in &of_a {
                let n: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM {table} WHERE organization_id = $1"
                ))
                .bind(w.a)
                .fetch_one(&mut conn)
                .await
                .expect("count");
                assert_eq!(n, 0, "{what} (org {named_org:?}) sees {table} of A");
            }
            for (table,) in &of_a {
                let sql = format!("DELETE FROM {table} WHERE organization_id = $1");
                sqlx::raw_sql("SAVEPOINT attempt")
                    .execute(&mut conn)
                    .await
                    .expect("savepoint");
                if let Ok(done) = sqlx::query(&sql).bind(w.a).execute(&mut conn).await {
                    assert_eq!(done.rows_affected(), 0, "{what} deleted from {table} of A");
                }
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT attempt")
                    .execute(&mut conn)
                    .await
                    .expect("rollback to savepoint");
            }
            run(&mut conn, "ROLLBACK").await;
        }
    }
    let mut tx = TenantTx::begin(&w.db.runtime, &RequestContext::user(w.alice).in_org(w.a))
        .await
        .expect("begin");
    let kpis: i64 = sqlx::query_scalar("SELECT count(*) FROM kpis")
        .fetch_one(tx.conn())
        .await
        .expect("count");
    assert_eq!(kpis, 1);
}

#[tokio::test]
async fn the_steps_before_sign_in_answer_only_the_service() {
    let w = world().await;
    let mut conn = runtime_conn(&w).await;
    // Every function that requires the service, from the catalog, called with NULLs.
    let calls: Vec<(String,)> = sqlx::query_as(
        "SELECT format('SELECT %s(%s)', p.oid::regproc,
                       (SELECT string_agg('NULL::' || format_type(t, NULL), ', ')
                          FROM unnest(p.proargtypes) t))
           FROM pg_proc p
          WHERE p.prosrc LIKE '%app.require_service()%'
            AND has_function_privilege(current_user, p.oid, 'EXECUTE')",
    )
    .fetch_all(&mut conn)
    .await
    .expect("list functions");
    assert!(calls.len() >= 10, "{calls:?}");
    for forged in [
        vec![],
        vec![("app.service", "on".to_string())],
        vec![
            ("app.service", "on".to_string()),
            ("app.context_mac", hex(&[1; 32])),
        ],
    ] {
        for (call,) in &calls {
            run(&mut conn, "BEGIN").await;
            set(&mut conn, &forged).await;
            let refused = sqlx::query(call).execute(&mut conn).await;
            run(&mut conn, "ROLLBACK").await;
            let code = refused.err().and_then(|e| {
                e.as_database_error()
                    .and_then(|d| d.code())
                    .map(|c| c.to_string())
            });
            assert_eq!(code.as_deref(), Some("42501"), "{call} with {forged:?}");
        }
    }
    // The service itself, through its pool's key, may.
    let mut tx = TenantTx::begin(&w.db.runtime, &RequestContext::service())
        .await
        .expect("begin");
    let found: Option<Uuid> = sqlx::query_scalar("SELECT user_id FROM app.user_by_email($1)")
        .bind("alice@example.com")
        .fetch_one(tx.conn())
        .await
        .expect("lookup");
    assert_eq!(found, Some(w.alice));
}

#[tokio::test]
async fn other_sessions_statements_and_their_credentials_are_hidden() {
    let w = world().await;
    // A request bound with a session token, left open: its statement names the token's hash.
    let ctx = RequestContext {
        actor: tenantry_db::Actor::SessionTokenHash(ALICE_SESSION),
        org_id: Some(w.a),
        ..RequestContext::default()
    };
    let live = TenantTx::begin(&w.db.runtime, &ctx).await.expect("begin");
    let mut conn = runtime_conn(&w).await;
    for sql in [
        "SELECT query FROM pg_stat_activity",
        "SELECT pg_stat_get_backend_activity(b) FROM pg_stat_get_backend_idset() b",
    ] {
        let denied = sqlx::query_scalar::<_, Option<String>>(sql)
            .fetch_all(&mut conn)
            .await;
        match denied {
            Err(e) => assert_eq!(
                e.as_database_error().and_then(|d| d.code()).as_deref(),
                Some("42501"),
                "{sql}"
            ),
            Ok(rows) => panic!("{sql} answered the runtime role: {rows:?}"),
        }
    }
    // A monitoring role still sees them.
    let mut admin = PgConnection::connect(&w.db.url(Role::Superuser))
        .await
        .expect("connect as superuser");
    let seen: Vec<String> = sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity WHERE query LIKE '%app.begin_request%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .expect("pg_stat_activity");
    assert!(
        seen.iter().any(|q| q.contains(&hex(&ALICE_SESSION))),
        "{seen:?}"
    );
    live.commit().await.expect("commit");
}

/// The SQLSTATE of a failed statement.
fn sqlstate<T>(result: Result<T, sqlx::Error>) -> Option<String> {
    result.err().and_then(|e| {
        e.as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.to_string())
    })
}

#[tokio::test]
async fn anonymous_readers_see_exactly_their_public_rows_and_change_nothing() {
    let w = world().await;
    // Dave's calendar feed, made by Dave.
    let mut tx = TenantTx::begin(&w.db.runtime, &RequestContext::user(w.dave).in_org(w.a))
        .await
        .expect("begin");
    sqlx::query(
        "INSERT INTO calendar_feeds (organization_id, user_id, token_hash) VALUES ($1, $2, $3)",
    )
    .bind(w.a)
    .bind(w.dave)
    .bind(DAVE_FEED.as_slice())
    .execute(tx.conn())
    .await
    .expect("dave's feed");
    tx.commit().await.expect("commit");
    let mut conn = runtime_conn(&w).await;
    let feed = "SELECT app.begin_request(NULL, NULL, NULL, NULL, $1, $2, NULL, NULL, NULL, NULL)";

    // The feed reads Dave's appointments in A, and nothing else anywhere.
    for named_org in [None, Some(w.a)] {
        run(&mut conn, "BEGIN").await;
        sqlx::query(feed)
            .bind(DAVE_FEED.as_slice())
            .bind(named_org)
            .execute(&mut conn)
            .await
            .expect("the feed binds");
        // (Of tenants and users: the tool catalog is public to everyone.)
        let seen: Vec<(String, i64)> = visible_of(&mut conn, true)
            .await
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(seen, [("public.appointments".to_string(), 1)]);
        let whose: Uuid = sqlx::query_scalar("SELECT assigned_to FROM appointments")
            .fetch_one(&mut conn)
            .await
            .expect("the one appointment");
        assert_eq!(whose, w.dave);
        let changed: Vec<_> = try_writes(&mut conn)
            .await
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        assert!(changed.is_empty(), "a feed changed {changed:?}");
        run(&mut conn, "ROLLBACK").await;
    }
    // A feed named with another organization, or a made-up one, binds nothing.
    for (what, hash, org) in [
        ("Dave's feed naming B", DAVE_FEED, Some(w.b)),
        ("an unknown feed", [1; 32], None),
    ] {
        let refused = sqlx::query(feed)
            .bind(hash.as_slice())
            .bind(org)
            .execute(&mut conn)
            .await;
        assert_eq!(sqlstate(refused).as_deref(), Some("28000"), "{what}");
    }
    // A feed is one credential: not with a session too.
    let both = sqlx::query(
        "SELECT app.begin_request(NULL, NULL, $1, NULL, $2, NULL, NULL, NULL, NULL, NULL)",
    )
    .bind(ALICE_SESSION.as_slice())
    .bind(DAVE_FEED.as_slice())
    .execute(&mut conn)
    .await;
    assert_eq!(sqlstate(both).as_deref(), Some("28000"));

    // A public reader of A (by slug) is bound to A with no user and no role: it sees A's
    // published page and the old slug leading to it (not the draft's, not the archived page,
    // not versions), and changes nothing.
    for slug in ["acme", "no-such-org"] {
        run(&mut conn, "BEGIN").await;
        sqlx::query(
            "SELECT app.begin_request(NULL, NULL, NULL, NULL, NULL, NULL, $1, NULL, NULL, NULL)",
        )
        .bind(slug)
        .execute(&mut conn)
        .await
        .expect("a public reader binds");
        let bound: (Option<Uuid>, Option<Uuid>, Option<String>) =
            sqlx::query_as("SELECT app.org_id(), app.user_id(), app.org_role()")
                .fetch_one(&mut conn)
                .await
                .expect("context");
        assert_eq!(bound, ((slug == "acme").then_some(w.a), None, None));
        let seen: Vec<(String, i64)> = visible_of(&mut conn, true)
            .await
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        let public: &[(&str, i64)] = if slug == "acme" {
            &[("public.content", 1), ("public.content_redirects", 1)]
        } else {
            &[]
        };
        let public: Vec<(String, i64)> = public.iter().map(|(t, n)| (t.to_string(), *n)).collect();
        assert_eq!(seen, public, "a public reader of {slug}");
        if slug == "acme" {
            let shown: (String, String) = sqlx::query_as(
                "SELECT c.slug, r.slug FROM content c JOIN content_redirects r ON r.content_id = c.id",
            )
            .fetch_one(&mut conn)
            .await
            .expect("the public page");
            assert_eq!(shown, ("welcome".to_string(), "home".to_string()));
        }
        let changed: Vec<_> = try_writes(&mut conn)
            .await
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        assert!(changed.is_empty(), "a public reader changed {changed:?}");
        run(&mut conn, "ROLLBACK").await;
    }
    let twice = sqlx::query(
        "SELECT app.begin_request(NULL, NULL, NULL, NULL, NULL, $1, 'acme', NULL, NULL, NULL)",
    )
    .bind(w.b)
    .execute(&mut conn)
    .await;
    assert_eq!(
        sqlstate(twice).as_deref(),
        Some("28000"),
        "an organization named twice"
    );
}
