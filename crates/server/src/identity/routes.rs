//! HTTP routes of the identity domain.

use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tenantry_db::{Actor, TenantTx};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    store, IssuedSession, Me, MeChanges, PasswordChange, PasswordSignIn, PasswordSignUp,
    SessionInfo, User,
};
use crate::http::{
    AppState, Caller, ClientInfo, FlowCookies, Invalid, Json, NotFound, Origin, Path, Query,
    Unauthorized, OIDC_FLOW_COOKIE, SESSION_COOKIE,
};
use crate::kernel::error::{Error, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::UserTx;
use crate::orgs::Organization;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_up))
        .routes(routes!(sign_in))
        .routes(routes!(sign_out))
        .routes(routes!(sign_in_methods))
        .routes(routes!(csrf_token))
        .routes(routes!(oidc_start))
        .routes(routes!(oidc_callback))
        .routes(routes!(me, update_me, delete_me))
        .routes(routes!(export_me))
        .routes(routes!(change_password))
        .routes(routes!(list_sessions, end_all_sessions))
        .routes(routes!(end_session))
}

/// A signed-in user and the session just opened for them.
#[derive(Serialize, ToSchema)]
pub struct SignedIn {
    pub user: User,
    pub session: OpenedSession,
    /// The organization sign-up created (absent on sign-in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<Organization>,
}

/// A session just opened, as answered.
#[derive(Serialize, ToSchema)]
pub struct OpenedSession {
    pub id: uuid::Uuid,
    /// Send as `Authorization: Bearer <token>`; it is also set as the HttpOnly `tenantry_session`
    /// cookie. Absent in answers to a script of this service's own pages (the console: the
    /// browser says so in `Sec-Fetch-Site: same-origin`), which use the cookie alone, so a
    /// script there never holds the credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Send as `X-CSRF-Token` on writes authenticated by the cookie.
    pub csrf_token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// `Set-Cookie` for a session: HttpOnly (scripts cannot read it), Secure, SameSite=Lax.
fn session_cookie(session: &IssuedSession, ttl: std::time::Duration) -> Result<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Lax",
        session.token,
        ttl.as_secs()
    ))
    .map_err(|e| Error::Internal(format!("cookie: {e}")))
}

fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_static("tenantry_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax")
}

/// A new session's answer: its cookie, and the user, session and any new organization as JSON.
type SessionOpened = ([(HeaderName, HeaderValue); 1], Json<SignedIn>);

async fn open_session(
    state: &AppState,
    client: &ClientInfo,
    origin: Origin,
    user_id: uuid::Uuid,
    organization: Option<Organization>,
) -> Result<SessionOpened> {
    let ttl = state.config.session_ttl;
    let session = store::create_session(
        &state.db,
        user_id,
        ttl,
        client.ip,
        client.user_agent.as_deref(),
    )
    .await?;
    let cookie = session_cookie(&session, ttl)?;
    let mut tx = TenantTx::begin(&state.db, &client.context(Actor::User(user_id))).await?;
    let me = store::me(&mut tx).await?;
    tx.commit().await?;
    let session = OpenedSession {
        id: session.id,
        token: (!origin.own_page).then_some(session.token),
        csrf_token: session.csrf_token,
        expires_at: session.expires_at,
    };
    let body = SignedIn {
        user: me.user,
        session,
        organization,
    };
    Ok(([(SET_COOKIE, cookie)], Json(body)))
}

/// Create an account with email and password, its first organization, and a session.
#[utoipa::path(post, path = "/v1/auth/signup", tag = "identity", request_body = PasswordSignUp,
    responses(
        (status = 201, body = SignedIn, description = "Also sets the tenantry_session cookie"),
        (status = 409, description = "email_taken", body = crate::http::Problem, content_type = "application/problem+json"),
        Invalid,
        (status = 429, description = "rate_limited: too many taken addresses probed from this IP", body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn sign_up(
    State(state): State<AppState>,
    client: ClientInfo,
    origin: Origin,
    input: Valid<PasswordSignUp>,
) -> Result<(StatusCode, [(HeaderName, HeaderValue); 1], Json<SignedIn>)> {
    let signed_up = store::sign_up_with_password(&state.db, &input, client.ip).await?;
    let (cookie, body) = open_session(
        &state,
        &client,
        origin,
        signed_up.user.id,
        Some(signed_up.organization),
    )
    .await?;
    Ok((StatusCode::CREATED, cookie, body))
}

/// Sign in with email and password. A wrong email and a wrong password get the same answer;
/// repeated failures per email or IP get 429 with Retry-After.
#[utoipa::path(post, path = "/v1/auth/signin", tag = "identity", request_body = PasswordSignIn,
    responses(
        (status = 200, body = SignedIn, description = "Also sets the tenantry_session cookie"),
        (status = 401, description = "invalid_credentials", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited", body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn sign_in(
    State(state): State<AppState>,
    client: ClientInfo,
    origin: Origin,
    Json(input): Json<PasswordSignIn>,
) -> Result<SessionOpened> {
    let user_id = store::sign_in(&state.db, &input, client.ip).await?;
    open_session(&state, &client, origin, user_id, None).await
}

/// How people can sign in here: always with a password, and with the configured OpenID Connect
/// provider (Google) when there is one.
#[derive(Serialize, ToSchema)]
pub struct SignInMethods {
    pub password: bool,
    /// The provider's name (`google`) when its sign-in is configured
    /// (`GET /v1/auth/oidc/start` begins it).
    pub oidc: Option<String>,
}

/// How to sign in here (for a sign-in page: whether to offer Google).
#[utoipa::path(get, path = "/v1/auth/methods", tag = "identity",
    responses((status = 200, body = SignInMethods)))]
pub async fn sign_in_methods(State(state): State<AppState>) -> Json<SignInMethods> {
    Json(SignInMethods {
        password: true,
        oidc: state.auth.oidc.as_ref().map(|o| o.config.provider.clone()),
    })
}

/// The CSRF token of a session.
#[derive(Serialize, ToSchema)]
pub struct CsrfToken {
    pub csrf_token: String,
}

/// The CSRF token of the session this request uses, for a page that signed in by a redirect
/// (Google) and so never read a sign-in's answer. Another site cannot read this answer (no
/// cross-origin reads are allowed), so it cannot learn the token.
#[utoipa::path(get, path = "/v1/auth/csrf", tag = "identity", security(("bearer" = [])),
    responses((status = 200, body = CsrfToken), Unauthorized))]
pub async fn csrf_token(State(state): State<AppState>, caller: Caller) -> Result<Json<CsrfToken>> {
    let mut tx = caller.begin(&state, None).await?;
    // Only a live session has one (an API key or an external JWT has none).
    tx.session_id().await?.ok_or(Error::Unauthenticated)?;
    tx.commit().await?;
    let csrf_token = caller
        .csrf_token()
        .ok_or(Error::Unauthenticated)?
        .to_owned();
    Ok(Json(CsrfToken { csrf_token }))
}

/// End the session this request uses (and clear its cookie).
#[utoipa::path(post, path = "/v1/auth/signout", tag = "identity", security(("bearer" = [])),
    responses((status = 204, description = "Signed out"), Unauthorized))]
pub async fn sign_out(mut tx: UserTx) -> Result<(StatusCode, [(HeaderName, HeaderValue); 1])> {
    let current = tx.session_id().await?.ok_or(Error::Unauthenticated)?;
    store::end_session(&mut tx, current).await?;
    tx.commit().await?;
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, cleared_cookie())]))
}

/// The signed-in user's live sessions.
#[utoipa::path(get, path = "/v1/me/sessions", tag = "identity", security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionInfo>), Unauthorized))]
pub async fn list_sessions(mut tx: UserTx) -> Result<Json<Vec<SessionInfo>>> {
    let sessions = store::list_sessions(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(sessions))
}

/// End one of the signed-in user's sessions.
#[utoipa::path(delete, path = "/v1/me/sessions/{session}", tag = "identity", security(("bearer" = [])),
    params(("session" = uuid::Uuid, Path, description = "Session id")),
    responses((status = 204, description = "Ended"), NotFound))]
pub async fn end_session(mut tx: UserTx, Path(id): Path<uuid::Uuid>) -> Result<StatusCode> {
    store::end_session(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out everywhere: end every session of the signed-in user, this one included.
#[utoipa::path(delete, path = "/v1/me/sessions", tag = "identity", security(("bearer" = [])),
    responses((status = 204, description = "All ended"), Unauthorized))]
pub async fn end_all_sessions(
    mut tx: UserTx,
) -> Result<(StatusCode, [(HeaderName, HeaderValue); 1])> {
    store::end_sessions(&mut tx, false).await?;
    tx.commit().await?;
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, cleared_cookie())]))
}

/// Change the password (the current one is required); other sessions end.
#[utoipa::path(put, path = "/v1/me/password", tag = "identity", security(("bearer" = [])), request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        Unauthorized,
        Invalid,
    ))]
pub async fn change_password(mut tx: UserTx, change: Valid<PasswordChange>) -> Result<StatusCode> {
    store::change_password(&mut tx, &change).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user and their profile.
#[utoipa::path(get, path = "/v1/me", tag = "identity", security(("bearer" = [])), responses(
    (status = 200, body = Me),
    Unauthorized,
))]
pub async fn me(mut tx: UserTx) -> Result<Json<Me>> {
    let me = store::me(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(me))
}

/// Change the signed-in user's name and profile (time zone, language, picture, preferences).
#[utoipa::path(patch, path = "/v1/me", tag = "identity", security(("bearer" = [])), request_body = MeChanges,
    responses(
        (status = 200, body = Me),
        Unauthorized,
        Invalid,
    ))]
pub async fn update_me(mut tx: UserTx, changes: Valid<MeChanges>) -> Result<Json<Me>> {
    let me = store::update_me(&mut tx, &changes).await?;
    tx.commit().await?;
    Ok(Json(me))
}

/// Delete the signed-in user's account (refused while they are the only owner of an
/// organization with other members; their organizations without other members are deleted).
#[utoipa::path(delete, path = "/v1/me", tag = "identity", security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        Unauthorized,
        (status = 409, description = "last_owner", body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_me(mut tx: UserTx) -> Result<(StatusCode, [(HeaderName, HeaderValue); 1])> {
    store::delete_me(&mut tx).await?;
    tx.commit().await?;
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, cleared_cookie())]))
}

/// Everything the signed-in person may read that is theirs (right of access): `account` holds,
/// by table, their rows outside any organization (the account without its password hash, the
/// profile, sign-in identities, sessions); `organizations` lists each of theirs with their
/// role and, by table, their rows there (membership, assistant conversations, Fast Track
/// entries and progress, calendar feeds…): every table with a `user_id` column, read under
/// their own binding, so nothing another person's rules hide is in it.
#[utoipa::path(get, path = "/v1/me/export", tag = "identity", security(("bearer" = [])),
    responses(
        (status = 200, body = Object, description = "The person's data, as JSON (attachment)"),
        Unauthorized,
        (status = 403, description = "forbidden: an API key speaks for an organization, not a person", body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn export_me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<([(HeaderName, HeaderValue); 1], Json<serde_json::Value>)> {
    let mut tx = caller.begin(&state, None).await?;
    let user = tx.user_id().await?.ok_or(Error::Forbidden(
        "an API key speaks for an organization, not a person",
    ))?;
    let account = tenantry_db::bundle::personal_rows(tx.conn(), user, None).await?;
    let memberships: Vec<(uuid::Uuid, String, String, String)> = sqlx::query_as(
        r"SELECT o.id, o.slug, o.name, m.role FROM organization_members m
            JOIN organizations o ON o.id = m.organization_id
           WHERE m.user_id = $1 ORDER BY o.name, o.id",
    )
    .bind(user)
    .fetch_all(tx.conn())
    .await?;
    tx.commit().await?;
    let mut organizations = Vec::with_capacity(memberships.len());
    for (id, slug, name, role) in memberships {
        let mut tx = caller.begin(&state, Some(id)).await?;
        let records = tenantry_db::bundle::personal_rows(tx.conn(), user, Some(id)).await?;
        tx.commit().await?;
        organizations.push(serde_json::json!({
            "id": id, "slug": slug, "name": name, "role": role, "records": records,
        }));
    }
    Ok((
        [(
            axum::http::header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"my-tenantry-data.json\""),
        )],
        Json(serde_json::json!({
            "exported_at": chrono::Utc::now(),
            "user_id": user,
            "account": account,
            "organizations": organizations,
        })),
    ))
}

/// Where to send the browser to sign in with the OpenID Connect provider.
#[derive(Serialize, ToSchema)]
pub struct OidcStart {
    pub authorization_url: String,
}

/// Start signing in with Google (or the configured OpenID Connect issuer): redirects to the
/// provider with PKCE, `state` and `nonce`.
#[utoipa::path(get, path = "/v1/auth/oidc/start", tag = "identity",
    responses(
        (status = 302, body = OidcStart, description = "Redirect to the provider (Location header)"),
        (status = 404, description = "no provider configured", body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn oidc_start(
    State(state): State<AppState>,
) -> Result<(StatusCode, [(HeaderName, HeaderValue); 2], Json<OidcStart>)> {
    let oidc = state.auth.oidc.as_ref().ok_or(Error::NotFound)?;
    let flow = oidc.start().await?;
    store::begin_oidc_flow(&state.db, &flow.state, &flow.nonce, &flow.code_verifier).await?;
    let location = HeaderValue::from_str(&flow.authorization_url)
        .map_err(|e| Error::Internal(format!("location: {e}")))?;
    // Binds the flow to this browser: a callback carrying someone else's code and state (login
    // CSRF, which would sign the victim into the attacker's account) lacks the cookie.
    let flow_cookie = HeaderValue::from_str(&format!(
        "{OIDC_FLOW_COOKIE}={}; Path=/v1/auth/oidc; Max-Age=600; HttpOnly; Secure; SameSite=Lax",
        flow.state
    ))
    .map_err(|e| Error::Internal(format!("cookie: {e}")))?;
    Ok((
        StatusCode::FOUND,
        [(LOCATION, location), (SET_COOKIE, flow_cookie)],
        Json(OidcStart {
            authorization_url: flow.authorization_url,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OidcCallback {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by the provider when the user or the provider refused.
    pub error: Option<String>,
}

/// The provider's redirect back: checks `state`, exchanges the code, verifies the ID token, and
/// signs the user in (creating the account and its organization on first sign-in).
#[utoipa::path(get, path = "/v1/auth/oidc/callback", tag = "identity", params(OidcCallback),
    responses(
        (status = 200, body = SignedIn, description = "Also sets the tenantry_session cookie"),
        (status = 303, description = "To a browser (`Sec-Fetch-Mode: navigate`): on to the console at `/` with the session's cookie set, or to `/sign-in?failed=oidc`"),
        (status = 401, description = "invalid_token", body = crate::http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no provider configured", body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn oidc_callback(
    State(state): State<AppState>,
    client: ClientInfo,
    origin: Origin,
    cookies: FlowCookies,
    Query(callback): Query<OidcCallback>,
) -> Result<Response> {
    let opened = finish_oidc(&state, &client, origin, cookies, callback).await;
    if !origin.navigation {
        return opened.map(IntoResponse::into_response);
    }
    // A browser coming back from the provider goes on to the console, signed in (by the cookie
    // alone) or told that it was not.
    Ok(match opened {
        Ok(([cookie], _)) => (
            StatusCode::SEE_OTHER,
            [(LOCATION, HeaderValue::from_static("/")), cookie],
        )
            .into_response(),
        Err(error) => {
            tracing::info!(%error, "a sign-in with the identity provider did not complete");
            (
                StatusCode::SEE_OTHER,
                [(LOCATION, HeaderValue::from_static("/sign-in?failed=oidc"))],
            )
                .into_response()
        }
    })
}

async fn finish_oidc(
    state: &AppState,
    client: &ClientInfo,
    origin: Origin,
    cookies: FlowCookies,
    callback: OidcCallback,
) -> Result<SessionOpened> {
    let oidc = state.auth.oidc.as_ref().ok_or(Error::NotFound)?;
    if callback.error.is_some() {
        return Err(Error::InvalidToken("the provider refused the sign-in"));
    }
    let (Some(code), Some(flow_state)) = (callback.code, callback.state) else {
        return Err(Error::InvalidToken("code and state are required"));
    };
    if cookies.oidc.as_deref() != Some(flow_state.as_str()) {
        return Err(Error::InvalidToken(
            "this sign-in was started in another browser",
        ));
    }
    let (nonce, verifier) = store::finish_oidc_flow(&state.db, &flow_state)
        .await?
        .ok_or(Error::InvalidToken("unknown, used or expired state"))?;
    let identity = oidc.finish(&code, &nonce, &verifier).await?;
    let user_id = store::sign_in_with_identity(&state.db, &identity, &oidc.config.provider).await?;
    open_session(state, client, origin, user_id, None).await
}
