//! The payer portal in headless Chromium (issue 12): a payer with a saved card signs in, sees
//! the dashboard with two outstanding invoices (one overdue), fetches an invoice PDF from the
//! page, schedules a payment for next week and cancels it, and searches their transactions.
//! On a desktop window and on a phone's; a screenshot of each step in
//! `<CARGO_TARGET_TMPDIR>/screenshots/portal-<width>/`, and every page checked for unlabelled
//! fields and sideways scrolling.

use std::path::Path;

use paybridge_tests::real_browser::{Browser, Site};
use paybridge_tests::{NOW, World, call};
use serde_json::json;
use time::{Date, Duration};

const EMAIL: &str = "pat@harbor.test";
const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn a_payer_uses_the_portal_on_a_desktop() {
    payer_uses_the_portal(1280, 900).await;
}

#[tokio::test]
async fn a_payer_uses_the_portal_on_a_phone() {
    payer_uses_the_portal(390, 844).await;
}

/// Adds a ledger invoice of cust-1 to demo, due on `due`.
async fn invoice(world: &World, number: &str, total: &str, due: Date) {
    let s = &world.services;
    let new = app::ledger::NewInvoice {
        invoice_number: number.into(),
        customer_id: "cust-1".into(),
        customer_name: "Harbor Dental".into(),
        total: total.into(),
        currency: None,
        issue_date: NOW.date() - Duration::days(30),
        due_date: due,
    };
    app::ledger::add_invoice(
        s.ledger.as_ref(),
        s.clock.as_ref(),
        &domain::OrgSlug::parse("demo").unwrap(),
        domain::Currency::Usd,
        &new,
    )
    .await
    .unwrap();
}

async fn payer_uses_the_portal(width: u32, height: u32) {
    let world = World::new().await;
    invoice(&world, "INV-3000", "64.00", NOW.date()).await;
    invoice(&world, "INV-3001", "420.00", NOW.date() - Duration::days(5)).await;
    invoice(
        &world,
        "INV-3002",
        "1250.00",
        NOW.date() + Duration::days(20),
    )
    .await;
    // Pat joins (invitation and acceptance through the APIs) and saves a card with the
    // authority to charge it later; INV-3000 was paid before, on the Pay Now API.
    let cookie = world.payer("demo", EMAIL, &["cust-1"], PASSWORD).await;
    world.save_card(&cookie, "4242424242424242").await;
    let token = world.card_token("4242424242424242").await;
    let (status, _, paid) = call(
        &world.local_router(),
        "POST",
        "/api/pay/demo/INV-3000",
        &[("idempotency-key", "browser-portal-3000")],
        Some(json!({"token": token})),
    )
    .await;
    assert!(status.is_success(), "{paid}");

    let site = Site::start(&world).await;
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut browser = Browser::open(&site, "portal", width, height, tmp).await;

    // Signed out, the portal sends Pat to sign in, and back.
    browser.goto("/portal").await;
    browser.wait_for_text("Sign in").await;
    assert_eq!(browser.path().await, "/login");
    browser.fill("Email", EMAIL).await;
    browser.fill("Password", PASSWORD).await;
    browser.step("sign-in").await;
    browser.click("Sign in").await;

    // The dashboard: two outstanding invoices, the older overdue; the payment made before.
    let dashboard = browser.wait_for_text("Outstanding invoices").await;
    assert_eq!(browser.path().await, "/portal/orgs/demo");
    for shown in [
        "INV-3001",
        "INV-3002",
        "Overdue",
        "USD 420.00",
        "USD 1250.00",
        "No payment is scheduled.",
        "Recent payments",
        "USD 64.00",
    ] {
        assert!(dashboard.contains(shown), "{shown}:\n{dashboard}");
    }
    let outstanding = browser.js_count("#invoices tbody tr").await;
    assert_eq!(outstanding, 2, "{dashboard}");
    browser.step("dashboard").await;

    // The invoice PDF, fetched by the page as its link would (with the session cookie).
    let href = browser
        .attribute("a[aria-label='PDF of INV-3001']", "href")
        .await;
    assert!(
        href.ends_with("/api/me/orgs/demo/invoices/INV-3001/pdf"),
        "{href}"
    );
    let fetched = browser
        .client()
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0], {credentials: 'same-origin'})
               .then((r) => r.arrayBuffer().then((b) => done({
                 status: r.status,
                 type: r.headers.get('content-type'),
                 head: String.fromCharCode(...new Uint8Array(b).slice(0, 5)),
                 size: b.byteLength,
               })))
               .catch((e) => done({error: String(e)}));",
            vec![json!(href)],
        )
        .await
        .expect("the fetch ran");
    assert_eq!(fetched["status"], 200, "{fetched}");
    assert_eq!(fetched["type"], "application/pdf", "{fetched}");
    assert_eq!(fetched["head"], "%PDF-", "{fetched}");
    assert!(fetched["size"].as_u64().unwrap() > 500, "{fetched}");
    browser.step("pdf-fetched").await;

    // Schedule INV-3002 for next week with the saved card.
    browser.click("Schedule INV-3002").await;
    let form = browser
        .wait_for_text("Schedule a payment of INV-3002")
        .await;
    assert!(form.contains("Visa ending 4242"), "{form}");
    let next_week = (NOW.date() + Duration::days(7)).to_string();
    assert_eq!(browser.attribute("#date", "value").await, next_week);
    browser.check("Visa ending 4242").await;
    browser.step("schedule-form").await;
    // Sent from the keyboard: Enter in the "At most" field submits the form.
    let amount = browser
        .client()
        .find(fantoccini::Locator::Css("#amount"))
        .await
        .expect("the amount field");
    amount.send_keys("\u{E007}").await.expect("Enter typed");
    let scheduled = browser
        .wait_for_text("Scheduled INV-3002 for 3 Dec 2026.")
        .await;
    assert!(scheduled.contains("The balance on the day"), "{scheduled}");
    assert!(
        !scheduled.contains("No payment is scheduled."),
        "{scheduled}"
    );
    browser.step("scheduled").await;

    // Cancel it from the dashboard.
    browser
        .click("Cancel the payment of INV-3002 on 3 Dec 2026")
        .await;
    let cancelled = browser
        .wait_for_text("Cancelled the payment of INV-3002 scheduled for 3 Dec 2026.")
        .await;
    assert!(
        cancelled.contains("No payment is scheduled."),
        "{cancelled}"
    );
    browser.step("cancelled").await;

    // Search the transactions: by invoice number.
    browser.click("Transactions").await;
    browser.wait_for_text("Latest payments").await;
    assert_eq!(browser.path().await, "/portal/orgs/demo/transactions");
    browser.fill("Invoice number", "INV-3000").await;
    browser.step("search-form").await;
    browser.click("Search").await;
    let results = browser.wait_for_text("Results").await;
    assert!(browser.url().await.contains("invoice=INV-3000"));
    assert!(
        results.contains("USD 64.00") && results.contains("Succeeded"),
        "{results}"
    );
    assert_eq!(browser.js_count("#payments tbody tr").await, 1);
    browser.step("search-results").await;
    // And a filter that makes no sense is said above the form.
    browser.fill("Amount", "ten dollars").await;
    browser.click("Search").await;
    browser
        .wait_for_text("Amount: a decimal amount such as 120.50")
        .await;
    browser.step("search-error").await;

    // Automatic payments for Harbor Dental: on the due date, with the saved card.
    browser.click("Automatic payments").await;
    let autopay = browser.wait_for_text("Automatic payments").await;
    assert!(
        autopay.contains("Harbor Dental") && autopay.contains("Off"),
        "{autopay}"
    );
    browser.check("On its due date").await;
    browser.check("Visa ending 4242").await;
    browser
        .fill("Pay invoices up to (optional)", "2000.00")
        .await;
    browser.step("autopay-form").await;
    browser
        .click("Turn on automatic payments for Harbor Dental")
        .await;
    let on = browser
        .wait_for_text("Automatic payments are on for Harbor Dental.")
        .await;
    assert!(
        on.contains("invoices above USD 2000.00 are left for you"),
        "{on}"
    );
    browser.step("autopay-on").await;

    browser.finish().await;
}
