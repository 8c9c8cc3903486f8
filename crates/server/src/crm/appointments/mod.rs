//! Appointments: a member's calendar in the organization, with a customer or not. The database
//! refuses a booking that overlaps another live one of the same member (an exclusion
//! constraint), so concurrent bookings of one slot leave exactly one. Reminders are jobs the
//! database schedules with each change (see `reminders`).

pub mod feed;
pub mod ical;
pub mod reminders;
pub mod routes;
pub mod store;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

pub use routes::routes;

use crate::kernel::input::{set, text, web_link, Checks, Rule, Validate};
use crate::text_enum;

text_enum! {
    /// Where an appointment stands. Moves: scheduled ↔ confirmed; either → cancelled (and
    /// cancelled → scheduled while the slot is free); once started, either → completed or
    /// no_show (and those two into each other). Cancelled and no-show ones free their slot.
    pub enum AppointmentStatus {
        Scheduled = "scheduled", Confirmed = "confirmed", Completed = "completed",
        Cancelled = "cancelled", NoShow = "no_show",
    }
}

/// The longest appointment (the database says so too).
pub const LONGEST: Duration = Duration::days(31);

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Appointment {
    pub id: Uuid,
    /// A customer of the same organization; cleared if the customer is deleted.
    pub customer_id: Option<Uuid>,
    /// A member of the organization; cleared when they leave it.
    pub assigned_to: Option<Uuid>,
    pub title: String,
    pub description: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// The IANA zone it was booked in (reminders keep its local time).
    pub timezone: String,
    #[sqlx(try_from = "String")]
    pub status: AppointmentStatus,
    pub location: Option<String>,
    pub meeting_url: Option<String>,
    /// Reminders sent: offset → when.
    #[schema(value_type = Object)]
    pub reminders_sent: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A booking.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAppointment {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub title: String,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    pub start_time: DateTime<Utc>,
    /// After `start_time`, at most 31 days later.
    pub end_time: DateTime<Utc>,
    /// An IANA zone (`Europe/Berlin`); default the assignee's profile zone, else UTC.
    #[schema(max_length = 64)]
    pub timezone: Option<String>,
    pub customer_id: Option<Uuid>,
    /// A member of the organization; default the caller.
    pub assigned_to: Option<Uuid>,
    /// `scheduled` (default) or `confirmed`.
    pub status: Option<AppointmentStatus>,
    #[schema(max_length = 500)]
    pub location: Option<String>,
    /// An http(s) URL.
    #[schema(max_length = 2048)]
    pub meeting_url: Option<String>,
}

/// Changes to an appointment: absent fields stay; `null` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppointmentChanges {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 10000)]
    pub description: Option<Option<String>>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    #[schema(max_length = 64)]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    pub customer_id: Option<Option<Uuid>>,
    pub assigned_to: Option<Uuid>,
    pub status: Option<AppointmentStatus>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 500)]
    pub location: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::kernel::input::present")]
    #[schema(max_length = 2048)]
    pub meeting_url: Option<Option<String>>,
}

fn span((start, end): (DateTime<Utc>, DateTime<Utc>)) -> Rule {
    if end <= start {
        Err("must be after start_time".into())
    } else if end - start > LONGEST {
        Err("must be at most 31 days after start_time".into())
    } else {
        Ok(())
    }
}

impl Validate for NewAppointment {
    fn check(&self, c: &mut Checks) {
        c.field("title", Some(self.title.as_str()), text(1, 200));
        c.field("description", self.description.as_deref(), text(0, 10000));
        c.field("end_time", Some((self.start_time, self.end_time)), span);
        c.field("timezone", self.timezone.as_deref(), text(1, 64));
        c.field("location", self.location.as_deref(), text(0, 500));
        c.field("meeting_url", self.meeting_url.as_deref(), web_link);
        c.field("status", self.status, |s| {
            matches!(
                s,
                AppointmentStatus::Scheduled | AppointmentStatus::Confirmed
            )
            .then_some(())
            .ok_or_else(|| "a new appointment is scheduled or confirmed".into())
        });
    }
}

impl Validate for AppointmentChanges {
    fn check(&self, c: &mut Checks) {
        c.field("title", self.title.as_deref(), text(1, 200));
        c.field("description", set(&self.description), text(0, 10000));
        // One bound alone is checked against the other by the database.
        c.field("end_time", self.start_time.zip(self.end_time), span);
        c.field("timezone", self.timezone.as_deref(), text(1, 64));
        c.field("location", set(&self.location), text(0, 500));
        c.field("meeting_url", set(&self.meeting_url), web_link);
    }
}
