//! HTTP assembly: shared state, the router (one `routes()` per domain merged here), middleware,
//! the OpenAPI document, and serving with graceful shutdown.

mod cache;
pub mod console;
mod docs;
mod extract;
mod openapi;
mod problem;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::http::HeaderName;
use axum::routing::get;
use axum::BoxError;
use axum::Router;
use serde::Serialize;
use sqlx::types::ipnetwork::IpNetwork;
use tenantry_db::RuntimePool;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use cache::cacheable;
pub use extract::{
    Caller, ClientInfo, FlowCookies, Json, Origin, Path, Query, INTEGRATION_FLOW_COOKIE,
    OIDC_FLOW_COOKIE, SESSION_COOKIE,
};
pub use openapi::ApiDoc;
pub use problem::{
    Conflict, Forbidden, Invalid, NotFound, PaymentRequired, Problem, TooLarge, Unauthorized,
};

use crate::identity::external::{ExternalAuth, JwtConfig, OidcConfig};
use crate::kernel::error::Error;

/// Settings of the HTTP service.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Longest a request may take before it is answered 503 and its transaction rolled back.
    pub request_timeout: Duration,
    /// How long a connection has to send a request's headers, counted from when it opened or
    /// its last response went out: a client trickling headers (slowloris) or holding an idle
    /// keep-alive connection is disconnected after it.
    pub header_timeout: Duration,
    /// The same for bulk routes (ingest), whose bodies may take minutes to arrive.
    pub bulk_timeout: Duration,
    /// Lifetime of a new session.
    pub session_ttl: Duration,
    /// Where users reach the service (links in emails are built on it).
    pub public_url: String,
    /// Sign-in with Google or another OpenID Connect issuer, when configured.
    pub oidc: Option<OidcConfig>,
    /// Bearer JWTs of an external identity provider (Clerk), when configured.
    pub jwt: Option<JwtConfig>,
    /// Shortest time between two JWKS fetches caused by unknown key ids.
    pub jwks_min_refetch: Duration,
    /// Reverse proxies (load balancers) in front of the service: for a request from one of them,
    /// the client's address is read from `X-Forwarded-For`. Empty: the peer is the client.
    pub trusted_proxies: Vec<IpNetwork>,
    /// Stripe, when billing through it is configured.
    pub stripe: Option<crate::billing::stripe::StripeConfig>,
    /// How often the API calls counted in memory are written to `usage_tracking`; `None`: calls
    /// are not metered (and the `api_calls` limit is not enforced).
    pub metering: Option<Duration>,
    /// The credential vault's keys; without them, integrations cannot store credentials.
    pub vault: Option<Arc<crate::vault::Vault>>,
    /// The server's Google OAuth client, for connecting integrations on Google's consent screen.
    pub google_oauth: Option<crate::integrations::oauth::GoogleOAuthConfig>,
    /// The AI providers the assistant's replies come from.
    pub ai: crate::ai::provider::AiConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            bulk_timeout: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            public_url: "http://127.0.0.1:8080".into(),
            oidc: None,
            jwt: None,
            jwks_min_refetch: Duration::from_secs(60),
            trusted_proxies: Vec::new(),
            stripe: None,
            metering: Some(Duration::from_secs(1)),
            vault: None,
            google_oauth: None,
            ai: crate::ai::provider::AiConfig::default(),
        }
    }
}

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub db: RuntimePool,
    pub config: Arc<HttpConfig>,
    pub auth: Arc<ExternalAuth>,
    /// The Fast Track tools this build ships, their schemas compiled once.
    pub tools: Arc<crate::fasttrack::Catalog>,
    /// Stripe's API, when configured.
    pub stripe: Option<crate::billing::stripe::StripeClient>,
    /// API calls counted since the last flush (`HttpConfig::metering`).
    pub meter: Arc<crate::billing::meter::Meter>,
    /// For requests to other services made while answering (Google's token endpoint).
    pub http: reqwest::Client,
    /// For AI providers: no limit on a whole response (replies stream for as long as they
    /// take); silence is limited per read instead (`AiConfig::idle_timeout`).
    pub ai_http: reqwest::Client,
}

impl AppState {
    pub fn new(db: RuntimePool, config: HttpConfig) -> Result<Self, Error> {
        let auth = ExternalAuth::new(
            config.oidc.clone(),
            config.jwt.clone(),
            config.jwks_min_refetch,
        )?;
        let stripe = config
            .stripe
            .clone()
            .map(crate::billing::stripe::StripeClient::new)
            .transpose()
            .map_err(|e| Error::Internal(format!("the Stripe client: {e}")))?;
        Ok(Self {
            db,
            config: Arc::new(config),
            auth: Arc::new(auth),
            tools: Arc::new(crate::fasttrack::Catalog::shipped()?),
            stripe,
            meter: crate::billing::meter::Meter::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .map_err(|e| Error::Internal(format!("an HTTP client: {e}")))?,
            ai_http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| Error::Internal(format!("an HTTP client: {e}")))?,
        })
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every API operation, each routed and documented from its handler's `#[utoipa::path]` (the
/// path is written once, there); requests get the short time limit, bulk ingest the long one.
fn api_routes(config: &HttpConfig) -> OpenApiRouter<AppState> {
    let bulk = crate::kpis::bulk_routes()
        .merge(crate::crm::bulk_routes())
        .merge(crate::ai::reply_routes())
        .merge(crate::orgs::export::routes())
        .layer(time_limit(config.bulk_timeout));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .merge(crate::orgs::routes())
        .merge(crate::identity::routes())
        .merge(crate::api_keys::routes())
        .merge(crate::invitations::routes())
        .merge(crate::audit::routes())
        .merge(crate::kpis::routes())
        .merge(crate::goals::routes())
        .merge(crate::crm::routes())
        .merge(crate::content::routes())
        .merge(crate::billing::routes())
        .merge(crate::platform::routes())
        .merge(crate::integrations::routes())
        .merge(crate::ai::routes())
        .merge(crate::fasttrack::routes())
        .layer(time_limit(config.request_timeout))
        .merge(bulk)
}

/// The OpenAPI document of this API, as `/openapi.json` serves it.
pub fn api_document() -> utoipa::openapi::OpenApi {
    let mut document = api_routes(&HttpConfig::default()).into_openapi();
    openapi::complete(&mut document);
    document
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    // Bulk routes get their own, longer time limit; everything else shares the short one.
    let (api, mut document) = api_routes(&config).split_for_parts();
    openapi::complete(&mut document);
    // Served as built: the document and the router come from the same `routes!` calls.
    let document = Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
    api.route(
        "/openapi.json",
        get(move || {
            let document = document.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], document) }
        }),
    )
    .fallback(|| async { Error::NotFound })
        .with_state(state)
        .merge(docs::routes())
        .merge(console::routes())
        // Inside the routing, where each request's route template is known.
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    // The path only: a query may carry a secret (a calendar feed's token,
                    // an invitation's), and logs are not the place for it.
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                // Failed responses are logged once, by the error that made them (error.rs).
                .on_failure(()))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        // Bodies are read by the Json extractor, which answers 413 past this limit.
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(axum::middleware::map_response(security_headers))
}

/// The policy of every HTML page: nothing loads from anywhere but this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Headers every response carries: no content sniffing, no referrer sent elsewhere, nothing
/// stored by a cache unless the route says how (an answer may hold a CSRF token or a tenant's
/// data, and a cookie is not a header shared caches key on); and on HTML pages a
/// Content-Security-Policy (a page's own, stricter one stays) and no framing.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let headers = response.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        headers
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// A request over `limit` is dropped (its transaction rolls back) and answered 503.
fn time_limit(
    limit: Duration,
) -> impl tower::Layer<
    axum::routing::Route,
    Service = impl tower::Service<
        Request,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future = impl Send + 'static,
    > + Clone
                  + Send
                  + Sync
                  + 'static,
> + Clone
       + Send
       + Sync
       + 'static {
    ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: BoxError| async {
            Error::Timeout
        }))
        .timeout(limit)
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` (alive), `ready`, or `degraded`: ready, but something an operator must fix.
    pub status: &'static str,
    /// What is degraded (e.g. WAL archiving failing: backups stop covering new commits).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok",
        problems: Vec::new(),
    })
}

/// Readiness: the database answers.
///
/// 503 while it does not; `degraded` (still 200: requests are served) while WAL archiving fails.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Health),
    (status = 503, body = crate::http::Problem, content_type = "application/problem+json"),
))]
async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, Error> {
    let health = state
        .db
        .archive_health()
        .await
        .map_err(|_| Error::Unavailable)?;
    let problems: Vec<String> = health.problem().into_iter().collect();
    Ok(axum::Json(Health {
        status: if problems.is_empty() {
            "ready"
        } else {
            "degraded"
        },
        problems,
    }))
}

/// Serves the API of `state` on `listener` until `shutdown` resolves, then finishes in-flight
/// requests. axum's own `serve` has no header-read timeout: this is its loop with one.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let header_timeout = state.config.header_timeout;
    // Metering stops after the last connection has finished, and flushes what it counted.
    let (metering_stop, metering_stopped) = tokio::sync::oneshot::channel::<()>();
    let metering = state.config.metering.map(|interval| {
        tokio::spawn(state.meter.clone().run(state.db.clone(), interval, async {
            let _ = metering_stopped.await;
        }))
    });
    let app = router(state);
    // Dropped when shutdown begins: each connection then finishes its request and closes.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    // Every connection task holds a receiver; all gone means all finished.
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Responses go out as soon as they are written, not held back by Nagle's algorithm
        // waiting for the client's acknowledgement of the previous segment.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let service = hyper_util::service::TowerToHyperService::new(app.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(axum::body::Body::new)
            },
        ));
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_connection_end(result),
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    log_connection_end(connection.await);
                }
            }
            drop(done);
        });
    }
    drop(stop_tx);
    drop(done_rx);
    done_tx.closed().await;
    drop(metering_stop);
    if let Some(metering) = metering {
        if let Err(error) = metering.await {
            tracing::error!(%error, "metering stopped abnormally");
        }
    }
    Ok(())
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended");
    }
}
