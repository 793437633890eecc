//! The account: changing the password (with the current one), signing out everywhere, and the
//! emails a person wants. Through the routers of the local stack, over DynamoDB Local.

use http::StatusCode;
use paybridge_tests::{Browser, World, call, cookies};
use serde_json::json;

const OLD: &str = "correct horse battery";
const NEW: &str = "a longer horse battery staple";

async fn me(world: &World, cookie: &str) -> StatusCode {
    let (status, _, _) = call(
        &world.local_router(),
        "GET",
        "/api/me",
        &[("cookie", cookie)],
        None,
    )
    .await;
    status
}

async fn login(world: &World, email: &str, password: &str) -> StatusCode {
    let body = json!({"email": email, "password": password});
    let (status, _, _) = call(&world.local_router(), "POST", "/api/login", &[], Some(body)).await;
    status
}

#[tokio::test]
async fn a_password_change_needs_the_current_one_and_ends_the_other_sessions() {
    let world = World::new().await;
    let this = world
        .payer("demo", "pat@harbor.test", &["cust-1"], OLD)
        .await;
    let other = world.sign_in("pat@harbor.test", OLD).await;
    let router = world.local_router();
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    // A wrong current password: refused, nothing changes, no session ends.
    let (status, _, problem) = call(
        &router,
        "POST",
        "/api/me/password",
        &[("cookie", &this)],
        Some(change("not the password at all", NEW)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["code"], "wrong_password");
    assert_eq!(me(&world, &other).await, StatusCode::OK);
    assert_eq!(
        login(&world, "pat@harbor.test", NEW).await,
        StatusCode::UNAUTHORIZED
    );
    // A new password that breaks the rules: refused too.
    let (status, _, problem) = call(
        &router,
        "POST",
        "/api/me/password",
        &[("cookie", &this)],
        Some(change(OLD, "short")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["code"], "weak_password");

    let (status, _, answer) = call(
        &router,
        "POST",
        "/api/me/password",
        &[("cookie", &this)],
        Some(change(OLD, NEW)),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    assert_eq!(
        me(&world, &this).await,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        me(&world, &other).await,
        StatusCode::UNAUTHORIZED,
        "the other session ended"
    );
    assert_eq!(
        login(&world, "pat@harbor.test", OLD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login(&world, "pat@harbor.test", NEW).await, StatusCode::OK);
    let mail = world.outbox().await;
    let told = mail
        .iter()
        .find(|m| m.message.subject == "Your Paybridge password was changed")
        .expect("the password-changed email");
    assert_eq!(told.message.to.as_str(), "pat@harbor.test");
    assert!(told.message.text.contains("was changed"));
}

#[tokio::test]
async fn wrong_current_passwords_count_against_the_sign_in_limits() {
    let world = World::new().await;
    let this = world
        .payer("demo", "pat@harbor.test", &["cust-1"], OLD)
        .await;
    let router = world.local_router();
    let wrong = json!({"current_password": "not the password at all", "new_password": NEW});
    let mut statuses = Vec::new();
    for _ in 0..app::sessions::PER_EMAIL_AND_CLIENT + 1 {
        let (status, _, _) = call(
            &router,
            "POST",
            "/api/me/password",
            &[("cookie", &this)],
            Some(wrong.clone()),
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
    // The same limit as signing in: the right password is refused too until it passes.
    assert_eq!(
        login(&world, "pat@harbor.test", OLD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn the_account_page_changes_the_password() {
    let world = World::new().await;
    let cookie = world
        .payer("demo", "pat@harbor.test", &["cust-1"], OLD)
        .await;
    let mut browser = Browser::new(world.local_router());
    // Sign in through the page, as a person does.
    let page = browser.get("/login").await;
    assert_eq!(page.status, StatusCode::OK);
    let page = browser
        .post_form("/login", &[("email", "pat@harbor.test"), ("password", OLD)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = browser.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    for label in [
        r#"<label for="current_password">"#,
        r#"<label for="new_password">"#,
        r#"<label for="new_password_again">"#,
        "Sign out everywhere",
        r#"name="receipts" value="on" checked"#,
    ] {
        assert!(page.body.contains(label), "{label}");
    }

    let page = browser
        .post_form(
            "/account/password",
            &[
                ("current_password", OLD),
                ("new_password", NEW),
                ("new_password_again", "something else entirely"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.body
            .contains("The two new passwords are not the same.")
    );
    let page = browser
        .post_form(
            "/account/password",
            &[
                ("current_password", "not the password at all"),
                ("new_password", NEW),
                ("new_password_again", NEW),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("The current password is not right."));
    // A forged form (no CSRF token) changes nothing.
    let forged = browser
        .post_raw(
            "/account/password",
            format!("current_password={OLD}&new_password=forged-password-1&new_password_again=forged-password-1"),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let page = browser
        .post_form(
            "/account/password",
            &[
                ("current_password", OLD),
                ("new_password", NEW),
                ("new_password_again", NEW),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/account?done=password");
    let page = browser.get(page.location()).await;
    assert!(page.body.contains("Your password was changed."));
    assert_eq!(
        me(&world, &cookie).await,
        StatusCode::UNAUTHORIZED,
        "the invitation's session ended"
    );
    assert_eq!(login(&world, "pat@harbor.test", NEW).await, StatusCode::OK);
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session() {
    let world = World::new().await;
    let first = world
        .payer("demo", "pat@harbor.test", &["cust-1"], OLD)
        .await;
    let second = world.sign_in("pat@harbor.test", OLD).await;
    let bystander = world
        .payer("demo", "sam@harbor.test", &["cust-1"], OLD)
        .await;
    assert_eq!(me(&world, &first).await, StatusCode::OK);
    assert_eq!(me(&world, &second).await, StatusCode::OK);

    let (status, headers, _) = call(
        &world.local_router(),
        "POST",
        "/api/logout-everywhere",
        &[("cookie", &second)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(cookies(&headers).is_empty(), "the cookie is cleared");
    assert_eq!(me(&world, &first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&world, &second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&world, &bystander).await, StatusCode::OK, "only theirs");

    // The page's button does the same.
    let mut browser = Browser::new(world.local_router());
    browser.get("/login").await;
    browser
        .post_form("/login", &[("email", "pat@harbor.test"), ("password", OLD)])
        .await;
    let api = world.sign_in("pat@harbor.test", OLD).await;
    let page = browser.post_form("/account/logout-everywhere", &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login");
    assert_eq!(me(&world, &api).await, StatusCode::UNAUTHORIZED);
    assert_eq!(browser.get("/account").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn notification_preferences_are_kept_and_only_a_receipt_asked_for_on_the_page_overrides_them()
{
    let world = World::new().await;
    let cookie = world
        .payer("demo", "pat@harbor.test", &["cust-1"], OLD)
        .await;
    let router = world.local_router();
    let (status, _, prefs) = call(
        &router,
        "GET",
        "/api/me/notifications",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        prefs,
        json!({"receipts": true, "payment_failures": true, "upcoming_debits": true, "expiring_cards": true}),
        "all on by default"
    );
    let off = json!({"receipts": false, "payment_failures": true, "upcoming_debits": false, "expiring_cards": true});
    let (status, _, saved) = call(
        &router,
        "PUT",
        "/api/me/notifications",
        &[("cookie", &cookie)],
        Some(off.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved, off);
    let (_, _, read) = call(
        &router,
        "GET",
        "/api/me/notifications",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(read, off);

    // Pat pays signed in with a saved card and names no address: the receipt would go to Pat,
    // who turned receipts off, so none goes. A receipt asked for on the page (the address
    // typed, even Pat's own) always goes.
    world.add_invoice("demo", "INV-1", "10.00").await;
    world.add_invoice("demo", "INV-2", "20.00").await;
    world.add_invoice("demo", "INV-3", "30.00").await;
    let card = world.save_card(&cookie, "4242 4242 4242 4242").await;
    let saved = json!({"method_id": card});
    let (status, _, payment) = call(
        &router,
        "POST",
        "/api/pay/demo/INV-1",
        &[("idempotency-key", "k-1"), ("cookie", &cookie)],
        Some(saved),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    for (invoice, email, key) in [
        ("INV-2", "pat@harbor.test", "k-2"),
        ("INV-3", "guest@harbor.test", "k-3"),
    ] {
        let token = world.card_token("4242 4242 4242 4242").await;
        let (status, _, payment) = call(
            &router,
            "POST",
            &format!("/api/pay/demo/{invoice}"),
            &[("idempotency-key", key)],
            Some(json!({"token": token, "email": email})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{payment}");
    }
    let mut receipts: Vec<String> = world
        .outbox()
        .await
        .into_iter()
        .filter(|m| m.message.subject.contains("Receipt"))
        .map(|m| format!("{} {}", m.message.to, m.message.subject))
        .collect();
    receipts.sort();
    assert_eq!(
        receipts,
        [
            "guest@harbor.test Receipt from demo IT - invoice INV-3",
            "pat@harbor.test Receipt from demo IT - invoice INV-2"
        ]
    );

    // The page's form: the boxes show what is saved, and an unticked box turns it off.
    let mut browser = Browser::new(world.local_router());
    browser.get("/login").await;
    browser
        .post_form("/login", &[("email", "pat@harbor.test"), ("password", OLD)])
        .await;
    let page = browser.get("/account").await;
    assert!(
        page.body
            .contains(r#"name="payment_failures" value="on" checked"#)
    );
    assert!(!page.body.contains(r#"name="receipts" value="on" checked"#));
    let page = browser
        .post_form("/account/notifications", &[("receipts", "on")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let (_, _, read) = call(
        &router,
        "GET",
        "/api/me/notifications",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(
        read,
        json!({"receipts": true, "payment_failures": false, "upcoming_debits": false, "expiring_cards": false})
    );
}
