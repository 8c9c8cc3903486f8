//! Faults answered right: a database that goes away mid-request, clients that hold connections
//! without sending a request.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantry_db::cluster::Role;
use tenantry_server::http::HttpConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{assert_problem, read, TestApp};

#[tokio::test]
async fn a_request_whose_database_connection_dies_answers_503_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    // Hold the row so the request is surely in flight, waiting inside PostgreSQL.
    let blocker = app.lock_organizations().await;
    let path = format!("/v1/orgs/{}", alice.org);
    let request = tokio::spawn(
        app.request(Method::PATCH, Some(&alice.token), &path)
            .json(&json!({"name": "lost"}))
            .send(),
    );
    // What a crash or shutdown of PostgreSQL does to that backend: SQLSTATE 57P01.
    let superuser = sqlx::PgPool::connect(&app.db.url(Role::Superuser))
        .await
        .expect("superuser");
    let mut terminated = false;
    for _ in 0..100 {
        terminated = sqlx::query_scalar(
            r"SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
               WHERE usename = 'tenantry_runtime' AND datname = current_database()
                 AND wait_event_type = 'Lock'",
        )
        .fetch_one(&superuser)
        .await
        .expect("terminate");
        if terminated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(terminated, "the request never waited for the lock");
    let got = read(request.await.expect("request task").expect("send")).await;
    assert_problem(&got, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    blocker.rollback().await.expect("release");
    let (status, org) = app.call(Method::GET, &alice, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(org["name"], "lost", "the failed request changed data");
}

/// Reads until the server closes the connection; false when it is still open after `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A response (the 408 hyper may send, or the keep-alive one's answer): read on.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn connections_that_send_no_request_in_time_are_closed_and_others_are_served() {
    let app = TestApp::spawn_with(HttpConfig {
        header_timeout: Duration::from_millis(700),
        ..HttpConfig::default()
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();

    // Silent ones, ones trickling their headers a byte at a time, and an idle keep-alive one.
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let mut trickling = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .expect("write");
        trickling.push(stream);
    }
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            for stream in &mut trickling {
                // Errors are expected once the server has closed the connection.
                let _ = stream.write_all(b"X").await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        trickling
    });
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");

    // Meanwhile a well-behaved client is served.
    let (status, _) = read(
        app.request(Method::GET, None, "/healthz")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let wait = Duration::from_secs(3);
    assert!(
        closed_within(&mut idle, wait).await,
        "idle keep-alive left open"
    );
    for stream in &mut silent {
        assert!(
            closed_within(stream, wait).await,
            "silent connection left open"
        );
    }
    let mut trickling = trickle.await.expect("trickle task");
    for stream in &mut trickling {
        assert!(
            closed_within(stream, Duration::from_millis(100)).await,
            "trickling connection left open"
        );
    }
}
