//! No webhook secret or signature reaches a log line: rotations and deliveries (good and bad)
//! run with every log line captured at trace (the SDK's wire logging capped as in production).
//! Alone in its binary: a captured subscriber and tests on other threads do not mix.

use gateways::signature;
use http::StatusCode;
use paybridge_tests::{NOW, World, call, call_text};
use serde_json::json;

async fn bank_payment(world: &World, router: &axum::Router) -> (String, String) {
    world.add_invoice("demo", "INV-1", "100.00").await;
    let token = world.bank_token("000123456789", "Pat Lee").await;
    let (status, _, payment) = call(
        router,
        "POST",
        "/api/pay/demo/INV-1",
        &[("idempotency-key", "key-1")],
        Some(json!({"token": token, "email": "pat@harbor.test"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    let id = payment["id"].as_str().unwrap().to_owned();
    let charge = world.sandbox().charges(10).await.unwrap()[0]
        .charge_id
        .clone();
    (id, charge)
}

fn sign(secret: &str, body: &str) -> String {
    signature::header_value(
        &[domain::Secret::new(secret.to_owned())],
        NOW.unix_timestamp(),
        body.as_bytes(),
    )
}

async fn post(router: &axum::Router, body: &str, signature: &str) -> StatusCode {
    let (status, _, _) = call_text(
        router,
        "POST",
        "/webhooks/demo/sandbox",
        &[("paybridge-signature", signature)],
        Some(("application/json", body.to_owned())),
    )
    .await;
    status
}

#[tokio::test]
async fn no_webhook_secret_or_signature_reaches_a_log_line() {
    let (captured, _logging) = paybridge_tests::logs::capture();
    let world = World::new().await;
    let first = world.rotate_webhook_secret("demo", None).await;
    let second = world.rotate_webhook_secret("demo", None).await;
    let router = world.local_router();
    let (id, charge) = bank_payment(&world, &router).await;
    let body = json!({
        "id": "evt_logs", "object": "event", "type": "charge.settled", "created": NOW.unix_timestamp(),
        "data": {"object": {"id": charge, "object": "charge", "reference": id,
                            "amount": 10000, "currency": "USD", "amount_refunded": 0}},
    })
    .to_string();
    let signature = sign(&first, &body);
    assert_eq!(post(&router, &body, &signature).await, StatusCode::OK);
    let wrong = sign("whsec_wrong_secret_for_logs", &body);
    assert_eq!(post(&router, &body, &wrong).await, StatusCode::UNAUTHORIZED);
    world.follow_ups_done().await;

    let logs = captured.text();
    assert!(logs.contains("webhook secret rotated"), "the capture works");
    paybridge_tests::logs::assert_absent(&logs, "the first webhook secret", &first);
    paybridge_tests::logs::assert_absent(&logs, "the second webhook secret", &second);
    let v1 = signature.split("v1=").nth(1).unwrap();
    paybridge_tests::logs::assert_absent(&logs, "a signature", v1);
}
