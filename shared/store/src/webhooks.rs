//! Gateway notifications, as written in one transaction each:
//! - the event's marker `WHEVT#<gateway>#<org>#<event> / WHEVT` (TTL 90 days), put only if
//!   absent: the dedupe. The org is part of the key so that one org, which can sign whatever it
//!   likes for its own URL, can never use up another org's event ids;
//! - the payment's move `ORG#o / PAY#id`, only from the status read and only once its attempt
//!   is closed;
//! - a history line `ORG#o / PAYH#<payment>#<ms>#<event>`;
//! - the effects to deliver `ORG#o / FX#<payment>#<to>`, and the ledger invoice's balance
//!   given back (guarded by its version) where money came back.
//!
//! Work left for later (effects to deliver, held events) sits in the sparse `due` index under
//! `FOLLOWUP#<shard>`, sorted by the epoch second it is due, for as long as it is not done; a
//! deliverer takes it with a lease (a conditional update), so two never run it at once.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnConsumedCapacity, ReturnValue, TransactWriteItem,
    Update,
};
use domain::{Currency, InvoiceStatus, Money, OrgSlug, PaymentId, PaymentStatus};
use time::OffsetDateTime;

use app::ports::{
    BalanceRestore, EventContext, EventWrite, EventWritten, FollowUp, FollowUpKey, GatewayEvent,
    HeldEvent, HistoryEntry, Leased, Marker, PaymentEffects, StoreError, TrackedPayment,
    WatchedCharge, WebhookRepo,
};
use app::webhooks::EVENT_RETENTION;

use crate::Store;
use crate::directory::org_pk;
use crate::error::{cancellation_codes, sdk_error};
use crate::item::{Attrs, Item, key, n, s, time};
use crate::ledger::invoice_sk;
use crate::meter::Kind;
use crate::payments::{payment_sk, read_payment};
use crate::table::{DUE_PK, DUE_SK, GSI_DUE, GSI1, PK, TTL};

/// Partitions of the follow-up queue in the `due` index, so that no one partition is hot.
const SHARDS: u32 = 4;
const EFFECTS: &str = "effects";
const HELD: &str = "held_event";
const WATCH: &str = "watch";

fn marker_key(gateway: &str, org: &OrgSlug, event: &str) -> Attrs {
    key(format!("WHEVT#{gateway}#{org}#{event}"), "WHEVT")
}

fn effects_key(org: &OrgSlug, id: &str) -> Attrs {
    key(org_pk(org), format!("FX#{id}"))
}

fn watch_key(org: &OrgSlug, payment: &PaymentId) -> Attrs {
    key(org_pk(org), format!("WATCH#{payment}"))
}

fn history_prefix(payment: &PaymentId) -> String {
    format!("PAYH#{payment}#")
}

fn follow_up_key(k: &FollowUpKey) -> Attrs {
    match k {
        FollowUpKey::Effects { org, id } => effects_key(org, id),
        FollowUpKey::Held {
            org,
            gateway,
            event_id,
        } => marker_key(gateway, org, event_id),
        FollowUpKey::Watch { org, payment } => watch_key(org, payment),
        FollowUpKey::Books { org, payment } => crate::books::books_key(org, payment),
    }
}

/// A follow-up's name in the queue: its item's key.
pub(crate) fn queue_id(item_key: &Attrs) -> String {
    let i = Item(item_key);
    format!(
        "{}#{}",
        i.opt_s(PK).unwrap_or_default(),
        i.opt_s(crate::table::SK).unwrap_or_default()
    )
}

/// The `due` index keys of a follow-up due at `at`.
pub(crate) fn due_keys(id: &str, at: OffsetDateTime) -> [(String, AttributeValue); 2] {
    // FNV-1a: stable across processes and versions, unlike the std hasher.
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    [
        (DUE_PK.into(), s(format!("FOLLOWUP#{}", hash % SHARDS))),
        (DUE_SK.into(), due_sort(id, at)),
    ]
}

fn due_sort(id: &str, at: OffsetDateTime) -> AttributeValue {
    s(format!("{:012}#{id}", at.unix_timestamp().max(0)))
}

/// Below every sort key due at `now` or earlier ('$' sorts right after '#').
fn due_bound(now: OffsetDateTime) -> AttributeValue {
    s(format!("{:012}$", now.unix_timestamp().max(0)))
}

fn money_attr(item: &mut Attrs, name: &str, value: Option<Money>) {
    if let Some(m) = value {
        item.insert(name.into(), n(m.minor()));
        item.insert("currency".into(), s(m.currency().code()));
    }
}

pub(crate) fn read_money(attrs: &Attrs, name: &str) -> Result<Option<Money>, StoreError> {
    if !attrs.contains_key(name) {
        return Ok(None);
    }
    let i = Item(attrs);
    let currency: Currency = i.parsed("currency", str::parse)?;
    Money::from_minor(i.u64(name)?, currency)
        .map(Some)
        .map_err(|_| StoreError(format!("stored {name} is not an amount")))
}

fn status(i: &Item, name: &str) -> Result<PaymentStatus, StoreError> {
    i.parsed(name, |st| PaymentStatus::parse(st).ok_or(()))
}

fn tracked(attrs: &Attrs) -> Result<TrackedPayment, StoreError> {
    Ok(TrackedPayment {
        payment: read_payment(attrs)?,
        attempt_open: attrs.contains_key("attempt_open"),
        refunded: read_money(attrs, "refunded")?,
    })
}

fn read_event(attrs: &Attrs) -> Result<GatewayEvent, StoreError> {
    let i = Item(attrs);
    Ok(GatewayEvent {
        id: i.s("event_id")?.to_owned(),
        kind: i.s("event_type")?.to_owned(),
        reports: status(&i, "reports")?,
        charge: i.s("charge")?.to_owned(),
        reference: i.opt_s("reference").map(str::to_owned),
        refunded: read_money(attrs, "refunded")?,
    })
}

fn read_follow_up(attrs: &Attrs) -> Result<FollowUp, StoreError> {
    let i = Item(attrs);
    let org = i.parsed("org", OrgSlug::parse)?;
    let attempts = attrs
        .get("attempts")
        .map(|_| i.u64("attempts"))
        .transpose()?
        .unwrap_or(0) as u32;
    match i.s("follow_up")? {
        EFFECTS => Ok(FollowUp::Effects(PaymentEffects {
            id: i.s("effects_id")?.to_owned(),
            org,
            payment: i.parsed("payment_id", PaymentId::parse)?,
            from: status(&i, "from")?,
            to: status(&i, "to")?,
            event_id: i.s("event_id")?.to_owned(),
            at: i.time("at")?,
            restored: read_money(attrs, "restored")?,
            refunded: read_money(attrs, "refunded")?,
            done: match attrs.get("done") {
                Some(_) => i.strings("done")?,
                None => Vec::new(),
            },
            attempts,
        })),
        HELD => Ok(FollowUp::Held(HeldEvent {
            org,
            gateway: i.s("gateway")?.to_owned(),
            event: read_event(attrs)?,
            received_at: i.time("received_at")?,
            attempts,
        })),
        WATCH => Ok(FollowUp::Watch(WatchedCharge {
            org,
            gateway: i.s("gateway")?.to_owned(),
            payment: i.parsed("payment_id", PaymentId::parse)?,
            charge: i.s("charge")?.to_owned(),
            since: i.time("since")?,
            attempts,
        })),
        crate::books::BOOKS => Ok(FollowUp::Books(Box::new(crate::books::read_books(attrs)?))),
        other => Err(StoreError(format!("unknown follow-up kind {other:?}"))),
    }
}

fn history_item(org: &OrgSlug, payment: &PaymentId, h: &HistoryEntry) -> Attrs {
    let millis = (h.at.unix_timestamp_nanos() / 1_000_000).max(0);
    let mut item = key(
        org_pk(org),
        format!("{}{millis:013}#{}", history_prefix(payment), h.event_id),
    );
    item.extend([
        ("type".into(), s("payment_history")),
        ("at".into(), time(h.at)),
        ("event_id".into(), s(&h.event_id)),
        ("event_type".into(), s(&h.gateway_event)),
        ("reported".into(), s(h.reported.as_str())),
        ("before".into(), s(h.before.as_str())),
        ("after".into(), s(h.after.as_str())),
        ("outcome".into(), s(&h.outcome)),
    ]);
    money_attr(&mut item, "refunded", h.refunded);
    item
}

fn read_history(attrs: &Attrs) -> Result<HistoryEntry, StoreError> {
    let i = Item(attrs);
    Ok(HistoryEntry {
        at: i.time("at")?,
        event_id: i.s("event_id")?.to_owned(),
        gateway_event: i.s("event_type")?.to_owned(),
        reported: status(&i, "reported")?,
        before: status(&i, "before")?,
        after: status(&i, "after")?,
        outcome: i.s("outcome")?.to_owned(),
        refunded: read_money(attrs, "refunded")?,
    })
}

fn effects_item(e: &PaymentEffects) -> Attrs {
    let mut item = effects_key(&e.org, &e.id);
    item.extend([
        ("type".into(), s("payment_effects")),
        ("follow_up".into(), s(EFFECTS)),
        ("outcome".into(), s("pending")),
        ("effects_id".into(), s(&e.id)),
        ("org".into(), s(e.org.as_str())),
        ("payment_id".into(), s(e.payment.as_str())),
        ("from".into(), s(e.from.as_str())),
        ("to".into(), s(e.to.as_str())),
        ("event_id".into(), s(&e.event_id)),
        ("at".into(), time(e.at)),
        ("attempts".into(), n(e.attempts)),
    ]);
    money_attr(&mut item, "restored", e.restored);
    money_attr(&mut item, "refunded", e.refunded);
    // Due at once: the handler delivers it right after its answer, the retry path otherwise.
    item.extend(due_keys(&queue_id(&effects_key(&e.org, &e.id)), e.at));
    item
}

fn marker_item(w: &EventWrite<'_>) -> Attrs {
    let e = w.event;
    let expires = (w.now + EVENT_RETENTION).unix_timestamp();
    let mut item = marker_key(w.gateway, w.org, &e.id);
    item.extend([
        ("type".into(), s("webhook_event")),
        ("org".into(), s(w.org.as_str())),
        ("gateway".into(), s(w.gateway)),
        ("event_id".into(), s(&e.id)),
        ("event_type".into(), s(&e.kind)),
        ("reports".into(), s(e.reports.as_str())),
        ("charge".into(), s(&e.charge)),
        ("outcome".into(), s(w.outcome)),
        ("received_at".into(), time(w.now)),
        ("expires_at".into(), n(expires)),
        (TTL.into(), n(expires)),
    ]);
    if let Some(reference) = &e.reference {
        item.insert("reference".into(), s(reference));
    }
    if let Some(payment) = &w.payment {
        item.insert("payment_id".into(), s(payment.as_str()));
    }
    money_attr(&mut item, "refunded", e.refunded);
    if let Some(retry_at) = w.retry_at {
        item.insert("follow_up".into(), s(HELD));
        item.insert("attempts".into(), n(0));
        item.extend(due_keys(
            &queue_id(&marker_key(w.gateway, w.org, &e.id)),
            retry_at,
        ));
    }
    item
}

fn marker_action(table: &str, w: &EventWrite<'_>) -> TransactWriteItem {
    match w.marker {
        Marker::New => TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(table)
                    .set_item(Some(marker_item(w)))
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", PK)
                    .build()
                    .expect("put has its fields"),
            )
            .build(),
        // A held event applied later: it leaves the queue in the same transaction.
        Marker::ResolveHeld => {
            let mut update = Update::builder()
                .table_name(table)
                .set_key(Some(marker_key(w.gateway, w.org, &w.event.id)))
                .update_expression(
                    "SET #outcome = :outcome, resolved_at = :now, payment_id = :payment \
                     REMOVE #duepk, #duesk, #lease, lease_until",
                )
                .condition_expression("#outcome = :held")
                .expression_attribute_names("#outcome", "outcome")
                .expression_attribute_names("#duepk", DUE_PK)
                .expression_attribute_names("#duesk", DUE_SK)
                .expression_attribute_names("#lease", "lease")
                .expression_attribute_values(":outcome", s(w.outcome))
                .expression_attribute_values(":now", time(w.now))
                .expression_attribute_values(":held", s("held"));
            update = update.expression_attribute_values(
                ":payment",
                s(w.payment.as_ref().map_or("", |p| p.as_str())),
            );
            TransactWriteItem::builder()
                .update(update.build().expect("update has its fields"))
                .build()
        }
    }
}

/// The payment's move, only from where it was read, and only once its attempt is closed (our
/// own write of the gateway's answer comes first). A refund only rises.
fn payment_action(table: &str, w: &EventWrite<'_>) -> Option<TransactWriteItem> {
    let c = w.change.as_ref()?;
    let mut sets = vec!["#status = :to", "updated_at = :now"];
    let mut condition = "#status = :from AND attribute_not_exists(attempt_open)".to_owned();
    let mut update = Update::builder()
        .table_name(table)
        .set_key(Some(key(org_pk(w.org), payment_sk(&c.payment))))
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":from", s(c.from.as_str()))
        .expression_attribute_values(":to", s(c.to.as_str()))
        .expression_attribute_values(":now", time(w.now));
    if let Some(refunded) = c.refunded {
        sets.push("refunded = :refunded");
        update = update.expression_attribute_values(":refunded", n(refunded.minor()));
        match c.refunded_before {
            Some(before) => {
                condition.push_str(" AND refunded = :before AND refunded < :refunded");
                update = update.expression_attribute_values(":before", n(before.minor()));
            }
            None => condition.push_str(" AND attribute_not_exists(refunded)"),
        }
    }
    let update = update
        .update_expression(format!("SET {}", sets.join(", ")))
        .condition_expression(condition)
        .build()
        .expect("update has its fields");
    Some(TransactWriteItem::builder().update(update).build())
}

/// Each part of the payment goes back on its ledger invoice's balance (a paid one is open
/// again), guarded by the version read.
fn restore_actions(table: &str, w: &EventWrite<'_>) -> Result<Vec<TransactWriteItem>, StoreError> {
    w.restores
        .iter()
        .map(|r| restore_action(table, w, r))
        .collect()
}

fn restore_action(
    table: &str,
    w: &EventWrite<'_>,
    r: &BalanceRestore,
) -> Result<TransactWriteItem, StoreError> {
    let version = r
        .invoice
        .ledger_version
        .ok_or_else(|| StoreError("not a ledger invoice".into()))?;
    let due = r
        .invoice
        .invoice
        .amount_due
        .checked_add(r.amount)
        .map_err(|_| StoreError("the restored balance is not an amount".into()))?;
    let status = match r.invoice.invoice.status {
        InvoiceStatus::Paid => InvoiceStatus::Open,
        other => other,
    };
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key(
            org_pk(w.org),
            invoice_sk(&r.invoice.invoice.number),
        )))
        .update_expression(
            "SET amount_due = :due, #status = :status, version = :next, updated_at = :now",
        )
        .condition_expression("version = :version")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":due", n(due.minor()))
        .expression_attribute_values(":status", s(status.as_str()))
        .expression_attribute_values(":version", n(version))
        .expression_attribute_values(":next", n(version + 1))
        .expression_attribute_values(":now", time(w.now))
        .build()
        .expect("update has its fields");
    Ok(TransactWriteItem::builder().update(update).build())
}

fn put(table: &str, item: Attrs) -> TransactWriteItem {
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

/// How a transaction ended.
enum Transacted {
    Done,
    /// Cancelled: one reason code per action.
    Cancelled(Vec<String>),
}

impl Store {
    /// A transaction, tried again (briefly) when it ran into a concurrent one: two deliveries of
    /// one event at once must end as one write and one duplicate, not as an error.
    async fn transact_or_cancelled(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Transacted, StoreError> {
        for attempt in 1..=4u64 {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            match result {
                Ok(out) => {
                    self.meter.record(Kind::Write, out.consumed_capacity());
                    return Ok(Transacted::Done);
                }
                Err(e) => {
                    self.meter.record(Kind::Write, None);
                    match cancellation_codes(&e) {
                        Some(codes) if codes.iter().any(|c| c == "ConditionalCheckFailed") => {
                            return Ok(Transacted::Cancelled(codes));
                        }
                        Some(codes)
                            if attempt < 4 && codes.iter().any(|c| c == "TransactionConflict") =>
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(20 * attempt))
                                .await;
                        }
                        _ => return Err(sdk_error("TransactWriteItems", e)),
                    }
                }
            }
        }
        Err(StoreError("transaction kept conflicting".into()))
    }

    /// Items by key in one strongly consistent BatchGetItem (what was just written is seen).
    async fn consistent_batch(&self, keys: Vec<Attrs>) -> Result<Vec<Attrs>, StoreError> {
        let mut found = Vec::new();
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .expect("keys are set"),
        );
        while let Some(request) = pending.take() {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error("BatchGetItem", e))?;
            self.meter.record(Kind::Read, out.consumed_capacity());
            found.extend(
                out.responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default(),
            );
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .filter(|k| !k.keys().is_empty());
        }
        Ok(found)
    }

    /// A payment by the gateway's charge id (GSI1, eventually consistent).
    async fn payment_by_charge(
        &self,
        org: &OrgSlug,
        gateway: &str,
        charge: &str,
    ) -> Result<Option<TrackedPayment>, StoreError> {
        let items = self
            .query_prefix(Some(GSI1), format!("PAYREF#{gateway}#{charge}"), "PAY")
            .await?;
        // The index spans orgs; a charge of another org is not this org's payment.
        items
            .iter()
            .find(|a| Item(a).opt_s("org") == Some(org.as_str()))
            .map(tracked)
            .transpose()
    }
}

fn sort_key_of(attrs: &Attrs) -> Option<&str> {
    attrs
        .get(crate::table::SK)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

#[async_trait]
impl WebhookRepo for Store {
    async fn event_context(
        &self,
        org: &OrgSlug,
        gateway: &str,
        event: &GatewayEvent,
    ) -> Result<EventContext, StoreError> {
        let marker = marker_key(gateway, org, &event.id);
        let by_reference = event
            .reference
            .as_deref()
            .and_then(|r| PaymentId::parse(r).ok());
        let Some(id) = by_reference else {
            if event.reference.is_some() {
                // Not one of our ids: no payment of ours.
                let seen = self.get_key(marker).await?.is_some();
                return Ok(EventContext {
                    seen,
                    payment: None,
                });
            }
            let seen = self.get_key(marker).await?.is_some();
            let payment = self.payment_by_charge(org, gateway, &event.charge).await?;
            return Ok(EventContext { seen, payment });
        };
        let items = self
            .consistent_batch(vec![marker, key(org_pk(org), payment_sk(&id))])
            .await?;
        let mut context = EventContext {
            seen: false,
            payment: None,
        };
        for attrs in &items {
            match sort_key_of(attrs) {
                Some("WHEVT") => context.seen = true,
                Some(_) => context.payment = Some(tracked(attrs)?),
                None => {}
            }
        }
        Ok(context)
    }

    async fn record_event(&self, w: &EventWrite<'_>) -> Result<EventWritten, StoreError> {
        let mut items = vec![marker_action(&self.table, w)];
        let payment_at = payment_action(&self.table, w).map(|action| {
            items.push(action);
            items.len() - 1
        });
        let first_invoice = items.len();
        items.extend(restore_actions(&self.table, w)?);
        let invoices = first_invoice..items.len();
        if let (Some(history), Some(payment)) = (&w.history, &w.payment) {
            items.push(put(&self.table, history_item(w.org, payment, history)));
        }
        if let Some(effects) = &w.effects {
            items.push(put(&self.table, effects_item(effects)));
        }
        let failed = |codes: &[String], at: Option<usize>| {
            at.and_then(|i| codes.get(i))
                .is_some_and(|c| c == "ConditionalCheckFailed")
        };
        match self.transact_or_cancelled(items).await? {
            Transacted::Done => Ok(EventWritten::Written),
            Transacted::Cancelled(codes) if failed(&codes, Some(0)) => {
                Ok(EventWritten::AlreadyRecorded)
            }
            Transacted::Cancelled(codes) if failed(&codes, payment_at) => {
                Ok(EventWritten::PaymentMoved)
            }
            Transacted::Cancelled(codes) if invoices.clone().any(|i| failed(&codes, Some(i))) => {
                Ok(EventWritten::InvoiceChanged)
            }
            Transacted::Cancelled(codes) => Err(StoreError(format!(
                "webhook transaction cancelled: {codes:?}"
            ))),
        }
    }

    async fn payment_history(
        &self,
        org: &OrgSlug,
        payment: &PaymentId,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.query_prefix(None, org_pk(org), &history_prefix(payment))
            .await?
            .iter()
            .map(read_history)
            .collect()
    }

    async fn watch(&self, w: &WatchedCharge, first_at: OffsetDateTime) -> Result<(), StoreError> {
        let key = watch_key(&w.org, &w.payment);
        let id = queue_id(&key);
        let mut item = key;
        item.extend([
            ("type".into(), s("charge_watch")),
            ("follow_up".into(), s(WATCH)),
            ("outcome".into(), s("watching")),
            ("org".into(), s(w.org.as_str())),
            ("gateway".into(), s(&w.gateway)),
            ("payment_id".into(), s(w.payment.as_str())),
            ("charge".into(), s(&w.charge)),
            ("since".into(), time(w.since)),
            ("attempts".into(), n(w.attempts)),
        ]);
        item.extend(due_keys(&id, first_at));
        // Once per payment: a second approval of the same payment (a retry) changes nothing.
        self.put_new(item).await?;
        Ok(())
    }

    async fn due_follow_ups(
        &self,
        now: OffsetDateTime,
        limit: u16,
    ) -> Result<Vec<FollowUpKey>, StoreError> {
        let mut due: Vec<(String, FollowUpKey)> = Vec::new();
        for shard in 0..SHARDS {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI_DUE)
                .key_condition_expression("#pk = :pk AND #sk < :bound")
                .expression_attribute_names("#pk", DUE_PK)
                .expression_attribute_names("#sk", DUE_SK)
                .expression_attribute_values(":pk", s(format!("FOLLOWUP#{shard}")))
                .expression_attribute_values(":bound", due_bound(now))
                .limit(i32::from(limit.max(1)))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error("Query (due follow-ups)", e))?;
            self.meter.record(Kind::Read, out.consumed_capacity());
            for attrs in out.items() {
                let sort = Item(attrs).s(DUE_SK)?.to_owned();
                due.push((sort, read_follow_up(attrs)?.key()));
            }
        }
        due.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(due
            .into_iter()
            .take(usize::from(limit))
            .map(|(_, k)| k)
            .collect())
    }

    async fn lease(
        &self,
        k: &FollowUpKey,
        lease: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<Leased>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(follow_up_key(k)))
            .update_expression(
                "SET #lease = :lease, lease_until = :until, attempts = if_not_exists(attempts, :zero) + :one",
            )
            .condition_expression(
                "attribute_exists(#duepk) AND #duesk < :bound \
                 AND (attribute_not_exists(lease_until) OR lease_until < :now)",
            )
            .expression_attribute_names("#lease", "lease")
            .expression_attribute_names("#duepk", DUE_PK)
            .expression_attribute_names("#duesk", DUE_SK)
            .expression_attribute_values(":lease", s(lease))
            .expression_attribute_values(":until", n(until.unix_timestamp()))
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .expression_attribute_values(":bound", due_bound(now))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        let attrs: Option<HashMap<String, AttributeValue>> = match &result {
            Ok(out) => out.attributes.clone(),
            Err(_) => None,
        };
        if !self.conditional("UpdateItem (follow-up lease)", result)? {
            return Ok(None);
        }
        let attrs = attrs.ok_or_else(|| StoreError("the lease returned no item".into()))?;
        let mut follow_up = read_follow_up(&attrs)?;
        // What the record held before this lease counted (attempts counts tries begun).
        match &mut follow_up {
            FollowUp::Effects(e) => e.attempts = e.attempts.saturating_sub(1),
            FollowUp::Held(h) => h.attempts = h.attempts.saturating_sub(1),
            FollowUp::Watch(w) => w.attempts = w.attempts.saturating_sub(1),
            FollowUp::Books(b) => b.attempts = b.attempts.saturating_sub(1),
        }
        Ok(Some(Leased {
            follow_up,
            lease: lease.to_owned(),
        }))
    }

    async fn reschedule(
        &self,
        k: &FollowUpKey,
        lease: &str,
        done: &[String],
        retry_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let id = queue_id(&follow_up_key(k));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(follow_up_key(k)))
            .update_expression("SET #duesk = :sk, done = :done REMOVE #lease, lease_until")
            .condition_expression("#lease = :lease")
            .expression_attribute_names("#duesk", DUE_SK)
            .expression_attribute_names("#lease", "lease")
            .expression_attribute_values(":sk", due_sort(&id, retry_at))
            .expression_attribute_values(":done", AttributeValue::L(done.iter().map(s).collect()))
            .expression_attribute_values(":lease", s(lease))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        if !self.conditional("UpdateItem (follow-up reschedule)", result)? {
            tracing::warn!("a follow-up's lease ran out before it was given back");
        }
        Ok(())
    }

    async fn close(
        &self,
        k: &FollowUpKey,
        lease: &str,
        outcome: &str,
        done: &[String],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let keep_until = (now + EVENT_RETENTION).unix_timestamp();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(follow_up_key(k)))
            .update_expression(
                "SET #outcome = :outcome, done = :done, closed_at = :now, #ttl = :ttl \
                 REMOVE #duepk, #duesk, #lease, lease_until",
            )
            .condition_expression("#lease = :lease")
            .expression_attribute_names("#outcome", "outcome")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_names("#duepk", DUE_PK)
            .expression_attribute_names("#duesk", DUE_SK)
            .expression_attribute_names("#lease", "lease")
            .expression_attribute_values(":outcome", s(outcome))
            .expression_attribute_values(":done", AttributeValue::L(done.iter().map(s).collect()))
            .expression_attribute_values(":now", time(now))
            .expression_attribute_values(":ttl", n(keep_until))
            .expression_attribute_values(":lease", s(lease))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        if !self.conditional("UpdateItem (follow-up close)", result)? {
            tracing::warn!("a follow-up's lease ran out before it was closed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_sort_keys_order_by_time_and_the_bound_takes_what_is_due() {
        let at = time::macros::datetime!(2026-11-26 12:00 UTC);
        let sk = |t: OffsetDateTime, id: &str| due_sort(id, t).as_s().unwrap().clone();
        let bound = due_bound(at).as_s().unwrap().clone();
        assert!(sk(at, "FX#zzz") < bound, "due now");
        assert!(sk(at - time::Duration::seconds(1), "FX#a") < sk(at, "FX#a"));
        assert!(
            sk(at + time::Duration::seconds(1), "FX#a") > bound,
            "not due yet"
        );
        let [(_, shard), _] = due_keys("ORG#demo#FX#pay_1#settled", at);
        assert!(shard.as_s().unwrap().starts_with("FOLLOWUP#"), "{shard:?}");
    }
}
