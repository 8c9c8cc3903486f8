//! SQL of Fast Track entries and grants. A tool's schema name comes from the catalog (never from
//! the request), so formatting it into the SQL is safe.

use serde_json::Value;
use tenantry_db::TenantTx;
use uuid::Uuid;

use super::columns::{self, Column};
use super::{
    AccessLevel, ArchivedEntry, Catalog, DataChange, Entry, Grant, HistoryItem, MyEntry, NewEntry,
    NewGrant, ReportLine, Status, StatusChange, Tool, ToolDetail, ToolSummary, ToolTable,
};
use crate::kernel::access::require_role;
use crate::kernel::access::Role;
use crate::kernel::error::{Error, FieldError, Found, OnConstraint, Result};
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Limit, Page, PageParams};

const ENTRY_COLUMNS: &str =
    "id, user_id, data, status, version, created_at, updated_at, completed_at, submitted_at";

/// Archived entries of `tool` in `org` (organization admins), by id.
pub async fn archived(
    tx: &mut OrgTx,
    tool: &Tool,
    page: &PageParams,
) -> Result<Page<ArchivedEntry>> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let rows: Vec<ArchivedEntry> = sqlx::query_as(&format!(
        r"SELECT {ENTRY_COLUMNS}, rows, archived_at FROM tool_access.archive
          WHERE organization_id = $1 AND tool_slug = $2 AND id > $3 ORDER BY id LIMIT $4"
    ))
    .bind(org)
    .bind(&tool.slug)
    .bind(page.after())
    .bind(page.fetch_limit())
    .fetch_all(tx.conn())
    .await?;
    Ok(Page::from_rows(rows, page, |a| a.entry.id))
}

/// Whether the caller holds at least `level` on `tool` in `org`: not a member is 404 (the
/// organization is not revealed), a member without that access 403.
pub async fn require_access(tx: &mut OrgTx, tool: &Tool, level: AccessLevel) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let allowed: bool =
        sqlx::query_scalar(r"SELECT $1 = ANY (tool_access.orgs_with_access($2, $3))")
            .bind(org)
            .bind(&tool.slug)
            .bind(level.as_str())
            .fetch_one(tx.conn())
            .await?;
    if allowed {
        Ok(())
    } else {
        Err(Error::Forbidden(match level {
            AccessLevel::View => "you have no access to this tool",
            AccessLevel::Edit => "you may not write entries of this tool",
            AccessLevel::Admin => "only the tool's admins may see everyone's entries",
        }))
    }
}

/// Every tool with the caller's access and progress in `org`.
pub async fn tools(tx: &mut OrgTx) -> Result<Vec<ToolSummary>> {
    summaries(tx, None).await
}

/// One tool as a form needs it: the caller's access and progress, its data's schema, and the
/// columns of its own tables a client writes.
pub async fn tool(tx: &mut OrgTx, tool: &Tool) -> Result<ToolDetail> {
    let summary = summaries(tx, Some(&tool.slug))
        .await?
        .into_iter()
        .next()
        .found()?;
    let mut tables = Vec::with_capacity(tool.tables.len());
    for name in &tool.tables {
        tables.push(ToolTable {
            name: name.clone(),
            columns: writable_columns(tx, tool, name).await?,
        });
    }
    Ok(ToolDetail {
        summary,
        data_schema: tool.data_schema.clone(),
        refs: tool.refs.clone(),
        tables,
    })
}

/// The tools (all, or the one named) with the caller's access and progress.
async fn summaries(tx: &mut OrgTx, slug: Option<&str>) -> Result<Vec<ToolSummary>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    Ok(sqlx::query_as(
        r"SELECT t.slug, t.sprint, t.name, t.description,
                CASE WHEN $1 = ANY (tool_access.orgs_with_access(t.slug, 'admin')) THEN 'admin'
                     WHEN $1 = ANY (tool_access.orgs_with_access(t.slug, 'edit')) THEN 'edit'
                     WHEN $1 = ANY (tool_access.orgs_with_access(t.slug, 'view')) THEN 'view' END AS access,
                coalesce(p.status, 'not_started') AS progress_status,
                coalesce(p.progress_percentage, 0) AS progress_percentage,
                p.last_accessed_at, p.completed_at
           FROM tool_access.tools t
           LEFT JOIN tool_access.progress p
                  ON p.tool_slug = t.slug AND p.organization_id = $1 AND p.user_id = (SELECT app.user_id())
          WHERE $2::text IS NULL OR t.slug = $2
          ORDER BY t.sprint",
    )
    .bind(org)
    .bind(slug)
    .fetch_all(tx.conn())
    .await?)
}

/// My latest entries across every tool (at most `limit`, newest first) with my progress.
pub async fn my_entries(tx: &mut OrgTx, catalog: &Catalog, limit: Limit) -> Result<Vec<MyEntry>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let me = tx.user_id().await?;
    // Planned per run with the user id as a value, like `list`.
    Ok(sqlx::query_as(&catalog.my_entries_sql())
        .persistent(false)
        .bind(org)
        .bind(i64::from(limit.get()))
        .bind(me)
        .fetch_all(tx.conn())
        .await?)
}

/// Cross-tool references in `data` (e.g. Dream → Know Thyself) must name an entry of the
/// referenced tool by the same user in the same organization.
async fn check_refs(tx: &mut OrgTx, catalog: &Catalog, tool: &Tool, data: &Value) -> Result<()> {
    let org = tx.org();
    let mut errors = Vec::new();
    for (field, target) in &tool.refs {
        let Some(value) = data.get(field) else {
            continue;
        };
        let target = catalog.get(target)?;
        let id = value.as_str().and_then(|s| Uuid::parse_str(s).ok());
        let found = match id {
            Some(id) => {
                sqlx::query_scalar::<_, bool>(&format!(
                    r"SELECT EXISTS (SELECT FROM {}.tool_data
                  WHERE organization_id = $1 AND id = $2 AND user_id = (SELECT app.user_id()))",
                    target.schema_name
                ))
                .bind(org)
                .bind(id)
                .fetch_one(tx.conn())
                .await?
            }
            None => false,
        };
        if !found {
            errors.push(FieldError::new(
                &format!("data/{field}"),
                format!("must name one of your own {} entries", target.name),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

pub async fn create(
    tx: &mut OrgTx,
    catalog: &Catalog,
    tool: &Tool,
    new: &NewEntry,
) -> Result<Entry> {
    let org = tx.org();
    tool.validate(&new.data)?;
    require_access(tx, tool, AccessLevel::Edit).await?;
    check_refs(tx, catalog, tool, &new.data).await?;
    sqlx::query_as(&format!(
        r"INSERT INTO {}.tool_data (organization_id, data, status) VALUES ($1, $2, $3)
         RETURNING {ENTRY_COLUMNS}",
        tool.schema_name
    ))
    .bind(org)
    .bind(&new.data)
    .bind(new.status.unwrap_or(Status::Draft).as_str())
    .fetch_one(tx.conn())
    .await
    .on_constraint(STATUS_TRANSITION, invalid_transition)
}

/// Raised by the entry status trigger, with a message naming both statuses.
const STATUS_TRANSITION: &str = "entry_status_transition";

fn invalid_transition(e: Error) -> Error {
    Error::Conflict {
        code: "invalid_transition",
        detail: e.database_message().unwrap_or_default().to_string(),
    }
}

pub async fn get(tx: &mut OrgTx, tool: &Tool, id: Uuid) -> Result<Entry> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let entry: Option<Entry> = sqlx::query_as(&format!(
        r"SELECT {ENTRY_COLUMNS} FROM {}.tool_data WHERE organization_id = $1 AND id = $2",
        tool.schema_name
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    entry.found()
}

/// The SQL of [`list`] for `tool`: organization, statuses, after id, limit, and (unless
/// `everyone`) the caller's user id. Two statements rather than `$n OR user_id = …` (a
/// condition that is sometimes there is never an index condition): the organization's entries
/// are walked along its primary key, the caller's along (organization_id, user_id, id), both in
/// id order. Planned per run (`persistent(false)`) with the user id as a value: how many entries
/// a member has is skewed (one may have thousands, another three), and only the value's
/// statistics tell the planner which.
pub fn list_sql(tool: &Tool, everyone: bool) -> String {
    let whose = if everyone { "" } else { "AND user_id = $5" };
    format!(
        r"SELECT {ENTRY_COLUMNS} FROM {}.tool_data
          WHERE organization_id = $1 {whose} AND status = ANY ($2) AND id > $3
          ORDER BY id LIMIT $4",
        tool.schema_name
    )
}

/// The caller's entries of `tool` in id order (oldest first); with `everyone`, every entry of
/// the organization (tool admins only). Optionally only those with `status`.
pub async fn list(
    tx: &mut OrgTx,
    tool: &Tool,
    everyone: bool,
    status: Option<Status>,
    page: &PageParams,
) -> Result<Page<Entry>> {
    let org = tx.org();
    let level = if everyone {
        AccessLevel::Admin
    } else {
        AccessLevel::View
    };
    require_access(tx, tool, level).await?;
    let statuses: Vec<&str> = match status {
        Some(status) => vec![status.as_str()],
        None => Status::ALL.map(Status::as_str).to_vec(),
    };
    let me = if everyone { None } else { tx.user_id().await? };
    let sql = list_sql(tool, everyone);
    let mut query = sqlx::query_as(&sql)
        .persistent(false)
        .bind(org)
        .bind(&statuses)
        .bind(page.after())
        .bind(page.fetch_limit());
    if !everyone {
        query = query.bind(me);
    }
    let rows: Vec<Entry> = query.fetch_all(tx.conn()).await?;
    Ok(Page::from_rows(rows, page, |e| e.id))
}

/// What a change sets.
enum Change<'a> {
    Data(&'a Value),
    Status(Status),
}

/// Applies `what` to the entry when it is still at `version`. A stale version is a conflict
/// naming the current one; an entry the caller can see but not change is 403; one they cannot
/// see, 404.
async fn change(
    tx: &mut OrgTx,
    tool: &Tool,
    id: Uuid,
    version: i32,
    what: Change<'_>,
) -> Result<Entry> {
    let org = tx.org();
    let column = match what {
        Change::Data(_) => "data",
        Change::Status(_) => "status",
    };
    let sql = format!(
        r"UPDATE {}.tool_data SET {column} = $4 WHERE organization_id = $1 AND id = $2 AND version = $3
         RETURNING {ENTRY_COLUMNS}",
        tool.schema_name
    );
    let query = sqlx::query_as(&sql).bind(org).bind(id).bind(version);
    let query = match what {
        Change::Data(data) => query.bind(data),
        Change::Status(status) => query.bind(status.as_str()),
    };
    let changed: Option<Entry> = query
        .fetch_optional(tx.conn())
        .await
        .on_constraint(STATUS_TRANSITION, invalid_transition)?;
    if let Some(entry) = changed {
        return Ok(entry);
    }
    let current = get(tx, tool, id).await?;
    if current.version != version {
        return Err(Error::StaleVersion {
            current: current.version,
        });
    }
    Err(Error::Forbidden("only the entry's author may change it"))
}

/// Replaces an entry's data (validated, references checked).
pub async fn update_data(
    tx: &mut OrgTx,
    catalog: &Catalog,
    tool: &Tool,
    id: Uuid,
    new: &DataChange,
) -> Result<Entry> {
    tool.validate(&new.data)?;
    require_role(tx, Role::Viewer).await?;
    check_refs(tx, catalog, tool, &new.data).await?;
    change(tx, tool, id, new.version, Change::Data(&new.data)).await
}

/// Moves an entry to another status (the database refuses moves out of order).
pub async fn set_status(
    tx: &mut OrgTx,
    tool: &Tool,
    id: Uuid,
    new: &StatusChange,
) -> Result<Entry> {
    require_role(tx, Role::Viewer).await?;
    change(tx, tool, id, new.version, Change::Status(new.status)).await
}

/// Every change of an entry, oldest first (visible as the entry is).
pub async fn history(tx: &mut OrgTx, tool: &Tool, id: Uuid) -> Result<Vec<HistoryItem>> {
    let org = tx.org();
    get(tx, tool, id).await?;
    Ok(sqlx::query_as(&format!(
        r"SELECT version, action, user_id, changes, occurred_at FROM {}.audit_log
          WHERE organization_id = $1 AND tool_data_id = $2 ORDER BY version, occurred_at",
        tool.schema_name
    ))
    .bind(org)
    .bind(id)
    .fetch_all(tx.conn())
    .await?)
}

/// The organization's report (admins), from the views `tenantry tools refresh-reports` keeps.
pub async fn report(tx: &mut OrgTx) -> Result<Vec<ReportLine>> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    Ok(sqlx::query_as(
        r"SELECT tool_slug, draft, in_progress, completed, submitted, last_change, members,
                members_completed, average_progress::float8 AS average_progress
           FROM tool_access.report($1)",
    )
    .bind(org)
    .fetch_all(tx.conn())
    .await?)
}

/// The grants of `org` the caller may see (admins: all; members: their own).
pub async fn grants(tx: &mut OrgTx) -> Result<Vec<Grant>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    Ok(sqlx::query_as(
        r"SELECT id, user_id, tool_slug AS tool, access_level, granted_at, expires_at, granted_by
           FROM tool_access.permissions WHERE organization_id = $1 ORDER BY tool_slug, user_id",
    )
    .bind(org)
    .fetch_all(tx.conn())
    .await?)
}

/// Grants (or changes) a member's access to a tool (admins).
pub async fn grant(tx: &mut OrgTx, catalog: &Catalog, new: &NewGrant) -> Result<Grant> {
    let org = tx.org();
    let tool = catalog
        .get(&new.tool)
        .map_err(|_| Error::invalid("tool", "no tool has this slug"))?;
    require_role(tx, Role::Admin).await?;
    Ok(sqlx::query_as(
        r"INSERT INTO tool_access.permissions (organization_id, user_id, tool_slug, access_level, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (organization_id, user_id, tool_slug) DO UPDATE
            SET access_level = excluded.access_level, expires_at = excluded.expires_at
         RETURNING id, user_id, tool_slug AS tool, access_level, granted_at, expires_at, granted_by",
    )
    .bind(org)
    .bind(new.user_id)
    .bind(&tool.slug)
    .bind(new.access_level.as_str())
    .bind(new.expires_at)
    .fetch_one(tx.conn())
    .await?)
}

/// Revokes a grant (admins).
pub async fn revoke(tx: &mut OrgTx, id: Uuid) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let done =
        sqlx::query(r"DELETE FROM tool_access.permissions WHERE organization_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .execute(tx.conn())
            .await?;
    done.found()?;
    Ok(())
}

/// Columns of a tool's own table that a client sets (the keys and creation time are the
/// database's).
async fn writable_columns(tx: &mut TenantTx, tool: &Tool, table: &str) -> Result<Vec<Column>> {
    Ok(sqlx::query_as(
        r"SELECT column_name::text AS name, data_type::text AS data_type,
                character_maximum_length::int AS max_length, is_nullable = 'YES' AS nullable,
                column_default IS NOT NULL AS has_default
           FROM information_schema.columns
          WHERE table_schema = $1 AND table_name = $2
            AND column_name NOT IN ('id', 'organization_id', 'tool_data_id', 'created_at')
          ORDER BY ordinal_position",
    )
    .bind(&tool.schema_name)
    .bind(table)
    .fetch_all(tx.conn())
    .await?)
}

/// Rows of one entry in one of its tool's own tables.
pub struct EntryRows<'a> {
    pub tool: &'a Tool,
    /// A name from the tool's manifest (checked by [`Tool::table`]).
    pub table: &'a str,
    pub entry: Uuid,
}

impl EntryRows<'_> {
    fn table(&self) -> String {
        format!("{}.{}", self.tool.schema_name, self.table)
    }

    /// The entry, which must still be open to changes for its rows to change. Locked (shared)
    /// until the transaction ends, so it cannot be submitted while its rows change.
    async fn require_open(&self, tx: &mut OrgTx) -> Result<()> {
        let org = tx.org();
        let status: Option<String> = sqlx::query_scalar(&format!(
            r"SELECT status FROM {}.tool_data WHERE organization_id = $1 AND id = $2 FOR SHARE",
            self.tool.schema_name
        ))
        .bind(org)
        .bind(self.entry)
        .fetch_optional(tx.conn())
        .await?;
        match status.as_deref() {
            None => Err(Error::NotFound),
            Some(s) if s == Status::Submitted.as_str() => Err(Error::Conflict {
                code: "invalid_transition",
                detail: "a submitted entry cannot change".into(),
            }),
            Some(_) => Ok(()),
        }
    }

    /// The fields of `row` to write (checked against their columns), after checking that the
    /// entry is open.
    async fn columns_to_write(
        &self,
        tx: &mut OrgTx,
        row: &Value,
        inserting: bool,
    ) -> Result<Vec<String>> {
        let writable = writable_columns(tx, self.tool, self.table).await?;
        let columns = columns::chosen(row, &writable, inserting)?;
        self.require_open(tx).await?;
        Ok(columns)
    }
}

/// The rows, oldest first (visible as the entry is).
pub async fn rows(tx: &mut OrgTx, of: &EntryRows<'_>) -> Result<Vec<Value>> {
    let org = tx.org();
    get(tx, of.tool, of.entry).await?;
    Ok(sqlx::query_scalar(&format!(
        r"SELECT to_jsonb(r) FROM {} r WHERE organization_id = $1 AND tool_data_id = $2 ORDER BY id",
        of.table()
    ))
    .bind(org)
    .bind(of.entry)
    .fetch_all(tx.conn())
    .await?)
}

/// Adds a row (the entry's author, while it is not submitted); the table's own checks decide
/// what is valid.
pub async fn add_row(tx: &mut OrgTx, of: &EntryRows<'_>, row: &Value) -> Result<Value> {
    let org = tx.org();
    let columns = of.columns_to_write(tx, row, true).await?;
    // The columns named in the row, after the two the entry decides.
    let named: String = columns.iter().map(|c| format!(", {c}")).collect();
    Ok(sqlx::query_scalar(&format!(
        r"INSERT INTO {0} AS r (organization_id, tool_data_id{named})
         SELECT $1, $2{named} FROM jsonb_populate_record(NULL::{0}, $3) RETURNING to_jsonb(r)",
        of.table()
    ))
    .bind(org)
    .bind(of.entry)
    .bind(row)
    .fetch_one(tx.conn())
    .await?)
}

/// Changes the given fields of one row.
pub async fn update_row(
    tx: &mut OrgTx,
    of: &EntryRows<'_>,
    id: Uuid,
    row: &Value,
) -> Result<Value> {
    let org = tx.org();
    let columns = of.columns_to_write(tx, row, false).await?;
    if columns.is_empty() {
        return Err(Error::invalid("body", "name at least one field to change"));
    }
    let list = columns.join(", ");
    let changed: Option<Value> = sqlx::query_scalar(&format!(
        r"UPDATE {} AS r SET ({list}) = (SELECT {list} FROM jsonb_populate_record(r, $4))
          WHERE organization_id = $1 AND tool_data_id = $2 AND id = $3 RETURNING to_jsonb(r)",
        of.table()
    ))
    .bind(org)
    .bind(of.entry)
    .bind(id)
    .bind(row)
    .fetch_optional(tx.conn())
    .await?;
    changed.found()
}

/// Removes one row.
pub async fn delete_row(tx: &mut OrgTx, of: &EntryRows<'_>, id: Uuid) -> Result<()> {
    let org = tx.org();
    of.require_open(tx).await?;
    let done = sqlx::query(&format!(
        r"DELETE FROM {} WHERE organization_id = $1 AND tool_data_id = $2 AND id = $3",
        of.table()
    ))
    .bind(org)
    .bind(of.entry)
    .bind(id)
    .execute(tx.conn())
    .await?;
    done.found()?;
    Ok(())
}
