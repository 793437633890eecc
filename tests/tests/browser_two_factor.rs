//! Two-factor sign-in in headless Chromium (issue 12): a payer sets it up from the account page
//! (the key shown as text and a QR code, a code from it, the recovery codes), signs out, and
//! signs in again with the password and then a fresh code. On a desktop window and on a
//! phone's; a screenshot of each step in `<CARGO_TARGET_TMPDIR>/screenshots/two-factor-<width>/`,
//! and every page checked for unlabelled fields and sideways scrolling.

use std::path::Path;

use domain::totp;
use paybridge_tests::World;
use paybridge_tests::real_browser::{Browser, Site};
use time::Duration;

const EMAIL: &str = "pat@harbor.test";
const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn a_payer_turns_on_two_factor_sign_in_on_a_desktop() {
    two_factor_journey(1280, 900).await;
}

#[tokio::test]
async fn a_payer_turns_on_two_factor_sign_in_on_a_phone() {
    two_factor_journey(390, 844).await;
}

/// The code an authenticator app shows for `key` (as the page gave it) at the world's time.
fn code_for(world: &World, key: &str) -> String {
    let key = totp::base32_decode(&key.replace(' ', "")).expect("the key is base32");
    totp::code_at(
        &key,
        totp::step_at(world.services.clock.now().unix_timestamp()),
    )
}

async fn two_factor_journey(width: u32, height: u32) {
    let world = World::new().await;
    world.payer("demo", EMAIL, &["cust-1"], PASSWORD).await;
    let site = Site::start(&world).await;
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut browser = Browser::open(&site, "two-factor", width, height, tmp).await;

    browser.goto("/account").await;
    browser.wait_for_text("Sign in").await;
    browser.fill("Email", EMAIL).await;
    browser.fill("Password", PASSWORD).await;
    browser.click("Sign in").await;
    let account = browser.wait_for_text("Two-factor sign-in").await;
    assert!(
        account.contains("Off. With two-factor sign-in"),
        "{account}"
    );
    browser.click("Set up two-factor sign-in").await;

    // The key, as text and as a QR code; a code from it turns two-factor on.
    browser
        .wait_for_text("Add Paybridge to your authenticator app")
        .await;
    assert_eq!(browser.js_count(".qr svg").await, 1);
    let key = browser.attribute("#secret", "textContent").await;
    browser.step("key-shown").await;
    browser.fill("6-digit code", &code_for(&world, &key)).await;
    browser.click("Turn on two-factor sign-in").await;
    browser.wait_for_text("Your recovery codes").await;
    assert_eq!(browser.js_count("#recovery-codes li").await, 10);
    browser.step("recovery-codes").await;
    browser.click("I have saved them").await;
    let account = browser.wait_for_text("Two-factor sign-in").await;
    assert!(account.contains("On since"), "{account}");
    assert!(
        account.contains("You have 10 unused recovery codes"),
        "{account}"
    );
    browser.click("Sign out").await;
    browser.wait_for_text("Sign in").await;

    // Signing in: the password, then a code (a fresh one: the one used above is spent).
    world.set_now(world.services.clock.now() + Duration::seconds(60));
    browser.goto("/portal").await;
    browser.wait_for_text("Sign in").await;
    browser.fill("Email", EMAIL).await;
    browser.fill("Password", PASSWORD).await;
    browser.click("Sign in").await;
    browser.wait_for_text("Enter your code").await;
    browser
        .fill("Code from your authenticator app", "000000")
        .await;
    browser.step("code-asked").await;
    browser.click("Sign in").await;
    browser.wait_for_text("That code").await;
    browser.step("code-refused").await;
    browser
        .fill("Code from your authenticator app", &code_for(&world, &key))
        .await;
    browser.click("Sign in").await;
    browser.wait_for_text("Outstanding invoices").await;
    assert_eq!(browser.path().await, "/portal/orgs/demo");
    browser.step("signed-in").await;

    browser.finish().await;
}
