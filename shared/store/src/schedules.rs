//! Schedules: `ORG#o / PAYER#u#SCHED#id` (the payer's schedules are one query), with
//! `ORG#o / SCHEDINV#invoice` keeping one active schedule per invoice. While a schedule is
//! active it sits in the sparse `due` index under `DUE#<UTC day>#<shard>`, sorted by the epoch
//! second of its next time: a tick reads only what is due, never the future ones. The tick's
//! own bookkeeping is `TICK#STATE / TICK` (the day through which the index has been swept).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnConsumedCapacity, TransactWriteItem, Update,
};
use domain::{
    CustomerId, EnrolmentId, InvoiceNumber, MethodId, Money, OrgSlug, PaymentId, ScheduleId, UserId,
};
use time::{Date, OffsetDateTime};

use app::ports::{
    AutoPayRule, DUE_SHARDS, DuePage, Enrolment, EnrolmentRepo, NewSchedule, Schedule,
    ScheduleRepo, ScheduleState, Seen, StoreError,
};

use crate::Store;
use crate::directory::{org_pk, put_if_absent};
use crate::error::{condition_failed, sdk_error};
use crate::item::{Attrs, Item, date, key, n, s, time};
use crate::meter::Kind;
use crate::methods::{IN_USE, method_key};
use crate::table::{DUE_PK, DUE_SK, GSI_DUE};

fn schedule_key(org: &OrgSlug, user: &UserId, id: &ScheduleId) -> Attrs {
    key(org_pk(org), format!("PAYER#{user}#SCHED#{id}"))
}

fn marker_key(org: &OrgSlug, invoice: &InvoiceNumber) -> Attrs {
    key(org_pk(org), format!("SCHEDINV#{invoice}"))
}

fn tick_key() -> Attrs {
    key("TICK#STATE", "TICK")
}

/// An item's shard in the due index: from its id, so that it never moves between shards.
pub fn shard_of(id: &str) -> u8 {
    let sum: u32 = id.bytes().map(u32::from).sum();
    (sum % u32::from(DUE_SHARDS)) as u8
}

pub fn due_pk(day: Date, shard: u8) -> String {
    format!("DUE#{day}#{shard}")
}

fn due_sk(at: OffsetDateTime, id: &str) -> String {
    format!("{:012}#{id}", at.unix_timestamp())
}

fn money_attrs(amount: Option<Money>) -> Vec<(String, AttributeValue)> {
    match amount {
        Some(m) => vec![
            ("amount".into(), n(m.minor())),
            ("currency".into(), s(m.currency().code())),
        ],
        None => Vec::new(),
    }
}

/// The schedule as stored. Public so that the bench and the tests can load many at once.
pub fn schedule_item(x: &Schedule) -> Attrs {
    let mut item = schedule_key(&x.org, &x.user, &x.id);
    item.extend([
        ("type".into(), s("schedule")),
        ("id".into(), s(x.id.as_str())),
        ("org".into(), s(x.org.as_str())),
        ("user_id".into(), s(x.user.as_str())),
        ("invoice".into(), s(x.invoice.as_str())),
        ("customer_id".into(), s(x.customer.as_str())),
        ("method_id".into(), s(x.method.as_str())),
        ("run_on".into(), date(x.run_on)),
        ("due_at".into(), time(x.due_at)),
        ("state".into(), s(x.state.as_str())),
        ("attempts".into(), n(x.attempts)),
        ("on_secondary".into(), AttributeValue::Bool(x.on_secondary)),
        ("version".into(), n(x.version)),
        ("created_at".into(), time(x.created_at)),
        ("updated_at".into(), time(x.updated_at)),
    ]);
    item.extend(money_attrs(x.amount));
    let optional = [
        ("secondary_id", x.secondary.as_ref().map(|m| s(m.as_str()))),
        ("enrolment_id", x.enrolment.as_ref().map(|e| s(e.as_str()))),
        ("payment_id", x.payment.as_ref().map(|p| s(p.as_str()))),
        ("outcome", x.outcome.as_deref().map(s)),
        ("notice_at", x.notice_at.map(time)),
    ];
    item.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?))),
    );
    if !x.state.is_final() {
        let next = x.next_time();
        item.insert(
            DUE_PK.into(),
            s(due_pk(next.date(), shard_of(x.id.as_str()))),
        );
        item.insert(DUE_SK.into(), s(due_sk(next, x.id.as_str())));
    }
    item
}

fn read_schedule(attrs: &Attrs) -> Result<Schedule, StoreError> {
    let i = Item(attrs);
    let corrupt = |what: &str| StoreError(format!("stored schedule has a malformed {what}"));
    let amount = match i.opt_s("currency") {
        None => None,
        Some(code) => {
            let currency = code.parse().map_err(|_| corrupt("currency"))?;
            Some(Money::from_minor(i.u64("amount")?, currency).map_err(|_| corrupt("amount"))?)
        }
    };
    let opt_time = |name: &str| -> Result<Option<OffsetDateTime>, StoreError> {
        attrs.contains_key(name).then(|| i.time(name)).transpose()
    };
    Ok(Schedule {
        id: i.parsed("id", ScheduleId::parse)?,
        org: i.parsed("org", OrgSlug::parse)?,
        user: i.parsed("user_id", UserId::parse)?,
        invoice: i.parsed("invoice", InvoiceNumber::parse)?,
        customer: i.parsed("customer_id", CustomerId::parse)?,
        method: i.parsed("method_id", MethodId::parse)?,
        secondary: i
            .opt_s("secondary_id")
            .map(MethodId::parse)
            .transpose()
            .map_err(|_| corrupt("method"))?,
        amount,
        run_on: i.date("run_on")?,
        due_at: i.time("due_at")?,
        enrolment: i
            .opt_s("enrolment_id")
            .map(EnrolmentId::parse)
            .transpose()
            .map_err(|_| corrupt("enrolment"))?,
        state: i.parsed("state", |t| ScheduleState::parse(t).ok_or(()))?,
        attempts: u32::try_from(i.u64("attempts")?).map_err(|_| corrupt("attempts"))?,
        on_secondary: i.bool("on_secondary")?,
        payment: i
            .opt_s("payment_id")
            .map(PaymentId::parse)
            .transpose()
            .map_err(|_| corrupt("payment"))?,
        outcome: i.opt_s("outcome").map(str::to_owned),
        notice_at: opt_time("notice_at")?,
        version: i.u64("version")?,
        created_at: i.time("created_at")?,
        updated_at: i.time("updated_at")?,
    })
}

/// The methods a schedule uses (primary, and secondary if any).
fn methods_of(x: &Schedule) -> impl Iterator<Item = &MethodId> {
    std::iter::once(&x.method).chain(x.secondary.iter())
}

/// A method's count of scheduled payments up (or down) by one; the method must exist.
fn method_use(table: &str, x: &Schedule, method: &MethodId, adding: bool) -> TransactWriteItem {
    TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(table)
                .set_key(Some(method_key(&x.org, &x.user, method)))
                .update_expression("ADD #uses :delta")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#uses", IN_USE)
                .expression_attribute_values(":delta", n(if adding { 1 } else { -1 }))
                .build()
                .expect("update has table, key and expression"),
        )
        .build()
}

fn cancelled(what: &str, codes: Vec<String>) -> StoreError {
    StoreError(format!("{what} cancelled: {codes:?}"))
}

#[async_trait]
impl ScheduleRepo for Store {
    async fn create_schedule(&self, x: &Schedule) -> Result<NewSchedule, StoreError> {
        let mut marker = marker_key(&x.org, &x.invoice);
        marker.extend([
            ("schedule_id".into(), s(x.id.as_str())),
            ("user_id".into(), s(x.user.as_str())),
        ]);
        let mut items = vec![
            put_if_absent(&self.table, schedule_item(x)),
            put_if_absent(&self.table, marker),
        ];
        items.extend(methods_of(x).map(|m| method_use(&self.table, x, m, true)));
        match self.transact(items).await {
            Ok(()) => Ok(NewSchedule::Created),
            Err(Ok(codes)) if condition_failed(&codes, 1) => {
                match self.active_for_invoice(&x.org, &x.invoice).await? {
                    Some((_, id)) => Ok(NewSchedule::InvoiceTaken(id)),
                    None => Err(StoreError("schedule marker vanished; try again".into())),
                }
            }
            Err(Ok(codes)) if condition_failed(&codes, 2) || condition_failed(&codes, 3) => {
                Ok(NewSchedule::MethodGone)
            }
            Err(Ok(codes)) => Err(cancelled("create schedule", codes)),
            Err(Err(e)) => Err(e),
        }
    }

    async fn get_schedule(
        &self,
        org: &OrgSlug,
        user: &UserId,
        id: &ScheduleId,
    ) -> Result<Option<Schedule>, StoreError> {
        self.get_key(schedule_key(org, user, id))
            .await?
            .as_ref()
            .map(read_schedule)
            .transpose()
    }

    async fn schedules_of(
        &self,
        org: &OrgSlug,
        user: &UserId,
    ) -> Result<Vec<Schedule>, StoreError> {
        let mut list: Vec<Schedule> = self
            .query_prefix(None, org_pk(org), &format!("PAYER#{user}#SCHED#"))
            .await?
            .iter()
            .map(read_schedule)
            .collect::<Result<_, _>>()?;
        list.reverse();
        Ok(list)
    }

    async fn active_for_invoice(
        &self,
        org: &OrgSlug,
        invoice: &InvoiceNumber,
    ) -> Result<Option<(UserId, ScheduleId)>, StoreError> {
        let Some(found) = self.get_key(marker_key(org, invoice)).await? else {
            return Ok(None);
        };
        let i = Item(&found);
        Ok(Some((
            i.parsed("user_id", UserId::parse)?,
            i.parsed("schedule_id", ScheduleId::parse)?,
        )))
    }

    async fn due_schedules(
        &self,
        day: Date,
        shard: u8,
        now: OffsetDateTime,
        limit: i32,
    ) -> Result<DuePage, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI_DUE)
            .key_condition_expression("#pk = :pk AND #sk <= :now")
            .expression_attribute_names("#pk", DUE_PK)
            .expression_attribute_names("#sk", DUE_SK)
            .expression_attribute_values(":pk", s(due_pk(day, shard)))
            // '~' sorts after every id: everything due at or before this second.
            .expression_attribute_values(":now", s(format!("{:012}#~", now.unix_timestamp())))
            .limit(limit)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        self.meter.record(Kind::Read, out.consumed_capacity());
        let items = out.items.unwrap_or_default();
        let (enrolments, schedules): (Vec<&Attrs>, Vec<&Attrs>) = items
            .iter()
            .partition(|a| Item(a).opt_s("type") == Some("enrolment"));
        Ok(DuePage {
            items_read: items.len(),
            enrolments: enrolments
                .into_iter()
                .map(read_enrolment)
                .collect::<Result<_, _>>()?,
            schedules: schedules
                .into_iter()
                .map(read_schedule)
                .collect::<Result<_, _>>()?,
        })
    }

    async fn move_schedule(&self, seen: &Schedule, next: &Schedule) -> Result<bool, StoreError> {
        let ends = next.state.is_final() && !seen.state.is_final();
        if !ends {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(schedule_item(next)))
                .condition_expression("version = :seen")
                .expression_attribute_values(":seen", n(seen.version))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            return self.conditional("PutItem", result);
        }
        // It ends: in the same transaction its invoice may be scheduled again and its methods
        // may be removed.
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(schedule_item(next)))
            .condition_expression("version = :seen")
            .expression_attribute_values(":seen", n(seen.version))
            .build()
            .expect("put has table and item");
        let marker = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(marker_key(&seen.org, &seen.invoice)))
            .condition_expression("schedule_id = :id")
            .expression_attribute_values(":id", s(seen.id.as_str()))
            .build()
            .expect("delete has table and key");
        let mut items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().delete(marker).build(),
        ];
        items.extend(methods_of(seen).map(|m| method_use(&self.table, seen, m, false)));
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(Ok(codes)) if condition_failed(&codes, 0) => Ok(false),
            Err(Ok(codes)) => Err(cancelled("move schedule", codes)),
            Err(Err(e)) => Err(e),
        }
    }

    async fn swept_through(&self) -> Result<Option<Date>, StoreError> {
        let Some(found) = self.get_key(tick_key()).await? else {
            return Ok(None);
        };
        Ok(Some(Item(&found).date("swept_through")?))
    }

    async fn set_swept_through(&self, day: Date) -> Result<(), StoreError> {
        let mut item = tick_key();
        item.insert("swept_through".into(), date(day));
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", e))?;
        self.meter.record(Kind::Write, out.consumed_capacity());
        Ok(())
    }
}

fn enrolment_key(org: &OrgSlug, customer: &CustomerId) -> Attrs {
    key(org_pk(org), format!("AUTOPAY#{customer}"))
}

/// What `used_by` names for an enrolment.
pub fn enrolment_label(customer: &CustomerId) -> String {
    format!("auto-pay for {customer}")
}

fn enrolment_item(e: &Enrolment) -> Attrs {
    let mut item = enrolment_key(&e.org, &e.customer);
    let rule = serde_json::to_string(&e.rule).expect("rules serialize");
    item.extend([
        ("type".into(), s("enrolment")),
        ("id".into(), s(e.id.as_str())),
        ("org".into(), s(e.org.as_str())),
        ("customer_id".into(), s(e.customer.as_str())),
        ("user_id".into(), s(e.user.as_str())),
        ("method_id".into(), s(e.method.as_str())),
        ("rule".into(), s(rule)),
        ("by_admin".into(), AttributeValue::Bool(e.by_admin)),
        ("locked".into(), AttributeValue::Bool(e.locked)),
        ("look_at".into(), time(e.look_at)),
        ("version".into(), n(e.version)),
        ("created_at".into(), time(e.created_at)),
        ("updated_at".into(), time(e.updated_at)),
        (
            DUE_PK.into(),
            s(due_pk(e.look_at.date(), shard_of(e.id.as_str()))),
        ),
        (DUE_SK.into(), s(due_sk(e.look_at, e.id.as_str()))),
    ]);
    if let Some(secondary) = &e.secondary {
        item.insert("secondary_id".into(), s(secondary.as_str()));
    }
    if let Some(cap) = e.cap {
        item.insert("cap".into(), n(cap.minor()));
        item.insert("currency".into(), s(cap.currency().code()));
    }
    item
}

fn read_enrolment(attrs: &Attrs) -> Result<Enrolment, StoreError> {
    let i = Item(attrs);
    let corrupt = |what: &str| StoreError(format!("stored enrolment has a malformed {what}"));
    let cap = match i.opt_s("currency") {
        None => None,
        Some(code) => {
            let currency = code.parse().map_err(|_| corrupt("currency"))?;
            Some(Money::from_minor(i.u64("cap")?, currency).map_err(|_| corrupt("cap"))?)
        }
    };
    Ok(Enrolment {
        id: i.parsed("id", EnrolmentId::parse)?,
        org: i.parsed("org", OrgSlug::parse)?,
        customer: i.parsed("customer_id", CustomerId::parse)?,
        user: i.parsed("user_id", UserId::parse)?,
        method: i.parsed("method_id", MethodId::parse)?,
        secondary: i
            .opt_s("secondary_id")
            .map(MethodId::parse)
            .transpose()
            .map_err(|_| corrupt("method"))?,
        rule: serde_json::from_str::<AutoPayRule>(i.s("rule")?).map_err(|_| corrupt("rule"))?,
        cap,
        by_admin: i.bool("by_admin")?,
        locked: i.bool("locked")?,
        look_at: i.time("look_at")?,
        version: i.u64("version")?,
        created_at: i.time("created_at")?,
        updated_at: i.time("updated_at")?,
    })
}

/// An enrolment's methods noted as used (or no longer) by it.
fn enrolment_method_uses(table: &str, e: &Enrolment, adding: bool) -> Vec<TransactWriteItem> {
    let verb = if adding { "ADD" } else { "DELETE" };
    std::iter::once(&e.method)
        .chain(e.secondary.iter())
        .map(|method| {
            let update = Update::builder()
                .table_name(table)
                .set_key(Some(method_key(&e.org, &e.user, method)))
                .update_expression(format!("{verb} used_by :by"))
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(
                    ":by",
                    AttributeValue::Ss(vec![enrolment_label(&e.customer)]),
                )
                .build()
                .expect("update has table, key and expression");
            TransactWriteItem::builder().update(update).build()
        })
        .collect()
}

#[async_trait]
impl EnrolmentRepo for Store {
    async fn put_enrolment(
        &self,
        e: &Enrolment,
        replacing: Option<&Enrolment>,
    ) -> Result<bool, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(enrolment_item(e)));
        put = match replacing {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(old) => put
                .condition_expression("version = :seen")
                .expression_attribute_values(":seen", n(old.version)),
        };
        let mut items = vec![
            TransactWriteItem::builder()
                .put(put.build().expect("put has table and item"))
                .build(),
        ];
        // DynamoDB takes one action per item in a transaction: a method kept by the new
        // enrolment is neither released nor added again.
        let kept = |m: &MethodId, other: &Enrolment| {
            other.method == *m || other.secondary.as_ref() == Some(m)
        };
        if let Some(old) = replacing {
            let released = Enrolment {
                secondary: old.secondary.clone().filter(|m| !kept(m, e)),
                ..old.clone()
            };
            let mut uses = enrolment_method_uses(&self.table, &released, false);
            if kept(&old.method, e) {
                uses.remove(0);
            }
            items.extend(uses);
        }
        let added = match replacing {
            None => enrolment_method_uses(&self.table, e, true),
            Some(old) => {
                let fresh = Enrolment {
                    secondary: e.secondary.clone().filter(|m| !kept(m, old)),
                    ..e.clone()
                };
                let mut uses = enrolment_method_uses(&self.table, &fresh, true);
                if kept(&e.method, old) {
                    uses.remove(0);
                }
                uses
            }
        };
        items.extend(added);
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(Ok(_)) => Ok(false),
            Err(Err(e)) => Err(e),
        }
    }

    async fn get_enrolment(
        &self,
        org: &OrgSlug,
        customer: &CustomerId,
    ) -> Result<Option<Enrolment>, StoreError> {
        self.get_key(enrolment_key(org, customer))
            .await?
            .as_ref()
            .map(read_enrolment)
            .transpose()
    }

    async fn delete_enrolment(&self, e: &Enrolment) -> Result<bool, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(enrolment_key(&e.org, &e.customer)))
            .condition_expression("version = :seen")
            .expression_attribute_values(":seen", n(e.version))
            .build()
            .expect("delete has table and key");
        let mut items = vec![TransactWriteItem::builder().delete(delete).build()];
        items.extend(enrolment_method_uses(&self.table, e, false));
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(Ok(codes)) if condition_failed(&codes, 0) => Ok(false),
            Err(Ok(codes)) => Err(cancelled("delete enrolment", codes)),
            Err(Err(e)) => Err(e),
        }
    }

    async fn move_enrolment(&self, seen: &Enrolment, next: &Enrolment) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(enrolment_item(next)))
            .condition_expression("version = :seen")
            .expression_attribute_values(":seen", n(seen.version))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        self.conditional("PutItem", result)
    }

    async fn mark_seen(
        &self,
        e: &Enrolment,
        invoice: &InvoiceNumber,
        at: OffsetDateTime,
    ) -> Result<Seen, StoreError> {
        let mut item = key(
            org_pk(&e.org),
            format!("AUTOPAYSEEN#{}#{invoice}", e.customer),
        );
        item.insert("seen_at".into(), time(at));
        if self.put_new(item).await? {
            Ok(Seen::First)
        } else {
            Ok(Seen::Before)
        }
    }
}
