//! Inviting payers, accepting once, signing in: through the routers of the local stack, over
//! DynamoDB Local, with the mail outbox.

use std::sync::Arc;

use app::system::FixedClock;
use axum::Router;
use http::{HeaderMap, StatusCode, header};
use paybridge_tests::{NOW, World, call, call_text, cookies};
use serde_json::{Value, json};

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

async fn invite(
    router: &Router,
    org: &str,
    email: &str,
    customers: &[&str],
) -> (StatusCode, Value) {
    let auth = bearer(&World::key(org));
    let body = json!({"email": email, "name": "Pat Lee", "customer_ids": customers});
    let path = format!("/api/orgs/{org}/invitations");
    let (status, _, json) = call(
        router,
        "POST",
        &path,
        &[("authorization", &auth)],
        Some(body),
    )
    .await;
    (status, json)
}

fn token_of(path: &str) -> String {
    path.trim_start_matches("/invite/").to_owned()
}

async fn raw(
    router: &Router,
    method: &str,
    path: &str,
    cookie: &str,
    form: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let headers: Vec<(&str, &str)> = [("cookie", cookie)]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let body = form.map(|f| ("application/x-www-form-urlencoded", f.to_owned()));
    call_text(router, method, path, &headers, body).await
}

async fn me(router: &Router, cookie: &str) -> (StatusCode, Value) {
    let (status, _, json) = call(router, "GET", "/api/me", &[("cookie", cookie)], None).await;
    (status, json)
}

async fn accept_api(
    router: &Router,
    token: &str,
    password: &str,
) -> (StatusCode, HeaderMap, Value) {
    let body =
        json!({"token": token, "name": "Pat Lee", "password": password, "accept_terms": true});
    call(router, "POST", "/api/invitations/accept", &[], Some(body)).await
}

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn invite_email_link_accept_page_and_sign_in_make_a_payer() {
    let world = World::new().await;
    let router = world.local_router();
    let (status, invitation) = invite(&router, "demo", "Pat@Harbor.test", &["cust-1"]).await;
    assert_eq!(status, StatusCode::CREATED, "{invitation}");
    assert_eq!(invitation["status"], "pending");
    assert_eq!(invitation["email"], "pat@harbor.test");
    assert_eq!(invitation["emailed"], true);

    let mail = world.outbox().await;
    assert_eq!(
        mail[0].message.subject,
        "demo IT invited you to pay your invoices online"
    );
    assert!(
        mail[0]
            .message
            .text
            .starts_with("demo IT invited you to pay demo IT's invoices online.")
    );
    assert!(
        mail[0].message.text.contains("2026-12-03"),
        "says when it expires"
    );
    let link = world.link_in_mail("pat@harbor.test").await;

    // The first request trades the token in the URL for a cookie scoped to /invite.
    let (status, headers, _) = raw(&router, "GET", &link, "", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/invite");
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("Path=/invite") && set.contains("HttpOnly") && set.contains("SameSite=Lax")
    );
    let invite_cookie = cookies(&headers);

    let (status, headers, page) = raw(&router, "GET", "/invite", &invite_cookie, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("pat@harbor.test") && page.contains("demo IT") && page.contains("cust-1")
    );
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let csrf_cookie = cookies(&headers);
    let csrf = csrf_cookie.trim_start_matches("csrf=").to_owned();
    let both = format!("{invite_cookie}; {csrf_cookie}");

    // A post without the CSRF token (another site's form) changes nothing.
    let forged = format!(
        "csrf=nope&name=Pat&password={}&accept_terms=yes",
        PASSWORD.replace(' ', "+")
    );
    let (status, _, _) = raw(&router, "POST", "/invite", &both, Some(&forged)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let form = format!(
        "csrf={csrf}&name=Pat+Lee&password={}&accept_terms=yes",
        PASSWORD.replace(' ', "+")
    );
    let (status, headers, page) = raw(&router, "POST", "/invite", &both, Some(&form)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("You are in"));
    let session = cookies(&headers);
    assert!(session.starts_with("session="), "{session}");
    let (status, who) = me(&router, &session).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["email"], "pat@harbor.test");
    assert_eq!(
        who["orgs"],
        json!([{"org": "demo", "name": "demo IT", "role": "payer", "customer_ids": ["cust-1"]}])
    );

    // Sign out ends the session on the server too; sign in starts a new one.
    let (status, _, _) = call(
        &router,
        "POST",
        "/api/logout",
        &[("cookie", &session)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(&router, &session).await.0, StatusCode::UNAUTHORIZED);
    let (status, headers, who) = call(
        &router,
        "POST",
        "/api/login",
        &[],
        Some(json!({"email": "PAT@harbor.test", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{who}");
    let fresh = cookies(&headers);
    assert_ne!(fresh, session, "a new token at every sign-in");
    assert_eq!(me(&router, &fresh).await.1["orgs"][0]["role"], "payer");

    // The link is single use.
    let (status, _, page) = raw(&router, "GET", &link, "", None).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("accepted already"));
}

#[tokio::test]
async fn one_person_in_two_orgs_signs_in_to_accept_the_second_and_stays_one_user() {
    let world = World::new().await;
    let router = world.local_router();
    invite(&router, "demo", "pat@harbor.test", &["cust-1"]).await;
    let first = token_of(&world.link_in_mail("pat@harbor.test").await);
    let (status, _, _) = accept_api(&router, &first, PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, _) = invite(&router, "acme", "pat@harbor.test", &["acme-7"]).await;
    assert_eq!(status, StatusCode::CREATED);
    let second = token_of(&world.link_in_mail("pat@harbor.test").await);
    assert_ne!(first, second);
    let (status, _, problem) = accept_api(&router, &second, "not the password at all").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    let (status, headers, who) = accept_api(&router, &second, PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{who}");
    let orgs: Vec<&str> = who["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["org"].as_str().unwrap())
        .collect();
    assert_eq!(orgs, ["acme", "demo"]);
    let (_, again) = me(&router, &cookies(&headers)).await;
    assert_eq!(again["orgs"].as_array().unwrap().len(), 2);

    // One user: both memberships name the user that the email marker names.
    let email = domain::Email::parse("pat@harbor.test").unwrap();
    let user = world
        .services
        .users
        .find_user_by_email(&email)
        .await
        .unwrap()
        .unwrap();
    for org in ["demo", "acme"] {
        let org = domain::OrgSlug::parse(org).unwrap();
        assert!(
            world
                .services
                .members
                .membership(&org, &user.id)
                .await
                .unwrap()
                .is_some()
        );
    }
    let users = world
        .store
        .client()
        .scan()
        .table_name(world.store.table())
        .filter_expression("begins_with(pk, :u) AND sk = :s")
        .expression_attribute_values(
            ":u",
            aws_sdk_dynamodb::types::AttributeValue::S("USER#".into()),
        )
        .expression_attribute_values(
            ":s",
            aws_sdk_dynamodb::types::AttributeValue::S("USER".into()),
        )
        .send()
        .await
        .unwrap();
    let pats = users
        .items()
        .iter()
        .filter(|i| i["email"].as_s().unwrap() == "pat@harbor.test")
        .count();
    assert_eq!(pats, 1);

    // Inviting a member says so.
    let (status, problem) = invite(&router, "demo", "pat@harbor.test", &["cust-1"]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "already_member");
}

#[tokio::test]
async fn used_reissued_revoked_and_expired_links_each_say_what_happened() {
    let world = World::new().await;
    let router = world.local_router();
    let auth = bearer(&World::demo_key());

    // Reissued: inviting the same email again replaces the link; resend does too.
    invite(&router, "demo", "a@x.test", &["cust-1"]).await;
    let old = world.link_in_mail("a@x.test").await;
    let (status, again) = invite(&router, "demo", "a@x.test", &["cust-1"]).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["reissued"], true);
    let (_, _, list) = call(
        &router,
        "GET",
        "/api/orgs/demo/invitations",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "one invitation per email, not two"
    );
    let id = again["id"].as_str().unwrap().to_owned();
    let (status, _, _) = call(
        &router,
        "POST",
        &format!("/api/orgs/demo/invitations/{id}/resend"),
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let newest = world.link_in_mail("a@x.test").await;
    let (status, _, page) = raw(&router, "GET", &old, "", None).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("A newer invitation was sent"));
    let (status, _, _) = raw(&router, "GET", &newest, "", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Revoked.
    let (status, _, _) = call(
        &router,
        "DELETE",
        &format!("/api/orgs/demo/invitations/{id}"),
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, page) = raw(&router, "GET", &newest, "", None).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("withdrawn"));
    let (_, _, list) = call(
        &router,
        "GET",
        "/api/orgs/demo/invitations",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(list[0]["status"], "revoked");

    // Expired: eight days later (the default lifetime is seven).
    invite(&router, "demo", "b@x.test", &["cust-1"]).await;
    let link = world.link_in_mail("b@x.test").await;
    let mut later = (*world.services).clone();
    later.clock = Arc::new(FixedClock(NOW + time::Duration::days(8)));
    let later_router = web::accept::router(Arc::new(later));
    let (status, _, page) = raw(&later_router, "GET", &link, "", None).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("expired"));
    let (status, _, problem) = accept_api(&later_router, &token_of(&link), PASSWORD).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(problem["code"], "invitation_expired");

    // Unknown.
    let (status, _, page) = raw(&router, "GET", "/invite/not-a-real-token", "", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("not valid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_accepts_of_one_link_make_one_membership() {
    let world = World::new().await;
    let router = world.local_router();
    invite(&router, "demo", "c@x.test", &["cust-1"]).await;
    let token = token_of(&world.link_in_mail("c@x.test").await);
    let (a, b) = tokio::join!(
        accept_api(&router, &token, PASSWORD),
        accept_api(&router, &token, PASSWORD)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::GONE],
        "{} / {}",
        a.2,
        b.2
    );
    let members = world
        .services
        .members
        .members_of_org(&domain::OrgSlug::parse("demo").unwrap())
        .await
        .unwrap();
    let payers = members
        .iter()
        .filter(|(_, m)| m.role == domain::Role::Payer)
        .count();
    assert_eq!(payers, 1);
}

#[tokio::test]
async fn admins_manage_only_their_own_org_and_payers_not_at_all() {
    let world = World::new().await;
    let router = world.local_router();
    let demo = bearer(&World::demo_key());
    let (_, invited) = invite(&router, "acme", "d@x.test", &["acme-1"]).await;
    let id = invited["id"].as_str().unwrap();
    let body = json!({"email": "e@x.test", "name": "E", "customer_ids": ["c"]});
    for (method, path, body) in [
        ("GET", "/api/orgs/acme/invitations".to_owned(), None),
        (
            "POST",
            "/api/orgs/acme/invitations".to_owned(),
            Some(body.clone()),
        ),
        (
            "POST",
            format!("/api/orgs/acme/invitations/{id}/resend"),
            None,
        ),
        ("DELETE", format!("/api/orgs/acme/invitations/{id}"), None),
        // The org is in the URL; an id of another org under one's own org is not found either.
        ("DELETE", format!("/api/orgs/demo/invitations/{id}"), None),
    ] {
        let (status, _, _) = call(&router, method, &path, &[("authorization", &demo)], body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    // A signed-in payer cannot use the invite API.
    invite(&router, "demo", "f@x.test", &["cust-1"]).await;
    let token = token_of(&world.link_in_mail("f@x.test").await);
    let (_, headers, _) = accept_api(&router, &token, PASSWORD).await;
    let session = cookies(&headers);
    let (status, _, _) = call(
        &router,
        "GET",
        "/api/orgs/demo/invitations",
        &[("cookie", &session)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A signed-in admin can (the org's first admin accepts nothing: sign in with their password).
    let (status, headers, _) = call(
        &router,
        "POST",
        "/api/login",
        &[],
        Some(json!({"email": "admin@demo.test", "password": "a long enough password"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let admin = cookies(&headers);
    let (status, _, list) = call(
        &router,
        "GET",
        "/api/orgs/demo/invitations",
        &[("cookie", &admin)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["status"], "accepted");
}

#[tokio::test]
async fn the_table_holds_token_hashes_never_tokens() {
    let world = World::new().await;
    let router = world.local_router();
    invite(&router, "demo", "g@x.test", &["cust-1"]).await;
    let token = token_of(&world.link_in_mail("g@x.test").await);
    let (_, headers, _) = accept_api(&router, &token, PASSWORD).await;
    let session = cookies(&headers).trim_start_matches("session=").to_owned();
    let items = world
        .store
        .client()
        .scan()
        .table_name(world.store.table())
        .send()
        .await
        .unwrap();
    let everything = format!("{:?}", items.items());
    // The outbox keeps the email (it is the local stand-in for SES); nothing else has the token.
    let outside_outbox: Vec<String> = items
        .items()
        .iter()
        .filter(|i| !i["pk"].as_s().unwrap().starts_with("DEV#"))
        .map(|i| format!("{i:?}"))
        .collect();
    for secret in [&token, &session] {
        assert!(!outside_outbox.iter().any(|i| i.contains(secret.as_str())));
        assert!(
            everything.contains(&domain::token_hash(secret)),
            "its SHA-256 is stored"
        );
    }
    assert!(
        !everything.contains(PASSWORD),
        "passwords are stored only as Argon2id hashes"
    );
}

#[tokio::test]
async fn sign_in_says_the_same_for_an_unknown_email_and_a_wrong_password_and_is_limited() {
    let world = World::new().await;
    let router = web::portal::router(world.services.clone());
    let login = |email: &'static str, password: &'static str| {
        let router = router.clone();
        async move {
            let (status, _, body) = call(
                &router,
                "POST",
                "/api/login",
                &[],
                Some(json!({"email": email, "password": password})),
            )
            .await;
            (status, body)
        }
    };
    let unknown = login("nobody@x.test", "whatever it is 123").await;
    let wrong = login("admin@demo.test", "whatever it is 123").await;
    assert_eq!(unknown, wrong);
    assert_eq!(unknown.0, StatusCode::UNAUTHORIZED);
    for _ in 0..9 {
        login("admin@demo.test", "whatever it is 123").await;
    }
    let (status, body) = login("admin@demo.test", "a long enough password").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Another email from the same place is not locked out by those failures.
    let (status, _) = login("admin@acme.test", "a long enough password").await;
    assert_eq!(status, StatusCode::OK);
}
