//! HTTP routes of the identity domain.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Profile, User, USER_COLUMNS};
use crate::error::{Error, Result};
use crate::http::{AppState, Caller, Json};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/me", get(me))
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub user: User,
    pub profile: Profile,
}

/// The signed-in user and their profile.
#[utoipa::path(get, path = "/v1/me", tag = "identity", security(("bearer" = [])), responses(
    (status = 200, body = Me),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>> {
    let mut tx = caller.begin(&state, None).await?;
    let user_id = tx.user_id().await?.ok_or(Error::Unauthenticated)?;
    let user: User = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(user_id)
        .fetch_one(tx.conn())
        .await?;
    let profile: Profile = sqlx::query_as(
        "SELECT avatar_url, timezone, language, preferences FROM profiles WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(Json(Me { user, profile }))
}
