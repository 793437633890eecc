//! Guests paying invoices through the pay-now router, over DynamoDB Local and the sandbox gateway.

use axum::Router;
use http::StatusCode;
use paybridge_tests::{World, call};
use serde_json::{Value, json};
use store::sandbox::SandboxCharge;

fn router(world: &World) -> Router {
    web::pay_now::router(world.services.clone())
}

async fn pay(router: &Router, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, json) = call(
        router,
        "POST",
        path,
        &[("idempotency-key", key)],
        Some(body),
    )
    .await;
    (status, json)
}

async fn charges(world: &World) -> Vec<SandboxCharge> {
    world.sandbox().charges(100).await.unwrap()
}

#[tokio::test]
async fn a_guest_pays_an_invoice_in_full() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-1", "1250.00").await;
    let router = router(&world);

    let (status, _, summary) = call(&router, "GET", "/api/pay/demo/INV-1", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        summary["amount_due"],
        json!({"amount": "1250.00", "currency": "USD"})
    );
    assert_eq!(summary["org_name"], "demo IT");
    assert_eq!(summary["status"], "open");
    assert_eq!(summary["allow_partial"], false);

    let token = world.card_token("4242 4242 4242 4242").await;
    let (status, payment) = pay(
        &router,
        "/api/pay/demo/INV-1",
        "k-1",
        json!({"token": token, "email": "Pat@Harbor.test"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(
        payment["amount"],
        json!({"amount": "1250.00", "currency": "USD"})
    );
    assert_eq!(payment["invoice_number"], "INV-1");

    assert_eq!(world.balance("demo", "INV-1").await, "0.00");
    let (_, _, summary) = call(&router, "GET", "/api/pay/demo/INV-1", &[], None).await;
    assert_eq!(summary["status"], "paid");
    let charged = charges(&world).await;
    assert_eq!(charged.len(), 1);
    assert_eq!(charged[0].amount.amount_string(), "1250.00");
    assert_eq!(charged[0].reference, payment["id"].as_str().unwrap());
    assert_eq!(charged[0].last4, "4242");

    // A paid invoice cannot be paid again.
    let token = world.card_token("4242424242424242").await;
    let (status, problem) = pay(
        &router,
        "/api/pay/demo/INV-1",
        "k-2",
        json!({"token": token}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "invoice_not_payable");
    assert_eq!(problem["invoice_status"], "paid");
    assert_eq!(charges(&world).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_is_one_charge_and_one_answer_however_often_it_is_sent() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-2", "89.95").await;
    let router = router(&world);
    let body = json!({"token": world.card_token("4242424242424242").await});

    let concurrent = (0..10).map(|_| {
        let (router, body) = (router.clone(), body.clone());
        tokio::spawn(async move { pay(&router, "/api/pay/demo/INV-2", "same-key", body).await })
    });
    let mut answers: Vec<(StatusCode, Value)> = futures::future::join_all(concurrent)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for _ in 0..10 {
        answers.push(pay(&router, "/api/pay/demo/INV-2", "same-key", body.clone()).await);
    }
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .map(|(_, b)| b)
        .collect();
    let busy = answers
        .iter()
        .filter(|(s, b)| *s == StatusCode::CONFLICT && b["code"] == "request_in_progress")
        .count();
    assert_eq!(created.len() + busy, 20, "{answers:?}");
    assert!(
        created.len() >= 10,
        "every sequential retry replays: {answers:?}"
    );
    assert!(
        created.iter().all(|b| *b == created[0]),
        "identical responses"
    );
    assert_eq!(charges(&world).await.len(), 1, "one charge at the gateway");
    assert_eq!(world.balance("demo", "INV-2").await, "0.00");

    // The same key with another body is refused and charges nothing.
    let other = json!({"token": world.card_token("4242424242424242").await});
    let (status, problem) = pay(&router, "/api/pay/demo/INV-2", "same-key", other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "idempotency_key_reused");
    assert_eq!(charges(&world).await.len(), 1);
}

#[tokio::test]
async fn the_amount_is_the_balance_and_a_posted_amount_can_only_lower_it_where_allowed() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-3", "100.00").await;
    let router = router(&world);
    let token = world.card_token("4242424242424242").await;

    let (status, problem) = pay(
        &router,
        "/api/pay/demo/INV-3",
        "k-a",
        json!({"token": token, "amount": "1000.00"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "amount_above_balance");
    let (status, problem) = pay(
        &router,
        "/api/pay/demo/INV-3",
        "k-b",
        json!({"token": token, "amount": "1.00"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "partial_not_allowed");
    let (status, problem) = pay(
        &router,
        "/api/pay/demo/INV-3",
        "k-c",
        json!({"token": token, "amount": "1.001"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["code"], "invalid_request");
    assert!(charges(&world).await.is_empty(), "nothing was charged");
    assert_eq!(world.balance("demo", "INV-3").await, "100.00");

    // Refused requests released their keys: the same key may now carry a valid payment.
    let (status, payment) = pay(
        &router,
        "/api/pay/demo/INV-3",
        "k-a",
        json!({"token": token, "amount": "100.00"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(world.balance("demo", "INV-3").await, "0.00");
}

#[tokio::test]
async fn partial_payments_lower_the_balance_by_exactly_the_amount_where_the_org_allows_them() {
    let world = World::new().await;
    let settings = domain::OrgSettings {
        allow_partial: true,
        ..Default::default()
    };
    world.add_org("flexi", settings).await;
    world.add_invoice("flexi", "F-1", "100.00").await;
    let router = router(&world);
    let (_, _, summary) = call(&router, "GET", "/api/pay/flexi/F-1", &[], None).await;
    assert_eq!(summary["allow_partial"], true);

    let token = world.card_token("5555555555554444").await;
    let (status, payment) = pay(
        &router,
        "/api/pay/flexi/F-1",
        "p-1",
        json!({"token": token, "amount": "30.05"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["amount"]["amount"], "30.05");
    assert_eq!(world.balance("flexi", "F-1").await, "69.95");
    let token = world.card_token("5555555555554444").await;
    let (status, problem) = pay(
        &router,
        "/api/pay/flexi/F-1",
        "p-2",
        json!({"token": token, "amount": "70.00"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "above the new balance: {problem}"
    );
    let (status, _) = pay(
        &router,
        "/api/pay/flexi/F-1",
        "p-3",
        json!({"token": token}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(world.balance("flexi", "F-1").await, "0.00");
    let total: u64 = charges(&world).await.iter().map(|c| c.amount.minor()).sum();
    assert_eq!(total, 10000, "charged exactly the invoice");
}

#[tokio::test]
async fn a_declined_card_records_a_failed_payment_and_leaves_the_balance() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-4", "40.00").await;
    let router = router(&world);
    for (card, code) in [
        ("4000000000000002", "card_declined"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000009979", "card_declined"),
        ("4000000000000069", "expired_card"),
    ] {
        let token = world.card_token(card).await;
        let key = format!("decline-{card}");
        let (status, problem) = pay(
            &router,
            "/api/pay/demo/INV-4",
            &key,
            json!({"token": token}),
        )
        .await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{problem}");
        assert_eq!(problem["code"], "payment_declined");
        let expected = if card == "4000000000009979" {
            "stolen_card"
        } else {
            code
        };
        assert_eq!(problem["decline_code"], expected);
        // The retry with the same key replays the decline; it does not charge again.
        let (again, replayed) = pay(
            &router,
            "/api/pay/demo/INV-4",
            &key,
            json!({"token": token}),
        )
        .await;
        assert_eq!((again, &replayed), (StatusCode::PAYMENT_REQUIRED, &problem));
    }
    assert_eq!(world.balance("demo", "INV-4").await, "40.00");
    let payments = world
        .services
        .payments
        .list_payments(&domain::OrgSlug::parse("demo").unwrap(), 10, None)
        .await
        .unwrap();
    assert_eq!(payments.items.len(), 4);
    assert!(
        payments
            .items
            .iter()
            .all(|p| p.status == domain::PaymentStatus::Failed)
    );

    // A spent token is refused like an expired form: enter the card again.
    let token = world.card_token("4242424242424242").await;
    pay(
        &router,
        "/api/pay/demo/INV-4",
        "ok-1",
        json!({"token": token}),
    )
    .await;
    world.add_invoice("demo", "INV-5", "5.00").await;
    let (status, problem) = pay(
        &router,
        "/api/pay/demo/INV-5",
        "ok-2",
        json!({"token": token}),
    )
    .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(problem["decline_code"], "invalid_token");
    assert_eq!(world.balance("demo", "INV-5").await, "5.00");
}

#[tokio::test]
async fn unknown_orgs_and_invoices_look_the_same_and_keys_are_required() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-6", "5.00").await;
    let router = router(&world);
    let (s1, _, unknown_invoice) = call(&router, "GET", "/api/pay/demo/NOPE", &[], None).await;
    let (s2, _, unknown_org) = call(&router, "GET", "/api/pay/nobody/INV-6", &[], None).await;
    let (s3, _, other_org) = call(&router, "GET", "/api/pay/acme/INV-6", &[], None).await;
    assert_eq!(
        (s1, s2, s3),
        (
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND
        )
    );
    assert_eq!(unknown_invoice, unknown_org);
    assert_eq!(unknown_org, other_org);

    let token = world.card_token("4242424242424242").await;
    let (status, _, problem) = call(
        &router,
        "POST",
        "/api/pay/demo/INV-6",
        &[],
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["code"], "idempotency_key_required");
    let (status, problem) = pay(&router, "/api/pay/acme/INV-6", "x", json!({"token": token})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert!(charges(&world).await.is_empty());
}
