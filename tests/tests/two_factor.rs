//! Two-factor sign-in (TOTP) as a person meets it, over HTTP and DynamoDB Local: setting it up
//! (a wrong first code leaves it off), signing in with a code computed here from the key the
//! page showed, a code taken once, recovery codes, the limits on wrong codes, the second step's
//! expiry, turning it off, the emails, and an org that requires it of its members.

use domain::totp;
use http::StatusCode;
use paybridge_tests::{Browser, World, call, call_from, cookies};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

const PASSWORD: &str = "correct horse battery";
const PAT: &str = "pat@harbor.test";

fn now(world: &World) -> OffsetDateTime {
    world.services.clock.now()
}

/// The code an authenticator app with this key shows at `at`.
fn code_at(secret: &str, at: OffsetDateTime) -> String {
    let key = totp::base32_decode(secret).expect("the key is base32");
    totp::code_at(&key, totp::step_at(at.unix_timestamp()))
}

/// Moves the world's clock on by `seconds`.
fn wait(world: &World, seconds: i64) {
    world.set_now(now(world) + Duration::seconds(seconds));
}

/// Turns two-factor sign-in on for the signed-in person through the JSON API: the key and the
/// recovery codes. The clock then moves to the next time step, so that the confirming code is
/// not the one a test signs in with.
async fn enrol(world: &World, cookie: &str) -> (String, Vec<String>) {
    let router = world.local_router();
    let (status, _, started) = call(
        &router,
        "POST",
        "/api/me/two-factor",
        &[("cookie", cookie)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let secret = started["secret"].as_str().unwrap().to_owned();
    let code = code_at(&secret, now(world));
    let (status, _, confirmed) = call(
        &router,
        "POST",
        "/api/me/two-factor/confirm",
        &[("cookie", cookie)],
        Some(json!({ "code": code })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let codes = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    wait(world, 30);
    (secret, codes)
}

/// `POST /api/login`: status, the problem (or who), and the cookies it set.
async fn password_step(world: &World, email: &str, password: &str) -> (StatusCode, Value, String) {
    let body = json!({"email": email, "password": password});
    let (status, headers, answer) =
        call(&world.local_router(), "POST", "/api/login", &[], Some(body)).await;
    (status, answer, cookies(&headers))
}

/// `POST /api/login/two-factor` with the second step's cookie: status, answer, cookies set.
async fn code_step(world: &World, step: &str, code: &str) -> (StatusCode, Value, String) {
    let (status, headers, answer) = call(
        &world.local_router(),
        "POST",
        "/api/login/two-factor",
        &[("cookie", step)],
        Some(json!({ "code": code })),
    )
    .await;
    (status, answer, cookies(&headers))
}

/// Signs in through both steps of the JSON API with `code`: the session cookie.
async fn sign_in_with(world: &World, code: &str) -> String {
    let (status, problem, step) = password_step(world, PAT, PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(problem["code"], "two_factor_code_needed");
    let (status, me, session) = code_step(world, &step, code).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], PAT);
    session
}

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

async fn status_of(world: &World, cookie: &str) -> Value {
    let (status, _, view) = call(
        &world.local_router(),
        "GET",
        "/api/me/two-factor",
        &[("cookie", cookie)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    view
}

/// The subjects of the emails sent to `to`, newest first.
async fn subjects_to(world: &World, to: &str) -> Vec<String> {
    world
        .outbox()
        .await
        .into_iter()
        .filter(|m| m.message.to.as_str() == to)
        .map(|m| m.message.subject)
        .collect()
}

#[tokio::test]
async fn setting_it_up_takes_a_code_of_the_new_key_and_gives_recovery_codes_once() {
    let world = World::new().await;
    let cookie = world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    let router = world.local_router();
    assert_eq!(
        status_of(&world, &cookie).await,
        json!({"enabled": false, "enabled_at": null, "recovery_codes_left": 0})
    );

    let (status, _, started) = call(
        &router,
        "POST",
        "/api/me/two-factor",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let secret = started["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "160 bits of base32");
    assert_eq!(totp::base32_decode(&secret).unwrap().len(), 20);
    assert_eq!(
        started["otpauth_uri"],
        format!("otpauth://totp/Paybridge:pat%40harbor.test?secret={secret}&issuer=Paybridge")
    );

    // A wrong code leaves it off; so does no code at all.
    let right = code_at(&secret, now(&world));
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let (status, _, problem) = call(
        &router,
        "POST",
        "/api/me/two-factor/confirm",
        &[("cookie", &cookie)],
        Some(json!({ "code": wrong })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["code"], "wrong_code");
    assert_eq!(status_of(&world, &cookie).await["enabled"], false);
    let (status, _, me) = password_step(&world, PAT, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "still one step: {me}");

    // The right code turns it on: ten different recovery codes, once.
    let (status, _, confirmed) = call(
        &router,
        "POST",
        "/api/me/two-factor/confirm",
        &[("cookie", &cookie)],
        Some(json!({ "code": right })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let codes: Vec<&str> = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    assert!(
        codes.iter().all(|c| c.len() == 11 && &c[5..6] == "-"),
        "{codes:?}"
    );
    let view = status_of(&world, &cookie).await;
    assert_eq!(view["enabled"], true);
    assert_eq!(view["enabled_at"], "2026-11-26T12:00:00Z");
    assert_eq!(view["recovery_codes_left"], 10);
    assert_eq!(
        subjects_to(&world, PAT).await[0],
        "Two-factor sign-in is on for your Paybridge account"
    );

    // Once on, neither a second confirm nor a new key: off first.
    for path in ["/api/me/two-factor", "/api/me/two-factor/confirm"] {
        let body = (path.ends_with("confirm")).then(|| json!({ "code": right }));
        let (status, _, problem) = call(&router, "POST", path, &[("cookie", &cookie)], body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {problem}");
        assert_eq!(problem["code"], "two_factor_on", "{path}");
    }

    // The table keeps the key sealed and the recovery codes hashed: neither is in it as given.
    let table = world.table_text().await;
    assert!(!table.contains(&secret), "the key in base32");
    for code in &codes {
        assert!(!table.contains(code) && !table.contains(&code.replace('-', "")));
    }
}

#[tokio::test]
async fn the_account_page_sets_it_up_with_forms_and_a_qr_code() {
    let world = World::new().await;
    world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    let mut browser = Browser::new(world.local_router());
    browser.get("/login").await;
    browser
        .post_form("/login", &[("email", PAT), ("password", PASSWORD)])
        .await;
    let page = browser.get("/account").await;
    assert!(
        page.body.contains("Set up two-factor sign-in"),
        "{}",
        page.body
    );

    // A forged form (no CSRF token) starts nothing.
    let forged = browser.post_raw("/account/two-factor", String::new()).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let page = browser.post_form("/account/two-factor", &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let grouped = page
        .body
        .split(r#"<code id="secret">"#)
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .expect("the key on the page")
        .to_owned();
    let secret = grouped.replace(' ', "");
    assert_eq!(secret.len(), 32);
    assert!(page.body.contains("<svg "), "a QR code");
    let link = page.body.split(r#"id="otpauth" href=""#).nth(1).unwrap();
    assert!(
        link.starts_with(&format!(
            "otpauth://totp/Paybridge:pat%40harbor.test?secret={secret}&#38;issuer=Paybridge"
        )),
        "{}",
        &link[..120]
    );
    assert!(page.body.contains(r#"<label for="code">"#));
    assert!(page.body.contains(r#"autocomplete="one-time-code""#));

    // A wrong code: still off, and the key is not shown again.
    let page = browser
        .post_form("/account/two-factor/confirm", &[("code", "000000")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.body.contains("two-factor sign-in is still off"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(&grouped), "the key is shown once");

    // The code the app shows: on, and the recovery codes on the page.
    let code = code_at(&secret, now(&world));
    let page = browser
        .post_form("/account/two-factor/confirm", &[("code", &code)])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Two-factor sign-in is on"));
    let listed = page
        .body
        .split(r#"<ol id="recovery-codes""#)
        .nth(1)
        .unwrap();
    assert_eq!(listed.matches("<li><code>").count(), 10);
    let page = browser.get("/account").await;
    assert!(page.body.contains("On since 26 Nov 2026"), "{}", page.body);
    assert!(page.body.contains("10 unused recovery codes"));
    assert!(page.body.contains("Turn off two-factor sign-in"));
}

#[tokio::test]
async fn signing_in_asks_for_the_code_after_the_password() {
    let world = World::new().await;
    let cookie = world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    world
        .payer("demo", "sam@harbor.test", &["cust-1"], PASSWORD)
        .await;
    let (secret, _) = enrol(&world, &cookie).await;

    // Before the password is right, nothing tells a person with two-factor from one without,
    // nor from an unknown email.
    let mut answers = Vec::new();
    for email in [PAT, "sam@harbor.test", "nobody@harbor.test"] {
        let (status, problem, set) = password_step(&world, email, "not the password at all").await;
        assert!(set.is_empty(), "{email}: no cookie");
        answers.push((status, problem["code"].clone(), problem["detail"].clone()));
        let mut browser = Browser::new(world.local_router());
        browser.get("/login").await;
        let page = browser
            .post_form(
                "/login",
                &[("email", email), ("password", "not the password at all")],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("The email or password is not right."));
        assert!(!page.body.contains("code"), "{email}: no word of a code");
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");

    // The right password: no session yet, the code page.
    let mut browser = Browser::new(world.local_router());
    browser.get("/login?next=/portal/orgs/demo").await;
    let page = browser
        .post_form(
            "/login",
            &[
                ("email", PAT),
                ("password", PASSWORD),
                ("next", "/portal/orgs/demo"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location(),
        "/login/two-factor?next=%2Fportal%2Forgs%2Fdemo"
    );
    assert!(
        browser.cookie("session").is_none(),
        "no session before the code"
    );
    assert!(browser.cookie("signin_step").is_some());
    assert_eq!(browser.get("/account").await.status, StatusCode::SEE_OTHER);
    let page = browser.get(page.location()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(r#"<label for="code">Code from your authenticator app</label>"#)
    );

    let page = browser
        .post_form(
            "/login/two-factor",
            &[("code", "12345"), ("next", "/portal/orgs/demo")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(
        page.body.contains("That code is not right."),
        "{}",
        page.body
    );
    assert!(browser.cookie("session").is_none());

    let code = code_at(&secret, now(&world));
    let page = browser
        .post_form(
            "/login/two-factor",
            &[("code", &code), ("next", "/portal/orgs/demo")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/portal/orgs/demo");
    assert!(browser.cookie("session").is_some());
    assert!(
        browser.cookie("signin_step").is_none(),
        "the step's cookie is cleared"
    );
    assert_eq!(
        browser.get("/portal/orgs/demo").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_code_is_taken_once_and_none_older_after_it() {
    let world = World::new().await;
    let cookie = world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    let (secret, _) = enrol(&world, &cookie).await;

    let code = code_at(&secret, now(&world));
    let session = sign_in_with(&world, &code).await;
    assert_eq!(me(&world, &session).await, StatusCode::OK);

    // The same code again, within the 90 seconds it would be accepted in, is refused.
    let (_, _, step) = password_step(&world, PAT, PASSWORD).await;
    let (status, problem, set) = code_step(&world, &step, &code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(problem["code"], "used_code");
    assert!(set.is_empty(), "no session");
    // The step is still open for the next code.
    wait(&world, 30);
    let (status, me_view, _) = code_step(&world, &step, &code_at(&secret, now(&world))).await;
    assert_eq!(status, StatusCode::OK, "{me_view}");
    // Once a later code was used, the previous step's code is spent too.
    let (_, _, step) = password_step(&world, PAT, PASSWORD).await;
    let previous = code_at(&secret, now(&world) - Duration::seconds(30));
    let (status, problem, _) = code_step(&world, &step, &previous).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["code"], "used_code");

    // Clock skew: a code of the step just before or after is accepted, two steps away not.
    wait(&world, 30);
    let (status, _, _) = code_step(
        &world,
        &step,
        &code_at(&secret, now(&world) + Duration::seconds(60)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "two steps ahead");
    let (status, answer, _) = code_step(
        &world,
        &step,
        &code_at(&secret, now(&world) + Duration::seconds(30)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "one step ahead: {answer}");
}

#[tokio::test]
async fn two_sign_ins_with_one_code_at_once_get_one_session() {
    let world = World::new().await;
    let cookie = world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    let (secret, _) = enrol(&world, &cookie).await;
    let (_, _, first) = password_step(&world, PAT, PASSWORD).await;
    let (_, _, second) = password_step(&world, PAT, PASSWORD).await;
    let code = code_at(&secret, now(&world));
    let (a, b) = tokio::join!(
        code_step(&world, &first, &code),
        code_step(&world, &second, &code)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::UNAUTHORIZED],
        "{} / {}",
        a.1,
        b.1
    );
}

#[tokio::test]
async fn a_recovery_code_signs_in_once() {
    let world = World::new().await;
    let cookie = world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    let (_, codes) = enrol(&world, &cookie).await;
    // Typed loosely: capitals and a space for the dash.
    let typed = codes[3].to_uppercase().replace('-', " ");
    let session = sign_in_with(&world, &typed).await;
    assert_eq!(me(&world, &session).await, StatusCode::OK);
    assert_eq!(status_of(&world, &session).await["recovery_codes_left"], 9);

    let (_, _, step) = password_step(&world, PAT, PASSWORD).await;
    let (status, problem, _) = code_step(&world, &step, &codes[3]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["code"], "wrong_code", "used: no longer one of them");
    let (status, _, _) = code_step(&world, &step, &codes[4]).await;
    assert_eq!(status, StatusCode::OK, "another one works");

    // Each use is emailed, with what is left.
    let told: Vec<String> = world
        .outbox()
        .await
        .into_iter()
        .filter(|m| m.message.subject.starts_with("A recovery code was used"))
        .map(|m| m.message.text)
        .collect();
    assert_eq!(told.len(), 2, "{told:?}");
    for left in [
        "9 unused recovery codes are left",
        "8 unused recovery codes are left",
    ] {
        assert!(told.iter().any(|t| t.contains(left)), "{left}: {told:?}");
    }
}

#[tokio::test]
async fn turning_it_on_ends_the_sessions_begun_with_the_password_alone() {
    let world = World::new().await;
    let here = world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    let elsewhere = world.sign_in(PAT, PASSWORD).await;
    assert_eq!(me(&world, &elsewhere).await, StatusCode::OK);
    enrol(&world, &here).await;
    assert_eq!(me(&world, &here).await, StatusCode::OK, "this one stays");
    assert_eq!(me(&world, &elsewhere).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_codes_count_against_the_sign_in_limits() {
    let world = World::new().await;
    let cookie = world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    let (secret, _) = enrol(&world, &cookie).await;
    let (_, _, step) = password_step(&world, PAT, PASSWORD).await;
    let right = code_at(&secret, now(&world));
    let wrong = format!(
        "{:06}",
        (right.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let mut statuses = Vec::new();
    for _ in 0..app::sessions::PER_EMAIL_AND_CLIENT {
        statuses.push(code_step(&world, &step, &wrong).await.0);
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    // Over the limit: refused before the code is looked at, the right one too...
    let (status, problem, _) = code_step(&world, &step, &right).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_eq!(problem["code"], "too_many_attempts");
    // ...and the password step from here, as after wrong passwords.
    let (status, _, _) = password_step(&world, PAT, PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn wrong_codes_from_many_addresses_are_limited_per_account() {
    let world = World::new().await;
    let cookie = world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    let (secret, _) = enrol(&world, &cookie).await;
    let right = code_at(&secret, now(&world));
    let wrong = format!(
        "{:06}",
        (right.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let router = world.local_router();
    // Someone with the password tries codes from a new address each time.
    let from = |i: u32| Some(std::net::SocketAddr::from(([198, 51, 100, i as u8], 4000)));
    let mut step_of = Vec::new();
    for i in 0..=app::two_factor::PER_ACCOUNT {
        let body = json!({"email": PAT, "password": PASSWORD});
        let (status, headers, _) =
            call_from(&router, from(i), "POST", "/api/login", &[], Some(body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        step_of.push(cookies(&headers));
    }
    let mut statuses = Vec::new();
    for i in 0..=app::two_factor::PER_ACCOUNT {
        let (status, _, _) = call_from(
            &router,
            from(i),
            "POST",
            "/api/login/two-factor",
            &[("cookie", &step_of[i as usize])],
            Some(json!({ "code": wrong })),
        )
        .await;
        statuses.push(status);
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(limited, 1, "the account's limit: {statuses:?}");
    // The person themselves, from their own address, is held back too until the hour passes.
    let (status, _, _) = call_from(
        &router,
        from(200),
        "POST",
        "/api/login/two-factor",
        &[("cookie", &step_of[0])],
        Some(json!({ "code": right })),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_second_step_expires_and_is_used_once() {
    let world = World::new().await;
    let cookie = world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    let (secret, _) = enrol(&world, &cookie).await;

    let (_, _, step) = password_step(&world, PAT, PASSWORD).await;
    let (status, _, session) = code_step(&world, &step, &code_at(&secret, now(&world))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!session.is_empty());
    // Used: the same step again, with the next code, is over.
    wait(&world, 30);
    let (status, problem, _) = code_step(&world, &step, &code_at(&secret, now(&world))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(problem["code"], "sign_in_expired");

    // Five minutes after the password, too late.
    let (_, _, step) = password_step(&world, PAT, PASSWORD).await;
    wait(&world, 5 * 60 + 1);
    let (status, problem, _) = code_step(&world, &step, &code_at(&secret, now(&world))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["code"], "sign_in_expired");

    // No step at all (or a made-up one).
    let (status, problem, _) = code_step(&world, "signin_step=made-up", "123456").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["code"], "sign_in_expired");

    // The page says so, and asks for the password again.
    let mut browser = Browser::new(world.local_router());
    browser.get("/login").await;
    browser
        .post_form("/login", &[("email", PAT), ("password", PASSWORD)])
        .await;
    wait(&world, 5 * 60 + 1);
    let page = browser
        .post_form(
            "/login/two-factor",
            &[("code", &code_at(&secret, now(&world)))],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(
        page.body.contains("Your sign-in took too long"),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"<label for="password">"#));
    assert!(browser.cookie("session").is_none());
}

#[tokio::test]
async fn turning_it_off_needs_the_password_and_a_code() {
    let world = World::new().await;
    let cookie = world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    let (secret, codes) = enrol(&world, &cookie).await;
    let router = world.local_router();
    let disable = |password: &str, code: &str| {
        let body = json!({"current_password": password, "code": code});
        let router = router.clone();
        let cookie = cookie.clone();
        async move {
            call(
                &router,
                "POST",
                "/api/me/two-factor/disable",
                &[("cookie", &cookie)],
                Some(body),
            )
            .await
        }
    };
    let code = code_at(&secret, now(&world));
    let (status, _, problem) = disable("not the password at all", &code).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["code"], "wrong_password");
    let (status, _, problem) = disable(PASSWORD, "000000").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["code"], "wrong_code");
    assert_eq!(status_of(&world, &cookie).await["enabled"], true);

    let (status, _, answer) = disable(PASSWORD, &code).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    assert_eq!(status_of(&world, &cookie).await["enabled"], false);
    assert_eq!(
        subjects_to(&world, PAT).await[0],
        "Two-factor sign-in was turned off for your Paybridge account"
    );
    let (status, _, problem) = disable(PASSWORD, &codes[0]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "two_factor_off");
    // Signing in is one step again.
    let (status, me_view, _) = password_step(&world, PAT, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{me_view}");

    // On again, and off through the account page with a recovery code.
    let (_, codes) = enrol(&world, &cookie).await;
    let mut browser = Browser::new(world.local_router());
    browser.get("/login").await;
    browser
        .post_form("/login", &[("email", PAT), ("password", PASSWORD)])
        .await;
    browser
        .post_form("/login/two-factor", &[("code", &codes[0])])
        .await;
    let page = browser
        .post_form(
            "/account/two-factor/disable",
            &[
                ("current_password", "not the password at all"),
                ("code", &codes[1]),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body
            .contains("The current password is not right. Two-factor sign-in is still on.")
    );
    let page = browser
        .post_form(
            "/account/two-factor/disable",
            &[("current_password", PASSWORD), ("code", &codes[1])],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = browser.get(page.location()).await;
    assert!(page.body.contains("Two-factor sign-in is off."));
    assert!(page.body.contains("Set up two-factor sign-in"));
    let sent = subjects_to(&world, PAT).await;
    assert_eq!(
        sent.iter().filter(|s| s.contains("Two-factor")).count(),
        4,
        "on, off, on, off: {sent:?}"
    );
}

/// Every operation of the payer API (`/api/me/orgs/{org}/...`) in the OpenAPI document, with
/// made-up values for its other parameters.
fn payer_api_operations() -> Vec<(String, String)> {
    let doc = serde_json::to_value(web::openapi()).unwrap();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/me/orgs/{org}") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{org}", "demo")
                .replace("{invoice}", "INV-1")
                .replace("{customer}", "cust-1")
                .replace("{payment}", "01JAAAAAAAAAAAAAAAAAAAAAAA")
                .replace("{id}", "01JAAAAAAAAAAAAAAAAAAAAAAA");
            operations.push((method.to_uppercase(), concrete));
        }
    }
    operations
}

#[tokio::test]
async fn an_org_that_requires_it_holds_back_its_members_without_it() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-1", "10.00").await;
    world.add_invoice("acme", "INV-1", "10.00").await;
    let cookie = world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    let sam = world
        .payer("acme", "sam@harbor.test", &["cust-1"], PASSWORD)
        .await;
    // Pat pays for acme's cust-1 too.
    let s = &world.services;
    let pat = s
        .users
        .find_user_by_email(&domain::Email::parse(PAT).unwrap())
        .await
        .unwrap()
        .unwrap();
    app::orgs::add_member(
        s.members.as_ref(),
        s.clock.as_ref(),
        &pat.id,
        &domain::OrgSlug::parse("acme").unwrap(),
        domain::Role::Payer,
        vec![domain::CustomerId::parse("cust-1").unwrap()],
    )
    .await
    .unwrap();
    let router = world.local_router();
    let get = |path: &str, cookie: &str| {
        let (router, path, cookie) = (router.clone(), path.to_owned(), cookie.to_owned());
        async move { call(&router, "GET", &path, &[("cookie", &cookie)], None).await }
    };

    // demo's admin turns the requirement on, where the other settings are set.
    let auth = format!("Bearer {}", World::demo_key());
    let (status, _, settings) = call(
        &router,
        "PATCH",
        "/api/orgs/demo/settings",
        &[("authorization", &auth)],
        Some(json!({"require_two_factor": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["require_two_factor"], true);
    let (_, _, acme) = call(
        &router,
        "GET",
        "/api/orgs/acme/settings",
        &[("authorization", &format!("Bearer {}", World::acme_key()))],
        None,
    )
    .await;
    assert_eq!(acme["require_two_factor"], false, "off by default");

    // demo's pages send Pat to set it up; its payer API answers 403 with a stable code.
    let mut browser = Browser::new(world.local_router());
    browser.get("/login").await;
    browser
        .post_form("/login", &[("email", PAT), ("password", PASSWORD)])
        .await;
    for page in [
        "/portal/orgs/demo",
        "/portal/orgs/demo/transactions",
        "/portal/orgs/demo/methods",
    ] {
        let answer = browser.get(page).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{page}");
        assert_eq!(
            answer.location(),
            "/account?required_by=demo#two-factor",
            "{page}"
        );
    }
    let page = browser.get("/account?required_by=demo").await;
    assert!(
        page.body
            .contains("demo IT asks everyone who signs in to its pages to use two-factor sign-in."),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"name="required_by" value="demo""#));
    let operations = payer_api_operations();
    assert!(operations.len() >= 15, "{operations:?}");
    for (method, path) in &operations {
        let body = (method != "GET" && method != "DELETE").then(|| json!({}));
        let (status, _, problem) = call(&router, method, path, &[("cookie", &cookie)], body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {problem}");
        assert_eq!(problem["code"], "two_factor_required", "{method} {path}");
    }
    // The same person's other org is unaffected, and so is who-am-I.
    let (status, _, invoices) = get("/api/me/orgs/acme/invoices", &cookie).await;
    assert_eq!(status, StatusCode::OK, "{invoices}");
    assert_eq!(
        browser.get("/portal/orgs/acme").await.status,
        StatusCode::OK
    );
    assert_eq!(get("/api/me", &cookie).await.0, StatusCode::OK);
    // Someone who is no member of demo learns nothing of its requirement.
    let (status, _, problem) = get("/api/me/orgs/demo/invoices", &sam).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    // demo's admin, signed in without it, is held back too (its API key is not).
    let admin = world
        .sign_in("admin@demo.test", "a long enough password")
        .await;
    let (status, _, problem) = get("/api/orgs/demo/settings", &admin).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["code"], "two_factor_required");
    let (status, headers, _) = get("/admin/demo/payers", &admin).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[http::header::LOCATION],
        "/account?required_by=demo#two-factor"
    );
    let (status, _, _) = call(
        &router,
        "GET",
        "/api/orgs/demo/settings",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Set up from the account page the org sent Pat to: then demo opens.
    let page = browser
        .post_form("/account/two-factor", &[("required_by", "demo")])
        .await;
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
            &[
                ("code", &code_at(&secret, now(&world))),
                ("required_by", "demo"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(r#"href="/portal/orgs/demo""#),
        "back to demo"
    );
    assert_eq!(
        browser.get("/portal/orgs/demo").await.status,
        StatusCode::OK
    );
    // The API session begun with the password alone ended when two-factor came on; one
    // begun with a code opens demo's API.
    let (status, _, _) = get("/api/me/orgs/demo/invoices", &cookie).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    wait(&world, 30);
    let session = sign_in_with(&world, &code_at(&secret, now(&world))).await;
    let (status, _, invoices) = get("/api/me/orgs/demo/invoices", &session).await;
    assert_eq!(status, StatusCode::OK, "{invoices}");
    assert_eq!(invoices[0]["invoice_number"], "INV-1");
}

#[tokio::test]
async fn the_requirement_costs_no_read_on_pages_and_one_on_the_api_without_two_factor() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-1", "10.00").await;
    let cookie = world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    let router = world.local_router();
    let cost = |path: &'static str, cookie: String| {
        let (router, world) = (router.clone(), &world);
        async move {
            let before = world.store.usage();
            let (status, _, _) = call(&router, "GET", path, &[("cookie", &cookie)], None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            world.store.usage().since(before)
        }
    };
    // Once to warm up what a function keeps between requests, then measured.
    cost("/api/me/orgs/demo/invoices", cookie.clone()).await;
    cost("/portal/orgs/demo", cookie.clone()).await;
    let api_without = cost("/api/me/orgs/demo/invoices", cookie.clone()).await;
    let page_without = cost("/portal/orgs/demo", cookie.clone()).await;
    let (secret, _) = enrol(&world, &cookie).await;
    let with = sign_in_with(&world, &code_at(&secret, now(&world))).await;
    let api_with = cost("/api/me/orgs/demo/invoices", with.clone()).await;
    let page_with = cost("/portal/orgs/demo", with).await;
    eprintln!(
        "payer API: {} calls without two-factor, {} with; dashboard: {} and {}",
        api_without.calls, api_with.calls, page_without.calls, page_with.calls
    );
    assert_eq!(
        api_without.calls,
        api_with.calls + 1,
        "the org, read once more"
    );
    assert_eq!(
        page_without.calls, page_with.calls,
        "pages read nothing more"
    );
    assert_eq!(api_without.write_units, 0.0);
}

#[tokio::test]
async fn accepting_another_orgs_invitation_with_the_password_still_asks_for_the_code() {
    let world = World::new().await;
    let cookie = world.payer("demo", PAT, &["cust-1"], PASSWORD).await;
    let (secret, _) = enrol(&world, &cookie).await;
    let router = world.local_router();
    let auth = format!("Bearer {}", World::acme_key());
    let body = json!({"email": PAT, "name": "Pat Lee", "customer_ids": ["cust-1"]});
    let (status, _, answer) = call(
        &router,
        "POST",
        "/api/orgs/acme/invitations",
        &[("authorization", &auth)],
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let link = world.link_in_mail(PAT).await;

    // The page: the password accepts, and the code page follows; no session before the code.
    let mut browser = Browser::new(world.local_router());
    assert_eq!(browser.get(&link).await.status, StatusCode::SEE_OTHER);
    browser.get("/invite").await;
    let page = browser
        .post_form("/invite", &[("name", "Pat Lee"), ("password", PASSWORD)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/login/two-factor?next=%2Fportal");
    assert!(browser.cookie("session").is_none());
    let page = browser
        .post_form(
            "/login/two-factor",
            &[
                ("code", &code_at(&secret, now(&world))),
                ("next", "/portal"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(browser.cookie("session").is_some());
    assert_eq!(
        browser.get("/portal/orgs/acme").await.status,
        StatusCode::OK
    );
}
