//! The Stripe connector: reads a restricted API key's account through Stripe's documented list
//! endpoints (`/v1/balance_transactions`, `/v1/customers`, `/v1/subscriptions`, paginated with
//! `starting_after`) and turns it into daily values — revenue and new customers per day over a
//! range, MRR and active subscriptions as of today (Stripe keeps no history of them).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::sync::{ConnectorError, DailyValue};

/// Stripe's list envelope.
#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
    #[serde(default)]
    has_more: bool,
}

#[derive(Deserialize)]
struct BalanceTransaction {
    id: String,
    amount: i64,
    created: i64,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Customer {
    id: String,
    created: i64,
}

#[derive(Deserialize)]
struct Subscription {
    id: String,
    items: List<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    quantity: Option<i64>,
    price: Price,
}

#[derive(Deserialize)]
struct Price {
    #[serde(default)]
    unit_amount: Option<i64>,
    #[serde(default)]
    recurring: Option<Recurring>,
}

#[derive(Deserialize)]
struct Recurring {
    interval: String,
    #[serde(default = "one")]
    interval_count: i64,
}

fn one() -> i64 {
    1
}

/// Something with an id to page after.
trait Paged {
    fn id(&self) -> &str;
}
impl Paged for BalanceTransaction {
    fn id(&self) -> &str {
        &self.id
    }
}
impl Paged for Customer {
    fn id(&self) -> &str {
        &self.id
    }
}
impl Paged for Subscription {
    fn id(&self) -> &str {
        &self.id
    }
}

/// The most pages one sync reads of one list (10,000 objects): a guard, not a limit reached.
const MAX_PAGES: usize = 100;

async fn list_all<T: for<'de> Deserialize<'de> + Paged>(
    http: &reqwest::Client,
    base: &str,
    api_key: &str,
    path: &str,
    query: &[(&str, String)],
) -> Result<Vec<T>, ConnectorError> {
    let mut all: Vec<T> = Vec::new();
    for _ in 0..MAX_PAGES {
        let mut params: Vec<(&str, String)> = query.to_vec();
        params.push(("limit", "100".into()));
        if let Some(last) = all.last() {
            params.push(("starting_after", last.id().to_string()));
        }
        let response = http
            .get(format!("{}/v1/{path}", base.trim_end_matches('/')))
            .bearer_auth(api_key)
            .query(&params)
            .send()
            .await
            .map_err(|e| ConnectorError::transport(&format!("Stripe {path}"), &e))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| ConnectorError::transport(&format!("Stripe {path}"), &e))?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| body.chars().take(300).collect());
            let said = format!("Stripe {path} answered {status}: {message}");
            return Err(match status.as_u16() {
                429 | 500..=599 => ConnectorError::retry(said),
                _ => ConnectorError::fatal(said),
            });
        }
        let page: List<T> = serde_json::from_str(&body)
            .map_err(|e| ConnectorError::retry(format!("Stripe {path}: unexpected answer: {e}")))?;
        let more = page.has_more && !page.data.is_empty();
        all.extend(page.data);
        if !more {
            return Ok(all);
        }
    }
    Err(ConnectorError::fatal(format!(
        "Stripe {path}: more than {} objects in one sync",
        MAX_PAGES * 100
    )))
}

fn day_of(timestamp: i64) -> Option<NaiveDate> {
    DateTime::<Utc>::from_timestamp(timestamp, 0).map(|t| t.date_naive())
}

fn start_of(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp())
}

/// The daily values of `metrics` for the days `from..=to`; `mrr` and `active_subscriptions`
/// for `today` only.
pub async fn fetch(
    http: &reqwest::Client,
    base: &str,
    api_key: &str,
    metrics: &[&str],
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
) -> Result<Vec<DailyValue>, ConnectorError> {
    let range = [
        ("created[gte]", start_of(from).to_string()),
        (
            "created[lt]",
            start_of(to.succ_opt().unwrap_or(to)).to_string(),
        ),
    ];
    let mut values = Vec::new();
    let days = || from.iter_days().take_while(|d| *d <= to);
    if metrics.contains(&"revenue") {
        let moves: Vec<BalanceTransaction> =
            list_all(http, base, api_key, "balance_transactions", &range).await?;
        let mut per_day: BTreeMap<NaiveDate, i64> = BTreeMap::new();
        for t in moves.iter().filter(|t| {
            matches!(
                t.kind.as_str(),
                "charge" | "payment" | "refund" | "payment_refund"
            )
        }) {
            if let Some(day) = day_of(t.created) {
                *per_day.entry(day).or_default() += t.amount;
            }
        }
        // Every day of the range, so a day without sales reads 0 rather than nothing.
        values.extend(days().map(|day| DailyValue {
            metric: "revenue".into(),
            day,
            value: per_day.get(&day).copied().unwrap_or(0) as f64 / 100.0,
        }));
    }
    if metrics.contains(&"new_customers") {
        let customers: Vec<Customer> = list_all(http, base, api_key, "customers", &range).await?;
        let mut per_day: BTreeMap<NaiveDate, i64> = BTreeMap::new();
        for c in &customers {
            if let Some(day) = day_of(c.created) {
                *per_day.entry(day).or_default() += 1;
            }
        }
        values.extend(days().map(|day| DailyValue {
            metric: "new_customers".into(),
            day,
            value: per_day.get(&day).copied().unwrap_or(0) as f64,
        }));
    }
    if metrics.contains(&"mrr") || metrics.contains(&"active_subscriptions") {
        let active: Vec<Subscription> = list_all(
            http,
            base,
            api_key,
            "subscriptions",
            &[("status", "active".into())],
        )
        .await?;
        let monthly_cents: f64 = active
            .iter()
            .flat_map(|s| &s.items.data)
            .map(|item| {
                let amount = item.price.unit_amount.unwrap_or(0) * item.quantity.unwrap_or(1);
                let per_month = item.price.recurring.as_ref().map_or(0.0, |r| {
                    let count = r.interval_count.max(1) as f64;
                    match r.interval.as_str() {
                        "day" => 365.0 / 12.0 / count,
                        "week" => 52.0 / 12.0 / count,
                        "month" => 1.0 / count,
                        "year" => 1.0 / 12.0 / count,
                        _ => 0.0,
                    }
                });
                amount as f64 * per_month
            })
            .sum();
        if metrics.contains(&"mrr") {
            values.push(DailyValue {
                metric: "mrr".into(),
                day: today,
                value: (monthly_cents / 100.0 * 100.0).round() / 100.0,
            });
        }
        if metrics.contains(&"active_subscriptions") {
            values.push(DailyValue {
                metric: "active_subscriptions".into(),
                day: today,
                value: active.len() as f64,
            });
        }
    }
    Ok(values)
}
