//! What people and other systems are told after a payment's outcome is written: the payer's
//! receipt email and a `payment.*` event. Sent after the write and only by the request that made
//! it, so a failure here is logged and never undoes or repeats the payment.

use askama::Template;
use domain::PaymentStatus;
use serde_json::json;

use crate::Services;
use crate::payments::Payment;
use crate::ports::{DomainEvent, EmailMessage};

/// What a receipt shows, rendered by the text and HTML templates in `templates/email/`.
pub struct Receipt {
    pub headline: String,
    pub org_name: String,
    /// The invoice paid (the first of several).
    pub invoice_number: String,
    /// Each invoice's part, when the payment paid several (empty for one).
    pub parts: Vec<(String, String)>,
    pub customer_name: String,
    pub amount: String,
    pub surcharge: Option<String>,
    pub total: String,
    pub method: String,
    pub date: String,
    pub payment_id: String,
    pub settling: bool,
}

#[derive(Template)]
#[template(path = "email/receipt.txt")]
struct ReceiptText<'a> {
    r: &'a Receipt,
}

#[derive(Template)]
#[template(path = "email/receipt.html")]
struct ReceiptHtml<'a> {
    r: &'a Receipt,
}

/// "Visa ending 4242", "Sandbox Bank account ending 6789".
pub fn method_label(payment: &Payment) -> String {
    match &payment.method {
        Some(m) => summary_label(m),
        None => "card".to_owned(),
    }
}

/// A method as people read it: "Visa ending 4242", "Sandbox Bank account ending 6789".
pub fn summary_label(m: &crate::payments::MethodSummary) -> String {
    if m.kind == "bank" {
        format!("{} account ending {}", m.brand, m.last4)
    } else {
        format!("{} ending {}", capitalised(&m.brand), m.last4)
    }
}

/// "visa" -> "Visa": brands as gateways name them, as people read them.
pub fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl Receipt {
    pub fn of(payment: &Payment, org_name: &str, customer_name: &str) -> Receipt {
        let settling = payment.status == PaymentStatus::Pending;
        let total = payment
            .amount
            .checked_add(payment.surcharge)
            .unwrap_or(payment.amount);
        Receipt {
            headline: if settling {
                format!("Payment submitted to {org_name}")
            } else {
                format!("Receipt from {org_name}")
            },
            org_name: org_name.to_owned(),
            invoice_number: payment.invoice_number.to_string(),
            parts: payment
                .allocations
                .iter()
                .map(|a| (a.invoice.to_string(), a.amount.to_string()))
                .collect(),
            customer_name: customer_name.to_owned(),
            amount: payment.amount.to_string(),
            surcharge: (!payment.surcharge.is_zero()).then(|| payment.surcharge.to_string()),
            total: total.to_string(),
            method: method_label(payment),
            date: payment.updated_at.date().to_string(),
            payment_id: payment.id.to_string(),
            settling,
        }
    }

    /// "invoice INV-1", "invoices INV-1 and INV-2", "invoices INV-1, INV-2 and INV-3".
    pub fn invoices_text(&self) -> String {
        let numbers: Vec<&str> = self.parts.iter().map(|(n, _)| n.as_str()).collect();
        match numbers.as_slice() {
            [] => format!("invoice {}", self.invoice_number),
            [one] => format!("invoice {one}"),
            [rest @ .., last] => format!("invoices {} and {last}", rest.join(", ")),
        }
    }

    pub fn email(&self, to: domain::Email) -> EmailMessage {
        EmailMessage {
            to,
            subject: format!("{} - {}", self.headline, self.invoices_text()),
            text: ReceiptText { r: self }
                .render()
                .expect("receipt text renders"),
            html: ReceiptHtml { r: self }
                .render()
                .expect("receipt html renders"),
        }
    }
}

/// The event type of a payment's outcome.
pub fn event_type(status: PaymentStatus) -> &'static str {
    match status {
        // An approved bank debit: submitted, settles (or is returned) later.
        PaymentStatus::Pending => "payment.pending",
        PaymentStatus::Succeeded => "payment.succeeded",
        PaymentStatus::Failed => "payment.failed",
        PaymentStatus::Settled => "payment.settled",
        PaymentStatus::Returned => "payment.returned",
        PaymentStatus::Refunded => "payment.refunded",
        PaymentStatus::Disputed => "payment.disputed",
        PaymentStatus::DisputeWon => "payment.dispute_won",
        PaymentStatus::DisputeLost => "payment.dispute_lost",
    }
}

pub fn payment_event(payment: &Payment) -> DomainEvent {
    DomainEvent {
        kind: event_type(payment.status).to_owned(),
        org: payment.org.clone(),
        detail: json!({
            "payment_id": payment.id.as_str(),
            "invoice_number": payment.invoice_number.as_str(),
            "allocations": payment.parts().iter().map(|a| json!({
                "invoice_number": a.invoice.as_str(),
                "amount": a.amount,
            })).collect::<Vec<_>>(),
            "status": payment.status.as_str(),
            "amount": payment.amount,
            "surcharge": payment.surcharge,
            "gateway": payment.gateway,
            "gateway_ref": payment.gateway_ref,
            "decline_code": payment.failure,
        }),
        time: payment.updated_at,
    }
}

/// Tells the payer (if they left an address and the payment went through) and the event bus.
/// A receipt the payer asked for on the page goes whatever their account prefers; one nobody
/// asked for (a saved method's default address) follows the preferences.
pub async fn payment_outcome(
    s: &Services,
    payment: &Payment,
    (org_name, customer_name): (&str, &str),
    asked: bool,
) {
    if let Err(e) = s.events.publish(&payment_event(payment)).await {
        tracing::error!(payment = %payment.id, error = %e, "payment event not published");
    }
    if payment.status == PaymentStatus::Failed {
        return;
    }
    let Some(to) = &payment.receipt_email else {
        return;
    };
    if asked || crate::account::wants_at(s, to, crate::account::EmailKind::Receipts).await {
        let message = Receipt::of(payment, org_name, customer_name).email(to.clone());
        if let Err(e) = s.mailer.send(&message).await {
            tracing::error!(payment = %payment.id, error = %e, "receipt not sent");
        }
    }
}
