//! SQL of customers and their custom fields.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{
    normalized_tags, CustomField, CustomFieldChanges, Customer, CustomerChanges, CustomerSource,
    CustomerStatus, NewCustomField, NewCustomer,
};
use crate::kernel::access::{require_role, Role};
use crate::kernel::error::{Found, OnConstraint, Result};
use crate::kernel::input::{email_as_stored, Valid};
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Limit, SortCursor, Sorted, SortedPage};
use crate::text_enum;

const COLUMNS: &str = r"c.id, c.name, c.email, c.phone, c.company, c.status, c.source, c.tags,
    c.custom_fields, c.assigned_to, c.created_at, c.updated_at";

const EMAIL_TAKEN: &str = "a customer with this email exists in this organization";

const NOT_MEMBER: &str = "must be a member of this organization";

pub async fn get(tx: &mut OrgTx, id: Uuid) -> Result<Customer> {
    let org = tx.org();
    sqlx::query_as(&format!(
        r"SELECT {COLUMNS} FROM customers c WHERE c.organization_id = $1 AND c.id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .found()
}

pub async fn create(tx: &mut OrgTx, new: &Valid<NewCustomer>) -> Result<Customer> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let tags = normalized_tags(new.tags.as_deref().unwrap_or_default());
    sqlx::query_as(&format!(
        r"INSERT INTO customers AS c (id, organization_id, name, email, phone, company, status, source,
                                     tags, custom_fields, assigned_to)
          VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, 'lead'), coalesce($8, 'other'), $9,
                  coalesce($10, '{{}}'), $11)
          RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(org)
    .bind(new.name.trim())
    .bind(new.email.as_deref().map(email_as_stored))
    .bind(new.phone.as_deref().map(str::trim))
    .bind(new.company.as_deref().map(str::trim))
    .bind(new.status.map(CustomerStatus::as_str))
    .bind(new.source.map(CustomerSource::as_str))
    .bind(&tags)
    .bind(new.custom_fields.as_ref())
    .bind(new.assigned_to)
    .fetch_one(tx.conn())
    .await
    .on_conflict("customers_email", "email_taken", EMAIL_TAKEN)
    .on_field("customers_assignee", "assigned_to", NOT_MEMBER)
}

pub async fn update(
    tx: &mut OrgTx,
    id: Uuid,
    changes: &Valid<CustomerChanges>,
) -> Result<Customer> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let tags = changes.tags.as_deref().map(normalized_tags);
    sqlx::query_as(&format!(
        r"UPDATE customers c SET name = coalesce($3, c.name),
            email = CASE WHEN $4 THEN $5 ELSE c.email END,
            phone = CASE WHEN $6 THEN $7 ELSE c.phone END,
            company = CASE WHEN $8 THEN $9 ELSE c.company END,
            status = coalesce($10, c.status),
            source = coalesce($11, c.source),
            tags = coalesce($12, c.tags),
            custom_fields = CASE WHEN $13::jsonb IS NULL THEN c.custom_fields
                                 ELSE jsonb_strip_nulls(c.custom_fields || $13::jsonb) END,
            assigned_to = CASE WHEN $14 THEN $15 ELSE c.assigned_to END
          WHERE c.organization_id = $1 AND c.id = $2
          RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(id)
    .bind(changes.name.as_deref().map(str::trim))
    .bind(changes.email.is_some())
    .bind(
        changes
            .email
            .clone()
            .flatten()
            .as_deref()
            .map(email_as_stored),
    )
    .bind(changes.phone.is_some())
    .bind(changes.phone.clone().flatten().as_deref().map(str::trim))
    .bind(changes.company.is_some())
    .bind(changes.company.clone().flatten().as_deref().map(str::trim))
    .bind(changes.status.map(CustomerStatus::as_str))
    .bind(changes.source.map(CustomerSource::as_str))
    .bind(tags)
    .bind(changes.custom_fields.as_ref())
    .bind(changes.assigned_to.is_some())
    .bind(changes.assigned_to.flatten())
    .fetch_optional(tx.conn())
    .await
    .on_conflict("customers_email", "email_taken", EMAIL_TAKEN)
    .on_field("customers_assignee", "assigned_to", NOT_MEMBER)?
    .found()
}

/// Deletes a customer for good (admins); its projects stay, without a customer.
pub async fn delete(tx: &mut OrgTx, id: Uuid) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    sqlx::query(r"DELETE FROM customers WHERE organization_id = $1 AND id = $2")
        .bind(org)
        .bind(id)
        .execute(tx.conn())
        .await?
        .found()?;
    Ok(())
}

text_enum! {
    /// The order of a customer list: by name, creation or last change (`-` for descending), or
    /// by how well they match `q` (the default when `q` is given).
    pub enum CustomerSort {
        Name = "name", NameDesc = "-name", Created = "created", CreatedDesc = "-created",
        Updated = "updated", UpdatedDesc = "-updated", Relevance = "relevance",
    }
}

impl CustomerSort {
    /// The sort key's SQL (`$q` stands for the search text), its type, and whether it descends.
    fn key(self) -> (&'static str, &'static str, bool) {
        match self {
            CustomerSort::Name => ("c.name", "text", false),
            CustomerSort::NameDesc => ("c.name", "text", true),
            CustomerSort::Created => ("c.created_at", "timestamptz", false),
            CustomerSort::CreatedDesc => ("c.created_at", "timestamptz", true),
            CustomerSort::Updated => ("c.updated_at", "timestamptz", false),
            CustomerSort::UpdatedDesc => ("c.updated_at", "timestamptz", true),
            CustomerSort::Relevance => ("word_similarity($q, c.search_text)", "real", true),
        }
    }
}

/// Whose customers: the caller's own, or a member's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Assignee {
    Me,
    User(Uuid),
}

/// What a customer list asks for; every part is optional and they all apply together.
#[derive(Debug, Clone)]
pub struct CustomerFilter {
    /// Free text: substrings and near misses of words in name, email and company.
    pub q: Option<String>,
    pub statuses: Vec<CustomerStatus>,
    pub sources: Vec<CustomerSource>,
    pub tags_any: Vec<String>,
    pub tags_all: Vec<String>,
    pub assigned_to: Option<Assignee>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub updated_after: Option<DateTime<Utc>>,
    pub updated_before: Option<DateTime<Utc>>,
    /// Custom field values the customer must hold (JSON containment).
    pub custom: Option<Value>,
    pub sort: CustomerSort,
    pub limit: Limit,
    pub after: Option<SortCursor>,
}

impl CustomerFilter {
    /// Every customer, in `sort` order, a default page at a time (add filters to taste).
    pub fn all(sort: CustomerSort) -> Self {
        Self {
            q: None,
            statuses: Vec::new(),
            sources: Vec::new(),
            tags_any: Vec::new(),
            tags_all: Vec::new(),
            assigned_to: None,
            created_after: None,
            created_before: None,
            updated_after: None,
            updated_before: None,
            custom: None,
            sort,
            limit: Limit::DEFAULT,
            after: None,
        }
    }
}

/// One page of the organization's customers matching `filter`. Planned for its own values every
/// time (not prepared): which index serves best depends on the filters and the organization's size.
pub async fn list(tx: &mut OrgTx, filter: &CustomerFilter) -> Result<SortedPage<Customer>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let rows: Vec<Sorted<Customer>> = list_query(org, filter)
        .build_query_as()
        .persistent(false)
        .fetch_all(tx.conn())
        .await?;
    Ok(SortedPage::from_rows(
        rows,
        filter.limit,
        filter.sort.as_str(),
        |c| c.id,
    ))
}

/// The SQL of [`list`] with its values bound (for benchmarks too): rows of
/// [`Sorted<Customer>`], one past the page.
pub fn list_query(org: Uuid, filter: &CustomerFilter) -> QueryBuilder<'static, Postgres> {
    prefixed_list_query("", org, filter)
}

/// [`list_query`] after `prefix` (an `EXPLAIN …`, for plan tests and benchmarks).
pub fn prefixed_list_query(
    prefix: &str,
    org: Uuid,
    filter: &CustomerFilter,
) -> QueryBuilder<'static, Postgres> {
    let q = filter.q.as_deref().map(|q| q.trim().to_lowercase());
    let (key, key_type, descending) = filter.sort.key();
    let mut sql = QueryBuilder::<Postgres>::new(format!(
        "{prefix}SELECT m.*, m.sort_value::text AS sort_key FROM (SELECT {COLUMNS}, ("
    ));
    push_key(&mut sql, key, q.as_deref());
    sql.push(") AS sort_value FROM customers c WHERE c.organization_id = ")
        .push_bind(org);
    if let Some(q) = &q {
        // Words, their parts and near misses through word similarity (the runtime pool sets
        // pg_trgm.word_similarity_threshold), served by the trigram index under RLS because
        // `<%` is declared leakproof (tenantry_db::leakproof; LIKE cannot be).
        sql.push(" AND ")
            .push_bind(q.clone())
            .push(" <% c.search_text");
    }
    if !filter.statuses.is_empty() {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        sql.push(" AND c.status = ANY (")
            .push_bind(statuses)
            .push(")");
    }
    if !filter.sources.is_empty() {
        let sources: Vec<&str> = filter.sources.iter().map(|s| s.as_str()).collect();
        sql.push(" AND c.source = ANY (")
            .push_bind(sources)
            .push(")");
    }
    if !filter.tags_any.is_empty() {
        sql.push(" AND c.tags && ")
            .push_bind(filter.tags_any.clone());
    }
    if !filter.tags_all.is_empty() {
        sql.push(" AND c.tags @> ")
            .push_bind(filter.tags_all.clone());
    }
    match filter.assigned_to {
        Some(Assignee::Me) => {
            sql.push(" AND c.assigned_to = (SELECT app.user_id())");
        }
        Some(Assignee::User(user)) => {
            sql.push(" AND c.assigned_to = ").push_bind(user);
        }
        None => {}
    }
    for (column, op, bound) in [
        ("created_at", ">=", filter.created_after),
        ("created_at", "<", filter.created_before),
        ("updated_at", ">=", filter.updated_after),
        ("updated_at", "<", filter.updated_before),
    ] {
        if let Some(bound) = bound {
            sql.push(format!(" AND c.{column} {op} ")).push_bind(bound);
        }
    }
    if let Some(custom) = &filter.custom {
        sql.push(" AND c.custom_fields @> ")
            .push_bind(custom.clone());
    }
    let (order, after) = if descending {
        ("DESC", "<")
    } else {
        ("ASC", ">")
    };
    if let Some(cursor) = &filter.after {
        sql.push(" AND (");
        push_key(&mut sql, key, q.as_deref());
        sql.push(", c.id) ")
            .push(after)
            .push(" (")
            .push_bind(cursor.key.clone())
            .push(format!("::{key_type}, "))
            .push_bind(cursor.id)
            .push(")");
    }
    // Filtered through the search index (text, tags, custom fields), the matches are found first
    // and then sorted (`OFFSET 0` keeps the planner from walking the sort's index instead): the
    // cost follows the number of matches. Walking the sort order and filtering is cheaper only
    // when matches are common in this organization, and the statistics cannot tell: they are
    // the whole table's, so a value common elsewhere but rare here would read every customer
    // of a large organization.
    if q.is_some()
        || !filter.tags_any.is_empty()
        || !filter.tags_all.is_empty()
        || filter.custom.is_some()
    {
        sql.push(" OFFSET 0");
    }
    sql.push(format!(
        ") m ORDER BY m.sort_value {order}, m.id {order} LIMIT "
    ))
    .push_bind(i64::from(filter.limit.get()) + 1);
    sql
}

/// Writes a sort key's SQL, binding the search text where it names `$q`.
fn push_key(sql: &mut QueryBuilder<'_, Postgres>, key: &str, q: Option<&str>) {
    match key.split_once("$q") {
        Some((before, after)) => {
            sql.push(before)
                .push_bind(q.unwrap_or_default().to_string())
                .push(after);
        }
        None => {
            sql.push(key);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Custom fields.

const FIELD_COLUMNS: &str = "key, label, kind, options, required, created_at, updated_at";

pub async fn fields(tx: &mut OrgTx) -> Result<Vec<CustomField>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    Ok(sqlx::query_as(&format!(
        r"SELECT {FIELD_COLUMNS} FROM customer_fields WHERE organization_id = $1 ORDER BY key"
    ))
    .bind(org)
    .fetch_all(tx.conn())
    .await?)
}

pub async fn create_field(tx: &mut OrgTx, new: &Valid<NewCustomField>) -> Result<CustomField> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    sqlx::query_as(&format!(
        r"INSERT INTO customer_fields (id, organization_id, key, label, kind, options, required)
          VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {FIELD_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(org)
    .bind(&new.key)
    .bind(new.label.trim())
    .bind(new.kind.as_str())
    .bind(new.options.as_deref())
    .bind(new.required)
    .fetch_one(tx.conn())
    .await
    .on_conflict(
        "customer_fields_key",
        "field_exists",
        "a custom field with this key exists in this organization",
    )
}

pub async fn update_field(
    tx: &mut OrgTx,
    key: &str,
    changes: &Valid<CustomFieldChanges>,
) -> Result<CustomField> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    sqlx::query_as(&format!(
        r"UPDATE customer_fields SET label = coalesce($3, label),
            options = CASE WHEN kind = 'option' THEN coalesce($4, options) ELSE options END,
            required = coalesce($5, required)
          WHERE organization_id = $1 AND key = $2 RETURNING {FIELD_COLUMNS}"
    ))
    .bind(org)
    .bind(key)
    .bind(changes.label.as_deref().map(str::trim))
    .bind(changes.options.as_deref())
    .bind(changes.required)
    .fetch_optional(tx.conn())
    .await
    .on_conflict(
        "customer_fields_in_use",
        "field_in_use",
        "customers hold a value among the options taken away; change them first",
    )?
    .found()
}

/// Removes a custom field. While customers hold values of it, only with `clear_values` (which
/// removes those values too); otherwise 409 `field_in_use`.
pub async fn delete_field(tx: &mut OrgTx, key: &str, clear_values: bool) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    if clear_values {
        // Not required any more first, so that taking the values away is allowed.
        sqlx::query(
            r"UPDATE customer_fields SET required = false WHERE organization_id = $1 AND key = $2",
        )
        .bind(org)
        .bind(key)
        .execute(tx.conn())
        .await?;
        sqlx::query(
            r"UPDATE customers SET custom_fields = custom_fields - $2
               WHERE organization_id = $1 AND custom_fields ? $2",
        )
        .bind(org)
        .bind(key)
        .execute(tx.conn())
        .await?;
    }
    sqlx::query(r"DELETE FROM customer_fields WHERE organization_id = $1 AND key = $2")
        .bind(org)
        .bind(key)
        .execute(tx.conn())
        .await
        .on_conflict(
            "customer_fields_in_use",
            "field_in_use",
            "customers hold values of this field; delete with clear_values=true to remove them too",
        )?
        .found()?;
    Ok(())
}
