//! The AI assistant (migration 0045; issue 20): conversations of a member, optionally about a
//! project, customer or task of the organization, their messages in order, and the platform's
//! catalog of AI tools, each locked or not by the organization's plan; replies from OpenAI's or
//! Anthropic's API streamed to the client, their tokens reserved against the monthly budget
//! before the provider is asked and settled after (`reply`).

pub mod context;
pub mod provider;
pub mod reply;
pub mod routes;
pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::kernel::input::{text, Checks, Validate};
use crate::text_enum;

pub use routes::{reply_routes, routes};

text_enum! {
    /// What a conversation is about.
    pub enum ContextType {
        General = "general", Project = "project", Customer = "customer", Task = "task",
    }
}

text_enum! {
    /// The model family a conversation talks to.
    pub enum AiModel { OpenaiGpt4 = "openai_gpt4", ClaudeSonnet = "claude_sonnet", Gemini = "gemini" }
}

/// A conversation (its author's, or, where the organization allows it, shown to its admins).
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Conversation {
    pub id: Uuid,
    /// The member who started it.
    pub user_id: Uuid,
    pub title: String,
    #[sqlx(try_from = "String")]
    pub context_type: ContextType,
    /// The project, customer or task it is about (null for `general`).
    pub context_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub ai_model: AiModel,
    /// Input and output tokens of its replies.
    pub usage_tokens: i64,
    pub is_archived: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new conversation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    /// Default: taken from the first message.
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// Default `general`; otherwise `context_id` names a record of this organization you can read.
    pub context_type: Option<ContextType>,
    pub context_id: Option<Uuid>,
    /// Default `openai_gpt4`.
    pub ai_model: Option<AiModel>,
}

impl Validate for NewConversation {
    fn check(&self, checks: &mut Checks) {
        checks.field("title", self.title.as_deref(), text(1, 200));
        let general = matches!(self.context_type, None | Some(ContextType::General));
        if general != self.context_id.is_none() {
            checks.field("context_id", Some(()), |()| {
                Err("names the project, customer or task of context_type (and only then)".into())
            });
        }
    }
}

/// Changes to a conversation (its author).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationChanges {
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    pub is_archived: Option<bool>,
}

impl Validate for ConversationChanges {
    fn check(&self, checks: &mut Checks) {
        checks.field("title", self.title.as_deref(), text(1, 200));
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Message {
    pub id: Uuid,
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    /// `complete`, or `partial` for a reply cut off.
    pub status: String,
    pub model: Option<String>,
    pub input_tokens: Option<i32>,
    pub output_tokens: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// A tool of the platform's catalog, as an organization sees it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct AiTool {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// `chatbot`, `analysis`, `automation` or `integration`.
    pub tool_type: String,
    /// `basic`, `pro` or `enterprise`.
    pub required_tier: String,
    #[schema(value_type = Object)]
    pub configuration: serde_json::Value,
    /// True when the organization's plan is below `required_tier`: using it is 402.
    pub locked: bool,
}

/// Something said in a conversation, for the assistant to answer.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    #[schema(min_length = 1, max_length = 20000)]
    pub content: String,
    /// A tool of the catalog (default `assistant`, plain conversation): `project_status` in a
    /// conversation about a project; `kpi_trend` with `kpi_id`. A tool above the plan's tier
    /// is 402 `feature_unavailable`.
    #[schema(min_length = 1, max_length = 63)]
    pub tool: Option<String>,
    /// The KPI `kpi_trend` explains.
    pub kpi_id: Option<Uuid>,
    /// The most output tokens of the reply (default and most: the server's cap, 1024 unless
    /// configured). The budget reserves them before the provider is asked.
    #[schema(minimum = 1, maximum = 100000)]
    pub max_tokens: Option<u32>,
}

impl Validate for NewMessage {
    fn check(&self, checks: &mut Checks) {
        checks.field("content", Some(self.content.as_str()), text(1, 20000));
        checks.field("tool", self.tool.as_deref(), text(1, 63));
        checks.field("max_tokens", self.max_tokens, |n| {
            if (1..=100_000).contains(&n) {
                Ok(())
            } else {
                Err("must be between 1 and 100000".into())
            }
        });
    }
}

/// A message and its reply (`Accept: application/json`; with `text/event-stream` they stream).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Exchange {
    /// The message, as stored.
    pub message: Message,
    /// The reply, as stored: `partial` when the provider failed mid-reply.
    pub reply: Message,
    /// Why the reply is partial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A tool of the platform's catalog as platform staff manage it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct CatalogTool {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub tool_type: String,
    pub required_tier: String,
    #[schema(value_type = ToolConfiguration)]
    pub configuration: serde_json::Value,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

text_enum! {
    /// What kind of tool it is.
    pub enum ToolType { Chatbot = "chatbot", Analysis = "analysis", Automation = "automation", Integration = "integration" }
}

text_enum! {
    /// The lowest plan tier that may use a tool.
    pub enum ToolTier { Basic = "basic", Pro = "pro", Enterprise = "enterprise" }
}

text_enum! {
    /// What a tool needs: a conversation about a project, or a `kpi_id` with the message.
    pub enum ToolContext { Project = "project", Kpi = "kpi" }
}

/// How a tool works.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolConfiguration {
    /// `project`: used in a conversation about a project (its summary is sent); `kpi`: with a
    /// `kpi_id` (the KPI's weekly values are sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<ToolContext>,
    /// What the model is told to do.
    #[schema(min_length = 1, max_length = 4000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// A tool as a platform admin puts it (all of it: a PUT replaces).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolChange {
    #[schema(max_length = 2000)]
    pub description: String,
    pub tool_type: ToolType,
    pub required_tier: ToolTier,
    /// Default `{}`.
    pub configuration: Option<ToolConfiguration>,
    /// Default true.
    pub is_active: Option<bool>,
}

impl Validate for ToolChange {
    fn check(&self, checks: &mut Checks) {
        checks.field(
            "description",
            Some(self.description.as_str()),
            text(0, 2000),
        );
        checks.field(
            "configuration.instructions",
            self.configuration
                .as_ref()
                .and_then(|c| c.instructions.as_deref()),
            text(1, 4000),
        );
    }
}
