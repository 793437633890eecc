//! The sandbox gateway's browser-facing endpoints (local stack only, never deployed): card and
//! bank tokenization, and the list of charges a developer can check.

use std::sync::Arc;

use axum::{Json, Router, extract::State, http::StatusCode, routing::get, routing::post};
use gateways::sandbox::{SandboxGateway, TokenRequest, TokenizeError};
use serde_json::{Value, json};

use crate::{ApiJson, Problem};

type Sandbox = Arc<SandboxGateway>;

async fn tokenize(
    State(sandbox): State<Sandbox>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    match sandbox.tokenize(request).await {
        Ok(token) => Ok((StatusCode::CREATED, Json(json!({"token": token.expose()})))),
        Err(TokenizeError::Store(e)) => Err(e.into()),
        Err(e) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_payment_details",
            "The payment details are not valid",
            e.to_string(),
        )),
    }
}

async fn charges(State(sandbox): State<Sandbox>) -> Result<Json<Value>, Problem> {
    let charges = sandbox.charges(100).await?;
    let list: Vec<Value> = charges
        .iter()
        .map(|c| {
            json!({
                "id": c.charge_id,
                "org": c.org.as_str(),
                "reference": c.reference,
                "amount": {"amount": c.amount.amount_string(), "currency": c.amount.currency().code()},
                "status": c.status,
                "decline_code": c.decline,
                "method": {"kind": c.kind, "brand": c.brand, "last4": c.last4},
            })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

/// The sandbox's routes, for the local stack to mount beside the functions.
pub fn routes(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/sandbox/tokens", post(tokenize))
        .route("/sandbox/charges", get(charges))
        .with_state(sandbox)
}
