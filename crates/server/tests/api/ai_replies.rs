//! The assistant's replies (migration 0046): streamed from a local server speaking OpenAI's and
//! Anthropic's formats, stored complete or partial, tokens reserved against the budget before the
//! provider is asked and settled after; contexts read under the caller's RLS; tools gated by
//! plan; provider keys never shown.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tenantry_server::ai::provider::Api;
use tenantry_server::http::HttpConfig;
use uuid::Uuid;

use crate::billing::{on_plan, usage};
use crate::fake_ai::{self, Ending, Fake, Script, ANTHROPIC_KEY, OPENAI_KEY};
use crate::helpers::{assert_problem, read, refused_fields, TestApp, TestUser};
use crate::integrations::created_id;

async fn app_with(script: Script) -> (TestApp, Fake) {
    let (fake, base) = Fake::start(script).await;
    let app = TestApp::spawn_with(HttpConfig {
        ai: fake_ai::config(&base),
        ..HttpConfig::default()
    })
    .await;
    (app, fake)
}

/// A user whose organization's plan has the assistant, with `tokens` a month.
async fn member_with_budget(app: &TestApp, email: &str, tokens: i64) -> TestUser {
    let user = app.user(email).await;
    on_plan(app, &user, "assistant_plan", json!({"ai_tokens": tokens})).await;
    user
}

async fn conversation(app: &TestApp, user: &TestUser, body: Value) -> Uuid {
    created_id(app, user, "conversations", body).await
}

fn messages_path(user: &TestUser, conversation: Uuid) -> String {
    format!(
        "/v1/orgs/{}/conversations/{conversation}/messages",
        user.org
    )
}

/// Says `body` in the conversation, asking for the reply as JSON.
async fn say(
    app: &TestApp,
    user: &TestUser,
    conversation: Uuid,
    body: Value,
) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        user,
        &messages_path(user, conversation),
        Some(body),
    )
    .await
}

/// The same, asking for server-sent events; the response is read by [`Events`].
async fn say_streamed(app: &TestApp, user: &TestUser, conversation: Uuid, body: Value) -> Response {
    app.request(
        Method::POST,
        Some(&user.token),
        &messages_path(user, conversation),
    )
    .header("accept", "text/event-stream")
    .json(&body)
    .send()
    .await
    .expect("send")
}

/// Server-sent events read off a response as they arrive.
struct Events {
    response: Response,
    buffer: String,
}

impl Events {
    fn new(response: Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event with data: (name, data as JSON); `None` at the end.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some((name, serde_json::from_str(&data).expect("event data")));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .expect("an event in time")
                .expect("chunk")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Every remaining event.
    async fn rest(&mut self) -> Vec<(String, Value)> {
        let mut all = Vec::new();
        while let Some(event) = self.next().await {
            all.push(event);
        }
        all
    }
}

async fn messages(app: &TestApp, user: &TestUser, conversation: Uuid) -> Vec<Value> {
    crate::helpers::items(app, user, &messages_path(user, conversation)).await
}

async fn get_conversation(app: &TestApp, user: &TestUser, conversation: Uuid) -> Value {
    let (status, found) = app
        .call(
            Method::GET,
            user,
            &format!("/v1/orgs/{}/conversations/{conversation}", user.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    found
}

#[tokio::test]
async fn a_streamed_reply_arrives_in_pieces_and_is_stored_with_its_tokens() {
    let (app, fake) = app_with(Script {
        wait_after_first: true,
        ..Script::reply(&["Revenue ", "grew ", "8 %."], 42, 7)
    })
    .await;
    let alice = member_with_budget(&app, "alice@example.com", 100_000).await;
    let id = conversation(&app, &alice, json!({})).await;
    let response = say_streamed(
        &app,
        &alice,
        id,
        json!({"content": "How did revenue do last month?\nAsk me anything."}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/event-stream"));
    let mut events = Events::new(response);
    let (name, mine) = events.next().await.expect("my message");
    assert_eq!(
        (name.as_str(), mine["role"].as_str()),
        ("message", Some("user"))
    );
    // The first piece reaches us while the provider still holds the rest back.
    let (name, first) = events.next().await.expect("first piece");
    assert_eq!(
        (name.as_str(), &first["text"]),
        ("delta", &json!("Revenue "))
    );
    fake.release(1);
    let rest = events.rest().await;
    let deltas: Vec<&str> = rest
        .iter()
        .filter(|(n, _)| n == "delta")
        .filter_map(|(_, d)| d["text"].as_str())
        .collect();
    assert_eq!(deltas, ["grew ", "8 %."]);
    let (name, done) = rest.last().expect("done");
    assert_eq!(name, "done");
    assert_eq!(done["content"], "Revenue grew 8 %.");
    assert_eq!(done["status"], "complete");
    assert_eq!(
        (&done["input_tokens"], &done["output_tokens"]),
        (&json!(42), &json!(7))
    );
    assert_eq!(done["model"], "gpt-4o-2024-08-06");

    // Stored in order, the conversation titled by its first message, tokens counted twice over.
    let stored = messages(&app, &alice, id).await;
    let turns: Vec<(&str, &str, &str)> = stored
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default(),
                m["content"].as_str().unwrap_or_default(),
                m["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        turns,
        [
            (
                "user",
                "How did revenue do last month?\nAsk me anything.",
                "complete"
            ),
            ("assistant", "Revenue grew 8 %.", "complete"),
        ]
    );
    let found = get_conversation(&app, &alice, id).await;
    assert_eq!(found["title"], "How did revenue do last month?");
    assert_eq!(found["usage_tokens"], 49);
    assert_eq!(usage(&app, &alice, "ai_tokens").await["used"], 49);
    let by_model: Vec<(String, i64)> = sqlx::query_as(
        "SELECT resource_name, usage_amount FROM usage_tracking WHERE organization_id = $1 AND resource_type = 'ai_tokens'",
    )
    .bind(alice.org)
    .fetch_all(&app.db.owner().await.0)
    .await
    .expect("usage rows");
    assert_eq!(by_model, [("gpt-4o-2024-08-06".to_string(), 49)]);

    // What the provider was sent: OpenAI's format, streamed, with usage asked for.
    let requests = fake.requests();
    let (api, sent) = &requests[0];
    assert_eq!(*api, Api::OpenAi);
    assert_eq!(sent["model"], "gpt-4o");
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(sent["max_tokens"], 256);
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(
        sent["messages"][1],
        json!({"role": "user", "content": "How did revenue do last month?\nAsk me anything."})
    );

    // The next turn carries the conversation so far.
    fake.script(Script::reply(&["Yes."], 60, 2));
    let (status, exchange) = say(
        &app,
        &alice,
        id,
        json!({"content": "Really?", "max_tokens": 50}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{exchange}");
    assert_eq!(exchange["reply"]["content"], "Yes.");
    let (_, sent) = &fake.requests()[1];
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(sent["max_tokens"], 50);
    assert_eq!(usage(&app, &alice, "ai_tokens").await["used"], 49 + 62);
}

#[tokio::test]
async fn anthropic_replies_parse_past_events_and_fields_not_known_yet() {
    let (app, fake) = app_with(Script::reply(&["Bonjour", " !"], 31, 5)).await;
    let alice = member_with_budget(&app, "alice@example.com", 100_000).await;
    let id = conversation(
        &app,
        &alice,
        json!({"ai_model": "claude_sonnet", "title": "Greetings"}),
    )
    .await;
    let (status, exchange) = say(&app, &alice, id, json!({"content": "Say hello in French"})).await;
    assert_eq!(status, StatusCode::CREATED, "{exchange}");
    assert_eq!(exchange["message"]["content"], "Say hello in French");
    let reply = &exchange["reply"];
    assert_eq!(
        (&reply["content"], &reply["status"], &reply["model"]),
        (
            &json!("Bonjour !"),
            &json!("complete"),
            &json!("claude-sonnet-4-5-20250929")
        )
    );
    assert_eq!(
        (&reply["input_tokens"], &reply["output_tokens"]),
        (&json!(31), &json!(5))
    );
    // A given title stays.
    assert_eq!(
        get_conversation(&app, &alice, id).await["title"],
        "Greetings"
    );
    let (api, sent) = &fake.requests()[0];
    assert_eq!(*api, Api::Anthropic);
    assert!(sent["system"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Say hello in French"}])
    );

    // A reply without any usage still counts: estimated from what was sent and said.
    fake.script(Script {
        ending: Ending::FinishWithoutUsage,
        ..Script::reply(&["Au revoir"], 0, 0)
    });
    let (status, exchange) = say(&app, &alice, id, json!({"content": "And goodbye?"})).await;
    assert_eq!(status, StatusCode::CREATED, "{exchange}");
    let reply = &exchange["reply"];
    assert_eq!(reply["status"], "complete");
    assert!(reply["input_tokens"].as_i64().unwrap_or(0) > 0, "{reply}");
    assert!(reply["output_tokens"].as_i64().unwrap_or(0) > 0, "{reply}");
    let total = 36
        + reply["input_tokens"].as_i64().unwrap_or(0)
        + reply["output_tokens"].as_i64().unwrap_or(0);
    assert_eq!(usage(&app, &alice, "ai_tokens").await["used"], total);
}

#[tokio::test]
async fn a_provider_failing_mid_stream_leaves_a_partial_reply_with_its_tokens_counted() {
    let (app, fake) = app_with(Script {
        ending: Ending::Error("The server had an error while processing your request.".into()),
        ..Script::reply(&["The first ", "half"], 0, 0)
    })
    .await;
    let alice = member_with_budget(&app, "alice@example.com", 100_000).await;
    let id = conversation(&app, &alice, json!({})).await;
    let mut events =
        Events::new(say_streamed(&app, &alice, id, json!({"content": "Tell me a story"})).await);
    let all = events.rest().await;
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["message", "delta", "delta", "error", "done"]);
    let problem = &all[3].1;
    assert_eq!(problem["code"], "provider_failed");
    assert!(problem["detail"]
        .as_str()
        .is_some_and(|d| d.contains("The server had an error")));
    let partial = &all[4].1;
    assert_eq!(
        (&partial["content"], &partial["status"]),
        (&json!("The first half"), &json!("partial"))
    );
    let spent = partial["input_tokens"].as_i64().unwrap_or(0)
        + partial["output_tokens"].as_i64().unwrap_or(0);
    assert!(
        partial["output_tokens"].as_i64().unwrap_or(0) > 0,
        "{partial}"
    );
    assert_eq!(usage(&app, &alice, "ai_tokens").await["used"], spent);
    assert_eq!(
        get_conversation(&app, &alice, id).await["usage_tokens"],
        spent
    );

    // A connection that ends without the provider's end marker is the same: partial, counted.
    fake.script(Script {
        ending: Ending::Cut,
        ..Script::reply(&["Cut short"], 0, 0)
    });
    let (status, exchange) = say(&app, &alice, id, json!({"content": "Again"})).await;
    assert_eq!(status, StatusCode::CREATED, "{exchange}");
    assert_eq!(exchange["reply"]["status"], "partial");
    assert_eq!(exchange["reply"]["content"], "Cut short");
    assert!(
        exchange["error"]
            .as_str()
            .is_some_and(|e| e.contains("ended before")),
        "{exchange}"
    );
    let stored = messages(&app, &alice, id).await;
    assert_eq!(stored.len(), 4);
    assert!(
        usage(&app, &alice, "ai_tokens").await["used"]
            .as_i64()
            .unwrap_or(0)
            > spent
    );
}

#[tokio::test]
async fn a_client_that_leaves_mid_reply_leaves_a_partial_reply_and_stops_the_provider() {
    let (app, fake) = app_with(Script {
        ending: Ending::Hang,
        ..Script::reply(&["Once upon "], 0, 0)
    })
    .await;
    let alice = member_with_budget(&app, "alice@example.com", 100_000).await;
    let id = conversation(&app, &alice, json!({})).await;
    let mut events =
        Events::new(say_streamed(&app, &alice, id, json!({"content": "A long story"})).await);
    events.next().await.expect("my message");
    let (name, _) = events.next().await.expect("a piece");
    assert_eq!(name, "delta");
    drop(events);

    let mut stored = Vec::new();
    for _ in 0..400 {
        stored = messages(&app, &alice, id).await;
        if stored.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(
        (&stored[1]["status"], &stored[1]["content"]),
        (&json!("partial"), &json!("Once upon "))
    );
    let used = usage(&app, &alice, "ai_tokens").await["used"]
        .as_i64()
        .unwrap_or(0);
    assert!(used > 0);
    // Tenantry hung up on the provider: the reply stops costing.
    crate::helpers::until("the provider saw the reader go", || fake.abandoned() == 1).await;
}

#[tokio::test]
async fn only_the_author_talks_in_a_conversation_and_nothing_is_stored_for_others() {
    let (app, fake) = app_with(Script::reply(&["Hi"], 5, 1)).await;
    let alice = member_with_budget(&app, "alice@example.com", 100_000).await;
    let (bob, carol, vic) = crate::ai::member_admin_viewer(&app, &alice).await;
    let mallory = app.user("mallory@example.com").await;
    let id = conversation(&app, &bob, json!({})).await;
    // Even with admins allowed to read, they do not speak in it.
    let (status, body) = app
        .call(
            Method::PATCH,
            &alice,
            &format!("/v1/orgs/{}", alice.org),
            Some(json!({"settings": {"ai": {"admins_read_conversations": true}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for admin in [&alice, &carol] {
        let got = say(&app, admin, id, json!({"content": "Let me in"})).await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    // A viewer cannot even read it.
    let got = say(&app, &vic, id, json!({"content": "Let me in"})).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let mallory_in_alices = TestUser {
        org: alice.org,
        ..mallory.clone()
    };
    let got = say(
        &app,
        &mallory_in_alices,
        id,
        json!({"content": "Let me in"}),
    )
    .await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    let got = say(&app, &mallory, id, json!({"content": "Let me in"})).await;
    assert_problem(&got, StatusCode::NOT_FOUND, "not_found");
    assert!(messages(&app, &bob, id).await.is_empty());
    assert!(fake.requests().is_empty());
    assert_eq!(usage(&app, &alice, "ai_tokens").await["used"], 0);

    // Bad input: named, nothing stored.
    for (body, field) in [
        (json!({"content": "  "}), "content"),
        (json!({"content": "x", "max_tokens": 0}), "max_tokens"),
        (json!({"content": "x", "tool": "no_such_tool"}), "tool"),
        (json!({"content": "x", "tool": "project_status"}), "tool"),
        (json!({"content": "x", "tool": "kpi_trend"}), "kpi_id"),
    ] {
        let got = say(&app, &bob, id, body.clone()).await;
        assert_eq!(refused_fields(&got), [field], "{body}: {}", got.1);
    }
    assert!(messages(&app, &bob, id).await.is_empty());

    // A model no provider serves is 503, and nothing of the turn stays: message or reservation.
    let gemini = conversation(&app, &bob, json!({"ai_model": "gemini"})).await;
    let got = say(&app, &bob, gemini, json!({"content": "Hello"})).await;
    assert_problem(&got, StatusCode::SERVICE_UNAVAILABLE, "not_configured");
    assert!(messages(&app, &bob, gemini).await.is_empty());
    assert!(fake.requests().is_empty());
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM ai_token_reservations")
        .fetch_one(&app.db.owner().await.0)
        .await
        .expect("count");
    assert_eq!(held, 0);
}

#[tokio::test]
async fn the_model_is_told_about_the_record_as_the_caller_reads_it_and_tools_follow_the_plan() {
    let (app, fake) = app_with(Script::reply(&["On track."], 80, 3)).await;
    let alice = app.user("alice@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    let project = |user: TestUser, name: &'static str, tasks: &'static [&'static str]| {
        let app = &app;
        async move {
            let id = created_id(
                app,
                &user,
                "projects",
                json!({"name": name, "status": "active"}),
            )
            .await;
            for title in tasks {
                created_id(
                    app,
                    &user,
                    &format!("projects/{id}/tasks"),
                    json!({"title": title}),
                )
                .await;
            }
            id
        }
    };
    let ours = project(
        alice.clone(),
        "Website relaunch",
        &["Write the copy", "Pick a font"],
    )
    .await;
    project(mallory.clone(), "Secret merger", &["Draft the term sheet"]).await;
    let id = conversation(
        &app,
        &alice,
        json!({"context_type": "project", "context_id": ours}),
    )
    .await;

    // On the free plan every tool is locked: 402 before anything is stored or sent.
    let got = say(
        &app,
        &alice,
        id,
        json!({"content": "Status?", "tool": "project_status"}),
    )
    .await;
    assert_problem(&got, StatusCode::PAYMENT_REQUIRED, "feature_unavailable");
    assert_eq!(got.1["required_tier"], "pro");
    let got = say(&app, &alice, id, json!({"content": "Hello"})).await;
    assert_problem(&got, StatusCode::PAYMENT_REQUIRED, "feature_unavailable");
    assert!(messages(&app, &alice, id).await.is_empty());
    assert!(fake.requests().is_empty());

    on_plan(
        &app,
        &alice,
        "assistant_plan",
        json!({"ai_tokens": 100_000}),
    )
    .await;
    let (status, exchange) = say(
        &app,
        &alice,
        id,
        json!({"content": "How is it going?", "tool": "project_status"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{exchange}");
    let (_, sent) = &fake.requests()[0];
    let system = sent["messages"][0]["content"].as_str().unwrap_or_default();
    for expected in [
        "Website relaunch",
        "Write the copy",
        "Pick a font",
        "Summarise the project",
    ] {
        assert!(system.contains(expected), "{expected} in {system}");
    }
    let everything = sent.to_string();
    for hidden in ["Secret merger", "Draft the term sheet"] {
        assert!(!everything.contains(hidden), "{hidden} leaked");
    }

    // The KPI tool reads the KPI through the series API, this organization's only.
    let kpi_id = created_id(
        &app,
        &alice,
        "kpis",
        json!({"name": "Weekly signups", "target_value": 500}),
    )
    .await;
    let (status, body) = app
        .call(
            Method::POST,
            &alice,
            &format!("/v1/orgs/{}/kpis/{kpi_id}/points", alice.org),
            Some(json!([{"value": 321, "observed_at": chrono::Utc::now() - chrono::Duration::days(3)}])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let general = conversation(&app, &alice, json!({})).await;
    let (status, exchange) = say(
        &app,
        &alice,
        general,
        json!({"content": "Why?", "tool": "kpi_trend", "kpi_id": kpi_id}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{exchange}");
    let (_, sent) = &fake.requests()[1];
    let system = sent["messages"][0]["content"].as_str().unwrap_or_default();
    for expected in ["Weekly signups", "321", "500"] {
        assert!(system.contains(expected), "{expected} in {system}");
    }
    let theirs = created_id(&app, &mallory, "kpis", json!({"name": "Their revenue"})).await;
    let got = say(
        &app,
        &alice,
        general,
        json!({"content": "Why?", "tool": "kpi_trend", "kpi_id": theirs}),
    )
    .await;
    assert_eq!(refused_fields(&got), ["kpi_id"]);
}

#[tokio::test]
async fn twenty_racing_requests_against_room_for_five_let_five_through_and_never_overspend() {
    let (app, fake) = app_with(Script {
        wait_after_first: true,
        ..Script::reply(&["Sure", "."], 20, 10)
    })
    .await;
    // A budget of one token: the refusal says what a reply would need, and nothing is spent.
    let alice = member_with_budget(&app, "alice@example.com", 1).await;
    let probe = conversation(&app, &alice, json!({})).await;
    let got = say(&app, &alice, probe, json!({"content": "Hello there"})).await;
    assert_problem(&got, StatusCode::PAYMENT_REQUIRED, "plan_limit");
    assert_eq!(got.1["entitlement"], "ai_tokens");
    let needed = got.1["requested"].as_i64().expect("requested");
    assert!(needed > 256, "{}", got.1);
    assert!(messages(&app, &alice, probe).await.is_empty());
    assert!(fake.requests().is_empty());

    let budget = 5 * needed + needed / 2;
    on_plan(&app, &alice, "assistant_plan", json!({"ai_tokens": budget})).await;
    let mut conversations = Vec::new();
    for _ in 0..20 {
        conversations.push(conversation(&app, &alice, json!({})).await);
    }
    let mut racing = tokio::task::JoinSet::new();
    for id in conversations {
        let request = app
            .request(Method::POST, Some(&alice.token), &messages_path(&alice, id))
            .json(&json!({"content": "Hello there"}));
        racing.spawn(async move { read(request.send().await.expect("send")).await });
    }
    // The refused ones answer at once; the five let through wait on the provider.
    let mut refused = 0;
    while refused < 15 {
        let (status, body) = tokio::time::timeout(Duration::from_secs(30), racing.join_next())
            .await
            .expect("refusals in time")
            .expect("a result")
            .expect("joined");
        assert_problem(&(status, body), StatusCode::PAYMENT_REQUIRED, "plan_limit");
        refused += 1;
    }
    crate::helpers::until("five replies reach the provider", || {
        fake.requests().len() == 5
    })
    .await;
    fake.release(5);
    let mut answered = 0;
    while let Some(result) = racing.join_next().await {
        let (status, body) = result.expect("joined");
        assert_eq!(status, StatusCode::CREATED, "{body}");
        answered += 1;
    }
    assert_eq!((answered, fake.requests().len()), (5, 5));
    let used = usage(&app, &alice, "ai_tokens").await["used"]
        .as_i64()
        .unwrap_or(0);
    assert_eq!(used, 5 * 30);
    assert!(used <= budget);
    // Settled replies give back what they did not use.
    fake.script(Script::reply(&["Sure", "."], 20, 10));
    let (status, body) = say(&app, &alice, probe, json!({"content": "Hello there"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["reply"]["status"], "complete");
}

#[tokio::test]
async fn no_provider_key_appears_in_any_response_log_or_row() {
    let logs = crate::helpers::capture_logs();
    let (fake, base) = Fake::start(Script::reply(&["ok"], 1, 1)).await;
    let mut ai = fake_ai::config(&base);
    // A wrong OpenAI key: OpenAI answers 401 and echoes it masked.
    const WRONG: &str = "sk-wrong-key-that-must-not-leak-9f8e7d";
    if let Some(openai) = ai.openai.as_mut() {
        openai.api_key = WRONG.into();
    }
    let app = TestApp::spawn_with(HttpConfig {
        ai,
        ..HttpConfig::default()
    })
    .await;
    let alice = member_with_budget(&app, "alice@example.com", 100_000).await;
    let mut answers = Vec::new();
    let id = conversation(&app, &alice, json!({})).await;
    let got = say(&app, &alice, id, json!({"content": "Hello"})).await;
    assert_problem(&got, StatusCode::BAD_GATEWAY, "provider_failed");
    assert!(
        got.1["detail"].as_str().is_some_and(|d| d.contains("401")),
        "{}",
        got.1
    );
    answers.push(got.1.to_string());
    // Nothing was spent, and the reservation was given back.
    assert_eq!(usage(&app, &alice, "ai_tokens").await["used"], 0);

    // Anthropic failing mid-reply with a message that names its key.
    fake.script(Script {
        ending: Ending::Error(format!("key {ANTHROPIC_KEY} is over its rate limit")),
        ..Script::reply(&["Partly"], 0, 0)
    });
    let claude = conversation(&app, &alice, json!({"ai_model": "claude_sonnet"})).await;
    let mut events =
        Events::new(say_streamed(&app, &alice, claude, json!({"content": "Hello"})).await);
    let all = events.rest().await;
    assert!(all.iter().any(|(n, _)| n == "error"));
    answers.extend(all.iter().map(|(_, d)| d.to_string()));
    for path in [messages_path(&alice, id), messages_path(&alice, claude)] {
        let (_, body) = app.call(Method::GET, &alice, &path, None).await;
        answers.push(body.to_string());
    }
    let owner = app.db.owner().await;
    let rows: Vec<String> = sqlx::query_scalar(
        r"SELECT row_to_json(m)::text FROM ai_messages m
          UNION ALL SELECT row_to_json(e)::text FROM audit.events e
          UNION ALL SELECT row_to_json(u)::text FROM usage_tracking u",
    )
    .fetch_all(&owner.0)
    .await
    .expect("rows");
    let logged = String::from_utf8_lossy(&logs.lock().expect("logs")).to_string();
    assert!(logged.contains("provider"), "the failures were logged");
    for key in [WRONG, ANTHROPIC_KEY, OPENAI_KEY] {
        // Six characters: what a provider's masked echo keeps of a key.
        let head = &key[..6];
        for (what, text) in [
            ("logs", &logged),
            ("answers", &answers.join("\n")),
            ("rows", &rows.join("\n")),
        ] {
            assert!(!text.contains(head), "{head}… appears in the {what}");
        }
    }
}

#[tokio::test]
async fn platform_admins_manage_the_tool_catalog_and_a_new_tool_works_without_a_release() {
    let (app, fake) = app_with(Script::reply(&["Brief."], 10, 2)).await;
    let alice = member_with_budget(&app, "alice@example.com", 100_000).await;
    let (admin, employee) = (
        app.user("admin@example.com").await,
        app.user("employee@example.com").await,
    );
    crate::platform_admin::make_staff(&app, &admin, "admin").await;
    crate::platform_admin::make_staff(&app, &employee, "employee").await;
    let tool = json!({
        "description": "A one-paragraph brief of a customer.",
        "tool_type": "analysis",
        "required_tier": "basic",
        "configuration": {"instructions": "Write a one-paragraph brief of this customer for a sales call."}
    });
    let path = "/v1/platform/ai-tools/customer_brief";
    // Members, owners of organizations and support staff do not change the catalog.
    for outsider in [&alice, &employee] {
        let got = app
            .call(Method::PUT, outsider, path, Some(tool.clone()))
            .await;
        assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let got = app
        .call(Method::GET, &alice, "/v1/platform/ai-tools", None)
        .await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    // Bad tools are refused, and change nothing.
    for body in [
        json!({"description": "x", "tool_type": "analysis", "required_tier": "basic", "configuration": {"context": "galaxy"}}),
        json!({"description": "x", "tool_type": "analysis", "required_tier": "basic", "configuration": {"run": "rm -rf /"}}),
        json!({"description": "x", "tool_type": "analysis", "required_tier": "basic", "configuration": {"instructions": " "}}),
        json!({"description": "x", "tool_type": "oracle", "required_tier": "basic"}),
        json!({"description": "x", "tool_type": "analysis", "required_tier": "free"}),
    ] {
        let got = app
            .call(Method::PUT, &admin, path, Some(body.clone()))
            .await;
        assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", got.1);
    }
    let got = app
        .call(
            Method::PUT,
            &admin,
            "/v1/platform/ai-tools/Bad-Name",
            Some(tool.clone()),
        )
        .await;
    assert_eq!(refused_fields(&got), ["name"]);
    let (status, saved) = app
        .call(Method::PUT, &admin, path, Some(tool.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(
        (&saved["name"], &saved["is_active"]),
        (&json!("customer_brief"), &json!(true))
    );
    let (status, catalog) = app
        .call(Method::GET, &employee, "/v1/platform/ai-tools", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{catalog}");
    assert_eq!(catalog.as_array().map(Vec::len), Some(4));

    // Organizations see it, unlocked on their plan, and it works: its instructions reach the model.
    let (_, tools) = app
        .call(
            Method::GET,
            &alice,
            &format!("/v1/orgs/{}/ai-tools", alice.org),
            None,
        )
        .await;
    assert!(
        tools
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["name"] == "customer_brief" && t["locked"] == false),
        "{tools}"
    );
    let id = conversation(&app, &alice, json!({})).await;
    let (status, exchange) = say(
        &app,
        &alice,
        id,
        json!({"content": "Acme?", "tool": "customer_brief"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{exchange}");
    let (_, sent) = &fake.requests()[0];
    assert!(sent["messages"][0]["content"]
        .as_str()
        .is_some_and(|s| s.contains("one-paragraph brief of this customer")));

    // Switched off, it is gone from organizations' lists and refused.
    let mut off = tool.clone();
    off["is_active"] = json!(false);
    let (status, saved) = app.call(Method::PUT, &admin, path, Some(off)).await;
    assert_eq!(
        (status, &saved["is_active"]),
        (StatusCode::OK, &json!(false))
    );
    let got = say(
        &app,
        &alice,
        id,
        json!({"content": "Acme?", "tool": "customer_brief"}),
    )
    .await;
    assert_eq!(refused_fields(&got), ["tool"]);
    assert_eq!(fake.requests().len(), 1);

    // Both changes are in the trail, with the admin as actor and under no organization.
    let owner = app.db.owner().await;
    let trail: Vec<(String, Option<Uuid>, Option<Uuid>)> = sqlx::query_as(
        r"SELECT action, user_id, organization_id FROM audit.events
           WHERE entity_type = 'ai_tools' AND entity_id = $1 ORDER BY occurred_at, id",
    )
    .bind(Uuid::parse_str(saved["id"].as_str().expect("id")).expect("uuid"))
    .fetch_all(&owner.0)
    .await
    .expect("trail");
    assert_eq!(
        trail,
        [
            ("insert".to_owned(), Some(admin.id), None),
            ("update".to_owned(), Some(admin.id), None)
        ]
    );
}

#[tokio::test]
async fn gemini_conversations_go_to_its_openai_compatible_endpoint_with_its_model() {
    let (fake, base) = Fake::start(Script::reply(&["Ciao"], 9, 1)).await;
    let mut ai = fake_ai::config(&base);
    ai.gemini = ai.openai.clone().map(|mut gemini| {
        gemini.model = "gemini-2.5-flash".into();
        gemini
    });
    let app = TestApp::spawn_with(HttpConfig {
        ai,
        ..HttpConfig::default()
    })
    .await;
    let alice = member_with_budget(&app, "alice@example.com", 100_000).await;
    let id = conversation(&app, &alice, json!({"ai_model": "gemini"})).await;
    let (status, exchange) = say(&app, &alice, id, json!({"content": "Hello"})).await;
    assert_eq!(status, StatusCode::CREATED, "{exchange}");
    assert_eq!(exchange["reply"]["content"], "Ciao");
    let (api, sent) = &fake.requests()[0];
    assert_eq!(
        (*api, &sent["model"]),
        (Api::OpenAi, &json!("gemini-2.5-flash"))
    );
}

#[tokio::test]
async fn the_trail_admins_read_holds_no_conversation_title_and_no_turn() {
    let (app, _fake) = app_with(Script::reply(&["Noted."], 10, 2)).await;
    let alice = member_with_budget(&app, "alice@example.com", 100_000).await;
    let (bob, carol, _vic) = crate::ai::member_admin_viewer(&app, &alice).await;
    let secret = "Acquire Contoso before the merger leaks";
    let id = conversation(&app, &bob, json!({})).await;
    let (status, body) = say(&app, &bob, id, json!({"content": secret})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The first message named the conversation, for its author.
    let (_, mine) = app
        .call(
            Method::GET,
            &bob,
            &format!("/v1/orgs/{}/conversations/{id}", bob.org),
            None,
        )
        .await;
    assert_eq!(mine["title"], secret);

    // The admin sees that a conversation was started, not what it is called or what was said.
    let (status, trail) = app
        .call(
            Method::GET,
            &carol,
            &format!("/v1/orgs/{}/activity?limit=100", alice.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let events = trail["items"].as_array().expect("items");
    assert!(
        events
            .iter()
            .any(|e| e["entity_type"] == "ai_conversations" && e["entity_id"] == id.to_string()),
        "{trail}"
    );
    assert!(
        !events.iter().any(|e| e["entity_type"] == "ai_messages"),
        "{trail}"
    );
    assert!(!trail.to_string().contains("Contoso"), "{trail}");
    // Nor does the table itself, read by its owner.
    let owner = app.db.owner().await;
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.events WHERE concat(old_data, new_data)::text LIKE '%Contoso%'",
    )
    .fetch_one(&owner.0)
    .await
    .expect("count");
    assert_eq!(leaked, 0);
}

/// The bound of a prompt OpenAI was sent: its texts' bytes, the format's tokens, the output cap
/// (as `Prompt::token_bound` counts them; the turns alternate, so none were merged).
fn bound_of_sent(sent: &Value) -> i64 {
    let messages = sent["messages"].as_array().cloned().unwrap_or_default();
    let bytes = |m: &Value| m["content"].as_str().map_or(0, str::len) as i64;
    let system = messages.first().map_or(0, bytes);
    let turns: i64 = messages.iter().skip(1).map(|m| bytes(m) + 8).sum();
    system + 16 + turns + sent["max_tokens"].as_i64().unwrap_or(0)
}

/// Says `content` once with no budget left, which is refused with the tokens the turn would
/// reserve, then with room, and returns those tokens and the request the provider was sent.
async fn reserved_then_sent(
    app: &TestApp,
    fake: &Fake,
    user: &TestUser,
    conversation: Uuid,
    body: Value,
) -> (i64, Value) {
    on_plan(app, user, "assistant_plan", json!({"ai_tokens": 1})).await;
    let got = say(app, user, conversation, body.clone()).await;
    assert_problem(&got, StatusCode::PAYMENT_REQUIRED, "plan_limit");
    let reserved = got.1["requested"].as_i64().expect("requested");
    on_plan(
        app,
        user,
        "assistant_plan",
        json!({"ai_tokens": 10_000_000}),
    )
    .await;
    let (status, exchange) = say(app, user, conversation, body).await;
    assert_eq!(status, StatusCode::CREATED, "{exchange}");
    let sent = fake.requests().last().expect("a request").1.clone();
    (reserved, sent)
}

#[tokio::test]
async fn a_turn_reserves_what_its_prompt_can_cost_computed_before_the_prompt_exists() {
    let (app, fake) = app_with(Script::reply(&["Noted — ✓."], 10, 5)).await;
    let alice = member_with_budget(&app, "alice@example.com", 10_000_000).await;
    let admin = app.user("admin@example.com").await;
    crate::platform_admin::make_staff(&app, &admin, "admin").await;
    let tool = json!({
        "description": "Briefs.",
        "tool_type": "analysis",
        "required_tier": "basic",
        "configuration": {"instructions": "Write a brief — one paragraph, «plainly»."}
    });
    let got = app
        .call(
            Method::PUT,
            &admin,
            "/v1/platform/ai-tools/brief",
            Some(tool),
        )
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);

    // Three turns of 38,000 bytes of two-byte characters: the history keeps the newest 64 KB
    // (the second reply, the last turn and its reply), counted in bytes, not characters.
    let id = conversation(&app, &alice, json!({})).await;
    for n in 0..3 {
        let content = format!("{n}{}", "é".repeat(19_000));
        let (status, body) = say(&app, &alice, id, json!({"content": content})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (reserved, sent) = reserved_then_sent(
        &app,
        &fake,
        &alice,
        id,
        json!({"content": "Und jetzt? ✓", "tool": "brief", "max_tokens": 77}),
    )
    .await;
    let messages = sent["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        messages.len(),
        5,
        "system, a reply, the last turn, its reply, the new message"
    );
    assert!(messages[2]["content"]
        .as_str()
        .unwrap_or_default()
        .starts_with('2'));
    assert!(messages[0]["content"]
        .as_str()
        .unwrap_or_default()
        .contains("«plainly»"));
    assert_eq!(reserved, bound_of_sent(&sent));

    // A conversation about a record reserves the most its summary can add: at least the bound.
    let project = created_id(
        &app,
        &alice,
        "projects",
        json!({"name": "Relaunch", "status": "active"}),
    )
    .await;
    let about = conversation(
        &app,
        &alice,
        json!({"context_type": "project", "context_id": project}),
    )
    .await;
    let (reserved, sent) =
        reserved_then_sent(&app, &fake, &alice, about, json!({"content": "Status?"})).await;
    let bound = bound_of_sent(&sent);
    assert!(
        bound <= reserved && reserved - bound <= 8 * 1024 + 64,
        "{bound} of {reserved}"
    );
}
