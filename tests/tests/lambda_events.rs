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
