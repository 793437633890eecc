//! Saved cards and bank accounts: a payer saves them (a bank account with its mandate), pays
//! with them, sets the default, removes them; nobody else can touch them; the mandate ledger; the
//! expiry notice; and no card number or CVC anywhere in the table or the logs.

use http::StatusCode;
use paybridge_tests::{NOW, World, call, call_from, logs};
use serde_json::{Value, json};

const PASSWORD: &str = "payer password 123";

async fn save(world: &World, cookie: &str, org: &str, body: Value) -> (StatusCode, Value) {
    let client = "198.51.100.7:50000".parse().unwrap();
    let path = format!("/api/me/orgs/{org}/methods");
    let headers = [("cookie", cookie), ("user-agent", "TestBrowser/1.0")];
    let (status, _, json) = call_from(
        &world.local_router(),
        Some(client),
        "POST",
        &path,
        &headers,
        Some(body),
    )
    .await;
    (status, json)
}

async fn methods(world: &World, cookie: &str, org: &str) -> (StatusCode, Value) {
    let path = format!("/api/me/orgs/{org}/methods");
    let (status, _, json) = call(
        &world.local_router(),
        "GET",
        &path,
        &[("cookie", cookie)],
        None,
    )
    .await;
    (status, json)
}

async fn pay(
    world: &World,
    cookie: &str,
    org: &str,
    invoice: &str,
    body: Value,
) -> (StatusCode, Value) {
    let path = format!("/api/pay/{org}/{invoice}");
    let key = format!("k-{}", ulid::Ulid::new());
    let mut headers = vec![("idempotency-key", key.as_str())];
    if !cookie.is_empty() {
        headers.push(("cookie", cookie));
    }
    let (status, _, json) = call(&world.local_router(), "POST", &path, &headers, Some(body)).await;
    (status, json)
}

async fn method_call(
    world: &World,
    cookie: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, _, json) = call(
        &world.local_router(),
        method,
        path,
        &[("cookie", cookie)],
        body,
    )
    .await;
    (status, json)
}

#[tokio::test]
async fn a_payer_saves_a_card_and_a_bank_account_pays_with_each_and_manages_them() {
    let (captured, _logging) = logs::capture();
    let world = World::new().await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;

    // A card: saved once; the same card again answers the saved one.
    let token = world.card_token("4242424242424242").await;
    let (status, card) = save(
        &world,
        &pat,
        "demo",
        json!({"token": token, "kind": "card"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{card}");
    assert_eq!(card["brand"], "visa");
    assert_eq!(card["last4"], "4242");
    assert_eq!(
        (card["exp_month"].clone(), card["exp_year"].clone()),
        (json!(12), json!(2030))
    );
    assert_eq!(card["is_default"], true, "the first method is the default");
    assert_eq!(card["customer_ids"], json!(["cust-1"]));
    assert_eq!(card["mandate_id"], Value::Null);
    let again = world.card_token("4242424242424242").await;
    let (status, same) = save(
        &world,
        &pat,
        "demo",
        json!({"token": again, "kind": "card"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same["id"], card["id"]);
    assert_eq!(
        methods(&world, &pat, "demo")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A bank account needs the direct debit authority, in its current words.
    let bank_token = world.bank_token("000123456789", "Pat Lee").await;
    let (status, problem) = save(
        &world,
        &pat,
        "demo",
        json!({"token": bank_token, "kind": "bank"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "mandate_required");
    let (status, terms) = method_call(
        &world,
        &pat,
        "GET",
        "/api/me/orgs/demo/methods/terms?kind=bank",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(terms["kind"], "direct_debit");
    assert!(
        terms["text"]
            .as_str()
            .unwrap()
            .contains("I authorise demo IT")
    );
    let stale = json!({"token": bank_token, "kind": "bank", "mandate": {"signer_name": "Pat Lee", "terms_version": "2020-01-01"}});
    let (status, problem) = save(&world, &pat, "demo", stale).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "terms_changed");
    let body = json!({
        "token": bank_token, "kind": "bank", "make_default": true,
        "mandate": {"signer_name": "Pat Lee", "terms_version": terms["version"]},
    });
    let (status, bank) = save(&world, &pat, "demo", body).await;
    assert_eq!(status, StatusCode::CREATED, "{bank}");
    assert_eq!(bank["bank_name"], "Sandbox Bank");
    assert_eq!(bank["holder_name"], "Pat Lee");
    assert_eq!(bank["last4"], "6789");
    assert_eq!(bank["is_default"], true);
    let (_, list) = methods(&world, &pat, "demo").await;
    assert_eq!(list[0]["id"], bank["id"], "the default first");
    assert_eq!(list[1]["is_default"], false, "one default at a time");

    // Paying with each: the balance, read anew; the receipt to the payer.
    world.add_invoice("demo", "INV-1", "120.00").await;
    world.add_invoice("demo", "INV-2", "80.00").await;
    world.add_invoice("demo", "INV-3", "40.00").await;
    let (status, paid) = pay(
        &world,
        &pat,
        "demo",
        "INV-1",
        json!({"method_id": card["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["amount"]["amount"], "120.00");
    assert_eq!(world.balance("demo", "INV-1").await, "0.00");
    let receipt = &world.outbox().await[0].message;
    assert_eq!(receipt.to.as_str(), "pat@harbor.test");
    assert!(
        receipt.text.contains("Visa ending 4242"),
        "{}",
        receipt.text
    );
    let (status, debit) = pay(
        &world,
        &pat,
        "demo",
        "INV-2",
        json!({"method_id": bank["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{debit}");
    assert_eq!(debit["status"], "pending", "a bank debit settles later");

    // The default moves; a nickname sticks.
    let card_path = format!("/api/me/orgs/demo/methods/{}", card["id"].as_str().unwrap());
    let (status, changed) = method_call(
        &world,
        &pat,
        "PATCH",
        &card_path,
        Some(json!({"make_default": true, "nickname": "Work card"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (changed["is_default"].clone(), changed["nickname"].clone()),
        (json!(true), json!("Work card"))
    );
    let (_, list) = methods(&world, &pat, "demo").await;
    assert_eq!(list[0]["id"], card["id"]);
    assert_eq!(list[1]["is_default"], false);

    // The mandate ledger, for the org's admin.
    let auth = format!("Bearer {}", World::demo_key());
    let (status, _, mandates) = call(
        &world.local_router(),
        "GET",
        "/api/orgs/demo/mandates",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mandate = &mandates[0];
    assert_eq!(mandates.as_array().unwrap().len(), 1);
    assert_eq!(mandate["kind"], "direct_debit");
    assert_eq!(mandate["signer_name"], "Pat Lee");
    assert_eq!(mandate["email"], "pat@harbor.test");
    assert_eq!(mandate["method"], "Sandbox Bank account ending 6789");
    assert_eq!(mandate["method_id"], bank["id"]);
    assert_eq!(
        mandate["terms_hash"],
        domain::token_hash(terms["text"].as_str().unwrap())
    );
    assert_eq!(mandate["client_ip"], "198.51.100.7");
    assert_eq!(mandate["user_agent"], "TestBrowser/1.0");
    assert_eq!(mandate["accepted_at"], "2026-11-26T12:00:00Z");

    // A method that a schedule uses cannot go (the schedule names itself as its user).
    let bank_id = domain::MethodId::parse(bank["id"].as_str().unwrap()).unwrap();
    let demo = domain::OrgSlug::parse("demo").unwrap();
    let user = world
        .services
        .users
        .find_user_by_email(&domain::Email::parse("pat@harbor.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        world
            .services
            .methods
            .use_method(&demo, &user.id, &bank_id, "schedule sch_01")
            .await
            .unwrap()
    );
    let bank_path = format!("/api/me/orgs/demo/methods/{bank_id}");
    let (status, problem) = method_call(&world, &pat, "DELETE", &bank_path, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "method_in_use");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("schedule sch_01")
    );
    world
        .services
        .methods
        .release_method(&demo, &user.id, &bank_id, "schedule sch_01")
        .await
        .unwrap();
    assert_eq!(
        method_call(&world, &pat, "DELETE", &bank_path, None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        method_call(&world, &pat, "DELETE", &bank_path, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, problem) = pay(
        &world,
        &pat,
        "demo",
        "INV-3",
        json!({"method_id": bank["id"]}),
    )
    .await;
    assert_eq!(
        (status, problem["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );

    // Removing the default makes the newest other one the default; removing the last leaves none.
    let token = world.card_token("5555555555554444").await;
    let (_, second) = save(
        &world,
        &pat,
        "demo",
        json!({"token": token, "kind": "card"}),
    )
    .await;
    assert_eq!(second["is_default"], false);
    assert_eq!(
        method_call(&world, &pat, "DELETE", &card_path, None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (_, list) = methods(&world, &pat, "demo").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        (list[0]["id"].clone(), list[0]["is_default"].clone()),
        (second["id"].clone(), json!(true))
    );

    // No card number, account number or CVC anywhere: not in the table, not in the logs.
    let scan = world
        .store
        .client()
        .scan()
        .table_name(world.store.table())
        .send()
        .await
        .unwrap();
    let items = format!("{:?}", scan.items());
    let logs = captured.text();
    for number in ["4242424242424242", "5555555555554444", "000123456789"] {
        assert!(!items.contains(number), "{number} is in the table");
        logs::assert_absent(&logs, "a card or account number", number);
    }
    for item in scan.items() {
        for (name, value) in item {
            assert!(!name.contains("cvc") && !name.contains("cvv"), "{name}");
            assert!(
                !matches!(value.as_s().map(String::as_str), Ok("123" | "1234")),
                "{name} holds a CVC"
            );
        }
    }
    assert!(!logs.to_lowercase().contains("cvc"));
}

#[tokio::test]
async fn nobody_else_can_see_use_change_or_delete_a_method() {
    let world = World::new().await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["cust-1", "cust-2"], PASSWORD)
        .await;
    let token = world.card_token("4242424242424242").await;
    let (_, card) = save(
        &world,
        &pat,
        "demo",
        json!({"token": token, "kind": "card"}),
    )
    .await;
    let path = format!("/api/me/orgs/demo/methods/{}", card["id"].as_str().unwrap());
    world.add_invoice("demo", "INV-1", "50.00").await;

    // Another payer of the same org and customer.
    let sam = world
        .payer("demo", "sam@harbor.test", &["cust-1"], PASSWORD)
        .await;
    assert_eq!(methods(&world, &sam, "demo").await.1, json!([]));
    let patch = Some(json!({"make_default": true}));
    assert_eq!(
        method_call(&world, &sam, "PATCH", &path, patch).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        method_call(&world, &sam, "DELETE", &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = pay(
        &world,
        &sam,
        "demo",
        "INV-1",
        json!({"method_id": card["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Another org: pat is no member of acme; acme's payer cannot reach demo's methods either.
    assert_eq!(methods(&world, &pat, "acme").await.0, StatusCode::NOT_FOUND);
    let acme = world
        .payer("acme", "alex@acme-client.test", &["cust-1"], PASSWORD)
        .await;
    assert_eq!(
        methods(&world, &acme, "demo").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        method_call(&world, &acme, "DELETE", &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    world.add_invoice("acme", "A-1", "50.00").await;
    let (status, _) = pay(
        &world,
        &pat,
        "acme",
        "A-1",
        json!({"method_id": card["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A guest: not signed in.
    assert_eq!(
        methods(&world, "", "demo").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = pay(
        &world,
        "",
        "demo",
        "INV-1",
        json!({"method_id": card["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An invoice of a customer that pat does not pay for is not pat's to pay.
    world
        .add_invoice_of("demo", "INV-9", "70.00", "cust-9")
        .await;
    let (status, _) = pay(
        &world,
        &pat,
        "demo",
        "INV-9",
        json!({"method_id": card["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(world.balance("demo", "INV-9").await, "70.00");
    assert_eq!(
        world.balance("demo", "INV-1").await,
        "50.00",
        "nothing was charged"
    );

    // And pat, the owner, can.
    let (status, paid) = pay(
        &world,
        &pat,
        "demo",
        "INV-1",
        json!({"method_id": card["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
}

#[tokio::test]
async fn a_card_that_expires_within_30_days_is_told_once() {
    let world = World::new().await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;
    // NOW is 2026-11-26: a card of 11/2026 works until the 30th; one of 12/2026 until the
    // 31st of December, more than 30 days away; one of 2030 long after.
    for (number, month, year) in [
        ("4242424242424242", 11, 2026),
        ("5555555555554444", 12, 2026),
        ("378282246310005", 12, 2030),
    ] {
        let token = world.card_token_expiring(number, month, year).await;
        let (status, _) = save(
            &world,
            &pat,
            "demo",
            json!({"token": token, "kind": "card"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let before = world.outbox().await.len();
    let told = app::methods::notify_expiring_cards(&world.services, NOW)
        .await
        .unwrap();
    assert_eq!(told, 1);
    let mail = world.outbox().await;
    assert_eq!(mail.len(), before + 1);
    assert_eq!(mail[0].message.to.as_str(), "pat@harbor.test");
    assert_eq!(
        mail[0].message.subject,
        "Your card saved with demo IT expires soon"
    );
    assert!(mail[0].message.text.contains("Visa ending 4242"));
    assert!(mail[0].message.text.contains("11/2026"));
    assert!(mail[0].message.html.contains("11/2026"));

    // Once: the next run tells nobody again. Five days later December's card is due.
    assert_eq!(
        app::methods::notify_expiring_cards(&world.services, NOW)
            .await
            .unwrap(),
        0
    );
    let later = NOW + time::Duration::days(5);
    assert_eq!(
        app::methods::notify_expiring_cards(&world.services, later)
            .await
            .unwrap(),
        1
    );
    assert!(
        world.outbox().await[0]
            .message
            .text
            .contains("Mastercard ending 4444")
    );
    assert_eq!(
        app::methods::notify_expiring_cards(&world.services, later)
            .await
            .unwrap(),
        0
    );
}
