//! HTTP routes of the assistant under `/v1/orgs/{org}/conversations` and `/v1/orgs/{org}/ai-tools`.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::reply::{self, Relayed};
use super::{
    store, AiTool, CatalogTool, Conversation, ConversationChanges, Exchange, Message,
    NewConversation, NewMessage, ToolChange,
};
use crate::http::{
    AppState, Caller, Forbidden, Invalid, Json, NotFound, Path, PaymentRequired, Query,
};
use crate::kernel::access::Module;
use crate::kernel::error::{Error, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::{OrgTx, UserTx};
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
        .routes(routes!(list_catalog))
        .routes(routes!(put_tool))
        .layer(axum::Extension(Module::Ai))
}

/// The route that waits on a provider: under the long time limit (a reply asked for as JSON
/// arrives whole).
pub fn reply_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_message))
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

/// Whether the client asked for the reply as server-sent events.
fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

fn event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name))
}

/// Say something in your conversation; the assistant answers. With `Accept: text/event-stream`
/// the reply streams as server-sent events: `message` (yours, stored), `delta` pieces
/// (`{"text": …}`), then `done` with the reply as stored (`partial` when the provider failed
/// mid-reply, after an `error` event with a problem document). Otherwise the answer is the
/// exchange once the reply is complete. The reply's most tokens are reserved against the
/// organization's monthly `ai_tokens` before the provider is asked (402 when they would pass
/// it) and settled to what it spent.
#[utoipa::path(post, path = "/v1/orgs/{org}/conversations/{conversation}/messages", tag = "ai", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("conversation" = Uuid, Path, description = "Conversation id")),
    request_body = NewMessage,
    responses(
        (status = 201, body = Exchange, description = "The message and its reply (JSON)"),
        (status = 200, content_type = "text/event-stream", body = String, description = "The reply, streamed"),
        PaymentRequired, Forbidden, NotFound, Invalid,
        (status = 502, body = crate::http::Problem, content_type = "application/problem+json", description = "`provider_failed`: the provider refused or could not be reached; nothing was spent"),
        (status = 503, body = crate::http::Problem, content_type = "application/problem+json", description = "`not_configured`: no provider serves this conversation's model")))]
pub async fn post_message(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(Uuid, Uuid)>>,
    headers: HeaderMap,
    new: Result<Valid<NewMessage>>,
) -> Result<Response> {
    // The credential first: a bad one is 401 whatever else is wrong with the request.
    let (org, id) = match path {
        Ok(Path(ids)) => ids,
        Err(e) => {
            caller.begin(&state, None).await?;
            return Err(e);
        }
    };
    let new = match new {
        Ok(new) => new,
        Err(e) => {
            caller.begin(&state, Some(org)).await?;
            return Err(e);
        }
    };
    let (prepared, tx) = reply::prepare(&state, &caller, org, id, &new).await?;
    let stream = reply::open(&state, &caller, &prepared, tx).await?;
    let message = prepared.message.clone();
    let (sender, mut receiver) = mpsc::channel(64);
    tokio::spawn(reply::relay(
        state.clone(),
        caller,
        prepared,
        stream,
        sender,
    ));
    if wants_events(&headers) {
        let first = event("message", &message);
        let rest = futures_util::stream::unfold(receiver, |mut receiver| async move {
            let relayed = receiver.recv().await?;
            let next = match relayed {
                Relayed::Delta(text) => event("delta", &serde_json::json!({ "text": text })),
                Relayed::Failed(detail) => event("error", &Error::Provider(detail).problem()),
                Relayed::Done(reply) => event("done", &reply),
                Relayed::Lost(e) => event("error", &e.problem()),
            };
            Some((Ok::<_, Infallible>(next), receiver))
        });
        let events = futures_util::stream::once(async move { Ok(first) }).chain(rest);
        let mut response = Sse::new(events)
            .keep_alive(KeepAlive::default())
            .into_response();
        // Reverse proxies (nginx) would otherwise hold the pieces back until the reply ends.
        response.headers_mut().insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
        return Ok(response);
    }
    let mut error = None;
    while let Some(relayed) = receiver.recv().await {
        match relayed {
            Relayed::Delta(_) => {}
            Relayed::Failed(detail) => error = Some(detail),
            Relayed::Done(reply) => {
                let exchange = Exchange {
                    message,
                    reply,
                    error,
                };
                return Ok((StatusCode::CREATED, Json(exchange)).into_response());
            }
            Relayed::Lost(e) => return Err(e),
        }
    }
    Err(Error::Internal("a reply ended without an outcome".into()))
}

/// The platform's whole AI tool catalog, switched-off tools included (platform staff).
#[utoipa::path(get, path = "/v1/platform/ai-tools", tag = "platform", security(("bearer" = [])),
    responses((status = 200, body = Vec<CatalogTool>), Forbidden))]
pub async fn list_catalog(mut tx: UserTx) -> Result<Json<Vec<CatalogTool>>> {
    let found = store::catalog(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Add the tool `name` to the catalog, or replace it (platform admins). A tool is never
/// deleted: switch it off with `is_active: false`.
#[utoipa::path(put, path = "/v1/platform/ai-tools/{name}", tag = "platform", security(("bearer" = [])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,62}$", description = "The tool's name: a lowercase identifier")),
    request_body = ToolChange,
    responses((status = 200, body = CatalogTool), Forbidden, Invalid))]
pub async fn put_tool(
    mut tx: UserTx,
    Path(name): Path<String>,
    tool: Valid<ToolChange>,
) -> Result<Json<CatalogTool>> {
    if crate::kernel::input::slug_key(63)(&name).is_err() {
        return Err(Error::invalid(
            "name",
            "a lowercase identifier (a-z, 0-9, _) of at most 63 characters",
        ));
    }
    let saved = store::put_tool(&mut tx, &name, &tool).await?;
    tx.commit().await?;
    Ok(Json(saved))
}
