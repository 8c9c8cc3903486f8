//! Extractors: the authenticated caller, and JSON/path/query whose rejections become problems.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header::{HeaderName, AUTHORIZATION, COOKIE, USER_AGENT};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::types::ipnetwork::IpNetwork;
use tenantry_db::{Actor, DbError, RequestContext, TenantTx};
use uuid::Uuid;

use super::{AppState, REQUEST_ID};
use crate::identity::external::looks_like_jwt;
use crate::identity::{csrf_token_for, hash_token};
use crate::kernel::access::Module;
use crate::kernel::error::{Error, FieldError};
use crate::kernel::input::{Valid, Validate};
use crate::kernel::org_tx::{OrgReadTx, OrgTx, UserTx};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// JSON body in, JSON body out; malformed input is a problem response, never a plain-text 4xx.
/// A NUL character in any string or key is refused here, once, naming its field: PostgreSQL's
/// text cannot hold one, and no field of this API has a use for it. The body must be a JSON
/// object: serde would read a struct from an array of its fields in order (`[null, "x"]`), which
/// no client means.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        read_json(req, state, false).await.map(Json)
    }
}

/// A JSON body that passed its type's checks: `new: Valid<NewKpi>` in a handler's arguments.
/// An array is taken only by a type that is a list (`Validate::LIST`).
impl<T: DeserializeOwned + Validate, S: Send + Sync> FromRequest<S> for Valid<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        Valid::new(read_json(req, state, T::LIST).await?)
    }
}

async fn read_json<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
    list: bool,
) -> Result<T, Error> {
    if !is_json(req.headers()) {
        return Err(Error::BadRequest(
            "expected a request with `Content-Type: application/json`".into(),
        ));
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge
        } else {
            Error::BadRequest(e.body_text())
        }
    })?;
    if let Some(field) = nul_field(&bytes) {
        return Err(Error::invalid(
            &field,
            "must not contain the NUL character (\\u0000)",
        ));
    }
    let opens_array = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if opens_array != list {
        let expected = if list {
            "a JSON array"
        } else {
            "a JSON object"
        };
        return Err(Error::invalid("body", format!("must be {expected}")));
    }
    Ok(axum::Json::<T>::from_bytes(&bytes)?.0)
}

/// `application/json` or any `+json` type, as axum's own JSON extractor accepts.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(essence) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
    else {
        return false;
    };
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The field (`points[3].source`, `settings.a`) of the first string or key holding a NUL, if any.
/// Only a body that spells `\u0000` somewhere is parsed a second time to find it.
pub fn nul_field(body: &[u8]) -> Option<String> {
    const ESCAPE: &[u8] = b"\\u0000";
    if !body.windows(ESCAPE.len()).any(|w| w == ESCAPE) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    fn find(value: &serde_json::Value, path: &str) -> Option<String> {
        let join = |key: &str| {
            if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            }
        };
        match value {
            serde_json::Value::String(s) if s.contains('\0') => Some(if path.is_empty() {
                "body".into()
            } else {
                path.into()
            }),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| find(item, &format!("{path}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
                if key.contains('\0') {
                    Some(join(&key.replace('\0', "\\u0000")))
                } else {
                    find(item, &join(key))
                }
            }),
            _ => None,
        }
    }
    find(&value, "")
}

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

/// Query parameters; one holding a NUL character is refused, naming it.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let raw = parts.uri.query().unwrap_or_default();
        if let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(raw) {
            if let Some((name, _)) = pairs
                .iter()
                .find(|(k, v)| k.contains('\0') || v.contains('\0'))
            {
                return Err(Error::invalid(
                    &name.replace('\0', "%00"),
                    "must not contain the NUL character (%00)",
                ));
            }
        }
        Ok(Query(
            axum::extract::Query::<T>::try_from_uri(&parts.uri)?.0,
        ))
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::BadRequest(rejection.body_text())
    }
}

/// Name of the HttpOnly session cookie.
pub const SESSION_COOKIE: &str = "tenantry_session";

/// What the audit trail records about any request, signed in or not.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl ClientInfo {
    fn from_parts(parts: &Parts, trusted_proxies: &[IpNetwork]) -> Self {
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(512).collect::<String>())
        };
        Self {
            ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| client_ip(addr.ip(), parts, trusted_proxies)),
            user_agent: header(USER_AGENT),
            request_id: header(REQUEST_ID),
        }
    }

    /// A context acting as `actor`.
    pub fn context(&self, actor: Actor) -> RequestContext {
        RequestContext {
            actor,
            org_id: None,
            ip: self.ip,
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        Ok(Self::from_parts(parts, &state.config.trusted_proxies))
    }
}

/// The client's address. The peer's, unless the peer is a trusted proxy: then the nearest
/// address in `X-Forwarded-For` that is not a trusted proxy. Proxies append the address they
/// saw, so everything left of that is what the client claimed and counts for nothing; reading
/// stops at the first entry that is not an address.
fn client_ip(peer: IpAddr, parts: &Parts, trusted_proxies: &[IpNetwork]) -> IpAddr {
    let trusted = |ip: IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !trusted(client) {
        return client;
    }
    let forwarded: Vec<&str> = parts
        .headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in forwarded.iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip.to_canonical();
        if !trusted(client) {
            break;
        }
    }
    client
}

/// Name of the cookie that binds an OpenID Connect sign-in to the browser that started it.
pub const OIDC_FLOW_COOKIE: &str = "tenantry_oidc_state";

/// Name of the cookie that binds connecting an integration on Google's consent screen to the
/// browser that started it.
pub const INTEGRATION_FLOW_COOKIE: &str = "tenantry_integration_flow";

/// The flow cookies the browser sent (OpenID Connect sign-in, an integration's connection).
pub struct FlowCookies {
    pub oidc: Option<String>,
    pub integration: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for FlowCookies {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        Ok(Self {
            oidc: cookie(parts, OIDC_FLOW_COOKIE).map(str::to_string),
            integration: cookie(parts, INTEGRATION_FLOW_COOKIE).map(str::to_string),
        })
    }
}

/// The value of cookie `name` in the request, if sent.
fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Where a request came from, as the browser says it (Fetch Metadata, sent by browsers only).
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// A script of one of this service's own pages sent it (the console): its credential is the
    /// HttpOnly cookie, so the answer needs no bearer token.
    pub own_page: bool,
    /// A browser navigating to it (a redirect back from a sign-in provider).
    pub navigation: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        Ok(Self {
            own_page: header("sec-fetch-site") == Some("same-origin")
                && header("sec-fetch-mode") != Some("navigate"),
            navigation: header("sec-fetch-mode") == Some("navigate"),
        })
    }
}

/// An authenticated request: its bearer token (header, or the session cookie) resolved to a user
/// inside the transaction, and what the audit trail records about it.
pub struct Caller {
    ctx: RequestContext,
    /// The CSRF token of the session the request came with (none for other credentials).
    csrf_token: Option<String>,
}

impl Caller {
    /// The CSRF token of this request's session, when its credential is a session.
    pub fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }

    /// Begins the request's tenant transaction, scoped to `org` when the route names one.
    pub async fn begin(&self, state: &AppState, org: Option<Uuid>) -> Result<TenantTx, Error> {
        Ok(TenantTx::begin(&state.db, &self.ctx_in(org)).await?)
    }

    fn ctx_in(&self, org: Option<Uuid>) -> RequestContext {
        let mut ctx = self.ctx.clone();
        ctx.org_id = org;
        ctx
    }

    /// Begins the transaction of an organization route of `module`, and counts the call. An API
    /// key limited to other modules is refused (403); an API key's call once the period's calls
    /// reached the plan's limit, or a `write` while the organization's storage is over its
    /// limit, is refused (402).
    pub async fn begin_in(
        &self,
        state: &AppState,
        org: Uuid,
        module: Module,
        write: bool,
    ) -> Result<TenantTx, Error> {
        // Checked in the binding's own round trip; a person's read needs no check. (The
        // module's name is a fixed identifier: it can be spelled into the SQL.)
        let by_key = matches!(self.ctx.actor, Actor::ApiKeyHash(_));
        let checks = match (by_key, write) {
            (true, _) => Some(format!(
                "SELECT app.require_module('{}'); SELECT app.within_limits({write})",
                module.as_str()
            )),
            (false, true) => Some("SELECT app.within_limits(true)".to_owned()),
            (false, false) => None,
        };
        let tx = TenantTx::begin_checked(&state.db, &self.ctx_in(Some(org)), checks.as_deref())
            .await
            .map_err(|e| match e {
                // app.require_module's refusal.
                DbError::Sqlx(e) if by_key => {
                    Error::forbidden_if_refused(e, "this API key is not allowed to use this module")
                }
                other => Error::from(other),
            })?;
        if state.config.metering.is_some() {
            state.meter.count(org, &self.ctx.actor);
        }
        Ok(tx)
    }
}

/// An organization route's transaction, extracted first: it reads the caller's credential, the
/// route's `{org}` and its module (an `Extension<Module>` on the slice's router) and binds them,
/// so a request without a valid credential is 401 before anything else of it is looked at.
impl FromRequestParts<AppState> for OrgTx {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        // Deletes are not writes here: an organization over its storage limit can always make
        // room.
        let write = !parts.method.is_safe() && parts.method != axum::http::Method::DELETE;
        bind_org_route(parts, state, write).await
    }
}

/// The transaction of a `POST` that only reads (a preview): bound as [`OrgTx`] is, but as a
/// read, so an organization over its storage limit still gets it.
impl FromRequestParts<AppState> for OrgReadTx {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        Ok(OrgReadTx(bind_org_route(parts, state, false).await?))
    }
}

async fn bind_org_route(parts: &mut Parts, state: &AppState, write: bool) -> Result<OrgTx, Error> {
    let caller = Caller::from_request_parts(parts, state).await?;
    let module = parts
        .extensions
        .get::<Module>()
        .copied()
        .ok_or_else(|| Error::Internal("an organization route without a module".into()))?;
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e| Error::BadRequest(e.body_text()))?;
    let org = params
        .iter()
        .find(|(name, _)| *name == "org")
        .and_then(|(_, value)| value.parse::<Uuid>().ok());
    match org {
        Some(org) => {
            let tx = caller.begin_in(state, org, module, write).await?;
            Ok(OrgTx::new(tx, org))
        }
        None => {
            // The credential first: a bad one is 401 whatever the path says.
            caller.begin(state, None).await?;
            Err(Error::BadRequest(
                "the organization in the path is not a UUID".into(),
            ))
        }
    }
}

/// The transaction of a request that names no organization, extracted first like [`OrgTx`].
impl FromRequestParts<AppState> for UserTx {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(UserTx::new(caller.begin(state, None).await?))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let bearer = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let token = match bearer {
            Some(token) => token,
            None => {
                let token = cookie(parts, SESSION_COOKIE).ok_or(Error::Unauthenticated)?;
                // A browser sends cookies on cross-site requests too: writes must prove they
                // come from our own pages, which alone can read the CSRF token.
                if !parts.method.is_safe() {
                    let sent = parts
                        .headers
                        .get("x-csrf-token")
                        .and_then(|v| v.to_str().ok());
                    if sent != Some(csrf_token_for(token).as_str()) {
                        return Err(Error::CsrfFailed);
                    }
                }
                token
            }
        };
        if token.is_empty() {
            return Err(Error::Unauthenticated);
        }
        // A token of no kind we issue or accept is refused here, before any other part of the
        // request is looked at (a well-formed unknown one is refused when it is bound).
        let mut csrf_token = None;
        let actor = if token.starts_with(crate::api_keys::KEY_PREFIX) {
            Actor::ApiKeyHash(hash_token(token))
        } else if let (true, Some(jwt)) = (looks_like_jwt(token), &state.auth.jwt) {
            let identity = jwt.verify(token).await?;
            Actor::User(crate::identity::store::user_for_external_jwt(&state.db, &identity).await?)
        } else if token.starts_with(crate::identity::SESSION_PREFIX) {
            csrf_token = Some(csrf_token_for(token));
            Actor::SessionTokenHash(hash_token(token))
        } else {
            return Err(Error::Unauthenticated);
        };
        let ctx = ClientInfo::from_parts(parts, &state.config.trusted_proxies).context(actor);
        Ok(Self { ctx, csrf_token })
    }
}
