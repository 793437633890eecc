//! Gateway webhooks end to end: payments through the Pay Now API, the sandbox gateway's signed
//! events through `POST /sandbox/events` (or signed here, to tamper with), the webhook function,
//! DynamoDB Local, and the local outbox for emails and events.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use domain::Secret;
use http::StatusCode;
use paybridge_tests::{NOW, World, call, call_text};
use serde_json::{Value, json};

use app::ports::{EmailMessage, Mailer, NotifyError};
use gateways::signature;

/// A payment made through the Pay Now API, and its charge at the sandbox.
struct Paid {
    id: String,
    charge: String,
}

async fn pay(world: &World, router: &Router, invoice: &str, token: &str) -> Paid {
    let (status, _, payment) = call(
        router,
        "POST",
        &format!("/api/pay/demo/{invoice}"),
        &[("idempotency-key", &format!("key-{invoice}"))],
        Some(json!({"token": token, "email": "pat@harbor.test"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    let id = payment["id"].as_str().unwrap().to_owned();
    let charge = world
        .sandbox()
        .charges(100)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.reference == id)
        .expect("the sandbox's charge")
        .charge_id;
    world.follow_ups_done().await;
    Paid { id, charge }
}

/// A world with demo's webhook secret, an invoice, and a bank payment of it (pending).
async fn bank_payment(world: &World, router: &Router, invoice: &str, total: &str) -> Paid {
    world.add_invoice("demo", invoice, total).await;
    let token = world.bank_token("000123456789", "Pat Lee").await;
    let paid = pay(world, router, invoice, &token).await;
    assert_eq!(status_of(world, &paid).await, "pending");
    paid
}

async fn card_payment(world: &World, router: &Router, invoice: &str, total: &str) -> Paid {
    world.add_invoice("demo", invoice, total).await;
    let token = world.card_token("4242424242424242").await;
    let paid = pay(world, router, invoice, &token).await;
    assert_eq!(status_of(world, &paid).await, "succeeded");
    paid
}

async fn status_of(world: &World, paid: &Paid) -> String {
    let org = domain::OrgSlug::parse("demo").unwrap();
    let id = domain::PaymentId::parse(&paid.id).unwrap();
    let payment = world
        .services
        .payments
        .get_payment(&org, &id)
        .await
        .unwrap();
    payment.unwrap().status.as_str().to_owned()
}

/// The sandbox signs and delivers `kind` for the charge (with `event_id`, a redelivery).
async fn event(
    world: &World,
    router: &Router,
    paid: &Paid,
    kind: &str,
    event_id: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({"charge_id": paid.charge, "type": kind});
    if let Some(id) = event_id {
        body["event_id"] = json!(id);
    }
    world.sandbox_event(router, body).await
}

/// Emails to `to` whose subject starts with `subject`.
async fn mails(world: &World, to: &str, subject: &str) -> usize {
    world
        .outbox()
        .await
        .iter()
        .filter(|m| m.message.to.as_str() == to && m.message.subject.starts_with(subject))
        .count()
}

async fn events_of(world: &World, kind: &str) -> Vec<Value> {
    world
        .events()
        .await
        .into_iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.detail)
        .collect()
}

/// A body in the sandbox's format, for signing here.
fn sandbox_body(paid: &Paid, event_id: &str, kind: &str) -> String {
    json!({
        "id": event_id, "object": "event", "type": kind, "created": NOW.unix_timestamp(),
        "data": {"object": {"id": paid.charge, "object": "charge", "reference": paid.id,
                            "amount": 100000, "currency": "USD", "amount_refunded": 0}},
    })
    .to_string()
}

/// Posts a raw body with a signature header (None: without one) to an org's sandbox webhook.
async fn post_webhook(
    router: &Router,
    org: &str,
    body: &str,
    signature: Option<&str>,
) -> (StatusCode, Value) {
    let (status, _, answer) = post_webhook_with_headers(router, org, body, signature).await;
    (status, answer)
}

async fn post_webhook_with_headers(
    router: &Router,
    org: &str,
    body: &str,
    signature: Option<&str>,
) -> (StatusCode, http::HeaderMap, Value) {
    let headers: Vec<(&str, &str)> = signature
        .map(|s| ("paybridge-signature", s))
        .into_iter()
        .collect();
    let (status, headers, text) = call_text(
        router,
        "POST",
        &format!("/webhooks/{org}/sandbox"),
        &headers,
        Some(("application/json", body.to_owned())),
    )
    .await;
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn sign(secret: &str, at: time::OffsetDateTime, body: &str) -> String {
    signature::header_value(
        &[Secret::new(secret.to_owned())],
        at.unix_timestamp(),
        body.as_bytes(),
    )
}

#[tokio::test]
async fn a_bank_debit_settles_by_webhook_and_its_receipt_is_emailed_once() {
    let world = World::new().await;
    world.rotate_webhook_secret("demo", None).await;
    let router = world.local_router();
    let paid = bank_payment(&world, &router, "INV-1", "1250.00").await;
    assert_eq!(world.balance("demo", "INV-1").await, "0.00");
    assert_eq!(
        mails(&world, "pat@harbor.test", "Payment submitted").await,
        1
    );

    let (status, answer) = event(
        &world,
        &router,
        &paid,
        "charge.settled",
        Some("evt_settle_1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "applied");
    assert_eq!(answer["status"], "settled");
    world.follow_ups_done().await;
    assert_eq!(status_of(&world, &paid).await, "settled");
    assert_eq!(
        mails(&world, "pat@harbor.test", "Receipt from demo IT").await,
        1
    );
    let settled = events_of(&world, "payment.settled").await;
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0]["payment_id"], paid.id.as_str());
    assert_eq!(settled[0]["previous_status"], "pending");
    assert_eq!(settled[0]["gateway_event_id"], "evt_settle_1");

    // The same event again: answered, nothing changes, nothing is sent.
    let before = (world.outbox().await.len(), world.events().await.len());
    for _ in 0..3 {
        let (status, answer) = event(
            &world,
            &router,
            &paid,
            "charge.settled",
            Some("evt_settle_1"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["outcome"], "duplicate");
    }
    world.follow_ups_done().await;
    app::webhooks::run_due_follow_ups(&world.services, 100)
        .await
        .unwrap();
    assert_eq!(
        (world.outbox().await.len(), world.events().await.len()),
        before
    );
    assert_eq!(world.balance("demo", "INV-1").await, "0.00");

    // The payment's history says what happened, for the org's admin.
    let auth = format!("Bearer {}", World::demo_key());
    let path = format!("/api/orgs/demo/payments/{}/history", paid.id);
    let (status, _, history) = call(&router, "GET", &path, &[("authorization", &auth)], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        history,
        json!([{
            "at": "2026-11-26T12:00:00Z", "event_id": "evt_settle_1", "type": "charge.settled",
            "reported": "settled", "status_before": "pending", "status_after": "settled",
            "outcome": "applied", "refunded": null,
        }])
    );
}

#[tokio::test]
async fn bad_or_stale_signatures_get_401_and_change_nothing() {
    let world = World::new().await;
    let secret = world.rotate_webhook_secret("demo", None).await;
    let router = world.local_router();
    let paid = bank_payment(&world, &router, "INV-2", "100.00").await;
    let body = sandbox_body(&paid, "evt_sig_1", "charge.settled");

    let mut one_byte = body.clone().into_bytes();
    let at = body.find("settled").unwrap();
    one_byte[at] = b'S';
    let one_byte = String::from_utf8(one_byte).unwrap();
    let attempts = [
        (
            "a body changed by one byte",
            one_byte,
            Some(sign(&secret, NOW, &body)),
        ),
        (
            "a wrong secret",
            body.clone(),
            Some(sign("whsec_not_the_orgs", NOW, &body)),
        ),
        (
            "a timestamp 6 minutes old",
            body.clone(),
            Some(sign(&secret, NOW - time::Duration::minutes(6), &body)),
        ),
        (
            "a timestamp 6 minutes ahead",
            body.clone(),
            Some(sign(&secret, NOW + time::Duration::minutes(6), &body)),
        ),
        ("no signature", body.clone(), None),
        (
            "a malformed signature",
            body.clone(),
            Some("t=abc,v1=zz".to_owned()),
        ),
    ];
    for (what, sent, signature) in attempts {
        let (status, headers, problem) =
            post_webhook_with_headers(&router, "demo", &sent, signature.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {problem}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{what}"
        );
        assert_eq!(problem["code"], "invalid_signature", "{what}");
    }
    assert_eq!(status_of(&world, &paid).await, "pending");
    assert!(events_of(&world, "payment.settled").await.is_empty());

    // Nothing was recorded either: the genuine event still applies, once.
    let (status, answer) =
        post_webhook(&router, "demo", &body, Some(&sign(&secret, NOW, &body))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "applied");
    assert_eq!(status_of(&world, &paid).await, "settled");
}

#[tokio::test]
async fn a_rotated_secret_works_through_its_grace_period_and_not_after() {
    let world = World::new().await;
    let router = world.local_router();
    let first = world.rotate_webhook_secret("demo", None).await;
    let paid = bank_payment(&world, &router, "INV-3", "100.00").await;
    assert!(first.starts_with("whsec_") && first.len() == 49, "{first}");
    let second = world.rotate_webhook_secret("demo", Some(24)).await;
    assert_ne!(first, second);

    // The admin API lists the secrets' ids and dates, never their values.
    let auth = format!("Bearer {}", World::demo_key());
    let (status, _, listed) = call(
        &router,
        "GET",
        "/api/orgs/demo/webhook-secrets",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed[0]["previous_valid_until"], "2026-11-27T12:00:00Z");
    assert_eq!(
        listed[0]["webhook_url"],
        "http://127.0.0.1:3000/webhooks/demo/sandbox"
    );
    let text = listed.to_string();
    assert!(!text.contains(&first) && !text.contains(&second), "{text}");

    // In the grace period the old secret's signature still works.
    let body = sandbox_body(&paid, "evt_rot_1", "charge.settled");
    let (status, answer) =
        post_webhook(&router, "demo", &body, Some(&sign(&first, NOW, &body))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "applied");

    // After it, the old secret is retired; the new one works.
    let later = NOW + time::Duration::hours(25);
    world.set_now(later);
    let body = sandbox_body(&paid, "evt_rot_2", "charge.returned");
    let (status, _) = post_webhook(&router, "demo", &body, Some(&sign(&first, later, &body))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(status_of(&world, &paid).await, "settled");
    let (status, answer) =
        post_webhook(&router, "demo", &body, Some(&sign(&second, later, &body))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(status_of(&world, &paid).await, "returned");

    // A rotation with no grace period retires the one before at once (after a leak, say).
    let third = world.rotate_webhook_secret("demo", Some(0)).await;
    let body = sandbox_body(&paid, "evt_rot_3", "charge.returned");
    let (status, _) =
        post_webhook(&router, "demo", &body, Some(&sign(&second, later, &body))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, answer) =
        post_webhook(&router, "demo", &body, Some(&sign(&third, later, &body))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["outcome"], "already_there");
}

#[tokio::test]
async fn events_out_of_order_never_move_a_payment_backwards() {
    let world = World::new().await;
    world.rotate_webhook_secret("demo", None).await;
    let router = world.local_router();

    // Succeeded after refunded: it stays refunded.
    let card = card_payment(&world, &router, "INV-4", "100.00").await;
    let (_, answer) = event(&world, &router, &card, "charge.refunded", None).await;
    assert_eq!(answer["outcome"], "applied");
    let (_, answer) = event(&world, &router, &card, "charge.succeeded", None).await;
    assert_eq!(answer["outcome"], "passed");
    assert_eq!(status_of(&world, &card).await, "refunded");

    // Settled before succeeded (a card): it ends settled.
    let early = card_payment(&world, &router, "INV-5", "100.00").await;
    event(&world, &router, &early, "charge.settled", None).await;
    let (_, answer) = event(&world, &router, &early, "charge.succeeded", None).await;
    assert_eq!(answer["outcome"], "passed");
    assert_eq!(status_of(&world, &early).await, "settled");

    // A bank debit returned, then the late settlement: it stays returned, and the balance is
    // back once.
    let bank = bank_payment(&world, &router, "INV-6", "100.00").await;
    let (_, answer) = event(&world, &router, &bank, "charge.returned", None).await;
    assert_eq!(answer["outcome"], "applied");
    let (_, answer) = event(&world, &router, &bank, "charge.settled", None).await;
    assert_eq!(answer["outcome"], "passed");
    assert_eq!(status_of(&world, &bank).await, "returned");
    assert_eq!(world.balance("demo", "INV-6").await, "100.00");

    // A refunded payment reported returned: another branch, recorded, nothing moves.
    let (_, answer) = event(&world, &router, &card, "charge.returned", None).await;
    assert_eq!(answer["outcome"], "contradicts");
    assert_eq!(status_of(&world, &card).await, "refunded");
    assert_eq!(world.balance("demo", "INV-4").await, "0.00");

    // Every event is in the payment's history, moved or not.
    let org = domain::OrgSlug::parse("demo").unwrap();
    let id = domain::PaymentId::parse(&card.id).unwrap();
    let history = world
        .services
        .webhooks
        .payment_history(&org, &id)
        .await
        .unwrap();
    let outcomes: Vec<&str> = history.iter().map(|h| h.outcome.as_str()).collect();
    assert_eq!(outcomes, ["applied", "passed", "contradicts"]);
    assert!(history.iter().skip(1).all(|h| h.before == h.after));
}

#[tokio::test]
async fn a_returned_debit_restores_the_balance_once_and_tells_the_payer_and_the_admins() {
    let world = World::new().await;
    world.rotate_webhook_secret("demo", None).await;
    let router = world.local_router();
    let paid = bank_payment(&world, &router, "INV-7", "420.00").await;
    event(&world, &router, &paid, "charge.settled", None).await;
    world.follow_ups_done().await;
    assert_eq!(world.balance("demo", "INV-7").await, "0.00");

    // Delivered three times, two of them at once.
    let body = json!({"charge_id": paid.charge, "type": "charge.returned", "event_id": "evt_ret"});
    let (a, b) = tokio::join!(
        world.sandbox_event(&router, body.clone()),
        world.sandbox_event(&router, body.clone())
    );
    let (c, _) = world.sandbox_event(&router, body).await;
    assert!([a.0, b.0, c].iter().all(|s| *s == StatusCode::OK));
    let mut outcomes = [a.1["outcome"].clone(), b.1["outcome"].clone()];
    outcomes.sort_by_key(|o| o.to_string());
    assert_eq!(outcomes, [json!("applied"), json!("duplicate")]);
    world.follow_ups_done().await;

    assert_eq!(status_of(&world, &paid).await, "returned");
    assert_eq!(world.balance("demo", "INV-7").await, "420.00");
    let (_, _, invoice) = call(
        &router,
        "GET",
        "/api/orgs/demo/invoices/INV-7",
        &[("authorization", &format!("Bearer {}", World::demo_key()))],
        None,
    )
    .await;
    assert_eq!(invoice["status"], "open");
    assert_eq!(
        mails(&world, "pat@harbor.test", "Bank payment returned").await,
        1
    );
    assert_eq!(
        mails(&world, "admin@demo.test", "Bank payment returned").await,
        1
    );
    let returned = events_of(&world, "payment.returned").await;
    assert_eq!(returned.len(), 1);
    assert_eq!(
        returned[0]["balance_restored"],
        json!({"amount": "420.00", "currency": "USD"})
    );
    let mail = world.outbox().await;
    let admin = mail
        .iter()
        .find(|m| m.message.to.as_str() == "admin@demo.test")
        .unwrap();
    assert!(
        admin
            .message
            .text
            .contains("USD 420.00 is owing on the invoice again"),
        "{}",
        admin.message.text
    );

    // The invoice can be paid again, in full.
    let token = world.card_token("4242424242424242").await;
    let (status, _, again) = call(
        &router,
        "POST",
        "/api/pay/demo/INV-7",
        &[("idempotency-key", "again")],
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(world.balance("demo", "INV-7").await, "0.00");
}

#[tokio::test]
async fn a_lost_dispute_restores_the_balance_and_a_won_one_does_not() {
    let world = World::new().await;
    world.rotate_webhook_secret("demo", None).await;
    let router = world.local_router();
    let lost = card_payment(&world, &router, "INV-8", "80.00").await;
    let won = card_payment(&world, &router, "INV-9", "90.00").await;
    for paid in [&lost, &won] {
        let (_, answer) = event(&world, &router, paid, "charge.disputed", None).await;
        assert_eq!(answer["status"], "disputed");
    }
    event(&world, &router, &lost, "charge.dispute.lost", None).await;
    event(&world, &router, &won, "charge.dispute.won", None).await;
    world.follow_ups_done().await;

    assert_eq!(status_of(&world, &lost).await, "dispute_lost");
    assert_eq!(world.balance("demo", "INV-8").await, "80.00");
    assert_eq!(status_of(&world, &won).await, "dispute_won");
    assert_eq!(world.balance("demo", "INV-9").await, "0.00");
    assert_eq!(
        mails(&world, "pat@harbor.test", "Payment reversed").await,
        1
    );
    assert_eq!(
        mails(&world, "admin@demo.test", "Payment reversed").await,
        1
    );
    assert_eq!(events_of(&world, "payment.dispute_lost").await.len(), 1);
    assert_eq!(events_of(&world, "payment.dispute_won").await.len(), 1);
    assert_eq!(events_of(&world, "payment.disputed").await.len(), 2);
}

#[tokio::test]
async fn refunds_may_be_partial_and_only_rise() {
    let world = World::new().await;
    world.rotate_webhook_secret("demo", None).await;
    let router = world.local_router();
    let paid = card_payment(&world, &router, "INV-10", "100.00").await;
    let refund = |amount: &str| json!({"charge_id": paid.charge, "type": "charge.refunded", "amount": amount});
    let (_, answer) = world.sandbox_event(&router, refund("30.00")).await;
    assert_eq!(answer["outcome"], "applied");
    let (_, answer) = world.sandbox_event(&router, refund("20.00")).await;
    assert_eq!(answer["outcome"], "refund_raised");
    world.follow_ups_done().await;
    let refunded: Vec<Value> = events_of(&world, "payment.refunded")
        .await
        .into_iter()
        .map(|d| d["refunded"]["amount"].clone())
        .collect();
    assert_eq!(refunded, [json!("50.00"), json!("30.00")], "newest first");
    assert_eq!(
        world.balance("demo", "INV-10").await,
        "0.00",
        "a refund is the org's own act"
    );

    // An older event (a smaller total) arriving late changes nothing.
    let body = sandbox_body(&paid, "evt_old_refund", "charge.refunded")
        .replace("\"amount_refunded\":0", "\"amount_refunded\":3000");
    let secret = world
        .services
        .webhook_secrets
        .active_secrets(&domain::OrgSlug::parse("demo").unwrap(), "sandbox", NOW)
        .await
        .unwrap()
        .remove(0);
    let (_, answer) = post_webhook(
        &router,
        "demo",
        &body,
        Some(&sign(secret.expose(), NOW, &body)),
    )
    .await;
    assert_eq!(answer["outcome"], "already_there");
    let org = domain::OrgSlug::parse("demo").unwrap();
    let id = domain::PaymentId::parse(&paid.id).unwrap();
    let history = world
        .services
        .webhooks
        .payment_history(&org, &id)
        .await
        .unwrap();
    assert_eq!(history.last().unwrap().refunded, None);
    assert_eq!(history[1].refunded.unwrap().amount_string(), "50.00");
}

#[tokio::test]
async fn another_orgs_url_cannot_move_this_orgs_payment() {
    let world = World::new().await;
    let demo_secret = world.rotate_webhook_secret("demo", None).await;
    let acme_secret = world.rotate_webhook_secret("acme", None).await;
    let router = world.local_router();
    let paid = bank_payment(&world, &router, "INV-11", "100.00").await;
    let body = sandbox_body(&paid, "evt_cross", "charge.returned");

    // Demo's genuine event sent to acme's URL: acme's secret does not verify it.
    let (status, _) = post_webhook(
        &router,
        "acme",
        &body,
        Some(&sign(&demo_secret, NOW, &body)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Acme signs an event naming demo's payment: acme has no such payment.
    let (status, problem) = post_webhook(
        &router,
        "acme",
        &body,
        Some(&sign(&acme_secret, NOW, &body)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["code"], "unknown_payment");
    // An org that does not exist is refused like a bad signature.
    let (status, _) = post_webhook(
        &router,
        "nobody",
        &body,
        Some(&sign(&demo_secret, NOW, &body)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(status_of(&world, &paid).await, "pending");
    assert_eq!(world.balance("demo", "INV-11").await, "0.00");

    // Acme's attempt used up no event id of demo's: demo's own delivery of it still applies.
    let (status, answer) = post_webhook(
        &router,
        "demo",
        &body,
        Some(&sign(&demo_secret, NOW, &body)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "applied");
    assert_eq!(status_of(&world, &paid).await, "returned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_of_one_event_make_one_transition() {
    let world = World::new().await;
    world.rotate_webhook_secret("demo", None).await;
    let router = world.local_router();
    let paid = bank_payment(&world, &router, "INV-12", "100.00").await;
    let body = json!({"charge_id": paid.charge, "type": "charge.settled", "event_id": "evt_race"});

    // Two at once, then ten more of which eight at once.
    let (a, b) = tokio::join!(
        world.sandbox_event(&router, body.clone()),
        world.sandbox_event(&router, body.clone())
    );
    let mut answers = vec![a, b];
    let world = Arc::new(world);
    let burst = (0..8).map(|_| {
        let (world, router, body) = (world.clone(), router.clone(), body.clone());
        tokio::spawn(async move { world.sandbox_event(&router, body).await })
    });
    for answer in futures::future::join_all(burst).await {
        answers.push(answer.unwrap());
    }
    for _ in 0..2 {
        answers.push(world.sandbox_event(&router, body.clone()).await);
    }
    assert!(
        answers.iter().all(|(s, _)| *s == StatusCode::OK),
        "{answers:?}"
    );
    let applied = answers
        .iter()
        .filter(|(_, a)| a["outcome"] == "applied")
        .count();
    let duplicates = answers
        .iter()
        .filter(|(_, a)| a["outcome"] == "duplicate")
        .count();
    assert_eq!((applied, duplicates), (1, 11), "{answers:?}");
    world.follow_ups_done().await;
    assert_eq!(status_of(&world, &paid).await, "settled");
    assert_eq!(
        mails(&world, "pat@harbor.test", "Receipt from demo IT").await,
        1
    );
    assert_eq!(events_of(&world, "payment.settled").await.len(), 1);
}

/// A mailer that holds every email until it is let go (a slow mail service).
struct HeldMailer {
    inner: Arc<dyn Mailer>,
    gate: Arc<tokio::sync::Semaphore>,
}

#[async_trait]
impl Mailer for HeldMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), NotifyError> {
        let _permit = self.gate.acquire().await.expect("gate open");
        self.inner.send(message).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_does_not_wait_for_the_email() {
    let world = World::new().await;
    world.rotate_webhook_secret("demo", None).await;
    let paid = bank_payment(&world, &world.local_router(), "INV-13", "100.00").await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut services = (*world.services).clone();
    services.mailer = Arc::new(HeldMailer {
        inner: world.services.mailer.clone(),
        gate: gate.clone(),
    });
    let router = world.local_router_over(Arc::new(services));

    // The mail service is stuck: the gateway is answered all the same.
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        event(&world, &router, &paid, "charge.settled", None),
    )
    .await
    .expect("answered while the email waits");
    assert_eq!(answered.1["outcome"], "applied");
    assert_eq!(status_of(&world, &paid).await, "settled");
    assert_eq!(
        mails(&world, "pat@harbor.test", "Receipt from demo IT").await,
        0
    );

    // Once it moves, the receipt goes, once.
    gate.add_permits(100);
    world.follow_ups_done().await;
    assert_eq!(
        mails(&world, "pat@harbor.test", "Receipt from demo IT").await,
        1
    );
}

/// A mailer that is down until it is told otherwise.
struct DownMailer {
    inner: Arc<dyn Mailer>,
    up: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Mailer for DownMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), NotifyError> {
        if self.up.load(std::sync::atomic::Ordering::SeqCst) {
            self.inner.send(message).await
        } else {
            Err(NotifyError("mail service down".into()))
        }
    }
}

#[tokio::test]
async fn effects_not_delivered_after_the_answer_are_delivered_later_by_the_retry_path_once() {
    let world = World::new().await;
    world.rotate_webhook_secret("demo", None).await;
    let paid = bank_payment(&world, &world.local_router(), "INV-14", "100.00").await;
    let mailer = Arc::new(DownMailer {
        inner: world.services.mailer.clone(),
        up: false.into(),
    });
    let mut services = (*world.services).clone();
    services.mailer = mailer.clone();
    // As on a Lambda frozen right after its answer: nothing runs after it.
    services.follow_up_after_ack = false;
    let services = Arc::new(services);
    let router = world.local_router_over(services.clone());

    let (_, answer) = event(&world, &router, &paid, "charge.settled", None).await;
    assert_eq!(answer["outcome"], "applied");
    assert!(events_of(&world, "payment.settled").await.is_empty());

    // The retry path: the event goes, the email fails and waits.
    let report = app::webhooks::run_due_follow_ups(&services, 100)
        .await
        .unwrap();
    assert_eq!((report.done, report.waiting), (0, 1));
    assert_eq!(events_of(&world, "payment.settled").await.len(), 1);
    assert_eq!(
        mails(&world, "pat@harbor.test", "Receipt from demo IT").await,
        0
    );
    // Not due again until its back-off has passed.
    let report = app::webhooks::run_due_follow_ups(&services, 100)
        .await
        .unwrap();
    assert_eq!(report, app::webhooks::FollowUpReport::default());

    mailer.up.store(true, std::sync::atomic::Ordering::SeqCst);
    world.set_now(NOW + time::Duration::minutes(1));
    let report = app::webhooks::run_due_follow_ups(&services, 100)
        .await
        .unwrap();
    assert_eq!((report.done, report.waiting), (1, 0));
    assert_eq!(
        mails(&world, "pat@harbor.test", "Receipt from demo IT").await,
        1
    );
    assert_eq!(
        events_of(&world, "payment.settled").await.len(),
        1,
        "the event is not sent again"
    );
    world.set_now(NOW + time::Duration::hours(1));
    let report = app::webhooks::run_due_follow_ups(&services, 100)
        .await
        .unwrap();
    assert_eq!(report, app::webhooks::FollowUpReport::default());
    assert_eq!(
        mails(&world, "pat@harbor.test", "Receipt from demo IT").await,
        1
    );
}

#[tokio::test]
async fn an_event_before_its_payment_can_take_it_is_kept_and_applied_when_it_catches_up() {
    use app::ports::{ChargeOutcome, ChargeRequest, ChargeSource};
    let world = World::new().await;
    world.rotate_webhook_secret("demo", None).await;
    let router = world.local_router();
    world.add_invoice("demo", "INV-15", "300.00").await;
    let s = &world.services;
    let org = domain::OrgSlug::parse("demo").unwrap();

    // A payment whose request died after the gateway took the bank debit: the attempt is
    // open, our write of the answer never landed.
    let id = domain::PaymentId::from_ulid(&s.ids.ulid()).unwrap();
    let payment = app::payments::Payment {
        id: id.clone(),
        org: org.clone(),
        invoice_number: domain::InvoiceNumber::parse("INV-15").unwrap(),
        customer_id: None,
        amount: domain::Money::parse("300.00", domain::Currency::Usd).unwrap(),
        allocations: Vec::new(),
        surcharge: domain::Money::zero(domain::Currency::Usd),
        status: domain::PaymentStatus::Pending,
        gateway: "sandbox".into(),
        gateway_ref: None,
        method: None,
        failure: None,
        receipt_email: Some(domain::Email::parse("pat@harbor.test").unwrap()),
        created_at: NOW,
        updated_at: NOW,
    };
    s.attempts
        .begin_attempt(&payment, NOW + app::pay_now::ATTEMPT_LOCK, NOW)
        .await
        .unwrap();
    let token = world.bank_token("000123456789", "Pat Lee").await;
    let outcome = s
        .gateway
        .charge(&ChargeRequest {
            org: org.clone(),
            reference: id.to_string(),
            amount: payment.amount,
            source: ChargeSource::Token(Secret::new(token)),
            description: "Invoice INV-15".into(),
        })
        .await
        .unwrap();
    let ChargeOutcome::Approved { gateway_ref, .. } = outcome else {
        panic!("approved")
    };
    let paid = Paid {
        id: id.to_string(),
        charge: gateway_ref,
    };

    // The settlement arrives first: kept (answered, so the gateway stops), nothing moves.
    let (status, answer) = event(&world, &router, &paid, "charge.settled", Some("evt_early")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["outcome"], "held");
    let (_, again) = event(&world, &router, &paid, "charge.settled", Some("evt_early")).await;
    assert_eq!(again["outcome"], "duplicate");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(status_of(&world, &paid).await, "pending");
    assert_eq!(world.balance("demo", "INV-15").await, "300.00");

    // Past the attempt's lock nobody is finishing it: the retry path asks the gateway, writes
    // the debit as a retry of the payment would, then applies the settlement.
    world.set_now(NOW + time::Duration::minutes(3));
    let report = app::webhooks::run_due_follow_ups(&world.services, 100)
        .await
        .unwrap();
    assert_eq!(report.done, 1, "{report:?}");
    assert_eq!(status_of(&world, &paid).await, "settled");
    assert_eq!(
        world.balance("demo", "INV-15").await,
        "0.00",
        "paid down once"
    );
    assert_eq!(events_of(&world, "payment.settled").await.len(), 1);
    assert_eq!(
        mails(&world, "pat@harbor.test", "Receipt from demo IT").await,
        1
    );
    let history = world
        .services
        .webhooks
        .payment_history(&org, &id)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].event_id, "evt_early");
    // Done: nothing is due, and the event stays a duplicate.
    let report = app::webhooks::run_due_follow_ups(&world.services, 100)
        .await
        .unwrap();
    assert_eq!(report, app::webhooks::FollowUpReport::default());
}

#[tokio::test]
async fn an_api_gateway_event_reaches_the_webhook_function() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let world = World::new().await;
    let s = &world.services;
    // The sample is signed with this secret, as a gateway-made one would be pasted in.
    app::webhooks::rotate_secret(
        s,
        app::webhooks::RotateCommand {
            org: domain::OrgSlug::parse("demo").unwrap(),
            gateway: None,
            secret: Some(Secret::new(
                "whsec_tests_only_never_deployed_00000000".into(),
            )),
            grace: None,
        },
    )
    .await
    .unwrap();
    world.add_invoice("demo", "INV-1", "1250.00").await;
    let usd = |a: &str| domain::Money::parse(a, domain::Currency::Usd).unwrap();
    let payment = app::payments::Payment {
        id: domain::PaymentId::parse("pay_01JD8X3Q9M6V4W2K7T5R1N0P0A").unwrap(),
        org: domain::OrgSlug::parse("demo").unwrap(),
        invoice_number: domain::InvoiceNumber::parse("INV-1").unwrap(),
        customer_id: None,
        amount: usd("1250.00"),
        allocations: Vec::new(),
        surcharge: usd("0.00"),
        status: domain::PaymentStatus::Pending,
        gateway: "sandbox".into(),
        gateway_ref: Some("ch_01JD8X3Q9M6V4W2K7T5R1N0P0C".into()),
        method: None,
        failure: None,
        receipt_email: None,
        created_at: NOW,
        updated_at: NOW,
    };
    s.payments.insert_payment(&payment).await.unwrap();

    let sample = include_str!("../../events/webhook-sandbox-settled.apigw-v2.json");
    let request = lambda_http::request::from_str(sample).expect("a valid API Gateway v2 event");
    let response = web::webhook::router(world.services.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["outcome"], "applied", "{answer}");
    assert_eq!(answer["status"], "settled");
}

#[tokio::test]
async fn the_sandbox_settles_its_bank_debits_by_itself_and_returns_the_test_account() {
    let world = World::new().await;
    world.rotate_webhook_secret("demo", None).await;
    let router = world.local_router();
    let settles = bank_payment(&world, &router, "INV-16", "100.00").await;
    world.add_invoice("demo", "INV-17", "200.00").await;
    let token = world.bank_token("000222222227", "Pat Lee").await;
    let returns = pay(&world, &router, "INV-17", &token).await;
    let card = card_payment(&world, &router, "INV-18", "50.00").await;
    let events = world.sandbox_events();
    let webhook = web::webhook::router(world.services.clone());
    let after = time::Duration::seconds(60);
    let send = |now| web::sandbox_events::send_due(&events, &webhook, now, after);

    // Not yet.
    assert_eq!(send(NOW + time::Duration::seconds(30)).await.unwrap(), 0);
    // After the delay both debits settle (the card has nothing to settle here).
    world.set_now(NOW + time::Duration::seconds(61));
    assert_eq!(send(NOW + time::Duration::seconds(61)).await.unwrap(), 2);
    world.follow_ups_done().await;
    assert_eq!(status_of(&world, &settles).await, "settled");
    assert_eq!(status_of(&world, &returns).await, "settled");
    assert_eq!(status_of(&world, &card).await, "succeeded");
    assert_eq!(
        send(NOW + time::Duration::seconds(90)).await.unwrap(),
        0,
        "once"
    );
    // As long again, and the return test account comes back.
    world.set_now(NOW + time::Duration::seconds(121));
    assert_eq!(send(NOW + time::Duration::seconds(121)).await.unwrap(), 1);
    world.follow_ups_done().await;
    assert_eq!(status_of(&world, &returns).await, "returned");
    assert_eq!(world.balance("demo", "INV-17").await, "200.00");
    assert_eq!(status_of(&world, &settles).await, "settled");
    assert_eq!(
        mails(&world, "pat@harbor.test", "Bank payment returned").await,
        1
    );
}

#[tokio::test]
async fn webhook_secrets_are_sealed_at_rest_and_open_only_with_their_key() {
    use app::ports::WebhookSecrets;
    let world = World::new().await;
    let secret = world.rotate_webhook_secret("demo", None).await;
    let raw = world
        .store
        .client()
        .get_item()
        .table_name(world.store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("ORG#demo".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("WHSEC#sandbox".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("the secrets item");
    let sealed = raw["current"].as_b().unwrap().as_ref().to_vec();
    assert!(
        !sealed.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "no plaintext in the table"
    );
    let everything = format!("{raw:?}");
    assert!(!everything.contains(&secret[6..]), "nowhere in the item");

    // The same table under another key-encryption key, or none, refuses plainly.
    let org = domain::OrgSlug::parse("demo").unwrap();
    let (other, _) = store::SealingKey::generate();
    let elsewhere = store::Store::new(world.store.client().clone(), world.store.table())
        .with_sealing_key(other);
    let refused = elsewhere
        .active_secrets(&org, "sandbox", NOW)
        .await
        .unwrap_err();
    assert!(refused.0.contains("sealed with key"), "{refused}");
    let unkeyed = store::Store::new(world.store.client().clone(), world.store.table());
    let refused = unkeyed
        .active_secrets(&org, "sandbox", NOW)
        .await
        .unwrap_err();
    assert!(refused.0.contains("SEALING_KEY"), "{refused}");
    // Its own key opens it.
    let opened = world
        .store
        .active_secrets(&org, "sandbox", NOW)
        .await
        .unwrap();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].expose(), &secret);
}
