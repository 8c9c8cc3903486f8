//! HTTP routes of the identity domain.

use super::{store, Me, MeChanges};
use crate::error::Result;
use crate::http::{AppState, Caller, Json};
use axum::extract::State;
use axum::routing::get;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/me", get(me).patch(update_me))
}

/// The signed-in user and their profile.
#[utoipa::path(get, path = "/v1/me", tag = "identity", security(("bearer" = [])), responses(
    (status = 200, body = Me),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>> {
    let mut tx = caller.begin(&state, None).await?;
    let me = store::me(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(me))
}

/// Change the signed-in user's name and profile (time zone, language, picture, preferences).
#[utoipa::path(patch, path = "/v1/me", tag = "identity", security(("bearer" = [])), request_body = MeChanges,
    responses(
        (status = 200, body = Me),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    Json(changes): Json<MeChanges>,
) -> Result<Json<Me>> {
    let mut tx = caller.begin(&state, None).await?;
    let me = store::update_me(&mut tx, &changes).await?;
    tx.commit().await?;
    Ok(Json(me))
}
