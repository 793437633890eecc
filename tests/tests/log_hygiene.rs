//! No password, token or key reaches a log line: the whole invitation and sign-in journey runs
//! with every log line captured at the most that anyone can ask for (RUST_LOG=trace, with the
//! SDK's wire logging capped as in production), and none of the secrets it used appears.

use http::StatusCode;
use paybridge_tests::{Browser, World, call, cookies, logs};
use serde_json::json;

const PASSWORD: &str = "a secret that never gets logged";

#[tokio::test]
async fn no_password_token_or_key_appears_in_any_log_line() {
    let (captured, _logging) = logs::capture();

    let world = World::new().await;
    let router = world.local_router();
    let key = World::demo_key();
    let auth = format!("Bearer {key}");
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
    let link = world.link_in_mail("pat@harbor.test").await;
    let invite_token = link.trim_start_matches("/invite/").to_owned();

    // Accept in the browser: the link, the form with the new password.
    let mut browser = Browser::new(router.clone());
    assert_eq!(browser.get(&link).await.status, StatusCode::SEE_OTHER);
    assert_eq!(browser.get("/invite").await.status, StatusCode::OK);
    let accepted = browser
        .post_form(
            "/invite",
            &[
                ("name", "Pat"),
                ("password", PASSWORD),
                ("accept_terms", "yes"),
            ],
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    let first_session = browser.cookie("session").unwrap().to_owned();

    // Sign in through the API and through the page; a wrong password too.
    let login = json!({"email": "pat@harbor.test", "password": PASSWORD});
    let (status, headers, _) = call(&router, "POST", "/api/login", &[], Some(login)).await;
    assert_eq!(status, StatusCode::OK);
    let api_session = cookies(&headers);
    let (status, _, _) = call(&router, "GET", "/api/me", &[("cookie", &api_session)], None).await;
    assert_eq!(status, StatusCode::OK);
    let wrong = json!({"email": "pat@harbor.test", "password": "wrong password, also secret"});
    let (status, _, _) = call(&router, "POST", "/api/login", &[], Some(wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut page = Browser::new(router.clone());
    page.get("/login").await;
    let signed_in = page
        .post_form(
            "/login",
            &[("email", "pat@harbor.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let page_session = page.cookie("session").unwrap().to_owned();

    let logs = captured.text();
    assert!(
        logs.contains("\"path\":\"/invite/{token}\""),
        "the link's request is logged, as its route"
    );
    assert!(logs.contains("\"path\":\"/api/login\""));
    let secrets = [
        ("the password", PASSWORD.to_owned()),
        (
            "the wrong password",
            "wrong password, also secret".to_owned(),
        ),
        ("the invitation token", invite_token),
        ("the API key", key),
        ("the accept session", first_session),
        (
            "the API session",
            api_session.trim_start_matches("session=").to_owned(),
        ),
        ("the page session", page_session),
    ];
    for (what, secret) in secrets {
        assert!(secret.len() >= 20, "{what} is a real secret");
        logs::assert_absent(&logs, what, &secret);
    }
}

#[tokio::test]
async fn no_two_factor_key_recovery_code_or_second_step_appears_in_any_log_line() {
    let (captured, _logging) = logs::capture();
    let world = World::new().await;
    let router = world.local_router();
    world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;
    let code_now = |secret: &str| {
        let key = domain::totp::base32_decode(secret).unwrap();
        let step = domain::totp::step_at(world.services.clock.now().unix_timestamp());
        domain::totp::code_at(&key, step)
    };

    // Set up on the account page: the key, then the recovery codes.
    let mut browser = Browser::new(router.clone());
    browser.get("/login").await;
    browser
        .post_form(
            "/login",
            &[("email", "pat@harbor.test"), ("password", PASSWORD)],
        )
        .await;
    let page = browser.post_form("/account/two-factor", &[]).await;
    let secret = page
        .body
        .split(r#"<code id="secret">"#)
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .unwrap()
        .replace(' ', "");
    let page = browser
        .post_form(
            "/account/two-factor/confirm",
            &[("code", &code_now(&secret))],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let recovery: Vec<String> = page
        .body
        .split("<li><code>")
        .skip(1)
        .map(|rest| rest.split("</code>").next().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);

    // Sign in with a recovery code (its second step in a cookie), then turn it off with another.
    let login = json!({"email": "pat@harbor.test", "password": PASSWORD});
    let (status, headers, _) = call(&router, "POST", "/api/login", &[], Some(login)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let step = cookies(&headers);
    let code = json!({"code": recovery[0]});
    let (status, headers, _) = call(
        &router,
        "POST",
        "/api/login/two-factor",
        &[("cookie", &step)],
        Some(code),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let session = cookies(&headers);
    let off = json!({"current_password": PASSWORD, "code": recovery[1]});
    let (status, _, _) = call(
        &router,
        "POST",
        "/api/me/two-factor/disable",
        &[("cookie", &session)],
        Some(off),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let logs = captured.text();
    assert!(logs.contains("\"path\":\"/api/login/two-factor\""));
    logs::assert_absent(&logs, "the two-factor key", &secret);
    logs::assert_absent(
        &logs,
        "the second-step token",
        step.trim_start_matches("signin_step="),
    );
    for code in &recovery {
        logs::assert_absent(&logs, "a recovery code", code);
        logs::assert_absent(&logs, "a recovery code", &code.replace('-', ""));
    }
}
