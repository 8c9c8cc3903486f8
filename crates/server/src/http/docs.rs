//! The API reference at `/docs`, served entirely by this binary: the page, and the Scalar bundle
//! it runs (vendored in `assets/scalar`, pinned by version), reading `/openapi.json`. Nothing is
//! loaded from another origin, so it works offline.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

/// The vendored bundle's version; part of its URL, so a new version is never a stale cache hit.
const SCALAR_VERSION: &str = "1.76.0";
const SCALAR_JS: &[u8] = include_bytes!("../../assets/scalar/standalone.js");

/// `GET /docs`, `GET /docs/scalar-VERSION.js`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/docs", get(page))
        .route(&format!("/docs/scalar-{SCALAR_VERSION}.js"), get(script))
}

async fn page() -> Html<String> {
    // Scalar would load its web fonts from its CDN (the system's fonts are used instead) and
    // offer hosted services (AI agent, developer tools) that need its servers: all off.
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tenantry API reference</title>
</head>
<body>
<script id="api-reference" data-url="/openapi.json" data-configuration='{{"withDefaultFonts":false,"showDeveloperTools":"never","agent":{{"disabled":true}}}}'></script>
<script src="/docs/scalar-{SCALAR_VERSION}.js"></script>
</body>
</html>
"#
    ))
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // The URL names the version: the content behind it never changes.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        SCALAR_JS,
    )
}
