//! The web console: its page served at `/` and at every path of its own, with a policy that
//! allows no inline script and nothing from elsewhere; its assets by version; and the walk of
//! `tests/console/walk.mjs` through it in a real browser.

use std::path::Path;
use std::process::Command;

use jsonwebtoken::Algorithm;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantry_server::http::HttpConfig;
use tenantry_server::identity::external::OidcConfig;
use tenantry_server::vault::Vault;

use crate::fake_ai::{self, Fake, Script};
use crate::helpers::{same_origin_references, TestApp};
use crate::provider::{rsa, Provider, CLIENT_ID, CLIENT_SECRET};

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.request(Method::GET, None, path)
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn the_console_is_one_page_that_loads_only_its_own_versioned_assets() {
    let app = TestApp::spawn().await;
    for path in [
        "/",
        "/sign-in",
        "/orgs/0191d6a4-0000-7000-8000-000000000000",
        "/orgs/0191d6a4-0000-7000-8000-000000000000/kpis/x",
    ] {
        let response = get(&app, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let policy = headers["content-security-policy"].to_str().expect("policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self';",
            "style-src 'self';",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{directive} in {policy}");
        }
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }

    let page = get(&app, "/").await.text().await.expect("page");
    let assets: Vec<String> = same_origin_references(&page, &["src=\"", "href=\""], true)
        .into_iter()
        .filter(|value| value.starts_with("/console/"))
        .collect();
    assert_eq!(assets.len(), 2, "a script and a style sheet: {page}");
    assert!(!page.contains("<script>"), "no inline script");
    for asset in &assets {
        let response = get(&app, asset).await;
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        // Another version of the same file is not served: a cached page never mixes builds.
        let stale = asset.replacen("/console/", "/console/0", 1);
        assert_eq!(get(&app, &stale).await.status(), StatusCode::NOT_FOUND);
    }
    // The API's own paths stay the API's.
    let unknown = get(&app, "/v1/nothing-here").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        unknown.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_walks_through_the_console_in_a_real_browser() {
    // With a vault (an integration's credentials are stored) and the assistant's providers
    // played by a local server that streams its reply in pieces.
    let (_fake, ai) = Fake::start(Script::reply(
        &["Revenue ", "grew ", "12 % this month."],
        40,
        6,
    ))
    .await;
    let app = TestApp::spawn_with(HttpConfig {
        vault: Some(crate::integrations::vault(&Vault::new_key_entry("walk"))),
        ai: fake_ai::config(&ai),
        ..HttpConfig::default()
    })
    .await;
    // Every new organization of this test's database may use the assistant.
    sqlx::query("UPDATE plans SET tier = 'pro', features = '{integrations,ai}' WHERE is_default")
        .execute(&app.db.owner().await.0)
        .await
        .expect("default plan");
    let walked = walk("walk.mjs", &app).await;
    assert!(walked.contains("walked: sign-in"), "{walked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_google_in_a_real_browser() {
    let provider = Provider::start(vec![rsa("k1", "rsa1.pem")]).await;
    provider.sign_in_browser_as("g-grace", "grace@example.com");
    let app = TestApp::spawn_configured(|base| HttpConfig {
        oidc: Some(OidcConfig {
            issuer: provider.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_url: format!("{base}/v1/auth/oidc/callback"),
            provider: "google".into(),
            algorithms: vec![Algorithm::RS256],
        }),
        ..HttpConfig::default()
    })
    .await;
    let walked = walk("google.mjs", &app).await;
    assert!(walked.contains("walked: sign-in with Google"), "{walked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reads_a_tools_archive_in_a_real_browser() {
    let app = TestApp::spawn().await;
    let (ada, _) = crate::auth::sign_up(&app, "ada@example.com", ARCHIVE_PASSWORD).await;
    // Ada's canvas, with a hypothesis in the tool's own table, completed and then archived.
    let entries = format!("/v1/orgs/{}/tools/value_proposition/entries", ada.org);
    let (status, entry) = app
        .call(
            Method::POST,
            &ada,
            &entries,
            Some(json!({"data": {"segment": "founders"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    let canvas = format!("{entries}/{}", entry["id"].as_str().expect("id"));
    let row = json!({"hypothesis_text": "founders pay for focus"});
    let (status, _) = app
        .call(
            Method::POST,
            &ada,
            &format!("{canvas}/hypotheses"),
            Some(row),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    crate::fasttrack::complete(&app, &ada, &canvas).await;
    let soon = chrono::Utc::now() + chrono::Duration::seconds(1);
    let moved = tenantry_db::maintenance::archive(&app.db.owner().await, soon, |_, _| {})
        .await
        .expect("archive");
    assert_eq!(moved, 1);
    let walked = walk("archive.mjs", &app).await;
    assert!(walked.contains("walked: archive"), "{walked}");
}

/// The password `archive.mjs` signs in with.
const ARCHIVE_PASSWORD: &str = "correct horse battery";

/// Runs a script of `tests/console` in Node against `app`; its output.
async fn walk(script: &'static str, app: &TestApp) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "the walk's packages are missing: npm ci --prefix {} (bash .ci/run does)",
        dir.display()
    );
    let base = app.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(&base)
            .current_dir(&dir)
            .output()
            .expect("run node (Debian's nodejs; bash .ci/run installs it)")
    })
    .await
    .expect("walk");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{stderr}"
    );
    stdout.into_owned()
}
