//! The sandbox gateway: the default for every org until it configures a real one. It behaves
//! like a hosted gateway: the browser tokenizes card or bank details against the sandbox's own
//! endpoint (card numbers never reach `pay-now`), tokens are single use, charges take our
//! reference and can be looked up by it, and test numbers choose the outcome, in Stripe's style.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{OrgSlug, Secret, token_hash};
use serde::Deserialize;
use time::Duration;

use app::payments::MethodSummary;
use app::ports::{
    ChargeOutcome, ChargeRequest, ChargeSource, Clock, DeclineReason, Gateway, GatewayError, Ids,
    StoreError,
};
use store::Store;
use store::sandbox::{ChargeWrite, SandboxCharge, SandboxToken};

/// A test card: its number, brand and what charging it does.
pub struct TestCard {
    pub number: &'static str,
    pub brand: &'static str,
    pub behaviour: &'static str,
}

/// The sandbox's test cards (any future expiry, any 3-digit CVC; 4 digits for Amex).
pub const TEST_CARDS: [TestCard; 7] = [
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
];

/// The test bank routing number, and accounts: one goes pending and settles later (through a
/// signed webhook), one is refused for insufficient funds.
pub const TEST_ROUTING: &str = "110000000";
pub const TEST_BANK_ACCOUNTS: [(&str, &str); 2] = [
    ("000123456789", "settle_later"),
    ("000111111116", "insufficient_funds"),
];

/// How long a token may wait to be charged.
const TOKEN_LIFETIME: Duration = Duration::minutes(30);

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

    /// Tokenizes card or bank details. Only the kind, brand, last four and the test behaviour
    /// are kept; the number and CVC are dropped here. The browser gets the token and what it may
    /// show (like Stripe's tokenization answers with the card's brand and last four).
    pub async fn tokenize(&self, request: TokenRequest) -> Result<Tokenized, TokenizeError> {
        let now = self.clock.now();
        let (kind, brand, last4, behaviour) = match request {
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
                let today = now.date();
                let in_future = (1..=12).contains(&exp_month)
                    && (i32::from(exp_year), exp_month) >= (today.year(), u8::from(today.month()));
                if !in_future {
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
                )
            }
        };
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
        let ChargeSource::Token(token) = &request.source;
        let hash = token_hash(token.expose());
        let now = self.clock.now();
        let Some(found) = self
            .store
            .sandbox_token(&hash, now)
            .await
            .map_err(unavailable)?
        else {
            return Ok(ChargeOutcome::Declined {
                gateway_ref: None,
                reason: DeclineReason::InvalidToken,
            });
        };
        let (status, decline) = match found.behaviour.as_str() {
            "approve" => ("succeeded", None),
            "settle_later" => ("pending", None),
            code => ("failed", Some(code.to_owned())),
        };
        let charge = SandboxCharge {
            org: request.org.clone(),
            reference: request.reference.clone(),
            charge_id: format!("ch_{}", self.ids.ulid()),
            amount: request.amount,
            status: status.to_owned(),
            decline,
            kind: found.kind,
            brand: found.brand,
            last4: found.last4,
            created_at: now,
        };
        match self
            .store
            .sandbox_record_charge(&hash, &charge, now)
            .await
            .map_err(unavailable)?
        {
            ChargeWrite::Written => Ok(outcome(&charge)),
            ChargeWrite::ReferenceExists => self
                .find_charge(&request.org, &request.reference)
                .await?
                .ok_or_else(|| GatewayError::Unavailable("charge vanished".into())),
            ChargeWrite::TokenSpent => Ok(ChargeOutcome::Declined {
                gateway_ref: None,
                reason: DeclineReason::InvalidToken,
            }),
        }
    }

    async fn describe(
        &self,
        _org: &OrgSlug,
        source: &ChargeSource,
    ) -> Result<Option<MethodSummary>, GatewayError> {
        let ChargeSource::Token(token) = source;
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
}
