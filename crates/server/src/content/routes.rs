//! HTTP routes of content under `/v1/orgs/{org}/content`, and the scheduled-publishing job.

use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::store::{self, Filter, Scheduled};
use super::{
    Content, ContentChanges, ContentStatus, ContentType, ContentVersion, NewContent, Preview,
    PreviewRequest,
};
use crate::http::{AppState, Forbidden, Invalid, Json, NotFound, Path, Query};
use crate::jobs::{JobError, JobSpec, Registry};
use crate::kernel::access::{require_role, Module, Role};
use crate::kernel::error::Result;
use crate::kernel::input::Valid;
use crate::kernel::org_tx::{OrgReadTx, OrgTx};
use crate::kernel::page::{Limit, Page, PageParams};

/// A page's largest body: 500,000 characters of Markdown even when every one is written as a
/// JSON escape of a surrogate pair (12 bytes), with room for the other fields. The service's
/// default limit is 1 MiB.
const BODY_LIMIT: usize = 8 * 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_content, create_content))
        .routes(routes!(get_content, update_content, delete_content))
        .routes(routes!(list_versions))
        .routes(routes!(restore_version))
        .routes(routes!(preview_content))
        .layer(axum::Extension(Module::Content))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .merge(super::public::routes())
}

/// Publishes a scheduled draft, acting for the member who scheduled it.
pub const PUBLISH: JobSpec = JobSpec {
    kind: "content.publish",
    max_attempts: 10,
};

pub fn register(registry: Registry) -> Registry {
    registry.register(PUBLISH, |run| async move {
        let Some(id) = run.job.payload["content_id"]
            .as_str()
            .and_then(|v| v.parse::<Uuid>().ok())
        else {
            return Err(JobError::Fatal(format!(
                "the payload names no content: {}",
                run.job.payload
            )));
        };
        let mut tx = run.org_tx().await?;
        let outcome = store::publish_scheduled(&mut tx, id).await?;
        tx.commit().await?;
        match outcome {
            Scheduled::NotAllowed => Err(JobError::Fatal(format!(
                "content {id} is due but the member who scheduled it may no longer publish it"
            ))),
            Scheduled::Published | Scheduled::Gone => {
                tracing::debug!(%id, ?outcome, "scheduled publishing");
                Ok(())
            }
        }
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContentListParams {
    /// Only this type.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<ContentType>)]
    pub content_type: Option<ContentType>,
    /// Only this status.
    pub status: Option<ContentStatus>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    pub after: Option<Uuid>,
}

/// The organization's content, drafts included (viewers and up).
#[utoipa::path(get, path = "/v1/orgs/{org}/content", tag = "content", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ContentListParams),
    responses((status = 200, body = Page<Content>), NotFound))]
pub async fn list_content(
    mut tx: OrgTx,
    Query(params): Query<ContentListParams>,
) -> Result<Json<Page<Content>>> {
    let filter = Filter {
        content_type: params.content_type,
        status: params.status,
    };
    let page = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let found = store::list(&mut tx, &filter, &page).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Markdown rendered as a published page's would be (the same safe HTML), for an editor's
/// preview; nothing is stored, so it is a read (still given while storage is over its limit).
/// Members and viewers of the organization.
#[utoipa::path(post, path = "/v1/orgs/{org}/content/preview", tag = "content", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = PreviewRequest,
    responses(
        (status = 200, body = Preview),
        NotFound,
        Invalid,
    ))]
pub async fn preview_content(
    OrgReadTx(mut tx): OrgReadTx,
    request: Valid<PreviewRequest>,
) -> Result<Json<Preview>> {
    require_role(&mut tx, Role::Viewer).await?;
    tx.commit().await?;
    Ok(Json(Preview {
        html: super::markdown::to_html(&request.content),
    }))
}

/// Write a page, post, document or template (members write drafts; editors may create it
/// published or scheduled).
#[utoipa::path(post, path = "/v1/orgs/{org}/content", tag = "content", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = NewContent,
    responses(
        (status = 201, body = Content),
        Forbidden,
        Invalid,
    ))]
pub async fn create_content(
    mut tx: OrgTx,
    new: Valid<NewContent>,
) -> Result<(StatusCode, Json<Content>)> {
    let created = store::create(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// One piece of content.
#[utoipa::path(get, path = "/v1/orgs/{org}/content/{content}", tag = "content", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("content" = Uuid, Path, description = "Content id")),
    responses((status = 200, body = Content), NotFound))]
pub async fn get_content(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<Content>> {
    let found = store::get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Edit content; `status` publishes, unpublishes (`draft`) or archives it, `publish_at`
/// schedules a draft (editors; members edit plain drafts only).
#[utoipa::path(patch, path = "/v1/orgs/{org}/content/{content}", tag = "content", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("content" = Uuid, Path, description = "Content id")),
    request_body = ContentChanges,
    responses(
        (status = 200, body = Content),
        Forbidden,
        NotFound,
        Invalid,
    ))]
pub async fn update_content(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
    changes: Valid<ContentChanges>,
) -> Result<Json<Content>> {
    let updated = store::update(&mut tx, id, &changes).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Delete content and its versions (members their drafts never published; editors anything).
#[utoipa::path(delete, path = "/v1/orgs/{org}/content/{content}", tag = "content", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("content" = Uuid, Path, description = "Content id")),
    responses(
        (status = 204, description = "Deleted"),
        Forbidden,
        NotFound,
    ))]
pub async fn delete_content(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::delete(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every published version of a page, newest first.
#[utoipa::path(get, path = "/v1/orgs/{org}/content/{content}/versions", tag = "content", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("content" = Uuid, Path, description = "Content id")),
    responses((status = 200, body = Vec<ContentVersion>), NotFound))]
pub async fn list_versions(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<Vec<ContentVersion>>> {
    let found = store::versions(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Roll a page back to a published version (editors): its title, type, text, excerpt and
/// metadata come back, the slug stays; if the page is published, that is its newest version.
#[utoipa::path(post, path = "/v1/orgs/{org}/content/{content}/versions/{version}/restore", tag = "content", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("content" = Uuid, Path, description = "Content id"),
           ("version" = i32, Path, description = "Version number")),
    responses(
        (status = 200, body = Content),
        Forbidden,
        NotFound,
    ))]
pub async fn restore_version(
    mut tx: OrgTx,
    Path((_org, id, version)): Path<(Uuid, Uuid, i32)>,
) -> Result<Json<Content>> {
    let restored = store::restore(&mut tx, id, version).await?;
    tx.commit().await?;
    Ok(Json(restored))
}
