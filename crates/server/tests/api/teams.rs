//! Teams over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantry_server::kernel::access::Role;

use crate::helpers::{assert_problem, TestApp};

#[tokio::test]
async fn teams_hold_members_of_their_organization_only() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let max = app.user("max@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &max, Role::Member).await;
    let teams = format!("/v1/orgs/{}/teams", alice.org);

    let (status, team) = app
        .call(
            Method::POST,
            &alice,
            &teams,
            Some(json!({"name": "Growth", "lead_user_id": alice.id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    let team_path = format!("{teams}/{}", team["id"].as_str().expect("id"));
    let got = app
        .call(
            Method::POST,
            &alice,
            &teams,
            Some(json!({"name": "Growth"})),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "team_name_taken");
    // A lead or member from another organization is refused by the tenant-scoped keys.
    let got = app
        .call(
            Method::POST,
            &alice,
            &teams,
            Some(json!({"name": "Other", "lead_user_id": bob.id})),
        )
        .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_reference");
    let got = app
        .call(
            Method::PUT,
            &alice,
            &format!("{team_path}/members/{}", bob.id),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");

    let (status, with_max) = app
        .call(
            Method::PUT,
            &alice,
            &format!("{team_path}/members/{}", max.id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(with_max["member_ids"], json!([max.id]));
    let (status, again) = app
        .call(
            Method::PUT,
            &alice,
            &format!("{team_path}/members/{}", max.id),
            None,
        )
        .await;
    assert_eq!(
        (status, &again["member_ids"]),
        (StatusCode::OK, &json!([max.id])),
        "idempotent"
    );

    // Max reads but cannot change the team; bob cannot even see it.
    let (status, seen) = app.call(Method::GET, &max, &team_path, None).await;
    assert_eq!((status, &seen["name"]), (StatusCode::OK, &json!("Growth")));
    let got = app
        .call(
            Method::PATCH,
            &max,
            &team_path,
            Some(json!({"name": "Mine"})),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app.call(Method::GET, &bob, &team_path, None).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let got = app.call(Method::DELETE, &bob, &team_path, None).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");

    // When max leaves the organization, he leaves the team too.
    let (status, _) = app
        .call(
            Method::DELETE,
            &max,
            &format!("/v1/orgs/{}/members/{}", alice.org, max.id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, after) = app.call(Method::GET, &alice, &team_path, None).await;
    assert_eq!(after["member_ids"], json!([]));

    let (status, renamed) = app
        .call(
            Method::PATCH,
            &alice,
            &team_path,
            Some(json!({"name": "Revenue", "lead_user_id": null})),
        )
        .await;
    assert_eq!(
        (status, &renamed["name"], &renamed["lead_user_id"]),
        (StatusCode::OK, &json!("Revenue"), &json!(null))
    );
    let (status, _) = app.call(Method::DELETE, &alice, &team_path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = app.call(Method::GET, &alice, &team_path, None).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
}
