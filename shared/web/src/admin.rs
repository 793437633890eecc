//! The `admin` function: the org's own API (ledger invoices, payments, settings).

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
};
use domain::InvoiceNumber;
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::OrgAdmin;
use crate::views::{InvoiceView, PaymentPage};
use crate::{ApiJson, AppState, Problem};
use app::ledger::NewInvoiceError;
use app::ports::LedgerWriteError;

/// A ledger invoice to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvoiceBody {
    #[schema(example = "INV-0042")]
    pub invoice_number: String,
    pub customer_id: String,
    pub customer_name: String,
    /// A decimal string in the currency's precision.
    #[schema(example = "120.50")]
    pub total: String,
    /// ISO 4217; defaults to the org's currency.
    #[schema(example = "USD")]
    pub currency: Option<String>,
    #[schema(value_type = String, format = Date)]
    pub issue_date: Date,
    #[schema(value_type = String, format = Date)]
    pub due_date: Date,
}

impl From<NewInvoiceBody> for app::ledger::NewInvoice {
    fn from(b: NewInvoiceBody) -> Self {
        app::ledger::NewInvoice {
            invoice_number: b.invoice_number,
            customer_id: b.customer_id,
            customer_name: b.customer_name,
            total: b.total,
            currency: b.currency,
            issue_date: b.issue_date,
            due_date: b.due_date,
        }
    }
}

fn invoice_problem(e: NewInvoiceError) -> Problem {
    match e {
        NewInvoiceError::Write(LedgerWriteError::Exists(number)) => Problem::new(
            StatusCode::CONFLICT,
            "invoice_exists",
            "The invoice exists already",
            format!("invoice {number} is in the ledger already; it was not changed"),
        ),
        NewInvoiceError::Write(LedgerWriteError::Store(e)) => e.into(),
        NewInvoiceError::Write(other) => Problem::internal(&other),
        invalid => Problem::invalid(invalid.to_string()),
    }
}

/// Adds an invoice to the org's built-in ledger.
#[utoipa::path(
    post,
    path = "/api/orgs/{org}/invoices",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    request_body = NewInvoiceBody,
    responses(
        (status = 201, description = "added", body = InvoiceView),
        (status = 400, description = "invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "no valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the number exists", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn create_invoice(
    State(state): State<AppState>,
    admin: OrgAdmin,
    ApiJson(body): ApiJson<NewInvoiceBody>,
) -> Result<(StatusCode, Json<InvoiceView>), Problem> {
    let org = state
        .orgs
        .get_org(&admin.org)
        .await?
        .ok_or_else(|| Problem::not_found("no such org"))?;
    let invoice = app::ledger::add_invoice(
        state.ledger.as_ref(),
        state.clock.as_ref(),
        &admin.org,
        org.settings.default_currency,
        &body.into(),
    )
    .await
    .map_err(invoice_problem)?;
    Ok((StatusCode::CREATED, Json(invoice.into())))
}

/// One invoice of the org's ledger, with its balance now.
#[utoipa::path(
    get,
    path = "/api/orgs/{org}/invoices/{invoice}",
    tag = "admin",
    params(
        ("org" = String, Path, description = "the org's slug"),
        ("invoice" = String, Path, description = "the invoice number"),
    ),
    responses(
        (status = 200, description = "the invoice", body = InvoiceView),
        (status = 404, description = "no such invoice", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn get_invoice(
    State(state): State<AppState>,
    admin: OrgAdmin,
    Path((_org, number)): Path<(String, String)>,
) -> Result<Json<InvoiceView>, Problem> {
    let not_found = || Problem::not_found(format!("no invoice {number}"));
    let parsed = InvoiceNumber::parse(&number).map_err(|_| not_found())?;
    let found = state
        .ledger
        .get_invoice(&admin.org, &parsed)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(found.invoice.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 100; 25 when absent.
    pub limit: Option<u16>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The org's payments, newest first.
#[utoipa::path(
    get,
    path = "/api/orgs/{org}/payments",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug"), PageQuery),
    responses((status = 200, description = "a page of payments", body = PaymentPage)),
    security(("api_key" = []))
)]
async fn list_payments(
    State(state): State<AppState>,
    admin: OrgAdmin,
    Query(q): Query<PageQuery>,
) -> Result<Json<PaymentPage>, Problem> {
    let page = app::payments::list_payments(
        state.payments.as_ref(),
        &admin.org,
        q.limit,
        q.cursor.as_deref(),
    )
    .await?;
    Ok(Json(PaymentPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next,
    }))
}

/// An org's settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    /// Whether guests and payers may pay less than the whole balance.
    pub allow_partial: bool,
    /// How long an emailed invitation stays valid (1 to 30 days).
    pub invite_ttl_days: u16,
    /// IANA time zone for dates shown to payers and schedule days.
    pub timezone: String,
    /// The currency of ledger invoices created without one.
    #[schema(example = "USD")]
    pub default_currency: String,
    /// Card surcharges: `{"brand": "visa" | "*", "rate_bps": 290, "fixed": {"amount": "0.30", "currency": "USD"}}`;
    /// empty (the default) means none. Bank payments never carry one.
    #[schema(value_type = Vec<Object>)]
    pub surcharges: Vec<domain::SurchargeRule>,
    /// Scheduled and automatic payments: `run_hour`, `retry_days`, `advance_notice_days`,
    /// `processing_delay_hours`, `payers_may_enrol`.
    #[schema(value_type = Object)]
    pub autopay: domain::AutoPaySettings,
    /// Whether members must use two-factor sign-in (TOTP): one without it is sent to set it up
    /// before the org's portal and admin pages open, and the org's payer API (and its admin API
    /// with a session, not with an API key) answers 403 `two_factor_required`. Default false.
    pub require_two_factor: bool,
}

impl From<domain::OrgSettings> for SettingsView {
    fn from(s: domain::OrgSettings) -> Self {
        SettingsView {
            allow_partial: s.allow_partial,
            invite_ttl_days: s.invite_ttl_days,
            timezone: s.timezone,
            default_currency: s.default_currency.code().to_owned(),
            surcharges: s.surcharges,
            autopay: s.autopay,
            require_two_factor: s.require_two_factor,
        }
    }
}

/// The org's settings.
#[utoipa::path(
    get,
    path = "/api/orgs/{org}/settings",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    responses((status = 200, description = "the settings", body = SettingsView)),
    security(("api_key" = []))
)]
async fn get_settings(
    State(state): State<AppState>,
    admin: OrgAdmin,
) -> Result<Json<SettingsView>, Problem> {
    let org = state
        .orgs
        .get_org(&admin.org)
        .await?
        .ok_or_else(|| Problem::not_found("no such org"))?;
    Ok(Json(org.settings.into()))
}

/// Changes some of the org's settings; fields left out stay as they are. Any refused field
/// changes nothing.
#[utoipa::path(
    patch,
    path = "/api/orgs/{org}/settings",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    request_body(content = Object, description = "any of the settings' fields"),
    responses(
        (status = 200, description = "the settings now", body = SettingsView),
        (status = 400, description = "a field was refused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn patch_settings(
    State(state): State<AppState>,
    admin: OrgAdmin,
    ApiJson(patch): ApiJson<app::orgs::SettingsPatch>,
) -> Result<Json<SettingsView>, Problem> {
    use app::orgs::SettingsError;
    match app::orgs::update_settings(state.orgs.as_ref(), &admin.org, patch).await {
        Ok(settings) => Ok(Json(settings.into())),
        Err(SettingsError::NotFound) => Err(Problem::not_found("no such org")),
        Err(SettingsError::Store(e)) => Err(e.into()),
        Err(e) => Err(Problem::invalid(e.to_string())),
    }
}

/// The org's mandates: who accepted which direct-debit or stored-credential authority, when,
/// from where, and the hash of the exact words (the Direct Debit Authority records).
#[utoipa::path(
    get,
    path = "/api/orgs/{org}/mandates",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    responses((status = 200, description = "the mandates, oldest first", body = Vec<crate::methods::MandateView>)),
    security(("api_key" = []))
)]
async fn list_mandates(
    State(state): State<AppState>,
    admin: OrgAdmin,
) -> Result<Json<Vec<crate::methods::MandateView>>, Problem> {
    let mandates = app::methods::mandates(&state, &admin.org).await?;
    Ok(Json(mandates.into_iter().map(Into::into).collect()))
}

/// Enrols a customer in automatic payments from one of its payers' saved methods (the
/// payer's default when no method is named); `locked` keeps the payer from changing or ending it.
#[utoipa::path(
    put,
    path = "/api/orgs/{org}/autopay/{customer}",
    tag = "admin",
    params(("org" = String, Path), ("customer" = String, Path)),
    request_body = crate::schedules::EnrolBody,
    responses(
        (status = 200, description = "enrolled", body = crate::schedules::EnrolmentView),
        (status = 404, description = "no such payer of that customer, or method", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn enrol_customer(
    State(state): State<AppState>,
    admin: OrgAdmin,
    Path((_org, customer)): Path<(String, String)>,
    ApiJson(body): ApiJson<crate::schedules::EnrolBody>,
) -> Result<Json<crate::schedules::EnrolmentView>, Problem> {
    let email = body
        .payer_email
        .as_deref()
        .ok_or_else(|| Problem::invalid("payer_email: the payer whose methods pay"))?;
    let email = domain::Email::parse(email).map_err(|e| Problem::invalid(e.to_string()))?;
    let payer = state
        .users
        .find_user_by_email(&email)
        .await?
        .ok_or_else(|| Problem::not_found("no such payer"))?;
    let command = crate::schedules::enrol_command(
        admin.org,
        customer,
        app::autopay::Actor::Admin,
        payer,
        body,
    );
    let enrolment = app::autopay::enrol(&state, command)
        .await
        .map_err(crate::schedules::schedule_problem)?;
    Ok(Json(enrolment.into()))
}

/// Ends a customer's auto-pay enrolment.
#[utoipa::path(
    delete,
    path = "/api/orgs/{org}/autopay/{customer}",
    tag = "admin",
    params(("org" = String, Path), ("customer" = String, Path)),
    responses((status = 204, description = "ended")),
    security(("api_key" = []))
)]
async fn end_enrolment(
    State(state): State<AppState>,
    admin: OrgAdmin,
    Path((_org, customer)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    app::autopay::end(&state, &admin.org, &app::autopay::Actor::Admin, &customer)
        .await
        .map_err(crate::schedules::schedule_problem)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The org's gateway and its credentials. The credentials are sealed at rest and never shown
/// again, nor logged; a new PUT replaces them (a rotation).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayBody {
    /// "sandbox" or "stripe".
    #[schema(example = "stripe")]
    pub gateway: String,
    /// Stripe: `{"secret_key": "sk_live_...", "publishable_key": "pk_live_..."}` (a restricted
    /// `rk_` key works too; without the publishable key the Pay Now and payment methods pages
    /// say that online payments are not set up); the sandbox takes none.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub credentials: serde_json::Value,
    /// The gateway's webhook signing secret, if it gave you one: it becomes the org's current
    /// webhook secret for that gateway (the one before stays accepted for 24 hours).
    pub webhook_secret: Option<String>,
}

/// The org's gateway configuration as far as it may be shown: never a credential.
#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayView {
    pub gateway: String,
    /// Whether the org configured it (false: the sandbox, by default).
    pub configured: bool,
    /// The end of the key, to tell two keys apart: "…4242".
    pub key_hint: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<time::OffsetDateTime>,
    /// The id of the current webhook secret for this gateway, if the org has one.
    pub webhook_secret_id: Option<String>,
}

/// What a connection test found.
#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayTestView {
    pub gateway: String,
    /// Whether the gateway accepted the credentials.
    pub ok: bool,
    /// Why not, as far as the gateway said.
    pub detail: Option<String>,
}

/// The credentials a gateway takes, checked, as JSON text to seal, and their hint.
fn gateway_credentials(
    gateway: &str,
    credentials: &serde_json::Value,
) -> Result<(domain::Secret<String>, String), Problem> {
    let empty = serde_json::Map::new();
    let fields = match credentials {
        serde_json::Value::Null => &empty,
        serde_json::Value::Object(fields) => fields,
        _ => return Err(Problem::invalid("credentials: an object")),
    };
    match gateway {
        "sandbox" if fields.is_empty() => Ok((domain::Secret::new("{}".into()), String::new())),
        "sandbox" => Err(Problem::invalid("credentials: the sandbox takes none")),
        "stripe" => {
            const FIELDS: [&str; 2] = ["secret_key", "publishable_key"];
            if let Some(other) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
                return Err(Problem::invalid(format!(
                    "credentials: unknown field {other:?} (Stripe takes secret_key and the optional pk_ key)"
                )));
            }
            let text = |name: &str| {
                fields
                    .get(name)
                    .and_then(|k| k.as_str())
                    .map(str::trim)
                    .unwrap_or_default()
            };
            let plain = |v: &str| {
                (8..=255).contains(&v.len())
                    && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            // Never echoed: a message names the field, not its value.
            let key = text("secret_key");
            if !((key.starts_with("sk_") || key.starts_with("rk_")) && plain(key)) {
                return Err(Problem::invalid(
                    "credentials.secret_key: a Stripe secret key (sk_...) or restricted key (rk_...)",
                ));
            }
            // Public (Stripe.js needs it in the payer's browser), but checked as strictly; it
            // must be of the secret key's mode (test or live).
            let publishable = match fields.get("publishable_key") {
                None | Some(serde_json::Value::Null) => "",
                Some(serde_json::Value::String(k)) => k.trim(),
                Some(_) => "?",
            };
            let mut credentials = serde_json::json!({ "secret_key": key });
            if !publishable.is_empty() {
                // Only a pk_ key: a secret key put here by mistake would reach every browser.
                let live = publishable.starts_with("pk_live_");
                let well_formed = (live || publishable.starts_with("pk_test_"))
                    && plain(publishable)
                    && live == (key.starts_with("sk_live_") || key.starts_with("rk_live_"));
                if !well_formed {
                    return Err(Problem::invalid(
                        "credentials.publishable_key: the Stripe publishable key (pk_test_... or pk_live_...) of the secret key's mode",
                    ));
                }
                credentials["publishable_key"] = publishable.into();
            }
            let hint = format!("…{}", &key[key.len() - 4..]);
            Ok((domain::Secret::new(credentials.to_string()), hint))
        }
        "authorize-net" => {
            const FIELDS: [&str; 4] = [
                "api_login_id",
                "transaction_key",
                "environment",
                "client_key",
            ];
            if let Some(other) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
                return Err(Problem::invalid(format!(
                    "credentials: unknown field {other:?} (Authorize.Net takes {})",
                    FIELDS.join(", ")
                )));
            }
            let text = |name: &str| {
                fields
                    .get(name)
                    .and_then(|v| v.as_str())
                    .map(str::trim)
                    .unwrap_or_default()
            };
            let plain = |v: &str, max: usize| {
                (1..=max).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphanumeric())
            };
            // Never echoed: a message names the field, not its value.
            let (login, key) = (text("api_login_id"), text("transaction_key"));
            if !plain(login, 25) {
                return Err(Problem::invalid(
                    "credentials.api_login_id: the API Login ID (letters and digits, at most 25)",
                ));
            }
            if key.len() != 16 || !plain(key, 16) {
                return Err(Problem::invalid(
                    "credentials.transaction_key: the 16-character Transaction Key",
                ));
            }
            let environment = match text("environment") {
                e @ ("sandbox" | "production") => e,
                _ => {
                    return Err(Problem::invalid(
                        "credentials.environment: sandbox or production",
                    ));
                }
            };
            let client_key = text("client_key");
            if !client_key.is_empty() && !plain(client_key, 100) {
                return Err(Problem::invalid(
                    "credentials.client_key: the Public Client Key for Accept.js",
                ));
            }
            let hint = format!("{login} …{}", &key[key.len() - 4..]);
            let text = serde_json::json!({
                "api_login_id": login,
                "transaction_key": key,
                "environment": environment,
                "client_key": client_key,
            })
            .to_string();
            Ok((domain::Secret::new(text), hint))
        }
        _ => Err(Problem::invalid(
            "gateway: sandbox, stripe or authorize-net",
        )),
    }
}

async fn gateway_view(state: &AppState, org: &domain::OrgSlug) -> Result<GatewayView, Problem> {
    let info = state.gateway_configs.gateway_config_info(org).await?;
    let gateway = info
        .as_ref()
        .map_or_else(|| "sandbox".to_owned(), |i| i.gateway.clone());
    let webhook_secret_id = state
        .webhook_secrets
        .secret_info(org, &gateway)
        .await?
        .map(|w| w.current_id);
    Ok(GatewayView {
        configured: info.is_some(),
        key_hint: info
            .as_ref()
            .map(|i| i.hint.clone())
            .filter(|h| !h.is_empty()),
        created_at: info.as_ref().map(|i| i.created_at),
        updated_at: info.as_ref().map(|i| i.updated_at),
        webhook_secret_id,
        gateway,
    })
}

/// The org's gateway: which one, the end of its key, when it was set. Never the credentials.
#[utoipa::path(
    get,
    path = "/api/orgs/{org}/gateway",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    responses((status = 200, description = "the gateway configuration", body = GatewayView)),
    security(("api_key" = []))
)]
async fn get_gateway(
    State(state): State<AppState>,
    admin: OrgAdmin,
) -> Result<Json<GatewayView>, Problem> {
    Ok(Json(gateway_view(&state, &admin.org).await?))
}

/// Sets the org's gateway and its credentials (sealed at rest; a new PUT rotates them), and its
/// webhook secret if given. The answer never holds a credential.
#[utoipa::path(
    put,
    path = "/api/orgs/{org}/gateway",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    request_body(content = GatewayBody),
    responses(
        (status = 200, description = "the configuration now", body = GatewayView),
        (status = 400, description = "a field was refused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn put_gateway(
    State(state): State<AppState>,
    admin: OrgAdmin,
    body: axum::body::Bytes,
) -> Result<Json<GatewayView>, Problem> {
    // Parsed here rather than by an extractor, so that no parse error can quote a credential.
    let body: GatewayBody = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "The body is not the JSON expected",
            format!(
                "expected {{gateway, credentials, webhook_secret?}} (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    let (credentials, hint) = gateway_credentials(&body.gateway, &body.credentials)?;
    let webhook_secret = match body.webhook_secret.as_deref().map(str::trim) {
        None => None,
        Some(s) if (16..=255).contains(&s.len()) && !s.chars().any(char::is_whitespace) => {
            Some(domain::Secret::new(s.to_owned()))
        }
        Some(_) => return Err(Problem::invalid("webhook_secret: 16 to 255 characters")),
    };
    let now = state.clock.now();
    if state.orgs.get_org(&admin.org).await?.is_none() {
        return Err(Problem::not_found("no such org"));
    }
    state
        .gateway_configs
        .put_gateway_config(&admin.org, &body.gateway, &credentials, &hint, now)
        .await?;
    if let Some(secret) = &webhook_secret {
        let id = format!("whs_{}", state.ids.ulid());
        let written = state
            .webhook_secrets
            .rotate_secret(
                &admin.org,
                &body.gateway,
                &id,
                secret,
                now + time::Duration::hours(24),
                now,
            )
            .await?;
        if written == app::ports::RotateWrite::Conflict {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "rotated_meanwhile",
                "The webhook secret was rotated meanwhile",
                "the gateway was saved; send the webhook secret again",
            ));
        }
    }
    state.gateway.forget(&admin.org);
    tracing::info!(org = %admin.org, gateway = %body.gateway, "gateway configured");
    Ok(Json(gateway_view(&state, &admin.org).await?))
}

/// Tests the org's gateway: one cheap call with its credentials.
#[utoipa::path(
    post,
    path = "/api/orgs/{org}/gateway/test",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    responses((status = 200, description = "what the gateway said", body = GatewayTestView)),
    security(("api_key" = []))
)]
async fn test_gateway(
    State(state): State<AppState>,
    admin: OrgAdmin,
) -> Result<Json<GatewayTestView>, Problem> {
    let gateway = state
        .gateway
        .name_for(&admin.org)
        .await
        .map_err(|e| Problem::unavailable(&e))?
        .to_owned();
    let (ok, detail) = match state.gateway.test_connection(&admin.org).await {
        Ok(app::ports::ConnectionCheck::Accepted) => (true, None),
        Ok(app::ports::ConnectionCheck::Refused(why)) => (false, Some(why)),
        Err(e) => (false, Some(e.to_string())),
    };
    Ok(Json(GatewayTestView {
        gateway,
        ok,
        detail,
    }))
}

/// The admin routes with their OpenAPI descriptions.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_invoice))
        .routes(routes!(get_invoice))
        .routes(routes!(list_payments))
        .routes(routes!(get_settings, patch_settings))
        .routes(routes!(list_mandates))
        .merge(crate::webhook_admin::routes())
        .merge(crate::refunds::routes())
        .merge(crate::anet_admin::routes())
        .merge(crate::accounting_admin::routes())
        .routes(routes!(enrol_customer, end_enrolment))
        .routes(routes!(get_gateway, put_gateway))
        .routes(routes!(test_gateway))
}

/// The `admin` function's router.
pub fn router(state: AppState) -> Router {
    let (api, _) = routes().split_for_parts();
    let routes = crate::base_routes()
        .merge(api)
        .merge(crate::payer_admin::pages())
        .merge(crate::accounting_admin::pages());
    crate::layers::common(routes).with_state(state)
}
