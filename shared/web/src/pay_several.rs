//! Paying several invoices at once (issue 12), served by `pay-now` because it charges: the JSON
//! API (`POST /api/me/orgs/{org}/payments`, and `.../payments/preview` for the split before
//! paying) and the pages (the dashboard's "Pay the selected invoices" leads to
//! `GET /portal/orgs/{org}/pay`, which shows the split and posts back to the same path).
//!
//! The page's post runs the API's own idempotent request: the form carries a key made when the
//! page was drawn, so a second click or a reload pays once and shows the same payment. It also
//! carries the split it showed; if the balances moved meanwhile, nothing is charged and the
//! new split is shown.

use askama::Template;
use axum::{
    Form, Json, Router,
    body::to_bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use domain::{Email, InvoiceNumber, MethodId, OrgSlug, PaymentId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use app::pay_now::PayError;
use app::pay_several::{PaySeveral, Preview};
use app::ports::User;

use crate::client::ClientAddr;
use crate::html::{csrf_refused, page, unavailable, with_cookie};
use crate::idempotent::{self, Finished, idempotent};
use crate::pages::method_label;
use crate::pay_now::{not_paid, paid, pay_problem};
use crate::portal_pages::{Nav, dashboard_path, day, member_of, not_found};
use crate::session::{Csrf, SignedIn, is_https};
use crate::views::{MoneyView, PaymentView};
use crate::{ApiJson, AppState, Problem};

/// Pay several invoices of one customer with one charge.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PaySeveralBody {
    /// The invoice numbers (one customer's, at most 25).
    pub invoices: Vec<String>,
    /// A lump sum ("150.00") paid oldest invoice first; absent pays everything they owe.
    pub amount: Option<String>,
    /// A saved method of the payer's, for the invoices' customer.
    pub method_id: String,
    /// Where the receipt goes; the payer's own address by default.
    pub email: Option<String>,
    /// The split the payer was shown (the preview's invoices with what they pay): if the
    /// balances give another now, nothing is charged (409 `allocation_changed`).
    pub expected: Option<Vec<ExpectedPart>>,
}

/// One invoice's part as shown before paying.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ExpectedPart {
    pub invoice_number: String,
    /// "120.00", in the invoices' currency.
    pub amount: String,
}

/// How a payment would be split, before paying.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PreviewBody {
    pub invoices: Vec<String>,
    pub amount: Option<String>,
    /// With a method, the card surcharge it would add is shown too.
    pub method_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewView {
    /// The chosen invoices, oldest first, each with what the payment would pay on it.
    pub invoices: Vec<PreviewLine>,
    pub total_due: MoneyView,
    /// What the payment pays to the invoices.
    pub amount: MoneyView,
    pub surcharge: MoneyView,
    /// What would be charged.
    pub total: MoneyView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewLine {
    pub invoice_number: String,
    pub due_date: String,
    pub amount_due: MoneyView,
    /// Nothing when a smaller amount does not reach this invoice.
    pub pays: MoneyView,
    pub left_due: MoneyView,
}

impl From<&Preview> for PreviewView {
    fn from(p: &Preview) -> Self {
        let zero = domain::Money::zero(p.amount.currency());
        PreviewView {
            invoices: p
                .invoices
                .iter()
                .map(|i| {
                    let pays = p.part_of(&i.number).unwrap_or(zero);
                    PreviewLine {
                        invoice_number: i.number.to_string(),
                        due_date: i.due_date.to_string(),
                        amount_due: i.amount_due.into(),
                        pays: pays.into(),
                        left_due: i.amount_due.checked_sub(pays).unwrap_or(zero).into(),
                    }
                })
                .collect(),
            total_due: p.total_due.into(),
            amount: p.amount.into(),
            surcharge: p.surcharge.into(),
            total: p.amount.checked_add(p.surcharge).unwrap_or(p.amount).into(),
        }
    }
}

fn invoice_numbers(raw: &[String]) -> Result<Vec<InvoiceNumber>, Problem> {
    raw.iter()
        .map(|n| InvoiceNumber::parse(n.trim()).map_err(|_| Problem::not_found("no such invoice")))
        .collect()
}

fn org_slug(org: &str) -> Result<OrgSlug, Problem> {
    OrgSlug::parse(org).map_err(|_| Problem::not_found("no such invoice"))
}

/// How the payment would be split across the invoices (oldest first), with the surcharge the
/// method would add. Charges nothing.
#[utoipa::path(
    post,
    path = "/api/me/orgs/{org}/payments/preview",
    tag = "portal",
    params(("org" = String, Path)),
    request_body = PreviewBody,
    responses(
        (status = 200, description = "the split", body = PreviewView),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not the payer's invoice or method", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "an invoice is paid or void", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "the invoices cannot be paid together, or the amount is refused", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn preview(
    State(state): State<AppState>,
    Path(org): Path<String>,
    signed_in: SignedIn,
    ApiJson(body): ApiJson<PreviewBody>,
) -> Result<Json<PreviewView>, Problem> {
    let org = org_slug(&org)?;
    let invoices = invoice_numbers(&body.invoices)?;
    let method = match body.method_id.as_deref() {
        Some(id) => {
            Some(MethodId::parse(id).map_err(|_| Problem::not_found("no such payment method"))?)
        }
        None => None,
    };
    let seen = app::pay_several::preview(
        &state,
        &org,
        &signed_in.user.id,
        &invoices,
        body.amount.as_deref(),
        method.as_ref(),
    )
    .await
    .map_err(|e| pay_problem(&e))?;
    Ok(Json(PreviewView::from(&seen)))
}

/// Pays several invoices of one customer with one charge of a saved method, split oldest
/// first. `Idempotency-Key` is required: the same key and body give one charge and the same
/// answer.
#[utoipa::path(
    post,
    path = "/api/me/orgs/{org}/payments",
    tag = "portal",
    params(
        ("org" = String, Path),
        ("Idempotency-Key" = String, Header, description = "a fresh random key per payment; the same key on retries"),
    ),
    request_body = PaySeveralBody,
    responses(
        (status = 201, description = "paid (a bank debit: approved and settling); `allocations` shows the split", body = PaymentView),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "declined; recorded as a failed payment", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not the payer's invoice or method", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "an invoice is paid, void, or being paid", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "the invoices cannot be paid together, the amount is refused, or the key was reused", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn pay(
    State(state): State<AppState>,
    Path(org): Path<String>,
    ClientAddr(client): ClientAddr,
    signed_in: SignedIn,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PaySeveralBody>,
) -> Response {
    pay_several(&state, &org, signed_in.user, client, &headers, body).await
}

/// The request both the API and the page make.
async fn pay_several(
    state: &AppState,
    org: &str,
    user: User,
    client: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    body: PaySeveralBody,
) -> Response {
    let checked = org_slug(org).and_then(|org| Ok((org, invoice_numbers(&body.invoices)?)));
    let (org, invoices) = match checked {
        Ok(found) => found,
        Err(problem) => return problem.into_response(),
    };
    let Ok(method) = MethodId::parse(&body.method_id) else {
        return Problem::not_found("no such payment method").into_response();
    };
    let typed = body
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let receipt_asked = typed.is_some();
    let email = match typed {
        None => user.email.clone(),
        Some(raw) => match Email::parse(raw) {
            Ok(email) => email,
            Err(e) => return Problem::invalid(e.to_string()).into_response(),
        },
    };
    let expected = match &body.expected {
        None => None,
        Some(parts) => match invoice_numbers_of(parts) {
            Ok(parts) => Some(parts),
            Err(problem) => return problem.into_response(),
        },
    };
    let amount = body.amount.clone().unwrap_or_default();
    let (org_text, email_text) = (org.to_string(), email.to_string());
    let invoices_text = body.invoices.join(",");
    let source_text = format!("{}#{method}", user.id);
    let expected_text = body
        .expected
        .iter()
        .flatten()
        .map(|p| format!("{}={}", p.invoice_number, p.amount))
        .collect::<Vec<_>>()
        .join(";");
    let parts = [
        org_text.as_str(),
        &invoices_text,
        &source_text,
        &amount,
        &email_text,
        &expected_text,
    ];
    let new_id = format!("{}{}", PaymentId::PREFIX, state.ids.ulid());
    let scope = format!("{org}#pay-several");
    let worker = state.clone();
    idempotent(
        state,
        scope,
        headers,
        &parts,
        new_id,
        |claimed| async move {
            let Ok(payment_id) = PaymentId::parse(&claimed.resource_id) else {
                return Finished::Release(
                    Problem::internal(&"bad payment id in claim").into_response(),
                );
            };
            let command = PaySeveral {
                org,
                user: user.id,
                invoices,
                amount: body.amount,
                method,
                expected,
                payment_id,
                resumed: claimed.resumed,
                receipt_email: Some(email),
                receipt_asked,
                client: client.map(|ip| ip.to_string()),
            };
            match app::pay_several::pay_several(&worker, command).await {
                Ok(payment) => paid(payment),
                Err(e) => not_paid(e),
            }
        },
    )
    .await
}

/// The shown parts with their invoice numbers checked (the amounts are read against the
/// invoices' currency by the payment).
fn invoice_numbers_of(parts: &[ExpectedPart]) -> Result<Vec<(InvoiceNumber, String)>, Problem> {
    parts
        .iter()
        .map(|p| {
            let invoice = InvoiceNumber::parse(p.invoice_number.trim())
                .map_err(|_| Problem::not_found("no such invoice"))?;
            Ok((invoice, p.amount.trim().to_owned()))
        })
        .collect()
}

/// The page's "INV-1=120.00;INV-2=80.00" as parts.
fn expected_of(text: &str) -> Vec<ExpectedPart> {
    text.split(';')
        .filter_map(|part| part.split_once('='))
        .map(|(invoice, amount)| ExpectedPart {
            invoice_number: invoice.to_owned(),
            amount: amount.to_owned(),
        })
        .collect()
}

/// A choice of saved method on the page.
struct MethodChoice {
    id: String,
    label: String,
    checked: bool,
}

/// One invoice on the page: what it owes, what this payment pays, what is left.
struct Line {
    number: String,
    due: String,
    overdue: bool,
    amount_due: String,
    pays: String,
    left: String,
}

#[derive(Template)]
#[template(path = "portal_pay.html")]
struct PayPage {
    nav: Nav,
    csrf: String,
    /// The idempotency key of the confirm form: one payment however often it is sent.
    key: String,
    error: Option<String>,
    /// The invoice numbers as chosen (they go round again in the forms).
    chosen: Vec<String>,
    lines: Vec<Line>,
    total_due: String,
    amount: String,
    /// What will be charged, where every method charges the same (no card surcharge).
    total: String,
    one_total: bool,
    /// The lump sum typed, if any.
    asked: String,
    allow_partial: bool,
    method: Option<String>,
    methods: Vec<MethodChoice>,
    /// Why there is no confirm button (no saved method).
    closed: Option<String>,
    /// The split shown, as posted back: "INV-1=120.00;INV-2=80.00".
    expected: String,
}

/// The page's form fields (`invoice` repeats, so they are read as pairs).
#[derive(Default)]
struct PayForm {
    csrf: String,
    key: String,
    invoices: Vec<String>,
    amount: String,
    method: Option<String>,
    expected: String,
}

impl PayForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> PayForm {
        let mut form = PayForm::default();
        for (name, value) in pairs {
            match name.as_str() {
                "csrf" => form.csrf = value,
                "key" => form.key = value,
                "invoice" if !value.trim().is_empty() && !form.invoices.contains(&value) => {
                    form.invoices.push(value);
                }
                "amount" => form.amount = value.trim().to_owned(),
                "method" if !value.is_empty() => form.method = Some(value),
                "expected" => form.expected = value,
                _ => {}
            }
        }
        form
    }
}

/// "INV-1=120.00;INV-2=80.00": the split a page showed.
fn split_text(p: &Preview) -> String {
    p.parts
        .iter()
        .map(|a| format!("{}={}", a.invoice, a.amount.amount_string()))
        .collect::<Vec<_>>()
        .join(";")
}

/// The page for `form`'s invoices, with `error` above it.
async fn render(
    state: &AppState,
    parts: &Parts,
    (user, org): (User, domain::Org),
    status: StatusCode,
    form: &PayForm,
    error: Option<String>,
) -> Response {
    let invoices: Vec<InvoiceNumber> = match invoice_numbers(&form.invoices) {
        Ok(numbers) => numbers,
        Err(_) => return not_found(),
    };
    let asked = (!form.amount.is_empty()).then_some(form.amount.as_str());
    let mut error = error;
    let mut status = status;
    // Each method's total is on its label: the split needs no method.
    let mut seen =
        app::pay_several::preview(state, &org.slug, &user.id, &invoices, asked, None).await;
    // A refused amount still shows the invoices, split as if paid in full.
    if let Err(
        e @ (PayError::InvalidAmount(_)
        | PayError::PartialNotAllowed(_)
        | PayError::Allocation(
            domain::AllocationError::Zero | domain::AllocationError::MoreThanDue(_),
        )),
    ) = &seen
    {
        error = Some(app::notices::capitalised(&e.to_string()));
        status = StatusCode::UNPROCESSABLE_ENTITY;
        seen = app::pay_several::preview(state, &org.slug, &user.id, &invoices, None, None).await;
    }
    let csrf = Csrf::for_form(&parts.headers, is_https(parts), state.ids.as_ref());
    let today = app::schedules::local_today(&org, state.clock.now());
    let mut view = PayPage {
        csrf: csrf.token,
        key: state.ids.ulid(),
        error,
        chosen: form.invoices.clone(),
        lines: Vec::new(),
        total_due: String::new(),
        amount: String::new(),
        total: String::new(),
        one_total: true,
        asked: form.amount.clone(),
        allow_partial: org.settings.allow_partial,
        method: form.method.clone(),
        methods: Vec::new(),
        closed: None,
        expected: String::new(),
        nav: Nav::new(&user, &org, ""),
    };
    let seen = match seen {
        Ok(seen) => seen,
        Err(PayError::NotFound) => return not_found(),
        Err(e @ (PayError::Accounting(_) | PayError::Store(_))) => return unavailable(&e),
        Err(PayError::Allocation(domain::AllocationError::NoInvoices)) => {
            view.error = Some("Choose at least one invoice on the dashboard.".to_owned());
            return with_cookie(page(StatusCode::UNPROCESSABLE_ENTITY, &view), csrf.set);
        }
        Err(e) => {
            let why = format!(
                "{}. Go back and choose again.",
                app::notices::capitalised(&e.to_string())
            );
            view.error = Some(match view.error.take() {
                Some(first) => format!("{first} {why}"),
                None => why,
            });
            return with_cookie(page(StatusCode::CONFLICT, &view), csrf.set);
        }
    };
    let customer = &seen.invoices[0].customer_id;
    let usable = match app::methods::usable_for(state, &org.slug, &user.id, customer).await {
        Ok(methods) => methods,
        Err(e) => return unavailable(&e),
    };
    // Where the org adds a card surcharge, each method says what it would charge in all (no
    // script recomputes a total when the choice changes).
    let rules = &org.settings.surcharges;
    let in_all = |m: &app::ports::SavedMethod| {
        let surcharge = match m.kind.as_str() {
            "card" => domain::card_surcharge(rules, &m.brand, seen.amount).ok(),
            _ => None,
        };
        let total = seen
            .amount
            .checked_add(surcharge.unwrap_or(domain::Money::zero(seen.amount.currency())))
            .unwrap_or(seen.amount);
        format!("{} · {total} in all", method_label(m))
    };
    view.methods = usable
        .iter()
        .filter(|m| !app::methods::expired_by(m, today))
        .map(|m| MethodChoice {
            id: m.id.to_string(),
            label: if rules.is_empty() {
                method_label(m)
            } else {
                in_all(m)
            },
            checked: form.method.as_deref() == Some(m.id.as_str()),
        })
        .collect();
    view.one_total = rules.is_empty();
    if !view.methods.iter().any(|m| m.checked)
        && let Some(first) = view.methods.first_mut()
    {
        first.checked = true; // The default comes first.
    }
    if view.methods.is_empty() {
        view.closed = Some(
            "You have no saved card or bank account for these invoices. Save one on the \
             Payment methods page, then come back."
                .to_owned(),
        );
    }
    let zero = domain::Money::zero(seen.amount.currency());
    view.lines = seen
        .invoices
        .iter()
        .map(|i| {
            let pays = seen.part_of(&i.number).unwrap_or(zero);
            Line {
                number: i.number.to_string(),
                due: day(i.due_date),
                overdue: i.due_date < today,
                amount_due: i.amount_due.to_string(),
                pays: pays.to_string(),
                left: i.amount_due.checked_sub(pays).unwrap_or(zero).to_string(),
            }
        })
        .collect();
    view.total_due = seen.total_due.to_string();
    view.amount = seen.amount.to_string();
    view.total = seen.amount.to_string();
    view.expected = split_text(&seen);
    with_cookie(page(status, &view), csrf.set)
}

/// `GET /portal/orgs/{org}/pay?invoice=A&invoice=B[&amount=..]`: the split, and the button.
async fn pay_page(
    State(state): State<AppState>,
    parts: Parts,
    Path(org): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let member = match member_of(&state, &parts, &org, dashboard_path).await {
        Ok(member) => member,
        Err(response) => return response,
    };
    let form = PayForm::from_pairs(pairs);
    render(&state, &parts, member, StatusCode::OK, &form, None).await
}

/// `POST /portal/orgs/{org}/pay`: pays what the page showed, then shows the payment.
async fn pay_submit(
    State(state): State<AppState>,
    parts: Parts,
    Path(org): Path<String>,
    ClientAddr(client): ClientAddr,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let member = match member_of(&state, &parts, &org, dashboard_path).await {
        Ok(member) => member,
        Err(response) => return response,
    };
    let form = PayForm::from_pairs(pairs);
    if let Some(expired) = csrf_refused(&parts.headers, &form.csrf) {
        return expired;
    }
    let (user, org) = (&member.0, &member.1);
    let Some(method) = form.method.clone() else {
        let why = "Choose the saved card or bank account to pay with.".to_owned();
        return render(
            &state,
            &parts,
            member,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            Some(why),
        )
        .await;
    };
    let asked = (!form.amount.is_empty()).then_some(form.amount.as_str());
    let mut headers = HeaderMap::new();
    match HeaderValue::from_str(&form.key) {
        Ok(key) => headers.insert(idempotent::HEADER, key),
        Err(_) => return crate::html::form_expired(),
    };
    let body = PaySeveralBody {
        invoices: form.invoices.clone(),
        amount: asked.map(str::to_owned),
        method_id: method,
        email: None,
        // What the page showed must still be what will be paid.
        expected: Some(expected_of(&form.expected)),
    };
    let answer = pay_several(
        &state,
        &org.slug.to_string(),
        user.clone(),
        client,
        &headers,
        body,
    )
    .await;
    let status = answer.status();
    let json: serde_json::Value = match to_bytes(answer.into_body(), 1 << 20).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    if status.is_success()
        && let Some(id) = json["id"].as_str()
    {
        let to = format!("/portal/orgs/{}/payments/{id}", org.slug);
        return Redirect::to(&to).into_response();
    }
    let detail = json["detail"]
        .as_str()
        .unwrap_or("the payment could not be made");
    let why = match json["code"].as_str() {
        Some("payment_declined") => {
            format!("The payment was declined: {detail}. Nothing was charged; try another method.")
        }
        Some("allocation_changed") => {
            "The balances changed since the page was shown, and nothing was charged.".to_owned()
        }
        Some("request_in_progress") => {
            "This payment is being made. Look at the dashboard in a moment.".to_owned()
        }
        _ => app::notices::capitalised(detail),
    };
    let status = if status.is_client_error() || status.is_server_error() {
        status
    } else {
        StatusCode::BAD_GATEWAY
    };
    render(&state, &parts, member, status, &form, Some(why)).await
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pay))
        .routes(routes!(preview))
}

pub(crate) fn pages() -> Router<AppState> {
    Router::new().route("/portal/orgs/{org}/pay", get(pay_page).post(pay_submit))
}
