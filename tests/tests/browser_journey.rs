//! A new payer's first visit, in headless Chromium (issue 12), over the pages that exist today:
//! the invitation email in the local outbox, the accept page, the payment methods page with the
//! sandbox's card fields, the Pay Now page with the saved card, the receipt. On a desktop window
//! and on a phone's; a screenshot of each step in
//! `<CARGO_TARGET_TMPDIR>/screenshots/new-payer-<width>/`, and every page checked for unlabelled
//! fields and (on the phone) sideways scrolling.

use std::path::Path;

use http::StatusCode;
use paybridge_tests::real_browser::{Browser, Site};
use paybridge_tests::{World, call};
use serde_json::json;

const EMAIL: &str = "pat@harbor.test";
const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn a_new_payer_pays_an_invoice_on_a_desktop() {
    new_payer_pays_an_invoice(1280, 900).await;
}

#[tokio::test]
async fn a_new_payer_pays_an_invoice_on_a_phone() {
    new_payer_pays_an_invoice(390, 844).await;
}

async fn new_payer_pays_an_invoice(width: u32, height: u32) {
    let world = World::new().await;
    world.add_invoice("demo", "INV-2001", "1250.00").await;
    let site = Site::start(&world).await;

    // demo's admin invites Pat through the API, as the admin pages or an integration would.
    let auth = format!("Bearer {}", World::demo_key());
    let invite = json!({"email": EMAIL, "name": "Pat Lee", "customer_ids": ["cust-1"]});
    let (status, _, answer) = call(
        &site.router,
        "POST",
        "/api/orgs/demo/invitations",
        &[("authorization", &auth)],
        Some(invite),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut browser = Browser::open(&site, "new-payer", width, height, tmp).await;

    // The invitation email, in the local outbox; its link points at this site.
    browser.goto("/dev/outbox").await;
    let outbox = browser.wait_for_text("Outbox").await;
    assert!(outbox.contains(&format!("To {EMAIL}")), "{outbox}");
    browser.step("outbox").await;
    browser.click(&site.url("/invite/")).await;

    // The accept page: who invited whom, for which org.
    let accept = browser.wait_for_text("Accept your invitation").await;
    assert_eq!(browser.path().await, "/invite");
    assert!(
        accept.contains(EMAIL) && accept.contains("demo IT"),
        "{accept}"
    );
    browser.fill("Your name", "Pat Lee").await;
    browser.fill("Choose a password", PASSWORD).await;
    browser.check("I accept the terms of use").await;
    browser.step("accept").await;
    browser.click("Create my account and accept").await;
    let welcome = browser.wait_for_text("You are in").await;
    assert!(welcome.contains("Welcome, Pat Lee"), "{welcome}");
    browser.step("accepted").await;

    // Save a card, typed into the sandbox gateway's card fields.
    browser.goto("/portal/orgs/demo/methods").await;
    let methods = browser.wait_for_text("Payment methods").await;
    assert!(
        methods.contains("You have no saved cards or bank accounts yet."),
        "{methods}"
    );
    browser.fill("Card number", "4242 4242 4242 4242").await;
    browser.fill("Expiry (MM/YY)", "12/30").await;
    browser.fill("Security code", "123").await;
    browser.step("card-details").await;
    browser.click("Save").await;
    let saved = browser.wait_for_text("Saved.").await;
    assert!(
        saved.contains("Visa ending 4242 (expires 12/2030)"),
        "{saved}"
    );
    assert!(!saved.contains("4242 4242"), "no full number: {saved}");
    browser.step("card-saved").await;

    // Pay Harbor Dental's invoice with the saved card.
    browser.goto("/pay/demo/INV-2001").await;
    let pay = browser.wait_for_text("Invoice INV-2001").await;
    for shown in [
        "Harbor Dental",
        "USD 1250.00",
        "Pay with",
        "Visa ending 4242",
    ] {
        assert!(
            pay.contains(shown),
            "the Pay Now page shows {shown:?}:\n{pay}"
        );
    }
    browser.check("Visa ending 4242").await;
    browser.step("pay-now").await;
    browser.click("Pay USD 1250.00").await;

    // The receipt.
    let receipt = browser.wait_for_text("Payment received").await;
    assert!(
        browser
            .path()
            .await
            .starts_with("/pay/demo/INV-2001/receipts/"),
        "{}",
        browser.url().await
    );
    for shown in ["INV-2001", "USD 1250.00", "Visa ending 4242"] {
        assert!(
            receipt.contains(shown),
            "the receipt shows {shown:?}:\n{receipt}"
        );
    }
    browser.step("receipt").await;

    // The invoice is paid now: its page says so, with nothing left to pay.
    browser.goto("/pay/demo/INV-2001").await;
    let paid = browser.wait_for_text("This invoice is paid.").await;
    assert!(paid.contains("USD 0.00"), "{paid}");
    assert!(!paid.contains("Pay USD"), "{paid}");
    browser.step("invoice-paid").await;
    assert_eq!(world.balance("demo", "INV-2001").await, "0.00");

    browser.finish().await;
}

/// The checks of each step find what they look for: a field without a label, a page wider
/// than a phone.
#[tokio::test]
async fn the_page_checks_find_unlabelled_fields_and_sideways_scrolling() {
    let world = World::new().await;
    let site = Site::start(&world).await;
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut browser = Browser::open(&site, "page-checks", 390, 844, tmp).await;
    let page = "data:text/html,<meta name=viewport content='width=device-width'>\
        <label for=a>Labelled</label><input id=a>\
        <label><input type=checkbox id=b> Wrapped</label>\
        <input id=c aria-label=Named><input type=hidden id=d>\
        <input id=bare name=bare><div id=wide style='width:600px'>wide</div>";
    browser.client().goto(page).await.unwrap();
    browser.fill("Labelled", "typed").await;
    browser.check("Wrapped").await;
    browser.step("defects").await;
    let defects = browser.close().await;
    assert_eq!(defects.len(), 2, "{defects:#?}");
    assert!(
        defects[0].contains("a field has no label: input#bare[name=bare][type=text]"),
        "{defects:#?}"
    );
    assert!(
        defects[1].contains("scrolls sideways at 390 px") && defects[1].contains("div#wide"),
        "{defects:#?}"
    );
}
