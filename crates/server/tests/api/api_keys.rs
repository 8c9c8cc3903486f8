//! API keys from the attacker's side: other organizations, weaker scopes, revoked and expired keys.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_server::kernel::access::Role;
use uuid::Uuid;

use crate::helpers::{assert_problem, TestApp, TestUser};

pub(crate) async fn create_key(app: &TestApp, admin: &TestUser, body: Value) -> (Uuid, TestUser) {
    let (status, created) = app
        .call(
            Method::POST,
            admin,
            &format!("/v1/orgs/{}/api-keys", admin.org),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("tnt_k_"));
    let id = created["key"]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id");
    (
        id,
        TestUser {
            id: Uuid::nil(),
            org: admin.org,
            token: secret,
        },
    )
}

#[tokio::test]
async fn a_key_reads_its_own_organization_and_nothing_else() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let (_, key) = create_key(&app, &alice, json!({"name": "reporting", "access": "read"})).await;

    let (status, org) = app
        .call(Method::GET, &key, &format!("/v1/orgs/{}", alice.org), None)
        .await;
    assert_eq!(
        (status, &org["my_role"]),
        (StatusCode::OK, &json!("viewer"))
    );
    let (status, members) = app
        .call(
            Method::GET,
            &key,
            &format!("/v1/orgs/{}/members", alice.org),
            None,
        )
        .await;
    assert_eq!(
        (status, members["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let (_, listed) = app.call(Method::GET, &key, "/v1/orgs", None).await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));

    // Bob's organization does not exist for alice's key.
    let random = Uuid::now_v7();
    for path in [
        "/v1/orgs/{}",
        "/v1/orgs/{}/members",
        "/v1/orgs/{}/teams",
        "/v1/orgs/{}/api-keys",
    ] {
        let attack = app
            .call(
                Method::GET,
                &key,
                &path.replace("{}", &bob.org.to_string()),
                None,
            )
            .await;
        assert_problem(&attack, StatusCode::NOT_FOUND, "not_found");
        let nowhere = app
            .call(
                Method::GET,
                &key,
                &path.replace("{}", &random.to_string()),
                None,
            )
            .await;
        assert_eq!(attack, nowhere);
    }
}

#[tokio::test]
async fn keys_never_manage_anything() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let carol = app.user("carol@example.com").await;
    app.add_member(&alice, alice.org, &carol, Role::Member)
        .await;
    let (_, read) = create_key(&app, &alice, json!({"name": "read", "access": "read"})).await;
    let (_, write) = create_key(&app, &alice, json!({"name": "write", "access": "write"})).await;
    let (_, before) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/members", alice.org),
            None,
        )
        .await;
    let a = alice.org;
    for key in [&read, &write] {
        for (method, path, body) in [
            (
                Method::PATCH,
                format!("/v1/orgs/{a}"),
                Some(json!({"name": "pwned"})),
            ),
            (
                Method::PATCH,
                format!("/v1/orgs/{a}/members/{}", carol.id),
                Some(json!({"role": "admin"})),
            ),
            (
                Method::POST,
                format!("/v1/orgs/{a}/teams"),
                Some(json!({"name": "bots"})),
            ),
            (Method::GET, format!("/v1/orgs/{a}/api-keys"), None),
            (
                Method::POST,
                format!("/v1/orgs/{a}/api-keys"),
                Some(json!({"name": "more", "access": "write"})),
            ),
            (
                Method::POST,
                "/v1/orgs".to_string(),
                Some(json!({"name": "Key Corp"})),
            ),
        ] {
            let got = app.call(method, key, &path, body).await;
            assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
        }
        let got = app.call(Method::GET, key, "/v1/me", None).await;
        assert_eq!(got.0, StatusCode::UNAUTHORIZED, "a key is not a user");
    }
    let (_, after) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/members", alice.org),
            None,
        )
        .await;
    assert_eq!(before, after);
    let (_, orgs) = app.call(Method::GET, &alice, "/v1/orgs", None).await;
    assert_eq!(orgs["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn only_admins_create_keys_and_secrets_are_shown_once() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let max = app.user("max@example.com").await;
    app.add_member(&alice, alice.org, &max, Role::Member).await;
    let path = format!("/v1/orgs/{}/api-keys", alice.org);
    let got = app
        .call(
            Method::POST,
            &max,
            &path,
            Some(json!({"name": "mine", "access": "read"})),
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    for bad in [
        json!({"name": "", "access": "read"}),
        json!({"name": "x", "access": "admin"}),
        json!({"name": "x", "access": "read", "modules": []}),
        json!({"name": "x", "access": "read", "modules": ["nope"]}),
        json!({"name": "x", "access": "read", "expires_at": "2001-01-01T00:00:00Z"}),
    ] {
        let got = app.call(Method::POST, &alice, &path, Some(bad)).await;
        assert_problem(&got, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let (id, key) = create_key(
        &app,
        &alice,
        json!({"name": "ci", "access": "read", "modules": ["orgs"]}),
    )
    .await;
    app.call(Method::GET, &key, &format!("/v1/orgs/{}", alice.org), None)
        .await;
    let (status, list) = app.call(Method::GET, &alice, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    let listed = &list["items"][0];
    assert_eq!(listed["id"], id.to_string());
    assert!(listed.get("secret").is_none() && !list.to_string().contains(&key.token));
    assert!(key
        .token
        .starts_with(listed["prefix"].as_str().expect("prefix")));
    assert!(listed["last_used_at"].is_string(), "use is recorded");
}

#[tokio::test]
async fn revoked_expired_and_out_of_scope_keys_are_refused() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let org_path = format!("/v1/orgs/{}", alice.org);
    let (revoked_id, revoked) =
        create_key(&app, &alice, json!({"name": "old", "access": "read"})).await;
    let (expired_id, expired) =
        create_key(&app, &alice, json!({"name": "short", "access": "read"})).await;
    let (_, kpis_only) = create_key(
        &app,
        &alice,
        json!({"name": "kpis", "access": "read", "modules": ["kpis"]}),
    )
    .await;
    for key in [&revoked, &expired] {
        let (status, _) = app.call(Method::GET, key, &org_path, None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = app
        .call(
            Method::DELETE,
            &alice,
            &format!("/v1/orgs/{}/api-keys/{revoked_id}", alice.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Time passes for the other key.
    let owner = app.db.owner().await;
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(expired_id)
        .execute(&owner.0)
        .await
        .expect("expire");
    for key in [&revoked, &expired] {
        let got = app.call(Method::GET, key, &org_path, None).await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let forged = TestUser {
        token: format!("{}x", kpis_only.token),
        ..kpis_only.clone()
    };
    let got = app.call(Method::GET, &forged, &org_path, None).await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, "unauthenticated");
    let got = app.call(Method::GET, &kpis_only, &org_path, None).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let (_, list) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/api-keys", alice.org),
            None,
        )
        .await;
    let revoked_row = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|k| k["id"] == revoked_id.to_string())
        .cloned();
    assert!(revoked_row.is_some_and(|k| k["revoked_at"].is_string()));
}
