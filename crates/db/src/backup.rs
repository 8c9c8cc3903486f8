//! Backups of the managed cluster with pgBackRest (Debian's `pgbackrest` package): the cluster
//! archives its WAL continuously (a segment at least every `archive_timeout`, so at most a
//! minute of commits is ever only on the cluster's own disk), and `tenantry backup` takes full,
//! differential or incremental backups, compressed (zstd) and encrypted (AES-256) with the
//! backup key. `tenantry restore` brings the cluster back to a moment or to the latest archived
//! commit.
//!
//! Layout inside the data directory: `pgbackrest.conf` (the repository, the key; readable by
//! the cluster's OS user only), `backups/` (the repository), `run/` (pgBackRest's logs and locks,
//! private to this cluster so several clusters on one machine never share a lock).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};
use tokio::process::Command;

use crate::cluster::{
    io_err, run, running_as_root, ClusterError, ManagedCluster, PgBinaries, Role,
};

/// The pgBackRest stanza (its name for the cluster) in the repository.
const STANZA: &str = "tenantry";

/// Seconds after which a WAL segment is archived even if not full: the recovery point objective.
pub const ARCHIVE_TIMEOUT_SECONDS: u32 = 60;

/// Full backups are kept this many days (seed 003: daily fulls kept 30 days). Differential and
/// incremental backups depend on a full one and go with it; the WAL archive is kept as far back
/// as the oldest backup, so any moment since then can be restored.
const RETENTION_FULL_DAYS: u32 = 30;

/// Where backups go and how they are sealed.
#[derive(Clone, Debug)]
pub struct BackupSettings {
    /// The repository: a directory, best on another disk than the cluster (by default the
    /// data directory's `backups/`, which a lost disk takes with it).
    pub repository: PathBuf,
    /// The encryption key (pgBackRest's cipher pass). Without it no backup can be read.
    pub key: String,
}

/// What a backup copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupKind {
    /// Everything.
    Full,
    /// What changed since the last full backup.
    Diff,
    /// What changed since the last backup of any kind.
    Incr,
}

impl BackupKind {
    fn as_str(self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::Diff => "diff",
            BackupKind::Incr => "incr",
        }
    }
}

/// How far a restore replays the archived WAL.
#[derive(Clone, Debug)]
pub enum RestoreTarget {
    /// Every archived commit.
    Latest,
    /// Commits up to this moment, none after it.
    Time(DateTime<Utc>),
    /// Commits up to a restore point (`pg_create_restore_point`), none after it.
    Point(String),
}

impl RestoreTarget {
    /// pgBackRest's options for the target; the cluster promotes itself there.
    fn args(&self) -> Vec<String> {
        match self {
            RestoreTarget::Latest => vec!["--type=default".into()],
            RestoreTarget::Time(at) => vec![
                "--type=time".into(),
                format!("--target={}", at.format("%Y-%m-%d %H:%M:%S%.6f+00")),
                "--target-action=promote".into(),
            ],
            RestoreTarget::Point(name) => vec![
                "--type=name".into(),
                format!("--target={name}"),
                "--target-action=promote".into(),
            ],
        }
    }
}

impl fmt::Display for RestoreTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreTarget::Latest => write!(f, "the latest archived commit"),
            RestoreTarget::Time(at) => write!(f, "{}", at.to_rfc3339()),
            RestoreTarget::Point(name) => write!(f, "the restore point {name}"),
        }
    }
}

/// A backup in the repository, as `pgbackrest info` reports it.
#[derive(Clone, Debug)]
pub struct BackupSet {
    pub label: String,
    pub kind: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Bytes of the cluster the backup covers, and what it took in the repository.
    pub database_bytes: u64,
    pub repository_bytes: u64,
}

/// Whether WAL archiving keeps up, from PostgreSQL's archiver statistics (any role may read
/// them; an external server's archiving counts too).
#[derive(Clone, Debug)]
pub struct ArchiveHealth {
    /// `archive_mode` is on.
    pub archiving: bool,
    pub last_archived_at: Option<DateTime<Utc>>,
    /// The latest failure, and the segment that failed.
    pub last_failed_at: Option<DateTime<Utc>>,
    pub last_failed_wal: Option<String>,
    /// When these statistics were last reset (a crash resets them too).
    pub stats_reset: Option<DateTime<Utc>>,
}

impl ArchiveHealth {
    /// What is wrong, when the latest attempt to archive failed (a later success clears it).
    pub fn problem(&self) -> Option<String> {
        let failed_at = self.last_failed_at?;
        if self.last_archived_at.is_some_and(|ok| ok > failed_at) {
            return None;
        }
        Some(format!(
            "WAL archiving is failing: segment {} could not be archived at {} (last archived: {}); \
             the server keeps the WAL until it can, see the PostgreSQL log",
            self.last_failed_wal.as_deref().unwrap_or("?"),
            failed_at.to_rfc3339(),
            self.last_archived_at
                .map_or_else(|| "never".to_string(), |at| at.to_rfc3339()),
        ))
    }
}

impl ArchiveHealth {
    /// The alert for the operator while archiving fails: one per episode, keyed by when the
    /// last segment before the failures was archived (the same until archiving works again) and
    /// when the statistics began (a crash or a reset starts them anew, "never archived" too).
    pub fn alert(&self, host: &str) -> Option<crate::queue::Alert> {
        let problem = self.problem()?;
        let time = |at: Option<DateTime<Utc>>| {
            at.map_or_else(|| "never".to_string(), |at| at.to_rfc3339())
        };
        Some(crate::queue::Alert {
            key: format!(
                "wal-archive:{}:{}",
                time(self.stats_reset),
                time(self.last_archived_at)
            ),
            subject: format!("Tenantry on {host}: WAL archiving is failing"),
            body: format!(
                "{problem}.\n\n\
                 Until it works again, backups do not cover new commits and the server's disk \
                 fills with the WAL it keeps. Check the backup repository (TENANTRY_BACKUP_DIR): \
                 free space, permissions, the backup key; pgBackRest's log is in DATA_DIR/run/. \
                 /readyz says \"degraded\" while this lasts; this email is sent once per episode.\n"
            ),
        })
    }
}

/// Reads the archiver's statistics.
pub async fn archive_health(pool: &sqlx::PgPool) -> Result<ArchiveHealth, sqlx::Error> {
    use sqlx::Row;
    // The simple protocol, one message: no prepared statement, so it works the same behind a
    // pooler in transaction mode (the runtime role's `/readyz`), where a statement prepared
    // outside a transaction may be run on another server connection.
    let row = sqlx::raw_sql(
        r"SELECT current_setting('archive_mode') <> 'off', last_archived_time, last_failed_time, last_failed_wal,
                 stats_reset
            FROM pg_stat_archiver",
    )
    .fetch_one(pool)
    .await?;
    let (archiving, last_archived_at, last_failed_at, last_failed_wal, stats_reset) = (
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
    );
    Ok(ArchiveHealth {
        archiving,
        last_archived_at,
        last_failed_at,
        last_failed_wal,
        stats_reset,
    })
}

impl ManagedCluster {
    fn backup_config(&self) -> PathBuf {
        self.root().join("pgbackrest.conf")
    }

    /// The settings file included by `postgresql.conf` and rewritten at every start: where the
    /// cluster listens (`cluster.json`'s port, its own socket directory: a copy restored into
    /// another directory listens apart from its original), and WAL archiving on when backups
    /// are configured, off otherwise (a copy never pushes WAL into its original's archive).
    pub(crate) fn write_archive_settings(&self) -> Result<(), ClusterError> {
        let info = self.info()?;
        let listen = format!(
            "port = {}\nunix_socket_directories = '{}'\n",
            info.port,
            self.run_dir().display().to_string().replace('\'', "''")
        );
        let archive = match &self.backups {
            Some(_) => {
                require_pgbackrest()?;
                // Run by the server through /bin/sh: the path is single-quoted for the shell,
                // and the whole command single-quoted again for postgresql.conf.
                let command = format!(
                    "pgbackrest --config={} --stanza={STANZA} archive-push %p",
                    shell_quote(&self.backup_config())
                );
                format!(
                    "archive_mode = on\n\
                     archive_command = '{}'\n\
                     archive_timeout = {ARCHIVE_TIMEOUT_SECONDS}\n",
                    command.replace('\'', "''")
                )
            }
            None => "# No backups are configured.\narchive_mode = off\n".to_string(),
        };
        let settings = format!("# Written by Tenantry at every start.\n{listen}{archive}");
        let path = self.pgdata().join("tenantry.conf");
        fs::write(&path, settings).map_err(io_err(&path))?;
        crate::cluster::give_to_postgres(&path)?;
        // Clusters made before archiving existed do not include the file yet.
        let conf = self.pgdata().join("postgresql.conf");
        let text = fs::read_to_string(&conf).map_err(io_err(&conf))?;
        if !text.contains(INCLUDE_ARCHIVE_SETTINGS) {
            fs::write(&conf, format!("{text}\n{INCLUDE_ARCHIVE_SETTINGS}\n"))
                .map_err(io_err(&conf))?;
        }
        Ok(())
    }

    /// Writes `pgbackrest.conf` and makes the repository (owned by the cluster's OS user).
    pub(crate) fn write_backup_config(
        &self,
        settings: &BackupSettings,
    ) -> Result<(), ClusterError> {
        let info = self.info()?;
        let (repository, key) = (&settings.repository, &settings.key);
        fs::create_dir_all(repository).map_err(io_err(repository))?;
        set_private(repository, 0o700)?;
        crate::cluster::give_to_postgres(repository)?;
        let config = format!(
            "[global]\n\
             repo1-path={repository}\n\
             repo1-retention-full-type=time\n\
             repo1-retention-full={RETENTION_FULL_DAYS}\n\
             repo1-cipher-type=aes-256-cbc\n\
             repo1-cipher-pass={key}\n\
             compress-type=zst\n\
             start-fast=y\n\
             log-path={run}\n\
             lock-path={run}\n\
             log-level-console=warn\n\
             log-level-file=info\n\
             \n\
             [{STANZA}]\n\
             pg1-path={pgdata}\n\
             pg1-port={port}\n\
             pg1-socket-path={run}\n\
             pg1-user=postgres\n",
            repository = repository.display(),
            run = self.run_dir().display(),
            pgdata = self.pgdata().display(),
            port = info.port,
        );
        let path = self.backup_config();
        crate::cluster::write_private(&path, config.as_bytes())?;
        crate::cluster::give_to_postgres(&path)
    }

    /// Creates the stanza once (after the first start with backups): WAL can be archived from
    /// then on.
    pub(crate) async fn ensure_stanza(&self) -> Result<(), ClusterError> {
        let Some(settings) = &self.backups else {
            return Ok(());
        };
        let made = settings
            .repository
            .join("backup")
            .join(STANZA)
            .join("backup.info");
        if made.exists() {
            return Ok(());
        }
        self.pgbackrest(&["stanza-create"]).await.map(drop)
    }

    /// Takes a backup of the running cluster; returns its label.
    pub async fn backup(&self, kind: BackupKind) -> Result<BackupSet, ClusterError> {
        self.require_backups()?;
        if self.live_postmaster().is_none() {
            return Err(ClusterError::Backup(
                "the cluster is not running: a backup copies a running cluster (start it with `tenantry db start`)".into(),
            ));
        }
        self.ensure_stanza().await?;
        self.pgbackrest(&["backup", &format!("--type={}", kind.as_str())])
            .await?;
        self.backups()
            .await?
            .pop()
            .ok_or_else(|| ClusterError::Backup("pgBackRest reported no backup".into()))
    }

    /// The backups in the repository, oldest first.
    pub async fn backups(&self) -> Result<Vec<BackupSet>, ClusterError> {
        self.require_backups()?;
        let out = self.pgbackrest(&["info", "--output=json"]).await?;
        parse_info(&out)
    }

    /// Restores the (stopped) cluster from the repository up to `target`, replays the WAL and
    /// leaves the cluster stopped, open for writes again at its next start.
    pub async fn restore(&self, target: &RestoreTarget) -> Result<(), ClusterError> {
        self.require_backups()?;
        {
            let _lock = self.lock()?;
            if self.live_postmaster().is_some() {
                return Err(ClusterError::Backup(
                    "the cluster is running: stop the service and run `tenantry db stop` first"
                        .into(),
                ));
            }
            let binaries = PgBinaries::locate(self.data_major())?;
            let mut args = vec!["restore".to_string(), "--delta".to_string()];
            args.extend(target.args());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.pgbackrest(&args).await?;
            self.recover(&binaries, target).await?;
        }
        // Left as found: stopped.
        self.stop().await?;
        Ok(())
    }

    /// Restores the repository's latest backup up to `target` into `into`, a new data
    /// directory (absent or empty), and starts the copy there: on a free port of 127.0.0.1 and
    /// its own socket, with the original's credentials, WAL archiving off. Returns it running;
    /// the original is not touched and may keep running.
    pub async fn restore_copy(
        &self,
        target: &RestoreTarget,
        into: &Path,
    ) -> Result<ManagedCluster, ClusterError> {
        self.require_backups()?;
        let occupied = fs::read_dir(into).is_ok_and(|mut entries| entries.next().is_some());
        if occupied {
            return Err(ClusterError::Backup(format!(
                "{} is not empty: a copy is restored into a new directory",
                into.display()
            )));
        }
        let copy = ManagedCluster::new(into);
        let made = async {
            copy.make_directories().await?;
            copy.write_info(&crate::cluster::ClusterInfo {
                port: crate::cluster::free_port()?,
                ..self.info()?
            })?;
            // Archiving stays off by the copy's own settings (`tenantry.conf`, written at each
            // start without backups), not pgBackRest's `--archive-mode=off`, which would pin it
            // off in postgresql.auto.conf even once the copy runs with backups of its own.
            let mut args = vec![
                "restore".to_string(),
                format!("--pg1-path={}", copy.pgdata().display()),
                // A file that fails its checksum in a local repository fails again: say so at
                // once (pgBackRest otherwise tries twice more, 15 s apart).
                "--job-retry=0".to_string(),
            ];
            args.extend(target.args());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.pgbackrest(&args).await?;
            let binaries = PgBinaries::locate(copy.data_major())?;
            copy.recover(&binaries, target).await
        }
        .await;
        if let Err(e) = made {
            // Nothing half-made stays (the directory was absent or empty): the same command
            // can simply be run again.
            if copy.live_postmaster().is_some() {
                // It may be on its way down already (a failed recovery stops it).
                if let Err(stopping) = copy.stop().await {
                    tracing::debug!(error = %stopping, "stopping the failed copy");
                }
            }
            copy.wait_for_leftover_processes().await?;
            if into.exists() {
                fs::remove_dir_all(into).map_err(io_err(into))?;
            }
            return Err(e);
        }
        Ok(copy)
    }

    /// Starts the restored cluster: it replays the WAL to `target` and promotes itself there.
    async fn recover(
        &self,
        binaries: &PgBinaries,
        target: &RestoreTarget,
    ) -> Result<(), ClusterError> {
        // A target past the archive ends the recovery with a FATAL: at the start, or (once it
        // took read-only connections) while it is awaited.
        let recovered = async {
            self.start(binaries).await?;
            self.wait_for_recovery().await
        }
        .await;
        if recovered.is_err()
            && self
                .log_tail()
                .contains("before configured recovery target")
        {
            return Err(ClusterError::Backup(format!(
                "the WAL archive does not reach {target} yet: commits reach it within \
                 {ARCHIVE_TIMEOUT_SECONDS} s of being made; try again in a minute, or restore \
                 to an earlier moment or --latest (nothing was lost; run the restore again)"
            )));
        }
        recovered
    }

    /// Waits until the started cluster has replayed its WAL and accepts writes.
    async fn wait_for_recovery(&self) -> Result<(), ClusterError> {
        let info = self.info()?;
        let mut conn = PgConnection::connect(&info.url(Role::Superuser, "postgres")).await?;
        let started = std::time::Instant::now();
        loop {
            let recovering: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                .fetch_one(&mut conn)
                .await?;
            if !recovering {
                break;
            }
            if started.elapsed() > std::time::Duration::from_secs(3600) {
                return Err(ClusterError::Backup(
                    "recovery did not finish within an hour; see run/postgres.log".into(),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        conn.close().await?;
        Ok(())
    }

    fn require_backups(&self) -> Result<(), ClusterError> {
        match self.backups {
            Some(_) => Ok(()),
            None => Err(ClusterError::Backup("backups are not configured".into())),
        }
    }

    /// Runs pgBackRest as the cluster's OS user, with the superuser's password for the
    /// connections it makes to the cluster.
    async fn pgbackrest(&self, args: &[&str]) -> Result<String, ClusterError> {
        let info = self.info()?;
        let mut cmd = if running_as_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--", "pgbackrest"]);
            cmd
        } else {
            Command::new("pgbackrest")
        };
        cmd.arg(format!("--config={}", self.backup_config().display()))
            .arg(format!("--stanza={STANZA}"))
            .args(args)
            .env("PGPASSWORD", &info.superuser_password);
        run(cmd, &format!("pgbackrest {}", args.first().unwrap_or(&""))).await
    }
}

/// Refuses to start archiving without pgBackRest: every WAL segment would fail to archive.
fn require_pgbackrest() -> Result<(), ClusterError> {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("pgbackrest").is_file())
    });
    if found {
        return Ok(());
    }
    let install = if running_as_root() {
        "apt-get install -y pgbackrest"
    } else {
        "sudo apt-get install -y pgbackrest"
    };
    Err(ClusterError::Backup(format!(
        "the managed cluster archives its WAL with pgBackRest, which is not installed; install it with:\n    {install}\n(bash scripts/ensure-postgres installs both)"
    )))
}

/// The line of `postgresql.conf` that reads the archive settings.
const INCLUDE_ARCHIVE_SETTINGS: &str = "include_if_exists = 'tenantry.conf'";

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

fn set_private(path: &Path, mode: u32) -> Result<(), ClusterError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

/// The backups of `pgbackrest info --output=json`, oldest first.
fn parse_info(json: &str) -> Result<Vec<BackupSet>, ClusterError> {
    let bad = |what: &str| ClusterError::Backup(format!("pgbackrest info: {what}"));
    let stanzas: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
    let stanza = stanzas
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == STANZA))
        .ok_or_else(|| bad("no stanza"))?;
    let time = |value: &serde_json::Value| {
        value
            .as_i64()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
            .ok_or_else(|| bad("a backup without its times"))
    };
    stanza["backup"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|b| {
            Ok(BackupSet {
                label: b["label"].as_str().unwrap_or_default().to_string(),
                kind: b["type"].as_str().unwrap_or_default().to_string(),
                started_at: time(&b["timestamp"]["start"])?,
                finished_at: time(&b["timestamp"]["stop"])?,
                database_bytes: b["info"]["size"].as_u64().unwrap_or_default(),
                repository_bytes: b["info"]["repository"]["delta"]
                    .as_u64()
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archiving_is_failing_until_a_later_success() {
        let at = |s: i64| DateTime::from_timestamp(1_764_585_840 + s, 0);
        let health = |ok: Option<DateTime<Utc>>, failed: Option<DateTime<Utc>>| ArchiveHealth {
            archiving: true,
            last_archived_at: ok,
            last_failed_at: failed,
            last_failed_wal: Some("000000010000000000000003".into()),
            stats_reset: at(-100),
        };
        assert!(health(at(0), None).problem().is_none());
        // One alert per episode: the same key while it lasts, another after a recovery or a
        // reset of the statistics (which "never archived" alone would not tell apart).
        let key = |h: ArchiveHealth| h.alert("host").map(|a| a.key);
        assert_eq!(key(health(at(0), at(5))), key(health(at(0), at(65))));
        assert_ne!(key(health(at(0), at(5))), key(health(at(70), at(95))));
        let mut reset = health(None, at(5));
        reset.stats_reset = at(200);
        assert_ne!(key(health(None, at(5))), key(reset));
        assert!(health(at(10), at(5)).problem().is_none(), "recovered");
        let problem = health(at(0), at(5)).problem().expect("failing");
        assert!(problem.contains("000000010000000000000003"), "{problem}");
        assert!(health(None, at(5))
            .problem()
            .expect("never archived")
            .contains("never"));
    }

    #[test]
    fn a_path_with_a_quote_stays_one_shell_word() {
        assert_eq!(
            shell_quote(Path::new("/srv/it's here/pgbackrest.conf")),
            r"'/srv/it'\''s here/pgbackrest.conf'"
        );
    }

    #[test]
    fn info_lists_the_backups_oldest_first() {
        let json = r#"[{"name":"tenantry","backup":[
            {"label":"20261201-104400F","type":"full","timestamp":{"start":1764585840,"stop":1764585845},
             "info":{"size":30000000,"repository":{"delta":4000000}}},
            {"label":"20261201-104400F_20261201-110000I","type":"incr","timestamp":{"start":1764586800,"stop":1764586801},
             "info":{"size":30000000,"repository":{"delta":20000}}}]}]"#;
        let sets = parse_info(json).expect("parsed");
        assert_eq!(
            sets.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(),
            ["full", "incr"]
        );
        assert_eq!(sets[1].repository_bytes, 20000);
        assert!(parse_info(r#"[{"name":"other"}]"#).is_err());
    }
}
