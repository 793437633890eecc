//! The sandbox gateway's webhooks, both ends of the wire: it writes and signs events about its
//! charges as Stripe does (`Paybridge-Signature`, see `signature`), and reads them back for
//! the webhook function once the signature holds.
//!
//! An event's body, as sent to `POST /webhooks/{org}/sandbox`:
//! ```json
//! {"id": "evt_...", "object": "event", "type": "charge.settled", "created": 1795003200,
//!  "data": {"object": {"id": "ch_...", "object": "charge", "reference": "pay_...",
//!           "amount": 125000, "currency": "USD", "amount_refunded": 0, "status": "settled"}}}
//! ```
//! Amounts are in minor units; `reference` is the reference we charged with (our payment id).

use std::sync::Arc;

use domain::{Money, OrgSlug, PaymentStatus, Secret};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use app::ports::{
    Clock, GatewayEvent, Ids, StoreError, WebhookDelivery, WebhookRejection, WebhookSecrets,
};
use store::Store;
use store::sandbox_events::SandboxEvent;

use crate::signature;

/// The event types the sandbox sends, and the status each reports.
pub const EVENT_TYPES: [(&str, PaymentStatus); 8] = [
    ("charge.succeeded", PaymentStatus::Succeeded),
    ("charge.failed", PaymentStatus::Failed),
    ("charge.settled", PaymentStatus::Settled),
    ("charge.returned", PaymentStatus::Returned),
    ("charge.refunded", PaymentStatus::Refunded),
    ("charge.disputed", PaymentStatus::Disputed),
    ("charge.dispute.won", PaymentStatus::DisputeWon),
    ("charge.dispute.lost", PaymentStatus::DisputeLost),
];

fn reported_status(kind: &str) -> Option<PaymentStatus> {
    EVENT_TYPES
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|(_, status)| *status)
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    object: ChargeObject,
}

#[derive(Deserialize)]
struct ChargeObject {
    id: String,
    reference: Option<String>,
    currency: String,
    amount_refunded: Option<u64>,
}

/// Reads a delivery to the sandbox's webhook URL: the signature first, over the raw body, then
/// the body. Ok(None) for a genuine event of a type that moves no payment.
pub fn read(
    delivery: &WebhookDelivery<'_>,
    secrets: &[Secret<String>],
    now: OffsetDateTime,
) -> Result<Option<GatewayEvent>, WebhookRejection> {
    signature::verify(
        delivery.header(signature::HEADER),
        delivery.body,
        secrets,
        now,
    )
    .map_err(|e| WebhookRejection::Signature(e.reason()))?;
    let envelope: Envelope = serde_json::from_slice(delivery.body)
        .map_err(|e| WebhookRejection::Malformed(e.to_string()))?;
    let Some(reports) = reported_status(&envelope.kind) else {
        return Ok(None);
    };
    let charge = envelope.data.object;
    let valid_id =
        |id: &str| (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic());
    if !valid_id(&envelope.id) || !valid_id(&charge.id) {
        return Err(WebhookRejection::Malformed("bad event or charge id".into()));
    }
    let refunded = match (reports, charge.amount_refunded) {
        (PaymentStatus::Refunded, Some(minor)) => {
            let currency = charge
                .currency
                .parse()
                .map_err(|_| WebhookRejection::Malformed("unknown currency".into()))?;
            Some(
                Money::from_minor(minor, currency)
                    .map_err(|e| WebhookRejection::Malformed(e.to_string()))?,
            )
        }
        _ => None,
    };
    Ok(Some(GatewayEvent {
        id: envelope.id,
        kind: envelope.kind,
        reports,
        charge: charge.id,
        reference: charge.reference,
        refunded,
    }))
}

/// What `POST /sandbox/events` asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    pub charge_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The same id again is a redelivery of that event; a new one when absent.
    pub event_id: Option<String>,
    /// For `charge.refunded`: this refund's amount (a decimal string); the rest when absent.
    pub amount: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("no such charge")]
    UnknownCharge,
    #[error("unknown event type; use one of {}", EVENT_TYPES.map(|(name, _)| name).join(", "))]
    UnknownType,
    #[error("an event id is 1 to 255 printable ASCII characters")]
    InvalidEventId,
    #[error("event {0} exists for another charge or type")]
    EventIdTaken(String),
    #[error("the refund amount is not valid: {0}")]
    InvalidAmount(String),
    #[error("the org has no webhook secret for the sandbox; rotate one first")]
    NoSecret,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An event, signed and ready to deliver.
#[derive(Debug, Clone)]
pub struct SignedEvent {
    pub event_id: String,
    pub org: OrgSlug,
    /// Where it goes: `/webhooks/{org}/sandbox`.
    pub path: String,
    /// The `Paybridge-Signature` header's value.
    pub signature: String,
    pub body: Vec<u8>,
}

/// The sandbox as a sender of webhooks. It signs with the org's active secrets (read through
/// the same port as the webhook function: locally, the sandbox plays the gateway to which an
/// admin gave the secret).
pub struct SandboxEvents {
    store: Store,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    secrets: Arc<dyn WebhookSecrets>,
}

impl SandboxEvents {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn Ids>,
        secrets: Arc<dyn WebhookSecrets>,
    ) -> Self {
        SandboxEvents {
            store,
            clock,
            ids,
            secrets,
        }
    }

    /// The event `request` asks for, signed now. A known event id sends that event's body
    /// again (a redelivery, freshly signed); a new one records the event and moves the charge.
    pub async fn event(&self, request: &EventRequest) -> Result<SignedEvent, EventError> {
        let reports = reported_status(&request.kind).ok_or(EventError::UnknownType)?;
        let life = self
            .store
            .sandbox_charge_by_id(&request.charge_id)
            .await?
            .ok_or(EventError::UnknownCharge)?;
        let charge = &life.charge;
        let event_id = match &request.event_id {
            Some(id)
                if (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                id.clone()
            }
            Some(_) => return Err(EventError::InvalidEventId),
            None => format!("evt_{}", self.ids.ulid()),
        };
        let now = self.clock.now();
        let refunded = match reports {
            PaymentStatus::Refunded => {
                let this = match &request.amount {
                    Some(text) => Money::parse(text, charge.amount.currency())
                        .map_err(|e| EventError::InvalidAmount(e.to_string()))?
                        .minor(),
                    None => charge.amount.minor().saturating_sub(life.refunded),
                };
                (life.refunded + this).min(charge.amount.minor())
            }
            _ => life.refunded,
        };
        let body = json!({
            "id": event_id,
            "object": "event",
            "type": request.kind,
            "created": now.unix_timestamp(),
            "livemode": false,
            "data": {"object": {
                "id": charge.charge_id,
                "object": "charge",
                "reference": charge.reference,
                "amount": charge.amount.minor(),
                "currency": charge.amount.currency().code(),
                "amount_refunded": refunded,
                "status": reports.as_str(),
            }},
        })
        .to_string();
        let event = SandboxEvent {
            event_id: event_id.clone(),
            org: charge.org.clone(),
            charge_id: charge.charge_id.clone(),
            kind: request.kind.clone(),
            body,
            created_at: now,
        };
        let body = match self.store.sandbox_record_event(&event).await? {
            None => {
                self.store
                    .sandbox_set_charge_state(charge, reports.as_str(), refunded)
                    .await?;
                event.body
            }
            Some(earlier) if earlier.charge_id == event.charge_id && earlier.kind == event.kind => {
                earlier.body
            }
            Some(_) => return Err(EventError::EventIdTaken(event_id)),
        };
        self.sign(&charge.org, event_id, body.into_bytes(), now)
            .await
    }

    /// What the sandbox sends by itself, as a bank would report: `charge.settled` for its
    /// pending bank debits older than `after`, and `charge.returned` for those of the return
    /// test account once settled for as long again. Event ids are fixed per charge and type, so
    /// sending one again is a redelivery.
    pub async fn due_by_themselves(
        &self,
        now: OffsetDateTime,
        after: time::Duration,
    ) -> Result<Vec<EventRequest>, EventError> {
        let mut due = Vec::new();
        for charge in self.store.sandbox_charges(100).await? {
            if charge.status != "pending" || charge.created_at + after > now {
                continue;
            }
            let Some(life) = self.store.sandbox_charge_by_id(&charge.charge_id).await? else {
                continue;
            };
            let next = match (life.state.as_deref(), charge.later.as_str()) {
                (None, _) => "charge.settled",
                (Some("settled"), "return_later") if charge.created_at + after * 2 <= now => {
                    "charge.returned"
                }
                _ => continue,
            };
            due.push(EventRequest {
                event_id: Some(format!("evt_auto_{}_{}", &next[7..], charge.charge_id)),
                charge_id: charge.charge_id,
                kind: next.to_owned(),
                amount: None,
            });
        }
        Ok(due)
    }

    /// Signs a body for the org's sandbox webhook URL with every active secret.
    pub async fn sign(
        &self,
        org: &OrgSlug,
        event_id: String,
        body: Vec<u8>,
        now: OffsetDateTime,
    ) -> Result<SignedEvent, EventError> {
        let secrets = self.secrets.active_secrets(org, "sandbox", now).await?;
        if secrets.is_empty() {
            return Err(EventError::NoSecret);
        }
        Ok(SignedEvent {
            event_id,
            org: org.clone(),
            path: format!("/webhooks/{org}/sandbox"),
            signature: signature::header_value(&secrets, now.unix_timestamp(), &body),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-11-26 12:00 UTC);

    fn delivery<'a>(headers: &'a [(String, String)], body: &'a [u8]) -> WebhookDelivery<'a> {
        WebhookDelivery {
            gateway: "sandbox",
            headers,
            body,
        }
    }

    fn signed(secret: &Secret<String>, body: &[u8]) -> Vec<(String, String)> {
        let value =
            signature::header_value(std::slice::from_ref(secret), NOW.unix_timestamp(), body);
        vec![("Paybridge-Signature".to_owned(), value)]
    }

    /// Every sample in `events/webhooks/sandbox/` reads as the event its name says.
    #[test]
    fn the_sample_payloads_read_as_their_types() {
        let secret = Secret::new("whsec_samples".to_owned());
        let samples = [
            (
                include_str!("../../../events/webhooks/sandbox/charge.succeeded.json"),
                PaymentStatus::Succeeded,
            ),
            (
                include_str!("../../../events/webhooks/sandbox/charge.failed.json"),
                PaymentStatus::Failed,
            ),
            (
                include_str!("../../../events/webhooks/sandbox/charge.settled.json"),
                PaymentStatus::Settled,
            ),
            (
                include_str!("../../../events/webhooks/sandbox/charge.returned.json"),
                PaymentStatus::Returned,
            ),
            (
                include_str!("../../../events/webhooks/sandbox/charge.refunded.json"),
                PaymentStatus::Refunded,
            ),
            (
                include_str!("../../../events/webhooks/sandbox/charge.disputed.json"),
                PaymentStatus::Disputed,
            ),
            (
                include_str!("../../../events/webhooks/sandbox/charge.dispute.won.json"),
                PaymentStatus::DisputeWon,
            ),
            (
                include_str!("../../../events/webhooks/sandbox/charge.dispute.lost.json"),
                PaymentStatus::DisputeLost,
            ),
        ];
        for (body, status) in samples {
            let headers = signed(&secret, body.as_bytes());
            let event = read(
                &delivery(&headers, body.as_bytes()),
                std::slice::from_ref(&secret),
                NOW,
            )
            .unwrap()
            .unwrap();
            assert_eq!(event.reports, status, "{body}");
            assert!(event.id.starts_with("evt_"));
            assert!(event.charge.starts_with("ch_"));
            assert!(event.reference.as_deref().unwrap().starts_with("pay_"));
        }
        let refund = include_str!("../../../events/webhooks/sandbox/charge.refunded.json");
        let headers = signed(&secret, refund.as_bytes());
        let event = read(&delivery(&headers, refund.as_bytes()), &[secret], NOW)
            .unwrap()
            .unwrap();
        assert_eq!(event.refunded.unwrap().amount_string(), "50.00");
    }

    #[test]
    fn the_signature_is_checked_before_the_body_is_read() {
        let secret = Secret::new("whsec_x".to_owned());
        let garbage = b"not json at all";
        let headers = signed(&Secret::new("whsec_other".to_owned()), garbage);
        assert_eq!(
            read(
                &delivery(&headers, garbage),
                std::slice::from_ref(&secret),
                NOW
            ),
            Err(WebhookRejection::Signature("no match"))
        );
        let headers = signed(&secret, garbage);
        assert!(matches!(
            read(
                &delivery(&headers, garbage),
                std::slice::from_ref(&secret),
                NOW
            ),
            Err(WebhookRejection::Malformed(_))
        ));
        let other_type = br#"{"id":"evt_1","type":"customer.created","data":{"object":{"id":"cus_1","currency":"USD"}}}"#;
        let headers = signed(&secret, other_type);
        assert_eq!(
            read(&delivery(&headers, other_type), &[secret], NOW),
            Ok(None)
        );
    }
}
