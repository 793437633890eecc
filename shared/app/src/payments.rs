//! Payments as recorded by Paybridge.

use domain::{InvoiceNumber, Money, OrgSlug, PaymentId, PaymentStatus};
use time::OffsetDateTime;

use crate::ports::{Page, PaymentRepo, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub org: OrgSlug,
    pub invoice_number: InvoiceNumber,
    /// The invoice's customer, as the accounting system said when the payment began (None on
    /// payments recorded before it was kept): what lets a payer find their payments.
    pub customer_id: Option<domain::CustomerId>,
    /// What reduces the invoices (the surcharge is on top).
    pub amount: Money,
    /// How `amount` is split when one payment pays several invoices of one customer; empty when
    /// it is all on `invoice_number` (which is then the first, oldest, of them).
    pub allocations: Vec<domain::Allocation>,
    pub surcharge: Money,
    pub status: PaymentStatus,
    /// Which gateway took it ("sandbox", "stripe", "authorize-net").
    pub gateway: String,
    /// The gateway's transaction id, once known.
    pub gateway_ref: Option<String>,
    /// How it was paid, for receipts (never a full card number).
    pub method: Option<MethodSummary>,
    /// Why it failed (a decline code), when it did.
    pub failure: Option<String>,
    /// Where the receipt goes, if the payer gave an address.
    pub receipt_email: Option<domain::Email>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Payment {
    /// Each invoice's part of the payment: its allocations, or all of it on the one invoice.
    pub fn parts(&self) -> Vec<domain::Allocation> {
        domain::Allocation::parts_or_whole(&self.allocations, &self.invoice_number, self.amount)
    }
}

/// What a receipt may show of the method: its kind, brand and last four digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodSummary {
    /// "card" or "bank"
    pub kind: String,
    /// "visa", "mastercard", ... or the bank's name
    pub brand: String,
    pub last4: String,
}

/// The org's payments, newest first, at most 100 a page.
pub async fn list_payments(
    repo: &dyn PaymentRepo,
    org: &OrgSlug,
    limit: Option<u16>,
    cursor: Option<&str>,
) -> Result<Page<Payment>, StoreError> {
    let limit = limit.unwrap_or(25).clamp(1, 100);
    repo.list_payments(org, limit, cursor).await
}
