//! Paying several invoices of one customer at once: one charge, split across them oldest first
//! (`domain::allocate`), shown before paying (`preview`) and recorded on the payment (its
//! `allocations`). Only a signed-in payer, with a saved method, for a customer their
//! membership names; everything else is the same `NotFound` as an unknown invoice.
//!
//! The charge itself is `pay_now::charge`, as for one invoice: every invoice is locked while
//! the gateway is called, and every ledger balance drops in the outcome's own transaction.

use domain::{
    Allocation, Email, Invoice, InvoiceNumber, MethodId, Money, Org, OrgSlug, PaymentId, UserId,
};
use futures::future::try_join_all;

use crate::Services;
use crate::pay_now::{self, Charging, PayError, PaySource};
use crate::payments::Payment;
use crate::ports::InvoiceRead;
use crate::velocity;

/// Most invoices one payment pays: its outcome's transaction writes two items per invoice.
pub const MAX_INVOICES: usize = 25;

pub struct PaySeveral {
    pub org: OrgSlug,
    pub user: UserId,
    pub invoices: Vec<InvoiceNumber>,
    /// A lump sum (decimal, the invoices' currency) spread oldest first; None pays them all.
    pub amount: Option<String>,
    pub method: MethodId,
    /// The split the payer was shown, if any (each invoice and its part as a decimal string):
    /// a payment whose split differs now (a balance moved) is refused, uncharged, rather than
    /// made for other amounts.
    pub expected: Option<Vec<(InvoiceNumber, String)>>,
    /// Fixed by the idempotency claim: a retry of the same request gets the same id.
    pub payment_id: PaymentId,
    pub resumed: bool,
    pub receipt_email: Option<Email>,
    /// The payer typed `receipt_email` (see `PayCommand::receipt_asked`).
    pub receipt_asked: bool,
    pub client: Option<String>,
}

/// What a payment of several invoices will do, before it is made.
#[derive(Debug, Clone)]
pub struct Preview {
    pub org: Org,
    /// The chosen invoices as the accounting system has them now, oldest first.
    pub invoices: Vec<Invoice>,
    /// Each invoice's part, oldest first; invoices the amount does not reach have none.
    pub parts: Vec<Allocation>,
    /// What the chosen invoices owe together.
    pub total_due: Money,
    /// What will be charged to the invoices (the parts' sum).
    pub amount: Money,
    /// The card surcharge on top, when a method is named and the org charges one.
    pub surcharge: Money,
}

impl Preview {
    /// The invoice's part, if the amount reaches it.
    pub fn part_of(&self, invoice: &InvoiceNumber) -> Option<Money> {
        self.parts
            .iter()
            .find(|p| &p.invoice == invoice)
            .map(|p| p.amount)
    }
}

/// How `amount` (all they owe when None) would be split across the payer's `invoices`, and the
/// surcharge `method` would add.
pub async fn preview(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
    invoices: &[InvoiceNumber],
    amount: Option<&str>,
    method: Option<&MethodId>,
) -> Result<Preview, PayError> {
    let org = s.orgs.get_org(org).await?.ok_or(PayError::NotFound)?;
    let (reads, parts) = plan(s, &org, user, invoices, amount).await?;
    let currency = reads[0].invoice.amount_due.currency();
    let amount =
        Money::sum(currency, parts.iter().map(|p| p.amount)).map_err(PayError::InvalidAmount)?;
    let mut surcharge = Money::zero(currency);
    if let Some(method) = method {
        let customer = &reads[0].invoice.customer_id;
        let saved = crate::methods::for_invoice(s, &org.slug, user, method, customer)
            .await
            .map_err(|e| match e {
                crate::methods::MethodError::Store(e) => PayError::Store(e),
                _ => PayError::MethodNotFound,
            })?;
        let summary = saved.summary();
        if summary.kind == "card" && !org.settings.surcharges.is_empty() {
            surcharge = domain::card_surcharge(&org.settings.surcharges, &summary.brand, amount)
                .map_err(PayError::InvalidAmount)?;
        }
    }
    let mut invoices: Vec<Invoice> = reads.into_iter().map(|r| r.invoice).collect();
    invoices.sort_by(domain::oldest_first_order);
    let total_due = Money::sum(currency, invoices.iter().map(|i| i.amount_due))
        .map_err(PayError::InvalidAmount)?;
    Ok(Preview {
        org,
        invoices,
        parts,
        total_due,
        amount,
        surcharge,
    })
}

/// Pays the payer's `invoices` with one charge of their saved method. Ok is the approved
/// payment; schedules of invoices it paid off are cancelled.
pub async fn pay_several(s: &Services, cmd: PaySeveral) -> Result<Payment, PayError> {
    if cmd.resumed
        && let Some(existing) = s.payments.get_payment(&cmd.org, &cmd.payment_id).await?
    {
        return pay_now::resume(s, existing).await;
    }
    // The decline limits of every invoice and of the address, read with the org in one trip.
    let mut limits: Vec<(String, u32)> = Vec::new();
    for invoice in &cmd.invoices {
        for key in velocity::keys(&cmd.org, invoice, cmd.client.as_deref()) {
            if !limits.contains(&key) {
                limits.push(key);
            }
        }
    }
    let (org, counted) = pay_now::preflight(s, &cmd.org, limits).await?;
    let planned = plan(s, &org, &cmd.user, &cmd.invoices, cmd.amount.as_deref()).await;
    let (reads, parts) = match (planned, &cmd.expected) {
        (Ok((_, parts)), Some(expected)) if !same_split(&parts, expected)? => {
            return Err(PayError::SplitChanged);
        }
        // An invoice paid off since the split was shown.
        (Err(PayError::Allocation(domain::AllocationError::NotPayable(_))), Some(_)) => {
            return Err(PayError::SplitChanged);
        }
        (planned, _) => planned?,
    };
    // The reads in the parts' order; invoices the amount does not reach are left out.
    let reads: Vec<InvoiceRead> = parts
        .iter()
        .filter_map(|p| reads.iter().find(|r| r.invoice.number == p.invoice))
        .cloned()
        .collect();
    let charging = Charging {
        org,
        payment_id: cmd.payment_id,
        reads,
        parts,
        source: PaySource::Saved {
            user: cmd.user,
            method: cmd.method,
        },
        receipt_email: cmd.receipt_email,
        receipt_asked: cmd.receipt_asked,
        counted,
    };
    let payment = pay_now::charge(s, charging).await?;
    for part in payment.parts() {
        if let Err(e) = crate::schedules::invoice_paid(s, &payment.org, &part.invoice).await {
            tracing::warn!(payment = %payment.id, invoice = %part.invoice, error = %e, "schedule of a paid invoice not cancelled");
        }
    }
    Ok(payment)
}

/// Whether `parts` are the split the payer was shown (its amounts in the parts' currency).
fn same_split(parts: &[Allocation], shown: &[(InvoiceNumber, String)]) -> Result<bool, PayError> {
    if parts.len() != shown.len() {
        return Ok(false);
    }
    for (part, (invoice, amount)) in parts.iter().zip(shown) {
        let amount =
            Money::parse(amount, part.amount.currency()).map_err(PayError::InvalidAmount)?;
        if &part.invoice != invoice || amount != part.amount {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The invoices as read now and each one's part. The person must pay for the invoices'
/// customer; a lump sum that would leave an invoice part-paid needs an org that allows partial
/// payments.
async fn plan(
    s: &Services,
    org: &Org,
    user: &UserId,
    invoices: &[InvoiceNumber],
    amount: Option<&str>,
) -> Result<(Vec<InvoiceRead>, Vec<Allocation>), PayError> {
    if invoices.len() > MAX_INVOICES {
        return Err(PayError::TooManyInvoices(MAX_INVOICES));
    }
    if invoices.is_empty() {
        return Err(PayError::Allocation(domain::AllocationError::NoInvoices));
    }
    let membership = s
        .members
        .membership(&org.slug, user)
        .await?
        .ok_or(PayError::NotFound)?;
    let reads = try_join_all(
        invoices
            .iter()
            .map(|number| s.accounting.read_invoice(&org.slug, number)),
    )
    .await?;
    let reads: Vec<InvoiceRead> = reads
        .into_iter()
        .map(|read| {
            read.filter(|r| membership.customer_ids.contains(&r.invoice.customer_id))
                .ok_or(PayError::NotFound)
        })
        .collect::<Result<_, _>>()?;
    let asked = match amount.map(str::trim).filter(|a| !a.is_empty()) {
        Some(text) => Some(
            Money::parse(text, reads[0].invoice.amount_due.currency())
                .map_err(PayError::InvalidAmount)?,
        ),
        None => None,
    };
    let invoices: Vec<Invoice> = reads.iter().map(|r| r.invoice.clone()).collect();
    let parts = domain::allocate(&invoices, asked).map_err(PayError::Allocation)?;
    if !org.settings.allow_partial
        && let Some(short) = invoices.iter().find(|i| {
            parts
                .iter()
                .any(|p| p.invoice == i.number && p.amount != i.amount_due)
        })
    {
        return Err(PayError::PartialNotAllowed(short.amount_due));
    }
    Ok((reads, parts))
}
