//! Authorize.Net behind the gateway port, over its JSON API (`POST /xml/v1/request.api`).
//!
//! Authorize.Net turns the JSON into XML and validates it against its XSD, so the keys of every
//! object must come in the schema's sequence order: requests are `#[derive(Serialize)]` structs
//! whose fields follow the XSD (absent ones skipped), never `json!` maps. Answers are HTTP 200
//! whatever happened (`messages.resultCode` says `Ok` or `Error`) and begin with a UTF-8 BOM.
//!
//! **No idempotency key.** Our reference (`pay_` + a 26-character ULID) is too long for
//! Authorize.Net's 20-character fields, so its last 20 characters (6 low time characters and
//! the ULID's 80 random bits: [`short_reference`]) go in as both `refId` and
//! `order.invoiceNumber`; other references longer than 20 characters go in as 20 hex characters
//! of their SHA-256. The invoice number is what a charge is found by again.
//! * `duplicateWindow` is [`DUPLICATE_WINDOW_SECONDS`] (8 hours, Authorize.Net's maximum, never
//!   0): the same invoice number, amount and card again within it is refused as a duplicate
//!   (reason 11) and named. Our invoice numbers are unique per payment, so the window never
//!   refuses two different payments (not even two equal payments of one invoice); it only
//!   catches the same payment sent twice, and the longer it is, the later that is caught.
//! * A charge is never sent twice by this adapter. No answer (timeout, dropped connection,
//!   HTTP 5xx, a body that is not JSON) → [`Gateway::find_charge`] by the reference; found, that
//!   is the outcome; not found → `GatewayError::Unavailable`, and the app resolves the attempt
//!   later through `find_charge`. A duplicate (responseCode 3, reason 11) is looked up the same
//!   way: it is never "failed".
//! * `find_charge` reads the unsettled transactions (`status` `any`: held ones too) newest
//!   first (pages of 1000, at most 5 pages), then, since a charge may have settled meanwhile,
//!   the settled batches from the reference's own time on (the ULID's; the last 2 days for
//!   other references), at most 31 days and 6 batches, matching `invoiceNumber`. A scan cut
//!   short by those limits answers `Unavailable`, never "not found": the app reads "not found"
//!   as "never charged". A declined one's reason comes from `getTransactionDetails`.
//!
//! **Outcomes.** responseCode 1 → `Approved` (an eCheck is `settling`); 2 → `Declined` with
//! [`decline_reason`]; 3 → a decline class where the error is about the payer's details
//! (number, expiry, card code, address, card type, processor hiccups), a `GatewayError` where
//! it is about us or the account (bad login or key `E00007`, reason 13; currency 39; amount 5;
//! a malformed request `E00003`), and a lookup for a duplicate; a spent, expired or unknown
//! Accept.js token (`E00114`) or a saved method that is gone (`E00040`) → `InvalidToken`.
//! 4 (held for review by the Fraud Detection Suite) → `Approved { settling: true }`: it is not
//! money yet, so the payment stays pending until `fraud.approved` / `fraud.declined` moves it.
//! The method's brand is `accountType` lowercased (`AmericanExpress` → `amex`), its last four
//! from `accountNumber` (`XXXX1111`).
//!
//! **Amounts** are the `Money`'s decimal string in its currency's exponent. An Authorize.Net
//! account settles in one currency; `currencyCode` (the XSD's place, right after `amount`) is
//! sent anyway, so that an invoice in another currency is refused (reason 39) instead of being
//! charged as the account's currency. Refund amounts in events are read in the account's
//! currency (`getMerchantDetails`, asked once per adapter).
//!
//! **Saved methods (CIM).** A customer is a customer profile whose `merchantCustomerId` is
//! derived from our stable reference (itself when it fits in 20 characters, else 20 hex
//! characters of its SHA-256); creating it again answers `E00039 A duplicate record with ID
//! <id> already exists.`, and that id is the answer. A method is a payment profile made from
//! the Accept.js token with `validationMode` `liveMode`: a $0 authorization (or $0.01, voided)
//! with the issuer while the payer is there, because auto-pay charges it later without them
//! (`testMode` only checks the format). A card or account the profile has already answers
//! `E00039` with the existing payment profile's id, so saving it twice gives the same method.
//! Authorize.Net has no card fingerprint: ours is `anet:<customerProfileId>:<paymentProfileId>`,
//! which recognises the same card saved twice to one customer (not across customers). The
//! expiry comes from `getCustomerPaymentProfile` with `unmaskExpirationDate`.
//!
//! **Refunds.** A settled charge: `refundTransaction` with the card's last four and `XXXX` as
//! its expiry (or the masked bank account and its holder), both read from
//! `getTransactionDetails`, under the refund's own short reference. Before settlement only the
//! whole amount can go back, by `voidTransaction` (`voided: true`); a partial one is refused
//! until the charge settles.
//!
//! **Notifications** name a transaction and little else: [`read_webhook`] checks
//! `X-ANET-Signature: sha512=<128 hex>` (HMAC-SHA512 keyed with the Signature Key's own
//! characters over the raw body, compared in constant time, either case) and gives a
//! provisional status; `confirm_event` reads the transaction's current status:
//!
//! | `transactionStatus` | reports |
//! | --- | --- |
//! | `capturedPendingSettlement`, `pendingSettlement`, `pendingFinalSettlement`, `updatingSettlement`, `approvedReview`, `couldNotVoid` | `Succeeded` for a card; `Pending` for an eCheck (not money until it settles) |
//! | `authorizedPendingCapture`, `FDSPendingReview`, `FDSAuthorizedPendingReview`, `underReview`, `authorizedPendingRelease` | `Pending` |
//! | `settledSuccessfully` | `Settled` |
//! | `declined`, `expired`, `failedReview`, `generalError`, `communicationError`, `settlementError` | `Failed` |
//! | `voided` | `Refunded` (the whole amount) |
//! | `returnedItem` | `Returned` |
//! | `chargeback` / `chargebackReversal` | `Disputed` / `DisputeWon` (Authorize.Net has no "dispute lost" status) |
//! | a refund (`refundPendingSettlement`, `refundSettledSuccessfully`) | its charge (`refTransId`) `Refunded`, with this refund's amount |
//!
//! A refund's `refunded` is that refund's amount: Authorize.Net lists no charge's refunds, so
//! after several partial refunds made outside Paybridge the later events under-report (the app
//! keeps the largest it has seen). Authorize.Net sends no notification when a transaction
//! settles, is returned or is charged back: those statuses reach a payment only through
//! something that calls `confirm_event` for it. It echoes only the 20-character derivative
//! (`merchantReferenceId`), never our reference: events carry none, and the payment is found by
//! the charge's transId.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use domain::{Currency, Email, Money, OrgSlug, PaymentStatus, Secret};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use app::payments::MethodSummary;
use app::ports::{
    BrowserTokenizer, ChargeOutcome, ChargeRequest, ChargeSource, ConnectionCheck, DeclineReason,
    Gateway, GatewayError, GatewayEvent, GatewayMethod, RefundOutcome, RefundRequest,
    WebhookDelivery, WebhookRejection,
};

/// The gateway's name on payments and methods.
pub const NAME: &str = "authorize-net";
/// Authorize.Net's sandbox.
pub const SANDBOX_API: &str = "https://apitest.authorize.net/xml/v1/request.api";
/// Where production calls go.
pub const PRODUCTION_API: &str = "https://api.authorize.net/xml/v1/request.api";
/// The notification signature's header.
pub const SIGNATURE_HEADER: &str = "X-ANET-Signature";
/// Accept.js of the sandbox environment, and where it posts the payer's details.
pub const SANDBOX_ACCEPT_JS: &str = "https://jstest.authorize.net/v1/Accept.js";
const SANDBOX_ACCEPT_ORIGINS: (&str, &str) = (
    "https://jstest.authorize.net",
    "https://apitest.authorize.net",
);
/// Accept.js of production, and where it posts the payer's details.
pub const PRODUCTION_ACCEPT_JS: &str = "https://js.authorize.net/v1/Accept.js";
const PRODUCTION_ACCEPT_ORIGINS: (&str, &str) =
    ("https://js.authorize.net", "https://api2.authorize.net");
/// Accept.js's descriptor for its single-use tokens.
pub const ACCEPT_DESCRIPTOR: &str = "COMMON.ACCEPT.INAPP.PAYMENT";
/// The duplicate window sent with every charge and refund: Authorize.Net's maximum.
pub const DUPLICATE_WINDOW_SECONDS: u32 = 28_800;

/// Authorize.Net's limit for `refId`, `invoiceNumber` and `merchantCustomerId`.
const SHORT: usize = 20;
/// A lookup page, and how many pages of one list a lookup reads.
const PAGE: usize = 1000;
const PAGES: u32 = 5;
/// How many settled batches a lookup reads.
const BATCHES: usize = 6;
/// The longest range `getSettledBatchList` takes.
const BATCH_RANGE: Duration = Duration::days(31);
const UNSETTLED_CARD: [&str; 6] = [
    "capturedPendingSettlement",
    "pendingSettlement",
    "pendingFinalSettlement",
    "updatingSettlement",
    "approvedReview",
    "couldNotVoid",
];
const HELD: [&str; 5] = [
    "authorizedPendingCapture",
    "FDSPendingReview",
    "FDSAuthorizedPendingReview",
    "underReview",
    "authorizedPendingRelease",
];
const FAILED: [&str; 6] = [
    "declined",
    "expired",
    "failedReview",
    "generalError",
    "communicationError",
    "settlementError",
];
/// Errors (responseCode 3) about our request or the account, not the payer's details.
const MERCHANT_ERRORS: [&str; 8] = ["5", "13", "15", "16", "33", "39", "43", "123"];

/// A client for one Authorize.Net account (one org's API login id and transaction key).
/// Debug never shows either.
#[derive(Clone)]
pub struct AuthorizeNetGateway {
    http: reqwest::Client,
    endpoint: String,
    api_login_id: Secret<String>,
    transaction_key: Secret<String>,
    /// The account's currency, once asked.
    currency: Arc<Mutex<Option<Currency>>>,
    /// Which Accept.js the payer's browser loads: production's, or the sandbox's.
    production: bool,
    /// The Public Client Key for Accept.js (public by design), if the org gave it.
    client_key: Option<String>,
}

impl std::fmt::Debug for AuthorizeNetGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthorizeNetGateway({})", self.endpoint)
    }
}

/// `{"<method>": body}`, the body's keys in its struct's order.
struct Envelope<'a, T>(&'a str, &'a T);

impl<T: Serialize> Serialize for Envelope<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.0, self.1)?;
        map.end()
    }
}

// The requests, each struct's fields in its XSD type's sequence order.

#[derive(Serialize)]
struct Auth<'a> {
    name: &'a str,
    #[serde(rename = "transactionKey")]
    transaction_key: &'a str,
}

/// `ANetApiRequest` alone: authenticateTestRequest, getMerchantDetailsRequest.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Plain<'a> {
    merchant_authentication: Auth<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateTransaction<'a> {
    merchant_authentication: Auth<'a>,
    ref_id: String,
    transaction_request: TransactionRequest<'a>,
}

/// `transactionRequestType`.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct TransactionRequest<'a> {
    transaction_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment: Option<Payment<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<ProfilePayment<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ref_trans_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<Order>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_settings: Option<Settings>,
}

/// `paymentType`: one of its choice.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Payment<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    credit_card: Option<CardRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bank_account: Option<BankRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    opaque_data: Option<OpaqueData<'a>>,
}

/// `creditCardType` as a refund names the card: its last four, expiry `XXXX`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CardRef {
    card_number: String,
    expiration_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    card_code: Option<String>,
}

/// `bankAccountType`, masked as `getTransactionDetails` gives it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BankRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    account_type: Option<String>,
    routing_number: String,
    account_number: String,
    name_on_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    echeck_type: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OpaqueData<'a> {
    data_descriptor: &'static str,
    data_value: &'a str,
}

/// `customerProfilePaymentType`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProfilePayment<'a> {
    customer_profile_id: &'a str,
    payment_profile: PaymentProfileRef<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentProfileRef<'a> {
    payment_profile_id: &'a str,
}

/// `orderType`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    invoice_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// `ArrayOfSetting`.
#[derive(Serialize)]
struct Settings {
    setting: Vec<Setting>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Setting {
    setting_name: &'static str,
    setting_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransactionDetails<'a> {
    merchant_authentication: Auth<'a>,
    trans_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Sorting {
    order_by: &'static str,
    order_descending: bool,
}

#[derive(Serialize)]
struct Paging {
    limit: usize,
    offset: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UnsettledList<'a> {
    merchant_authentication: Auth<'a>,
    /// `any`: those held for review too.
    status: &'static str,
    sorting: Sorting,
    paging: Paging,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SettledBatches<'a> {
    merchant_authentication: Auth<'a>,
    first_settlement_date: String,
    last_settlement_date: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchTransactions<'a> {
    merchant_authentication: Auth<'a>,
    batch_id: &'a str,
    sorting: Sorting,
    paging: Paging,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateCustomerProfile<'a> {
    merchant_authentication: Auth<'a>,
    profile: CustomerProfile<'a>,
}

/// `customerProfileBaseType`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomerProfile<'a> {
    merchant_customer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    email: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatePaymentProfile<'a> {
    merchant_authentication: Auth<'a>,
    customer_profile_id: &'a str,
    payment_profile: NewPaymentProfile<'a>,
    validation_mode: &'static str,
}

/// `customerPaymentProfileType`: the payment alone.
#[derive(Serialize)]
struct NewPaymentProfile<'a> {
    payment: Payment<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentProfileQuery<'a> {
    merchant_authentication: Auth<'a>,
    customer_profile_id: &'a str,
    customer_payment_profile_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    unmask_expiration_date: Option<bool>,
}

/// The 20-character derivative of a reference that goes in as `refId` and
/// `order.invoiceNumber`: for `<prefix>_<ULID>`, the ULID's last 20 characters (its 80 random
/// bits and low time bits); a reference of at most 20 letters, digits, `-` or `_` as it is;
/// anything else, the first 20 hex characters of its SHA-256.
pub fn short_reference(reference: &str) -> String {
    if let Some((_, ulid)) = reference.rsplit_once('_')
        && ulid.len() == 26
        && ulid::Ulid::from_string(ulid).is_ok()
    {
        return ulid[26 - SHORT..].to_owned();
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if (1..=SHORT).contains(&reference.len()) && reference.chars().all(plain) {
        return reference.to_owned();
    }
    hashed(reference)
}

/// The customer profile's `merchantCustomerId` for our stable customer reference: itself when
/// it fits, else 20 hex characters (80 bits) of its SHA-256.
pub fn merchant_customer_id(reference: &str) -> String {
    if (1..=SHORT).contains(&reference.len()) && reference.is_ascii() {
        reference.to_owned()
    } else {
        hashed(reference)
    }
}

fn hashed(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))[..SHORT].to_owned()
}

/// When a `<prefix>_<ULID>` reference was minted.
fn reference_time(reference: &str) -> Option<OffsetDateTime> {
    let (_, ulid) = reference.rsplit_once('_')?;
    let ms = ulid::Ulid::from_string(ulid).ok()?.timestamp_ms();
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// Paybridge's decline class for an Authorize.Net response reason code (or an eCheck return's
/// R-code). Reason codes are unique across response codes; `response_code` only decides a code
/// not listed here: a decline (2) is `Generic` (soft: the issuer may say yes later), an error
/// (3) `Incorrect` (hard: the same details fail the same way again).
///
/// | reason | class |
/// | --- | --- |
/// | 2, 3 (issuer declines; Authorize.Net publishes no insufficient-funds code for cards), 17, 28 (card type not accepted), 19–23, 25, 26, 57–63, 120–122 (processor errors: try again), 36, 11 (a duplicate: looked up, never a decline) | `Generic` |
/// | 4 (pick up card), 41 (FraudScreen), 250, 251, 254 (fraud filters, declined after review) | `Stolen` |
/// | 6, 37, 315 (card number), 7, 316 (expiry format), 27, 127 (AVS), 44, 45, 65, 78 (card code), 9, 10 (routing, account number) | `Incorrect` |
/// | 8, 317 (expired) | `Expired` |
/// | `E00114` (Accept.js token), `E00040` (saved method gone) | `InvalidToken` |
/// | R01, R09 (eCheck returns) | `InsufficientFunds` |
/// | R02, R03, R04, R13, R20 (closed, no or invalid account, bad routing, not a transaction account) | `Incorrect` |
/// | R05, R07, R08, R10, R16, R29, R51 (unauthorized, revoked, stopped, frozen) | `Stolen` |
pub fn decline_reason(response_code: &str, reason_code: &str) -> DeclineReason {
    use DeclineReason::*;
    match reason_code {
        "2" | "3" | "11" | "17" | "28" | "36" | "19" | "20" | "21" | "22" | "23" | "25" | "26"
        | "57" | "58" | "59" | "60" | "61" | "62" | "63" | "120" | "121" | "122" => Generic,
        "4" | "41" | "250" | "251" | "254" => Stolen,
        "6" | "7" | "9" | "10" | "27" | "37" | "44" | "45" | "65" | "78" | "127" | "315"
        | "316" => Incorrect,
        "8" | "317" => Expired,
        "E00114" | "E00040" => InvalidToken,
        "R01" | "R09" => InsufficientFunds,
        "R02" | "R03" | "R04" | "R13" | "R20" => Incorrect,
        "R05" | "R07" | "R08" | "R10" | "R16" | "R29" | "R51" => Stolen,
        _ if response_code == "3" => Incorrect,
        _ => Generic,
    }
}

/// What a transaction's status says about the payment it belongs to (the table above).
pub fn reported_status(transaction_status: &str, bank: bool) -> PaymentStatus {
    match transaction_status {
        s if UNSETTLED_CARD.contains(&s) => {
            if bank {
                PaymentStatus::Pending
            } else {
                PaymentStatus::Succeeded
            }
        }
        s if HELD.contains(&s) => PaymentStatus::Pending,
        "settledSuccessfully" => PaymentStatus::Settled,
        s if FAILED.contains(&s) => PaymentStatus::Failed,
        "voided" | "refundPendingSettlement" | "refundSettledSuccessfully" => {
            PaymentStatus::Refunded
        }
        "returnedItem" => PaymentStatus::Returned,
        "chargeback" => PaymentStatus::Disputed,
        "chargebackReversal" => PaymentStatus::DisputeWon,
        _ => PaymentStatus::Pending,
    }
}

/// Verifies `X-ANET-Signature` with any of `secrets` (the org's Signature Keys), then reads the
/// notification. Authorize.Net signs no timestamp, so `now` plays no part: a replay is caught
/// by the dedupe on `notificationId`. Payment events (`net.authorize.payment.authcapture.created`,
/// `capture.created`, `priorAuthCapture.created`, `refund.created`, `void.created`,
/// `fraud.approved`, `fraud.declined`, `fraud.held`) give an event whose `reports` is provisional
/// (`confirm_event` replaces it); the rest (customer, payment profile, subscription,
/// authorization-only) are Ok(None).
pub fn read_webhook(
    delivery: &WebhookDelivery<'_>,
    secrets: &[Secret<String>],
    now: OffsetDateTime,
) -> Result<Option<GatewayEvent>, WebhookRejection> {
    let _ = now;
    verify_signature(delivery.header(SIGNATURE_HEADER), delivery.body, secrets)
        .map_err(WebhookRejection::Signature)?;
    let envelope: Value = serde_json::from_slice(delivery.body)
        .map_err(|e| WebhookRejection::Malformed(e.to_string()))?;
    let id = str_at(&envelope, "/notificationId");
    let kind = str_at(&envelope, "/eventType");
    if !valid_id(id) || !valid_id(kind) {
        return Err(WebhookRejection::Malformed(
            "no notificationId or eventType".into(),
        ));
    }
    let Some(event) = kind.strip_prefix("net.authorize.payment.") else {
        return Ok(None);
    };
    let response_code = text_at(&envelope, "/payload/responseCode");
    let reports = match event {
        "authcapture.created" | "capture.created" | "priorAuthCapture.created" => {
            match response_code.as_str() {
                "1" | "" => PaymentStatus::Succeeded,
                "4" => PaymentStatus::Pending,
                _ => PaymentStatus::Failed,
            }
        }
        "refund.created" | "void.created" => PaymentStatus::Refunded,
        "fraud.approved" => PaymentStatus::Succeeded,
        "fraud.declined" => PaymentStatus::Failed,
        "fraud.held" => PaymentStatus::Pending,
        _ => return Ok(None),
    };
    let charge = text_at(&envelope, "/payload/id");
    if !valid_id(&charge) || str_at(&envelope, "/payload/entityName") != "transaction" {
        return Err(WebhookRejection::Malformed(
            "the payload names no transaction".into(),
        ));
    }
    Ok(Some(GatewayEvent {
        id: id.to_owned(),
        kind: kind.to_owned(),
        reports,
        charge,
        reference: None,
        refunded: None,
    }))
}

/// `sha512=<128 hex>`, either case, against HMAC-SHA512 of the body keyed with each secret's
/// own characters; the reason of a refusal for `WebhookRejection::Signature`.
fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secrets: &[Secret<String>],
) -> Result<(), &'static str> {
    let header = header.ok_or("missing")?.trim();
    let (scheme, hex_digest) = header.split_once('=').ok_or("malformed")?;
    if !scheme.trim().eq_ignore_ascii_case("sha512") || hex_digest.len() != 128 {
        return Err("malformed");
    }
    let signature = hex::decode(hex_digest).map_err(|_| "malformed")?;
    let matches = secrets.iter().any(|secret| {
        let mut mac = Hmac::<Sha512>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(body);
        mac.verify_slice(&signature).is_ok()
    });
    if matches { Ok(()) } else { Err("no match") }
}

fn valid_id(id: &str) -> bool {
    (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// A scalar as text: Authorize.Net writes some as strings and some as numbers.
fn text_at(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// A list however it comes: an array, one object, or a wrapper object around either.
fn items<'a>(v: Option<&'a Value>, inner: &str) -> Vec<&'a Value> {
    match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(Value::Object(o)) => match o.get(inner) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(single) => vec![single],
            None => vec![v.expect("matched")],
        },
        _ => Vec::new(),
    }
}

fn truncated(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

fn last4(masked: &str) -> String {
    let digits: Vec<char> = masked.chars().filter(char::is_ascii_digit).collect();
    digits[digits.len().saturating_sub(4)..].iter().collect()
}

/// Our brand for Authorize.Net's `accountType` / `cardType`.
fn brand_of(account_type: &str) -> String {
    match account_type {
        "Visa" => "visa".into(),
        "MasterCard" => "mastercard".into(),
        "AmericanExpress" => "amex".into(),
        "Discover" => "discover".into(),
        "JCB" => "jcb".into(),
        "DinersClub" => "diners".into(),
        "eCheck" => "bank".into(),
        other => other.to_ascii_lowercase(),
    }
}

fn summary(account_type: &str, account_number: &str) -> MethodSummary {
    MethodSummary {
        kind: if account_type == "eCheck" {
            "bank"
        } else {
            "card"
        }
        .to_owned(),
        brand: brand_of(account_type),
        last4: last4(account_number),
    }
}

/// The top-level result: (resultCode is Ok, first message code, its text).
fn result(v: &Value) -> (bool, String, String) {
    let first = items(v.pointer("/messages/message"), "message")
        .first()
        .copied()
        .cloned()
        .unwrap_or(Value::Null);
    (
        str_at(v, "/messages/resultCode") == "Ok",
        text_at(&first, "/code"),
        text_at(&first, "/text"),
    )
}

/// The first transaction error's (code, text), or its first message's.
fn transaction_reason(v: &Value) -> (String, String) {
    let tr = v.get("transactionResponse");
    let errors = items(tr.and_then(|t| t.get("errors")), "error");
    if let Some(e) = errors.first() {
        return (text_at(e, "/errorCode"), text_at(e, "/errorText"));
    }
    let messages = items(tr.and_then(|t| t.get("messages")), "message");
    messages.first().map_or_else(Default::default, |m| {
        (text_at(m, "/code"), text_at(m, "/description"))
    })
}

/// A lookup's answer: the transactions with the invoice number.
enum Found {
    Some(Vec<Value>),
    None,
}

impl AuthorizeNetGateway {
    /// `endpoint`: [`SANDBOX_API`], [`PRODUCTION_API`], or a double's full URL.
    pub fn new(
        http: reqwest::Client,
        endpoint: &str,
        api_login_id: Secret<String>,
        transaction_key: Secret<String>,
    ) -> AuthorizeNetGateway {
        AuthorizeNetGateway {
            http,
            endpoint: endpoint.to_owned(),
            api_login_id,
            transaction_key,
            currency: Arc::new(Mutex::new(None)),
            production: endpoint == PRODUCTION_API,
            client_key: None,
        }
    }

    /// The account's environment, for Accept.js (the endpoint says it, unless it is a double's).
    pub fn with_production(mut self, production: bool) -> AuthorizeNetGateway {
        self.production = production;
        self
    }

    /// The account's Public Client Key, for Accept.js in the payer's browser.
    pub fn with_client_key(mut self, key: impl Into<String>) -> AuthorizeNetGateway {
        self.client_key = Some(key.into()).filter(|k| !k.is_empty());
        self
    }

    fn auth(&self) -> Auth<'_> {
        Auth {
            name: self.api_login_id.expose(),
            transaction_key: self.transaction_key.expose(),
        }
    }

    /// Text from Authorize.Net with our credentials taken out (its schema errors quote values).
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in [self.transaction_key.expose(), self.api_login_id.expose()] {
            if secret.len() >= 4 {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    fn unavailable(&self, method: &str, why: &str) -> GatewayError {
        GatewayError::Unavailable(self.scrub(&format!("authorize-net {method}: {why}")))
    }

    /// Refused at the request level: its code and text.
    fn refused(&self, method: &str, reply: &Value) -> GatewayError {
        let (_, code, text) = result(reply);
        self.unavailable(method, &format!("{code} {text}"))
    }

    /// One call. Err only when there is no usable answer (which may mean it was applied).
    async fn call<T: Serialize>(&self, method: &str, body: &T) -> Result<Value, GatewayError> {
        let bytes = serde_json::to_vec(&Envelope(method, body))
            .map_err(|e| self.unavailable(method, &e.to_string()))?;
        // Errors name the method, never the request (it holds the key).
        let response = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes)
            .send()
            .await
            .map_err(|e| self.unavailable(method, &e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.unavailable(method, &e.without_url().to_string()))?;
        if !(200..300).contains(&status) {
            return Err(self.unavailable(method, &format!("HTTP {status}")));
        }
        let json = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&body);
        serde_json::from_slice(json)
            .map_err(|_| self.unavailable(method, &format!("HTTP {status}, not JSON")))
    }

    fn duplicate_window() -> Settings {
        Settings {
            setting: vec![Setting {
                setting_name: "duplicateWindow",
                setting_value: DUPLICATE_WINDOW_SECONDS.to_string(),
            }],
        }
    }

    /// `getTransactionDetails`: the `transaction` object, None when there is no such one.
    async fn details(&self, trans_id: &str) -> Result<Option<Value>, GatewayError> {
        let trans_id: String = trans_id.chars().filter(char::is_ascii_digit).collect();
        let reply = self
            .call(
                "getTransactionDetailsRequest",
                &TransactionDetails {
                    merchant_authentication: self.auth(),
                    trans_id: &trans_id,
                },
            )
            .await?;
        match result(&reply) {
            (true, _, _) => Ok(reply.get("transaction").cloned()),
            (false, code, _) if code == "E00040" => Ok(None),
            _ => Err(self.refused("getTransactionDetailsRequest", &reply)),
        }
    }

    /// Transactions with this invoice number: the unsettled ones, then the settled batches
    /// from `since` on. Err where the limits cut the scan short before anything was found.
    async fn find_by_invoice(
        &self,
        invoice: &str,
        since: Option<OffsetDateTime>,
    ) -> Result<Found, GatewayError> {
        let matching = |list: &[&Value]| -> Vec<Value> {
            list.iter()
                .filter(|t| text_at(t, "/invoiceNumber") == invoice)
                .map(|t| (*t).clone())
                .collect()
        };
        let mut complete = false;
        for offset in 1..=PAGES {
            let method = "getUnsettledTransactionListRequest";
            let reply = self
                .call(
                    method,
                    &UnsettledList {
                        merchant_authentication: self.auth(),
                        status: "any",
                        sorting: Sorting {
                            order_by: "submitTimeUTC",
                            order_descending: true,
                        },
                        paging: Paging {
                            limit: PAGE,
                            offset,
                        },
                    },
                )
                .await?;
            if !result(&reply).0 {
                return Err(self.refused(method, &reply));
            }
            let list = items(reply.get("transactions"), "transaction");
            let found = matching(&list);
            if !found.is_empty() {
                return Ok(Found::Some(found));
            }
            if list.len() < PAGE {
                complete = true;
                break;
            }
        }
        let now = OffsetDateTime::now_utc();
        let first = since.map_or(now - Duration::days(2), |t| t - Duration::minutes(5));
        // A minute past now: a batch that closed a moment ago is in (the range is whole seconds).
        let last = (first + BATCH_RANGE - Duration::minutes(1)).min(now + Duration::minutes(1));
        let method = "getSettledBatchListRequest";
        let reply = self
            .call(
                method,
                &SettledBatches {
                    merchant_authentication: self.auth(),
                    first_settlement_date: rfc3339(first),
                    last_settlement_date: rfc3339(last),
                },
            )
            .await?;
        if !result(&reply).0 {
            return Err(self.refused(method, &reply));
        }
        let mut batches = items(reply.get("batchList"), "batch");
        batches.sort_by_key(|b| text_at(b, "/settlementTimeUTC"));
        complete &= batches.len() <= BATCHES;
        for batch in batches.iter().take(BATCHES) {
            let batch_id = text_at(batch, "/batchId");
            for offset in 1..=PAGES {
                let method = "getTransactionListRequest";
                let reply = self
                    .call(
                        method,
                        &BatchTransactions {
                            merchant_authentication: self.auth(),
                            batch_id: &batch_id,
                            sorting: Sorting {
                                order_by: "submitTimeUTC",
                                order_descending: false,
                            },
                            paging: Paging {
                                limit: PAGE,
                                offset,
                            },
                        },
                    )
                    .await?;
                if !result(&reply).0 {
                    return Err(self.refused(method, &reply));
                }
                let list = items(reply.get("transactions"), "transaction");
                let found = matching(&list);
                if !found.is_empty() {
                    return Ok(Found::Some(found));
                }
                if list.len() < PAGE {
                    break;
                }
                complete &= offset < PAGES;
            }
        }
        if complete {
            Ok(Found::None)
        } else {
            Err(GatewayError::Unavailable(format!(
                "authorize-net: no transaction with invoice number {invoice} among the ones a lookup reads"
            )))
        }
    }

    /// The outcome a transaction (from a list) stands for.
    async fn outcome_of(&self, t: &Value) -> Result<ChargeOutcome, GatewayError> {
        let trans_id = text_at(t, "/transId");
        let status = str_at(t, "/transactionStatus");
        // A list's summary names the account; a transaction's details have it under payment.
        let (account_type, account_number) = match t.pointer("/payment") {
            Some(p) if p.get("bankAccount").is_some() => {
                ("eCheck", str_at(p, "/bankAccount/accountNumber"))
            }
            Some(p) => (
                str_at(p, "/creditCard/cardType"),
                str_at(p, "/creditCard/cardNumber"),
            ),
            None => (str_at(t, "/accountType"), str_at(t, "/accountNumber")),
        };
        if FAILED.contains(&status) || status == "voided" {
            let reason = if status == "voided" {
                DeclineReason::Generic
            } else {
                match self.details(&trans_id).await? {
                    Some(d) => decline_reason(
                        &text_at(&d, "/responseCode"),
                        &text_at(&d, "/responseReasonCode"),
                    ),
                    None => DeclineReason::Generic,
                }
            };
            return Ok(ChargeOutcome::Declined {
                gateway_ref: Some(trans_id),
                reason,
            });
        }
        let settled = matches!(
            status,
            "settledSuccessfully" | "chargeback" | "chargebackReversal"
        );
        Ok(ChargeOutcome::Approved {
            settling: !settled && (account_type == "eCheck" || HELD.contains(&status))
                || status == "returnedItem",
            method: summary(account_type, account_number),
            gateway_ref: trans_id,
        })
    }

    /// The charge with this invoice number, preferring one that took money.
    async fn lookup(
        &self,
        invoice: &str,
        since: Option<OffsetDateTime>,
    ) -> Result<Option<ChargeOutcome>, GatewayError> {
        let Found::Some(mut found) = self.find_by_invoice(invoice, since).await? else {
            return Ok(None);
        };
        found.sort_by_key(|t| {
            let status = str_at(t, "/transactionStatus");
            let failed = FAILED.contains(&status) || status == "voided";
            (!failed, text_at(t, "/transId").parse::<u64>().unwrap_or(0))
        });
        let best = found.last().expect("found is not empty");
        self.outcome_of(best).await.map(Some)
    }

    async fn charge_reply(
        &self,
        request: &ChargeRequest,
        reply: &Value,
    ) -> Result<ChargeOutcome, GatewayError> {
        let method = "createTransactionRequest";
        let tr = reply.get("transactionResponse");
        let code = text_at(reply, "/transactionResponse/responseCode");
        let trans_id = text_at(reply, "/transactionResponse/transId");
        let known_id = (!trans_id.is_empty() && trans_id != "0").then(|| trans_id.clone());
        let (reason, _) = transaction_reason(reply);
        match code.as_str() {
            "1" | "4" => {
                let account_type = text_at(reply, "/transactionResponse/accountType");
                Ok(ChargeOutcome::Approved {
                    gateway_ref: trans_id,
                    settling: code == "4" || account_type == "eCheck",
                    method: summary(
                        &account_type,
                        &text_at(reply, "/transactionResponse/accountNumber"),
                    ),
                })
            }
            "2" => Ok(ChargeOutcome::Declined {
                gateway_ref: known_id,
                reason: decline_reason("2", &reason),
            }),
            "3" if reason == "11" => {
                // The same payment was sent before: its outcome is the answer.
                tracing::warn!(reference = %request.reference, original = ?known_id, "authorize-net says the charge is a duplicate; looking the original up");
                let short = short_reference(&request.reference);
                if let Some(id) = &known_id
                    && let Some(d) = self.details(id).await?
                    && text_at(&d, "/order/invoiceNumber") == short
                {
                    return self.outcome_of(&d).await;
                }
                match self
                    .lookup(&short, reference_time(&request.reference))
                    .await?
                {
                    Some(outcome) => Ok(outcome),
                    None => Err(GatewayError::Unavailable(format!(
                        "authorize-net: charge {short} is a duplicate of one not found yet"
                    ))),
                }
            }
            "3" if MERCHANT_ERRORS.contains(&reason.as_str()) => {
                let (_, text) = transaction_reason(reply);
                Err(self.unavailable(method, &format!("error {reason}: {text}")))
            }
            "3" => Ok(ChargeOutcome::Declined {
                gateway_ref: known_id,
                reason: decline_reason("3", &reason),
            }),
            _ if tr.is_some() => {
                Err(self.unavailable(method, &format!("unexpected responseCode {code:?}")))
            }
            _ => match result(reply) {
                (_, code, _) if code == "E00114" || code == "E00040" => {
                    tracing::info!(reference = %request.reference, %code, "authorize-net refused the token or saved method");
                    Ok(ChargeOutcome::Declined {
                        gateway_ref: None,
                        reason: DeclineReason::InvalidToken,
                    })
                }
                _ => Err(self.refused(method, reply)),
            },
        }
    }

    /// The account's currency (`getMerchantDetails`), asked once.
    async fn account_currency(&self) -> Result<Currency, GatewayError> {
        if let Some(c) = *self.currency.lock().unwrap_or_else(PoisonError::into_inner) {
            return Ok(c);
        }
        let method = "getMerchantDetailsRequest";
        let reply = self
            .call(
                method,
                &Plain {
                    merchant_authentication: self.auth(),
                },
            )
            .await?;
        if !result(&reply).0 {
            return Err(self.refused(method, &reply));
        }
        let currency = items(reply.get("currencies"), "currency")
            .into_iter()
            .find_map(|c| c.as_str().and_then(|c| c.parse::<Currency>().ok()))
            .ok_or_else(|| self.unavailable(method, "no currency we know"))?;
        *self.currency.lock().unwrap_or_else(PoisonError::into_inner) = Some(currency);
        Ok(currency)
    }

    async fn money(&self, amount: &str) -> Result<Money, GatewayError> {
        let currency = self.account_currency().await?;
        Money::parse(amount, currency)
            .map_err(|e| GatewayError::Unavailable(format!("authorize-net amount {amount:?}: {e}")))
    }

    /// A saved method, as `getCustomerPaymentProfile` (expiry unmasked) shows it.
    async fn payment_profile(
        &self,
        customer: &str,
        method: &str,
    ) -> Result<Option<GatewayMethod>, GatewayError> {
        let name = "getCustomerPaymentProfileRequest";
        let customer: String = customer.chars().filter(char::is_ascii_digit).collect();
        let method: String = method.chars().filter(char::is_ascii_digit).collect();
        let reply = self
            .call(
                name,
                &PaymentProfileQuery {
                    merchant_authentication: self.auth(),
                    customer_profile_id: &customer,
                    customer_payment_profile_id: &method,
                    unmask_expiration_date: Some(true),
                },
            )
            .await?;
        match result(&reply) {
            (true, _, _) => {}
            (false, code, _) if code == "E00040" => return Ok(None),
            _ => return Err(self.refused(name, &reply)),
        }
        let payment = reply
            .pointer("/paymentProfile/payment")
            .cloned()
            .unwrap_or(Value::Null);
        let fingerprint = format!("anet:{customer}:{method}");
        if let Some(bank) = payment.get("bankAccount") {
            let holder = str_at(bank, "/nameOnAccount");
            return Ok(Some(GatewayMethod {
                method_ref: method,
                kind: "bank".into(),
                brand: match str_at(bank, "/bankName") {
                    "" => "bank".into(),
                    name => name.to_owned(),
                },
                last4: last4(str_at(bank, "/accountNumber")),
                exp_month: None,
                exp_year: None,
                holder_name: (!holder.is_empty()).then(|| holder.to_owned()),
                fingerprint,
            }));
        }
        let card = payment.get("creditCard").cloned().unwrap_or(Value::Null);
        // "2030-12" when unmasked; "XXXX" otherwise.
        let expiry = str_at(&card, "/expirationDate");
        let (year, month) = expiry.split_once('-').unwrap_or(("", ""));
        Ok(Some(GatewayMethod {
            method_ref: method,
            kind: "card".into(),
            brand: brand_of(str_at(&card, "/cardType")),
            last4: last4(str_at(&card, "/cardNumber")),
            exp_month: month.parse().ok(),
            exp_year: year.parse().ok(),
            holder_name: None,
            fingerprint,
        }))
    }

    /// A refund of this reference that went through already (found by its invoice number).
    async fn find_refund(&self, short: &str) -> Result<Option<String>, GatewayError> {
        match self.find_by_invoice(short, None).await? {
            Found::Some(found) => Ok(found
                .iter()
                .find(|t| str_at(t, "/transactionStatus").starts_with("refund"))
                .map(|t| text_at(t, "/transId"))),
            Found::None => Ok(None),
        }
    }

    async fn void(&self, request: &RefundRequest) -> Result<RefundOutcome, GatewayError> {
        let method = "createTransactionRequest";
        let body = CreateTransaction {
            merchant_authentication: self.auth(),
            ref_id: short_reference(&request.reference),
            transaction_request: TransactionRequest {
                transaction_type: "voidTransaction",
                ref_trans_id: Some(&request.charge),
                ..TransactionRequest::default()
            },
        };
        let voided = |id: String| RefundOutcome::Refunded {
            refund_ref: id,
            voided: true,
        };
        let reply = match self.call(method, &body).await {
            Ok(reply) => reply,
            Err(lost) => {
                // Voiding twice is harmless, but look first all the same.
                return match self.details(&request.charge).await? {
                    Some(d) if str_at(&d, "/transactionStatus") == "voided" => {
                        Ok(voided(request.charge.clone()))
                    }
                    _ => Err(lost),
                };
            }
        };
        match text_at(&reply, "/transactionResponse/responseCode").as_str() {
            "1" => {
                let id = text_at(&reply, "/transactionResponse/transId");
                Ok(voided(if id.is_empty() || id == "0" {
                    request.charge.clone()
                } else {
                    id
                }))
            }
            "" => Err(self.refused(method, &reply)),
            _ => Ok(RefundOutcome::Refused(
                self.scrub(&transaction_reason(&reply).1),
            )),
        }
    }

    async fn refund_settled(
        &self,
        request: &RefundRequest,
        charge: &Value,
    ) -> Result<RefundOutcome, GatewayError> {
        let method = "createTransactionRequest";
        let short = short_reference(&request.reference);
        let refunded = |id: String| RefundOutcome::Refunded {
            refund_ref: id,
            voided: false,
        };
        if let Some(id) = self.find_refund(&short).await? {
            return Ok(refunded(id));
        }
        let payment = match charge.pointer("/payment/bankAccount") {
            Some(bank) => Payment {
                bank_account: Some(BankRef {
                    account_type: Some(str_at(bank, "/accountType"))
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                    routing_number: str_at(bank, "/routingNumber").to_owned(),
                    account_number: str_at(bank, "/accountNumber").to_owned(),
                    name_on_account: str_at(bank, "/nameOnAccount").to_owned(),
                    echeck_type: Some(str_at(bank, "/echeckType"))
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                }),
                ..Payment::default()
            },
            None => Payment {
                credit_card: Some(CardRef {
                    card_number: last4(str_at(charge, "/payment/creditCard/cardNumber")),
                    expiration_date: "XXXX".into(),
                    card_code: None,
                }),
                ..Payment::default()
            },
        };
        let body = CreateTransaction {
            merchant_authentication: self.auth(),
            ref_id: short.clone(),
            transaction_request: TransactionRequest {
                transaction_type: "refundTransaction",
                amount: Some(request.amount.amount_string()),
                currency_code: Some(request.amount.currency().code()),
                payment: Some(payment),
                ref_trans_id: Some(&request.charge),
                order: Some(Order {
                    invoice_number: short.clone(),
                    description: Some(format!("Refund of {}", request.charge)),
                }),
                transaction_settings: Some(Self::duplicate_window()),
                ..TransactionRequest::default()
            },
        };
        let reply = match self.call(method, &body).await {
            Ok(reply) => reply,
            Err(lost) => {
                tracing::warn!(reference = %request.reference, error = %lost, "authorize-net did not answer a refund; looking it up");
                return match self.find_refund(&short).await? {
                    Some(id) => Ok(refunded(id)),
                    None => Err(lost),
                };
            }
        };
        let (reason, text) = transaction_reason(&reply);
        match text_at(&reply, "/transactionResponse/responseCode").as_str() {
            "1" => Ok(refunded(text_at(&reply, "/transactionResponse/transId"))),
            "3" if reason == "11" => match self.find_refund(&short).await? {
                Some(id) => Ok(refunded(id)),
                None => Err(GatewayError::Unavailable(format!(
                    "authorize-net: refund {short} is a duplicate of one not found yet"
                ))),
            },
            "" => Err(self.refused(method, &reply)),
            _ => Ok(RefundOutcome::Refused(self.scrub(&text))),
        }
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[async_trait]
impl Gateway for AuthorizeNetGateway {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Accept.js of the account's environment with the API Login ID and the Public Client Key
    /// (both public in Accept.js by design; the Transaction Key never leaves the server). No
    /// client key: the page says that online payments are not set up.
    async fn browser_tokenizer(&self, _org: &OrgSlug) -> Result<BrowserTokenizer, GatewayError> {
        let (script, (script_origin, connect_origin)) = if self.production {
            (PRODUCTION_ACCEPT_JS, PRODUCTION_ACCEPT_ORIGINS)
        } else {
            (SANDBOX_ACCEPT_JS, SANDBOX_ACCEPT_ORIGINS)
        };
        let mut public = vec![("api_login_id", self.api_login_id.expose().clone())];
        public.extend(self.client_key.iter().map(|k| ("client_key", k.clone())));
        Ok(BrowserTokenizer {
            gateway: NAME,
            vendor_script: Some(script),
            public,
            script_origins: vec![script_origin],
            connect_origins: vec![connect_origin],
            frame_origins: Vec::new(),
        })
    }

    async fn test_connection(&self, _org: &OrgSlug) -> Result<ConnectionCheck, GatewayError> {
        let method = "authenticateTestRequest";
        let reply = self
            .call(
                method,
                &Plain {
                    merchant_authentication: self.auth(),
                },
            )
            .await?;
        match result(&reply) {
            (true, _, _) => Ok(ConnectionCheck::Accepted),
            // Bad or inactive credentials, or ones that are not even well-formed.
            (false, code, text) if matches!(code.as_str(), "E00007" | "E00008" | "E00003") => {
                Ok(ConnectionCheck::Refused(self.scrub(&format!(
                    "Authorize.Net refused the credentials ({code}): {text}"
                ))))
            }
            _ => Err(self.refused(method, &reply)),
        }
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        let short = short_reference(&request.reference);
        let (payment, profile) = match &request.source {
            ChargeSource::Token(token) => (
                Some(Payment {
                    opaque_data: Some(OpaqueData {
                        data_descriptor: ACCEPT_DESCRIPTOR,
                        data_value: token.expose(),
                    }),
                    ..Payment::default()
                }),
                None,
            ),
            ChargeSource::Saved { customer, method } => (
                None,
                Some(ProfilePayment {
                    customer_profile_id: customer,
                    payment_profile: PaymentProfileRef {
                        payment_profile_id: method,
                    },
                }),
            ),
            // The proxy's card, as the caller sent it (in this request only).
            ChargeSource::Card(card) => (
                Some(Payment {
                    credit_card: Some(CardRef {
                        card_number: card.number.expose().clone(),
                        expiration_date: format!("{:04}-{:02}", card.exp_year, card.exp_month),
                        card_code: card.code.as_ref().map(|c| c.expose().clone()),
                    }),
                    ..Payment::default()
                }),
                None,
            ),
        };
        let body = CreateTransaction {
            merchant_authentication: self.auth(),
            ref_id: short.clone(),
            transaction_request: TransactionRequest {
                transaction_type: "authCaptureTransaction",
                amount: Some(request.amount.amount_string()),
                currency_code: Some(request.amount.currency().code()),
                payment,
                profile,
                order: Some(Order {
                    invoice_number: short,
                    description: Some(truncated(&request.description, 255))
                        .filter(|d| !d.is_empty()),
                }),
                transaction_settings: Some(Self::duplicate_window()),
                ..TransactionRequest::default()
            },
        };
        match self.call("createTransactionRequest", &body).await {
            Ok(reply) => self.charge_reply(request, &reply).await,
            Err(lost) => {
                // No answer: it may have been taken. Look, and never send it again.
                tracing::warn!(reference = %request.reference, error = %lost, "authorize-net did not answer; looking the charge up");
                match self.find_charge(&request.org, &request.reference).await {
                    Ok(Some(outcome)) => Ok(outcome),
                    Ok(None) => Err(lost),
                    Err(e) => Err(GatewayError::Unavailable(format!("{lost}; lookup: {e}"))),
                }
            }
        }
    }

    async fn describe(
        &self,
        _org: &OrgSlug,
        source: &ChargeSource,
    ) -> Result<Option<MethodSummary>, GatewayError> {
        match source {
            // An Accept.js token cannot be read without spending it.
            ChargeSource::Token(_) => Ok(None),
            ChargeSource::Card(card) => Ok(Some(card.summary())),
            ChargeSource::Saved { customer, method } => Ok(self
                .payment_profile(customer, method)
                .await?
                .map(|m| MethodSummary {
                    kind: m.kind,
                    brand: m.brand,
                    last4: m.last4,
                })),
        }
    }

    async fn find_charge(
        &self,
        _org: &OrgSlug,
        reference: &str,
    ) -> Result<Option<ChargeOutcome>, GatewayError> {
        self.lookup(&short_reference(reference), reference_time(reference))
            .await
    }

    async fn create_customer(
        &self,
        _org: &OrgSlug,
        reference: &str,
        email: &Email,
        name: &str,
    ) -> Result<String, GatewayError> {
        let method = "createCustomerProfileRequest";
        let reply = self
            .call(
                method,
                &CreateCustomerProfile {
                    merchant_authentication: self.auth(),
                    profile: CustomerProfile {
                        merchant_customer_id: merchant_customer_id(reference),
                        description: Some(truncated(name, 255)).filter(|n| !n.is_empty()),
                        email: email.as_str(),
                    },
                },
            )
            .await?;
        match result(&reply) {
            (true, _, _) => Ok(text_at(&reply, "/customerProfileId")),
            // "A duplicate record with ID 123 already exists.": the customer made before.
            (false, code, text) if code == "E00039" => text
                .split_once("ID ")
                .map(|(_, rest)| {
                    rest.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                })
                .filter(|id| !id.is_empty())
                .ok_or_else(|| self.refused(method, &reply)),
            _ => Err(self.refused(method, &reply)),
        }
    }

    async fn attach_method(
        &self,
        _org: &OrgSlug,
        customer: &str,
        token: &Secret<String>,
    ) -> Result<Option<GatewayMethod>, GatewayError> {
        let method = "createCustomerPaymentProfileRequest";
        let customer: String = customer.chars().filter(char::is_ascii_digit).collect();
        let reply = self
            .call(
                method,
                &CreatePaymentProfile {
                    merchant_authentication: self.auth(),
                    customer_profile_id: &customer,
                    payment_profile: NewPaymentProfile {
                        payment: Payment {
                            opaque_data: Some(OpaqueData {
                                data_descriptor: ACCEPT_DESCRIPTOR,
                                data_value: token.expose(),
                            }),
                            ..Payment::default()
                        },
                    },
                    validation_mode: "liveMode",
                },
            )
            .await?;
        let id = text_at(&reply, "/customerPaymentProfileId");
        match result(&reply) {
            (true, _, _) => {}
            // The same card or account saved before: that one.
            (false, code, _) if code == "E00039" && !id.is_empty() => {}
            // A spent or unknown token, or a card the issuer refused when checked.
            (false, code, _) if matches!(code.as_str(), "E00114" | "E00027" | "E00039") => {
                tracing::info!(%code, "authorize-net refused to save a payment method");
                return Ok(None);
            }
            _ => return Err(self.refused(method, &reply)),
        }
        match self.payment_profile(&customer, &id).await? {
            Some(saved) => Ok(Some(saved)),
            None => Err(self.unavailable(method, "the payment profile saved is not there")),
        }
    }

    async fn detach_method(
        &self,
        _org: &OrgSlug,
        customer: &str,
        method: &str,
    ) -> Result<(), GatewayError> {
        let name = "deleteCustomerPaymentProfileRequest";
        let customer: String = customer.chars().filter(char::is_ascii_digit).collect();
        let method: String = method.chars().filter(char::is_ascii_digit).collect();
        let reply = self
            .call(
                name,
                &PaymentProfileQuery {
                    merchant_authentication: self.auth(),
                    customer_profile_id: &customer,
                    customer_payment_profile_id: &method,
                    unmask_expiration_date: None,
                },
            )
            .await?;
        match result(&reply) {
            (true, _, _) => Ok(()),
            // Gone already.
            (false, code, _) if code == "E00040" => Ok(()),
            _ => Err(self.refused(name, &reply)),
        }
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, GatewayError> {
        let Some(charge) = self.details(&request.charge).await? else {
            return Ok(RefundOutcome::Refused(format!(
                "Authorize.Net has no transaction {}",
                request.charge
            )));
        };
        match str_at(&charge, "/transactionStatus") {
            "settledSuccessfully" => self.refund_settled(request, &charge).await,
            s if UNSETTLED_CARD.contains(&s) || HELD.contains(&s) => {
                if request.whole {
                    self.void(request).await
                } else {
                    Ok(RefundOutcome::Refused(
                        "the charge has not settled yet: until it settles (usually overnight) only the whole amount can be given back".into(),
                    ))
                }
            }
            // Voided before (a retry of ours, or someone in the Merchant Interface).
            "voided" if request.whole => Ok(RefundOutcome::Refunded {
                refund_ref: request.charge.clone(),
                voided: true,
            }),
            other => Ok(RefundOutcome::Refused(format!(
                "the charge is {other}: there is nothing to refund"
            ))),
        }
    }

    /// Authorize.Net says nothing when a charge settles, is returned or is charged back.
    async fn must_poll(&self, _org: &OrgSlug) -> Result<bool, GatewayError> {
        Ok(true)
    }

    /// The charge's status now, read as a notification of it would be.
    async fn poll_charge(
        &self,
        org: &OrgSlug,
        charge: &str,
    ) -> Result<Option<GatewayEvent>, GatewayError> {
        let asked = GatewayEvent {
            id: String::new(),
            kind: "poll".to_owned(),
            reports: PaymentStatus::Pending,
            charge: charge.to_owned(),
            reference: None,
            refunded: None,
        };
        let now = self.confirm_event(org, asked, NAME).await?;
        Ok(Some(GatewayEvent {
            id: format!("poll:{charge}:{}", now.reports.as_str()),
            ..now
        }))
    }

    async fn confirm_event(
        &self,
        _org: &OrgSlug,
        event: GatewayEvent,
        from: &str,
    ) -> Result<GatewayEvent, GatewayError> {
        // Another gateway's event (the org changed gateways since): not ours to read.
        if from != NAME {
            return Ok(event);
        }
        let Some(t) = self.details(&event.charge).await? else {
            return Err(GatewayError::Unavailable(format!(
                "authorize-net: transaction {} is not there (yet)",
                event.charge
            )));
        };
        let status = str_at(&t, "/transactionStatus");
        let bank = t.pointer("/payment/bankAccount").is_some();
        if str_at(&t, "/transactionType") == "refundTransaction" {
            let charge = text_at(&t, "/refTransId");
            if !status.starts_with("refund") {
                // A refund that was voided or failed moved nothing: the charge as it is.
                let Some(c) = self.details(&charge).await? else {
                    return Err(GatewayError::Unavailable(format!(
                        "authorize-net: charge {charge} of refund {} is not there",
                        event.charge
                    )));
                };
                return Ok(GatewayEvent {
                    reports: reported_status(
                        str_at(&c, "/transactionStatus"),
                        c.pointer("/payment/bankAccount").is_some(),
                    ),
                    charge,
                    refunded: None,
                    ..event
                });
            }
            let amount = match text_at(&t, "/settleAmount").as_str() {
                "" | "0" | "0.0" | "0.00" => text_at(&t, "/authAmount"),
                settled => settled.to_owned(),
            };
            return Ok(GatewayEvent {
                reports: PaymentStatus::Refunded,
                charge,
                refunded: Some(self.money(&amount).await?),
                ..event
            });
        }
        let reports = reported_status(status, bank);
        let refunded = if status == "voided" {
            Some(self.money(&text_at(&t, "/authAmount")).await?)
        } else {
            None
        };
        Ok(GatewayEvent {
            reports,
            refunded,
            ..event
        })
    }

    fn read_webhook(
        &self,
        delivery: &WebhookDelivery<'_>,
        secrets: &[Secret<String>],
        now: OffsetDateTime,
    ) -> Result<Option<GatewayEvent>, WebhookRejection> {
        read_webhook(delivery, secrets, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-11-26 12:00 UTC);

    fn gateway() -> AuthorizeNetGateway {
        AuthorizeNetGateway::new(
            reqwest::Client::new(),
            SANDBOX_API,
            Secret::new("5KP3u95bQpv".into()),
            Secret::new("346HZ32z3fP4hTG2".into()),
        )
    }

    fn delivery<'a>(headers: &'a [(String, String)], body: &'a [u8]) -> WebhookDelivery<'a> {
        WebhookDelivery {
            gateway: NAME,
            headers,
            body,
        }
    }

    #[test]
    fn decline_reasons_map_to_soft_and_hard_classes() {
        use DeclineReason::*;
        for (response, reason, class) in [
            ("2", "2", Generic),
            ("2", "3", Generic),
            ("2", "4", Stolen),
            ("2", "27", Incorrect),
            ("2", "44", Incorrect),
            ("2", "45", Incorrect),
            ("2", "65", Incorrect),
            ("3", "6", Incorrect),
            ("3", "37", Incorrect),
            ("3", "78", Incorrect),
            ("3", "8", Expired),
            ("3", "317", Expired),
            ("2", "250", Stolen),
            ("2", "251", Stolen),
            ("2", "254", Stolen),
            ("3", "19", Generic),
            ("3", "17", Generic),
            ("3", "E00114", InvalidToken),
            ("2", "R01", InsufficientFunds),
            ("2", "R03", Incorrect),
            ("2", "R10", Stolen),
            // Codes we do not know: a decline is soft, an error about the details hard.
            ("2", "999", Generic),
            ("3", "999", Incorrect),
        ] {
            assert_eq!(
                decline_reason(response, reason),
                class,
                "{response}/{reason}"
            );
        }
    }

    #[test]
    fn the_reference_derivative_fits_and_stays_unique() {
        let reference = "pay_01JD8Q3M4N5P6Q7R8S9T0V1W2X";
        let short = short_reference(reference);
        assert_eq!(short.len(), 20);
        assert_eq!(short, &reference[10..]);
        // A different random part, a different derivative.
        assert_ne!(short, short_reference("pay_01JD8Q3M4N5P6Q7R8S9T0V1W2Y"));
        assert_eq!(short_reference("ref-123"), "ref-123");
        let long = short_reference("refund:pay_01JD8Q3M4N5P6Q7R8S9T0V1W2X:2");
        assert_eq!(long.len(), 20);
        assert!(long.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(merchant_customer_id("payer-7"), "payer-7");
        assert_eq!(merchant_customer_id(&"x".repeat(40)).len(), 20);
        let minted = reference_time(reference).unwrap();
        assert!(minted.year() >= 2024, "{minted}");
    }

    #[test]
    fn a_token_charge_serializes_in_xsd_order() {
        let g = gateway();
        let body = CreateTransaction {
            merchant_authentication: g.auth(),
            ref_id: "5P6Q7R8S9T0V1W2XABCD".into(),
            transaction_request: TransactionRequest {
                transaction_type: "authCaptureTransaction",
                amount: Some("125.00".into()),
                currency_code: Some("USD"),
                payment: Some(Payment {
                    opaque_data: Some(OpaqueData {
                        data_descriptor: ACCEPT_DESCRIPTOR,
                        data_value: "tok",
                    }),
                    ..Payment::default()
                }),
                order: Some(Order {
                    invoice_number: "5P6Q7R8S9T0V1W2XABCD".into(),
                    description: Some("Invoice INV-1".into()),
                }),
                transaction_settings: Some(AuthorizeNetGateway::duplicate_window()),
                ..TransactionRequest::default()
            },
        };
        let json = serde_json::to_string(&Envelope("createTransactionRequest", &body)).unwrap();
        assert_eq!(
            json,
            r#"{"createTransactionRequest":{"merchantAuthentication":{"name":"5KP3u95bQpv","transactionKey":"346HZ32z3fP4hTG2"},"refId":"5P6Q7R8S9T0V1W2XABCD","transactionRequest":{"transactionType":"authCaptureTransaction","amount":"125.00","currencyCode":"USD","payment":{"opaqueData":{"dataDescriptor":"COMMON.ACCEPT.INAPP.PAYMENT","dataValue":"tok"}},"order":{"invoiceNumber":"5P6Q7R8S9T0V1W2XABCD","description":"Invoice INV-1"},"transactionSettings":{"setting":[{"settingName":"duplicateWindow","settingValue":"28800"}]}}}}"#
        );
    }

    /// Key "Simon" and body `{"notificationId":"n-1"}` (no newline): HMAC-SHA512 computed apart
    /// with `printf '%s' '{"notificationId":"n-1"}' | openssl dgst -sha512 -hmac Simon`
    /// (and Python's `hmac`), uppercased as Authorize.Net sends it.
    #[test]
    fn a_known_answer_pins_the_signature_scheme() {
        let body = br#"{"notificationId":"n-1"}"#;
        let expected = "sha512=7DF68C513197B7C2826031C3BAFE6E64F4C48F2DFAD08363FAE277D64F9FE460F30217B6E1C1465EB592D951D02A26E749D0CF9188BDC94A119E47717B077AE0";
        let headers = vec![("X-ANET-Signature".to_owned(), expected.to_owned())];
        assert_eq!(
            verify_signature(
                delivery(&headers, body).header(SIGNATURE_HEADER),
                body,
                &[Secret::new("Simon".into())]
            ),
            Ok(())
        );
        // Lowercase is the same signature.
        let lower = expected.to_ascii_lowercase();
        assert_eq!(
            verify_signature(Some(&lower), body, &[Secret::new("Simon".into())]),
            Ok(())
        );
    }

    #[test]
    fn the_research_envelope_reads_as_a_provisional_event() {
        // The envelope of research/protocols.md 1.6 (developer reference + receivers).
        let body = br#"{"notificationId":"d0e8e7fe-c3e7-4add-a480-27bc5ce28a18","eventType":"net.authorize.payment.authcapture.created","eventDate":"2017-03-29T20:48:02.0080095Z","webhookId":"63d6fea2-aa13-4b1d-a204-f5fbc15942b7","payload":{"responseCode":1,"authCode":"LZ6I19","avsResponse":"Y","authAmount":45.00,"merchantReferenceId":"5P6Q7R8S9T0V1W2XABCD","entityName":"transaction","id":"60020981676"}}"#;
        let key = Secret::new("signature-key".to_owned());
        let headers = vec![(
            "x-anet-signature".to_owned(),
            format!("sha512={}", {
                let mut mac = Hmac::<Sha512>::new_from_slice(b"signature-key").unwrap();
                mac.update(body);
                hex::encode_upper(mac.finalize().into_bytes())
            }),
        )];
        let event = read_webhook(&delivery(&headers, body), &[key], NOW)
            .unwrap()
            .unwrap();
        assert_eq!(event.id, "d0e8e7fe-c3e7-4add-a480-27bc5ce28a18");
        assert_eq!(event.kind, "net.authorize.payment.authcapture.created");
        assert_eq!(event.charge, "60020981676");
        assert_eq!(event.reports, PaymentStatus::Succeeded);
        assert_eq!(event.reference, None);
    }

    #[test]
    fn the_signature_is_checked_before_the_body_is_read() {
        let key = Secret::new("k".to_owned());
        let garbage = b"not json";
        let sign = |k: &str, body: &[u8]| {
            let mut mac = Hmac::<Sha512>::new_from_slice(k.as_bytes()).unwrap();
            mac.update(body);
            vec![(
                SIGNATURE_HEADER.to_owned(),
                format!("sha512={}", hex::encode_upper(mac.finalize().into_bytes())),
            )]
        };
        let headers = sign("other", garbage);
        assert_eq!(
            read_webhook(
                &delivery(&headers, garbage),
                std::slice::from_ref(&key),
                NOW
            ),
            Err(WebhookRejection::Signature("no match"))
        );
        let headers = sign("k", garbage);
        assert!(matches!(
            read_webhook(
                &delivery(&headers, garbage),
                std::slice::from_ref(&key),
                NOW
            ),
            Err(WebhookRejection::Malformed(_))
        ));
        let customer = br#"{"notificationId":"n2","eventType":"net.authorize.customer.created","payload":{"entityName":"customerProfile","id":"5"}}"#;
        let headers = sign("k", customer);
        assert_eq!(
            read_webhook(
                &delivery(&headers, customer),
                std::slice::from_ref(&key),
                NOW
            ),
            Ok(None)
        );
        for bad in [
            "",
            "sha512=",
            "sha256=00",
            "sha512=zz",
            &format!("sha512={}", "0".repeat(126)),
        ] {
            let headers = vec![(SIGNATURE_HEADER.to_owned(), bad.to_owned())];
            assert_eq!(
                read_webhook(
                    &delivery(&headers, customer),
                    std::slice::from_ref(&key),
                    NOW
                ),
                Err(WebhookRejection::Signature("malformed")),
                "{bad:?}"
            );
        }
        assert_eq!(
            read_webhook(&delivery(&[], customer), &[key], NOW),
            Err(WebhookRejection::Signature("missing"))
        );
    }

    #[test]
    fn statuses_map_to_what_the_payment_reports() {
        use PaymentStatus::*;
        assert_eq!(
            reported_status("capturedPendingSettlement", false),
            Succeeded
        );
        assert_eq!(reported_status("capturedPendingSettlement", true), Pending);
        assert_eq!(reported_status("FDSPendingReview", false), Pending);
        assert_eq!(reported_status("settledSuccessfully", true), Settled);
        assert_eq!(reported_status("declined", false), Failed);
        assert_eq!(reported_status("voided", false), Refunded);
        assert_eq!(reported_status("returnedItem", true), Returned);
        assert_eq!(reported_status("chargeback", false), Disputed);
        assert_eq!(reported_status("chargebackReversal", false), DisputeWon);
        assert_eq!(reported_status("somethingNew", false), Pending);
    }

    #[test]
    fn debug_and_scrubbed_text_never_show_the_credentials() {
        let g = gateway();
        let shown = format!("{g:?}");
        assert!(!shown.contains("346HZ32z3fP4hTG2") && !shown.contains("5KP3u95bQpv"));
        let echoed = g.scrub("The value '346HZ32z3fP4hTG2' is invalid for login 5KP3u95bQpv");
        assert!(!echoed.contains("346HZ32z3fP4hTG2") && !echoed.contains("5KP3u95bQpv"));
    }
}
