//! One organization's data as a bundle, moved between Tenantry instances or erased for good.
//!
//! A bundle is a directory: one `SCHEMA.TABLE.ndjson` file per table (each line one row, a JSON
//! object of its columns: numbers, booleans and JSON as themselves, every other value as
//! PostgreSQL's text for it, times in UTC; in primary-key order) and `manifest.json` naming each
//! file with its row count and SHA-256, and a checksum over them all. Export reads one snapshot;
//! import loads a bundle in one transaction (ids kept, refused whole if anything collides or
//! refers to what the target lacks); erase removes every row of an organization in one
//! transaction and keeps its audit events with the personal data taken out.
//!
//! The rows are found through the catalog, so a table a later migration adds is covered without
//! a change here: every table with `organization_id`; `organizations` itself; tables without the
//! column that hang off a tenant table by a foreign key (an API key's usage); and the accounts
//! the rows name (users, their profiles and sign-in identities). Platform data (plans, the tool
//! and assistant catalogs, sessions, jobs' schedules) is not the organization's and stays.
//!
//! Import and erase write with `session_replication_role = replica`: triggers do not fire, so the
//! rows arrive exactly as they left (no audit events for the load itself, no counters counted
//! twice, no history rewritten) and erasure cascades by the catalog, not by foreign keys. What the
//! foreign keys would have checked, import checks itself before it commits.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

/// Runs statements without parameters, one by one (`sqlx::raw_sql`'s future is not `Send`
/// for a borrowed connection, which a request handler needs).
async fn run(conn: &mut PgConnection, statements: &[&str]) -> Result<(), sqlx::Error> {
    for statement in statements {
        sqlx::query(statement).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The tenants' table, as the catalog quotes it.
const ORGANIZATIONS: &str = "public.organizations";

/// What a bundle's manifest says it is.
pub const FORMAT: &str = "tenantry-organization-bundle";
/// Version 2 writes values as PostgreSQL's text (version 1: as `row_to_json` wrote them); both
/// load alike (`json_populate_record` reads either).
pub const FORMAT_VERSION: u32 = 2;
const MANIFEST: &str = "manifest.json";

/// COPY's CSV format with a quote and a delimiter no JSON text contains (JSON escapes every
/// control character): each line is one row's JSON exactly, nothing escaped or unescaped.
const LINES: &str = r"(FORMAT csv, DELIMITER E'\x02', QUOTE E'\x01')";

/// Account tables: the people an organization's rows name, keyed by this column.
const ACCOUNT_TABLES: &[(&str, &str)] = &[
    ("public.users", "id"),
    ("public.profiles", "user_id"),
    ("public.identities", "user_id"),
];

/// Tables of nothing but credentials sealed with the vault's keys: an operator's export carries
/// them (a moved organization keeps its connections), a download through the API does not.
const SEALED_TABLES: &[&str] = &["public.integration_secrets"];

/// The columns of an audit event that say who and what; erasure clears them and keeps when,
/// which action on which kind of record, and that record's id.
const PERSONAL_AUDIT_COLUMNS: &[&str] = &[
    "user_id",
    "api_key_id",
    "old_data",
    "new_data",
    "ip_address",
    "user_agent",
    "request_id",
];

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The request cannot be carried out as asked; nothing was written.
    #[error("{0}")]
    Refused(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// The last migration of the instance it came from: a bundle loads into the same version.
    pub schema_version: i64,
    /// Every row and column of the organization (an operator's export); false for a download
    /// through the API, which holds what its owner may read and cannot be imported.
    pub complete: bool,
    pub organization: Organization,
    pub exported_at: DateTime<Utc>,
    pub tables: Vec<TableEntry>,
    /// SHA-256 over the manifest's fields but `exported_at` (as the JSON array `[format,
    /// format_version, schema_version, complete, organization]` and a newline) and every table's
    /// `file rows sha256` line: equal data has an equal checksum whenever it was exported. It
    /// finds damage, not forgery: whoever can change a bundle can recompute it.
    pub checksum: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Organization {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableEntry {
    /// `schema.table`.
    pub table: String,
    pub file: String,
    pub rows: u64,
    pub sha256: String,
}

/// SHA-256 by ring (already linked for TLS): on a CPU without SHA instructions its assembly is
/// much faster than a portable implementation, and hashing was a third of an export's work.
struct Sha256(ring::digest::Context);

impl Sha256 {
    fn new() -> Self {
        Self(ring::digest::Context::new(&ring::digest::SHA256))
    }

    fn update(&mut self, data: impl AsRef<[u8]>) {
        self.0.update(data.as_ref());
    }

    fn hex(self) -> String {
        self.0
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn bundle_checksum(
    format_version: u32,
    schema_version: i64,
    complete: bool,
    organization: &Organization,
    tables: &[TableEntry],
) -> String {
    let mut hash = Sha256::new();
    let head = serde_json::json!([
        FORMAT,
        format_version,
        schema_version,
        complete,
        organization
    ]);
    hash.update(format!("{head}\n"));
    for t in tables {
        hash.update(format!("{} {} {}\n", t.file, t.rows, t.sha256));
    }
    hash.hex()
}

/// Which of a table's rows belong to the organization.
#[derive(Clone, Debug)]
enum Rows {
    /// `organizations`: the row itself.
    Organization,
    /// A table with `organization_id`.
    Tenant,
    /// A table without it, whose foreign key (`child column = parent column` pairs) points
    /// into a tenant table or `organizations`; the parent's rows of the organization are those
    /// whose `owner` column (`organization_id`, or `id` in `organizations`) names it.
    Dependent {
        parent: String,
        pairs: Vec<(String, String)>,
        owner: &'static str,
    },
    /// An account table, by the people the organization's rows name.
    Account { column: String },
}

/// A table holding rows of the organization.
#[derive(Clone, Debug)]
struct Source {
    /// `schema.table`, as the manifest and file names say it.
    name: String,
    /// The same, quoted for SQL.
    sql: String,
    /// Columns this role may read, quoted (all of them for the owner role).
    readable: Vec<String>,
    /// Each readable column's JSON key (`"name":`) and how its value is written.
    json_keys: Vec<Vec<u8>>,
    kinds: Vec<Kind>,
    /// Columns an INSERT sets (generated ones are computed), quoted.
    columns: Vec<String>,
    /// ORDER BY expressions of the key on alias `t` (text in byte order).
    sort: Vec<String>,
    rows: Rows,
}

impl Source {
    fn file(&self) -> String {
        format!("{}.ndjson", self.name)
    }

    /// A condition on alias `t`; `people` is a query of the account ids. Ids are inlined (COPY
    /// takes no parameters); they are UUIDs formatted by the uuid crate, so nothing else can
    /// reach the SQL.
    fn filter(&self, org: Uuid, people: &str) -> String {
        match &self.rows {
            Rows::Organization => format!("t.id = '{org}'"),
            Rows::Tenant => format!("t.organization_id = '{org}'"),
            Rows::Dependent {
                parent,
                pairs,
                owner,
            } => {
                let join: Vec<String> = pairs
                    .iter()
                    .map(|(child, parent)| format!("p.{parent} = t.{child}"))
                    .collect();
                format!(
                    "EXISTS (SELECT FROM {parent} p WHERE p.{owner} = '{org}' AND {})",
                    join.join(" AND ")
                )
            }
            Rows::Account { column } => format!("t.{column} IN ({people})"),
        }
    }

    /// The table's place in the export (`index`) and each row's readable columns as text, padded with NULLs to `width`
    /// columns (so that every table's rows fit one `UNION ALL`), in key order. Text, not
    /// `row_to_json`: building a record per row costs PostgreSQL 15 more than the values' own
    /// output; the JSON is written from the text (`json_line`).
    fn select(&self, index: usize, org: Uuid, people: &str, width: usize) -> String {
        let mut columns: Vec<String> = self
            .readable
            .iter()
            .map(|c| format!("t.{c}::text"))
            .collect();
        columns.resize(width, "NULL::text".into());
        format!(
            "(SELECT {index}, {} FROM {} t WHERE {} ORDER BY {})",
            columns.join(", "),
            self.sql,
            self.filter(org, people),
            self.sort.join(", ")
        )
    }
}

/// A query of the given account ids.
fn listed(ids: &[Uuid]) -> String {
    let list: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    format!("SELECT unnest('{{{}}}'::uuid[])", list.join(","))
}

/// A foreign key, as the catalog says it (on a partitioned table, the parent's only).
struct ForeignKey {
    /// `schema.table` of the referring table.
    child: String,
    name: String,
    /// The referenced table, quoted for SQL.
    parent: String,
    /// Referring and referenced columns, quoted, in pairs.
    pairs: Vec<(String, String)>,
    /// Whether each side has `organization_id`.
    child_tenant: bool,
    parent_tenant: bool,
}

async fn foreign_keys(conn: &mut PgConnection) -> Result<Vec<ForeignKey>, BundleError> {
    let rows = sqlx::query(
        r"SELECT n.nspname || '.' || c.relname AS child, f.conname::text AS name,
                 format('%I.%I', pn.nspname, pc.relname) AS parent,
                 (SELECT array_agg(quote_ident(a.attname) ORDER BY k.ord)
                    FROM unnest(f.conkey) WITH ORDINALITY k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.attnum) AS child_columns,
                 (SELECT array_agg(quote_ident(a.attname) ORDER BY k.ord)
                    FROM unnest(f.confkey) WITH ORDINALITY k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.attnum) AS parent_columns,
                 EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = f.conrelid
                            AND a.attname = 'organization_id' AND NOT a.attisdropped) AS child_tenant,
                 EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = f.confrelid
                            AND a.attname = 'organization_id' AND NOT a.attisdropped) AS parent_tenant
            FROM pg_constraint f
            JOIN pg_class c ON c.oid = f.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_class pc ON pc.oid = f.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
           WHERE f.contype = 'f' AND f.conparentid = 0
           ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let child_columns: Vec<String> = row.get("child_columns");
            let parent_columns: Vec<String> = row.get("parent_columns");
            ForeignKey {
                child: row.get("child"),
                name: row.get("name"),
                parent: row.get("parent"),
                pairs: child_columns.into_iter().zip(parent_columns).collect(),
                child_tenant: row.get("child_tenant"),
                parent_tenant: row.get("parent_tenant"),
            }
        })
        .collect())
}

/// A table as the catalog describes it to this role.
struct Table {
    name: String,
    sql: String,
    readable: Vec<String>,
    /// The readable columns' names as they are, and how each one's value is written in JSON.
    readable_names: Vec<String>,
    kinds: Vec<Kind>,
    columns: Vec<String>,
    key: Option<Vec<String>>,
    /// ORDER BY expressions of the key on alias `t`.
    sort: Option<Vec<String>>,
    tenant: bool,
    /// The column naming the person a row is about: `user_id`, or `id` in `users`.
    person: Option<String>,
}

/// Every table of ours this role may read, by name.
async fn tables(conn: &mut PgConnection) -> Result<Vec<Table>, BundleError> {
    let rows = sqlx::query(
        r#"SELECT n.nspname || '.' || c.relname AS name,
                 format('%I.%I', n.nspname, c.relname) AS sql,
                 r.readable, r.readable_names, r.kinds,
                 (SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum) FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                     AND a.attgenerated = '') AS columns,
                 (SELECT array_agg(quote_ident(a.attname) ORDER BY k.ord)
                    FROM pg_constraint p, unnest(p.conkey) WITH ORDINALITY k(attnum, ord), pg_attribute a
                   WHERE p.conrelid = c.oid AND p.contype = 'p'
                     AND a.attrelid = c.oid AND a.attnum = k.attnum) AS key,
                 -- The same columns to sort by: text in byte order, so every server sorts alike.
                 (SELECT array_agg('t.' || quote_ident(a.attname)
                                   || CASE WHEN a.attcollation <> 0 THEN ' COLLATE "C"' ELSE '' END
                                   ORDER BY k.ord)
                    FROM pg_constraint p, unnest(p.conkey) WITH ORDINALITY k(attnum, ord), pg_attribute a
                   WHERE p.conrelid = c.oid AND p.contype = 'p'
                     AND a.attrelid = c.oid AND a.attnum = k.attnum) AS sort,
                 EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid
                            AND a.attname = 'organization_id' AND NOT a.attisdropped) AS tenant,
                 CASE WHEN c.oid = 'public.users'::regclass THEN 'id'
                      WHEN EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid
                                      AND a.attname = 'user_id' AND NOT a.attisdropped
                                      AND has_column_privilege(c.oid, a.attnum, 'SELECT'))
                      THEN 'user_id' END AS person
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN LATERAL (
                 SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum) AS readable,
                        array_agg(a.attname::text ORDER BY a.attnum) AS readable_names,
                        -- A domain is written as its base type.
                        array_agg(CASE coalesce(nullif(ty.typbasetype, 0), a.atttypid)
                                    WHEN 'int2'::regtype THEN 'number' WHEN 'int4'::regtype THEN 'number'
                                    WHEN 'int8'::regtype THEN 'number' WHEN 'float4'::regtype THEN 'number'
                                    WHEN 'float8'::regtype THEN 'number' WHEN 'numeric'::regtype THEN 'number'
                                    WHEN 'bool'::regtype THEN 'boolean'
                                    WHEN 'json'::regtype THEN 'json' WHEN 'jsonb'::regtype THEN 'json'
                                    ELSE 'string' END ORDER BY a.attnum) AS kinds
                   FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                    AND has_column_privilege(c.oid, a.attnum, 'SELECT')) r ON true
           WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
             AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
             AND n.nspname NOT LIKE 'pg_temp%' AND c.relname <> '_sqlx_migrations'
             -- What this role may read at all, if only some columns (the owner role: everything).
             AND has_any_column_privilege(c.oid, 'SELECT')
           ORDER BY (n.nspname || '.' || c.relname) COLLATE "C""#,
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let readable: Option<Vec<String>> = row.get("readable");
            let names: Option<Vec<String>> = row.get("readable_names");
            let kinds: Option<Vec<String>> = row.get("kinds");
            Table {
                name: row.get("name"),
                sql: row.get("sql"),
                readable: readable.unwrap_or_default(),
                readable_names: names.unwrap_or_default(),
                kinds: kinds
                    .unwrap_or_default()
                    .iter()
                    .map(|kind| Kind::named(kind))
                    .collect(),
                columns: row
                    .get::<Option<Vec<String>>, _>("columns")
                    .unwrap_or_default(),
                key: row.get("key"),
                sort: row.get("sort"),
                tenant: row.get("tenant"),
                person: row.get("person"),
            }
        })
        .collect())
}

/// What the catalog says about an organization's rows: the tables holding them, in a fixed
/// order (by name), and every foreign key.
struct Catalog {
    sources: Vec<Source>,
    keys: Vec<ForeignKey>,
}

async fn catalog(conn: &mut PgConnection) -> Result<Catalog, BundleError> {
    let tables = tables(conn).await?;
    let keys = foreign_keys(conn).await?;
    let tenant_column = "organization_id".to_owned();
    let mut found = Vec::new();
    for table in tables {
        let name = table.name;
        let rows = if name == ORGANIZATIONS {
            Rows::Organization
        } else if table.tenant {
            Rows::Tenant
        } else if let Some(key) = keys.iter().find(|k| {
            k.child == name && !k.child_tenant && (k.parent_tenant || k.parent == ORGANIZATIONS)
        }) {
            Rows::Dependent {
                parent: key.parent.clone(),
                pairs: key.pairs.clone(),
                owner: if key.parent == ORGANIZATIONS {
                    "id"
                } else {
                    "organization_id"
                },
            }
        } else if let Some((_, column)) = ACCOUNT_TABLES.iter().find(|(t, _)| *t == name) {
            Rows::Account {
                column: (*column).to_owned(),
            }
        } else {
            continue;
        };
        // Without a primary key the order would be the table's order, which no two copies share.
        let key = table.key.ok_or_else(|| {
            BundleError::Refused(format!("{name} has no primary key to order its rows by"))
        })?;
        // A role that may not read the columns that pick and order the rows reads none of them.
        let picking: Vec<&String> = match &rows {
            Rows::Organization => vec![],
            Rows::Tenant => vec![&tenant_column],
            Rows::Dependent { pairs, .. } => pairs.iter().map(|(child, _)| child).collect(),
            Rows::Account { column } => vec![column],
        };
        if !key
            .iter()
            .chain(picking)
            .all(|c| table.readable.contains(c))
        {
            continue;
        }
        let json_keys = table
            .readable_names
            .iter()
            .map(|column| {
                let mut key = serde_json::to_vec(column).unwrap_or_default();
                key.push(b':');
                key
            })
            .collect();
        found.push(Source {
            sql: table.sql,
            name,
            readable: table.readable,
            json_keys,
            kinds: table.kinds,
            columns: table.columns,
            sort: table.sort.unwrap_or_default(),
            rows,
        });
    }
    Ok(Catalog {
        sources: found,
        keys,
    })
}

/// One person's rows as the connection's binding may read them, by table: in every table
/// with a `user_id` column (and `users` itself), the rows that are theirs — of organization
/// `org` in tables with `organization_id`, or with `None`, in tables without it (the account).
pub async fn personal_rows(
    conn: &mut PgConnection,
    user: Uuid,
    org: Option<Uuid>,
) -> Result<serde_json::Map<String, serde_json::Value>, BundleError> {
    run(conn, &["SET LOCAL TimeZone = 'UTC'"]).await?;
    let mut found = serde_json::Map::new();
    for table in tables(conn).await? {
        let Some(person) = &table.person else {
            continue;
        };
        if table.tenant != org.is_some() || table.readable.is_empty() {
            continue;
        }
        let columns: Vec<String> = table.readable.iter().map(|c| format!("t.{c}")).collect();
        let order = table.sort.unwrap_or_else(|| vec![format!("t.{person}")]);
        let of_org = if org.is_some() {
            "AND t.organization_id = $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT coalesce(json_agg(row_to_json(r)), '[]') FROM (SELECT {} FROM {} t
              WHERE t.{person} = $1 {of_org} ORDER BY {}) r",
            columns.join(", "),
            table.sql,
            order.join(", ")
        );
        let mut query = sqlx::query_scalar(&sql).bind(user);
        if let Some(org) = org {
            query = query.bind(org);
        }
        let rows: serde_json::Value = query.fetch_one(&mut *conn).await?;
        if rows.as_array().is_some_and(|r| !r.is_empty()) {
            found.insert(table.name, rows);
        }
    }
    Ok(found)
}

/// A query of the accounts the organization's rows name: every value of a foreign key into
/// `users` (run in the export's own statement, so it sees the rows' snapshot).
fn people_of(keys: &[ForeignKey], sources: &[Source], org: Uuid) -> String {
    let mut queries: Vec<String> = keys
        .iter()
        .filter(|k| k.parent == "public.users" && k.pairs.len() == 1)
        .filter_map(|k| {
            let column = &k.pairs[0].0;
            let source = sources.iter().find(|s| {
                s.name == k.child
                    && !matches!(s.rows, Rows::Account { .. })
                    && s.readable.contains(column)
            })?;
            Some(format!(
                "SELECT t.{column} FROM {} t WHERE {}",
                source.sql,
                source.filter(org, "")
            ))
        })
        .collect();
    if queries.is_empty() {
        queries.push("SELECT NULL::uuid".into());
    }
    queries.join(" UNION ")
}

async fn schema_version(conn: &mut PgConnection) -> Result<i64, BundleError> {
    let version: Option<i64> =
        sqlx::query_scalar(r"SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await?;
    version.ok_or_else(|| BundleError::Refused("the database is not migrated".into()))
}

/// The organization named by id or slug.
async fn find_organization(
    conn: &mut PgConnection,
    org: &str,
    lock: bool,
) -> Result<Organization, BundleError> {
    let row: Option<(Uuid, String, String)> = sqlx::query_as(&format!(
        r"SELECT id, slug, name FROM organizations WHERE id::text = $1 OR slug = $1 {}",
        if lock { "FOR UPDATE" } else { "" }
    ))
    .bind(org)
    .fetch_optional(&mut *conn)
    .await?;
    let (id, slug, name) =
        row.ok_or_else(|| BundleError::Refused(format!("no organization {org} here")))?;
    Ok(Organization { id, slug, name })
}

/// Writes organization `org` (id or slug) into `out` (absent or empty; removed again if the
/// export fails), every row and column: run as the owner role. `progress` hears each table.
pub async fn export(
    conn: &mut PgConnection,
    org: &str,
    out: &Path,
    mut progress: impl FnMut(&TableEntry),
) -> Result<Manifest, BundleError> {
    prepare_out(out)?;
    let result = async {
        let mut tx = conn.begin().await?;
        run(&mut tx, &["SET LOCAL statement_timeout = 0"]).await?;
        let organization = find_organization(&mut tx, org, false).await?;
        let version = schema_version(&mut tx).await?;
        let manifest =
            write_bundle(&mut tx, organization, version, true, out, &mut progress).await?;
        // It only read.
        tx.rollback().await?;
        Ok(manifest)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_dir_all(out);
    }
    result
}

/// Writes `organization` into `out` (absent or empty; removed again on failure) as what the
/// connection's role and binding may read — a request's transaction: row-level security and
/// column privileges decide. Marked incomplete: an import needs an operator's export.
pub async fn export_readable(
    conn: &mut PgConnection,
    organization: Organization,
    schema_version: i64,
    out: &Path,
) -> Result<Manifest, BundleError> {
    prepare_out(out)?;
    let result = write_bundle(conn, organization, schema_version, false, out, &mut |_| {}).await;
    if result.is_err() {
        let _ = std::fs::remove_dir_all(out);
    }
    result
}

fn prepare_out(out: &Path) -> Result<(), BundleError> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BundleError::Refused(format!(
                    "{} is not empty: export into a new directory",
                    out.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(out)
            .map_err(io_err(out)),
        Err(e) => Err(io_err(out)(e)),
    }
}

/// A new file only its owner reads: a bundle holds personal data and credentials' hashes.
fn private_file(path: &Path) -> Result<File, BundleError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))
}

/// One table's file as it is written.
struct TableFile {
    path: PathBuf,
    file: BufWriter<File>,
    hash: Sha256,
}

/// How values look in text, pinned so that every server writes (and reads back) the same: times
/// in UTC, ISO dates, PostgreSQL's intervals, shortest exact floats, hex bytes.
const VALUE_SETTINGS: &[&str] = &[
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL extra_float_digits = 1",
    "SET LOCAL bytea_output = 'hex'",
];

/// How a column's value is written in a row's JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Integers, floats and numerics: a JSON number (`NaN` and the infinities: a string).
    Number,
    Boolean,
    /// `json` and `jsonb`: the document itself.
    Json,
    /// Everything else: PostgreSQL's text for it, as a JSON string (times, ids, arrays, ranges).
    String,
}

impl Kind {
    fn named(name: &str) -> Self {
        match name {
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "json" => Self::Json,
            _ => Self::String,
        }
    }
}

/// Appends one row's JSON object and a newline to `out`, from its values in COPY's text format
/// (`\N` for NULL, backslash escapes): keys and values in column order.
fn json_line<'a>(
    keys: &[Vec<u8>],
    kinds: &[Kind],
    mut values: impl Iterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) -> Result<(), BundleError> {
    let short = || BundleError::Refused("an exported line with too few values".into());
    out.push(b'{');
    for (i, (key, kind)) in keys.iter().zip(kinds).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key);
        let value = values.next().ok_or_else(short)?;
        if value == b"\\N" {
            out.extend_from_slice(b"null");
            continue;
        }
        match kind {
            Kind::Number
                if value
                    .first()
                    .is_some_and(|b| b.is_ascii_digit() || *b == b'-')
                    && value != b"-Infinity" =>
            {
                out.extend_from_slice(value);
            }
            Kind::Boolean => out.extend_from_slice(value),
            Kind::Json => unescape_copy_text(value, out, false)?,
            Kind::Number | Kind::String => {
                out.push(b'"');
                unescape_copy_text(value, out, true)?;
                out.push(b'"');
            }
        }
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

/// Appends `value`, in COPY's text format, as the text it stands for — escaped for a JSON string
/// when `json_string` (quotes, backslashes and control characters).
fn unescape_copy_text(
    value: &[u8],
    out: &mut Vec<u8>,
    json_string: bool,
) -> Result<(), BundleError> {
    // Most values need nothing done: copied whole.
    let plain = |b: &u8| *b >= 0x20 && *b != b'\\' && !(json_string && *b == b'"');
    if value.iter().all(plain) {
        out.extend_from_slice(value);
        return Ok(());
    }
    let mut bytes = value.iter();
    while let Some(&b) = bytes.next() {
        let plain = if b == b'\\' {
            match bytes.next() {
                Some(b'\\') => b'\\',
                Some(b'n') => b'\n',
                Some(b't') => b'\t',
                Some(b'r') => b'\r',
                Some(b'b') => 0x08,
                Some(b'f') => 0x0c,
                Some(b'v') => 0x0b,
                _ => {
                    return Err(BundleError::Refused(
                        "an exported value with an unknown escape".into(),
                    ))
                }
            }
        } else {
            b
        };
        if !json_string {
            // A `json` value keeps its text, line breaks between tokens too: one line per row.
            out.push(if matches!(plain, b'\n' | b'\r') {
                b' '
            } else {
                plain
            });
            continue;
        }
        match plain {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x00..=0x1f => out.extend_from_slice(format!("\\u{plain:04x}").as_bytes()),
            _ => out.push(plain),
        }
    }
    Ok(())
}

/// Runs the export's one `COPY` of `selects` and sends each table's rows, as JSON lines, to
/// `writer` in pieces, in order; the rows counted per table. The stream is read to its end even
/// after a failure, so the connection stays in step with the server (it may be a request's).
async fn convert_rows(
    conn: &mut PgConnection,
    selects: &[String],
    sources: &[Source],
    writer: &tokio::sync::mpsc::Sender<(usize, Vec<u8>)>,
) -> Result<Vec<u64>, BundleError> {
    let mut converter = Converter {
        sources,
        writer,
        pending: Vec::new(),
        piece: Vec::with_capacity(Converter::PIECE),
        current: 0,
        rows: vec![0; sources.len()],
    };
    if selects.is_empty() {
        return Ok(converter.rows);
    }
    let copy = format!("COPY ({}) TO STDOUT", selects.join(" UNION ALL "));
    let mut stream = conn.copy_out_raw(&copy).await?;
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if failure.is_none() {
            failure = converter.take(&chunk).await.err();
        }
    }
    match failure {
        Some(failure) => Err(failure),
        None => converter.finish().await,
    }
}

/// COPY's lines (`table \t value \t value … \n` in its text format, the table by its place in
/// the export) turned into JSON lines, gathered per table into pieces for the writer.
struct Converter<'a> {
    sources: &'a [Source],
    writer: &'a tokio::sync::mpsc::Sender<(usize, Vec<u8>)>,
    /// The start of a line split across messages.
    pending: Vec<u8>,
    piece: Vec<u8>,
    current: usize,
    rows: Vec<u64>,
}

impl Converter<'_> {
    const PIECE: usize = 256 * 1024;

    async fn take(&mut self, chunk: &[u8]) -> Result<(), BundleError> {
        // PostgreSQL sends a row per message: the buffer is for a row split across messages.
        let whole = self.pending.is_empty() && chunk.last() == Some(&b'\n');
        let mut pending = std::mem::take(&mut self.pending);
        if !whole {
            pending.extend_from_slice(chunk);
        }
        let lines: &[u8] = if whole { chunk } else { &pending };
        let mut start = 0;
        while let Some(end) = lines[start..].iter().position(|b| *b == b'\n') {
            let line = &lines[start..start + end];
            start += end + 1;
            let mut fields = line.split(|b| *b == b'\t');
            let table = std::str::from_utf8(fields.next().unwrap_or_default())
                .ok()
                .and_then(|t| t.parse::<usize>().ok())
                .filter(|t| *t < self.sources.len())
                .ok_or_else(|| BundleError::Refused("an exported line of no table".into()))?;
            if table != self.current {
                self.send().await?;
                self.current = table;
            }
            let source = &self.sources[table];
            json_line(&source.json_keys, &source.kinds, fields, &mut self.piece)?;
            self.rows[table] += 1;
            if self.piece.len() >= Self::PIECE {
                self.send().await?;
            }
        }
        if !whole {
            pending.drain(..start);
            self.pending = pending;
        }
        Ok(())
    }

    /// Hands the current table's piece to the writer.
    async fn send(&mut self) -> Result<(), BundleError> {
        if self.piece.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.piece, Vec::with_capacity(Self::PIECE));
        self.writer
            .send((self.current, piece))
            .await
            .map_err(|_| BundleError::Refused("writing the bundle's files stopped".into()))
    }

    async fn finish(mut self) -> Result<Vec<u64>, BundleError> {
        if !self.pending.is_empty() {
            return Err(BundleError::Refused(
                "the export ended inside a line".into(),
            ));
        }
        self.send().await?;
        Ok(self.rows)
    }
}

/// Writes every table's rows and then the manifest, in the caller's transaction. All rows come
/// from one statement: one snapshot, the organization at one moment, under any isolation level.
async fn write_bundle(
    conn: &mut PgConnection,
    organization: Organization,
    schema_version: i64,
    complete: bool,
    out: &Path,
    progress: &mut impl FnMut(&TableEntry),
) -> Result<Manifest, BundleError> {
    // Values written alike on every server (a request's time limit is its caller's to set).
    // No parallel plan, which could interleave a table's rows out of key order; no JIT, whose
    // compiling of a statement this wide cost more than running it (1.5 s of 2 s, measured).
    run(conn, VALUE_SETTINGS).await?;
    run(
        conn,
        &[
            "SET LOCAL max_parallel_workers_per_gather = 0",
            "SET LOCAL jit = off",
        ],
    )
    .await?;
    // An operator's export sorts each table in memory; a download, which anyone owning an
    // organization may start, keeps the server's limit (every table's sort holds its memory
    // until the statement ends).
    if complete {
        run(conn, &["SET LOCAL work_mem = '64MB'"]).await?;
    }
    let Catalog { sources, keys } = catalog(conn).await?;
    let sources: Vec<Source> = sources
        .into_iter()
        .filter(|s| complete || !SEALED_TABLES.contains(&s.name.as_str()))
        .collect();
    let people = people_of(&keys, &sources, organization.id);
    let mut files = Vec::with_capacity(sources.len());
    for source in &sources {
        let path = out.join(source.file());
        let file = BufWriter::new(private_file(&path)?);
        files.push(TableFile {
            path,
            file,
            hash: Sha256::new(),
        });
    }
    let width = sources.iter().map(|s| s.readable.len()).max().unwrap_or(0);
    let selects: Vec<String> = sources
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.readable.is_empty())
        .map(|(i, s)| s.select(i, organization.id, &people, width))
        .collect();
    // Files are hashed and written on a thread of their own while rows are converted: SHA-256
    // is a third of the client's work.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<(usize, Vec<u8>)>(8);
    let writer = tokio::task::spawn_blocking(move || -> Result<Vec<TableFile>, BundleError> {
        while let Some((table, bytes)) = receiver.blocking_recv() {
            let target = &mut files[table];
            target.hash.update(&bytes);
            target
                .file
                .write_all(&bytes)
                .map_err(io_err(&target.path))?;
        }
        Ok(files)
    });
    let converted = convert_rows(conn, &selects, &sources, &sender).await;
    drop(sender);
    let files = writer
        .await
        .map_err(|e| BundleError::Refused(format!("writing the bundle's files failed: {e}")))??;
    let rows = converted?;
    let mut tables = Vec::with_capacity(sources.len());
    for ((source, written), rows) in sources.iter().zip(files).zip(rows) {
        let file = written
            .file
            .into_inner()
            .map_err(|e| io_err(&written.path)(e.into_error()))?;
        // A bundle meant to be kept is on disk before its manifest says so; a download is read
        // once, at once.
        if complete {
            file.sync_all().map_err(io_err(&written.path))?;
        }
        let entry = TableEntry {
            table: source.name.clone(),
            file: source.file(),
            rows,
            sha256: written.hash.hex(),
        };
        progress(&entry);
        tables.push(entry);
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        schema_version,
        complete,
        exported_at: Utc::now(),
        checksum: bundle_checksum(
            FORMAT_VERSION,
            schema_version,
            complete,
            &organization,
            &tables,
        ),
        organization,
        tables,
    };
    // The manifest last: a directory without one is not a bundle.
    let path = out.join(MANIFEST);
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| io_err(&path)(e.into()))?;
    let mut file = private_file(&path)?;
    file.write_all(&text).map_err(io_err(&path))?;
    if complete {
        file.sync_all().map_err(io_err(&path))?;
    }
    Ok(manifest)
}

/// Reads a bundle's manifest and checks every file against it, before anything is written.
pub fn read_bundle(dir: &Path) -> Result<Manifest, BundleError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(io_err(&path))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
        BundleError::Refused(format!("{}: not a bundle's manifest: {e}", path.display()))
    })?;
    if manifest.format != FORMAT || !(1..=FORMAT_VERSION).contains(&manifest.format_version) {
        return Err(BundleError::Refused(format!(
            "{}: a {} version {} bundle; this Tenantry reads {FORMAT} versions 1 to {FORMAT_VERSION}",
            path.display(),
            manifest.format,
            manifest.format_version
        )));
    }
    if bundle_checksum(
        manifest.format_version,
        manifest.schema_version,
        manifest.complete,
        &manifest.organization,
        &manifest.tables,
    ) != manifest.checksum
    {
        return Err(BundleError::Refused(format!(
            "{}: the checksum does not match: the manifest was changed",
            path.display()
        )));
    }
    for entry in &manifest.tables {
        // A file name is the table's name; anything else could reach outside the bundle.
        if entry.file != format!("{}.ndjson", entry.table) || entry.file.contains(['/', '\\']) {
            return Err(BundleError::Refused(format!(
                "{}: unexpected file name {:?}",
                path.display(),
                entry.file
            )));
        }
        let path = dir.join(&entry.file);
        let mut file = BufReader::new(File::open(&path).map_err(io_err(&path))?);
        let mut hash = Sha256::new();
        let mut rows = 0u64;
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buffer).map_err(io_err(&path))?;
            if n == 0 {
                break;
            }
            rows += buffer[..n].iter().filter(|b| **b == b'\n').count() as u64;
            hash.update(&buffer[..n]);
        }
        if hash.hex() != entry.sha256 || rows != entry.rows {
            return Err(BundleError::Refused(format!(
                "{}: damaged: its rows or checksum differ from the manifest's",
                path.display()
            )));
        }
    }
    Ok(manifest)
}

/// Loads the bundle in `dir` in one transaction: everything or nothing. Ids are kept; an
/// organization, slug or row that exists here already refuses the whole import, as does a
/// row referring to what this Tenantry lacks (a plan, a tool). An account already here (the
/// same id) is kept as it is here, and the organization's rows attach to it.
pub async fn import(
    conn: &mut PgConnection,
    dir: &Path,
    mut progress: impl FnMut(&TableEntry),
) -> Result<Manifest, BundleError> {
    let manifest = read_bundle(dir)?;
    if !manifest.complete {
        return Err(BundleError::Refused(format!(
            "{}: a download through the API, holding what its owner may read: an import needs \
             an operator's export (tenantry org export)",
            dir.display()
        )));
    }
    let here = schema_version(conn).await?;
    if here != manifest.schema_version {
        return Err(BundleError::Refused(format!(
            "the bundle comes from schema version {} and this Tenantry is at {here}: migrate both to the same version first",
            manifest.schema_version
        )));
    }
    let Catalog { sources, keys } = catalog(conn).await?;
    let ours: BTreeSet<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    let theirs: BTreeSet<&str> = manifest.tables.iter().map(|t| t.table.as_str()).collect();
    if ours != theirs {
        let missing: Vec<&&str> = ours.difference(&theirs).collect();
        let extra: Vec<&&str> = theirs.difference(&ours).collect();
        return Err(BundleError::Refused(format!(
            "the bundle's tables differ from this Tenantry's (missing: {missing:?}, unknown: {extra:?})"
        )));
    }
    let org = manifest.organization.id;
    let people = bundle_people(dir)?;

    let mut tx = begin_writing(conn).await?;
    // Version 1 wrote values as `row_to_json` did, in the exporting server's styles.
    if manifest.format_version >= 2 {
        run(&mut tx, VALUE_SETTINGS).await?;
    }
    let taken: Option<(Uuid, String)> =
        sqlx::query_as(r"SELECT id, slug FROM organizations WHERE id = $1 OR slug = $2")
            .bind(org)
            .bind(&manifest.organization.slug)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some((id, slug)) = taken {
        return Err(BundleError::Refused(if id == org {
            format!("organization {org} is here already")
        } else {
            format!("the slug {slug} belongs to another organization here")
        }));
    }
    run(
        &mut tx,
        &[
            "CREATE TEMPORARY TABLE bundle_rows (line text) ON COMMIT DROP",
            "CREATE TEMPORARY TABLE bundle_accounts_here (id uuid PRIMARY KEY) ON COMMIT DROP",
        ],
    )
    .await?;
    // Accounts here that the organization's rows attach to stay until this commits.
    sqlx::query(
        r"INSERT INTO bundle_accounts_here SELECT id FROM users WHERE id = ANY($1) FOR KEY SHARE",
    )
    .bind(&people)
    .execute(&mut *tx)
    .await?;

    for entry in &manifest.tables {
        let Some(source) = sources.iter().find(|s| s.name == entry.table) else {
            continue;
        };
        run(&mut tx, &["TRUNCATE bundle_rows"]).await?;
        let path = dir.join(&entry.file);
        let file = tokio::fs::File::open(&path).await.map_err(io_err(&path))?;
        let mut copy = tx
            .copy_in_raw(&format!("COPY bundle_rows FROM STDIN {LINES}"))
            .await?;
        copy.read_from(file).await?;
        copy.finish().await?;
        let columns = source.columns.join(", ");
        let picked: Vec<String> = source.columns.iter().map(|c| format!("r.{c}")).collect();
        // An account here already stays as it is here.
        let keep = match &source.rows {
            Rows::Account { column } => {
                format!("WHERE r.{column} NOT IN (SELECT id FROM bundle_accounts_here)")
            }
            _ => String::new(),
        };
        let inserted = sqlx::query(&format!(
            "INSERT INTO {} ({columns}) SELECT {} FROM bundle_rows b, json_populate_record(NULL::{}, b.line::json) r {keep}",
            source.sql,
            picked.join(", "),
            source.sql
        ))
        .execute(&mut *tx)
        .await
        .map_err(|e| collision(&source.name, e))?
        .rows_affected();
        if !matches!(source.rows, Rows::Account { .. }) && inserted != entry.rows {
            return Err(BundleError::Refused(format!(
                "{}: {inserted} rows loaded of {}",
                source.name, entry.rows
            )));
        }
        progress(entry);
    }
    check_belonging(&mut tx, &manifest, &sources, &keys, &people).await?;
    check_references(&mut tx, &sources, &keys, org, &listed(&people)).await?;
    refresh_reports(&mut tx).await?;
    tx.commit().await?;
    Ok(manifest)
}

/// The account ids in the bundle's users file.
fn bundle_people(dir: &Path) -> Result<Vec<Uuid>, BundleError> {
    #[derive(Deserialize)]
    struct Account {
        id: Uuid,
    }
    let path = dir.join("public.users.ndjson");
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    text.lines()
        .map(|line| {
            serde_json::from_str::<Account>(line)
                .map(|a| a.id)
                .map_err(|e| BundleError::Refused(format!("{}: {e}", path.display())))
        })
        .collect()
}

/// A unique violation is a collision with what is here; say which.
fn collision(table: &str, e: sqlx::Error) -> BundleError {
    if let Some(db) = e.as_database_error() {
        if db.code().as_deref() == Some("23505") {
            let detail = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|pg| pg.detail())
                .unwrap_or_default()
                .to_owned();
            return BundleError::Refused(format!(
                "{table}: a row of the bundle collides with one here ({}): {detail}",
                db.constraint().unwrap_or("a unique key")
            ));
        }
        if db.code().as_deref() == Some("22P02") || db.code().as_deref() == Some("23502") {
            return BundleError::Refused(format!("{table}: a row does not fit: {}", db.message()));
        }
    }
    BundleError::Sqlx(e)
}

/// Every loaded row is the organization's: each table holds as many rows of it as the bundle
/// brought (a row naming another organization would not count), and every new account is one
/// its rows name. New accounts hold no platform role here: that is this platform's to give.
async fn check_belonging(
    conn: &mut PgConnection,
    manifest: &Manifest,
    sources: &[Source],
    keys: &[ForeignKey],
    people: &[Uuid],
) -> Result<(), BundleError> {
    let org = manifest.organization.id;
    for entry in &manifest.tables {
        let Some(source) = sources.iter().find(|s| s.name == entry.table) else {
            continue;
        };
        if matches!(source.rows, Rows::Account { .. }) {
            continue;
        }
        let found: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {} t WHERE {}",
            source.sql,
            source.filter(org, "")
        ))
        .fetch_one(&mut *conn)
        .await?;
        if found as u64 != entry.rows {
            return Err(BundleError::Refused(format!(
                "{}: {} of its {} rows belong to another organization or to none",
                entry.table,
                entry.rows.saturating_sub(found as u64),
                entry.rows
            )));
        }
    }
    let strays: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM users WHERE id = ANY($1)
            AND id NOT IN (SELECT id FROM bundle_accounts_here) AND id NOT IN ({})",
        people_of(keys, sources, org)
    ))
    .bind(people)
    .fetch_one(&mut *conn)
    .await?;
    if strays > 0 {
        return Err(BundleError::Refused(format!(
            "public.users: {strays} accounts that no row of the organization names"
        )));
    }
    sqlx::query(
        r"UPDATE users SET role = 'user' WHERE id = ANY($1)
             AND id NOT IN (SELECT id FROM bundle_accounts_here) AND role <> 'user'",
    )
    .bind(people)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The transaction an import or an erasure writes in: no time limit but a bounded wait for
/// locks, and triggers off (the owner role is granted the setting at bootstrap).
async fn begin_writing(
    conn: &mut PgConnection,
) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, BundleError> {
    let mut tx = conn.begin().await?;
    run(
        &mut tx,
        &[
            "SET LOCAL statement_timeout = 0",
            "SET LOCAL lock_timeout = '30s'",
        ],
    )
    .await?;
    run(&mut tx, &["SET LOCAL session_replication_role = replica"])
        .await
        .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
            Some(code) if code == "42501" => BundleError::Refused(
                "this role may not set session_replication_role; as a superuser run: \
                 GRANT SET ON PARAMETER session_replication_role TO <the owner role> \
                 (a managed cluster does it at start)"
                    .into(),
            ),
            _ => BundleError::Sqlx(e),
        })?;
    Ok(tx)
}

/// What the foreign keys would have checked: every reference from a loaded row finds its row.
async fn check_references(
    conn: &mut PgConnection,
    sources: &[Source],
    keys: &[ForeignKey],
    org: Uuid,
    people: &str,
) -> Result<(), BundleError> {
    for key in keys {
        let Some(source) = sources.iter().find(|s| s.name == key.child) else {
            continue;
        };
        let present: Vec<String> = key
            .pairs
            .iter()
            .map(|(c, _)| format!("t.{c} IS NOT NULL"))
            .collect();
        let join: Vec<String> = key
            .pairs
            .iter()
            .map(|(c, p)| format!("p.{p} = t.{c}"))
            .collect();
        let missing: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {} t WHERE {} AND {} AND NOT EXISTS (SELECT FROM {} p WHERE {})",
            source.sql,
            source.filter(org, people),
            present.join(" AND "),
            key.parent,
            join.join(" AND ")
        ))
        .fetch_one(&mut *conn)
        .await?;
        if missing > 0 {
            return Err(BundleError::Refused(format!(
                "{missing} rows of {} refer to {} rows this Tenantry lacks ({}): add those first \
                 (the plan catalog: tenantry plans import)",
                key.child, key.parent, key.name,
            )));
        }
    }
    Ok(())
}

/// Reports (materialized views) read tenant rows: brought up to date with the change, in its
/// transaction, so no report shows an imported organization late or an erased one at all.
async fn refresh_reports(conn: &mut PgConnection) -> Result<(), BundleError> {
    let views: Vec<String> = sqlx::query_scalar(
        r"SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind = 'm' AND c.relispopulated ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    for view in views {
        run(conn, &[&format!("REFRESH MATERIALIZED VIEW {view}")]).await?;
    }
    Ok(())
}

/// Indexes of `sources` with every table after the tables its foreign keys point to (a cycle,
/// which no schema of ours has, is broken in name order).
fn parents_first(sources: &[Source], keys: &[ForeignKey]) -> Vec<usize> {
    let parents: Vec<Vec<usize>> = sources
        .iter()
        .map(|s| {
            keys.iter()
                .filter(|k| k.child == s.name)
                .filter_map(|k| sources.iter().position(|p| p.sql == k.parent))
                .filter(|p| sources[*p].name != s.name)
                .collect()
        })
        .collect();
    let mut placed = vec![false; sources.len()];
    let mut order = Vec::with_capacity(sources.len());
    while order.len() < sources.len() {
        let ready: Vec<usize> = (0..sources.len())
            .filter(|i| !placed[*i] && parents[*i].iter().all(|p| placed[*p]))
            .collect();
        let next = if ready.is_empty() {
            (0..sources.len()).filter(|i| !placed[*i]).take(1).collect()
        } else {
            ready
        };
        for i in next {
            placed[i] = true;
            order.push(i);
        }
    }
    order
}

/// What an erasure removed.
#[derive(Clone, Debug)]
pub struct Erased {
    pub organization: Organization,
    /// Rows removed, over every table.
    pub rows: u64,
    /// Audit events kept with their personal data cleared.
    pub redacted_events: u64,
}

/// Removes organization `org` (id or slug; `confirm` must repeat its slug) for good, in one
/// transaction: every row of it in every table, except its audit events, which stay (the
/// seven years the trail is kept) with who and what cleared — `PERSONAL_AUDIT_COLUMNS` — and
/// one event recording the erasure. Accounts stay: a person may belong to other organizations,
/// and deletes their own account (`DELETE /v1/me`). An organization Stripe still bills is
/// refused: erasing it would leave the charges running with no one to stop them.
pub async fn erase(
    conn: &mut PgConnection,
    org: &str,
    confirm: &str,
) -> Result<Erased, BundleError> {
    let mut tx = begin_writing(conn).await?;
    // Locked first: a request writing to it waits, then finds it gone.
    let organization = find_organization(&mut tx, org, true).await?;
    if confirm != organization.slug {
        return Err(BundleError::Refused(
            "the confirmation must repeat the organization's slug".into(),
        ));
    }
    let billed: Option<String> = sqlx::query_scalar(
        r"SELECT status FROM subscriptions WHERE organization_id = $1
             AND stripe_subscription_id IS NOT NULL AND status NOT IN ('canceled', 'incomplete_expired')",
    )
    .bind(organization.id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(status) = billed {
        return Err(BundleError::Refused(format!(
            "its Stripe subscription is {status}: cancel it first (DELETE /v1/orgs/{}/billing/subscription), \
             or Stripe goes on charging",
            organization.id
        )));
    }
    let Catalog { sources, keys } = catalog(&mut tx).await?;
    let org = organization.id;
    // A dependent's rows are found through the rows they hang off, which go first: their keys
    // are noted now (no new ones can appear: a new row of the organization waits for its lock).
    for (i, source) in sources.iter().enumerate() {
        if let Rows::Dependent {
            parent,
            pairs,
            owner,
        } = &source.rows
        {
            let columns: Vec<String> = pairs.iter().map(|(_, p)| format!("p.{p}")).collect();
            run(
                &mut tx,
                &[&format!(
                    "CREATE TEMPORARY TABLE erased_keys_{i} ON COMMIT DROP AS
                     SELECT {} FROM {parent} p WHERE p.{owner} = '{org}'",
                    columns.join(", ")
                )],
            )
            .await?;
        }
    }
    // Parents before children: a request adding a child row while this runs checks its parent,
    // finds it deleted and waits for this transaction, then fails; a child added before its
    // parent went is deleted after it.
    let mut rows = 0u64;
    for i in parents_first(&sources, &keys) {
        let source = &sources[i];
        let filter = match &source.rows {
            Rows::Account { .. } => continue,
            Rows::Tenant if source.name == "audit.events" => continue,
            Rows::Dependent { pairs, .. } => {
                let columns: Vec<String> = pairs.iter().map(|(c, _)| format!("t.{c}")).collect();
                format!(
                    "({}) IN (SELECT * FROM erased_keys_{i})",
                    columns.join(", ")
                )
            }
            _ => source.filter(org, ""),
        };
        rows += sqlx::query(&format!("DELETE FROM {} t WHERE {filter}", source.sql))
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    let cleared: Vec<String> = PERSONAL_AUDIT_COLUMNS
        .iter()
        .map(|c| format!("{c} = NULL"))
        .collect();
    let any: Vec<String> = PERSONAL_AUDIT_COLUMNS
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect();
    let redacted_events = sqlx::query(&format!(
        "UPDATE audit.events SET {} WHERE organization_id = $1 AND ({})",
        cleared.join(", "),
        any.join(" OR ")
    ))
    .bind(organization.id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        r"INSERT INTO audit.events (organization_id, action, entity_type, entity_id, new_data)
          VALUES ($1, 'delete', 'organizations', $1, jsonb_build_object('erased', true, 'rows', $2::bigint))",
    )
    .bind(organization.id)
    .bind(rows as i64)
    .execute(&mut *tx)
    .await?;
    refresh_reports(&mut tx).await?;
    tx.commit().await?;
    Ok(Erased {
        organization,
        rows,
        redacted_events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, rows: Rows) -> Source {
        Source {
            name: name.into(),
            sql: name.into(),
            readable: vec![],
            json_keys: vec![],
            kinds: vec![],
            columns: vec![],
            sort: vec![],
            rows,
        }
    }

    fn key(child: &str, parent: &str) -> ForeignKey {
        ForeignKey {
            child: child.into(),
            name: format!("{child}_fkey"),
            parent: parent.into(),
            pairs: vec![],
            child_tenant: true,
            parent_tenant: true,
        }
    }

    #[test]
    fn a_row_in_copy_text_becomes_one_line_of_json() {
        let keys: Vec<Vec<u8>> = [
            "id", "n", "f", "ok", "doc", "note", "tags", "gone", "we\"ird",
        ]
        .iter()
        .map(|k| [serde_json::to_vec(k).expect("key"), b":".to_vec()].concat())
        .collect();
        let (s, n) = (Kind::String, Kind::Number);
        let kinds = [s, n, n, Kind::Boolean, Kind::Json, s, s, s, s];
        // As COPY writes them: backslash escapes for the backslash and control characters.
        let note = [&br#"say "hi"\\\n\tend\\ "#[..], b"\x01 \xc3\xa9"].concat();
        let values: [&[u8]; 10] = [
            b"0192",
            b"-1.5e+300",
            b"NaN",
            b"true",
            br#"{"a": "x\\"y", "b": [1]}"#,
            &note,
            br#"{a,"b c"}"#,
            b"\\N",
            b"",
            b"\\N",
        ];
        let mut out = Vec::new();
        json_line(&keys, &kinds, values.iter().copied(), &mut out).expect("a line");
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        let row: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(
            row,
            serde_json::json!({
                "id": "0192", "n": -1.5e300, "f": "NaN", "ok": true, "doc": {"a": "x\"y", "b": [1]},
                "note": "say \"hi\"\\\n\tend\\ \u{1} é", "tags": "{a,\"b c\"}", "gone": null, "we\"ird": ""
            })
        );
        let mut out = Vec::new();
        assert!(json_line(&keys, &kinds, values[..3].iter().copied(), &mut out).is_err());
        assert!(json_line(
            &keys[..1],
            &kinds[..1],
            [&b"a\\q"[..]].into_iter(),
            &mut out
        )
        .is_err());
    }

    #[test]
    fn erasure_deletes_every_parent_before_its_children() {
        // In name order a child comes before its parent, and a table refers to itself.
        let sources = vec![
            table("a.points", Rows::Tenant),
            table("b.kpis", Rows::Tenant),
            table("c.tasks", Rows::Tenant),
            table("d.organizations", Rows::Organization),
        ];
        let keys = vec![
            key("a.points", "b.kpis"),
            key("a.points", "d.organizations"),
            key("b.kpis", "d.organizations"),
            key("c.tasks", "c.tasks"),
            key("c.tasks", "d.organizations"),
        ];
        let order: Vec<&str> = parents_first(&sources, &keys)
            .into_iter()
            .map(|i| sources[i].name.as_str())
            .collect();
        let at = |name: &str| order.iter().position(|n| *n == name).expect(name);
        assert_eq!(order.len(), 4);
        assert_eq!(at("d.organizations"), 0);
        assert!(at("b.kpis") < at("a.points"));
    }
}
