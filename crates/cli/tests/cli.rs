//! The `tenantry` binary end to end: the README's run command brings the API up on its own
//! managed PostgreSQL, a second instance shares the cluster, and SIGTERM shuts down cleanly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tenantry");

/// The API tests' SMTP server, for the operator's alerts.
#[allow(dead_code)]
#[path = "../../server/tests/api/smtp.rs"]
mod smtp;

fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tenantry-cli-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn tenantry(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run tenantry")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A `tenantry` process in the background. Dropped while it still runs (a test failed before
/// stopping it), it is stopped as an operator would, so its cluster stops too.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        // No panic here: this may run while a failed test unwinds.
        if matches!(self.0.try_wait(), Ok(None)) && stop_gently(&mut self.0).is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// SIGTERM, then up to a minute for the process to finish; None if it did not.
fn stop_gently(child: &mut Child) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// `tenantry ARGS` running in the background on `dir`, its output discarded.
fn spawn(dir: &Path, args: &[&str]) -> Background {
    Background(
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tenantry"),
    )
}

fn serve(dir: &Path, port: u16) -> Background {
    spawn(dir, &["--listen", &format!("127.0.0.1:{port}"), "serve"])
}

async fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the API on port {port} did not become ready");
}

fn terminate(process: &mut Background) -> std::process::ExitStatus {
    stop_gently(&mut process.0).unwrap_or_else(|| {
        let _ = process.0.kill();
        panic!("tenantry did not stop on SIGTERM")
    })
}

#[tokio::test]
async fn serve_brings_up_its_own_postgres_and_stops_it() {
    let dir = data_dir("serve");
    let (port, metrics_port) = (free_port(), free_port());
    let mut first = spawn(
        &dir,
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
            "serve",
        ],
    );
    wait_ready(port).await;
    assert!(stdout(&tenantry(&dir, &["db", "status"])).starts_with("running"));

    // Metrics on their own address: requests by route template (never an id), status and
    // time; the pool, the queue, the WAL archive and the last backup read at the scrape.
    let org = uuid::Uuid::new_v4();
    let api = |path: String| async move {
        reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .expect("request")
            .status()
            .as_u16()
    };
    assert_eq!(api(format!("/v1/orgs/{org}/kpis")).await, 401);
    // A request through a tenant transaction.
    sign_up(port, "metrics@example.com", "Metrics").await;
    assert_eq!(api("/nowhere".into()).await, 404);
    assert_eq!(
        api("/metrics".into()).await,
        404,
        "not on the API's address"
    );
    let scraped = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("scrape");
    assert!(scraped.status().is_success());
    let text = scraped.text().await.expect("text");
    for expected in [
        r#"tenantry_http_requests_total{method="GET",route="/v1/orgs/{org}/kpis",status="401"} 1"#,
        r#"tenantry_http_requests_total{method="GET",route="unmatched",status="404"} 2"#,
        r#"tenantry_http_request_duration_seconds_bucket{method="GET",route="/readyz",status="200",le="0.005"}"#,
        r#"tenantry_db_pool_connections{state="idle"}"#,
        "tenantry_db_begin_seconds_count",
        "tenantry_jobs_due 0",
        "tenantry_wal_archiving 1",
        "tenantry_wal_archive_failing 0",
        // No backup taken yet: as old as can be.
        "tenantry_backup_last_age_seconds inf",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
    assert!(!text.contains(&org.to_string()), "no id in a label");

    // The printed URL works with the runtime role, which is unprivileged.
    let url = stdout(&tenantry(&dir, &["db", "url", "--role", "runtime"]))
        .trim()
        .to_string();
    let pool = sqlx::PgPool::connect(&url)
        .await
        .expect("connect with printed URL");
    let (user, is_super): (String, bool) = sqlx::query_as(
        "SELECT current_user::text, rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&pool)
    .await
    .expect("query");
    assert_eq!((user.as_str(), is_super), ("tenantry_runtime", false));
    pool.close().await;
    let status = stdout(&tenantry(&dir, &["migrate", "status"]));
    assert!(
        status.contains("0001") && status.contains("applied") && !status.contains("pending"),
        "{status}"
    );
    let check = tenantry(&dir, &["db", "check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // A second instance on the same data directory reuses the running cluster ...
    let port2 = free_port();
    let mut second = serve(&dir, port2);
    wait_ready(port2).await;
    assert!(terminate(&mut second).success());
    // ... and, not having started it, leaves it running for the first.
    let r = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .expect("first still serves");
    assert!(r.status().is_success());

    assert!(terminate(&mut first).success());
    assert!(stdout(&tenantry(&dir, &["db", "status"])).starts_with("stopped"));

    // Seeding starts the cluster on demand, prints a working token, and stops it again.
    let seeded = tenantry(&dir, &["seed"]);
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    assert!(stdout(&seeded).contains("tnt_"));
    assert!(
        stdout(&seeded).contains("24 CRM customers")
            && stdout(&seeded).contains("30 appointments in the coming week")
            && stdout(&seeded).contains("a site of 6 published pages"),
        "{}",
        stdout(&seeded)
    );
    // The seeded site is public: its home page renders, the draft is not served.
    let said = stdout(&seeded);
    let site = said
        .split("(public at ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the site's address")
        .to_string();
    let port3 = free_port();
    let mut server = serve(&dir, port3);
    wait_ready(port3).await;
    let home: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port3}{site}/home"))
        .await
        .expect("home")
        .json()
        .await
        .expect("json");
    assert!(
        home["html"]
            .as_str()
            .is_some_and(|h| h.contains("<h1>Welcome</h1>")),
        "{home}"
    );
    let draft = reqwest::get(format!(
        "http://127.0.0.1:{port3}{site}/next-quarter-s-plans"
    ))
    .await
    .expect("draft");
    assert_eq!(draft.status(), reqwest::StatusCode::NOT_FOUND);
    assert!(terminate(&mut server).success());
    // Fast Track upkeep runs against the seeded data and is idempotent.
    for (args, said) in [
        (&["tools", "refresh-reports"][..], "reports refreshed"),
        (&["tools", "archive"][..], "archived 0 entries"),
        (&["tools", "purge-audit"][..], "purged 0 audit rows"),
    ] {
        let out = tenantry(&dir, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout(&out).contains(said), "{args:?}: {}", stdout(&out));
    }
    // Serving made the vault's key file, readable by its owner only; rotation to a new key
    // given on the command line re-seals what there is (nothing yet) and reports it.
    let key_file = dir.join("vault.keys");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file)
            .expect("vault.keys")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let status = stdout(&tenantry(&dir, &["vault", "status"]));
    assert!(status.contains("no sealed secrets"), "{status}");
    let new_key = stdout(&tenantry(&dir, &["vault", "new-key", "k2"]))
        .trim()
        .to_string();
    assert!(new_key.starts_with("k2:"), "{new_key}");
    let old_keys: Vec<String> = std::fs::read_to_string(&key_file)
        .expect("keys")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let both = format!("{new_key},{}", old_keys.join(","));
    let rotated = tenantry(&dir, &["--vault-keys", &both, "vault", "rotate"]);
    assert!(
        stdout(&rotated).contains("rotation done: 0 secrets re-sealed under k2"),
        "{}",
        stdout(&rotated)
    );

    // The operator names the first platform admin; a wrong email or role is refused.
    let named = tenantry(&dir, &["users", "set-role", "Demo@tenantry.local", "admin"]);
    assert!(
        named.status.success(),
        "{}",
        String::from_utf8_lossy(&named.stderr)
    );
    assert!(!tenantry(
        &dir,
        &["users", "set-role", "nobody@tenantry.local", "admin"]
    )
    .status
    .success());
    let wrong = tenantry(&dir, &["users", "set-role", "demo@tenantry.local", "root"]);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not a platform role"));

    // The plan catalog goes out as JSON and comes back changed; a bad file changes nothing.
    let exported = stdout(&tenantry(&dir, &["plans", "export"]));
    let mut plans: Vec<serde_json::Value> = serde_json::from_str(&exported).expect("plans");
    assert_eq!(plans.len(), 4, "{exported}");
    plans[1]["limits"]["seats"] = 20.into();
    plans[0]["is_default"] = false.into();
    plans.push(
        serde_json::json!({"code": "team", "name": "Team", "tier": "pro",
        "limits": {"seats": 100}, "is_default": true}),
    );
    let file = dir.join("plans.json");
    std::fs::write(&file, serde_json::to_string(&plans).expect("json")).expect("write");
    let imported = tenantry(&dir, &["plans", "import", file.to_str().expect("path")]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let listed = stdout(&tenantry(&dir, &["plans", "list"]));
    assert!(
        listed.contains("team") && listed.contains("\"seats\":20"),
        "{listed}"
    );
    assert!(
        listed.lines().filter(|l| l.contains("default")).count() == 1
            && listed
                .lines()
                .any(|l| l.starts_with("team") && l.contains("default")),
        "{listed}"
    );
    std::fs::write(
        &file,
        r#"[{"code": "basic", "name": "Basic", "tier": "basic", "limits": {"seats": 1}},
            {"code": "bad", "name": "Bad", "tier": "gold"}]"#,
    )
    .expect("write");
    assert!(
        !tenantry(&dir, &["plans", "import", file.to_str().expect("path")])
            .status
            .success()
    );
    std::fs::write(
        &file,
        r#"[{"code": "x", "name": "X", "tier": "pro", "limit": {}}]"#,
    )
    .expect("write");
    let typo = tenantry(&dir, &["plans", "import", file.to_str().expect("path")]);
    assert!(String::from_utf8_lossy(&typo.stderr).contains("unknown field"));
    assert_eq!(
        stdout(&tenantry(&dir, &["plans", "list"])),
        listed,
        "nothing changed"
    );
    assert!(stdout(&tenantry(&dir, &["db", "status"])).starts_with("stopped"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls the job's state and attempt until they are `wanted` (None: the job is gone, as a job
/// that succeeded is), at most 60 s.
async fn wait_for_job(owner: &sqlx::PgPool, id: uuid::Uuid, wanted: Option<(&str, i32)>) {
    let reached = poll_until(60, || async {
        let seen: Option<(String, i32)> =
            sqlx::query_as("SELECT state, attempts FROM queue.jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(owner)
                .await
                .expect("job");
        (seen.as_ref().map(|(s, a)| (s.as_str(), *a)) == wanted).then_some(())
    })
    .await;
    assert!(reached.is_some(), "job {id} never became {wanted:?}");
}

#[tokio::test]
async fn a_job_whose_worker_is_killed_runs_again_and_completes() {
    let dir = data_dir("worker");
    let started = tenantry(&dir, &["db", "start"]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let enqueued = tenantry(
        &dir,
        &[
            "jobs",
            "enqueue",
            "system.sleep",
            "--payload",
            r#"{"seconds": 3}"#,
        ],
    );
    assert!(
        enqueued.status.success(),
        "{}",
        String::from_utf8_lossy(&enqueued.stderr)
    );
    let id: uuid::Uuid = stdout(&enqueued).trim().parse().expect("the job's id");
    let url = stdout(&tenantry(&dir, &["db", "url", "--role", "owner"]))
        .trim()
        .to_string();
    let owner = sqlx::PgPool::connect(&url).await.expect("connect as owner");

    // A worker takes the job and is killed mid-job: no chance to say anything.
    let mut doomed = spawn(
        &dir,
        &[
            "worker",
            "--job-lease-seconds",
            "2",
            "--job-poll-seconds",
            "1",
        ],
    );
    wait_for_job(&owner, id, Some(("running", 1))).await;
    doomed.0.kill().expect("SIGKILL");
    doomed.0.wait().expect("reaped");

    // `serve` runs a worker too: once the dead worker's lease runs out, the job runs again.
    let port = free_port();
    let mut server = spawn(
        &dir,
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "serve",
            "--job-lease-seconds",
            "2",
        ],
    );
    wait_for_job(&owner, id, Some(("running", 2))).await;
    let listed = stdout(&tenantry(&dir, &["jobs", "list", "--state", "running"]));
    assert!(
        listed.contains(&id.to_string()) && listed.contains("system.sleep"),
        "{listed}"
    );
    // The second attempt succeeds: the job is deleted.
    wait_for_job(&owner, id, None).await;
    // Schedules: listed, changed by operators, wrong ones refused before they are stored.
    let saved = tenantry(
        &dir,
        &[
            "jobs",
            "schedule",
            "nightly-reports",
            "--cron",
            "0 2 * * *",
            "--kind",
            "upkeep.refresh_reports",
            "--time-zone",
            "Europe/Berlin",
        ],
    );
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    for wrong in [
        [
            "--cron",
            "0 25 * * *",
            "--kind",
            "upkeep.refresh_reports",
            "--time-zone",
            "UTC",
        ],
        [
            "--cron",
            "0 2 * * *",
            "--kind",
            "no.such_kind",
            "--time-zone",
            "UTC",
        ],
        [
            "--cron",
            "0 2 * * *",
            "--kind",
            "upkeep.refresh_reports",
            "--time-zone",
            "Mars/Base",
        ],
    ] {
        let refused = tenantry(
            &dir,
            &[&["jobs", "schedule", "wrong"][..], &wrong[..]].concat(),
        );
        assert!(!refused.status.success(), "{wrong:?} was accepted");
    }
    let listed = stdout(&tenantry(&dir, &["jobs", "schedules"]));
    assert!(
        listed.contains("purge-expired")
            && listed.contains("nightly-reports")
            && !listed.contains("wrong"),
        "{listed}"
    );
    owner.close().await;
    assert!(terminate(&mut server).success());
    let stopped = tenantry(&dir, &["db", "stop"]);
    assert!(stopped.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The managed cluster's superuser, for what only it may do (switching WAL files at once).
async fn superuser(dir: &Path) -> sqlx::PgPool {
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cluster.json")).expect("cluster.json"))
            .expect("json");
    let url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/tenantry",
        info["superuser_password"].as_str().expect("password"),
        info["port"]
    );
    sqlx::PgPool::connect(&url)
        .await
        .expect("connect as superuser")
}

#[tokio::test]
async fn a_restore_brings_back_the_moment_before_a_delete() {
    let dir = data_dir("backup");
    let started = tenantry(&dir, &["db", "start"]);
    assert!(
        stdout(&started).starts_with("started"),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let taken = tenantry(&dir, &["backup", "take"]);
    assert!(
        taken.status.success(),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    assert!(stdout(&taken).contains("(full)"), "{}", stdout(&taken));
    let key = std::fs::read_to_string(dir.join("backup.key")).expect("a key was made");
    let config = std::fs::read_to_string(dir.join("pgbackrest.conf")).expect("config");
    assert!(
        config.contains("repo1-cipher-type=aes-256-cbc")
            && config.contains(key.lines().last().expect("key")),
        "backups are encrypted with the key"
    );

    // Rows written after the backup; the moment noted; then most of them deleted.
    let db = superuser(&dir).await;
    sqlx::raw_sql(
        "CREATE TABLE restore_probe (n int PRIMARY KEY); INSERT INTO restore_probe SELECT generate_series(1, 1000)",
    )
    .execute(&db)
    .await
    .expect("rows");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before_delete: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&db)
        .await
        .expect("now");
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::raw_sql("DELETE FROM restore_probe WHERE n > 10")
        .execute(&db)
        .await
        .expect("delete");
    // A copy is made while the cluster runs: from what is archived by then, so wait for it.
    let (segment,): (String,) = sqlx::query_as("SELECT pg_walfile_name(pg_switch_wal())")
        .fetch_one(&db)
        .await
        .expect("switch");
    let archived = poll_until(60, || async {
        let done: bool = sqlx::query_scalar(
            "SELECT coalesce(last_archived_wal >= $1, false) FROM pg_stat_archiver",
        )
        .bind(&segment)
        .fetch_one(&db)
        .await
        .expect("archiver");
        done.then_some(())
    })
    .await;
    assert!(archived.is_some(), "{segment} archived");
    db.close().await;

    // A copy at that moment, in a new directory, while the cluster runs.
    let to = before_delete.to_rfc3339();
    let copy_dir = data_dir("backup-copy");
    let copied = tenantry(
        &dir,
        &[
            "restore",
            "--to",
            &to,
            "--into",
            &copy_dir.to_string_lossy(),
        ],
    );
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let started = tenantry(&copy_dir, &["db", "start"]);
    assert!(
        stdout(&started).starts_with("started"),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let copy = superuser(&copy_dir).await;
    let (rows, sum): (i64, i64) = sqlx::query_as("SELECT count(*), sum(n) FROM restore_probe")
        .fetch_one(&copy)
        .await
        .expect("count in the copy");
    assert_eq!((rows, sum), (1000, 500_500), "the copy holds the moment");
    copy.close().await;
    assert!(stdout(&tenantry(&copy_dir, &["db", "stop"])).starts_with("stopped"));
    let _ = std::fs::remove_dir_all(&copy_dir);
    // A moment the archive does not reach: refused saying so, and nothing half-made stays.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let too_late = tenantry(
        &dir,
        &[
            "restore",
            "--to",
            &later,
            "--into",
            &copy_dir.to_string_lossy(),
        ],
    );
    let said = String::from_utf8_lossy(&too_late.stderr);
    assert!(
        !too_late.status.success() && said.contains("does not reach"),
        "{said}"
    );
    assert!(!copy_dir.exists(), "the failed copy is removed");

    // Not in place while it runs; not without a target.

    let refused = tenantry(&dir, &["restore", "--to", &to]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("the cluster is running"),
        "{said}"
    );
    let stopped = tenantry(&dir, &["db", "stop"]);
    assert!(
        stdout(&stopped).starts_with("stopped"),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(!tenantry(&dir, &["restore"]).status.success());

    let restored = tenantry(&dir, &["restore", "--to", &to]);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let started = tenantry(&dir, &["db", "start"]);
    assert!(
        stdout(&started).starts_with("started"),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let db = superuser(&dir).await;
    let (rows, sum): (i64, i64) = sqlx::query_as("SELECT count(*), sum(n) FROM restore_probe")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!((rows, sum), (1000, 500_500), "every row back, exactly");
    // The restored cluster takes writes (it left recovery) and keeps archiving.
    sqlx::query("INSERT INTO restore_probe VALUES (1001)")
        .execute(&db)
        .await
        .expect("writable");
    db.close().await;
    let listed = stdout(&tenantry(&dir, &["backup", "list"]));
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(stdout(&tenantry(&dir, &["db", "stop"])).starts_with("stopped"));
    let _ = std::fs::remove_dir_all(&dir);
}

// Two threads: the writer runs while this one waits for `tenantry backup verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_drill_passes_under_writes_and_fails_on_a_corrupted_backup() {
    let dir = data_dir("drill");
    let seeded = tenantry(&dir, &["seed"]);
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let taken = tenantry(&dir, &["backup", "take"]);
    assert!(
        taken.status.success(),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    assert!(stdout(&tenantry(&dir, &["db", "start"])).starts_with("started"));

    // Writes go on all through the drill, into a table of their own and an organization's.
    let db = superuser(&dir).await;
    sqlx::raw_sql(
        "CREATE TABLE drill_probe (n bigserial PRIMARY KEY, at timestamptz DEFAULT now())",
    )
    .execute(&db)
    .await
    .expect("probe table");
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = tokio::spawn({
        let (db, writing) = (db.clone(), writing.clone());
        async move {
            let mut written = 0u64;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                sqlx::raw_sql(
                    "INSERT INTO drill_probe DEFAULT VALUES;
                     UPDATE organizations SET name = CASE WHEN name LIKE '%.' THEN rtrim(name, '.') ELSE name || '.' END
                      WHERE id = (SELECT id FROM organizations ORDER BY id LIMIT 1)",
                )
                .execute(&db)
                .await
                .expect("a write during the drill");
                written += 1;
            }
            written
        }
    });
    // A scratch directory that holds anything else is refused, and left as it was.
    let occupied = data_dir("drill-occupied");
    std::fs::create_dir_all(&occupied).expect("dir");
    std::fs::write(occupied.join("keep.txt"), "mine").expect("file");
    let refused = tenantry(
        &dir,
        &["backup", "verify", "--scratch", &occupied.to_string_lossy()],
    );
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("not a drill's scratch"),
        "{said}"
    );
    assert!(occupied.join("keep.txt").exists());
    let _ = std::fs::remove_dir_all(&occupied);

    let verified = tenantry(&dir, &["backup", "verify"]);
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.expect("writer");
    let said = stdout(&verified);
    assert!(
        verified.status.success() && said.starts_with("verified"),
        "{said}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(written > 10, "the writes went on ({written})");
    assert!(
        said.contains("organizations") && said.contains("RTO"),
        "{said}"
    );
    let organizations: usize = said
        .split(" organizations")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the organizations compared");
    assert!(organizations >= 1, "{said}");
    assert!(!dir.join("verify").exists(), "the scratch copy is removed");

    // A bit flipped in the backup's largest file of the cluster's (not a manifest, which
    // pgBackRest keeps twice): the drill fails, and says where.
    let backup_dir = dir.join("backups").join("backup").join("tenantry");
    let label = stdout(&tenantry(&dir, &["backup", "list"]))
        .split('\t')
        .next()
        .expect("a backup")
        .to_string();
    let largest = largest_file(&backup_dir.join(label).join("pg_data")).expect("a backed-up file");
    let mut bytes = std::fs::read(&largest).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&largest, bytes).expect("corrupt");
    let failed = tenantry(&dir, &["backup", "verify"]);
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "{said}");
    assert!(
        said.contains("pgbackrest restore") && said.contains("checksum"),
        "{said}"
    );
    assert!(!dir.join("verify").exists(), "the scratch copy is removed");
    // The cluster itself is untouched.
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM drill_probe")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(rows as u64, written);
    db.close().await;
    assert!(stdout(&tenantry(&dir, &["db", "stop"])).starts_with("stopped"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The largest file under `dir`, at any depth.
fn largest_file(dir: &Path) -> Option<PathBuf> {
    let mut largest: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let candidate = if path.is_dir() {
            largest_file(&path).and_then(|p| Some((std::fs::metadata(&p).ok()?.len(), p)))
        } else {
            Some((entry.metadata().ok()?.len(), path))
        };
        if let Some((len, path)) = candidate {
            if largest.as_ref().is_none_or(|(max, _)| len > *max) {
                largest = Some((len, path));
            }
        }
    }
    largest.map(|(_, path)| path)
}

#[tokio::test]
async fn a_failing_wal_archive_makes_the_service_say_degraded_and_the_operator_hears_once() {
    use std::os::unix::fs::PermissionsExt;
    let smtp = smtp::SmtpServer::start(0).await;
    let dir = data_dir("archive");
    let port = free_port();
    let mut server = spawn(
        &dir,
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "serve",
            "--smtp-url",
            &smtp.url(),
            "--operator-email",
            "ops@example.com",
            // The archive checked every second, so one episode is seen many times.
            "--worker-report-seconds",
            "1",
        ],
    );
    wait_ready(port).await;
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let status = || async {
        let health = reqwest::get(&readyz)
            .await
            .expect("readyz")
            .json::<serde_json::Value>()
            .await
            .expect("json");
        (health["status"].as_str().unwrap_or("?").to_string(), health)
    };
    assert_eq!(status().await.0, "ready");
    let db = superuser(&dir).await;
    let archive = dir.join("backups").join("archive");
    let alerts = || {
        smtp.messages()
            .into_iter()
            .filter(|m| m.data.contains("WAL archiving is failing"))
            .inspect(|m| assert_eq!(m.to, ["ops@example.com"]))
            .count()
    };
    let fail_then_recover = |episode: usize| {
        let (db, archive) = (&db, &archive);
        async move {
            // The repository's archive can no longer be written, and a segment is due.
            std::fs::set_permissions(archive, std::fs::Permissions::from_mode(0o000))
                .expect("chmod");
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS wal_probe (n int);
                 INSERT INTO wal_probe SELECT generate_series(1, 1000); SELECT pg_switch_wal()",
            )
            .execute(db)
            .await
            .expect("a segment to archive");
            let (state, health) = poll_until(60, || async {
                let now = status().await;
                (now.0 == "degraded").then_some(now)
            })
            .await
            .unwrap_or(status().await);
            assert_eq!(state, "degraded", "{health}");
            assert!(
                health["problems"][0]
                    .as_str()
                    .is_some_and(|p| p.contains("WAL archiving is failing")),
                "{health}"
            );
            // The operator hears of it, and of this episode once, however often it is seen.
            let heard = poll_until(60, || async { (alerts() == episode).then_some(()) }).await;
            assert!(heard.is_some(), "{} alert(s), {episode} expected", alerts());
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert_eq!(alerts(), episode, "one alert per episode");
            // Writable again: the next segment takes the waiting ones with it.
            std::fs::set_permissions(archive, std::fs::Permissions::from_mode(0o750))
                .expect("chmod");
            sqlx::raw_sql("INSERT INTO wal_probe VALUES (1); SELECT pg_switch_wal()")
                .execute(db)
                .await
                .expect("a segment to archive");
            let ready =
                poll_until(90, || async { (status().await.0 == "ready").then_some(()) }).await;
            assert!(ready.is_some(), "{}", status().await.1);
        }
    };
    fail_then_recover(1).await;
    // The same problem again after a recovery is a new episode.
    fail_then_recover(2).await;
    db.close().await;
    assert!(terminate(&mut server).success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls `probe` until it gives a value, for at most `seconds`.
async fn poll_until<T, F, Fut>(seconds: u64, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn backups_are_scheduled_and_the_worker_takes_them() {
    let dir = data_dir("backup-job");
    let port = free_port();
    let mut server = serve(&dir, port);
    wait_ready(port).await;
    // The worker adds them as it starts, beside the API.
    let scheduled = |schedules: &str| {
        [
            ("backup-full", "0 2 * * *", "backup.take"),
            ("backup-incr", "30 * * * *", "backup.take"),
            ("backup-verify", "0 4 1 * *", "backup.verify"),
        ]
        .iter()
        .all(|(name, cron, kind)| {
            schedules
                .lines()
                .any(|l| l.contains(name) && l.contains(cron) && l.contains(kind))
        })
    };
    let listing = || stdout(&tenantry(&dir, &["jobs", "schedules"]));
    let schedules = poll_until(30, || async {
        let schedules = listing();
        scheduled(&schedules).then_some(schedules)
    })
    .await;
    assert!(schedules.is_some(), "{}", listing());
    // A schedule's slot comes as a job like this one; the service's worker runs it.
    let queued = tenantry(
        &dir,
        &[
            "jobs",
            "enqueue",
            "backup.take",
            "--payload",
            r#"{"kind": "full"}"#,
        ],
    );
    assert!(
        queued.status.success(),
        "{}",
        String::from_utf8_lossy(&queued.stderr)
    );
    let listing = || stdout(&tenantry(&dir, &["backup", "list"]));
    let listed = poll_until(120, || async {
        let listed = listing();
        (listed.lines().count() == 1).then_some(listed)
    })
    .await
    .unwrap_or_else(listing);
    assert!(listed.contains("\tfull\t"), "{listed}");
    let bad = tenantry(
        &dir,
        &["jobs", "enqueue", "backup.nothing", "--payload", "{}"],
    );
    assert!(!bad.status.success());
    assert!(terminate(&mut server).success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Signs up through the API: the account, its organization and a session.
async fn sign_up(port: u16, email: &str, organization: &str) -> serde_json::Value {
    let signed_up = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/auth/signup"))
        .json(&serde_json::json!({
            "email": email,
            "password": "a long passphrase",
            "organization_name": organization
        }))
        .send()
        .await
        .expect("sign up");
    assert_eq!(signed_up.status(), 201);
    signed_up.json().await.expect("json")
}

/// Runs `tenantry` and insists it succeeded; its standard output.
fn succeed(dir: &Path, args: &[&str]) -> String {
    let out = tenantry(dir, args);
    assert!(
        out.status.success(),
        "tenantry {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// Runs `tenantry` and insists it failed; its standard error.
fn refuse(dir: &Path, args: &[&str]) -> String {
    let out = tenantry(dir, args);
    assert!(
        !out.status.success(),
        "tenantry {args:?} should have failed: {}",
        stdout(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `tenantry org export ORG --out OUT`, insisting it succeeded.
fn export(dir: &Path, org: &str, out: &Path) -> String {
    succeed(
        dir,
        &["org", "export", org, "--out", out.to_str().expect("path")],
    )
}

/// A copy of bundle `from` in `to` with `file` changed by `edit` and every checksum recomputed
/// as an export computes them (`crates/db/src/bundle.rs`): a forgery that only the import's own
/// checks can catch.
fn copy_bundle(from: &Path, to: &Path, file: &str, edit: impl Fn(&str) -> String) {
    use sha2::{Digest, Sha256};
    std::fs::create_dir_all(to).expect("dir");
    let mut manifest = manifest(from);
    for (name, bytes) in bundle_files(from) {
        let bytes = if name == file {
            edit(&String::from_utf8(bytes).expect("utf8")).into_bytes()
        } else {
            bytes
        };
        for table in manifest["tables"].as_array_mut().expect("tables") {
            if table["file"] == name.as_str() {
                table["sha256"] = format!("{:x}", Sha256::digest(&bytes)).into();
                table["rows"] = bytes.iter().filter(|b| **b == b'\n').count().into();
            }
        }
        std::fs::write(to.join(name), bytes).expect("write");
    }
    let mut hash = Sha256::new();
    let head = serde_json::json!([
        manifest["format"],
        manifest["format_version"],
        manifest["schema_version"],
        manifest["complete"],
        manifest["organization"]
    ]);
    hash.update(format!("{head}\n"));
    for t in manifest["tables"].as_array().expect("tables") {
        hash.update(format!(
            "{} {} {}\n",
            t["file"].as_str().expect("file"),
            t["rows"],
            t["sha256"].as_str().expect("sha")
        ));
    }
    manifest["checksum"] = format!("{:x}", hash.finalize()).into();
    std::fs::write(
        to.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest).expect("json"),
    )
    .expect("manifest");
}

/// Every file of a bundle, by name, with its bytes.
fn bundle_files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("bundle")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .filter(|(name, _)| name.ends_with(".ndjson"))
        .collect()
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
        .expect("json")
}

/// Relations (tables and reports, from the catalog) holding the text `needle` in any row, with
/// how many rows.
async fn relations_holding(db: &sqlx::PgPool, needle: &str) -> Vec<(String, i64)> {
    let relations: Vec<String> = sqlx::query_scalar(
        r"SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
             AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
           ORDER BY 1",
    )
    .fetch_all(db)
    .await
    .expect("catalog");
    let mut holding = Vec::new();
    for relation in relations {
        let rows: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {relation} t WHERE strpos(to_jsonb(t)::text, $1) > 0"
        ))
        .bind(needle)
        .fetch_one(db)
        .await
        .expect("count");
        if rows > 0 {
            holding.push((relation, rows));
        }
    }
    holding
}

#[tokio::test]
async fn an_organization_moves_to_a_fresh_instance_unchanged_and_erasure_leaves_nothing_of_it() {
    let (here, there) = (data_dir("org-here"), data_dir("org-there"));
    let work = data_dir("org-bundles");
    std::fs::create_dir_all(&work).expect("bundles");
    succeed(&here, &["db", "start"]);
    succeed(&here, &["seed"]);
    // A second organization, made through the API, that nothing below may touch.
    let port = free_port();
    let mut api = serve(&here, port);
    wait_ready(port).await;
    let signed_up = sign_up(port, "other@example.com", "Other Company").await;
    let other = signed_up["organization"]["id"]
        .as_str()
        .expect("org")
        .to_owned();
    let token = signed_up["session"]["token"].as_str().expect("token");
    let created = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/orgs/{other}/customers"))
        .bearer_auth(token)
        .json(&serde_json::json!({"name": "Kept Customer"}))
        .send()
        .await
        .expect("customer");
    assert_eq!(created.status(), 201);
    assert!(terminate(&mut api).success());

    let demo_bundle = work.join("demo");
    let said = export(&here, "demo-company", &demo_bundle);
    assert!(said.starts_with("exported demo-company"), "{said}");
    let demo = manifest(&demo_bundle);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&demo_bundle), 0o700, "the bundle is its owner's alone");
        assert_eq!(mode(&demo_bundle.join("public.users.ndjson")), 0o600);
    }
    let demo_id = demo["organization"]["id"].as_str().expect("id").to_owned();
    let count = |table: &str| {
        demo["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["table"] == table)
            .map(|t| t["rows"].as_u64().expect("rows"))
    };
    // Every domain the demo fills is in the bundle, the accounts of its four members included.
    for (table, at_least) in [
        ("public.organizations", 1),
        ("public.users", 4),
        ("public.profiles", 4),
        ("public.organization_members", 4),
        ("public.kpi_data_points", 1000),
        ("public.customers", 10),
        ("public.tasks", 10),
        ("public.appointments", 1),
        ("public.content", 1),
        ("sprint_00_woop.tool_data", 1),
        ("tool_access.permissions", 1),
        ("audit.events", 10),
    ] {
        assert!(count(table).expect(table) >= at_least, "{table}");
    }
    let other_before = work.join("other-before");
    export(&here, &other, &other_before);
    assert_eq!(
        manifest(&other_before)["tables"].as_array().map(Vec::len),
        demo["tables"].as_array().map(Vec::len)
    );
    assert!(
        !bundle_files(&other_before)["public.users.ndjson"].is_empty()
            && !String::from_utf8_lossy(&bundle_files(&other_before)["public.users.ndjson"])
                .contains("tenantry.local"),
        "another organization's bundle holds its own account only"
    );

    // Into a fresh instance: refused whole while an account there has a member's address.
    succeed(&there, &["db", "start"]);
    let there_db = superuser(&there).await;
    sqlx::query("INSERT INTO users (email, name) VALUES ('ada@tenantry.local', 'Someone else')")
        .execute(&there_db)
        .await
        .expect("an account with the same address");
    let refused = refuse(
        &there,
        &["org", "import", demo_bundle.to_str().expect("path")],
    );
    assert!(
        refused.contains("collides") && refused.contains("ada@tenantry.local"),
        "{refused}"
    );
    let organizations: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(&there_db)
        .await
        .expect("count");
    assert_eq!(organizations, 0, "a refused import writes nothing");
    sqlx::query("DELETE FROM users WHERE email = 'ada@tenantry.local'")
        .execute(&there_db)
        .await
        .expect("gone");

    // A changed byte anywhere refuses the bundle before anything is written.
    let tampered = work.join("tampered");
    std::fs::create_dir_all(&tampered).expect("dir");
    for (name, bytes) in bundle_files(&demo_bundle) {
        let bytes = if name == "public.customers.ndjson" {
            String::from_utf8(bytes)
                .expect("utf8")
                .replacen("\"status\":\"lead\"", "\"status\":\"won\" ", 1)
                .into_bytes()
        } else {
            bytes
        };
        std::fs::write(tampered.join(name), bytes).expect("write");
    }
    std::fs::copy(
        demo_bundle.join("manifest.json"),
        tampered.join("manifest.json"),
    )
    .expect("manifest");
    let refused = refuse(&there, &["org", "import", tampered.to_str().expect("path")]);
    assert!(
        refused.contains("public.customers.ndjson: damaged"),
        "{refused}"
    );

    // A bundle edited by someone who recomputes every checksum: a row moved into another
    // organization, or an account no row names (a platform admin, say), refuses it whole.
    let forged = work.join("forged");
    copy_bundle(&demo_bundle, &forged, "public.customers.ndjson", |text| {
        text.replacen(&demo_id, &uuid::Uuid::new_v4().to_string(), 1)
    });
    let refused = refuse(&there, &["org", "import", forged.to_str().expect("path")]);
    assert!(
        refused.contains("public.customers: 1 of its") && refused.contains("another organization"),
        "{refused}"
    );
    let stray = work.join("stray");
    copy_bundle(&demo_bundle, &stray, "public.users.ndjson", |text| {
        let mut line: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("a user")).expect("json");
        line["id"] = uuid::Uuid::new_v4().to_string().into();
        line["email"] = "intruder@example.com".into();
        line["role"] = "admin".into();
        format!("{text}{line}\n")
    });
    let refused = refuse(&there, &["org", "import", stray.to_str().expect("path")]);
    assert!(
        refused.contains("accounts that no row of the organization names"),
        "{refused}"
    );
    // The manifest's own fields are checked too.
    let renamed = work.join("renamed");
    copy_bundle(&demo_bundle, &renamed, "", |text| text.to_owned());
    let manifest_path = renamed.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).expect("manifest");
    std::fs::write(
        &manifest_path,
        text.replacen("Demo Company", "Other Name", 1),
    )
    .expect("write");
    let refused = refuse(&there, &["org", "import", renamed.to_str().expect("path")]);
    assert!(refused.contains("the manifest was changed"), "{refused}");
    let organizations: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(&there_db)
        .await
        .expect("count");
    assert_eq!(organizations, 0, "nothing of a refused import stays");

    // Imported, then exported again: the same bundle, byte for byte.
    let said = succeed(
        &there,
        &["org", "import", demo_bundle.to_str().expect("path")],
    );
    assert!(said.starts_with("imported demo-company"), "{said}");
    let again = work.join("again");
    export(&there, &demo_id, &again);
    assert_eq!(manifest(&again)["checksum"], demo["checksum"]);
    assert_eq!(manifest(&again)["tables"], demo["tables"]);
    assert!(
        bundle_files(&again) == bundle_files(&demo_bundle),
        "identical files"
    );
    let refused = refuse(
        &there,
        &["org", "import", demo_bundle.to_str().expect("path")],
    );
    assert!(refused.contains("is here already"), "{refused}");
    // Its members' accounts came along.
    let members: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM organization_members m JOIN users u ON u.id = m.user_id WHERE m.organization_id = $1::uuid",
    )
    .bind(&demo_id)
    .fetch_one(&there_db)
    .await
    .expect("members");
    assert_eq!(members, 4);
    there_db.close().await;
    succeed(&there, &["db", "stop"]);

    // Erasure: the slug must be repeated; then no row of the organization is left anywhere but
    // its audit events, which keep nothing of who or what.
    let refused = refuse(&here, &["org", "erase", &demo_id, "--confirm", "demo"]);
    assert!(
        refused.contains("repeat the organization's slug"),
        "{refused}"
    );
    // Nor while Stripe still bills it.
    let db = superuser(&here).await;
    let billed = |status: &'static str| {
        sqlx::query(
            "UPDATE subscriptions SET stripe_subscription_id = 'sub_erase', status = $2 WHERE organization_id = $1::uuid",
        )
        .bind(demo_id.clone())
        .bind(status)
    };
    billed("past_due").execute(&db).await.expect("billed");
    let refused = refuse(
        &here,
        &["org", "erase", &demo_id, "--confirm", "demo-company"],
    );
    assert!(
        refused.contains("Stripe subscription is past_due"),
        "{refused}"
    );
    billed("canceled").execute(&db).await.expect("canceled");
    let said = succeed(
        &here,
        &["org", "erase", &demo_id, "--confirm", "demo-company"],
    );
    assert!(said.starts_with("erased demo-company"), "{said}");
    let holding = relations_holding(&db, &demo_id).await;
    assert_eq!(holding.len(), 1, "{holding:?}");
    assert_eq!(holding[0].0, "audit.events");
    let (kept, personal): (i64, i64) = sqlx::query_as(
        r"SELECT count(*), count(*) FILTER (WHERE user_id IS NOT NULL OR api_key_id IS NOT NULL
                 OR old_data IS NOT NULL OR ip_address IS NOT NULL OR user_agent IS NOT NULL
                 OR request_id IS NOT NULL OR (new_data IS NOT NULL AND NOT new_data ? 'erased'))
            FROM audit.events WHERE organization_id = $1::uuid",
    )
    .bind(&demo_id)
    .fetch_one(&db)
    .await
    .expect("trail");
    assert_eq!(kept, holding[0].1);
    assert_eq!(personal, 0, "the kept events hold no personal data");
    assert!(
        relations_holding(&db, "Ada Johnson").await.is_empty(),
        "a customer's name is nowhere"
    );
    db.close().await;
    // The other organization is as it was.
    let other_after = work.join("other-after");
    export(&here, &other, &other_after);
    assert_eq!(
        manifest(&other_after)["checksum"],
        manifest(&other_before)["checksum"]
    );
    succeed(&here, &["db", "stop"]);
    let _ = std::fs::remove_dir_all(&work);
}
