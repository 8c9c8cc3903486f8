//! Problem responses (RFC 9457): the one mapping of [`Error`] to a status, a stable code and a
//! body. Database errors become client errors only where the database says the input was wrong.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::kernel::error::{Error, FieldError};

/// The body of every error response (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:tenantry:problem:{code}`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code (see docs/API.md).
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// With `stale_version`: the version the resource is at now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i32>,
    /// With `slot_taken`: the appointment the booking would overlap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicting_id: Option<uuid::Uuid>,
    /// With `plan_limit`: the entitlement (`seats`, `kpis`, …), its limit in the plan in force,
    /// and the usage before the refused write. With `feature_unavailable`: the feature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entitlement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<i64>,
    /// With `feature_unavailable`: the plan in force, and the tier needed when a tier is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_tier: Option<String>,
    /// With `plan_limit` on `ai_tokens`: the most tokens the refused reply could have needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<i64>,
}

/// The problem answers operations document, declared once: `responses((status = 200, body = Kpi),
/// Forbidden, NotFound, Invalid)`.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 401,
    description = "No valid credential",
    content_type = "application/problem+json"
)]
pub struct Unauthorized(pub Problem);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 403,
    description = "The caller's role may not do this",
    content_type = "application/problem+json"
)]
pub struct Forbidden(pub Problem);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 404,
    description = "Not there, or not the caller's to see",
    content_type = "application/problem+json"
)]
pub struct NotFound(pub Problem);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 402,
    description = "`plan_limit`: the plan in force does not allow this (`entitlement`, `limit`, `used`); `feature_unavailable`: it lacks the feature (`entitlement`, `plan`, `required_tier`)",
    content_type = "application/problem+json"
)]
pub struct PaymentRequired(pub Problem);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 409,
    description = "Conflicts with the current state",
    content_type = "application/problem+json"
)]
pub struct Conflict(pub Problem);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 413,
    description = "The body is too large",
    content_type = "application/problem+json"
)]
pub struct TooLarge(pub Problem);

#[derive(utoipa::IntoResponses)]
#[response(
    status = 422,
    description = "Invalid input; `errors` names every field",
    content_type = "application/problem+json"
)]
pub struct Invalid(pub Problem);

impl Error {
    /// Status, stable code and detail shown to the client. Database errors become client errors
    /// only where the database says the input was wrong; anything else is a 500 without details.
    fn parts(&self) -> (StatusCode, &'static str, String, Vec<FieldError>) {
        match self {
            Error::BadRequest(detail) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                detail.clone(),
                vec![],
            ),
            Error::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this endpoint accepts".into(),
                vec![],
            ),
            Error::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "the input is not valid; see errors".into(),
                errors.clone(),
            ),
            Error::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "a valid bearer token is required".into(),
                vec![],
            ),
            Error::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the email or password is wrong".into(),
                vec![],
            ),
            Error::RateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many failed attempts; retry in {retry_after} seconds"),
                vec![],
            ),
            Error::InvalidToken(reason) => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                format!("the token is not valid: {reason}"),
                vec![],
            ),
            Error::Upstream(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                "the identity provider could not be reached or answered wrongly".into(),
                vec![],
            ),
            Error::Provider(detail) => (
                StatusCode::BAD_GATEWAY,
                "provider_failed",
                detail.clone(),
                vec![],
            ),
            Error::CsrfFailed => (
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "requests authenticated by cookie must send the X-CSRF-Token header from sign-in"
                    .into(),
                vec![],
            ),
            Error::Forbidden(detail) => {
                (StatusCode::FORBIDDEN, "forbidden", (*detail).into(), vec![])
            }
            Error::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such resource".into(),
                vec![],
            ),
            Error::Conflict { code, detail } => {
                (StatusCode::CONFLICT, code, detail.clone(), vec![])
            }
            Error::SlotTaken { .. } => (
                StatusCode::CONFLICT,
                "slot_taken",
                "the member already has a live appointment overlapping that time; nothing was changed"
                    .into(),
                vec![],
            ),
            Error::StaleVersion { current } => (
                StatusCode::CONFLICT,
                "stale_version",
                format!(
                    "the entry changed since you read it: it is at version {current}; nothing was changed"
                ),
                vec![],
            ),
            Error::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is not reachable; try again".into(),
                vec![],
            ),
            Error::NotConfigured(what) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                format!("the server is not configured for this: {what}"),
                vec![],
            ),
            Error::Busy { retry_after } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("too many requests are being handled; retry in {retry_after} seconds"),
                vec![],
            ),
            Error::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the request took longer than the server allows; nothing was changed".into(),
                vec![],
            ),
            Error::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "an internal error occurred".into(),
                vec![],
            ),
            Error::Database(e) => database_parts(e),
        }
    }
}

fn unavailable() -> (StatusCode, &'static str, String, Vec<FieldError>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the database is busy or not reachable; try again".into(),
        vec![],
    )
}

fn database_parts(e: &sqlx::Error) -> (StatusCode, &'static str, String, Vec<FieldError>) {
    let internal = (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "an internal error occurred".to_string(),
        vec![],
    );
    match e {
        // Also a connection the server ended mid-request (57P01 when PostgreSQL goes down): the
        // outage, not a bug; the transaction did not commit.
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => unavailable(),
        e if tenantry_db::connection_lost(e) => unavailable(),
        sqlx::Error::Database(db) => {
            let constraint = db.constraint().unwrap_or_default();
            match db.code().as_deref().unwrap_or_default() {
                // A row-level security check refused the write: to the caller it does not exist.
                "42501" if db.message().contains("row-level security") => (
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such resource".into(),
                    vec![],
                ),
                // A plan limit (app.count_usage): what, the limit and the usage are in the body.
                crate::kernel::error::PLAN_LIMIT_SQLSTATE => (
                    StatusCode::PAYMENT_REQUIRED,
                    "plan_limit",
                    format!("{}; upgrade the plan to go further", db.message()),
                    vec![],
                ),
                // A feature the plan lacks (app.require_feature, app.require_tier).
                crate::kernel::error::FEATURE_UNAVAILABLE_SQLSTATE => (
                    StatusCode::PAYMENT_REQUIRED,
                    "feature_unavailable",
                    format!("{}; upgrade the plan to use it", db.message()),
                    vec![],
                ),
                // A slice maps its own named constraints where it writes (OnConstraint).
                "23505" => (
                    StatusCode::CONFLICT,
                    "conflict",
                    "this conflicts with an existing resource".into(),
                    vec![],
                ),
                "23514" | "23502" | "22001" | "22023" | "22P02" | "22007" | "22008" => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    "the input is not valid; see errors".into(),
                    vec![FieldError::new(
                        // A NULL where none is allowed names its column.
                        db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                            .and_then(|pg| pg.column())
                            .unwrap_or_else(|| {
                                field_of_constraint(constraint, db.table(), db.message())
                            }),
                        db.message().to_string(),
                    )],
                ),
                "23503" => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_reference",
                    "a referenced resource does not exist in this organization".into(),
                    vec![],
                ),
                // statement_timeout: the statement was cancelled and its transaction rolled back.
                "57014" => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the request took longer than the server allows; nothing was changed".into(),
                    vec![],
                ),
                "40001" | "40P01" | "55P03" => (
                    StatusCode::CONFLICT,
                    "retry",
                    "a concurrent change interfered; retry the request".into(),
                    vec![],
                ),
                _ => internal,
            }
        }
        _ => internal,
    }
}

/// `profiles_timezone_check` -> `timezone`; falls back to the constraint name.
fn field_of_constraint<'a>(constraint: &'a str, table: Option<&str>, message: &'a str) -> &'a str {
    if constraint.is_empty() {
        if message.contains("time zone") {
            return "timezone";
        }
        return "input";
    }
    let trimmed = constraint.strip_suffix("_check").unwrap_or(constraint);
    table
        .and_then(|t| trimmed.strip_prefix(t))
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(trimmed)
}

impl Error {
    /// The problem document answering this error (logged as it deserves).
    pub fn problem(&self) -> Problem {
        let (status, code, detail, errors) = self.parts();
        // A bug is an error; an outage is worth a warning; a full hashing queue is load being
        // shed as designed (a burst would flood the log), visible at debug level.
        match (status, self) {
            (_, Error::Busy { .. }) => tracing::debug!(error = %self, "request shed"),
            (StatusCode::INTERNAL_SERVER_ERROR, _) => {
                tracing::error!(error = %self, ?self, "request failed")
            }
            _ if status.is_server_error() => tracing::warn!(error = %self, "request failed"),
            _ => {}
        }
        let refusal = self.plan_refusal().unwrap_or_default();
        let problem = Problem {
            type_uri: format!("urn:tenantry:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail,
            code: code.into(),
            errors,
            current_version: match self {
                Error::StaleVersion { current } => Some(*current),
                _ => None,
            },
            conflicting_id: match self {
                Error::SlotTaken { conflicting } => *conflicting,
                _ => None,
            },
            entitlement: Some(refusal.entitlement).filter(|e| !e.is_empty()),
            limit: refusal.limit,
            used: refusal.used,
            plan: refusal.plan,
            required_tier: refusal.required_tier,
            requested: refusal.requested,
        };
        problem
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Error::RateLimited { retry_after } | Error::Busy { retry_after } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}
