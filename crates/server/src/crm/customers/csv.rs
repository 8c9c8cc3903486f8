//! Customers as CSV: an export of every customer, and an import that creates all of its rows or
//! none, naming every bad row. An export of one organization imports into another unchanged (its
//! `id`, `created_at` and `updated_at` columns are read past: an import creates customers).
//!
//! Columns: `name, email, phone, company, status, source, tags, assigned_to` and one
//! `custom.<key>` per custom field; `tags` are separated by `;`. Only `name` is required.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use uuid::Uuid;

use super::store::fields;
use super::{Customer, CustomerSource, CustomerStatus, FieldKind, NewCustomer};
use crate::kernel::access::{require_role, Role};
use crate::kernel::csv::{field, records, unescape};
use crate::kernel::error::{Error, FieldError, Result};
use crate::kernel::input::{email_as_stored, Valid};
use crate::kernel::org_tx::OrgTx;

/// Errors named at most, as for KPI ingest.
const MAX_ERRORS: usize = 100;
/// Rows inserted per statement.
const BATCH: usize = 1000;

const COLUMNS: [&str; 8] = [
    "name",
    "email",
    "phone",
    "company",
    "status",
    "source",
    "tags",
    "assigned_to",
];
/// Written by the export, read past by the import.
const READ_PAST: [&str; 3] = ["id", "created_at", "updated_at"];

/// What an import did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Imported {
    /// Customers created (every row of the file).
    pub created: u64,
}

pub async fn export(tx: &mut OrgTx) -> Result<String> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let keys: Vec<String> = fields(tx).await?.into_iter().map(|f| f.key).collect();
    let customers: Vec<Customer> = sqlx::query_as(
        r"SELECT c.id, c.name, c.email, c.phone, c.company, c.status, c.source, c.tags,
                 c.custom_fields, c.assigned_to, c.created_at, c.updated_at
            FROM customers c WHERE c.organization_id = $1 ORDER BY c.name, c.id",
    )
    .bind(org)
    .fetch_all(tx.conn())
    .await?;
    let mut header: Vec<String> = ["id"].into_iter().map(String::from).collect();
    header.extend(COLUMNS.iter().map(|c| c.to_string()));
    header.extend(["created_at", "updated_at"].map(String::from));
    header.extend(keys.iter().map(|k| format!("custom.{k}")));
    let mut out = header.join(",") + "\n";
    for c in customers {
        let text = |t: &Option<String>| t.as_deref().map(field).unwrap_or_default();
        let mut cells = vec![
            c.id.to_string(),
            field(&c.name),
            text(&c.email),
            text(&c.phone),
            text(&c.company),
            c.status.as_str().to_string(),
            c.source.as_str().to_string(),
            field(&c.tags.join(";")),
            c.assigned_to.map(|a| a.to_string()).unwrap_or_default(),
            c.created_at.to_rfc3339(),
            c.updated_at.to_rfc3339(),
        ];
        for key in &keys {
            cells.push(match c.custom_fields.get(key) {
                Some(Value::String(s)) => field(s),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            });
        }
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// One data row read into a new customer, or what is wrong with its cells.
fn read_row(
    header: &[String],
    cells: &[String],
    kinds: &HashMap<String, FieldKind>,
) -> std::result::Result<NewCustomer, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let cell = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .map(|i| unescape(&cells[i]).trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut parsed = |name: &str, ok: std::result::Result<(), String>| {
        if let Err(message) = ok {
            problems.push((name.to_string(), message));
        }
    };
    let status = cell("status").map(|s| s.parse::<CustomerStatus>());
    let source = cell("source").map(|s| s.parse::<CustomerSource>());
    let assigned_to = cell("assigned_to").map(|a| a.parse::<Uuid>());
    parsed("status", status.clone().transpose().map(|_| ()));
    parsed("source", source.clone().transpose().map(|_| ()));
    parsed(
        "assigned_to",
        match &assigned_to {
            Some(Err(_)) => Err("must be a user id".into()),
            _ => Ok(()),
        },
    );
    let mut custom = Map::new();
    for (i, name) in header.iter().enumerate() {
        let Some(key) = name.strip_prefix("custom.") else {
            continue;
        };
        // Text as written (spaces are part of it); an empty cell is no value.
        let raw = unescape(&cells[i]);
        if raw.is_empty() {
            continue;
        }
        let value = match kinds.get(key) {
            Some(FieldKind::Number) => raw.trim().parse::<Number>().map(Value::Number).ok(),
            Some(FieldKind::Boolean) => raw.trim().parse::<bool>().map(Value::Bool).ok(),
            _ => Some(Value::String(raw.to_string())),
        };
        match value {
            Some(value) => {
                custom.insert(key.to_string(), value);
            }
            None => {
                let kind = kinds.get(key).map_or("value", |k| k.as_str());
                parsed(name, Err(format!("{raw:?} is not a {kind}")));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(NewCustomer {
        name: cell("name").unwrap_or_default(),
        email: cell("email"),
        phone: cell("phone"),
        company: cell("company"),
        status: status.and_then(|s| s.ok()),
        source: source.and_then(|s| s.ok()),
        tags: cell("tags").map(|t| {
            t.split(';')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        }),
        custom_fields: Some(Value::Object(custom)),
        assigned_to: assigned_to.and_then(|a| a.ok()),
    })
}

/// Creates a customer for every row of `text`, or none: every problem is named `rows[i].<field>`
/// (`i` counts data rows from 0; the first 100 problems), checked in full before anything is
/// written — the cells, then against the organization (emails taken, assignees that are not
/// members, custom fields) — with the database's own checks behind them.
pub async fn import(tx: &mut OrgTx, text: &str) -> Result<Imported> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    // Spreadsheets save "CSV UTF-8" with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = records(text).map_err(Error::BadRequest)?.into_iter();
    let header: Vec<String> = rows
        .next()
        .ok_or_else(|| Error::BadRequest("the CSV has no header".into()))?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let kinds: HashMap<String, FieldKind> = fields(tx)
        .await?
        .into_iter()
        .map(|f| (f.key, f.kind))
        .collect();
    let unknown: Vec<&str> = header
        .iter()
        .map(String::as_str)
        .filter(|h| {
            !COLUMNS.contains(h)
                && !READ_PAST.contains(h)
                && !h
                    .strip_prefix("custom.")
                    .is_some_and(|k| kinds.contains_key(k))
        })
        .collect();
    if !unknown.is_empty() || !header.iter().any(|h| h == "name") {
        return Err(Error::invalid(
            "header",
            format!(
                "needs a name column; columns are {} and custom.<key> of a defined field; not {}",
                COLUMNS.join(", "),
                unknown.join(", ")
            ),
        ));
    }
    let mut errors = Vec::new();
    let mut customers = Vec::new();
    let mut emails: HashMap<String, usize> = HashMap::new();
    for (i, cells) in rows.enumerate() {
        let mut flag = |field: &str, message: String| {
            errors.push(FieldError::new(&format!("rows[{i}].{field}"), message));
        };
        if cells.len() != header.len() {
            flag(
                "cells",
                format!("has {} cells, the header {}", cells.len(), header.len()),
            );
            continue;
        }
        let checked = read_row(&header, &cells, &kinds).and_then(|new| {
            Valid::new(new).map_err(|e| match e {
                Error::Validation(fields) => {
                    fields.into_iter().map(|f| (f.field, f.message)).collect()
                }
                other => vec![(String::new(), other.to_string())],
            })
        });
        match checked {
            Ok(customer) => {
                if let Some(email) = &customer.email {
                    let key = email_as_stored(email).to_lowercase();
                    let first = *emails.entry(key).or_insert(i);
                    if first != i {
                        flag("email", format!("repeats the email of rows[{first}]"));
                    }
                }
                customers.push(customer);
            }
            Err(problems) => problems.into_iter().for_each(|(f, m)| flag(&f, m)),
        }
    }
    if errors.is_empty() {
        errors = against_the_organization(tx, &customers).await?;
    }
    if !errors.is_empty() {
        errors.truncate(MAX_ERRORS);
        return Err(Error::Validation(errors));
    }
    for batch in customers.chunks(BATCH) {
        insert(tx, org, batch).await?;
    }
    Ok(Imported {
        created: customers.len() as u64,
    })
}

/// The columns that point at the organization's data: emails, assignees, custom fields.
#[allow(clippy::type_complexity)]
fn references(
    customers: &[Valid<NewCustomer>],
) -> (Vec<Option<String>>, Vec<Option<Uuid>>, Vec<Value>) {
    let emails = customers
        .iter()
        .map(|c| c.email.as_deref().map(email_as_stored).map(str::to_string))
        .collect();
    let assignees = customers.iter().map(|c| c.assigned_to).collect();
    let custom = customers
        .iter()
        .map(|c| {
            c.custom_fields
                .clone()
                .unwrap_or_else(|| Value::Object(Map::new()))
        })
        .collect();
    (emails, assignees, custom)
}

/// Problems only the organization's data can show, for all rows in one statement.
async fn against_the_organization(
    tx: &mut OrgTx,
    customers: &[Valid<NewCustomer>],
) -> Result<Vec<FieldError>> {
    let org = tx.org();
    let (emails, assignees, custom) = references(customers);
    let found: Vec<(i64, String, String)> = sqlx::query_as(
        r"SELECT u.i - 1, p.field, p.message
            FROM unnest($2::text[], $3::uuid[], $4::jsonb[]) WITH ORDINALITY AS u (email, assignee, custom, i)
            CROSS JOIN LATERAL (
                SELECT 'email', 'a customer with this email exists in this organization'
                 WHERE EXISTS (SELECT FROM customers c
                                WHERE c.organization_id = $1 AND lower(c.email) = lower(u.email))
                UNION ALL
                SELECT 'assigned_to', 'must be a member of this organization'
                 WHERE u.assignee IS NOT NULL
                   AND NOT EXISTS (SELECT FROM organization_members m
                                    WHERE m.organization_id = $1 AND m.user_id = u.assignee)
                UNION ALL
                SELECT 'custom_fields.' || f.key, f.message FROM app.custom_fields_problem($1, u.custom) f
            ) AS p (field, message)
           ORDER BY u.i LIMIT 100",
    )
    .bind(org)
    .bind(&emails)
    .bind(&assignees)
    .bind(&custom)
    .fetch_all(tx.conn())
    .await?;
    Ok(found
        .into_iter()
        .map(|(i, field, message)| FieldError::new(&format!("rows[{i}].{field}"), message))
        .collect())
}

async fn insert(tx: &mut OrgTx, org: Uuid, batch: &[Valid<NewCustomer>]) -> Result<()> {
    let text = |get: fn(&NewCustomer) -> Option<&str>| -> Vec<Option<String>> {
        batch
            .iter()
            .map(|c| get(c).map(|v| v.trim().to_string()))
            .collect()
    };
    let ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
    let names: Vec<String> = batch.iter().map(|c| c.name.trim().to_string()).collect();
    let statuses: Vec<&str> = batch
        .iter()
        .map(|c| c.status.unwrap_or(CustomerStatus::Lead).as_str())
        .collect();
    let sources: Vec<&str> = batch
        .iter()
        .map(|c| c.source.unwrap_or(CustomerSource::Other).as_str())
        .collect();
    // One text per row: PostgreSQL arrays cannot be ragged, so tags travel as ;-joined text.
    let tags: Vec<String> = batch
        .iter()
        .map(|c| super::normalized_tags(c.tags.as_deref().unwrap_or_default()).join(";"))
        .collect();
    let (emails, assignees, custom) = references(batch);
    sqlx::query(
        r"INSERT INTO customers (id, organization_id, name, email, phone, company, status, source,
                                tags, custom_fields, assigned_to)
          SELECT u.id, $1, u.name, u.email, u.phone, u.company, u.status, u.source,
                 CASE WHEN u.tags = '' THEN '{}' ELSE string_to_array(u.tags, ';') END,
                 u.custom, u.assignee
            FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                        $8::text[], $9::text[], $10::jsonb[], $11::uuid[])
                 AS u (id, name, email, phone, company, status, source, tags, custom, assignee)",
    )
    .bind(org)
    .bind(&ids)
    .bind(&names)
    .bind(&emails)
    .bind(text(|c| c.phone.as_deref()))
    .bind(text(|c| c.company.as_deref()))
    .bind(&statuses)
    .bind(&sources)
    .bind(&tags)
    .bind(&custom)
    .bind(&assignees)
    .execute(tx.conn())
    .await?;
    Ok(())
}
