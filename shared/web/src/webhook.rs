//! The `webhook` function: `POST /webhooks/{org}/{gateway}`. Gateway notifications move
//! payments forward, verified against the raw body, once per event, in any order. The answer
//! comes after one verified, deduplicated write; the event's effects (emails, events) are
//! delivered after it, so that slow work never makes the gateway wait or retry because of us.

use std::time::Duration;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
};
use domain::OrgSlug;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use app::ports::{FollowUpKey, WebhookDelivery};
use app::webhooks::{FollowUpRun, WebhookError};

use crate::{AppState, Problem};

/// What the gateway is told: the event was taken (whatever it did, it will not need sending
/// again).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookReceipt {
    pub received: bool,
    pub event_id: Option<String>,
    /// applied, refund_raised, already_there, passed, contradicts, duplicate, held, unsupported
    pub outcome: String,
    /// The payment's status after the event.
    pub status: Option<String>,
}

fn problem(e: &WebhookError) -> Problem {
    match e {
        WebhookError::UnknownGateway => Problem::not_found("no such gateway"),
        WebhookError::BadSignature => Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "The webhook signature is not valid",
            "sign the raw body with the org's webhook secret, with a timestamp within 5 minutes",
        ),
        WebhookError::Malformed(why) => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_event",
            "The webhook body is not an event",
            why.clone(),
        ),
        WebhookError::UnknownPayment => Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_payment",
            "No such payment",
            "this org has no payment with that reference and charge",
        ),
        WebhookError::Busy => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "The payment is changing",
            "deliver the event again in a moment",
        ),
        WebhookError::Accounting(cause) => Problem::unavailable(cause),
        WebhookError::Gateway(cause) => Problem::unavailable(cause),
        WebhookError::Store(cause) => Problem::unavailable(cause),
    }
}

/// Receives a gateway's notification. The signature (the gateway's own scheme; the sandbox's
/// is `Paybridge-Signature: t=...,v1=...`) is checked against the raw body before anything in it
/// is read.
#[utoipa::path(
    post,
    path = "/webhooks/{org}/{gateway}",
    tag = "webhook",
    params(
        ("org" = String, Path, description = "the org's slug"),
        ("gateway" = String, Path, description = "the gateway that sends it: sandbox"),
        ("Paybridge-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of t.body> (several v1 during a rotation)"),
    ),
    request_body(content = Object, description = "the gateway's event, exactly as signed"),
    responses(
        (status = 200, description = "taken: applied, recorded, a duplicate, or held until its payment catches up", body = WebhookReceipt),
        (status = 400, description = "signed, but not an event", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "missing, malformed, stale or wrong signature; nothing changed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such gateway, or no such payment of this org", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn receive(
    State(state): State<AppState>,
    Path((org, gateway)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookReceipt>, Problem> {
    // An org that cannot exist is answered like one without a secret: nobody learns which.
    let org = OrgSlug::parse(&org).map_err(|_| problem(&WebhookError::BadSignature))?;
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    let delivery = WebhookDelivery {
        gateway: &gateway,
        headers: &headers,
        body: &body,
    };
    let received = app::webhooks::receive(&state, &org, &gateway, &delivery)
        .await
        .map_err(|e| problem(&e))?;
    if let Some(key) = received.follow_up
        && state.follow_up_after_ack
    {
        follow_up_after_ack(state.clone(), key);
    }
    Ok(Json(WebhookReceipt {
        received: true,
        event_id: received.event_id,
        outcome: received.outcome.name().to_owned(),
        status: received.status.map(|s| s.as_str().to_owned()),
    }))
}

/// Runs what the event left to do once the answer is on its way. It is recorded durably in
/// the event's transaction, so if this never finishes (a Lambda frozen after its answer, a
/// mail service down) the retry path delivers it; the lease keeps the two from both sending.
fn follow_up_after_ack(state: AppState, key: FollowUpKey) {
    tokio::spawn(async move {
        if matches!(key, FollowUpKey::Held { .. }) {
            // Our own write of the payment is usually a moment behind the gateway's event.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        match app::webhooks::run_follow_up(&state, &key).await {
            Ok(FollowUpRun::Done | FollowUpRun::Skipped) => {}
            Ok(FollowUpRun::Waiting) => {
                tracing::info!(?key, "follow-up left to the retry path")
            }
            Err(e) => tracing::warn!(?key, error = %e, "follow-up failed; the retry path has it"),
        }
    });
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive))
}

/// The `webhook` function's router.
pub fn router(state: AppState) -> Router {
    let (api, _) = routes().split_for_parts();
    crate::layers::common(crate::base_routes().merge(api)).with_state(state)
}
