//! `tenantry plans`: the operators' plan catalog (the `plans` table), read and replaced from a
//! JSON file — plans are data, not code. An import is one transaction: a file with one bad plan
//! changes nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::database::Database;
use crate::AnyError;

#[derive(clap::Subcommand)]
pub enum PlansAction {
    /// The catalog: code, tier, default, listed, limits.
    List,
    /// The catalog as JSON (the format `import` reads).
    Export,
    /// Add or change the plans in a JSON file (an array of plans, as `export` writes them; plans
    /// not in the file stay as they are — a plan subscribed to is never deleted).
    Import { file: std::path::PathBuf },
}

/// A plan as the file holds it (unknown keys are refused, so a typo is not silently dropped).
#[derive(Debug, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
struct PlanRecord {
    code: String,
    name: String,
    /// free, basic, pro or enterprise.
    tier: String,
    #[serde(default)]
    features: Vec<String>,
    /// {"seats": 5, "kpis": 100, "api_calls": 100000, …}; absent: unlimited.
    #[serde(default = "empty_object")]
    limits: Value,
    /// {"month": {"stripe_price_id": "price_…", "amount": 1900, "currency": "usd"}, "year": …}.
    #[serde(default = "empty_object")]
    prices: Value,
    #[serde(default)]
    trial_days: i32,
    #[serde(default)]
    is_default: bool,
    #[serde(default = "yes")]
    listed: bool,
    #[serde(default)]
    sort_order: i32,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn yes() -> bool {
    true
}

const SELECT: &str = r"SELECT code, name, tier, features, limits, prices, trial_days, is_default, listed,
       sort_order FROM plans ORDER BY sort_order, code";

pub async fn run(database: &Database, action: PlansAction) -> Result<(), AnyError> {
    let owner = database.owner_pool().await?;
    database.migrate(&owner, None).await?;
    let result = act(&owner.0, action).await;
    owner.0.close().await;
    result
}

async fn act(owner: &sqlx::PgPool, action: PlansAction) -> Result<(), AnyError> {
    match action {
        PlansAction::List => {
            let plans: Vec<PlanRecord> = sqlx::query_as(SELECT).fetch_all(owner).await?;
            for p in plans {
                println!(
                    "{:<12} {:<10} {}{} limits {}",
                    p.code,
                    p.tier,
                    if p.is_default { "default " } else { "" },
                    if p.listed { "listed" } else { "unlisted" },
                    p.limits
                );
            }
        }
        PlansAction::Export => {
            let plans: Vec<PlanRecord> = sqlx::query_as(SELECT).fetch_all(owner).await?;
            println!("{}", serde_json::to_string_pretty(&plans)?);
        }
        PlansAction::Import { file } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let plans: Vec<PlanRecord> = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a list of plans: {e}", file.display()))?;
            let defaults: Vec<&str> = plans
                .iter()
                .filter(|p| p.is_default)
                .map(|p| p.code.as_str())
                .collect();
            if defaults.len() > 1 {
                return Err(format!("only one plan can be the default: {defaults:?}").into());
            }
            let mut tx = owner.begin().await?;
            // The new default takes over from the old one in the same transaction.
            if let Some(code) = defaults.first() {
                sqlx::query(r"UPDATE plans SET is_default = false WHERE is_default AND code <> $1")
                    .bind(code)
                    .execute(&mut *tx)
                    .await?;
            }
            for p in &plans {
                sqlx::query(
                    r"INSERT INTO plans (code, name, tier, features, limits, prices, trial_days,
                                        is_default, listed, sort_order)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                      ON CONFLICT (code) DO UPDATE SET name = excluded.name, tier = excluded.tier,
                          features = excluded.features, limits = excluded.limits,
                          prices = excluded.prices, trial_days = excluded.trial_days,
                          is_default = excluded.is_default, listed = excluded.listed,
                          sort_order = excluded.sort_order",
                )
                .bind(&p.code)
                .bind(&p.name)
                .bind(&p.tier)
                .bind(&p.features)
                .bind(&p.limits)
                .bind(&p.prices)
                .bind(p.trial_days)
                .bind(p.is_default)
                .bind(p.listed)
                .bind(p.sort_order)
                .execute(&mut *tx)
                .await
                .map_err(|e| format!("plan {}: {e}", p.code))?;
            }
            let defaults: i64 = sqlx::query_scalar(r"SELECT count(*) FROM plans WHERE is_default")
                .fetch_one(&mut *tx)
                .await?;
            if defaults != 1 {
                return Err(
                    "the catalog needs exactly one default plan; nothing was imported".into(),
                );
            }
            tx.commit().await?;
            println!("imported {} plans", plans.len());
        }
    }
    Ok(())
}
