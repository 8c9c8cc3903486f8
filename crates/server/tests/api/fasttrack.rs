//! Fast Track tools over HTTP: grants, entries validated against their tool's schema, status
//! moves, optimistic concurrency, history, progress, cross-tool references — and the attacker's
//! side (another member, another organization, an expired grant, a stale version).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_server::kernel::access::Role;

use crate::helpers::{assert_problem, refused_fields, TestApp, TestUser};

/// Alice owns the organization; Dave and Erin are members with edit grants on `tools`.
struct Team {
    app: TestApp,
    alice: TestUser,
    dave: TestUser,
    erin: TestUser,
}

async fn team(tools: &[&str]) -> Team {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let mut members = Vec::new();
    for email in ["dave@example.com", "erin@example.com"] {
        let user = app.user(email).await;
        app.add_member(&alice, alice.org, &user, Role::Member).await;
        for tool in tools {
            let (status, grant) = app
                .call(
                    Method::PUT,
                    &alice,
                    &format!("/v1/orgs/{}/tool-grants", alice.org),
                    Some(json!({"user_id": user.id, "tool": tool, "access_level": "edit"})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{grant}");
        }
        members.push(TestUser {
            org: alice.org,
            ..user
        });
    }
    let erin = members.pop().expect("erin");
    let dave = members.pop().expect("dave");
    Team {
        app,
        alice,
        dave,
        erin,
    }
}

fn entries(user: &TestUser, tool: &str) -> String {
    format!("/v1/orgs/{}/tools/{tool}/entries", user.org)
}

async fn create(app: &TestApp, user: &TestUser, tool: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, user, &entries(user, tool), Some(body))
        .await
}

/// Sends `body` and expects 422 naming `field` first.
async fn assert_field_refused(
    app: &TestApp,
    user: &TestUser,
    method: Method,
    path: &str,
    body: Value,
    field: &str,
) {
    let got = app.call(method, user, path, Some(body.clone())).await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(got.1["errors"][0]["field"], field, "{body}: {}", got.1);
}

/// A new entry of `tool` by `user` holding `data`: its path.
/// Moves a new entry (at `url`, version 1) through in progress to completed.
pub(crate) async fn complete(app: &TestApp, user: &TestUser, url: &str) {
    for (version, next) in [(1, "in_progress"), (2, "completed")] {
        let body = json!({"version": version, "status": next});
        let (status, moved) = app
            .call(Method::POST, user, &format!("{url}/status"), Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{moved}");
    }
}

async fn new_entry(app: &TestApp, user: &TestUser, tool: &str, data: Value) -> String {
    let (status, entry) = create(app, user, tool, json!({ "data": data })).await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    format!(
        "{}/{}",
        entries(user, tool),
        entry["id"].as_str().expect("id")
    )
}

#[tokio::test]
async fn an_entry_goes_from_draft_to_submitted_with_versions_history_and_progress() {
    let t = team(&["woop"]).await;
    let (app, dave) = (&t.app, &t.dave);
    let (status, entry) = create(app, dave, "woop", json!({"data": {"wish": "ship v1"}})).await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    assert_eq!(
        (&entry["status"], &entry["version"]),
        (&json!("draft"), &json!(1))
    );
    let path = format!(
        "{}/{}",
        entries(dave, "woop"),
        entry["id"].as_str().expect("id")
    );

    let (status, entry) = app
        .call(
            Method::PATCH,
            dave,
            &path,
            Some(json!({"version": 1, "data": {"wish": "ship v1", "plan": "if tired, then walk"}})),
        )
        .await;
    assert_eq!((status, &entry["version"]), (StatusCode::OK, &json!(2)));
    // A second tab still at version 1: refused, told the current version, nothing changed.
    let got = app
        .call(
            Method::PATCH,
            dave,
            &path,
            Some(json!({"version": 1, "data": {"wish": "overwritten"}})),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "stale_version");
    assert_eq!(got.1["current_version"], 2);
    // Out of order: refused with both statuses named.
    let got = app
        .call(
            Method::POST,
            dave,
            &format!("{path}/status"),
            Some(json!({"version": 2, "status": "submitted"})),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "invalid_transition");
    assert!(
        got.1["detail"]
            .as_str()
            .is_some_and(|d| d.contains("draft") && d.contains("submitted")),
        "{}",
        got.1
    );
    let mut version = 2;
    for next in ["in_progress", "completed", "submitted"] {
        let (status, entry) = app
            .call(
                Method::POST,
                dave,
                &format!("{path}/status"),
                Some(json!({"version": version, "status": next})),
            )
            .await;
        assert_eq!((status, &entry["status"]), (StatusCode::OK, &json!(next)));
        version = entry["version"].as_i64().expect("version");
    }
    let (_, entry) = app.call(Method::GET, dave, &path, None).await;
    assert_eq!(entry["data"]["wish"], "ship v1");
    assert!(entry["completed_at"].is_string() && entry["submitted_at"].is_string());
    let got = app
        .call(
            Method::PATCH,
            dave,
            &path,
            Some(json!({"version": version, "data": {"wish": "too late"}})),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "invalid_transition");

    let (status, history) = app
        .call(Method::GET, dave, &format!("{path}/history"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let versions: Vec<i64> = history
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["version"].as_i64())
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    assert_eq!(
        history[0]["changes"]["data"]["to"],
        json!({"wish": "ship v1"})
    );

    let (_, tools) = app
        .call(
            Method::GET,
            dave,
            &format!("/v1/orgs/{}/tools", dave.org),
            None,
        )
        .await;
    let woop = tools
        .as_array()
        .expect("tools")
        .iter()
        .find(|t| t["slug"] == "woop")
        .expect("woop listed");
    assert_eq!(
        (
            &woop["access"],
            &woop["progress_status"],
            &woop["progress_percentage"]
        ),
        (&json!("edit"), &json!("completed"), &json!(100))
    );
    assert_eq!(tools.as_array().map(Vec::len), Some(6));
}

#[tokio::test]
async fn invalid_data_is_refused_with_its_json_paths_and_writes_nothing() {
    let t = team(&["digital_heart"]).await;
    let (app, dave) = (&t.app, &t.dave);
    let got = create(
        app,
        dave,
        "digital_heart",
        json!({"data": {"digital_vision": 7, "initiatives": [{"name": "crm"}, {"priority": 9}], "extra": 1}}),
    )
    .await;
    let fields = refused_fields(&got);
    for expected in ["data/digital_vision", "data/initiatives/1", "data"] {
        assert!(fields.contains(&expected), "{expected} in {fields:?}");
    }
    let (_, page) = app
        .call(Method::GET, dave, &entries(dave, "digital_heart"), None)
        .await;
    assert_eq!(page["items"], json!([]));
    let got = create(app, dave, "no_such_tool", json!({})).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn members_cannot_see_or_change_each_others_entries_and_admins_see_all() {
    let t = team(&["woop"]).await;
    let (app, dave, erin, alice) = (&t.app, &t.dave, &t.erin, &t.alice);
    let (_, entry) = create(app, dave, "woop", json!({"data": {"wish": "private"}})).await;
    let path = format!(
        "{}/{}",
        entries(dave, "woop"),
        entry["id"].as_str().expect("id")
    );
    let bob = app.user("bob@example.com").await;
    let bob_in_a = TestUser {
        org: dave.org,
        ..bob.clone()
    };

    for attacker in [erin, &bob_in_a] {
        let got = app.call(Method::GET, attacker, &path, None).await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
        let got = app
            .call(
                Method::PATCH,
                attacker,
                &path,
                Some(json!({"version": 1, "data": {"wish": "pwned"}})),
            )
            .await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
        let got = app
            .call(Method::GET, attacker, &format!("{path}/history"), None)
            .await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    }
    let (_, page) = app
        .call(Method::GET, erin, &entries(erin, "woop"), None)
        .await;
    assert_eq!(page["items"], json!([]), "Erin lists only her own");
    let got = app
        .call(
            Method::GET,
            erin,
            &format!("{}?all=true", entries(erin, "woop")),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");

    // The owner reads everyone's entries but cannot write Dave's.
    let (status, page) = app
        .call(
            Method::GET,
            alice,
            &format!("{}?all=true", entries(alice, "woop")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    let got = app
        .call(
            Method::PATCH,
            alice,
            &path,
            Some(json!({"version": 1, "data": {"wish": "edited by boss"}})),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // An admin of another organization sees nothing of this one.
    let got = app
        .call(
            Method::GET,
            &bob,
            &format!("/v1/orgs/{}/tools", dave.org),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let (_, entry) = app.call(Method::GET, dave, &path, None).await;
    assert_eq!(
        (&entry["data"]["wish"], &entry["version"]),
        (&json!("private"), &json!(1))
    );
}

#[tokio::test]
async fn a_grant_decides_access_and_an_expired_one_grants_nothing() {
    let t = team(&[]).await;
    let (app, dave, alice) = (&t.app, &t.dave, &t.alice);
    let got = create(app, dave, "woop", json!({})).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // Members cannot grant themselves anything.
    let got = app
        .call(
            Method::PUT,
            dave,
            &format!("/v1/orgs/{}/tool-grants", dave.org),
            Some(json!({"user_id": dave.id, "tool": "woop", "access_level": "admin"})),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let grants = format!("/v1/orgs/{}/tool-grants", alice.org);
    let (status, grant) = app
        .call(
            Method::PUT,
            alice,
            &grants,
            Some(
                json!({"user_id": dave.id, "tool": "woop", "access_level": "edit",
                        "expires_at": "2020-01-01T00:00:00Z"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{grant}");
    assert_eq!(grant["granted_by"], json!(alice.id));
    let got = create(app, dave, "woop", json!({})).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // Renewed: it works; revoked: it stops.
    app.call(
        Method::PUT,
        alice,
        &grants,
        Some(json!({"user_id": dave.id, "tool": "woop", "access_level": "edit"})),
    )
    .await;
    let (status, _) = create(app, dave, "woop", json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .call(
            Method::DELETE,
            alice,
            &format!("{grants}/{}", grant["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = app
        .call(Method::GET, dave, &entries(dave, "woop"), None)
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // Grants only go to members, for tools that exist.
    let stranger = app.user("stranger@example.com").await;
    for (body, field_or_code) in [
        (
            json!({"user_id": stranger.id, "tool": "woop", "access_level": "view"}),
            "invalid_reference",
        ),
        (
            json!({"user_id": dave.id, "tool": "nope", "access_level": "view"}),
            "validation_failed",
        ),
    ] {
        let got = app.call(Method::PUT, alice, &grants, Some(body)).await;
        assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, field_or_code);
    }
}

#[tokio::test]
async fn a_reference_to_another_tool_must_be_my_own_entry() {
    let t = team(&["know_thyself", "dream"]).await;
    let (app, dave, erin) = (&t.app, &t.dave, &t.erin);
    let (_, mine) = create(
        app,
        dave,
        "know_thyself",
        json!({"data": {"values": ["focus"]}}),
    )
    .await;
    let (_, hers) = create(
        app,
        erin,
        "know_thyself",
        json!({"data": {"values": ["speed"]}}),
    )
    .await;
    let dream =
        |source: &Value| json!({"data": {"source_know_thyself_id": source, "company_dream": "d"}});
    let (status, created) = create(app, dave, "dream", dream(&mine["id"])).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for bad in [
        hers["id"].clone(),
        json!(uuid::Uuid::now_v7()),
        created["id"].clone(),
    ] {
        let got = create(app, dave, "dream", dream(&bad)).await;
        assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(got.1["errors"][0]["field"], "data/source_know_thyself_id");
    }
}

#[tokio::test]
async fn the_report_is_for_the_organizations_admins_only() {
    let t = team(&["woop"]).await;
    let (app, dave, alice) = (&t.app, &t.dave, &t.alice);
    create(app, dave, "woop", json!({"data": {"wish": "w"}})).await;
    let owner = app.db.owner().await;
    tenantry_db::maintenance::refresh_reports(&owner)
        .await
        .expect("refresh");
    let path = format!("/v1/orgs/{}/tool-report", alice.org);
    let (status, report) = app.call(Method::GET, alice, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let woop = report
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["tool_slug"] == "woop")
        .expect("woop line");
    assert_eq!(
        (&woop["draft"], &woop["members"], &woop["average_progress"]),
        (&json!(1), &json!(1), &json!(10.0))
    );
    let got = app.call(Method::GET, dave, &path, None).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let bob = app.user("bob@example.com").await;
    let got = app.call(Method::GET, &bob, &path, None).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn my_entries_across_tools_come_newest_first_with_my_progress_and_nobody_elses() {
    let t = team(&["woop", "know_thyself"]).await;
    let (app, dave, erin) = (&t.app, &t.dave, &t.erin);
    create(app, dave, "woop", json!({"data": {"wish": "a"}})).await;
    create(app, dave, "know_thyself", json!({"status": "in_progress"})).await;
    create(app, erin, "woop", json!({})).await;
    let (status, mine) = app
        .call(
            Method::GET,
            dave,
            &format!("/v1/orgs/{}/tool-entries", dave.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let got: Vec<(&str, i64)> = mine
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["tool"].as_str().unwrap_or_default(),
                e["progress_percentage"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(got, [("know_thyself", 50), ("woop", 10)]);
    let (_, hers) = app
        .call(
            Method::GET,
            erin,
            &format!("/v1/orgs/{}/tool-entries", erin.org),
            None,
        )
        .await;
    assert_eq!(hers.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_tools_own_rows_belong_to_the_entry_and_follow_its_rules() {
    let t = team(&["value_proposition"]).await;
    let (app, dave, erin) = (&t.app, &t.dave, &t.erin);
    let entry = new_entry(
        app,
        dave,
        "value_proposition",
        json!({"segment": "founders"}),
    )
    .await;
    let hypotheses = format!("{entry}/hypotheses");
    let (status, added) = app
        .call(
            Method::POST,
            dave,
            &hypotheses,
            Some(json!({"hypothesis_text": "founders pay for focus", "category": "gain", "priority": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["tested"], false);
    let row = format!("{hypotheses}/{}", added["id"].as_str().expect("row id"));

    // The table's own rules, named by field.
    let bad_category = json!({"hypothesis_text": "x", "category": "hope"});
    assert_field_refused(
        app,
        dave,
        Method::POST,
        &hypotheses,
        bad_category,
        "category",
    )
    .await;
    let not_writable = json!({"hypothesis_text": "x", "organization_id": erin.org});
    assert_field_refused(
        app,
        dave,
        Method::POST,
        &hypotheses,
        not_writable,
        "organization_id",
    )
    .await;
    let got = app
        .call(Method::GET, dave, &format!("{entry}/tool_data"), None)
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");

    // Another member can neither read nor add to Dave's entry.
    let got = app.call(Method::GET, erin, &hypotheses, None).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let got = app
        .call(
            Method::POST,
            erin,
            &hypotheses,
            Some(json!({"hypothesis_text": "planted"})),
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let got = app
        .call(Method::PATCH, erin, &row, Some(json!({"tested": true})))
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");

    let (status, changed) = app
        .call(
            Method::PATCH,
            dave,
            &row,
            Some(json!({"tested": true, "test_results": {"interviews": 12}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (&changed["tested"], &changed["hypothesis_text"]),
        (&json!(true), &json!("founders pay for focus"))
    );
    let (_, listed) = app.call(Method::GET, dave, &hypotheses, None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // Once the entry is submitted its rows are final too.
    let mut version = 1;
    for next in ["in_progress", "completed", "submitted"] {
        let (_, e) = app
            .call(
                Method::POST,
                dave,
                &format!("{entry}/status"),
                Some(json!({"version": version, "status": next})),
            )
            .await;
        version = e["version"].as_i64().expect("version");
    }
    let got = app.call(Method::DELETE, dave, &row, None).await;
    assert_problem(&got, StatusCode::CONFLICT, "invalid_transition");
    let (_, listed) = app.call(Method::GET, dave, &hypotheses, None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_wrong_value_in_a_tools_own_row_is_named_by_its_field_and_writes_nothing() {
    let t = team(&["value_proposition", "fit_abc_analysis"]).await;
    let (app, dave) = (&t.app, &t.dave);
    let canvas = new_entry(app, dave, "value_proposition", json!({})).await;
    let hypotheses = format!("{canvas}/hypotheses");
    for (row, field) in [
        (
            json!({"hypothesis_text": "x", "priority": "high"}),
            "priority",
        ),
        (json!({"hypothesis_text": "x", "priority": 2.5}), "priority"),
        (
            json!({"hypothesis_text": "x", "priority": 3_000_000_000_i64}),
            "priority",
        ),
        (json!({"hypothesis_text": "x", "tested": "yes"}), "tested"),
        (json!({"hypothesis_text": 42}), "hypothesis_text"),
        (json!({"hypothesis_text": null}), "hypothesis_text"),
        (json!({"category": "gain"}), "hypothesis_text"),
        (
            json!({"hypothesis_text": "x', true); DROP TABLE users; --", "tested": null}),
            "tested",
        ),
    ] {
        assert_field_refused(app, dave, Method::POST, &hypotheses, row, field).await;
    }
    let (_, listed) = app.call(Method::GET, dave, &hypotheses, None).await;
    assert_eq!(listed, json!([]), "nothing was written");

    // A valid row, then a change with a wrong type: the row keeps its values.
    let (status, added) = app
        .call(
            Method::POST,
            dave,
            &hypotheses,
            Some(json!({"hypothesis_text": "founders pay", "priority": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let row = format!("{hypotheses}/{}", added["id"].as_str().expect("row id"));
    let not_a_number = json!({"priority": [1]});
    assert_field_refused(app, dave, Method::PATCH, &row, not_a_number, "priority").await;
    let (_, listed) = app.call(Method::GET, dave, &hypotheses, None).await;
    assert_eq!(listed[0]["priority"], 2);

    // A fixed-length text column: at most its length.
    let sheet = new_entry(app, dave, "fit_abc_analysis", json!({})).await;
    let assessments = format!("{sheet}/team_assessments");
    let too_long = json!({"team_member_name": "Ann", "abc_rating": "AB"});
    assert_field_refused(
        app,
        dave,
        Method::POST,
        &assessments,
        too_long,
        "abc_rating",
    )
    .await;
}

#[tokio::test]
async fn organization_admins_read_archived_entries_with_their_rows_and_nobody_else_does() {
    let t = team(&["value_proposition"]).await;
    let (app, alice, dave, erin) = (&t.app, &t.alice, &t.dave, &t.erin);
    let canvas = new_entry(
        app,
        dave,
        "value_proposition",
        json!({"segment": "founders"}),
    )
    .await;
    let row = json!({"hypothesis_text": "founders pay for focus"});
    let (status, _) = app
        .call(
            Method::POST,
            dave,
            &format!("{canvas}/hypotheses"),
            Some(row),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    complete(app, dave, &canvas).await;
    let owner = app.db.owner().await;
    let soon = chrono::Utc::now() + chrono::Duration::seconds(1);
    let moved = tenantry_db::maintenance::archive(&owner, soon, |_, _| {})
        .await
        .expect("archive");
    assert_eq!(moved, 1);

    let archive = format!("/v1/orgs/{}/tools/value_proposition/archive", alice.org);
    let (status, page) = app.call(Method::GET, alice, &archive, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let archived = &page["items"][0];
    assert_eq!(archived["data"]["segment"], "founders");
    assert_eq!(archived["user_id"], dave.id.to_string());
    assert_eq!(
        archived["rows"]["hypotheses"][0]["hypothesis_text"],
        "founders pay for focus"
    );
    assert!(archived["archived_at"].is_string());
    let (_, mine) = app
        .call(Method::GET, dave, &entries(dave, "value_proposition"), None)
        .await;
    assert_eq!(
        mine["items"],
        json!([]),
        "an archived entry leaves the live list"
    );

    // Its author and other members are not admins; another organization's owner is not a member.
    for member in [dave, erin] {
        let got = app.call(Method::GET, member, &archive, None).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let mallory = app.user("mallory@example.com").await;
    let got = app.call(Method::GET, &mallory, &archive, None).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let theirs = format!("/v1/orgs/{}/tools/value_proposition/archive", mallory.org);
    let (status, page) = app.call(Method::GET, &mallory, &theirs, None).await;
    assert_eq!((status, &page["items"]), (StatusCode::OK, &json!([])));
}

#[tokio::test]
async fn a_tool_describes_its_form_to_its_members_and_to_nobody_else() {
    let t = team(&["value_proposition"]).await;
    let (app, dave) = (&t.app, &t.dave);
    let tool = |user: &TestUser, slug: &str| format!("/v1/orgs/{}/tools/{slug}", user.org);

    let (status, detail) = app
        .call(Method::GET, dave, &tool(dave, "value_proposition"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["slug"], "value_proposition");
    assert_eq!(detail["access"], "edit");
    assert_eq!(detail["progress_status"], "not_started");
    assert_eq!(
        detail["data_schema"]["properties"]["segment"]["type"],
        "string"
    );
    // The own table's columns a client sets, in table order, without the ones the entry decides.
    let tables = detail["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0]["name"], "hypotheses");
    let columns: Vec<(&str, &str, bool, bool)> = tables[0]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name"),
                c["data_type"].as_str().expect("type"),
                c["nullable"].as_bool().expect("nullable"),
                c["has_default"].as_bool().expect("default"),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("hypothesis_text", "text", false, false),
            ("category", "text", true, false),
            ("priority", "integer", true, false),
            ("tested", "boolean", false, true),
            ("test_results", "jsonb", true, false),
        ]
    );
    let (_, dream) = app
        .call(Method::GET, dave, &tool(dave, "dream"), None)
        .await;
    assert_eq!(
        dream["refs"],
        json!({"source_know_thyself_id": "know_thyself"})
    );
    assert_eq!(dream["access"], Value::Null, "no grant on dream: {dream}");

    // Another organization's user, and a name outside the catalog, learn nothing.
    let mallory = app.user("mallory@example.com").await;
    let (status, _) = app
        .call(
            Method::GET,
            &mallory,
            &tool(dave, "value_proposition"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(Method::GET, dave, &tool(dave, "pg_catalog"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
