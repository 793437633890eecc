//! The Lambda path: an API Gateway HTTP API event, converted by lambda_http as it is in AWS,
//! reaches the same router the local stack serves.

use http_body_util::BodyExt;
use paybridge_tests::World;
use tower::ServiceExt;

#[tokio::test]
async fn an_api_gateway_event_reaches_the_admin_router() {
    let world = World::new().await;
    let new = app::ledger::NewInvoice {
        invoice_number: "INV-1".into(),
        customer_id: "c1".into(),
        customer_name: "Harbor Dental".into(),
        total: "99.90".into(),
        currency: None,
        issue_date: paybridge_tests::NOW.date(),
        due_date: paybridge_tests::NOW.date(),
    };
    let s = &world.services;
    let org = domain::OrgSlug::parse("demo").unwrap();
    app::ledger::add_invoice(
        s.ledger.as_ref(),
        s.clock.as_ref(),
        &org,
        domain::Currency::Usd,
        &new,
    )
    .await
    .unwrap();

    let event = include_str!("../../events/admin-get-invoice.apigw-v2.json");
    let request = lambda_http::request::from_str(event).expect("a valid API Gateway v2 event");
    let response = web::admin::router(world.services.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["amount_due"]["amount"], "99.90");
}

/// The function (its router) that serves an event's route, as infra/template.yaml maps it.
fn router_of(function: &str, services: std::sync::Arc<app::Services>) -> axum::Router {
    match function {
        "admin" => web::admin::router(services),
        "pay-now" => web::pay_now::router(services),
        "invite" => web::invite::router(services),
        "accept-invite" => web::accept::router(services),
        "portal" => web::portal::router(services),
        "save-method" => web::methods::router(services),
        "webhook" => web::webhook::router(services),
        "anet-proxy" => web::anet_proxy::router(services),
        other => panic!("no HTTP function {other}"),
    }
}

/// Every API Gateway event in events/ (one per route of the template; infra/deploy's tests
/// check that each route has one): the function that serves it, and what it answers a client
/// with no credentials (or the tests' demo API key, where the event carries it).
const EVENTS: &[(&str, &str, u16)] = &[
    ("admin-create-invoice", "admin", 201),
    ("admin-get-invoice", "admin", 200),
    ("admin-list-payments", "admin", 200),
    ("admin-payment-history", "admin", 404),
    ("admin-get-settings", "admin", 200),
    ("admin-patch-settings", "admin", 401),
    ("admin-list-mandates", "admin", 401),
    ("admin-rotate-webhook-secret", "admin", 401),
    ("admin-refund-payment", "admin", 401),
    ("admin-list-webhook-secrets", "admin", 401),
    ("admin-enrol-autopay", "admin", 401),
    ("admin-end-autopay", "admin", 401),
    ("admin-get-gateway", "admin", 200),
    ("admin-put-gateway", "admin", 401),
    ("admin-test-gateway", "admin", 401),
    ("admin-payers-page", "admin", 303),
    ("admin-payers-invite", "admin", 303),
    ("admin-payers-act", "admin", 303),
    ("admin-openapi", "admin", 200),
    ("admin-issue-anet-credential", "admin", 401),
    ("admin-list-anet-credentials", "admin", 200),
    ("admin-revoke-anet-credential", "admin", 401),
    ("admin-get-accounting", "admin", 401),
    ("admin-put-accounting", "admin", 401),
    ("admin-test-accounting", "admin", 401),
    ("admin-xero-consent", "admin", 401),
    ("admin-xero-callback", "admin", 400),
    ("admin-list-unprocessed", "admin", 401),
    ("admin-retry-unprocessed", "admin", 401),
    ("admin-fixed-unprocessed", "admin", 401),
    ("pay-now-summary", "pay-now", 200),
    ("pay-now-pay", "pay-now", 402),
    ("pay-now-xero", "pay-now", 303),
    ("pay-now-page", "pay-now", 200),
    ("pay-now-receipt", "pay-now", 404),
    ("pay-now-css", "pay-now", 200),
    ("pay-now-pay-js", "pay-now", 200),
    ("pay-now-details-js", "pay-now", 200),
    ("pay-now-methods-js", "pay-now", 200),
    ("pay-now-gateway-stripe-js", "pay-now", 200),
    ("pay-now-gateway-authorize-net-js", "pay-now", 200),
    ("pay-now-health", "pay-now", 200),
    ("invite-create", "invite", 201),
    ("invite-list", "invite", 200),
    ("invite-resend", "invite", 404),
    ("invite-revoke", "invite", 401),
    ("accept-invite-link", "accept-invite", 404),
    ("accept-invite-page", "accept-invite", 404),
    ("accept-invite-submit", "accept-invite", 403),
    ("accept-invite-accept", "accept-invite", 404),
    ("portal-login", "portal", 401),
    ("portal-logout", "portal", 204),
    ("portal-me", "portal", 401),
    ("portal-create-schedule", "portal", 401),
    ("portal-list-schedules", "portal", 401),
    ("portal-cancel-schedule", "portal", 401),
    ("portal-get-autopay", "portal", 401),
    ("portal-put-autopay", "portal", 401),
    ("portal-delete-autopay", "portal", 401),
    ("portal-list-invoices", "portal", 401),
    ("portal-get-invoice", "portal", 401),
    ("portal-invoice-pdf", "portal", 401),
    ("portal-receipt-pdf", "portal", 401),
    ("portal-list-payments", "portal", 401),
    ("portal-sign-in-page", "portal", 200),
    ("portal-sign-in", "portal", 403),
    ("portal-sign-out", "portal", 403),
    ("portal-account", "portal", 303),
    ("portal-change-password", "portal", 401),
    ("portal-logout-everywhere", "portal", 401),
    ("portal-get-notifications", "portal", 401),
    ("portal-put-notifications", "portal", 401),
    ("portal-account-password", "portal", 403),
    ("portal-account-logout-everywhere", "portal", 403),
    ("portal-account-notifications", "portal", 403),
    ("portal-home", "portal", 303),
    ("portal-dashboard", "portal", 303),
    ("portal-transactions", "portal", 303),
    ("portal-schedule-page", "portal", 303),
    ("portal-schedule-submit", "portal", 303),
    ("portal-schedule-cancel", "portal", 303),
    ("portal-payment-page", "portal", 303),
    ("portal-autopay-page", "portal", 303),
    ("portal-autopay-save", "portal", 303),
    ("portal-autopay-end", "portal", 303),
    ("pay-now-pay-several", "pay-now", 401),
    ("pay-now-pay-several-preview", "pay-now", 401),
    ("pay-now-pay-several-page", "pay-now", 303),
    ("pay-now-pay-several-submit", "pay-now", 303),
    ("portal-sign-in-code-page", "portal", 303),
    ("portal-sign-in-code", "portal", 403),
    ("portal-login-two-factor", "portal", 401),
    ("portal-get-two-factor", "portal", 401),
    ("portal-start-two-factor", "portal", 401),
    ("portal-confirm-two-factor", "portal", 401),
    ("portal-disable-two-factor", "portal", 401),
    ("portal-account-two-factor", "portal", 403),
    ("portal-account-two-factor-confirm", "portal", 403),
    ("portal-account-two-factor-disable", "portal", 403),
    ("save-method-list", "save-method", 401),
    ("save-method-save", "save-method", 401),
    ("save-method-terms", "save-method", 401),
    ("save-method-update", "save-method", 401),
    ("save-method-remove", "save-method", 401),
    ("save-method-page", "save-method", 303),
    ("save-method-act", "save-method", 303),
    ("webhook-sandbox-settled", "webhook", 401),
    // Authorize.Net's way: HTTP 200 whatever happened; the events' credentials were never
    // issued, so the answer is E00007 (AIM: response code 3, reason 13) and nothing is charged.
    ("anet-proxy-request-api", "anet-proxy", 200),
    ("anet-proxy-transact-dll", "anet-proxy", 200),
];

#[tokio::test]
async fn every_route_event_reaches_its_functions_router() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-1", "99.90").await;
    let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut wrong = Vec::new();
    for (name, function, expected) in EVENTS {
        let text = std::fs::read_to_string(events.join(format!("{name}.apigw-v2.json")))
            .unwrap_or_else(|e| panic!("events/{name}.apigw-v2.json: {e}"));
        let request = lambda_http::request::from_str(&text)
            .unwrap_or_else(|e| panic!("{name} is not an API Gateway v2 event: {e}"));
        // What the Lambda host reads from every request: API Gateway's id and the client.
        use lambda_http::RequestExt;
        match request.request_context_ref() {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => {
                assert!(ctx.request_id.is_some(), "{name}: a request id");
                assert!(ctx.http.source_ip.is_some(), "{name}: the client's address");
            }
            other => panic!("{name}: not an HTTP API request context: {other:?}"),
        }
        let response = router_of(function, world.services.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("no such route"),
            "{name}: {function}'s router has no such route"
        );
        if *function == "anet-proxy" {
            let refused = text.contains("\"E00007\"") || text.starts_with("\"3\"|\"1\"|\"13\"|");
            assert!(
                refused,
                "{name}: unknown credentials are refused: {text:.300}"
            );
            assert!(
                !text.contains("4242424242424242"),
                "{name}: the card number is never echoed"
            );
        }
        if status != *expected {
            wrong.push(format!(
                "{name}: {status} (expected {expected}) {text:.200}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn the_scheduled_events_run_a_tick() {
    let world = World::new().await;
    let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    for name in [
        "auto-pay-tick.eventbridge.json",
        "auto-pay-tick.scheduler.json",
    ] {
        let text = std::fs::read_to_string(events.join(name)).unwrap();
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(event["detail-type"], "Scheduled Event", "{name}");
        // The tick takes the event as it comes and charges what is due when it runs.
        let report = runtime::run_one_tick(&world.services, paybridge_tests::NOW, None)
            .await
            .unwrap();
        assert_eq!(
            report.claimed, 0,
            "{name}: nothing is due in an empty world"
        );
    }
}
