//! The AI assistant (migration 0045; issue 20): conversations of a member, optionally about a
//! project, customer or task of the organization, their messages in order, and the platform's
//! catalog of AI tools, each locked or not by the organization's plan. Replies from providers
//! come next; the tables already hold what they need (partial replies, tokens).

pub mod routes;
pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::kernel::input::{text, Checks, Validate};
use crate::text_enum;

pub use routes::routes;

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
