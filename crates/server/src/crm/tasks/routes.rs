//! HTTP routes of tasks under `/v1/orgs/{org}/projects/{project}/tasks`, the board, and tasks by
//! assignee under `/v1/orgs/{org}/tasks`.

use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{store, Board, Move, NewTask, Task, TaskChanges, TaskStatus};
use crate::crm::comma_list;
use crate::crm::customers::store::Assignee;
use crate::http::{AppState, Forbidden, Invalid, Json, NotFound, Path, Query};
use crate::kernel::access::Module;
use crate::kernel::error::{Error, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Limit, Page, PageParams, SortCursor, SortedPage};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tasks, create_task))
        .routes(routes!(get_task, update_task, delete_task))
        .routes(routes!(move_task))
        .routes(routes!(board))
        .routes(routes!(assigned_tasks))
        .layer(axum::Extension(Module::Crm))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskListParams {
    /// Comma-separated statuses.
    pub status: Option<String>,
    /// Only the subtasks of this task.
    pub parent_task_id: Option<Uuid>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    pub after: Option<Uuid>,
}

/// A project's tasks, by id.
#[utoipa::path(get, path = "/v1/orgs/{org}/projects/{project}/tasks", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("project" = Uuid, Path, description = "Project id"), TaskListParams),
    responses((status = 200, body = Page<Task>), NotFound))]
pub async fn list_tasks(
    mut tx: OrgTx,
    Path((_org, project)): Path<(Uuid, Uuid)>,
    Query(params): Query<TaskListParams>,
) -> Result<Json<Page<Task>>> {
    let statuses: Vec<TaskStatus> = comma_list("status", params.status.as_deref())?;
    let page = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let tasks = store::list(&mut tx, project, &page, &statuses, params.parent_task_id).await?;
    tx.commit().await?;
    Ok(Json(tasks))
}

/// Add a task at the end of its column (members); the creator is recorded by the database.
#[utoipa::path(post, path = "/v1/orgs/{org}/projects/{project}/tasks", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("project" = Uuid, Path, description = "Project id")),
    request_body = NewTask,
    responses(
        (status = 201, body = Task),
        Forbidden,
        NotFound,
        Invalid,
    ))]
pub async fn create_task(
    mut tx: OrgTx,
    Path((_org, project)): Path<(Uuid, Uuid)>,
    new: Valid<NewTask>,
) -> Result<(StatusCode, Json<Task>)> {
    let task = store::create(&mut tx, project, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(task)))
}

/// One task.
#[utoipa::path(get, path = "/v1/orgs/{org}/projects/{project}/tasks/{task}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("project" = Uuid, Path, description = "Project id"), ("task" = Uuid, Path, description = "Task id")),
    responses((status = 200, body = Task), NotFound))]
pub async fn get_task(
    mut tx: OrgTx,
    Path((_org, project, task)): Path<(Uuid, Uuid, Uuid)>,
) -> Result<Json<Task>> {
    let found = store::get(&mut tx, project, task).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Change a task (members).
#[utoipa::path(patch, path = "/v1/orgs/{org}/projects/{project}/tasks/{task}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("project" = Uuid, Path, description = "Project id"), ("task" = Uuid, Path, description = "Task id")),
    request_body = TaskChanges,
    responses(
        (status = 200, body = Task),
        Forbidden,
        NotFound,
        Invalid,
    ))]
pub async fn update_task(
    mut tx: OrgTx,
    Path((_org, project, task)): Path<(Uuid, Uuid, Uuid)>,
    changes: Valid<TaskChanges>,
) -> Result<Json<Task>> {
    let updated = store::update(&mut tx, project, task, &changes).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Delete a task and its subtasks (admins).
#[utoipa::path(delete, path = "/v1/orgs/{org}/projects/{project}/tasks/{task}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("project" = Uuid, Path, description = "Project id"), ("task" = Uuid, Path, description = "Task id")),
    responses(
        (status = 204, description = "Deleted"),
        Forbidden,
        NotFound,
    ))]
pub async fn delete_task(
    mut tx: OrgTx,
    Path((_org, project, task)): Path<(Uuid, Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::delete(&mut tx, project, task).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move a card on the board (members): into a column, below or above another card.
#[utoipa::path(post, path = "/v1/orgs/{org}/projects/{project}/tasks/{task}/move", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("project" = Uuid, Path, description = "Project id"), ("task" = Uuid, Path, description = "Task id")),
    request_body = Move,
    responses(
        (status = 200, body = Task),
        Forbidden,
        NotFound,
        Invalid,
    ))]
pub async fn move_task(
    mut tx: OrgTx,
    Path((_org, project, task)): Path<(Uuid, Uuid, Uuid)>,
    to: Valid<Move>,
) -> Result<Json<Task>> {
    let moved = store::move_task(&mut tx, project, task, &to).await?;
    tx.commit().await?;
    Ok(Json(moved))
}

/// A project's board: every column in order with its cards in order.
#[utoipa::path(get, path = "/v1/orgs/{org}/projects/{project}/board", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("project" = Uuid, Path, description = "Project id")),
    responses((status = 200, body = Board), NotFound))]
pub async fn board(
    mut tx: OrgTx,
    Path((_org, project)): Path<(Uuid, Uuid)>,
) -> Result<Json<Board>> {
    let board = store::board(&mut tx, project).await?;
    tx.commit().await?;
    Ok(Json(board))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssignedParams {
    /// A member's user id, or `me` (the default).
    pub assigned_to: Option<String>,
    /// Comma-separated statuses (default: `todo,in_progress,review`).
    pub status: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
}

/// Tasks assigned to someone across the organization's projects, soonest due first.
#[utoipa::path(get, path = "/v1/orgs/{org}/tasks", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), AssignedParams),
    responses((status = 200, body = SortedPage<Task>), NotFound))]
pub async fn assigned_tasks(
    mut tx: OrgTx,
    Query(params): Query<AssignedParams>,
) -> Result<Json<SortedPage<Task>>> {
    let assignee = match params.assigned_to.as_deref().unwrap_or("me") {
        "me" => Assignee::Me,
        id => Assignee::User(
            id.parse()
                .map_err(|_| Error::BadRequest("assigned_to: a user id or `me`".into()))?,
        ),
    };
    let statuses: Vec<TaskStatus> = comma_list("status", params.status.as_deref())?;
    let after = params
        .after
        .as_deref()
        .map(|a| SortCursor::decode(a, "due"))
        .transpose()?;
    let page = store::assigned(
        &mut tx,
        assignee,
        &statuses,
        params.limit.unwrap_or(Limit::DEFAULT),
        after.as_ref(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(page))
}
