//! Strive CRM over HTTP: customers, their custom fields, search; and the rules the database keeps
//! for projects and tasks (composite keys, members only, no cycles, derived progress).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_db::RequestContext;
use tenantry_server::kernel::access::Role;
use tenantry_server::kernel::org_tx::OrgTx;
use uuid::Uuid;

use crate::helpers::{api_key, assert_problem, refused_fields, TestApp, TestUser};

fn customers(user: &TestUser) -> String {
    format!("/v1/orgs/{}/customers", user.org)
}

fn fields(user: &TestUser) -> String {
    format!("/v1/orgs/{}/customer-fields", user.org)
}

async fn create(app: &TestApp, user: &TestUser, body: Value) -> Value {
    let (status, created) = app
        .call(Method::POST, user, &customers(user), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn define(app: &TestApp, user: &TestUser, body: Value) {
    let (status, created) = app
        .call(Method::POST, user, &fields(user), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
}

fn id(value: &Value) -> &str {
    value["id"].as_str().expect("id")
}

/// The names of a list's items, in order.
fn names(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

#[tokio::test]
async fn viewers_read_members_write_admins_delete() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let (viewer, member, admin) = (
        app.user("vera@example.com").await,
        app.user("max@example.com").await,
        app.user("ada@example.com").await,
    );
    for (user, role) in [
        (&viewer, Role::Viewer),
        (&member, Role::Member),
        (&admin, Role::Admin),
    ] {
        app.add_member(&alice, alice.org, user, role).await;
    }
    let in_alices = |u: &TestUser| TestUser {
        org: alice.org,
        ..u.clone()
    };
    let (viewer, member, admin) = (in_alices(&viewer), in_alices(&member), in_alices(&admin));

    let refused = app
        .call(
            Method::POST,
            &viewer,
            &customers(&viewer),
            Some(json!({"name": "Nope"})),
        )
        .await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "forbidden");
    let customer = create(
        &app,
        &member,
        json!({"name": "  Grace Hopper ", "email": " grace@navy.mil ", "company": "US Navy",
               "tags": ["vip", " navy", "vip"], "assigned_to": member.id}),
    )
    .await;
    assert_eq!(customer["name"], "Grace Hopper");
    assert_eq!(customer["email"], "grace@navy.mil");
    assert_eq!(customer["status"], "lead");
    assert_eq!(customer["source"], "other");
    assert_eq!(customer["tags"], json!(["vip", "navy"]));
    assert_eq!(customer["custom_fields"], json!({}));
    let path = format!("{}/{}", customers(&alice), id(&customer));

    let (status, seen) = app.call(Method::GET, &viewer, &path, None).await;
    assert_eq!(
        (status, &seen["name"]),
        (StatusCode::OK, &json!("Grace Hopper"))
    );
    let refused = app
        .call(
            Method::PATCH,
            &viewer,
            &path,
            Some(json!({"status": "active"})),
        )
        .await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "forbidden");
    let (status, changed) = app
        .call(
            Method::PATCH,
            &member,
            &path,
            Some(json!({"status": "active", "phone": "+1 555 0100", "company": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["status"], "active");
    assert_eq!(changed["phone"], "+1 555 0100");
    assert!(changed["company"].is_null());
    assert_eq!(changed["email"], "grace@navy.mil", "absent fields stay");

    let refused = app.call(Method::DELETE, &member, &path, None).await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "forbidden");
    // Custom fields are the admins' to define.
    let refused = app
        .call(
            Method::POST,
            &member,
            &fields(&alice),
            Some(json!({"key": "tier", "label": "Tier", "kind": "text"})),
        )
        .await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = app.call(Method::DELETE, &admin, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = app.call(Method::GET, &alice, &path, None).await;
    assert_problem(&gone, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn an_email_belongs_to_one_customer_per_organization_whatever_its_case() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    create(
        &app,
        &alice,
        json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    let taken = app
        .call(
            Method::POST,
            &alice,
            &customers(&alice),
            Some(json!({"name": "Ada again", "email": "ADA@Example.com"})),
        )
        .await;
    assert_problem(&taken, StatusCode::CONFLICT, "email_taken");
    let other = create(
        &app,
        &alice,
        json!({"name": "Other", "email": "other@example.com"}),
    )
    .await;
    let taken = app
        .call(
            Method::PATCH,
            &alice,
            &format!("{}/{}", customers(&alice), id(&other)),
            Some(json!({"email": "Ada@example.com"})),
        )
        .await;
    assert_problem(&taken, StatusCode::CONFLICT, "email_taken");
    // Another organization has its own customers.
    create(
        &app,
        &bob,
        json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    // Without an email, any number.
    create(&app, &alice, json!({"name": "No email"})).await;
    create(&app, &alice, json!({"name": "No email either"})).await;
    let bad = app
        .call(
            Method::POST,
            &alice,
            &customers(&alice),
            Some(json!({"name": " ", "email": "not-an-email", "tags": ["", "ok"]})),
        )
        .await;
    assert_eq!(refused_fields(&bad), ["name", "email", "tags"]);
}

#[tokio::test]
async fn custom_fields_hold_what_their_definitions_allow() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    define(
        &app,
        &alice,
        json!({"key": "industry", "label": "Industry", "kind": "option",
                                "options": ["saas", "retail"], "required": true}),
    )
    .await;
    define(
        &app,
        &alice,
        json!({"key": "seats", "label": "Seats", "kind": "number"}),
    )
    .await;
    define(
        &app,
        &alice,
        json!({"key": "renewal", "label": "Renewal", "kind": "date"}),
    )
    .await;
    define(
        &app,
        &alice,
        json!({"key": "nda", "label": "NDA signed", "kind": "boolean"}),
    )
    .await;
    let (status, listed) = app.call(Method::GET, &alice, &fields(&alice), None).await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&str> = listed
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["key"].as_str())
        .collect();
    assert_eq!(keys, ["industry", "nda", "renewal", "seats"]);

    let again = app
        .call(
            Method::POST,
            &alice,
            &fields(&alice),
            Some(json!({"key": "seats", "label": "Seats", "kind": "text"})),
        )
        .await;
    assert_problem(&again, StatusCode::CONFLICT, "field_exists");
    let bad = app
        .call(
            Method::POST,
            &alice,
            &fields(&alice),
            Some(json!({"key": "Bad-Key", "label": "", "kind": "option"})),
        )
        .await;
    assert_eq!(refused_fields(&bad), ["key", "label", "options"]);

    for (custom_fields, field) in [
        (json!({"seats": 3}), "custom_fields.industry"),
        (json!({"industry": "mining"}), "custom_fields.industry"),
        (
            json!({"industry": "saas", "seats": "many"}),
            "custom_fields.seats",
        ),
        (
            json!({"industry": "saas", "renewal": "2027-02-30"}),
            "custom_fields.renewal",
        ),
        (
            json!({"industry": "saas", "renewal": "soon"}),
            "custom_fields.renewal",
        ),
        (
            json!({"industry": "saas", "nda": "yes"}),
            "custom_fields.nda",
        ),
        (
            json!({"industry": "saas", "colour": "red"}),
            "custom_fields.colour",
        ),
        // More digits than come back unchanged.
        (
            json!({"industry": "saas", "seats": 12345678901234567890_u64}),
            "custom_fields.seats",
        ),
    ] {
        let refused = app
            .call(
                Method::POST,
                &alice,
                &customers(&alice),
                Some(json!({"name": "Acme", "custom_fields": custom_fields})),
            )
            .await;
        assert_eq!(refused_fields(&refused), [field], "{custom_fields}");
    }
    let acme = create(
        &app,
        &alice,
        json!({"name": "Acme", "custom_fields":
        {"industry": "saas", "seats": 12.5, "renewal": "2027-01-31", "nda": true}}),
    )
    .await;
    assert_eq!(acme["custom_fields"]["seats"], 12.5);
    let precise = create(
        &app,
        &alice,
        json!({"name": "Precise", "custom_fields": {"industry": "saas", "seats": 123456789012345_u64}}),
    )
    .await;
    assert_eq!(precise["custom_fields"]["seats"], 123456789012345_u64);
    let (status, _) = app
        .call(
            Method::DELETE,
            &alice,
            &format!("{}/{}", customers(&alice), id(&precise)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let path = format!("{}/{}", customers(&alice), id(&acme));
    // PATCH merges: a key set to null is removed, the others stay.
    let (status, merged) = app
        .call(
            Method::PATCH,
            &alice,
            &path,
            Some(json!({"custom_fields": {"seats": null, "nda": false}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(
        merged["custom_fields"],
        json!({"industry": "saas", "renewal": "2027-01-31", "nda": false})
    );
    let refused = app
        .call(
            Method::PATCH,
            &alice,
            &path,
            Some(json!({"custom_fields": {"industry": null}})),
        )
        .await;
    assert_eq!(
        refused_fields(&refused),
        ["custom_fields.industry"],
        "required"
    );

    // Filtering by a custom field.
    create(
        &app,
        &alice,
        json!({"name": "Shop", "custom_fields": {"industry": "retail"}}),
    )
    .await;
    let (_, saas) = list(&app, &alice, &[("custom", r#"{"industry":"saas"}"#)]).await;
    assert_eq!(names(&saas), ["Acme"]);

    // A definition (or an option) in use is not taken away without saying so.
    let in_use = app
        .call(
            Method::DELETE,
            &alice,
            &format!("{}/nda", fields(&alice)),
            None,
        )
        .await;
    assert_problem(&in_use, StatusCode::CONFLICT, "field_in_use");
    let in_use = app
        .call(
            Method::PATCH,
            &alice,
            &format!("{}/industry", fields(&alice)),
            Some(json!({"options": ["saas"]})),
        )
        .await;
    assert_problem(&in_use, StatusCode::CONFLICT, "field_in_use");
    let (status, widened) = app
        .call(
            Method::PATCH,
            &alice,
            &format!("{}/industry", fields(&alice)),
            Some(json!({"options": ["saas", "retail", "health"], "label": "Sector"})),
        )
        .await;
    assert_eq!(
        (status, &widened["label"]),
        (StatusCode::OK, &json!("Sector"))
    );
    // A field made required later is demanded when values are added or changed, not when
    // others are taken away: the industry values can still be cleared.
    define(
        &app,
        &alice,
        json!({"key": "region", "label": "Region", "kind": "text", "required": true}),
    )
    .await;
    let refused = app
        .call(
            Method::PATCH,
            &alice,
            &path,
            Some(json!({"custom_fields": {"nda": true}})),
        )
        .await;
    assert_eq!(refused_fields(&refused), ["custom_fields.region"]);
    let (status, body) = app
        .call(
            Method::DELETE,
            &alice,
            &format!("{}/industry?clear_values=true", fields(&alice)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = app
        .call(
            Method::DELETE,
            &alice,
            &format!("{}/region", fields(&alice)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, cleared) = app.call(Method::GET, &alice, &path, None).await;
    assert_eq!(
        cleared["custom_fields"],
        json!({"renewal": "2027-01-31", "nda": false})
    );
    let unused = app
        .call(
            Method::DELETE,
            &alice,
            &format!("{}/seats", fields(&alice)),
            None,
        )
        .await;
    assert_eq!(
        unused.0,
        StatusCode::NO_CONTENT,
        "no customer holds seats any more"
    );
}

async fn list(app: &TestApp, user: &TestUser, query: &[(&str, &str)]) -> (StatusCode, Value) {
    crate::helpers::read(
        app.request(Method::GET, Some(&user.token), &customers(user))
            .query(query)
            .send()
            .await
            .expect("send"),
    )
    .await
}

async fn search(app: &TestApp, user: &TestUser, q: &str) -> Value {
    list(app, user, &[("q", q)]).await.1
}

#[tokio::test]
async fn search_filters_and_sorts_page_through_every_match_once() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &bob, Role::Member).await;
    let people = [
        (
            "Ada Lovelace",
            "ada@analytical.org",
            "Analytical Engines",
            "active",
            vec!["vip", "math"],
        ),
        (
            "Grace Hopper",
            "grace@navy.mil",
            "US Navy",
            "prospect",
            vec!["vip"],
        ),
        (
            "Alan Turing",
            "alan@bletchley.uk",
            "Bletchley Park",
            "lead",
            vec!["math"],
        ),
        (
            "Katherine Johnson",
            "kj@nasa.gov",
            "NASA",
            "active",
            vec!["math", "space"],
        ),
        (
            "Margaret Hamilton",
            "mh@mit.edu",
            "MIT",
            "churned",
            vec!["space"],
        ),
        ("50% Off Shop", "deals@shop.com", "Shop_Co", "lead", vec![]),
    ];
    for (i, (name, email, company, status, tags)) in people.iter().enumerate() {
        let assignee = if i % 2 == 0 { alice.id } else { bob.id };
        create(
            &app,
            &alice,
            json!({"name": name, "email": email, "company": company,
                                    "status": status, "tags": tags, "assigned_to": assignee}),
        )
        .await;
    }
    // Another organization's customer never shows.
    create(
        &app,
        &bob,
        json!({"name": "Ada Lovelace (Bob's)", "tags": ["vip"]}),
    )
    .await;

    assert_eq!(
        names(&search(&app, &alice, "lovel").await),
        ["Ada Lovelace"],
        "part of a word"
    );
    assert_eq!(
        names(&search(&app, &alice, "LOVELASE").await),
        ["Ada Lovelace"],
        "a misspelling"
    );
    assert_eq!(
        names(&search(&app, &alice, "nasa.gov").await),
        ["Katherine Johnson"],
        "the email"
    );
    assert_eq!(
        names(&search(&app, &alice, "bletchley park").await),
        ["Alan Turing"],
        "the company"
    );
    assert_eq!(
        names(&search(&app, &alice, "50%").await),
        ["50% Off Shop"],
        "% is no wildcard"
    );
    assert_eq!(
        names(&search(&app, &alice, "%").await),
        Vec::<&str>::new(),
        "% alone matches nothing"
    );
    assert_eq!(
        names(&search(&app, &alice, "shop_co").await),
        ["50% Off Shop"],
        "_ is no wildcard"
    );
    assert_eq!(
        names(&search(&app, &alice, "_").await),
        Vec::<&str>::new(),
        "_ alone matches nothing"
    );
    assert_eq!(
        names(&search(&app, &alice, "'; DROP TABLE customers; --").await),
        Vec::<&str>::new()
    );

    let (_, vip_math) = list(&app, &alice, &[("tags_all", "vip,math")]).await;
    assert_eq!(names(&vip_math), ["Ada Lovelace"]);
    let (_, vip_or_space) = list(
        &app,
        &alice,
        &[("tags_any", "vip,space"), ("sort", "-name")],
    )
    .await;
    assert_eq!(
        names(&vip_or_space),
        [
            "Margaret Hamilton",
            "Katherine Johnson",
            "Grace Hopper",
            "Ada Lovelace"
        ]
    );
    let (_, active_math) = list(
        &app,
        &alice,
        &[
            ("status", "active,prospect"),
            ("tags_any", "math"),
            ("q", "johnson"),
        ],
    )
    .await;
    assert_eq!(names(&active_math), ["Katherine Johnson"]);
    let (_, mine) = list(&app, &alice, &[("assigned_to", "me")]).await;
    assert_eq!(
        names(&mine),
        ["Ada Lovelace", "Alan Turing", "Margaret Hamilton"]
    );
    let bob_id = bob.id.to_string();
    let (_, bobs) = list(&app, &alice, &[("assigned_to", &bob_id)]).await;
    assert_eq!(
        names(&bobs),
        ["50% Off Shop", "Grace Hopper", "Katherine Johnson"]
    );

    // Every order pages through all six once, in order.
    for (sort, expected) in [
        (
            "name",
            vec![
                "50% Off Shop",
                "Ada Lovelace",
                "Alan Turing",
                "Grace Hopper",
                "Katherine Johnson",
                "Margaret Hamilton",
            ],
        ),
        ("-created", people.iter().rev().map(|p| p.0).collect()),
        ("updated", people.iter().map(|p| p.0).collect()),
    ] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("sort", sort), ("limit", "4")];
            if let Some(cursor) = &after {
                query.push(("after", cursor));
            }
            let (status, page) = list(&app, &alice, &query).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            seen.extend(names(&page).into_iter().map(String::from));
            match page["next_cursor"].as_str() {
                Some(next) => after = Some(next.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, expected, "sort {sort}");
    }

    // A cursor belongs to its sort; bad parameters are named.
    let (_, first) = list(&app, &alice, &[("sort", "name"), ("limit", "1")]).await;
    let cursor = first["next_cursor"].as_str().expect("cursor").to_string();
    for query in [
        vec![("sort", "-name"), ("after", cursor.as_str())],
        vec![("after", "garbage")],
        vec![("sort", "relevance")],
        vec![("sort", "shoe size")],
        vec![("status", "lead,vip")],
        vec![("assigned_to", "someone")],
        vec![("custom", "[1]")],
        vec![("limit", "0")],
    ] {
        let (status, problem) = list(&app, &alice, &query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}: {problem}");
    }
}

#[tokio::test]
async fn another_organization_cannot_see_change_or_assign() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    define(
        &app,
        &alice,
        json!({"key": "secret", "label": "Secret", "kind": "text"}),
    )
    .await;
    let customer = create(
        &app,
        &alice,
        json!({"name": "Private", "tags": ["secret"],
                                               "custom_fields": {"secret": "launch codes"}}),
    )
    .await;
    let in_alices = TestUser {
        org: alice.org,
        ..mallory.clone()
    };
    let path = |org: Uuid| format!("/v1/orgs/{org}/customers/{}", id(&customer));
    for user in [&mallory, &in_alices] {
        let org = user.org;
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(json!({"name": "Mine now"}))),
            (Method::DELETE, None),
        ] {
            let got = app.call(method.clone(), user, &path(org), body).await;
            assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
        }
    }
    let (status, listed) = list(&app, &mallory, &[("q", "private")]).await;
    assert_eq!((status, names(&listed)), (StatusCode::OK, vec![]));
    let got = list(&app, &in_alices, &[]).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let got = app
        .call(Method::GET, &in_alices, &fields(&alice), None)
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    // Mallory's custom field definitions do not let her write Alice's keys, and she cannot assign
    // Alice's customers to herself or Alice's to hers.
    let refused = app
        .call(
            Method::POST,
            &alice,
            &customers(&alice),
            Some(json!({"name": "Assigned out", "assigned_to": mallory.id})),
        )
        .await;
    assert_eq!(refused_fields(&refused), ["assigned_to"]);
    let refused = app
        .call(
            Method::POST,
            &mallory,
            &customers(&mallory),
            Some(json!({"name": "Assigned in", "assigned_to": alice.id})),
        )
        .await;
    assert_eq!(refused_fields(&refused), ["assigned_to"]);
    let (_, unchanged) = app.call(Method::GET, &alice, &path(alice.org), None).await;
    assert_eq!(unchanged["name"], "Private");
    assert_eq!(
        unchanged["custom_fields"],
        json!({"secret": "launch codes"})
    );
}

/// A tenant transaction of `user` in `org`, straight to SQL as the runtime role.
async fn sql_as(app: &TestApp, user: &TestUser, org: Uuid) -> OrgTx {
    OrgTx::begin(&app.db.runtime, &RequestContext::user(user.id), org)
        .await
        .expect("begin")
}

async fn insert_id(tx: &mut OrgTx, sql: &str, binds: &[Option<Uuid>]) -> Result<Uuid, String> {
    let mut query = sqlx::query_scalar::<_, Uuid>(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    query.fetch_one(tx.conn()).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn projects_and_tasks_keep_their_references_inside_one_organization() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let carol = app.user("carol@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    app.add_member(&alice, alice.org, &carol, Role::Member)
        .await;
    let customer = create(&app, &alice, json!({"name": "Client"})).await;
    let customer: Uuid = id(&customer).parse().expect("uuid");
    let org = Some(alice.org);

    let mut tx = sql_as(&app, &alice, alice.org).await;
    let project = insert_id(
        &mut tx,
        "INSERT INTO projects (organization_id, customer_id, name, project_manager_id, budget)
         VALUES ($1, $2, 'Launch', $3, 1234.56) RETURNING id",
        &[org, Some(customer), Some(carol.id)],
    )
    .await
    .expect("project");
    let other = insert_id(
        &mut tx,
        "INSERT INTO projects (organization_id, name) VALUES ($1, 'Other') RETURNING id",
        &[org],
    )
    .await
    .expect("other project");
    let task = |title: &'static str, hours: Option<&'static str>| {
        format!("INSERT INTO tasks (organization_id, project_id, parent_task_id, title, position, estimated_hours, assigned_to)
                 VALUES ($1, $2, $3, '{title}', 'V', {}, $4) RETURNING id", hours.unwrap_or("NULL"))
    };
    let top = insert_id(
        &mut tx,
        &task("Top", Some("3")),
        &[org, Some(project), None, Some(carol.id)],
    )
    .await
    .expect("task");
    let sub = insert_id(
        &mut tx,
        &task("Sub", None),
        &[org, Some(project), Some(top), None],
    )
    .await
    .expect("subtask");
    let subsub = insert_id(
        &mut tx,
        &task("Subsub", None),
        &[org, Some(project), Some(sub), None],
    )
    .await
    .expect("subsubtask");
    tx.commit().await.expect("commit");

    // The creator is the actor, whatever was sent.
    let mut tx = sql_as(&app, &alice, alice.org).await;
    let creator: Option<Uuid> = sqlx::query_scalar("SELECT created_by FROM tasks WHERE id = $1")
        .bind(top)
        .fetch_one(tx.conn())
        .await
        .expect("creator");
    assert_eq!(creator, Some(alice.id));
    // A subtask under another project's task, a cycle, a task its own parent: refused.
    let refused = insert_id(
        &mut tx,
        &task("Stray", None),
        &[org, Some(other), Some(top), None],
    )
    .await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("tasks_parent")),
        "{refused:?}"
    );
    tx.commit().await.ok();
    for (task, parent) in [(top, subsub), (top, top), (sub, subsub)] {
        let mut tx = sql_as(&app, &alice, alice.org).await;
        let refused = sqlx::query(
            "UPDATE tasks SET parent_task_id = $2 WHERE organization_id = $1 AND id = $3",
        )
        .bind(alice.org)
        .bind(parent)
        .bind(task)
        .execute(tx.conn())
        .await;
        let message = refused
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            message.contains("subtask") || message.contains("tasks_not_own_parent"),
            "{message}"
        );
    }
    // Assignees and managers are members; another organization's customer is not a customer here.
    let mut tx = sql_as(&app, &alice, alice.org).await;
    let refused = insert_id(
        &mut tx,
        &task("Outsider", None),
        &[org, Some(project), None, Some(mallory.id)],
    )
    .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("tasks_assignee")),
        "{refused:?}"
    );
    drop(tx);
    let mallorys_customer = create(&app, &mallory, json!({"name": "Mallory's client"})).await;
    let mut tx = sql_as(&app, &alice, alice.org).await;
    let refused = insert_id(&mut tx,
        "INSERT INTO projects (organization_id, customer_id, name) VALUES ($1, $2, 'Stolen') RETURNING id",
        &[org, Some(id(&mallorys_customer).parse().expect("uuid"))]).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("projects_customer")),
        "{refused:?}"
    );
    drop(tx);
    // Mallory, in her own organization, sees none of it and changes none of it.
    let mut tx = sql_as(&app, &mallory, mallory.org).await;
    let seen: i64 =
        sqlx::query_scalar("SELECT (SELECT count(*) FROM projects) + (SELECT count(*) FROM tasks)")
            .fetch_one(tx.conn())
            .await
            .expect("count");
    assert_eq!(seen, 0);
    let changed = sqlx::query("UPDATE tasks SET title = 'pwned' WHERE id = $1")
        .bind(top)
        .execute(tx.conn())
        .await
        .expect("update")
        .rows_affected();
    assert_eq!(changed, 0);
    let refused = insert_id(
        &mut tx,
        &task("Planted", None),
        &[org, Some(project), None, None],
    )
    .await;
    assert!(refused.is_err(), "writing into Alice's organization");
    drop(tx);

    // Progress: 3 hours (top) + 1 + 1 (no estimates); completing and reopening.
    let progress = |app: &TestApp| {
        let alice = alice.clone();
        let pool = app.db.runtime.clone();
        async move {
            let mut tx = OrgTx::begin(&pool, &RequestContext::user(alice.id), alice.org)
                .await
                .expect("begin");
            let row: (i32, Option<chrono::NaiveDate>) = sqlx::query_as(
                "SELECT progress_percentage, completion_date FROM projects WHERE id = $1",
            )
            .bind(project)
            .fetch_one(tx.conn())
            .await
            .expect("project");
            row
        }
    };
    assert_eq!(progress(&app).await, (0, None));
    let mut tx = sql_as(&app, &alice, alice.org).await;
    for (task, status) in [(top, "done"), (sub, "cancelled")] {
        sqlx::query("UPDATE tasks SET status = $2 WHERE organization_id = $1 AND id = $3")
            .bind(alice.org)
            .bind(status)
            .bind(task)
            .execute(tx.conn())
            .await
            .expect("status");
    }
    sqlx::query("UPDATE projects SET status = 'completed' WHERE id = $1")
        .bind(project)
        .execute(tx.conn())
        .await
        .expect("complete");
    tx.commit().await.expect("commit");
    let (percent, completed) = progress(&app).await;
    assert_eq!(
        percent, 75,
        "3 of 4 hours: the cancelled subtask does not count"
    );
    assert!(completed.is_some());
    let mut tx = sql_as(&app, &alice, alice.org).await;
    sqlx::query("UPDATE projects SET status = 'active', progress_manual = 10 WHERE id = $1")
        .bind(project)
        .execute(tx.conn())
        .await
        .expect("reopen");
    tx.commit().await.expect("commit");
    assert_eq!(
        progress(&app).await,
        (10, None),
        "set by hand wins; reopening clears the date"
    );

    // Carol leaves: her assignments are cleared, nothing is deleted.
    let (status, _) = app
        .call(
            Method::DELETE,
            &alice,
            &format!("/v1/orgs/{}/members/{}", alice.org, carol.id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut tx = sql_as(&app, &alice, alice.org).await;
    let left: (Option<Uuid>, Option<Uuid>, i64) = sqlx::query_as(
        "SELECT (SELECT project_manager_id FROM projects WHERE id = $1),
                (SELECT assigned_to FROM tasks WHERE id = $2),
                (SELECT count(*) FROM tasks WHERE project_id = $1)",
    )
    .bind(project)
    .bind(top)
    .fetch_one(tx.conn())
    .await
    .expect("after leaving");
    assert_eq!(left, (None, None, 3));
}

async fn import(app: &TestApp, user: &TestUser, csv: &str) -> (StatusCode, Value) {
    crate::helpers::read(
        app.request(
            Method::POST,
            Some(&user.token),
            &format!("{}/import", customers(user)),
        )
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .expect("send"),
    )
    .await
}

async fn export(app: &TestApp, user: &TestUser) -> String {
    let response = app
        .request(
            Method::GET,
            Some(&user.token),
            &format!("{}.csv", customers(user)),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("csv")
}

/// A customer as the API shows it, without what another organization gives it anew.
fn portable(customer: &Value) -> Value {
    let mut c = customer.clone();
    for key in ["id", "created_at", "updated_at"] {
        c.as_object_mut().map(|o| o.remove(key));
    }
    c
}

#[tokio::test]
async fn an_export_imports_into_another_organization_unchanged() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    for user in [&alice, &bob] {
        define(
            &app,
            user,
            json!({"key": "tier", "label": "Tier", "kind": "option", "options": ["gold", "=evil"]}),
        )
        .await;
        define(
            &app,
            user,
            json!({"key": "seats", "label": "Seats", "kind": "number"}),
        )
        .await;
        define(
            &app,
            user,
            json!({"key": "nda", "label": "NDA", "kind": "boolean"}),
        )
        .await;
        define(
            &app,
            user,
            json!({"key": "since", "label": "Since", "kind": "date"}),
        )
        .await;
        define(
            &app,
            user,
            json!({"key": "note", "label": "Note", "kind": "text"}),
        )
        .await;
    }
    create(
        &app,
        &alice,
        json!({"name": "=HYPERLINK(\"http://evil\")", "email": "evil@example.com",
        "phone": "+1 555 0100", "company": "Quotes \"and\", commas\nand lines", "status": "active",
        "source": "referral", "tags": ["vip", "@home", "-1"],
        "custom_fields": {"tier": "=evil", "seats": 12.5, "nda": false, "since": "2020-02-29",
                          "note": "'already quoted"}}),
    )
    .await;
    create(
        &app,
        &alice,
        json!({"name": "Plain", "custom_fields": {"seats": 1e21}}),
    )
    .await;
    create(&app, &alice, json!({"name": "Bare"})).await;
    let csv = export(&app, &alice).await;
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""),
        "formulas are neutralized:\n{csv}"
    );
    assert!(csv.contains(",'+1 555 0100,"), "{csv}");

    let (status, imported) = import(&app, &bob, &csv).await;
    assert_eq!(
        (status, &imported["created"]),
        (StatusCode::OK, &json!(3)),
        "{imported}"
    );
    let (_, theirs) = list(&app, &alice, &[]).await;
    let (_, ours) = list(&app, &bob, &[]).await;
    let portable_all = |page: &Value| -> Vec<Value> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(portable)
            .collect()
    };
    assert_eq!(portable_all(&ours), portable_all(&theirs));
    // And once more is refused whole: every email is taken now.
    let (status, again) = import(&app, &bob, &csv).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{again}");
    let refused = refused_fields(&(status, again.clone())).join(" ");
    assert!(
        refused.starts_with("rows[") && refused.ends_with("].email") && !refused.contains(' '),
        "{refused}"
    );
}

#[tokio::test]
async fn an_import_names_every_bad_row_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let outsider = app.user("outsider@example.com").await;
    define(
        &app,
        &alice,
        json!({"key": "seats", "label": "Seats", "kind": "number", "required": true}),
    )
    .await;
    create(
        &app,
        &alice,
        json!({"name": "Existing", "email": "taken@example.com", "custom_fields": {"seats": 1}}),
    )
    .await;
    let csv = format!(
        "name,email,status,assigned_to,custom.seats\n\
         Good,good@example.com,lead,,3\n\
         ,nameless@example.com,lead,,3\n\
         Bad status,,vip,,3\n\
         Twice,good@example.com,,,3\n\
         Taken,TAKEN@example.com,,,3\n\
         Outsider,,,{},3\n\
         No seats,,,,\n\
         Many seats,,,,lots\n\
         Short row\n",
        outsider.id
    );
    let got = import(&app, &alice, &csv).await;
    // The cells first; the organization's data is asked only when they are all right.
    assert_eq!(
        refused_fields(&got),
        [
            "rows[1].name",
            "rows[2].status",
            "rows[3].email",
            "rows[7].custom.seats",
            "rows[8].cells"
        ]
    );
    let fixed = csv
        .lines()
        .filter(|l| {
            ![
                "Bad status",
                ",nameless",
                "Twice",
                "Many seats",
                "Short row",
            ]
            .iter()
            .any(|b| l.starts_with(b))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let got = import(&app, &alice, &fixed).await;
    assert_eq!(
        refused_fields(&got),
        [
            "rows[1].email",
            "rows[2].assigned_to",
            "rows[3].custom_fields.seats"
        ]
    );
    let (_, all) = list(&app, &alice, &[]).await;
    assert_eq!(names(&all), ["Existing"], "nothing written");
    for (csv, field) in [
        ("name,shoe_size\nA,42\n", "header"),
        ("email\na@example.com\n", "header"),
        ("name,custom.undefined\nA,1\n", "header"),
    ] {
        assert_eq!(
            refused_fields(&import(&app, &alice, csv).await),
            [field],
            "{csv}"
        );
    }
    let (status, _) = import(&app, &alice, "name\n\"open quote\n").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let viewer = app.user("vera@example.com").await;
    app.add_member(&alice, alice.org, &viewer, Role::Viewer)
        .await;
    let viewer = TestUser {
        org: alice.org,
        ..viewer
    };
    let refused = import(&app, &viewer, "name\nA\n").await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn an_organization_with_a_crm_can_still_be_deleted() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    define(
        &app,
        &alice,
        json!({"key": "tier", "label": "Tier", "kind": "text"}),
    )
    .await;
    let customer = create(
        &app,
        &alice,
        json!({"name": "Kept", "custom_fields": {"tier": "gold"}}),
    )
    .await;
    let (status, project) = app
        .call(
            Method::POST,
            &alice,
            &format!("/v1/orgs/{}/projects", alice.org),
            Some(json!({"name": "P", "customer_id": id(&customer)})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let path = format!("/v1/orgs/{}", alice.org);
    let (_, org) = app.call(Method::GET, &alice, &path, None).await;
    let slug = org["slug"].as_str().expect("slug").to_string();
    let (status, body) = app
        .call(
            Method::DELETE,
            &alice,
            &format!("{path}?confirm={slug}"),
            None,
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    let gone = app
        .call(Method::GET, &alice, &customers(&alice), None)
        .await;
    assert_problem(&gone, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn an_import_reads_what_spreadsheets_write() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    define(
        &app,
        &alice,
        json!({"key": "motto", "label": "Motto", "kind": "text"}),
    )
    .await;
    // A byte order mark, CRLF line ends, spaces that belong to a text value.
    let csv = "\u{feff}name,email,custom.motto\r\n Ada ,ada@example.com,\"  spaced out \"\r\n";
    let (status, body) = import(&app, &alice, csv).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, all) = list(&app, &alice, &[]).await;
    assert_eq!(names(&all), ["Ada"]);
    assert_eq!(
        all["items"][0]["custom_fields"],
        json!({"motto": "  spaced out "})
    );
    // A third repeat of an email names the first row it repeats.
    let csv = "name,email\nA,x@example.com\nB,x@example.com\nC,X@example.com\n";
    let got = import(&app, &alice, csv).await;
    assert_eq!(refused_fields(&got), ["rows[1].email", "rows[2].email"]);
    let messages: Vec<&str> = got.1["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "repeats the email of rows[0]",
            "repeats the email of rows[0]"
        ]
    );
}

#[tokio::test]
async fn api_keys_need_the_crm_module_and_write_access() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let acme = create(&app, &alice, json!({"name": "Acme"})).await;
    let (other_module, reader, writer) = (
        &api_key(&app, &alice, "write", json!(["kpis"])).await,
        &api_key(&app, &alice, "read", json!(["crm"])).await,
        &api_key(&app, &alice, "write", json!(["crm"])).await,
    );
    let customer = format!("{}/{}", customers(&alice), id(&acme));
    let dashboard = format!("/v1/orgs/{}/crm/dashboard", alice.org);
    let new_customer = Some(json!({"name": "Globex"}));

    for path in [&customer, &dashboard] {
        let got = app.call(Method::GET, other_module, path, None).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = app.call(Method::GET, reader, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    for key in [other_module, reader] {
        let got = app
            .call(Method::POST, key, &customers(&alice), new_customer.clone())
            .await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
        let got = app
            .call(
                Method::PATCH,
                key,
                &customer,
                Some(json!({"status": "active"})),
            )
            .await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, created) = app
        .call(Method::POST, writer, &customers(&alice), new_customer)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, unchanged) = app.call(Method::GET, &alice, &customer, None).await;
    assert_eq!(
        unchanged["status"], "lead",
        "refused writes changed nothing"
    );
}
