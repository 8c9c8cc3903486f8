//! HTTP routes of API keys under `/v1/orgs/{org}/api-keys` (admins only).

use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{store, ApiKey, CreatedApiKey, NewApiKey};
use crate::http::{AppState, Forbidden, Invalid, Json, NotFound, Path, Query};
use crate::kernel::access::Module;
use crate::kernel::error::Result;
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Page, PageParams};

const MODULE: Module = Module::Orgs;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .layer(axum::Extension(MODULE))
}

/// Create an API key for a service account; the secret is shown in this response only.
#[utoipa::path(post, path = "/v1/orgs/{org}/api-keys", tag = "api keys", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = NewApiKey,
    responses(
        (status = 201, body = CreatedApiKey),
        Forbidden,
        NotFound,
        Invalid,
    ))]
pub async fn create_key(
    mut tx: OrgTx,
    new: Valid<NewApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>)> {
    let created = store::create(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The organization's API keys (without secrets), revoked ones included.
#[utoipa::path(get, path = "/v1/orgs/{org}/api-keys", tag = "api keys", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), PageParams),
    responses(
        (status = 200, body = Page<ApiKey>),
        Forbidden,
        NotFound,
    ))]
pub async fn list_keys(
    mut tx: OrgTx,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<ApiKey>>> {
    let keys = store::list(&mut tx, &page).await?;
    tx.commit().await?;
    Ok(Json(keys))
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(delete, path = "/v1/orgs/{org}/api-keys/{key}", tag = "api keys", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("key" = Uuid, Path, description = "API key id")),
    responses(
        (status = 204, description = "Revoked"),
        Forbidden,
        NotFound,
    ))]
pub async fn revoke_key(
    mut tx: OrgTx,
    Path((_org, key)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::revoke(&mut tx, key).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
