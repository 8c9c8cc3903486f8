//! Fast Track coaching tools: the catalog (from the shipped manifests), entries validated against
//! their tool's JSON Schema, status changes, history, grants and progress. The database keeps the
//! rules (status moves, versions, history, progress, who sees what); this module checks the data's
//! shape and cross-tool references, and maps the outcomes to clear errors.

mod columns;
pub mod routes;
pub mod store;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::kernel::error::{Error, FieldError, Found, Result};

pub use routes::routes;

/// One tool as its manifest describes it, with its compiled schema.
pub struct Tool {
    pub slug: String,
    pub sprint: i32,
    pub name: String,
    pub description: String,
    /// `sprint_NN_slug`: the schema holding its tables.
    pub schema_name: String,
    pub data_schema: Value,
    /// Fields of `data` naming an entry of another tool, by that tool's slug.
    pub refs: BTreeMap<String, String>,
    /// The tool's own tables, whose rows belong to an entry (e.g. `hypotheses`).
    pub tables: Vec<String>,
    validator: jsonschema::Validator,
}

#[derive(Deserialize)]
struct Manifest {
    sprint: i32,
    slug: String,
    name: String,
    #[serde(default)]
    description: String,
    data_schema: Value,
    #[serde(default)]
    refs: BTreeMap<String, String>,
    #[serde(default)]
    tables: Vec<String>,
}

impl Tool {
    /// One of the tool's own tables, by name (404 for anything else, so it never reaches SQL).
    pub fn table(&self, name: &str) -> Result<&str> {
        self.tables
            .iter()
            .find(|t| *t == name)
            .map(String::as_str)
            .found()
    }

    /// Checks `data` against the tool's schema; every failure is named by its JSON path.
    pub fn validate(&self, data: &Value) -> Result<()> {
        let errors: Vec<FieldError> = self
            .validator
            .iter_errors(data)
            .map(|e| {
                let path = e.instance_path().to_string();
                FieldError::new(&format!("data{path}"), e.to_string())
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(errors))
        }
    }
}

/// Every tool this build ships, in sprint order.
pub struct Catalog {
    tools: Vec<Tool>,
}

impl Catalog {
    /// From the manifests embedded with the migrations (`tools/*.json`).
    pub fn shipped() -> Result<Self> {
        let mut tools = Vec::new();
        for (file, text) in tenantry_db::migrate::tool_manifests() {
            let m: Manifest = serde_json::from_str(text)
                .map_err(|e| Error::Internal(format!("tools/{file}.json: {e}")))?;
            let validator = jsonschema::validator_for(&m.data_schema)
                .map_err(|e| Error::Internal(format!("tools/{file}.json data_schema: {e}")))?;
            tools.push(Tool {
                schema_name: format!("sprint_{:02}_{}", m.sprint, m.slug),
                slug: m.slug,
                sprint: m.sprint,
                name: m.name,
                description: m.description,
                data_schema: m.data_schema,
                refs: m.refs,
                tables: m.tables,
                validator,
            });
        }
        tools.sort_by_key(|t| t.sprint);
        Ok(Self { tools })
    }

    /// The tool with this slug (404 for any other string, so it never reaches SQL).
    pub fn get(&self, slug: &str) -> Result<&Tool> {
        self.tools.iter().find(|t| t.slug == slug).found()
    }

    pub fn all(&self) -> &[Tool] {
        &self.tools
    }

    /// The latest entries of user $3 in organization $1 across every tool (at most $2), newest
    /// first, each with the user's progress on its tool: one index-backed branch per tool.
    pub fn my_entries_sql(&self) -> String {
        let branches: Vec<String> = self
            .tools
            .iter()
            .map(|t| {
                format!(
                    "(SELECT '{}'::text AS tool, id, status, version, updated_at FROM {}.tool_data \
                      WHERE organization_id = $1 AND user_id = $3 ORDER BY updated_at DESC LIMIT $2)",
                    t.slug, t.schema_name
                )
            })
            .collect();
        format!(
            r"SELECT e.tool, e.id, e.status, e.version, e.updated_at,
                    coalesce(p.progress_percentage, 0) AS progress_percentage
               FROM ({}) e
               LEFT JOIN tool_access.progress p
                      ON p.organization_id = $1 AND p.user_id = $3 AND p.tool_slug = e.tool
              ORDER BY e.updated_at DESC LIMIT $2",
            branches.join(" UNION ALL ")
        )
    }
}

/// Where an entry stands: draft → in_progress → completed → submitted (completed may go back to
/// in_progress; submitted is final).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    InProgress,
    Completed,
    Submitted,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Draft,
        Status::InProgress,
        Status::Completed,
        Status::Submitted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Submitted => "submitted",
        }
    }
}

/// An entry moved to the archive by `tenantry tools archive` (read by organization admins;
/// `tenantry tools restore` brings it back).
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ArchivedEntry {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub entry: Entry,
    /// The entry's rows in its tool's own tables: `{"hypotheses": [row, …]}`.
    pub rows: Value,
    pub archived_at: DateTime<Utc>,
}

/// An entry of a tool.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Entry {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The tool's data, valid against its schema.
    pub data: Value,
    /// draft, in_progress, completed or submitted.
    pub status: String,
    /// Incremented by every change; send it back with the next change.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// Checked against the tool's `data_schema` (see `GET …/tools`).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub data: Value,
    /// draft (default) or in_progress.
    pub status: Option<Status>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataChange {
    /// The version this change is based on.
    pub version: i32,
    /// Checked against the tool's `data_schema` (see `GET …/tools`).
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// The version this change is based on.
    pub version: i32,
    pub status: Status,
}

/// One of my entries in any tool, with my progress on that tool.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct MyEntry {
    pub tool: String,
    pub id: Uuid,
    pub status: String,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
    pub progress_percentage: i32,
}

/// One change of an entry, as the database recorded it.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct HistoryItem {
    /// The entry's version after the change.
    pub version: i32,
    /// insert, update or delete.
    pub action: String,
    /// Who made it.
    pub user_id: Option<Uuid>,
    /// `{"data": {"from", "to"}, "status": {"from", "to"}}`, the fields that changed.
    pub changes: Value,
    pub occurred_at: DateTime<Utc>,
}

/// A tool with the caller's access and progress on it.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ToolSummary {
    pub slug: String,
    pub sprint: i32,
    pub name: String,
    pub description: String,
    /// view, edit or admin; absent without access.
    pub access: Option<String>,
    /// not_started, in_progress or completed.
    pub progress_status: String,
    pub progress_percentage: i32,
    pub last_accessed_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A tool as a form needs it (`GET …/tools/{tool}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolDetail {
    #[serde(flatten)]
    pub summary: ToolSummary,
    /// The JSON Schema (2020-12) an entry's `data` must match.
    #[schema(value_type = Object)]
    pub data_schema: Value,
    /// Fields of `data` naming one of the caller's entries of another tool, by that tool's slug.
    pub refs: BTreeMap<String, String>,
    /// The tool's own tables (rows under `…/entries/{entry}/{table}`), with the columns a
    /// client sets.
    pub tables: Vec<ToolTable>,
}

/// One of a tool's own tables.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolTable {
    pub name: String,
    pub columns: Vec<columns::Column>,
}

/// One tool's line of an organization's report (as of the last refresh).
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ReportLine {
    pub tool_slug: String,
    pub draft: i64,
    pub in_progress: i64,
    pub completed: i64,
    pub submitted: i64,
    pub last_change: Option<DateTime<Utc>>,
    /// Members with progress on the tool, and how many of them completed it.
    pub members: i64,
    pub members_completed: i64,
    /// Average progress (0-100) of those members.
    pub average_progress: Option<f64>,
}

/// A member's access to a tool.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Grant {
    pub id: Uuid,
    pub user_id: Uuid,
    pub tool: String,
    /// view, edit or admin.
    pub access_level: String,
    pub granted_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub granted_by: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    View,
    Edit,
    Admin,
}

impl AccessLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::View => "view",
            AccessLevel::Edit => "edit",
            AccessLevel::Admin => "admin",
        }
    }
}

/// Grants `access_level` on `tool` to a member (replacing an earlier grant of theirs).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    pub user_id: Uuid,
    pub tool: String,
    pub access_level: AccessLevel,
    /// When the grant ends (none: until revoked).
    pub expires_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_shipped_manifest_compiles_and_names_failing_paths() {
        let catalog = Catalog::shipped().expect("catalog");
        let slugs: Vec<&str> = catalog.all().iter().map(|t| t.slug.as_str()).collect();
        assert_eq!(
            slugs,
            [
                "woop",
                "know_thyself",
                "dream",
                "value_proposition",
                "fit_abc_analysis",
                "digital_heart"
            ]
        );
        let woop = catalog.get("woop").expect("woop");
        assert!(woop.validate(&json!({"wish": "w", "plan": "p"})).is_ok());
        let Err(Error::Validation(errors)) = woop.validate(&json!({"wish": 5, "extra": true}))
        else {
            panic!("invalid data accepted");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"data/wish"), "{fields:?}");
        assert!(fields.contains(&"data"), "{fields:?}");
        let heart = catalog.get("digital_heart").expect("digital heart");
        let Err(Error::Validation(errors)) =
            heart.validate(&json!({"initiatives": [{"name": "ok"}, {"priority": 9}]}))
        else {
            panic!("invalid data accepted");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["data/initiatives/1/priority", "data/initiatives/1"],
            "the bad item's paths, not the good one's"
        );
        assert!(matches!(catalog.get("nope"), Err(Error::NotFound)));
        assert_eq!(
            catalog.get("dream").expect("dream").refs["source_know_thyself_id"],
            "know_thyself"
        );
    }
}
