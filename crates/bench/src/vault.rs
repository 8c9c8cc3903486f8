//! `tenantry bench vault`: the credential vault — seals and opens per second (in process, one
//! thread: AES-256-GCM twice per secret), and the rotation of 100,000 stored secrets
//! (`integrations::store::rewrap_batch`, batches of 500 as `tenantry vault rotate` does) against
//! the same rows rewritten by a plain `UPDATE` of the same bytes (the write alone). The secrets
//! are built once: 100 integrations in each of the 1,000 benchmark organizations (on a plan
//! without limits), sealed under a key named `bench1`.

use std::time::Instant;

use sqlx::PgPool;
use tenantry_db::pool::pool_options;
use tenantry_db::{ConnectionUrls, RuntimePool};
use tenantry_server::integrations::store;
use tenantry_server::vault::{Place, Vault};
use uuid::Uuid;

use super::{bench_tenants, Settings};
use crate::AnyError;

const SECRETS: i64 = 100_000;
const BATCH: i64 = 500;

pub(super) async fn run(urls: &ConnectionUrls, s: &Settings) -> Result<(), AnyError> {
    let runtime = RuntimePool::open(urls, 2).await?;
    let owner = pool_options(2).connect(&urls.owner).await?;
    let tenants = bench_tenants(urls, &runtime).await?;
    // Fixed keys, so the stored envelopes open in every run.
    let old = Vault::from_spec(&format!(
        "bench1:{}",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    ))?;
    build(&owner, &old, &tenants).await?;
    in_process(&old, s)?;

    // Rotation, then back (so the data set ends as it began), against plain rewrites.
    let new = Vault::from_spec(&format!(
        "bench2:{},bench1:{}",
        "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    ))?;
    let back = Vault::from_spec(&format!(
        "bench1:{},bench2:{}",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
    ))?;
    println!("| variant ({SECRETS} secrets, batches of {BATCH}) | secrets per second | seconds |");
    println!("|---|---|---|");
    let mut rates = Vec::new();
    for round in 0..s.rounds {
        let vault = if round % 2 == 0 { &new } else { &back };
        let started = Instant::now();
        let mut done = 0;
        loop {
            let n = store::rewrap_batch(&owner, vault, BATCH).await?;
            if n == 0 {
                break;
            }
            done += n;
        }
        let rotated = started.elapsed().as_secs_f64();
        let started = Instant::now();
        plain_rewrite(&owner).await?;
        let rewritten = started.elapsed().as_secs_f64();
        println!(
            "| rotation to {} | {:.0} | {rotated:.1} |",
            vault.primary_key_id(),
            done as f64 / rotated
        );
        println!(
            "| the same rows rewritten by a plain UPDATE, in batches | {:.0} | {rewritten:.1} |",
            SECRETS as f64 / rewritten
        );
        rates.push((done as f64 / rotated) / (SECRETS as f64 / rewritten));
    }
    // Leave the data under bench1 for the next run.
    while store::rewrap_batch(&owner, &back, BATCH).await? > 0 {}
    println!(
        "ratio rotation / plain rewrite: {}",
        rates
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    runtime.close().await;
    owner.close().await;
    Ok(())
}

/// Seals and opens per second, alternating, for the configured rounds.
fn in_process(vault: &Vault, s: &Settings) -> Result<(), AnyError> {
    let place = Place {
        org: Uuid::now_v7(),
        table: "integration_secrets",
        row: Uuid::now_v7(),
        column: "sealed",
    };
    let secret = br#"{"api_key":"rk_live_51HxBenchmarkSecretValue4242"}"#;
    let sealed = vault.seal(&place, secret);
    println!("| variant (one thread) | per second |");
    println!("|---|---|");
    for _ in 0..s.rounds {
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < s.round {
            for _ in 0..1000 {
                std::hint::black_box(vault.seal(&place, secret));
            }
            n += 1000;
        }
        println!(
            "| seal a 52-byte secret | {:.0} |",
            n as f64 / started.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < s.round {
            for _ in 0..1000 {
                std::hint::black_box(vault.open(&place, &sealed)?);
            }
            n += 1000;
        }
        println!(
            "| open it | {:.0} |",
            n as f64 / started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// 100 integrations with sealed credentials in each benchmark organization (once).
async fn build(owner: &PgPool, vault: &Vault, tenants: &[(Uuid, Uuid)]) -> Result<(), AnyError> {
    let have: i64 =
        sqlx::query_scalar(r"SELECT count(*) FROM integration_secrets WHERE key_id LIKE 'bench%'")
            .fetch_one(owner)
            .await?;
    if have >= SECRETS {
        return Ok(());
    }
    println!("sealing {SECRETS} secrets into 100 integrations per organization...");
    let per_org = (SECRETS as usize).div_ceil(tenants.len().max(1));
    for (_, org) in tenants {
        super::on_unlimited_plan(owner, *org).await?;
        let ids: Vec<Uuid> = (0..per_org).map(|_| Uuid::now_v7()).collect();
        let names: Vec<String> = (0..per_org).map(|i| format!("Bench {i}")).collect();
        let sealed: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| {
                vault.seal(
                    &Place {
                        org: *org,
                        table: "integration_secrets",
                        row: *id,
                        column: "sealed",
                    },
                    br#"{"api_key":"rk_live_51HxBenchmarkSecretValue4242"}"#,
                )
            })
            .collect();
        let mut tx = owner.begin().await?;
        sqlx::query(
            r"INSERT INTO integrations (id, organization_id, provider, name)
              SELECT i, $1, 'stripe', n FROM unnest($2::uuid[], $3::text[]) AS u(i, n)",
        )
        .bind(org)
        .bind(&ids)
        .bind(&names)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            r"INSERT INTO integration_secrets (organization_id, integration_id, sealed, key_id, hint)
              SELECT $1, i, s, $4, 'api_key …4242' FROM unnest($2::uuid[], $3::bytea[]) AS u(i, s)",
        )
        .bind(org)
        .bind(&ids)
        .bind(&sealed)
        .bind(vault.primary_key_id())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    sqlx::query(r"ANALYZE integrations, integration_secrets")
        .execute(owner)
        .await?;
    Ok(())
}

/// Every secret row rewritten with its own bytes, in committed batches like the rotation.
async fn plain_rewrite(owner: &PgPool) -> Result<(), AnyError> {
    let mut after = (Uuid::nil(), Uuid::nil());
    loop {
        let last: Option<(Uuid, Uuid)> = sqlx::query_as(
            r"WITH batch AS (
                SELECT organization_id, integration_id FROM integration_secrets
                 WHERE (organization_id, integration_id) > ($1, $2)
                 ORDER BY organization_id, integration_id LIMIT $3)
              , done AS (
                UPDATE integration_secrets s SET sealed = s.sealed, key_id = s.key_id
                  FROM batch b WHERE s.organization_id = b.organization_id AND s.integration_id = b.integration_id
                RETURNING s.organization_id, s.integration_id)
              SELECT organization_id, integration_id FROM done
               ORDER BY organization_id DESC, integration_id DESC LIMIT 1",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(BATCH)
        .fetch_optional(owner)
        .await?;
        match last {
            Some(last) => after = last,
            None => return Ok(()),
        }
    }
}
