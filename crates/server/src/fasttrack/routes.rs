//! HTTP routes of Fast Track tools under `/v1/orgs/{org}/tools` and `/v1/orgs/{org}/tool-grants`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{
    store, ArchivedEntry, DataChange, Entry, Grant, HistoryItem, MyEntry, NewEntry, NewGrant,
    ReportLine, Status, StatusChange, ToolDetail, ToolSummary,
};
use crate::http::{AppState, Conflict, Forbidden, Invalid, Json, NotFound, Path, Problem, Query};
use crate::kernel::access::Module;
use crate::kernel::error::Result;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Limit, Page, PageParams};

const MODULE: Module = Module::Fasttrack;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tools))
        .routes(routes!(get_tool))
        .routes(routes!(list_entries, create_entry))
        .routes(routes!(get_entry, update_entry))
        .routes(routes!(change_status))
        .routes(routes!(entry_history))
        .routes(routes!(list_grants, put_grant))
        .routes(routes!(revoke_grant))
        .routes(routes!(tool_report))
        .routes(routes!(list_archived))
        .routes(routes!(my_entries))
        .routes(routes!(list_rows, add_row))
        .routes(routes!(update_row, delete_row))
        .layer(axum::Extension(MODULE))
}

/// The tool and table named in the path (404 for names outside the catalog).
fn rows_of<'a>(
    state: &'a AppState,
    tool: &str,
    table: &str,
    entry: Uuid,
) -> Result<store::EntryRows<'a>> {
    let tool = state.tools.get(tool)?;
    Ok(store::EntryRows {
        tool,
        table: tool.table(table)?,
        entry,
    })
}

/// The rows of an entry in one of its tool's own tables (e.g. `hypotheses`), oldest first.
#[utoipa::path(get, path = "/v1/orgs/{org}/tools/{tool}/entries/{entry}/{table}", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("tool" = String, Path, description = "Tool slug"),
           ("entry" = Uuid, Path, description = "Entry id"), ("table" = String, Path, description = "One of the tool's `tables`")),
    responses((status = 200, body = Vec<serde_json::Value>), NotFound))]
pub async fn list_rows(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Path((_org, tool, entry, table)): Path<(Uuid, String, Uuid, String)>,
) -> Result<Json<Vec<serde_json::Value>>> {
    let of = rows_of(&state, &tool, &table, entry)?;
    let rows = store::rows(&mut tx, &of).await?;
    tx.commit().await?;
    Ok(Json(rows))
}

/// Add a row to an entry (its author, until the entry is submitted). Fields are the table's
/// columns; its checks decide what is valid (422 naming the field).
#[utoipa::path(post, path = "/v1/orgs/{org}/tools/{tool}/entries/{entry}/{table}", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("tool" = String, Path, description = "Tool slug"),
           ("entry" = Uuid, Path, description = "Entry id"), ("table" = String, Path, description = "One of the tool's `tables`")),
    request_body = Object,
    responses(
        (status = 201, body = serde_json::Value),
        NotFound,
        (status = 409, description = "the entry is submitted", body = Problem, content_type = "application/problem+json"),
        Invalid,
    ))]
pub async fn add_row(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Path((_org, tool, entry, table)): Path<(Uuid, String, Uuid, String)>,
    Json(row): Json<serde_json::Value>,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    let of = rows_of(&state, &tool, &table, entry)?;
    let added = store::add_row(&mut tx, &of, &row).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// Change fields of one row of an entry.
#[utoipa::path(patch, path = "/v1/orgs/{org}/tools/{tool}/entries/{entry}/{table}/{row}", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("tool" = String, Path, description = "Tool slug"),
           ("entry" = Uuid, Path, description = "Entry id"), ("table" = String, Path, description = "One of the tool's `tables`"),
           ("row" = Uuid, Path, description = "Row id")),
    request_body = Object,
    responses(
        (status = 200, body = serde_json::Value),
        NotFound,
        Conflict,
        Invalid,
    ))]
pub async fn update_row(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Path((_org, tool, entry, table, row)): Path<(Uuid, String, Uuid, String, Uuid)>,
    Json(fields): Json<serde_json::Value>,
) -> Result<Json<serde_json::Value>> {
    let of = rows_of(&state, &tool, &table, entry)?;
    let updated = store::update_row(&mut tx, &of, row, &fields).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Remove one row of an entry.
#[utoipa::path(delete, path = "/v1/orgs/{org}/tools/{tool}/entries/{entry}/{table}/{row}", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("tool" = String, Path, description = "Tool slug"),
           ("entry" = Uuid, Path, description = "Entry id"), ("table" = String, Path, description = "One of the tool's `tables`"),
           ("row" = Uuid, Path, description = "Row id")),
    responses(
        (status = 204),
        NotFound,
        Conflict,
    ))]
pub async fn delete_row(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Path((_org, tool, entry, table, row)): Path<(Uuid, String, Uuid, String, Uuid)>,
) -> Result<StatusCode> {
    let of = rows_of(&state, &tool, &table, entry)?;
    store::delete_row(&mut tx, &of, row).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MyEntriesParams {
    /// Entries to return, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
}

/// My latest entries across every tool, newest first, each with my progress on its tool.
#[utoipa::path(get, path = "/v1/orgs/{org}/tool-entries", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), MyEntriesParams),
    responses((status = 200, body = Vec<MyEntry>), NotFound))]
pub async fn my_entries(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Query(params): Query<MyEntriesParams>,
) -> Result<Json<Vec<MyEntry>>> {
    let entries = store::my_entries(
        &mut tx,
        &state.tools,
        params.limit.unwrap_or(Limit::DEFAULT),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(entries))
}

/// Entries per tool and status, and members' progress, for the organization's admins (as of the
/// last `tenantry tools refresh-reports`).
#[utoipa::path(get, path = "/v1/orgs/{org}/tool-report", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses(
        (status = 200, body = Vec<ReportLine>),
        Forbidden,
        NotFound,
    ))]
pub async fn tool_report(mut tx: OrgTx) -> Result<Json<Vec<ReportLine>>> {
    let lines = store::report(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(lines))
}

/// The tool's archived entries in the organization, with their own-table rows (organization
/// admins; archival and restore are `tenantry tools archive` and `restore`).
#[utoipa::path(get, path = "/v1/orgs/{org}/tools/{tool}/archive", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("tool" = String, Path, description = "Tool slug"), PageParams),
    responses(
        (status = 200, body = Page<ArchivedEntry>),
        Forbidden,
        NotFound,
    ))]
pub async fn list_archived(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Path((_org, tool)): Path<(Uuid, String)>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<ArchivedEntry>>> {
    let tool = state.tools.get(&tool)?;
    let archived = store::archived(&mut tx, tool, &page).await?;
    tx.commit().await?;
    Ok(Json(archived))
}

/// Every tool, with the caller's access and progress.
#[utoipa::path(get, path = "/v1/orgs/{org}/tools", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses((status = 200, body = Vec<ToolSummary>), NotFound))]
pub async fn list_tools(mut tx: OrgTx) -> Result<Json<Vec<ToolSummary>>> {
    let tools = store::tools(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(tools))
}

/// One tool with the caller's access and progress, its data's JSON Schema, its references to
/// other tools and its own tables' columns: what a client needs to build its form.
#[utoipa::path(get, path = "/v1/orgs/{org}/tools/{tool}", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("tool" = String, Path, description = "Tool slug")),
    responses((status = 200, body = ToolDetail), NotFound))]
pub async fn get_tool(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Path((_org, tool)): Path<(Uuid, String)>,
) -> Result<Json<ToolDetail>> {
    let tool = state.tools.get(&tool)?;
    let detail = store::tool(&mut tx, tool).await?;
    tx.commit().await?;
    Ok(Json(detail))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntryListParams {
    /// Every member's entries (tool admins) instead of the caller's own.
    #[serde(default)]
    pub all: bool,
    pub status: Option<Status>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    pub after: Option<Uuid>,
}

/// The caller's entries of a tool, or with `all=true` everyone's (tool admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/tools/{tool}/entries", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("tool" = String, Path, description = "Tool slug"), EntryListParams),
    responses(
        (status = 200, body = Page<Entry>),
        Forbidden,
        NotFound,
    ))]
pub async fn list_entries(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Path((_org, tool)): Path<(Uuid, String)>,
    Query(params): Query<EntryListParams>,
) -> Result<Json<Page<Entry>>> {
    let tool = state.tools.get(&tool)?;
    let page = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let entries = store::list(&mut tx, tool, params.all, params.status, &page).await?;
    tx.commit().await?;
    Ok(Json(entries))
}

/// Start an entry (needs an edit grant, or organization admin). `data` must match the tool's
/// schema; failures are named by JSON path.
#[utoipa::path(post, path = "/v1/orgs/{org}/tools/{tool}/entries", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("tool" = String, Path, description = "Tool slug")),
    request_body = NewEntry,
    responses(
        (status = 201, body = Entry),
        Forbidden,
        NotFound,
        (status = 409, description = "a status a new entry cannot start in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "data not valid for the tool, or a reference to an entry that is not yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_entry(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Path((_org, tool)): Path<(Uuid, String)>,
    Json(new): Json<NewEntry>,
) -> Result<(StatusCode, Json<Entry>)> {
    let tool = state.tools.get(&tool)?;
    let entry = store::create(&mut tx, &state.tools, tool, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// One entry (its author, or the tool's admins).
#[utoipa::path(get, path = "/v1/orgs/{org}/tools/{tool}/entries/{entry}", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("tool" = String, Path, description = "Tool slug"), ("entry" = Uuid, Path, description = "Entry id")),
    responses((status = 200, body = Entry), NotFound))]
pub async fn get_entry(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Path((_org, tool, entry)): Path<(Uuid, String, Uuid)>,
) -> Result<Json<Entry>> {
    let tool = state.tools.get(&tool)?;
    let found = store::get(&mut tx, tool, entry).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Replace an entry's data, naming the version it was read at: a stale version is 409 with
/// `current_version` and changes nothing.
#[utoipa::path(patch, path = "/v1/orgs/{org}/tools/{tool}/entries/{entry}", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("tool" = String, Path, description = "Tool slug"), ("entry" = Uuid, Path, description = "Entry id")),
    request_body = DataChange,
    responses(
        (status = 200, body = Entry),
        Forbidden,
        NotFound,
        (status = 409, description = "stale version, or the entry is submitted", body = Problem, content_type = "application/problem+json"),
        Invalid,
    ))]
pub async fn update_entry(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Path((_org, tool, entry)): Path<(Uuid, String, Uuid)>,
    Json(change): Json<DataChange>,
) -> Result<Json<Entry>> {
    let tool = state.tools.get(&tool)?;
    let updated = store::update_data(&mut tx, &state.tools, tool, entry, &change).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Move an entry to another status: draft → in_progress → completed → submitted (completed may
/// go back to in_progress; submitted is final). Other moves are 409 `invalid_transition`.
#[utoipa::path(post, path = "/v1/orgs/{org}/tools/{tool}/entries/{entry}/status", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("tool" = String, Path, description = "Tool slug"), ("entry" = Uuid, Path, description = "Entry id")),
    request_body = StatusChange,
    responses(
        (status = 200, body = Entry),
        Forbidden,
        NotFound,
        (status = 409, description = "stale version or invalid transition", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_status(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Path((_org, tool, entry)): Path<(Uuid, String, Uuid)>,
    Json(change): Json<StatusChange>,
) -> Result<Json<Entry>> {
    let tool = state.tools.get(&tool)?;
    let updated = store::set_status(&mut tx, tool, entry, &change).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Every change of an entry, oldest first: any earlier version can be rebuilt from it.
#[utoipa::path(get, path = "/v1/orgs/{org}/tools/{tool}/entries/{entry}/history", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("tool" = String, Path, description = "Tool slug"), ("entry" = Uuid, Path, description = "Entry id")),
    responses((status = 200, body = Vec<HistoryItem>), NotFound))]
pub async fn entry_history(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Path((_org, tool, entry)): Path<(Uuid, String, Uuid)>,
) -> Result<Json<Vec<HistoryItem>>> {
    let tool = state.tools.get(&tool)?;
    let items = store::history(&mut tx, tool, entry).await?;
    tx.commit().await?;
    Ok(Json(items))
}

/// Tool grants: admins see all of the organization's, members their own.
#[utoipa::path(get, path = "/v1/orgs/{org}/tool-grants", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses((status = 200, body = Vec<Grant>), NotFound))]
pub async fn list_grants(mut tx: OrgTx) -> Result<Json<Vec<Grant>>> {
    let grants = store::grants(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(grants))
}

/// Grant a member access to a tool, or change their grant (admins).
#[utoipa::path(put, path = "/v1/orgs/{org}/tool-grants", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    request_body = NewGrant,
    responses(
        (status = 200, body = Grant),
        Forbidden,
        NotFound,
        (status = 422, description = "unknown tool, or not a member", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_grant(
    mut tx: OrgTx,
    State(state): State<AppState>,
    Json(new): Json<NewGrant>,
) -> Result<Json<Grant>> {
    let grant = store::grant(&mut tx, &state.tools, &new).await?;
    tx.commit().await?;
    Ok(Json(grant))
}

/// Revoke a grant (admins).
#[utoipa::path(delete, path = "/v1/orgs/{org}/tool-grants/{grant}", tag = "fasttrack", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("grant" = Uuid, Path, description = "Grant id")),
    responses(
        (status = 204),
        Forbidden,
        NotFound,
    ))]
pub async fn revoke_grant(
    mut tx: OrgTx,
    Path((_org, grant)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::revoke(&mut tx, grant).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
