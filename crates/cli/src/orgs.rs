//! `tenantry org`: one organization's data — exported as a bundle, imported into another
//! Tenantry, erased for good (`tenantry_db::bundle` says what a bundle holds).

use std::path::PathBuf;

use tenantry_db::bundle::{self, TableEntry};

use crate::database::Database;
use crate::AnyError;

#[derive(clap::Subcommand)]
pub enum OrgAction {
    /// Write every row of an organization (by id or slug) into a new directory: NDJSON per table
    /// and manifest.json with row counts and SHA-256 checksums. Holds personal data, credential
    /// hashes and sealed secrets: keep it as you keep backups.
    Export {
        org: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Load a bundle written by `export` (from a Tenantry at the same schema version): ids kept;
    /// refused whole, writing nothing, if the organization, its slug or any row is here already.
    Import { dir: PathBuf },
    /// Remove an organization (by id or slug) and every row of it for good; its audit events
    /// stay with who and what cleared. `--confirm` must repeat its slug.
    Erase {
        org: String,
        #[arg(long)]
        confirm: String,
    },
}

pub async fn run(database: &Database, action: OrgAction) -> Result<(), AnyError> {
    let owner = database.owner_pool().await?;
    database.migrate(&owner, None).await?;
    let result = act(&owner.0, action).await;
    owner.0.close().await;
    result
}

fn say(entry: &TableEntry) {
    if entry.rows > 0 {
        eprintln!("  {:<48} {:>10} rows", entry.table, entry.rows);
    }
}

async fn act(owner: &sqlx::PgPool, action: OrgAction) -> Result<(), AnyError> {
    let mut conn = owner.acquire().await?;
    match action {
        OrgAction::Export { org, out } => {
            let manifest = bundle::export(&mut conn, &org, &out, say).await?;
            let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
            println!(
                "exported {} ({}): {rows} rows in {} tables to {} (checksum {})",
                manifest.organization.slug,
                manifest.organization.id,
                manifest.tables.len(),
                out.display(),
                manifest.checksum
            );
        }
        OrgAction::Import { dir } => {
            let manifest = bundle::import(&mut conn, &dir, say).await?;
            let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
            println!(
                "imported {} ({}): {rows} rows from {}",
                manifest.organization.slug,
                manifest.organization.id,
                dir.display()
            );
        }
        OrgAction::Erase { org, confirm } => {
            let erased = bundle::erase(&mut conn, &org, &confirm).await?;
            println!(
                "erased {} ({}): {} rows removed, {} audit events kept with their personal data cleared",
                erased.organization.slug, erased.organization.id, erased.rows, erased.redacted_events
            );
        }
    }
    Ok(())
}
