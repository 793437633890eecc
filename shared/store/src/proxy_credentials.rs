//! Credentials of the Authorize.Net-compatible proxy: `ORG#o / ANETCRED#<login>`, the login and
//! the SHA-256 of its Transaction Key (the key itself is shown once and never kept). The proxy's
//! URL names the org, so a request is one strongly consistent read of that item.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use domain::OrgSlug;

use app::ports::{ProxyCredential, ProxyCredentials, StoreError};

use crate::Store;
use crate::directory::org_pk;
use crate::item::{Attrs, Item, key, s, time};

const PREFIX: &str = "ANETCRED#";

fn credential_key(org: &OrgSlug, login: &str) -> Attrs {
    key(org_pk(org), format!("{PREFIX}{login}"))
}

fn read(attrs: &Attrs) -> Result<ProxyCredential, StoreError> {
    let i = Item(attrs);
    Ok(ProxyCredential {
        org: i.parsed("org", OrgSlug::parse)?,
        login: i.s("login")?.to_owned(),
        key_hash: i.s("key_hash")?.to_owned(),
        label: i.s("label")?.to_owned(),
        created_at: i.time("created_at")?,
    })
}

#[async_trait]
impl ProxyCredentials for Store {
    async fn put_proxy_credential(&self, c: &ProxyCredential) -> Result<bool, StoreError> {
        let mut item = credential_key(&c.org, &c.login);
        item.extend([
            ("type".into(), s("proxy_credential")),
            ("org".into(), s(c.org.as_str())),
            ("login".into(), s(&c.login)),
            ("key_hash".into(), s(&c.key_hash)),
            ("label".into(), s(&c.label)),
            ("created_at".into(), time(c.created_at)),
        ]);
        self.put_new(item).await
    }

    async fn proxy_credential(
        &self,
        org: &OrgSlug,
        login: &str,
    ) -> Result<Option<ProxyCredential>, StoreError> {
        self.get_key(credential_key(org, login))
            .await?
            .as_ref()
            .map(read)
            .transpose()
    }

    async fn proxy_credentials(&self, org: &OrgSlug) -> Result<Vec<ProxyCredential>, StoreError> {
        self.query_prefix(None, org_pk(org), PREFIX)
            .await?
            .iter()
            .map(read)
            .collect()
    }

    async fn revoke_proxy_credential(
        &self,
        org: &OrgSlug,
        login: &str,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(credential_key(org, login)))
            .condition_expression("attribute_exists(pk)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        self.conditional("DeleteItem (proxy credential)", out)
    }
}
