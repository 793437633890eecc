//! The org's accounting connection and its write-back queue, in the admin API:
//! - `GET/PUT /api/orgs/{org}/accounting`: which system (ledger, xero, connectwise) and its
//!   settings; secrets go in and never come out. `POST .../accounting/test` tries it.
//! - `POST /api/orgs/{org}/accounting/xero/consent` answers the URL to send the admin's browser
//!   to; Xero sends it back to `GET /accounting/xero/callback`, which finishes the connection.
//! - `GET /api/orgs/{org}/unprocessed-payments`: payments that could not be written back, and
//!   `POST .../{payment}/retry` and `.../{payment}/fixed` (recorded by hand).

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use domain::PaymentId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use app::accounting::{ConnectionView, SetupError};
use app::books::Retried;
use app::ports::{Books, ConnectionCheck};

use crate::auth::OrgAdmin;
use crate::html::message;
use crate::{AppState, Problem};

const CALLBACK: &str = "/accounting/xero/callback";

impl From<SetupError> for Problem {
    fn from(e: SetupError) -> Self {
        match e {
            SetupError::Invalid(why) => Problem::invalid(why),
            SetupError::BadConsent => Problem::new(
                StatusCode::BAD_REQUEST,
                "consent_expired",
                "The consent link is unknown, used or expired",
                "start the connection again",
            ),
            SetupError::Unavailable(e) => Problem::unavailable(&e),
            SetupError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AccountingBody {
    /// ledger, xero or connectwise
    pub system: String,
    /// Xero: client_id, client_secret, payment_account, surcharge_account?; ConnectWise: site,
    /// codebase, company, public_key, private_key, client_id, currency?
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
}

/// The org's accounting connection: the system, its state and settings that are not secret.
#[utoipa::path(
    get,
    path = "/api/orgs/{org}/accounting",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    responses((status = 200, description = "the connection", body = Object)),
    security(("api_key" = []))
)]
async fn get_accounting(
    State(state): State<AppState>,
    admin: OrgAdmin,
) -> Result<Json<ConnectionView>, Problem> {
    Ok(Json(app::accounting::view(&state, &admin.org).await?))
}

/// Sets where the org's invoices come from and its payments go. Xero without tokens then
/// needs the admin's consent (`.../accounting/xero/consent`); the ledger serves until then.
#[utoipa::path(
    put,
    path = "/api/orgs/{org}/accounting",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    request_body = AccountingBody,
    responses(
        (status = 200, description = "the connection as saved (no secrets)", body = Object),
        (status = 400, description = "a field was refused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn put_accounting(
    State(state): State<AppState>,
    admin: OrgAdmin,
    body: Bytes,
) -> Result<Json<ConnectionView>, Problem> {
    // Parsed here rather than by an extractor, so that no parse error can quote a secret.
    let body: AccountingBody = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "The body is not the JSON expected",
            format!(
                "expected {{system, settings}} (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    if state.orgs.get_org(&admin.org).await?.is_none() {
        return Err(Problem::not_found("no such org"));
    }
    let view = app::accounting::configure(&state, &admin.org, &body.system, &body.settings).await?;
    Ok(Json(view))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionTestView {
    pub system: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Tries the org's connection with one cheap authenticated call.
#[utoipa::path(
    post,
    path = "/api/orgs/{org}/accounting/test",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    responses((status = 200, description = "what the system said", body = ConnectionTestView)),
    security(("api_key" = []))
)]
async fn test_accounting(
    State(state): State<AppState>,
    admin: OrgAdmin,
) -> Result<Json<ConnectionTestView>, Problem> {
    let system = app::accounting::view(&state, &admin.org).await?.system;
    let (ok, detail) = match app::accounting::test(&state, &admin.org).await {
        Ok(ConnectionCheck::Accepted) => (true, None),
        Ok(ConnectionCheck::Refused(why)) => (false, Some(why)),
        Err(e) => (false, Some(e.to_string())),
    };
    Ok(Json(ConnectionTestView { system, ok, detail }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    /// Send the admin's browser here; Xero brings it back to Paybridge.
    pub authorize_url: String,
}

/// Starts Xero's consent for the org's saved Xero settings: the URL for the admin's browser.
#[utoipa::path(
    post,
    path = "/api/orgs/{org}/accounting/xero/consent",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    responses(
        (status = 200, description = "where to send the browser", body = ConsentView),
        (status = 400, description = "no Xero settings saved", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn start_consent(
    State(state): State<AppState>,
    admin: OrgAdmin,
) -> Result<Json<ConsentView>, Problem> {
    let redirect = format!("{}{CALLBACK}", state.public_url);
    let authorize_url = app::accounting::start_consent(&state, &admin.org, &redirect).await?;
    Ok(Json(ConsentView { authorize_url }))
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Where Xero sends the admin's browser back: a page that says how it went.
async fn consent_callback(
    State(state): State<AppState>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let (Some(code), Some(consent)) = (q.code, q.state) else {
        let why = match q.error.as_deref() {
            Some("access_denied") => "The connection was not allowed in Xero. Nothing was changed.",
            _ => "Xero did not send the connection back. Start again from the settings.",
        };
        return message(StatusCode::BAD_REQUEST, "Xero is not connected", why);
    };
    let redirect = format!("{}{CALLBACK}", state.public_url);
    match app::accounting::finish_consent(&state, &consent, &code, &redirect).await {
        Ok((org, tenant)) => message(
            StatusCode::OK,
            "Xero is connected",
            &format!(
                "Invoices of {org} now come from the Xero organisation {tenant}, and payments are written back to it."
            ),
        ),
        Err(SetupError::BadConsent | SetupError::Invalid(_)) => message(
            StatusCode::BAD_REQUEST,
            "Xero is not connected",
            "This link is unknown, used or expired. Start the connection again from the settings.",
        ),
        Err(e) => {
            tracing::warn!(error = %e, "Xero consent not finished");
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Xero is not connected yet",
                "Xero did not answer. Start the connection again in a moment.",
            )
        }
    }
    .into_response()
}

/// A payment that could not be written back, as the admin's list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnprocessedView {
    pub payment_id: String,
    pub invoice_number: String,
    #[schema(value_type = Object)]
    pub amount: domain::Money,
    #[schema(value_type = Object)]
    pub surcharge: domain::Money,
    /// What the accounting system said, or why the retries ended.
    pub reason: String,
    /// posted, reversal, or post: what is waiting to be done.
    pub waiting_for: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub posted_as: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub queued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

fn unprocessed_view(b: Books) -> UnprocessedView {
    let waiting_for = if b.want_reversed { "reversal" } else { "post" };
    UnprocessedView {
        payment_id: b.posting.payment.to_string(),
        invoice_number: b.posting.invoice.to_string(),
        amount: b.posting.amount,
        surcharge: b.posting.surcharge,
        reason: b
            .unprocessed
            .or(b.last_error)
            .unwrap_or_else(|| "waiting".to_owned()),
        waiting_for,
        posted_as: b.posted,
        queued_at: b.queued_at,
        updated_at: b.updated_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnprocessedPage {
    pub items: Vec<UnprocessedView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<u16>,
    cursor: Option<String>,
}

/// Payments the accounting system did not take (refused, or failing past the last retry),
/// oldest first: retry each, or mark it fixed once recorded by hand.
#[utoipa::path(
    get,
    path = "/api/orgs/{org}/unprocessed-payments",
    tag = "admin",
    params(
        ("org" = String, Path, description = "the org's slug"),
        ("limit" = Option<u16>, Query, description = "at most 100; 50 by default"),
        ("cursor" = Option<String>, Query, description = "`next` of the page before"),
    ),
    responses((status = 200, description = "the list", body = UnprocessedPage)),
    security(("api_key" = []))
)]
async fn list_unprocessed(
    State(state): State<AppState>,
    admin: OrgAdmin,
    Query(q): Query<PageQuery>,
) -> Result<Json<UnprocessedPage>, Problem> {
    let page = app::books::unprocessed(&state, &admin.org, q.limit, q.cursor.as_deref()).await?;
    Ok(Json(UnprocessedPage {
        items: page.items.into_iter().map(unprocessed_view).collect(),
        next: page.next,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetryView {
    /// written_back, waiting (will be tried again) or unprocessed (still on the list)
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub posted_as: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

fn listed_payment(raw: &str) -> Result<PaymentId, Problem> {
    PaymentId::parse(raw).map_err(|_| Problem::not_found("no such unprocessed payment"))
}

/// Tries an unprocessed payment's write-back again, now.
#[utoipa::path(
    post,
    path = "/api/orgs/{org}/unprocessed-payments/{payment}/retry",
    tag = "admin",
    params(
        ("org" = String, Path, description = "the org's slug"),
        ("payment" = String, Path, description = "the payment's id"),
    ),
    responses(
        (status = 200, description = "what the try came to", body = RetryView),
        (status = 404, description = "not on the list", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn retry(
    State(state): State<AppState>,
    admin: OrgAdmin,
    Path((_org, payment)): Path<(String, String)>,
) -> Result<Json<RetryView>, Problem> {
    let payment = listed_payment(&payment)?;
    match app::books::retry(&state, &admin.org, &payment).await? {
        Retried::NotListed => Err(Problem::not_found("no such unprocessed payment")),
        Retried::Tried(books) => {
            let outcome = if books.is_settled() {
                "written_back"
            } else if books.unprocessed.is_some() {
                "unprocessed"
            } else {
                "waiting"
            };
            Ok(Json(RetryView {
                outcome,
                posted_as: books.posted.clone(),
                detail: books.unprocessed.clone().or(books.last_error.clone()),
            }))
        }
    }
}

/// Marks an unprocessed payment as recorded by hand in the accounting system: it leaves the list.
#[utoipa::path(
    post,
    path = "/api/orgs/{org}/unprocessed-payments/{payment}/fixed",
    tag = "admin",
    params(
        ("org" = String, Path, description = "the org's slug"),
        ("payment" = String, Path, description = "the payment's id"),
    ),
    responses(
        (status = 204, description = "off the list"),
        (status = 404, description = "not on the list", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn mark_fixed(
    State(state): State<AppState>,
    admin: OrgAdmin,
    Path((_org, payment)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let payment = listed_payment(&payment)?;
    if app::books::mark_fixed(&state, &admin.org, &payment).await? {
        tracing::info!(org = %admin.org, payment = %payment, acting = ?admin.acting, "write-back marked fixed by hand");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found("no such unprocessed payment"))
    }
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_accounting, put_accounting))
        .routes(routes!(test_accounting))
        .routes(routes!(start_consent))
        .routes(routes!(list_unprocessed))
        .routes(routes!(retry))
        .routes(routes!(mark_fixed))
}

/// The page Xero sends the admin back to.
pub(crate) fn pages() -> Router<AppState> {
    Router::new().route(CALLBACK, get(consent_callback))
}
