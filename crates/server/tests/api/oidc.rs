//! Google sign-in (OpenID Connect code flow) and external bearer JWTs (Clerk), against the
//! provider played in `provider.rs`. Every forged or mismatched token must fail to get in and
//! leave no account behind.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_server::http::HttpConfig;
use tenantry_server::identity::external::{JwtConfig, OidcConfig};

use crate::helpers::{assert_problem, read, TestApp, TestUser};
use crate::provider::{
    ec, hmac_with_public_key, rsa, unsigned, AuthRequest, Provider, CLIENT_ID, CLIENT_SECRET,
    REDIRECT_URL,
};

const APP_ORIGIN: &str = "https://app.example";

async fn setup(min_refetch: Duration) -> (TestApp, Provider) {
    let provider = Provider::start(vec![rsa("k1", "rsa1.pem"), ec("e1", "ec1.pem")]).await;
    let config = HttpConfig {
        oidc: Some(OidcConfig {
            issuer: provider.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_url: REDIRECT_URL.into(),
            provider: "google".into(),
            algorithms: vec![Algorithm::RS256],
        }),
        jwt: Some(JwtConfig {
            issuer: provider.issuer.clone(),
            jwks_url: provider.jwks_url(),
            audience: None,
            authorized_parties: vec![APP_ORIGIN.into()],
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        }),
        jwks_min_refetch: min_refetch,
        ..HttpConfig::default()
    };
    (TestApp::spawn_with(config).await, provider)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Starts a sign-in at our service; the authorization request it sends the browser with.
async fn start(app: &TestApp) -> AuthRequest {
    let response = no_redirects()
        .get(format!("{}/v1/auth/oidc/start", app.base))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::FOUND);
    let cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        cookie.starts_with("tenantry_oidc_state=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("Location")
        .to_string();
    AuthRequest::parse(&location)
}

/// The browser returning from the provider, carrying the flow cookie our service set for `state`.
async fn callback(app: &TestApp, code: &str, state: &str) -> (StatusCode, Value) {
    callback_with_cookie(app, code, state, Some(state)).await
}

async fn callback_with_cookie(
    app: &TestApp,
    code: &str,
    state: &str,
    cookie: Option<&str>,
) -> (StatusCode, Value) {
    let url = format!(
        "{}/v1/auth/oidc/callback?code={code}&state={state}",
        app.base
    );
    let mut request = no_redirects().get(url);
    if let Some(cookie) = cookie {
        request = request.header(
            reqwest::header::COOKIE,
            format!("tenantry_oidc_state={cookie}"),
        );
    }
    read(request.send().await.expect("send")).await
}

/// One complete sign-in where the provider's ID token is `make(request)`.
async fn sign_in_with(
    app: &TestApp,
    provider: &Provider,
    make: impl Fn(&AuthRequest) -> String,
) -> (StatusCode, Value) {
    let request = start(app).await;
    let code = provider.issue_code(&request, make(&request));
    callback(app, &code, &request.state).await
}

async fn user_count(app: &TestApp) -> i64 {
    let owner = app.db.owner().await;
    sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&owner.0)
        .await
        .expect("count")
}

#[tokio::test]
async fn google_sign_in_creates_finds_and_links_accounts() {
    let (app, provider) = setup(Duration::from_secs(60)).await;
    let k1 = rsa("k1", "rsa1.pem");
    let (status, first) = sign_in_with(&app, &provider, |r| {
        k1.sign(&provider.id_claims(r, "g-100", "grace@example.com"))
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["user"]["provider"], "google");
    assert_eq!(first["user"]["avatar_url"], "https://img.example/grace.png");
    let grace = TestUser {
        id: first["user"]["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("id"),
        org: uuid::Uuid::nil(),
        token: first["session"]["token"].as_str().expect("token").into(),
    };
    let (_, orgs) = app.call(Method::GET, &grace, "/v1/orgs", None).await;
    assert_eq!(
        orgs["items"].as_array().map(Vec::len),
        Some(1),
        "first sign-in creates the organization"
    );

    // Signing in again finds the same account by issuer + subject, even with a new email.
    let (status, again) = sign_in_with(&app, &provider, |r| {
        let mut c = provider.id_claims(r, "g-100", "grace.hopper@example.com");
        c["name"] = json!("Grace B. Hopper");
        k1.sign(&c)
    })
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["user"]["id"], first["user"]["id"]);
    assert_eq!(again["user"]["name"], "Grace B. Hopper");

    // A password account with the same, verified, email is linked, not duplicated.
    let alice = app.user("alice@example.com").await;
    let (status, linked) = sign_in_with(&app, &provider, |r| {
        k1.sign(&provider.id_claims(r, "g-200", "Alice@Example.com"))
    })
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(linked["user"]["id"], alice.id.to_string());
    assert_eq!(user_count(&app).await, 2);
}

/// The browser itself coming back from the provider (a navigation), carrying `cookie` for the
/// flow: the answer's status, `Location` and any session cookie.
async fn navigate_back(
    app: &TestApp,
    code: &str,
    state: &str,
    cookie: &str,
) -> (StatusCode, String, Option<String>) {
    let response = no_redirects()
        .get(format!(
            "{}/v1/auth/oidc/callback?code={code}&state={state}",
            app.base
        ))
        .header(
            reqwest::header::COOKIE,
            format!("tenantry_oidc_state={cookie}"),
        )
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("send");
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let session = header(reqwest::header::SET_COOKIE)
        .and_then(|c| c.split(';').next().map(str::to_string))
        .filter(|c| c.starts_with("tenantry_session="));
    (
        response.status(),
        header(LOCATION).unwrap_or_default(),
        session,
    )
}

#[tokio::test]
async fn a_browser_back_from_google_goes_on_to_the_console_signed_in_by_its_cookie_or_told_it_failed(
) {
    let (app, provider) = setup(Duration::from_secs(60)).await;
    // A sign-in page learns whether to offer Google.
    let methods = |app: &TestApp| {
        let request = app.request(Method::GET, None, "/v1/auth/methods").send();
        async move { read(request.await.expect("send")).await.1 }
    };
    assert_eq!(
        methods(&app).await,
        json!({"password": true, "oidc": "google"})
    );
    let plain = TestApp::spawn().await;
    assert_eq!(
        methods(&plain).await,
        json!({"password": true, "oidc": null})
    );

    let k1 = rsa("k1", "rsa1.pem");
    let request = start(&app).await;
    let code = provider.issue_code(
        &request,
        k1.sign(&provider.id_claims(&request, "g-300", "grace@example.com")),
    );
    // A callback carrying another browser's flow (login CSRF) is sent to sign-in, signed in as
    // no one, and makes no account.
    let (status, location, session) = navigate_back(&app, &code, &request.state, "another").await;
    assert_eq!(
        (status, location.as_str(), &session),
        (StatusCode::SEE_OTHER, "/sign-in?failed=oidc", &None)
    );
    assert_eq!(user_count(&app).await, 0);

    // The browser that started it is signed in by the cookie alone and sent on to the console.
    let request = start(&app).await;
    let code = provider.issue_code(
        &request,
        k1.sign(&provider.id_claims(&request, "g-300", "grace@example.com")),
    );
    let (status, location, session) =
        navigate_back(&app, &code, &request.state, &request.state).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/"));
    let cookie = session.expect("session cookie");
    let (status, me) = app
        .cookie_call(Method::GET, "/v1/me", &cookie, None, None)
        .await;
    assert_eq!(
        (status, &me["user"]["email"]),
        (StatusCode::OK, &json!("grace@example.com"))
    );
}

#[tokio::test]
async fn forged_or_mismatched_id_tokens_do_not_get_in() {
    let (app, provider) = setup(Duration::from_secs(60)).await;
    let k1 = rsa("k1", "rsa1.pem");
    let other_key_same_kid = rsa("k1", "rsa2.pem");
    let unknown_kid = rsa("k9", "rsa2.pem");
    let now = chrono::Utc::now().timestamp();
    type Forge<'a> = Box<dyn Fn(&AuthRequest) -> String + 'a>;
    let claims = |r: &AuthRequest| provider.id_claims(r, "g-evil", "victim@example.com");
    let with = |r: &AuthRequest, key: &str, value: Value| {
        let mut c = claims(r);
        c[key] = value;
        c
    };
    let attacks: Vec<(&str, Forge)> = vec![
        ("alg none", Box::new(|r| unsigned("k1", &claims(r)))),
        (
            "HS256 signed with the public key",
            Box::new(|r| hmac_with_public_key("k1", &claims(r))),
        ),
        (
            "wrong issuer",
            Box::new(|r| k1.sign(&with(r, "iss", json!("https://evil.example")))),
        ),
        (
            "wrong audience",
            Box::new(|r| k1.sign(&with(r, "aud", json!("someone-else")))),
        ),
        (
            "expired",
            Box::new(|r| k1.sign(&with(r, "exp", json!(now - 600)))),
        ),
        (
            "not yet valid",
            Box::new(|r| k1.sign(&with(r, "nbf", json!(now + 600)))),
        ),
        ("unknown key id", Box::new(|r| unknown_kid.sign(&claims(r)))),
        (
            "bad signature",
            Box::new(|r| other_key_same_kid.sign(&claims(r))),
        ),
        (
            "nonce mismatch",
            Box::new(|r| k1.sign(&with(r, "nonce", json!("replayed-nonce")))),
        ),
        (
            "unverified email",
            Box::new(|r| k1.sign(&with(r, "email_verified", json!(false)))),
        ),
        (
            "no subject",
            Box::new(|r| {
                let mut c = claims(r);
                c.as_object_mut().map(|o| o.remove("sub"));
                k1.sign(&c)
            }),
        ),
    ];
    for (name, forge) in &attacks {
        let got = sign_in_with(&app, &provider, forge).await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_token");
        assert_eq!(user_count(&app).await, 0, "{name} created an account");
    }
    // ES256 is a fine algorithm, but not one Google's configuration accepts.
    let e1 = ec("e1", "ec1.pem");
    let got = sign_in_with(&app, &provider, |r| e1.sign(&claims(r))).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn state_and_codes_are_single_use() {
    let (app, provider) = setup(Duration::from_secs(60)).await;
    let k1 = rsa("k1", "rsa1.pem");
    // An unknown state (a forged callback) is refused.
    let request = start(&app).await;
    let code = provider.issue_code(
        &request,
        k1.sign(&provider.id_claims(&request, "g-1", "a@example.com")),
    );
    let got = callback(&app, &code, "forged-state").await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_token");
    // Login CSRF: the right code and state, but delivered to a browser that did not start the flow.
    for cookie in [None, Some("another-flow")] {
        let got = callback_with_cookie(&app, &code, &request.state, cookie).await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_token");
    }
    // The real one works once.
    let (status, _) = callback(&app, &code, &request.state).await;
    assert_eq!(status, StatusCode::OK);
    let got = callback(&app, &code, &request.state).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_token");
    // A replayed code with a fresh state: the provider refuses it.
    let fresh = start(&app).await;
    let got = callback(&app, &code, &fresh.state).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_token");
    // A provider error is not a sign-in.
    let url = format!(
        "{}/v1/auth/oidc/callback?error=access_denied&state={}",
        app.base, fresh.state
    );
    let got = read(no_redirects().get(url).send().await.expect("send")).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn rotated_keys_are_fetched_but_unknown_keys_cannot_force_refetches() {
    let (app, provider) = setup(Duration::from_secs(3600)).await;
    let k1 = rsa("k1", "rsa1.pem");
    let claims = |sub: &str| {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": provider.issuer, "sub": sub, "azp": APP_ORIGIN, "iat": now, "exp": now + 300})
    };
    let bearer = |token: String| TestUser {
        id: uuid::Uuid::nil(),
        org: uuid::Uuid::nil(),
        token,
    };
    let (status, _) = app
        .call(
            Method::GET,
            &bearer(k1.sign(&claims("user_1"))),
            "/v1/me",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(provider.jwks_hits(), 1);
    // Unknown key ids within the refetch interval do not hit the provider again.
    for kid in ["k7", "k8", "k9"] {
        let got = app
            .call(
                Method::GET,
                &bearer(rsa(kid, "rsa2.pem").sign(&claims("user_1"))),
                "/v1/me",
                None,
            )
            .await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_token");
    }
    assert_eq!(provider.jwks_hits(), 1);

    // With refetching allowed, a key published after the first fetch (rotation) is picked up.
    let (app, provider) = setup(Duration::ZERO).await;
    let claims = |sub: &str| {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": provider.issuer, "sub": sub, "azp": APP_ORIGIN, "iat": now, "exp": now + 300})
    };
    let (status, _) = app
        .call(
            Method::GET,
            &bearer(k1.sign(&claims("user_2"))),
            "/v1/me",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let k2 = rsa("k2", "rsa2.pem");
    provider.publish(k2.clone());
    let (status, _) = app
        .call(
            Method::GET,
            &bearer(k2.sign(&claims("user_2"))),
            "/v1/me",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(provider.jwks_hits(), 2);
}

#[tokio::test]
async fn external_jwts_provision_once_and_forgeries_fail() {
    let (app, provider) = setup(Duration::from_secs(60)).await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": provider.issuer, "sub": "user_2abc", "azp": APP_ORIGIN, "iat": now, "exp": now + 300,
                        "email": "clerk.user@example.com", "name": "Clerk User"});
    let bearer = |token: String| TestUser {
        id: uuid::Uuid::nil(),
        org: uuid::Uuid::nil(),
        token,
    };
    let k1 = rsa("k1", "rsa1.pem");
    let e1 = ec("e1", "ec1.pem");
    let with = |key: &str, value: Value| {
        let mut c = claims.clone();
        c[key] = value;
        c
    };
    let forgeries = [
        unsigned("k1", &claims),
        hmac_with_public_key("k1", &claims),
        k1.sign(&with("iss", json!("https://evil.example"))),
        k1.sign(&with("azp", json!("https://evil.example"))),
        k1.sign(&with("exp", json!(now - 600))),
        k1.sign(&with("nbf", json!(now + 600))),
        rsa("k9", "rsa2.pem").sign(&claims),
        rsa("k1", "rsa2.pem").sign(&claims),
        format!("{}x", k1.sign(&claims)),
    ];
    for token in forgeries {
        let got = app.call(Method::GET, &bearer(token), "/v1/me", None).await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_token");
    }
    assert_eq!(user_count(&app).await, 0);

    // RS256 and ES256 both work; the account is provisioned once.
    let (status, me) = app
        .call(Method::GET, &bearer(k1.sign(&claims)), "/v1/me", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["provider"], "clerk");
    let (status, again) = app
        .call(Method::GET, &bearer(e1.sign(&claims)), "/v1/me", None)
        .await;
    assert_eq!(
        (status, &again["user"]["id"]),
        (StatusCode::OK, &me["user"]["id"])
    );
    assert_eq!(user_count(&app).await, 1);
    let (_, orgs) = app
        .call(Method::GET, &bearer(k1.sign(&claims)), "/v1/orgs", None)
        .await;
    assert_eq!(orgs["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_password_account_pre_registered_by_someone_else_is_claimed_by_the_verified_owner() {
    let (app, provider) = setup(Duration::from_secs(60)).await;
    // The attacker registers the victim's address with a password they know.
    let (status, squatter) = read(
        app.request(Method::POST, None, "/v1/auth/signup")
            .json(&json!({"email": "victim@example.com", "password": "attacker knows"}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let squatter = TestUser {
        id: uuid::Uuid::nil(),
        org: uuid::Uuid::nil(),
        token: squatter["session"]["token"].as_str().expect("token").into(),
    };
    // The real owner signs in with Google, which verified the address.
    let k1 = rsa("k1", "rsa1.pem");
    let (status, owner) = sign_in_with(&app, &provider, |r| {
        k1.sign(&provider.id_claims(r, "g-victim", "victim@example.com"))
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{owner}");
    // The attacker's session and password no longer open the account.
    let got = app.call(Method::GET, &squatter, "/v1/me", None).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    let got = read(
        app.request(Method::POST, None, "/v1/auth/signin")
            .json(&json!({"email": "victim@example.com", "password": "attacker knows"}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "invalid_credentials");
}
