//! Strive appointments over HTTP: booking, calendars by range, moves that make sense, no
//! double-booking even under concurrent requests, and what other organizations, viewers and
//! API keys cannot do.

use chrono::{Datelike, Duration, DurationRound, NaiveDate, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_db::RequestContext;
use tenantry_server::kernel::access::Role;
use tenantry_server::kernel::org_tx::OrgTx;

use crate::helpers::{api_key, assert_problem, refused_fields, TestApp, TestUser};

/// `user` acting in `org` (the organization a path names).
pub(crate) fn in_org(user: TestUser, org: uuid::Uuid) -> TestUser {
    TestUser { org, ..user }
}

fn path(user: &TestUser, rest: &str) -> String {
    format!("/v1/orgs/{}/appointments{rest}", user.org)
}

/// A whole hour `hours` from now, as the API writes instants.
pub(crate) fn at(hours: i64) -> String {
    let hour = Utc::now()
        .duration_trunc(Duration::hours(1))
        .expect("truncated")
        + Duration::hours(hours);
    hour.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(crate) fn booking(title: &str, from: i64, to: i64) -> Value {
    json!({"title": title, "start_time": at(from), "end_time": at(to)})
}

async fn book(app: &TestApp, user: &TestUser, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, user, &path(user, ""), Some(body))
        .await
}

pub(crate) async fn booked(app: &TestApp, user: &TestUser, body: Value) -> Value {
    let (status, created) = book(app, user, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

fn titles(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["title"].as_str())
        .collect()
}

async fn calendar(app: &TestApp, user: &TestUser, query: &str) -> Value {
    let (status, page) = app
        .call(Method::GET, user, &path(user, &format!("?{query}")), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

#[tokio::test]
async fn a_member_books_and_reads_calendars_by_range() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &bob, Role::Member).await;
    let bob = in_org(bob, alice.org);
    let (status, _) = app
        .call(
            Method::PATCH,
            &alice,
            "/v1/me",
            Some(json!({"timezone": "Europe/Berlin"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let demo = booked(
        &app,
        &alice,
        json!({"title": " Demo ", "start_time": at(2), "end_time": at(3),
               "meeting_url": "https://meet.example.com/demo", "location": "Online"}),
    )
    .await;
    assert_eq!(demo["title"], "Demo");
    assert_eq!(demo["status"], "scheduled");
    assert_eq!(
        demo["assigned_to"],
        alice.id.to_string(),
        "the caller by default"
    );
    assert_eq!(
        demo["timezone"], "Europe/Berlin",
        "the assignee's zone by default"
    );
    assert_eq!(demo["reminders_sent"], json!({}));
    // Alice books for Bob, in a zone of her choosing.
    let call = booked(
        &app,
        &alice,
        json!({"title": "Call", "start_time": at(4), "end_time": at(5),
               "assigned_to": bob.id, "timezone": "America/New_York", "status": "confirmed"}),
    )
    .await;
    assert_eq!(call["timezone"], "America/New_York");
    assert_eq!(call["status"], "confirmed");
    booked(&app, &bob, booking("Next week", 24 * 8, 24 * 8 + 1)).await;

    let week = calendar(&app, &alice, "").await;
    assert_eq!(
        titles(&week),
        ["Demo", "Call"],
        "the next seven days by start"
    );
    let bobs = calendar(&app, &bob, "assigned_to=me").await;
    assert_eq!(titles(&bobs), ["Call"]);
    let later = calendar(
        &app,
        &bob,
        &format!(
            "from={}&to={}",
            urlencoding(&at(24 * 7)),
            urlencoding(&at(24 * 9))
        ),
    )
    .await;
    assert_eq!(titles(&later), ["Next week"]);
    // An appointment under way at `from` is in the range.
    let half_past = at(4).replace(":00:00Z", ":30:00Z");
    let under_way = calendar(&app, &alice, &format!("from={}", urlencoding(&half_past))).await;
    assert_eq!(titles(&under_way), ["Call"]);
    // Pages follow the start order.
    let first = calendar(&app, &alice, "limit=1").await;
    assert_eq!(titles(&first), ["Demo"]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = calendar(&app, &alice, &format!("limit=1&after={cursor}")).await;
    assert_eq!(titles(&second), ["Call"]);
    let confirmed = calendar(&app, &alice, "status=confirmed").await;
    assert_eq!(titles(&confirmed), ["Call"]);

    for query in [
        format!("from={}&to={}", urlencoding(&at(5)), urlencoding(&at(4))),
        format!(
            "from={}&to={}",
            urlencoding(&at(0)),
            urlencoding(&at(24 * 93))
        ),
        "assigned_to=nobody".to_string(),
        "status=maybe".to_string(),
    ] {
        let got = app
            .call(
                Method::GET,
                &alice,
                &path(&alice, &format!("?{query}")),
                None,
            )
            .await;
        assert_problem(&got, StatusCode::BAD_REQUEST, "bad_request");
    }
}

fn urlencoding(value: &str) -> String {
    value.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn a_member_cannot_be_double_booked() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &bob, Role::Member).await;
    let first = booked(&app, &alice, booking("First", 2, 4)).await;

    let overlapping = book(&app, &alice, booking("Overlapping", 3, 5)).await;
    assert_problem(&overlapping, StatusCode::CONFLICT, "slot_taken");
    assert_eq!(overlapping.1["conflicting_id"], first["id"]);
    // Back to back is not an overlap; another member's time is theirs.
    booked(&app, &alice, booking("Right after", 4, 5)).await;
    booked(
        &app,
        &alice,
        json!({"title": "Bob's", "start_time": at(2), "end_time": at(4), "assigned_to": bob.id}),
    )
    .await;

    // A cancelled appointment frees its slot; restoring it needs the slot free again.
    let first_path = path(&alice, &format!("/{}", first["id"].as_str().expect("id")));
    let (status, cancelled) = app
        .call(
            Method::PATCH,
            &alice,
            &first_path,
            Some(json!({"status": "cancelled"})),
        )
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let second = booked(&app, &alice, booking("In its place", 3, 4)).await;
    let restore = app
        .call(
            Method::PATCH,
            &alice,
            &first_path,
            Some(json!({"status": "scheduled"})),
        )
        .await;
    assert_problem(&restore, StatusCode::CONFLICT, "slot_taken");
    assert_eq!(restore.1["conflicting_id"], second["id"]);

    // Rescheduling into a taken slot changes nothing.
    let late = booked(&app, &alice, booking("Late", 8, 9)).await;
    let late_path = path(&alice, &format!("/{}", late["id"].as_str().expect("id")));
    let moved = app
        .call(
            Method::PATCH,
            &alice,
            &late_path,
            Some(json!({"start_time": at(3), "end_time": at(4), "title": "Moved"})),
        )
        .await;
    assert_problem(&moved, StatusCode::CONFLICT, "slot_taken");
    let (_, unchanged) = app.call(Method::GET, &alice, &late_path, None).await;
    assert_eq!(
        (
            unchanged["title"].as_str(),
            unchanged["start_time"].as_str()
        ),
        (Some("Late"), Some(at(8).as_str()))
    );
    // Moving it within its own time is no conflict with itself.
    let (status, shifted) = app
        .call(
            Method::PATCH,
            &alice,
            &late_path,
            Some(json!({"end_time": at(10)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shifted}");
}

#[tokio::test]
async fn concurrent_bookings_of_one_slot_leave_exactly_one() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let attempts = (0..12).map(|n| {
        let (app, alice) = (&app, &alice);
        async move { book(app, alice, booking(&format!("Attempt {n}"), 2, 3)).await }
    });
    let outcomes = futures_util::future::join_all(attempts).await;
    let won = outcomes
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let refused = outcomes
        .iter()
        .filter(|(status, body)| *status == StatusCode::CONFLICT && body["code"] == "slot_taken")
        .count();
    assert_eq!((won, refused), (1, 11), "{outcomes:?}");
    let owner = app.db.owner().await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM appointments")
        .fetch_one(&owner.0)
        .await
        .expect("count");
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn only_moves_that_make_sense_are_allowed() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let future = booked(&app, &alice, booking("Future", 2, 3)).await;
    let future_path = path(&alice, &format!("/{}", future["id"].as_str().expect("id")));
    for (status, why) in [
        ("completed", "once it has started"),
        ("no_show", "once it has started"),
    ] {
        let got = app
            .call(
                Method::PATCH,
                &alice,
                &future_path,
                Some(json!({"status": status})),
            )
            .await;
        assert_eq!(refused_fields(&got), ["status"]);
        assert!(
            got.1["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(why)),
            "{}",
            got.1
        );
    }
    let cancelled = app
        .call(
            Method::PATCH,
            &alice,
            &future_path,
            Some(json!({"status": "cancelled"})),
        )
        .await;
    assert_eq!(cancelled.0, StatusCode::OK);
    let got = app
        .call(
            Method::PATCH,
            &alice,
            &future_path,
            Some(json!({"status": "confirmed"})),
        )
        .await;
    assert_eq!(refused_fields(&got), ["status"]);
    assert!(
        got.1["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("from cancelled to confirmed")),
        "{}",
        got.1
    );

    // One that started can be completed, and corrected to a no-show.
    let past = booked(&app, &alice, booking("Past", -2, -1)).await;
    let past_path = path(&alice, &format!("/{}", past["id"].as_str().expect("id")));
    for status in ["completed", "no_show"] {
        let (code, moved) = app
            .call(
                Method::PATCH,
                &alice,
                &past_path,
                Some(json!({"status": status})),
            )
            .await;
        assert_eq!(
            (code, moved["status"].as_str()),
            (StatusCode::OK, Some(status))
        );
    }
    let got = book(
        &app,
        &alice,
        json!({"title": "Born done", "start_time": at(-4), "end_time": at(-3), "status": "completed"}),
    )
    .await;
    assert_eq!(refused_fields(&got), ["status"]);
}

#[tokio::test]
async fn bad_bookings_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    let (_, theirs) = app
        .call(
            Method::POST,
            &mallory,
            &format!("/v1/orgs/{}/customers", mallory.org),
            Some(json!({"name": "Mallory's customer"})),
        )
        .await;
    for (body, field) in [
        (booking("Backwards", 3, 2), "end_time"),
        (booking("Zero", 3, 3), "end_time"),
        (booking("Too long", 0, 24 * 32), "end_time"),
        (booking("", 2, 3), "title"),
        (
            json!({"title": "Bad link", "start_time": at(2), "end_time": at(3), "meeting_url": "javascript:alert(1)"}),
            "meeting_url",
        ),
        (
            json!({"title": "Nowhere", "start_time": at(2), "end_time": at(3), "timezone": "Mars/Olympus"}),
            "timezone",
        ),
        // A POSIX zone PostgreSQL would take (three hours *west* of UTC), not an IANA name.
        (
            json!({"title": "Posix", "start_time": at(2), "end_time": at(3), "timezone": "UTC+3"}),
            "timezone",
        ),
        (
            json!({"title": "Stranger", "start_time": at(2), "end_time": at(3), "assigned_to": mallory.id}),
            "assigned_to",
        ),
        (
            json!({"title": "Their customer", "start_time": at(2), "end_time": at(3), "customer_id": theirs["id"]}),
            "customer_id",
        ),
    ] {
        let got = book(&app, &alice, body.clone()).await;
        assert_eq!(refused_fields(&got), [field], "{body}");
    }
    let owner = app.db.owner().await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM appointments")
        .fetch_one(&owner.0)
        .await
        .expect("count");
    assert_eq!(stored, 0, "nothing written");

    // In SQL as the runtime role: no booking for no one, no clearing its member by hand.
    let booked = book(&app, &alice, booking("Kept", 2, 3)).await;
    assert_eq!(booked.0, StatusCode::CREATED, "{}", booked.1);
    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(alice.id), alice.org)
        .await
        .expect("begin");
    for sql in [
        "INSERT INTO appointments (organization_id, title, start_time, end_time)
         VALUES ($1, 'Nobody', now() + interval '5 days', now() + interval '5 days 1 hour')",
        "UPDATE appointments SET assigned_to = NULL WHERE organization_id = $1",
    ] {
        sqlx::query("SAVEPOINT attempt")
            .execute(tx.conn())
            .await
            .expect("savepoint");
        let refused = sqlx::query(sql).bind(alice.org).execute(tx.conn()).await;
        let code = refused.err().and_then(|e| {
            e.as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.to_string())
        });
        assert_eq!(code.as_deref(), Some("23502"), "{sql}");
        sqlx::query("ROLLBACK TO SAVEPOINT attempt")
            .execute(tx.conn())
            .await
            .expect("rollback");
    }
}

#[tokio::test]
async fn other_organizations_viewers_and_keys_get_no_further_than_allowed() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let viewer = app.user("victor@example.com").await;
    let member = app.user("mia@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    app.add_member(&alice, alice.org, &viewer, Role::Viewer)
        .await;
    app.add_member(&alice, alice.org, &member, Role::Member)
        .await;
    let (viewer, member) = (in_org(viewer, alice.org), in_org(member, alice.org));
    let demo = booked(&app, &alice, booking("Demo", 2, 3)).await;
    let demo_path = path(&alice, &format!("/{}", demo["id"].as_str().expect("id")));

    // Another organization: nothing to see, change, delete, or book into.
    let as_mallory = in_org(mallory.clone(), alice.org);
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"title": "Mine now"}))),
        (Method::DELETE, None),
    ] {
        let got = app.call(method, &mallory, &demo_path, body).await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    }
    let got = book(&app, &as_mallory, booking("Intrusion", 5, 6)).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let got = app
        .call(Method::GET, &mallory, &path(&alice, ""), None)
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    // …nor read or change its reminder settings.
    let settings = format!("/v1/orgs/{}/appointment-settings", alice.org);
    for (method, body) in [
        (Method::GET, None),
        (
            Method::PUT,
            Some(json!({"reminder_offsets": ["5m"], "remind_customers": true})),
        ),
    ] {
        let got = app.call(method, &mallory, &settings, body).await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM appointment_settings")
        .fetch_one(&app.db.owner().await.0)
        .await
        .expect("count");
    assert_eq!(stored, 0, "nothing written");
    // …nor learn alice's schedule by booking her into their own organization.
    let got = book(
        &app,
        &mallory,
        json!({"title": "Probe", "start_time": at(2), "end_time": at(3), "assigned_to": alice.id}),
    )
    .await;
    assert_eq!(refused_fields(&got), ["assigned_to"]);

    // A viewer reads but does not book; a member books and changes but does not delete.
    assert_eq!(titles(&calendar(&app, &viewer, "").await), ["Demo"]);
    let got = book(&app, &viewer, booking("Viewer's", 5, 6)).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .call(
            Method::PUT,
            &viewer,
            &settings,
            Some(json!({"reminder_offsets": ["5m"], "remind_customers": true})),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app.call(Method::DELETE, &member, &demo_path, None).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = app
        .call(
            Method::PATCH,
            &member,
            &demo_path,
            Some(json!({"status": "confirmed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // An API key with the crm module books for a member it names; one without it does nothing.
    let crm_key = api_key(&app, &alice, "write", json!(["crm"])).await;
    let got = book(&app, &crm_key, booking("By key", 5, 6)).await;
    assert_eq!(refused_fields(&got), ["assigned_to"]);
    let by_key = booked(
        &app,
        &crm_key,
        json!({"title": "By key", "start_time": at(5), "end_time": at(6), "assigned_to": member.id}),
    )
    .await;
    assert_eq!(by_key["assigned_to"], member.id.to_string());
    let kpi_key = api_key(&app, &alice, "write", json!(["kpis"])).await;
    let got = app
        .call(Method::GET, &kpi_key, &path(&alice, ""), None)
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");

    // A member who leaves keeps their appointments in the organization, unassigned.
    let owner = app.db.owner().await;
    sqlx::query("DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2")
        .bind(alice.org)
        .bind(member.id)
        .execute(&owner.0)
        .await
        .expect("mia leaves");
    let by_key_path = path(&alice, &format!("/{}", by_key["id"].as_str().expect("id")));
    let (status, kept) = app.call(Method::GET, &alice, &by_key_path, None).await;
    assert_eq!(
        (status, kept["assigned_to"].clone()),
        (StatusCode::OK, Value::Null)
    );
    let (status, _) = app.call(Method::DELETE, &alice, &demo_path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "admins delete");
}

/// The appointment's queued reminder jobs: (offset name, run_at, actor), by run_at.
async fn reminders(
    app: &TestApp,
    appointment: &Value,
) -> Vec<(String, String, Option<uuid::Uuid>)> {
    let owner = app.db.owner().await;
    let id = appointment["id"].as_str().expect("id");
    let rows: Vec<(String, chrono::DateTime<Utc>, Option<uuid::Uuid>)> = sqlx::query_as(
        r"SELECT split_part(unique_key, '/', 2), run_at, actor_id FROM queue.jobs
           WHERE kind = 'appointments.remind' AND unique_key LIKE $1 || '/%' AND state = 'queued'
           ORDER BY run_at",
    )
    .bind(id)
    .fetch_all(&owner.0)
    .await
    .expect("jobs");
    rows.into_iter()
        .map(|(name, at, actor)| {
            (
                name,
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                actor,
            )
        })
        .collect()
}

/// The last Sunday of `month` (which has 31 days) more than two days ahead: in Europe, the day
/// summer time starts (March) or ends (October).
fn next_last_sunday(month: u32) -> NaiveDate {
    let today = Utc::now().date_naive();
    (today.year()..)
        .find_map(|year| {
            let last = NaiveDate::from_ymd_opt(year, month, 31)?;
            let sunday = last - Duration::days(i64::from(last.weekday().num_days_from_sunday()));
            (sunday > today + Duration::days(2)).then_some(sunday)
        })
        .expect("a last Sunday ahead")
}

fn next_spring_forward() -> NaiveDate {
    next_last_sunday(3)
}

#[tokio::test]
async fn reminders_follow_the_local_time_and_every_change() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let member = app.user("mia@example.com").await;
    app.add_member(&alice, alice.org, &member, Role::Member)
        .await;
    let member = in_org(member, alice.org);
    // 10:00 in Berlin on the day summer time starts: the day-before reminder is at 10:00 winter
    // time (23 hours earlier), the hour-before one an hour earlier. (Times as `at(days after
    // that day, UTC time)`; the next such day ahead, so the reminders are still to come.)
    let spring_forward = next_spring_forward();
    let at =
        |days: i64, time: &str| format!("{}T{time}:00Z", spring_forward + Duration::days(days));
    let spring = booked(
        &app,
        &alice,
        json!({"title": "Spring", "start_time": at(0, "08:00"),
               "end_time": at(0, "09:00"), "timezone": "Europe/Berlin"}),
    )
    .await;
    let some = Some(alice.id);
    assert_eq!(
        reminders(&app, &spring).await,
        [
            ("1d".into(), at(-1, "09:00"), some),
            ("1h".into(), at(0, "07:00"), some)
        ]
    );
    // 10:00 on the day summer time ends (09:00 UTC): the day before at 10:00 summer time (08:00
    // UTC, 25 hours earlier), the hour before at 08:00 UTC too.
    let fall_back = next_last_sunday(10);
    let autumn_at =
        |days: i64, time: &str| format!("{}T{time}:00Z", fall_back + Duration::days(days));
    let autumn = booked(
        &app,
        &alice,
        json!({"title": "Autumn", "start_time": autumn_at(0, "09:00"),
               "end_time": autumn_at(0, "10:00"), "timezone": "Europe/Berlin"}),
    )
    .await;
    assert_eq!(
        reminders(&app, &autumn).await,
        [
            ("1d".into(), autumn_at(-1, "08:00"), some),
            ("1h".into(), autumn_at(0, "08:00"), some)
        ]
    );
    let spring_path = path(&alice, &format!("/{}", spring["id"].as_str().expect("id")));
    let patch = |body: Value| {
        let (app, alice, spring_path) = (&app, &alice, &spring_path);
        async move {
            let (status, changed) = app
                .call(Method::PATCH, alice, spring_path, Some(body))
                .await;
            assert_eq!(status, StatusCode::OK, "{changed}");
        }
    };
    // Rescheduled: the pending reminders move with it.
    patch(json!({"start_time": at(8, "08:00"), "end_time": at(8, "09:00")})).await;
    assert_eq!(
        reminders(&app, &spring).await,
        [
            ("1d".into(), at(7, "08:00"), some),
            ("1h".into(), at(8, "07:00"), some)
        ]
    );
    // Cancelled: they go; restored: they come back; reassigned: they act for the new assignee.
    patch(json!({"status": "cancelled"})).await;
    assert_eq!(reminders(&app, &spring).await, []);
    patch(json!({"status": "scheduled"})).await;
    assert_eq!(reminders(&app, &spring).await.len(), 2);
    patch(json!({"assigned_to": member.id})).await;
    assert!(reminders(&app, &spring)
        .await
        .iter()
        .all(|r| r.2 == Some(member.id)));

    // The organization's offsets: admins set them, the coming reminders follow.
    let settings = format!("/v1/orgs/{}/appointment-settings", alice.org);
    let (status, defaults) = app.call(Method::GET, &member, &settings, None).await;
    assert_eq!(
        (status, defaults),
        (
            StatusCode::OK,
            json!({"reminder_offsets": ["1d", "1h"], "remind_customers": false})
        )
    );
    let got = app
        .call(
            Method::PUT,
            &member,
            &settings,
            Some(json!({"reminder_offsets": ["2h"], "remind_customers": true})),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    for bad in [
        json!(["1w"]),
        json!([]),
        json!(["1m"]),
        json!(["1d", "24h"]),
        json!(["31d"]),
    ] {
        let got = app
            .call(
                Method::PUT,
                &alice,
                &settings,
                Some(json!({"reminder_offsets": bad, "remind_customers": false})),
            )
            .await;
        assert_eq!(refused_fields(&got), ["reminder_offsets"], "{bad}");
    }
    let (status, set) = app
        .call(
            Method::PUT,
            &alice,
            &settings,
            Some(json!({"reminder_offsets": ["1d12h", "2h"], "remind_customers": true})),
        )
        .await;
    assert_eq!(
        (status, set),
        (
            StatusCode::OK,
            json!({"reminder_offsets": ["1d12h", "2h"], "remind_customers": true})
        )
    );
    let member_id = Some(member.id);
    assert_eq!(
        reminders(&app, &spring).await,
        [
            ("1d12h".into(), at(6, "20:00"), member_id),
            ("2h".into(), at(8, "06:00"), member_id)
        ]
    );
    // Deleted: its reminders go with it.
    let (status, _) = app.call(Method::DELETE, &alice, &spring_path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(reminders(&app, &spring).await, []);
}

/// A new customer of `user`'s organization.
async fn new_customer(app: &TestApp, user: &TestUser, body: Value) -> Value {
    let (status, created) = app
        .call(
            Method::POST,
            user,
            &format!("/v1/orgs/{}/customers", user.org),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// Makes the day-before reminders of `appointments` due now.
async fn day_before_due_now(app: &TestApp, appointments: &[&Value]) {
    let ids: Vec<String> = appointments
        .iter()
        .map(|a| format!("{}/1d", a["id"].as_str().expect("id")))
        .collect();
    sqlx::query("UPDATE queue.jobs SET run_at = now() WHERE unique_key = ANY($1)")
        .bind(&ids)
        .execute(&app.db.owner().await.0)
        .await
        .expect("due");
}

#[tokio::test]
async fn a_reminder_is_sent_once_even_with_two_workers_and_a_dead_one() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let settings = format!("/v1/orgs/{}/appointment-settings", alice.org);
    let (status, _) = app
        .call(
            Method::PUT,
            &alice,
            &settings,
            Some(json!({"reminder_offsets": ["1d", "1h"], "remind_customers": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let customer = new_customer(
        &app,
        &alice,
        json!({"name": "Carol", "email": "carol@example.com"}),
    )
    .await;
    let demo = booked(
        &app,
        &alice,
        json!({"title": "Demo <b>day</b>", "start_time": at(30), "end_time": at(31),
               "customer_id": customer["id"], "timezone": "Asia/Tokyo",
               "meeting_url": "https://meet.example.com/demo"}),
    )
    .await;
    let id = demo["id"].as_str().expect("id").to_string();
    // A customer without an email: only the assignee hears of that one.
    let dan = new_customer(&app, &alice, json!({"name": "Dan"})).await;
    let call = booked(
        &app,
        &alice,
        json!({"title": "Call", "start_time": at(40), "end_time": at(41),
               "customer_id": dan["id"]}),
    )
    .await;
    // The day-before reminders come due, and a worker that took one dies without a word.
    day_before_due_now(&app, &[&demo, &call]).await;
    let owner = app.db.owner().await;
    let taken = tenantry_db::queue::complete_and_claim(
        &owner.0,
        "dead-worker",
        &[],
        &["appointments.remind".to_string()],
        1,
        std::time::Duration::from_secs(1),
    )
    .await
    .expect("claim");
    assert_eq!(taken.claimed.len(), 1);

    let smtp = crate::smtp::SmtpServer::start(0).await;
    let workers = [
        crate::email::worker(&app, &smtp.url()).await,
        crate::email::worker(&app, &smtp.url()).await,
    ];
    crate::helpers::until("the three reminders arrived", || smtp.messages().len() >= 3).await;
    // A second run of the same reminder (its job run twice) sends nothing more.
    let again: uuid::Uuid = sqlx::query_scalar(
        r"INSERT INTO queue.jobs (kind, organization_id, actor_id, payload)
          VALUES ('appointments.remind', $1, $2, jsonb_build_object('appointment_id', $3::uuid, 'offset', '1 day',
                  'remind_at', app.reminder_time($4, 'Asia/Tokyo', '1 day')))
          RETURNING id",
    )
    .bind(alice.org)
    .bind(alice.id)
    .bind(&id)
    .bind(demo["start_time"].as_str().expect("start").parse::<chrono::DateTime<Utc>>().expect("instant"))
    .fetch_one(&owner.0)
    .await
    .expect("again");
    for _ in 0..400 {
        if tenantry_db::queue::get(&owner.0, again)
            .await
            .expect("get")
            .is_none()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        tenantry_db::queue::get(&owner.0, again)
            .await
            .expect("get")
            .is_none(),
        "the repeat ran"
    );
    for stop in workers {
        let _ = stop.send(());
    }
    let messages = smtp.messages();
    let mut to: Vec<&str> = messages.iter().map(|m| m.to[0].as_str()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "alice@example.com",
            "alice@example.com",
            "carol@example.com"
        ],
        "once each"
    );
    let carol = messages
        .iter()
        .find(|m| m.to[0] == "carol@example.com")
        .expect("Carol's");
    let data = carol.data.replace("=\n", "").replace("=3D", "=");
    assert!(
        data.contains("Demo &lt;b&gt;day&lt;/b&gt;"),
        "escaped in HTML: {data}"
    );
    assert!(
        data.contains("(Asia/Tokyo)"),
        "in the appointment's zone: {data}"
    );
    let (status, after) = app
        .call(Method::GET, &alice, &path(&alice, &format!("/{id}")), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        after["reminders_sent"]["1d"]["sent_at"].is_string(),
        "{after}"
    );
    assert!(
        after["reminders_sent"].get("1h").is_none(),
        "the hour-before one is not due: {after}"
    );
}

#[tokio::test]
async fn a_late_reminder_is_sent_once_or_skipped_after_the_start() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let owner = app.db.owner().await;
    // Booked 3 hours ahead; the service was down when its hour-before reminder came due.
    let soon = booked(&app, &alice, booking("Soon", 3, 4)).await;
    let soon_id = soon["id"].as_str().expect("id").to_string();
    sqlx::query(
        "UPDATE queue.jobs SET run_at = now() - interval '1 hour' WHERE unique_key = $1 || '/1h'",
    )
    .bind(&soon_id)
    .execute(&owner.0)
    .await
    .expect("overdue");
    // Already started: a reminder left over for it is skipped, and the row says why.
    let started = booked(&app, &alice, booking("Started", -1, 1)).await;
    let started_id = started["id"].as_str().expect("id").to_string();
    assert_eq!(reminders(&app, &started).await, [], "none ahead");
    sqlx::query(
        r"INSERT INTO queue.jobs (kind, organization_id, actor_id, payload)
          SELECT 'appointments.remind', a.organization_id, a.assigned_to,
                 jsonb_build_object('appointment_id', a.id, 'offset', '1 hour',
                                    'remind_at', app.reminder_time(a.start_time, a.timezone, '1 hour'))
            FROM appointments a WHERE a.id = $1::uuid",
    )
    .bind(&started_id)
    .execute(&owner.0)
    .await
    .expect("left over");

    let smtp = crate::smtp::SmtpServer::start(0).await;
    let stop = crate::email::worker(&app, &smtp.url()).await;
    crate::helpers::until("the late reminder arrived", || !smtp.messages().is_empty()).await;
    let mut skipped = Value::Null;
    for _ in 0..200 {
        let (_, row) = app
            .call(
                Method::GET,
                &alice,
                &path(&alice, &format!("/{started_id}")),
                None,
            )
            .await;
        skipped = row["reminders_sent"]["1h"].clone();
        if !skipped.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    assert_eq!(smtp.messages().len(), 1, "the late one only");
    assert!(smtp.messages()[0].data.contains("Soon"));
    assert_eq!(
        skipped["reason"], "the appointment had started",
        "{skipped}"
    );
    assert!(skipped.get("sent_at").is_none());
}

#[tokio::test]
async fn only_the_assignee_s_job_can_send_a_reminder() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    app.add_member(&alice, alice.org, &bob, Role::Admin).await;
    let demo = booked(&app, &alice, booking("Demo", 30, 31)).await;
    let id: uuid::Uuid = demo["id"].as_str().expect("id").parse().expect("uuid");
    let start: chrono::DateTime<Utc> = demo["start_time"]
        .as_str()
        .expect("start")
        .parse()
        .expect("instant");
    for (user, org, expected) in [
        (&bob, alice.org, "reassigned"),
        (&mallory, mallory.org, "gone"),
        (&mallory, alice.org, "gone"),
    ] {
        let tx = tenantry_server::kernel::org_tx::OrgTx::begin(
            &app.db.runtime,
            &tenantry_db::RequestContext::user(user.id),
            org,
        )
        .await;
        // A stranger may not even get a transaction bound to the organization.
        let Ok(mut tx) = tx else {
            assert_ne!(org, user.org);
            continue;
        };
        let outcome: String =
            sqlx::query_scalar("SELECT app.send_appointment_reminder($1, '1 day', $2)")
                .bind(id)
                .bind(start - Duration::days(1))
                .fetch_one(tx.conn())
                .await
                .expect("call");
        assert_eq!(outcome, expected);
        tx.commit().await.expect("commit");
    }
    let owner = app.db.owner().await;
    let (outbox, sent): (i64, Value) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox WHERE kind = 'appointment_reminder'), (SELECT reminders_sent FROM appointments WHERE id = $1)",
    )
    .bind(id)
    .fetch_one(&owner.0)
    .await
    .expect("state");
    assert_eq!(
        (outbox, sent),
        (0, json!({})),
        "nothing sent, nothing recorded"
    );
}

#[tokio::test]
async fn a_reminder_is_delivered_once_when_its_sender_dies_mid_send() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    // Customers are not reminded unless the organization says so: Carol's address gets nothing.
    let customer = new_customer(
        &app,
        &alice,
        json!({"name": "Carol", "email": "carol@example.com"}),
    )
    .await;
    let demo = booked(
        &app,
        &alice,
        json!({"title": "Demo", "start_time": at(30), "end_time": at(31),
               "customer_id": customer["id"]}),
    )
    .await;
    day_before_due_now(&app, &[&demo]).await;
    let owner = app.db.owner().await;
    // The first worker gets as far as the message's final dot, and dies waiting for the answer.
    let smtp = crate::smtp::SmtpServer::start(0).await;
    smtp.hold_the_next_message();
    let dying = crate::email::killable_worker(&app, &smtp.url()).await;
    crate::helpers::until("the first sender is mid-send", || smtp.held() == 1).await;
    dying.abort();
    assert!(dying.await.is_err_and(|e| e.is_cancelled()), "killed");
    let unsent =
        "SELECT count(*) FROM outbox WHERE kind = 'appointment_reminder' AND sent_at IS NULL";
    let pending: i64 = sqlx::query_scalar(unsent)
        .fetch_one(&owner.0)
        .await
        .expect("outbox");
    assert_eq!(pending, 1, "what it was sending is not recorded as sent");

    // Two workers take over once the dead one's lease runs out; the message goes out once.
    let workers = [
        crate::email::worker(&app, &smtp.url()).await,
        crate::email::worker(&app, &smtp.url()).await,
    ];
    crate::helpers::until("the reminder arrived", || !smtp.messages().is_empty()).await;
    let mut left: (i64, i64) = (1, 1);
    for _ in 0..400 {
        left = sqlx::query_as(&format!(
            "SELECT ({unsent}), (SELECT count(*) FROM queue.jobs WHERE kind IN ('outbox.deliver', 'appointments.remind') AND state <> 'queued')"
        ))
        .fetch_one(&owner.0)
        .await
        .expect("state");
        if left == (0, 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for stop in workers {
        let _ = stop.send(());
    }
    assert_eq!(left, (0, 0), "(unsent messages, jobs in hand) at the end");
    let to: Vec<Vec<String>> = smtp.messages().into_iter().map(|m| m.to).collect();
    assert_eq!(to, [["alice@example.com"]], "once, to the assignee only");
}
