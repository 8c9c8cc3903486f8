//! A burst of unauthenticated sign-ins, from the attacker's side: password hashing is bounded in
//! concurrency and memory, the limits count attempts before they are hashed, and a legitimate
//! user still gets in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantry_server::http::HttpConfig;

use crate::helpers::TestApp;

/// The resident memory of this process (the server runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

async fn sign_in(app: &TestApp, from: &str, email: &str, password: &str) -> StatusCode {
    app.request(Method::POST, None, "/v1/auth/signin")
        .header("x-forwarded-for", from)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("send")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_sign_ins_is_bounded_and_a_real_user_still_gets_in() {
    // Behind a proxy, so that every request can come from its own address.
    let app = TestApp::spawn_with(HttpConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().expect("cidr")],
        ..HttpConfig::default()
    })
    .await;
    let (status, body) = crate::helpers::read(
        app.request(Method::POST, None, "/v1/auth/signup")
            .json(&json!({"email": "alice@example.com", "password": "correct horse"}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Warm: the hashing buffers exist, the pools are filled.
    assert_eq!(
        sign_in(&app, "192.0.2.1", "alice@example.com", "correct horse").await,
        StatusCode::OK
    );
    let before = rss();

    // 250 guesses at one account from one address, 250 at many accounts from many addresses.
    let one_target = (0..250).map(|_| sign_in(&app, "198.51.100.7", "victim@example.com", "guess"));
    let sprayed: Vec<_> = (0..250)
        .map(|i| {
            (
                format!("203.0.113.{}", i % 250),
                format!("user{i}@example.com"),
            )
        })
        .collect();
    let spray = sprayed
        .iter()
        .map(|(ip, email)| sign_in(&app, ip, email, "guess"));
    let legitimate = async {
        let started = Instant::now();
        loop {
            match sign_in(&app, "192.0.2.200", "alice@example.com", "correct horse").await {
                StatusCode::OK => return started.elapsed(),
                // Busy: as a client does, retry after the server's Retry-After (1 s).
                StatusCode::SERVICE_UNAVAILABLE => tokio::time::sleep(Duration::from_secs(1)).await,
                other => panic!("the real user got {other}"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the real user never got in"
            );
        }
    };
    let (targeted, sprayed, waited) =
        tokio::join!(join_all(one_target), join_all(spray), legitimate);
    let during = rss();

    let count = |statuses: &[StatusCode]| {
        let mut by: HashMap<u16, usize> = HashMap::new();
        for s in statuses {
            *by.entry(s.as_u16()).or_default() += 1;
        }
        by
    };
    let targeted = count(&targeted);
    let sprayed = count(&sprayed);
    for (what, by) in [("targeted", &targeted), ("sprayed", &sprayed)] {
        for status in by.keys() {
            assert!(
                [401, 429, 503].contains(status),
                "{what}: unexpected status {status} in {by:?}"
            );
        }
    }
    // The per-email limit held under concurrency: at most 5 guesses at the victim were checked.
    assert!(
        targeted.get(&401).copied().unwrap_or(0) <= 5,
        "targeted: {targeted:?}"
    );
    // Most of the burst was refused without hashing (limits or a full queue).
    assert!(
        sprayed.get(&503).copied().unwrap_or(0) > 0,
        "the queue never filled: {sprayed:?}"
    );

    // Memory: the burst leaves the process within 100 MB of where it started.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss();
    let mb = |b: u64| b / (1024 * 1024);
    assert!(
        after < before + 100 * 1024 * 1024,
        "RSS {} MB before, {} MB during, {} MB after (waited {waited:?})",
        mb(before),
        mb(during),
        mb(after)
    );
}
