//! The KPI data model at the database: history, current value, goals, and isolation.

use tenantry_db::testing::TestDb;
use tenantry_db::{RequestContext, RuntimePool, TenantTx};
use uuid::Uuid;

use crate::support::{add_member, count_as, exec_as, org, user};

async fn kpi(pool: &RuntimePool, member: Uuid, org: Uuid, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    let done = exec_as(
        pool,
        member,
        Some(org),
        &format!("INSERT INTO kpis (id, organization_id, name, target_value) VALUES ($1, $2, '{name}', 100)"),
        &[id, org],
    )
    .await;
    assert_eq!(done, Ok(1));
    id
}

/// Upserts points (kpi, time, value, source) as `member`, the way ingest does.
async fn points(
    pool: &RuntimePool,
    member: Uuid,
    org: Uuid,
    kpi: Uuid,
    rows: &[(&str, f64, &str)],
) -> Result<u64, String> {
    let mut tx = TenantTx::begin(pool, &RequestContext::user(member).in_org(org))
        .await
        .expect("begin");
    let times: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let values: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let sources: Vec<&str> = rows.iter().map(|r| r.2).collect();
    let result = sqlx::query(
        "INSERT INTO kpi_data_points (organization_id, kpi_id, observed_at, value, source) \
         SELECT $1, $2, t::timestamptz, v, s FROM unnest($3::text[], $4::float8[], $5::text[]) AS u(t, v, s) \
         ON CONFLICT (organization_id, kpi_id, observed_at, source) DO UPDATE SET value = excluded.value",
    )
    .bind(org)
    .bind(kpi)
    .bind(&times)
    .bind(&values)
    .bind(&sources)
    .execute(tx.conn())
    .await;
    match result {
        Ok(done) => {
            tx.commit().await.expect("commit");
            Ok(done.rows_affected())
        }
        Err(e) => Err(e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.to_string())
            .unwrap_or_default()),
    }
}

async fn current(pool: &RuntimePool, member: Uuid, org: Uuid, kpi: Uuid) -> Option<f64> {
    let mut tx = TenantTx::begin(pool, &RequestContext::user(member).in_org(org))
        .await
        .expect("begin");
    sqlx::query_scalar("SELECT current_value FROM kpis WHERE id = $1")
        .bind(kpi)
        .fetch_one(tx.conn())
        .await
        .expect("current")
}

#[tokio::test]
async fn the_current_value_is_always_the_latest_point_and_resyncs_never_duplicate() {
    let db = TestDb::new().await;
    let p = &db.runtime;
    let alice = user(p, "alice@example.com").await;
    let a = org(p, alice, "acme").await;
    let mrr = kpi(p, alice, a, "MRR").await;
    assert_eq!(current(p, alice, a, mrr).await, None, "no data yet");

    // Out of order, several sources.
    let rows = [
        ("2026-01-03T00:00:00Z", 30.0, "stripe"),
        ("2026-01-01T00:00:00Z", 10.0, "stripe"),
        ("2026-01-02T00:00:00Z", 20.0, "manual"),
    ];
    assert_eq!(points(p, alice, a, mrr, &rows).await, Ok(3));
    assert_eq!(current(p, alice, a, mrr).await, Some(30.0));
    // A re-sync of the same points corrects a value and adds none.
    assert_eq!(
        points(
            p,
            alice,
            a,
            mrr,
            &[("2026-01-03T00:00:00Z", 33.0, "stripe")]
        )
        .await,
        Ok(1)
    );
    assert_eq!(
        count_as(
            p,
            alice,
            Some(a),
            "SELECT count(*) FROM kpi_data_points WHERE kpi_id = $1",
            &[mrr]
        )
        .await,
        3
    );
    assert_eq!(current(p, alice, a, mrr).await, Some(33.0));
    // Removing the latest point falls back to the one before.
    assert_eq!(
        exec_as(
            p,
            alice,
            Some(a),
            "DELETE FROM kpi_data_points WHERE kpi_id = $1 AND source = 'stripe' AND value = 33",
            &[mrr]
        )
        .await,
        Ok(1)
    );
    assert_eq!(current(p, alice, a, mrr).await, Some(20.0));

    // The database refuses values that are not numbers, and current_value cannot be written.
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(
            points(p, alice, a, mrr, &[("2026-02-01T00:00:00Z", bad, "manual")]).await,
            Err("23514".into())
        );
    }
    assert_eq!(
        exec_as(
            p,
            alice,
            Some(a),
            "UPDATE kpis SET current_value = 999 WHERE id = $1",
            &[mrr]
        )
        .await,
        Err("42501".into())
    );

    // A bulk write is one audit event per KPI with its row count.
    let days: Vec<String> = (1..=100)
        .map(|d| format!("2025-{:02}-{:02}T00:00:00Z", d / 28 + 1, d % 28 + 1))
        .collect();
    let many: Vec<(&str, f64, &str)> = days
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i as f64, "sheets"))
        .collect();
    assert_eq!(points(p, alice, a, mrr, &many).await, Ok(100));
    let summary: i64 = count_as(
        p,
        alice,
        Some(a),
        "SELECT count(*) FROM audit.events WHERE entity_type = 'kpi_data_points' AND entity_id = $1 \
           AND action = 'insert' AND (new_data->>'rows')::int = 100",
        &[mrr],
    )
    .await;
    assert_eq!(summary, 1);
}

#[tokio::test]
async fn goals_record_completion_and_link_only_their_own_kpis() {
    let db = TestDb::new().await;
    let p = &db.runtime;
    let alice = user(p, "alice@example.com").await;
    let bob = user(p, "bob@example.com").await;
    let a = org(p, alice, "acme").await;
    let b = org(p, bob, "bobco").await;
    let mrr = kpi(p, alice, a, "MRR").await;
    let bobs_kpi = kpi(p, bob, b, "Bob KPI").await;
    let goal = Uuid::now_v7();
    assert_eq!(
        exec_as(
            p,
            alice,
            Some(a),
            "INSERT INTO goals (id, organization_id, title) VALUES ($1, $2, 'Grow')",
            &[goal, a]
        )
        .await,
        Ok(1)
    );

    let completed_at = |p: RuntimePool| async move {
        let mut tx = TenantTx::begin(&p, &RequestContext::user(alice).in_org(a))
            .await
            .expect("begin");
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT completed_at FROM goals WHERE id = $1",
        )
        .bind(goal)
        .fetch_one(tx.conn())
        .await
        .expect("goal")
    };
    exec_as(
        p,
        alice,
        Some(a),
        "UPDATE goals SET status = 'completed' WHERE id = $1",
        &[goal],
    )
    .await
    .expect("complete");
    let first = completed_at(p.clone()).await;
    assert!(first.is_some());
    exec_as(
        p,
        alice,
        Some(a),
        "UPDATE goals SET title = 'Grow more' WHERE id = $1",
        &[goal],
    )
    .await
    .expect("rename");
    assert_eq!(
        completed_at(p.clone()).await,
        first,
        "other changes keep completed_at"
    );
    exec_as(
        p,
        alice,
        Some(a),
        "UPDATE goals SET status = 'active' WHERE id = $1",
        &[goal],
    )
    .await
    .expect("reopen");
    assert_eq!(completed_at(p.clone()).await, None);

    let link =
        "INSERT INTO goal_kpis (organization_id, goal_id, kpi_id, weight) VALUES ($1, $2, $3, 2)";
    assert_eq!(
        exec_as(p, alice, Some(a), link, &[a, goal, mrr]).await,
        Ok(1)
    );
    // Another organization's KPI cannot be linked, whatever organization the row claims.
    assert_eq!(
        exec_as(p, alice, Some(a), link, &[a, goal, bobs_kpi]).await,
        Err("23503".into())
    );
    assert_eq!(
        exec_as(p, bob, Some(b), link, &[b, goal, bobs_kpi]).await,
        Err("23503".into())
    );
    assert_eq!(
        exec_as(
            p,
            alice,
            Some(a),
            "UPDATE goal_kpis SET weight = 0 WHERE goal_id = $1",
            &[goal]
        )
        .await,
        Err("23514".into())
    );
}

#[tokio::test]
async fn another_organization_and_viewers_cannot_touch_kpis() {
    let db = TestDb::new().await;
    let p = &db.runtime;
    let alice = user(p, "alice@example.com").await;
    let vera = user(p, "vera@example.com").await;
    let bob = user(p, "bob@example.com").await;
    let a = org(p, alice, "acme").await;
    let b = org(p, bob, "bobco").await;
    add_member(p, alice, a, vera, "viewer").await;
    let mrr = kpi(p, alice, a, "MRR").await;
    points(p, alice, a, mrr, &[("2026-01-01T00:00:00Z", 1.0, "manual")])
        .await
        .expect("point");

    for ctx in [None, Some(a), Some(b)] {
        for sql in [
            "SELECT count(*) FROM kpis WHERE id = $1",
            "SELECT count(*) FROM kpi_data_points WHERE kpi_id = $1",
        ] {
            assert_eq!(count_as(p, bob, ctx, sql, &[mrr]).await, 0, "{sql}");
        }
        for sql in [
            "UPDATE kpis SET name = 'pwned' WHERE id = $1",
            "UPDATE kpis SET deleted_at = now() WHERE id = $1",
            "DELETE FROM kpis WHERE id = $1",
            "UPDATE kpi_data_points SET value = -1 WHERE kpi_id = $1",
            "DELETE FROM kpi_data_points WHERE kpi_id = $1",
        ] {
            assert_eq!(exec_as(p, bob, ctx, sql, &[mrr]).await, Ok(0), "{sql}");
        }
    }
    // Ingesting into A's KPI: as A it is refused by the policy, as B by the keys.
    assert_eq!(
        points(p, bob, a, mrr, &[("2026-01-02T00:00:00Z", 666.0, "evil")]).await,
        Err("42501".into())
    );
    assert_eq!(
        points(p, bob, b, mrr, &[("2026-01-02T00:00:00Z", 666.0, "evil")]).await,
        Err("23503".into())
    );
    // Viewers read but do not write.
    assert_eq!(
        count_as(
            p,
            vera,
            Some(a),
            "SELECT count(*) FROM kpi_data_points WHERE kpi_id = $1",
            &[mrr]
        )
        .await,
        1
    );
    assert_eq!(
        points(
            p,
            vera,
            a,
            mrr,
            &[("2026-01-02T00:00:00Z", 666.0, "manual")]
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(
        exec_as(
            p,
            vera,
            Some(a),
            "UPDATE kpis SET name = 'mine' WHERE id = $1",
            &[mrr]
        )
        .await,
        Ok(0)
    );
    assert_eq!(
        current(p, alice, a, mrr).await,
        Some(1.0),
        "nothing changed"
    );
}
