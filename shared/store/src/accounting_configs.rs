//! An org's accounting connection: `ORG#o / ACCOUNTING`, the system's name and its settings and
//! secrets (Xero's rotating tokens, ConnectWise's keys) sealed like the gateway credentials,
//! bound to the org, the system and the item's version. The version guards token rotation: two
//! function instances that refresh at once cannot both store their pair (Xero's refresh tokens
//! are single-use, so the loser reads the winner's).

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use domain::{OrgSlug, Secret};
use time::OffsetDateTime;

use app::ports::{AccountingConfig, AccountingConfigs, StoreError};

use crate::Store;
use crate::directory::org_pk;
use crate::item::{Attrs, Item, key, n, s, time};

fn config_key(org: &OrgSlug) -> Attrs {
    key(org_pk(org), "ACCOUNTING")
}

fn context(org: &OrgSlug, system: &str, version: u64) -> String {
    format!("ORG#{org}/ACCOUNTING#{system}/{version}")
}

impl Store {
    fn sealed_credentials(
        &self,
        org: &OrgSlug,
        system: &str,
        version: u64,
        credentials: &Secret<String>,
    ) -> Result<(String, AttributeValue), StoreError> {
        let sealing = self.sealing_key()?;
        let sealed = sealing.seal(
            credentials.expose().as_bytes(),
            &context(org, system, version),
        );
        Ok((
            sealing.id().to_owned(),
            AttributeValue::B(Blob::new(sealed)),
        ))
    }
}

#[async_trait]
impl AccountingConfigs for Store {
    async fn put_accounting_config(
        &self,
        org: &OrgSlug,
        system: &str,
        credentials: &Secret<String>,
        now: OffsetDateTime,
    ) -> Result<AccountingConfig, StoreError> {
        // A new version above any before it, so that a rotation racing this write is refused.
        let version = match self.get_key(config_key(org)).await? {
            Some(attrs) => Item(&attrs).u64("version")? + 1,
            None => 1,
        };
        let (key_id, sealed) = self.sealed_credentials(org, system, version, credentials)?;
        let mut item = config_key(org);
        item.extend([
            ("type".into(), s("accounting_config")),
            ("org".into(), s(org.as_str())),
            ("system".into(), s(system)),
            ("version".into(), n(version)),
            ("key_id".into(), s(key_id)),
            ("credentials".into(), sealed),
            ("updated_at".into(), time(now)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        // The last connection an admin saved wins.
        self.conditional("PutItem (accounting config)", result)?;
        Ok(AccountingConfig {
            system: system.to_owned(),
            credentials: credentials.clone(),
            version,
            updated_at: now,
        })
    }

    async fn accounting_config(
        &self,
        org: &OrgSlug,
    ) -> Result<Option<AccountingConfig>, StoreError> {
        let Some(attrs) = self.get_key(config_key(org)).await? else {
            return Ok(None);
        };
        let i = Item(&attrs);
        let system = i.s("system")?.to_owned();
        let version = i.u64("version")?;
        let sealing = self.sealing_key()?;
        let sealed_with = i.s("key_id")?;
        if sealed_with != sealing.id() {
            return Err(StoreError(format!(
                "the accounting credentials of {org} were sealed with key {sealed_with}, and SEALING_KEY is key {}",
                sealing.id()
            )));
        }
        let plain = sealing.open(&i.bytes("credentials")?, &context(org, &system, version))?;
        let credentials = String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| StoreError("accounting credentials are not text".into()))?;
        Ok(Some(AccountingConfig {
            system,
            credentials,
            version,
            updated_at: i.time("updated_at")?,
        }))
    }

    async fn delete_accounting_config(&self, org: &OrgSlug) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(config_key(org)))
            .send()
            .await
            .map_err(|e| crate::error::sdk_error("DeleteItem (accounting config)", e))?;
        Ok(())
    }

    async fn update_accounting_credentials(
        &self,
        org: &OrgSlug,
        version: u64,
        credentials: &Secret<String>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let Some(current) = self.get_key(config_key(org)).await? else {
            return Ok(false);
        };
        let system = Item(&current).s("system")?.to_owned();
        let next = version + 1;
        let (key_id, sealed) = self.sealed_credentials(org, &system, next, credentials)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(config_key(org)))
            .update_expression(
                "SET credentials = :sealed, key_id = :key, version = :next, updated_at = :now",
            )
            .condition_expression("version = :version AND #system = :system")
            .expression_attribute_names("#system", "system")
            .expression_attribute_values(":sealed", sealed)
            .expression_attribute_values(":key", s(key_id))
            .expression_attribute_values(":next", n(next))
            .expression_attribute_values(":version", n(version))
            .expression_attribute_values(":system", s(&system))
            .expression_attribute_values(":now", time(now))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        self.conditional("UpdateItem (accounting tokens)", result)
    }
}
