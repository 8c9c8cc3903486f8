//! The OpenAPI 3.1 document's frame (info, shared schemas, security, tags); its operations come
//! from the routers (`routes!` in each slice), so none is listed here.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
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
        (name = "crm", description = "Customers with custom fields, projects, tasks and their kanban board, appointments, calendar feeds"),
        (name = "content", description = "Pages, blog posts, documentation and templates; their public site"),
        (name = "billing", description = "Plans, the organization's subscription, usage against its limits"),
        (name = "platform", description = "Platform administration: organizations, users and roles, for the platform's staff"),
        (name = "integrations", description = "Stripe, Google Analytics and Google Sheets connections that feed KPIs; their syncs"),
        (name = "ai", description = "The AI assistant: conversations, their messages, and the AI tools the plan unlocks"),
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

/// Adds to every operation the problem answers any request of its kind can get, where the
/// operation does not document them itself: a malformed request (400), the database down or the
/// server busy (503), a bug (500); with a credential, a missing or refused one (401) and a role,
/// module or CSRF refusal (403); with a path parameter, a resource not there (404); with a body, a
/// body too large (413); with a body or a query, input refused field by field (422); for a write,
/// a concurrent change (409, retry). So the
/// document lists every status the server can answer, which clients (and schemathesis) check.
pub fn complete(document: &mut utoipa::openapi::OpenApi) {
    for (path, item) in document.paths.paths.iter_mut() {
        let has_path_parameter = path.contains('{');
        let operations = [
            (&mut item.get, false),
            (&mut item.post, true),
            (&mut item.put, true),
            (&mut item.patch, true),
            (&mut item.delete, true),
        ];
        for (operation, writes) in operations {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            let has_body = operation.request_body.is_some();
            let has_query = operation
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query));
            for (status, description, applies) in [
                ("400", "Malformed request (path, query or JSON)", true),
                ("401", "No valid credential", secured),
                (
                    "403",
                    "Not allowed for this role, API key or without the CSRF token",
                    secured,
                ),
                (
                    "404",
                    "Not there, or not the caller's to see",
                    has_path_parameter,
                ),
                (
                    "409",
                    "Conflicts with the current state, or a concurrent change (retry)",
                    writes,
                ),
                ("413", "The body is too large", has_body),
                (
                    "422",
                    "Invalid input; `errors` names every field",
                    has_body || has_query || writes,
                ),
                (
                    "500",
                    "Internal error (a bug; details are in the server's log)",
                    true,
                ),
                (
                    "503",
                    "The database is unreachable, the server busy or the request too slow; retry",
                    true,
                ),
            ] {
                if applies {
                    add_problem(operation, status, description);
                }
            }
        }
    }
}

fn add_problem(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
                .into()
        });
}
