//! SQL of appointments.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Appointment, AppointmentChanges, AppointmentStatus, NewAppointment};
use crate::kernel::access::{require_role, Role};
use crate::kernel::error::{Error, Found, OnConstraint, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Page, PageParams};

const COLUMNS: &str = r"a.id, a.customer_id, a.assigned_to, a.title, a.description, a.start_time,
    a.end_time, a.timezone, a.status, a.location, a.meeting_url, a.reminders_sent, a.created_at,
    a.updated_at";

const DOUBLE_BOOKING: &str = "appointments_no_double_booking";

trait AppointmentConstraints<T> {
    fn on_appointment_constraints(self) -> Result<T>;
}

impl<T, E: Into<Error>> AppointmentConstraints<T> for std::result::Result<T, E> {
    fn on_appointment_constraints(self) -> Result<T> {
        self.on_field(
            "appointments_customer",
            "customer_id",
            "must be a customer of this organization",
        )
        .on_field(
            "appointments_assignee",
            "assigned_to",
            "must be a member of this organization",
        )
        .on_field(
            "appointments_time",
            "end_time",
            "must be after start_time, at most 31 days later",
        )
        // The trigger's message says which move was refused.
        .on_constraint("appointments_status_move", |e| {
            let message = e
                .database_message()
                .unwrap_or("not a possible move")
                .to_string();
            Error::invalid("status", message)
        })
    }
}

/// Which appointments a calendar shows.
#[derive(Debug, Default)]
pub struct Range {
    /// Those ending after `from` and starting before `to`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub assigned_to: Option<Uuid>,
    pub customer: Option<Uuid>,
    pub statuses: Vec<AppointmentStatus>,
}

pub async fn get(tx: &mut OrgTx, id: Uuid) -> Result<Appointment> {
    let org = tx.org();
    sqlx::query_as(&format!(
        r"SELECT {COLUMNS} FROM appointments a WHERE a.organization_id = $1 AND a.id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .found()
}

/// The calendar's statement: appointments overlapping [$2, $3) of organization $1 (a member's
/// with $4, a customer's with $5, of statuses $6 when not empty), by start then id, after the
/// appointment $7, at most $8. The range is matched through the GiST index on it.
pub fn list_sql() -> String {
    format!(
        r"SELECT {COLUMNS} FROM appointments a
           WHERE a.organization_id = $1
             AND a.during && tstzrange($2, $3)
             AND ($4::uuid IS NULL OR a.assigned_to = $4)
             AND ($5::uuid IS NULL OR a.customer_id = $5)
             AND (cardinality($6::text[]) = 0 OR a.status = ANY ($6))
             AND ($7::uuid IS NULL OR (a.start_time, a.id) >
                  (SELECT c.start_time, c.id FROM appointments c WHERE c.organization_id = $1 AND c.id = $7))
           ORDER BY a.start_time, a.id LIMIT $8"
    )
}

/// The appointments overlapping a range, by start then id; the cursor is the last one's id.
pub async fn list(tx: &mut OrgTx, range: &Range, page: &PageParams) -> Result<Page<Appointment>> {
    require_role(tx, Role::Viewer).await?;
    let org = tx.org();
    let statuses: Vec<&str> = range.statuses.iter().map(|s| s.as_str()).collect();
    let rows: Vec<Appointment> = sqlx::query_as(&list_sql())
        .bind(org)
        .bind(range.from)
        .bind(range.to)
        .bind(range.assigned_to)
        .bind(range.customer)
        .bind(&statuses)
        .bind(page.after)
        .bind(page.fetch_limit())
        .persistent(false)
        .fetch_all(tx.conn())
        .await?;
    Ok(Page::from_rows(rows, page, |a| a.id))
}

/// Books an appointment; 409 `slot_taken` naming the live appointment of the same member it
/// would overlap.
pub async fn create(tx: &mut OrgTx, new: &Valid<NewAppointment>) -> Result<Appointment> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let slot = (new.start_time, new.end_time);
    // A double booking inserts nothing (`DO NOTHING` takes the exclusion constraint as its
    // arbiter; a concurrent booking of the slot waits for the first to commit, then inserts
    // nothing): no error, so no savepoint, and the conflict can be looked up right after.
    let booked: Option<Appointment> = sqlx::query_as(&format!(
        r"INSERT INTO appointments AS a (id, organization_id, customer_id, assigned_to, title,
              description, start_time, end_time, timezone, status, location, meeting_url)
          VALUES ($1, $2, $3, coalesce($4, (SELECT app.user_id())), $5, $6, $7, $8,
                  coalesce($9, (SELECT p.timezone FROM profiles p
                                 WHERE p.user_id = coalesce($4, (SELECT app.user_id()))), 'UTC'),
                  coalesce($10, 'scheduled'), $11, $12)
          ON CONFLICT ON CONSTRAINT {DOUBLE_BOOKING} DO NOTHING
          RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(org)
    .bind(new.customer_id)
    .bind(new.assigned_to)
    .bind(new.title.trim())
    .bind(new.description.as_deref())
    .bind(slot.0)
    .bind(slot.1)
    .bind(new.timezone.as_deref())
    .bind(new.status.map(AppointmentStatus::as_str))
    .bind(new.location.as_deref())
    .bind(new.meeting_url.as_deref())
    .fetch_optional(tx.conn())
    .await
    .on_appointment_constraints()?;
    match booked {
        // An API key has no user to default to. The error keeps the transaction from committing.
        Some(booked) if booked.assigned_to.is_none() => Err(Error::invalid(
            "assigned_to",
            "is required when an API key books",
        )),
        Some(booked) => Ok(booked),
        None => {
            let assignee = match new.assigned_to {
                Some(member) => Some(member),
                None => tx.user_id().await?,
            };
            Err(Error::SlotTaken {
                conflicting: conflicting(tx, assignee, slot, None).await?,
            })
        }
    }
}

pub async fn update(
    tx: &mut OrgTx,
    id: Uuid,
    changes: &Valid<AppointmentChanges>,
) -> Result<Appointment> {
    let org = tx.org();
    require_role(tx, Role::Member).await?;
    let c = &**changes;
    // The slot it would take, for the conflict's lookup (the current values where unchanged).
    let current = get(tx, id).await?;
    let assignee = c.assigned_to.or(current.assigned_to);
    let slot = (
        c.start_time.unwrap_or(current.start_time),
        c.end_time.unwrap_or(current.end_time),
    );
    savepoint(tx).await?;
    let updated = sqlx::query_as(&format!(
        r"UPDATE appointments a SET title = coalesce($3, a.title),
                    description = CASE WHEN $4 THEN $5 ELSE a.description END,
                    start_time = coalesce($6, a.start_time),
                    end_time = coalesce($7, a.end_time),
                    timezone = coalesce($8, a.timezone),
                    customer_id = CASE WHEN $9 THEN $10 ELSE a.customer_id END,
                    assigned_to = coalesce($11, a.assigned_to),
                    status = coalesce($12, a.status),
                    location = CASE WHEN $13 THEN $14 ELSE a.location END,
                    meeting_url = CASE WHEN $15 THEN $16 ELSE a.meeting_url END
                  WHERE a.organization_id = $1 AND a.id = $2
                  RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(id)
    .bind(c.title.as_deref().map(str::trim))
    .bind(c.description.is_some())
    .bind(c.description.clone().flatten())
    .bind(c.start_time)
    .bind(c.end_time)
    .bind(c.timezone.as_deref())
    .bind(c.customer_id.is_some())
    .bind(c.customer_id.flatten())
    .bind(c.assigned_to)
    .bind(c.status.map(AppointmentStatus::as_str))
    .bind(c.location.is_some())
    .bind(c.location.clone().flatten())
    .bind(c.meeting_url.is_some())
    .bind(c.meeting_url.clone().flatten())
    .fetch_optional(tx.conn())
    .await
    .on_appointment_constraints()
    .and_then(Found::found);
    settle(tx, updated, assignee, slot, Some(id)).await
}

/// Deletes an appointment (admins; members cancel).
pub async fn delete(tx: &mut OrgTx, id: Uuid) -> Result<()> {
    let org = tx.org();
    require_role(tx, Role::Admin).await?;
    sqlx::query(r"DELETE FROM appointments WHERE organization_id = $1 AND id = $2")
        .bind(org)
        .bind(id)
        .execute(tx.conn())
        .await?
        .found()?;
    Ok(())
}

/// Marks where a change that may double-book starts (see [`settle`]).
async fn savepoint(tx: &mut OrgTx) -> Result<()> {
    sqlx::query("SAVEPOINT booking").execute(tx.conn()).await?;
    Ok(())
}

/// Ends a write begun after [`savepoint`]: when the exclusion constraint refused it, the
/// transaction is rolled back to before it and the live appointment of `assignee` overlapping
/// `slot` (other than `itself`) is named in a 409 `slot_taken`.
async fn settle(
    tx: &mut OrgTx,
    written: Result<Appointment>,
    assignee: Option<Uuid>,
    slot: (DateTime<Utc>, DateTime<Utc>),
    itself: Option<Uuid>,
) -> Result<Appointment> {
    match written {
        Err(e) if e.constraint() == Some(DOUBLE_BOOKING) => {
            sqlx::query("ROLLBACK TO SAVEPOINT booking")
                .execute(tx.conn())
                .await?;
            Err(Error::SlotTaken {
                conflicting: conflicting(tx, assignee, slot, itself).await?,
            })
        }
        written => {
            let written = written?;
            sqlx::query("RELEASE SAVEPOINT booking")
                .execute(tx.conn())
                .await?;
            Ok(written)
        }
    }
}

/// The live appointment of `assignee` overlapping `slot`, other than `itself`.
async fn conflicting(
    tx: &mut OrgTx,
    assignee: Option<Uuid>,
    slot: (DateTime<Utc>, DateTime<Utc>),
    itself: Option<Uuid>,
) -> Result<Option<Uuid>> {
    let org = tx.org();
    Ok(sqlx::query_scalar(
        r"SELECT a.id FROM appointments a
           WHERE a.organization_id = $1 AND a.assigned_to = $2
             AND tstzrange(a.start_time, a.end_time) && tstzrange($3, $4)
             AND a.status IN ('scheduled', 'confirmed', 'completed')
             AND a.id IS DISTINCT FROM $5
           ORDER BY a.start_time LIMIT 1",
    )
    .bind(org)
    .bind(assignee)
    .bind(slot.0)
    .bind(slot.1)
    .bind(itself)
    .fetch_optional(tx.conn())
    .await?)
}
