//! The one error type of every domain (mapped once to RFC 9457 problem responses by
//! `crate::http::problem`).

use serde::Serialize;
use tenantry_db::DbError;
use utoipa::ToSchema;

/// A field that failed validation.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// The input field (JSON pointer style, e.g. `name` or `permissions.kpis`).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("the input is not valid")]
    Validation(Vec<FieldError>),
    #[error("authentication is required")]
    Unauthenticated,
    #[error("the email or password is wrong")]
    InvalidCredentials,
    #[error("too many attempts; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("cookie-authenticated writes need the X-CSRF-Token header")]
    CsrfFailed,
    #[error("the token is not valid: {0}")]
    InvalidToken(&'static str),
    #[error("an identity provider failed: {0}")]
    Upstream(String),
    /// An AI provider refused or failed (its message, keys taken out).
    #[error("{0}")]
    Provider(String),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("the resource changed: it is at version {current}")]
    StaleVersion { current: i32 },
    /// A booking that overlaps a live appointment of the same member (the one named, when the
    /// caller can see it).
    #[error("the member is booked at that time")]
    SlotTaken { conflicting: Option<uuid::Uuid> },
    #[error("the database is not reachable")]
    Unavailable,
    /// A capability whose configuration the operator has not given (the vault's keys).
    #[error("not configured: {0}")]
    NotConfigured(&'static str),
    #[error("the server is busy; retry in {retry_after} s")]
    Busy { retry_after: u64 },
    #[error("the request took too long")]
    Timeout,
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The SQLSTATE of a write the plan in force does not allow (answered 402 `plan_limit`).
pub const PLAN_LIMIT_SQLSTATE: &str = "TP402";
/// The SQLSTATE of a feature the plan in force lacks (answered 402 `feature_unavailable`).
pub const FEATURE_UNAVAILABLE_SQLSTATE: &str = "TPF01";

/// What the plan in force refused: a limit a write would have passed (`limit`, `used`), or a
/// feature it lacks (`plan`, and `required_tier` when a tier is what is missing).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
pub struct PlanRefusal {
    /// The entitlement: `seats`, `kpis`, `api_calls`, …, or a feature (`integrations`, `ai`).
    pub entitlement: String,
    pub limit: Option<i64>,
    /// Usage before the refused write.
    pub used: Option<i64>,
    /// The code of the plan in force.
    pub plan: Option<String>,
    pub required_tier: Option<String>,
    /// With an `ai_tokens` reservation: the tokens the refused reply could have needed.
    pub requested: Option<i64>,
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unauthenticated => Error::Unauthenticated,
            DbError::Sqlx(e) => Error::from(e),
            DbError::Migrate(e) => Error::Database(sqlx::Error::Migrate(Box::new(e))),
        }
    }
}

/// No row: it is not there, or not the caller's to see (policies hide it) — 404 either way.
/// After a write, `query.execute(tx.conn()).await?.found()?` (how many rows changed); after a
/// read, `query.fetch_optional(tx.conn()).await?.found()?` (the row).
pub trait Found {
    type Row;
    fn found(self) -> Result<Self::Row>;
}

impl Found for sqlx::postgres::PgQueryResult {
    type Row = u64;

    fn found(self) -> Result<u64> {
        match self.rows_affected() {
            0 => Err(Error::NotFound),
            n => Ok(n),
        }
    }
}

impl<T> Found for Option<T> {
    type Row = T;

    fn found(self) -> Result<T> {
        self.ok_or(Error::NotFound)
    }
}

impl Error {
    /// The database constraint this error reports as violated, if any.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            Error::Database(sqlx::Error::Database(db)) => db.constraint(),
            _ => None,
        }
    }

    /// The SQLSTATE, for errors the database raised.
    pub fn database_code(&self) -> Option<String> {
        match self {
            Error::Database(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
            _ => None,
        }
    }

    /// The database's own message, for errors the database raised.
    pub fn database_message(&self) -> Option<&str> {
        match self {
            Error::Database(sqlx::Error::Database(db)) => Some(db.message()),
            _ => None,
        }
    }

    /// What the plan in force refused (SQLSTATE TP402 or TPF01, raised by the database with a
    /// JSON DETAIL), if this is such a refusal.
    pub fn plan_refusal(&self) -> Option<PlanRefusal> {
        let Error::Database(sqlx::Error::Database(db)) = self else {
            return None;
        };
        if !matches!(
            db.code().as_deref(),
            Some(PLAN_LIMIT_SQLSTATE | FEATURE_UNAVAILABLE_SQLSTATE)
        ) {
            return None;
        }
        let detail = db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .and_then(|pg| pg.detail())?;
        serde_json::from_str(detail).ok()
    }

    /// 422 naming one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::Validation(vec![FieldError::new(field, message)])
    }

    /// A refusal a database function raised on purpose (SQLSTATE 42501: it checks who calls
    /// it) is 403 with `reason`; a row-level security refusal and every other error keep their
    /// own meaning.
    pub fn forbidden_if_refused(e: sqlx::Error, reason: &'static str) -> Self {
        match e.as_database_error() {
            Some(db)
                if db.code().as_deref() == Some("42501")
                    && !db.message().contains("row-level security") =>
            {
                Error::Forbidden(reason)
            }
            _ => Error::from(e),
        }
    }

    fn conflict(code: &'static str, detail: &str) -> Self {
        Error::Conflict {
            code,
            detail: detail.into(),
        }
    }
}

/// What a violated constraint means to the caller, said next to the SQL that can violate it
/// (every other constraint gets the generic mapping of `http::problem`).
pub trait OnConstraint<T> {
    /// A violation of `name` becomes 409 `code` with `detail`.
    fn on_conflict(self, name: &str, code: &'static str, detail: &str) -> Result<T>;
    /// A violation of `name` becomes what `map` makes of the error.
    fn on_constraint(self, name: &str, map: impl FnOnce(Error) -> Error) -> Result<T>;
    /// A violation of `name` becomes a 422 naming `field` with `message`.
    fn on_field(self, name: &str, field: &str, message: &str) -> Result<T>
    where
        Self: Sized,
    {
        self.on_constraint(name, |_| {
            Error::Validation(vec![FieldError::new(field, message)])
        })
    }
}

impl<T, E: Into<Error>> OnConstraint<T> for std::result::Result<T, E> {
    fn on_conflict(self, name: &str, code: &'static str, detail: &str) -> Result<T> {
        self.on_constraint(name, |_| Error::conflict(code, detail))
    }

    fn on_constraint(self, name: &str, map: impl FnOnce(Error) -> Error) -> Result<T> {
        self.map_err(|e| {
            let e = e.into();
            if e.constraint() == Some(name) {
                map(e)
            } else {
                e
            }
        })
    }
}
