use sqlx::{Connection, PgConnection};
use tenantry_db::cluster::Role;
use tenantry_db::guard::violations;
use tenantry_db::leakproof;
use tenantry_db::testing::TestDb;
use tenantry_db::{RequestContext, TenantTx};

#[tokio::test]
async fn the_migrated_schema_passes_the_guard() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let mut conn = owner.0.acquire().await.expect("acquire");
    let found = violations(&mut conn).await.expect("guard");
    assert!(found.is_empty(), "guard violations:\n{}", found.join("\n"));
}

#[tokio::test]
async fn a_tenant_table_without_protection_fails_the_guard() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let mut conn = owner.0.acquire().await.expect("acquire");
    sqlx::raw_sql(
        "CREATE TABLE public.unprotected_notes (id uuid PRIMARY KEY, organization_id uuid NOT NULL, body text);
         CREATE TABLE public.leaky_links (id uuid PRIMARY KEY, organization_id uuid NOT NULL,
             note_id uuid REFERENCES public.unprotected_notes (id));
         CREATE FUNCTION app.unsafe_lookup() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
         CREATE VIEW public.owner_rights_view AS SELECT id FROM public.organizations;
         CREATE POLICY trusting ON public.teams FOR SELECT
             USING (organization_id = nullif(current_setting('app.org_id', true), '')::uuid);
         CREATE FUNCTION app.raw_org() RETURNS uuid LANGUAGE sql STABLE
             AS $$ SELECT nullif(current_setting('app.org_id', true), '')::uuid $$;",
    )
    .execute(&mut *conn)
    .await
    .expect("create bad objects");
    let found = violations(&mut conn).await.expect("guard").join("\n");
    for expected in [
        "unprotected_notes: row-level security is not enabled and forced",
        "unprotected_notes: has no row-level security policy",
        "unprotected_notes: holds organization_id but has no audit trigger",
        "unprotected_notes: has no UNIQUE (organization_id, id)",
        "leaky_links: foreign key leaky_links_note_id_fkey to unprotected_notes does not include organization_id",
        "function app.unsafe_lookup(): is SECURITY DEFINER without a pinned search_path",
        "view owner_rights_view is not security_invoker",
        "teams: policy trusting reads settings directly instead of through app.context()",
        "function app.raw_org(): reads or writes the request context ('app.org_id') itself",
    ] {
        assert!(found.contains(expected), "missing {expected:?} in:\n{found}");
    }

    sqlx::raw_sql(
        "DROP TABLE public.leaky_links, public.unprotected_notes; DROP FUNCTION app.unsafe_lookup();
         DROP VIEW public.owner_rights_view; DROP POLICY trusting ON public.teams;
         DROP FUNCTION app.raw_org();",
    )
    .execute(&mut *conn)
    .await
    .expect("drop bad objects");
    let found = violations(&mut conn).await.expect("guard");
    assert!(
        found.is_empty(),
        "guard violations after cleanup:\n{}",
        found.join("\n")
    );
}

/// Search operators are declared LEAKPROOF so indexes serve them under RLS; nothing else is,
/// and never LIKE or a regular expression, whose pattern errors would reveal other rows.
#[tokio::test]
async fn only_the_search_operators_are_declared_leakproof() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let mut conn = owner.0.acquire().await.expect("acquire");
    let missing = leakproof::missing(&mut conn).await.expect("missing");
    assert!(missing.is_empty(), "not declared: {missing:?}");
    let pattern_operators: Vec<(String, bool)> = sqlx::query_as(
        r"SELECT oid::regprocedure::text, proleakproof FROM pg_proc
           WHERE proname IN ('textlike', 'texticlike', 'textregexeq', 'texticregexeq', 'like_escape')",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("pattern operators");
    assert!(pattern_operators.len() >= 5, "{pattern_operators:?}");
    assert!(
        pattern_operators.iter().all(|(_, leakproof)| !leakproof),
        "{pattern_operators:?}"
    );

    // Another function of the extension declared LEAKPROOF is a violation.
    let mut superuser = PgConnection::connect(&db.url(Role::Superuser))
        .await
        .expect("superuser");
    sqlx::raw_sql("ALTER FUNCTION public.similarity_op(text, text) LEAKPROOF")
        .execute(&mut superuser)
        .await
        .expect("declare");
    let found = violations(&mut conn).await.expect("guard");
    assert_eq!(found, ["function similarity_op(text,text): is LEAKPROOF"]);
}

#[tokio::test]
async fn the_runtime_role_can_neither_create_objects_nor_switch_rls_off() {
    let db = TestDb::new().await;
    for sql in [
        "CREATE TABLE public.mine (id int)",
        "CREATE TEMP TABLE mine (id int)",
        "CREATE SCHEMA mine",
        "CREATE FUNCTION app.mine() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "ALTER TABLE organizations DISABLE ROW LEVEL SECURITY",
        "TRUNCATE organizations",
    ] {
        let mut tx = TenantTx::begin(&db.runtime, &RequestContext::default())
            .await
            .expect("begin");
        let err = sqlx::query(sql).execute(tx.conn()).await.expect_err(sql);
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .unwrap_or_default();
        assert!(
            code == "42501" || code == "42P01",
            "{sql}: expected a privilege error, got {err}"
        );
    }
    // Turning row security off makes a query on a protected table fail instead of bypassing it.
    let mut tx = TenantTx::begin(&db.runtime, &RequestContext::default())
        .await
        .expect("begin");
    sqlx::query("SET LOCAL row_security = off")
        .execute(tx.conn())
        .await
        .expect("set");
    let err = sqlx::query("SELECT count(*) FROM organizations")
        .execute(tx.conn())
        .await
        .expect_err("row_security=off must not bypass");
    assert_eq!(
        err.as_database_error()
            .and_then(|e| e.code())
            .unwrap_or_default(),
        "42501"
    );
}
