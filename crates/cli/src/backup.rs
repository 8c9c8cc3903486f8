//! `tenantry backup` and `tenantry restore`: the managed cluster's backups (pgBackRest), and the
//! options that say where they go and what seals them.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rand::distributions::{Alphanumeric, DistString};
use tenantry_db::backup::{BackupKind, BackupSettings, RestoreTarget};
use tenantry_db::cluster::ManagedCluster;
use tenantry_db::{drill, queue, OwnerPool};
use tenantry_server::jobs::{JobError, JobSpec, Registry};

use crate::AnyError;

#[derive(clap::Args)]
pub struct BackupOptions {
    /// The key backups are encrypted with (prefer a file or a secret store's environment).
    #[arg(
        long,
        global = true,
        env = "TENANTRY_BACKUP_KEY",
        hide_env_values = true
    )]
    backup_key: Option<String>,
    /// A file holding the backup key (default: DATA_DIR/backup.key, made on first use).
    #[arg(long, global = true, env = "TENANTRY_BACKUP_KEY_FILE")]
    backup_key_file: Option<PathBuf>,
    /// Where backups and the WAL archive go: best another disk than the data directory
    /// (default: DATA_DIR/backups).
    #[arg(long, global = true, env = "TENANTRY_BACKUP_DIR")]
    backup_dir: Option<PathBuf>,
}

impl BackupOptions {
    /// The managed cluster's backup settings; with no key given, the data directory's key file,
    /// generated (readable by this user only) when it does not exist.
    pub fn settings(&self, data_dir: &Path) -> Result<BackupSettings, AnyError> {
        let repository = self
            .backup_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("backups"));
        let repository = std::path::absolute(&repository)?;
        if let Some(key) = &self.backup_key {
            return Ok(BackupSettings {
                repository,
                key: checked_key(key.trim())?,
            });
        }
        let file = crate::key_file::locate(
            self.backup_key_file.as_deref(),
            data_dir,
            "backup.key",
            || {
                format!(
                    "# Tenantry backup key: backups and the WAL archive are encrypted with it. Keep a copy apart from the backups.\n{}\n",
                    Alphanumeric.sample_string(&mut rand::thread_rng(), 48)
                )
            },
            "backups open only with it: keep a copy apart from them",
        )?;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("backup key {}: {e}", file.display()))?;
        let key = text
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'))
            .ok_or_else(|| format!("backup key {}: no key in the file", file.display()))?;
        Ok(BackupSettings {
            repository,
            key: checked_key(key).map_err(|e| format!("{}: {e}", file.display()))?,
        })
    }
}

/// A key pgBackRest's configuration file can hold as is: letters and digits, long enough.
fn checked_key(key: &str) -> Result<String, AnyError> {
    if key.len() < 32 || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("the backup key must be at least 32 letters and digits".into());
    }
    Ok(key.to_string())
}

#[derive(clap::Subcommand)]
pub enum BackupAction {
    /// Back up the running cluster (it is started for the backup if it is not running).
    Take {
        #[arg(long, value_enum, default_value_t = Kind::Full)]
        kind: Kind,
    },
    /// The backups in the repository, oldest first.
    List,
    /// The restore drill: restore the latest backup into a scratch directory up to a point
    /// marked now, start it on a port of its own, and compare every table (per organization)
    /// with the running cluster at that point; fails on any difference. Prints the RTO.
    Verify {
        /// Where the copy is restored (absent or empty; removed afterwards; needs room for the
        /// whole cluster). Default: DATA_DIR/verify.
        #[arg(long)]
        scratch: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    /// Everything.
    Full,
    /// What changed since the last full backup.
    Diff,
    /// What changed since the last backup.
    Incr,
}

pub async fn run(cluster: &ManagedCluster, action: BackupAction) -> Result<(), AnyError> {
    require_managed()?;
    match action {
        BackupAction::Take { kind } => {
            let running = cluster.ensure_running().await?;
            let kind = match kind {
                Kind::Full => BackupKind::Full,
                Kind::Diff => BackupKind::Diff,
                Kind::Incr => BackupKind::Incr,
            };
            let taken = cluster.backup(kind).await;
            if running.started_here {
                cluster.stop().await?;
            }
            let set = taken?;
            println!(
                "backed up: {} ({}), {} of data in {:.1} s, {} written to the repository",
                set.label,
                set.kind,
                megabytes(set.database_bytes),
                (set.finished_at - set.started_at).num_milliseconds() as f64 / 1000.0,
                megabytes(set.repository_bytes)
            );
        }
        BackupAction::List => {
            let running = cluster.ensure_running().await?;
            let sets = cluster.backups().await;
            if running.started_here {
                cluster.stop().await?;
            }
            for set in sets? {
                println!(
                    "{}\t{}\t{}\t{}",
                    set.label,
                    set.kind,
                    set.finished_at.to_rfc3339(),
                    megabytes(set.repository_bytes)
                );
            }
        }
        BackupAction::Verify { scratch } => {
            let running = cluster.ensure_running().await?;
            let verified = verify(cluster, scratch.as_deref()).await;
            if running.started_here {
                cluster.stop().await?;
            }
            println!("{}", verified?);
        }
    }
    Ok(())
}

/// Runs the restore drill (into `scratch`, or DATA_DIR/verify); its one-line summary, or an
/// error saying what differed.
async fn verify(cluster: &ManagedCluster, scratch: Option<&Path>) -> Result<String, AnyError> {
    let scratch = match scratch {
        Some(dir) => std::path::absolute(dir)?,
        None => cluster.root().join("verify"),
    };
    let report = drill::verify(cluster, &scratch).await?;
    let summary = format!(
        "{} tables, {} rows, {} organizations at {}: restored and started in {:.1} s (the RTO)",
        report.tables,
        report.rows,
        report.organizations,
        report.restore_point,
        report.restored_in.as_secs_f64()
    );
    if report.differences.is_empty() {
        return Ok(format!(
            "verified: the backup restores exactly what the cluster held; {summary}"
        ));
    }
    let shown = report.differences.len().min(20);
    Err(format!(
        "the restored copy differs from the cluster in {} place(s); {summary}:\n  {}{}",
        report.differences.len(),
        report.differences[..shown].join("\n  "),
        if shown < report.differences.len() {
            "\n  …"
        } else {
            ""
        }
    )
    .into())
}

/// Takes a backup of the managed cluster: payload `{"kind": "full" | "diff" | "incr"}`.
pub const TAKE: JobSpec = JobSpec {
    kind: "backup.take",
    max_attempts: 3,
};

/// Runs the restore drill (`tenantry backup verify`); a drill that fails alerts the operator.
pub const VERIFY: JobSpec = JobSpec {
    kind: "backup.verify",
    max_attempts: 2,
};

/// The managed cluster's backups, scheduled unless an operator changed them (seed 003): a full
/// backup daily at 02:00 and an incremental at half past every hour, and the restore drill
/// monthly (the 1st, 04:00), in UTC: name, cron, job kind, payload.
const SCHEDULES: [(&str, &str, &str, Option<&str>); 3] = [
    ("backup-full", "0 2 * * *", TAKE.kind, Some("full")),
    ("backup-incr", "30 * * * *", TAKE.kind, Some("incr")),
    ("backup-verify", "0 4 1 * *", VERIFY.kind, None),
];

/// Registers the backup job when there is a managed cluster to back up: a worker of an external
/// server leaves backups to that server's operator.
pub fn register(registry: Registry, cluster: Option<&ManagedCluster>) -> Registry {
    let Some(cluster) = cluster.cloned() else {
        return registry;
    };
    let drilled = cluster.clone();
    let registry = registry.register(VERIFY, move |run| {
        let cluster = drilled.clone();
        async move {
            match verify(&cluster, None).await {
                Ok(summary) => {
                    tracing::info!(%summary, "restore drill");
                    Ok(())
                }
                // The operator hears of it once the last attempt failed too.
                Err(e) if run.job.attempts < run.job.max_attempts => {
                    Err(JobError::Retry(e.to_string()))
                }
                Err(e) => {
                    let alert = queue::Alert {
                        key: format!("restore-drill:{}", run.job.id),
                        subject: "Tenantry: the restore drill failed".into(),
                        body: format!(
                            "The monthly restore drill (tenantry backup verify) failed:\n\n{e}\n\n\
                             Until a drill passes, the backups are not known to restore. \
                             Run `tenantry backup verify` to try again (docs/OPERATIONS.md).\n"
                        ),
                    };
                    queue::raise_alert(&run.owner()?.0, &alert).await?;
                    Err(JobError::Retry(e.to_string()))
                }
            }
        }
    });
    registry.register(TAKE, move |run| {
        let cluster = cluster.clone();
        async move {
            let kind = match run.job.payload["kind"].as_str() {
                Some("full") => BackupKind::Full,
                Some("diff") => BackupKind::Diff,
                Some("incr") | None => BackupKind::Incr,
                Some(other) => {
                    return Err(JobError::Fatal(format!("no backup kind {other:?}")));
                }
            };
            let set = cluster
                .backup(kind)
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
            tracing::info!(label = %set.label, kind = %set.kind, "backup taken");
            Ok(())
        }
    })
}

/// Adds the default backup schedules that do not exist yet.
pub async fn schedule(owner: &OwnerPool) -> Result<(), AnyError> {
    for (name, cron, job, kind) in SCHEDULES {
        let row = queue::ScheduleRow {
            name: name.into(),
            cron: cron.into(),
            time_zone: "UTC".into(),
            kind: job.into(),
            payload: kind.map_or_else(
                || serde_json::json!({}),
                |kind| serde_json::json!({ "kind": kind }),
            ),
            enabled: true,
            next_run_at: None,
            last_run_at: None,
        };
        if queue::add_schedule(&owner.0, &row).await? {
            tracing::info!(schedule = name, cron, "backups scheduled");
        }
    }
    Ok(())
}

/// `tenantry restore`: the stopped cluster brought back to `to` (or the latest archived commit)
/// in place, or a copy of it made in the new data directory `into` (the cluster may run).
pub async fn restore(
    cluster: &ManagedCluster,
    to: Option<DateTime<Utc>>,
    latest: bool,
    into: Option<PathBuf>,
) -> Result<(), AnyError> {
    require_managed()?;
    let target = match (to, latest) {
        (Some(at), false) => RestoreTarget::Time(at),
        (None, true) => RestoreTarget::Latest,
        _ => return Err("say where to restore to: --to TIME or --latest".into()),
    };
    let started = std::time::Instant::now();
    match into {
        None => {
            cluster.restore(&target).await?;
            println!(
                "restored to {target} in {:.1} s; the cluster is stopped and starts with the next command",
                started.elapsed().as_secs_f64()
            );
        }
        Some(into) => {
            let into = std::path::absolute(&into)?;
            let copy = cluster.restore_copy(&target, &into).await?;
            copy.stop().await?;
            println!(
                "restored to {target} into {} in {:.1} s; it is stopped: run it with `tenantry --data-dir {} serve` (it makes its own backup repository and key there unless given others: never the original's while the original runs)",
                into.display(),
                started.elapsed().as_secs_f64(),
                into.display()
            );
        }
    }
    Ok(())
}

fn require_managed() -> Result<(), AnyError> {
    if std::env::var_os("DATABASE_URL").is_some() {
        return Err("backups are the managed cluster's; with DATABASE_URL set, back up that server with its own tools (docs/OPERATIONS.md)".into());
    }
    Ok(())
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}
