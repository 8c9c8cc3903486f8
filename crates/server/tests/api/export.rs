//! Downloads of data: an owner's copy of their organization (the bundle as a tar) and a
//! person's own data. Both are read under the caller's binding: written from the side of an
//! admin, an outsider, another member with private conversations, and an API key.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_server::kernel::access::Role;

use crate::helpers::{api_key, assert_problem, TestApp, TestUser};

/// The tar's files, by name, as text.
fn untar(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .expect("a tar")
        .filter_map(|entry| {
            let mut entry = entry.expect("entry");
            let name = entry.path().expect("path").to_string_lossy().into_owned();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).ok()?;
            Some((name, text))
        })
        .filter(|(name, _)| name.contains('.'))
        .collect()
}

/// Creates one of `what` in `org`, insisting it was created.
async fn create(app: &TestApp, user: &TestUser, org: uuid::Uuid, what: &str, body: Value) {
    let (status, created) = app
        .call(
            Method::POST,
            user,
            &format!("/v1/orgs/{org}/{what}"),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
}

async fn download(app: &TestApp, user: &TestUser, org: uuid::Uuid) -> (StatusCode, Vec<u8>) {
    let response = app
        .request(
            Method::GET,
            Some(&user.token),
            &format!("/v1/orgs/{org}/export"),
        )
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.bytes().await.expect("body").to_vec())
}

#[tokio::test]
async fn an_owner_downloads_what_an_owner_may_read_and_nobody_else_downloads_anything() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let (bob, carol, vic) = crate::ai::member_admin_viewer(&app, &alice).await;
    let eve = app.user("eve@example.com").await;
    create(
        &app,
        &alice,
        alice.org,
        "customers",
        json!({"name": "Exported Customer"}),
    )
    .await;
    create(
        &app,
        &eve,
        eve.org,
        "customers",
        json!({"name": "Eve's Secret Customer"}),
    )
    .await;
    // Bob's conversation is his: the owner's rules do not reach it.
    create(
        &app,
        &bob,
        alice.org,
        "conversations",
        json!({"title": "Bob's private question"}),
    )
    .await;
    let key = api_key(&app, &alice, "read", json!(["crm"])).await;

    let (status, bytes) = download(&app, &alice, alice.org).await;
    assert_eq!(status, StatusCode::OK);
    let files = untar(&bytes);
    let slug = files
        .keys()
        .find_map(|name| name.strip_suffix("/manifest.json"))
        .expect("a manifest")
        .to_owned();
    let manifest: Value =
        serde_json::from_str(&files[&format!("{slug}/manifest.json")]).expect("json");
    assert_eq!(manifest["format"], "tenantry-organization-bundle");
    assert_eq!(manifest["complete"], false, "not importable");
    assert_eq!(manifest["organization"]["id"], json!(alice.org));
    // Every file is listed with its rows and checksum, and is there.
    for table in manifest["tables"].as_array().expect("tables") {
        let text = &files[&format!("{slug}/{}", table["file"].as_str().expect("file"))];
        assert_eq!(
            text.lines().count() as u64,
            table["rows"].as_u64().expect("rows")
        );
    }
    assert!(files[&format!("{slug}/public.customers.ndjson")].contains("Exported Customer"));
    assert!(
        !files.contains_key(&format!("{slug}/public.integration_secrets.ndjson")),
        "sealed credentials stay in the vault"
    );
    let members = &files[&format!("{slug}/public.organization_members.ndjson")];
    assert_eq!(members.lines().count(), 4);
    let everything: String = files.values().cloned().collect();
    for absent in [
        eve.org.to_string(),
        "Eve's Secret Customer".into(),
        "eve@example.com".into(),
        "Bob's private question".into(),
        "password_hash".into(),
        "secret_hash".into(),
        key.token.clone(),
    ] {
        assert!(
            !everything.contains(&absent),
            "{absent} leaked into the download"
        );
    }

    // Nobody but an owner of the organization.
    for (who, status, code) in [
        (&carol, StatusCode::FORBIDDEN, "forbidden"),
        (&bob, StatusCode::FORBIDDEN, "forbidden"),
        (&vic, StatusCode::FORBIDDEN, "forbidden"),
        (&eve, StatusCode::NOT_FOUND, "not_found"),
        (&key, StatusCode::FORBIDDEN, "forbidden"),
    ] {
        let got = app
            .call(
                Method::GET,
                who,
                &format!("/v1/orgs/{}/export", alice.org),
                None,
            )
            .await;
        assert_problem(&got, status, code);
    }
    let response = app
        .request(Method::GET, None, &format!("/v1/orgs/{}/export", alice.org))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // An organization named by anything but an id is no organization.
    for malformed in ["not-an-id", "%27%20OR%201%3D1--", "00000000-0000-0000-0000"] {
        let got = app
            .call(
                Method::GET,
                &alice,
                &format!("/v1/orgs/{malformed}/export"),
                None,
            )
            .await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{malformed}: {}", got.1);
    }
    // The scratch files of the downloads are gone.
    let left = std::fs::read_dir(std::env::temp_dir())
        .expect("temp")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("tenantry-export-")
        })
        .count();
    assert_eq!(left, 0, "scratch directories removed");
}

#[tokio::test]
async fn a_person_downloads_their_own_data_and_nobody_elses() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &bob, Role::Member).await;
    for (who, title) in [(&alice, "Alice's question"), (&bob, "Bob's question")] {
        create(
            &app,
            who,
            alice.org,
            "conversations",
            json!({"title": title}),
        )
        .await;
    }

    let (status, mine) = app.call(Method::GET, &bob, "/v1/me/export", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["user_id"], json!(bob.id));
    let account = &mine["account"]["public.users"];
    assert_eq!(account.as_array().map(Vec::len), Some(1));
    assert_eq!(account[0]["email"], "bob@example.com");
    assert!(mine["account"]["public.sessions"]
        .as_array()
        .is_some_and(|s| !s.is_empty()));
    let organizations = mine["organizations"].as_array().expect("organizations");
    // His own organization from signing up, and Alice's where he is a member.
    assert_eq!(organizations.len(), 2);
    let there = organizations
        .iter()
        .find(|o| o["id"] == json!(alice.org))
        .expect("alice's organization");
    assert_eq!(there["role"], "member");
    let conversations = there["records"]["public.ai_conversations"]
        .as_array()
        .expect("his conversations");
    assert_eq!(conversations.len(), 1);
    assert_eq!(conversations[0]["title"], "Bob's question");
    let text = mine.to_string();
    for absent in [
        "Alice's question",
        "alice@example.com",
        "password_hash",
        "token_hash",
    ] {
        assert!(
            !text.contains(absent),
            "{absent} leaked into bob's download"
        );
    }

    // An API key is no person; nobody is no person either.
    let key = api_key(&app, &alice, "read", json!(["crm"])).await;
    let got = app.call(Method::GET, &key, "/v1/me/export", None).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let response = app
        .request(Method::GET, None, "/v1/me/export")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
