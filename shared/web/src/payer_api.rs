//! The signed-in payer's invoices in an org, and their PDFs: the invoice (the accounting
//! system's own where it renders one, else Paybridge's) and a payment's receipt. Part of the
//! `portal` function. What the payer may see is decided in `app::payer`: another org, another
//! payer's customer and an unknown number are all the same 404.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use domain::OrgSlug;
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use app::payer::{InvoicePdf, PayerError, PayerInvoice, StatusFilter};

use crate::session::SignedIn;
use crate::views::MoneyView;
use crate::{AppState, Problem};

/// An invoice of one of the payer's customers.
#[derive(Debug, Serialize, ToSchema)]
pub struct PayerInvoiceView {
    pub invoice_number: String,
    pub customer_id: String,
    pub customer_name: String,
    pub total: MoneyView,
    pub amount_due: MoneyView,
    /// open, paid or void
    pub status: String,
    #[schema(value_type = String, format = Date)]
    pub issue_date: Date,
    #[schema(value_type = String, format = Date)]
    pub due_date: Date,
    /// Open with a balance and due before today in the org's time zone.
    pub overdue: bool,
    /// The Pay Now page of the invoice.
    pub pay_url: String,
    /// The invoice as a PDF.
    pub pdf_url: String,
}

impl PayerInvoiceView {
    fn of(org: &OrgSlug, seen: PayerInvoice) -> PayerInvoiceView {
        let i = seen.invoice;
        PayerInvoiceView {
            pay_url: format!("/pay/{org}/{}", i.number),
            pdf_url: format!("/api/me/orgs/{org}/invoices/{}/pdf", i.number),
            invoice_number: i.number.to_string(),
            customer_id: i.customer_id.to_string(),
            customer_name: i.customer_name,
            total: i.total.into(),
            amount_due: i.amount_due.into(),
            status: i.status.as_str().to_owned(),
            issue_date: i.issue_date,
            due_date: i.due_date,
            overdue: seen.overdue,
        }
    }
}

fn problem(e: PayerError) -> Problem {
    match e {
        PayerError::NotFound => Problem::not_found("no such invoice or payment"),
        PayerError::Invalid(detail) => Problem::invalid(detail),
        PayerError::Accounting(e) => Problem::unavailable(&e),
        PayerError::Store(e) => e.into(),
    }
}

/// The org in the URL; a malformed one is as unknown as any other.
fn org_of(org: &str) -> Result<OrgSlug, Problem> {
    OrgSlug::parse(org).map_err(|_| problem(PayerError::NotFound))
}

/// A PDF download: never cached by anyone but the browser's own download.
fn pdf_response(bytes: Vec<u8>, filename: &str) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).expect("slugs and numbers are header-safe"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        bytes,
    )
        .into_response()
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct InvoicesQuery {
    /// open (default), paid or all. Orgs on Xero or ConnectWise list open invoices only.
    pub status: Option<String>,
}

/// The invoices of the payer's customers, oldest due date first.
#[utoipa::path(
    get,
    path = "/api/me/orgs/{org}/invoices",
    tag = "portal",
    params(("org" = String, Path), InvoicesQuery),
    responses(
        (status = 200, description = "the invoices", body = Vec<PayerInvoiceView>),
        (status = 400, description = "an unknown status", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not a member of this org", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(org): Path<String>,
    Query(query): Query<InvoicesQuery>,
) -> Result<Json<Vec<PayerInvoiceView>>, Problem> {
    let org = org_of(&org)?;
    let filter = StatusFilter::parse(query.status.as_deref()).map_err(problem)?;
    let invoices = app::payer::invoices(&state, &org, &signed_in.user.id, filter)
        .await
        .map_err(problem)?;
    let views = invoices
        .into_iter()
        .map(|i| PayerInvoiceView::of(&org, i))
        .collect();
    Ok(Json(views))
}

/// One invoice of the payer's customers.
#[utoipa::path(
    get,
    path = "/api/me/orgs/{org}/invoices/{invoice}",
    tag = "portal",
    params(("org" = String, Path), ("invoice" = String, Path)),
    responses(
        (status = 200, description = "the invoice", body = PayerInvoiceView),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such invoice of the payer's customers", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn one(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((org, invoice)): Path<(String, String)>,
) -> Result<Json<PayerInvoiceView>, Problem> {
    let org = org_of(&org)?;
    let seen = app::payer::invoice(&state, &org, &signed_in.user.id, &invoice)
        .await
        .map_err(problem)?;
    Ok(Json(PayerInvoiceView::of(&org, seen)))
}

/// The invoice as a PDF: the accounting system's own where it has one, else Paybridge's.
#[utoipa::path(
    get,
    path = "/api/me/orgs/{org}/invoices/{invoice}/pdf",
    tag = "portal",
    params(("org" = String, Path), ("invoice" = String, Path)),
    responses(
        (status = 200, description = "the PDF", content_type = "application/pdf", body = Vec<u8>),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such invoice of the payer's customers", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn invoice_pdf(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((org, invoice)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let org = org_of(&org)?;
    let pdf = app::payer::invoice_pdf(&state, &org, &signed_in.user.id, &invoice)
        .await
        .map_err(problem)?;
    let (bytes, number) = match pdf {
        InvoicePdf::Accounting(bytes) => (bytes, invoice),
        InvoicePdf::Render(doc) => (crate::pdf::invoice(&doc), doc.invoice.number.to_string()),
    };
    Ok(pdf_response(bytes, &format!("{org}-{number}.pdf")))
}

/// A receipt of one of the payer's customers' payments, as a PDF.
#[utoipa::path(
    get,
    path = "/api/me/orgs/{org}/payments/{payment}/receipt.pdf",
    tag = "portal",
    params(("org" = String, Path), ("payment" = String, Path)),
    responses(
        (status = 200, description = "the receipt", content_type = "application/pdf", body = Vec<u8>),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such payment of the payer's customers", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn receipt_pdf(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((org, payment)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let org = org_of(&org)?;
    let doc = app::payer::receipt(&state, &org, &signed_in.user.id, &payment)
        .await
        .map_err(problem)?;
    let filename = format!("{org}-receipt-{}.pdf", doc.payment.id);
    Ok(pdf_response(crate::pdf::receipt(&doc), &filename))
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(invoice_pdf))
        .routes(routes!(receipt_pdf))
}
