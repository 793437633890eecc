//! Stripe behind the gateway port, over its form-encoded v1 API.
//!
//! * Charges are PaymentIntents created and confirmed in one call, with our reference as the
//!   `Idempotency-Key` (a retry reuses it) and in `metadata[paybridge_reference]`. A saved
//!   method is charged `off_session` (the payer is not there to authenticate; the tick and a
//!   signed-in payer's saved card alike): a bank asking for authentication then declines with
//!   `authentication_required`, a soft decline.
//! * `find_charge` looks the PaymentIntent up by that metadata in the account's newest
//!   PaymentIntents (a bounded list, strongly consistent, unlike the Search API, which lags by
//!   up to a minute: exactly the window after a timeout in which we ask). We do not learn the
//!   PaymentIntent's id when the answer to its creation is lost, so storing it cannot help there.
//! * Card data never reaches us: the browser (Stripe.js) turns it into a PaymentMethod (`pm_…`),
//!   which is the token we are given.

use std::time::Duration;

use async_trait::async_trait;
use domain::{Email, OrgSlug, Secret};
use serde_json::Value;

use app::payments::MethodSummary;
use app::ports::{
    BrowserTokenizer, CardDetails, ChargeOutcome, ChargeRequest, ChargeSource, ConnectionCheck,
    DeclineReason, Gateway, GatewayError, GatewayEvent, GatewayMethod, RefundOutcome,
    RefundRequest, WebhookDelivery, WebhookRejection,
};
use domain::{Money, PaymentStatus};
use time::OffsetDateTime;

use crate::signature;

/// Stripe's API, where production calls go.
pub const STRIPE_API: &str = "https://api.stripe.com";
/// The metadata key that carries our reference on a PaymentIntent.
const REFERENCE_KEY: &str = "paybridge_reference";
/// How many of the newest PaymentIntents `find_charge` reads (pages of 100).
const LOOKUP_PAGES: usize = 5;
/// Each call's limit: a charge that takes longer is looked up by reference.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The gateway's name on payments and methods.
pub const NAME: &str = "stripe";

/// Stripe.js, which the payer's browser loads from Stripe (never bundled or self-hosted).
pub const STRIPE_JS: &str = "https://js.stripe.com/v3/";

/// A client for one Stripe account (one org's secret key). Debug never shows the key.
#[derive(Clone)]
pub struct StripeGateway {
    http: reqwest::Client,
    base: String,
    secret_key: Secret<String>,
    /// The account's publishable key (`pk_…`), public: Stripe.js needs it in the browser.
    publishable_key: Option<String>,
}

impl std::fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StripeGateway({})", self.base)
    }
}

/// What Stripe answered: a 2xx object, or an error object with its HTTP status.
enum Answer {
    Ok(Value),
    Refused { status: u16, error: Value },
}

/// A shared HTTP client for gateway calls (connection pools are per client).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("a reqwest client with rustls builds")
}

impl StripeGateway {
    /// `base`: [`STRIPE_API`], or a local double's `http://127.0.0.1:PORT`.
    pub fn new(http: reqwest::Client, base: &str, secret_key: Secret<String>) -> StripeGateway {
        StripeGateway {
            http,
            base: base.trim_end_matches('/').to_owned(),
            secret_key,
            publishable_key: None,
        }
    }

    /// The account's publishable key, for Stripe.js in the payer's browser.
    pub fn with_publishable_key(mut self, key: impl Into<String>) -> StripeGateway {
        self.publishable_key = Some(key.into()).filter(|k| !k.is_empty());
        self
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(String, String)],
        idempotency_key: Option<&str>,
    ) -> Result<Answer, GatewayError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(self.secret_key.expose());
        if method == reqwest::Method::GET {
            request = request.query(form);
        } else {
            request = request.form(form);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        // Errors name the path, never the request (its headers hold the key).
        let response = request.send().await.map_err(|e| {
            GatewayError::Unavailable(format!("stripe {path}: {}", e.without_url()))
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            GatewayError::Unavailable(format!("stripe {path}: {}", e.without_url()))
        })?;
        let value: Value = serde_json::from_slice(&body).map_err(|_| {
            GatewayError::Unavailable(format!("stripe {path}: HTTP {status}, not JSON"))
        })?;
        match status {
            200..=299 => Ok(Answer::Ok(value)),
            // Rate limited, idempotent request still in flight, or Stripe's own failure: the
            // request may or may not have been applied.
            409 | 429 | 500..=599 => Err(GatewayError::Unavailable(format!(
                "stripe {path}: HTTP {status}"
            ))),
            _ => Ok(Answer::Refused {
                status,
                error: value.get("error").cloned().unwrap_or(Value::Null),
            }),
        }
    }

    async fn payment_method(&self, id: &str) -> Result<Option<Value>, GatewayError> {
        match self
            .call(
                reqwest::Method::GET,
                &format!("/v1/payment_methods/{}", path_segment(id)),
                &[],
                None,
            )
            .await?
        {
            Answer::Ok(pm) => Ok(Some(pm)),
            Answer::Refused { status: 404, .. } => Ok(None),
            Answer::Refused { status, error } => Err(refused(status, &error)),
        }
    }

    /// A PaymentMethod from a card's number (the proxy's card): Stripe's raw card data API,
    /// which an account must have enabled (most take cards through Stripe.js only). Made under a
    /// key of the payment's reference, so a retry makes the same one. Refused details are the
    /// charge's decline.
    async fn card_payment_method(
        &self,
        request: &ChargeRequest,
        card: &CardDetails,
    ) -> Result<Result<String, ChargeOutcome>, GatewayError> {
        let mut form = vec![
            pair("type", "card"),
            pair("card[number]", card.number.expose().clone()),
            pair("card[exp_month]", card.exp_month.to_string()),
            pair("card[exp_year]", card.exp_year.to_string()),
        ];
        if let Some(code) = &card.code {
            form.push(pair("card[cvc]", code.expose().clone()));
        }
        let key = format!("card:{}", request.reference);
        match self
            .call(
                reqwest::Method::POST,
                "/v1/payment_methods",
                &form,
                Some(&key),
            )
            .await?
        {
            Answer::Ok(pm) => Ok(Ok(str_at(&pm, "/id").to_owned())),
            Answer::Refused {
                status: 400 | 402,
                error,
            } => Ok(Err(ChargeOutcome::Declined {
                gateway_ref: None,
                reason: decline_reason(&error),
            })),
            Answer::Refused { status, error } => Err(refused(status, &error)),
        }
    }

    /// The outcome a PaymentIntent stands for.
    async fn outcome_of(&self, pi: &Value) -> Result<ChargeOutcome, GatewayError> {
        let id = str_at(pi, "/id").to_owned();
        match str_at(pi, "/status") {
            status @ ("succeeded" | "processing") => Ok(ChargeOutcome::Approved {
                gateway_ref: id,
                settling: status == "processing",
                method: self.summary_of(pi).await?,
            }),
            // The bank wants the payer to authenticate: not taken (the PaymentIntent is left
            // to expire; the payer pays again on the page).
            "requires_action" => Ok(ChargeOutcome::Declined {
                gateway_ref: Some(id),
                reason: DeclineReason::AuthenticationRequired,
            }),
            _ => {
                let error = pi.get("last_payment_error").unwrap_or(&Value::Null);
                Ok(ChargeOutcome::Declined {
                    gateway_ref: Some(id),
                    reason: decline_reason(error),
                })
            }
        }
    }

    /// The method of a PaymentIntent (expanded, or fetched by id).
    async fn summary_of(&self, pi: &Value) -> Result<MethodSummary, GatewayError> {
        let pm = match pi.get("payment_method") {
            Some(Value::Object(_)) => pi["payment_method"].clone(),
            Some(Value::String(id)) => self.payment_method(id).await?.unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let method = method_of(&pm);
        Ok(MethodSummary {
            kind: method.kind,
            brand: method.brand,
            last4: method.last4,
        })
    }

    /// `method_type`: the PaymentMethod's `type` (`card`, `us_bank_account`, ...): a
    /// PaymentIntent names the types it may be paid with.
    async fn create_payment_intent(
        &self,
        request: &ChargeRequest,
        method: &str,
        method_type: &str,
    ) -> Result<Answer, GatewayError> {
        let mut form = vec![
            pair("amount", request.amount.minor().to_string()),
            pair(
                "currency",
                request.amount.currency().code().to_ascii_lowercase(),
            ),
            pair("confirm", "true"),
            pair("payment_method_types[]", method_type),
            pair("expand[]", "payment_method"),
            pair(
                format!("metadata[{REFERENCE_KEY}]"),
                request.reference.clone(),
            ),
            pair("metadata[org]", request.org.as_str()),
            pair("metadata[description]", request.description.clone()),
        ];
        match &request.source {
            ChargeSource::Saved { customer, method } => {
                form.push(pair("customer", customer.clone()));
                form.push(pair("payment_method", method.clone()));
                form.push(pair("off_session", "true"));
            }
            // A browser's PaymentMethod, or the one made from the proxy's card.
            ChargeSource::Token(_) | ChargeSource::Card(_) => {
                form.push(pair("payment_method", method));
            }
        }
        self.call(
            reqwest::Method::POST,
            "/v1/payment_intents",
            &form,
            Some(&request.reference),
        )
        .await
    }

    async fn charge_answer(
        &self,
        request: &ChargeRequest,
        answer: Answer,
    ) -> Result<ChargeOutcome, GatewayError> {
        match answer {
            Answer::Ok(pi) => self.outcome_of(&pi).await,
            // A card error: the PaymentIntent (or its charge) is named in the error.
            Answer::Refused { status: 402, error } => Ok(ChargeOutcome::Declined {
                gateway_ref: error
                    .pointer("/payment_intent/id")
                    .or_else(|| error.get("charge"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                reason: decline_reason(&error),
            }),
            // The payment method is unknown, spent or another account's: nothing was charged.
            Answer::Refused { status, error }
                if status == 404
                    || (status == 400
                        && matches!(
                            str_at(&error, "/code"),
                            "resource_missing" | "payment_method_unexpected_state"
                        )) =>
            {
                tracing::info!(reference = %request.reference, status = %str_at(&error, "/code"), "stripe refused the payment method");
                Ok(ChargeOutcome::Declined {
                    gateway_ref: None,
                    reason: DeclineReason::InvalidToken,
                })
            }
            Answer::Refused { status, error } => Err(refused(status, &error)),
        }
    }
}

/// Paybridge's decline class for a Stripe error object (`decline_code` first, then `code`).
/// Soft (worth a retry later): insufficient funds, generic declines. Hard: lost, stolen,
/// fraudulent, expired, incorrect details. `authentication_required` (the bank wants the payer
/// present) is its own class: not retried unattended; the payer is emailed a link to pay.
pub fn decline_reason(error: &Value) -> DeclineReason {
    let decline = str_at(error, "/decline_code");
    let code = str_at(error, "/code");
    let of = |c: &str| match c {
        "insufficient_funds" => Some(DeclineReason::InsufficientFunds),
        "lost_card" | "stolen_card" | "pickup_card" | "fraudulent" | "restricted_card"
        | "merchant_blacklist" => Some(DeclineReason::Stolen),
        "expired_card" => Some(DeclineReason::Expired),
        "incorrect_number"
        | "incorrect_cvc"
        | "incorrect_zip"
        | "invalid_number"
        | "invalid_cvc"
        | "invalid_expiry_month"
        | "invalid_expiry_year"
        | "invalid_account" => Some(DeclineReason::Incorrect),
        "authentication_required" => Some(DeclineReason::AuthenticationRequired),
        "generic_decline" | "do_not_honor" | "card_declined" | "try_again_later"
        | "processing_error" => Some(DeclineReason::Generic),
        _ => None,
    };
    of(decline)
        .or_else(|| of(code))
        .unwrap_or(DeclineReason::Generic)
}

fn setup_status(setup: &Value) -> &str {
    str_at(setup, "/status")
}

/// Stripe's signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">[,v1=...]`,
/// the scheme the sandbox signs with (see `signature`).
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// PaymentMethod types that debit a bank account: approved as `processing`, money only when
/// the PaymentIntent succeeds (days later).
const BANK_DEBITS: [&str; 4] = [
    "us_bank_account",
    "au_becs_debit",
    "sepa_debit",
    "acss_debit",
];

/// Reads a Stripe event once its `Stripe-Signature` holds (five minutes' tolerance, any `v1`
/// against any of the org's active signing secrets). What moves a payment (its charge is the
/// PaymentIntent, our payment's `gateway_ref`):
///
/// | event | reports |
/// |---|---|
/// | `payment_intent.succeeded` | succeeded; settled for a bank debit (it succeeds when the money arrives) |
/// | `payment_intent.payment_failed` | failed (a declined card, or a bank debit that failed to settle) |
/// | `charge.refunded` | refunded, with `amount_refunded` (all refunds together) |
/// | `charge.dispute.created` | disputed |
/// | `charge.dispute.closed` | dispute won (`won`, `warning_closed`) or lost (`lost`) |
///
/// Anything else (including `payment_intent.processing`: we know a debit is pending from the
/// charge's answer) is genuine but moves nothing: Ok(None).
pub fn read_webhook(
    delivery: &WebhookDelivery<'_>,
    secrets: &[Secret<String>],
    now: OffsetDateTime,
) -> Result<Option<GatewayEvent>, WebhookRejection> {
    signature::verify(
        delivery.header(SIGNATURE_HEADER),
        delivery.body,
        secrets,
        now,
    )
    .map_err(|e| WebhookRejection::Signature(e.reason()))?;
    let event: Value = serde_json::from_slice(delivery.body)
        .map_err(|e| WebhookRejection::Malformed(format!("not JSON: {e}")))?;
    let id = str_at(&event, "/id");
    let kind = str_at(&event, "/type");
    let object = event.pointer("/data/object").unwrap_or(&Value::Null);
    if id.is_empty() || kind.is_empty() || !object.is_object() {
        return Err(WebhookRejection::Malformed(
            "an event has an id, a type and data.object".into(),
        ));
    }
    let bank_debit = || {
        object
            .get("payment_method_types")
            .and_then(Value::as_array)
            .is_some_and(|types| {
                types
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|t| BANK_DEBITS.contains(&t))
            })
    };
    let (reports, charge) = match kind {
        "payment_intent.succeeded" if bank_debit() => (PaymentStatus::Settled, "/id"),
        "payment_intent.succeeded" => (PaymentStatus::Succeeded, "/id"),
        "payment_intent.payment_failed" => (PaymentStatus::Failed, "/id"),
        "charge.refunded" => (PaymentStatus::Refunded, "/payment_intent"),
        "charge.dispute.created" => (PaymentStatus::Disputed, "/payment_intent"),
        "charge.dispute.closed" => match str_at(object, "/status") {
            "won" | "warning_closed" => (PaymentStatus::DisputeWon, "/payment_intent"),
            "lost" => (PaymentStatus::DisputeLost, "/payment_intent"),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let charge = str_at(object, charge);
    if charge.is_empty() {
        // A charge made outside a PaymentIntent: none of ours.
        return Ok(None);
    }
    let refunded = if reports == PaymentStatus::Refunded {
        let currency: domain::Currency =
            str_at(object, "/currency")
                .to_ascii_uppercase()
                .parse()
                .map_err(|_| WebhookRejection::Malformed("an unknown currency".into()))?;
        let minor = object
            .get("amount_refunded")
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                WebhookRejection::Malformed("a refund without amount_refunded".into())
            })?;
        Some(
            Money::from_minor(minor, currency)
                .map_err(|e| WebhookRejection::Malformed(e.to_string()))?,
        )
    } else {
        None
    };
    let reference = object
        .pointer(&format!("/metadata/{REFERENCE_KEY}"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Some(GatewayEvent {
        id: id.to_owned(),
        kind: kind.to_owned(),
        reports,
        charge: charge.to_owned(),
        reference,
        refunded,
    }))
}

fn pair(k: impl Into<String>, v: impl Into<String>) -> (String, String) {
    (k.into(), v.into())
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Ids come from Stripe or the browser: keep them to one path segment.
fn path_segment(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn refused(status: u16, error: &Value) -> GatewayError {
    // Stripe's messages never echo the key; its type and code say enough.
    GatewayError::Unavailable(format!(
        "stripe refused the call: HTTP {status} {} {}",
        str_at(error, "/type"),
        str_at(error, "/code")
    ))
}

/// A PaymentMethod object as a saved method.
fn method_of(pm: &Value) -> GatewayMethod {
    let kind = str_at(pm, "/type");
    let (kind, brand, last4, fingerprint) = match kind {
        "us_bank_account" | "au_becs_debit" | "sepa_debit" => (
            "bank",
            pm.pointer(&format!("/{kind}/bank_name"))
                .and_then(Value::as_str)
                .unwrap_or("bank"),
            str_at(pm, &format!("/{kind}/last4")),
            str_at(pm, &format!("/{kind}/fingerprint")),
        ),
        _ => (
            "card",
            str_at(pm, "/card/brand"),
            str_at(pm, "/card/last4"),
            str_at(pm, "/card/fingerprint"),
        ),
    };
    let number = |p: &str| pm.pointer(p).and_then(Value::as_u64);
    GatewayMethod {
        method_ref: str_at(pm, "/id").to_owned(),
        kind: kind.to_owned(),
        brand: brand.to_ascii_lowercase(),
        last4: last4.to_owned(),
        exp_month: number("/card/exp_month").and_then(|m| u8::try_from(m).ok()),
        exp_year: number("/card/exp_year").and_then(|y| u16::try_from(y).ok()),
        holder_name: pm
            .pointer("/billing_details/name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        fingerprint: fingerprint.to_owned(),
    }
}

#[async_trait]
impl Gateway for StripeGateway {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Stripe.js with the publishable key (none if the org has not given it: the page then
    /// says that online payments are not set up); origins as Stripe's CSP guidance lists them.
    async fn browser_tokenizer(&self, _org: &OrgSlug) -> Result<BrowserTokenizer, GatewayError> {
        Ok(BrowserTokenizer {
            gateway: NAME,
            vendor_script: Some(STRIPE_JS),
            public: self
                .publishable_key
                .iter()
                .map(|key| ("publishable_key", key.clone()))
                .collect(),
            script_origins: vec!["https://js.stripe.com"],
            connect_origins: vec!["https://api.stripe.com"],
            frame_origins: vec!["https://js.stripe.com", "https://hooks.stripe.com"],
        })
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        let made;
        let method = match &request.source {
            ChargeSource::Token(token) => token.expose().as_str(),
            ChargeSource::Saved { method, .. } => method.as_str(),
            ChargeSource::Card(card) => match self.card_payment_method(request, card).await? {
                Ok(id) => {
                    made = id;
                    made.as_str()
                }
                Err(declined) => return Ok(declined),
            },
        };
        // Its type first (a card, or a bank debit that settles later); an unknown one is
        // refused before anything is created.
        let Some(pm) = self.payment_method(method).await? else {
            return Ok(ChargeOutcome::Declined {
                gateway_ref: None,
                reason: DeclineReason::InvalidToken,
            });
        };
        let method_type = match str_at(&pm, "/type") {
            "" => "card",
            t => t,
        };
        match self
            .create_payment_intent(request, method, method_type)
            .await
        {
            Ok(answer) => self.charge_answer(request, answer).await,
            Err(first) => {
                // No answer: it may have been created. Look first; then send the very same
                // request with the same Idempotency-Key (Stripe replays a request it has seen).
                tracing::warn!(reference = %request.reference, error = %first, "stripe did not answer; looking the charge up before one retry");
                if let Some(outcome) = self.find_charge(&request.org, &request.reference).await? {
                    return Ok(outcome);
                }
                let answer = self
                    .create_payment_intent(request, method, method_type)
                    .await?;
                self.charge_answer(request, answer).await
            }
        }
    }

    async fn describe(
        &self,
        _org: &OrgSlug,
        source: &ChargeSource,
    ) -> Result<Option<MethodSummary>, GatewayError> {
        let id = match source {
            ChargeSource::Token(token) => token.expose().as_str(),
            ChargeSource::Saved { method, .. } => method.as_str(),
            ChargeSource::Card(card) => return Ok(Some(card.summary())),
        };
        Ok(self.payment_method(id).await?.map(|pm| {
            let m = method_of(&pm);
            MethodSummary {
                kind: m.kind,
                brand: m.brand,
                last4: m.last4,
            }
        }))
    }

    async fn find_charge(
        &self,
        _org: &OrgSlug,
        reference: &str,
    ) -> Result<Option<ChargeOutcome>, GatewayError> {
        let mut after: Option<String> = None;
        for _ in 0..LOOKUP_PAGES {
            let mut query = vec![pair("limit", "100")];
            if let Some(id) = &after {
                query.push(pair("starting_after", id.clone()));
            }
            let page = match self
                .call(reqwest::Method::GET, "/v1/payment_intents", &query, None)
                .await?
            {
                Answer::Ok(page) => page,
                Answer::Refused { status, error } => return Err(refused(status, &error)),
            };
            let items = page
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(pi) = items
                .iter()
                .find(|pi| str_at(pi, &format!("/metadata/{REFERENCE_KEY}")) == reference)
            {
                return self.outcome_of(pi).await.map(Some);
            }
            let more = page.get("has_more").and_then(Value::as_bool) == Some(true);
            match items.last() {
                Some(last) if more => after = Some(str_at(last, "/id").to_owned()),
                _ => return Ok(None),
            }
        }
        Err(GatewayError::Unavailable(format!(
            "no PaymentIntent with reference {reference} among the newest {} of the account",
            LOOKUP_PAGES * 100
        )))
    }

    async fn create_customer(
        &self,
        org: &OrgSlug,
        reference: &str,
        email: &Email,
        name: &str,
    ) -> Result<String, GatewayError> {
        let form = [
            pair("email", email.as_str()),
            pair("name", name),
            pair(format!("metadata[{REFERENCE_KEY}]"), reference),
            pair("metadata[org]", org.as_str()),
        ];
        let key = format!("customer:{reference}");
        match self
            .call(reqwest::Method::POST, "/v1/customers", &form, Some(&key))
            .await?
        {
            Answer::Ok(customer) => Ok(str_at(&customer, "/id").to_owned()),
            Answer::Refused { status, error } => Err(refused(status, &error)),
        }
    }

    /// Saved through a SetupIntent for off-session use (the bank checks the card and agrees to
    /// later charges without the payer), confirmed at once with the browser's PaymentMethod.
    /// Stripe attaches the method to the customer when the SetupIntent succeeds; where it has
    /// not (localstripe does not), it is attached here. A card whose bank wants the payer to
    /// authenticate now (`requires_action`) is not saved: that needs Stripe.js's
    /// `confirmCardSetup` in the browser, which the save page does not do yet.
    async fn attach_method(
        &self,
        _org: &OrgSlug,
        customer: &str,
        token: &Secret<String>,
    ) -> Result<Option<GatewayMethod>, GatewayError> {
        let pm_id = path_segment(token.expose());
        let Some(pm) = self.payment_method(&pm_id).await? else {
            return Ok(None);
        };
        let method_type = str_at(&pm, "/type").to_owned();
        let form = [
            pair("customer", customer),
            pair("usage", "off_session"),
            pair("payment_method_types[]", method_type),
        ];
        // One SetupIntent per method and customer, whatever the retries.
        let key = format!("setup:{customer}:{pm_id}");
        let setup = match self
            .call(
                reqwest::Method::POST,
                "/v1/setup_intents",
                &form,
                Some(&key),
            )
            .await?
        {
            Answer::Ok(setup) => setup,
            Answer::Refused { status, error } => return Err(refused(status, &error)),
        };
        let confirm = format!(
            "/v1/setup_intents/{}/confirm",
            path_segment(str_at(&setup, "/id"))
        );
        let setup = match setup_status(&setup) {
            "succeeded" => setup,
            _ => match self
                .call(
                    reqwest::Method::POST,
                    &confirm,
                    &[pair("payment_method", pm_id.clone())],
                    Some(&format!("{key}:confirm")),
                )
                .await?
            {
                Answer::Ok(setup) => setup,
                // Declined by the bank, or the method is unusable.
                Answer::Refused {
                    status: 400 | 402 | 404,
                    error,
                } => {
                    tracing::info!(code = %str_at(&error, "/code"), "stripe refused to set up a payment method");
                    return Ok(None);
                }
                Answer::Refused { status, error } => return Err(refused(status, &error)),
            },
        };
        if setup_status(&setup) != "succeeded" {
            tracing::info!(status = %setup_status(&setup), "stripe's SetupIntent did not succeed; the method is not saved");
            return Ok(None);
        }
        let pm = self.payment_method(&pm_id).await?.unwrap_or(pm);
        if str_at(&pm, "/customer") == customer {
            return Ok(Some(method_of(&pm)));
        }
        let path = format!("/v1/payment_methods/{pm_id}/attach");
        match self
            .call(
                reqwest::Method::POST,
                &path,
                &[pair("customer", customer)],
                None,
            )
            .await?
        {
            Answer::Ok(pm) => Ok(Some(method_of(&pm))),
            // Attached elsewhere meanwhile, or gone: not a usable method.
            Answer::Refused {
                status: 400 | 402 | 404,
                error,
            } => {
                tracing::info!(code = %str_at(&error, "/code"), "stripe refused to attach a payment method");
                Ok(None)
            }
            Answer::Refused { status, error } => Err(refused(status, &error)),
        }
    }

    /// A Refund with our reference as its Idempotency-Key (Stripe refunds before and after
    /// settlement alike: there is no separate void).
    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, GatewayError> {
        let form = [
            pair("payment_intent", path_segment(&request.charge)),
            pair("amount", request.amount.minor().to_string()),
            pair(
                format!("metadata[{REFERENCE_KEY}]"),
                request.reference.clone(),
            ),
        ];
        match self
            .call(
                reqwest::Method::POST,
                "/v1/refunds",
                &form,
                Some(&format!("refund:{}", request.reference)),
            )
            .await?
        {
            Answer::Ok(refund) => match str_at(&refund, "/status") {
                "failed" | "canceled" => Ok(RefundOutcome::Refused(format!(
                    "Stripe's refund {}",
                    str_at(&refund, "/status")
                ))),
                _ => Ok(RefundOutcome::Refunded {
                    refund_ref: str_at(&refund, "/id").to_owned(),
                    voided: false,
                }),
            },
            Answer::Refused {
                status: 400 | 402 | 404,
                error,
            } => Ok(RefundOutcome::Refused(match str_at(&error, "/message") {
                "" => format!("Stripe refused the refund ({})", str_at(&error, "/code")),
                m => m.to_owned(),
            })),
            Answer::Refused { status, error } => Err(refused(status, &error)),
        }
    }

    fn read_webhook(
        &self,
        delivery: &WebhookDelivery<'_>,
        secrets: &[Secret<String>],
        now: OffsetDateTime,
    ) -> Result<Option<GatewayEvent>, WebhookRejection> {
        read_webhook(delivery, secrets, now)
    }

    async fn detach_method(
        &self,
        _org: &OrgSlug,
        _customer: &str,
        method: &str,
    ) -> Result<(), GatewayError> {
        let path = format!("/v1/payment_methods/{}/detach", path_segment(method));
        match self.call(reqwest::Method::POST, &path, &[], None).await? {
            Answer::Ok(_) => Ok(()),
            // Gone already, or not attached any more.
            Answer::Refused {
                status: 400 | 404, ..
            } => Ok(()),
            Answer::Refused { status, error } => Err(refused(status, &error)),
        }
    }

    async fn test_connection(&self, _org: &OrgSlug) -> Result<ConnectionCheck, GatewayError> {
        match self
            .call(
                reqwest::Method::GET,
                "/v1/customers",
                &[pair("limit", "1")],
                None,
            )
            .await?
        {
            Answer::Ok(_) => Ok(ConnectionCheck::Accepted),
            Answer::Refused {
                status: status @ (401 | 403),
                error,
            } => Ok(ConnectionCheck::Refused(format!(
                "Stripe refused the key (HTTP {status}{})",
                match str_at(&error, "/message") {
                    "" => String::new(),
                    m => format!(": {m}"),
                }
            ))),
            Answer::Refused { status, error } => Err(refused(status, &error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decline_codes_map_to_soft_and_hard_classes() {
        let reason = |v: Value| decline_reason(&v);
        assert_eq!(
            reason(json!({"code": "card_declined", "decline_code": "insufficient_funds"})),
            DeclineReason::InsufficientFunds
        );
        assert_eq!(
            reason(json!({"code": "card_declined", "decline_code": "generic_decline"})),
            DeclineReason::Generic
        );
        for hard in ["lost_card", "stolen_card", "fraudulent"] {
            assert_eq!(
                reason(json!({"code": "card_declined", "decline_code": hard})),
                DeclineReason::Stolen
            );
        }
        assert_eq!(
            reason(json!({"code": "expired_card"})),
            DeclineReason::Expired
        );
        assert_eq!(
            reason(json!({"code": "incorrect_cvc"})),
            DeclineReason::Incorrect
        );
        assert_eq!(
            reason(
                json!({"code": "authentication_required", "decline_code": "authentication_required"})
            ),
            DeclineReason::AuthenticationRequired
        );
        assert_eq!(
            reason(json!({"code": "card_declined"})),
            DeclineReason::Generic
        );
        assert_eq!(
            reason(json!({"code": "something_new"})),
            DeclineReason::Generic
        );
    }

    const NOW: OffsetDateTime = time::macros::datetime!(2026-11-26 12:00 UTC);

    fn secret(text: &str) -> Secret<String> {
        Secret::new(text.to_owned())
    }

    /// A delivery signed as Stripe signs: HMAC-SHA256 of "t.body" under `whsec`, hex.
    fn read(
        body: &Value,
        header: Option<String>,
    ) -> Result<Option<GatewayEvent>, WebhookRejection> {
        let body = body.to_string();
        let headers: Vec<(String, String)> = header
            .map(|h| vec![("Stripe-Signature".to_owned(), h)])
            .unwrap_or_default();
        let delivery = WebhookDelivery {
            gateway: NAME,
            headers: &headers,
            body: body.as_bytes(),
        };
        read_webhook(&delivery, &[secret("whsec_test_secret")], NOW)
    }

    fn signed(body: &Value, at: OffsetDateTime, key: &str) -> Option<String> {
        Some(signature::header_value(
            &[secret(key)],
            at.unix_timestamp(),
            body.to_string().as_bytes(),
        ))
    }

    fn event(kind: &str, object: Value) -> Value {
        json!({"id": "evt_1", "object": "event", "type": kind, "data": {"object": object}})
    }

    #[test]
    fn the_signature_is_stripes_known_vector() {
        // Computed independently: printf '%s' '1795003200.{"id":"evt_1"}' |
        //   openssl dgst -sha256 -hmac whsec_test_secret
        assert_eq!(
            signature::sign(
                &secret("whsec_test_secret"),
                1_795_003_200,
                br#"{"id":"evt_1"}"#
            ),
            "b27db328fe24ba17e8c90896822292640421d440b2ee8468b8fa7d98cd546cc8"
        );
    }

    #[test]
    fn webhooks_are_read_only_with_a_good_fresh_signature() {
        let body = event(
            "payment_intent.succeeded",
            json!({"id": "pi_1", "payment_method_types": ["card"],
                   "metadata": {"paybridge_reference": "pay_01JD8X3Q9M6V4W2K7T5R1N0P01"}}),
        );
        let good = read(&body, signed(&body, NOW, "whsec_test_secret"))
            .unwrap()
            .unwrap();
        assert_eq!(good.reports, PaymentStatus::Succeeded);
        assert_eq!(good.charge, "pi_1");
        assert_eq!(good.id, "evt_1");
        assert_eq!(
            good.reference.as_deref(),
            Some("pay_01JD8X3Q9M6V4W2K7T5R1N0P01")
        );
        let refused = |header| matches!(read(&body, header), Err(WebhookRejection::Signature(_)));
        assert!(refused(None), "no header");
        assert!(refused(signed(&body, NOW, "whsec_other")), "another secret");
        assert!(
            refused(signed(
                &body,
                NOW - time::Duration::minutes(6),
                "whsec_test_secret"
            )),
            "older than five minutes"
        );
        // Signed, then changed on the way.
        let tampered = event("payment_intent.succeeded", json!({"id": "pi_2"}));
        assert!(matches!(
            read(&tampered, signed(&body, NOW, "whsec_test_secret")),
            Err(WebhookRejection::Signature(_))
        ));
    }

    #[test]
    fn stripe_events_map_to_payment_reports() {
        let reports = |body: Value| {
            read(&body, signed(&body, NOW, "whsec_test_secret"))
                .unwrap()
                .map(|e| (e.reports, e.charge, e.refunded))
        };
        // A bank debit succeeds when its money arrives: settled.
        assert_eq!(
            reports(event(
                "payment_intent.succeeded",
                json!({"id": "pi_b", "payment_method_types": ["us_bank_account"]})
            )),
            Some((PaymentStatus::Settled, "pi_b".to_owned(), None))
        );
        assert_eq!(
            reports(event(
                "payment_intent.payment_failed",
                json!({"id": "pi_f"})
            )),
            Some((PaymentStatus::Failed, "pi_f".to_owned(), None))
        );
        let usd = |minor| Money::from_minor(minor, domain::Currency::Usd).unwrap();
        assert_eq!(
            reports(event(
                "charge.refunded",
                json!({"id": "ch_1", "payment_intent": "pi_r", "amount_refunded": 3000, "currency": "usd"})
            )),
            Some((PaymentStatus::Refunded, "pi_r".to_owned(), Some(usd(3000))))
        );
        assert_eq!(
            reports(event(
                "charge.dispute.created",
                json!({"id": "dp_1", "payment_intent": "pi_d", "status": "needs_response"})
            )),
            Some((PaymentStatus::Disputed, "pi_d".to_owned(), None))
        );
        assert_eq!(
            reports(event(
                "charge.dispute.closed",
                json!({"id": "dp_1", "payment_intent": "pi_d", "status": "lost"})
            )),
            Some((PaymentStatus::DisputeLost, "pi_d".to_owned(), None))
        );
        assert_eq!(
            reports(event(
                "charge.dispute.closed",
                json!({"id": "dp_1", "payment_intent": "pi_d", "status": "won"})
            )),
            Some((PaymentStatus::DisputeWon, "pi_d".to_owned(), None))
        );
        // Genuine, and nothing to do.
        assert_eq!(
            reports(event("customer.created", json!({"id": "cus_1"}))),
            None
        );
        assert_eq!(
            reports(event("payment_intent.processing", json!({"id": "pi_p"}))),
            None
        );
        // A charge outside a PaymentIntent is none of ours.
        assert_eq!(
            reports(event(
                "charge.refunded",
                json!({"id": "ch_2", "amount_refunded": 1, "currency": "usd"})
            )),
            None
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let g = StripeGateway::new(
            http_client(),
            STRIPE_API,
            Secret::new("sk_test_hidden".into()),
        );
        assert!(!format!("{g:?}").contains("sk_test_hidden"));
    }
}
