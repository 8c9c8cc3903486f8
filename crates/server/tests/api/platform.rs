//! Health, readiness, OpenAPI, request ids, authentication and malformed requests.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantry_server::http::HttpConfig;

use crate::helpers::{assert_problem, read, TestApp};

#[tokio::test]
async fn health_readiness_and_documentation() {
    let app = TestApp::spawn().await;
    let (status, body) = read(
        app.request(Method::GET, None, "/healthz")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = read(
        app.request(Method::GET, None, "/readyz")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );

    let (status, doc) = read(
        app.request(Method::GET, None, "/openapi.json")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    for path in [
        "/v1/orgs",
        "/v1/orgs/{org}",
        "/v1/orgs/{org}/members/{user}",
        "/v1/orgs/{org}/teams/{team}/members/{user}",
        "/v1/me",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());

    let docs = app
        .request(Method::GET, None, "/docs")
        .send()
        .await
        .expect("send");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.expect("html").contains("Tenantry API"));
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::GET, None, "/healthz")
        .send()
        .await
        .expect("send");
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(id.len(), 36, "a UUID request id");
    // A client's own request id is kept.
    let response = app
        .request(Method::GET, None, "/healthz")
        .header("x-request-id", "client-chosen-1")
        .send()
        .await
        .expect("send");
    assert_eq!(
        response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("client-chosen-1")
    );
}

#[tokio::test]
async fn no_valid_token_no_access() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let path = format!("/v1/orgs/{}", alice.org);
    for token in [
        None,
        Some("tnt_forged"),
        Some(""),
        Some(&alice.token[..alice.token.len() - 1]),
    ] {
        let got = read(
            app.request(Method::GET, token, &path)
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    // Not a bearer scheme at all.
    let got = read(
        app.client
            .get(format!("{}{path}", app.base))
            .header("authorization", format!("Basic {}", alice.token))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    // An expired session.
    let expired = tenantry_server::identity::create_session(
        &app.db.runtime,
        alice.id,
        std::time::Duration::ZERO,
        None,
        None,
    )
    .await
    .expect("session");
    let got = read(
        app.request(Method::GET, Some(&expired), &path)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    // The valid one works.
    let (status, _) = app.call(Method::GET, &alice, &path, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_requests_get_clear_problems() {
    let app = TestApp::spawn_with(HttpConfig {
        body_limit: 4096,
        ..HttpConfig::default()
    })
    .await;
    let alice = app.user("alice@example.com").await;
    let post = |body: &'static str| {
        app.request(Method::POST, Some(&alice.token), "/v1/orgs")
            .header("content-type", "application/json")
            .body(body)
    };
    let got = read(post("{not json").send().await.expect("send")).await;
    assert_problem(&got, StatusCode::BAD_REQUEST, "bad_request");
    let got = read(post(r#"{"name": 42}"#).send().await.expect("send")).await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let got = read(
        post(r#"{"name": "x", "owner": "me"}"#)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let huge = json!({ "name": "x".repeat(10_000) }).to_string();
    let got = read(
        app.request(Method::POST, Some(&alice.token), "/v1/orgs")
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(got.0, StatusCode::PAYLOAD_TOO_LARGE);
    let got = read(
        app.request(Method::GET, Some(&alice.token), "/v1/orgs/not-a-uuid")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&got, StatusCode::BAD_REQUEST, "bad_request");
    let got = read(
        app.request(Method::GET, Some(&alice.token), "/v1/nothing-here")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    // Nothing was created by any of it.
    let (_, orgs) = app.call(Method::GET, &alice, "/v1/orgs", None).await;
    assert_eq!(orgs["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn me_shows_the_signed_in_user() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let (status, me) = app.call(Method::GET, &alice, "/v1/me", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["id"], alice.id.to_string());
    assert_eq!(me["user"]["email"], "alice@example.com");
    assert_eq!(me["profile"]["timezone"], "UTC");
    assert!(me["user"].get("password_hash").is_none());
}
