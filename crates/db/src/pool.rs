//! Pools for the two database roles. The runtime pool hands out nothing but tenant transactions.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{Connection, PgPool};

use crate::DbError;

/// Where the service connects: the runtime role for requests, the owner role for migrations.
#[derive(Clone, Debug)]
pub struct ConnectionUrls {
    pub runtime: String,
    pub owner: String,
}

impl ConnectionUrls {
    /// What is wrong with how the URLs reach a server on another machine: anything short of
    /// `sslmode=verify-full` (or `verify-ca`) there lets someone on the path read every query
    /// or pose as the server. A socket or loopback address is fine as it is.
    pub fn tls_problems(&self) -> Vec<String> {
        [("DATABASE_URL", &self.runtime), ("DATABASE_OWNER_URL", &self.owner)]
            .into_iter()
            .filter_map(|(name, url)| {
                let options = url.parse::<PgConnectOptions>().ok()?;
                let host = options.get_host();
                let local = options.get_socket().is_some()
                    || host.starts_with('/')
                    || matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]");
                let verified = matches!(
                    options.get_ssl_mode(),
                    PgSslMode::VerifyFull | PgSslMode::VerifyCa
                );
                (!local && !verified).then(|| {
                    format!(
                        "{name} reaches {host} without a verified TLS connection: add \
                         sslmode=verify-full&sslrootcert=/path/to/ca.pem to it (docs/OPERATIONS.md, TLS)"
                    )
                })
            })
            .collect()
    }
}

/// A connection idle for longer than this is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Pool settings of every pool (benchmarks use them too, so comparisons stay fair). sqlx pings a
/// connection when it comes back to the pool; pinging it again before each use (its default)
/// would add a round trip to every request. Only a connection that has sat idle, which the
/// server or the network may have dropped meanwhile, is pinged; a dead one is replaced.
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Pool of the owner role: migrations, maintenance and benchmarks. Never used to serve requests.
#[derive(Clone, Debug)]
pub struct OwnerPool(pub PgPool);

impl OwnerPool {
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let pool = pool_options(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(url.parse::<PgConnectOptions>()?)
            .await?;
        Ok(Self(pool))
    }
}

/// The server's proof to the database that the server itself is asking (`app.secrets`, readable
/// by the owner role only): it may then name the acting user — after verifying a password, an
/// OpenID Connect sign-in or an external JWT — and run the steps before sign-in. SQL run as the
/// runtime role cannot learn it: it is sent only as a bind parameter, never in a query's text.
#[derive(Clone)]
pub struct ServiceKey(pub(crate) Vec<u8>);

impl ServiceKey {
    /// Reads the key through the owner role (the service holds the owner's URL for migrations).
    pub async fn load(owner: &OwnerPool) -> Result<Self, DbError> {
        let key: Vec<u8> = sqlx::query_scalar(r"SELECT service_key FROM app.secrets")
            .fetch_one(&owner.0)
            .await?;
        Ok(Self(key))
    }
}

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceKey(redacted)")
    }
}

/// Pool of the runtime role. Its connections are reachable only through
/// [`crate::TenantTx::begin`], which sets the request's identity first.
#[derive(Clone, Debug)]
pub struct RuntimePool {
    pub(crate) pool: PgPool,
    pub(crate) service_key: ServiceKey,
    /// The URL turns sqlx's statement cache off (`statement-cache-capacity=0`): the service is
    /// behind a pooler in transaction mode (PgBouncer), so each transaction starts by dropping
    /// the statements the server connection holds from whoever used it before.
    pub(crate) behind_pooler: bool,
}

impl RuntimePool {
    pub async fn connect(
        url: &str,
        max_connections: u32,
        service_key: ServiceKey,
    ) -> Result<Self, DbError> {
        // No startup options: a pooler in transaction mode refuses them, and the request's
        // settings come with each transaction's binding (`tenant::REQUEST_SETTINGS`).
        let options = url.parse::<PgConnectOptions>()?;
        // The one option a pooled deployment sets (sqlx reads it too; it offers no getter).
        let behind_pooler = url.split_once('?').is_some_and(|(_, query)| {
            query.split('&').any(|p| {
                p.split_once('=').is_some_and(|(key, value)| {
                    key == "statement-cache-capacity" && value.parse() == Ok(0_usize)
                })
            })
        });
        let pool = pool_options(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            service_key,
            behind_pooler,
        })
    }

    /// A pool on `urls.runtime` holding the service key, read through `urls.owner`.
    pub async fn open(urls: &ConnectionUrls, max_connections: u32) -> Result<Self, DbError> {
        let owner = OwnerPool::connect(&urls.owner).await?;
        let service_key = ServiceKey::load(&owner).await;
        owner.0.close().await;
        Self::connect(&urls.runtime, max_connections, service_key?).await
    }

    /// Whether the server's WAL archiving keeps up (an error: the database does not answer).
    /// For readiness probes; reads no tenant table.
    pub async fn archive_health(&self) -> Result<crate::backup::ArchiveHealth, sqlx::Error> {
        crate::backup::archive_health(&self.pool).await
    }

    /// Connections open, and of them idle; the most the pool opens.
    pub fn usage(&self) -> (u32, usize, u32) {
        (
            self.pool.size(),
            self.pool.num_idle(),
            self.pool.options().get_max_connections(),
        )
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tls_tests {
    use super::ConnectionUrls;

    fn problems(url: &str) -> usize {
        ConnectionUrls {
            runtime: url.into(),
            owner: url.into(),
        }
        .tls_problems()
        .len()
    }

    #[test]
    fn a_remote_server_needs_verified_tls() {
        assert_eq!(problems("postgres://u:p@db.example.com/t"), 2);
        assert_eq!(
            problems("postgres://u:p@db.example.com/t?sslmode=require"),
            2
        );
        assert_eq!(
            problems("postgres://u:p@db.example.com/t?sslmode=verify-full&sslrootcert=/ca.pem"),
            0
        );
        assert_eq!(problems("postgres://u:p@127.0.0.1:5432/t"), 0);
        assert_eq!(
            problems("postgres://u:p@localhost/t?host=/run/postgresql"),
            0
        );
    }
}
