//! The Payer Admin page and the sign-in page in front of it, as a browser uses them: through the
//! local stack's router, over DynamoDB Local, with the mail outbox.

use http::StatusCode;
use paybridge_tests::{Browser, World, call};
use serde_json::json;

const ADMIN_PASSWORD: &str = "a long enough password";

/// A browser signed in as `email` through the sign-in page.
async fn signed_in(world: &World, email: &str, password: &str) -> Browser {
    world.browser_signed_in(email, password).await
}

fn rows(page: &str, table: &str) -> usize {
    let Some(start) = page.find(&format!("<table id=\"{table}\">")) else {
        return 0;
    };
    let end = start + page[start..].find("</table>").unwrap();
    page[start..end].matches("<tr").count() - 1
}

#[tokio::test]
async fn an_admin_signs_in_invites_resends_and_revokes_from_the_page() {
    let world = World::new().await;
    let mut browser = Browser::new(world.local_router());

    // Signed out: the page sends the browser to sign in, and back afterwards.
    let page = browser.get("/admin/demo/payers").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=%2Fadmin%2Fdemo%2Fpayers");
    let form = browser.get(page.location()).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("value=\"/admin/demo/payers\""));
    let wrong = browser
        .post_form(
            "/login",
            &[
                ("email", "admin@demo.test"),
                ("password", "not the password"),
                ("next", "/admin/demo/payers"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("The email or password is not right."));
    assert!(
        wrong.body.contains("value=\"admin@demo.test\""),
        "the email stays filled in"
    );
    let done = browser
        .post_form(
            "/login",
            &[
                ("email", "admin@demo.test"),
                ("password", ADMIN_PASSWORD),
                ("next", "/admin/demo/payers"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), "/admin/demo/payers");
    assert!(browser.cookie("session").is_some());

    let page = browser.get("/admin/demo/payers").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("demo IT · signed in as Admin"));
    assert_eq!(
        rows(&page.body, "people"),
        1,
        "the admin is the only member"
    );
    assert!(page.body.contains("admin@demo.test"));
    assert_eq!(rows(&page.body, "invitations"), 0);
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    // Invite: the email goes out, the page says so and lists the invitation as pending.
    let invite = [
        ("name", "Pat Lee"),
        ("email", "pat@harbor.test"),
        ("customer_ids", "cust-1, cust-2"),
        ("role", "payer"),
    ];
    let sent = browser
        .post_form("/admin/demo/payers/invitations", &invite)
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert_eq!(sent.location(), "/admin/demo/payers?done=invited");
    let page = browser.get(sent.location()).await;
    assert!(page.body.contains("Invitation sent."));
    assert_eq!(rows(&page.body, "invitations"), 1);
    assert!(page.body.contains("cust-1, cust-2"));
    assert!(
        page.body
            .contains("<span class=\"status pending\">pending</span>")
    );
    let mail = world.outbox().await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].message.to.as_str(), "pat@harbor.test");
    assert!(
        mail[0].message.text.contains("Admin invited you"),
        "names the admin who invited"
    );
    let first_link = world.link_in_mail("pat@harbor.test").await;

    // The same email again reissues the pending invitation rather than adding a second.
    let again = browser
        .post_form("/admin/demo/payers/invitations", &invite)
        .await;
    assert_eq!(again.location(), "/admin/demo/payers?done=reissued");
    let page = browser.get(again.location()).await;
    assert_eq!(rows(&page.body, "invitations"), 1);
    assert!(page.body.contains("the old link no longer works"));

    // A refused form comes back with what to fix, and with what was typed.
    let refused = browser
        .post_form(
            "/admin/demo/payers/invitations",
            &[
                ("name", "Sam Roe"),
                ("email", "sam@harbor.test"),
                ("customer_ids", ""),
                ("role", "payer"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains("a payer pays for at least one customer")
    );
    assert!(refused.body.contains("value=\"sam@harbor.test\""));
    assert_eq!(
        world.outbox().await.len(),
        2,
        "nothing sent for a refused form"
    );

    // Resend: a new link; the first one (and the reissued one) no longer work.
    let id = world
        .services
        .invitations
        .list_invitations(&domain::OrgSlug::parse("demo").unwrap())
        .await
        .unwrap()[0]
        .id
        .to_string();
    let reissued_link = world.link_in_mail("pat@harbor.test").await;
    let resent = browser
        .post_form(&format!("/admin/demo/payers/invitations/{id}/resend"), &[])
        .await;
    assert_eq!(resent.location(), "/admin/demo/payers?done=resent");
    assert_eq!(world.outbox().await.len(), 3);
    let newest_link = world.link_in_mail("pat@harbor.test").await;
    assert_ne!(newest_link, reissued_link);
    for old in [&first_link, &reissued_link] {
        let page = Browser::new(world.local_router()).get(old).await;
        assert_eq!(page.status, StatusCode::GONE, "{old}");
    }

    // Revoke: the link stops working and the page offers no more actions for it.
    let revoked = browser
        .post_form(&format!("/admin/demo/payers/invitations/{id}/revoke"), &[])
        .await;
    assert_eq!(revoked.location(), "/admin/demo/payers?done=revoked");
    let page = browser.get(revoked.location()).await;
    assert!(
        page.body
            .contains("<span class=\"status revoked\">revoked</span>")
    );
    assert!(!page.body.contains("/resend\""), "{}", page.body);
    let gone = Browser::new(world.local_router()).get(&newest_link).await;
    assert_eq!(gone.status, StatusCode::GONE);
    assert!(gone.body.contains("withdrawn"));
    let twice = browser
        .post_form(&format!("/admin/demo/payers/invitations/{id}/revoke"), &[])
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert!(twice.body.contains("The invitation is revoked"));

    // Signing out ends the session: the page asks to sign in again.
    let out = browser.post_form("/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(browser.cookie("session").is_none());
    let page = browser.get("/admin/demo/payers").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn only_the_orgs_own_admins_see_or_use_the_page() {
    let world = World::new().await;

    // A payer of demo (accepted an invitation) is not an admin: not found.
    let router = world.local_router();
    let auth = format!("Bearer {}", World::demo_key());
    let body = json!({"email": "pat@harbor.test", "name": "Pat", "customer_ids": ["cust-1"]});
    let (status, _, _) = call(
        &router,
        "POST",
        "/api/orgs/demo/invitations",
        &[("authorization", &auth)],
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = world
        .link_in_mail("pat@harbor.test")
        .await
        .trim_start_matches("/invite/")
        .to_owned();
    let accept = json!({"token": token, "name": "Pat", "password": "payer password 123", "accept_terms": true});
    let (status, _, _) = call(
        &router,
        "POST",
        "/api/invitations/accept",
        &[],
        Some(accept),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut payer = signed_in(&world, "pat@harbor.test", "payer password 123").await;
    let page = payer.get("/admin/demo/payers").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);

    // acme's admin learns nothing about demo and cannot invite into it.
    let mut other = signed_in(&world, "admin@acme.test", ADMIN_PASSWORD).await;
    assert_eq!(
        other.get("/admin/demo/payers").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        other.get("/admin/nosuchorg/payers").await.status,
        StatusCode::NOT_FOUND
    );
    let invite = [
        ("name", "Eve"),
        ("email", "eve@evil.test"),
        ("customer_ids", "cust-1"),
    ];
    let page = other
        .post_form("/admin/demo/payers/invitations", &invite)
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(other.get("/admin/acme/payers").await.status, StatusCode::OK);

    // demo's admin, with a form from another site (no CSRF token): refused, nothing sent.
    let mut admin = signed_in(&world, "admin@demo.test", ADMIN_PASSWORD).await;
    let forged = "name=Eve&email=eve%40evil.test&customer_ids=cust-1".to_owned();
    let page = admin
        .post_raw("/admin/demo/payers/invitations", forged)
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let mail = world.outbox().await;
    assert!(
        mail.iter()
            .all(|m| m.message.to.as_str() != "eve@evil.test")
    );

    // The account page links each org an admin manages.
    let account = admin.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("href=\"/admin/demo/payers\""));
}

#[tokio::test]
async fn sign_in_goes_back_only_to_this_site() {
    let world = World::new().await;
    for next in ["//evil.test/x", "https://evil.test", "/\\evil.test", ""] {
        let mut browser = Browser::new(world.local_router());
        browser.get("/login").await;
        let page = browser
            .post_form(
                "/login",
                &[
                    ("email", "admin@demo.test"),
                    ("password", ADMIN_PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), "/account", "next={next}");
    }

    // A sign-in form posted without this browser's CSRF cookie (login CSRF) is refused.
    let mut browser = Browser::new(world.local_router());
    let body = "csrf=x&email=admin%40demo.test&password=a+long+enough+password".to_owned();
    let page = browser.post_raw("/login", body).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(browser.cookie("session").is_none());
}
