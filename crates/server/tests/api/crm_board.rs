//! Strive projects and tasks over HTTP: the board, kanban moves (one row written, concurrent
//! moves converge, long keys rebalanced), tasks by assignee, and what other organizations and
//! viewers cannot do.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use tenantry_db::{cluster, RequestContext};
use tenantry_server::crm::tasks::{self, Move};
use tenantry_server::kernel::access::Role;
use tenantry_server::kernel::input::Valid;
use tenantry_server::kernel::org_tx::OrgTx;
use uuid::Uuid;

use crate::helpers::{assert_problem, refused_fields, TestApp, TestUser};

fn org_path(user: &TestUser, rest: &str) -> String {
    format!("/v1/orgs/{}/{rest}", user.org)
}

async fn post(app: &TestApp, user: &TestUser, path: &str, body: Value) -> Value {
    let (status, created) = app.call(Method::POST, user, path, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_string()
}

/// The board's titles, column by column.
async fn board(app: &TestApp, user: &TestUser, project: &str) -> Vec<(String, Vec<String>)> {
    let (status, board) = app
        .call(
            Method::GET,
            user,
            &org_path(user, &format!("projects/{project}/board")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{board}");
    board["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            let titles = c["tasks"]
                .as_array()
                .expect("tasks")
                .iter()
                .filter_map(|t| t["title"].as_str().map(String::from))
                .collect();
            (c["status"].as_str().unwrap_or("").to_string(), titles)
        })
        .collect()
}

fn column<'a>(board: &'a [(String, Vec<String>)], status: &str) -> Vec<&'a str> {
    board
        .iter()
        .find(|(s, _)| s == status)
        .map(|(_, titles)| titles.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

async fn project_with_cards(
    app: &TestApp,
    user: &TestUser,
    cards: &[&str],
) -> (String, Vec<String>) {
    let project = post(
        app,
        user,
        &org_path(user, "projects"),
        json!({"name": "Board"}),
    )
    .await;
    let project = id(&project);
    let mut ids = Vec::new();
    for title in cards {
        let task = post(
            app,
            user,
            &org_path(user, &format!("projects/{project}/tasks")),
            json!({"title": title}),
        )
        .await;
        ids.push(id(&task));
    }
    (project, ids)
}

async fn move_card(
    app: &TestApp,
    user: &TestUser,
    project: &str,
    task: &str,
    to: Value,
) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        user,
        &org_path(user, &format!("projects/{project}/tasks/{task}/move")),
        Some(to),
    )
    .await
}

#[tokio::test]
async fn projects_check_their_dates_money_customer_and_manager() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    let theirs = post(
        &app,
        &mallory,
        &org_path(&mallory, "customers"),
        json!({"name": "Theirs"}),
    )
    .await;
    let project = post(
        &app,
        &alice,
        &org_path(&alice, "projects"),
        json!({"name": "Launch", "budget": "1234.50", "start_date": "2027-01-01",
               "due_date": "2027-03-01", "priority": "high", "project_manager_id": alice.id}),
    )
    .await;
    assert_eq!(project["budget"], "1234.50", "exact, as written");
    assert_eq!(project["status"], "planning");
    assert_eq!(project["progress_percentage"], 0);
    let path = org_path(&alice, &format!("projects/{}", id(&project)));
    for (body, field) in [
        (json!({"name": "X", "budget": "12.345"}), "budget"),
        (json!({"name": "X", "budget": "-1"}), "budget"),
        (
            json!({"name": "X", "start_date": "2027-02-01", "due_date": "2027-01-01"}),
            "due_date",
        ),
        (
            json!({"name": "X", "customer_id": id(&theirs)}),
            "customer_id",
        ),
        (
            json!({"name": "X", "project_manager_id": mallory.id}),
            "project_manager_id",
        ),
        (
            json!({"name": "X", "progress_manual": 101}),
            "progress_manual",
        ),
    ] {
        let refused = app
            .call(
                Method::POST,
                &alice,
                &org_path(&alice, "projects"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(refused_fields(&refused), [field], "{body}");
    }
    // A due date before the stored start, found by the database.
    let refused = app
        .call(
            Method::PATCH,
            &alice,
            &path,
            Some(json!({"due_date": "2026-12-01"})),
        )
        .await;
    assert_eq!(refused_fields(&refused), ["due_date"]);
    let (status, done) = app
        .call(
            Method::PATCH,
            &alice,
            &path,
            Some(json!({"status": "completed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done["completion_date"].is_string());
    let (_, reopened) = app
        .call(
            Method::PATCH,
            &alice,
            &path,
            Some(json!({"status": "active", "budget": null})),
        )
        .await;
    assert!(reopened["completion_date"].is_null());
    assert!(reopened["budget"].is_null());
    // Mallory's organization does not have it; in Alice's she is nobody.
    let intruder = TestUser {
        org: alice.org,
        ..mallory.clone()
    };
    for user in [&mallory, &intruder] {
        let got = app
            .call(
                Method::GET,
                user,
                &org_path(user, &format!("projects/{}", id(&project))),
                None,
            )
            .await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn cards_move_anywhere_by_writing_one_row_and_progress_follows() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let (project, cards) = project_with_cards(&app, &alice, &["a", "b", "c", "d", "e"]).await;
    let before = board(&app, &alice, &project).await;
    let statuses: Vec<&str> = before.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        statuses,
        ["todo", "in_progress", "review", "done", "cancelled"]
    );
    assert_eq!(column(&before, "todo"), ["a", "b", "c", "d", "e"]);

    // Row versions before and after a move: only the moved card's changes.
    let versions = |app: &TestApp| {
        let pool = app.db.runtime.clone();
        let (user, org, project) = (alice.id, alice.org, project.clone());
        async move {
            let mut tx = OrgTx::begin(&pool, &RequestContext::user(user), org)
                .await
                .expect("begin");
            let rows: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT id, xmin::text FROM tasks WHERE project_id = $1::uuid ORDER BY id",
            )
            .bind(&project)
            .fetch_all(tx.conn())
            .await
            .expect("versions");
            rows
        }
    };
    let was = versions(&app).await;
    let (status, moved) = move_card(
        &app,
        &alice,
        &project,
        &cards[4],
        json!({"after": cards[0]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let now = versions(&app).await;
    let changed: Vec<Uuid> = was
        .iter()
        .zip(&now)
        .filter(|(w, n)| w.1 != n.1)
        .map(|(w, _)| w.0)
        .collect();
    assert_eq!(
        changed,
        [cards[4].parse::<Uuid>().expect("uuid")],
        "one row written"
    );
    assert_eq!(
        column(&board(&app, &alice, &project).await, "todo"),
        ["a", "e", "b", "c", "d"]
    );

    move_card(
        &app,
        &alice,
        &project,
        &cards[3],
        json!({"before": cards[0]}),
    )
    .await;
    move_card(
        &app,
        &alice,
        &project,
        &cards[2],
        json!({"status": "in_progress"}),
    )
    .await;
    move_card(
        &app,
        &alice,
        &project,
        &cards[1],
        json!({"status": "in_progress", "before": cards[2]}),
    )
    .await;
    let now = board(&app, &alice, &project).await;
    assert_eq!(column(&now, "todo"), ["d", "a", "e"]);
    assert_eq!(column(&now, "in_progress"), ["b", "c"]);

    // Neighbours must be other cards of the target column; one neighbour at a time.
    for to in [
        json!({"status": "todo", "after": cards[2]}),
        json!({"after": cards[0], "before": cards[4]}),
        json!({"after": cards[0], "status": "done"}),
        json!({"after": cards[0]}),
    ] {
        let (status, problem) = move_card(&app, &alice, &project, &cards[0], to.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{to}: {problem}");
    }

    // Progress: done over all not cancelled (estimates weigh).
    let path = org_path(&alice, &format!("projects/{project}"));
    app.call(
        Method::PATCH,
        &alice,
        &org_path(&alice, &format!("projects/{project}/tasks/{}", cards[3])),
        Some(json!({"estimated_hours": "5"})),
    )
    .await;
    move_card(&app, &alice, &project, &cards[3], json!({"status": "done"})).await;
    move_card(
        &app,
        &alice,
        &project,
        &cards[4],
        json!({"status": "cancelled"}),
    )
    .await;
    let (_, progress) = app.call(Method::GET, &alice, &path, None).await;
    assert_eq!(
        progress["progress_percentage"], 62,
        "5 of 8 hours (d = 5, a, b, c = 1 each)"
    );
    let (_, task) = app
        .call(
            Method::GET,
            &alice,
            &org_path(&alice, &format!("projects/{project}/tasks/{}", cards[3])),
            None,
        )
        .await;
    assert_eq!(task["estimated_hours"], "5.00");
    assert_eq!(task["created_by"], json!(alice.id));
}

#[tokio::test]
async fn concurrent_moves_converge_and_crowded_gaps_get_fresh_keys() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let titles: Vec<String> = (0..12).map(|i| format!("card {i:02}")).collect();
    let title_refs: Vec<&str> = titles.iter().map(String::as_str).collect();
    let (project, cards) = project_with_cards(&app, &alice, &title_refs).await;
    // Ten cards moved at once to the same place: right after card 0.
    let moves = cards[2..].iter().map(|card| {
        let (app, alice, project, card, first) =
            (&app, &alice, &project, card.clone(), cards[0].clone());
        async move {
            move_card(app, alice, project, &card, json!({"after": first}))
                .await
                .0
        }
    });
    let statuses = futures_util::future::join_all(moves).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let first = board(&app, &alice, &project).await;
    let second = board(&app, &alice, &project).await;
    assert_eq!(first, second, "every reader sees one order");
    let mut todo = column(&first, "todo");
    assert_eq!(todo.first(), Some(&"card 00"));
    todo.sort_unstable();
    assert_eq!(todo, title_refs, "every card once");

    // Always into the same gap: keys grow until the column is rebalanced, order kept.
    let (a, b) = (cards[0].clone(), cards[1].clone());
    let others = |todo: &[&str]| -> Vec<String> {
        todo.iter()
            .filter(|t| !["card 00", "card 01"].contains(t))
            .map(|t| t.to_string())
            .collect()
    };
    let rest_before = others(&column(&first, "todo"));
    for i in 0..320 {
        let (mover, after) = if i % 2 == 0 { (&b, &a) } else { (&a, &b) };
        let (status, _) = move_card(&app, &alice, &project, mover, json!({"after": after})).await;
        assert_eq!(status, StatusCode::OK);
    }
    // The last move put card 00 right after card 01.
    let after = board(&app, &alice, &project).await;
    let todo = column(&after, "todo");
    assert_eq!(todo[..2], ["card 01", "card 00"]);
    assert_eq!(
        others(&todo),
        rest_before,
        "the other cards kept their order"
    );
    let mut tx = OrgTx::begin(&app.db.runtime, &RequestContext::user(alice.id), alice.org)
        .await
        .expect("begin");
    let longest: i32 = sqlx::query_scalar("SELECT max(length(position)) FROM tasks")
        .fetch_one(tx.conn())
        .await
        .expect("longest");
    assert!(longest <= 48, "keys stay short: {longest}");
}

#[tokio::test]
async fn a_move_reads_its_column_after_the_move_before_it_committed() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let titles = ["card 0", "card 1", "card 2", "card 3", "card 4"];
    let (project, cards) = project_with_cards(&app, &alice, &titles).await;
    let uuid = |i: usize| Uuid::parse_str(&cards[i]).expect("uuid");
    // One transaction moves card 4 right after card 0 and has not committed yet…
    let mut first = OrgTx::begin(&app.db.runtime, &RequestContext::user(alice.id), alice.org)
        .await
        .expect("begin");
    let project_id = Uuid::parse_str(&project).expect("uuid");
    let to = Valid::new(Move {
        status: None,
        after: Some(uuid(0)),
        before: None,
    })
    .expect("valid move");
    tasks::store::move_task(&mut first, project_id, uuid(4), &to)
        .await
        .expect("first move");
    // …when another request moves card 2 right after card 4. It waits for the column, then
    // places card 2 after where card 4 is now, not after where it was when it started.
    let second = move_card(
        &app,
        &alice,
        &project,
        &cards[2],
        json!({"after": cards[4]}),
    );
    let commit_when_waited_for = async {
        let owner = app.db.owner().await;
        for _ in 0..500 {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            )
            .fetch_one(&owner.0)
            .await
            .expect("locks");
            if waiting > 0 {
                return first.commit().await.expect("commit");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the second move never waited for the first");
    };
    let ((status, moved), ()) = tokio::join!(second, commit_when_waited_for);
    assert_eq!(status, StatusCode::OK, "{moved}");
    let after = board(&app, &alice, &project).await;
    assert_eq!(
        column(&after, "todo"),
        ["card 0", "card 4", "card 2", "card 1", "card 3"]
    );
}

/// app.rank_between, called as the runtime role.
async fn between(conn: &mut PgConnection, low: Option<&str>, high: Option<&str>) -> Option<String> {
    sqlx::query_scalar("SELECT app.rank_between($1, $2)")
        .bind(low)
        .bind(high)
        .fetch_one(conn)
        .await
        .expect("rank_between")
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && !key.ends_with('0') && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[tokio::test]
async fn order_keys_fit_between_any_two_and_stay_short() {
    let app = TestApp::spawn().await;
    let runtime = &mut PgConnection::connect(&app.db.url(cluster::Role::Runtime))
        .await
        .expect("connect as the runtime role");
    assert_eq!(between(runtime, None, None).await.as_deref(), Some("V"));
    for (low, high) in [
        (None, Some("1")),
        (Some("1"), Some("2")),
        (Some("1"), Some("11")),
        (Some("z"), None),
        (Some("zzz"), None),
        (Some("0001"), Some("0002")),
        (Some("V"), Some("V1")),
        (Some("Az"), Some("B")),
    ] {
        let key = between(runtime, low, high).await.expect("a key");
        assert!(valid_key(&key), "{key}");
        assert!(low.is_none_or(|low| low < key.as_str()), "{low:?} < {key}");
        assert!(
            high.is_none_or(|high| key.as_str() < high),
            "{key} < {high:?}"
        );
    }
    // Equal, reversed or malformed neighbours have no key between them.
    for (low, high) in [
        (Some("V"), Some("V")),
        (Some("W"), Some("V")),
        (Some("V0"), None),
        (Some("V-"), None),
        (Some(""), None),
        (None, Some("é")),
    ] {
        assert_eq!(between(runtime, low, high).await, None, "{low:?} {high:?}");
    }

    // Always between the first two cards: the worst case for key length. Each move halves the
    // gap: a digit (62 values) per about six moves.
    let mut column = vec![between(runtime, None, None).await.expect("first")];
    column.push(
        between(runtime, Some(&column[0]), None)
            .await
            .expect("second"),
    );
    for _ in 0..300 {
        let key = between(runtime, Some(&column[0]), Some(&column[1]))
            .await
            .expect("between");
        column.insert(1, key);
    }
    let longest = column.iter().map(String::len).max().unwrap_or(0);
    assert!(
        longest <= 300 / 5 + 4,
        "{longest} digits after 300 moves into one gap"
    );
    // Pseudo-random places, deterministic.
    let mut seed: u64 = 7;
    for _ in 0..1000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = (seed >> 33) as usize % (column.len() + 1);
        let low = at.checked_sub(1).map(|i| column[i].clone());
        let high = column.get(at).cloned();
        let key = between(runtime, low.as_deref(), high.as_deref())
            .await
            .expect("between");
        column.insert(at, key);
    }
    assert!(column.windows(2).all(|w| w[0] < w[1]));
    assert!(column.iter().all(|k| valid_key(k)));

    // Cards added at either end keep short keys; past the last step, halving still finds room.
    let mut top = between(runtime, None, None).await.expect("first");
    let mut bottom = top.clone();
    for _ in 0..2000 {
        let below = between(runtime, Some(&bottom), None).await.expect("append");
        assert!(bottom < below);
        bottom = below;
        let above = between(runtime, None, Some(&top)).await.expect("prepend");
        assert!(above < top);
        top = above;
    }
    assert!(top.len() <= 3 && bottom.len() <= 3, "{top} … {bottom}");
    assert_eq!(
        between(runtime, Some("zzz"), None).await.as_deref(),
        Some("zzzV")
    );
    assert!(between(runtime, None, Some("001"))
        .await
        .is_some_and(|k| k.as_str() < "001"));

    // Evenly spaced keys are ordered, valid and short, with room at both ends.
    for n in [0, 1, 2, 61, 62, 3843, 5000] {
        let keys: Vec<String> = sqlx::query_scalar("SELECT app.rank_evenly($1)")
            .bind(n)
            .fetch_one(&mut *runtime)
            .await
            .expect("rank_evenly");
        assert_eq!(keys.len(), n as usize);
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "n = {n}");
        assert!(keys.iter().all(|k| valid_key(k) && k.len() <= 3), "n = {n}");
        if let (Some(first), Some(last)) = (keys.first(), keys.last()) {
            assert!(between(runtime, None, Some(first)).await.is_some());
            assert!(between(runtime, Some(last), None).await.is_some());
        }
    }
}

#[tokio::test]
async fn tasks_by_assignee_come_soonest_due_first_across_projects() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.add_member(&alice, alice.org, &bob, Role::Member).await;
    let one = id(&post(
        &app,
        &alice,
        &org_path(&alice, "projects"),
        json!({"name": "One"}),
    )
    .await);
    let two = id(&post(
        &app,
        &alice,
        &org_path(&alice, "projects"),
        json!({"name": "Two"}),
    )
    .await);
    for (project, title, due, assignee, status) in [
        (
            &one,
            "later",
            Some("2027-05-01T09:00:00Z"),
            alice.id,
            "todo",
        ),
        (
            &two,
            "soon",
            Some("2027-01-01T09:00:00Z"),
            alice.id,
            "in_progress",
        ),
        (&one, "whenever", None, alice.id, "todo"),
        (&two, "bob's", Some("2026-12-01T09:00:00Z"), bob.id, "todo"),
        (
            &one,
            "finished",
            Some("2026-12-02T09:00:00Z"),
            alice.id,
            "done",
        ),
    ] {
        post(
            &app,
            &alice,
            &org_path(&alice, &format!("projects/{project}/tasks")),
            json!({"title": title, "due_date": due, "assigned_to": assignee, "status": status}),
        )
        .await;
    }
    let mine = |query: &'static str| {
        let (app, alice) = (&app, &alice);
        async move {
            let (status, page) = app
                .call(
                    Method::GET,
                    alice,
                    &org_path(alice, &format!("tasks?{query}")),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page
        }
    };
    let titles = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|t| t["title"].as_str().map(String::from))
            .collect()
    };
    assert_eq!(
        titles(&mine("assigned_to=me").await),
        ["soon", "later", "whenever"]
    );
    assert_eq!(
        titles(&mine("assigned_to=me&status=done").await),
        ["finished"]
    );
    let first = mine("assigned_to=me&limit=2").await;
    assert_eq!(titles(&first), ["soon", "later"]);
    let cursor = first["next_cursor"].as_str().expect("cursor");
    let (_, rest) = app
        .call(
            Method::GET,
            &alice,
            &org_path(
                &alice,
                &format!("tasks?assigned_to=me&limit=2&after={cursor}"),
            ),
            None,
        )
        .await;
    assert_eq!(titles(&rest), ["whenever"]);
    let bobs = app
        .call(
            Method::GET,
            &alice,
            &org_path(&alice, &format!("tasks?assigned_to={}", bob.id)),
            None,
        )
        .await;
    assert_eq!(titles(&bobs.1), ["bob's"]);
}

#[tokio::test]
async fn viewers_and_other_organizations_cannot_touch_the_board() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let vera = app.user("vera@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    app.add_member(&alice, alice.org, &vera, Role::Viewer).await;
    let vera = TestUser {
        org: alice.org,
        ..vera
    };
    let (project, cards) = project_with_cards(&app, &alice, &["a", "b"]).await;
    let (other, other_cards) = project_with_cards(&app, &alice, &["x"]).await;

    assert_eq!(
        column(&board(&app, &vera, &project).await, "todo"),
        ["a", "b"],
        "viewers read"
    );
    let refused = move_card(
        &app,
        &vera,
        &project,
        &cards[1],
        json!({"before": cards[0]}),
    )
    .await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "forbidden");
    let refused = app
        .call(
            Method::POST,
            &vera,
            &org_path(&vera, &format!("projects/{project}/tasks")),
            Some(json!({"title": "no"})),
        )
        .await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "forbidden");
    // Nor start or change a project.
    for (method, path, body) in [
        (Method::POST, "projects".to_string(), json!({"name": "no"})),
        (
            Method::PATCH,
            format!("projects/{project}"),
            json!({"name": "no"}),
        ),
        (
            Method::DELETE,
            format!("projects/{project}/tasks/{}", cards[0]),
            Value::Null,
        ),
    ] {
        let body = (!body.is_null()).then_some(body);
        let refused = app.call(method, &vera, &org_path(&vera, &path), body).await;
        assert_problem(&refused, StatusCode::FORBIDDEN, "forbidden");
    }

    let (mallorys, _) = project_with_cards(&app, &mallory, &["m"]).await;
    let intruder = TestUser {
        org: alice.org,
        ..mallory.clone()
    };
    for (user, project) in [(&mallory, &project), (&intruder, &project)] {
        let got = app
            .call(
                Method::GET,
                user,
                &org_path(user, &format!("projects/{project}/board")),
                None,
            )
            .await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
        let got = move_card(&app, user, project, &cards[0], json!({"status": "done"})).await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    }
    // Mallory cannot put a task into Alice's project through her own organization's path.
    let got = app
        .call(
            Method::POST,
            &mallory,
            &org_path(&mallory, &format!("projects/{project}/tasks")),
            Some(json!({"title": "planted"})),
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    // Nor Alice point at Mallory's project or another project's task.
    let got = app
        .call(
            Method::POST,
            &alice,
            &org_path(&alice, &format!("projects/{mallorys}/tasks")),
            Some(json!({"title": "x"})),
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let refused = app
        .call(
            Method::POST,
            &alice,
            &org_path(&alice, &format!("projects/{project}/tasks")),
            Some(json!({"title": "stray", "parent_task_id": other_cards[0]})),
        )
        .await;
    assert_eq!(refused_fields(&refused), ["parent_task_id"]);
    // A cycle through PATCH is named.
    let child = post(
        &app,
        &alice,
        &org_path(&alice, &format!("projects/{project}/tasks")),
        json!({"title": "child", "parent_task_id": cards[0]}),
    )
    .await;
    let refused = app
        .call(
            Method::PATCH,
            &alice,
            &org_path(&alice, &format!("projects/{project}/tasks/{}", cards[0])),
            Some(json!({"parent_task_id": id(&child)})),
        )
        .await;
    assert_eq!(refused_fields(&refused), ["parent_task_id"]);
    assert_eq!(
        column(&board(&app, &alice, &other).await, "todo"),
        ["x"],
        "untouched"
    );
    // Deleting the project takes its tasks along (admins).
    let (status, _) = app
        .call(
            Method::DELETE,
            &alice,
            &org_path(&alice, &format!("projects/{project}")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = app
        .call(
            Method::GET,
            &alice,
            &org_path(&alice, &format!("projects/{project}/tasks/{}", cards[0])),
            None,
        )
        .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_dashboard_counts_the_organizations_crm_and_nothing_else() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let vera = app.user("vera@example.com").await;
    app.add_member(&alice, alice.org, &bob, Role::Member).await;
    app.add_member(&alice, alice.org, &vera, Role::Viewer).await;
    let customers = org_path(&alice, "customers");
    for (name, status, source) in [
        ("Ada", "lead", "website"),
        ("Alan", "active", "referral"),
        ("Grace", "active", "referral"),
    ] {
        post(
            &app,
            &alice,
            &customers,
            json!({"name": name, "status": status, "source": source}),
        )
        .await;
    }
    // Bob's own organization's customer and project count only there.
    post(
        &app,
        &bob,
        &org_path(&bob, "customers"),
        json!({"name": "Bob's"}),
    )
    .await;
    post(
        &app,
        &bob,
        &org_path(&bob, "projects"),
        json!({"name": "Bob's"}),
    )
    .await;
    let owner = app.db.owner().await;
    sqlx::query(
        "UPDATE customers SET created_at = now() - interval '40 days' WHERE organization_id = $1 AND name = 'Ada'",
    )
    .bind(alice.org)
    .execute(&owner.0)
    .await
    .expect("an older customer");

    let projects = org_path(&alice, "projects");
    let late = id(&post(
        &app,
        &alice,
        &projects,
        json!({"name": "Late", "status": "active", "start_date": "2026-01-01", "due_date": "2026-02-01"}),
    )
    .await);
    post(
        &app,
        &alice,
        &projects,
        json!({"name": "Shipped", "status": "completed", "start_date": "2026-01-01", "due_date": "2026-02-01"}),
    )
    .await;
    let tasks = org_path(&alice, &format!("projects/{late}/tasks"));
    for (title, status, assignee, due) in [
        (
            "late for bob",
            "todo",
            Some(bob.id),
            Some("2026-03-01T00:00:00Z"),
        ),
        (
            "alice's",
            "in_progress",
            Some(alice.id),
            Some("2099-01-01T00:00:00Z"),
        ),
        (
            "alice's done",
            "done",
            Some(alice.id),
            Some("2026-03-01T00:00:00Z"),
        ),
        ("nobody's", "todo", None, None),
        ("bob's review", "review", Some(bob.id), None),
    ] {
        post(
            &app,
            &alice,
            &tasks,
            json!({"title": title, "status": status, "assigned_to": assignee, "due_date": due}),
        )
        .await;
    }

    let (status, dashboard) = app
        .call(Method::GET, &vera, &org_path(&alice, "crm/dashboard"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "viewers read it: {dashboard}");
    assert_eq!(
        dashboard["customers"],
        json!({"total": 3, "new_last_30_days": 2,
               "by_status": {"lead": 1, "prospect": 0, "active": 2, "churned": 0},
               "by_source": {"website": 1, "referral": 2, "social": 0, "email": 0, "other": 0}})
    );
    assert_eq!(
        dashboard["projects"],
        json!({"total": 2, "overdue": 1,
               "by_status": {"planning": 0, "active": 1, "on_hold": 0, "completed": 1, "cancelled": 0}})
    );
    assert_eq!(
        dashboard["tasks"],
        json!({"total": 5, "overdue": 1, "unassigned_open": 1,
               "by_status": {"todo": 2, "in_progress": 1, "review": 1, "done": 1, "cancelled": 0}})
    );
    assert_eq!(
        dashboard["assignees"],
        json!([{"user_id": bob.id, "open": 2, "overdue": 1},
               {"user_id": alice.id, "open": 1, "overdue": 0}])
    );

    // Without a credential: 401, whatever the path names.
    let got = app
        .request(Method::GET, None, &org_path(&alice, "crm/dashboard"))
        .send()
        .await
        .expect("send");
    assert_eq!(got.status(), StatusCode::UNAUTHORIZED);
    // Someone outside the organization learns nothing, not even that it exists.
    let stranger = app.user("mallory@example.com").await;
    let (status, _) = app
        .call(
            Method::GET,
            &stranger,
            &org_path(&alice, "crm/dashboard"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
