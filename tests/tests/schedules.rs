//! Scheduled payments and the tick, over DynamoDB Local and the sandbox gateway, with the clock
//! moved across days and a month end: exactly once, retries, hard declines, the secondary
//! method, the paid-elsewhere skip, cancel, two ticks at once, a tick that dies after charging,
//! and what the tick reads.

use std::sync::Arc;

use app::ports::{Schedule, ScheduleState};
use async_trait::async_trait;
use http::StatusCode;
use paybridge_tests::{World, call};
use serde_json::{Value, json};
use time::macros::datetime;

const PASSWORD: &str = "payer password 123";

/// Pat, a payer of demo for cust-1, with a card saved with the authority to charge it later.
async fn pat_with_card(world: &World, number: &str) -> (String, String) {
    let pat = world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;
    let method = world.save_card(&pat, number).await;
    (pat, method)
}

async fn schedule(world: &World, cookie: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, json) = call(
        &world.local_router(),
        "POST",
        "/api/me/orgs/demo/schedules",
        &[("cookie", cookie)],
        Some(body),
    )
    .await;
    (status, json)
}

async fn schedules(world: &World, cookie: &str) -> Value {
    let (status, _, json) = call(
        &world.local_router(),
        "GET",
        "/api/me/orgs/demo/schedules",
        &[("cookie", cookie)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    json
}

/// One tick at `now` (the world's clock moves there first).
async fn tick(world: &World, now: time::OffsetDateTime) -> app::schedules::TickReport {
    world.set_now(now);
    app::schedules::tick(&world.services, now, None)
        .await
        .unwrap()
}

async fn charges(world: &World) -> usize {
    world.sandbox().charges(1000).await.unwrap().len()
}

#[tokio::test]
async fn a_payer_schedules_lists_and_cancels_and_the_method_is_held_meanwhile() {
    let world = World::new().await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;
    world.add_invoice("demo", "INV-1", "120.00").await;

    // A card saved without the authority to charge it later cannot be scheduled.
    let token = world.card_token("5555555555554444").await;
    let (_, _, plain) = call(
        &world.local_router(),
        "POST",
        "/api/me/orgs/demo/methods",
        &[("cookie", &pat)],
        Some(json!({"token": token, "kind": "card"})),
    )
    .await;
    let (status, problem) = schedule(
        &world,
        &pat,
        json!({"invoice_number": "INV-1", "method_id": plain["id"], "date": "2026-11-30"}),
    )
    .await;
    assert_eq!(
        (status, problem["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("mandate_required"))
    );

    let card = world.save_card(&pat, "4242424242424242").await;
    let (status, problem) = schedule(
        &world,
        &pat,
        json!({"invoice_number": "INV-1", "method_id": card, "date": "2026-11-25"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (status, made) = schedule(
        &world,
        &pat,
        json!({"invoice_number": "INV-1", "method_id": card, "date": "2026-11-30"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["status"], "scheduled");
    assert_eq!(made["date"], "2026-11-30");
    assert_eq!(
        made["next_try_at"], "2026-11-30T06:00:00Z",
        "the org's run hour that day (UTC org)"
    );
    let (status, problem) = schedule(
        &world,
        &pat,
        json!({"invoice_number": "INV-1", "method_id": card, "date": "2026-12-02"}),
    )
    .await;
    assert_eq!(
        (status, problem["code"].clone()),
        (StatusCode::CONFLICT, json!("already_scheduled"))
    );
    assert_eq!(
        schedules(&world, &world.sign_in("pat@harbor.test", PASSWORD).await)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The card is in use meanwhile.
    let path = format!("/api/me/orgs/demo/methods/{card}");
    let (status, _, problem) = call(
        &world.local_router(),
        "DELETE",
        &path,
        &[("cookie", &pat)],
        None,
    )
    .await;
    assert_eq!(
        (status, problem["code"].clone()),
        (StatusCode::CONFLICT, json!("method_in_use"))
    );

    // Cancelled: it never runs, and the card is free again.
    let cancel = format!(
        "/api/me/orgs/demo/schedules/{}",
        made["id"].as_str().unwrap()
    );
    let (status, _, cancelled) = call(
        &world.local_router(),
        "DELETE",
        &cancel,
        &[("cookie", &pat)],
        None,
    )
    .await;
    assert_eq!(
        (status, cancelled["status"].clone()),
        (StatusCode::OK, json!("cancelled"))
    );
    let (status, _, _) = call(
        &world.local_router(),
        "DELETE",
        &cancel,
        &[("cookie", &pat)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let report = tick(&world, datetime!(2026-11-30 06:05 UTC)).await;
    assert_eq!(report.claimed, 0);
    assert_eq!(charges(&world).await, 0);
    assert_eq!(world.balance("demo", "INV-1").await, "120.00");
    let pat = world.sign_in("pat@harbor.test", PASSWORD).await;
    let (status, _, _) = call(
        &world.local_router(),
        "DELETE",
        &path,
        &[("cookie", &pat)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Another payer cannot see or cancel pat's schedules.
    let sam = world
        .payer("demo", "sam@harbor.test", &["cust-1"], PASSWORD)
        .await;
    assert_eq!(
        schedules(&world, &world.sign_in("sam@harbor.test", PASSWORD).await).await,
        json!([])
    );
    let (status, _, _) = call(
        &world.local_router(),
        "DELETE",
        &cancel,
        &[("cookie", &sam)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_tick_charges_on_the_day_once_across_the_month_end() {
    let world = World::new().await;
    let (pat, card) = pat_with_card(&world, "4242424242424242").await;
    world.add_invoice("demo", "INV-1", "120.00").await;
    let (status, _) = schedule(
        &world,
        &pat,
        json!({"invoice_number": "INV-1", "method_id": card, "date": "2026-11-30"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let mail_before = world.outbox().await.len();

    assert_eq!(
        tick(&world, datetime!(2026-11-29 23:00 UTC)).await.claimed,
        0,
        "not yet"
    );
    assert_eq!(
        tick(&world, datetime!(2026-11-30 05:59 UTC)).await.claimed,
        0,
        "before the run hour"
    );
    let report = tick(&world, datetime!(2026-11-30 06:00 UTC)).await;
    assert_eq!((report.claimed, report.paid), (1, 1));
    assert_eq!(world.balance("demo", "INV-1").await, "0.00");
    assert_eq!(charges(&world).await, 1);
    let listed = schedules(&world, &world.sign_in("pat@harbor.test", PASSWORD).await).await;
    assert_eq!(listed[0]["status"], "succeeded");
    assert!(
        listed[0]["payment_id"]
            .as_str()
            .unwrap()
            .starts_with("pay_")
    );
    let mail = world.outbox().await;
    assert_eq!(mail.len(), mail_before + 1, "one receipt");
    assert!(mail[0].message.text.contains("Visa ending 4242"));

    // The next ticks, into December, charge nothing more.
    for now in [
        datetime!(2026-11-30 06:05 UTC),
        datetime!(2026-12-01 06:00 UTC),
    ] {
        let report = tick(&world, now).await;
        assert_eq!(report.claimed, 0);
    }
    assert_eq!(charges(&world).await, 1);
}

#[tokio::test]
async fn soft_declines_retry_with_backoff_then_fail_and_hard_declines_never_retry() {
    let world = World::new().await;
    // 4000 0000 0000 9995: insufficient funds, every time.
    let (pat, card) = pat_with_card(&world, "4000000000009995").await;
    world.add_invoice("demo", "INV-1", "120.00").await;
    schedule(
        &world,
        &pat,
        json!({"invoice_number": "INV-1", "method_id": card, "date": "2026-11-30"}),
    )
    .await;

    // Retries 1, 3 and 5 days after each try (the org's default), at the run hour.
    let tries = [
        (datetime!(2026-11-30 06:00 UTC), "2026-12-01T06:00:00Z"),
        (datetime!(2026-12-01 06:00 UTC), "2026-12-04T06:00:00Z"),
        (datetime!(2026-12-04 06:00 UTC), "2026-12-09T06:00:00Z"),
    ];
    for (now, next) in tries {
        let report = tick(&world, now).await;
        assert_eq!(report.retried, 1, "{now}");
        let listed = schedules(&world, &world.sign_in("pat@harbor.test", PASSWORD).await).await;
        assert_eq!(listed[0]["status"], "scheduled");
        assert_eq!(listed[0]["next_try_at"], next);
        assert_eq!(listed[0]["outcome"], "insufficient_funds");
        let mail = &world.outbox().await[0].message;
        assert!(
            mail.subject.contains("we will try again"),
            "{}",
            mail.subject
        );
        // Nothing happens between tries.
        assert_eq!(
            tick(&world, now + time::Duration::hours(12)).await.claimed,
            0
        );
    }
    let report = tick(&world, datetime!(2026-12-09 06:00 UTC)).await;
    assert_eq!(report.failed, 1);
    assert_eq!(
        schedules(&world, &world.sign_in("pat@harbor.test", PASSWORD).await).await[0]["status"],
        "failed"
    );
    assert_eq!(charges(&world).await, 4, "the first try and three retries");
    let mail = &world.outbox().await[0].message;
    assert!(mail.subject.contains("failed"));
    assert!(mail.text.contains("will not be tried again"));
    assert!(
        mail.text.contains("/pay/demo/INV-1"),
        "a link to pay another way"
    );
    assert_eq!(
        tick(&world, datetime!(2026-12-20 06:00 UTC)).await.claimed,
        0
    );
    assert_eq!(world.balance("demo", "INV-1").await, "120.00");

    // A stolen card: failed at once, never retried. (A new org member's own card.)
    let sam = world
        .payer("demo", "sam@harbor.test", &["cust-1"], PASSWORD)
        .await;
    let stolen = world.save_card(&sam, "4000000000009979").await;
    world.add_invoice("demo", "INV-2", "50.00").await;
    schedule(
        &world,
        &sam,
        json!({"invoice_number": "INV-2", "method_id": stolen, "date": "2026-12-31"}),
    )
    .await;
    let report = tick(&world, datetime!(2026-12-31 06:00 UTC)).await;
    assert_eq!((report.failed, report.retried), (1, 0));
    assert_eq!(
        schedules(&world, &world.sign_in("sam@harbor.test", PASSWORD).await).await[0]["outcome"],
        "stolen_card"
    );
    assert_eq!(
        tick(&world, datetime!(2027-01-01 06:00 UTC)).await.claimed,
        0
    );
}

#[tokio::test]
async fn the_secondary_method_is_tried_once_when_the_primary_fails() {
    let world = World::new().await;
    let (pat, primary) = pat_with_card(&world, "4000000000000069").await; // expired: hard
    let secondary = world.save_card(&pat, "5555555555554444").await;
    world.add_invoice("demo", "INV-1", "80.00").await;
    // As an auto-pay enrolment makes it: a primary and a secondary method.
    let x = enrolment_schedule(&world, "INV-1", &primary, Some(&secondary)).await;
    let report = tick(&world, x.due_at).await;
    assert_eq!(report.retried, 1, "the secondary is next");
    assert!(
        world.outbox().await[0]
            .message
            .subject
            .contains("trying your other method")
    );
    let report = tick(&world, x.due_at + time::Duration::minutes(5)).await;
    assert_eq!(report.paid, 1);
    assert_eq!(world.balance("demo", "INV-1").await, "0.00");
    let charged = world.sandbox().charges(10).await.unwrap();
    assert_eq!(charged.len(), 2);
    assert_eq!(charged[0].last4, "4444", "the secondary paid");
}

/// A schedule as auto-pay makes one (through the port: enrolments make theirs the same way).
async fn enrolment_schedule(
    world: &World,
    invoice: &str,
    method: &str,
    secondary: Option<&str>,
) -> Schedule {
    let user = world
        .services
        .users
        .find_user_by_email(&domain::Email::parse("pat@harbor.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    let at = datetime!(2026-11-30 06:00 UTC);
    let x = Schedule {
        id: domain::ScheduleId::from_ulid(&ulid::Ulid::new().to_string()).unwrap(),
        org: domain::OrgSlug::parse("demo").unwrap(),
        user: user.id,
        invoice: domain::InvoiceNumber::parse(invoice).unwrap(),
        customer: domain::CustomerId::parse("cust-1").unwrap(),
        method: domain::MethodId::parse(method).unwrap(),
        secondary: secondary.map(|m| domain::MethodId::parse(m).unwrap()),
        amount: None,
        run_on: at.date(),
        due_at: at,
        enrolment: Some(domain::EnrolmentId::from_ulid(&ulid::Ulid::new().to_string()).unwrap()),
        state: ScheduleState::Scheduled,
        attempts: 0,
        on_secondary: false,
        payment: None,
        outcome: None,
        notice_at: None,
        version: 0,
        created_at: at,
        updated_at: at,
    };
    let made = world.services.schedules.create_schedule(&x).await.unwrap();
    assert_eq!(made, app::ports::NewSchedule::Created);
    x
}

#[tokio::test]
async fn paid_elsewhere_is_skipped_and_paying_now_cancels_the_schedule() {
    let world = World::new().await;
    world
        .set_settings("demo", json!({"allow_partial": true}))
        .await;
    let (pat, card) = pat_with_card(&world, "4242424242424242").await;
    world.add_invoice("demo", "INV-1", "120.00").await;
    world.add_invoice("demo", "INV-2", "60.00").await;
    world.add_invoice("demo", "INV-3", "90.00").await;
    for invoice in ["INV-1", "INV-2", "INV-3"] {
        let (status, _) = schedule(
            &world,
            &pat,
            json!({"invoice_number": invoice, "method_id": card, "date": "2026-12-01"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }

    // INV-1 paid in full on the Pay Now page: its schedule is cancelled there and then.
    let token = world.card_token("4242424242424242").await;
    let (status, _, _) = call(
        &world.local_router(),
        "POST",
        "/api/pay/demo/INV-1",
        &[("idempotency-key", "g-1")],
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let listed = schedules(&world, &world.sign_in("pat@harbor.test", PASSWORD).await).await;
    let inv1 = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["invoice_number"] == "INV-1")
        .unwrap();
    assert_eq!(
        (inv1["status"].clone(), inv1["outcome"].clone()),
        (json!("cancelled"), json!("paid"))
    );

    // INV-2 paid in part on the page: the schedule pays the rest, the lower amount.
    let token = world.card_token("4242424242424242").await;
    let (status, _, _) = call(
        &world.local_router(),
        "POST",
        "/api/pay/demo/INV-2",
        &[("idempotency-key", "g-2")],
        Some(json!({"token": token, "amount": "25.00"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // INV-3 paid through another channel that does not tell schedules: skipped at run time.
    let token = world.card_token("4242424242424242").await;
    let command = app::pay_now::PayCommand {
        org: domain::OrgSlug::parse("demo").unwrap(),
        invoice: domain::InvoiceNumber::parse("INV-3").unwrap(),
        payment_id: domain::PaymentId::from_ulid(&ulid::Ulid::new().to_string()).unwrap(),
        resumed: false,
        source: app::pay_now::PaySource::Token(domain::Secret::new(token)),
        amount: None,
        amount_at_most: false,
        receipt_email: None,
        receipt_asked: false,
        client: None,
    };
    app::pay_now::pay(&world.services, command).await.unwrap();

    let report = tick(&world, datetime!(2026-12-01 06:00 UTC)).await;
    assert_eq!((report.claimed, report.paid, report.skipped), (2, 1, 1));
    assert_eq!(world.balance("demo", "INV-2").await, "0.00");
    let last = &world.sandbox().charges(1).await.unwrap()[0];
    assert_eq!(
        last.amount.amount_string(),
        "35.00",
        "the balance left, not the original 60.00"
    );
    let mail = world.outbox().await;
    let skipped = mail
        .iter()
        .find(|m| m.message.subject.contains("nothing was charged"))
        .expect("the payer is told");
    assert!(skipped.message.text.contains("was paid already"));
}

#[tokio::test]
async fn two_ticks_at_once_charge_each_of_500_schedules_exactly_once() {
    let world = World::new().await;
    let (_, card) = pat_with_card(&world, "4242424242424242").await;
    let due = datetime!(2026-11-30 06:00 UTC);
    for i in 0..500 {
        let invoice = format!("B-{i}");
        world.add_invoice("demo", &invoice, "10.00").await;
        enrolment_schedule(&world, &invoice, &card, None).await;
    }
    world.set_now(due);
    let (a, b) = tokio::join!(
        app::schedules::tick(&world.services, due, None),
        app::schedules::tick(&world.services, due, None)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.paid + b.paid, 500, "{a:?} {b:?}");
    assert_eq!(a.claimed + b.claimed, 500);
    assert_eq!(charges(&world).await, 500, "one charge per schedule");
    assert!(a.paid > 0 && b.paid > 0, "both ticks did work: {a:?} {b:?}");
}

/// A gateway that charges and then "dies" before answering: the charge happened, our write
/// did not.
struct DiesAfterCharging(Arc<dyn app::ports::Gateway>);

#[async_trait]
impl app::ports::Gateway for DiesAfterCharging {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    async fn charge(
        &self,
        request: &app::ports::ChargeRequest,
    ) -> Result<app::ports::ChargeOutcome, app::ports::GatewayError> {
        self.0.charge(request).await?;
        Err(app::ports::GatewayError::Unavailable(
            "the tick died here".into(),
        ))
    }
    async fn describe(
        &self,
        org: &domain::OrgSlug,
        source: &app::ports::ChargeSource,
    ) -> Result<Option<app::payments::MethodSummary>, app::ports::GatewayError> {
        self.0.describe(org, source).await
    }
    async fn find_charge(
        &self,
        org: &domain::OrgSlug,
        reference: &str,
    ) -> Result<Option<app::ports::ChargeOutcome>, app::ports::GatewayError> {
        self.0.find_charge(org, reference).await
    }
    async fn create_customer(
        &self,
        org: &domain::OrgSlug,
        reference: &str,
        email: &domain::Email,
        name: &str,
    ) -> Result<String, app::ports::GatewayError> {
        self.0.create_customer(org, reference, email, name).await
    }
    async fn attach_method(
        &self,
        org: &domain::OrgSlug,
        customer: &str,
        token: &domain::Secret<String>,
    ) -> Result<Option<app::ports::GatewayMethod>, app::ports::GatewayError> {
        self.0.attach_method(org, customer, token).await
    }
    async fn detach_method(
        &self,
        org: &domain::OrgSlug,
        customer: &str,
        method: &str,
    ) -> Result<(), app::ports::GatewayError> {
        self.0.detach_method(org, customer, method).await
    }
}

#[tokio::test]
async fn a_tick_that_dies_after_the_charge_is_finished_by_the_next_without_a_second_charge() {
    let world = World::new().await;
    let (pat, card) = pat_with_card(&world, "4242424242424242").await;
    world.add_invoice("demo", "INV-1", "120.00").await;
    schedule(
        &world,
        &pat,
        json!({"invoice_number": "INV-1", "method_id": card, "date": "2026-11-30"}),
    )
    .await;
    let due = datetime!(2026-11-30 06:00 UTC);
    world.set_now(due);

    let mut dying = (*world.services).clone();
    dying.gateway = Arc::new(DiesAfterCharging(world.services.gateway.clone()));
    let report = app::schedules::tick(&dying, due, None).await.unwrap();
    assert_eq!((report.claimed, report.unresolved), (1, 1));
    assert_eq!(charges(&world).await, 1, "charged, but not recorded");
    assert_eq!(world.balance("demo", "INV-1").await, "120.00");

    // Within the claim nothing happens; after it, the next tick looks the charge up.
    assert_eq!(
        tick(&world, due + time::Duration::minutes(1)).await.claimed,
        0
    );
    let report = tick(
        &world,
        due + app::schedules::LEASE + time::Duration::minutes(1),
    )
    .await;
    assert_eq!((report.claimed, report.paid), (1, 1), "{report:?}");
    assert_eq!(charges(&world).await, 1, "no second charge");
    assert_eq!(world.balance("demo", "INV-1").await, "0.00");
    assert_eq!(
        schedules(&world, &world.sign_in("pat@harbor.test", PASSWORD).await).await[0]["status"],
        "succeeded"
    );
}

#[tokio::test]
async fn the_tick_reads_what_is_due_not_the_100000_in_the_future() {
    let world = World::new().await;
    let (_, card) = pat_with_card(&world, "4242424242424242").await;
    let due = datetime!(2026-11-30 06:00 UTC);
    // 20 due, through the port.
    for i in 0..20 {
        let invoice = format!("D-{i}");
        world.add_invoice("demo", &invoice, "10.00").await;
        enrolment_schedule(&world, &invoice, &card, None).await;
    }
    // 100,000 in the future: later today (same index partitions as the due ones) and every
    // day of the next 200, written straight into the table.
    paybridge_tests::load_future_schedules(&world, &card, due, 100_000).await;
    world.set_now(due);
    let before = world.store.usage();
    let report = app::schedules::tick(&world.services, due, None)
        .await
        .unwrap();
    let used = world.store.usage().since(before);
    assert_eq!(report.paid, 20);
    assert_eq!(report.items_read, 20, "{report:?}");
    eprintln!("tick over 20 due among 100,000: {used:?}");
}

#[tokio::test]
async fn a_card_that_will_have_expired_cannot_be_scheduled_past_its_month() {
    let world = World::new().await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;
    world.add_invoice("demo", "INV-1", "30.00").await;
    let token = world
        .card_token_expiring("4242424242424242", 12, 2026)
        .await;
    let body = json!({"token": token, "kind": "card", "mandate": {"signer_name": "Pat Lee", "terms_version": app::methods::TERMS_VERSION}});
    let (_, _, card) = call(
        &world.local_router(),
        "POST",
        "/api/me/orgs/demo/methods",
        &[("cookie", &pat)],
        Some(body),
    )
    .await;
    let late = json!({"invoice_number": "INV-1", "method_id": card["id"], "date": "2027-01-04"});
    let (status, problem) = schedule(&world, &pat, late).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("expires before that day")
    );
    let in_time = json!({"invoice_number": "INV-1", "method_id": card["id"], "date": "2026-12-31"});
    assert_eq!(schedule(&world, &pat, in_time).await.0, StatusCode::CREATED);
}

/// A bank that wants the payer to confirm an unattended charge: not retried (it would ask again),
/// and the payer is emailed a link to pay on the page, where they are present and it goes
/// through.
#[tokio::test]
async fn a_charge_the_bank_wants_confirmed_emails_the_payer_a_link_to_pay() {
    let world = World::new().await;
    let (pat, card) = pat_with_card(&world, "4000002760003184").await;
    world.add_invoice("demo", "INV-1", "120.00").await;
    let (status, made) = schedule(
        &world,
        &pat,
        json!({"invoice_number": "INV-1", "method_id": card, "date": "2026-11-30"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let report = tick(&world, datetime!(2026-11-30 06:00 UTC)).await;
    assert_eq!((report.paid, report.failed), (0, 1), "{report:?}");
    assert_eq!(world.balance("demo", "INV-1").await, "120.00");
    let pat = world.sign_in("pat@harbor.test", PASSWORD).await;
    let listed = schedules(&world, &pat).await;
    assert_eq!(listed[0]["status"], "failed", "{listed}");
    assert_eq!(listed[0]["outcome"], "authentication_required", "{listed}");

    let mail = world.outbox().await;
    let notice = mail
        .iter()
        .find(|m| m.message.subject == "Invoice INV-1: please confirm the payment with your bank")
        .expect("the payer is asked to confirm");
    assert_eq!(notice.message.to.as_str(), "pat@harbor.test");
    assert!(
        notice.message.text.contains("/pay/demo/INV-1"),
        "{}",
        notice.message.text
    );
    // Not tried again unattended.
    let report = tick(&world, datetime!(2026-12-03 06:00 UTC)).await;
    assert_eq!(
        report.paid + report.failed + report.retried,
        0,
        "{report:?}"
    );

    // On the page, with the payer there, the same card goes through.
    let token = world.card_token("4000002760003184").await;
    let (status, _, payment) = call(
        &world.local_router(),
        "POST",
        "/api/pay/demo/INV-1",
        &[("idempotency-key", "confirm-1"), ("cookie", &pat)],
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(world.balance("demo", "INV-1").await, "0.00");
}
