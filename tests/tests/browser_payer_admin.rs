//! The Payer Admin page in headless Chromium: an org's admin signs in and invites a payer with
//! the page's form, on a desktop window and on a phone's; the page checked for unlabelled fields
//! and sideways scrolling (its invitations table has a visually hidden header), a screenshot of
//! each step in `<CARGO_TARGET_TMPDIR>/screenshots/payer-admin-<width>/`.

use std::path::Path;

use paybridge_tests::World;
use paybridge_tests::real_browser::{Browser, Site};

#[tokio::test]
async fn an_admin_invites_a_payer_on_a_desktop() {
    admin_invites(1280, 900).await;
}

#[tokio::test]
async fn an_admin_invites_a_payer_on_a_phone() {
    admin_invites(390, 844).await;
}

async fn admin_invites(width: u32, height: u32) {
    let world = World::new().await;
    let site = Site::start(&world).await;
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut browser = Browser::open(&site, "payer-admin", width, height, tmp).await;

    browser.goto("/admin/demo/payers").await;
    browser.wait_for_text("Sign in").await;
    browser.fill("Email", "admin@demo.test").await;
    browser.fill("Password", "a long enough password").await;
    browser.click("Sign in").await;
    browser.wait_for_text("Invite someone").await;
    assert_eq!(browser.path().await, "/admin/demo/payers");
    browser.fill("Name", "Pat Lee").await;
    browser.fill("Email", "pat@harbor.test").await;
    browser
        .fill("Pays for (customer ids)", "cust-1, cust-2")
        .await;
    browser.step("invite-form").await;
    browser.click("Send invitation").await;
    let page = browser.wait_for_text("pat@harbor.test").await;
    assert!(page.contains("Revoke") || page.contains("Resend"), "{page}");
    assert_eq!(browser.js_count("#invitations tbody tr").await, 1);
    browser.step("invited").await;

    browser.finish().await;
}
