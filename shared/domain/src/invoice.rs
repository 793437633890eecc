//! Invoices as the accounting system reports them.

use serde::{Deserialize, Serialize};
use time::Date;

use crate::{CustomerId, InvoiceNumber, Money};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Draft,
    Open,
    Paid,
    Void,
}

impl InvoiceStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Open => "open",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Void => "void",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Draft, Self::Open, Self::Paid, Self::Void]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// One invoice of one org, with its balance at the time it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub number: InvoiceNumber,
    pub customer_id: CustomerId,
    pub customer_name: String,
    pub total: Money,
    pub amount_due: Money,
    pub status: InvoiceStatus,
    pub issue_date: Date,
    pub due_date: Date,
}

impl Invoice {
    /// Payable means open with something left to pay.
    pub fn is_payable(&self) -> bool {
        self.status == InvoiceStatus::Open && !self.amount_due.is_zero()
    }
}
