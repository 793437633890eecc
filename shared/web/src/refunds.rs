//! Refunds in the admin API: `POST /api/orgs/{org}/payments/{payment}/refunds` gives part or all
//! of a payment back through the gateway that took it, once per `Idempotency-Key`.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use domain::PaymentId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use app::refunds::{RefundCommand, RefundError, Refunded};

use crate::auth::OrgAdmin;
use crate::idempotent::{Finished, idempotent};
use crate::views::MoneyView;
use crate::{AppState, Problem};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// How much to give back, in the payment's currency; everything left when absent.
    #[schema(example = "25.00")]
    pub amount: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundView {
    pub payment_id: String,
    /// The payment's status now: `refunded`, or `failed` for a bank debit voided before it
    /// settled (the invoice owes the amount again).
    pub status: String,
    /// All refunds of the payment together.
    pub refunded: MoneyView,
    /// The gateway's id of this refund.
    pub refund_ref: String,
    /// Cancelled before settlement rather than refunded (no fee, nothing on the statement).
    pub voided: bool,
}

impl From<Refunded> for RefundView {
    fn from(r: Refunded) -> Self {
        RefundView {
            payment_id: r.payment.to_string(),
            status: r.status.as_str().to_owned(),
            refunded: r.refunded.into(),
            refund_ref: r.refund_ref,
            voided: r.voided,
        }
    }
}

fn problem(e: &RefundError) -> Problem {
    match e {
        RefundError::NotFound => Problem::not_found("no such payment"),
        RefundError::NotRefundable(_) => Problem::new(
            StatusCode::CONFLICT,
            "not_refundable",
            "The payment cannot be refunded",
            e.to_string(),
        ),
        RefundError::InvalidAmount(_) => Problem::invalid(e.to_string()),
        RefundError::MoreThanLeft(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "more_than_left",
            "More than is left to refund",
            e.to_string(),
        ),
        RefundError::Refused(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "refund_refused",
            "The gateway refused the refund",
            e.to_string(),
        ),
        RefundError::GatewayUnavailable | RefundError::NotRecorded => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "try_again",
            "The refund is not finished",
            e.to_string(),
        ),
        RefundError::Store(cause) => Problem::unavailable(cause),
    }
}

/// Refunds a payment (or part of it) through its gateway. A bank debit that has not settled
/// can only be voided whole. Send an `Idempotency-Key`; a retry with it answers the same.
#[utoipa::path(
    post,
    path = "/api/orgs/{org}/payments/{payment}/refunds",
    tag = "admin",
    params(
        ("org" = String, Path, description = "the org's slug"),
        ("payment" = String, Path, description = "the payment's id"),
        ("Idempotency-Key" = String, Header, description = "a fresh key per refund; the same when retrying it"),
    ),
    request_body(content = RefundBody, description = "optional"),
    responses(
        (status = 201, description = "refunded (or voided)", body = RefundView),
        (status = 404, description = "no such payment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "failed, returned, disputed or refunded in full", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "more than is left, or the gateway refused", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "the gateway did not answer, or the refund is being recorded: retry with the same key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn refund(
    State(state): State<AppState>,
    admin: OrgAdmin,
    Path((_org, payment)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(payment) = PaymentId::parse(&payment) else {
        return Problem::not_found("no such payment").into_response();
    };
    let body: RefundBody = match crate::problem::optional_json(&body, "{amount?}") {
        Ok(body) => body,
        Err(problem) => return problem.into_response(),
    };
    let (org_text, payment_text) = (admin.org.to_string(), payment.to_string());
    let amount_text = body.amount.clone().unwrap_or_default();
    let parts = [
        org_text.as_str(),
        payment_text.as_str(),
        amount_text.as_str(),
    ];
    let scope = format!("{}#refund", admin.org);
    let worker = state.clone();
    idempotent(
        &state,
        scope,
        &headers,
        &parts,
        payment_text.clone(),
        |_claimed| async move {
            let command = RefundCommand {
                org: admin.org,
                payment,
                amount: body.amount,
            };
            match app::refunds::refund(&worker, command).await {
                Ok(done) => Finished::Complete(
                    StatusCode::CREATED,
                    serde_json::to_value(RefundView::from(done)).expect("views serialize"),
                ),
                // Made at the gateway, not recorded yet: the claim stays, so that the retry
                // records it.
                Err(e @ RefundError::NotRecorded) => Finished::Keep(problem(&e).into_response()),
                Err(e) => Finished::Release(problem(&e).into_response()),
            }
        },
    )
    .await
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(refund))
}
