//! A payer's payments: those of the customers they pay for, newest first, searched by invoice
//! number, amount, date range and status, a page at a time. Read from each customer's payment
//! keys (`PaymentRepo::customer_payments`), never from the org's whole list.

use domain::{InvoiceNumber, Money, OrgSlug, PaymentStatus, UserId};
use time::{Date, Duration, OffsetDateTime};

use crate::Services;
use crate::payments::Payment;
use crate::ports::{Page, StoreError};

/// What a payer looks for; every part optional.
#[derive(Debug, Clone, Default)]
pub struct PaymentSearch {
    pub invoice: Option<String>,
    /// A decimal amount ("120.50") in the payment's currency: the invoice amount paid.
    pub amount: Option<String>,
    /// Created on or after this day (UTC) ...
    pub from: Option<Date>,
    /// ... and on or before this one.
    pub to: Option<Date>,
    pub status: Option<String>,
    /// At most 100; 20 by default.
    pub limit: Option<u16>,
    /// `next` of the page before.
    pub cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// Not a member of the org (or no such org): the same answer.
    #[error("no such organisation")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many rounds of reading a search with filters may take to fill a page; a page may come
/// back shorter than asked (with a cursor to go on) rather than read without end.
const ROUNDS: usize = 5;

/// Where a page ends: the last payment's time (ms) and id, which order the keys; `.`-joined,
/// so that it travels in a query string as it is.
fn position(p: &Payment) -> String {
    let ms = (p.created_at.unix_timestamp_nanos() / 1_000_000).max(0);
    format!("{ms:013}.{}", p.id)
}

pub async fn search(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
    q: &PaymentSearch,
) -> Result<Page<Payment>, SearchError> {
    let (_, membership) = crate::methods::membership(s, org, user)
        .await
        .map_err(|e| match e {
            crate::methods::MethodError::Store(e) => SearchError::Store(e),
            _ => SearchError::NotFound,
        })?;
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let invoice = match q
        .invoice
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        Some(i) => Some(
            InvoiceNumber::parse(i)
                .map_err(|_| SearchError::Invalid("invoice: an invoice number".into()))?,
        ),
        None => None,
    };
    let status = match q
        .status
        .as_deref()
        .map(str::trim)
        .filter(|st| !st.is_empty())
    {
        Some(st) => Some(PaymentStatus::parse(st).ok_or_else(|| {
            SearchError::Invalid(format!(
                "status: one of {}",
                PaymentStatus::ALL.map(PaymentStatus::as_str).join(", ")
            ))
        })?),
        None => None,
    };
    let amount = q.amount.as_deref().map(str::trim).filter(|a| !a.is_empty());
    if let Some(a) = amount
        && !a.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return Err(SearchError::Invalid(
            "amount: a decimal amount such as 120.50".into(),
        ));
    }
    let from = q
        .from
        .map_or(OffsetDateTime::UNIX_EPOCH, |d| d.midnight().assume_utc());
    let to = q.to.map_or_else(
        || s.clock.now() + Duration::days(1),
        |d| d.midnight().assume_utc() + Duration::days(1),
    );
    if to <= from {
        return Err(SearchError::Invalid("from: on or before to".into()));
    }
    let matches = |p: &Payment| {
        invoice
            .as_ref()
            .is_none_or(|i| p.parts().iter().any(|part| &part.invoice == i))
            && status.is_none_or(|st| p.status == st)
            && amount
                .is_none_or(|a| Money::parse(a, p.amount.currency()).is_ok_and(|m| m == p.amount))
    };

    let mut found: Vec<Payment> = Vec::new();
    let mut at = q.cursor.clone().filter(|c| c.split_once('.').is_some());
    for _ in 0..ROUNDS {
        let mut batch: Vec<Payment> = Vec::new();
        let mut more = false;
        for customer in &membership.customer_ids {
            let before = at
                .as_ref()
                .map(|p| format!("CPAY#{customer}#{}", p.replacen('.', "#", 1)));
            let page = s
                .payments
                .customer_payments(org, customer, from, to, before.as_deref(), limit)
                .await?;
            more |= page.next.is_some();
            batch.extend(page.items);
        }
        batch.sort_by_key(|p| std::cmp::Reverse(position(p)));
        // Each customer gave its newest `limit` before `at`: the newest `limit` of them all are
        // the next ones in order; past those, another round reads again.
        if batch.len() > usize::from(limit) {
            more = true;
            batch.truncate(usize::from(limit));
        }
        at = batch.last().map(position);
        let room = usize::from(limit) - found.len();
        let mut matched = batch.into_iter().filter(|p| matches(p));
        found.extend(matched.by_ref().take(room));
        let overflow = matched.next().is_some();
        if overflow {
            // The page filled inside this batch: go on from the last one shown.
            at = found.last().map(position);
            return Ok(Page {
                items: found,
                next: at,
            });
        }
        if !more || at.is_none() {
            return Ok(Page {
                items: found,
                next: None,
            });
        }
        if found.len() == usize::from(limit) {
            return Ok(Page {
                items: found,
                next: at,
            });
        }
    }
    Ok(Page {
        items: found,
        next: at,
    })
}
