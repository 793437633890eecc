//! Bench: what each store operation costs against DynamoDB Local, over the real SDK.
//! Prints, per operation: DynamoDB calls, read and write capacity units (ReturnConsumedCapacity)
//! and latency percentiles.
//!
//!   cargo run -p paybridge-tests --bin bench --release -- [ITERATIONS] [SCENARIO-FILTER]
//!
//! Latency here is loopback to DynamoDB Local, a lower bound of nothing in AWS; the calls and
//! capacity units are what AWS bills. A conditional write that is refused costs write units in
//! AWS too, but DynamoDB returns no ConsumedCapacity with the error, so those show 0 here.

use std::future::Future;
use std::time::{Duration, Instant};

use app::idempotency::{IdempotencyKey, StoredResponse};
use app::payments::Payment;
use app::ports::*;
use app::system::{FixedClock, RandomIds};
use domain::*;
use store::{Store, Usage};
use time::{OffsetDateTime, macros::datetime};

const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

struct Row {
    name: &'static str,
    runs: usize,
    usage: Usage,
    latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

impl Row {
    fn print(&mut self) {
        self.latencies.sort();
        let per = |x: f64| x / self.runs as f64;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<34} {:>5} {:>7.2} {:>7.2} {:>7.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            self.name,
            self.runs,
            per(self.usage.calls as f64),
            per(self.usage.read_units),
            per(self.usage.write_units),
            ms(percentile(&self.latencies, 0.50)),
            ms(percentile(&self.latencies, 0.90)),
            ms(percentile(&self.latencies, 0.99)),
            ms(*self.latencies.last().unwrap()),
        );
    }
}

/// Runs `op(i)` for i in 0..runs, one at a time, metering only the operation itself.
async fn measure<F, Fut>(store: &Store, name: &'static str, runs: usize, mut op: F) -> Row
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut latencies = Vec::with_capacity(runs);
    let mut usage = Usage::default();
    for i in 0..runs {
        let before = store.usage();
        let started = Instant::now();
        op(i).await;
        latencies.push(started.elapsed());
        let spent = store.usage().since(before);
        usage.calls += spent.calls;
        usage.read_units += spent.read_units;
        usage.write_units += spent.write_units;
    }
    Row {
        name,
        runs,
        usage,
        latencies,
    }
}

fn user(i: usize) -> User {
    User {
        id: UserId::from_ulid(&ulid::Ulid::new().to_string()).unwrap(),
        email: Email::parse(&format!("person{i}@bench.test")).unwrap(),
        name: "Bench Person".into(),
        password_hash: Some(Secret::new(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        )),
        created_at: NOW,
        two_factor: false,
    }
}

fn payment(i: usize, invoice: &str) -> Payment {
    Payment {
        id: PaymentId::from_ulid(&ulid::Ulid::new().to_string()).unwrap(),
        org: OrgSlug::parse("bench").unwrap(),
        invoice_number: InvoiceNumber::parse(invoice).unwrap(),
        customer_id: None,
        amount: Money::from_minor(100 + i as u64, Currency::Usd).unwrap(),
        allocations: Vec::new(),
        surcharge: Money::zero(Currency::Usd),
        status: PaymentStatus::Pending,
        gateway: "sandbox".into(),
        gateway_ref: Some(format!("ch_{i}")),
        method: None,
        failure: None,
        receipt_email: None,
        created_at: NOW,
        updated_at: NOW,
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let filter = args.next().unwrap_or_default();
    let store = devtools::test_store().await;
    let org = OrgSlug::parse("bench").unwrap();
    let response = StoredResponse {
        status: 201,
        content_type: "application/json".into(),
        body: br#"{"id":"pay_01JD8X3Q9M6V4W2K7T5R1N0P01","status":"succeeded","amount":{"amount":"12.34","currency":"USD"}}"#.to_vec(),
    };
    let key = |i: usize| IdempotencyKey::new("bench#pay-now", &format!("key-{i}")).unwrap();

    // Setup that the scenarios read.
    app::orgs::create_org(
        &store,
        &store,
        &FixedClock(NOW),
        &RandomIds,
        app::orgs::NewOrg {
            slug: org.clone(),
            name: "Bench".into(),
            settings: OrgSettings::default(),
            admin_email: Email::parse("admin@bench.test").unwrap(),
            admin_name: "Admin".into(),
            admin_password: Some(Secret::new("a long enough password".into())),
        },
    )
    .await
    .unwrap();
    let api_key =
        app::orgs::issue_api_key(&store, &FixedClock(NOW), &RandomIds, &org, "bench", None)
            .await
            .unwrap();
    for i in 0..30 {
        store.insert_payment(&payment(i, "INV-LIST")).await.unwrap();
    }

    println!("DynamoDB Local, {runs} runs per operation; per-operation averages, latency in ms");
    println!(
        "{:<34} {:>5} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8}",
        "operation", "runs", "calls", "RCU", "WCU", "p50", "p90", "p99", "max"
    );
    let mut rows = vec![
        measure(&store, "idempotency claim (fresh)", runs, |i| {
            let s = store.clone();
            async move {
                s.claim(&key(i), "hash", "pay_x", NOW).await.unwrap();
            }
        })
        .await,
        measure(&store, "idempotency complete", runs, |i| {
            let (s, r) = (store.clone(), response.clone());
            async move {
                s.complete(&key(i), "hash", &r, NOW).await.unwrap();
            }
        })
        .await,
        measure(&store, "idempotency replay (completed key)", runs, |i| {
            let s = store.clone();
            async move {
                s.claim(&key(i), "hash", "pay_y", NOW).await.unwrap();
            }
        })
        .await,
        measure(&store, "idempotency mismatch (422)", runs, |i| {
            let s = store.clone();
            async move {
                s.claim(&key(i), "other", "pay_y", NOW).await.unwrap();
            }
        })
        .await,
        measure(&store, "create user (+ email marker)", runs, |i| {
            let s = store.clone();
            async move {
                s.create_user(&user(i)).await.unwrap();
            }
        })
        .await,
        measure(&store, "create user, email taken", runs, |i| {
            let s = store.clone();
            async move {
                assert!(s.create_user(&user(i)).await.is_err());
            }
        })
        .await,
        measure(&store, "find user by email", runs, |i| {
            let s = store.clone();
            async move {
                s.find_user_by_email(&user(i).email).await.unwrap().unwrap();
            }
        })
        .await,
        measure(&store, "create org + first admin", runs, |i| {
            let s = store.clone();
            async move {
                let new = app::orgs::NewOrg {
                    slug: OrgSlug::parse(&format!("org-{i}")).unwrap(),
                    name: "Org".into(),
                    settings: OrgSettings::default(),
                    admin_email: Email::parse(&format!("person{i}@bench.test")).unwrap(),
                    admin_name: "Admin".into(),
                    admin_password: None,
                };
                app::orgs::create_org(&s, &s, &FixedClock(NOW), &RandomIds, new)
                    .await
                    .unwrap();
            }
        })
        .await,
        measure(&store, "authenticate API key", runs, |_| {
            let (s, k) = (store.clone(), api_key.secret.expose().clone());
            async move {
                app::orgs::authenticate_api_key(&s, &k)
                    .await
                    .unwrap()
                    .unwrap();
            }
        })
        .await,
        measure(&store, "add ledger invoice", runs, |i| {
            let s = store.clone();
            let org = org.clone();
            async move {
                let new = app::ledger::NewInvoice {
                    invoice_number: format!("INV-{i}"),
                    customer_id: "c1".into(),
                    customer_name: "Customer".into(),
                    total: "500.00".into(),
                    currency: None,
                    issue_date: NOW.date(),
                    due_date: NOW.date(),
                };
                app::ledger::add_invoice(&s, &FixedClock(NOW), &org, Currency::Usd, &new)
                    .await
                    .unwrap();
            }
        })
        .await,
        measure(&store, "get ledger invoice", runs, |i| {
            let s = store.clone();
            let org = org.clone();
            async move {
                s.get_invoice(&org, &InvoiceNumber::parse(&format!("INV-{i}")).unwrap())
                    .await
                    .unwrap()
                    .unwrap();
            }
        })
        .await,
        measure(&store, "insert payment (pending)", runs, |i| {
            let s = store.clone();
            async move {
                s.insert_payment(&payment(i, &format!("INV-{i}")))
                    .await
                    .unwrap();
            }
        })
        .await,
        measure(&store, "list payments (page of 25)", runs, |_| {
            let s = store.clone();
            let org = org.clone();
            async move {
                assert_eq!(
                    s.list_payments(&org, 25, None).await.unwrap().items.len(),
                    25
                );
            }
        })
        .await,
    ];
    rows.extend(guest_payment(&store, runs).await);
    rows.push(payer_admin_page(&store, runs).await);
    rows.extend(saved_methods(&store, runs).await);
    rows.extend(webhooks(&store, runs).await);
    rows.extend(books_and_search(&store, runs).await);
    let ticks = if "tick-due".contains(filter.as_str()) || filter.starts_with("tick") {
        vec![
            tick_due(20).await,
            tick_due(200).await,
            tick_due(1000).await,
        ]
    } else {
        Vec::new()
    };
    for row in rows.iter_mut().filter(|r| r.name.contains(&filter)) {
        row.print();
    }
    for line in ticks {
        println!("{line}");
    }
}

/// `tick-due-N`: one tick over N due schedules (each its own invoice, one saved card) among
/// 10,000 not yet due, on a table of its own: items read per due schedule, DynamoDB calls and
/// capacity per schedule, schedules per second.
async fn tick_due(due: usize) -> String {
    let world = paybridge_tests::World::new().await;
    let cookie = world
        .payer("demo", "pat@harbor.test", &["cust-1"], "bench password 123")
        .await;
    let token = world.card_token("4242424242424242").await;
    let body = serde_json::json!({"token": token, "kind": "card", "mandate": {"signer_name": "Pat", "terms_version": app::methods::TERMS_VERSION}});
    let (_, _, method) = paybridge_tests::call(
        &world.local_router(),
        "POST",
        "/api/me/orgs/demo/methods",
        &[("cookie", &cookie)],
        Some(body),
    )
    .await;
    let method = method["id"].as_str().unwrap().to_owned();
    let user = world
        .services
        .users
        .find_user_by_email(&Email::parse("pat@harbor.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    let at = NOW;
    for i in 0..due {
        let invoice = format!("T-{i}");
        world.add_invoice("demo", &invoice, "10.00").await;
        let x = Schedule {
            id: ScheduleId::from_ulid(&ulid::Ulid::new().to_string()).unwrap(),
            org: OrgSlug::parse("demo").unwrap(),
            user: user.id.clone(),
            invoice: InvoiceNumber::parse(&invoice).unwrap(),
            customer: CustomerId::parse("cust-1").unwrap(),
            method: MethodId::parse(&method).unwrap(),
            secondary: None,
            amount: None,
            run_on: at.date(),
            due_at: at,
            enrolment: None,
            state: ScheduleState::Scheduled,
            attempts: 0,
            on_secondary: false,
            payment: None,
            outcome: None,
            notice_at: None,
            version: 0,
            created_at: at,
            updated_at: at,
        };
        world.services.schedules.create_schedule(&x).await.unwrap();
    }
    paybridge_tests::load_future_schedules(&world, &method, at, 10_000).await;
    let before = world.store.usage();
    let started = std::time::Instant::now();
    let report = app::schedules::tick(&world.services, at, None)
        .await
        .unwrap();
    let took = started.elapsed();
    let used = world.store.usage().since(before);
    assert_eq!(report.paid as usize, due, "{report:?}");
    let per = |x: f64| x / due as f64;
    format!(
        "tick-due-{due}: {due} paid in {:.0} ms = {:.0} schedules/s; items read per due schedule {:.2}; per schedule {:.1} calls, {:.1} RCU, {:.1} WCU (10,000 not due alongside)",
        took.as_secs_f64() * 1000.0,
        due as f64 / took.as_secs_f64(),
        per(report.items_read as f64),
        per(used.calls as f64),
        per(used.read_units),
        per(used.write_units),
    )
}

/// A guest opens the Pay Now page of a ledger invoice, then pays it in full through the pay-now
/// router with a receipt address, from a client address: Paybridge's own calls (the sandbox
/// gateway stands in for an external gateway, and the local outbox for SES and EventBridge;
/// both are metered apart).
async fn guest_payment(store: &Store, runs: usize) -> [Row; 2] {
    use std::sync::Arc;
    let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
    let ids: Arc<dyn Ids> = Arc::new(RandomIds);
    let sandbox =
        gateways::SandboxGateway::new(store.separately_metered(), clock.clone(), ids.clone());
    let gateway =
        gateways::SandboxGateway::new(store.separately_metered(), clock.clone(), ids.clone());
    let outbox = Arc::new(store::Outbox::new(store));
    let mut services = app::Services::over(store.clone(), Arc::new(gateway), outbox);
    services.clock = clock.clone();
    let router = web::pay_now::router(Arc::new(services));
    let org = OrgSlug::parse("bench").unwrap();
    let mut tokens = Vec::with_capacity(runs);
    for i in 0..runs {
        let new = app::ledger::NewInvoice {
            invoice_number: format!("G-{i}"),
            customer_id: "c1".into(),
            customer_name: "Customer".into(),
            total: "250.00".into(),
            currency: None,
            issue_date: NOW.date(),
            due_date: NOW.date(),
        };
        app::ledger::add_invoice(store, clock.as_ref(), &org, Currency::Usd, &new)
            .await
            .unwrap();
        let card = gateways::sandbox::TokenRequest::Card {
            card_number: "4242424242424242".into(),
            exp_month: 12,
            exp_year: 2030,
            cvc: "123".into(),
        };
        tokens.push(sandbox.tokenize(card).await.unwrap().token.expose().clone());
    }
    let page = measure(
        store,
        "Pay Now page (GET /pay/{org}/{invoice})",
        runs,
        |i| {
            let router = router.clone();
            async move {
                let path = format!("/pay/bench/G-{i}");
                let (status, _, _) = paybridge_tests::call(&router, "GET", &path, &[], None).await;
                assert_eq!(status, 200);
            }
        },
    )
    .await;
    let client: std::net::SocketAddr = "198.51.100.7:50000".parse().unwrap();
    let payment = measure(store, "guest payment (pay-now API)", runs, |i| {
        let router = router.clone();
        let token = tokens[i].clone();
        async move {
            let body = serde_json::json!({"token": token, "email": "payer@example.com"});
            let (status, _, _) = paybridge_tests::call_from(
                &router,
                Some(client),
                "POST",
                &format!("/api/pay/bench/G-{i}"),
                &[("idempotency-key", &format!("guest-{i}"))],
                Some(body),
            )
            .await;
            assert_eq!(status, 201);
        }
    })
    .await;
    [page, payment]
}

/// The bench org's admin, signed in, opens the Payer Admin page of an org with 10 people and 10
/// invitations: the session, the admin check, the org, the people with their names, the
/// invitations.
async fn payer_admin_page(store: &Store, runs: usize) -> Row {
    use std::sync::Arc;
    let outbox = Arc::new(store::Outbox::new(store));
    let gateway = Arc::new(gateways::SandboxGateway::new(
        store.separately_metered(),
        Arc::new(FixedClock(NOW)),
        Arc::new(RandomIds),
    ));
    let mut services = app::Services::over(store.clone(), gateway, outbox);
    services.clock = Arc::new(FixedClock(NOW));
    let services = Arc::new(services);
    let org = OrgSlug::parse("bench").unwrap();
    for i in 0..runs.min(9) {
        let id = store
            .find_user_by_email(&user(i).email)
            .await
            .unwrap()
            .expect("the bench created this person")
            .id;
        let customers = vec![CustomerId::parse("c1").unwrap()];
        app::orgs::add_member(store, &FixedClock(NOW), &id, &org, Role::Payer, customers)
            .await
            .unwrap();
    }
    for i in 0..10 {
        let command = app::invitations::InviteCommand {
            org: org.clone(),
            email: format!("invitee{i}@bench.test"),
            name: format!("Invitee {i}"),
            customer_ids: vec!["c1".into()],
            role: None,
            invited_by: None,
        };
        app::invitations::invite(&services, command).await.unwrap();
    }
    let admin = store
        .find_user_by_email(&Email::parse("admin@bench.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    let token = app::sessions::start_session(&services, &admin.id)
        .await
        .unwrap();
    let cookie = format!("session={}", token.expose());
    let router = web::admin::router(services);
    measure(store, "Payer Admin page (10 people, 10 inv.)", runs, |_| {
        let (router, cookie) = (router.clone(), cookie.clone());
        async move {
            let (status, _, page) = paybridge_tests::call_text(
                &router,
                "GET",
                "/admin/bench/payers",
                &[("cookie", &cookie)],
                None,
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(page.matches("data-invitation=").count(), 10);
            assert!(
                page.contains("person0@bench.test"),
                "the members are listed"
            );
        }
    })
    .await
}

/// A payer of the bench org saves a card (each run a new payer: the first save makes the
/// gateway customer too), then pays an invoice with it through the pay-now router, signed in,
/// then three invoices at once (`POST /api/me/orgs/{org}/payments`).
async fn saved_methods(store: &Store, runs: usize) -> [Row; 3] {
    use std::sync::Arc;
    let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
    let gateway = Arc::new(gateways::SandboxGateway::new(
        store.separately_metered(),
        clock.clone(),
        Arc::new(RandomIds),
    ));
    let mut services = app::Services::over(
        store.clone(),
        gateway.clone(),
        Arc::new(store::Outbox::new(store)),
    );
    services.clock = clock.clone();
    let services = Arc::new(services);
    let org = OrgSlug::parse("bench").unwrap();
    let mut payers = Vec::with_capacity(runs);
    for i in 0..runs {
        let payer = User {
            email: Email::parse(&format!("saver{i}@bench.test")).unwrap(),
            ..user(i)
        };
        store.create_user(&payer).await.unwrap();
        let customers = vec![CustomerId::parse("c1").unwrap()];
        app::orgs::add_member(
            store,
            clock.as_ref(),
            &payer.id,
            &org,
            Role::Payer,
            customers,
        )
        .await
        .unwrap();
        let card = gateways::sandbox::TokenRequest::Card {
            card_number: "4242424242424242".into(),
            exp_month: 12,
            exp_year: 2030,
            cvc: "123".into(),
        };
        let token = gateway.tokenize(card).await.unwrap().token;
        let session = app::sessions::start_session(&services, &payer.id)
            .await
            .unwrap();
        let new = app::ledger::NewInvoice {
            invoice_number: format!("S-{i}"),
            customer_id: "c1".into(),
            customer_name: "Customer".into(),
            total: "75.00".into(),
            currency: None,
            issue_date: NOW.date(),
            due_date: NOW.date(),
        };
        app::ledger::add_invoice(store, clock.as_ref(), &org, Currency::Usd, &new)
            .await
            .unwrap();
        for n in 1..=3 {
            let several = app::ledger::NewInvoice {
                invoice_number: format!("M-{i}-{n}"),
                ..new.clone()
            };
            app::ledger::add_invoice(store, clock.as_ref(), &org, Currency::Usd, &several)
                .await
                .unwrap();
        }
        payers.push((payer, token, session));
    }
    let method_ids = std::rc::Rc::new(std::cell::RefCell::new(vec![String::new(); runs]));
    let save = measure(store, "save a card (first, + customer)", runs, |i| {
        let (services, (payer, token, _)) = (services.clone(), payers[i].clone());
        let org = org.clone();
        let ids = method_ids.clone();
        async move {
            let command = app::methods::SaveCommand {
                org,
                user: payer,
                token,
                kind: "card".into(),
                make_default: false,
                nickname: None,
                mandate: None,
                client_ip: None,
                user_agent: None,
            };
            let saved = app::methods::save(&services, command).await.unwrap();
            ids.borrow_mut()[i] = saved.method.id.to_string();
        }
    })
    .await;
    let router = web::pay_now::router(services.clone());
    let pay = measure(store, "pay with a saved card (signed in)", runs, |i| {
        let router = router.clone();
        let cookie = format!("session={}", payers[i].2.expose());
        let body = serde_json::json!({"method_id": method_ids.borrow()[i]});
        async move {
            let (status, _, answer) = paybridge_tests::call(
                &router,
                "POST",
                &format!("/api/pay/bench/S-{i}"),
                &[
                    ("idempotency-key", &format!("saved-{i}")),
                    ("cookie", &cookie),
                ],
                Some(body),
            )
            .await;
            assert_eq!(status, 201, "{answer}");
        }
    })
    .await;
    let several = measure(store, "pay 3 invoices at once (saved card)", runs, |i| {
        let router = router.clone();
        let cookie = format!("session={}", payers[i].2.expose());
        let invoices: Vec<String> = (1..=3).map(|n| format!("M-{i}-{n}")).collect();
        let body = serde_json::json!({"invoices": invoices, "method_id": method_ids.borrow()[i]});
        async move {
            let (status, _, answer) = paybridge_tests::call(
                &router,
                "POST",
                "/api/me/orgs/bench/payments",
                &[
                    ("idempotency-key", &format!("several-{i}")),
                    ("cookie", &cookie),
                ],
                Some(body),
            )
            .await;
            assert_eq!(status, 201, "{answer}");
        }
    })
    .await;
    [save, pay, several]
}

/// Gateway webhooks through the webhook function's router (Paybridge's own calls; mail and
/// events go to the outbox, metered apart): a bank debit's settlement (the acknowledged write),
/// the same event delivered again, the settlement's effects delivered after the answer (the
/// receipt and `payment.settled`), and a settled debit's return (the ledger balance given
/// back in the same transaction).
async fn webhooks(store: &Store, runs: usize) -> [Row; 4] {
    use std::sync::Arc;
    let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
    let gateway = gateways::SandboxGateway::new(
        store.separately_metered(),
        clock.clone(),
        Arc::new(RandomIds),
    );
    let outbox = Arc::new(store::Outbox::new(store));
    let mut services = app::Services::over(store.clone(), Arc::new(gateway), outbox);
    services.clock = clock.clone();
    // Effects are measured on their own row, not inside the request's.
    services.follow_up_after_ack = false;
    let services = Arc::new(services);
    let org = OrgSlug::parse("bench").unwrap();
    let rotated = app::webhooks::rotate_secret(
        &services,
        app::webhooks::RotateCommand {
            org: org.clone(),
            gateway: None,
            secret: None,
            grace: None,
        },
    )
    .await
    .unwrap();
    let secret = rotated.secret.unwrap();
    let mut payments = Vec::with_capacity(runs);
    for i in 0..runs {
        let invoice = format!("W-{i}");
        let new = app::ledger::NewInvoice {
            invoice_number: invoice.clone(),
            customer_id: "c1".into(),
            customer_name: "Customer".into(),
            total: "250.00".into(),
            currency: None,
            issue_date: NOW.date(),
            due_date: NOW.date(),
        };
        app::ledger::add_invoice(store, clock.as_ref(), &org, Currency::Usd, &new)
            .await
            .unwrap();
        let mut p = payment(i, &invoice);
        p.gateway_ref = Some(format!("ch_webhook_{i}"));
        p.receipt_email = Some(Email::parse("payer@example.com").unwrap());
        p.method = Some(app::payments::MethodSummary {
            kind: "bank".into(),
            brand: "Sandbox Bank".into(),
            last4: "6789".into(),
        });
        store.insert_payment(&p).await.unwrap();
        payments.push(p);
    }
    let router = web::webhook::router(services.clone());
    let deliver = |i: usize, kind: &'static str, event: String| {
        let p = &payments[i];
        let body = serde_json::json!({
            "id": event, "object": "event", "type": kind, "created": NOW.unix_timestamp(),
            "data": {"object": {"id": p.gateway_ref, "object": "charge", "reference": p.id,
                                "amount": p.amount.minor(), "currency": "USD", "amount_refunded": 0}},
        })
        .to_string();
        let signature = gateways::signature::header_value(
            std::slice::from_ref(&secret),
            NOW.unix_timestamp(),
            body.as_bytes(),
        );
        let router = router.clone();
        async move {
            let (status, _, answer) = paybridge_tests::call_text(
                &router,
                "POST",
                "/webhooks/bench/sandbox",
                &[("paybridge-signature", &signature)],
                Some(("application/json", body)),
            )
            .await;
            assert_eq!(status, 200, "{answer}");
            answer
        }
    };
    let settle = measure(store, "webhook: settle a bank debit", runs, |i| {
        let sent = deliver(i, "charge.settled", format!("evt_settle_{i}"));
        async move {
            assert!(sent.await.contains("\"applied\""));
        }
    })
    .await;
    let again = measure(store, "webhook: same event again", runs, |i| {
        let sent = deliver(i, "charge.settled", format!("evt_settle_{i}"));
        async move {
            assert!(sent.await.contains("\"duplicate\""));
        }
    })
    .await;
    let effects = measure(store, "webhook: settle effects after ack", runs, |i| {
        let (s, id) = (services.clone(), payments[i].id.clone());
        let org = org.clone();
        async move {
            let key = FollowUpKey::Effects {
                org,
                id: format!("{id}#settled"),
            };
            let run = app::webhooks::run_follow_up(&s, &key).await.unwrap();
            assert_eq!(run, app::webhooks::FollowUpRun::Done);
        }
    })
    .await;
    let returned = measure(store, "webhook: return (balance restored)", runs, |i| {
        let sent = deliver(i, "charge.returned", format!("evt_return_{i}"));
        async move {
            assert!(sent.await.contains("\"applied\""));
        }
    })
    .await;
    [settle, again, effects, returned]
}

/// The write-back's bookkeeping per payment (queue, lease, progress, done: the accounting
/// system's own call is not DynamoDB's), and a payer's search: one customer's page of 20.
async fn books_and_search(store: &Store, runs: usize) -> Vec<Row> {
    let org = OrgSlug::parse("bench").unwrap();
    let books = |i: usize| Books {
        posting: PaymentPosting {
            org: org.clone(),
            payment: PaymentId::from_ulid(&ulid::Ulid::new().to_string()).unwrap(),
            invoice: InvoiceNumber::parse(&format!("INV-{i}")).unwrap(),
            amount: Money::from_minor(1000, Currency::Usd).unwrap(),
            allocations: Vec::new(),
            surcharge: Money::zero(Currency::Usd),
            paid_on: NOW.date(),
            reference: "Paybridge bench".into(),
        },
        posted: None,
        want_reversed: false,
        reversed: false,
        unprocessed: None,
        last_error: None,
        attempts: 0,
        queued_at: NOW,
        updated_at: NOW,
    };
    let write_back = measure(store, "write-back: queue, lease, post, close", runs, |i| {
        let s = store.clone();
        let mut b = books(i);
        async move {
            s.queue_books(&b, NOW).await.unwrap();
            let key = FollowUpKey::Books {
                org: b.posting.org.clone(),
                payment: b.posting.payment.clone(),
            };
            let lease = format!("l{i}");
            s.lease(&key, &lease, NOW, NOW + time::Duration::minutes(2))
                .await
                .unwrap()
                .expect("due");
            b.posted = Some("remote".into());
            s.books_progress(&b, &lease).await.unwrap();
            assert!(s.books_done(&b, Some(&lease), "posted", NOW).await.unwrap());
        }
    })
    .await;
    let customer = CustomerId::parse("c-bench").unwrap();
    for i in 0..50 {
        let mut p = payment(i, "INV-SEARCH");
        p.customer_id = Some(customer.clone());
        p.invoice_number = InvoiceNumber::parse(&format!("INV-S{i}")).unwrap();
        p.created_at = NOW + time::Duration::seconds(i as i64);
        store
            .begin_attempt(&p, NOW + time::Duration::minutes(1), NOW)
            .await
            .unwrap();
    }
    let search = measure(store, "a customer's payments (page of 20)", runs, |_| {
        let s = store.clone();
        let org = org.clone();
        let customer = customer.clone();
        async move {
            let page = s
                .customer_payments(
                    &org,
                    &customer,
                    OffsetDateTime::UNIX_EPOCH,
                    NOW + time::Duration::days(1),
                    None,
                    20,
                )
                .await
                .unwrap();
            assert_eq!(page.items.len(), 20);
        }
    })
    .await;
    vec![write_back, search]
}
