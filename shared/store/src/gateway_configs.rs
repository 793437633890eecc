//! An org's gateway configuration: `ORG#o / GATEWAY`, one item naming the gateway, a hint of
//! its key (the last four characters, shown to admins) and the credentials sealed exactly as the
//! webhook secrets are (see `sealing`): bound to the org, the gateway and the configuration's
//! own id, so that a ciphertext copied to another org's item does not open.

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use domain::{OrgSlug, Secret};
use time::OffsetDateTime;

use app::ports::{GatewayConfig, GatewayConfigInfo, GatewayConfigs, StoreError};

use crate::Store;
use crate::directory::org_pk;
use crate::item::{Attrs, Item, key, s, time};

fn config_key(org: &OrgSlug) -> Attrs {
    key(org_pk(org), "GATEWAY")
}

/// What the sealed credentials are bound to: the item, the gateway, and this configuration's id.
fn context(org: &OrgSlug, gateway: &str, id: &str) -> String {
    format!("ORG#{org}/GATEWAY#{gateway}/{id}")
}

fn read_info(attrs: &Attrs) -> Result<GatewayConfigInfo, StoreError> {
    let i = Item(attrs);
    Ok(GatewayConfigInfo {
        gateway: i.s("gateway")?.to_owned(),
        hint: i.s("hint")?.to_owned(),
        created_at: i.time("created_at")?,
        updated_at: i.time("updated_at")?,
    })
}

#[async_trait]
impl GatewayConfigs for Store {
    async fn put_gateway_config(
        &self,
        org: &OrgSlug,
        gateway: &str,
        credentials: &Secret<String>,
        hint: &str,
        now: OffsetDateTime,
    ) -> Result<GatewayConfigInfo, StoreError> {
        let sealing = self.sealing_key()?;
        let created_at = match self.get_key(config_key(org)).await? {
            Some(attrs) => Item(&attrs).time("created_at")?,
            None => now,
        };
        let id = ulid::Ulid::new().to_string();
        let sealed = sealing.seal(credentials.expose().as_bytes(), &context(org, gateway, &id));
        let mut item = config_key(org);
        item.extend([
            ("type".into(), s("gateway_config")),
            ("org".into(), s(org.as_str())),
            ("gateway".into(), s(gateway)),
            ("hint".into(), s(hint)),
            ("key_id".into(), s(sealing.id())),
            ("credentials_id".into(), s(&id)),
            ("credentials".into(), AttributeValue::B(Blob::new(sealed))),
            ("created_at".into(), time(created_at)),
            ("updated_at".into(), time(now)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        // Unconditional: the last configuration an admin saved wins.
        self.conditional("PutItem (gateway config)", result)?;
        read_info(&item)
    }

    async fn gateway_config_info(
        &self,
        org: &OrgSlug,
    ) -> Result<Option<GatewayConfigInfo>, StoreError> {
        self.get_key(config_key(org))
            .await?
            .as_ref()
            .map(read_info)
            .transpose()
    }

    async fn gateway_config(&self, org: &OrgSlug) -> Result<Option<GatewayConfig>, StoreError> {
        let Some(attrs) = self.get_key(config_key(org)).await? else {
            return Ok(None);
        };
        let info = read_info(&attrs)?;
        let sealing = self.sealing_key()?;
        let i = Item(&attrs);
        let sealed_with = i.s("key_id")?;
        if sealed_with != sealing.id() {
            return Err(StoreError(format!(
                "the gateway credentials of {org} were sealed with key {sealed_with}, and SEALING_KEY is key {}",
                sealing.id()
            )));
        }
        let id = i.s("credentials_id")?;
        let plain = sealing.open(&i.bytes("credentials")?, &context(org, &info.gateway, id))?;
        let credentials = String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| StoreError("gateway credentials are not text".into()))?;
        Ok(Some(GatewayConfig { info, credentials }))
    }
}
