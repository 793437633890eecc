//! Every port a use case may need, built once per cold start and shared by the handlers.

use std::sync::Arc;

use crate::ports::*;
use crate::system::{RandomIds, SystemClock};

#[derive(Clone)]
pub struct Services {
    pub orgs: Arc<dyn OrgRepo>,
    pub users: Arc<dyn UserRepo>,
    pub members: Arc<dyn MembershipRepo>,
    pub api_keys: Arc<dyn ApiKeyRepo>,
    pub ledger: Arc<dyn LedgerRepo>,
    pub payments: Arc<dyn PaymentRepo>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub accounting: Arc<dyn Accounting>,
    pub attempts: Arc<dyn PaymentAttempts>,
    pub guard: Arc<dyn GuestGuard>,
    pub counters: Arc<dyn AttemptCounters>,
    pub invitations: Arc<dyn InvitationRepo>,
    pub sessions: Arc<dyn SessionRepo>,
    /// TOTP secrets, recovery codes and sign-ins' second steps.
    pub two_factor: Arc<dyn TwoFactorRepo>,
    pub methods: Arc<dyn MethodRepo>,
    pub schedules: Arc<dyn ScheduleRepo>,
    pub enrolments: Arc<dyn EnrolmentRepo>,
    /// The gateway port. In a deployed function it dispatches each call to the org's configured
    /// gateway (the sandbox where none is); `name_for` says which one an org uses.
    pub gateway: Arc<dyn Gateway>,
    pub mailer: Arc<dyn Mailer>,
    pub events: Arc<dyn EventPublisher>,
    pub webhook_secrets: Arc<dyn WebhookSecrets>,
    pub gateway_configs: Arc<dyn GatewayConfigs>,
    pub webhooks: Arc<dyn WebhookRepo>,
    pub proxy_credentials: Arc<dyn ProxyCredentials>,
    /// The write-back queue and the unprocessed-payments list.
    pub books: Arc<dyn BooksRepo>,
    /// Each org's accounting connection (none: the built-in ledger).
    pub accounting_configs: Arc<dyn AccountingConfigs>,
    /// The consent flow of accounting systems that need one (Xero).
    pub accounting_connect: Arc<dyn AccountingConnect>,
    /// Whether the webhook handler delivers a notification's effects itself right after its
    /// answer (the retry path, `webhooks::run_due_follow_ups`, delivers them in any case).
    pub follow_up_after_ack: bool,
    pub clock: Arc<dyn Clock>,
    /// Where people reach Paybridge (links in emails): `PUBLIC_URL`, no trailing slash.
    pub public_url: String,
    pub ids: Arc<dyn Ids>,
}

impl Services {
    /// All repositories from one store adapter (the ledger is the accounting system), the given
    /// gateway, mailer and event publisher, the system clock and OS randomness.
    pub fn over<S, N>(store: S, gateway: Arc<dyn Gateway>, notify: Arc<N>) -> Self
    where
        N: Mailer + EventPublisher + 'static,
        S: OrgRepo
            + UserRepo
            + MembershipRepo
            + ApiKeyRepo
            + LedgerRepo
            + PaymentRepo
            + IdempotencyStore
            + Accounting
            + PaymentAttempts
            + GuestGuard
            + AttemptCounters
            + InvitationRepo
            + SessionRepo
            + TwoFactorRepo
            + MethodRepo
            + ScheduleRepo
            + EnrolmentRepo
            + WebhookSecrets
            + GatewayConfigs
            + WebhookRepo
            + ProxyCredentials
            + BooksRepo
            + AccountingConfigs
            + Clone
            + 'static,
    {
        Services {
            orgs: Arc::new(store.clone()),
            users: Arc::new(store.clone()),
            members: Arc::new(store.clone()),
            api_keys: Arc::new(store.clone()),
            ledger: Arc::new(store.clone()),
            payments: Arc::new(store.clone()),
            idempotency: Arc::new(store.clone()),
            accounting: Arc::new(store.clone()),
            attempts: Arc::new(store.clone()),
            guard: Arc::new(store.clone()),
            counters: Arc::new(store.clone()),
            invitations: Arc::new(store.clone()),
            sessions: Arc::new(store.clone()),
            two_factor: Arc::new(store.clone()),
            methods: Arc::new(store.clone()),
            schedules: Arc::new(store.clone()),
            enrolments: Arc::new(store.clone()),
            webhook_secrets: Arc::new(store.clone()),
            gateway_configs: Arc::new(store.clone()),
            webhooks: Arc::new(store.clone()),
            proxy_credentials: Arc::new(store.clone()),
            books: Arc::new(store.clone()),
            accounting_configs: Arc::new(store),
            accounting_connect: Arc::new(NoConnect),
            follow_up_after_ack: true,
            gateway,
            mailer: notify.clone(),
            events: notify,
            clock: Arc::new(SystemClock),
            public_url: "http://127.0.0.1:3000".to_owned(),
            ids: Arc::new(RandomIds),
        }
    }
}
