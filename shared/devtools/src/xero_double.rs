//! A double of Xero (issue 11): the OAuth2 identity service (`/connect/token`, the consent
//! page `/identity/connect/authorize`, `/connections`) and the part of the Accounting API
//! Paybridge uses (`/api.xro/2.0/Organisation`, `Invoices`, `Payments`), in-process on
//! 127.0.0.1, for the Xero adapter's tests and the end-to-end suites.
//!
//! Shapes follow Xero's OpenAPI spec (`xero_accounting.yaml`): PascalCase members, the
//! `{"Id","Status","ProviderName","DateTimeUTC","Invoices":[...]}` envelopes, dates as
//! `"/Date(1552348800000+0000)/"` with `DateString` / `DueDateString` beside them, and
//! validation errors as `400 {"ErrorNumber":10,"Type":"ValidationException","Message",
//! "Elements":[{..., "ValidationErrors":[{"Message"}]}]}`.
//!
//! * One organisation (tenant) per double ([`XeroDouble::tenant_id`]). Apps are registered
//!   with [`XeroDouble::add_app`]; [`XeroDouble::connect`] gives an app a ready connection
//!   (as after the admin's consent), or the consent page does it with a code.
//! * Access tokens live 30 minutes of the double's clock ([`XeroDouble::advance`]) or until
//!   [`XeroDouble::expire_access_tokens`]; refresh tokens are single-use (a used one is
//!   `400 {"error":"invalid_grant"}`), each refresh gives a new pair.
//! * Every API call needs `Authorization: Bearer <valid token>` (else 401, Xero's
//!   `{"Title":"Unauthorized",...}`) and `xero-tenant-id` of a tenant the app is connected to
//!   (else 403). Each counts against the tenant's 60 a minute and 5000 a day (429 with
//!   `Retry-After` and `X-Rate-Limit-Problem` past them); every answer carries
//!   `X-MinLimit-Remaining`, `X-DayLimit-Remaining` and `X-AppMinLimit-Remaining`.
//! * `PUT /Invoices` and `PUT /Payments` honour `Idempotency-Key`: a key seen with a successful
//!   answer replays that answer byte for byte and creates nothing (failed answers are not
//!   kept, so a corrected retry goes through).
//! * `PUT /Payments` takes a batch: one payment an element, each on its own invoice (several
//!   on one invoice may not take more than it owes together). With `summarizeErrors` absent or
//!   `true` (Xero's behaviour by default) one bad element refuses the whole batch: `400` with
//!   every element in `Elements`, the bad ones with `ValidationErrors`, nothing created. With
//!   `summarizeErrors=false` the good ones are created and the answer is `200` with each
//!   element in order, `StatusAttributeString` `OK` (the payment) or `ERROR` (the request's
//!   element with its `ValidationErrors`); that answer is kept for its key like any `200`.
//! * Faults are scripted per route with [`XeroDouble::fail_next`] and consumed in order.
//!   A [`Fault::Delay`] lets the request be processed and holds its answer (to a client that
//!   timed out, the answer was lost).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime};

/// The Accounting API's path prefix, as on `api.xero.com`.
pub const API: &str = "/api.xro/2.0";
/// How long an access token is accepted.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::minutes(30);
/// Calls a tenant may make a minute, and a day; calls an app may make a minute.
pub const MINUTE_LIMIT: u32 = 60;
pub const DAY_LIMIT: u32 = 5000;
pub const APP_MINUTE_LIMIT: u32 = 10_000;
/// Invoices per page when `page` is given.
pub const PAGE_SIZE: usize = 100;
/// The scopes granted.
pub const SCOPES: &str =
    "offline_access accounting.transactions accounting.contacts.read accounting.settings.read";

/// An invoice to add to the double's organisation. Amounts are decimal text ("115.00").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XeroInvoice {
    pub number: String,
    pub contact_id: String,
    pub contact_name: String,
    pub total: String,
    pub amount_due: String,
    /// "NZD", "USD", ...
    pub currency: String,
    /// "AUTHORISED", "PAID", "DRAFT", "SUBMITTED", "VOIDED", "DELETED"
    pub status: String,
    pub date: Date,
    pub due_date: Date,
}

impl XeroInvoice {
    /// An approved sales invoice with nothing paid yet.
    pub fn authorised(number: &str, contact_id: &str, total: &str, currency: &str) -> XeroInvoice {
        XeroInvoice {
            number: number.to_owned(),
            contact_id: contact_id.to_owned(),
            contact_name: format!("Customer {contact_id}"),
            total: total.to_owned(),
            amount_due: total.to_owned(),
            currency: currency.to_owned(),
            status: "AUTHORISED".to_owned(),
            date: time::macros::date!(2026 - 03 - 02),
            due_date: time::macros::date!(2026 - 04 - 01),
        }
    }
}

/// An invoice as the double holds it now (what tests look at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XeroInvoiceState {
    pub invoice_id: String,
    pub number: String,
    /// "ACCREC" (sales) or "ACCPAY"
    pub kind: String,
    pub contact_id: String,
    pub status: String,
    pub currency: String,
    pub total: String,
    pub amount_due: String,
    pub amount_paid: String,
    pub reference: String,
    /// Each line's `AccountCode` and `LineAmount`.
    pub lines: Vec<(String, String)>,
}

/// A payment as the double holds it (deleted ones too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XeroPayment {
    pub payment_id: String,
    pub invoice_id: String,
    pub invoice_number: String,
    /// "12.30"
    pub amount: String,
    pub account_code: String,
    pub date: Date,
    pub reference: String,
    pub idempotency_key: Option<String>,
    pub deleted: bool,
}

/// Where a scripted fault applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/api.xro/2.0/Payments...`
    Payments,
    /// `/api.xro/2.0/Invoices...`
    Invoices,
    /// `/connect/token`
    Token,
    /// Any request.
    Any,
}

impl Route {
    fn matches(self, path: &str) -> bool {
        match self {
            Route::Payments => path.starts_with(&format!("{API}/Payments")),
            Route::Invoices => path.starts_with(&format!("{API}/Invoices")),
            Route::Token => path == "/connect/token",
            Route::Any => true,
        }
    }
}

/// A scripted fault, in place of (or, for `Delay`, on top of) the normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This status with a short body; nothing is processed.
    Status(u16),
    /// 429 with `Retry-After` and `X-Rate-Limit-Problem` ("minute", "day", ...); nothing is
    /// processed.
    RateLimited {
        retry_after_secs: u64,
        problem: &'static str,
    },
    /// Processed as usual, answered after this long.
    Delay(std::time::Duration),
}

struct Code {
    client_id: String,
    redirect_uri: String,
    expires: OffsetDateTime,
}

struct Access {
    client_id: String,
    expires: OffsetDateTime,
}

struct Refresh {
    client_id: String,
    used: bool,
}

struct Connection {
    id: String,
    client_id: String,
    tenant_id: String,
    tenant_type: &'static str,
    tenant_name: String,
    created: OffsetDateTime,
}

struct Line {
    id: String,
    description: String,
    quantity: i64,
    unit_amount: i64,
    account_code: String,
    line_amount: i64,
}

struct Inv {
    id: String,
    number: String,
    kind: String,
    contact_id: String,
    contact_name: String,
    date: Date,
    due_date: Date,
    status: String,
    currency: String,
    total: i64,
    amount_due: i64,
    amount_paid: i64,
    reference: String,
    lines: Vec<Line>,
    fully_paid_on: Option<Date>,
    updated: OffsetDateTime,
}

struct Pay {
    id: String,
    invoice_id: String,
    amount: i64,
    account_code: String,
    date: Date,
    reference: String,
    key: Option<String>,
    deleted: bool,
    updated: OffsetDateTime,
}

struct Account {
    id: String,
    code: String,
    /// "BANK" or "REVENUE"
    kind: &'static str,
}

/// A payment of a `PUT /Payments` element that passed validation, before it is made.
struct PlannedPayment {
    /// Index into the invoices.
    invoice: usize,
    amount: i64,
    account_code: String,
    date: Date,
    reference: String,
}

/// An answer before the limit headers are added.
struct Answer {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(status: u16, value: &Value) -> Answer {
        Answer {
            status,
            content_type: "application/json; charset=utf-8",
            headers: Vec::new(),
            body: serde_json::to_vec(value).expect("JSON"),
        }
    }
}

struct Inner {
    tenant_id: String,
    tenant_name: String,
    apps: HashMap<String, String>,
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    connections: Vec<Connection>,
    practice_tenants: Vec<(String, String)>,
    accounts: Vec<Account>,
    invoices: Vec<Inv>,
    payments: Vec<Pay>,
    replays: HashMap<String, Answer>,
    calls: Vec<String>,
    faults: Vec<(Route, VecDeque<Fault>)>,
    minute_start: OffsetDateTime,
    minute_used: u32,
    app_minute_used: u32,
    day: Date,
    day_used: u32,
    offset: Duration,
    seq: u64,
    salt: u32,
}

type Shared = Arc<Mutex<Inner>>;

/// The double: an HTTP server on 127.0.0.1 with a runtime of its own, stopped when dropped.
pub struct XeroDouble {
    shared: Shared,
    addr: SocketAddr,
    _server: crate::served::Served,
}

impl std::fmt::Debug for XeroDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "XeroDouble({})", self.addr)
    }
}

impl XeroDouble {
    /// Starts a double on a free port of 127.0.0.1: one organisation, accounts "090" (bank),
    /// "200" and "260" (revenue), no apps, no invoices.
    pub async fn start() -> XeroDouble {
        let (listener, addr) = crate::served::local_listener();
        let now = OffsetDateTime::now_utc();
        let salt = (now.unix_timestamp_nanos() as u64 ^ u64::from(addr.port())) as u32;
        let mut inner = Inner {
            tenant_id: String::new(),
            tenant_name: "Paybridge Demo Company (double)".to_owned(),
            apps: HashMap::new(),
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            connections: Vec::new(),
            practice_tenants: Vec::new(),
            accounts: Vec::new(),
            invoices: Vec::new(),
            payments: Vec::new(),
            replays: HashMap::new(),
            calls: Vec::new(),
            faults: Vec::new(),
            minute_start: now,
            minute_used: 0,
            app_minute_used: 0,
            day: now.date(),
            day_used: 0,
            offset: Duration::ZERO,
            seq: 0,
            salt,
        };
        inner.tenant_id = inner.uuid(1);
        for (code, kind) in [("090", "BANK"), ("200", "REVENUE"), ("260", "REVENUE")] {
            let id = inner.uuid(2);
            inner.accounts.push(Account {
                id,
                code: code.to_owned(),
                kind,
            });
        }
        let shared: Shared = Arc::new(Mutex::new(inner));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = crate::served::Served::start("xero-double", listener, app);
        XeroDouble {
            shared,
            addr,
            _server: server,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The origin serving all of Xero's hosts (`http://127.0.0.1:PORT`), for
    /// `accounting::Endpoints::xero_at`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The organisation's tenant id (`xero-tenant-id`).
    pub fn tenant_id(&self) -> String {
        self.inner().tenant_id.clone()
    }

    /// Registers an app (its OAuth2 client).
    pub fn add_app(&self, client_id: &str, client_secret: &str) {
        self.inner()
            .apps
            .insert(client_id.to_owned(), client_secret.to_owned());
    }

    /// A ready connection of the app to the organisation, as after the admin's consent:
    /// (tenant id, access token, refresh token).
    pub fn connect(&self, client_id: &str) -> (String, String, String) {
        let mut inner = self.inner();
        assert!(
            inner.apps.contains_key(client_id),
            "add_app({client_id}) first"
        );
        inner.connect(client_id);
        let (access, refresh) = inner.issue(client_id);
        (inner.tenant_id.clone(), access, refresh)
    }

    /// Lists a practice (non-organisation) tenant in every app's `/connections` too.
    pub fn add_practice_tenant(&self, name: &str) {
        let mut inner = self.inner();
        let id = inner.uuid(9);
        inner.practice_tenants.push((id, name.to_owned()));
    }

    /// Adds an account (`kind` "BANK" takes payments; "REVENUE" takes invoice lines).
    pub fn add_account(&self, code: &str, bank: bool) {
        let mut inner = self.inner();
        let id = inner.uuid(2);
        inner.accounts.push(Account {
            id,
            code: code.to_owned(),
            kind: if bank { "BANK" } else { "REVENUE" },
        });
    }

    /// The account codes and kinds ("090" BANK, "200" REVENUE, "260" REVENUE by default).
    pub fn account_codes(&self) -> Vec<(String, String)> {
        self.inner()
            .accounts
            .iter()
            .map(|a| (a.code.clone(), a.kind.to_owned()))
            .collect()
    }

    /// Adds a sales invoice; returns its InvoiceID.
    pub fn add_invoice(&self, invoice: XeroInvoice) -> String {
        let mut inner = self.inner();
        let id = inner.uuid(3);
        let total = dec(&invoice.total).expect("a decimal total");
        let due = dec(&invoice.amount_due).expect("a decimal amount due");
        let now = inner.now();
        let line_id = inner.uuid(4);
        inner.invoices.push(Inv {
            id: id.clone(),
            number: invoice.number.clone(),
            kind: "ACCREC".to_owned(),
            contact_id: invoice.contact_id,
            contact_name: invoice.contact_name,
            date: invoice.date,
            due_date: invoice.due_date,
            status: invoice.status,
            currency: invoice.currency,
            total,
            amount_due: due,
            amount_paid: total - due,
            reference: String::new(),
            lines: vec![Line {
                id: line_id,
                description: format!("Services ({})", invoice.number),
                quantity: ONE,
                unit_amount: total,
                account_code: "200".to_owned(),
                line_amount: total,
            }],
            fully_paid_on: None,
            updated: now,
        });
        id
    }

    /// Sets an invoice's amount due (paid elsewhere in part); zero makes it PAID.
    pub fn set_amount_due(&self, number: &str, amount_due: &str) {
        let mut inner = self.inner();
        let today = inner.now().date();
        let due = dec(amount_due).expect("a decimal amount");
        let inv = inner
            .invoices
            .iter_mut()
            .find(|i| i.number == number)
            .expect("a known invoice");
        inv.amount_due = due;
        inv.amount_paid = inv.total - due;
        if due == 0 {
            inv.status = "PAID".to_owned();
            inv.fully_paid_on = Some(today);
        } else if inv.status == "PAID" {
            inv.status = "AUTHORISED".to_owned();
            inv.fully_paid_on = None;
        }
    }

    /// The invoice was paid in full in Xero itself.
    pub fn mark_paid(&self, number: &str) {
        self.set_amount_due(number, "0.00");
    }

    /// Sets an invoice's status ("VOIDED", "DRAFT", ...).
    pub fn set_status(&self, number: &str, status: &str) {
        let mut inner = self.inner();
        if let Some(inv) = inner.invoices.iter_mut().find(|i| i.number == number) {
            inv.status = status.to_owned();
        }
    }

    pub fn invoice(&self, number: &str) -> Option<XeroInvoiceState> {
        self.invoices().into_iter().find(|i| i.number == number)
    }

    /// Every invoice, in the order created.
    pub fn invoices(&self) -> Vec<XeroInvoiceState> {
        self.inner()
            .invoices
            .iter()
            .map(|i| XeroInvoiceState {
                invoice_id: i.id.clone(),
                number: i.number.clone(),
                kind: i.kind.clone(),
                contact_id: i.contact_id.clone(),
                status: i.status.clone(),
                currency: i.currency.clone(),
                total: dec_text(i.total),
                amount_due: dec_text(i.amount_due),
                amount_paid: dec_text(i.amount_paid),
                reference: i.reference.clone(),
                lines: i
                    .lines
                    .iter()
                    .map(|l| (l.account_code.clone(), dec_text(l.line_amount)))
                    .collect(),
            })
            .collect()
    }

    /// Every payment, deleted ones included (see `deleted`), oldest first.
    pub fn payments(&self) -> Vec<XeroPayment> {
        let inner = self.inner();
        inner
            .payments
            .iter()
            .map(|p| XeroPayment {
                payment_id: p.id.clone(),
                invoice_id: p.invoice_id.clone(),
                invoice_number: inner
                    .invoices
                    .iter()
                    .find(|i| i.id == p.invoice_id)
                    .map(|i| i.number.clone())
                    .unwrap_or_default(),
                amount: dec_text(p.amount),
                account_code: p.account_code.clone(),
                date: p.date,
                reference: p.reference.clone(),
                idempotency_key: p.key.clone(),
                deleted: p.deleted,
            })
            .collect()
    }

    /// How many requests had `needle` in their method, path and query
    /// (`"PUT /api.xro/2.0/Payments"`, `"/connect/token"`, `"InvoiceNumbers=INV-1"`).
    pub fn calls(&self, needle: &str) -> usize {
        self.inner()
            .calls
            .iter()
            .filter(|c| c.contains(needle))
            .count()
    }

    /// Every request, oldest first, as `"METHOD /path?query"`.
    pub fn requests(&self) -> Vec<String> {
        self.inner().calls.clone()
    }

    /// The next requests on `route` meet these faults, one each, in order.
    pub fn fail_next(&self, route: Route, faults: Vec<Fault>) {
        self.inner().faults.push((route, faults.into()));
    }

    /// Every access token issued so far stops working (as after 30 minutes).
    pub fn expire_access_tokens(&self) {
        let mut inner = self.inner();
        let past = inner.now() - Duration::seconds(1);
        for token in inner.access.values_mut() {
            token.expires = past;
        }
    }

    /// Sets what is left of the tenant's minute (a fresh 60-second window starts now) and
    /// day budgets.
    pub fn set_remaining(&self, minute: u32, day: u32) {
        let mut inner = self.inner();
        inner.minute_start = inner.now();
        inner.minute_used = MINUTE_LIMIT.saturating_sub(minute);
        inner.day = inner.now().date();
        inner.day_used = DAY_LIMIT.saturating_sub(day);
    }

    /// Moves the double's clock on (token expiry, rate-limit windows).
    pub fn advance(&self, by: Duration) {
        self.inner().offset += by;
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query: HashMap<String, String> = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let (answer, hold) = {
        let mut inner = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let call = match uri.query() {
            Some(q) => format!("{method} {path}?{q}"),
            None => format!("{method} {path}"),
        };
        inner.calls.push(call);
        let fault = inner.take_fault(&path);
        let mut hold = None;
        let answer = match fault {
            Some(Fault::Status(status)) => Some(fault_answer(status)),
            Some(Fault::RateLimited {
                retry_after_secs,
                problem,
            }) => Some(rate_limited(retry_after_secs, problem)),
            Some(Fault::Delay(d)) => {
                hold = Some(d);
                None
            }
            None => None,
        };
        let mut answer =
            answer.unwrap_or_else(|| inner.route(&method, &path, &query, &headers, &body));
        inner.add_limit_headers(&mut answer);
        (answer, hold)
    };
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    let mut response = (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    )
        .into_response();
    for (name, value) in answer.headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn fault_answer(status: u16) -> Answer {
    let title = match status {
        500 => "An error occurred",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    Answer::json(
        status,
        &json!({"Title": title, "Status": status, "Detail": "A scripted fault of the Xero double"}),
    )
}

fn rate_limited(retry_after_secs: u64, problem: &str) -> Answer {
    let mut answer = Answer::json(
        429,
        &json!({"Title": "Too Many Requests", "Status": 429, "Detail": format!("Rate limit exceeded: {problem}")}),
    );
    answer
        .headers
        .push(("retry-after", retry_after_secs.to_string()));
    answer
        .headers
        .push(("x-rate-limit-problem", problem.to_owned()));
    answer
}

fn problem(status: u16, title: &str, detail: &str) -> Answer {
    Answer::json(
        status,
        &json!({
            "Type": null,
            "Title": title,
            "Status": status,
            "Detail": detail,
            "Instance": "00000000-0000-0000-0000-000000000000",
            "Extensions": {},
        }),
    )
}

fn oauth_error(status: u16, error: &str) -> Answer {
    Answer::json(status, &json!({ "error": error }))
}

fn validation(elements: Vec<Value>) -> Answer {
    Answer::json(
        400,
        &json!({
            "ErrorNumber": 10,
            "Type": "ValidationException",
            "Message": "A validation exception occurred",
            "Elements": elements,
        }),
    )
}

/// One unit in the double's fixed-point amounts (four decimal places, as Xero's `unitdp`).
const ONE: i64 = 10_000;

/// "115", "115.5", "115.50", "0.1234" as ten-thousandths; None for anything else.
fn dec(text: &str) -> Option<i64> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 4 {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<4}").parse().ok()?
    };
    let value = whole.checked_mul(ONE)?.checked_add(frac)?;
    Some(if negative { -value } else { value })
}

/// Two decimal places at least, up to four: "115.00", "0.1234".
fn dec_text(value: i64) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let v = value.unsigned_abs();
    let whole = v / ONE as u64;
    let frac = v % ONE as u64;
    let mut fraction = format!("{frac:04}");
    while fraction.len() > 2 && fraction.ends_with('0') {
        fraction.pop();
    }
    format!("{sign}{whole}.{fraction}")
}

/// An amount as a JSON number with its decimal text.
fn dec_json(value: i64) -> Value {
    Value::Number(serde_json::from_str(&dec_text(value)).expect("a decimal is a JSON number"))
}

/// An amount from a JSON number (or numeric string) of a request.
fn dec_of(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => dec(&n.to_string()),
        Value::String(s) => dec(s),
        _ => None,
    }
}

fn ms_date(date: Date) -> String {
    let ms = date.midnight().assume_utc().unix_timestamp() * 1000;
    format!("/Date({ms}+0000)/")
}

fn ms_time(at: OffsetDateTime) -> String {
    let ms = at.unix_timestamp_nanos() / 1_000_000;
    format!("/Date({ms}+0000)/")
}

fn date_string(date: Date) -> String {
    format!("{date}T00:00:00")
}

/// "2019-03-12", "2019-03-12T00:00:00" or "/Date(1552348800000+0000)/".
fn parse_date(text: &str) -> Option<Date> {
    if let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|t| t.strip_suffix(")/"))
    {
        let digits: String = inner
            .chars()
            .enumerate()
            .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '-'))
            .map(|(_, c)| c)
            .collect();
        let ms: i64 = digits.parse().ok()?;
        return OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .ok()
            .map(OffsetDateTime::date);
    }
    let day = text.get(..10)?;
    Date::parse(
        day,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The items of a `{"Payments":[...]}` / `{"Invoices":[...]}` body, or a single object.
fn items(body: &Value, wrapper: &str) -> Vec<Value> {
    match body.get(wrapper) {
        Some(Value::Array(list)) => list.clone(),
        _ if body.is_object() => vec![body.clone()],
        _ => Vec::new(),
    }
}

impl Inner {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset
    }

    fn uuid(&mut self, kind: u16) -> String {
        self.seq += 1;
        format!(
            "{:08x}-{kind:04x}-4{:03x}-8{:03x}-{:012x}",
            self.salt,
            (self.seq >> 12) & 0xfff,
            self.seq & 0xfff,
            self.seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) & 0xffff_ffff_ffff
        )
    }

    fn token(&mut self, prefix: &str) -> String {
        format!("{prefix}.{}", ulid::Ulid::new())
    }

    fn connect(&mut self, client_id: &str) {
        let tenant_id = self.tenant_id.clone();
        if !self
            .connections
            .iter()
            .any(|c| c.client_id == client_id && c.tenant_id == tenant_id)
        {
            let id = self.uuid(5);
            let created = self.now();
            let tenant_name = self.tenant_name.clone();
            self.connections.push(Connection {
                id,
                client_id: client_id.to_owned(),
                tenant_id,
                tenant_type: "ORGANISATION",
                tenant_name,
                created,
            });
        }
    }

    /// A new access and refresh token pair for the app.
    fn issue(&mut self, client_id: &str) -> (String, String) {
        let access = self.token("xda");
        let refresh = self.token("xdr");
        let expires = self.now() + ACCESS_TOKEN_LIFETIME;
        self.access.insert(
            access.clone(),
            Access {
                client_id: client_id.to_owned(),
                expires,
            },
        );
        self.refresh.insert(
            refresh.clone(),
            Refresh {
                client_id: client_id.to_owned(),
                used: false,
            },
        );
        (access, refresh)
    }

    fn take_fault(&mut self, path: &str) -> Option<Fault> {
        let entry = self
            .faults
            .iter_mut()
            .find(|(route, faults)| route.matches(path) && !faults.is_empty())?;
        let fault = entry.1.pop_front();
        self.faults.retain(|(_, f)| !f.is_empty());
        fault
    }

    fn roll_windows(&mut self) {
        let now = self.now();
        if now - self.minute_start >= Duration::minutes(1) {
            self.minute_start = now;
            self.minute_used = 0;
            self.app_minute_used = 0;
        }
        if now.date() != self.day {
            self.day = now.date();
            self.day_used = 0;
        }
    }

    fn add_limit_headers(&mut self, answer: &mut Answer) {
        self.roll_windows();
        answer.headers.push((
            "x-minlimit-remaining",
            MINUTE_LIMIT.saturating_sub(self.minute_used).to_string(),
        ));
        answer.headers.push((
            "x-daylimit-remaining",
            DAY_LIMIT.saturating_sub(self.day_used).to_string(),
        ));
        answer.headers.push((
            "x-appminlimit-remaining",
            APP_MINUTE_LIMIT
                .saturating_sub(self.app_minute_used)
                .to_string(),
        ));
    }

    /// Counts an API call against the tenant's budgets; a 429 when one is spent.
    fn spend(&mut self) -> Result<(), Answer> {
        self.roll_windows();
        let now = self.now();
        if self.day_used >= DAY_LIMIT {
            let midnight = (self.day.next_day().expect("a next day"))
                .midnight()
                .assume_utc();
            return Err(rate_limited(
                (midnight - now).whole_seconds().max(1) as u64,
                "day",
            ));
        }
        if self.minute_used >= MINUTE_LIMIT {
            let wait = Duration::minutes(1) - (now - self.minute_start);
            return Err(rate_limited(wait.whole_seconds().max(1) as u64, "minute"));
        }
        self.minute_used += 1;
        self.app_minute_used += 1;
        self.day_used += 1;
        Ok(())
    }

    fn bearer(&self, headers: &HeaderMap) -> Result<String, Answer> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token else {
            return Err(problem(401, "Unauthorized", "AuthenticationUnsuccessful"));
        };
        match self.access.get(token) {
            Some(a) if a.expires > self.now() => Ok(a.client_id.clone()),
            Some(a) => Err(problem(
                401,
                "Unauthorized",
                &format!(
                    "TokenExpired: token expired at {}",
                    a.expires.format(&Rfc3339).unwrap_or_default()
                ),
            )),
            None => Err(problem(401, "Unauthorized", "AuthenticationUnsuccessful")),
        }
    }

    fn route(
        &mut self,
        method: &Method,
        path: &str,
        query: &HashMap<String, String>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Answer {
        match (method.as_str(), path) {
            ("POST", "/connect/token") => return self.token_endpoint(headers, body),
            ("GET", "/identity/connect/authorize") => return self.consent(query),
            ("GET", "/connections") => {
                return match self.bearer(headers) {
                    Ok(client_id) => self.list_connections(&client_id),
                    Err(a) => a,
                };
            }
            _ => {}
        }
        let Some(rest) = path.strip_prefix(API) else {
            return problem(
                404,
                "Not Found",
                "The resource you're looking for cannot be found",
            );
        };
        let client_id = match self.bearer(headers) {
            Ok(c) => c,
            Err(a) => return a,
        };
        let tenant = headers
            .get("xero-tenant-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let connected = self
            .connections
            .iter()
            .any(|c| c.client_id == client_id && c.tenant_id == tenant);
        if !connected {
            return problem(403, "Forbidden", "AuthenticationUnsuccessful");
        }
        if let Err(a) = self.spend() {
            return a;
        }
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let replay_key = key
            .as_ref()
            .map(|k| format!("{tenant} {method} {rest} {k}"));
        if let Some(k) = &replay_key
            && let Some(first) = self.replays.get(k)
        {
            return Answer {
                status: first.status,
                content_type: first.content_type,
                headers: first.headers.clone(),
                body: first.body.clone(),
            };
        }
        let accept_pdf = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/pdf"));
        let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let answer = match (method.as_str(), segments.as_slice()) {
            ("GET", ["Organisation"]) => self.organisation(),
            ("GET", ["Invoices"]) => self.list_invoices(query),
            ("GET", ["Invoices", id]) => self.one_invoice(id, accept_pdf),
            ("PUT" | "POST", ["Invoices"]) => self.create_invoices(body),
            ("PUT", ["Payments"]) => {
                let summarize = query
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("summarizeErrors"))
                    .is_none_or(|(_, v)| !v.eq_ignore_ascii_case("false"));
                self.create_payments(body, key.as_deref(), summarize)
            }
            ("POST", ["Payments", id]) => self.delete_payment(id, body),
            _ => problem(
                404,
                "Not Found",
                "The resource you're looking for cannot be found",
            ),
        };
        if let Some(k) = replay_key
            && (200..300).contains(&answer.status)
        {
            self.replays.insert(
                k,
                Answer {
                    status: answer.status,
                    content_type: answer.content_type,
                    headers: answer.headers.clone(),
                    body: answer.body.clone(),
                },
            );
        }
        answer
    }

    fn consent(&mut self, query: &HashMap<String, String>) -> Answer {
        let client_id = query.get("client_id").map(String::as_str).unwrap_or("");
        let redirect_uri = query.get("redirect_uri").map(String::as_str).unwrap_or("");
        if query.get("response_type").map(String::as_str) != Some("code")
            || !self.apps.contains_key(client_id)
            || redirect_uri.is_empty()
        {
            return Answer {
                status: 400,
                content_type: "text/plain; charset=utf-8",
                headers: Vec::new(),
                body: b"unauthorized_client: unknown client or bad request".to_vec(),
            };
        }
        let code = self.token("xdc");
        let expires = self.now() + Duration::minutes(5);
        self.codes.insert(
            code.clone(),
            Code {
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                expires,
            },
        );
        let mut location = format!(
            "{redirect_uri}{}code={}",
            if redirect_uri.contains('?') { '&' } else { '?' },
            form_encode(&code)
        );
        location.push_str(&format!("&scope={}", form_encode(SCOPES)));
        if let Some(state) = query.get("state") {
            location.push_str(&format!("&state={}", form_encode(state)));
        }
        Answer {
            status: 302,
            content_type: "text/plain; charset=utf-8",
            headers: vec![("location", location)],
            body: Vec::new(),
        }
    }

    fn token_endpoint(&mut self, headers: &HeaderMap, body: &[u8]) -> Answer {
        let client = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
            });
        let Some((client_id, secret)) = client else {
            return oauth_error(401, "invalid_client");
        };
        if self.apps.get(&client_id) != Some(&secret) {
            return oauth_error(401, "invalid_client");
        }
        let form = String::from_utf8_lossy(body);
        let form: HashMap<String, String> = format!("/?{form}")
            .parse::<Uri>()
            .ok()
            .and_then(|uri| Query::try_from_uri(&uri).ok())
            .map(|Query(q)| q)
            .unwrap_or_default();
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let code = form.get("code").cloned().unwrap_or_default();
                let now = self.now();
                let Some(found) = self.codes.remove(&code) else {
                    return oauth_error(400, "invalid_grant");
                };
                if found.client_id != client_id
                    || found.expires < now
                    || form.get("redirect_uri") != Some(&found.redirect_uri)
                {
                    return oauth_error(400, "invalid_grant");
                }
                self.connect(&client_id);
                self.tokens(&client_id)
            }
            Some("refresh_token") => {
                let token = form.get("refresh_token").cloned().unwrap_or_default();
                match self.refresh.get_mut(&token) {
                    Some(r) if !r.used && r.client_id == client_id => r.used = true,
                    _ => return oauth_error(400, "invalid_grant"),
                }
                self.tokens(&client_id)
            }
            _ => oauth_error(400, "unsupported_grant_type"),
        }
    }

    fn tokens(&mut self, client_id: &str) -> Answer {
        let (access, refresh) = self.issue(client_id);
        Answer::json(
            200,
            &json!({
                "access_token": access,
                "expires_in": ACCESS_TOKEN_LIFETIME.whole_seconds(),
                "token_type": "Bearer",
                "refresh_token": refresh,
                "scope": SCOPES,
            }),
        )
    }

    fn list_connections(&self, client_id: &str) -> Answer {
        let mut list: Vec<Value> = self
            .connections
            .iter()
            .filter(|c| c.client_id == client_id)
            .map(|c| {
                let at = c.created.format(&Rfc3339).unwrap_or_default();
                json!({
                    "id": c.id,
                    "authEventId": c.id,
                    "tenantId": c.tenant_id,
                    "tenantType": c.tenant_type,
                    "tenantName": c.tenant_name,
                    "createdDateUtc": at,
                    "updatedDateUtc": at,
                })
            })
            .collect();
        if !list.is_empty() {
            for (id, name) in &self.practice_tenants {
                list.push(json!({
                    "id": id,
                    "authEventId": id,
                    "tenantId": id,
                    "tenantType": "PRACTICEMANAGER",
                    "tenantName": name,
                    "createdDateUtc": null,
                    "updatedDateUtc": null,
                }));
            }
        }
        Answer::json(200, &Value::Array(list))
    }

    fn envelope(&mut self, key: &str, items: Vec<Value>, pagination: Option<Value>) -> Value {
        let id = self.uuid(6);
        let mut v = json!({
            "Id": id,
            "Status": "OK",
            "ProviderName": "Paybridge",
            "DateTimeUTC": ms_time(self.now()).replace("+0000", ""),
            key: items,
        });
        if let Some(p) = pagination {
            v["pagination"] = p;
        }
        v
    }

    fn organisation(&mut self) -> Answer {
        let org = json!({
            "Name": self.tenant_name,
            "LegalName": self.tenant_name,
            "PaysTax": true,
            "Version": "NZ",
            "OrganisationType": "COMPANY",
            "BaseCurrency": "NZD",
            "CountryCode": "NZ",
            "IsDemoCompany": true,
            "OrganisationStatus": "ACTIVE",
            "ShortCode": "!pBdbl",
            "OrganisationID": self.tenant_id,
            "Timezone": "NEWZEALANDSTANDARDTIME",
        });
        let v = self.envelope("Organisations", vec![org], None);
        Answer::json(200, &v)
    }

    fn invoice_json(&self, inv: &Inv, full: bool) -> Value {
        let mut v = json!({
            "Type": inv.kind,
            "InvoiceID": inv.id,
            "InvoiceNumber": inv.number,
            "Reference": inv.reference,
            "AmountDue": dec_json(inv.amount_due),
            "AmountPaid": dec_json(inv.amount_paid),
            "AmountCredited": dec_json(0),
            "CurrencyRate": 1,
            "HasErrors": false,
            "IsDiscounted": false,
            "HasAttachments": false,
            "Contact": {
                "ContactID": inv.contact_id,
                "Name": inv.contact_name,
                "Addresses": [],
                "Phones": [],
                "ContactGroups": [],
                "ContactPersons": [],
                "HasValidationErrors": false,
            },
            "DateString": date_string(inv.date),
            "Date": ms_date(inv.date),
            "DueDateString": date_string(inv.due_date),
            "DueDate": ms_date(inv.due_date),
            "Status": inv.status,
            "LineAmountTypes": "NoTax",
            "SubTotal": dec_json(inv.total),
            "TotalTax": dec_json(0),
            "Total": dec_json(inv.total),
            "UpdatedDateUTC": ms_time(inv.updated),
            "UpdatedDateUTCString": inv.updated.replace_nanosecond(0).ok().and_then(|t| t.format(&Rfc3339).ok()),
            "CurrencyCode": inv.currency,
        });
        if let Some(day) = inv.fully_paid_on {
            v["FullyPaidOnDate"] = json!(ms_date(day));
        }
        if full {
            v["LineItems"] = inv
                .lines
                .iter()
                .map(|l| {
                    json!({
                        "LineItemID": l.id,
                        "Description": l.description,
                        "Quantity": dec_json(l.quantity),
                        "UnitAmount": dec_json(l.unit_amount),
                        "AccountCode": l.account_code,
                        "TaxType": "NONE",
                        "TaxAmount": dec_json(0),
                        "LineAmount": dec_json(l.line_amount),
                        "Tracking": [],
                    })
                })
                .collect();
            v["Payments"] = self
                .payments
                .iter()
                .filter(|p| p.invoice_id == inv.id && !p.deleted)
                .map(|p| {
                    json!({
                        "PaymentID": p.id,
                        "Date": ms_date(p.date),
                        "Amount": dec_json(p.amount),
                        "Reference": p.reference,
                        "CurrencyRate": 1,
                        "HasAccount": false,
                        "HasValidationErrors": false,
                    })
                })
                .collect();
            v["CreditNotes"] = json!([]);
            v["Prepayments"] = json!([]);
            v["Overpayments"] = json!([]);
        } else {
            v["LineItems"] = json!([]);
        }
        v
    }

    fn list_invoices(&mut self, query: &HashMap<String, String>) -> Answer {
        let list = |name: &str| -> Option<Vec<String>> {
            query.get(name).map(|v| {
                v.split(',')
                    .map(|s| s.trim().trim_matches('"').to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
        };
        let numbers = list("InvoiceNumbers");
        let ids = list("IDs");
        let contacts = list("ContactIDs");
        let statuses = list("Statuses");
        let matching: Vec<&Inv> = self
            .invoices
            .iter()
            .filter(|i| {
                numbers
                    .as_ref()
                    .is_none_or(|n| n.iter().any(|n| n.eq_ignore_ascii_case(&i.number)))
                    && ids
                        .as_ref()
                        .is_none_or(|n| n.iter().any(|n| n.eq_ignore_ascii_case(&i.id)))
                    && contacts
                        .as_ref()
                        .is_none_or(|n| n.iter().any(|n| n.eq_ignore_ascii_case(&i.contact_id)))
                    && statuses
                        .as_ref()
                        .is_none_or(|n| n.iter().any(|n| n == &i.status))
                    && (statuses.is_some() || i.status != "DELETED")
            })
            .collect();
        let page = match query.get("page").map(|p| p.parse::<usize>()) {
            None => None,
            Some(Ok(p)) if p >= 1 => Some(p),
            Some(_) => {
                return validation(vec![
                    json!({"ValidationErrors": [{"Message": "page must be 1 or more"}]}),
                ]);
            }
        };
        let (shown, pagination): (Vec<&Inv>, Option<Value>) = match page {
            None => (matching, None),
            Some(p) => {
                let count = matching.len();
                let shown = matching
                    .into_iter()
                    .skip((p - 1) * PAGE_SIZE)
                    .take(PAGE_SIZE)
                    .collect();
                (
                    shown,
                    Some(json!({
                        "page": p,
                        "pageSize": PAGE_SIZE,
                        "pageCount": count.div_ceil(PAGE_SIZE),
                        "itemCount": count,
                    })),
                )
            }
        };
        let items: Vec<Value> = shown.iter().map(|i| self.invoice_json(i, false)).collect();
        let v = self.envelope("Invoices", items, pagination);
        Answer::json(200, &v)
    }

    fn one_invoice(&mut self, id: &str, pdf: bool) -> Answer {
        let Some(inv) = self
            .invoices
            .iter()
            .find(|i| i.id.eq_ignore_ascii_case(id) || i.number == id)
        else {
            return problem(
                404,
                "Not Found",
                "The resource you're looking for cannot be found",
            );
        };
        if pdf {
            return Answer {
                status: 200,
                content_type: "application/pdf",
                headers: Vec::new(),
                body: pdf_of(&[
                    format!("Tax Invoice {}", inv.number),
                    format!("To: {}", inv.contact_name),
                    format!("Total: {} {}", dec_text(inv.total), inv.currency),
                    format!("Amount due: {} {}", dec_text(inv.amount_due), inv.currency),
                ]),
            };
        }
        let item = self.invoice_json(inv, true);
        let v = self.envelope("Invoices", vec![item], None);
        Answer::json(200, &v)
    }

    fn account(&self, v: Option<&Value>) -> Option<&Account> {
        let v = v?;
        if let Some(code) = str_of(v, "Code") {
            return self.accounts.iter().find(|a| a.code == code);
        }
        let id = str_of(v, "AccountID")?;
        self.accounts.iter().find(|a| a.id.eq_ignore_ascii_case(id))
    }

    fn find_invoice(&self, v: Option<&Value>) -> Option<usize> {
        let v = v?;
        if let Some(id) = str_of(v, "InvoiceID") {
            return self
                .invoices
                .iter()
                .position(|i| i.id.eq_ignore_ascii_case(id));
        }
        let number = str_of(v, "InvoiceNumber")?;
        self.invoices.iter().position(|i| i.number == number)
    }

    fn create_invoices(&mut self, body: &[u8]) -> Answer {
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return validation(vec![
                json!({"ValidationErrors": [{"Message": "The request body could not be read as JSON"}]}),
            ]);
        };
        let requested = items(&body, "Invoices");
        let today = self.now().date();
        let mut planned = Vec::new();
        let mut elements = Vec::new();
        let mut failed = false;
        for item in &requested {
            let mut errors = Vec::new();
            let kind = str_of(item, "Type").unwrap_or("").to_owned();
            if kind != "ACCREC" && kind != "ACCPAY" {
                errors.push("Invoice Type must be specified".to_owned());
            }
            let contact = item.get("Contact");
            let contact_id = contact
                .and_then(|c| str_of(c, "ContactID"))
                .map(str::to_owned);
            let contact_name = contact_id.as_ref().and_then(|id| {
                self.invoices
                    .iter()
                    .find(|i| &i.contact_id == id)
                    .map(|i| i.contact_name.clone())
            });
            if contact_name.is_none() {
                errors.push("The contact could not be found".to_owned());
            }
            let status = str_of(item, "Status").unwrap_or("DRAFT").to_owned();
            if !matches!(status.as_str(), "DRAFT" | "SUBMITTED" | "AUTHORISED") {
                errors.push(format!("Invoice cannot be created with status {status}"));
            }
            let date = str_of(item, "Date").map_or(Some(today), parse_date);
            let due_date = str_of(item, "DueDate").map_or(date, parse_date);
            if date.is_none() || due_date.is_none() {
                errors.push("The date is not valid".to_owned());
            }
            let mut lines = Vec::new();
            for line in item
                .get("LineItems")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let quantity = dec_of(line.get("Quantity")).unwrap_or(ONE);
                let unit = dec_of(line.get("UnitAmount"));
                let code = str_of(&line, "AccountCode").unwrap_or("").to_owned();
                if !self.accounts.iter().any(|a| a.code == code) {
                    errors.push(format!(
                        "Account code '{code}' is not a valid code for this document."
                    ));
                }
                let Some(unit) = unit.filter(|u| *u >= 0) else {
                    errors.push("A line item's UnitAmount is not valid".to_owned());
                    continue;
                };
                let amount = (i128::from(quantity) * i128::from(unit) / i128::from(ONE)) as i64;
                lines.push((
                    str_of(&line, "Description").unwrap_or("").to_owned(),
                    quantity,
                    unit,
                    code,
                    amount,
                ));
            }
            if lines.is_empty() && status == "AUTHORISED" {
                errors.push("An approved invoice needs at least one line item".to_owned());
            }
            let number = str_of(item, "InvoiceNumber").map(str::to_owned);
            if let Some(n) = &number
                && self.invoices.iter().any(|i| &i.number == n)
            {
                errors.push("Invoice # must be unique.".to_owned());
            }
            if errors.is_empty() {
                elements.push(item.clone());
            } else {
                failed = true;
                let mut e = item.clone();
                e["ValidationErrors"] = errors.iter().map(|m| json!({ "Message": m })).collect();
                elements.push(e);
            }
            planned.push((
                kind,
                contact_id.unwrap_or_default(),
                contact_name.unwrap_or_default(),
                status,
                date.unwrap_or(today),
                due_date.unwrap_or(today),
                lines,
                number,
                str_of(item, "Reference").unwrap_or("").to_owned(),
                str_of(item, "CurrencyCode").unwrap_or("NZD").to_owned(),
            ));
        }
        if failed || requested.is_empty() {
            if requested.is_empty() {
                elements.push(json!({"ValidationErrors": [{"Message": "No invoices were given"}]}));
            }
            return validation(elements);
        }
        let mut created = Vec::new();
        for (
            kind,
            contact_id,
            contact_name,
            status,
            date,
            due_date,
            lines,
            number,
            reference,
            currency,
        ) in planned
        {
            let id = self.uuid(3);
            let number = number.unwrap_or_else(|| {
                let mut n = self.invoices.len() + 1;
                loop {
                    let candidate = format!("INV-{n:04}");
                    if !self.invoices.iter().any(|i| i.number == candidate) {
                        break candidate;
                    }
                    n += 1;
                }
            });
            let total: i64 = lines.iter().map(|l| l.4).sum();
            let mut kept = Vec::new();
            for (description, quantity, unit_amount, account_code, line_amount) in lines {
                kept.push(Line {
                    id: self.uuid(4),
                    description,
                    quantity,
                    unit_amount,
                    account_code,
                    line_amount,
                });
            }
            let now = self.now();
            self.invoices.push(Inv {
                id: id.clone(),
                number,
                kind,
                contact_id,
                contact_name,
                date,
                due_date,
                status,
                currency,
                total,
                amount_due: total,
                amount_paid: 0,
                reference,
                lines: kept,
                fully_paid_on: None,
                updated: now,
            });
            created.push(id);
        }
        let items: Vec<Value> = created
            .iter()
            .filter_map(|id| self.invoices.iter().find(|i| &i.id == id))
            .map(|i| self.invoice_json(i, true))
            .collect();
        let v = self.envelope("Invoices", items, None);
        Answer::json(200, &v)
    }

    fn payment_json(&self, p: &Pay) -> Value {
        let inv = self.invoices.iter().find(|i| i.id == p.invoice_id);
        let account = self.accounts.iter().find(|a| a.code == p.account_code);
        json!({
            "PaymentID": p.id,
            "Date": ms_date(p.date),
            "BankAmount": dec_json(p.amount),
            "Amount": dec_json(p.amount),
            "Reference": p.reference,
            "CurrencyRate": 1,
            "PaymentType": "ACCRECPAYMENT",
            "Status": if p.deleted { "DELETED" } else { "AUTHORISED" },
            "UpdatedDateUTC": ms_time(p.updated),
            "HasAccount": true,
            "IsReconciled": false,
            "Account": {
                "AccountID": account.map(|a| a.id.clone()),
                "Code": p.account_code,
            },
            "Invoice": inv.map(|i| self.invoice_json(i, false)),
            "HasValidationErrors": false,
        })
    }

    /// `PUT /Payments`: all or nothing when `summarize` (a 400 naming the bad elements), else
    /// the good elements created and a 200 with every element's outcome.
    fn create_payments(&mut self, body: &[u8], key: Option<&str>, summarize: bool) -> Answer {
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return validation(vec![
                json!({"ValidationErrors": [{"Message": "The request body could not be read as JSON"}]}),
            ]);
        };
        let requested = items(&body, "Payments");
        if requested.is_empty() {
            return validation(vec![
                json!({"ValidationErrors": [{"Message": "No payments were given"}]}),
            ]);
        }
        // Each element: what it would create, or the element with its errors.
        let mut outcomes: Vec<Result<PlannedPayment, Value>> = Vec::new();
        // What earlier items of this request take from each invoice.
        let mut taken: HashMap<usize, i64> = HashMap::new();
        for item in &requested {
            let mut errors = Vec::new();
            let invoice = self.find_invoice(item.get("Invoice")).or_else(|| {
                str_of(item, "InvoiceNumber")
                    .and_then(|n| self.invoices.iter().position(|i| i.number == n))
            });
            let account = self
                .account(item.get("Account"))
                .map(|a| (a.code.clone(), a.kind));
            let amount = dec_of(item.get("Amount"));
            let date = str_of(item, "Date").and_then(parse_date);
            match &account {
                None => errors.push(match item.get("Account").and_then(|a| str_of(a, "Code")) {
                    Some(code) => {
                        format!("Account code '{code}' is not a valid code for this document.")
                    }
                    None => "Account could not be found".to_owned(),
                }),
                Some((_, kind)) if *kind != "BANK" => errors.push(
                    "Payments can only be made to accounts of type BANK or with payments enabled"
                        .to_owned(),
                ),
                Some(_) => {}
            }
            if date.is_none() {
                errors.push("Payment Date must be specified".to_owned());
            }
            match (invoice, amount) {
                (None, _) => errors.push("Invoice could not be found".to_owned()),
                (_, None) => errors.push("Payment Amount must be specified".to_owned()),
                (_, Some(a)) if a <= 0 => {
                    errors.push("Payment amount must be greater than zero".to_owned());
                }
                (Some(i), Some(a)) => {
                    let inv = &self.invoices[i];
                    let left = inv.amount_due - taken.get(&i).copied().unwrap_or(0);
                    if inv.status != "AUTHORISED" {
                        errors.push("Invoice not of valid status for modification".to_owned());
                    } else if a > left {
                        errors.push(
                            "Payment amount exceeds the amount outstanding on this document"
                                .to_owned(),
                        );
                    } else if errors.is_empty() {
                        *taken.entry(i).or_default() += a;
                    }
                }
            }
            if errors.is_empty() {
                outcomes.push(Ok(PlannedPayment {
                    invoice: invoice.unwrap_or_default(),
                    amount: amount.unwrap_or_default(),
                    account_code: account.map(|a| a.0).unwrap_or_default(),
                    date: date.unwrap_or(time::macros::date!(2000 - 01 - 01)),
                    reference: str_of(item, "Reference").unwrap_or("").to_owned(),
                }));
            } else {
                let mut e = item.clone();
                e["ValidationErrors"] = errors.iter().map(|m| json!({ "Message": m })).collect();
                outcomes.push(Err(e));
            }
        }
        let failed = outcomes.iter().any(Result::is_err);
        if failed && summarize {
            let elements = outcomes
                .into_iter()
                .zip(requested)
                .map(|(outcome, item)| outcome.err().unwrap_or(item))
                .collect();
            return validation(elements);
        }
        // Each element: the index of the payment made, or the element with its errors.
        let mut made: Vec<Result<usize, Value>> = Vec::new();
        for outcome in outcomes {
            let PlannedPayment {
                invoice: i,
                amount,
                account_code,
                date,
                reference,
            } = match outcome {
                Ok(planned) => planned,
                Err(e) => {
                    made.push(Err(e));
                    continue;
                }
            };
            let id = self.uuid(7);
            let now = self.now();
            let inv = &mut self.invoices[i];
            inv.amount_due -= amount;
            inv.amount_paid += amount;
            inv.updated = now;
            if inv.amount_due == 0 {
                inv.status = "PAID".to_owned();
                inv.fully_paid_on = Some(date);
            }
            let invoice_id = inv.id.clone();
            self.payments.push(Pay {
                id,
                invoice_id,
                amount,
                account_code,
                date,
                reference,
                key: key.map(str::to_owned),
                deleted: false,
                updated: now,
            });
            made.push(Ok(self.payments.len() - 1));
        }
        // Written once the whole batch is made: an invoice's amounts are those after it.
        let items: Vec<Value> = made
            .into_iter()
            .map(|m| {
                let (mut v, status) = match m {
                    Ok(p) => (self.payment_json(&self.payments[p]), "OK"),
                    Err(mut e) => {
                        e["HasValidationErrors"] = json!(true);
                        (e, "ERROR")
                    }
                };
                if !summarize {
                    v["StatusAttributeString"] = json!(status);
                }
                v
            })
            .collect();
        let v = self.envelope("Payments", items, None);
        Answer::json(200, &v)
    }

    fn delete_payment(&mut self, id: &str, body: &[u8]) -> Answer {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let status = items(&body, "Payments")
            .first()
            .and_then(|p| str_of(p, "Status").map(str::to_owned));
        let Some(p) = self
            .payments
            .iter()
            .position(|p| p.id.eq_ignore_ascii_case(id))
        else {
            return problem(
                404,
                "Not Found",
                "The resource you're looking for cannot be found",
            );
        };
        if status.as_deref() != Some("DELETED") {
            return validation(vec![json!({
                "PaymentID": id,
                "ValidationErrors": [{"Message": "Only a Status of DELETED can be set on a payment"}],
            })]);
        }
        if self.payments[p].deleted {
            return validation(vec![json!({
                "PaymentID": id,
                "ValidationErrors": [{"Message": "This payment has already been deleted"}],
            })]);
        }
        let now = self.now();
        let (invoice_id, amount) = {
            let pay = &mut self.payments[p];
            pay.deleted = true;
            pay.updated = now;
            (pay.invoice_id.clone(), pay.amount)
        };
        if let Some(inv) = self.invoices.iter_mut().find(|i| i.id == invoice_id) {
            inv.amount_due += amount;
            inv.amount_paid -= amount;
            inv.updated = now;
            if inv.status == "PAID" && inv.amount_due > 0 {
                inv.status = "AUTHORISED".to_owned();
                inv.fully_paid_on = None;
            }
        }
        let item = self.payment_json(&self.payments[p]);
        let v = self.envelope("Payments", vec![item], None);
        Answer::json(200, &v)
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A small, valid one-page PDF showing these lines (Helvetica), with a correct xref table.
fn pdf_of(lines: &[String]) -> Vec<u8> {
    let escape = |s: &str| {
        s.chars()
            .filter(char::is_ascii)
            .map(|c| match c {
                '(' | ')' | '\\' => format!("\\{c}"),
                c => c.to_string(),
            })
            .collect::<String>()
    };
    let mut content = String::from("BT /F1 14 Tf 72 740 Td 18 TL\n");
    for line in lines {
        content.push_str(&format!("({}) Tj T*\n", escape(line)));
    }
    content.push_str("ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_owned(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{object}\nendobj\n", i + 1).bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(dec("115"), Some(1_150_000));
        assert_eq!(dec("115.5"), Some(1_155_000));
        assert_eq!(dec("0.1234"), Some(1234));
        assert_eq!(dec("1.23456"), None);
        assert_eq!(dec(".5"), None);
        assert_eq!(dec_text(1_155_000), "115.50");
        assert_eq!(dec_text(1234), "0.1234");
        assert_eq!(dec_json(1_155_000).to_string(), "115.5");
    }

    #[test]
    fn dates_read_both_forms() {
        let d = time::macros::date!(2019 - 03 - 12);
        assert_eq!(ms_date(d), "/Date(1552348800000+0000)/");
        assert_eq!(parse_date("/Date(1552348800000+0000)/"), Some(d));
        assert_eq!(parse_date("2019-03-12"), Some(d));
        assert_eq!(parse_date("2019-03-12T00:00:00"), Some(d));
    }

    #[test]
    fn the_pdf_has_a_consistent_xref() {
        let pdf = pdf_of(&["Tax Invoice INV-0001".to_owned()]);
        let text = String::from_utf8(pdf.clone()).unwrap();
        assert!(text.starts_with("%PDF-1.4"));
        assert!(text.contains("INV-0001"));
        let start: usize = text
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(text[start..].starts_with("xref"));
        for (i, line) in text[start..].lines().skip(3).take(5).enumerate() {
            let offset: usize = line[..10].parse().unwrap();
            assert!(text[offset..].starts_with(&format!("{} 0 obj", i + 1)));
        }
    }
}
