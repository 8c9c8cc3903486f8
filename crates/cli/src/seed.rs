//! `tenantry seed`: a demo organization with members and a team, made through the domain layer.

use std::net::SocketAddr;
use std::time::Duration;

use tenantry_db::{migrate, RequestContext, RuntimePool, TenantTx};
use tenantry_server::identity::{self, NewAccount};
use tenantry_server::orgs::{self, NewTeam, Role};
use uuid::Uuid;

use crate::database::Database;
use crate::AnyError;

const DEMO_EMAIL: &str = "demo@tenantry.local";

pub async fn run(database: &Database, listen: SocketAddr) -> Result<(), AnyError> {
    let owner = database.owner_pool().await?;
    migrate::up(&owner, None).await?;
    // Finding an existing account by email is an operator's lookup (the runtime role cannot
    // see users outside its organizations), so it runs as the owner.
    let existing: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE lower(email) = $1")
        .bind(DEMO_EMAIL)
        .fetch_optional(&owner.0)
        .await?;
    owner.0.close().await;

    let pool = RuntimePool::connect(&database.urls.runtime, 4).await?;
    let demo = match existing {
        Some(id) => {
            println!("demo data already present");
            id
        }
        None => create_demo(&pool).await?,
    };
    let token = identity::create_session(
        &pool,
        demo,
        Duration::from_secs(30 * 24 * 3600),
        None,
        Some("tenantry seed"),
    )
    .await?
    .token;
    pool.close().await;
    println!("signed in as {DEMO_EMAIL}; session token (valid 30 days):\n  {token}");
    println!("try:\n  curl -H 'Authorization: Bearer {token}' http://{listen}/v1/orgs");
    Ok(())
}

async fn create_demo(pool: &RuntimePool) -> Result<Uuid, AnyError> {
    let account = |email: &str, name: &str| NewAccount {
        email: email.into(),
        name: Some(name.into()),
        password_hash: None,
        provider: "password".into(),
        provider_id: None,
        clerk_user_id: None,
        email_verified: false,
        organization_name: None,
    };
    let demo = identity::sign_up(
        pool,
        NewAccount {
            organization_name: Some("Demo Company".into()),
            ..account(DEMO_EMAIL, "Demo Founder")
        },
    )
    .await?;
    let org = demo.organization.id;
    let mut colleagues = Vec::new();
    for (email, name, role) in [
        ("ada@tenantry.local", "Ada Admin", Role::Admin),
        ("max@tenantry.local", "Max Member", Role::Member),
        ("vera@tenantry.local", "Vera Viewer", Role::Viewer),
    ] {
        let user = identity::sign_up(pool, account(email, name)).await?.user.id;
        colleagues.push((user, role));
    }
    let mut tx = TenantTx::begin(pool, &RequestContext::user(demo.user.id).in_org(org)).await?;
    for (user, role) in &colleagues {
        orgs::store::add_member(&mut tx, org, *user, *role).await?;
    }
    let team = orgs::store::create_team(
        &mut tx,
        org,
        &NewTeam {
            name: "Growth".into(),
            description: Some("Owns the revenue KPIs".into()),
            lead_user_id: Some(demo.user.id),
        },
    )
    .await?;
    for (user, _) in &colleagues[..2] {
        orgs::store::add_team_member(&mut tx, org, team.id, *user).await?;
    }
    tx.commit().await?;
    println!("created organization \"Demo Company\" ({org}) with 4 members and a team");
    Ok(demo.user.id)
}
