//! Payments as recorded by Paybridge.

use domain::{InvoiceNumber, Money, OrgSlug, PaymentId, PaymentStatus};
use time::OffsetDateTime;

use crate::ports::{Page, PaymentRepo, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub org: OrgSlug,
    pub invoice_number: InvoiceNumber,
    pub amount: Money,
    pub surcharge: Money,
    pub status: PaymentStatus,
    /// Which gateway took it ("sandbox", "stripe", "authorize-net").
    pub gateway: String,
    /// The gateway's transaction id, once known.
    pub gateway_ref: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
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
