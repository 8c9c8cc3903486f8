//! Row-level security from the attacker's side: another organization's member, a viewer, a
//! plain member, an anonymous connection. Every attempt must see nothing and change nothing.

use tenantry_db::testing::TestDb;
use tenantry_db::{RequestContext, RuntimePool, TenantTx};
use uuid::Uuid;

use crate::support::{add_member, count_as, exec_as, org, user};

struct World {
    db: TestDb,
    alice: Uuid, // owner of A
    carol: Uuid, // viewer in A
    dave: Uuid,  // member in A
    frank: Uuid, // admin in A
    bob: Uuid,   // owner of B, the attacker
    a: Uuid,
    b: Uuid,
    team_a: Uuid,
}

async fn team(pool: &RuntimePool, admin: Uuid, org: Uuid, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    let mut tx = TenantTx::begin(pool, &RequestContext::user(admin).in_org(org))
        .await
        .expect("begin");
    sqlx::query("INSERT INTO teams (id, organization_id, name) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(org)
        .bind(name)
        .execute(tx.conn())
        .await
        .expect("insert team");
    tx.commit().await.expect("commit");
    id
}

async fn world() -> World {
    let db = TestDb::new().await;
    let p = &db.runtime;
    let alice = user(p, "alice@example.com").await;
    let carol = user(p, "carol@example.com").await;
    let dave = user(p, "dave@example.com").await;
    let frank = user(p, "frank@example.com").await;
    let bob = user(p, "bob@example.com").await;
    let a = org(p, alice, "acme").await;
    let b = org(p, bob, "bobco").await;
    add_member(p, alice, a, carol, "viewer").await;
    add_member(p, alice, a, dave, "member").await;
    add_member(p, alice, a, frank, "admin").await;
    let team_a = team(p, alice, a, "core").await;
    World {
        db,
        alice,
        carol,
        dave,
        frank,
        bob,
        a,
        b,
        team_a,
    }
}

/// What A looks like to its owner: name, members with roles, teams, team members.
async fn snapshot(w: &World) -> String {
    let mut tx = TenantTx::begin(&w.db.runtime, &RequestContext::user(w.alice).in_org(w.a))
        .await
        .expect("begin");
    sqlx::query_scalar(
        "SELECT concat_ws(' | ',
            (SELECT name || ' ' || slug || ' ' || coalesce(description, '') FROM organizations WHERE id = $1),
            (SELECT string_agg(user_id || ':' || role, ',' ORDER BY user_id) FROM organization_members WHERE organization_id = $1),
            (SELECT string_agg(id || ':' || name || ':' || coalesce(lead_user_id::text, ''), ',' ORDER BY id) FROM teams WHERE organization_id = $1),
            (SELECT count(*) FROM team_members WHERE organization_id = $1))",
    )
    .bind(w.a)
    .fetch_one(tx.conn())
    .await
    .expect("snapshot")
}

#[tokio::test]
async fn another_organization_sees_nothing_of_ours() {
    let w = world().await;
    let p = &w.db.runtime;
    for org_ctx in [None, Some(w.a), Some(w.b)] {
        for (sql, what) in [
            (
                "SELECT count(*) FROM organizations WHERE id = $1",
                "organization",
            ),
            (
                "SELECT count(*) FROM organization_members WHERE organization_id = $1",
                "members",
            ),
            (
                "SELECT count(*) FROM teams WHERE organization_id = $1",
                "teams",
            ),
            (
                "SELECT count(*) FROM team_members WHERE organization_id = $1",
                "team members",
            ),
            (
                "SELECT count(*) FROM audit.events WHERE organization_id = $1",
                "audit events",
            ),
        ] {
            assert_eq!(
                count_as(p, w.bob, org_ctx, sql, &[w.a]).await,
                0,
                "{what} leaked (ctx {org_ctx:?})"
            );
        }
        // Users of A are not visible to B's owner, by id or by listing.
        assert_eq!(
            count_as(
                p,
                w.bob,
                org_ctx,
                "SELECT count(*) FROM users WHERE id = $1",
                &[w.alice]
            )
            .await,
            0
        );
        assert_eq!(
            count_as(p, w.bob, org_ctx, "SELECT count(*) FROM users", &[]).await,
            1,
            "only himself"
        );
        assert_eq!(
            count_as(
                p,
                w.bob,
                org_ctx,
                "SELECT count(*) FROM profiles WHERE user_id = $1",
                &[w.alice]
            )
            .await,
            0
        );
    }
    // Listing everything shows only his own organization.
    assert_eq!(
        count_as(p, w.bob, None, "SELECT count(*) FROM organizations", &[]).await,
        1
    );
}

#[tokio::test]
async fn another_organization_can_change_nothing_of_ours() {
    let w = world().await;
    let p = &w.db.runtime;
    let before = snapshot(&w).await;
    for org_ctx in [None, Some(w.a), Some(w.b)] {
        for sql in [
            "UPDATE organizations SET name = 'pwned' WHERE id = $1",
            "DELETE FROM organizations WHERE id = $1",
            "UPDATE organization_members SET role = 'viewer' WHERE organization_id = $1",
            "DELETE FROM organization_members WHERE organization_id = $1",
            "UPDATE teams SET name = 'pwned' WHERE organization_id = $1",
            "DELETE FROM teams WHERE organization_id = $1",
            "DELETE FROM team_members WHERE organization_id = $1",
        ] {
            assert_eq!(
                exec_as(p, w.bob, org_ctx, sql, &[w.a]).await,
                Ok(0),
                "{sql} (ctx {org_ctx:?})"
            );
        }
        // Inserting into A is refused by the policies' WITH CHECK.
        for (sql, bind) in [
            ("INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'owner')", vec![w.a, w.bob]),
            ("INSERT INTO teams (organization_id, name) VALUES ($1, 'intruders')", vec![w.a]),
            ("INSERT INTO team_members (organization_id, team_id, user_id) VALUES ($1, $2, $3)", vec![w.a, w.team_a, w.bob]),
        ] {
            assert_eq!(exec_as(p, w.bob, org_ctx, sql, &bind).await, Err("42501".into()), "{sql}");
        }
    }
    // Updating another user's account is impossible too.
    assert_eq!(
        exec_as(
            p,
            w.bob,
            None,
            "UPDATE users SET name = 'pwned' WHERE id = $1",
            &[w.alice]
        )
        .await,
        Ok(0)
    );
    assert_eq!(
        exec_as(
            p,
            w.bob,
            None,
            "DELETE FROM users WHERE id = $1",
            &[w.alice]
        )
        .await,
        Ok(0)
    );
    // Nobody can re-parent a row: organization_id is not updatable at all.
    assert_eq!(
        exec_as(
            p,
            w.alice,
            None,
            "UPDATE teams SET organization_id = $1 WHERE id = $2",
            &[w.b, w.team_a]
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(before, snapshot(&w).await, "organization A changed");
}

#[tokio::test]
async fn another_organization_cannot_reference_our_rows() {
    let w = world().await;
    let p = &w.db.runtime;
    let before = snapshot(&w).await;
    // B's owner puts A's team into B: the composite key finds no (B, team_a).
    assert_eq!(
        exec_as(
            p,
            w.bob,
            Some(w.b),
            "INSERT INTO team_members (organization_id, team_id, user_id) VALUES ($1, $2, $3)",
            &[w.b, w.team_a, w.bob]
        )
        .await,
        Err("23503".into())
    );
    // ... or makes A's owner the lead of a B team: she is not a member of B.
    assert_eq!(
        exec_as(
            p,
            w.bob,
            Some(w.b),
            "INSERT INTO teams (organization_id, name, lead_user_id) VALUES ($1, 'x', $2)",
            &[w.b, w.alice]
        )
        .await,
        Err("23503".into())
    );
    // A's own admin cannot put a non-member (bob) into an A team either.
    assert_eq!(
        exec_as(
            p,
            w.alice,
            Some(w.a),
            "INSERT INTO team_members (organization_id, team_id, user_id) VALUES ($1, $2, $3)",
            &[w.a, w.team_a, w.bob]
        )
        .await,
        Err("23503".into())
    );
    assert_eq!(before, snapshot(&w).await);
}

#[tokio::test]
async fn viewers_read_but_cannot_write() {
    let w = world().await;
    let p = &w.db.runtime;
    let before = snapshot(&w).await;
    assert_eq!(
        count_as(
            p,
            w.carol,
            Some(w.a),
            "SELECT count(*) FROM organization_members",
            &[]
        )
        .await,
        4
    );
    assert_eq!(
        count_as(p, w.carol, Some(w.a), "SELECT count(*) FROM teams", &[]).await,
        1
    );
    for sql in [
        "UPDATE organizations SET name = 'viewer was here' WHERE id = $1",
        "DELETE FROM organizations WHERE id = $1",
        "UPDATE organization_members SET role = 'admin' WHERE organization_id = $1",
        "UPDATE teams SET name = 'viewer was here' WHERE organization_id = $1",
        "DELETE FROM teams WHERE organization_id = $1",
    ] {
        assert_eq!(
            exec_as(p, w.carol, Some(w.a), sql, &[w.a]).await,
            Ok(0),
            "{sql}"
        );
    }
    assert_eq!(
        exec_as(
            p,
            w.carol,
            Some(w.a),
            "INSERT INTO teams (organization_id, name) VALUES ($1, 'mine')",
            &[w.a]
        )
        .await,
        Err("42501".into())
    );
    // Plain members cannot manage memberships either.
    let eve = user(p, "eve@example.com").await;
    assert_eq!(
        exec_as(
            p,
            w.dave,
            Some(w.a),
            "INSERT INTO organization_members (organization_id, user_id) VALUES ($1, $2)",
            &[w.a, eve]
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(before, snapshot(&w).await);
}

#[tokio::test]
async fn admins_manage_members_but_not_owners() {
    let w = world().await;
    let p = &w.db.runtime;
    let eve = user(p, "eve@example.com").await;
    // An admin adds a member and changes a member's role ...
    assert_eq!(
        exec_as(p, w.frank, Some(w.a), "INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, 'member')", &[w.a, eve]).await,
        Ok(1)
    );
    assert_eq!(
        exec_as(
            p,
            w.frank,
            Some(w.a),
            "UPDATE organization_members SET role = 'viewer' WHERE user_id = $1",
            &[w.dave]
        )
        .await,
        Ok(1)
    );
    // ... but cannot make an owner, promote itself, or touch the owner.
    assert_eq!(
        exec_as(
            p,
            w.frank,
            Some(w.a),
            "UPDATE organization_members SET role = 'owner' WHERE user_id = $1",
            &[eve]
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(
        exec_as(
            p,
            w.frank,
            Some(w.a),
            "UPDATE organization_members SET role = 'owner' WHERE user_id = $1",
            &[w.frank]
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(
        exec_as(
            p,
            w.frank,
            Some(w.a),
            "DELETE FROM organization_members WHERE user_id = $1",
            &[w.alice]
        )
        .await,
        Ok(0)
    );
    // Admins cannot delete the organization; the owner can.
    assert_eq!(
        exec_as(
            p,
            w.frank,
            Some(w.a),
            "DELETE FROM organizations WHERE id = $1",
            &[w.a]
        )
        .await,
        Ok(0)
    );
    // A member may leave.
    assert_eq!(
        exec_as(
            p,
            w.dave,
            Some(w.a),
            "DELETE FROM organization_members WHERE user_id = $1",
            &[w.dave]
        )
        .await,
        Ok(1)
    );
}

#[tokio::test]
async fn the_last_owner_is_protected() {
    let w = world().await;
    let p = &w.db.runtime;
    let q_owners = "SELECT count(*) FROM organization_members WHERE role = 'owner'";
    for sql in [
        "UPDATE organization_members SET role = 'admin' WHERE user_id = $1",
        "DELETE FROM organization_members WHERE user_id = $1",
    ] {
        assert_eq!(
            exec_as(p, w.alice, Some(w.a), sql, &[w.alice]).await,
            Err("23514".into()),
            "{sql}"
        );
    }
    assert_eq!(
        exec_as(
            p,
            w.alice,
            Some(w.a),
            "DELETE FROM users WHERE id = $1",
            &[w.alice]
        )
        .await,
        Err("23514".into())
    );
    assert_eq!(count_as(p, w.alice, Some(w.a), q_owners, &[]).await, 1);

    // With a second owner, either may step down, but not both.
    assert_eq!(
        exec_as(
            p,
            w.alice,
            Some(w.a),
            "UPDATE organization_members SET role = 'owner' WHERE user_id = $1",
            &[w.frank]
        )
        .await,
        Ok(1)
    );
    assert_eq!(
        exec_as(
            p,
            w.alice,
            Some(w.a),
            "UPDATE organization_members SET role = 'admin' WHERE user_id = $1",
            &[w.alice]
        )
        .await,
        Ok(1)
    );
    assert_eq!(
        exec_as(
            p,
            w.frank,
            Some(w.a),
            "DELETE FROM organization_members WHERE user_id = $1",
            &[w.frank]
        )
        .await,
        Err("23514".into())
    );
    assert_eq!(count_as(p, w.frank, Some(w.a), q_owners, &[]).await, 1);

    // Deleting the organization removes every member, owners included.
    assert_eq!(
        exec_as(
            p,
            w.frank,
            Some(w.a),
            "DELETE FROM organizations WHERE id = $1",
            &[w.a]
        )
        .await,
        Ok(1)
    );
    assert_eq!(
        count_as(
            p,
            w.alice,
            None,
            "SELECT count(*) FROM organization_members",
            &[]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn two_owners_demoting_each_other_at_once_leave_one_owner() {
    let w = world().await;
    let p = w.db.runtime.clone();
    assert_eq!(
        exec_as(
            &p,
            w.alice,
            Some(w.a),
            "UPDATE organization_members SET role = 'owner' WHERE user_id = $1",
            &[w.frank]
        )
        .await,
        Ok(1)
    );
    let demote = "UPDATE organization_members SET role = 'admin' WHERE user_id = $1";
    let mut first = TenantTx::begin(&p, &RequestContext::user(w.alice).in_org(w.a))
        .await
        .expect("begin");
    sqlx::query(demote)
        .bind(w.frank)
        .execute(first.conn())
        .await
        .expect("alice demotes frank");
    // Frank demotes alice concurrently; he waits on alice's lock.
    let (frank, a, alice) = (w.frank, w.a, w.alice);
    let p2 = p.clone();
    let second = tokio::spawn(async move { exec_as(&p2, frank, Some(a), demote, &[alice]).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    first.commit().await.expect("commit");
    let second = second.await.expect("join");
    // Frank is no longer an owner by the time his statement runs: nothing he may change, or the
    // last-owner rule refuses. Either way, alice stays owner.
    assert!(matches!(second, Ok(0) | Err(_)), "{second:?}");
    assert_eq!(
        count_as(
            &p,
            w.alice,
            Some(w.a),
            "SELECT count(*) FROM organization_members WHERE role = 'owner'",
            &[]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_request_organization_narrows_what_a_member_of_two_sees() {
    let w = world().await;
    let p = &w.db.runtime;
    add_member(p, w.bob, w.b, w.alice, "admin").await;
    assert_eq!(
        count_as(p, w.alice, None, "SELECT count(*) FROM organizations", &[]).await,
        2
    );
    assert_eq!(
        count_as(
            p,
            w.alice,
            Some(w.a),
            "SELECT count(*) FROM organizations",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        count_as(
            p,
            w.alice,
            Some(w.b),
            "SELECT count(*) FROM organization_members WHERE organization_id = $1",
            &[w.a]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn an_anonymous_transaction_sees_nothing() {
    let w = world().await;
    let mut tx = TenantTx::begin(&w.db.runtime, &RequestContext::default())
        .await
        .expect("begin");
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM organizations) + (SELECT count(*) FROM organization_members) \
               + (SELECT count(*) FROM users) + (SELECT count(*) FROM teams) + (SELECT count(*) FROM audit.events)",
    )
    .fetch_one(tx.conn())
    .await
    .expect("count");
    assert_eq!(n, 0);
    let changed = sqlx::query("UPDATE organizations SET name = 'x'")
        .execute(tx.conn())
        .await
        .expect("update");
    assert_eq!(changed.rows_affected(), 0);
}

#[tokio::test]
async fn a_role_taken_away_counts_from_the_next_request() {
    let w = world().await;
    let p = &w.db.runtime;
    let rename = "UPDATE teams SET name = 'admin was here' WHERE organization_id = $1";
    assert_eq!(exec_as(p, w.frank, Some(w.a), rename, &[w.a]).await, Ok(1));
    // Alice demotes Frank to viewer: his next request reads but writes nothing.
    exec_as(
        p,
        w.alice,
        Some(w.a),
        "UPDATE organization_members SET role = 'viewer' WHERE organization_id = $1 AND user_id = $2",
        &[w.a, w.frank],
    )
    .await
    .expect("demote");
    assert_eq!(exec_as(p, w.frank, Some(w.a), rename, &[w.a]).await, Ok(0));
    assert_eq!(
        count_as(p, w.frank, Some(w.a), "SELECT count(*) FROM teams", &[]).await,
        1
    );
    // Removed: his next request sees nothing at all.
    exec_as(
        p,
        w.alice,
        Some(w.a),
        "DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2",
        &[w.a, w.frank],
    )
    .await
    .expect("remove");
    for table in ["organizations", "organization_members", "teams"] {
        let sql = format!("SELECT count(*) FROM {table}");
        assert_eq!(
            count_as(p, w.frank, Some(w.a), &sql, &[]).await,
            0,
            "{table}"
        );
        assert_eq!(count_as(p, w.frank, None, &sql, &[]).await, 0, "{table}");
    }
}
