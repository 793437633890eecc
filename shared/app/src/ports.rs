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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: String,
    /// Argon2id PHC string; None until the person sets a password (e.g. invited, not yet accepted).
    pub password_hash: Option<Secret<String>>,
    pub created_at: OffsetDateTime,
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
}

/// What pays: a single-use token from the gateway's browser tokenization, or a method saved
/// at the gateway for one of its customers.
#[derive(Debug, Clone)]
pub enum ChargeSource {
    Token(Secret<String>),
    Saved { customer: String, method: String },
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
    /// The token is unknown, used already, or for another org.
    InvalidToken,
}

impl DeclineReason {
    pub const fn code(self) -> &'static str {
        match self {
            DeclineReason::Generic => "card_declined",
            DeclineReason::InsufficientFunds => "insufficient_funds",
            DeclineReason::Stolen => "stolen_card",
            DeclineReason::Expired => "expired_card",
            DeclineReason::InvalidToken => "invalid_token",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        use DeclineReason::*;
        [Generic, InsufficientFunds, Stolen, Expired, InvalidToken]
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
            DeclineReason::InvalidToken => {
                "The card details expired or were used already. Enter them again."
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

#[async_trait]
pub trait Gateway: Send + Sync {
    /// The name stored on payments ("sandbox", "stripe", "authorize-net").
    fn name(&self) -> &'static str;
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
    /// settles), a ledger invoice's balance drops by the amount, the lock goes.
    async fn finish_approved(
        &self,
        payment: &Payment,
        ledger: Option<&InvoiceRead>,
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
