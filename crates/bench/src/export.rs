//! `tenantry bench org-export`: one organization's bundle (`tenantry org export`: every table,
//! rows as JSON in key order, SHA-256 per file) for the largest organization of the benchmark
//! database, against plain `COPY … TO STDOUT` of the same organization's rows (every table
//! with `organization_id`, text format, no order) into files: rows per second, side by side,
//! rounds alternating. Both write every byte to disk and sync it.

use std::io::Write;
use std::time::Instant;

use futures_util::StreamExt;
use sqlx::{Connection, PgConnection};
use tenantry_db::{bundle, ConnectionUrls};
use uuid::Uuid;

use super::Settings;
use crate::AnyError;

pub(super) async fn run(urls: &ConnectionUrls, s: &Settings) -> Result<(), AnyError> {
    let mut conn = PgConnection::connect(&urls.owner).await?;
    // The organization with the most rows in the largest tenant tables.
    let (org, points): (Uuid, i64) = sqlx::query_as(
        r"SELECT organization_id, count(*) FROM kpi_data_points GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await?;
    let tables: Vec<String> = sqlx::query_scalar(
        r"SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
             AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
             AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid
                            AND a.attname = 'organization_id' AND NOT a.attisdropped)
           ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await?;
    let scratch = std::env::temp_dir().join(format!("tenantry-bench-export-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&scratch)?;
    println!(
        "org-export: organization {org} ({points} KPI points), {} rounds",
        s.rounds
    );
    println!("| variant | rows | MB written | seconds | rows per second |");
    println!("|---|---|---|---|---|");
    let (mut ours, mut plain) = ((0u64, 0f64), (0u64, 0f64));
    for round in 0..s.rounds {
        let out = scratch.join(format!("bundle-{round}"));
        let started = Instant::now();
        let manifest = bundle::export(&mut conn, &org.to_string(), &out, |_| {}).await?;
        let seconds = started.elapsed().as_secs_f64();
        let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
        line("bundle (tenantry org export)", rows, size(&out)?, seconds);
        ours = (ours.0 + rows, ours.1 + seconds);
        std::fs::remove_dir_all(&out)?;

        let out = scratch.join(format!("copy-{round}"));
        std::fs::create_dir_all(&out)?;
        let started = Instant::now();
        let mut rows = 0u64;
        for table in &tables {
            let path = out.join(format!("{table}.copy"));
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
            let mut stream = conn
                .copy_out_raw(&format!(
                    "COPY (SELECT * FROM {table} WHERE organization_id = '{org}') TO STDOUT"
                ))
                .await?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
                file.write_all(&chunk)?;
            }
            drop(stream);
            file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        let seconds = started.elapsed().as_secs_f64();
        line(
            "plain COPY of each table's rows",
            rows,
            size(&out)?,
            seconds,
        );
        plain = (plain.0 + rows, plain.1 + seconds);
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::remove_dir_all(&scratch)?;
    println!(
        "ratio bundle / plain COPY (rows per second): {:.2}",
        (ours.0 as f64 / ours.1) / (plain.0 as f64 / plain.1)
    );
    conn.close().await?;
    Ok(())
}

fn line(variant: &str, rows: u64, bytes: u64, seconds: f64) {
    println!(
        "| {variant} | {rows} | {:.1} | {seconds:.2} | {:.0} |",
        bytes as f64 / 1e6,
        rows as f64 / seconds
    );
}

/// Bytes of the files in `dir`.
fn size(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}
