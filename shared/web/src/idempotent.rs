//! Runs a state-changing request at most once per `Idempotency-Key`: the first request works,
//! its response is stored, and every retry gets exactly that response back (Stripe's model).

use std::future::Future;

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use app::idempotency::{Claim, IdempotencyKey, StoredResponse, request_fingerprint};

use crate::{AppState, Problem};

pub const HEADER: &str = "idempotency-key";

/// What became of the work, which decides what becomes of the claim.
pub enum Finished {
    /// Store this response for replay (a charge was made or refused).
    Complete(StatusCode, serde_json::Value),
    /// Nothing happened outside: forget the claim so the key can be used again.
    Release(Response),
    /// The outcome is unknown (the gateway did not answer): keep the claim, so that a retry
    /// after its lock takes it over and looks the outcome up.
    Keep(Response),
}

/// The claim the work runs under: its resource id is the same on a takeover.
pub struct Claimed {
    pub resource_id: String,
    pub resumed: bool,
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Body::from(stored.body)).into_response();
    if let Ok(ct) = HeaderValue::from_str(&stored.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// Claims the request's key in `scope`, runs `work` if this is the first time (or a takeover),
/// and answers a replay, 409 or 422 otherwise. `parts` are the request's meaningful fields.
pub async fn idempotent<F, Fut>(
    state: &AppState,
    scope: String,
    headers: &HeaderMap,
    parts: &[&str],
    new_resource_id: String,
    work: F,
) -> Response
where
    F: FnOnce(Claimed) -> Fut,
    Fut: Future<Output = Finished>,
{
    let Some(raw) = headers.get(HEADER).and_then(|v| v.to_str().ok()) else {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
            "An Idempotency-Key header is required",
            "send a fresh random key (a UUID) with each new payment, and the same key when retrying it",
        )
        .into_response();
    };
    let Ok(key) = IdempotencyKey::new(scope, raw) else {
        return Problem::invalid("the Idempotency-Key must be 1 to 255 printable ASCII characters")
            .into_response();
    };
    let hash = request_fingerprint(parts);
    let now = state.clock.now();
    let claimed = match state
        .idempotency
        .claim(&key, &hash, &new_resource_id, now)
        .await
    {
        Err(e) => return Problem::from(e).into_response(),
        Ok(Claim::Replay(stored)) => return replay(stored),
        Ok(Claim::InProgress) => {
            return Problem::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "This request is being processed",
                "a request with this Idempotency-Key is in progress; retry shortly with the same key",
            )
            .into_response();
        }
        Ok(Claim::Mismatch) => {
            return Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "The Idempotency-Key was used for another request",
                "use a new key for a new request",
            )
            .into_response();
        }
        Ok(Claim::Fresh { resource_id }) => Claimed {
            resource_id,
            resumed: false,
        },
        Ok(Claim::TakenOver { resource_id }) => Claimed {
            resource_id,
            resumed: true,
        },
    };
    match work(claimed).await {
        Finished::Complete(status, json) => {
            let body = serde_json::to_vec(&json).expect("JSON values serialize");
            let content_type = if status.is_success() {
                "application/json"
            } else {
                "application/problem+json"
            };
            let stored = StoredResponse {
                status: status.as_u16(),
                content_type: content_type.into(),
                body,
            };
            if let Err(e) = state
                .idempotency
                .complete(&key, &hash, &stored, state.clock.now())
                .await
            {
                // The work is done and recorded; only the replay copy is missing. A retry
                // takes the claim over and finds the payment finished.
                tracing::warn!(error = %e, "could not store the response for replay");
            }
            let mut response = (status, Body::from(stored.body)).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        Finished::Release(response) => {
            if let Err(e) = state.idempotency.release(&key, &hash).await {
                tracing::warn!(error = %e, "could not release an idempotency claim");
            }
            response
        }
        Finished::Keep(response) => response,
    }
}
