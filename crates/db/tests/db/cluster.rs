//! The managed cluster's life cycle, in a data directory of its own.

use tenantry_db::cluster::{ClusterStatus, ManagedCluster, Role};

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tenantry-cluster-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn can_query(url: &str) -> bool {
    use sqlx::Connection;
    match sqlx::PgConnection::connect(url).await {
        Ok(mut c) => sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&mut c)
            .await
            .is_ok(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn creates_reuses_recovers_and_stops() {
    let dir = scratch_dir("life");
    let cluster = ManagedCluster::new(&dir);
    assert_eq!(cluster.status(), ClusterStatus::NotInitialized);

    let first = cluster.ensure_running().await.expect("first start");
    assert!(first.started_here);
    let url = first.info.url(Role::Runtime, "tenantry");
    assert!(
        url.contains("?host=/"),
        "connects through the Unix-domain socket: {url}"
    );
    assert!(
        can_query(&url).await,
        "runtime role connects to the tenantry database"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("cluster.json"))
            .expect("meta")
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "credentials are private");

    // A second user of the same data directory reuses the running cluster.
    let second = cluster.ensure_running().await.expect("reuse");
    assert!(!second.started_here);
    assert_eq!(second.info.port, first.info.port);

    // A crash: the postmaster dies, leaving postmaster.pid naming a pid that is now another process.
    let ClusterStatus::Running { pid } = cluster.status() else {
        panic!("not running")
    };
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    for _ in 0..50 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let pidfile = dir.join("pgdata/postmaster.pid");
    let text = std::fs::read_to_string(&pidfile).expect("stale pid file remains");
    let forged = text.replacen(&pid.to_string(), &std::process::id().to_string(), 1);
    std::fs::write(&pidfile, forged).expect("forge pid");
    assert_eq!(cluster.status(), ClusterStatus::Stopped);

    let third = cluster.ensure_running().await.expect("recover after crash");
    assert!(third.started_here);
    assert!(can_query(&url).await, "data survives the crash");

    // A crash during a long statement, and a restart at once (as a supervisor does): the
    // orphaned backend keeps PostgreSQL's shared memory until its statement ends.
    let busy = {
        let url = url.clone();
        tokio::spawn(async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            let _ = sqlx::query("SELECT count(*) FROM generate_series(1, 20000000)")
                .execute(&mut conn)
                .await;
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let ClusterStatus::Running { pid } = cluster.status() else {
        panic!("not running")
    };
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    while std::path::Path::new(&format!("/proc/{pid}/stat"))
        .exists()
        .then(|| std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
        .is_some_and(|stat| !stat.contains(") Z "))
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let fourth = cluster
        .ensure_running()
        .await
        .expect("restart right after a crash mid-statement");
    assert!(fourth.started_here);
    assert!(can_query(&url).await, "serves again after the restart");
    let _ = busy.await;

    assert!(cluster.stop().await.expect("stop"));
    assert_eq!(cluster.status(), ClusterStatus::Stopped);
    assert!(!can_query(&url).await);
    assert!(!cluster.stop().await.expect("stop again is a no-op"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Makes, with the `openssl` command, a CA and a server certificate for `localhost` signed by
/// it, and a second CA that signed nothing of this server's; returns the directory.
fn certificates(dir: &std::path::Path) -> std::path::PathBuf {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).expect("tls dir");
    std::fs::write(tls.join("san.ext"), "subjectAltName=DNS:localhost\n").expect("ext");
    let openssl = |args: &str| {
        let out = std::process::Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(&tls)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for ca in ["ca", "other-ca"] {
        openssl(&format!(
            "req -x509 -days 2 -subj /CN=Tenantry-test-CA {ec} -keyout {ca}.key -out {ca}.crt"
        ));
    }
    openssl(&format!(
        "req -subj /CN=localhost {ec} -keyout server.key -out server.csr"
    ));
    openssl(
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
         -extfile san.ext -out server.crt",
    );
    // PostgreSQL reads its key only when the key is its own and private.
    let key = tls.join("server.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("id");
    if String::from_utf8_lossy(&root.stdout).trim() == "0" {
        let chowned = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&tls)
            .status()
            .expect("chown");
        assert!(chowned.success());
    }
    tls
}

#[tokio::test]
async fn tls_verify_full_reaches_the_right_server_and_refuses_a_wrong_certificate() {
    let dir = scratch_dir("tls");
    std::fs::create_dir_all(&dir).expect("dir");
    let tls = certificates(&dir);
    let quoted = |file: &str| format!("'{}'", tls.join(file).display());
    let cluster = ManagedCluster::new(&dir).with_settings(&[
        ("ssl", "on"),
        ("ssl_cert_file", &quoted("server.crt")),
        ("ssl_key_file", &quoted("server.key")),
    ]);
    let running = cluster.ensure_running().await.expect("start with TLS");
    let url = |host: &str, ca: &str| {
        format!(
            "postgres://{}:{}@{host}:{}/tenantry?sslmode=verify-full&sslrootcert={}",
            tenantry_db::OWNER_ROLE,
            running.info.owner_password,
            running.info.port,
            tls.join(ca).display()
        )
    };

    // The service's own pool, over TLS it verified.
    let owner = tenantry_db::OwnerPool::connect(&url("localhost", "ca.crt"))
        .await
        .expect("verify-full with the right CA and name");
    let (pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
        .fetch_one(&owner.0)
        .await
        .expect("pid");
    // Other sessions' state is the superuser's to read (it is hidden from the service's roles).
    let superuser = running.info.url(Role::Superuser, "postgres");
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&superuser)
        .await
        .expect("superuser");
    let encrypted: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = $1")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .expect("ssl state");
    assert!(encrypted, "the service's connection is encrypted");
    owner.0.close().await;

    // A certificate from a CA we do not trust, or for another name: refused before any query.
    let untrusted = tenantry_db::OwnerPool::connect(&url("localhost", "other-ca.crt")).await;
    let refusal = |result: Result<tenantry_db::OwnerPool, tenantry_db::DbError>| match result {
        Ok(_) => "connected".to_string(),
        Err(e) => e.to_string(),
    };
    let said = refusal(untrusted);
    assert!(
        said.contains("invalid peer certificate: BadSignature"),
        "a server whose CA is not ours (an impostor of the same name) is refused: {said}"
    );
    let said = refusal(tenantry_db::OwnerPool::connect(&url("127.0.0.1", "ca.crt")).await);
    assert!(
        said.contains("certificate not valid for name \"127.0.0.1\""),
        "a certificate for another name (localhost, not 127.0.0.1) is refused: {said}"
    );

    cluster.stop().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
