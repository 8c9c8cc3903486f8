//! SQL of content. The policies decide who may publish; the checks here only turn what they
//! would refuse into a clear 403 before the statement runs.

use uuid::Uuid;

use super::{Content, ContentChanges, ContentStatus, ContentType, ContentVersion, NewContent};
use crate::kernel::access::{require_role, Role};
use crate::kernel::error::{Error, Found, OnConstraint, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Page, PageParams};

const COLUMNS: &str = r"c.id, c.title, c.slug, c.content_type, c.content, c.excerpt, c.status,
    c.author_id, c.published_at, c.publish_at, c.seo_meta, c.created_at, c.updated_at";

const NEEDS_EDITOR: &str = "publishing, unpublishing, archiving, scheduling and changing what is not a plain draft need an admin or the content.publish permission";

trait ContentConstraints<T> {
    fn on_content_constraints(self) -> Result<T>;
}

impl<T, E: Into<Error>> ContentConstraints<T> for std::result::Result<T, E> {
    fn on_content_constraints(self) -> Result<T> {
        self.on_field(
            "content_slug",
            "slug",
            "is already used by another page of this organization",
        )
        .on_field(
            "content_author",
            "author_id",
            "must be a member of this organization",
        )
        .on_field(
            "content_scheduled_draft",
            "publish_at",
            "only a draft is scheduled",
        )
        .on_field(
            "content_slug_redirects",
            "slug",
            "leads to a page that was published; an editor may give it to another page",
        )
        .on_field("content_seo_meta", "seo_meta", "is not valid")
    }
}

/// Whether the caller may publish in this organization (the policies' own answer).
pub async fn may_publish(tx: &mut OrgTx) -> Result<bool> {
    Ok(sqlx::query_scalar(r"SELECT app.may_publish_content()")
        .fetch_one(tx.conn())
        .await?)
}

async fn require_editor(tx: &mut OrgTx) -> Result<()> {
    if may_publish(tx).await? {
        Ok(())
    } else {
        Err(Error::Forbidden(NEEDS_EDITOR))
    }
}

/// Scheduling takes a signed-in user: the publishing job acts for them (an API key is none).
fn require_scheduler(scheduling: bool, user: Option<Uuid>) -> Result<()> {
    if scheduling && user.is_none() {
        return Err(Error::Forbidden(
            "scheduling needs a signed-in editor (the job publishes as them)",
        ));
    }
    Ok(())
}

/// Anything but a draft without a schedule takes an editor.
fn plain_draft(status: ContentStatus, publish_at: bool) -> bool {
    status == ContentStatus::Draft && !publish_at
}

pub async fn get(tx: &mut OrgTx, id: Uuid) -> Result<Content> {
    let org = tx.org();
    sqlx::query_as(&format!(
        r"SELECT {COLUMNS} FROM content c WHERE c.organization_id = $1 AND c.id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .found()
}

/// Which content a list shows.
#[derive(Debug, Default)]
pub struct Filter {
    pub content_type: Option<ContentType>,
    pub status: Option<ContentStatus>,
}

/// The organization's content by id (newest first is `after`-paged by id).
pub async fn list(tx: &mut OrgTx, filter: &Filter, page: &PageParams) -> Result<Page<Content>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let rows: Vec<Content> = sqlx::query_as(&format!(
        r"SELECT {COLUMNS} FROM content c
           WHERE c.organization_id = $1 AND ($2::text IS NULL OR c.content_type = $2)
             AND ($3::text IS NULL OR c.status = $3) AND c.id > $4
           ORDER BY c.id LIMIT $5"
    ))
    .bind(org)
    .bind(filter.content_type.map(ContentType::as_str))
    .bind(filter.status.map(ContentStatus::as_str))
    .bind(page.after())
    .bind(page.fetch_limit())
    .fetch_all(tx.conn())
    .await?;
    Ok(Page::from_rows(rows, page, |c| c.id))
}

pub async fn create(tx: &mut OrgTx, new: &Valid<NewContent>) -> Result<Content> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let status = new.status.unwrap_or(ContentStatus::Draft);
    if !plain_draft(status, new.publish_at.is_some()) {
        require_editor(tx).await?;
    }
    let user = tx.user_id().await?;
    require_scheduler(new.publish_at.is_some(), user)?;
    let seo_meta = serde_json::to_value(new.seo_meta.clone().unwrap_or_default())
        .map_err(|e| Error::Internal(e.to_string()))?;
    // A slug made from the title may be taken by a concurrent insert: make it again then.
    let attempts = if new.slug.is_none() { 3 } else { 1 };
    for attempt in 1..=attempts {
        sqlx::query("SAVEPOINT create_content")
            .execute(tx.conn())
            .await?;
        let inserted = sqlx::query_as::<_, Content>(&format!(
            r"INSERT INTO content AS c (organization_id, title, slug, content_type, content, excerpt,
                                        status, author_id, publish_at, seo_meta)
              VALUES ($1, btrim($2), $3, $4, $5, $6, $7, coalesce($8, $9), $10, $11)
              RETURNING {COLUMNS}"
        ))
        .bind(org)
        .bind(&new.title)
        .bind(new.slug.as_deref())
        .bind(new.content_type.unwrap_or(ContentType::Page).as_str())
        .bind(new.content.as_deref().unwrap_or_default())
        .bind(new.excerpt.as_deref())
        .bind(status.as_str())
        .bind(new.author_id)
        .bind(user)
        .bind(new.publish_at)
        .bind(&seo_meta)
        .fetch_one(tx.conn())
        .await;
        match inserted {
            Err(e)
                if attempt < attempts
                    && e.as_database_error().and_then(|d| d.constraint())
                        == Some("content_slug") =>
            {
                sqlx::query("ROLLBACK TO SAVEPOINT create_content")
                    .execute(tx.conn())
                    .await?;
            }
            done => return done.on_content_constraints(),
        }
    }
    Err(Error::Internal("no free slug after three attempts".into()))
}

pub async fn update(tx: &mut OrgTx, id: Uuid, changes: &Valid<ContentChanges>) -> Result<Content> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let current = get(tx, id).await?;
    let status = changes.status.unwrap_or(current.status);
    let publish_at = match changes.publish_at {
        Some(at) => at,
        None => current.publish_at,
    };
    if !plain_draft(current.status, current.publish_at.is_some())
        || !plain_draft(status, publish_at.is_some())
    {
        require_editor(tx).await?;
    }
    let user = tx.user_id().await?;
    require_scheduler(changes.publish_at.flatten().is_some(), user)?;
    let seo_meta = changes
        .seo_meta
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| Error::Internal(e.to_string()))?;
    sqlx::query_as(&format!(
        r"UPDATE content AS c SET
              title = coalesce(btrim($3), c.title),
              slug = coalesce($4, c.slug),
              content_type = coalesce($5, c.content_type),
              content = coalesce($6, c.content),
              excerpt = CASE WHEN $7 THEN $8 ELSE c.excerpt END,
              status = $9,
              author_id = CASE WHEN $10 THEN $11 ELSE c.author_id END,
              publish_at = $12,
              seo_meta = coalesce($13, c.seo_meta)
           WHERE c.organization_id = $1 AND c.id = $2
           RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(id)
    .bind(changes.title.as_deref())
    .bind(changes.slug.as_deref())
    .bind(changes.content_type.map(ContentType::as_str))
    .bind(changes.content.as_deref())
    .bind(changes.excerpt.is_some())
    .bind(changes.excerpt.clone().flatten())
    .bind(status.as_str())
    .bind(changes.author_id.is_some())
    .bind(changes.author_id.flatten())
    .bind(publish_at)
    .bind(seo_meta)
    .fetch_optional(tx.conn())
    .await
    .on_content_constraints()?
    .found()
}

pub async fn delete(tx: &mut OrgTx, id: Uuid) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let current = get(tx, id).await?;
    // Deleting a page once published deletes its published versions too: editors only.
    if !plain_draft(current.status, current.publish_at.is_some()) || current.published_at.is_some()
    {
        require_editor(tx).await?;
    }
    sqlx::query(r"DELETE FROM content WHERE organization_id = $1 AND id = $2")
        .bind(org)
        .bind(id)
        .execute(tx.conn())
        .await?
        .found()?;
    Ok(())
}

const VERSION_COLUMNS: &str = r"v.version, v.title, v.slug, v.content_type, v.content, v.excerpt,
    v.seo_meta, v.published_at, v.published_by";

/// Every published version of a page, newest first.
pub async fn versions(tx: &mut OrgTx, id: Uuid) -> Result<Vec<ContentVersion>> {
    let org = tx.org();
    get(tx, id).await?;
    Ok(sqlx::query_as(&format!(
        r"SELECT {VERSION_COLUMNS} FROM content_versions v
           WHERE v.organization_id = $1 AND v.content_id = $2 ORDER BY v.version DESC"
    ))
    .bind(org)
    .bind(id)
    .fetch_all(tx.conn())
    .await?)
}

/// Rolls a page back to a published version: its title, type, text, excerpt and metadata (the
/// slug stays, so links keep working). Published, it becomes the newest version.
pub async fn restore(tx: &mut OrgTx, id: Uuid, version: i32) -> Result<Content> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    get(tx, id).await?;
    require_editor(tx).await?;
    sqlx::query_as(&format!(
        r"UPDATE content AS c
             SET title = v.title, content_type = v.content_type, content = v.content,
                 excerpt = v.excerpt, seo_meta = v.seo_meta
            FROM content_versions v
           WHERE c.organization_id = $1 AND c.id = $2
             AND v.organization_id = c.organization_id AND v.content_id = c.id AND v.version = $3
           RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(id)
    .bind(version)
    .fetch_optional(tx.conn())
    .await?
    .found()
}

/// What a scheduled publish found.
#[derive(Debug, PartialEq, Eq)]
pub enum Scheduled {
    Published,
    /// Deleted, already published, unscheduled or moved later: nothing to do.
    Gone,
    /// Still due, but the member who scheduled it can no longer publish.
    NotAllowed,
}

/// Publishes a draft whose scheduled time has come, as the member who scheduled it.
pub async fn publish_scheduled(tx: &mut OrgTx, id: Uuid) -> Result<Scheduled> {
    let org = tx.org();
    let published = sqlx::query(
        r"UPDATE content SET status = 'published'
           WHERE organization_id = $1 AND id = $2 AND status = 'draft' AND publish_at <= now()",
    )
    .bind(org)
    .bind(id)
    .execute(tx.conn())
    .await?
    .rows_affected();
    if published > 0 {
        return Ok(Scheduled::Published);
    }
    // Not published: because it is gone or no longer due, or because the member who scheduled
    // it can no longer publish (left the organization: sees nothing; lost the right: sees it
    // still due).
    if crate::kernel::access::my_role(tx).await?.is_none() {
        return Ok(Scheduled::NotAllowed);
    }
    let due: Option<bool> = sqlx::query_scalar(
        r"SELECT status = 'draft' AND publish_at <= now() FROM content
           WHERE organization_id = $1 AND id = $2",
    )
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .flatten();
    Ok(if due == Some(true) {
        Scheduled::NotAllowed
    } else {
        Scheduled::Gone
    })
}
