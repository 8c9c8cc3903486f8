//! The catalog check behind "the database is the security boundary". A guard test runs it on a
//! migrated database and fails the build on any violation; `tenantry db check` runs it on demand.

use sqlx::PgConnection;

use crate::{leakproof, RUNTIME_ROLE};

/// Schemas that are not ours.
const SYSTEM_SCHEMAS: &str = "('pg_catalog', 'information_schema', 'pg_toast')";

/// The settings app.begin_request binds (quoted, as a function would name them). Only
/// app.context() reads them, verifying their MAC; only app.begin_request writes them.
const REQUEST_SETTING: &str = "$re$'app\\.(?:user_id|session_id|api_key_id|org_id|org_role|service|ip|user_agent|request_id|calendar_of|context_mac)'$re$";

/// Each rule is a query returning one text row per violation.
const RULES: &[(&str, &str)] = &[
    (
        "tables without ENABLE and FORCE ROW LEVEL SECURITY",
        r"SELECT format('%s: row-level security is not enabled and forced', c.oid::regclass)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN SYSTEM_SCHEMAS
            AND n.nspname NOT LIKE 'pg_temp%' AND c.relname <> '_sqlx_migrations'
            AND NOT (c.relrowsecurity AND c.relforcerowsecurity)",
    ),
    (
        "tables without a policy",
        r"SELECT format('%s: has no row-level security policy', c.oid::regclass)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN SYSTEM_SCHEMAS
            AND n.nspname NOT LIKE 'pg_temp%' AND c.relname <> '_sqlx_migrations'
            AND NOT EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid)",
    ),
    (
        "write policies without WITH CHECK",
        r"SELECT format('%s: policy %s allows writes without WITH CHECK', p.polrelid::regclass, p.polname)
           FROM pg_policy p
          WHERE p.polcmd IN ('a', 'w') AND p.polwithcheck IS NULL",
    ),
    (
        "tenant tables without the audit trigger",
        r"SELECT format('%s: holds organization_id but has no audit trigger', c.oid::regclass)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN SYSTEM_SCHEMAS
            -- The trail itself, and its months.
            AND c.oid <> 'audit.events'::regclass
            AND c.oid NOT IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit.events'::regclass)
            -- A tool's history is itself an audit trail, written only by its definer trigger.
            AND NOT (c.relname = 'audit_log' AND n.nspname LIKE 'sprint\_%')
            -- Jobs are work, not records: what they write is audited, naming the job.
            AND n.nspname <> 'queue'
            -- Counts kept by triggers on audited rows (members, KPIs) or by the service (requests,
            -- tokens, bytes), the alerts they caused, and tokens held for replies in flight:
            -- derived, not records. An assistant's turns: immutable rows with their author and
            -- time, private to that author (their events would tell admins who asked what when).
            AND NOT (n.nspname = 'public' AND c.relname IN ('usage_gauges', 'usage_tracking', 'usage_alerts',
                                                            'ai_token_reservations', 'ai_messages'))
            AND (EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'organization_id' AND NOT a.attisdropped)
                 OR c.oid = 'public.organizations'::regclass)
            AND (SELECT count(DISTINCT t.tgtype) FROM pg_trigger t
                  WHERE t.tgrelid = c.oid AND t.tgfoid = 'audit.record_change'::regproc) < 3",
    ),
    (
        "tenant tables without a tenant-scoped key",
        r"SELECT format('%s: has no UNIQUE (organization_id, id)', c.oid::regclass)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN SYSTEM_SCHEMAS
            AND c.oid <> 'audit.events'::regclass
            AND c.oid NOT IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit.events'::regclass)
            -- Nothing references a job by (organization, id); the runtime role only inserts them.
            AND n.nspname <> 'queue'
            AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'organization_id' AND NOT a.attisdropped)
            AND NOT EXISTS (
                SELECT FROM pg_constraint k
                 WHERE k.conrelid = c.oid AND k.contype IN ('u', 'p')
                   AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
                         WHERE a.attrelid = c.oid AND a.attnum = ANY (k.conkey)) = ARRAY['id', 'organization_id'])",
    ),
    (
        "references between tenant tables that leave out organization_id",
        r"SELECT format('%s: foreign key %s to %s does not include organization_id', k.conrelid::regclass, k.conname, k.confrelid::regclass)
           FROM pg_constraint k
          WHERE k.contype = 'f'
            AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = k.conrelid AND a.attname = 'organization_id' AND NOT a.attisdropped)
            AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = k.confrelid AND a.attname = 'organization_id' AND NOT a.attisdropped)
            AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = k.conrelid AND a.attname = 'organization_id' AND a.attnum = ANY (k.conkey))",
    ),
    (
        "a runtime role that is privileged",
        r"SELECT format('role %s is superuser, can bypass RLS, create roles or databases', rolname)
           FROM pg_roles WHERE rolname = 'RUNTIME' AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication)",
    ),
    (
        "objects owned by the runtime role",
        r"SELECT format('%s %s is owned by the runtime role', kind, name) FROM (
             SELECT 'relation' AS kind, c.oid::regclass::text AS name FROM pg_class c WHERE c.relowner = 'RUNTIME'::regrole
             UNION ALL SELECT 'schema', nspname FROM pg_namespace WHERE nspowner = 'RUNTIME'::regrole
             UNION ALL SELECT 'function', p.oid::regprocedure::text FROM pg_proc p WHERE p.proowner = 'RUNTIME'::regrole
             UNION ALL SELECT 'type', t.oid::regtype::text FROM pg_type t WHERE t.typowner = 'RUNTIME'::regrole
             UNION ALL SELECT 'database', datname FROM pg_database WHERE datname = current_database() AND datdba = 'RUNTIME'::regrole
         ) owned",
    ),
    (
        "places where the runtime role can create objects",
        r"SELECT format('the runtime role can create objects in schema %s', nspname)
           FROM pg_namespace WHERE has_schema_privilege('RUNTIME', oid, 'CREATE')
          UNION ALL
         SELECT format('the runtime role can %s in database %s', p, current_database())
           FROM unnest(ARRAY['CREATE', 'TEMPORARY']) p
          WHERE has_database_privilege('RUNTIME', current_database(), p)",
    ),
    (
        "unsafe functions",
        r"SELECT format('function %s: %s', p.oid::regprocedure, problem) FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
          CROSS JOIN LATERAL (VALUES
              (p.proleakproof AND NOT EXISTS (SELECT FROM unnest(LEAKPROOF_BY_DESIGN) f WHERE to_regprocedure(f) = p.oid),
               'is LEAKPROOF'),
              (p.prosecdef AND NOT coalesce(EXISTS (SELECT FROM unnest(p.proconfig) s WHERE s LIKE 'search_path=%'), false),
               'is SECURITY DEFINER without a pinned search_path'),
              (p.prosecdef AND has_function_privilege('public', p.oid, 'EXECUTE'),
               'is SECURITY DEFINER and executable by PUBLIC')) AS checks(failed, problem)
          WHERE n.nspname NOT IN SYSTEM_SCHEMAS AND failed",
    ),
    (
        "a runtime role that can read other sessions' statements",
        r"SELECT format('the runtime role can call %s, which shows other sessions'' statements (and the credentials they bind); as superuser: %s',
                       f, 'REVOKE EXECUTE ON FUNCTION ' || f || ' FROM PUBLIC')
           FROM unnest(ARRAY['pg_catalog.pg_stat_get_activity(integer)',
                             'pg_catalog.pg_stat_get_backend_activity(integer)']) f
          WHERE has_function_privilege('RUNTIME', f, 'EXECUTE')",
    ),
    (
        "policies that read request settings directly",
        r"SELECT format('%s: policy %s reads settings directly instead of through app.context()', p.polrelid::regclass, p.polname)
           FROM pg_policy p
          WHERE concat(pg_get_expr(p.polqual, p.polrelid), ' ', pg_get_expr(p.polwithcheck, p.polrelid))
                ~* '(current_setting|set_config|pg_settings)'",
    ),
    (
        "functions that read or write the request context unverified",
        r"SELECT format('function %s: reads or writes the request context (%s) itself; use app.context()',
                       p.oid::regprocedure, substring(p.prosrc FROM REQUEST_SETTING))
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname NOT IN SYSTEM_SCHEMAS AND p.prosrc ~ REQUEST_SETTING
            AND p.oid NOT IN ('app.context()'::regprocedure,
                              'app.begin_request(bytea, uuid, bytea, bytea, bytea, uuid, text, inet, text, text)'::regprocedure)",
    ),
    (
        "views that run with their owner's rights",
        r"SELECT format('view %s is not security_invoker', c.oid::regclass)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'v' AND n.nspname NOT IN SYSTEM_SCHEMAS
            AND NOT coalesce('security_invoker=true' = ANY (c.reloptions), false)",
    ),
    (
        "materialized views the runtime role can read",
        r"SELECT format('materialized view %s is readable by the runtime role (it has no RLS)', c.oid::regclass)
           FROM pg_class c
          WHERE c.relkind = 'm' AND has_table_privilege('RUNTIME', c.oid, 'SELECT')",
    ),
];

/// Every violation of the isolation rules in the connected database, as readable sentences.
pub async fn violations(conn: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    let mut found = Vec::new();
    let leakproof_by_design = format!(
        "ARRAY[{}]",
        leakproof::FUNCTIONS
            .iter()
            .map(|(function, _)| format!("'{function}'"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (_, sql) in RULES {
        let sql = sql
            .replace("SYSTEM_SCHEMAS", SYSTEM_SCHEMAS)
            .replace("REQUEST_SETTING", REQUEST_SETTING)
            .replace("LEAKPROOF_BY_DESIGN", &leakproof_by_design)
            .replace("RUNTIME", RUNTIME_ROLE);
        let rows: Vec<String> = sqlx::query_scalar(&sql).fetch_all(&mut *conn).await?;
        found.extend(rows);
    }
    Ok(found)
}
