//! The restore drill (`tenantry backup verify`): proves the backups restore what the cluster
//! holds. It marks one point where the running cluster and its WAL archive agree exactly, reads
//! a checksum of every table of every database (per organization where a table has one) as of
//! that point, restores the latest backup into a scratch directory up to that point, reads the
//! same checksums there, and compares them.
//!
//! The same point, without stopping the service: one session per database takes `SHARE` locks
//! on every table (they hold writes back; reads go on), then each exports its snapshot and one
//! writes a restore point — with no write able to commit in between, the snapshots and the
//! restore point are the same state. A second session per database adopts its snapshot, and the
//! first ones commit: writes were held for the milliseconds that took. The locks
//! are taken all at once without waiting (`NOWAIT`): a table a write holds fails the try, which
//! gives back what it took and comes again moments later, so the drill never waits holding locks
//! (no deadlock with a request, no request held behind a long write) and only the drill waits.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::Rng;
use sqlx::{Connection, Executor, PgConnection};

use crate::backup::RestoreTarget;
use crate::cluster::{ClusterError, ClusterInfo, ManagedCluster, Role};

/// How long the drill tries to find every table free of writes at once.
const LOCKING_FOR: Duration = Duration::from_secs(60);

/// What a drill found.
#[derive(Clone, Debug)]
pub struct DrillReport {
    pub restore_point: String,
    /// Restoring the backup and replaying the WAL to the point, until the copy took
    /// connections: the recovery time this machine achieves for this database.
    pub restored_in: Duration,
    pub tables: usize,
    pub rows: i64,
    pub organizations: usize,
    /// Differences, each said in a line (empty: the copy is identical).
    pub differences: Vec<String>,
}

/// Rows and the sum of their hashes, per table and organization (`None`: a table without one).
type Checksums = BTreeMap<(String, Option<String>), (i64, String)>;

/// Runs the drill on every database of the running `cluster`, restoring into `scratch`
/// (absent or empty; removed afterwards, whatever happened).
pub async fn verify(cluster: &ManagedCluster, scratch: &Path) -> Result<DrillReport, ClusterError> {
    let info = cluster.info()?;
    let restore_point = format!("verify-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"));
    let (source, segment) = checksums_at_a_new_point(&info, &restore_point).await?;
    wait_until_archived(&info.url(Role::Superuser, "postgres"), &segment).await?;

    let started = Instant::now();
    let copied = cluster
        .restore_copy(&RestoreTarget::Point(restore_point.clone()), scratch)
        .await;
    let restored_in = started.elapsed();
    let compared = match &copied {
        Ok(copy) => read_checksums_alone(&copy.info()?).await,
        Err(_) => Ok(Checksums::new()),
    };
    // The scratch copy goes, whatever happened.
    let removed = remove_copy(scratch).await;
    let copy = compared?;
    copied?;
    removed?;

    let organizations: std::collections::BTreeSet<&String> =
        source.keys().filter_map(|(_, org)| org.as_ref()).collect();
    let tables: std::collections::BTreeSet<&String> = source.keys().map(|(t, _)| t).collect();
    Ok(DrillReport {
        restore_point,
        restored_in,
        tables: tables.len(),
        rows: source.values().map(|(rows, _)| rows).sum(),
        organizations: organizations.len(),
        differences: differences(&source, &copy),
    })
}

/// The cluster's databases (templates aside), each with its superuser URL.
async fn databases(info: &ClusterInfo) -> Result<Vec<(String, String)>, ClusterError> {
    let mut conn = PgConnection::connect(&info.url(Role::Superuser, "postgres")).await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await?;
    conn.close().await?;
    Ok(names
        .into_iter()
        .map(|name| {
            let url = info.url(Role::Superuser, &name);
            (name, url)
        })
        .collect())
}

/// One database's session that locks its tables and exports its snapshot.
struct Locker {
    database: String,
    url: String,
    conn: PgConnection,
    tables: Vec<(String, bool)>,
    lock: String,
}

/// Marks a restore point and reads every database's checksums as of it; returns them with the
/// WAL segment that holds the point (archived once complete).
async fn checksums_at_a_new_point(
    info: &ClusterInfo,
    restore_point: &str,
) -> Result<(Checksums, String), ClusterError> {
    let mut lockers = Vec::new();
    for (database, url) in databases(info).await? {
        let mut conn = PgConnection::connect(&url).await?;
        let tables = tables(&mut conn).await?;
        let names: Vec<&str> = tables.iter().map(|(name, _)| name.as_str()).collect();
        let lock = format!("LOCK TABLE {} IN SHARE MODE NOWAIT", names.join(", "));
        lockers.push(Locker {
            database,
            url,
            conn,
            lock: if tables.is_empty() {
                String::new()
            } else {
                lock
            },
            tables,
        });
    }
    // Every table of every database at once, or none: a table a write holds fails the try at
    // once (no lock is waited for while others are held, so no deadlock with a request), and it
    // is tried again a moment later, until one try finds every table between writes.
    let started = Instant::now();
    let mut attempts = 0u32;
    'locking: loop {
        attempts += 1;
        for (i, locker) in lockers.iter_mut().enumerate() {
            // LOCK takes no snapshot: the transaction's is the next statement's, every lock held.
            locker
                .conn
                .execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                .await?;
            if locker.lock.is_empty() {
                continue;
            }
            match locker.conn.execute(locker.lock.as_str()).await {
                Ok(_) => {}
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("55P03") && started.elapsed() < LOCKING_FOR =>
                {
                    for begun in &mut lockers[..=i] {
                        begun.conn.execute("ROLLBACK").await?;
                    }
                    let pause = rand::thread_rng().gen_range(10..60);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    continue 'locking;
                }
                Err(e) => {
                    return Err(ClusterError::Backup(format!(
                        "no moment without writes to some table came in {} s ({attempts} tries; the last: {e}); \
                         run the drill at a quieter time",
                        LOCKING_FOR.as_secs()
                    )))
                }
            }
        }
        break;
    }
    tracing::info!(attempts, "the drill's point is marked");
    let mut readers = Vec::new();
    for locker in &mut lockers {
        let (snapshot,): (String,) = sqlx::query_as("SELECT pg_export_snapshot()")
            .fetch_one(&mut locker.conn)
            .await?;
        let mut reader = PgConnection::connect(&locker.url).await?;
        let adopt = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
            snapshot.replace('\'', "''")
        );
        reader.execute(adopt.as_str()).await?;
        readers.push(reader);
    }
    // With every snapshot taken and every lock still held: the restore point is their state.
    let first = lockers
        .first_mut()
        .ok_or_else(|| ClusterError::Backup("the cluster has no database".into()))?;
    sqlx::query("SELECT pg_create_restore_point($1)")
        .bind(restore_point)
        .execute(&mut first.conn)
        .await?;
    for locker in &mut lockers {
        locker.conn.execute("COMMIT").await?;
    }
    // The segment holding the restore point is archived once complete: complete it now.
    let (segment,): (String,) = sqlx::query_as("SELECT pg_walfile_name(pg_switch_wal())")
        .fetch_one(&mut lockers[0].conn)
        .await?;
    let mut sums = Checksums::new();
    for (locker, mut reader) in lockers.into_iter().zip(readers) {
        locker.conn.close().await?;
        sums.extend(checksums(&mut reader, &locker.database, &locker.tables).await?);
        reader.execute("COMMIT").await?;
        reader.close().await?;
    }
    Ok((sums, segment))
}

/// The checksums of a cluster nothing else writes to (the restored copy).
async fn read_checksums_alone(info: &ClusterInfo) -> Result<Checksums, ClusterError> {
    let mut sums = Checksums::new();
    for (database, url) in databases(info).await? {
        let mut conn = PgConnection::connect(&url).await?;
        let tables = tables(&mut conn).await?;
        sums.extend(checksums(&mut conn, &database, &tables).await?);
        conn.close().await?;
    }
    Ok(sums)
}

/// Every table that holds rows of its own (partitions, not their parents; not unlogged or
/// temporary ones, which no backup keeps), quoted, and whether it has `organization_id`.
async fn tables(conn: &mut PgConnection) -> Result<Vec<(String, bool)>, ClusterError> {
    Ok(sqlx::query_as::<_, (String, bool)>(
        r"SELECT format('%I.%I', n.nspname, c.relname),
                 EXISTS (SELECT FROM pg_attribute a
                          WHERE a.attrelid = c.oid AND a.attname = 'organization_id' AND NOT a.attisdropped)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind = 'r' AND c.relpersistence = 'p'
             AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
             AND n.nspname NOT LIKE 'pg\_temp%' AND n.nspname NOT LIKE 'pg\_toast\_temp%'
           ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Rows and the sum of a 64-bit hash of each row's text, per table and organization: any
/// changed, missing or extra row changes the sum. The row's text depends on a few settings
/// (time zone, float digits), set the same on both sides.
async fn checksums(
    conn: &mut PgConnection,
    database: &str,
    tables: &[(String, bool)],
) -> Result<Checksums, ClusterError> {
    conn.execute(
        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';
         SET extra_float_digits = 3; SET bytea_output = 'hex'",
    )
    .await?;
    let mut sums = Checksums::new();
    for (table, per_org) in tables {
        let org = if *per_org {
            "organization_id::text"
        } else {
            "NULL::text"
        };
        let sql = format!(
            "SELECT {org}, count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)::text
               FROM ONLY {table} AS t GROUP BY 1"
        );
        let rows = sqlx::query_as::<_, (Option<String>, i64, String)>(&sql)
            .fetch_all(&mut *conn)
            .await?;
        let table = format!("{database}: {table}");
        // An empty table still counts, as a table.
        if rows.is_empty() {
            sums.insert((table.clone(), None), (0, "0".into()));
        }
        for (org, count, sum) in rows {
            sums.insert((table.clone(), org), (count, sum));
        }
    }
    Ok(sums)
}

/// Waits until `segment` (and so every one before it) is in the WAL archive.
async fn wait_until_archived(url: &str, segment: &str) -> Result<(), ClusterError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let archived: bool = sqlx::query_scalar(
            "SELECT coalesce(last_archived_wal >= $1, false) FROM pg_stat_archiver",
        )
        .bind(segment)
        .fetch_one(&pool)
        .await?;
        if archived {
            break;
        }
        if Instant::now() > deadline {
            let health = crate::backup::archive_health(&pool).await?;
            return Err(ClusterError::Backup(format!(
                "WAL segment {segment} was not archived within 5 minutes{}",
                health
                    .problem()
                    .map_or_else(String::new, |p| format!(": {p}"))
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pool.close().await;
    Ok(())
}

/// Stops the copy in `scratch` (if it runs) and removes the directory: also what a drill that
/// was killed midway left.
pub async fn remove_copy(scratch: &Path) -> Result<(), ClusterError> {
    if !scratch.exists() {
        return Ok(());
    }
    let copy = ManagedCluster::new(scratch);
    if copy.data_major().is_some() {
        copy.stop().await?;
    }
    std::fs::remove_dir_all(scratch).map_err(crate::cluster::io_err(scratch))
}

/// What differs between the source's checksums and the copy's, a line each.
fn differences(source: &Checksums, copy: &Checksums) -> Vec<String> {
    let name = |(table, org): &(String, Option<String>)| match org {
        Some(org) => format!("{table} (organization {org})"),
        None => table.clone(),
    };
    let mut found = Vec::new();
    for (key, (rows, sum)) in source {
        match copy.get(key) {
            None => found.push(format!("{}: {rows} rows, none in the copy", name(key))),
            Some((copy_rows, _)) if copy_rows != rows => found.push(format!(
                "{}: {rows} rows, {copy_rows} in the copy",
                name(key)
            )),
            Some((_, copy_sum)) if copy_sum != sum => found.push(format!(
                "{}: {rows} rows, the same number in the copy but not the same rows",
                name(key)
            )),
            Some(_) => {}
        }
    }
    for (key, (rows, _)) in copy {
        if !source.contains_key(key) {
            found.push(format!("{}: {rows} rows only in the copy", name(key)));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_difference_is_said() {
        let key = |t: &str, o: Option<&str>| (t.to_string(), o.map(str::to_string));
        let source: Checksums = [
            (key("public.a", Some("o1")), (3, "10".to_string())),
            (key("public.a", Some("o2")), (2, "20".to_string())),
            (key("public.b", None), (1, "5".to_string())),
            (key("public.c", None), (0, "0".to_string())),
        ]
        .into();
        assert!(differences(&source, &source).is_empty());
        let mut copy = source.clone();
        copy.insert(key("public.a", Some("o1")), (2, "7".into()));
        copy.insert(key("public.a", Some("o2")), (2, "21".into()));
        copy.remove(&key("public.b", None));
        copy.insert(key("public.d", None), (4, "1".into()));
        let found = differences(&source, &copy);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].contains("3 rows, 2 in the copy"), "{found:?}");
        assert!(found[1].contains("not the same rows"), "{found:?}");
        assert!(found[2].contains("none in the copy"), "{found:?}");
        assert!(found[3].contains("only in the copy"), "{found:?}");
    }
}
