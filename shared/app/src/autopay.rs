//! Automatic payments: a customer's enrolment names the payer whose saved methods pay (a
//! primary and, optionally, a secondary), a rule for the day, and an optional per-invoice cap.
//! The tick looks for the customer's open invoices now and then (the enrolment waits in the
//! same due index as schedules) and makes one schedule per new invoice, no sooner than the org's
//! processing delay after it first saw it, with an advance notice before the debit.

use domain::{CustomerId, EnrolmentId, MethodId, Money, Org, OrgSlug, ScheduleId};
use time::{Date, Duration, OffsetDateTime};

use crate::Services;
use crate::ports::{
    AutoPayRule, Enrolment, NewSchedule, Schedule, ScheduleState, Seen, StoreError, User,
};
use crate::schedules::{ScheduleError, local_today, run_time};

/// How often the tick looks for new invoices of an enrolled customer.
pub const LOOK_EVERY: Duration = Duration::hours(1);

/// The day a rule gives for an invoice; never before `today`.
pub fn rule_day(rule: AutoPayRule, issue: Date, due: Date, today: Date) -> Date {
    let day = match rule {
        AutoPayRule::OnDueDate => due,
        AutoPayRule::DaysAfterInvoice { days } => issue + Duration::days(i64::from(days)),
        AutoPayRule::DayOfMonth { day } => {
            let in_month = |year: i32, month: time::Month| {
                let last = time::util::days_in_month(month, year);
                Date::from_calendar_date(year, month, day.clamp(1, last))
                    .expect("a day of the month")
            };
            let this = in_month(issue.year(), issue.month());
            if this >= issue {
                this
            } else {
                let next = issue.month().next();
                let year = if next == time::Month::January {
                    issue.year() + 1
                } else {
                    issue.year()
                };
                in_month(year, next)
            }
        }
    };
    day.max(today)
}

/// Who acts on an enrolment: the payer themselves, or the org's admin (a signed-in admin or
/// the org's API key, checked by the caller).
#[derive(Debug, Clone)]
pub enum Actor {
    Payer(User),
    Admin,
}

pub struct EnrolCommand {
    pub org: OrgSlug,
    pub customer: String,
    pub actor: Actor,
    /// The payer whose methods pay (the actor, when a payer enrols themselves).
    pub payer: User,
    /// None (an admin's enrolment): the payer's default method.
    pub method_id: Option<String>,
    pub secondary_method_id: Option<String>,
    pub rule: AutoPayRule,
    /// A decimal string in the org's currency.
    pub cap: Option<String>,
    pub locked: bool,
}

/// Enrols a customer (or changes its enrolment). A payer may enrol a customer they pay for
/// where the org allows; an admin may enrol any customer for one of its payers, and lock it.
pub async fn enrol(s: &Services, cmd: EnrolCommand) -> Result<Enrolment, ScheduleError> {
    let by_admin = matches!(cmd.actor, Actor::Admin);
    let payer = cmd.payer;
    let customer = CustomerId::parse(cmd.customer.trim()).map_err(|_| ScheduleError::NotFound)?;
    let (org, payer_membership) = crate::methods::membership(s, &cmd.org, &payer.id).await?;
    if !payer_membership.customer_ids.contains(&customer) {
        return Err(ScheduleError::NotFound);
    }
    if !by_admin && !org.settings.autopay.payers_may_enrol {
        return Err(ScheduleError::Invalid(
            "this organisation sets up automatic payments itself; ask it to".into(),
        ));
    }
    let existing = s.enrolments.get_enrolment(&org.slug, &customer).await?;
    if let Some(e) = &existing
        && e.locked
        && !by_admin
    {
        return Err(ScheduleError::Invalid(
            "the organisation set up and locked this enrolment; ask it to change it".into(),
        ));
    }
    let methods = crate::methods::in_order(s, &org.slug, &payer.id).await?;
    let usable = |id: &MethodId| {
        methods
            .iter()
            .find(|m| m.id == *id && m.customer_ids.contains(&customer))
            .ok_or(ScheduleError::NotFound)
            .and_then(|m| {
                if m.mandate.is_some() {
                    Ok(m.id.clone())
                } else {
                    Err(ScheduleError::MandateRequired)
                }
            })
    };
    let parse = |text: &str| MethodId::parse(text).map_err(|_| ScheduleError::NotFound);
    let method = match cmd.method_id.as_deref() {
        Some(text) => usable(&parse(text)?)?,
        None => usable(
            &methods
                .iter()
                .find(|m| m.is_default)
                .map(|m| m.id.clone())
                .ok_or(ScheduleError::MandateRequired)?,
        )?,
    };
    let secondary = cmd
        .secondary_method_id
        .as_deref()
        .map(|t| parse(t).and_then(|id| usable(&id)))
        .transpose()?
        .filter(|m| *m != method);
    let cap = cmd
        .cap
        .as_deref()
        .map(|text| {
            Money::parse(text, org.settings.default_currency)
                .map_err(|e| ScheduleError::Invalid(format!("cap: {e}")))
        })
        .transpose()?;
    match cmd.rule {
        AutoPayRule::DaysAfterInvoice { days } if days > 90 => {
            return Err(ScheduleError::Invalid("rule.days: 0 to 90".into()));
        }
        AutoPayRule::DayOfMonth { day } if !(1..=31).contains(&day) => {
            return Err(ScheduleError::Invalid("rule.day: 1 to 31".into()));
        }
        _ => {}
    }
    let now = s.clock.now();
    let enrolment = Enrolment {
        id: existing.as_ref().map_or_else(
            || EnrolmentId::from_ulid(&s.ids.ulid()).expect("ids mint ULIDs"),
            |e| e.id.clone(),
        ),
        org: org.slug.clone(),
        customer,
        user: payer.id.clone(),
        method,
        secondary,
        rule: cmd.rule,
        cap,
        by_admin: by_admin || existing.as_ref().is_some_and(|e| e.by_admin),
        locked: by_admin && cmd.locked,
        // The next tick looks for invoices.
        look_at: now,
        version: existing.as_ref().map_or(0, |e| e.version + 1),
        created_at: existing.as_ref().map_or(now, |e| e.created_at),
        updated_at: now,
    };
    if let Some(old) = &existing
        && old.user != enrolment.user
    {
        return Err(ScheduleError::Invalid(
            "another payer's methods pay this customer; end that enrolment first".into(),
        ));
    }
    if s.enrolments
        .put_enrolment(&enrolment, existing.as_ref())
        .await?
    {
        Ok(enrolment)
    } else {
        Err(StoreError("the enrolment changed meanwhile; try again".into()).into())
    }
}

/// The customer's enrolment, for a payer who pays for it or the org's admin.
pub async fn get(
    s: &Services,
    org: &OrgSlug,
    actor: &Actor,
    customer: &str,
) -> Result<Enrolment, ScheduleError> {
    let customer = CustomerId::parse(customer).map_err(|_| ScheduleError::NotFound)?;
    if let Actor::Payer(user) = actor {
        let (_, membership) = crate::methods::membership(s, org, &user.id).await?;
        if !membership.customer_ids.contains(&customer) {
            return Err(ScheduleError::NotFound);
        }
    }
    s.enrolments
        .get_enrolment(org, &customer)
        .await?
        .ok_or(ScheduleError::NotFound)
}

/// Ends an enrolment (not a locked one, for a payer). Schedules it made already stay: the
/// payer cancels those one by one.
pub async fn end(
    s: &Services,
    org: &OrgSlug,
    actor: &Actor,
    customer: &str,
) -> Result<(), ScheduleError> {
    let enrolment = get(s, org, actor, customer).await?;
    if enrolment.locked && matches!(actor, Actor::Payer(_)) {
        return Err(ScheduleError::Invalid(
            "the organisation set up and locked this enrolment; ask it to end it".into(),
        ));
    }
    if s.enrolments.delete_enrolment(&enrolment).await? {
        Ok(())
    } else {
        Err(StoreError("the enrolment changed meanwhile; try again".into()).into())
    }
}

/// One of the payer's customers as the auto-pay page shows it.
#[derive(Debug, Clone)]
pub struct CustomerAutoPay {
    pub customer: CustomerId,
    /// From one of its open invoices; the id when it has none.
    pub name: String,
    pub enrolment: Option<Enrolment>,
    /// What is open now (the first look pays these).
    pub open_invoices: usize,
}

/// What the payer's auto-pay page shows.
#[derive(Debug, Clone)]
pub struct Overview {
    pub org: Org,
    pub customers: Vec<CustomerAutoPay>,
    /// The payer's saved methods, default first.
    pub methods: Vec<crate::ports::SavedMethod>,
}

/// The org, each customer the payer pays for with its enrolment, and the payer's methods: the
/// org and membership (2 reads) and the methods (1 query), then per customer its enrolment and
/// its open invoices, together.
pub async fn overview(
    s: &Services,
    org: &OrgSlug,
    user: &domain::UserId,
) -> Result<Overview, ScheduleError> {
    let (org, membership) = crate::methods::membership(s, org, user).await?;
    let methods = crate::methods::in_order(s, &org.slug, user).await?;
    let mut customers = Vec::with_capacity(membership.customer_ids.len());
    for customer in membership.customer_ids {
        let (enrolment, open) = futures::join!(
            s.enrolments.get_enrolment(&org.slug, &customer),
            s.accounting.open_invoices(&org.slug, &customer)
        );
        let open = open?;
        customers.push(CustomerAutoPay {
            name: open
                .first()
                .map_or_else(|| customer.to_string(), |i| i.customer_name.clone()),
            open_invoices: open.len(),
            enrolment: enrolment?,
            customer,
        });
    }
    Ok(Overview {
        org,
        customers,
        methods,
    })
}

/// What one look at an enrolled customer's invoices did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Looked {
    pub scheduled: u32,
    pub above_cap: u32,
}

/// The tick's step for an enrolment whose time has come: claims it (the next look an hour
/// on), then makes a schedule for each open invoice auto-pay has not seen. An invoice is seen
/// once, ever: a schedule that ends (paid, failed, cancelled) is never made again by auto-pay.
pub async fn look(
    s: &Services,
    seen: &Enrolment,
    now: OffsetDateTime,
) -> Result<Option<Looked>, ScheduleError> {
    let next = Enrolment {
        look_at: now + LOOK_EVERY,
        version: seen.version + 1,
        updated_at: now,
        ..seen.clone()
    };
    if !s.enrolments.move_enrolment(seen, &next).await? {
        return Ok(None); // Another tick has it.
    }
    let (Some(org), Some(payer)) = (
        s.orgs.get_org(&seen.org).await?,
        s.users.get_user(&seen.user).await?,
    ) else {
        return Ok(Some(Looked::default()));
    };
    let mut looked = Looked::default();
    let primary = s
        .methods
        .get_method(&seen.org, &seen.user, &seen.method)
        .await?;
    for invoice in s
        .accounting
        .open_invoices(&seen.org, &seen.customer)
        .await?
    {
        if s.enrolments.mark_seen(seen, &invoice.number, now).await? == Seen::Before {
            continue;
        }
        if seen.cap.is_some_and(|cap| invoice.amount_due > cap) {
            looked.above_cap += 1;
            crate::schedules::tell_above_cap(s, &org, &payer, &invoice, seen.cap).await;
            continue;
        }
        let schedule = auto_schedule(s, &org, seen, &invoice, now);
        match s.schedules.create_schedule(&schedule).await? {
            NewSchedule::Created => {
                looked.scheduled += 1;
                if let Some(card) = primary
                    .as_ref()
                    .filter(|m| crate::methods::expired_by(m, schedule.run_on))
                {
                    let label = crate::notices::summary_label(&card.summary());
                    crate::schedules::tell_card_expires(s, &org, &payer, &schedule, &label).await;
                }
            }
            // The payer scheduled it themselves, or removed the method: theirs to pay.
            NewSchedule::InvoiceTaken(_) | NewSchedule::MethodGone => {}
        }
    }
    Ok(Some(looked))
}

/// The schedule auto-pay makes for an invoice first seen `now`.
fn auto_schedule(
    s: &Services,
    org: &Org,
    e: &Enrolment,
    invoice: &domain::Invoice,
    now: OffsetDateTime,
) -> Schedule {
    let settings = &org.settings.autopay;
    let today = local_today(org, now);
    let day = rule_day(e.rule, invoice.issue_date, invoice.due_date, today);
    let earliest = now + Duration::hours(i64::from(settings.processing_delay_hours));
    let due_at = run_time(org, day).max(earliest);
    let notice_days = i64::from(settings.advance_notice_days);
    let notice_at = (notice_days > 0).then(|| (due_at - Duration::days(notice_days)).max(now));
    Schedule {
        id: ScheduleId::from_ulid(&s.ids.ulid()).expect("ids mint ULIDs"),
        org: e.org.clone(),
        user: e.user.clone(),
        invoice: invoice.number.clone(),
        customer: e.customer.clone(),
        method: e.method.clone(),
        secondary: e.secondary.clone(),
        amount: None,
        run_on: local_today(org, due_at),
        due_at,
        enrolment: Some(e.id.clone()),
        state: ScheduleState::Scheduled,
        attempts: 0,
        on_secondary: false,
        payment: None,
        outcome: None,
        notice_at,
        version: 0,
        created_at: now,
        updated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn rules_give_their_days_and_never_the_past() {
        let today = date!(2026 - 01 - 10);
        let (issue, due) = (date!(2026 - 01 - 12), date!(2026 - 02 - 11));
        assert_eq!(rule_day(AutoPayRule::OnDueDate, issue, due, today), due);
        let after = AutoPayRule::DaysAfterInvoice { days: 7 };
        assert_eq!(rule_day(after, issue, due, today), date!(2026 - 01 - 19));
        let fifth = AutoPayRule::DayOfMonth { day: 5 };
        assert_eq!(
            rule_day(fifth, issue, due, today),
            date!(2026 - 02 - 05),
            "next month's 5th"
        );
        // Day 31 in February is its last day; in a leap year the 29th.
        let last = AutoPayRule::DayOfMonth { day: 31 };
        assert_eq!(
            rule_day(last, date!(2026 - 02 - 03), due, today),
            date!(2026 - 02 - 28)
        );
        assert_eq!(
            rule_day(last, date!(2028 - 02 - 03), due, today),
            date!(2028 - 02 - 29)
        );
        // December's rolls into January of the next year.
        let third = AutoPayRule::DayOfMonth { day: 3 };
        assert_eq!(
            rule_day(third, date!(2026 - 12 - 20), due, today),
            date!(2027 - 01 - 03)
        );
        // A day already gone is today.
        let late = date!(2026 - 03 - 01);
        assert_eq!(rule_day(AutoPayRule::OnDueDate, issue, due, late), late);
    }
}
