//! KPIs over HTTP: history, progress and change, soft delete, and the attacker's side.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_server::kernel::access::Role;

use crate::helpers::{api_key, assert_problem, TestApp, TestUser};

async fn create(app: &TestApp, user: &TestUser, body: Value) -> Value {
    let (status, kpi) = app
        .call(
            Method::POST,
            user,
            &format!("/v1/orgs/{}/kpis", user.org),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{kpi}");
    kpi
}

fn days_ago(days: i64) -> String {
    (Utc::now() - Duration::days(days)).to_rfc3339()
}

#[tokio::test]
async fn reads_carry_progress_and_change_computed_from_history() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let kpi = create(&app, &alice, json!({"name": "MRR", "unit": "$", "target_value": 200, "baseline": 100, "initial_value": 150})).await;
    assert_eq!(kpi["current_value"], 150.0);
    assert_eq!(kpi["progress"], 50.0);
    let path = format!(
        "/v1/orgs/{}/kpis/{}",
        alice.org,
        kpi["id"].as_str().expect("id")
    );

    // History: 120 eight days ago, 100 a month ago, 80 a quarter ago.
    let (status, recorded) = app
        .call(
            Method::POST,
            &alice,
            &format!("{path}/points"),
            Some(json!([
                {"value": 120, "observed_at": days_ago(8), "source": "stripe"},
                {"value": 100, "observed_at": days_ago(31), "source": "stripe"},
                {"value": 80, "observed_at": days_ago(91), "source": "stripe"},
            ])),
        )
        .await;
    assert_eq!((status, &recorded["written"]), (StatusCode::OK, &json!(3)));
    let (_, read) = app.call(Method::GET, &alice, &path, None).await;
    assert_eq!(
        read["current_value"], 150.0,
        "older points do not replace the latest"
    );
    let changes = read["changes"].as_array().expect("changes");
    let expected = [
        (7, 120.0, 30.0, 25.0),
        (30, 100.0, 50.0, 50.0),
        (90, 80.0, 70.0, 87.5),
    ];
    for (change, (days, previous, absolute, percent)) in changes.iter().zip(expected) {
        assert_eq!(change["days"], days);
        assert_eq!(change["previous"], previous);
        assert_eq!(change["absolute"], absolute);
        assert_eq!(change["percent"], percent);
        assert_eq!(change["improving"], true);
    }

    // A new value is a new point; the value before stays in the history.
    let (status, changed) = app
        .call(
            Method::PATCH,
            &alice,
            &path,
            Some(json!({"value": 210, "direction": "higher_is_better"})),
        )
        .await;
    assert_eq!(
        (status, &changed["current_value"], &changed["progress"]),
        (StatusCode::OK, &json!(210.0), &json!(100.0))
    );
    let (_, points) = app
        .call(Method::GET, &alice, &format!("{path}/points"), None)
        .await;
    let values: Vec<f64> = points["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["value"].as_f64())
        .collect();
    assert_eq!(
        values,
        vec![210.0, 150.0, 120.0, 100.0, 80.0],
        "newest first"
    );

    // Re-sending a point with the same time and source replaces it.
    let again = json!([{"value": 125, "observed_at": points["items"][2]["observed_at"], "source": "stripe"}]);
    app.call(Method::POST, &alice, &format!("{path}/points"), Some(again))
        .await;
    let (_, points) = app
        .call(Method::GET, &alice, &format!("{path}/points"), None)
        .await;
    assert_eq!(points["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(points["items"][2]["value"], 125.0);
}

#[tokio::test]
async fn a_kpi_without_target_or_data_has_no_progress() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bare = create(&app, &alice, json!({"name": "Signups"})).await;
    assert!(bare["progress"].is_null() && bare["current_value"].is_null());
    assert!(bare["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .all(|c| c["absolute"].is_null()));
    let churn = create(&app, &alice, json!({"name": "Churn", "direction": "lower_is_better", "target_value": 4, "baseline": 10, "initial_value": 7})).await;
    assert_eq!(churn["progress"], 50.0);
}

#[tokio::test]
async fn deleting_hides_keeps_history_and_can_be_undone_and_purge_is_for_admins() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let max = app.user("max@example.com").await;
    app.add_member(&alice, alice.org, &max, Role::Member).await;
    let kpi = create(&app, &alice, json!({"name": "MRR", "initial_value": 1})).await;
    let id = kpi["id"].as_str().expect("id");
    let path = format!("/v1/orgs/{}/kpis/{id}", alice.org);
    let list = format!("/v1/orgs/{}/kpis", alice.org);

    let (status, deleted) = app.call(Method::DELETE, &max, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(deleted["deleted_at"].is_string());
    let got = app.call(Method::GET, &alice, &path, None).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let (_, live) = app.call(Method::GET, &alice, &list, None).await;
    assert_eq!(live["items"].as_array().map(Vec::len), Some(0));
    let (_, trash) = app
        .call(Method::GET, &alice, &format!("{list}?deleted=true"), None)
        .await;
    assert_eq!(trash["items"][0]["current_value"], 1.0, "history kept");

    let (status, restored) = app
        .call(Method::POST, &max, &format!("{path}/restore"), None)
        .await;
    assert_eq!(
        (status, &restored["deleted_at"]),
        (StatusCode::OK, &json!(null))
    );
    let (status, _) = app.call(Method::GET, &alice, &path, None).await;
    assert_eq!(status, StatusCode::OK);

    let got = app
        .call(Method::POST, &max, &format!("{path}/purge"), None)
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = app
        .call(Method::POST, &alice, &format!("{path}/purge"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, trash) = app
        .call(Method::GET, &alice, &format!("{list}?deleted=true"), None)
        .await;
    assert_eq!(trash["items"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn others_cannot_read_or_write_and_bad_points_write_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let vera = app.user("vera@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &vera, Role::Viewer).await;
    let kpi = create(&app, &alice, json!({"name": "MRR", "initial_value": 1})).await;
    let path = format!(
        "/v1/orgs/{}/kpis/{}",
        alice.org,
        kpi["id"].as_str().expect("id")
    );

    for (method, suffix, body) in [
        (Method::GET, "", None),
        (Method::PATCH, "", Some(json!({"value": 666}))),
        (Method::DELETE, "", None),
        (Method::GET, "/points", None),
        (Method::POST, "/points", Some(json!([{"value": 666}]))),
        (Method::POST, "/purge", None),
    ] {
        let got = app
            .call(method, &bob, &format!("{path}{suffix}"), body)
            .await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    }
    let got = app
        .call(
            Method::POST,
            &vera,
            &format!("{path}/points"),
            Some(json!([{"value": 666}])),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .call(
            Method::POST,
            &vera,
            &format!("/v1/orgs/{}/kpis", alice.org),
            Some(json!({"name": "mine"})),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");

    // One bad point refuses the whole batch, naming it.
    let batch = json!([{"value": 2}, {"value": 3, "source": ""}, {"value": 4}]);
    let got = app
        .call(Method::POST, &alice, &format!("{path}/points"), Some(batch))
        .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(got.1["errors"][0]["field"], "points[1].source");
    let got = app
        .call(
            Method::POST,
            &alice,
            &format!("{path}/points"),
            Some(json!([{"value": "lots"}])),
        )
        .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (_, read) = app.call(Method::GET, &alice, &path, None).await;
    assert_eq!(read["current_value"], 1.0, "nothing was written");
}

#[tokio::test]
async fn api_keys_need_the_kpis_module_and_write_access() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let kpi = create(&app, &alice, json!({"name": "MRR"})).await;
    let points = format!(
        "/v1/orgs/{}/kpis/{}/points",
        alice.org,
        kpi["id"].as_str().expect("id")
    );
    let mut keys = Vec::new();
    for (access, modules) in [
        ("write", json!(["orgs"])),
        ("read", json!(["kpis"])),
        ("write", json!(["kpis"])),
    ] {
        keys.push(api_key(&app, &alice, access, modules).await);
    }
    let body = Some(json!([{"value": 42, "source": "stripe"}]));
    let got = app
        .call(Method::POST, &keys[0], &points, body.clone())
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .call(Method::POST, &keys[1], &points, body.clone())
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = app.call(Method::POST, &keys[2], &points, body).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.call(Method::GET, &keys[1], &points, None).await;
    assert_eq!(list["items"][0]["value"], 42.0);
}

#[tokio::test]
async fn series_bucket_by_local_day_week_and_month() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let kpi = create(&app, &alice, json!({"name": "Signups"})).await;
    let path = format!(
        "/v1/orgs/{}/kpis/{}",
        alice.org,
        kpi["id"].as_str().expect("id")
    );
    // 23:30 UTC on Jan 1 is already Jan 2 in Berlin (UTC+1).
    let points = json!([
        {"value": 1, "observed_at": "2026-01-01T10:00:00Z"},
        {"value": 2, "observed_at": "2026-01-01T23:30:00Z"},
        {"value": 4, "observed_at": "2026-01-02T12:00:00Z"},
        {"value": 8, "observed_at": "2026-02-10T12:00:00Z"},
    ]);
    let (status, _) = app
        .call(
            Method::POST,
            &alice,
            &format!("{path}/points"),
            Some(points),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let series = |query: &'static str| {
        let (app, alice, path) = (&app, &alice, path.clone());
        async move {
            let (status, body) = app
                .call(Method::GET, alice, &format!("{path}/series?{query}"), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body.as_array()
                .expect("series")
                .iter()
                .map(|b| {
                    (
                        b["start"].as_str().unwrap_or_default().to_string(),
                        b["value"].as_f64().unwrap_or(f64::NAN),
                        b["points"].as_i64().unwrap_or(0),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let utc_days = series("bucket=day&aggregate=sum").await;
    assert_eq!(
        utc_days,
        vec![
            ("2026-01-01T00:00:00Z".to_string(), 3.0, 2),
            ("2026-01-02T00:00:00Z".to_string(), 4.0, 1),
            ("2026-02-10T00:00:00Z".to_string(), 8.0, 1),
        ]
    );
    let berlin_days = series("bucket=day&aggregate=sum&timezone=Europe/Berlin").await;
    assert_eq!(
        berlin_days,
        vec![
            ("2025-12-31T23:00:00Z".to_string(), 1.0, 1),
            ("2026-01-01T23:00:00Z".to_string(), 6.0, 2),
            ("2026-02-09T23:00:00Z".to_string(), 8.0, 1),
        ]
    );
    let months = series("bucket=month&aggregate=last").await;
    assert_eq!(
        months.iter().map(|m| (m.1, m.2)).collect::<Vec<_>>(),
        vec![(4.0, 3), (8.0, 1)]
    );
    let weeks = series("bucket=week&aggregate=max").await;
    assert_eq!(
        weeks[0].0, "2025-12-29T00:00:00Z",
        "ISO weeks start on Monday"
    );
    assert_eq!((weeks[0].1, weeks[0].2), (4.0, 3));
    for (aggregate, expected) in [("avg", 7.0 / 3.0), ("min", 1.0)] {
        let query: &'static str = if aggregate == "avg" {
            "bucket=month&aggregate=avg"
        } else {
            "bucket=month&aggregate=min"
        };
        assert_eq!(series(query).await[0].1, expected);
    }

    let got = app
        .call(
            Method::GET,
            &alice,
            &format!("{path}/series?bucket=day&timezone=Mars/Olympus"),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let got = app
        .call(
            Method::GET,
            &alice,
            &format!("{path}/series?bucket=year"),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn the_dashboard_shows_every_live_kpi_with_its_sparkline_in_one_request() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let mrr = create(&app, &alice, json!({"name": "MRR", "target_value": 100})).await;
    create(
        &app,
        &alice,
        json!({"name": "Churn", "direction": "lower_is_better"}),
    )
    .await;
    let gone = create(&app, &alice, json!({"name": "Old"})).await;
    create(&app, &bob, json!({"name": "Bob KPI", "initial_value": 1})).await;
    let kpis = format!("/v1/orgs/{}/kpis", alice.org);
    app.call(
        Method::DELETE,
        &alice,
        &format!("{kpis}/{}", gone["id"].as_str().expect("id")),
        None,
    )
    .await;
    // 40 daily values 1..=40, the newest today.
    let points: Vec<Value> = (1..=40)
        .map(|v| json!({"value": v, "observed_at": days_ago(40 - v)}))
        .collect();
    let (status, _) = app
        .call(
            Method::POST,
            &alice,
            &format!("{kpis}/{}/points", mrr["id"].as_str().expect("id")),
            Some(json!(points)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, board) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/dashboard", alice.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = board["kpis"]
        .as_array()
        .expect("kpis")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["Churn", "MRR"],
        "live KPIs of this organization only, by name"
    );
    let m = &board["kpis"][1];
    assert_eq!(
        (m["current_value"].as_f64(), m["progress"].as_f64()),
        (Some(40.0), Some(40.0))
    );
    let sparkline: Vec<f64> = m["sparkline"]
        .as_array()
        .expect("sparkline")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert_eq!(sparkline, (11..=40).map(f64::from).collect::<Vec<_>>());
    assert_eq!(m["change_30d"]["previous"], 10.0);
    assert_eq!(m["change_30d"]["absolute"], 30.0);
    assert_eq!(board["kpis"][0]["sparkline"], json!([]));

    let got = app
        .call(
            Method::GET,
            &bob,
            &format!("/v1/orgs/{}/dashboard", alice.org),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
}

async fn ingest(
    app: &TestApp,
    user: &TestUser,
    content_type: &str,
    body: String,
) -> (StatusCode, Value) {
    crate::helpers::read(
        app.request(
            Method::POST,
            Some(&user.token),
            &format!("/v1/orgs/{}/kpi-points", user.org),
        )
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("send"),
    )
    .await
}

async fn point_count(app: &TestApp, user: &TestUser, kpi: &str) -> usize {
    let (_, page) = app
        .call(
            Method::GET,
            user,
            &format!("/v1/orgs/{}/kpis/{kpi}/points?limit=200", user.org),
            None,
        )
        .await;
    page["items"].as_array().map(Vec::len).unwrap_or(0)
}

#[tokio::test]
async fn bulk_ingest_takes_json_ndjson_and_csv_for_many_kpis() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let a = create(&app, &alice, json!({"name": "A"})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let b = create(&app, &alice, json!({"name": "B"})).await["id"]
        .as_str()
        .expect("id")
        .to_string();

    let array = json!([
        {"kpi_id": a, "value": 1, "observed_at": "2026-01-01T00:00:00Z"},
        {"kpi_id": b, "value": 2.5, "observed_at": "2026-01-01T00:00:00Z", "source": "stripe"},
        // The same KPI, time and source twice: the last one wins.
        {"kpi_id": a, "value": 3, "observed_at": "2026-01-01T00:00:00Z"},
    ]);
    let (status, done) = ingest(&app, &alice, "application/json", array.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        (done["rows"].as_u64(), done["written"].as_u64()),
        (Some(3), Some(2))
    );

    let ndjson = format!(
        "{{\"kpi_id\":\"{a}\",\"value\":4,\"observed_at\":\"2026-01-02T00:00:00Z\"}}\n\n{{\"kpi_id\":\"{b}\",\"value\":5,\"observed_at\":\"2026-01-02T00:00:00Z\"}}"
    );
    let (status, _) = ingest(&app, &alice, "application/x-ndjson", ndjson).await;
    assert_eq!(status, StatusCode::OK);
    let csv = format!("kpi_id,observed_at,value,source\r\n{a},2026-01-03T00:00:00Z,6,\"sheets, tab 1\"\r\n{b},2026-01-03T00:00:00Z,7,sheets\r\n");
    let (status, done) = ingest(&app, &alice, "text/csv; charset=utf-8", csv).await;
    assert_eq!((status, done["rows"].as_u64()), (StatusCode::OK, Some(2)));

    let (_, read_a) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/kpis/{a}", alice.org),
            None,
        )
        .await;
    assert_eq!(read_a["current_value"], 6.0);
    assert_eq!(point_count(&app, &alice, &a).await, 3);
    let (_, points) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/kpis/{a}/points", alice.org),
            None,
        )
        .await;
    assert_eq!(points["items"][0]["source"], "sheets, tab 1");
    assert_eq!(points["items"][2]["value"], 3.0);
}

#[tokio::test]
async fn a_bad_row_fails_the_whole_ingest_and_names_every_bad_row() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let a = create(&app, &alice, json!({"name": "A"})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let bobs = create(&app, &bob, json!({"name": "Bob KPI"})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let csv = format!(
        "kpi_id,observed_at,value\n{a},2026-01-01T00:00:00Z,1\n{bobs},2026-01-01T00:00:00Z,1\n{a},2026-01-02T00:00:00Z,NaN\n{a},yesterday,1\n{a},2026-01-03T00:00:00Z,1e400\n{a},2026-01-04T00:00:00Z,2\n"
    );
    let got = ingest(&app, &alice, "text/csv", csv).await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let errors: Vec<(String, String)> = got.1["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or_default().into(),
                e["message"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            ("rows[1]".to_string(), "unknown KPI".to_string()),
            (
                "rows[2]".to_string(),
                "value must be a finite number".to_string()
            ),
            (
                "rows[3]".to_string(),
                "observed_at is not an RFC 3339 time".to_string()
            ),
            (
                "rows[4]".to_string(),
                "value must be a finite number".to_string()
            ),
        ]
    );
    assert_eq!(point_count(&app, &alice, &a).await, 0, "nothing written");
    let got = ingest(
        &app,
        &alice,
        "application/x-ndjson",
        format!("{{\"kpi_id\":\"{a}\",\"value\":\"12\"}}"),
    )
    .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let got = ingest(
        &app,
        &alice,
        "application/json",
        format!("[{{\"kpi_id\":\"{a}\",\"value\":1}}"),
    )
    .await;
    assert_problem(&got, StatusCode::BAD_REQUEST, "bad_request");
    let got = ingest(&app, &alice, "text/plain", "x".into()).await;
    assert_problem(&got, StatusCode::BAD_REQUEST, "bad_request");
    let got = ingest(&app, &alice, "application/json", "[]".into()).await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(point_count(&app, &alice, &a).await, 0);

    // Viewers and other organizations cannot ingest.
    let vera = app.user("vera@example.com").await;
    app.add_member(&alice, alice.org, &vera, Role::Viewer).await;
    let row = format!("[{{\"kpi_id\":\"{a}\",\"value\":1}}]");
    let as_vera = TestUser {
        org: alice.org,
        ..vera
    };
    let got = ingest(&app, &as_vera, "application/json", row.clone()).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let as_bob_in_a = TestUser {
        org: alice.org,
        ..bob
    };
    let got = ingest(&app, &as_bob_in_a, "application/json", row).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn large_bodies_stream_through_in_batches() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let a = create(&app, &alice, json!({"name": "A"})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let start = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let body: String = (0..12_000)
        .map(|i| {
            format!(
                "{{\"kpi_id\":\"{a}\",\"value\":{i},\"observed_at\":\"{}\"}}\n",
                (start + Duration::hours(i)).to_rfc3339()
            )
        })
        .collect();
    assert!(
        body.len() > 1024 * 1024,
        "larger than the default body limit"
    );
    let (status, done) = ingest(&app, &alice, "application/x-ndjson", body).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        (done["rows"].as_u64(), done["written"].as_u64()),
        (Some(12_000), Some(12_000))
    );
    let (_, read) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/kpis/{a}", alice.org),
            None,
        )
        .await;
    assert_eq!(read["current_value"], 11_999.0);
}

#[tokio::test]
async fn points_export_as_csv_that_ingest_reads_back() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let a = create(&app, &alice, json!({"name": "A"})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let rows = json!([
        {"kpi_id": a, "value": 2.5, "observed_at": "2026-01-02T00:00:00Z", "source": "sheets, \"tab\" 1"},
        {"kpi_id": a, "value": 1, "observed_at": "2026-01-01T00:00:00Z"},
    ]);
    let (status, _) = ingest(&app, &alice, "application/json", rows.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/v1/orgs/{}/kpis/{a}/points.csv", alice.org);
    let response = app
        .request(Method::GET, Some(&alice.token), &path)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/csv"));
    let csv = response.text().await.expect("csv");
    assert_eq!(
        csv,
        "observed_at,value,source\n2026-01-01T00:00:00+00:00,1,manual\n2026-01-02T00:00:00+00:00,2.5,\"sheets, \"\"tab\"\" 1\"\n"
    );
    // Round trip: the export, with a kpi_id column, is an ingest body that changes nothing.
    let again: String = csv
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 {
                format!("kpi_id,{line}\n")
            } else {
                format!("{a},{line}\n")
            }
        })
        .collect();
    let (status, done) = ingest(&app, &alice, "text/csv", again).await;
    assert_eq!(
        (status, done["written"].as_u64()),
        (StatusCode::OK, Some(2))
    );
    assert_eq!(point_count(&app, &alice, &a).await, 2);
    let got = crate::helpers::read(
        app.request(Method::GET, Some(&bob.token), &path)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
}

/// Alice on an app with `config`, her KPI, and one NDJSON ingest of it that has to wait 1.2 s
/// for the points table (something else holds it).
async fn slow_ingest(
    config: tenantry_server::http::HttpConfig,
) -> (TestApp, TestUser, String, (StatusCode, Value)) {
    let app = TestApp::spawn_with(config).await;
    let alice = app.user("alice@example.com").await;
    let kpi = create(&app, &alice, json!({"name": "A"})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let owner = app.db.owner().await;
    let mut blocker = owner.0.begin().await.expect("begin");
    sqlx::query("LOCK TABLE kpi_data_points IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .expect("lock");
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        blocker.rollback().await.expect("release");
    });
    let row = format!("{{\"kpi_id\":\"{kpi}\",\"value\":1}}\n");
    let got = ingest(&app, &alice, "application/x-ndjson", row).await;
    release.await.expect("released");
    (app, alice, kpi, got)
}

#[tokio::test]
async fn ingest_has_its_own_longer_time_limit_and_a_timed_out_ingest_writes_nothing() {
    use std::time::Duration as Wait;
    use tenantry_server::http::HttpConfig;

    // Short request limit, long bulk limit: a slow ingest still lands.
    let (app, alice, kpi, (status, done)) = slow_ingest(HttpConfig {
        request_timeout: Wait::from_millis(300),
        bulk_timeout: Wait::from_secs(30),
        ..HttpConfig::default()
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(point_count(&app, &alice, &kpi).await, 1);

    // The bulk limit is a limit too: past it the ingest is refused and rolled back.
    let (app, alice, kpi, got) = slow_ingest(HttpConfig {
        bulk_timeout: Wait::from_millis(300),
        ..HttpConfig::default()
    })
    .await;
    assert_problem(&got, StatusCode::SERVICE_UNAVAILABLE, "timeout");
    tokio::time::sleep(Wait::from_millis(300)).await;
    assert_eq!(point_count(&app, &alice, &kpi).await, 0, "nothing written");
}

#[tokio::test]
async fn csv_exports_carry_no_live_formula_and_read_back_unchanged() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let a = create(&app, &alice, json!({"name": "A"})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    // Sources a spreadsheet would run as formulas, and one that looks escaped already.
    let sources = [
        "=HYPERLINK(\"http://evil.example\",\"x\")",
        "+1+1",
        "-1+1",
        "@SUM(1)",
        "\t=1",
        "'=1",
        "stripe",
    ];
    let points: Vec<Value> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"value": i, "observed_at": format!("2026-01-0{}T00:00:00Z", i + 1), "source": s}))
        .collect();
    let path = format!("/v1/orgs/{}/kpis/{a}/points", alice.org);
    let (status, body) = app
        .call(Method::POST, &alice, &path, Some(json!(points)))
        .await;
    assert!(status.is_success(), "{status} {body}");
    let csv = app
        .request(Method::GET, Some(&alice.token), &format!("{path}.csv"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("csv");
    for line in csv.lines().skip(1) {
        // The source cell (after the second comma), unquoted: never starts a formula.
        let cell = line.splitn(3, ',').nth(2).expect("source cell");
        let cell = cell.strip_prefix('"').unwrap_or(cell);
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "live formula in {line:?}"
        );
    }
    // Read back into the same KPI: every point is replaced by itself, sources unchanged.
    let again: String = csv
        .lines()
        .enumerate()
        .map(|(i, line)| match i {
            0 => format!("kpi_id,{line}\n"),
            _ => format!("{a},{line}\n"),
        })
        .collect();
    let (status, done) = ingest(&app, &alice, "text/csv", again).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(point_count(&app, &alice, &a).await, sources.len());
    let (_, listed) = app.call(Method::GET, &alice, &path, None).await;
    let mut got: Vec<String> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["source"].as_str().expect("source").to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn two_points_at_the_same_time_and_source_in_one_request_keep_the_last() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let a = create(&app, &alice, json!({"name": "A"})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let path = format!("/v1/orgs/{}/kpis/{a}/points", alice.org);
    let at = "2026-01-01T00:00:00Z";
    let (status, body) = app
        .call(
            Method::POST,
            &alice,
            &path,
            Some(json!([
                {"value": 1, "observed_at": at, "source": "sheets"},
                {"value": 2, "observed_at": at, "source": "sheets"},
            ])),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (_, listed) = app.call(Method::GET, &alice, &path, None).await;
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["value"], 2.0);
}
