//! Shared helpers of the end-to-end tests: a fresh table with an org and an API key, and a way
//! to call a router as a client would.

use std::sync::Arc;

use app::Services;
use domain::{Email, OrgSettings, OrgSlug, Secret};
use store::Store;
use time::{OffsetDateTime, macros::datetime};

pub const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

pub struct World {
    pub store: Store,
    pub services: Arc<Services>,
    /// The world's clock: starts at NOW; `set_now` moves it.
    pub clock: Arc<app::system::ManualClock>,
}

impl World {
    /// A new table on DynamoDB Local with the orgs `demo` (USD) and `acme` (AUD), each with an
    /// API key: `demo_key()` and `acme_key()`.
    pub async fn new() -> World {
        Self::with_stripe_at(gateways::stripe::STRIPE_API).await
    }

    /// The same world, with Stripe's API at `stripe_api` (localstripe) for orgs configured for it.
    pub async fn with_stripe_at(stripe_api: &str) -> World {
        Self::with_gateways_at(gateways::Endpoints {
            stripe: stripe_api.to_owned(),
            authorize_net: None,
        })
        .await
    }

    /// The same world, with the gateways' APIs at `endpoints` (local doubles).
    pub async fn with_gateways_at(endpoints: gateways::Endpoints) -> World {
        Self::with_endpoints(endpoints, accounting::Endpoints::default()).await
    }

    /// The same world, with the gateways' APIs and Xero's hosts at `endpoints` and `books`.
    pub async fn with_endpoints(
        endpoints: gateways::Endpoints,
        books: accounting::Endpoints,
    ) -> World {
        let store = devtools::test_store().await;
        let clock = Arc::new(app::system::ManualClock::new(NOW));
        let services = runtime::services_at(store.clone(), clock.clone(), endpoints, books);
        let world = World {
            store,
            services: Arc::new(services),
            clock,
        };
        for (slug, currency) in [
            ("demo", domain::Currency::Usd),
            ("acme", domain::Currency::Aud),
        ] {
            let settings = OrgSettings {
                default_currency: currency,
                ..OrgSettings::default()
            };
            world.add_org(slug, settings).await;
            let s = &world.services;
            app::orgs::issue_api_key(
                s.api_keys.as_ref(),
                s.clock.as_ref(),
                s.ids.as_ref(),
                &OrgSlug::parse(slug).unwrap(),
                "tests",
                Some(Secret::new(Self::key(slug))),
            )
            .await
            .unwrap();
        }
        world
    }

    /// Creates an org whose first admin is `admin@<slug>.test` (or that person's existing
    /// account: one person may administer several orgs).
    pub async fn add_org(&self, slug: &str, settings: OrgSettings) {
        let s = &self.services;
        let email = Email::parse(&format!("admin@{slug}.test")).unwrap();
        let exists = s.users.find_user_by_email(&email).await.unwrap().is_some();
        app::orgs::create_org(
            s.orgs.as_ref(),
            s.users.as_ref(),
            s.clock.as_ref(),
            s.ids.as_ref(),
            app::orgs::NewOrg {
                slug: OrgSlug::parse(slug).unwrap(),
                name: format!("{slug} IT"),
                settings,
                admin_email: email,
                admin_name: "Admin".into(),
                admin_password: (!exists).then(|| Secret::new("a long enough password".into())),
            },
        )
        .await
        .unwrap();
    }

    /// Moves the world's clock.
    pub fn set_now(&self, at: OffsetDateTime) {
        self.clock.set(at);
    }

    /// Invites `email` to `org` as a payer of `customers` and accepts with `password` (through
    /// the invite and accept APIs): the session cookie.
    pub async fn payer(
        &self,
        org: &str,
        email: &str,
        customers: &[&str],
        password: &str,
    ) -> String {
        let router = self.local_router();
        let auth = format!("Bearer {}", Self::key(org));
        let body =
            serde_json::json!({"email": email, "name": "Pat Lee", "customer_ids": customers});
        let path = format!("/api/orgs/{org}/invitations");
        let (status, _, answer) = call(
            &router,
            "POST",
            &path,
            &[("authorization", &auth)],
            Some(body),
        )
        .await;
        assert_eq!(status, http::StatusCode::CREATED, "{answer}");
        let link = self.link_in_mail(email).await;
        let token = link.trim_start_matches("/invite/");
        let accept = serde_json::json!({"token": token, "name": "Pat Lee", "password": password, "accept_terms": true});
        let (status, headers, answer) = call(
            &router,
            "POST",
            "/api/invitations/accept",
            &[],
            Some(accept),
        )
        .await;
        assert_eq!(status, http::StatusCode::CREATED, "{answer}");
        cookies(&headers)
    }

    /// A fresh session for `email` through the sign-in API (at the world's time: tests that
    /// move days outlive sessions).
    pub async fn sign_in(&self, email: &str, password: &str) -> String {
        let body = serde_json::json!({"email": email, "password": password});
        let (status, headers, _) =
            call(&self.local_router(), "POST", "/api/login", &[], Some(body)).await;
        assert_eq!(status, http::StatusCode::OK);
        cookies(&headers)
    }

    /// A cookie-keeping client of the local router, signed in as `email` through the sign-in
    /// page (its form, with the CSRF token the page gave).
    pub async fn browser_signed_in(&self, email: &str, password: &str) -> Browser {
        let mut browser = Browser::new(self.local_router());
        let form = browser.get("/login").await;
        assert_eq!(form.status, http::StatusCode::OK);
        let done = browser
            .post_form("/login", &[("email", email), ("password", password)])
            .await;
        assert_eq!(done.status, http::StatusCode::SEE_OTHER, "{}", done.body);
        browser
    }

    /// Saves a test card for the signed-in payer of demo, with the authority to charge it later
    /// (as the methods page does, with the terms it shows): the method's id.
    pub async fn save_card(&self, cookie: &str, number: &str) -> String {
        let token = self.card_token(number).await;
        self.save_token(cookie, &token, "card").await
    }

    /// Saves what a gateway's token stands for (`kind`: card or bank) for the signed-in payer
    /// of demo, with the authority the methods page asks for: the method's id.
    pub async fn save_token(&self, cookie: &str, token: &str, kind: &str) -> String {
        let (_, _, terms) = call(
            &self.local_router(),
            "GET",
            &format!("/api/me/orgs/demo/methods/terms?kind={kind}"),
            &[("cookie", cookie)],
            None,
        )
        .await;
        let body = serde_json::json!({"token": token, "kind": kind, "mandate": {"signer_name": "Pat Lee", "terms_version": terms["version"]}});
        let (status, _, method) = call(
            &self.local_router(),
            "POST",
            "/api/me/orgs/demo/methods",
            &[("cookie", cookie)],
            Some(body),
        )
        .await;
        assert!(status.is_success(), "{method}");
        method["id"].as_str().unwrap().to_owned()
    }

    /// Every item of the world's table, as text: for asserting that something (a card number,
    /// a key) is nowhere in it.
    pub async fn table_text(&self) -> String {
        let scan = self
            .store
            .client()
            .scan()
            .table_name(self.store.table())
            .send()
            .await
            .unwrap();
        format!("{:?}", scan.items())
    }

    pub fn key(slug: &str) -> String {
        format!("pbk_{slug}_test_key_000000000000000000000000000")
    }

    pub fn demo_key() -> String {
        Self::key("demo")
    }

    pub fn acme_key() -> String {
        Self::key("acme")
    }
}

impl World {
    /// The local stack's router: every function, the sandbox gateway and the outbox.
    pub fn local_router(&self) -> axum::Router {
        self.local_router_over(self.services.clone())
    }

    /// Emails the local outbox holds, newest first.
    pub async fn outbox(&self) -> Vec<app::ports::SentMail> {
        use app::ports::DevOutbox;
        store::Outbox::new(&self.store)
            .recent_mail(100)
            .await
            .unwrap()
    }

    /// The accept link (its path) in the newest email to `to`; both parts of the email have it.
    pub async fn link_in_mail(&self, to: &str) -> String {
        let mail = self.outbox().await;
        let message = &mail
            .iter()
            .find(|m| m.message.to.as_str() == to)
            .expect("an email")
            .message;
        let start = message.text.find("http://").expect("a link");
        let link = message.text[start..].split_whitespace().next().unwrap();
        assert!(
            message.html.contains(link),
            "the HTML part has the same link"
        );
        link.trim_start_matches("http://127.0.0.1:3000").to_owned()
    }

    /// Events the local event log holds, newest first.
    pub async fn events(&self) -> Vec<app::ports::DomainEvent> {
        use app::ports::DevOutbox;
        store::Outbox::new(&self.store)
            .recent_events(100)
            .await
            .unwrap()
    }

    /// Changes an org's settings (as its admin would through the settings API).
    pub async fn set_settings(&self, org: &str, patch: serde_json::Value) {
        let patch = serde_json::from_value(patch).unwrap();
        app::orgs::update_settings(
            self.services.orgs.as_ref(),
            &OrgSlug::parse(org).unwrap(),
            patch,
        )
        .await
        .unwrap();
    }

    /// The sandbox gateway over this world's table, on the world's clock.
    pub fn sandbox(&self) -> gateways::SandboxGateway {
        gateways::SandboxGateway::new(
            self.store.clone(),
            self.services.clock.clone(),
            self.services.ids.clone(),
        )
    }

    /// A single-use sandbox token for a test card, as the browser would get it.
    pub async fn card_token(&self, number: &str) -> String {
        self.card_token_expiring(number, 12, 2030).await
    }

    /// The same, for a card with this expiry.
    pub async fn card_token_expiring(&self, number: &str, month: u8, year: u16) -> String {
        self.tokenize(gateways::sandbox::TokenRequest::Card {
            card_number: number.into(),
            exp_month: month,
            exp_year: year,
            cvc: if number.len() == 15 { "1234" } else { "123" }.into(),
        })
        .await
    }

    /// A single-use sandbox token for a test bank account (routing 110000000).
    pub async fn bank_token(&self, account: &str, holder: &str) -> String {
        self.tokenize(gateways::sandbox::TokenRequest::Bank {
            routing_number: gateways::sandbox::TEST_ROUTING.into(),
            account_number: account.into(),
            account_holder: holder.into(),
        })
        .await
    }

    async fn tokenize(&self, request: gateways::sandbox::TokenRequest) -> String {
        self.sandbox()
            .tokenize(request)
            .await
            .unwrap()
            .token
            .expose()
            .clone()
    }

    /// Adds a ledger invoice of customer `cust-1` to an org (its currency).
    pub async fn add_invoice(&self, org: &str, number: &str, total: &str) {
        self.add_invoice_of(org, number, total, "cust-1").await
    }

    /// Adds a ledger invoice of `customer` to an org (its currency).
    pub async fn add_invoice_of(&self, org: &str, number: &str, total: &str, customer: &str) {
        let due = NOW.date() + time::Duration::days(30);
        self.add_ledger_invoice(
            org,
            number,
            total,
            (customer, "Harbor Dental"),
            NOW.date(),
            due,
        )
        .await;
    }

    /// Adds a ledger invoice in the org's currency: `customer` is (id, name).
    pub async fn add_ledger_invoice(
        &self,
        org: &str,
        number: &str,
        total: &str,
        customer: (&str, &str),
        issue_date: time::Date,
        due_date: time::Date,
    ) {
        let s = &self.services;
        let slug = OrgSlug::parse(org).unwrap();
        let currency = s
            .orgs
            .get_org(&slug)
            .await
            .unwrap()
            .unwrap()
            .settings
            .default_currency;
        let new = app::ledger::NewInvoice {
            invoice_number: number.into(),
            customer_id: customer.0.into(),
            customer_name: customer.1.into(),
            total: total.into(),
            currency: None,
            issue_date,
            due_date,
        };
        app::ledger::add_invoice(s.ledger.as_ref(), s.clock.as_ref(), &slug, currency, &new)
            .await
            .unwrap();
    }

    /// The balance of a ledger invoice now, as a decimal string.
    pub async fn balance(&self, org: &str, number: &str) -> String {
        let read = self
            .services
            .ledger
            .get_invoice(
                &OrgSlug::parse(org).unwrap(),
                &domain::InvoiceNumber::parse(number).unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        read.invoice.amount_due.amount_string()
    }
}

/// Calls a router as an HTTP client would; answers status, headers and the body as JSON
/// (a string value when it is not JSON, such as a page).
pub async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> (http::StatusCode, http::HeaderMap, serde_json::Value) {
    call_from(router, None, method, path, headers, body).await
}

/// The same, from a client address (the TCP peer that the local host sees).
pub async fn call_from(
    router: &axum::Router,
    client: Option<std::net::SocketAddr>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> (http::StatusCode, http::HeaderMap, serde_json::Value) {
    let body = body.map(|json| ("application/json", json.to_string()));
    let (status, headers, bytes) = send(router, client, method, path, headers, body).await;
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, headers, json)
}

/// Calls a router with a body of any type (a form post, say); answers the body as text.
pub async fn call_text(
    router: &axum::Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, String)>,
) -> (http::StatusCode, http::HeaderMap, String) {
    let (status, headers, bytes) = send(router, None, method, path, headers, body).await;
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// One request through the router: `body` is its content type and content.
async fn send(
    router: &axum::Router,
    client: Option<std::net::SocketAddr>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, String)>,
) -> (http::StatusCode, http::HeaderMap, axum::body::Bytes) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut request = http::Request::builder().method(method).uri(path);
    if let Some(addr) = client {
        request = request.extension(axum::extract::ConnectInfo(addr));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match body {
        Some((content_type, content)) => {
            request = request.header(http::header::CONTENT_TYPE, content_type);
            axum::body::Body::from(content)
        }
        None => axum::body::Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, bytes)
}

/// Every Set-Cookie name=value of a response (but removals), as one Cookie header.
pub fn cookies(headers: &http::HeaderMap) -> String {
    headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .filter(|pair| !pair.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A browser on the router: it keeps the cookies that responses set (and drops those they
/// clear) and sends them back, and posts forms as browsers do. It does not follow redirects,
/// so that tests can see them.
pub struct Browser {
    router: axum::Router,
    jar: std::collections::BTreeMap<String, String>,
}

/// What a page request answered: status, headers and the body as text.
pub struct Page {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Page {
    /// Where a redirect goes.
    pub fn location(&self) -> &str {
        self.headers
            .get(http::header::LOCATION)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

impl Browser {
    pub fn new(router: axum::Router) -> Browser {
        Browser {
            router,
            jar: Default::default(),
        }
    }

    /// A cookie the browser holds.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(String::as_str)
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.request("GET", path, None).await
    }

    /// Posts a form with these fields (URL-encoded) and the CSRF token this browser holds.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.cookie("csrf").unwrap_or_default().to_owned();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let body = serde_urlencoded::to_string(&all).unwrap();
        self.post_raw(path, body).await
    }

    /// Posts JSON, as a page's script does (with the browser's cookies).
    pub async fn post_json(&mut self, path: &str, body: serde_json::Value) -> Page {
        let json = ("application/json", body.to_string());
        self.request("POST", path, Some(json)).await
    }

    /// Posts a form body exactly as given (a forged form, say).
    pub async fn post_raw(&mut self, path: &str, body: String) -> Page {
        let form = ("application/x-www-form-urlencoded", body);
        self.request("POST", path, Some(form)).await
    }

    async fn request(&mut self, method: &str, path: &str, body: Option<(&str, String)>) -> Page {
        let cookie = self
            .jar
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let headers: Vec<(&str, &str)> = [("cookie", cookie.as_str())]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let (status, headers, bytes) = send(&self.router, None, method, path, &headers, body).await;
        for set in headers.get_all(http::header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

/// Log lines captured in memory, for tests that check what reaches the logs.
pub mod real_browser;
pub mod rig;

pub mod logs {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    pub struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    /// Every log line of this thread from now until the guard drops, at the most that anyone can
    /// ask for (RUST_LOG=trace, with the SDK's wire logging capped as in production), as JSON.
    /// `#[tokio::test]` runs every task of the test on its thread.
    pub fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_env_filter(runtime::log_filter("trace"))
            .with_writer(move || writer.clone())
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    /// Panics with the line if `secret` appears in the logs.
    pub fn assert_absent(logs: &str, what: &str, secret: &str) {
        if let Some(at) = logs.find(secret) {
            let start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = at + logs[at..].find('\n').unwrap_or(logs.len() - at);
            panic!("{what} appears in the logs: {}", &logs[start..end]);
        }
    }
}

/// Writes `count` schedules of pat@harbor.test (demo, cust-1, `method`) that are not due at
/// `now`: a twentieth later the same day (the same index partitions as what is due), the rest
/// spread over the next 200 days. Straight into the table, 25 to a BatchWriteItem, 8 at once.
pub async fn load_future_schedules(world: &World, method: &str, now: OffsetDateTime, count: usize) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    use futures::StreamExt;
    let user = world
        .services
        .users
        .find_user_by_email(&Email::parse("pat@harbor.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    let schedule = |i: usize| {
        let due_at = if i.is_multiple_of(20) {
            now + time::Duration::minutes(1 + (i % 1000) as i64)
        } else {
            now + time::Duration::days(1 + (i % 200) as i64)
        };
        app::ports::Schedule {
            id: domain::ScheduleId::from_ulid(&ulid::Ulid::new().to_string()).unwrap(),
            org: OrgSlug::parse("demo").unwrap(),
            user: user.id.clone(),
            invoice: domain::InvoiceNumber::parse(&format!("F-{i}")).unwrap(),
            customer: domain::CustomerId::parse("cust-1").unwrap(),
            method: domain::MethodId::parse(method).unwrap(),
            secondary: None,
            amount: None,
            run_on: due_at.date(),
            due_at,
            enrolment: None,
            state: app::ports::ScheduleState::Scheduled,
            attempts: 0,
            on_secondary: false,
            payment: None,
            outcome: None,
            notice_at: None,
            version: 0,
            created_at: now,
            updated_at: now,
        }
    };
    let batches: Vec<Vec<usize>> = (0..count)
        .collect::<Vec<_>>()
        .chunks(25)
        .map(<[usize]>::to_vec)
        .collect();
    futures::stream::iter(batches)
        .map(|batch| {
            let requests: Vec<WriteRequest> = batch
                .into_iter()
                .map(|i| {
                    let item = store::schedules::schedule_item(&schedule(i));
                    let put = PutRequest::builder().set_item(Some(item)).build().unwrap();
                    WriteRequest::builder().put_request(put).build()
                })
                .collect();
            let client = world.store.client().clone();
            let table = world.store.table().to_owned();
            async move {
                let mut pending = Some(requests);
                while let Some(requests) = pending.take() {
                    let out = client
                        .batch_write_item()
                        .request_items(&table, requests)
                        .send()
                        .await
                        .unwrap();
                    pending = out
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&table))
                        .filter(|r| !r.is_empty());
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

/// Webhooks: secrets, the sandbox's signed events, the follow-ups after an answer.
impl World {
    /// The local stack's router over other ports (a slow mailer, say): every function, the
    /// sandbox gateway with its event sender, and the outbox.
    pub fn local_router_over(&self, services: Arc<Services>) -> axum::Router {
        let outbox = Arc::new(store::Outbox::new(&self.store));
        let local_only = web::sandbox::routes(Arc::new(self.sandbox()))
            .merge(web::dev::routes(outbox))
            .merge(web::sandbox_events::routes(
                Arc::new(self.sandbox_events()),
                web::webhook::router(services.clone()),
            ));
        web::all_functions(services, local_only)
    }

    /// The sandbox's webhook sender over this world's table, on the world's clock.
    pub fn sandbox_events(&self) -> gateways::sandbox_events::SandboxEvents {
        gateways::sandbox_events::SandboxEvents::new(
            self.store.clone(),
            self.services.clock.clone(),
            self.services.ids.clone(),
            self.services.webhook_secrets.clone(),
        )
    }

    /// Rotates `org`'s sandbox webhook secret through the admin API (with a grace period in
    /// hours for the one before, 24 when None); answers the new secret, shown this once.
    pub async fn rotate_webhook_secret(&self, org: &str, grace_hours: Option<u16>) -> String {
        let body = match grace_hours {
            Some(h) => serde_json::json!({"grace_period_hours": h}),
            None => serde_json::json!({}),
        };
        let auth = format!("Bearer {}", Self::key(org));
        let path = format!("/api/orgs/{org}/webhook-secrets/rotate");
        let (status, _, answer) = call(
            &self.local_router(),
            "POST",
            &path,
            &[("authorization", &auth)],
            Some(body),
        )
        .await;
        assert_eq!(status, http::StatusCode::CREATED, "{answer}");
        answer["secret"]
            .as_str()
            .expect("the new secret")
            .to_owned()
    }

    /// Asks the sandbox to sign and deliver an event (`POST /sandbox/events`): the webhook's
    /// status and answer.
    pub async fn sandbox_event(
        &self,
        router: &axum::Router,
        body: serde_json::Value,
    ) -> (http::StatusCode, serde_json::Value) {
        let (status, _, answer) = call(router, "POST", "/sandbox/events", &[], Some(body)).await;
        assert_eq!(status, http::StatusCode::OK, "{answer}");
        let delivered = &answer["response"];
        let code = http::StatusCode::from_u16(delivered["status"].as_u64().unwrap() as u16);
        (code.unwrap(), delivered["body"].clone())
    }

    /// Waits (at most 10 s) until nothing is due in the webhooks' follow-up queue: the effects
    /// that handlers deliver right after their answers have been delivered.
    pub async fn follow_ups_done(&self) {
        for _ in 0..200 {
            let due = self
                .services
                .webhooks
                .due_follow_ups(self.services.clock.now(), 10)
                .await
                .unwrap();
            if due.is_empty() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("follow-ups still due after 10 s");
    }
}
