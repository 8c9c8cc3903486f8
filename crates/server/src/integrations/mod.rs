//! Integrations (migration 0041; issue 19): an organization's connections to Stripe, Google
//! Analytics and Google Sheets. Credentials are sealed by the vault before they are stored
//! (`integration_secrets`, admins only) and never returned: the API shows a masked hint.

pub mod google;
pub mod oauth;
pub mod routes;
pub mod store;
pub mod stripe;
pub mod sync;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::kernel::input::{json_object, text, Checks, Validate};
use crate::text_enum;

pub use routes::routes;

text_enum! {
    /// The service an integration talks to.
    pub enum Provider {
        Stripe = "stripe", GoogleAnalytics = "google_analytics", GoogleSheets = "google_sheets",
    }
}

impl Provider {
    /// Checks that `credentials` hold what a sync of this provider needs.
    pub fn check_credentials(self, credentials: &Credentials) -> Result<(), String> {
        match self {
            Provider::Stripe => match credentials.get("api_key") {
                None => Err("Stripe needs `api_key`".into()),
                Some(key) if !key.starts_with(['r', 's']) => {
                    Err("a Stripe API key starts with rk_ or sk_".into())
                }
                Some(_) => Ok(()),
            },
            Provider::GoogleAnalytics | Provider::GoogleSheets => {
                match (
                    credentials.get("refresh_token"),
                    credentials.get("service_account_key"),
                ) {
                    (Some(_), None) => {}
                    (None, Some(key)) => {
                        google::ServiceAccountKey::parse(key)
                            .map_err(|e| format!("service_account_key: {e}"))?;
                    }
                    _ => {
                        return Err(format!(
                            "{} needs `refresh_token` (OAuth, offline access) or `service_account_key` (a service account's JSON key), one of them",
                            self.label()
                        ))
                    }
                }
                if credentials.contains_key("client_id")
                    != credentials.contains_key("client_secret")
                {
                    return Err("`client_id` and `client_secret` go together".into());
                }
                Ok(())
            }
        }
    }

    /// Checks the configuration a sync of this provider needs (what is not secret).
    pub fn check_config(self, config: &serde_json::Value) -> Result<(), String> {
        match self {
            Provider::Stripe => Ok(()),
            Provider::GoogleAnalytics => {
                if google::property_id(config).is_none() {
                    return Err(
                        "Google Analytics needs `property_id`, the GA4 property's number".into(),
                    );
                }
                match &config["conversions_metric"] {
                    serde_json::Value::Null => {}
                    serde_json::Value::String(m) if google::is_metric_name(m) => {}
                    _ => {
                        return Err(
                            "`conversions_metric` is a GA4 metric's name (default keyEvents)"
                                .into(),
                        )
                    }
                }
                match &config["metrics"] {
                    serde_json::Value::Null => Ok(()),
                    serde_json::Value::Object(custom)
                        if custom.len() <= google::MAX_CUSTOM_METRICS
                            && custom.iter().all(|(ours, theirs)| {
                                is_our_metric_name(ours)
                                    && !self.metrics().contains(&ours.as_str())
                                    && theirs.as_str().is_some_and(google::is_metric_name)
                            }) =>
                    {
                        Ok(())
                    }
                    _ => Err(format!(
                        "`metrics` names up to {} more metrics to read, as {{\"our_name\": \"ga4MetricName\"}} (our names in lowercase a-z, 0-9 and _, none of {})",
                        google::MAX_CUSTOM_METRICS,
                        self.metrics().join(", ")
                    )),
                }
            }
            Provider::GoogleSheets => google::SheetConfig::from(config).map(|_| ()),
        }
    }

    /// The metrics a sync of this provider can write, each to the KPI it is mapped to.
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            Provider::Stripe => &["mrr", "active_subscriptions", "new_customers", "revenue"],
            Provider::GoogleAnalytics => &["active_users", "sessions", "conversions"],
            Provider::GoogleSheets => &["value"],
        }
    }

    /// Days before the last sync a later sync reads again: where late data lands (Stripe's
    /// refunds; GA4 finishes processing a day within two).
    pub fn late_days(self) -> u64 {
        match self {
            Provider::GoogleAnalytics => 3,
            Provider::Stripe | Provider::GoogleSheets => 1,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Provider::Stripe => "Stripe",
            Provider::GoogleAnalytics => "Google Analytics",
            Provider::GoogleSheets => "Google Sheets",
        }
    }
}

/// An integration as members see it: never its credentials, only their hint.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Integration {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub provider: Provider,
    pub name: String,
    pub is_active: bool,
    /// What is not secret: a GA4 property id, a spreadsheet and range.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// When syncs run (five-field cron, UTC).
    pub schedule: String,
    pub last_sync_at: Option<DateTime<Utc>>,
    /// When the schedule next queues a sync; null while paused after the provider refused
    /// (an admin's change to it, or a sync asked for, resumes it).
    pub next_sync_at: Option<DateTime<Utc>>,
    /// False when the plan in force does not let this integration sync (it lacks the feature,
    /// or allows fewer active integrations than are connected: the newest wait).
    pub within_plan: Option<bool>,
    /// `pending`, `success` or `error`.
    pub sync_status: String,
    pub error_message: Option<String>,
    /// The stored credentials, masked (`api_key …4242`); to admins only.
    pub credentials_hint: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Integration {
    /// The metrics a sync of this integration can write: its provider's, and for Google
    /// Analytics the ones its configuration adds (`config.metrics`: our name → GA4's).
    pub fn metrics(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .provider
            .metrics()
            .iter()
            .map(|m| m.to_string())
            .collect();
        if self.provider == Provider::GoogleAnalytics {
            if let Some(custom) = self.config["metrics"].as_object() {
                all.extend(custom.keys().cloned());
            }
        }
        all
    }
}

/// Which KPI a provider metric feeds.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Mapping {
    pub metric: String,
    pub kpi_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// The last sync that wrote this mapping's KPI; null until then (the next sync backfills).
    pub synced_at: Option<DateTime<Utc>>,
}

/// All of an integration's mappings at once: metric → KPI id (an empty object removes them).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingsChange {
    pub mappings: BTreeMap<String, Uuid>,
}

impl Validate for MappingsChange {
    fn check(&self, checks: &mut Checks) {
        checks.field("mappings", Some(&self.mappings), |m| {
            if m.len() > 20 {
                Err("at most 20 metrics".into())
            } else {
                Ok(())
            }
        });
    }
}

/// A metric's name on our side (what mappings name): as the database's check says.
fn is_our_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 63
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Credentials: names to values (`{"api_key": "rk_live_…"}`), write-only.
pub type Credentials = BTreeMap<String, String>;

/// A new integration.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIntegration {
    pub provider: Provider,
    /// Default: the provider's name. Unique per provider in the organization.
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// Stripe: `api_key` (a restricted key, `rk_…`, or a secret key, `sk_…`); Google:
    /// `refresh_token` (and `client_id`, `client_secret` when not the server's) or
    /// `service_account_key` — or none, to connect it afterwards on Google's consent screen
    /// (`POST …/authorize`).
    pub credentials: Option<Credentials>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    /// Five-field cron in UTC (default: hourly at :15).
    pub schedule: Option<String>,
    pub is_active: Option<bool>,
}

/// Changes to an integration; new credentials replace the stored ones.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationChanges {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    pub credentials: Option<Credentials>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    pub schedule: Option<String>,
    pub is_active: Option<bool>,
}

fn check_credentials(checks: &mut Checks, provider: Option<Provider>, credentials: &Credentials) {
    checks.field("credentials", Some(credentials), |c| {
        if c.is_empty() || c.len() > 10 {
            return Err("1 to 10 named values".into());
        }
        if c.iter()
            .any(|(k, v)| k.is_empty() || k.len() > 64 || v.is_empty() || v.len() > 8192)
        {
            return Err("names of 1 to 64 characters, values of 1 to 8192".into());
        }
        match provider {
            Some(provider) => provider.check_credentials(c),
            None => Ok(()),
        }
    });
}

fn check_schedule(checks: &mut Checks, schedule: Option<&str>) {
    checks.field("schedule", schedule, |s| {
        if s.split_whitespace().count() != 5 {
            return Err("five cron fields: minute hour day-of-month month day-of-week".into());
        }
        cron_parser::parse(s, &Utc::now())
            .map(|_| ())
            .map_err(|e| format!("not a schedule: {e}"))
    });
}

impl Validate for NewIntegration {
    fn check(&self, checks: &mut Checks) {
        checks.field("name", self.name.as_deref(), text(1, 100));
        match &self.credentials {
            Some(credentials) => check_credentials(checks, Some(self.provider), credentials),
            None if self.provider == Provider::Stripe => {
                checks.field("credentials", Some(()), |()| {
                    Err("Stripe needs `api_key`".into())
                });
            }
            None => {}
        }
        checks.field("config", self.config.as_ref(), json_object);
        let config = self.config.clone().unwrap_or_else(|| serde_json::json!({}));
        checks.field("config", Some(&config), |c| self.provider.check_config(c));
        check_schedule(checks, self.schedule.as_deref());
    }
}

impl Validate for IntegrationChanges {
    fn check(&self, checks: &mut Checks) {
        checks.field("name", self.name.as_deref(), text(1, 100));
        if let Some(credentials) = &self.credentials {
            // The provider is known to the store, which checks the required name again.
            check_credentials(checks, None, credentials);
        }
        checks.field("config", self.config.as_ref(), json_object);
        check_schedule(checks, self.schedule.as_deref());
    }
}

/// What the API shows instead of credentials: their names, with the last 4 characters of an API
/// key or refresh token long enough to keep them secret (`api_key …4242`), and a service
/// account's email (it names the account, and grants nothing).
pub fn hint(credentials: &Credentials) -> String {
    credentials
        .iter()
        .map(|(name, value)| {
            let count = value.chars().count();
            if name == "service_account_key" {
                match google::ServiceAccountKey::parse(value) {
                    Ok(key) => format!(
                        "{name} ({})",
                        key.client_email.chars().take(100).collect::<String>()
                    ),
                    Err(_) => name.clone(),
                }
            } else if matches!(name.as_str(), "api_key" | "refresh_token") && count >= 16 {
                let tail: String = value.chars().skip(count - 4).collect();
                format!("{name} …{tail}")
            } else {
                name.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
