//! The Pay Now page and the payment methods page load the org's own gateway's tokenization
//! script, as a browser meets them: Stripe.js or Accept.js, then our adapter script with the
//! gateway's public values in `data-*` attributes, under a Content-Security-Policy that allows
//! exactly those origins; never a secret; the sandbox's pages as before; and a page that says
//! what is missing, without a card form, where the org has not given its public key.

use std::collections::BTreeMap;

use http::{HeaderMap, StatusCode};
use paybridge_tests::rig::{Kind, Rig};
use paybridge_tests::{World, call_text};
use serde_json::json;

const PASSWORD: &str = "payer password 123";
const PAY: &str = "/pay/demo/INV-7001";
const METHODS: &str = "/portal/orgs/demo/methods";

/// The policy every other page gets.
const DEFAULT_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The Authorize.Net merchant of the rig's double (its login and Transaction Key).
const ANET_LOGIN: &str = "paybridgeTest1";
const ANET_KEY: &str = "4kJd9Wq2Lp7Xz3Mn";
const ANET_CLIENT_KEY: &str = "5FcB6WrfHGS76gHW3v7btBCE3HuuBuke9Pf96Ztfn5R7W77Ubx5SyT3a7Zr6Vtq8";

/// A page as a browser gets it.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    fn csp(&self) -> &str {
        self.headers["content-security-policy"].to_str().unwrap()
    }

    /// Every `<script ...>` tag, in the order the browser runs them.
    fn scripts(&self) -> Vec<&str> {
        self.html
            .match_indices("<script")
            .map(|(at, _)| {
                let rest = &self.html[at..];
                &rest[..=rest.find('>').unwrap()]
            })
            .collect()
    }
}

async fn get(world: &World, path: &str, cookie: Option<&str>) -> Page {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
    let (status, headers, html) =
        call_text(&world.local_router(), "GET", path, &headers, None).await;
    Page {
        status,
        headers,
        html,
    }
}

/// The policy's directives: name → sources.
fn directives(csp: &str) -> BTreeMap<&str, Vec<&str>> {
    csp.split(';')
        .map(|d| {
            let mut words = d.split_whitespace();
            (words.next().unwrap(), words.collect())
        })
        .collect()
}

/// Each script's src is one the policy lets the browser load.
fn assert_scripts_allowed(page: &Page) {
    let policy = directives(page.csp());
    for tag in page.scripts() {
        let src = tag
            .split("src=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let allowed = if src.starts_with('/') {
            policy["script-src"].contains(&"'self'")
        } else {
            let origin = src.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
            policy["script-src"].contains(&origin.as_str())
        };
        assert!(allowed, "{src} under {}", page.csp());
    }
}

/// Demo with an open invoice, and a signed-in payer of its customer: the pages' paths' cookie.
async fn payable(world: &World, email: &str) -> String {
    world.add_invoice("demo", "INV-7001", "70.00").await;
    world.payer("demo", email, &["cust-1"], PASSWORD).await
}

async fn configure(world: &World, body: serde_json::Value) {
    let (status, view) = world
        .admin("PUT", "/api/orgs/demo/gateway", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
}

fn assert_no_secret(page: &Page, secrets: &[&str]) {
    for secret in secrets {
        assert!(!page.html.contains(secret), "a secret in the page");
        assert!(
            !format!("{:?}", page.headers).contains(secret),
            "a secret in the headers"
        );
    }
}

#[tokio::test]
async fn a_stripe_org_s_pages_load_stripe_js_and_our_adapter_with_its_publishable_key() {
    let rig = Rig::new(Kind::Stripe).await;
    let world = &rig.world;
    let cookie = payable(world, "sam@harbor.test").await;
    let secret_key = format!("sk_test_pb{}", ulid::Ulid::new().to_string().to_lowercase());
    let webhook_secret = format!("whsec_{}", ulid::Ulid::new());
    let publishable = format!("pk_test_pb{}", ulid::Ulid::new().to_string().to_lowercase());
    configure(
        world,
        json!({"gateway": "stripe",
            "credentials": {"secret_key": secret_key, "publishable_key": publishable},
            "webhook_secret": webhook_secret}),
    )
    .await;

    let expected_csp = "default-src 'self'; script-src 'self' https://js.stripe.com; \
        style-src 'self'; img-src 'self' data:; connect-src 'self' https://api.stripe.com; \
        frame-src https://js.stripe.com https://hooks.stripe.com; object-src 'none'; \
        base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
    let adapter = format!(
        "<script src=\"/assets/gateway-stripe.js\" data-publishable-key=\"{publishable}\">"
    );
    for (path, page_script) in [(PAY, "pay"), (METHODS, "methods")] {
        let page = get(world, path, Some(&cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
        assert_eq!(
            page.scripts(),
            [
                "<script src=\"https://js.stripe.com/v3/\">",
                adapter.as_str(),
                "<script src=\"/assets/details.js\">",
                &format!("<script src=\"/assets/{page_script}.js\">"),
            ],
            "{path}"
        );
        assert_eq!(page.csp(), expected_csp, "{path}");
        let policy = directives(page.csp());
        assert_eq!(policy["frame-ancestors"], ["'none'"]);
        assert_eq!(
            policy["frame-src"],
            ["https://js.stripe.com", "https://hooks.stripe.com"]
        );
        assert_eq!(page.headers["x-frame-options"], "DENY");
        assert_scripts_allowed(&page);
        // The form is there (Stripe's Card Element takes the card inside it).
        assert!(page.html.contains("id=\"card-fields\""), "{path}");
        assert!(!page.html.contains("sandbox.js"), "{path}");
        assert_no_secret(&page, &[&secret_key, &webhook_secret, "sk_test_", "whsec_"]);
    }
}

#[tokio::test]
async fn an_authorize_net_org_s_pages_load_accept_js_of_its_environment_with_its_public_values() {
    let rig = Rig::new(Kind::AuthorizeNet).await;
    let world = &rig.world;
    let cookie = payable(world, "ari@harbor.test").await;
    let webhook_secret = format!("{:032X}", ulid::Ulid::new().0).repeat(4);
    let adapter = format!(
        "<script src=\"/assets/gateway-authorize-net.js\" data-api-login-id=\"{ANET_LOGIN}\" \
         data-client-key=\"{ANET_CLIENT_KEY}\">"
    );
    for (environment, script_host, api_host) in [
        (
            "sandbox",
            "https://jstest.authorize.net",
            "https://apitest.authorize.net",
        ),
        (
            "production",
            "https://js.authorize.net",
            "https://api2.authorize.net",
        ),
    ] {
        configure(
            world,
            json!({"gateway": "authorize-net",
                "credentials": {"api_login_id": ANET_LOGIN, "transaction_key": ANET_KEY,
                    "environment": environment, "client_key": ANET_CLIENT_KEY},
                "webhook_secret": webhook_secret}),
        )
        .await;
        let expected_csp = format!(
            "default-src 'self'; script-src 'self' {script_host}; style-src 'self'; \
             img-src 'self' data:; connect-src 'self' {api_host}; object-src 'none'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        );
        for (path, page_script) in [(PAY, "pay"), (METHODS, "methods")] {
            let page = get(world, path, Some(&cookie)).await;
            assert_eq!(
                page.status,
                StatusCode::OK,
                "{environment} {path}: {}",
                page.html
            );
            assert_eq!(
                page.scripts(),
                [
                    format!("<script src=\"{script_host}/v1/Accept.js\">").as_str(),
                    adapter.as_str(),
                    "<script src=\"/assets/details.js\">",
                    &format!("<script src=\"/assets/{page_script}.js\">"),
                ],
                "{environment} {path}"
            );
            assert_eq!(page.csp(), expected_csp, "{environment} {path}");
            assert!(!directives(page.csp()).contains_key("frame-src"));
            assert_scripts_allowed(&page);
            assert!(page.html.contains("id=\"card-number\""), "{path}");
            assert_no_secret(&page, &[ANET_KEY, &webhook_secret]);
        }
    }
}

#[tokio::test]
async fn the_sandbox_s_pages_are_unchanged() {
    let rig = Rig::new(Kind::Sandbox).await;
    let world = &rig.world;
    let cookie = payable(world, "sol@harbor.test").await;
    for (path, page_script) in [(PAY, "pay"), (METHODS, "methods")] {
        let page = get(world, path, Some(&cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(
            page.scripts(),
            [
                "<script src=\"/sandbox/sandbox.js\">",
                "<script src=\"/assets/details.js\">",
                &format!("<script src=\"/assets/{page_script}.js\">"),
            ],
            "{path}"
        );
        assert!(
            page.html
                .contains("<script src=\"/sandbox/sandbox.js\"></script>")
        );
        assert_eq!(page.csp(), DEFAULT_CSP, "{path}");
        assert_scripts_allowed(&page);
    }
    // A guest too, and a page without any gateway script keeps the default.
    let guest = get(world, PAY, None).await;
    assert_eq!(guest.csp(), DEFAULT_CSP);
    let login = get(world, "/login", None).await;
    assert_eq!(login.csp(), DEFAULT_CSP);
}

/// The page that says online payments are not set up: the invoice or the saved methods, but no
/// card form and no script; the default policy.
fn assert_not_set_up(page: &Page, path: &str) {
    assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
    assert!(
        page.html
            .contains("has not finished setting up online payments"),
        "{path}: {}",
        page.html
    );
    for form in [
        "id=\"pay-form\"",
        "id=\"save-form\"",
        "id=\"card-number\"",
        "id=\"bank-account\"",
    ] {
        assert!(!page.html.contains(form), "{path}: {form}");
    }
    assert!(page.scripts().is_empty(), "{path}: {:?}", page.scripts());
    assert_eq!(page.csp(), DEFAULT_CSP, "{path}");
}

#[tokio::test]
async fn a_stripe_org_without_a_publishable_key_gets_the_not_set_up_page() {
    let rig = Rig::new(Kind::Stripe).await;
    let world = &rig.world;
    let cookie = payable(world, "nat@harbor.test").await;
    let pay = get(world, PAY, None).await;
    assert_not_set_up(&pay, PAY);
    assert!(
        pay.html.contains("Invoice INV-7001"),
        "the invoice is still shown"
    );
    let methods = get(world, METHODS, Some(&cookie)).await;
    assert_not_set_up(&methods, METHODS);
    assert!(
        methods
            .html
            .contains("You have no saved cards or bank accounts yet.")
    );
}

#[tokio::test]
async fn an_authorize_net_org_without_a_client_key_gets_the_not_set_up_page() {
    // The rig configures no Public Client Key.
    let rig = Rig::new(Kind::AuthorizeNet).await;
    let world = &rig.world;
    let cookie = payable(world, "ned@harbor.test").await;
    assert_not_set_up(&get(world, PAY, None).await, PAY);
    assert_not_set_up(&get(world, METHODS, Some(&cookie)).await, METHODS);
}

#[tokio::test]
async fn a_gateway_that_cannot_answer_gives_a_readable_503() {
    let rig = Rig::new(Kind::Sandbox).await;
    let world = &rig.world;
    let cookie = payable(world, "una@harbor.test").await;
    // A configuration the gateway cannot be built from (no secret key).
    let demo = domain::OrgSlug::parse("demo").unwrap();
    world
        .services
        .gateway_configs
        .put_gateway_config(
            &demo,
            "stripe",
            &domain::Secret::new("{}".to_owned()),
            "",
            world.services.clock.now(),
        )
        .await
        .unwrap();
    world.services.gateway.forget(&demo);
    for (path, cookie) in [(PAY, None), (METHODS, Some(cookie.as_str()))] {
        let page = get(world, path, cookie).await;
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(
            page.html
                .contains("Card payments are unavailable right now"),
            "{path}: {}",
            page.html
        );
        assert!(
            page.html.contains("<html lang=\"en\">"),
            "a page, not a bare error"
        );
        assert!(page.scripts().is_empty());
    }
}

#[tokio::test]
async fn the_adapter_scripts_are_served_and_read_the_attributes_the_pages_write() {
    let world = World::new().await;
    for (path, attributes, calls) in [
        (
            "/assets/gateway-stripe.js",
            &["data-publishable-key"][..],
            &["createPaymentMethod", "us_bank_account", "PaybridgeGateway"][..],
        ),
        (
            "/assets/gateway-authorize-net.js",
            &["data-api-login-id", "data-client-key"][..],
            &[
                "Accept.dispatchData",
                "opaqueData.dataValue",
                "PaybridgeGateway",
            ][..],
        ),
    ] {
        let page = get(&world, path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(
            page.headers["content-type"],
            "text/javascript; charset=utf-8"
        );
        for word in attributes.iter().chain(calls) {
            assert!(page.html.contains(word), "{path} uses {word}");
        }
        assert!(page.html.contains("document.currentScript"), "{path}");
    }
}

#[tokio::test]
async fn the_publishable_key_is_checked_and_never_echoed() {
    let rig = Rig::new(Kind::Sandbox).await;
    let world = &rig.world;
    let secret = "sk_test_abcdefgh1234";
    for publishable in [
        json!("sk_test_secretkeyinthewrongplace"),
        json!("pk_live_modedoesnotmatch"),
        json!("pk_test_not valid<script>"),
        json!(42),
    ] {
        let body = json!({"gateway": "stripe",
            "credentials": {"secret_key": secret, "publishable_key": publishable}});
        let (status, problem) = world
            .admin("PUT", "/api/orgs/demo/gateway", Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        let text = problem.to_string();
        assert!(text.contains("credentials.publishable_key"), "{text}");
        for echoed in ["wrongplace", "doesnotmatch", "script"] {
            assert!(!text.contains(echoed), "{text}");
        }
    }
    // Stripe's live keys go together.
    configure(
        world,
        json!({"gateway": "stripe",
            "credentials": {"secret_key": "sk_live_abcdefgh1234", "publishable_key": "pk_live_abcdefgh1234"}}),
    )
    .await;
    let page = {
        world.add_invoice("demo", "INV-7001", "70.00").await;
        get(world, PAY, None).await
    };
    assert!(
        page.html
            .contains("data-publishable-key=\"pk_live_abcdefgh1234\"")
    );
    assert_no_secret(&page, &["sk_live_abcdefgh1234"]);
}
