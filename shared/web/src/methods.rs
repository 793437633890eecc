//! The `save-method` function: a signed-in payer's saved cards and bank accounts in one org,
//! and the authority texts they accept when saving. Everything is the caller's own: the user
//! comes from the session, the org from the URL checked against the membership; another
//! payer's or org's method answers 404.

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use domain::{MethodId, OrgSlug, Secret};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use app::methods::{MandateAcceptance, MethodError, MethodKind, MethodPatch, SaveCommand};
use app::ports::{Mandate, SavedMethod};

use crate::client::ClientAddr;
use crate::session::SignedIn;
use crate::{ApiJson, AppState, Problem};

#[derive(Debug, Serialize, ToSchema)]
pub struct MethodView {
    pub id: String,
    /// card or bank
    pub kind: String,
    /// The card brand (cards).
    pub brand: Option<String>,
    /// The bank's name (bank accounts).
    pub bank_name: Option<String>,
    pub last4: String,
    pub exp_month: Option<u8>,
    pub exp_year: Option<u16>,
    pub holder_name: Option<String>,
    pub nickname: Option<String>,
    pub is_default: bool,
    /// The customers it may pay for.
    pub customer_ids: Vec<String>,
    /// Whether the payer accepted an authority that lets schedules and automatic payments
    /// charge it (always for a bank account).
    pub mandate_id: Option<String>,
    /// What uses it (it cannot be removed while anything does).
    pub used_by: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<SavedMethod> for MethodView {
    fn from(m: SavedMethod) -> Self {
        let bank = m.kind == "bank";
        MethodView {
            id: m.id.to_string(),
            brand: (!bank).then(|| m.brand.clone()),
            bank_name: bank.then_some(m.brand),
            kind: m.kind,
            last4: m.last4,
            exp_month: m.exp_month,
            exp_year: m.exp_year,
            holder_name: m.holder_name,
            nickname: m.nickname,
            is_default: m.is_default,
            customer_ids: m.customer_ids.iter().map(|c| c.to_string()).collect(),
            mandate_id: m.mandate.map(|id| id.to_string()),
            used_by: m.used_by,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MandateView {
    pub id: String,
    /// direct_debit or stored_credential
    pub kind: String,
    pub email: String,
    pub signer_name: String,
    pub method_id: String,
    /// What the method was: "Visa ending 4242".
    pub method: String,
    pub terms_version: String,
    /// SHA-256 (hex) of the exact text that was accepted.
    pub terms_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub accepted_at: OffsetDateTime,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl From<Mandate> for MandateView {
    fn from(m: Mandate) -> Self {
        MandateView {
            id: m.id.to_string(),
            kind: m.kind,
            email: m.email.to_string(),
            signer_name: m.signer_name,
            method_id: m.method.to_string(),
            method: m.method_label,
            terms_version: m.terms_version,
            terms_hash: m.terms_hash,
            accepted_at: m.accepted_at,
            client_ip: m.client_ip,
            user_agent: m.user_agent,
        }
    }
}

pub(crate) fn method_problem(e: MethodError) -> Problem {
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    match e {
        MethodError::NotFound => Problem::not_found("no such payment method"),
        MethodError::Invalid(detail) => Problem::invalid(detail),
        MethodError::MandateRequired => Problem::new(
            unprocessable,
            "mandate_required",
            "A direct debit authority is required",
            e.to_string(),
        ),
        MethodError::TermsChanged(version) => Problem::new(
            StatusCode::CONFLICT,
            "terms_changed",
            "The terms changed",
            e.to_string(),
        )
        .with("terms_version", version),
        MethodError::InvalidToken => Problem::new(
            unprocessable,
            "invalid_token",
            "The details expired",
            e.to_string(),
        ),
        MethodError::KindMismatch { .. } => Problem::new(
            unprocessable,
            "kind_mismatch",
            "The details are of another kind",
            e.to_string(),
        ),
        MethodError::InUse(ref by) => Problem::new(
            StatusCode::CONFLICT,
            "method_in_use",
            "The method is in use",
            e.to_string(),
        )
        .with("used_by", by.clone()),
        MethodError::GatewayUnavailable => Problem::unavailable(&e),
        MethodError::Store(cause) => cause.into(),
    }
}

fn org_of(org: &str) -> Result<OrgSlug, Problem> {
    OrgSlug::parse(org).map_err(|_| Problem::not_found("no such payment method"))
}

fn method_id(id: &str) -> Result<MethodId, Problem> {
    MethodId::parse(id).map_err(|_| Problem::not_found("no such payment method"))
}

/// The payer's saved methods in the org, the default first.
#[utoipa::path(
    get,
    path = "/api/me/orgs/{org}/methods",
    tag = "save-method",
    params(("org" = String, Path)),
    responses(
        (status = 200, description = "the methods", body = Vec<MethodView>),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not a member of this org", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(org): Path<String>,
) -> Result<Json<Vec<MethodView>>, Problem> {
    let org = org_of(&org)?;
    let methods = app::methods::list(&state, &org, &signed_in.user.id)
        .await
        .map_err(method_problem)?;
    Ok(Json(methods.into_iter().map(MethodView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MandateBody {
    /// The name of the person accepting.
    pub signer_name: String,
    /// The version of the terms shown (from `GET .../methods/terms`).
    pub terms_version: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveMethodBody {
    /// A single-use token from the gateway's browser tokenization.
    pub token: String,
    /// card or bank
    pub kind: String,
    #[serde(default)]
    pub make_default: bool,
    pub nickname: Option<String>,
    /// The accepted authority: required for a bank account; for a card, it lets schedules and
    /// automatic payments charge it.
    pub mandate: Option<MandateBody>,
}

/// Saves a tokenized card or bank account (the same card again answers the saved one, 200).
#[utoipa::path(
    post,
    path = "/api/me/orgs/{org}/methods",
    tag = "save-method",
    params(("org" = String, Path)),
    request_body = SaveMethodBody,
    responses(
        (status = 201, description = "saved", body = MethodView),
        (status = 200, description = "saved before: the existing method", body = MethodView),
        (status = 409, description = "the terms changed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "no mandate for a bank account, or a spent token", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn save(
    State(state): State<AppState>,
    signed_in: SignedIn,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<SaveMethodBody>,
) -> Result<Response, Problem> {
    let org = org_of(&org)?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(300).collect());
    let command = SaveCommand {
        org,
        user: signed_in.user,
        token: Secret::new(body.token),
        kind: body.kind,
        make_default: body.make_default,
        nickname: body.nickname,
        mandate: body.mandate.map(|m| MandateAcceptance {
            signer_name: m.signer_name,
            terms_version: m.terms_version,
        }),
        client_ip: client.map(|ip| ip.to_string()),
        user_agent,
    };
    let saved = app::methods::save(&state, command)
        .await
        .map_err(method_problem)?;
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(MethodView::from(saved.method))).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MethodPatchBody {
    /// true makes this the default (the previous default stops being it).
    pub make_default: Option<bool>,
    /// A name for the method; null removes it.
    #[serde(default, deserialize_with = "present")]
    pub nickname: Option<Option<String>>,
}

/// A field that is present (even as null) is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Makes a method the default, or names it.
#[utoipa::path(
    patch,
    path = "/api/me/orgs/{org}/methods/{id}",
    tag = "save-method",
    params(("org" = String, Path), ("id" = String, Path)),
    request_body = MethodPatchBody,
    responses(
        (status = 200, description = "changed", body = MethodView),
        (status = 404, description = "no such method of yours", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((org, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<MethodPatchBody>,
) -> Result<Json<MethodView>, Problem> {
    let (org, id) = (org_of(&org)?, method_id(&id)?);
    let patch = MethodPatch {
        make_default: body.make_default,
        nickname: body.nickname,
    };
    let method = app::methods::update(&state, &org, &signed_in.user.id, &id, patch)
        .await
        .map_err(method_problem)?;
    Ok(Json(method.into()))
}

/// Removes a method here and at the gateway (refused while a schedule or auto-pay uses it).
#[utoipa::path(
    delete,
    path = "/api/me/orgs/{org}/methods/{id}",
    tag = "save-method",
    params(("org" = String, Path), ("id" = String, Path)),
    responses(
        (status = 204, description = "removed"),
        (status = 404, description = "no such method of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "in use", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn remove(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let (org, id) = (org_of(&org)?, method_id(&id)?);
    app::methods::remove(&state, &org, &signed_in.user.id, &id)
        .await
        .map_err(method_problem)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TermsQuery {
    /// card or bank
    pub kind: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TermsView {
    /// direct_debit or stored_credential
    pub kind: String,
    pub version: String,
    pub text: String,
}

/// The authority a payer accepts to save a method of this kind, in the org's words.
#[utoipa::path(
    get,
    path = "/api/me/orgs/{org}/methods/terms",
    tag = "save-method",
    params(("org" = String, Path), TermsQuery),
    responses((status = 200, description = "the terms", body = TermsView))
)]
async fn terms(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(org): Path<String>,
    Query(query): Query<TermsQuery>,
) -> Result<Json<TermsView>, Problem> {
    let org = org_of(&org)?;
    let kind =
        MethodKind::parse(&query.kind).ok_or_else(|| Problem::invalid("kind: card or bank"))?;
    let (org, _) = app::methods::membership(&state, &org, &signed_in.user.id)
        .await
        .map_err(method_problem)?;
    let terms = app::methods::terms(kind, &org.name);
    Ok(Json(TermsView {
        kind: terms.kind.to_owned(),
        version: terms.version.to_owned(),
        text: terms.text,
    }))
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, save))
        .routes(routes!(update, remove))
        .routes(routes!(terms))
}

/// The `save-method` function's router.
pub fn router(state: AppState) -> Router {
    let (api, _) = routes().split_for_parts();
    let routes = crate::base_routes()
        .merge(api)
        .merge(crate::method_pages::pages());
    crate::layers::common(routes).with_state(state)
}
