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
pub const HISTORY_BYTES: i64 = 64 * 1024;

/// A user's message that starts a turn, and what the reply may cost beyond what the database
/// reads (see [`start_turn`]).
pub struct TurnRequest<'a> {
    pub conversation: Uuid,
    /// The tool of the catalog the turn uses.
    pub tool: &'a str,
    /// The id the stored message takes.
    pub message_id: Uuid,
    pub content: &'a str,
    /// The KPI a tool about a KPI explains.
    pub kpi: Option<Uuid>,
    /// The reply's token bound without the history, the tool's instructions and summaries: the
    /// fixed instructions, the new message and the output cap, with the format's tokens.
    pub fixed_tokens: i64,
    /// Tokens each turn of the history adds beyond its text's bytes.
    pub turn_tokens: i64,
    /// Tokens the tool's instructions add beyond their bytes (the words introducing them).
    pub instructions_tokens: i64,
    /// The most tokens a record's or a KPI's summary adds, its heading included.
    pub summary_tokens: i64,
}

/// What a turn starts from, read and written in one statement.
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
    /// The KPI the request names is one of the organization's, not deleted.
    pub kpi_found: bool,
    roles: Option<Vec<String>>,
    contents: Option<Vec<String>>,
    /// The tokens reserved, once the checks above passed.
    pub reserved: Option<i64>,
    pub reservation: Option<Uuid>,
    /// When the user's message was stored.
    pub stored_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl TurnStart {
    /// The latest turns, oldest first (at most [`HISTORY_TURNS`], [`HISTORY_BYTES`] of
    /// text): `(role, content)`.
    pub fn history(&mut self) -> Vec<(String, String)> {
        let roles = self.roles.take().unwrap_or_default();
        let contents = self.contents.take().unwrap_or_default();
        roles.into_iter().zip(contents).collect()
    }
}

/// The statement of [`start_turn`]. `$1` organization, `$2` conversation, `$3` tool, `$4` most
/// turns, `$5` most bytes of them, `$6` message id, `$7` content, `$8` KPI, `$9`–`$12` the
/// tokens of [`TurnRequest`]. The history's byte limit counts from the newest turn, over the
/// newest `$4` only (a long conversation is not read whole).
pub const START_TURN_SQL: &str = r"WITH start AS (
    SELECT c.id, c.user_id, c.title, c.context_type, c.context_id, c.ai_model, c.usage_tokens,
           c.is_archived, c.created_at, c.updated_at,
           coalesce(c.user_id = (SELECT app.user_id()), false) AS mine,
           (SELECT app.org_with_role('member')) IS NOT NULL AS member,
           t.configuration AS tool_configuration,
           EXISTS (SELECT FROM kpis k WHERE k.organization_id = $1 AND k.id = $8
                                         AND k.deleted_at IS NULL) AS kpi_found,
           h.roles, h.contents, coalesce(h.bytes, 0) AS history_bytes, coalesce(h.turns, 0) AS history_turns
      FROM ai_conversations c
      LEFT JOIN ai_tools t ON t.name = $3 AND t.is_active
      LEFT JOIN LATERAL (
           SELECT array_agg(l.role ORDER BY l.id) AS roles, array_agg(l.content ORDER BY l.id) AS contents,
                  sum(octet_length(l.content)) AS bytes, count(*) AS turns
             FROM (SELECT n.id, n.role, n.content,
                          sum(octet_length(n.content)) OVER (ORDER BY n.id DESC) AS newest_bytes
                     FROM (SELECT m.id, m.role, m.content FROM ai_messages m
                            WHERE m.organization_id = c.organization_id AND m.conversation_id = c.id
                            ORDER BY m.id DESC LIMIT $4) n) l
            WHERE l.newest_bytes <= $5) h ON true
     WHERE c.organization_id = $1 AND c.id = $2),
  ready AS (
    SELECT s.user_id,
           $9 + s.history_bytes + $10 * s.history_turns
           + CASE WHEN jsonb_typeof(s.tool_configuration -> 'instructions') = 'string'
                  THEN $11 + octet_length(s.tool_configuration ->> 'instructions') ELSE 0 END
           + CASE WHEN s.context_type <> 'general' AND s.context_id IS NOT NULL THEN $12 ELSE 0 END
           + CASE WHEN s.tool_configuration ->> 'context' = 'kpi' THEN $12 ELSE 0 END AS tokens
      FROM start s
     WHERE s.mine AND s.member AND s.tool_configuration IS NOT NULL
       AND (s.tool_configuration ->> 'context' IS DISTINCT FROM 'project' OR s.context_type = 'project')
       AND (s.tool_configuration ->> 'context' IS DISTINCT FROM 'kpi' OR s.kpi_found)),
  turn AS (
    INSERT INTO ai_messages (id, organization_id, conversation_id, user_id, role, content, status)
    SELECT $6, $1, $2, r.user_id, 'user', $7, 'complete' FROM ready r
    RETURNING created_at)
SELECT s.*, r.tokens AS reserved, turn.created_at AS stored_at,
       (SELECT app.start_ai_reply($2, $3, r.tokens) FROM turn) AS reservation
  FROM start s LEFT JOIN ready r ON true LEFT JOIN turn ON true,
       (SELECT set_config('synchronous_commit', 'off', true)) AS commit_unflushed";

/// Starts a turn in one statement: reads the conversation (404 when the caller cannot see it),
/// whether the caller may talk in it, the tool and the latest turns; and when the caller may
/// (a member, its author, an active tool whose context the conversation and request give),
/// stores the message, checks the tool's tier (402 `feature_unavailable`) and reserves the
/// most the reply can cost against the month's budget (402 `plan_limit`). The reservation is
/// [`Prompt::token_bound`](super::provider::Prompt::token_bound) of the prompt the turn will
/// send, computed here from the parts only the database knows before the prompt exists (the
/// history, the tool's instructions; a summary's most), so one round trip does it all.
///
/// The transaction's commit does not wait for its flush to disk (`synchronous_commit = off`
/// for it alone): the first piece of the reply need not wait for a disk. The turn becomes durable
/// with the settlement's commit at its end, which flushes everything written before it, and the
/// client learns that the turn was stored only then (`done`). Should the database crash in
/// between (under a second), the turn is lost together with its reply, whose settlement fails,
/// and the client is told so; its reservation is lost too, but its tokens are still counted by
/// that settlement, so the budget is exceeded by at most that one reply.
pub async fn start_turn(tx: &mut OrgTx, turn: &TurnRequest<'_>) -> Result<TurnStart> {
    let org = tx.org();
    sqlx::query_as(START_TURN_SQL)
        .bind(org)
        .bind(turn.conversation)
        .bind(turn.tool)
        .bind(HISTORY_TURNS)
        .bind(HISTORY_BYTES)
        .bind(turn.message_id)
        .bind(turn.content)
        .bind(turn.kpi)
        .bind(turn.fixed_tokens)
        .bind(turn.turn_tokens)
        .bind(turn.instructions_tokens)
        .bind(turn.summary_tokens)
        .fetch_optional(tx.conn())
        .await
        .map_err(|e| Error::forbidden_if_refused(e, "only its author talks in a conversation"))?
        .found()
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
