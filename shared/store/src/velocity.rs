//! Failure counters `VELOCITY#<key> / W#<window>` (expiring by TTL): declined guest payments
//! and failed logins. A guest payment reads them together with the org in one BatchGetItem.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use domain::OrgSlug;
use time::OffsetDateTime;

use app::ports::{AttemptCounters, GuestGuard, Preflight, StoreError, WindowCounts};

use crate::Store;
use crate::directory::{Found, org_pk, read_org};
use crate::error::sdk_error;
use crate::item::{Attrs, Item, key, n};
use crate::meter::Kind;
use crate::table::TTL;

fn counter_key(key_text: &str, window: i64) -> Attrs {
    key(format!("VELOCITY#{key_text}"), format!("W#{window}"))
}

fn counter_keys(keys: &[String], window_index: i64) -> impl Iterator<Item = Attrs> + '_ {
    keys.iter().flat_map(move |k| {
        [
            counter_key(k, window_index),
            counter_key(k, window_index - 1),
        ]
    })
}

fn window_counts(
    found: &Found,
    keys: &[String],
    window_index: i64,
) -> Result<Vec<WindowCounts>, StoreError> {
    let count = |key_text: &str, window: i64| -> Result<u32, StoreError> {
        let k = (format!("VELOCITY#{key_text}"), format!("W#{window}"));
        match found.get(&k) {
            None => Ok(0),
            Some(attrs) => Ok(Item(attrs).u64("n")?.min(u64::from(u32::MAX)) as u32),
        }
    };
    keys.iter()
        .map(|k| {
            Ok(WindowCounts {
                current: count(k, window_index)?,
                previous: count(k, window_index - 1)?,
            })
        })
        .collect()
}

#[async_trait]
impl GuestGuard for Store {
    async fn preflight(
        &self,
        org: &OrgSlug,
        keys: &[String],
        window_index: i64,
    ) -> Result<Preflight, StoreError> {
        let mut wanted = vec![key(org_pk(org), "ORG")];
        wanted.extend(counter_keys(keys, window_index));
        let found = self.batch_get(wanted).await?;
        let org = found
            .get(&(org_pk(org), "ORG".to_owned()))
            .map(read_org)
            .transpose()?;
        Ok(Preflight {
            org,
            declines: window_counts(&found, keys, window_index)?,
        })
    }
}

#[async_trait]
impl AttemptCounters for Store {
    async fn counts(
        &self,
        keys: &[String],
        window_index: i64,
    ) -> Result<Vec<WindowCounts>, StoreError> {
        let found = self
            .batch_get(counter_keys(keys, window_index).collect())
            .await?;
        window_counts(&found, keys, window_index)
    }

    async fn count_failure(
        &self,
        keys: &[String],
        window_index: i64,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        for k in keys {
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(counter_key(k, window_index)))
                .update_expression("ADD #n :one SET #ttl = :ttl")
                .expression_attribute_names("#n", "n")
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":ttl", n(expires_at.unix_timestamp()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error("UpdateItem", e))?;
            self.meter.record(Kind::Write, out.consumed_capacity());
        }
        Ok(())
    }
}
