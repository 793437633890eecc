//! The sandbox gateway's customers and saved methods against DynamoDB Local: every test on a
//! table of its own.

use std::sync::Arc;

use app::ports::{
    ChargeOutcome, ChargeRequest, ChargeSource, DeclineReason, Gateway, GatewayError, GatewayMethod,
};
use app::system::{FixedClock, RandomIds};
use aws_sdk_dynamodb::types::AttributeValue;
use devtools::test_store;
use domain::{Currency, Email, Money, OrgSlug, Secret};
use gateways::sandbox::{SandboxGateway, TokenRequest};
use store::Store;
use time::{OffsetDateTime, macros::datetime};

const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);
const CVC: &str = "739";

fn slug(s: &str) -> OrgSlug {
    OrgSlug::parse(s).unwrap()
}

fn sandbox(store: &Store, now: OffsetDateTime) -> SandboxGateway {
    SandboxGateway::new(
        store.clone(),
        Arc::new(FixedClock(now)),
        Arc::new(RandomIds),
    )
}

fn card(number: &str, exp_month: u8, exp_year: u16) -> TokenRequest {
    TokenRequest::Card {
        card_number: number.into(),
        exp_month,
        exp_year,
        cvc: if number.len() == 15 { "7391" } else { CVC }.into(),
    }
}

fn bank(account: &str, holder: &str) -> TokenRequest {
    TokenRequest::Bank {
        routing_number: "110000000".into(),
        account_number: account.into(),
        account_holder: holder.into(),
    }
}

async fn token(gateway: &SandboxGateway, request: TokenRequest) -> Secret<String> {
    gateway.tokenize(request).await.unwrap().token
}

async fn customer(gateway: &SandboxGateway, org: &str, reference: &str) -> String {
    gateway
        .create_customer(
            &slug(org),
            reference,
            &Email::parse("pat@example.com").unwrap(),
            "Pat Payer",
        )
        .await
        .unwrap()
}

/// Saves a new token of `request` to the customer.
async fn saved(
    gateway: &SandboxGateway,
    org: &str,
    customer: &str,
    request: TokenRequest,
) -> GatewayMethod {
    let token = token(gateway, request).await;
    gateway
        .attach_method(&slug(org), customer, &token)
        .await
        .unwrap()
        .expect("a fresh token attaches")
}

fn charge_saved(org: &str, reference: &str, customer: &str, method: &str) -> ChargeRequest {
    ChargeRequest {
        org: slug(org),
        reference: reference.into(),
        amount: Money::parse("120.00", Currency::Usd).unwrap(),
        source: ChargeSource::Saved {
            customer: customer.into(),
            method: method.into(),
        },
        description: "Invoice INV-1".into(),
    }
}

fn declined(reason: DeclineReason) -> impl Fn(&ChargeOutcome) -> bool {
    move |o| matches!(o, ChargeOutcome::Declined { reason: r, .. } if *r == reason)
}

#[tokio::test]
async fn a_card_token_attaches_once_with_what_may_be_shown_of_it() {
    let store = test_store().await;
    let gateway = sandbox(&store, NOW);
    let pat = customer(&gateway, "demo", "payer-1").await;
    let token = token(&gateway, card("4242 4242 4242 4242", 12, 2030)).await;

    let method = gateway
        .attach_method(&slug("demo"), &pat, &token)
        .await
        .unwrap()
        .expect("the token attaches");
    assert!(
        method.method_ref.starts_with("pm_sb_"),
        "{}",
        method.method_ref
    );
    assert_eq!(
        (
            method.kind.as_str(),
            method.brand.as_str(),
            method.last4.as_str()
        ),
        ("card", "visa", "4242")
    );
    assert_eq!((method.exp_month, method.exp_year), (Some(12), Some(2030)));
    assert_eq!(method.holder_name, None);
    assert_eq!(method.fingerprint.len(), 32);
    assert!(method.fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));

    // Spent: it attaches no second time, to anyone, and cannot be charged either.
    let other = customer(&gateway, "demo", "payer-2").await;
    for who in [&pat, &other] {
        let again = gateway.attach_method(&slug("demo"), who, &token).await;
        assert_eq!(again, Ok(None));
    }
    let by_token = ChargeRequest {
        source: ChargeSource::Token(token),
        ..charge_saved("demo", "pay-1", &pat, &method.method_ref)
    };
    let outcome = gateway.charge(&by_token).await.unwrap();
    assert!(
        declined(DeclineReason::InvalidToken)(&outcome),
        "{outcome:?}"
    );

    // The saved method describes itself for its customer only.
    let source = ChargeSource::Saved {
        customer: pat.clone(),
        method: method.method_ref.clone(),
    };
    let summary = gateway.describe(&slug("demo"), &source).await.unwrap();
    assert_eq!(summary.map(|s| s.last4), Some("4242".to_owned()));
    let theirs = ChargeSource::Saved {
        customer: other,
        method: method.method_ref,
    };
    assert_eq!(gateway.describe(&slug("demo"), &theirs).await, Ok(None));
}

#[tokio::test]
async fn the_same_number_gives_the_same_fingerprint_and_another_number_another() {
    let store = test_store().await;
    let gateway = sandbox(&store, NOW);
    let pat = customer(&gateway, "demo", "payer-1").await;

    let first = saved(&gateway, "demo", &pat, card("4242424242424242", 12, 2030)).await;
    let again = saved(&gateway, "demo", &pat, card("4242-4242-4242-4242", 3, 2031)).await;
    let other = saved(&gateway, "demo", &pat, card("5555555555554444", 12, 2030)).await;

    assert_ne!(first.method_ref, again.method_ref);
    assert_eq!(first.fingerprint, again.fingerprint);
    assert_ne!(first.fingerprint, other.fingerprint);
    assert_eq!(
        (other.brand.as_str(), other.last4.as_str()),
        ("mastercard", "4444")
    );
}

#[tokio::test]
async fn a_bank_account_keeps_its_holder_and_the_banks_name() {
    let store = test_store().await;
    let gateway = sandbox(&store, NOW);
    let pat = customer(&gateway, "demo", "payer-1").await;

    let account = saved(&gateway, "demo", &pat, bank("000123456789", " Pat Payer ")).await;
    assert_eq!(
        (
            account.kind.as_str(),
            account.brand.as_str(),
            account.last4.as_str()
        ),
        ("bank", "Sandbox Bank", "6789")
    );
    assert_eq!(account.holder_name.as_deref(), Some("Pat Payer"));
    assert_eq!((account.exp_month, account.exp_year), (None, None));

    let same = saved(&gateway, "demo", &pat, bank("000123456789", "P. Payer")).await;
    let other = saved(&gateway, "demo", &pat, bank("000111111116", "Pat Payer")).await;
    assert_eq!(account.fingerprint, same.fingerprint);
    assert_ne!(account.fingerprint, other.fingerprint);

    // A saved test account that settles later is approved and settling, like its token.
    let outcome = gateway
        .charge(&charge_saved("demo", "pay-1", &pat, &account.method_ref))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ChargeOutcome::Approved { settling: true, .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_saved_card_is_charged_again_and_again_but_once_per_reference() {
    let store = test_store().await;
    let gateway = sandbox(&store, NOW);
    let pat = customer(&gateway, "demo", "payer-1").await;
    let method = saved(&gateway, "demo", &pat, card("4242424242424242", 12, 2030)).await;

    let charge = |reference: &'static str| {
        let request = charge_saved("demo", reference, &pat, &method.method_ref);
        let gateway = &gateway;
        async move { gateway.charge(&request).await.unwrap() }
    };
    let approved = |o: &ChargeOutcome| match o {
        ChargeOutcome::Approved {
            gateway_ref,
            settling: false,
            method,
        } => {
            assert_eq!(
                (method.brand.as_str(), method.last4.as_str()),
                ("visa", "4242")
            );
            gateway_ref.clone()
        }
        other => panic!("not approved: {other:?}"),
    };
    let first = approved(&charge("pay-1").await);
    let second = approved(&charge("pay-2").await);
    assert_ne!(first, second);
    assert_eq!(approved(&charge("pay-1").await), first);

    let recorded = gateway.charges(10).await.unwrap();
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|c| c.status == "succeeded"));
    assert_eq!(
        gateway.find_charge(&slug("demo"), "pay-2").await.unwrap(),
        Some(charge("pay-2").await)
    );
}

#[tokio::test]
async fn a_saved_declining_card_is_declined_as_its_token_would_be() {
    let store = test_store().await;
    let gateway = sandbox(&store, NOW);
    let pat = customer(&gateway, "demo", "payer-1").await;
    let method = saved(&gateway, "demo", &pat, card("4000000000000002", 12, 2030)).await;

    let request = charge_saved("demo", "pay-1", &pat, &method.method_ref);
    let outcome = gateway.charge(&request).await.unwrap();
    let ChargeOutcome::Declined {
        gateway_ref: Some(charge_id),
        reason,
    } = &outcome
    else {
        panic!("not a recorded decline: {outcome:?}");
    };
    assert_eq!(reason.code(), "card_declined");
    // The decline is a charge of its own: the same reference answers with it.
    assert_eq!(gateway.charge(&request).await.unwrap(), outcome);
    assert!(charge_id.starts_with("ch_"));
}

#[tokio::test]
async fn a_saved_card_past_its_expiry_is_declined_as_expired() {
    let store = test_store().await;
    let gateway = sandbox(&store, NOW);
    let pat = customer(&gateway, "demo", "payer-1").await;
    let method = saved(&gateway, "demo", &pat, card("4242424242424242", 12, 2026)).await;
    let request = |reference| charge_saved("demo", reference, &pat, &method.method_ref);

    let last_day = sandbox(&store, datetime!(2026-12-31 23:00 UTC));
    let outcome = last_day.charge(&request("pay-1")).await.unwrap();
    assert!(
        matches!(outcome, ChargeOutcome::Approved { .. }),
        "{outcome:?}"
    );

    let next_year = sandbox(&store, datetime!(2027-01-01 00:00 UTC));
    let outcome = next_year.charge(&request("pay-2")).await.unwrap();
    assert!(declined(DeclineReason::Expired)(&outcome), "{outcome:?}");
}

#[tokio::test]
async fn another_customers_or_a_detached_method_is_an_invalid_token() {
    let store = test_store().await;
    let gateway = sandbox(&store, NOW);
    let pat = customer(&gateway, "demo", "payer-1").await;
    let sam = customer(&gateway, "demo", "payer-2").await;
    let method = saved(&gateway, "demo", &pat, card("4242424242424242", 12, 2030)).await;
    let invalid = declined(DeclineReason::InvalidToken);

    // Sam can neither charge nor detach Pat's card, nor can another org reach it.
    let outcome = gateway
        .charge(&charge_saved("demo", "pay-1", &sam, &method.method_ref))
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            ChargeOutcome::Declined {
                gateway_ref: None,
                ..
            }
        ) && invalid(&outcome),
        "{outcome:?}"
    );
    let outcome = gateway
        .charge(&charge_saved("acme", "pay-1", &pat, &method.method_ref))
        .await
        .unwrap();
    assert!(invalid(&outcome), "{outcome:?}");
    let refused = gateway
        .detach_method(&slug("demo"), &sam, &method.method_ref)
        .await;
    assert!(
        matches!(refused, Err(GatewayError::Unavailable(_))),
        "{refused:?}"
    );
    let outcome = gateway
        .charge(&charge_saved("demo", "pay-2", &pat, &method.method_ref))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ChargeOutcome::Approved { .. }),
        "{outcome:?}"
    );

    // Detached, it is gone for Pat too; detaching it again is fine.
    for _ in 0..2 {
        gateway
            .detach_method(&slug("demo"), &pat, &method.method_ref)
            .await
            .unwrap();
    }
    let outcome = gateway
        .charge(&charge_saved("demo", "pay-3", &pat, &method.method_ref))
        .await
        .unwrap();
    assert!(invalid(&outcome), "{outcome:?}");
    let source = ChargeSource::Saved {
        customer: pat,
        method: method.method_ref,
    };
    assert_eq!(gateway.describe(&slug("demo"), &source).await, Ok(None));
    assert_eq!(gateway.charges(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_same_customer_reference_gives_the_same_customer() {
    let store = test_store().await;
    let gateway = sandbox(&store, NOW);

    let first = customer(&gateway, "demo", "payer-1").await;
    assert!(first.starts_with("cus_"), "{first}");
    assert_eq!(customer(&gateway, "demo", "payer-1").await, first);
    assert_ne!(customer(&gateway, "demo", "payer-2").await, first);
    assert_ne!(customer(&gateway, "acme", "payer-1").await, first);

    // Concurrent first calls agree too.
    let (a, b) = tokio::join!(
        customer(&gateway, "demo", "payer-3"),
        customer(&gateway, "demo", "payer-3")
    );
    assert_eq!(a, b);
}

#[tokio::test]
async fn attaching_to_an_unknown_customer_is_an_error_and_spends_nothing() {
    let store = test_store().await;
    let gateway = sandbox(&store, NOW);
    let pat = customer(&gateway, "demo", "payer-1").await;
    let token = token(&gateway, card("4242424242424242", 12, 2030)).await;

    for (org, who) in [("demo", "cus_nobody"), ("acme", pat.as_str())] {
        let attached = gateway.attach_method(&slug(org), who, &token).await;
        assert_eq!(
            attached,
            Err(GatewayError::Unavailable("unknown customer".into()))
        );
    }
    let unknown_token = Secret::new("tok_unknown".to_owned());
    let attached = gateway
        .attach_method(&slug("demo"), "cus_nobody", &unknown_token)
        .await;
    assert!(attached.is_err(), "{attached:?}");
    assert_eq!(
        gateway
            .attach_method(&slug("demo"), &pat, &unknown_token)
            .await,
        Ok(None)
    );

    // The token was not spent by the refused attempts.
    let method = gateway
        .attach_method(&slug("demo"), &pat, &token)
        .await
        .unwrap();
    assert!(method.is_some());
}

#[tokio::test]
async fn the_gateways_calls_are_metered() {
    let store = test_store().await;
    let gateway = sandbox(&store, NOW);
    let calls = |before: store::Usage| store.usage().since(before).calls;

    let before = store.usage();
    let pat = customer(&gateway, "demo", "payer-1").await;
    assert_eq!(calls(before), 1, "one transaction");
    let before = store.usage();
    let method = saved(&gateway, "demo", &pat, card("4242424242424242", 12, 2030)).await;
    assert_eq!(calls(before), 3, "tokenize, then a read and a transaction");
    let before = store.usage();
    gateway
        .charge(&charge_saved("demo", "pay-1", &pat, &method.method_ref))
        .await
        .unwrap();
    assert_eq!(calls(before), 3, "the reference, the method, the charge");
    let before = store.usage();
    gateway
        .detach_method(&slug("demo"), &pat, &method.method_ref)
        .await
        .unwrap();
    assert_eq!(calls(before), 1);
    assert!(store.usage().write_units > 0.0);
}

/// Every value of an attribute, as text, however nested.
fn texts(value: &AttributeValue, out: &mut Vec<String>) {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => out.push(s.clone()),
        AttributeValue::Ss(list) | AttributeValue::Ns(list) => out.extend(list.iter().cloned()),
        AttributeValue::B(b) => out.push(String::from_utf8_lossy(b.as_ref()).into_owned()),
        AttributeValue::L(list) => list.iter().for_each(|v| texts(v, out)),
        AttributeValue::M(map) => map.values().for_each(|v| texts(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn no_card_number_or_cvc_is_stored() {
    let store = test_store().await;
    let gateway = sandbox(&store, NOW);
    let pat = customer(&gateway, "demo", "payer-1").await;
    let numbers = ["4242424242424242", "4000000000000002", "378282246310005"];
    for (i, number) in numbers.into_iter().enumerate() {
        let method = saved(&gateway, "demo", &pat, card(number, 12, 2030)).await;
        let reference = format!("pay-{i}");
        gateway
            .charge(&charge_saved("demo", &reference, &pat, &method.method_ref))
            .await
            .unwrap();
        let token = token(&gateway, card(number, 12, 2030)).await;
        let by_token = ChargeRequest {
            source: ChargeSource::Token(token),
            ..charge_saved("demo", &format!("{reference}-token"), &pat, "")
        };
        gateway.charge(&by_token).await.unwrap();
    }
    saved(&gateway, "demo", &pat, bank("000123456789", "Pat Payer")).await;

    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = store
            .client()
            .scan()
            .table_name(store.table())
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    let kinds = |kind: &str| {
        items
            .iter()
            .filter(|i| i.get("type") == Some(&AttributeValue::S(kind.into())))
            .count()
    };
    assert_eq!(kinds("sandbox_token"), 7);
    assert_eq!(kinds("sandbox_method"), 4);
    assert_eq!(kinds("sandbox_charge"), 6);
    assert_eq!(kinds("sandbox_customer"), 1);

    for item in &items {
        for (name, value) in item {
            let name_lower = name.to_lowercase();
            assert!(
                !name_lower.contains("cvc") && !name_lower.contains("cvv"),
                "{name} in {item:?}"
            );
            let mut values = Vec::new();
            texts(value, &mut values);
            for text in values {
                let digits: String = text.chars().filter(char::is_ascii_digit).collect();
                for number in numbers.iter().chain(&["000123456789"]) {
                    assert!(!digits.contains(number), "{number} in {name} of {item:?}");
                }
                assert!(text != CVC && text != "7391", "a CVC in {name} of {item:?}");
            }
        }
    }
}
