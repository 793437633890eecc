//! The ports: what the use cases need from the outside world. Adapters implement them
//! (DynamoDB in `store`, later SES, EventBridge, gateways, accounting systems).

use async_trait::async_trait;
use domain::{
    ApiKeyId, CustomerId, Email, Invoice, InvoiceNumber, Membership, Org, OrgSettings, OrgSlug,
    PaymentId, PaymentStatus, Secret, UserId,
};
use time::OffsetDateTime;

use crate::idempotency::{Claim, IdempotencyKey, StoredResponse};
use crate::payments::{MethodSummary, Payment};
use domain::Money;

/// A store failure that is nobody's fault: the caller may retry later. Business conflicts
/// (an email taken, an org that exists) are results of their own, not errors of this kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct StoreError(pub String);

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// Mints ids and secrets. Behind a port so that tests can make them predictable.
pub trait Ids: Send + Sync {
    /// A new ULID in its 26-character text form (time-ordered).
    fn ulid(&self) -> String;
    /// A new 256-bit random secret, base64url without padding (43 characters).
    fn secret(&self) -> Secret<String>;
    /// `len` random bytes (a TOTP secret, recovery codes).
    fn random_bytes(&self, len: usize) -> Secret<Vec<u8>>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: String,
    /// Argon2id PHC string; None until the person sets a password (e.g. invited, not yet accepted).
    pub password_hash: Option<Secret<String>>,
    pub created_at: OffsetDateTime,
    /// Whether two-factor sign-in (TOTP) is on: known wherever the user is read (every signed-in
    /// request), so that an org's requirement costs no read of its own.
    pub two_factor: bool,
}

/// The first admin of a new org: a new person, or a user that already has an account elsewhere.
#[derive(Debug, Clone)]
pub enum FirstAdmin {
    New(User),
    Existing(UserId),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateOrgError {
    #[error("an org with this slug exists already")]
    SlugTaken,
    #[error("a user with this email exists already")]
    EmailTaken,
    #[error("the existing user was not found")]
    UserMissing,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait OrgRepo: Send + Sync {
    /// Creates the org, its first admin's membership and, for a new person, the user and the
    /// email uniqueness marker: all in one transaction, or nothing.
    async fn create_org(
        &self,
        org: &Org,
        admin: &FirstAdmin,
        now: OffsetDateTime,
    ) -> Result<(), CreateOrgError>;
    async fn get_org(&self, slug: &OrgSlug) -> Result<Option<Org>, StoreError>;
    /// Replaces the org's settings; Ok(false) when there is no such org.
    async fn update_settings(
        &self,
        slug: &OrgSlug,
        settings: &OrgSettings,
    ) -> Result<bool, StoreError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateUserError {
    #[error("a user with this email exists already")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Writes the user and its email marker together; a taken email writes nothing.
    async fn create_user(&self, user: &User) -> Result<(), CreateUserError>;
    async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError>;
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
    /// The users with these ids that exist, in one batch read (names for a list of members).
    async fn get_users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError>;
    /// Replaces the user's password hash; Ok(false) when there is no such user.
    async fn set_password_hash(
        &self,
        id: &UserId,
        hash: &Secret<String>,
    ) -> Result<bool, StoreError>;
    /// The user's notification preferences (all on where never set); None without the user.
    async fn notification_prefs(
        &self,
        id: &UserId,
    ) -> Result<Option<NotificationPrefs>, StoreError>;
    /// Replaces the user's notification preferences; Ok(false) when there is no such user.
    async fn set_notification_prefs(
        &self,
        id: &UserId,
        prefs: &NotificationPrefs,
    ) -> Result<bool, StoreError>;
}

/// Which emails a user wants, kept on the user item; all on by default. Emails to an address
/// that is no user's (a guest's receipt) always go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotificationPrefs {
    pub receipts: bool,
    pub payment_failures: bool,
    pub upcoming_debits: bool,
    pub expiring_cards: bool,
}

impl Default for NotificationPrefs {
    fn default() -> Self {
        NotificationPrefs {
            receipts: true,
            payment_failures: true,
            upcoming_debits: true,
            expiring_cards: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddMemberError {
    #[error("this person is a member of the org already")]
    AlreadyMember,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait MembershipRepo: Send + Sync {
    async fn add_member(
        &self,
        user: &UserId,
        membership: &Membership,
        now: OffsetDateTime,
    ) -> Result<(), AddMemberError>;
    async fn membership(
        &self,
        org: &OrgSlug,
        user: &UserId,
    ) -> Result<Option<Membership>, StoreError>;
    /// Every org the user belongs to ("my orgs"), by org slug.
    async fn memberships_of_user(&self, user: &UserId) -> Result<Vec<Membership>, StoreError>;
    async fn members_of_org(&self, org: &OrgSlug) -> Result<Vec<(UserId, Membership)>, StoreError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub org: OrgSlug,
    pub label: String,
    /// SHA-256 of the secret; the secret itself is shown once and never stored.
    pub secret_hash: String,
    pub created_at: OffsetDateTime,
}

#[async_trait]
pub trait ApiKeyRepo: Send + Sync {
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    async fn find_api_key(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    async fn list_api_keys(&self, org: &OrgSlug) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Returns whether a key was removed.
    async fn revoke_api_key(&self, org: &OrgSlug, id: &ApiKeyId) -> Result<bool, StoreError>;
}

/// A ledger invoice as stored, with the version that guards concurrent changes to its balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerInvoice {
    pub invoice: Invoice,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerWriteError {
    #[error("invoice {0} exists already")]
    Exists(InvoiceNumber),
    #[error("the invoice changed meanwhile; read it again")]
    Changed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait LedgerRepo: Send + Sync {
    async fn add_invoice(
        &self,
        org: &OrgSlug,
        invoice: &Invoice,
        now: OffsetDateTime,
    ) -> Result<(), LedgerWriteError>;
    async fn get_invoice(
        &self,
        org: &OrgSlug,
        number: &InvoiceNumber,
    ) -> Result<Option<LedgerInvoice>, StoreError>;
    /// The customer's invoices, newest issue date first.
    async fn invoices_of_customer(
        &self,
        org: &OrgSlug,
        customer: &CustomerId,
    ) -> Result<Vec<Invoice>, StoreError>;
}

/// One page of a listing and the cursor of the next, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentWriteError {
    #[error("the payment exists already")]
    Exists,
    #[error("the payment is not in the state expected")]
    State,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait PaymentRepo: Send + Sync {
    async fn insert_payment(&self, payment: &Payment) -> Result<(), PaymentWriteError>;
    async fn get_payment(
        &self,
        org: &OrgSlug,
        id: &PaymentId,
    ) -> Result<Option<Payment>, StoreError>;
    /// Newest first.
    async fn list_payments(
        &self,
        org: &OrgSlug,
        limit: u16,
        cursor: Option<&str>,
    ) -> Result<Page<Payment>, StoreError>;
    /// The customer's payments created in `[from, to)`, newest first, at most `limit`, after
    /// `before` (the `next` of the page before).
    async fn customer_payments(
        &self,
        org: &OrgSlug,
        customer: &CustomerId,
        from: OffsetDateTime,
        to: OffsetDateTime,
        before: Option<&str>,
        limit: u16,
    ) -> Result<Page<Payment>, StoreError>;
    /// Moves the payment forward, only from `from` (a conditional write).
    async fn move_payment(
        &self,
        org: &OrgSlug,
        id: &PaymentId,
        from: PaymentStatus,
        to: PaymentStatus,
        now: OffsetDateTime,
    ) -> Result<(), PaymentWriteError>;
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims the key for this request (see `Claim`). `resource_id` is what the first request
    /// creates (a payment id); a takeover of an abandoned claim gets the original one back.
    async fn claim(
        &self,
        key: &IdempotencyKey,
        request_hash: &str,
        resource_id: &str,
        now: OffsetDateTime,
    ) -> Result<Claim, StoreError>;
    /// Stores the response for byte-identical replay. Only the holder of an in-progress claim completes.
    async fn complete(
        &self,
        key: &IdempotencyKey,
        request_hash: &str,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Drops an in-progress claim whose work had no effect outside (bad input found late), so
    /// the client may retry. Never call it once a gateway may have been reached.
    async fn release(&self, key: &IdempotencyKey, request_hash: &str) -> Result<(), StoreError>;
}

/// An invoice as read for a payment. The ledger also gives the version that guards its balance,
/// so that the payment and the new balance can be written in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRead {
    pub invoice: Invoice,
    pub ledger_version: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the accounting system is unavailable: {0}")]
pub struct AccountingError(pub String);

impl From<StoreError> for AccountingError {
    fn from(e: StoreError) -> Self {
        AccountingError(e.0)
    }
}

/// Where invoices and their balances come from: the built-in ledger, later Xero or ConnectWise
/// (remote, slow, rate-limited: callers read once per payment and never trust a cached balance).
#[async_trait]
pub trait Accounting: Send + Sync {
    async fn read_invoice(
        &self,
        org: &OrgSlug,
        number: &InvoiceNumber,
    ) -> Result<Option<InvoiceRead>, AccountingError>;
    /// The customer's invoices that have a balance to pay (auto-pay discovers them).
    async fn open_invoices(
        &self,
        org: &OrgSlug,
        customer: &CustomerId,
    ) -> Result<Vec<Invoice>, AccountingError>;
    /// Records a payment against its invoice in the accounting system (the write-back), once:
    /// `posting.payment` is the idempotency key. The built-in ledger moved the balance in the
    /// payment's own transaction: nothing to post.
    async fn post_payment(&self, posting: &PaymentPosting) -> Result<Posted, AccountingError> {
        let _ = posting;
        Ok(Posted::Recorded {
            remote_id: "ledger".to_owned(),
        })
    }
    /// Reverses a payment posted before (returned, refunded), once per `reversal` id.
    async fn reverse_payment(&self, reversal: &PaymentReversal) -> Result<Posted, AccountingError> {
        let _ = reversal;
        Ok(Posted::Recorded {
            remote_id: "ledger".to_owned(),
        })
    }
    /// The invoice's PDF as the accounting system renders it; None where it has none.
    async fn invoice_pdf(
        &self,
        org: &OrgSlug,
        number: &InvoiceNumber,
    ) -> Result<Option<Vec<u8>>, AccountingError> {
        let _ = (org, number);
        Ok(None)
    }
    /// One cheap authenticated call with the org's connection.
    async fn test_connection(&self, org: &OrgSlug) -> Result<ConnectionCheck, AccountingError> {
        let _ = org;
        Ok(ConnectionCheck::Accepted)
    }
    /// Whether the org's payments must be written back (`post_payment`): false for the built-in
    /// ledger, whose balance moves in the payment's own transaction.
    async fn writes_back(&self, org: &OrgSlug) -> Result<bool, AccountingError> {
        let _ = org;
        Ok(false)
    }
    /// The org's connection changed: an adapter that caches what serves the org drops it.
    fn forget(&self, org: &OrgSlug) {
        let _ = org;
    }
}

/// An org's connection to its accounting system, with its secrets opened (adapters only).
#[derive(Debug, Clone)]
pub struct AccountingConfig {
    /// "xero" or "connectwise" (no config: the built-in ledger).
    pub system: String,
    /// The system's settings and secrets as JSON text (Xero: tenant, client, tokens;
    /// ConnectWise: site, company, keys, client id).
    pub credentials: Secret<String>,
    /// Bumped by every write: a token rotation only lands on the version it read.
    pub version: u64,
    pub updated_at: OffsetDateTime,
}

/// Which accounting system each org uses and its secrets, sealed at rest like the gateways'.
#[async_trait]
pub trait AccountingConfigs: Send + Sync {
    /// Replaces the org's connection (a new version).
    async fn put_accounting_config(
        &self,
        org: &OrgSlug,
        system: &str,
        credentials: &Secret<String>,
        now: OffsetDateTime,
    ) -> Result<AccountingConfig, StoreError>;
    async fn accounting_config(
        &self,
        org: &OrgSlug,
    ) -> Result<Option<AccountingConfig>, StoreError>;
    /// Back to the built-in ledger.
    async fn delete_accounting_config(&self, org: &OrgSlug) -> Result<(), StoreError>;
    /// New credentials (a refreshed token pair) if the config is still at `version`; false
    /// when another instance changed it first (read it again: it may have refreshed already).
    async fn update_accounting_credentials(
        &self,
        org: &OrgSlug,
        version: u64,
        credentials: &Secret<String>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

/// An accounting system's authorization-code connect flow (Xero): the admin's browser is sent
/// to the system to consent, and comes back with a code that buys the first token pair.
#[async_trait]
pub trait AccountingConnect: Send + Sync {
    /// Where to send the admin's browser.
    fn authorize_url(&self, client_id: &str, redirect_uri: &str, state: &str) -> String;
    /// The code exchanged for tokens, and the organisations the consent covers.
    async fn exchange(
        &self,
        client_id: &str,
        client_secret: &Secret<String>,
        code: &str,
        redirect_uri: &str,
        now: OffsetDateTime,
    ) -> Result<Consent, AccountingError>;
}

/// What an admin's consent bought: the first token pair and the organisations it covers.
#[derive(Debug, Clone)]
pub struct Consent {
    pub access_token: Secret<String>,
    pub refresh_token: Secret<String>,
    pub access_expires_at: OffsetDateTime,
    /// (tenant id, name)
    pub tenants: Vec<(String, String)>,
}

/// No connect flow (a deployment without one): every exchange fails.
pub struct NoConnect;

#[async_trait]
impl AccountingConnect for NoConnect {
    fn authorize_url(&self, _: &str, _: &str, _: &str) -> String {
        String::new()
    }
    async fn exchange(
        &self,
        _: &str,
        _: &Secret<String>,
        _: &str,
        _: &str,
        _: OffsetDateTime,
    ) -> Result<Consent, AccountingError> {
        Err(AccountingError("no accounting connect flow here".into()))
    }
}

/// A payment to write back to the accounting system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentPosting {
    pub org: OrgSlug,
    /// Our payment id: the idempotency key of the posting (Xero's `Idempotency-Key`).
    pub payment: PaymentId,
    /// The invoice paid (the first, oldest, of several).
    pub invoice: InvoiceNumber,
    /// What reduces the invoices (the surcharge is not the invoices': posted apart, or not).
    pub amount: Money,
    /// How `amount` is split when one payment paid several invoices; empty when it is all on
    /// `invoice`. A posting of several parts is one `Posted::Recorded` whose `remote_id` names
    /// every part, so that `reverse_payment` undoes them all.
    pub allocations: Vec<domain::Allocation>,
    pub surcharge: Money,
    pub paid_on: time::Date,
    /// What the bookkeeper reads on the payment: "Paybridge pay_… visa …4242".
    pub reference: String,
}

impl PaymentPosting {
    /// Each invoice's part: the allocations, or the whole amount on the one invoice.
    pub fn parts(&self) -> Vec<domain::Allocation> {
        domain::Allocation::parts_or_whole(&self.allocations, &self.invoice, self.amount)
    }
}

/// A posted payment taken back (a returned debit, a refund, a lost dispute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentReversal {
    pub org: OrgSlug,
    pub payment: PaymentId,
    /// The accounting system's id of the posted payment (`Posted::Recorded::remote_id`).
    pub remote_id: String,
    /// Our id of this reversal (idempotency).
    pub id: String,
    pub amount: Money,
    pub on: time::Date,
}

/// A payment's entry in the org's books (`Accounting::post_payment`), kept for the payment's
/// life: queued when the payment succeeds, posted once, reversed when the money goes back, or
/// parked for the admin (the unprocessed-payments list) when the accounting system will not
/// take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Books {
    pub posting: PaymentPosting,
    /// The accounting system's id of the posted payment, once posted.
    pub posted: Option<String>,
    /// The payment went back (returned, refunded, lost dispute): the posting is to be undone.
    pub want_reversed: bool,
    pub reversed: bool,
    /// Why it waits for the admin; None while the retries go on or once done.
    pub unprocessed: Option<String>,
    /// The last failure, for the admin.
    pub last_error: Option<String>,
    pub attempts: u32,
    pub queued_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Books {
    /// Nothing left to do: posted (and reversed where wanted), or reversed before it was posted.
    pub fn is_settled(&self) -> bool {
        if self.want_reversed {
            self.posted.is_none() || self.reversed
        } else {
            self.posted.is_some()
        }
    }
}

/// The write-back queue and the unprocessed-payments list. The queue's lease, retry and
/// close are the follow-ups' (`WebhookRepo` with `FollowUpKey::Books`).
#[async_trait]
pub trait BooksRepo: Send + Sync {
    /// Queues the payment's posting, due at `due`; once per payment (false: queued before).
    async fn queue_books(&self, books: &Books, due: OffsetDateTime) -> Result<bool, StoreError>;
    /// Asks for the posting to be undone (queued again at `due`); false when the payment was
    /// never queued for the books.
    async fn want_reversal(
        &self,
        org: &OrgSlug,
        payment: &PaymentId,
        due: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    async fn get_books(
        &self,
        org: &OrgSlug,
        payment: &PaymentId,
    ) -> Result<Option<Books>, StoreError>;
    /// Records what the leased run did: the posted id, the reversal, the last error.
    async fn books_progress(&self, books: &Books, lease: &str) -> Result<(), StoreError>;
    /// Done: leaves the queue (and the unprocessed list), kept as the payment's record.
    async fn books_done(
        &self,
        books: &Books,
        lease: Option<&str>,
        outcome: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Leaves the queue for the unprocessed-payments list, with the reason.
    async fn park_books(
        &self,
        books: &Books,
        lease: &str,
        why: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// The org's unprocessed payments, oldest first.
    async fn unprocessed(
        &self,
        org: &OrgSlug,
        limit: u16,
        cursor: Option<&str>,
    ) -> Result<Page<Books>, StoreError>;
    /// An unprocessed payment back into the queue, due now, its retries counted afresh; false
    /// when it is not on the list.
    async fn requeue_books(
        &self,
        org: &OrgSlug,
        payment: &PaymentId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

/// What the accounting system did with a posting. An `AccountingError` means "not known to be
/// done; try again later" (timeouts, 5xx, 429); `Refused` will not change by retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    Recorded {
        remote_id: String,
    },
    /// The system will not take it (the invoice was voided, the account is locked, ...): its
    /// words, for the admin's unprocessed-payments list.
    Refused(String),
    /// Rate limited: not done, and not to be tried again before `after` (its `Retry-After`).
    Later {
        after: std::time::Duration,
        why: String,
    },
}

/// What pays: a single-use token from the gateway's browser tokenization, or a method saved
/// at the gateway for one of its customers.
#[derive(Debug, Clone)]
pub enum ChargeSource {
    Token(Secret<String>),
    Saved {
        customer: String,
        method: String,
    },
    /// Card details as a caller sent them: only the Authorize.Net-compatible proxy takes these
    /// (ConnectWise posts card numbers). Handed to the gateway and dropped: never stored,
    /// logged or put in an error.
    Card(CardDetails),
}

/// A card's number, expiry and security code, in transit only.
#[derive(Debug, Clone)]
pub struct CardDetails {
    pub number: Secret<String>,
    pub exp_month: u8,
    pub exp_year: u16,
    pub code: Option<Secret<String>>,
}

impl CardDetails {
    /// What may be shown of it: its brand (by its leading digits) and last four.
    pub fn summary(&self) -> MethodSummary {
        let digits = self.number.expose();
        MethodSummary {
            kind: "card".to_owned(),
            brand: domain::card_brand(digits).to_owned(),
            last4: digits
                .get(digits.len().saturating_sub(4)..)
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

/// A payment method as the gateway keeps it for a customer: its reference and what may be
/// shown of it. Never a number beyond the last four.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayMethod {
    /// The gateway's id of the saved method.
    pub method_ref: String,
    /// "card" or "bank"
    pub kind: String,
    /// The card brand ("visa", ...) or the bank's name.
    pub brand: String,
    pub last4: String,
    /// A card's expiry; None for a bank account.
    pub exp_month: Option<u8>,
    pub exp_year: Option<u16>,
    /// The account holder's name where the gateway has one.
    pub holder_name: Option<String>,
    /// The gateway's fingerprint: the same card or account gives the same value (within the
    /// gateway account), so that saving it twice is recognised.
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub org: OrgSlug,
    /// Our idempotency reference (the payment id): the same reference never charges twice, and
    /// a charge can be looked up by it after a timeout.
    pub reference: String,
    pub amount: Money,
    pub source: ChargeSource,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclineReason {
    Generic,
    InsufficientFunds,
    Stolen,
    Expired,
    /// The number, security code or postcode is wrong (a hard decline: retrying cannot help).
    Incorrect,
    /// The token is unknown, used already, or for another org.
    InvalidToken,
    /// The bank wants the payer to confirm (3-D Secure) a charge made while they were not
    /// there: only the payer, paying on the page, can get it through.
    AuthenticationRequired,
}

impl DeclineReason {
    pub const fn code(self) -> &'static str {
        match self {
            DeclineReason::Generic => "card_declined",
            DeclineReason::InsufficientFunds => "insufficient_funds",
            DeclineReason::Stolen => "stolen_card",
            DeclineReason::Expired => "expired_card",
            DeclineReason::Incorrect => "incorrect_card",
            DeclineReason::InvalidToken => "invalid_token",
            DeclineReason::AuthenticationRequired => "authentication_required",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        use DeclineReason::*;
        [
            Generic,
            InsufficientFunds,
            Stolen,
            Expired,
            Incorrect,
            InvalidToken,
            AuthenticationRequired,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// What the payer reads: no more detail than helps them (a stolen card is "declined").
    pub const fn message(self) -> &'static str {
        match self {
            DeclineReason::Generic | DeclineReason::Stolen => {
                "The card was declined. Try another card or contact your bank."
            }
            DeclineReason::InsufficientFunds => "The card has insufficient funds.",
            DeclineReason::Expired => "The card has expired.",
            DeclineReason::Incorrect => {
                "The card details are incorrect. Check them or try another card."
            }
            DeclineReason::InvalidToken => {
                "The card details expired or were used already. Enter them again."
            }
            DeclineReason::AuthenticationRequired => {
                "Your bank asks you to confirm this payment. Pay it on the invoice's page."
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Taken. A bank debit is approved but `settling`: it settles or is returned later.
    Approved {
        gateway_ref: String,
        settling: bool,
        method: MethodSummary,
    },
    Declined {
        gateway_ref: Option<String>,
        reason: DeclineReason,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// No answer: the charge may or may not have happened. Look it up by reference before
    /// anything is retried.
    #[error("the gateway did not answer: {0}")]
    Unavailable(String),
}

/// What a "test connection" found: the gateway accepted the credentials, or refused them (why,
/// as the gateway put it: never the credentials themselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionCheck {
    Accepted,
    Refused(String),
}

#[async_trait]
pub trait Gateway: Send + Sync {
    /// The name stored on payments ("sandbox", "stripe", "authorize-net"). A gateway that
    /// dispatches by org answers with its default's; ask `name_for` for an org's.
    fn name(&self) -> &'static str;
    /// The name of the gateway that serves this org (stored on its payments and saved methods).
    /// An adapter serves every org itself.
    async fn name_for(&self, org: &OrgSlug) -> Result<&'static str, GatewayError> {
        let _ = org;
        Ok(self.name())
    }
    /// One cheap authenticated call with the org's credentials.
    async fn test_connection(&self, org: &OrgSlug) -> Result<ConnectionCheck, GatewayError> {
        let _ = org;
        Ok(ConnectionCheck::Accepted)
    }
    /// Whether this org's gateway must be asked how its charges end (it sends no notice when a
    /// charge settles, is returned or is charged back: Authorize.Net), rather than telling us.
    async fn must_poll(&self, org: &OrgSlug) -> Result<bool, GatewayError> {
        let _ = org;
        Ok(false)
    }
    /// Where `must_poll`: the charge's status now, as an event named by the charge and that
    /// status (`poll:<charge>:<status>`), so that seeing one status twice is one event. None
    /// where the gateway tells by itself.
    async fn poll_charge(
        &self,
        org: &OrgSlug,
        charge: &str,
    ) -> Result<Option<GatewayEvent>, GatewayError> {
        let _ = (org, charge);
        Ok(None)
    }
    /// What the payer's browser loads to turn card or bank details into this org's single-use
    /// token (the sandbox's own script by default).
    async fn browser_tokenizer(&self, org: &OrgSlug) -> Result<BrowserTokenizer, GatewayError> {
        let _ = org;
        Ok(BrowserTokenizer::sandbox())
    }
    /// The org's configuration changed: a gateway that caches what serves the org drops it.
    fn forget(&self, org: &OrgSlug) {
        let _ = org;
    }
    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, GatewayError>;
    /// What a source is (card or bank, brand, last four) before it is charged, where the
    /// gateway can tell without spending it; None where it cannot.
    async fn describe(
        &self,
        org: &OrgSlug,
        source: &ChargeSource,
    ) -> Result<Option<MethodSummary>, GatewayError>;
    /// The outcome of an earlier charge with this reference, if the gateway has one.
    async fn find_charge(
        &self,
        org: &OrgSlug,
        reference: &str,
    ) -> Result<Option<ChargeOutcome>, GatewayError>;
    /// The gateway's customer for one payer of one org. `reference` is ours and stable (the
    /// same payer and org give the same one), so that a retried call gives the same customer.
    async fn create_customer(
        &self,
        org: &OrgSlug,
        reference: &str,
        email: &Email,
        name: &str,
    ) -> Result<String, GatewayError>;
    /// Saves the method that a single-use token stands for to the customer (spending the
    /// token). None: the token is unknown, spent, expired or another org's.
    async fn attach_method(
        &self,
        org: &OrgSlug,
        customer: &str,
        token: &Secret<String>,
    ) -> Result<Option<GatewayMethod>, GatewayError>;
    /// Removes a saved method from the customer; removing one that is gone already is Ok.
    async fn detach_method(
        &self,
        org: &OrgSlug,
        customer: &str,
        method: &str,
    ) -> Result<(), GatewayError>;
    /// Gives back (part of) a charge; before settlement a gateway may void the whole charge
    /// instead. `request.reference` is ours: the same one never refunds twice.
    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, GatewayError> {
        let _ = request;
        Ok(RefundOutcome::Refused(
            "this gateway does not take refunds through Paybridge".to_owned(),
        ))
    }
    /// A verified notification, checked against the gateway's current word before it moves a
    /// payment. Where notifications carry the state (the sandbox, Stripe) it is the event as
    /// it came; Authorize.Net's only name a transaction, whose status is fetched.
    /// `from`: the gateway that sent it (an org may have changed gateways since).
    async fn confirm_event(
        &self,
        org: &OrgSlug,
        event: GatewayEvent,
        from: &str,
    ) -> Result<GatewayEvent, GatewayError> {
        let _ = (org, from);
        Ok(event)
    }
    /// Checks a notification's signature against its raw body with the org's active secrets
    /// (the gateway's own scheme), and only then reads it. Ok(None): genuine, but nothing that
    /// moves a payment (an event type we do not act on).
    fn read_webhook(
        &self,
        delivery: &WebhookDelivery<'_>,
        secrets: &[Secret<String>],
        now: OffsetDateTime,
    ) -> Result<Option<GatewayEvent>, WebhookRejection> {
        let _ = (delivery, secrets, now);
        Err(WebhookRejection::Unsupported)
    }
}

/// How a page tokenizes for one org: the gateway's own script, the public values it needs, and
/// the origins the page's Content-Security-Policy must allow for it. Nothing here is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserTokenizer {
    /// "sandbox", "stripe" or "authorize-net": which of our adapter scripts drives it.
    pub gateway: &'static str,
    /// The gateway's script (Stripe.js, Accept.js); None where ours is enough (the sandbox).
    pub vendor_script: Option<&'static str>,
    /// Public values for the script (`publishable_key`; `api_login_id`, `client_key`).
    pub public: Vec<(&'static str, String)>,
    /// Origins to allow: scripts, connections and frames.
    pub script_origins: Vec<&'static str>,
    pub connect_origins: Vec<&'static str>,
    pub frame_origins: Vec<&'static str>,
}

impl BrowserTokenizer {
    /// The sandbox's tokenization, served by Paybridge itself.
    pub fn sandbox() -> BrowserTokenizer {
        BrowserTokenizer {
            gateway: "sandbox",
            vendor_script: None,
            public: Vec::new(),
            script_origins: Vec::new(),
            connect_origins: Vec::new(),
            frame_origins: Vec::new(),
        }
    }
}

/// A refund of one charge.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    pub org: OrgSlug,
    /// Our reference for this refund (idempotency; at most 20 characters reach Authorize.Net).
    pub reference: String,
    /// The gateway's charge id (the payment's `gateway_ref`).
    pub charge: String,
    /// What goes back now.
    pub amount: Money,
    /// `amount` is everything the charge took (and nothing was refunded before): a gateway may
    /// void an unsettled charge instead.
    pub whole: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    /// The money goes back: the gateway's id of the refund, and whether the charge was voided
    /// (cancelled before it settled) rather than refunded.
    Refunded { refund_ref: String, voided: bool },
    /// The gateway would not (refunded already, more than is left, not settled yet and not
    /// voidable): its reason, as it put it.
    Refused(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    #[error("another payment of this invoice is in progress")]
    InvoiceBusy,
    #[error("the payment exists already")]
    Exists,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinishError {
    /// The ledger invoice changed between the read and the write (guarded by its version).
    #[error("the invoice changed meanwhile")]
    InvoiceChanged,
    /// The payment was finished already (a retry or a racing request).
    #[error("the payment is not pending")]
    NotPending,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The writes around a gateway call, each one transaction.
#[async_trait]
pub trait PaymentAttempts: Send + Sync {
    /// Before the gateway is called: the pending payment (our reference) and a short lock on the
    /// invoice, so that two payments of one balance cannot be in flight at once.
    async fn begin_attempt(
        &self,
        payment: &Payment,
        lock_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), AttemptError>;
    /// The gateway took it: the payment moves on (succeeded, or stays pending while a bank debit
    /// settles), each ledger invoice in `ledger` (as read) drops by its part of the payment, the
    /// locks go.
    /// `books`: a payment of an invoice kept elsewhere (Xero, ConnectWise) is queued for the
    /// write-back in the same transaction, so that it cannot be lost.
    async fn finish_approved(
        &self,
        payment: &Payment,
        ledger: &[InvoiceRead],
        books: Option<&Books>,
        now: OffsetDateTime,
    ) -> Result<(), FinishError>;
    /// The gateway refused it: the payment failed with the reason, the lock goes, the balance stays.
    async fn finish_declined(
        &self,
        payment: &Payment,
        now: OffsetDateTime,
    ) -> Result<(), FinishError>;
}

/// A notification could not be handed over (SES or EventBridge refused or did not answer).
/// Callers send after their writes and log this: it never undoes or repeats a payment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notification not sent: {0}")]
pub struct NotifyError(pub String);

/// An email, rendered: subject, a plain-text part and an HTML part.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EmailMessage {
    pub to: Email,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, message: &EmailMessage) -> Result<(), NotifyError>;
}

/// A fact other systems may act on (`payment.succeeded`, `payment.failed`, ...), published to
/// the event bus with the org and a JSON detail.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DomainEvent {
    /// The event's type, EventBridge's `detail-type`: `payment.succeeded`.
    #[serde(rename = "type")]
    pub kind: String,
    pub org: OrgSlug,
    pub detail: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
}

#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, event: &DomainEvent) -> Result<(), NotifyError>;
}

/// An email as the local outbox kept it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SentMail {
    #[serde(flatten)]
    pub message: EmailMessage,
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
}

/// The local stack's outbox and event log, newest first (never deployed: SES and EventBridge
/// keep their own records).
#[async_trait]
pub trait DevOutbox: Send + Sync {
    async fn recent_mail(&self, limit: u16) -> Result<Vec<SentMail>, StoreError>;
    async fn recent_events(&self, limit: u16) -> Result<Vec<DomainEvent>, StoreError>;
}

/// Decline counts of one key (an invoice, a client address) in the current fixed window and the
/// one before it, from which `velocity` estimates a sliding window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    pub current: u32,
    pub previous: u32,
}

/// What a guest payment reads before anything else, in one round trip: the org (its settings
/// decide partial payments and surcharges) and the recent declines of each velocity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    pub org: Option<Org>,
    /// One entry per key asked for, in order.
    pub declines: Vec<WindowCounts>,
}

#[async_trait]
pub trait GuestGuard: Send + Sync {
    /// `window_index` numbers fixed windows (unix time / window length); the previous one is
    /// read too.
    async fn preflight(
        &self,
        org: &OrgSlug,
        keys: &[String],
        window_index: i64,
    ) -> Result<Preflight, StoreError>;
}

/// An invitation to become a member of an org, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: domain::InvitationId,
    pub org: OrgSlug,
    pub email: Email,
    pub name: String,
    pub role: domain::Role,
    /// The customers a payer may pay for.
    pub customer_ids: Vec<CustomerId>,
    pub state: InvitationState,
    /// SHA-256 of the link's token; a resend replaces it, so the old link stops working.
    pub token_hash: String,
    /// Who sent it, as the email names them ("Dana Admin", "the org's API").
    pub invited_by: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    Pending,
    Accepted,
    Revoked,
}

impl Invitation {
    /// pending, accepted, revoked, or expired (a pending one past its time).
    pub fn status(&self, now: OffsetDateTime) -> &'static str {
        match self.state {
            InvitationState::Pending if self.expires_at <= now => "expired",
            InvitationState::Pending => "pending",
            InvitationState::Accepted => "accepted",
            InvitationState::Revoked => "revoked",
        }
    }
}

/// What creating an invitation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewInvitation {
    Created,
    /// That email has a pending invitation to this org already (its id): reissue that one.
    PendingExists(domain::InvitationId),
}

/// Who accepts: a new person (the user and its email marker are written with the membership)
/// or a user that exists already (signed in with their password).
#[derive(Debug, Clone)]
pub enum Acceptor {
    New(User),
    Existing(UserId),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptWriteError {
    /// Accepted, revoked, reissued or expired meanwhile: the link is spent.
    #[error("the invitation is no longer valid")]
    Spent,
    #[error("this person is a member of the org already")]
    AlreadyMember,
    /// A new person's email got an account meanwhile: sign in instead.
    #[error("an account with this email exists")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait InvitationRepo: Send + Sync {
    /// Writes the invitation, its token and the marker that keeps one pending invitation per
    /// email and org, in one transaction.
    async fn create_invitation(&self, invitation: &Invitation)
    -> Result<NewInvitation, StoreError>;
    async fn get_invitation(
        &self,
        org: &OrgSlug,
        id: &domain::InvitationId,
    ) -> Result<Option<Invitation>, StoreError>;
    async fn find_invitation_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<Invitation>, StoreError>;
    /// The org's invitations, newest first.
    async fn list_invitations(&self, org: &OrgSlug) -> Result<Vec<Invitation>, StoreError>;
    /// Replaces a pending invitation's token (and expiry, name, customers, role): the old
    /// link stops working. Ok(false) when it is no longer pending.
    async fn reissue_invitation(
        &self,
        updated: &Invitation,
        old_token_hash: &str,
    ) -> Result<bool, StoreError>;
    /// Ok(false) when it is no longer pending.
    async fn revoke_invitation(
        &self,
        invitation: &Invitation,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// In one transaction: the invitation accepted (only if still pending with this token and
    /// unexpired), its token and marker gone, the membership, and for a new person the user
    /// and its email marker.
    async fn accept_invitation(
        &self,
        invitation: &Invitation,
        acceptor: &Acceptor,
        now: OffsetDateTime,
    ) -> Result<(), AcceptWriteError>;
}

/// A signed-in session, stored under the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token_hash: String,
    pub user: UserId,
    pub created_at: OffsetDateTime,
    pub last_seen: OffsetDateTime,
    /// The end, however active the session is.
    pub absolute_expiry: OffsetDateTime,
}

#[async_trait]
pub trait SessionRepo: Send + Sync {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;
    async fn get_session(&self, token_hash: &str) -> Result<Option<Session>, StoreError>;
    async fn touch_session(&self, token_hash: &str, now: OffsetDateTime) -> Result<(), StoreError>;
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// The token hashes of every session of the user, from the user's own partition (no scan);
    /// may include sessions past their end that DynamoDB has not removed yet.
    async fn sessions_of_user(&self, user: &UserId) -> Result<Vec<String>, StoreError>;
    /// Ends these sessions of the user: each session and its entry in the user's index.
    async fn delete_sessions(
        &self,
        user: &UserId,
        token_hashes: &[String],
    ) -> Result<(), StoreError>;
}

/// A TOTP secret waiting for its first code (an enrolment not confirmed yet).
#[derive(Debug, Clone)]
pub struct PendingTotp {
    /// Names this secret (a new one replaces it): what confirming refers to.
    pub id: String,
    pub secret: Secret<Vec<u8>>,
    pub started_at: OffsetDateTime,
}

/// The TOTP secret of a user who has two-factor sign-in on.
#[derive(Debug, Clone)]
pub struct ActiveTotp {
    pub secret: Secret<Vec<u8>>,
    pub enabled_at: OffsetDateTime,
    /// The latest time step whose code was accepted: no code of it or before it is taken again.
    pub last_step: u64,
    /// SHA-256 (hex) of each recovery code not used yet.
    pub recovery_hashes: Vec<String>,
}

/// A user's two-factor sign-in: a pending enrolment, the active secret, or neither.
#[derive(Debug, Clone, Default)]
pub struct TwoFactorState {
    pub pending: Option<PendingTotp>,
    pub active: Option<ActiveTotp>,
}

/// A code accepted once, to be recorded so that it is never accepted again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsedCode {
    /// A TOTP code of this time step (every step up to it is spent too).
    Step(u64),
    /// The recovery code with this SHA-256 (hex).
    Recovery(String),
}

/// The second step of a sign-in: the password was right, a code is still to come. Stored under
/// the SHA-256 of its token; single use, and short-lived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondStep {
    pub token_hash: String,
    pub user: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// Two-factor sign-in: the user's TOTP secrets (sealed at rest: they must be opened to check a
/// code) and recovery-code hashes, and the second-step tokens of sign-ins.
#[async_trait]
pub trait TwoFactorRepo: Send + Sync {
    /// The user and their two-factor state, secrets opened; None when there is no such user.
    async fn two_factor(&self, user: &UserId)
    -> Result<Option<(User, TwoFactorState)>, StoreError>;
    /// Keeps a new pending secret, replacing any pending one; Ok(false) when two-factor is on
    /// already, or there is no such user.
    async fn start_totp(&self, user: &UserId, pending: &PendingTotp) -> Result<bool, StoreError>;
    /// Turns on the pending secret (as read), with `step` used (the confirming code's) and these
    /// recovery-code hashes; Ok(false) when it is no longer the pending one (started again, or
    /// turned on meanwhile).
    async fn confirm_totp(
        &self,
        user: &UserId,
        pending: &PendingTotp,
        step: u64,
        recovery_hashes: &[String],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Records a code as used, only if it was not used yet (a step later than the last used
    /// one; a recovery code still unused): Ok(false) when it was (a replay, or two at once).
    async fn use_code(&self, user: &UserId, code: &UsedCode) -> Result<bool, StoreError>;
    /// Turns two-factor sign-in off: the secret, the recovery codes and any pending secret go;
    /// Ok(false) when it was not on.
    async fn disable_totp(&self, user: &UserId) -> Result<bool, StoreError>;
    async fn put_second_step(&self, step: &SecondStep) -> Result<(), StoreError>;
    async fn get_second_step(&self, token_hash: &str) -> Result<Option<SecondStep>, StoreError>;
    /// Uses up a second-step token; Ok(false) when it was gone already (used once).
    async fn take_second_step(&self, token_hash: &str) -> Result<bool, StoreError>;
}

/// Counters of failed attempts (declined guest payments, failed logins) in fixed windows, read
/// as the current and the previous one.
#[async_trait]
pub trait AttemptCounters: Send + Sync {
    async fn counts(
        &self,
        keys: &[String],
        window_index: i64,
    ) -> Result<Vec<WindowCounts>, StoreError>;
    /// Counts one failure against every key in window `window_index`; the counters expire by
    /// themselves at `expires_at`.
    async fn count_failure(
        &self,
        keys: &[String],
        window_index: i64,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

/// A payer's saved card or bank account in one org: the gateway's references and what may be
/// shown. Never a number beyond the last four, never a CVC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedMethod {
    pub id: domain::MethodId,
    pub org: OrgSlug,
    pub user: UserId,
    /// "card" or "bank"
    pub kind: String,
    /// The card brand, or the bank's name.
    pub brand: String,
    pub last4: String,
    pub exp_month: Option<u8>,
    pub exp_year: Option<u16>,
    pub holder_name: Option<String>,
    pub fingerprint: String,
    /// Which gateway keeps it, its customer there and the method's reference.
    pub gateway: String,
    pub gateway_customer: String,
    pub gateway_method: String,
    /// The customers (accounting system ids) it may pay for.
    pub customer_ids: Vec<CustomerId>,
    pub nickname: Option<String>,
    pub is_default: bool,
    /// The authority the payer accepted for it (required for a bank account, and for a card
    /// to be charged without the payer present).
    pub mandate: Option<domain::MandateId>,
    /// What uses it (schedules, auto-pay enrolments): it cannot be removed while any does.
    pub used_by: Vec<String>,
    pub created_at: OffsetDateTime,
}

impl SavedMethod {
    /// The method as receipts show it.
    pub fn summary(&self) -> MethodSummary {
        MethodSummary {
            kind: self.kind.clone(),
            brand: self.brand.clone(),
            last4: self.last4.clone(),
        }
    }
}

/// A payer's acceptance of a direct-debit or stored-credential authority, as recorded at the
/// time: written once, never changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mandate {
    pub id: domain::MandateId,
    pub org: OrgSlug,
    pub user: UserId,
    pub email: Email,
    pub method: domain::MethodId,
    /// "direct_debit" (a bank account) or "stored_credential" (a card)
    pub kind: String,
    /// What the method was, for the record: "visa ending 4242", "Sandbox Bank ending 6789".
    pub method_label: String,
    pub terms_version: String,
    /// SHA-256 of the exact terms text the payer was shown.
    pub terms_hash: String,
    pub signer_name: String,
    pub accepted_at: OffsetDateTime,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// What saving a method did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveWrite {
    Saved,
    /// The payer has this card or account saved already (same fingerprint): that one's id.
    Duplicate(domain::MethodId),
    /// The default changed meanwhile: read again and retry.
    DefaultMoved,
}

/// What removing a method did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteWrite {
    Deleted,
    /// Something uses it (what, by name).
    InUse(Vec<String>),
    Gone,
}

#[async_trait]
pub trait MethodRepo: Send + Sync {
    /// The payer's customer at this gateway, if made already.
    async fn payer_customer(
        &self,
        org: &OrgSlug,
        user: &UserId,
        gateway: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Records the payer's customer at the gateway, unless one is recorded: answers the one kept.
    async fn keep_payer_customer(
        &self,
        org: &OrgSlug,
        user: &UserId,
        gateway: &str,
        customer: &str,
    ) -> Result<String, StoreError>;
    /// In one transaction: the method, its fingerprint marker (one per payer, org and card or
    /// account), its mandate, and when it becomes the default, `previous_default` no longer.
    async fn save_method(
        &self,
        method: &SavedMethod,
        mandate: Option<&Mandate>,
        previous_default: Option<&domain::MethodId>,
    ) -> Result<SaveWrite, StoreError>;
    /// The payer's methods in the org, oldest first.
    async fn methods_of(
        &self,
        org: &OrgSlug,
        user: &UserId,
    ) -> Result<Vec<SavedMethod>, StoreError>;
    async fn get_method(
        &self,
        org: &OrgSlug,
        user: &UserId,
        id: &domain::MethodId,
    ) -> Result<Option<SavedMethod>, StoreError>;
    /// Makes `id` the default and `previous` not, in one transaction. Ok(false) when either
    /// changed meanwhile (or `id` is gone).
    async fn set_default(
        &self,
        org: &OrgSlug,
        user: &UserId,
        id: &domain::MethodId,
        previous: Option<&domain::MethodId>,
    ) -> Result<bool, StoreError>;
    /// Ok(false) when the method is gone.
    async fn set_nickname(
        &self,
        org: &OrgSlug,
        user: &UserId,
        id: &domain::MethodId,
        nickname: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// In one transaction: the method and its fingerprint marker go, only if nothing uses it;
    /// `promote` becomes the default when the removed one was.
    async fn delete_method(
        &self,
        method: &SavedMethod,
        promote: Option<&domain::MethodId>,
    ) -> Result<DeleteWrite, StoreError>;
    /// Notes that `by` (a schedule, an enrolment) uses the method. Ok(false) when it is gone.
    async fn use_method(
        &self,
        org: &OrgSlug,
        user: &UserId,
        id: &domain::MethodId,
        by: &str,
    ) -> Result<bool, StoreError>;
    /// `by` no longer uses the method.
    async fn release_method(
        &self,
        org: &OrgSlug,
        user: &UserId,
        id: &domain::MethodId,
        by: &str,
    ) -> Result<(), StoreError>;
    /// The org's mandates, oldest first.
    async fn list_mandates(&self, org: &OrgSlug) -> Result<Vec<Mandate>, StoreError>;
    /// Cards that expire at the end of `year`-`month` and whose holder has not been told yet.
    async fn cards_expiring(&self, year: i32, month: u8) -> Result<Vec<SavedMethod>, StoreError>;
    /// Marks the card's holder as told; Ok(false) when someone else did first.
    async fn claim_expiry_notice(
        &self,
        method: &SavedMethod,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

/// Where a schedule is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleState {
    /// Waiting for its time (its first try, a retry, or its advance notice).
    Scheduled,
    /// Claimed by a tick, which is charging it; a claim past `claimed_until` is taken over.
    Running,
    Succeeded,
    Failed,
    /// Not charged: paid elsewhere, void, above the auto-pay cap.
    Skipped,
    Cancelled,
}

impl ScheduleState {
    pub const fn as_str(self) -> &'static str {
        match self {
            ScheduleState::Scheduled => "scheduled",
            ScheduleState::Running => "running",
            ScheduleState::Succeeded => "succeeded",
            ScheduleState::Failed => "failed",
            ScheduleState::Skipped => "skipped",
            ScheduleState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        use ScheduleState::*;
        [Scheduled, Running, Succeeded, Failed, Skipped, Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// Whether it is over (nothing more will be charged).
    pub const fn is_final(self) -> bool {
        !matches!(self, ScheduleState::Scheduled | ScheduleState::Running)
    }
}

/// A payment of one invoice from a saved method, due at a time: chosen by the payer, or made
/// by an auto-pay enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub id: domain::ScheduleId,
    pub org: OrgSlug,
    /// The payer whose saved methods pay it.
    pub user: UserId,
    pub invoice: InvoiceNumber,
    pub customer: CustomerId,
    pub method: domain::MethodId,
    /// Tried once when the primary fails (auto-pay).
    pub secondary: Option<domain::MethodId>,
    /// None: the whole balance at run time. Otherwise at most this (never more than the balance).
    pub amount: Option<Money>,
    /// The day it was scheduled for, in the org's time zone.
    pub run_on: time::Date,
    /// When it is next due (its day's run hour; a retry's time; a claim's expiry while running).
    pub due_at: OffsetDateTime,
    /// The auto-pay enrolment that made it, if any.
    pub enrolment: Option<domain::EnrolmentId>,
    pub state: ScheduleState,
    /// Charges tried so far (a takeover of the same attempt does not count again).
    pub attempts: u32,
    /// Whether the secondary method is the one being tried now.
    pub on_secondary: bool,
    /// The current attempt's payment (our reference at the gateway).
    pub payment: Option<PaymentId>,
    /// The last decline's code, or why it was skipped or cancelled.
    pub outcome: Option<String>,
    /// An advance notice still to send at this time (auto-pay), before `due_at`.
    pub notice_at: Option<OffsetDateTime>,
    /// Every move adds one: a move applies only to the version it was read at.
    pub version: u64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Schedule {
    /// The method being tried now.
    pub fn current_method(&self) -> &domain::MethodId {
        match (&self.secondary, self.on_secondary) {
            (Some(secondary), true) => secondary,
            _ => &self.method,
        }
    }

    /// What it waits for next: its advance notice, or its charge.
    pub fn next_time(&self) -> OffsetDateTime {
        match self.notice_at {
            Some(notice) if notice < self.due_at => notice,
            _ => self.due_at,
        }
    }
}

/// What creating a schedule did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewSchedule {
    Created,
    /// The invoice has an active schedule already (that one).
    InvoiceTaken(domain::ScheduleId),
    /// The method was removed meanwhile.
    MethodGone,
}

/// Partitions of each day of the due index (a busy day's writes spread over them); the tick
/// reads every one.
pub const DUE_SHARDS: u8 = 4;

/// When auto-pay charges a customer's invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AutoPayRule {
    /// On the invoice's due date.
    OnDueDate,
    /// `days` after the invoice's date.
    DaysAfterInvoice { days: u16 },
    /// On day `day` of the month, on or after the invoice's date (the month's last day when it
    /// is shorter).
    DayOfMonth { day: u8 },
}

/// A customer's enrolment in automatic payments: which payer's saved methods pay, by which
/// rule, up to which amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub id: domain::EnrolmentId,
    pub org: OrgSlug,
    pub customer: CustomerId,
    /// The payer whose methods pay.
    pub user: UserId,
    pub method: domain::MethodId,
    pub secondary: Option<domain::MethodId>,
    pub rule: AutoPayRule,
    /// Invoices above this are left for the payer to pay by hand (and the payer is told).
    pub cap: Option<Money>,
    /// Made by an admin, who may lock it: the payer cannot change or end it.
    pub by_admin: bool,
    pub locked: bool,
    /// When the tick next looks for new invoices of the customer.
    pub look_at: OffsetDateTime,
    pub version: u64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One page of due items from one partition of the due index.
pub struct DuePage {
    /// Enrolments whose time to look for new invoices has come.
    pub enrolments: Vec<Enrolment>,
    pub schedules: Vec<Schedule>,
    /// Items the query read (what it costs).
    pub items_read: usize,
}

#[async_trait]
pub trait ScheduleRepo: Send + Sync {
    /// In one transaction: the schedule, the invoice's marker (one active schedule per invoice),
    /// and its methods noted as used by it (a method in use cannot be removed).
    async fn create_schedule(&self, schedule: &Schedule) -> Result<NewSchedule, StoreError>;
    async fn get_schedule(
        &self,
        org: &OrgSlug,
        user: &UserId,
        id: &domain::ScheduleId,
    ) -> Result<Option<Schedule>, StoreError>;
    /// The payer's schedules in the org, newest first.
    async fn schedules_of(&self, org: &OrgSlug, user: &UserId)
    -> Result<Vec<Schedule>, StoreError>;
    /// The invoice's active schedule, if any: (its payer, its id).
    async fn active_for_invoice(
        &self,
        org: &OrgSlug,
        invoice: &InvoiceNumber,
    ) -> Result<Option<(UserId, domain::ScheduleId)>, StoreError>;
    /// Schedules whose next time has come, from one bucket (a UTC day) and shard of the due
    /// index, oldest first, at most `limit`.
    async fn due_schedules(
        &self,
        day: time::Date,
        shard: u8,
        now: OffsetDateTime,
        limit: i32,
    ) -> Result<DuePage, StoreError>;
    /// Moves a schedule from the state `seen` was read in to `next`, only if it is still as
    /// read (state, attempt's payment, next time): a claim by one tick among several. In the
    /// same transaction, a schedule that ends releases its methods and its invoice's marker.
    /// Ok(false) when someone else moved it first.
    async fn move_schedule(&self, seen: &Schedule, next: &Schedule) -> Result<bool, StoreError>;
    /// The day through which every earlier bucket of the due index has been swept.
    async fn swept_through(&self) -> Result<Option<time::Date>, StoreError>;
    async fn set_swept_through(&self, day: time::Date) -> Result<(), StoreError>;
}

/// A gateway notification as it arrived: its headers and its raw body, untouched (signatures
/// are over the exact bytes).
#[derive(Debug, Clone, Copy)]
pub struct WebhookDelivery<'a> {
    /// The gateway that sends it (the URL's): which scheme reads it.
    pub gateway: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl WebhookDelivery<'_> {
    /// A header's value by its name, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a notification is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRejection {
    /// Missing, malformed, stale or matching none of the org's secrets: nothing was read.
    #[error("webhook signature rejected: {0}")]
    Signature(&'static str),
    /// Signed, but not a notification we can read.
    #[error("webhook body is malformed: {0}")]
    Malformed(String),
    /// This gateway does not send notifications (yet).
    #[error("this gateway sends no webhooks")]
    Unsupported,
}

/// A verified notification in our words: the gateway says that its charge is now `reports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEvent {
    /// The gateway's event id: one event delivered again has the same one.
    pub id: String,
    /// The gateway's own name of the event ("charge.settled").
    pub kind: String,
    pub reports: PaymentStatus,
    /// The gateway's charge id (our payment's `gateway_ref`).
    pub charge: String,
    /// Our reference (the payment id), where the gateway echoes it back.
    pub reference: Option<String>,
    /// For refunds: the amount refunded so far, all refunds together.
    pub refunded: Option<Money>,
}

/// An org's webhook secrets for one gateway, as far as they may be shown: never the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSecretInfo {
    pub gateway: String,
    pub current_id: String,
    pub current_since: OffsetDateTime,
    /// The secret before, accepted until then.
    pub previous_id: Option<String>,
    pub previous_until: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateWrite {
    Rotated(WebhookSecretInfo),
    /// Someone else rotated meanwhile: nothing was written.
    Conflict,
}

/// An org's gateway configuration as far as it may be shown: never the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfigInfo {
    /// "sandbox" or "stripe".
    pub gateway: String,
    /// The end of the main credential ("…4242"), enough to tell two keys apart.
    pub hint: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An org's gateway configuration with its credentials opened (for the adapter only).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub info: GatewayConfigInfo,
    /// The credentials as the gateway names them (`{"secret_key": "sk_..."}` for Stripe), as
    /// JSON text.
    pub credentials: Secret<String>,
}

/// Which gateway each org uses and its credentials, sealed at rest like the webhook secrets.
#[async_trait]
pub trait GatewayConfigs: Send + Sync {
    /// Replaces the org's configuration (a rotation of its credentials is a new PUT).
    async fn put_gateway_config(
        &self,
        org: &OrgSlug,
        gateway: &str,
        credentials: &Secret<String>,
        hint: &str,
        now: OffsetDateTime,
    ) -> Result<GatewayConfigInfo, StoreError>;
    async fn gateway_config_info(
        &self,
        org: &OrgSlug,
    ) -> Result<Option<GatewayConfigInfo>, StoreError>;
    async fn gateway_config(&self, org: &OrgSlug) -> Result<Option<GatewayConfig>, StoreError>;
}

/// A credential Paybridge issues for its Authorize.Net-compatible proxy (`/anet/{org}/...`):
/// an API Login ID that is shown and a Transaction Key that is shown once and kept only as its
/// SHA-256 (a random 16-character key: no password hashing needed to make guessing hopeless).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyCredential {
    pub org: OrgSlug,
    pub login: String,
    pub key_hash: String,
    pub label: String,
    pub created_at: OffsetDateTime,
}

#[async_trait]
pub trait ProxyCredentials: Send + Sync {
    /// Writes a new credential; false when its login is taken.
    async fn put_proxy_credential(&self, credential: &ProxyCredential) -> Result<bool, StoreError>;
    async fn proxy_credential(
        &self,
        org: &OrgSlug,
        login: &str,
    ) -> Result<Option<ProxyCredential>, StoreError>;
    async fn proxy_credentials(&self, org: &OrgSlug) -> Result<Vec<ProxyCredential>, StoreError>;
    /// Removes it; false when there was none.
    async fn revoke_proxy_credential(&self, org: &OrgSlug, login: &str)
    -> Result<bool, StoreError>;
}

/// Per-org webhook secrets, sealed at rest: the store keeps only ciphertext, and opens it with a
/// key-encryption key of its configuration.
#[async_trait]
pub trait WebhookSecrets: Send + Sync {
    /// What a notification may be signed with at `now`: the current secret, and the previous
    /// one while its grace period lasts. Empty when the org has none.
    async fn active_secrets(
        &self,
        org: &OrgSlug,
        gateway: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Secret<String>>, StoreError>;
    async fn secret_info(
        &self,
        org: &OrgSlug,
        gateway: &str,
    ) -> Result<Option<WebhookSecretInfo>, StoreError>;
    /// Makes `secret` (under the new id `id`) the current one; the current one is accepted
    /// until `previous_until`, and the one before it is retired at once.
    async fn rotate_secret(
        &self,
        org: &OrgSlug,
        gateway: &str,
        id: &str,
        secret: &Secret<String>,
        previous_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<RotateWrite, StoreError>;
}

/// A payment as a notification finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedPayment {
    pub payment: Payment,
    /// Our own write of the gateway's answer has not landed yet (the gateway was faster).
    pub attempt_open: bool,
    /// Refunded so far, all refunds together.
    pub refunded: Option<Money>,
}

/// What the store knows when a notification arrives, read at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventContext {
    /// The event was recorded already (delivered before).
    pub seen: bool,
    pub payment: Option<TrackedPayment>,
}

/// How the event's marker `WHEVT#...` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// First delivery: the marker is put, only if absent (the dedupe).
    New,
    /// A held event applied later: its marker moves on, only if still held.
    ResolveHeld,
}

/// A payment's status change, written only if the payment is still where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentChange {
    pub payment: PaymentId,
    pub from: PaymentStatus,
    pub to: PaymentStatus,
    /// What the payment had refunded when read, and what it has now (refunds only rise).
    pub refunded_before: Option<Money>,
    pub refunded: Option<Money>,
}

/// The invoice's balance given back, guarded by the ledger version read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceRestore {
    pub invoice: InvoiceRead,
    pub amount: Money,
}

/// One line of a payment's history: an event as it arrived, and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: OffsetDateTime,
    pub event_id: String,
    pub gateway_event: String,
    pub reported: PaymentStatus,
    pub before: PaymentStatus,
    pub after: PaymentStatus,
    /// applied, refund_raised, already_there, passed, contradicts
    pub outcome: String,
    pub refunded: Option<Money>,
}

/// What a transition leaves to do after the acknowledgement: the event to publish and the
/// emails to send, recorded in the transition's own transaction and delivered at least once,
/// never twice by two deliverers (a lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEffects {
    /// `<payment>#<to>` (`#<refunded minor units>` for a raised refund): one per transition.
    pub id: String,
    pub org: OrgSlug,
    pub payment: PaymentId,
    pub from: PaymentStatus,
    pub to: PaymentStatus,
    pub event_id: String,
    pub at: OffsetDateTime,
    /// The amount given back to the invoices' balances in the same transaction, if any.
    pub restored: Option<Money>,
    pub refunded: Option<Money>,
    /// Messages sent already ("event", "payer", "admin:<email>").
    pub done: Vec<String>,
    pub attempts: u32,
}

/// A charge whose end the gateway will not tell: asked about from time to time (see
/// `Gateway::poll_charge`) until its payment can move no further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedCharge {
    pub org: OrgSlug,
    pub gateway: String,
    pub payment: PaymentId,
    pub charge: String,
    pub since: OffsetDateTime,
    pub attempts: u32,
}

/// An event that arrived before the payment it names could take it, kept to apply later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldEvent {
    pub org: OrgSlug,
    pub gateway: String,
    pub event: GatewayEvent,
    pub received_at: OffsetDateTime,
    pub attempts: u32,
}

/// What one notification writes, in one transaction: the marker (dedupe), the payment's move,
/// the history line, the effects to deliver and the balance given back.
#[derive(Debug, Clone)]
pub struct EventWrite<'a> {
    pub org: &'a OrgSlug,
    pub gateway: &'a str,
    pub event: &'a GatewayEvent,
    pub marker: Marker,
    /// applied, refund_raised, already_there, passed, contradicts, held
    pub outcome: &'static str,
    pub payment: Option<PaymentId>,
    pub change: Option<PaymentChange>,
    pub history: Option<HistoryEntry>,
    pub effects: Option<PaymentEffects>,
    /// One per ledger invoice the payment paid.
    pub restores: Vec<BalanceRestore>,
    /// For a held event: when to look at it again.
    pub retry_at: Option<OffsetDateTime>,
    pub now: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventWritten {
    Written,
    /// The marker exists (a redelivery), or the held event was resolved by someone else.
    AlreadyRecorded,
    /// The payment moved since it was read: read again.
    PaymentMoved,
    /// The ledger invoice changed since it was read: read again.
    InvoiceChanged,
}

/// Work left after an acknowledgement, by the key of its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUpKey {
    Effects {
        org: OrgSlug,
        id: String,
    },
    Held {
        org: OrgSlug,
        gateway: String,
        event_id: String,
    },
    Watch {
        org: OrgSlug,
        payment: PaymentId,
    },
    Books {
        org: OrgSlug,
        payment: PaymentId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUp {
    Effects(PaymentEffects),
    Held(HeldEvent),
    Watch(WatchedCharge),
    Books(Box<Books>),
}

impl FollowUp {
    pub fn key(&self) -> FollowUpKey {
        match self {
            FollowUp::Effects(e) => FollowUpKey::Effects {
                org: e.org.clone(),
                id: e.id.clone(),
            },
            FollowUp::Held(h) => FollowUpKey::Held {
                org: h.org.clone(),
                gateway: h.gateway.clone(),
                event_id: h.event.id.clone(),
            },
            FollowUp::Watch(w) => FollowUpKey::Watch {
                org: w.org.clone(),
                payment: w.payment.clone(),
            },
            FollowUp::Books(b) => FollowUpKey::Books {
                org: b.posting.org.clone(),
                payment: b.posting.payment.clone(),
            },
        }
    }
}

/// A leased follow-up: the record as leased, and the lease that later writes must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    pub follow_up: FollowUp,
    pub lease: String,
}

#[async_trait]
pub trait WebhookRepo: Send + Sync {
    /// In one read: whether the event was recorded already, and the payment it names (by our
    /// reference, strongly consistent; without one, by the gateway's charge id).
    async fn event_context(
        &self,
        org: &OrgSlug,
        gateway: &str,
        event: &GatewayEvent,
    ) -> Result<EventContext, StoreError>;
    async fn record_event(&self, write: &EventWrite<'_>) -> Result<EventWritten, StoreError>;
    /// The payment's history, oldest first.
    async fn payment_history(
        &self,
        org: &OrgSlug,
        payment: &PaymentId,
    ) -> Result<Vec<HistoryEntry>, StoreError>;
    /// Starts watching a charge (once per payment), first asked about at `first_at`.
    async fn watch(
        &self,
        watch: &WatchedCharge,
        first_at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Follow-ups due by `now`, oldest first (possibly leased by someone: `lease` decides).
    async fn due_follow_ups(
        &self,
        now: OffsetDateTime,
        limit: u16,
    ) -> Result<Vec<FollowUpKey>, StoreError>;
    /// Takes a due follow-up until `until`. None: done, not due, or leased by someone else.
    async fn lease(
        &self,
        key: &FollowUpKey,
        lease: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<Leased>, StoreError>;
    /// Gives the follow-up back to be tried again at `retry_at`, with the messages done so far.
    async fn reschedule(
        &self,
        key: &FollowUpKey,
        lease: &str,
        done: &[String],
        retry_at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Done with it: effects delivered (`outcome` "delivered"), or a held event given up
    /// ("unmatched"). It leaves the queue.
    async fn close(
        &self,
        key: &FollowUpKey,
        lease: &str,
        outcome: &str,
        done: &[String],
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

/// What recording that auto-pay has seen an invoice did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    First,
    Before,
}

#[async_trait]
pub trait EnrolmentRepo: Send + Sync {
    /// Writes the customer's enrolment (one per customer), with its methods noted as used by
    /// it; `replacing` is the one it replaces (its methods released), checked unchanged.
    async fn put_enrolment(
        &self,
        enrolment: &Enrolment,
        replacing: Option<&Enrolment>,
    ) -> Result<bool, StoreError>;
    async fn get_enrolment(
        &self,
        org: &OrgSlug,
        customer: &CustomerId,
    ) -> Result<Option<Enrolment>, StoreError>;
    /// Ends the enrolment (its methods released), if unchanged since read.
    async fn delete_enrolment(&self, enrolment: &Enrolment) -> Result<bool, StoreError>;
    /// Moves the enrolment's next look, if unchanged since read (a claim by one tick).
    async fn move_enrolment(&self, seen: &Enrolment, next: &Enrolment) -> Result<bool, StoreError>;
    /// Notes that auto-pay has dealt with the invoice (once per enrolment and invoice, ever).
    async fn mark_seen(
        &self,
        enrolment: &Enrolment,
        invoice: &InvoiceNumber,
        at: OffsetDateTime,
    ) -> Result<Seen, StoreError>;
}
