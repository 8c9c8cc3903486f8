//! HTTP route of the CRM dashboard: `GET /v1/orgs/{org}/crm/dashboard`.

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{store, CrmDashboard};
use crate::http::{AppState, Json, NotFound};
use crate::kernel::access::Module;
use crate::kernel::error::Result;
use crate::kernel::org_tx::OrgTx;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_dashboard))
        .layer(axum::Extension(Module::Crm))
}

/// The CRM at a glance (viewers and up): customers by status and source, projects and tasks by
/// status, what is overdue, and each member's open tasks.
#[utoipa::path(get, path = "/v1/orgs/{org}/crm/dashboard", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses((status = 200, body = CrmDashboard), NotFound))]
pub async fn get_dashboard(mut tx: OrgTx) -> Result<Json<CrmDashboard>> {
    let dashboard = store::dashboard(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(dashboard))
}
