//! Sessions `SESSION#sha256(token) / SESSION`, expiring by TTL at their absolute end (DynamoDB
//! deletes lazily, so every read checks the times itself: `app::sessions::resolve`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
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

#[async_trait]
impl SessionRepo for Store {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
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
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        self.meter.record(Kind::Write, out.consumed_capacity());
        Ok(())
    }
}
