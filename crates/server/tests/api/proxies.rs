//! The client's address behind a reverse proxy (`X-Forwarded-For`), from the side of a client
//! that forges the header: it counts only when a trusted proxy sent it, and then only the
//! address the proxy itself appended.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_server::http::HttpConfig;

use crate::helpers::{assert_problem, read, TestApp};

/// Sends `body` to `path` as if relayed for `forwarded_for`.
async fn post_via(
    app: &TestApp,
    forwarded_for: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    read(
        app.request(Method::POST, None, path)
            .header("x-forwarded-for", forwarded_for)
            .json(&body)
            .send()
            .await
            .expect("send"),
    )
    .await
}

/// Signs up through `forwarded_for`; the address the new session recorded.
async fn signed_up_from(app: &TestApp, forwarded_for: &str, email: &str) -> Value {
    let body = json!({"email": email, "password": "correct horse", "name": "Test"});
    let (status, signed_up) = post_via(app, forwarded_for, "/v1/auth/signup", body).await;
    assert_eq!(status, StatusCode::CREATED, "{signed_up}");
    let token = signed_up["session"]["token"].as_str().expect("token");
    let (_, sessions) = read(
        app.request(Method::GET, Some(token), "/v1/me/sessions")
            .send()
            .await
            .expect("send"),
    )
    .await;
    sessions[0]["ip_address"].clone()
}

/// Twenty wrong passwords for as many emails, each relayed for `forwarded_for(i)`.
async fn spray(app: &TestApp, forwarded_for: impl Fn(usize) -> String) {
    for i in 0..20 {
        let body = json!({"email": format!("user{i}@example.com"), "password": "guess"});
        let got = post_via(app, &forwarded_for(i), "/v1/auth/signin", body).await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
}

#[tokio::test]
async fn a_direct_clients_forwarded_for_is_ignored_and_cannot_dodge_the_sign_in_limit() {
    let app = TestApp::spawn().await;
    let ip = signed_up_from(&app, "203.0.113.9", "alice@example.com").await;
    assert_eq!(ip, "127.0.0.1");

    // A new forged address on every guess: still one address, so the limit holds.
    spray(&app, |i| format!("198.51.100.{i}")).await;
    let body = json!({"email": "fresh@example.com", "password": "guess"});
    let got = post_via(&app, "192.0.2.1", "/v1/auth/signin", body).await;
    assert_problem(&got, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_address_and_limit() {
    let app = TestApp::spawn_with(HttpConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().expect("cidr")],
        ..HttpConfig::default()
    })
    .await;
    // The proxy appends what it saw; what the client wrote before that is only a claim.
    let ip = signed_up_from(&app, "6.6.6.6, 203.0.113.5", "alice@example.com").await;
    assert_eq!(ip, "203.0.113.5");
    let ip = signed_up_from(&app, "not an address", "bob@example.com").await;
    assert_eq!(
        ip, "127.0.0.1",
        "garbage falls back to the proxy's own address"
    );

    // One client sprays guesses, varying what it claims: the limit is on its real address.
    spray(&app, |i| format!("10.9.9.{i}, 203.0.113.5")).await;
    let body = json!({"email": "fresh@example.com", "password": "guess"});
    let got = post_via(&app, "203.0.113.5", "/v1/auth/signin", body).await;
    assert_problem(&got, StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    // Another client behind the same proxy signs in as usual.
    let body = json!({"email": "bob@example.com", "password": "correct horse"});
    let (status, signed_in) = post_via(&app, "203.0.113.6", "/v1/auth/signin", body).await;
    assert!(status.is_success(), "{status}: {signed_in}");
}
