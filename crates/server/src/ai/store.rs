//! SQL of conversations, messages and the tool catalog.

use uuid::Uuid;

use super::{AiTool, Conversation, ConversationChanges, Message, NewConversation};
use crate::kernel::access::{require_role, Role};
use crate::kernel::error::{Error, Found, OnConstraint, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
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
