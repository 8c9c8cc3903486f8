//! The managed local PostgreSQL cluster: Tenantry's embedded default when no `DATABASE_URL` is set.
//!
//! Layout of a data directory:
//! - `cluster.json`: port and the generated role passwords (mode 0600, written before `initdb`);
//! - `pgdata/`: the cluster itself (owned by the `postgres` OS user when we run as root);
//! - `run/`: the Unix socket and `postgres.log`;
//! - `lock`: held while starting or stopping, so concurrent commands do not race.
//!
//! The cluster listens on 127.0.0.1 on a port chosen at creation and requires SCRAM passwords.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};
use tokio::process::Command;

use crate::{DATABASE_NAME, OWNER_ROLE, RUNTIME_ROLE};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres; version 15 or newer) were not found \
         via $TENANTRY_PG_BINDIR, pg_config, PATH or /usr/lib/postgresql/*/bin.\n\
         Install them with:\n    {install}\n\
         or set DATABASE_URL and DATABASE_OWNER_URL to use an existing PostgreSQL 15+ server"
    )]
    BinariesNotFound { install: String },
    #[error(
        "{dir} holds a PostgreSQL {data_major} cluster, but no PostgreSQL {data_major} binaries were found \
         (install postgresql-{data_major}, or choose another --data-dir)"
    )]
    VersionMismatch { dir: PathBuf, data_major: u32 },
    #[error(
        "the postgres OS user cannot write to {0}: PostgreSQL refuses to run as root, so the data \
         directory must be reachable by that user (choose --data-dir under a directory it can enter, e.g. /var/lib/tenantry)"
    )]
    NotAccessible(PathBuf),
    #[error(
        "{dir} holds a PostgreSQL cluster but its credentials file {file} is missing; \
         restore the file or choose another --data-dir (nothing was changed)"
    )]
    MissingCredentials { dir: PathBuf, file: PathBuf },
    #[error("{command} failed: {detail}")]
    Command { command: String, detail: String },
    #[error(
        "processes {pids:?} of an earlier PostgreSQL run still use {dir} after {seconds} s; \
         stop them (they finish their last query first), then start again"
    )]
    StillInUse {
        dir: PathBuf,
        pids: Vec<u32>,
        seconds: u64,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("backup: {0}")]
    Backup(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A path as a URL query value: bytes other than unreserved characters and `/` percent-encoded.
fn percent_encode_path(path: &Path) -> String {
    path.as_os_str()
        .as_encoded_bytes()
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The database roles of a managed cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Superuser,
    Owner,
    Runtime,
}

/// What `cluster.json` records: how to reach the cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub port: u16,
    pub superuser_password: String,
    pub owner_password: String,
    pub runtime_password: String,
    /// Where the cluster's Unix-domain socket lives (not recorded: it follows the data directory).
    #[serde(skip)]
    pub socket_dir: Option<PathBuf>,
}

impl ClusterInfo {
    /// A `postgres://` URL for `role` on `database`; `psql` accepts it as is. It goes through
    /// the cluster's Unix-domain socket when the socket is there: a round trip costs about a third
    /// less than over loopback TCP, and every request makes several.
    pub fn url(&self, role: Role, database: &str) -> String {
        let (user, password) = match role {
            Role::Superuser => ("postgres", &self.superuser_password),
            Role::Owner => (OWNER_ROLE, &self.owner_password),
            Role::Runtime => (RUNTIME_ROLE, &self.runtime_password),
        };
        let port = self.port;
        let socket_dir = self
            .socket_dir
            .as_ref()
            .filter(|dir| dir.join(format!(".s.PGSQL.{port}")).exists());
        match socket_dir {
            Some(dir) => format!(
                "postgres://{user}:{password}@localhost:{port}/{database}?host={}",
                percent_encode_path(dir)
            ),
            None => format!("postgres://{user}:{password}@127.0.0.1:{port}/{database}"),
        }
    }
}

/// A located set of PostgreSQL server binaries.
#[derive(Clone, Debug)]
pub struct PgBinaries {
    pub bindir: PathBuf,
    pub major: u32,
}

impl PgBinaries {
    /// Finds server binaries of version 15 or newer, preferring `major` when given.
    pub fn locate(major: Option<u32>) -> Result<Self, ClusterError> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os("TENANTRY_PG_BINDIR") {
            candidates.push(dir.into());
        }
        if let Some(major) = major {
            candidates.push(format!("/usr/lib/postgresql/{major}/bin").into());
        }
        if let Ok(out) = std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
        {
            if out.status.success() {
                candidates.push(String::from_utf8_lossy(&out.stdout).trim().into());
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                if let Ok(real) = fs::canonicalize(dir.join("initdb")) {
                    if let Some(parent) = real.parent() {
                        candidates.push(parent.to_path_buf());
                    }
                }
            }
        }
        let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((v, e.path().join("bin")))
            })
            .collect();
        versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
        candidates.extend(versioned.into_iter().map(|(_, p)| p));

        Self::locate_in(&candidates, major)
    }

    /// The first of `candidates` holding server binaries of version 15+ (of `major` if given).
    fn locate_in(candidates: &[PathBuf], major: Option<u32>) -> Result<Self, ClusterError> {
        candidates
            .iter()
            .filter_map(|dir| Self::probe(dir))
            .find(|b| b.major >= 15 && major.is_none_or(|m| b.major == m))
            .ok_or_else(|| ClusterError::BinariesNotFound {
                install: if running_as_root() {
                    "apt-get update && apt-get install -y postgresql".into()
                } else {
                    "sudo apt-get update && sudo apt-get install -y postgresql".into()
                },
            })
    }

    fn probe(dir: &Path) -> Option<Self> {
        for tool in ["initdb", "pg_ctl", "postgres"] {
            if !dir.join(tool).is_file() {
                return None;
            }
        }
        let out = std::process::Command::new(dir.join("postgres"))
            .arg("--version")
            .output()
            .ok()?;
        // "postgres (PostgreSQL) 15.18 (Debian ...)"
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.split(')').nth(1)?.split_whitespace().next()?;
        let major = version.split('.').next()?.parse().ok()?;
        Some(Self {
            bindir: dir.to_path_buf(),
            major,
        })
    }

    /// A command running `tool` as the `postgres` OS user when we are root.
    fn command(&self, tool: &str) -> Command {
        let path = self.bindir.join(tool);
        if running_as_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }
}

pub(crate) async fn run(mut cmd: Command, what: &str) -> Result<String, ClusterError> {
    let out = cmd.output().await.map_err(|e| ClusterError::Command {
        command: what.into(),
        detail: e.to_string(),
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(ClusterError::Command {
            command: what.into(),
            detail: text.trim().to_string(),
        })
    }
}

/// Whether a managed cluster exists and runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterStatus {
    NotInitialized,
    Stopped,
    Running { pid: u32 },
}

/// A managed cluster in a data directory.
#[derive(Clone, Debug)]
pub struct ManagedCluster {
    root: PathBuf,
    /// Extra `postgresql.conf` settings written at creation (the test cluster trades durability for speed).
    extra_settings: Vec<(String, String)>,
    /// Where backups go and their key; with them, the cluster archives its WAL (see
    /// [`crate::backup`]).
    pub(crate) backups: Option<crate::backup::BackupSettings>,
}

/// A running cluster and whether this process started it (and so should stop it).
#[derive(Clone, Debug)]
pub struct RunningCluster {
    pub info: ClusterInfo,
    pub started_here: bool,
}

impl ManagedCluster {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            extra_settings: Vec::new(),
            backups: None,
        }
    }

    /// Backups on: the cluster archives its WAL into the repository `settings` name.
    pub fn with_backups(mut self, settings: crate::backup::BackupSettings) -> Self {
        self.backups = Some(settings);
        self
    }

    pub fn with_settings(mut self, settings: &[(&str, &str)]) -> Self {
        self.extra_settings = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub(crate) fn pgdata(&self) -> PathBuf {
        self.root.join("pgdata")
    }
    pub(crate) fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    fn info_file(&self) -> PathBuf {
        self.root.join("cluster.json")
    }

    /// Reads `cluster.json`.
    pub fn info(&self) -> Result<ClusterInfo, ClusterError> {
        let path = self.info_file();
        let text = fs::read_to_string(&path).map_err(io_err(&path))?;
        let info: ClusterInfo =
            serde_json::from_str(&text).map_err(|source| ClusterError::Json { path, source })?;
        Ok(ClusterInfo {
            socket_dir: Some(self.run_dir()),
            ..info
        })
    }

    pub(crate) fn data_major(&self) -> Option<u32> {
        fs::read_to_string(self.pgdata().join("PG_VERSION"))
            .ok()
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn status(&self) -> ClusterStatus {
        if self.data_major().is_none() {
            return ClusterStatus::NotInitialized;
        }
        match self.live_postmaster() {
            Some(pid) => ClusterStatus::Running { pid },
            None => ClusterStatus::Stopped,
        }
    }

    /// The postmaster's pid, if `postmaster.pid` names a live postgres serving this data directory.
    pub(crate) fn live_postmaster(&self) -> Option<u32> {
        let pidfile = fs::read_to_string(self.pgdata().join("postmaster.pid")).ok()?;
        let pid: u32 = pidfile.lines().next()?.trim().parse().ok()?;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let pgdata = self.pgdata();
        let serves_us = String::from_utf8_lossy(&cmdline).contains(&*pgdata.to_string_lossy());
        (comm.trim() == "postgres" && serves_us).then_some(pid)
    }

    /// Holds the data directory's lock file while `work` runs (blocking; others wait their turn).
    pub(crate) fn lock(&self) -> Result<fs::File, ClusterError> {
        fs::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        let path = self.root.join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.lock().map_err(io_err(&path))?;
        Ok(file)
    }

    /// Creates the cluster if needed and starts it if it is not running.
    pub async fn ensure_running(&self) -> Result<RunningCluster, ClusterError> {
        let _lock = self.lock()?;
        let binaries = match self.data_major() {
            Some(major) => PgBinaries::locate(Some(major)).map_err(|e| match e {
                ClusterError::BinariesNotFound { .. } if PgBinaries::locate(None).is_ok() => {
                    ClusterError::VersionMismatch {
                        dir: self.pgdata(),
                        data_major: major,
                    }
                }
                other => other,
            })?,
            None => {
                let binaries = PgBinaries::locate(None)?;
                self.init(&binaries).await?;
                binaries
            }
        };
        if !self.info_file().exists() {
            return Err(ClusterError::MissingCredentials {
                dir: self.pgdata(),
                file: self.info_file(),
            });
        }
        let info = self.info()?;
        if self.live_postmaster().is_some() {
            return Ok(RunningCluster {
                info,
                started_here: false,
            });
        }
        self.start(&binaries).await?;
        self.bootstrap(&info).await?;
        self.ensure_stanza().await?;
        Ok(RunningCluster {
            info,
            started_here: true,
        })
    }

    /// Makes the root (enterable by the cluster's OS user), `pgdata` and `run` (private to it).
    pub(crate) async fn make_directories(&self) -> Result<(), ClusterError> {
        fs::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o755))
            .map_err(io_err(&self.root))?;
        for dir in [self.pgdata(), self.run_dir()] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_err(&dir))?;
            give_to_postgres(&dir)?;
        }
        if running_as_root() {
            let mut probe = Command::new("runuser");
            probe.args(["-u", "postgres", "--", "test", "-w"]);
            probe.arg(self.run_dir());
            if run(probe, "runuser").await.is_err() {
                return Err(ClusterError::NotAccessible(self.root.clone()));
            }
        }
        Ok(())
    }

    /// Writes `cluster.json` (readable by this user only).
    pub(crate) fn write_info(&self, info: &ClusterInfo) -> Result<(), ClusterError> {
        let json = serde_json::to_vec_pretty(info).map_err(|source| ClusterError::Json {
            path: self.info_file(),
            source,
        })?;
        write_private(&self.info_file(), &json)
    }

    async fn init(&self, binaries: &PgBinaries) -> Result<(), ClusterError> {
        self.make_directories().await?;
        // Credentials are written before initdb, so a half-made cluster can always be reached.
        let info = match self.info() {
            Ok(info) => info,
            Err(_) => {
                let info = ClusterInfo {
                    port: free_port()?,
                    superuser_password: secret(),
                    owner_password: secret(),
                    runtime_password: secret(),
                    socket_dir: Some(self.run_dir()),
                };
                self.write_info(&info)?;
                info
            }
        };
        let pwfile = self.run_dir().join("initdb.pw");
        write_private(&pwfile, info.superuser_password.as_bytes())?;
        give_to_postgres(&pwfile)?;
        let mut initdb = binaries.command("initdb");
        initdb
            .arg("-D")
            .arg(self.pgdata())
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        let result = run(initdb, "initdb").await;
        let _ = fs::remove_file(&pwfile);
        result?;

        let conf = self.pgdata().join("postgresql.conf");
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(io_err(&conf))?;
        let mut settings = format!(
            "\n# Tenantry managed cluster\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nmax_connections = 200\nshared_buffers = 256MB\n",
            info.port,
            self.run_dir().display()
        );
        for (key, value) in &self.extra_settings {
            settings.push_str(&format!("{key} = {value}\n"));
        }
        file.write_all(settings.as_bytes()).map_err(io_err(&conf))?;
        Ok(())
    }

    pub(crate) async fn start(&self, binaries: &PgBinaries) -> Result<(), ClusterError> {
        // A killed postmaster's backends outlive it until they finish their statement, and
        // PostgreSQL refuses to start while they hold its shared memory ("pre-existing shared
        // memory block is still in use"); a supervisor restarting at once would always fail.
        // So wait for them, and retry once more should one slip past the look.
        self.write_archive_settings()?;
        if let Some(settings) = &self.backups {
            self.write_backup_config(settings)?;
        }
        let mut attempt = 1;
        loop {
            self.wait_for_leftover_processes().await?;
            match self.pg_ctl_start(binaries).await {
                Err(ClusterError::Command { detail, .. })
                    if attempt < 3 && self.log_tail().contains("still in use") =>
                {
                    tracing::warn!(attempt, %detail, "PostgreSQL did not start; retrying");
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                result => return result,
            }
        }
    }

    /// Waits (up to a minute) until no process works in the data directory — PostgreSQL's
    /// processes all do — saying what it waits for.
    pub(crate) async fn wait_for_leftover_processes(&self) -> Result<(), ClusterError> {
        const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);
        let started = std::time::Instant::now();
        let mut reported = false;
        loop {
            let pids = self.leftover_processes();
            if pids.is_empty() {
                if reported {
                    tracing::info!(
                        seconds = started.elapsed().as_secs_f32(),
                        "the earlier PostgreSQL processes exited"
                    );
                }
                return Ok(());
            }
            if started.elapsed() > PATIENCE {
                return Err(ClusterError::StillInUse {
                    dir: self.pgdata(),
                    pids,
                    seconds: PATIENCE.as_secs(),
                });
            }
            if !reported {
                tracing::warn!(
                    ?pids,
                    dir = %self.pgdata().display(),
                    "waiting for processes of an earlier PostgreSQL run to exit"
                );
                reported = true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Processes whose working directory is the data directory (what /proc lets us see).
    fn leftover_processes(&self) -> Vec<u32> {
        let Ok(pgdata) = fs::canonicalize(self.pgdata()) else {
            return Vec::new();
        };
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == pgdata))
            .collect()
    }

    /// The end of PostgreSQL's log, where a failed start says why.
    pub(crate) fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.run_dir().join("postgres.log")).unwrap_or_default();
        let start = log.len().saturating_sub(4096);
        log.get(start..).unwrap_or_default().to_string()
    }

    async fn pg_ctl_start(&self, binaries: &PgBinaries) -> Result<(), ClusterError> {
        // A crash leaves postmaster.pid behind; if its pid is now some other process, PostgreSQL
        // would refuse to start, so remove it (live_postmaster() already said it is not ours).
        let pidfile = self.pgdata().join("postmaster.pid");
        if pidfile.exists() {
            tracing::warn!(path = %pidfile.display(), "removing stale postmaster.pid");
            fs::remove_file(&pidfile).map_err(io_err(&pidfile))?;
        }
        let mut cmd = binaries.command("pg_ctl");
        cmd.arg("start")
            .arg("-D")
            .arg(self.pgdata())
            .args(["-w", "-t", "120", "-l"])
            .arg(self.run_dir().join("postgres.log"))
            // Own process group: a Ctrl-C in our terminal must not reach the postmaster directly.
            .process_group(0);
        run(cmd, "pg_ctl start").await.map_err(|e| match e {
            ClusterError::Command { command, detail } => ClusterError::Command {
                command,
                detail: format!(
                    "{detail}\n(see {})",
                    self.run_dir().join("postgres.log").display()
                ),
            },
            other => other,
        })?;
        Ok(())
    }

    /// Creates (or repairs) the owner and runtime roles and the application database. Idempotent.
    async fn bootstrap(&self, info: &ClusterInfo) -> Result<(), ClusterError> {
        let mut conn = PgConnection::connect(&info.url(Role::Superuser, "postgres")).await?;
        for (role, attrs, password) in [
            (
                OWNER_ROLE,
                "LOGIN NOSUPERUSER BYPASSRLS NOCREATEROLE",
                &info.owner_password,
            ),
            (
                RUNTIME_ROLE,
                "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION",
                &info.runtime_password,
            ),
        ] {
            let exists: bool =
                sqlx::query_scalar(r"SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)")
                    .bind(role)
                    .fetch_one(&mut conn)
                    .await?;
            let verb = if exists { "ALTER" } else { "CREATE" };
            // Passwords are generated alphanumerics, safe to inline (DDL takes no parameters).
            sqlx::raw_sql(&format!("{verb} ROLE {role} {attrs} PASSWORD '{password}'"))
                .execute(&mut conn)
                .await?;
        }
        // Every request sets its own limits (`tenant::REQUEST_SETTINGS`); these hold for
        // anything else the runtime role runs, whichever server connection a pooler hands it.
        sqlx::raw_sql(&format!(
            "ALTER ROLE {RUNTIME_ROLE} SET statement_timeout = '60s'; \
             ALTER ROLE {RUNTIME_ROLE} SET idle_in_transaction_session_timeout = '60s'"
        ))
        .execute(&mut conn)
        .await?;
        // Loading or erasing one organization's rows exactly (`bundle`) turns triggers off for
        // its transaction; the owner may already disable its tables' triggers, so this grants
        // nothing new (PostgreSQL 15 and later; earlier, only a superuser may).
        let version: i32 = sqlx::query_scalar(r"SELECT current_setting('server_version_num')::int")
            .fetch_one(&mut conn)
            .await?;
        if version >= 150000 {
            sqlx::raw_sql(&format!(
                "GRANT SET ON PARAMETER session_replication_role TO {OWNER_ROLE}"
            ))
            .execute(&mut conn)
            .await?;
        }
        create_database_if_missing(&mut conn, DATABASE_NAME).await?;
        // Every database, template1 included (databases made later copy it).
        let databases: Vec<String> =
            sqlx::query_scalar(r"SELECT datname FROM pg_database WHERE datallowconn")
                .fetch_all(&mut conn)
                .await?;
        conn.close().await?;
        for database in databases {
            let mut conn = PgConnection::connect(&info.url(Role::Superuser, &database)).await?;
            sqlx::raw_sql(HIDE_OTHER_SESSIONS)
                .execute(&mut conn)
                .await?;
            conn.close().await?;
        }
        Ok(())
    }

    /// Stops the cluster (fast shutdown: open transactions roll back, nothing committed is lost).
    pub async fn stop(&self) -> Result<bool, ClusterError> {
        let _lock = self.lock()?;
        if self.live_postmaster().is_none() {
            return Ok(false);
        }
        let binaries = PgBinaries::locate(self.data_major())?;
        let mut cmd = binaries.command("pg_ctl");
        cmd.arg("stop")
            .arg("-D")
            .arg(self.pgdata())
            .args(["-m", "fast", "-w", "-t", "120"]);
        run(cmd, "pg_ctl stop").await?;
        Ok(true)
    }
}

/// What other sessions are running — their statements, which carry the request binding's
/// credentials — is for monitoring roles, not for everyone (PostgreSQL's default lets any role
/// read the statements of its own sessions, so the runtime role would see every request's).
/// Superuser only; the guard checks it (`tenantry db check`). Idempotent.
pub const HIDE_OTHER_SESSIONS: &str = r"
    REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer),
                               pg_catalog.pg_stat_get_backend_activity(integer) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer),
                              pg_catalog.pg_stat_get_backend_activity(integer) TO pg_read_all_stats;";

/// Creates database `name` owned by the owner role unless it exists; true when created.
/// `admin` is a superuser connection (to `postgres`). `name` must be a plain identifier.
pub async fn create_database_if_missing(
    admin: &mut PgConnection,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar(r"SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut *admin)
            .await?;
    if !exists {
        sqlx::raw_sql(&format!(r"CREATE DATABASE {name} OWNER {OWNER_ROLE}"))
            .execute(&mut *admin)
            .await?;
    }
    Ok(!exists)
}

fn secret() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
}

/// Makes `path` the `postgres` OS user's when running as root (PostgreSQL and PgBouncer refuse
/// to run as root, so they run as that user).
pub(crate) fn give_to_postgres(path: &Path) -> Result<(), ClusterError> {
    if !running_as_root() {
        return Ok(());
    }
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .ok_or_else(|| ClusterError::Command {
            command: "look up the postgres OS user".into(),
            detail: "no such user; install the postgresql package".into(),
        })?;
    std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
        .map_err(io_err(path))
}

pub(crate) fn free_port() -> Result<u16, ClusterError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(io_err(Path::new("127.0.0.1:0")))?;
    let port = listener
        .local_addr()
        .map_err(io_err(Path::new("127.0.0.1:0")))?
        .port();
    Ok(port)
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ClusterError> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_binaries_means_an_exact_install_command() {
        let err = PgBinaries::locate_in(&[PathBuf::from("/nonexistent/bin")], None)
            .expect_err("nothing there");
        let text = err.to_string();
        assert!(text.contains("apt-get install -y postgresql"), "{text}");
        assert!(text.contains("DATABASE_URL"), "{text}");
    }

    #[test]
    fn binaries_of_another_major_version_do_not_count() {
        let Ok(found) = PgBinaries::locate(None) else {
            return; // no PostgreSQL on this machine: the test above covers that case
        };
        assert!(found.major >= 15);
        let other =
            PgBinaries::locate_in(std::slice::from_ref(&found.bindir), Some(found.major + 1));
        assert!(matches!(other, Err(ClusterError::BinariesNotFound { .. })));
    }

    #[test]
    fn a_socket_directory_cannot_break_out_of_the_url() {
        let encoded = percent_encode_path(Path::new("/srv/my data/a&b?c=d#e%/run"));
        assert_eq!(encoded, "/srv/my%20data/a%26b%3Fc%3Dd%23e%25/run");
        let options: sqlx::postgres::PgConnectOptions =
            format!("postgres://u:p@localhost:5/db?host={encoded}")
                .parse()
                .expect("parses");
        assert_eq!(
            options.get_socket(),
            Some(&PathBuf::from("/srv/my data/a&b?c=d#e%/run"))
        );
    }
}
