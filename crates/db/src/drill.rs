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
//! A vacuum yields only to a lock that waits, so after 20 s the tries wait (a second at most,
//! giving way at once in a deadlock).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::Rng;
use sqlx::{Connection, Executor, PgConnection};

use crate::backup::RestoreTarget;
use crate::cluster::{ClusterError, ClusterInfo, ManagedCluster, Role};

/// How long the drill tries to find every table free of writes at once.
const LOCKING_FOR: Duration = Duration::from_secs(60);
/// After this, its tries wait for locks (briefly), so a vacuum gives way.
const WAIT_AFTER: Duration = Duration::from_secs(20);

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

/// The file that marks a directory as a drill's scratch (and is locked while the drill runs):
/// only a directory holding it is ever removed, and never while another drill holds it.
const MARKER: &str = ".tenantry-drill";

/// Runs the drill on every database of the running `cluster`, restoring into `scratch` (absent
/// or empty; made a drill's scratch, removed afterwards whatever happened).
pub async fn verify(cluster: &ManagedCluster, scratch: &Path) -> Result<DrillReport, ClusterError> {
    let _held = claim_scratch(scratch)?;
    // What a drill killed midway left.
    let copy_dir = scratch.join("copy");
    remove_copy(&copy_dir).await?;
    let info = cluster.info()?;
    let restore_point = format!("verify-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"));
    let marked = async {
        let (source, segment) = checksums_at_a_new_point(&info, &restore_point).await?;
        wait_until_archived(&info.url(Role::Superuser, "postgres"), &segment).await?;
        Ok::<_, ClusterError>(source)
    }
    .await;
    let source = match marked {
        Ok(source) => source,
        Err(e) => {
            remove_scratch(scratch).await?;
            return Err(e);
        }
    };

    let started = Instant::now();
    let copied = cluster
        .restore_copy(&RestoreTarget::Point(restore_point.clone()), &copy_dir)
        .await;
    let restored_in = started.elapsed();
    let compared = match &copied {
        Ok(copy) => match copy.info() {
            Ok(copy_info) => read_checksums_alone(&copy_info).await,
            Err(e) => Err(e),
        },
        Err(_) => Ok(Checksums::new()),
    };
    // The scratch copy goes, whatever happened.
    let removed = remove_scratch(scratch).await;
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
    /// Its tables as of the try that took the locks.
    tables: Vec<(String, bool)>,
}

/// Marks a restore point and reads every database's checksums as of it; returns them with the
/// WAL segment that holds the point (archived once complete).
async fn checksums_at_a_new_point(
    info: &ClusterInfo,
    restore_point: &str,
) -> Result<(Checksums, String), ClusterError> {
    let mut lockers = Vec::new();
    for (database, url) in databases(info).await? {
        let conn = PgConnection::connect(&url).await?;
        lockers.push(Locker {
            database,
            url,
            conn,
            tables: Vec::new(),
        });
    }
    // Every table of every database at once, or none. First without waiting (`NOWAIT`): a table
    // a write holds fails the try at once, so no lock is waited for while others are held (no
    // deadlock with a request, no request held behind a long write), and it is tried again a
    // moment later. A vacuum holds its table for long and gives way only to a lock that waits:
    // after `WAIT_AFTER` the tries wait up to a second per table, giving way at once in a
    // deadlock. The tables are listed again at each try (one made or dropped meanwhile counts).
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut last_error = String::new();
    'locking: loop {
        attempts += 1;
        if started.elapsed() > LOCKING_FOR {
            return Err(ClusterError::Backup(format!(
                "no moment without writes to some table came in {} s ({attempts} tries; the last: {last_error}); \
                 run the drill at a quieter time",
                LOCKING_FOR.as_secs()
            )));
        }
        let waiting = started.elapsed() > WAIT_AFTER;
        for i in 0..lockers.len() {
            let locker = &mut lockers[i];
            locker.tables = tables(&mut locker.conn).await?;
            let settings = if waiting {
                "SET lock_timeout = '1s'; SET deadlock_timeout = '100ms'"
            } else {
                "SET lock_timeout = 0; SET deadlock_timeout = '1s'"
            };
            locker.conn.execute(settings).await?;
            // LOCK takes no snapshot: the transaction's is the next statement's, every lock held.
            locker
                .conn
                .execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                .await?;
            if locker.tables.is_empty() {
                continue;
            }
            let names: Vec<&str> = locker
                .tables
                .iter()
                .map(|(name, _)| name.as_str())
                .collect();
            let lock = format!(
                "LOCK TABLE {} IN SHARE MODE{}",
                names.join(", "),
                if waiting { "" } else { " NOWAIT" }
            );
            match locker.conn.execute(lock.as_str()).await {
                Ok(_) => {}
                // Held by another (55P03), given way in a deadlock (40P01), or a table dropped
                // since it was listed (42P01): everything back, and again.
                Err(sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("55P03" | "40P01" | "42P01")) =>
                {
                    last_error = e.to_string();
                    for begun in &mut lockers[..=i] {
                        begun.conn.execute("ROLLBACK").await?;
                    }
                    let pause = rand::thread_rng().gen_range(10..60);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    continue 'locking;
                }
                Err(e) => return Err(e.into()),
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

/// Makes `scratch` (absent, empty, or a killed drill's) a drill's scratch and holds its marker's
/// lock. Another drill running there, or a directory that holds anything else, is refused:
/// nothing of it is touched.
fn claim_scratch(scratch: &Path) -> Result<std::fs::File, ClusterError> {
    let io = crate::cluster::io_err;
    let marker = scratch.join(MARKER);
    let occupied = std::fs::read_dir(scratch).is_ok_and(|mut entries| entries.next().is_some());
    if occupied && !marker.exists() {
        return Err(ClusterError::Backup(format!(
            "{} is not empty and not a drill's scratch: give an empty or absent directory",
            scratch.display()
        )));
    }
    std::fs::create_dir_all(scratch).map_err(io(scratch))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&marker)
        .map_err(io(&marker))?;
    if file.try_lock().is_err() {
        return Err(ClusterError::Backup(format!(
            "another drill is running in {}",
            scratch.display()
        )));
    }
    Ok(file)
}

/// Stops the copy in `copy_dir` (if it runs) and removes it.
async fn remove_copy(copy_dir: &Path) -> Result<(), ClusterError> {
    if !copy_dir.exists() {
        return Ok(());
    }
    let copy = ManagedCluster::new(copy_dir);
    if copy.data_major().is_some() {
        copy.stop().await?;
    }
    std::fs::remove_dir_all(copy_dir).map_err(crate::cluster::io_err(copy_dir))
}

/// Removes the drill's copy and its scratch directory.
async fn remove_scratch(scratch: &Path) -> Result<(), ClusterError> {
    remove_copy(&scratch.join("copy")).await?;
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
