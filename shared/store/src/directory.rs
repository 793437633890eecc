//! Orgs, users (with their email uniqueness markers), memberships and API keys.

use async_trait::async_trait;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, KeysAndAttributes, Put, ReturnConsumedCapacity,
    TransactWriteItem,
};
use domain::{ApiKeyId, Email, Membership, Org, OrgSettings, OrgSlug, Role, Secret, UserId};
use time::OffsetDateTime;

use app::ports::{
    AddMemberError, ApiKeyRecord, ApiKeyRepo, CreateOrgError, CreateUserError, FirstAdmin,
    MembershipRepo, NotificationPrefs, OrgRepo, StoreError, User, UserRepo,
};

use crate::Store;
use crate::error::{cancellation_codes, condition_failed, sdk_error};
use crate::item::{Attrs, Item, key, n, s, time};
use crate::meter::Kind;
use crate::table::{GSI1, GSI1_PK, GSI1_SK, PK, SK};

pub(crate) fn org_pk(org: &OrgSlug) -> String {
    format!("ORG#{org}")
}

pub(crate) fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

fn email_pk(email: &Email) -> String {
    format!("EMAIL#{email}")
}

fn api_key_pk(hash: &str) -> String {
    format!("APIKEY#{hash}")
}

fn settings_attrs(settings: &OrgSettings) -> [(String, AttributeValue); 7] {
    let surcharges = serde_json::to_string(&settings.surcharges).expect("rules serialize");
    let autopay = serde_json::to_string(&settings.autopay).expect("settings serialize");
    [
        (
            "allow_partial".into(),
            AttributeValue::Bool(settings.allow_partial),
        ),
        ("invite_ttl_days".into(), n(settings.invite_ttl_days)),
        ("timezone".into(), s(&settings.timezone)),
        (
            "default_currency".into(),
            s(settings.default_currency.code()),
        ),
        ("surcharges".into(), s(surcharges)),
        ("autopay".into(), s(autopay)),
        (
            "require_two_factor".into(),
            AttributeValue::Bool(settings.require_two_factor),
        ),
    ]
}

fn org_item(org: &Org, now: OffsetDateTime) -> Attrs {
    let mut item = key(org_pk(&org.slug), "ORG");
    item.extend([
        ("type".into(), s("org")),
        ("slug".into(), s(org.slug.as_str())),
        ("name".into(), s(&org.name)),
        ("created_at".into(), time(now)),
    ]);
    item.extend(settings_attrs(&org.settings));
    item
}

pub(crate) fn read_org(attrs: &Attrs) -> Result<Org, StoreError> {
    let i = Item(attrs);
    let surcharges = match i.opt_s("surcharges") {
        None => Vec::new(),
        Some(json) => serde_json::from_str(json)
            .map_err(|_| StoreError("stored org has malformed surcharges".into()))?,
    };
    Ok(Org {
        slug: i.parsed("slug", OrgSlug::parse)?,
        name: i.s("name")?.to_owned(),
        settings: OrgSettings {
            allow_partial: i.bool("allow_partial")?,
            invite_ttl_days: i.u64("invite_ttl_days")? as u16,
            timezone: i.s("timezone")?.to_owned(),
            default_currency: i.parsed("default_currency", str::parse)?,
            surcharges,
            // Orgs made before auto-pay existed have the defaults.
            autopay: match i.opt_s("autopay") {
                None => domain::AutoPaySettings::default(),
                Some(json) => serde_json::from_str(json)
                    .map_err(|_| StoreError("stored org has malformed autopay settings".into()))?,
            },
            // Orgs made before the setting existed do not require it.
            require_two_factor: matches!(
                attrs.get("require_two_factor"),
                Some(AttributeValue::Bool(true))
            ),
        },
    })
}

pub(crate) fn user_item(user: &User) -> Attrs {
    let mut item = key(user_pk(&user.id), "USER");
    item.extend([
        ("type".into(), s("user")),
        ("user_id".into(), s(user.id.as_str())),
        ("email".into(), s(user.email.as_str())),
        ("name".into(), s(&user.name)),
        ("created_at".into(), time(user.created_at)),
    ]);
    if let Some(hash) = &user.password_hash {
        item.insert("password_hash".into(), s(hash.expose()));
    }
    item
}

pub(crate) fn read_user(attrs: &Attrs) -> Result<User, StoreError> {
    let i = Item(attrs);
    Ok(User {
        id: i.parsed("user_id", UserId::parse)?,
        email: i.parsed("email", Email::parse)?,
        name: i.s("name")?.to_owned(),
        password_hash: i.opt_s("password_hash").map(|h| Secret::new(h.to_owned())),
        created_at: i.time("created_at")?,
        two_factor: attrs.contains_key(crate::two_factor::TOTP_SECRET),
    })
}

pub(crate) fn email_marker(user: &User) -> Attrs {
    let mut item = key(email_pk(&user.email), "EMAIL");
    item.extend([
        ("type".into(), s("email")),
        ("user_id".into(), s(user.id.as_str())),
    ]);
    item
}

pub(crate) fn member_item(user: &UserId, m: &Membership, now: OffsetDateTime) -> Attrs {
    let mut item = key(org_pk(&m.org), format!("MEMBER#{user}"));
    item.extend([
        ("type".into(), s("member")),
        (GSI1_PK.into(), s(user_pk(user))),
        (GSI1_SK.into(), s(org_pk(&m.org))),
        ("org".into(), s(m.org.as_str())),
        ("user_id".into(), s(user.as_str())),
        ("role".into(), s(m.role.as_str())),
        (
            "customer_ids".into(),
            AttributeValue::L(m.customer_ids.iter().map(|c| s(c.as_str())).collect()),
        ),
        ("created_at".into(), time(now)),
    ]);
    item
}

fn read_member(attrs: &Attrs) -> Result<(UserId, Membership), StoreError> {
    let i = Item(attrs);
    let customer_ids = i
        .strings("customer_ids")?
        .iter()
        .map(|c| domain::CustomerId::parse(c))
        .collect::<Result<_, _>>()
        .map_err(|_| StoreError("stored membership has a malformed customer id".into()))?;
    Ok((
        i.parsed("user_id", UserId::parse)?,
        Membership {
            org: i.parsed("org", OrgSlug::parse)?,
            role: i.parsed("role", |r| Role::parse(r).ok_or(()))?,
            customer_ids,
        },
    ))
}

pub(crate) fn put_if_absent(table: &str, item: Attrs) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .build()
                .expect("put has table and item"),
        )
        .build()
}

/// How often a transaction that collided with another is tried.
const TRANSACTION_TRIES: u64 = 4;

/// A few milliseconds of jitter, so that collided transactions do not collide again.
fn rand_jitter() -> u8 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        % 20) as u8
}

/// Items found by a batch read, by (pk, sk).
pub(crate) type Found = HashMap<(String, String), Attrs>;

fn key_of(attrs: &Attrs) -> Option<(String, String)> {
    let item = Item(attrs);
    Some((item.opt_s(PK)?.to_owned(), item.opt_s(SK)?.to_owned()))
}

/// BatchGetItem takes at most this many keys per call.
const BATCH_GET_MAX: usize = 100;

impl Store {
    /// Reads items by key in one BatchGetItem per 100 keys (more only for what DynamoDB leaves
    /// unprocessed). Eventually consistent, at half the price: a counter a moment behind, or a
    /// name or settings a moment old, are fine where this is used.
    pub(crate) async fn batch_get(&self, wanted: Vec<Attrs>) -> Result<Found, StoreError> {
        let mut found = Found::new();
        for chunk in wanted.chunks(BATCH_GET_MAX) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(false)
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
                let items = out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default();
                for attrs in items {
                    if let Some(k) = key_of(&attrs) {
                        found.insert(k, attrs);
                    }
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
            }
        }
        Ok(found)
    }

    pub(crate) async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Attrs>, StoreError> {
        self.get_key(key(pk, sk)).await
    }

    /// One item by its key, strongly consistent.
    pub(crate) async fn get_key(&self, item_key: Attrs) -> Result<Option<Attrs>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        self.meter.record(Kind::Read, out.consumed_capacity());
        Ok(out.item)
    }

    /// Puts an item only if its key is free; Ok(false) when it was taken.
    pub(crate) async fn put_new(&self, item: Attrs) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        self.conditional("PutItem", result)
    }

    /// Runs a transaction; Err(Ok(codes)) when it was cancelled, with one reason code per action.
    /// A transaction that only collided with another one on the same item (a method that many
    /// schedules use, say) is tried again a few times: nothing of it was written.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), Result<Vec<String>, StoreError>> {
        let mut tries = 0;
        loop {
            tries += 1;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            let e = match result {
                Ok(_) => {
                    // DynamoDB Local's figure for a transaction is not AWS's (it has answered 6
                    // units for 2 items and for 7): count what AWS bills, 2 WCU per item of
                    // up to 1 KB (ours are), condition checks included.
                    self.meter
                        .record_units(Kind::Write, 2.0 * items.len() as f64);
                    return Ok(());
                }
                Err(e) => e,
            };
            self.meter.record(Kind::Write, None);
            match cancellation_codes(&e) {
                Some(codes) if codes.iter().any(|c| c == "ConditionalCheckFailed") => {
                    return Err(Ok(codes));
                }
                Some(codes)
                    if tries < TRANSACTION_TRIES
                        && codes.iter().any(|c| c == "TransactionConflict") =>
                {
                    let pause = 10 * tries + u64::from(rand_jitter());
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                _ => return Err(Err(sdk_error("TransactWriteItems", e))),
            }
        }
    }

    /// All items of one partition (or index partition) whose sort key starts with `prefix`.
    pub(crate) async fn query_prefix(
        &self,
        index: Option<&str>,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<Attrs>, StoreError> {
        let (pk_name, sk_name) = match index {
            Some(_) => (GSI1_PK, GSI1_SK),
            None => (PK, SK),
        };
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_names("#sk", sk_name)
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":prefix", s(prefix))
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            self.meter.record(Kind::Read, out.consumed_capacity());
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}

#[async_trait]
impl OrgRepo for Store {
    async fn create_org(
        &self,
        org: &Org,
        admin: &FirstAdmin,
        now: OffsetDateTime,
    ) -> Result<(), CreateOrgError> {
        let admin_id = match admin {
            FirstAdmin::New(user) => &user.id,
            FirstAdmin::Existing(id) => id,
        };
        let membership = Membership {
            org: org.slug.clone(),
            role: Role::Admin,
            customer_ids: vec![],
        };
        let mut items = vec![
            put_if_absent(&self.table, org_item(org, now)),
            put_if_absent(&self.table, member_item(admin_id, &membership, now)),
        ];
        match admin {
            FirstAdmin::New(user) => {
                items.push(put_if_absent(&self.table, user_item(user)));
                items.push(put_if_absent(&self.table, email_marker(user)));
            }
            FirstAdmin::Existing(id) => items.push(
                TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(user_pk(id), "USER")))
                            .condition_expression("attribute_exists(#pk)")
                            .expression_attribute_names("#pk", PK)
                            .build()
                            .expect("condition check has its fields"),
                    )
                    .build(),
            ),
        }
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(Ok(codes)) if condition_failed(&codes, 0) => Err(CreateOrgError::SlugTaken),
            Err(Ok(codes)) => match admin {
                FirstAdmin::New(_) if condition_failed(&codes, 3) => {
                    Err(CreateOrgError::EmailTaken)
                }
                FirstAdmin::Existing(_) if condition_failed(&codes, 2) => {
                    Err(CreateOrgError::UserMissing)
                }
                _ => Err(StoreError(format!("create org cancelled: {codes:?}")).into()),
            },
            Err(Err(e)) => Err(e.into()),
        }
    }

    async fn get_org(&self, slug: &OrgSlug) -> Result<Option<Org>, StoreError> {
        self.get_item(org_pk(slug), "ORG")
            .await?
            .map(|a| read_org(&a))
            .transpose()
    }

    async fn update_settings(
        &self,
        slug: &OrgSlug,
        settings: &OrgSettings,
    ) -> Result<bool, StoreError> {
        self.set_on_existing(key(org_pk(slug), "ORG"), settings_attrs(settings))
            .await
    }
}

#[async_trait]
impl UserRepo for Store {
    async fn create_user(&self, user: &User) -> Result<(), CreateUserError> {
        let items = vec![
            put_if_absent(&self.table, user_item(user)),
            put_if_absent(&self.table, email_marker(user)),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(Ok(codes)) if condition_failed(&codes, 1) => Err(CreateUserError::EmailTaken),
            Err(Ok(codes)) => Err(StoreError(format!("create user cancelled: {codes:?}")).into()),
            Err(Err(e)) => Err(e.into()),
        }
    }

    async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.get_item(user_pk(id), "USER")
            .await?
            .map(|a| read_user(&a))
            .transpose()
    }

    async fn get_users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        let wanted = ids.iter().map(|id| key(user_pk(id), "USER")).collect();
        let found = self.batch_get(wanted).await?;
        found.values().map(read_user).collect()
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let Some(marker) = self.get_item(email_pk(email), "EMAIL").await? else {
            return Ok(None);
        };
        let id = Item(&marker).parsed("user_id", UserId::parse)?;
        self.get_user(&id).await
    }

    /// One UpdateItem of the user item (1 write).
    async fn set_password_hash(
        &self,
        id: &UserId,
        hash: &Secret<String>,
    ) -> Result<bool, StoreError> {
        self.update_user(id, [("password_hash", s(hash.expose()))])
            .await
    }

    async fn notification_prefs(
        &self,
        id: &UserId,
    ) -> Result<Option<NotificationPrefs>, StoreError> {
        let Some(attrs) = self.get_item(user_pk(id), "USER").await? else {
            return Ok(None);
        };
        // Never set: on.
        let on = |name: &str| !matches!(attrs.get(name), Some(AttributeValue::Bool(false)));
        Ok(Some(NotificationPrefs {
            receipts: on(NOTIFY_RECEIPTS),
            payment_failures: on(NOTIFY_FAILURES),
            upcoming_debits: on(NOTIFY_UPCOMING),
            expiring_cards: on(NOTIFY_EXPIRING),
        }))
    }

    /// One UpdateItem of the user item (1 write).
    async fn set_notification_prefs(
        &self,
        id: &UserId,
        prefs: &NotificationPrefs,
    ) -> Result<bool, StoreError> {
        self.update_user(
            id,
            [
                (NOTIFY_RECEIPTS, AttributeValue::Bool(prefs.receipts)),
                (
                    NOTIFY_FAILURES,
                    AttributeValue::Bool(prefs.payment_failures),
                ),
                (NOTIFY_UPCOMING, AttributeValue::Bool(prefs.upcoming_debits)),
                (NOTIFY_EXPIRING, AttributeValue::Bool(prefs.expiring_cards)),
            ],
        )
        .await
    }
}

/// The user item's notification preferences (absent: on).
const NOTIFY_RECEIPTS: &str = "notify_receipts";
const NOTIFY_FAILURES: &str = "notify_payment_failures";
const NOTIFY_UPCOMING: &str = "notify_upcoming_debits";
const NOTIFY_EXPIRING: &str = "notify_expiring_cards";

impl Store {
    /// Sets attributes of an existing user item; Ok(false) when there is no such user.
    async fn update_user<const N: usize>(
        &self,
        id: &UserId,
        attrs: [(&str, AttributeValue); N],
    ) -> Result<bool, StoreError> {
        let attrs = attrs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value));
        self.set_on_existing(key(user_pk(id), "USER"), attrs).await
    }

    /// Sets attributes of an existing item (every name aliased, so reserved words are fine);
    /// Ok(false) when there is no such item.
    pub(crate) async fn set_on_existing(
        &self,
        item_key: Attrs,
        attrs: impl IntoIterator<Item = (String, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let mut sets = Vec::new();
        for (i, (name, value)) in attrs.into_iter().enumerate() {
            sets.push(format!("#a{i} = :a{i}"));
            update = update
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":a{i}"), value);
        }
        let result = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await;
        self.conditional("UpdateItem", result)
    }
}

#[async_trait]
impl MembershipRepo for Store {
    async fn add_member(
        &self,
        user: &UserId,
        membership: &Membership,
        now: OffsetDateTime,
    ) -> Result<(), AddMemberError> {
        if self.put_new(member_item(user, membership, now)).await? {
            Ok(())
        } else {
            Err(AddMemberError::AlreadyMember)
        }
    }

    async fn membership(
        &self,
        org: &OrgSlug,
        user: &UserId,
    ) -> Result<Option<Membership>, StoreError> {
        self.get_item(org_pk(org), &format!("MEMBER#{user}"))
            .await?
            .map(|a| read_member(&a).map(|(_, m)| m))
            .transpose()
    }

    async fn memberships_of_user(&self, user: &UserId) -> Result<Vec<Membership>, StoreError> {
        self.query_prefix(Some(GSI1), user_pk(user), "ORG#")
            .await?
            .iter()
            .map(|a| read_member(a).map(|(_, m)| m))
            .collect()
    }

    async fn members_of_org(&self, org: &OrgSlug) -> Result<Vec<(UserId, Membership)>, StoreError> {
        self.query_prefix(None, org_pk(org), "MEMBER#")
            .await?
            .iter()
            .map(read_member)
            .collect()
    }
}

fn read_api_key(attrs: &Attrs) -> Result<ApiKeyRecord, StoreError> {
    let i = Item(attrs);
    Ok(ApiKeyRecord {
        id: i.parsed("key_id", ApiKeyId::parse)?,
        org: i.parsed("org", OrgSlug::parse)?,
        label: i.s("label")?.to_owned(),
        secret_hash: i.s("secret_hash")?.to_owned(),
        created_at: i.time("created_at")?,
    })
}

fn org_api_keys_pk(org: &OrgSlug) -> String {
    format!("ORG#{org}#APIKEYS")
}

#[async_trait]
impl ApiKeyRepo for Store {
    async fn put_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut item = key(api_key_pk(&k.secret_hash), "APIKEY");
        item.extend([
            ("type".into(), s("api_key")),
            (GSI1_PK.into(), s(org_api_keys_pk(&k.org))),
            (GSI1_SK.into(), s(k.id.as_str())),
            ("key_id".into(), s(k.id.as_str())),
            ("org".into(), s(k.org.as_str())),
            ("label".into(), s(&k.label)),
            ("secret_hash".into(), s(&k.secret_hash)),
            ("created_at".into(), time(k.created_at)),
        ]);
        if self.put_new(item).await? {
            Ok(())
        } else {
            // 256 random bits never collide; this is the same key issued twice (a seed re-run).
            Err(StoreError("this API key exists already".into()))
        }
    }

    async fn find_api_key(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.get_item(api_key_pk(secret_hash), "APIKEY")
            .await?
            .map(|a| read_api_key(&a))
            .transpose()
    }

    async fn list_api_keys(&self, org: &OrgSlug) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.query_prefix(Some(GSI1), org_api_keys_pk(org), "key_")
            .await?
            .iter()
            .map(read_api_key)
            .collect()
    }

    async fn revoke_api_key(&self, org: &OrgSlug, id: &ApiKeyId) -> Result<bool, StoreError> {
        let keys = self.list_api_keys(org).await?;
        let Some(found) = keys.iter().find(|k| &k.id == id) else {
            return Ok(false);
        };
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(api_key_pk(&found.secret_hash), "APIKEY")))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        self.meter.record(Kind::Write, out.consumed_capacity());
        Ok(true)
    }
}
