//! SQL of invitations and their outbox messages.

use chrono::Utc;
use tenantry_db::TenantTx;
use uuid::Uuid;

use super::{Accepted, Invitation, IssuedInvitation, NewInvitation, TOKEN_PREFIX, VALID_FOR};
use crate::email::escape_html;
use crate::identity::{hash_token, new_token};
use crate::kernel::access::require_role;
use crate::kernel::access::Role;
use crate::kernel::error::{Error, Found, OnConstraint, Result};
use crate::kernel::input::{email_as_stored, Valid};
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Page, PageParams};
use crate::orgs;

const INVITATION_SELECT: &str = r"SELECT id, email, role, invited_by, expires_at, accepted_at, accepted_by,
    revoked_at, created_at FROM invitations";

fn accept_url(public_url: &str, token: &str) -> String {
    format!(
        "{}/invitations/accept?token={token}",
        public_url.trim_end_matches('/')
    )
}

async fn get(tx: &mut OrgTx, id: Uuid) -> Result<Invitation> {
    let org = tx.org();
    sqlx::query_as(&format!(
        r"{INVITATION_SELECT} WHERE organization_id = $1 AND id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .found()
}

/// Queues the email that carries the link.
async fn enqueue_email(tx: &mut OrgTx, invitation: &Invitation, url: &str) -> Result<()> {
    let org = tx.org();
    let org_name: String = sqlx::query_scalar(r"SELECT name FROM organizations WHERE id = $1")
        .bind(org)
        .fetch_one(tx.conn())
        .await?;
    let role = invitation.role.as_str();
    let expires = invitation.expires_at.to_rfc3339();
    sqlx::query(
        r"INSERT INTO outbox (organization_id, kind, recipient, subject, body, html_body)
          VALUES ($1, 'invitation', $2, $3, $4, $5)",
    )
    .bind(org)
    .bind(&invitation.email)
    .bind(format!("You are invited to {org_name}"))
    .bind(format!(
        "You have been invited to join {org_name} as {role}.\n\nAccept: {url}\n\nThis link works once and expires on {expires}."
    ))
    .bind(format!(
        "<p>You have been invited to join <strong>{name}</strong> as {role}.</p>\n\
         <p><a href=\"{link}\">Accept the invitation</a></p>\n\
         <p>This link works once and expires on {expires}.</p>",
        name = escape_html(&org_name),
        link = escape_html(url),
    ))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Queues the email for invitation `id` with its new `token`; what the inviter gets back.
async fn send(
    tx: &mut OrgTx,
    id: Uuid,
    token: String,
    public_url: &str,
) -> Result<IssuedInvitation> {
    let invitation = get(tx, id).await?;
    let url = accept_url(public_url, &token);
    enqueue_email(tx, &invitation, &url).await?;
    Ok(IssuedInvitation {
        invitation,
        token,
        accept_url: url,
    })
}

fn issue_token() -> (String, [u8; 32]) {
    let token = new_token(TOKEN_PREFIX);
    let hash = hash_token(&token);
    (token, hash)
}

pub async fn invite(
    tx: &mut OrgTx,
    new: &Valid<NewInvitation>,
    public_url: &str,
) -> Result<IssuedInvitation> {
    let org = tx.org();
    let mine = require_role(tx, Role::Admin).await?;
    if new.role == Role::Owner && mine != Role::Owner {
        return Err(Error::Forbidden("only an owner may invite owners"));
    }
    let (token, hash) = issue_token();
    let id = Uuid::now_v7();
    sqlx::query(
        r"INSERT INTO invitations (id, organization_id, email, role, token_hash, invited_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, app.user_id(), $6)",
    )
    .bind(id)
    .bind(org)
    .bind(email_as_stored(&new.email))
    .bind(new.role.as_str())
    .bind(hash.as_slice())
    .bind(Utc::now() + VALID_FOR)
    .execute(tx.conn())
    .await
    .on_conflict(
        "invitations_open_email",
        "already_invited",
        "this address already has an open invitation",
    )?;
    send(tx, id, token, public_url).await
}

pub async fn list(tx: &mut OrgTx, page: &PageParams) -> Result<Page<Invitation>> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let rows: Vec<Invitation> = sqlx::query_as(&format!(
        r"{INVITATION_SELECT} WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(org)
    .bind(page.after())
    .bind(page.fetch_limit())
    .fetch_all(tx.conn())
    .await?;
    Ok(Page::from_rows(rows, page, |i| i.id))
}

/// A new token and expiry for an open invitation (the old link stops working), sent again.
pub async fn resend(tx: &mut OrgTx, id: Uuid, public_url: &str) -> Result<IssuedInvitation> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let (token, hash) = issue_token();
    let updated = sqlx::query(
        r"UPDATE invitations SET token_hash = $3, expires_at = $4
         WHERE organization_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(org)
    .bind(id)
    .bind(hash.as_slice())
    .bind(Utc::now() + VALID_FOR)
    .execute(tx.conn())
    .await?;
    if updated.rows_affected() == 0 {
        get(tx, id).await?;
        return Err(Error::Conflict {
            code: "invitation_closed",
            detail: "this invitation was accepted or revoked".into(),
        });
    }
    send(tx, id, token, public_url).await
}

pub async fn revoke(tx: &mut OrgTx, id: Uuid) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    sqlx::query(
        r"UPDATE invitations SET revoked_at = now()
         WHERE organization_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(org)
    .bind(id)
    .execute(tx.conn())
    .await?;
    get(tx, id).await.map(|_| ())
}

/// Accepts an invitation as the acting user; adds the membership.
pub async fn accept(tx: &mut TenantTx, token: &str) -> Result<Accepted> {
    if tx.user_id().await?.is_none() {
        return Err(Error::Forbidden(
            "only a signed-in user can accept an invitation",
        ));
    }
    let (outcome, org): (String, Option<Uuid>) =
        sqlx::query_as(r"SELECT outcome, organization_id FROM app.accept_invitation($1)")
            .bind(hash_token(token.trim()).as_slice())
            .fetch_one(tx.conn())
            .await?;
    match (outcome.as_str(), org) {
        ("accepted" | "already_member", Some(org)) => {
            let organization = orgs::store::get(tx, org).await?.found()?;
            Ok(Accepted { organization })
        }
        ("email_mismatch", _) => Err(Error::Forbidden(
            "this invitation was sent to another email address",
        )),
        _ => Err(Error::NotFound),
    }
}
