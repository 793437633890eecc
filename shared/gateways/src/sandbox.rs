//! The sandbox gateway: the default for every org until it configures a real one. It behaves
//! like a hosted gateway: the browser tokenizes card or bank details against the sandbox's own
//! endpoint (card numbers never reach `pay-now`), tokens are single use, charges take our
//! reference and can be looked up by it, and test numbers choose the outcome, in Stripe's style.
//! Like Stripe it has customers (one per payer of an org, under our reference) to which a token's
//! card or account can be saved, and a saved method can then be charged again and again.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{Email, OrgSlug, Secret, token_hash};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::{Date, Duration, OffsetDateTime};

use app::payments::MethodSummary;
use app::ports::{
    ChargeOutcome, ChargeRequest, ChargeSource, Clock, DeclineReason, Gateway, GatewayError,
    GatewayEvent, GatewayMethod, Ids, RefundOutcome, RefundRequest, StoreError, WebhookDelivery,
    WebhookRejection,
};
use domain::PaymentStatus;
use store::Store;
use store::sandbox::{
    AttachWrite, ChargeWrite, SandboxCharge, SandboxCustomer, SandboxMethod, SandboxToken,
};
use store::sandbox_events::RefundWrite;

/// A test card: its number, brand and what charging it does.
pub struct TestCard {
    pub number: &'static str,
    pub brand: &'static str,
    pub behaviour: &'static str,
}

/// The sandbox's test cards (any future expiry, any 3-digit CVC; 4 digits for Amex).
pub const TEST_CARDS: [TestCard; 8] = [
    TestCard {
        number: "4242424242424242",
        brand: "visa",
        behaviour: "approve",
    },
    TestCard {
        number: "5555555555554444",
        brand: "mastercard",
        behaviour: "approve",
    },
    TestCard {
        number: "378282246310005",
        brand: "amex",
        behaviour: "approve",
    },
    TestCard {
        number: "4000000000000002",
        brand: "visa",
        behaviour: "card_declined",
    },
    TestCard {
        number: "4000000000009995",
        brand: "visa",
        behaviour: "insufficient_funds",
    },
    TestCard {
        number: "4000000000009979",
        brand: "visa",
        behaviour: "stolen_card",
    },
    TestCard {
        number: "4000000000000069",
        brand: "visa",
        behaviour: "expired_card",
    },
    // Approved with the payer present; saved and charged without them, the bank asks for
    // them to authenticate (Stripe's 4000002760003184).
    TestCard {
        number: "4000002760003184",
        brand: "visa",
        behaviour: "authenticate_off_session",
    },
];

/// The test bank routing number, and accounts: one goes pending and settles later (through a
/// signed webhook), one settles and is then returned, one is refused for insufficient funds.
pub const TEST_ROUTING: &str = "110000000";
pub const TEST_BANK_ACCOUNTS: [(&str, &str); 3] = [
    ("000123456789", "settle_later"),
    ("000222222227", "return_later"),
    ("000111111116", "insufficient_funds"),
];

/// How long a token may wait to be charged.
const TOKEN_LIFETIME: Duration = Duration::minutes(30);

/// Keeps the sandbox's fingerprints apart from any other SHA-256 of the same digits.
const FINGERPRINT_DOMAIN: &[u8] = b"paybridge-sandbox-fingerprint\0";

/// The same card (its digits) or bank account (routing and account number) gives the same
/// value: the first 128 bits of SHA-256, in hex, over the domain, the kind and the parts.
/// An unkeyed hash of a card number could be reversed by trying every number of a BIN; that is
/// harmless here only because the sandbox takes nothing but public test numbers. A real gateway
/// keys it (HMAC with a secret of its own).
fn fingerprint(kind: &str, parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    hash.update(FINGERPRINT_DOMAIN);
    hash.update(kind.as_bytes());
    for part in parts {
        hash.update(b"\0");
        hash.update(part.as_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}

/// Whether a card expiring at the end of month `exp_month` of `exp_year` has expired by `today`.
fn card_expired(exp_month: u8, exp_year: u16, today: Date) -> bool {
    (i32::from(exp_year), exp_month) < (today.year(), u8::from(today.month()))
}

/// What the browser posts to `POST /sandbox/tokens`.
#[derive(Debug, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum TokenRequest {
    Card {
        card_number: String,
        exp_month: u8,
        exp_year: u16,
        cvc: String,
    },
    Bank {
        routing_number: String,
        account_number: String,
        account_holder: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error("the card number is not valid")]
    InvalidNumber,
    #[error("use one of the sandbox's test card numbers, e.g. 4242 4242 4242 4242")]
    NotATestCard,
    #[error("the expiry date is not valid or has passed")]
    InvalidExpiry,
    #[error("the security code must be 3 digits (4 for American Express)")]
    InvalidCvc,
    #[error("use the sandbox's test routing number {TEST_ROUTING} and a test account number")]
    NotATestAccount,
    #[error("the account holder's name is required")]
    MissingHolder,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A new single-use token and what the payer may be shown of it.
#[derive(Debug, Clone)]
pub struct Tokenized {
    pub token: Secret<String>,
    pub method: MethodSummary,
}

pub struct SandboxGateway {
    store: Store,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
}

impl SandboxGateway {
    pub fn new(store: Store, clock: Arc<dyn Clock>, ids: Arc<dyn Ids>) -> Self {
        SandboxGateway { store, clock, ids }
    }

    /// Tokenizes card or bank details. Only the kind, brand, last four, a card's expiry, an
    /// account's holder, the fingerprint and the test behaviour are kept; the number and CVC
    /// are dropped here. The browser gets the token and what it may show (like Stripe's
    /// tokenization answers with the card's brand and last four).
    pub async fn tokenize(&self, request: TokenRequest) -> Result<Tokenized, TokenizeError> {
        let now = self.clock.now();
        let (kind, brand, last4, behaviour, facts) = match request {
            TokenRequest::Card {
                card_number,
                exp_month,
                exp_year,
                cvc,
            } => {
                let digits: String = card_number
                    .chars()
                    .filter(|c| *c != ' ' && *c != '-')
                    .collect();
                if !(13..=19).contains(&digits.len())
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                    || !luhn_valid(&digits)
                {
                    return Err(TokenizeError::InvalidNumber);
                }
                let card = TEST_CARDS
                    .iter()
                    .find(|c| c.number == digits)
                    .ok_or(TokenizeError::NotATestCard)?;
                if !(1..=12).contains(&exp_month) || card_expired(exp_month, exp_year, now.date()) {
                    return Err(TokenizeError::InvalidExpiry);
                }
                let cvc_len = if card.brand == "amex" { 4 } else { 3 };
                if cvc.len() != cvc_len || !cvc.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(TokenizeError::InvalidCvc);
                }
                (
                    "card",
                    card.brand.to_owned(),
                    digits[digits.len() - 4..].to_owned(),
                    card.behaviour,
                    (
                        Some(exp_month),
                        Some(exp_year),
                        None,
                        fingerprint("card", &[&digits]),
                    ),
                )
            }
            TokenRequest::Bank {
                routing_number,
                account_number,
                account_holder,
            } => {
                if account_holder.trim().is_empty() {
                    return Err(TokenizeError::MissingHolder);
                }
                let behaviour = TEST_BANK_ACCOUNTS
                    .iter()
                    .find(|(account, _)| {
                        routing_number == TEST_ROUTING && *account == account_number
                    })
                    .map(|(_, b)| *b)
                    .ok_or(TokenizeError::NotATestAccount)?;
                (
                    "bank",
                    "Sandbox Bank".to_owned(),
                    account_number[account_number.len() - 4..].to_owned(),
                    behaviour,
                    (
                        None,
                        None,
                        Some(account_holder.trim().to_owned()),
                        fingerprint("bank", &[&routing_number, &account_number]),
                    ),
                )
            }
        };
        let (exp_month, exp_year, holder_name, fingerprint) = facts;
        let token = Secret::new(format!("tok_{}", self.ids.secret().expose()));
        let method = MethodSummary {
            kind: kind.to_owned(),
            brand,
            last4,
        };
        self.store
            .sandbox_put_token(&SandboxToken {
                token_hash: token_hash(token.expose()),
                kind: method.kind.clone(),
                brand: method.brand.clone(),
                last4: method.last4.clone(),
                exp_month,
                exp_year,
                holder_name,
                fingerprint,
                behaviour: behaviour.to_owned(),
                expires_at: now + TOKEN_LIFETIME,
            })
            .await?;
        Ok(Tokenized { token, method })
    }

    /// Every org's charges, newest first.
    pub async fn charges(&self, limit: i32) -> Result<Vec<SandboxCharge>, StoreError> {
        self.store.sandbox_charges(limit).await
    }

    /// The saved method if the org has it and it belongs to this customer.
    async fn saved_method(
        &self,
        org: &OrgSlug,
        customer: &str,
        method: &str,
    ) -> Result<Option<SandboxMethod>, GatewayError> {
        let found = self
            .store
            .sandbox_method(org, method)
            .await
            .map_err(unavailable)?;
        Ok(found.filter(|m| m.customer == customer))
    }

    async fn charge_token(
        &self,
        request: &ChargeRequest,
        token: &Secret<String>,
        now: OffsetDateTime,
    ) -> Result<ChargeOutcome, GatewayError> {
        let hash = token_hash(token.expose());
        let Some(found) = self
            .store
            .sandbox_token(&hash, now)
            .await
            .map_err(unavailable)?
        else {
            return Ok(invalid_token());
        };
        let charge = self.new_charge(
            request,
            &found.behaviour,
            [found.kind, found.brand, found.last4],
            now,
        );
        let write = self
            .store
            .sandbox_record_charge(&hash, &charge, now)
            .await
            .map_err(unavailable)?;
        self.answer(request, &charge, write).await
    }

    /// A saved method is charged with its test behaviour, any number of times (each charge
    /// under its own reference); a card past its expiry is declined as expired, as a real
    /// gateway would.
    async fn charge_saved(
        &self,
        request: &ChargeRequest,
        customer: &str,
        method: &str,
        now: OffsetDateTime,
    ) -> Result<ChargeOutcome, GatewayError> {
        let Some(saved) = self.saved_method(&request.org, customer, method).await? else {
            return Ok(invalid_token());
        };
        let expired = match (saved.exp_month, saved.exp_year) {
            (Some(month), Some(year)) => card_expired(month, year, now.date()),
            _ => false,
        };
        let behaviour = if expired {
            DeclineReason::Expired.code()
        } else if saved.behaviour == "authenticate_off_session" {
            DeclineReason::AuthenticationRequired.code()
        } else {
            &saved.behaviour
        };
        let charge = self.new_charge(
            request,
            behaviour,
            [saved.kind, saved.brand, saved.last4],
            now,
        );
        let write = self
            .store
            .sandbox_record_saved_charge(&charge)
            .await
            .map_err(unavailable)?;
        self.answer(request, &charge, write).await
    }

    /// The charge that `behaviour` makes of the request, on a method of this kind, brand and
    /// last four.
    fn new_charge(
        &self,
        request: &ChargeRequest,
        behaviour: &str,
        [kind, brand, last4]: [String; 3],
        now: OffsetDateTime,
    ) -> SandboxCharge {
        let (status, decline) = match behaviour {
            "approve" | "authenticate_off_session" => ("succeeded", None),
            "settle_later" | "return_later" => ("pending", None),
            code => ("failed", Some(code.to_owned())),
        };
        SandboxCharge {
            org: request.org.clone(),
            reference: request.reference.clone(),
            charge_id: format!("ch_{}", self.ids.ulid()),
            amount: request.amount,
            status: status.to_owned(),
            decline,
            kind,
            brand,
            last4,
            later: if behaviour == "return_later" {
                behaviour.to_owned()
            } else {
                String::new()
            },
            created_at: now,
        }
    }

    /// The answer once the charge's write is done: this charge, the one that had the reference
    /// first, or an invalid token.
    async fn answer(
        &self,
        request: &ChargeRequest,
        charge: &SandboxCharge,
        write: ChargeWrite,
    ) -> Result<ChargeOutcome, GatewayError> {
        match write {
            ChargeWrite::Written => Ok(outcome(charge)),
            ChargeWrite::ReferenceExists => self
                .find_charge(&request.org, &request.reference)
                .await?
                .ok_or_else(|| GatewayError::Unavailable("charge vanished".into())),
            ChargeWrite::TokenSpent => Ok(invalid_token()),
        }
    }
}

fn invalid_token() -> ChargeOutcome {
    ChargeOutcome::Declined {
        gateway_ref: None,
        reason: DeclineReason::InvalidToken,
    }
}

fn summary(m: &SandboxMethod) -> MethodSummary {
    MethodSummary {
        kind: m.kind.clone(),
        brand: m.brand.clone(),
        last4: m.last4.clone(),
    }
}

fn gateway_method(m: SandboxMethod) -> GatewayMethod {
    GatewayMethod {
        method_ref: m.method_id,
        kind: m.kind,
        brand: m.brand,
        last4: m.last4,
        exp_month: m.exp_month,
        exp_year: m.exp_year,
        holder_name: m.holder_name,
        fingerprint: m.fingerprint,
    }
}

fn outcome(charge: &SandboxCharge) -> ChargeOutcome {
    match charge.decline.as_deref() {
        Some(code) => ChargeOutcome::Declined {
            gateway_ref: Some(charge.charge_id.clone()),
            reason: DeclineReason::parse(code).unwrap_or(DeclineReason::Generic),
        },
        None => ChargeOutcome::Approved {
            gateway_ref: charge.charge_id.clone(),
            settling: charge.status == "pending",
            method: MethodSummary {
                kind: charge.kind.clone(),
                brand: charge.brand.clone(),
                last4: charge.last4.clone(),
            },
        },
    }
}

fn unavailable(e: StoreError) -> GatewayError {
    GatewayError::Unavailable(e.0)
}

#[async_trait]
impl Gateway for SandboxGateway {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        // Same reference, same charge: the answer of the first one.
        if let Some(existing) = self.find_charge(&request.org, &request.reference).await? {
            return Ok(existing);
        }
        let now = self.clock.now();
        match &request.source {
            ChargeSource::Token(token) => self.charge_token(request, token, now).await,
            ChargeSource::Saved { customer, method } => {
                self.charge_saved(request, customer, method, now).await
            }
            // What a card's number does here is what its token would do: tokenized in passing
            // (as the gateway's own API would take the number), then charged.
            ChargeSource::Card(card) => {
                let tokenized = self
                    .tokenize(TokenRequest::Card {
                        card_number: card.number.expose().clone(),
                        exp_month: card.exp_month,
                        exp_year: card.exp_year,
                        cvc: card
                            .code
                            .as_ref()
                            .map(|c| c.expose().clone())
                            .unwrap_or_default(),
                    })
                    .await;
                let reason = match tokenized {
                    Ok(t) => return self.charge_token(request, &t.token, now).await,
                    Err(TokenizeError::Store(e)) => return Err(unavailable(e)),
                    Err(TokenizeError::InvalidExpiry) => DeclineReason::Expired,
                    Err(_) => DeclineReason::Incorrect,
                };
                Ok(ChargeOutcome::Declined {
                    gateway_ref: None,
                    reason,
                })
            }
        }
    }

    async fn describe(
        &self,
        org: &OrgSlug,
        source: &ChargeSource,
    ) -> Result<Option<MethodSummary>, GatewayError> {
        match source {
            ChargeSource::Token(token) => {
                let found = self
                    .store
                    .sandbox_token(&token_hash(token.expose()), self.clock.now())
                    .await
                    .map_err(unavailable)?;
                Ok(found.map(|t| MethodSummary {
                    kind: t.kind,
                    brand: t.brand,
                    last4: t.last4,
                }))
            }
            ChargeSource::Saved { customer, method } => Ok(self
                .saved_method(org, customer, method)
                .await?
                .as_ref()
                .map(summary)),
            ChargeSource::Card(card) => Ok(Some(card.summary())),
        }
    }

    async fn find_charge(
        &self,
        org: &OrgSlug,
        reference: &str,
    ) -> Result<Option<ChargeOutcome>, GatewayError> {
        let found = self
            .store
            .sandbox_charge(org, reference)
            .await
            .map_err(unavailable)?;
        Ok(found.as_ref().map(outcome))
    }

    /// Idempotent by our reference: the customer is written only if the reference has none,
    /// and a second call (or the loser of a race) gets the first one's id.
    async fn create_customer(
        &self,
        org: &OrgSlug,
        reference: &str,
        email: &Email,
        name: &str,
    ) -> Result<String, GatewayError> {
        let customer = SandboxCustomer {
            org: org.clone(),
            reference: reference.to_owned(),
            customer_id: format!("cus_{}", self.ids.ulid()),
            email: email.clone(),
            name: name.to_owned(),
            created_at: self.clock.now(),
        };
        if self
            .store
            .sandbox_create_customer(&customer)
            .await
            .map_err(unavailable)?
        {
            return Ok(customer.customer_id);
        }
        self.store
            .sandbox_customer(org, reference)
            .await
            .map_err(unavailable)?
            .map(|c| c.customer_id)
            .ok_or_else(|| GatewayError::Unavailable("customer vanished".into()))
    }

    /// Spends the token and saves its method in one transaction, so that a token attaches
    /// once. An unknown customer is our bug, not the payer's: an error, not None.
    async fn attach_method(
        &self,
        org: &OrgSlug,
        customer: &str,
        token: &Secret<String>,
    ) -> Result<Option<GatewayMethod>, GatewayError> {
        let hash = token_hash(token.expose());
        let now = self.clock.now();
        let Some(found) = self
            .store
            .sandbox_token(&hash, now)
            .await
            .map_err(unavailable)?
        else {
            // The transaction below checks the customer; without one, check it here.
            return if self
                .store
                .sandbox_customer_exists(org, customer)
                .await
                .map_err(unavailable)?
            {
                Ok(None)
            } else {
                Err(unknown_customer())
            };
        };
        let method = SandboxMethod {
            org: org.clone(),
            method_id: format!("pm_sb_{}", self.ids.ulid()),
            customer: customer.to_owned(),
            kind: found.kind,
            brand: found.brand,
            last4: found.last4,
            exp_month: found.exp_month,
            exp_year: found.exp_year,
            holder_name: found.holder_name,
            fingerprint: found.fingerprint,
            behaviour: found.behaviour,
            created_at: now,
        };
        match self
            .store
            .sandbox_attach_method(&hash, &method, now)
            .await
            .map_err(unavailable)?
        {
            AttachWrite::Written => Ok(Some(gateway_method(method))),
            AttachWrite::TokenSpent => Ok(None),
            AttachWrite::UnknownCustomer => Err(unknown_customer()),
        }
    }

    /// Signed like Stripe (see `signature`); the body is read only once the signature holds.
    fn read_webhook(
        &self,
        delivery: &WebhookDelivery<'_>,
        secrets: &[Secret<String>],
        now: OffsetDateTime,
    ) -> Result<Option<GatewayEvent>, WebhookRejection> {
        crate::sandbox_events::read(delivery, secrets, now)
    }

    /// Refunds like a card processor and a bank would: a failed charge has nothing to give
    /// back; a bank debit that has not settled is voided whole, or not at all; otherwise any
    /// amount up to what is left. Once per reference: a retry answers with the same refund.
    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, GatewayError> {
        for _ in 0..3 {
            let Some(life) = self
                .store
                .sandbox_charge_by_id(&request.charge)
                .await
                .map_err(unavailable)?
                .filter(|life| life.charge.org == request.org)
            else {
                return Ok(RefundOutcome::Refused("no such charge".into()));
            };
            let charge = &life.charge;
            let refused = |why: &str| Ok(RefundOutcome::Refused(why.to_owned()));
            if request.amount.currency() != charge.amount.currency() {
                return refused("the refund is in another currency than the charge");
            }
            let unsettled = charge.status == "pending" && life.state.is_none();
            let voided = unsettled && request.whole;
            match (charge.status.as_str(), life.state.as_deref()) {
                ("failed", _) => return refused("the charge failed: nothing was taken"),
                (_, Some("returned" | "failed" | "dispute_lost")) => {
                    return refused("the money has gone back already");
                }
                _ if unsettled && !voided => {
                    return refused(
                        "the debit has not settled yet: only the whole of it can be voided",
                    );
                }
                _ => {}
            }
            let left = charge.amount.minor().saturating_sub(life.refunded);
            if request.amount.minor() > left {
                return refused("more than is left of the charge");
            }
            let refund_id = format!("re_{}", self.ids.ulid());
            let after = life.refunded + request.amount.minor();
            match self
                .store
                .sandbox_record_refund(
                    charge,
                    &request.reference,
                    &refund_id,
                    life.refunded,
                    after,
                    PaymentStatus::Refunded.as_str(),
                )
                .await
                .map_err(unavailable)?
            {
                RefundWrite::Written(id) | RefundWrite::Exists(id) => {
                    return Ok(RefundOutcome::Refunded {
                        refund_ref: id,
                        voided,
                    });
                }
                RefundWrite::Moved => continue,
            }
        }
        Err(GatewayError::Unavailable("the charge kept changing".into()))
    }

    /// Deletes the method if it is this customer's; one that is gone already is fine. Another
    /// customer's method stays, and the call fails: our records disagree with the gateway's.
    async fn detach_method(
        &self,
        org: &OrgSlug,
        customer: &str,
        method: &str,
    ) -> Result<(), GatewayError> {
        if self
            .store
            .sandbox_detach_method(org, customer, method)
            .await
            .map_err(unavailable)?
        {
            Ok(())
        } else {
            Err(GatewayError::Unavailable(
                "the method belongs to another customer".into(),
            ))
        }
    }
}

fn unknown_customer() -> GatewayError {
    GatewayError::Unavailable("unknown customer".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_are_luhn_valid_and_others_are_caught() {
        for card in TEST_CARDS {
            assert!(luhn_valid(card.number), "{}", card.number);
        }
        assert!(!luhn_valid("4242424242424241"));
    }

    #[test]
    fn fingerprints_are_128_bit_hex_apart_by_kind_and_number() {
        let visa = fingerprint("card", &["4242424242424242"]);
        assert_eq!(visa.len(), 32);
        assert!(visa.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(visa, fingerprint("card", &["4242424242424242"]));
        assert_ne!(visa, fingerprint("card", &["5555555555554444"]));
        assert_ne!(visa, fingerprint("bank", &["4242424242424242"]));
        assert_ne!(
            fingerprint("bank", &["110000000", "000123456789"]),
            fingerprint("bank", &["1100000000", "00123456789"])
        );
    }

    #[test]
    fn a_card_expires_after_its_month() {
        let today = time::macros::date!(2026 - 11 - 26);
        assert!(!card_expired(11, 2026, today));
        assert!(!card_expired(1, 2027, today));
        assert!(card_expired(10, 2026, today));
        assert!(card_expired(12, 2025, today));
    }
}
