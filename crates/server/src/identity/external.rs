//! Sign-in through other identity providers: Google (or any OpenID Connect issuer) with the
//! authorization-code flow, and bearer JWTs of an external provider such as Clerk. Both verify
//! signatures against the issuer's JWKS, with the accepted algorithms fixed by configuration,
//! never read from the token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

use crate::kernel::error::{Error, Result};

/// An OpenID Connect issuer for sign-in (Google by default).
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// The issuer URL; discovery is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Our callback URL, registered with the provider.
    pub redirect_url: String,
    /// What `users.provider` says for accounts made this way: `google` or `oidc`.
    pub provider: String,
    /// Accepted signature algorithms (Google: RS256).
    pub algorithms: Vec<Algorithm>,
}

impl OidcConfig {
    pub const GOOGLE_ISSUER: &'static str = "https://accounts.google.com";

    pub fn google(client_id: String, client_secret: String, redirect_url: String) -> Self {
        Self {
            issuer: Self::GOOGLE_ISSUER.into(),
            client_id,
            client_secret,
            redirect_url,
            provider: "google".into(),
            algorithms: vec![Algorithm::RS256],
        }
    }
}

/// An external issuer of bearer JWTs (e.g. Clerk session tokens).
#[derive(Clone, Debug)]
pub struct JwtConfig {
    pub issuer: String,
    pub jwks_url: String,
    /// Required `aud`, when the issuer sets one.
    pub audience: Option<String>,
    /// Accepted `azp` (authorized party) values; empty: not checked.
    pub authorized_parties: Vec<String>,
    /// Accepted signature algorithms (Clerk: RS256; ES256 also supported).
    pub algorithms: Vec<Algorithm>,
}

/// A JWKS fetched from an issuer and cached; refetched when a token names an unknown key
/// (rotation), at most once per `min_refetch`.
pub struct Jwks {
    url: String,
    http: reqwest::Client,
    min_refetch: Duration,
    cache: RwLock<(HashMap<String, DecodingKey>, Option<Instant>)>,
}

impl Jwks {
    pub fn new(url: String, http: reqwest::Client, min_refetch: Duration) -> Self {
        Self {
            url,
            http,
            min_refetch,
            cache: RwLock::new((HashMap::new(), None)),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>> {
        let set: JwkSet = get_json(&self.http, &self.url).await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) {
                keys.insert(kid, key);
            }
        }
        Ok(keys)
    }

    /// The key with id `kid`.
    pub async fn key(&self, kid: &str) -> Result<DecodingKey> {
        {
            let cache = self.cache.read().await;
            if let Some(key) = cache.0.get(kid) {
                return Ok(key.clone());
            }
            if cache.1.is_some_and(|at| at.elapsed() < self.min_refetch) {
                return Err(Error::InvalidToken("unknown signing key"));
            }
        }
        let mut cache = self.cache.write().await;
        // Another request may have refetched while we waited.
        if cache.1.is_none_or(|at| at.elapsed() >= self.min_refetch) {
            cache.0 = self.fetch().await?;
            cache.1 = Some(Instant::now());
        }
        cache
            .0
            .get(kid)
            .cloned()
            .ok_or(Error::InvalidToken("unknown signing key"))
    }
}

async fn get_json<T: DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| Error::Upstream(format!("GET {url}: {e}")))?;
    if !response.status().is_success() {
        return Err(Error::Upstream(format!("GET {url}: {}", response.status())));
    }
    response
        .json()
        .await
        .map_err(|e| Error::Upstream(format!("GET {url}: {e}")))
}

/// Verifies `token`'s signature with `jwks` and its standard claims with `validation`.
async fn verify<T: DeserializeOwned>(
    token: &str,
    jwks: &Jwks,
    validation: &Validation,
) -> Result<T> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| Error::InvalidToken("malformed token"))?;
    // Checked before any key is looked up: `alg: none` or an HMAC algorithm never gets further.
    if !validation.algorithms.contains(&header.alg) {
        return Err(Error::InvalidToken("algorithm not accepted"));
    }
    let kid = header
        .kid
        .ok_or(Error::InvalidToken("token names no signing key"))?;
    let key = jwks.key(&kid).await?;
    // The library wants every listed algorithm to fit the key: narrow to the one in use, which
    // is already known to be accepted. A key of another family then fails as a bad signature.
    let mut validation = validation.clone();
    validation.algorithms = vec![header.alg];
    jsonwebtoken::decode::<T>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            Error::InvalidToken(match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::ImmatureSignature => "token not yet valid",
                ErrorKind::InvalidIssuer => "wrong issuer",
                ErrorKind::InvalidAudience => "wrong audience",
                ErrorKind::InvalidSignature => "bad signature",
                ErrorKind::InvalidAlgorithm => "algorithm not accepted",
                ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                _ => "invalid token",
            })
        })
}

fn validation(algorithms: &[Algorithm], issuer: &str, audience: Option<&str>) -> Validation {
    let mut v = Validation::new(algorithms.first().copied().unwrap_or(Algorithm::RS256));
    v.algorithms = algorithms.to_vec();
    v.leeway = 30;
    v.validate_nbf = true;
    v.set_issuer(&[issuer]);
    let mut required = vec!["exp", "iss", "sub"];
    match audience {
        Some(aud) => {
            v.set_audience(&[aud]);
            required.push("aud");
        }
        None => v.validate_aud = false,
    }
    v.set_required_spec_claims(&required);
    v
}

/// Who an external provider says signed in.
#[derive(Clone, Debug)]
pub struct ExternalIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
}

#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    nonce: Option<String>,
    email: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    email_verified: bool,
    name: Option<String>,
    picture: Option<String>,
}

/// Some issuers send `"email_verified": "true"`.
fn bool_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    Ok(match Option::<Flag>::deserialize(d)? {
        Some(Flag::Bool(b)) => b,
        Some(Flag::Text(t)) => t == "true",
        None => false,
    })
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// An OpenID Connect issuer in use: its discovered endpoints and its keys.
pub struct Oidc {
    pub config: OidcConfig,
    http: reqwest::Client,
    discovered: tokio::sync::OnceCell<(Discovery, Jwks)>,
    min_refetch: Duration,
}

/// What starting a sign-in produces: the provider URL to send the browser to, and the values
/// the callback must see again (kept server-side).
pub struct FlowStart {
    pub authorization_url: String,
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Oidc {
    pub fn new(config: OidcConfig, http: reqwest::Client, min_refetch: Duration) -> Self {
        Self {
            config,
            http,
            discovered: tokio::sync::OnceCell::new(),
            min_refetch,
        }
    }

    async fn discovery(&self) -> Result<&(Discovery, Jwks)> {
        self.discovered
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer.trim_end_matches('/')
                );
                let doc: Discovery = get_json(&self.http, &url).await?;
                if doc.issuer != self.config.issuer {
                    return Err(Error::Upstream(format!(
                        "discovery names issuer {} instead of {}",
                        doc.issuer, self.config.issuer
                    )));
                }
                let jwks = Jwks::new(doc.jwks_uri.clone(), self.http.clone(), self.min_refetch);
                Ok((doc, jwks))
            })
            .await
    }

    /// A new authorization request with PKCE (S256), `state` and `nonce`.
    pub async fn start(&self) -> Result<FlowStart> {
        let (doc, _) = self.discovery().await?;
        let (state, nonce, code_verifier) = (random_token(), random_token(), random_token());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(code_verifier.as_bytes()));
        let mut url = reqwest::Url::parse(&doc.authorization_endpoint)
            .map_err(|e| Error::Upstream(format!("authorization endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_url)
            .append_pair("scope", "openid email profile")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(FlowStart {
            authorization_url: url.into(),
            state,
            nonce,
            code_verifier,
        })
    }

    /// Exchanges `code` (with the flow's PKCE verifier) for an ID token and verifies it:
    /// signature, `iss`, `aud`, `exp`, `nbf`, and the flow's `nonce`.
    pub async fn finish(
        &self,
        code: &str,
        nonce: &str,
        code_verifier: &str,
    ) -> Result<ExternalIdentity> {
        let (doc, jwks) = self.discovery().await?;
        let response = self
            .http
            .post(&doc.token_endpoint)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.config.redirect_url.as_str()),
                ("client_id", self.config.client_id.as_str()),
                ("client_secret", self.config.client_secret.as_str()),
                ("code_verifier", code_verifier),
            ])
            .send()
            .await
            .map_err(|e| Error::Upstream(format!("token endpoint: {e}")))?;
        if !response.status().is_success() {
            // A used, expired or forged code: the provider refuses it.
            return Err(Error::InvalidToken(
                "the provider refused the authorization code",
            ));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            id_token: String,
        }
        let tokens: TokenResponse = response
            .json()
            .await
            .map_err(|e| Error::Upstream(format!("token endpoint: {e}")))?;
        let v = validation(
            &self.config.algorithms,
            &self.config.issuer,
            Some(&self.config.client_id),
        );
        let claims: IdClaims = verify(&tokens.id_token, jwks, &v).await?;
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(Error::InvalidToken("nonce mismatch"));
        }
        Ok(ExternalIdentity {
            issuer: self.config.issuer.clone(),
            subject: claims.sub,
            email: claims.email,
            email_verified: claims.email_verified,
            name: claims.name,
            picture: claims.picture,
        })
    }
}

/// Bearer JWTs of an external provider.
pub struct ExternalJwt {
    pub config: JwtConfig,
    jwks: Jwks,
}

#[derive(Deserialize)]
struct SessionClaims {
    sub: String,
    azp: Option<String>,
    email: Option<String>,
    name: Option<String>,
}

impl ExternalJwt {
    pub fn new(config: JwtConfig, http: reqwest::Client, min_refetch: Duration) -> Self {
        let jwks = Jwks::new(config.jwks_url.clone(), http, min_refetch);
        Self { config, jwks }
    }

    /// Verifies a bearer JWT; who it names.
    pub async fn verify(&self, token: &str) -> Result<ExternalIdentity> {
        let v = validation(
            &self.config.algorithms,
            &self.config.issuer,
            self.config.audience.as_deref(),
        );
        let claims: SessionClaims = verify(token, &self.jwks, &v).await?;
        if !self.config.authorized_parties.is_empty()
            && !claims
                .azp
                .as_ref()
                .is_some_and(|azp| self.config.authorized_parties.contains(azp))
        {
            return Err(Error::InvalidToken("authorized party not accepted"));
        }
        Ok(ExternalIdentity {
            issuer: self.config.issuer.clone(),
            subject: claims.sub,
            email: claims.email,
            email_verified: false,
            name: claims.name,
            picture: None,
        })
    }
}

/// The external sign-in methods configured for this service.
#[derive(Default)]
pub struct ExternalAuth {
    pub oidc: Option<Oidc>,
    pub jwt: Option<ExternalJwt>,
}

impl ExternalAuth {
    pub fn new(
        oidc: Option<OidcConfig>,
        jwt: Option<JwtConfig>,
        min_refetch: Duration,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Internal(format!("http client: {e}")))?;
        Ok(Self {
            oidc: oidc.map(|c| Oidc::new(c, http.clone(), min_refetch)),
            jwt: jwt.map(|c| ExternalJwt::new(c, http, min_refetch)),
        })
    }
}

/// Whether a bearer value looks like a JWT (three base64url parts), not one of our tokens.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("ey") && token.matches('.').count() == 2
}
