//! Paying several invoices at once (issue 12): one charge of a saved method, split oldest first
//! across one customer's invoices, shown before paying and recorded on the payment. Over HTTP
//! against DynamoDB Local: the API (`POST /api/me/orgs/{org}/payments`, `.../preview`) and the
//! pages (`/portal/orgs/{org}/pay`, the payment page), with what a second request, a decline, a
//! busy invoice, a stranger and a changed balance do.

use http::StatusCode;
use paybridge_tests::{Browser, NOW, World, call};
use serde_json::{Value, json};
use time::{Date, Duration};

const PASSWORD: &str = "payer password 123";

async fn invoice(world: &World, number: &str, total: &str, customer: &str, due: Date) {
    let issue = NOW.date() - Duration::days(60);
    world
        .add_ledger_invoice(
            "demo",
            number,
            total,
            (customer, "Harbor Dental"),
            issue,
            due,
        )
        .await;
}

/// Pat pays for c1 (three invoices: the oldest due first) and has a saved Visa; Sam pays for c3.
struct Setup {
    world: World,
    pat: String,
    card: String,
}

async fn setup() -> Setup {
    let world = World::new().await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["c1", "c2"], PASSWORD)
        .await;
    world
        .payer("demo", "sam@other.test", &["c3"], PASSWORD)
        .await;
    let today = NOW.date();
    invoice(&world, "INV-B", "80.00", "c1", today + Duration::days(10)).await;
    invoice(&world, "INV-A", "120.00", "c1", today - Duration::days(5)).await;
    invoice(&world, "INV-C", "45.00", "c1", today + Duration::days(20)).await;
    invoice(&world, "INV-D", "60.00", "c2", today).await;
    invoice(&world, "INV-S", "70.00", "c3", today).await;
    let card = world.save_card(&pat, "4242424242424242").await;
    Setup { world, pat, card }
}

async fn pay(
    s: &Setup,
    cookie: &str,
    key: &str,
    invoices: &[&str],
    amount: Option<&str>,
    method: &str,
) -> (StatusCode, Value) {
    let mut body = json!({"invoices": invoices, "method_id": method});
    if let Some(amount) = amount {
        body["amount"] = json!(amount);
    }
    let (status, _, answer) = call(
        &s.world.local_router(),
        "POST",
        "/api/me/orgs/demo/payments",
        &[("cookie", cookie), ("idempotency-key", key)],
        Some(body),
    )
    .await;
    (status, answer)
}

fn split(payment: &Value) -> Vec<String> {
    payment["allocations"]
        .as_array()
        .expect("allocations")
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["invoice_number"].as_str().unwrap(),
                a["amount"]["amount"].as_str().unwrap()
            )
        })
        .collect()
}

/// A PDF the payer downloads, as text (lopdf fails on anything but a valid PDF).
async fn pdf_text(world: &World, cookie: &str, path: &str) -> String {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = http::Request::builder()
        .uri(path)
        .header(http::header::COOKIE, cookie)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = world.local_router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let doc = lopdf::Document::load_mem(&bytes).expect("a valid PDF");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    doc.extract_text(&pages).expect("its text")
}

async fn charges(world: &World) -> Vec<String> {
    world
        .sandbox()
        .charges(20)
        .await
        .unwrap()
        .iter()
        .map(|c| format!("{:?}", c.amount))
        .collect()
}

#[tokio::test]
async fn two_invoices_are_paid_with_one_charge_oldest_first_and_a_retry_pays_nothing_more() {
    let s = setup().await;
    let (status, payment) = pay(&s, &s.pat, "k1", &["INV-B", "INV-A"], None, &s.card).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["amount"]["amount"], "200.00");
    assert_eq!(split(&payment), ["INV-A 120.00", "INV-B 80.00"]);
    assert_eq!(payment["invoice_number"], "INV-A", "the oldest names it");
    assert_eq!(s.world.balance("demo", "INV-A").await, "0.00");
    assert_eq!(s.world.balance("demo", "INV-B").await, "0.00");
    assert_eq!(s.world.balance("demo", "INV-C").await, "45.00");
    assert_eq!(charges(&s.world).await.len(), 1, "one charge");

    // The same request again: the same payment, nothing charged.
    let (status, again) = pay(&s, &s.pat, "k1", &["INV-B", "INV-A"], None, &s.card).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["id"], payment["id"]);
    assert_eq!(charges(&s.world).await.len(), 1);
    // Paid now: a new request for them is refused, naming the invoice.
    let (status, refused) = pay(&s, &s.pat, "k2", &["INV-A"], None, &s.card).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");

    // One receipt, naming both invoices and their parts.
    let mail: Vec<_> = s
        .world
        .outbox()
        .await
        .into_iter()
        .filter(|m| m.message.subject.starts_with("Receipt"))
        .collect();
    assert_eq!(mail.len(), 1);
    assert_eq!(
        mail[0].message.subject,
        "Receipt from demo IT - invoices INV-A and INV-B"
    );
    assert!(mail[0].message.text.contains("Invoice INV-A: USD 120.00"));
    assert!(mail[0].message.text.contains("Invoice INV-B: USD 80.00"));

    // The payer finds it by either invoice, and each invoice's PDF lists its part.
    for number in ["INV-A", "INV-B"] {
        let (_, _, found) = call(
            &s.world.local_router(),
            "GET",
            &format!("/api/me/orgs/demo/payments?invoice={number}"),
            &[("cookie", &s.pat)],
            None,
        )
        .await;
        assert_eq!(found["items"][0]["id"], payment["id"], "{number}: {found}");
    }
    let pdf = pdf_text(&s.world, &s.pat, "/api/me/orgs/demo/invoices/INV-B/pdf").await;
    assert!(pdf.contains("80.00 USD"), "the invoice's part: {pdf}");
    assert!(!pdf.contains("200.00 USD"), "not the whole payment: {pdf}");
    let receipt = format!(
        "/api/me/orgs/demo/payments/{}/receipt.pdf",
        payment["id"].as_str().unwrap()
    );
    let pdf = pdf_text(&s.world, &s.pat, &receipt).await;
    for expected in [
        "Invoice INV-A",
        "120.00 USD",
        "Invoice INV-B",
        "80.00 USD",
        "200.00 USD",
    ] {
        assert!(pdf.contains(expected), "{expected:?} in {pdf}");
    }
}

#[tokio::test]
async fn a_lump_sum_pays_the_oldest_first_where_partial_payments_are_allowed() {
    let s = setup().await;
    // Not allowed: a sum that leaves an invoice part-paid is refused, nothing charged.
    let (status, refused) = pay(
        &s,
        &s.pat,
        "k1",
        &["INV-A", "INV-B", "INV-C"],
        Some("150.00"),
        &s.card,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["code"], "partial_not_allowed");
    assert!(charges(&s.world).await.is_empty());

    s.world
        .set_settings("demo", json!({"allow_partial": true}))
        .await;
    let (_, _, preview) = call(
        &s.world.local_router(),
        "POST",
        "/api/me/orgs/demo/payments/preview",
        &[("cookie", &s.pat)],
        Some(json!({"invoices": ["INV-C", "INV-B", "INV-A"], "amount": "150.00"})),
    )
    .await;
    let lines: Vec<String> = preview["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{} {} left {}",
                l["invoice_number"].as_str().unwrap(),
                l["pays"]["amount"].as_str().unwrap(),
                l["left_due"]["amount"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            "INV-A 120.00 left 0.00",
            "INV-B 30.00 left 50.00",
            "INV-C 0.00 left 45.00"
        ]
    );
    assert_eq!(preview["total_due"]["amount"], "245.00");

    let (status, payment) = pay(
        &s,
        &s.pat,
        "k2",
        &["INV-C", "INV-B", "INV-A"],
        Some("150.00"),
        &s.card,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(split(&payment), ["INV-A 120.00", "INV-B 30.00"]);
    assert_eq!(s.world.balance("demo", "INV-A").await, "0.00");
    assert_eq!(s.world.balance("demo", "INV-B").await, "50.00");
    assert_eq!(s.world.balance("demo", "INV-C").await, "45.00");

    // More than they owe is refused.
    let (status, refused) = pay(&s, &s.pat, "k3", &["INV-B"], Some("50.01"), &s.card).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["code"], "amount_above_balance");
}

#[tokio::test]
async fn what_cannot_be_paid_together_is_refused_and_nothing_is_charged_or_left_locked() {
    let s = setup().await;
    let sam = s.world.sign_in("sam@other.test", PASSWORD).await;
    // Another payer's invoice among Pat's: the same 404 as an unknown one.
    let (status, refused) = pay(&s, &s.pat, "k1", &["INV-A", "INV-S"], None, &s.card).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    let (status, _) = pay(&s, &s.pat, "k2", &["INV-A", "INV-404"], None, &s.card).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Sam cannot pay Pat's invoices, with Pat's card or at all.
    let (status, _) = pay(&s, &sam, "k3", &["INV-A"], None, &s.card).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Two customers of Pat's, the same invoice twice, none at all.
    let (status, refused) = pay(&s, &s.pat, "k4", &["INV-A", "INV-D"], None, &s.card).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused["code"], "several_customers");
    let (_, refused) = pay(&s, &s.pat, "k5", &["INV-A", "INV-A"], None, &s.card).await;
    assert_eq!(refused["code"], "invoice_twice");
    let (_, refused) = pay(&s, &s.pat, "k6", &[], None, &s.card).await;
    assert_eq!(refused["code"], "no_invoices");
    // Not signed in.
    let (status, _) = pay(&s, "", "k7", &["INV-A"], None, &s.card).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(charges(&s.world).await.is_empty());

    // A decline fails the one payment, leaves both balances, and frees both invoices.
    let declining = s.world.save_card(&s.pat, "4000000000000002").await;
    let (status, declined) = pay(&s, &s.pat, "k8", &["INV-A", "INV-B"], None, &declining).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{declined}");
    assert_eq!(s.world.balance("demo", "INV-A").await, "120.00");
    assert_eq!(s.world.balance("demo", "INV-B").await, "80.00");
    let (status, paid) = pay(&s, &s.pat, "k9", &["INV-A", "INV-B"], None, &s.card).await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
}

#[tokio::test]
async fn an_invoice_being_paid_elsewhere_holds_off_the_payment_of_several() {
    let s = setup().await;
    // A guest's payment of INV-B is in flight: its lock is held.
    let lock_holder = app::payments::Payment {
        id: domain::PaymentId::from_ulid("01JD0000000000000000000001").unwrap(),
        org: domain::OrgSlug::parse("demo").unwrap(),
        invoice_number: domain::InvoiceNumber::parse("INV-B").unwrap(),
        customer_id: None,
        amount: domain::Money::parse("80.00", domain::Currency::Usd).unwrap(),
        allocations: Vec::new(),
        surcharge: domain::Money::zero(domain::Currency::Usd),
        status: domain::PaymentStatus::Pending,
        gateway: "sandbox".into(),
        gateway_ref: None,
        method: None,
        failure: None,
        receipt_email: None,
        created_at: NOW,
        updated_at: NOW,
    };
    s.world
        .services
        .attempts
        .begin_attempt(&lock_holder, NOW + Duration::minutes(2), NOW)
        .await
        .unwrap();
    let (status, busy) = pay(&s, &s.pat, "k1", &["INV-A", "INV-B"], None, &s.card).await;
    assert_eq!(status, StatusCode::CONFLICT, "{busy}");
    assert_eq!(busy["code"], "payment_in_progress");
    assert!(charges(&s.world).await.is_empty());
    // INV-A was not left locked by the refused payment.
    let (status, paid) = pay(&s, &s.pat, "k2", &["INV-A"], None, &s.card).await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
}

/// The value of a hidden field on a page.
fn field(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

async fn signed_in(world: &World, email: &str) -> Browser {
    world.browser_signed_in(email, PASSWORD).await
}

#[tokio::test]
async fn the_pages_show_the_split_pay_once_and_show_the_payment() {
    let s = setup().await;
    let mut browser = signed_in(&s.world, "pat@harbor.test").await;
    let dashboard = browser.get("/portal/orgs/demo").await;
    assert!(
        dashboard.body.contains("id=\"pick-INV-A\""),
        "a box per invoice"
    );
    assert!(dashboard.body.contains("Pay the selected invoices"));

    let shown = browser
        .get("/portal/orgs/demo/pay?invoice=INV-B&invoice=INV-A")
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert!(shown.body.contains("Pay 2 invoices"));
    assert!(shown.body.contains("Pay USD 200.00"), "{}", shown.body);
    let expected = field(&shown.body, "expected");
    assert_eq!(expected, "INV-A=120.00;INV-B=80.00");
    let key = field(&shown.body, "key");
    let form = [
        ("key", key.as_str()),
        ("invoice", "INV-B"),
        ("invoice", "INV-A"),
        ("amount", ""),
        ("expected", expected.as_str()),
        ("method", s.card.as_str()),
    ];

    // A forged post (no token) is refused.
    let forged = browser
        .post_raw(
            "/portal/orgs/demo/pay",
            format!("key={key}&invoice=INV-A&method={}", s.card),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let done = browser.post_form("/portal/orgs/demo/pay", &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let payment_page = done.location().to_owned();
    assert!(payment_page.starts_with("/portal/orgs/demo/payments/pay_"));
    // Sent twice (a double click, a reload): the same payment, one charge.
    let again = browser.post_form("/portal/orgs/demo/pay", &form).await;
    assert_eq!(again.location(), payment_page);
    assert_eq!(charges(&s.world).await.len(), 1);

    let page = browser.get(&payment_page).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Payment received"));
    assert!(page.body.contains("data-invoice=\"INV-A\">USD 120.00"));
    assert!(page.body.contains("data-invoice=\"INV-B\">USD 80.00"));
    let dashboard = browser.get("/portal/orgs/demo").await;
    assert!(!dashboard.body.contains("data-invoice=\"INV-A\""), "paid");
    // Among the recent payments: both invoices, and the way to the payment's page.
    assert!(
        dashboard.body.contains("INV-A, INV-B"),
        "{}",
        dashboard.body
    );
    assert!(dashboard.body.contains(&format!("href=\"{payment_page}\"")));
    assert!(dashboard.body.contains("data-invoice=\"INV-C\""));

    // Sam sees none of it.
    let mut sam = signed_in(&s.world, "sam@other.test").await;
    assert_eq!(sam.get(&payment_page).await.status, StatusCode::NOT_FOUND);
    let stranger = sam.get("/portal/orgs/demo/pay?invoice=INV-C").await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_balance_that_changed_after_the_page_was_shown_is_not_charged() {
    let s = setup().await;
    let mut browser = signed_in(&s.world, "pat@harbor.test").await;
    let shown = browser
        .get("/portal/orgs/demo/pay?invoice=INV-A&invoice=INV-C")
        .await;
    let expected = field(&shown.body, "expected");
    let key = field(&shown.body, "key");
    // INV-C is paid elsewhere meanwhile.
    let (status, _) = pay(&s, &s.pat, "elsewhere", &["INV-C"], None, &s.card).await;
    assert_eq!(status, StatusCode::CREATED);
    let form = [
        ("key", key.as_str()),
        ("invoice", "INV-A"),
        ("invoice", "INV-C"),
        ("amount", ""),
        ("expected", expected.as_str()),
        ("method", s.card.as_str()),
    ];
    let refused = browser.post_form("/portal/orgs/demo/pay", &form).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("The balances changed since the page was shown")
            && refused.body.contains("Invoice INV-C has nothing to pay"),
        "{}",
        refused.body
    );
    assert_eq!(s.world.balance("demo", "INV-A").await, "120.00");
    assert_eq!(
        charges(&s.world).await.len(),
        1,
        "only the payment elsewhere"
    );
}

#[tokio::test]
async fn a_returned_bank_debit_of_two_invoices_puts_both_balances_back() {
    let s = setup().await;
    s.world.rotate_webhook_secret("demo", None).await;
    let token = s.world.bank_token("000123456789", "Pat Lee").await;
    let bank = s.world.save_token(&s.pat, &token, "bank").await;
    let (status, payment) = pay(&s, &s.pat, "k1", &["INV-A", "INV-B"], None, &bank).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "pending", "a debit settles later");
    assert_eq!(s.world.balance("demo", "INV-A").await, "0.00");
    assert_eq!(s.world.balance("demo", "INV-B").await, "0.00");
    let charge = s.world.sandbox().charges(5).await.unwrap()[0]
        .charge_id
        .clone();

    let router = s.world.local_router();
    let body = json!({"charge_id": charge, "type": "charge.returned", "event_id": "evt_ret"});
    let (status, answer) = s.world.sandbox_event(&router, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Delivered again: nothing more is given back.
    s.world.sandbox_event(&router, body).await;
    s.world.follow_ups_done().await;
    assert_eq!(s.world.balance("demo", "INV-A").await, "120.00");
    assert_eq!(s.world.balance("demo", "INV-B").await, "80.00");
    let returned: Vec<_> = s
        .world
        .events()
        .await
        .into_iter()
        .filter(|e| e.kind == "payment.returned")
        .collect();
    assert_eq!(returned.len(), 1);
    assert_eq!(
        returned[0].detail["balance_restored"],
        json!({"amount": "200.00", "currency": "USD"})
    );
}

#[tokio::test]
async fn an_api_client_that_previewed_is_not_charged_other_amounts() {
    let s = setup().await;
    let expected = json!([
        {"invoice_number": "INV-A", "amount": "120.00"},
        {"invoice_number": "INV-B", "amount": "80.00"}
    ]);
    // INV-B's balance drops (a part payment elsewhere) between the preview and the payment.
    s.world
        .set_settings("demo", json!({"allow_partial": true}))
        .await;
    let (status, _) = pay(&s, &s.pat, "elsewhere", &["INV-B"], Some("30.00"), &s.card).await;
    assert_eq!(status, StatusCode::CREATED);
    let body = json!({"invoices": ["INV-A", "INV-B"], "method_id": s.card, "expected": expected});
    let (status, _, refused) = call(
        &s.world.local_router(),
        "POST",
        "/api/me/orgs/demo/payments",
        &[("cookie", &s.pat), ("idempotency-key", "k1")],
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "allocation_changed");
    assert_eq!(s.world.balance("demo", "INV-A").await, "120.00");
    assert_eq!(charges(&s.world).await.len(), 1, "only the part payment");
}

#[tokio::test]
async fn an_org_that_requires_two_factor_holds_back_saved_methods_until_it_is_on() {
    let s = setup().await;
    s.world
        .set_settings("demo", json!({"require_two_factor": true}))
        .await;
    let (status, refused) = pay(&s, &s.pat, "k1", &["INV-A", "INV-B"], None, &s.card).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["code"], "two_factor_required");
    let (status, _, refused) = call(
        &s.world.local_router(),
        "POST",
        "/api/pay/demo/INV-A",
        &[("cookie", &s.pat), ("idempotency-key", "k2")],
        Some(json!({"method_id": s.card})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["code"], "two_factor_required");
    // The Pay Now page offers no saved method, and the pages send Pat to set it up.
    let mut browser = signed_in(&s.world, "pat@harbor.test").await;
    let page = browser.get("/pay/demo/INV-A").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("Visa ending 4242"), "{}", page.body);
    let pay_page = browser.get("/portal/orgs/demo/pay?invoice=INV-A").await;
    assert_eq!(pay_page.status, StatusCode::SEE_OTHER);
    assert!(
        pay_page.location().starts_with("/account"),
        "{}",
        pay_page.location()
    );
    assert!(charges(&s.world).await.is_empty());
}

#[tokio::test]
async fn with_a_card_surcharge_each_method_on_the_page_says_what_it_charges_in_all() {
    let s = setup().await;
    s.world
        .set_settings(
            "demo",
            json!({"surcharges": [{"brand": "*", "rate_bps": 250}]}),
        )
        .await;
    let mut browser = signed_in(&s.world, "pat@harbor.test").await;
    let shown = browser
        .get("/portal/orgs/demo/pay?invoice=INV-A&invoice=INV-B")
        .await;
    assert!(
        shown
            .body
            .contains("Visa ending 4242 (expires 12/2030) · USD 205.00 in all"),
        "{}",
        shown.body
    );
    assert!(!shown.body.contains("Total to charge"));
    let form = [
        ("key", field(&shown.body, "key")),
        ("invoice", "INV-A".to_owned()),
        ("invoice", "INV-B".to_owned()),
        ("amount", String::new()),
        ("expected", field(&shown.body, "expected")),
        ("method", s.card.clone()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = browser.post_form("/portal/orgs/demo/pay", &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let page = browser.get(done.location()).await;
    assert!(page.body.contains("Card surcharge"), "{}", page.body);
    assert!(page.body.contains("USD 5.00") && page.body.contains("USD 205.00"));
    let charged = s.world.sandbox().charges(5).await.unwrap();
    assert_eq!(charged[0].amount.amount_string(), "205.00");
    assert_eq!(s.world.balance("demo", "INV-B").await, "0.00");
}
