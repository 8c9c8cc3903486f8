//! Strive CRM (seed 004): customers with per-organization custom fields, projects, and tasks on
//! a kanban board. Viewers read, members write, admins delete and define the custom fields; API
//! keys need the `crm` module.

pub mod customers;

use utoipa_axum::router::OpenApiRouter;

use crate::http::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    customers::routes()
}
