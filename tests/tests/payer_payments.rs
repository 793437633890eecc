//! A payer's payments: only their customers', newest first, searched by invoice, amount, dates
//! and status, a page at a time (`GET /api/me/orgs/{org}/payments`).

use http::StatusCode;
use paybridge_tests::{NOW, World, call};
use serde_json::{Value, json};
use time::Duration;

const PASSWORD: &str = "payer password 123";

async fn pay(world: &World, invoice: &str, card: &str) -> Value {
    let token = world.card_token(card).await;
    let (_, _, payment) = call(
        &web::pay_now::router(world.services.clone()),
        "POST",
        &format!("/api/pay/demo/{invoice}"),
        &[("idempotency-key", &format!("k-{invoice}-{card}"))],
        Some(json!({"token": token})),
    )
    .await;
    payment
}

async fn search(world: &World, cookie: &str, query: &str) -> (StatusCode, Value) {
    let (status, _, page) = call(
        &world.local_router(),
        "GET",
        &format!("/api/me/orgs/demo/payments{query}"),
        &[("cookie", cookie)],
        None,
    )
    .await;
    (status, page)
}

fn invoices(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["invoice_number"].as_str().unwrap(),
                p["status"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_payer_finds_their_customers_payments_and_only_theirs() {
    let world = World::new().await;
    world
        .payer("demo", "pat@harbor.test", &["c1", "c2"], PASSWORD)
        .await;
    world
        .payer("demo", "sam@other.test", &["c3"], PASSWORD)
        .await;
    // Three days of payments: c1, c2, c3's, and a decline.
    for (day, invoice, customer, total) in [
        (0, "INV-1", "c1", "100.00"),
        (1, "INV-2", "c2", "250.50"),
        (1, "INV-3", "c3", "70.00"),
        (2, "INV-4", "c1", "100.00"),
    ] {
        world.set_now(NOW + Duration::days(day));
        world.add_invoice_of("demo", invoice, total, customer).await;
    }
    world.set_now(NOW);
    pay(&world, "INV-1", "4242424242424242").await;
    world.set_now(NOW + Duration::days(1));
    pay(&world, "INV-2", "4242424242424242").await;
    pay(&world, "INV-3", "4242424242424242").await;
    world.set_now(NOW + Duration::days(2));
    let declined = pay(&world, "INV-4", "4000000000000002").await;
    assert_eq!(declined["decline_code"], "card_declined", "{declined}");
    world.set_now(NOW + Duration::days(2) + Duration::hours(1));
    pay(&world, "INV-4", "4242424242424242").await;
    // Signed in now (sessions do not outlive the days the clock moved).
    let pat = world.sign_in("pat@harbor.test", PASSWORD).await;
    let other = world.sign_in("sam@other.test", PASSWORD).await;

    let (status, page) = search(&world, &pat, "").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        invoices(&page),
        [
            "INV-4 succeeded",
            "INV-4 failed",
            "INV-2 succeeded",
            "INV-1 succeeded"
        ]
    );
    assert!(page["next_cursor"].is_null());
    // Sam sees only c3's.
    let (_, page) = search(&world, &other, "").await;
    assert_eq!(invoices(&page), ["INV-3 succeeded"]);

    // Filters.
    let (_, page) = search(&world, &pat, "?invoice=INV-4").await;
    assert_eq!(invoices(&page), ["INV-4 succeeded", "INV-4 failed"]);
    let (_, page) = search(&world, &pat, "?status=failed").await;
    assert_eq!(invoices(&page), ["INV-4 failed"]);
    let (_, page) = search(&world, &pat, "?amount=250.5").await;
    assert_eq!(invoices(&page), ["INV-2 succeeded"]);
    let from = (NOW + Duration::days(1)).date();
    let (_, page) = search(&world, &pat, &format!("?from={from}&to={from}")).await;
    assert_eq!(invoices(&page), ["INV-2 succeeded"]);
    let (_, page) = search(&world, &pat, "?amount=100.00&status=succeeded").await;
    assert_eq!(invoices(&page), ["INV-4 succeeded", "INV-1 succeeded"]);

    // Pages of two across both customers, then the rest; with a filter, pages stay in order.
    let (_, first) = search(&world, &pat, "?limit=2").await;
    assert_eq!(invoices(&first), ["INV-4 succeeded", "INV-4 failed"]);
    let cursor = first["next_cursor"].as_str().expect("more").to_owned();
    let (_, second) = search(&world, &pat, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(invoices(&second), ["INV-2 succeeded", "INV-1 succeeded"]);
    let (_, page) = search(&world, &pat, "?limit=1&status=succeeded").await;
    assert_eq!(invoices(&page), ["INV-4 succeeded"]);
    let cursor = page["next_cursor"].as_str().expect("more").to_owned();
    let (_, page) = search(
        &world,
        &pat,
        &format!("?limit=1&status=succeeded&cursor={cursor}"),
    )
    .await;
    assert_eq!(invoices(&page), ["INV-2 succeeded"]);

    // Bad filters are explained; strangers learn nothing.
    let (status, problem) = search(&world, &pat, "?status=paid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("succeeded"));
    let (status, _) = search(&world, &pat, "?from=2026-12-05&to=2026-12-01").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = call(
        &world.local_router(),
        "GET",
        "/api/me/orgs/demo/payments",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(
        &world.local_router(),
        "GET",
        "/api/me/orgs/acme/payments",
        &[("cookie", &pat)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
