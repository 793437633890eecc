//! The signed-in payer's invoices and documents in one org: the invoices of the customers their
//! membership names (`customer_ids`), one of them, its PDF and a payment's receipt.
//!
//! Authorization is here: the org comes from the URL and must be one the person belongs to, and
//! every invoice and payment must be of one of their customers. Anything else (another org,
//! another payer's customer, an unknown number) is the same `NotFound`, so that nobody learns
//! which invoices exist. An admin or staff member sees only the customers of their own
//! membership (usually none): this is the payer's view, not the org's.

use domain::{
    CustomerId, Invoice, InvoiceNumber, InvoiceStatus, Membership, Org, OrgSlug, PaymentId,
    PaymentStatus, UserId,
};
use futures::future::try_join_all;

use crate::Services;
use crate::payments::Payment;
use crate::ports::{AccountingError, StoreError};
use crate::schedules::local_today;

/// How many pages (of 100) of the customer's payments an invoice PDF reads to find that
/// invoice's payments: a customer's payments older than its newest 1,000 are left off.
const PAYMENT_PAGES: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum PayerError {
    /// Not a member of the org, not one of the payer's customers' invoices or payments, or
    /// none such.
    #[error("no such invoice or payment")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Accounting(#[from] AccountingError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which invoices a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    /// Open with a balance to pay (the default).
    #[default]
    Open,
    Paid,
    /// Open, paid and void (never drafts: they were not issued).
    All,
}

impl StatusFilter {
    /// `open`, `paid` or `all`; absent is `open`.
    pub fn parse(text: Option<&str>) -> Result<StatusFilter, PayerError> {
        match text {
            None | Some("open") => Ok(StatusFilter::Open),
            Some("paid") => Ok(StatusFilter::Paid),
            Some("all") => Ok(StatusFilter::All),
            Some(_) => Err(PayerError::Invalid("status: open, paid or all".into())),
        }
    }
}

/// An invoice as the payer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayerInvoice {
    pub invoice: Invoice,
    /// Open with a balance, and due before today in the org's time zone.
    pub overdue: bool,
}

/// What an invoice PDF is made of.
#[derive(Debug, Clone)]
pub enum InvoicePdf {
    /// The accounting system's own PDF, as it gave it.
    Accounting(Vec<u8>),
    /// None there: Paybridge renders one from these.
    Render(Box<InvoiceDocument>),
}

#[derive(Debug, Clone)]
pub struct InvoiceDocument {
    pub org: Org,
    pub invoice: Invoice,
    /// Paybridge's payments of the invoice, newest first (failed attempts left off).
    pub payments: Vec<Payment>,
}

/// What a receipt shows.
#[derive(Debug, Clone)]
pub struct ReceiptDocument {
    pub org: Org,
    pub customer_id: CustomerId,
    pub customer_name: String,
    pub payment: Payment,
}

/// The org and the person's membership of it (NotFound when either is missing).
async fn member(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
) -> Result<(Org, Membership), PayerError> {
    let (org, membership) =
        futures::try_join!(s.orgs.get_org(org), s.members.membership(org, user))?;
    match (org, membership) {
        (Some(org), Some(membership)) => Ok((org, membership)),
        _ => Err(PayerError::NotFound),
    }
}

fn as_seen(today: time::Date, invoice: Invoice) -> PayerInvoice {
    PayerInvoice {
        overdue: invoice.is_payable() && invoice.due_date < today,
        invoice,
    }
}

/// The payer's customers' invoices in the org, oldest due date first.
pub async fn invoices(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
    filter: StatusFilter,
) -> Result<Vec<PayerInvoice>, PayerError> {
    let (org, membership) = member(s, org, user).await?;
    let customers = &membership.customer_ids;
    if customers.is_empty() {
        return Ok(Vec::new());
    }
    // Xero and ConnectWise are asked only for open invoices (what auto-pay and Pay Now need):
    // the adapters have no listing of paid ones, so on those orgs `all` answers the open ones
    // and `paid` none. The built-in ledger lists every invoice of a customer.
    let remote = s.accounting.writes_back(&org.slug).await?;
    let lists = if filter == StatusFilter::Open || remote {
        if filter == StatusFilter::Paid {
            return Ok(Vec::new());
        }
        try_join_all(
            customers
                .iter()
                .map(|c| s.accounting.open_invoices(&org.slug, c)),
        )
        .await?
    } else {
        try_join_all(
            customers
                .iter()
                .map(|c| s.ledger.invoices_of_customer(&org.slug, c)),
        )
        .await?
    };
    let wanted = |i: &Invoice| match filter {
        StatusFilter::Open => i.is_payable(),
        StatusFilter::Paid => i.status == InvoiceStatus::Paid,
        StatusFilter::All => i.status != InvoiceStatus::Draft,
    };
    let today = local_today(&org, s.clock.now());
    let mut invoices: Vec<PayerInvoice> = lists
        .into_iter()
        .flatten()
        .filter(|i| wanted(i) && customers.contains(&i.customer_id))
        .map(|i| as_seen(today, i))
        .collect();
    invoices.sort_by(|a, b| {
        (a.invoice.due_date, &a.invoice.number).cmp(&(b.invoice.due_date, &b.invoice.number))
    });
    Ok(invoices)
}

/// One of the payer's customers' invoices, with its org.
async fn own_invoice(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
    number: &str,
) -> Result<(Org, Invoice), PayerError> {
    let (org, membership) = member(s, org, user).await?;
    let number = InvoiceNumber::parse(number).map_err(|_| PayerError::NotFound)?;
    if membership.customer_ids.is_empty() {
        return Err(PayerError::NotFound);
    }
    let invoice = s
        .accounting
        .read_invoice(&org.slug, &number)
        .await?
        .ok_or(PayerError::NotFound)?
        .invoice;
    let own = membership.customer_ids.contains(&invoice.customer_id);
    if !own || invoice.status == InvoiceStatus::Draft {
        return Err(PayerError::NotFound);
    }
    Ok((org, invoice))
}

/// One invoice of the payer's customers.
pub async fn invoice(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
    number: &str,
) -> Result<PayerInvoice, PayerError> {
    let (org, invoice) = own_invoice(s, org, user, number).await?;
    let today = local_today(&org, s.clock.now());
    Ok(as_seen(today, invoice))
}

/// The invoice's PDF: the accounting system's where it renders one, else what Paybridge renders
/// it from (the invoice and its payments).
pub async fn invoice_pdf(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
    number: &str,
) -> Result<InvoicePdf, PayerError> {
    let (org, invoice) = own_invoice(s, org, user, number).await?;
    if let Some(bytes) = s.accounting.invoice_pdf(&org.slug, &invoice.number).await? {
        return Ok(InvoicePdf::Accounting(bytes));
    }
    let payments = payments_of(s, &org.slug, &invoice).await?;
    Ok(InvoicePdf::Render(Box::new(InvoiceDocument {
        org,
        invoice,
        payments,
    })))
}

/// The invoice's payments, newest first, but failed attempts (they paid nothing): read from
/// its customer's payments (`PaymentRepo::customer_payments`), at most `PAYMENT_PAGES` pages
/// of 100 back.
async fn payments_of(
    s: &Services,
    org: &OrgSlug,
    invoice: &domain::Invoice,
) -> Result<Vec<Payment>, PayerError> {
    let mut found = Vec::new();
    let mut before: Option<String> = None;
    let until = s.clock.now() + time::Duration::days(1);
    for _ in 0..PAYMENT_PAGES {
        let page = s
            .payments
            .customer_payments(
                org,
                &invoice.customer_id,
                time::OffsetDateTime::UNIX_EPOCH,
                until,
                before.as_deref(),
                100,
            )
            .await?;
        found.extend(page.items.into_iter().filter(|p| {
            p.status != PaymentStatus::Failed
                && p.parts().iter().any(|part| part.invoice == invoice.number)
        }));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    Ok(found)
}

/// A receipt of one of the payer's customers' payments.
pub async fn receipt(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
    payment: &str,
) -> Result<ReceiptDocument, PayerError> {
    let (org, membership) = member(s, org, user).await?;
    let id = PaymentId::parse(payment).map_err(|_| PayerError::NotFound)?;
    if membership.customer_ids.is_empty() {
        return Err(PayerError::NotFound);
    }
    let payment = s
        .payments
        .get_payment(&org.slug, &id)
        .await?
        .ok_or(PayerError::NotFound)?;
    // A payment names its invoice, not its customer: the invoice says whose it is.
    let invoice = s
        .accounting
        .read_invoice(&org.slug, &payment.invoice_number)
        .await?
        .ok_or(PayerError::NotFound)?
        .invoice;
    if !membership.customer_ids.contains(&invoice.customer_id) {
        return Err(PayerError::NotFound);
    }
    Ok(ReceiptDocument {
        org,
        customer_id: invoice.customer_id,
        customer_name: invoice.customer_name,
        payment,
    })
}
