//! Sessions `SESSION#sha256(token) / SESSION`, expiring by TTL at their absolute end (DynamoDB
//! deletes lazily, so every read checks the times itself: `app::sessions::resolve`).
//!
//! Each session also has an entry in its user's partition, `USER#u / SESSION#sha256(token)`
//! (same TTL), so that "every session of this user" is one Query of that partition, strongly
//! consistent, never a scan. Writes per operation:
//! - sign-in: 2 (the index entry, then the session: two PutItems, 1 WCU each. Not a
//!   transaction, which would bill 2 WCU per item: written in this order, every live session
//!   has its entry, and a failure between the two leaves only an entry that expires by itself
//!   and names a session that does not exist);
//! - touch (at most every 5 minutes): 1, the session only;
//! - sign-out: 2 (the session, whose old image names the user, then the entry);
//! - ending sessions by user (password change, sign out everywhere): 1 Query, then 2 deletes
//!   per session in BatchWriteItem calls of up to 25.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{DeleteRequest, ReturnConsumedCapacity, ReturnValue, WriteRequest};
use domain::UserId;
use time::OffsetDateTime;

use app::ports::{Session, SessionRepo, StoreError};

use crate::Store;
use crate::error::sdk_error;
use crate::item::{Item, key, n, s, time};
use crate::meter::Kind;
use crate::table::TTL;

fn session_pk(hash: &str) -> String {
    format!("SESSION#{hash}")
}

fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

/// The session's entry in its user's partition.
fn index_key(user: &UserId, hash: &str) -> crate::item::Attrs {
    key(user_pk(user), session_pk(hash))
}

/// BatchWriteItem takes at most this many requests per call.
const BATCH_WRITE_MAX: usize = 25;

#[async_trait]
impl SessionRepo for Store {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut entry = index_key(&session.user, &session.token_hash);
        entry.extend([
            ("type".into(), s("session_index")),
            ("token_hash".into(), s(&session.token_hash)),
            (TTL.into(), n(session.absolute_expiry.unix_timestamp())),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(entry))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", e))?;
        self.meter.record(Kind::Write, put.consumed_capacity());
        let mut item = key(session_pk(&session.token_hash), "SESSION");
        item.extend([
            ("user_id".into(), s(session.user.as_str())),
            ("created_at".into(), time(session.created_at)),
            ("last_seen".into(), time(session.last_seen)),
            ("absolute_expiry".into(), time(session.absolute_expiry)),
            (TTL.into(), n(session.absolute_expiry.unix_timestamp())),
        ]);
        if self.put_new(item).await? {
            Ok(())
        } else {
            Err(StoreError("session token collision".into()))
        }
    }

    async fn get_session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        let Some(attrs) = self.get_item(session_pk(token_hash), "SESSION").await? else {
            return Ok(None);
        };
        let i = Item(&attrs);
        Ok(Some(Session {
            token_hash: token_hash.to_owned(),
            user: i.parsed("user_id", UserId::parse)?,
            created_at: i.time("created_at")?,
            last_seen: i.time("last_seen")?,
            absolute_expiry: i.time("absolute_expiry")?,
        }))
    }

    async fn touch_session(&self, token_hash: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(session_pk(token_hash), "SESSION")))
            .update_expression("SET last_seen = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", time(now))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        // A session deleted meanwhile (a logout) stays deleted.
        self.conditional("UpdateItem", result).map(|_| ())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(session_pk(token_hash), "SESSION")))
            .return_values(ReturnValue::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        self.meter.record(Kind::Write, out.consumed_capacity());
        let user = out
            .attributes
            .as_ref()
            .and_then(|old| Item(old).opt_s("user_id").map(UserId::parse));
        if let Some(Ok(user)) = user {
            let out = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(index_key(&user, token_hash)))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error("DeleteItem", e))?;
            self.meter.record(Kind::Write, out.consumed_capacity());
        }
        Ok(())
    }

    async fn sessions_of_user(&self, user: &UserId) -> Result<Vec<String>, StoreError> {
        self.query_prefix(None, user_pk(user), "SESSION#")
            .await?
            .iter()
            .map(|attrs| Item(attrs).s("token_hash").map(str::to_owned))
            .collect()
    }

    async fn delete_sessions(
        &self,
        user: &UserId,
        token_hashes: &[String],
    ) -> Result<(), StoreError> {
        let deletes: Vec<WriteRequest> = token_hashes
            .iter()
            .flat_map(|hash| [key(session_pk(hash), "SESSION"), index_key(user, hash)])
            .map(|k| {
                WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .set_key(Some(k))
                            .build()
                            .expect("a delete request has its key"),
                    )
                    .build()
            })
            .collect();
        for chunk in deletes.chunks(BATCH_WRITE_MAX) {
            let mut pending = chunk.to_vec();
            let mut tries = 0u64;
            while !pending.is_empty() {
                tries += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchWriteItem", e))?;
                self.meter.record(Kind::Write, out.consumed_capacity());
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if !pending.is_empty() {
                    if tries >= 8 {
                        return Err(StoreError("sessions left undeleted after retries".into()));
                    }
                    // DynamoDB asks for a pause before what it left unprocessed.
                    tokio::time::sleep(std::time::Duration::from_millis(20 * tries)).await;
                }
            }
        }
        Ok(())
    }
}
