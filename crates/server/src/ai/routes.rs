//! HTTP routes of the assistant under `/v1/orgs/{org}/conversations` and `/v1/orgs/{org}/ai-tools`.

use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{store, AiTool, Conversation, ConversationChanges, Message, NewConversation};
use crate::http::{AppState, Forbidden, Invalid, Json, NotFound, Path, Query};
use crate::kernel::access::Module;
use crate::kernel::error::Result;
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Limit, Page, PageParams};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations, create_conversation))
        .routes(routes!(
            get_conversation,
            update_conversation,
            delete_conversation
        ))
        .routes(routes!(list_messages))
        .routes(routes!(list_tools))
        .layer(axum::Extension(Module::Ai))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationListParams {
    /// Archived ones instead (default false).
    pub archived: Option<bool>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    /// The `next_cursor` of the previous page.
    pub after: Option<Uuid>,
}

/// My conversations in this organization, newest first.
#[utoipa::path(get, path = "/v1/orgs/{org}/conversations", tag = "ai", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ConversationListParams),
    responses((status = 200, body = Page<Conversation>), Forbidden, NotFound))]
pub async fn list_conversations(
    mut tx: OrgTx,
    Query(params): Query<ConversationListParams>,
) -> Result<Json<Page<Conversation>>> {
    let page = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let found = store::mine(&mut tx, &page, params.archived.unwrap_or(false)).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Start a conversation (members), optionally about a project, customer or task of this
/// organization that you can read.
#[utoipa::path(post, path = "/v1/orgs/{org}/conversations", tag = "ai", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = NewConversation,
    responses((status = 201, body = Conversation), Forbidden, NotFound, Invalid))]
pub async fn create_conversation(
    mut tx: OrgTx,
    new: Valid<NewConversation>,
) -> Result<(StatusCode, Json<Conversation>)> {
    let created = store::create(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// One conversation: its author's (or its organization's admins', where the owner allows it).
#[utoipa::path(get, path = "/v1/orgs/{org}/conversations/{conversation}", tag = "ai", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("conversation" = Uuid, Path, description = "Conversation id")),
    responses((status = 200, body = Conversation), NotFound))]
pub async fn get_conversation(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<Conversation>> {
    let found = store::get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Rename or (un)archive a conversation (its author).
#[utoipa::path(patch, path = "/v1/orgs/{org}/conversations/{conversation}", tag = "ai", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("conversation" = Uuid, Path, description = "Conversation id")),
    request_body = ConversationChanges,
    responses((status = 200, body = Conversation), Forbidden, NotFound, Invalid))]
pub async fn update_conversation(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
    changes: Valid<ConversationChanges>,
) -> Result<Json<Conversation>> {
    let updated = store::update(&mut tx, id, &changes).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Delete a conversation and its messages (its author).
#[utoipa::path(delete, path = "/v1/orgs/{org}/conversations/{conversation}", tag = "ai", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("conversation" = Uuid, Path, description = "Conversation id")),
    responses((status = 204, description = "Deleted"), Forbidden, NotFound))]
pub async fn delete_conversation(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::delete(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A conversation's messages, oldest first.
#[utoipa::path(get, path = "/v1/orgs/{org}/conversations/{conversation}/messages", tag = "ai", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("conversation" = Uuid, Path, description = "Conversation id"), PageParams),
    responses((status = 200, body = Page<Message>), NotFound))]
pub async fn list_messages(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Message>>> {
    let found = store::messages(&mut tx, id, &page).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// The AI tools, each `locked` when the organization's plan is below its tier (using a locked
/// tool is 402 `feature_unavailable`).
#[utoipa::path(get, path = "/v1/orgs/{org}/ai-tools", tag = "ai", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses((status = 200, body = Vec<AiTool>), NotFound))]
pub async fn list_tools(mut tx: OrgTx) -> Result<Json<Vec<AiTool>>> {
    let found = store::tools(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(found))
}
