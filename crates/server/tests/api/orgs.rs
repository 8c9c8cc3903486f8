//! Organizations and members over HTTP, including the attacker's side.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_server::kernel::access::Role;
use uuid::Uuid;

use crate::helpers::{assert_problem, refused_fields, TestApp, TestUser};

#[tokio::test]
async fn sign_up_creates_an_owned_organization_and_more_can_be_created() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let (status, first) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}", alice.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["my_role"], "owner");
    assert_eq!(first["name"], "alice's organization");

    let (status, acme) = app
        .call(Method::POST, &alice, "/v1/orgs", Some(json!({"name": "Acme, Inc.", "industry": "Retail", "billing_email": "billing@acme.test"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{acme}");
    assert_eq!(acme["slug"], "acme-inc");
    assert_eq!(acme["my_role"], "owner");
    assert_eq!(acme["settings"], json!({}));
    // The same name again gets a free slug of its own; an explicit taken slug is a conflict.
    let (status, again) = app
        .call(
            Method::POST,
            &alice,
            "/v1/orgs",
            Some(json!({"name": "Acme, Inc."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(again["slug"]
        .as_str()
        .is_some_and(|s| s.starts_with("acme-inc-") && s != "acme-inc"));
    let got = app
        .call(
            Method::POST,
            &alice,
            "/v1/orgs",
            Some(json!({"name": "X", "slug": "acme-inc"})),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "slug_taken");

    let (_, list) = app
        .call(Method::GET, &alice, "/v1/orgs?limit=2", None)
        .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    let cursor = list["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let (_, rest) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs?limit=2&after={cursor}"),
            None,
        )
        .await;
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    assert!(rest["next_cursor"].is_null());
}

#[tokio::test]
async fn invalid_input_is_refused_field_by_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let got = app
        .call(
            Method::POST,
            &alice,
            "/v1/orgs",
            Some(
                json!({"name": " ", "slug": "Bad Slug", "billing_email": "nope", "settings": [1]}),
            ),
        )
        .await;
    let fields = refused_fields(&got);
    assert_eq!(fields, vec!["name", "slug", "billing_email", "settings"]);
    let path = format!("/v1/orgs/{}", alice.org);
    let (_, before) = app.call(Method::GET, &alice, &path, None).await;
    let got = app
        .call(
            Method::PATCH,
            &alice,
            &path,
            Some(json!({"name": "ok", "slug": "-x-"})),
        )
        .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let (_, after) = app.call(Method::GET, &alice, &path, None).await;
    assert_eq!(before, after);
    let (_, list) = app.call(Method::GET, &alice, "/v1/orgs", None).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn malicious_strings_are_stored_verbatim_and_audited_with_the_request() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let name = "Robert'); DROP TABLE organizations;-- \u{1F600} <script>";
    let agent = "evil'agent\"; DROP TABLE users; --";
    let response = app
        .request(
            Method::PATCH,
            Some(&alice.token),
            &format!("/v1/orgs/{}", alice.org),
        )
        .header("user-agent", agent)
        .json(&json!({"name": name, "description": "a\u{0}b".replace('\u{0}', "")}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["name"], name);

    let mut tx = tenantry_db::TenantTx::begin(
        &app.db.runtime,
        &tenantry_db::RequestContext::user(alice.id).in_org(alice.org),
    )
    .await
    .expect("begin");
    let (ua, rid, new_name, actor): (Option<String>, Option<String>, Option<String>, Option<Uuid>) = sqlx::query_as(
        "SELECT user_agent, request_id, new_data->>'name', user_id FROM audit.events \
         WHERE entity_type = 'organizations' AND action = 'update' ORDER BY occurred_at DESC LIMIT 1",
    )
    .fetch_one(tx.conn())
    .await
    .expect("audit event");
    assert_eq!(ua.as_deref(), Some(agent));
    assert_eq!(rid.as_deref(), Some(request_id.as_str()));
    assert_eq!(new_name.as_deref(), Some(name));
    assert_eq!(actor, Some(alice.id));
}

/// Alice's organization as she sees it, members included.
async fn view(app: &TestApp, alice: &TestUser) -> (Value, Value) {
    let (_, org) = app
        .call(Method::GET, alice, &format!("/v1/orgs/{}", alice.org), None)
        .await;
    let (_, members) = app
        .call(
            Method::GET,
            alice,
            &format!("/v1/orgs/{}/members", alice.org),
            None,
        )
        .await;
    (org, members)
}

#[tokio::test]
async fn another_organization_gets_404_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let carol = app.user("carol@example.com").await;
    app.add_member(&alice, alice.org, &carol, Role::Member)
        .await;
    let bob = app.user("bob@example.com").await;
    let before = view(&app, &alice).await;

    let a = alice.org;
    let random = Uuid::now_v7();
    for (method, path, body) in [
        (Method::GET, format!("/v1/orgs/{a}"), None),
        (
            Method::PATCH,
            format!("/v1/orgs/{a}"),
            Some(json!({"name": "pwned"})),
        ),
        (Method::DELETE, format!("/v1/orgs/{a}?confirm=x"), None),
        (Method::GET, format!("/v1/orgs/{a}/members"), None),
        (
            Method::PATCH,
            format!("/v1/orgs/{a}/members/{}", carol.id),
            Some(json!({"role": "viewer"})),
        ),
        (
            Method::DELETE,
            format!("/v1/orgs/{a}/members/{}", carol.id),
            None,
        ),
        (Method::GET, format!("/v1/orgs/{a}/teams"), None),
        (
            Method::POST,
            format!("/v1/orgs/{a}/teams"),
            Some(json!({"name": "intruders"})),
        ),
    ] {
        let attack = app.call(method.clone(), &bob, &path, body.clone()).await;
        assert_problem(&attack, StatusCode::NOT_FOUND, "not_found");
        // Indistinguishable from an organization that does not exist at all.
        let nowhere = app
            .call(
                method,
                &bob,
                &path.replace(&a.to_string(), &random.to_string()),
                body,
            )
            .await;
        assert_eq!(attack, nowhere, "{path}");
    }
    let (_, bobs) = app.call(Method::GET, &bob, "/v1/orgs", None).await;
    assert_eq!(bobs["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        before,
        view(&app, &alice).await,
        "alice's organization changed"
    );
}

#[tokio::test]
async fn viewers_and_members_cannot_write_what_admins_may() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let vera = app.user("vera@example.com").await;
    let max = app.user("max@example.com").await;
    app.add_member(&alice, alice.org, &vera, Role::Viewer).await;
    app.add_member(&alice, alice.org, &max, Role::Member).await;
    let before = view(&app, &alice).await;
    let a = alice.org;
    for user in [&vera, &max] {
        let (status, _) = app
            .call(Method::GET, user, &format!("/v1/orgs/{a}/members"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        for (method, path, body) in [
            (
                Method::PATCH,
                format!("/v1/orgs/{a}"),
                Some(json!({"name": "mine"})),
            ),
            (
                Method::PATCH,
                format!("/v1/orgs/{a}/members/{}", alice.id),
                Some(json!({"role": "viewer"})),
            ),
            (
                Method::POST,
                format!("/v1/orgs/{a}/teams"),
                Some(json!({"name": "mine"})),
            ),
            (Method::DELETE, format!("/v1/orgs/{a}?confirm=x"), None),
        ] {
            let got = app.call(method, user, &path, body).await;
            assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
        }
    }
    assert_eq!(before, view(&app, &alice).await);
}

#[tokio::test]
async fn roles_change_by_the_rules_and_the_last_owner_stays() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let ada = app.user("ada@example.com").await;
    let max = app.user("max@example.com").await;
    app.add_member(&alice, alice.org, &ada, Role::Admin).await;
    app.add_member(&alice, alice.org, &max, Role::Member).await;
    let member = |u: &TestUser| format!("/v1/orgs/{}/members/{}", alice.org, u.id);

    // The owner cannot step down or leave while alone.
    let got = app
        .call(
            Method::PATCH,
            &alice,
            &member(&alice),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "last_owner");
    let got = app
        .call(Method::DELETE, &alice, &member(&alice), None)
        .await;
    assert_problem(&got, StatusCode::CONFLICT, "last_owner");

    // An admin manages members, but not ownership.
    let (status, changed) = app
        .call(
            Method::PATCH,
            &ada,
            &member(&max),
            Some(json!({"role": "viewer", "permissions": {"kpis": "read"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (changed["role"].as_str(), &changed["permissions"]),
        (Some("viewer"), &json!({"kpis": "read"}))
    );
    for target in [&max, &ada] {
        let got = app
            .call(
                Method::PATCH,
                &ada,
                &member(target),
                Some(json!({"role": "owner"})),
            )
            .await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let got = app.call(Method::DELETE, &ada, &member(&alice), None).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");

    // The owner makes ada an owner; then alice may step down.
    let (status, _) = app
        .call(
            Method::PATCH,
            &alice,
            &member(&ada),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, me) = app
        .call(
            Method::PATCH,
            &alice,
            &member(&alice),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(
        (status, me["role"].as_str()),
        (StatusCode::OK, Some("admin"))
    );

    // A member leaves; the organization is gone for them.
    let (status, _) = app.call(Method::DELETE, &max, &member(&max), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = app
        .call(Method::GET, &max, &format!("/v1/orgs/{}", alice.org), None)
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn deleting_an_organization_needs_its_owner_and_its_slug() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let ada = app.user("ada@example.com").await;
    app.add_member(&alice, alice.org, &ada, Role::Admin).await;
    let path = format!("/v1/orgs/{}", alice.org);
    let (_, org) = app.call(Method::GET, &alice, &path, None).await;
    let slug = org["slug"].as_str().expect("slug").to_string();

    let got = app
        .call(
            Method::DELETE,
            &ada,
            &format!("{path}?confirm={slug}"),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .call(
            Method::DELETE,
            &alice,
            &format!("{path}?confirm=wrong"),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let got = app.call(Method::DELETE, &alice, &path, None).await;
    assert_problem(&got, StatusCode::BAD_REQUEST, "bad_request");
    let (status, _) = app.call(Method::GET, &alice, &path, None).await;
    assert_eq!(status, StatusCode::OK, "still there after refused deletes");

    let (status, _) = app
        .call(
            Method::DELETE,
            &alice,
            &format!("{path}?confirm={slug}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for user in [&alice, &ada] {
        let got = app.call(Method::GET, user, &path, None).await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn adding_a_member_twice_is_a_conflict_that_says_so() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &bob, Role::Member).await;
    let mut tx = tenantry_server::kernel::org_tx::OrgTx::begin(
        &app.db.runtime,
        &tenantry_db::RequestContext::user(alice.id),
        alice.org,
    )
    .await
    .expect("begin");
    let again = tenantry_server::orgs::store::add_member(&mut tx, bob.id, Role::Viewer).await;
    assert!(
        matches!(
            again,
            Err(tenantry_server::Error::Conflict {
                code: "already_member",
                ..
            })
        ),
        "{again:?}"
    );
}
