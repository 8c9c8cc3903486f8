//! The activity feed: an organization's audit trail, for its admins.

pub mod routes;
pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub use routes::routes;

use crate::kernel::page::Limit;

/// One recorded change.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Event {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// The user who acted (absent when an API key did).
    pub user_id: Option<Uuid>,
    /// The API key that acted.
    pub api_key_id: Option<Uuid>,
    /// `insert`, `update` or `delete`.
    pub action: String,
    /// The table, e.g. `organization_members`.
    pub entity_type: String,
    pub entity_id: Option<Uuid>,
    pub old_data: Option<serde_json::Value>,
    pub new_data: Option<serde_json::Value>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// Filters of the activity feed; all optional, combined with AND. Newest first.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// Only changes by this user.
    pub user_id: Option<Uuid>,
    /// Only changes by this API key.
    pub api_key_id: Option<Uuid>,
    pub entity_type: Option<String>,
    pub entity_id: Option<Uuid>,
    /// `insert`, `update` or `delete`.
    pub action: Option<String>,
    /// From this time on (inclusive).
    pub since: Option<DateTime<Utc>>,
    /// Before this time (exclusive).
    pub until: Option<DateTime<Utc>>,
    /// Items per page, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    /// The `next_cursor` of the previous page.
    pub after: Option<Uuid>,
}
