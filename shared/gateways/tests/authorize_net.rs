//! The Authorize.Net adapter over real HTTP against the in-process double, which checks every
//! request against the published XSD and answers with the developer reference's shapes (with a
//! BOM, HTTP 200 even for errors). Test cards and accounts: see `devtools::anet_double`.

use std::time::Duration as StdDuration;

use app::ports::{
    ChargeOutcome, ChargeRequest, ChargeSource, ConnectionCheck, DeclineReason, Gateway,
    GatewayError, GatewayEvent, RefundOutcome, RefundRequest, WebhookDelivery, WebhookRejection,
};
use devtools::AnetDouble;
use devtools::anet_double::{DECLINE_CARD, RETURNED_ACCOUNT};
use domain::{Currency, Email, Money, OrgSlug, PaymentStatus, Secret};
use gateways::authorize_net::{self, AuthorizeNetGateway, NAME, short_reference};
use serde_json::Value;
use time::OffsetDateTime;

const LOGIN: &str = "pb-test-login";
/// 16 characters: the XSD's longest transaction key.
const KEY: &str = "9Xk2Tq7Lm4Rz8Wp3";
const SIGNATURE_KEY: &str = "7A3F9C2E1B8D4F6A0C5E9B2D7F1A3C8E4B6D0F2A9C7E5B1D3F8A6C4E2B0D9F7A";
const ROUTING: &str = "121042882";

fn org() -> OrgSlug {
    OrgSlug::parse("acme").unwrap()
}

fn usd(amount: &str) -> Money {
    Money::parse(amount, Currency::Usd).unwrap()
}

fn reference() -> String {
    format!("pay_{}", ulid::Ulid::new())
}

fn client(timeout: StdDuration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

fn gateway_with(double: &AnetDouble, http: reqwest::Client, key: &str) -> AuthorizeNetGateway {
    AuthorizeNetGateway::new(
        http,
        &double.endpoint(),
        Secret::new(LOGIN.to_owned()),
        Secret::new(key.to_owned()),
    )
}

fn setup() -> (AnetDouble, AuthorizeNetGateway) {
    let double = AnetDouble::start();
    double.add_merchant(LOGIN, KEY);
    let gateway = gateway_with(&double, client(StdDuration::from_secs(10)), KEY);
    (double, gateway)
}

fn card_token(double: &AnetDouble, number: &str) -> Secret<String> {
    Secret::new(double.tokenize_card(number, 12, 2030, "123"))
}

fn request(reference: &str, amount: &str, source: ChargeSource) -> ChargeRequest {
    ChargeRequest {
        org: org(),
        reference: reference.to_owned(),
        amount: usd(amount),
        source,
        description: "Invoice INV-1001".to_owned(),
    }
}

async fn charge(
    gateway: &AuthorizeNetGateway,
    reference: &str,
    amount: &str,
    source: ChargeSource,
) -> ChargeOutcome {
    gateway
        .charge(&request(reference, amount, source))
        .await
        .unwrap()
}

fn approved_ref(outcome: &ChargeOutcome) -> String {
    match outcome {
        ChargeOutcome::Approved { gateway_ref, .. } => gateway_ref.clone(),
        other => panic!("not approved: {other:?}"),
    }
}

/// How many createTransactionRequests the double received with this refId.
fn charges_sent(double: &AnetDouble, reference: &str) -> usize {
    let short = short_reference(reference);
    double
        .requests_of("createTransactionRequest")
        .iter()
        .filter(|r| r["refId"] == Value::String(short.clone()))
        .count()
}

fn event(charge: &str, kind: &str, reports: PaymentStatus) -> GatewayEvent {
    GatewayEvent {
        id: format!("evt-{charge}-{kind}"),
        kind: kind.to_owned(),
        reports,
        charge: charge.to_owned(),
        reference: None,
        refunded: None,
    }
}

async fn confirmed(gateway: &AuthorizeNetGateway, charge: &str) -> GatewayEvent {
    gateway
        .confirm_event(
            &org(),
            event(
                charge,
                "net.authorize.payment.authcapture.created",
                PaymentStatus::Succeeded,
            ),
            NAME,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_token_charge_is_approved_with_the_card_and_our_short_reference() {
    let (double, gateway) = setup();
    let reference = reference();
    let outcome = charge(
        &gateway,
        &reference,
        "125.00",
        ChargeSource::Token(card_token(&double, "4111111111111111")),
    )
    .await;
    let ChargeOutcome::Approved {
        gateway_ref,
        settling,
        method,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(!settling);
    assert_eq!(
        (
            method.kind.as_str(),
            method.brand.as_str(),
            method.last4.as_str()
        ),
        ("card", "visa", "1111")
    );
    let tx = double.transaction(&gateway_ref).unwrap();
    assert_eq!(tx.amount, "125.00");
    assert_eq!(tx.status, "capturedPendingSettlement");
    let short = short_reference(&reference);
    assert_eq!(short.len(), 20);
    assert!(reference.ends_with(&short));
    assert_eq!(tx.invoice_number.as_deref(), Some(short.as_str()));
    assert_eq!(tx.ref_id.as_deref(), Some(short.as_str()));
    assert_eq!(tx.description.as_deref(), Some("Invoice INV-1001"));
    // The window and the currency went in where the XSD has them.
    let sent = &double.requests_of("createTransactionRequest")[0]["transactionRequest"];
    assert_eq!(sent["currencyCode"], "USD");
    assert_eq!(
        sent["transactionSettings"]["setting"][0]["settingValue"],
        authorize_net::DUPLICATE_WINDOW_SECONDS.to_string()
    );
    // Found again by the reference alone.
    assert_eq!(
        gateway.find_charge(&org(), &reference).await.unwrap(),
        Some(ChargeOutcome::Approved {
            gateway_ref,
            settling: false,
            method,
        })
    );
}

#[tokio::test]
async fn declines_are_soft_or_hard_by_reason_code() {
    let (double, gateway) = setup();
    for (amount, expected) in [
        ("2.00", DeclineReason::Generic),
        ("3.00", DeclineReason::Generic),
        ("4.00", DeclineReason::Stolen),
        ("27.00", DeclineReason::Incorrect),
        ("65.00", DeclineReason::Incorrect),
        ("251.00", DeclineReason::Stolen),
    ] {
        let reference = reference();
        let outcome = charge(
            &gateway,
            &reference,
            amount,
            ChargeSource::Token(card_token(&double, DECLINE_CARD)),
        )
        .await;
        let ChargeOutcome::Declined {
            gateway_ref: Some(id),
            reason,
        } = outcome
        else {
            panic!("{amount}: {outcome:?}")
        };
        assert_eq!(reason, expected, "{amount}");
        assert_eq!(double.transaction(&id).unwrap().status, "declined");
        // A lookup gives the same decline (its reason from the transaction's details).
        assert_eq!(
            gateway.find_charge(&org(), &reference).await.unwrap(),
            Some(ChargeOutcome::Declined {
                gateway_ref: Some(id),
                reason: expected
            }),
            "{amount}"
        );
    }
}

#[tokio::test]
async fn errors_are_declines_about_the_card_or_gateway_errors_about_us() {
    let (double, gateway) = setup();
    // Errors (responseCode 3) about the card: no transaction, a hard decline.
    for (amount, expected) in [
        ("8.00", DeclineReason::Expired),
        ("6.00", DeclineReason::Incorrect),
        ("78.00", DeclineReason::Incorrect),
        ("19.00", DeclineReason::Generic),
    ] {
        let outcome = charge(
            &gateway,
            &reference(),
            amount,
            ChargeSource::Token(card_token(&double, DECLINE_CARD)),
        )
        .await;
        assert_eq!(
            outcome,
            ChargeOutcome::Declined {
                gateway_ref: None,
                reason: expected
            },
            "{amount}"
        );
    }
    let expired = Secret::new(double.tokenize_card("4111111111111111", 1, 2020, "123"));
    assert_eq!(
        charge(
            &gateway,
            &reference(),
            "10.00",
            ChargeSource::Token(expired)
        )
        .await,
        ChargeOutcome::Declined {
            gateway_ref: None,
            reason: DeclineReason::Expired
        }
    );
    assert!(double.transactions().is_empty());
    // An invoice in another currency than the account's: ours to fix, not the payer's.
    let cad = ChargeRequest {
        amount: Money::parse("10.00", Currency::Cad).unwrap(),
        ..request(
            &reference(),
            "10.00",
            ChargeSource::Token(card_token(&double, "4111111111111111")),
        )
    };
    let GatewayError::Unavailable(message) = gateway.charge(&cad).await.unwrap_err();
    assert!(message.contains("error 39"), "{message}");
    // Wrong credentials: a gateway error, never a decline.
    let wrong = gateway_with(
        &double,
        client(StdDuration::from_secs(10)),
        "WrongKey00000000",
    );
    let GatewayError::Unavailable(message) = wrong
        .charge(&request(
            &reference(),
            "10.00",
            ChargeSource::Token(card_token(&double, "4111111111111111")),
        ))
        .await
        .unwrap_err();
    assert!(message.contains("E00007"), "{message}");
}

#[tokio::test]
async fn a_spent_token_is_an_invalid_token_and_charges_nothing() {
    let (double, gateway) = setup();
    let token = card_token(&double, "4111111111111111");
    approved_ref(
        &charge(
            &gateway,
            &reference(),
            "10.00",
            ChargeSource::Token(token.clone()),
        )
        .await,
    );
    assert_eq!(
        charge(&gateway, &reference(), "10.00", ChargeSource::Token(token)).await,
        ChargeOutcome::Declined {
            gateway_ref: None,
            reason: DeclineReason::InvalidToken
        }
    );
    // An expired one (Accept.js tokens last 15 minutes) too.
    let late = card_token(&double, "4111111111111111");
    double.advance(time::Duration::minutes(16));
    assert_eq!(
        charge(&gateway, &reference(), "10.00", ChargeSource::Token(late)).await,
        ChargeOutcome::Declined {
            gateway_ref: None,
            reason: DeclineReason::InvalidToken
        }
    );
    assert_eq!(double.transactions().len(), 1);
}

#[tokio::test]
async fn a_duplicate_submission_is_resolved_by_lookup_to_the_one_transaction() {
    let (double, gateway) = setup();
    let reference = reference();
    let first = charge(
        &gateway,
        &reference,
        "50.00",
        ChargeSource::Token(card_token(&double, "4007000000027")),
    )
    .await;
    // The same payment sent again (say, by a retried function with a fresh token of the card).
    let again = charge(
        &gateway,
        &reference,
        "50.00",
        ChargeSource::Token(card_token(&double, "4007000000027")),
    )
    .await;
    assert_eq!(again, first);
    assert_eq!(charges_sent(&double, &reference), 2);
    assert_eq!(double.transactions().len(), 1, "charged once");
    // A duplicate of a decline is that decline.
    let declined_ref = self::reference();
    let declined = charge(
        &gateway,
        &declined_ref,
        "2.00",
        ChargeSource::Token(card_token(&double, DECLINE_CARD)),
    )
    .await;
    let again = charge(
        &gateway,
        &declined_ref,
        "2.00",
        ChargeSource::Token(card_token(&double, DECLINE_CARD)),
    )
    .await;
    assert_eq!(again, declined);
    assert!(matches!(
        again,
        ChargeOutcome::Declined {
            reason: DeclineReason::Generic,
            ..
        }
    ));
}

#[tokio::test]
async fn a_timed_out_charge_is_found_by_lookup_and_never_sent_twice() {
    let double = AnetDouble::start();
    double.add_merchant(LOGIN, KEY);
    let gateway = gateway_with(&double, client(StdDuration::from_millis(700)), KEY);
    let reference = reference();
    double.stall_next(StdDuration::from_secs(3));
    let outcome = charge(
        &gateway,
        &reference,
        "80.00",
        ChargeSource::Token(card_token(&double, "4111111111111111")),
    )
    .await;
    let id = approved_ref(&outcome);
    assert_eq!(charges_sent(&double, &reference), 1);
    assert_eq!(double.transactions().len(), 1);
    assert_eq!(double.transaction(&id).unwrap().amount, "80.00");
    assert!(
        !double
            .requests_of("getUnsettledTransactionListRequest")
            .is_empty()
    );

    // A lost answer to a charge that took nothing: unavailable now, not found later.
    let lost = self::reference();
    double.stall_next(StdDuration::from_secs(3));
    let error = gateway
        .charge(&request(
            &lost,
            "8.00",
            ChargeSource::Token(card_token(&double, DECLINE_CARD)),
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, GatewayError::Unavailable(_)));
    assert_eq!(charges_sent(&double, &lost), 1);
    assert_eq!(gateway.find_charge(&org(), &lost).await.unwrap(), None);
}

#[tokio::test]
async fn a_charge_held_for_review_stays_pending_until_the_review() {
    let (double, gateway) = setup();
    let reference = reference();
    let outcome = charge(
        &gateway,
        &reference,
        "252.00",
        ChargeSource::Token(card_token(&double, DECLINE_CARD)),
    )
    .await;
    let ChargeOutcome::Approved {
        gateway_ref,
        settling: true,
        ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        double.transaction(gateway_ref).unwrap().status,
        "FDSPendingReview"
    );
    assert_eq!(
        gateway.find_charge(&org(), &reference).await.unwrap(),
        Some(outcome.clone())
    );
    assert_eq!(
        confirmed(&gateway, gateway_ref).await.reports,
        PaymentStatus::Pending
    );
    // The review approves it.
    double.set_status(gateway_ref, "capturedPendingSettlement");
    let body = double.notification("net.authorize.payment.fraud.approved", gateway_ref);
    let headers = vec![(
        "X-ANET-Signature".to_owned(),
        AnetDouble::sign_webhook(SIGNATURE_KEY, &body),
    )];
    let delivery = WebhookDelivery {
        gateway: NAME,
        headers: &headers,
        body: &body,
    };
    let secrets = [Secret::new(SIGNATURE_KEY.to_owned())];
    let provisional = gateway
        .read_webhook(&delivery, &secrets, OffsetDateTime::now_utc())
        .unwrap()
        .unwrap();
    assert_eq!(provisional.reports, PaymentStatus::Succeeded);
    let confirmed = gateway
        .confirm_event(&org(), provisional, NAME)
        .await
        .unwrap();
    assert_eq!(confirmed.reports, PaymentStatus::Succeeded);
    assert_eq!(&confirmed.charge, gateway_ref);
    // Held, then declined by the review.
    let other = charge(
        &gateway,
        &self::reference(),
        "253.00",
        ChargeSource::Token(card_token(&double, DECLINE_CARD)),
    )
    .await;
    let held = approved_ref(&other);
    double.set_status(&held, "declined");
    assert_eq!(
        confirmed_status(&gateway, &held).await,
        PaymentStatus::Failed
    );
}

async fn confirmed_status(gateway: &AuthorizeNetGateway, charge: &str) -> PaymentStatus {
    confirmed(gateway, charge).await.reports
}

#[tokio::test]
async fn an_echeck_is_approved_as_settling_and_settles_or_is_returned() {
    let (double, gateway) = setup();
    let token = Secret::new(double.tokenize_bank(ROUTING, "123456789", "Pat Payer"));
    let outcome = charge(&gateway, &reference(), "300.00", ChargeSource::Token(token)).await;
    let ChargeOutcome::Approved {
        gateway_ref,
        settling: true,
        method,
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        (
            method.kind.as_str(),
            method.brand.as_str(),
            method.last4.as_str()
        ),
        ("bank", "bank", "6789")
    );
    // Not money until it settles.
    assert_eq!(
        confirmed_status(&gateway, gateway_ref).await,
        PaymentStatus::Pending
    );
    let returned = Secret::new(double.tokenize_bank(ROUTING, RETURNED_ACCOUNT, "Pat Payer"));
    let returned = approved_ref(
        &charge(
            &gateway,
            &reference(),
            "40.00",
            ChargeSource::Token(returned),
        )
        .await,
    );
    assert_eq!(double.settle().len(), 1, "one eCheck batch");
    assert_eq!(
        confirmed_status(&gateway, gateway_ref).await,
        PaymentStatus::Settled
    );
    assert_eq!(
        confirmed_status(&gateway, &returned).await,
        PaymentStatus::Returned
    );
    assert_eq!(
        double
            .transaction(&returned)
            .unwrap()
            .return_code
            .as_deref(),
        Some("R01")
    );
    // A settled eCheck is refunded to the same account, named as the details mask it.
    let outcome = gateway
        .refund(&refund_request(gateway_ref, "rfd_bank", "100.00", false))
        .await
        .unwrap();
    let RefundOutcome::Refunded {
        refund_ref,
        voided: false,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(double.transaction(&refund_ref).unwrap().amount, "100.00");
    let sent = double.requests_of("createTransactionRequest");
    let bank = &sent.last().unwrap()["transactionRequest"]["payment"]["bankAccount"];
    assert_eq!(bank["routingNumber"], "XXXX2882");
    assert_eq!(bank["accountNumber"], "XXXX6789");
    assert_eq!(bank["nameOnAccount"], "Pat Payer");
    // A returned one has nothing to refund.
    let RefundOutcome::Refused(why) = gateway
        .refund(&refund_request(&returned, "rfd_ret", "40.00", true))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(why.contains("returnedItem"), "{why}");
}

#[tokio::test]
async fn a_settled_charge_is_still_found_in_its_batch() {
    let (double, gateway) = setup();
    let reference = reference();
    let id = approved_ref(
        &charge(
            &gateway,
            &reference,
            "15.00",
            ChargeSource::Token(card_token(&double, "4111111111111111")),
        )
        .await,
    );
    double.settle();
    assert_eq!(
        gateway.find_charge(&org(), &reference).await.unwrap(),
        Some(ChargeOutcome::Approved {
            gateway_ref: id,
            settling: false,
            method: app::payments::MethodSummary {
                kind: "card".into(),
                brand: "visa".into(),
                last4: "1111".into()
            }
        })
    );
    assert!(!double.requests_of("getTransactionListRequest").is_empty());
    assert_eq!(
        gateway
            .find_charge(&org(), &self::reference())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_customer_created_twice_is_the_same_customer() {
    let (double, gateway) = setup();
    let email = Email::parse("pat@example.com").unwrap();
    let reference = "cust:acme:usr_01JD8Q3M4N5P6Q7R8S9T0V1W2X";
    let first = gateway
        .create_customer(&org(), reference, &email, "Pat Payer")
        .await
        .unwrap();
    let second = gateway
        .create_customer(&org(), reference, &email, "Pat Payer")
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(double.customer_profile_count(), 1);
    let sent = &double.requests_of("createCustomerProfileRequest")[0]["profile"];
    assert_eq!(sent["merchantCustomerId"].as_str().unwrap().len(), 20);
    assert_eq!(sent["email"], "pat@example.com");
    let other = gateway
        .create_customer(&org(), "cust:acme:usr_other", &email, "Pat Payer")
        .await
        .unwrap();
    assert_ne!(other, first);
}

#[tokio::test]
async fn a_card_saved_twice_is_the_same_method_and_charges_when_saved() {
    let (double, gateway) = setup();
    let email = Email::parse("pat@example.com").unwrap();
    let customer = gateway
        .create_customer(&org(), "payer-1", &email, "Pat Payer")
        .await
        .unwrap();
    let saved = gateway
        .attach_method(&org(), &customer, &card_token(&double, "5424000000000015"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            saved.kind.as_str(),
            saved.brand.as_str(),
            saved.last4.as_str()
        ),
        ("card", "mastercard", "0015")
    );
    assert_eq!((saved.exp_month, saved.exp_year), (Some(12), Some(2030)));
    assert_eq!(
        saved.fingerprint,
        format!("anet:{customer}:{}", saved.method_ref)
    );
    let again = gateway
        .attach_method(&org(), &customer, &card_token(&double, "5424000000000015"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, saved);
    assert_eq!(double.payment_profiles(&customer).len(), 1);
    assert_eq!(
        double.requests_of("createCustomerPaymentProfileRequest")[0]["validationMode"],
        "liveMode"
    );
    // A bank account is a method of its own.
    let bank = gateway
        .attach_method(
            &org(),
            &customer,
            &Secret::new(double.tokenize_bank(ROUTING, "987654321", "Pat Payer")),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((bank.kind.as_str(), bank.last4.as_str()), ("bank", "4321"));
    assert_eq!(bank.holder_name.as_deref(), Some("Pat Payer"));
    assert_eq!(bank.exp_month, None);
    assert_ne!(bank.fingerprint, saved.fingerprint);
    // A spent token, or an expired card checked with the issuer, saves nothing.
    let spent = card_token(&double, "4111111111111111");
    charge(
        &gateway,
        &reference(),
        "1.00",
        ChargeSource::Token(spent.clone()),
    )
    .await;
    assert_eq!(
        gateway
            .attach_method(&org(), &customer, &spent)
            .await
            .unwrap(),
        None
    );
    let expired = Secret::new(double.tokenize_card("4111111111111111", 1, 2021, "123"));
    assert_eq!(
        gateway
            .attach_method(&org(), &customer, &expired)
            .await
            .unwrap(),
        None
    );
    assert_eq!(double.payment_profiles(&customer).len(), 2);

    // Charging the saved card.
    let source = ChargeSource::Saved {
        customer: customer.clone(),
        method: saved.method_ref.clone(),
    };
    assert_eq!(
        gateway
            .describe(&org(), &source)
            .await
            .unwrap()
            .map(|m| m.last4),
        Some("0015".to_owned())
    );
    let outcome = charge(&gateway, &reference(), "42.00", source).await;
    let ChargeOutcome::Approved {
        gateway_ref,
        settling: false,
        method,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        (method.brand.as_str(), method.last4.as_str()),
        ("mastercard", "0015")
    );
    let tx = double.transaction(&gateway_ref).unwrap();
    assert_eq!(tx.customer_profile_id.as_deref(), Some(customer.as_str()));
    assert_eq!(
        tx.payment_profile_id.as_deref(),
        Some(saved.method_ref.as_str())
    );
    assert_eq!(tx.amount, "42.00");
}

#[tokio::test]
async fn a_detached_method_is_gone_and_detaching_again_is_fine() {
    let (double, gateway) = setup();
    let email = Email::parse("pat@example.com").unwrap();
    let customer = gateway
        .create_customer(&org(), "payer-2", &email, "Pat Payer")
        .await
        .unwrap();
    let saved = gateway
        .attach_method(&org(), &customer, &card_token(&double, "4111111111111111"))
        .await
        .unwrap()
        .unwrap();
    gateway
        .detach_method(&org(), &customer, &saved.method_ref)
        .await
        .unwrap();
    assert!(double.payment_profiles(&customer).is_empty());
    gateway
        .detach_method(&org(), &customer, &saved.method_ref)
        .await
        .unwrap();
    let source = ChargeSource::Saved {
        customer,
        method: saved.method_ref,
    };
    assert_eq!(gateway.describe(&org(), &source).await.unwrap(), None);
    assert_eq!(
        charge(&gateway, &reference(), "5.00", source).await,
        ChargeOutcome::Declined {
            gateway_ref: None,
            reason: DeclineReason::InvalidToken
        }
    );
}

fn refund_request(charge: &str, reference: &str, amount: &str, whole: bool) -> RefundRequest {
    RefundRequest {
        org: org(),
        reference: reference.to_owned(),
        charge: charge.to_owned(),
        amount: usd(amount),
        whole,
    }
}

#[tokio::test]
async fn a_settled_charge_is_refunded_once_per_reference() {
    let (double, gateway) = setup();
    let id = approved_ref(
        &charge(
            &gateway,
            &reference(),
            "100.00",
            ChargeSource::Token(card_token(&double, "4111111111111111")),
        )
        .await,
    );
    double.settle();
    let refund_ref = format!("rfd_{}", ulid::Ulid::new());
    let outcome = gateway
        .refund(&refund_request(&id, &refund_ref, "40.00", false))
        .await
        .unwrap();
    let RefundOutcome::Refunded {
        refund_ref: refund_id,
        voided: false,
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    let refund = double.transaction(refund_id).unwrap();
    assert_eq!(refund.transaction_type, "refundTransaction");
    assert_eq!(refund.amount, "40.00");
    assert_eq!(refund.ref_trans_id.as_deref(), Some(id.as_str()));
    let sent = &double.requests_of("createTransactionRequest")[1]["transactionRequest"];
    assert_eq!(sent["payment"]["creditCard"]["cardNumber"], "1111");
    assert_eq!(sent["payment"]["creditCard"]["expirationDate"], "XXXX");
    // The same refund again is that refund, not a second one.
    assert_eq!(
        gateway
            .refund(&refund_request(&id, &refund_ref, "40.00", false))
            .await
            .unwrap(),
        outcome
    );
    assert_eq!(
        double
            .transactions()
            .iter()
            .filter(|t| t.transaction_type == "refundTransaction")
            .count(),
        1
    );
    // More than is left is refused, as Authorize.Net puts it.
    let RefundOutcome::Refused(why) = gateway
        .refund(&refund_request(
            &id,
            &format!("rfd_{}", ulid::Ulid::new()),
            "70.00",
            false,
        ))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(why.contains("exceed"), "{why}");
    // The refund's notification names the refund; confirmed, it is the charge's, with the amount.
    let event = gateway
        .confirm_event(
            &org(),
            event(
                refund_id,
                "net.authorize.payment.refund.created",
                PaymentStatus::Refunded,
            ),
            NAME,
        )
        .await
        .unwrap();
    assert_eq!(event.charge, id);
    assert_eq!(event.reports, PaymentStatus::Refunded);
    assert_eq!(event.refunded, Some(usd("40.00")));
    double.settle();
    assert_eq!(
        double.transaction(refund_id).unwrap().status,
        "refundSettledSuccessfully"
    );
    assert_eq!(
        confirmed(&gateway, refund_id).await.refunded,
        Some(usd("40.00"))
    );
}

#[tokio::test]
async fn an_unsettled_charge_is_voided_whole_and_not_refunded_in_part() {
    let (double, gateway) = setup();
    let id = approved_ref(
        &charge(
            &gateway,
            &reference(),
            "60.00",
            ChargeSource::Token(card_token(&double, "4111111111111111")),
        )
        .await,
    );
    let RefundOutcome::Refused(why) = gateway
        .refund(&refund_request(&id, "rfd_part", "10.00", false))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(why.contains("not settled yet"), "{why}");
    assert_eq!(
        double.transaction(&id).unwrap().status,
        "capturedPendingSettlement"
    );
    assert_eq!(
        gateway
            .refund(&refund_request(&id, "rfd_whole", "60.00", true))
            .await
            .unwrap(),
        RefundOutcome::Refunded {
            refund_ref: id.clone(),
            voided: true
        }
    );
    assert_eq!(double.transaction(&id).unwrap().status, "voided");
    // Voiding again (a retry) is the same answer.
    assert_eq!(
        gateway
            .refund(&refund_request(&id, "rfd_whole", "60.00", true))
            .await
            .unwrap(),
        RefundOutcome::Refunded {
            refund_ref: id.clone(),
            voided: true
        }
    );
    let event = confirmed(&gateway, &id).await;
    assert_eq!(event.reports, PaymentStatus::Refunded);
    assert_eq!(event.refunded, Some(usd("60.00")));
}

#[tokio::test]
async fn confirmed_events_report_the_transactions_current_status() {
    let (double, gateway) = setup();
    let card = |n: &str| ChargeSource::Token(card_token(&double, n));
    let settled =
        approved_ref(&charge(&gateway, &reference(), "10.00", card("4111111111111111")).await);
    let disputed =
        approved_ref(&charge(&gateway, &reference(), "11.00", card("4111111111111111")).await);
    assert_eq!(
        confirmed_status(&gateway, &settled).await,
        PaymentStatus::Succeeded
    );
    double.settle();
    assert_eq!(
        confirmed_status(&gateway, &settled).await,
        PaymentStatus::Settled
    );
    double.set_status(&disputed, "chargeback");
    assert_eq!(
        confirmed_status(&gateway, &disputed).await,
        PaymentStatus::Disputed
    );
    double.set_status(&disputed, "chargebackReversal");
    assert_eq!(
        confirmed_status(&gateway, &disputed).await,
        PaymentStatus::DisputeWon
    );
    // An event the transaction contradicts is corrected: a decline reported as a capture.
    let declined = charge(&gateway, &reference(), "2.00", card(DECLINE_CARD)).await;
    let ChargeOutcome::Declined {
        gateway_ref: Some(declined),
        ..
    } = declined
    else {
        panic!("{declined:?}")
    };
    assert_eq!(
        confirmed_status(&gateway, &declined).await,
        PaymentStatus::Failed
    );
    // Another gateway's event is left as it came.
    let foreign = event("ch_1", "charge.settled", PaymentStatus::Settled);
    assert_eq!(
        gateway
            .confirm_event(&org(), foreign.clone(), "stripe")
            .await
            .unwrap(),
        foreign
    );
    assert!(
        gateway
            .confirm_event(&org(), event("99999", "x", PaymentStatus::Settled), NAME)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn webhook_signatures_are_checked_over_the_raw_body() {
    let (double, gateway) = setup();
    let id = approved_ref(
        &charge(
            &gateway,
            &reference(),
            "45.00",
            ChargeSource::Token(card_token(&double, "4111111111111111")),
        )
        .await,
    );
    let body = double.notification("net.authorize.payment.authcapture.created", &id);
    let signature = AnetDouble::sign_webhook(SIGNATURE_KEY, &body);
    let hex = signature.strip_prefix("sha512=").unwrap();
    assert_eq!(hex, hex.to_ascii_uppercase());
    let now = OffsetDateTime::now_utc();
    let read = |headers: &[(String, String)], body: &[u8], keys: &[Secret<String>]| {
        authorize_net::read_webhook(
            &WebhookDelivery {
                gateway: NAME,
                headers,
                body,
            },
            keys,
            now,
        )
    };
    let keys = [
        Secret::new("an-older-signature-key-in-its-grace-period".to_owned()),
        Secret::new(SIGNATURE_KEY.to_owned()),
    ];
    let headers = vec![("X-ANET-Signature".to_owned(), signature.clone())];
    let event = read(&headers, &body, &keys).unwrap().unwrap();
    assert_eq!(event.charge, id);
    assert_eq!(event.reports, PaymentStatus::Succeeded);
    let parsed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event.id, parsed["notificationId"]);
    // Lowercase hex, and a lowercase header name, are the same signature.
    let lower = vec![(
        "x-anet-signature".to_owned(),
        signature.to_ascii_lowercase(),
    )];
    assert_eq!(read(&lower, &body, &keys).unwrap().unwrap(), event);
    // Another key.
    assert_eq!(
        read(&headers, &body, &[Secret::new("not-the-key".to_owned())]),
        Err(WebhookRejection::Signature("no match"))
    );
    // One byte of the body changed.
    let mut tampered = body.clone();
    let at = tampered.len() - 3;
    tampered[at] ^= 1;
    assert_eq!(
        read(&headers, &tampered, &keys),
        Err(WebhookRejection::Signature("no match"))
    );
    assert_eq!(
        read(&[], &body, &keys),
        Err(WebhookRejection::Signature("missing"))
    );
}

#[tokio::test]
async fn test_connection_accepts_good_credentials_and_refuses_others_without_echoing_them() {
    let (double, gateway) = setup();
    assert_eq!(
        gateway.test_connection(&org()).await.unwrap(),
        ConnectionCheck::Accepted
    );
    let wrong = gateway_with(
        &double,
        client(StdDuration::from_secs(10)),
        "WrongKey00000000",
    );
    let ConnectionCheck::Refused(why) = wrong.test_connection(&org()).await.unwrap() else {
        panic!()
    };
    assert!(why.contains("E00007"), "{why}");
    assert!(!why.contains("WrongKey00000000"));
    // A key too long for the XSD: Authorize.Net's schema error quotes it; we do not.
    let long_key = "ThisKeyIsFarTooLong0123456789";
    let long = gateway_with(&double, client(StdDuration::from_secs(10)), long_key);
    let ConnectionCheck::Refused(why) = long.test_connection(&org()).await.unwrap() else {
        panic!()
    };
    assert!(why.contains("E00003") && why.contains("MaxLength"), "{why}");
    assert!(!why.contains(long_key), "{why}");
    let GatewayError::Unavailable(error) = long
        .charge(&request(
            &reference(),
            "1.00",
            ChargeSource::Token(card_token(&double, "4111111111111111")),
        ))
        .await
        .unwrap_err();
    assert!(!error.contains(long_key), "{error}");
    assert!(!format!("{long:?}").contains(long_key));
}

async fn post_raw(double: &AnetDouble, body: &str) -> (u16, Vec<u8>) {
    let response = reqwest::Client::new()
        .post(double.endpoint())
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test]
async fn the_double_refuses_keys_out_of_xsd_order_as_authorize_net_does() {
    let (double, _gateway) = setup();
    // transactionType must come before amount.
    let out_of_order = format!(
        r#"{{"createTransactionRequest": {{"merchantAuthentication": {{"name": "{LOGIN}", "transactionKey": "{KEY}"}},
            "transactionRequest": {{"amount": "5.00", "transactionType": "authCaptureTransaction"}}}}}}"#
    );
    let (status, bytes) = post_raw(&double, &out_of_order).await;
    assert_eq!(status, 200, "errors are HTTP 200");
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "the answer starts with a BOM");
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
    let answer: Value = serde_json::from_slice(&bytes[3..]).unwrap();
    assert_eq!(answer["messages"]["resultCode"], "Error");
    assert_eq!(answer["messages"]["message"][0]["code"], "E00003");
    let text = answer["messages"]["message"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("invalid child element 'amount'") && text.contains("'transactionType'"),
        "{text}"
    );
    assert!(double.transactions().is_empty());
    // The same with merchantAuthentication after refId.
    let swapped = format!(
        r#"{{"authenticateTestRequest": {{"refId": "1", "merchantAuthentication": {{"name": "{LOGIN}", "transactionKey": "{KEY}"}}}}}}"#
    );
    let (_, bytes) = post_raw(&double, &swapped).await;
    let answer: Value = serde_json::from_slice(&bytes[3..]).unwrap();
    assert_eq!(answer["messages"]["message"][0]["code"], "E00003");
    // In order, it passes.
    let ordered = format!(
        r#"{{"authenticateTestRequest": {{"merchantAuthentication": {{"name": "{LOGIN}", "transactionKey": "{KEY}"}}, "refId": "1"}}}}"#
    );
    let (_, bytes) = post_raw(&double, &ordered).await;
    let answer: Value = serde_json::from_slice(&bytes[3..]).unwrap();
    assert_eq!(answer["messages"]["resultCode"], "Ok");
    assert_eq!(answer["refId"], "1");
}

#[tokio::test]
async fn every_request_the_adapter_sends_meets_the_xsd_and_the_key_goes_nowhere_else() {
    let (double, gateway) = setup();
    let email = Email::parse("pat@example.com").unwrap();
    // One of every call the adapter makes.
    gateway.test_connection(&org()).await.unwrap();
    let charged = approved_ref(
        &charge(
            &gateway,
            &reference(),
            "30.00",
            ChargeSource::Token(card_token(&double, "4111111111111111")),
        )
        .await,
    );
    let customer = gateway
        .create_customer(&org(), "payer-9", &email, "Pat Payer")
        .await
        .unwrap();
    let saved = gateway
        .attach_method(&org(), &customer, &card_token(&double, "4111111111111111"))
        .await
        .unwrap()
        .unwrap();
    let source = ChargeSource::Saved {
        customer: customer.clone(),
        method: saved.method_ref.clone(),
    };
    gateway.describe(&org(), &source).await.unwrap();
    approved_ref(&charge(&gateway, &reference(), "31.00", source).await);
    gateway.find_charge(&org(), &reference()).await.unwrap();
    double.settle();
    let RefundOutcome::Refunded { refund_ref, .. } = gateway
        .refund(&refund_request(&charged, "rfd_1", "5.00", false))
        .await
        .unwrap()
    else {
        panic!("not refunded")
    };
    assert_eq!(
        confirmed(&gateway, &refund_ref).await.refunded,
        Some(usd("5.00"))
    );
    gateway
        .detach_method(&org(), &customer, &saved.method_ref)
        .await
        .unwrap();
    let requests = double.requests();
    let methods: std::collections::BTreeSet<String> = requests
        .iter()
        .filter_map(|r| r.as_object()?.keys().next().cloned())
        .collect();
    for method in [
        "authenticateTestRequest",
        "createTransactionRequest",
        "createCustomerProfileRequest",
        "createCustomerPaymentProfileRequest",
        "getCustomerPaymentProfileRequest",
        "getUnsettledTransactionListRequest",
        "getSettledBatchListRequest",
        "getTransactionDetailsRequest",
        "getMerchantDetailsRequest",
        "deleteCustomerPaymentProfileRequest",
    ] {
        assert!(
            methods.contains(method),
            "{method} not exercised: {methods:?}"
        );
    }
    // None was refused by the schema check (an E00003 would have failed the calls above), and
    // the key is only ever in merchantAuthentication (which the double redacts).
    let all = serde_json::to_string(&requests).unwrap();
    assert!(
        !all.contains(KEY),
        "the transaction key leaked into a request"
    );
    assert!(all.contains("<redacted>"));
    assert!(!format!("{gateway:?}").contains(KEY));
    assert!(!format!("{gateway:?}").contains(LOGIN));
}
