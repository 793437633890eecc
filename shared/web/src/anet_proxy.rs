//! The `anet-proxy` function: an Authorize.Net-compatible endpoint per org for ConnectWise's
//! customer portal (and any Authorize.Net client). `POST /anet/{org}/xml/v1/request.api` takes
//! JSON or XML `createTransactionRequest` / `authenticateTestRequest`;
//! `POST /anet/{org}/gateway/transact.dll` the legacy AIM form post. Answers are Authorize.Net's
//! own shapes (HTTP 200 whatever happened, as Authorize.Net answers), see `anet_wire`.
//!
//! This function is in PCI DSS scope: card numbers pass through it to the org's gateway. They
//! live only in this request's memory: never stored (the idempotency record keys on a SHA-256
//! of the number and keeps the masked answer), never logged (no request body is), never put in
//! an error or an answer (the number is masked as `XXXX1111`).

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use domain::{Email, OrgSlug, PaymentId, PaymentStatus, token_hash};

use app::idempotency::{Claim, IdempotencyKey, StoredResponse, request_fingerprint};
use app::pay_now::PayError;
use app::payments::Payment;
use app::ports::{CardDetails, DeclineReason};

use crate::AppState;
use crate::anet_wire::{self, Answer, AnswerKind, Call, ChargeCall, Request, TransactionAnswer};
use crate::client::ClientAddr;

const OK: (&str, &str) = ("I00001", "Successful.");
const AUTH_FAILED: (&str, &str) = (
    "E00007",
    "User authentication failed due to invalid authentication values.",
);
const UNSUCCESSFUL: (&str, &str) = ("E00027", "The transaction was unsuccessful.");
const TRY_AGAIN: (&str, &str) = (
    "E00001",
    "An error occurred during processing. Please try again.",
);

fn pair((code, text): (&str, &str)) -> (String, String) {
    (code.to_owned(), text.to_owned())
}

/// A request in its format, answered in the same.
fn answer(request: &Request, kind: AnswerKind, answer: &Answer) -> Response {
    let (content_type, body) =
        anet_wire::write(&request.format, kind, request.ref_id.as_deref(), answer);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn refusal(code: (&str, &str)) -> Answer {
    Answer {
        ok: false,
        messages: vec![pair(code)],
        transaction: None,
    }
}

async fn api(
    State(state): State<AppState>,
    Path(org): Path<String>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match anet_wire::read(content_type, &body) {
        Ok(request) => handle(&state, &org, request, client).await,
        Err(e) => unreadable(&e),
    }
}

async fn aim(
    State(state): State<AppState>,
    Path(org): Path<String>,
    client: ClientAddr,
    body: Bytes,
) -> Response {
    match anet_wire::read_aim(&body) {
        Ok(request) => handle(&state, &org, request, client).await,
        Err(e) => unreadable(&e),
    }
}

fn unreadable(e: &anet_wire::WireError) -> Response {
    // The error names a field, never a value.
    tracing::info!(error = %e, "an unreadable proxy request");
    let (content_type, body) = anet_wire::write(&e.format(), AnswerKind::Error, None, &e.answer());
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn handle(state: &AppState, org: &str, request: Request, client: ClientAddr) -> Response {
    let kind = match request.call {
        Call::Authenticate => AnswerKind::Authenticate,
        _ => AnswerKind::CreateTransaction,
    };
    let client = client.0.map(|ip| ip.to_string());
    let (Ok(org), Some(credentials)) = (OrgSlug::parse(org), request.credentials.as_ref()) else {
        return answer(&request, kind, &refusal(AUTH_FAILED));
    };
    match app::anet_proxy::authenticate(
        state,
        &org,
        &credentials.login,
        &credentials.key,
        client.as_deref(),
    )
    .await
    {
        Ok(()) => {}
        Err(app::anet_proxy::AuthError::Refused) => {
            return answer(&request, kind, &refusal(AUTH_FAILED));
        }
        Err(app::anet_proxy::AuthError::Store(e)) => {
            tracing::error!(error = %e, "proxy credentials could not be read");
            return answer(&request, kind, &refusal(TRY_AGAIN));
        }
    }
    match &request.call {
        Call::Authenticate => answer(
            &request,
            kind,
            &Answer {
                ok: true,
                messages: vec![pair(OK)],
                transaction: None,
            },
        ),
        Call::Unsupported(what) => {
            tracing::info!(org = %org, what = %what, "an unsupported proxy request");
            let transaction = TransactionAnswer {
                response_code: 3,
                errors: vec![(
                    "PB1".to_owned(),
                    format!(
                        "Paybridge's proxy takes card sales only (authCaptureTransaction, AUTH_CAPTURE); {what} is not supported."
                    ),
                )],
                ..TransactionAnswer::default()
            };
            answer(
                &request,
                kind,
                &Answer {
                    ok: false,
                    messages: vec![pair(UNSUCCESSFUL)],
                    transaction: Some(transaction),
                },
            )
        }
        Call::Charge(call) => charge(state, org, &request, call, client).await,
    }
}

/// The idempotency key of a charge: the caller's `refId`, or the invoice, the card (its
/// SHA-256) and the amount within a 10-minute window (an AIM caller has no `refId`: a resend of
/// the same post soon after is the same payment).
fn charge_key(request: &Request, call: &ChargeCall, card_hash: &str, now: i64) -> String {
    match request.ref_id.as_deref().filter(|r| !r.is_empty()) {
        Some(ref_id) => format!("ref:{ref_id}"),
        None => token_hash(&format!(
            "{}|{card_hash}|{}|{}",
            call.invoice_number.as_deref().unwrap_or_default(),
            call.amount,
            now.div_euclid(600)
        )),
    }
}

async fn charge(
    state: &AppState,
    org: OrgSlug,
    request: &Request,
    call: &ChargeCall,
    client: Option<String>,
) -> Response {
    let kind = AnswerKind::CreateTransaction;
    let now = state.clock.now();
    let card_hash = token_hash(call.card.number.expose());
    let invoice = call.invoice_number.clone().unwrap_or_default();
    let raw_key = charge_key(request, call, &card_hash, now.unix_timestamp());
    let Ok(key) = IdempotencyKey::new(format!("{org}#anet-proxy"), &raw_key) else {
        let answer_ = refused_charge(
            call,
            "PB2",
            "The refId is not valid: 1 to 20 printable characters.",
        );
        return answer(request, kind, &answer_);
    };
    let hash = request_fingerprint(&[org.as_str(), &invoice, &card_hash, &call.amount]);
    let new_id = format!("{}{}", PaymentId::PREFIX, state.ids.ulid());
    let claimed = match state.idempotency.claim(&key, &hash, &new_id, now).await {
        Ok(Claim::Replay(stored)) => return replayed(stored),
        Ok(Claim::Fresh { resource_id }) => (resource_id, false),
        Ok(Claim::TakenOver { resource_id }) => (resource_id, true),
        Ok(Claim::InProgress) => {
            let answer_ = refused_charge(
                call,
                "PB3",
                "This transaction is being processed: send it again in a minute.",
            );
            return answer(request, kind, &answer_);
        }
        Ok(Claim::Mismatch) => {
            let answer_ =
                refused_charge(call, "PB4", "The refId was used for another transaction.");
            return answer(request, kind, &answer_);
        }
        Err(e) => {
            tracing::error!(error = %e, "proxy idempotency claim failed");
            return answer(request, kind, &refusal(TRY_AGAIN));
        }
    };
    let Ok(payment_id) = PaymentId::parse(&claimed.0) else {
        return answer(request, kind, &refusal(TRY_AGAIN));
    };
    let command = app::anet_proxy::ProxyCharge {
        org: org.clone(),
        invoice: invoice.clone(),
        posted_amount: call.amount.clone(),
        card: CardDetails {
            number: call.card.number.clone(),
            exp_month: call.card.exp_month,
            exp_year: call.card.exp_year,
            code: call.card.code.clone(),
        },
        receipt_email: call.email.as_deref().and_then(|e| Email::parse(e).ok()),
        payment_id,
        resumed: claimed.1,
        client,
    };
    let result = app::anet_proxy::charge(state, command).await;
    let (answer_, keep) = match result {
        Ok(payment) => {
            if let Err(e) =
                app::schedules::invoice_paid(state, &payment.org, &payment.invoice_number).await
            {
                tracing::warn!(payment = %payment.id, error = %e, "schedule of a paid invoice not cancelled");
            }
            (charged(call, &payment), Store::Complete)
        }
        Err(PayError::Declined(payment, reason)) => {
            (declined(call, &payment, reason), Store::Complete)
        }
        Err(PayError::Unresolved(payment)) => {
            tracing::warn!(payment = %payment.id, "a proxy charge's outcome is not known yet");
            (refusal(TRY_AGAIN), Store::Keep)
        }
        Err(e) => (not_charged(call, &e), Store::Release),
    };
    let response = answer(request, kind, &answer_);
    finish(state, &key, &hash, response, keep).await
}

enum Store {
    /// Kept for replay: the same request again gets this answer.
    Complete,
    /// Nothing was charged: the key may be used again.
    Release,
    /// The outcome is unknown: a retry takes the claim over and looks it up.
    Keep,
}

async fn finish(
    state: &AppState,
    key: &IdempotencyKey,
    hash: &str,
    response: Response,
    what: Store,
) -> Response {
    match what {
        Store::Keep => response,
        Store::Release => {
            if let Err(e) = state.idempotency.release(key, hash).await {
                tracing::warn!(error = %e, "could not release a proxy claim");
            }
            response
        }
        Store::Complete => {
            let (parts, body) = response.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/plain")
                .to_owned();
            let stored = StoredResponse {
                status: parts.status.as_u16(),
                content_type,
                body: bytes.to_vec(),
            };
            if let Err(e) = state
                .idempotency
                .complete(key, hash, &stored, state.clock.now())
                .await
            {
                tracing::warn!(error = %e, "could not store a proxy answer for replay");
            }
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
    }
}

fn replayed(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    (
        status,
        [(header::CONTENT_TYPE, stored.content_type)],
        stored.body,
    )
        .into_response()
}

/// Authorize.Net's account type for a brand.
fn account_type(brand: &str) -> &'static str {
    match brand {
        "visa" => "Visa",
        "mastercard" => "MasterCard",
        "amex" => "AmericanExpress",
        "discover" => "Discover",
        "jcb" => "JCB",
        "diners" => "DinersClub",
        _ => "",
    }
}

/// The transaction as the caller sees it: masked number, amounts, echoed fields.
fn transaction_of(call: &ChargeCall, payment: Option<&Payment>) -> TransactionAnswer {
    let number = call.card.number.expose();
    let last4 = number
        .get(number.len().saturating_sub(4)..)
        .unwrap_or_default();
    let charged = payment.map(|p| {
        p.amount
            .checked_add(p.surcharge)
            .unwrap_or(p.amount)
            .amount_string()
    });
    TransactionAnswer {
        trans_id: payment.map(trans_id).unwrap_or_else(|| "0".to_owned()),
        account_number: format!("XXXX{last4}"),
        account_type: account_type(domain::card_brand(number)).to_owned(),
        requested_amount: charged
            .as_ref()
            .filter(|c| **c != call.amount)
            .map(|_| call.amount.clone()),
        amount: charged,
        invoice_number: call.invoice_number.clone(),
        description: call.description.clone(),
        customer_id: call.customer_id.clone(),
        email: call.email.clone(),
        ..TransactionAnswer::default()
    }
}

/// A numeric transaction id for the payment (Authorize.Net's are numeric): the gateway's own
/// where it is numeric (an Authorize.Net org's), else the low 60 bits of the payment's ULID.
fn trans_id(payment: &Payment) -> String {
    if let Some(r) = payment
        .gateway_ref
        .as_deref()
        .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
    {
        return r.to_owned();
    }
    let ulid = payment.id.as_str().trim_start_matches(PaymentId::PREFIX);
    let value = ulid::Ulid::from_string(ulid).map_or(0, |u| u.0);
    (value & ((1u128 << 60) - 1)).to_string()
}

fn charged(call: &ChargeCall, payment: &Payment) -> Answer {
    let held = payment.status == PaymentStatus::Pending;
    let (code, message) = if held {
        (
            4,
            ("253", "The transaction was accepted and is being reviewed."),
        )
    } else {
        (1, ("1", "This transaction has been approved."))
    };
    Answer {
        ok: true,
        messages: vec![pair(OK)],
        transaction: Some(TransactionAnswer {
            response_code: code,
            auth_code: payment
                .gateway_ref
                .as_deref()
                .map(|r| r.chars().rev().take(6).collect::<String>().to_uppercase())
                .unwrap_or_default(),
            messages: vec![pair(message)],
            ..transaction_of(call, Some(payment))
        }),
    }
}

fn declined(call: &ChargeCall, payment: &Payment, reason: DeclineReason) -> Answer {
    // Authorize.Net's reason codes and texts for the nearest case.
    let (response_code, code, text) = match reason {
        DeclineReason::Expired => (3, "8", "The credit card has expired."),
        DeclineReason::Incorrect | DeclineReason::InvalidToken => {
            (3, "6", "The credit card number is invalid.")
        }
        DeclineReason::Stolen => (
            2,
            "4",
            "The code returned from the processor indicating that the card used needs to be picked up.",
        ),
        DeclineReason::Generic
        | DeclineReason::InsufficientFunds
        | DeclineReason::AuthenticationRequired => (2, "2", "This transaction has been declined."),
    };
    Answer {
        ok: false,
        messages: vec![pair(UNSUCCESSFUL)],
        transaction: Some(TransactionAnswer {
            response_code,
            errors: vec![(code.to_owned(), text.to_owned())],
            ..transaction_of(call, Some(payment))
        }),
    }
}

fn refused_charge(call: &ChargeCall, code: &str, text: &str) -> Answer {
    Answer {
        ok: false,
        messages: vec![pair(UNSUCCESSFUL)],
        transaction: Some(TransactionAnswer {
            response_code: 3,
            errors: vec![(code.to_owned(), text.to_owned())],
            ..transaction_of(call, None)
        }),
    }
}

/// Nothing was charged: why, in words the portal can show.
fn not_charged(call: &ChargeCall, e: &PayError) -> Answer {
    let invoice = call.invoice_number.as_deref().unwrap_or_default();
    let (code, text) = match e {
        PayError::NotFound if invoice.is_empty() => (
            "PB10".to_owned(),
            "The invoice number is required: the amount charged is the invoice's balance."
                .to_owned(),
        ),
        PayError::NotFound => (
            "PB11".to_owned(),
            format!("There is no invoice {invoice} to pay."),
        ),
        PayError::NotPayable(status) => (
            "PB12".to_owned(),
            format!(
                "Invoice {invoice} is {}: nothing was charged.",
                status.as_str()
            ),
        ),
        PayError::InvoiceBusy => (
            "PB13".to_owned(),
            format!("Another payment of invoice {invoice} is in progress."),
        ),
        PayError::TooManyAttempts(_) => (
            "PB14".to_owned(),
            "Too many declined attempts: try again later.".to_owned(),
        ),
        PayError::InvalidAmount(_) | PayError::ZeroAmount => {
            ("5".to_owned(), "A valid amount is required.".to_owned())
        }
        _ => {
            tracing::warn!(error = %e, "a proxy charge was not made");
            (
                "PB19".to_owned(),
                "The payment could not be made now: try again shortly. Nothing was charged."
                    .to_owned(),
            )
        }
    };
    refused_charge(call, &code, &text)
}

/// The `anet-proxy` function's router.
pub fn router(state: AppState) -> Router {
    let routes = crate::base_routes().merge(routes());
    crate::layers::common(routes).with_state(state)
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/anet/{org}/xml/v1/request.api", post(api))
        .route("/anet/{org}/gateway/transact.dll", post(aim))
}
