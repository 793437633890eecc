//! The Xero adapter against the in-process Xero double (`devtools::xero_double`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accounting::Endpoints;
use accounting::http::http_client;
use accounting::xero::{self, XeroAccounting, XeroCredentials};
use app::ports::{
    Accounting, AccountingConfig, AccountingConfigs, ConnectionCheck, PaymentPosting,
    PaymentReversal, Posted, StoreError,
};
use app::system::SystemClock;
use async_trait::async_trait;
use devtools::xero_double::{Fault, Route, XeroDouble, XeroInvoice};
use domain::{
    Allocation, Currency, CustomerId, InvoiceNumber, InvoiceStatus, Money, OrgSlug, PaymentId,
    Secret,
};
use time::OffsetDateTime;
use time::macros::date;

const CLIENT_ID: &str = "C0FFEE0000000000000000000000ABCD";
const CLIENT_SECRET: &str = "double-client-secret";
const CONTACT: &str = "a3675fc4-f8dd-4f03-ba5b-f1870566bcd7";

/// The accounting connections in memory: versions and the conditional token update as the
/// DynamoDB store has them.
#[derive(Default)]
struct MemoryConfigs {
    configs: Mutex<HashMap<OrgSlug, AccountingConfig>>,
}

impl MemoryConfigs {
    fn get(&self, org: &OrgSlug) -> AccountingConfig {
        self.configs.lock().unwrap()[org].clone()
    }
}

#[async_trait]
impl AccountingConfigs for MemoryConfigs {
    async fn put_accounting_config(
        &self,
        org: &OrgSlug,
        system: &str,
        credentials: &Secret<String>,
        now: OffsetDateTime,
    ) -> Result<AccountingConfig, StoreError> {
        let mut configs = self.configs.lock().unwrap();
        let version = configs.get(org).map_or(1, |c| c.version + 1);
        let config = AccountingConfig {
            system: system.to_owned(),
            credentials: credentials.clone(),
            version,
            updated_at: now,
        };
        configs.insert(org.clone(), config.clone());
        Ok(config)
    }

    async fn accounting_config(
        &self,
        org: &OrgSlug,
    ) -> Result<Option<AccountingConfig>, StoreError> {
        Ok(self.configs.lock().unwrap().get(org).cloned())
    }

    async fn delete_accounting_config(&self, org: &OrgSlug) -> Result<(), StoreError> {
        self.configs.lock().unwrap().remove(org);
        Ok(())
    }

    async fn update_accounting_credentials(
        &self,
        org: &OrgSlug,
        version: u64,
        credentials: &Secret<String>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut configs = self.configs.lock().unwrap();
        match configs.get_mut(org) {
            Some(c) if c.version == version => {
                c.credentials = credentials.clone();
                c.version += 1;
                c.updated_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

struct World {
    double: XeroDouble,
    endpoints: Endpoints,
    configs: Arc<MemoryConfigs>,
    org: OrgSlug,
}

fn org() -> OrgSlug {
    OrgSlug::parse("acme-msp").unwrap()
}

fn usd(s: &str) -> Money {
    Money::parse(s, Currency::Usd).unwrap()
}

fn number(s: &str) -> InvoiceNumber {
    InvoiceNumber::parse(s).unwrap()
}

fn payment_id(n: u32) -> PaymentId {
    PaymentId::parse(&format!("pay_01JABCDEFG{n:016}")).unwrap()
}

fn credentials(
    double: &XeroDouble,
    access_expires_at: OffsetDateTime,
    surcharge_account: Option<&str>,
) -> XeroCredentials {
    let (tenant_id, access_token, refresh_token) = double.connect(CLIENT_ID);
    XeroCredentials {
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        tenant_id,
        access_token,
        access_expires_at,
        refresh_token,
        payment_account: "090".to_owned(),
        surcharge_account: surcharge_account.map(str::to_owned),
    }
}

fn json(creds: &XeroCredentials) -> Secret<String> {
    Secret::new(serde_json::to_string(creds).unwrap())
}

/// A double with the app registered and the org connected (access token good for 30 minutes).
async fn world(surcharge_account: Option<&str>) -> World {
    let double = XeroDouble::start().await;
    double.add_app(CLIENT_ID, CLIENT_SECRET);
    let creds = credentials(
        &double,
        OffsetDateTime::now_utc() + time::Duration::minutes(30),
        surcharge_account,
    );
    let configs = Arc::new(MemoryConfigs::default());
    configs
        .put_accounting_config(&org(), xero::NAME, &json(&creds), OffsetDateTime::now_utc())
        .await
        .unwrap();
    World {
        endpoints: Endpoints::xero_at(&double.url()),
        double,
        configs,
        org: org(),
    }
}

impl World {
    fn adapter_with(&self, http: reqwest::Client) -> XeroAccounting {
        XeroAccounting::new(
            http,
            &self.endpoints,
            self.org.clone(),
            &self.configs.get(&self.org),
            self.configs.clone(),
            Arc::new(SystemClock),
        )
        .unwrap()
    }

    fn adapter(&self) -> XeroAccounting {
        self.adapter_with(http_client())
    }

    fn stored(&self) -> (XeroCredentials, u64) {
        let config = self.configs.get(&self.org);
        (
            XeroCredentials::parse(&config.credentials).unwrap(),
            config.version,
        )
    }

    fn invoice(&self, n: &str, total: &str, due: &str, status: &str) -> String {
        self.double.add_invoice(XeroInvoice {
            amount_due: due.to_owned(),
            status: status.to_owned(),
            date: date!(2026 - 03 - 02),
            due_date: date!(2026 - 04 - 01),
            contact_name: "Barney Rubble IT".to_owned(),
            ..XeroInvoice::authorised(n, CONTACT, total, "USD")
        })
    }

    fn posting(&self, n: u32, invoice: &str, amount: &str, surcharge: &str) -> PaymentPosting {
        PaymentPosting {
            org: self.org.clone(),
            payment: payment_id(n),
            invoice: number(invoice),
            amount: usd(amount),
            allocations: Vec::new(),
            surcharge: usd(surcharge),
            paid_on: date!(2026 - 03 - 10),
            reference: format!("Paybridge {} visa …4242", payment_id(n)),
        }
    }
}

#[tokio::test]
async fn invoices_are_read_with_exact_amounts_statuses_and_dates() {
    let w = world(None).await;
    w.invoice("INV-0001", "1234.56", "1000.06", "AUTHORISED");
    w.invoice("INV-0002", "46.00", "0.00", "PAID");
    w.invoice("INV-0003", "40.00", "40.00", "VOIDED");
    w.invoice("INV-0004", "0.10", "0.10", "DRAFT");
    w.invoice("INV-0005", "9.99", "9.99", "SUBMITTED");
    w.invoice("INV-0006", "9.99", "9.99", "DELETED");
    let xero = w.adapter();

    let read = xero
        .read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.ledger_version, None);
    let invoice = read.invoice;
    assert_eq!(invoice.number, number("INV-0001"));
    assert_eq!(invoice.customer_id, CustomerId::parse(CONTACT).unwrap());
    assert_eq!(invoice.customer_name, "Barney Rubble IT");
    assert_eq!(invoice.total, usd("1234.56"));
    assert_eq!(invoice.amount_due, usd("1000.06"));
    assert_eq!(invoice.status, InvoiceStatus::Open);
    assert_eq!(invoice.issue_date, date!(2026 - 03 - 02));
    assert_eq!(invoice.due_date, date!(2026 - 04 - 01));
    assert!(invoice.is_payable());

    for (n, status) in [
        ("INV-0002", InvoiceStatus::Paid),
        ("INV-0003", InvoiceStatus::Void),
        ("INV-0004", InvoiceStatus::Draft),
        ("INV-0005", InvoiceStatus::Draft),
    ] {
        let read = xero.read_invoice(&w.org, &number(n)).await.unwrap();
        assert_eq!(read.unwrap().invoice.status, status, "{n}");
    }
    // Deleted invoices are left out of Xero's listings unless asked for by status.
    let deleted = xero
        .read_invoice(&w.org, &number("INV-0006"))
        .await
        .unwrap();
    assert!(deleted.is_none_or(|r| r.invoice.status == InvoiceStatus::Void));
    assert_eq!(
        xero.read_invoice(&w.org, &number("INV-0404"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(w.double.calls("InvoiceNumbers=INV-0001"), 1);

    // Another org's invoices are not this connection's business.
    let other = OrgSlug::parse("other-msp").unwrap();
    assert!(
        xero.read_invoice(&other, &number("INV-0001"))
            .await
            .is_err()
    );
    assert!(xero.writes_back(&w.org).await.unwrap());
}

#[tokio::test]
async fn open_invoices_of_a_contact_come_from_every_page() {
    let w = world(None).await;
    for i in 0..130 {
        w.invoice(&format!("A-{i:04}"), "10.00", "10.00", "AUTHORISED");
    }
    w.invoice("A-PAID", "10.00", "0.00", "PAID");
    w.invoice("A-PART", "10.00", "2.50", "AUTHORISED");
    w.invoice("A-DRAFT", "10.00", "10.00", "DRAFT");
    w.double.add_invoice(XeroInvoice::authorised(
        "B-0001",
        "someone-else",
        "5.00",
        "USD",
    ));
    let xero = w.adapter();

    let open = xero
        .open_invoices(&w.org, &CustomerId::parse(CONTACT).unwrap())
        .await
        .unwrap();
    assert_eq!(open.len(), 131);
    assert!(open.iter().all(|i| i.is_payable()));
    assert!(
        open.iter()
            .any(|i| i.number == number("A-PART") && i.amount_due == usd("2.50"))
    );
    assert_eq!(w.double.calls("page=1"), 1);
    assert_eq!(w.double.calls("page=2"), 1);
    assert_eq!(w.double.calls("page=3"), 0);
    assert_eq!(w.double.calls("Statuses=AUTHORISED"), 2);
}

#[tokio::test]
async fn the_invoice_pdf_is_xeros() {
    let w = world(None).await;
    w.invoice("INV-0042", "115.00", "115.00", "AUTHORISED");
    let xero = w.adapter();
    let pdf = xero
        .invoice_pdf(&w.org, &number("INV-0042"))
        .await
        .unwrap()
        .unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    assert!(String::from_utf8_lossy(&pdf).contains("INV-0042"));
    assert_eq!(
        xero.invoice_pdf(&w.org, &number("INV-0404")).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_payment_is_written_back_once_even_when_posted_again() {
    let w = world(None).await;
    w.invoice("INV-0001", "230.00", "229.00", "AUTHORISED");
    let xero = w.adapter();
    let posting = w.posting(1, "INV-0001", "100.10", "0");

    let first = xero.post_payment(&posting).await.unwrap();
    let Posted::Recorded { remote_id } = &first else {
        panic!("{first:?}")
    };
    assert!(!remote_id.contains('+'));
    let again = xero.post_payment(&posting).await.unwrap();
    assert_eq!(again, first);

    let payments = w.double.payments();
    assert_eq!(payments.len(), 1);
    let p = &payments[0];
    assert_eq!(&p.payment_id, remote_id);
    assert_eq!(p.amount, "100.10");
    assert_eq!(p.invoice_number, "INV-0001");
    assert_eq!(p.account_code, "090");
    assert_eq!(p.date, date!(2026 - 03 - 10));
    assert_eq!(p.reference, posting.reference);
    assert_eq!(p.idempotency_key.as_deref(), Some(payment_id(1).as_str()));
    assert!(!p.deleted);
    assert_eq!(w.double.invoice("INV-0001").unwrap().amount_due, "128.90");

    // The rest of the balance: the invoice is paid.
    xero.post_payment(&w.posting(2, "INV-0001", "128.90", "0"))
        .await
        .unwrap();
    let read = xero
        .read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.invoice.status, InvoiceStatus::Paid);
    assert!(read.invoice.amount_due.is_zero());
}

#[tokio::test]
async fn a_500_then_a_429_then_success_posts_exactly_one_payment() {
    let w = world(None).await;
    w.invoice("INV-0001", "50.00", "50.00", "AUTHORISED");
    let xero = w.adapter();
    let posting = w.posting(1, "INV-0001", "50.00", "0");
    w.double.fail_next(
        Route::Payments,
        vec![
            Fault::Status(500),
            Fault::RateLimited {
                retry_after_secs: 7,
                problem: "minute",
            },
        ],
    );

    let e = xero.post_payment(&posting).await.unwrap_err();
    assert!(e.0.contains("500"), "{e}");
    match xero.post_payment(&posting).await.unwrap() {
        Posted::Later { after, why } => {
            assert_eq!(after, Duration::from_secs(7));
            assert!(why.contains("minute"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        xero.post_payment(&posting).await.unwrap(),
        Posted::Recorded { .. }
    ));
    assert_eq!(w.double.payments().len(), 1);
    assert_eq!(w.double.calls("PUT /api.xro/2.0/Payments"), 3);
    assert_eq!(w.double.invoice("INV-0001").unwrap().status, "PAID");
}

#[tokio::test]
async fn xeros_refusal_is_passed_on_in_its_words() {
    let w = world(None).await;
    w.invoice("INV-0001", "50.00", "20.00", "AUTHORISED");
    w.invoice("INV-0002", "50.00", "50.00", "VOIDED");
    let xero = w.adapter();

    let refused = xero
        .post_payment(&w.posting(1, "INV-0001", "20.01", "0"))
        .await
        .unwrap();
    assert_eq!(
        refused,
        Posted::Refused("Payment amount exceeds the amount outstanding on this document".into())
    );
    let refused = xero
        .post_payment(&w.posting(2, "INV-0002", "1.00", "0"))
        .await
        .unwrap();
    assert_eq!(
        refused,
        Posted::Refused("Invoice not of valid status for modification".into())
    );
    assert!(w.double.payments().is_empty());
    assert_eq!(w.double.invoice("INV-0001").unwrap().amount_due, "20.00");
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_stored_and_the_call_retried_once() {
    let w = world(None).await;
    w.invoice("INV-0001", "50.00", "50.00", "AUTHORISED");
    let xero = w.adapter();
    let (before, version) = w.stored();
    w.double.expire_access_tokens();

    let read = xero
        .read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap();
    assert!(read.is_some());
    assert_eq!(w.double.calls("/connect/token"), 1);
    assert_eq!(w.double.calls("InvoiceNumbers=INV-0001"), 2);
    let (after, new_version) = w.stored();
    assert_eq!(new_version, version + 1);
    assert_ne!(after.refresh_token, before.refresh_token);
    assert_ne!(after.access_token, before.access_token);
    assert!(after.access_expires_at > OffsetDateTime::now_utc() + time::Duration::minutes(29));
    assert_eq!(after.payment_account, "090");

    // The new pair is used from now on: no more refreshes.
    xero.read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap();
    assert_eq!(w.double.calls("/connect/token"), 1);

    // Still refused after the refresh: one retry, no loop.
    w.double.fail_next(
        Route::Invoices,
        vec![Fault::Status(401), Fault::Status(401)],
    );
    let e = xero
        .read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap_err();
    assert!(e.0.contains("401"), "{e}");
    assert_eq!(w.double.calls("/connect/token"), 2);
    assert_eq!(w.double.calls("InvoiceNumbers=INV-0001"), 5);
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_the_call() {
    let w = world(None).await;
    w.invoice("INV-0001", "50.00", "50.00", "AUTHORISED");
    let mut creds = w.stored().0;
    creds.access_expires_at = OffsetDateTime::now_utc() + time::Duration::seconds(30);
    w.configs
        .put_accounting_config(&w.org, xero::NAME, &json(&creds), OffsetDateTime::now_utc())
        .await
        .unwrap();
    let xero = w.adapter();
    xero.read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.double.calls("/connect/token"), 1);
    assert_eq!(w.double.calls("InvoiceNumbers=INV-0001"), 1);
    assert_eq!(w.stored().1, 3);
}

#[tokio::test]
async fn when_another_instance_stored_tokens_first_the_stored_ones_are_used() {
    let w = world(None).await;
    w.invoice("INV-0001", "50.00", "50.00", "AUTHORISED");
    let xero = w.adapter(); // holds version 1
    w.double.expire_access_tokens();
    // Meanwhile the connection was stored again elsewhere (version 2), with good tokens.
    let theirs = credentials(
        &w.double,
        OffsetDateTime::now_utc() + time::Duration::minutes(30),
        None,
    );
    w.configs
        .put_accounting_config(
            &w.org,
            xero::NAME,
            &json(&theirs),
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();

    // 401, refresh (works), the store refuses version 1, the stored pair is read and used.
    let read = xero
        .read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap();
    assert!(read.is_some());
    let (stored, version) = w.stored();
    assert_eq!(version, 2);
    assert_eq!(stored.refresh_token, theirs.refresh_token);
    assert_eq!(w.double.calls("/connect/token"), 1);
    assert_eq!(w.double.calls("InvoiceNumbers=INV-0001"), 2);
    // And it goes on using them.
    xero.read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap();
    assert_eq!(w.double.calls("/connect/token"), 1);
}

#[tokio::test]
async fn a_rotated_refresh_token_from_another_instance_is_picked_up() {
    let w = world(None).await;
    w.invoice("INV-0001", "50.00", "50.00", "AUTHORISED");
    let xero = w.adapter();
    let other = w.adapter();
    w.double.expire_access_tokens();
    // The other instance refreshes first (the pair this one holds is spent).
    other
        .read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap();
    assert_eq!(w.stored().1, 2);
    // This one: 401, invalid_grant, reads the stored pair, retries.
    let read = xero
        .read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap();
    assert!(read.is_some());
    assert_eq!(w.double.calls("/connect/token"), 2);
    assert_eq!(w.stored().1, 2);
}

#[tokio::test]
async fn a_refused_refresh_token_asks_for_a_reconnect() {
    let w = world(None).await;
    w.invoice("INV-0001", "50.00", "50.00", "AUTHORISED");
    let xero = w.adapter();
    // The refresh token is spent outside Paybridge (revoked, used by a copy of the app).
    let (creds, _) = w.stored();
    xero_refresh(&w, &creds.refresh_token).await;
    w.double.expire_access_tokens();

    let e = xero
        .read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap_err();
    assert!(
        e.0.contains("invalid_grant") && e.0.contains("reconnect"),
        "{e}"
    );
    match xero.test_connection(&w.org).await.unwrap() {
        ConnectionCheck::Refused(why) => assert!(why.contains("reconnect"), "{why}"),
        ConnectionCheck::Accepted => panic!("accepted"),
    }
    // A write-back waits and tries again later (not a refusal: the admin may reconnect).
    assert!(
        xero.post_payment(&w.posting(1, "INV-0001", "1.00", "0"))
            .await
            .is_err()
    );
    assert!(w.double.payments().is_empty());
}

/// Spends a refresh token at the double's token endpoint.
async fn xero_refresh(w: &World, refresh_token: &str) {
    let answer = http_client()
        .post(format!("{}/connect/token", w.double.url()))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
}

#[tokio::test]
async fn a_surcharge_is_its_own_invoice_and_a_reversal_takes_both_back() {
    let w = world(Some("260")).await;
    w.invoice("INV-0001", "100.00", "100.00", "AUTHORISED");
    let xero = w.adapter();
    let posting = w.posting(1, "INV-0001", "100.00", "3.00");

    let Posted::Recorded { remote_id } = xero.post_payment(&posting).await.unwrap() else {
        panic!("not recorded")
    };
    let (main, surcharge) = remote_id.split_once('+').expect("two payment ids");
    let payments = w.double.payments();
    assert_eq!(payments.len(), 2);
    assert_eq!(payments[0].payment_id, main);
    assert_eq!(payments[1].payment_id, surcharge);
    assert_eq!(payments[1].amount, "3.00");
    assert_eq!(
        payments[1].idempotency_key.as_deref(),
        Some(format!("{}-surcharge-payment", payment_id(1)).as_str())
    );
    let invoices = w.double.invoices();
    let extra = invoices
        .iter()
        .find(|i| i.reference == "Card surcharge for INV-0001")
        .expect("the surcharge invoice");
    assert_eq!(extra.kind, "ACCREC");
    assert_eq!(extra.contact_id, CONTACT);
    assert_eq!(extra.currency, "USD");
    assert_eq!(extra.lines, vec![("260".to_owned(), "3.00".to_owned())]);
    assert_eq!(extra.status, "PAID");
    assert_eq!(w.double.invoice("INV-0001").unwrap().status, "PAID");

    // Posting again (a retry) creates nothing new.
    assert_eq!(
        xero.post_payment(&posting).await.unwrap(),
        Posted::Recorded {
            remote_id: remote_id.clone()
        }
    );
    assert_eq!(w.double.payments().len(), 2);
    assert_eq!(w.double.invoices().len(), 2);

    let reversal = PaymentReversal {
        org: w.org.clone(),
        payment: payment_id(1),
        remote_id: remote_id.clone(),
        id: "rev_1".to_owned(),
        amount: usd("103.00"),
        on: date!(2026 - 03 - 20),
    };
    assert_eq!(
        xero.reverse_payment(&reversal).await.unwrap(),
        Posted::Recorded {
            remote_id: remote_id.clone()
        }
    );
    assert!(w.double.payments().iter().all(|p| p.deleted));
    let original = w.double.invoice("INV-0001").unwrap();
    assert_eq!(
        (original.status.as_str(), original.amount_due.as_str()),
        ("AUTHORISED", "100.00")
    );
    let extra = w.double.invoice(&extra.number).unwrap();
    assert_eq!(
        (extra.status.as_str(), extra.amount_due.as_str()),
        ("AUTHORISED", "3.00")
    );
    // Reversed again: already deleted counts as done.
    assert_eq!(
        xero.reverse_payment(&PaymentReversal {
            id: "rev_2".into(),
            ..reversal
        })
        .await
        .unwrap(),
        Posted::Recorded { remote_id }
    );
}

#[tokio::test]
async fn no_surcharge_account_no_surcharge_invoice() {
    let w = world(None).await;
    w.invoice("INV-0001", "100.00", "100.00", "AUTHORISED");
    let xero = w.adapter();
    let posted = xero
        .post_payment(&w.posting(1, "INV-0001", "100.00", "3.00"))
        .await
        .unwrap();
    assert!(matches!(posted, Posted::Recorded { remote_id } if !remote_id.contains('+')));
    assert_eq!(w.double.invoices().len(), 1);
}

#[tokio::test]
async fn a_nearly_spent_budget_keeps_write_backs_for_later_without_a_call() {
    let w = world(None).await;
    w.invoice("INV-0001", "100.00", "100.00", "AUTHORISED");
    let xero = w.adapter();

    w.double.set_remaining(5, 4000);
    xero.read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap(); // leaves 4 this minute
    match xero
        .post_payment(&w.posting(1, "INV-0001", "1.00", "0"))
        .await
        .unwrap()
    {
        Posted::Later { after, .. } => assert_eq!(after, Duration::from_secs(60)),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.double.calls("/Payments"), 0);
    // Payers' reads still go through.
    assert!(
        xero.read_invoice(&w.org, &number("INV-0001"))
            .await
            .unwrap()
            .is_some()
    );

    w.double.set_remaining(60, 100);
    xero.read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap(); // 99 left today
    let reversal = PaymentReversal {
        org: w.org.clone(),
        payment: payment_id(1),
        remote_id: "00000000-0000-4000-8000-000000000001".into(),
        id: "rev_1".into(),
        amount: usd("1.00"),
        on: date!(2026 - 03 - 20),
    };
    match xero.reverse_payment(&reversal).await.unwrap() {
        Posted::Later { after, .. } => assert_eq!(after, Duration::from_secs(3600)),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.double.calls("/Payments"), 0);

    w.double.set_remaining(60, 5000);
    xero.read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap();
    assert!(matches!(
        xero.post_payment(&w.posting(1, "INV-0001", "1.00", "0"))
            .await
            .unwrap(),
        Posted::Recorded { .. }
    ));
}

#[tokio::test]
async fn reads_fail_fast_on_timeouts_5xx_and_long_rate_limits() {
    let w = world(None).await;
    w.invoice("INV-0001", "100.00", "100.00", "AUTHORISED");
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let xero = w.adapter_with(quick);

    w.double
        .fail_next(Route::Invoices, vec![Fault::Delay(Duration::from_secs(2))]);
    let e = xero
        .read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap_err();
    assert!(e.0.contains("in time"), "{e}");

    w.double
        .fail_next(Route::Invoices, vec![Fault::Status(503)]);
    assert!(
        xero.read_invoice(&w.org, &number("INV-0001"))
            .await
            .is_err()
    );

    w.double.fail_next(
        Route::Invoices,
        vec![Fault::RateLimited {
            retry_after_secs: 30,
            problem: "minute",
        }],
    );
    let e = xero
        .read_invoice(&w.org, &number("INV-0001"))
        .await
        .unwrap_err();
    assert!(e.0.contains("try again in 30 s"), "{e}");

    // A short one is waited out, once.
    w.double.fail_next(
        Route::Invoices,
        vec![Fault::RateLimited {
            retry_after_secs: 1,
            problem: "minute",
        }],
    );
    let before = w.double.calls("InvoiceNumbers=");
    assert!(
        xero.read_invoice(&w.org, &number("INV-0001"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(w.double.calls("InvoiceNumbers=") - before, 2);

    // A write that times out is not known to be done: an error, and the retry replays.
    w.double
        .fail_next(Route::Payments, vec![Fault::Delay(Duration::from_secs(1))]);
    let posting = w.posting(1, "INV-0001", "10.00", "0");
    assert!(xero.post_payment(&posting).await.is_err());
    assert!(matches!(
        xero.post_payment(&posting).await.unwrap(),
        Posted::Recorded { .. }
    ));
    assert_eq!(w.double.payments().len(), 1);
}

#[tokio::test]
async fn an_admin_connects_xero_with_the_code_flow() {
    let double = XeroDouble::start().await;
    double.add_app(CLIENT_ID, CLIENT_SECRET);
    double.add_practice_tenant("Some Practice");
    let endpoints = Endpoints::xero_at(&double.url());
    let redirect = "https://pay.example/admin/xero/callback";
    let url = xero::authorize_url(&endpoints, CLIENT_ID, redirect, "st4te-1");
    assert!(url.starts_with(&format!(
        "{}/identity/connect/authorize?response_type=code&client_id={CLIENT_ID}",
        double.url()
    )));
    assert!(url.contains("scope=offline_access+accounting.transactions+accounting.contacts.read+accounting.settings.read"));

    // The admin consents; the browser comes back with a code.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser.get(&url).send().await.unwrap();
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    let back = reqwest::Url::parse(&location).unwrap();
    assert!(location.starts_with(redirect));
    let query: HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!(query["state"], "st4te-1");

    let http = http_client();
    let now = OffsetDateTime::now_utc();
    let secret = Secret::new(CLIENT_SECRET.to_owned());
    let tokens = xero::exchange_code(
        &http,
        &endpoints,
        CLIENT_ID,
        &secret,
        &query["code"],
        redirect,
        now,
    )
    .await
    .unwrap();
    assert_eq!(tokens.access_expires_at, now + time::Duration::minutes(30));
    // A code works once.
    assert!(
        xero::exchange_code(
            &http,
            &endpoints,
            CLIENT_ID,
            &secret,
            &query["code"],
            redirect,
            now
        )
        .await
        .is_err()
    );
    // A wrong secret is refused.
    let wrong = Secret::new("nope".to_owned());
    assert!(
        xero::exchange_code(&http, &endpoints, CLIENT_ID, &wrong, "x", redirect, now)
            .await
            .is_err()
    );

    let tenants = xero::tenants(&http, &endpoints, &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0].tenant_id, double.tenant_id());
    assert!(!tenants[0].name.is_empty());

    // What the admin API stores; the connection test passes.
    let creds = XeroCredentials {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        tenant_id: tenants[0].tenant_id.clone(),
        access_token: tokens.access_token,
        access_expires_at: tokens.access_expires_at,
        refresh_token: tokens.refresh_token,
        payment_account: "090".into(),
        surcharge_account: None,
    };
    let configs = Arc::new(MemoryConfigs::default());
    let config = configs
        .put_accounting_config(&org(), xero::NAME, &json(&creds), now)
        .await
        .unwrap();
    let adapter = XeroAccounting::new(
        http.clone(),
        &endpoints,
        org(),
        &config,
        configs.clone(),
        Arc::new(SystemClock),
    )
    .unwrap();
    assert_eq!(
        adapter.test_connection(&org()).await.unwrap(),
        ConnectionCheck::Accepted
    );
    // A tenant the app is not connected to is refused.
    let stranger = XeroCredentials {
        tenant_id: "00000000-0000-4000-8000-000000000000".into(),
        ..creds
    };
    let config = configs
        .put_accounting_config(&org(), xero::NAME, &json(&stranger), now)
        .await
        .unwrap();
    let adapter = XeroAccounting::new(
        http,
        &endpoints,
        org(),
        &config,
        configs,
        Arc::new(SystemClock),
    )
    .unwrap();
    assert!(matches!(
        adapter.test_connection(&org()).await.unwrap(),
        ConnectionCheck::Refused(_)
    ));
}

#[tokio::test]
async fn a_config_of_another_system_or_unreadable_is_refused() {
    let w = world(None).await;
    let mut config = w.configs.get(&w.org);
    config.system = "connectwise".into();
    let new = |config: &AccountingConfig| {
        XeroAccounting::new(
            http_client(),
            &w.endpoints,
            w.org.clone(),
            config,
            w.configs.clone(),
            Arc::new(SystemClock),
        )
    };
    assert!(new(&config).is_err());
    config.system = xero::NAME.into();
    config.credentials = Secret::new(r#"{"client_id":"x","access_token":"very-secret"}"#.into());
    let e = new(&config).unwrap_err();
    assert!(!e.0.contains("very-secret"), "{e}");
}

impl World {
    /// One payment of several invoices: `parts` are (invoice, amount), the amount their sum.
    fn split_posting(&self, n: u32, parts: &[(&str, &str)], surcharge: &str) -> PaymentPosting {
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
            ..self.posting(n, parts[0].0, "0.01", surcharge)
        }
    }

    fn due(&self, invoice: &str) -> (String, String) {
        let i = self.double.invoice(invoice).unwrap();
        (i.status, i.amount_due)
    }
}

fn recorded(posted: &Posted) -> Vec<String> {
    match posted {
        Posted::Recorded { remote_id } => remote_id.split('+').map(str::to_owned).collect(),
        other => panic!("expected Recorded, got {other:?}"),
    }
}

const BATCH: &str = "PUT /api.xro/2.0/Payments?summarizeErrors=true";

#[tokio::test]
async fn a_payment_of_two_invoices_is_one_batch_then_its_surcharge() {
    let w = world(Some("260")).await;
    w.invoice("INV-0001", "120.00", "120.00", "AUTHORISED");
    w.invoice("INV-0002", "80.00", "80.00", "AUTHORISED");
    let xero = w.adapter();
    let posting = w.split_posting(1, &[("INV-0001", "120.00"), ("INV-0002", "80.00")], "5.00");

    let posted = xero.post_payment(&posting).await.unwrap();
    let ids = recorded(&posted);
    assert_eq!(ids.len(), 3);
    // One PUT for both invoices (all or nothing), one for the surcharge's payment.
    assert_eq!(w.double.calls(BATCH), 1);
    assert_eq!(w.double.calls("PUT /api.xro/2.0/Payments"), 2);
    let payments = w.double.payments();
    assert_eq!(payments.len(), 3);
    let ours: Vec<_> = payments
        .iter()
        .map(|p| {
            (
                p.payment_id.as_str(),
                p.invoice_number.as_str(),
                p.amount.as_str(),
                p.idempotency_key.clone(),
            )
        })
        .collect();
    let key = Some(payment_id(1).to_string());
    assert_eq!(
        ours[..2],
        [
            (ids[0].as_str(), "INV-0001", "120.00", key.clone()),
            (ids[1].as_str(), "INV-0002", "80.00", key),
        ]
    );
    assert!(payments[..2].iter().all(|p| {
        p.account_code == "090"
            && p.date == date!(2026 - 03 - 10)
            && p.reference == posting.reference
    }));
    assert_eq!(payments[2].payment_id, ids[2]);
    assert_eq!(payments[2].amount, "5.00");
    assert_eq!(w.due("INV-0001"), ("PAID".into(), "0.00".into()));
    assert_eq!(w.due("INV-0002"), ("PAID".into(), "0.00".into()));
    let extra = w
        .double
        .invoices()
        .into_iter()
        .find(|i| i.reference == "Card surcharge for INV-0001, INV-0002")
        .expect("one surcharge invoice for the payment");
    assert_eq!(extra.lines, vec![("260".to_owned(), "5.00".to_owned())]);
    assert_eq!(extra.status, "PAID");

    // Posted again: the same answer, nothing new.
    assert_eq!(xero.post_payment(&posting).await.unwrap(), posted);
    assert_eq!(w.double.payments().len(), 3);
    assert_eq!(w.double.invoices().len(), 3);
}

#[tokio::test]
async fn a_batch_whose_answer_was_lost_is_replayed_not_posted_again() {
    let w = world(Some("260")).await;
    w.invoice("INV-0001", "120.00", "120.00", "AUTHORISED");
    w.invoice("INV-0002", "80.00", "80.00", "AUTHORISED");
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let xero = w.adapter_with(quick);
    let posting = w.split_posting(1, &[("INV-0001", "120.00"), ("INV-0002", "80.00")], "5.00");

    // Xero makes both payments; the answer comes after the adapter gave up.
    w.double
        .fail_next(Route::Payments, vec![Fault::Delay(Duration::from_secs(1))]);
    assert!(xero.post_payment(&posting).await.is_err());
    let made = w.double.payments();
    assert_eq!(made.len(), 2);
    assert_eq!(w.due("INV-0001"), ("PAID".into(), "0.00".into()));

    let posted = xero.post_payment(&posting).await.unwrap();
    let ids = recorded(&posted);
    assert_eq!(
        ids[..2],
        [made[0].payment_id.clone(), made[1].payment_id.clone()]
    );
    assert_eq!(xero.post_payment(&posting).await.unwrap(), posted);
    let payments = w.double.payments();
    assert_eq!(payments.len(), 3, "two parts and the surcharge, once each");
    assert_eq!(w.double.calls(BATCH), 3);
    assert_eq!(w.due("INV-0001"), ("PAID".into(), "0.00".into()));
    assert_eq!(w.due("INV-0002"), ("PAID".into(), "0.00".into()));
    assert_eq!(w.double.invoices().len(), 3);
}

#[tokio::test]
async fn a_reversal_of_a_payment_of_two_invoices_deletes_all_three_payments() {
    let w = world(Some("260")).await;
    w.invoice("INV-0001", "120.00", "120.00", "AUTHORISED");
    w.invoice("INV-0002", "80.00", "80.00", "AUTHORISED");
    let xero = w.adapter();
    let posting = w.split_posting(1, &[("INV-0001", "120.00"), ("INV-0002", "80.00")], "5.00");
    let Posted::Recorded { remote_id } = xero.post_payment(&posting).await.unwrap() else {
        panic!("not recorded")
    };
    let reversal = PaymentReversal {
        org: w.org.clone(),
        payment: payment_id(1),
        remote_id: remote_id.clone(),
        id: format!("{}-reversal", payment_id(1)),
        amount: usd("200.00"),
        on: date!(2026 - 03 - 20),
    };

    // The first delete goes through, the second is rate limited: later, then the rest.
    w.double.fail_next(
        Route::Payments,
        vec![
            Fault::Delay(Duration::ZERO),
            Fault::RateLimited {
                retry_after_secs: 9,
                problem: "minute",
            },
        ],
    );
    assert!(matches!(
        xero.reverse_payment(&reversal).await.unwrap(),
        Posted::Later { after, .. } if after == Duration::from_secs(9)
    ));
    assert_eq!(w.double.payments().iter().filter(|p| p.deleted).count(), 1);

    assert_eq!(
        xero.reverse_payment(&reversal).await.unwrap(),
        Posted::Recorded {
            remote_id: remote_id.clone()
        }
    );
    let payments = w.double.payments();
    assert_eq!(payments.len(), 3);
    assert!(payments.iter().all(|p| p.deleted));
    assert_eq!(w.due("INV-0001"), ("AUTHORISED".into(), "120.00".into()));
    assert_eq!(w.due("INV-0002"), ("AUTHORISED".into(), "80.00".into()));
    // Reversed again (another reversal id): every part deleted already counts as done.
    assert_eq!(
        xero.reverse_payment(&PaymentReversal {
            id: "rev_2".into(),
            ..reversal
        })
        .await
        .unwrap(),
        Posted::Recorded { remote_id }
    );
}

#[tokio::test]
async fn a_lump_sum_split_across_two_invoices_leaves_the_rest_due_on_the_second() {
    let w = world(None).await;
    w.invoice("INV-0001", "120.00", "120.00", "AUTHORISED");
    w.invoice("INV-0002", "80.00", "80.00", "AUTHORISED");
    let xero = w.adapter();
    let posting = w.split_posting(1, &[("INV-0001", "120.00"), ("INV-0002", "30.00")], "0");
    assert_eq!(posting.amount, usd("150.00"));

    let ids = recorded(&xero.post_payment(&posting).await.unwrap());
    assert_eq!(ids.len(), 2);
    assert_eq!(w.due("INV-0001"), ("PAID".into(), "0.00".into()));
    assert_eq!(w.due("INV-0002"), ("AUTHORISED".into(), "50.00".into()));
    let read = xero
        .read_invoice(&w.org, &number("INV-0002"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.invoice.amount_due, usd("50.00"));
}

#[tokio::test]
async fn a_batch_with_a_voided_invoice_is_refused_by_its_number_and_posts_nothing() {
    let w = world(Some("260")).await;
    w.invoice("INV-0001", "120.00", "120.00", "AUTHORISED");
    w.invoice("INV-0002", "80.00", "80.00", "VOIDED");
    w.invoice("INV-0003", "10.00", "10.00", "AUTHORISED");
    let xero = w.adapter();

    let posting = w.split_posting(1, &[("INV-0001", "120.00"), ("INV-0002", "80.00")], "5.00");
    assert_eq!(
        xero.post_payment(&posting).await.unwrap(),
        Posted::Refused("invoice INV-0002: Invoice not of valid status for modification".into())
    );
    // Two parts refused: both named.
    let posting = w.split_posting(
        2,
        &[
            ("INV-0001", "120.00"),
            ("INV-0002", "80.00"),
            ("INV-0003", "10.01"),
        ],
        "0",
    );
    assert_eq!(
        xero.post_payment(&posting).await.unwrap(),
        Posted::Refused(
            "invoice INV-0002: Invoice not of valid status for modification; invoice INV-0003: \
             Payment amount exceeds the amount outstanding on this document"
                .into()
        )
    );
    assert!(w.double.payments().is_empty());
    assert_eq!(w.double.invoices().len(), 3, "no surcharge invoice");
    assert_eq!(w.due("INV-0001"), ("AUTHORISED".into(), "120.00".into()));

    // Parts that do not add up are refused without a call.
    let mut odd = w.split_posting(3, &[("INV-0001", "120.00"), ("INV-0003", "10.00")], "0");
    odd.amount = usd("120.00");
    match xero.post_payment(&odd).await.unwrap() {
        Posted::Refused(why) => assert!(why.contains("do not add up"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.double.calls("/Payments"), 2);
}

#[tokio::test]
async fn the_double_takes_a_batch_all_or_nothing_unless_summarize_errors_is_false() {
    let w = world(None).await;
    w.invoice("INV-0001", "120.00", "120.00", "AUTHORISED");
    w.invoice("INV-0002", "80.00", "80.00", "VOIDED");
    let (creds, _) = w.stored();
    let put = |query: &'static str, key: &'static str| {
        let body = serde_json::json!({"Payments": [
            {"Invoice": {"InvoiceNumber": "INV-0001"}, "Account": {"Code": "090"}, "Date": "2026-03-10", "Amount": 20},
            {"Invoice": {"InvoiceNumber": "INV-0002"}, "Account": {"Code": "090"}, "Date": "2026-03-10", "Amount": 5},
        ]});
        http_client()
            .put(format!("{}/api.xro/2.0/Payments{query}", w.double.url()))
            .bearer_auth(&creds.access_token)
            .header("xero-tenant-id", &creds.tenant_id)
            .header("Idempotency-Key", key)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .send()
    };

    for query in ["", "?summarizeErrors=true"] {
        let answer = put(query, "k-1").await.unwrap();
        assert_eq!(answer.status(), 400);
        let v: serde_json::Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
        let elements = v["Elements"].as_array().unwrap();
        assert_eq!(elements.len(), 2);
        assert!(elements[0].get("ValidationErrors").is_none());
        assert_eq!(
            elements[1]["ValidationErrors"][0]["Message"],
            "Invoice not of valid status for modification"
        );
        assert!(w.double.payments().is_empty());
    }

    let answer = put("?summarizeErrors=false", "k-2").await.unwrap();
    assert_eq!(answer.status(), 200);
    let first = answer.bytes().await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&first).unwrap();
    let items = v["Payments"].as_array().unwrap();
    assert_eq!(items[0]["StatusAttributeString"], "OK");
    assert_eq!(items[0]["Invoice"]["AmountDue"].as_f64(), Some(100.0));
    assert_eq!(items[1]["StatusAttributeString"], "ERROR");
    assert_eq!(
        items[1]["ValidationErrors"][0]["Message"],
        "Invoice not of valid status for modification"
    );
    assert_eq!(w.double.payments().len(), 1);
    // The key replays the whole answer.
    let again = put("?summarizeErrors=false", "k-2").await.unwrap();
    assert_eq!(again.bytes().await.unwrap(), first);
    assert_eq!(w.double.payments().len(), 1);
    assert_eq!(w.due("INV-0001"), ("AUTHORISED".into(), "100.00".into()));
}
