//! The payer portal's pages (issue 12), served by `portal`: the dashboard of an org (what is
//! outstanding, scheduled and paid, with an org switcher), the transaction search, and the
//! form that schedules a payment of one invoice (and the button that cancels it). They run the
//! same use cases as the JSON API (`app::payer`, `app::payer_payments`, `app::schedules`,
//! `app::methods`); nothing here needs JavaScript.
//!
//! Everyone but a signed-in member of the org gets the same "not found" page; a signed-out
//! browser goes to the sign-in page and comes back. Form posts are CSRF-checked and answer with
//! a redirect to the dashboard, whose notice is read back from the schedule itself (never from
//! text in the address).

use askama::Template;
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use domain::{Org, OrgSlug, PaymentStatus, ScheduleId};
use serde::Deserialize;
use time::{Date, Duration};

use app::payer::{PayerError, StatusFilter};
use app::payer_payments::{PaymentSearch, SearchError};
use app::ports::{Schedule, ScheduleState, User};
use app::schedules::{ScheduleCommand, ScheduleError};

use crate::AppState;
use crate::html::{csrf_refused, message, page, unavailable, with_cookie};
use crate::pages::method_label;
use crate::session::{Csrf, is_https, member_page, signed_in_user};

/// How many payments the dashboard shows.
const RECENT: u16 = 5;
/// How many payments a page of the transaction search shows.
const PER_PAGE: u16 = 20;
/// The day the schedule form offers first: a week ahead.
const SUGGESTED_DAYS: i64 = 7;

pub(crate) fn dashboard_path(org: &OrgSlug) -> String {
    format!("/portal/orgs/{org}")
}

fn transactions_path(org: &OrgSlug) -> String {
    format!("/portal/orgs/{org}/transactions")
}

pub(crate) fn not_found() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "We could not find that page",
        "Check the address, or sign in with the account that was invited to this organisation.",
    )
}

/// "3 Dec 2026".
pub(crate) fn day(d: Date) -> String {
    d.format(time::macros::format_description!(
        "[day padding:none] [month repr:short] [year]"
    ))
    .unwrap_or_else(|_| d.to_string())
}

/// "dispute_won" -> "Dispute won".
pub(crate) fn status_text(status: &str) -> String {
    app::notices::capitalised(&status.replace('_', " "))
}

/// The top of every portal page: who, which org, and the way to the other pages.
pub(crate) struct Nav {
    pub(crate) org_slug: String,
    pub(crate) org_name: String,
    pub(crate) user_name: String,
    /// Which link is the page shown: dashboard, transactions or none.
    pub(crate) current: &'static str,
}

impl Nav {
    pub(crate) fn new(user: &User, org: &Org, current: &'static str) -> Nav {
        Nav {
            org_slug: org.slug.to_string(),
            org_name: org.name.clone(),
            user_name: user.name.clone(),
            current,
        }
    }
}

/// The signed-in member of the org in the URL, or the response to give instead (coming back to
/// `back` after signing in).
pub(crate) async fn member_of(
    state: &AppState,
    parts: &Parts,
    org: &str,
    back: fn(&OrgSlug) -> String,
) -> Result<(User, Org), Response> {
    let (user, org, _) = member_page(state, parts, org, back, not_found).await?;
    Ok((user, org))
}

/// `GET /portal`: the dashboard of the person's first org (by name).
async fn home(State(state): State<AppState>, parts: Parts) -> Response {
    let user = match signed_in_user(&state, &parts).await {
        Ok(Some(user)) => user,
        Ok(None) => return crate::sign_in::sign_in_then("/portal"),
        Err(e) => return unavailable(&e),
    };
    let mut orgs = match app::sessions::my_orgs(&state, &user.id).await {
        Ok(orgs) => orgs,
        Err(e) => return unavailable(&e),
    };
    orgs.sort_by_key(|(_, name)| name.to_lowercase());
    match orgs.first() {
        Some((membership, _)) => Redirect::to(&dashboard_path(&membership.org)).into_response(),
        None => message(
            StatusCode::OK,
            "You do not belong to any organisation yet",
            "When an organisation invites you to pay its invoices, open the link in its email \
             to join. Your account page is at /account.",
        ),
    }
}

struct OrgLink {
    name: String,
    link: String,
    current: bool,
}

struct InvoiceRow {
    number: String,
    customer: String,
    due: String,
    overdue: bool,
    amount_due: String,
    pay_link: String,
    pdf_link: String,
    /// The schedule form; None when a payment is scheduled already.
    schedule_link: Option<String>,
    /// The day a payment is scheduled for.
    scheduled_on: Option<String>,
}

struct ScheduleRow {
    id: String,
    invoice: String,
    date: String,
    amount: String,
    method: String,
    status: String,
    cancellable: bool,
}

struct PaymentRow {
    date: String,
    /// The invoice paid, or several: "INV-1, INV-2".
    invoice: String,
    /// The payment's page: each invoice's part.
    link: String,
    amount: String,
    status: String,
    method: String,
    receipt_link: Option<String>,
}

fn payment_row(org: &OrgSlug, p: &app::payments::Payment) -> PaymentRow {
    PaymentRow {
        date: day(p.created_at.date()),
        invoice: p
            .parts()
            .iter()
            .map(|a| a.invoice.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        link: format!("/portal/orgs/{org}/payments/{}", p.id),
        amount: p.amount.to_string(),
        status: status_text(p.status.as_str()),
        method: p
            .method
            .as_ref()
            .map(app::notices::summary_label)
            .unwrap_or_default(),
        // A failed attempt paid nothing: there is nothing to give a receipt for.
        receipt_link: (p.status != PaymentStatus::Failed)
            .then(|| format!("/api/me/orgs/{org}/payments/{}/receipt.pdf", p.id)),
    }
}

#[derive(Template)]
#[template(path = "portal_dashboard.html")]
struct DashboardPage {
    nav: Nav,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    orgs: Vec<OrgLink>,
    invoices: Vec<InvoiceRow>,
    schedules: Vec<ScheduleRow>,
    payments: Vec<PaymentRow>,
}

#[derive(Deserialize, Default)]
struct DashboardQuery {
    scheduled: Option<String>,
    cancelled: Option<String>,
}

/// What the dashboard says after a form: read from the schedule the form wrote.
fn dashboard_notice(q: &DashboardQuery, schedules: &[Schedule]) -> Option<String> {
    let find = |id: &Option<String>| {
        let id = id.as_deref()?;
        schedules.iter().find(|x| x.id.to_string() == id)
    };
    if let Some(x) = find(&q.scheduled) {
        return Some(format!("Scheduled {} for {}.", x.invoice, day(x.run_on)));
    }
    find(&q.cancelled).map(|x| {
        format!(
            "Cancelled the payment of {} scheduled for {}.",
            x.invoice,
            day(x.run_on)
        )
    })
}

async fn render_dashboard(
    state: &AppState,
    parts: &Parts,
    (user, org): (User, Org),
    status: StatusCode,
    query: DashboardQuery,
    error: Option<String>,
) -> Response {
    let search = PaymentSearch {
        limit: Some(RECENT),
        ..PaymentSearch::default()
    };
    let loaded = tokio::join!(
        app::payer::invoices(state, &org.slug, &user.id, StatusFilter::Open),
        app::schedules::list(state, &org.slug, &user.id),
        app::payer_payments::search(state, &org.slug, &user.id, &search),
        app::methods::list(state, &org.slug, &user.id),
        app::sessions::my_orgs(state, &user.id),
    );
    let (invoices, schedules, payments, methods, mut orgs) = match loaded {
        (Ok(i), Ok(s), Ok(p), Ok(m), Ok(o)) => (i, s, p, m, o),
        (Err(PayerError::NotFound), ..)
        | (_, Err(ScheduleError::NotFound), ..)
        | (_, _, Err(SearchError::NotFound), ..) => return not_found(),
        (i, s, p, m, o) => {
            let why = [
                i.err().map(|e| e.to_string()),
                s.err().map(|e| e.to_string()),
                p.err().map(|e| e.to_string()),
                m.err().map(|e| e.to_string()),
                o.err().map(|e| e.to_string()),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ");
            return unavailable(&why);
        }
    };
    let notice = dashboard_notice(&query, &schedules);
    let waiting: Vec<&Schedule> = schedules
        .iter()
        .filter(|x| matches!(x.state, ScheduleState::Scheduled | ScheduleState::Running))
        .collect();
    let label_of = |id: &domain::MethodId| {
        methods
            .iter()
            .find(|m| &m.id == id)
            .map(method_label)
            .unwrap_or_else(|| "A method no longer saved".to_owned())
    };
    let slug = &org.slug;
    orgs.sort_by_key(|(_, name)| name.to_lowercase());
    let csrf = Csrf::for_form(&parts.headers, is_https(parts), state.ids.as_ref());
    let view = DashboardPage {
        csrf: csrf.token,
        notice,
        error,
        orgs: if orgs.len() > 1 {
            orgs.into_iter()
                .map(|(m, name)| OrgLink {
                    current: &m.org == slug,
                    link: dashboard_path(&m.org),
                    name,
                })
                .collect()
        } else {
            Vec::new()
        },
        invoices: invoices
            .iter()
            .map(|seen| {
                let i = &seen.invoice;
                let scheduled = waiting.iter().find(|x| x.invoice == i.number);
                InvoiceRow {
                    number: i.number.to_string(),
                    customer: i.customer_name.clone(),
                    due: day(i.due_date),
                    overdue: seen.overdue,
                    amount_due: i.amount_due.to_string(),
                    pay_link: format!("/pay/{slug}/{}", i.number),
                    pdf_link: format!("/api/me/orgs/{slug}/invoices/{}/pdf", i.number),
                    schedule_link: scheduled
                        .is_none()
                        .then(|| format!("/portal/orgs/{slug}/schedule?invoice={}", i.number)),
                    scheduled_on: scheduled.map(|x| day(x.run_on)),
                }
            })
            .collect(),
        schedules: waiting
            .iter()
            .map(|x| ScheduleRow {
                id: x.id.to_string(),
                invoice: x.invoice.to_string(),
                date: day(x.run_on),
                amount: x
                    .amount
                    .map(|a| format!("At most {a}"))
                    .unwrap_or_else(|| "The balance on the day".to_owned()),
                method: label_of(x.current_method()),
                status: status_text(x.state.as_str()),
                cancellable: x.state == ScheduleState::Scheduled,
            })
            .collect(),
        payments: payments
            .items
            .iter()
            .map(|p| payment_row(slug, p))
            .collect(),
        nav: Nav::new(&user, &org, "dashboard"),
    };
    with_cookie(page(status, &view), csrf.set)
}

/// `GET /portal/orgs/{org}`: the dashboard.
async fn dashboard(
    State(state): State<AppState>,
    parts: Parts,
    Path(org): Path<String>,
    Query(query): Query<DashboardQuery>,
) -> Response {
    match member_of(&state, &parts, &org, dashboard_path).await {
        Ok(member) => render_dashboard(&state, &parts, member, StatusCode::OK, query, None).await,
        Err(response) => response,
    }
}

#[derive(Deserialize, Default, Clone)]
struct TransactionsQuery {
    #[serde(default)]
    invoice: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    status: String,
    cursor: Option<String>,
}

impl TransactionsQuery {
    /// The filters (not the cursor) that are set, as query pairs.
    fn filters(&self) -> Vec<(&'static str, &str)> {
        [
            ("invoice", self.invoice.trim()),
            ("amount", self.amount.trim()),
            ("from", self.from.trim()),
            ("to", self.to.trim()),
            ("status", self.status.trim()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }
}

struct StatusChoice {
    value: &'static str,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "portal_transactions.html")]
struct TransactionsPage {
    nav: Nav,
    error: Option<String>,
    form: TransactionsQuery,
    statuses: Vec<StatusChoice>,
    searched: bool,
    payments: Vec<PaymentRow>,
    next_link: Option<String>,
}

/// A date field: empty is none; else `YYYY-MM-DD`.
fn date_field(name: &str, text: &str) -> Result<Option<Date>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map(Some)
    .map_err(|_| format!("{name}: a date such as 2026-11-01"))
}

/// `GET /portal/orgs/{org}/transactions`: the search form and a page of results.
async fn transactions(
    State(state): State<AppState>,
    parts: Parts,
    Path(org): Path<String>,
    Query(form): Query<TransactionsQuery>,
) -> Response {
    let (user, org) = match member_of(&state, &parts, &org, transactions_path).await {
        Ok(member) => member,
        Err(response) => return response,
    };
    let dates = date_field("From", &form.from).and_then(|from| {
        let to = date_field("To", &form.to)?;
        Ok((from, to))
    });
    let result = match dates {
        Err(why) => Err(why),
        Ok((from, to)) => {
            let search = PaymentSearch {
                invoice: Some(form.invoice.clone()),
                amount: Some(form.amount.clone()),
                from,
                to,
                status: Some(form.status.clone()),
                limit: Some(PER_PAGE),
                cursor: form.cursor.clone().filter(|c| !c.is_empty()),
            };
            match app::payer_payments::search(&state, &org.slug, &user.id, &search).await {
                Ok(found) => Ok(found),
                Err(SearchError::NotFound) => return not_found(),
                Err(SearchError::Invalid(why)) => Err(app::notices::capitalised(&why)),
                Err(e @ SearchError::Store(_)) => return unavailable(&e),
            }
        }
    };
    let (status, error, payments, next) = match result {
        Ok(found) => (StatusCode::OK, None, found.items, found.next),
        Err(why) => (StatusCode::BAD_REQUEST, Some(why), Vec::new(), None),
    };
    let next_link = next.map(|cursor| {
        let mut pairs = form.filters();
        pairs.push(("cursor", &cursor));
        let query = serde_urlencoded::to_string(pairs).expect("string pairs encode");
        format!("{}?{query}", transactions_path(&org.slug))
    });
    let statuses = PaymentStatus::ALL
        .iter()
        .map(|st| StatusChoice {
            value: st.as_str(),
            label: status_text(st.as_str()),
            selected: form.status.trim() == st.as_str(),
        })
        .collect();
    let view = TransactionsPage {
        searched: !form.filters().is_empty() || form.cursor.is_some(),
        payments: payments.iter().map(|p| payment_row(&org.slug, p)).collect(),
        nav: Nav::new(&user, &org, "transactions"),
        error,
        form,
        statuses,
        next_link,
    };
    page(status, &view)
}

struct MethodChoice {
    id: String,
    label: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "portal_schedule.html")]
struct SchedulePage {
    nav: Nav,
    csrf: String,
    error: Option<String>,
    invoice_number: String,
    customer: String,
    amount_due: String,
    due: String,
    overdue: bool,
    /// Why there is no form (the invoice is closed, or no method may be charged later).
    closed: Option<String>,
    methods: Vec<MethodChoice>,
    date: String,
    min_date: String,
    max_date: String,
    amount: String,
}

/// What the schedule form holds: as first shown, or as posted.
#[derive(Deserialize, Default)]
struct ScheduleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    invoice: String,
    method: Option<String>,
    #[serde(default)]
    date: String,
    #[serde(default)]
    amount: String,
}

/// Today in the org's time zone.
fn today(state: &AppState, org: &Org) -> Date {
    app::schedules::local_today(org, state.clock.now())
}

/// The schedule form for `form.invoice`, with `error` above it.
async fn render_schedule(
    state: &AppState,
    parts: &Parts,
    (user, org): (User, Org),
    status: StatusCode,
    form: &ScheduleForm,
    error: Option<String>,
) -> Response {
    let seen = match app::payer::invoice(state, &org.slug, &user.id, form.invoice.trim()).await {
        Ok(seen) => seen,
        Err(PayerError::NotFound | PayerError::Invalid(_)) => return not_found(),
        Err(e) => return unavailable(&e),
    };
    let invoice = seen.invoice;
    let today = today(state, &org);
    let usable =
        match app::methods::usable_for(state, &org.slug, &user.id, &invoice.customer_id).await {
            Ok(methods) => methods,
            Err(e) => return unavailable(&e),
        };
    let chosen = form.method.as_deref().unwrap_or_default();
    let mut methods: Vec<MethodChoice> = usable
        .iter()
        .filter(|m| m.mandate.is_some() && !app::methods::expired_by(m, today))
        .map(|m| MethodChoice {
            id: m.id.to_string(),
            label: method_label(m),
            checked: m.id.to_string() == chosen,
        })
        .collect();
    if !methods.iter().any(|m| m.checked)
        && let Some(first) = methods.first_mut()
    {
        first.checked = true; // The default comes first.
    }
    let closed = if !invoice.is_payable() {
        Some(format!(
            "Invoice {} is {}: there is nothing to schedule.",
            invoice.number,
            invoice.status.as_str()
        ))
    } else if methods.is_empty() {
        Some(format!(
            "You have no saved card or bank account that {} may charge later. Save one on the \
             Payment methods page and accept the authority to charge it, then come back.",
            org.name
        ))
    } else {
        None
    };
    let csrf = Csrf::for_form(&parts.headers, is_https(parts), state.ids.as_ref());
    let suggested = today + Duration::days(SUGGESTED_DAYS);
    let view = SchedulePage {
        csrf: csrf.token,
        error,
        invoice_number: invoice.number.to_string(),
        customer: invoice.customer_name,
        amount_due: invoice.amount_due.to_string(),
        due: day(invoice.due_date),
        overdue: seen.overdue,
        closed,
        methods,
        date: if form.date.trim().is_empty() {
            suggested.to_string()
        } else {
            form.date.trim().to_owned()
        },
        min_date: (today + Duration::days(1)).to_string(),
        max_date: (today + Duration::days(365)).to_string(),
        amount: form.amount.trim().to_owned(),
        nav: Nav::new(&user, &org, ""),
    };
    with_cookie(page(status, &view), csrf.set)
}

#[derive(Deserialize)]
struct ScheduleQuery {
    invoice: Option<String>,
}

/// `GET /portal/orgs/{org}/schedule?invoice=N`: the form that schedules a payment of N.
async fn schedule_page(
    State(state): State<AppState>,
    parts: Parts,
    Path(org): Path<String>,
    Query(q): Query<ScheduleQuery>,
) -> Response {
    let member = match member_of(&state, &parts, &org, dashboard_path).await {
        Ok(member) => member,
        Err(response) => return response,
    };
    let Some(invoice) = q.invoice.filter(|i| !i.trim().is_empty()) else {
        return not_found();
    };
    let form = ScheduleForm {
        invoice,
        ..ScheduleForm::default()
    };
    render_schedule(&state, &parts, member, StatusCode::OK, &form, None).await
}

/// `POST /portal/orgs/{org}/schedules`: schedules the payment, then the dashboard says so.
async fn create_schedule(
    State(state): State<AppState>,
    parts: Parts,
    Path(org): Path<String>,
    Form(form): Form<ScheduleForm>,
) -> Response {
    let member = match member_of(&state, &parts, &org, dashboard_path).await {
        Ok(member) => member,
        Err(response) => return response,
    };
    if let Some(expired) = csrf_refused(&parts.headers, &form.csrf) {
        return expired;
    }
    let refused = |status, why: String| (status, Some(why));
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let today = today(&state, &member.1);
    let checked = match (
        form.method.as_deref().filter(|m| !m.is_empty()),
        date_field("Date", &form.date),
    ) {
        (None, _) => Err(refused(
            unprocessable,
            "Choose the saved card or bank account to pay with.".into(),
        )),
        (_, Err(_) | Ok(None)) => Err(refused(
            unprocessable,
            "Choose the day to pay on (a date such as 2026-12-03).".into(),
        )),
        (_, Ok(Some(date))) if date <= today => Err(refused(
            unprocessable,
            format!("Choose a day after today ({}).", day(today)),
        )),
        (Some(method), Ok(Some(_))) => Ok(method.to_owned()),
    };
    let (status, error) = match checked {
        Err(refusal) => refusal,
        Ok(method_id) => {
            let command = ScheduleCommand {
                org: member.1.slug.clone(),
                user: member.0.clone(),
                invoice: form.invoice.trim().to_owned(),
                method_id,
                amount: Some(form.amount.clone()),
                date: form.date.trim().to_owned(),
            };
            match app::schedules::schedule(&state, command).await {
                Ok(made) => {
                    let back = format!("{}?scheduled={}", dashboard_path(&member.1.slug), made.id);
                    return Redirect::to(&back).into_response();
                }
                Err(ScheduleError::NotFound) => return not_found(),
                Err(ScheduleError::Invalid(why)) => {
                    refused(unprocessable, app::notices::capitalised(&why))
                }
                Err(
                    e @ (ScheduleError::NotPayable(_)
                    | ScheduleError::AlreadyScheduled(_)
                    | ScheduleError::NotCancellable(_)),
                ) => refused(
                    StatusCode::CONFLICT,
                    app::notices::capitalised(&e.to_string()),
                ),
                Err(
                    e @ (ScheduleError::AmountAboveBalance(_)
                    | ScheduleError::PartialNotAllowed(_)
                    | ScheduleError::MandateRequired),
                ) => refused(unprocessable, app::notices::capitalised(&e.to_string())),
                Err(e @ (ScheduleError::Accounting(_) | ScheduleError::Store(_))) => {
                    return unavailable(&e);
                }
            }
        }
    };
    render_schedule(&state, &parts, member, status, &form, error).await
}

/// `POST /portal/orgs/{org}/schedules/{id}/cancel`: cancels one that has not started.
async fn cancel_schedule(
    State(state): State<AppState>,
    parts: Parts,
    Path((org, id)): Path<(String, String)>,
    Form(form): Form<crate::html::CsrfForm>,
) -> Response {
    let member = match member_of(&state, &parts, &org, dashboard_path).await {
        Ok(member) => member,
        Err(response) => return response,
    };
    if let Some(expired) = csrf_refused(&parts.headers, &form.csrf) {
        return expired;
    }
    let Ok(id) = ScheduleId::parse(&id) else {
        return not_found();
    };
    let (user, org) = (&member.0, &member.1);
    match app::schedules::cancel(&state, &org.slug, &user.id, &id).await {
        Ok(done) => {
            let back = format!("{}?cancelled={}", dashboard_path(&org.slug), done.id);
            Redirect::to(&back).into_response()
        }
        Err(ScheduleError::NotFound) => not_found(),
        Err(e @ ScheduleError::NotCancellable(_)) => {
            let error = app::notices::capitalised(&e.to_string());
            let query = DashboardQuery::default();
            render_dashboard(
                &state,
                &parts,
                member,
                StatusCode::CONFLICT,
                query,
                Some(error),
            )
            .await
        }
        Err(e) => unavailable(&e),
    }
}

#[derive(Template)]
#[template(path = "portal_payment.html")]
struct PaymentPage {
    nav: Nav,
    headline: &'static str,
    message: String,
    /// Each invoice and its part.
    parts: Vec<(String, String)>,
    surcharge: Option<String>,
    total: String,
    method: String,
    status: String,
    date: String,
    payment_id: String,
    receipt_link: Option<String>,
}

/// `GET /portal/orgs/{org}/payments/{payment}`: one of the payer's payments, with what it paid
/// on each invoice (where paying several invoices ends).
async fn payment_page(
    State(state): State<AppState>,
    parts: Parts,
    Path((org, payment)): Path<(String, String)>,
) -> Response {
    let (user, org) = match member_of(&state, &parts, &org, dashboard_path).await {
        Ok(member) => member,
        Err(response) => return response,
    };
    let found = match app::payer::receipt(&state, &org.slug, &user.id, &payment).await {
        Ok(found) => found.payment,
        Err(PayerError::NotFound | PayerError::Invalid(_)) => return not_found(),
        Err(e) => return unavailable(&e),
    };
    let (headline, message) = match found.status {
        PaymentStatus::Pending => (
            "Payment submitted",
            "Bank payments take a few business days to clear; the invoices show it now.",
        ),
        PaymentStatus::Failed => ("Payment failed", "Nothing was charged."),
        _ => (
            "Payment received",
            "Thank you. The invoices below show it now.",
        ),
    };
    let total = found
        .amount
        .checked_add(found.surcharge)
        .unwrap_or(found.amount);
    let view = PaymentPage {
        headline,
        message: message.to_owned(),
        parts: found
            .parts()
            .iter()
            .map(|a| (a.invoice.to_string(), a.amount.to_string()))
            .collect(),
        surcharge: (!found.surcharge.is_zero()).then(|| found.surcharge.to_string()),
        total: total.to_string(),
        method: app::notices::method_label(&found),
        status: status_text(found.status.as_str()),
        date: day(found.created_at.date()),
        payment_id: found.id.to_string(),
        receipt_link: (found.status != PaymentStatus::Failed).then(|| {
            format!(
                "/api/me/orgs/{}/payments/{}/receipt.pdf",
                org.slug, found.id
            )
        }),
        nav: Nav::new(&user, &org, ""),
    };
    page(StatusCode::OK, &view)
}

pub(crate) fn pages() -> Router<AppState> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/orgs/{org}", get(dashboard))
        .route("/portal/orgs/{org}/transactions", get(transactions))
        .route("/portal/orgs/{org}/payments/{payment}", get(payment_page))
        .route("/portal/orgs/{org}/schedule", get(schedule_page))
        .route("/portal/orgs/{org}/schedules", post(create_schedule))
        .route(
            "/portal/orgs/{org}/schedules/{id}/cancel",
            post(cancel_schedule),
        )
}
