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
    Email, InvoiceNumber, InvoiceStatus, Money, MoneyError, OrgSlug, PaymentId, PaymentStatus,
};
use time::Duration;

use crate::Services;
use crate::payments::Payment;
use crate::ports::{
    AccountingError, AttemptError, ChargeOutcome, ChargeRequest, ChargeSource, DeclineReason,
    FinishError, InvoiceRead, StoreError,
};

/// How long an attempt holds its invoice: longer than any gateway call we wait for.
pub const ATTEMPT_LOCK: Duration = Duration::minutes(2);

pub struct PayCommand {
    pub org: OrgSlug,
    pub invoice: InvoiceNumber,
    /// Fixed by the idempotency claim: a retry of the same request gets the same id.
    pub payment_id: PaymentId,
    /// True when this request took over an abandoned claim: look before charging.
    pub resumed: bool,
    pub source: ChargeSource,
    /// A decimal string in the invoice's currency: pay less than the balance (where allowed).
    pub amount: Option<String>,
    pub receipt_email: Option<Email>,
}

#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// Unknown org or unknown invoice: the caller cannot tell which.
    #[error("no such invoice")]
    NotFound,
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
    let read = s
        .accounting
        .read_invoice(&cmd.org, &cmd.invoice)
        .await?
        .ok_or(PayError::NotFound)?;
    let balance = read.invoice.amount_due;
    if !read.invoice.is_payable() {
        let status = match read.invoice.status {
            InvoiceStatus::Open => InvoiceStatus::Paid,
            other => other,
        };
        return Err(PayError::NotPayable(status));
    }
    let amount = match &cmd.amount {
        None => balance,
        Some(text) => {
            let asked = Money::parse(text, balance.currency()).map_err(PayError::InvalidAmount)?;
            if asked.is_zero() {
                return Err(PayError::ZeroAmount);
            }
            if asked > balance {
                return Err(PayError::AmountAboveBalance(balance));
            }
            // The org's setting is read only when it matters: a full payment needs no read.
            if asked < balance {
                let org = s.orgs.get_org(&cmd.org).await?.ok_or(PayError::NotFound)?;
                if !org.settings.allow_partial {
                    return Err(PayError::PartialNotAllowed(balance));
                }
            }
            asked
        }
    };
    let now = s.clock.now();
    let payment = Payment {
        id: cmd.payment_id.clone(),
        org: cmd.org.clone(),
        invoice_number: cmd.invoice.clone(),
        amount,
        surcharge: Money::zero(amount.currency()),
        status: PaymentStatus::Pending,
        gateway: s.gateway.name().to_owned(),
        gateway_ref: None,
        method: None,
        failure: None,
        receipt_email: cmd.receipt_email.clone(),
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
                .get_payment(&cmd.org, &cmd.payment_id)
                .await?
                .ok_or(PayError::NotFound)?;
            return resume(s, existing).await;
        }
        Err(AttemptError::Store(e)) => return Err(e.into()),
    }
    let request = ChargeRequest {
        org: cmd.org.clone(),
        reference: payment.id.to_string(),
        amount: payment
            .amount
            .checked_add(payment.surcharge)
            .map_err(PayError::InvalidAmount)?,
        source: cmd.source,
        description: format!("Invoice {}", cmd.invoice),
    };
    match s.gateway.charge(&request).await {
        Ok(outcome) => finish(s, payment, outcome, Some(read)).await,
        Err(e) => {
            tracing::warn!(payment = %payment.id, error = %e, "gateway did not answer; the payment stays pending");
            Err(PayError::Unresolved(Box::new(payment)))
        }
    }
}

/// Carries on a payment whose first request stopped part-way: the gateway is asked what became
/// of our reference; nothing is charged again.
async fn resume(s: &Services, payment: Payment) -> Result<Payment, PayError> {
    match payment.status {
        PaymentStatus::Pending if payment.gateway_ref.is_none() => {
            match s
                .gateway
                .find_charge(&payment.org, payment.id.as_str())
                .await
            {
                Ok(Some(outcome)) => finish(s, payment, outcome, None).await,
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

/// Writes the gateway's answer. `read` is the invoice as read before the charge; a changed ledger
/// invoice is read again (the charge happened: its amount must land on the invoice).
async fn finish(
    s: &Services,
    mut payment: Payment,
    outcome: ChargeOutcome,
    read: Option<InvoiceRead>,
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
            match s.attempts.finish_declined(&payment, now).await {
                Ok(()) | Err(FinishError::NotPending) => {}
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
            let mut read = read;
            for _ in 0..3 {
                if read.is_none() {
                    read = s
                        .accounting
                        .read_invoice(&payment.org, &payment.invoice_number)
                        .await
                        .ok()
                        .flatten();
                }
                let ledger = read.as_ref().filter(|r| r.ledger_version.is_some());
                match s.attempts.finish_approved(&payment, ledger, now).await {
                    Ok(()) | Err(FinishError::NotPending) => return Ok(payment),
                    Err(FinishError::InvoiceChanged) => read = None,
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
