//! An org's webhook secrets for one gateway: `ORG#o / WHSEC#<gateway>`, one item holding the
//! current secret and the previous one (with the end of its grace period), both sealed (see
//! `sealing`), so that a notification is verified with one read. A rotation rewrites the item,
//! guarded by the version read, so two rotations at once cannot both win.

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use domain::{OrgSlug, Secret};
use time::OffsetDateTime;

use app::ports::{RotateWrite, StoreError, WebhookSecretInfo, WebhookSecrets};

use crate::Store;
use crate::directory::org_pk;
use crate::item::{Attrs, Item, key, n, s, time};
use crate::sealing::SealingKey;
use crate::table::PK;

fn secrets_key(org: &OrgSlug, gateway: &str) -> Attrs {
    key(org_pk(org), format!("WHSEC#{gateway}"))
}

/// What a sealed secret is bound to: its item and its own id.
fn context(org: &OrgSlug, gateway: &str, id: &str) -> String {
    format!("ORG#{org}/WHSEC#{gateway}/{id}")
}

fn blob(bytes: Vec<u8>) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes))
}

fn read_info(attrs: &Attrs) -> Result<WebhookSecretInfo, StoreError> {
    let i = Item(attrs);
    let previous_until = match attrs.get("previous_until") {
        Some(_) => Some(
            OffsetDateTime::from_unix_timestamp(i.i64("previous_until")?)
                .map_err(|_| StoreError("bad grace period end".into()))?,
        ),
        None => None,
    };
    Ok(WebhookSecretInfo {
        gateway: i.s("gateway")?.to_owned(),
        current_id: i.s("current_id")?.to_owned(),
        current_since: i.time("current_since")?,
        previous_id: i.opt_s("previous_id").map(str::to_owned),
        previous_until,
    })
}

impl Store {
    /// The key-encryption key, or why there is none.
    pub(crate) fn sealing_key(&self) -> Result<&SealingKey, StoreError> {
        self.sealing.as_ref().ok_or_else(|| {
            StoreError(
                "webhook secrets, gateway credentials and two-factor secrets are sealed, and no sealing key is configured (SEALING_KEY_CIPHERTEXT with SEALING_KMS_KEY_ID, or SEALING_KEY)"
                    .into(),
            )
        })
    }

    fn open_secret(
        &self,
        attrs: &Attrs,
        org: &OrgSlug,
        gateway: &str,
        slot: &str,
    ) -> Result<Secret<String>, StoreError> {
        let key = self.sealing_key()?;
        let i = Item(attrs);
        let sealed_with = i.s("key_id")?;
        if sealed_with != key.id() {
            return Err(StoreError(format!(
                "the webhook secrets of {org} were sealed with key {sealed_with}, and SEALING_KEY is key {}",
                key.id()
            )));
        }
        let id = i.s(&format!("{slot}_id"))?;
        let plain = key.open(&i.bytes(slot)?, &context(org, gateway, id))?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| StoreError("a webhook secret is not text".into()))
    }
}

#[async_trait]
impl WebhookSecrets for Store {
    async fn active_secrets(
        &self,
        org: &OrgSlug,
        gateway: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Secret<String>>, StoreError> {
        let Some(attrs) = self.get_key(secrets_key(org, gateway)).await? else {
            return Ok(Vec::new());
        };
        let mut secrets = vec![self.open_secret(&attrs, org, gateway, "current")?];
        let info = read_info(&attrs)?;
        if info.previous_until.is_some_and(|until| until > now) {
            secrets.push(self.open_secret(&attrs, org, gateway, "previous")?);
        }
        Ok(secrets)
    }

    async fn secret_info(
        &self,
        org: &OrgSlug,
        gateway: &str,
    ) -> Result<Option<WebhookSecretInfo>, StoreError> {
        self.get_key(secrets_key(org, gateway))
            .await?
            .as_ref()
            .map(read_info)
            .transpose()
    }

    async fn rotate_secret(
        &self,
        org: &OrgSlug,
        gateway: &str,
        id: &str,
        secret: &Secret<String>,
        previous_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<RotateWrite, StoreError> {
        let sealing = self.sealing_key()?;
        let old = self.get_key(secrets_key(org, gateway)).await?;
        let mut item = secrets_key(org, gateway);
        item.extend([
            ("type".into(), s("webhook_secrets")),
            ("org".into(), s(org.as_str())),
            ("gateway".into(), s(gateway)),
            ("key_id".into(), s(sealing.id())),
            ("current_id".into(), s(id)),
            (
                "current".into(),
                blob(sealing.seal(secret.expose().as_bytes(), &context(org, gateway, id))),
            ),
            ("current_since".into(), time(now)),
        ]);
        let version = match &old {
            None => 0,
            Some(attrs) => Item(attrs).u64("version")?,
        };
        item.insert("version".into(), n(version + 1));
        // The current one stays accepted for the grace period (sealed as it was: it keeps its
        // own id); the previous one is retired now.
        if let Some(attrs) = &old
            && previous_until > now
        {
            let i = Item(attrs);
            item.insert("previous_id".into(), s(i.s("current_id")?));
            item.insert("previous".into(), blob(i.bytes("current")?));
            item.insert("previous_until".into(), n(previous_until.unix_timestamp()));
        }
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let put = match &old {
            None => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
            Some(_) => put
                .condition_expression("version = :seen")
                .expression_attribute_values(":seen", n(version)),
        };
        if self.conditional("PutItem (webhook secrets)", put.send().await)? {
            Ok(RotateWrite::Rotated(read_info(&item)?))
        } else {
            Ok(RotateWrite::Conflict)
        }
    }
}
