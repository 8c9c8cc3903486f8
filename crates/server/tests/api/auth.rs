//! Password sign-up and sign-in, sessions, cookies with CSRF, rate limiting: each from the
//! attacker's side too.

use reqwest::header::SET_COOKIE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, read, refused_fields, TestApp, TestUser};

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    read(
        app.request(Method::POST, None, path)
            .json(&body)
            .send()
            .await
            .expect("send"),
    )
    .await
}

/// Signs up `email` with `password`; the user with the issued token.
pub(crate) async fn sign_up(app: &TestApp, email: &str, password: &str) -> (TestUser, Value) {
    let (status, body) = post(
        app,
        "/v1/auth/signup",
        json!({"email": email, "password": password, "name": "Test"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user = TestUser {
        id: body["user"]["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("user id"),
        org: body["organization"]["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("org id"),
        token: body["session"]["token"]
            .as_str()
            .expect("token")
            .to_string(),
    };
    (user, body)
}

fn as_token(body: &Value) -> TestUser {
    TestUser {
        id: body["user"]["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("user id"),
        org: uuid::Uuid::nil(),
        token: body["session"]["token"]
            .as_str()
            .expect("token")
            .to_string(),
    }
}

#[tokio::test]
async fn sign_up_gives_an_owned_organization_a_session_and_a_safe_cookie() {
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::POST, None, "/v1/auth/signup")
        .json(&json!({"email": "Alice@Example.com", "password": "correct horse", "organization_name": "Acme"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookie = response
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    for attribute in [
        "tenantry_session=tnt_",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
    ] {
        assert!(
            cookie.contains(attribute),
            "{attribute} missing in {cookie}"
        );
    }
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["organization"]["name"], "Acme");
    assert_eq!(body["organization"]["my_role"], "owner");
    let user = as_token(&body);
    let (status, me) = app.call(Method::GET, &user, "/v1/me", None).await;
    assert_eq!(
        (status, &me["user"]["email"]),
        (StatusCode::OK, &json!("Alice@Example.com"))
    );

    // The same address in other letters is the same account.
    let got = post(
        &app,
        "/v1/auth/signup",
        json!({"email": "alice@EXAMPLE.com", "password": "another one"}),
    )
    .await;
    assert_problem(&got, StatusCode::CONFLICT, "email_taken");
    for bad in [
        json!({"email": "nope", "password": "long enough"}),
        json!({"email": "b@example.com", "password": "short"}),
    ] {
        let got = post(&app, "/v1/auth/signup", bad).await;
        assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    // Every broken rule is named in the one answer, so a form can show them all.
    let got = post(
        &app,
        "/v1/auth/signup",
        json!({"email": "nope", "password": "short", "organization_name": " "}),
    )
    .await;
    let fields = refused_fields(&got);
    assert_eq!(fields, ["email", "password", "organization_name"]);
}

#[tokio::test]
async fn sign_in_never_says_whether_an_email_exists() {
    let app = TestApp::spawn().await;
    sign_up(&app, "alice@example.com", "correct horse").await;
    let (status, body) = post(
        &app,
        "/v1/auth/signin",
        json!({"email": "ALICE@example.com", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let user = as_token(&body);
    let (_, me) = app.call(Method::GET, &user, "/v1/me", None).await;
    assert!(me["user"]["last_login_at"].is_string());

    let wrong_password = post(
        &app,
        "/v1/auth/signin",
        json!({"email": "alice@example.com", "password": "wrong horse"}),
    )
    .await;
    let unknown_email = post(
        &app,
        "/v1/auth/signin",
        json!({"email": "nobody@example.com", "password": "wrong horse"}),
    )
    .await;
    assert_problem(
        &wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_eq!(wrong_password, unknown_email);
}

#[tokio::test]
async fn brute_force_is_slowed_per_email_and_per_ip() {
    let app = TestApp::spawn().await;
    sign_up(&app, "alice@example.com", "correct horse").await;
    for _ in 0..5 {
        let got = post(
            &app,
            "/v1/auth/signin",
            json!({"email": "alice@example.com", "password": "guess"}),
        )
        .await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    // Locked for this email, even with the right password.
    let response = app
        .request(Method::POST, None, "/v1/auth/signin")
        .json(&json!({"email": "alice@example.com", "password": "correct horse"}))
        .send()
        .await
        .expect("send");
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry_after > 0 && retry_after <= 900, "{retry_after}");
    let got = read(response).await;
    assert_problem(&got, StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    // Spraying many emails from one IP hits the IP limit.
    for i in 0..15 {
        let got = post(
            &app,
            "/v1/auth/signin",
            json!({"email": format!("user{i}@example.com"), "password": "guess"}),
        )
        .await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let got = post(
        &app,
        "/v1/auth/signin",
        json!({"email": "fresh@example.com", "password": "guess"}),
    )
    .await;
    assert_problem(&got, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test]
async fn sessions_can_be_listed_and_ended_but_only_ones_own() {
    let app = TestApp::spawn().await;
    let (alice, _) = sign_up(&app, "alice@example.com", "correct horse").await;
    let (_, second) = post(
        &app,
        "/v1/auth/signin",
        json!({"email": "alice@example.com", "password": "correct horse"}),
    )
    .await;
    let alice2 = as_token(&second);
    let (bob, _) = sign_up(&app, "bob@example.com", "correct horse").await;

    let (status, sessions) = app.call(Method::GET, &alice, "/v1/me/sessions", None).await;
    assert_eq!(status, StatusCode::OK);
    let sessions = sessions.as_array().expect("list").clone();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let other = sessions
        .iter()
        .find(|s| s["current"] == false)
        .expect("the other session");
    let other_id = other["id"].as_str().expect("id");

    // Bob cannot end alice's session; alice can.
    let got = app
        .call(
            Method::DELETE,
            &bob,
            &format!("/v1/me/sessions/{other_id}"),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let (status, _) = app.call(Method::GET, &alice2, "/v1/me", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::DELETE,
            &alice,
            &format!("/v1/me/sessions/{other_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = app.call(Method::GET, &alice2, "/v1/me", None).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthenticated");

    // Sign out ends this session; bob's stays.
    let (status, _) = app
        .call(Method::POST, &alice, "/v1/auth/signout", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = app.call(Method::GET, &alice, "/v1/me", None).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (status, _) = app.call(Method::GET, &bob, "/v1/me", None).await;
    assert_eq!(status, StatusCode::OK);

    // Signing out everywhere ends all of bob's sessions.
    let (_, again) = post(
        &app,
        "/v1/auth/signin",
        json!({"email": "bob@example.com", "password": "correct horse"}),
    )
    .await;
    let bob2 = as_token(&again);
    let (status, _) = app
        .call(Method::DELETE, &bob2, "/v1/me/sessions", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for token in [&bob, &bob2] {
        let got = app.call(Method::GET, token, "/v1/me", None).await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
}

#[tokio::test]
async fn idle_and_deactivated_sessions_stop_working() {
    let app = TestApp::spawn().await;
    let (alice, _) = sign_up(&app, "alice@example.com", "correct horse").await;
    let (bob, _) = sign_up(&app, "bob@example.com", "correct horse").await;
    let owner = app.db.owner().await;
    // Time passes: alice's session has been idle for 8 days; bob's account is deactivated.
    sqlx::query("UPDATE sessions SET last_seen_at = now() - interval '8 days' WHERE user_id = $1")
        .bind(alice.id)
        .execute(&owner.0)
        .await
        .expect("age");
    sqlx::query("UPDATE users SET is_active = false WHERE id = $1")
        .bind(bob.id)
        .execute(&owner.0)
        .await
        .expect("deactivate");
    for user in [&alice, &bob] {
        let got = app.call(Method::GET, user, "/v1/me", None).await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let got = post(
        &app,
        "/v1/auth/signin",
        json!({"email": "bob@example.com", "password": "correct horse"}),
    )
    .await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let (alice, _) = sign_up(&app, "alice@example.com", "correct horse").await;
    let (_, other) = post(
        &app,
        "/v1/auth/signin",
        json!({"email": "alice@example.com", "password": "correct horse"}),
    )
    .await;
    let elsewhere = as_token(&other);

    let got = app
        .call(
            Method::PUT,
            &alice,
            "/v1/me/password",
            Some(json!({"current_password": "guess", "new_password": "battery staple"})),
        )
        .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let got = app
        .call(
            Method::PUT,
            &alice,
            "/v1/me/password",
            Some(json!({"current_password": "correct horse", "new_password": "short"})),
        )
        .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (status, _) = app
        .call(
            Method::PUT,
            &alice,
            "/v1/me/password",
            Some(json!({"current_password": "correct horse", "new_password": "battery staple"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, _) = app.call(Method::GET, &alice, "/v1/me", None).await;
    assert_eq!(status, StatusCode::OK, "the current session stays");
    let got = app.call(Method::GET, &elsewhere, "/v1/me", None).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    let got = post(
        &app,
        "/v1/auth/signin",
        json!({"email": "alice@example.com", "password": "correct horse"}),
    )
    .await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let (status, _) = post(
        &app,
        "/v1/auth/signin",
        json!({"email": "alice@example.com", "password": "battery staple"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_to_write() {
    let app = TestApp::spawn().await;
    let (_, body) = sign_up(&app, "alice@example.com", "correct horse").await;
    let token = body["session"]["token"].as_str().expect("token");
    let csrf = body["session"]["csrf_token"].as_str().expect("csrf");
    let (_, other) = sign_up(&app, "bob@example.com", "correct horse").await;
    let others_csrf = other["session"]["csrf_token"].as_str().expect("csrf");
    let cookie = format!("theme=dark; tenantry_session={token}");

    let (status, me) = app
        .cookie_call(Method::GET, "/v1/me", &cookie, None, None)
        .await;
    assert_eq!(
        (status, &me["user"]["email"]),
        (StatusCode::OK, &json!("alice@example.com"))
    );

    // A forged cross-site write carries the cookie but cannot know the CSRF token.
    for header in [None, Some("wrong"), Some(others_csrf)] {
        let got = app
            .cookie_call(
                Method::PATCH,
                "/v1/me",
                &cookie,
                header,
                Some(json!({"name": "Pwned"})),
            )
            .await;
        assert_problem(&got, StatusCode::FORBIDDEN, "csrf_failed");
    }
    let (_, me) = app
        .cookie_call(Method::GET, "/v1/me", &cookie, None, None)
        .await;
    assert_eq!(me["user"]["name"], "Test", "nothing changed");

    let (status, me) = app
        .cookie_call(
            Method::PATCH,
            "/v1/me",
            &cookie,
            Some(csrf),
            Some(json!({"name": "Alice"})),
        )
        .await;
    assert_eq!(
        (status, &me["user"]["name"]),
        (StatusCode::OK, &json!("Alice"))
    );
}

/// The session's cookie from a `Set-Cookie` answer.
fn session_cookie_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .filter(|c| c.starts_with("tenantry_session="))
        })
        .expect("session cookie")
        .to_string()
}

#[tokio::test]
async fn the_consoles_own_sign_in_holds_no_bearer_token_and_its_csrf_token_is_read_back_by_cookie()
{
    let app = TestApp::spawn().await;
    sign_up(&app, "alice@example.com", "correct horse").await;
    let sign_in = |site: &'static str| {
        app.request(Method::POST, None, "/v1/auth/signin")
            .header("sec-fetch-site", site)
            .header("sec-fetch-mode", "cors")
            .json(&json!({"email": "alice@example.com", "password": "correct horse"}))
            .send()
    };
    // From a script of the service's own page: the cookie is the credential, the body has none.
    let response = sign_in("same-origin").await.expect("send");
    let cookie = session_cookie_of(&response);
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["session"].get("token").is_none(), "{body}");
    assert!(!body.to_string().contains("tnt_s_"), "{body}");
    let csrf = body["session"]["csrf_token"].as_str().expect("csrf");

    // The cookie reads its session's CSRF token back (a page signed in by a redirect needs it),
    // and writes with it.
    let (status, read_back) = app
        .cookie_call(Method::GET, "/v1/auth/csrf", &cookie, None, None)
        .await;
    assert_eq!(
        (status, &read_back["csrf_token"]),
        (StatusCode::OK, &json!(csrf))
    );
    let (status, _) = app
        .cookie_call(
            Method::PATCH,
            "/v1/me",
            &cookie,
            Some(csrf),
            Some(json!({"name": "Alice"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Another site's page, or a program, is a client of the bearer token: it gets one.
    let (_, body) = read(sign_in("cross-site").await.expect("send")).await;
    let bearer = body["session"]["token"].as_str().expect("token");
    assert!(bearer.starts_with("tnt_s_"));
    // No credential, or one that is not a session (an API key), has no CSRF token.
    let (status, _) = read(
        app.request(Method::GET, None, "/v1/auth/csrf")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let alice = as_token(&body);
    let me = app.call(Method::GET, &alice, "/v1/orgs", None).await.1;
    let org = me["items"][0]["id"].as_str().expect("org");
    let (_, key) = app
        .call(
            Method::POST,
            &alice,
            &format!("/v1/orgs/{org}/api-keys"),
            Some(json!({"name": "ci", "access": "read"})),
        )
        .await;
    let key = key["secret"].as_str().expect("secret");
    let (status, _) = read(
        app.request(Method::GET, Some(key), "/v1/auth/csrf")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn probing_addresses_through_sign_up_is_slowed_without_locking_their_owners_out() {
    let app = TestApp::spawn().await;
    sign_up(&app, "alice@example.com", "correct horse").await;
    for _ in 0..20 {
        let got = post(
            &app,
            "/v1/auth/signup",
            json!({"email": "alice@example.com", "password": "whatever123"}),
        )
        .await;
        assert_problem(&got, StatusCode::CONFLICT, "email_taken");
    }
    let got = post(
        &app,
        "/v1/auth/signup",
        json!({"email": "alice@example.com", "password": "whatever123"}),
    )
    .await;
    assert_problem(&got, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let got = post(
        &app,
        "/v1/auth/signup",
        json!({"email": "new@example.com", "password": "whatever123"}),
    )
    .await;
    assert_problem(&got, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Alice herself, from her own address, can still sign in: her email was not locked.
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let response = elsewhere
        .post(format!("{}/v1/auth/signin", app.base))
        .json(&json!({"email": "alice@example.com", "password": "correct horse"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
}
