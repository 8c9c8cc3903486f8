use std::net::IpAddr;

use tenantry_db::testing::TestDb;
use tenantry_db::{RequestContext, TenantTx};
use uuid::Uuid;

use crate::support::{add_member, count_as, exec_as, org, user};

#[derive(sqlx::FromRow, Debug)]
struct Event {
    organization_id: Option<Uuid>,
    user_id: Option<Uuid>,
    action: String,
    entity_type: String,
    entity_id: Option<Uuid>,
    old_data: Option<serde_json::Value>,
    new_data: Option<serde_json::Value>,
    ip_address: Option<sqlx::types::ipnetwork::IpNetwork>,
    user_agent: Option<String>,
    request_id: Option<String>,
}

#[tokio::test]
async fn every_change_leaves_an_event_with_its_actor() {
    let db = TestDb::new().await;
    let alice = user(&db.runtime, "alice@example.com").await;
    let a = org(&db.runtime, alice, "acme").await;

    let ip: IpAddr = "203.0.113.7".parse().expect("ip");
    let ctx = RequestContext {
        ip: Some(ip),
        user_agent: Some("test-agent/1.0".into()),
        request_id: Some("req-123".into()),
        ..RequestContext::user(alice).in_org(a)
    };
    let mut tx = TenantTx::begin(&db.runtime, &ctx).await.expect("begin");
    sqlx::query("UPDATE organizations SET name = 'Acme Inc' WHERE id = $1")
        .bind(a)
        .execute(tx.conn())
        .await
        .expect("update");
    let events: Vec<Event> = sqlx::query_as(
        "SELECT organization_id, user_id, action, entity_type, entity_id, old_data, new_data, ip_address, \
                user_agent, request_id FROM audit.events ORDER BY occurred_at, id",
    )
    .fetch_all(tx.conn())
    .await
    .expect("read trail");
    tx.commit().await.expect("commit");

    // Creation: the organization, its creator's owner membership and its subscription to the
    // default plan; then the update.
    let mut kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.entity_type.as_str(), e.action.as_str()))
        .collect();
    kinds[..3].sort();
    assert_eq!(
        kinds,
        vec![
            ("organization_members", "insert"),
            ("organizations", "insert"),
            ("subscriptions", "insert"),
            ("organizations", "update")
        ]
    );
    assert!(events
        .iter()
        .all(|e| e.user_id == Some(alice) && e.organization_id == Some(a)));
    let update = &events[3];
    assert_eq!(update.entity_id, Some(a));
    assert_eq!(
        update
            .old_data
            .as_ref()
            .and_then(|d| d.get("name"))
            .and_then(|n| n.as_str()),
        Some("acme")
    );
    assert_eq!(
        update
            .new_data
            .as_ref()
            .and_then(|d| d.get("name"))
            .and_then(|n| n.as_str()),
        Some("Acme Inc")
    );
    assert_eq!(update.ip_address.map(|n| n.ip()), Some(ip));
    assert_eq!(update.user_agent.as_deref(), Some("test-agent/1.0"));
    assert_eq!(update.request_id.as_deref(), Some("req-123"));

    // Deleting a member is recorded with the removed row.
    let bob = user(&db.runtime, "bob@example.com").await;
    add_member(&db.runtime, alice, a, bob, "member").await;
    let removed = exec_as(
        &db.runtime,
        alice,
        Some(a),
        "DELETE FROM organization_members WHERE user_id = $1",
        &[bob],
    )
    .await;
    assert_eq!(removed, Ok(1));
    let deletes = count_as(
        &db.runtime,
        alice,
        Some(a),
        "SELECT count(*) FROM audit.events WHERE action = 'delete' AND old_data->>'user_id' = $1::text",
        &[bob],
    )
    .await;
    assert_eq!(deletes, 1);
}

#[tokio::test]
async fn secrets_never_reach_the_trail() {
    let db = TestDb::new().await;
    let id = Uuid::now_v7();
    let mut tx = TenantTx::begin(&db.runtime, &RequestContext::user(id))
        .await
        .expect("begin");
    sqlx::query("INSERT INTO users (id, email, password_hash) VALUES ($1, 'p@example.com', '$argon2id$secret')")
        .bind(id)
        .execute(tx.conn())
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    let owner = db.owner().await;
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.events WHERE new_data::text LIKE '%argon2id%'",
    )
    .fetch_one(&owner.0)
    .await
    .expect("count");
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.events WHERE entity_type = 'users' AND entity_id = $1",
    )
    .bind(id)
    .fetch_one(&owner.0)
    .await
    .expect("count");
    assert_eq!((leaked, recorded), (0, 1));
}

#[tokio::test]
async fn nobody_can_alter_the_trail() {
    let db = TestDb::new().await;
    let alice = user(&db.runtime, "alice@example.com").await;
    let a = org(&db.runtime, alice, "acme").await;
    let before = count_as(
        &db.runtime,
        alice,
        Some(a),
        "SELECT count(*) FROM audit.events",
        &[],
    )
    .await;
    assert!(before >= 2);

    // The organization's own owner, as the runtime role: no statement can change the trail.
    for sql in [
        "UPDATE audit.events SET action = 'delete'",
        "DELETE FROM audit.events",
        "TRUNCATE audit.events",
        "INSERT INTO audit.events (action, entity_type, organization_id) VALUES ('insert', 'forged', $1)",
    ] {
        let bind: &[Uuid] = if sql.contains("$1") { &[a] } else { &[] };
        let result = exec_as(&db.runtime, alice, Some(a), sql, bind).await;
        assert_eq!(result, Err("42501".to_string()), "{sql}");
    }
    // Nor turn triggers off, which would skip the audit triggers and the trail's own: only the
    // owner role may (to load or erase one organization's rows exactly).
    let result = exec_as(
        &db.runtime,
        alice,
        Some(a),
        "SET LOCAL session_replication_role = replica",
        &[],
    )
    .await;
    assert_eq!(result, Err("42501".to_string()));
    // Not even the owner role: the trail is append-only.
    let owner = db.owner().await;
    for sql in [
        "UPDATE audit.events SET action = 'delete'",
        "DELETE FROM audit.events",
        "TRUNCATE audit.events",
    ] {
        let err = sqlx::query(sql).execute(&owner.0).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let after = count_as(
        &db.runtime,
        alice,
        Some(a),
        "SELECT count(*) FROM audit.events",
        &[],
    )
    .await;
    assert_eq!(before, after);
}

#[tokio::test]
async fn only_admins_of_the_organization_read_its_trail() {
    let db = TestDb::new().await;
    let alice = user(&db.runtime, "alice@example.com").await;
    let viewer = user(&db.runtime, "viewer@example.com").await;
    let mallory = user(&db.runtime, "mallory@example.com").await;
    let a = org(&db.runtime, alice, "acme").await;
    let _m = org(&db.runtime, mallory, "evil").await;
    add_member(&db.runtime, alice, a, viewer, "viewer").await;

    let q = "SELECT count(*) FROM audit.events WHERE organization_id = $1";
    assert!(count_as(&db.runtime, alice, None, q, &[a]).await >= 3);
    assert_eq!(count_as(&db.runtime, viewer, None, q, &[a]).await, 0);
    assert_eq!(count_as(&db.runtime, mallory, None, q, &[a]).await, 0);
    assert_eq!(count_as(&db.runtime, mallory, Some(a), q, &[a]).await, 0);
}

#[tokio::test]
async fn every_audited_table_records_inserts_updates_and_deletes() {
    let db = TestDb::new().await;
    let alice = user(&db.runtime, "alice@example.com").await;
    let bob = user(&db.runtime, "bob@example.com").await;
    let a = org(&db.runtime, alice, "acme").await;
    add_member(&db.runtime, alice, a, bob, "member").await;
    let team = Uuid::now_v7();
    for (sql, bind) in [
        ("INSERT INTO profiles (user_id) VALUES ($1)", vec![alice]),
        (
            "UPDATE profiles SET timezone = 'Europe/Paris' WHERE user_id = $1",
            vec![alice],
        ),
        ("UPDATE users SET name = 'Alice' WHERE id = $1", vec![alice]),
        (
            "UPDATE organization_members SET role = 'admin' WHERE user_id = $1",
            vec![bob],
        ),
        (
            "INSERT INTO teams (id, organization_id, name) VALUES ($1, $2, 'core')",
            vec![team, a],
        ),
        ("UPDATE teams SET name = 'Core' WHERE id = $1", vec![team]),
        (
            "INSERT INTO team_members (organization_id, team_id, user_id) VALUES ($1, $2, $3)",
            vec![a, team, bob],
        ),
        ("DELETE FROM team_members WHERE team_id = $1", vec![team]),
        ("DELETE FROM teams WHERE id = $1", vec![team]),
        (
            "DELETE FROM organization_members WHERE user_id = $1",
            vec![bob],
        ),
        ("DELETE FROM organizations WHERE id = $1", vec![a]),
    ] {
        assert_eq!(
            exec_as(&db.runtime, alice, Some(a), sql, &bind).await,
            Ok(1),
            "{sql}"
        );
    }
    // Counted as the owner: events of global tables (users, profiles) belong to no organization.
    let owner = db.owner().await;
    let recorded: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT entity_type, action, count(*) FROM audit.events WHERE user_id = $1 \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(alice)
    .fetch_all(&owner.0)
    .await
    .expect("events");
    let got: Vec<(&str, &str)> = recorded
        .iter()
        .map(|(e, a, _)| (e.as_str(), a.as_str()))
        .collect();
    let expected = [
        ("organization_members", "delete"),
        ("organization_members", "insert"),
        ("organization_members", "update"),
        ("organizations", "delete"),
        ("organizations", "insert"),
        ("profiles", "insert"),
        ("profiles", "update"),
        ("subscriptions", "delete"),
        ("subscriptions", "insert"),
        ("team_members", "delete"),
        ("team_members", "insert"),
        ("teams", "delete"),
        ("teams", "insert"),
        ("teams", "update"),
        ("users", "insert"),
        ("users", "update"),
    ];
    assert_eq!(got, expected);
}

#[tokio::test]
async fn writes_by_an_api_key_are_audited_as_the_key() {
    let db = TestDb::new().await;
    let alice = user(&db.runtime, "alice@example.com").await;
    let a = org(&db.runtime, alice, "acme").await;
    // A data table of the kind later modules add: members (and write keys) may insert.
    let owner = db.owner().await;
    sqlx::raw_sql(
        "CREATE TABLE public.notes (id uuid PRIMARY KEY DEFAULT app.uuid_v7(), organization_id uuid NOT NULL,
             body text, UNIQUE (organization_id, id));
         ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY; ALTER TABLE public.notes FORCE ROW LEVEL SECURITY;
         CREATE POLICY notes_select ON public.notes FOR SELECT USING (organization_id = ANY ((SELECT app.orgs_with_role('viewer'))::uuid[]));
         CREATE POLICY notes_insert ON public.notes FOR INSERT WITH CHECK (organization_id = ANY ((SELECT app.orgs_with_role('member'))::uuid[]));
         GRANT SELECT, INSERT ON public.notes TO tenantry_runtime;
         CALL audit.attach('public.notes');",
    )
    .execute(&owner.0)
    .await
    .expect("notes table");

    let key_id = Uuid::now_v7();
    for (secret, access) in [([1u8; 32], "write"), ([2u8; 32], "read")] {
        let id = if access == "write" {
            key_id
        } else {
            Uuid::now_v7()
        };
        let mut tx = TenantTx::begin(&db.runtime, &RequestContext::user(alice).in_org(a))
            .await
            .expect("begin");
        sqlx::query(
            "INSERT INTO api_keys (id, organization_id, name, prefix, secret_hash, access) VALUES ($1, $2, $3, $3, $4, $5)",
        )
        .bind(id)
        .bind(a)
        .bind(format!("tnt_k_{access}"))
        .bind(secret.as_slice())
        .bind(access)
        .execute(tx.conn())
        .await
        .expect("key");
        tx.commit().await.expect("commit");
    }
    let as_key = |secret: [u8; 32]| {
        RequestContext {
            actor: tenantry_db::Actor::ApiKeyHash(secret),
            ..RequestContext::default()
        }
        .in_org(a)
    };

    let mut tx = TenantTx::begin(&db.runtime, &as_key([1; 32]))
        .await
        .expect("write key");
    sqlx::query("INSERT INTO notes (organization_id, body) VALUES ($1, 'from a bot')")
        .bind(a)
        .execute(tx.conn())
        .await
        .expect("a write key writes");
    tx.commit().await.expect("commit");
    let mut tx = TenantTx::begin(&db.runtime, &as_key([2; 32]))
        .await
        .expect("read key");
    let refused = sqlx::query("INSERT INTO notes (organization_id, body) VALUES ($1, 'nope')")
        .bind(a)
        .execute(tx.conn())
        .await;
    assert_eq!(
        refused
            .err()
            .and_then(|e| e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.to_string()))
            .as_deref(),
        Some("42501")
    );
    drop(tx);

    let (user_id, api_key_id): (Option<Uuid>, Option<Uuid>) = sqlx::query_as(
        "SELECT user_id, api_key_id FROM audit.events WHERE entity_type = 'notes' AND action = 'insert'",
    )
    .fetch_one(&owner.0)
    .await
    .expect("event");
    assert_eq!((user_id, api_key_id), (None, Some(key_id)));
}

#[tokio::test]
async fn the_trail_is_kept_in_months_and_let_go_a_month_at_a_time() {
    let db = TestDb::new().await;
    let alice = user(&db.runtime, "alice@example.com").await;
    let a = org(&db.runtime, alice, "acme").await;
    let owner = db.owner().await;

    // A new event lands in this month's partition.
    let (month,): (String,) = sqlx::query_as(
        r"SELECT tableoid::regclass::text FROM audit.events WHERE organization_id = $1
           ORDER BY id DESC LIMIT 1",
    )
    .bind(a)
    .fetch_one(&owner.0)
    .await
    .expect("newest event");
    let this_month = format!("audit.events_{}", chrono::Utc::now().format("%Y_%m"));
    assert_eq!(month, this_month);

    // Every partition keeps the guarantees: the parent's indexes, TRUNCATE refused, row-level
    // security forced with nothing opened.
    let unguarded: Vec<String> = sqlx::query_scalar(
        r"SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'audit.events'::regclass
             AND NOT (c.relrowsecurity AND c.relforcerowsecurity
                      AND (SELECT count(*) FROM pg_index x WHERE x.indrelid = c.oid)
                          = (SELECT count(*) FROM pg_index x WHERE x.indrelid = 'audit.events'::regclass)
                      AND EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'events_no_truncate')
                      AND EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'events_append_only')
                      AND EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid)
                      AND NOT EXISTS (SELECT FROM pg_policy p
                                       WHERE p.polrelid = c.oid AND pg_get_expr(p.polqual, p.polrelid) <> 'false'))",
    )
    .fetch_all(&owner.0)
    .await
    .expect("partitions");
    assert!(unguarded.is_empty(), "{unguarded:?}");
    let months: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit.events'::regclass",
    )
    .fetch_one(&owner.0)
    .await
    .expect("count");
    assert!(
        months >= 14,
        "this month, a year ahead and the default: {months}"
    );

    // A month is not the runtime role's to read, and not even the owner's to change.
    let direct = exec_as(
        &db.runtime,
        alice,
        Some(a),
        &format!("SELECT count(*) FROM {this_month}"),
        &[],
    )
    .await;
    assert_eq!(direct, Err("42501".to_string()));
    for sql in [
        format!("UPDATE {this_month} SET action = 'delete'"),
        format!("DELETE FROM {this_month}"),
        format!("TRUNCATE {this_month}"),
    ] {
        let err = sqlx::query(&sql).execute(&owner.0).await.expect_err(&sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }

    // Months are made once; past what exists, only the missing ones. An event already in the
    // default partition keeps its month from being made, and is not lost.
    let ensure = |ahead: i32| {
        let owner = owner.clone();
        async move {
            tenantry_db::maintenance::ensure_audit_partitions(&owner, ahead)
                .await
                .expect("ensure")
        }
    };
    assert_eq!(ensure(12).await, 0, "made by the migration already");
    sqlx::query(
        r"INSERT INTO audit.events (occurred_at, action, entity_type)
          VALUES (date_trunc('month', now(), 'UTC') + interval '13 months 2 days', 'insert', 'future')",
    )
    .execute(&owner.0)
    .await
    .expect("an event beyond the months made");
    assert_eq!(
        ensure(14).await,
        1,
        "month 14 made, month 13 left in the default"
    );
    let future: String = sqlx::query_scalar(
        "SELECT tableoid::regclass::text FROM audit.events WHERE entity_type = 'future'",
    )
    .fetch_one(&owner.0)
    .await
    .expect("the future event");
    assert_eq!(future, "audit.events_default");

    // Retention: a whole month older than seven years goes at once; old events in the default
    // partition go the old way; nothing younger is touched.
    sqlx::raw_sql(
        r"SELECT audit.make_partition('events_2015_03', format('FOR VALUES FROM (%L) TO (%L)',
                 '2015-03-01 00:00+00'::timestamptz, '2015-04-01 00:00+00'::timestamptz));
          INSERT INTO audit.events (occurred_at, action, entity_type)
          SELECT '2015-03-10 00:00+00'::timestamptz + make_interval(hours => n), 'insert', 'old'
            FROM generate_series(1, 3) n;
          INSERT INTO audit.events (occurred_at, action, entity_type)
          VALUES ('2014-06-01 00:00+00', 'insert', 'old'), ('2014-07-01 00:00+00', 'insert', 'old')",
    )
    .execute(&owner.0)
    .await
    .expect("old events");
    let young = "SELECT count(*) FROM audit.events WHERE entity_type <> 'old'";
    let young_before: i64 = sqlx::query_scalar(young)
        .fetch_one(&owner.0)
        .await
        .expect("n");
    let purged = tenantry_db::maintenance::purge_audit(
        &owner,
        chrono::Utc::now() - chrono::Duration::days(7 * 365 + 2),
    )
    .await
    .expect("purge");
    assert_eq!(purged, 5);
    let (gone, old_left, young_after): (bool, i64, i64) = sqlx::query_as(&format!(
        "SELECT to_regclass('audit.events_2015_03') IS NULL,
                (SELECT count(*) FROM audit.events WHERE entity_type = 'old'), ({young})"
    ))
    .fetch_one(&owner.0)
    .await
    .expect("after");
    assert!(gone, "the whole month was dropped");
    assert_eq!((old_left, young_after), (0, young_before));
}
