//! Responses a client or a shared cache may keep: a strong ETag over the body, the route's
//! `Cache-Control`, and `304 Not Modified` when the client already holds this body.

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

/// `body` as `content_type`, cacheable as `cache_control` says.
pub fn cacheable(
    request: &HeaderMap,
    content_type: &'static str,
    cache_control: &'static str,
    body: String,
) -> Response {
    let digest = Sha256::digest(body.as_bytes());
    let etag = format!(
        "\"{}\"",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..18])
    );
    let headers = [
        (CACHE_CONTROL, HeaderValue::from_static(cache_control)),
        // Base64url is always a valid header value.
        (
            ETAG,
            HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
    ];
    if holds(request, &etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let mut response = (headers, Body::from(body)).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Whether `If-None-Match` names `etag` (or `*`); weak comparison, as RFC 9110 §13.1.2 asks.
fn holds(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matching_tag_is_304_and_another_is_the_body() {
        let first = cacheable(&HeaderMap::new(), "text/plain", "no-cache", "hello".into());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[ETAG].clone();
        for sent in [
            etag.to_str().unwrap_or_default().to_string(),
            format!("\"x\", W/{}", etag.to_str().unwrap_or_default()),
            "*".to_string(),
        ] {
            let mut request = HeaderMap::new();
            request.insert(IF_NONE_MATCH, HeaderValue::from_str(&sent).unwrap());
            let again = cacheable(&request, "text/plain", "no-cache", "hello".into());
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{sent}");
            assert_eq!(again.headers()[ETAG], etag);
        }
        let mut request = HeaderMap::new();
        request.insert(IF_NONE_MATCH, etag);
        let changed = cacheable(&request, "text/plain", "no-cache", "hello!".into());
        assert_eq!(changed.status(), StatusCode::OK);
    }
}
