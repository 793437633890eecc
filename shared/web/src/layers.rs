//! What every function's router gets: a request id on every log line, security headers,
//! a body limit, and problem+json for unknown routes.

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath},
    http::{HeaderName, HeaderValue, Request, header},
};
use tower_http::{
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::{DefaultOnResponse, TraceLayer},
};

use crate::problem::Problem;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The strict default policy; a page that loads a gateway's script sends its own, that policy
/// plus the gateway's origins (`crate::csp`), and this layer leaves it alone.
const CSP: &str = crate::csp::DEFAULT;

#[derive(Clone, Copy)]
struct UlidRequestId;

impl MakeRequestId for UlidRequestId {
    fn make_request_id<B>(&mut self, request: &Request<B>) -> Option<RequestId> {
        // Under Lambda, API Gateway's own request id ties our logs to its access log.
        let apigw = request
            .extensions()
            .get::<lambda_context::RequestContextId>()
            .map(|id| id.0.clone());
        let id = apigw.unwrap_or_else(|| ulid::Ulid::new().to_string());
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// An extension a host may put on requests to name them (the Lambda host sets API Gateway's id).
pub mod lambda_context {
    #[derive(Debug, Clone)]
    pub struct RequestContextId(pub String);
}

async fn not_found() -> Problem {
    Problem::not_found("no such route")
}

/// The request's path as logs may show it: a route with a `{token}` segment (an invitation
/// link) is logged as its route, so that no secret from a URL ever reaches a log line.
fn loggable_path<B>(request: &Request<B>) -> &str {
    match request.extensions().get::<MatchedPath>() {
        Some(route) if route.as_str().contains("{token}") => route.as_str(),
        _ => request.uri().path(),
    }
}

/// Wraps a function's router with the layers every function shares.
pub fn common<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(crate::BODY_LIMIT))
        .layer(header(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(header(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header(header::REFERRER_POLICY, "no-referrer"))
        .layer(header(
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ))
        // Balances and payments are personal: no shared cache keeps them.
        .layer(header(header::CACHE_CONTROL, "no-store"))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        request_id = %id,
                        method = %request.method(),
                        path = %loggable_path(request),
                    )
                })
                // One line per request at info: status and latency, under the request's span.
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, UlidRequestId))
}
