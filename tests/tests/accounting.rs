//! Orgs whose invoices live in Xero or ConnectWise Manage (their HTTP doubles): Pay Now charges
//! the balance the accounting system reports, and every payment is written back there once,
//! through 5xx and 429, or waits on the admin's unprocessed-payments list.

use axum::Router;
use devtools::connectwise_double::{self as cw, ConnectWiseDouble, CwInvoice};
use devtools::xero_double::{Fault, Route, XeroDouble, XeroInvoice};
use http::StatusCode;
use paybridge_tests::{NOW, World, call};
use serde_json::{Value, json};
use time::Duration;

const CONTACT: &str = "5b96e86b-418e-48e8-8949-308c14aec278";
const APP: &str = "paybridge-app";
const APP_SECRET: &str = "xero-app-secret-0123456789";

async fn xero_world() -> (World, XeroDouble) {
    let xero = XeroDouble::start().await;
    xero.add_app(APP, APP_SECRET);
    let world = World::with_endpoints(
        gateways::Endpoints::default(),
        accounting::Endpoints::xero_at(&xero.url()),
    )
    .await;
    (world, xero)
}

fn admin() -> String {
    format!("Bearer {}", World::demo_key())
}

async fn api(world: &World, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let (status, _, json) = call(
        &world.local_router(),
        method,
        path,
        &[("authorization", &admin())],
        body,
    )
    .await;
    (status, json)
}

/// Connects demo to the double's organisation with a ready token pair (as a Xero custom
/// connection, or after consent); answers the access token.
async fn connect_xero(world: &World, xero: &XeroDouble) -> String {
    let (tenant, access, refresh) = xero.connect(APP);
    let expires = (world.services.clock.now() + Duration::minutes(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let settings = json!({"client_id": APP, "client_secret": APP_SECRET, "payment_account": "090",
        "tenant_id": tenant, "access_token": access, "refresh_token": refresh, "access_expires_at": expires});
    let (status, view) = api(
        world,
        "PUT",
        "/api/orgs/demo/accounting",
        Some(json!({"system": "xero", "settings": settings})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (view["system"].as_str(), view["state"].as_str()),
        (Some("xero"), Some("connected"))
    );
    let shown = view.to_string();
    assert!(!shown.contains(&access) && !shown.contains(&refresh) && !shown.contains(APP_SECRET));
    access
}

fn pay_router(world: &World) -> Router {
    web::pay_now::router(world.services.clone())
}

async fn pay(world: &World, invoice: &str, key: &str) -> (StatusCode, Value) {
    let token = world.card_token("4242424242424242").await;
    let (status, _, json) = call(
        &pay_router(world),
        "POST",
        &format!("/api/pay/demo/{invoice}"),
        &[("idempotency-key", key)],
        Some(json!({"token": token, "email": "pat@harbor.test"})),
    )
    .await;
    (status, json)
}

/// Runs the follow-up queue (as the tick does) at the world's time.
async fn run_queue(world: &World) -> app::webhooks::FollowUpReport {
    app::webhooks::run_due_follow_ups(&world.services, 100)
        .await
        .unwrap()
}

fn later(world: &World, by: Duration) {
    world.set_now(world.services.clock.now() + by);
}

#[tokio::test]
async fn pay_now_charges_xeros_amount_due_and_writes_the_payment_back_once_through_500_and_429() {
    let (world, xero) = xero_world().await;
    connect_xero(&world, &xero).await;
    let mut invoice = XeroInvoice::authorised("INV-2001", CONTACT, "115.00", "USD");
    invoice.amount_due = "87.50".into(); // part paid in Xero already
    xero.add_invoice(invoice);
    let (status, test) = api(&world, "POST", "/api/orgs/demo/accounting/test", None).await;
    assert_eq!(
        (status, test["ok"].clone()),
        (StatusCode::OK, json!(true)),
        "{test}"
    );

    let (_, _, summary) = call(
        &pay_router(&world),
        "GET",
        "/api/pay/demo/INV-2001",
        &[],
        None,
    )
    .await;
    assert_eq!(
        summary["amount_due"],
        json!({"amount": "87.50", "currency": "USD"})
    );
    assert_eq!(summary["customer_name"], format!("Customer {CONTACT}"));

    xero.fail_next(
        Route::Payments,
        vec![
            Fault::Status(500),
            Fault::RateLimited {
                retry_after_secs: 7,
                problem: "minute",
            },
        ],
    );
    let (status, payment) = pay(&world, "INV-2001", "k-1").await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(
        payment["amount"],
        json!({"amount": "87.50", "currency": "USD"})
    );
    let charged = world.sandbox().charges(10).await.unwrap();
    assert_eq!(charged.len(), 1);
    assert_eq!(charged[0].amount.amount_string(), "87.50");

    // First try: 500. Nothing in Xero; tried again in a minute.
    assert_eq!(run_queue(&world).await.waiting, 1);
    assert!(xero.payments().is_empty());
    later(&world, Duration::seconds(30));
    assert_eq!(
        run_queue(&world).await,
        Default::default(),
        "not due before its backoff"
    );
    // Second: 429 with Retry-After 7.
    later(&world, Duration::seconds(31));
    assert_eq!(run_queue(&world).await.waiting, 1);
    assert!(xero.payments().is_empty());
    later(&world, Duration::seconds(7));
    assert_eq!(run_queue(&world).await.done, 1);

    let posted = xero.payments();
    assert_eq!(posted.len(), 1, "{posted:?}");
    let id = payment["id"].as_str().unwrap();
    assert_eq!(
        (posted[0].amount.as_str(), posted[0].account_code.as_str()),
        ("87.50", "090")
    );
    assert_eq!(posted[0].idempotency_key.as_deref(), Some(id));
    assert!(posted[0].reference.contains(id), "{}", posted[0].reference);
    let after = xero.invoice("INV-2001").unwrap();
    assert_eq!(
        (after.amount_due.as_str(), after.status.as_str()),
        ("0.00", "PAID")
    );

    // Nothing more to do, ever: the queue is empty and Xero saw three PUTs.
    later(&world, Duration::hours(3));
    assert_eq!(run_queue(&world).await, Default::default());
    assert_eq!(xero.calls("PUT /api.xro/2.0/Payments"), 3);
    let (_, _, summary) = call(
        &pay_router(&world),
        "GET",
        "/api/pay/demo/INV-2001",
        &[],
        None,
    )
    .await;
    assert_eq!(summary["status"], "paid");
}

#[tokio::test]
async fn an_invoice_paid_in_xero_after_the_page_was_shown_is_not_charged_and_a_failing_xero_asks_to_try_again()
 {
    let (world, xero) = xero_world().await;
    connect_xero(&world, &xero).await;
    xero.add_invoice(XeroInvoice::authorised("INV-2002", CONTACT, "40.00", "USD"));
    let (status, _, _) = call(&pay_router(&world), "GET", "/pay/demo/INV-2002", &[], None).await;
    assert_eq!(status, StatusCode::OK);

    // Xero is down: the payer is asked to try again shortly, and nothing is charged.
    xero.fail_next(Route::Invoices, vec![Fault::Status(503)]);
    let (status, problem) = pay(&world, "INV-2002", "k-1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert!(world.sandbox().charges(10).await.unwrap().is_empty());

    // Paid in Xero meanwhile (by bank transfer): refused, nothing charged.
    xero.mark_paid("INV-2002");
    let (status, problem) = pay(&world, "INV-2002", "k-2").await;
    assert!(status.is_client_error(), "{status} {problem}");
    assert!(world.sandbox().charges(10).await.unwrap().is_empty());
    assert!(
        xero.payments()
            .iter()
            .all(|p| p.reference.is_empty() || !p.reference.contains("Paybridge"))
    );
}

#[tokio::test]
async fn a_write_back_that_keeps_failing_waits_for_the_admin_and_retry_posts_it_once() {
    let (world, xero) = xero_world().await;
    connect_xero(&world, &xero).await;
    xero.add_invoice(XeroInvoice::authorised("INV-2003", CONTACT, "60.00", "USD"));
    xero.add_invoice(XeroInvoice::authorised("INV-2004", CONTACT, "25.00", "USD"));
    let (status, paid) = pay(&world, "INV-2003", "k-1").await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");

    xero.fail_next(
        Route::Payments,
        vec![Fault::Status(500); app::books::MAX_ATTEMPTS as usize],
    );
    for _ in 0..app::books::MAX_ATTEMPTS {
        run_queue(&world).await;
        later(&world, Duration::hours(2));
    }
    assert!(xero.payments().is_empty());
    let (status, list) = api(&world, "GET", "/api/orgs/demo/unprocessed-payments", None).await;
    assert_eq!(status, StatusCode::OK);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["payment_id"], paid["id"]);
    assert_eq!(items[0]["invoice_number"], "INV-2003");
    assert_eq!(
        items[0]["amount"],
        json!({"amount": "60.00", "currency": "USD"})
    );
    assert!(
        items[0]["reason"]
            .as_str()
            .unwrap()
            .contains("after 8 tries"),
        "{list}"
    );
    // Off the queue: the tick leaves it alone.
    later(&world, Duration::days(1));
    assert_eq!(run_queue(&world).await, Default::default());

    let retry = format!(
        "/api/orgs/demo/unprocessed-payments/{}/retry",
        paid["id"].as_str().unwrap()
    );
    let (status, outcome) = api(&world, "POST", &retry, None).await;
    assert_eq!(
        (status, outcome["outcome"].as_str()),
        (StatusCode::OK, Some("written_back")),
        "{outcome}"
    );
    assert_eq!(xero.payments().len(), 1);
    let (status, _) = api(&world, "POST", &retry, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "off the list");
    let (_, list) = api(&world, "GET", "/api/orgs/demo/unprocessed-payments", None).await;
    assert_eq!(list["items"], json!([]));

    // Refused outright (voided in Xero after the payment): straight onto the list; recorded by
    // hand, it is marked fixed and leaves it.
    let (_, second) = pay(&world, "INV-2004", "k-2").await;
    xero.set_status("INV-2004", "VOIDED");
    run_queue(&world).await;
    let (_, list) = api(&world, "GET", "/api/orgs/demo/unprocessed-payments", None).await;
    assert_eq!(list["items"][0]["payment_id"], second["id"], "{list}");
    let fixed = format!(
        "/api/orgs/demo/unprocessed-payments/{}/fixed",
        second["id"].as_str().unwrap()
    );
    assert_eq!(
        api(&world, "POST", &fixed, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api(&world, "POST", &fixed, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = api(&world, "GET", "/api/orgs/demo/unprocessed-payments", None).await;
    assert_eq!(list["items"], json!([]));
    assert_eq!(xero.payments().len(), 1);
}

#[tokio::test]
async fn a_refund_reverses_the_payment_in_xero() {
    let (world, xero) = xero_world().await;
    connect_xero(&world, &xero).await;
    xero.add_invoice(XeroInvoice::authorised("INV-2005", CONTACT, "30.00", "USD"));
    let (_, paid) = pay(&world, "INV-2005", "k-1").await;
    run_queue(&world).await;
    assert_eq!(xero.invoice("INV-2005").unwrap().status, "PAID");

    let path = format!(
        "/api/orgs/demo/payments/{}/refunds",
        paid["id"].as_str().unwrap()
    );
    let (status, _, refund) = call(
        &world.local_router(),
        "POST",
        &path,
        &[("authorization", &admin()), ("idempotency-key", "refund-1")],
        Some(json!({})),
    )
    .await;
    assert_eq!(status.as_u16() / 100, 2, "{refund}");
    for _ in 0..3 {
        run_queue(&world).await;
    }
    let payments = xero.payments();
    assert_eq!(payments.len(), 1);
    assert!(payments[0].deleted, "{payments:?}");
    let invoice = xero.invoice("INV-2005").unwrap();
    assert_eq!(
        (invoice.amount_due.as_str(), invoice.status.as_str()),
        ("30.00", "AUTHORISED")
    );
}

#[tokio::test]
async fn an_admin_connects_xero_by_consent() {
    let (world, xero) = xero_world().await;
    let (status, view) = api(
        &world,
        "PUT",
        "/api/orgs/demo/accounting",
        Some(json!({"system": "xero", "settings": {"client_id": APP, "client_secret": APP_SECRET, "payment_account": "090"}})),
    )
    .await;
    assert_eq!(
        (status, view["state"].as_str()),
        (StatusCode::OK, Some("awaiting_consent")),
        "{view}"
    );
    // Meanwhile the ledger serves.
    world.add_invoice("demo", "INV-1", "10.00").await;
    let (status, _, _) = call(&pay_router(&world), "GET", "/api/pay/demo/INV-1", &[], None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, consent) = api(
        &world,
        "POST",
        "/api/orgs/demo/accounting/xero/consent",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{consent}");
    let url = consent["authorize_url"].as_str().unwrap();
    assert!(
        url.starts_with(&xero.url()) && url.contains("offline_access"),
        "{url}"
    );
    // The admin consents in Xero, which sends the browser back with a code.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = http.get(url).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 302);
    let back = answer.headers()["location"].to_str().unwrap().to_owned();
    let path = back
        .trim_start_matches(&world.services.public_url)
        .to_owned();
    assert!(path.starts_with("/accounting/xero/callback?"), "{back}");

    let (status, _, page) = call(&world.local_router(), "GET", &path, &[], None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.as_str().unwrap().contains("Xero is connected"));
    let (_, view) = api(&world, "GET", "/api/orgs/demo/accounting", None).await;
    assert_eq!(view["state"], "connected");
    assert_eq!(view["settings"]["tenant_id"], xero.tenant_id());
    // The link works once.
    let (status, _, _) = call(&world.local_router(), "GET", &path, &[], None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, test) = api(&world, "POST", "/api/orgs/demo/accounting/test", None).await;
    assert_eq!(
        (status, test["ok"].clone()),
        (StatusCode::OK, json!(true)),
        "{test}"
    );
    // No token in the table in clear text.
    let table = world.table_text().await;
    assert!(!table.contains(APP_SECRET));
}

const COMPANY: u64 = 250;

fn cw_invoice(number: &str, balance: &str, due_in_days: i64) -> CwInvoice {
    CwInvoice {
        number: number.to_owned(),
        company_id: COMPANY,
        company_name: "Harbor Dental".to_owned(),
        total: balance.to_owned(),
        balance: balance.to_owned(),
        currency: Some("USD".to_owned()),
        date: NOW.date(),
        due_date: NOW.date() + Duration::days(due_in_days),
    }
}

/// demo on the ConnectWise double, with an API member's keys.
async fn connectwise_world() -> (World, ConnectWiseDouble) {
    let manage = ConnectWiseDouble::start().await;
    manage.add_member("harborit", "pubkey-1", "private-key-abcdef");
    let world = World::new().await;
    let settings = json!({"site": manage.url(), "codebase": manage.codebase(), "company": "harborit",
        "public_key": "pubkey-1", "private_key": "private-key-abcdef", "client_id": "0f3a6c9e-client"});
    let (status, view) = api(
        &world,
        "PUT",
        "/api/orgs/demo/accounting",
        Some(json!({"system": "connectwise", "settings": settings})),
    )
    .await;
    assert_eq!(
        (status, view["state"].as_str()),
        (StatusCode::OK, Some("connected")),
        "{view}"
    );
    assert!(!view.to_string().contains("private-key-abcdef"));
    let (_, test) = api(&world, "POST", "/api/orgs/demo/accounting/test", None).await;
    assert_eq!(test["ok"], json!(true), "{test}");
    (world, manage)
}

#[tokio::test]
async fn pay_now_charges_the_connectwise_balance_and_writes_back_once_through_500_and_429() {
    let (world, manage) = connectwise_world().await;
    let mut invoice = cw_invoice("10452", "480.00", 30);
    invoice.balance = "312.40".into();
    manage.add_invoice(invoice);

    let (_, _, summary) = call(&pay_router(&world), "GET", "/api/pay/demo/10452", &[], None).await;
    assert_eq!(
        summary["amount_due"],
        json!({"amount": "312.40", "currency": "USD"})
    );
    assert_eq!(summary["customer_name"], "Harbor Dental");

    manage.fail_next(
        cw::Route::PaymentPost,
        vec![
            cw::Fault::Status(500),
            cw::Fault::RateLimited {
                retry_after_secs: 7,
            },
        ],
    );
    let (status, payment) = pay(&world, "10452", "k-1").await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["amount"]["amount"], "312.40");

    assert_eq!(run_queue(&world).await.waiting, 1);
    later(&world, Duration::minutes(1));
    assert_eq!(run_queue(&world).await.waiting, 1);
    assert!(manage.payments().is_empty());
    later(&world, Duration::seconds(7));
    assert_eq!(run_queue(&world).await.done, 1);
    let posted = manage.payments();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].amount, "312.40");
    assert_eq!(manage.balance("10452").as_deref(), Some("0.00"));
    later(&world, Duration::hours(3));
    assert_eq!(run_queue(&world).await, Default::default());
    assert_eq!(manage.payments().len(), 1);
}

#[tokio::test]
async fn auto_pay_discovers_the_companys_open_invoices_in_connectwise() {
    let (world, manage) = connectwise_world().await;
    world.set_settings("demo", json!({"autopay": {"processing_delay_hours": 0, "advance_notice_days": 0, "run_hour": 6, "retry_days": [], "payers_may_enrol": true}})).await;
    let company = COMPANY.to_string();
    let pat = world
        .payer("demo", "pat@harbor.test", &[&company], "payer password 123")
        .await;
    let card = world.save_card(&pat, "4242424242424242").await;
    let path = format!("/api/me/orgs/demo/autopay/{company}");
    let (status, _, enrolment) = call(
        &world.local_router(),
        "PUT",
        &path,
        &[("cookie", &pat)],
        Some(json!({"method_id": card, "rule": {"kind": "on_due_date"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    manage.add_invoice(cw_invoice("10460", "99.00", 2));
    manage.add_invoice(cw_invoice("10461", "45.50", 2));
    let mut paid = cw_invoice("10462", "10.00", 2);
    paid.balance = "0.00".into();
    manage.add_invoice(paid);
    let mut other = cw_invoice("10463", "70.00", 2);
    other.company_id = 251;
    manage.add_invoice(other);

    world.set_now(NOW);
    let report = app::schedules::tick(&world.services, NOW, None)
        .await
        .unwrap();
    assert_eq!(report.auto_scheduled, 2, "{report:?}");
    let due =
        time::OffsetDateTime::new_utc(NOW.date() + Duration::days(2), time::macros::time!(06:00));
    world.set_now(due);
    let report = app::schedules::tick(&world.services, due, None)
        .await
        .unwrap();
    assert_eq!(report.paid, 2, "{report:?}");
    run_queue(&world).await;
    let mut posted: Vec<_> = manage
        .payments()
        .into_iter()
        .map(|p| (p.invoice_number, p.amount))
        .collect();
    posted.sort();
    assert_eq!(
        posted,
        [
            ("10460".to_owned(), "99.00".to_owned()),
            ("10461".to_owned(), "45.50".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_bank_debit_is_written_back_when_it_settles_and_reversed_when_it_comes_back() {
    let (world, xero) = xero_world().await;
    connect_xero(&world, &xero).await;
    world.rotate_webhook_secret("demo", None).await;
    xero.add_invoice(XeroInvoice::authorised(
        "INV-2010", CONTACT, "220.00", "USD",
    ));
    let token = world.bank_token("000123456789", "Pat Lee").await;
    let (status, _, payment) = call(
        &pay_router(&world),
        "POST",
        "/api/pay/demo/INV-2010",
        &[("idempotency-key", "k-bank")],
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(
        (status, payment["status"].as_str()),
        (StatusCode::CREATED, Some("pending")),
        "{payment}"
    );
    run_queue(&world).await;
    assert!(
        xero.payments().is_empty(),
        "not in the books before the bank has paid"
    );

    let id = payment["id"].as_str().unwrap();
    let charge = world
        .sandbox()
        .charges(10)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.reference == id)
        .unwrap()
        .charge_id;
    let router = world.local_router();
    let (status, _) = world
        .sandbox_event(
            &router,
            json!({"charge_id": charge, "type": "charge.settled"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..3 {
        run_queue(&world).await;
    }
    let posted = xero.payments();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(
        (posted[0].amount.as_str(), posted[0].deleted),
        ("220.00", false)
    );

    // Returned by the bank (R01): the payment comes off the invoice in Xero again, once.
    let (status, _) = world
        .sandbox_event(
            &router,
            json!({"charge_id": charge, "type": "charge.returned"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..3 {
        run_queue(&world).await;
    }
    let posted = xero.payments();
    assert_eq!(posted.len(), 1);
    assert!(posted[0].deleted);
    assert_eq!(xero.invoice("INV-2010").unwrap().amount_due, "220.00");
    let (status, _) = world
        .sandbox_event(
            &router,
            json!({"charge_id": charge, "type": "charge.returned", "event_id": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    run_queue(&world).await;
    assert_eq!(xero.calls("POST /api.xro/2.0/Payments/"), 1);
}

#[tokio::test]
async fn an_expired_xero_token_is_refreshed_and_the_rotated_pair_kept_sealed() {
    let (world, xero) = xero_world().await;
    let first = connect_xero(&world, &xero).await;
    xero.add_invoice(XeroInvoice::authorised("INV-2020", CONTACT, "12.00", "USD"));
    xero.expire_access_tokens();
    let (status, _, summary) = call(
        &pay_router(&world),
        "GET",
        "/api/pay/demo/INV-2020",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["amount_due"]["amount"], "12.00");
    let org = domain::OrgSlug::parse("demo").unwrap();
    let stored = world
        .services
        .accounting_configs
        .accounting_config(&org)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.version, 2, "the rotated pair was stored");
    assert!(!stored.credentials.expose().contains(&first));
    let table = world.table_text().await;
    let tokens: Value = serde_json::from_str(stored.credentials.expose()).unwrap();
    for secret in [
        &tokens["access_token"],
        &tokens["refresh_token"],
        &json!(APP_SECRET),
    ] {
        assert!(!table.contains(secret.as_str().unwrap()), "sealed at rest");
    }
    // A new function instance (cold start) reads the rotated pair and carries on.
    world.services.accounting.forget(&org);
    let (status, _, _) = call(
        &pay_router(&world),
        "GET",
        "/api/pay/demo/INV-2020",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(xero.calls("POST /connect/token"), 1);
}

#[tokio::test]
async fn a_rate_limit_delays_a_write_back_but_never_parks_it() {
    let (world, xero) = xero_world().await;
    connect_xero(&world, &xero).await;
    xero.add_invoice(XeroInvoice::authorised("INV-2030", CONTACT, "19.99", "USD"));
    let (status, _) = pay(&world, "INV-2030", "k-1").await;
    assert_eq!(status, StatusCode::CREATED);
    let limited = Fault::RateLimited {
        retry_after_secs: 60,
        problem: "minute",
    };
    let tries = app::books::MAX_ATTEMPTS as usize + 4;
    xero.fail_next(Route::Payments, vec![limited; tries]);
    for _ in 0..tries {
        assert_eq!(run_queue(&world).await.waiting, 1);
        later(&world, Duration::seconds(61));
    }
    let (_, list) = api(&world, "GET", "/api/orgs/demo/unprocessed-payments", None).await;
    assert_eq!(list["items"], json!([]), "a rate limit parks nothing");
    assert_eq!(run_queue(&world).await.done, 1);
    assert_eq!(xero.payments().len(), 1);
}

#[tokio::test]
async fn a_payment_of_two_xero_invoices_is_charged_once_and_posted_to_each_in_one_batch() {
    let (world, xero) = xero_world().await;
    connect_xero(&world, &xero).await;
    let mut older = XeroInvoice::authorised("INV-2101", CONTACT, "150.00", "USD");
    older.amount_due = "120.00".into();
    older.due_date = NOW.date() - Duration::days(3);
    xero.add_invoice(older);
    xero.add_invoice(XeroInvoice::authorised("INV-2102", CONTACT, "80.00", "USD"));
    let pat = world
        .payer("demo", "pat@harbor.test", &[CONTACT], "payer password 123")
        .await;
    let card = world.save_card(&pat, "4242424242424242").await;

    let body = json!({"invoices": ["INV-2102", "INV-2101"], "method_id": card});
    let (status, _, payment) = call(
        &world.local_router(),
        "POST",
        "/api/me/orgs/demo/payments",
        &[("cookie", &pat), ("idempotency-key", "k-both")],
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["amount"]["amount"], "200.00", "Xero's amounts due");
    let charged = world.sandbox().charges(10).await.unwrap();
    assert_eq!(charged.len(), 1);

    assert_eq!(run_queue(&world).await.done, 1);
    let mut posted: Vec<(String, String)> = xero
        .payments()
        .iter()
        .map(|p| (p.invoice_number.clone(), p.amount.clone()))
        .collect();
    posted.sort();
    assert_eq!(
        posted,
        [
            ("INV-2101".to_owned(), "120.00".to_owned()),
            ("INV-2102".to_owned(), "80.00".to_owned())
        ]
    );
    assert_eq!(xero.calls("PUT /api.xro/2.0/Payments"), 1, "one batch");
    for number in ["INV-2101", "INV-2102"] {
        assert_eq!(xero.invoice(number).unwrap().status, "PAID", "{number}");
    }
    later(&world, Duration::hours(3));
    assert_eq!(run_queue(&world).await, Default::default());
}
