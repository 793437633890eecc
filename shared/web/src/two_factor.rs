//! Two-factor sign-in (TOTP), served by `portal`: the code page of a sign-in's second step
//! (`/login/two-factor`), and on the account page setting it up (`/account/two-factor`, then
//! `/account/two-factor/confirm`) and turning it off (`/account/two-factor/disable`); the same
//! use cases as JSON under `/api/login/two-factor` and `/api/me/two-factor`. Forms are
//! CSRF-checked; nothing needs JavaScript. The rules are in `app::two_factor`.

use askama::Template;
use axum::{
    Form, Json, Router,
    extract::{Query, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use domain::Secret;
use serde::{Deserialize, Serialize};
use time::Duration;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use app::two_factor::TwoFactorError;

use crate::client::ClientAddr;
use crate::html::{csrf_refused, page, unavailable, with_cookie};
use crate::session::{
    Csrf, SignedIn, is_https, second_step_clear_cookie, second_step_token, session_set_cookie,
};
use crate::sign_in::{AccountForm, account_form, account_page, local_path, sign_in_page};
use crate::{ApiJson, AppState, Problem};

const CODE_PAGE: &str = "/login/two-factor";

/// The code page's address that goes on to `next` after signing in.
pub(crate) fn code_page_then(next: &str) -> String {
    let query = serde_urlencoded::to_string([("next", next)]).expect("a string pair encodes");
    format!("{CODE_PAGE}?{query}")
}

fn minutes(wait: Duration) -> String {
    let minutes = (wait.whole_seconds() + 59) / 60;
    format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
}

fn with_retry_after(mut response: Response, wait: Duration) -> Response {
    if let Ok(value) = HeaderValue::from_str(&wait.whole_seconds().to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

// ---- the second step of signing in --------------------------------------------------------

#[derive(Template)]
#[template(path = "two_factor_code.html")]
struct CodePage<'a> {
    csrf: &'a str,
    next: &'a str,
    error: Option<&'a str>,
}

fn code_page(
    parts: &Parts,
    state: &AppState,
    status: StatusCode,
    next: &str,
    error: Option<&str>,
) -> Response {
    let csrf = Csrf::for_form(&parts.headers, is_https(parts), state.ids.as_ref());
    let form = CodePage {
        csrf: &csrf.token,
        next,
        error,
    };
    with_cookie(page(status, &form), csrf.set)
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// `GET /login/two-factor`: the code form, for a browser in the middle of signing in (else the
/// sign-in page).
async fn show_code(
    State(state): State<AppState>,
    parts: Parts,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = local_path(q.next.as_deref());
    if second_step_token(&parts).is_none() {
        return crate::sign_in::sign_in_then(next);
    }
    code_page(&parts, &state, StatusCode::OK, next, None)
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    next: Option<String>,
}

/// `POST /login/two-factor`: the code (or a recovery code) turns the second step into a session.
async fn submit_code(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    parts: Parts,
    Form(form): Form<CodeForm>,
) -> Response {
    if let Some(expired) = csrf_refused(&parts.headers, &form.csrf) {
        return expired;
    }
    let next = local_path(form.next.as_deref());
    let https = is_https(&parts);
    let expired = || {
        let mut response = sign_in_page(
            &parts,
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            "",
            Some(
                "Your sign-in took too long, or was finished already. Enter your email and password again.",
            ),
        );
        response
            .headers_mut()
            .append(header::SET_COOKIE, second_step_clear_cookie(https));
        response
    };
    let Some(token) = second_step_token(&parts) else {
        return expired();
    };
    let client = client.map(|ip| ip.to_string());
    let refused = |status, error: &str| code_page(&parts, &state, status, next, Some(error));
    match app::two_factor::second_step(&state, token, &form.code, client.as_deref()).await {
        Ok((session, _)) => {
            let mut response = Redirect::to(next).into_response();
            let headers = response.headers_mut();
            headers.append(header::SET_COOKIE, session_set_cookie(&session, https));
            headers.append(header::SET_COOKIE, second_step_clear_cookie(https));
            response
        }
        Err(TwoFactorError::WrongCode) => refused(
            StatusCode::UNAUTHORIZED,
            "That code is not right. Enter the 6-digit code your app shows now, or one of your recovery codes.",
        ),
        Err(TwoFactorError::UsedCode) => refused(
            StatusCode::UNAUTHORIZED,
            "That code was used already. Wait for your app to show the next one, then enter it.",
        ),
        Err(TwoFactorError::TooMany(wait)) => with_retry_after(
            refused(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many wrong codes. Try again in {}.", minutes(wait)),
            ),
            wait,
        ),
        Err(TwoFactorError::Store(e)) => unavailable(&e),
        Err(_) => expired(),
    }
}

// ---- setting it up and turning it off on the account page --------------------------------

/// The key of a new enrolment as the page shows it.
struct Key {
    /// The base32 text in groups of four, as people type it.
    grouped: String,
    uri: String,
    qr_svg: String,
}

#[derive(Template)]
#[template(path = "two_factor_setup.html")]
struct SetupPage<'a> {
    csrf: &'a str,
    /// Shown once, right after the set-up starts; None when a code was refused.
    key: Option<Key>,
    error: Option<&'a str>,
    required_by: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "two_factor_recovery.html")]
struct RecoveryPage {
    codes: Vec<String>,
    continue_to: Option<String>,
}

/// The org slug a form carries on (to go back to its pages afterwards), if it is one.
fn org_slug(text: Option<&str>) -> Option<&str> {
    text.filter(|slug| domain::OrgSlug::parse(slug).is_ok())
}

fn setup_page(
    state: &AppState,
    parts: &Parts,
    status: StatusCode,
    key: Option<Key>,
    error: Option<&str>,
    required_by: Option<&str>,
) -> Response {
    let csrf = Csrf::for_form(&parts.headers, is_https(parts), state.ids.as_ref());
    let setup = SetupPage {
        csrf: &csrf.token,
        key,
        error,
        required_by,
    };
    with_cookie(page(status, &setup), csrf.set)
}

/// A QR code of `text` as an SVG of dark squares on a quiet zone of four modules.
pub(crate) fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M).ok()?;
    let width = code.width();
    let quiet = 4;
    let size = width + 2 * quiet;
    let mut path = String::new();
    for (i, color) in code.to_colors().into_iter().enumerate() {
        if color == qrcode::Color::Dark {
            let (x, y) = (i % width + quiet, i / width + quiet);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Some(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" role="img" aria-label="QR code of the two-factor key" shape-rendering="crispEdges"><rect width="{size}" height="{size}" fill="#fff"/><path d="{path}" fill="#000"/></svg>"##
    ))
}

fn key_of(enrolment: &app::two_factor::Enrolment) -> Key {
    let secret = enrolment.secret.expose();
    let grouped = secret
        .as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    Key {
        grouped,
        uri: enrolment.uri.expose().clone(),
        qr_svg: qr_svg(enrolment.uri.expose()).unwrap_or_default(),
    }
}

#[derive(Deserialize)]
struct StartForm {
    #[serde(default)]
    csrf: String,
    required_by: Option<String>,
}

/// `POST /account/two-factor`: a new key, shown once with its QR code, and the form for its
/// first code.
async fn start(
    State(state): State<AppState>,
    parts: Parts,
    Form(form): Form<StartForm>,
) -> Response {
    let (user, _) = match account_form(&state, &parts, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let required_by = org_slug(form.required_by.as_deref());
    match app::two_factor::start(&state, &user).await {
        Ok(enrolment) => setup_page(
            &state,
            &parts,
            StatusCode::OK,
            Some(key_of(&enrolment)),
            None,
            required_by,
        ),
        Err(TwoFactorError::AlreadyOn) => Redirect::to("/account#two-factor").into_response(),
        Err(e) => unavailable(&e),
    }
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    required_by: Option<String>,
}

/// `POST /account/two-factor/confirm`: the first code turns two-factor sign-in on; the recovery
/// codes are shown once. A wrong code leaves it off.
async fn confirm(
    State(state): State<AppState>,
    parts: Parts,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let (user, _) = match account_form(&state, &parts, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let required_by = org_slug(form.required_by.as_deref());
    let this_session = crate::session::session_token(&parts);
    match app::two_factor::confirm(&state, &user, &form.code, this_session).await {
        Ok(codes) => {
            let recovery = RecoveryPage {
                codes: codes.iter().map(|c| c.expose().clone()).collect(),
                continue_to: required_by.map(|slug| format!("/portal/orgs/{slug}")),
            };
            page(StatusCode::OK, &recovery)
        }
        Err(TwoFactorError::WrongCode) => setup_page(
            &state,
            &parts,
            StatusCode::BAD_REQUEST,
            None,
            Some(
                "That code is not right, so two-factor sign-in is still off. Check that your phone's clock is right, then enter the code the app shows now.",
            ),
            required_by,
        ),
        Err(TwoFactorError::NoEnrolment) => {
            account_page(
                &state,
                &parts,
                user,
                StatusCode::CONFLICT,
                None,
                Some((
                    AccountForm::TwoFactor,
                    "The set-up expired before a code came. Two-factor sign-in is still off: set it up again.".into(),
                )),
                required_by,
            )
            .await
        }
        Err(TwoFactorError::AlreadyOn) => Redirect::to("/account#two-factor").into_response(),
        Err(e) => unavailable(&e),
    }
}

#[derive(Deserialize)]
struct DisableForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    code: String,
}

/// `POST /account/two-factor/disable`: the password and a code turn two-factor sign-in off.
async fn disable(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    parts: Parts,
    Form(form): Form<DisableForm>,
) -> Response {
    let (user, _) = match account_form(&state, &parts, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let client = client.map(|ip| ip.to_string());
    let password = Secret::new(form.current_password);
    let result =
        app::two_factor::disable(&state, &user, &password, &form.code, client.as_deref()).await;
    let (status, error) = match result {
        Ok(()) => return Redirect::to("/account?done=two_factor_off").into_response(),
        Err(TwoFactorError::WrongPassword) => (
            StatusCode::FORBIDDEN,
            "The current password is not right. Two-factor sign-in is still on.".to_owned(),
        ),
        Err(TwoFactorError::WrongCode) => (
            StatusCode::FORBIDDEN,
            "That code is not right. Two-factor sign-in is still on.".to_owned(),
        ),
        Err(TwoFactorError::UsedCode) => (
            StatusCode::FORBIDDEN,
            "That code was used already. Wait for your app to show the next one.".to_owned(),
        ),
        Err(TwoFactorError::TooMany(wait)) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed attempts from here. Try again in {}.",
                minutes(wait)
            ),
        ),
        Err(TwoFactorError::NotOn) => {
            return Redirect::to("/account#two-factor").into_response();
        }
        Err(e) => return unavailable(&e),
    };
    account_page(
        &state,
        &parts,
        user,
        status,
        None,
        Some((AccountForm::TwoFactor, error)),
        None,
    )
    .await
}

pub(crate) fn pages() -> Router<AppState> {
    Router::new()
        .route(CODE_PAGE, get(show_code).post(submit_code))
        .route("/account/two-factor", post(start))
        .route("/account/two-factor/confirm", post(confirm))
        .route("/account/two-factor/disable", post(disable))
}

// ---- JSON ---------------------------------------------------------------------------------

/// problem+json for a refused two-factor request; `refused` is the status of a wrong or used
/// code (401 when signing in, 403 when signed in).
fn problem(e: TwoFactorError, refused: StatusCode) -> Response {
    let (status, code, title) = match &e {
        TwoFactorError::AlreadyOn => (
            StatusCode::CONFLICT,
            "two_factor_on",
            "Two-factor sign-in is on already",
        ),
        TwoFactorError::NotOn => (
            StatusCode::CONFLICT,
            "two_factor_off",
            "Two-factor sign-in is not on",
        ),
        TwoFactorError::NoEnrolment => (
            StatusCode::CONFLICT,
            "no_enrolment",
            "Nothing to confirm: start the set-up again",
        ),
        TwoFactorError::WrongCode => (refused, "wrong_code", "The code is not right"),
        TwoFactorError::UsedCode => (refused, "used_code", "The code was used already"),
        TwoFactorError::WrongPassword => (
            StatusCode::FORBIDDEN,
            "wrong_password",
            "The current password is not right",
        ),
        TwoFactorError::SignInExpired => (
            StatusCode::UNAUTHORIZED,
            "sign_in_expired",
            "The sign-in expired: sign in again",
        ),
        TwoFactorError::TooMany(wait) => {
            let problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "Too many failed attempts",
                e.to_string(),
            );
            return with_retry_after(problem.into_response(), *wait);
        }
        TwoFactorError::Store(store) => return Problem::from(store.clone()).into_response(),
    };
    Problem::new(status, code, title, e.to_string()).into_response()
}

/// The second step of signing in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// The 6-digit code of the authenticator app, or a recovery code.
    pub code: String,
}

/// Signs in with a two-factor code, after `POST /api/login` answered `two_factor_code_needed`
/// (its cookie names the sign-in): a new session in an HttpOnly cookie.
#[utoipa::path(
    post,
    path = "/api/login/two-factor",
    tag = "portal",
    request_body = CodeBody,
    responses(
        (status = 200, description = "signed in; the session cookie is set", body = crate::portal::Me),
        (status = 401, description = "the code is not right or was used (`wrong_code`, `used_code`), or the sign-in expired (`sign_in_expired`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many failed attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn api_second_step(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    parts: Parts,
    ApiJson(body): ApiJson<CodeBody>,
) -> Response {
    let https = is_https(&parts);
    let Some(token) = second_step_token(&parts) else {
        return problem(TwoFactorError::SignInExpired, StatusCode::UNAUTHORIZED);
    };
    let client = client.map(|ip| ip.to_string());
    match app::two_factor::second_step(&state, token, &body.code, client.as_deref()).await {
        Ok((session, user)) => match crate::portal::me_of(&state, user).await {
            Ok(me) => {
                let mut response = Json(me).into_response();
                let headers = response.headers_mut();
                headers.append(header::SET_COOKIE, session_set_cookie(&session, https));
                headers.append(header::SET_COOKIE, second_step_clear_cookie(https));
                response
            }
            Err(p) => p.into_response(),
        },
        Err(e) => problem(e, StatusCode::UNAUTHORIZED),
    }
}

/// The signed-in person's two-factor sign-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwoFactorView {
    pub enabled: bool,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "time::serde::rfc3339::option")]
    pub enabled_at: Option<time::OffsetDateTime>,
    pub recovery_codes_left: usize,
}

/// Whether two-factor sign-in is on, since when, and how many recovery codes are left.
#[utoipa::path(
    get,
    path = "/api/me/two-factor",
    tag = "portal",
    responses(
        (status = 200, description = "the two-factor sign-in", body = TwoFactorView),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn api_status(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<TwoFactorView>, Problem> {
    let status = app::two_factor::status(&state, &signed_in.user.id).await?;
    Ok(Json(TwoFactorView {
        enabled: status.enabled_at.is_some(),
        enabled_at: status.enabled_at,
        recovery_codes_left: status.recovery_codes_left,
    }))
}

/// A new key to add to an authenticator app, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrolmentView {
    /// The key in base32 (160 bits), for typing in.
    pub secret: String,
    /// `otpauth://totp/Paybridge:<email>?secret=...&issuer=Paybridge`, for a QR code.
    pub otpauth_uri: String,
}

/// Starts setting up two-factor sign-in: a new key (any earlier unconfirmed one is replaced),
/// off until `POST /api/me/two-factor/confirm` with a code of it.
#[utoipa::path(
    post,
    path = "/api/me/two-factor",
    tag = "portal",
    responses(
        (status = 201, description = "the key, shown once", body = EnrolmentView),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "two-factor sign-in is on already", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn api_start(State(state): State<AppState>, signed_in: SignedIn) -> Response {
    match app::two_factor::start(&state, &signed_in.user).await {
        Ok(enrolment) => (
            StatusCode::CREATED,
            Json(EnrolmentView {
                secret: enrolment.secret.expose().clone(),
                otpauth_uri: enrolment.uri.expose().clone(),
            }),
        )
            .into_response(),
        Err(e) => problem(e, StatusCode::FORBIDDEN),
    }
}

/// The recovery codes of a two-factor sign-in just turned on, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesView {
    /// Each signs in once in place of a code from the app.
    pub recovery_codes: Vec<String>,
}

/// Turns two-factor sign-in on with a code of the new key; answers the recovery codes, once.
#[utoipa::path(
    post,
    path = "/api/me/two-factor/confirm",
    tag = "portal",
    request_body = CodeBody,
    responses(
        (status = 200, description = "on; the recovery codes", body = RecoveryCodesView),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the code is not right (`wrong_code`): still off", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "nothing to confirm (`no_enrolment`), or on already", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn api_confirm(
    State(state): State<AppState>,
    signed_in: SignedIn,
    parts: Parts,
    ApiJson(body): ApiJson<CodeBody>,
) -> Response {
    let this_session = crate::session::session_token(&parts);
    match app::two_factor::confirm(&state, &signed_in.user, &body.code, this_session).await {
        Ok(codes) => Json(RecoveryCodesView {
            recovery_codes: codes.iter().map(|c| c.expose().clone()).collect(),
        })
        .into_response(),
        Err(e) => problem(e, StatusCode::FORBIDDEN),
    }
}

/// Turning two-factor sign-in off.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableBody {
    #[schema(format = Password)]
    pub current_password: String,
    /// A code of the authenticator app, or a recovery code.
    pub code: String,
}

/// Turns two-factor sign-in off: the current password and a code are both needed (a wrong one
/// counts against the sign-in limits). An email tells the person.
#[utoipa::path(
    post,
    path = "/api/me/two-factor/disable",
    tag = "portal",
    request_body = DisableBody,
    responses(
        (status = 204, description = "off"),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the password or the code is not right", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "two-factor sign-in is not on", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many failed attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn api_disable(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    signed_in: SignedIn,
    ApiJson(body): ApiJson<DisableBody>,
) -> Response {
    let client = client.map(|ip| ip.to_string());
    let password = Secret::new(body.current_password);
    let result = app::two_factor::disable(
        &state,
        &signed_in.user,
        &password,
        &body.code,
        client.as_deref(),
    )
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => problem(e, StatusCode::FORBIDDEN),
    }
}

/// The two-factor JSON routes (merged into `portal::routes`).
pub(crate) fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api_second_step))
        .routes(routes!(api_status, api_start))
        .routes(routes!(api_confirm))
        .routes(routes!(api_disable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_an_svg_of_squares() {
        let svg = qr_svg("otpauth://totp/Paybridge:pat%40harbor.test?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Paybridge").unwrap();
        assert!(svg.starts_with("<svg "));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.matches('z').count() > 200, "a few hundred dark modules");
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn the_code_page_keeps_where_to_go() {
        assert_eq!(
            code_page_then("/portal/orgs/demo?x=1"),
            "/login/two-factor?next=%2Fportal%2Forgs%2Fdemo%3Fx%3D1"
        );
    }
}
