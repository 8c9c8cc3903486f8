//! Soft deletion, restoration and purging, the same for every table that has `deleted_at`.

use uuid::Uuid;

use crate::kernel::access::require_role;
use crate::kernel::access::Role;
use crate::kernel::error::{Found, Result};
use crate::kernel::org_tx::OrgTx;

/// Tables with `deleted_at` (names are written by us, never taken from input).
#[derive(Clone, Copy, Debug)]
pub enum Deletable {
    Kpis,
    Goals,
}

impl Deletable {
    fn table(self) -> &'static str {
        match self {
            Deletable::Kpis => "kpis",
            Deletable::Goals => "goals",
        }
    }
}

/// Marks a row deleted or restores it (members; idempotent). The caller reads it back, which
/// also answers 404 for a row that is not there.
pub async fn set_deleted(tx: &mut OrgTx, what: Deletable, id: Uuid, deleted: bool) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    sqlx::query(&format!(
        r"UPDATE {} SET deleted_at = CASE WHEN $3 THEN now() END
         WHERE organization_id = $1 AND id = $2 AND (deleted_at IS NOT NULL) <> $3",
        what.table()
    ))
    .bind(org)
    .bind(id)
    .bind(deleted)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Deletes a row for good, with everything that cascades from it (admins).
pub async fn purge(tx: &mut OrgTx, what: Deletable, id: Uuid) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let done = sqlx::query(&format!(
        r"DELETE FROM {} WHERE organization_id = $1 AND id = $2",
        what.table()
    ))
    .bind(org)
    .bind(id)
    .execute(tx.conn())
    .await?;
    done.found()?;
    Ok(())
}
