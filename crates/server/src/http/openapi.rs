//! The OpenAPI 3.1 document's frame (info, shared schemas, security, tags); its operations come
//! from the routers (`routes!` in each slice), so none is listed here.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::Problem;
use crate::kernel::error::FieldError;

#[derive(OpenApi)]
#[openapi(
    info(title = "Tenantry API", description = "Multi-tenant business backend. Every organization's data is isolated by PostgreSQL row-level security."),
    components(schemas(Problem, FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "identity", description = "The signed-in user"),
        (name = "organizations", description = "Organizations, members and teams"),
        (name = "api keys", description = "API keys of service accounts"),
        (name = "kpis", description = "KPIs, their history, progress and change"),
        (name = "fasttrack", description = "Fast Track coaching tools: entries, history, grants, progress"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
