//! The operators of customer search and filters, and of calendar ranges, declared LEAKPROOF so
//! that row-level security lets indexes serve them.
//!
//! A policy makes its table a security barrier: PostgreSQL evaluates a query's conditions before
//! the policy's (and so uses them as index conditions) only when their functions are LEAKPROOF,
//! i.e. say nothing about the rows they look at except through their result. The trigram,
//! array and JSON containment operators are not declared so, although they raise no error that
//! depends on the values compared. Without the declaration, a search of a 100,000-customer
//! organization reads all of its rows (56 ms); with it, the search index (7–8 ms). Range
//! overlap (`range_overlaps`) compares bounds with the subtype's ordering and raises an error only
//! for ranges of two different types; without it a week's calendar reads the organization's
//! every appointment.
//!
//! Only a superuser may declare it, so the managed cluster does it after migrations, and an
//! operator of an external server runs [`mark_sql`]'s statements once per database
//! (`tenantry db check` prints them when they are missing). Search stays correct without it, only slower. pg_dump does not
//! carry the declaration (it lives on built-in and extension functions): run it again after a
//! logical restore.
//!
//! `LIKE` (`textlike`) is deliberately not in the list: it raises an error for a pattern that
//! ends with an escape character, so `'x' LIKE column` evaluated before the policy would reveal
//! whether rows of other organizations end with a backslash. Search therefore matches with word
//! similarity only.

use sqlx::{Connection, PgConnection};

/// The functions declared LEAKPROOF, as `regprocedure` signatures, with the operator each serves.
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("public.word_similarity_op(text, text)", "q <% search_text"),
    (
        "public.word_similarity_commutator_op(text, text)",
        "search_text %> q",
    ),
    ("pg_catalog.arrayoverlap(anyarray, anyarray)", "tags && …"),
    ("pg_catalog.arraycontains(anyarray, anyarray)", "tags @> …"),
    (
        "pg_catalog.jsonb_contains(jsonb, jsonb)",
        "custom_fields @> …",
    ),
    (
        "pg_catalog.range_overlaps(anyrange, anyrange)",
        "during && … (calendars)",
    ),
];

/// The statements that declare [`FUNCTIONS`] LEAKPROOF (as a superuser, in the application
/// database, after migrations). Idempotent.
pub fn mark_sql() -> String {
    FUNCTIONS
        .iter()
        .map(|(function, _)| format!("ALTER FUNCTION {function} LEAKPROOF;\n"))
        .collect()
}

/// Declares [`FUNCTIONS`] LEAKPROOF in the database at `superuser_url` (a superuser's), as far
/// as they exist there (migrations below the CRM's have no trigram functions yet).
pub async fn mark(superuser_url: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(superuser_url).await?;
    for function in missing(&mut conn).await? {
        sqlx::raw_sql(&format!("ALTER FUNCTION {function} LEAKPROOF"))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await
}

/// Which of [`FUNCTIONS`] exist in the connected database but are not LEAKPROOF.
pub async fn missing(conn: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    let functions: Vec<&str> = FUNCTIONS.iter().map(|(function, _)| *function).collect();
    sqlx::query_scalar(
        r"SELECT f FROM unnest($1::text[]) f JOIN pg_proc p ON p.oid = to_regprocedure(f)
           WHERE NOT p.proleakproof",
    )
    .bind(functions)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    /// The README gives an external server's operator the same statements.
    #[test]
    fn the_readme_names_every_statement() {
        let readme = include_str!("../../../README.md");
        for statement in super::mark_sql().lines() {
            assert!(readme.contains(statement), "README lacks {statement}");
        }
    }
}
