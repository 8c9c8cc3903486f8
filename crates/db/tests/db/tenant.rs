//! The tenant transaction itself: context binding, session tokens, connection hygiene.

use sqlx::{Connection, PgConnection};
use tenantry_db::cluster::Role;
use tenantry_db::testing::TestDb;
use tenantry_db::{Actor, DbError, RequestContext, RuntimePool, TenantTx};
use uuid::Uuid;

use crate::support::{org, user};

async fn session(pool: &RuntimePool, user: Uuid, token_hash: [u8; 32], valid_for: &str) {
    let mut tx = TenantTx::begin(pool, &RequestContext::user(user))
        .await
        .expect("begin");
    sqlx::query(&format!(
        "INSERT INTO sessions (user_id, token_hash, expires_at) VALUES ($1, $2, now() + interval '{valid_for}')"
    ))
    .bind(user)
    .bind(token_hash.as_slice())
    .execute(tx.conn())
    .await
    .expect("insert session");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn a_refused_token_leaves_the_connection_clean() {
    let db = TestDb::new().await;
    let alice = user(&db.runtime, "alice@example.com").await;
    let a = org(&db.runtime, alice, "acme").await;
    session(&db.runtime, alice, [7; 32], "1 hour").await;
    session(&db.runtime, alice, [8; 32], "-1 second").await;

    // One connection only: a refused token must not leave it inside a broken transaction.
    let pool = db.runtime_pool(1).await;
    for refused in [[9u8; 32], [8u8; 32]] {
        let ctx = RequestContext {
            actor: Actor::SessionTokenHash(refused),
            ..RequestContext::default()
        };
        assert!(matches!(
            TenantTx::begin(&pool, &ctx).await,
            Err(DbError::Unauthenticated)
        ));
    }
    let ctx = RequestContext {
        actor: Actor::SessionTokenHash([7; 32]),
        ..RequestContext::default()
    }
    .in_org(a);
    let mut tx = TenantTx::begin(&pool, &ctx).await.expect("valid token");
    assert_eq!(tx.user_id().await.expect("user"), Some(alice));
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(tx.conn())
        .await
        .expect("count");
    assert_eq!(seen, 1);
    tx.commit().await.expect("commit");
}

/// The request's limits hold inside every tenant transaction, on whichever connection (through
/// PgBouncer too: `TENANTRY_TEST_PGBOUNCER`), and the role's own, longer ones outside it.
#[tokio::test]
async fn every_transaction_runs_under_the_request_limits() {
    let db = TestDb::new().await;
    let alice = user(&db.runtime, "alice@example.com").await;
    let a = org(&db.runtime, alice, "acme").await;
    const SETTINGS: &str = r"SELECT current_setting('statement_timeout'),
                                  current_setting('idle_in_transaction_session_timeout'),
                                  current_setting('pg_trgm.word_similarity_threshold', true)";
    for ctx in [
        RequestContext::default(),
        RequestContext::user(alice),
        RequestContext::user(alice).in_org(a),
    ] {
        for _ in 0..4 {
            let mut tx = TenantTx::begin(&db.runtime, &ctx).await.expect("begin");
            let settings: (String, String, Option<String>) = sqlx::query_as(SETTINGS)
                .fetch_one(tx.conn())
                .await
                .expect("settings");
            assert_eq!(
                settings,
                ("30s".into(), "1min".into(), Some("0.5".into())),
                "in a transaction of {ctx:?}"
            );
            tx.commit().await.expect("commit");
        }
    }
    let mut direct = PgConnection::connect(&db.url(Role::Runtime))
        .await
        .expect("connect as runtime role");
    let outside: (String, String, Option<String>) = sqlx::query_as(SETTINGS)
        .fetch_one(&mut direct)
        .await
        .expect("settings");
    assert_eq!(outside.0, "1min", "the runtime role's statement_timeout");
    assert_eq!(
        outside.1, "1min",
        "the runtime role's idle-in-transaction limit"
    );
}

#[tokio::test]
async fn context_is_transaction_local_and_rolled_back_work_disappears() {
    let db = TestDb::new().await;
    let alice = user(&db.runtime, "alice@example.com").await;
    let a = org(&db.runtime, alice, "acme").await;
    let pool = db.runtime_pool(1).await;

    let mut tx = TenantTx::begin(&pool, &RequestContext::user(alice).in_org(a))
        .await
        .expect("begin");
    sqlx::query("UPDATE organizations SET name = 'never committed' WHERE id = $1")
        .bind(a)
        .execute(tx.conn())
        .await
        .expect("update");
    drop(tx);

    // The same (only) connection, anonymous now: alice's settings did not survive.
    let mut tx = TenantTx::begin(&pool, &RequestContext::default())
        .await
        .expect("begin");
    let user: Option<String> =
        sqlx::query_scalar("SELECT nullif(current_setting('app.user_id', true), '')")
            .fetch_one(tx.conn())
            .await
            .expect("setting");
    assert_eq!(user, None);
    tx.commit().await.expect("commit");

    let mut tx = TenantTx::begin(&pool, &RequestContext::user(alice))
        .await
        .expect("begin");
    let name: String = sqlx::query_scalar("SELECT name FROM organizations WHERE id = $1")
        .bind(a)
        .fetch_one(tx.conn())
        .await
        .expect("name");
    assert_eq!(name, "acme");
}

#[tokio::test]
async fn a_connection_the_server_dropped_is_replaced_without_failing_the_request() {
    let db = TestDb::new().await;
    let alice = user(&db.runtime, "alice@example.com").await;
    let pool = db.runtime_pool(2).await;
    let pid_of = |pool: RuntimePool| async move {
        let mut tx = TenantTx::begin(&pool, &RequestContext::user(alice))
            .await
            .expect("begin");
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(tx.conn())
            .await
            .expect("pid");
        tx.commit().await.expect("commit");
        pid
    };
    let first = pid_of(pool.clone()).await;

    // What a database restart or an idle-connection reaper does, right after the connection's
    // last use (too recent to be pinged before it is handed out again).
    let superuser = sqlx::PgPool::connect(&db.url(Role::Superuser))
        .await
        .expect("superuser");
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(first)
        .fetch_one(&superuser)
        .await
        .expect("terminate");
    assert!(terminated);

    let second = pid_of(pool.clone()).await;
    assert_ne!(first, second, "the dropped connection was not reused");
}
