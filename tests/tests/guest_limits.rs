//! Card-testing defence: failed-payment velocity per invoice and per client address, counted in
//! DynamoDB Local, answered with 429 before the gateway is called.

use std::net::SocketAddr;

use axum::Router;
use http::StatusCode;
use paybridge_tests::{World, call_from};
use serde_json::{Value, json};

const DECLINES: &str = "4000000000000002";

async fn attempt(
    world: &World,
    router: &Router,
    from: &str,
    invoice: &str,
    card: &str,
) -> (StatusCode, http::HeaderMap, Value) {
    let token = world.card_token(card).await;
    let key = ulid::Ulid::new().to_string();
    let client: SocketAddr = from.parse().unwrap();
    call_from(
        router,
        Some(client),
        "POST",
        &format!("/api/pay/demo/{invoice}"),
        &[("idempotency-key", &key)],
        Some(json!({"token": token})),
    )
    .await
}

async fn charges_at_gateway(world: &World) -> usize {
    world.sandbox().charges(100).await.unwrap().len()
}

#[tokio::test]
async fn the_sixth_rapid_decline_on_one_invoice_gets_429_and_reaches_no_gateway() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-T", "25.00").await;
    let router = web::pay_now::router(world.services.clone());
    // Five declines from five addresses: the per-invoice count catches a spread-out attack.
    for i in 1..=5 {
        let (status, _, problem) = attempt(
            &world,
            &router,
            &format!("198.51.100.{i}:4000"),
            "INV-T",
            DECLINES,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::PAYMENT_REQUIRED,
            "attempt {i}: {problem}"
        );
    }
    assert_eq!(charges_at_gateway(&world).await, 5);

    let (status, headers, problem) = attempt(
        &world,
        &router,
        "198.51.100.6:4000",
        "INV-T",
        "4242424242424242",
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_eq!(problem["code"], "too_many_attempts");
    let wait: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        charges_at_gateway(&world).await,
        5,
        "the 429 charged nothing"
    );
    assert_eq!(world.balance("demo", "INV-T").await, "25.00");

    // Another invoice of the org is not held up by this one.
    world.add_invoice("demo", "INV-U", "5.00").await;
    let (status, _, _) = attempt(
        &world,
        &router,
        "198.51.100.7:4000",
        "INV-U",
        "4242424242424242",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn one_address_declined_across_many_invoices_is_stopped_and_others_are_not() {
    let world = World::new().await;
    let router = web::pay_now::router(world.services.clone());
    for i in 0..11 {
        world
            .add_invoice("demo", &format!("INV-A{i}"), "9.00")
            .await;
    }
    let tester = "203.0.113.50:5555";
    for i in 0..10 {
        let (status, _, _) = attempt(&world, &router, tester, &format!("INV-A{i}"), DECLINES).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "decline {i}");
    }
    let (status, _, problem) =
        attempt(&world, &router, tester, "INV-A10", "4242424242424242").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_eq!(charges_at_gateway(&world).await, 10);

    // A payer at another address pays the same invoice.
    let (status, _, payment) = attempt(
        &world,
        &router,
        "192.0.2.10:443",
        "INV-A10",
        "4242424242424242",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(world.balance("demo", "INV-A10").await, "0.00");
}

#[tokio::test]
async fn successful_payments_do_not_count_against_anyone() {
    let world = World::new().await;
    let router = web::pay_now::router(world.services.clone());
    for i in 0..12 {
        world
            .add_invoice("demo", &format!("INV-P{i}"), "1.00")
            .await;
        let (status, _, _) = attempt(
            &world,
            &router,
            "192.0.2.20:443",
            &format!("INV-P{i}"),
            "4242424242424242",
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "payment {i}");
    }
}
