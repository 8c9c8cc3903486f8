//! Content (Strive's CMS): pages, blog posts, documentation and templates in Markdown, published
//! on the organization's public site. The policies decide who may publish (migration 0032):
//! members write drafts; admins, owners and members granted `content.publish` publish,
//! unpublish, archive, schedule and change what is not a plain draft. Every published version is
//! kept (`…/versions`) and can be restored; a changed slug keeps the old one redirecting.

pub mod markdown;
pub mod public;
pub mod routes;
pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

pub use routes::routes;

use crate::kernel::input::{set, text, web_link, Checks, Rule, Validate};
use crate::text_enum;

text_enum! {
    /// What a piece of content is; the public site lists each type on its own.
    pub enum ContentType {
        Page = "page", BlogPost = "blog_post", Documentation = "documentation",
        Template = "template",
    }
}

text_enum! {
    /// Drafts are private to the organization; published content is public; archived content
    /// is neither listed nor served. Only editors move content out of `draft`.
    pub enum ContentStatus {
        Draft = "draft", Published = "published", Archived = "archived",
    }
}

/// Search-engine metadata of a page; every field optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeoMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// An http(s) URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub canonical_url: Option<String>,
    /// An http(s) URL of the page's preview image.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub image: Option<String>,
}

impl SeoMeta {
    fn check(&self, c: &mut Checks) {
        c.field("seo_meta.title", self.title.as_deref(), text(0, 200));
        c.field(
            "seo_meta.description",
            self.description.as_deref(),
            text(0, 500),
        );
        c.field(
            "seo_meta.canonical_url",
            self.canonical_url.as_deref(),
            web_link,
        );
        c.field("seo_meta.image", self.image.as_deref(), web_link);
    }
}

/// A piece of content as its organization sees it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Content {
    pub id: Uuid,
    pub title: String,
    pub slug: String,
    #[sqlx(try_from = "String")]
    pub content_type: ContentType,
    /// Markdown.
    pub content: String,
    pub excerpt: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: ContentStatus,
    /// A member; cleared if they leave the organization.
    pub author_id: Option<Uuid>,
    /// When first published (set by the database, never cleared).
    pub published_at: Option<DateTime<Utc>>,
    /// When this draft is scheduled to be published.
    pub publish_at: Option<DateTime<Utc>>,
    #[sqlx(json)]
    pub seo_meta: SeoMeta,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// New content. `status` defaults to `draft`; creating it `published` (or with `publish_at`)
/// needs an editor.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContent {
    #[schema(min_length = 1, max_length = 300, pattern = r"\S")]
    pub title: String,
    /// Lowercase letters, digits and single dashes; default made from the title (`about-us`,
    /// then `about-us-2` if taken). Unique in the organization.
    #[schema(max_length = 100, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    pub slug: Option<String>,
    /// Default `page`.
    pub content_type: Option<ContentType>,
    /// Markdown (raw HTML in it is shown as text, never run).
    #[schema(max_length = 500000)]
    pub content: Option<String>,
    #[schema(max_length = 2000)]
    pub excerpt: Option<String>,
    pub status: Option<ContentStatus>,
    /// A member of the organization; default the caller.
    pub author_id: Option<Uuid>,
    /// Publish this draft then (editors); must be in the future.
    pub publish_at: Option<DateTime<Utc>>,
    pub seo_meta: Option<SeoMeta>,
}

/// Changes to content: absent fields stay; `null` clears an optional one. `status` publishes,
/// unpublishes (`draft`) or archives (editors).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentChanges {
    #[schema(min_length = 1, max_length = 300, pattern = r"\S")]
    pub title: Option<String>,
    /// A new slug; the old one keeps redirecting to this page.
    #[schema(max_length = 100, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    pub slug: Option<String>,
    pub content_type: Option<ContentType>,
    #[schema(max_length = 500000)]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 2000)]
    pub excerpt: Option<Option<String>>,
    pub status: Option<ContentStatus>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub author_id: Option<Option<Uuid>>,
    /// Schedule (or with `null`, unschedule) publishing this draft.
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub publish_at: Option<Option<DateTime<Utc>>>,
    /// Replaces the whole metadata.
    pub seo_meta: Option<SeoMeta>,
}

/// Lowercase letters, digits and single dashes, at most 100.
fn content_slug(value: &str) -> Rule {
    let ok = !value.is_empty()
        && value.len() <= 100
        && value.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    ok.then_some(()).ok_or_else(|| {
        "must be lowercase letters and digits, words joined by single dashes, at most 100".into()
    })
}

fn in_future(at: DateTime<Utc>) -> Rule {
    (at > Utc::now())
        .then_some(())
        .ok_or_else(|| "must be in the future".into())
}

/// Markdown to preview (`POST …/content/preview`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    #[schema(max_length = 500000)]
    pub content: String,
}

/// The Markdown as a published page shows it: HTML in which raw HTML is text and links keep
/// only http, https, mailto and relative destinations.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Preview {
    pub html: String,
}

impl Validate for PreviewRequest {
    fn check(&self, c: &mut Checks) {
        c.field("content", Some(self.content.as_str()), text(0, 500_000));
    }
}

impl Validate for NewContent {
    fn check(&self, c: &mut Checks) {
        c.field("title", Some(self.title.as_str()), text(1, 300));
        c.field("slug", self.slug.as_deref(), content_slug);
        c.field("content", self.content.as_deref(), text(0, 500_000));
        c.field("excerpt", self.excerpt.as_deref(), text(0, 2000));
        c.field("publish_at", self.publish_at, in_future);
        if self.publish_at.is_some() && self.status.is_some_and(|s| s != ContentStatus::Draft) {
            c.field("publish_at", Some(()), |_| {
                Err("only a draft is scheduled".into())
            });
        }
        if let Some(meta) = &self.seo_meta {
            meta.check(c);
        }
    }
}

impl Validate for ContentChanges {
    fn check(&self, c: &mut Checks) {
        c.field("title", self.title.as_deref(), text(1, 300));
        c.field("slug", self.slug.as_deref(), content_slug);
        c.field("content", self.content.as_deref(), text(0, 500_000));
        c.field("excerpt", set(&self.excerpt), text(0, 2000));
        c.field("publish_at", self.publish_at.flatten(), in_future);
        if let Some(meta) = &self.seo_meta {
            meta.check(c);
        }
    }
}

/// One published version of a page.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct ContentVersion {
    pub version: i32,
    pub title: String,
    pub slug: String,
    #[sqlx(try_from = "String")]
    pub content_type: ContentType,
    pub content: String,
    pub excerpt: Option<String>,
    #[sqlx(json)]
    pub seo_meta: SeoMeta,
    pub published_at: DateTime<Utc>,
    /// Who published it (absent for an API key or a member since gone).
    pub published_by: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_words_joined_by_single_dashes() {
        for good in ["about", "about-us", "2026-plans", "a"] {
            assert!(content_slug(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "About",
            "about--us",
            "-about",
            "about-",
            "über",
            "a b",
            &"a".repeat(101),
        ] {
            assert!(content_slug(bad).is_err(), "{bad}");
        }
    }
}
