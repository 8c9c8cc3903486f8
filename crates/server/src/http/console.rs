//! The web console at `/`: one HTML page and its scripts and styles, embedded in the binary and
//! served from here (no second server, no CDN). The page is a client of the API like any other:
//! it signs in with the API's own session (cookie and CSRF token) and reads and writes through
//! `/v1`, so it adds no path around row-level security. Its assets' URLs carry a hash of their
//! content, so a new build is never a stale cache hit and an old one can be cached for good.

use std::sync::LazyLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

/// The console's files: name, content type, content. The page loads the first two; a domain's
/// pages load its module (`tools.js`, `crm.js`, `calendar.js`, `content.js`, `settings.js`,
/// `billing.js`, `integrations.js`, `assistant.js`) when first shown, and a page that draws a chart loads uPlot's (vendored, see
/// console/vendor/README.md).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/app.css"),
    ),
    (
        "tools.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/tools.js"),
    ),
    (
        "crm.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/crm.js"),
    ),
    (
        "calendar.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/calendar.js"),
    ),
    (
        "content.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/content.js"),
    ),
    (
        "settings.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/settings.js"),
    ),
    (
        "billing.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/billing.js"),
    ),
    (
        "integrations.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/integrations.js"),
    ),
    (
        "assistant.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/assistant.js"),
    ),
    (
        "uplot.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/vendor/uplot.js"),
    ),
    (
        "uplot.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/vendor/uplot.css"),
    ),
];

const INDEX: &str = include_str!("../../console/index.html");

/// The policy of the console's page, stricter than the API reference's: no inline script or
/// style, nothing from another origin, never in a frame.
const CONSOLE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The first 12 hex digits of the SHA-256 of every asset: their URLs' version.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    for (name, _, content) in ASSETS {
        hash.update(name.as_bytes());
        hash.update(content);
    }
    hash.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
});

/// The page, its assets' URLs filled in.
static PAGE: LazyLock<String> = LazyLock::new(|| INDEX.replace("{version}", &VERSION));

/// `GET /` and the console's own paths (links into it can be bookmarked and shared: each
/// serves the page, whose script shows what the path names), and `GET /console/{version}/{file}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route("/console/{version}/{file}", get(asset));
    for path in [
        "/",
        "/sign-in",
        "/sign-up",
        "/me",
        "/invitations/accept",
        "/orgs/{org}",
        "/orgs/{org}/{*rest}",
    ] {
        router = router.route(path, get(page));
    }
    router
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONSOLE_POLICY),
            // The page is small and names its assets by version: always ask for the current one.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE.as_str(),
    )
        .into_response()
}

async fn asset(
    axum::extract::Path((version, file)): axum::extract::Path<(String, String)>,
) -> Response {
    let found = ASSETS.iter().find(|(name, _, _)| *name == file);
    match found {
        Some((_, content_type, content)) if version == *VERSION => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                // The URL names the content: it never changes behind it.
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            *content,
        )
            .into_response(),
        _ => crate::kernel::error::Error::NotFound.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_assets_by_the_current_version() {
        for (name, _, _) in &ASSETS[..2] {
            assert!(
                PAGE.contains(&format!("/console/{}/{name}", *VERSION)),
                "{name} is loaded by the page"
            );
        }
        assert!(!PAGE.contains("{version}"));
    }
}
