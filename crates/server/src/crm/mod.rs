//! Strive CRM (seed 004): customers with per-organization custom fields, projects, tasks on a
//! kanban board, appointments without double-booking, and a dashboard of counts. Viewers read, members write, admins delete and define the custom fields; API
//! keys need the `crm` module.

pub mod appointments;
pub mod customers;
pub mod dashboard;
pub mod projects;
pub mod tasks;

use std::str::FromStr;

use utoipa_axum::router::OpenApiRouter;

use crate::http::AppState;
use crate::kernel::error::{Error, Result};

pub fn routes() -> OpenApiRouter<AppState> {
    customers::routes()
        .merge(appointments::routes())
        .merge(dashboard::routes())
        .merge(projects::routes())
        .merge(tasks::routes())
}

/// Routes with a long body and time limit (CSV import).
pub fn bulk_routes() -> OpenApiRouter<AppState> {
    customers::bulk_routes()
}

/// A comma-separated list of `T`, each named in the error when it is not one.
fn comma_list<T: FromStr>(param: &str, value: Option<&str>) -> Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    value
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .map_err(|e| Error::BadRequest(format!("{param}: {e}")))
        })
        .collect()
}
