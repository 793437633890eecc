//! The payment methods page and the Pay Now page's saved methods, as a signed-in payer's
//! browser uses them (the page's script tokenizes with the sandbox and posts the token to the
//! save API: the test does the same).

use http::StatusCode;
use paybridge_tests::{Browser, World, call};
use serde_json::json;

const PASSWORD: &str = "payer password 123";

/// Invites `email` to demo for cust-1 and accepts; a browser signed in through the sign-in page.
async fn payer_browser(world: &World, email: &str) -> Browser {
    world.payer("demo", email, &["cust-1"], PASSWORD).await;
    let router = world.local_router();
    let mut browser = Browser::new(router);
    browser.get("/login").await;
    let signed_in = browser
        .post_form("/login", &[("email", email), ("password", PASSWORD)])
        .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    browser
}

const PAGE: &str = "/portal/orgs/demo/methods";

#[tokio::test]
async fn a_payer_saves_chooses_and_removes_methods_on_the_page() {
    let world = World::new().await;
    let mut pat = payer_browser(&world, "pat@harbor.test").await;

    let page = pat.get(PAGE).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("You have no saved cards or bank accounts yet.")
    );
    assert!(
        page.body
            .contains("data-save-url=\"/api/me/orgs/demo/methods\"")
    );
    assert!(
        page.body
            .contains("I authorise demo IT, through its payment provider, to debit")
    );
    assert!(
        page.body
            .contains("<script src=\"/sandbox/sandbox.js\"></script>")
    );

    // What the page's script does: tokenize, then post the token.
    for number in ["4242424242424242", "5555555555554444"] {
        let token = world.card_token(number).await;
        let saved = pat
            .post_json(
                "/api/me/orgs/demo/methods",
                json!({"token": token, "kind": "card"}),
            )
            .await;
        assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.body);
    }
    let page = pat.get(&format!("{PAGE}?done=saved")).await;
    assert!(page.body.contains("Saved."));
    assert!(page.body.contains("Visa ending 4242 (expires 12/2030)"));
    assert!(
        page.body
            .contains("Mastercard ending 4444 (expires 12/2030)")
    );
    assert_eq!(page.body.matches("data-method=").count(), 2);
    let (visa, mastercard) = {
        let (_, methods) = world_methods(&world, &mut pat).await;
        (methods[0].clone(), methods[1].clone())
    };
    assert_eq!(
        visa["last4"], "4242",
        "the first saved is the default, listed first"
    );

    // Make the Mastercard the default with the page's form.
    let path = format!("{PAGE}/{}/default", mastercard["id"].as_str().unwrap());
    let done = pat.post_form(&path, &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), format!("{PAGE}?done=default"));
    let (_, methods) = world_methods(&world, &mut pat).await;
    assert_eq!(methods[0]["id"], mastercard["id"]);

    // The Pay Now page offers the saved methods to the signed-in payer, the default chosen.
    world.add_invoice("demo", "INV-1", "90.00").await;
    let pay_page = pat.get("/pay/demo/INV-1").await;
    assert!(pay_page.body.contains("id=\"saved-methods\""));
    let default_radio = format!("value=\"{}\" checked", mastercard["id"].as_str().unwrap());
    assert!(pay_page.body.contains(&default_radio), "{}", pay_page.body);
    assert!(pay_page.body.contains("Visa ending 4242"));
    let guest = Browser::new(world.local_router())
        .get("/pay/demo/INV-1")
        .await;
    assert!(
        !guest.body.contains("saved-methods"),
        "a guest sees no saved methods"
    );

    // A method in use cannot be removed; the page says by what.
    let demo = domain::OrgSlug::parse("demo").unwrap();
    let visa_id = domain::MethodId::parse(visa["id"].as_str().unwrap()).unwrap();
    let user = world
        .services
        .users
        .find_user_by_email(&domain::Email::parse("pat@harbor.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    world
        .services
        .methods
        .use_method(&demo, &user.id, &visa_id, "auto-pay for cust-1")
        .await
        .unwrap();
    let refused = pat
        .post_form(&format!("{PAGE}/{visa_id}/remove"), &[])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        refused
            .body
            .contains("This method is used by auto-pay for cust-1")
    );
    world
        .services
        .methods
        .release_method(&demo, &user.id, &visa_id, "auto-pay for cust-1")
        .await
        .unwrap();

    // Removed with the form; a form without the CSRF token changes nothing.
    let forged = pat
        .post_raw(&format!("{PAGE}/{visa_id}/remove"), String::new())
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let removed = pat
        .post_form(&format!("{PAGE}/{visa_id}/remove"), &[])
        .await;
    assert_eq!(removed.location(), format!("{PAGE}?done=removed"));
    let (_, methods) = world_methods(&world, &mut pat).await;
    assert_eq!(methods.as_array().unwrap().len(), 1);
}

/// The payer's methods through the JSON API, with the browser's session.
async fn world_methods(world: &World, browser: &mut Browser) -> (StatusCode, serde_json::Value) {
    let cookie = format!("session={}", browser.cookie("session").unwrap());
    let (status, _, json) = call(
        &world.local_router(),
        "GET",
        "/api/me/orgs/demo/methods",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    (status, json)
}

#[tokio::test]
async fn the_page_is_for_signed_in_members_only() {
    let world = World::new().await;
    let mut stranger = Browser::new(world.local_router());
    let page = stranger.get(PAGE).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location(),
        "/login?next=%2Fportal%2Forgs%2Fdemo%2Fmethods"
    );

    let mut pat = payer_browser(&world, "pat@harbor.test").await;
    assert_eq!(
        pat.get("/portal/orgs/acme/methods").await.status,
        StatusCode::NOT_FOUND
    );
    let account = pat.get("/account").await;
    assert!(account.body.contains("href=\"/portal/orgs/demo/methods\""));
    assert!(
        !account.body.contains("Manage payers"),
        "a payer manages no payers"
    );
}
