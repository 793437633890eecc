//! The sandbox gateway's webhook side (local stack only): a charge found by its id
//! `SBCHID#<charge id>`, the events it sent `SBEVT#<event id>` (the same id sends the same body
//! again: a redelivery), and the charge's life after it was taken (`state`, `refunded`).

use aws_sdk_dynamodb::types::{Put, ReturnConsumedCapacity, TransactWriteItem};
use domain::OrgSlug;
use time::OffsetDateTime;

use app::ports::StoreError;

use crate::Store;
use crate::item::{Attrs, Item, key, n, s, time};
use crate::sandbox::{SandboxCharge, charge_key, read_charge};

fn charge_id_key(charge_id: &str) -> Attrs {
    key(format!("SBCHID#{charge_id}"), "SBCHID")
}

/// Written with the charge, so that an event can name the charge by its id.
pub(crate) fn charge_id_marker(table: &str, charge: &SandboxCharge) -> TransactWriteItem {
    let mut item = charge_id_key(&charge.charge_id);
    item.extend([
        ("type".into(), s("sandbox_charge_id")),
        ("org".into(), s(charge.org.as_str())),
        ("reference".into(), s(&charge.reference)),
    ]);
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .build()
                .expect("put has its fields"),
        )
        .build()
}

/// An event the sandbox sent, kept so that sending it again sends the same body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxEvent {
    pub event_id: String,
    pub org: OrgSlug,
    pub charge_id: String,
    pub kind: String,
    pub body: String,
    pub created_at: OffsetDateTime,
}

/// A charge with what happened to it after it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxChargeLife {
    pub charge: SandboxCharge,
    /// The last event's status ("settled", "returned", ...); None until an event.
    pub state: Option<String>,
    /// Refunded so far, in minor units.
    pub refunded: u64,
}

impl Store {
    pub async fn sandbox_charge_by_id(
        &self,
        charge_id: &str,
    ) -> Result<Option<SandboxChargeLife>, StoreError> {
        let Some(marker) = self.get_key(charge_id_key(charge_id)).await? else {
            return Ok(None);
        };
        let m = Item(&marker);
        let org = m.parsed("org", OrgSlug::parse)?;
        let Some(attrs) = self.get_key(charge_key(&org, m.s("reference")?)).await? else {
            return Ok(None);
        };
        let i = Item(&attrs);
        Ok(Some(SandboxChargeLife {
            charge: read_charge(&attrs)?,
            state: i.opt_s("state").map(str::to_owned),
            refunded: attrs
                .get("refunded")
                .map(|_| i.u64("refunded"))
                .transpose()?
                .unwrap_or(0),
        }))
    }

    /// Records an event unless its id is taken: Ok(None) when written, else the event that
    /// has the id.
    pub async fn sandbox_record_event(
        &self,
        event: &SandboxEvent,
    ) -> Result<Option<SandboxEvent>, StoreError> {
        let mut item = key(format!("SBEVT#{}", event.event_id), "SBEVT");
        item.extend([
            ("type".into(), s("sandbox_event")),
            ("event_id".into(), s(&event.event_id)),
            ("org".into(), s(event.org.as_str())),
            ("charge_id".into(), s(&event.charge_id)),
            ("kind".into(), s(&event.kind)),
            ("body".into(), s(&event.body)),
            ("created_at".into(), time(event.created_at)),
        ]);
        if self.put_new(item).await? {
            return Ok(None);
        }
        let attrs = self
            .get_key(key(format!("SBEVT#{}", event.event_id), "SBEVT"))
            .await?
            .ok_or_else(|| StoreError("sandbox event vanished".into()))?;
        let i = Item(&attrs);
        Ok(Some(SandboxEvent {
            event_id: i.s("event_id")?.to_owned(),
            org: i.parsed("org", OrgSlug::parse)?,
            charge_id: i.s("charge_id")?.to_owned(),
            kind: i.s("kind")?.to_owned(),
            body: i.s("body")?.to_owned(),
            created_at: i.time("created_at")?,
        }))
    }

    /// What the gateway now says of its charge: the last event's status and the refunds.
    pub async fn sandbox_set_charge_state(
        &self,
        charge: &SandboxCharge,
        state: &str,
        refunded: u64,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(charge_key(&charge.org, &charge.reference)))
            .update_expression("SET #state = :state, refunded = :refunded")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(state))
            .expression_attribute_values(":refunded", n(refunded))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        self.conditional("UpdateItem (sandbox charge state)", out)?;
        Ok(())
    }
}

/// How a sandbox refund was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundWrite {
    /// Recorded now: the refund's id.
    Written(String),
    /// This reference refunded before: that refund's id (a retry).
    Exists(String),
    /// The charge's refunds moved meanwhile: read it again.
    Moved,
}

fn refund_key(reference: &str) -> Attrs {
    key(format!("SBREF#{reference}"), "SBREF")
}

impl Store {
    /// Records a refund of a charge under our reference, once: the marker `SBREF#reference`
    /// and the charge's new refunded total (only if it still has `before`), in one transaction.
    pub async fn sandbox_record_refund(
        &self,
        charge: &SandboxCharge,
        reference: &str,
        refund_id: &str,
        before: u64,
        after: u64,
        state: &str,
    ) -> Result<RefundWrite, StoreError> {
        let mut marker = refund_key(reference);
        marker.extend([
            ("type".into(), s("sandbox_refund")),
            ("refund_id".into(), s(refund_id)),
            ("charge_id".into(), s(&charge.charge_id)),
        ]);
        let update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .set_key(Some(charge_key(&charge.org, &charge.reference)))
            .update_expression("SET #state = :state, refunded = :after")
            .condition_expression("attribute_not_exists(refunded) OR refunded = :before")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(state))
            .expression_attribute_values(":after", n(after))
            .expression_attribute_values(":before", n(before))
            .build()
            .expect("update has its fields");
        let items = vec![
            crate::directory::put_if_absent(&self.table, marker),
            TransactWriteItem::builder().update(update).build(),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(RefundWrite::Written(refund_id.to_owned())),
            Err(Ok(codes)) if crate::error::condition_failed(&codes, 0) => {
                let attrs = self
                    .get_key(refund_key(reference))
                    .await?
                    .ok_or_else(|| StoreError("sandbox refund vanished".into()))?;
                Ok(RefundWrite::Exists(Item(&attrs).s("refund_id")?.to_owned()))
            }
            Err(Ok(_)) => Ok(RefundWrite::Moved),
            Err(Err(e)) => Err(e),
        }
    }
}
