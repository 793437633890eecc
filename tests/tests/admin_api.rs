//! The admin API as an org's automation uses it: through the router, over DynamoDB Local.

use axum::Router;
use http::{HeaderMap, StatusCode};
use paybridge_tests::World;
use serde_json::{Value, json};

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    paybridge_tests::call(router, method, path, &headers, body).await
}

fn invoice(number: &str, total: &str) -> Value {
    json!({
        "invoice_number": number,
        "customer_id": "cust-1",
        "customer_name": "Harbor Dental",
        "total": total,
        "issue_date": "2026-11-01",
        "due_date": "2026-12-01"
    })
}

#[tokio::test]
async fn an_admin_adds_an_invoice_and_reads_its_balance() {
    let world = World::new().await;
    let router = web::admin::router(world.services.clone());
    let key = World::demo_key();

    let (status, headers, body) = call(
        &router,
        "POST",
        "/api/orgs/demo/invoices",
        Some(&key),
        Some(invoice("INV-1", "1250.5")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body["amount_due"],
        json!({"amount": "1250.50", "currency": "USD"})
    );
    assert_eq!(body["status"], "open");
    assert_eq!(body["due_date"], "2026-12-01");

    let (status, _, body) = call(
        &router,
        "GET",
        "/api/orgs/demo/invoices/INV-1",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"]["amount"], "1250.50");
    assert_eq!(body["customer_name"], "Harbor Dental");

    // The same number again is refused and the first invoice is untouched.
    let (status, headers, body) = call(
        &router,
        "POST",
        "/api/orgs/demo/invoices",
        Some(&key),
        Some(invoice("INV-1", "1.00")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["code"], "invoice_exists");
    let (_, _, body) = call(
        &router,
        "GET",
        "/api/orgs/demo/invoices/INV-1",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(body["total"]["amount"], "1250.50");

    // acme's default currency is AUD; an explicit currency wins.
    let acme = World::acme_key();
    let (_, _, body) = call(
        &router,
        "POST",
        "/api/orgs/acme/invoices",
        Some(&acme),
        Some(invoice("A-1", "10")),
    )
    .await;
    assert_eq!(body["total"], json!({"amount": "10.00", "currency": "AUD"}));
    let mut yen = invoice("A-2", "1200");
    yen["currency"] = json!("JPY");
    let (_, _, body) = call(
        &router,
        "POST",
        "/api/orgs/acme/invoices",
        Some(&acme),
        Some(yen),
    )
    .await;
    assert_eq!(body["total"], json!({"amount": "1200", "currency": "JPY"}));
}

#[tokio::test]
async fn bad_input_gets_a_problem_with_a_stable_code_and_writes_nothing() {
    let world = World::new().await;
    let router = web::admin::router(world.services.clone());
    let key = World::demo_key();
    let cases = [
        (
            invoice("INV-2", "12.305"),
            "invalid_request",
            "at most 2 digits",
        ),
        (
            invoice("INV-2", "1e3"),
            "invalid_request",
            "'.' as the decimal point",
        ),
        (invoice("INV-2", "-5"), "invalid_request", "negative"),
        (invoice("INV-2", "0"), "invalid_request", "more than zero"),
        (
            invoice("INV 2", "5"),
            "invalid_request",
            "not a valid invoice number",
        ),
        (
            json!({"invoice_number": "INV-2"}),
            "invalid_json",
            "missing field",
        ),
        (
            {
                let mut v = invoice("INV-2", "5");
                v["total"] = json!(5.0);
                v
            },
            "invalid_json",
            "invalid type",
        ),
        (
            {
                let mut v = invoice("INV-2", "5");
                v["amount"] = json!("5");
                v
            },
            "invalid_json",
            "unknown field",
        ),
    ];
    for (body, code, detail) in cases {
        let (status, headers, problem) = call(
            &router,
            "POST",
            "/api/orgs/demo/invoices",
            Some(&key),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem["code"], code, "{body}");
        assert!(
            problem["detail"].as_str().unwrap().contains(detail),
            "{problem}"
        );
        assert_eq!(problem["status"], 400);
    }
    let (status, _, _) = call(
        &router,
        "GET",
        "/api/orgs/demo/invoices/INV-2",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no invalid request wrote an invoice"
    );

    // A body over the limit is refused before it is parsed.
    let big = invoice(&"9".repeat(10), &"1".repeat(70_000));
    let (status, _, problem) = call(
        &router,
        "POST",
        "/api/orgs/demo/invoices",
        Some(&key),
        Some(big),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem["code"], "payload_too_large");
}

#[tokio::test]
async fn the_tenant_comes_from_the_key_never_from_the_url() {
    let world = World::new().await;
    let router = web::admin::router(world.services.clone());
    call(
        &router,
        "POST",
        "/api/orgs/demo/invoices",
        Some(&World::demo_key()),
        Some(invoice("INV-9", "5")),
    )
    .await;

    let (status, headers, problem) =
        call(&router, "GET", "/api/orgs/demo/invoices/INV-9", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(problem["code"], "unauthorized");
    let (status, _, _) = call(
        &router,
        "GET",
        "/api/orgs/demo/invoices/INV-9",
        Some("pbk_forged"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // acme's key on demo's URL: not found, exactly like an org that does not exist.
    let (status, _, other) = call(
        &router,
        "GET",
        "/api/orgs/demo/invoices/INV-9",
        Some(&World::acme_key()),
        None,
    )
    .await;
    let (_, _, missing) = call(
        &router,
        "GET",
        "/api/orgs/nobody/invoices/INV-9",
        Some(&World::acme_key()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(other, missing);
    let (status, _, _) = call(
        &router,
        "POST",
        "/api/orgs/demo/invoices",
        Some(&World::acme_key()),
        Some(invoice("INV-10", "5")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn payments_are_listed_newest_first_in_pages() {
    use app::payments::Payment;
    use domain::*;
    let world = World::new().await;
    let router = web::admin::router(world.services.clone());
    for (i, minor) in [1000u64, 2050, 3000].into_iter().enumerate() {
        let payment = Payment {
            id: PaymentId::from_ulid(&format!("01JD8X3Q9M6V4W2K7T5R1N0P0{i}")).unwrap(),
            org: OrgSlug::parse("demo").unwrap(),
            invoice_number: InvoiceNumber::parse("INV-1").unwrap(),
            customer_id: None,
            amount: Money::from_minor(minor, Currency::Usd).unwrap(),
            allocations: Vec::new(),
            surcharge: Money::zero(Currency::Usd),
            status: PaymentStatus::Succeeded,
            gateway: "sandbox".into(),
            gateway_ref: None,
            method: None,
            failure: None,
            receipt_email: None,
            created_at: paybridge_tests::NOW,
            updated_at: paybridge_tests::NOW,
        };
        world
            .services
            .payments
            .insert_payment(&payment)
            .await
            .unwrap();
    }
    let key = World::demo_key();
    let (status, _, page) = call(
        &router,
        "GET",
        "/api/orgs/demo/payments?limit=2",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let amounts: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["amount"]["amount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts, ["30.00", "20.50"]);
    assert_eq!(page["items"][0]["created_at"], "2026-11-26T12:00:00Z");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, _, rest) = call(
        &router,
        "GET",
        &format!("/api/orgs/demo/payments?limit=2&cursor={cursor}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["amount"]["amount"], "10.00");
    assert_eq!(rest["next_cursor"], Value::Null);
    // Another org sees none of them.
    let (_, _, acme) = call(
        &router,
        "GET",
        "/api/orgs/acme/payments",
        Some(&World::acme_key()),
        None,
    )
    .await;
    assert_eq!(acme["items"], json!([]));
}

#[tokio::test]
async fn every_response_carries_security_headers_and_a_request_id() {
    let world = World::new().await;
    let router = web::admin::router(world.services.clone());
    let (status, headers, body) = call(&router, "GET", "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
    for name in [
        "content-security-policy",
        "strict-transport-security",
        "x-content-type-options",
        "referrer-policy",
        "x-frame-options",
        "x-request-id",
    ] {
        assert!(headers.contains_key(name), "{name} missing");
    }
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let (_, again, _) = call(&router, "GET", "/health", None, None).await;
    assert_ne!(headers["x-request-id"], again["x-request-id"]);

    let (status, headers, problem) = call(&router, "GET", "/no/such/route", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(problem["code"], "not_found");
}

#[tokio::test]
async fn the_openapi_document_lists_the_routes_from_the_code() {
    let world = World::new().await;
    let router = web::admin::router(world.services.clone());
    let (status, _, doc) = call(&router, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/orgs/{org}/invoices",
        "/api/orgs/{org}/invoices/{invoice}",
        "/api/orgs/{org}/payments",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

#[tokio::test]
async fn an_admin_turns_on_partial_payments_and_surcharges_and_a_refused_field_changes_nothing() {
    let world = World::new().await;
    let router = web::admin::router(world.services.clone());
    let key = World::demo_key();
    let path = "/api/orgs/demo/settings";

    let (status, _, settings) = call(&router, "GET", path, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(settings["allow_partial"], false);
    assert_eq!(
        settings["surcharges"],
        json!([]),
        "surcharges are off by default"
    );

    let change = json!({
        "allow_partial": true,
        "surcharges": [{"brand": "*", "rate_bps": 250}]
    });
    let (status, _, settings) = call(&router, "PATCH", path, Some(&key), Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["allow_partial"], true);
    assert_eq!(settings["surcharges"][0]["rate_bps"], 250);
    assert_eq!(settings["timezone"], "UTC", "fields left out stay");

    // 12% is refused, and so is the rest of that request.
    let refused = json!({"allow_partial": false, "surcharges": [{"brand": "*", "rate_bps": 1200}]});
    let (status, _, problem) = call(&router, "PATCH", path, Some(&key), Some(refused)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["code"], "invalid_request");
    assert!(problem["detail"].as_str().unwrap().contains("10.00%"));
    let (_, _, settings) = call(&router, "GET", path, Some(&key), None).await;
    assert_eq!(settings["allow_partial"], true);
    assert_eq!(settings["surcharges"][0]["rate_bps"], 250);

    // Another org's key cannot read or change them.
    let (status, _, _) = call(&router, "GET", path, Some(&World::acme_key()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(&router, "PATCH", path, None, Some(json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
