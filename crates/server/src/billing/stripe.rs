//! Stripe, spoken over HTTP by hand (the official crates compile the whole API): webhook
//! signatures verified on the raw body, and the few API calls billing needs.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How Tenantry reaches Stripe.
#[derive(Clone, Debug)]
pub struct StripeConfig {
    /// `sk_…`: the API's bearer credential.
    pub secret_key: String,
    /// The webhook endpoint's signing secrets (`whsec_…`): more than one while rotating.
    pub webhook_secrets: Vec<String>,
    /// Stripe's API (`https://api.stripe.com`); tests point it at their own server.
    pub api_base: String,
}

/// How far a signature's timestamp may be from now (Stripe's libraries' default).
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a webhook's signature was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing or malformed")]
    Malformed,
    #[error("the signature's timestamp is more than 300 s from now")]
    Stale,
    #[error("no signature matches the body with any configured secret")]
    Mismatch,
}

/// Checks `Stripe-Signature` (`t=…,v1=…[,v1=…]`) against the raw `body`: HMAC-SHA256 of
/// `"{t}.{body}"` under any of `secrets`, compared in constant time, `t` within 300 s of `now`.
pub fn verify_signature(
    header: &str,
    body: &[u8],
    secrets: &[String],
    now: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(decode_hex(v).ok_or(SignatureError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        for signature in &signatures {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
                continue;
            };
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            if mac.verify_slice(signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// The `Stripe-Signature` header Stripe would send for `body` at `timestamp` (for tests and
/// tools that play Stripe).
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

fn id_of(object: &serde_json::Value) -> Result<String, String> {
    object["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "Stripe's answer has no id".into())
}

fn url_of(session: &serde_json::Value) -> Result<String, String> {
    session["url"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "Stripe's session has no url".into())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The calls billing makes to Stripe's API.
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    config: StripeConfig,
}

impl StripeClient {
    pub fn new(config: StripeConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    /// The subscription as Stripe has it now.
    pub async fn subscription(&self, id: &str) -> Result<serde_json::Value, String> {
        self.object("subscriptions", id).await
    }

    /// The invoice as Stripe has it now.
    pub async fn invoice(&self, id: &str) -> Result<serde_json::Value, String> {
        self.object("invoices", id).await
    }

    /// A new customer for an organization (its id in Stripe's metadata, for people reading
    /// Stripe's dashboard; Tenantry itself never trusts metadata).
    pub async fn create_customer(
        &self,
        organization: uuid::Uuid,
        name: &str,
        email: Option<&str>,
    ) -> Result<String, String> {
        let org = organization.to_string();
        let mut form = vec![("name", name), ("metadata[organization_id]", org.as_str())];
        if let Some(email) = email {
            form.push(("email", email));
        }
        let created = self.post("customers", &form).await?;
        id_of(&created)
    }

    /// A Checkout Session subscribing `customer` to `price`; its URL.
    pub async fn checkout_session(
        &self,
        customer: &str,
        price: &str,
        organization: uuid::Uuid,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<String, String> {
        let org = organization.to_string();
        let session = self
            .post(
                "checkout/sessions",
                &[
                    ("mode", "subscription"),
                    ("customer", customer),
                    ("line_items[0][price]", price),
                    ("line_items[0][quantity]", "1"),
                    ("success_url", success_url),
                    ("cancel_url", cancel_url),
                    ("client_reference_id", org.as_str()),
                ],
            )
            .await?;
        url_of(&session)
    }

    /// A Customer Portal session of `customer`; its URL.
    pub async fn portal_session(&self, customer: &str, return_url: &str) -> Result<String, String> {
        let session = self
            .post(
                "billing_portal/sessions",
                &[("customer", customer), ("return_url", return_url)],
            )
            .await?;
        url_of(&session)
    }

    /// `POST /v1/{path}`, form-encoded as Stripe's API takes it.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<serde_json::Value, String> {
        let request = self.http.post(self.url(path)).form(form);
        self.send(request, &format!("POST {path}")).await
    }

    /// `GET /v1/{collection}/{id}`.
    async fn object(&self, collection: &str, id: &str) -> Result<serde_json::Value, String> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("not a Stripe id: {id:?}"));
        }
        let path = format!("{collection}/{id}");
        let request = self.http.get(self.url(&path));
        self.send(request, &format!("GET {path}")).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.config.api_base.trim_end_matches('/'))
    }

    /// Sends `request` with the API key; Stripe's JSON answer, or what went wrong.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<serde_json::Value, String> {
        let response = request
            .bearer_auth(&self.config.secret_key)
            .send()
            .await
            .map_err(|e| format!("Stripe did not answer {what}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("Stripe answered {status} to {what}"));
        }
        response
            .json()
            .await
            .map_err(|e| format!("Stripe's answer to {what} is not JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_on_the_raw_body_within_the_tolerance() {
        let secrets = vec!["whsec_old".to_string(), "whsec_new".to_string()];
        let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
        let now = 1_800_000_000;
        let good = sign(body, "whsec_new", now);
        assert_eq!(verify_signature(&good, body, &secrets, now), Ok(()));
        assert_eq!(verify_signature(&good, body, &secrets, now + 300), Ok(()));
        assert_eq!(
            verify_signature(&good, body, &secrets, now + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(
                &good,
                br#"{"id": "evt_1","type":"invoice.paid"}"#,
                &secrets,
                now
            ),
            Err(SignatureError::Mismatch),
            "the body re-serialized"
        );
        assert_eq!(
            verify_signature(&sign(body, "whsec_other", now), body, &secrets, now),
            Err(SignatureError::Mismatch)
        );
        // One of several v1 signatures may match (Stripe sends one per active secret).
        let two = format!("{good},v1={}", "00".repeat(32));
        assert_eq!(verify_signature(&two, body, &secrets, now), Ok(()));
        for malformed in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz"] {
            assert_eq!(
                verify_signature(malformed, body, &secrets, now),
                Err(SignatureError::Malformed),
                "{malformed}"
            );
        }
    }
}
