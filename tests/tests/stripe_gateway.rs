//! An org configured for Stripe, end to end against localstripe (started by the harness): its
//! gateway set through the admin API, card payments and declines through Pay Now, a saved card
//! charged off-session, a retry after a lost answer that reuses the Idempotency-Key and makes
//! one PaymentIntent, "test connection" with a good and a bad key, and no credential in an
//! answer, the table or a log line.
//!
//! Card data never reaches Paybridge: each test creates its PaymentMethod directly at
//! localstripe, as Stripe.js does in the payer's browser, and hands Paybridge only its `pm_` id.

use std::sync::{Arc, Mutex};

use http::StatusCode;
use paybridge_tests::{World, call, logs};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASSWORD: &str = "payer password 123";

fn new_key() -> String {
    format!("sk_test_pb{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// Calls localstripe as Stripe.js or a test would: form body, the key as basic auth.
async fn stripe(
    endpoint: &str,
    key: &str,
    method: reqwest::Method,
    path: &str,
    form: &[(&str, &str)],
) -> Value {
    let request = reqwest::Client::new()
        .request(method.clone(), format!("{endpoint}{path}"))
        .basic_auth(key, Some(""));
    let request = if method == reqwest::Method::GET {
        request.query(form)
    } else {
        request.form(form)
    };
    let response = request.send().await.unwrap();
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

/// A card PaymentMethod, made the way the browser makes it (Stripe.js): Paybridge gets its id.
async fn card(endpoint: &str, key: &str, number: &str) -> String {
    let pm = stripe(
        endpoint,
        key,
        reqwest::Method::POST,
        "/v1/payment_methods",
        &[
            ("type", "card"),
            ("card[number]", number),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2030"),
            ("card[cvc]", "123"),
        ],
    )
    .await;
    pm["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{pm}"))
        .to_owned()
}

/// The PaymentIntents localstripe holds that carry this reference.
async fn intents_of(endpoint: &str, key: &str, reference: &str) -> Vec<Value> {
    let list = stripe(
        endpoint,
        key,
        reqwest::Method::GET,
        "/v1/payment_intents",
        &[("limit", "100")],
    )
    .await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pi| pi["metadata"]["paybridge_reference"] == reference)
        .cloned()
        .collect()
}

async fn admin(
    world: &World,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let auth = format!("Bearer {}", World::demo_key());
    let (status, _, json) = call(
        &world.local_router(),
        method,
        path,
        &[("authorization", &auth)],
        body,
    )
    .await;
    (status, json)
}

async fn configure_stripe(world: &World, key: &str, webhook_secret: Option<&str>) -> Value {
    let mut body = json!({"gateway": "stripe", "credentials": {"secret_key": key}});
    if let Some(secret) = webhook_secret {
        body["webhook_secret"] = json!(secret);
    }
    let (status, view) = admin(world, "PUT", "/api/orgs/demo/gateway", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    view
}

async fn pay(world: &World, cookie: &str, invoice: &str, body: Value) -> (StatusCode, Value) {
    let path = format!("/api/pay/demo/{invoice}");
    let key = format!("k-{}", ulid::Ulid::new());
    let mut headers = vec![("idempotency-key", key.as_str())];
    if !cookie.is_empty() {
        headers.push(("cookie", cookie));
    }
    let (status, _, json) = call(&world.local_router(), "POST", &path, &headers, Some(body)).await;
    (status, json)
}

#[tokio::test]
async fn a_card_payment_through_pay_now_goes_to_the_orgs_stripe_and_no_credential_leaks() {
    let (captured, _logging) = logs::capture();
    let endpoint = devtools::localstripe::shared_for_tests();
    let world = World::with_stripe_at(endpoint).await;
    let key = new_key();
    let webhook_secret = format!("whsec_{}", ulid::Ulid::new());

    // Unconfigured, the org uses the sandbox.
    let (status, view) = admin(&world, "GET", "/api/orgs/demo/gateway", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (view["gateway"].clone(), view["configured"].clone()),
        (json!("sandbox"), json!(false))
    );

    let view = configure_stripe(&world, &key, Some(&webhook_secret)).await;
    assert_eq!(view["gateway"], "stripe");
    assert_eq!(view["configured"], true);
    assert_eq!(view["key_hint"], format!("…{}", &key[key.len() - 4..]));
    assert!(
        view["webhook_secret_id"]
            .as_str()
            .unwrap()
            .starts_with("whs_")
    );
    let (_, read) = admin(&world, "GET", "/api/orgs/demo/gateway", None).await;
    assert_eq!(read, view);
    for answer in [&view, &read] {
        let text = answer.to_string();
        assert!(!text.contains(&key[8..]), "the key is in an answer: {text}");
        assert!(
            !text.contains(&webhook_secret),
            "the webhook secret is in an answer"
        );
    }
    // acme is not configured: it stays on the sandbox.
    let acme = domain::OrgSlug::parse("acme").unwrap();
    assert_eq!(
        world.services.gateway.name_for(&acme).await.unwrap(),
        "sandbox"
    );

    world.add_invoice("demo", "INV-S1", "125.50").await;
    let pm = card(endpoint, &key, "4242424242424242").await;
    let (status, payment) = pay(
        &world,
        "",
        "INV-S1",
        json!({"token": pm, "email": "pat@harbor.test"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["gateway"], "stripe");
    assert_eq!(world.balance("demo", "INV-S1").await, "0.00");
    let reference = payment["id"].as_str().unwrap();
    let intents = intents_of(endpoint, &key, reference).await;
    assert_eq!(intents.len(), 1, "{intents:?}");
    assert_eq!(intents[0]["status"], "succeeded");
    assert_eq!(intents[0]["amount"], 12550);
    assert_eq!(intents[0]["currency"], "usd");
    assert_eq!(intents[0]["payment_method"], pm.as_str());
    // The stored payment names Stripe's PaymentIntent.
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
    assert_eq!(stored.gateway, "stripe");
    assert_eq!(stored.gateway_ref.as_deref(), intents[0]["id"].as_str());
    assert_eq!(
        stored.method.as_ref().map(|m| m.last4.as_str()),
        Some("4242")
    );

    // Neither the key nor the webhook secret is in the table (sealed) or in any log line.
    let scan = world
        .store
        .client()
        .scan()
        .table_name(world.store.table())
        .send()
        .await
        .unwrap();
    let items = format!("{:?}", scan.items());
    assert!(
        items.contains("gateway_config"),
        "the configuration is stored"
    );
    for (what, secret) in [
        ("the secret key", &key),
        ("the webhook secret", &webhook_secret),
    ] {
        let tail = &secret[8..];
        assert!(
            !items.contains(tail),
            "{what} is in the table in clear text"
        );
        let raw = scan
            .items()
            .iter()
            .flat_map(|item| item.values())
            .filter_map(|v| v.as_b().ok())
            .any(|b| b.as_ref().windows(tail.len()).any(|w| w == tail.as_bytes()));
        assert!(!raw, "{what} is in a binary attribute in clear");
        logs::assert_absent(&captured.text(), what, tail);
    }
}

#[tokio::test]
async fn a_declined_card_fails_the_payment_with_the_mapped_reason() {
    let endpoint = devtools::localstripe::shared_for_tests();
    let world = World::with_stripe_at(endpoint).await;
    let key = new_key();
    configure_stripe(&world, &key, None).await;
    world.add_invoice("demo", "INV-S2", "40.00").await;

    let pm = card(endpoint, &key, "4000000000000341").await;
    let (status, problem) = pay(&world, "", "INV-S2", json!({"token": pm})).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{problem}");
    assert_eq!(problem["code"], "payment_declined");
    assert_eq!(problem["decline_code"], "card_declined");
    assert_eq!(world.balance("demo", "INV-S2").await, "40.00");
    let payments = world
        .services
        .payments
        .list_payments(&domain::OrgSlug::parse("demo").unwrap(), 10, None)
        .await
        .unwrap();
    assert_eq!(payments.items.len(), 1);
    assert_eq!(payments.items[0].status.as_str(), "failed");
    assert_eq!(payments.items[0].gateway, "stripe");

    // A PaymentMethod Stripe never issued is a spent token, not a gateway failure.
    let (status, problem) = pay(&world, "", "INV-S2", json!({"token": "pm_nosuchmethod"})).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{problem}");
    assert_eq!(problem["decline_code"], "invalid_token");
}

#[tokio::test]
async fn a_saved_card_is_attached_to_a_stripe_customer_and_charged_off_session() {
    let endpoint = devtools::localstripe::shared_for_tests();
    let world = World::with_stripe_at(endpoint).await;
    let key = new_key();
    configure_stripe(&world, &key, None).await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;

    let pm = card(endpoint, &key, "4242424242424242").await;
    let (status, _, saved) = call(
        &world.local_router(),
        "POST",
        "/api/me/orgs/demo/methods",
        &[("cookie", &pat)],
        Some(json!({"token": pm, "kind": "card"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    assert_eq!(
        (saved["brand"].clone(), saved["last4"].clone()),
        (json!("visa"), json!("4242"))
    );
    let attached = stripe(
        endpoint,
        &key,
        reqwest::Method::GET,
        &format!("/v1/payment_methods/{pm}"),
        &[],
    )
    .await;
    let customer = attached["customer"]
        .as_str()
        .expect("attached to a customer")
        .to_owned();
    let stripe_customer = stripe(
        endpoint,
        &key,
        reqwest::Method::GET,
        &format!("/v1/customers/{customer}"),
        &[],
    )
    .await;
    assert_eq!(stripe_customer["email"], "pat@harbor.test");

    world
        .add_invoice_of("demo", "INV-S3", "80.00", "cust-1")
        .await;
    let (status, payment) = pay(&world, &pat, "INV-S3", json!({"method_id": saved["id"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["gateway"], "stripe");
    assert_eq!(world.balance("demo", "INV-S3").await, "0.00");
    let intents = intents_of(endpoint, &key, payment["id"].as_str().unwrap()).await;
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0]["customer"], customer.as_str());
    assert_eq!(intents[0]["payment_method"], pm.as_str());

    // Removing the method detaches it at Stripe.
    let path = format!(
        "/api/me/orgs/demo/methods/{}",
        saved["id"].as_str().unwrap()
    );
    let (status, _, _) = call(
        &world.local_router(),
        "DELETE",
        &path,
        &[("cookie", &pat)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let detached = stripe(
        endpoint,
        &key,
        reqwest::Method::GET,
        &format!("/v1/payment_methods/{pm}"),
        &[],
    )
    .await;
    assert_eq!(detached["customer"], Value::Null);
}

#[tokio::test]
async fn test_connection_tells_a_good_key_from_a_refused_one() {
    let endpoint = devtools::localstripe::shared_for_tests();
    let world = World::with_stripe_at(endpoint).await;

    // The sandbox needs no credentials.
    let (status, test) = admin(&world, "POST", "/api/orgs/demo/gateway/test", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        test,
        json!({"gateway": "sandbox", "ok": true, "detail": null})
    );

    configure_stripe(&world, &new_key(), None).await;
    let (_, test) = admin(&world, "POST", "/api/orgs/demo/gateway/test", None).await;
    assert_eq!(
        test,
        json!({"gateway": "stripe", "ok": true, "detail": null})
    );

    // A restricted key localstripe does not know: refused with 401, and the key is not echoed.
    let bad = format!("rk_test_pb{}", ulid::Ulid::new().to_string().to_lowercase());
    configure_stripe(&world, &bad, None).await;
    let (_, test) = admin(&world, "POST", "/api/orgs/demo/gateway/test", None).await;
    assert_eq!(test["gateway"], "stripe");
    assert_eq!(test["ok"], false);
    assert!(test["detail"].as_str().unwrap().contains("401"), "{test}");
    assert!(!test.to_string().contains(&bad[8..]));

    // Malformed configurations are refused without quoting the value.
    for body in [
        json!({"gateway": "stripe", "credentials": {"secret_key": "pk_test_publishable"}}),
        json!({"gateway": "stripe", "credentials": {}}),
        json!({"gateway": "stripe", "credentials": {"secret_key": "sk_test_abcdefgh", "other": 1}}),
        json!({"gateway": "braintree", "credentials": {}}),
        json!({"gateway": "stripe", "credentials": "sk_test_in_the_wrong_place"}),
    ] {
        let (status, problem) = admin(&world, "PUT", "/api/orgs/demo/gateway", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        let text = problem.to_string();
        assert!(
            !text.contains("publishable") && !text.contains("wrong_place"),
            "{text}"
        );
    }
    // Another org's key cannot change demo's gateway.
    let (status, _, _) = call(
        &world.local_router(),
        "PUT",
        "/api/orgs/demo/gateway",
        &[("authorization", &format!("Bearer {}", World::acme_key()))],
        Some(json!({"gateway": "sandbox"})),
    )
    .await;
    assert!(
        status == StatusCode::FORBIDDEN
            || status == StatusCode::NOT_FOUND
            || status == StatusCode::UNAUTHORIZED,
        "{status}"
    );
}

/// What the proxy does to the first `POST /v1/payment_intents`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lose {
    /// Drops it before Stripe sees it.
    Request,
    /// Passes it on, then drops Stripe's answer.
    Answer,
}

/// A proxy in front of localstripe that loses the first PaymentIntent creation (its request or
/// its answer) and records every creation's Idempotency-Key. One request per connection.
async fn lossy_proxy(upstream: &str, lose: Lose) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let keys = Arc::new(Mutex::new(Vec::new()));
    let seen = keys.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Some((head, body)) = read_request(&mut client).await else {
                    return;
                };
                let creation = head.starts_with("POST /v1/payment_intents ");
                let first = if creation {
                    let key = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .starts_with("idempotency-key:")
                                .then(|| l[16..].trim().to_owned())
                        })
                        .unwrap_or_default();
                    let mut seen = seen.lock().unwrap();
                    seen.push(key);
                    seen.len() == 1
                } else {
                    false
                };
                if first && lose == Lose::Request {
                    return; // closed without an answer
                }
                let head: String = head
                    .lines()
                    .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
                    .map(|l| format!("{l}\r\n"))
                    .collect();
                let mut server = TcpStream::connect(&upstream).await.unwrap();
                server
                    .write_all(format!("{head}connection: close\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                server.write_all(&body).await.unwrap();
                let mut answer = Vec::new();
                server.read_to_end(&mut answer).await.unwrap();
                if first && lose == Lose::Answer {
                    return;
                }
                let _ = client.write_all(&answer).await;
                let _ = client.shutdown().await;
            });
        }
    });
    (address, keys)
}

async fn read_request(client: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

#[tokio::test]
async fn a_lost_answer_is_resolved_by_reference_and_a_retry_reuses_the_idempotency_key() {
    let endpoint = devtools::localstripe::shared_for_tests();
    for lose in [Lose::Answer, Lose::Request] {
        let (proxy, keys) = lossy_proxy(endpoint, lose).await;
        let world = World::with_stripe_at(&proxy).await;
        let key = new_key();
        configure_stripe(&world, &key, None).await;
        world.add_invoice("demo", "INV-S4", "61.00").await;
        let pm = card(endpoint, &key, "4242424242424242").await;

        let (status, payment) = pay(&world, "", "INV-S4", json!({"token": pm})).await;
        assert_eq!(status, StatusCode::CREATED, "{payment}");
        assert_eq!(payment["status"], "succeeded");
        assert_eq!(world.balance("demo", "INV-S4").await, "0.00");
        let reference = payment["id"].as_str().unwrap();
        // Exactly one PaymentIntent for our reference, whichever half was lost.
        assert_eq!(intents_of(endpoint, &key, reference).await.len(), 1);
        let keys = keys.lock().unwrap().clone();
        match lose {
            // Found by its reference: not sent again.
            Lose::Answer => assert_eq!(keys, vec![reference.to_owned()]),
            // Never arrived: sent again with the very same key.
            Lose::Request => assert_eq!(keys, vec![reference.to_owned(), reference.to_owned()]),
        }
    }
}

#[tokio::test]
async fn a_card_saved_at_the_sandbox_is_not_charged_at_stripe_after_a_switch() {
    let endpoint = devtools::localstripe::shared_for_tests();
    let world = World::with_stripe_at(endpoint).await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;
    let token = world.card_token("4242424242424242").await;
    let (status, _, saved) = call(
        &world.local_router(),
        "POST",
        "/api/me/orgs/demo/methods",
        &[("cookie", &pat)],
        Some(json!({"token": token, "kind": "card"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");

    let key = new_key();
    configure_stripe(&world, &key, None).await;
    world
        .add_invoice_of("demo", "INV-S5", "20.00", "cust-1")
        .await;
    let (status, problem) = pay(&world, &pat, "INV-S5", json!({"method_id": saved["id"]})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert_eq!(world.balance("demo", "INV-S5").await, "20.00");
}

/// localstripe itself sends the webhook, signed with the org's secret (`Stripe-Signature`), to
/// the webhook function listening on a real port: the PaymentIntent's `payment_intent.succeeded`
/// reaches the payment (already succeeded from the charge's answer: recorded, nothing moves).
#[tokio::test]
async fn localstripe_delivers_a_signed_webhook_that_reaches_the_payment() {
    let endpoint = devtools::localstripe::shared_for_tests();
    let world = World::with_stripe_at(endpoint).await;
    // localstripe signs with the real time.
    world.set_now(time::OffsetDateTime::now_utc());
    let key = new_key();
    let secret = format!("whsec_{}", ulid::Ulid::new());
    configure_stripe(&world, &key, Some(&secret)).await;
    world.add_invoice("demo", "INV-W1", "64.00").await;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = world.local_router();
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    // Registered for this test's events only (localstripe sends every account's events to every
    // webhook; another test's PaymentIntents are unknown here and refused).
    let url = format!("http://127.0.0.1:{port}/webhooks/demo/stripe");
    let response = reqwest::Client::new()
        .post(format!("{endpoint}/_config/webhooks/paybridge-{port}"))
        .form(&[
            ("url", url.as_str()),
            ("secret", secret.as_str()),
            ("events[]", "payment_intent.succeeded"),
        ])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());

    let pm = card(endpoint, &key, "4242424242424242").await;
    let (status, payment) = pay(&world, "", "INV-W1", json!({"token": pm})).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    let history = format!(
        "/api/orgs/demo/payments/{}/history",
        payment["id"].as_str().unwrap()
    );
    let mut seen = Value::Null;
    for _ in 0..50 {
        let (_, entries) = admin(&world, "GET", &history, None).await;
        if entries.as_array().is_some_and(|e| !e.is_empty()) {
            seen = entries;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen[0]["type"], "payment_intent.succeeded", "{seen}");
    assert_eq!(seen[0]["outcome"], "already_there", "{seen}");
    assert_eq!(seen[0]["status_after"], "succeeded");
    server.abort();
}

/// Saving goes through a SetupIntent: a card the bank refuses at setup is not saved, and a card
/// whose bank wants the payer to authenticate is declined as such when charged (the page would
/// hand the authentication to Stripe.js; the answer says why).
#[tokio::test]
async fn a_card_refused_at_setup_is_not_saved_and_authentication_is_named() {
    let endpoint = devtools::localstripe::shared_for_tests();
    let world = World::with_stripe_at(endpoint).await;
    let key = new_key();
    configure_stripe(&world, &key, None).await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;
    let pm = card(endpoint, &key, "4000000000000002").await;
    let (status, _, refused) = call(
        &world.local_router(),
        "POST",
        "/api/me/orgs/demo/methods",
        &[("cookie", &pat)],
        Some(json!({"token": pm, "kind": "card"})),
    )
    .await;
    assert!(status.is_client_error(), "{status} {refused}");
    let (_, _, listed) = call(
        &world.local_router(),
        "GET",
        "/api/me/orgs/demo/methods",
        &[("cookie", &pat)],
        None,
    )
    .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");

    world.add_invoice("demo", "INV-3DS", "10.00").await;
    let pm = card(endpoint, &key, "4000002760003184").await;
    let (status, problem) = pay(&world, "", "INV-3DS", json!({"token": pm})).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{problem}");
    assert_eq!(problem["decline_code"], "authentication_required");
    assert_eq!(world.balance("demo", "INV-3DS").await, "10.00");
}

/// A bank debit at Stripe (SEPA here: localstripe's bank method) that the bank refuses later is
/// approved as `processing`: the payment is pending and the invoice's balance taken. Stripe's own
/// webhook (`payment_intent.payment_failed`, half a second later) fails it, the invoice owes the
/// amount again and the payer is told. (localstripe completes a good SEPA debit at once, so the
/// `payment_intent.succeeded` that settles a debit is covered by the adapter's unit tests.)
#[tokio::test]
async fn a_stripe_bank_debit_is_pending_until_stripes_webhook_fails_it() {
    let endpoint = devtools::localstripe::shared_for_tests();
    let world = World::with_stripe_at(endpoint).await;
    world.set_now(time::OffsetDateTime::now_utc());
    let key = new_key();
    let secret = format!("whsec_{}", ulid::Ulid::new());
    configure_stripe(&world, &key, Some(&secret)).await;
    world.add_invoice("demo", "INV-D2", "45.00").await;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = world.local_router();
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    let url = format!("http://127.0.0.1:{port}/webhooks/demo/stripe");
    let response = reqwest::Client::new()
        .post(format!("{endpoint}/_config/webhooks/paybridge-{port}"))
        .form(&[
            ("url", url.as_str()),
            ("secret", secret.as_str()),
            ("events[]", "payment_intent.payment_failed"),
        ])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());

    // localstripe refuses this IBAN's debit after a moment, as a bank would days later.
    let pm = stripe(
        endpoint,
        &key,
        reqwest::Method::POST,
        "/v1/payment_methods",
        &[
            ("type", "sepa_debit"),
            ("sepa_debit[iban]", "DE62370400440532013001"),
            ("billing_details[name]", "Pat Lee"),
        ],
    )
    .await;
    let pm = pm["id"].as_str().unwrap().to_owned();
    let (status, payment) = pay(
        &world,
        "",
        "INV-D2",
        json!({"token": pm, "email": "pat@harbor.test"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "pending", "a debit is not money yet");
    assert_eq!(world.balance("demo", "INV-D2").await, "0.00");

    let id = domain::PaymentId::parse(payment["id"].as_str().unwrap()).unwrap();
    let demo = domain::OrgSlug::parse("demo").unwrap();
    let mut status = String::new();
    for _ in 0..60 {
        status = world
            .services
            .payments
            .get_payment(&demo, &id)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str()
            .to_owned();
        if status != "pending" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "failed");
    assert_eq!(world.balance("demo", "INV-D2").await, "45.00", "owed again");
    world.follow_ups_done().await;
    let told = world
        .outbox()
        .await
        .into_iter()
        .filter(|m| m.message.to.as_str() == "pat@harbor.test")
        .any(|m| m.message.subject.contains("Bank payment failed"));
    assert!(told, "the payer is told");
    server.abort();
}
