//! Bulk ingest of data points for many KPIs: a JSON array, NDJSON or CSV body, read as a stream
//! (rows are parsed as they arrive and written in batches, never held all at once). All or
//! nothing: one transaction, and any bad row fails the request with every bad row's index and
//! reason (up to [`MAX_ERRORS`]).

use std::collections::{HashMap, HashSet};

use axum::body::Body;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Deserialize;
use uuid::Uuid;

use crate::kernel::access::require_role;
use crate::kernel::access::Role;
use crate::kernel::error::{Error, FieldError, Result};
use crate::kernel::org_tx::OrgTx;

/// Rows written per INSERT.
const BATCH: usize = 5000;
/// Bad rows reported at most (parsing goes on to count them all).
pub const MAX_ERRORS: usize = 100;
/// Largest body one ingest reads.
pub const MAX_BYTES: usize = 512 * 1024 * 1024;

/// The formats a body can come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    JsonArray,
    Ndjson,
    Csv,
}

impl Format {
    /// From a `Content-Type` (parameters ignored).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or_default().trim() {
            "application/json" => Some(Format::JsonArray),
            "application/x-ndjson" | "application/jsonl" => Some(Format::Ndjson),
            "text/csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// One row as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    kpi_id: Uuid,
    value: serde_json::Number,
    observed_at: Option<DateTime<Utc>>,
    source: Option<String>,
}

/// A checked row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub kpi_id: Uuid,
    pub value: f64,
    pub observed_at: Option<DateTime<Utc>>,
    pub source: String,
}

/// Cuts a byte stream into records: lines (NDJSON, CSV) or the elements of one JSON array.
#[derive(Default)]
struct Splitter {
    buffer: Vec<u8>,
    /// JSON array state: inside the array, nesting depth, inside a string, after a backslash.
    started: bool,
    finished: bool,
    depth: usize,
    in_string: bool,
    escaped: bool,
    scanned: usize,
}

impl Splitter {
    /// Complete records found so far (the rest waits for more bytes).
    fn records(
        &mut self,
        format: Format,
        bytes: &[u8],
    ) -> std::result::Result<Vec<Vec<u8>>, String> {
        self.buffer.extend_from_slice(bytes);
        match format {
            Format::Ndjson | Format::Csv => {
                let mut out = Vec::new();
                while let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
                    let mut line: Vec<u8> = self.buffer.drain(..=pos).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    out.push(line);
                }
                Ok(out)
            }
            Format::JsonArray => self.array_elements(),
        }
    }

    fn array_elements(&mut self) -> std::result::Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        let mut i = self.scanned;
        let mut start = 0;
        while i < self.buffer.len() {
            let b = self.buffer[i];
            if self.finished {
                if !b.is_ascii_whitespace() {
                    return Err("content after the end of the array".into());
                }
            } else if !self.started {
                if b == b'[' {
                    self.started = true;
                    start = i + 1;
                } else if !b.is_ascii_whitespace() {
                    return Err("the body must be a JSON array".into());
                }
            } else if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' if self.depth > 0 => self.depth -= 1,
                    b',' if self.depth == 0 => {
                        out.push(self.buffer[start..i].to_vec());
                        start = i + 1;
                    }
                    b']' => {
                        let last = self.buffer[start..i].to_vec();
                        if !last.iter().all(u8::is_ascii_whitespace) || !out.is_empty() {
                            out.push(last);
                        }
                        self.finished = true;
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        // Keep only the unfinished element.
        self.buffer.drain(..start.min(self.buffer.len()));
        self.scanned = self.buffer.len();
        Ok(out)
    }

    fn finish(&self, format: Format) -> std::result::Result<Option<Vec<u8>>, String> {
        match format {
            Format::JsonArray if !self.finished => Err("the JSON array is not closed".into()),
            Format::JsonArray => Ok(None),
            _ if self.buffer.iter().all(u8::is_ascii_whitespace) => Ok(None),
            _ => Ok(Some(self.buffer.clone())),
        }
    }
}

/// Parses and checks one record; its problem otherwise.
fn parse(
    format: Format,
    record: &[u8],
    header: &[String],
    kpis: &HashSet<Uuid>,
) -> std::result::Result<Row, String> {
    let raw: RawRow = match format {
        Format::JsonArray | Format::Ndjson => {
            serde_json::from_slice(record).map_err(|e| e.to_string())?
        }
        Format::Csv => {
            let line = std::str::from_utf8(record).map_err(|_| "not UTF-8".to_string())?;
            let fields = crate::kernel::csv::split_line(line)?;
            if fields.len() != header.len() {
                return Err(format!(
                    "expected {} fields, found {}",
                    header.len(),
                    fields.len()
                ));
            }
            let get = |name: &str| {
                header
                    .iter()
                    .position(|h| h == name)
                    .map(|i| fields[i].trim().to_string())
            };
            let value: f64 = get("value")
                .ok_or("no value column")?
                .parse()
                .map_err(|_| "value is not a number".to_string())?;
            RawRow {
                kpi_id: get("kpi_id")
                    .ok_or("no kpi_id column")?
                    .parse()
                    .map_err(|_| "kpi_id is not a UUID".to_string())?,
                value: serde_json::Number::from_f64(value)
                    .ok_or("value must be a finite number")?,
                observed_at: match get("observed_at").filter(|t| !t.is_empty()) {
                    Some(t) => Some(
                        t.parse()
                            .map_err(|_| "observed_at is not an RFC 3339 time".to_string())?,
                    ),
                    None => None,
                },
                source: get("source")
                    .filter(|s| !s.is_empty())
                    .map(|s| crate::kernel::csv::unescape(&s).to_string()),
            }
        }
    };
    let value = raw
        .value
        .as_f64()
        .filter(|v| v.is_finite())
        .ok_or("value must be a finite number")?;
    if !kpis.contains(&raw.kpi_id) {
        return Err("unknown KPI".into());
    }
    let source = raw.source.unwrap_or_else(|| "manual".into());
    if source.is_empty() || source.chars().count() > 100 {
        return Err("source must be 1 to 100 characters".into());
    }
    if source.contains('\0') {
        return Err("source must not contain the NUL character".into());
    }
    Ok(Row {
        kpi_id: raw.kpi_id,
        value,
        observed_at: raw.observed_at,
        source,
    })
}

/// Writes a batch of points (upsert on KPI, time and source); within it the last row for a
/// (KPI, time, source) wins. The one write path of points: bulk ingest and `POST …/points`.
pub(crate) async fn write(tx: &mut OrgTx, rows: &mut Vec<Row>) -> Result<u64> {
    let org = tx.org();
    let mut last: HashMap<(Uuid, Option<DateTime<Utc>>, String), usize> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        last.insert((r.kpi_id, r.observed_at, r.source.clone()), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    let kpis: Vec<Uuid> = keep.iter().map(|i| rows[*i].kpi_id).collect();
    let values: Vec<f64> = keep.iter().map(|i| rows[*i].value).collect();
    let times: Vec<Option<DateTime<Utc>>> = keep.iter().map(|i| rows[*i].observed_at).collect();
    let sources: Vec<&str> = keep.iter().map(|i| rows[*i].source.as_str()).collect();
    let done = sqlx::query(
        r"INSERT INTO kpi_data_points (organization_id, kpi_id, value, observed_at, source)
         SELECT $1, k, v, coalesce(t, now()), s
           FROM unnest($2::uuid[], $3::float8[], $4::timestamptz[], $5::text[]) AS u(k, v, t, s)
         ON CONFLICT (organization_id, kpi_id, observed_at, source) DO UPDATE SET value = excluded.value",
    )
    .bind(org)
    .bind(&kpis)
    .bind(&values)
    .bind(&times)
    .bind(&sources)
    .execute(tx.conn())
    .await?;
    rows.clear();
    Ok(done.rows_affected())
}

/// What an ingest did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Ingested {
    /// Rows read.
    pub rows: u64,
    /// Points written (new or replaced).
    pub written: u64,
}

/// Reads `body` in `format` and records every row for `org`'s live KPIs, or nothing.
pub async fn ingest(tx: &mut OrgTx, format: Format, body: Body) -> Result<Ingested> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let kpis: HashSet<Uuid> = sqlx::query_scalar(
        r"SELECT id FROM kpis WHERE organization_id = $1 AND deleted_at IS NULL",
    )
    .bind(org)
    .fetch_all(tx.conn())
    .await?
    .into_iter()
    .collect();
    let mut splitter = Splitter::default();
    let mut header: Vec<String> = Vec::new();
    let mut batch: Vec<Row> = Vec::with_capacity(BATCH);
    let mut errors: Vec<FieldError> = Vec::new();
    let (mut rows, mut written, mut index) = (0u64, 0u64, 0usize);
    let mut stream = body.into_data_stream();
    let mut done = false;
    let mut bytes_read = 0usize;
    while !done {
        let records = match stream.next().await {
            Some(chunk) => {
                let chunk =
                    chunk.map_err(|e| Error::BadRequest(format!("reading the body: {e}")))?;
                bytes_read += chunk.len();
                if bytes_read > MAX_BYTES {
                    return Err(Error::PayloadTooLarge);
                }
                splitter
                    .records(format, &chunk)
                    .map_err(Error::BadRequest)?
            }
            None => {
                done = true;
                splitter
                    .finish(format)
                    .map_err(Error::BadRequest)?
                    .into_iter()
                    .collect()
            }
        };
        for record in records {
            if format == Format::Csv && header.is_empty() {
                header = crate::kernel::csv::split_line(String::from_utf8_lossy(&record).trim())
                    .map_err(|e| Error::BadRequest(format!("CSV header: {e}")))?
                    .into_iter()
                    .map(|h| h.trim().to_string())
                    .collect();
                for required in ["kpi_id", "value"] {
                    if !header.iter().any(|h| h == required) {
                        return Err(Error::BadRequest(format!(
                            "the CSV header needs a {required} column"
                        )));
                    }
                }
                continue;
            }
            if format == Format::Ndjson && record.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            rows += 1;
            match parse(format, &record, &header, &kpis) {
                Ok(row) if errors.is_empty() => {
                    batch.push(row);
                    if batch.len() >= BATCH {
                        written += write(tx, &mut batch).await?;
                    }
                }
                Ok(_) => {}
                Err(reason) => {
                    if errors.len() < MAX_ERRORS {
                        errors.push(FieldError::new(&format!("rows[{index}]"), reason));
                    }
                    batch.clear();
                }
            }
            index += 1;
        }
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    if rows == 0 {
        return Err(Error::invalid("rows", "the body holds no rows"));
    }
    if !batch.is_empty() {
        written += write(tx, &mut batch).await?;
    }
    Ok(Ingested { rows, written })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(format: Format, chunks: &[&str]) -> std::result::Result<Vec<String>, String> {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(s.records(format, c.as_bytes())?);
        }
        out.extend(s.finish(format)?);
        Ok(out
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r).trim().to_string())
            .collect())
    }

    #[test]
    fn json_arrays_split_into_elements_across_chunk_borders() {
        let got = split(
            Format::JsonArray,
            &[" [ {\"a\": \"x,]\\\"\"}", ", {\"b\": [1,", "2]} ", "] "],
        )
        .expect("split");
        assert_eq!(got, vec!["{\"a\": \"x,]\\\"\"}", "{\"b\": [1,2]}"]);
        assert_eq!(
            split(Format::JsonArray, &["[]"]).expect("empty"),
            Vec::<String>::new()
        );
        assert!(split(Format::JsonArray, &["{\"a\": 1}"]).is_err());
        assert!(
            split(Format::JsonArray, &["[{\"a\": 1}"]).is_err(),
            "unclosed"
        );
        assert!(
            split(Format::JsonArray, &["[1] 2"]).is_err(),
            "trailing content"
        );
    }

    #[test]
    fn lines_split_with_or_without_a_final_newline() {
        assert_eq!(
            split(Format::Ndjson, &["a\r\nb", "\nc"]).expect("split"),
            vec!["a", "b", "c"]
        );
        assert_eq!(split(Format::Csv, &["x,y\n"]).expect("split"), vec!["x,y"]);
    }

    #[test]
    fn rows_are_checked_one_by_one() {
        let kpi = Uuid::now_v7();
        let kpis: HashSet<Uuid> = [kpi].into();
        let header: Vec<String> = ["kpi_id", "observed_at", "value", "source"]
            .map(String::from)
            .to_vec();
        let csv = |line: String| parse(Format::Csv, line.as_bytes(), &header, &kpis);
        assert!(csv(format!("{kpi},2026-01-01T00:00:00Z,1.5,stripe")).is_ok());
        assert_eq!(
            csv(format!("{kpi},2026-01-01T00:00:00Z,abc,x")),
            Err("value is not a number".into())
        );
        for bad in ["NaN", "inf", "-infinity"] {
            assert_eq!(
                csv(format!("{kpi},,{bad},x")),
                Err("value must be a finite number".into())
            );
        }
        assert_eq!(
            csv(format!("{kpi},yesterday,1,x")),
            Err("observed_at is not an RFC 3339 time".into())
        );
        assert_eq!(
            csv(format!("{},,1,x", Uuid::now_v7())),
            Err("unknown KPI".into())
        );
        let json = |s: String| parse(Format::Ndjson, s.as_bytes(), &[], &kpis);
        assert!(json(format!("{{\"kpi_id\":\"{kpi}\",\"value\":2}}")).is_ok());
        assert!(json(format!("{{\"kpi_id\":\"{kpi}\",\"value\":\"2\"}}")).is_err());
    }
}
