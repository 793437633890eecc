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

/// What a page that takes card or bank details loads to tokenize them for its org: the
/// gateway's own script (if any), then our adapter script with the public values as `data-*`
/// attributes of its tag, and the Content-Security-Policy that allows exactly those.
pub(crate) struct GatewayScripts {
    /// Stripe.js, Accept.js; None for the sandbox (its script is ours).
    pub vendor: Option<&'static str>,
    /// Our script that gives `window.PaybridgeGateway.tokenize(details)` for this gateway.
    pub adapter: &'static str,
    /// The adapter tag's `data-*` attributes: name (`publishable-key`) and value.
    pub data: Vec<(String, String)>,
    /// The page's own policy, where the gateway needs origins the default does not allow.
    csp: Option<String>,
}

impl GatewayScripts {
    /// The response with this page's CSP (the common layer's default applies otherwise).
    pub(crate) fn with_csp(&self, mut response: Response) -> Response {
        if let Some(csp) = &self.csp {
            match HeaderValue::from_str(csp) {
                Ok(value) => {
                    response
                        .headers_mut()
                        .insert(header::CONTENT_SECURITY_POLICY, value);
                }
                // Origins are constants; the default still applies (the gateway's script is then
                // blocked, never allowed by a looser policy).
                Err(e) => tracing::error!(error = %e, "the page's CSP is not a header value"),
            }
        }
        response
    }
}

/// Whether a page can take card or bank details for the org now.
pub(crate) enum Tokenizing {
    Ready(GatewayScripts),
    /// The org's gateway lacks the public key its browser script needs (logged).
    NotSetUp,
    /// The gateway (or the org's configuration) did not answer (logged).
    Unavailable,
}

/// Our adapter script for a gateway, and the public values it cannot work without.
fn adapter(gateway: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match gateway {
        "sandbox" => ("/sandbox/sandbox.js", &[]),
        "stripe" => ("/assets/gateway-stripe.js", &["publishable_key"]),
        "authorize-net" => (
            "/assets/gateway-authorize-net.js",
            &["api_login_id", "client_key"],
        ),
        _ => return None,
    })
}

/// Asks the org's gateway how the payer's browser tokenizes for it.
pub(crate) async fn tokenizing(state: &crate::AppState, org: &domain::OrgSlug) -> Tokenizing {
    let tokenizer = match state.gateway.browser_tokenizer(org).await {
        Ok(tokenizer) => tokenizer,
        Err(e) => {
            tracing::error!(%org, error = %e, "card payments unavailable: the gateway did not answer");
            return Tokenizing::Unavailable;
        }
    };
    let Some((script, required)) = adapter(tokenizer.gateway) else {
        tracing::error!(%org, gateway = tokenizer.gateway, "card payments unavailable: no script for this gateway");
        return Tokenizing::Unavailable;
    };
    // Values go into an attribute (escaped anyway): only what public keys are made of.
    let usable =
        |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let value = |name: &str| {
        tokenizer
            .public
            .iter()
            .find(|(n, v)| *n == name && usable(v))
    };
    if let Some(missing) = required.iter().find(|name| value(name).is_none()) {
        tracing::warn!(%org, gateway = tokenizer.gateway, missing, "online payments not set up: the gateway's public value is missing");
        return Tokenizing::NotSetUp;
    }
    let csp = crate::csp::with_tokenizer(&tokenizer);
    Tokenizing::Ready(GatewayScripts {
        vendor: tokenizer.vendor_script,
        adapter: script,
        data: tokenizer
            .public
            .iter()
            .filter(|(_, v)| usable(v))
            .map(|(n, v)| (n.replace('_', "-"), v.clone()))
            .collect(),
        csp: (csp != crate::csp::DEFAULT).then_some(csp),
    })
}

/// What a page says instead of its card form when the org's gateway lacks its public key.
pub(crate) fn not_set_up(org_name: &str) -> String {
    format!(
        "{org_name} has not finished setting up online payments, so cards and bank accounts \
         cannot be taken here yet. Please contact {org_name} to pay another way."
    )
}

/// The page for a gateway that did not answer: nothing was charged; try again.
pub(crate) fn gateway_unavailable() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Card payments are unavailable right now",
        "Nothing was charged. Please try again in a few minutes.",
    )
}
