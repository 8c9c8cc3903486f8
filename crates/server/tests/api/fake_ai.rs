//! A local server speaking OpenAI's Chat Completions and Anthropic's Messages APIs, streamed as
//! they stream (server-sent events in their documented shapes, with the fields and event types
//! they add over time), scripted per test: the pieces of the reply, whether it waits for the
//! test after the first piece, and how it ends.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tenantry_server::ai::provider::{AiConfig, Api, Provider};
use tokio::sync::{mpsc, Semaphore};

pub const OPENAI_KEY: &str = "sk-test-openai-5e3c1f0d9b7a4c2e8f61";
pub const ANTHROPIC_KEY: &str = "sk-ant-test-2b8d4f6a1c3e5g7h9j0k";

/// How a scripted reply ends.
#[derive(Clone, Debug)]
pub enum Ending {
    /// Finished, with usage (OpenAI's last chunk; Anthropic's message_start and message_delta).
    Finish { input: i64, output: i64 },
    /// Finished without any usage.
    FinishWithoutUsage,
    /// An error event mid-stream.
    Error(String),
    /// The connection ends without the provider's end marker.
    Cut,
    /// Nothing more is sent until the reader goes away.
    Hang,
}

#[derive(Clone, Debug)]
pub struct Script {
    pub pieces: Vec<String>,
    /// After the first piece, wait for [`Fake::release`].
    pub wait_after_first: bool,
    pub ending: Ending,
}

impl Script {
    pub fn reply(pieces: &[&str], input: i64, output: i64) -> Self {
        Self {
            pieces: pieces.iter().map(|p| (*p).to_owned()).collect(),
            wait_after_first: false,
            ending: Ending::Finish { input, output },
        }
    }
}

pub struct FakeState {
    script: Mutex<Script>,
    /// Every request body received, with the API it came to.
    pub requests: Mutex<Vec<(Api, Value)>>,
    gate: Semaphore,
    /// Replies whose reader went away before the reply ended.
    pub abandoned: AtomicUsize,
}

#[derive(Clone)]
pub struct Fake(pub Arc<FakeState>);

impl Fake {
    pub async fn start(script: Script) -> (Self, String) {
        let fake = Fake(Arc::new(FakeState {
            script: Mutex::new(script),
            requests: Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
            abandoned: AtomicUsize::new(0),
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}/v1", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, base)
    }

    pub fn script(&self, script: Script) {
        *self.0.script.lock().expect("lock") = script;
    }

    /// Lets `n` waiting replies go on past their first piece.
    pub fn release(&self, n: usize) {
        self.0.gate.add_permits(n);
    }

    pub fn requests(&self) -> Vec<(Api, Value)> {
        self.0.requests.lock().expect("lock").clone()
    }

    pub fn abandoned(&self) -> usize {
        self.0.abandoned.load(Ordering::SeqCst)
    }
}

/// The providers of a test's Tenantry: OpenAI and Anthropic at the fake, Gemini not configured.
pub fn config(base: &str) -> AiConfig {
    AiConfig {
        openai: Some(Provider {
            api: Api::OpenAi,
            base_url: base.to_owned(),
            api_key: OPENAI_KEY.into(),
            model: "gpt-4o".into(),
        }),
        anthropic: Some(Provider {
            api: Api::Anthropic,
            base_url: base.to_owned(),
            api_key: ANTHROPIC_KEY.into(),
            model: "claude-sonnet-4-5".into(),
        }),
        gemini: None,
        max_output_tokens: 256,
        idle_timeout: std::time::Duration::from_secs(10),
    }
}

/// How a key is echoed back masked in a provider's refusal (its head and tail kept).
fn masked(key: &str) -> String {
    let head: String = key.chars().take(6).collect();
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}********{tail}")
}

async fn openai(State(fake): State<Fake>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if presented != OPENAI_KEY {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {
                "message": format!("Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.", masked(presented)),
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})),
        )
            .into_response();
    }
    fake.0
        .requests
        .lock()
        .expect("lock")
        .push((Api::OpenAi, body));
    stream(fake, Api::OpenAi)
}

async fn anthropic(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let presented = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if presented != ANTHROPIC_KEY || headers.get("anthropic-version").is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})),
        )
            .into_response();
    }
    fake.0
        .requests
        .lock()
        .expect("lock")
        .push((Api::Anthropic, body));
    stream(fake, Api::Anthropic)
}

fn frame(api: Api, data: &Value) -> String {
    match api {
        Api::OpenAi => format!("data: {data}\n\n"),
        Api::Anthropic => format!(
            "event: {}\ndata: {data}\n\n",
            data["type"].as_str().unwrap_or("unknown")
        ),
    }
}

fn piece(api: Api, text: &str) -> String {
    match api {
        Api::OpenAi => frame(
            api,
            &json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                    "model": "gpt-4o-2024-08-06", "obfuscation": "x1y2",
                    "choices": [{"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": null}]}),
        ),
        Api::Anthropic => frame(
            api,
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        ),
    }
}

fn opening(api: Api, input: Option<i64>) -> String {
    match api {
        Api::OpenAi => {
            frame(
                api,
                &json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                    "model": "gpt-4o-2024-08-06",
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null}, "finish_reason": null}]}),
            ) + ": keep-alive comment\n\n"
        }
        Api::Anthropic => {
            let mut usage = json!({"output_tokens": 1, "service_tier": "standard"});
            if let Some(input) = input {
                usage["input_tokens"] = json!(input);
            }
            frame(
                api,
                &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                        "model": "claude-sonnet-4-5-20250929", "content": [], "stop_reason": null, "usage": usage}}),
            ) + &frame(
                api,
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ) + &frame(api, &json!({"type": "ping"}))
        }
    }
}

fn ending(api: Api, usage: Option<(i64, i64)>) -> String {
    match api {
        Api::OpenAi => {
            let mut out = frame(
                api,
                &json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-2024-08-06",
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "a_reason_added_next_year"}]}),
            );
            if let Some((input, output)) = usage {
                out += &frame(
                    api,
                    &json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
                            "usage": {"prompt_tokens": input, "completion_tokens": output,
                                      "total_tokens": input + output,
                                      "prompt_tokens_details": {"cached_tokens": 0}}}),
                );
            }
            out + "data: [DONE]\n\n"
        }
        Api::Anthropic => {
            let mut delta = json!({"type": "message_delta", "delta": {"stop_reason": "a_reason_added_next_year", "stop_sequence": null}});
            if let Some((_, output)) = usage {
                delta["usage"] = json!({"output_tokens": output});
            }
            frame(api, &json!({"type": "content_block_stop", "index": 0}))
                + &frame(
                    api,
                    &json!({"type": "some_event_added_later", "detail": {"x": 1}}),
                )
                + &frame(api, &delta)
                + &frame(api, &json!({"type": "message_stop"}))
        }
    }
}

fn error(api: Api, message: &str) -> String {
    match api {
        Api::OpenAi => frame(
            api,
            &json!({"error": {"message": message, "type": "server_error", "code": null}}),
        ),
        Api::Anthropic => frame(
            api,
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": message}}),
        ),
    }
}

/// The scripted reply as a streamed body; a reader that goes away is noticed and counted.
fn stream(fake: Fake, api: Api) -> Response {
    let script = fake.0.script.lock().expect("lock").clone();
    let (sender, receiver) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    tokio::spawn(async move {
        let send = |text: String| {
            let sender = sender.clone();
            async move { sender.send(Ok(Bytes::from(text))).await.is_ok() }
        };
        let usage = match &script.ending {
            Ending::Finish { input, output } => Some((*input, *output)),
            _ => None,
        };
        if !send(opening(api, usage.map(|(i, _)| i))).await {
            fake.0.abandoned.fetch_add(1, Ordering::SeqCst);
            return;
        }
        for (i, text) in script.pieces.iter().enumerate() {
            if !send(piece(api, text)).await {
                fake.0.abandoned.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if i == 0 && script.wait_after_first {
                if let Ok(permit) = fake.0.gate.acquire().await {
                    permit.forget();
                }
            }
        }
        match script.ending {
            Ending::Finish { .. } | Ending::FinishWithoutUsage => {
                send(ending(api, usage)).await;
            }
            Ending::Error(message) => {
                send(error(api, &message)).await;
            }
            Ending::Cut => {}
            Ending::Hang => {
                sender.closed().await;
                fake.0.abandoned.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}
