//! Fast Track tools in the database: the registry filled from the manifests, entries with their
//! status rules, versions and history, progress, and access from the attacker's side (another
//! member, another organization, an expired grant).

use serde_json::{json, Value};
use tenantry_db::testing::TestDb;
use tenantry_db::{migrate, RequestContext, RuntimePool, TenantTx};
use uuid::Uuid;

use crate::support::{add_member, count_as, exec_as, org, user};

struct World {
    db: TestDb,
    alice: Uuid, // owner of A: tool admin without a grant
    dave: Uuid,  // member of A with an edit grant on WOOP
    erin: Uuid,  // member of A with an edit grant on WOOP
    vic: Uuid,   // member of A with a view grant on WOOP
    bob: Uuid,   // owner of B, the other organization
    a: Uuid,
}

async fn tx(pool: &RuntimePool, user: Uuid, org: Uuid) -> TenantTx {
    TenantTx::begin(pool, &RequestContext::user(user).in_org(org))
        .await
        .expect("begin")
}

async fn grant(pool: &RuntimePool, admin: Uuid, org: Uuid, to: Uuid, tool: &str, level: &str) {
    let mut t = tx(pool, admin, org).await;
    sqlx::query(
        "INSERT INTO tool_access.permissions (organization_id, user_id, tool_slug, access_level) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(org)
    .bind(to)
    .bind(tool)
    .bind(level)
    .execute(t.conn())
    .await
    .expect("grant");
    t.commit().await.expect("commit");
}

async fn world() -> World {
    let db = TestDb::new().await;
    let p = &db.runtime;
    let alice = user(p, "alice@example.com").await;
    let dave = user(p, "dave@example.com").await;
    let erin = user(p, "erin@example.com").await;
    let vic = user(p, "vic@example.com").await;
    let bob = user(p, "bob@example.com").await;
    let a = org(p, alice, "acme").await;
    org(p, bob, "bobco").await;
    for (who, level) in [(dave, "edit"), (erin, "edit"), (vic, "view")] {
        add_member(p, alice, a, who, "member").await;
        grant(p, alice, a, who, "woop", level).await;
    }
    World {
        db,
        alice,
        dave,
        erin,
        vic,
        bob,
        a,
    }
}

/// A new WOOP entry of `user` in `org`.
async fn entry(pool: &RuntimePool, user: Uuid, org: Uuid, data: Value) -> Result<Uuid, String> {
    let mut t = tx(pool, user, org).await;
    let id = sqlx::query_scalar(
        "INSERT INTO sprint_00_woop.tool_data (organization_id, data) VALUES ($1, $2) RETURNING id",
    )
    .bind(org)
    .bind(data)
    .fetch_one(t.conn())
    .await
    .map_err(|e| sqlstate(&e))?;
    t.commit().await.expect("commit");
    Ok(id)
}

fn sqlstate(e: &sqlx::Error) -> String {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Changes an entry as `user` when its version is still `version`; rows changed or SQLSTATE.
async fn change(
    pool: &RuntimePool,
    user: Uuid,
    org: Uuid,
    id: Uuid,
    version: i32,
    data: Option<Value>,
    status: Option<&str>,
) -> Result<u64, String> {
    let mut t = tx(pool, user, org).await;
    let done = sqlx::query(
        "UPDATE sprint_00_woop.tool_data SET data = coalesce($3, data), status = coalesce($4, status) \
         WHERE id = $1 AND version = $2",
    )
    .bind(id)
    .bind(version)
    .bind(data)
    .bind(status)
    .execute(t.conn())
    .await
    .map_err(|e| sqlstate(&e))?;
    t.commit().await.expect("commit");
    Ok(done.rows_affected())
}

#[tokio::test]
async fn the_registry_holds_every_tool_from_its_manifest_with_its_schema() {
    let db = TestDb::new().await;
    let p = &db.runtime;
    let someone = user(p, "someone@example.com").await;
    let mut t = TenantTx::begin(p, &RequestContext::user(someone))
        .await
        .expect("begin");
    let rows: Vec<(String, i32, String, String, Value)> = sqlx::query_as(
        "SELECT slug, sprint, schema_name, name, data_schema FROM tool_access.tools ORDER BY sprint",
    )
    .fetch_all(t.conn())
    .await
    .expect("registry");
    let manifests = migrate::tool_manifests();
    assert_eq!(rows.len(), manifests.len());
    assert_eq!(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![0, 1, 2, 15, 24, 29],
        "the seed's tools"
    );
    for (slug, sprint, schema, name, data_schema) in &rows {
        let (file, text) = manifests
            .iter()
            .find(|(file, _)| file == schema)
            .unwrap_or_else(|| panic!("no manifest for {schema}"));
        let manifest: Value = serde_json::from_str(text).expect("manifest JSON");
        assert_eq!(&manifest["slug"], slug, "{file}");
        assert_eq!(manifest["sprint"], json!(sprint), "{file}");
        assert_eq!(&manifest["name"], name, "{file}");
        assert_eq!(&manifest["data_schema"], data_schema, "{file}");
        assert_eq!(*schema, format!("sprint_{sprint:02}_{slug}"));
    }
    let owner = db.owner().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname LIKE 'sprint\\_%' ORDER BY 1",
    )
    .fetch_all(&owner.0)
    .await
    .expect("tables");
    for schema in rows.iter().map(|r| &r.2) {
        assert!(
            tables.contains(&format!("{schema}.tool_data")),
            "{tables:?}"
        );
        assert!(
            tables.contains(&format!("{schema}.audit_log")),
            "{tables:?}"
        );
    }
    assert!(tables.contains(&"sprint_15_value_proposition.hypotheses".to_string()));
    assert!(tables.contains(&"sprint_24_fit_abc_analysis.team_assessments".to_string()));
}

#[tokio::test]
async fn members_see_their_own_entries_admins_all_and_another_organization_nothing() {
    let w = world().await;
    let p = &w.db.runtime;
    let dave_entry = entry(p, w.dave, w.a, json!({"wish": "dave's secret wish"}))
        .await
        .expect("dave writes");
    entry(p, w.erin, w.a, json!({"wish": "erin's"}))
        .await
        .expect("erin writes");
    let all = "SELECT count(*) FROM sprint_00_woop.tool_data";
    assert_eq!(count_as(p, w.dave, Some(w.a), all, &[]).await, 1);
    assert_eq!(count_as(p, w.erin, Some(w.a), all, &[]).await, 1);
    assert_eq!(
        count_as(p, w.alice, Some(w.a), all, &[]).await,
        2,
        "admin sees all"
    );
    assert_eq!(count_as(p, w.bob, Some(w.a), all, &[]).await, 0);
    assert_eq!(count_as(p, w.bob, None, all, &[]).await, 0);

    // Erin and Bob cannot change, delete or steal Dave's entry; Vic (view grant) cannot write.
    for attacker in [w.erin, w.bob, w.vic] {
        for org in [Some(w.a), None] {
            for sql in [
                "UPDATE sprint_00_woop.tool_data SET data = '{\"wish\": \"pwned\"}' WHERE id = $1",
                "UPDATE sprint_00_woop.tool_data SET status = 'in_progress' WHERE id = $1",
                "DELETE FROM sprint_00_woop.tool_data WHERE id = $1",
            ] {
                assert_eq!(
                    exec_as(p, attacker, org, sql, &[dave_entry]).await,
                    Ok(0),
                    "{sql}"
                );
            }
        }
        assert_eq!(
            count_as(
                p,
                attacker,
                Some(w.a),
                "SELECT count(*) FROM sprint_00_woop.audit_log WHERE tool_data_id = $1",
                &[dave_entry]
            )
            .await,
            0,
            "nor read its history"
        );
    }
    // Nobody writes an entry in someone else's name, or in an organization they have no grant in.
    assert_eq!(
        exec_as(
            p,
            w.erin,
            Some(w.a),
            "INSERT INTO sprint_00_woop.tool_data (organization_id, user_id) SELECT $1, user_id FROM organization_members WHERE user_id <> $2 LIMIT 1",
            &[w.a, w.erin]
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(
        entry(p, w.vic, w.a, json!({})).await,
        Err("42501".into()),
        "a view grant does not write"
    );
    assert_eq!(entry(p, w.bob, w.a, json!({})).await, Err("42501".into()));
    // Dave's entry is as he left it.
    let wish: String = {
        let mut t = tx(p, w.dave, w.a).await;
        sqlx::query_scalar("SELECT data->>'wish' FROM sprint_00_woop.tool_data WHERE id = $1")
            .bind(dave_entry)
            .fetch_one(t.conn())
            .await
            .expect("read")
    };
    assert_eq!(wish, "dave's secret wish");
}

#[tokio::test]
async fn an_expired_or_missing_grant_grants_nothing() {
    let w = world().await;
    let p = &w.db.runtime;
    let id = entry(p, w.dave, w.a, json!({"wish": "w"}))
        .await
        .expect("entry");
    exec_as(
        p,
        w.alice,
        Some(w.a),
        "UPDATE tool_access.permissions SET expires_at = now() - interval '1 second' WHERE user_id = $1",
        &[w.dave],
    )
    .await
    .expect("expire");
    let mine = "SELECT count(*) FROM sprint_00_woop.tool_data";
    assert_eq!(count_as(p, w.dave, Some(w.a), mine, &[]).await, 0);
    assert_eq!(count_as(p, w.dave, None, mine, &[]).await, 0);
    assert_eq!(
        change(p, w.dave, w.a, id, 1, Some(json!({"wish": "x"})), None).await,
        Ok(0)
    );
    assert_eq!(entry(p, w.dave, w.a, json!({})).await, Err("42501".into()));
    // A grant for one tool opens no other.
    assert_eq!(
        exec_as(
            p,
            w.erin,
            Some(w.a),
            "INSERT INTO sprint_01_know_thyself.tool_data (organization_id) VALUES ($1)",
            &[w.a]
        )
        .await,
        Err("42501".into())
    );
}

#[tokio::test]
async fn status_moves_by_the_rules_and_the_database_keeps_dates_and_versions() {
    let w = world().await;
    let p = &w.db.runtime;
    let id = entry(p, w.dave, w.a, json!({"wish": "w"}))
        .await
        .expect("entry");
    let read = |version| async move {
        let mut t = tx(p, w.dave, w.a).await;
        let row: (String, i32, bool, bool) = sqlx::query_as(
            "SELECT status, version, completed_at IS NOT NULL, submitted_at IS NOT NULL \
             FROM sprint_00_woop.tool_data WHERE id = $1",
        )
        .bind(id)
        .fetch_one(t.conn())
        .await
        .expect("read");
        assert_eq!(row.1, version);
        (row.0, row.2, row.3)
    };
    assert_eq!(read(1).await, ("draft".into(), false, false));
    // A skipped step is refused and changes nothing.
    assert_eq!(
        change(p, w.dave, w.a, id, 1, None, Some("completed")).await,
        Err("23514".into())
    );
    assert_eq!(
        change(p, w.dave, w.a, id, 1, Some(json!({"wish": "w2"})), None).await,
        Ok(1)
    );
    // A stale version changes nothing.
    assert_eq!(
        change(p, w.dave, w.a, id, 1, Some(json!({"wish": "stale"})), None).await,
        Ok(0)
    );
    assert_eq!(
        change(p, w.dave, w.a, id, 2, None, Some("in_progress")).await,
        Ok(1)
    );
    assert_eq!(
        change(p, w.dave, w.a, id, 3, None, Some("completed")).await,
        Ok(1)
    );
    assert_eq!(read(4).await, ("completed".into(), true, false));
    assert_eq!(
        change(p, w.dave, w.a, id, 4, None, Some("in_progress")).await,
        Ok(1),
        "a completed entry can be reopened"
    );
    assert_eq!(read(5).await, ("in_progress".into(), false, false));
    assert_eq!(
        change(p, w.dave, w.a, id, 5, None, Some("completed")).await,
        Ok(1)
    );
    assert_eq!(
        change(p, w.dave, w.a, id, 6, None, Some("submitted")).await,
        Ok(1)
    );
    assert_eq!(read(7).await, ("submitted".into(), true, true));
    // Submitted is final.
    assert_eq!(
        change(p, w.dave, w.a, id, 7, Some(json!({"wish": "late"})), None).await,
        Err("23514".into())
    );
    assert_eq!(
        change(p, w.dave, w.a, id, 7, None, Some("in_progress")).await,
        Err("23514".into())
    );
    // Entries start as draft or in_progress, never further.
    assert_eq!(
        exec_as(
            p,
            w.dave,
            Some(w.a),
            "INSERT INTO sprint_00_woop.tool_data (organization_id, status) VALUES ($1, 'submitted')",
            &[w.a]
        )
        .await,
        Err("23514".into())
    );
}

#[tokio::test]
async fn history_holds_every_version_and_progress_follows_the_entries() {
    let w = world().await;
    let p = &w.db.runtime;
    let id = entry(p, w.dave, w.a, json!({"wish": "v1"}))
        .await
        .expect("entry");
    change(p, w.dave, w.a, id, 1, Some(json!({"wish": "v2"})), None)
        .await
        .expect("v2");
    change(p, w.dave, w.a, id, 2, None, Some("in_progress"))
        .await
        .expect("v3");
    let mut t = tx(p, w.dave, w.a).await;
    let history: Vec<(i32, String, Value)> = sqlx::query_as(
        "SELECT version, action, changes FROM sprint_00_woop.audit_log WHERE tool_data_id = $1 ORDER BY version",
    )
    .bind(id)
    .fetch_all(t.conn())
    .await
    .expect("history");
    assert_eq!(
        history,
        vec![
            (
                1,
                "insert".into(),
                json!({"data": {"to": {"wish": "v1"}}, "status": {"to": "draft"}})
            ),
            (
                2,
                "update".into(),
                json!({"data": {"from": {"wish": "v1"}, "to": {"wish": "v2"}}})
            ),
            (
                3,
                "update".into(),
                json!({"status": {"from": "draft", "to": "in_progress"}})
            ),
        ]
    );
    // Version 1's data, shown again from the history.
    let first: Value = sqlx::query_scalar(
        "SELECT changes->'data'->'to' FROM sprint_00_woop.audit_log \
         WHERE tool_data_id = $1 AND version <= 1 AND changes ? 'data' ORDER BY version DESC LIMIT 1",
    )
    .bind(id)
    .fetch_one(t.conn())
    .await
    .expect("version 1");
    assert_eq!(first, json!({"wish": "v1"}));
    let progress: (String, i32) = sqlx::query_as(
        "SELECT status, progress_percentage FROM tool_access.progress WHERE user_id = $1 AND tool_slug = 'woop'",
    )
    .bind(w.dave)
    .fetch_one(t.conn())
    .await
    .expect("progress");
    assert_eq!(progress, ("in_progress".into(), 50));
    // The history and progress are the database's: the runtime role cannot write them.
    for sql in [
        "UPDATE sprint_00_woop.audit_log SET changes = '{}'",
        "DELETE FROM sprint_00_woop.audit_log",
        "UPDATE tool_access.progress SET progress_percentage = 100",
    ] {
        assert_eq!(
            exec_as(p, w.dave, Some(w.a), sql, &[]).await,
            Err("42501".into()),
            "{sql}"
        );
    }
    drop(t);
    change(p, w.dave, w.a, id, 3, None, Some("completed"))
        .await
        .expect("completed");
    assert_eq!(
        count_as(
            p,
            w.dave,
            Some(w.a),
            "SELECT count(*) FROM tool_access.progress WHERE tool_slug = 'woop' AND status = 'completed' \
             AND progress_percentage = 100 AND completed_at IS NOT NULL",
            &[]
        )
        .await,
        1
    );
    // Erin sees no progress of Dave's; Alice (admin) sees it.
    let daves = "SELECT count(*) FROM tool_access.progress WHERE user_id = $1";
    assert_eq!(count_as(p, w.erin, Some(w.a), daves, &[w.dave]).await, 0);
    assert_eq!(count_as(p, w.alice, Some(w.a), daves, &[w.dave]).await, 1);
    // The global audit trail names the tool.
    let owner = w.db.owner().await;
    let tagged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.events WHERE entity_type = 'sprint_00_woop.tool_data' AND tool_slug = 'woop'",
    )
    .fetch_one(&owner.0)
    .await
    .expect("events");
    assert_eq!(tagged, 4);
}

#[tokio::test]
async fn rows_of_a_tools_own_tables_follow_their_entry() {
    let w = world().await;
    let p = &w.db.runtime;
    for who in [w.dave, w.erin] {
        grant(p, w.alice, w.a, who, "value_proposition", "edit").await;
    }
    let mut t = tx(p, w.dave, w.a).await;
    let canvas: Uuid = sqlx::query_scalar(
        "INSERT INTO sprint_15_value_proposition.tool_data (organization_id, data) VALUES ($1, '{}') RETURNING id",
    )
    .bind(w.a)
    .fetch_one(t.conn())
    .await
    .expect("canvas");
    sqlx::query(
        "INSERT INTO sprint_15_value_proposition.hypotheses (organization_id, tool_data_id, hypothesis_text, category) \
         VALUES ($1, $2, 'founders pay for focus', 'gain')",
    )
    .bind(w.a)
    .bind(canvas)
    .execute(t.conn())
    .await
    .expect("hypothesis");
    t.commit().await.expect("commit");
    let hypotheses = "SELECT count(*) FROM sprint_15_value_proposition.hypotheses";
    assert_eq!(count_as(p, w.dave, Some(w.a), hypotheses, &[]).await, 1);
    assert_eq!(count_as(p, w.erin, Some(w.a), hypotheses, &[]).await, 0);
    assert_eq!(count_as(p, w.alice, Some(w.a), hypotheses, &[]).await, 1);
    assert_eq!(count_as(p, w.bob, None, hypotheses, &[]).await, 0);
    let add = "INSERT INTO sprint_15_value_proposition.hypotheses (organization_id, tool_data_id, hypothesis_text) \
               VALUES ($1, $2, 'planted')";
    assert_eq!(
        exec_as(p, w.erin, Some(w.a), add, &[w.a, canvas]).await,
        Err("42501".into()),
        "not on someone else's entry"
    );
    assert_eq!(
        exec_as(
            p,
            w.erin,
            Some(w.a),
            "UPDATE sprint_15_value_proposition.hypotheses SET tested = true",
            &[]
        )
        .await,
        Ok(0)
    );
}

/// Completes Dave's entry and, as the owner, dates its completion `years` back.
async fn completed_long_ago(w: &World, id: Uuid, years: i32) {
    let p = &w.db.runtime;
    change(p, w.dave, w.a, id, 1, None, Some("in_progress"))
        .await
        .expect("in progress");
    change(p, w.dave, w.a, id, 2, None, Some("completed"))
        .await
        .expect("completed");
    let owner = w.db.owner().await;
    let mut tx = owner.0.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.archiving', 'on', true)")
        .execute(&mut *tx)
        .await
        .expect("archiving");
    sqlx::query(
        "UPDATE sprint_00_woop.tool_data SET completed_at = now() - make_interval(years => $2) WHERE id = $1",
    )
    .bind(id)
    .bind(years)
    .execute(&mut *tx)
    .await
    .expect("backdate");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn archival_moves_old_completed_entries_and_restore_brings_them_back_unchanged() {
    let w = world().await;
    let p = &w.db.runtime;
    let old = entry(p, w.dave, w.a, json!({"wish": "old"}))
        .await
        .expect("old");
    let recent = entry(p, w.dave, w.a, json!({"wish": "recent"}))
        .await
        .expect("recent");
    let open = entry(p, w.erin, w.a, json!({"wish": "open"}))
        .await
        .expect("open");
    completed_long_ago(&w, old, 3).await;
    change(p, w.dave, w.a, recent, 1, None, Some("in_progress"))
        .await
        .expect("in progress");
    change(p, w.dave, w.a, recent, 2, None, Some("completed"))
        .await
        .expect("completed");
    let db = &w.db;
    let snapshot = |id: Uuid| async move {
        let owner = db.owner().await;
        sqlx::query_scalar::<_, Option<Value>>(
            "SELECT (SELECT to_jsonb(d) FROM sprint_00_woop.tool_data d WHERE id = $1)",
        )
        .bind(id)
        .fetch_one(&owner.0)
        .await
        .expect("snapshot")
    };
    let before = snapshot(old).await.expect("old entry");
    let history = "SELECT count(*) FROM sprint_00_woop.audit_log WHERE tool_data_id = $1";
    let history_before = count_as(p, w.dave, Some(w.a), history, &[old]).await;
    let progress = "SELECT count(*) FROM tool_access.progress WHERE status = 'completed'";
    assert_eq!(count_as(p, w.dave, Some(w.a), progress, &[]).await, 1);

    // The runtime role cannot run the owner's upkeep.
    assert_eq!(
        exec_as(
            p,
            w.alice,
            Some(w.a),
            "SELECT tool_access.archive_entries('woop', now(), 10)",
            &[]
        )
        .await,
        Err("42501".into())
    );

    let owner = w.db.owner().await;
    let two_years_ago = chrono::Utc::now() - chrono::Duration::days(730);
    let moved = tenantry_db::maintenance::archive(&owner, two_years_ago, |_, _| {})
        .await
        .expect("archive");
    assert_eq!(moved, 1, "only the entry completed over two years ago");
    assert_eq!(
        tenantry_db::maintenance::archive(&owner, two_years_ago, |_, _| {})
            .await
            .expect("again"),
        0,
        "a second run finds nothing to do"
    );
    assert!(snapshot(old).await.is_none());
    assert!(snapshot(recent).await.is_some() && snapshot(open).await.is_some());
    // Archived: the admin sees it in the archive, its history and the progress are untouched.
    let archived = "SELECT count(*) FROM tool_access.archive";
    assert_eq!(count_as(p, w.alice, Some(w.a), archived, &[]).await, 1);
    assert_eq!(count_as(p, w.dave, Some(w.a), archived, &[]).await, 0);
    assert_eq!(count_as(p, w.bob, None, archived, &[]).await, 0);
    assert_eq!(
        count_as(p, w.dave, Some(w.a), history, &[old]).await,
        history_before
    );
    assert_eq!(count_as(p, w.dave, Some(w.a), progress, &[]).await, 1);
    let compressed: bool = sqlx::query_scalar(
        "SELECT 'toast_tuple_target=128' = ANY (reloptions) FROM pg_class \
          WHERE oid = 'tool_access.archive'::regclass",
    )
    .fetch_one(&owner.0)
    .await
    .expect("storage");
    assert!(compressed, "archive rows over 128 bytes are compressed");

    let restored = tenantry_db::maintenance::restore(&owner, "woop", Some(w.a))
        .await
        .expect("restore");
    assert_eq!(restored, 1);
    assert_eq!(snapshot(old).await, Some(before), "back exactly as it was");
    assert_eq!(count_as(p, w.alice, Some(w.a), archived, &[]).await, 0);
    assert_eq!(
        count_as(p, w.dave, Some(w.a), history, &[old]).await,
        history_before
    );
}

#[tokio::test]
async fn reports_reach_only_the_organizations_admins_and_audit_history_is_purged_after_seven_years()
{
    let w = world().await;
    let p = &w.db.runtime;
    let id = entry(p, w.dave, w.a, json!({"wish": "w"}))
        .await
        .expect("entry");
    entry(p, w.erin, w.a, json!({"wish": "e"}))
        .await
        .expect("entry");
    completed_long_ago(&w, id, 8).await;
    let owner = w.db.owner().await;
    tenantry_db::maintenance::refresh_reports(&owner)
        .await
        .expect("refresh");
    let report = "SELECT count(*) FROM tool_access.report($1) WHERE tool_slug = 'woop' AND draft = 1 AND completed = 1 AND members = 2 AND members_completed = 1";
    assert_eq!(count_as(p, w.alice, Some(w.a), report, &[w.a]).await, 1);
    for (who, org) in [(w.dave, Some(w.a)), (w.bob, None), (w.bob, Some(w.a))] {
        assert_eq!(
            count_as(
                p,
                who,
                org,
                "SELECT count(*) FROM tool_access.report($1)",
                &[w.a]
            )
            .await,
            0
        );
    }
    for view in ["tool_access.entry_report", "tool_access.progress_report"] {
        assert_eq!(
            exec_as(p, w.alice, Some(w.a), &format!("SELECT * FROM {view}"), &[]).await,
            Err("42501".into()),
            "{view} is not readable directly"
        );
    }

    // Retention: nothing younger than 7 years can go; older events and history do.
    sqlx::query(
        "INSERT INTO audit.events (occurred_at, organization_id, action, entity_type) \
         VALUES (now() - interval '8 years', $1, 'insert', 'ancient')",
    )
    .bind(w.a)
    .execute(&owner.0)
    .await
    .expect("old event");
    sqlx::query("UPDATE sprint_00_woop.audit_log SET occurred_at = now() - interval '8 years' WHERE tool_data_id = $1 AND version = 1")
        .bind(id)
        .execute(&owner.0)
        .await
        .expect("old history");
    let too_recent = chrono::Utc::now() - chrono::Duration::days(365);
    assert!(tenantry_db::maintenance::purge_audit(&owner, too_recent)
        .await
        .is_err());
    let seven_years_ago = chrono::Utc::now() - chrono::Duration::days(7 * 365 + 2);
    let purged = tenantry_db::maintenance::purge_audit(&owner, seven_years_ago)
        .await
        .expect("purge");
    assert_eq!(purged, 2, "the old event and the old history row");
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.events WHERE entity_type = 'ancient'")
            .fetch_one(&owner.0)
            .await
            .expect("count");
    assert_eq!(events, 0);
    // Outside a purge, even the owner cannot remove events.
    let refused = sqlx::query("DELETE FROM audit.events")
        .execute(&owner.0)
        .await
        .expect_err("append-only");
    assert_eq!(
        refused
            .as_database_error()
            .and_then(|d| d.code())
            .as_deref(),
        Some("42501")
    );
}

/// The plan of `sql` with sequential scans priced out, so that it shows which index (if any) can
/// serve the query on this tiny table: as the runtime role in Dave's request, or as the owner
/// (RLS off) where the policy's own indexable conditions would win on so few rows.
async fn plan(w: &World, sql: &str, bind: Uuid, as_owner: bool) -> String {
    let owner = w.db.owner().await;
    let mut t = match as_owner {
        true => None,
        false => Some(tx(&w.db.runtime, w.dave, w.a).await),
    };
    let mut owner_tx = owner.0.begin().await.expect("begin");
    let conn: &mut sqlx::PgConnection = match t.as_mut() {
        Some(t) => t.conn(),
        None => &mut owner_tx,
    };
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .expect("set");
    let lines: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {sql}"))
        .bind(bind)
        .fetch_all(&mut *conn)
        .await
        .expect("explain");
    lines.join("\n")
}

#[tokio::test]
async fn the_seed_indexes_serve_the_queries_that_filter_on_them() {
    let w = world().await;
    let p = &w.db.runtime;
    for i in 0..20 {
        entry(p, w.dave, w.a, json!({"wish": format!("wish {i}")}))
            .await
            .expect("entry");
    }
    let owner = w.db.owner().await;
    sqlx::query("ANALYZE sprint_00_woop.tool_data, sprint_15_value_proposition.tool_data")
        .execute(&owner.0)
        .await
        .expect("analyze");
    for (sql, index) in [
        (
            "SELECT id FROM sprint_00_woop.tool_data WHERE organization_id = $1 AND user_id = app.user_id() ORDER BY id LIMIT 50",
            "tool_data_member",
        ),
        (
            "SELECT id FROM sprint_00_woop.tool_data WHERE organization_id = $1 AND status = 'completed' ORDER BY updated_at DESC",
            "tool_data_organization_id_status_updated_at_idx",
        ),
        (
            "SELECT id FROM sprint_00_woop.tool_data WHERE organization_id = $1 AND status IN ('draft', 'in_progress')",
            "tool_data_organization_id_user_id_idx",
        ),
        (
            "SELECT id FROM sprint_00_woop.tool_data WHERE data @> '{\"wish\": \"wish 7\"}' AND $1::uuid IS NOT NULL",
            "tool_data_data_idx",
        ),
        (
            "SELECT id FROM sprint_15_value_proposition.tool_data WHERE data->>'segment' = 'founders' AND $1::uuid IS NOT NULL",
            "tool_data_expr_idx",
        ),
    ] {
        let shown = plan(&w, sql, w.a, sql.contains("data")).await;
        assert!(shown.contains(index), "{sql}\nshould use {index}:\n{shown}");
    }
}

#[tokio::test]
async fn deleting_an_organization_or_an_account_takes_their_entries_along() {
    let w = world().await;
    let p = &w.db.runtime;
    let mine = entry(p, w.dave, w.a, json!({"wish": "w"}))
        .await
        .expect("entry");
    change(p, w.dave, w.a, mine, 1, Some(json!({"wish": "w2"})), None)
        .await
        .expect("change");
    entry(p, w.erin, w.a, json!({"wish": "e"}))
        .await
        .expect("entry");
    // Dave deletes his account: his entries go, Erin's stay.
    assert_eq!(
        exec_as(
            p,
            w.dave,
            None,
            "DELETE FROM users WHERE id = $1",
            &[w.dave]
        )
        .await,
        Ok(1)
    );
    let owner = w.db.owner().await;
    let left = |sql: &'static str| {
        let owner = &owner;
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&owner.0)
                .await
                .expect("count")
        }
    };
    assert_eq!(
        left("SELECT count(*) FROM sprint_00_woop.tool_data").await,
        1
    );
    // Alice deletes the organization: everything of it goes.
    assert_eq!(
        exec_as(
            p,
            w.alice,
            Some(w.a),
            "DELETE FROM organizations WHERE id = $1",
            &[w.a]
        )
        .await,
        Ok(1)
    );
    for sql in [
        "SELECT count(*) FROM sprint_00_woop.tool_data",
        "SELECT count(*) FROM sprint_00_woop.audit_log",
        "SELECT count(*) FROM tool_access.progress",
        "SELECT count(*) FROM tool_access.permissions",
    ] {
        assert_eq!(left(sql).await, 0, "{sql}");
    }
}

#[tokio::test]
async fn an_archived_entry_keeps_its_own_rows_and_its_authors_progress() {
    let w = world().await;
    let p = &w.db.runtime;
    grant(p, w.alice, w.a, w.dave, "value_proposition", "edit").await;
    let mut t = tx(p, w.dave, w.a).await;
    let canvas: Uuid = sqlx::query_scalar(
        "INSERT INTO sprint_15_value_proposition.tool_data (organization_id, status) VALUES ($1, 'in_progress') RETURNING id",
    )
    .bind(w.a)
    .fetch_one(t.conn())
    .await
    .expect("canvas");
    for text in ["first", "second"] {
        sqlx::query(
            "INSERT INTO sprint_15_value_proposition.hypotheses (organization_id, tool_data_id, hypothesis_text) VALUES ($1, $2, $3)",
        )
        .bind(w.a)
        .bind(canvas)
        .bind(text)
        .execute(t.conn())
        .await
        .expect("hypothesis");
    }
    sqlx::query(
        "UPDATE sprint_15_value_proposition.tool_data SET status = 'completed' WHERE id = $1",
    )
    .bind(canvas)
    .execute(t.conn())
    .await
    .expect("complete");
    t.commit().await.expect("commit");
    let owner = w.db.owner().await;
    let mut backdate = owner.0.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.archiving', 'on', true)")
        .execute(&mut *backdate)
        .await
        .expect("archiving");
    sqlx::query("UPDATE sprint_15_value_proposition.tool_data SET completed_at = now() - interval '3 years'")
        .execute(&mut *backdate)
        .await
        .expect("backdate");
    backdate.commit().await.expect("commit");
    let rows = || async {
        sqlx::query_scalar::<_, Value>(
            "SELECT coalesce(jsonb_agg(to_jsonb(h) ORDER BY h.id), '[]') FROM sprint_15_value_proposition.hypotheses h",
        )
        .fetch_one(&owner.0)
        .await
        .expect("rows")
    };
    let before = rows().await;
    assert_eq!(before.as_array().map(Vec::len), Some(2));

    let cutoff = chrono::Utc::now() - chrono::Duration::days(730);
    let moved = tenantry_db::maintenance::archive(&owner, cutoff, |_, _| {})
        .await
        .expect("archive");
    assert_eq!(moved, 1);
    assert_eq!(rows().await, json!([]), "the rows left with their entry");
    // A new draft does not lower Dave's progress: the archived entry still counts.
    let mut t = tx(p, w.dave, w.a).await;
    sqlx::query("INSERT INTO sprint_15_value_proposition.tool_data (organization_id) VALUES ($1)")
        .bind(w.a)
        .execute(t.conn())
        .await
        .expect("draft");
    t.commit().await.expect("commit");
    let progress = "SELECT count(*) FROM tool_access.progress WHERE tool_slug = 'value_proposition' AND status = 'completed' AND progress_percentage = 100";
    assert_eq!(count_as(p, w.dave, Some(w.a), progress, &[]).await, 1);

    tenantry_db::maintenance::restore(&owner, "value_proposition", None)
        .await
        .expect("restore");
    assert_eq!(rows().await, before, "the rows are back as they were");
}
