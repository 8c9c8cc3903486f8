//! An OpenID provider played inside the tests (Google for the code flow, Clerk for bearer JWTs):
//! discovery document, JWKS, token endpoint with single-use codes and PKCE, and real signatures;
//! for a browser, an authorization endpoint where someone is already signed in. The code under
//! test only sees a different issuer URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "tenantry-test-client";
pub const CLIENT_SECRET: &str = "tenantry-test-secret";
pub const REDIRECT_URL: &str = "http://127.0.0.1/v1/auth/oidc/callback";

/// A signing key of the provider.
#[derive(Clone)]
pub struct Signer {
    pub kid: String,
    pub alg: Algorithm,
    pub key: EncodingKey,
}

pub fn rsa(kid: &str, file: &str) -> Signer {
    let pem = std::fs::read(format!(
        "{}/tests/api/fixtures/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    Signer {
        kid: kid.into(),
        alg: Algorithm::RS256,
        key: EncodingKey::from_rsa_pem(&pem).expect("rsa pem"),
    }
}

pub fn ec(kid: &str, file: &str) -> Signer {
    let pem = std::fs::read(format!(
        "{}/tests/api/fixtures/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    Signer {
        kid: kid.into(),
        alg: Algorithm::ES256,
        key: EncodingKey::from_ec_pem(&pem).expect("ec pem"),
    }
}

impl Signer {
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("sign")
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).expect("jwk");
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }
}

/// `alg: none`: a token with no signature at all.
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(claims)
    )
}

/// HS256 "signed" with the public key as the HMAC secret (the classic key-confusion attack).
pub fn hmac_with_public_key(kid: &str, claims: &Value) -> String {
    let public = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(format!(
            "{}/tests/api/fixtures/rsa1.pem",
            env!("CARGO_MANIFEST_DIR")
        ))
        .output()
        .expect("openssl")
        .stdout;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&public)).expect("sign")
}

struct Pending {
    challenge: String,
    id_token: String,
    /// Where the authorization request asked the browser to be sent back (the token request
    /// must name it again).
    redirect_uri: String,
    used: bool,
}

#[derive(Default)]
struct Inner {
    published: Vec<Signer>,
    codes: HashMap<String, Pending>,
    jwks_hits: usize,
    /// Who is signed in at the provider in the browser (its subject and email).
    browser_user: Option<(String, String)>,
}

#[derive(Clone)]
pub struct Provider {
    pub issuer: String,
    inner: Arc<Mutex<Inner>>,
}

impl Provider {
    pub async fn start(published: Vec<Signer>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let provider = Self {
            issuer,
            inner: Arc::new(Mutex::new(Inner {
                published,
                ..Inner::default()
            })),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(provider.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        provider
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    pub fn publish(&self, signer: Signer) {
        self.inner.lock().expect("lock").published.push(signer);
    }

    pub fn jwks_hits(&self) -> usize {
        self.inner.lock().expect("lock").jwks_hits
    }

    /// Claims Google would put in an ID token for this authorization request.
    pub fn id_claims(&self, request: &AuthRequest, sub: &str, email: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer, "aud": CLIENT_ID, "sub": sub, "email": email, "email_verified": true,
            "name": "Grace Hopper", "picture": "https://img.example/grace.png", "nonce": request.nonce,
            "iat": now, "exp": now + 600,
        })
    }

    /// The user "signs in at the provider": the provider issues a code for `id_token`.
    pub fn issue_code(&self, request: &AuthRequest, id_token: String) -> String {
        self.issue_code_to(request, id_token, REDIRECT_URL)
    }

    fn issue_code_to(&self, request: &AuthRequest, id_token: String, redirect_uri: &str) -> String {
        let code = format!("code-{}", uuid::Uuid::new_v4());
        self.inner.lock().expect("lock").codes.insert(
            code.clone(),
            Pending {
                challenge: request.code_challenge.clone(),
                id_token,
                redirect_uri: redirect_uri.to_owned(),
                used: false,
            },
        );
        code
    }

    /// Someone signed in at the provider in the browser: an authorization request sends the
    /// browser straight back with a code for them (as Google does once consent was given).
    pub fn sign_in_browser_as(&self, sub: &str, email: &str) {
        self.inner.lock().expect("lock").browser_user = Some((sub.into(), email.into()));
    }
}

/// What our service asked the provider for (parsed from the redirect).
pub struct AuthRequest {
    pub state: String,
    pub nonce: String,
    pub code_challenge: String,
}

impl AuthRequest {
    pub fn parse(url: &str) -> Self {
        let url = reqwest::Url::parse(url).expect("authorization url");
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
        assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));
        assert_eq!(
            q.get("code_challenge_method").map(String::as_str),
            Some("S256")
        );
        assert!(q
            .get("scope")
            .is_some_and(|s| s.split(' ').any(|x| x == "openid")));
        Self {
            state: q["state"].clone(),
            nonce: q["nonce"].clone(),
            code_challenge: q["code_challenge"].clone(),
        }
    }
}

async fn discovery(State(p): State<Provider>) -> Json<Value> {
    Json(json!({
        "issuer": p.issuer,
        "authorization_endpoint": format!("{}/authorize", p.issuer),
        "token_endpoint": format!("{}/token", p.issuer),
        "jwks_uri": format!("{}/jwks", p.issuer),
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(State(p): State<Provider>) -> Json<JwkSet> {
    let mut inner = p.inner.lock().expect("lock");
    inner.jwks_hits += 1;
    Json(JwkSet {
        keys: inner.published.iter().map(Signer::jwk).collect(),
    })
}

async fn token(
    State(p): State<Provider>,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let refuse = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": why})),
        )
    };
    if form.get("grant_type").map(String::as_str) != Some("authorization_code")
        || form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return refuse("client mismatch");
    }
    let mut inner = p.inner.lock().expect("lock");
    let Some(pending) = form.get("code").and_then(|c| inner.codes.get_mut(c)) else {
        return refuse("unknown code");
    };
    if form.get("redirect_uri") != Some(&pending.redirect_uri) {
        return refuse("redirect mismatch");
    }
    if pending.used {
        return refuse("code already used");
    }
    pending.used = true;
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    if challenge != pending.challenge {
        return refuse("PKCE verification failed");
    }
    (
        StatusCode::OK,
        Json(
            json!({"access_token": "opaque", "token_type": "Bearer", "expires_in": 3600, "id_token": pending.id_token}),
        ),
    )
}

/// The browser at the provider's authorization endpoint: sent back to `redirect_uri` with a code
/// for whoever is signed in there, or with `error=access_denied` when no one is.
async fn authorize(
    State(p): State<Provider>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Redirect, (StatusCode, &'static str)> {
    let (Some(redirect_uri), Some(state)) = (query.get("redirect_uri"), query.get("state")) else {
        return Err((
            StatusCode::BAD_REQUEST,
            "redirect_uri and state are required",
        ));
    };
    if query.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return Err((StatusCode::BAD_REQUEST, "unknown client"));
    }
    let user = p.inner.lock().expect("lock").browser_user.clone();
    let Some((sub, email)) = user else {
        return Ok(Redirect::to(&format!(
            "{redirect_uri}?error=access_denied&state={state}"
        )));
    };
    let request = AuthRequest {
        state: state.clone(),
        nonce: query.get("nonce").cloned().unwrap_or_default(),
        code_challenge: query.get("code_challenge").cloned().unwrap_or_default(),
    };
    let signer = p.inner.lock().expect("lock").published[0].clone();
    let id_token = signer.sign(&p.id_claims(&request, &sub, &email));
    let code = p.issue_code_to(&request, id_token, redirect_uri);
    Ok(Redirect::to(&format!(
        "{redirect_uri}?code={code}&state={state}"
    )))
}
