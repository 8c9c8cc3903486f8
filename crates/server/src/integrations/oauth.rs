//! Connecting Google through its consent screen: OAuth 2.0's authorization code flow with PKCE
//! (S256) and offline access, so Google hands back a refresh token for the vault.
//!
//! The flow's state is sealed by the vault, not kept in a table: `{org}.{integration}.{sealed}`,
//! the sealed part (bound to that organization and integration) holding who started it, the PKCE
//! verifier, a hash of a nonce kept in an HttpOnly cookie of the browser that started, and when
//! it expires. The callback must come from that browser (the cookie, cleared when used), signed
//! in as that same person: otherwise someone could start a flow for their own integration, send
//! its link to a victim, and receive the victim's Google access when the victim consents.

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::google::{ANALYTICS_SCOPE, SHEETS_SCOPE};
use super::Provider;
use crate::kernel::error::Error;
use crate::vault::{Place, Vault};

/// The server's OAuth client at Google and where its flows go.
#[derive(Clone, Debug)]
pub struct GoogleOAuthConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Google's consent screen (`https://accounts.google.com/o/oauth2/v2/auth`).
    pub authorization_url: String,
    /// Google's token endpoint (`https://oauth2.googleapis.com/token`).
    pub token_url: String,
    /// This server's callback as registered with Google
    /// (`PUBLIC_URL/v1/integrations/oauth/callback`).
    pub redirect_url: String,
}

/// How long a started connection may wait for its callback.
const FLOW_SECONDS: i64 = 600;

#[derive(Serialize, Deserialize)]
struct Flow {
    user: Uuid,
    verifier: String,
    /// SHA-256 of the browser's flow cookie.
    browser: String,
    expires_at: i64,
}

fn place(org: Uuid, integration: Uuid) -> Place<'static> {
    Place {
        org,
        table: "integration_oauth",
        row: integration,
        column: "state",
    }
}

fn scope(provider: Provider) -> &'static str {
    match provider {
        Provider::GoogleSheets => SHEETS_SCOPE,
        _ => ANALYTICS_SCOPE,
    }
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

/// A started connection: Google's consent URL, and the nonce the browser keeps in its flow
/// cookie.
pub struct Started {
    pub authorization_url: String,
    pub browser_nonce: String,
}

/// Starts connecting `integration` of `org` for `user`.
pub fn start(
    config: &GoogleOAuthConfig,
    vault: &Vault,
    org: Uuid,
    integration: Uuid,
    provider: Provider,
    user: Uuid,
) -> Result<Started, Error> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verifier = random();
    let challenge = digest(&verifier);
    let browser_nonce = random();
    let flow = Flow {
        user,
        verifier,
        browser: digest(&browser_nonce),
        expires_at: chrono::Utc::now().timestamp() + FLOW_SECONDS,
    };
    let plain = serde_json::to_vec(&flow).map_err(|e| Error::Internal(e.to_string()))?;
    let state = format!(
        "{org}.{integration}.{}",
        b64.encode(vault.seal(&place(org, integration), &plain))
    );
    let mut url = reqwest::Url::parse(&config.authorization_url)
        .map_err(|e| Error::Internal(format!("the Google authorization URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", &config.redirect_url)
        .append_pair("scope", scope(provider))
        // A refresh token, and again on a second connection (Google sends it on consent only).
        .append_pair("access_type", "offline")
        .append_pair("prompt", "consent")
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(Started {
        authorization_url: url.into(),
        browser_nonce,
    })
}

/// A callback's state, opened: whose it is and for what.
pub struct Opened {
    pub org: Uuid,
    pub integration: Uuid,
    pub user: Uuid,
    pub verifier: String,
}

/// Opens a callback's `state`, arriving with the browser's flow cookie; anything this server did
/// not issue, that expired, or that another browser started, is refused.
pub fn open_state(
    vault: &Vault,
    state: &str,
    browser_nonce: Option<&str>,
) -> Result<Opened, Error> {
    let refused = || Error::InvalidToken("the state is not one this server issued");
    let mut parts = state.splitn(3, '.');
    let (Some(org), Some(integration), Some(sealed)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(refused());
    };
    let org: Uuid = org.parse().map_err(|_| refused())?;
    let integration: Uuid = integration.parse().map_err(|_| refused())?;
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| refused())?;
    let plain = vault
        .open(&place(org, integration), &sealed)
        .map_err(|_| refused())?;
    let flow: Flow = serde_json::from_slice(&plain).map_err(|_| refused())?;
    if browser_nonce.map(digest) != Some(flow.browser) {
        return Err(Error::InvalidToken(
            "this connection was started in another browser; start it again here",
        ));
    }
    if flow.expires_at < chrono::Utc::now().timestamp() {
        return Err(Error::InvalidToken(
            "this connection was started more than 10 minutes ago; start it again",
        ));
    }
    Ok(Opened {
        org,
        integration,
        user: flow.user,
        verifier: flow.verifier,
    })
}

/// Exchanges the callback's `code` for a refresh token at Google's token endpoint.
pub async fn exchange(
    http: &reqwest::Client,
    config: &GoogleOAuthConfig,
    code: &str,
    verifier: &str,
) -> Result<String, Error> {
    let response = http
        .post(&config.token_url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", config.redirect_url.as_str()),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .map_err(|e| Error::Upstream(format!("Google's token endpoint: {e}")))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        return Err(Error::Upstream(format!(
            "Google refused the authorization code ({}: {}); start the connection again",
            answer["error"].as_str().unwrap_or("error"),
            answer["error_description"].as_str().unwrap_or("")
        )));
    }
    answer["refresh_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::Upstream(
                "Google granted access without a refresh token (offline access was not given); start the connection again".into(),
            )
        })
}
