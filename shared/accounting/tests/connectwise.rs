//! The ConnectWise Manage adapter against the ConnectWise double: reads, paging, PDFs,
//! write-back (once, through 500s, 429s and timeouts), reversals, refused keys; payments of
//! several invoices posted part by part and reversed whole.

use std::time::{Duration, Instant};

use accounting::connectwise::{self, ConnectWiseAccounting, ConnectWiseCredentials};
use app::ports::{
    Accounting, AccountingConfig, ConnectionCheck, PaymentPosting, PaymentReversal, Posted,
};
use devtools::connectwise_double::{ConnectWiseDouble, CwInvoice, Fault, Route};
use domain::{
    Allocation, Currency, CustomerId, InvoiceNumber, InvoiceStatus, Money, OrgSlug, PaymentId,
    Secret,
};
use time::macros::date;

const COMPANY: &str = "acmemsp";
const PUBLIC: &str = "pubKEY123";
const PRIVATE: &str = "privSECRET456";
const CLIENT_ID: &str = "3c5b3b6e-0000-4000-8000-000000000001";

fn org() -> OrgSlug {
    OrgSlug::parse("acme").unwrap()
}

fn usd(s: &str) -> Money {
    Money::parse(s, Currency::Usd).unwrap()
}

fn number(s: &str) -> InvoiceNumber {
    InvoiceNumber::parse(s).unwrap()
}

fn credentials(double: &ConnectWiseDouble) -> ConnectWiseCredentials {
    ConnectWiseCredentials {
        site: double.url(),
        codebase: double.codebase(),
        company: COMPANY.to_owned(),
        public_key: PUBLIC.to_owned(),
        private_key: PRIVATE.to_owned(),
        client_id: CLIENT_ID.to_owned(),
        currency: None,
    }
}

fn config(creds: &ConnectWiseCredentials) -> AccountingConfig {
    AccountingConfig {
        system: connectwise::NAME.to_owned(),
        credentials: Secret::new(serde_json::to_string(creds).unwrap()),
        version: 1,
        updated_at: time::OffsetDateTime::UNIX_EPOCH,
    }
}

fn adapter_with(
    double: &ConnectWiseDouble,
    http: reqwest::Client,
    edit: impl FnOnce(&mut ConnectWiseCredentials),
) -> ConnectWiseAccounting {
    let mut creds = credentials(double);
    edit(&mut creds);
    ConnectWiseAccounting::new(http, org(), &config(&creds)).unwrap()
}

fn adapter(double: &ConnectWiseDouble) -> ConnectWiseAccounting {
    adapter_with(double, accounting::http::http_client(), |_| {})
}

fn invoice(number: &str, company_id: u64, total: &str, balance: &str) -> CwInvoice {
    CwInvoice {
        number: number.to_owned(),
        company_id,
        company_name: if company_id == 250 {
            "Acme Dental".to_owned()
        } else {
            format!("Company {company_id}")
        },
        total: total.to_owned(),
        balance: balance.to_owned(),
        currency: Some("USD".to_owned()),
        date: date!(2026 - 11 - 01),
        due_date: date!(2026 - 12 - 01),
    }
}

/// A double with the member's keys and invoice INV1001 (1234.50 of 1500.00 left, company 250).
async fn setup() -> (ConnectWiseDouble, u64) {
    let double = ConnectWiseDouble::start().await;
    double.add_member(COMPANY, PUBLIC, PRIVATE);
    let id = double.add_invoice(invoice("INV1001", 250, "1500.00", "1234.50"));
    (double, id)
}

fn posting(invoice: &str, amount: &str) -> PaymentPosting {
    PaymentPosting {
        org: org(),
        payment: PaymentId::from_ulid("01JCW0000000000000000000AA").unwrap(),
        invoice: number(invoice),
        amount: usd(amount),
        allocations: Vec::new(),
        surcharge: usd("3.00"),
        paid_on: date!(2026 - 11 - 15),
        reference: "Paybridge pay_01JCW0000000000000000000AA visa 4242".to_owned(),
    }
}

fn reversal(remote_id: &str, amount: &str) -> PaymentReversal {
    PaymentReversal {
        org: org(),
        payment: PaymentId::from_ulid("01JCW0000000000000000000AA").unwrap(),
        remote_id: remote_id.to_owned(),
        id: "rev_1".to_owned(),
        amount: usd(amount),
        on: date!(2026 - 11 - 20),
    }
}

fn remote_id(posted: &Posted) -> String {
    match posted {
        Posted::Recorded { remote_id } => remote_id.clone(),
        other => panic!("expected Recorded, got {other:?}"),
    }
}

#[tokio::test]
async fn reads_an_invoice_with_its_exact_balance_and_company() {
    let (double, _) = setup().await;
    let cw = adapter(&double);
    let read = cw
        .read_invoice(&org(), &number("INV1001"))
        .await
        .unwrap()
        .expect("the invoice");
    assert_eq!(read.ledger_version, None);
    let invoice = read.invoice;
    assert_eq!(invoice.number.as_str(), "INV1001");
    assert_eq!(invoice.amount_due, usd("1234.50"));
    assert_eq!(invoice.total, usd("1500.00"));
    assert_eq!(invoice.customer_id.as_str(), "250");
    assert_eq!(invoice.customer_name, "Acme Dental");
    assert_eq!(invoice.status, InvoiceStatus::Open);
    assert_eq!(invoice.issue_date, date!(2026 - 11 - 01));
    assert_eq!(invoice.due_date, date!(2026 - 12 - 01));
    assert!(cw.writes_back(&org()).await.unwrap());

    double.set_balance("INV1001", "0");
    let paid = cw.read_invoice(&org(), &number("INV1001")).await.unwrap();
    assert_eq!(paid.unwrap().invoice.status, InvoiceStatus::Paid);

    double.set_balance("INV1001", "10.00");
    double.set_status("INV1001", "Voided");
    let void = cw.read_invoice(&org(), &number("INV1001")).await.unwrap();
    assert_eq!(void.unwrap().invoice.status, InvoiceStatus::Void);
}

#[tokio::test]
async fn an_invoice_without_a_currency_is_in_the_connections_default() {
    let (double, _) = setup().await;
    double.add_invoice(CwInvoice {
        currency: None,
        ..invoice("AU-7", 250, "99.95", "99.95")
    });
    let cw = adapter_with(&double, accounting::http::http_client(), |c| {
        c.currency = Some("AUD".to_owned());
    });
    let read = cw.read_invoice(&org(), &number("AU-7")).await.unwrap();
    assert_eq!(
        read.unwrap().invoice.amount_due,
        Money::parse("99.95", Currency::Aud).unwrap()
    );
    // The invoice's own currency wins.
    let usd_invoice = cw.read_invoice(&org(), &number("INV1001")).await.unwrap();
    assert_eq!(usd_invoice.unwrap().invoice.amount_due, usd("1234.50"));
}

#[tokio::test]
async fn an_unknown_invoice_is_none() {
    let (double, _) = setup().await;
    let cw = adapter(&double);
    assert_eq!(
        cw.read_invoice(&org(), &number("INV9999")).await.unwrap(),
        None
    );
    assert_eq!(
        cw.invoice_pdf(&org(), &number("INV9999")).await.unwrap(),
        None
    );
    assert_eq!(double.calls("invoiceNumber%3D%22INV9999%22"), 2);
}

#[tokio::test]
async fn wrong_keys_are_an_error_and_a_refused_connection() {
    let (double, _) = setup().await;
    let good = adapter(&double);
    assert_eq!(
        good.test_connection(&org()).await.unwrap(),
        ConnectionCheck::Accepted
    );
    assert_eq!(double.calls("GET /system/info"), 1);

    let bad = adapter_with(&double, accounting::http::http_client(), |c| {
        c.private_key = "wrong".to_owned();
    });
    let err = bad
        .read_invoice(&org(), &number("INV1001"))
        .await
        .unwrap_err();
    assert!(err.0.contains("401"), "{err}");
    assert!(!err.0.contains(PRIVATE) && !err.0.contains("wrong"));
    match bad.test_connection(&org()).await.unwrap() {
        ConnectionCheck::Refused(why) => {
            assert!(why.starts_with("ConnectWise refused the API keys"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    let posted = bad.post_payment(&posting("INV1001", "10.00")).await;
    assert!(posted.is_err(), "{posted:?}");
    assert!(double.payments().is_empty());
}

#[tokio::test]
async fn a_missing_client_id_is_caught() {
    let (double, _) = setup().await;
    // The settings need one.
    let mut creds = credentials(&double);
    creds.client_id = " ".to_owned();
    let err = ConnectWiseAccounting::new(accounting::http::http_client(), org(), &config(&creds))
        .unwrap_err();
    assert!(err.0.contains("client_id"), "{err}");
    let err = ConnectWiseAccounting::new(
        accounting::http::http_client(),
        org(),
        &AccountingConfig {
            credentials: Secret::new(format!("{{\"site\":\"{}\"}}", double.url())),
            ..config(&credentials(&double))
        },
    )
    .unwrap_err();
    assert!(err.0.contains("client_id"), "{err}");

    // And ConnectWise (the double) answers a request without one with a 400 in its shape.
    let response = reqwest::Client::new()
        .get(format!(
            "{}/{}apis/3.0/system/info",
            double.url(),
            double.codebase()
        ))
        .basic_auth(format!("{COMPANY}+{PUBLIC}"), Some(PRIVATE))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], "BadRequest");
    assert!(body["message"].as_str().unwrap().contains("clientId"));
}

#[tokio::test]
async fn open_invoices_of_a_company_across_pages() {
    let (double, _) = setup().await;
    double.add_invoice(invoice("INV1002", 250, "200.00", "200.00"));
    double.add_invoice(invoice("INV1003", 250, "80.00", "0"));
    double.add_invoice(invoice("INV1004", 300, "75.00", "75.00"));
    double.add_invoice(invoice("INV1005", 250, "45.10", "45.10"));
    let cw = adapter(&double).with_page_size(2);
    let open = cw
        .open_invoices(&org(), &CustomerId::parse("250").unwrap())
        .await
        .unwrap();
    let numbers: Vec<&str> = open.iter().map(|i| i.number.as_str()).collect();
    assert_eq!(numbers, ["INV1001", "INV1002", "INV1005"]);
    assert_eq!(open[2].amount_due, usd("45.10"));
    assert!(open.iter().all(|i| i.customer_id.as_str() == "250"));
    assert_eq!(double.calls("page=1&pageSize=2"), 1);
    assert_eq!(double.calls("page=2&pageSize=2"), 1);
    assert_eq!(double.calls("page=3"), 0);
    // Not a ConnectWise company id: nothing, without a call.
    let none = cw
        .open_invoices(&org(), &CustomerId::parse("C-1").unwrap())
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn the_invoice_pdf() {
    let (double, id) = setup().await;
    let cw = adapter(&double);
    let pdf = cw
        .invoice_pdf(&org(), &number("INV1001"))
        .await
        .unwrap()
        .expect("a PDF");
    assert!(pdf.starts_with(b"%PDF"));
    assert!(String::from_utf8_lossy(&pdf).contains("INV1001"));
    assert_eq!(double.calls(&format!("GET /finance/invoices/{id}/pdf")), 1);
}

#[tokio::test]
async fn a_posting_is_written_once_and_a_replay_finds_it() {
    let (double, id) = setup().await;
    let cw = adapter(&double);
    let first = cw
        .post_payment(&posting("INV1001", "234.50"))
        .await
        .unwrap();
    let remote = remote_id(&first);
    let payments = double.payments();
    assert_eq!(payments.len(), 1);
    let p = &payments[0];
    assert_eq!(remote, format!("{id}/{}", p.id));
    // The invoice amount only: the surcharge goes to the gateway, not to ConnectWise.
    assert_eq!(p.amount, "234.50");
    assert_eq!(p.payment_type, "Payment");
    assert_eq!(p.payment_date, "2026-11-15T00:00:00Z");
    assert_eq!(p.invoice_id, id);
    assert_eq!(double.balance("INV1001").as_deref(), Some("1000.00"));

    let replay = cw
        .post_payment(&posting("INV1001", "234.50"))
        .await
        .unwrap();
    assert_eq!(remote_id(&replay), remote);
    assert_eq!(double.payments().len(), 1);
    assert_eq!(double.calls("POST /finance/invoices"), 1);
    assert_eq!(double.balance("INV1001").as_deref(), Some("1000.00"));
}

#[tokio::test]
async fn a_500_is_an_error_a_429_is_later_then_it_posts_once() {
    let (double, _) = setup().await;
    let cw = adapter(&double);
    let p = posting("INV1001", "100.00");

    double.fail_next(Route::PaymentPost, vec![Fault::Status(500)]);
    let err = cw.post_payment(&p).await.unwrap_err();
    assert!(err.0.contains("500"), "{err}");

    double.fail_next(
        Route::PaymentPost,
        vec![Fault::RateLimited {
            retry_after_secs: 30,
        }],
    );
    match cw.post_payment(&p).await.unwrap() {
        Posted::Later { after, .. } => assert_eq!(after, Duration::from_secs(30)),
        other => panic!("{other:?}"),
    }

    // Rate limited on the look before the write: later too.
    double.fail_next(
        Route::Payments,
        vec![Fault::RateLimited {
            retry_after_secs: 45,
        }],
    );
    assert!(matches!(
        cw.post_payment(&p).await.unwrap(),
        Posted::Later { after, .. } if after == Duration::from_secs(45)
    ));

    remote_id(&cw.post_payment(&p).await.unwrap());
    assert_eq!(double.payments().len(), 1);
    assert_eq!(double.balance("INV1001").as_deref(), Some("1134.50"));
}

#[tokio::test]
async fn more_than_the_balance_is_refused_with_connectwises_words() {
    let (double, _) = setup().await;
    let cw = adapter(&double);
    match cw
        .post_payment(&posting("INV1001", "1234.51"))
        .await
        .unwrap()
    {
        Posted::Refused(why) => assert!(why.contains("balance"), "{why}"),
        other => panic!("{other:?}"),
    }
    double.set_status("INV1001", "Void");
    assert!(matches!(
        cw.post_payment(&posting("INV1001", "10.00")).await.unwrap(),
        Posted::Refused(_)
    ));
    assert!(matches!(
        cw.post_payment(&posting("INV404", "10.00")).await.unwrap(),
        Posted::Refused(_)
    ));
    assert!(double.payments().is_empty());
    assert_eq!(double.balance("INV1001").as_deref(), Some("1234.50"));
}

#[tokio::test]
async fn a_reversal_deletes_the_payment_and_restores_the_balance() {
    let (double, _) = setup().await;
    let cw = adapter(&double);
    let remote = remote_id(
        &cw.post_payment(&posting("INV1001", "234.50"))
            .await
            .unwrap(),
    );
    assert_eq!(double.balance("INV1001").as_deref(), Some("1000.00"));

    // ConnectWise deletes whole payments: a partial one is left to the bookkeeper.
    assert!(matches!(
        cw.reverse_payment(&reversal(&remote, "34.50"))
            .await
            .unwrap(),
        Posted::Refused(_)
    ));
    assert_eq!(double.payments().len(), 1);

    let reversed = cw
        .reverse_payment(&reversal(&remote, "234.50"))
        .await
        .unwrap();
    assert_eq!(remote_id(&reversed), remote);
    assert!(double.payments().is_empty());
    assert_eq!(double.balance("INV1001").as_deref(), Some("1234.50"));

    let again = cw
        .reverse_payment(&reversal(&remote, "234.50"))
        .await
        .unwrap();
    assert_eq!(remote_id(&again), remote);
    assert_eq!(double.calls("DELETE /finance/invoices"), 1);
    assert_eq!(double.balance("INV1001").as_deref(), Some("1234.50"));

    assert!(matches!(
        cw.reverse_payment(&reversal("ledger", "1.00"))
            .await
            .unwrap(),
        Posted::Refused(_)
    ));
}

#[tokio::test]
async fn a_slow_connectwise_is_an_error_and_a_timed_out_write_is_not_repeated() {
    let (double, _) = setup().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let cw = adapter_with(&double, http, |_| {});

    double.fail_next(
        Route::Invoices,
        vec![Fault::Delay(Duration::from_millis(1500))],
    );
    let started = Instant::now();
    let err = cw
        .read_invoice(&org(), &number("INV1001"))
        .await
        .unwrap_err();
    assert!(err.0.contains("in time"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));

    // The write was done but its answer came too late: the next try finds it.
    double.fail_next(
        Route::PaymentPost,
        vec![Fault::Delay(Duration::from_millis(600))],
    );
    assert!(cw.post_payment(&posting("INV1001", "50.00")).await.is_err());
    tokio::time::sleep(Duration::from_millis(400)).await;
    remote_id(&cw.post_payment(&posting("INV1001", "50.00")).await.unwrap());
    assert_eq!(double.payments().len(), 1);
    assert_eq!(double.calls("POST /finance/invoices"), 1);
}

#[tokio::test]
async fn reads_wait_out_a_short_rate_limit_once() {
    let (double, _) = setup().await;
    let cw = adapter(&double);
    double.fail_next(
        Route::Invoices,
        vec![Fault::RateLimited {
            retry_after_secs: 1,
        }],
    );
    let read = cw.read_invoice(&org(), &number("INV1001")).await.unwrap();
    assert_eq!(read.unwrap().invoice.amount_due, usd("1234.50"));
    assert_eq!(double.calls("GET /finance/invoices?"), 2);

    // Twice in a row, or a long wait: try again shortly.
    double.fail_next(
        Route::Invoices,
        vec![
            Fault::RateLimited {
                retry_after_secs: 0,
            },
            Fault::RateLimited {
                retry_after_secs: 0,
            },
        ],
    );
    assert!(cw.read_invoice(&org(), &number("INV1001")).await.is_err());
    double.fail_next(
        Route::Invoices,
        vec![Fault::RateLimited {
            retry_after_secs: 60,
        }],
    );
    assert!(cw.read_invoice(&org(), &number("INV1001")).await.is_err());
    double.fail_next(Route::Any, vec![Fault::Status(503)]);
    assert!(cw.test_connection(&org()).await.is_err());
}

#[tokio::test]
async fn one_connection_serves_one_org() {
    let (double, _) = setup().await;
    let cw = adapter(&double);
    let other = OrgSlug::parse("globex").unwrap();
    assert!(cw.read_invoice(&other, &number("INV1001")).await.is_err());
    let mut p = posting("INV1001", "10.00");
    p.org = other;
    assert!(cw.post_payment(&p).await.is_err());
    assert!(double.payments().is_empty());
}

/// One payment of several invoices: `parts` are (invoice, amount), the first the posting's
/// invoice, the amount their sum.
fn split_posting(parts: &[(&str, &str)]) -> PaymentPosting {
    let allocations: Vec<Allocation> = parts
        .iter()
        .map(|(invoice, amount)| Allocation {
            invoice: number(invoice),
            amount: usd(amount),
        })
        .collect();
    let amount = Money::sum(Currency::Usd, allocations.iter().map(|a| a.amount)).unwrap();
    PaymentPosting {
        amount,
        allocations,
        ..posting(parts[0].0, "0.01")
    }
}

fn posts_to(double: &ConnectWiseDouble, invoice_id: u64) -> usize {
    double.calls(&format!("POST /finance/invoices/{invoice_id}/payments"))
}

#[tokio::test]
async fn a_payment_of_two_invoices_is_posted_to_each_and_found_again() {
    let (double, first) = setup().await;
    let second = double.add_invoice(invoice("INV1002", 250, "200.00", "200.00"));
    let cw = adapter(&double);
    let p = split_posting(&[("INV1001", "234.50"), ("INV1002", "100.00")]);

    let remote = remote_id(&cw.post_payment(&p).await.unwrap());
    let payments = double.payments();
    assert_eq!(payments.len(), 2);
    assert_eq!(
        remote,
        format!("{first}/{}+{second}/{}", payments[0].id, payments[1].id)
    );
    assert_eq!(
        (payments[0].invoice_id, payments[0].amount.as_str()),
        (first, "234.50")
    );
    assert_eq!(
        (payments[1].invoice_id, payments[1].amount.as_str()),
        (second, "100.00")
    );
    assert!(
        payments
            .iter()
            .all(|p| p.payment_date == "2026-11-15T00:00:00Z")
    );
    assert_eq!(double.balance("INV1001").as_deref(), Some("1000.00"));
    assert_eq!(double.balance("INV1002").as_deref(), Some("100.00"));

    // Posted again (the runner's retry after a lost answer): both parts are found.
    assert_eq!(remote_id(&cw.post_payment(&p).await.unwrap()), remote);
    assert_eq!(double.payments().len(), 2);
    assert_eq!(double.calls("POST /finance/invoices"), 2);
}

#[tokio::test]
async fn a_posting_of_one_allocation_has_the_single_invoice_remote_id() {
    let (double, id) = setup().await;
    let cw = adapter(&double);
    let remote = remote_id(
        &cw.post_payment(&split_posting(&[("INV1001", "34.50")]))
            .await
            .unwrap(),
    );
    let payments = double.payments();
    assert_eq!(remote, format!("{id}/{}", payments[0].id));
    assert!(!remote.contains('+'));
}

#[tokio::test]
async fn a_rate_limit_on_the_second_part_is_later_and_the_retry_posts_only_the_rest() {
    let (double, first) = setup().await;
    let second = double.add_invoice(invoice("INV1002", 250, "200.00", "200.00"));
    let cw = adapter(&double);
    let p = split_posting(&[("INV1001", "234.50"), ("INV1002", "200.00")]);

    double.fail_next(
        Route::PaymentPostTo(second),
        vec![Fault::RateLimited {
            retry_after_secs: 30,
        }],
    );
    match cw.post_payment(&p).await.unwrap() {
        Posted::Later { after, .. } => assert_eq!(after, Duration::from_secs(30)),
        other => panic!("{other:?}"),
    }
    assert_eq!(double.payments().len(), 1);
    assert_eq!(double.balance("INV1001").as_deref(), Some("1000.00"));
    assert_eq!(double.balance("INV1002").as_deref(), Some("200.00"));

    let remote = remote_id(&cw.post_payment(&p).await.unwrap());
    let payments = double.payments();
    assert_eq!(payments.len(), 2);
    assert_eq!(
        remote,
        format!("{first}/{}+{second}/{}", payments[0].id, payments[1].id)
    );
    assert_eq!(posts_to(&double, first), 1);
    assert_eq!(posts_to(&double, second), 2); // the 429, then the post
    assert_eq!(double.balance("INV1001").as_deref(), Some("1000.00"));
    assert_eq!(double.balance("INV1002").as_deref(), Some("0.00"));
}

#[tokio::test]
async fn a_lost_answer_on_the_second_part_is_found_by_the_retry() {
    let (double, first) = setup().await;
    let second = double.add_invoice(invoice("INV1002", 250, "200.00", "200.00"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let cw = adapter_with(&double, http, |_| {});
    let p = split_posting(&[("INV1001", "234.50"), ("INV1002", "200.00")]);

    double.fail_next(
        Route::PaymentPostTo(second),
        vec![Fault::Delay(Duration::from_millis(600))],
    );
    assert!(cw.post_payment(&p).await.is_err());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(double.payments().len(), 2);

    let remote = remote_id(&cw.post_payment(&p).await.unwrap());
    assert_eq!(remote.split('+').count(), 2);
    assert_eq!(double.payments().len(), 2);
    assert_eq!(
        (posts_to(&double, first), posts_to(&double, second)),
        (1, 1)
    );
}

#[tokio::test]
async fn a_part_connectwise_cannot_take_is_refused_by_its_invoice() {
    let (double, _) = setup().await;
    double.add_invoice(CwInvoice {
        currency: Some("EUR".to_owned()),
        ..invoice("EU-1", 250, "50.00", "50.00")
    });
    let cw = adapter(&double);

    // Checked before anything is written.
    for (parts, named) in [
        (
            [("INV1001", "100.00"), ("INV404", "10.00")],
            "invoice INV404 is not in ConnectWise",
        ),
        (
            [("INV1001", "100.00"), ("EU-1", "10.00")],
            "invoice EU-1 is in EUR, the payment in USD",
        ),
    ] {
        match cw.post_payment(&split_posting(&parts)).await.unwrap() {
            Posted::Refused(why) => assert_eq!(why, named),
            other => panic!("{other:?}"),
        }
    }
    assert!(double.payments().is_empty());
    assert_eq!(double.calls("POST /finance/invoices"), 0);

    // Parts that do not add up never reach ConnectWise.
    let mut odd = split_posting(&[("INV1001", "100.00"), ("INV1002", "10.00")]);
    odd.amount = usd("100.00");
    match cw.post_payment(&odd).await.unwrap() {
        Posted::Refused(why) => assert!(why.contains("do not add up"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(double.calls("INV1002"), 0);
}

#[tokio::test]
async fn a_refused_second_part_names_its_invoice_and_what_stays_posted_and_the_retry_finishes() {
    let (double, first) = setup().await;
    let second = double.add_invoice(invoice("INV1002", 250, "200.00", "200.00"));
    let cw = adapter(&double);
    let p = split_posting(&[("INV1001", "234.50"), ("INV1002", "200.00")]);

    // The first part goes in, the second waits; then the invoice is voided in ConnectWise.
    double.fail_next(
        Route::PaymentPostTo(second),
        vec![Fault::RateLimited {
            retry_after_secs: 5,
        }],
    );
    assert!(matches!(
        cw.post_payment(&p).await.unwrap(),
        Posted::Later { .. }
    ));
    double.set_status("INV1002", "Void");
    let posted = double.payments()[0].clone();
    match cw.post_payment(&p).await.unwrap() {
        Posted::Refused(why) => assert_eq!(
            why,
            format!(
                "invoice INV1002: Payments cannot be applied to a voided invoice (InvalidObject). \
                 Already posted to ConnectWise: invoice INV1001 (234.50) as payment {first}/{}; \
                 a retry posts only the invoices not there yet",
                posted.id
            )
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(double.payments(), vec![posted.clone()]);

    // The bookkeeper reopens it; the admin's retry posts the second part only.
    double.set_status("INV1002", "New");
    let remote = remote_id(&cw.post_payment(&p).await.unwrap());
    let payments = double.payments();
    assert_eq!(payments.len(), 2);
    assert_eq!(
        remote,
        format!("{first}/{}+{second}/{}", posted.id, payments[1].id)
    );
    assert_eq!(posts_to(&double, first), 1);
    assert_eq!(double.balance("INV1002").as_deref(), Some("0.00"));
}

#[tokio::test]
async fn a_reversal_of_several_parts_deletes_each_even_across_a_rate_limit() {
    let (double, _) = setup().await;
    double.add_invoice(invoice("INV1002", 250, "200.00", "200.00"));
    let cw = adapter(&double);
    let p = split_posting(&[("INV1001", "234.50"), ("INV1002", "200.00")]);
    let remote = remote_id(&cw.post_payment(&p).await.unwrap());

    // Less than what is posted: refused before anything is deleted.
    match cw
        .reverse_payment(&reversal(&remote, "234.50"))
        .await
        .unwrap()
    {
        Posted::Refused(why) => assert!(why.contains("434.50"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(double.payments().len(), 2);
    assert_eq!(double.calls("DELETE"), 0);

    // Two looks and the first delete go through; the second delete is rate limited.
    double.fail_next(
        Route::Payments,
        vec![
            Fault::Delay(Duration::ZERO),
            Fault::Delay(Duration::ZERO),
            Fault::Delay(Duration::ZERO),
            Fault::RateLimited {
                retry_after_secs: 5,
            },
        ],
    );
    assert!(matches!(
        cw.reverse_payment(&reversal(&remote, "434.50"))
            .await
            .unwrap(),
        Posted::Later { .. }
    ));
    assert_eq!(double.payments().len(), 1);

    let reversed = cw
        .reverse_payment(&reversal(&remote, "434.50"))
        .await
        .unwrap();
    assert_eq!(remote_id(&reversed), remote);
    assert!(double.payments().is_empty());
    assert_eq!(double.balance("INV1001").as_deref(), Some("1234.50"));
    assert_eq!(double.balance("INV1002").as_deref(), Some("200.00"));

    // Again: every part is gone already, which counts as reversed.
    let again = cw
        .reverse_payment(&reversal(&remote, "434.50"))
        .await
        .unwrap();
    assert_eq!(remote_id(&again), remote);
    assert_eq!(double.calls("DELETE /finance/invoices"), 3);

    let bad = format!("{remote}+ledger");
    assert!(matches!(
        cw.reverse_payment(&reversal(&bad, "434.50")).await.unwrap(),
        Posted::Refused(_)
    ));
}

#[tokio::test]
async fn an_invoice_gone_after_part_of_its_payment_was_posted_is_refused_and_nothing_reposted() {
    let (double, first) = setup().await;
    let second = double.add_invoice(invoice("INV1002", 250, "200.00", "200.00"));
    let cw = adapter(&double);
    let p = split_posting(&[("INV1001", "234.50"), ("INV1002", "200.00")]);
    double.fail_next(
        Route::PaymentPostTo(second),
        vec![Fault::RateLimited {
            retry_after_secs: 5,
        }],
    );
    assert!(matches!(
        cw.post_payment(&p).await.unwrap(),
        Posted::Later { .. }
    ));
    let posted = double.payments()[0].clone();

    double.remove_invoice("INV1002");
    for _ in 0..2 {
        match cw.post_payment(&p).await.unwrap() {
            Posted::Refused(why) => assert_eq!(
                why,
                format!(
                    "invoice INV1002 is not in ConnectWise. Already posted to ConnectWise: \
                     invoice INV1001 (234.50) as payment {first}/{}; a retry posts only the \
                     invoices not there yet",
                    posted.id
                )
            ),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(double.payments(), vec![posted]);
    assert_eq!(posts_to(&double, first), 1);
}
