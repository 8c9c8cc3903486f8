//! HTTP routes of integrations under `/v1/orgs/{org}/integrations`: members read their status,
//! admins manage them. Credentials go in and never come out.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::sync::SyncRun;
use super::{store, Integration, IntegrationChanges, Mapping, MappingsChange, NewIntegration};
use crate::http::{
    AppState, Conflict, FlowCookies, Forbidden, Invalid, Json, NotFound, Path, PaymentRequired,
    Query, INTEGRATION_FLOW_COOKIE,
};
use crate::kernel::access::Module;
use crate::kernel::error::{Error, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Page, PageParams};
use crate::vault::Vault;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_integrations, create_integration))
        .routes(routes!(
            get_integration,
            update_integration,
            delete_integration
        ))
        .routes(routes!(get_mappings, set_mappings))
        .routes(routes!(request_sync))
        .routes(routes!(authorize))
        .routes(routes!(oauth_callback))
        .routes(routes!(list_syncs))
        .layer(axum::Extension(Module::Integrations))
}

fn vault(state: &AppState) -> Result<&Vault> {
    state.config.vault.as_deref().ok_or(Error::NotConfigured(
        "the credential vault has no keys (TENANTRY_VAULT_KEYS)",
    ))
}

/// Connect a provider (admins): the credentials are sealed by the vault and never returned.
#[utoipa::path(post, path = "/v1/orgs/{org}/integrations", tag = "integrations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = NewIntegration,
    responses((status = 201, body = Integration), PaymentRequired, Forbidden, NotFound, Conflict, Invalid))]
pub async fn create_integration(
    State(state): State<AppState>,
    mut tx: OrgTx,
    new: Valid<NewIntegration>,
) -> Result<(StatusCode, Json<Integration>)> {
    let created = store::create(&mut tx, vault(&state)?, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The organization's integrations and their sync status (members and viewers; the credentials'
/// hint to admins only).
#[utoipa::path(get, path = "/v1/orgs/{org}/integrations", tag = "integrations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), PageParams),
    responses((status = 200, body = Page<Integration>), NotFound))]
pub async fn list_integrations(
    mut tx: OrgTx,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Integration>>> {
    let found = store::list(&mut tx, &page).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// One integration.
#[utoipa::path(get, path = "/v1/orgs/{org}/integrations/{integration}", tag = "integrations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("integration" = Uuid, Path, description = "Integration id")),
    responses((status = 200, body = Integration), NotFound))]
pub async fn get_integration(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<Integration>> {
    let found = store::get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Change an integration (admins); new `credentials` replace the stored ones.
#[utoipa::path(patch, path = "/v1/orgs/{org}/integrations/{integration}", tag = "integrations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("integration" = Uuid, Path, description = "Integration id")),
    request_body = IntegrationChanges,
    responses((status = 200, body = Integration), Forbidden, NotFound, Conflict, Invalid))]
pub async fn update_integration(
    State(state): State<AppState>,
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
    changes: Valid<IntegrationChanges>,
) -> Result<Json<Integration>> {
    let changed = store::update(&mut tx, vault(&state)?, id, &changes).await?;
    tx.commit().await?;
    Ok(Json(changed))
}

/// Disconnect (admins): the integration and its credentials are deleted.
#[utoipa::path(delete, path = "/v1/orgs/{org}/integrations/{integration}", tag = "integrations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("integration" = Uuid, Path, description = "Integration id")),
    responses((status = 204, description = "Deleted"), Forbidden, NotFound))]
pub async fn delete_integration(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::delete(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which KPI each of the integration's metrics feeds (members and viewers).
#[utoipa::path(get, path = "/v1/orgs/{org}/integrations/{integration}/mappings", tag = "integrations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("integration" = Uuid, Path, description = "Integration id")),
    responses((status = 200, body = Vec<Mapping>), NotFound))]
pub async fn get_mappings(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<Vec<Mapping>>> {
    let found = store::mappings(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Replace the integration's mappings (admins): `{"mappings": {"mrr": "<KPI id>", …}}` — metrics
/// the provider has, live KPIs of this organization.
#[utoipa::path(put, path = "/v1/orgs/{org}/integrations/{integration}/mappings", tag = "integrations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("integration" = Uuid, Path, description = "Integration id")),
    request_body = MappingsChange,
    responses((status = 200, body = Vec<Mapping>), Forbidden, NotFound, Invalid))]
pub async fn set_mappings(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
    change: Valid<MappingsChange>,
) -> Result<Json<Vec<Mapping>>> {
    let set = store::set_mappings(&mut tx, id, &change).await?;
    tx.commit().await?;
    Ok(Json(set))
}

/// Sync now (admins): a sync job is queued acting for the caller (one waiting absorbs repeats).
/// Refused for a switched-off integration (409) and one the plan does not let sync (402).
#[utoipa::path(post, path = "/v1/orgs/{org}/integrations/{integration}/sync", tag = "integrations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("integration" = Uuid, Path, description = "Integration id")),
    responses((status = 202, description = "Queued; its run appears in …/syncs"), PaymentRequired, Forbidden, NotFound, Conflict))]
pub async fn request_sync(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::request_sync(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::ACCEPTED)
}

/// The integration's sync runs, newest first: trigger, status, the days covered, points
/// written, the error (secrets redacted).
#[utoipa::path(get, path = "/v1/orgs/{org}/integrations/{integration}/syncs", tag = "integrations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("integration" = Uuid, Path, description = "Integration id"), PageParams),
    responses((status = 200, body = Page<SyncRun>), NotFound))]
pub async fn list_syncs(
    mut tx: OrgTx,
    Path((_org, id)): Path<(Uuid, Uuid)>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<SyncRun>>> {
    let found = store::syncs(&mut tx, id, &page).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Where to send the browser to connect Google.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuthorizationStart {
    /// Google's consent screen; it returns to `…/v1/integrations/oauth/callback`.
    pub authorization_url: String,
}

/// Connect a Google integration through Google's consent screen (admins, signed in as
/// themselves): the URL to send the browser to. The callback must come back to a browser
/// signed in as the same person within 10 minutes; it stores the refresh token Google grants.
#[utoipa::path(post, path = "/v1/orgs/{org}/integrations/{integration}/authorize", tag = "integrations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("integration" = Uuid, Path, description = "Integration id")),
    responses((status = 200, body = AuthorizationStart), Forbidden, NotFound, Conflict,
        (status = 503, description = "not_configured: no Google OAuth client or vault keys", body = crate::http::Problem, content_type = "application/problem+json")))]
pub async fn authorize(
    State(state): State<AppState>,
    mut tx: OrgTx,
    Path((org, id)): Path<(Uuid, Uuid)>,
) -> Result<([(HeaderName, HeaderValue); 1], Json<AuthorizationStart>)> {
    let vault = vault(&state)?;
    let (provider, user) = store::authorization_target(&mut tx, id).await?;
    let oauth = google_oauth(&state)?;
    let started = super::oauth::start(oauth, vault, org, id, provider, user)?;
    tx.commit().await?;
    Ok((
        [(SET_COOKIE, flow_cookie(&started.browser_nonce, 600)?)],
        Json(AuthorizationStart {
            authorization_url: started.authorization_url,
        }),
    ))
}

/// The cookie binding a connection to this browser (`max_age` 0 clears it).
fn flow_cookie(nonce: &str, max_age: u32) -> Result<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{INTEGRATION_FLOW_COOKIE}={nonce}; Path=/v1/integrations/oauth; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax"
    ))
    .map_err(|e| Error::Internal(format!("cookie: {e}")))
}

fn google_oauth(state: &AppState) -> Result<&super::oauth::GoogleOAuthConfig> {
    state
        .config
        .google_oauth
        .as_ref()
        .ok_or(Error::NotConfigured(
            "no Google OAuth client (TENANTRY_GOOGLE_CLIENT_ID and TENANTRY_GOOGLE_CLIENT_SECRET)",
        ))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OAuthCallback {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by Google when the person declined.
    pub error: Option<String>,
}

/// Google's redirect back after consent: checks the state and that the browser is signed in
/// as the person who started, exchanges the code, and stores the refresh token (the integration
/// is due at once). Nothing changes on any refusal.
#[utoipa::path(get, path = "/v1/integrations/oauth/callback", tag = "integrations", security(("bearer" = [])),
    params(OAuthCallback),
    responses((status = 200, body = Integration), Forbidden, NotFound, Invalid,
        (status = 400, description = "Google's refusal, or no code or state", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in, or invalid_token: a state this server did not issue, or expired", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Google refused the code", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 503, description = "not_configured: no Google OAuth client or vault keys", body = crate::http::Problem, content_type = "application/problem+json")))]
pub async fn oauth_callback(
    State(state): State<AppState>,
    caller: crate::http::Caller,
    cookies: FlowCookies,
    Query(callback): Query<OAuthCallback>,
) -> Result<([(HeaderName, HeaderValue); 1], Json<Integration>)> {
    // Who is asking, first: a credential that resolves to no one is 401 whatever else is wrong.
    drop(caller.begin(&state, None).await?);
    let vault = vault(&state)?;
    if let Some(error) = callback.error {
        return Err(Error::BadRequest(format!(
            "Google did not grant access ({}); nothing changed",
            error.chars().take(100).collect::<String>()
        )));
    }
    let (Some(code), Some(flow)) = (callback.code, callback.state) else {
        return Err(Error::BadRequest("code and state are required".into()));
    };
    let opened = super::oauth::open_state(vault, &flow, cookies.integration.as_deref())?;
    let oauth = google_oauth(&state)?;
    let begin = || async {
        let tx = caller
            .begin_in(&state, opened.org, Module::Integrations, true)
            .await?;
        let mut tx = OrgTx::new(tx, opened.org);
        if tx.user_id().await? != Some(opened.user) {
            return Err(Error::Forbidden(
                "this connection was started by someone else: start it again signed in as yourself",
            ));
        }
        Ok(tx)
    };
    // Checked before Google is asked, and no transaction waits on Google.
    drop(begin().await?);
    let refresh_token = super::oauth::exchange(&state.http, oauth, &code, &opened.verifier).await?;
    let mut tx = begin().await?;
    let changes = Valid::new(IntegrationChanges {
        credentials: Some(std::iter::once(("refresh_token".to_string(), refresh_token)).collect()),
        ..IntegrationChanges::default()
    })?;
    let connected = store::update(&mut tx, vault, opened.integration, &changes).await?;
    tx.commit().await?;
    // Used: the browser forgets it, so the state cannot be replayed here.
    Ok(([(SET_COOKIE, flow_cookie("", 0)?)], Json(connected)))
}
