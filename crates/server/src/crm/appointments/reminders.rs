//! Appointment reminders: the organization's offsets (`GET/PUT …/appointment-settings`) and the
//! job that sends one reminder. Scheduling is the database's (migration 0028): booking,
//! rescheduling, reassigning or cancelling replaces an appointment's queued reminder jobs in the
//! same transaction, and `app.send_appointment_reminder` sends each at most once.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::http::{AppState, Forbidden, Invalid, Json, NotFound};
use crate::jobs::{JobError, JobSpec, Registry};
use crate::kernel::access::{require_role, Module, Role};
use crate::kernel::error::{Error, OnConstraint, Result};
use crate::kernel::input::{Checks, Valid, Validate};
use crate::kernel::org_tx::OrgTx;

/// One reminder of one appointment, acting for its assignee.
pub const REMIND: JobSpec = JobSpec {
    kind: "appointments.remind",
    max_attempts: 10,
};

pub fn register(registry: Registry) -> Registry {
    registry.register(REMIND, |run| async move {
        let payload = &run.job.payload;
        let (appointment, offset, remind_at) = (
            payload["appointment_id"]
                .as_str()
                .and_then(|v| v.parse::<Uuid>().ok()),
            payload["offset"].as_str(),
            payload["remind_at"]
                .as_str()
                .and_then(|v| v.parse::<chrono::DateTime<chrono::Utc>>().ok()),
        );
        let (Some(appointment), Some(offset), Some(remind_at)) = (appointment, offset, remind_at)
        else {
            return Err(JobError::Fatal(format!(
                "the payload names no reminder: {payload}"
            )));
        };
        let mut tx = run.org_tx().await?;
        let outcome: String =
            sqlx::query_scalar(r"SELECT app.send_appointment_reminder($1, $2::interval, $3)")
                .bind(appointment)
                .bind(offset)
                .bind(remind_at)
                .fetch_one(tx.conn())
                .await?;
        tx.commit().await?;
        tracing::debug!(%appointment, offset, %outcome, "appointment reminder");
        Ok(())
    })
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_settings, put_settings))
        .layer(axum::Extension(Module::Crm))
}

/// How an organization's appointments remind.
#[derive(Debug, Clone, Serialize, Deserialize, FromRow, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppointmentSettings {
    /// When reminders go out before an appointment, 1 to 5 of them, each 5 minutes to 30 days in
    /// whole minutes: `1d` (the day before at the same local time), `2h`, `30m`, `1d12h`.
    /// Default `["1d", "1h"]`.
    pub reminder_offsets: Vec<String>,
    /// Also remind the customer, when they have an email address (default false).
    pub remind_customers: bool,
}

/// `1d12h30m` as an interval PostgreSQL reads (`1 days 12 hours 30 minutes`).
fn interval(offset: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut number = String::new();
    for c in offset.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => "days",
            'h' => "hours",
            'm' => "minutes",
            _ => return None,
        };
        let n: u32 = number.parse().ok().filter(|n| *n <= 100_000)?;
        parts.push(format!("{n} {unit}"));
        number.clear();
    }
    (number.is_empty() && !parts.is_empty()).then(|| parts.join(" "))
}

impl Validate for AppointmentSettings {
    fn check(&self, c: &mut Checks) {
        c.field(
            "reminder_offsets",
            Some(&self.reminder_offsets),
            |offsets| {
                if offsets.is_empty() || offsets.len() > 5 {
                    return Err("must name 1 to 5 offsets".into());
                }
                match offsets.iter().find(|o| interval(o).is_none()) {
                    Some(bad) => Err(format!(
                        "{bad:?} is not an offset like 1d, 2h, 30m or 1d12h"
                    )),
                    None => Ok(()),
                }
            },
        );
    }
}

const SELECT: &str = r"SELECT ARRAY(SELECT app.reminder_name(o) FROM unnest(s.reminder_offsets) o) AS reminder_offsets,
           s.remind_customers";

/// The organization's reminder settings (members and viewers).
#[utoipa::path(get, path = "/v1/orgs/{org}/appointment-settings", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses((status = 200, body = AppointmentSettings), NotFound))]
pub async fn get_settings(mut tx: OrgTx) -> Result<Json<AppointmentSettings>> {
    let org = tx.org();
    require_role(&mut tx, Role::Viewer).await?;
    let stored: Option<AppointmentSettings> = sqlx::query_as(&format!(
        "{SELECT} FROM appointment_settings s WHERE s.organization_id = $1"
    ))
    .bind(org)
    .fetch_optional(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(Json(stored.unwrap_or_else(|| AppointmentSettings {
        reminder_offsets: vec!["1d".into(), "1h".into()],
        remind_customers: false,
    })))
}

/// Set the organization's reminder settings (admins): the coming appointments' reminders move to
/// the new offsets in the same transaction.
#[utoipa::path(put, path = "/v1/orgs/{org}/appointment-settings", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = AppointmentSettings,
    responses(
        (status = 200, body = AppointmentSettings),
        Forbidden,
        Invalid,
    ))]
pub async fn put_settings(
    mut tx: OrgTx,
    settings: Valid<AppointmentSettings>,
) -> Result<(StatusCode, Json<AppointmentSettings>)> {
    let org = tx.org();
    require_role(&mut tx, Role::Admin).await?;
    let intervals: Vec<String> = settings
        .reminder_offsets
        .iter()
        .filter_map(|o| interval(o))
        .collect();
    let stored: AppointmentSettings = sqlx::query_as(&format!(
        r"WITH s AS (
              INSERT INTO appointment_settings AS s (organization_id, reminder_offsets, remind_customers)
              VALUES ($1, $2::text[]::interval[], $3)
              ON CONFLICT ON CONSTRAINT appointment_settings_one DO UPDATE
                 SET reminder_offsets = excluded.reminder_offsets,
                     remind_customers = excluded.remind_customers
              RETURNING s.reminder_offsets, s.remind_customers)
          {SELECT} FROM s"
    ))
    .bind(org)
    .bind(&intervals)
    .bind(settings.remind_customers)
    .fetch_one(tx.conn())
    .await
    .on_constraint("appointment_settings_offsets", |_| {
        Error::invalid("reminder_offsets", "each must be 5 minutes to 30 days, and name a different time")
    })?;
    tx.commit().await?;
    Ok((StatusCode::OK, Json(stored)))
}

#[cfg(test)]
mod tests {
    use super::interval;

    #[test]
    fn offsets_read_as_intervals() {
        assert_eq!(interval("1d").as_deref(), Some("1 days"));
        assert_eq!(
            interval("1d12h30m").as_deref(),
            Some("1 days 12 hours 30 minutes")
        );
        for bad in ["", "d", "1", "1w", "-1h", "1h2", "1 h", "999999d"] {
            assert_eq!(interval(bad), None, "{bad}");
        }
    }
}
