//! The assistant's conversations (migration 0045): private to their author, about a record of
//! the same organization the author can read, listed newest first; the tool catalog locked by
//! plan. Written from the side of another member, a viewer, an admin, another organization and
//! SQL run as the runtime role.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_db::RequestContext;
use tenantry_server::kernel::access::Role;
use tenantry_server::kernel::org_tx::OrgTx;
use uuid::Uuid;

use crate::helpers::{assert_problem, refused_fields, TestApp, TestUser};

async fn start(app: &TestApp, user: &TestUser, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        user,
        &format!("/v1/orgs/{}/conversations", user.org),
        Some(body),
    )
    .await
}

fn id_of(body: &Value) -> Uuid {
    body["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id")
}

/// `user` acting in `org`.
fn in_org(user: &TestUser, org: Uuid) -> TestUser {
    TestUser {
        org,
        ..user.clone()
    }
}

async fn mine(app: &TestApp, user: &TestUser, query: &str) -> Vec<Value> {
    let path = format!("/v1/orgs/{}/conversations{query}", user.org);
    crate::helpers::items(app, user, &path).await
}

/// Bob (member), Carol (admin) and Vic (viewer) of `owner`'s organization, acting in it.
pub(crate) async fn member_admin_viewer(
    app: &TestApp,
    owner: &TestUser,
) -> (TestUser, TestUser, TestUser) {
    let joined = |name: &'static str, role: Role| async move {
        let user = app.user(&format!("{name}@example.com")).await;
        app.add_member(owner, owner.org, &user, role).await;
        in_org(&user, owner.org)
    };
    (
        joined("bob", Role::Member).await,
        joined("carol", Role::Admin).await,
        joined("vic", Role::Viewer).await,
    )
}

#[tokio::test]
async fn a_conversation_is_its_authors_alone_unless_the_owner_lets_admins_read() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let (bob, carol, vic) = member_admin_viewer(&app, &alice).await;
    let (status, created) = start(&app, &bob, json!({"title": "Pricing ideas"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["context_type"], "general");
    assert_eq!(created["ai_model"], "openai_gpt4");
    let id = id_of(&created);
    let path = format!("/v1/orgs/{}/conversations/{id}", alice.org);

    // Nobody else reads it: not the owner, an admin, a viewer; not in lists either.
    for other in [&alice, &carol, &vic] {
        let got = app.call(Method::GET, other, &path, None).await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
        let got = app
            .call(Method::GET, other, &format!("{path}/messages"), None)
            .await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
        assert!(mine(&app, other, "").await.is_empty());
    }
    // Viewers start none.
    let got = start(&app, &vic, json!({})).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");

    // Only an owner lets admins read; an admin cannot let themselves.
    let settings = |on: bool| json!({"settings": {"ai": {"admins_read_conversations": on}}});
    let org_path = format!("/v1/orgs/{}", alice.org);
    let got = app
        .call(Method::PATCH, &carol, &org_path, Some(settings(true)))
        .await;
    assert_eq!(got.0, StatusCode::FORBIDDEN, "{}", got.1);
    let got = app.call(Method::GET, &carol, &path, None).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app
        .call(Method::PATCH, &alice, &org_path, Some(settings(true)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for admin in [&alice, &carol] {
        let (status, read) = app.call(Method::GET, admin, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{read}");
        // Reading is not owning: they change nothing.
        let got = app
            .call(
                Method::PATCH,
                admin,
                &path,
                Some(json!({"title": "Mine now"})),
            )
            .await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
        let got = app.call(Method::DELETE, admin, &path, None).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let got = app.call(Method::GET, &vic, &path, None).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");

    // The author renames, archives and deletes.
    let (status, renamed) = app
        .call(
            Method::PATCH,
            &bob,
            &path,
            Some(json!({"title": "Pricing", "is_archived": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["title"], "Pricing");
    assert!(mine(&app, &bob, "").await.is_empty());
    assert_eq!(mine(&app, &bob, "?archived=true").await.len(), 1);
    let (status, _) = app.call(Method::DELETE, &bob, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = app.call(Method::GET, &bob, &path, None).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn sql_as_the_runtime_role_reads_and_writes_no_one_elses_conversation() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &bob, Role::Member).await;
    let (_, created) = start(&app, &in_org(&bob, alice.org), json!({"title": "Secret"})).await;
    let id = id_of(&created);
    // Alice, the owner, as SQL: no row, no message added, no change, even naming Bob as author.
    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(alice.id), alice.org)
        .await
        .expect("begin");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM ai_conversations")
        .fetch_one(tx.conn())
        .await
        .expect("count");
    assert_eq!(seen, 0);
    let changed = sqlx::query("UPDATE ai_conversations SET title = 'x' WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await
        .expect("update")
        .rows_affected();
    assert_eq!(changed, 0);
    drop(tx);
    // A turn in Bob's conversation, in her name or forged in his.
    for author in [alice.id, bob.id] {
        let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(alice.id), alice.org)
            .await
            .expect("begin");
        let inserted = sqlx::query(
            "INSERT INTO ai_messages (organization_id, conversation_id, user_id, role, content) VALUES ($1, $2, $3, 'user', 'hi')",
        )
        .bind(alice.org)
        .bind(id)
        .bind(author)
        .execute(tx.conn())
        .await;
        assert!(inserted.is_err(), "a turn in someone else's conversation");
    }
    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(alice.id), alice.org)
        .await
        .expect("begin");
    let forged = sqlx::query(
        "INSERT INTO ai_conversations (organization_id, user_id, title) VALUES ($1, $2, 'as Bob')",
    )
    .bind(alice.org)
    .bind(bob.id)
    .execute(tx.conn())
    .await;
    assert!(forged.is_err(), "a conversation in another's name");
}

#[tokio::test]
async fn a_context_is_a_record_of_this_organization_the_author_can_read() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    let project = |user: TestUser| {
        let app = &app;
        async move {
            let (status, body) = app
                .call(
                    Method::POST,
                    &user,
                    &format!("/v1/orgs/{}/projects", user.org),
                    Some(json!({"name": "Launch"})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            id_of(&body)
        }
    };
    let ours = project(alice.clone()).await;
    let theirs = project(mallory.clone()).await;
    let (status, created) = start(
        &app,
        &alice,
        json!({"context_type": "project", "context_id": ours, "ai_model": "claude_sonnet"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["context_id"], json!(ours));
    assert_eq!(created["title"], "New conversation");
    // Another organization's project, a project id as a customer, a context without an id.
    for body in [
        json!({"context_type": "project", "context_id": theirs}),
        json!({"context_type": "customer", "context_id": ours}),
        json!({"context_type": "task", "context_id": Uuid::now_v7()}),
        json!({"context_type": "project"}),
        json!({"context_id": ours}),
    ] {
        let got = start(&app, &alice, body.clone()).await;
        assert_eq!(refused_fields(&got), ["context_id"], "{body}");
    }
    let got = start(&app, &alice, json!({"ai_model": "gpt5"})).await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    assert_eq!(
        mine(&app, &alice, "").await.len(),
        1,
        "nothing else was made"
    );
}

#[tokio::test]
async fn my_conversations_come_newest_first_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let mut made = Vec::new();
    for i in 0..5 {
        let (_, created) = start(&app, &alice, json!({"title": format!("Chat {i}")})).await;
        made.push(id_of(&created));
    }
    let first = mine(&app, &alice, "?limit=2").await;
    let ids: Vec<Value> = first.iter().map(|c| c["id"].clone()).collect();
    assert_eq!(ids, [json!(made[4]), json!(made[3])]);
    let rest = mine(&app, &alice, &format!("?limit=10&after={}", made[3])).await;
    let ids: Vec<Value> = rest.iter().map(|c| c["id"].clone()).collect();
    assert_eq!(ids, [json!(made[2]), json!(made[1]), json!(made[0])]);
    let (status, messages) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/conversations/{}/messages", alice.org, made[0]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{messages}");
    assert_eq!(messages["items"], json!([]));
}

#[tokio::test]
async fn the_tool_catalog_is_locked_above_the_plans_tier() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let tools = || async {
        let (status, tools) = app
            .call(
                Method::GET,
                &alice,
                &format!("/v1/orgs/{}/ai-tools", alice.org),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{tools}");
        tools
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["name"].as_str().unwrap_or_default().to_string(),
                    t["locked"].as_bool().unwrap_or(false),
                )
            })
            .collect::<Vec<_>>()
    };
    // The free plan is below every tier.
    assert_eq!(
        tools().await,
        [
            ("assistant".to_string(), true),
            ("kpi_trend".to_string(), true),
            ("project_status".to_string(), true)
        ]
    );
    crate::billing::on_plan(&app, &alice, "starter", json!({})).await;
    sqlx::query("UPDATE plans SET tier = 'basic' WHERE code = 'starter'")
        .execute(&app.db.owner().await.0)
        .await
        .expect("tier");
    assert_eq!(
        tools().await,
        [
            ("assistant".to_string(), false),
            ("kpi_trend".to_string(), true),
            ("project_status".to_string(), true)
        ]
    );
}
