//! SQL of conversations, messages and the tool catalog.

use uuid::Uuid;

use super::{
    AiTool, CatalogTool, Conversation, ConversationChanges, Message, NewConversation, ToolChange,
};
use crate::kernel::access::{require_role, Role};
use crate::kernel::error::{Error, Found, OnConstraint, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::{OrgTx, UserTx};
use crate::kernel::page::{Page, PageParams};

const COLUMNS: &str = r"id, user_id, title, context_type, context_id, ai_model, usage_tokens,
    is_archived, created_at, updated_at";

/// The title of a conversation started without one, until its first message names it.
pub const UNTITLED: &str = "New conversation";

pub async fn get(tx: &mut OrgTx, id: Uuid) -> Result<Conversation> {
    let org = tx.org();
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ai_conversations WHERE organization_id = $1 AND id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .found()
}

/// A page of the caller's own conversations, newest first ($1 organization, $2 user, $3
/// archived ones, $4 before this id, $5 rows).
pub const MINE_SQL: &str = r"SELECT id, user_id, title, context_type, context_id, ai_model, usage_tokens,
       is_archived, created_at, updated_at
  FROM ai_conversations
 WHERE organization_id = $1 AND user_id = $2 AND is_archived = $3 AND id < $4
 ORDER BY id DESC LIMIT $5";

/// The caller's conversations, newest first; archived ones apart.
pub async fn mine(tx: &mut OrgTx, page: &PageParams, archived: bool) -> Result<Page<Conversation>> {
    let org = tx.org();
    let user = tx.user_id().await?.ok_or(Error::Forbidden(
        "conversations are a person's, not an API key's",
    ))?;
    let rows: Vec<Conversation> = sqlx::query_as(MINE_SQL)
        .bind(org)
        .bind(user)
        .bind(archived)
        .bind(page.after.unwrap_or(Uuid::max()))
        .bind(page.fetch_limit())
        .fetch_all(tx.conn())
        .await?;
    Ok(Page::from_rows(rows, page, |c| c.id))
}

pub async fn create(tx: &mut OrgTx, new: &Valid<NewConversation>) -> Result<Conversation> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let user = tx.user_id().await?.ok_or(Error::Forbidden(
        "conversations are a person's, not an API key's",
    ))?;
    let id = Uuid::now_v7();
    sqlx::query(
        r"INSERT INTO ai_conversations (id, organization_id, user_id, title, context_type, context_id, ai_model)
          VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(org)
    .bind(user)
    .bind(new.title.as_deref().map_or(UNTITLED, str::trim))
    .bind(new.context_type.map_or("general", |c| c.as_str()))
    .bind(new.context_id)
    .bind(new.ai_model.map_or("openai_gpt4", |m| m.as_str()))
    .execute(tx.conn())
    .await
    .on_field(
        "ai_conversations_context",
        "context_id",
        "must be a record of context_type in this organization that you can read",
    )?;
    get(tx, id).await
}

/// Renames or (un)archives one of the caller's conversations.
pub async fn update(
    tx: &mut OrgTx,
    id: Uuid,
    changes: &Valid<ConversationChanges>,
) -> Result<Conversation> {
    let org = tx.org();
    let updated = sqlx::query(
        r"UPDATE ai_conversations
             SET title = coalesce(btrim($3), title), is_archived = coalesce($4, is_archived)
           WHERE organization_id = $1 AND id = $2",
    )
    .bind(org)
    .bind(id)
    .bind(changes.title.as_deref())
    .bind(changes.is_archived)
    .execute(tx.conn())
    .await?
    .rows_affected();
    if updated == 0 {
        // Another's (an admin may read it, not change it) or none at all.
        get(tx, id).await?;
        return Err(Error::Forbidden("only its author changes a conversation"));
    }
    get(tx, id).await
}

pub async fn delete(tx: &mut OrgTx, id: Uuid) -> Result<()> {
    let org = tx.org();
    let deleted =
        sqlx::query(r"DELETE FROM ai_conversations WHERE organization_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected();
    if deleted == 0 {
        get(tx, id).await?;
        return Err(Error::Forbidden("only its author deletes a conversation"));
    }
    Ok(())
}

/// A page of a conversation's messages, oldest first ($1 organization, $2 conversation, $3
/// after this id, $4 rows).
pub const MESSAGES_SQL: &str = r"SELECT id, role, content, status, model, input_tokens, output_tokens, created_at
  FROM ai_messages
 WHERE organization_id = $1 AND conversation_id = $2 AND id > $3
 ORDER BY id LIMIT $4";

pub async fn messages(tx: &mut OrgTx, id: Uuid, page: &PageParams) -> Result<Page<Message>> {
    let org = tx.org();
    get(tx, id).await?;
    let rows: Vec<Message> = sqlx::query_as(MESSAGES_SQL)
        .bind(org)
        .bind(id)
        .bind(page.after())
        .bind(page.fetch_limit())
        .fetch_all(tx.conn())
        .await?;
    Ok(Page::from_rows(rows, page, |m| m.id))
}

/// The active tools of the catalog, each locked or not by the organization's plan.
pub async fn tools(tx: &mut OrgTx) -> Result<Vec<AiTool>> {
    require_role(tx, Role::Viewer).await?;
    Ok(sqlx::query_as(
        r"SELECT t.id, t.name, t.description, t.tool_type, t.required_tier, t.configuration,
                 coalesce(app.tier_rank(p.tier) < app.tier_rank(t.required_tier), true) AS locked
            FROM ai_tools t, (SELECT app.bound_plan_tier() AS tier) p
           WHERE t.is_active
           ORDER BY t.name",
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Turns of a conversation sent to the model, at most this many (the latest).
pub const HISTORY_TURNS: i64 = 40;
/// And at most this many bytes of them.
const HISTORY_BYTES: usize = 64 * 1024;

/// What a turn starts from, read in one statement.
#[derive(sqlx::FromRow)]
pub struct TurnStart {
    #[sqlx(flatten)]
    pub conversation: Conversation,
    /// The caller wrote it (only its author talks in it).
    pub mine: bool,
    /// The caller is a member (viewers do not ask).
    pub member: bool,
    /// The active tool's configuration; `None` when no active tool has the name.
    pub tool_configuration: Option<serde_json::Value>,
    roles: Option<Vec<String>>,
    contents: Option<Vec<String>>,
}

impl TurnStart {
    /// The latest turns, oldest first, at most `HISTORY_BYTES` of them: `(role, content)`.
    pub fn history(&mut self) -> Vec<(String, String)> {
        let roles = self.roles.take().unwrap_or_default();
        let contents = self.contents.take().unwrap_or_default();
        let mut bytes = 0;
        let mut kept: Vec<(String, String)> = roles
            .into_iter()
            .zip(contents)
            .rev()
            .take_while(|(_, content)| {
                bytes += content.len();
                bytes <= HISTORY_BYTES
            })
            .collect();
        kept.reverse();
        kept
    }
}

/// The read a turn starts from (`$1` organization, `$2` conversation, `$3` tool, `$4` most turns).
pub const TURN_START_SQL: &str = r"SELECT c.id, c.user_id, c.title, c.context_type, c.context_id, c.ai_model, c.usage_tokens,
         c.is_archived, c.created_at, c.updated_at,
         coalesce(c.user_id = (SELECT app.user_id()), false) AS mine,
         (SELECT app.org_with_role('member')) IS NOT NULL AS member,
         t.configuration AS tool_configuration, h.roles, h.contents
    FROM ai_conversations c
    LEFT JOIN ai_tools t ON t.name = $3 AND t.is_active
    LEFT JOIN LATERAL (
         SELECT array_agg(l.role ORDER BY l.id) AS roles, array_agg(l.content ORDER BY l.id) AS contents
           FROM (SELECT m.id, m.role, m.content FROM ai_messages m
                  WHERE m.organization_id = c.organization_id AND m.conversation_id = c.id
                  ORDER BY m.id DESC LIMIT $4) l) h ON true
   WHERE c.organization_id = $1 AND c.id = $2";

/// The conversation `id` (404 when the caller cannot see it), whether the caller may talk in
/// it, the tool `tool` and the conversation's latest turns.
pub async fn turn_start(tx: &mut OrgTx, id: Uuid, tool: &str) -> Result<TurnStart> {
    let org = tx.org();
    sqlx::query_as(TURN_START_SQL)
        .bind(org)
        .bind(id)
        .bind(tool)
        .bind(HISTORY_TURNS)
        .fetch_optional(tx.conn())
        .await?
        .found()
}

/// A message of the caller to add to their conversation.
pub struct UserTurn<'a> {
    pub id: Uuid,
    pub conversation: Uuid,
    pub author: Uuid,
    pub content: &'a str,
}

/// Stores the caller's message and starts the reply with `tool`: its tier checked (402
/// `feature_unavailable`) and `tokens` reserved against the month's budget (402 `plan_limit`),
/// in one statement. Returns the stored message and the reservation.
///
/// The transaction's commit does not wait for its flush to disk (`synchronous_commit = off`
/// for it alone): the first piece of the reply need not wait for a disk. The turn becomes durable
/// with the settlement's commit at its end, which flushes everything written before it, and the
/// client learns that the turn was stored only then (`done`). Should the database crash in
/// between (under a second), the turn is lost together with its reply, whose settlement fails,
/// and the client is told so; its reservation is lost too, but its tokens are still counted by
/// that settlement, so the budget is exceeded by at most that one reply.
pub async fn start_turn(
    tx: &mut OrgTx,
    turn: &UserTurn<'_>,
    tool: &str,
    tokens: i64,
) -> Result<(Message, Uuid)> {
    #[derive(sqlx::FromRow)]
    struct Started {
        #[sqlx(flatten)]
        message: Message,
        reservation: Uuid,
    }
    let org = tx.org();
    let started: Started = sqlx::query_as(
        r"WITH turn AS (
               INSERT INTO ai_messages (id, organization_id, conversation_id, user_id, role, content, status)
               VALUES ($1, $2, $3, $4, 'user', $5, 'complete')
               RETURNING id, role, content, status, model, input_tokens, output_tokens, created_at)
          SELECT turn.*, app.start_ai_reply($3, $6, $7) AS reservation
            FROM turn, (SELECT set_config('synchronous_commit', 'off', true)) AS commit_unflushed",
    )
    .bind(turn.id)
    .bind(org)
    .bind(turn.conversation)
    .bind(turn.author)
    .bind(turn.content)
    .bind(tool)
    .bind(tokens)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| Error::forbidden_if_refused(e, "only its author talks in a conversation"))?;
    Ok((started.message, started.reservation))
}

/// One turn to add to a conversation.
pub struct NewTurn<'a> {
    pub id: Uuid,
    pub conversation: Uuid,
    pub role: &'a str,
    pub content: &'a str,
    pub status: &'a str,
    pub model: Option<&'a str>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
}

/// Adds a turn (the conversation's author only: the policy says so).
pub async fn add_message(tx: &mut OrgTx, turn: &NewTurn<'_>) -> Result<Message> {
    let org = tx.org();
    let user = tx.user_id().await?.ok_or(Error::Forbidden(
        "conversations are a person's, not an API key's",
    ))?;
    let tokens = |n: Option<i64>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    Ok(sqlx::query_as(
        r"INSERT INTO ai_messages (id, organization_id, conversation_id, user_id, role, content, status,
                                   model, input_tokens, output_tokens)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
          RETURNING id, role, content, status, model, input_tokens, output_tokens, created_at",
    )
    .bind(turn.id)
    .bind(org)
    .bind(turn.conversation)
    .bind(user)
    .bind(turn.role)
    .bind(turn.content)
    .bind(turn.status)
    .bind(turn.model)
    .bind(tokens(turn.input_tokens))
    .bind(tokens(turn.output_tokens))
    .fetch_one(tx.conn())
    .await?)
}

/// A title from a message: its first line, cut at a word before 60 characters.
pub fn title_of(message: &str) -> String {
    const MOST: usize = 60;
    let line = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(UNTITLED);
    if line.chars().count() <= MOST {
        return line.to_owned();
    }
    let cut: String = line.chars().take(MOST).collect();
    let at_word = cut
        .rfind(' ')
        .filter(|&i| i >= MOST / 2)
        .unwrap_or(cut.len());
    format!("{}…", cut[..at_word].trim_end())
}

/// A reply's settlement: the reservation it replaces, the tokens actually spent.
pub struct Settlement<'a> {
    pub reservation: Uuid,
    pub conversation: Uuid,
    pub model: &'a str,
    pub input: i64,
    pub output: i64,
    /// The title an untitled conversation takes (its first message's).
    pub title: Option<&'a str>,
}

/// Settles a reservation with the tokens actually spent (and names an untitled conversation).
pub async fn settle(tx: &mut OrgTx, settlement: &Settlement<'_>) -> Result<()> {
    sqlx::query("SELECT app.settle_ai_tokens($1, $2, $3, $4, $5, $6)")
        .bind(settlement.reservation)
        .bind(settlement.conversation)
        .bind(settlement.model)
        .bind(settlement.input)
        .bind(settlement.output)
        .bind(settlement.title)
        .execute(tx.conn())
        .await?;
    Ok(())
}

const STAFF_ONLY: &str = "platform staff only";

/// Refuses (403) callers who are not platform staff of `roles`.
async fn require_platform_role(tx: &mut UserTx, roles: &[&str]) -> Result<()> {
    sqlx::query("SELECT app.require_platform_role($1)")
        .bind(roles)
        .execute(tx.conn())
        .await
        .map_err(|e| Error::forbidden_if_refused(e, STAFF_ONLY))?;
    Ok(())
}

const CATALOG_COLUMNS: &str = r"id, name, description, tool_type, required_tier, configuration,
    is_active, created_at, updated_at";

/// The whole catalog, switched-off tools included (platform staff).
pub async fn catalog(tx: &mut UserTx) -> Result<Vec<CatalogTool>> {
    require_platform_role(tx, &["admin", "moderator", "employee"]).await?;
    Ok(sqlx::query_as(&format!(
        "SELECT {CATALOG_COLUMNS} FROM ai_tools ORDER BY name"
    ))
    .fetch_all(tx.conn())
    .await?)
}

/// Adds or replaces the tool `name` (platform admins: the function refuses anyone else).
pub async fn put_tool(
    tx: &mut UserTx,
    name: &str,
    tool: &Valid<ToolChange>,
) -> Result<CatalogTool> {
    let id: Uuid = sqlx::query_scalar("SELECT app.platform_put_ai_tool($1, $2, $3, $4, $5, $6)")
        .bind(name)
        .bind(tool.description.trim())
        .bind(tool.tool_type.as_str())
        .bind(tool.required_tier.as_str())
        .bind(sqlx::types::Json(
            tool.configuration.clone().unwrap_or_default(),
        ))
        .bind(tool.is_active.unwrap_or(true))
        .fetch_one(tx.conn())
        .await
        .map_err(|e| Error::forbidden_if_refused(e, STAFF_ONLY))?;
    Ok(sqlx::query_as(&format!(
        "SELECT {CATALOG_COLUMNS} FROM ai_tools WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(tx.conn())
    .await?)
}
