//! The payer's automatic payments page (issue 12) over HTTP against DynamoDB Local: each
//! customer they pay for, turned on with a rule, a method and a cap, changed, turned off; what a
//! locked enrolment, a refused rule, a forged form and another payer get.

use http::StatusCode;
use paybridge_tests::{Browser, NOW, World, call};
use serde_json::json;
use time::Duration;

const PASSWORD: &str = "payer password 123";
const PAGE: &str = "/portal/orgs/demo/autopay";

async fn signed_in(world: &World, email: &str) -> Browser {
    world.browser_signed_in(email, PASSWORD).await
}

async fn enrolment(world: &World, cookie: &str, customer: &str) -> (StatusCode, serde_json::Value) {
    let (status, _, found) = call(
        &world.local_router(),
        "GET",
        &format!("/api/me/orgs/demo/autopay/{customer}"),
        &[("cookie", cookie)],
        None,
    )
    .await;
    (status, found)
}

#[tokio::test]
async fn a_payer_turns_automatic_payments_on_changes_them_and_turns_them_off() {
    let world = World::new().await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["c1", "c2"], PASSWORD)
        .await;
    world
        .payer("demo", "sam@other.test", &["c3"], PASSWORD)
        .await;
    let due = NOW.date() + Duration::days(10);
    world
        .add_ledger_invoice(
            "demo",
            "INV-1",
            "120.00",
            ("c1", "Harbor Dental"),
            NOW.date(),
            due,
        )
        .await;
    let card = world.save_card(&pat, "4242424242424242").await;

    let mut browser = signed_in(&world, "pat@harbor.test").await;
    let page = browser.get(PAGE).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("<h2 id=\"customer-c1\">Harbor Dental</h2>")
    );
    assert!(
        page.body.contains("<h2 id=\"customer-c2\">c2</h2>"),
        "no invoice: its id"
    );
    assert!(page.body.contains("1 invoice open now"));
    assert!(page.body.contains("Visa ending 4242"));

    // A refused rule saves nothing and says why.
    let path = format!("{PAGE}/c1");
    let bad = browser
        .post_form(
            &path,
            &[("rule", "day_of_month"), ("day", "40"), ("method", &card)],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body
            .contains("Day of the month: a number from 1 to 31.")
    );
    assert_eq!(enrolment(&world, &pat, "c1").await.0, StatusCode::NOT_FOUND);

    // On: 7 days after the invoice's date, up to 500.00.
    let fields = [
        ("rule", "days_after_invoice"),
        ("days", "7"),
        ("day", "1"),
        ("method", card.as_str()),
        ("secondary", ""),
        ("cap", "500.00"),
    ];
    let done = browser.post_form(&path, &fields).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let page = browser.get(done.location()).await;
    assert!(
        page.body
            .contains("Automatic payments are on for Harbor Dental.")
    );
    assert!(
        page.body
            .contains("Each invoice is paid 7 days after the invoice")
            && page.body.contains("date with Visa ending 4242"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("invoices above USD 500.00 are left for you")
    );
    let (status, saved) = enrolment(&world, &pat, "c1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        saved["rule"],
        json!({"kind": "days_after_invoice", "days": 7})
    );
    assert_eq!(saved["cap"]["amount"], "500.00");

    // Changed: on the due date, no cap.
    let change = [
        ("rule", "on_due_date"),
        ("method", card.as_str()),
        ("cap", ""),
    ];
    assert_eq!(
        browser.post_form(&path, &change).await.status,
        StatusCode::SEE_OTHER
    );
    let (_, saved) = enrolment(&world, &pat, "c1").await;
    assert_eq!(saved["rule"], json!({"kind": "on_due_date"}));
    assert!(saved["cap"].is_null());

    // A forged form changes nothing; Sam cannot touch Pat's customer.
    let forged = browser
        .post_raw(&format!("{path}/end"), "csrf=forged".into())
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let mut sam = signed_in(&world, "sam@other.test").await;
    let page = sam.get(PAGE).await;
    assert!(!page.body.contains("Harbor Dental"));
    let theirs = sam.post_form(&format!("{path}/end"), &[]).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(enrolment(&world, &pat, "c1").await.0, StatusCode::OK);

    // Off.
    let off = browser.post_form(&format!("{path}/end"), &[]).await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    let page = browser.get(off.location()).await;
    assert!(
        page.body
            .contains("Automatic payments are off for Harbor Dental.")
    );
    assert_eq!(enrolment(&world, &pat, "c1").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_locked_enrolment_is_shown_and_cannot_be_ended_and_a_card_without_authority_is_not_offered()
 {
    let world = World::new().await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["c1"], PASSWORD)
        .await;
    let card = world.save_card(&pat, "4242424242424242").await;
    // The admin sets c1 up and locks it.
    let (status, _, locked) = call(
        &world.local_router(),
        "PUT",
        "/api/orgs/demo/autopay/c1",
        &[("authorization", &format!("Bearer {}", World::demo_key()))],
        Some(json!({"method_id": card, "rule": {"kind": "on_due_date"}, "payer_email": "pat@harbor.test", "locked": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{locked}");
    let mut browser = signed_in(&world, "pat@harbor.test").await;
    let page = browser.get(PAGE).await;
    assert!(
        page.body.contains("set this up and locked it"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("Turn off automatic payments"));
    let refused = browser.post_form(&format!("{PAGE}/c1/end"), &[]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.body.contains("locked"), "{}", refused.body);

    // Sam's only card has no authority to be charged later: none offered, the way to get one.
    let world = World::new().await;
    let sam = world
        .payer("demo", "sam@other.test", &["c3"], PASSWORD)
        .await;
    let token = world.card_token("4242424242424242").await;
    let (status, _, _) = call(
        &world.local_router(),
        "POST",
        "/api/me/orgs/demo/methods",
        &[("cookie", &sam)],
        Some(json!({"token": token, "kind": "card"})),
    )
    .await;
    assert!(status.is_success());
    let mut browser = signed_in(&world, "sam@other.test").await;
    let page = browser.get(PAGE).await;
    assert!(
        page.body
            .contains("accept the authority to charge it later"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("Turn on automatic payments"));
}
