//! SQL of the organizations domain. Row-level security decides what each statement can see and
//! change; the role checks here only choose the right answer (404 vs 403) for the caller.

use rand::distributions::{Alphanumeric, DistString};
use tenantry_db::TenantTx;
use uuid::Uuid;

use super::{
    Member, MemberChanges, NewOrganization, NewTeam, Organization, OrganizationChanges, Team,
    TeamChanges,
};
use crate::kernel::access::{require_role, Role};
use crate::kernel::error::{Error, Found, OnConstraint, Result};
use crate::kernel::input::{email_as_stored, Valid};
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Page, PageParams};

/// The constraints this slice's writes can violate, and what they mean to the caller.
const SLUG_KEY: &str = "organizations_slug_key";
const TEAM_NAME_KEY: &str = "teams_organization_id_name_key";
/// Raised by the `keep_an_owner` trigger.
const LAST_OWNER: &str = "organization_members_last_owner";
const LAST_OWNER_DETAIL: &str = "an organization must keep at least one owner";

const ORG_SELECT: &str = r"SELECT o.id, o.name, o.slug, o.description, o.industry, o.size, o.settings,
    coalesce(app.subscription_status_of(o.id), 'inactive') AS subscription_status, o.billing_email,
    app.my_role(o.id) AS my_role, o.created_at, o.updated_at
    FROM organizations o";

/// Creates an organization; the database makes the caller its owner. Without a slug, one is
/// derived from the name, with a random suffix if it is taken.
pub async fn create(tx: &mut TenantTx, new: &Valid<NewOrganization>) -> Result<Organization> {
    let id = Uuid::now_v7();
    let base = new
        .slug
        .clone()
        .unwrap_or_else(|| super::slugify(&new.name));
    let mut slug = base.clone();
    for attempt in 0.. {
        sqlx::query(r"SAVEPOINT create_org")
            .execute(tx.conn())
            .await?;
        let inserted = sqlx::query(
            r"INSERT INTO organizations (id, name, slug, description, industry, size, billing_email, settings)
             VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, '{}'::jsonb))",
        )
        .bind(id)
        .bind(new.name.trim())
        .bind(&slug)
        .bind(new.description.as_deref())
        .bind(new.industry.as_deref())
        .bind(new.size.as_deref())
        .bind(new.billing_email.as_deref().map(email_as_stored))
        .bind(new.settings.as_ref())
        .execute(tx.conn())
        .await;
        match inserted {
            Ok(_) => break,
            Err(sqlx::Error::Database(e))
                if new.slug.is_none() && attempt < 5 && e.constraint() == Some(SLUG_KEY) =>
            {
                sqlx::query(r"ROLLBACK TO SAVEPOINT create_org")
                    .execute(tx.conn())
                    .await?;
                let suffix = Alphanumeric
                    .sample_string(&mut rand::thread_rng(), 6)
                    .to_lowercase();
                slug = format!("{}-{suffix}", base.chars().take(56).collect::<String>());
            }
            Err(e) => {
                return Err(e).on_conflict(SLUG_KEY, "slug_taken", "this slug is already taken")
            }
        }
    }
    get(tx, id).await?.found()
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<Organization>> {
    Ok(sqlx::query_as(&format!(r"{ORG_SELECT} WHERE o.id = $1"))
        .bind(id)
        .fetch_optional(tx.conn())
        .await?)
}

/// The caller's organizations.
pub async fn list_mine(tx: &mut TenantTx, page: &PageParams) -> Result<Page<Organization>> {
    let rows: Vec<Organization> = sqlx::query_as(&format!(
        r"{ORG_SELECT} WHERE o.id > $1 ORDER BY o.id LIMIT $2"
    ))
    .bind(page.after())
    .bind(page.fetch_limit())
    .fetch_all(tx.conn())
    .await?;
    Ok(Page::from_rows(rows, page, |o| o.id))
}

pub async fn update(tx: &mut OrgTx, changes: &Valid<OrganizationChanges>) -> Result<Organization> {
    let id = tx.org();
    require_role(tx, Role::Admin).await?;
    let updated = sqlx::query(
        r"UPDATE organizations SET
            name = coalesce($2, name), slug = coalesce($3, slug),
            description = CASE WHEN $4 THEN $5 ELSE description END,
            industry = CASE WHEN $6 THEN $7 ELSE industry END,
            size = CASE WHEN $8 THEN $9 ELSE size END,
            billing_email = CASE WHEN $10 THEN $11 ELSE billing_email END,
            settings = coalesce($12, settings)
         WHERE id = $1",
    )
    .bind(id)
    .bind(changes.name.as_deref().map(str::trim))
    .bind(changes.slug.as_deref())
    .bind(changes.description.is_some())
    .bind(changes.description.clone().flatten())
    .bind(changes.industry.is_some())
    .bind(changes.industry.clone().flatten())
    .bind(changes.size.is_some())
    .bind(changes.size.clone().flatten())
    .bind(changes.billing_email.is_some())
    .bind(
        changes
            .billing_email
            .as_ref()
            .and_then(|e| e.as_deref())
            .map(email_as_stored),
    )
    .bind(changes.settings.as_ref())
    .execute(tx.conn())
    .await
    .on_conflict(SLUG_KEY, "slug_taken", "this slug is already taken")
    .on_constraint("organizations_ai_settings", |_| {
        Error::Forbidden("only an owner changes settings.ai")
    })?;
    updated.found()?;
    get(tx, id).await?.found()
}

/// Deletes an organization and everything it owns. `confirm` must repeat its slug.
pub async fn delete(tx: &mut OrgTx, confirm: &str) -> Result<()> {
    let id = tx.org();
    require_role(tx, Role::Owner).await?;
    let org = get(tx, id).await?.found()?;
    if confirm != org.slug {
        return Err(Error::invalid(
            "confirm",
            "must repeat the organization's slug",
        ));
    }
    sqlx::query(r"DELETE FROM organizations WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?
        .found()?;
    Ok(())
}

const MEMBER_SELECT: &str = r"SELECT m.user_id, u.email, u.name, u.avatar_url, m.role, m.permissions, m.joined_at, m.id
    FROM organization_members m JOIN users u ON u.id = m.user_id";

pub async fn list_members(tx: &mut OrgTx, page: &PageParams) -> Result<Page<Member>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let rows: Vec<Member> = sqlx::query_as(&format!(
        r"{MEMBER_SELECT} WHERE m.organization_id = $1 AND m.id > $2 ORDER BY m.id LIMIT $3"
    ))
    .bind(org)
    .bind(page.after())
    .bind(page.fetch_limit())
    .fetch_all(tx.conn())
    .await?;
    Ok(Page::from_rows(rows, page, |m| m.id))
}

pub async fn get_member(tx: &mut OrgTx, user: Uuid) -> Result<Option<Member>> {
    let org = tx.org();
    Ok(sqlx::query_as(&format!(
        r"{MEMBER_SELECT} WHERE m.organization_id = $1 AND m.user_id = $2"
    ))
    .bind(org)
    .bind(user)
    .fetch_optional(tx.conn())
    .await?)
}

/// Adds a member (an admin's act; owners only add owners). Invitations build on this.
pub async fn add_member(tx: &mut OrgTx, user: Uuid, role: Role) -> Result<Member> {
    let org = tx.org();
    let mine = require_role(tx, Role::Admin).await?;
    if role == Role::Owner && mine != Role::Owner {
        return Err(Error::Forbidden("only an owner may make owners"));
    }
    sqlx::query(
        r"INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, $3)",
    )
    .bind(org)
    .bind(user)
    .bind(role.as_str())
    .execute(tx.conn())
    .await
    .on_conflict(
        "organization_members_organization_id_user_id_key",
        "already_member",
        "this user is already a member",
    )?;
    get_member(tx, user).await?.found()
}

pub async fn update_member(
    tx: &mut OrgTx,
    user: Uuid,
    changes: &Valid<MemberChanges>,
) -> Result<Member> {
    let org = tx.org();
    let mine = require_role(tx, Role::Admin).await?;
    let target = get_member(tx, user).await?.found()?;
    if (target.role == Role::Owner || changes.role == Some(Role::Owner)) && mine != Role::Owner {
        return Err(Error::Forbidden(
            "only an owner may grant, change or remove ownership",
        ));
    }
    sqlx::query(
        r"UPDATE organization_members SET role = coalesce($3, role), permissions = coalesce($4, permissions)
         WHERE organization_id = $1 AND user_id = $2",
    )
    .bind(org)
    .bind(user)
    .bind(changes.role.map(Role::as_str))
    .bind(changes.permissions.as_ref())
    .execute(tx.conn())
    .await
    .on_conflict(LAST_OWNER, "last_owner", LAST_OWNER_DETAIL)?;
    get_member(tx, user).await?.found()
}

/// Removes a member; anyone may remove themselves (leave). The last owner stays (409).
pub async fn remove_member(tx: &mut OrgTx, user: Uuid) -> Result<()> {
    let org = tx.org();
    let leaving = tx.user_id().await? == Some(user);
    let mine = require_role(tx, if leaving { Role::Viewer } else { Role::Admin }).await?;
    let target = get_member(tx, user).await?.found()?;
    if target.role == Role::Owner && mine != Role::Owner {
        return Err(Error::Forbidden("only an owner may remove an owner"));
    }
    let removed = sqlx::query(
        r"DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2",
    )
    .bind(org)
    .bind(user)
    .execute(tx.conn())
    .await
    .on_conflict(LAST_OWNER, "last_owner", LAST_OWNER_DETAIL)?;
    removed.found()?;
    Ok(())
}

const TEAM_SELECT: &str = r"SELECT t.id, t.name, t.description, t.lead_user_id,
    coalesce((SELECT array_agg(tm.user_id ORDER BY tm.user_id) FROM team_members tm
              WHERE tm.organization_id = t.organization_id AND tm.team_id = t.id), '{}') AS member_ids,
    t.created_at, t.updated_at FROM teams t";

pub async fn list_teams(tx: &mut OrgTx, page: &PageParams) -> Result<Page<Team>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let rows: Vec<Team> = sqlx::query_as(&format!(
        r"{TEAM_SELECT} WHERE t.organization_id = $1 AND t.id > $2 ORDER BY t.id LIMIT $3"
    ))
    .bind(org)
    .bind(page.after())
    .bind(page.fetch_limit())
    .fetch_all(tx.conn())
    .await?;
    Ok(Page::from_rows(rows, page, |t| t.id))
}

pub async fn get_team(tx: &mut OrgTx, team: Uuid) -> Result<Team> {
    let org = tx.org();
    sqlx::query_as(&format!(
        r"{TEAM_SELECT} WHERE t.organization_id = $1 AND t.id = $2"
    ))
    .bind(org)
    .bind(team)
    .fetch_optional(tx.conn())
    .await?
    .found()
}

pub async fn create_team(tx: &mut OrgTx, new: &Valid<NewTeam>) -> Result<Team> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let id = Uuid::now_v7();
    sqlx::query(r"INSERT INTO teams (id, organization_id, name, description, lead_user_id) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(org)
        .bind(new.name.trim())
        .bind(new.description.as_deref())
        .bind(new.lead_user_id)
        .execute(tx.conn())
        .await
        .on_conflict(TEAM_NAME_KEY, "team_name_taken", "a team with this name exists")?;
    get_team(tx, id).await
}

pub async fn update_team(tx: &mut OrgTx, team: Uuid, changes: &Valid<TeamChanges>) -> Result<Team> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let updated = sqlx::query(
        r"UPDATE teams SET name = coalesce($3, name),
            description = CASE WHEN $4 THEN $5 ELSE description END,
            lead_user_id = CASE WHEN $6 THEN $7 ELSE lead_user_id END
         WHERE organization_id = $1 AND id = $2",
    )
    .bind(org)
    .bind(team)
    .bind(changes.name.as_deref().map(str::trim))
    .bind(changes.description.is_some())
    .bind(changes.description.clone().flatten())
    .bind(changes.lead_user_id.is_some())
    .bind(changes.lead_user_id.flatten())
    .execute(tx.conn())
    .await
    .on_conflict(
        TEAM_NAME_KEY,
        "team_name_taken",
        "a team with this name exists",
    )?;
    updated.found()?;
    get_team(tx, team).await
}

pub async fn delete_team(tx: &mut OrgTx, team: Uuid) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    sqlx::query(r"DELETE FROM teams WHERE organization_id = $1 AND id = $2")
        .bind(org)
        .bind(team)
        .execute(tx.conn())
        .await?
        .found()?;
    Ok(())
}

/// Puts a member of the organization into a team (idempotent).
pub async fn add_team_member(tx: &mut OrgTx, team: Uuid, user: Uuid) -> Result<Team> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    get_team(tx, team).await?;
    sqlx::query(
        r"INSERT INTO team_members (organization_id, team_id, user_id) VALUES ($1, $2, $3)
         ON CONFLICT (team_id, user_id) DO NOTHING",
    )
    .bind(org)
    .bind(team)
    .bind(user)
    .execute(tx.conn())
    .await
    // The user is named in the path: not a member of this organization, not there (404).
    .on_constraint("team_members_organization_id_user_id_fkey", |_| {
        Error::NotFound
    })?;
    get_team(tx, team).await
}

pub async fn remove_team_member(tx: &mut OrgTx, team: Uuid, user: Uuid) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let removed = sqlx::query(
        r"DELETE FROM team_members WHERE organization_id = $1 AND team_id = $2 AND user_id = $3",
    )
    .bind(org)
    .bind(team)
    .bind(user)
    .execute(tx.conn())
    .await?;
    removed.found()?;
    Ok(())
}

/// Makes `to` (a member) an owner and the caller an admin, in one transaction.
pub async fn transfer_ownership(tx: &mut OrgTx, to: Uuid) -> Result<Member> {
    let org = tx.org();
    require_role(tx, Role::Owner).await?;
    let me = tx.user_id().await?.ok_or(Error::Unauthenticated)?;
    if me == to {
        return Err(Error::invalid("user_id", "is already the owner"));
    }
    if get_member(tx, to).await?.is_none() {
        return Err(Error::invalid(
            "user_id",
            "must be a member of the organization",
        ));
    }
    // Promote first: the organization is never without an owner.
    for (user, role) in [(to, Role::Owner), (me, Role::Admin)] {
        sqlx::query(
            r"UPDATE organization_members SET role = $3 WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(org)
        .bind(user)
        .bind(role.as_str())
        .execute(tx.conn())
        .await
        .on_conflict(LAST_OWNER, "last_owner", LAST_OWNER_DETAIL)?;
    }
    get_member(tx, to).await?.found()
}
