//! A new payer's first visit, in headless Chromium (issue 12's "done means"): the invitation
//! email in the local outbox, the accept page, the payment methods page with the sandbox's card
//! fields, two invoices ticked on the dashboard and paid in one go (the split shown before
//! paying), the dashboard showing them paid, the invoice PDF downloaded (a valid PDF naming the
//! invoice), a third invoice scheduled for next week and cancelled, and another payer refused
//! all of it. On a desktop window and on a phone's; a screenshot of each step in
//! `<CARGO_TARGET_TMPDIR>/screenshots/new-payer-<width>/`, and every page checked for unlabelled
//! fields and (on the phone) sideways scrolling.

use std::path::Path;

use base64::Engine;
use http::StatusCode;
use paybridge_tests::real_browser::{Browser, Site};
use paybridge_tests::{NOW, World, call};
use serde_json::{Value, json};
use time::Duration;

const EMAIL: &str = "pat@harbor.test";
const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn a_new_payer_pays_two_invoices_at_once_on_a_desktop() {
    new_payer_journey(1280, 900).await;
}

#[tokio::test]
async fn a_new_payer_pays_two_invoices_at_once_on_a_phone() {
    new_payer_journey(390, 844).await;
}

/// Adds a ledger invoice of `customer` to demo, due `due_in` days from now.
async fn invoice(world: &World, number: &str, total: &str, customer: &str, due_in: i64) {
    let today = NOW.date();
    world
        .add_ledger_invoice(
            "demo",
            number,
            total,
            (customer, "Harbor Dental"),
            today - Duration::days(30),
            today + Duration::days(due_in),
        )
        .await;
}

/// A GET or DELETE with a session cookie, as another browser would send it: the status.
async fn status_for(site: &Site, cookie: &str, method: &str, path: &str) -> StatusCode {
    let (status, _, _) = call(&site.router, method, path, &[("cookie", cookie)], None).await;
    status
}

/// The PDF behind a link of the page, fetched by the page itself (with its session cookie), as
/// text; the fetch's status and content type must be a PDF's.
async fn pdf_from_page(browser: &Browser, href: &str) -> String {
    let fetched: Value = browser
        .client()
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0], {credentials: 'same-origin'})
               .then((r) => r.arrayBuffer().then((b) => {
                 const bytes = new Uint8Array(b);
                 let binary = '';
                 for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
                 done({status: r.status, type: r.headers.get('content-type'), base64: btoa(binary)});
               }))
               .catch((e) => done({error: String(e)}));",
            vec![json!(href)],
        )
        .await
        .expect("the fetch ran");
    assert_eq!(fetched["status"], 200, "{fetched}");
    assert_eq!(fetched["type"], "application/pdf", "{fetched}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(fetched["base64"].as_str().expect("bytes"))
        .expect("base64");
    let doc = lopdf::Document::load_mem(&bytes).expect("a valid PDF");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    doc.extract_text(&pages).expect("its text")
}

async fn new_payer_journey(width: u32, height: u32) {
    let world = World::new().await;
    invoice(&world, "INV-2001", "1250.00", "cust-1", -5).await;
    invoice(&world, "INV-2002", "420.00", "cust-1", 10).await;
    invoice(&world, "INV-2003", "64.00", "cust-1", 20).await;
    invoice(&world, "INV-9001", "99.00", "cust-9", 10).await;
    let site = Site::start(&world).await;
    // Sam pays for another customer of demo's.
    let sam = world
        .payer("demo", "sam@other.test", &["cust-9"], PASSWORD)
        .await;

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
    // Pat will schedule a payment later: the card may be charged then, under this authority.
    browser
        .check("Let demo IT charge this card for scheduled and automatic payments")
        .await;
    browser.check("I accept this authority").await;
    browser.step("card-details").await;
    browser.click("Save").await;
    let saved = browser.wait_for_text("Saved.").await;
    assert!(
        saved.contains("Visa ending 4242 (expires 12/2030)"),
        "{saved}"
    );
    assert!(!saved.contains("4242 4242"), "no full number: {saved}");
    browser.step("card-saved").await;

    // The dashboard: three invoices outstanding; tick two and pay them together.
    browser.goto("/portal/orgs/demo").await;
    let dashboard = browser.wait_for_text("Outstanding invoices").await;
    for shown in ["INV-2001", "INV-2002", "INV-2003", "Overdue", "USD 1250.00"] {
        assert!(dashboard.contains(shown), "{shown}:\n{dashboard}");
    }
    assert!(!dashboard.contains("INV-9001"), "only Pat's customer's");
    assert_eq!(browser.js_count("#invoices tbody tr").await, 3);
    browser.check("INV-2001").await;
    browser.check("INV-2002").await;
    browser.step("invoices-ticked").await;
    browser.click("Pay the selected invoices").await;

    // The split, before paying: the overdue one first, each in full.
    let split = browser.wait_for_text("Pay 2 invoices").await;
    for shown in [
        "USD 1250.00",
        "USD 420.00",
        "Total to charge",
        "USD 1670.00",
    ] {
        assert!(split.contains(shown), "{shown}:\n{split}");
    }
    let rows = browser.js_count("#allocation tbody tr").await;
    assert_eq!(rows, 2, "{split}");
    browser.check("Visa ending 4242").await;
    browser.step("split-shown").await;
    browser.click("Pay USD 1670.00").await;

    // The payment, as recorded: one charge, each invoice's part.
    let paid = browser.wait_for_text("Payment received").await;
    assert!(
        browser
            .path()
            .await
            .starts_with("/portal/orgs/demo/payments/pay_"),
        "{}",
        browser.url().await
    );
    for shown in [
        "Invoice INV-2001",
        "Invoice INV-2002",
        "USD 1670.00",
        "Visa ending 4242",
    ] {
        assert!(paid.contains(shown), "{shown}:\n{paid}");
    }
    let payment_path = browser.path().await;
    browser.step("paid").await;
    assert_eq!(world.balance("demo", "INV-2001").await, "0.00");
    assert_eq!(world.balance("demo", "INV-2002").await, "0.00");

    // The invoice's PDF, downloaded from the payment page: it names the invoice, paid.
    let href = browser
        .attribute("a[aria-label='PDF of INV-2001']", "href")
        .await;
    let pdf = pdf_from_page(&browser, &href).await;
    for shown in ["Invoice INV-2001", "Paid", "1250.00 USD", "Harbor Dental"] {
        assert!(pdf.contains(shown), "{shown:?} in the PDF:\n{pdf}");
    }

    // The dashboard shows them paid: one invoice left, the payment among the recent ones.
    browser.goto("/portal/orgs/demo").await;
    let dashboard = browser.wait_for_text("Recent payments").await;
    assert_eq!(
        browser.js_count("#invoices tbody tr").await,
        1,
        "{dashboard}"
    );
    assert!(dashboard.contains("INV-2003"), "{dashboard}");
    assert!(dashboard.contains("USD 1670.00"), "{dashboard}");
    browser.step("dashboard-paid").await;

    // Schedule the third for next week with the saved card, then cancel it.
    browser.click("Schedule INV-2003").await;
    browser
        .wait_for_text("Schedule a payment of INV-2003")
        .await;
    let next_week = (NOW.date() + Duration::days(7)).to_string();
    assert_eq!(browser.attribute("#date", "value").await, next_week);
    browser.check("Visa ending 4242").await;
    browser.step("schedule-form").await;
    browser.click("Schedule the payment").await;
    let scheduled = browser
        .wait_for_text("Scheduled INV-2003 for 3 Dec 2026.")
        .await;
    assert!(
        !scheduled.contains("No payment is scheduled."),
        "{scheduled}"
    );
    browser.step("scheduled").await;

    // Another payer gets nothing of Pat's: the invoice PDF, the payment, its receipt, the
    // schedule (not even to cancel it).
    let pat = world.sign_in(EMAIL, PASSWORD).await;
    let (_, _, schedules) = call(
        &site.router,
        "GET",
        "/api/me/orgs/demo/schedules",
        &[("cookie", &pat)],
        None,
    )
    .await;
    let schedule = schedules["items"][0]["id"]
        .as_str()
        .or_else(|| schedules[0]["id"].as_str())
        .unwrap_or_else(|| panic!("a schedule: {schedules}"))
        .to_owned();
    let payment = payment_path.rsplit('/').next().unwrap().to_owned();
    for (method, path) in [
        ("GET", "/api/me/orgs/demo/invoices/INV-2001/pdf".to_owned()),
        ("GET", "/api/me/orgs/demo/invoices/INV-2003".to_owned()),
        ("GET", payment_path.clone()),
        (
            "GET",
            format!("/api/me/orgs/demo/payments/{payment}/receipt.pdf"),
        ),
        ("DELETE", format!("/api/me/orgs/demo/schedules/{schedule}")),
    ] {
        assert_eq!(
            status_for(&site, &sam, method, &path).await,
            StatusCode::NOT_FOUND,
            "{method} {path}"
        );
    }

    browser
        .click("Cancel the payment of INV-2003 on 3 Dec 2026")
        .await;
    let cancelled = browser
        .wait_for_text("Cancelled the payment of INV-2003 scheduled for 3 Dec 2026.")
        .await;
    assert!(
        cancelled.contains("No payment is scheduled."),
        "{cancelled}"
    );
    browser.step("cancelled").await;
    assert_eq!(world.balance("demo", "INV-2003").await, "64.00");

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
