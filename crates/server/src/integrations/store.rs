//! SQL of integrations and their sealed credentials.

use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    hint, Credentials, Integration, IntegrationChanges, Mapping, MappingsChange, NewIntegration,
    Provider,
};
use crate::kernel::access::{require_role, Role};
use crate::kernel::error::{Error, FieldError, Found, OnConstraint, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Page, PageParams};
use crate::vault::{Place, Vault, VaultError};

const NAME_KEY: &str = "integrations_organization_id_provider_name_key";
const NAME_TAKEN: &str = "the organization has an integration of this provider with this name";
const SECRETS_TABLE: &str = "integration_secrets";
const SECRETS_COLUMN: &str = "sealed";

/// The vault's place of an integration's credentials.
fn place(org: Uuid, integration: Uuid) -> Place<'static> {
    Place {
        org,
        table: SECRETS_TABLE,
        row: integration,
        column: SECRETS_COLUMN,
    }
}

const SELECT: &str = r"SELECT i.id, i.provider, i.name, i.is_active, i.config, i.schedule,
       i.last_sync_at, i.next_sync_at, app.integration_in_plan(i.organization_id, i.id) AS within_plan, i.sync_status, i.error_message, s.hint AS credentials_hint, i.created_by,
       i.created_at, i.updated_at
  FROM integrations i
  LEFT JOIN integration_secrets s ON s.organization_id = i.organization_id AND s.integration_id = i.id";

pub async fn get(tx: &mut OrgTx, id: Uuid) -> Result<Integration> {
    let org = tx.org();
    sqlx::query_as(&format!(
        "{SELECT} WHERE i.organization_id = $1 AND i.id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .found()
}

/// A page of the organization's integrations: ($1 organization, $2 after this id, $3 rows).
pub fn list_sql() -> String {
    format!("{SELECT} WHERE i.organization_id = $1 AND i.id > $2 ORDER BY i.id LIMIT $3")
}

pub async fn list(tx: &mut OrgTx, page: &PageParams) -> Result<Page<Integration>> {
    let org = tx.org();
    require_role(tx, Role::Viewer).await?;
    let rows: Vec<Integration> = sqlx::query_as(&list_sql())
        .bind(org)
        .bind(page.after())
        .bind(page.fetch_limit())
        .fetch_all(tx.conn())
        .await?;
    Ok(Page::from_rows(rows, page, |i| i.id))
}

pub async fn create(
    tx: &mut OrgTx,
    vault: &Vault,
    new: &Valid<NewIntegration>,
) -> Result<Integration> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    sqlx::query(r"SELECT app.require_feature('integrations')")
        .execute(tx.conn())
        .await?;
    let id = Uuid::now_v7();
    let user = tx.user_id().await?;
    let name = new
        .name
        .clone()
        .unwrap_or_else(|| new.provider.label().to_string());
    sqlx::query(
        r"INSERT INTO integrations (id, organization_id, provider, name, is_active, config, schedule, created_by, next_sync_at)
          VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, '15 * * * *'), $8, CASE WHEN $9 THEN now() END)",
    )
    .bind(id)
    .bind(org)
    .bind(new.provider.as_str())
    .bind(name.trim())
    .bind(new.is_active.unwrap_or(true))
    .bind(new.config.clone().unwrap_or_else(|| serde_json::json!({})))
    .bind(new.schedule.as_deref())
    .bind(user)
    // Without credentials it waits, paused, to be connected (`…/authorize`).
    .bind(new.credentials.is_some())
    .execute(tx.conn())
    .await
    .on_conflict(NAME_KEY, "integration_name_taken", NAME_TAKEN)?;
    if let Some(credentials) = &new.credentials {
        store_credentials(tx.conn(), vault, org, id, credentials).await?;
    }
    get(tx, id).await
}

pub async fn update(
    tx: &mut OrgTx,
    vault: &Vault,
    id: Uuid,
    changes: &Valid<IntegrationChanges>,
) -> Result<Integration> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let provider: Option<String> = sqlx::query_scalar(
        r"UPDATE integrations
             SET name = coalesce(btrim($3), name), is_active = coalesce($4, is_active),
                 config = coalesce($5, config), schedule = coalesce($6, schedule),
                 -- What changes how it syncs makes it due at once (and resumes a paused one);
                 -- new credentials or configuration start its failures afresh.
                 next_sync_at = CASE WHEN $4 IS NOT NULL OR $5 IS NOT NULL OR $6 IS NOT NULL OR $7
                                     THEN now() ELSE next_sync_at END,
                 sync_status = CASE WHEN ($5 IS NOT NULL OR $7) AND sync_status = 'error'
                                    THEN 'pending' ELSE sync_status END,
                 consecutive_failures = CASE WHEN $5 IS NOT NULL OR $7 THEN 0 ELSE consecutive_failures END,
                 error_message = CASE WHEN $5 IS NOT NULL OR $7 THEN NULL ELSE error_message END,
                 error_notified_at = CASE WHEN $5 IS NOT NULL OR $7 THEN NULL ELSE error_notified_at END
           WHERE organization_id = $1 AND id = $2
       RETURNING provider",
    )
    .bind(org)
    .bind(id)
    .bind(changes.name.as_deref())
    .bind(changes.is_active)
    .bind(changes.config.as_ref())
    .bind(changes.schedule.as_deref())
    .bind(changes.credentials.is_some())
    .fetch_optional(tx.conn())
    .await
    .on_conflict(NAME_KEY, "integration_name_taken", NAME_TAKEN)?;
    let provider = Provider::try_from(provider.found()?)
        .map_err(|e| Error::Internal(format!("a stored provider: {e}")))?;
    if let Some(config) = &changes.config {
        provider
            .check_config(config)
            .map_err(|e| Error::invalid("config", e))?;
    }
    if let Some(credentials) = &changes.credentials {
        provider
            .check_credentials(credentials)
            .map_err(|e| Error::invalid("credentials", e))?;
        store_credentials(tx.conn(), vault, org, id, credentials).await?;
    }
    get(tx, id).await
}

pub async fn delete(tx: &mut OrgTx, id: Uuid) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let deleted = sqlx::query(r"DELETE FROM integrations WHERE organization_id = $1 AND id = $2")
        .bind(org)
        .bind(id)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Seals `credentials` for the integration's place and stores them with their hint.
async fn store_credentials(
    conn: &mut PgConnection,
    vault: &Vault,
    org: Uuid,
    integration: Uuid,
    credentials: &Credentials,
) -> Result<()> {
    let plain = zeroize::Zeroizing::new(
        serde_json::to_vec(credentials).map_err(|e| Error::Internal(e.to_string()))?,
    );
    let sealed = vault.seal(&place(org, integration), &plain);
    sqlx::query(
        r"INSERT INTO integration_secrets (organization_id, integration_id, sealed, key_id, hint)
          VALUES ($1, $2, $3, $4, $5)
          ON CONFLICT (organization_id, integration_id)
          DO UPDATE SET sealed = excluded.sealed, key_id = excluded.key_id, hint = excluded.hint",
    )
    .bind(org)
    .bind(integration)
    .bind(&sealed)
    .bind(vault.primary_key_id())
    .bind(hint(credentials))
    .execute(conn)
    .await?;
    Ok(())
}

/// The integration's credentials, opened (admins, and jobs acting for one).
pub async fn credentials(tx: &mut OrgTx, vault: &Vault, id: Uuid) -> Result<Credentials> {
    let org = tx.org();
    let sealed: Vec<u8> = sqlx::query_scalar(
        r"SELECT sealed FROM integration_secrets WHERE organization_id = $1 AND integration_id = $2",
    )
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .found()?;
    let plain = vault.open(&place(org, id), &sealed).map_err(vault_error)?;
    serde_json::from_slice(&plain)
        .map_err(|_| Error::Internal("sealed credentials are not JSON".into()))
}

fn vault_error(e: VaultError) -> Error {
    Error::Internal(e.to_string())
}

/// Re-seals up to `batch` credentials not under the vault's primary key (as the owner: platform
/// upkeep); returns how many were re-sealed. Rows are taken with SKIP LOCKED, so runs can
/// overlap, and each batch commits, so an interrupted rotation resumes where it stopped.
pub async fn rewrap_batch(owner: &sqlx::PgPool, vault: &Vault, batch: i64) -> Result<u64> {
    let mut tx = owner.begin().await?;
    let rows: Vec<(Uuid, Uuid, Vec<u8>)> = sqlx::query_as(
        r"SELECT organization_id, integration_id, sealed FROM integration_secrets
           WHERE key_id <> $1 ORDER BY organization_id, integration_id LIMIT $2
             FOR UPDATE SKIP LOCKED",
    )
    .bind(vault.primary_key_id())
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let (mut orgs, mut integrations, mut envelopes) = (Vec::new(), Vec::new(), Vec::new());
    for (org, integration, sealed) in rows {
        if let Some(new) = vault
            .rewrap(&place(org, integration), &sealed)
            .map_err(vault_error)?
        {
            orgs.push(org);
            integrations.push(integration);
            envelopes.push(new);
        }
    }
    // One statement for the batch.
    let rewrapped = sqlx::query(
        r"UPDATE integration_secrets s SET sealed = u.sealed, key_id = $4
            FROM unnest($1::uuid[], $2::uuid[], $3::bytea[]) AS u (organization_id, integration_id, sealed)
           WHERE s.organization_id = u.organization_id AND s.integration_id = u.integration_id",
    )
    .bind(&orgs)
    .bind(&integrations)
    .bind(&envelopes)
    .bind(vault.primary_key_id())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(rewrapped)
}

/// How many credentials each key seals (for `tenantry vault status`).
pub async fn sealed_by_key(owner: &sqlx::PgPool) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        r"SELECT key_id, count(*) FROM integration_secrets GROUP BY key_id ORDER BY key_id",
    )
    .fetch_all(owner)
    .await?)
}

/// The integration's mappings, by metric (members and viewers).
pub async fn mappings(tx: &mut OrgTx, id: Uuid) -> Result<Vec<Mapping>> {
    let org = tx.org();
    get(tx, id).await?;
    Ok(sqlx::query_as(
        r"SELECT metric, kpi_id, created_at, synced_at FROM integration_mappings
           WHERE organization_id = $1 AND integration_id = $2 ORDER BY metric",
    )
    .bind(org)
    .bind(id)
    .fetch_all(tx.conn())
    .await?)
}

/// Replaces the integration's mappings (admins): every metric must be one the provider has,
/// every KPI a live one of this organization.
pub async fn set_mappings(
    tx: &mut OrgTx,
    id: Uuid,
    change: &Valid<MappingsChange>,
) -> Result<Vec<Mapping>> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let integration = get(tx, id).await?;
    let known = integration.metrics();
    let mut errors = Vec::new();
    for metric in change.mappings.keys() {
        if !known.contains(metric) {
            errors.push(FieldError::new(
                &format!("mappings.{metric}"),
                format!(
                    "{} has no metric {metric:?}; it has {}",
                    integration.provider.label(),
                    known.join(", ")
                ),
            ));
        }
    }
    let kpis: Vec<Uuid> = change.mappings.values().copied().collect();
    let live: Vec<Uuid> = sqlx::query_scalar(
        r"SELECT id FROM kpis WHERE organization_id = $1 AND id = ANY ($2) AND deleted_at IS NULL",
    )
    .bind(org)
    .bind(&kpis)
    .fetch_all(tx.conn())
    .await?;
    for (metric, kpi) in &change.mappings {
        if !live.contains(kpi) {
            errors.push(FieldError::new(
                &format!("mappings.{metric}"),
                "no such KPI in this organization",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    // A mapping kept as it was keeps its sync state; a new or re-pointed one is backfilled by
    // the next sync, which is due at once.
    let metrics: Vec<&str> = change.mappings.keys().map(String::as_str).collect();
    sqlx::query(
        r"DELETE FROM integration_mappings
           WHERE organization_id = $1 AND integration_id = $2 AND NOT metric = ANY ($3)",
    )
    .bind(org)
    .bind(id)
    .bind(&metrics)
    .execute(tx.conn())
    .await?;
    let changed = sqlx::query(
        r"INSERT INTO integration_mappings AS m (organization_id, integration_id, metric, kpi_id)
          SELECT $1, $2, u.m, u.k FROM unnest($3::text[], $4::uuid[]) AS u (m, k)
          ON CONFLICT (organization_id, integration_id, metric)
          DO UPDATE SET kpi_id = excluded.kpi_id, synced_at = NULL
           WHERE m.kpi_id IS DISTINCT FROM excluded.kpi_id",
    )
    .bind(org)
    .bind(id)
    .bind(&metrics)
    .bind(&kpis)
    .execute(tx.conn())
    .await?
    .rows_affected();
    if changed > 0 {
        sqlx::query(
            r"UPDATE integrations SET next_sync_at = now() WHERE organization_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .execute(tx.conn())
        .await?;
    }
    mappings(tx, id).await
}

/// What connecting `id` through Google's consent needs to know (admins, as themselves): its
/// provider, and the person connecting.
pub async fn authorization_target(tx: &mut OrgTx, id: Uuid) -> Result<(Provider, Uuid)> {
    require_role(tx, Role::Admin).await?;
    let integration = get(tx, id).await?;
    if integration.provider == Provider::Stripe {
        return Err(Error::Conflict {
            code: "integration_not_oauth",
            detail:
                "Stripe is connected with an API key (PATCH its credentials), not a consent screen"
                    .into(),
        });
    }
    let user = tx.user_id().await?.ok_or(Error::Forbidden(
        "a person connects Google, signed in as themselves (not an API key)",
    ))?;
    Ok((integration.provider, user))
}

/// Queues a sync of the integration, acting for the caller (admins); a sync already waiting
/// absorbs the request.
pub async fn request_sync(tx: &mut OrgTx, id: Uuid) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    let integration = get(tx, id).await?;
    if !integration.is_active {
        return Err(Error::Conflict {
            code: "integration_inactive",
            detail: "the integration is switched off (is_active false); switch it on to sync"
                .into(),
        });
    }
    // The same answer as connecting one more: the feature, or the count, is beyond the plan.
    sqlx::query(r"SELECT app.require_integration_in_plan($1)")
        .bind(id)
        .execute(tx.conn())
        .await?;
    let job = super::sync::SYNC.job(serde_json::json!({"integration_id": id, "trigger": "manual"}));
    tenantry_db::queue::enqueue(
        tx,
        org,
        &tenantry_db::queue::NewJob {
            unique_key: Some(id.to_string()),
            ..job
        },
    )
    .await?;
    Ok(())
}

/// A page of an integration's runs, newest first: ($1 organization, $2 integration, $3 before
/// this id, $4 rows).
pub const SYNCS_SQL: &str = r"SELECT id, trigger, status, started_at, finished_at, range_from, range_to, points_written, error
  FROM integration_syncs
 WHERE organization_id = $1 AND integration_id = $2 AND id < $3
 ORDER BY id DESC LIMIT $4";

/// The integration's sync runs, newest first (members and viewers).
pub async fn syncs(
    tx: &mut OrgTx,
    id: Uuid,
    page: &PageParams,
) -> Result<Page<super::sync::SyncRun>> {
    let org = tx.org();
    get(tx, id).await?;
    let before = page.after.unwrap_or(Uuid::max());
    let rows: Vec<super::sync::SyncRun> = sqlx::query_as(SYNCS_SQL)
        .bind(org)
        .bind(id)
        .bind(before)
        .bind(page.fetch_limit())
        .fetch_all(tx.conn())
        .await?;
    Ok(Page::from_rows(rows, page, |r| r.id))
}
