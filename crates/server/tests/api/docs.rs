//! The API reference as a person sees it: `/docs` renders in a real browser (Debian's Chromium,
//! headless) with every host but this one unreachable, and the page names no other origin.

use std::process::Command;

use reqwest::{Method, StatusCode};

use crate::helpers::{same_origin_references, TestApp};

#[tokio::test]
async fn the_reference_loads_nothing_from_elsewhere() {
    let app = TestApp::spawn().await;
    let page = app
        .request(Method::GET, None, "/docs")
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("page");
    // Every resource the page names is a path on this server.
    let named = same_origin_references(&page, &["src=\"", "href=\"", "data-url=\""], false).len();
    assert!(named >= 2, "the page names its script and document: {page}");
    let script = page
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("script");
    let response = app
        .request(Method::GET, None, script)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.expect("body").len() > 1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_renders_in_a_browser_with_the_network_cut() {
    let app = TestApp::spawn().await;
    let url = format!("{}/docs", app.base);
    let profile = std::env::temp_dir().join(format!("tenantry-chromium-{}", uuid::Uuid::new_v4()));
    let dom = tokio::task::spawn_blocking(move || {
        let output = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // Every host but this machine is unreachable.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--virtual-time-budget=20000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(&url)
            .output()
            .expect("run chromium (Debian's chromium package; bash .ci/run installs it)");
        let _ = std::fs::remove_dir_all(&profile);
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
    .await
    .expect("chromium task");
    // Rendered by the script from the OpenAPI document, not present in the served HTML.
    for expected in [
        "Tenantry API",
        "Readiness: the database answers.",
        "organizations",
    ] {
        assert!(
            dom.contains(expected),
            "{expected:?} not rendered; DOM:\n{}",
            &dom[..dom.len().min(2000)]
        );
    }
}
