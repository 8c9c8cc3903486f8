//! Which PostgreSQL a command uses: an external server named by `DATABASE_URL` (runtime role)
//! and `DATABASE_OWNER_URL` (owner role), or else the managed local cluster.

use tenantry_db::cluster::{ClusterInfo, ManagedCluster, Role};
use tenantry_db::{leakproof, migrate, ConnectionUrls, OwnerPool, RuntimePool, DATABASE_NAME};

use crate::AnyError;

pub struct Database {
    pub urls: ConnectionUrls,
    /// The managed cluster, its credentials, and whether this command started it (and so stops it).
    managed: Option<(ManagedCluster, ClusterInfo, bool)>,
}

impl Database {
    pub async fn open(cluster: &ManagedCluster) -> Result<Self, AnyError> {
        if let Ok(runtime) = std::env::var("DATABASE_URL") {
            let owner = std::env::var("DATABASE_OWNER_URL").map_err(|_| {
                "DATABASE_URL is set but DATABASE_OWNER_URL is not: the owner role's URL is needed to run migrations"
            })?;
            let urls = ConnectionUrls { runtime, owner };
            for problem in urls.tls_problems() {
                tracing::warn!("{problem}");
            }
            return Ok(Self {
                urls,
                managed: None,
            });
        }
        let running = cluster.ensure_running().await?;
        Ok(Self {
            urls: ConnectionUrls {
                runtime: running.info.url(Role::Runtime, DATABASE_NAME),
                owner: running.info.url(Role::Owner, DATABASE_NAME),
            },
            managed: Some((cluster.clone(), running.info, running.started_here)),
        })
    }

    /// The managed cluster, when this database is it (None with an external server).
    pub fn managed_cluster(&self) -> Option<&ManagedCluster> {
        self.managed.as_ref().map(|(cluster, _, _)| cluster)
    }

    pub async fn owner_pool(&self) -> Result<OwnerPool, AnyError> {
        Ok(OwnerPool::connect(&self.urls.owner).await?)
    }

    /// Applies pending migrations (all, or up to `to`), then the superuser's step after them: the
    /// managed cluster declares the search operators LEAKPROOF; with an external server, where
    /// the service has no superuser, the log says what its operator should run.
    pub async fn migrate(&self, owner: &OwnerPool, to: Option<i64>) -> Result<Vec<i64>, AnyError> {
        let applied = migrate::up(owner, to).await?;
        match &self.managed {
            Some((_, info, _)) => {
                leakproof::mark(&info.url(Role::Superuser, DATABASE_NAME)).await?
            }
            None => {
                let mut conn = owner.0.acquire().await?;
                let missing = leakproof::missing(&mut conn).await?;
                if !missing.is_empty() {
                    tracing::warn!(
                        ?missing,
                        "customer search and tag filters cannot use their index under row-level \
                         security until a superuser runs, in this database:\n{}",
                        leakproof::mark_sql()
                    );
                }
            }
        }
        Ok(applied)
    }

    /// A runtime pool of `max_connections`, holding the service key (read through the owner).
    pub async fn runtime_pool(&self, max_connections: u32) -> Result<RuntimePool, AnyError> {
        Ok(RuntimePool::open(&self.urls, max_connections).await?)
    }

    /// The managed cluster's credentials (None with an external server).
    #[cfg(feature = "bench")]
    pub fn managed_info(&self) -> Option<&ClusterInfo> {
        self.managed.as_ref().map(|(_, info, _)| info)
    }

    /// Stops the managed cluster if this command started it.
    pub async fn close(self) -> Result<(), AnyError> {
        if let Some((cluster, _, true)) = self.managed {
            cluster.stop().await?;
            tracing::info!("stopped the managed PostgreSQL cluster");
        }
        Ok(())
    }
}
