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
