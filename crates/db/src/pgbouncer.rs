//! A PgBouncer (Debian's package) in transaction mode before a managed cluster's runtime role:
//! for the test suite's pooled pass (`TENANTRY_TEST_PGBOUNCER`) and for the benchmark that
//! compares requests through it with direct connections. The service itself never starts one.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cluster::{give_to_postgres, running_as_root, write_private, ClusterError, ClusterInfo};
use crate::RUNTIME_ROLE;

/// A running PgBouncer and the directory holding its configuration, log and pid file.
#[derive(Debug)]
pub struct PgBouncer {
    pub port: u16,
    dir: PathBuf,
}

impl PgBouncer {
    /// The PgBouncer this configuration runs in `dir`, or a new one started there, under a lock
    /// file so that concurrent processes share one. `pool_size` server connections per database
    /// are handed round robin, so one client's transactions meet statements another client left.
    pub fn ensure(info: &ClusterInfo, dir: &Path, pool_size: u32) -> Result<Self, ClusterError> {
        let failed = |what: &str, detail: String| ClusterError::Command {
            command: format!("pgbouncer: {what}"),
            detail,
        };
        let io = |what: &'static str| move |e: std::io::Error| failed(what, e.to_string());
        fs::create_dir_all(dir).map_err(io("create its directory"))?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(dir.join("start.lock"))
            .map_err(io("open its lock file"))?;
        lock.lock().map_err(io("lock"))?;
        let ini = dir.join("pgbouncer.ini");
        if let Some(running) = Self::ours(dir, &ini, &config(info, dir, 0, pool_size)) {
            return Ok(running);
        }
        // Another configuration (or a stale pid file): stop whatever runs from this directory.
        Self {
            port: 0,
            dir: dir.into(),
        }
        .stop();
        let port = crate::cluster::free_port()?;
        // Written anew, so that the mode is ours whatever an older file had (the list holds a
        // password).
        let users = format!("\"{RUNTIME_ROLE}\" \"{}\"\n", info.runtime_password);
        for (path, text) in [
            (ini.clone(), config(info, dir, port, pool_size)),
            (dir.join("userlist.txt"), users),
        ] {
            let _ = fs::remove_file(&path);
            write_private(&path, text.as_bytes())?;
        }
        for path in ["", "pgbouncer.ini", "userlist.txt"] {
            give_to_postgres(&dir.join(path))?;
        }
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("pgbouncer");
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", binary]);
            c
        } else {
            Command::new(binary)
        };
        let log = dir.join("pgbouncer.log");
        let status = command
            .arg("-d")
            .arg(&ini)
            .status()
            .map_err(|e| failed("run (apt-get install pgbouncer)", e.to_string()))?;
        if !status.success() {
            return Err(failed("start", format!("see {}", log.display())));
        }
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Self {
                    port,
                    dir: dir.into(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(failed(
            "listen",
            format!("nothing on port {port}; see {}", log.display()),
        ))
    }

    /// The PgBouncer running from `dir` with exactly `expected` as its configuration (the port
    /// aside): its pid file names a live process started with our `pgbouncer.ini`.
    fn ours(dir: &Path, ini: &Path, expected: &str) -> Option<Self> {
        let written = fs::read_to_string(ini).ok()?;
        let port: u16 = written
            .lines()
            .find_map(|line| line.strip_prefix("listen_port = "))?
            .parse()
            .ok()?;
        if written.replace(&format!("listen_port = {port}\n"), "listen_port = 0\n") != expected {
            return None;
        }
        let pid = fs::read_to_string(dir.join("pgbouncer.pid")).ok()?;
        let cmdline = fs::read(format!("/proc/{}/cmdline", pid.trim())).ok()?;
        let ini = ini.to_str()?.as_bytes();
        let started_with_ours = cmdline.windows(ini.len()).any(|w| w == ini);
        let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        (started_with_ours && listening).then(|| Self {
            port,
            dir: dir.into(),
        })
    }

    /// The runtime role's URL to `database` through this PgBouncer, as a service behind one
    /// connects: `statement-cache-capacity=0` is the one setting that takes.
    pub fn runtime_url(&self, info: &ClusterInfo, database: &str) -> String {
        format!(
            "postgres://{RUNTIME_ROLE}:{}@127.0.0.1:{}/{database}?statement-cache-capacity=0",
            info.runtime_password, self.port
        )
    }

    /// Stops it (a signal to the process its pid file names); nothing when none runs.
    pub fn stop(&self) {
        if let Ok(pid) = fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            let _ = fs::remove_file(self.dir.join("pgbouncer.pid"));
        }
    }
}

/// `pgbouncer.ini` for `info`'s cluster: transaction mode, SCRAM, loopback only.
fn config(info: &ClusterInfo, dir: &Path, port: u16, pool_size: u32) -> String {
    let d = dir.display();
    format!(
        "[databases]\n* = host=127.0.0.1 port={}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
         listen_port = {port}\nunix_socket_dir =\nauth_type = scram-sha-256\n\
         auth_file = {d}/userlist.txt\npool_mode = transaction\nmax_client_conn = 2000\n\
         default_pool_size = {pool_size}\nserver_round_robin = 1\n\
         ignore_startup_parameters = extra_float_digits\n\
         logfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n",
        info.port
    )
}
