//! The pages of `portal` for people in a browser: the sign-in page (`/login`), signing out
//! (`/logout`), and the account page (`/account`) that lists a person's orgs. They run the same
//! use cases as the JSON API. After signing in the browser goes back to the page that sent it
//! (`next`), which must be a path on this site: never a way to send someone elsewhere.

use askama::Template;
use axum::{
    Form, Router,
    extract::{Query, State},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use domain::Secret;
use serde::Deserialize;

use app::sessions::LoginError;

use crate::AppState;
use crate::client::ClientAddr;
use crate::html::{CsrfForm, csrf_refused, page, unavailable, with_cookie};
use crate::session::{
    Csrf, Transport, is_https, session_clear_cookie, session_set_cookie, session_token,
    signed_in_user,
};

/// Where a browser goes when it has no `next`.
const HOME: &str = "/account";

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

fn sign_in_page(
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
        Ok((token, _)) => {
            let cookie = session_set_cookie(&token, is_https(&parts));
            ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
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

struct AccountOrg {
    name: String,
    role: String,
    /// The org's admin pages, for its admins.
    admin_link: Option<String>,
    methods_link: String,
    customers: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    name: String,
    email: String,
    orgs: Vec<AccountOrg>,
    csrf: String,
}

/// `GET /account`: who is signed in and the orgs they belong to, with a way to each org's
/// admin pages. (The payer dashboard will grow from here.)
async fn account(State(state): State<AppState>, parts: Parts) -> Response {
    let user = match signed_in_user(&state, &parts).await {
        Ok(Some(user)) => user,
        Ok(None) => return sign_in_then(HOME),
        Err(e) => return unavailable(&e),
    };
    let orgs = match app::sessions::my_orgs(&state, &user.id).await {
        Ok(orgs) => orgs,
        Err(e) => return unavailable(&e),
    };
    let csrf = Csrf::for_form(&parts.headers, is_https(&parts), state.ids.as_ref());
    let account = AccountPage {
        name: user.name,
        email: user.email.to_string(),
        orgs: orgs
            .into_iter()
            .map(|(m, name)| AccountOrg {
                name,
                role: m.role.as_str().to_owned(),
                admin_link: (m.role == domain::Role::Admin)
                    .then(|| format!("/admin/{}/payers", m.org)),
                methods_link: format!("/portal/orgs/{}/methods", m.org),
                customers: crate::payer_admin::joined(&m.customer_ids),
            })
            .collect(),
        csrf: csrf.token,
    };
    with_cookie(page(StatusCode::OK, &account), csrf.set)
}

pub(crate) fn pages() -> Router<AppState> {
    Router::new()
        .route("/login", get(show).post(submit))
        .route("/logout", post(sign_out))
        .route("/account", get(account))
}
