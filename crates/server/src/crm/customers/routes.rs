//! HTTP routes of customers under `/v1/orgs/{org}/customers` and of their custom fields under
//! `/v1/orgs/{org}/customer-fields`.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::store::{self, Assignee, CustomerFilter, CustomerSort};
use super::{
    CustomField, CustomFieldChanges, Customer, CustomerChanges, CustomerSource, CustomerStatus,
    NewCustomField, NewCustomer,
};
use crate::crm::comma_list;
use crate::http::{AppState, Conflict, Forbidden, Invalid, Json, NotFound, Path, Query, TooLarge};
use crate::kernel::access::Module;
use crate::kernel::error::{Error, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Limit, SortCursor, SortedPage};

const MODULE: Module = Module::Crm;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_customers, create_customer))
        .routes(routes!(get_customer, update_customer, delete_customer))
        .routes(routes!(list_fields, create_field))
        .routes(routes!(update_field, delete_field))
        .routes(routes!(export_customers))
        .layer(axum::Extension(MODULE))
}

/// Routes that take a long body and time: the CSV import.
pub fn bulk_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import_customers))
        .layer(axum::Extension(MODULE))
}

/// The largest CSV an import reads (held in memory: it is checked whole before any write).
const IMPORT_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Every customer as CSV (`id`, the fields, `tags` separated by `;`, timestamps, then one
/// `custom.<key>` column per custom field); it imports into another organization unchanged.
#[utoipa::path(get, path = "/v1/orgs/{org}/customers.csv", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        NotFound,
    ))]
pub async fn export_customers(
    mut tx: OrgTx,
) -> Result<([(axum::http::HeaderName, &'static str); 2], String)> {
    let csv = super::csv::export(&mut tx).await?;
    tx.commit().await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"customers.csv\"",
            ),
        ],
        csv,
    ))
}

/// Create customers from CSV (members): all rows or none, every problem named `rows[i].<field>`
/// (the first 100). Columns as the export writes them; only `name` is required; `id` and the
/// timestamps are read past.
#[utoipa::path(post, path = "/v1/orgs/{org}/customers/import", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    request_body(description = "The CSV, with a header", content(("text/csv"))),
    responses(
        (status = 200, body = super::csv::Imported),
        (status = 400, description = "not CSV (broken quoting, no header, not UTF-8)", body = crate::http::Problem, content_type = "application/problem+json"),
        Forbidden,
        NotFound,
        TooLarge,
        Invalid,
    ))]
pub async fn import_customers(
    mut tx: OrgTx,
    body: axum::body::Body,
) -> Result<Json<super::csv::Imported>> {
    let bytes = axum::body::to_bytes(body, IMPORT_MAX_BYTES)
        .await
        .map_err(|_| Error::PayloadTooLarge)?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::BadRequest("the CSV is not UTF-8".into()))?;
    let imported = super::csv::import(&mut tx, &text).await?;
    tx.commit().await?;
    Ok(Json(imported))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerListParams {
    /// Free text over name, email and company: parts of words and near misses match.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Comma-separated statuses (`lead,prospect`).
    pub status: Option<String>,
    /// Comma-separated sources.
    pub source: Option<String>,
    /// Comma-separated tags: customers with any of them.
    pub tags_any: Option<String>,
    /// Comma-separated tags: customers with all of them.
    pub tags_all: Option<String>,
    /// A member's user id, or `me`.
    pub assigned_to: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub updated_after: Option<DateTime<Utc>>,
    pub updated_before: Option<DateTime<Utc>>,
    /// Custom field values to match, as a JSON object: `{"industry":"saas"}`.
    pub custom: Option<String>,
    /// `name`, `-name`, `created`, `-created`, `updated`, `-updated` or `relevance` (needs `q`;
    /// the default with `q`, `name` without).
    pub sort: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    /// The `next_cursor` of the previous page (same `sort`).
    pub after: Option<String>,
}

impl CustomerListParams {
    fn into_filter(self) -> Result<CustomerFilter> {
        let q = self.q.filter(|q| !q.trim().is_empty());
        if q.as_ref().is_some_and(|q| q.chars().count() > 200) {
            return Err(Error::BadRequest("q: at most 200 characters".into()));
        }
        let sort = match self.sort.as_deref() {
            Some(sort) => sort
                .parse()
                .map_err(|e| Error::BadRequest(format!("sort: {e}")))?,
            None if q.is_some() => CustomerSort::Relevance,
            None => CustomerSort::Name,
        };
        if sort == CustomerSort::Relevance && q.is_none() {
            return Err(Error::BadRequest("sort: relevance needs q".into()));
        }
        let assigned_to = match self.assigned_to.as_deref() {
            None => None,
            Some("me") => Some(Assignee::Me),
            Some(id) => Some(Assignee::User(id.parse().map_err(|_| {
                Error::BadRequest("assigned_to: a user id or `me`".into())
            })?)),
        };
        let custom = match self.custom.as_deref() {
            None => None,
            Some(json) => match serde_json::from_str::<serde_json::Value>(json) {
                Ok(value) if value.is_object() => Some(value),
                _ => return Err(Error::BadRequest("custom: a JSON object".into())),
            },
        };
        let after = self
            .after
            .as_deref()
            .map(|a| SortCursor::decode(a, sort.as_str()))
            .transpose()?;
        let tags = |param, value: Option<String>| -> Result<Vec<String>> {
            let tags: Vec<String> = comma_list(param, value.as_deref())?;
            Ok(super::normalized_tags(&tags))
        };
        Ok(CustomerFilter {
            statuses: comma_list::<CustomerStatus>("status", self.status.as_deref())?,
            sources: comma_list::<CustomerSource>("source", self.source.as_deref())?,
            tags_any: tags("tags_any", self.tags_any)?,
            tags_all: tags("tags_all", self.tags_all)?,
            q,
            assigned_to,
            created_after: self.created_after,
            created_before: self.created_before,
            updated_after: self.updated_after,
            updated_before: self.updated_before,
            custom,
            sort,
            limit: self.limit.unwrap_or(Limit::DEFAULT),
            after,
        })
    }
}

/// Customers of the organization: search, filters, three orders, cursor pages.
#[utoipa::path(get, path = "/v1/orgs/{org}/customers", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), CustomerListParams),
    responses((status = 200, body = SortedPage<Customer>), NotFound))]
pub async fn list_customers(
    mut tx: OrgTx,
    Query(params): Query<CustomerListParams>,
) -> Result<Json<SortedPage<Customer>>> {
    let filter = params.into_filter()?;
    let page = store::list(&mut tx, &filter).await?;
    tx.commit().await?;
    Ok(Json(page))
}

/// Add a customer (members).
#[utoipa::path(post, path = "/v1/orgs/{org}/customers", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = NewCustomer,
    responses(
        (status = 201, body = Customer),
        Forbidden,
        Conflict,
        Invalid,
    ))]
pub async fn create_customer(
    mut tx: OrgTx,
    new: Valid<NewCustomer>,
) -> Result<(StatusCode, Json<Customer>)> {
    let customer = store::create(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(customer)))
}

/// One customer.
#[utoipa::path(get, path = "/v1/orgs/{org}/customers/{customer}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("customer" = Uuid, Path, description = "Customer id")),
    responses((status = 200, body = Customer), NotFound))]
pub async fn get_customer(
    mut tx: OrgTx,
    Path((_org, customer)): Path<(Uuid, Uuid)>,
) -> Result<Json<Customer>> {
    let found = store::get(&mut tx, customer).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Change a customer (members).
#[utoipa::path(patch, path = "/v1/orgs/{org}/customers/{customer}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("customer" = Uuid, Path, description = "Customer id")),
    request_body = CustomerChanges,
    responses(
        (status = 200, body = Customer),
        Forbidden,
        NotFound,
        Conflict,
        Invalid,
    ))]
pub async fn update_customer(
    mut tx: OrgTx,
    Path((_org, customer)): Path<(Uuid, Uuid)>,
    changes: Valid<CustomerChanges>,
) -> Result<Json<Customer>> {
    let updated = store::update(&mut tx, customer, &changes).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Delete a customer for good (admins); their projects stay, without a customer.
#[utoipa::path(delete, path = "/v1/orgs/{org}/customers/{customer}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("customer" = Uuid, Path, description = "Customer id")),
    responses(
        (status = 204, description = "Deleted"),
        Forbidden,
        NotFound,
    ))]
pub async fn delete_customer(
    mut tx: OrgTx,
    Path((_org, customer)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::delete(&mut tx, customer).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organization's custom fields for customers, by key.
#[utoipa::path(get, path = "/v1/orgs/{org}/customer-fields", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses((status = 200, body = Vec<CustomField>), NotFound))]
pub async fn list_fields(mut tx: OrgTx) -> Result<Json<Vec<CustomField>>> {
    let fields = store::fields(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(fields))
}

/// Define a custom field (admins).
#[utoipa::path(post, path = "/v1/orgs/{org}/customer-fields", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = NewCustomField,
    responses(
        (status = 201, body = CustomField),
        Forbidden,
        Conflict,
        Invalid,
    ))]
pub async fn create_field(
    mut tx: OrgTx,
    new: Valid<NewCustomField>,
) -> Result<(StatusCode, Json<CustomField>)> {
    let field = store::create_field(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(field)))
}

/// Change a custom field's label, options or whether it is required (admins).
#[utoipa::path(patch, path = "/v1/orgs/{org}/customer-fields/{key}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("key" = String, Path, description = "Field key")),
    request_body = CustomFieldChanges,
    responses(
        (status = 200, body = CustomField),
        Forbidden,
        NotFound,
        Conflict,
        Invalid,
    ))]
pub async fn update_field(
    mut tx: OrgTx,
    Path((_org, key)): Path<(Uuid, String)>,
    changes: Valid<CustomFieldChanges>,
) -> Result<Json<CustomField>> {
    let field = store::update_field(&mut tx, &key, &changes).await?;
    tx.commit().await?;
    Ok(Json(field))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteFieldParams {
    /// Also remove the values customers hold (otherwise a field in use is 409 `field_in_use`).
    #[serde(default)]
    pub clear_values: bool,
}

/// Remove a custom field (admins).
#[utoipa::path(delete, path = "/v1/orgs/{org}/customer-fields/{key}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("key" = String, Path, description = "Field key"), DeleteFieldParams),
    responses(
        (status = 204, description = "Removed"),
        Forbidden,
        NotFound,
        Conflict,
    ))]
pub async fn delete_field(
    mut tx: OrgTx,
    Path((_org, key)): Path<(Uuid, String)>,
    Query(params): Query<DeleteFieldParams>,
) -> Result<StatusCode> {
    store::delete_field(&mut tx, &key, params.clear_values).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
