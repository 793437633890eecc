//! The sandbox gateway's own records (it keeps its state in our table, like a gateway would in
//! its own): single-use tokens `SBTOK#sha256(token)`, charges `ORG#o / SBCH#<our reference>`,
//! customers `ORG#o / SBCUS#<our reference>` (with `ORG#o / SBCUSID#<customer id>`, so that a
//! customer can be checked by its id) and saved methods `ORG#o / SBPM#<method id>`.
//! Tokens and methods hold only what a real gateway would show back: kind, brand, last four,
//! expiry, holder, fingerprint (and the test behaviour); never a number or a CVC. A charge is
//! also found by its id (`SBCHID#<charge id>`, see `sandbox_events`).

use std::str::FromStr;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnConsumedCapacity, TransactWriteItem, Update,
};
use domain::{Email, Money, OrgSlug};
use time::OffsetDateTime;

use app::ports::StoreError;

use crate::Store;
use crate::directory::{org_pk, put_if_absent};
use crate::error::{condition_failed, sdk_error};
use crate::item::{Attrs, Item, key, n, s, time};
use crate::meter::Kind;
use crate::table::{GSI1, GSI1_PK, GSI1_SK, PK, TTL};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxToken {
    pub token_hash: String,
    /// "card" or "bank"
    pub kind: String,
    pub brand: String,
    pub last4: String,
    /// A card's expiry; None for a bank account.
    pub exp_month: Option<u8>,
    pub exp_year: Option<u16>,
    /// A bank account's holder; None for a card.
    pub holder_name: Option<String>,
    /// The same card or account gives the same value (a hash, never the number).
    pub fingerprint: String,
    /// What charging it does: "approve", "settle_later", or a decline code.
    pub behaviour: String,
    pub expires_at: OffsetDateTime,
}

/// A customer of the sandbox gateway: one payer of one org, under our stable reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxCustomer {
    pub org: OrgSlug,
    pub reference: String,
    /// `cus_<ulid>`
    pub customer_id: String,
    pub email: Email,
    pub name: String,
    pub created_at: OffsetDateTime,
}

/// A method saved to a customer (from a spent token): what may be shown of it and its test
/// behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxMethod {
    pub org: OrgSlug,
    /// `pm_sb_<ulid>`
    pub method_id: String,
    /// The customer id it belongs to.
    pub customer: String,
    /// "card" or "bank"
    pub kind: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: Option<u8>,
    pub exp_year: Option<u16>,
    pub holder_name: Option<String>,
    pub fingerprint: String,
    /// What charging it does: "approve", "settle_later", or a decline code.
    pub behaviour: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxCharge {
    pub org: OrgSlug,
    pub reference: String,
    pub charge_id: String,
    pub amount: Money,
    /// succeeded, pending (a bank debit), failed
    pub status: String,
    pub decline: Option<String>,
    pub kind: String,
    pub brand: String,
    pub last4: String,
    /// What happens to it after it is taken: "return_later" (a debit that settles, then comes
    /// back); empty for the rest.
    pub later: String,
    pub created_at: OffsetDateTime,
}

/// What recording a charge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeWrite {
    Written,
    /// A charge with this reference exists: the gateway answers with it instead.
    ReferenceExists,
    /// The token is unknown, expired or spent.
    TokenSpent,
}

/// What saving a token's method did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachWrite {
    Written,
    /// The token is unknown, expired or spent: nothing was written.
    TokenSpent,
    /// No such customer in the org: nothing was written.
    UnknownCustomer,
}

const CHARGES_PK: &str = "SANDBOX#CHARGES";

fn token_key(hash: &str) -> Attrs {
    key(format!("SBTOK#{hash}"), "SBTOK")
}

pub(crate) fn charge_key(org: &OrgSlug, reference: &str) -> Attrs {
    key(org_pk(org), format!("SBCH#{reference}"))
}

fn customer_key(org: &OrgSlug, reference: &str) -> Attrs {
    key(org_pk(org), format!("SBCUS#{reference}"))
}

fn customer_id_key(org: &OrgSlug, customer_id: &str) -> Attrs {
    key(org_pk(org), format!("SBCUSID#{customer_id}"))
}

fn method_key(org: &OrgSlug, method_id: &str) -> Attrs {
    key(org_pk(org), format!("SBPM#{method_id}"))
}

/// The optional display facts of a token or method: only those that are there are written.
fn extend_optional(
    item: &mut Attrs,
    exp_month: Option<u8>,
    exp_year: Option<u16>,
    holder_name: Option<&str>,
) {
    if let Some(m) = exp_month {
        item.insert("exp_month".into(), n(m));
    }
    if let Some(y) = exp_year {
        item.insert("exp_year".into(), n(y));
    }
    if let Some(h) = holder_name {
        item.insert("holder_name".into(), s(h));
    }
}

/// An optional number: None when absent, an error when present but malformed.
fn opt_n<T: FromStr>(a: &Attrs, name: &str) -> Result<Option<T>, StoreError> {
    a.get(name)
        .map(|v| {
            v.as_n().ok().and_then(|v| v.parse().ok()).ok_or_else(|| {
                StoreError(format!("stored item has a malformed attribute {name:?}"))
            })
        })
        .transpose()
}

fn read_token(a: &Attrs) -> Result<SandboxToken, StoreError> {
    let i = Item(a);
    Ok(SandboxToken {
        token_hash: i.s("token_hash")?.to_owned(),
        kind: i.s("kind")?.to_owned(),
        brand: i.s("brand")?.to_owned(),
        last4: i.s("last4")?.to_owned(),
        exp_month: opt_n(a, "exp_month")?,
        exp_year: opt_n(a, "exp_year")?,
        holder_name: i.opt_s("holder_name").map(str::to_owned),
        fingerprint: i.s("fingerprint")?.to_owned(),
        behaviour: i.s("behaviour")?.to_owned(),
        expires_at: OffsetDateTime::from_unix_timestamp(i.i64("expires_at")?)
            .map_err(|_| StoreError("bad token expiry".into()))?,
    })
}

fn read_customer(a: &Attrs) -> Result<SandboxCustomer, StoreError> {
    let i = Item(a);
    Ok(SandboxCustomer {
        org: i.parsed("org", OrgSlug::parse)?,
        reference: i.s("reference")?.to_owned(),
        customer_id: i.s("customer_id")?.to_owned(),
        email: i.parsed("email", Email::parse)?,
        name: i.s("name")?.to_owned(),
        created_at: i.time("created_at")?,
    })
}

fn method_item(m: &SandboxMethod) -> Attrs {
    let mut item = method_key(&m.org, &m.method_id);
    item.extend([
        ("type".into(), s("sandbox_method")),
        ("org".into(), s(m.org.as_str())),
        ("method_id".into(), s(&m.method_id)),
        ("customer".into(), s(&m.customer)),
        ("kind".into(), s(&m.kind)),
        ("brand".into(), s(&m.brand)),
        ("last4".into(), s(&m.last4)),
        ("fingerprint".into(), s(&m.fingerprint)),
        ("behaviour".into(), s(&m.behaviour)),
        ("created_at".into(), time(m.created_at)),
    ]);
    extend_optional(&mut item, m.exp_month, m.exp_year, m.holder_name.as_deref());
    item
}

fn read_method(a: &Attrs) -> Result<SandboxMethod, StoreError> {
    let i = Item(a);
    Ok(SandboxMethod {
        org: i.parsed("org", OrgSlug::parse)?,
        method_id: i.s("method_id")?.to_owned(),
        customer: i.s("customer")?.to_owned(),
        kind: i.s("kind")?.to_owned(),
        brand: i.s("brand")?.to_owned(),
        last4: i.s("last4")?.to_owned(),
        exp_month: opt_n(a, "exp_month")?,
        exp_year: opt_n(a, "exp_year")?,
        holder_name: i.opt_s("holder_name").map(str::to_owned),
        fingerprint: i.s("fingerprint")?.to_owned(),
        behaviour: i.s("behaviour")?.to_owned(),
        created_at: i.time("created_at")?,
    })
}

fn charge_item(charge: &SandboxCharge) -> Attrs {
    let mut item = charge_key(&charge.org, &charge.reference);
    item.extend([
        ("type".into(), s("sandbox_charge")),
        (GSI1_PK.into(), s(CHARGES_PK)),
        (
            GSI1_SK.into(),
            s(format!(
                "{}#{}",
                charge.created_at.unix_timestamp(),
                charge.charge_id
            )),
        ),
        ("org".into(), s(charge.org.as_str())),
        ("reference".into(), s(&charge.reference)),
        ("charge_id".into(), s(&charge.charge_id)),
        ("amount".into(), n(charge.amount.minor())),
        ("currency".into(), s(charge.amount.currency().code())),
        ("status".into(), s(&charge.status)),
        ("kind".into(), s(&charge.kind)),
        ("brand".into(), s(&charge.brand)),
        ("last4".into(), s(&charge.last4)),
        ("created_at".into(), time(charge.created_at)),
    ]);
    if !charge.later.is_empty() {
        item.insert("later".into(), s(&charge.later));
    }
    if let Some(decline) = &charge.decline {
        item.insert("decline".into(), s(decline));
    }
    item
}

pub(crate) fn read_charge(a: &Attrs) -> Result<SandboxCharge, StoreError> {
    let i = Item(a);
    let currency = i.parsed("currency", str::parse)?;
    Ok(SandboxCharge {
        org: i.parsed("org", OrgSlug::parse)?,
        reference: i.s("reference")?.to_owned(),
        charge_id: i.s("charge_id")?.to_owned(),
        amount: Money::from_minor(i.u64("amount")?, currency)
            .map_err(|_| StoreError("bad charge amount".into()))?,
        status: i.s("status")?.to_owned(),
        decline: i.opt_s("decline").map(str::to_owned),
        kind: i.s("kind")?.to_owned(),
        brand: i.s("brand")?.to_owned(),
        last4: i.s("last4")?.to_owned(),
        later: i.opt_s("later").unwrap_or_default().to_owned(),
        created_at: i.time("created_at")?,
    })
}

/// Flips a token's `used` flag, only if it is unspent and unexpired.
fn spend_token(table: &str, token_hash: &str, now: OffsetDateTime) -> Update {
    Update::builder()
        .table_name(table)
        .set_key(Some(token_key(token_hash)))
        .update_expression("SET used = :yes")
        .condition_expression("used = :no AND expires_at > :now")
        .expression_attribute_values(":yes", AttributeValue::Bool(true))
        .expression_attribute_values(":no", AttributeValue::Bool(false))
        .expression_attribute_values(":now", n(now.unix_timestamp()))
        .build()
        .expect("update has its fields")
}

impl Store {
    pub async fn sandbox_put_token(&self, t: &SandboxToken) -> Result<(), StoreError> {
        let mut item = token_key(&t.token_hash);
        item.extend([
            ("type".into(), s("sandbox_token")),
            ("token_hash".into(), s(&t.token_hash)),
            ("kind".into(), s(&t.kind)),
            ("brand".into(), s(&t.brand)),
            ("last4".into(), s(&t.last4)),
            ("fingerprint".into(), s(&t.fingerprint)),
            ("behaviour".into(), s(&t.behaviour)),
            ("used".into(), AttributeValue::Bool(false)),
            ("expires_at".into(), n(t.expires_at.unix_timestamp())),
            (TTL.into(), n(t.expires_at.unix_timestamp())),
        ]);
        extend_optional(&mut item, t.exp_month, t.exp_year, t.holder_name.as_deref());
        if self.put_new(item).await? {
            Ok(())
        } else {
            Err(StoreError("token collision".into()))
        }
    }

    /// The token if it is known, unspent and unexpired (TTL deletion is lazy: checked here).
    pub async fn sandbox_token(
        &self,
        hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<SandboxToken>, StoreError> {
        let Some(attrs) = self.get_item(format!("SBTOK#{hash}"), "SBTOK").await? else {
            return Ok(None);
        };
        let token = read_token(&attrs)?;
        let used = Item(&attrs).bool("used")?;
        Ok((!used && token.expires_at > now).then_some(token))
    }

    /// Spends the token and records the charge in one transaction.
    pub async fn sandbox_record_charge(
        &self,
        token_hash: &str,
        charge: &SandboxCharge,
        now: OffsetDateTime,
    ) -> Result<ChargeWrite, StoreError> {
        let record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(charge_item(charge)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("put has its fields");
        let items = vec![
            TransactWriteItem::builder().put(record).build(),
            TransactWriteItem::builder()
                .update(spend_token(&self.table, token_hash, now))
                .build(),
            crate::sandbox_events::charge_id_marker(&self.table, charge),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(ChargeWrite::Written),
            Err(Ok(codes)) if condition_failed(&codes, 0) => Ok(ChargeWrite::ReferenceExists),
            Err(Ok(_)) => Ok(ChargeWrite::TokenSpent),
            Err(Err(e)) => Err(e),
        }
    }

    /// Records a charge of a saved method: no token to spend, only the reference must be new.
    pub async fn sandbox_record_saved_charge(
        &self,
        charge: &SandboxCharge,
    ) -> Result<ChargeWrite, StoreError> {
        let items = vec![
            put_if_absent(&self.table, charge_item(charge)),
            crate::sandbox_events::charge_id_marker(&self.table, charge),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(ChargeWrite::Written),
            Err(Ok(_)) => Ok(ChargeWrite::ReferenceExists),
            Err(Err(e)) => Err(e),
        }
    }

    /// Writes the customer under our reference, with the marker of its id, in one transaction.
    /// Ok(false) when the reference has a customer already (nothing is written).
    pub async fn sandbox_create_customer(&self, c: &SandboxCustomer) -> Result<bool, StoreError> {
        let mut item = customer_key(&c.org, &c.reference);
        item.extend([
            ("type".into(), s("sandbox_customer")),
            ("org".into(), s(c.org.as_str())),
            ("reference".into(), s(&c.reference)),
            ("customer_id".into(), s(&c.customer_id)),
            ("email".into(), s(c.email.as_str())),
            ("name".into(), s(&c.name)),
            ("created_at".into(), time(c.created_at)),
        ]);
        let mut marker = customer_id_key(&c.org, &c.customer_id);
        marker.extend([
            ("type".into(), s("sandbox_customer_id")),
            ("customer_id".into(), s(&c.customer_id)),
            ("reference".into(), s(&c.reference)),
        ]);
        let items = vec![
            put_if_absent(&self.table, item),
            put_if_absent(&self.table, marker),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(Ok(codes)) if condition_failed(&codes, 0) => Ok(false),
            Err(Ok(codes)) => Err(StoreError(format!(
                "sandbox customer id collision: {codes:?}"
            ))),
            Err(Err(e)) => Err(e),
        }
    }

    /// The customer under our reference.
    pub async fn sandbox_customer(
        &self,
        org: &OrgSlug,
        reference: &str,
    ) -> Result<Option<SandboxCustomer>, StoreError> {
        let attrs = self
            .get_item(org_pk(org), &format!("SBCUS#{reference}"))
            .await?;
        attrs.as_ref().map(read_customer).transpose()
    }

    /// Whether the org has a customer with this id.
    pub async fn sandbox_customer_exists(
        &self,
        org: &OrgSlug,
        customer_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .get_item(org_pk(org), &format!("SBCUSID#{customer_id}"))
            .await?
            .is_some())
    }

    /// In one transaction: the saved method (its id must be new), the token spent (only if
    /// unspent and unexpired) and a check that the method's customer exists in its org.
    pub async fn sandbox_attach_method(
        &self,
        token_hash: &str,
        method: &SandboxMethod,
        now: OffsetDateTime,
    ) -> Result<AttachWrite, StoreError> {
        let save = Put::builder()
            .table_name(&self.table)
            .set_item(Some(method_item(method)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .expect("put has its fields");
        let customer = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(customer_id_key(&method.org, &method.customer)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .expect("condition check has its fields");
        let items = vec![
            TransactWriteItem::builder().put(save).build(),
            TransactWriteItem::builder()
                .update(spend_token(&self.table, token_hash, now))
                .build(),
            TransactWriteItem::builder()
                .condition_check(customer)
                .build(),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(AttachWrite::Written),
            Err(Ok(codes)) if condition_failed(&codes, 2) => Ok(AttachWrite::UnknownCustomer),
            Err(Ok(codes)) if condition_failed(&codes, 1) => Ok(AttachWrite::TokenSpent),
            Err(Ok(codes)) => Err(StoreError(format!(
                "sandbox method id collision: {codes:?}"
            ))),
            Err(Err(e)) => Err(e),
        }
    }

    /// A saved method of the org, whoever's it is.
    pub async fn sandbox_method(
        &self,
        org: &OrgSlug,
        method_id: &str,
    ) -> Result<Option<SandboxMethod>, StoreError> {
        let attrs = self
            .get_item(org_pk(org), &format!("SBPM#{method_id}"))
            .await?;
        attrs.as_ref().map(read_method).transpose()
    }

    /// Deletes a saved method if it belongs to the customer. Ok(true) when it is gone (now or
    /// already), Ok(false) when it belongs to another customer (it stays).
    pub async fn sandbox_detach_method(
        &self,
        org: &OrgSlug,
        customer: &str,
        method_id: &str,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(method_key(org, method_id)))
            .condition_expression("attribute_not_exists(#pk) OR #customer = :customer")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#customer", "customer")
            .expression_attribute_values(":customer", s(customer))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        self.conditional("DeleteItem", result)
    }

    pub async fn sandbox_charge(
        &self,
        org: &OrgSlug,
        reference: &str,
    ) -> Result<Option<SandboxCharge>, StoreError> {
        let attrs = self
            .get_item(org_pk(org), &format!("SBCH#{reference}"))
            .await?;
        attrs.as_ref().map(read_charge).transpose()
    }

    /// Every org's sandbox charges, newest first (a developer's view of the fake gateway).
    pub async fn sandbox_charges(&self, limit: i32) -> Result<Vec<SandboxCharge>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", GSI1_PK)
            .expression_attribute_values(":pk", s(CHARGES_PK))
            .scan_index_forward(false)
            .limit(limit)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        self.meter.record(Kind::Read, out.consumed_capacity());
        out.items().iter().map(read_charge).collect()
    }
}
