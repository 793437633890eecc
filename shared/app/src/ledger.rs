//! The built-in ledger: invoices kept in Paybridge's own table, for orgs without an accounting
//! system (and for the demo). Created by the admin API and the admin CLI.

use domain::{
    Currency, CustomerId, Invoice, InvoiceNumber, InvoiceStatus, Money, MoneyError, NameError,
    OrgSlug,
};
use serde::Deserialize;
use time::Date;

use crate::ports::{Clock, LedgerRepo, LedgerWriteError};

/// A ledger invoice as an admin writes it: JSON body, CSV row or CLI arguments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvoice {
    pub invoice_number: String,
    pub customer_id: String,
    pub customer_name: String,
    /// A decimal string in the currency's precision, e.g. "120.50".
    pub total: String,
    /// Defaults to the org's currency.
    pub currency: Option<String>,
    pub issue_date: Date,
    pub due_date: Date,
}

#[derive(Debug, thiserror::Error)]
pub enum NewInvoiceError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("total: {0}")]
    Total(#[from] MoneyError),
    #[error(transparent)]
    Currency(#[from] domain::UnknownCurrency),
    #[error("the total must be more than zero")]
    ZeroTotal,
    #[error("the customer name must be 1 to 200 characters")]
    CustomerName,
    #[error("the due date is before the issue date")]
    DueBeforeIssue,
    #[error(transparent)]
    Write(#[from] LedgerWriteError),
}

impl NewInvoice {
    /// Checks every field and builds an open invoice with nothing paid yet.
    pub fn validate(&self, default_currency: Currency) -> Result<Invoice, NewInvoiceError> {
        let currency = match &self.currency {
            Some(code) => code.parse()?,
            None => default_currency,
        };
        let total = Money::parse(&self.total, currency)?;
        if total.is_zero() {
            return Err(NewInvoiceError::ZeroTotal);
        }
        let name = self.customer_name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(NewInvoiceError::CustomerName);
        }
        if self.due_date < self.issue_date {
            return Err(NewInvoiceError::DueBeforeIssue);
        }
        Ok(Invoice {
            number: InvoiceNumber::parse(&self.invoice_number)?,
            customer_id: CustomerId::parse(&self.customer_id)?,
            customer_name: name.to_owned(),
            total,
            amount_due: total,
            status: InvoiceStatus::Open,
            issue_date: self.issue_date,
            due_date: self.due_date,
        })
    }
}

/// Adds one invoice to the org's ledger; an invoice number that exists is refused, never overwritten.
pub async fn add_invoice(
    ledger: &dyn LedgerRepo,
    clock: &dyn Clock,
    org: &OrgSlug,
    default_currency: Currency,
    new: &NewInvoice,
) -> Result<Invoice, NewInvoiceError> {
    let invoice = new.validate(default_currency)?;
    ledger.add_invoice(org, &invoice, clock.now()).await?;
    Ok(invoice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn new(total: &str) -> NewInvoice {
        NewInvoice {
            invoice_number: "INV-1".into(),
            customer_id: "c1".into(),
            customer_name: " Acme Pty ".into(),
            total: total.into(),
            currency: None,
            issue_date: date!(2026 - 11 - 01),
            due_date: date!(2026 - 11 - 30),
        }
    }

    #[test]
    fn validates_into_an_open_invoice() {
        let inv = new("120.50").validate(Currency::Aud).unwrap();
        assert_eq!(inv.total.amount_string(), "120.50");
        assert_eq!(inv.total.currency(), Currency::Aud);
        assert_eq!(inv.amount_due, inv.total);
        assert_eq!(inv.status, InvoiceStatus::Open);
        assert_eq!(inv.customer_name, "Acme Pty");
    }

    #[test]
    fn refuses_bad_fields() {
        assert!(matches!(
            new("0").validate(Currency::Usd),
            Err(NewInvoiceError::ZeroTotal)
        ));
        assert!(matches!(
            new("1.005").validate(Currency::Usd),
            Err(NewInvoiceError::Total(_))
        ));
        let mut bad_dates = new("1");
        bad_dates.due_date = date!(2026 - 10 - 01);
        assert!(matches!(
            bad_dates.validate(Currency::Usd),
            Err(NewInvoiceError::DueBeforeIssue)
        ));
        let mut bad_currency = new("1");
        bad_currency.currency = Some("usd".into());
        assert!(matches!(
            bad_currency.validate(Currency::Usd),
            Err(NewInvoiceError::Currency(_))
        ));
    }
}
