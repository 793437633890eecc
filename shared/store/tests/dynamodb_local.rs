//! The store against Amazon's DynamoDB Local, over the real SDK: every test on its own table.

use app::idempotency::{Claim, IdempotencyKey, StoredResponse};
use app::orgs::{NewOrg, create_org};
use app::payments::Payment;
use app::ports::*;
use app::system::{FixedClock, RandomIds};
use devtools::test_store;
use domain::*;
use time::{Duration, OffsetDateTime, macros::datetime};

const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

fn slug(s: &str) -> OrgSlug {
    OrgSlug::parse(s).unwrap()
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn new_org(s: &str, admin: &str) -> NewOrg {
    NewOrg {
        slug: slug(s),
        name: format!("{s} Pty Ltd"),
        settings: OrgSettings::default(),
        admin_email: email(admin),
        admin_name: "Ada Admin".into(),
        admin_password: Some(Secret::new("a long enough password".into())),
    }
}

fn user(id: &str, mail: &str) -> User {
    User {
        id: UserId::from_ulid(id).unwrap(),
        email: email(mail),
        name: "Pat Payer".into(),
        password_hash: None,
        created_at: NOW,
        two_factor: false,
    }
}

#[tokio::test]
async fn an_org_is_created_with_its_first_admin_in_one_transaction() {
    let store = test_store().await;
    let admin = create_org(
        &store,
        &store,
        &FixedClock(NOW),
        &RandomIds,
        new_org("demo", "Ada@Example.com "),
    )
    .await
    .unwrap();

    let org = store.get_org(&slug("demo")).await.unwrap().unwrap();
    assert_eq!(org.name, "demo Pty Ltd");
    assert_eq!(org.settings, OrgSettings::default());
    let found = store
        .find_user_by_email(&email("ada@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, admin);
    assert!(app::passwords::verify_password(
        "a long enough password",
        found.password_hash.as_ref().unwrap()
    ));
    let membership = store
        .membership(&slug("demo"), &admin)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(membership.role, Role::Admin);

    // The same slug again is refused, and the second admin's account is not half-written.
    let again = create_org(
        &store,
        &store,
        &FixedClock(NOW),
        &RandomIds,
        new_org("demo", "bob@example.com"),
    )
    .await;
    assert!(
        matches!(again, Err(app::orgs::SetUpOrgError::SlugTaken(_))),
        "{again:?}"
    );
    assert_eq!(
        store
            .find_user_by_email(&email("bob@example.com"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn one_person_belongs_to_many_orgs() {
    let store = test_store().await;
    let clock = FixedClock(NOW);
    let first = create_org(
        &store,
        &store,
        &clock,
        &RandomIds,
        new_org("demo", "ada@example.com"),
    )
    .await
    .unwrap();
    // The second org's admin is the same person: no second account, no password needed.
    let mut second = new_org("acme", "ADA@example.com");
    second.admin_password = None;
    let again = create_org(&store, &store, &clock, &RandomIds, second)
        .await
        .unwrap();
    assert_eq!(first, again);

    let mut orgs: Vec<String> = store
        .memberships_of_user(&first)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.org.to_string())
        .collect();
    orgs.sort();
    assert_eq!(orgs, ["acme", "demo"]);
    let members = store.members_of_org(&slug("acme")).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].0, first);
}

#[tokio::test]
async fn an_email_belongs_to_one_user() {
    let store = test_store().await;
    let a = user("01JD8X3Q9M6V4W2K7T5R1N0PZA", "pat@example.com");
    store.create_user(&a).await.unwrap();
    let b = user("01JD8X3Q9M6V4W2K7T5R1N0PZB", "pat@example.com");
    assert_eq!(
        store.create_user(&b).await,
        Err(CreateUserError::EmailTaken)
    );
    // Nothing of the second user was written: the marker and the user go together.
    assert_eq!(store.get_user(&b.id).await.unwrap(), None);
    assert_eq!(
        store
            .find_user_by_email(&a.email)
            .await
            .unwrap()
            .unwrap()
            .id,
        a.id
    );
}

#[tokio::test]
async fn a_member_is_added_once() {
    let store = test_store().await;
    let u = user("01JD8X3Q9M6V4W2K7T5R1N0PZC", "pat@example.com");
    store.create_user(&u).await.unwrap();
    let m = Membership {
        org: slug("demo"),
        role: Role::Payer,
        customer_ids: vec![
            CustomerId::parse("c-1").unwrap(),
            CustomerId::parse("c-2").unwrap(),
        ],
    };
    store.add_member(&u.id, &m, NOW).await.unwrap();
    assert_eq!(
        store.add_member(&u.id, &m, NOW).await,
        Err(AddMemberError::AlreadyMember)
    );
    assert_eq!(
        store.membership(&slug("demo"), &u.id).await.unwrap(),
        Some(m)
    );
}

#[tokio::test]
async fn users_are_read_in_batches_and_missing_ones_are_left_out() {
    let store = test_store().await;
    let mut ids = Vec::new();
    // 130 users: more than one BatchGetItem (100 keys) holds.
    for i in 0..130u32 {
        let id = format!("01JD8X3Q9M6V4W2K7T5R{i:06}");
        let u = user(&id, &format!("user{i}@example.com"));
        store.create_user(&u).await.unwrap();
        ids.push(u.id);
    }
    ids.push(UserId::parse("usr_01JD8X3Q9M6V4W2K7T5RZZZZZZ").unwrap());
    let before = store.usage();
    let mut found = store.get_users(&ids).await.unwrap();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        found.len(),
        130,
        "every existing user, none for the unknown id"
    );
    assert_eq!(found[7].email.as_str(), "user7@example.com");
    let used = store.usage().since(before);
    assert_eq!(used.calls, 2, "two batch reads for 131 keys");
}

#[tokio::test]
async fn api_keys_are_found_by_hash_only_and_can_be_revoked() {
    let store = test_store().await;
    let clock = FixedClock(NOW);
    let issued = app::orgs::issue_api_key(&store, &clock, &RandomIds, &slug("demo"), "ci", None)
        .await
        .unwrap();
    let secret = issued.secret.expose().clone();
    assert!(secret.starts_with("pbk_") && secret.len() == 47);

    let found = app::orgs::authenticate_api_key(&store, &secret)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.org, slug("demo"));
    assert_eq!(
        app::orgs::authenticate_api_key(&store, "pbk_wrong")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.list_api_keys(&slug("demo")).await.unwrap().len(), 1);
    assert_eq!(store.list_api_keys(&slug("acme")).await.unwrap().len(), 0);

    assert!(
        store
            .revoke_api_key(&slug("demo"), &issued.record.id)
            .await
            .unwrap()
    );
    assert_eq!(
        app::orgs::authenticate_api_key(&store, &secret)
            .await
            .unwrap(),
        None
    );
    assert!(
        !store
            .revoke_api_key(&slug("demo"), &issued.record.id)
            .await
            .unwrap()
    );
}

fn invoice(
    number: &str,
    customer: &str,
    total: &str,
    issued: time::Date,
) -> app::ledger::NewInvoice {
    app::ledger::NewInvoice {
        invoice_number: number.into(),
        customer_id: customer.into(),
        customer_name: "Acme Pty".into(),
        total: total.into(),
        currency: None,
        issue_date: issued,
        due_date: issued + Duration::days(30),
    }
}

#[tokio::test]
async fn ledger_invoices_are_written_once_and_listed_by_customer() {
    let store = test_store().await;
    let clock = FixedClock(NOW);
    let org = slug("demo");
    let add = |n: &'static str, c: &'static str, d| {
        let store = store.clone();
        let org = org.clone();
        async move {
            app::ledger::add_invoice(
                &store,
                &FixedClock(NOW),
                &org,
                Currency::Usd,
                &invoice(n, c, "100.00", d),
            )
            .await
        }
    };
    add("INV-1", "c-1", time::macros::date!(2026 - 09 - 01))
        .await
        .unwrap();
    add("INV-2", "c-1", time::macros::date!(2026 - 10 - 01))
        .await
        .unwrap();
    add("INV-3", "c-2", time::macros::date!(2026 - 10 - 01))
        .await
        .unwrap();
    let dup = app::ledger::add_invoice(
        &store,
        &clock,
        &org,
        Currency::Usd,
        &invoice("INV-1", "c-9", "5", NOW.date()),
    )
    .await;
    assert!(matches!(
        dup,
        Err(app::ledger::NewInvoiceError::Write(
            LedgerWriteError::Exists(_)
        ))
    ));

    let read = store
        .get_invoice(&org, &InvoiceNumber::parse("INV-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        read.invoice.customer_id.as_str(),
        "c-1",
        "the duplicate did not overwrite"
    );
    assert_eq!(read.invoice.amount_due.amount_string(), "100.00");
    assert_eq!(read.version, 1);

    let numbers: Vec<String> = store
        .invoices_of_customer(&org, &CustomerId::parse("c-1").unwrap())
        .await
        .unwrap()
        .iter()
        .map(|i| i.number.to_string())
        .collect();
    assert_eq!(numbers, ["INV-2", "INV-1"]);
}

fn payment(id: &str, invoice: &str, minor: u64) -> Payment {
    Payment {
        id: PaymentId::from_ulid(id).unwrap(),
        org: slug("demo"),
        invoice_number: InvoiceNumber::parse(invoice).unwrap(),
        customer_id: None,
        amount: Money::from_minor(minor, Currency::Usd).unwrap(),
        allocations: Vec::new(),
        surcharge: Money::zero(Currency::Usd),
        status: PaymentStatus::Pending,
        gateway: "sandbox".into(),
        gateway_ref: Some(format!("ch_{id}")),
        method: None,
        failure: None,
        receipt_email: None,
        created_at: NOW,
        updated_at: NOW,
    }
}

#[tokio::test]
async fn payments_list_newest_first_in_pages_and_move_only_forward() {
    let store = test_store().await;
    let org = slug("demo");
    let ids = [
        "01JD8X3Q9M6V4W2K7T5R1N0P01",
        "01JD8X3Q9M6V4W2K7T5R1N0P02",
        "01JD8X3Q9M6V4W2K7T5R1N0P03",
    ];
    for id in ids {
        store
            .insert_payment(&payment(id, "INV-1", 1000))
            .await
            .unwrap();
    }
    assert_eq!(
        store.insert_payment(&payment(ids[0], "INV-1", 1)).await,
        Err(PaymentWriteError::Exists)
    );

    let first = app::payments::list_payments(&store, &org, Some(2), None)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.items[0].id.as_str(), format!("pay_{}", ids[2]));
    let second = app::payments::list_payments(&store, &org, Some(2), first.next.as_deref())
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].id.as_str(), format!("pay_{}", ids[0]));
    assert_eq!(second.items[0].amount.amount_string(), "10.00");

    let id = PaymentId::from_ulid(ids[0]).unwrap();
    store
        .move_payment(
            &org,
            &id,
            PaymentStatus::Pending,
            PaymentStatus::Succeeded,
            NOW,
        )
        .await
        .unwrap();
    // Replayed, reordered or backwards moves change nothing.
    assert_eq!(
        store
            .move_payment(
                &org,
                &id,
                PaymentStatus::Pending,
                PaymentStatus::Failed,
                NOW
            )
            .await,
        Err(PaymentWriteError::State)
    );
    assert_eq!(
        store
            .move_payment(
                &org,
                &id,
                PaymentStatus::Succeeded,
                PaymentStatus::Pending,
                NOW
            )
            .await,
        Err(PaymentWriteError::State)
    );
    let stored = store.get_payment(&org, &id).await.unwrap().unwrap();
    assert_eq!(stored.status, PaymentStatus::Succeeded);
}

#[tokio::test]
async fn an_attempt_locks_the_invoice_and_its_outcome_lands_with_the_balance_or_not_at_all() {
    let store = test_store().await;
    let clock = FixedClock(NOW);
    let org = slug("demo");
    let number = InvoiceNumber::parse("INV-7").unwrap();
    app::ledger::add_invoice(
        &store,
        &clock,
        &org,
        Currency::Usd,
        &invoice("INV-7", "c-1", "100.00", NOW.date()),
    )
    .await
    .unwrap();
    let read = store.read_invoice(&org, &number).await.unwrap().unwrap();
    let lock_until = NOW + Duration::minutes(2);

    let mut part = payment("01JD8X3Q9M6V4W2K7T5R1N0P11", "INV-7", 4000);
    part.gateway_ref = None;
    store.begin_attempt(&part, lock_until, NOW).await.unwrap();
    // While it is in flight, no other payment of the invoice may start.
    let other = payment("01JD8X3Q9M6V4W2K7T5R1N0P12", "INV-7", 6000);
    assert_eq!(
        store.begin_attempt(&other, lock_until, NOW).await,
        Err(AttemptError::InvoiceBusy)
    );
    assert_eq!(
        store.get_payment(&org, &other.id).await.unwrap(),
        None,
        "nothing half-written"
    );

    part.status = PaymentStatus::Succeeded;
    part.gateway_ref = Some("ch_1".into());
    store
        .finish_approved(&part, std::slice::from_ref(&read), None, NOW)
        .await
        .unwrap();
    let after = store.read_invoice(&org, &number).await.unwrap().unwrap();
    assert_eq!(after.invoice.amount_due.amount_string(), "60.00");
    assert_eq!(after.invoice.status, InvoiceStatus::Open);
    let stored = store.get_payment(&org, &part.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.gateway_ref.as_deref()),
        (PaymentStatus::Succeeded, Some("ch_1"))
    );
    // Finishing twice is refused by the payment's own state, and the balance drops once.
    assert_eq!(
        store
            .finish_approved(&part, std::slice::from_ref(&after), None, NOW)
            .await,
        Err(FinishError::NotPending)
    );
    assert_eq!(
        store
            .read_invoice(&org, &number)
            .await
            .unwrap()
            .unwrap()
            .invoice
            .amount_due
            .amount_string(),
        "60.00"
    );

    // The lock went with the outcome. A payment computed from the stale read is refused as a
    // whole: it stays pending with its attempt open, the balance stays.
    let mut rest = other.clone();
    store.begin_attempt(&rest, lock_until, NOW).await.unwrap();
    rest.status = PaymentStatus::Succeeded;
    assert_eq!(
        store
            .finish_approved(&rest, std::slice::from_ref(&read), None, NOW)
            .await,
        Err(FinishError::InvoiceChanged)
    );
    assert_eq!(
        store
            .get_payment(&org, &rest.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        PaymentStatus::Pending
    );
    assert_eq!(
        store
            .read_invoice(&org, &number)
            .await
            .unwrap()
            .unwrap()
            .invoice
            .amount_due
            .amount_string(),
        "60.00"
    );
    // From a fresh read it pays the rest, and the invoice is paid.
    store
        .finish_approved(&rest, std::slice::from_ref(&after), None, NOW)
        .await
        .unwrap();
    let paid = store.read_invoice(&org, &number).await.unwrap().unwrap();
    assert_eq!(paid.invoice.status, InvoiceStatus::Paid);
    assert!(paid.invoice.amount_due.is_zero());
}

#[tokio::test]
async fn a_declined_attempt_keeps_the_balance_and_an_expired_lock_does_not_block() {
    let store = test_store().await;
    let org = slug("demo");
    let number = InvoiceNumber::parse("INV-8").unwrap();
    app::ledger::add_invoice(
        &store,
        &FixedClock(NOW),
        &org,
        Currency::Usd,
        &invoice("INV-8", "c-1", "50.00", NOW.date()),
    )
    .await
    .unwrap();
    let mut declined = payment("01JD8X3Q9M6V4W2K7T5R1N0P21", "INV-8", 5000);
    store
        .begin_attempt(&declined, NOW + Duration::minutes(2), NOW)
        .await
        .unwrap();
    declined.status = PaymentStatus::Failed;
    declined.failure = Some("insufficient_funds".into());
    store.finish_declined(&declined, NOW).await.unwrap();
    let stored = store
        .get_payment(&org, &declined.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.status, stored.failure.as_deref()),
        (PaymentStatus::Failed, Some("insufficient_funds"))
    );
    assert_eq!(
        store
            .read_invoice(&org, &number)
            .await
            .unwrap()
            .unwrap()
            .invoice
            .amount_due
            .amount_string(),
        "50.00"
    );

    // An attempt that died holds its lock only until it expires.
    let abandoned = payment("01JD8X3Q9M6V4W2K7T5R1N0P22", "INV-8", 5000);
    store
        .begin_attempt(&abandoned, NOW + Duration::minutes(2), NOW)
        .await
        .unwrap();
    let next = payment("01JD8X3Q9M6V4W2K7T5R1N0P23", "INV-8", 5000);
    let later = NOW + Duration::minutes(3);
    store
        .begin_attempt(&next, later + Duration::minutes(2), later)
        .await
        .unwrap();
    // The abandoned attempt, finishing late, still records its outcome without taking the new lock.
    let mut late = abandoned.clone();
    late.status = PaymentStatus::Failed;
    late.failure = Some("card_declined".into());
    store.finish_declined(&late, later).await.unwrap();
    let third = payment("01JD8X3Q9M6V4W2K7T5R1N0P24", "INV-8", 5000);
    assert_eq!(
        store
            .begin_attempt(&third, later + Duration::minutes(2), later)
            .await,
        Err(AttemptError::InvoiceBusy)
    );
}

fn response(body: &str) -> StoredResponse {
    StoredResponse {
        status: 201,
        content_type: "application/json".into(),
        body: body.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn idempotency_claim_complete_replay_and_mismatch() {
    let store = test_store().await;
    let key = IdempotencyKey::new("demo#pay-now", "key-1").unwrap();
    assert_eq!(
        store.claim(&key, "hash-a", "pay_1", NOW).await.unwrap(),
        Claim::Fresh {
            resource_id: "pay_1".into()
        }
    );
    // While the first request works: 409 for the same request, 422 for another.
    assert_eq!(
        store.claim(&key, "hash-a", "pay_2", NOW).await.unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        store.claim(&key, "hash-b", "pay_2", NOW).await.unwrap(),
        Claim::Mismatch
    );

    let body = r#"{"id":"pay_1","status":"succeeded"}"#;
    store
        .complete(&key, "hash-a", &response(body), NOW)
        .await
        .unwrap();
    let later = NOW + Duration::hours(23);
    assert_eq!(
        store.claim(&key, "hash-a", "pay_3", later).await.unwrap(),
        Claim::Replay(response(body))
    );
    assert_eq!(
        store.claim(&key, "hash-b", "pay_3", later).await.unwrap(),
        Claim::Mismatch
    );
    // The same key in another scope is another key.
    let other = IdempotencyKey::new("acme#pay-now", "key-1").unwrap();
    assert!(matches!(
        store.claim(&other, "hash-b", "pay_4", NOW).await.unwrap(),
        Claim::Fresh { .. }
    ));
    // After its retention a record counts as gone, even before TTL deletes it.
    let expired = NOW + Duration::hours(25);
    assert_eq!(
        store.claim(&key, "hash-b", "pay_5", expired).await.unwrap(),
        Claim::Fresh {
            resource_id: "pay_5".into()
        }
    );
}

#[tokio::test]
async fn an_abandoned_claim_is_taken_over_with_its_original_resource() {
    let store = test_store().await;
    let key = IdempotencyKey::new("demo#pay-now", "key-2").unwrap();
    store.claim(&key, "hash-a", "pay_first", NOW).await.unwrap();
    let after_lock = NOW + app::idempotency::IN_PROGRESS_LOCK + Duration::seconds(1);
    // Another request with the key is still a mismatch, even after the lock.
    assert_eq!(
        store
            .claim(&key, "hash-b", "pay_x", after_lock)
            .await
            .unwrap(),
        Claim::Mismatch
    );
    assert_eq!(
        store
            .claim(&key, "hash-a", "pay_second", after_lock)
            .await
            .unwrap(),
        Claim::TakenOver {
            resource_id: "pay_first".into()
        }
    );
    // The takeover holds a fresh lock.
    assert_eq!(
        store
            .claim(&key, "hash-a", "pay_third", after_lock)
            .await
            .unwrap(),
        Claim::InProgress
    );
    // Whoever finishes the (same) request completes it; later retries replay that.
    store
        .complete(&key, "hash-a", &response("{}"), after_lock)
        .await
        .unwrap();
    assert_eq!(
        store.claim(&key, "hash-a", "p", after_lock).await.unwrap(),
        Claim::Replay(response("{}"))
    );
}

#[tokio::test]
async fn a_released_claim_can_be_retried() {
    let store = test_store().await;
    let key = IdempotencyKey::new("demo#pay-now", "key-3").unwrap();
    store.claim(&key, "hash-a", "pay_1", NOW).await.unwrap();
    store.release(&key, "hash-a").await.unwrap();
    assert!(matches!(
        store.claim(&key, "hash-b", "pay_2", NOW).await.unwrap(),
        Claim::Fresh { .. }
    ));
    // Releasing a completed record does nothing.
    store
        .complete(&key, "hash-b", &response("{}"), NOW)
        .await
        .unwrap();
    store.release(&key, "hash-b").await.unwrap();
    assert!(matches!(
        store.claim(&key, "hash-b", "x", NOW).await.unwrap(),
        Claim::Replay(_)
    ));
}

/// `n` claims of one key at once, each proposing its own resource id.
async fn claim_concurrently(
    store: &store::Store,
    key: &IdempotencyKey,
    n: usize,
    at: OffsetDateTime,
) -> Vec<Claim> {
    let claims = (0..n).map(|i| {
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move {
            store
                .claim(&key, "hash-a", &format!("pay_{i}"), at)
                .await
                .unwrap()
        })
    });
    futures::future::join_all(claims)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_claims_of_one_key_have_exactly_one_winner() {
    let store = test_store().await;
    let key = IdempotencyKey::new("demo#pay-now", "hot-key").unwrap();
    let results = claim_concurrently(&store, &key, 40, NOW).await;
    let winners = results
        .iter()
        .filter(|c| matches!(c, Claim::Fresh { .. }))
        .count();
    let waiting = results.iter().filter(|c| **c == Claim::InProgress).count();
    assert_eq!((winners, waiting), (1, 39), "{results:?}");

    // Many concurrent takeovers of an abandoned claim: exactly one takes it.
    let after_lock = NOW + app::idempotency::IN_PROGRESS_LOCK + Duration::seconds(1);
    let results = claim_concurrently(&store, &key, 20, after_lock).await;
    let taken = results
        .iter()
        .filter(|c| matches!(c, Claim::TakenOver { .. }))
        .count();
    assert_eq!(taken, 1, "{results:?}");
}
