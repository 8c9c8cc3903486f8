//! Content over HTTP: members write drafts, editors (admins, or members granted
//! `content.publish`) publish, and the policies say so too; versions and rollback; slugs and
//! their redirects; scheduled publishing as a job; and the public site, which serves published
//! pages only, rendered without anything that could run.

use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenantry_db::RequestContext;
use tenantry_server::kernel::access::Role;
use tenantry_server::kernel::org_tx::OrgTx;

use crate::appointments::in_org;
use crate::helpers::{api_key, assert_problem, read, refused_fields, TestApp, TestUser};

fn path(user: &TestUser, rest: &str) -> String {
    format!("/v1/orgs/{}/content{rest}", user.org)
}

async fn write(app: &TestApp, user: &TestUser, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, user, &path(user, ""), Some(body))
        .await
}

async fn written(app: &TestApp, user: &TestUser, body: Value) -> Value {
    let (status, created) = write(app, user, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn change(app: &TestApp, user: &TestUser, page: &Value, body: Value) -> (StatusCode, Value) {
    let id = page["id"].as_str().expect("id");
    app.call(
        Method::PATCH,
        user,
        &path(user, &format!("/{id}")),
        Some(body),
    )
    .await
}

async fn changed(app: &TestApp, user: &TestUser, page: &Value, body: Value) -> Value {
    let (status, updated) = change(app, user, page, body).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    updated
}

/// An organization with an owner (Alice), an editor (Ed: a member granted `content.publish`),
/// a member (Mia) and a viewer (Vic).
struct Site {
    app: TestApp,
    alice: TestUser,
    ed: TestUser,
    mia: TestUser,
    vic: TestUser,
}

async fn site() -> Site {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let mut others = Vec::new();
    for (email, role) in [
        ("ed@example.com", Role::Member),
        ("mia@example.com", Role::Member),
        ("vic@example.com", Role::Viewer),
    ] {
        let user = app.user(email).await;
        app.add_member(&alice, alice.org, &user, role).await;
        others.push(in_org(user, alice.org));
    }
    let [ed, mia, vic] = <[TestUser; 3]>::try_from(others).unwrap_or_else(|_| unreachable!());
    let (status, member) = app
        .call(
            Method::PATCH,
            &alice,
            &format!("/v1/orgs/{}/members/{}", alice.org, ed.id),
            Some(json!({"permissions": {"content.publish": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{member}");
    Site {
        app,
        alice,
        ed,
        mia,
        vic,
    }
}

/// The organization's slug, as public addresses name it.
async fn org_slug(app: &TestApp, user: &TestUser) -> String {
    let (status, org) = app
        .call(Method::GET, user, &format!("/v1/orgs/{}", user.org), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{org}");
    org["slug"].as_str().expect("slug").to_string()
}

/// A public GET (no credential): status, headers and body.
async fn public(
    app: &TestApp,
    path: &str,
    etag: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = app
        .client
        .get(format!("{}{path}", app.base))
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(etag) = etag {
        req = req.header(IF_NONE_MATCH, etag);
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = client
        .execute(req.build().expect("request"))
        .await
        .expect("send");
    let headers = response.headers().clone();
    let status = response.status();
    let body = if status == StatusCode::OK || status.is_client_error() {
        read(response).await.1
    } else {
        Value::Null
    };
    (status, headers, body)
}

#[tokio::test]
async fn members_write_drafts_and_only_editors_publish() {
    let Site {
        app,
        alice,
        ed,
        mia,
        vic,
    } = site().await;

    // Mia writes drafts; slugs come from titles, unique in the organization.
    let about = written(
        &app,
        &mia,
        json!({"title": "  Über uns!  ", "content": "# Hi"}),
    )
    .await;
    assert_eq!(about["slug"], "uber-uns");
    assert_eq!(about["title"], "Über uns!");
    assert_eq!(about["status"], "draft");
    assert_eq!(about["content_type"], "page");
    assert_eq!(about["author_id"], mia.id.to_string());
    assert!(about["published_at"].is_null());
    let again = written(&app, &mia, json!({"title": "Über uns"})).await;
    assert_eq!(again["slug"], "uber-uns-2");
    let taken = write(&app, &mia, json!({"title": "Other", "slug": "uber-uns"})).await;
    assert_problem(
        &taken,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let edited = changed(
        &app,
        &mia,
        &about,
        json!({"content": "# Hello", "excerpt": "Who we are"}),
    )
    .await;
    assert_eq!(edited["excerpt"], "Who we are");

    // …but cannot publish, schedule or archive, create published, or touch what is published.
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    for body in [
        json!({"status": "published"}),
        json!({"status": "archived"}),
        json!({"publish_at": soon}),
    ] {
        let got = change(&app, &mia, &about, body.clone()).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let got = write(
        &app,
        &mia,
        json!({"title": "Straight out", "status": "published"}),
    )
    .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // A viewer writes nothing.
    let got = write(&app, &vic, json!({"title": "Mine"})).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");

    // Ed, granted content.publish, publishes; the database stamps the first publish.
    let live = changed(&app, &ed, &about, json!({"status": "published"})).await;
    assert_eq!(live["status"], "published");
    let first_published = live["published_at"]
        .as_str()
        .expect("published_at")
        .to_string();
    let got = change(&app, &mia, &about, json!({"title": "Hijacked"})).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .call(
            Method::DELETE,
            &mia,
            &path(&mia, &format!("/{}", about["id"].as_str().expect("id"))),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // Unpublished and published again: published_at stays the first one.
    let back = changed(&app, &ed, &about, json!({"status": "draft"})).await;
    assert_eq!(back["published_at"], first_published.as_str());
    let again_live = changed(&app, &alice, &about, json!({"status": "published"})).await;
    assert_eq!(again_live["published_at"], first_published.as_str());
    // Alice (owner) archives; Ed creates straight into published.
    let archived = changed(&app, &alice, &about, json!({"status": "archived"})).await;
    assert_eq!(archived["status"], "archived");
    let post = written(
        &app,
        &ed,
        json!({"title": "Launch", "content_type": "blog_post", "status": "published",
               "seo_meta": {"title": "We launched", "canonical_url": "https://example.com/launch"}}),
    )
    .await;
    assert_eq!(post["status"], "published");
    assert!(post["published_at"].is_string());
    assert_eq!(
        post["seo_meta"]["canonical_url"],
        "https://example.com/launch"
    );

    // Bad input names its fields and writes nothing.
    let got = write(
        &app,
        &ed,
        json!({"title": " ", "slug": "Not A Slug", "content_type": "poem",
               "seo_meta": {"image": "javascript:alert(1)"}}),
    )
    .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    let got = write(
        &app,
        &ed,
        json!({"title": "x", "seo_meta": {"image": "javascript:alert(1)", "title": "t"}}),
    )
    .await;
    assert_eq!(refused_fields(&got), ["seo_meta.image"]);
    let got = write(
        &app,
        &ed,
        json!({"title": "x", "seo_meta": {"keywords": "a"}}),
    )
    .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    let got = write(
        &app,
        &ed,
        json!({"title": "x", "publish_at": "2001-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(refused_fields(&got), ["publish_at"]);
    let got = write(
        &app,
        &ed,
        json!({"title": "x", "content": "x".repeat(500_001)}),
    )
    .await;
    assert_eq!(refused_fields(&got), ["content"]);
    let (status, page) = app.call(Method::GET, &alice, &path(&alice, ""), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(3),
        "nothing more was written"
    );
    // A long page in a script of four-byte characters passes the service's 1 MiB body limit.
    let long = written(
        &app,
        &mia,
        json!({"title": "Long", "content": "😀".repeat(300_000)}),
    )
    .await;
    assert_eq!(
        long["content"].as_str().map(|c| c.chars().count()),
        Some(300_000)
    );
}

#[tokio::test]
async fn a_member_without_content_publish_cannot_publish_in_sql_either() {
    let Site {
        app, ed, mia, vic, ..
    } = site().await;
    let draft = written(&app, &mia, json!({"title": "Draft"})).await;
    let published = written(&app, &ed, json!({"title": "Live", "status": "published"})).await;
    let (draft_id, live_id) = (
        draft["id"]
            .as_str()
            .expect("id")
            .parse::<uuid::Uuid>()
            .expect("uuid"),
        published["id"]
            .as_str()
            .expect("id")
            .parse::<uuid::Uuid>()
            .expect("uuid"),
    );
    // The runtime role with Mia's (and Vic's) genuine context, as any SQL in the service runs.
    for who in [&mia, &vic] {
        let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(who.id), who.org)
            .await
            .expect("begin");
        let may: bool = sqlx::query_scalar("SELECT app.may_publish_content()")
            .fetch_one(tx.conn())
            .await
            .expect("ask");
        assert!(!may);
        for (sql, id) in [
            (
                "UPDATE content SET status = 'published' WHERE id = $1",
                draft_id,
            ),
            (
                "UPDATE content SET publish_at = now() + interval '1 hour' WHERE id = $1",
                draft_id,
            ),
            (
                "UPDATE content SET title = 'Hijacked' WHERE id = $1",
                live_id,
            ),
            ("UPDATE content SET status = 'draft' WHERE id = $1", live_id),
            ("DELETE FROM content WHERE id = $1", live_id),
        ] {
            sqlx::query("SAVEPOINT attempt")
                .execute(tx.conn())
                .await
                .expect("savepoint");
            let done = sqlx::query(sql).bind(id).execute(tx.conn()).await;
            let changed = done.as_ref().map(|d| d.rows_affected()).unwrap_or(0);
            assert_eq!(changed, 0, "{sql} changed a row");
            sqlx::query("ROLLBACK TO SAVEPOINT attempt")
                .execute(tx.conn())
                .await
                .expect("rollback");
        }
        let refused = sqlx::query(
            "INSERT INTO content (organization_id, title, slug, status) VALUES ($1, 'Sneaky', 'sneaky', 'published')",
        )
        .bind(who.org)
        .execute(tx.conn())
        .await;
        let code = refused.err().and_then(|e| {
            e.as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.to_string())
        });
        assert_eq!(
            code.as_deref(),
            Some("42501"),
            "an insert straight into published"
        );
    }
    let (status, live) = app
        .call(Method::GET, &ed, &path(&ed, &format!("/{live_id}")), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (live["title"].as_str(), live["status"].as_str()),
        (Some("Live"), Some("published"))
    );
}

#[tokio::test]
async fn what_was_once_public_stays_an_editors_to_remove() {
    let Site { app, ed, mia, .. } = site().await;
    // Ed publishes a page, renames it (its old address redirects) and takes it back to draft.
    let page = written(&app, &ed, json!({"title": "Prices", "status": "published"})).await;
    let page = changed(&app, &ed, &page, json!({"slug": "pricing"})).await;
    let page = changed(&app, &ed, &page, json!({"status": "draft"})).await;
    let page_path = path(&ed, &format!("/{}", page["id"].as_str().expect("id")));

    // Mia may edit the draft, not delete it with its published versions: over HTTP or in SQL.
    let got = app.call(Method::DELETE, &mia, &page_path, None).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let page_id: uuid::Uuid = page["id"].as_str().expect("id").parse().expect("uuid");
    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(mia.id), mia.org)
        .await
        .expect("begin");
    let deleted = sqlx::query("DELETE FROM content WHERE id = $1")
        .bind(page_id)
        .execute(tx.conn())
        .await
        .expect("delete")
        .rows_affected();
    assert_eq!(deleted, 0);
    drop(tx);
    let (status, versions) = app
        .call(Method::GET, &ed, &format!("{page_path}/versions"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{versions}");
    assert!(
        versions.as_array().is_some_and(|v| !v.is_empty()),
        "{versions}"
    );

    // Nor may her draft take the old address that leads to it; a title-made slug avoids it.
    let got = write(&app, &mia, json!({"title": "Mine", "slug": "prices"})).await;
    assert_eq!(refused_fields(&got), ["slug"]);
    let made = written(&app, &mia, json!({"title": "Prices"})).await;
    assert_eq!(made["slug"], "prices-2");
    // Her own never-published draft is hers to delete; an editor may give the address away.
    let mine = path(&mia, &format!("/{}", made["id"].as_str().expect("id")));
    assert_eq!(
        app.call(Method::DELETE, &mia, &mine, None).await.0,
        StatusCode::NO_CONTENT
    );
    let got = write(&app, &ed, json!({"title": "New prices", "slug": "prices"})).await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
}

#[tokio::test]
async fn every_published_version_is_kept_and_a_page_rolls_back() {
    let Site { app, ed, mia, .. } = site().await;
    let page = written(
        &app,
        &mia,
        json!({"title": "Pricing", "content": "v0 draft"}),
    )
    .await;
    // Drafts make no versions.
    changed(&app, &mia, &page, json!({"content": "v1"})).await;
    changed(&app, &ed, &page, json!({"status": "published"})).await;
    changed(
        &app,
        &ed,
        &page,
        json!({"content": "v2", "seo_meta": {"title": "Prices"}}),
    )
    .await;
    // A change of nothing visible makes no version.
    changed(&app, &ed, &page, json!({"content": "v2"})).await;
    changed(&app, &ed, &page, json!({"content": "v3", "title": "Plans"})).await;
    let versions_path = path(
        &ed,
        &format!("/{}/versions", page["id"].as_str().expect("id")),
    );
    let (status, versions) = app.call(Method::GET, &mia, &versions_path, None).await;
    assert_eq!(status, StatusCode::OK, "{versions}");
    let contents: Vec<&str> = versions
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["content"].as_str())
        .collect();
    assert_eq!(contents, ["v3", "v2", "v1"], "newest first");
    assert_eq!(versions[0]["version"], 3);
    assert_eq!(versions[0]["published_by"], ed.id.to_string());

    // Members cannot roll back; editors can, and the rollback is the newest version.
    let got = app
        .call(
            Method::POST,
            &mia,
            &format!("{versions_path}/1/restore"),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .call(
            Method::POST,
            &ed,
            &format!("{versions_path}/9/restore"),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let (status, restored) = app
        .call(
            Method::POST,
            &ed,
            &format!("{versions_path}/1/restore"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(
        (restored["title"].as_str(), restored["content"].as_str()),
        (Some("Pricing"), Some("v1"))
    );
    assert_eq!(restored["seo_meta"], json!({}));
    let (_, versions) = app.call(Method::GET, &ed, &versions_path, None).await;
    assert_eq!(versions.as_array().map(Vec::len), Some(4));
    assert_eq!(versions[0]["content"], "v1");
}

#[tokio::test]
async fn the_public_site_serves_published_pages_only() {
    let Site {
        app,
        alice,
        ed,
        mia,
        ..
    } = site().await;
    let slug = org_slug(&app, &alice).await;
    let evil = "# Welcome\n\n<script>alert(document.cookie)</script>\n\n\
                [click](javascript:alert(1)) <img src=x onerror=alert(1)>\n\n[docs](/docs) **bold**";
    let home = written(
        &app,
        &ed,
        json!({"title": "Home", "content": evil, "status": "published", "excerpt": "Start here"}),
    )
    .await;
    written(
        &app,
        &mia,
        json!({"title": "Secret draft", "content": "not yet"}),
    )
    .await;
    let old = written(
        &app,
        &ed,
        json!({"title": "Old news", "status": "published"}),
    )
    .await;
    changed(&app, &ed, &old, json!({"status": "archived"})).await;
    // Another organization's published page with a slug of ours.
    let mallory = app.user("mallory@example.com").await;
    let theirs = written(
        &app,
        &mallory,
        json!({"title": "Secret draft", "status": "published", "content": "theirs"}),
    )
    .await;
    assert_eq!(theirs["slug"], "secret-draft");

    let (status, headers, page) =
        public(&app, &format!("/v1/public/{slug}/content/home"), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["title"], "Home");
    assert_eq!(page["excerpt"], "Start here");
    let html = page["html"].as_str().expect("html");
    assert!(
        html.contains("<h1>Welcome</h1>") && html.contains("<strong>bold</strong>"),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert(document.cookie)&lt;/script&gt;"),
        "{html}"
    );
    let lower = html.to_ascii_lowercase();
    assert!(
        !lower.contains("<script") && !lower.contains("<img") && !lower.contains("javascript:"),
        "{html}"
    );
    assert!(html.contains("href=\"/docs\""));
    assert!(
        page.get("content").is_none(),
        "the Markdown source is not served"
    );
    assert_eq!(headers[CACHE_CONTROL], "public, max-age=60");
    let etag = headers[ETAG].to_str().expect("etag").to_string();
    let (status, _, _) = public(
        &app,
        &format!("/v1/public/{slug}/content/home"),
        Some(&etag),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    // A change is a new ETag.
    changed(&app, &ed, &home, json!({"excerpt": "Start here!"})).await;
    let (status, _, page) = public(
        &app,
        &format!("/v1/public/{slug}/content/home"),
        Some(&etag),
    )
    .await;
    assert_eq!(
        (status, page["excerpt"].as_str()),
        (StatusCode::OK, Some("Start here!"))
    );

    // Drafts, archived pages, other organizations' pages, unknown organizations: 404.
    for missing in [
        format!("/v1/public/{slug}/content/secret-draft"),
        format!("/v1/public/{slug}/content/old-news"),
        format!("/v1/public/{slug}/content/nothing-here"),
        "/v1/public/no-such-org/content/home".to_string(),
        format!("/v1/public/{slug}/content/{}", "x".repeat(300)),
    ] {
        let (status, _, body) = public(&app, &missing, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}: {body}");
        assert!(!body.to_string().contains("not yet") && !body.to_string().contains("theirs"));
    }

    // A changed slug: the old one answers 301 to the new address while the page is published.
    changed(&app, &ed, &home, json!({"slug": "welcome"})).await;
    let (status, headers, _) = public(&app, &format!("/v1/public/{slug}/content/home"), None).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        headers[LOCATION],
        format!("/v1/public/{slug}/content/welcome").as_str()
    );
    changed(&app, &ed, &home, json!({"status": "draft"})).await;
    let (status, _, _) = public(&app, &format!("/v1/public/{slug}/content/home"), None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no redirect to an unpublished page"
    );
    // A new page taking the old slug wins over the redirect.
    let (status, _) = write(
        &app,
        &ed,
        json!({"title": "Home again", "slug": "home", "status": "published"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, page) = public(&app, &format!("/v1/public/{slug}/content/home"), None).await;
    assert_eq!(
        (status, page["title"].as_str()),
        (StatusCode::OK, Some("Home again"))
    );

    // Lists: published only, newest first, per type, in pages.
    for n in 1..=3 {
        written(&app, &ed, json!({"title": format!("Post {n}"), "content_type": "blog_post", "status": "published"})).await;
    }
    written(
        &app,
        &mia,
        json!({"title": "Post draft", "content_type": "blog_post"}),
    )
    .await;
    let (status, _, blog) = public(
        &app,
        &format!("/v1/public/{slug}/content?type=blog_post&limit=2"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{blog}");
    let titles = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| i["title"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(titles(&blog), ["Post 3", "Post 2"]);
    let next = blog["next_cursor"].as_str().expect("a next page");
    let (_, _, rest) = public(
        &app,
        &format!("/v1/public/{slug}/content?type=blog_post&limit=2&after={next}"),
        None,
    )
    .await;
    assert_eq!(titles(&rest), ["Post 1"]);
    assert!(rest["next_cursor"].is_null());
    let (_, _, all) = public(&app, &format!("/v1/public/{slug}/content"), None).await;
    assert_eq!(titles(&all), ["Post 3", "Post 2", "Post 1", "Home again"]);
}

#[tokio::test]
async fn an_admin_publishes_without_a_grant_and_the_public_list_revalidates() {
    let Site {
        app, alice, mia, ..
    } = site().await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &bob, Role::Admin).await;
    let bob = in_org(bob, alice.org);
    let first = written(&app, &mia, json!({"title": "First"})).await;
    let live = changed(&app, &bob, &first, json!({"status": "published"})).await;
    assert_eq!(live["status"], "published");

    let list = format!("/v1/public/{}/content", org_slug(&app, &alice).await);
    let (status, headers, page) = public(&app, &list, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(headers[CACHE_CONTROL], "public, max-age=60");
    let etag = headers[ETAG].to_str().expect("etag").to_string();
    let (status, _, _) = public(&app, &list, Some(&etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    // A draft changes nothing there; a page published changes the list and its ETag.
    let second = written(&app, &mia, json!({"title": "Second"})).await;
    let (status, _, _) = public(&app, &list, Some(&etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    changed(&app, &bob, &second, json!({"status": "published"})).await;
    let (status, headers, page) = public(&app, &list, Some(&etag)).await;
    assert_eq!(
        (status, page["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(2))
    );
    assert_ne!(headers[ETAG].to_str().expect("etag"), etag);
}

#[tokio::test]
async fn content_is_its_organization_s_and_keys_need_the_content_module() {
    let Site { app, alice, ed, .. } = site().await;
    let page = written(&app, &ed, json!({"title": "Ours", "status": "published"})).await;
    let id = page["id"].as_str().expect("id");
    let mallory = app.user("mallory@example.com").await;
    for (method, rest, body) in [
        (Method::GET, format!("/{id}"), None),
        (
            Method::PATCH,
            format!("/{id}"),
            Some(json!({"title": "Mine"})),
        ),
        (Method::DELETE, format!("/{id}"), None),
        (Method::GET, format!("/{id}/versions"), None),
        (Method::POST, format!("/{id}/versions/1/restore"), None),
        (Method::GET, String::new(), None),
        (
            Method::POST,
            String::new(),
            Some(json!({"title": "Intrusion"})),
        ),
    ] {
        let got = app
            .call(method.clone(), &mallory, &path(&alice, &rest), body)
            .await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    }
    // Nor is a page written in the name of someone outside the organization.
    let got = write(
        &app,
        &ed,
        json!({"title": "Ghost", "author_id": mallory.id}),
    )
    .await;
    assert_eq!(refused_fields(&got), ["author_id"]);
    let got = change(&app, &ed, &page, json!({"author_id": mallory.id})).await;
    assert_eq!(refused_fields(&got), ["author_id"]);
    let crm_key = api_key(&app, &alice, "write", json!(["crm"])).await;
    let got = app
        .call(Method::GET, &crm_key, &path(&alice, ""), None)
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let key = api_key(&app, &alice, "write", json!(["content"])).await;
    let (status, draft) = write(&app, &key, json!({"title": "From CI"})).await;
    assert_eq!(status, StatusCode::CREATED, "{draft}");
    assert!(draft["author_id"].is_null());
    let got = write(
        &app,
        &key,
        json!({"title": "Live from CI", "status": "published"}),
    )
    .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let (status, page) = app
        .call(Method::GET, &alice, &path(&alice, &format!("/{id}")), None)
        .await;
    assert_eq!(
        (status, page["title"].as_str()),
        (StatusCode::OK, Some("Ours"))
    );
}

#[tokio::test]
async fn a_scheduled_draft_publishes_itself_as_its_scheduler() {
    let Site {
        app,
        alice,
        ed,
        mia,
        ..
    } = site().await;
    let slug = org_slug(&app, &alice).await;
    let stop = crate::email::worker(&app, "smtp://127.0.0.1:9").await;
    let page = written(
        &app,
        &mia,
        json!({"title": "Launch day", "content": "Soon"}),
    )
    .await;
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let scheduled = changed(&app, &ed, &page, json!({"publish_at": at.to_rfc3339()})).await;
    assert_eq!(scheduled["status"], "draft");
    // A scheduled draft is an editor's: Mia can no longer change it.
    let got = change(&app, &mia, &page, json!({"content": "Sooner"})).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let url = format!("/v1/public/{slug}/content/launch-day");
    assert_eq!(public(&app, &url, None).await.0, StatusCode::NOT_FOUND);
    let id = page["id"].as_str().expect("id").to_string();
    let status_of = || async {
        let (_, now) = app
            .call(Method::GET, &ed, &path(&ed, &format!("/{id}")), None)
            .await;
        now
    };
    let mut now = status_of().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while now["status"] != "published" && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        now = status_of().await;
    }
    assert_eq!(now["status"], "published", "{now}");
    assert!(now["publish_at"].is_null());
    let published_at: chrono::DateTime<chrono::Utc> = now["published_at"]
        .as_str()
        .expect("at")
        .parse()
        .expect("time");
    assert!(published_at >= at, "not before its time");
    assert_eq!(public(&app, &url, None).await.0, StatusCode::OK);

    // Scheduled by Ed, who then loses content.publish: not published, and the job says why.
    let other = written(&app, &mia, json!({"title": "Later"})).await;
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    changed(&app, &ed, &other, json!({"publish_at": at.to_rfc3339()})).await;
    let (status, _) = app
        .call(
            Method::PATCH,
            &alice,
            &format!("/v1/orgs/{}/members/{}", alice.org, ed.id),
            Some(json!({"permissions": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let owner = app.db.owner().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let failed: Option<String> = loop {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT last_error FROM queue.jobs WHERE kind = 'content.publish' AND state = 'dead'",
        )
        .fetch_optional(&owner.0)
        .await
        .expect("jobs");
        if found.is_some() || std::time::Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let failed = failed.expect("a dead job");
    assert!(failed.contains("may no longer publish"), "{failed}");
    let (_, later) = app
        .call(
            Method::GET,
            &alice,
            &path(&alice, &format!("/{}", other["id"].as_str().expect("id"))),
            None,
        )
        .await;
    assert_eq!(later["status"], "draft");
    drop(stop);
}

#[tokio::test]
async fn a_preview_is_the_public_pages_safe_html_for_the_organizations_readers_only() {
    let Site { app, vic, mia, .. } = site().await;
    let markdown = "# Plans\n\n<script>alert(1)</script>\n\n[home](javascript:alert(1)) **bold**";
    let (status, preview) = app
        .call(
            Method::POST,
            &vic,
            &path(&vic, "/preview"),
            Some(json!({ "content": markdown })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let html = preview["html"].as_str().expect("html");
    assert!(html.contains("<h1>Plans</h1>"), "{html}");
    assert!(html.contains("<strong>bold</strong>"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "raw HTML is text: {html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains(r##"<a href="#">home</a>"##), "{html}");

    // Nothing is stored by a preview.
    let (_, listed) = app.call(Method::GET, &mia, &path(&mia, ""), None).await;
    assert_eq!(listed["items"], json!([]), "{listed}");

    // Too long is refused by name; another organization's user learns nothing.
    let long = "a".repeat(500_001);
    let got = app
        .call(
            Method::POST,
            &mia,
            &path(&mia, "/preview"),
            Some(json!({ "content": long })),
        )
        .await;
    assert_eq!(refused_fields(&got), ["content"], "{}", got.1);
    let mallory = app.user("mallory@example.com").await;
    let (status, _) = app
        .call(
            Method::POST,
            &mallory,
            &path(&mia, "/preview"),
            Some(json!({ "content": markdown })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
