//! Settings of the assistant's AI providers (`tenantry serve`). A provider without a key is not
//! used: conversations with its model family answer 503 `not_configured`.

use tenantry_server::ai::provider::{AiConfig, Provider};

#[derive(clap::Args)]
pub struct AiOptions {
    /// OpenAI's API key (conversations with `ai_model` `openai_gpt4`).
    #[arg(long, env = "TENANTRY_OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    /// OpenAI's API base, or any server speaking its Chat Completions API.
    #[arg(
        long,
        env = "TENANTRY_OPENAI_BASE_URL",
        default_value = "https://api.openai.com/v1"
    )]
    pub openai_base_url: String,
    #[arg(long, env = "TENANTRY_OPENAI_MODEL", default_value = "gpt-4o")]
    pub openai_model: String,
    /// Anthropic's API key (`claude_sonnet`).
    #[arg(long, env = "TENANTRY_ANTHROPIC_API_KEY", hide_env_values = true)]
    pub anthropic_api_key: Option<String>,
    #[arg(
        long,
        env = "TENANTRY_ANTHROPIC_BASE_URL",
        default_value = "https://api.anthropic.com/v1"
    )]
    pub anthropic_base_url: String,
    #[arg(
        long,
        env = "TENANTRY_ANTHROPIC_MODEL",
        default_value = "claude-sonnet-4-5"
    )]
    pub anthropic_model: String,
    /// Google's Gemini API key (`gemini`, through Gemini's OpenAI-compatible endpoint).
    #[arg(long, env = "TENANTRY_GEMINI_API_KEY", hide_env_values = true)]
    pub gemini_api_key: Option<String>,
    #[arg(
        long,
        env = "TENANTRY_GEMINI_BASE_URL",
        default_value = "https://generativelanguage.googleapis.com/v1beta/openai"
    )]
    pub gemini_base_url: String,
    #[arg(
        long,
        env = "TENANTRY_GEMINI_MODEL",
        default_value = "gemini-2.5-flash"
    )]
    pub gemini_model: String,
    /// The most output tokens of one reply (a request may ask for fewer).
    #[arg(long, env = "TENANTRY_AI_MAX_OUTPUT_TOKENS", default_value_t = 1024)]
    pub ai_max_output_tokens: u32,
    /// Seconds a provider may stay silent before a reply is given up as failed.
    #[arg(long, env = "TENANTRY_AI_IDLE_TIMEOUT", default_value_t = 60)]
    pub ai_idle_timeout: u64,
}

impl AiOptions {
    pub fn config(&self) -> AiConfig {
        let with = |mut provider: Provider, base_url: &str, model: &str| {
            provider.base_url = base_url.to_owned();
            provider.model = model.to_owned();
            provider
        };
        AiConfig {
            openai: self.openai_api_key.clone().map(|key| {
                with(
                    Provider::openai(key),
                    &self.openai_base_url,
                    &self.openai_model,
                )
            }),
            anthropic: self.anthropic_api_key.clone().map(|key| {
                with(
                    Provider::anthropic(key),
                    &self.anthropic_base_url,
                    &self.anthropic_model,
                )
            }),
            gemini: self.gemini_api_key.clone().map(|key| {
                with(
                    Provider::gemini(key),
                    &self.gemini_base_url,
                    &self.gemini_model,
                )
            }),
            max_output_tokens: self.ai_max_output_tokens.max(1),
            idle_timeout: std::time::Duration::from_secs(self.ai_idle_timeout.max(1)),
        }
    }
}
