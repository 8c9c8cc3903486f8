//! HTTP route of the activity feed.
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{store, Event, EventFilter};
use crate::http::{AppState, Forbidden, Json, NotFound, Query};
use crate::kernel::access::Module;
use crate::kernel::error::Result;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::Page;

const MODULE: Module = Module::Orgs;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(activity))
        .layer(axum::Extension(MODULE))
}

/// The organization's audit trail, newest first, with filters (admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/activity", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), EventFilter),
    responses(
        (status = 200, body = Page<Event>),
        Forbidden,
        NotFound,
    ))]
pub async fn activity(
    mut tx: OrgTx,
    Query(filter): Query<EventFilter>,
) -> Result<Json<Page<Event>>> {
    let events = store::list(&mut tx, &filter).await?;
    tx.commit().await?;
    Ok(Json(events))
}
