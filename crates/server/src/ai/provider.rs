//! AI providers, each through its documented HTTP API and streamed as it answers: OpenAI's Chat
//! Completions (and any server speaking it, Gemini's OpenAI-compatible endpoint among them) and
//! Anthropic's Messages. Both stream server-sent events; what neither documents (an event type or
//! a field added later, a missing usage count) is skipped, not an error.

use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};

use super::AiModel;

/// Which API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST {base}/chat/completions`, bearer key.
    OpenAi,
    /// `POST {base}/messages`, `x-api-key` and `anthropic-version`.
    Anthropic,
}

/// One provider as configured: where, with which key, which model.
#[derive(Clone)]
pub struct Provider {
    pub api: Api,
    /// The API's base, e.g. `https://api.openai.com/v1` (no trailing slash needed).
    pub base_url: String,
    pub api_key: String,
    pub model: String,
}

impl fmt::Debug for Provider {
    // The key never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("api", &self.api)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Provider {
    pub fn openai(api_key: String) -> Self {
        Self {
            api: Api::OpenAi,
            base_url: "https://api.openai.com/v1".into(),
            api_key,
            model: "gpt-4o".into(),
        }
    }

    pub fn anthropic(api_key: String) -> Self {
        Self {
            api: Api::Anthropic,
            base_url: "https://api.anthropic.com/v1".into(),
            api_key,
            model: "claude-sonnet-4-5".into(),
        }
    }

    /// Gemini through its OpenAI-compatible endpoint.
    pub fn gemini(api_key: String) -> Self {
        Self {
            api: Api::OpenAi,
            base_url: "https://generativelanguage.googleapis.com/v1beta/openai".into(),
            api_key,
            model: "gemini-2.5-flash".into(),
        }
    }

    fn name(&self) -> &'static str {
        match self.api {
            Api::OpenAi => "the OpenAI-compatible provider",
            Api::Anthropic => "Anthropic",
        }
    }

    /// `text` with this provider's key taken out, and any word carrying a recognizable piece of
    /// it (providers echo keys masked, like `sk-abc1***wxyz`).
    pub fn redact(&self, text: &str) -> String {
        let key = self.api_key.as_str();
        if key.is_empty() {
            return text.to_owned();
        }
        let pieces = (key.len() >= 12)
            .then(|| key.get(..6).zip(key.get(key.len() - 4..)))
            .flatten();
        let Some((head, tail)) = pieces else {
            return text.replace(key, "[redacted]");
        };
        text.replace(key, "[redacted]")
            .split(' ')
            .map(|word| {
                if word.contains(head) || word.contains(tail) {
                    "[redacted]"
                } else {
                    word
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The providers configured, by the model family a conversation names.
#[derive(Clone, Debug)]
pub struct AiConfig {
    pub openai: Option<Provider>,
    pub anthropic: Option<Provider>,
    pub gemini: Option<Provider>,
    /// The most output tokens one reply may have (a request may ask for fewer).
    pub max_output_tokens: u32,
    /// How long a provider may stay silent (before answering, or between two pieces of a
    /// reply) before the reply is given up as failed.
    pub idle_timeout: Duration,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            openai: None,
            anthropic: None,
            gemini: None,
            max_output_tokens: 1024,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl AiConfig {
    pub fn provider(&self, model: AiModel) -> Option<&Provider> {
        match model {
            AiModel::OpenaiGpt4 => self.openai.as_ref(),
            AiModel::ClaudeSonnet => self.anthropic.as_ref(),
            AiModel::Gemini => self.gemini.as_ref(),
        }
    }
}

/// Who said a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    User,
    Assistant,
}

/// What is sent for a reply: instructions, the conversation so far (oldest first, ending with
/// the user's new message), and the output cap.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub system: String,
    pub turns: Vec<(Speaker, String)>,
    pub max_tokens: u32,
}

/// Tokens the chat format adds to a prompt, beyond its texts' (see [`Prompt::token_bound`]).
pub const FRAME_TOKENS: usize = 16;
/// Tokens the chat format adds to each turn, beyond its text's.
pub const TURN_TOKENS: usize = 8;

impl Prompt {
    /// The most tokens answering this can cost: the input's bytes (no tokenizer makes more
    /// tokens than bytes) with the chat format's few tokens per turn, plus the output cap.
    /// `ai::store::start_turn` reserves the same sum, computed in SQL before the prompt exists.
    pub fn token_bound(&self) -> i64 {
        let input: usize = self.system.len()
            + FRAME_TOKENS
            + self
                .turns
                .iter()
                .map(|(_, t)| t.len() + TURN_TOKENS)
                .sum::<usize>();
        input as i64 + i64::from(self.max_tokens)
    }

    /// Consecutive turns of one speaker merged, empty ones left out: Anthropic requires turns
    /// to alternate, and a reply that failed before it said anything leaves two user turns.
    fn alternating(&self) -> Vec<(Speaker, String)> {
        let mut turns: Vec<(Speaker, String)> = Vec::new();
        for (speaker, text) in &self.turns {
            if text.trim().is_empty() {
                continue;
            }
            match turns.last_mut() {
                Some((last, joined)) if last == speaker => {
                    joined.push_str("\n\n");
                    joined.push_str(text);
                }
                _ => turns.push((*speaker, text.clone())),
            }
        }
        turns
    }

    /// The tokens of the input, estimated as providers' tokenizers average on English text
    /// (four bytes a token), for when a provider reports none.
    pub fn estimated_input_tokens(&self) -> i64 {
        estimate_tokens(&self.system)
            + self
                .turns
                .iter()
                .map(|(_, t)| estimate_tokens(t) + 4)
                .sum::<i64>()
    }
}

pub fn estimate_tokens(text: &str) -> i64 {
    (text.len() as i64 + 3) / 4
}

/// A provider's failure, its key already taken out of the message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(String);

impl ProviderError {
    fn new(provider: &Provider, message: String) -> Self {
        Self(provider.redact(&format!("{}: {message}", provider.name())))
    }
}

/// The tokens a provider reported (either may be missing: then they are estimated).
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    /// The model that answered, as the provider names it.
    pub model: Option<String>,
}

/// Asks `provider` for a streamed reply to `prompt`; returns once it answered with a stream
/// (or refused: the error carries its message).
pub async fn open(
    client: &reqwest::Client,
    provider: &Provider,
    prompt: &Prompt,
    idle_timeout: Duration,
) -> Result<ReplyStream, ProviderError> {
    let base = provider.base_url.trim_end_matches('/');
    let turns: Vec<Value> = prompt
        .alternating()
        .into_iter()
        .map(|(speaker, text)| {
            let role = match speaker {
                Speaker::User => "user",
                Speaker::Assistant => "assistant",
            };
            json!({"role": role, "content": text})
        })
        .collect();
    let request = match provider.api {
        Api::OpenAi => {
            let mut messages = vec![json!({"role": "system", "content": prompt.system})];
            messages.extend(turns);
            client
                .post(format!("{base}/chat/completions"))
                .bearer_auth(&provider.api_key)
                .json(&json!({
                    "model": provider.model,
                    "messages": messages,
                    "max_tokens": prompt.max_tokens,
                    "stream": true,
                    "stream_options": {"include_usage": true},
                }))
        }
        Api::Anthropic => client
            .post(format!("{base}/messages"))
            .header("x-api-key", &provider.api_key)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({
                "model": provider.model,
                "system": prompt.system,
                "messages": turns,
                "max_tokens": prompt.max_tokens,
                "stream": true,
            })),
    };
    let response = tokio::time::timeout(idle_timeout, request.send())
        .await
        .map_err(|_| ProviderError::new(provider, "no answer in time (timed out)".into()))?
        .map_err(|e| ProviderError::new(provider, transport_message(&e)))?;
    let status = response.status();
    if !status.is_success() {
        let body = tokio::time::timeout(idle_timeout, response.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        return Err(ProviderError::new(
            provider,
            format!("answered {status}: {}", error_message(&body)),
        ));
    }
    Ok(ReplyStream {
        response,
        provider: provider.clone(),
        idle_timeout,
        buffer: Vec::new(),
        event: Event::default(),
        pending: Vec::new(),
        finished: false,
        usage: Usage::default(),
    })
}

fn transport_message(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// The message of a provider's error body (`{"error": {"message": …}}` in both APIs), else the
/// body's start.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// One server-sent event being read.
#[derive(Default)]
struct Event {
    name: String,
    data: String,
}

/// A reply as the provider streams it: [`ReplyStream::next`] gives its text piece by piece.
pub struct ReplyStream {
    response: reqwest::Response,
    provider: Provider,
    idle_timeout: Duration,
    /// Bytes received and not yet read as lines.
    buffer: Vec<u8>,
    event: Event,
    /// Text read and not yet given out (oldest first).
    pending: Vec<String>,
    finished: bool,
    pub usage: Usage,
}

impl ReplyStream {
    /// The next piece of the reply's text; `None` once the provider finished it. An error when
    /// the provider failed, went silent, or ended the stream before finishing.
    pub async fn next(&mut self) -> Result<Option<String>, ProviderError> {
        loop {
            if !self.pending.is_empty() {
                return Ok(Some(self.pending.remove(0)));
            }
            if self.finished {
                return Ok(None);
            }
            let chunk = tokio::time::timeout(self.idle_timeout, self.response.chunk())
                .await
                .map_err(|_| {
                    ProviderError::new(&self.provider, "went silent mid-reply (timed out)".into())
                })?
                .map_err(|e| ProviderError::new(&self.provider, transport_message(&e)))?;
            match chunk {
                Some(bytes) => {
                    self.buffer.extend_from_slice(&bytes);
                    self.read_lines()?;
                }
                None => {
                    // A last event without its blank line still counts.
                    self.read_lines()?;
                    self.dispatch()?;
                    if !self.finished && self.pending.is_empty() {
                        return Err(ProviderError::new(
                            &self.provider,
                            "the reply ended before the provider finished it".into(),
                        ));
                    }
                    self.finished = true;
                }
            }
        }
    }

    /// Reads the complete lines of the buffer (SSE: `event:` and `data:` fields, a blank line
    /// ends an event, `:` starts a comment).
    fn read_lines(&mut self) -> Result<(), ProviderError> {
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                self.dispatch()?;
            } else if let Some(data) = line.strip_prefix("data:") {
                if !self.event.data.is_empty() {
                    self.event.data.push('\n');
                }
                self.event
                    .data
                    .push_str(data.strip_prefix(' ').unwrap_or(data));
            } else if let Some(name) = line.strip_prefix("event:") {
                self.event.name = name.trim().to_owned();
            }
        }
        Ok(())
    }

    /// Acts on the event read so far.
    fn dispatch(&mut self) -> Result<(), ProviderError> {
        let event = std::mem::take(&mut self.event);
        if event.data.is_empty() {
            return Ok(());
        }
        if self.provider.api == Api::OpenAi && event.data.trim() == "[DONE]" {
            self.finished = true;
            return Ok(());
        }
        // A line that is not JSON is skipped, like an event of a type not known here.
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            return Ok(());
        };
        if let Some(error) = data.get("error").filter(|e| !e.is_null()) {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("failed mid-reply");
            return Err(ProviderError::new(&self.provider, message.to_owned()));
        }
        let count = |v: Option<&Value>| v.and_then(Value::as_i64).filter(|n| *n >= 0);
        match self.provider.api {
            Api::OpenAi => {
                if let Some(model) = data.get("model").and_then(Value::as_str) {
                    self.usage.model = Some(model.to_owned());
                }
                if let Some(text) = data
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    self.pending.push(text.to_owned());
                }
                if let Some(usage) = data.get("usage").filter(|u| u.is_object()) {
                    self.usage.input_tokens = count(usage.get("prompt_tokens"));
                    self.usage.output_tokens = count(usage.get("completion_tokens"));
                }
            }
            Api::Anthropic => match data.get("type").and_then(Value::as_str).unwrap_or("") {
                "message_start" => {
                    let message = data.get("message");
                    if let Some(model) =
                        message.and_then(|m| m.get("model")).and_then(Value::as_str)
                    {
                        self.usage.model = Some(model.to_owned());
                    }
                    let usage = message.and_then(|m| m.get("usage"));
                    self.usage.input_tokens = count(usage.and_then(|u| u.get("input_tokens")));
                    self.usage.output_tokens = count(usage.and_then(|u| u.get("output_tokens")));
                }
                "content_block_delta" => {
                    if let Some(text) = data
                        .pointer("/delta/text")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                    {
                        self.pending.push(text.to_owned());
                    }
                }
                // Cumulative output tokens so far.
                "message_delta" => {
                    if let Some(n) = count(data.pointer("/usage/output_tokens")) {
                        self.usage.output_tokens = Some(n);
                    }
                }
                "message_stop" => self.finished = true,
                _ => {}
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_their_masked_echoes_are_redacted() {
        let provider = Provider::openai("sk-test-0123456789abcdef".into());
        let said = "Incorrect API key provided: sk-tes*********cdef. You can find your key";
        let redacted = provider.redact(said);
        assert!(!redacted.contains("sk-tes"), "{redacted}");
        assert!(!redacted.contains("cdef"), "{redacted}");
        assert!(redacted.contains("Incorrect API key provided"));
        let plain = provider.redact("key sk-test-0123456789abcdef leaked");
        assert_eq!(plain, "key [redacted] leaked");
    }

    #[test]
    fn turns_alternate_and_the_bound_covers_every_byte() {
        let prompt = Prompt {
            system: "Be brief.".into(),
            turns: vec![
                (Speaker::User, "One".into()),
                (Speaker::Assistant, " ".into()),
                (Speaker::User, "Two".into()),
            ],
            max_tokens: 100,
        };
        let turns = prompt.alternating();
        assert_eq!(turns, vec![(Speaker::User, "One\n\nTwo".to_string())]);
        assert!(prompt.token_bound() >= 100 + 9 + 3 + 1 + 3);
        assert!(prompt.estimated_input_tokens() < prompt.token_bound());
    }
}
