//! `tenantry tools …`: owner-side upkeep of Fast Track data (see tenantry_db::maintenance).
//! Every step is a bounded batch in its own transaction: interrupt a run and start it again.

use chrono::{Duration, Utc};
use clap::Subcommand;
use tenantry_db::maintenance;
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
    /// Write a new tool's manifest and migration into a checkout of this repository (edit the
    /// manifest's schema, then build: the migration embeds it).
    Scaffold {
        #[arg(long)]
        sprint: u8,
        /// Lowercase letters, digits and underscores, starting with a letter.
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        /// The repository checkout (holding tools/ and migrations/).
        #[arg(long, default_value = ".")]
        repo: std::path::PathBuf,
    },
}

/// Writes tools/sprint_NN_slug.json and the next-numbered migration pair; returns their paths.
pub fn scaffold(
    repo: &std::path::Path,
    sprint: u8,
    slug: &str,
    name: &str,
) -> Result<Vec<std::path::PathBuf>, AnyError> {
    let valid = slug.len() <= 41
        && slug.starts_with(|c: char| c.is_ascii_lowercase())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid || sprint > 99 || name.trim().is_empty() {
        return Err("--slug must be lowercase letters, digits and _ (starting with a letter), --sprint 0-99, --name non-empty".into());
    }
    let tool = format!("sprint_{sprint:02}_{slug}");
    let manifest_path = repo.join("tools").join(format!("{tool}.json"));
    let migrations = repo.join("migrations");
    let next = std::fs::read_dir(&migrations)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.get(..4)?.parse::<u32>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    let up = migrations.join(format!("{next:04}_{tool}.up.sql"));
    let down = migrations.join(format!("{next:04}_{tool}.down.sql"));
    for path in [&manifest_path, &up, &down] {
        if path.exists() {
            return Err(format!("{} exists already", path.display()).into());
        }
    }
    let manifest = serde_json::json!({
        "sprint": sprint,
        "slug": slug,
        "name": name,
        "description": "",
        "data_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {"notes": {"type": "string", "maxLength": 5000}}
        }
    });
    std::fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    std::fs::write(
        &up,
        format!("-- Sprint {sprint:02}: {name} (manifest: tools/{tool}.json).\nCALL tool_access.install_tool({{{{tool_manifest}}}});\n"),
    )?;
    std::fs::write(
        &down,
        format!("-- Removes the tool {slug} with its entries, history, grants and progress.\nCALL tool_access.uninstall_tool('{slug}');\n"),
    )?;
    Ok(vec![manifest_path, up, down])
}

pub async fn run(database: &Database, action: ToolsAction) -> Result<(), AnyError> {
    if let ToolsAction::Scaffold {
        sprint,
        slug,
        name,
        repo,
    } = &action
    {
        for path in scaffold(repo, *sprint, slug, name)? {
            println!("wrote {}", path.display());
        }
        return Ok(());
    }
    let owner = database.owner_pool().await?;
    database.migrate(&owner, None).await?;
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
        ToolsAction::Scaffold { .. } => {}
    }
    owner.0.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaffold_writes_a_manifest_and_the_next_migration_pair_that_the_build_accepts() {
        let repo = std::env::temp_dir().join(format!("tenantry-scaffold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&repo);
        std::fs::create_dir_all(repo.join("tools")).expect("tools dir");
        std::fs::create_dir_all(repo.join("migrations")).expect("migrations dir");
        std::fs::write(
            repo.join("migrations/0012_sprint_29_digital_heart.up.sql"),
            "",
        )
        .expect("existing migration");
        let written = scaffold(&repo, 30, "north_star", "North Star").expect("scaffold");
        let names: Vec<String> = written
            .iter()
            .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
            .collect();
        assert_eq!(
            names,
            [
                "sprint_30_north_star.json",
                "0013_sprint_30_north_star.up.sql",
                "0013_sprint_30_north_star.down.sql"
            ]
        );
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&written[0]).expect("manifest"))
                .expect("json");
        assert_eq!(manifest["slug"], "north_star");
        let up = std::fs::read_to_string(&written[1]).expect("up");
        assert!(
            up.contains(r"CALL tool_access.install_tool({{tool_manifest}});"),
            "{up}"
        );
        assert!(
            scaffold(&repo, 30, "north_star", "North Star").is_err(),
            "no overwrite"
        );
        assert!(scaffold(&repo, 31, "Bad Slug", "x").is_err());
        let _ = std::fs::remove_dir_all(&repo);
    }
}
