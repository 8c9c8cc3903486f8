//! Test support: one private managed cluster per test run, shared by every test process (nextest
//! runs each test in its own process), and one database per test cloned from a migrated template.
//! Tests reach tenant data through [`TestDb::runtime`], the same role the service uses.

use std::path::PathBuf;

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::cluster::{ClusterInfo, ManagedCluster, Role};
use crate::pgbouncer::PgBouncer;
use crate::{leakproof, migrate, OwnerPool, RuntimePool, ServiceKey, OWNER_ROLE};

/// The test cluster's data directory: under the system temp dir (the `postgres` OS user must be
/// able to enter it when tests run as root), one per checkout.
pub fn test_cluster_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TENANTRY_TEST_DATA_DIR") {
        return dir.into();
    }
    let checkout = env!("CARGO_MANIFEST_DIR");
    let mut hash: u32 = 2166136261;
    for b in checkout.bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(16777619);
    }
    std::env::temp_dir().join(format!("tenantry-test-{hash:08x}"))
}

/// The shared test cluster, started on first use. Durability is traded for speed here only.
pub fn test_cluster() -> ManagedCluster {
    ManagedCluster::new(test_cluster_dir()).with_settings(&[
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
        ("max_connections", "300"),
    ])
}

/// A fresh database holding every migration, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub info: ClusterInfo,
    pub runtime: RuntimePool,
}

impl TestDb {
    pub async fn new() -> Self {
        let cluster = test_cluster();
        let running = cluster
            .ensure_running()
            .await
            .expect("start the test cluster");
        let info = running.info;
        let template = ensure_template(&cluster, &info).await;
        let name = format!("test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&info.url(Role::Superuser, "postgres"))
            .await
            .expect("connect as superuser");
        sqlx::raw_sql(&format!(
            r"CREATE DATABASE {name} TEMPLATE {template} OWNER {OWNER_ROLE}"
        ))
        .execute(&mut admin)
        .await
        .expect("clone the template");
        admin.close().await.ok();
        // Database-level grants are not copied from a template: apply them as the service would.
        let owner = OwnerPool::connect(&info.url(Role::Owner, &name))
            .await
            .expect("connect as owner");
        sqlx::query(r"CALL app.secure_database()")
            .execute(&owner.0)
            .await
            .expect("secure the database");
        let service_key = ServiceKey::load(&owner)
            .await
            .expect("read the service key");
        owner.0.close().await;
        let runtime = RuntimePool::connect(&runtime_url(&info, &name), 8, service_key)
            .await
            .expect("connect as runtime role");
        Self {
            name,
            info,
            runtime,
        }
    }

    /// URL of this database for `role`.
    pub fn url(&self, role: Role) -> String {
        self.info.url(role, &self.name)
    }

    /// Another runtime pool of this database, with `max_connections` (and the service key).
    pub async fn runtime_pool(&self, max_connections: u32) -> RuntimePool {
        let owner = self.owner().await;
        let service_key = ServiceKey::load(&owner)
            .await
            .expect("read the service key");
        owner.0.close().await;
        RuntimePool::connect(
            &runtime_url(&self.info, &self.name),
            max_connections,
            service_key,
        )
        .await
        .expect("connect as runtime role")
    }

    /// An owner connection: for schema work in tests (never to read or write tenant data).
    pub async fn owner(&self) -> OwnerPool {
        OwnerPool::connect(&self.url(Role::Owner))
            .await
            .expect("connect as owner")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let url = self.info.url(Role::Superuser, "postgres");
        let name = self.name.clone();
        // Drop runs outside any runtime we can block on: use a short-lived one on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&url).await.ok()?;
                sqlx::raw_sql(&format!(r"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Where a test's runtime pool connects. With `TENANTRY_TEST_PGBOUNCER` set, through PgBouncer in
/// transaction mode (one per test cluster, started on first use; `.ci/run` stops it), with few
/// server connections handed round robin, so transactions of different clients share them.
fn runtime_url(info: &ClusterInfo, database: &str) -> String {
    if std::env::var_os("TENANTRY_TEST_PGBOUNCER").is_none() {
        return info.url(Role::Runtime, database);
    }
    PgBouncer::ensure(info, &test_cluster().root().join("pgbouncer"), 4)
        .expect("start PgBouncer")
        .runtime_url(info, database)
}

/// Creates `tmpl_<fingerprint>` once per migration set (under the cluster's lock file, so
/// concurrent test processes build it once) and returns its name.
async fn ensure_template(cluster: &ManagedCluster, info: &ClusterInfo) -> String {
    let template = format!("tmpl_{}", migrate::fingerprint());
    let lock_path = cluster.root().join("template.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .expect("open template lock");
    lock.lock().expect("lock template");
    let mut admin = PgConnection::connect(&info.url(Role::Superuser, "postgres"))
        .await
        .expect("connect as superuser");
    let exists: bool =
        sqlx::query_scalar(r"SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await
            .expect("look up template");
    if !exists {
        let building = format!("{template}_building");
        // One statement each: DROP/CREATE DATABASE refuse to run in a (implicit) transaction.
        for sql in [
            format!(r"DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
            format!(r"CREATE DATABASE {building} OWNER {OWNER_ROLE}"),
        ] {
            sqlx::raw_sql(&sql)
                .execute(&mut admin)
                .await
                .expect("create template database");
        }
        let owner = OwnerPool::connect(&info.url(Role::Owner, &building))
            .await
            .expect("connect to template as owner");
        migrate::up(&owner, None).await.expect("migrate template");
        owner.0.close().await;
        leakproof::mark(&info.url(Role::Superuser, &building))
            .await
            .expect("declare the search operators leakproof");
        sqlx::raw_sql(&format!(r"ALTER DATABASE {building} RENAME TO {template}"))
            .execute(&mut admin)
            .await
            .expect("publish template");
    }
    admin.close().await.ok();
    template
}
