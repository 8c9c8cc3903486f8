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

    let doc = crate::helpers::openapi(&app).await;
    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    // Every route of the router, with the methods it answers.
    for (path, methods) in [
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"]),
        ("/v1/auth/signup", &["post"]),
        ("/v1/auth/signin", &["post"]),
        ("/v1/auth/signout", &["post"]),
        ("/v1/auth/oidc/start", &["get"]),
        ("/v1/auth/oidc/callback", &["get"]),
        ("/v1/me", &["get", "patch", "delete"]),
        ("/v1/me/password", &["put"]),
        ("/v1/me/sessions", &["get", "delete"]),
        ("/v1/me/sessions/{session}", &["delete"]),
        ("/v1/orgs", &["get", "post"]),
        ("/v1/orgs/{org}", &["get", "patch", "delete"]),
        ("/v1/orgs/{org}/members", &["get"]),
        ("/v1/orgs/{org}/members/{user}", &["patch", "delete"]),
        ("/v1/orgs/{org}/transfer-ownership", &["post"]),
        ("/v1/orgs/{org}/teams", &["get", "post"]),
        ("/v1/orgs/{org}/teams/{team}", &["get", "patch", "delete"]),
        (
            "/v1/orgs/{org}/teams/{team}/members/{user}",
            &["put", "delete"],
        ),
        ("/v1/orgs/{org}/invitations", &["get", "post"]),
        ("/v1/orgs/{org}/invitations/{invitation}", &["delete"]),
        ("/v1/orgs/{org}/invitations/{invitation}/resend", &["post"]),
        ("/v1/invitations/accept", &["post"]),
        ("/v1/orgs/{org}/api-keys", &["get", "post"]),
        ("/v1/orgs/{org}/api-keys/{key}", &["delete"]),
        ("/v1/orgs/{org}/activity", &["get"]),
        ("/v1/orgs/{org}/kpis", &["get", "post"]),
        ("/v1/orgs/{org}/kpis/{kpi}", &["get", "patch", "delete"]),
        ("/v1/orgs/{org}/kpis/{kpi}/restore", &["post"]),
        ("/v1/orgs/{org}/kpis/{kpi}/purge", &["post"]),
        ("/v1/orgs/{org}/kpis/{kpi}/points", &["get", "post"]),
        ("/v1/orgs/{org}/kpis/{kpi}/series", &["get"]),
        ("/v1/orgs/{org}/dashboard", &["get"]),
        ("/v1/orgs/{org}/kpi-points", &["post"]),
        ("/v1/orgs/{org}/kpis/{kpi}/points.csv", &["get"]),
        ("/v1/orgs/{org}/goals", &["get", "post"]),
        ("/v1/orgs/{org}/goals/{goal}", &["get", "patch", "delete"]),
        ("/v1/orgs/{org}/goals/{goal}/restore", &["post"]),
        ("/v1/orgs/{org}/goals/{goal}/purge", &["post"]),
        ("/v1/orgs/{org}/goals/{goal}/kpis/{kpi}", &["put", "delete"]),
        ("/v1/orgs/{org}/tools", &["get"]),
        ("/v1/orgs/{org}/tools/{tool}/entries", &["get", "post"]),
        (
            "/v1/orgs/{org}/tools/{tool}/entries/{entry}",
            &["get", "patch"],
        ),
        (
            "/v1/orgs/{org}/tools/{tool}/entries/{entry}/status",
            &["post"],
        ),
        (
            "/v1/orgs/{org}/tools/{tool}/entries/{entry}/history",
            &["get"],
        ),
        ("/v1/orgs/{org}/tool-grants", &["get", "put"]),
        ("/v1/orgs/{org}/tool-grants/{grant}", &["delete"]),
        ("/v1/orgs/{org}/tool-report", &["get"]),
        ("/v1/orgs/{org}/tool-entries", &["get"]),
        (
            "/v1/orgs/{org}/tools/{tool}/entries/{entry}/{table}",
            &["get", "post"],
        ),
        (
            "/v1/orgs/{org}/tools/{tool}/entries/{entry}/{table}/{row}",
            &["patch", "delete"],
        ),
    ] {
        for method in methods {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} missing from OpenAPI");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
        }
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
    .expect("session")
    .token;
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
    assert_problem(&got, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
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

#[tokio::test]
async fn profile_changes_apply_together_or_not_at_all() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let carol = app.user("carol@example.com").await;
    app.add_member(
        &alice,
        alice.org,
        &carol,
        tenantry_server::kernel::access::Role::Viewer,
    )
    .await;

    let (status, me) = app
        .call(
            Method::PATCH,
            &alice,
            "/v1/me",
            Some(json!({"name": "Alice A.", "timezone": "Europe/Berlin", "language": "pt-BR",
                        "avatar_url": "https://img.example/a.png", "preferences": {"theme": "dark"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["name"], "Alice A.");
    assert_eq!(me["profile"]["timezone"], "Europe/Berlin");
    assert_eq!(me["profile"]["language"], "pt-BR");
    assert_eq!(me["profile"]["preferences"], json!({"theme": "dark"}));

    // A bad time zone refuses the whole change: the name stays as it was.
    let got = app
        .call(
            Method::PATCH,
            &alice,
            "/v1/me",
            Some(json!({"name": "Mallory", "timezone": "Mars/Olympus"})),
        )
        .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(got.1["errors"][0]["field"], "timezone");
    let got = app
        .call(
            Method::PATCH,
            &alice,
            "/v1/me",
            Some(json!({"name": "Mallory", "language": "not a tag"})),
        )
        .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(got.1["errors"][0]["field"], "language");
    for bad in [
        json!({"avatar_url": "javascript:alert(1)"}),
        json!({"preferences": [1]}),
        json!({"role": "admin"}),
    ] {
        let got = app.call(Method::PATCH, &alice, "/v1/me", Some(bad)).await;
        assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let (_, me) = app.call(Method::GET, &alice, "/v1/me", None).await;
    assert_eq!(me["user"]["name"], "Alice A.");
    assert_eq!(
        me["user"]["role"], "user",
        "the platform role cannot be changed by its user"
    );
    assert_eq!(me["profile"]["timezone"], "Europe/Berlin");

    // Colleagues see the new name; clearing it with null works.
    let (_, members) = app
        .call(
            Method::GET,
            &carol,
            &format!("/v1/orgs/{}/members", alice.org),
            None,
        )
        .await;
    let names: Vec<&str> = members["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(names.contains(&"Alice A."), "{names:?}");
    let (status, me) = app
        .call(Method::PATCH, &alice, "/v1/me", Some(json!({"name": null})))
        .await;
    assert_eq!(
        (status, &me["user"]["name"]),
        (StatusCode::OK, &json!(null))
    );
}

#[tokio::test]
async fn a_request_over_its_time_is_refused_and_changes_nothing() {
    let app = TestApp::spawn_with(HttpConfig {
        request_timeout: std::time::Duration::from_millis(300),
        ..HttpConfig::default()
    })
    .await;
    let alice = app.user("alice@example.com").await;
    // Something else holds the table: the update has to wait past the request's time.
    let blocker = app.lock_organizations().await;
    let path = format!("/v1/orgs/{}", alice.org);
    let got = app
        .call(
            Method::PATCH,
            &alice,
            &path,
            Some(json!({"name": "too late"})),
        )
        .await;
    assert_problem(&got, StatusCode::SERVICE_UNAVAILABLE, "timeout");
    blocker.rollback().await.expect("release");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, org) = app.call(Method::GET, &alice, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(
        org["name"], "too late",
        "the timed-out request changed data"
    );
}

#[tokio::test]
async fn the_router_serves_exactly_the_methods_the_document_lists() {
    let app = TestApp::spawn().await;
    let doc = crate::helpers::openapi(&app).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = crate::helpers::concrete_path(path, None);
        for method in ["get", "post", "put", "patch", "delete"] {
            let documented = item.get(method).is_some();
            let status = app
                .request(
                    method.to_uppercase().parse().expect("method"),
                    None,
                    &concrete,
                )
                .send()
                .await
                .expect("send")
                .status();
            // axum answers 405 for a routed path without that method, 404 for an unrouted path.
            if documented {
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is documented but not routed"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}: routed but not documented, or the path is not routed at all"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 250, "{checked}");
}

#[tokio::test]
async fn every_reference_in_the_document_resolves() {
    let app = TestApp::spawn().await;
    let doc = crate::helpers::openapi(&app).await;
    let text = doc.to_string();
    let mut references = 0;
    for piece in text.split("\"$ref\":\"").skip(1) {
        let target = piece.split('"').next().unwrap_or_default();
        let path = target.trim_start_matches("#/");
        let found = path.split('/').try_fold(&doc, |node, key| node.get(key));
        assert!(found.is_some(), "{target} does not resolve");
        references += 1;
    }
    assert!(
        references > 50,
        "only {references} references: the document looks wrong"
    );
}

#[tokio::test]
async fn every_list_refuses_the_limits_its_document_does_not_allow() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let doc = crate::helpers::openapi(&app).await;
    let mut lists = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let Some(limit) = item["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "limit"))
        else {
            continue;
        };
        assert_eq!(
            (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
            (&json!(1), &json!(200)),
            "{path}: the document states the range"
        );
        let concrete = crate::helpers::concrete_path(path, Some(alice.org));
        for (value, refused) in [
            ("0", true),
            ("201", true),
            ("2147483648", true),
            ("200", false),
        ] {
            let (status, body) = app
                .call(
                    Method::GET,
                    &alice,
                    &format!("{concrete}?limit={value}"),
                    None,
                )
                .await;
            assert_eq!(
                status == StatusCode::BAD_REQUEST,
                refused,
                "{path}?limit={value}: {status} {body}"
            );
        }
        lists += 1;
    }
    assert!(lists >= 6, "only {lists} lists take a limit");
}

#[tokio::test]
async fn json_numbers_at_the_edges_of_a_double_come_back_as_they_went_in() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    // PostgreSQL keeps a JSON number as an exact decimal (f64::MAX comes back with 309 digits);
    // read back with a parser that rounds loosely it overflowed, and the profile was unreadable.
    let edges = json!({"max": f64::MAX, "min": f64::MIN, "tiny": f64::MIN_POSITIVE, "small": 5e-324, "x": 5.372424603439041e-205});
    let (status, body) = app
        .call(
            Method::PATCH,
            &alice,
            "/v1/me",
            Some(json!({"preferences": edges})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, me) = app.call(Method::GET, &alice, "/v1/me", None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["profile"]["preferences"], edges);
}
