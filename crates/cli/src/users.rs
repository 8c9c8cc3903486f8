//! `tenantry users`: what only the operator can do to accounts, with the database's owner role —
//! naming the first platform admin, who then manages roles over the API.

use crate::database::Database;
use crate::AnyError;

#[derive(clap::Subcommand)]
pub enum UsersAction {
    /// Set a user's platform role (admin, moderator, employee, client, user).
    SetRole { email: String, role: String },
}

pub async fn run(database: &Database, action: UsersAction) -> Result<(), AnyError> {
    let owner = database.owner_pool().await?;
    database.migrate(&owner, None).await?;
    let result = match action {
        UsersAction::SetRole { email, role } => {
            let changed = sqlx::query(r"UPDATE users SET role = $2 WHERE lower(email) = lower($1)")
                .bind(&email)
                .bind(&role)
                .execute(&owner.0)
                .await
                .map_err(
                    |e| match e.as_database_error().and_then(|d| d.code()).as_deref() {
                        Some("23514") => AnyError::from(format!(
                        "{role} is not a platform role: admin, moderator, employee, client or user"
                    )),
                        _ => AnyError::from(e),
                    },
                )?
                .rows_affected();
            if changed == 0 {
                Err(format!("no user has the email {email}").into())
            } else {
                println!("{email} is now {role}");
                Ok(())
            }
        }
    };
    owner.0.close().await;
    result
}
