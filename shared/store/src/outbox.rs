//! The local stack's mail outbox and event log: what SES and EventBridge would have been given,
//! kept in the table so that a developer can read it (`/dev/outbox`, `/dev/events.json`) and a
//! restart keeps it. Never deployed.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use time::Duration;

use app::ports::{
    DevOutbox, DomainEvent, EmailMessage, EventPublisher, Mailer, NotifyError, SentMail, StoreError,
};

use crate::Store;
use crate::error::sdk_error;
use crate::item::{Attrs, Item, key, n, s, time};
use crate::meter::Kind;

const MAIL_PK: &str = "DEV#OUTBOX";
const EVENTS_PK: &str = "DEV#EVENTS";
/// Old mail goes by itself (DynamoDB's TTL); the outbox is a window, not an archive.
const KEEP: Duration = Duration::days(30);

/// Mailer and event publisher that write to the table instead of SES and EventBridge.
/// It has its own meter: what it writes is not part of what an operation costs in production.
#[derive(Clone)]
pub struct Outbox {
    store: Store,
}

impl Outbox {
    pub fn new(store: &Store) -> Self {
        Outbox {
            store: store.separately_metered(),
        }
    }

    async fn append(&self, pk: &str, body: String) -> Result<(), StoreError> {
        let now = time::OffsetDateTime::now_utc();
        // A ULID sort key keeps entries in the order they were written.
        let mut item = key(pk, format!("{}", ulid::Ulid::new()));
        item.insert("body".into(), s(body));
        item.insert("at".into(), time(now));
        item.insert("ttl".into(), n((now + KEEP).unix_timestamp()));
        let out = self
            .store
            .client
            .put_item()
            .table_name(&self.store.table)
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", e))?;
        self.store
            .meter
            .record(Kind::Write, out.consumed_capacity());
        Ok(())
    }

    async fn newest(&self, pk: &str, limit: u16) -> Result<Vec<Attrs>, StoreError> {
        let out = self
            .store
            .client
            .query()
            .table_name(&self.store.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", crate::table::PK)
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(false)
            .limit(i32::from(limit.max(1)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        self.store.meter.record(Kind::Read, out.consumed_capacity());
        Ok(out.items.unwrap_or_default())
    }
}

fn undecodable(e: serde_json::Error) -> StoreError {
    StoreError(format!("outbox entry is not readable: {e}"))
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, message: &EmailMessage) -> Result<(), NotifyError> {
        let body = serde_json::to_string(message).expect("messages serialize");
        self.append(MAIL_PK, body)
            .await
            .map_err(|e| NotifyError(e.0))
    }
}

#[async_trait]
impl EventPublisher for Outbox {
    async fn publish(&self, event: &DomainEvent) -> Result<(), NotifyError> {
        let body = serde_json::to_string(event).expect("events serialize");
        self.append(EVENTS_PK, body)
            .await
            .map_err(|e| NotifyError(e.0))
    }
}

#[async_trait]
impl DevOutbox for Outbox {
    async fn recent_mail(&self, limit: u16) -> Result<Vec<SentMail>, StoreError> {
        self.newest(MAIL_PK, limit)
            .await?
            .iter()
            .map(|attrs| {
                let item = Item(attrs);
                Ok(SentMail {
                    message: serde_json::from_str(item.s("body")?).map_err(undecodable)?,
                    sent_at: item.time("at")?,
                })
            })
            .collect()
    }

    async fn recent_events(&self, limit: u16) -> Result<Vec<DomainEvent>, StoreError> {
        self.newest(EVENTS_PK, limit)
            .await?
            .iter()
            .map(|attrs| serde_json::from_str(Item(attrs).s("body")?).map_err(undecodable))
            .collect()
    }
}
