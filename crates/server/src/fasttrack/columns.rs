//! The columns of a tool's own table as the API writes them: each JSON value is checked against
//! its column's type before it reaches the database, so a wrong value is named by its field
//! (PostgreSQL's own conversion errors do not say which column failed).

use chrono::{DateTime, NaiveDate};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::kernel::error::{Error, FieldError, Result};

/// A column a client sets, as `information_schema.columns` describes it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[schema(as = ToolColumn)]
pub struct Column {
    pub name: String,
    /// `information_schema` spelling: `integer`, `text`, `character`, `boolean`, `jsonb`,
    /// `ARRAY`, …
    pub data_type: String,
    /// Characters at most (`character(n)`, `varchar(n)`).
    pub max_length: Option<i32>,
    /// Whether it may be `null`.
    pub nullable: bool,
    /// Whether the database fills it when a new row leaves it out.
    pub has_default: bool,
}

/// The columns `row` names, in table order, after checking that `row` is an object naming only
/// these columns, with values of their types; `inserting` also requires every column that has
/// neither a default nor `NULL` allowed.
pub fn chosen(row: &Value, columns: &[Column], inserting: bool) -> Result<Vec<String>> {
    let Some(fields) = row.as_object() else {
        return Err(Error::invalid("body", "must be a JSON object"));
    };
    let mut errors: Vec<FieldError> = fields
        .keys()
        .filter(|k| !columns.iter().any(|c| &c.name == *k))
        .map(|k| {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            FieldError::new(k, format!("not a field; fields: {}", names.join(", ")))
        })
        .collect();
    for column in columns {
        if let Some(problem) = problem(column, fields, inserting) {
            errors.push(FieldError::new(&column.name, problem));
        }
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    Ok(columns
        .iter()
        .filter(|c| fields.contains_key(&c.name))
        .map(|c| c.name.clone())
        .collect())
}

/// What is wrong with the column's value in `fields`, if anything.
fn problem(column: &Column, fields: &Map<String, Value>, inserting: bool) -> Option<String> {
    let required = !column.nullable && !column.has_default;
    let value = match fields.get(&column.name) {
        None if inserting && required => return Some("is required".into()),
        None => return None,
        Some(Value::Null) if !column.nullable => return Some("must not be null".into()),
        Some(Value::Null) => return None,
        Some(value) => value,
    };
    let (fits, expected) = match column.data_type.as_str() {
        "smallint" => (
            fits_integer(value, i16::MIN.into(), i16::MAX.into()),
            "a whole number from -32768 to 32767".to_string(),
        ),
        "integer" => (
            fits_integer(value, i32::MIN.into(), i32::MAX.into()),
            "a whole number from -2147483648 to 2147483647".to_string(),
        ),
        "bigint" => (value.is_i64(), "a whole number".to_string()),
        "numeric" | "real" | "double precision" => (value.is_number(), "a number".to_string()),
        "boolean" => (value.is_boolean(), "true or false".to_string()),
        "text" => (value.is_string(), "a string".to_string()),
        "character" | "character varying" => match column.max_length {
            Some(max) => (
                value
                    .as_str()
                    .is_some_and(|s| s.chars().count() <= usize::try_from(max).unwrap_or(0)),
                format!("a string of at most {max} characters"),
            ),
            None => (value.is_string(), "a string".to_string()),
        },
        "uuid" => (
            value.as_str().is_some_and(|s| Uuid::parse_str(s).is_ok()),
            "a UUID".to_string(),
        ),
        "date" => (
            value
                .as_str()
                .is_some_and(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
            "a date (YYYY-MM-DD)".to_string(),
        ),
        "timestamp with time zone" => (
            value
                .as_str()
                .is_some_and(|s| DateTime::parse_from_rfc3339(s).is_ok()),
            "a time in RFC 3339 (2026-01-31T09:00:00Z)".to_string(),
        ),
        "ARRAY" => (value.is_array(), "an array".to_string()),
        // jsonb and json take any value; other types are left to the database.
        _ => (true, String::new()),
    };
    (!fits).then(|| format!("must be {expected}"))
}

fn fits_integer(value: &Value, min: i64, max: i64) -> bool {
    value.as_i64().is_some_and(|n| (min..=max).contains(&n))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn column(name: &str, data_type: &str, max_length: Option<i32>, nullable: bool) -> Column {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            max_length,
            nullable,
            has_default: false,
        }
    }

    fn fields_of(result: Result<Vec<String>>) -> Vec<String> {
        match result {
            Err(Error::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn each_value_is_checked_against_its_columns_type() {
        let columns = [
            column("n", "integer", None, true),
            column("flag", "boolean", None, true),
            column("grade", "character", Some(1), true),
            column("at", "timestamp with time zone", None, true),
            column("day", "date", None, true),
            column("ref", "uuid", None, true),
            column("extra", "jsonb", None, true),
            column("name", "text", None, false),
        ];
        let good = json!({"n": 5, "flag": false, "grade": "A", "at": "2026-01-31T09:00:00+01:00",
            "day": "2026-02-28", "ref": Uuid::nil(), "extra": {"any": [1]}, "name": "Ann"});
        assert_eq!(chosen(&good, &columns, true).expect("valid").len(), 8);
        let bad = json!({"n": 2_147_483_648_i64, "flag": 1, "grade": "AB", "at": "yesterday",
            "day": "2026-02-30", "ref": "not-a-uuid", "extra": null, "name": null});
        assert_eq!(
            fields_of(chosen(&bad, &columns, true)),
            ["n", "flag", "grade", "at", "day", "ref", "name"]
        );
    }

    #[test]
    fn required_columns_are_required_only_when_inserting() {
        let columns = [
            column("name", "text", None, false),
            column("note", "text", None, true),
        ];
        assert_eq!(
            fields_of(chosen(&json!({"note": "x"}), &columns, true)),
            ["name"]
        );
        assert_eq!(
            chosen(&json!({"note": "x"}), &columns, false).expect("an update names what changes"),
            ["note"]
        );
        assert_eq!(
            fields_of(chosen(&json!({"other": 1}), &columns, false)),
            ["other"]
        );
        assert_eq!(fields_of(chosen(&json!([1]), &columns, false)), ["body"]);
    }
}
