//! Numbered plain-SQL migrations (`migrations/NNNN_name.up.sql` + `.down.sql`), embedded in the
//! binary and recorded in `_sqlx_migrations`. Each runs in its own transaction under an advisory
//! lock, so two processes never migrate at once.

use std::borrow::Cow;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::migrate::{Migrate, MigrateError, Migration, Migrator};
use sqlx::PgConnection;

use crate::{DbError, OwnerPool};

/// The migration files as written.
static FILES: Migrator = sqlx::migrate!("../../migrations");

include!(concat!(env!("OUT_DIR"), "/tool_manifests.rs"));

/// Where a tool migration takes its manifest (tools/NAME.json, NAME as in NNNN_NAME.up.sql).
const MANIFEST_PLACEHOLDER: &str = "{{tool_manifest}}";

/// Every migration, with each tool migration's manifest filled in (so a changed manifest reads
/// as a changed migration).
static MIGRATIONS: LazyLock<Vec<Migration>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|m| {
            let name = m.description.replace(' ', "_");
            match TOOL_MANIFESTS.iter().find(|(tool, _)| *tool == name) {
                Some((_, manifest)) if m.sql.contains(MANIFEST_PLACEHOLDER) => Migration::new(
                    m.version,
                    m.description.clone(),
                    m.migration_type,
                    Cow::Owned(m.sql.replace(
                        MANIFEST_PLACEHOLDER,
                        &format!("$manifest${manifest}$manifest$::jsonb"),
                    )),
                    m.no_tx,
                ),
                _ => m.clone(),
            }
        })
        .collect()
});

/// A tool's manifest as shipped (tools/NAME.json), by NAME (`sprint_00_woop`).
pub fn tool_manifests() -> &'static [(&'static str, &'static str)] {
    TOOL_MANIFESTS
}

/// One migration and whether it is applied.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationState {
    pub version: i64,
    pub description: String,
    pub applied_at: Option<DateTime<Utc>>,
}

fn ups() -> impl DoubleEndedIterator<Item = &'static Migration> {
    MIGRATIONS
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
}

fn downs() -> impl DoubleEndedIterator<Item = &'static Migration> {
    MIGRATIONS
        .iter()
        .filter(|m| m.migration_type.is_down_migration())
}

/// The highest version shipped in this binary.
pub fn latest_version() -> i64 {
    ups().map(|m| m.version).max().unwrap_or(0)
}

/// A fingerprint of every embedded migration and of the superuser's steps after them (used to
/// name test templates).
pub fn fingerprint() -> String {
    let mut acc: u64 = 0xcbf29ce484222325;
    let after = crate::leakproof::mark_sql();
    for b in MIGRATIONS
        .iter()
        .flat_map(|m| m.checksum.iter())
        .chain(after.as_bytes())
    {
        acc = (acc ^ u64::from(*b)).wrapping_mul(0x100000001b3);
    }
    format!("{acc:016x}")
}

/// Runs `work` on one owner connection holding the migration lock.
async fn locked<T>(
    pool: &OwnerPool,
    work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, MigrateError>,
) -> Result<T, DbError> {
    let mut conn = pool.0.acquire().await?;
    conn.lock().await?;
    let result = async {
        conn.ensure_migrations_table().await?;
        if let Some(version) = conn.dirty_version().await? {
            return Err(MigrateError::Dirty(version));
        }
        work(&mut conn).await
    }
    .await;
    conn.unlock().await?;
    Ok(result?)
}

/// Applies pending migrations up to `to` (all when `None`); returns the versions applied.
pub async fn up(pool: &OwnerPool, to: Option<i64>) -> Result<Vec<i64>, DbError> {
    locked(pool, async |conn| {
        let applied = conn.list_applied_migrations().await?;
        let mut done = Vec::new();
        for migration in ups().filter(|m| to.is_none_or(|to| m.version <= to)) {
            match applied.iter().find(|a| a.version == migration.version) {
                Some(a) if a.checksum != migration.checksum => {
                    return Err(MigrateError::VersionMismatch(migration.version))
                }
                Some(_) => {}
                None => {
                    conn.apply(migration).await?;
                    done.push(migration.version);
                }
            }
        }
        if !done.is_empty() {
            // Zones an upgraded tz database added become valid (migration 0049's table).
            sqlx::query(
                r"DO $$ BEGIN
                    IF to_regprocedure('app.refresh_time_zones()') IS NOT NULL THEN
                        PERFORM app.refresh_time_zones();
                    END IF;
                  END $$",
            )
            .execute(&mut *conn)
            .await
            .map_err(MigrateError::Execute)?;
        }
        Ok(done)
    })
    .await
}

/// Reverts applied migrations one by one, newest first: down to `to` (exclusive), or only the
/// newest one when `to` is `None`. Returns the versions reverted.
pub async fn down(pool: &OwnerPool, to: Option<i64>) -> Result<Vec<i64>, DbError> {
    locked(pool, async |conn| {
        let applied = conn.list_applied_migrations().await?;
        let newest = applied.iter().map(|a| a.version).max();
        let target = match (to, newest) {
            (Some(to), _) => to,
            (None, Some(newest)) => newest - 1,
            (None, None) => return Ok(Vec::new()),
        };
        let mut done = Vec::new();
        for migration in downs().rev().filter(|m| m.version > target) {
            if applied.iter().any(|a| a.version == migration.version) {
                conn.revert(migration).await?;
                done.push(migration.version);
            }
        }
        Ok(done)
    })
    .await
}

/// Every embedded migration with the time it was applied, if it was.
pub async fn status(pool: &OwnerPool) -> Result<Vec<MigrationState>, DbError> {
    let applied: Vec<(i64, DateTime<Utc>)> = locked(pool, async |conn| {
        sqlx::query_as(r"SELECT version, installed_on FROM _sqlx_migrations WHERE success")
            .fetch_all(conn)
            .await
            .map_err(MigrateError::from)
    })
    .await?;
    Ok(ups()
        .map(|m| MigrationState {
            version: m.version,
            description: m.description.to_string(),
            applied_at: applied
                .iter()
                .find(|(v, _)| *v == m.version)
                .map(|(_, at)| *at),
        })
        .collect())
}
