//! One payment of several invoices of one customer: how it is split across them. Oldest first
//! (by due date, then issue date, then number), each invoice taking what it owes until the
//! amount runs out, so that a lump sum smaller than the total clears the oldest debts.

use crate::{CustomerId, Invoice, InvoiceNumber, Money};

/// One invoice's part of a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub invoice: InvoiceNumber,
    pub amount: Money,
}

impl Allocation {
    /// The parts of a payment recorded as `allocations` (empty: all of `amount` on `invoice`).
    pub fn parts_or_whole(
        allocations: &[Allocation],
        invoice: &InvoiceNumber,
        amount: Money,
    ) -> Vec<Allocation> {
        if allocations.is_empty() {
            vec![Allocation {
                invoice: invoice.clone(),
                amount,
            }]
        } else {
            allocations.to_vec()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("choose at least one invoice")]
    NoInvoices,
    #[error("invoice {0} is chosen twice")]
    Twice(InvoiceNumber),
    #[error("invoice {0} has nothing to pay")]
    NotPayable(InvoiceNumber),
    #[error("invoices of several customers cannot be paid together ({0} and {1})")]
    SeveralCustomers(CustomerId, CustomerId),
    #[error("invoices in several currencies cannot be paid together")]
    SeveralCurrencies,
    #[error("the amount must be more than zero")]
    Zero,
    #[error("the amount is more than the invoices' total of {0}")]
    MoreThanDue(String),
}

/// The order a payment pays invoices in: by due date, then issue date, then number.
pub fn oldest_first_order(a: &Invoice, b: &Invoice) -> std::cmp::Ordering {
    (a.due_date, a.issue_date, a.number.as_str()).cmp(&(
        b.due_date,
        b.issue_date,
        b.number.as_str(),
    ))
}

/// Splits `amount` (the whole balance when None) across `invoices`, oldest first. Every part
/// is more than zero and at most its invoice's balance; the parts add up to the amount.
pub fn allocate(
    invoices: &[Invoice],
    amount: Option<Money>,
) -> Result<Vec<Allocation>, AllocationError> {
    let first = invoices.first().ok_or(AllocationError::NoInvoices)?;
    for (i, invoice) in invoices.iter().enumerate() {
        if invoices[..i].iter().any(|o| o.number == invoice.number) {
            return Err(AllocationError::Twice(invoice.number.clone()));
        }
        if !invoice.is_payable() {
            return Err(AllocationError::NotPayable(invoice.number.clone()));
        }
        if invoice.customer_id != first.customer_id {
            return Err(AllocationError::SeveralCustomers(
                first.customer_id.clone(),
                invoice.customer_id.clone(),
            ));
        }
        if invoice.amount_due.currency() != first.amount_due.currency() {
            return Err(AllocationError::SeveralCurrencies);
        }
    }
    let total = Money::sum(
        first.amount_due.currency(),
        invoices.iter().map(|i| i.amount_due),
    )
    .map_err(|_| AllocationError::MoreThanDue("an amount too large".into()))?;
    let mut left = match amount {
        None => total,
        Some(a) if a.currency() != total.currency() => {
            return Err(AllocationError::SeveralCurrencies);
        }
        Some(a) if a.is_zero() => return Err(AllocationError::Zero),
        Some(a) if a.minor() > total.minor() => {
            return Err(AllocationError::MoreThanDue(format!(
                "{} {}",
                total.currency().code(),
                total.amount_string()
            )));
        }
        Some(a) => a,
    };
    let mut oldest_first: Vec<&Invoice> = invoices.iter().collect();
    oldest_first.sort_by(|a, b| oldest_first_order(a, b));
    let mut parts = Vec::new();
    for invoice in oldest_first {
        if left.is_zero() {
            break;
        }
        let part = if left.minor() < invoice.amount_due.minor() {
            left
        } else {
            invoice.amount_due
        };
        left = left
            .checked_sub(part)
            .expect("part is at most what is left");
        parts.push(Allocation {
            invoice: invoice.number.clone(),
            amount: part,
        });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Currency, InvoiceStatus};
    use proptest::prelude::*;
    use time::{Date, Duration, macros::date};

    fn invoice(number: &str, due: Date, cents: u64) -> Invoice {
        let money = Money::from_minor(cents, Currency::Usd).unwrap();
        Invoice {
            number: InvoiceNumber::parse(number).unwrap(),
            customer_id: CustomerId::parse("c1").unwrap(),
            customer_name: "Harbor Dental".into(),
            total: money,
            amount_due: money,
            status: InvoiceStatus::Open,
            issue_date: due - Duration::days(30),
            due_date: due,
        }
    }

    fn usd(cents: u64) -> Money {
        Money::from_minor(cents, Currency::Usd).unwrap()
    }

    fn split(parts: &[Allocation]) -> Vec<(String, u64)> {
        parts
            .iter()
            .map(|p| (p.invoice.to_string(), p.amount.minor()))
            .collect()
    }

    #[test]
    fn a_lump_sum_pays_the_oldest_first() {
        let invoices = [
            invoice("INV-3", date!(2026 - 12 - 20), 30000),
            invoice("INV-1", date!(2026 - 11 - 01), 10000),
            invoice("INV-2", date!(2026 - 11 - 15), 20000),
        ];
        let parts = allocate(&invoices, Some(usd(25000))).unwrap();
        assert_eq!(
            split(&parts),
            [("INV-1".into(), 10000), ("INV-2".into(), 15000)]
        );
        let all = allocate(&invoices, None).unwrap();
        assert_eq!(
            split(&all),
            [
                ("INV-1".into(), 10000),
                ("INV-2".into(), 20000),
                ("INV-3".into(), 30000)
            ]
        );
    }

    #[test]
    fn what_cannot_be_paid_together_is_refused() {
        let a = invoice("INV-1", date!(2026 - 11 - 01), 10000);
        assert_eq!(allocate(&[], None), Err(AllocationError::NoInvoices));
        assert!(matches!(
            allocate(&[a.clone(), a.clone()], None),
            Err(AllocationError::Twice(_))
        ));
        let mut other = invoice("INV-2", date!(2026 - 11 - 01), 10000);
        other.customer_id = CustomerId::parse("c2").unwrap();
        assert!(matches!(
            allocate(&[a.clone(), other], None),
            Err(AllocationError::SeveralCustomers(..))
        ));
        let mut paid = invoice("INV-3", date!(2026 - 11 - 01), 0);
        paid.status = InvoiceStatus::Paid;
        assert!(matches!(
            allocate(&[a.clone(), paid], None),
            Err(AllocationError::NotPayable(_))
        ));
        assert_eq!(
            allocate(std::slice::from_ref(&a), Some(usd(0))),
            Err(AllocationError::Zero)
        );
        assert_eq!(
            allocate(&[a], Some(usd(10001))),
            Err(AllocationError::MoreThanDue("USD 100.00".into()))
        );
    }

    proptest! {
        #[test]
        fn parts_add_up_and_no_newer_invoice_is_paid_before_an_older_one_is_cleared(
            dues in proptest::collection::vec((0i64..90, 1u64..100_000), 1..8),
            share in 1u64..=1000,
        ) {
            let invoices: Vec<Invoice> = dues
                .iter()
                .enumerate()
                .map(|(i, (days, cents))| {
                    invoice(&format!("INV-{i}"), date!(2026 - 01 - 01) + Duration::days(*days), *cents)
                })
                .collect();
            let total: u64 = dues.iter().map(|(_, c)| c).sum();
            let amount = (total * share / 1000).max(1);
            let parts = allocate(&invoices, Some(usd(amount))).unwrap();
            prop_assert_eq!(parts.iter().map(|p| p.amount.minor()).sum::<u64>(), amount);
            let due_of = |n: &InvoiceNumber| invoices.iter().find(|i| &i.number == n).unwrap();
            for (k, part) in parts.iter().enumerate() {
                let inv = due_of(&part.invoice);
                prop_assert!(part.amount.minor() > 0 && part.amount.minor() <= inv.amount_due.minor());
                // Every part but the last clears its invoice.
                if k + 1 < parts.len() {
                    prop_assert_eq!(part.amount, inv.amount_due);
                }
            }
            // Nothing left unpaid is older than something paid.
            let paid: Vec<&Invoice> = parts.iter().map(|p| due_of(&p.invoice)).collect();
            for unpaid in invoices.iter().filter(|i| !parts.iter().any(|p| p.invoice == i.number)) {
                for p in &paid {
                    prop_assert!((p.due_date, p.issue_date, p.number.as_str()) <= (unpaid.due_date, unpaid.issue_date, unpaid.number.as_str()));
                }
            }
        }
    }
}
