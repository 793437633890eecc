//! ConnectWise Manage (PSA) behind the `Accounting` port (issue 11): invoices and their
//! balances read live from `/finance/invoices`, payments posted to the invoice, the invoice PDF.
//!
//! One adapter serves one org with its API member's keys: `Authorization: Basic
//! base64("{company}+{public}:{private}")`, the integration's `clientId` header and a pinned
//! API version (`Accept: application/vnd.connectwise.com+json; version=2022.1`), at
//! `{site}/{codebase}apis/3.0`.
//!
//! Failures: a timeout, a 5xx, refused keys or a rate limit are an [`AccountingError`] on
//! reads (the payer is asked to try again shortly: no charge without a known balance). A read
//! that is rate limited for at most [`SHORT_WAIT`] waits and is tried once more. Writes answer
//! [`Posted::Later`] on 429 and [`Posted::Refused`] with ConnectWise's words when it will not
//! take them (more than the balance, a voided invoice).
//!
//! ConnectWise takes no idempotency key, and the runner posts again after any error or lost
//! answer, so a posting looks before it writes: a payment of the same amount on the same date
//! on the invoice counts as ours. A payment of several invoices is a payment on each, each
//! looked for first, so a try after a partial one posts only the parts still missing. Its
//! remote id is each part's `invoiceId/paymentId`, in the parts' order, joined by `+` (one
//! invoice: `invoiceId/paymentId` alone); a reversal deletes each, one gone already counting
//! as deleted.

use std::fmt;
use std::time::Duration;

use app::ports::{
    Accounting, AccountingConfig, AccountingError, ConnectionCheck, InvoiceRead, PaymentPosting,
    PaymentReversal, Posted,
};
use async_trait::async_trait;
use domain::{
    Allocation, Currency, CustomerId, Invoice, InvoiceNumber, InvoiceStatus, Money, OrgSlug, Secret,
};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue, LINK};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value, json};
use time::Date;

use crate::http::{money, number, parts, retry_after};

/// The `system` of an org's accounting config that picks this adapter.
pub const NAME: &str = "connectwise";

/// The API version every request pins.
pub const ACCEPT_VERSION: &str = "application/vnd.connectwise.com+json; version=2022.1";

/// A read rate limited for at most this long waits and is tried once more; longer is an error.
pub const SHORT_WAIT: Duration = Duration::from_secs(2);

/// ConnectWise's largest page.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// More pages than this for one listing is taken as a fault (100 000 invoices at full pages).
const MAX_PAGES: u32 = 100;

/// An org's ConnectWise connection, as stored (sealed) in its accounting config's
/// `credentials` JSON.
#[derive(Serialize, Deserialize, Clone)]
pub struct ConnectWiseCredentials {
    /// The API host's origin: "https://api-na.myconnectwise.net" (or a double's).
    pub site: String,
    /// The site's codebase: "v4_6_release/".
    pub codebase: String,
    /// The login "Company" id.
    pub company: String,
    /// The API member's public key.
    pub public_key: String,
    /// The API member's private key.
    pub private_key: String,
    /// The integration's clientId (developer.connectwise.com/ClientID).
    pub client_id: String,
    /// ISO code of the invoices' currency when they carry none; USD when absent.
    #[serde(default)]
    pub currency: Option<String>,
}

impl fmt::Debug for ConnectWiseCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectWiseCredentials")
            .field("site", &self.site)
            .field("codebase", &self.codebase)
            .field("company", &self.company)
            .field("public_key", &self.public_key)
            .field("private_key", &"<redacted>")
            .field("client_id", &self.client_id)
            .field("currency", &self.currency)
            .finish()
    }
}

/// The ConnectWise Manage adapter of one org.
pub struct ConnectWiseAccounting {
    http: reqwest::Client,
    org: OrgSlug,
    /// `{site}/{codebase}apis/3.0`
    base: String,
    /// `{company}+{public}`
    user: String,
    private_key: Secret<String>,
    client_id: HeaderValue,
    currency: Currency,
    page_size: u32,
}

impl fmt::Debug for ConnectWiseAccounting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectWiseAccounting")
            .field("org", &self.org)
            .field("base", &self.base)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ConnectWiseAccounting {
    /// The adapter for `org` with its config (`system` "connectwise", `credentials` a
    /// [`ConnectWiseCredentials`] JSON). Incomplete settings are an error naming the missing
    /// field, never echoing a value.
    pub fn new(
        http: reqwest::Client,
        org: OrgSlug,
        config: &AccountingConfig,
    ) -> Result<ConnectWiseAccounting, AccountingError> {
        if config.system != NAME {
            return Err(AccountingError(format!(
                "the org's accounting system is {:?}, not ConnectWise",
                config.system
            )));
        }
        let creds: ConnectWiseCredentials = serde_json::from_str(config.credentials.expose())
            .map_err(|e| {
                AccountingError(format!(
                    "the ConnectWise settings are not in the expected form (line {}, column {}): \
                     site, codebase, company, public_key, private_key and client_id are needed",
                    e.line(),
                    e.column()
                ))
            })?;
        let missing = [
            ("site", &creds.site),
            ("codebase", &creds.codebase),
            ("company", &creds.company),
            ("public_key", &creds.public_key),
            ("private_key", &creds.private_key),
            ("client_id", &creds.client_id),
        ]
        .into_iter()
        .find(|(_, v)| v.trim().is_empty());
        if let Some((field, _)) = missing {
            return Err(AccountingError(format!(
                "the ConnectWise settings have no {field}"
            )));
        }
        let site = origin(&creds.site)?;
        let codebase = creds.codebase.trim().trim_matches('/');
        if !codebase
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            || codebase.contains("..")
        {
            return Err(AccountingError(format!(
                "the ConnectWise codebase {codebase:?} is not like \"v4_6_release/\""
            )));
        }
        let client_id = HeaderValue::from_str(creds.client_id.trim()).map_err(|_| {
            AccountingError("the ConnectWise clientId has characters a header cannot hold".into())
        })?;
        let currency = match &creds.currency {
            None => Currency::Usd,
            Some(code) => code.trim().parse().map_err(|_| {
                AccountingError(format!(
                    "the ConnectWise default currency {code:?} is unknown"
                ))
            })?,
        };
        Ok(ConnectWiseAccounting {
            http,
            org,
            base: if codebase.is_empty() {
                format!("{site}/apis/3.0")
            } else {
                format!("{site}/{codebase}/apis/3.0")
            },
            user: format!("{}+{}", creds.company.trim(), creds.public_key.trim()),
            private_key: Secret::new(creds.private_key.trim().to_owned()),
            client_id,
            currency,
            page_size: MAX_PAGE_SIZE,
        })
    }

    /// Lists in pages of this many (1 to [`MAX_PAGE_SIZE`], the default).
    pub fn with_page_size(mut self, page_size: u32) -> ConnectWiseAccounting {
        self.page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        self
    }

    fn check_org(&self, org: &OrgSlug) -> Result<(), AccountingError> {
        if *org == self.org {
            Ok(())
        } else {
            Err(AccountingError(format!(
                "this ConnectWise connection is {}'s, not {org}'s",
                self.org
            )))
        }
    }

    /// One request; a transport failure or timeout is an error, any status is a reply.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        accept: &str,
    ) -> Result<Reply, Halt> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(self.private_key.expose()))
            .header("clientId", self.client_id.clone())
            .header(ACCEPT, accept);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).expect("a JSON value serializes");
            request = request.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let response = request.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "did not answer in time"
            } else {
                "could not be reached"
            };
            tracing::warn!(org = %self.org, %method, path, error = %e.without_url(), "ConnectWise {what}");
            Halt::Error(AccountingError(format!("ConnectWise {what}; try again shortly")))
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| {
            tracing::warn!(org = %self.org, %method, path, error = %e.without_url(), "ConnectWise's answer broke off");
            Halt::Error(AccountingError(
                "ConnectWise's answer broke off; try again shortly".into(),
            ))
        })?;
        if !status.is_success() && status != StatusCode::NOT_FOUND {
            tracing::warn!(org = %self.org, %method, path, status = status.as_u16(), "ConnectWise refused a request");
        }
        Ok(Reply {
            status,
            retry_after: retry_after(&headers),
            next_page: headers
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("rel=\"next\"")),
            body: body.to_vec(),
        })
    }

    /// A GET, tried once more after a short rate-limit wait.
    async fn get(&self, path: &str, query: &[(&str, String)], accept: &str) -> Result<Reply, Halt> {
        let reply = self.send(Method::GET, path, query, None, accept).await?;
        if reply.status == StatusCode::TOO_MANY_REQUESTS && reply.retry_after <= SHORT_WAIT {
            tokio::time::sleep(reply.retry_after).await;
            return self.send(Method::GET, path, query, None, accept).await;
        }
        Ok(reply)
    }

    /// Every item of a listing, page after page while ConnectWise links a next one.
    async fn all<T: DeserializeOwned>(
        &self,
        path: &str,
        conditions: Option<String>,
    ) -> Result<Vec<T>, Halt> {
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut query = Vec::new();
            if let Some(c) = &conditions {
                query.push(("conditions", c.clone()));
            }
            query.push(("orderBy", "id asc".to_owned()));
            query.push(("page", page.to_string()));
            query.push(("pageSize", self.page_size.to_string()));
            let reply = self.get(path, &query, ACCEPT_VERSION).await?.ok()?;
            let batch: Vec<T> = reply.json()?;
            let more = reply.next_page && batch.len() as u32 >= self.page_size;
            items.extend(batch);
            if !more {
                return Ok(items);
            }
        }
        Err(Halt::Error(AccountingError(format!(
            "ConnectWise listed more than {MAX_PAGES} pages of {path}"
        ))))
    }

    /// The invoice with this number as ConnectWise has it.
    async fn find(&self, number: &InvoiceNumber) -> Result<Option<CwInvoice>, Halt> {
        let query = [
            ("conditions", format!("invoiceNumber=\"{number}\"")),
            ("pageSize", "25".to_owned()),
        ];
        let reply = self
            .get("/finance/invoices", &query, ACCEPT_VERSION)
            .await?
            .ok()?;
        let found: Vec<CwInvoice> = reply.json()?;
        // ConnectWise compares text without case; prefer the exact spelling.
        let exact = found
            .iter()
            .position(|i| i.invoice_number == number.as_str());
        let any = found
            .iter()
            .position(|i| i.invoice_number.eq_ignore_ascii_case(number.as_str()));
        Ok(exact
            .or(any)
            .map(|at| found.into_iter().nth(at).expect("found")))
    }

    fn currency_of(&self, invoice: &CwInvoice) -> Result<Currency, AccountingError> {
        match invoice
            .currency
            .as_ref()
            .and_then(|c| c.currency_code.as_deref())
        {
            None | Some("") => Ok(self.currency),
            Some(code) => code.parse().map_err(|_| {
                AccountingError(format!(
                    "ConnectWise invoice {} is in {code}, which is not supported",
                    invoice.invoice_number
                ))
            }),
        }
    }

    /// The domain's invoice; None for a credit memo (nothing to pay).
    fn invoice(&self, cw: &CwInvoice) -> Result<Option<Invoice>, AccountingError> {
        if cw.kind.as_deref() == Some("CreditMemo") {
            return Ok(None);
        }
        let bad = |what: &str| {
            AccountingError(format!(
                "ConnectWise invoice {} has {what}",
                cw.invoice_number
            ))
        };
        let currency = self.currency_of(cw)?;
        let amount = |n: &Option<Number>, what: &str| -> Result<Money, AccountingError> {
            let n = n.as_ref().ok_or_else(|| bad(&format!("no {what}")))?;
            money(n, currency).map_err(|e| bad(&format!("a {what} of {e}")))
        };
        let balance = amount(&cw.balance, "balance")?;
        let total = amount(&cw.total, "total")?;
        let company = cw.company.as_ref().ok_or_else(|| bad("no company"))?;
        let customer_id =
            CustomerId::parse(&company.id.to_string()).map_err(|_| bad("an odd company id"))?;
        let issue_date = cw
            .date
            .as_deref()
            .and_then(date_of)
            .ok_or_else(|| bad("no date"))?;
        let due_date = cw
            .due_date
            .as_deref()
            .and_then(date_of)
            .unwrap_or(issue_date);
        let number = InvoiceNumber::parse(&cw.invoice_number).map_err(|_| bad("an odd number"))?;
        let voided = cw
            .status
            .as_ref()
            .and_then(|s| s.name.as_deref())
            .is_some_and(|n| n.to_ascii_lowercase().contains("void"));
        let status = if voided {
            InvoiceStatus::Void
        } else if balance.is_zero() {
            InvoiceStatus::Paid
        } else {
            InvoiceStatus::Open
        };
        Ok(Some(Invoice {
            number,
            customer_id,
            customer_name: company
                .name
                .clone()
                .or_else(|| company.identifier.clone())
                .unwrap_or_default(),
            total,
            amount_due: balance,
            status,
            issue_date,
            due_date,
        }))
    }

    async fn post(&self, posting: &PaymentPosting) -> Result<Posted, Halt> {
        self.check_org(&posting.org)?;
        if posting.amount.is_zero() {
            return Err(Halt::Refused(format!(
                "payment {} has nothing to post to invoice {}",
                posting.payment, posting.invoice
            )));
        }
        let parts = parts(posting).map_err(Halt::Refused)?;
        let several = parts.len() > 1;
        // Every part's invoice first: one that ConnectWise does not have (or has in another
        // currency) stops the posting before anything of it is written.
        let mut found = Vec::new();
        let mut problems = Vec::new();
        for part in &parts {
            let Some(invoice) = self.find(&part.invoice).await? else {
                problems.push(format!("invoice {} is not in ConnectWise", part.invoice));
                continue;
            };
            match self.currency_of(&invoice) {
                Err(e) => problems.push(e.0),
                Ok(currency) if currency != part.amount.currency() => problems.push(format!(
                    "invoice {} is in {currency}, the payment in {}",
                    part.invoice,
                    part.amount.currency()
                )),
                Ok(currency) => found.push((part, invoice, currency)),
            }
        }
        // ConnectWise has no idempotency key and its payments carry no reference of ours, so
        // we look before writing: a payment on this invoice of the same amount on the same
        // date is taken as ours (posted by an earlier try whose answer was lost). A payment
        // recorded twice in the books is worse than the rare miss of a genuine second payment
        // of the same amount that day, and that miss shows as a balance difference.
        let mut posted: Vec<Option<String>> = Vec::new();
        for (part, invoice, currency) in &found {
            let path = format!("/finance/invoices/{}/payments", invoice.id);
            let payments: Vec<CwPayment> = self.all(&path, None).await?;
            let ours = payments.iter().find(|p| {
                p.payment_date.as_deref().and_then(date_of) == Some(posting.paid_on)
                    && p.amount
                        .as_ref()
                        .and_then(|a| money(a, *currency).ok())
                        .is_some_and(|a| a == part.amount)
            });
            posted.push(ours.map(|p| format!("{}/{}", invoice.id, p.id)));
        }
        if !problems.is_empty() {
            let mut why = problems.join("; ");
            why.push_str(&already_posted(&found, &posted));
            return Err(Halt::Refused(why));
        }
        for (at, (part, invoice, _)) in found.iter().enumerate() {
            if posted[at].is_some() {
                continue;
            }
            let path = format!("/finance/invoices/{}/payments", invoice.id);
            let body = json!({
                "type": "Payment",
                "invoice": { "id": invoice.id },
                "amount": number(part.amount),
                "paymentDate": format!("{}T00:00:00Z", posting.paid_on),
            });
            let refused = |why: String| {
                if several {
                    let why = format!("invoice {}: {why}", part.invoice);
                    Halt::Refused(why + &already_posted(&found, &posted))
                } else {
                    Halt::Refused(why)
                }
            };
            let reply = self
                .send(Method::POST, &path, &[], Some(&body), ACCEPT_VERSION)
                .await?;
            if reply.status == StatusCode::NOT_FOUND {
                return Err(refused(format!(
                    "invoice {} is no longer in ConnectWise",
                    part.invoice
                )));
            }
            let created: CwPayment = match reply.ok() {
                Ok(reply) => reply.json()?,
                Err(Halt::Refused(why)) => return Err(refused(why)),
                Err(other) => return Err(other),
            };
            posted[at] = Some(format!("{}/{}", invoice.id, created.id));
        }
        Ok(Posted::Recorded {
            remote_id: posted.into_iter().flatten().collect::<Vec<_>>().join("+"),
        })
    }

    async fn reverse(&self, reversal: &PaymentReversal) -> Result<Posted, Halt> {
        self.check_org(&reversal.org)?;
        let mut ids = Vec::new();
        for piece in reversal.remote_id.split('+') {
            let parsed = piece
                .split_once('/')
                .and_then(|(i, p)| Some((i.parse::<u64>().ok()?, p.parse::<u64>().ok()?)));
            let Some(ids_of_part) = parsed else {
                return Err(Halt::Refused(format!(
                    "{:?} is not a ConnectWise payment (invoiceId/paymentId)",
                    reversal.remote_id
                )));
            };
            ids.push(ids_of_part);
        }
        let recorded = Posted::Recorded {
            remote_id: reversal.remote_id.clone(),
        };
        // What is still posted of each part (one gone already was deleted by an earlier try,
        // or by hand).
        let mut standing = Vec::new();
        let mut total = Money::zero(reversal.amount.currency());
        for (invoice_id, payment_id) in ids {
            let path = format!("/finance/invoices/{invoice_id}/payments/{payment_id}");
            let reply = self.get(&path, &[], ACCEPT_VERSION).await?;
            if reply.status == StatusCode::NOT_FOUND {
                continue;
            }
            let payment: CwPayment = reply.ok()?.json()?;
            let amount = payment
                .amount
                .as_ref()
                .and_then(|a| money(a, reversal.amount.currency()).ok());
            if let Some(amount) = amount {
                total = total.checked_add(amount).unwrap_or(total);
            }
            standing.push(path);
        }
        // ConnectWise deletes whole payments: a partial refund is left to the bookkeeper.
        if total.minor() > reversal.amount.minor() {
            let what = if reversal.remote_id.contains('+') {
                "payments come to"
            } else {
                "payment is"
            };
            return Err(Halt::Refused(format!(
                "ConnectWise {what} {} {}, the reversal only {}: ConnectWise reverses whole \
                 payments, so adjust this one by hand",
                reversal.remote_id,
                total.amount_string(),
                reversal.amount.amount_string()
            )));
        }
        for path in standing {
            let reply = self
                .send(Method::DELETE, &path, &[], None, ACCEPT_VERSION)
                .await?;
            if reply.status == StatusCode::NOT_FOUND {
                continue;
            }
            reply.ok()?;
        }
        Ok(recorded)
    }

    async fn pdf(&self, number: &InvoiceNumber) -> Result<Option<Vec<u8>>, Halt> {
        let Some(invoice) = self.find(number).await? else {
            return Ok(None);
        };
        let accept = format!("application/pdf, {ACCEPT_VERSION}");
        let path = format!("/finance/invoices/{}/pdf", invoice.id);
        let reply = self.get(&path, &[], &accept).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let reply = reply.ok()?;
        if !reply.body.starts_with(b"%PDF") {
            return Err(Halt::Error(AccountingError(format!(
                "ConnectWise did not answer invoice {number}'s PDF with a PDF"
            ))));
        }
        Ok(Some(reply.body))
    }

    async fn check_connection(&self) -> Result<ConnectionCheck, Halt> {
        let reply = self.get("/system/info", &[], ACCEPT_VERSION).await?;
        if let Some(refused) = refusal(&reply, "read the system info") {
            return Ok(refused);
        }
        reply.ok()?;
        // The keys work; can the member read invoices (its security role)?
        let query = [("pageSize", "1".to_owned())];
        let reply = self
            .get("/finance/invoices", &query, ACCEPT_VERSION)
            .await?;
        if let Some(refused) = refusal(&reply, "read invoices") {
            return Ok(refused);
        }
        reply.ok()?;
        Ok(ConnectionCheck::Accepted)
    }
}

/// The site's origin without a trailing slash: `https://host[:port]`, nothing else. Plain
/// `http://` only to this machine (a double), and never inside Lambda, whose runtime API
/// listens on loopback: the site is the org admin's to set.
fn origin(site: &str) -> Result<String, AccountingError> {
    let bad = || {
        AccountingError(format!(
            "the ConnectWise site {site:?} is not an https:// origin like \
             \"https://api-na.myconnectwise.net\""
        ))
    };
    let url = reqwest::Url::parse(site.trim()).map_err(|_| bad())?;
    let plain_ok = url.scheme() == "http"
        && matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
        && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none();
    let shape_ok = url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    if !(shape_ok && (url.scheme() == "https" || plain_ok)) {
        return Err(bad());
    }
    Ok(url.origin().ascii_serialization())
}

/// What a refusal of a posting of several invoices adds about the parts that are in
/// ConnectWise already (posted by this try or an earlier one): they stay, and the admin's retry
/// finds them and posts only the rest.
fn already_posted(
    found: &[(&Allocation, CwInvoice, Currency)],
    posted: &[Option<String>],
) -> String {
    let done: Vec<String> = found
        .iter()
        .zip(posted)
        .filter_map(|((part, _, _), id)| {
            id.as_ref().map(|id| {
                format!(
                    "invoice {} ({}) as payment {id}",
                    part.invoice,
                    part.amount.amount_string()
                )
            })
        })
        .collect();
    if done.is_empty() {
        String::new()
    } else {
        format!(
            ". Already posted to ConnectWise: {}; a retry posts only the invoices not there yet",
            done.join(", ")
        )
    }
}

/// What a connection test tells the admin about a refusal; None when not a refusal.
fn refusal(reply: &Reply, what: &str) -> Option<ConnectionCheck> {
    let why = match reply.status {
        StatusCode::UNAUTHORIZED => "ConnectWise refused the API keys: check the company id and \
                                     the API member's public and private keys"
            .to_owned(),
        StatusCode::FORBIDDEN => format!(
            "ConnectWise accepted the API keys, but the API member may not {what}: check its \
             security role"
        ),
        StatusCode::NOT_FOUND => {
            "ConnectWise has no API at this site and codebase: check both".to_owned()
        }
        StatusCode::BAD_REQUEST => format!(
            "ConnectWise refused the request ({}): check the clientId",
            reply.message()
        ),
        _ => return None,
    };
    Some(ConnectionCheck::Refused(why))
}

#[async_trait]
impl Accounting for ConnectWiseAccounting {
    async fn read_invoice(
        &self,
        org: &OrgSlug,
        number: &InvoiceNumber,
    ) -> Result<Option<InvoiceRead>, AccountingError> {
        self.check_org(org)?;
        let Some(found) = self.find(number).await.map_err(Halt::into_error)? else {
            return Ok(None);
        };
        Ok(self.invoice(&found)?.map(|invoice| InvoiceRead {
            invoice,
            ledger_version: None,
        }))
    }

    async fn open_invoices(
        &self,
        org: &OrgSlug,
        customer: &CustomerId,
    ) -> Result<Vec<Invoice>, AccountingError> {
        self.check_org(org)?;
        let Ok(company) = customer.as_str().parse::<u64>() else {
            return Ok(Vec::new()); // not a ConnectWise company id
        };
        let conditions = format!("company/id={company} and balance>0");
        let found: Vec<CwInvoice> = self
            .all("/finance/invoices", Some(conditions))
            .await
            .map_err(Halt::into_error)?;
        let mut open = Vec::new();
        for cw in &found {
            match self.invoice(cw) {
                Ok(Some(invoice)) if invoice.is_payable() => open.push(invoice),
                Ok(_) => {}
                // One odd invoice does not hide the company's others from auto-pay.
                Err(e) => {
                    tracing::warn!(org = %self.org, invoice = cw.id, error = %e, "skipped a ConnectWise invoice")
                }
            }
        }
        Ok(open)
    }

    /// Posts `posting.amount` to the invoice. The surcharge is not posted to ConnectWise: the
    /// PSA takes the invoice amount; the surcharge goes to the gateway only.
    async fn post_payment(&self, posting: &PaymentPosting) -> Result<Posted, AccountingError> {
        self.post(posting).await.or_else(Halt::into_posted)
    }

    /// Deletes the posted payment (`remote_id` "invoiceId/paymentId"); one gone already is
    /// reversed. A partial reversal is refused (ConnectWise deletes whole payments).
    async fn reverse_payment(&self, reversal: &PaymentReversal) -> Result<Posted, AccountingError> {
        self.reverse(reversal).await.or_else(Halt::into_posted)
    }

    async fn invoice_pdf(
        &self,
        org: &OrgSlug,
        number: &InvoiceNumber,
    ) -> Result<Option<Vec<u8>>, AccountingError> {
        self.check_org(org)?;
        self.pdf(number).await.map_err(Halt::into_error)
    }

    async fn test_connection(&self, org: &OrgSlug) -> Result<ConnectionCheck, AccountingError> {
        self.check_org(org)?;
        self.check_connection().await.map_err(Halt::into_error)
    }

    async fn writes_back(&self, org: &OrgSlug) -> Result<bool, AccountingError> {
        self.check_org(org)?;
        Ok(true)
    }
}

/// Why a call stopped short.
enum Halt {
    /// Rate limited for longer than a read waits.
    Later(Duration),
    /// ConnectWise will not take it: its words.
    Refused(String),
    Error(AccountingError),
}

impl From<AccountingError> for Halt {
    fn from(e: AccountingError) -> Self {
        Halt::Error(e)
    }
}

impl Halt {
    fn into_error(self) -> AccountingError {
        match self {
            Halt::Later(after) => AccountingError(format!(
                "ConnectWise is rate limiting requests for {}s; try again shortly",
                after.as_secs()
            )),
            Halt::Refused(why) => {
                AccountingError(format!("ConnectWise refused the request: {why}"))
            }
            Halt::Error(e) => e,
        }
    }

    fn into_posted(self) -> Result<Posted, AccountingError> {
        match self {
            Halt::Later(after) => Ok(Posted::Later {
                after,
                why: "ConnectWise is rate limiting requests".to_owned(),
            }),
            Halt::Refused(why) => Ok(Posted::Refused(why)),
            Halt::Error(e) => Err(e),
        }
    }
}

struct Reply {
    status: StatusCode,
    retry_after: Duration,
    /// The `Link` header names a next page.
    next_page: bool,
    body: Vec<u8>,
}

impl Reply {
    /// The reply if it is a success; else why not.
    fn ok(self) -> Result<Reply, Halt> {
        let status = self.status;
        if status.is_success() {
            return Ok(self);
        }
        Err(match status {
            StatusCode::TOO_MANY_REQUESTS => Halt::Later(self.retry_after),
            StatusCode::UNAUTHORIZED => Halt::Error(AccountingError(
                "ConnectWise refused the API keys (401); the org's admin must check them".into(),
            )),
            StatusCode::FORBIDDEN => Halt::Error(AccountingError(format!(
                "ConnectWise's API member may not do this (403): {}",
                self.message()
            ))),
            s if s.is_server_error() => Halt::Error(AccountingError(format!(
                "ConnectWise answered {}; try again shortly",
                s.as_u16()
            ))),
            StatusCode::BAD_REQUEST
            | StatusCode::NOT_FOUND
            | StatusCode::CONFLICT
            | StatusCode::UNPROCESSABLE_ENTITY => Halt::Refused(self.message()),
            s => Halt::Error(AccountingError(format!(
                "ConnectWise answered {}: {}",
                s.as_u16(),
                self.message()
            ))),
        })
    }

    fn json<T: DeserializeOwned>(&self) -> Result<T, Halt> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Halt::Error(AccountingError(format!(
                "ConnectWise answered in an unexpected form: {e}"
            )))
        })
    }

    /// ConnectWise's words from an error body: its message and its field errors'.
    fn message(&self) -> String {
        let Ok(error) = serde_json::from_slice::<CwError>(&self.body) else {
            return format!("HTTP {}", self.status.as_u16());
        };
        let mut words = error
            .message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("HTTP {}", self.status.as_u16()));
        for field in error.errors.unwrap_or_default() {
            if let Some(m) = field.message.filter(|m| !words.contains(m.as_str())) {
                words.push_str("; ");
                words.push_str(&m);
            }
        }
        if let Some(code) = error.code.filter(|c| !c.is_empty()) {
            words = format!("{words} ({code})");
        }
        words
    }
}

/// The date of an ISO 8601 timestamp or date ("2026-11-01T00:00:00Z", "2026-11-01").
fn date_of(s: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.get(..10)?, &format).ok()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CwInvoice {
    id: u64,
    invoice_number: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    status: Option<CwNamed>,
    #[serde(default)]
    company: Option<CwCompany>,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    due_date: Option<String>,
    #[serde(default)]
    total: Option<Number>,
    #[serde(default)]
    balance: Option<Number>,
    #[serde(default)]
    currency: Option<CwCurrency>,
}

#[derive(Deserialize)]
struct CwNamed {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct CwCompany {
    id: u64,
    #[serde(default)]
    identifier: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CwCurrency {
    #[serde(default)]
    currency_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CwPayment {
    id: u64,
    #[serde(default)]
    amount: Option<Number>,
    #[serde(default)]
    payment_date: Option<String>,
}

#[derive(Deserialize)]
struct CwError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Option<Vec<CwFieldError>>,
}

#[derive(Deserialize)]
struct CwFieldError {
    #[serde(default)]
    message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_timestamps() {
        assert_eq!(
            date_of("2026-11-01T00:00:00Z"),
            Some(time::macros::date!(2026 - 11 - 01))
        );
        assert_eq!(
            date_of("2026-11-01"),
            Some(time::macros::date!(2026 - 11 - 01))
        );
        assert_eq!(date_of("soon"), None);
    }

    #[test]
    fn sites_are_https_origins() {
        assert_eq!(
            origin("https://api-na.myconnectwise.net/").unwrap(),
            "https://api-na.myconnectwise.net"
        );
        assert_eq!(
            origin("http://127.0.0.1:4567").unwrap(),
            "http://127.0.0.1:4567"
        );
        for bad in [
            "http://api-na.myconnectwise.net",
            "https://api-na.myconnectwise.net/v4_6_release",
            "https://user:pw@api-na.myconnectwise.net",
            "https://api-na.myconnectwise.net?x=1",
            "ftp://example.com",
            "api-na.myconnectwise.net",
        ] {
            assert!(origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_never_print_the_private_key() {
        let c = ConnectWiseCredentials {
            site: "https://api-na.myconnectwise.net".into(),
            codebase: "v4_6_release/".into(),
            company: "acme".into(),
            public_key: "pub".into(),
            private_key: "very-secret".into(),
            client_id: "id".into(),
            currency: None,
        };
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}
