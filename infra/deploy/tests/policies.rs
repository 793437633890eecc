//! Least privilege, checked both ways. Each function's routes (and the tick) run through that
//! function's own router over DynamoDB Local, with an SDK interceptor recording every DynamoDB
//! call as the IAM action it needs and the table or index it touches, and recording ports for
//! mail (SES) and events (EventBridge); each function's cold start decrypts the sealing data
//! key in moto's KMS, recorded the same way (the key and the encryption context):
//! - every recorded action must be allowed by the function's role in infra/template.yaml;
//! - every action a role allows must have been recorded, or be in `NOT_EXERCISED` below with
//!   the reason the journey does not reach it (read from the code).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation as op;
use http::StatusCode;
use paybridge_deploy::{Statement, functions, properties, role_statements, template};
use paybridge_tests::{NOW, World, call, call_text, cookies};
use serde_json::{Value, json};
use time::macros::datetime;

use app::ports::{DomainEvent, EmailMessage, EventPublisher, Mailer, NotifyError};

/// Who is calling now: a function's binary name, or "setup".
static CURRENT: Mutex<&str> = Mutex::new("setup");
/// (function, action, resource) as recorded.
static CALLS: Mutex<BTreeSet<(&str, String, String)>> = Mutex::new(BTreeSet::new());

fn note(action: &str, resource: &str) {
    let function = *CURRENT.lock().unwrap();
    CALLS
        .lock()
        .unwrap()
        .insert((function, action.to_owned(), resource.to_owned()));
}

/// Waits until what the last function started (an effect after an answer) has run, then makes
/// `function` the caller.
async fn acting_as(function: &'static str) {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    *CURRENT.lock().unwrap() = function;
}

/// The table, as role statements name it (`!GetAtt Table.Arn`), and its indexes.
const TABLE: &str = "Table";
fn index(name: &str) -> String {
    format!("${{Table.Arn}}/index/{name}")
}

#[derive(Debug)]
struct Recorder;

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "iam-action-recorder"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        if input.downcast_ref::<op::get_item::GetItemInput>().is_some() {
            note("dynamodb:GetItem", TABLE);
        } else if input.downcast_ref::<op::put_item::PutItemInput>().is_some() {
            note("dynamodb:PutItem", TABLE);
        } else if input
            .downcast_ref::<op::update_item::UpdateItemInput>()
            .is_some()
        {
            note("dynamodb:UpdateItem", TABLE);
        } else if input
            .downcast_ref::<op::delete_item::DeleteItemInput>()
            .is_some()
        {
            note("dynamodb:DeleteItem", TABLE);
        } else if input
            .downcast_ref::<op::batch_get_item::BatchGetItemInput>()
            .is_some()
        {
            note("dynamodb:BatchGetItem", TABLE);
        } else if let Some(query) = input.downcast_ref::<op::query::QueryInput>() {
            match query.index_name() {
                Some(name) => note("dynamodb:Query", &index(name)),
                None => note("dynamodb:Query", TABLE),
            }
        } else if let Some(tx) =
            input.downcast_ref::<op::transact_write_items::TransactWriteItemsInput>()
        {
            // A transaction needs the action of each of its items.
            for item in tx.transact_items() {
                if item.put().is_some() {
                    note("dynamodb:PutItem", TABLE);
                }
                if item.update().is_some() {
                    note("dynamodb:UpdateItem", TABLE);
                }
                if item.delete().is_some() {
                    note("dynamodb:DeleteItem", TABLE);
                }
                if item.condition_check().is_some() {
                    note("dynamodb:ConditionCheckItem", TABLE);
                }
            }
        } else if input.downcast_ref::<op::scan::ScanInput>().is_some() {
            note("dynamodb:Scan", TABLE);
        } else if input
            .downcast_ref::<op::batch_write_item::BatchWriteItemInput>()
            .is_some()
        {
            note("dynamodb:BatchWriteItem", TABLE);
        } else if input
            .downcast_ref::<op::transact_get_items::TransactGetItemsInput>()
            .is_some()
        {
            note("dynamodb:GetItem", TABLE);
        } else {
            note("dynamodb:(another operation)", TABLE);
        }
        Ok(())
    }
}

/// Records KMS calls: `Decrypt` of the configured key with exactly the encryption context
/// app=paybridge is `kms:Decrypt` on the key as the template names it (SEALING_KMS_KEY_ID's
/// resource); any other key or context is recorded as such, and no statement allows it.
#[derive(Debug)]
struct KmsRecorder {
    /// The key's ARN in moto, and its name in the template.
    key_arn: String,
    template_key: String,
}

impl aws_sdk_kms::config::Intercept for KmsRecorder {
    fn name(&self) -> &'static str {
        "iam-action-recorder-kms"
    }

    fn read_before_execution(
        &self,
        context: &aws_sdk_kms::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _: &mut aws_sdk_kms::config::ConfigBag,
    ) -> Result<(), aws_sdk_kms::error::BoxError> {
        use aws_sdk_kms::operation::decrypt::DecryptInput;
        let Some(decrypt) = context.input().downcast_ref::<DecryptInput>() else {
            note("kms:(another operation)", "?");
            return Ok(());
        };
        let (app, paybridge) = runtime::SEALING_KEY_CONTEXT;
        let expected = std::collections::HashMap::from([(app.to_owned(), paybridge.to_owned())]);
        let key = if decrypt.key_id() == Some(self.key_arn.as_str()) {
            self.template_key.clone()
        } else {
            format!("{:?}", decrypt.key_id())
        };
        if decrypt.encryption_context() == Some(&expected) {
            note("kms:Decrypt", &key);
        } else {
            note(
                "kms:Decrypt",
                &format!("{key} with context {:?}", decrypt.encryption_context()),
            );
        }
        Ok(())
    }
}

/// A KMS key and a sealing data key made under it in moto (context app=paybridge), a function's
/// configuration naming them as the template does, and a recording KMS client.
async fn sealing_key_in_moto() -> (aws_sdk_kms::Client, runtime::Config) {
    let aws = devtools::aws_client_config(devtools::moto::shared_for_tests());
    let plain = aws_sdk_kms::Client::new(&aws);
    let key_arn = plain
        .create_key()
        .description("paybridge sealing key (policies test)")
        .send()
        .await
        .expect("CreateKey in moto")
        .key_metadata()
        .and_then(|m| m.arn())
        .unwrap()
        .to_owned();
    let (app, paybridge) = runtime::SEALING_KEY_CONTEXT;
    let data_key = plain
        .generate_data_key()
        .key_id(&key_arn)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .encryption_context(app, paybridge)
        .send()
        .await
        .expect("GenerateDataKey in moto");
    let ciphertext = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(data_key.ciphertext_blob().unwrap().as_ref())
    };
    let t = template();
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    let template_key = paybridge_deploy::resource_name(&env["SEALING_KMS_KEY_ID"]);
    let vars = [
        ("TABLE_NAME", "unused".to_owned()),
        ("SEALING_KEY_CIPHERTEXT", ciphertext),
        ("SEALING_KMS_KEY_ID", key_arn.clone()),
    ];
    let config = runtime::Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let recording = aws_sdk_kms::config::Builder::from(&aws)
        .interceptor(KmsRecorder {
            key_arn,
            template_key,
        })
        .build();
    (aws_sdk_kms::Client::from_conf(recording), config)
}

/// SES, as the mail port's production adapter would call it.
struct RecordingMailer(Arc<dyn Mailer>);

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), NotifyError> {
        note("ses:SendEmail", "identity and configuration set");
        self.0.send(message).await
    }
}

/// EventBridge, as the events port's production adapter would call it.
struct RecordingEvents(Arc<dyn EventPublisher>);

#[async_trait]
impl EventPublisher for RecordingEvents {
    async fn publish(&self, event: &DomainEvent) -> Result<(), NotifyError> {
        note("events:PutEvents", "PaymentEventBus");
        self.0.publish(event).await
    }
}

/// Actions a role allows that the journeys below do not reach, and why the code needs them.
const NOT_EXERCISED: &[(&str, &str, &str, &str)] = &[
    // (function, action, resource, why)
    (
        "auto-pay-tick",
        "dynamodb:Query",
        TABLE,
        "the webhooks' retry path (run_due_follow_ups) sends a reversal's notices to the org's \
         admins when the webhook function could not: members_of_org reads the org's partition",
    ),
    (
        "webhook",
        "dynamodb:DeleteItem",
        TABLE,
        "an event held for a payment whose attempt was abandoned: resolve_abandoned writes the \
         outcome in one transaction that deletes the invoice's attempt lock (release_lock)",
    ),
    (
        "webhook",
        "dynamodb:Query",
        "${Table.Arn}/index/gsi1",
        "an event that carries no payment reference of ours, only the gateway's charge id, is \
         matched through gsi1 (payment_by_charge)",
    ),
];

/// A world whose every DynamoDB call, mail and event is recorded: the orgs `demo` and `acme`
/// with their API keys, as `World::new` makes them.
async fn recorded_world() -> World {
    let client = devtools::local_client(devtools::shared_for_tests()).await;
    let config = client.config().to_builder().interceptor(Recorder).build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let (sealing, _) = store::SealingKey::generate();
    let store =
        store::Store::new(client, format!("test-{}", ulid_like())).with_sealing_key(sealing);
    store.ensure_table().await.unwrap();
    let clock = Arc::new(app::system::ManualClock::new(NOW));
    let mut services = runtime::services_over(store.clone(), clock.clone());
    services.mailer = Arc::new(RecordingMailer(services.mailer.clone()));
    services.events = Arc::new(RecordingEvents(services.events.clone()));
    let world = World {
        store,
        services: Arc::new(services),
        clock,
    };
    for (slug, currency) in [
        ("demo", domain::Currency::Usd),
        ("acme", domain::Currency::Aud),
    ] {
        let settings = domain::OrgSettings {
            default_currency: currency,
            ..domain::OrgSettings::default()
        };
        world.add_org(slug, settings).await;
        let s = &world.services;
        app::orgs::issue_api_key(
            s.api_keys.as_ref(),
            s.clock.as_ref(),
            s.ids.as_ref(),
            &domain::OrgSlug::parse(slug).unwrap(),
            "tests",
            Some(domain::Secret::new(World::key(slug))),
        )
        .await
        .unwrap();
    }
    world
}

fn ulid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("policies-{nanos}")
}

/// A client of one router that keeps cookies, like a browser (it does not follow redirects).
struct Client {
    router: axum::Router,
    jar: BTreeMap<String, String>,
}

impl Client {
    fn new(router: axum::Router) -> Client {
        Client {
            router,
            jar: BTreeMap::new(),
        }
    }

    /// The same cookies, on another function's router.
    fn on(&self, router: axum::Router) -> Client {
        Client {
            router,
            jar: self.jar.clone(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, headers: &http::HeaderMap) {
        for set in headers.get_all(http::header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn json(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let cookie = self.cookie_header();
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if !cookie.is_empty() {
            headers.push(("cookie", &cookie));
        }
        let (status, answer_headers, answer) =
            call(&self.router, method, path, &headers, body).await;
        self.keep(&answer_headers);
        (status, answer)
    }

    async fn page(
        &mut self,
        method: &str,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> (StatusCode, String) {
        let cookie = self.cookie_header();
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if !cookie.is_empty() {
            headers.push(("cookie", &cookie));
        }
        let body = form.map(|fields| {
            let csrf = self.jar.get("csrf").cloned().unwrap_or_default();
            let mut all = vec![("csrf", csrf.as_str())];
            all.extend_from_slice(fields);
            (
                "application/x-www-form-urlencoded",
                serde_urlencoded::to_string(&all).unwrap(),
            )
        });
        let (status, answer_headers, text) =
            call_text(&self.router, method, path, &headers, body).await;
        self.keep(&answer_headers);
        (status, text)
    }
}

fn key_header() -> (&'static str, String) {
    ("authorization", format!("Bearer {}", World::demo_key()))
}

const PASSWORD: &str = "payer password 123";

/// A card saved by the client's payer through save-method, with a mandate when `authority`.
async fn save_card(world: &World, payer: &mut Client, number: &str, authority: bool) -> String {
    save_card_expiring(world, payer, number, authority, (12, 2030)).await
}

async fn save_card_expiring(
    world: &World,
    payer: &mut Client,
    number: &str,
    authority: bool,
    (month, year): (u8, u16),
) -> String {
    acting_as("setup").await;
    let token = world.card_token_expiring(number, month, year).await;
    acting_as("save-method").await;
    let (_, terms) = payer
        .json(
            "GET",
            "/api/me/orgs/demo/methods/terms?kind=card",
            &[],
            None,
        )
        .await;
    let mut body = json!({"token": token, "kind": "card"});
    if authority {
        body["mandate"] = json!({"signer_name": "Pat Lee", "terms_version": terms["version"]});
    }
    let (status, method) = payer
        .json(
            "POST",
            "/api/me/orgs/demo/methods",
            &[("idempotency-key", &format!("save-{number}-{authority}"))],
            Some(body),
        )
        .await;
    assert!(status.is_success(), "{method}");
    method["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn each_role_allows_what_its_function_calls_and_no_more() {
    let world = recorded_world().await;
    let s = world.services.clone();
    let admin_router = web::admin::router(s.clone());
    let pay_now_router = web::pay_now::router(s.clone());
    let invite_router = web::invite::router(s.clone());
    let accept_router = web::accept::router(s.clone());
    let portal_router = web::portal::router(s.clone());
    let methods_router = web::methods::router(s.clone());
    let webhook_router = web::webhook::router(s.clone());
    let anet_router = web::anet_proxy::router(s.clone());
    let (auth, key) = key_header();
    let api_key: [(&str, &str); 1] = [(auth, key.as_str())];

    // ---- every function's cold start: runtime::services resolves the sealing key, which the
    // template gives as SEALING_KEY_CIPHERTEXT: one KMS Decrypt (runtime::sealing_key).
    let (kms, sealing_config) = sealing_key_in_moto().await;
    for function in [
        "admin",
        "pay-now",
        "invite",
        "accept-invite",
        "portal",
        "save-method",
        "webhook",
        "auto-pay-tick",
        "anet-proxy",
    ] {
        acting_as(function).await;
        let key = runtime::sealing_key(&kms, &sealing_config).await.unwrap();
        assert!(key.is_some(), "{function}: no sealing key");
    }
    acting_as("setup").await;

    // Setup: invoices, and Pat, a payer of demo for cust-1 (invited and accepted).
    world.add_invoice("demo", "INV-1", "120.00").await;
    world.add_invoice("demo", "INV-2", "80.00").await;
    world.add_invoice("demo", "INV-3", "45.00").await;
    world.add_invoice("demo", "INV-4", "60.00").await;
    world.add_invoice("demo", "INV-6", "75.00").await;
    world.add_invoice("demo", "INV-7", "90.00").await;
    world.add_invoice("demo", "INV-8", "35.00").await;
    let pat_cookie = world
        .payer("demo", "pat@harbor.test", &["cust-1"], PASSWORD)
        .await;
    world.rotate_webhook_secret("demo", None).await;

    // ---- invite: the invitations API.
    acting_as("invite").await;
    let mut invite = Client::new(invite_router.clone());
    let (status, sent) = invite
        .json(
            "POST",
            "/api/orgs/demo/invitations",
            &api_key,
            Some(json!({"email": "sam@harbor.test", "name": "Sam Ng", "customer_ids": ["cust-1"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let sam_invitation = sent["id"].as_str().unwrap().to_owned();
    let (status, _) = invite
        .json("GET", "/api/orgs/demo/invitations", &api_key, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = invite
        .json(
            "POST",
            &format!("/api/orgs/demo/invitations/{sam_invitation}/resend"),
            &api_key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, dropped) = invite
        .json(
            "POST",
            "/api/orgs/demo/invitations",
            &api_key,
            Some(json!({"email": "lee@harbor.test", "name": "Lee", "customer_ids": ["cust-1"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!(
        "/api/orgs/demo/invitations/{}",
        dropped["id"].as_str().unwrap()
    );
    let (status, _) = invite.json("DELETE", &path, &api_key, None).await;
    assert!(status.is_success(), "{status}");

    // ---- accept-invite: the link, the page, the form; the API for a second person.
    acting_as("setup").await;
    let link = world.link_in_mail("sam@harbor.test").await;
    acting_as("accept-invite").await;
    let mut sam = Client::new(accept_router.clone());
    let (status, _) = sam.page("GET", &link, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, page) = sam.page("GET", "/invite", None).await;
    assert_eq!(status, StatusCode::OK, "{page:.300}");
    let (status, page) = sam
        .page(
            "POST",
            "/invite",
            Some(&[
                ("name", "Sam Ng"),
                ("password", PASSWORD),
                ("accept_terms", "on"),
            ]),
        )
        .await;
    assert!(status.is_success(), "{status} {page:.300}");
    acting_as("setup").await;
    let (status, _, _) = call(
        &world.local_router(),
        "POST",
        "/api/orgs/demo/invitations",
        &api_key,
        Some(json!({"email": "kim@harbor.test", "name": "Kim", "customer_ids": ["cust-2"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let kim_link = world.link_in_mail("kim@harbor.test").await;
    acting_as("accept-invite").await;
    let mut kim = Client::new(accept_router.clone());
    let token = kim_link.trim_start_matches("/invite/");
    let (status, me) = kim
        .json(
            "POST",
            "/api/invitations/accept",
            &[],
            Some(
                json!({"token": token, "name": "Kim", "password": PASSWORD, "accept_terms": true}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{me}");

    // ---- save-method: Pat saves cards (one with the authority to charge it later), lists,
    // renames, makes one the default, removes one; the methods page and its form.
    acting_as("save-method").await;
    let mut pat = Client::new(methods_router.clone());
    pat.jar.extend(
        pat_cookie
            .split("; ")
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let card = save_card(&world, &mut pat, "4242424242424242", true).await;
    // A card that expires within 30 days: the tick tells Pat.
    let _expiring = save_card_expiring(&world, &mut pat, "378282246310005", true, (12, 2026)).await;
    let spare = save_card(&world, &mut pat, "5555555555554444", false).await;
    let (status, _) = pat
        .json("GET", "/api/me/orgs/demo/methods", &[], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, renamed) = pat
        .json(
            "PATCH",
            &format!("/api/me/orgs/demo/methods/{spare}"),
            &[],
            Some(json!({"nickname": "spare", "make_default": true})),
        )
        .await;
    assert!(status.is_success(), "{renamed}");
    let (status, _) = pat.page("GET", "/portal/orgs/demo/methods", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = pat
        .page(
            "POST",
            &format!("/portal/orgs/demo/methods/{card}/default"),
            Some(&[]),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, removed) = pat
        .json(
            "DELETE",
            &format!("/api/me/orgs/demo/methods/{spare}"),
            &[],
            None,
        )
        .await;
    assert!(status.is_success(), "{removed}");
    let gone = save_card(&world, &mut pat, "4000000000009995", false).await;
    let (status, _) = pat
        .page(
            "POST",
            &format!("/portal/orgs/demo/methods/{gone}/remove"),
            Some(&[]),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // ---- admin (first part): enrols cust-1 in auto-pay for Pat, then ends it (Pat enrols
    // again below, and the tick keeps that one).
    acting_as("admin").await;
    let mut org = Client::new(admin_router.clone());
    let (status, answer) = org
        .json("PUT", "/api/orgs/demo/autopay/cust-1", &api_key, Some(json!({"payer_email": "pat@harbor.test", "method_id": card, "rule": {"kind": "on_due_date"}, "locked": true})))
        .await;
    assert!(status.is_success(), "{status} {answer}");
    let (status, answer) = org
        .json("DELETE", "/api/orgs/demo/autopay/cust-1", &api_key, None)
        .await;
    assert!(status.is_success(), "{status} {answer}");

    // ---- portal: sign in (a failure first), who am I, schedules, auto-pay, the pages.
    acting_as("portal").await;
    let mut portal = Client::new(portal_router.clone());
    let (status, _) = portal
        .json(
            "POST",
            "/api/login",
            &[],
            Some(json!({"email": "pat@harbor.test", "password": "not it at all"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = portal
        .json(
            "POST",
            "/api/login",
            &[],
            Some(json!({"email": "pat@harbor.test", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = portal.json("GET", "/api/me", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, made) = portal
        .json(
            "POST",
            "/api/me/orgs/demo/schedules",
            &[],
            Some(json!({"invoice_number": "INV-1", "method_id": card, "date": "2026-11-30"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (status, other) = portal
        .json(
            "POST",
            "/api/me/orgs/demo/schedules",
            &[],
            Some(json!({"invoice_number": "INV-3", "method_id": card, "date": "2026-12-01"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let (status, kept) = portal
        .json(
            "POST",
            "/api/me/orgs/demo/schedules",
            &[],
            Some(json!({"invoice_number": "INV-6", "method_id": card, "date": "2026-11-30"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{kept}");
    let (status, _) = portal
        .json("GET", "/api/me/orgs/demo/schedules", &[], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let path = format!(
        "/api/me/orgs/demo/schedules/{}",
        other["id"].as_str().unwrap()
    );
    let (status, cancelled) = portal.json("DELETE", &path, &[], None).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    let (status, _) = portal
        .json("GET", "/api/me/orgs/demo/autopay/cust-1", &[], None)
        .await;
    assert!(
        status == StatusCode::OK || status == StatusCode::NOT_FOUND,
        "{status}"
    );
    let (status, enrolled) = portal
        .json(
            "PUT",
            "/api/me/orgs/demo/autopay/cust-1",
            &[],
            Some(json!({"method_id": card, "rule": {"kind": "on_due_date"}})),
        )
        .await;
    assert!(status.is_success(), "{status} {enrolled}");
    let (status, _) = portal
        .json("GET", "/api/me/orgs/demo/autopay/cust-1", &[], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = portal.page("GET", "/login", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "signed in already");
    let (status, _) = portal.page("GET", "/account", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = portal.json("POST", "/api/logout", &[], None).await;
    assert!(status.is_success());
    let (status, _) = portal.page("GET", "/login", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = portal
        .page(
            "POST",
            "/login",
            Some(&[
                ("email", "pat@harbor.test"),
                ("password", PASSWORD),
                ("next", "/account"),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = portal.page("POST", "/logout", Some(&[])).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // Kim turns two-factor sign-in on (an email), signs in with a recovery code (the second
    // step), turns it off again (an email) and signs out everywhere.
    let mut kim = Client::new(portal_router.clone());
    let login = json!({"email": "kim@harbor.test", "password": PASSWORD});
    let (status, _) = kim
        .json("POST", "/api/login", &[], Some(login.clone()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, started) = kim.json("POST", "/api/me/two-factor", &[], None).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let key = domain::totp::base32_decode(started["secret"].as_str().unwrap()).unwrap();
    let step = domain::totp::step_at(world.services.clock.now().unix_timestamp());
    let code = json!({"code": domain::totp::code_at(&key, step)});
    let (status, confirmed) = kim
        .json("POST", "/api/me/two-factor/confirm", &[], Some(code))
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let recovery = confirmed["recovery_codes"].as_array().unwrap().clone();
    let (status, _) = kim.json("GET", "/api/me/two-factor", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let mut kim = Client::new(portal_router.clone());
    let (status, _) = kim.json("POST", "/api/login", &[], Some(login)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the second step");
    let (status, _) = kim
        .json(
            "POST",
            "/api/login/two-factor",
            &[],
            Some(json!({"code": recovery[0]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = kim
        .json(
            "POST",
            "/api/me/two-factor/disable",
            &[],
            Some(json!({"current_password": PASSWORD, "code": recovery[1]})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = kim.json("POST", "/api/logout-everywhere", &[], None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // ---- pay-now: the page, a guest's card payment, a declined one, a signed-in payer's
    // saved card (which cancels INV-1's schedule), the receipt, the Xero entry, the assets.
    acting_as("pay-now").await;
    let mut guest = Client::new(pay_now_router.clone());
    let (status, _) = guest.json("GET", "/api/pay/demo/INV-2", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = guest.page("GET", "/pay/demo/INV-2", None).await;
    assert_eq!(status, StatusCode::OK);
    acting_as("setup").await;
    let declined = world.card_token("4000000000000002").await;
    let good = world.card_token("4242424242424242").await;
    acting_as("pay-now").await;
    let (status, _) = guest
        .json(
            "POST",
            "/api/pay/demo/INV-2",
            &[("idempotency-key", "guest-declined")],
            Some(json!({"token": declined})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    let (status, paid) = guest
        .json(
            "POST",
            "/api/pay/demo/INV-2",
            &[("idempotency-key", "guest-paid")],
            Some(json!({"token": good, "email": "ap@harbor.test"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    let payment = paid["id"].as_str().unwrap().to_owned();
    let (status, _) = guest
        .json(
            "POST",
            "/api/pay/demo/INV-2",
            &[("idempotency-key", "guest-paid")],
            Some(json!({"token": good, "email": "ap@harbor.test"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "a replay");
    let (status, _) = guest
        .page("GET", &format!("/pay/demo/INV-2/receipts/{payment}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = guest
        .page("GET", "/pay/demo/xero?invoice=INV-4", None)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    for asset in [
        "paybridge.css",
        "pay.js",
        "details.js",
        "methods.js",
        "gateway-stripe.js",
        "gateway-authorize-net.js",
    ] {
        let (status, _) = guest.page("GET", &format!("/assets/{asset}"), None).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
    }
    let (status, _) = guest.page("GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut payer = pat.on(pay_now_router.clone());
    let (status, _) = payer.page("GET", "/pay/demo/INV-1", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, saved_paid) = payer
        .json(
            "POST",
            "/api/pay/demo/INV-1",
            &[("idempotency-key", "pat-saved")],
            Some(json!({"method_id": card})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{saved_paid}");

    // ---- anet-proxy (ConnectWise's portal): a credential issued and listed through the admin
    // API; a legacy AIM post that pays INV-7, a JSON createTransactionRequest declined and then
    // one that pays INV-8, sent twice (a replay by its refId), a wrong credential (counted), an
    // authenticateTestRequest; the receipts and events in the same requests. The credential is
    // revoked through the admin API at the end.
    acting_as("admin").await;
    let mut cw_admin = Client::new(admin_router.clone());
    let (status, issued) = cw_admin
        .json(
            "POST",
            "/api/orgs/demo/anet-credentials",
            &api_key,
            Some(json!({"label": "ConnectWise portal"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let login = issued["api_login_id"].as_str().unwrap().to_owned();
    let tran_key = issued["transaction_key"].as_str().unwrap().to_owned();
    let (status, listed) = cw_admin
        .json("GET", "/api/orgs/demo/anet-credentials", &api_key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    acting_as("anet-proxy").await;
    let aim = serde_urlencoded::to_string([
        ("x_login", login.as_str()),
        ("x_tran_key", tran_key.as_str()),
        ("x_version", "3.1"),
        ("x_type", "AUTH_CAPTURE"),
        ("x_method", "CC"),
        ("x_amount", "90.00"),
        ("x_card_num", "4242424242424242"),
        ("x_exp_date", "12/30"),
        ("x_card_code", "123"),
        ("x_invoice_num", "INV-7"),
        ("x_email", "ap@harbor.test"),
        ("x_delim_data", "TRUE"),
        ("x_delim_char", "|"),
        ("x_relay_response", "FALSE"),
    ])
    .unwrap();
    let (status, _, line) = call_text(
        &anet_router,
        "POST",
        "/anet/demo/gateway/transact.dll",
        &[],
        Some(("application/x-www-form-urlencoded", aim)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{line}");
    assert!(line.starts_with("1|"), "AIM approved: {line}");
    let anet_json = |body: Value| {
        let router = anet_router.clone();
        async move {
            let (status, _, text) = call_text(
                &router,
                "POST",
                "/anet/demo/xml/v1/request.api",
                &[],
                Some(("application/json", body.to_string())),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{text}");
            serde_json::from_str::<Value>(text.trim_start_matches('\u{feff}')).unwrap()
        }
    };
    let sale = |key: &str, ref_id: &str, card: &str| {
        json!({"createTransactionRequest": {
            "merchantAuthentication": {"name": login, "transactionKey": key},
            "refId": ref_id,
            "transactionRequest": {
                "transactionType": "authCaptureTransaction",
                "amount": "35.00",
                "payment": {"creditCard": {"cardNumber": card, "expirationDate": "2030-12", "cardCode": "123"}},
                "order": {"invoiceNumber": "INV-8", "description": "ConnectWise invoice"},
                "customer": {"email": "ap@harbor.test"}
            }
        }})
    };
    let declined = anet_json(sale(&tran_key, "cw-1", "4000000000000002")).await;
    assert_eq!(
        declined["transactionResponse"]["responseCode"], "2",
        "{declined}"
    );
    let paid = anet_json(sale(&tran_key, "cw-2", "4242424242424242")).await;
    assert_eq!(paid["transactionResponse"]["responseCode"], "1", "{paid}");
    let replayed = anet_json(sale(&tran_key, "cw-2", "4242424242424242")).await;
    assert_eq!(replayed, paid, "a replay by its refId");
    let wrong = anet_json(sale("0000000000000000", "cw-3", "4242424242424242")).await;
    assert_eq!(wrong["messages"]["message"][0]["code"], "E00007", "{wrong}");
    let test = anet_json(json!({"authenticateTestRequest": {"merchantAuthentication": {"name": login, "transactionKey": tran_key}}})).await;
    assert_eq!(test["messages"]["resultCode"], "Ok", "{test}");
    acting_as("admin").await;
    let (status, revoked) = cw_admin
        .json(
            "DELETE",
            &format!("/api/orgs/demo/anet-credentials/{login}"),
            &api_key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{revoked}");

    // ---- admin: the org's API with its key, the Payer Admin pages with the admin's session.
    acting_as("admin").await;
    let (status, _) = org
        .json("POST", "/api/orgs/demo/invoices", &api_key, Some(json!({"invoice_number": "INV-9", "customer_id": "cust-1", "customer_name": "Harbor Dental", "total": "10.00", "issue_date": "2026-11-26", "due_date": "2026-12-26"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for path in [
        "/api/orgs/demo/invoices/INV-9".to_owned(),
        "/api/orgs/demo/payments".to_owned(),
        format!("/api/orgs/demo/payments/{payment}/history"),
        "/api/orgs/demo/settings".to_owned(),
        "/api/orgs/demo/mandates".to_owned(),
        "/api/orgs/demo/webhook-secrets".to_owned(),
        "/api/orgs/demo/gateway".to_owned(),
    ] {
        let (status, answer) = org.json("GET", &path, &api_key, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    }
    let (status, _) = org
        .json(
            "PATCH",
            "/api/orgs/demo/settings",
            &api_key,
            Some(json!({"allow_partial": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = org
        .json(
            "POST",
            "/api/orgs/demo/webhook-secrets/rotate",
            &api_key,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, answer) = org
        .json(
            "PUT",
            "/api/orgs/demo/gateway",
            &api_key,
            Some(json!({"gateway": "sandbox"})),
        )
        .await;
    assert!(status.is_success(), "{answer}");
    let (status, answer) = org
        .json("POST", "/api/orgs/demo/gateway/test", &api_key, None)
        .await;
    assert!(status.is_success(), "{answer}");
    acting_as("setup").await;
    let (status, headers, _) = call(
        &world.local_router(),
        "POST",
        "/api/login",
        &[],
        Some(json!({"email": "admin@demo.test", "password": "a long enough password"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let admin_cookie = cookies(&headers);
    acting_as("admin").await;
    let mut boss = Client::new(admin_router.clone());
    boss.jar.extend(
        admin_cookie
            .split("; ")
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let (status, page) = boss.page("GET", "/admin/demo/payers", None).await;
    assert_eq!(status, StatusCode::OK, "{page:.300}");
    let (status, _) = boss
        .page(
            "POST",
            "/admin/demo/payers/invitations",
            Some(&[
                ("email", "jo@harbor.test"),
                ("name", "Jo"),
                ("customer_ids", "cust-1"),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    acting_as("setup").await;
    let list = world
        .services
        .invitations
        .list_invitations(&domain::OrgSlug::parse("demo").unwrap())
        .await
        .unwrap();
    let jo = list
        .iter()
        .find(|i| i.email.as_str() == "jo@harbor.test")
        .unwrap()
        .id
        .clone();
    acting_as("admin").await;
    for action in ["resend", "revoke"] {
        let (status, _) = boss
            .page(
                "POST",
                &format!("/admin/demo/payers/invitations/{jo}/{action}"),
                Some(&[]),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{action}");
    }
    let (status, _) = org.json("GET", "/api/openapi.json", &[], None).await;
    assert_eq!(status, StatusCode::OK);

    // ---- webhook: a bank payment settles, then returns (the balance comes back); the
    // receipt, notices and events after the answer.
    acting_as("setup").await;
    let bank = world.bank_token("000123456789", "Pat Lee").await;
    let (status, _, bank_paid) = call(
        &world.local_router(),
        "POST",
        "/api/pay/demo/INV-4",
        &[("idempotency-key", "bank")],
        Some(json!({"token": bank, "email": "ap@harbor.test"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{bank_paid}");
    let bank_payment = bank_paid["id"].as_str().unwrap().to_owned();
    let charge = world
        .sandbox()
        .charges(100)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.reference == bank_payment)
        .unwrap()
        .charge_id;
    for kind in ["charge.settled", "charge.returned"] {
        acting_as("setup").await;
        let signed = world
            .sandbox_events()
            .event(&gateways::sandbox_events::EventRequest {
                charge_id: charge.clone(),
                kind: kind.into(),
                event_id: None,
                amount: None,
            })
            .await
            .unwrap();
        acting_as("webhook").await;
        let body = String::from_utf8(signed.body.clone()).unwrap();
        let (status, _, answer) = call_text(
            &webhook_router,
            "POST",
            &signed.path,
            &[("paybridge-signature", &signed.signature)],
            Some(("application/json", body)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{kind}: {answer}");
        // The effects after the answer run in the webhook function.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        acting_as("setup").await;
        world.follow_ups_done().await;
    }

    // ---- auto-pay-tick: the enrolment looks for new invoices, advance notices, the charge of
    // a due schedule, card expiry notices on the day's first tick, webhook follow-ups.
    acting_as("setup").await;
    world.add_invoice("demo", "INV-5", "30.00").await;
    acting_as("auto-pay-tick").await;
    for at in [
        datetime!(2026-11-26 13:00 UTC),
        datetime!(2026-11-27 06:05 UTC),
        datetime!(2026-11-30 06:05 UTC),
        datetime!(2026-12-26 06:05 UTC),
    ] {
        world.set_now(at);
        let report = runtime::run_one_tick(&world.services, at, None)
            .await
            .unwrap();
        eprintln!("tick at {at}: {report:?}");
    }
    acting_as("done").await;

    // ---- What each role allows against what each function did.
    let t = template();
    let calls = CALLS.lock().unwrap().clone();
    let mut problems = Vec::new();
    let mut report = String::new();
    for f in functions(&t) {
        let statements = role_statements(&t, &f.role);
        let did: BTreeSet<(String, String)> = calls
            .iter()
            .filter(|(function, ..)| *function == f.binary)
            .map(|(_, a, r)| (a.clone(), r.clone()))
            .collect();
        assert!(!did.is_empty(), "{}: the journey made no call", f.binary);
        report.push_str(&format!("{}:\n", f.binary));
        for (action, resource) in &did {
            report.push_str(&format!("  {action} on {resource}\n"));
            if !allowed(&statements, action, resource) {
                problems.push(format!(
                    "{} calls {action} on {resource}; {} does not allow it",
                    f.binary, f.role
                ));
            }
        }
        for (action, resource) in granted(&statements) {
            let used = did.contains(&(action.clone(), resource.clone()));
            let excused = NOT_EXERCISED
                .iter()
                .any(|(fun, a, r, _)| *fun == f.binary && *a == action && *r == resource);
            if !used && !excused {
                problems.push(format!(
                    "{} allows {action} on {resource}, which {} never called here (remove it, or say why in NOT_EXERCISED)",
                    f.role, f.binary
                ));
            }
        }
    }
    eprintln!("{report}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Whether the statements allow a recorded call (mail and events by their own resources; the
/// sealing key's decryption only with the encryption context app=paybridge, which the
/// recorder checked on the call).
fn allowed(statements: &[Statement], action: &str, resource: &str) -> bool {
    match action {
        "kms:Decrypt" => statements.iter().any(|s| {
            s.actions.iter().any(|a| a == action)
                && s.resources.iter().any(|r| r == resource)
                && s.condition["StringEquals"]["kms:EncryptionContext:app"] == "paybridge"
        }),
        "ses:SendEmail" => statements.iter().any(|s| {
            s.actions.iter().any(|a| a == action)
                && s.resources.iter().any(|r| r.contains(":identity/"))
                && s.resources
                    .iter()
                    .any(|r| r.contains(":configuration-set/"))
        }),
        _ => paybridge_deploy::allows(statements, action, resource),
    }
}

/// The (action, resource) pairs a role grants for the application's own calls: DynamoDB, SES,
/// EventBridge and KMS used directly (the sealing key); logs, KMS through DynamoDB or SQS and
/// the dead-letter queue are checked apart.
fn granted(statements: &[Statement]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in statements {
        let via_a_service = !s.condition["StringEquals"]["kms:ViaService"].is_null();
        for action in &s.actions {
            if action.starts_with("dynamodb:") || (action.starts_with("kms:") && !via_a_service) {
                for r in &s.resources {
                    out.push((action.clone(), r.clone()));
                }
            } else if action == "ses:SendEmail" {
                out.push((action.clone(), "identity and configuration set".into()));
            } else if action == "events:PutEvents" {
                for r in &s.resources {
                    out.push((action.clone(), r.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn every_role_names_its_resources_and_uses_the_key_only_through_its_services() {
    let t = template();
    for f in functions(&t) {
        for s in role_statements(&t, &f.role) {
            for action in &s.actions {
                assert!(!action.contains('*'), "{}: {action}", f.role);
            }
            for r in &s.resources {
                assert!(
                    r != "*" && !r.is_empty(),
                    "{}: a resource for {:?}",
                    f.role,
                    s.actions
                );
            }
            if s.actions.iter().any(|a| a.starts_with("kms:")) {
                let via = s.condition["StringEquals"]["kms:ViaService"]["Fn::Sub"]
                    .as_str()
                    .unwrap_or_default();
                // Or the sealing key itself: Decrypt only, with app=paybridge only.
                let sealing = s.actions == ["kms:Decrypt"]
                    && s.resources == ["SealingKmsKey"]
                    && s.condition
                        == json!({"StringEquals": {"kms:EncryptionContext:app": "paybridge"}});
                assert!(
                    via.starts_with("dynamodb.") || via.starts_with("sqs.") || sealing,
                    "{}: the stack's key only through DynamoDB or SQS, the sealing key only to decrypt with app=paybridge: {s:?}",
                    f.role
                );
            }
            if s.actions.iter().any(|a| a.starts_with("logs:")) {
                assert_eq!(
                    s.resources,
                    vec![f.log_group.clone()],
                    "{}: its own log group",
                    f.role
                );
            }
        }
    }
}

#[test]
fn only_the_functions_decrypt_the_sealing_data_key_and_only_with_its_context() {
    let t = template();
    let key = properties(&t, "SealingKmsKey");
    assert_eq!(key["EnableKeyRotation"], true);
    assert_eq!(key["KeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(t["Resources"]["SealingKmsKey"]["DeletionPolicy"], "Retain");
    let statements = key["KeyPolicy"]["Statement"].as_array().unwrap();
    // The account administers it; the functions' roles only decrypt, with app=paybridge.
    let admin = &statements[0];
    assert_eq!(admin["Action"], "kms:*");
    assert!(
        admin["Principal"]["AWS"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .ends_with(":root")
    );
    let roles: BTreeSet<String> = functions(&t).into_iter().map(|f| f.role).collect();
    let decrypt = &statements[1];
    assert_eq!(decrypt["Action"], "kms:Decrypt");
    assert_eq!(
        decrypt["Condition"],
        json!({"StringEquals": {"kms:EncryptionContext:app": "paybridge"}})
    );
    let named: BTreeSet<String> = decrypt["Principal"]["AWS"]
        .as_array()
        .unwrap()
        .iter()
        .map(paybridge_deploy::resource_name)
        .collect();
    assert_eq!(named, roles, "the key's policy names every function's role");
    assert_eq!(statements.len(), 2, "nobody else");
    // Every function is given the ciphertext and the key (one environment, in Globals).
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(
        env["SEALING_KEY_CIPHERTEXT"],
        json!({"Ref": "SealingKeyCiphertext"})
    );
    assert_eq!(
        env["SEALING_KMS_KEY_ID"],
        json!({"Fn::GetAtt": ["SealingKmsKey", "Arn"]})
    );
}
