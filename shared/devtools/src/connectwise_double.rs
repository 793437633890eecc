//! A double of the ConnectWise Manage REST API (`/{codebase}apis/3.0`), in-process, for the
//! ConnectWise accounting adapter's tests and the end-to-end suites that pay invoices kept in
//! ConnectWise.
//!
//! What it serves, with ConnectWise's field names (camelCase) and error shape
//! (`{"code","message","errors":[{"code","message","resource","field"}]}`):
//! * `GET /system/info`: the connection test.
//! * `GET /finance/invoices?conditions=...&page=&pageSize=`: conditions `field="text"`,
//!   `field=N`, `field>N` (also `<`, `>=`, `<=`, `!=`) on `id`, `invoiceNumber`, `company/id`,
//!   `company/identifier`, `balance`, `total`, joined by ` and `; text compares ignore case
//!   (as SQL Server does). Pages from 1, 25 a page unless `pageSize` (at most 1000) says
//!   otherwise, a `Link` header with `rel="next"` and `rel="last"` while more follow.
//! * `GET /finance/invoices/{id}` and `/finance/invoices/{id}/pdf` (`%PDF` bytes whose text
//!   holds the invoice number).
//! * `GET|POST /finance/invoices/{id}/payments`, `GET|DELETE
//!   /finance/invoices/{id}/payments/{paymentId}`: a payment reduces the balance (more than
//!   the balance is `400 InvalidObject`), a delete restores it.
//!
//! Every request needs a `clientId` header (else 400) and `Authorization: Basic
//! base64("{company}+{public}:{private}")` of a member added with
//! [`ConnectWiseDouble::add_member`] (else 401). Faults are scripted per route with
//! [`ConnectWiseDouble::fail_next`]. State is per instance (one per test).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use time::Date;

/// The codebase the double serves under (as `api-na.myconnectwise.net` does).
pub const CODEBASE: &str = "v4_6_release/";
/// What `GET /system/info` reports as the version.
pub const VERSION: &str = "v2025.1";

const DEFAULT_PAGE_SIZE: usize = 25;
const MAX_PAGE_SIZE: usize = 1000;

/// An invoice to put in the double. Amounts are decimal text ("1234.50", at most 3 decimals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CwInvoice {
    pub number: String,
    pub company_id: u64,
    pub company_name: String,
    pub total: String,
    pub balance: String,
    /// ISO code for the invoice's `currency.currencyCode`; None leaves `currency` out.
    pub currency: Option<String>,
    pub date: Date,
    pub due_date: Date,
}

/// A payment as the double keeps it (what tests look at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CwPayment {
    pub id: u64,
    pub invoice_id: u64,
    pub invoice_number: String,
    /// The request's `type` ("Payment").
    pub payment_type: String,
    /// Decimal text with at least 2 decimals ("100.00").
    pub amount: String,
    /// As sent ("2026-11-01T00:00:00Z").
    pub payment_date: String,
    /// The API member's public key.
    pub applied_by: String,
}

/// Which requests a scripted fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/finance/invoices/{id}/payments...`, any method.
    Payments,
    /// `POST /finance/invoices/{id}/payments` only (the write, not the look before it).
    PaymentPost,
    /// `POST /finance/invoices/{id}/payments` to this invoice id only (one part of a payment
    /// of several invoices).
    PaymentPostTo(u64),
    /// `/finance/invoices...` other than payments (lists, one invoice, PDFs).
    Invoices,
    /// Every request.
    Any,
}

impl Route {
    fn matches(self, method: &Method, path: &str) -> bool {
        match self {
            Route::Payments => path.contains("/payments"),
            Route::PaymentPost => *method == Method::POST && path.ends_with("/payments"),
            Route::PaymentPostTo(id) => {
                *method == Method::POST && path == format!("/finance/invoices/{id}/payments")
            }
            Route::Invoices => path.starts_with("/finance/invoices") && !path.contains("/payments"),
            Route::Any => true,
        }
    }
}

/// What a scripted fault does to the next request of its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers this status (ConnectWise's error shape) and does nothing.
    Status(u16),
    /// Answers 429 with this `Retry-After` and does nothing.
    RateLimited { retry_after_secs: u64 },
    /// Does the work, then answers this much later (a slow ConnectWise: a client that gave up
    /// does not know whether it was done).
    Delay(Duration),
}

#[derive(Debug, Clone)]
struct Member {
    company: String,
    public: String,
    private: String,
}

#[derive(Debug, Clone)]
struct Stored {
    id: u64,
    number: String,
    company_id: u64,
    company_name: String,
    /// Thousandths of the currency's major unit.
    total: i64,
    balance: i64,
    currency: Option<String>,
    date: Date,
    due_date: Date,
    status: String,
}

#[derive(Debug, Default)]
struct Inner {
    members: Vec<Member>,
    invoices: Vec<Stored>,
    payments: Vec<CwPayment>,
    faults: Vec<(Route, Fault)>,
    /// "METHOD /path?query" of every request, the path after `/{codebase}apis/3.0`.
    calls: Vec<String>,
    seq: u64,
}

type Shared = Arc<Mutex<Inner>>;

/// The double: an HTTP server on 127.0.0.1 with a runtime of its own (so it serves whatever
/// runtime, if any, the test runs on), stopped when dropped.
pub struct ConnectWiseDouble {
    shared: Shared,
    addr: SocketAddr,
    _server: crate::served::Served,
}

impl std::fmt::Debug for ConnectWiseDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnectWiseDouble({})", self.addr)
    }
}

impl ConnectWiseDouble {
    /// Starts a double on a free port of 127.0.0.1, with no members or invoices yet.
    pub async fn start() -> ConnectWiseDouble {
        let (listener, addr) = crate::served::local_listener();
        let shared: Shared = Arc::new(Mutex::new(Inner {
            seq: 1000,
            ..Inner::default()
        }));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = crate::served::Served::start("connectwise-double", listener, app);
        ConnectWiseDouble {
            shared,
            addr,
            _server: server,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The origin, the credentials' `site` (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The credentials' `codebase` ([`CODEBASE`]).
    pub fn codebase(&self) -> String {
        CODEBASE.to_owned()
    }

    /// Accepts this API member's keys for this company id (the login "Company").
    pub fn add_member(&self, company: &str, public_key: &str, private_key: &str) {
        self.inner().members.push(Member {
            company: company.to_owned(),
            public: public_key.to_owned(),
            private: private_key.to_owned(),
        });
    }

    /// Adds an invoice (status "New", type "Standard"); returns its id.
    pub fn add_invoice(&self, invoice: CwInvoice) -> u64 {
        let total = thousandths(&invoice.total).expect("a decimal total");
        let balance = thousandths(&invoice.balance).expect("a decimal balance");
        let mut inner = self.inner();
        let id = inner.next_id();
        inner.invoices.push(Stored {
            id,
            number: invoice.number,
            company_id: invoice.company_id,
            company_name: invoice.company_name,
            total,
            balance,
            currency: invoice.currency,
            date: invoice.date,
            due_date: invoice.due_date,
            status: "New".to_owned(),
        });
        id
    }

    /// Changes an invoice's balance (paid or credited in ConnectWise meanwhile).
    pub fn set_balance(&self, number: &str, balance: &str) {
        let balance = thousandths(balance).expect("a decimal balance");
        let mut inner = self.inner();
        let invoice = inner.by_number(number).expect("a known invoice");
        invoice.balance = balance;
    }

    /// Changes an invoice's billing status name ("Void", "Closed", ...).
    pub fn set_status(&self, number: &str, status: &str) {
        let mut inner = self.inner();
        let invoice = inner.by_number(number).expect("a known invoice");
        invoice.status = status.to_owned();
    }

    /// Deletes an invoice and its payments (as a bookkeeper may in ConnectWise).
    pub fn remove_invoice(&self, number: &str) {
        let mut inner = self.inner();
        let Some(at) = inner.invoices.iter().position(|i| i.number == number) else {
            return;
        };
        let id = inner.invoices.remove(at).id;
        inner.payments.retain(|p| p.invoice_id != id);
    }

    /// An invoice's balance as decimal text ("1234.50"), None if unknown.
    pub fn balance(&self, number: &str) -> Option<String> {
        self.inner().by_number(number).map(|i| decimal(i.balance))
    }

    /// The payments on all invoices now (deleted ones are gone), oldest first.
    pub fn payments(&self) -> Vec<CwPayment> {
        self.inner().payments.clone()
    }

    /// How many requests so far contained this in "METHOD /path?query" (the path after
    /// `/{codebase}apis/3.0`, the query as sent): `calls("POST /finance/invoices")`,
    /// `calls("/pdf")`.
    pub fn calls(&self, path_substring: &str) -> usize {
        self.inner()
            .calls
            .iter()
            .filter(|c| c.contains(path_substring))
            .count()
    }

    /// Scripts faults for the next requests of `route`, used up in order, one a request.
    pub fn fail_next(&self, route: Route, faults: Vec<Fault>) {
        self.inner()
            .faults
            .extend(faults.into_iter().map(|fault| (route, fault)));
    }
}

impl Inner {
    fn next_id(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn by_number(&mut self, number: &str) -> Option<&mut Stored> {
        self.invoices.iter_mut().find(|i| i.number == number)
    }

    fn by_id(&mut self, id: u64) -> Option<&mut Stored> {
        self.invoices.iter_mut().find(|i| i.id == id)
    }

    fn take_fault(&mut self, method: &Method, path: &str) -> Option<Fault> {
        let at = self
            .faults
            .iter()
            .position(|(r, _)| r.matches(method, path))?;
        Some(self.faults.remove(at).1)
    }

    fn member(&self, headers: &HeaderMap) -> Option<Member> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let encoded = value.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, private) = text.split_once(':')?;
        let (company, public) = user.split_once('+')?;
        self.members
            .iter()
            .find(|m| {
                m.company.eq_ignore_ascii_case(company)
                    && m.public == public
                    && m.private == private
            })
            .cloned()
    }
}

/// A whole answer: status, extra headers, body and content type.
struct Answer {
    status: StatusCode,
    headers: Vec<(header::HeaderName, String)>,
    body: Vec<u8>,
    content_type: &'static str,
}

impl Answer {
    fn json(status: StatusCode, body: &Value) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: serde_json::to_vec(body).expect("JSON"),
            content_type: "application/json; charset=utf-8",
        }
    }

    fn error(status: StatusCode, code: &str, message: &str) -> Answer {
        Answer::json(
            status,
            &json!({ "code": code, "message": message, "errors": null }),
        )
    }

    fn invalid(message: &str, resource: &str, field: &str) -> Answer {
        Answer::json(
            StatusCode::BAD_REQUEST,
            &json!({
                "code": "InvalidObject",
                "message": message,
                "errors": [{
                    "code": "InvalidField",
                    "message": message,
                    "resource": resource,
                    "field": field,
                }],
            }),
        )
    }

    fn not_found(what: &str) -> Answer {
        Answer::error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{what} not found"),
        )
    }

    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, self.content_type)],
            self.body,
        )
            .into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let prefix = format!("/{CODEBASE}apis/3.0");
    let Some(path) = uri.path().strip_prefix(&prefix).map(str::to_owned) else {
        return Answer::not_found("Resource").into_response();
    };
    let origin = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}{prefix}"))
        .unwrap_or_default();
    let (answer, delay) = {
        let mut inner = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let call = match uri.query() {
            Some(q) => format!("{method} {path}?{q}"),
            None => format!("{method} {path}"),
        };
        inner.calls.push(call);
        respond(&mut inner, &method, &path, &query, &headers, &body, &origin)
    };
    if let Some(hold) = delay {
        tokio::time::sleep(hold).await;
    }
    answer.into_response()
}

fn respond(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
    origin: &str,
) -> (Answer, Option<Duration>) {
    let client_id = headers
        .get("clientid")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty());
    if !client_id {
        let answer = Answer::error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "clientId header is required. Register one at https://developer.connectwise.com/ClientID",
        );
        return (answer, None);
    }
    let Some(member) = inner.member(headers) else {
        let answer = Answer::error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Authentication failed: the company, public key and private key do not match an API member",
        );
        return (answer, None);
    };
    let mut delay = None;
    match inner.take_fault(method, path) {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let answer = Answer::error(status, "ScriptedFault", "a fault scripted by the test");
            return (answer, None);
        }
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut answer = Answer::error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests, try again later",
            );
            answer
                .headers
                .push((header::RETRY_AFTER, retry_after_secs.to_string()));
            return (answer, None);
        }
        Some(Fault::Delay(hold)) => delay = Some(hold),
        None => {}
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let answer = match (method.as_str(), segments.as_slice()) {
        ("GET", ["system", "info"]) => Answer::json(
            StatusCode::OK,
            &json!({
                "version": VERSION,
                "isCloud": true,
                "serverTimeZone": "Eastern Standard Time",
                "licenseBits": [],
                "cloudRegion": "NA",
            }),
        ),
        ("GET", ["finance", "invoices"]) => {
            let conditions = match parse_conditions(param("conditions").unwrap_or("")) {
                Ok(c) => c,
                Err(e) => {
                    return (
                        Answer::error(StatusCode::BAD_REQUEST, "BadRequest", &e),
                        None,
                    );
                }
            };
            let mut found: Vec<&Stored> = inner
                .invoices
                .iter()
                .filter(|i| conditions.iter().all(|c| c.holds(i)))
                .collect();
            found.sort_by_key(|i| i.id);
            let items: Vec<Value> = found.iter().map(|i| invoice_json(i)).collect();
            paged(items, query, origin, "/finance/invoices")
        }
        ("GET", ["finance", "invoices", id]) => match invoice_of(inner, id) {
            Some(i) => Answer::json(StatusCode::OK, &invoice_json(i)),
            None => Answer::not_found(&format!("Invoice recId {id}")),
        },
        ("GET", ["finance", "invoices", id, "pdf"]) => match invoice_of(inner, id) {
            Some(i) => Answer {
                status: StatusCode::OK,
                headers: Vec::new(),
                body: pdf(i),
                content_type: "application/pdf",
            },
            None => Answer::not_found(&format!("Invoice recId {id}")),
        },
        ("GET", ["finance", "invoices", id, "payments"]) => {
            let Some(invoice) = invoice_of(inner, id) else {
                let answer = Answer::not_found(&format!("Invoice recId {id}"));
                return (answer, delay);
            };
            let invoice_id = invoice.id;
            let items: Vec<Value> = inner
                .payments
                .iter()
                .filter(|p| p.invoice_id == invoice_id)
                .map(payment_json)
                .collect();
            paged(
                items,
                query,
                origin,
                &format!("/finance/invoices/{invoice_id}/payments"),
            )
        }
        ("GET", ["finance", "invoices", id, "payments", pid]) => {
            let invoice = invoice_of(inner, id).map(|i| i.id);
            match inner
                .payments
                .iter()
                .find(|p| Some(p.invoice_id) == invoice && pid.parse() == Ok(p.id))
            {
                Some(p) => Answer::json(StatusCode::OK, &payment_json(p)),
                None => Answer::not_found(&format!("InvoicePayment recId {pid}")),
            }
        }
        ("POST", ["finance", "invoices", id, "payments"]) => post_payment(inner, id, body, &member),
        ("DELETE", ["finance", "invoices", id, "payments", pid]) => {
            let invoice = invoice_of(inner, id).map(|i| i.id);
            match inner
                .payments
                .iter()
                .position(|p| Some(p.invoice_id) == invoice && pid.parse() == Ok(p.id))
            {
                Some(at) => {
                    let payment = inner.payments.remove(at);
                    let amount = thousandths(&payment.amount).unwrap_or(0);
                    if let Some(i) = inner.by_id(payment.invoice_id) {
                        i.balance += amount;
                    }
                    Answer {
                        status: StatusCode::NO_CONTENT,
                        headers: Vec::new(),
                        body: Vec::new(),
                        content_type: "application/json; charset=utf-8",
                    }
                }
                None => Answer::not_found(&format!("InvoicePayment recId {pid}")),
            }
        }
        _ => Answer::not_found("Resource"),
    };
    (answer, delay)
}

fn invoice_of<'a>(inner: &'a mut Inner, id: &str) -> Option<&'a mut Stored> {
    inner.by_id(id.parse().ok()?)
}

fn post_payment(inner: &mut Inner, id: &str, body: &[u8], member: &Member) -> Answer {
    let Some(invoice) = invoice_of(inner, id).map(|i| i.clone()) else {
        return Answer::not_found(&format!("Invoice recId {id}"));
    };
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return Answer::error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The request body is not valid JSON",
        );
    };
    let Some(payment_type) = request.get("type").and_then(Value::as_str) else {
        return Answer::invalid("type is required", "InvoicePayment", "type");
    };
    if let Some(other) = request.pointer("/invoice/id").and_then(Value::as_u64)
        && other != invoice.id
    {
        return Answer::invalid(
            "invoice does not match the invoice of the URL",
            "InvoicePayment",
            "invoice",
        );
    }
    let amount = match request.get("amount") {
        Some(Value::Number(n)) => thousandths(&n.to_string()),
        _ => None,
    };
    let Some(amount) = amount.filter(|a| *a > 0) else {
        return Answer::invalid(
            "amount must be a number greater than zero",
            "InvoicePayment",
            "amount",
        );
    };
    if invoice.status.to_ascii_lowercase().contains("void") {
        return Answer::invalid(
            "Payments cannot be applied to a voided invoice",
            "InvoicePayment",
            "invoice",
        );
    }
    if amount > invoice.balance {
        return Answer::invalid(
            &format!(
                "The payment amount {} cannot be greater than the invoice balance of {}",
                decimal(amount),
                decimal(invoice.balance)
            ),
            "InvoicePayment",
            "amount",
        );
    }
    let payment_date = match request.get("paymentDate") {
        None | Some(Value::Null) => format!("{}T00:00:00Z", time::OffsetDateTime::now_utc().date()),
        Some(Value::String(d)) if date_of(d).is_some() => d.clone(),
        Some(_) => {
            return Answer::invalid(
                "paymentDate must be an ISO 8601 date",
                "InvoicePayment",
                "paymentDate",
            );
        }
    };
    let payment = CwPayment {
        id: inner.next_id(),
        invoice_id: invoice.id,
        invoice_number: invoice.number.clone(),
        payment_type: payment_type.to_owned(),
        amount: decimal(amount),
        payment_date,
        applied_by: member.public.clone(),
    };
    if let Some(i) = inner.by_id(invoice.id) {
        i.balance -= amount;
    }
    let answer = Answer::json(StatusCode::CREATED, &payment_json(&payment));
    inner.payments.push(payment);
    answer
}

/// One page of `items` and its `Link` header.
fn paged(items: Vec<Value>, query: &[(String, String)], origin: &str, path: &str) -> Answer {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let size = param("pageSize")
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .clamp(1, MAX_PAGE_SIZE);
    let page = param("page").unwrap_or(1).max(1);
    let last = items.len().div_ceil(size).max(1);
    let shown: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    let mut answer = Answer::json(StatusCode::OK, &Value::Array(shown));
    if page < last {
        let link = |n: usize| {
            let mut pairs: Vec<String> = query
                .iter()
                .filter(|(k, _)| {
                    !k.eq_ignore_ascii_case("page") && !k.eq_ignore_ascii_case("pageSize")
                })
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            pairs.push(format!("pageSize={size}"));
            pairs.push(format!("page={n}"));
            format!("<{origin}{path}?{}>", pairs.join("&"))
        };
        answer.headers.push((
            header::LINK,
            format!(
                "{}; rel=\"next\", {}; rel=\"last\"",
                link(page + 1),
                link(last)
            ),
        ));
    }
    answer
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn iso(date: Date) -> String {
    format!("{date}T00:00:00Z")
}

/// The date of an ISO 8601 timestamp or date ("2026-11-01T00:00:00Z", "2026-11-01").
fn date_of(s: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.get(..10)?, &format).ok()
}

fn number(thousandths: i64) -> Value {
    let n: serde_json::Number = decimal(thousandths)
        .parse()
        .expect("a decimal is a JSON number");
    Value::Number(n)
}

fn invoice_json(i: &Stored) -> Value {
    let paid = i.total - i.balance;
    let identifier: String = i
        .company_name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let currency = i.currency.as_ref().map(|code| {
        let (id, symbol, name) = match code.as_str() {
            "USD" => (1, "$", "US Dollar"),
            "EUR" => (2, "€", "Euro"),
            "GBP" => (3, "£", "British Pound"),
            "AUD" => (4, "$", "Australian Dollar"),
            "CAD" => (5, "$", "Canadian Dollar"),
            "NZD" => (6, "$", "New Zealand Dollar"),
            _ => (99, "", code.as_str()),
        };
        json!({
            "id": id,
            "symbol": symbol,
            "currencyCode": code,
            "decimalSeparator": ".",
            "numberOfDecimals": 2,
            "name": name,
            "_info": { "currency_href": format!("/finance/currencies/{id}") },
        })
    });
    let mut v = json!({
        "id": i.id,
        "invoiceNumber": i.number,
        "type": "Standard",
        "status": {
            "id": 1,
            "name": i.status,
            "isClosed": i.status.eq_ignore_ascii_case("closed"),
            "_info": { "status_href": "/finance/billingStatuses/1" },
        },
        "company": {
            "id": i.company_id,
            "identifier": identifier,
            "name": i.company_name,
            "_info": { "company_href": format!("/company/companies/{}", i.company_id) },
        },
        "applyToType": "All",
        "date": iso(i.date),
        "dueDate": iso(i.due_date),
        "subtotal": number(i.total),
        "total": number(i.total),
        "salesTax": 0,
        "payments": number(paid.max(0)),
        "credits": 0,
        "balance": number(i.balance),
        "_info": { "lastUpdated": iso(i.date), "updatedBy": "api" },
    });
    if let Some(currency) = currency {
        v["currency"] = currency;
    }
    v
}

fn payment_json(p: &CwPayment) -> Value {
    json!({
        "id": p.id,
        "type": p.payment_type,
        "invoice": {
            "id": p.invoice_id,
            "identifier": p.invoice_number,
            "_info": { "invoice_href": format!("/finance/invoices/{}", p.invoice_id) },
        },
        "amount": number(thousandths(&p.amount).unwrap_or(0)),
        "paymentDate": p.payment_date,
        "appliedBy": p.applied_by,
        "_info": { "lastUpdated": p.payment_date },
    })
}

/// A one-page PDF whose text names the invoice, its company and balance.
fn pdf(i: &Stored) -> Vec<u8> {
    let text = format!(
        "Invoice {} {} balance {}",
        i.number,
        i.company_name.replace(['(', ')', '\\'], ""),
        decimal(i.balance)
    );
    let stream = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (n, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.push_str(&format!("{} 0 obj\n{object}\nendobj\n", n + 1));
    }
    let xref = out.len();
    out.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        objects.len() + 1
    ));
    for offset in offsets {
        out.push_str(&format!("{offset:010} 00000 n \n"));
    }
    out.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    out.into_bytes()
}

/// Decimal text ("1234.5", "100", "0.125", "-3") as thousandths; None past 3 decimals.
fn thousandths(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let fraction = fraction.trim_end_matches('0');
    if whole.is_empty()
        || fraction.len() > 3
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = format!("{fraction:0<3}").parse().ok()?;
    let value = whole.checked_mul(1000)?.checked_add(fraction)?;
    Some(if negative { -value } else { value })
}

/// Thousandths as decimal text with at least 2 decimals ("1234.50", "0.125").
fn decimal(thousandths: i64) -> String {
    let sign = if thousandths < 0 { "-" } else { "" };
    let abs = thousandths.unsigned_abs();
    let mut fraction = format!("{:03}", abs % 1000);
    if fraction.ends_with('0') {
        fraction.pop();
    }
    format!("{sign}{}.{fraction}", abs / 1000)
}

#[derive(Debug)]
enum Operand {
    Text(String),
    Number(i64),
}

#[derive(Debug)]
struct Condition {
    field: String,
    op: &'static str,
    value: Operand,
}

impl Condition {
    fn holds(&self, i: &Stored) -> bool {
        let number = match self.field.as_str() {
            "id" => Some(i.id as i64 * 1000),
            "company/id" => Some(i.company_id as i64 * 1000),
            "balance" => Some(i.balance),
            "total" => Some(i.total),
            _ => None,
        };
        let ordering = match (&self.value, number) {
            (Operand::Number(want), Some(have)) => have.cmp(want),
            (Operand::Text(want), None) => {
                let have = match self.field.as_str() {
                    "invoiceNumber" => i.number.clone(),
                    "company/identifier" => i
                        .company_name
                        .chars()
                        .filter(char::is_ascii_alphanumeric)
                        .collect(),
                    _ => return false,
                };
                have.to_lowercase().cmp(&want.to_lowercase())
            }
            _ => return false,
        };
        match self.op {
            "=" => ordering.is_eq(),
            "!=" => ordering.is_ne(),
            ">" => ordering.is_gt(),
            "<" => ordering.is_lt(),
            ">=" => ordering.is_ge(),
            "<=" => ordering.is_le(),
            _ => false,
        }
    }
}

const FIELDS: [&str; 6] = [
    "id",
    "invoiceNumber",
    "company/id",
    "company/identifier",
    "balance",
    "total",
];

fn parse_conditions(text: &str) -> Result<Vec<Condition>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    split_and(text)
        .into_iter()
        .map(|clause| parse_condition(clause.trim()))
        .collect()
}

/// Splits on ` and ` (any case) outside quotes.
fn split_and(text: &str) -> Vec<&str> {
    let lower = text.to_ascii_lowercase();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'"' {
            quoted = !quoted;
        } else if !quoted && lower[at..].starts_with(" and ") {
            parts.push(&text[start..at]);
            at += 5;
            start = at;
            continue;
        }
        at += 1;
    }
    parts.push(&text[start..]);
    parts
}

fn parse_condition(clause: &str) -> Result<Condition, String> {
    let bad = || format!("Invalid condition: {clause}");
    let at = clause.find(['=', '!', '<', '>']).ok_or_else(bad)?;
    let field = clause[..at].trim();
    let rest = &clause[at..];
    let op = ["!=", ">=", "<=", "=", ">", "<"]
        .into_iter()
        .find(|op| rest.starts_with(op))
        .ok_or_else(bad)?;
    let value = rest[op.len()..].trim();
    let field = FIELDS
        .into_iter()
        .find(|f| f.eq_ignore_ascii_case(field))
        .ok_or_else(|| format!("Unknown field {field} in conditions"))?;
    let value = if let Some(text) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Operand::Text(text.to_owned())
    } else {
        Operand::Number(thousandths(value).ok_or_else(bad)?)
    };
    Ok(Condition {
        field: field.to_owned(),
        op,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_thousandths() {
        assert_eq!(thousandths("1234.5"), Some(1_234_500));
        assert_eq!(thousandths("100"), Some(100_000));
        assert_eq!(thousandths("0.125"), Some(125));
        assert_eq!(thousandths("1.0001"), None);
        assert_eq!(decimal(1_234_500), "1234.50");
        assert_eq!(decimal(125), "0.125");
        assert_eq!(decimal(0), "0.00");
    }

    #[test]
    fn conditions_parse() {
        let c = parse_conditions("company/id=250 and balance>0").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].field, "company/id");
        assert_eq!(c[1].op, ">");
        let c = parse_conditions("invoiceNumber=\"A and B\"").unwrap();
        assert_eq!(c.len(), 1);
        assert!(parse_conditions("nope=1").is_err());
    }
}
