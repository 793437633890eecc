//! Refunds an org's admin gives: part or all of a payment back through the gateway that took
//! it. The gateway is asked first; what it did is then recorded as an event of that gateway
//! (`refund:<gateway's refund id>`), through the same once-only state machine as its webhooks,
//! so that its own later notice of the refund changes nothing more.
//!
//! A retry cannot refund twice: the gateway reference is the payment's id and how much it had
//! refunded before (`pay_...-r<minor units>`), the same for a retry of the same refund, new once
//! it is recorded. Two admins refunding at once send the same reference, and the gateway makes
//! one refund of it.

use domain::{Money, OrgSlug, PaymentId, PaymentStatus};

use crate::Services;
use crate::ports::{
    AccountingError, GatewayError, GatewayEvent, RefundOutcome, RefundRequest, StoreError,
};
use crate::webhooks::{self, Outcome, WebhookError};

#[derive(Debug, Clone)]
pub struct RefundCommand {
    pub org: OrgSlug,
    pub payment: PaymentId,
    /// What to give back (a decimal in the payment's currency); everything left when None.
    pub amount: Option<String>,
}

/// A refund as it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refunded {
    pub payment: PaymentId,
    /// The payment's status now: refunded, or failed for a bank debit voided before it settled.
    pub status: PaymentStatus,
    /// All refunds of the payment together.
    pub refunded: Money,
    /// The gateway's id of this refund.
    pub refund_ref: String,
    /// Cancelled before settlement rather than refunded.
    pub voided: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    #[error("no such payment")]
    NotFound,
    /// Failed, returned, disputed, or refunded in full: nothing to give back.
    #[error("a {0} payment cannot be refunded")]
    NotRefundable(&'static str),
    #[error("the amount is not valid: {0}")]
    InvalidAmount(String),
    #[error("at most {0} is left to refund")]
    MoreThanLeft(Money),
    /// The gateway said no: its reason.
    #[error("the gateway refused the refund: {0}")]
    Refused(String),
    #[error("the gateway did not answer; nothing was recorded: try again")]
    GatewayUnavailable,
    /// The gateway refunded, and the record of it has not been written yet: a retry records
    /// it (the same reference is sent, and the gateway answers with the same refund).
    #[error("the refund was made and is being recorded: try again in a moment")]
    NotRecorded,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn refund(s: &Services, cmd: RefundCommand) -> Result<Refunded, RefundError> {
    let payment = s
        .payments
        .get_payment(&cmd.org, &cmd.payment)
        .await?
        .ok_or(RefundError::NotFound)?;
    let charge = payment
        .gateway_ref
        .clone()
        .ok_or(RefundError::NotRefundable("unfinished"))?;
    // What was refunded before, as the event records keep it (with the payment read again).
    let probe = GatewayEvent {
        id: String::new(),
        kind: String::new(),
        reports: PaymentStatus::Refunded,
        charge: charge.clone(),
        reference: Some(payment.id.to_string()),
        refunded: None,
    };
    let context = s
        .webhooks
        .event_context(&cmd.org, &payment.gateway, &probe)
        .await?;
    let tracked = context.payment.ok_or(RefundError::NotFound)?;
    let payment = tracked.payment;
    let total = payment
        .amount
        .checked_add(payment.surcharge)
        .map_err(|e| RefundError::InvalidAmount(e.to_string()))?;
    let before = tracked
        .refunded
        .unwrap_or_else(|| Money::zero(total.currency()));
    let left = total
        .checked_sub(before)
        .unwrap_or_else(|_| Money::zero(total.currency()));
    // A bank debit still settling is pending with the gateway's charge: it can only be voided.
    let settling = payment.status == PaymentStatus::Pending;
    match payment.status {
        PaymentStatus::Succeeded | PaymentStatus::Settled | PaymentStatus::Pending => {}
        PaymentStatus::Refunded if !left.is_zero() => {}
        other => return Err(RefundError::NotRefundable(other.as_str())),
    }
    let amount = match cmd.amount.as_deref() {
        None => left,
        Some(text) => Money::parse(text, total.currency())
            .map_err(|e| RefundError::InvalidAmount(e.to_string()))?,
    };
    if amount.is_zero() {
        return Err(RefundError::InvalidAmount(
            "more than zero, please".to_owned(),
        ));
    }
    if amount > left {
        return Err(RefundError::MoreThanLeft(left));
    }
    let request = RefundRequest {
        org: cmd.org.clone(),
        reference: format!("{}-r{}", payment.id, before.minor()),
        charge: charge.clone(),
        amount,
        whole: amount == total,
    };
    let outcome = s.gateway.refund(&request).await.map_err(|e| {
        let GatewayError::Unavailable(why) = &e;
        tracing::warn!(org = %cmd.org, payment = %payment.id, error = %why, "the gateway did not answer a refund");
        RefundError::GatewayUnavailable
    })?;
    let (refund_ref, voided) = match outcome {
        RefundOutcome::Refunded { refund_ref, voided } => (refund_ref, voided),
        RefundOutcome::Refused(why) => return Err(RefundError::Refused(why)),
    };
    let refunded = before
        .checked_add(amount)
        .map_err(|e| RefundError::InvalidAmount(e.to_string()))?;
    // A void of a debit that never settled is its failure (the invoice owes the amount again);
    // anything else is a refund.
    let reports = if voided && settling {
        PaymentStatus::Failed
    } else {
        PaymentStatus::Refunded
    };
    let event = GatewayEvent {
        id: format!("refund:{refund_ref}"),
        kind: if voided {
            "paybridge.void"
        } else {
            "paybridge.refund"
        }
        .to_owned(),
        reports,
        charge,
        reference: Some(payment.id.to_string()),
        refunded: (reports == PaymentStatus::Refunded).then_some(refunded),
    };
    let received = webhooks::record(s, &cmd.org, &payment.gateway, &event)
        .await
        .map_err(|e| {
            tracing::error!(org = %cmd.org, payment = %payment.id, refund = %refund_ref, error = %e, "a refund was made and could not be recorded yet");
            match e {
                WebhookError::Store(e) => RefundError::Store(e),
                WebhookError::Accounting(AccountingError(e)) => RefundError::Store(StoreError(e)),
                _ => RefundError::NotRecorded,
            }
        })?;
    if let Outcome::Ignored(report) = &received.outcome {
        tracing::warn!(org = %cmd.org, payment = %payment.id, refund = %refund_ref, ?report, "the refund did not move the payment");
    }
    if let Some(key) = &received.follow_up
        && let Err(e) = webhooks::run_follow_up(s, key).await
    {
        // The tick delivers it later.
        tracing::warn!(org = %cmd.org, payment = %payment.id, error = %e, "the refund's notices wait for the tick");
    }
    Ok(Refunded {
        payment: payment.id,
        status: received.status.unwrap_or(reports),
        refunded: if reports == PaymentStatus::Refunded {
            refunded
        } else {
            before
        },
        refund_ref,
        voided,
    })
}
