//! The Google connectors. An access token first, from Google's OAuth 2.0 token endpoint: with the
//! stored refresh token (offline access; the OAuth client is the integration's own or the
//! server's), or with a service account's key (a signed JWT assertion, RFC 7523). Then:
//! - Google Analytics 4, the Data API's `properties/{id}:runReport` by date: active users,
//!   sessions and conversions (GA4's `keyEvents` since 2024; `config.conversions_metric` names
//!   another) per day;
//! - Google Sheets, `spreadsheets/{id}/values/{range}`: a date column and a value column.
//!
//! Quota refusals (429, `RESOURCE_EXHAUSTED`) are waited out with a doubling backoff inside the
//! run; only when they persist does the run fail (and the queue retries it later).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::sync::{ConnectorError, Connectors, DailyValue};
use super::Credentials;

/// Read-only scopes: the least each connector needs.
pub const ANALYTICS_SCOPE: &str = "https://www.googleapis.com/auth/analytics.readonly";
pub const SHEETS_SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets.readonly";

/// GA4 reads at most 10 metrics per report request.
const METRICS_PER_REQUEST: usize = 10;
/// Custom metrics one integration may add to the three built in.
pub const MAX_CUSTOM_METRICS: usize = 30;

/// A GA4 metric's API name (`screenPageViews`, `customEvent:signup`).
pub fn is_metric_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Quota refusals waited out in one run before it fails (1 + 2 + 4 + 8 + 16 backoff units).
const QUOTA_RETRIES: u32 = 5;
/// GA4 answers at most this many rows per request (its maximum is 250,000).
const PAGE_ROWS: usize = 10_000;

/// A service account's JSON key, as Google's console downloads it (the fields used).
#[derive(Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
}

impl ServiceAccountKey {
    /// Reads a key and checks its private key is an RSA key in PEM.
    pub fn parse(text: &str) -> Result<Self, String> {
        let key: ServiceAccountKey = serde_json::from_str(text).map_err(|e| {
            format!("not a service account key (JSON with client_email and private_key): {e}")
        })?;
        jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes())
            .map_err(|_| "its private_key is not an RSA private key in PEM".to_string())?;
        Ok(key)
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

#[derive(serde::Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// An access token for `scope`, or why not. A refused refresh token (`invalid_grant`: revoked,
/// expired, or issued to another client) is fatal with a message saying what to do.
pub async fn access_token(
    c: &Connectors,
    credentials: &Credentials,
    scope: &str,
) -> Result<String, ConnectorError> {
    let token_url = &c.endpoints.google_token;
    let form: Vec<(&str, String)> = if let Some(text) = credentials.get("service_account_key") {
        let key = ServiceAccountKey::parse(text).map_err(ConnectorError::fatal)?;
        let now = Utc::now().timestamp();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = key.private_key_id.clone();
        let signing =
            jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes()).map_err(|_| {
                ConnectorError::fatal("the service account's private_key is not RSA".into())
            })?;
        // The audience is the configured endpoint, never the key's own `token_uri`: a stored
        // key must not steer the service's requests elsewhere.
        let claims = Assertion {
            iss: &key.client_email,
            scope,
            aud: token_url,
            iat: now,
            exp: now + 3600,
        };
        let jwt = jsonwebtoken::encode(&header, &claims, &signing).map_err(|e| {
            ConnectorError::fatal(format!("signing the service account's assertion: {e}"))
        })?;
        vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
            ),
            ("assertion", jwt),
        ]
    } else {
        let Some(refresh_token) = credentials.get("refresh_token") else {
            return Err(ConnectorError::fatal(
                "no refresh_token or service_account_key is stored".into(),
            ));
        };
        let (client_id, client_secret) = match (
            credentials.get("client_id"),
            credentials.get("client_secret"),
        ) {
            (Some(id), Some(secret)) => (id.clone(), secret.clone()),
            _ => match &c.endpoints.google_client {
                Some((id, secret)) => (id.clone(), secret.clone()),
                None => {
                    return Err(ConnectorError::fatal(
                        "no Google OAuth client: store client_id and client_secret with the refresh token, or configure TENANTRY_GOOGLE_CLIENT_ID and TENANTRY_GOOGLE_CLIENT_SECRET".into(),
                    ))
                }
            },
        };
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", refresh_token.clone()),
            ("client_id", client_id),
            ("client_secret", client_secret),
        ]
    };
    let response = c
        .http
        .post(token_url)
        .form(&form)
        .send()
        .await
        .map_err(|e| ConnectorError::transport("Google's token endpoint", &e))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| ConnectorError::transport("Google's token endpoint", &e))?;
    if status.is_success() {
        return serde_json::from_str::<TokenAnswer>(&body)
            .map(|t| t.access_token)
            .map_err(|e| {
                ConnectorError::retry(format!("Google's token endpoint: unexpected answer: {e}"))
            });
    }
    let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let error = answer["error"].as_str().unwrap_or("");
    let description = answer["error_description"].as_str().unwrap_or("");
    Err(match (status.as_u16(), error) {
        (_, "invalid_grant") => ConnectorError::fatal(format!(
            "Google refused the stored credential (invalid_grant: {description}): it was revoked, expired or belongs to another OAuth client; connect the integration again"
        )),
        (_, "invalid_client" | "unauthorized_client") => ConnectorError::fatal(format!(
            "Google refused the OAuth client ({error}: {description}): check its client id and secret"
        )),
        (429 | 500..=599, _) => ConnectorError::retry(format!(
            "Google's token endpoint answered {status}"
        )),
        _ => ConnectorError::fatal(format!(
            "Google's token endpoint answered {status}: {error} {description}"
        )),
    })
}

/// Sends a request built by `build` with the access token, waiting out quota refusals; returns
/// the JSON answer. The token is redacted from any error.
async fn call(
    c: &Connectors,
    what: &str,
    token: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Value, ConnectorError> {
    let mut wait = c.endpoints.quota_backoff;
    let mut quota_refusals = 0;
    loop {
        let response = build()
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| ConnectorError::transport(what, &e))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| ConnectorError::transport(what, &e))?;
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        // Google's error envelope: {"error": {"code", "message", "status"}}.
        let reason = answer["error"]["status"].as_str().unwrap_or("");
        let message = answer["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| body.chars().take(300).collect());
        let said =
            format!("{what} answered {status} {reason}: {message}").replace(token, "[redacted]");
        if status.as_u16() == 429 || reason == "RESOURCE_EXHAUSTED" {
            quota_refusals += 1;
            if quota_refusals > QUOTA_RETRIES {
                return Err(ConnectorError::retry(format!(
                    "{said} (still out of quota after {QUOTA_RETRIES} waits)"
                )));
            }
            tracing::info!(
                what,
                wait_ms = wait.as_millis() as u64,
                "Google quota refused; waiting"
            );
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(60));
            continue;
        }
        return Err(match status.as_u16() {
            500..=599 => ConnectorError::retry(said),
            _ => ConnectorError::fatal(said),
        });
    }
}

/// The GA4 metric one of our metrics reads.
fn analytics_metric<'a>(metric: &str, config: &'a Value) -> Option<&'a str> {
    match metric {
        "active_users" => Some("activeUsers"),
        "sessions" => Some("sessions"),
        "conversions" => Some(config["conversions_metric"].as_str().unwrap_or("keyEvents")),
        custom => config["metrics"][custom].as_str(),
    }
}

/// The GA4 property id in `config` (`"123456789"` or `"properties/123456789"`).
pub fn property_id(config: &Value) -> Option<String> {
    let id = match &config["property_id"] {
        Value::String(s) => s.trim_start_matches("properties/").to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

/// Daily values of `metrics` for `from..=to` from GA4 (a day without data reads 0), ten
/// metrics per report request, each report read page by page.
pub async fn analytics(
    c: &Connectors,
    credentials: &Credentials,
    config: &Value,
    metrics: &[String],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DailyValue>, ConnectorError> {
    let property = property_id(config).ok_or_else(|| {
        ConnectorError::fatal("config.property_id (the GA4 property's number) is missing".into())
    })?;
    let token = access_token(c, credentials, ANALYTICS_SCOPE).await?;
    let url = format!(
        "{}/v1beta/properties/{property}:runReport",
        c.endpoints.google_analytics_api.trim_end_matches('/')
    );
    let mut values = Vec::new();
    for batch in metrics.chunks(METRICS_PER_REQUEST) {
        let names = batch
            .iter()
            .map(|m| {
                analytics_metric(m, config).ok_or_else(|| {
                    ConnectorError::fatal(format!("config.metrics no longer names {m}"))
                })
            })
            .collect::<Result<Vec<&str>, _>>()?;
        let per_day = report(c, &url, &token, &names, from, to).await?;
        for day in from.iter_days().take_while(|d| *d <= to) {
            let read = per_day.get(&day);
            values.extend(batch.iter().enumerate().map(|(i, metric)| DailyValue {
                metric: metric.clone(),
                day,
                value: read.and_then(|v| v.get(i)).copied().unwrap_or(0.0),
            }));
        }
    }
    Ok(values)
}

/// One report of up to ten GA4 metrics by date: each day's values, in the order asked.
async fn report(
    c: &Connectors,
    url: &str,
    token: &str,
    names: &[&str],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<BTreeMap<NaiveDate, Vec<f64>>, ConnectorError> {
    let mut per_day: BTreeMap<NaiveDate, Vec<f64>> = BTreeMap::new();
    let mut offset = 0usize;
    loop {
        let body = serde_json::json!({
            "dateRanges": [{"startDate": from.to_string(), "endDate": to.to_string()}],
            "dimensions": [{"name": "date"}],
            "metrics": names.iter().map(|n| serde_json::json!({"name": n})).collect::<Vec<_>>(),
            "keepEmptyRows": true,
            "limit": PAGE_ROWS.to_string(),
            "offset": offset.to_string(),
        });
        let answer = call(c, "Google Analytics runReport", token, || {
            c.http.post(url).json(&body)
        })
        .await?;
        let rows = answer["rows"].as_array().cloned().unwrap_or_default();
        for row in &rows {
            let day = row["dimensionValues"][0]["value"]
                .as_str()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok())
                .ok_or_else(|| {
                    ConnectorError::retry(format!("Google Analytics: a row without a date: {row}"))
                })?;
            let values = (0..names.len())
                .map(|i| {
                    row["metricValues"][i]["value"]
                        .as_str()
                        .and_then(|v| v.parse::<f64>().ok())
                        .unwrap_or(0.0)
                })
                .collect();
            per_day.insert(day, values);
        }
        offset += rows.len();
        let total = answer["rowCount"].as_u64().unwrap_or(0) as usize;
        if rows.is_empty() || offset >= total {
            return Ok(per_day);
        }
    }
}

/// A column's letters (`A`, `AB`) as its 0-based index.
pub fn column_index(letters: &str) -> Option<usize> {
    if letters.is_empty() || letters.len() > 3 {
        return None;
    }
    letters
        .bytes()
        .try_fold(0usize, |n, b| {
            b.is_ascii_alphabetic()
                .then(|| n * 26 + usize::from(b.to_ascii_uppercase() - b'A') + 1)
        })
        .map(|n| n - 1)
}

fn column_letters(mut index: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

/// A sheet's configuration: which spreadsheet, sheet and columns.
pub struct SheetConfig {
    pub spreadsheet_id: String,
    pub sheet: Option<String>,
    pub date_column: usize,
    pub value_column: usize,
}

impl SheetConfig {
    pub fn from(config: &Value) -> Result<Self, String> {
        let spreadsheet_id = config["spreadsheet_id"]
            .as_str()
            .filter(|s| {
                (10..=100).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .ok_or("config.spreadsheet_id (from the sheet's URL) is missing or malformed")?
            .to_string();
        let sheet = match &config["sheet"] {
            Value::Null => None,
            Value::String(s) if (1..=100).contains(&s.chars().count()) => Some(s.clone()),
            _ => return Err("config.sheet is a sheet's name of 1 to 100 characters".into()),
        };
        let column = |name: &str, default: &str| {
            let letters = match &config[name] {
                Value::Null => default,
                Value::String(s) => s.as_str(),
                _ => "",
            };
            column_index(letters).ok_or(format!("config.{name} is a column's letters (A to ZZZ)"))
        };
        let date_column = column("date_column", "A")?;
        let value_column = column("value_column", "B")?;
        if date_column == value_column {
            return Err("config.date_column and config.value_column are different columns".into());
        }
        Ok(Self {
            spreadsheet_id,
            sheet,
            date_column,
            value_column,
        })
    }

    /// The A1 range covering both columns, e.g. `'Revenue'!A:C`.
    fn range(&self) -> String {
        let first = column_letters(self.date_column.min(self.value_column));
        let last = column_letters(self.date_column.max(self.value_column));
        match &self.sheet {
            Some(sheet) => format!("'{}'!{first}:{last}", sheet.replace('\'', "''")),
            None => format!("{first}:{last}"),
        }
    }
}

/// A date cell: a serial number (days since 1899-12-30, as Sheets keeps dates) or ISO text.
fn sheet_date(cell: &Value) -> Option<NaiveDate> {
    match cell {
        Value::Number(n) => {
            let days = n.as_f64()?.floor();
            if !(1.0..=2_958_465.0).contains(&days) {
                return None;
            }
            NaiveDate::from_ymd_opt(1899, 12, 30)?.checked_add_days(chrono::Days::new(days as u64))
        }
        Value::String(s) => {
            // `2024-03-01`, or with a time after it.
            let s = s.trim();
            let date = s.get(..10)?;
            let rest = &s[10..];
            if !(rest.is_empty() || rest.starts_with(['T', ' '])) {
                return None;
            }
            NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
        }
        _ => None,
    }
}

/// A sheet's rows dated `from..=to` as `value` points. Rows without a date in the date column
/// (headers, notes, blanks) are skipped; a dated row whose value is not a number fails the run
/// naming the row, and nothing is written.
pub async fn sheet(
    c: &Connectors,
    credentials: &Credentials,
    config: &Value,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DailyValue>, ConnectorError> {
    let sheet = SheetConfig::from(config).map_err(ConnectorError::fatal)?;
    let token = access_token(c, credentials, SHEETS_SCOPE).await?;
    let url = format!(
        "{}/v4/spreadsheets/{}/values/{}",
        c.endpoints.google_sheets_api.trim_end_matches('/'),
        sheet.spreadsheet_id,
        urlencoding_path(&sheet.range())
    );
    let answer = call(c, "Google Sheets values.get", &token, || {
        c.http.get(&url).query(&[
            ("majorDimension", "ROWS"),
            ("valueRenderOption", "UNFORMATTED_VALUE"),
            ("dateTimeRenderOption", "SERIAL_NUMBER"),
        ])
    })
    .await?;
    let offset = sheet.date_column.min(sheet.value_column);
    let mut per_day: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for (i, row) in answer["values"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let cell = |column: usize| row.get(column - offset).unwrap_or(&Value::Null);
        let Some(day) = sheet_date(cell(sheet.date_column)) else {
            continue;
        };
        if day < from || day > to {
            continue;
        }
        let value = match cell(sheet.value_column) {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if s.trim().is_empty() => continue,
            Value::String(s) => sheet_number(s),
            Value::Null => continue,
            _ => None,
        };
        let Some(value) = value.filter(|v| v.is_finite()) else {
            return Err(ConnectorError::fatal(format!(
                "Google Sheets: row {} ({day}) has {} in the value column, not a number",
                i + 1,
                cell(sheet.value_column)
            )));
        };
        // A day listed twice: the lower row wins, as a person reading the sheet would expect.
        per_day.insert(day, value);
    }
    Ok(per_day
        .into_iter()
        .map(|(day, value)| DailyValue {
            metric: "value".into(),
            day,
            value,
        })
        .collect())
}

/// A number typed as text: `1204.5`, or with commas between thousands (`1,204.5`). A comma
/// anywhere else (`1,5`, a decimal comma) is not read as a number: it fails the run rather
/// than turn 1.5 into 15.
fn sheet_number(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.contains(',') {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let mut groups = whole.trim_start_matches(['-', '+']).split(',');
        let first = groups.next()?;
        if fraction.contains(',')
            || !(1..=3).contains(&first.len())
            || !groups.all(|g| g.len() == 3)
        {
            return None;
        }
    }
    text.replace(',', "").parse().ok()
}

/// Percent-encodes a path segment (an A1 range holds `!`, `'`, `:` and spaces).
fn urlencoding_path(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'!' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_read_both_ways() {
        for (letters, index) in [
            ("A", 0),
            ("b", 1),
            ("Z", 25),
            ("AA", 26),
            ("AZ", 51),
            ("ZZ", 701),
        ] {
            assert_eq!(column_index(letters), Some(index), "{letters}");
            assert_eq!(column_letters(index), letters.to_uppercase());
        }
        assert_eq!(column_index(""), None);
        assert_eq!(column_index("A1"), None);
        assert_eq!(column_index("ABCD"), None);
    }

    #[test]
    fn dates_are_serial_numbers_or_iso_text() {
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).expect("day");
        assert_eq!(sheet_date(&serde_json::json!(45352)), Some(day));
        assert_eq!(sheet_date(&serde_json::json!(45352.75)), Some(day));
        assert_eq!(sheet_date(&serde_json::json!("2024-03-01")), Some(day));
        assert_eq!(
            sheet_date(&serde_json::json!("2024-03-01T10:00:00")),
            Some(day)
        );
        assert_eq!(sheet_date(&serde_json::json!("Date")), None);
        assert_eq!(sheet_date(&serde_json::json!(-3)), None);
    }

    #[test]
    fn sheet_numbers_take_thousands_commas_only() {
        assert_eq!(sheet_number("1,204.5"), Some(1204.5));
        assert_eq!(sheet_number(" 1204 "), Some(1204.0));
        assert_eq!(sheet_number("-1,000,000"), Some(-1_000_000.0));
        assert_eq!(sheet_number("0.25"), Some(0.25));
        assert_eq!(sheet_number("1,5"), None);
        assert_eq!(sheet_number("12,34,567"), None);
        assert_eq!(sheet_number("1.2,3"), None);
        assert_eq!(sheet_number("n/a"), None);
    }

    #[test]
    fn a_sheet_range_quotes_its_name() {
        let config = serde_json::json!({
            "spreadsheet_id": "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms",
            "sheet": "Bob's KPIs", "date_column": "C", "value_column": "A"
        });
        let sheet = SheetConfig::from(&config).expect("config");
        assert_eq!(sheet.range(), "'Bob''s KPIs'!A:C");
        assert_eq!(
            urlencoding_path(&sheet.range()),
            "%27Bob%27%27s%20KPIs%27!A:C"
        );
        assert!(SheetConfig::from(&serde_json::json!({"spreadsheet_id": "x"})).is_err());
    }
}
