//! Hostile input, generated from the OpenAPI document so that operations added later are covered
//! without anyone remembering to: a NUL character in any string field or query parameter, and
//! the headers every response carries.

use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::helpers::{openapi, read, TestApp};

/// `schema` with `$ref`s, `allOf`/`oneOf`/`anyOf` and nullable forms resolved to one schema.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    for combinator in ["allOf", "oneOf", "anyOf"] {
        if let Some(variants) = schema[combinator].as_array() {
            if let Some(first) = variants.iter().find(|v| v["type"] != "null") {
                return resolve(doc, first);
            }
        }
    }
    schema
}

fn is_string(schema: &Value) -> bool {
    schema["type"] == "string"
        || schema["type"]
            .as_array()
            .is_some_and(|types| types.iter().any(|t| t == "string"))
}

/// Every string field reachable in an object schema: (a body holding a NUL there, its path).
fn nul_bodies(doc: &Value, schema: &Value, path: &str) -> Vec<(Value, String)> {
    let schema = resolve(doc, schema);
    let mut found = Vec::new();
    let Some(properties) = schema["properties"].as_object() else {
        return found;
    };
    for (name, property) in properties {
        let here = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let property = resolve(doc, property);
        let wrap = |inner: Value| Value::Object(Map::from_iter([(name.clone(), inner)]));
        if is_string(property) {
            found.push((wrap(json!("a\u{0}b")), here));
        } else if property["type"] == "array" || property["items"].is_object() {
            let items = resolve(doc, &property["items"]);
            if is_string(items) {
                found.push((wrap(json!(["a\u{0}b"])), format!("{here}[0]")));
            } else {
                for (inner, inner_path) in nul_bodies(doc, items, &format!("{here}[0]")) {
                    found.push((wrap(json!([inner])), inner_path));
                }
            }
        } else {
            for (inner, inner_path) in nul_bodies(doc, property, &here) {
                found.push((wrap(inner), inner_path));
            }
        }
    }
    found
}

/// Every operation of the document: its path, method and description.
fn operations(doc: &Value) -> Vec<(&str, Method, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if let Ok(method) = method.to_uppercase().parse::<Method>() {
                found.push((path.as_str(), method, operation));
            }
        }
    }
    found
}

/// The request is answered 422 naming `field` first.
async fn assert_refused(request: reqwest::RequestBuilder, field: &str, what: &str) {
    let got = read(request.send().await.expect("send")).await;
    assert_eq!(
        got.0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{what} {field}: {}",
        got.1
    );
    assert_eq!(got.1["errors"][0]["field"], field, "{what}: {}", got.1);
}

#[tokio::test]
async fn a_nul_in_any_string_of_any_operation_is_a_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let doc = openapi(&app).await;
    let mut tried = 0;
    for (path, method, operation) in operations(&doc) {
        let concrete = crate::helpers::concrete_path(path, Some(alice.org));
        let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
        let documents_422 = operation["responses"].get("422").is_some();
        for (body, field) in nul_bodies(&doc, schema, "") {
            assert!(
                documents_422,
                "{method} {path} answers 422 but does not say so"
            );
            let request = app.request(method.clone(), Some(&alice.token), &concrete);
            assert_refused(request.json(&body), &field, &format!("{method} {path}")).await;
            tried += 1;
        }
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if parameter["in"] != "query" || !is_string(resolve(&doc, &parameter["schema"])) {
                continue;
            }
            let name = parameter["name"].as_str().expect("name");
            assert!(
                documents_422,
                "{method} {path} answers 422 but does not say so"
            );
            let url = format!("{concrete}?{name}=a%00b");
            let request = app.request(method.clone(), Some(&alice.token), &url);
            assert_refused(request, name, &format!("{method} {path}")).await;
            tried += 1;
        }
    }
    // The document has many string fields; a generator that found few is broken.
    assert!(tried >= 40, "only {tried} fields tried");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    for (path, html) in [
        ("/healthz", false),
        ("/v1/orgs", false),
        ("/v1/auth/csrf", false),
        ("/nowhere", false),
        ("/docs", true),
    ] {
        let response = app
            .request(Method::GET, None, path)
            .send()
            .await
            .expect("send");
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        // Unless a route says how it may be cached (the reference's assets, public pages).
        if !html {
            assert_eq!(headers["cache-control"], "no-store", "{path}");
        }
        let csp = headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok());
        if html {
            let csp = csp.expect("an HTML page has a CSP");
            assert!(csp.contains("default-src 'none'"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        } else {
            assert_eq!(csp, None, "{path}");
        }
    }
}

#[tokio::test]
async fn without_a_valid_credential_every_protected_operation_is_401_whatever_else_is_wrong() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    let mut tried = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        // Path parameters that are not even ids, a query no operation accepts, a NUL in the body.
        let concrete: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "not-an-id" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let url = format!("{concrete}?limit=bogus&bucket=bogus&after=x");
        for (method, operation) in item.as_object().expect("path item") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if operation["security"]
                .as_array()
                .is_none_or(|s| s.is_empty())
            {
                continue;
            }
            // No token, one of no kind we issue, and a well-formed one that was never issued.
            let unknown = format!("tnt_s_{}", "A".repeat(43));
            for token in [
                None,
                Some("garbage"),
                Some("tnt_x_not-a-kind-we-issue"),
                Some(unknown.as_str()),
            ] {
                let got = read(
                    app.request(method.clone(), token, &url)
                        .json(&json!({"name": "a\u{0}b", "limit": "x"}))
                        .send()
                        .await
                        .expect("send"),
                )
                .await;
                assert_eq!(
                    got.0,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} with {token:?}: {}",
                    got.1
                );
                assert!(
                    operation["responses"].get("401").is_some(),
                    "{method} {path} answers 401 but does not say so"
                );
                tried += 1;
            }
        }
    }
    assert!(tried >= 200, "only {tried} requests tried");
}

#[tokio::test]
async fn a_body_of_the_wrong_json_shape_is_a_422_not_read_field_by_field() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let doc = openapi(&app).await;
    let mut tried = 0;
    for (path, method, operation) in operations(&doc) {
        let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
        // A webhook checks its sender's signature over the raw body before reading any of it
        // (400 without one; stripe.rs).
        if schema.is_null() || path.starts_with("/v1/webhooks/") {
            continue;
        }
        // serde reads a struct from an array of its fields in order; a list from no object.
        let wrong = if resolve(&doc, schema)["type"] == "array" {
            json!({})
        } else {
            json!([null, null])
        };
        let concrete = crate::helpers::concrete_path(path, Some(alice.org));
        let request = app.request(method.clone(), Some(&alice.token), &concrete);
        assert_refused(
            request.json(&wrong),
            "body",
            &format!("{method} {path} with {wrong}"),
        )
        .await;
        tried += 1;
    }
    assert!(tried >= 25, "only {tried} bodies tried");
}
