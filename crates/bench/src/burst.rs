//! A burst of wrong sign-ins against a real `tenantry serve` process (this binary, started as a
//! child on the benchmark database): its resident memory at start, at the peak of each burst and
//! after it, and how the requests were answered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;
use tenantry_db::ConnectionUrls;

use crate::AnyError;

/// Concurrent wrong sign-ins per burst: half at one account from one address, half sprayed over
/// as many accounts and addresses.
const BURST: usize = 500;

/// The child's resident memory in MiB.
fn rss_mib(pid: u32) -> Result<f64, AnyError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no VmRSS in /proc/PID/status")?;
    Ok(kib / 1024.0)
}

pub(super) async fn run(urls: &ConnectionUrls, rounds: u32) -> Result<(), AnyError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--trusted-proxy",
            "127.0.0.1",
        ])
        .env("DATABASE_URL", &urls.runtime)
        .env("DATABASE_OWNER_URL", &urls.owner)
        .env("TENANTRY_LOG", "warn")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id().ok_or("the server exited at once")?;
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the server did not start within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at_start = rss_mib(pid)?;
    let sign_in = |from: String, email: String, password: &'static str| {
        let request = client
            .post(format!("{base}/v1/auth/signin"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": email, "password": password}));
        async move {
            request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    // A real account, signed in once: the hashing memory exists from here on.
    let email = format!("burst-{}@bench.local", uuid::Uuid::now_v7().simple());
    let signed_up = client
        .post(format!("{base}/v1/auth/signup"))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await?
        .status();
    if !signed_up.is_success() {
        return Err(format!("sign-up answered {signed_up}").into());
    }
    let warm = sign_in("192.0.2.1".into(), email.clone(), "correct horse battery").await;
    let after_one = rss_mib(pid)?;

    println!("sign-in burst: {BURST} concurrent wrong sign-ins per round, server pid {pid}");
    println!("\n| moment | server RSS MiB | answers |\n|---|---|---|");
    println!("| started | {at_start:.1} | |");
    println!("| after one sign-in | {after_one:.1} | {warm} |");
    for round in 1..=rounds {
        let peak = std::sync::Arc::new(std::sync::Mutex::new(0f64));
        let watching = {
            let peak = peak.clone();
            tokio::spawn(async move {
                while let Ok(rss) = rss_mib(pid) {
                    if let Ok(mut p) = peak.lock() {
                        *p = p.max(rss);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let burst = (0..BURST).map(|i| {
            if i % 2 == 0 {
                sign_in("198.51.100.7".into(), "victim@bench.local".into(), "guess")
            } else {
                sign_in(
                    // Documentation addresses (RFC 5737): only a header, no traffic.
                    format!("203.0.113.{}", (i / 2) % 250),
                    format!("spray-{round}-{i}@bench.local"),
                    "guess",
                )
            }
        });
        let took = Instant::now();
        let statuses = join_all(burst).await;
        let took = took.elapsed();
        let mut answers: BTreeMap<u16, usize> = BTreeMap::new();
        for s in statuses {
            *answers.entry(s).or_default() += 1;
        }
        watching.abort();
        let peak = peak.lock().map(|p| *p).unwrap_or_default();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_mib(pid)?;
        let answers: Vec<String> = answers.iter().map(|(s, n)| format!("{n}× {s}")).collect();
        println!(
            "| burst {round}: peak (burst took {:.1} s) | {peak:.1} | {} |",
            took.as_secs_f64(),
            answers.join(", ")
        );
        println!("| burst {round}: 2 s after | {after:.1} | |");
    }
    child.kill().await?;
    Ok(())
}
