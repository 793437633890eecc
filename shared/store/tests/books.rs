//! The write-back queue and the accounting connections, against DynamoDB Local.

use app::ports::*;
use devtools::test_store;
use domain::*;
use time::{Duration, OffsetDateTime, macros::datetime};

const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

fn org() -> OrgSlug {
    OrgSlug::parse("demo").unwrap()
}

fn books(payment: &str, cents: u64) -> Books {
    Books {
        posting: PaymentPosting {
            org: org(),
            payment: PaymentId::parse(payment).unwrap(),
            invoice: InvoiceNumber::parse("INV-1").unwrap(),
            amount: Money::from_minor(cents, Currency::Usd).unwrap(),
            allocations: Vec::new(),
            surcharge: Money::zero(Currency::Usd),
            paid_on: NOW.date(),
            reference: "Paybridge".into(),
        },
        posted: None,
        want_reversed: false,
        reversed: false,
        unprocessed: None,
        last_error: None,
        attempts: 0,
        queued_at: NOW,
        updated_at: NOW,
    }
}

const PAY_A: &str = "pay_01JD0000000000000000000001";
const PAY_B: &str = "pay_01JD0000000000000000000002";
const PAY_C: &str = "pay_01JD0000000000000000000003";

fn key(payment: &str) -> FollowUpKey {
    FollowUpKey::Books {
        org: org(),
        payment: PaymentId::parse(payment).unwrap(),
    }
}

#[tokio::test]
async fn a_posting_is_queued_once_leased_once_and_parked_on_the_admins_list() {
    let store = test_store().await;
    assert!(store.queue_books(&books(PAY_A, 1000), NOW).await.unwrap());
    assert!(
        !store.queue_books(&books(PAY_A, 1000), NOW).await.unwrap(),
        "once per payment"
    );

    let due = store.due_follow_ups(NOW, 10).await.unwrap();
    assert_eq!(due, vec![key(PAY_A)]);
    let leased = store
        .lease(&key(PAY_A), "l1", NOW, NOW + Duration::minutes(1))
        .await
        .unwrap()
        .expect("due and free");
    let FollowUp::Books(held) = leased.follow_up else {
        panic!("a books follow-up")
    };
    assert_eq!(held.posting.amount.minor(), 1000);
    assert!(
        store
            .lease(&key(PAY_A), "l2", NOW, NOW + Duration::minutes(1))
            .await
            .unwrap()
            .is_none(),
        "one runner at a time"
    );

    store
        .park_books(&held, "l1", "invoice voided", NOW)
        .await
        .unwrap();
    assert!(
        store
            .due_follow_ups(NOW + Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let list = store.unprocessed(&org(), 10, None).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].unprocessed.as_deref(), Some("invoice voided"));

    // Back in the queue, due now, retries counted afresh; off the list.
    assert!(
        store
            .requeue_books(&org(), &held.posting.payment, NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .requeue_books(&org(), &held.posting.payment, NOW)
            .await
            .unwrap()
    );
    assert!(
        store
            .unprocessed(&org(), 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        store.due_follow_ups(NOW, 10).await.unwrap(),
        vec![key(PAY_A)]
    );
}

#[tokio::test]
async fn the_unprocessed_list_pages_oldest_first_and_fixed_ones_leave_it() {
    let store = test_store().await;
    for (i, payment) in [PAY_A, PAY_B, PAY_C].into_iter().enumerate() {
        let mut b = books(payment, 100);
        b.queued_at = NOW + Duration::minutes(i as i64);
        store.queue_books(&b, NOW).await.unwrap();
        let lease = format!("l{i}");
        let leased = store
            .lease(&key(payment), &lease, NOW, NOW + Duration::minutes(1))
            .await
            .unwrap()
            .unwrap();
        let FollowUp::Books(held) = leased.follow_up else {
            panic!()
        };
        store
            .park_books(&held, &lease, "refused", NOW)
            .await
            .unwrap();
    }
    let first = store.unprocessed(&org(), 2, None).await.unwrap();
    let ids: Vec<_> = first
        .items
        .iter()
        .map(|b| b.posting.payment.to_string())
        .collect();
    assert_eq!(ids, [PAY_A, PAY_B]);
    let rest = store
        .unprocessed(&org(), 2, first.next.as_deref())
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].posting.payment.to_string(), PAY_C);

    let b = store
        .get_books(&org(), &PaymentId::parse(PAY_B).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .books_done(&b, None, "fixed_by_hand", NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .books_done(&b, None, "fixed_by_hand", NOW)
            .await
            .unwrap(),
        "off the list"
    );
    let left = store.unprocessed(&org(), 10, None).await.unwrap();
    assert_eq!(left.items.len(), 2);
}

#[tokio::test]
async fn a_reversal_asked_for_while_a_post_runs_is_not_lost() {
    let store = test_store().await;
    store.queue_books(&books(PAY_A, 500), NOW).await.unwrap();
    let leased = store
        .lease(&key(PAY_A), "l1", NOW, NOW + Duration::minutes(1))
        .await
        .unwrap()
        .unwrap();
    let FollowUp::Books(mut held) = leased.follow_up else {
        panic!()
    };
    // The payment is refunded while the post is in flight.
    assert!(
        store
            .want_reversal(&org(), &held.posting.payment, NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .want_reversal(&org(), &held.posting.payment, NOW)
            .await
            .unwrap(),
        "once"
    );
    held.posted = Some("xero-1".into());
    store.books_progress(&held, "l1").await.unwrap();
    // The runner saw no reversal: its "done" is refused, and the item stays due.
    assert!(
        !store
            .books_done(&held, Some("l1"), "posted", NOW)
            .await
            .unwrap()
    );
    let later = NOW + Duration::minutes(5);
    let leased = store
        .lease(&key(PAY_A), "l2", later, later + Duration::minutes(1))
        .await
        .unwrap()
        .expect("still queued once the lease ran out");
    let FollowUp::Books(again) = leased.follow_up else {
        panic!()
    };
    assert!(again.want_reversed);
    assert_eq!(again.posted.as_deref(), Some("xero-1"));
    assert!(!again.is_settled());
    // No reversal for a payment never queued for the books (a ledger org's).
    assert!(
        !store
            .want_reversal(&org(), &PaymentId::parse(PAY_C).unwrap(), NOW)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn accounting_connections_are_sealed_and_a_token_rotation_lands_once() {
    let store = test_store().await;
    let secret = Secret::new(r#"{"refresh_token":"rt-1-very-secret"}"#.to_owned());
    let saved = store
        .put_accounting_config(&org(), "xero", &secret, NOW)
        .await
        .unwrap();
    assert_eq!(saved.version, 1);
    let read = store.accounting_config(&org()).await.unwrap().unwrap();
    assert_eq!(read.credentials.expose(), secret.expose());
    assert_eq!(read.system, "xero");

    // Two instances refresh from version 1: the first lands, the second is told to read again.
    let first = Secret::new(r#"{"refresh_token":"rt-2"}"#.to_owned());
    let second = Secret::new(r#"{"refresh_token":"rt-2b"}"#.to_owned());
    assert!(
        store
            .update_accounting_credentials(&org(), 1, &first, NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_accounting_credentials(&org(), 1, &second, NOW)
            .await
            .unwrap()
    );
    let read = store.accounting_config(&org()).await.unwrap().unwrap();
    assert_eq!(
        (read.version, read.credentials.expose().as_str()),
        (2, first.expose().as_str())
    );

    // The table holds no token in clear text.
    let out = store
        .client()
        .scan()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    let dump = format!("{:?}", out.items());
    assert!(
        !dump.contains("rt-1-very-secret") && !dump.contains("rt-2"),
        "sealed"
    );

    store.delete_accounting_config(&org()).await.unwrap();
    assert!(store.accounting_config(&org()).await.unwrap().is_none());
}
