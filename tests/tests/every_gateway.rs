//! The payment flows, once per gateway (the sandbox, Stripe on localstripe, Authorize.Net on its
//! double): a guest's Pay Now with a browser token (the balance, once, and a decline that
//! leaves it), a payer's saved card paying an invoice and then auto-pay charging the next one
//! from the tick, and an admin's refunds (part, the rest, no more) followed by the gateway's own
//! notice of them, which changes nothing more.

use http::StatusCode;
use paybridge_tests::rig::{Card, Kind, Rig};
use paybridge_tests::{NOW, call};
use serde_json::{Value, json};

const PASSWORD: &str = "payer password 123";

/// Runs a scenario once per gateway, each in its own test.
macro_rules! for_each_gateway {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[tokio::test]
            async fn sandbox() {
                super::$scenario(Rig::new(Kind::Sandbox).await).await;
            }

            #[tokio::test]
            async fn stripe() {
                super::$scenario(Rig::new(Kind::Stripe).await).await;
            }

            #[tokio::test]
            async fn authorize_net() {
                super::$scenario(Rig::new(Kind::AuthorizeNet).await).await;
            }
        }
    };
}

for_each_gateway!(pay_now_charges_the_balance_once);
for_each_gateway!(saved_card_pays_and_auto_pay_charges_from_the_tick);
for_each_gateway!(refunds_part_then_the_rest_and_no_more);

async fn pay(rig: &Rig, invoice: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let path = format!("/api/pay/demo/{invoice}");
    let (status, _, answer) = call(
        &rig.world.local_router(),
        "POST",
        &path,
        &[("idempotency-key", key)],
        Some(body),
    )
    .await;
    (status, answer)
}

async fn pay_now_charges_the_balance_once(rig: Rig) {
    let world = &rig.world;
    world.add_invoice("demo", "INV-7", "250.00").await;
    let token = rig.card(Card::Approve).await;
    let body = json!({"token": token, "email": "pat@harbor.test"});
    let (status, payment) = pay(&rig, "INV-7", "k-7", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["gateway"], rig.gateway());
    assert_eq!(
        payment["amount"],
        json!({"amount": "250.00", "currency": "USD"})
    );
    assert_eq!(world.balance("demo", "INV-7").await, "0.00");

    // The same request again: the same payment, nothing charged twice.
    let (status, again) = pay(&rig, "INV-7", "k-7", body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["id"], payment["id"]);
    let receipts = world
        .outbox()
        .await
        .into_iter()
        .filter(|m| m.message.to.as_str() == "pat@harbor.test")
        .count();
    assert_eq!(receipts, 1, "one receipt");

    // A declined card leaves the balance owed.
    world.add_invoice("demo", "INV-8", "2.00").await;
    let token = rig.card(Card::Decline).await;
    let (status, problem) = pay(&rig, "INV-8", "k-8", json!({"token": token})).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{problem}");
    assert_eq!(problem["code"], "payment_declined");
    assert_eq!(problem["decline_code"], "card_declined");
    assert_eq!(world.balance("demo", "INV-8").await, "2.00");
}

async fn saved_card_pays_and_auto_pay_charges_from_the_tick(rig: Rig) {
    let world = &rig.world;
    let pat = world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;
    let card = rig.save_card(&pat, Card::Approve).await;
    world.add_invoice("demo", "INV-1", "120.00").await;
    let router = world.local_router();
    let (status, _, payment) = call(
        &router,
        "POST",
        "/api/pay/demo/INV-1",
        &[("idempotency-key", "saved-1"), ("cookie", &pat)],
        Some(json!({"method_id": card})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["gateway"], rig.gateway());
    assert_eq!(world.balance("demo", "INV-1").await, "0.00");

    // Auto-pay on the due date: the tick finds the next invoice and charges it on the day.
    let (status, _, enrolment) = call(
        &router,
        "PUT",
        "/api/me/orgs/demo/autopay/cust-1",
        &[("cookie", &pat)],
        Some(json!({"method_id": card, "rule": {"kind": "on_due_date"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    world.add_invoice("demo", "INV-2", "75.50").await; // due 2026-12-26
    let report = app::schedules::tick(&world.services, NOW, None)
        .await
        .unwrap();
    assert_eq!(report.auto_scheduled, 1, "{report:?}");
    let due = time::macros::datetime!(2026-12-26 18:00 UTC);
    world.set_now(due);
    let report = app::schedules::tick(&world.services, due, None)
        .await
        .unwrap();
    assert_eq!(report.paid, 1, "{report:?}");
    assert_eq!(world.balance("demo", "INV-2").await, "0.00");
    // Once: the next tick has nothing to charge.
    let later = due + time::Duration::hours(1);
    world.set_now(later);
    let report = app::schedules::tick(&world.services, later, None)
        .await
        .unwrap();
    assert_eq!(report.paid, 0, "{report:?}");
    let paid = world
        .outbox()
        .await
        .into_iter()
        .filter(|m| m.message.subject.contains("INV-2") && m.message.text.contains("75.50"))
        .count();
    assert!(paid >= 1, "a receipt for INV-2");
}

async fn refunds_part_then_the_rest_and_no_more(rig: Rig) {
    let world = &rig.world;
    world.add_invoice("demo", "INV-9", "100.00").await;
    let token = rig.card(Card::Approve).await;
    let body = json!({"token": token, "email": "pat@harbor.test"});
    let (status, payment) = pay(&rig, "INV-9", "k-9", body).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    let id = payment["id"].as_str().unwrap().to_owned();
    rig.settle();
    let refunds = format!("/api/orgs/demo/payments/{id}/refunds");
    let refund = |key: &'static str, body: Option<Value>| {
        let router = world.local_router();
        let auth = format!("Bearer {}", paybridge_tests::World::demo_key());
        let path = refunds.clone();
        async move {
            let (status, _, answer) = call(
                &router,
                "POST",
                &path,
                &[("authorization", &auth), ("idempotency-key", key)],
                body,
            )
            .await;
            (status, answer)
        }
    };

    let (status, first) = refund("r-1", Some(json!({"amount": "30.00"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["status"], "refunded");
    assert_eq!(first["refunded"]["amount"], "30.00");
    // The same request again (a retry): the same refund, not another.
    let (status, again) = refund("r-1", Some(json!({"amount": "30.00"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again, first);
    let (status, problem) = refund("r-2", Some(json!({"amount": "70.01"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "more_than_left");
    let (status, rest) = refund("r-3", None).await;
    assert_eq!(status, StatusCode::CREATED, "{rest}");
    assert_eq!(rest["refunded"]["amount"], "100.00");
    let (status, problem) = refund("r-4", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "not_refundable");

    // The gateway's own notice of the refunds arrives later: nothing moves again.
    let stored = world
        .services
        .payments
        .get_payment(
            &domain::OrgSlug::parse("demo").unwrap(),
            &domain::PaymentId::parse(&id).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let charge = stored.gateway_ref.clone().unwrap();
    let notice = rig.refund_notice(&charge, &id, 10_000, rest["refund_ref"].as_str().unwrap());
    let (status, answer) = rig.deliver(notice).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "already_there", "{answer}");
    assert_eq!(answer["status"], "refunded");

    let (status, history) = world
        .admin(
            "GET",
            &format!("/api/orgs/demo/payments/{id}/history"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut kinds: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["type"].as_str().unwrap(), h["outcome"].as_str().unwrap()))
        .collect();
    kinds.sort();
    let mut expected = [
        ("paybridge.refund", "applied"),
        ("paybridge.refund", "refund_raised"),
        (rig.refund_event(), "already_there"),
    ];
    expected.sort();
    assert_eq!(kinds, expected, "{history}");
    // The payer is told of each refund (with the total so far), once each.
    let told: Vec<String> = world
        .outbox()
        .await
        .into_iter()
        .filter(|m| m.message.subject == "Refund - invoice INV-9")
        .map(|m| m.message.text)
        .collect();
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(
        told.iter()
            .any(|t| t.contains("USD 30.00 has been refunded")),
        "{told:?}"
    );
    assert!(
        told.iter()
            .any(|t| t.contains("USD 100.00 has been refunded")),
        "{told:?}"
    );
}
