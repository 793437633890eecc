//! The sandbox gateway's browser-facing endpoints (local stack only, never deployed): card and
//! bank tokenization, and the list of charges a developer can check.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use gateways::sandbox::{SandboxGateway, TokenRequest, TokenizeError};
use serde_json::{Value, json};

use crate::{ApiJson, Problem};

type Sandbox = Arc<SandboxGateway>;

async fn tokenize(
    State(sandbox): State<Sandbox>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    match sandbox.tokenize(request).await {
        Ok(t) => Ok((
            StatusCode::CREATED,
            Json(json!({
                "token": t.token.expose(),
                "kind": t.method.kind,
                "brand": t.method.brand,
                "last4": t.method.last4,
            })),
        )),
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

#[derive(askama::Template)]
#[template(path = "sandbox_card.html")]
struct CardPage {
    routing: &'static str,
}

async fn card_page() -> Response {
    use askama::Template;
    let page = CardPage {
        routing: gateways::sandbox::TEST_ROUTING,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => Problem::internal(&e).into_response(),
    }
}

fn script(body: &'static str) -> Response {
    let content_type = HeaderValue::from_static("text/javascript; charset=utf-8");
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The sandbox's routes, for the local stack to mount beside the functions: its tokenization
/// script (what Accept.js or Stripe.js is for a real gateway), a test page, tokens, charges.
pub fn routes(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/sandbox/card", get(card_page))
        .route(
            "/sandbox/sandbox.js",
            get(|| async { script(include_str!("../assets/sandbox.js")) }),
        )
        .route(
            "/sandbox/card.js",
            get(|| async { script(include_str!("../assets/sandbox-card.js")) }),
        )
        .route("/sandbox/tokens", post(tokenize))
        .route("/sandbox/charges", get(charges))
        .with_state(sandbox)
}
