//! Extractors: the authenticated caller, and JSON/path/query whose rejections become problems.

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tenantry_db::{Actor, RequestContext, TenantTx};
use uuid::Uuid;

use super::{AppState, REQUEST_ID};
use crate::error::{Error, FieldError};
use crate::identity::hash_token;

/// JSON body in, JSON body out; malformed input is a problem response, never a plain-text 4xx.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            // Well-formed JSON of the wrong shape: say which field.
            JsonRejection::JsonDataError(e) => {
                let text = e.body_text();
                let field = text
                    .split(": ")
                    .nth(1)
                    .filter(|path| !path.contains(' '))
                    .unwrap_or("body")
                    .to_string();
                Error::Validation(vec![FieldError {
                    field,
                    message: text,
                }])
            }
            other if other.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Error::PayloadTooLarge
            }
            other => Error::BadRequest(other.body_text()),
        }
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(pub T);

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        Error::BadRequest(rejection.body_text())
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct Query<T>(pub T);

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::BadRequest(rejection.body_text())
    }
}

/// An authenticated request: its bearer token (resolved to a user inside the transaction) and
/// what the audit trail records about it.
pub struct Caller {
    ctx: RequestContext,
}

impl Caller {
    /// Begins the request's tenant transaction, scoped to `org` when the route names one.
    pub async fn begin(&self, state: &AppState, org: Option<Uuid>) -> Result<TenantTx, Error> {
        let mut ctx = self.ctx.clone();
        ctx.org_id = org;
        Ok(TenantTx::begin(&state.db, &ctx).await?)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Error> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Error::Unauthenticated)?;
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(512).collect::<String>())
        };
        let ctx = RequestContext {
            actor: Actor::SessionTokenHash(hash_token(token)),
            org_id: None,
            ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
            user_agent: header(USER_AGENT),
            request_id: header(REQUEST_ID),
        };
        Ok(Self { ctx })
    }
}
