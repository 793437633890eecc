//! The `pay-now` function: guests pay an invoice from a link, always for the balance the
//! accounting system reports (or less, where the org allows partial payments).

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use domain::{Email, InvoiceNumber, MethodId, Money, OrgSlug, PaymentId, Secret, token_hash};
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use app::pay_now::{GuestInvoice, PayCommand, PayError, PaySource};

use crate::client::ClientAddr;
use crate::idempotent::{Finished, idempotent};
use crate::session::MaybeSignedIn;
use crate::views::{MoneyView, PaymentView};
use crate::{ApiJson, AppState, Problem};

/// What a guest sees before paying.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceSummary {
    pub org_name: String,
    pub invoice_number: String,
    pub customer_name: String,
    pub amount_due: MoneyView,
    /// open, paid, void or draft
    pub status: String,
    #[schema(value_type = String, format = Date)]
    pub due_date: Date,
    /// Whether an amount below the balance may be paid.
    pub allow_partial: bool,
    /// Card surcharges the org adds (none by default); bank payments carry none.
    pub card_surcharges: Vec<SurchargeView>,
}

/// One card surcharge rule and what it adds to the whole balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct SurchargeView {
    /// A card brand, or "*" for every card without a rule of its own.
    pub brand: String,
    /// The percentage, like "2.90".
    pub percent: String,
    pub fixed: Option<MoneyView>,
    /// The surcharge on the whole balance.
    pub on_balance: MoneyView,
}

/// The surcharge rules in the invoice's currency, for the page and the summary.
pub(crate) fn surcharge_views(
    rules: &[domain::SurchargeRule],
    balance: Money,
) -> Vec<SurchargeView> {
    rules
        .iter()
        .map(|rule| SurchargeView {
            brand: rule.brand.clone(),
            percent: format!("{}.{:02}", rule.rate_bps / 100, rule.rate_bps % 100),
            fixed: rule
                .fixed
                .filter(|f| f.currency() == balance.currency())
                .map(Into::into),
            on_balance: rule.on(balance).unwrap_or(balance).into(),
        })
        .collect()
}

/// The same answer for an unknown org and an unknown invoice: nobody learns which exists.
fn no_such_invoice() -> Problem {
    Problem::not_found("no such invoice")
}

pub(crate) fn parse_target(org: &str, invoice: &str) -> Option<(OrgSlug, InvoiceNumber)> {
    Some((
        OrgSlug::parse(org).ok()?,
        InvoiceNumber::parse(invoice).ok()?,
    ))
}

/// The invoice's balance now, as the accounting system reports it.
#[utoipa::path(
    get,
    path = "/api/pay/{org}/{invoice}",
    tag = "pay-now",
    params(("org" = String, Path), ("invoice" = String, Path)),
    responses(
        (status = 200, description = "the invoice", body = InvoiceSummary),
        (status = 404, description = "no such org or invoice", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn summary(
    State(state): State<AppState>,
    Path((org, invoice)): Path<(String, String)>,
) -> Result<Json<InvoiceSummary>, Problem> {
    let (org, number) = parse_target(&org, &invoice).ok_or_else(no_such_invoice)?;
    let GuestInvoice { org, invoice } = app::pay_now::guest_invoice(&state, &org, &number)
        .await
        .map_err(|e| pay_problem(&e))?;
    Ok(Json(InvoiceSummary {
        card_surcharges: surcharge_views(&org.settings.surcharges, invoice.amount_due),
        org_name: org.name,
        invoice_number: invoice.number.to_string(),
        customer_name: invoice.customer_name,
        amount_due: invoice.amount_due.into(),
        status: invoice.status.as_str().to_owned(),
        due_date: invoice.due_date,
        allow_partial: org.settings.allow_partial,
    }))
}

/// A payment of the invoice.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayBody {
    /// A single-use token from the gateway's browser tokenization (or `method_id`).
    pub token: Option<String>,
    /// A saved method of the signed-in payer (or `token`).
    pub method_id: Option<String>,
    /// Less than the balance, where the org allows it (a decimal string in the invoice's
    /// currency). The balance is always re-read; this can only lower the charge.
    #[schema(example = "50.00")]
    pub amount: Option<String>,
    /// Where to send the receipt.
    pub email: Option<String>,
}

pub(crate) fn pay_problem(e: &PayError) -> Problem {
    let conflict = StatusCode::CONFLICT;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    match e {
        PayError::NotFound => no_such_invoice(),
        PayError::MethodNotFound => Problem::not_found("no such payment method"),
        PayError::NotPayable(status) => Problem::new(
            conflict,
            "invoice_not_payable",
            "The invoice cannot be paid",
            format!("the invoice is {}", status.as_str()),
        )
        .with("invoice_status", status.as_str()),
        PayError::InvalidAmount(m) => Problem::invalid(format!("amount: {m}")),
        PayError::ZeroAmount => Problem::invalid(e.to_string()),
        PayError::AmountAboveBalance(balance) => Problem::new(
            unprocessable,
            "amount_above_balance",
            "The amount is more than the balance",
            format!("the balance is {balance}; nothing was charged"),
        )
        .with("amount_due", balance.amount_string()),
        PayError::PartialNotAllowed(balance) => Problem::new(
            unprocessable,
            "partial_not_allowed",
            "Partial payments are not accepted",
            format!("pay the whole balance of {balance}"),
        ),
        PayError::TooManyAttempts(wait) => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "Too many failed payments",
            format!(
                "too many payments failed lately; try again in {} minutes or contact the business",
                (wait.whole_seconds() + 59) / 60
            ),
        )
        .with("retry_after", wait.whole_seconds()),
        PayError::GatewayUnavailable => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "gateway_unavailable",
            "The payment service is unavailable",
            "nothing was charged; try again in a minute",
        ),
        PayError::Allocation(refused) => allocation_problem(refused),
        PayError::TooManyInvoices(most) => Problem::new(
            unprocessable,
            "too_many_invoices",
            "Too many invoices at once",
            format!("pay at most {most} invoices in one payment"),
        ),
        PayError::SplitChanged => Problem::new(
            conflict,
            "allocation_changed",
            "The balances changed",
            "the invoices' balances changed since the split was shown; nothing was charged. Preview again",
        ),
        PayError::InvoiceBusy => Problem::new(
            conflict,
            "payment_in_progress",
            "Another payment of this invoice is in progress",
            "wait a moment and look at the invoice again",
        ),
        PayError::Declined(payment, reason) => Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment_declined",
            "The payment was declined",
            reason.message(),
        )
        .with("decline_code", reason.code())
        .with("payment_id", payment.id.to_string()),
        PayError::Unresolved(payment) => Problem::new(
            StatusCode::BAD_GATEWAY,
            "payment_unresolved",
            "The payment's outcome is not known yet",
            "retry with the same Idempotency-Key in a minute: it will not charge twice",
        )
        .with("payment_id", payment.id.to_string()),
        PayError::Accounting(cause) => Problem::unavailable(cause),
        PayError::Store(cause) => Problem::unavailable(cause),
    }
}

/// Why invoices cannot be paid together, each with its own stable code.
fn allocation_problem(refused: &domain::AllocationError) -> Problem {
    use domain::AllocationError as A;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let (status, code, title) = match refused {
        A::NoInvoices => (unprocessable, "no_invoices", "No invoice was chosen"),
        A::Twice(_) => (
            unprocessable,
            "invoice_twice",
            "An invoice was chosen twice",
        ),
        A::NotPayable(_) => (
            StatusCode::CONFLICT,
            "invoice_not_payable",
            "An invoice cannot be paid",
        ),
        A::SeveralCustomers(..) => (
            unprocessable,
            "several_customers",
            "The invoices are of different customers",
        ),
        A::SeveralCurrencies => (
            unprocessable,
            "several_currencies",
            "The invoices are in different currencies",
        ),
        A::Zero => (
            unprocessable,
            "validation_failed",
            "The amount must be more than zero",
        ),
        A::MoreThanDue(_) => (
            unprocessable,
            "amount_above_balance",
            "The amount is more than the balance",
        ),
    };
    let problem = Problem::new(
        status,
        code,
        title,
        format!("{refused}; nothing was charged"),
    );
    match refused {
        A::Twice(n) | A::NotPayable(n) => problem.with("invoice_number", n.as_str()),
        _ => problem,
    }
}

/// Pays the invoice. `Idempotency-Key` is required: the same key and body give one charge and
/// the same response; the same key with another body gives 422.
#[utoipa::path(
    post,
    path = "/api/pay/{org}/{invoice}",
    tag = "pay-now",
    params(
        ("org" = String, Path),
        ("invoice" = String, Path),
        ("Idempotency-Key" = String, Header, description = "a fresh random key per payment; the same key on retries"),
    ),
    request_body = PayBody,
    responses(
        (status = 201, description = "paid (or, for a bank debit, approved and settling)", body = PaymentView),
        (status = 402, description = "declined; recorded as a failed payment", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such org or invoice", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "paid or void, or another payment in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "amount above the balance, or key reused", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many failed payments of this invoice or from this address; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn pay(
    State(state): State<AppState>,
    Path((org, invoice)): Path<(String, String)>,
    ClientAddr(client): ClientAddr,
    MaybeSignedIn(user): MaybeSignedIn,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PayBody>,
) -> Response {
    let Some((org, number)) = parse_target(&org, &invoice) else {
        return no_such_invoice().into_response();
    };
    let (source, source_text) = match (body.token, body.method_id.as_deref(), &user) {
        (Some(token), None, _) => {
            let fingerprint = token_hash(&token);
            (PaySource::Token(Secret::new(token)), fingerprint)
        }
        (None, Some(id), Some(user)) => {
            let Ok(method) = MethodId::parse(id) else {
                return Problem::not_found("no such payment method").into_response();
            };
            // Saved methods are the member's: an org that requires two-factor sign-in holds
            // them back until it is on (a card typed as a guest still pays).
            match app::two_factor::held_back_in(&state, &org, user).await {
                Ok(false) => {}
                Ok(true) => return crate::session::two_factor_required().into_response(),
                Err(e) => return Problem::from(e).into_response(),
            }
            let text = format!("{}#{method}", user.id);
            let user = user.id.clone();
            (PaySource::Saved { user, method }, text)
        }
        // A guest has no saved methods.
        (None, Some(_), None) => {
            return Problem::not_found("no such payment method").into_response();
        }
        _ => return Problem::invalid("send either token or method_id").into_response(),
    };
    let typed = body
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let receipt_asked = typed.is_some();
    let email = match typed {
        // A signed-in payer's receipt goes to them unless they name another address.
        None => user.map(|u| u.email),
        Some(raw) => match Email::parse(raw) {
            Ok(email) => Some(email),
            Err(e) => return Problem::invalid(e.to_string()).into_response(),
        },
    };
    let amount = body.amount.clone().unwrap_or_default();
    let email_text = email.as_ref().map(|e| e.to_string()).unwrap_or_default();
    let (org_text, number_text) = (org.to_string(), number.to_string());
    let parts = [
        org_text.as_str(),
        number_text.as_str(),
        &source_text,
        &amount,
        &email_text,
    ];
    let new_id = format!("{}{}", PaymentId::PREFIX, state.ids.ulid());
    let scope = format!("{org}#pay-now");
    let worker = state.clone();
    idempotent(
        &state,
        scope,
        &headers,
        &parts,
        new_id,
        |claimed| async move {
            let Ok(payment_id) = PaymentId::parse(&claimed.resource_id) else {
                return Finished::Release(
                    Problem::internal(&"bad payment id in claim").into_response(),
                );
            };
            let command = PayCommand {
                org,
                invoice: number,
                payment_id,
                resumed: claimed.resumed,
                source,
                amount: body.amount,
                amount_at_most: false,
                receipt_email: email,
                receipt_asked,
                client: client.map(|ip| ip.to_string()),
            };
            match app::pay_now::pay(&worker, command).await {
                Ok(payment) => {
                    // A schedule of an invoice that is now paid has nothing left to do.
                    let (org, invoice) = (&payment.org, &payment.invoice_number);
                    if let Err(e) = app::schedules::invoice_paid(&worker, org, invoice).await {
                        tracing::warn!(payment = %payment.id, error = %e, "schedule of a paid invoice not cancelled");
                    }
                    paid(payment)
                }
                Err(e) => not_paid(e),
            }
        },
    )
    .await
}

/// A payment's answer, kept for replays of its key.
pub(crate) fn paid(payment: app::payments::Payment) -> Finished {
    Finished::Complete(
        StatusCode::CREATED,
        serde_json::to_value(PaymentView::from(payment)).expect("views serialize"),
    )
}

/// What a refused or unfinished payment does to its idempotency claim: a decline is an answer
/// (kept for replays); an unknown outcome keeps the claim for a retry to take over; anything
/// refused before the charge frees the key.
pub(crate) fn not_paid(e: PayError) -> Finished {
    let problem = pay_problem(&e);
    match e {
        PayError::Declined(..) => Finished::Complete(
            StatusCode::PAYMENT_REQUIRED,
            serde_json::to_value(&problem).expect("problems serialize"),
        ),
        PayError::Unresolved(_) => Finished::Keep(problem.into_response()),
        PayError::TooManyAttempts(wait) => {
            let retry_after = [(header::RETRY_AFTER, wait.whole_seconds().to_string())];
            Finished::Release((retry_after, problem).into_response())
        }
        _ => Finished::Release(problem.into_response()),
    }
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(summary, pay))
        .merge(crate::pay_several::routes())
}

/// The `pay-now` function's router.
pub fn router(state: AppState) -> Router {
    let (api, _) = routes().split_for_parts();
    let routes = crate::base_routes()
        .merge(api)
        .merge(crate::pages::routes())
        .merge(crate::pay_several::pages());
    crate::layers::common(routes).with_state(state)
}
