//! Idempotency records: `IDEMP#<scope>#<key> / IDEMP`.
//!
//! A claim is one conditional put (the first durable write of a request). A refused put returns
//! the blocking record (ReturnValuesOnConditionCheckFailure=ALL_OLD), so deciding between replay,
//! 409, 422 and takeover costs no second read.

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::put_item::PutItemError,
    primitives::Blob,
    types::{AttributeValue, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure},
};
use time::OffsetDateTime;

use app::idempotency::{Claim, IN_PROGRESS_LOCK, IdempotencyKey, RETENTION, StoredResponse};
use app::ports::{IdempotencyStore, StoreError};

use crate::Store;
use crate::item::{Attrs, Item, key, n, s};
use crate::meter::Kind;
use crate::table::{PK, TTL};

const IN_PROGRESS: &str = "in_progress";
const COMPLETED: &str = "completed";

fn record_key(k: &IdempotencyKey) -> Attrs {
    key(format!("IDEMP#{}#{}", k.scope(), k.key()), "IDEMP")
}

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

impl Store {
    /// Takes over an abandoned claim by moving its lock forward, guarded by the lock seen.
    async fn take_over(
        &self,
        k: &IdempotencyKey,
        request_hash: &str,
        seen_lock: i64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(record_key(k)))
            .update_expression("SET lock_until = :lock")
            .condition_expression(
                "#state = :in_progress AND lock_until = :seen AND request_hash = :hash",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":seen", n(seen_lock))
            .expression_attribute_values(":hash", s(request_hash))
            .expression_attribute_values(":lock", n(millis(now + IN_PROGRESS_LOCK)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        self.conditional("UpdateItem (idempotency takeover)", result)
    }
}

#[async_trait]
impl IdempotencyStore for Store {
    async fn claim(
        &self,
        k: &IdempotencyKey,
        request_hash: &str,
        resource_id: &str,
        now: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        let expires = (now + RETENTION).unix_timestamp();
        // Bounded: each retry follows a takeover lost to another request, which then holds the key.
        for _ in 0..3 {
            let mut item = record_key(k);
            item.extend([
                ("type".into(), s("idempotency")),
                ("state".into(), s(IN_PROGRESS)),
                ("request_hash".into(), s(request_hash)),
                ("resource_id".into(), s(resource_id)),
                ("lock_until".into(), n(millis(now + IN_PROGRESS_LOCK))),
                ("expires_at".into(), n(expires)),
                (TTL.into(), n(expires)),
            ]);
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                // A record past its retention counts as absent: TTL deletion is lazy.
                .condition_expression("attribute_not_exists(#pk) OR expires_at < :now")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":now", n(now.unix_timestamp()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            let old = match result {
                Ok(out) => {
                    self.meter.record(Kind::Write, out.consumed_capacity());
                    return Ok(Claim::Fresh {
                        resource_id: resource_id.to_owned(),
                    });
                }
                Err(e) => {
                    self.meter.record(Kind::Write, None);
                    match e.into_service_error() {
                        PutItemError::ConditionalCheckFailedException(ccf) => {
                            ccf.item.unwrap_or_default()
                        }
                        other => {
                            return Err(StoreError(format!(
                                "PutItem (idempotency claim): {other}"
                            )));
                        }
                    }
                }
            };
            let old = Item(&old);
            if old.s("request_hash")? != request_hash {
                return Ok(Claim::Mismatch);
            }
            if old.s("state")? == COMPLETED {
                return Ok(Claim::Replay(StoredResponse {
                    status: old.u64("status_code")? as u16,
                    content_type: old.s("content_type")?.to_owned(),
                    body: old.bytes("body")?,
                }));
            }
            let lock = old.i64("lock_until")?;
            if lock > millis(now) {
                return Ok(Claim::InProgress);
            }
            if self.take_over(k, request_hash, lock, now).await? {
                return Ok(Claim::TakenOver {
                    resource_id: old.s("resource_id")?.to_owned(),
                });
            }
        }
        Ok(Claim::InProgress)
    }

    async fn complete(
        &self,
        k: &IdempotencyKey,
        request_hash: &str,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let expires = (now + RETENTION).unix_timestamp();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(record_key(k)))
            .update_expression(
                "SET #state = :completed, status_code = :status, content_type = :ct, body = :body, \
                 expires_at = :expires, #ttl = :expires REMOVE lock_until",
            )
            .condition_expression("#state = :in_progress AND request_hash = :hash")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":hash", s(request_hash))
            .expression_attribute_values(":status", n(response.status))
            .expression_attribute_values(":ct", s(&response.content_type))
            .expression_attribute_values(
                ":body",
                AttributeValue::B(Blob::new(response.body.clone())),
            )
            .expression_attribute_values(":expires", n(expires))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        if self.conditional("UpdateItem (idempotency complete)", out)? {
            Ok(())
        } else {
            Err(StoreError(
                "the idempotency claim was lost before completion (completed or released by another request)".into(),
            ))
        }
    }

    async fn release(&self, k: &IdempotencyKey, request_hash: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(record_key(k)))
            .condition_expression("#state = :in_progress AND request_hash = :hash")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":hash", s(request_hash))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        // A refused delete means the record is completed or taken over: nothing of ours to release.
        self.conditional("DeleteItem (idempotency release)", out)?;
        Ok(())
    }
}
