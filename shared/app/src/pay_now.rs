//! Paying an invoice: always for the balance the accounting system reports now (or a partial
//! amount at most that balance, where the org allows it), never an amount from a link.
//!
//! Order of writes (each a transaction), so that nothing is lost or charged twice:
//! 1. the idempotency claim (by the caller, see `web::idempotent`), which fixes the payment id;
//! 2. `begin_attempt`: the pending payment with our reference, and a lock on the invoice;
//! 3. the gateway charge, with that reference;
//! 4. `finish_approved` / `finish_declined`: the payment's outcome and the ledger's new balance.
//!
//! A crash or timeout between 2 and 4 leaves a pending payment and an unfinished claim; the
//! client's retry takes the claim over (same payment id) and asks the gateway what happened to
//! that reference before it charges anything.

use domain::{
    Allocation, Email, InvoiceNumber, InvoiceStatus, MethodId, Money, MoneyError, Org, OrgSlug,
    PaymentId, PaymentStatus, Secret, UserId,
};
use time::Duration;

use crate::payments::{MethodSummary, Payment};
use crate::ports::{
    AccountingError, AttemptError, ChargeOutcome, ChargeRequest, ChargeSource, DeclineReason,
    FinishError, InvoiceRead, StoreError,
};
use crate::{Services, books, notices, velocity};

/// How long an attempt holds its invoice: longer than any gateway call we wait for.
pub const ATTEMPT_LOCK: Duration = Duration::minutes(2);

pub struct PayCommand {
    pub org: OrgSlug,
    pub invoice: InvoiceNumber,
    /// Fixed by the idempotency claim: a retry of the same request gets the same id.
    pub payment_id: PaymentId,
    /// True when this request took over an abandoned claim: look before charging.
    pub resumed: bool,
    pub source: PaySource,
    /// A decimal string in the invoice's currency: pay less than the balance (where allowed).
    pub amount: Option<String>,
    /// A scheduled payment's amount is "at most": a balance that dropped meanwhile is paid
    /// instead of refused.
    pub amount_at_most: bool,
    pub receipt_email: Option<Email>,
    /// The payer typed `receipt_email` on the page: the receipt goes whatever the address's
    /// account prefers (its preferences govern only receipts nobody asked for).
    pub receipt_asked: bool,
    /// The client's network address, for the per-address decline limit.
    pub client: Option<String>,
}

/// What pays: a token from the browser (anyone with the link), or a saved method of the
/// signed-in payer (who must pay for the invoice's customer).
#[derive(Debug, Clone)]
pub enum PaySource {
    Token(Secret<String>),
    Saved {
        user: UserId,
        method: MethodId,
    },
    /// A card's details (the Authorize.Net-compatible proxy only).
    Card(crate::ports::CardDetails),
}

#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// Unknown org or unknown invoice: the caller cannot tell which.
    #[error("no such invoice")]
    NotFound,
    /// Not the caller's method, or not one for this invoice's customer.
    #[error("no such payment method")]
    MethodNotFound,
    #[error("the invoice is {}", .0.as_str())]
    NotPayable(InvoiceStatus),
    #[error("amount: {0}")]
    InvalidAmount(MoneyError),
    #[error("the amount is more than the balance of {0}")]
    AmountAboveBalance(Money),
    #[error("this org takes only the whole balance of {0}")]
    PartialNotAllowed(Money),
    #[error("the amount must be more than zero")]
    ZeroAmount,
    #[error("another payment of this invoice is in progress")]
    InvoiceBusy,
    /// The chosen invoices cannot be paid together (none, twice, another customer's, nothing
    /// owed, more than they owe).
    #[error("{0}")]
    Allocation(domain::AllocationError),
    #[error("at most {0} invoices can be paid at once")]
    TooManyInvoices(usize),
    /// The split shown before paying is no longer what the balances give: nothing was charged.
    #[error("the balances changed since the amounts were shown")]
    SplitChanged,
    /// Too many declines on this invoice or from this address lately: nothing was tried.
    #[error("too many failed payments; try again in {} seconds", .0.whole_seconds())]
    TooManyAttempts(Duration),
    /// The gateway could not describe the card before charging (for its surcharge): nothing
    /// was charged.
    #[error("the payment gateway is unavailable")]
    GatewayUnavailable,
    /// The gateway refused; the failed payment is recorded.
    #[error("declined: {}", .1.code())]
    Declined(Box<Payment>, DeclineReason),
    /// The gateway did not answer, or the outcome could not be written: the payment is pending
    /// and a retry with the same key resolves it.
    #[error("the payment's outcome is not known yet")]
    Unresolved(Box<Payment>),
    #[error(transparent)]
    Accounting(#[from] AccountingError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PayError {
    /// Whether the request ended before anything reached the gateway or was written, so that
    /// its idempotency claim may be released and the same key tried again.
    pub fn is_before_charge(&self) -> bool {
        !matches!(self, PayError::Declined(..) | PayError::Unresolved(_))
    }
}

/// Pays `cmd.invoice` of `cmd.org` through the org's gateway. Ok is an approved payment
/// (succeeded, or a bank debit that is settling).
pub async fn pay(s: &Services, cmd: PayCommand) -> Result<Payment, PayError> {
    if cmd.resumed
        && let Some(existing) = s.payments.get_payment(&cmd.org, &cmd.payment_id).await?
    {
        return resume(s, existing).await;
    }
    let limits = velocity::keys(&cmd.org, &cmd.invoice, cmd.client.as_deref());
    let (org, counted) = preflight(s, &cmd.org, limits).await?;
    let read = s
        .accounting
        .read_invoice(&cmd.org, &cmd.invoice)
        .await?
        .ok_or(PayError::NotFound)?;
    let amount = amount_to_pay(&org, &read, cmd.amount.as_deref(), cmd.amount_at_most)?;
    let parts = vec![Allocation {
        invoice: cmd.invoice.clone(),
        amount,
    }];
    let charging = Charging {
        org,
        payment_id: cmd.payment_id,
        reads: vec![read],
        parts,
        source: cmd.source,
        receipt_email: cmd.receipt_email,
        receipt_asked: cmd.receipt_asked,
        counted,
    };
    charge(s, charging).await
}

/// One round trip for the org's settings and the recent declines under `limits` (card
/// testing): the org, and what a decline will be counted under; refused while too many.
pub(crate) async fn preflight(
    s: &Services,
    org: &OrgSlug,
    limits: Vec<(String, u32)>,
) -> Result<(Org, Counted), PayError> {
    let now = s.clock.now();
    let counted = Counted {
        keys: limits.iter().map(|(key, _)| key.clone()).collect(),
        window: velocity::window_index(now),
    };
    let seen = s
        .guard
        .preflight(org, &counted.keys, counted.window)
        .await?;
    let org = seen.org.ok_or(PayError::NotFound)?;
    if let Some(wait) = velocity::refusal(&limits, &seen.declines, now) {
        return Err(PayError::TooManyAttempts(wait));
    }
    Ok((org, counted))
}

/// A payment ready to go to the gateway: the invoices as read, each one's part, what pays.
pub(crate) struct Charging {
    pub org: Org,
    pub payment_id: PaymentId,
    /// The invoices as read, in `parts` order (the customer is the first one's).
    pub reads: Vec<InvoiceRead>,
    /// Each invoice's part: one for a payment of one invoice.
    pub parts: Vec<Allocation>,
    pub source: PaySource,
    pub receipt_email: Option<Email>,
    pub receipt_asked: bool,
    pub counted: Counted,
}

/// Charges a payment of one or several invoices: the pending payment and its invoices' locks,
/// the gateway's charge with our reference, then its outcome with the balances.
pub(crate) async fn charge(s: &Services, c: Charging) -> Result<Payment, PayError> {
    let now = s.clock.now();
    let first = c.reads.first().ok_or(PayError::NotFound)?;
    let customer = first.invoice.customer_id.clone();
    let currency = first.invoice.amount_due.currency();
    let amount =
        Money::sum(currency, c.parts.iter().map(|p| p.amount)).map_err(PayError::InvalidAmount)?;
    let gateway = s.gateway.name_for(&c.org.slug).await.map_err(|e| {
        tracing::warn!(org = %c.org.slug, error = %e, "the org's gateway could not be resolved");
        PayError::GatewayUnavailable
    })?;
    let (source, known) = match c.source {
        PaySource::Token(token) => (ChargeSource::Token(token), None),
        PaySource::Card(card) => {
            let summary = card.summary();
            (ChargeSource::Card(card), Some(summary))
        }
        PaySource::Saved { user, method } => {
            let method = crate::methods::for_invoice(s, &c.org.slug, &user, &method, &customer)
                .await
                .map_err(|e| match e {
                    crate::methods::MethodError::Store(e) => PayError::Store(e),
                    _ => PayError::MethodNotFound,
                })?;
            // Saved at the gateway the org used before: the one it uses now cannot charge it.
            if method.gateway != gateway {
                return Err(PayError::MethodNotFound);
            }
            let source = ChargeSource::Saved {
                customer: method.gateway_customer.clone(),
                method: method.gateway_method.clone(),
            };
            (source, Some(method.summary()))
        }
    };
    let surcharge = card_surcharge(s, &c.org, &source, known, amount).await?;
    let first_invoice = c.parts[0].invoice.clone();
    let payment = Payment {
        id: c.payment_id.clone(),
        org: c.org.slug.clone(),
        invoice_number: first_invoice.clone(),
        customer_id: Some(customer),
        amount,
        allocations: if c.parts.len() > 1 {
            c.parts.clone()
        } else {
            Vec::new()
        },
        surcharge,
        status: PaymentStatus::Pending,
        gateway: gateway.to_owned(),
        gateway_ref: None,
        method: None,
        failure: None,
        receipt_email: c.receipt_email.clone(),
        created_at: now,
        updated_at: now,
    };
    match s
        .attempts
        .begin_attempt(&payment, now + ATTEMPT_LOCK, now)
        .await
    {
        Ok(()) => {}
        Err(AttemptError::InvoiceBusy) => return Err(PayError::InvoiceBusy),
        Err(AttemptError::Exists) => {
            // A takeover whose first request got this far: carry on from the record.
            let existing = s
                .payments
                .get_payment(&c.org.slug, &c.payment_id)
                .await?
                .ok_or(PayError::NotFound)?;
            return resume(s, existing).await;
        }
        Err(AttemptError::Store(e)) => return Err(e.into()),
    }
    let description = match c.parts.as_slice() {
        [_] => format!("Invoice {first_invoice}"),
        parts => format!(
            "Invoices {}",
            parts
                .iter()
                .map(|p| p.invoice.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let request = ChargeRequest {
        org: c.org.slug.clone(),
        reference: payment.id.to_string(),
        amount: payment
            .amount
            .checked_add(payment.surcharge)
            .map_err(PayError::InvalidAmount)?,
        source,
        description,
    };
    let told = Told {
        org_name: c.org.name.clone(),
        customer_name: first.invoice.customer_name.clone(),
        receipt_asked: c.receipt_asked,
    };
    match s.gateway.charge(&request).await {
        Ok(outcome) => finish(s, payment, outcome, c.reads, &told, Some(&c.counted)).await,
        Err(e) => {
            tracing::warn!(payment = %payment.id, error = %e, "gateway did not answer; the payment stays pending");
            Err(PayError::Unresolved(Box::new(payment)))
        }
    }
}

/// The velocity keys a payment is counted under, and the window it fell in.
pub(crate) struct Counted {
    pub keys: Vec<String>,
    pub window: i64,
}

/// Names for the receipt, and whether the payer asked for it on the page.
struct Told {
    org_name: String,
    customer_name: String,
    receipt_asked: bool,
}

/// The balance now, or less where the org allows partial payments; never more.
fn amount_to_pay(
    org: &Org,
    read: &InvoiceRead,
    asked: Option<&str>,
    at_most: bool,
) -> Result<Money, PayError> {
    let balance = read.invoice.amount_due;
    if !read.invoice.is_payable() {
        let status = match read.invoice.status {
            InvoiceStatus::Open => InvoiceStatus::Paid,
            other => other,
        };
        return Err(PayError::NotPayable(status));
    }
    let Some(text) = asked else {
        return Ok(balance);
    };
    let asked = Money::parse(text, balance.currency()).map_err(PayError::InvalidAmount)?;
    if asked.is_zero() {
        return Err(PayError::ZeroAmount);
    }
    if asked >= balance && at_most {
        return Ok(balance);
    }
    if asked > balance {
        return Err(PayError::AmountAboveBalance(balance));
    }
    if asked < balance && !org.settings.allow_partial {
        return Err(PayError::PartialNotAllowed(balance));
    }
    Ok(asked)
}

/// The org's card surcharge for this source (`known` where a saved method says what it is).
/// Bank payments carry none, and neither does a source the gateway cannot describe before
/// charging (no fee that cannot be justified).
async fn card_surcharge(
    s: &Services,
    org: &Org,
    source: &ChargeSource,
    known: Option<MethodSummary>,
    amount: Money,
) -> Result<Money, PayError> {
    let none = Money::zero(amount.currency());
    if org.settings.surcharges.is_empty() {
        return Ok(none);
    }
    let described = match known {
        Some(summary) => Ok(Some(summary)),
        None => s.gateway.describe(&org.slug, source).await,
    };
    match described {
        Ok(Some(method)) if method.kind == "card" => {
            domain::card_surcharge(&org.settings.surcharges, &method.brand, amount)
                .map_err(PayError::InvalidAmount)
        }
        Ok(_) => Ok(none),
        Err(e) => {
            tracing::warn!(org = %org.slug, error = %e, "gateway could not describe the source");
            Err(PayError::GatewayUnavailable)
        }
    }
}

impl Told {
    fn names(&self) -> (&str, &str) {
        (&self.org_name, &self.customer_name)
    }
}

/// Carries on a payment whose first request stopped part-way: the gateway is asked what became
/// of our reference; nothing is charged again.
pub(crate) async fn resume(s: &Services, payment: Payment) -> Result<Payment, PayError> {
    match payment.status {
        PaymentStatus::Pending if payment.gateway_ref.is_none() => {
            match s
                .gateway
                .find_charge(&payment.org, payment.id.as_str())
                .await
            {
                Ok(Some(outcome)) => {
                    let told = told_of(s, &payment).await;
                    finish(s, payment, outcome, Vec::new(), &told, None).await
                }
                // The gateway never saw it. The card token may be spent, so we do not charge
                // now; the payer starts again with a new key. The pending record stays as the audit.
                Ok(None) => Err(PayError::Declined(
                    Box::new(payment),
                    DeclineReason::InvalidToken,
                )),
                Err(_) => Err(PayError::Unresolved(Box::new(payment))),
            }
        }
        PaymentStatus::Failed => {
            let reason = payment
                .failure
                .as_deref()
                .and_then(DeclineReason::parse)
                .unwrap_or(DeclineReason::Generic);
            Err(PayError::Declined(Box::new(payment), reason))
        }
        _ => Ok(payment),
    }
}

/// Finishes a payment whose attempt was abandoned (its request died after reaching the
/// gateway, and no retry came): the gateway is asked what became of our reference, and its
/// answer is written as a retry's would be. Nothing is charged.
pub async fn resolve_abandoned(s: &Services, payment: Payment) -> Result<Payment, PayError> {
    resume(s, payment).await
}

/// Names for the receipt of a payment resumed after its first request stopped.
async fn told_of(s: &Services, payment: &Payment) -> Told {
    let org_name = match s.orgs.get_org(&payment.org).await {
        Ok(Some(org)) => org.name,
        _ => payment.org.to_string(),
    };
    let customer_name = match s
        .accounting
        .read_invoice(&payment.org, &payment.invoice_number)
        .await
    {
        Ok(Some(read)) => read.invoice.customer_name,
        _ => String::new(),
    };
    Told {
        org_name,
        customer_name,
        receipt_asked: false,
    }
}

/// Writes the gateway's answer. `reads` are the invoices as read before the charge (none: read
/// them now); a changed ledger invoice means all are read again (the charge happened: its
/// amount must land on the invoices). Only the
/// request whose write moved the payment tells anyone about it, and a decline is counted
/// against the velocity keys.
async fn finish(
    s: &Services,
    mut payment: Payment,
    outcome: ChargeOutcome,
    reads: Vec<InvoiceRead>,
    told: &Told,
    counted: Option<&Counted>,
) -> Result<Payment, PayError> {
    let now = s.clock.now();
    payment.updated_at = now;
    match outcome {
        ChargeOutcome::Declined {
            gateway_ref,
            reason,
        } => {
            payment.gateway_ref = gateway_ref;
            payment.status = PaymentStatus::Failed;
            payment.failure = Some(reason.code().to_owned());
            if let Some(counted) = counted {
                let expires = velocity::expires_at(counted.window);
                if let Err(e) = s
                    .counters
                    .count_failure(&counted.keys, counted.window, expires)
                    .await
                {
                    tracing::error!(payment = %payment.id, error = %e, "decline not counted");
                }
            }
            match s.attempts.finish_declined(&payment, now).await {
                Ok(()) => {
                    notices::payment_outcome(s, &payment, told.names(), told.receipt_asked).await
                }
                Err(FinishError::NotPending) => {}
                Err(_) => return Err(PayError::Unresolved(Box::new(payment))),
            }
            Err(PayError::Declined(Box::new(payment), reason))
        }
        ChargeOutcome::Approved {
            gateway_ref,
            settling,
            method,
        } => {
            payment.gateway_ref = Some(gateway_ref);
            payment.method = Some(method);
            payment.status = if settling {
                PaymentStatus::Pending
            } else {
                PaymentStatus::Succeeded
            };
            let mut reads = (!reads.is_empty()).then_some(reads);
            for _ in 0..3 {
                if reads.is_none() {
                    reads = read_parts(s, &payment).await;
                }
                let ledger: Vec<InvoiceRead> = reads
                    .iter()
                    .flatten()
                    .filter(|r| r.ledger_version.is_some())
                    .cloned()
                    .collect();
                let books = match &reads {
                    _ if settling => None,
                    Some(reads) => reads
                        .iter()
                        .any(|r| r.ledger_version.is_none())
                        .then(|| books::entry(&payment, now)),
                    // Unsure: queue it; the ledger's write-back is a no-op.
                    None => s
                        .accounting
                        .writes_back(&payment.org)
                        .await
                        .unwrap_or(true)
                        .then(|| books::entry(&payment, now)),
                };
                match s
                    .attempts
                    .finish_approved(&payment, &ledger, books.as_ref(), now)
                    .await
                {
                    Ok(()) => {
                        if settling {
                            watch_if_untold(s, &payment, now).await;
                        }
                        notices::payment_outcome(s, &payment, told.names(), told.receipt_asked)
                            .await;
                        return Ok(payment);
                    }
                    Err(FinishError::NotPending) => return Ok(payment),
                    Err(FinishError::InvoiceChanged) => reads = None,
                    Err(FinishError::Store(e)) => {
                        tracing::error!(payment = %payment.id, error = %e, "charged, but the outcome was not written");
                        return Err(PayError::Unresolved(Box::new(payment)));
                    }
                }
            }
            tracing::error!(payment = %payment.id, "charged, but the ledger invoice kept changing");
            Err(PayError::Unresolved(Box::new(payment)))
        }
    }
}

/// Every invoice of the payment as the accounting system has it now; None when any one could
/// not be read.
async fn read_parts(s: &Services, payment: &Payment) -> Option<Vec<InvoiceRead>> {
    let mut reads = Vec::new();
    for part in payment.parts() {
        reads.push(
            s.accounting
                .read_invoice(&payment.org, &part.invoice)
                .await
                .ok()
                .flatten()?,
        );
    }
    Some(reads)
}

/// A payment still settling (a bank debit, a charge held for review) at a gateway that will not
/// say how it ends is watched: the gateway is asked from time to time (see `webhooks`). A watch
/// that cannot be written is logged; the payment stands.
async fn watch_if_untold(s: &Services, payment: &Payment, now: time::OffsetDateTime) {
    let Some(charge) = payment.gateway_ref.clone() else {
        return;
    };
    match s.gateway.must_poll(&payment.org).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(payment = %payment.id, error = %e, "could not tell whether the gateway must be asked; not watched");
            return;
        }
    }
    let watch = crate::ports::WatchedCharge {
        org: payment.org.clone(),
        gateway: payment.gateway.clone(),
        payment: payment.id.clone(),
        charge,
        since: now,
        attempts: 0,
    };
    if let Err(e) = s
        .webhooks
        .watch(&watch, now + crate::webhooks::WATCH_PENDING)
        .await
    {
        tracing::error!(payment = %payment.id, error = %e, "a settling charge is not watched");
    }
}

/// An invoice as a guest sees it before paying: the org (name, settings) and the invoice with
/// its balance now. An open invoice with nothing left to pay shows as paid.
pub struct GuestInvoice {
    pub org: Org,
    pub invoice: domain::Invoice,
}

/// The invoice to show on the Pay Now page and in the API's summary. Unknown org and unknown
/// invoice are the same `NotFound`.
pub async fn guest_invoice(
    s: &Services,
    org: &OrgSlug,
    number: &InvoiceNumber,
) -> Result<GuestInvoice, PayError> {
    let org = s.orgs.get_org(org).await?.ok_or(PayError::NotFound)?;
    let mut invoice = s
        .accounting
        .read_invoice(&org.slug, number)
        .await?
        .ok_or(PayError::NotFound)?
        .invoice;
    if invoice.status == InvoiceStatus::Open && invoice.amount_due.is_zero() {
        invoice.status = InvoiceStatus::Paid;
    }
    Ok(GuestInvoice { org, invoice })
}

/// A payment of this invoice, for its receipt page; None for another invoice's payment.
pub async fn receipt(
    s: &Services,
    org: &OrgSlug,
    number: &InvoiceNumber,
    payment: &PaymentId,
) -> Result<Option<(Org, Payment)>, PayError> {
    let Some(found) = s.payments.get_payment(org, payment).await? else {
        return Ok(None);
    };
    if &found.invoice_number != number {
        return Ok(None);
    }
    let org = s.orgs.get_org(org).await?.ok_or(PayError::NotFound)?;
    Ok(Some((org, found)))
}
