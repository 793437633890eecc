//! An org configured for Authorize.Net through the admin API, end to end against the double
//! (which checks every request against the official XSD): the configuration shown without its
//! Transaction Key, "test connection" with good and bad credentials, a card payment through Pay
//! Now found at the gateway under the payment's 20-character reference, a signed notification
//! confirmed against the transaction's current status, a forged one refused, and neither the
//! Transaction Key nor the Signature Key in an answer, the table or a log line.

use http::StatusCode;
use paybridge_tests::rig::{Card, Kind, Rig};
use paybridge_tests::{call, logs};
use serde_json::json;

const LOGIN: &str = "paybridgeTest1";
const KEY: &str = "4kJd9Wq2Lp7Xz3Mn";

#[tokio::test]
async fn an_authorize_net_org_pays_through_its_merchant_account_and_no_credential_leaks() {
    let (captured, _logging) = logs::capture();
    let rig = Rig::new(Kind::AuthorizeNet).await;
    let world = &rig.world;
    let double = rig.anet.as_ref().unwrap();

    let (status, view) = world.admin("GET", "/api/orgs/demo/gateway", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["gateway"], "authorize-net");
    assert_eq!(view["key_hint"], format!("{LOGIN} …{}", &KEY[12..]));
    assert!(!view.to_string().contains(&KEY[..12]), "{view}");

    let (status, check) = world
        .admin("POST", "/api/orgs/demo/gateway/test", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(check["ok"], true, "{check}");

    world.add_invoice("demo", "INV-A1", "310.25").await;
    let token = rig.card(Card::Approve).await;
    let (status, _, payment) = call(
        &world.local_router(),
        "POST",
        "/api/pay/demo/INV-A1",
        &[("idempotency-key", "anet-1")],
        Some(json!({"token": token, "email": "pat@harbor.test"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["gateway"], "authorize-net");
    assert_eq!(world.balance("demo", "INV-A1").await, "0.00");
    // One charge at the gateway, for the balance, under the payment's reference.
    let charges = double.requests_of("createTransactionRequest");
    assert_eq!(charges.len(), 1, "{charges:?}");
    let reference = payment["id"].as_str().unwrap();
    let charge = &charges[0];
    assert_eq!(charge["transactionRequest"]["amount"], "310.25");
    assert_eq!(
        charge["transactionRequest"]["order"]["invoiceNumber"],
        reference[reference.len() - 20..]
    );
    assert_eq!(
        charge["transactionRequest"]["payment"]["opaqueData"]["dataDescriptor"],
        "COMMON.ACCEPT.INAPP.PAYMENT"
    );

    // A notice of the charge, signed with the Signature Key: confirmed against the
    // transaction's status (captured, not settled: the payment stays succeeded).
    let stored = world
        .services
        .payments
        .get_payment(
            &domain::OrgSlug::parse("demo").unwrap(),
            &domain::PaymentId::parse(reference).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let trans_id = stored.gateway_ref.clone().unwrap();
    let body = double.notification("net.authorize.payment.authcapture.created", &trans_id);
    let secret = webhook_secret(world).await;
    let signed = devtools::AnetDouble::sign_webhook(&secret, &body);
    let (status, answer) = rig
        .deliver((
            "/webhooks/demo/authorize-net".to_owned(),
            vec![("X-ANET-Signature".to_owned(), signed.clone())],
            body.clone(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "already_there", "{answer}");
    // The same notice again is a duplicate; a forged one is refused unread.
    let (_, again) = rig
        .deliver((
            "/webhooks/demo/authorize-net".to_owned(),
            vec![("X-ANET-Signature".to_owned(), signed)],
            body.clone(),
        ))
        .await;
    assert_eq!(again["outcome"], "duplicate", "{again}");
    let forged = devtools::AnetDouble::sign_webhook(&"0".repeat(128), &body);
    let (status, _) = rig
        .deliver((
            "/webhooks/demo/authorize-net".to_owned(),
            vec![("X-ANET-Signature".to_owned(), forged)],
            body,
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Wrong credentials: "test connection" says so, without echoing them.
    let bad = json!({"gateway": "authorize-net", "credentials": {"api_login_id": LOGIN,
        "transaction_key": "0000000000000000", "environment": "sandbox"}});
    let (status, _) = world
        .admin("PUT", "/api/orgs/demo/gateway", Some(bad))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, check) = world
        .admin("POST", "/api/orgs/demo/gateway/test", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(check["ok"], false, "{check}");
    assert!(!check.to_string().contains("0000000000000000"), "{check}");

    // Neither key is in the table (sealed) or in any log line.
    let items = world.table_text().await;
    for (what, secret) in [("the transaction key", KEY), ("the signature key", &secret)] {
        assert!(!items.contains(secret), "{what} is in the table in clear");
        logs::assert_absent(&captured.text(), what, secret);
    }
}

/// The org's current webhook secret, as the rig configured it (read back through the port, as
/// the webhook function does).
async fn webhook_secret(world: &paybridge_tests::World) -> String {
    let secrets = world
        .services
        .webhook_secrets
        .active_secrets(
            &domain::OrgSlug::parse("demo").unwrap(),
            "authorize-net",
            world.services.clock.now(),
        )
        .await
        .unwrap();
    secrets[0].expose().clone()
}

/// Authorize.Net says nothing when an eCheck settles or comes back: the payment is watched, and
/// the tick asks about it (every 6 hours while pending). One debit settles and its payer gets
/// the settled receipt; another is returned and the invoice owes its amount again. Asking again
/// later changes nothing more.
#[tokio::test]
async fn echecks_settle_and_come_back_though_authorize_net_never_tells() {
    let rig = Rig::new(Kind::AuthorizeNet).await;
    let world = &rig.world;
    let double = rig.anet.as_ref().unwrap();
    world.add_invoice("demo", "INV-E1", "500.00").await;
    world.add_invoice("demo", "INV-E2", "75.00").await;
    let pay = |invoice: &'static str, token: String| async move {
        let (status, _, payment) = call(
            &world.local_router(),
            "POST",
            &format!("/api/pay/demo/{invoice}"),
            &[("idempotency-key", invoice)],
            Some(json!({"token": token, "email": "pat@harbor.test"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{payment}");
        assert_eq!(payment["status"], "pending", "a debit is not money yet");
        payment["id"].as_str().unwrap().to_owned()
    };
    let settles = pay(
        "INV-E1",
        double.tokenize_bank("121042882", "123456789", "Pat Lee"),
    )
    .await;
    let returned = pay(
        "INV-E2",
        double.tokenize_bank("121042882", "4444444444", "Pat Lee"),
    )
    .await;
    assert_eq!(world.balance("demo", "INV-E1").await, "0.00");
    assert_eq!(world.balance("demo", "INV-E2").await, "0.00");
    let status_of = |id: String| async move {
        world
            .services
            .payments
            .get_payment(
                &domain::OrgSlug::parse("demo").unwrap(),
                &domain::PaymentId::parse(&id).unwrap(),
            )
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str()
            .to_owned()
    };
    let run = |hours: i64| async move {
        world.set_now(paybridge_tests::NOW + time::Duration::hours(hours));
        app::webhooks::run_due_follow_ups(&world.services, 50)
            .await
            .unwrap()
    };

    // Not asked before its time; asked at 6 hours: still pending at the gateway.
    assert_eq!(run(1).await.done + run(1).await.waiting, 0);
    run(6).await;
    assert_eq!(status_of(settles.clone()).await, "pending");

    // The batch settles at the gateway; the next ask finds out.
    double.settle();
    run(12).await;
    assert_eq!(status_of(settles.clone()).await, "settled");
    assert_eq!(status_of(returned.clone()).await, "returned");
    assert_eq!(world.balance("demo", "INV-E1").await, "0.00");
    assert_eq!(world.balance("demo", "INV-E2").await, "75.00", "owed again");
    let subjects: Vec<String> = world
        .outbox()
        .await
        .into_iter()
        .filter(|m| m.message.to.as_str() == "pat@harbor.test")
        .map(|m| m.message.subject)
        .collect();
    assert!(
        subjects.iter().any(|s| s.contains("Bank payment returned")),
        "{subjects:?}"
    );

    // The settled one is still asked about daily (it could yet be returned); nothing moves.
    let mail_before = world.outbox().await.len();
    let report = run(12 + 24).await;
    assert_eq!(report.waiting, 1, "{report:?}");
    assert_eq!(status_of(settles).await, "settled");
    assert_eq!(world.outbox().await.len(), mail_before);
}
