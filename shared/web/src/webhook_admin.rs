//! The org's side of webhooks, in the admin API: its webhook secrets (rotated, shown once,
//! never listed) and a payment's history of gateway events.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
};
use domain::{PaymentId, Secret};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use app::ports::{HistoryEntry, WebhookSecretInfo};
use app::webhooks::{RotateCommand, RotateError};

use crate::auth::OrgAdmin;
use crate::views::MoneyView;
use crate::{AppState, Problem};

/// A rotation. Every field is optional; an empty body rotates the org's gateway's secret with
/// a new one that Paybridge makes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// The gateway whose notifications it signs; the org's gateway by default.
    #[schema(example = "sandbox")]
    pub gateway: Option<String>,
    /// A secret the gateway made (Stripe and Authorize.Net show you theirs); Paybridge makes one
    /// when absent, and answers it once.
    pub secret: Option<String>,
    /// How long the secret before stays accepted: 0 to 168 hours, 24 by default (0 retires it
    /// at once, after a leak).
    pub grace_period_hours: Option<u16>,
}

/// An org's webhook secret for one gateway, as far as it may be shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecretView {
    pub gateway: String,
    /// Where the gateway sends notifications.
    pub webhook_url: String,
    pub secret_id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// The secret before, still accepted until `previous_valid_until`.
    pub previous_secret_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_valid_until: Option<OffsetDateTime>,
    /// The new secret, in the answer to a rotation that made it: shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn view(
    state: &AppState,
    org: &domain::OrgSlug,
    info: WebhookSecretInfo,
    now: OffsetDateTime,
) -> WebhookSecretView {
    let still = info.previous_until.filter(|until| *until > now);
    WebhookSecretView {
        webhook_url: format!("{}/webhooks/{org}/{}", state.public_url, info.gateway),
        gateway: info.gateway,
        secret_id: info.current_id,
        created_at: info.current_since,
        previous_secret_id: info.previous_id.filter(|_| still.is_some()),
        previous_valid_until: still,
        secret: None,
    }
}

/// Rotates the org's webhook secret: the new one signs from now on, the one before is still
/// accepted for the grace period, and the one before that is retired.
#[utoipa::path(
    post,
    path = "/api/orgs/{org}/webhook-secrets/rotate",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    request_body(content = RotateBody, description = "optional"),
    responses(
        (status = 201, description = "rotated; `secret` is shown this once", body = WebhookSecretView),
        (status = 400, description = "a field was refused", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "rotated by someone else meanwhile", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn rotate(
    State(state): State<AppState>,
    admin: OrgAdmin,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookSecretView>), Problem> {
    let body: RotateBody =
        crate::problem::optional_json(&body, "{gateway?, secret?, grace_period_hours?}")?;
    let command = RotateCommand {
        org: admin.org.clone(),
        gateway: body.gateway,
        secret: body.secret.map(Secret::new),
        grace: body
            .grace_period_hours
            .map(|h| Duration::hours(i64::from(h))),
    };
    let rotated = app::webhooks::rotate_secret(&state, command)
        .await
        .map_err(|e| match e {
            RotateError::UnknownGateway => Problem::invalid("no such gateway for this org"),
            RotateError::Conflict => Problem::new(
                StatusCode::CONFLICT,
                "rotated_meanwhile",
                "The secret was rotated meanwhile",
                "read the secrets again before rotating",
            ),
            RotateError::Store(cause) => cause.into(),
            invalid => Problem::invalid(invalid.to_string()),
        })?;
    let mut shown = view(&state, &admin.org, rotated.info, state.clock.now());
    shown.secret = rotated.secret.map(|s| s.expose().clone());
    Ok((StatusCode::CREATED, Json(shown)))
}

/// The org's webhook secrets (their ids and dates, never their values).
#[utoipa::path(
    get,
    path = "/api/orgs/{org}/webhook-secrets",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    responses((status = 200, description = "one per gateway that has one", body = Vec<WebhookSecretView>)),
    security(("api_key" = []))
)]
async fn list(
    State(state): State<AppState>,
    admin: OrgAdmin,
) -> Result<Json<Vec<WebhookSecretView>>, Problem> {
    let gateway = state
        .gateway
        .name_for(&admin.org)
        .await
        .map_err(|e| Problem::unavailable(&e))?;
    let found = state
        .webhook_secrets
        .secret_info(&admin.org, gateway)
        .await?;
    let now = state.clock.now();
    Ok(Json(
        found
            .into_iter()
            .map(|info| view(&state, &admin.org, info, now))
            .collect(),
    ))
}

/// One gateway event as it reached a payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub event_id: String,
    /// The gateway's name of it: `charge.settled`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status the gateway reported.
    pub reported: String,
    pub status_before: String,
    pub status_after: String,
    /// applied, refund_raised, already_there, passed (a late event), contradicts
    pub outcome: String,
    pub refunded: Option<MoneyView>,
}

impl From<HistoryEntry> for HistoryView {
    fn from(h: HistoryEntry) -> Self {
        HistoryView {
            at: h.at,
            event_id: h.event_id,
            kind: h.gateway_event,
            reported: h.reported.as_str().to_owned(),
            status_before: h.before.as_str().to_owned(),
            status_after: h.after.as_str().to_owned(),
            outcome: h.outcome,
            refunded: h.refunded.map(Into::into),
        }
    }
}

/// A payment's gateway events, oldest first: those that moved it and those that came too late.
#[utoipa::path(
    get,
    path = "/api/orgs/{org}/payments/{payment}/history",
    tag = "admin",
    params(
        ("org" = String, Path, description = "the org's slug"),
        ("payment" = String, Path, description = "the payment's id"),
    ),
    responses(
        (status = 200, description = "the events", body = Vec<HistoryView>),
        (status = 404, description = "no such payment", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn history(
    State(state): State<AppState>,
    admin: OrgAdmin,
    Path((_org, payment)): Path<(String, String)>,
) -> Result<Json<Vec<HistoryView>>, Problem> {
    let not_found = || Problem::not_found("no such payment");
    let id = PaymentId::parse(&payment).map_err(|_| not_found())?;
    let entries = app::webhooks::payment_history(&state, &admin.org, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(entries.into_iter().map(Into::into).collect()))
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(rotate))
        .routes(routes!(list))
        .routes(routes!(history))
}
