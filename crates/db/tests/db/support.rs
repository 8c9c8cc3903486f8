//! Helpers shared by the database tests: users and organizations made through the tenant
//! transaction, as the service makes them.

use tenantry_db::{RequestContext, RuntimePool, TenantTx};
use uuid::Uuid;

/// Creates a user (acting as that new user, as sign-up does) and returns its id.
pub async fn user(pool: &RuntimePool, email: &str) -> Uuid {
    let id = Uuid::now_v7();
    let mut tx = TenantTx::begin(pool, &RequestContext::user(id))
        .await
        .expect("begin");
    sqlx::query("INSERT INTO users (id, email, name) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(email)
        .bind(email.split('@').next())
        .execute(tx.conn())
        .await
        .expect("insert user");
    tx.commit().await.expect("commit");
    id
}

/// Creates an organization as `owner` (who becomes its owner) and returns its id.
pub async fn org(pool: &RuntimePool, owner: Uuid, slug: &str) -> Uuid {
    let id = Uuid::now_v7();
    let mut tx = TenantTx::begin(pool, &RequestContext::user(owner))
        .await
        .expect("begin");
    sqlx::query("INSERT INTO organizations (id, name, slug) VALUES ($1, $2, $2)")
        .bind(id)
        .bind(slug)
        .execute(tx.conn())
        .await
        .expect("insert organization");
    tx.commit().await.expect("commit");
    id
}

/// Adds `user` to `org` with `role`, acting as `admin`.
pub async fn add_member(pool: &RuntimePool, admin: Uuid, org: Uuid, user: Uuid, role: &str) {
    let mut tx = TenantTx::begin(pool, &RequestContext::user(admin).in_org(org))
        .await
        .expect("begin");
    sqlx::query(
        "INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, $3)",
    )
    .bind(org)
    .bind(user)
    .bind(role)
    .execute(tx.conn())
    .await
    .expect("insert member");
    tx.commit().await.expect("commit");
}

/// Runs one statement as `user` (optionally inside `org`) and returns rows affected, or the
/// database error's SQLSTATE.
pub async fn exec_as(
    pool: &RuntimePool,
    user: Uuid,
    org: Option<Uuid>,
    sql: &str,
    bind: &[Uuid],
) -> Result<u64, String> {
    let mut ctx = RequestContext::user(user);
    ctx.org_id = org;
    let mut tx = TenantTx::begin(pool, &ctx).await.expect("begin");
    let mut query = sqlx::query(sql);
    for b in bind {
        query = query.bind(*b);
    }
    let result = query.execute(tx.conn()).await;
    match result {
        Ok(done) => {
            tx.commit().await.expect("commit");
            Ok(done.rows_affected())
        }
        Err(sqlx::Error::Database(e)) => Err(e.code().map(|c| c.to_string()).unwrap_or_default()),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// Counts rows of `sql` (a `SELECT count(*) ...`) as `user`.
pub async fn count_as(
    pool: &RuntimePool,
    user: Uuid,
    org: Option<Uuid>,
    sql: &str,
    bind: &[Uuid],
) -> i64 {
    let mut ctx = RequestContext::user(user);
    ctx.org_id = org;
    let mut tx = TenantTx::begin(pool, &ctx).await.expect("begin");
    let mut query = sqlx::query_scalar(sql);
    for b in bind {
        query = query.bind(*b);
    }
    query.fetch_one(tx.conn()).await.expect("count")
}
