//! A double of Authorize.Net's JSON API (`POST /xml/v1/request.api`), in-process, for the
//! Authorize.Net adapter's tests and the end-to-end suites that pay through it.
//!
//! It is strict where Authorize.Net is strict, so that what passes here passes there:
//! * Every request is checked against the published XSD (`fixtures/AnetApiSchema.xsd`, read
//!   once): keys in each type's `xs:sequence` order, required elements present, facets such as
//!   `refId` ≤ 20 characters. A violation is answered as Authorize.Net answers one: HTTP 200,
//!   `resultCode` `Error`, code `E00003` and the validator's text naming the element.
//! * Answers have the developer reference's shapes (approval, decline, error, duplicate, held
//!   for review; keys in Authorize.Net's order, wrapper lists as plain arrays), begin with a UTF-8
//!   BOM, and are HTTP 200 even for errors. The double checks its own answers against the XSD
//!   too and answers HTTP 500 when one does not meet it.
//! * Credentials: a login and transaction key pair added with [`AnetDouble::add_merchant`];
//!   anything else gets `E00007`. Each merchant sees only its own transactions and profiles.
//!
//! State is per instance (one per test), and outcomes depend only on the test numbers below.
//!
//! | test data | outcome |
//! | --- | --- |
//! | cards 4111111111111111, 4007000000027, 4012888818888 (Visa), 5424000000000015, 2223000010309703 (MasterCard), 370000000000002 (Amex), 6011000000000012 (Discover), 3088000000000017 (JCB), 38000000000006 (Diners); any other number that passes Luhn | approved (responseCode 1), `capturedPendingSettlement` until [`AnetDouble::settle`] |
//! | [`DECLINE_CARD`] 4222222222222 with a whole-dollar amount N.00 where N is one of the reason codes below (Authorize.Net's sandbox rule) | that reason: 2, 3, 4 (pick up), 27 (AVS), 44, 45, 65 (card code), 250, 251, 254 (fraud) decline (responseCode 2, status `declined`); 6, 7, 37, 78 (bad number, date, code), 8 (expired), 17 (card type), 19 (processor) are errors (responseCode 3, not recorded); 252, 253 are held for review (responseCode 4, `FDSPendingReview` / `FDSAuthorizedPendingReview`) |
//! | the decline card with any other amount | approved |
//! | a number that fails Luhn | error, reason 6 |
//! | an expiry before the double's clock | error, reason 8 (also when saving it with `liveMode`) |
//! | a bank account (any routing and account number) | approved, account type `eCheck`, `capturedPendingSettlement` until settled, then `settledSuccessfully` |
//! | bank account [`RETURNED_ACCOUNT`] 4444444444 | approved, and `returnedItem` (R01, insufficient funds) when settled |
//!
//! Accept.js is played by [`AnetDouble::tokenize_card`] / [`AnetDouble::tokenize_bank`]: an
//! opaqueData `dataValue` for descriptor `COMMON.ACCEPT.INAPP.PAYMENT`, usable once, for 15
//! minutes of the double's clock ([`AnetDouble::advance`] moves it). A spent, expired or
//! unknown one is refused with `E00114 Invalid OTS Token.`
//!
//! The same invoice number, amount and card or account again within `duplicateWindow` seconds
//! (120 when the request sets none; 0 turns it off) is refused with responseCode 3, reason 11;
//! when the request set the window explicitly the answer names the original's transId.
//!
//! Refunds need a settled charge (reason 54 otherwise), the last four of its card or account,
//! and no more than is left (reason 55); voids take an unsettled transaction. Customer
//! profiles are unique by `merchantCustomerId` (`E00039 A duplicate record with ID <id> already
//! exists.`); a payment profile for a card (number and expiry) or account the customer profile
//! has already is `E00039` with the existing `customerPaymentProfileId`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use sha2::Sha512;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use schema::{J, Mode, Schema};

/// An ordered JSON object; null members (absent optional elements) are left out.
macro_rules! obj {
    ($($k:expr => $v:expr),* $(,)?) => {
        J::Obj(vec![$(($k.to_owned(), J::from($v))),*]).pruned()
    };
}

/// The API's path, as on `api.authorize.net`.
pub const PATH: &str = "/xml/v1/request.api";
/// Accept.js's descriptor for its tokens.
pub const ACCEPT_DESCRIPTOR: &str = "COMMON.ACCEPT.INAPP.PAYMENT";
/// How long an Accept.js token can be used.
pub const TOKEN_LIFETIME: Duration = Duration::minutes(15);
/// The duplicate window when a request sets none.
pub const DEFAULT_DUPLICATE_WINDOW: i64 = 120;
/// The card whose whole-dollar amount picks the response reason code.
pub const DECLINE_CARD: &str = "4222222222222";
/// The bank account that is returned (R01) when it settles.
pub const RETURNED_ACCOUNT: &str = "4444444444";

const XSD: &str = include_str!("../fixtures/AnetApiSchema.xsd");
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// Reason codes the decline card's amount can pick.
const TRIGGERS: [u16; 19] = [
    2, 3, 4, 6, 7, 8, 17, 19, 27, 37, 44, 45, 65, 78, 250, 251, 252, 253, 254,
];

/// The XSD, parsed once per process.
fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse(XSD))
}

/// Authorize.Net's response reason codes the double uses: the response code each comes with,
/// and its published text.
fn reason(code: u16) -> (u8, &'static str) {
    match code {
        1 => (1, "This transaction has been approved."),
        2..=4 | 44 | 45 | 65 | 250 | 251 | 254 => (2, "This transaction has been declined."),
        5 => (3, "A valid amount is required."),
        6 | 37 => (3, "The credit card number is invalid."),
        7 => (3, "Credit card expiration date is invalid."),
        8 => (3, "The credit card has expired."),
        11 => (3, "A duplicate transaction has been submitted."),
        16 => (3, "The transaction cannot be found."),
        17 => (3, "The merchant does not accept this type of credit card."),
        19 => (
            3,
            "An error occurred during processing. Please try again in 5 minutes.",
        ),
        27 => (
            2,
            "The transaction has been declined because of an AVS mismatch. The address provided does not match billing address of cardholder.",
        ),
        33 => (3, "Credit card number is required."),
        39 => (
            3,
            "The supplied currency code is either invalid, not supported, not allowed for this merchant or doesn't have an exchange rate.",
        ),
        54 => (
            3,
            "The referenced transaction does not meet the criteria for issuing a credit.",
        ),
        55 => (
            3,
            "The sum of credits against the referenced transaction would exceed original debit amount.",
        ),
        78 => (3, "The Card Code (CVV2/CVC2/CID) is invalid."),
        252 | 253 => (
            4,
            "Your order has been received. Thank you for your business!",
        ),
        310 => (1, "This transaction has already been voided."),
        _ => (3, "An error occurred during processing. Please try again."),
    }
}

/// A transaction as the double keeps it: what tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnetTransaction {
    pub trans_id: String,
    /// The merchant's API login id.
    pub merchant: String,
    /// `authCaptureTransaction` or `refundTransaction`.
    pub transaction_type: String,
    /// Authorize.Net's `transactionStatusEnum`: `capturedPendingSettlement`, `declined`,
    /// `settledSuccessfully`, `voided`, `returnedItem`, `refundPendingSettlement`, ...
    pub status: String,
    pub response_code: u8,
    pub reason_code: u16,
    pub ref_id: Option<String>,
    pub invoice_number: Option<String>,
    pub description: Option<String>,
    /// "12.30"
    pub amount: String,
    /// "Visa", "MasterCard", ..., "eCheck"
    pub account_type: String,
    /// "XXXX1111"
    pub account_number: String,
    /// A refund's charge.
    pub ref_trans_id: Option<String>,
    pub customer_profile_id: Option<String>,
    pub payment_profile_id: Option<String>,
    pub submitted_at: OffsetDateTime,
    pub batch_id: Option<String>,
    /// An eCheck return's code ("R01").
    pub return_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Instrument {
    Card {
        number: String,
        exp_month: u8,
        exp_year: u16,
    },
    Bank {
        routing: String,
        account: String,
        name: String,
    },
}

impl Instrument {
    fn account_type(&self) -> &'static str {
        match self {
            Instrument::Card { number, .. } => brand(number),
            Instrument::Bank { .. } => "eCheck",
        }
    }

    fn last4(&self) -> String {
        let digits = match self {
            Instrument::Card { number, .. } => number,
            Instrument::Bank { account, .. } => account,
        };
        digits[digits.len().saturating_sub(4)..].to_owned()
    }

    fn masked(&self) -> String {
        format!("XXXX{}", self.last4())
    }

    /// What Authorize.Net compares for duplicates: the card and its expiry, or the account.
    fn key(&self) -> String {
        match self {
            Instrument::Card {
                number,
                exp_month,
                exp_year,
            } => format!("card:{number}:{exp_year:04}-{exp_month:02}"),
            Instrument::Bank {
                routing, account, ..
            } => format!("bank:{routing}:{account}"),
        }
    }

    fn is_bank(&self) -> bool {
        matches!(self, Instrument::Bank { .. })
    }

    /// The masked `payment` of a transaction's or payment profile's details.
    fn payment(&self, unmask_expiry: bool) -> J {
        match self {
            Instrument::Card {
                exp_month,
                exp_year,
                ..
            } => obj! {
                "creditCard" => obj! {
                    "cardNumber" => self.masked(),
                    "expirationDate" => if unmask_expiry {
                        format!("{exp_year:04}-{exp_month:02}")
                    } else {
                        "XXXX".to_owned()
                    },
                    "cardType" => self.account_type(),
                },
            },
            Instrument::Bank { routing, name, .. } => obj! {
                "bankAccount" => obj! {
                    "accountType" => "checking",
                    "routingNumber" => format!("XXXX{}", &routing[routing.len().saturating_sub(4)..]),
                    "accountNumber" => self.masked(),
                    "nameOnAccount" => name.chars().take(22).collect::<String>(),
                    "echeckType" => "WEB",
                },
            },
        }
    }
}

/// The card brand as Authorize.Net names it in `accountType`.
fn brand(number: &str) -> &'static str {
    let prefix = |n: usize| {
        number
            .get(..n)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    match (prefix(1), prefix(2), prefix(3), prefix(4)) {
        (4, _, _, _) => "Visa",
        (_, 51..=55, _, _) | (_, _, _, 2221..=2720) => "MasterCard",
        (_, 34 | 37, _, _) => "AmericanExpress",
        (_, 65, _, _) | (_, _, 644..=649, _) | (_, _, _, 6011) => "Discover",
        (_, _, _, 3528..=3589) | (_, _, _, 3088) => "JCB",
        (_, 36 | 38, _, _) | (_, _, 300..=305, _) => "DinersClub",
        _ => "Unknown",
    }
}

fn luhn(number: &str) -> bool {
    if !(12..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            match (i % 2 == 1, d * 2) {
                (true, doubled) if doubled > 9 => doubled - 9,
                (true, doubled) => doubled,
                (false, _) => d,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// "12.30" (two decimals at most) in cents.
fn parse_cents(text: &str) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || fraction.len() > 2
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let fraction: u64 = format!("{fraction:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(fraction)
}

fn amount_text(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// An amount as Authorize.Net's JSON prints a decimal: a number.
fn amount_number(cents: u64) -> J {
    serde_json::from_str::<J>(&amount_text(cents)).unwrap_or(J::Null)
}

fn utc(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Authorize.Net's "local" times are the merchant's (Mountain Time here), without an offset.
fn local(at: OffsetDateTime) -> String {
    utc(at - Duration::hours(7))
        .trim_end_matches('Z')
        .to_owned()
}

struct Tx {
    t: AnetTransaction,
    instrument: Instrument,
    cents: u64,
    refunded: u64,
    auth_code: String,
}

impl Tx {
    fn is_bank(&self) -> bool {
        self.instrument.is_bank()
    }

    fn settled_cents(&self) -> u64 {
        match self.t.status.as_str() {
            "declined" | "voided" | "expired" | "generalError" | "communicationError"
            | "failedReview" => 0,
            _ => self.cents,
        }
    }
}

struct Token {
    instrument: Instrument,
    created: OffsetDateTime,
    used: bool,
}

#[derive(Clone)]
struct Merchant {
    login: String,
    key: String,
    currency: String,
}

struct Profile {
    id: String,
    merchant: String,
    merchant_customer_id: Option<String>,
    methods: Vec<(String, Instrument)>,
}

struct Batch {
    id: String,
    merchant: String,
    settled_at: OffsetDateTime,
    method: &'static str,
}

/// What one createTransactionRequest answers.
struct Answer<'a> {
    code: u8,
    reason: u16,
    trans_id: String,
    ref_trans_id: String,
    auth_code: String,
    instrument: Option<&'a Instrument>,
    profile: Option<(String, String)>,
}

impl Answer<'_> {
    fn error(reason: u16) -> Answer<'static> {
        Answer {
            code: reason_code_of(reason),
            reason,
            trans_id: "0".to_owned(),
            ref_trans_id: String::new(),
            auth_code: String::new(),
            instrument: None,
            profile: None,
        }
    }
}

fn reason_code_of(reason_code: u16) -> u8 {
    reason(reason_code).0
}

struct Inner {
    merchants: Vec<Merchant>,
    txs: Vec<Tx>,
    tokens: HashMap<String, Token>,
    profiles: Vec<Profile>,
    batches: Vec<Batch>,
    requests: Vec<serde_json::Value>,
    seq: u64,
    offset: Duration,
    stall: Option<std::time::Duration>,
}

type Shared = Arc<Mutex<Inner>>;

/// The double: an HTTP server on 127.0.0.1 with a runtime of its own (so it serves whatever
/// runtime, if any, the test runs on), stopped when dropped.
pub struct AnetDouble {
    shared: Shared,
    addr: SocketAddr,
    _server: crate::served::Served,
}

impl std::fmt::Debug for AnetDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnetDouble({})", self.addr)
    }
}

impl AnetDouble {
    /// Starts a double on a free port of 127.0.0.1, with no merchants yet.
    pub fn start() -> AnetDouble {
        let (listener, addr) = crate::served::local_listener();
        schema();
        let shared: Shared = Arc::new(Mutex::new(Inner {
            merchants: Vec::new(),
            txs: Vec::new(),
            tokens: HashMap::new(),
            profiles: Vec::new(),
            batches: Vec::new(),
            requests: Vec::new(),
            seq: 0,
            offset: Duration::ZERO,
            stall: None,
        }));
        let app = Router::new()
            .route(PATH, post(handle))
            .with_state(shared.clone());
        let server = crate::served::Served::start("anet-double", listener, app);
        AnetDouble {
            shared,
            addr,
            _server: server,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The full URL of the API (`http://127.0.0.1:PORT/xml/v1/request.api`).
    pub fn endpoint(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    /// Accepts this API login id and transaction key (a USD account).
    pub fn add_merchant(&self, login: &str, transaction_key: &str) {
        self.add_merchant_in(login, transaction_key, "USD");
    }

    /// Accepts this API login id and transaction key, for an account in `currency`.
    pub fn add_merchant_in(&self, login: &str, transaction_key: &str, currency: &str) {
        self.inner().merchants.push(Merchant {
            login: login.to_owned(),
            key: transaction_key.to_owned(),
            currency: currency.to_owned(),
        });
    }

    /// What Accept.js does in the browser: a single-use opaqueData `dataValue` for this card.
    pub fn tokenize_card(&self, number: &str, exp_month: u8, exp_year: u16, cvc: &str) -> String {
        let _ = cvc; // checked by the issuer in real life; the double's outcomes do not use it
        self.token(Instrument::Card {
            number: number.to_owned(),
            exp_month,
            exp_year,
        })
    }

    /// What Accept.js does with bank data: a single-use `dataValue` for a checking account.
    pub fn tokenize_bank(&self, routing: &str, account: &str, name: &str) -> String {
        self.token(Instrument::Bank {
            routing: routing.to_owned(),
            account: account.to_owned(),
            name: name.to_owned(),
        })
    }

    fn token(&self, instrument: Instrument) -> String {
        let mut inner = self.inner();
        inner.seq += 1;
        let token = format!("eyJ0b2tlbiI6ImFuZXQtZG91YmxlIn0.{:012}", inner.seq);
        let created = inner.now();
        inner.tokens.insert(
            token.clone(),
            Token {
                instrument,
                created,
                used: false,
            },
        );
        token
    }

    /// The next createTransactionRequest is processed and recorded as usual, but its answer
    /// is held for `hold` (past the client's timeout: to the client, the answer was lost).
    pub fn stall_next(&self, hold: std::time::Duration) {
        self.inner().stall = Some(hold);
    }

    /// Every request received, oldest first, as `{"<method>": {...}}`; the transaction key in
    /// `merchantAuthentication` is replaced with `"<redacted>"` (nothing else is touched).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.inner().requests.clone()
    }

    /// The bodies of the requests of one method (`"createTransactionRequest"`).
    pub fn requests_of(&self, method: &str) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter_map(|r| r.get(method).cloned())
            .collect()
    }

    /// Every transaction recorded (declines included; errors are not recorded), oldest first.
    pub fn transactions(&self) -> Vec<AnetTransaction> {
        self.inner().txs.iter().map(|t| t.t.clone()).collect()
    }

    pub fn transaction(&self, trans_id: &str) -> Option<AnetTransaction> {
        self.inner()
            .txs
            .iter()
            .find(|t| t.t.trans_id == trans_id)
            .map(|t| t.t.clone())
    }

    /// The payment profile ids of a customer profile.
    pub fn payment_profiles(&self, customer_profile_id: &str) -> Vec<String> {
        self.inner()
            .profiles
            .iter()
            .filter(|p| p.id == customer_profile_id)
            .flat_map(|p| p.methods.iter().map(|(id, _)| id.clone()))
            .collect()
    }

    /// How many customer profiles exist (all merchants).
    pub fn customer_profile_count(&self) -> usize {
        self.inner().profiles.len()
    }

    /// The day's settlement: each merchant's unsettled transactions (not those held for
    /// review) go into a batch per payment method. Charges become `settledSuccessfully` (the
    /// returned account's `returnedItem`), refunds `refundSettledSuccessfully`; declines and
    /// voids keep their status. Returns the new batch ids.
    pub fn settle(&self) -> Vec<String> {
        let mut inner = self.inner();
        let now = inner.now();
        let mut batches = Vec::new();
        let merchants: Vec<String> = inner.merchants.iter().map(|m| m.login.clone()).collect();
        for merchant in merchants {
            for (method, bank) in [("creditCard", false), ("eCheck", true)] {
                let due: Vec<usize> = (0..inner.txs.len())
                    .filter(|&i| {
                        let t = &inner.txs[i];
                        t.t.merchant == merchant
                            && t.t.batch_id.is_none()
                            && t.is_bank() == bank
                            && !matches!(
                                t.t.status.as_str(),
                                "FDSPendingReview" | "FDSAuthorizedPendingReview" | "underReview"
                            )
                    })
                    .collect();
                if due.is_empty() {
                    continue;
                }
                let id = inner.next_id(9_000_000);
                for i in due {
                    let t = &mut inner.txs[i];
                    t.t.batch_id = Some(id.clone());
                    match t.t.status.as_str() {
                        "capturedPendingSettlement" => {
                            let returned = matches!(&t.instrument, Instrument::Bank { account, .. } if account == RETURNED_ACCOUNT);
                            if returned {
                                t.t.status = "returnedItem".into();
                                t.t.return_code = Some("R01".into());
                            } else {
                                t.t.status = "settledSuccessfully".into();
                            }
                        }
                        "refundPendingSettlement" => {
                            t.t.status = "refundSettledSuccessfully".into();
                        }
                        _ => {}
                    }
                }
                inner.batches.push(Batch {
                    id: id.clone(),
                    merchant: merchant.clone(),
                    settled_at: now,
                    method,
                });
                batches.push(id);
            }
        }
        batches
    }

    /// Sets a transaction's status (a fraud review's decision, a chargeback, ...).
    pub fn set_status(&self, trans_id: &str, status: &str) {
        let mut inner = self.inner();
        if let Some(t) = inner.txs.iter_mut().find(|t| t.t.trans_id == trans_id) {
            t.t.status = status.to_owned();
        }
    }

    /// Moves the double's clock on (token expiry, duplicate windows, submit times).
    pub fn advance(&self, by: Duration) {
        self.inner().offset += by;
    }

    /// A webhook notification's body for a transaction, as Authorize.Net sends it:
    /// `{"notificationId", "eventType", "eventDate", "webhookId", "payload": {...}}`.
    /// `event_type` is the full name (`net.authorize.payment.authcapture.created`).
    pub fn notification(&self, event_type: &str, trans_id: &str) -> Vec<u8> {
        let mut inner = self.inner();
        inner.seq += 1;
        let n = inner.seq;
        let now = inner.now();
        let tx = inner.txs.iter().find(|t| t.t.trans_id == trans_id);
        let payload = match tx {
            Some(t) => obj! {
                "responseCode" => u64::from(t.t.response_code),
                "authCode" => (!t.auth_code.is_empty()).then(|| t.auth_code.clone()),
                "avsResponse" => "Y",
                "authAmount" => amount_number(t.cents),
                "invoiceNumber" => t.t.invoice_number.clone(),
                "merchantReferenceId" => t.t.ref_id.clone(),
                "entityName" => "transaction",
                "id" => trans_id,
            },
            None => obj! { "entityName" => "transaction", "id" => trans_id },
        };
        let body = obj! {
            "notificationId" => format!("d7c1f6a2-5b3e-4c1a-9f2b-{n:012x}"),
            "eventType" => event_type,
            "eventDate" => utc(now),
            "webhookId" => "0f5e8e4c-2a57-4d4b-9d8e-6b1c2a3f4e5d",
            "payload" => payload,
        };
        serde_json::to_vec(&body).expect("JSON")
    }

    /// The `X-ANET-Signature` value for `body`: `sha512=` and the HMAC-SHA512, keyed with the
    /// Signature Key's own characters, in uppercase hex (as Authorize.Net sends it).
    pub fn sign_webhook(signature_key: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha512>::new_from_slice(signature_key.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(body);
        format!("sha512={}", hex::encode_upper(mac.finalize().into_bytes()))
    }
}

async fn handle(State(shared): State<Shared>, body: Bytes) -> Response {
    let (status, reply, stall) = {
        let mut inner = shared.lock().unwrap_or_else(PoisonError::into_inner);
        inner.process(&body)
    };
    if let Some(hold) = stall {
        tokio::time::sleep(hold).await;
    }
    let mut bytes = BOM.to_vec();
    bytes.extend(serde_json::to_vec(&reply).expect("JSON"));
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        bytes,
    )
        .into_response()
}

fn messages(result: &str, code: &str, text: &str) -> J {
    obj! {
        "resultCode" => result,
        "message" => vec![obj! { "code" => code, "text" => text }],
    }
}

fn ok() -> J {
    messages("Ok", "I00001", "Successful.")
}

/// A response: its own members, then `refId` (echoed) and `messages`, as Authorize.Net
/// prints them.
fn reply(fields: Vec<(&str, J)>, ref_id: Option<&str>, messages: J) -> J {
    let mut entries: Vec<(String, J)> =
        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    entries.push(("refId".to_owned(), J::from(ref_id)));
    entries.push(("messages".to_owned(), messages));
    J::Obj(entries).pruned()
}

fn error(ref_id: Option<&str>, code: &str, text: &str) -> J {
    reply(Vec::new(), ref_id, messages("Error", code, text))
}

/// A createTransactionResponse.
fn transaction_reply(a: &Answer<'_>, ref_id: Option<&str>) -> J {
    let (_, text) = reason(a.reason);
    let taken = matches!(a.code, 1 | 4);
    let card = a.instrument.is_some_and(|i| !i.is_bank());
    let response = obj! {
        "responseCode" => a.code.to_string(),
        "authCode" => a.auth_code.clone(),
        "avsResultCode" => if a.code == 1 && card { "Y" } else { "P" },
        "cvvResultCode" => if a.code == 1 && card { "M" } else { "" },
        "cavvResultCode" => if a.code == 1 && card { "2" } else { "" },
        "transId" => a.trans_id.clone(),
        "refTransID" => a.ref_trans_id.clone(),
        "transHash" => "",
        "testRequest" => "0",
        "accountNumber" => a.instrument.map(Instrument::masked),
        "accountType" => a.instrument.map(Instrument::account_type),
        "messages" => taken.then(|| vec![obj! {
            "code" => a.reason.to_string(),
            "description" => text,
        }]),
        "errors" => (!taken).then(|| vec![obj! {
            "errorCode" => a.reason.to_string(),
            "errorText" => text,
        }]),
        "transHashSha2" => "",
        "profile" => a.profile.clone().map(|(c, p)| obj! {
            "customerProfileId" => c,
            "customerPaymentProfileId" => p,
        }),
    };
    reply(
        vec![("transactionResponse", response)],
        ref_id,
        if taken {
            ok()
        } else {
            messages("Error", "E00027", "The transaction was unsuccessful.")
        },
    )
}

/// The outcome of charging `instrument` `cents` at `now`: (response code, reason code).
fn outcome(instrument: &Instrument, cents: u64, now: OffsetDateTime) -> (u8, u16) {
    match instrument {
        Instrument::Card {
            number,
            exp_month,
            exp_year,
        } => {
            if !luhn(number) {
                return (3, 6);
            }
            let today = (now.year(), u8::from(now.month()));
            if (i32::from(*exp_year), *exp_month) < today {
                return (3, 8);
            }
            if number == DECLINE_CARD
                && cents.is_multiple_of(100)
                && let Ok(code) = u16::try_from(cents / 100)
                && TRIGGERS.contains(&code)
            {
                return (reason(code).0, code);
            }
            (1, 1)
        }
        Instrument::Bank { .. } => (1, 1),
    }
}

fn instrument_of(payment: &J) -> Option<Instrument> {
    if let Some(card) = payment.get("creditCard") {
        let number = card.at(&["cardNumber"])?;
        let expiry = card.at(&["expirationDate"])?;
        // "2030-12" or "1230" / "12/30"
        let (year, month) = match expiry.split_once('-') {
            Some((y, m)) => (y.parse().ok()?, m.parse().ok()?),
            None => {
                let digits: String = expiry.chars().filter(char::is_ascii_digit).collect();
                let month = digits.get(..2)?.parse().ok()?;
                let year: u16 = digits.get(2..)?.parse().ok()?;
                (if year < 100 { 2000 + year } else { year }, month)
            }
        };
        return Some(Instrument::Card {
            number,
            exp_month: month,
            exp_year: year,
        });
    }
    let bank = payment.get("bankAccount")?;
    Some(Instrument::Bank {
        routing: bank.at(&["routingNumber"])?,
        account: bank.at(&["accountNumber"])?,
        name: bank.at(&["nameOnAccount"]).unwrap_or_default(),
    })
}

/// The request as recorded: the transaction key replaced, nothing else touched.
fn redacted(method: &str, body: &J) -> serde_json::Value {
    let mut value = body.to_value();
    if let Some(key) = value.pointer_mut("/merchantAuthentication/transactionKey") {
        *key = serde_json::Value::String("<redacted>".into());
    }
    serde_json::json!({ method: value })
}

fn setting(request: &J, name: &str) -> Option<String> {
    let settings = request.get("transactionSettings")?.get("setting")?;
    let list = match settings {
        J::Arr(items) => items.clone(),
        single => vec![single.clone()],
    };
    list.iter()
        .find(|s| s.at(&["settingName"]).as_deref() == Some(name))
        .and_then(|s| s.at(&["settingValue"]))
}

/// Sorting and paging of a list (`offset` is the page number, from 1).
fn page<'a, T>(mut items: Vec<&'a T>, request: &J, id: impl Fn(&T) -> u64) -> Vec<&'a T> {
    items.sort_by_key(|t| id(t));
    if request.at(&["sorting", "orderDescending"]).as_deref() == Some("true") {
        items.reverse();
    }
    let limit = request
        .at(&["paging", "limit"])
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(1000);
    let offset = request
        .at(&["paging", "offset"])
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(1);
    items
        .into_iter()
        .skip(limit * offset.saturating_sub(1))
        .take(limit)
        .collect()
}

impl Inner {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset
    }

    fn next_id(&mut self, base: u64) -> String {
        self.seq += 1;
        (base + self.seq).to_string()
    }

    /// One request: (HTTP status, answer, how long to hold it).
    fn process(&mut self, body: &[u8]) -> (StatusCode, J, Option<std::time::Duration>) {
        let text = body.strip_prefix(BOM).unwrap_or(body);
        let request: J = match serde_json::from_slice(text) {
            Ok(j) => j,
            Err(e) => {
                return (
                    StatusCode::OK,
                    error(
                        None,
                        "E00003",
                        &format!("Data at the root level is invalid. {e}"),
                    ),
                    None,
                );
            }
        };
        let (method, body) = match &request {
            J::Obj(entries) if entries.len() == 1 => (entries[0].0.clone(), entries[0].1.clone()),
            _ => {
                return (
                    StatusCode::OK,
                    error(None, "E00003", "Root element is missing."),
                    None,
                );
            }
        };
        self.requests.push(redacted(&method, &body));
        if !method.ends_with("Request") || !schema().declares(&method) {
            let text = format!("The '{}:{method}' element is not declared.", schema::NS);
            return (StatusCode::OK, error(None, "E00003", &text), None);
        }
        if let Err(message) = schema().validate(&method, &body, Mode::Request) {
            return (StatusCode::OK, error(None, "E00003", &message), None);
        }
        let ref_id = body.at(&["refId"]);
        let ref_id = ref_id.as_deref();
        let name = body.at(&["merchantAuthentication", "name"]);
        let key = body.at(&["merchantAuthentication", "transactionKey"]);
        let Some(merchant) = self
            .merchants
            .iter()
            .find(|m| Some(&m.login) == name.as_ref() && Some(&m.key) == key.as_ref())
            .cloned()
        else {
            let text = "User authentication failed due to invalid authentication values.";
            return (StatusCode::OK, error(ref_id, "E00007", text), None);
        };
        let answer = match method.as_str() {
            "authenticateTestRequest" => reply(Vec::new(), ref_id, ok()),
            "getMerchantDetailsRequest" => reply(
                vec![
                    ("isTestMode", J::Bool(false)),
                    ("processors", J::Arr(Vec::new())),
                    ("merchantName", J::from("Paybridge Test Merchant")),
                    ("gatewayId", J::from("482910")),
                    ("marketTypes", J::Arr(Vec::new())),
                    ("productCodes", J::Arr(Vec::new())),
                    ("paymentMethods", J::Arr(Vec::new())),
                    ("currencies", J::Arr(vec![J::from(&merchant.currency)])),
                ],
                ref_id,
                ok(),
            ),
            "createTransactionRequest" => self.create_transaction(&merchant, &body, ref_id),
            "getTransactionDetailsRequest" => self.transaction_details(&merchant, &body, ref_id),
            "getUnsettledTransactionListRequest" => {
                let held_only = body.at(&["status"]).as_deref() == Some("pendingApproval");
                let items: Vec<&Tx> = self
                    .txs
                    .iter()
                    .filter(|t| t.t.merchant == merchant.login && t.t.batch_id.is_none())
                    .filter(|t| !held_only || t.t.status.starts_with("FDS"))
                    .collect();
                self.transaction_list(items, &body, ref_id)
            }
            "getTransactionListRequest" => {
                let batch = body.at(&["batchId"]);
                let items: Vec<&Tx> = self
                    .txs
                    .iter()
                    .filter(|t| t.t.merchant == merchant.login && t.t.batch_id == batch)
                    .collect();
                self.transaction_list(items, &body, ref_id)
            }
            "getSettledBatchListRequest" => self.batch_list(&merchant, &body, ref_id),
            "createCustomerProfileRequest" => self.create_profile(&merchant, &body, ref_id),
            "createCustomerPaymentProfileRequest" => {
                self.create_payment_profile(&merchant, &body, ref_id)
            }
            "getCustomerPaymentProfileRequest" => {
                self.get_payment_profile(&merchant, &body, ref_id)
            }
            "deleteCustomerPaymentProfileRequest" => {
                let customer = body.at(&["customerProfileId"]);
                let method_id = body.at(&["customerPaymentProfileId"]);
                let profile = self
                    .profiles
                    .iter_mut()
                    .find(|p| p.merchant == merchant.login && Some(&p.id) == customer.as_ref());
                match profile {
                    Some(p)
                        if p.methods
                            .iter()
                            .any(|(id, _)| Some(id) == method_id.as_ref()) =>
                    {
                        p.methods.retain(|(id, _)| Some(id) != method_id.as_ref());
                        reply(Vec::new(), ref_id, ok())
                    }
                    _ => error(ref_id, "E00040", "The record cannot be found."),
                }
            }
            other => error(
                ref_id,
                "E00001",
                &format!("The Authorize.Net double does not implement {other}."),
            ),
        };
        // The double's own answer must meet the XSD too (an error alone is an ErrorResponse).
        let only_messages =
            matches!(&answer, J::Obj(e) if e.iter().all(|(k, _)| k == "refId" || k == "messages"));
        let failed = answer.at(&["messages", "resultCode"]).as_deref() == Some("Error");
        let response_element = if failed && only_messages {
            "ErrorResponse".to_owned()
        } else {
            format!("{}Response", method.trim_end_matches("Request"))
        };
        if let Err(message) = schema().validate(&response_element, &answer, Mode::Response) {
            let text = format!("the double's {response_element} does not meet the XSD: {message}");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                obj! { "doubleError" => text },
                None,
            );
        }
        let stall = if method == "createTransactionRequest" {
            self.stall.take()
        } else {
            None
        };
        (StatusCode::OK, answer, stall)
    }

    fn create_transaction(&mut self, m: &Merchant, body: &J, ref_id: Option<&str>) -> J {
        let request = body.get("transactionRequest").unwrap_or(&J::Null);
        match request
            .at(&["transactionType"])
            .unwrap_or_default()
            .as_str()
        {
            "authCaptureTransaction" => self.charge(m, request, ref_id),
            "refundTransaction" => self.refund(m, request, ref_id),
            "voidTransaction" => self.void(m, request, ref_id),
            other => error(
                ref_id,
                "E00001",
                &format!("The Authorize.Net double does not take {other}."),
            ),
        }
    }

    /// A spent, expired or unknown token is None; a good one is spent now.
    fn spend_token(&mut self, opaque: &J) -> Option<Instrument> {
        let now = self.now();
        if opaque.at(&["dataDescriptor"]).as_deref() != Some(ACCEPT_DESCRIPTOR) {
            return None;
        }
        let token = self.tokens.get_mut(&opaque.at(&["dataValue"])?)?;
        if token.used || now - token.created > TOKEN_LIFETIME {
            return None;
        }
        token.used = true;
        Some(token.instrument.clone())
    }

    fn saved(
        &self,
        m: &Merchant,
        customer: Option<&str>,
        method: Option<&str>,
    ) -> Option<Instrument> {
        self.profiles
            .iter()
            .find(|p| p.merchant == m.login && Some(p.id.as_str()) == customer)?
            .methods
            .iter()
            .find(|(id, _)| Some(id.as_str()) == method)
            .map(|(_, i)| i.clone())
    }

    /// The earlier transaction this one duplicates, if any.
    fn duplicate_of(
        &self,
        m: &Merchant,
        kind: &str,
        request: &J,
        cents: u64,
        instrument: &Instrument,
    ) -> Option<(usize, bool)> {
        let explicit = setting(request, "duplicateWindow").and_then(|w| w.parse::<i64>().ok());
        let window = explicit.unwrap_or(DEFAULT_DUPLICATE_WINDOW);
        if window <= 0 {
            return None;
        }
        let invoice = request.at(&["order", "invoiceNumber"]);
        let now = self.now();
        self.txs
            .iter()
            .position(|t| {
                t.t.merchant == m.login
                    && t.t.transaction_type == kind
                    && t.t.invoice_number == invoice
                    && t.cents == cents
                    && t.instrument.key() == instrument.key()
                    && now - t.t.submitted_at < Duration::seconds(window)
            })
            .map(|i| (i, explicit.is_some()))
    }

    fn record(
        &mut self,
        m: &Merchant,
        kind: &str,
        request: &J,
        ref_id: Option<&str>,
        (code, reason_code, cents): (u8, u16, u64),
        instrument: Instrument,
    ) -> usize {
        let id = self.next_id(60_000_000_000);
        let auth_code = if matches!(code, 1 | 4) && !instrument.is_bank() {
            format!("{:06X}", (self.seq * 7919) % 0xFF_FFFF)
        } else {
            String::new()
        };
        let status = match (kind, code, reason_code) {
            ("refundTransaction", _, _) => "refundPendingSettlement",
            (_, 1, _) => "capturedPendingSettlement",
            (_, 4, 252) => "FDSPendingReview",
            (_, 4, _) => "FDSAuthorizedPendingReview",
            _ => "declined",
        };
        let now = self.now();
        self.txs.push(Tx {
            t: AnetTransaction {
                trans_id: id,
                merchant: m.login.clone(),
                transaction_type: kind.to_owned(),
                status: status.to_owned(),
                response_code: code,
                reason_code,
                ref_id: ref_id.map(str::to_owned),
                invoice_number: request.at(&["order", "invoiceNumber"]),
                description: request.at(&["order", "description"]),
                amount: amount_text(cents),
                account_type: instrument.account_type().to_owned(),
                account_number: instrument.masked(),
                ref_trans_id: request.at(&["refTransId"]),
                customer_profile_id: request.at(&["profile", "customerProfileId"]),
                payment_profile_id: request.at(&["profile", "paymentProfile", "paymentProfileId"]),
                submitted_at: now,
                batch_id: None,
                return_code: None,
            },
            instrument,
            cents,
            refunded: 0,
            auth_code,
        });
        self.txs.len() - 1
    }

    fn charge(&mut self, m: &Merchant, request: &J, ref_id: Option<&str>) -> J {
        let Some(cents) = request
            .at(&["amount"])
            .as_deref()
            .and_then(parse_cents)
            .filter(|c| *c > 0)
        else {
            return transaction_reply(&Answer::error(5), ref_id);
        };
        if request
            .at(&["currencyCode"])
            .is_some_and(|c| c != m.currency)
        {
            return transaction_reply(&Answer::error(39), ref_id);
        }
        let mut profile = None;
        let instrument = if let Some(payment) = request.get("payment") {
            match payment.get("opaqueData") {
                Some(opaque) => match self.spend_token(opaque) {
                    Some(i) => i,
                    None => return error(ref_id, "E00114", "Invalid OTS Token."),
                },
                None => match instrument_of(payment) {
                    Some(i) => i,
                    None => return transaction_reply(&Answer::error(33), ref_id),
                },
            }
        } else if let Some(saved) = request.get("profile") {
            let customer = saved.at(&["customerProfileId"]);
            let method = saved.at(&["paymentProfile", "paymentProfileId"]);
            match self.saved(m, customer.as_deref(), method.as_deref()) {
                Some(i) => {
                    profile = customer.zip(method);
                    i
                }
                None => {
                    return error(
                        ref_id,
                        "E00040",
                        "Customer Profile ID or Customer Payment Profile ID not found.",
                    );
                }
            }
        } else {
            return transaction_reply(&Answer::error(33), ref_id);
        };
        if let Some((i, explicit)) =
            self.duplicate_of(m, "authCaptureTransaction", request, cents, &instrument)
        {
            let original = &self.txs[i];
            let answer = Answer {
                code: 3,
                reason: 11,
                trans_id: if explicit {
                    original.t.trans_id.clone()
                } else {
                    "0".to_owned()
                },
                ref_trans_id: String::new(),
                auth_code: if explicit {
                    original.auth_code.clone()
                } else {
                    String::new()
                },
                instrument: Some(&instrument),
                profile: None,
            };
            return transaction_reply(&answer, ref_id);
        }
        let now = self.now();
        let (code, reason_code) = outcome(&instrument, cents, now);
        if code == 3 {
            let answer = Answer {
                instrument: Some(&instrument),
                ..Answer::error(reason_code)
            };
            return transaction_reply(&answer, ref_id);
        }
        let i = self.record(
            m,
            "authCaptureTransaction",
            request,
            ref_id,
            (code, reason_code, cents),
            instrument,
        );
        let tx = &self.txs[i];
        let answer = Answer {
            code,
            reason: reason_code,
            trans_id: tx.t.trans_id.clone(),
            ref_trans_id: String::new(),
            auth_code: tx.auth_code.clone(),
            instrument: Some(&tx.instrument),
            profile,
        };
        transaction_reply(&answer, ref_id)
    }

    fn refund(&mut self, m: &Merchant, request: &J, ref_id: Option<&str>) -> J {
        let Some(cents) = request
            .at(&["amount"])
            .as_deref()
            .and_then(parse_cents)
            .filter(|c| *c > 0)
        else {
            return transaction_reply(&Answer::error(5), ref_id);
        };
        let charge = request.at(&["refTransId"]);
        let Some(i) = self.txs.iter().position(|t| {
            t.t.merchant == m.login
                && Some(&t.t.trans_id) == charge.as_ref()
                && t.t.transaction_type == "authCaptureTransaction"
        }) else {
            return transaction_reply(&Answer::error(16), ref_id);
        };
        let original = &self.txs[i];
        let given = request
            .at(&["payment", "creditCard", "cardNumber"])
            .or_else(|| request.at(&["payment", "bankAccount", "accountNumber"]));
        let same_account = given.is_some_and(|g| g.ends_with(&original.instrument.last4()));
        if original.t.status != "settledSuccessfully" || !same_account {
            return transaction_reply(&Answer::error(54), ref_id);
        }
        if cents > original.cents - original.refunded {
            return transaction_reply(&Answer::error(55), ref_id);
        }
        let instrument = original.instrument.clone();
        if let Some((d, explicit)) =
            self.duplicate_of(m, "refundTransaction", request, cents, &instrument)
        {
            let answer = Answer {
                trans_id: if explicit {
                    self.txs[d].t.trans_id.clone()
                } else {
                    "0".to_owned()
                },
                instrument: Some(&instrument),
                ..Answer::error(11)
            };
            return transaction_reply(&answer, ref_id);
        }
        self.txs[i].refunded += cents;
        let r = self.record(
            m,
            "refundTransaction",
            request,
            ref_id,
            (1, 1, cents),
            instrument,
        );
        let tx = &self.txs[r];
        let answer = Answer {
            code: 1,
            reason: 1,
            trans_id: tx.t.trans_id.clone(),
            ref_trans_id: charge.unwrap_or_default(),
            auth_code: String::new(),
            instrument: Some(&tx.instrument),
            profile: None,
        };
        transaction_reply(&answer, ref_id)
    }

    fn void(&mut self, m: &Merchant, request: &J, ref_id: Option<&str>) -> J {
        let target = request.at(&["refTransId"]);
        let Some(i) = self
            .txs
            .iter()
            .position(|t| t.t.merchant == m.login && Some(&t.t.trans_id) == target.as_ref())
        else {
            return transaction_reply(&Answer::error(16), ref_id);
        };
        let reason_code = match self.txs[i].t.status.as_str() {
            "voided" => 310,
            "capturedPendingSettlement"
            | "FDSPendingReview"
            | "FDSAuthorizedPendingReview"
            | "authorizedPendingCapture"
            | "refundPendingSettlement" => {
                let tx = &mut self.txs[i];
                tx.t.status = "voided".into();
                if let Some(charge) = tx.t.ref_trans_id.clone() {
                    let cents = tx.cents;
                    if let Some(c) = self.txs.iter_mut().find(|t| t.t.trans_id == charge) {
                        c.refunded = c.refunded.saturating_sub(cents);
                    }
                }
                1
            }
            _ => return transaction_reply(&Answer::error(16), ref_id),
        };
        let tx = &self.txs[i];
        let answer = Answer {
            code: 1,
            reason: reason_code,
            trans_id: tx.t.trans_id.clone(),
            ref_trans_id: tx.t.trans_id.clone(),
            auth_code: tx.auth_code.clone(),
            instrument: Some(&tx.instrument),
            profile: None,
        };
        transaction_reply(&answer, ref_id)
    }

    fn transaction_details(&self, m: &Merchant, body: &J, ref_id: Option<&str>) -> J {
        let id = body.at(&["transId"]);
        let Some(tx) = self
            .txs
            .iter()
            .find(|t| t.t.merchant == m.login && Some(&t.t.trans_id) == id.as_ref())
        else {
            return error(ref_id, "E00040", "The record cannot be found.");
        };
        let t = &tx.t;
        let batch = t
            .batch_id
            .as_ref()
            .and_then(|b| self.batches.iter().find(|x| &x.id == b));
        let card = !tx.is_bank();
        let details = obj! {
            "transId" => t.trans_id.clone(),
            "refTransId" => t.ref_trans_id.clone(),
            "submitTimeUTC" => utc(t.submitted_at),
            "submitTimeLocal" => local(t.submitted_at),
            "transactionType" => t.transaction_type.clone(),
            "transactionStatus" => t.status.clone(),
            "responseCode" => u64::from(t.response_code),
            "responseReasonCode" => u64::from(t.reason_code),
            "responseReasonDescription" => match t.reason_code {
                1 => "Approval",
                2..=4 => "General decline by card issuing bank or by Merchant Service Provider",
                252 | 253 => "Transaction is held for review",
                _ => "Declined",
            },
            "authCode" => (!tx.auth_code.is_empty()).then(|| tx.auth_code.clone()),
            "AVSResponse" => if card { "Y" } else { "P" },
            "cardCodeResponse" => card.then_some("M"),
            "batch" => batch.map(|b| obj! {
                "batchId" => b.id.clone(),
                "settlementTimeUTC" => utc(b.settled_at),
                "settlementTimeLocal" => local(b.settled_at),
                "settlementState" => "settledSuccessfully",
                "paymentMethod" => b.method,
                "marketType" => "eCommerce",
                "product" => "Card Not Present",
            }),
            "order" => (t.invoice_number.is_some() || t.description.is_some()).then(|| obj! {
                "invoiceNumber" => t.invoice_number.clone(),
                "description" => t.description.clone(),
            }),
            "authAmount" => amount_number(tx.cents),
            "settleAmount" => amount_number(tx.settled_cents()),
            "taxExempt" => false,
            "payment" => tx.instrument.payment(false),
            "recurringBilling" => false,
            "returnedItems" => t.return_code.clone().map(|code| vec![obj! {
                "id" => t.trans_id.clone(),
                "dateUTC" => utc(t.submitted_at + Duration::days(3)),
                "dateLocal" => local(t.submitted_at + Duration::days(3)),
                "code" => code,
                "description" => "Insufficient Funds",
            }]),
            "profile" => t.customer_profile_id.clone().map(|c| obj! {
                "customerProfileId" => c,
                "customerPaymentProfileId" => t.payment_profile_id.clone(),
            }),
        };
        reply(
            vec![
                ("transaction", details),
                ("transrefId", J::from(t.ref_id.clone())),
            ],
            ref_id,
            ok(),
        )
    }

    fn transaction_list(&self, items: Vec<&Tx>, body: &J, ref_id: Option<&str>) -> J {
        let total = items.len() as u64;
        let by_time = body.at(&["sorting", "orderBy"]).as_deref() == Some("submitTimeUTC");
        let shown = page(items, body, |t: &Tx| {
            if by_time {
                u64::try_from(t.t.submitted_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
            } else {
                t.t.trans_id.parse().unwrap_or(0)
            }
        });
        if total == 0 {
            return reply(
                vec![("totalNumInResultSet", J::from(0u64))],
                ref_id,
                messages("Ok", "I00004", "No records found."),
            );
        }
        let summaries = shown
            .iter()
            .map(|tx| {
                let t = &tx.t;
                obj! {
                    "transId" => t.trans_id.clone(),
                    "submitTimeUTC" => utc(t.submitted_at),
                    "submitTimeLocal" => local(t.submitted_at),
                    "transactionStatus" => t.status.clone(),
                    "invoiceNumber" => t.invoice_number.clone(),
                    "accountType" => t.account_type.clone(),
                    "accountNumber" => t.account_number.clone(),
                    "settleAmount" => amount_number(tx.settled_cents()),
                    "marketType" => "eCommerce",
                    "product" => "Card Not Present",
                    "hasReturnedItems" => t.return_code.is_some(),
                    "profile" => t.customer_profile_id.clone().map(|c| obj! {
                        "customerProfileId" => c,
                        "customerPaymentProfileId" => t.payment_profile_id.clone(),
                    }),
                }
            })
            .collect::<Vec<_>>();
        reply(
            vec![
                ("transactions", J::Arr(summaries)),
                ("totalNumInResultSet", J::from(total)),
            ],
            ref_id,
            ok(),
        )
    }

    fn batch_list(&self, m: &Merchant, body: &J, ref_id: Option<&str>) -> J {
        let now = self.now();
        let date = |key: &str| {
            body.at(&[key])
                .and_then(|d| OffsetDateTime::parse(&d, &Rfc3339).ok())
        };
        let first = date("firstSettlementDate").unwrap_or(now - Duration::days(1));
        let last = date("lastSettlementDate").unwrap_or(now);
        if last - first > Duration::days(31) {
            return error(ref_id, "E00003", "The date range can not exceed 31 days.");
        }
        let batches: Vec<J> = self
            .batches
            .iter()
            .filter(|b| b.merchant == m.login && b.settled_at >= first && b.settled_at <= last)
            .map(|b| {
                obj! {
                    "batchId" => b.id.clone(),
                    "settlementTimeUTC" => utc(b.settled_at),
                    "settlementTimeLocal" => local(b.settled_at),
                    "settlementState" => "settledSuccessfully",
                    "paymentMethod" => b.method,
                    "marketType" => "eCommerce",
                    "product" => "Card Not Present",
                }
            })
            .collect();
        if batches.is_empty() {
            return reply(
                Vec::new(),
                ref_id,
                messages("Ok", "I00004", "No records found."),
            );
        }
        reply(vec![("batchList", J::Arr(batches))], ref_id, ok())
    }

    fn create_profile(&mut self, m: &Merchant, body: &J, ref_id: Option<&str>) -> J {
        let profile = body.get("profile").unwrap_or(&J::Null);
        if profile.get("paymentProfiles").is_some() || profile.get("shipToList").is_some() {
            return error(
                ref_id,
                "E00001",
                "The Authorize.Net double does not create payment profiles or addresses with a customer profile.",
            );
        }
        let merchant_customer_id = profile.at(&["merchantCustomerId"]);
        if merchant_customer_id.is_none()
            && profile.at(&["description"]).is_none()
            && profile.at(&["email"]).is_none()
        {
            return error(
                ref_id,
                "E00041",
                "One or more fields in the profile must contain a value.",
            );
        }
        if let Some(existing) = self.profiles.iter().find(|p| {
            p.merchant == m.login
                && merchant_customer_id.is_some()
                && p.merchant_customer_id == merchant_customer_id
        }) {
            let text = format!("A duplicate record with ID {} already exists.", existing.id);
            return error(ref_id, "E00039", &text);
        }
        let id = self.next_id(500_000_000);
        self.profiles.push(Profile {
            id: id.clone(),
            merchant: m.login.clone(),
            merchant_customer_id,
            methods: Vec::new(),
        });
        reply(
            vec![
                ("customerProfileId", J::from(id)),
                ("customerPaymentProfileIdList", J::Arr(Vec::new())),
                ("customerShippingAddressIdList", J::Arr(Vec::new())),
                ("validationDirectResponseList", J::Arr(Vec::new())),
            ],
            ref_id,
            ok(),
        )
    }

    fn create_payment_profile(&mut self, m: &Merchant, body: &J, ref_id: Option<&str>) -> J {
        let customer = body.at(&["customerProfileId"]);
        let Some(p) = self
            .profiles
            .iter()
            .position(|p| p.merchant == m.login && Some(&p.id) == customer.as_ref())
        else {
            return error(ref_id, "E00040", "The record cannot be found.");
        };
        let Some(payment) = body.get("paymentProfile").and_then(|p| p.get("payment")) else {
            return error(ref_id, "E00029", "Payment information is required.");
        };
        let instrument = match payment.get("opaqueData") {
            Some(opaque) => match self.spend_token(opaque) {
                Some(i) => i,
                None => return error(ref_id, "E00114", "Invalid OTS Token."),
            },
            None => match instrument_of(payment) {
                Some(i) => i,
                None => return error(ref_id, "E00029", "Payment information is required."),
            },
        };
        let customer = self.profiles[p].id.clone();
        if let Some((existing, _)) = self.profiles[p]
            .methods
            .iter()
            .find(|(_, i)| i.key() == instrument.key())
        {
            return reply(
                vec![
                    ("customerProfileId", J::from(&customer)),
                    ("customerPaymentProfileId", J::from(existing)),
                ],
                ref_id,
                messages(
                    "Error",
                    "E00039",
                    "A duplicate customer payment profile already exists.",
                ),
            );
        }
        let mode = body
            .at(&["validationMode"])
            .unwrap_or_else(|| "none".into());
        let validated = mode == "testMode" || mode == "liveMode" || mode == "oldLiveMode";
        let now = self.now();
        let (code, reason_code) = if validated {
            outcome(&instrument, 0, now)
        } else {
            (1, 1)
        };
        let direct = |code: u8, reason_code: u16| {
            format!(
                "{code},1,{reason_code},{},,{},0,none,Test transaction for ValidateCustomerPaymentProfile.,0.00,{},auth_only,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,{},{}",
                reason(reason_code).1,
                if code == 1 { "Y" } else { "P" },
                if instrument.is_bank() { "ECHECK" } else { "CC" },
                instrument.masked(),
                instrument.account_type(),
            )
        };
        if code != 1 {
            return reply(
                vec![(
                    "validationDirectResponse",
                    J::from(direct(code, reason_code)),
                )],
                ref_id,
                messages("Error", "E00027", reason(reason_code).1),
            );
        }
        let validation = validated.then(|| direct(1, 1));
        let id = self.next_id(510_000_000);
        self.profiles[p].methods.push((id.clone(), instrument));
        reply(
            vec![
                ("customerProfileId", J::from(customer)),
                ("customerPaymentProfileId", J::from(id)),
                ("validationDirectResponse", J::from(validation)),
            ],
            ref_id,
            ok(),
        )
    }

    fn get_payment_profile(&self, m: &Merchant, body: &J, ref_id: Option<&str>) -> J {
        let customer = body.at(&["customerProfileId"]);
        let method = body.at(&["customerPaymentProfileId"]);
        let unmask = body.at(&["unmaskExpirationDate"]).as_deref() == Some("true");
        let Some(instrument) = self.saved(m, customer.as_deref(), method.as_deref()) else {
            return error(ref_id, "E00040", "The record cannot be found.");
        };
        reply(
            vec![(
                "paymentProfile",
                obj! {
                    "customerProfileId" => customer,
                    "customerPaymentProfileId" => method,
                    "payment" => instrument.payment(unmask),
                },
            )],
            ref_id,
            ok(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(d: &AnetDouble, body: &str) -> J {
        let (status, answer, _) = d.inner().process(body.as_bytes());
        assert_eq!(status, StatusCode::OK, "{answer:?}");
        answer
    }

    const AUTH: &str = r#""merchantAuthentication": {"name": "login1", "transactionKey": "key1"}"#;

    fn charge_body(token: &str, amount: &str, invoice: &str) -> String {
        format!(
            r#"{{"createTransactionRequest": {{{AUTH}, "refId": "{invoice}",
              "transactionRequest": {{"transactionType": "authCaptureTransaction", "amount": "{amount}",
                "payment": {{"opaqueData": {{"dataDescriptor": "{ACCEPT_DESCRIPTOR}", "dataValue": "{token}"}}}},
                "order": {{"invoiceNumber": "{invoice}"}}}}}}}}"#
        )
    }

    #[test]
    fn a_token_is_spent_once_and_expires_after_15_minutes() {
        let d = AnetDouble::start();
        d.add_merchant("login1", "key1");
        let token = d.tokenize_card("4111111111111111", 12, 2099, "123");
        let first = post(&d, &charge_body(&token, "10.00", "A1"));
        assert_eq!(
            first
                .at(&["transactionResponse", "responseCode"])
                .as_deref(),
            Some("1")
        );
        let again = post(&d, &charge_body(&token, "10.00", "A2"));
        assert_eq!(
            again.at(&["messages", "resultCode"]).as_deref(),
            Some("Error")
        );
        let J::Arr(list) = again.get("messages").unwrap().get("message").unwrap() else {
            panic!()
        };
        assert_eq!(list[0].at(&["code"]).as_deref(), Some("E00114"));
        let late = d.tokenize_card("4111111111111111", 12, 2099, "123");
        d.advance(Duration::minutes(16));
        let answer = post(&d, &charge_body(&late, "10.00", "A3"));
        assert!(serde_json::to_string(&answer).unwrap().contains("E00114"));
    }

    #[test]
    fn the_decline_card_takes_its_reason_from_the_amount() {
        let d = AnetDouble::start();
        d.add_merchant("login1", "key1");
        for (amount, code, reason_code) in [
            ("2.00", "2", "2"),
            ("8.00", "3", "8"),
            ("252.00", "4", "252"),
            ("2.50", "1", "1"),
        ] {
            let token = d.tokenize_card(DECLINE_CARD, 12, 2099, "123");
            let answer = post(&d, &charge_body(&token, amount, amount));
            assert_eq!(
                answer
                    .at(&["transactionResponse", "responseCode"])
                    .as_deref(),
                Some(code),
                "{amount}"
            );
            let list = answer
                .get("transactionResponse")
                .and_then(|t| {
                    t.get(if code == "1" || code == "4" {
                        "messages"
                    } else {
                        "errors"
                    })
                })
                .unwrap();
            let J::Arr(items) = list else { panic!() };
            let key = if code == "1" || code == "4" {
                "code"
            } else {
                "errorCode"
            };
            assert_eq!(
                items[0].at(&[key]).as_deref(),
                Some(reason_code),
                "{amount}"
            );
        }
    }

    #[test]
    fn luhn_and_brands() {
        assert!(luhn("4111111111111111"));
        assert!(!luhn("4111111111111112"));
        assert_eq!(brand("5424000000000015"), "MasterCard");
        assert_eq!(brand("370000000000002"), "AmericanExpress");
        assert_eq!(brand("6011000000000012"), "Discover");
        assert_eq!(parse_cents("12.3"), Some(1230));
        assert_eq!(parse_cents("12.345"), None);
    }

    #[test]
    fn a_webhook_signature_is_uppercase_hex_sha512() {
        let header = AnetDouble::sign_webhook("key", b"{}");
        let hex = header.strip_prefix("sha512=").unwrap();
        assert_eq!(hex.len(), 128);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
    }
}

mod schema {
    //! The published XSD, read once, and the check of a JSON request against it.
    //!
    //! Authorize.Net turns a JSON request into XML and validates it against `AnetApiSchema.xsd`, so
    //! the keys of every object must come in the order of its type's `xs:sequence` (extensions
    //! first the base's, then their own), required elements must be there, and simple values must
    //! meet their facets (`maxLength`, enumerations, the numeric patterns). A repeated element is a
    //! JSON array under its own name (`"setting": [{...}]`). What fails is described as .NET's
    //! schema validation does it, which is the text that comes back with `E00003`.
    //!
    //! Responses are checked too (the double's own), more loosely: Authorize.Net writes them from
    //! its objects, keys in no particular order, and a wrapper type whose only content is one
    //! repeated element (`ArrayOfX`, `errors`, `transactionResponse.messages`) as a plain array.

    use std::cell::Cell;
    use std::collections::{BTreeSet, HashMap};
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde::ser::{Serialize, SerializeMap, Serializer};

    /// The schema's target namespace, as validation errors name it.
    pub const NS: &str = "AnetApi/xml/v1/schema/AnetApiSchema.xsd";

    /// JSON that keeps the order of object keys (serde_json's own map sorts them).
    #[derive(Debug, Clone, PartialEq)]
    pub enum J {
        Null,
        Bool(bool),
        Num(serde_json::Number),
        Str(String),
        Arr(Vec<J>),
        Obj(Vec<(String, J)>),
    }

    impl J {
        pub fn get(&self, key: &str) -> Option<&J> {
            match self {
                J::Obj(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        /// A scalar as text ("1", "true", "12.3"); None for objects, arrays and null.
        pub fn text(&self) -> Option<String> {
            match self {
                J::Str(s) => Some(s.clone()),
                J::Num(n) => Some(n.to_string()),
                J::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        }

        /// The text at a path of keys.
        pub fn at(&self, path: &[&str]) -> Option<String> {
            let mut v = self;
            for key in path {
                v = v.get(key)?;
            }
            v.text()
        }

        pub fn to_value(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }

        /// Drops members that are null (an absent optional element).
        pub fn pruned(self) -> J {
            match self {
                J::Obj(entries) => {
                    J::Obj(entries.into_iter().filter(|(_, v)| *v != J::Null).collect())
                }
                other => other,
            }
        }
    }

    impl From<&str> for J {
        fn from(s: &str) -> J {
            J::Str(s.to_owned())
        }
    }

    impl From<String> for J {
        fn from(s: String) -> J {
            J::Str(s)
        }
    }

    impl From<&String> for J {
        fn from(s: &String) -> J {
            J::Str(s.clone())
        }
    }

    impl From<bool> for J {
        fn from(b: bool) -> J {
            J::Bool(b)
        }
    }

    impl From<u64> for J {
        fn from(n: u64) -> J {
            J::Num(n.into())
        }
    }

    impl From<f64> for J {
        fn from(n: f64) -> J {
            serde_json::Number::from_f64(n).map_or(J::Null, J::Num)
        }
    }

    impl From<Vec<J>> for J {
        fn from(v: Vec<J>) -> J {
            J::Arr(v)
        }
    }

    impl<T: Into<J>> From<Option<T>> for J {
        fn from(v: Option<T>) -> J {
            v.map_or(J::Null, Into::into)
        }
    }

    impl<'de> Deserialize<'de> for J {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<J, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = J;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON value")
                }
                fn visit_bool<E>(self, b: bool) -> Result<J, E> {
                    Ok(J::Bool(b))
                }
                fn visit_i64<E>(self, n: i64) -> Result<J, E> {
                    Ok(J::Num(n.into()))
                }
                fn visit_u64<E>(self, n: u64) -> Result<J, E> {
                    Ok(J::Num(n.into()))
                }
                fn visit_f64<E: de::Error>(self, n: f64) -> Result<J, E> {
                    serde_json::Number::from_f64(n)
                        .map(J::Num)
                        .ok_or_else(|| E::custom("not a finite number"))
                }
                fn visit_str<E>(self, s: &str) -> Result<J, E> {
                    Ok(J::Str(s.to_owned()))
                }
                fn visit_string<E>(self, s: String) -> Result<J, E> {
                    Ok(J::Str(s))
                }
                fn visit_unit<E>(self) -> Result<J, E> {
                    Ok(J::Null)
                }
                fn visit_none<E>(self) -> Result<J, E> {
                    Ok(J::Null)
                }
                fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<J, D2::Error> {
                    J::deserialize(d)
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                    let mut items = Vec::new();
                    while let Some(item) = a.next_element()? {
                        items.push(item);
                    }
                    Ok(J::Arr(items))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                    let mut entries = Vec::new();
                    while let Some((k, v)) = a.next_entry::<String, J>()? {
                        entries.push((k, v));
                    }
                    Ok(J::Obj(entries))
                }
            }
            d.deserialize_any(V)
        }
    }

    impl Serialize for J {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                J::Null => s.serialize_unit(),
                J::Bool(b) => s.serialize_bool(*b),
                J::Num(n) => n.serialize(s),
                J::Str(x) => s.serialize_str(x),
                J::Arr(items) => items.serialize(s),
                J::Obj(entries) => {
                    let mut map = s.serialize_map(Some(entries.len()))?;
                    for (k, v) in entries {
                        map.serialize_entry(k, v)?;
                    }
                    map.end()
                }
            }
        }
    }

    /// A small DOM of the XSD.
    struct Node {
        name: String,
        attrs: Vec<(String, String)>,
        children: Vec<Node>,
    }

    impl Node {
        fn attr(&self, name: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }

        fn kids<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
            self.children.iter().filter(move |c| c.name == name)
        }
    }

    fn local(name: &str) -> String {
        name.split_once(':').map_or(name, |(_, l)| l).to_owned()
    }

    fn parse_xml(text: &str) -> Node {
        use quick_xml::events::{BytesStart, Event};
        let mut reader = quick_xml::Reader::from_str(text);
        reader.config_mut().trim_text(true);
        let node = |e: &BytesStart<'_>| Node {
            name: local(e.name().as_ref()),
            attrs: e
                .attributes()
                .filter_map(Result::ok)
                .map(|a| (local(a.key.as_ref()), a.value.into_owned()))
                .collect(),
            children: Vec::new(),
        };
        let mut stack = vec![Node {
            name: String::new(),
            attrs: Vec::new(),
            children: Vec::new(),
        }];
        loop {
            match reader.read_event().expect("the XSD is well-formed XML") {
                Event::Start(e) => stack.push(node(&e)),
                Event::Empty(e) => {
                    let n = node(&e);
                    stack.last_mut().expect("a parent").children.push(n);
                }
                Event::End(_) => {
                    let done = stack.pop().expect("balanced tags");
                    stack.last_mut().expect("a parent").children.push(done);
                }
                Event::Eof => break,
                _ => {}
            }
        }
        let mut document = stack.pop().expect("the document");
        document.children.pop().expect("a root element")
    }

    #[derive(Debug, Clone, Copy)]
    struct Occurs {
        min: u32,
        /// None: unbounded.
        max: Option<u32>,
    }

    impl Occurs {
        const ONE: Occurs = Occurs {
            min: 1,
            max: Some(1),
        };

        fn of(node: &Node) -> Occurs {
            Occurs {
                min: node
                    .attr("minOccurs")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
                max: match node.attr("maxOccurs") {
                    Some("unbounded") => None,
                    Some(v) => v.parse().ok(),
                    None => Some(1),
                },
            }
        }

        fn repeated(self) -> bool {
            self.max != Some(1)
        }
    }

    #[derive(Debug, Clone)]
    enum Ty {
        /// An `xs:` type: string, decimal, boolean, int, dateTime...
        Builtin(String),
        /// A named `anet:` type, simple or complex.
        Named(String),
        Simple(Box<SimpleT>),
        Complex(Box<ComplexT>),
        /// No type at all: anything goes.
        Any,
    }

    #[derive(Debug, Clone)]
    struct Decl {
        name: String,
        occurs: Occurs,
        ty: Ty,
    }

    #[derive(Debug, Clone)]
    enum Particle {
        El(Box<Decl>),
        Seq(Vec<Particle>, Occurs),
        Choice(Vec<Particle>, Occurs),
    }

    #[derive(Debug, Clone)]
    struct ComplexT {
        base: Option<String>,
        own: Option<Particle>,
    }

    #[derive(Debug, Clone, Default)]
    struct SimpleT {
        base: String,
        min_len: Option<usize>,
        max_len: Option<usize>,
        len: Option<usize>,
        enums: Vec<String>,
        pattern: Option<String>,
        min_incl: Option<f64>,
        max_incl: Option<f64>,
    }

    /// The schema: named types and the top-level elements (the API's requests and responses).
    pub struct Schema {
        complex: HashMap<String, ComplexT>,
        simple: HashMap<String, SimpleT>,
        elements: HashMap<String, Decl>,
    }

    /// How strictly a value is checked.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Mode {
        /// A request: keys in sequence order, wrappers as they are.
        Request,
        /// A response: any key order, single-item wrappers as plain arrays.
        Response,
    }

    fn strip_prefix(name: &str) -> &str {
        name.split_once(':').map_or(name, |(_, l)| l)
    }

    impl Schema {
        pub fn parse(xsd: &str) -> Schema {
            let root = parse_xml(xsd);
            let mut schema = Schema {
                complex: HashMap::new(),
                simple: HashMap::new(),
                elements: HashMap::new(),
            };
            for child in &root.children {
                let Some(name) = child.attr("name") else {
                    continue;
                };
                match child.name.as_str() {
                    "complexType" => {
                        schema.complex.insert(name.to_owned(), complex_of(child));
                    }
                    "simpleType" => {
                        schema.simple.insert(name.to_owned(), simple_of(child));
                    }
                    "element" => {
                        schema.elements.insert(name.to_owned(), decl_of(child));
                    }
                    _ => {}
                }
            }
            schema
        }

        /// Whether the schema declares a top-level element of this name.
        pub fn declares(&self, element: &str) -> bool {
            self.elements.contains_key(element)
        }

        /// Checks `value` as the content of the top-level element `element`. The error is the
        /// validator's message.
        pub fn validate(&self, element: &str, value: &J, mode: Mode) -> Result<(), String> {
            let decl = self
                .elements
                .get(element)
                .ok_or_else(|| format!("The '{NS}:{element}' element is not declared."))?;
            self.check(&decl.name, &decl.ty, value, mode)
        }

        fn complex_named(&self, ty: &Ty) -> Option<ComplexT> {
            match ty {
                Ty::Named(n) => self.complex.get(n).cloned(),
                Ty::Complex(c) => Some((**c).clone()),
                _ => None,
            }
        }

        /// A complex type's whole content: its base's, then its own.
        fn content(&self, c: &ComplexT) -> Option<Particle> {
            let base = c
                .base
                .as_deref()
                .and_then(|b| self.complex.get(strip_prefix(b)))
                .and_then(|b| self.content(b));
            match (base, c.own.clone()) {
                (None, own) => own,
                (Some(base), None) => Some(base),
                (Some(base), Some(own)) => Some(Particle::Seq(vec![base, own], Occurs::ONE)),
            }
        }

        fn check(&self, name: &str, ty: &Ty, value: &J, mode: Mode) -> Result<(), String> {
            if let Some(complex) = self.complex_named(ty) {
                return self.check_complex(name, &complex, value, mode);
            }
            match value {
                J::Null => Err(format!(
                    "The '{NS}:{name}' element is invalid - The value '' is invalid according to its datatype."
                )),
                J::Obj(entries) if !entries.is_empty() || !matches!(ty, Ty::Any) => {
                    if matches!(ty, Ty::Any) {
                        return Ok(());
                    }
                    let child = entries.first().map_or("", |(k, _)| k.as_str());
                    Err(format!(
                        "The element '{name}' in namespace '{NS}' cannot contain child element '{child}' because the parent element's content model is text only."
                    ))
                }
                J::Arr(_) => Err(format!(
                    "The element '{name}' in namespace '{NS}' has invalid child element '{name}' in namespace '{NS}'."
                )),
                _ => {
                    let text = value.text().unwrap_or_default();
                    self.check_simple(name, ty, &text)
                }
            }
        }

        fn check_complex(
            &self,
            name: &str,
            complex: &ComplexT,
            value: &J,
            mode: Mode,
        ) -> Result<(), String> {
            let content = self.content(complex);
            let entries: &[(String, J)] = match value {
                J::Obj(entries) => entries,
                J::Str(s) if s.is_empty() => &[],
                J::Null => {
                    return Err(format!(
                        "The element '{name}' in namespace '{NS}' cannot be null."
                    ));
                }
                _ => {
                    return Err(format!(
                        "The element '{name}' in namespace '{NS}' cannot contain text. List of possible elements expected: '{}' in namespace '{NS}'.",
                        content
                            .as_ref()
                            .map(|c| names_in(c).join(", "))
                            .unwrap_or_default()
                    ));
                }
            };
            let Some(content) = content else {
                return match entries.first() {
                    None => Ok(()),
                    Some((child, _)) => Err(format!(
                        "The element '{name}' in namespace '{NS}' has invalid child element '{child}' in namespace '{NS}'."
                    )),
                };
            };
            let decls = decls_in(&content);
            // The children as XML would have them: an array is its element repeated, except (in a
            // response) a wrapper written as a plain array.
            let mut children: Vec<(&str, &J, bool)> = Vec::new();
            for (key, v) in entries {
                let decl = decls.iter().find(|d| d.name == *key);
                match v {
                    J::Arr(items)
                        if mode == Mode::Response
                            && decl.is_some_and(|d| self.wrapped_item(d).is_some()) =>
                    {
                        children.push((key, v, true));
                        let _ = items;
                    }
                    J::Arr(items) => {
                        children.extend(items.iter().map(|i| (key.as_str(), i, false)))
                    }
                    _ => children.push((key, v, false)),
                }
            }
            if mode == Mode::Response {
                let order = |n: &str| decls.iter().position(|d| d.name == n).unwrap_or(usize::MAX);
                children.sort_by_key(|(n, _, _)| order(n));
            }
            let names: Vec<&str> = children.iter().map(|(n, _, _)| *n).collect();
            sequence_matches(name, &content, &names)?;
            for (child, v, wrapped) in children {
                let decl = decls
                    .iter()
                    .find(|d| d.name == child)
                    .expect("a matched child is declared");
                if wrapped {
                    let item = self.wrapped_item(decl).expect("checked above");
                    let J::Arr(items) = v else { unreachable!() };
                    for i in items {
                        self.check(&item.name, &item.ty, i, mode)?;
                    }
                } else {
                    self.check(child, &decl.ty, v, mode)?;
                }
            }
            Ok(())
        }

        /// For a wrapper type (its only content one repeated element), that element.
        fn wrapped_item(&self, decl: &Decl) -> Option<Decl> {
            let complex = self.complex_named(&decl.ty)?;
            match self.content(&complex)? {
                Particle::El(d) if d.occurs.repeated() => Some(*d),
                Particle::Seq(items, _) if items.len() == 1 => match &items[0] {
                    Particle::El(d) if d.occurs.repeated() => Some((**d).clone()),
                    _ => None,
                },
                _ => None,
            }
        }

        fn check_simple(&self, name: &str, ty: &Ty, text: &str) -> Result<(), String> {
            match ty {
                Ty::Any => Ok(()),
                Ty::Builtin(b) => check_builtin(name, b, text),
                Ty::Named(n) => match self.simple.get(n) {
                    Some(s) => self.check_simple_t(name, n, s, text),
                    None => Ok(()),
                },
                Ty::Simple(s) => self.check_simple_t(name, "String", s, text),
                Ty::Complex(_) => Ok(()),
            }
        }

        fn check_simple_t(
            &self,
            name: &str,
            type_name: &str,
            s: &SimpleT,
            text: &str,
        ) -> Result<(), String> {
            let base = s.base.as_str();
            if let Some(named) = base.strip_prefix("anet:") {
                self.check_simple(name, &Ty::Named(named.to_owned()), text)?;
            } else {
                check_builtin(name, strip_prefix(base), text)?;
            }
            let datatype = if type_name == "String" {
                "String".to_owned()
            } else {
                format!("{NS}:{type_name}")
            };
            let fail = |why: &str| {
                Err(format!(
                    "The '{NS}:{name}' element is invalid - The value '{text}' is invalid according to its datatype '{datatype}' - {why}"
                ))
            };
            let length = text.chars().count();
            if s.max_len.is_some_and(|m| length > m) {
                return fail("The actual length is greater than the MaxLength value.");
            }
            if s.min_len.is_some_and(|m| length < m) {
                return fail("The actual length is less than the MinLength value.");
            }
            if s.len.is_some_and(|m| length != m) {
                return fail("The actual length is not equal to the specified length.");
            }
            if !s.enums.is_empty() && !s.enums.iter().any(|e| e == text) {
                return fail("The Enumeration constraint failed.");
            }
            let pattern_ok = match s.pattern.as_deref() {
                Some("[0-9]+") => !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
                Some("[0-9a-zA-Z]+") => {
                    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric())
                }
                Some("[0-9a-zA-Z\\s]+") => {
                    !text.is_empty()
                        && text
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b.is_ascii_whitespace())
                }
                _ => true,
            };
            if !pattern_ok {
                return fail("The Pattern constraint failed.");
            }
            if let Ok(n) = text.parse::<f64>() {
                if s.min_incl.is_some_and(|m| n < m) {
                    return fail("The MinInclusive constraint failed.");
                }
                if s.max_incl.is_some_and(|m| n > m) {
                    return fail("The MaxInclusive constraint failed.");
                }
            }
            Ok(())
        }
    }

    fn check_builtin(name: &str, builtin: &str, text: &str) -> Result<(), String> {
        let (ok, what) = match builtin {
            "decimal" => (is_decimal(text), "Decimal"),
            "boolean" => (matches!(text, "true" | "false" | "1" | "0"), "Boolean"),
            "int" | "long" | "integer" | "short" => (is_integer(text), "Int32"),
            "dateTime" => (
                text.len() >= 19 && text.as_bytes().get(10) == Some(&b'T'),
                "DateTime",
            ),
            "date" => (text.len() == 10, "Date"),
            _ => (true, "String"),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "The '{NS}:{name}' element is invalid - The value '{text}' is invalid according to its datatype '{what}' - The string '{text}' is not a valid {what} value."
            ))
        }
    }

    fn is_integer(text: &str) -> bool {
        let digits = text.strip_prefix('-').unwrap_or(text);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    }

    fn is_decimal(text: &str) -> bool {
        let unsigned = text.strip_prefix('-').unwrap_or(text);
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        (!whole.is_empty() || !fraction.is_empty())
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b.is_ascii_digit())
    }

    fn complex_of(node: &Node) -> ComplexT {
        let mut complex = ComplexT {
            base: None,
            own: None,
        };
        for child in &node.children {
            match child.name.as_str() {
                "sequence" | "choice" => complex.own = particle_of(child),
                "complexContent" => {
                    for ext in child.kids("extension").chain(child.kids("restriction")) {
                        complex.base = ext.attr("base").map(str::to_owned);
                        complex.own = ext
                            .children
                            .iter()
                            .find(|c| c.name == "sequence" || c.name == "choice")
                            .and_then(particle_of);
                    }
                }
                _ => {}
            }
        }
        complex
    }

    fn particle_of(node: &Node) -> Option<Particle> {
        let items = || {
            node.children
                .iter()
                .filter_map(particle_of)
                .collect::<Vec<_>>()
        };
        match node.name.as_str() {
            "sequence" => Some(Particle::Seq(items(), Occurs::of(node))),
            "choice" => Some(Particle::Choice(items(), Occurs::of(node))),
            "element" => Some(Particle::El(Box::new(decl_of(node)))),
            _ => None,
        }
    }

    fn decl_of(node: &Node) -> Decl {
        let ty = match node.attr("type") {
            Some(t) => match t.split_once(':') {
                Some(("xs", builtin)) => Ty::Builtin(builtin.to_owned()),
                Some((_, named)) => Ty::Named(named.to_owned()),
                None => Ty::Named(t.to_owned()),
            },
            None => {
                if let Some(c) = node.kids("complexType").next() {
                    Ty::Complex(Box::new(complex_of(c)))
                } else if let Some(s) = node.kids("simpleType").next() {
                    Ty::Simple(Box::new(simple_of(s)))
                } else {
                    Ty::Any
                }
            }
        };
        Decl {
            name: node.attr("name").unwrap_or_default().to_owned(),
            occurs: Occurs::of(node),
            ty,
        }
    }

    fn simple_of(node: &Node) -> SimpleT {
        let mut s = SimpleT::default();
        let Some(restriction) = node.kids("restriction").next() else {
            s.base = "xs:string".to_owned();
            return s;
        };
        s.base = restriction.attr("base").unwrap_or("xs:string").to_owned();
        for facet in &restriction.children {
            let value = facet.attr("value").unwrap_or_default();
            match facet.name.as_str() {
                "enumeration" => s.enums.push(value.to_owned()),
                "maxLength" => s.max_len = value.parse().ok(),
                "minLength" => s.min_len = value.parse().ok(),
                "length" => s.len = value.parse().ok(),
                "pattern" => s.pattern = Some(value.to_owned()),
                "minInclusive" => s.min_incl = value.parse().ok(),
                "maxInclusive" => s.max_incl = value.parse().ok(),
                _ => {}
            }
        }
        s
    }

    /// Every element declared in a content model, in document order, once each.
    fn decls_in(p: &Particle) -> Vec<Decl> {
        let mut out: Vec<Decl> = Vec::new();
        fn walk(p: &Particle, out: &mut Vec<Decl>) {
            match p {
                Particle::El(d) => {
                    if !out.iter().any(|o| o.name == d.name) {
                        out.push((**d).clone());
                    }
                }
                Particle::Seq(items, _) | Particle::Choice(items, _) => {
                    for i in items {
                        walk(i, out);
                    }
                }
            }
        }
        walk(p, &mut out);
        out
    }

    fn names_in(p: &Particle) -> Vec<String> {
        decls_in(p).into_iter().map(|d| d.name).collect()
    }

    /// Matches a list of child names against a content model, tracking how far any path got.
    struct Matcher<'a> {
        names: &'a [&'a str],
        far: Cell<usize>,
    }

    impl Matcher<'_> {
        /// Where matching `p` from `start` can end.
        fn ends(&self, p: &Particle, start: usize) -> BTreeSet<usize> {
            match p {
                Particle::El(d) => self.repeat(d.occurs, start, |s| {
                    if self.names.get(s) == Some(&d.name.as_str()) {
                        self.far.set(self.far.get().max(s + 1));
                        BTreeSet::from([s + 1])
                    } else {
                        BTreeSet::new()
                    }
                }),
                Particle::Seq(items, occurs) => self.repeat(*occurs, start, |s| {
                    let mut at = BTreeSet::from([s]);
                    for item in items {
                        at = at.iter().flat_map(|&a| self.ends(item, a)).collect();
                        if at.is_empty() {
                            break;
                        }
                    }
                    at
                }),
                Particle::Choice(items, occurs) => self.repeat(*occurs, start, |s| {
                    items.iter().flat_map(|i| self.ends(i, s)).collect()
                }),
            }
        }

        fn repeat(
            &self,
            occurs: Occurs,
            start: usize,
            once: impl Fn(usize) -> BTreeSet<usize>,
        ) -> BTreeSet<usize> {
            let mut result = BTreeSet::new();
            if occurs.min == 0 {
                result.insert(start);
            }
            let mut frontier = BTreeSet::from([start]);
            let mut seen = BTreeSet::new();
            let limit = occurs.min as usize + self.names.len() + 1;
            for count in 1..=limit {
                if occurs.max.is_some_and(|m| count > m as usize) {
                    break;
                }
                let next: BTreeSet<usize> = frontier.iter().flat_map(|&s| once(s)).collect();
                if count >= occurs.min as usize {
                    result.extend(next.iter().copied());
                }
                let progressed = next.iter().any(|n| !seen.contains(n));
                if next.is_empty() || (!progressed && count >= occurs.min as usize) {
                    break;
                }
                seen.extend(next.iter().copied());
                frontier = next;
            }
            result
        }
    }

    /// Ok when `names` is a valid child list for `content`; else the validator's message.
    fn sequence_matches(parent: &str, content: &Particle, names: &[&str]) -> Result<(), String> {
        let run = |names: &[&str]| {
            let m = Matcher {
                names,
                far: Cell::new(0),
            };
            let ok = m.ends(content, 0).contains(&names.len());
            (ok, m.far.get())
        };
        let (ok, far) = run(names);
        if ok {
            return Ok(());
        }
        let candidates = names_in(content);
        let expected_at = |prefix: &[&str]| {
            candidates
                .iter()
                .filter(|c| {
                    let mut tried = prefix.to_vec();
                    tried.push(c.as_str());
                    run(&tried).1 > prefix.len()
                })
                .cloned()
                .collect::<Vec<_>>()
        };
        if far < names.len() {
            let expected = expected_at(&names[..far]);
            let mut message = format!(
                "The element '{parent}' in namespace '{NS}' has invalid child element '{}' in namespace '{NS}'.",
                names[far]
            );
            if !expected.is_empty() {
                message.push_str(&format!(
                    " List of possible elements expected: '{}' in namespace '{NS}'.",
                    expected.join(", ")
                ));
            }
            Err(message)
        } else {
            let expected = expected_at(names);
            Err(format!(
                "The element '{parent}' in namespace '{NS}' has incomplete content. List of possible elements expected: '{}' in namespace '{NS}'.",
                expected.join(", ")
            ))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn schema() -> &'static Schema {
            super::super::schema()
        }

        fn json(text: &str) -> J {
            serde_json::from_str(text).unwrap()
        }

        #[test]
        fn keys_keep_their_order() {
            let j = json(r#"{"b": 1, "a": {"z": true, "y": [1, "x"]}}"#);
            assert_eq!(
                serde_json::to_string(&j).unwrap(),
                r#"{"b":1,"a":{"z":true,"y":[1,"x"]}}"#
            );
        }

        #[test]
        fn a_request_in_sequence_order_passes_and_out_of_order_does_not() {
            let good = json(
                r#"{"merchantAuthentication": {"name": "login", "transactionKey": "key"},
                "refId": "r1",
                "transactionRequest": {"transactionType": "authCaptureTransaction", "amount": "5.00",
                  "payment": {"opaqueData": {"dataDescriptor": "COMMON.ACCEPT.INAPP.PAYMENT", "dataValue": "x"}},
                  "order": {"invoiceNumber": "A1", "description": "d"},
                  "transactionSettings": {"setting": [{"settingName": "duplicateWindow", "settingValue": "120"}]}}}"#,
            );
            assert_eq!(
                schema().validate("createTransactionRequest", &good, Mode::Request),
                Ok(())
            );
            let swapped = json(
                r#"{"merchantAuthentication": {"name": "login", "transactionKey": "key"},
                "transactionRequest": {"amount": "5.00", "transactionType": "authCaptureTransaction"}}"#,
            );
            let error = schema()
                .validate("createTransactionRequest", &swapped, Mode::Request)
                .unwrap_err();
            assert!(
                error.contains("'transactionRequest'")
                    && error.contains("invalid child element 'amount'")
                    && error.contains("expected: 'transactionType'"),
                "{error}"
            );
            let missing =
                json(r#"{"merchantAuthentication": {"name": "login", "transactionKey": "key"}}"#);
            let error = schema()
                .validate("createTransactionRequest", &missing, Mode::Request)
                .unwrap_err();
            assert!(error.contains("incomplete content"), "{error}");
            assert!(error.contains("transactionRequest"), "{error}");
        }

        #[test]
        fn facets_are_checked() {
            let long_ref = json(
                r#"{"merchantAuthentication": {"name": "l", "transactionKey": "k"}, "refId": "123456789012345678901"}"#,
            );
            let error = schema()
                .validate("authenticateTestRequest", &long_ref, Mode::Request)
                .unwrap_err();
            assert!(error.contains("MaxLength"), "{error}");
            let bad_enum = json(
                r#"{"merchantAuthentication": {"name": "l", "transactionKey": "k"}, "customerProfileId": "1",
                "paymentProfile": {}, "validationMode": "sometimes"}"#,
            );
            let error = schema()
                .validate(
                    "createCustomerPaymentProfileRequest",
                    &bad_enum,
                    Mode::Request,
                )
                .unwrap_err();
            assert!(error.contains("Enumeration"), "{error}");
            let not_numeric = json(
                r#"{"merchantAuthentication": {"name": "l", "transactionKey": "k"}, "transId": "12a"}"#,
            );
            let error = schema()
                .validate("getTransactionDetailsRequest", &not_numeric, Mode::Request)
                .unwrap_err();
            assert!(error.contains("Pattern"), "{error}");
            let unknown = json(
                r#"{"merchantAuthentication": {"name": "l", "transactionKey": "k"}, "extra": 1}"#,
            );
            let error = schema()
                .validate("authenticateTestRequest", &unknown, Mode::Request)
                .unwrap_err();
            assert!(error.contains("invalid child element 'extra'"), "{error}");
        }

        #[test]
        fn a_published_response_passes_in_response_mode() {
            // The developer reference's approval, keys as it prints them (not in sequence order).
            let approved = json(
                r#"{"transactionResponse": {"responseCode": "1", "authCode": "HW617E", "avsResultCode": "Y",
                 "cvvResultCode": "P", "cavvResultCode": "2", "transId": "2149186775", "refTransID": "",
                 "transHash": "", "testRequest": "0", "accountNumber": "XXXX0015", "accountType": "MasterCard",
                 "messages": [{"code": "1", "description": "This transaction has been approved."}],
                 "transHashSha2": ""},
                "refId": "123456",
                "messages": {"resultCode": "Ok", "message": [{"code": "I00001", "text": "Successful."}]}}"#,
            );
            assert_eq!(
                schema().validate("createTransactionResponse", &approved, Mode::Response),
                Ok(())
            );
            let no_messages = json(r#"{"refId": "1"}"#);
            assert!(
                schema()
                    .validate("createTransactionResponse", &no_messages, Mode::Response)
                    .is_err()
            );
        }
    }
}
