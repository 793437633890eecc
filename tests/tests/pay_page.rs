//! The Pay Now page as a guest meets it, on the local stack's router: the page, the sandbox's
//! browser tokenization, the payment API it posts to, the receipt page, the outbox and the
//! event log, all over DynamoDB Local.

use axum::Router;
use http::StatusCode;
use paybridge_tests::{World, call};
use serde_json::{Value, json};

async fn page(router: &Router, path: &str) -> (StatusCode, http::HeaderMap, String) {
    let (status, headers, body) = call(router, "GET", path, &[], None).await;
    (
        status,
        headers,
        body.as_str().unwrap_or_default().to_owned(),
    )
}

/// What the page's script does: details to the gateway's tokenization endpoint, the token to
/// the payment API with a fresh Idempotency-Key.
async fn pay_like_the_page(
    router: &Router,
    org: &str,
    invoice: &str,
    card: Value,
    extra: Value,
) -> (StatusCode, Value) {
    let (status, _, tokenized) = call(router, "POST", "/sandbox/tokens", &[], Some(card)).await;
    assert_eq!(status, StatusCode::CREATED, "{tokenized}");
    let mut body = json!({"token": tokenized["token"]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let key = ulid::Ulid::new().to_string();
    let path = format!("/api/pay/{org}/{invoice}");
    let (status, _, answer) = call(
        router,
        "POST",
        &path,
        &[("idempotency-key", &key)],
        Some(body),
    )
    .await;
    (status, answer)
}

fn visa() -> Value {
    json!({"card_number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2030, "cvc": "123"})
}

#[tokio::test]
async fn a_guest_pays_in_full_from_the_page_and_gets_a_receipt_page_an_email_and_an_event() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-1001", "1250.00").await;
    let router = world.local_router();

    let (status, headers, html) = page(&router, "/pay/demo/INV-1001").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    for shown in [
        "demo IT",
        "Invoice INV-1001",
        "Harbor Dental",
        "USD 1250.00",
        "2026-12-26",
    ] {
        assert!(html.contains(shown), "the page shows {shown:?}");
    }
    assert!(html.contains(r#"data-pay-url="/api/pay/demo/INV-1001""#));
    assert!(html.contains(r#"<script src="/sandbox/sandbox.js"></script>"#));
    // No amount field: this org takes only the whole balance.
    assert!(!html.contains(r#"id="amount""#));

    // The scripts the page loads are served, as scripts.
    for script in ["/sandbox/sandbox.js", "/assets/pay.js"] {
        let (status, headers, _) = page(&router, script).await;
        assert_eq!(status, StatusCode::OK, "{script}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
    }

    let (status, payment) = pay_like_the_page(
        &router,
        "demo",
        "INV-1001",
        visa(),
        json!({"email": "pat@harbor.test"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(world.balance("demo", "INV-1001").await, "0.00");

    let id = payment["id"].as_str().unwrap();
    let (status, _, receipt) = page(&router, &format!("/pay/demo/INV-1001/receipts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    for shown in ["Payment received", "USD 1250.00", "Visa ending 4242", id] {
        assert!(receipt.contains(shown), "the receipt shows {shown:?}");
    }
    // Another invoice's address for the same payment shows nothing.
    world.add_invoice("demo", "INV-1002", "10.00").await;
    let (status, _, _) = page(&router, &format!("/pay/demo/INV-1002/receipts/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let mail = world.outbox().await;
    assert_eq!(mail.len(), 1, "one receipt");
    let receipt = &mail[0].message;
    assert_eq!(receipt.to.as_str(), "pat@harbor.test");
    assert_eq!(receipt.subject, "Receipt from demo IT - invoice INV-1001");
    assert!(receipt.text.contains("USD 1250.00") && receipt.text.contains("Visa ending 4242"));
    assert!(receipt.html.contains("USD 1250.00") && receipt.html.contains(id));

    let events = world.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "payment.succeeded");
    assert_eq!(events[0].detail["payment_id"], id);
    assert_eq!(
        events[0].detail["amount"],
        json!({"amount": "1250.00", "currency": "USD"})
    );

    // The outbox and the event log read the same through the local stack's pages.
    let (_, _, listed) = call(&router, "GET", "/dev/outbox.json", &[], None).await;
    assert_eq!(listed[0]["to"], "pat@harbor.test");
    assert_eq!(listed[0]["subject"], receipt.subject);
    let (_, _, logged) = call(&router, "GET", "/dev/events.json", &[], None).await;
    assert_eq!(logged[0]["type"], "payment.succeeded");
    let (status, _, outbox_page) = page(&router, "/dev/outbox").await;
    assert_eq!(status, StatusCode::OK);
    assert!(outbox_page.contains("Receipt from demo IT"));

    // Paid now: the page says so instead of showing a form.
    let (_, _, html) = page(&router, "/pay/demo/INV-1001").await;
    assert!(html.contains("This invoice is paid"));
    assert!(!html.contains("pay-form"));
}

#[tokio::test]
async fn a_declined_card_sends_no_receipt_but_a_failed_event() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-7", "70.00").await;
    let router = world.local_router();
    let card =
        json!({"card_number": "4000000000000002", "exp_month": 12, "exp_year": 2030, "cvc": "123"});
    let (status, problem) = pay_like_the_page(
        &router,
        "demo",
        "INV-7",
        card,
        json!({"email": "pat@harbor.test"}),
    )
    .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        problem["detail"],
        "The card was declined. Try another card or contact your bank."
    );
    assert!(world.outbox().await.is_empty());
    let events = world.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "payment.failed");
    assert_eq!(events[0].detail["decline_code"], "card_declined");
}

#[tokio::test]
async fn every_field_has_a_label_the_page_fits_a_phone_and_sends_the_security_headers() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-2", "20.00").await;
    world
        .set_settings("demo", json!({"allow_partial": true}))
        .await;
    let router = world.local_router();
    let (status, headers, html) = page(&router, "/pay/demo/INV-2").await;
    assert_eq!(status, StatusCode::OK);

    let ids: Vec<&str> = html
        .split("<input id=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert!(
        ids.len() >= 8,
        "card, bank, amount and email fields: {ids:?}"
    );
    for id in &ids {
        assert!(
            html.contains(&format!("<label for=\"{id}\">")),
            "a label for #{id}"
        );
    }
    // Partial payments are on: the amount field is there, filled with the balance.
    assert!(html.contains(r#"id="amount" name="amount" inputmode="decimal" value="20.00""#));
    assert!(html.contains(r#"name="viewport" content="width=device-width, initial-scale=1""#));

    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers.contains_key("strict-transport-security"));
}

#[tokio::test]
async fn unknown_orgs_invoices_and_receipts_get_one_and_the_same_404_page() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-3", "30.00").await;
    let router = world.local_router();
    let (status, _, unknown_invoice) = page(&router, "/pay/demo/INV-404").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for path in [
        "/pay/nosuchorg/INV-3",
        "/pay/demo/not%20a%20number",
        "/pay/demo/INV-3/receipts/pay_01JZ0000000000000000000000",
        "/pay/demo/INV-3/receipts/nonsense",
        "/pay/demo/xero",
    ] {
        let (status, _, html) = page(&router, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            html, unknown_invoice,
            "{path} says no more than an unknown invoice"
        );
    }
    assert!(unknown_invoice.contains("We could not find that invoice"));
}

#[tokio::test]
async fn the_xero_payment_url_redirects_to_the_page_and_its_amount_changes_nothing() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-9", "900.00").await;
    let router = world.local_router();
    let (status, headers, _) = call(
        &router,
        "GET",
        "/pay/demo/xero?invoice=INV-9&amount=1&currency=JPY&shortcode=!abc",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/pay/demo/INV-9");
    let (_, _, html) = page(&router, "/pay/demo/INV-9").await;
    assert!(html.contains("USD 900.00") && !html.contains("USD 1.00"));

    let (status, payment) = pay_like_the_page(&router, "demo", "INV-9", visa(), json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        payment["amount"],
        json!({"amount": "900.00", "currency": "USD"})
    );
    let charged = world.sandbox().charges(10).await.unwrap();
    assert_eq!(charged[0].amount.amount_string(), "900.00");
}

#[tokio::test]
async fn card_surcharges_are_shown_charged_on_top_and_recorded_apart_and_bank_payments_carry_none()
{
    let world = World::new().await;
    world.add_invoice("demo", "INV-S1", "100.00").await;
    world.add_invoice("demo", "INV-S2", "100.00").await;
    world
        .set_settings(
            "demo",
            json!({"surcharges": [
                {"brand": "*", "rate_bps": 290, "fixed": {"amount": "0.30", "currency": "USD"}},
                {"brand": "amex", "rate_bps": 350}
            ]}),
        )
        .await;
    let router = world.local_router();

    let (_, _, html) = page(&router, "/pay/demo/INV-S1").await;
    assert!(
        html.contains("Other cards: 2.90% + USD 0.30 (on the full balance: USD 3.20)"),
        "{html}"
    );
    assert!(html.contains("Amex: 3.50% (on the full balance: USD 3.50)"));
    let (_, _, summary) = call(&router, "GET", "/api/pay/demo/INV-S1", &[], None).await;
    assert_eq!(
        summary["card_surcharges"][0]["on_balance"],
        json!({"amount": "3.20", "currency": "USD"})
    );

    let (status, payment) = pay_like_the_page(
        &router,
        "demo",
        "INV-S1",
        visa(),
        json!({"email": "pat@harbor.test"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(
        payment["amount"],
        json!({"amount": "100.00", "currency": "USD"})
    );
    assert_eq!(
        payment["surcharge"],
        json!({"amount": "3.20", "currency": "USD"})
    );
    assert_eq!(
        world.balance("demo", "INV-S1").await,
        "0.00",
        "the surcharge is not paid off the invoice"
    );
    let charged = world.sandbox().charges(10).await.unwrap();
    assert_eq!(charged[0].amount.amount_string(), "103.20");
    let receipt = &world.outbox().await[0].message;
    assert!(
        receipt.text.contains("Card surcharge USD 3.20")
            && receipt.text.contains("Total charged  USD 103.20")
    );

    let bank = json!({"routing_number": "110000000", "account_number": "000123456789", "account_holder": "Pat Lee"});
    let (status, payment) = pay_like_the_page(&router, "demo", "INV-S2", bank, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(
        payment["surcharge"],
        json!({"amount": "0.00", "currency": "USD"})
    );
    assert_eq!(payment["status"], "pending", "a bank debit settles later");
    let charged = world.sandbox().charges(10).await.unwrap();
    assert_eq!(charged[0].amount.amount_string(), "100.00");
}
