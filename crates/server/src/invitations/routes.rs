//! HTTP routes of invitations.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{store, Acceptance, Accepted, Invitation, IssuedInvitation, NewInvitation};
use crate::http::{
    AppState, Forbidden, Invalid, Json, NotFound, Path, PaymentRequired, Problem, Query,
};
use crate::kernel::access::Module;
use crate::kernel::error::Result;
use crate::kernel::input::Valid;
use crate::kernel::org_tx::{OrgTx, UserTx};
use crate::kernel::page::{Page, PageParams};

const MODULE: Module = Module::Orgs;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_invitations, invite))
        .routes(routes!(revoke_invitation))
        .routes(routes!(resend_invitation))
        .routes(routes!(accept_invitation))
        .layer(axum::Extension(MODULE))
}

/// Invite an email address with a role (admins; owners only by owners). The link is returned
/// here and queued in the outbox for email.
#[utoipa::path(post, path = "/v1/orgs/{org}/invitations", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = NewInvitation,
    responses(
        (status = 201, body = IssuedInvitation),
        Forbidden,
        NotFound,
        (status = 409, description = "already_invited", body = Problem, content_type = "application/problem+json"),
        Invalid,
    ))]
pub async fn invite(
    mut tx: OrgTx,
    State(state): State<AppState>,
    new: Valid<NewInvitation>,
) -> Result<(StatusCode, Json<IssuedInvitation>)> {
    let issued = store::invite(&mut tx, &new, &state.config.public_url).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// The organization's invitations (admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/invitations", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), PageParams),
    responses(
        (status = 200, body = Page<Invitation>),
        Forbidden,
        NotFound,
    ))]
pub async fn list_invitations(
    mut tx: OrgTx,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Invitation>>> {
    let list = store::list(&mut tx, &page).await?;
    tx.commit().await?;
    Ok(Json(list))
}

/// Send an open invitation again, with a new link (the old one stops working).
#[utoipa::path(post, path = "/v1/orgs/{org}/invitations/{invitation}/resend", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("invitation" = Uuid, Path, description = "Invitation id")),
    responses(
        (status = 200, body = IssuedInvitation),
        NotFound,
        (status = 409, description = "invitation_closed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resend_invitation(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Path((_org, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<IssuedInvitation>> {
    let issued = store::resend(&mut tx, id, &state.config.public_url).await?;
    tx.commit().await?;
    Ok(Json(issued))
}

/// Revoke an open invitation.
#[utoipa::path(delete, path = "/v1/orgs/{org}/invitations/{invitation}", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("invitation" = Uuid, Path, description = "Invitation id")),
    responses((status = 204, description = "Revoked"), NotFound))]
pub async fn revoke_invitation(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::revoke(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invitation as the signed-in user (whose email must be the invited one).
#[utoipa::path(post, path = "/v1/invitations/accept", tag = "organizations", security(("bearer" = [])),
    request_body = Acceptance,
    responses(
        (status = 200, body = Accepted),
        PaymentRequired,
        (status = 403, description = "sent to another email address", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown, used, revoked or expired", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn accept_invitation(
    mut tx: UserTx,
    Json(acceptance): Json<Acceptance>,
) -> Result<Json<Accepted>> {
    let accepted = store::accept(&mut tx, &acceptance.token).await?;
    tx.commit().await?;
    Ok(Json(accepted))
}
