//! Xero (issue 11): invoices and balances read live from the Accounting API, payments written
//! back with `PUT /Payments`, surcharges as invoices of their own; OAuth2 with rotating refresh
//! tokens stored through [`AccountingConfigs`]; the admin's connect flow.
//!
//! Facts: research/protocols.md section 4 and Xero's OpenAPI spec (`xero_accounting.yaml`).
//! Tokens and secrets are never logged: they go into headers at the call and nowhere else.
//!
//! A posting is written so that the runner may post it again after any error or lost answer:
//! every write carries an `Idempotency-Key` (the payment id for its payments, the payment id
//! and `-surcharge` / `-surcharge-payment` for the surcharge's invoice and payment, the
//! reversal id and the part's place for each delete), so a repeat is answered as the first
//! time and creates nothing. A payment of several invoices is one `PUT
//! /Payments?summarizeErrors=true` with a payment per invoice: all of them or none (with
//! `summarizeErrors=false`, which the spec gives as the default, Xero creates the good ones and
//! answers 200, and the key would then replay half a posting). The remote id is the payments'
//! ids in the parts' order, then the surcharge's, joined by `+`; a reversal deletes each.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use app::ports::{
    Accounting, AccountingConfig, AccountingConfigs, AccountingError, Clock, ConnectionCheck,
    InvoiceRead, PaymentPosting, PaymentReversal, Posted,
};
use async_trait::async_trait;
use domain::{
    Allocation, Currency, CustomerId, Invoice, InvoiceNumber, InvoiceStatus, Money, OrgSlug, Secret,
};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value, json};
use time::{Date, OffsetDateTime, UtcOffset};

use crate::Endpoints;
use crate::http::{money, number, parts, retry_after};

/// The system's name in `AccountingConfig.system`.
pub const NAME: &str = "xero";

/// The scopes the connect flow asks for.
pub const SCOPES: &str =
    "offline_access accounting.transactions accounting.contacts.read accounting.settings.read";

/// An access token closer than this to its expiry is refreshed before the call.
const REFRESH_MARGIN: time::Duration = time::Duration::seconds(60);
/// Below these remaining budgets a write-back waits, so that payers' balance reads get the rest.
const MINUTE_RESERVE: u32 = 5;
const DAY_RESERVE: u32 = 100;
/// A read waits for a 429's `Retry-After` up to this long (once); beyond, it fails.
const READ_WAIT: Duration = Duration::from_secs(2);
/// Invoices per page of `GET /Invoices?page=`, and how many pages are read at most.
const PAGE_SIZE: usize = 100;
const MAX_PAGES: u32 = 50;

/// The org's Xero connection as stored (JSON in `AccountingConfig.credentials`).
#[derive(Serialize, Deserialize, Clone)]
pub struct XeroCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub tenant_id: String,
    pub access_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub access_expires_at: OffsetDateTime,
    pub refresh_token: String,
    /// The account Code payments go to, e.g. "090" (a bank or clearing account).
    pub payment_account: String,
    /// The revenue account code surcharges are invoiced to; none: surcharges are not posted.
    #[serde(default)]
    pub surcharge_account: Option<String>,
}

impl std::fmt::Debug for XeroCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XeroCredentials")
            .field("client_id", &self.client_id)
            .field("tenant_id", &self.tenant_id)
            .field("access_expires_at", &self.access_expires_at)
            .field("payment_account", &self.payment_account)
            .field("surcharge_account", &self.surcharge_account)
            .finish_non_exhaustive()
    }
}

impl XeroCredentials {
    /// Reads the stored JSON; the error never quotes the text (it holds secrets).
    pub fn parse(json: &Secret<String>) -> Result<XeroCredentials, AccountingError> {
        serde_json::from_str(json.expose()).map_err(|e| {
            let what = e.to_string();
            let detail = if what.starts_with("missing field") {
                what.split(" at line").next().unwrap_or_default().to_owned()
            } else {
                format!(
                    "{:?} error at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                )
            };
            AccountingError(format!(
                "the org's Xero connection settings are not valid: {detail}"
            ))
        })
    }

    fn to_secret(&self) -> Secret<String> {
        Secret::new(serde_json::to_string(self).expect("credentials serialize"))
    }
}

/// A token pair from Xero's token endpoint.
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_at: OffsetDateTime,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

/// An organisation the admin's consent connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub tenant_id: String,
    pub name: String,
}

/// Where the admin's browser goes to connect the org's Xero (authorization code flow).
pub fn authorize_url(
    endpoints: &Endpoints,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
) -> String {
    let mut url = reqwest::Url::parse(&format!(
        "{}/identity/connect/authorize",
        endpoints.xero_login
    ))
    .expect("the login host is a URL");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", SCOPES)
        .append_pair("state", state);
    url.to_string()
}

/// The code from the consent redirect, exchanged for the first token pair.
pub async fn exchange_code(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    client_id: &str,
    client_secret: &Secret<String>,
    code: &str,
    redirect_uri: &str,
    now: OffsetDateTime,
) -> Result<Tokens, AccountingError> {
    token_request(
        http,
        endpoints,
        client_id,
        client_secret.expose(),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ],
        now,
    )
    .await
    .map_err(|e| match e {
        TokenError::InvalidGrant => AccountingError(
            "Xero did not accept the authorization code (expired or used): connect again"
                .to_owned(),
        ),
        TokenError::Failed(e) => e,
    })
}

/// The organisations the token may act for (`GET /connections`, organisations only).
pub async fn tenants(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    access_token: &str,
) -> Result<Vec<Tenant>, AccountingError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Connection {
        tenant_id: String,
        tenant_type: Option<String>,
        tenant_name: Option<String>,
    }
    let response = http
        .get(format!("{}/connections", endpoints.xero_api))
        .bearer_auth(access_token)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(transport)?;
    let status = response.status();
    let body = response.bytes().await.map_err(transport)?;
    if !status.is_success() {
        return Err(AccountingError(format!(
            "Xero's connections answered {status}"
        )));
    }
    let list: Vec<Connection> = serde_json::from_slice(&body)
        .map_err(|e| AccountingError(format!("Xero's connections could not be read: {e}")))?;
    Ok(list
        .into_iter()
        .filter(|c| c.tenant_type.as_deref() == Some("ORGANISATION"))
        .map(|c| Tenant {
            name: c.tenant_name.unwrap_or_default(),
            tenant_id: c.tenant_id,
        })
        .collect())
}

enum TokenError {
    /// The code or refresh token is spent, expired or revoked.
    InvalidGrant,
    Failed(AccountingError),
}

async fn token_request(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    client_id: &str,
    client_secret: &str,
    form: &[(&str, &str)],
    now: OffsetDateTime,
) -> Result<Tokens, TokenError> {
    #[derive(Deserialize)]
    struct Answer {
        access_token: Option<String>,
        refresh_token: Option<String>,
        expires_in: Option<i64>,
        error: Option<String>,
    }
    let response = http
        .post(format!("{}/connect/token", endpoints.xero_identity))
        .basic_auth(client_id, Some(client_secret))
        .header(ACCEPT, "application/json")
        .form(form)
        .send()
        .await
        .map_err(|e| TokenError::Failed(transport(e)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| TokenError::Failed(transport(e)))?;
    let answer: Option<Answer> = serde_json::from_slice(&body).ok();
    let error = answer.as_ref().and_then(|a| a.error.clone());
    if error.as_deref() == Some("invalid_grant") {
        return Err(TokenError::InvalidGrant);
    }
    if !status.is_success() {
        let why = match error {
            Some(e) => format!("Xero's token endpoint answered {status} ({e})"),
            None => format!("Xero's token endpoint answered {status}"),
        };
        return Err(TokenError::Failed(AccountingError(why)));
    }
    match answer {
        Some(Answer {
            access_token: Some(access_token),
            refresh_token: Some(refresh_token),
            expires_in,
            ..
        }) => Ok(Tokens {
            access_token,
            refresh_token,
            access_expires_at: now + time::Duration::seconds(expires_in.unwrap_or(1800)),
        }),
        _ => Err(TokenError::Failed(AccountingError(
            "Xero's token endpoint gave no token pair".to_owned(),
        ))),
    }
}

fn transport(e: reqwest::Error) -> AccountingError {
    if e.is_timeout() {
        AccountingError("Xero did not answer in time".to_owned())
    } else {
        AccountingError("Xero could not be reached".to_owned())
    }
}

/// The connection in use: the stored credentials and the version they were read at.
struct Current {
    creds: XeroCredentials,
    version: u64,
}

/// What the last answers said is left of the tenant's budgets, and when.
#[derive(Default, Clone, Copy)]
struct Budget {
    minute: Option<(u32, OffsetDateTime)>,
    day: Option<(u32, OffsetDateTime)>,
}

/// An answer of the Accounting API.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// One request to the Accounting API (`path` under `/api.xro/2.0`).
struct Call<'a> {
    method: Method,
    path: String,
    query: Vec<(&'a str, String)>,
    accept: &'static str,
    body: Option<Value>,
    idempotency_key: Option<String>,
}

impl<'a> Call<'a> {
    fn get(path: impl Into<String>) -> Call<'a> {
        Call {
            method: Method::GET,
            path: path.into(),
            query: Vec::new(),
            accept: "application/json",
            body: None,
            idempotency_key: None,
        }
    }

    fn write(
        method: Method,
        path: impl Into<String>,
        body: Value,
        key: Option<String>,
    ) -> Call<'a> {
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            accept: "application/json",
            body: Some(body),
            idempotency_key: key,
        }
    }
}

/// The Xero adapter for one org.
pub struct XeroAccounting {
    http: reqwest::Client,
    endpoints: Endpoints,
    org: OrgSlug,
    current: Mutex<Current>,
    /// One refresh at a time (refresh tokens are single-use).
    refreshing: tokio::sync::Mutex<()>,
    budget: Mutex<Budget>,
    configs: Arc<dyn AccountingConfigs>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for XeroAccounting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "XeroAccounting({})", self.org)
    }
}

impl XeroAccounting {
    pub fn new(
        http: reqwest::Client,
        endpoints: &Endpoints,
        org: OrgSlug,
        config: &AccountingConfig,
        configs: Arc<dyn AccountingConfigs>,
        clock: Arc<dyn Clock>,
    ) -> Result<XeroAccounting, AccountingError> {
        if config.system != NAME {
            return Err(AccountingError(format!(
                "the org's accounting system is {}, not Xero",
                config.system
            )));
        }
        let creds = XeroCredentials::parse(&config.credentials)?;
        Ok(XeroAccounting {
            http,
            endpoints: endpoints.clone(),
            org,
            current: Mutex::new(Current {
                creds,
                version: config.version,
            }),
            refreshing: tokio::sync::Mutex::new(()),
            budget: Mutex::new(Budget::default()),
            configs,
            clock,
        })
    }

    fn snapshot(&self) -> (XeroCredentials, u64) {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        (current.creds.clone(), current.version)
    }

    fn adopt(&self, creds: XeroCredentials, version: u64) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Current { creds, version };
    }

    fn serves(&self, org: &OrgSlug) -> Result<(), AccountingError> {
        if org == &self.org {
            Ok(())
        } else {
            Err(AccountingError(format!(
                "this Xero connection serves {}, not {org}",
                self.org
            )))
        }
    }

    /// Credentials whose access token is good for a minute more: refreshed first if not.
    /// Also says whether a refresh happened (a call then is not refreshed again on a 401).
    async fn fresh(&self) -> Result<(XeroCredentials, bool), AccountingError> {
        let (creds, _) = self.snapshot();
        if creds.access_expires_at - self.clock.now() > REFRESH_MARGIN {
            return Ok((creds, false));
        }
        self.refresh(&creds.access_token).await?;
        Ok((self.snapshot().0, true))
    }

    /// Refreshes the token pair that `stale` belongs to, unless another task did meanwhile;
    /// persists the rotated pair (or takes the one another instance stored first).
    async fn refresh(&self, stale: &str) -> Result<(), AccountingError> {
        let _turn = self.refreshing.lock().await;
        let (creds, version) = self.snapshot();
        if creds.access_token != stale {
            return Ok(());
        }
        let now = self.clock.now();
        let answer = token_request(
            &self.http,
            &self.endpoints,
            &creds.client_id,
            &creds.client_secret,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &creds.refresh_token),
            ],
            now,
        )
        .await;
        match answer {
            Ok(tokens) => {
                let mut next = creds.clone();
                next.access_token = tokens.access_token;
                next.refresh_token = tokens.refresh_token;
                next.access_expires_at = tokens.access_expires_at;
                match self
                    .configs
                    .update_accounting_credentials(&self.org, version, &next.to_secret(), now)
                    .await
                {
                    Ok(true) => {
                        tracing::info!(org = %self.org, version = version + 1, "Xero tokens refreshed and stored");
                        self.adopt(next, version + 1);
                        Ok(())
                    }
                    Ok(false) => {
                        tracing::info!(org = %self.org, "another instance changed the Xero connection first; using the stored one");
                        if self.reread(version).await? {
                            Ok(())
                        } else {
                            Err(AccountingError(
                                "the org's Xero connection changed and could not be read again"
                                    .to_owned(),
                            ))
                        }
                    }
                    Err(e) => {
                        // The new pair is the only good one now: keep it here; the next
                        // refresh stores its own pair at the same version.
                        tracing::warn!(org = %self.org, error = %e, "refreshed Xero tokens could not be stored");
                        self.adopt(next, version);
                        Ok(())
                    }
                }
            }
            Err(TokenError::InvalidGrant) => {
                // Another instance may have rotated the pair (refresh tokens are single-use).
                if self.reread(version).await? {
                    return Ok(());
                }
                tracing::warn!(org = %self.org, "Xero refused the org's refresh token (invalid_grant)");
                Err(AccountingError(
                    "Xero no longer accepts the org's connection (invalid_grant): an admin must reconnect Xero".to_owned(),
                ))
            }
            Err(TokenError::Failed(e)) => Err(e),
        }
    }

    /// Takes the stored connection if it is newer than `version`; whether it was.
    async fn reread(&self, version: u64) -> Result<bool, AccountingError> {
        let Some(config) = self.configs.accounting_config(&self.org).await? else {
            return Ok(false);
        };
        if config.system != NAME || config.version == version {
            return Ok(false);
        }
        let creds = XeroCredentials::parse(&config.credentials)?;
        self.adopt(creds, config.version);
        Ok(true)
    }

    fn note_budget(&self, headers: &HeaderMap) {
        let read = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        let now = self.clock.now();
        let mut budget = self.budget.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = read("x-minlimit-remaining") {
            budget.minute = Some((n, now));
        }
        if let Some(n) = read("x-daylimit-remaining") {
            budget.day = Some((n, now));
        }
    }

    /// A write-back's wait when the budgets are nearly spent (payers' reads get the rest).
    fn budget_wait(&self) -> Option<Posted> {
        let budget = *self.budget.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.clock.now();
        if let Some((left, at)) = budget.day
            && left < DAY_RESERVE
            && now - at < time::Duration::hours(1)
        {
            return Some(Posted::Later {
                after: Duration::from_secs(3600),
                why: format!("Xero's daily call budget for the org is nearly spent ({left} left)"),
            });
        }
        if let Some((left, at)) = budget.minute
            && left < MINUTE_RESERVE
            && now - at < time::Duration::minutes(1)
        {
            return Some(Posted::Later {
                after: Duration::from_secs(60),
                why: format!(
                    "Xero's per-minute call budget for the org is nearly spent ({left} left)"
                ),
            });
        }
        None
    }

    async fn send(
        &self,
        call: &Call<'_>,
        creds: &XeroCredentials,
    ) -> Result<Reply, AccountingError> {
        let mut request = self
            .http
            .request(
                call.method.clone(),
                format!("{}/api.xro/2.0/{}", self.endpoints.xero_api, call.path),
            )
            .bearer_auth(&creds.access_token)
            .header("xero-tenant-id", &creds.tenant_id)
            .header(ACCEPT, call.accept);
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(key) = &call.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(body).expect("JSON"));
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        self.note_budget(&headers);
        let body = response.bytes().await.map_err(transport)?.to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// One call with a fresh token; on a 401, one refresh and one more try (never more).
    async fn call(&self, call: &Call<'_>) -> Result<Reply, AccountingError> {
        let (creds, refreshed) = self.fresh().await?;
        let reply = self.send(call, &creds).await?;
        if reply.status != StatusCode::UNAUTHORIZED || refreshed {
            return Ok(reply);
        }
        self.refresh(&creds.access_token).await?;
        let (creds, _) = self.snapshot();
        self.send(call, &creds).await
    }

    /// A read: a short 429 is waited out once; a long one, a 5xx or an unexpected answer fail.
    async fn read(&self, call: &Call<'_>) -> Result<Reply, AccountingError> {
        let mut reply = self.call(call).await?;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after(&reply.headers);
            if wait <= READ_WAIT {
                tokio::time::sleep(wait).await;
                reply = self.call(call).await?;
            }
        }
        match reply.status {
            s if s == StatusCode::TOO_MANY_REQUESTS => Err(AccountingError(format!(
                "Xero is rate limiting; try again in {} s",
                retry_after(&reply.headers).as_secs()
            ))),
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(reply),
            s if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN => {
                Err(AccountingError(format!(
                    "Xero refused the org's connection ({s}); an admin may need to reconnect Xero"
                )))
            }
            s => Err(AccountingError(format!("Xero answered {s}"))),
        }
    }

    /// Invoices of a `GET /Invoices` query (one page or all).
    async fn invoices(
        &self,
        query: Vec<(&str, String)>,
    ) -> Result<(Vec<XInvoice>, Option<Pagination>), AccountingError> {
        let mut call = Call::get("Invoices");
        call.query = query;
        let reply = self.read(&call).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok((Vec::new(), None));
        }
        let list: XInvoices = serde_json::from_slice(&reply.body)
            .map_err(|e| AccountingError(format!("Xero's invoices could not be read: {e}")))?;
        Ok((list.invoices, list.pagination))
    }

    /// The sales invoice with exactly this number.
    async fn find(&self, number: &InvoiceNumber) -> Result<Option<XInvoice>, AccountingError> {
        let (list, _) = self
            .invoices(vec![("InvoiceNumbers", number.as_str().to_owned())])
            .await?;
        Ok(list.into_iter().find(|i| {
            i.kind.as_deref() == Some("ACCREC") && i.number.as_deref() == Some(number.as_str())
        }))
    }

    /// A write's answer: a 429 as `Later`, a 400 as its body, a success as its JSON.
    async fn answer(&self, call: &Call<'_>) -> Result<Answered, AccountingError> {
        let reply = self.call(call).await?;
        let status = reply.status;
        if status == StatusCode::TOO_MANY_REQUESTS {
            let problem = reply
                .headers
                .get("x-rate-limit-problem")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("unknown");
            return Ok(Answered::Later(Posted::Later {
                after: retry_after(&reply.headers),
                why: format!("Xero is rate limiting the org ({problem} limit)"),
            }));
        }
        if status == StatusCode::BAD_REQUEST {
            return Ok(Answered::Refused(reply.body));
        }
        if !status.is_success() {
            return Err(AccountingError(format!("Xero answered {status}")));
        }
        let body: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| AccountingError(format!("Xero's answer could not be read: {e}")))?;
        Ok(Answered::Done(body))
    }

    /// A write: its outcome as a posting (`Recorded` carries the first created id).
    async fn write(
        &self,
        call: &Call<'_>,
        collection: &str,
        id_field: &str,
    ) -> Result<Written, AccountingError> {
        let body = match self.answer(call).await? {
            Answered::Later(posted) => return Ok(Written::Posted(posted)),
            Answered::Refused(body) => return Ok(Written::Posted(Posted::Refused(refusal(&body)))),
            Answered::Done(body) => body,
        };
        let first = body.get(collection).and_then(|l| l.get(0));
        if let Some(item) = first {
            let messages = messages_of(item);
            if !messages.is_empty() {
                return Ok(Written::Posted(Posted::Refused(messages.join("; "))));
            }
        }
        match first.and_then(|i| i.get(id_field)).and_then(Value::as_str) {
            Some(id) => Ok(Written::Created(id.to_owned())),
            None => Err(AccountingError(format!("Xero's answer has no {id_field}"))),
        }
    }

    /// The payments of a posting of several invoices, in one batch under the payment's key:
    /// their ids in the parts' order, or what stopped them.
    async fn post_parts(
        &self,
        posting: &PaymentPosting,
        parts: &[Allocation],
        creds: &XeroCredentials,
    ) -> Result<Result<Vec<String>, Posted>, AccountingError> {
        let date = posting.paid_on.to_string();
        let payments: Vec<Value> = parts
            .iter()
            .map(|part| {
                json!({
                    "Invoice": {"InvoiceNumber": part.invoice.as_str()},
                    "Account": {"Code": creds.payment_account},
                    "Date": date,
                    "Amount": number(part.amount),
                    "Reference": posting.reference,
                })
            })
            .collect();
        let mut call = Call::write(
            Method::PUT,
            "Payments",
            json!({ "Payments": payments }),
            Some(posting.payment.as_str().to_owned()),
        );
        // All or none: a batch with one bad payment is a 400 and creates nothing.
        call.query = vec![("summarizeErrors", "true".to_owned())];
        let body = match self.answer(&call).await? {
            Answered::Later(posted) => return Ok(Err(posted)),
            Answered::Refused(body) => {
                return Ok(Err(Posted::Refused(batch_refusal(&body, parts))));
            }
            Answered::Done(body) => body,
        };
        let items = body
            .get("Payments")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        batch_outcome(items, parts)
    }

    async fn post_surcharge(
        &self,
        posting: &PaymentPosting,
        parts: &[Allocation],
        creds: &XeroCredentials,
        account: &str,
    ) -> Result<Written, AccountingError> {
        let Some(invoice) = self.find(&posting.invoice).await? else {
            return Ok(Written::Posted(Posted::Refused(format!(
                "invoice {} is not in Xero",
                posting.invoice
            ))));
        };
        let Some(contact) = invoice.contact.and_then(|c| c.id) else {
            return Err(AccountingError(format!(
                "Xero gave invoice {} no contact",
                posting.invoice
            )));
        };
        let what = format!("Card surcharge for {}", invoices_named(parts));
        let date = posting.paid_on.to_string();
        let body = json!({"Invoices": [{
            "Type": "ACCREC",
            "Contact": {"ContactID": contact},
            "Date": date,
            "DueDate": date,
            "Status": "AUTHORISED",
            "LineAmountTypes": "NoTax",
            "CurrencyCode": posting.surcharge.currency().code(),
            "Reference": what,
            "LineItems": [{
                "Description": what,
                "Quantity": 1,
                "UnitAmount": number(posting.surcharge),
                "AccountCode": account,
            }],
        }]});
        let key = format!("{}-surcharge", posting.payment);
        let call = Call::write(Method::PUT, "Invoices", body, Some(key));
        let invoice_id = match self.write(&call, "Invoices", "InvoiceID").await? {
            Written::Created(id) => id,
            posted => return Ok(posted),
        };
        let body = json!({"Payments": [{
            "Invoice": {"InvoiceID": invoice_id},
            "Account": {"Code": creds.payment_account},
            "Date": date,
            "Amount": number(posting.surcharge),
            "Reference": posting.reference,
        }]});
        let key = format!("{}-surcharge-payment", posting.payment);
        let call = Call::write(Method::PUT, "Payments", body, Some(key));
        self.write(&call, "Payments", "PaymentID").await
    }
}

enum Written {
    Created(String),
    Posted(Posted),
}

enum Answered {
    /// Rate limited.
    Later(Posted),
    /// A 400: its body.
    Refused(Vec<u8>),
    /// A success: its JSON.
    Done(Value),
}

/// The invoices of a posting for a surcharge's reference ("INV-1", "INV-1, INV-2"), kept well
/// inside Xero's 255 characters: past 200, the rest are counted.
fn invoices_named(parts: &[Allocation]) -> String {
    let mut named = String::new();
    for (i, part) in parts.iter().enumerate() {
        if !named.is_empty() && named.len() + part.invoice.as_str().len() > 200 {
            return format!("{named} and {} more", parts.len() - i);
        }
        if !named.is_empty() {
            named.push_str(", ");
        }
        named.push_str(part.invoice.as_str());
    }
    named
}

/// The invoice number a batch element names (Xero echoes the request's element).
fn element_invoice(item: &Value) -> Option<&str> {
    item.get("Invoice")
        .and_then(|i| i.get("InvoiceNumber"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// Xero's words on a refused batch, each element's named by its invoice: "invoice INV-2:
/// Invoice not of valid status for modification".
fn batch_refusal(body: &[u8], parts: &[Allocation]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return refusal(body);
    };
    let named: Vec<String> = v
        .get("Elements")
        .and_then(Value::as_array)
        .into_iter()
        .flat_map(|list| list.iter().enumerate())
        .filter_map(|(i, item)| part_refusal(item, parts.get(i)))
        .collect();
    if named.is_empty() {
        refusal(body)
    } else {
        named.join("; ")
    }
}

/// "invoice INV-2: Xero's words" when the element carries validation errors.
fn part_refusal(item: &Value, part: Option<&Allocation>) -> Option<String> {
    let mut messages = messages_of(item);
    messages.dedup();
    if messages.is_empty() {
        return None;
    }
    let invoice = element_invoice(item)
        .map(str::to_owned)
        .or_else(|| part.map(|p| p.invoice.to_string()));
    Some(match invoice {
        Some(n) => format!("invoice {n}: {}", messages.join("; ")),
        None => messages.join("; "),
    })
}

/// The payment ids of a batch's successful answer, one an element in the parts' order. An
/// answer with some elements refused (Xero took the batch as `summarizeErrors=false`: the
/// others were created all the same) is a refusal that names both.
fn batch_outcome(
    items: &[Value],
    parts: &[Allocation],
) -> Result<Result<Vec<String>, Posted>, AccountingError> {
    if items.len() != parts.len() {
        return Err(AccountingError(format!(
            "Xero answered {} payments for the {} invoices paid",
            items.len(),
            parts.len()
        )));
    }
    let mut ids = Vec::new();
    let mut refused = Vec::new();
    let mut created = Vec::new();
    for (item, part) in items.iter().zip(parts) {
        if let Some(why) = part_refusal(item, Some(part)) {
            refused.push(why);
            continue;
        }
        let Some(id) = item.get("PaymentID").and_then(Value::as_str) else {
            return Err(AccountingError("Xero's answer has no PaymentID".to_owned()));
        };
        if let Some(n) = element_invoice(item)
            && !n.eq_ignore_ascii_case(part.invoice.as_str())
        {
            return Err(AccountingError(format!(
                "Xero answered a payment of invoice {n} where one of {} was asked for",
                part.invoice
            )));
        }
        created.push(format!("invoice {} as payment {id}", part.invoice));
        ids.push(id.to_owned());
    }
    if refused.is_empty() {
        return Ok(Ok(ids));
    }
    let mut why = refused.join("; ");
    if !created.is_empty() {
        why.push_str(&format!(
            " (Xero recorded the other invoices' payments all the same: {}; they stand, so \
             record the rest by hand and mark this payment fixed)",
            created.join(", ")
        ));
    }
    Ok(Err(Posted::Refused(why)))
}

/// Xero's words from a 400: `Elements[].ValidationErrors[].Message`, else `Message`.
fn refusal(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return "Xero refused the request".to_owned();
    };
    let mut messages: Vec<String> = v
        .get("Elements")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(messages_of)
        .collect();
    messages.dedup();
    if messages.is_empty() {
        v.get("Message")
            .or_else(|| v.get("Detail"))
            .and_then(Value::as_str)
            .unwrap_or("Xero refused the request")
            .to_owned()
    } else {
        messages.join("; ")
    }
}

fn messages_of(item: &Value) -> Vec<String> {
    item.get("ValidationErrors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("Message").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

#[derive(Deserialize)]
struct XInvoices {
    #[serde(rename = "Invoices", default)]
    invoices: Vec<XInvoice>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    page_count: Option<u32>,
}

#[derive(Deserialize)]
struct XInvoice {
    #[serde(rename = "Type")]
    kind: Option<String>,
    #[serde(rename = "InvoiceID")]
    id: Option<String>,
    #[serde(rename = "InvoiceNumber")]
    number: Option<String>,
    #[serde(rename = "Contact")]
    contact: Option<XContact>,
    #[serde(rename = "Date")]
    date: Option<String>,
    #[serde(rename = "DateString")]
    date_string: Option<String>,
    #[serde(rename = "DueDate")]
    due_date: Option<String>,
    #[serde(rename = "DueDateString")]
    due_date_string: Option<String>,
    #[serde(rename = "Status")]
    status: Option<String>,
    #[serde(rename = "CurrencyCode")]
    currency: Option<String>,
    #[serde(rename = "Total")]
    total: Option<Number>,
    #[serde(rename = "AmountDue")]
    amount_due: Option<Number>,
}

#[derive(Deserialize)]
struct XContact {
    #[serde(rename = "ContactID")]
    id: Option<String>,
    #[serde(rename = "Name")]
    name: Option<String>,
}

fn status_of(status: &str) -> Option<InvoiceStatus> {
    match status {
        "AUTHORISED" => Some(InvoiceStatus::Open),
        "PAID" => Some(InvoiceStatus::Paid),
        "VOIDED" | "DELETED" => Some(InvoiceStatus::Void),
        "DRAFT" | "SUBMITTED" => Some(InvoiceStatus::Draft),
        _ => None,
    }
}

/// A Xero date: `DateString` ("2019-03-12T00:00:00") when given, else `Date`
/// ("/Date(1552348800000+0000)/", read in its own offset; or plain "2019-03-12").
pub fn xero_date(string: Option<&str>, ms: Option<&str>) -> Option<Date> {
    let plain = |text: &str| {
        text.get(..10).and_then(|day| {
            Date::parse(
                day,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .ok()
        })
    };
    if let Some(day) = string.and_then(plain) {
        return Some(day);
    }
    let text = ms?;
    let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|t| t.strip_suffix(")/"))
    else {
        return plain(text);
    };
    let split = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map_or(inner.len(), |(i, _)| i);
    let (millis, zone) = inner.split_at(split);
    let millis: i64 = millis.parse().ok()?;
    let at = OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000)).ok()?;
    let offset = if zone.len() == 5 {
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let hours: i8 = zone[1..3].parse().ok()?;
        let minutes: i8 = zone[3..5].parse().ok()?;
        UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()?
    } else {
        UtcOffset::UTC
    };
    Some(at.to_offset(offset).date())
}

impl XInvoice {
    fn to_invoice(&self) -> Result<Invoice, String> {
        let number = self.number.as_deref().unwrap_or_default();
        let number = InvoiceNumber::parse(number).map_err(|e| e.to_string())?;
        let contact = self.contact.as_ref().ok_or("no Contact")?;
        let customer_id = CustomerId::parse(contact.id.as_deref().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        let code = self.currency.as_deref().ok_or("no CurrencyCode")?;
        let currency: Currency = code
            .parse()
            .map_err(|_| format!("currency {code} is not taken"))?;
        let amount = |n: &Option<Number>, what: &str| -> Result<Money, String> {
            let n = n.as_ref().ok_or_else(|| format!("no {what}"))?;
            money(n, currency)
        };
        let status = self.status.as_deref().unwrap_or_default();
        Ok(Invoice {
            number,
            customer_id,
            customer_name: contact.name.clone().unwrap_or_default(),
            total: amount(&self.total, "Total")?,
            amount_due: amount(&self.amount_due, "AmountDue")?,
            status: status_of(status).ok_or_else(|| format!("status {status} is not known"))?,
            issue_date: xero_date(self.date_string.as_deref(), self.date.as_deref())
                .ok_or("no Date")?,
            due_date: xero_date(self.due_date_string.as_deref(), self.due_date.as_deref())
                .ok_or("no DueDate")?,
        })
    }
}

#[async_trait]
impl Accounting for XeroAccounting {
    async fn read_invoice(
        &self,
        org: &OrgSlug,
        number: &InvoiceNumber,
    ) -> Result<Option<InvoiceRead>, AccountingError> {
        self.serves(org)?;
        let Some(found) = self.find(number).await? else {
            return Ok(None);
        };
        let invoice = found.to_invoice().map_err(|e| {
            AccountingError(format!("Xero's invoice {number} could not be read: {e}"))
        })?;
        Ok(Some(InvoiceRead {
            invoice,
            ledger_version: None,
        }))
    }

    async fn open_invoices(
        &self,
        org: &OrgSlug,
        customer: &CustomerId,
    ) -> Result<Vec<Invoice>, AccountingError> {
        self.serves(org)?;
        let mut open = Vec::new();
        for page in 1..=MAX_PAGES {
            let (list, pagination) = self
                .invoices(vec![
                    ("ContactIDs", customer.as_str().to_owned()),
                    ("Statuses", "AUTHORISED".to_owned()),
                    ("page", page.to_string()),
                ])
                .await?;
            let count = list.len();
            for item in list {
                if item.kind.as_deref() != Some("ACCREC") {
                    continue;
                }
                match item.to_invoice() {
                    Ok(invoice) if invoice.is_payable() => open.push(invoice),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(org = %self.org, error = %e, "a Xero invoice was left out of the open invoices");
                    }
                }
            }
            let last_page = pagination
                .and_then(|p| p.page_count)
                .is_some_and(|n| page >= n);
            if count < PAGE_SIZE || last_page {
                return Ok(open);
            }
        }
        Err(AccountingError(format!(
            "the customer has more than {} invoices open in Xero",
            PAGE_SIZE * MAX_PAGES as usize
        )))
    }

    async fn post_payment(&self, posting: &PaymentPosting) -> Result<Posted, AccountingError> {
        self.serves(&posting.org)?;
        if let Some(later) = self.budget_wait() {
            return Ok(later);
        }
        let parts = match parts(posting) {
            Ok(parts) => parts,
            Err(why) => return Ok(Posted::Refused(why)),
        };
        let (creds, _) = self.snapshot();
        let payment_id = if parts.len() > 1 {
            match self.post_parts(posting, &parts, &creds).await? {
                Ok(ids) => ids.join("+"),
                Err(posted) => return Ok(posted),
            }
        } else {
            let whole = &parts[0];
            let body = json!({"Payments": [{
                "Invoice": {"InvoiceNumber": whole.invoice.as_str()},
                "Account": {"Code": creds.payment_account},
                "Date": posting.paid_on.to_string(),
                "Amount": number(whole.amount),
                "Reference": posting.reference,
            }]});
            let call = Call::write(
                Method::PUT,
                "Payments",
                body,
                Some(posting.payment.as_str().to_owned()),
            );
            match self.write(&call, "Payments", "PaymentID").await? {
                Written::Created(id) => id,
                Written::Posted(posted) => return Ok(posted),
            }
        };
        let surcharge_account = creds.surcharge_account.as_deref().filter(|a| !a.is_empty());
        let (Some(account), false) = (surcharge_account, posting.surcharge.is_zero()) else {
            return Ok(Posted::Recorded {
                remote_id: payment_id,
            });
        };
        // Retrying the whole posting is safe: every step has its own idempotency key.
        match self
            .post_surcharge(posting, &parts, &creds, account)
            .await?
        {
            Written::Created(surcharge_id) => Ok(Posted::Recorded {
                remote_id: format!("{payment_id}+{surcharge_id}"),
            }),
            Written::Posted(Posted::Refused(why)) => Ok(Posted::Refused(format!(
                "the payment was recorded in Xero ({payment_id}) but its card surcharge was refused: {why}"
            ))),
            Written::Posted(other) => Ok(other),
        }
    }

    async fn reverse_payment(&self, reversal: &PaymentReversal) -> Result<Posted, AccountingError> {
        self.serves(&reversal.org)?;
        if let Some(later) = self.budget_wait() {
            return Ok(later);
        }
        for (i, id) in reversal.remote_id.split('+').enumerate() {
            let id = id.trim();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                return Ok(Posted::Refused(format!("{id:?} is not a Xero payment id")));
            }
            let call = Call::write(
                Method::POST,
                format!("Payments/{id}"),
                json!({"Status": "DELETED"}),
                Some(format!("{}-{i}", reversal.id)),
            );
            let reply = self.call(&call).await?;
            match reply.status {
                s if s.is_success() => {}
                s if s == StatusCode::TOO_MANY_REQUESTS => {
                    return Ok(Posted::Later {
                        after: retry_after(&reply.headers),
                        why: "Xero is rate limiting the org".to_owned(),
                    });
                }
                s if s == StatusCode::BAD_REQUEST => {
                    let why = refusal(&reply.body);
                    if why.to_ascii_lowercase().contains("deleted") {
                        continue; // deleted before: done
                    }
                    return Ok(Posted::Refused(why));
                }
                s if s == StatusCode::NOT_FOUND => {
                    return Ok(Posted::Refused(format!("Xero has no payment {id}")));
                }
                s => return Err(AccountingError(format!("Xero answered {s}"))),
            }
        }
        Ok(Posted::Recorded {
            remote_id: reversal.remote_id.clone(),
        })
    }

    async fn invoice_pdf(
        &self,
        org: &OrgSlug,
        number: &InvoiceNumber,
    ) -> Result<Option<Vec<u8>>, AccountingError> {
        self.serves(org)?;
        let Some(id) = self.find(number).await?.and_then(|i| i.id) else {
            return Ok(None);
        };
        let mut call = Call::get(format!("Invoices/{id}"));
        call.accept = "application/pdf";
        let reply = self.read(&call).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !reply.body.starts_with(b"%PDF") {
            return Err(AccountingError(format!(
                "Xero gave no PDF for invoice {number}"
            )));
        }
        Ok(Some(reply.body))
    }

    async fn test_connection(&self, org: &OrgSlug) -> Result<ConnectionCheck, AccountingError> {
        self.serves(org)?;
        let reply = match self.call(&Call::get("Organisation")).await {
            Ok(reply) => reply,
            Err(e) if e.0.contains("reconnect") => return Ok(ConnectionCheck::Refused(e.0)),
            Err(e) => return Err(e),
        };
        match reply.status {
            s if s.is_success() => Ok(ConnectionCheck::Accepted),
            s if s == StatusCode::UNAUTHORIZED => Ok(ConnectionCheck::Refused(
                "Xero does not accept the connection's tokens: reconnect Xero".to_owned(),
            )),
            s if s == StatusCode::FORBIDDEN => Ok(ConnectionCheck::Refused(
                "the Xero organisation is not connected to this app any more: reconnect Xero"
                    .to_owned(),
            )),
            s if s == StatusCode::TOO_MANY_REQUESTS => Err(AccountingError(format!(
                "Xero is rate limiting; try again in {} s",
                retry_after(&reply.headers).as_secs()
            ))),
            s => Err(AccountingError(format!("Xero answered {s}"))),
        }
    }

    async fn writes_back(&self, org: &OrgSlug) -> Result<bool, AccountingError> {
        self.serves(org)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_both_forms() {
        let day = time::macros::date!(2019 - 03 - 12);
        assert_eq!(xero_date(Some("2019-03-12T00:00:00"), None), Some(day));
        assert_eq!(
            xero_date(None, Some("/Date(1552348800000+0000)/")),
            Some(day)
        );
        assert_eq!(xero_date(None, Some("/Date(1552348800000)/")), Some(day));
        // 2019-03-11T23:00Z is the 12th in New Zealand.
        assert_eq!(
            xero_date(None, Some("/Date(1552345200000+1300)/")),
            Some(day)
        );
        assert_eq!(xero_date(None, Some("2019-03-12")), Some(day));
        assert_eq!(xero_date(None, Some("garbage")), None);
    }

    #[test]
    fn refusals_carry_xeros_words() {
        let body = br#"{"ErrorNumber":10,"Type":"ValidationException","Message":"A validation exception occurred","Elements":[{"ValidationErrors":[{"Message":"Payment amount exceeds the amount outstanding on this document"}]}]}"#;
        assert_eq!(
            refusal(body),
            "Payment amount exceeds the amount outstanding on this document"
        );
        assert_eq!(refusal(br#"{"Message":"No"}"#), "No");
    }

    fn part(invoice: &str, amount: &str) -> Allocation {
        Allocation {
            invoice: InvoiceNumber::parse(invoice).unwrap(),
            amount: Money::parse(amount, Currency::Usd).unwrap(),
        }
    }

    #[test]
    fn a_refused_batch_names_each_refused_invoice() {
        let parts = [part("INV-1", "10.00"), part("INV-2", "5.00")];
        let body = br#"{"ErrorNumber":10,"Type":"ValidationException","Message":"A validation exception occurred","Elements":[{"Invoice":{"InvoiceNumber":"INV-1"},"Amount":10},{"Amount":5,"ValidationErrors":[{"Message":"Invoice not of valid status for modification"}]}]}"#;
        assert_eq!(
            batch_refusal(body, &parts),
            "invoice INV-2: Invoice not of valid status for modification"
        );
        // No element errors: Xero's message, as for one invoice.
        assert_eq!(batch_refusal(br#"{"Message":"No"}"#, &parts), "No");
    }

    #[test]
    fn a_batch_answered_in_part_is_a_refusal_naming_what_xero_recorded() {
        let parts = [part("INV-1", "10.00"), part("INV-2", "5.00")];
        let items: Vec<Value> = serde_json::from_str(
            r#"[{"PaymentID":"aaaa-1","Invoice":{"InvoiceNumber":"INV-1"},"StatusAttributeString":"OK"},
                {"Invoice":{"InvoiceNumber":"INV-2"},"StatusAttributeString":"ERROR","ValidationErrors":[{"Message":"Invoice not of valid status for modification"}]}]"#,
        )
        .unwrap();
        let Ok(Err(Posted::Refused(why))) = batch_outcome(&items, &parts) else {
            panic!("not refused")
        };
        assert_eq!(
            why,
            "invoice INV-2: Invoice not of valid status for modification (Xero recorded the \
             other invoices' payments all the same: invoice INV-1 as payment aaaa-1; they \
             stand, so record the rest by hand and mark this payment fixed)"
        );
        let items: Vec<Value> = serde_json::from_str(
            r#"[{"PaymentID":"aaaa-1","Invoice":{"InvoiceNumber":"INV-1"}},{"PaymentID":"bbbb-2"}]"#,
        )
        .unwrap();
        assert_eq!(
            batch_outcome(&items, &parts).unwrap(),
            Ok(vec!["aaaa-1".to_owned(), "bbbb-2".to_owned()])
        );
        // An answer that does not match the request is an error (tried again), not a guess.
        assert!(batch_outcome(&items[..1], &parts).is_err());
        let swapped: Vec<Value> = serde_json::from_str(
            r#"[{"PaymentID":"aaaa-1","Invoice":{"InvoiceNumber":"INV-2"}},{"PaymentID":"bbbb-2"}]"#,
        )
        .unwrap();
        assert!(batch_outcome(&swapped, &parts).is_err());
    }

    #[test]
    fn a_surcharge_names_the_invoices_within_xeros_limit() {
        assert_eq!(invoices_named(&[part("INV-1", "1.00")]), "INV-1");
        assert_eq!(
            invoices_named(&[part("INV-1", "1.00"), part("INV-2", "1.00")]),
            "INV-1, INV-2"
        );
        let many: Vec<Allocation> = (0..40)
            .map(|i| part(&format!("INVOICE-{i:04}"), "1.00"))
            .collect();
        let named = invoices_named(&many);
        assert!(named.len() < 240, "{named}");
        assert!(named.starts_with("INVOICE-0000, INVOICE-0001"));
        assert!(named.ends_with(" more"), "{named}");
    }

    #[test]
    fn the_authorize_url_asks_for_a_code() {
        let url = authorize_url(
            &Endpoints::default(),
            "cid",
            "https://p.example/cb?x=1",
            "st",
        );
        assert!(url.starts_with("https://login.xero.com/identity/connect/authorize?response_type=code&client_id=cid&redirect_uri=https%3A%2F%2Fp.example%2Fcb%3Fx%3D1&scope=offline_access+accounting.transactions"));
        assert!(url.ends_with("&state=st"));
    }

    #[test]
    fn credentials_errors_quote_no_secret() {
        let e = XeroCredentials::parse(&Secret::new(
            r#"{"client_id":"a","client_secret":"hunter2"}"#.to_owned(),
        ))
        .unwrap_err();
        assert!(!e.0.contains("hunter2"), "{e}");
        assert!(e.0.contains("missing field"), "{e}");
        let e =
            XeroCredentials::parse(&Secret::new(r#"{"client_secret":42"#.to_owned())).unwrap_err();
        assert!(!e.0.contains("42"), "{e}");
    }
}
