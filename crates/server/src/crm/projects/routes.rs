//! HTTP routes of projects under `/v1/orgs/{org}/projects`.

use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{store, NewProject, Project, ProjectChanges, ProjectStatus};
use crate::crm::comma_list;
use crate::http::{AppState, Forbidden, Invalid, Json, NotFound, Path, Query};
use crate::kernel::access::Module;
use crate::kernel::error::Result;
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Limit, Page, PageParams};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, update_project, delete_project))
        .layer(axum::Extension(Module::Crm))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectListParams {
    /// Comma-separated statuses.
    pub status: Option<String>,
    /// Only this customer's projects.
    pub customer_id: Option<Uuid>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    pub after: Option<Uuid>,
}

/// The organization's projects, by id.
#[utoipa::path(get, path = "/v1/orgs/{org}/projects", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ProjectListParams),
    responses((status = 200, body = Page<Project>), NotFound))]
pub async fn list_projects(
    mut tx: OrgTx,
    Query(params): Query<ProjectListParams>,
) -> Result<Json<Page<Project>>> {
    let statuses: Vec<ProjectStatus> = comma_list("status", params.status.as_deref())?;
    let page = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let projects = store::list(&mut tx, &page, &statuses, params.customer_id).await?;
    tx.commit().await?;
    Ok(Json(projects))
}

/// Start a project (members).
#[utoipa::path(post, path = "/v1/orgs/{org}/projects", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = NewProject,
    responses(
        (status = 201, body = Project),
        Forbidden,
        Invalid,
    ))]
pub async fn create_project(
    mut tx: OrgTx,
    new: Valid<NewProject>,
) -> Result<(StatusCode, Json<Project>)> {
    let project = store::create(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(project)))
}

/// One project.
#[utoipa::path(get, path = "/v1/orgs/{org}/projects/{project}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("project" = Uuid, Path, description = "Project id")),
    responses((status = 200, body = Project), NotFound))]
pub async fn get_project(
    mut tx: OrgTx,
    Path((_org, project)): Path<(Uuid, Uuid)>,
) -> Result<Json<Project>> {
    let found = store::get(&mut tx, project).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Change a project (members).
#[utoipa::path(patch, path = "/v1/orgs/{org}/projects/{project}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("project" = Uuid, Path, description = "Project id")),
    request_body = ProjectChanges,
    responses(
        (status = 200, body = Project),
        Forbidden,
        NotFound,
        Invalid,
    ))]
pub async fn update_project(
    mut tx: OrgTx,
    Path((_org, project)): Path<(Uuid, Uuid)>,
    changes: Valid<ProjectChanges>,
) -> Result<Json<Project>> {
    let updated = store::update(&mut tx, project, &changes).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Delete a project and its tasks (admins).
#[utoipa::path(delete, path = "/v1/orgs/{org}/projects/{project}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("project" = Uuid, Path, description = "Project id")),
    responses(
        (status = 204, description = "Deleted"),
        Forbidden,
        NotFound,
    ))]
pub async fn delete_project(
    mut tx: OrgTx,
    Path((_org, project)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::delete(&mut tx, project).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
