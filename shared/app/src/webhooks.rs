//! Webhooks: gateway notifications move payments forward, verified, once, in any order.
//!
//! A notification is answered after one verified, deduplicated write, so the gateway never
//! waits for slow work:
//! 1. the org's webhook secrets are read and the signature is checked against the raw body,
//!    before anything in it is read (a bad or stale one: 401, nothing written);
//! 2. one read finds whether the event was recorded already (a redelivery: 2xx, nothing more)
//!    and the payment it names;
//! 3. one transaction writes the event's marker `WHEVT#...` (only if absent: the dedupe), the
//!    payment's move (only from the status read: the state machine), a history line, the ledger
//!    balance given back where money came back, and the effects record: the event to publish
//!    and the emails to send. Whoever's transaction lands owns the transition and its effects;
//!    a concurrent delivery of the same event finds the marker and changes nothing.
//!
//! The effects record is delivered after the answer (by the handler, right after it) and by a
//! retry path (`run_due_follow_ups`) for whatever that did not finish: a lease keeps two
//! deliverers apart, and each message is marked done as it goes.
//!
//! An event that arrives before its payment can take it (our own write of the gateway's answer
//! has not landed yet) is kept, marked "held", and applied when the payment catches up; an
//! attempt that was abandoned (left open past its lock) is finished by asking the gateway, as a
//! retry of the payment would. Nothing is lost and nothing moves backwards.

use askama::Template;
use domain::{Money, OrgSlug, PaymentId, PaymentStatus, Report, Role, Secret};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::Services;
use crate::notices::{self, Receipt};
use crate::payments::Payment;
use crate::ports::{
    AccountingError, BalanceRestore, DomainEvent, EmailMessage, EventWrite, EventWritten, FollowUp,
    FollowUpKey, GatewayEvent, HeldEvent, HistoryEntry, Marker, PaymentChange, PaymentEffects,
    RotateWrite, StoreError, TrackedPayment, WatchedCharge, WebhookDelivery, WebhookRejection,
    WebhookSecretInfo,
};

/// How long an event id is remembered: longer than any gateway retries a delivery.
pub const EVENT_RETENTION: Duration = Duration::days(90);
/// What webhook secrets that Paybridge makes look like: `whsec_` + 43 base64url characters.
pub const SECRET_PREFIX: &str = "whsec_";
/// How long a rotated-out secret is still accepted, unless the rotation says otherwise.
pub const DEFAULT_GRACE: Duration = Duration::hours(24);
pub const MAX_GRACE: Duration = Duration::days(7);
/// How long a deliverer holds a follow-up: longer than sending a few emails takes.
pub const LEASE: Duration = Duration::seconds(60);
/// A held event waits at most this long for its payment, then it is given up as unmatched.
pub const HOLD_LIMIT: Duration = Duration::hours(24);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no such gateway")]
    UnknownGateway,
    /// Unknown org, no secret, or a missing, malformed, stale or wrong signature: the caller is
    /// not told which.
    #[error("the webhook signature is not valid")]
    BadSignature,
    #[error("the webhook body is malformed: {0}")]
    Malformed(String),
    /// The event names our reference, and this org has no such payment of this gateway (our
    /// payments are written before any gateway hears of them, so this is final).
    #[error("no such payment")]
    UnknownPayment,
    #[error("the payment kept changing; deliver the event again")]
    Busy,
    /// The gateway could not be asked for the charge's current state: deliver again later.
    #[error("the gateway did not answer: {0}")]
    Gateway(String),
    #[error(transparent)]
    Accounting(#[from] AccountingError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a notification did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        from: PaymentStatus,
        to: PaymentStatus,
    },
    /// A refunded payment was refunded further.
    RefundRaised(Money),
    /// Recorded in the payment's history; the payment stays as it is.
    Ignored(Report),
    /// Delivered before: nothing changed.
    Duplicate,
    /// Kept until the payment can take it.
    Held,
    /// Genuine, but of a kind we do not act on.
    Unsupported,
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::RefundRaised(_) => "refund_raised",
            Outcome::Ignored(report) => report_name(*report),
            Outcome::Duplicate => "duplicate",
            Outcome::Held => "held",
            Outcome::Unsupported => "unsupported",
        }
    }
}

fn report_name(report: Report) -> &'static str {
    match report {
        Report::Forward => "applied",
        Report::AlreadyThere => "already_there",
        Report::Passed => "passed",
        Report::Contradicts => "contradicts",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub outcome: Outcome,
    pub event_id: Option<String>,
    /// The payment's status after the event, where one was found.
    pub status: Option<PaymentStatus>,
    /// What is left to do after the answer (effects to deliver, a held event to apply).
    pub follow_up: Option<FollowUpKey>,
}

impl Received {
    fn of(outcome: Outcome, event: Option<&GatewayEvent>) -> Received {
        Received {
            outcome,
            event_id: event.map(|e| e.id.clone()),
            status: None,
            follow_up: None,
        }
    }
}

/// Receives one notification for `org` from `gateway` (the URL's): verifies it, records it once
/// and moves the payment forward. Quick: the slow work is left in `follow_up`.
pub async fn receive(
    s: &Services,
    org: &OrgSlug,
    gateway: &str,
    delivery: &WebhookDelivery<'_>,
) -> Result<Received, WebhookError> {
    let now = s.clock.now();
    let secrets = s.webhook_secrets.active_secrets(org, gateway, now).await?;
    if secrets.is_empty() {
        tracing::info!(org = %org, "webhook for an org without a webhook secret");
        return Err(WebhookError::BadSignature);
    }
    let event = match s.gateway.read_webhook(delivery, &secrets, now) {
        Ok(Some(event)) => event,
        Ok(None) => return Ok(Received::of(Outcome::Unsupported, None)),
        Err(WebhookRejection::Signature(why)) => {
            tracing::info!(org = %org, why, "webhook signature rejected");
            return Err(WebhookError::BadSignature);
        }
        Err(WebhookRejection::Malformed(why)) => return Err(WebhookError::Malformed(why)),
        Err(WebhookRejection::Unsupported) => return Err(WebhookError::UnknownGateway),
    };
    let event = s
        .gateway
        .confirm_event(org, event, gateway)
        .await
        .map_err(|e| WebhookError::Gateway(e.to_string()))?;
    record(s, org, gateway, &event).await
}

/// Records a verified (or our own) event once and moves its payment forward, or holds it until
/// the payment can take it. Our own refunds come this way too, so that they and the gateway's
/// later notice of them are one event's worth of change.
pub(crate) async fn record(
    s: &Services,
    org: &OrgSlug,
    gateway: &str,
    event: &GatewayEvent,
) -> Result<Received, WebhookError> {
    match apply(s, org, gateway, event, Marker::New).await? {
        Step::Done(received) => Ok(received),
        Step::Hold(payment) => hold(s, org, gateway, event, payment.as_deref()).await,
    }
}

enum Step {
    Done(Received),
    /// The payment cannot take the event yet: not found by the gateway's charge id (our write
    /// may not be visible there yet), or its attempt is still open (the payment, then).
    Hold(Option<Box<Payment>>),
}

/// What an event does to a payment, decided from what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Move {
        to: PaymentStatus,
        returns_money: bool,
        refunded: Option<Money>,
    },
    RaiseRefund(Money),
    Ignore(Report),
}

/// The state machine applied to one event: forward moves only; a refund can only rise.
fn plan(tracked: &TrackedPayment, event: &GatewayEvent) -> Plan {
    let payment = &tracked.payment;
    let status = payment.status;
    let total = payment
        .amount
        .checked_add(payment.surcharge)
        .unwrap_or(payment.amount);
    // A refund in another currency is not one we can count: it moves nothing.
    let refunded = match event.refunded {
        Some(r) if r.currency() != total.currency() => return Plan::Ignore(Report::Contradicts),
        Some(r) => Some(if r > total { total } else { r }),
        None => None,
    };
    match status.on_report(event.reports) {
        Report::Forward => Plan::Move {
            to: event.reports,
            returns_money: status.returns_money(event.reports),
            refunded: (event.reports == PaymentStatus::Refunded).then(|| refunded.unwrap_or(total)),
        },
        Report::AlreadyThere if status == PaymentStatus::Refunded => match refunded {
            Some(new) if tracked.refunded.is_none_or(|old| new > old) => Plan::RaiseRefund(new),
            _ => Plan::Ignore(Report::AlreadyThere),
        },
        report => Plan::Ignore(report),
    }
}

/// Applies the event to its payment: one transaction, read again if the payment or its invoice
/// moved meanwhile.
async fn apply(
    s: &Services,
    org: &OrgSlug,
    gateway: &str,
    event: &GatewayEvent,
    marker: Marker,
) -> Result<Step, WebhookError> {
    for _ in 0..4 {
        let now = s.clock.now();
        let context = s.webhooks.event_context(org, gateway, event).await?;
        if context.seen && marker == Marker::New {
            return Ok(Step::Done(Received::of(Outcome::Duplicate, Some(event))));
        }
        let tracked = match context.payment {
            Some(t)
                if t.payment.gateway == gateway
                    && t.payment
                        .gateway_ref
                        .as_deref()
                        .is_none_or(|r| r == event.charge) =>
            {
                t
            }
            Some(_) => return Err(WebhookError::UnknownPayment),
            None if event.reference.is_some() => return Err(WebhookError::UnknownPayment),
            None => return Ok(Step::Hold(None)),
        };
        if tracked.attempt_open {
            return Ok(Step::Hold(Some(Box::new(tracked.payment))));
        }
        let payment = &tracked.payment;
        let plan = plan(&tracked, event);
        let (after, refunded, outcome) = match &plan {
            Plan::Move { to, refunded, .. } => (*to, *refunded, "applied"),
            Plan::RaiseRefund(r) => (payment.status, Some(*r), "refund_raised"),
            Plan::Ignore(report) => (payment.status, None, report_name(*report)),
        };
        if let Plan::Ignore(Report::Contradicts) = plan {
            tracing::warn!(payment = %payment.id, status = payment.status.as_str(), reported = event.reports.as_str(), event = %event.id, "a gateway event contradicts the payment; kept in its history, nothing moved");
        }
        let mut restores = Vec::new();
        if let Plan::Move {
            returns_money: true,
            ..
        } = plan
        {
            // The built-in ledger gets each invoice's part back in the same transaction; an
            // external accounting system gets the posting reversed by the effects instead.
            for part in payment.parts() {
                let read = s.accounting.read_invoice(org, &part.invoice).await?;
                if let Some(invoice) = read.filter(|r| r.ledger_version.is_some()) {
                    restores.push(BalanceRestore {
                        invoice,
                        amount: part.amount,
                    });
                }
            }
        }
        let change = match &plan {
            Plan::Ignore(_) => None,
            _ => Some(PaymentChange {
                payment: payment.id.clone(),
                from: payment.status,
                to: after,
                refunded_before: tracked.refunded,
                refunded,
            }),
        };
        let effects = change.as_ref().map(|c| PaymentEffects {
            id: match &plan {
                Plan::RaiseRefund(r) => format!("{}#{}#{}", c.payment, after.as_str(), r.minor()),
                _ => format!("{}#{}", c.payment, after.as_str()),
            },
            org: org.clone(),
            payment: c.payment.clone(),
            from: c.from,
            to: c.to,
            event_id: event.id.clone(),
            at: now,
            restored: (!restores.is_empty())
                .then(|| {
                    domain::Money::sum(payment.amount.currency(), restores.iter().map(|r| r.amount))
                        .ok()
                })
                .flatten(),
            refunded,
            done: Vec::new(),
            attempts: 0,
        });
        let history = HistoryEntry {
            at: now,
            event_id: event.id.clone(),
            gateway_event: event.kind.clone(),
            reported: event.reports,
            before: payment.status,
            after,
            outcome: outcome.to_owned(),
            refunded,
        };
        let write = EventWrite {
            org,
            gateway,
            event,
            marker,
            outcome,
            payment: Some(payment.id.clone()),
            change,
            history: Some(history),
            effects: effects.clone(),
            restores,
            retry_at: None,
            now,
        };
        match s.webhooks.record_event(&write).await? {
            EventWritten::Written => {
                let outcome = match plan {
                    Plan::Move { to, .. } => Outcome::Applied {
                        from: payment.status,
                        to,
                    },
                    Plan::RaiseRefund(r) => Outcome::RefundRaised(r),
                    Plan::Ignore(report) => Outcome::Ignored(report),
                };
                tracing::info!(payment = %payment.id, event = %event.id, outcome = outcome.name(), status = after.as_str(), "webhook event recorded");
                return Ok(Step::Done(Received {
                    outcome,
                    event_id: Some(event.id.clone()),
                    status: Some(after),
                    follow_up: effects.map(|e| FollowUpKey::Effects {
                        org: org.clone(),
                        id: e.id,
                    }),
                }));
            }
            EventWritten::AlreadyRecorded => {
                return Ok(Step::Done(Received::of(Outcome::Duplicate, Some(event))));
            }
            EventWritten::PaymentMoved | EventWritten::InvoiceChanged => continue,
        }
    }
    Err(WebhookError::Busy)
}

/// Keeps an event that its payment cannot take yet: its marker is written as "held" (so a
/// redelivery is still a duplicate) and queued to be applied when the payment catches up.
async fn hold(
    s: &Services,
    org: &OrgSlug,
    gateway: &str,
    event: &GatewayEvent,
    payment: Option<&Payment>,
) -> Result<Received, WebhookError> {
    let now = s.clock.now();
    let write = EventWrite {
        org,
        gateway,
        event,
        marker: Marker::New,
        outcome: "held",
        payment: payment.map(|p| p.id.clone()),
        change: None,
        history: None,
        effects: None,
        restores: Vec::new(),
        // Due at once: the handler tries it again right after its answer.
        retry_at: Some(now),
        now,
    };
    match s.webhooks.record_event(&write).await? {
        EventWritten::Written => {
            tracing::info!(event = %event.id, payment = ?payment.map(|p| p.id.as_str()), "webhook event held until its payment can take it");
            Ok(Received {
                outcome: Outcome::Held,
                event_id: Some(event.id.clone()),
                status: payment.map(|p| p.status),
                follow_up: Some(FollowUpKey::Held {
                    org: org.clone(),
                    gateway: gateway.to_owned(),
                    event_id: event.id.clone(),
                }),
            })
        }
        _ => Ok(Received::of(Outcome::Duplicate, Some(event))),
    }
}

/// What running a follow-up came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUpRun {
    /// Done: effects delivered, or a held event applied (its effects, if any, delivered too).
    Done,
    /// Not finished: it waits in the queue for the retry path.
    Waiting,
    /// Not ours to run: done already, not due, or leased by another deliverer.
    Skipped,
}

/// Runs one follow-up, under a lease so that no one else runs it meanwhile.
pub async fn run_follow_up(s: &Services, key: &FollowUpKey) -> Result<FollowUpRun, StoreError> {
    let now = s.clock.now();
    let lease = s.ids.ulid();
    let Some(leased) = s.webhooks.lease(key, &lease, now, now + LEASE).await? else {
        return Ok(FollowUpRun::Skipped);
    };
    match leased.follow_up {
        FollowUp::Effects(effects) => deliver_effects(s, key, &lease, effects, now).await,
        FollowUp::Watch(watch) => watch_charge(s, key, &lease, watch, now).await,
        FollowUp::Books(books) => crate::books::run(s, key, &lease, *books, now).await,
        FollowUp::Held(held) => match retry_held(s, key, &lease, held, now).await? {
            HeldRun::Resolved(Some(effects)) => {
                // The held event moved its payment: deliver that right away too.
                Box::pin(run_follow_up(s, &effects)).await?;
                Ok(FollowUpRun::Done)
            }
            HeldRun::Resolved(None) => Ok(FollowUpRun::Done),
            HeldRun::Waiting => Ok(FollowUpRun::Waiting),
        },
    }
}

/// How often a watched charge is asked about while its payment is pending.
pub const WATCH_PENDING: Duration = Duration::hours(6);
/// ... and once a bank debit has settled, while it can still be returned.
const WATCH_SETTLED: Duration = Duration::days(1);
/// How long after the charge a settled bank debit may still come back (ACH allows 60 days for a
/// consumer's unauthorized-debit return).
const RETURN_WINDOW: Duration = Duration::days(60);

/// Asks the gateway about a charge it will not tell us about, and records what it says as its
/// own event (`poll:<charge>:<status>`: one status, one event, however often it is seen). The
/// watch goes on while the payment can still move: pending, or a settled bank debit within the
/// return window.
async fn watch_charge(
    s: &Services,
    key: &FollowUpKey,
    lease: &str,
    watch: WatchedCharge,
    now: OffsetDateTime,
) -> Result<FollowUpRun, StoreError> {
    let event = match s.gateway.poll_charge(&watch.org, &watch.charge).await {
        Ok(Some(event)) => event,
        Ok(None) => {
            // The org's gateway tells by itself now (it changed gateways): nothing to ask.
            s.webhooks.close(key, lease, "not_polled", &[], now).await?;
            return Ok(FollowUpRun::Done);
        }
        Err(e) => {
            tracing::info!(payment = %watch.payment, error = %e, "a watched charge could not be asked about");
            s.webhooks
                .reschedule(key, lease, &[], now + WATCH_PENDING)
                .await?;
            return Ok(FollowUpRun::Waiting);
        }
    };
    match record(s, &watch.org, &watch.gateway, &event).await {
        Ok(received) => {
            if let Some(effects) = received.follow_up {
                Box::pin(run_follow_up(s, &effects)).await?;
            }
        }
        Err(WebhookError::Store(e)) => return Err(e),
        Err(e) => {
            tracing::warn!(payment = %watch.payment, error = %e, "a watched charge's status not recorded yet")
        }
    }
    let payment = s.payments.get_payment(&watch.org, &watch.payment).await?;
    let bank = |p: &Payment| p.method.as_ref().is_some_and(|m| m.kind == "bank");
    let next = match payment {
        Some(p) if p.status == PaymentStatus::Pending => Some(now + WATCH_PENDING),
        Some(p)
            if p.status == PaymentStatus::Settled
                && bank(&p)
                && now < watch.since + RETURN_WINDOW =>
        {
            Some(now + WATCH_SETTLED)
        }
        _ => None,
    };
    match next {
        Some(at) => {
            s.webhooks.reschedule(key, lease, &[], at).await?;
            Ok(FollowUpRun::Waiting)
        }
        None => {
            s.webhooks.close(key, lease, "ended", &[], now).await?;
            Ok(FollowUpRun::Done)
        }
    }
}

/// What one pass of the retry path did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FollowUpReport {
    pub done: u32,
    pub waiting: u32,
    pub skipped: u32,
}

/// The retry path: runs every follow-up that is due (effects not yet delivered, held events to
/// try again). The local stack runs it every few seconds; deployed, the scheduled tick does.
pub async fn run_due_follow_ups(s: &Services, limit: u16) -> Result<FollowUpReport, StoreError> {
    let mut report = FollowUpReport::default();
    for key in s.webhooks.due_follow_ups(s.clock.now(), limit).await? {
        match run_follow_up(s, &key).await {
            Ok(FollowUpRun::Done) => report.done += 1,
            Ok(FollowUpRun::Waiting) => report.waiting += 1,
            Ok(FollowUpRun::Skipped) => report.skipped += 1,
            Err(e) => {
                tracing::warn!(error = %e, "follow-up failed; it stays due");
                report.waiting += 1;
            }
        }
    }
    Ok(report)
}

/// 5 s, 10 s, 20 s ... at most 10 minutes.
fn backoff(attempts: u32) -> Duration {
    Duration::seconds(5 * 2_i64.pow(attempts.min(7))).min(Duration::minutes(10))
}

/// What trying a held event again came to.
enum HeldRun {
    /// Applied (with the effects of the move it made, if any), or given up as unmatched.
    Resolved(Option<FollowUpKey>),
    Waiting,
}

/// Tries a held event again.
async fn retry_held(
    s: &Services,
    key: &FollowUpKey,
    lease: &str,
    held: HeldEvent,
    now: OffsetDateTime,
) -> Result<HeldRun, StoreError> {
    let give_up = |why: &'static str| {
        tracing::warn!(event = %held.event.id, org = %held.org, why, "held webhook event given up as unmatched");
        s.webhooks.close(key, lease, "unmatched", &[], now)
    };
    for _ in 0..2 {
        match apply(
            s,
            &held.org,
            &held.gateway,
            &held.event,
            Marker::ResolveHeld,
        )
        .await
        {
            Ok(Step::Done(received)) => return Ok(HeldRun::Resolved(received.follow_up)),
            Ok(Step::Hold(Some(payment)))
                if payment.created_at + crate::pay_now::ATTEMPT_LOCK < now =>
            {
                // Nobody is finishing this attempt: ask the gateway what became of it, and
                // write that as a retry of the payment would; then apply the event to it.
                if let Err(e) = crate::pay_now::resolve_abandoned(s, *payment).await {
                    tracing::info!(event = %held.event.id, error = %e, "an abandoned attempt could not be resolved yet");
                    break;
                }
            }
            Ok(Step::Hold(_)) => break,
            Err(WebhookError::UnknownPayment) => {
                give_up("the event names another payment").await?;
                return Ok(HeldRun::Resolved(None));
            }
            Err(WebhookError::Store(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(event = %held.event.id, error = %e, "held webhook event not applied yet");
                break;
            }
        }
    }
    if now - held.received_at > HOLD_LIMIT {
        give_up("its payment never caught up").await?;
        return Ok(HeldRun::Resolved(None));
    }
    s.webhooks
        .reschedule(key, lease, &[], now + backoff(held.attempts))
        .await?;
    Ok(HeldRun::Waiting)
}

/// A message that a transition sends: an event, or an email.
enum Message {
    Event(Box<DomainEvent>),
    Mail(Box<EmailMessage>),
    /// The write-back's part: queue the posting, or ask for its reversal.
    Books(crate::books::BooksStep),
}

/// Sends what a transition left to send, skipping what was sent already; whatever fails is
/// tried again later by the retry path.
async fn deliver_effects(
    s: &Services,
    key: &FollowUpKey,
    lease: &str,
    effects: PaymentEffects,
    now: OffsetDateTime,
) -> Result<FollowUpRun, StoreError> {
    let messages = compose(s, &effects).await?;
    let mut done = effects.done.clone();
    let mut failed = false;
    for (name, message) in messages {
        if done.contains(&name) {
            continue;
        }
        // Past the lease someone else may deliver: stop rather than send twice.
        if s.clock.now() >= now + LEASE {
            failed = true;
            break;
        }
        let sent = match &message {
            Message::Event(event) => s.events.publish(event).await,
            Message::Mail(mail) => s.mailer.send(mail).await,
            Message::Books(step) => crate::books::apply(s, step, now)
                .await
                .map_err(|e| crate::ports::NotifyError(e.0)),
        };
        match sent {
            Ok(()) => done.push(name),
            Err(e) => {
                tracing::warn!(payment = %effects.payment, message = %name, error = %e, "payment effect not delivered; it will be tried again");
                failed = true;
            }
        }
    }
    if failed {
        s.webhooks
            .reschedule(key, lease, &done, now + backoff(effects.attempts))
            .await?;
        Ok(FollowUpRun::Waiting)
    } else {
        s.webhooks
            .close(key, lease, "delivered", &done, now)
            .await?;
        Ok(FollowUpRun::Done)
    }
}

/// The event and emails of a transition, each under a name that marks it done.
async fn compose(
    s: &Services,
    effects: &PaymentEffects,
) -> Result<Vec<(String, Message)>, StoreError> {
    let Some(mut payment) = s
        .payments
        .get_payment(&effects.org, &effects.payment)
        .await?
    else {
        return Ok(Vec::new());
    };
    // The payment as the transition left it (it may have moved on since).
    payment.status = effects.to;
    payment.updated_at = effects.at;
    let mut messages = vec![(
        "event".to_owned(),
        Message::Event(Box::new(transition_event(&payment, effects))),
    )];
    if let Some(step) = crate::books::step_for(s, &payment, effects).await? {
        messages.push(("books".to_owned(), Message::Books(step)));
    }
    let bank = payment.method.as_ref().is_some_and(|m| m.kind == "bank");
    let reversed = effects.from.returns_money(effects.to);
    let refunded = effects.to == PaymentStatus::Refunded && effects.refunded.is_some();
    if !(reversed || refunded || (effects.to == PaymentStatus::Settled && bank)) {
        return Ok(messages);
    }
    let org_name = match s.orgs.get_org(&effects.org).await? {
        Some(org) => org.name,
        None => effects.org.to_string(),
    };
    let customer_name = match s
        .accounting
        .read_invoice(&effects.org, &payment.invoice_number)
        .await
    {
        Ok(Some(read)) => read.invoice.customer_name,
        _ => String::new(),
    };
    if refunded {
        // The payer's money back, told to them (the admin gave it, or saw it at the gateway).
        if let Some(to) = &payment.receipt_email {
            let notice = Reversal::of(&payment, effects, &org_name, &customer_name, false);
            messages.push((
                "payer".to_owned(),
                Message::Mail(Box::new(notice.email(to.clone()))),
            ));
        }
        return Ok(messages);
    }
    if !reversed {
        if let Some(to) = &payment.receipt_email
            && crate::account::wants_at(s, to, crate::account::EmailKind::Receipts).await
        {
            let receipt = Receipt::of(&payment, &org_name, &customer_name).email(to.clone());
            messages.push(("payer".to_owned(), Message::Mail(Box::new(receipt))));
        }
        return Ok(messages);
    }
    let notice =
        |for_admin: bool| Reversal::of(&payment, effects, &org_name, &customer_name, for_admin);
    if let Some(to) = &payment.receipt_email
        && crate::account::wants_at(s, to, crate::account::EmailKind::PaymentFailures).await
    {
        messages.push((
            "payer".to_owned(),
            Message::Mail(Box::new(notice(false).email(to.clone()))),
        ));
    }
    for admin in org_admins(s, &effects.org).await? {
        messages.push((
            format!("admin:{admin}"),
            Message::Mail(Box::new(notice(true).email(admin))),
        ));
    }
    Ok(messages)
}

/// The org's admins' addresses.
async fn org_admins(s: &Services, org: &OrgSlug) -> Result<Vec<domain::Email>, StoreError> {
    let ids: Vec<_> = s
        .members
        .members_of_org(org)
        .await?
        .into_iter()
        .filter(|(_, m)| m.role == Role::Admin)
        .map(|(id, _)| id)
        .collect();
    let mut emails: Vec<_> = s
        .users
        .get_users(&ids)
        .await?
        .into_iter()
        .map(|u| u.email)
        .collect();
    emails.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(emails)
}

/// `payment.settled`, `payment.returned`, ...: what the transition was, once per transition
/// (`transition_id` lets a consumer drop a second copy, should a delivery be retried).
fn transition_event(payment: &Payment, effects: &PaymentEffects) -> DomainEvent {
    let mut event = notices::payment_event(payment);
    event.kind = notices::event_type(effects.to).to_owned();
    if let Some(detail) = event.detail.as_object_mut() {
        detail.insert("transition_id".into(), json!(effects.id));
        detail.insert("previous_status".into(), json!(effects.from.as_str()));
        detail.insert("gateway_event_id".into(), json!(effects.event_id));
        if let Some(refunded) = effects.refunded {
            detail.insert("refunded".into(), json!(refunded));
        }
        if let Some(restored) = effects.restored {
            detail.insert("balance_restored".into(), json!(restored));
        }
    }
    event
}

/// What a payer or an admin reads when money came back: the payment was returned, lost in a
/// dispute, or failed while settling.
struct Reversal {
    headline: String,
    what: &'static str,
    org_name: String,
    invoice_number: String,
    customer_name: String,
    amount: String,
    method: String,
    date: String,
    payment_id: String,
    restored: Option<String>,
    /// For a refund: all refunds of the payment together.
    refunded: Option<String>,
    for_admin: bool,
}

#[derive(Template)]
#[template(path = "email/payment_reversed.txt")]
struct ReversalText<'a> {
    r: &'a Reversal,
}

#[derive(Template)]
#[template(path = "email/payment_reversed.html")]
struct ReversalHtml<'a> {
    r: &'a Reversal,
}

impl Reversal {
    fn of(
        payment: &Payment,
        effects: &PaymentEffects,
        org_name: &str,
        customer_name: &str,
        for_admin: bool,
    ) -> Reversal {
        let (what, headline) = match effects.to {
            PaymentStatus::Refunded => ("was refunded", "Refund"),
            PaymentStatus::DisputeLost => ("was reversed after a dispute", "Payment reversed"),
            PaymentStatus::Failed => ("failed at the bank", "Bank payment failed"),
            _ => ("was returned by the bank", "Bank payment returned"),
        };
        Reversal {
            headline: format!("{headline} - invoice {}", payment.invoice_number),
            what,
            org_name: org_name.to_owned(),
            invoice_number: payment.invoice_number.to_string(),
            customer_name: customer_name.to_owned(),
            amount: payment.amount.to_string(),
            method: notices::method_label(payment),
            date: effects.at.date().to_string(),
            payment_id: payment.id.to_string(),
            restored: effects.restored.map(|m| m.to_string()),
            refunded: effects
                .refunded
                .filter(|_| effects.to == PaymentStatus::Refunded)
                .map(|m| m.to_string()),
            for_admin,
        }
    }

    fn email(&self, to: domain::Email) -> EmailMessage {
        EmailMessage {
            to,
            subject: self.headline.clone(),
            text: ReversalText { r: self }
                .render()
                .expect("reversal text renders"),
            html: ReversalHtml { r: self }
                .render()
                .expect("reversal html renders"),
        }
    }
}

/// The payment's history of gateway events, oldest first; None for no such payment.
pub async fn payment_history(
    s: &Services,
    org: &OrgSlug,
    payment: &PaymentId,
) -> Result<Option<Vec<HistoryEntry>>, StoreError> {
    if s.payments.get_payment(org, payment).await?.is_none() {
        return Ok(None);
    }
    s.webhooks.payment_history(org, payment).await.map(Some)
}

pub struct RotateCommand {
    pub org: OrgSlug,
    /// The gateway whose notifications it signs; the org's gateway when None.
    pub gateway: Option<String>,
    /// A secret that the gateway made (Stripe and Authorize.Net make their own); Paybridge makes
    /// one when None.
    pub secret: Option<Secret<String>>,
    /// How long the secret before stays accepted; `DEFAULT_GRACE` when None, 0 retires it now.
    pub grace: Option<Duration>,
}

pub struct Rotated {
    pub info: WebhookSecretInfo,
    /// The new secret when Paybridge made it: shown this once, never again.
    pub secret: Option<Secret<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("no such gateway")]
    UnknownGateway,
    #[error("a webhook secret is 16 to 255 printable ASCII characters")]
    InvalidSecret,
    #[error("the grace period is 0 to 168 hours")]
    InvalidGrace,
    #[error("the secret was rotated meanwhile; read it again")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new webhook secret for the org's gateway; the one before stays accepted for the grace
/// period, and the one before that is retired.
pub async fn rotate_secret(s: &Services, cmd: RotateCommand) -> Result<Rotated, RotateError> {
    let current = s
        .gateway
        .name_for(&cmd.org)
        .await
        .map_err(|e| StoreError(e.to_string()))?;
    let gateway = cmd.gateway.unwrap_or_else(|| current.to_owned());
    if gateway != current {
        return Err(RotateError::UnknownGateway);
    }
    let grace = cmd.grace.unwrap_or(DEFAULT_GRACE);
    if grace.is_negative() || grace > MAX_GRACE {
        return Err(RotateError::InvalidGrace);
    }
    let (secret, shown) = match cmd.secret {
        Some(given) => {
            let text = given.expose();
            if !(16..=255).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(RotateError::InvalidSecret);
            }
            (given, None)
        }
        None => {
            let made = Secret::new(format!("{SECRET_PREFIX}{}", s.ids.secret().expose()));
            (made.clone(), Some(made))
        }
    };
    let now = s.clock.now();
    let id = format!("whs_{}", s.ids.ulid());
    match s
        .webhook_secrets
        .rotate_secret(&cmd.org, &gateway, &id, &secret, now + grace, now)
        .await?
    {
        RotateWrite::Rotated(info) => {
            tracing::info!(org = %cmd.org, gateway = %gateway, secret_id = %id, "webhook secret rotated");
            Ok(Rotated {
                info,
                secret: shown,
            })
        }
        RotateWrite::Conflict => Err(RotateError::Conflict),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::MethodSummary;
    use domain::{Currency, InvoiceNumber, PaymentStatus::*};

    fn usd(minor: u64) -> Money {
        Money::from_minor(minor, Currency::Usd).unwrap()
    }

    fn tracked(status: PaymentStatus, refunded: Option<Money>) -> TrackedPayment {
        let at = time::macros::datetime!(2026-11-26 12:00 UTC);
        TrackedPayment {
            payment: Payment {
                id: PaymentId::parse("pay_01JD8X3Q9M6V4W2K7T5R1N0P01").unwrap(),
                org: OrgSlug::parse("demo").unwrap(),
                invoice_number: InvoiceNumber::parse("INV-1").unwrap(),
                customer_id: None,
                amount: usd(10_000),
                allocations: Vec::new(),
                surcharge: usd(300),
                status,
                gateway: "sandbox".into(),
                gateway_ref: Some("ch_1".into()),
                method: Some(MethodSummary {
                    kind: "bank".into(),
                    brand: "Sandbox Bank".into(),
                    last4: "6789".into(),
                }),
                failure: None,
                receipt_email: None,
                created_at: at,
                updated_at: at,
            },
            attempt_open: false,
            refunded,
        }
    }

    fn event(reports: PaymentStatus, refunded: Option<Money>) -> GatewayEvent {
        GatewayEvent {
            id: "evt_1".into(),
            kind: "charge.x".into(),
            reports,
            charge: "ch_1".into(),
            reference: None,
            refunded,
        }
    }

    #[test]
    fn forward_reports_move_and_say_whether_money_came_back() {
        assert_eq!(
            plan(&tracked(Pending, None), &event(Settled, None)),
            Plan::Move {
                to: Settled,
                returns_money: false,
                refunded: None
            }
        );
        assert_eq!(
            plan(&tracked(Settled, None), &event(Returned, None)),
            Plan::Move {
                to: Returned,
                returns_money: true,
                refunded: None
            }
        );
        assert_eq!(
            plan(&tracked(Disputed, None), &event(DisputeWon, None)),
            Plan::Move {
                to: DisputeWon,
                returns_money: false,
                refunded: None
            }
        );
    }

    #[test]
    fn late_and_contradicting_reports_are_ignored() {
        assert_eq!(
            plan(&tracked(Returned, None), &event(Settled, None)),
            Plan::Ignore(Report::Passed)
        );
        assert_eq!(
            plan(
                &tracked(Refunded, Some(usd(10_300))),
                &event(Succeeded, None)
            ),
            Plan::Ignore(Report::Passed)
        );
        assert_eq!(
            plan(&tracked(Failed, None), &event(Succeeded, None)),
            Plan::Ignore(Report::Contradicts)
        );
        assert_eq!(
            plan(&tracked(Settled, None), &event(Settled, None)),
            Plan::Ignore(Report::AlreadyThere)
        );
    }

    #[test]
    fn refunds_are_partial_or_whole_and_only_rise() {
        // No amount: the whole charge, surcharge included.
        assert_eq!(
            plan(&tracked(Settled, None), &event(Refunded, None)),
            Plan::Move {
                to: Refunded,
                returns_money: false,
                refunded: Some(usd(10_300))
            }
        );
        assert_eq!(
            plan(&tracked(Settled, None), &event(Refunded, Some(usd(2_500)))),
            Plan::Move {
                to: Refunded,
                returns_money: false,
                refunded: Some(usd(2_500))
            }
        );
        let partly = tracked(Refunded, Some(usd(2_500)));
        assert_eq!(
            plan(&partly, &event(Refunded, Some(usd(4_000)))),
            Plan::RaiseRefund(usd(4_000))
        );
        assert_eq!(
            plan(&partly, &event(Refunded, Some(usd(2_500)))),
            Plan::Ignore(Report::AlreadyThere)
        );
        assert_eq!(
            plan(&partly, &event(Refunded, Some(usd(1_000)))),
            Plan::Ignore(Report::AlreadyThere),
            "a smaller total is an older event"
        );
        // Never more than was charged; never another currency.
        assert_eq!(
            plan(&partly, &event(Refunded, Some(usd(99_999)))),
            Plan::RaiseRefund(usd(10_300))
        );
        let aud = Money::from_minor(100, Currency::Aud).unwrap();
        assert_eq!(
            plan(&partly, &event(Refunded, Some(aud))),
            Plan::Ignore(Report::Contradicts)
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::seconds(5));
        assert_eq!(backoff(1), Duration::seconds(10));
        assert_eq!(backoff(30), Duration::minutes(10));
    }
}
