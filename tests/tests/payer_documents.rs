//! The signed-in payer's invoices API and the invoice and receipt PDFs (the portal function),
//! over DynamoDB Local, the sandbox gateway and the Xero double: a payer sees, pays and
//! downloads only their own customers' invoices; everyone else gets 404.

use axum::Router;
use devtools::xero_double::{XeroDouble, XeroInvoice};
use http::{HeaderMap, StatusCode, header};
use paybridge_tests::{NOW, World, call};
use serde_json::{Value, json};
use time::{Date, Duration};

const PASSWORD: &str = "correct horse battery staple";
const CONTACT: &str = "5b96e86b-418e-48e8-8949-308c14aec278";
const APP: &str = "paybridge-app";
const APP_SECRET: &str = "xero-app-secret-0123456789";

/// Adds a ledger invoice to demo (USD) with a customer's name and a due date.
async fn invoice(world: &World, number: &str, total: &str, customer: (&str, &str), due: Date) {
    let issue = NOW.date() - Duration::days(40);
    world
        .add_ledger_invoice("demo", number, total, customer, issue, due)
        .await;
}

/// A GET as a browser sends it (the session cookie, if any): status, headers, raw body.
async fn get(
    router: &Router,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut request = http::Request::builder().uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = router
        .clone()
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

async fn get_json(router: &Router, path: &str, cookie: &str) -> (StatusCode, Value) {
    let (status, _, json) = call(router, "GET", path, &[("cookie", cookie)], None).await;
    (status, json)
}

/// A PDF's text, all pages, as lopdf reads it back (it fails on anything but a valid PDF).
fn pdf_text(bytes: &[u8]) -> String {
    let doc = lopdf::Document::load_mem(bytes).expect("a valid PDF");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    assert!(!pages.is_empty());
    doc.extract_text(&pages).expect("its text")
}

fn numbers(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["invoice_number"].as_str().unwrap())
        .collect()
}

fn portal(world: &World) -> Router {
    web::portal::router(world.services.clone())
}

#[tokio::test]
async fn a_payer_lists_pays_and_downloads_only_their_customers_invoices() {
    let world = World::new().await;
    let today = NOW.date();
    let harbor = ("c1", "Harbor Dental");
    invoice(
        &world,
        "INV-1",
        "100.00",
        harbor,
        today + Duration::days(30),
    )
    .await;
    invoice(
        &world,
        "INV-OLD",
        "250.50",
        harbor,
        today - Duration::days(3),
    )
    .await;
    invoice(&world, "INV-C2", "75.00", ("c2", "Bayside Vets"), today).await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["c1"], PASSWORD)
        .await;
    let sam = world
        .payer("demo", "sam@bayside.test", &["c2"], PASSWORD)
        .await;
    let router = portal(&world);

    // Open invoices, oldest due first, with the overdue mark on the world's clock.
    let (status, open) = get_json(&router, "/api/me/orgs/demo/invoices", &pat).await;
    assert_eq!(status, StatusCode::OK, "{open}");
    assert_eq!(numbers(&open), ["INV-OLD", "INV-1"]);
    let old = &open[0];
    assert_eq!(old["overdue"], true);
    assert_eq!(old["customer_id"], "c1");
    assert_eq!(old["customer_name"], "Harbor Dental");
    assert_eq!(old["total"], json!({"amount": "250.50", "currency": "USD"}));
    assert_eq!(
        old["amount_due"],
        json!({"amount": "250.50", "currency": "USD"})
    );
    assert_eq!(old["status"], "open");
    assert_eq!(old["due_date"], (today - Duration::days(3)).to_string());
    assert_eq!(old["pay_url"], "/pay/demo/INV-OLD");
    assert_eq!(old["pdf_url"], "/api/me/orgs/demo/invoices/INV-OLD/pdf");
    assert_eq!(open[1]["overdue"], false);
    assert_eq!(open[1]["amount_due"]["amount"], "100.00");

    // Pat pays INV-1 in full with a card.
    let token = world.card_token("4242424242424242").await;
    let (status, _, payment) = call(
        &world.local_router(),
        "POST",
        "/api/pay/demo/INV-1",
        &[("idempotency-key", "pay-1"), ("cookie", &pat)],
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    let payment_id = payment["id"].as_str().unwrap().to_owned();

    let (_, open) = get_json(&router, "/api/me/orgs/demo/invoices?status=open", &pat).await;
    assert_eq!(numbers(&open), ["INV-OLD"]);
    let (_, paid) = get_json(&router, "/api/me/orgs/demo/invoices?status=paid", &pat).await;
    assert_eq!(numbers(&paid), ["INV-1"]);
    assert_eq!(paid[0]["status"], "paid");
    assert_eq!(paid[0]["amount_due"]["amount"], "0.00");
    assert_eq!(paid[0]["overdue"], false);
    let (_, all) = get_json(&router, "/api/me/orgs/demo/invoices?status=all", &pat).await;
    assert_eq!(numbers(&all), ["INV-OLD", "INV-1"]);
    let (status, problem) =
        get_json(&router, "/api/me/orgs/demo/invoices?status=unpaid", &pat).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, one) = get_json(&router, "/api/me/orgs/demo/invoices/INV-1", &pat).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (one["invoice_number"].as_str(), one["status"].as_str()),
        (Some("INV-1"), Some("paid"))
    );

    // The invoice PDF that Paybridge renders (the ledger has none of its own).
    let (status, headers, pdf) =
        get(&router, "/api/me/orgs/demo/invoices/INV-1/pdf", Some(&pat)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"demo-INV-1.pdf\""
    );
    assert_eq!(headers[header::CACHE_CONTROL], "private, no-store");
    assert!(pdf.starts_with(b"%PDF-1.7"));
    let text = pdf_text(&pdf);
    for expected in [
        "demo IT",
        "INV-1",
        "Harbor Dental",
        "100.00 USD",
        "0.00 USD",
        "Paid",
        &payment_id,
        "Succeeded",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }

    // The receipt of the payment.
    let receipt = format!("/api/me/orgs/demo/payments/{payment_id}/receipt.pdf");
    let (status, headers, pdf) = get(&router, &receipt, Some(&pat)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(headers[header::CACHE_CONTROL], "private, no-store");
    let text = pdf_text(&pdf);
    for expected in [
        "Payment receipt",
        "Harbor Dental",
        "INV-1",
        "100.00 USD",
        "Visa \u{2022}\u{2022}\u{2022}\u{2022}4242",
        &payment_id,
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }

    // Sam (customer c2) sees only c2's invoice, and nothing of c1's: the same 404 as unknown.
    let (_, sams) = get_json(&router, "/api/me/orgs/demo/invoices?status=all", &sam).await;
    assert_eq!(numbers(&sams), ["INV-C2"]);
    assert_eq!(sams[0]["customer_name"], "Bayside Vets");
    let hidden = [
        "/api/me/orgs/demo/invoices/INV-1".to_owned(),
        "/api/me/orgs/demo/invoices/INV-1/pdf".to_owned(),
        receipt.clone(),
        "/api/me/orgs/demo/invoices/INV-404".to_owned(),
        "/api/me/orgs/demo/invoices/INV-404/pdf".to_owned(),
        "/api/me/orgs/demo/invoices/no%20such/pdf".to_owned(),
        "/api/me/orgs/demo/payments/pay_01JD0000000000000000000000/receipt.pdf".to_owned(),
        "/api/me/orgs/demo/payments/nonsense/receipt.pdf".to_owned(),
    ];
    for path in &hidden {
        let (status, headers, body) = get(&router, path, Some(&sam)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        let problem: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "not_found", "{path}");
    }
    // Another org (one that exists, one that does not): 404 for Pat too.
    for path in [
        "/api/me/orgs/acme/invoices",
        "/api/me/orgs/nope/invoices",
        "/api/me/orgs/acme/invoices/INV-1/pdf",
        "/api/me/orgs/NOT_A_SLUG/invoices",
    ] {
        let (status, problem) = get_json(&router, path, &pat).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {problem}");
    }
    // This is the payer's view: an admin with no customers of their own sees none.
    let admin = world
        .sign_in("admin@demo.test", "a long enough password")
        .await;
    let (status, none) = get_json(&router, "/api/me/orgs/demo/invoices?status=all", &admin).await;
    assert_eq!((status, none), (StatusCode::OK, json!([])));
    let (status, _, _) = get(&router, &receipt, Some(&admin)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // No session: 401, whatever the route.
    for path in [
        "/api/me/orgs/demo/invoices",
        "/api/me/orgs/demo/invoices/INV-1",
        "/api/me/orgs/demo/invoices/INV-1/pdf",
        receipt.as_str(),
    ] {
        let (status, _, _) = get(&router, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn overdue_is_judged_by_the_day_in_the_orgs_time_zone() {
    let world = World::new().await;
    // Due today (UTC): at NOW, 12:00 UTC, it is already tomorrow in Kiritimati (UTC+14).
    invoice(
        &world,
        "INV-T",
        "10.00",
        ("c1", "Harbor Dental"),
        NOW.date(),
    )
    .await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["c1"], PASSWORD)
        .await;
    let router = portal(&world);
    let (_, one) = get_json(&router, "/api/me/orgs/demo/invoices/INV-T", &pat).await;
    assert_eq!(one["overdue"], false, "{one}");
    world
        .set_settings("demo", json!({"timezone": "Pacific/Kiritimati"}))
        .await;
    let (_, one) = get_json(&router, "/api/me/orgs/demo/invoices/INV-T", &pat).await;
    assert_eq!(one["overdue"], true, "{one}");
    let (_, list) = get_json(&router, "/api/me/orgs/demo/invoices", &pat).await;
    assert_eq!(list[0]["overdue"], true);
}

/// Connects demo to the Xero double's organisation with a ready token pair.
async fn connect_xero(world: &World, xero: &XeroDouble) {
    let (tenant, access, refresh) = xero.connect(APP);
    let expires = (world.services.clock.now() + Duration::minutes(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let settings = json!({"client_id": APP, "client_secret": APP_SECRET, "payment_account": "090",
        "tenant_id": tenant, "access_token": access, "refresh_token": refresh, "access_expires_at": expires});
    let auth = format!("Bearer {}", World::demo_key());
    let (status, _, view) = call(
        &world.local_router(),
        "PUT",
        "/api/orgs/demo/accounting",
        &[("authorization", &auth)],
        Some(json!({"system": "xero", "settings": settings})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
}

#[tokio::test]
async fn on_xero_the_invoice_pdf_is_xeros_own() {
    let xero = XeroDouble::start().await;
    xero.add_app(APP, APP_SECRET);
    let world = World::with_endpoints(
        gateways::Endpoints::default(),
        accounting::Endpoints::xero_at(&xero.url()),
    )
    .await;
    connect_xero(&world, &xero).await;
    xero.add_invoice(XeroInvoice::authorised(
        "INV-2001", CONTACT, "115.00", "USD",
    ));
    xero.add_invoice(XeroInvoice::authorised(
        "INV-2002",
        "other-contact",
        "9.00",
        "USD",
    ));
    let pat = world
        .payer("demo", "pat@harbor.test", &[CONTACT], PASSWORD)
        .await;
    let sam = world
        .payer("demo", "sam@bayside.test", &["c2"], PASSWORD)
        .await;
    let router = portal(&world);

    let (status, open) = get_json(&router, "/api/me/orgs/demo/invoices", &pat).await;
    assert_eq!(status, StatusCode::OK, "{open}");
    assert_eq!(numbers(&open), ["INV-2001"]);
    assert_eq!(open[0]["amount_due"]["amount"], "115.00");
    assert_eq!(open[0]["overdue"], true, "due 2026-04-01");
    // Xero is asked for open invoices only: `paid` lists none there, `all` the open ones.
    let (_, paid) = get_json(&router, "/api/me/orgs/demo/invoices?status=paid", &pat).await;
    assert_eq!(paid, json!([]));
    let (_, all) = get_json(&router, "/api/me/orgs/demo/invoices?status=all", &pat).await;
    assert_eq!(numbers(&all), ["INV-2001"]);

    let (status, headers, pdf) = get(
        &router,
        "/api/me/orgs/demo/invoices/INV-2001/pdf",
        Some(&pat),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"demo-INV-2001.pdf\""
    );
    assert!(pdf.starts_with(b"%PDF-1.4"), "Xero's bytes, not ours (1.7)");
    let text = pdf_text(&pdf);
    assert!(text.contains("Tax Invoice INV-2001"), "{text}");

    for (cookie, path) in [
        (&sam, "/api/me/orgs/demo/invoices/INV-2001/pdf"),
        (&pat, "/api/me/orgs/demo/invoices/INV-2002/pdf"),
        (&pat, "/api/me/orgs/demo/invoices/INV-9999/pdf"),
    ] {
        let (status, _, _) = get(&router, path, Some(cookie)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}
