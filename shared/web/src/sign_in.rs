//! The pages of `portal` for people in a browser: the sign-in page (`/login`), signing out
//! (`/logout`), and the account page (`/account`): a person's orgs, changing the password,
//! signing out everywhere and which emails they want. They run the same use cases as the JSON
//! API (`/api/me/password`, `/api/logout-everywhere`, `/api/me/notifications`, also here). After signing in the browser goes back to the page that sent it
//! (`next`), which must be a path on this site: never a way to send someone elsewhere.

use askama::Template;
use axum::Json;
use axum::{
    Form, Router,
    extract::{Query, State},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use domain::Secret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use app::account::ChangePasswordError;
use app::ports::NotificationPrefs;
use app::sessions::{LoginError, SignIn};

use crate::client::ClientAddr;
use crate::html::{CsrfForm, csrf_refused, page, unavailable, with_cookie};
use crate::session::{
    Csrf, SignedIn, Transport, is_https, second_step_set_cookie, session_clear_cookie,
    session_set_cookie, session_token, signed_in_user,
};
use crate::{ApiJson, AppState, Problem};

/// Where a browser goes when it has no `next`.
pub(crate) const HOME: &str = "/account";

/// `next` if it is a path on this site, else the account page. A path starts with one `/`;
/// `//host` and `/\host` would leave the site.
pub(crate) fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(char::is_control) =>
        {
            path
        }
        _ => HOME,
    }
}

/// The sign-in page's address that comes back to `path` afterwards.
pub(crate) fn sign_in_then(path: &str) -> Response {
    let query = serde_urlencoded::to_string([("next", path)]).expect("a string pair encodes");
    Redirect::to(&format!("/login?{query}")).into_response()
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    csrf: &'a str,
    next: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

pub(crate) fn sign_in_page(
    parts: &Parts,
    state: &AppState,
    status: StatusCode,
    next: &str,
    email: &str,
    error: Option<&str>,
) -> Response {
    let csrf = Csrf::for_form(&parts.headers, is_https(parts), state.ids.as_ref());
    let form = SignInPage {
        csrf: &csrf.token,
        next,
        email,
        error,
    };
    with_cookie(page(status, &form), csrf.set)
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// `GET /login`: the form; someone signed in already goes straight on.
async fn show(State(state): State<AppState>, parts: Parts, Query(q): Query<NextQuery>) -> Response {
    let next = local_path(q.next.as_deref());
    match signed_in_user(&state, &parts).await {
        Ok(Some(_)) => Redirect::to(next).into_response(),
        Ok(None) => sign_in_page(&parts, &state, StatusCode::OK, next, "", None),
        Err(e) => unavailable(&e),
    }
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    csrf: String,
    email: String,
    password: String,
    next: Option<String>,
}

/// `POST /login`: CSRF-checked (a site must not sign a browser into an account of its
/// choosing); a new session, then back to `next`.
async fn submit(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    parts: Parts,
    Form(form): Form<SignInForm>,
) -> Response {
    if let Some(expired) = csrf_refused(&parts.headers, &form.csrf) {
        return expired;
    }
    let next = local_path(form.next.as_deref());
    let client = client.map(|ip| ip.to_string());
    let password = Secret::new(form.password);
    let refused = |status, error: &str| {
        sign_in_page(&parts, &state, status, next, form.email.trim(), Some(error))
    };
    match app::sessions::login(&state, &form.email, &password, client.as_deref()).await {
        Ok(SignIn::Session(token, _)) => {
            let cookie = session_set_cookie(&token, is_https(&parts));
            ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
        }
        // The password was right: the code page, with the second step in its own cookie.
        Ok(SignIn::SecondStep(token)) => {
            let cookie = second_step_set_cookie(&token, is_https(&parts));
            let to = crate::two_factor::code_page_then(next);
            ([(header::SET_COOKIE, cookie)], Redirect::to(&to)).into_response()
        }
        Err(LoginError::Invalid) => refused(
            StatusCode::UNAUTHORIZED,
            "The email or password is not right.",
        ),
        Err(LoginError::TooMany(wait)) => {
            let minutes = (wait.whole_seconds() + 59) / 60;
            let error = format!(
                "Too many failed sign-ins from here. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            let mut response = refused(StatusCode::TOO_MANY_REQUESTS, &error);
            let retry_after = wait.whole_seconds().to_string();
            if let Ok(value) = retry_after.parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Err(LoginError::Store(e)) => unavailable(&e),
    }
}

/// `POST /logout`: the session ends on the server and its cookie is cleared.
async fn sign_out(
    State(state): State<AppState>,
    Transport { https }: Transport,
    parts: Parts,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(expired) = csrf_refused(&parts.headers, &form.csrf) {
        return expired;
    }
    if let Some(token) = session_token(&parts)
        && let Err(e) = app::sessions::logout(&state, token).await
    {
        return unavailable(&e);
    }
    let clear = [(header::SET_COOKIE, session_clear_cookie(https))];
    (clear, Redirect::to("/login")).into_response()
}

/// Which of the account page's forms an error belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountForm {
    Password,
    Notifications,
    TwoFactor,
}

struct AccountOrg {
    name: String,
    role: String,
    /// The org's admin pages, for its admins.
    admin_link: Option<String>,
    methods_link: String,
    customers: String,
    /// The org requires two-factor sign-in, and this person has not turned it on.
    needs_two_factor: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    name: String,
    email: String,
    orgs: Vec<AccountOrg>,
    csrf: String,
    prefs: NotificationPrefs,
    /// What the last form did (after its redirect).
    done: Option<&'static str>,
    password_error: Option<String>,
    notifications_error: Option<String>,
    /// Since when two-factor sign-in is on ("26 Nov 2026"); None when it is off.
    two_factor_since: Option<String>,
    recovery_codes_left: usize,
    two_factor_error: Option<String>,
    /// The org (slug, name) that sent the person here to turn two-factor sign-in on.
    required_by: Option<(String, String)>,
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
    /// The org whose page sent the person here to turn two-factor sign-in on.
    required_by: Option<String>,
}

/// `GET /account`: who is signed in and the orgs they belong to, with a way to each org's
/// admin pages; the password, sign-out-everywhere and email forms.
async fn account(
    State(state): State<AppState>,
    parts: Parts,
    Query(q): Query<DoneQuery>,
) -> Response {
    let user = match signed_in_user(&state, &parts).await {
        Ok(Some(user)) => user,
        Ok(None) => return sign_in_then(HOME),
        Err(e) => return unavailable(&e),
    };
    let done = match q.done.as_deref() {
        Some("password") => Some("Your password was changed. You were signed out everywhere else."),
        Some("notifications") => Some("Your email choices were saved."),
        Some("two_factor_off") => Some("Two-factor sign-in is off. We emailed you about it."),
        _ => None,
    };
    let required_by = q.required_by.as_deref();
    account_page(
        &state,
        &parts,
        user,
        StatusCode::OK,
        done,
        None,
        required_by,
    )
    .await
}

/// "26 Nov 2026".
fn day(at: time::OffsetDateTime) -> String {
    at.date()
        .format(time::macros::format_description!(
            "[day padding:none] [month repr:short] [year]"
        ))
        .unwrap_or_else(|_| at.date().to_string())
}

/// The account page: `required_by` is the slug of an org that sent the person here to turn
/// two-factor sign-in on (named on the page only if they belong to it).
pub(crate) async fn account_page(
    state: &AppState,
    parts: &Parts,
    user: app::ports::User,
    status: StatusCode,
    done: Option<&'static str>,
    error: Option<(AccountForm, String)>,
    required_by: Option<&str>,
) -> Response {
    let orgs = match app::sessions::my_orgs_with_settings(state, &user.id).await {
        Ok(orgs) => orgs,
        Err(e) => return unavailable(&e),
    };
    let prefs = match app::account::notification_prefs(state, &user.id).await {
        Ok(prefs) => prefs,
        Err(e) => return unavailable(&e),
    };
    let two_factor = match app::two_factor::status(state, &user.id).await {
        Ok(status) => status,
        Err(e) => return unavailable(&e),
    };
    let required_by = orgs
        .iter()
        .filter_map(|(m, org)| org.as_ref().filter(|_| Some(m.org.as_str()) == required_by))
        .find(|org| app::two_factor::held_back(org, &user))
        .map(|org| (org.slug.to_string(), org.name.clone()));
    let error_of = |form: AccountForm| {
        error
            .as_ref()
            .filter(|(f, _)| *f == form)
            .map(|(_, e)| e.clone())
    };
    let csrf = Csrf::for_form(&parts.headers, is_https(parts), state.ids.as_ref());
    let account = AccountPage {
        prefs,
        done,
        password_error: error_of(AccountForm::Password),
        notifications_error: error_of(AccountForm::Notifications),
        two_factor_error: error_of(AccountForm::TwoFactor),
        two_factor_since: two_factor.enabled_at.map(day),
        recovery_codes_left: two_factor.recovery_codes_left,
        required_by,
        orgs: orgs
            .into_iter()
            .map(|(m, org)| AccountOrg {
                needs_two_factor: org
                    .as_ref()
                    .is_some_and(|o| app::two_factor::held_back(o, &user)),
                name: org.map_or_else(|| m.org.to_string(), |o| o.name),
                role: m.role.as_str().to_owned(),
                admin_link: (m.role == domain::Role::Admin)
                    .then(|| format!("/admin/{}/payers", m.org)),
                methods_link: format!("/portal/orgs/{}/methods", m.org),
                customers: crate::payer_admin::joined(&m.customer_ids),
            })
            .collect(),
        name: user.name,
        email: user.email.to_string(),
        csrf: csrf.token,
    };
    with_cookie(page(status, &account), csrf.set)
}

/// A signed-in account form's start: CSRF, then the person (or the sign-in page).
pub(crate) async fn account_form(
    state: &AppState,
    parts: &Parts,
    csrf: &str,
) -> Result<(app::ports::User, String), Response> {
    if let Some(expired) = csrf_refused(&parts.headers, csrf) {
        return Err(expired);
    }
    let user = match signed_in_user(state, parts).await {
        Ok(Some(user)) => user,
        Ok(None) => return Err(sign_in_then(HOME)),
        Err(e) => return Err(unavailable(&e)),
    };
    let token = session_token(parts).unwrap_or_default().to_owned();
    Ok((user, token))
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_again: String,
}

/// `POST /account/password`: the current password, the new one twice.
async fn change_password(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    parts: Parts,
    Form(form): Form<PasswordForm>,
) -> Response {
    let (user, token) = match account_form(&state, &parts, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let refused = |status, error: String| {
        account_page(
            &state,
            &parts,
            user.clone(),
            status,
            None,
            Some((AccountForm::Password, error)),
            None,
        )
    };
    if form.new_password != form.new_password_again {
        return refused(
            StatusCode::BAD_REQUEST,
            "The two new passwords are not the same.".into(),
        )
        .await;
    }
    let client = client.map(|ip| ip.to_string());
    let current = Secret::new(form.current_password);
    let new = Secret::new(form.new_password);
    let changed =
        app::account::change_password(&state, &user, &current, &new, &token, client.as_deref())
            .await;
    match changed {
        Ok(()) => Redirect::to("/account?done=password").into_response(),
        Err(ChangePasswordError::WrongPassword) => {
            refused(
                StatusCode::FORBIDDEN,
                "The current password is not right.".into(),
            )
            .await
        }
        Err(ChangePasswordError::TooMany(wait)) => {
            let minutes = (wait.whole_seconds() + 59) / 60;
            let error = format!(
                "Too many wrong passwords from here. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            refused(StatusCode::TOO_MANY_REQUESTS, error).await
        }
        Err(ChangePasswordError::Weak(e)) => {
            refused(StatusCode::BAD_REQUEST, format!("The new password: {e}.")).await
        }
        Err(ChangePasswordError::Store(e)) => unavailable(&e),
    }
}

/// `POST /account/logout-everywhere`: every session of the person ends, this one too.
async fn sign_out_everywhere(
    State(state): State<AppState>,
    Transport { https }: Transport,
    parts: Parts,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (user, token) = match account_form(&state, &parts, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    if let Err(e) = app::account::sign_out_everywhere(&state, &user.id, Some(&token)).await {
        return unavailable(&e);
    }
    let clear = [(header::SET_COOKIE, session_clear_cookie(https))];
    (clear, Redirect::to("/login")).into_response()
}

/// The email choices as a form posts them: a ticked box is present, an unticked one absent.
#[derive(Deserialize)]
struct NotificationsForm {
    #[serde(default)]
    csrf: String,
    receipts: Option<String>,
    payment_failures: Option<String>,
    upcoming_debits: Option<String>,
    expiring_cards: Option<String>,
}

/// `POST /account/notifications`: which emails the person wants.
async fn save_notifications(
    State(state): State<AppState>,
    parts: Parts,
    Form(form): Form<NotificationsForm>,
) -> Response {
    let (user, _) = match account_form(&state, &parts, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let prefs = NotificationPrefs {
        receipts: form.receipts.is_some(),
        payment_failures: form.payment_failures.is_some(),
        upcoming_debits: form.upcoming_debits.is_some(),
        expiring_cards: form.expiring_cards.is_some(),
    };
    match app::account::set_notification_prefs(&state, &user.id, &prefs).await {
        Ok(()) => Redirect::to("/account?done=notifications").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "notification preferences not saved");
            let error = "Your choices could not be saved just now. Please try again.".to_owned();
            account_page(
                &state,
                &parts,
                user,
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                Some((AccountForm::Notifications, error)),
                None,
            )
            .await
        }
    }
}

pub(crate) fn pages() -> Router<AppState> {
    Router::new()
        .route("/login", get(show).post(submit))
        .route("/logout", post(sign_out))
        .route("/account", get(account))
        .route("/account/password", post(change_password))
        .route("/account/logout-everywhere", post(sign_out_everywhere))
        .route("/account/notifications", post(save_notifications))
}

/// `POST /api/me/password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    #[schema(format = Password)]
    pub current_password: String,
    #[schema(format = Password)]
    pub new_password: String,
}

/// Changes the signed-in person's password: the current one must be right (a wrong one counts
/// against the sign-in limits). Every other session ends; this one stays. An email tells them.
#[utoipa::path(
    post,
    path = "/api/me/password",
    tag = "portal",
    request_body = PasswordBody,
    responses(
        (status = 204, description = "changed; every other session ended"),
        (status = 400, description = "the new password does not meet the rules", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the current password is not right", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many failed attempts from here", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn api_change_password(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    signed_in: SignedIn,
    parts: Parts,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Response {
    let token = session_token(&parts).unwrap_or_default();
    let client = client.map(|ip| ip.to_string());
    let current = Secret::new(body.current_password);
    let new = Secret::new(body.new_password);
    let changed = app::account::change_password(
        &state,
        &signed_in.user,
        &current,
        &new,
        token,
        client.as_deref(),
    )
    .await;
    match changed {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(ChangePasswordError::WrongPassword) => Problem::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "The current password is not right",
            "the current password is not right",
        )
        .into_response(),
        Err(e @ ChangePasswordError::TooMany(wait)) => {
            let retry_after = [(header::RETRY_AFTER, wait.whole_seconds().to_string())];
            let problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "Too many failed attempts",
                e.to_string(),
            );
            (retry_after, problem).into_response()
        }
        Err(ChangePasswordError::Weak(e)) => Problem::new(
            StatusCode::BAD_REQUEST,
            "weak_password",
            "The new password does not meet the rules",
            e.to_string(),
        )
        .into_response(),
        Err(ChangePasswordError::Store(e)) => Problem::from(e).into_response(),
    }
}

/// Signs the person out everywhere: every session of theirs ends, this one too, and its cookie
/// is cleared.
#[utoipa::path(
    post,
    path = "/api/logout-everywhere",
    tag = "portal",
    responses(
        (status = 204, description = "every session ended"),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn api_logout_everywhere(
    State(state): State<AppState>,
    signed_in: SignedIn,
    parts: Parts,
) -> Result<Response, Problem> {
    let token = session_token(&parts);
    app::account::sign_out_everywhere(&state, &signed_in.user.id, token).await?;
    let clear = [(header::SET_COOKIE, session_clear_cookie(signed_in.https))];
    Ok((StatusCode::NO_CONTENT, clear).into_response())
}

/// Which emails the person wants (all on until changed). Receipts to an address that is no
/// user's always go.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    pub receipts: bool,
    pub payment_failures: bool,
    pub upcoming_debits: bool,
    pub expiring_cards: bool,
}

impl From<NotificationPrefs> for Notifications {
    fn from(p: NotificationPrefs) -> Self {
        Notifications {
            receipts: p.receipts,
            payment_failures: p.payment_failures,
            upcoming_debits: p.upcoming_debits,
            expiring_cards: p.expiring_cards,
        }
    }
}

/// The signed-in person's email choices.
#[utoipa::path(
    get,
    path = "/api/me/notifications",
    tag = "portal",
    responses(
        (status = 200, description = "the email choices", body = Notifications),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_notifications(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<Notifications>, Problem> {
    let prefs = app::account::notification_prefs(&state, &signed_in.user.id).await?;
    Ok(Json(prefs.into()))
}

/// Replaces the signed-in person's email choices (all four fields).
#[utoipa::path(
    put,
    path = "/api/me/notifications",
    tag = "portal",
    request_body = Notifications,
    responses(
        (status = 200, description = "saved", body = Notifications),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put_notifications(
    State(state): State<AppState>,
    signed_in: SignedIn,
    ApiJson(body): ApiJson<Notifications>,
) -> Result<Json<Notifications>, Problem> {
    let prefs = NotificationPrefs {
        receipts: body.receipts,
        payment_failures: body.payment_failures,
        upcoming_debits: body.upcoming_debits,
        expiring_cards: body.expiring_cards,
    };
    app::account::set_notification_prefs(&state, &signed_in.user.id, &prefs).await?;
    Ok(Json(prefs.into()))
}

/// The account's JSON routes (merged into `portal::routes`).
pub(crate) fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api_change_password))
        .routes(routes!(api_logout_everywhere))
        .routes(routes!(get_notifications, put_notifications))
}
