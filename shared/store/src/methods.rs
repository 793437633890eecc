//! Saved payment methods and mandates, in the org's partition:
//! `ORG#o / PAYER#u#PM#id` (a method; cards also sit in GSI1 under `CARDEXP#yyyy-mm` until their
//! holder is told they expire), `ORG#o / PAYER#u#FP#fingerprint` (one method per card or account
//! and payer), `ORG#o / PAYER#u#GWCUS#gateway` (the payer's customer at the gateway) and
//! `ORG#o / MANDATE#id` (an accepted authority, written once). A payer's methods are one query.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, ReturnConsumedCapacity, TransactWriteItem, Update,
};
use domain::{CustomerId, Email, MandateId, MethodId, OrgSlug, UserId};
use time::OffsetDateTime;

use app::ports::{DeleteWrite, Mandate, MethodRepo, SaveWrite, SavedMethod, StoreError};

use crate::Store;
use crate::directory::{org_pk, put_if_absent};
use crate::error::condition_failed;
use crate::item::{Attrs, Item, key, n, s, time};
use crate::table::{GSI1, GSI1_PK, GSI1_SK};

fn payer_prefix(user: &UserId) -> String {
    format!("PAYER#{user}#")
}

pub(crate) fn method_key(org: &OrgSlug, user: &UserId, id: &MethodId) -> Attrs {
    key(org_pk(org), format!("PAYER#{user}#PM#{id}"))
}

fn fingerprint_key(m: &SavedMethod) -> Attrs {
    key(
        org_pk(&m.org),
        format!("PAYER#{}#FP#{}", m.user, m.fingerprint),
    )
}

fn customer_key(org: &OrgSlug, user: &UserId, gateway: &str) -> Attrs {
    key(org_pk(org), format!("PAYER#{user}#GWCUS#{gateway}"))
}

fn expiry_pk(year: i32, month: u8) -> String {
    format!("CARDEXP#{year:04}-{month:02}")
}

fn method_item(m: &SavedMethod) -> Attrs {
    let mut item = method_key(&m.org, &m.user, &m.id);
    item.extend([
        ("type".into(), s("method")),
        ("id".into(), s(m.id.as_str())),
        ("org".into(), s(m.org.as_str())),
        ("user_id".into(), s(m.user.as_str())),
        ("kind".into(), s(&m.kind)),
        ("brand".into(), s(&m.brand)),
        ("last4".into(), s(&m.last4)),
        ("fingerprint".into(), s(&m.fingerprint)),
        ("gateway".into(), s(&m.gateway)),
        ("gateway_customer".into(), s(&m.gateway_customer)),
        ("gateway_method".into(), s(&m.gateway_method)),
        (
            "customer_ids".into(),
            AttributeValue::L(m.customer_ids.iter().map(|c| s(c.as_str())).collect()),
        ),
        ("is_default".into(), AttributeValue::Bool(m.is_default)),
        ("created_at".into(), time(m.created_at)),
    ]);
    let optional = [
        ("exp_month", m.exp_month.map(n)),
        ("exp_year", m.exp_year.map(n)),
        ("holder_name", m.holder_name.as_deref().map(s)),
        ("nickname", m.nickname.as_deref().map(s)),
        ("mandate_id", m.mandate.as_ref().map(|id| s(id.as_str()))),
    ];
    item.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?))),
    );
    if let (Some(year), Some(month)) = (m.exp_year, m.exp_month) {
        // Sparse: only cards whose holder has not been told yet are in the expiry index.
        item.insert(GSI1_PK.into(), s(expiry_pk(i32::from(year), month)));
        item.insert(
            GSI1_SK.into(),
            s(format!("{}#{}#{}", org_pk(&m.org), m.user, m.id)),
        );
    }
    if !m.used_by.is_empty() {
        item.insert("used_by".into(), AttributeValue::Ss(m.used_by.clone()));
    }
    item
}

fn read_method(attrs: &Attrs) -> Result<SavedMethod, StoreError> {
    let i = Item(attrs);
    let small = |name: &str| -> Result<Option<u64>, StoreError> {
        i.0.contains_key(name).then(|| i.u64(name)).transpose()
    };
    let corrupt = |what: &str| StoreError(format!("stored method has a malformed {what}"));
    Ok(SavedMethod {
        id: i.parsed("id", MethodId::parse)?,
        org: i.parsed("org", OrgSlug::parse)?,
        user: i.parsed("user_id", UserId::parse)?,
        kind: i.s("kind")?.to_owned(),
        brand: i.s("brand")?.to_owned(),
        last4: i.s("last4")?.to_owned(),
        exp_month: small("exp_month")?
            .map(u8::try_from)
            .transpose()
            .map_err(|_| corrupt("expiry"))?,
        exp_year: small("exp_year")?
            .map(u16::try_from)
            .transpose()
            .map_err(|_| corrupt("expiry"))?,
        holder_name: i.opt_s("holder_name").map(str::to_owned),
        fingerprint: i.s("fingerprint")?.to_owned(),
        gateway: i.s("gateway")?.to_owned(),
        gateway_customer: i.s("gateway_customer")?.to_owned(),
        gateway_method: i.s("gateway_method")?.to_owned(),
        customer_ids: i
            .strings("customer_ids")?
            .iter()
            .map(|c| CustomerId::parse(c))
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt("customer id"))?,
        nickname: i.opt_s("nickname").map(str::to_owned),
        is_default: i.bool("is_default")?,
        mandate: i
            .opt_s("mandate_id")
            .map(MandateId::parse)
            .transpose()
            .map_err(|_| corrupt("mandate id"))?,
        used_by: uses(attrs),
        created_at: i.time("created_at")?,
    })
}

/// What uses a method: the labels of enrolments (and other named users), and the count of
/// scheduled payments (a counter, so that a method paying thousands of schedules stays small).
fn uses(attrs: &Attrs) -> Vec<String> {
    let mut named = attrs
        .get("used_by")
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    let scheduled = attrs
        .get(IN_USE)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(0);
    match scheduled {
        0 => {}
        1 => named.push("1 scheduled payment".to_owned()),
        n => named.push(format!("{n} scheduled payments")),
    }
    named
}

/// The count of scheduled payments that will charge a method.
pub(crate) const IN_USE: &str = "in_use";

fn mandate_item(m: &Mandate) -> Attrs {
    let mut item = key(org_pk(&m.org), format!("MANDATE#{}", m.id));
    item.extend([
        ("type".into(), s("mandate")),
        ("id".into(), s(m.id.as_str())),
        ("org".into(), s(m.org.as_str())),
        ("user_id".into(), s(m.user.as_str())),
        ("email".into(), s(m.email.as_str())),
        ("method_id".into(), s(m.method.as_str())),
        ("kind".into(), s(&m.kind)),
        ("method_label".into(), s(&m.method_label)),
        ("terms_version".into(), s(&m.terms_version)),
        ("terms_hash".into(), s(&m.terms_hash)),
        ("signer_name".into(), s(&m.signer_name)),
        ("accepted_at".into(), time(m.accepted_at)),
    ]);
    for (name, value) in [("client_ip", &m.client_ip), ("user_agent", &m.user_agent)] {
        if let Some(value) = value {
            item.insert(name.into(), s(value));
        }
    }
    item
}

fn read_mandate(attrs: &Attrs) -> Result<Mandate, StoreError> {
    let i = Item(attrs);
    Ok(Mandate {
        id: i.parsed("id", MandateId::parse)?,
        org: i.parsed("org", OrgSlug::parse)?,
        user: i.parsed("user_id", UserId::parse)?,
        email: i.parsed("email", Email::parse)?,
        method: i.parsed("method_id", MethodId::parse)?,
        kind: i.s("kind")?.to_owned(),
        method_label: i.s("method_label")?.to_owned(),
        terms_version: i.s("terms_version")?.to_owned(),
        terms_hash: i.s("terms_hash")?.to_owned(),
        signer_name: i.s("signer_name")?.to_owned(),
        accepted_at: i.time("accepted_at")?,
        client_ip: i.opt_s("client_ip").map(str::to_owned),
        user_agent: i.opt_s("user_agent").map(str::to_owned),
    })
}

/// An update inside a transaction: `expression` applied only if `condition` holds.
fn update(
    table: &str,
    key: Attrs,
    expression: &str,
    condition: &str,
    values: Vec<(&str, AttributeValue)>,
) -> TransactWriteItem {
    let mut builder = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(expression)
        .condition_expression(condition);
    for (name, value) in values {
        builder = builder.expression_attribute_values(name, value);
    }
    TransactWriteItem::builder()
        .update(
            builder
                .build()
                .expect("update has table, key and expression"),
        )
        .build()
}

fn delete(
    table: &str,
    key: Attrs,
    condition: Option<&str>,
    values: Vec<(&str, AttributeValue)>,
) -> TransactWriteItem {
    let mut builder = Delete::builder().table_name(table).set_key(Some(key));
    if let Some(condition) = condition {
        builder = builder.condition_expression(condition);
    }
    for (name, value) in values {
        builder = builder.expression_attribute_values(name, value);
    }
    TransactWriteItem::builder()
        .delete(builder.build().expect("delete has table and key"))
        .build()
}

fn set_default_flag(
    table: &str,
    org: &OrgSlug,
    user: &UserId,
    id: &MethodId,
    to: bool,
) -> TransactWriteItem {
    // Only a method that is what the caller read it as (default or not) is changed.
    update(
        table,
        method_key(org, user, id),
        "SET is_default = :to",
        "attribute_exists(pk) AND is_default = :from",
        vec![
            (":to", AttributeValue::Bool(to)),
            (":from", AttributeValue::Bool(!to)),
        ],
    )
}

fn cancelled(what: &str, codes: Vec<String>) -> StoreError {
    StoreError(format!("{what} cancelled: {codes:?}"))
}

#[async_trait]
impl MethodRepo for Store {
    async fn payer_customer(
        &self,
        org: &OrgSlug,
        user: &UserId,
        gateway: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(found) = self.get_key(customer_key(org, user, gateway)).await? else {
            return Ok(None);
        };
        Ok(Some(Item(&found).s("customer")?.to_owned()))
    }

    async fn keep_payer_customer(
        &self,
        org: &OrgSlug,
        user: &UserId,
        gateway: &str,
        customer: &str,
    ) -> Result<String, StoreError> {
        let mut item = customer_key(org, user, gateway);
        item.insert("customer".into(), s(customer));
        if self.put_new(item).await? {
            return Ok(customer.to_owned());
        }
        // Another request recorded one first: that one is the payer's.
        self.payer_customer(org, user, gateway)
            .await?
            .ok_or_else(|| StoreError("payer customer vanished".into()))
    }

    async fn save_method(
        &self,
        method: &SavedMethod,
        mandate: Option<&Mandate>,
        previous_default: Option<&MethodId>,
    ) -> Result<SaveWrite, StoreError> {
        let mut marker = fingerprint_key(method);
        marker.insert("method_id".into(), s(method.id.as_str()));
        let mut items = vec![
            put_if_absent(&self.table, method_item(method)),
            put_if_absent(&self.table, marker),
        ];
        if let Some(mandate) = mandate {
            items.push(put_if_absent(&self.table, mandate_item(mandate)));
        }
        let unset_index = items.len();
        if let (true, Some(previous)) = (method.is_default, previous_default) {
            items.push(set_default_flag(
                &self.table,
                &method.org,
                &method.user,
                previous,
                false,
            ));
        }
        match self.transact(items).await {
            Ok(()) => Ok(SaveWrite::Saved),
            Err(Ok(codes)) if condition_failed(&codes, 1) => {
                let found = self.get_key(fingerprint_key(method)).await?;
                match found {
                    Some(marker) => Ok(SaveWrite::Duplicate(
                        Item(&marker).parsed("method_id", MethodId::parse)?,
                    )),
                    // Removed meanwhile: try again.
                    None => Ok(SaveWrite::DefaultMoved),
                }
            }
            Err(Ok(codes)) if condition_failed(&codes, unset_index) => Ok(SaveWrite::DefaultMoved),
            Err(Ok(codes)) => Err(cancelled("save method", codes)),
            Err(Err(e)) => Err(e),
        }
    }

    async fn methods_of(
        &self,
        org: &OrgSlug,
        user: &UserId,
    ) -> Result<Vec<SavedMethod>, StoreError> {
        self.query_prefix(None, org_pk(org), &format!("{}PM#", payer_prefix(user)))
            .await?
            .iter()
            .map(read_method)
            .collect()
    }

    async fn get_method(
        &self,
        org: &OrgSlug,
        user: &UserId,
        id: &MethodId,
    ) -> Result<Option<SavedMethod>, StoreError> {
        self.get_key(method_key(org, user, id))
            .await?
            .as_ref()
            .map(read_method)
            .transpose()
    }

    async fn set_default(
        &self,
        org: &OrgSlug,
        user: &UserId,
        id: &MethodId,
        previous: Option<&MethodId>,
    ) -> Result<bool, StoreError> {
        let mut items = vec![set_default_flag(&self.table, org, user, id, true)];
        if let Some(previous) = previous.filter(|p| *p != id) {
            items.push(set_default_flag(&self.table, org, user, previous, false));
        }
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(Ok(_)) => Ok(false),
            Err(Err(e)) => Err(e),
        }
    }

    async fn set_nickname(
        &self,
        org: &OrgSlug,
        user: &UserId,
        id: &MethodId,
        nickname: Option<&str>,
    ) -> Result<bool, StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(method_key(org, user, id)))
            .condition_expression("attribute_exists(pk)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let request = match nickname {
            Some(name) => request
                .update_expression("SET nickname = :name")
                .expression_attribute_values(":name", s(name)),
            None => request.update_expression("REMOVE nickname"),
        };
        self.conditional("UpdateItem", request.send().await)
    }

    async fn delete_method(
        &self,
        method: &SavedMethod,
        promote: Option<&MethodId>,
    ) -> Result<DeleteWrite, StoreError> {
        let mut items = vec![
            delete(
                &self.table,
                method_key(&method.org, &method.user, &method.id),
                Some(
                    "attribute_exists(pk) AND attribute_not_exists(used_by) \
                     AND (attribute_not_exists(in_use) OR in_use = :none)",
                ),
                vec![(":none", n(0))],
            ),
            delete(&self.table, fingerprint_key(method), None, Vec::new()),
        ];
        if let (true, Some(next)) = (method.is_default, promote) {
            items.push(set_default_flag(
                &self.table,
                &method.org,
                &method.user,
                next,
                true,
            ));
        }
        match self.transact(items).await {
            Ok(()) => Ok(DeleteWrite::Deleted),
            Err(Ok(codes)) if condition_failed(&codes, 0) => {
                // Gone, or in use: the record says which (and by what).
                match self
                    .get_method(&method.org, &method.user, &method.id)
                    .await?
                {
                    Some(now) if !now.used_by.is_empty() => Ok(DeleteWrite::InUse(now.used_by)),
                    Some(_) => Err(StoreError("method changed while removing it".into())),
                    None => Ok(DeleteWrite::Gone),
                }
            }
            Err(Ok(codes)) => Err(cancelled("delete method", codes)),
            Err(Err(e)) => Err(e),
        }
    }

    async fn use_method(
        &self,
        org: &OrgSlug,
        user: &UserId,
        id: &MethodId,
        by: &str,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(method_key(org, user, id)))
            .update_expression("ADD used_by :by")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":by", AttributeValue::Ss(vec![by.to_owned()]))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        self.conditional("UpdateItem", result)
    }

    async fn release_method(
        &self,
        org: &OrgSlug,
        user: &UserId,
        id: &MethodId,
        by: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(method_key(org, user, id)))
            .update_expression("DELETE used_by :by")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":by", AttributeValue::Ss(vec![by.to_owned()]))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        // A method removed meanwhile is released already.
        self.conditional("UpdateItem", result).map(|_| ())
    }

    async fn list_mandates(&self, org: &OrgSlug) -> Result<Vec<Mandate>, StoreError> {
        self.query_prefix(None, org_pk(org), "MANDATE#")
            .await?
            .iter()
            .map(read_mandate)
            .collect()
    }

    async fn cards_expiring(&self, year: i32, month: u8) -> Result<Vec<SavedMethod>, StoreError> {
        self.query_prefix(Some(GSI1), expiry_pk(year, month), "ORG#")
            .await?
            .iter()
            .map(read_method)
            .collect()
    }

    async fn claim_expiry_notice(
        &self,
        method: &SavedMethod,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(method_key(&method.org, &method.user, &method.id)))
            .update_expression("SET expiry_notified_at = :now REMOVE #gpk, #gsk")
            .condition_expression("attribute_exists(#gpk)")
            .expression_attribute_names("#gpk", GSI1_PK)
            .expression_attribute_names("#gsk", GSI1_SK)
            .expression_attribute_values(":now", time(now))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        self.conditional("UpdateItem", result)
    }
}
