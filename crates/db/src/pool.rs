//! Pools for the two database roles. The runtime pool hands out nothing but tenant transactions.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::DbError;

/// Where the service connects: the runtime role for requests, the owner role for migrations.
#[derive(Clone, Debug)]
pub struct ConnectionUrls {
    pub runtime: String,
    pub owner: String,
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

/// Pool of the runtime role. Its connections are reachable only through
/// [`crate::TenantTx::begin`], which sets the request's identity first.
#[derive(Clone, Debug)]
pub struct RuntimePool {
    pub(crate) pool: PgPool,
}

impl RuntimePool {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbError> {
        // Server-side limits, so work abandoned by a cancelled request cannot run or hold locks forever.
        let options = url.parse::<PgConnectOptions>()?.options([
            ("statement_timeout", "30s"),
            ("idle_in_transaction_session_timeout", "60s"),
        ]);
        let pool = pool_options(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// True when the database answers (for readiness probes). Touches no table.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
