//! Future-dated payments and the tick that charges them.
//!
//! A schedule is one invoice, a saved method (with the payer's authority to charge it without
//! them present), a day in the org's time zone and an optional "at most" amount. While it waits
//! it sits in a sparse index by UTC day and shard; the tick reads only what is due, claims each
//! schedule with a conditional write (two ticks never both charge one), charges through the same
//! path as Pay Now under a payment id fixed at the claim, and writes the outcome and the next
//! state conditionally on its claim. A tick that dies after the charge leaves the claim to
//! expire; the next tick takes it over with the same payment id, and the payment path asks the
//! gateway for that reference before anything is charged.

use askama::Template;
use domain::{InvoiceNumber, InvoiceStatus, Money, Org, OrgSlug, PaymentId, ScheduleId, UserId};
use futures::StreamExt;
use time::{Date, Duration, OffsetDateTime};

use crate::Services;
use crate::methods::MethodError;
use crate::pay_now::{PayCommand, PayError, PaySource};
use crate::ports::{
    AccountingError, DUE_SHARDS, DeclineReason, EmailMessage, NewSchedule, Schedule, ScheduleState,
    StoreError, User,
};

/// How long a claim holds a schedule: longer than the tick's Lambda timeout plus a gateway call.
/// A claim older than this is taken over by the next tick.
pub const LEASE: Duration = Duration::minutes(3);
/// When an invoice is busy (another payment in flight) or too many declines were seen lately,
/// the schedule waits this long and tries again, without counting an attempt.
pub const BUSY_WAIT: Duration = Duration::minutes(10);
/// How many due schedules one query page reads.
const PAGE: i32 = 100;
/// How far back the tick looks for days it has not swept (an outage of up to a week).
const CATCH_UP_DAYS: i64 = 7;
/// How far ahead a payer may schedule.
const HORIZON_DAYS: i64 = 366;

pub struct ScheduleCommand {
    pub org: OrgSlug,
    pub user: User,
    pub invoice: String,
    pub method_id: String,
    /// At most this (a decimal string); None: the whole balance on the day.
    pub amount: Option<String>,
    /// `YYYY-MM-DD` in the org's time zone.
    pub date: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// Not a member, not the payer's invoice or method, or no such schedule.
    #[error("no such invoice, method or schedule")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("the invoice is {}", .0.as_str())]
    NotPayable(InvoiceStatus),
    #[error("the amount is more than the balance of {0}")]
    AmountAboveBalance(Money),
    #[error("this org takes only the whole balance of {0}")]
    PartialNotAllowed(Money),
    #[error(
        "this method was saved without the authority to charge it later; save it again and accept the authority"
    )]
    MandateRequired,
    #[error("the invoice has a scheduled payment already ({0}); cancel it first")]
    AlreadyScheduled(ScheduleId),
    #[error("the schedule is {0} and can no longer be cancelled")]
    NotCancellable(&'static str),
    #[error(transparent)]
    Accounting(#[from] AccountingError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<MethodError> for ScheduleError {
    fn from(e: MethodError) -> Self {
        match e {
            MethodError::Store(e) => ScheduleError::Store(e),
            _ => ScheduleError::NotFound,
        }
    }
}

/// When a day's payments run: the org's run hour that day, in its time zone.
pub fn run_time(org: &Org, day: Date) -> OffsetDateTime {
    domain::local_instant(&org.settings.timezone, day, org.settings.autopay.run_hour)
        .or_else(|| domain::local_instant("UTC", day, org.settings.autopay.run_hour))
        .expect("UTC knows every day")
}

/// Today in the org's time zone.
pub fn local_today(org: &Org, now: OffsetDateTime) -> Date {
    domain::local_date(&org.settings.timezone, now).unwrap_or(now.date())
}

/// Schedules a payment of an invoice by the signed-in payer.
pub async fn schedule(s: &Services, cmd: ScheduleCommand) -> Result<Schedule, ScheduleError> {
    let (org, membership) = crate::methods::membership(s, &cmd.org, &cmd.user.id).await?;
    let number = InvoiceNumber::parse(&cmd.invoice).map_err(|_| ScheduleError::NotFound)?;
    let method = domain::MethodId::parse(&cmd.method_id).map_err(|_| ScheduleError::NotFound)?;
    let date = Date::parse(
        &cmd.date,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| ScheduleError::Invalid("date: YYYY-MM-DD".into()))?;
    let now = s.clock.now();
    let today = local_today(&org, now);
    if date < today || date > today + Duration::days(HORIZON_DAYS) {
        return Err(ScheduleError::Invalid(format!(
            "date: from today ({today}) to a year ahead"
        )));
    }
    let read = s
        .accounting
        .read_invoice(&org.slug, &number)
        .await?
        .ok_or(ScheduleError::NotFound)?;
    let invoice = read.invoice;
    if !membership.customer_ids.contains(&invoice.customer_id) {
        return Err(ScheduleError::NotFound);
    }
    if !invoice.is_payable() {
        return Err(ScheduleError::NotPayable(invoice.status));
    }
    let saved =
        crate::methods::for_invoice(s, &org.slug, &cmd.user.id, &method, &invoice.customer_id)
            .await?;
    if saved.mandate.is_none() {
        return Err(ScheduleError::MandateRequired);
    }
    if crate::methods::expired_by(&saved, date) {
        return Err(ScheduleError::Invalid(
            "the card expires before that day; choose another method or an earlier day".into(),
        ));
    }
    let balance = invoice.amount_due;
    let amount = match cmd
        .amount
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        None => None,
        Some(text) => {
            let asked = Money::parse(text, balance.currency())
                .map_err(|e| ScheduleError::Invalid(format!("amount: {e}")))?;
            if asked.is_zero() {
                return Err(ScheduleError::Invalid("amount: more than zero".into()));
            }
            if asked > balance {
                return Err(ScheduleError::AmountAboveBalance(balance));
            }
            if asked < balance && !org.settings.allow_partial {
                return Err(ScheduleError::PartialNotAllowed(balance));
            }
            (asked < balance).then_some(asked)
        }
    };
    // Today's run hour may have passed: then it runs at the next tick.
    let due_at = run_time(&org, date).max(now);
    let schedule = Schedule {
        id: ScheduleId::from_ulid(&s.ids.ulid()).expect("ids mint ULIDs"),
        org: org.slug.clone(),
        user: cmd.user.id.clone(),
        invoice: number,
        customer: invoice.customer_id,
        method,
        secondary: None,
        amount,
        run_on: date,
        due_at,
        enrolment: None,
        state: ScheduleState::Scheduled,
        attempts: 0,
        on_secondary: false,
        payment: None,
        outcome: None,
        notice_at: None,
        version: 0,
        created_at: now,
        updated_at: now,
    };
    match s.schedules.create_schedule(&schedule).await? {
        NewSchedule::Created => Ok(schedule),
        NewSchedule::InvoiceTaken(id) => Err(ScheduleError::AlreadyScheduled(id)),
        NewSchedule::MethodGone => Err(ScheduleError::NotFound),
    }
}

/// The payer's schedules in the org, newest first.
pub async fn list(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
) -> Result<Vec<Schedule>, ScheduleError> {
    crate::methods::membership(s, org, user).await?;
    Ok(s.schedules.schedules_of(org, user).await?)
}

/// Cancels a schedule that is still waiting (not while a tick charges it).
pub async fn cancel(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
    id: &ScheduleId,
) -> Result<Schedule, ScheduleError> {
    crate::methods::membership(s, org, user).await?;
    let seen = s
        .schedules
        .get_schedule(org, user, id)
        .await?
        .ok_or(ScheduleError::NotFound)?;
    if seen.state != ScheduleState::Scheduled {
        return Err(ScheduleError::NotCancellable(seen.state.as_str()));
    }
    let next = ended(
        &seen,
        ScheduleState::Cancelled,
        "cancelled by the payer",
        s.clock.now(),
    );
    if s.schedules.move_schedule(&seen, &next).await? {
        Ok(next)
    } else {
        // A tick claimed it meanwhile.
        Err(ScheduleError::NotCancellable("running"))
    }
}

/// After a payment of the invoice by other means: a schedule of an invoice that is now paid or
/// void is cancelled (Wise-Pay's "allow payment when scheduled"). One read when there is none.
pub async fn invoice_paid(
    s: &Services,
    org: &OrgSlug,
    invoice: &InvoiceNumber,
) -> Result<(), ScheduleError> {
    let Some((user, id)) = s.schedules.active_for_invoice(org, invoice).await? else {
        return Ok(());
    };
    let read = s.accounting.read_invoice(org, invoice).await?;
    if read.is_some_and(|r| r.invoice.is_payable()) {
        return Ok(()); // Paid in part: the schedule pays the rest ("at most" its amount).
    }
    let Some(seen) = s.schedules.get_schedule(org, &user, &id).await? else {
        return Ok(());
    };
    if seen.state == ScheduleState::Scheduled {
        let next = ended(&seen, ScheduleState::Cancelled, "paid", s.clock.now());
        s.schedules.move_schedule(&seen, &next).await?;
    }
    Ok(())
}

/// The schedule moved to a final state.
fn ended(seen: &Schedule, state: ScheduleState, outcome: &str, now: OffsetDateTime) -> Schedule {
    Schedule {
        state,
        outcome: Some(outcome.to_owned()),
        notice_at: None,
        version: seen.version + 1,
        updated_at: now,
        ..seen.clone()
    }
}

/// The schedule waiting again, for `due_at`.
fn waiting(seen: &Schedule, due_at: OffsetDateTime, now: OffsetDateTime) -> Schedule {
    Schedule {
        state: ScheduleState::Scheduled,
        due_at,
        payment: None,
        version: seen.version + 1,
        updated_at: now,
        ..seen.clone()
    }
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    /// Schedules this tick claimed (fresh or taken over).
    pub claimed: u32,
    pub paid: u32,
    /// Ended without payment (no retry left).
    pub failed: u32,
    /// Set to try again later (a soft decline, the secondary method, a busy invoice).
    pub retried: u32,
    /// Not charged: paid elsewhere, void.
    pub skipped: u32,
    /// Advance notices sent.
    pub noticed: u32,
    /// Claimed, but the outcome is not known yet (the gateway did not answer): the next tick
    /// takes it over.
    pub unresolved: u32,
    /// Schedules another tick claimed first.
    pub lost: u32,
    /// Items the due queries read: what the tick costs.
    pub items_read: u32,
    /// Whether it stopped early for its deadline (the next tick carries on).
    pub stopped_early: bool,
    /// Holders of cards that expire within 30 days who were told (the day's first tick).
    pub cards_told: u32,
    /// Auto-pay enrolments whose customers' invoices were looked at.
    pub looked: u32,
    /// Schedules auto-pay made for new invoices.
    pub auto_scheduled: u32,
    /// New invoices above an enrolment's cap, left for the payer.
    pub above_cap: u32,
    /// How long the longest-waiting due schedule this tick found had been due (its notice or
    /// its charge), in seconds; 0 when none was. It stays within a tick's interval while ticks
    /// keep up; the deployment alarms on it (the tick's log line carries it).
    pub oldest_due_secs: u64,
}

impl TickReport {
    fn add(&mut self, other: &TickReport) {
        self.claimed += other.claimed;
        self.paid += other.paid;
        self.failed += other.failed;
        self.retried += other.retried;
        self.skipped += other.skipped;
        self.noticed += other.noticed;
        self.unresolved += other.unresolved;
        self.lost += other.lost;
    }
}

/// How many schedules one tick carries at once.
const AT_ONCE: usize = 8;

/// Charges what is due at `now`, claiming nothing after `deadline` (the Lambda's time left).
pub async fn tick(
    s: &Services,
    now: OffsetDateTime,
    deadline: Option<std::time::Instant>,
) -> Result<TickReport, StoreError> {
    let mut report = TickReport::default();
    let today = now.date();
    let floor = today - Duration::days(CATCH_UP_DAYS);
    let from = s
        .schedules
        .swept_through()
        .await?
        .map_or(today - Duration::days(1), |d| {
            d.min(today - Duration::days(1))
        })
        .max(floor);
    let mut day = from;
    'days: while day <= today {
        for shard in 0..DUE_SHARDS {
            loop {
                let page = s.schedules.due_schedules(day, shard, now, PAGE).await?;
                report.items_read += page.items_read as u32;
                for due in &page.schedules {
                    let waited = (now - due.next_time()).whole_seconds().max(0) as u64;
                    report.oldest_due_secs = report.oldest_due_secs.max(waited);
                }
                let full = page.items_read as i32 >= PAGE;
                for enrolment in page.enrolments {
                    match crate::autopay::look(s, &enrolment, now).await {
                        Ok(Some(looked)) => {
                            report.looked += 1;
                            report.auto_scheduled += looked.scheduled;
                            report.above_cap += looked.above_cap;
                        }
                        Ok(None) => report.lost += 1,
                        Err(e) => {
                            tracing::error!(enrolment = %enrolment.id, error = %e, "auto-pay look failed; the next one retries");
                        }
                    }
                }
                // A few at once: each is mostly waiting on DynamoDB and the gateway.
                let past_deadline = || deadline.is_some_and(|d| std::time::Instant::now() >= d);
                let steps = futures::stream::iter(page.schedules)
                    .take_while(|_| std::future::ready(!past_deadline()))
                    .map(|schedule| run_one(s, schedule, now))
                    .buffer_unordered(AT_ONCE)
                    .collect::<Vec<TickReport>>()
                    .await;
                for step in &steps {
                    report.add(step);
                }
                if past_deadline() {
                    report.stopped_early = true;
                    break 'days;
                }
                // A full page may have more behind it; what was claimed has left the query.
                if !full {
                    break;
                }
            }
        }
        day += Duration::days(1);
    }
    if !report.stopped_early {
        s.schedules.set_swept_through(today).await?;
    }
    Ok(report)
}

/// Claims one due schedule and carries it one step: an advance notice, or a charge.
async fn run_one(s: &Services, seen: Schedule, now: OffsetDateTime) -> TickReport {
    let id = seen.id.clone();
    let mut report = TickReport::default();
    if let Err(e) = step(s, seen, now, &mut report).await {
        // The claim expires and the next tick takes it over.
        tracing::error!(schedule = %id, error = %e, "schedule step failed");
    }
    report
}

async fn step(
    s: &Services,
    seen: Schedule,
    now: OffsetDateTime,
    report: &mut TickReport,
) -> Result<(), ScheduleError> {
    if seen.next_time() > now || seen.state.is_final() {
        return Ok(()); // An index entry a moment stale.
    }
    let org = s.orgs.get_org(&seen.org).await?;
    let payer = s.users.get_user(&seen.user).await?;
    let (Some(org), Some(payer)) = (org, payer) else {
        let next = ended(&seen, ScheduleState::Failed, "payer_or_org_gone", now);
        s.schedules.move_schedule(&seen, &next).await?;
        report.failed += 1;
        return Ok(());
    };
    let notice_due = seen.state == ScheduleState::Scheduled
        && seen.notice_at.is_some_and(|at| at <= now)
        && seen.due_at > now;
    if notice_due {
        let next = Schedule {
            notice_at: None,
            version: seen.version + 1,
            updated_at: now,
            ..seen.clone()
        };
        if s.schedules.move_schedule(&seen, &next).await? {
            tell(s, &org, &payer, &next, Told::Upcoming).await;
            report.noticed += 1;
        } else {
            report.lost += 1;
        }
        return Ok(());
    }
    // Claim: a fresh attempt gets its payment id now; a takeover keeps the one it had.
    let takeover = seen.state == ScheduleState::Running;
    let payment = match (&seen.payment, takeover) {
        (Some(id), true) => id.clone(),
        _ => PaymentId::from_ulid(&s.ids.ulid()).expect("ids mint ULIDs"),
    };
    let claimed = Schedule {
        state: ScheduleState::Running,
        due_at: now + LEASE,
        payment: Some(payment.clone()),
        attempts: if takeover {
            seen.attempts
        } else {
            seen.attempts + 1
        },
        notice_at: None,
        version: seen.version + 1,
        updated_at: now,
        ..seen.clone()
    };
    if !s.schedules.move_schedule(&seen, &claimed).await? {
        report.lost += 1;
        return Ok(());
    }
    report.claimed += 1;
    let command = PayCommand {
        org: claimed.org.clone(),
        invoice: claimed.invoice.clone(),
        payment_id: payment,
        resumed: takeover,
        source: PaySource::Saved {
            user: claimed.user.clone(),
            method: claimed.current_method().clone(),
        },
        amount: claimed.amount.map(Money::amount_string),
        amount_at_most: true,
        receipt_email: Some(payer.email.clone()),
        receipt_asked: false,
        client: None,
    };
    let result = crate::pay_now::pay(s, command).await;
    let (next, told) = match outcome(&org, &claimed, result, takeover, now) {
        Some(decided) => decided,
        None => {
            report.unresolved += 1;
            return Ok(()); // The claim expires; the next tick asks the gateway.
        }
    };
    if !s.schedules.move_schedule(&claimed, &next).await? {
        // Our claim expired and another tick took over: it records the outcome.
        report.lost += 1;
        return Ok(());
    }
    match next.state {
        ScheduleState::Succeeded => report.paid += 1,
        ScheduleState::Failed => report.failed += 1,
        ScheduleState::Skipped => report.skipped += 1,
        _ => report.retried += 1,
    }
    if let Some(told) = told {
        tell(s, &org, &payer, &next, told).await;
    }
    Ok(())
}

/// What the payer is told about a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Upcoming,
    Skipped,
    Retrying,
    SecondaryNext,
    Failed,
}

fn soft(reason: DeclineReason) -> bool {
    matches!(
        reason,
        DeclineReason::Generic | DeclineReason::InsufficientFunds
    )
}

/// The schedule's next state after a charge, and what to tell the payer; None when the outcome
/// is not known yet (the claim stays, to be taken over).
fn outcome(
    org: &Org,
    claimed: &Schedule,
    result: Result<crate::payments::Payment, PayError>,
    takeover: bool,
    now: OffsetDateTime,
) -> Option<(Schedule, Option<Told>)> {
    match result {
        // The receipt went out with the payment.
        Ok(payment) => Some((
            Schedule {
                payment: Some(payment.id),
                ..ended(claimed, ScheduleState::Succeeded, "paid", now)
            },
            None,
        )),
        Err(PayError::NotPayable(status)) => {
            let why = match status {
                InvoiceStatus::Void => "void",
                _ => "paid",
            };
            Some((
                ended(claimed, ScheduleState::Skipped, why, now),
                Some(Told::Skipped),
            ))
        }
        Err(PayError::Declined(payment, reason)) => {
            if takeover && reason == DeclineReason::InvalidToken && payment.gateway_ref.is_none() {
                // Taken over, and the gateway never saw our reference: nothing was charged.
                // A new attempt once the dead attempt's invoice lock has gone.
                return Some((
                    Schedule {
                        attempts: claimed.attempts.saturating_sub(1),
                        ..waiting(claimed, now + BUSY_WAIT, now)
                    },
                    None,
                ));
            }
            let code = reason.code().to_owned();
            let retries = &org.settings.autopay.retry_days;
            let retry = (soft(reason) && !claimed.on_secondary)
                .then(|| retries.get(claimed.attempts.saturating_sub(1) as usize))
                .flatten();
            if let Some(days) = retry {
                let day = local_today(org, now) + Duration::days(i64::from(*days));
                let next = Schedule {
                    outcome: Some(code),
                    ..waiting(claimed, run_time(org, day), now)
                };
                return Some((next, Some(Told::Retrying)));
            }
            if claimed.secondary.is_some() && !claimed.on_secondary {
                let next = Schedule {
                    on_secondary: true,
                    outcome: Some(code),
                    ..waiting(claimed, now, now)
                };
                return Some((next, Some(Told::SecondaryNext)));
            }
            Some((
                ended(claimed, ScheduleState::Failed, &code, now),
                Some(Told::Failed),
            ))
        }
        // Another payment is in flight, or declines were many lately: not an attempt.
        Err(PayError::InvoiceBusy | PayError::TooManyAttempts(_)) => Some((
            Schedule {
                attempts: claimed.attempts.saturating_sub(1),
                ..waiting(claimed, now + BUSY_WAIT, now)
            },
            None,
        )),
        Err(PayError::NotFound | PayError::MethodNotFound) => Some((
            ended(
                claimed,
                ScheduleState::Failed,
                "method_or_invoice_unavailable",
                now,
            ),
            Some(Told::Failed),
        )),
        Err(PayError::PartialNotAllowed(_)) => Some((
            ended(claimed, ScheduleState::Failed, "partial_not_allowed", now),
            Some(Told::Failed),
        )),
        Err(
            PayError::Unresolved(_)
            | PayError::GatewayUnavailable
            | PayError::Accounting(_)
            | PayError::Store(_),
        ) => None,
        // A schedule pays one invoice: these come only from several at once, never here.
        Err(
            PayError::InvalidAmount(_)
            | PayError::ZeroAmount
            | PayError::AmountAboveBalance(_)
            | PayError::Allocation(_)
            | PayError::TooManyInvoices(_)
            | PayError::SplitChanged,
        ) => Some((
            ended(claimed, ScheduleState::Failed, "amount_invalid", now),
            Some(Told::Failed),
        )),
    }
}

#[derive(Template)]
#[template(path = "email/schedule_notice.txt")]
struct NoticeText<'a> {
    headline: &'a str,
    lines: &'a [String],
    link: Option<&'a str>,
    link_text: &'a str,
    org_name: &'a str,
}

#[derive(Template)]
#[template(path = "email/schedule_notice.html")]
struct NoticeHtml<'a> {
    headline: &'a str,
    lines: &'a [String],
    link: Option<&'a str>,
    link_text: &'a str,
    org_name: &'a str,
}

/// Emails the payer what happened to the schedule and what happens next. A failure to send is
/// logged: it never undoes what was written.
async fn tell(s: &Services, org: &Org, payer: &User, x: &Schedule, told: Told) {
    use crate::account::EmailKind;
    let kind = match told {
        Told::Upcoming => Some(EmailKind::UpcomingDebits),
        Told::Retrying | Told::SecondaryNext | Told::Failed => Some(EmailKind::PaymentFailures),
        Told::Skipped => None,
    };
    if let Some(kind) = kind
        && !crate::account::wants(s, &payer.id, kind).await
    {
        return;
    }
    let amount = x
        .amount
        .map(|a| a.to_string())
        .unwrap_or_else(|| "the balance".to_owned());
    let invoice = &x.invoice;
    let pay_link = format!("{}/pay/{}/{}", s.public_url, org.slug, invoice);
    let (subject, headline, lines, link_text) = match told {
        Told::Upcoming => (
            format!("{} will be debited on {}", invoice, x.run_on),
            format!("A payment of invoice {invoice} is coming up"),
            vec![format!(
                "On {} we will charge {amount} of invoice {invoice} to your saved method, as you arranged with {}.",
                x.run_on, org.name
            )],
            "See or pay the invoice now",
        ),
        Told::Skipped => (
            format!("Invoice {invoice}: nothing was charged"),
            format!("Invoice {invoice} was not charged"),
            vec![match x.outcome.as_deref() {
                Some("void") => format!(
                    "{} cancelled invoice {invoice}, so the scheduled payment did not run.",
                    org.name
                ),
                _ => format!(
                    "Invoice {invoice} was paid already, so the scheduled payment did not run."
                ),
            }],
            "See the invoice",
        ),
        Told::Retrying => (
            format!("Invoice {invoice}: the payment was declined; we will try again"),
            format!("The payment of invoice {invoice} was declined"),
            vec![
                format!(
                    "Your bank declined the scheduled payment ({}).",
                    reason_text(x)
                ),
                format!(
                    "We will try again on {}. To pay another way now, use the link below.",
                    local_day(org, x.due_at)
                ),
            ],
            "Pay the invoice now",
        ),
        Told::SecondaryNext => (
            format!("Invoice {invoice}: the payment was declined; trying your other method"),
            format!("The payment of invoice {invoice} was declined"),
            vec![
                format!("Your primary method was declined ({}).", reason_text(x)),
                "We will try your secondary method next, within the hour.".to_owned(),
            ],
            "Pay the invoice now",
        ),
        Told::Failed
            if x.outcome.as_deref() == Some(DeclineReason::AuthenticationRequired.code()) =>
        {
            (
                format!("Invoice {invoice}: please confirm the payment with your bank"),
                format!("Your bank wants you to confirm the payment of invoice {invoice}"),
                vec![
                    format!(
                        "We tried to charge {amount} of invoice {invoice} to your saved card, and your bank asked for you to confirm it, which only you can do."
                    ),
                    "Pay it with the link below: your bank may ask you to confirm on its own page, and then the payment goes through.".to_owned(),
                ],
                "Confirm and pay",
            )
        }
        Told::Failed => (
            format!("Invoice {invoice}: the scheduled payment failed"),
            format!("The scheduled payment of invoice {invoice} failed"),
            vec![
                format!(
                    "The payment could not be made ({}), and it will not be tried again.",
                    reason_text(x)
                ),
                format!(
                    "Please pay invoice {invoice} with the link below, or contact {}.",
                    org.name
                ),
            ],
            "Pay the invoice now",
        ),
    };
    let notice = Notice {
        subject,
        headline: &headline,
        lines: &lines,
        link: (link_text, &pay_link),
    };
    send_notice(s, org, payer, notice).await;
}

/// An email about scheduled or automatic payments: a headline, what happened, a link.
struct Notice<'a> {
    subject: String,
    headline: &'a str,
    lines: &'a [String],
    /// The button's words and address.
    link: (&'a str, &'a str),
}

async fn send_notice(s: &Services, org: &Org, payer: &User, notice: Notice<'_>) {
    let (link_text, link) = notice.link;
    let text = NoticeText {
        headline: notice.headline,
        lines: notice.lines,
        link: Some(link),
        link_text,
        org_name: &org.name,
    };
    let html = NoticeHtml {
        headline: notice.headline,
        lines: notice.lines,
        link: Some(link),
        link_text,
        org_name: &org.name,
    };
    let message = EmailMessage {
        to: payer.email.clone(),
        subject: notice.subject,
        text: text.render().expect("the schedule notice renders"),
        html: html.render().expect("the schedule notice renders"),
    };
    if let Err(e) = s.mailer.send(&message).await {
        tracing::error!(org = %org.slug, error = %e, "schedule notice not sent");
    }
}

/// Tells the payer that auto-pay left an invoice above the cap for them to pay.
pub async fn tell_above_cap(
    s: &Services,
    org: &Org,
    payer: &User,
    invoice: &domain::Invoice,
    cap: Option<Money>,
) {
    let number = &invoice.number;
    let cap = cap.map(|c| c.to_string()).unwrap_or_default();
    let lines = [format!(
        "Invoice {number} is for {}, above the {cap} limit of your automatic payments, so it will not be charged automatically. Please pay it yourself.",
        invoice.amount_due
    )];
    let link = format!("{}/pay/{}/{number}", s.public_url, org.slug);
    let headline = format!("Invoice {number} is above your auto-pay limit");
    let notice = Notice {
        subject: format!("Invoice {number} needs your payment"),
        headline: &headline,
        lines: &lines,
        link: ("Pay the invoice", &link),
    };
    send_notice(s, org, payer, notice).await;
}

fn reason_text(x: &Schedule) -> String {
    match x.outcome.as_deref().and_then(DeclineReason::parse) {
        Some(reason) => reason.message().trim_end_matches('.').to_lowercase(),
        None => x
            .outcome
            .clone()
            .unwrap_or_else(|| "unknown".into())
            .replace('_', " "),
    }
}

fn local_day(org: &Org, at: OffsetDateTime) -> Date {
    local_today(org, at)
}

/// Warns the payer that the card auto-pay will charge has expired by the payment's day.
pub async fn tell_card_expires(s: &Services, org: &Org, payer: &User, x: &Schedule, card: &str) {
    if !crate::account::wants(s, &payer.id, crate::account::EmailKind::ExpiringCards).await {
        return;
    }
    let invoice = &x.invoice;
    let lines = [
        format!(
            "Your {card} expires before {}, the day the automatic payment of invoice {invoice} is due.",
            x.run_on
        ),
        "Save a new card (or a bank account) for automatic payments before then, or the payment will be declined.".to_owned(),
    ];
    let link = format!("{}/portal/orgs/{}/methods", s.public_url, org.slug);
    let headline = "Your card expires before a payment is due".to_owned();
    let notice = Notice {
        subject: format!("Your card expires before the payment of {invoice}"),
        headline: &headline,
        lines: &lines,
        link: ("Update my payment methods", &link),
    };
    send_notice(s, org, payer, notice).await;
}
