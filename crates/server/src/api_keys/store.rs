//! SQL of API keys.

use uuid::Uuid;

use super::{new_secret, ApiKey, CreatedApiKey, NewApiKey};
use crate::identity::hash_token;
use crate::kernel::access::require_role;
use crate::kernel::access::Role;
use crate::kernel::error::{Found, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Page, PageParams};

const KEY_SELECT: &str = r"SELECT k.id, k.name, k.prefix, k.access, k.modules, k.expires_at,
    u.last_used_at, k.revoked_at, k.created_by, k.created_at
    FROM api_keys k LEFT JOIN api_key_usage u ON u.api_key_id = k.id";

pub async fn create(tx: &mut OrgTx, new: &Valid<NewApiKey>) -> Result<CreatedApiKey> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let (prefix, secret) = new_secret();
    let id = Uuid::now_v7();
    sqlx::query(
        r"INSERT INTO api_keys (id, organization_id, name, prefix, secret_hash, access, modules, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, app.user_id())",
    )
    .bind(id)
    .bind(org)
    .bind(new.name.trim())
    .bind(&prefix)
    .bind(hash_token(&secret).as_slice())
    .bind(new.access.as_str())
    .bind(new.modules.as_ref())
    .bind(new.expires_at)
    .execute(tx.conn())
    .await?;
    let key = get(tx, id).await?;
    Ok(CreatedApiKey { key, secret })
}

pub async fn get(tx: &mut OrgTx, id: Uuid) -> Result<ApiKey> {
    let org = tx.org();
    sqlx::query_as(&format!(
        r"{KEY_SELECT} WHERE k.organization_id = $1 AND k.id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .found()
}

pub async fn list(tx: &mut OrgTx, page: &PageParams) -> Result<Page<ApiKey>> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let rows: Vec<ApiKey> = sqlx::query_as(&format!(
        r"{KEY_SELECT} WHERE k.organization_id = $1 AND k.id > $2 ORDER BY k.id LIMIT $3"
    ))
    .bind(org)
    .bind(page.after())
    .bind(page.fetch_limit())
    .fetch_all(tx.conn())
    .await?;
    Ok(Page::from_rows(rows, page, |k| k.id))
}

/// Revokes a key at once (idempotent); it stays listed with `revoked_at`.
pub async fn revoke(tx: &mut OrgTx, id: Uuid) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    sqlx::query(
        r"UPDATE api_keys SET revoked_at = now() WHERE organization_id = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(org)
    .bind(id)
    .execute(tx.conn())
    .await?;
    get(tx, id).await.map(|_| ())
}
