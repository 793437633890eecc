//! Scheduled payments of `portal`: a signed-in payer schedules a payment of an invoice for a
//! day (in the org's time zone) from a saved method, lists their schedules and cancels one
//! that has not started. The tick (`auto-pay-tick`) charges them.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use domain::{OrgSlug, ScheduleId};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use app::ports::Schedule;
use app::schedules::{ScheduleCommand, ScheduleError};

use crate::session::SignedIn;
use crate::views::MoneyView;
use crate::{ApiJson, AppState, Problem};

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    pub id: String,
    pub invoice_number: String,
    pub method_id: String,
    /// Tried once if the primary fails (auto-pay).
    pub secondary_method_id: Option<String>,
    /// At most this; absent: the whole balance on the day.
    pub amount: Option<MoneyView>,
    /// The day, in the org's time zone.
    #[schema(value_type = String, format = Date)]
    pub date: Date,
    /// scheduled, running, succeeded, failed, skipped or cancelled
    pub status: String,
    /// When it is next tried (while scheduled).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_try_at: Option<OffsetDateTime>,
    pub attempts: u32,
    /// The last decline's code, or why it was skipped or cancelled.
    pub outcome: Option<String>,
    /// The payment it made (or the last attempt's).
    pub payment_id: Option<String>,
    /// The auto-pay enrolment that made it.
    pub enrolment_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<Schedule> for ScheduleView {
    fn from(x: Schedule) -> Self {
        ScheduleView {
            id: x.id.to_string(),
            invoice_number: x.invoice.to_string(),
            method_id: x.method.to_string(),
            secondary_method_id: x.secondary.map(|m| m.to_string()),
            amount: x.amount.map(Into::into),
            date: x.run_on,
            status: x.state.as_str().to_owned(),
            next_try_at: (x.state == app::ports::ScheduleState::Scheduled).then_some(x.due_at),
            attempts: x.attempts,
            outcome: x.outcome,
            payment_id: x.payment.map(|p| p.to_string()),
            enrolment_id: x.enrolment.map(|e| e.to_string()),
            created_at: x.created_at,
        }
    }
}

pub(crate) fn schedule_problem(e: ScheduleError) -> Problem {
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    match e {
        ScheduleError::NotFound => Problem::not_found("no such invoice, method or schedule"),
        ScheduleError::Invalid(detail) => Problem::invalid(detail),
        ScheduleError::NotPayable(status) => Problem::new(
            StatusCode::CONFLICT,
            "invoice_not_payable",
            "The invoice cannot be paid",
            e.to_string(),
        )
        .with("invoice_status", status.as_str()),
        ScheduleError::AmountAboveBalance(_) => Problem::new(
            unprocessable,
            "amount_above_balance",
            "The amount is more than the balance",
            e.to_string(),
        ),
        ScheduleError::PartialNotAllowed(_) => Problem::new(
            unprocessable,
            "partial_not_allowed",
            "Partial payments are not accepted",
            e.to_string(),
        ),
        ScheduleError::MandateRequired => Problem::new(
            unprocessable,
            "mandate_required",
            "The method may not be charged later",
            e.to_string(),
        ),
        ScheduleError::AlreadyScheduled(ref id) => Problem::new(
            StatusCode::CONFLICT,
            "already_scheduled",
            "The invoice has a scheduled payment",
            e.to_string(),
        )
        .with("schedule_id", id.to_string()),
        ScheduleError::NotCancellable(state) => Problem::new(
            StatusCode::CONFLICT,
            "not_cancellable",
            "The schedule can no longer be cancelled",
            e.to_string(),
        )
        .with("status", state),
        ScheduleError::Accounting(cause) => Problem::unavailable(&cause),
        ScheduleError::Store(cause) => cause.into(),
    }
}

fn org_of(org: &str) -> Result<OrgSlug, Problem> {
    OrgSlug::parse(org).map_err(|_| Problem::not_found("no such invoice, method or schedule"))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    pub invoice_number: String,
    /// A saved method saved with the authority to charge it later.
    pub method_id: String,
    /// `YYYY-MM-DD`, in the org's time zone: today up to a year ahead.
    #[schema(example = "2026-12-15")]
    pub date: String,
    /// At most this (a decimal string), where the org allows partial payments; absent: the
    /// whole balance on the day.
    pub amount: Option<String>,
}

/// Schedules a payment of an invoice for a day.
#[utoipa::path(
    post,
    path = "/api/me/orgs/{org}/schedules",
    tag = "portal",
    params(("org" = String, Path)),
    request_body = ScheduleBody,
    responses(
        (status = 201, description = "scheduled", body = ScheduleView),
        (status = 404, description = "not your invoice or method", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "scheduled already, or paid", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "the method lacks the authority, or the amount is refused", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<(StatusCode, Json<ScheduleView>), Problem> {
    let command = ScheduleCommand {
        org: org_of(&org)?,
        user: signed_in.user,
        invoice: body.invoice_number,
        method_id: body.method_id,
        amount: body.amount,
        date: body.date,
    };
    let schedule = app::schedules::schedule(&state, command)
        .await
        .map_err(schedule_problem)?;
    Ok((StatusCode::CREATED, Json(schedule.into())))
}

/// The payer's scheduled payments in the org, newest first.
#[utoipa::path(
    get,
    path = "/api/me/orgs/{org}/schedules",
    tag = "portal",
    params(("org" = String, Path)),
    responses((status = 200, description = "the schedules", body = Vec<ScheduleView>))
)]
async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(org): Path<String>,
) -> Result<Json<Vec<ScheduleView>>, Problem> {
    let org = org_of(&org)?;
    let list = app::schedules::list(&state, &org, &signed_in.user.id)
        .await
        .map_err(schedule_problem)?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Cancels a scheduled payment that has not started.
#[utoipa::path(
    delete,
    path = "/api/me/orgs/{org}/schedules/{id}",
    tag = "portal",
    params(("org" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, description = "cancelled", body = ScheduleView),
        (status = 404, description = "no such schedule of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "running or over", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn cancel(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<ScheduleView>, Problem> {
    let org = org_of(&org)?;
    let id = ScheduleId::parse(&id).map_err(|_| Problem::not_found("no such schedule"))?;
    let cancelled = app::schedules::cancel(&state, &org, &signed_in.user.id, &id)
        .await
        .map_err(schedule_problem)?;
    Ok(Json(cancelled.into()))
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(cancel))
        .merge(autopay_routes())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrolmentView {
    pub id: String,
    pub customer_id: String,
    /// The payer whose saved methods pay.
    pub payer_id: String,
    pub method_id: String,
    pub secondary_method_id: Option<String>,
    /// `{"kind": "on_due_date"}`, `{"kind": "days_after_invoice", "days": 7}` or
    /// `{"kind": "day_of_month", "day": 1}`
    #[schema(value_type = Object)]
    pub rule: app::ports::AutoPayRule,
    /// Invoices above this are left for the payer.
    pub cap: Option<MoneyView>,
    pub by_admin: bool,
    /// Locked by an admin: the payer cannot change or end it.
    pub locked: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<app::ports::Enrolment> for EnrolmentView {
    fn from(e: app::ports::Enrolment) -> Self {
        EnrolmentView {
            id: e.id.to_string(),
            customer_id: e.customer.to_string(),
            payer_id: e.user.to_string(),
            method_id: e.method.to_string(),
            secondary_method_id: e.secondary.map(|m| m.to_string()),
            rule: e.rule,
            cap: e.cap.map(Into::into),
            by_admin: e.by_admin,
            locked: e.locked,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolBody {
    /// A saved method with the authority to charge it later (an admin may leave it out: the
    /// payer's default method).
    pub method_id: Option<String>,
    /// Tried once when the primary fails.
    pub secondary_method_id: Option<String>,
    #[schema(value_type = Object)]
    pub rule: app::ports::AutoPayRule,
    /// A decimal string in the org's currency.
    pub cap: Option<String>,
    /// Admins only: the payer whose methods pay (by email).
    pub payer_email: Option<String>,
    /// Admins only: the payer cannot change or end it.
    #[serde(default)]
    pub locked: bool,
}

/// Enrols one of the payer's customers in automatic payments (or changes its enrolment).
#[utoipa::path(
    put,
    path = "/api/me/orgs/{org}/autopay/{customer}",
    tag = "portal",
    params(("org" = String, Path), ("customer" = String, Path)),
    request_body = EnrolBody,
    responses(
        (status = 200, description = "enrolled", body = EnrolmentView),
        (status = 404, description = "not a customer you pay for, or not your method", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "a method without the authority to charge it later", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn enrol(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((org, customer)): Path<(String, String)>,
    ApiJson(body): ApiJson<EnrolBody>,
) -> Result<Json<EnrolmentView>, Problem> {
    if body.payer_email.is_some() || body.locked {
        return Err(Problem::invalid(
            "payer_email and locked are for the org's admins",
        ));
    }
    let actor = app::autopay::Actor::Payer(signed_in.user.clone());
    let command = enrol_command(org_of(&org)?, customer, actor, signed_in.user, body);
    let enrolment = app::autopay::enrol(&state, command)
        .await
        .map_err(schedule_problem)?;
    Ok(Json(enrolment.into()))
}

pub(crate) fn enrol_command(
    org: OrgSlug,
    customer: String,
    actor: app::autopay::Actor,
    payer: app::ports::User,
    body: EnrolBody,
) -> app::autopay::EnrolCommand {
    app::autopay::EnrolCommand {
        org,
        customer,
        actor,
        payer,
        method_id: body.method_id,
        secondary_method_id: body.secondary_method_id,
        rule: body.rule,
        cap: body.cap,
        locked: body.locked,
    }
}

/// The customer's auto-pay enrolment.
#[utoipa::path(
    get,
    path = "/api/me/orgs/{org}/autopay/{customer}",
    tag = "portal",
    params(("org" = String, Path), ("customer" = String, Path)),
    responses(
        (status = 200, description = "the enrolment", body = EnrolmentView),
        (status = 404, description = "none", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn enrolment(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((org, customer)): Path<(String, String)>,
) -> Result<Json<EnrolmentView>, Problem> {
    let actor = app::autopay::Actor::Payer(signed_in.user);
    let found = app::autopay::get(&state, &org_of(&org)?, &actor, &customer)
        .await
        .map_err(schedule_problem)?;
    Ok(Json(found.into()))
}

/// Ends the customer's enrolment (not one an admin locked).
#[utoipa::path(
    delete,
    path = "/api/me/orgs/{org}/autopay/{customer}",
    tag = "portal",
    params(("org" = String, Path), ("customer" = String, Path)),
    responses(
        (status = 204, description = "ended"),
        (status = 404, description = "none", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn unenrol(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((org, customer)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let actor = app::autopay::Actor::Payer(signed_in.user);
    app::autopay::end(&state, &org_of(&org)?, &actor, &customer)
        .await
        .map_err(schedule_problem)?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn autopay_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(enrolment, enrol, unenrol))
}
