//! Payments: `ORG#o / PAY#id`, newest first by their time-ordered ids.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, TransactWriteItem, Update};
use domain::{InvoiceNumber, Money, OrgSlug, PaymentId, PaymentStatus};
use time::OffsetDateTime;

use app::payments::Payment;
use app::ports::{Page, PaymentRepo, PaymentWriteError, StoreError};

use crate::Store;
use crate::directory::org_pk;
use crate::error::sdk_error;
use crate::item::{Attrs, Item, key, n, s, time};
use crate::meter::Kind;
use crate::table::{GSI1_PK, GSI1_SK, PK, SK};

pub(crate) fn payment_sk(id: &PaymentId) -> String {
    format!("PAY#{id}")
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

fn read_payment(attrs: &Attrs) -> Result<Payment, StoreError> {
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
        amount: money("amount")?,
        surcharge: money("surcharge")?,
        status: i.parsed("status", |st| PaymentStatus::parse(st).ok_or(()))?,
        gateway: i.s("gateway")?.to_owned(),
        gateway_ref: i.opt_s("gateway_ref").map(str::to_owned),
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
