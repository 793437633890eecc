//! The pages of `pay-now`: the Pay Now page, its receipt page, the Xero entry point, and one
//! "not found" page for every unknown org, invoice or receipt (nobody learns which exists).

use askama::Template;
use axum::{
    Router,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use domain::{InvoiceStatus, PaymentId, PaymentStatus};
use serde::Deserialize;

use app::notices::{Receipt, capitalised};
use app::pay_now::{GuestInvoice, PayError};

use crate::AppState;
use crate::html::{GatewayScripts, Tokenizing, gateway_unavailable, not_set_up, page, tokenizing};
use crate::pay_now::parse_target;
use crate::session::signed_in_user;

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundPage;

fn not_found() -> Response {
    page(StatusCode::NOT_FOUND, &NotFoundPage)
}

fn unavailable(e: &PayError) -> Response {
    tracing::error!(error = %e, "page could not load");
    let body =
        "The payment page is unavailable for a moment. Nothing was charged; try again shortly.";
    (StatusCode::SERVICE_UNAVAILABLE, Html(body)).into_response()
}

pub(crate) enum PageState {
    Payable,
    /// Paid, void or not yet issued: what to say instead of a form.
    Closed(String),
}

impl PageState {
    fn is_payable(&self) -> bool {
        matches!(self, PageState::Payable)
    }
}

struct SurchargeLine {
    label: String,
    rate: String,
    on_balance: String,
}

#[derive(Template)]
#[template(path = "pay.html")]
struct PayPage {
    org_name: String,
    org_slug: String,
    invoice_number: String,
    customer_name: String,
    amount_due: String,
    amount_due_plain: String,
    currency: &'static str,
    due_date: String,
    state: PageState,
    /// The signed-in payer's saved methods for this invoice (empty for a guest).
    saved: Vec<SavedChoice>,
    allow_partial: bool,
    bank_enabled: bool,
    surcharges: Vec<SurchargeLine>,
    /// The org's gateway's tokenization scripts (a payable page only).
    gateway: Option<GatewayScripts>,
}

fn closed_message(status: InvoiceStatus, org_name: &str) -> Option<String> {
    match status {
        InvoiceStatus::Open => None,
        InvoiceStatus::Paid => Some("This invoice is paid. Thank you!".to_owned()),
        InvoiceStatus::Void => Some(format!(
            "This invoice was cancelled by {org_name}; there is nothing to pay."
        )),
        InvoiceStatus::Draft => Some(format!(
            "This invoice is not issued yet. {org_name} will send it when it is ready."
        )),
    }
}

fn surcharge_lines(
    invoice_balance: domain::Money,
    rules: &[domain::SurchargeRule],
) -> Vec<SurchargeLine> {
    crate::pay_now::surcharge_views(rules, invoice_balance)
        .into_iter()
        .map(|view| {
            let label = match view.brand.as_str() {
                domain::ANY_BRAND if rules.len() > 1 => "Other cards".to_owned(),
                domain::ANY_BRAND => "All cards".to_owned(),
                brand => capitalised(brand),
            };
            let fixed = view
                .fixed
                .map(|f| format!(" + {} {}", f.currency, f.amount))
                .unwrap_or_default();
            SurchargeLine {
                label,
                rate: format!("{}%{fixed}", view.percent),
                on_balance: format!("{} {}", view.on_balance.currency, view.on_balance.amount),
            }
        })
        .collect()
}

/// A saved method the signed-in payer can pay with.
struct SavedChoice {
    id: String,
    label: String,
    is_default: bool,
}

/// The signed-in payer's methods for this invoice's customer; none for a guest (and none, with
/// the page still working, if they cannot be read just now).
async fn saved_choices(
    state: &AppState,
    parts: &Parts,
    org: &domain::OrgSlug,
    customer: &domain::CustomerId,
) -> Vec<SavedChoice> {
    let user = match signed_in_user(state, parts).await {
        Ok(Some(user)) => user,
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::warn!(error = %e, "saved methods not offered: the session could not be read");
            return Vec::new();
        }
    };
    // Held back by the org's two-factor requirement: the page works as a guest's.
    if !matches!(
        app::two_factor::held_back_in(state, org, &user).await,
        Ok(false)
    ) {
        return Vec::new();
    }
    match app::methods::usable_for(state, org, &user.id, customer).await {
        Ok(methods) => methods
            .into_iter()
            .map(|m| SavedChoice {
                id: m.id.to_string(),
                label: method_label(&m),
                is_default: m.is_default,
            })
            .collect(),
        Err(app::methods::MethodError::NotFound) => Vec::new(),
        Err(e) => {
            tracing::warn!(error = %e, "saved methods not offered");
            Vec::new()
        }
    }
}

/// "Visa ending 4242 (expires 12/2030) · Work card".
pub(crate) fn method_label(m: &app::ports::SavedMethod) -> String {
    let mut label = app::notices::summary_label(&m.summary());
    if let (Some(month), Some(year)) = (m.exp_month, m.exp_year) {
        label.push_str(&format!(" (expires {month:02}/{year})"));
    }
    if let Some(nickname) = &m.nickname {
        label.push_str(&format!(" · {nickname}"));
    }
    label
}

/// `GET /pay/{org}/{invoice}`: the hosted Pay Now page; a signed-in payer is offered their
/// saved methods too.
async fn pay_page(
    State(state): State<AppState>,
    parts: Parts,
    Path((org, invoice)): Path<(String, String)>,
) -> Response {
    let Some((org, number)) = parse_target(&org, &invoice) else {
        return not_found();
    };
    let GuestInvoice { org, invoice } =
        match app::pay_now::guest_invoice(&state, &org, &number).await {
            Ok(found) => found,
            Err(PayError::NotFound) => return not_found(),
            Err(e) => return unavailable(&e),
        };
    let balance = invoice.amount_due;
    // A payable invoice needs the org's gateway's script; without its public key there is no
    // form, only what to do instead.
    let (page_state, gateway) = match closed_message(invoice.status, &org.name) {
        Some(message) => (PageState::Closed(message), None),
        None => match tokenizing(&state, &org.slug).await {
            Tokenizing::Ready(scripts) => (PageState::Payable, Some(scripts)),
            Tokenizing::NotSetUp => (PageState::Closed(not_set_up(&org.name)), None),
            Tokenizing::Unavailable => return gateway_unavailable(),
        },
    };
    let saved = if page_state.is_payable() {
        saved_choices(&state, &parts, &org.slug, &invoice.customer_id).await
    } else {
        Vec::new()
    };
    let view = PayPage {
        org_slug: org.slug.to_string(),
        invoice_number: invoice.number.to_string(),
        customer_name: invoice.customer_name,
        amount_due: balance.to_string(),
        amount_due_plain: balance.amount_string(),
        currency: balance.currency().code(),
        due_date: invoice.due_date.to_string(),
        state: page_state,
        saved,
        allow_partial: org.settings.allow_partial,
        bank_enabled: true,
        surcharges: surcharge_lines(balance, &org.settings.surcharges),
        gateway,
        org_name: org.name,
    };
    let response = page(StatusCode::OK, &view);
    match &view.gateway {
        Some(scripts) => scripts.with_csp(response),
        None => response,
    }
}

#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptPage {
    org_name: String,
    headline: String,
    message: &'static str,
    invoice_number: String,
    amount: String,
    surcharge: Option<String>,
    total: String,
    method: String,
    date: String,
    payment_id: String,
    emailed: bool,
}

/// `GET /pay/{org}/{invoice}/receipts/{payment}`: what the payer sees after paying.
async fn receipt_page(
    State(state): State<AppState>,
    Path((org, invoice, payment)): Path<(String, String, String)>,
) -> Response {
    let (Some((org, number)), Ok(payment)) =
        (parse_target(&org, &invoice), PaymentId::parse(&payment))
    else {
        return not_found();
    };
    let (org, payment) = match app::pay_now::receipt(&state, &org, &number, &payment).await {
        Ok(Some(found)) => found,
        Ok(None) | Err(PayError::NotFound) => return not_found(),
        Err(e) => return unavailable(&e),
    };
    let (headline, message) = match payment.status {
        PaymentStatus::Failed => (
            "Payment declined".to_owned(),
            "The payment did not go through and nothing was charged. Go back to the invoice to try another card.",
        ),
        PaymentStatus::Pending => (
            "Payment submitted".to_owned(),
            "Bank payments take a few business days to clear; the invoice shows as paid when it does.",
        ),
        _ => (
            "Payment received".to_owned(),
            "Thank you. Keep this page or the emailed receipt for your records.",
        ),
    };
    let receipt = Receipt::of(&payment, &org.name, "");
    page(
        StatusCode::OK,
        &ReceiptPage {
            org_name: org.name,
            headline,
            message,
            invoice_number: receipt.invoice_number,
            amount: receipt.amount,
            surcharge: receipt.surcharge,
            total: receipt.total,
            method: receipt.method,
            date: receipt.date,
            payment_id: receipt.payment_id,
            emailed: payment.receipt_email.is_some() && payment.status != PaymentStatus::Failed,
        },
    )
}

/// Xero's custom payment URL: `/pay/{org}/xero?invoice=[INVOICENUMBER]&amount=[AMOUNTDUE]&...`.
/// Only the invoice number is used; amount and currency are ignored (the balance is read anew).
#[derive(Deserialize)]
struct XeroQuery {
    invoice: Option<String>,
}

async fn xero_entry(Path(org): Path<String>, Query(query): Query<XeroQuery>) -> Response {
    let invoice = query.invoice.unwrap_or_default();
    match parse_target(&org, invoice.trim()) {
        Some((org, number)) => Redirect::to(&format!("/pay/{org}/{number}")).into_response(),
        None => not_found(),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

pub(crate) const CSS: &str = include_str!("../assets/paybridge.css");

/// The pages' routes (HTML, not part of the API document).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pay/{org}/xero", get(xero_entry))
        .route("/pay/{org}/{invoice}", get(pay_page))
        .route("/pay/{org}/{invoice}/receipts/{payment}", get(receipt_page))
        .route(
            "/assets/paybridge.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/assets/pay.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../assets/pay.js"),
                )
            }),
        )
        .route(
            "/assets/details.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../assets/details.js"),
                )
            }),
        )
        .route(
            "/assets/gateway-stripe.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../assets/gateway-stripe.js"),
                )
            }),
        )
        .route(
            "/assets/gateway-authorize-net.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../assets/gateway-authorize-net.js"),
                )
            }),
        )
        .route(
            "/assets/methods.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../assets/methods.js"),
                )
            }),
        )
}
