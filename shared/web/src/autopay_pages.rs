//! The payer's automatic payments page (issue 12), served by `portal`: each customer they pay
//! for, on or off, with a form to turn it on or change it (the day's rule, the method and a
//! second one, a cap) and a button to turn it off. The same use cases as the JSON API
//! (`app::autopay`); CSRF-checked posts that redirect back with a notice read from the stored
//! enrolment.

use askama::Template;
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use domain::{Org, OrgSlug};
use serde::Deserialize;

use app::autopay::{Actor, CustomerAutoPay, EnrolCommand};
use app::ports::{AutoPayRule, SavedMethod, User};
use app::schedules::ScheduleError;

use crate::AppState;
use crate::html::{csrf_refused, page, unavailable, with_cookie};
use crate::pages::method_label;
use crate::portal_pages::{Nav, member_of, not_found};
use crate::session::{Csrf, is_https};

fn autopay_path(org: &OrgSlug) -> String {
    format!("/portal/orgs/{org}/autopay")
}

struct MethodChoice {
    id: String,
    label: String,
    checked: bool,
    secondary: bool,
}

/// A customer's part of the page.
struct CustomerView {
    id: String,
    /// For element ids: the customer id with anything but letters and digits as `-`.
    key: String,
    name: String,
    /// "on the due date, with Visa ending 4242 ..." when on.
    enrolled: Option<String>,
    locked: bool,
    open_invoices: usize,
    methods: Vec<MethodChoice>,
    rule: &'static str,
    days: String,
    day: String,
    cap: String,
}

#[derive(Template)]
#[template(path = "portal_autopay.html")]
struct AutoPayPage {
    nav: Nav,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    may_enrol: bool,
    customers: Vec<CustomerView>,
}

/// "on the due date", "7 days after the invoice's date", "on day 1 of the month".
fn rule_text(rule: AutoPayRule) -> String {
    match rule {
        AutoPayRule::OnDueDate => "on the invoice's due date".to_owned(),
        AutoPayRule::DaysAfterInvoice { days } => format!("{days} days after the invoice's date"),
        AutoPayRule::DayOfMonth { day } => format!("on day {day} of the month"),
    }
}

fn customer_view(c: &CustomerAutoPay, methods: &[SavedMethod]) -> CustomerView {
    // Only methods that may be charged later, and that pay for this customer.
    let usable: Vec<&SavedMethod> = methods
        .iter()
        .filter(|m| m.mandate.is_some() && m.customer_ids.contains(&c.customer))
        .collect();
    let e = c.enrolment.as_ref();
    let label_of = |id: &domain::MethodId| {
        methods
            .iter()
            .find(|m| &m.id == id)
            .map(method_label)
            .unwrap_or_else(|| "a method no longer saved".to_owned())
    };
    let mut choices: Vec<MethodChoice> = usable
        .iter()
        .map(|m| MethodChoice {
            id: m.id.to_string(),
            label: method_label(m),
            checked: e.is_some_and(|e| e.method == m.id),
            secondary: e.is_some_and(|e| e.secondary.as_ref() == Some(&m.id)),
        })
        .collect();
    if !choices.iter().any(|m| m.checked)
        && let Some(first) = choices.first_mut()
    {
        first.checked = true; // The default comes first.
    }
    let (rule, days, day) = match e.map(|e| e.rule) {
        Some(AutoPayRule::DaysAfterInvoice { days }) => {
            ("days_after_invoice", days.to_string(), "1".into())
        }
        Some(AutoPayRule::DayOfMonth { day }) => ("day_of_month", "7".into(), day.to_string()),
        _ => ("on_due_date", "7".into(), "1".into()),
    };
    CustomerView {
        id: c.customer.to_string(),
        key: c
            .customer
            .as_str()
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
            .collect(),
        name: c.name.clone(),
        enrolled: e.map(|e| {
            let mut text = format!(
                "Each invoice is paid {} with {}",
                rule_text(e.rule),
                label_of(&e.method)
            );
            if let Some(second) = &e.secondary {
                text.push_str(&format!(", then {} if that fails", label_of(second)));
            }
            if let Some(cap) = e.cap {
                text.push_str(&format!("; invoices above {cap} are left for you"));
            }
            text.push('.');
            text
        }),
        locked: e.is_some_and(|e| e.locked),
        open_invoices: c.open_invoices,
        methods: choices,
        rule,
        days,
        day,
        cap: e
            .and_then(|e| e.cap)
            .map(|c| c.amount_string())
            .unwrap_or_default(),
    }
}

#[derive(Deserialize, Default)]
struct PageQuery {
    saved: Option<String>,
    ended: Option<String>,
}

async fn render(
    state: &AppState,
    parts: &Parts,
    (user, org): (User, Org),
    status: StatusCode,
    query: PageQuery,
    error: Option<String>,
) -> Response {
    let (customers, methods) = match app::autopay::overview(state, &org.slug, &user.id).await {
        Ok(seen) => (seen.customers, seen.methods),
        Err(ScheduleError::NotFound) => return not_found(),
        Err(e) => return unavailable(&e),
    };
    let name_of = |id: &Option<String>| {
        let id = id.as_deref()?;
        customers.iter().find(|c| c.customer.as_str() == id)
    };
    let notice = if let Some(c) = name_of(&query.saved).filter(|c| c.enrolment.is_some()) {
        Some(format!("Automatic payments are on for {}.", c.name))
    } else {
        name_of(&query.ended)
            .filter(|c| c.enrolment.is_none())
            .map(|c| format!("Automatic payments are off for {}.", c.name))
    };
    let csrf = Csrf::for_form(&parts.headers, is_https(parts), state.ids.as_ref());
    let view = AutoPayPage {
        csrf: csrf.token,
        notice,
        error,
        may_enrol: org.settings.autopay.payers_may_enrol,
        customers: customers
            .iter()
            .map(|c| customer_view(c, &methods))
            .collect(),
        nav: Nav::new(&user, &org, "autopay"),
    };
    with_cookie(page(status, &view), csrf.set)
}

/// `GET /portal/orgs/{org}/autopay`
async fn show(
    State(state): State<AppState>,
    parts: Parts,
    Path(org): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    match member_of(&state, &parts, &org, autopay_path).await {
        Ok(member) => render(&state, &parts, member, StatusCode::OK, query, None).await,
        Err(response) => response,
    }
}

#[derive(Deserialize, Default)]
struct EnrolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    days: String,
    #[serde(default)]
    day: String,
    method: Option<String>,
    #[serde(default)]
    secondary: String,
    #[serde(default)]
    cap: String,
}

/// The rule the form chose, or why it cannot be read.
fn rule_of(form: &EnrolForm) -> Result<AutoPayRule, String> {
    match form.rule.as_str() {
        "on_due_date" => Ok(AutoPayRule::OnDueDate),
        "days_after_invoice" => match form.days.trim().parse::<u16>() {
            Ok(days) if days <= 90 => Ok(AutoPayRule::DaysAfterInvoice { days }),
            _ => Err("Days after its date: a number from 0 to 90.".into()),
        },
        "day_of_month" => match form.day.trim().parse::<u8>() {
            Ok(day) if (1..=31).contains(&day) => Ok(AutoPayRule::DayOfMonth { day }),
            _ => Err("Day of the month: a number from 1 to 31.".into()),
        },
        _ => Err("Choose when each invoice is paid.".into()),
    }
}

/// `POST /portal/orgs/{org}/autopay/{customer}`: turns it on, or changes it.
async fn save(
    State(state): State<AppState>,
    parts: Parts,
    Path((org, customer)): Path<(String, String)>,
    Form(form): Form<EnrolForm>,
) -> Response {
    let member = match member_of(&state, &parts, &org, autopay_path).await {
        Ok(member) => member,
        Err(response) => return response,
    };
    if let Some(expired) = csrf_refused(&parts.headers, &form.csrf) {
        return expired;
    }
    let (user, org) = (&member.0, &member.1);
    let refused = match (
        rule_of(&form),
        form.method.as_deref().filter(|m| !m.is_empty()),
    ) {
        (Err(why), _) => why,
        (_, None) => "Choose the saved card or bank account to pay with.".to_owned(),
        (Ok(rule), Some(method)) => {
            let command = EnrolCommand {
                org: org.slug.clone(),
                customer: customer.clone(),
                actor: Actor::Payer(user.clone()),
                payer: user.clone(),
                method_id: Some(method.to_owned()),
                secondary_method_id: Some(form.secondary.trim().to_owned())
                    .filter(|s| !s.is_empty()),
                rule,
                cap: Some(form.cap.trim().to_owned()).filter(|c| !c.is_empty()),
                locked: false,
            };
            match app::autopay::enrol(&state, command).await {
                Ok(done) => {
                    let back = format!("{}?saved={}", autopay_path(&org.slug), done.customer);
                    return Redirect::to(&back).into_response();
                }
                Err(ScheduleError::NotFound) => return not_found(),
                Err(e @ (ScheduleError::Accounting(_) | ScheduleError::Store(_))) => {
                    return unavailable(&e);
                }
                Err(ScheduleError::Invalid(why)) => app::notices::capitalised(&why),
                Err(e) => app::notices::capitalised(&e.to_string()),
            }
        }
    };
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    render(
        &state,
        &parts,
        member,
        status,
        PageQuery::default(),
        Some(refused),
    )
    .await
}

/// `POST /portal/orgs/{org}/autopay/{customer}/end`: turns it off (schedules it made stay,
/// each cancellable on the dashboard).
async fn end(
    State(state): State<AppState>,
    parts: Parts,
    Path((org, customer)): Path<(String, String)>,
    Form(form): Form<crate::html::CsrfForm>,
) -> Response {
    let member = match member_of(&state, &parts, &org, autopay_path).await {
        Ok(member) => member,
        Err(response) => return response,
    };
    if let Some(expired) = csrf_refused(&parts.headers, &form.csrf) {
        return expired;
    }
    let (user, slug) = (member.0.clone(), member.1.slug.clone());
    match app::autopay::end(&state, &slug, &Actor::Payer(user), &customer).await {
        Ok(()) => {
            Redirect::to(&format!("{}?ended={customer}", autopay_path(&slug))).into_response()
        }
        Err(ScheduleError::NotFound) => not_found(),
        Err(ScheduleError::Invalid(why)) => {
            let why = app::notices::capitalised(&why);
            render(
                &state,
                &parts,
                member,
                StatusCode::CONFLICT,
                PageQuery::default(),
                Some(why),
            )
            .await
        }
        Err(e) => unavailable(&e),
    }
}

pub(crate) fn pages() -> Router<AppState> {
    Router::new()
        .route("/portal/orgs/{org}/autopay", get(show))
        .route("/portal/orgs/{org}/autopay/{customer}", post(save))
        .route("/portal/orgs/{org}/autopay/{customer}/end", post(end))
}
