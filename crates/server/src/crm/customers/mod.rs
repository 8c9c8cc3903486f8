//! Customers and the custom fields an organization defines for them.

pub mod csv;
pub mod routes;
pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

pub use routes::{bulk_routes, routes};

use crate::kernel::input::{email, json_object, set, slug_key, text, Checks, Rule, Validate};
use crate::text_enum;

text_enum! {
    /// Where a customer stands.
    pub enum CustomerStatus { Lead = "lead", Prospect = "prospect", Active = "active", Churned = "churned" }
}

text_enum! {
    /// How a customer found the organization.
    pub enum CustomerSource {
        Website = "website", Referral = "referral", Social = "social", Email = "email", Other = "other",
    }
}

text_enum! {
    /// What a custom field holds: text, a number, a date (`YYYY-MM-DD`), true or false, or one of
    /// its `options`.
    pub enum FieldKind {
        Text = "text", Number = "number", Date = "date", Boolean = "boolean", OneOf = "option",
    }
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Customer {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: CustomerStatus,
    #[sqlx(try_from = "String")]
    pub source: CustomerSource,
    pub tags: Vec<String>,
    /// Values of the organization's custom fields, by key.
    #[schema(value_type = Object)]
    pub custom_fields: Value,
    /// A member of the organization; cleared when they leave it.
    pub assigned_to: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new customer. Its email, when given, is unique in the organization (any case).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[schema(max_length = 254)]
    pub email: Option<String>,
    #[schema(max_length = 50)]
    pub phone: Option<String>,
    #[schema(max_length = 200)]
    pub company: Option<String>,
    /// Default `lead`.
    pub status: Option<CustomerStatus>,
    /// Default `other`.
    pub source: Option<CustomerSource>,
    /// At most 50 tags of 1 to 50 characters without `,` or `;`; repeats are dropped.
    #[schema(max_items = 50)]
    pub tags: Option<Vec<String>>,
    /// Values of defined custom fields, by key (each of its field's kind; required ones present).
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<Value>,
    pub assigned_to: Option<Uuid>,
}

/// Changes to a customer: absent fields stay; `null` clears an optional one. `custom_fields` is
/// merged into the stored values (RFC 7396: a key set to `null` is removed).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerChanges {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 254)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 50)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 200)]
    pub company: Option<Option<String>>,
    pub status: Option<CustomerStatus>,
    pub source: Option<CustomerSource>,
    #[schema(max_items = 50)]
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<Value>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub assigned_to: Option<Option<Uuid>>,
}

/// Tags as stored: trimmed, each once, in the order given.
pub(crate) fn normalized_tags(tags: &[String]) -> Vec<String> {
    let mut seen = Vec::with_capacity(tags.len());
    for tag in tags.iter().map(|t| t.trim()) {
        if !seen.iter().any(|s: &String| s == tag) {
            seen.push(tag.to_string());
        }
    }
    seen
}

/// At most 50 tags of 1 to 50 characters, without `,` or `;` (which separate tags in filters and
/// in CSV cells).
pub(crate) fn tag_list(tags: &[String]) -> Rule {
    let each = text(1, 50);
    if normalized_tags(tags).len() > 50 {
        return Err("must be at most 50 tags".into());
    }
    if tags.iter().any(|t| t.contains([',', ';'])) {
        return Err("a tag cannot contain , or ;".into());
    }
    tags.iter()
        .try_for_each(|t| each(t))
        .map_err(|e| format!("each tag {e}"))
}

impl Validate for NewCustomer {
    fn check(&self, c: &mut Checks) {
        c.field("name", Some(self.name.as_str()), text(1, 200));
        c.field("email", self.email.as_deref(), email);
        c.field("phone", self.phone.as_deref(), text(0, 50));
        c.field("company", self.company.as_deref(), text(0, 200));
        c.field("tags", self.tags.as_deref(), tag_list);
        c.field("custom_fields", self.custom_fields.as_ref(), json_object);
    }
}

impl Validate for CustomerChanges {
    fn check(&self, c: &mut Checks) {
        c.field("name", self.name.as_deref(), text(1, 200));
        c.field("email", set(&self.email), email);
        c.field("phone", set(&self.phone), text(0, 50));
        c.field("company", set(&self.company), text(0, 200));
        c.field("tags", self.tags.as_deref(), tag_list);
        c.field("custom_fields", self.custom_fields.as_ref(), json_object);
    }
}

/// A custom field of the organization's customers.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct CustomField {
    /// How values are named in `custom_fields` (and in filters).
    pub key: String,
    pub label: String,
    #[sqlx(try_from = "String")]
    pub kind: FieldKind,
    /// The allowed values of an `option` field.
    pub options: Option<Vec<String>>,
    /// Whether every customer written from now on must have a value.
    pub required: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new custom field (admins). `options` is given for `option` fields, and only for them.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomField {
    /// 1 to 40 lowercase letters, digits or underscores, starting with a letter.
    #[schema(min_length = 1, max_length = 40, pattern = "^[a-z][a-z0-9_]*$")]
    pub key: String,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub label: String,
    pub kind: FieldKind,
    #[schema(min_items = 1, max_items = 100)]
    pub options: Option<Vec<String>>,
    #[serde(default)]
    pub required: bool,
}

/// Changes to a custom field: its key and kind stay. An option still used by customers cannot
/// be taken away (409 `field_in_use`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldChanges {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub label: Option<String>,
    #[schema(min_items = 1, max_items = 100)]
    pub options: Option<Vec<String>>,
    pub required: Option<bool>,
}

fn option_list(options: &[String]) -> Rule {
    let each = text(1, 100);
    if options.is_empty() || options.len() > 100 {
        return Err("must be 1 to 100 options".into());
    }
    options
        .iter()
        .try_for_each(|o| each(o))
        .map_err(|e| format!("each option {e}"))
}

impl Validate for NewCustomField {
    fn check(&self, c: &mut Checks) {
        c.field("key", Some(self.key.as_str()), slug_key(40));
        c.field("label", Some(self.label.as_str()), text(1, 100));
        c.field("options", self.options.as_deref(), option_list);
        let wants_options = self.kind == FieldKind::OneOf;
        c.field("options", Some(self.options.is_some()), |given| {
            match (wants_options, given) {
                (true, false) => Err("an option field needs its options".into()),
                (false, true) => Err("only an option field has options".into()),
                _ => Ok(()),
            }
        });
    }
}

impl Validate for CustomFieldChanges {
    fn check(&self, c: &mut Checks) {
        c.field("label", self.label.as_deref(), text(1, 100));
        c.field("options", self.options.as_deref(), option_list);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_and_kept_once_in_order() {
        let tags = ["vip", " b2b ", "vip", "b2b"].map(String::from);
        assert_eq!(normalized_tags(&tags), ["vip", "b2b"]);
        assert!(tag_list(&[" ".into()]).is_err(), "a blank tag");
        assert!(tag_list(&["a,b".into()]).is_err());
        assert!(tag_list(&["a;b".into()]).is_err());
        assert!(tag_list(&(0..51).map(|i| i.to_string()).collect::<Vec<_>>()).is_err());
        assert!(
            tag_list(&vec!["x".into(); 60]).is_ok(),
            "repeats count once"
        );
    }

    #[test]
    fn only_option_fields_have_options() {
        let field = |kind, options: Option<Vec<String>>| NewCustomField {
            key: "tier".into(),
            label: "Tier".into(),
            kind,
            options,
            required: false,
        };
        assert!(crate::kernel::input::Valid::new(field(FieldKind::OneOf, None)).is_err());
        assert!(
            crate::kernel::input::Valid::new(field(FieldKind::Text, Some(vec!["a".into()])))
                .is_err()
        );
        assert!(
            crate::kernel::input::Valid::new(field(FieldKind::OneOf, Some(vec!["a".into()])))
                .is_ok()
        );
        assert!(crate::kernel::input::Valid::new(field(FieldKind::Number, None)).is_ok());
    }
}
