//! EventBridgePublisher against moto's EventBridge: what a rule on the bus would receive.

use app::ports::{DomainEvent, EventPublisher};
use devtools::moto;
use domain::OrgSlug;
use notify::EventBridgePublisher;
use serde_json::json;

fn events(endpoint: &str) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(&devtools::aws_client_config(endpoint))
}

fn payment_succeeded() -> DomainEvent {
    DomainEvent {
        kind: "payment.succeeded".into(),
        org: OrgSlug::parse("northwind").unwrap(),
        detail: json!({
            "payment_id": "pay_01J9Z8",
            "invoice_number": "INV-0042",
            "amount": "150.00",
            "currency": "NZD",
        }),
        time: time::macros::datetime!(2026-11-02 03:04:05 UTC),
    }
}

#[tokio::test]
async fn an_event_reaches_the_bus_with_its_type_and_detail() {
    let endpoint = moto::shared_for_tests();
    let client = events(endpoint);
    // A bus of its own (never the default bus with moto: research/local-stack.md 3), and an
    // archive on it, which keeps what the bus received where moto shows it.
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let bus = format!("paybridge-{id}");
    let archive = format!("all-{id}");
    let bus_arn = client
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("create the bus")
        .event_bus_arn
        .expect("a bus ARN");
    client
        .create_archive()
        .archive_name(&archive)
        .event_source_arn(bus_arn)
        .send()
        .await
        .expect("archive the bus");
    let event = payment_succeeded();

    EventBridgePublisher::new(client, &bus)
        .publish(&event)
        .await
        .expect("EventBridge accepts the event");

    let received = moto::archived_events(endpoint, &archive).expect("read the archive");
    assert_eq!(received.len(), 1, "{received:#?}");
    let got = &received[0];
    assert_eq!(got["detail-type"], "payment.succeeded");
    assert_eq!(got["source"], "paybridge");
    assert_eq!(
        got["detail"],
        json!({
            "org": "northwind",
            "payment_id": "pay_01J9Z8",
            "invoice_number": "INV-0042",
            "amount": "150.00",
            "currency": "NZD",
        })
    );
    assert_eq!(
        got["time"].as_f64(),
        Some(event.time.unix_timestamp() as f64),
        "the event's own time, not the time it was sent: {got}"
    );
}

#[tokio::test]
async fn a_bus_that_does_not_exist_is_an_error() {
    let endpoint = moto::shared_for_tests();
    let bus = format!("missing-{}", ulid::Ulid::new()).to_lowercase();

    let error = EventBridgePublisher::new(events(endpoint), &bus)
        .publish(&payment_succeeded())
        .await
        .expect_err("there is no such bus");

    assert!(
        error
            .0
            .starts_with("PutEvents: ResourceNotFoundException: "),
        "{error}"
    );
    assert!(error.0.contains(&bus), "names the bus: {error}");
}
