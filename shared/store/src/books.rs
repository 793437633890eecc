//! The write-back of payments to an org's accounting system: `ORG#o / BOOKS#<payment>`, one item
//! per payment whose invoice is kept elsewhere (Xero, ConnectWise), kept for the payment's
//! life (a refund months later still finds what was posted). While there is work to do it sits
//! in the `due` index like the webhooks' follow-ups (`FollowUpKey::Books`, same lease); when
//! the accounting system will not take it, it leaves the queue for the org's
//! unprocessed-payments list, the sparse GSI1 partition `UNPOSTED#<org>`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnConsumedCapacity, TransactWriteItem};
use domain::{InvoiceNumber, OrgSlug, PaymentId};
use time::OffsetDateTime;

use app::ports::{Books, BooksRepo, Page, PaymentPosting, StoreError};

use crate::Store;
use crate::directory::org_pk;
use crate::error::sdk_error;
use crate::item::{Attrs, Item, date, key, n, s, time};
use crate::meter::Kind;
use crate::table::{DUE_PK, DUE_SK, GSI1, GSI1_PK, GSI1_SK};
use crate::webhooks::{due_keys, queue_id, read_money};

pub(crate) const BOOKS: &str = "books";

pub(crate) fn books_key(org: &OrgSlug, payment: &PaymentId) -> Attrs {
    key(org_pk(org), format!("BOOKS#{payment}"))
}

fn unposted_pk(org: &OrgSlug) -> String {
    format!("UNPOSTED#{org}")
}

fn books_item(b: &Books, due: OffsetDateTime) -> Attrs {
    let p = &b.posting;
    let item_key = books_key(&p.org, &p.payment);
    let id = queue_id(&item_key);
    let mut item = item_key;
    item.extend([
        ("type".into(), s("books")),
        ("follow_up".into(), s(BOOKS)),
        ("org".into(), s(p.org.as_str())),
        ("payment_id".into(), s(p.payment.as_str())),
        ("invoice".into(), s(p.invoice.as_str())),
        ("amount".into(), n(p.amount.minor())),
        ("surcharge".into(), n(p.surcharge.minor())),
        ("currency".into(), s(p.amount.currency().code())),
        ("paid_on".into(), date(p.paid_on)),
        ("reference".into(), s(&p.reference)),
        (
            "want_reversed".into(),
            AttributeValue::Bool(b.want_reversed),
        ),
        ("reversed".into(), AttributeValue::Bool(b.reversed)),
        ("attempts".into(), n(b.attempts)),
        ("queued_at".into(), time(b.queued_at)),
        ("updated_at".into(), time(b.updated_at)),
    ]);
    crate::item::allocations(&mut item, &p.allocations);
    if let Some(posted) = &b.posted {
        item.insert("posted".into(), s(posted));
    }
    item.extend(due_keys(&id, due));
    item
}

/// The queue entry of a payment approved with its outcome, for the attempt's own transaction.
pub(crate) fn books_put(table: &str, b: &Books, due: OffsetDateTime) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(books_item(b, due)))
                .build()
                .expect("put has its fields"),
        )
        .build()
}

pub(crate) fn read_books(attrs: &Attrs) -> Result<Books, StoreError> {
    let i = Item(attrs);
    let money = |name: &str| {
        read_money(attrs, name)?.ok_or_else(|| StoreError(format!("books without {name}")))
    };
    Ok(Books {
        posting: PaymentPosting {
            org: i.parsed("org", OrgSlug::parse)?,
            payment: i.parsed("payment_id", PaymentId::parse)?,
            invoice: i.parsed("invoice", InvoiceNumber::parse)?,
            amount: money("amount")?,
            allocations: i.allocations(money("amount")?.currency())?,
            surcharge: money("surcharge")?,
            paid_on: i.date("paid_on")?,
            reference: i.s("reference")?.to_owned(),
        },
        posted: i.opt_s("posted").map(str::to_owned),
        want_reversed: i.bool("want_reversed")?,
        reversed: i.bool("reversed")?,
        unprocessed: i.opt_s("parked_why").map(str::to_owned),
        last_error: i.opt_s("last_error").map(str::to_owned),
        attempts: i.u64("attempts")? as u32,
        queued_at: i.time("queued_at")?,
        updated_at: i.time("updated_at")?,
    })
}

impl Store {
    /// The update that puts a write-back in the queue again, due at `at`, and off the
    /// unprocessed list, setting `also` too; the caller adds its condition and values.
    fn back_in_queue(
        &self,
        org: &OrgSlug,
        payment: &PaymentId,
        at: OffsetDateTime,
        also: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        let item_key = books_key(org, payment);
        let [(pk_name, pk), (sk_name, sk)] = due_keys(&queue_id(&item_key), at);
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key))
            .update_expression(format!(
                "SET {also}, #duepk = :duepk, #duesk = :duesk, updated_at = :now \
                 REMOVE parked_why, #gsi1pk, #gsi1sk"
            ))
            .expression_attribute_names("#duepk", pk_name)
            .expression_attribute_names("#duesk", sk_name)
            .expression_attribute_names("#gsi1pk", GSI1_PK)
            .expression_attribute_names("#gsi1sk", GSI1_SK)
            .expression_attribute_values(":duepk", pk)
            .expression_attribute_values(":duesk", sk)
            .expression_attribute_values(":now", time(at))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
    }
}

#[async_trait]
impl BooksRepo for Store {
    async fn queue_books(&self, b: &Books, due: OffsetDateTime) -> Result<bool, StoreError> {
        self.put_new(books_item(b, due)).await
    }

    async fn want_reversal(
        &self,
        org: &OrgSlug,
        payment: &PaymentId,
        due: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .back_in_queue(org, payment, due, "want_reversed = :yes")
            // Once: a reversal asked for again (a redelivered refund) changes nothing.
            .condition_expression("attribute_exists(pk) AND want_reversed = :no")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .send()
            .await;
        self.conditional("UpdateItem (books reversal)", result)
    }

    async fn get_books(
        &self,
        org: &OrgSlug,
        payment: &PaymentId,
    ) -> Result<Option<Books>, StoreError> {
        self.get_key(books_key(org, payment))
            .await?
            .as_ref()
            .map(read_books)
            .transpose()
    }

    async fn books_progress(&self, b: &Books, lease: &str) -> Result<(), StoreError> {
        // `attempts` as the run counted them (the lease counted one; a rate limit gives it back).
        let mut sets = vec![
            "reversed = :reversed",
            "updated_at = :now",
            "attempts = :attempts",
        ];
        let mut removes = vec![];
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(books_key(&b.posting.org, &b.posting.payment)))
            .condition_expression("#lease = :lease")
            .expression_attribute_names("#lease", "lease")
            .expression_attribute_values(":lease", s(lease))
            .expression_attribute_values(":reversed", AttributeValue::Bool(b.reversed))
            .expression_attribute_values(":attempts", n(b.attempts))
            .expression_attribute_values(":now", time(b.updated_at));
        match &b.posted {
            Some(posted) => {
                sets.push("posted = :posted");
                update = update.expression_attribute_values(":posted", s(posted));
            }
            None => removes.push("posted"),
        }
        match &b.last_error {
            Some(e) => {
                sets.push("last_error = :error");
                update = update.expression_attribute_values(":error", s(e));
            }
            None => removes.push("last_error"),
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let result = update
            .update_expression(expression)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        if !self.conditional("UpdateItem (books progress)", result)? {
            return Err(StoreError("the write-back's lease ran out".into()));
        }
        Ok(())
    }

    async fn books_done(
        &self,
        b: &Books,
        lease: Option<&str>,
        outcome: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(books_key(&b.posting.org, &b.posting.payment)))
            .update_expression(
                "SET #outcome = :outcome, updated_at = :now \
                 REMOVE #duepk, #duesk, #lease, lease_until, parked_why, #gsi1pk, #gsi1sk",
            )
            .expression_attribute_names("#duepk", DUE_PK)
            .expression_attribute_names("#duesk", DUE_SK)
            .expression_attribute_names("#lease", "lease")
            .expression_attribute_names("#gsi1pk", GSI1_PK)
            .expression_attribute_names("#gsi1sk", GSI1_SK)
            .expression_attribute_names("#outcome", "outcome")
            .expression_attribute_values(":outcome", s(outcome))
            .expression_attribute_values(":now", time(now));
        update = match lease {
            // Unless a reversal was asked for meanwhile: then it stays queued for that.
            Some(lease) => update
                .condition_expression("#lease = :lease AND want_reversed = :wr")
                .expression_attribute_values(":lease", s(lease))
                .expression_attribute_values(":wr", AttributeValue::Bool(b.want_reversed)),
            // By hand: only what waits on the list.
            None => update.condition_expression("attribute_exists(parked_why)"),
        };
        let result = update
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        self.conditional("UpdateItem (books done)", result)
    }

    async fn park_books(
        &self,
        b: &Books,
        lease: &str,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(books_key(&b.posting.org, &b.posting.payment)))
            .update_expression(
                "SET parked_why = :why, #gsi1pk = :list, #gsi1sk = :order, updated_at = :now \
                 REMOVE #duepk, #duesk, #lease, lease_until",
            )
            .condition_expression("#lease = :lease AND want_reversed = :wr")
            .expression_attribute_names("#duepk", DUE_PK)
            .expression_attribute_names("#duesk", DUE_SK)
            .expression_attribute_names("#lease", "lease")
            .expression_attribute_names("#gsi1pk", GSI1_PK)
            .expression_attribute_names("#gsi1sk", GSI1_SK)
            .expression_attribute_values(":wr", AttributeValue::Bool(b.want_reversed))
            .expression_attribute_values(":why", s(why))
            .expression_attribute_values(":list", s(unposted_pk(&b.posting.org)))
            .expression_attribute_values(
                ":order",
                s(format!(
                    "{}#{}",
                    b.queued_at.unix_timestamp(),
                    b.posting.payment
                )),
            )
            .expression_attribute_values(":now", time(now))
            .expression_attribute_values(":lease", s(lease))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        if !self.conditional("UpdateItem (books parked)", result)? {
            tracing::warn!(payment = %b.posting.payment, "a write-back's lease ran out before it was parked");
        }
        Ok(())
    }

    async fn unprocessed(
        &self,
        org: &OrgSlug,
        limit: u16,
        cursor: Option<&str>,
    ) -> Result<Page<Books>, StoreError> {
        // The cursor is the last item's place on the list (`<queued>#<payment>`); anything else
        // starts over.
        let start = cursor.and_then(|c| {
            let (_, payment) = c.split_once('#')?;
            let mut start = books_key(org, &PaymentId::parse(payment).ok()?);
            start.insert(GSI1_PK.into(), s(unposted_pk(org)));
            start.insert(GSI1_SK.into(), s(c));
            Some(start)
        });
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", GSI1_PK)
            .expression_attribute_values(":pk", s(unposted_pk(org)))
            .limit(i32::from(limit.clamp(1, 100)))
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("Query (unprocessed payments)", e))?;
        self.meter.record(Kind::Read, out.consumed_capacity());
        let items = out
            .items()
            .iter()
            .map(read_books)
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key()
            .and_then(|k| Item(k).opt_s(GSI1_SK).map(str::to_owned));
        Ok(Page { items, next })
    }

    async fn requeue_books(
        &self,
        org: &OrgSlug,
        payment: &PaymentId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .back_in_queue(org, payment, now, "attempts = :zero")
            .condition_expression("attribute_exists(parked_why)")
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        self.conditional("UpdateItem (books requeued)", result)
    }
}
