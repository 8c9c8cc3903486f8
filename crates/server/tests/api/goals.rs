//! Goals over HTTP: weighted progress, completion, links within the organization only.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_server::kernel::access::Role;

use crate::helpers::{assert_problem, TestApp, TestUser};

async fn post(app: &TestApp, user: &TestUser, path: &str, body: Value) -> Value {
    let (status, created) = app
        .call(
            Method::POST,
            user,
            &format!("/v1/orgs/{}/{path}", user.org),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

#[tokio::test]
async fn progress_is_the_weighted_mean_and_completion_is_recorded() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let full = post(
        &app,
        &alice,
        "kpis",
        json!({"name": "Done", "target_value": 10, "initial_value": 10}),
    )
    .await;
    let none = post(
        &app,
        &alice,
        "kpis",
        json!({"name": "Zero", "target_value": 10, "initial_value": 0}),
    )
    .await;
    let goal = post(
        &app,
        &alice,
        "goals",
        json!({"title": "Ship it", "target_date": "2027-03-31"}),
    )
    .await;
    assert!(goal["progress"].is_null(), "no KPIs, no progress");
    let path = format!(
        "/v1/orgs/{}/goals/{}",
        alice.org,
        goal["id"].as_str().expect("id")
    );
    let link = |kpi: &Value| format!("{path}/kpis/{}", kpi["id"].as_str().expect("id"));

    app.call(
        Method::PUT,
        &alice,
        &link(&full),
        Some(json!({"weight": 1})),
    )
    .await;
    let (status, linked) = app
        .call(
            Method::PUT,
            &alice,
            &link(&none),
            Some(json!({"weight": 3})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(linked["progress"], 25.0, "(100×1 + 0×3) / 4");
    // Changing a weight re-weights.
    let (_, reweighted) = app
        .call(
            Method::PUT,
            &alice,
            &link(&none),
            Some(json!({"weight": 1})),
        )
        .await;
    assert_eq!(reweighted["progress"], 50.0);
    let got = app
        .call(
            Method::PUT,
            &alice,
            &link(&none),
            Some(json!({"weight": 0})),
        )
        .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // Completing records when; pausing keeps progress; reopening clears completion.
    let (_, done) = app
        .call(
            Method::PATCH,
            &alice,
            &path,
            Some(json!({"status": "completed"})),
        )
        .await;
    assert!(done["completed_at"].is_string());
    let (_, paused) = app
        .call(
            Method::PATCH,
            &alice,
            &path,
            Some(json!({"status": "paused"})),
        )
        .await;
    assert!(paused["completed_at"].is_null());
    assert_eq!(paused["progress"], 50.0);

    // A deleted KPI keeps its link but stops counting.
    app.call(
        Method::DELETE,
        &alice,
        &format!(
            "/v1/orgs/{}/kpis/{}",
            alice.org,
            none["id"].as_str().expect("id")
        ),
        None,
    )
    .await;
    let (_, read) = app.call(Method::GET, &alice, &path, None).await;
    assert_eq!(read["progress"], 100.0);
    assert_eq!(read["kpis"].as_array().map(Vec::len), Some(2));

    let (status, unlinked) = app.call(Method::DELETE, &alice, &link(&full), None).await;
    assert_eq!(
        (status, unlinked["kpis"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
}

#[tokio::test]
async fn goals_link_only_their_organizations_kpis_and_others_see_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let vera = app.user("vera@example.com").await;
    app.add_member(&alice, alice.org, &vera, Role::Viewer).await;
    let goal = post(&app, &alice, "goals", json!({"title": "Grow"})).await;
    let bobs_kpi = post(&app, &bob, "kpis", json!({"name": "Bob KPI"})).await;
    let path = format!(
        "/v1/orgs/{}/goals/{}",
        alice.org,
        goal["id"].as_str().expect("id")
    );

    // Alice cannot link Bob's KPI: in her organization it does not exist.
    let got = app
        .call(
            Method::PUT,
            &alice,
            &format!("{path}/kpis/{}", bobs_kpi["id"].as_str().expect("id")),
            Some(json!({})),
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"title": "pwned"}))),
        (Method::DELETE, None),
    ] {
        let got = app.call(method, &bob, &path, body).await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    }
    let got = app
        .call(
            Method::PATCH,
            &vera,
            &path,
            Some(json!({"status": "completed"})),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let (_, read) = app.call(Method::GET, &vera, &path, None).await;
    assert_eq!(
        (read["title"].as_str(), read["status"].as_str()),
        (Some("Grow"), Some("active"))
    );
}
