//! The JSON shapes of the API (snake_case; money as exact decimal strings; RFC 3339 times).

use domain::{Invoice, Money};
use serde::Serialize;
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;

/// An amount: `{"amount": "12.34", "currency": "USD"}`. Never a float.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MoneyView {
    #[schema(example = "12.34")]
    pub amount: String,
    #[schema(example = "USD")]
    pub currency: String,
}

impl From<Money> for MoneyView {
    fn from(m: Money) -> Self {
        MoneyView {
            amount: m.amount_string(),
            currency: m.currency().code().to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvoiceView {
    pub invoice_number: String,
    pub customer_id: String,
    pub customer_name: String,
    pub total: MoneyView,
    pub amount_due: MoneyView,
    /// draft, open, paid or void
    pub status: String,
    #[schema(value_type = String, format = Date)]
    pub issue_date: Date,
    #[schema(value_type = String, format = Date)]
    pub due_date: Date,
}

impl From<Invoice> for InvoiceView {
    fn from(i: Invoice) -> Self {
        InvoiceView {
            invoice_number: i.number.to_string(),
            customer_id: i.customer_id.to_string(),
            customer_name: i.customer_name,
            total: i.total.into(),
            amount_due: i.amount_due.into(),
            status: i.status.as_str().to_owned(),
            issue_date: i.issue_date,
            due_date: i.due_date,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentView {
    pub id: String,
    /// pending, succeeded, failed, settled, returned, refunded, disputed, dispute_won, dispute_lost
    pub status: String,
    pub amount: MoneyView,
    pub surcharge: MoneyView,
    /// The invoice paid (the first, oldest, of several).
    pub invoice_number: String,
    /// Each invoice's part of `amount` (one part for a payment of one invoice).
    pub allocations: Vec<AllocationView>,
    pub gateway: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// One invoice's part of a payment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AllocationView {
    pub invoice_number: String,
    pub amount: MoneyView,
}

impl From<app::payments::Payment> for PaymentView {
    fn from(p: app::payments::Payment) -> Self {
        PaymentView {
            id: p.id.to_string(),
            status: p.status.as_str().to_owned(),
            amount: p.amount.into(),
            surcharge: p.surcharge.into(),
            invoice_number: p.invoice_number.to_string(),
            allocations: p
                .parts()
                .into_iter()
                .map(|a| AllocationView {
                    invoice_number: a.invoice.to_string(),
                    amount: a.amount.into(),
                })
                .collect(),
            gateway: p.gateway,
            created_at: p.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentPage {
    pub items: Vec<PaymentView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}
