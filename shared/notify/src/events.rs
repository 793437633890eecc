//! Domain events to an EventBridge bus: one PutEvents entry per event.

use app::ports::{DomainEvent, EventPublisher, NotifyError};
use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::{Map, Value};

use crate::error::sdk_error;

/// Every event's `source`, for rules to match on.
pub const EVENT_SOURCE: &str = "paybridge";

/// Publishes to one named bus (never the account's default bus, which AWS services share).
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    /// `bus` is the bus's name or ARN.
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventBridgePublisher {
            client,
            bus: bus.into(),
        }
    }
}

/// The event's detail fields with "org" beside them, so that rules can filter on the org. The
/// event's own org wins over a detail field of that name; a detail that is not an object (rules
/// can only match on object fields) is kept under "detail".
fn detail_json(event: &DomainEvent) -> String {
    let mut detail = match &event.detail {
        Value::Object(fields) => fields.clone(),
        Value::Null => Map::new(),
        other => Map::from_iter([("detail".to_owned(), other.clone())]),
    };
    detail.insert("org".to_owned(), Value::String(event.org.to_string()));
    Value::Object(detail).to_string()
}

/// PutEvents answers 200 even when it rejected entries: those are failures too.
fn check_entries(out: &PutEventsOutput) -> Result<(), NotifyError> {
    if out.failed_entry_count() == 0 {
        return Ok(());
    }
    let failed = out.entries().iter().find(|e| e.error_code().is_some());
    Err(NotifyError(format!(
        "PutEvents: entry rejected: {}: {}",
        failed
            .and_then(|e| e.error_code())
            .unwrap_or("unknown error"),
        failed
            .and_then(|e| e.error_message())
            .unwrap_or("no message")
    )))
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, event: &DomainEvent) -> Result<(), NotifyError> {
        let time = DateTime::from_nanos(event.time.unix_timestamp_nanos())
            .map_err(|e| NotifyError(format!("PutEvents: event time out of range: {e}")))?;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(&event.kind)
            .detail(detail_json(event))
            .time(time)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| sdk_error("PutEvents", e))?;
        check_entries(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;

    fn event(detail: Value) -> DomainEvent {
        DomainEvent {
            kind: "payment.succeeded".into(),
            org: domain::OrgSlug::parse("northwind").unwrap(),
            detail,
            time: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn detail_of(detail: Value) -> Value {
        serde_json::from_str(&detail_json(&event(detail))).unwrap()
    }

    #[test]
    fn detail_is_the_event_fields_and_the_org() {
        assert_eq!(
            detail_of(serde_json::json!({"payment": "p1", "amount": "10.00"})),
            serde_json::json!({"org": "northwind", "payment": "p1", "amount": "10.00"})
        );
        assert_eq!(
            detail_of(serde_json::json!({"org": "someone-else"})),
            serde_json::json!({"org": "northwind"}),
            "the event's org is the one published"
        );
        assert_eq!(
            detail_of(Value::Null),
            serde_json::json!({"org": "northwind"})
        );
        assert_eq!(
            detail_of(serde_json::json!([1, 2])),
            serde_json::json!({"org": "northwind", "detail": [1, 2]})
        );
    }

    #[test]
    fn a_rejected_entry_is_an_error_naming_its_code() {
        let out = PutEventsOutput::builder()
            .failed_entry_count(1)
            .entries(
                PutEventsResultEntry::builder()
                    .error_code("ThrottlingException")
                    .error_message("Rate exceeded")
                    .build(),
            )
            .build();
        let error = check_entries(&out).unwrap_err();
        assert_eq!(
            error.0,
            "PutEvents: entry rejected: ThrottlingException: Rate exceeded"
        );

        let accepted = PutEventsOutput::builder()
            .failed_entry_count(0)
            .entries(PutEventsResultEntry::builder().event_id("e1").build())
            .build();
        assert!(check_entries(&accepted).is_ok());
    }
}
