//! The sandbox gateway's own records (it keeps its state in our table, like a gateway would in
//! its own): single-use tokens `SBTOK#sha256(token)` and charges `ORG#o / SBCH#<our reference>`.
//! Tokens hold only what a real gateway would show back: kind, brand, last four, expiry.

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnConsumedCapacity, TransactWriteItem, Update,
};
use domain::{Money, OrgSlug};
use time::OffsetDateTime;

use app::ports::StoreError;

use crate::Store;
use crate::directory::org_pk;
use crate::error::{condition_failed, sdk_error};
use crate::item::{Attrs, Item, key, n, s, time};
use crate::meter::Kind;
use crate::table::{GSI1, GSI1_PK, GSI1_SK, TTL};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxToken {
    pub token_hash: String,
    /// "card" or "bank"
    pub kind: String,
    pub brand: String,
    pub last4: String,
    /// What charging it does: "approve", "settle_later", or a decline code.
    pub behaviour: String,
    pub expires_at: OffsetDateTime,
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

const CHARGES_PK: &str = "SANDBOX#CHARGES";

fn token_key(hash: &str) -> Attrs {
    key(format!("SBTOK#{hash}"), "SBTOK")
}

fn charge_key(org: &OrgSlug, reference: &str) -> Attrs {
    key(org_pk(org), format!("SBCH#{reference}"))
}

fn read_token(a: &Attrs) -> Result<SandboxToken, StoreError> {
    let i = Item(a);
    Ok(SandboxToken {
        token_hash: i.s("token_hash")?.to_owned(),
        kind: i.s("kind")?.to_owned(),
        brand: i.s("brand")?.to_owned(),
        last4: i.s("last4")?.to_owned(),
        behaviour: i.s("behaviour")?.to_owned(),
        expires_at: OffsetDateTime::from_unix_timestamp(i.i64("expires_at")?)
            .map_err(|_| StoreError("bad token expiry".into()))?,
    })
}

fn read_charge(a: &Attrs) -> Result<SandboxCharge, StoreError> {
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
        created_at: i.time("created_at")?,
    })
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
            ("behaviour".into(), s(&t.behaviour)),
            ("used".into(), AttributeValue::Bool(false)),
            ("expires_at".into(), n(t.expires_at.unix_timestamp())),
            (TTL.into(), n(t.expires_at.unix_timestamp())),
        ]);
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
        let spend = Update::builder()
            .table_name(&self.table)
            .set_key(Some(token_key(token_hash)))
            .update_expression("SET used = :yes")
            .condition_expression("used = :no AND expires_at > :now")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .build()
            .expect("update has its fields");
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
        if let Some(decline) = &charge.decline {
            item.insert("decline".into(), s(decline));
        }
        let record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("put has its fields");
        let items = vec![
            TransactWriteItem::builder().put(record).build(),
            TransactWriteItem::builder().update(spend).build(),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(ChargeWrite::Written),
            Err(Ok(codes)) if condition_failed(&codes, 0) => Ok(ChargeWrite::ReferenceExists),
            Err(Ok(_)) => Ok(ChargeWrite::TokenSpent),
            Err(Err(e)) => Err(e),
        }
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
