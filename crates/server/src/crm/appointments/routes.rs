//! HTTP routes of appointments under `/v1/orgs/{org}/appointments`.

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::store::{self, Range};
use super::{Appointment, AppointmentChanges, AppointmentStatus, NewAppointment};
use crate::crm::comma_list;
use crate::http::{AppState, Conflict, Forbidden, Invalid, Json, NotFound, Path, Query};
use crate::kernel::access::Module;
use crate::kernel::error::{Error, Result};
use crate::kernel::input::Valid;
use crate::kernel::org_tx::OrgTx;
use crate::kernel::page::{Limit, Page, PageParams};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_appointments, create_appointment))
        .routes(routes!(
            get_appointment,
            update_appointment,
            delete_appointment
        ))
        .layer(axum::Extension(Module::Crm))
        .merge(super::reminders::routes())
        .merge(super::feed::routes())
}

/// The widest range one list covers.
const WIDEST: Duration = Duration::days(92);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppointmentListParams {
    /// Appointments ending after this instant (default: now).
    pub from: Option<DateTime<Utc>>,
    /// …and starting before this one (default: `from` + 7 days; at most 92 days after `from`).
    pub to: Option<DateTime<Utc>>,
    /// A member's id, or `me`: only their appointments (a member's calendar).
    pub assigned_to: Option<String>,
    /// Only this customer's appointments.
    pub customer_id: Option<Uuid>,
    /// Comma-separated statuses.
    pub status: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    pub after: Option<Uuid>,
}

/// The calendar: appointments overlapping a range, by start.
#[utoipa::path(get, path = "/v1/orgs/{org}/appointments", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), AppointmentListParams),
    responses((status = 200, body = Page<Appointment>), NotFound))]
pub async fn list_appointments(
    mut tx: OrgTx,
    Query(params): Query<AppointmentListParams>,
) -> Result<Json<Page<Appointment>>> {
    let from = params.from.unwrap_or_else(Utc::now);
    let to = params.to.unwrap_or(from + Duration::days(7));
    if to <= from || to - from > WIDEST {
        return Err(Error::BadRequest(
            "to: must be after from, at most 92 days later".into(),
        ));
    }
    let assigned_to =
        match params.assigned_to.as_deref() {
            None => None,
            Some("me") => Some(tx.user_id().await?.ok_or(Error::BadRequest(
                "assigned_to: `me` needs a signed-in user".into(),
            ))?),
            Some(id) => Some(id.parse().map_err(|_| {
                Error::BadRequest("assigned_to: must be a member's id or `me`".into())
            })?),
        };
    let range = Range {
        from,
        to,
        assigned_to,
        customer: params.customer_id,
        statuses: comma_list::<AppointmentStatus>("status", params.status.as_deref())?,
    };
    let page = PageParams {
        limit: params.limit,
        after: params.after,
    };
    let appointments = store::list(&mut tx, &range, &page).await?;
    tx.commit().await?;
    Ok(Json(appointments))
}

/// Book an appointment (members); 409 `slot_taken` with `conflicting_id` when the member already
/// has a live appointment overlapping it.
#[utoipa::path(post, path = "/v1/orgs/{org}/appointments", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")), request_body = NewAppointment,
    responses(
        (status = 201, body = Appointment),
        Forbidden,
        Conflict,
        Invalid,
    ))]
pub async fn create_appointment(
    mut tx: OrgTx,
    new: Valid<NewAppointment>,
) -> Result<(StatusCode, Json<Appointment>)> {
    let appointment = store::create(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(appointment)))
}

/// One appointment.
#[utoipa::path(get, path = "/v1/orgs/{org}/appointments/{appointment}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("appointment" = Uuid, Path, description = "Appointment id")),
    responses((status = 200, body = Appointment), NotFound))]
pub async fn get_appointment(
    mut tx: OrgTx,
    Path((_org, appointment)): Path<(Uuid, Uuid)>,
) -> Result<Json<Appointment>> {
    let found = store::get(&mut tx, appointment).await?;
    tx.commit().await?;
    Ok(Json(found))
}

/// Change, reschedule, confirm, cancel or close an appointment (members).
#[utoipa::path(patch, path = "/v1/orgs/{org}/appointments/{appointment}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("appointment" = Uuid, Path, description = "Appointment id")),
    request_body = AppointmentChanges,
    responses(
        (status = 200, body = Appointment),
        Forbidden,
        NotFound,
        Conflict,
        Invalid,
    ))]
pub async fn update_appointment(
    mut tx: OrgTx,
    Path((_org, appointment)): Path<(Uuid, Uuid)>,
    changes: Valid<AppointmentChanges>,
) -> Result<Json<Appointment>> {
    let updated = store::update(&mut tx, appointment, &changes).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Delete an appointment (admins; members cancel it instead).
#[utoipa::path(delete, path = "/v1/orgs/{org}/appointments/{appointment}", tag = "crm", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id"), ("appointment" = Uuid, Path, description = "Appointment id")),
    responses(
        (status = 204, description = "Deleted"),
        Forbidden,
        NotFound,
    ))]
pub async fn delete_appointment(
    mut tx: OrgTx,
    Path((_org, appointment)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    store::delete(&mut tx, appointment).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
