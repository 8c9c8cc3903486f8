use tenantry_db::cluster::{PgBinaries, Role};
use tenantry_db::migrate;
use tenantry_db::testing::TestDb;

async fn schema_dump(db: &TestDb) -> String {
    let bin = PgBinaries::locate(None).expect("pg binaries");
    let out = tokio::process::Command::new(bin.bindir.join("pg_dump"))
        .args(["--schema-only", "--no-comments", "--dbname"])
        .arg(db.url(Role::Superuser))
        .output()
        .await
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pg_dump brackets its output with a random \restrict key; leave those lines out.
    String::from_utf8(out.stdout)
        .expect("utf8 dump")
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn table_count(db: &TestDb) -> i64 {
    let owner = db.owner().await;
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') \
         AND tablename <> '_sqlx_migrations'",
    )
    .fetch_one(&owner.0)
    .await
    .expect("count tables")
}

#[tokio::test]
async fn up_down_up_leaves_an_identical_schema() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let first = schema_dump(&db).await;
    assert!(first.contains("CREATE TABLE public.organizations"));

    // Down one by one, newest first.
    let latest = migrate::latest_version();
    for expected in (1..=latest).rev() {
        let reverted = migrate::down(&owner, None).await.expect("down one");
        assert_eq!(reverted, vec![expected]);
    }
    assert_eq!(
        migrate::down(&owner, None).await.expect("nothing left"),
        Vec::<i64>::new()
    );
    assert_eq!(table_count(&db).await, 0, "all downs leave no table behind");
    let status = migrate::status(&owner).await.expect("status");
    assert!(status.iter().all(|m| m.applied_at.is_none()));

    // Up to the first migration only, then the rest.
    assert_eq!(
        migrate::up(&owner, Some(1)).await.expect("up to 1"),
        vec![1]
    );
    let rest = migrate::up(&owner, None).await.expect("up all");
    assert_eq!(rest, (2..=latest).collect::<Vec<_>>());
    let status = migrate::status(&owner).await.expect("status");
    assert!(status.iter().all(|m| m.applied_at.is_some()));

    let second = schema_dump(&db).await;
    assert_eq!(first, second, "schema after up/down/up differs");

    // Down with --to keeps what is at or below the target.
    let reverted = migrate::down(&owner, Some(1)).await.expect("down to 1");
    assert_eq!(reverted, (2..=latest).rev().collect::<Vec<_>>());
    migrate::up(&owner, None).await.expect("up again");
    assert_eq!(first, schema_dump(&db).await);
}

#[tokio::test]
async fn the_audit_trail_moves_into_months_without_losing_an_event() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    // The trail as it was before it was partitioned, with events of many ages in it.
    migrate::down(&owner, Some(50)).await.expect("down to 50");
    sqlx::raw_sql(
        r"INSERT INTO audit.events (occurred_at, organization_id, action, entity_type, entity_id, new_data)
          SELECT now() - make_interval(days => n * 37), gen_random_uuid(), 'insert', 'kpis', gen_random_uuid(),
                 jsonb_build_object('n', n)
            FROM generate_series(0, 99) n",
    )
    .execute(&owner.0)
    .await
    .expect("events of ten years");
    let fingerprint =
        r"SELECT count(*), md5(string_agg(e::text, ',' ORDER BY id)) FROM audit.events e";
    let before: (i64, String) = sqlx::query_as(fingerprint)
        .fetch_one(&owner.0)
        .await
        .expect("before");

    migrate::up(&owner, None).await.expect("up");
    let after: (i64, String) = sqlx::query_as(fingerprint)
        .fetch_one(&owner.0)
        .await
        .expect("after");
    assert_eq!(before, after, "every event, unchanged");
    let (partitioned, misplaced): (bool, i64) = sqlx::query_as(
        r"SELECT (SELECT relkind = 'p' FROM pg_class WHERE oid = 'audit.events'::regclass),
                 (SELECT count(*) FROM audit.events
                   WHERE tableoid::regclass::text <> 'audit.events_' || to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY_MM'))",
    )
    .fetch_one(&owner.0)
    .await
    .expect("where they went");
    assert!(partitioned);
    assert_eq!(misplaced, 0, "each event in its month's partition");
}
