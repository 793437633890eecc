//! What every HTML page shares: rendering a template into a response, and the one-message page
//! (a headline and what to do) that errors and confirmations use.

use askama::Template;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

/// A rendered page, or the generic error page if it cannot be (a template bug, logged).
pub(crate) fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("Something went wrong."),
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    headline: &'a str,
    message: &'a str,
}

/// A page that says one thing: what happened and what to do.
pub(crate) fn message(status: StatusCode, headline: &str, message: &str) -> Response {
    page(status, &MessagePage { headline, message })
}

/// A page for a store that did not answer: nothing was changed; try again.
pub(crate) fn unavailable(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "page could not load");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again in a moment",
        "We could not load this page just now. Nothing was changed.",
    )
}

/// The page for a form whose CSRF token did not match (expired, or posted from another site).
pub(crate) fn form_expired() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Please try again",
        "The form expired. Go back, reload the page and send it again.",
    )
}

/// Adds a Set-Cookie to a response.
pub(crate) fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// A form that posts nothing but its CSRF token (a button: resend, revoke, remove, sign out).
#[derive(serde::Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// The "form expired" page, when the posted token does not match this browser's CSRF cookie.
pub(crate) fn csrf_refused(headers: &axum::http::HeaderMap, posted: &str) -> Option<Response> {
    (!crate::session::Csrf::verify(headers, posted)).then(form_expired)
}
