//! Automatic payments: enrolments by a payer and by an admin (locked), the tick discovering a
//! customer's new invoices, the rule's day, the cap, the processing delay, the advance notice,
//! and an invoice dealt with once.

use http::StatusCode;
use paybridge_tests::{NOW, World, call};
use serde_json::{Value, json};
use time::macros::datetime;

const PASSWORD: &str = "payer password 123";

/// Pat pays for cust-1 and has a card saved with the authority to charge it later.
async fn pat_with_card(world: &World) -> (String, String) {
    let pat = world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;
    let card = world.save_card(&pat, "4242424242424242").await;
    (pat, card)
}

async fn put_enrolment(world: &World, cookie: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, json) = call(
        &world.local_router(),
        "PUT",
        "/api/me/orgs/demo/autopay/cust-1",
        &[("cookie", cookie)],
        Some(body),
    )
    .await;
    (status, json)
}

async fn tick(world: &World, now: time::OffsetDateTime) -> app::schedules::TickReport {
    world.set_now(now);
    app::schedules::tick(&world.services, now, None)
        .await
        .unwrap()
}

#[tokio::test]
async fn auto_pay_schedules_new_invoices_by_the_rule_with_notice_cap_and_once() {
    let world = World::new().await;
    let (pat, card) = pat_with_card(&world).await;
    world.add_invoice("demo", "INV-1", "120.00").await; // due 2026-12-26
    world.add_invoice("demo", "INV-BIG", "900.00").await;
    let (status, enrolment) = put_enrolment(
        &world,
        &pat,
        json!({"method_id": card, "rule": {"kind": "on_due_date"}, "cap": "500.00"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    assert_eq!(enrolment["rule"], json!({"kind": "on_due_date"}));
    assert_eq!(enrolment["cap"]["amount"], "500.00");

    // The card pays the enrolment: it cannot be removed meanwhile.
    let path = format!("/api/me/orgs/demo/methods/{card}");
    let (status, _, problem) = call(
        &world.local_router(),
        "DELETE",
        &path,
        &[("cookie", &pat)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("auto-pay for cust-1")
    );

    let report = tick(&world, NOW).await;
    assert_eq!(
        (report.looked, report.auto_scheduled, report.above_cap),
        (1, 1, 1),
        "{report:?}"
    );
    let mail = world.outbox().await;
    let big = mail
        .iter()
        .find(|m| m.message.subject == "Invoice INV-BIG needs your payment")
        .expect("told about the cap");
    assert!(
        big.message.text.contains("above the USD 500.00 limit"),
        "{}",
        big.message.text
    );
    let (_, _, listed) = call(
        &world.local_router(),
        "GET",
        "/api/me/orgs/demo/schedules",
        &[("cookie", &pat)],
        None,
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["invoice_number"], "INV-1");
    assert_eq!(listed[0]["date"], "2026-12-26", "the due date");
    assert!(
        listed[0]["enrolment_id"]
            .as_str()
            .unwrap()
            .starts_with("enr_")
    );

    // Within the hour nobody looks again; the next look finds nothing new.
    assert_eq!(
        tick(&world, NOW + time::Duration::minutes(30)).await.looked,
        0
    );
    let report = tick(&world, NOW + time::Duration::hours(2)).await;
    assert_eq!(
        (report.looked, report.auto_scheduled, report.above_cap),
        (1, 0, 0),
        "each invoice once"
    );

    // Three days before: the advance notice. On the day: the charge and the receipt.
    let report = tick(&world, datetime!(2026-12-23 06:00 UTC)).await;
    assert_eq!(report.noticed, 1, "{report:?}");
    let notice = &world.outbox().await[0].message;
    assert_eq!(notice.subject, "INV-1 will be debited on 2026-12-26");
    assert_eq!(tick(&world, datetime!(2026-12-25 06:00 UTC)).await.paid, 0);
    let report = tick(&world, datetime!(2026-12-26 06:00 UTC)).await;
    assert_eq!(report.paid, 1, "{report:?}");
    assert_eq!(world.balance("demo", "INV-1").await, "0.00");
    assert_eq!(
        world.balance("demo", "INV-BIG").await,
        "900.00",
        "left for the payer"
    );
}

#[tokio::test]
async fn the_processing_delay_holds_a_new_invoice_before_it_is_charged() {
    let world = World::new().await;
    let (pat, card) = pat_with_card(&world).await;
    world.set_settings("demo", json!({"autopay": {"processing_delay_hours": 24, "advance_notice_days": 0, "run_hour": 6, "retry_days": [1], "payers_may_enrol": true}})).await;
    let (status, _) = put_enrolment(
        &world,
        &pat,
        json!({"method_id": card, "rule": {"kind": "days_after_invoice", "days": 0}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    world.add_invoice("demo", "INV-1", "75.00").await;
    // Seen at NOW (2026-11-26 12:00): the rule says today, the delay says not before tomorrow noon.
    assert_eq!(tick(&world, NOW).await.auto_scheduled, 1);
    assert_eq!(tick(&world, datetime!(2026-11-27 11:59 UTC)).await.paid, 0);
    assert_eq!(tick(&world, datetime!(2026-11-27 12:00 UTC)).await.paid, 1);
    assert_eq!(world.balance("demo", "INV-1").await, "0.00");
}

#[tokio::test]
async fn an_admins_locked_enrolment_is_the_admins_to_change() {
    let world = World::new().await;
    let (_, card) = pat_with_card(&world).await;
    let auth = format!("Bearer {}", World::demo_key());
    let body = json!({"payer_email": "pat@harbor.test", "rule": {"kind": "day_of_month", "day": 31}, "locked": true});
    let (status, _, enrolment) = call(
        &world.local_router(),
        "PUT",
        "/api/orgs/demo/autopay/cust-1",
        &[("authorization", &auth)],
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    assert_eq!(
        enrolment["method_id"],
        card.as_str(),
        "the payer's default method"
    );
    assert_eq!(
        (enrolment["locked"].clone(), enrolment["by_admin"].clone()),
        (json!(true), json!(true))
    );

    let pat = world.sign_in("pat@harbor.test", PASSWORD).await;
    let (status, problem) = put_enrolment(
        &world,
        &pat,
        json!({"method_id": card, "rule": {"kind": "on_due_date"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(problem["detail"].as_str().unwrap().contains("locked"));
    let (status, _, _) = call(
        &world.local_router(),
        "DELETE",
        "/api/me/orgs/demo/autopay/cust-1",
        &[("cookie", &pat)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, seen) = call(
        &world.local_router(),
        "GET",
        "/api/me/orgs/demo/autopay/cust-1",
        &[("cookie", &pat)],
        None,
    )
    .await;
    assert_eq!(
        (status, seen["rule"].clone()),
        (StatusCode::OK, json!({"kind": "day_of_month", "day": 31}))
    );

    // Day 31 of a short month is its last day: an invoice of 2026-11-26 runs on 2026-11-30.
    world.add_invoice("demo", "INV-1", "40.00").await;
    world.set_settings("demo", json!({"autopay": {"processing_delay_hours": 0, "advance_notice_days": 0, "run_hour": 6, "retry_days": [], "payers_may_enrol": true}})).await;
    assert_eq!(tick(&world, NOW).await.auto_scheduled, 1);
    assert_eq!(tick(&world, datetime!(2026-11-29 06:00 UTC)).await.paid, 0);
    assert_eq!(tick(&world, datetime!(2026-11-30 06:00 UTC)).await.paid, 1);

    let (status, _, _) = call(
        &world.local_router(),
        "DELETE",
        "/api/orgs/demo/autopay/cust-1",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The method is free again.
    let pat = world.sign_in("pat@harbor.test", PASSWORD).await;
    let path = format!("/api/me/orgs/demo/methods/{card}");
    let (status, _, _) = call(
        &world.local_router(),
        "DELETE",
        &path,
        &[("cookie", &pat)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_org_can_keep_enrolment_to_its_admins() {
    let world = World::new().await;
    let (pat, card) = pat_with_card(&world).await;
    world.set_settings("demo", json!({"autopay": {"payers_may_enrol": false, "run_hour": 6, "retry_days": [1, 3, 5], "advance_notice_days": 3, "processing_delay_hours": 24}})).await;
    let (status, problem) = put_enrolment(
        &world,
        &pat,
        json!({"method_id": card, "rule": {"kind": "on_due_date"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("sets up automatic payments itself")
    );
}
