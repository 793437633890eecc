//! Payments: `ORG#o / PAY#id`, newest first by their time-ordered ids.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnConsumedCapacity, TransactWriteItem, Update,
};
use domain::{CustomerId, Email, InvoiceNumber, Money, OrgSlug, PaymentId, PaymentStatus};
use time::OffsetDateTime;

use app::payments::{MethodSummary, Payment};
use app::ports::{
    AttemptError, Books, FinishError, InvoiceRead, Page, PaymentAttempts, PaymentRepo,
    PaymentWriteError, StoreError,
};

use crate::Store;
use crate::directory::org_pk;
use crate::error::{condition_failed, sdk_error};
use crate::item::{Attrs, Item, key, n, s, time};
use crate::meter::Kind;
use crate::table::{GSI1_PK, GSI1_SK, PK, SK};

pub(crate) fn payment_sk(id: &PaymentId) -> String {
    format!("PAY#{id}")
}

/// `CPAY#<customer>#<created, ms>#<payment>`: the customer's payments, newest last, beside the
/// org's other items (a payer's search reads only their customers' partitions of keys).
fn customer_payment_sk(customer: &CustomerId, at: OffsetDateTime, id: &PaymentId) -> String {
    format!("{}{id}", customer_payment_prefix(customer, at))
}

fn customer_payment_prefix(customer: &CustomerId, at: OffsetDateTime) -> String {
    let ms = (at.unix_timestamp_nanos() / 1_000_000).max(0);
    format!("CPAY#{customer}#{ms:013}#")
}

fn payment_item(p: &Payment) -> Attrs {
    let mut item = key(org_pk(&p.org), payment_sk(&p.id));
    item.extend([
        ("type".into(), s("payment")),
        ("payment_id".into(), s(p.id.as_str())),
        ("org".into(), s(p.org.as_str())),
        ("invoice_number".into(), s(p.invoice_number.as_str())),
        ("currency".into(), s(p.amount.currency().code())),
        ("amount".into(), n(p.amount.minor())),
        ("surcharge".into(), n(p.surcharge.minor())),
        ("status".into(), s(p.status.as_str())),
        ("gateway".into(), s(&p.gateway)),
        ("created_at".into(), time(p.created_at)),
        ("updated_at".into(), time(p.updated_at)),
    ]);
    crate::item::allocations(&mut item, &p.allocations);
    // Kept for what is told later: a bank debit's settlement or return, a lost dispute.
    if let Some(email) = &p.receipt_email {
        item.insert("receipt_email".into(), s(email.as_str()));
    }
    if let Some(m) = &p.method {
        item.insert("method_kind".into(), s(&m.kind));
        item.insert("method_brand".into(), s(&m.brand));
        item.insert("method_last4".into(), s(&m.last4));
    }
    if let Some(customer) = &p.customer_id {
        item.insert("customer_id".into(), s(customer.as_str()));
    }
    if let Some(gateway_ref) = &p.gateway_ref {
        item.insert("gateway_ref".into(), s(gateway_ref));
        // Lets a webhook find the payment by the gateway's transaction id.
        item.insert(
            GSI1_PK.into(),
            s(format!("PAYREF#{}#{gateway_ref}", p.gateway)),
        );
        item.insert(GSI1_SK.into(), s("PAY"));
    }
    item
}

pub(crate) fn read_payment(attrs: &Attrs) -> Result<Payment, StoreError> {
    let i = Item(attrs);
    let currency = i.parsed("currency", str::parse)?;
    let money = |name: &str| {
        Money::from_minor(i.u64(name)?, currency)
            .map_err(|_| StoreError(format!("stored payment has a bad {name}")))
    };
    Ok(Payment {
        id: i.parsed("payment_id", PaymentId::parse)?,
        org: i.parsed("org", OrgSlug::parse)?,
        invoice_number: i.parsed("invoice_number", InvoiceNumber::parse)?,
        customer_id: i
            .opt_s("customer_id")
            .and_then(|c| CustomerId::parse(c).ok()),
        amount: money("amount")?,
        allocations: i.allocations(currency)?,
        surcharge: money("surcharge")?,
        status: i.parsed("status", |st| PaymentStatus::parse(st).ok_or(()))?,
        gateway: i.s("gateway")?.to_owned(),
        gateway_ref: i.opt_s("gateway_ref").map(str::to_owned),
        method: match (
            i.opt_s("method_kind"),
            i.opt_s("method_brand"),
            i.opt_s("method_last4"),
        ) {
            (Some(kind), Some(brand), Some(last4)) => Some(MethodSummary {
                kind: kind.to_owned(),
                brand: brand.to_owned(),
                last4: last4.to_owned(),
            }),
            _ => None,
        },
        failure: i.opt_s("failure").map(str::to_owned),
        receipt_email: i.opt_s("receipt_email").and_then(|e| Email::parse(e).ok()),
        created_at: i.time("created_at")?,
        updated_at: i.time("updated_at")?,
    })
}

/// The conditional update that moves a payment forward, for use alone or inside a transaction.
pub(crate) fn move_payment_update(
    table: &str,
    org: &OrgSlug,
    id: &PaymentId,
    from: PaymentStatus,
    to: PaymentStatus,
    now: OffsetDateTime,
) -> Update {
    Update::builder()
        .table_name(table)
        .set_key(Some(key(org_pk(org), payment_sk(id))))
        .update_expression("SET #status = :to, updated_at = :now")
        .condition_expression("#status = :from")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":from", s(from.as_str()))
        .expression_attribute_values(":to", s(to.as_str()))
        .expression_attribute_values(":now", time(now))
        .build()
        .expect("update has its fields")
}

#[async_trait]
impl PaymentRepo for Store {
    async fn insert_payment(&self, payment: &Payment) -> Result<(), PaymentWriteError> {
        if self.put_new(payment_item(payment)).await? {
            Ok(())
        } else {
            Err(PaymentWriteError::Exists)
        }
    }

    async fn get_payment(
        &self,
        org: &OrgSlug,
        id: &PaymentId,
    ) -> Result<Option<Payment>, StoreError> {
        self.get_item(org_pk(org), &payment_sk(id))
            .await?
            .as_ref()
            .map(read_payment)
            .transpose()
    }

    async fn list_payments(
        &self,
        org: &OrgSlug,
        limit: u16,
        cursor: Option<&str>,
    ) -> Result<Page<Payment>, StoreError> {
        // The cursor is the last payment id of the previous page; anything else starts over.
        let start = cursor
            .and_then(|c| PaymentId::parse(c).ok())
            .map(|id| key(org_pk(org), payment_sk(&id)));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(org_pk(org)))
            .expression_attribute_values(":prefix", s("PAY#"))
            .scan_index_forward(false)
            .limit(i32::from(limit))
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        self.meter.record(Kind::Read, out.consumed_capacity());
        let items = out
            .items()
            .iter()
            .map(read_payment)
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key
            .as_ref()
            .and(items.last())
            .map(|p| p.id.to_string());
        Ok(Page { items, next })
    }

    async fn customer_payments(
        &self,
        org: &OrgSlug,
        customer: &CustomerId,
        from: OffsetDateTime,
        to: OffsetDateTime,
        before: Option<&str>,
        limit: u16,
    ) -> Result<Page<Payment>, StoreError> {
        let low = customer_payment_prefix(customer, from);
        // A cursor of this customer's within the range narrows it; anything else is ignored.
        let high = before
            .filter(|b| b.starts_with(&format!("CPAY#{customer}#")) && **b > *low)
            .map_or_else(|| customer_payment_prefix(customer, to), str::to_owned);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(org_pk(org)))
            .expression_attribute_values(":low", s(&low))
            // BETWEEN is inclusive: the bound itself (the cursor's own key) is dropped below.
            .expression_attribute_values(":high", s(&high))
            .scan_index_forward(false)
            .limit(i32::from(limit.clamp(1, 100)) + 1)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("Query (customer payments)", e))?;
        self.meter.record(Kind::Read, out.consumed_capacity());
        let mut keys: Vec<String> = out
            .items()
            .iter()
            .filter_map(|a| Item(a).opt_s(SK).map(str::to_owned))
            .filter(|sk| *sk != high)
            .collect();
        let more =
            keys.len() > usize::from(limit.clamp(1, 100)) || out.last_evaluated_key().is_some();
        keys.truncate(usize::from(limit.clamp(1, 100)));
        let wanted: Vec<Attrs> = keys
            .iter()
            .filter_map(|sk| sk.rsplit('#').next())
            .filter_map(|id| PaymentId::parse(id).ok())
            .map(|id| key(org_pk(org), payment_sk(&id)))
            .collect();
        let found = self.batch_get(wanted).await?;
        let mut items = Vec::with_capacity(keys.len());
        for sk in &keys {
            let Some(id) = sk
                .rsplit('#')
                .next()
                .and_then(|id| PaymentId::parse(id).ok())
            else {
                continue;
            };
            if let Some(attrs) = found.get(&(org_pk(org), payment_sk(&id))) {
                items.push(read_payment(attrs)?);
            }
        }
        Ok(Page {
            items,
            next: if more { keys.last().cloned() } else { None },
        })
    }

    async fn move_payment(
        &self,
        org: &OrgSlug,
        id: &PaymentId,
        from: PaymentStatus,
        to: PaymentStatus,
        now: OffsetDateTime,
    ) -> Result<(), PaymentWriteError> {
        if !from.can_move_to(to) {
            return Err(PaymentWriteError::State);
        }
        let update = move_payment_update(&self.table, org, id, from, to, now);
        let items = vec![TransactWriteItem::builder().update(update).build()];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(Ok(_)) => Err(PaymentWriteError::State),
            Err(Err(e)) => Err(e.into()),
        }
    }
}

fn lock_key(org: &OrgSlug, invoice: &InvoiceNumber) -> crate::item::Attrs {
    key(org_pk(org), format!("PAYLOCK#{invoice}"))
}

/// Removes an invoice's lock, but only the one this payment holds.
fn release_lock(table: &str, p: &Payment, invoice: &InvoiceNumber) -> TransactWriteItem {
    TransactWriteItem::builder()
        .delete(
            Delete::builder()
                .table_name(table)
                .set_key(Some(lock_key(&p.org, invoice)))
                .condition_expression("attribute_not_exists(pk) OR payment_id = :pid")
                .expression_attribute_values(":pid", s(p.id.as_str()))
                .build()
                .expect("delete has its fields"),
        )
        .build()
}

/// Records the attempt's outcome on the payment, once: only while its attempt is open.
fn close_attempt(table: &str, p: &Payment, now: OffsetDateTime) -> TransactWriteItem {
    let mut sets = vec!["#status = :status", "updated_at = :now"];
    let mut update = Update::builder()
        .table_name(table)
        .set_key(Some(key(org_pk(&p.org), payment_sk(&p.id))))
        .condition_expression("attribute_exists(attempt_open)")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":status", s(p.status.as_str()))
        .expression_attribute_values(":now", time(now));
    let optional = [
        ("gateway_ref", p.gateway_ref.clone()),
        ("failure", p.failure.clone()),
        ("method_kind", p.method.as_ref().map(|m| m.kind.clone())),
        ("method_brand", p.method.as_ref().map(|m| m.brand.clone())),
        ("method_last4", p.method.as_ref().map(|m| m.last4.clone())),
    ];
    let mut clauses = Vec::new();
    for (name, value) in optional {
        if let Some(value) = value {
            clauses.push(format!("{name} = :{name}"));
            update = update.expression_attribute_values(format!(":{name}"), s(value));
        }
    }
    // A webhook that names only the gateway's charge finds the payment by it (as an inserted
    // payment with a charge is found: see `payment_item`).
    if let Some(gateway_ref) = &p.gateway_ref {
        sets.extend(["#gsi1pk = :payref", "#gsi1sk = :pay"]);
        update = update
            .expression_attribute_names("#gsi1pk", GSI1_PK)
            .expression_attribute_names("#gsi1sk", GSI1_SK)
            .expression_attribute_values(
                ":payref",
                s(format!("PAYREF#{}#{gateway_ref}", p.gateway)),
            )
            .expression_attribute_values(":pay", s("PAY"));
    }
    sets.extend(clauses.iter().map(String::as_str));
    let update = update
        .update_expression(format!("SET {} REMOVE attempt_open", sets.join(", ")))
        .build()
        .expect("update has its fields");
    TransactWriteItem::builder().update(update).build()
}

fn finish_result(result: Result<(), Result<Vec<String>, StoreError>>) -> Result<(), FinishError> {
    match result {
        Ok(()) => Ok(()),
        Err(Ok(codes)) if condition_failed(&codes, 0) => Err(FinishError::NotPending),
        Err(Ok(codes)) => Err(StoreError(format!("finish cancelled: {codes:?}")).into()),
        Err(Err(e)) => Err(e.into()),
    }
}

impl Store {
    /// Writes an attempt's outcome and releases its invoices' locks in one transaction. A lock
    /// that expired and is held by another attempt now is left to it: the outcome is written
    /// again without that release.
    async fn finish(
        &self,
        mut items: Vec<TransactWriteItem>,
        payment: &Payment,
    ) -> Result<(), Result<Vec<String>, StoreError>> {
        let first_lock = items.len();
        items.extend(
            payment
                .parts()
                .iter()
                .map(|part| release_lock(&self.table, payment, &part.invoice)),
        );
        match self.transact(items.clone()).await {
            Err(Ok(codes))
                if (first_lock..items.len()).any(|i| condition_failed(&codes, i))
                    && !(0..first_lock).any(|i| condition_failed(&codes, i)) =>
            {
                let kept = items
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !condition_failed(&codes, *i))
                    .map(|(_, item)| item)
                    .collect();
                self.transact(kept).await
            }
            other => other,
        }
    }
}

#[async_trait]
impl PaymentAttempts for Store {
    async fn begin_attempt(
        &self,
        payment: &Payment,
        lock_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), AttemptError> {
        let mut item = payment_item(payment);
        item.insert("attempt_open".into(), AttributeValue::Bool(true));
        let mut items = vec![
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .expect("put has its fields"),
                )
                .build(),
        ];
        // Every invoice the payment pays is locked, in the same transaction.
        for part in payment.parts() {
            let mut lock = lock_key(&payment.org, &part.invoice);
            lock.extend([
                ("type".into(), s("invoice_lock")),
                ("payment_id".into(), s(payment.id.as_str())),
                ("until".into(), n(lock_until.unix_timestamp())),
                (
                    crate::table::TTL.into(),
                    n(lock_until.unix_timestamp() + 3600),
                ),
            ]);
            items.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(lock))
                            // An expired lock belongs to an attempt that died: it no longer holds.
                            .condition_expression("attribute_not_exists(pk) OR #until < :now")
                            .expression_attribute_names("#until", "until")
                            .expression_attribute_values(":now", n(now.unix_timestamp()))
                            .build()
                            .expect("put has its fields"),
                    )
                    .build(),
            );
        }
        if let Some(customer) = &payment.customer_id {
            let mut index = key(
                org_pk(&payment.org),
                customer_payment_sk(customer, payment.created_at, &payment.id),
            );
            index.extend([
                ("type".into(), s("customer_payment")),
                ("payment_id".into(), s(payment.id.as_str())),
            ]);
            items.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(index))
                            .build()
                            .expect("put has its fields"),
                    )
                    .build(),
            );
        }
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(Ok(codes)) if condition_failed(&codes, 0) => Err(AttemptError::Exists),
            Err(Ok(_)) => Err(AttemptError::InvoiceBusy),
            Err(Err(e)) => Err(e.into()),
        }
    }

    async fn finish_approved(
        &self,
        payment: &Payment,
        ledger: &[InvoiceRead],
        books: Option<&Books>,
        now: OffsetDateTime,
    ) -> Result<(), FinishError> {
        let mut items = vec![close_attempt(&self.table, payment, now)];
        for part in payment.parts() {
            let Some(read) = ledger.iter().find(|r| r.invoice.number == part.invoice) else {
                continue;
            };
            let update =
                crate::ledger::pay_down_update(&self.table, &payment.org, read, part.amount, now)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        let invoices = 1..items.len();
        if let Some(books) = books {
            items.push(crate::books::books_put(&self.table, books, now));
        }
        match self.finish(items, payment).await {
            Err(Ok(codes)) if invoices.clone().any(|i| condition_failed(&codes, i)) => {
                Err(FinishError::InvoiceChanged)
            }
            other => finish_result(other),
        }
    }

    async fn finish_declined(
        &self,
        payment: &Payment,
        now: OffsetDateTime,
    ) -> Result<(), FinishError> {
        let items = vec![close_attempt(&self.table, payment, now)];
        finish_result(self.finish(items, payment).await)
    }
}
