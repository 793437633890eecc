//! `POST /sandbox/events` (local stack only, never deployed): the sandbox gateway signs an event
//! about one of its charges and delivers it to `/webhooks/{org}/sandbox`, as a gateway would.
//! The same `event_id` again is a redelivery of that event.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{Request, StatusCode},
    routing::post,
};
use gateways::sandbox_events::{EventError, EventRequest, SandboxEvents, SignedEvent};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{ApiJson, Problem};

#[derive(Clone)]
struct Sender {
    events: Arc<SandboxEvents>,
    /// The webhook function's router: deliveries go through it as they would over HTTP.
    webhook: Router,
}

/// Delivers a signed event to the webhook function: headers and raw body as a gateway sends
/// them. Answers the status and body it got back.
pub async fn deliver(webhook: &Router, event: &SignedEvent) -> (StatusCode, Value) {
    let request = Request::post(&event.path)
        .header("content-type", "application/json")
        .header("user-agent", "Paybridge-Sandbox/1.0")
        .header(gateways::signature::HEADER, &event.signature)
        .body(Body::from(event.body.clone()))
        .expect("a valid request");
    let response = match webhook.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), crate::BODY_LIMIT)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

/// Sends what the sandbox sends by itself by `now` (see `SandboxEvents::due_by_themselves`):
/// the local stack runs it every few seconds, so that a newcomer can watch a debit settle.
/// Answers how many events were delivered.
pub async fn send_due(
    events: &SandboxEvents,
    webhook: &Router,
    now: time::OffsetDateTime,
    after: time::Duration,
) -> Result<usize, EventError> {
    let mut sent = 0;
    for request in events.due_by_themselves(now, after).await? {
        let event = events.event(&request).await?;
        let (status, answer) = deliver(webhook, &event).await;
        if status.is_success() {
            sent += 1;
        } else {
            tracing::warn!(event = %event.event_id, %status, %answer, "the sandbox's webhook was refused");
        }
    }
    Ok(sent)
}

async fn send(
    State(sender): State<Sender>,
    ApiJson(request): ApiJson<EventRequest>,
) -> Result<Json<Value>, Problem> {
    let event = sender.events.event(&request).await.map_err(|e| match e {
        EventError::UnknownCharge => Problem::not_found("no such sandbox charge"),
        EventError::EventIdTaken(_) => Problem::new(
            StatusCode::CONFLICT,
            "event_id_taken",
            "The event id is taken",
            e.to_string(),
        ),
        EventError::Store(cause) => cause.into(),
        other => Problem::invalid(other.to_string()),
    })?;
    let (status, answer) = deliver(&sender.webhook, &event).await;
    Ok(Json(json!({
        "event_id": event.event_id,
        "delivered_to": event.path,
        "response": {"status": status.as_u16(), "body": answer},
    })))
}

/// The sandbox's event sender, delivering to `webhook` (the webhook function's router).
pub fn routes(events: Arc<SandboxEvents>, webhook: Router) -> Router {
    Router::new()
        .route("/sandbox/events", post(send))
        .with_state(Sender { events, webhook })
}
