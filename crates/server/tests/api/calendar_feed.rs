//! A member's private calendar feed over HTTP: an iCalendar (RFC 5545) subscription URL whose
//! secret reads that member's appointments in that organization and nothing else, revocable.

use reqwest::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_server::http::HttpConfig;
use tenantry_server::kernel::access::Role;

use crate::appointments::{at, booked, booking, in_org};
use crate::helpers::{api_key, assert_problem, read, TestApp, TestUser};

fn feed_path(user: &TestUser) -> String {
    format!("/v1/orgs/{}/calendar-feed", user.org)
}

/// A new feed of `user`: its URL.
async fn subscribe(app: &TestApp, user: &TestUser) -> String {
    let (status, feed) = app.call(Method::POST, user, &feed_path(user), None).await;
    assert_eq!(status, StatusCode::CREATED, "{feed}");
    let url = feed["url"].as_str().expect("url");
    // Built on the configured public URL; this test server listens elsewhere.
    let path = url
        .strip_prefix(&HttpConfig::default().public_url)
        .expect("the public URL");
    format!("{}{path}", app.base)
}

/// GETs a feed URL anonymously: status, ETag and body.
async fn fetch(app: &TestApp, url: &str, etag: Option<&str>) -> (StatusCode, String, String) {
    let mut req = app.client.get(url);
    if let Some(etag) = etag {
        req = req.header(IF_NONE_MATCH, etag);
    }
    let response = req.send().await.expect("send");
    let status = response.status();
    let etag = response
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if status == StatusCode::OK {
        let content_type = response.headers()[CONTENT_TYPE].clone();
        assert_eq!(content_type, "text/calendar; charset=utf-8");
    }
    (status, etag, response.text().await.expect("body"))
}

/// The feed's events: their UIDs, in order.
fn uids(ics: &str) -> Vec<String> {
    ics.split("\r\n")
        .filter_map(|l| l.strip_prefix("UID:"))
        .map(str::to_string)
        .collect()
}

fn uid(appointment: &Value) -> String {
    format!("{}@tenantry", appointment["id"].as_str().expect("id"))
}

/// The value of `property` in the event of `appointment`, unfolded.
fn property(ics: &str, appointment: &Value, property: &str) -> Option<String> {
    let unfolded = ics.replace("\r\n ", "");
    let event = unfolded
        .split("BEGIN:VEVENT")
        .find(|e| e.contains(&format!("UID:{}\r\n", uid(appointment))))?;
    event
        .split("\r\n")
        .find_map(|l| l.strip_prefix(&format!("{property}:")))
        .map(str::to_string)
}

#[tokio::test]
async fn a_member_subscribes_to_their_own_calendar() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &bob, Role::Member).await;
    let bob = in_org(bob, alice.org);

    let long =
        "A long agenda, with commas; semicolons and a backslash \\.\nSecond line: é".repeat(3);
    let demo = booked(
        &app,
        &alice,
        json!({"title": "Demo; Q&A, part 1", "description": long, "start_time": at(2), "end_time": at(3),
               "location": "Room 4", "meeting_url": "https://meet.example.com/demo?x=1"}),
    )
    .await;
    let call = booked(&app, &alice, booking("Call", 4, 5)).await;
    let bobs = booked(&app, &bob, booking("Bob's", 2, 3)).await;
    let past = booked(&app, &alice, booking("Long ago", -24 * 100, -24 * 100 + 1)).await;

    let url = subscribe(&app, &alice).await;
    assert!(
        url.contains(&format!("/v1/orgs/{}/calendar.ics?token=tnt_c_", alice.org)),
        "{url}"
    );
    let (status, etag, ics) = fetch(&app, &url, None).await;
    assert_eq!(status, StatusCode::OK, "{ics}");
    assert!(
        ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"),
        "{ics}"
    );
    assert!(ics.ends_with("END:VCALENDAR\r\n"));
    assert_eq!(
        uids(&ics),
        [uid(&demo), uid(&call)],
        "Alice's, by start; not Bob's, not 100 days ago"
    );
    assert!(!ics.contains(&uid(&bobs)) && !ics.contains(&uid(&past)));
    for line in ics.split("\r\n") {
        assert!(line.len() <= 75, "a line of {} octets: {line}", line.len());
        assert!(!line.contains('\n') && !line.contains('\r'));
    }
    assert_eq!(
        property(&ics, &demo, "SUMMARY").as_deref(),
        Some("Demo\\; Q&A\\, part 1")
    );
    let description = property(&ics, &demo, "DESCRIPTION").expect("description");
    assert!(description.starts_with(
        "A long agenda\\, with commas\\; semicolons and a backslash \\\\.\\nSecond line: é"
    ));
    assert_eq!(
        property(&ics, &demo, "URL").as_deref(),
        Some("https://meet.example.com/demo?x=1")
    );
    assert_eq!(
        property(&ics, &demo, "STATUS").as_deref(),
        Some("TENTATIVE")
    );
    let start = demo["start_time"]
        .as_str()
        .expect("start")
        .replace(['-', ':'], "");
    assert_eq!(property(&ics, &demo, "DTSTART"), Some(start));
    assert_eq!(property(&ics, &demo, "SEQUENCE").as_deref(), Some("0"));

    // Unchanged: 304. Rescheduled and cancelled: a new version with a higher SEQUENCE.
    let (status, _, _) = fetch(&app, &url, Some(&etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let demo_path = format!(
        "/v1/orgs/{}/appointments/{}",
        alice.org,
        demo["id"].as_str().expect("id")
    );
    let (status, _) = app
        .call(
            Method::PATCH,
            &alice,
            &demo_path,
            Some(json!({"start_time": at(6), "end_time": at(7)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let call_path = format!(
        "/v1/orgs/{}/appointments/{}",
        alice.org,
        call["id"].as_str().expect("id")
    );
    let (status, _) = app
        .call(
            Method::PATCH,
            &alice,
            &call_path,
            Some(json!({"status": "cancelled"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, new_etag, ics) = fetch(&app, &url, Some(&etag)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(new_etag, etag);
    assert_eq!(uids(&ics), [uid(&call), uid(&demo)]);
    assert_eq!(property(&ics, &demo, "SEQUENCE").as_deref(), Some("1"));
    assert_eq!(
        property(&ics, &call, "STATUS").as_deref(),
        Some("CANCELLED")
    );

    // The feed is shown without its URL; a new one replaces it, and the old URL stops working.
    let (status, shown) = app
        .call(Method::GET, &alice, &feed_path(&alice), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        shown.get("url").is_none() && shown["id"].is_string(),
        "{shown}"
    );
    let renewed = subscribe(&app, &alice).await;
    assert_ne!(renewed, url);
    assert_eq!(fetch(&app, &url, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(fetch(&app, &renewed, None).await.0, StatusCode::OK);
    // Revoked: gone at once.
    let (status, _) = app
        .call(Method::DELETE, &alice, &feed_path(&alice), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        fetch(&app, &renewed, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let got = app
        .call(Method::GET, &alice, &feed_path(&alice), None)
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_feed_reads_its_member_s_calendar_and_nothing_else() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    app.add_member(&alice, alice.org, &bob, Role::Member).await;
    let bob = in_org(bob, alice.org);
    booked(&app, &alice, booking("Alice's", 2, 3)).await;
    let bobs = booked(&app, &bob, booking("Bob's", 2, 3)).await;
    let url = subscribe(&app, &bob).await;
    let token = url.split("token=").nth(1).expect("token").to_string();

    // Bob's feed: Bob's appointments only.
    let (status, _, ics) = fetch(&app, &url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(uids(&ics), [uid(&bobs)]);

    // The token under another organization, tampered, missing, or of another kind: 401.
    let elsewhere = format!(
        "{}/v1/orgs/{}/calendar.ics?token={token}",
        app.base, mallory.org
    );
    let tampered = format!("{}X", url);
    let bare = format!("{}/v1/orgs/{}/calendar.ics", app.base, alice.org);
    let session = format!("{bare}?token={}", bob.token);
    for attempt in [&elsewhere, &tampered, &bare, &session] {
        let response = app.client.get(attempt.as_str()).send().await.expect("send");
        let got = read(response).await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    // The feed's token is no bearer credential for the API.
    for path in [
        format!("/v1/orgs/{}/appointments", alice.org),
        "/v1/me".to_string(),
    ] {
        let response = app
            .request(Method::GET, Some(&token), &path)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }

    // Feeds belong to signed-in members: another organization cannot make one here, an API key
    // cannot make one at all, and nobody sees or revokes another member's.
    let as_mallory = in_org(mallory.clone(), alice.org);
    for method in [Method::GET, Method::POST, Method::DELETE] {
        let got = app
            .call(method, &as_mallory, &feed_path(&as_mallory), None)
            .await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    }
    let key = api_key(&app, &alice, "write", json!(["crm"])).await;
    let got = app.call(Method::POST, &key, &feed_path(&key), None).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .call(Method::GET, &alice, &feed_path(&alice), None)
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let got = app
        .call(Method::DELETE, &alice, &feed_path(&alice), None)
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        fetch(&app, &url, None).await.0,
        StatusCode::OK,
        "Alice revoked nothing of Bob's"
    );

    // Bob leaves the organization: his feed goes with his membership.
    let (status, _) = app
        .call(
            Method::DELETE,
            &bob,
            &format!("/v1/orgs/{}/members/{}", alice.org, bob.id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(fetch(&app, &url, None).await.0, StatusCode::UNAUTHORIZED);
    let feeds: i64 = sqlx::query_scalar("SELECT count(*) FROM calendar_feeds")
        .fetch_one(&app.db.owner().await.0)
        .await
        .expect("count");
    assert_eq!(feeds, 0);
}
