//! The payer portal's pages (issue 12) as a browser meets them, over HTTP: the dashboard (only
//! the payer's own invoices, overdue marks by the world's clock, schedules, recent payments, the
//! org switcher), scheduling and cancelling through the forms (with the CSRF token the page
//! gave), the transaction search, and what strangers and signed-out browsers get.

use http::StatusCode;
use paybridge_tests::{Browser, NOW, World, call};
use serde_json::json;
use time::{Date, Duration};

const PASSWORD: &str = "payer password 123";
const DASHBOARD: &str = "/portal/orgs/demo";

/// Adds a ledger invoice to demo (USD) of `customer`, due on `due`.
async fn invoice(world: &World, number: &str, total: &str, customer: &str, due: Date) {
    let name = format!("Customer {customer}");
    let issue = NOW.date() - Duration::days(40);
    world
        .add_ledger_invoice("demo", number, total, (customer, &name), issue, due)
        .await;
}

/// Pays a demo invoice as a guest with a sandbox test card: the payment's JSON.
async fn pay(world: &World, number: &str, card: &str) -> serde_json::Value {
    let token = world.card_token(card).await;
    let (_, _, payment) = call(
        &web::pay_now::router(world.services.clone()),
        "POST",
        &format!("/api/pay/demo/{number}"),
        &[("idempotency-key", &format!("k-{number}-{card}"))],
        Some(json!({"token": token})),
    )
    .await;
    payment
}

async fn signed_in(world: &World, email: &str) -> Browser {
    world.browser_signed_in(email, PASSWORD).await
}

/// The CSRF token a page's form carries.
fn csrf_of(body: &str) -> String {
    let start = body
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    body[start..].split('"').next().unwrap().to_owned()
}

/// The table row (`<tr ...>...</tr>`) that holds `marker`.
fn row_of<'a>(body: &'a str, marker: &str) -> &'a str {
    let at = body
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {body}"));
    let start = body[..at].rfind("<tr").unwrap();
    let end = at + body[at..].find("</tr>").unwrap();
    &body[start..end]
}

/// Posts a form body with exactly these fields (the CSRF token among them, or not).
async fn post(browser: &mut Browser, path: &str, fields: &[(&str, &str)]) -> paybridge_tests::Page {
    let body = serde_urlencoded::to_string(fields).unwrap();
    browser.post_raw(path, body).await
}

#[tokio::test]
async fn signed_out_browsers_sign_in_first_and_strangers_find_nothing() {
    let world = World::new().await;
    invoice(&world, "INV-1", "10.00", "cust-1", NOW.date()).await;
    world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;
    world
        .payer("acme", "sam@other.test", &["cust-1"], PASSWORD)
        .await;

    let mut guest = Browser::new(world.local_router());
    for (path, next) in [
        ("/portal", "%2Fportal"),
        (DASHBOARD, "%2Fportal%2Forgs%2Fdemo"),
        (
            "/portal/orgs/demo/transactions?status=failed",
            "%2Fportal%2Forgs%2Fdemo%2Ftransactions",
        ),
        (
            "/portal/orgs/demo/schedule?invoice=INV-1",
            "%2Fportal%2Forgs%2Fdemo",
        ),
    ] {
        let page = guest.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location(), format!("/login?next={next}"), "{path}");
    }
    let posted = guest
        .post_form("/portal/orgs/demo/schedules", &[("invoice", "INV-1")])
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    assert!(posted.location().starts_with("/login?next="));

    // Sam belongs to acme only: demo's pages, and an org that does not exist, are the same page.
    let mut sam = signed_in(&world, "sam@other.test").await;
    let mut seen = Vec::new();
    for path in [
        DASHBOARD,
        "/portal/orgs/demo/transactions",
        "/portal/orgs/demo/schedule?invoice=INV-1",
        "/portal/orgs/nowhere",
        "/portal/orgs/NOT%20AN%20ORG",
    ] {
        let page = sam.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
        assert!(page.body.contains("We could not find that page"), "{path}");
        assert!(!page.body.contains("INV-1"), "{path}");
        seen.push(page.body);
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "the same page each time"
    );
    let csrf = sam.cookie("csrf").unwrap().to_owned();
    let forged = post(
        &mut sam,
        "/portal/orgs/demo/schedules/sch_01JD8X3Q9M6V4W2K7T5R1N0P0D/cancel",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(forged.status, StatusCode::NOT_FOUND);

    // Pat goes from /portal to demo's dashboard.
    let mut pat = signed_in(&world, "pat@harbor.test").await;
    let home = pat.get("/portal").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.location(), DASHBOARD);
}

#[tokio::test]
async fn the_dashboard_shows_the_payers_own_invoices_payments_and_orgs() {
    let world = World::new().await;
    let today = NOW.date();
    invoice(
        &world,
        "INV-OLD",
        "120.00",
        "cust-1",
        today - Duration::days(3),
    )
    .await;
    invoice(
        &world,
        "INV-NEW",
        "80.50",
        "cust-2",
        today + Duration::days(14),
    )
    .await;
    invoice(&world, "INV-DUE", "10.00", "cust-1", today).await;
    invoice(&world, "INV-PAID", "45.00", "cust-1", today).await;
    invoice(
        &world,
        "INV-SAMS",
        "999.00",
        "cust-9",
        today - Duration::days(9),
    )
    .await;
    world
        .payer("demo", "pat@harbor.test", &["cust-1", "cust-2"], PASSWORD)
        .await;
    world
        .payer("demo", "sam@other.test", &["cust-9"], PASSWORD)
        .await;
    let paid = pay(&world, "INV-PAID", "4242424242424242").await;
    let declined = pay(&world, "INV-DUE", "4000000000000002").await;
    assert_eq!(declined["decline_code"], "card_declined", "{declined}");
    pay(&world, "INV-SAMS", "4242424242424242").await;

    let mut pat = signed_in(&world, "pat@harbor.test").await;
    let page = pat.get(DASHBOARD).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    for shown in [
        "Outstanding invoices",
        "Scheduled payments",
        "Recent payments",
        "No payment is scheduled.",
    ] {
        assert!(body.contains(shown), "{shown}: {body}");
    }
    // Only Pat's customers' open invoices; oldest due first; overdue only where it is.
    assert!(
        !body.contains("INV-SAMS"),
        "another payer's invoice: {body}"
    );
    assert_eq!(body.matches("data-invoice=").count(), 3, "{body}");
    let (old, due, new) = (
        body.find("data-invoice=\"INV-OLD\"").unwrap(),
        body.find("data-invoice=\"INV-DUE\"").unwrap(),
        body.find("data-invoice=\"INV-NEW\"").unwrap(),
    );
    assert!(old < due && due < new, "oldest due first");
    let old_row = row_of(body, "data-invoice=\"INV-OLD\"");
    assert!(old_row.contains(">Overdue<"), "{old_row}");
    assert!(old_row.contains("23 Nov 2026"), "{old_row}");
    assert!(old_row.contains("USD 120.00"), "{old_row}");
    assert!(old_row.contains("Customer cust-1"), "{old_row}");
    for link in [
        "href=\"/pay/demo/INV-OLD\"",
        "href=\"/api/me/orgs/demo/invoices/INV-OLD/pdf\"",
        "href=\"/portal/orgs/demo/schedule?invoice=INV-OLD\"",
    ] {
        assert!(old_row.contains(link), "{link}: {old_row}");
    }
    assert!(!row_of(body, "data-invoice=\"INV-DUE\"").contains("Overdue"));
    assert!(!row_of(body, "data-invoice=\"INV-NEW\"").contains("Overdue"));

    // Recent payments: Pat's customers' (the decline too), a receipt for the one that paid.
    let paid_id = paid["id"].as_str().unwrap();
    let receipt = format!("/api/me/orgs/demo/payments/{paid_id}/receipt.pdf");
    assert!(body.contains(&format!("href=\"{receipt}\"")), "{body}");
    assert!(
        body.contains("INV-PAID") && body.contains("Succeeded"),
        "{body}"
    );
    assert!(body.contains("Failed"), "the decline is listed: {body}");
    assert_eq!(
        body.matches(">Receipt</a>").count(),
        1,
        "no receipt for a decline"
    );

    // The links work for Pat (and only Pat).
    let pdf = pat.get("/api/me/orgs/demo/invoices/INV-OLD/pdf").await;
    assert_eq!(pdf.status, StatusCode::OK);
    assert!(pdf.body.starts_with("%PDF"));
    assert_eq!(pat.get(&receipt).await.status, StatusCode::OK);
    let mut sam = signed_in(&world, "sam@other.test").await;
    let sams = sam.get(DASHBOARD).await.body;
    assert!(
        sams.contains("INV-SAMS") && !sams.contains("INV-OLD"),
        "{sams}"
    );
    assert_eq!(
        sam.get("/api/me/orgs/demo/invoices/INV-OLD/pdf")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // The overdue marks follow the world's clock: two weeks on, INV-NEW is due and INV-DUE late.
    world.set_now(NOW + Duration::days(15));
    let mut pat = signed_in(&world, "pat@harbor.test").await;
    let later = pat.get(DASHBOARD).await.body;
    assert!(row_of(&later, "data-invoice=\"INV-NEW\"").contains(">Overdue<"));
    assert!(row_of(&later, "data-invoice=\"INV-DUE\"").contains(">Overdue<"));

    // No switcher with one org; with two, both (by name), and /portal opens the first.
    assert!(!later.contains("Your organisations"));
    let s = &world.services;
    app::orgs::create_org(
        s.orgs.as_ref(),
        s.users.as_ref(),
        s.clock.as_ref(),
        s.ids.as_ref(),
        app::orgs::NewOrg {
            slug: domain::OrgSlug::parse("aardvark").unwrap(),
            name: "Aardvark IT".into(),
            settings: domain::OrgSettings::default(),
            admin_email: domain::Email::parse("pat@harbor.test").unwrap(),
            admin_name: "Pat Lee".into(),
            admin_password: None,
        },
    )
    .await
    .unwrap();
    let both = pat.get(DASHBOARD).await.body;
    assert!(both.contains("Your organisations"), "{both}");
    assert!(
        both.contains("href=\"/portal/orgs/aardvark\">Aardvark IT</a>"),
        "{both}"
    );
    assert!(
        both.contains("<strong aria-current=\"page\">demo IT</strong>"),
        "{both}"
    );
    assert_eq!(pat.get("/portal").await.location(), "/portal/orgs/aardvark");
    let other = pat.get("/portal/orgs/aardvark").await;
    assert_eq!(other.status, StatusCode::OK);
    assert!(
        other
            .body
            .contains("Nothing to pay: no invoice is outstanding.")
    );
}

#[tokio::test]
async fn a_payer_schedules_and_cancels_a_payment_with_the_forms() {
    let world = World::new().await;
    invoice(
        &world,
        "INV-1",
        "300.00",
        "cust-1",
        NOW.date() + Duration::days(10),
    )
    .await;
    invoice(&world, "INV-2", "50.00", "cust-1", NOW.date()).await;
    let cookie = world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;
    world
        .payer("demo", "sam@other.test", &["cust-1"], PASSWORD)
        .await;
    let mut pat = signed_in(&world, "pat@harbor.test").await;

    // No method that may be charged later: no form, and where to get one.
    let form = pat.get("/portal/orgs/demo/schedule?invoice=INV-1").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body
            .contains("You have no saved card or bank account that demo IT may charge later")
    );
    assert!(!form.body.contains("id=\"schedule-form\""));
    let card = world.save_card(&cookie, "4242424242424242").await;

    let form = pat.get("/portal/orgs/demo/schedule?invoice=INV-1").await;
    assert_eq!(form.status, StatusCode::OK);
    let body = &form.body;
    assert!(body.contains("Schedule a payment of INV-1"), "{body}");
    assert!(body.contains("USD 300.00"));
    assert!(body.contains("<label for=\"date\">Pay on</label>"));
    assert!(
        body.contains("value=\"2026-12-03\" min=\"2026-11-27\""),
        "next week, from tomorrow: {body}"
    );
    assert!(
        body.contains(&format!("value=\"{card}\" checked")),
        "{body}"
    );
    assert!(body.contains("Visa ending 4242 (expires 12/2030)"));
    let csrf = csrf_of(body);
    let path = "/portal/orgs/demo/schedules";
    let fields = |date: &'static str, method: &str, amount: &'static str| {
        vec![
            ("invoice".to_owned(), "INV-1".to_owned()),
            ("method".to_owned(), method.to_owned()),
            ("date".to_owned(), date.to_owned()),
            ("amount".to_owned(), amount.to_owned()),
        ]
    };
    let send = |extra: Vec<(String, String)>, token: Option<&str>| {
        let mut all: Vec<(String, String)> = token
            .map(|t| vec![("csrf".to_owned(), t.to_owned())])
            .unwrap_or_default();
        all.extend(extra);
        serde_urlencoded::to_string(all).unwrap()
    };

    // Refused, nothing written: no token, a forged one, today, no method, above the balance.
    let none = pat
        .post_raw(path, send(fields("2026-12-03", &card, ""), None))
        .await;
    assert_eq!(none.status, StatusCode::FORBIDDEN);
    assert!(none.body.contains("The form expired"));
    let forged = pat
        .post_raw(
            path,
            send(fields("2026-12-03", &card, ""), Some(&"f".repeat(43))),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    for (date, method, amount, status, error) in [
        (
            "2026-11-26",
            card.as_str(),
            "",
            422,
            "Choose a day after today (26 Nov 2026).",
        ),
        (
            "2026-11-20",
            card.as_str(),
            "",
            422,
            "Choose a day after today (26 Nov 2026).",
        ),
        ("soon", card.as_str(), "", 422, "Choose the day to pay on"),
        (
            "2026-12-03",
            "",
            "",
            422,
            "Choose the saved card or bank account to pay with.",
        ),
        (
            "2026-12-03",
            card.as_str(),
            "301.00",
            422,
            "The amount is more than the balance of USD 300.00",
        ),
        (
            "2028-01-01",
            card.as_str(),
            "",
            422,
            "Date: from today (2026-11-26) to a year ahead",
        ),
    ] {
        let refused = pat
            .post_raw(path, send(fields(date, method, amount), Some(&csrf)))
            .await;
        assert_eq!(
            refused.status.as_u16(),
            status,
            "{date} {method:?} {amount}: {}",
            refused.body
        );
        assert!(refused.body.contains(error), "{error}: {}", refused.body);
        assert!(refused.body.contains("role=\"alert\""));
        // The form comes back with what was typed.
        assert!(refused.body.contains("id=\"schedule-form\""));
        assert!(
            refused.body.contains(&format!("value=\"{date}\"")),
            "{}",
            refused.body
        );
    }
    let (_, _, listed) = call(
        &world.local_router(),
        "GET",
        "/api/me/orgs/demo/schedules",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(
        listed["items"].as_array().map_or(0, Vec::len),
        0,
        "{listed}"
    );

    // Scheduled: back to the dashboard, which says so and lists it.
    let done = pat
        .post_raw(path, send(fields("2026-12-03", &card, ""), Some(&csrf)))
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(
        done.location()
            .starts_with("/portal/orgs/demo?scheduled=sch_"),
        "{}",
        done.location()
    );
    let dashboard = pat.get(done.location()).await.body;
    assert!(
        dashboard.contains("Scheduled INV-1 for 3 Dec 2026."),
        "{dashboard}"
    );
    let row = row_of(&dashboard, "data-schedule=");
    assert!(row.contains("INV-1") && row.contains("3 Dec 2026"), "{row}");
    assert!(
        row.contains("The balance on the day") && row.contains("Visa ending 4242"),
        "{row}"
    );
    let invoice_row = row_of(&dashboard, "data-invoice=\"INV-1\"");
    assert!(
        invoice_row.contains("Scheduled for 3 Dec 2026"),
        "{invoice_row}"
    );
    assert!(!invoice_row.contains("schedule?invoice="), "{invoice_row}");
    let cancel = {
        let start = dashboard
            .find("action=\"/portal/orgs/demo/schedules/")
            .unwrap()
            + 8;
        dashboard[start..].split('"').next().unwrap().to_owned()
    };
    // A second schedule of the same invoice is refused.
    let twice = pat
        .post_raw(path, send(fields("2026-12-04", &card, ""), Some(&csrf)))
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert!(
        twice
            .body
            .contains("The invoice has a scheduled payment already")
    );

    // Sam (same customer, not the same person) cannot cancel Pat's.
    let mut sam = signed_in(&world, "sam@other.test").await;
    let sams_token = sam.cookie("csrf").unwrap().to_owned();
    let not_sams = post(&mut sam, &cancel, &[("csrf", &sams_token)]).await;
    assert_eq!(not_sams.status, StatusCode::NOT_FOUND);
    // Without the token: refused.
    let unsigned = post(&mut pat, &cancel, &[]).await;
    assert_eq!(unsigned.status, StatusCode::FORBIDDEN);
    // Cancelled with the dashboard's form.
    let dashboard_csrf = csrf_of(&dashboard);
    let cancelled = post(&mut pat, &cancel, &[("csrf", &dashboard_csrf)]).await;
    assert_eq!(
        cancelled.status,
        StatusCode::SEE_OTHER,
        "{}",
        cancelled.body
    );
    assert!(
        cancelled
            .location()
            .starts_with("/portal/orgs/demo?cancelled=sch_")
    );
    let after = pat.get(cancelled.location()).await.body;
    assert!(
        after.contains("Cancelled the payment of INV-1 scheduled for 3 Dec 2026."),
        "{after}"
    );
    assert!(after.contains("No payment is scheduled."), "{after}");
    assert!(row_of(&after, "data-invoice=\"INV-1\"").contains("schedule?invoice=INV-1"));
    // Twice: it is over.
    let again = post(&mut pat, &cancel, &[("csrf", &dashboard_csrf)]).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again
            .body
            .contains("The schedule is cancelled and can no longer be cancelled")
    );

    // A paid invoice: nothing to schedule, and a post is refused on the form page.
    pay(&world, "INV-2", "4242424242424242").await;
    let paid = pat.get("/portal/orgs/demo/schedule?invoice=INV-2").await;
    assert_eq!(paid.status, StatusCode::OK);
    assert!(
        paid.body
            .contains("Invoice INV-2 is paid: there is nothing to schedule."),
        "{}",
        paid.body
    );
    let mut late = fields("2026-12-03", &card, "");
    late[0].1 = "INV-2".into();
    let refused = pat.post_raw(path, send(late, Some(&csrf))).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        refused.body.contains("The invoice is paid"),
        "{}",
        refused.body
    );
    // Not Pat's, or no such invoice: not found.
    assert_eq!(
        pat.get("/portal/orgs/demo/schedule?invoice=INV-404")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        pat.get("/portal/orgs/demo/schedule").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_transaction_search_filters_and_pages() {
    let world = World::new().await;
    world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;
    // 21 payments over three days, a decline among them, and someone else's.
    for n in 1..=21 {
        world.set_now(NOW + Duration::minutes(n));
        let number = format!("INV-{n}");
        let total = if n == 7 { "77.70" } else { "10.00" };
        invoice(&world, &number, total, "cust-1", NOW.date()).await;
        if n == 5 {
            pay(&world, &number, "4000000000000002").await;
            world.set_now(NOW + Duration::minutes(n) + Duration::seconds(20));
        }
        pay(&world, &number, "4242424242424242").await;
    }
    world.set_now(NOW + Duration::days(2));
    invoice(&world, "INV-LATER", "10.00", "cust-1", NOW.date()).await;
    pay(&world, "INV-LATER", "4242424242424242").await;
    invoice(&world, "INV-X", "10.00", "cust-x", NOW.date()).await;
    pay(&world, "INV-X", "4242424242424242").await;
    let mut pat = signed_in(&world, "pat@harbor.test").await;
    let base = "/portal/orgs/demo/transactions";

    let all = pat.get(base).await;
    assert_eq!(all.status, StatusCode::OK);
    for label in ["Invoice number", "Amount", "From", "To", "Status"] {
        assert!(all.body.contains(&format!("\">{label}</label>")), "{label}");
    }
    assert_eq!(
        all.body.matches("<td class=\"amount\">").count(),
        20,
        "a page of 20"
    );
    assert!(!all.body.contains("INV-X"), "another customer's");
    let next = {
        let at = all.body.find("id=\"next-page\"").expect("a next page");
        let start = all.body[..at].rfind("href=\"").unwrap() + 6;
        all.body[start..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&")
    };
    assert!(next.starts_with(&format!("{base}?cursor=")), "{next}");
    let second = pat.get(&next).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(
        second.body.matches("<td class=\"amount\">").count(),
        3,
        "{}",
        second.body
    );
    assert!(second.body.contains("INV-1<"), "the oldest last");
    assert!(!second.body.contains("id=\"next-page\""));

    let by_invoice = pat.get(&format!("{base}?invoice=INV-5")).await.body;
    assert_eq!(
        by_invoice.matches("<td class=\"amount\">").count(),
        2,
        "{by_invoice}"
    );
    assert!(
        by_invoice.contains("value=\"INV-5\""),
        "the form keeps the filter"
    );
    let failed = pat.get(&format!("{base}?status=failed")).await.body;
    assert_eq!(failed.matches("<td class=\"amount\">").count(), 1);
    assert!(failed.contains("INV-5") && failed.contains("<option value=\"failed\" selected>"));
    let amount = pat.get(&format!("{base}?amount=77.70")).await.body;
    assert_eq!(amount.matches("<td class=\"amount\">").count(), 1);
    assert!(amount.contains("INV-7"));
    let later = pat
        .get(&format!("{base}?from=2026-11-28&to=2026-11-28"))
        .await
        .body;
    assert_eq!(later.matches("<td class=\"amount\">").count(), 1, "{later}");
    assert!(later.contains("INV-LATER"));
    let none = pat.get(&format!("{base}?to=2026-11-01")).await.body;
    assert!(none.contains("No payments match."));

    // Filters that make no sense: said above the form, which keeps what was typed.
    for (query, error) in [
        ("amount=ten", "Amount: a decimal amount such as 120.50"),
        ("from=2026-13-01", "From: a date such as 2026-11-01"),
        ("from=2026-11-28&to=2026-11-27", "From: on or before to"),
        ("invoice=no%20such%20thing", "Invoice: an invoice number"),
        ("status=lost", "Status: one of pending, succeeded"),
    ] {
        let page = pat.get(&format!("{base}?{query}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{query}");
        let alert = page.body.find("role=\"alert\"").expect("an error");
        assert!(
            alert < page.body.find("id=\"search\"").unwrap(),
            "above the form"
        );
        assert!(page.body.contains(error), "{query}: {}", page.body);
        assert!(page.body.contains("Fix the search above"));
    }
}
