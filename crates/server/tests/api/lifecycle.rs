//! Ownership transfer, account deletion and the activity feed.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantry_server::kernel::access::Role;

use crate::helpers::{assert_problem, TestApp};

#[tokio::test]
async fn ownership_moves_to_a_member_and_only_by_an_owner() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let ada = app.user("ada@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &ada, Role::Admin).await;
    let path = format!("/v1/orgs/{}/transfer-ownership", alice.org);
    let got = app
        .call(Method::POST, &ada, &path, Some(json!({"user_id": ada.id})))
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .call(
            Method::POST,
            &alice,
            &path,
            Some(json!({"user_id": bob.id})),
        )
        .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (status, new_owner) = app
        .call(
            Method::POST,
            &alice,
            &path,
            Some(json!({"user_id": ada.id})),
        )
        .await;
    assert_eq!(
        (status, &new_owner["role"]),
        (StatusCode::OK, &json!("owner"))
    );
    let (_, org) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}", alice.org),
            None,
        )
        .await;
    assert_eq!(org["my_role"], "admin");
}

#[tokio::test]
async fn deleting_an_account_keeps_organizations_owned() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let max = app.user("max@example.com").await;
    app.add_member(&alice, alice.org, &max, Role::Member).await;

    // Alice alone owns an organization with a member: refused, nothing deleted.
    let got = app.call(Method::DELETE, &alice, "/v1/me", None).await;
    assert_problem(&got, StatusCode::CONFLICT, "last_owner");
    let (status, _) = app.call(Method::GET, &alice, "/v1/me", None).await;
    assert_eq!(status, StatusCode::OK);

    // Max's own sign-up organization has nobody else: it goes with him; his membership too.
    let (status, _) = app.call(Method::DELETE, &max, "/v1/me", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = app.call(Method::GET, &max, "/v1/me", None).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (_, members) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/members", alice.org),
            None,
        )
        .await;
    assert_eq!(members["items"].as_array().map(Vec::len), Some(1));

    // Now alone, alice can leave for good, and her organization goes with her.
    let (status, _) = app.call(Method::DELETE, &alice, "/v1/me", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let owner = app.db.owner().await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(&owner.0)
        .await
        .expect("count");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn admins_read_their_activity_feed_with_filters() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let max = app.user("max@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &max, Role::Member).await;
    let org = format!("/v1/orgs/{}", alice.org);
    for name in ["One", "Two", "Three"] {
        let (status, _) = app
            .call(Method::PATCH, &alice, &org, Some(json!({"name": name})))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let feed = format!("{org}/activity");
    let (status, page) = app
        .call(
            Method::GET,
            &alice,
            &format!("{feed}?entity_type=organizations&action=update&limit=2"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["new_data"]["name"], "Three", "newest first");
    assert_eq!(items[0]["user_id"], alice.id.to_string());
    let cursor = page["next_cursor"].as_str().expect("more");
    let (_, rest) = app
        .call(
            Method::GET,
            &alice,
            &format!("{feed}?entity_type=organizations&action=update&after={cursor}"),
            None,
        )
        .await;
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["items"][0]["new_data"]["name"], "One");

    let (_, by_member_insert) = app
        .call(
            Method::GET,
            &alice,
            &format!("{feed}?entity_type=organization_members&action=insert"),
            None,
        )
        .await;
    assert_eq!(by_member_insert["items"].as_array().map(Vec::len), Some(2));
    let (_, none) = app
        .call(
            Method::GET,
            &alice,
            &format!("{feed}?user_id={}", bob.id),
            None,
        )
        .await;
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
    let (_, future) = app
        .call(
            Method::GET,
            &alice,
            &format!("{feed}?since=2999-01-01T00:00:00Z"),
            None,
        )
        .await;
    assert_eq!(future["items"].as_array().map(Vec::len), Some(0));

    let got = app.call(Method::GET, &max, &feed, None).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app.call(Method::GET, &bob, &feed, None).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
}
