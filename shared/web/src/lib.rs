//! Paybridge's HTTP layer: one router per function, the layers they share, problem+json errors,
//! and the OpenAPI document generated from the routes themselves.

pub mod accept;
pub mod accounting_admin;
pub mod admin;
pub mod anet_admin;
pub mod anet_proxy;
pub mod anet_wire;
mod auth;
mod autopay_pages;
pub mod client;
mod csp;
pub mod dev;
mod html;
pub mod idempotent;
pub mod invite;
pub mod layers;
mod method_pages;
pub mod methods;
mod pages;
pub mod pay_now;
mod pay_several;
mod payer_admin;
pub mod payer_api;
pub mod payer_payments;
mod pdf;
pub mod portal;
mod portal_pages;
pub mod problem;
pub mod refunds;
pub mod sandbox;
pub mod sandbox_events;
pub mod schedules;
pub mod session;
mod sign_in;
mod two_factor;
pub mod views;
pub mod webhook;
pub mod webhook_admin;

use std::sync::Arc;

use axum::{Json, Router, routing::get};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

pub use problem::{ApiJson, Problem};

/// Shared state of every router: the app's ports.
pub type AppState = Arc<app::Services>;

/// The largest request body any JSON endpoint accepts.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "Paybridge API", description = "Invoice payments for MSPs: the JSON API."),
    components(schemas(Problem)),
    modifiers(&ApiKeyScheme)
)]
struct ApiDoc;

struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole JSON API: every function's routes add themselves here through their annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(admin::routes().split_for_parts().1);
    doc.merge(pay_now::routes().split_for_parts().1);
    doc.merge(invite::routes().split_for_parts().1);
    doc.merge(portal::routes().split_for_parts().1);
    doc.merge(accept::routes().split_for_parts().1);
    doc.merge(methods::routes().split_for_parts().1);
    doc.merge(webhook::routes().split_for_parts().1);
    doc
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Routes every function answers: its health and the API document.
pub fn base_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/health", get(health))
        .route("/api/openapi.json", get(|| async { Json(openapi()) }))
}

/// Every function's routes on one router, plus the local-only `extra` routes (the sandbox, the
/// outbox), for the local stack. A deployment gives each function its own Lambda instead.
pub fn all_functions(state: AppState, extra: Router) -> Router {
    let (admin, _) = admin::routes().split_for_parts();
    let (pay_now, _) = pay_now::routes().split_for_parts();
    let (invite, _) = invite::routes().split_for_parts();
    let (portal, _) = portal::routes().split_for_parts();
    let (accept, _) = accept::routes().split_for_parts();
    let (methods, _) = methods::routes().split_for_parts();
    let (webhook, _) = webhook::routes().split_for_parts();
    let functions: Router = base_routes()
        .merge(admin)
        .merge(pay_now)
        .merge(invite)
        .merge(portal)
        .merge(accept)
        .merge(methods)
        .merge(webhook)
        .merge(anet_proxy::routes())
        .merge(accept::pages())
        .merge(payer_admin::pages())
        .merge(accounting_admin::pages())
        .merge(method_pages::pages())
        .merge(sign_in::pages())
        .merge(two_factor::pages())
        .merge(portal_pages::pages())
        .merge(autopay_pages::pages())
        .merge(pay_several::pages())
        .merge(pages::routes())
        .with_state(state);
    layers::common(functions.merge(extra))
}
