//! `tenantry tools …`: owner-side upkeep of Fast Track data (see tenantry_db::maintenance).
//! Every step is a bounded batch in its own transaction: interrupt a run and start it again.

use chrono::{Duration, Utc};
use clap::Subcommand;
use tenantry_db::{maintenance, migrate};
use uuid::Uuid;

use crate::database::Database;
use crate::AnyError;

#[derive(Subcommand)]
pub enum ToolsAction {
    /// Refresh the reporting views (entries per tool and status, members' progress) without
    /// blocking readers.
    RefreshReports,
    /// Move entries completed more than --older-than-days ago into the compressed archive.
    Archive {
        #[arg(long, default_value_t = 730)]
        older_than_days: i64,
    },
    /// Bring archived entries of a tool back (of one organization, or all).
    Restore {
        #[arg(long)]
        tool: String,
        #[arg(long)]
        org: Option<Uuid>,
    },
    /// Remove audit events and tool history older than --older-than-days (at least 7 years).
    PurgeAudit {
        #[arg(long, default_value_t = 7 * 365 + 2)]
        older_than_days: i64,
    },
}

pub async fn run(database: &Database, action: ToolsAction) -> Result<(), AnyError> {
    let owner = database.owner_pool().await?;
    migrate::up(&owner, None).await?;
    match action {
        ToolsAction::RefreshReports => {
            maintenance::refresh_reports(&owner).await?;
            println!("reports refreshed");
        }
        ToolsAction::Archive { older_than_days } => {
            let before = Utc::now() - Duration::days(older_than_days.max(0));
            let total = maintenance::archive(&owner, before, |tool, moved| {
                println!("{tool}: {moved} entries archived so far");
            })
            .await?;
            println!(
                "archived {total} entries completed before {}",
                before.to_rfc3339()
            );
        }
        ToolsAction::Restore { tool, org } => {
            let total = maintenance::restore(&owner, &tool, org).await?;
            println!("restored {total} entries of {tool}");
        }
        ToolsAction::PurgeAudit { older_than_days } => {
            let before = Utc::now() - Duration::days(older_than_days.max(0));
            let total = maintenance::purge_audit(&owner, before).await?;
            println!(
                "purged {total} audit rows older than {}",
                before.to_rfc3339()
            );
        }
    }
    owner.0.close().await;
    Ok(())
}
