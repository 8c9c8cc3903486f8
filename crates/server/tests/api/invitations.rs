//! Invitations: single use, expiring, for the invited address only, managed by admins.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_server::kernel::access::Role;

use crate::helpers::{assert_problem, TestApp, TestUser};

async fn invite(app: &TestApp, admin: &TestUser, email: &str, role: &str) -> Value {
    let (status, body) = app
        .call(
            Method::POST,
            admin,
            &format!("/v1/orgs/{}/invitations", admin.org),
            Some(json!({"email": email, "role": role})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn accept(token: &str) -> Option<Value> {
    Some(json!({ "token": token }))
}

#[tokio::test]
async fn an_invitation_adds_the_invited_user_once() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let issued = invite(&app, &alice, "Carol@Example.com", "member").await;
    let token = issued["token"].as_str().expect("token").to_string();
    assert!(issued["accept_url"]
        .as_str()
        .is_some_and(|u| u.ends_with(&token)));

    // The email went to the outbox with the link (read as the organization's admin).
    let mut tx = tenantry_db::TenantTx::begin(
        &app.db.runtime,
        &tenantry_db::RequestContext::user(alice.id).in_org(alice.org),
    )
    .await
    .expect("begin");
    let (recipient, body): (String, String) =
        sqlx::query_as("SELECT recipient, body FROM outbox WHERE kind = 'invitation'")
            .fetch_one(tx.conn())
            .await
            .expect("outbox");
    drop(tx);
    assert_eq!(recipient, "Carol@Example.com");
    assert!(body.contains(&token));

    // Someone else holding the link cannot use it.
    let mallory = app.user("mallory@example.com").await;
    let got = app
        .call(
            Method::POST,
            &mallory,
            "/v1/invitations/accept",
            accept(&token),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .call(
            Method::GET,
            &mallory,
            &format!("/v1/orgs/{}", alice.org),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");

    let carol = app.user("carol@example.com").await;
    let (status, accepted) = app
        .call(
            Method::POST,
            &carol,
            "/v1/invitations/accept",
            accept(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["organization"]["my_role"], "member");
    // Used once: a second use (by anyone) finds nothing.
    for user in [&carol, &mallory] {
        let got = app
            .call(Method::POST, user, "/v1/invitations/accept", accept(&token))
            .await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    }
    let (_, list) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/invitations", alice.org),
            None,
        )
        .await;
    assert_eq!(list["items"][0]["accepted_by"], carol.id.to_string());
}

#[tokio::test]
async fn expired_revoked_and_resent_links_stop_working() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let carol = app.user("carol@example.com").await;
    let dave = app.user("dave@example.com").await;
    let to_carol = invite(&app, &alice, "carol@example.com", "viewer").await;
    let to_dave = invite(&app, &alice, "dave@example.com", "viewer").await;
    let got = app
        .call(
            Method::POST,
            &alice,
            &format!("/v1/orgs/{}/invitations", alice.org),
            Some(json!({"email": "dave@example.com", "role": "member"})),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "already_invited");

    // Carol's invitation expires; resending gives a new link and the old one dies.
    let owner = app.db.owner().await;
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 second' WHERE lower(email) = 'carol@example.com'")
        .execute(&owner.0)
        .await
        .expect("expire");
    let old = to_carol["token"].as_str().expect("token");
    let got = app
        .call(Method::POST, &carol, "/v1/invitations/accept", accept(old))
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let id = to_carol["invitation"]["id"].as_str().expect("id");
    let (status, resent) = app
        .call(
            Method::POST,
            &alice,
            &format!("/v1/orgs/{}/invitations/{id}/resend", alice.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let got = app
        .call(Method::POST, &carol, "/v1/invitations/accept", accept(old))
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let (status, _) = app
        .call(
            Method::POST,
            &carol,
            "/v1/invitations/accept",
            accept(resent["token"].as_str().expect("token")),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Dave's is revoked before he uses it.
    let id = to_dave["invitation"]["id"].as_str().expect("id");
    let (status, _) = app
        .call(
            Method::DELETE,
            &alice,
            &format!("/v1/orgs/{}/invitations/{id}", alice.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = app
        .call(
            Method::POST,
            &dave,
            "/v1/invitations/accept",
            accept(to_dave["token"].as_str().expect("token")),
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let got = app
        .call(Method::GET, &dave, &format!("/v1/orgs/{}", alice.org), None)
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn only_admins_invite_and_only_owners_invite_owners() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let ada = app.user("ada@example.com").await;
    let max = app.user("max@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &ada, Role::Admin).await;
    app.add_member(&alice, alice.org, &max, Role::Member).await;
    let path = format!("/v1/orgs/{}/invitations", alice.org);
    let got = app
        .call(
            Method::POST,
            &max,
            &path,
            Some(json!({"email": "x@example.com", "role": "viewer"})),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .call(
            Method::POST,
            &ada,
            &path,
            Some(json!({"email": "x@example.com", "role": "owner"})),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .call(
            Method::POST,
            &bob,
            &path,
            Some(json!({"email": "x@example.com", "role": "viewer"})),
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let got = app.call(Method::GET, &bob, &path, None).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let got = app
        .call(
            Method::POST,
            &ada,
            &path,
            Some(json!({"email": "not an email", "role": "viewer"})),
        )
        .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (status, _) = app
        .call(
            Method::POST,
            &ada,
            &path,
            Some(json!({"email": "x@example.com", "role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}
