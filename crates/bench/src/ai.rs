//! `bench ai`: the assistant. (1) Time to the first piece of a streamed reply through Tenantry
//! (`POST …/messages` with `Accept: text/event-stream`: auth, the conversation, the tool's tier,
//! the context, the message stored, the tokens reserved, the provider asked, the piece relayed)
//! vs straight from the same local provider speaking OpenAI's format — the overhead Tenantry
//! adds. (2) A user with 10,000 conversations (among 1,000 organizations with 10 each, one
//! conversation with 2,000 turns): their list's first page and a conversation's first page of
//! messages over HTTP, as SQL under RLS, and as the owner.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use serde_json::{json, Value};
use sqlx::PgPool;
use tenantry_db::pool::pool_options;
use tenantry_db::{ConnectionUrls, RuntimePool};
use tenantry_server::ai::provider::{AiConfig, Api, Provider};
use tenantry_server::ai::store::{MESSAGES_SQL, MINE_SQL};
use tenantry_server::http::HttpConfig;
use uuid::Uuid;

use super::{
    bench_session, bench_tenants, compare, get_op, on_unlimited_plan, report, spawn_server_with,
    under_rls_and_as_owner, AnyError, Settings, SqlWork, Stats,
};

/// First-byte samples per round and variant.
const SAMPLES: usize = 100;
const BIG_CONVERSATIONS: i64 = 10_000;
const CONVERSATIONS_PER_ORG: i64 = 10;
const BUSY_TURNS: i64 = 2_000;

/// A provider answering every Chat Completions request at once with a short streamed reply, its
/// first piece in the first write.
async fn local_provider() -> Result<String, AnyError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/v1", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async {
            let chunk = |delta: Value| {
                format!(
                    "data: {}\n\n",
                    json!({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
                )
            };
            let first = chunk(json!({"role": "assistant", "content": "Hello"}));
            let rest = [" from", " the", " bench", "."]
                .iter()
                .map(|t| chunk(json!({"content": t})))
                .collect::<String>()
                + &format!(
                    "data: {}\n\ndata: [DONE]\n\n",
                    json!({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 5}})
                );
            let parts = [first, rest].map(|p| Ok::<_, Infallible>(Bytes::from(p)));
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(futures_util::stream::iter(parts)),
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

/// Sends `request` and reads its body until `marker` appears: the time that took; then the rest.
async fn until_marker(
    request: reqwest::RequestBuilder,
    marker: &str,
) -> Result<Duration, AnyError> {
    let started = Instant::now();
    let mut response = request.send().await?;
    if !response.status().is_success() {
        return Err(format!("{}: {}", response.status(), response.text().await?).into());
    }
    let mut seen = String::new();
    let mut first = None;
    while let Some(chunk) = response.chunk().await? {
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if first.is_none() && seen.contains(marker) {
            first = Some(started.elapsed());
        }
    }
    first.ok_or_else(|| format!("no {marker:?} in {seen}").into())
}

pub(super) async fn run(urls: &ConnectionUrls, s: &Settings) -> Result<(), AnyError> {
    let runtime = RuntimePool::open(urls, s.connections.max(4)).await?;
    let owner = pool_options(s.connections.max(2))
        .connect(&urls.owner)
        .await?;
    let tenants = bench_tenants(urls, &runtime).await?;
    let (user, org) = tenants[0];
    on_unlimited_plan(&owner, org).await?;
    let provider = local_provider().await?;
    let (base, _server) = spawn_server_with(
        &runtime,
        HttpConfig {
            metering: None,
            ai: AiConfig {
                openai: Some(Provider {
                    api: Api::OpenAi,
                    base_url: provider.clone(),
                    api_key: "sk-bench".into(),
                    model: "gpt-4o".into(),
                }),
                ..AiConfig::default()
            },
            ..HttpConfig::default()
        },
    )
    .await?;
    let session = bench_session(&runtime, user).await?;
    let client = reqwest::Client::new();

    println!(
        "ai: time to the first streamed piece, {SAMPLES} requests × {} rounds per variant, one at a time, alternating",
        s.rounds
    );
    let direct_body = json!({"model": "gpt-4o", "stream": true, "max_tokens": 1024,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "system", "content": "You are the assistant of a business workspace."},
                     {"role": "user", "content": "How are we doing this month?"}]});
    let (mut ours, mut direct, mut start) = (Stats::default(), Stats::default(), Stats::default());
    // Round 0 warms up and is not counted.
    for round in 0..=s.rounds {
        for _ in 0..SAMPLES {
            let started = Instant::now();
            let response = client
                .post(format!("{base}/v1/orgs/{org}/conversations"))
                .bearer_auth(&session)
                .json(&json!({"title": "bench"}))
                .send()
                .await?;
            let created: Value = response.json().await?;
            if round > 0 {
                start.record(1, started.elapsed());
            }
            let id = created["id"].as_str().ok_or("no conversation id")?;
            let took = until_marker(
                client
                    .post(format!("{base}/v1/orgs/{org}/conversations/{id}/messages"))
                    .bearer_auth(&session)
                    .header("accept", "text/event-stream")
                    .json(&json!({"content": "How are we doing this month?"})),
                "event: delta",
            )
            .await?;
            let straight = until_marker(
                client
                    .post(format!("{provider}/chat/completions"))
                    .bearer_auth("sk-bench")
                    .json(&direct_body),
                "\"content\":\"Hello\"",
            )
            .await?;
            if round > 0 {
                ours.record(1, took);
                direct.record(1, straight);
            }
        }
    }
    let overhead = ours.percentile_ms(0.5) - direct.percentile_ms(0.5);
    report(&mut [
        (
            "through Tenantry: POST …/messages (SSE) to the first `delta` event",
            ours,
        ),
        (
            "for scale: POST …/conversations (one write transaction over HTTP)",
            start,
        ),
        (
            "straight from the local provider: POST /chat/completions to the first piece",
            direct,
        ),
    ]);
    println!("overhead Tenantry adds at p50: {overhead:.2} ms");
    sqlx::query("DELETE FROM ai_conversations WHERE organization_id = $1 AND title = 'bench'")
        .bind(org)
        .execute(&owner)
        .await?;

    let (big_user, big_org) = tenants[1];
    let busy = conversations(&owner, &tenants, big_org).await?;
    let big_session = bench_session(&runtime, big_user).await?;
    println!(
        "ai: a user with {BIG_CONVERSATIONS} conversations ({CONVERSATIONS_PER_ORG} in each of {} other organizations), one with {BUSY_TURNS} turns; {} connections, {} rounds of {:?}",
        tenants.len() - 1,
        s.connections,
        s.rounds,
        s.round
    );
    let one = Arc::new(vec![(big_user, big_org)]);
    let list = get_op(
        client
            .get(format!("{base}/v1/orgs/{big_org}/conversations?limit=50"))
            .bearer_auth(&big_session),
    );
    let list_sql: SqlWork = Arc::new(move |conn, org| {
        Box::pin(async move {
            let rows = sqlx::query(MINE_SQL)
                .bind(org)
                .bind(big_user)
                .bind(false)
                .bind(Uuid::max())
                .bind(51_i64)
                .fetch_all(conn)
                .await?;
            if rows.len() != 51 {
                return Err(format!("{} conversations, not 51", rows.len()).into());
            }
            Ok(())
        })
    });
    let (list_rls, list_owner) = under_rls_and_as_owner(&runtime, &owner, list_sql);
    report(
        &mut compare(
            s,
            &one,
            vec![
                ("my conversations, first 50: GET over HTTP", list),
                ("its SQL under RLS (runtime role)", list_rls),
                ("the same SQL as owner (RLS off)", list_owner),
            ],
        )
        .await?,
    );
    let read = get_op(
        client
            .get(format!(
                "{base}/v1/orgs/{big_org}/conversations/{busy}/messages?limit=50"
            ))
            .bearer_auth(&big_session),
    );
    let read_sql: SqlWork = Arc::new(move |conn, org| {
        Box::pin(async move {
            let rows = sqlx::query(MESSAGES_SQL)
                .bind(org)
                .bind(busy)
                .bind(Uuid::nil())
                .bind(51_i64)
                .fetch_all(conn)
                .await?;
            if rows.len() != 51 {
                return Err(format!("{} messages, not 51", rows.len()).into());
            }
            Ok(())
        })
    });
    let (read_rls, read_owner) = under_rls_and_as_owner(&runtime, &owner, read_sql);
    report(
        &mut compare(
            s,
            &one,
            vec![
                ("a conversation's first 50 turns: GET over HTTP", read),
                ("its SQL under RLS (runtime role)", read_rls),
                ("the same SQL as owner (RLS off)", read_owner),
            ],
        )
        .await?,
    );
    runtime.close().await;
    owner.close().await;
    Ok(())
}

/// The conversations data set (made on first use, then analyzed): `big`'s owner has 10,000,
/// every other organization's owner 10, and one of `big`'s has 2,000 turns. Its id.
async fn conversations(
    owner: &PgPool,
    tenants: &[(Uuid, Uuid)],
    big: Uuid,
) -> Result<Uuid, AnyError> {
    let have: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ai_conversations WHERE organization_id = $1")
            .bind(big)
            .fetch_one(owner)
            .await?;
    if have < BIG_CONVERSATIONS {
        println!("creating the conversations data set...");
        let (users, orgs): (Vec<Uuid>, Vec<Uuid>) = tenants.iter().copied().unzip();
        let mut tx = owner.begin().await?;
        for table in ["ai_conversations", "ai_messages"] {
            sqlx::query(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            r"INSERT INTO ai_conversations (id, organization_id, user_id, title, created_at, updated_at)
              SELECT app.uuid_v7(), t.org, t.usr, 'Chat ' || g, now(), now()
                FROM unnest($1::uuid[], $2::uuid[]) AS t (usr, org),
                     generate_series(1, CASE WHEN t.org = $3 THEN $4 ELSE $5 END) g",
        )
        .bind(&users)
        .bind(&orgs)
        .bind(big)
        .bind(BIG_CONVERSATIONS)
        .bind(CONVERSATIONS_PER_ORG)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            r"INSERT INTO ai_messages (id, organization_id, conversation_id, user_id, role, content, status, model,
                                      input_tokens, output_tokens)
              SELECT app.uuid_v7(), c.organization_id, c.id, c.user_id,
                     CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END,
                     'Turn ' || g || ' of a long conversation about the quarter''s numbers.', 'complete',
                     CASE WHEN g % 2 = 0 THEN 'gpt-4o' END,
                     CASE WHEN g % 2 = 0 THEN 400 END, CASE WHEN g % 2 = 0 THEN 60 END
                FROM (SELECT * FROM ai_conversations WHERE organization_id = $1 ORDER BY id LIMIT 1) c,
                     generate_series(1, $2) g",
        )
        .bind(big)
        .bind(BUSY_TURNS)
        .execute(&mut *tx)
        .await?;
        for table in ["ai_conversations", "ai_messages"] {
            sqlx::query(&format!("ALTER TABLE {table} ENABLE TRIGGER USER"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        sqlx::query("ANALYZE ai_conversations, ai_messages")
            .execute(owner)
            .await?;
    }
    Ok(sqlx::query_scalar(
        "SELECT conversation_id FROM ai_messages WHERE organization_id = $1 GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )
    .bind(big)
    .fetch_one(owner)
    .await?)
}
