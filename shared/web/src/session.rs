//! Sessions in cookies, and CSRF for form posts.
//!
//! The session cookie is HttpOnly and SameSite=Lax; over HTTPS (every deployed request) it is
//! also Secure and named `__Host-session`, which browsers only accept from the host itself
//! with Path=/. The local stack serves plain HTTP on 127.0.0.1, so there it is `session`.
//! Form posts carry a CSRF token that must equal the one in the `csrf` cookie (double submit):
//! another site can make a browser post a form, but cannot read or set our cookie.

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use axum::response::IntoResponse;
use domain::Secret;
use subtle::ConstantTimeEq;

use crate::client::Https;
use crate::{AppState, Problem};

pub const LOCAL_SESSION_COOKIE: &str = "session";
pub const SECURE_SESSION_COOKIE: &str = "__Host-session";
/// The second step of a sign-in (two-factor sign-in on: the password was right, the code is
/// still to come), as the session cookie is named over HTTP and over HTTPS.
pub const LOCAL_SECOND_STEP_COOKIE: &str = "signin_step";
pub const SECURE_SECOND_STEP_COOKIE: &str = "__Host-signin-step";
const CSRF_COOKIE: &str = "csrf";

/// Whether the request arrived over HTTPS (the host says so: the Lambda runtime).
pub fn is_https(parts: &Parts) -> bool {
    parts.extensions.get::<Https>().is_some()
}

pub fn session_cookie_name(https: bool) -> &'static str {
    if https {
        SECURE_SESSION_COOKIE
    } else {
        LOCAL_SESSION_COOKIE
    }
}

/// A cookie's value from the request's Cookie headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A Set-Cookie value: HttpOnly, SameSite=Lax, Secure over HTTPS; `max_age` 0 removes it.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, https: bool) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("cookie values are header-safe")
}

/// The Set-Cookie of a new session.
pub fn session_set_cookie(token: &Secret<String>, https: bool) -> HeaderValue {
    let max_age = app::sessions::ABSOLUTE.whole_seconds();
    set_cookie(
        session_cookie_name(https),
        token.expose(),
        "/",
        max_age,
        https,
    )
}

pub fn session_clear_cookie(https: bool) -> HeaderValue {
    set_cookie(session_cookie_name(https), "", "/", 0, https)
}

fn second_step_cookie_name(https: bool) -> &'static str {
    if https {
        SECURE_SECOND_STEP_COOKIE
    } else {
        LOCAL_SECOND_STEP_COOKIE
    }
}

/// The Set-Cookie of a sign-in's second step: as long as the step lasts (5 minutes).
pub fn second_step_set_cookie(token: &Secret<String>, https: bool) -> HeaderValue {
    let max_age = app::two_factor::SECOND_STEP_FOR.whole_seconds();
    set_cookie(
        second_step_cookie_name(https),
        token.expose(),
        "/",
        max_age,
        https,
    )
}

pub fn second_step_clear_cookie(https: bool) -> HeaderValue {
    set_cookie(second_step_cookie_name(https), "", "/", 0, https)
}

/// The second-step token the request presents, if any.
pub fn second_step_token(parts: &Parts) -> Option<&str> {
    cookie(&parts.headers, second_step_cookie_name(is_https(parts))).filter(|t| !t.is_empty())
}

/// The session token the request presents, if any.
pub fn session_token(parts: &Parts) -> Option<&str> {
    cookie(&parts.headers, session_cookie_name(is_https(parts))).filter(|t| !t.is_empty())
}

/// A signed-in person (a live session).
///
/// On a route of an org's payer API (`/api/me/orgs/{org}/...`, whichever function serves it) it
/// also holds the org's requirement of two-factor sign-in: a member of an org that requires it,
/// who has not turned it on, gets 403 `two_factor_required` (a non-member gets whatever the route
/// answers strangers). Reads for that: none when the person has two-factor on; else the org
/// item, and the membership only when the org requires it.
pub struct SignedIn {
    pub user: app::ports::User,
    pub https: bool,
}

/// The org of a payer-API route, from the path the router matched.
fn payer_api_org(parts: &Parts) -> Option<domain::OrgSlug> {
    let route = parts.extensions.get::<axum::extract::MatchedPath>()?;
    if !route.as_str().starts_with("/api/me/orgs/{org}") {
        return None;
    }
    let slug = parts
        .uri
        .path()
        .strip_prefix("/api/me/orgs/")?
        .split('/')
        .next()?;
    domain::OrgSlug::parse(slug).ok()
}

/// 403 for a member of an org that requires two-factor sign-in, who has not turned it on.
pub fn two_factor_required() -> Problem {
    Problem::new(
        axum::http::StatusCode::FORBIDDEN,
        "two_factor_required",
        "Two-factor sign-in required",
        "this organisation requires two-factor sign-in: turn it on in your account (/account), then try again",
    )
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let user = signed_in_user(state, parts)
            .await?
            .ok_or_else(Problem::unauthorized)?;
        if let Some(org) = payer_api_org(parts)
            && app::two_factor::held_back_in(state, &org, &user).await?
        {
            return Err(two_factor_required());
        }
        Ok(SignedIn {
            user,
            https: is_https(parts),
        })
    }
}

/// The signed-in person if there is one (a guest is None): for routes that serve both.
pub struct MaybeSignedIn(pub Option<app::ports::User>);

impl FromRequestParts<AppState> for MaybeSignedIn {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        Ok(MaybeSignedIn(signed_in_user(state, parts).await?))
    }
}

/// The person whose live session the request presents, if any.
pub async fn signed_in_user(
    state: &AppState,
    parts: &Parts,
) -> Result<Option<app::ports::User>, app::ports::StoreError> {
    match session_token(parts) {
        Some(token) => app::sessions::resolve(state, token).await,
        None => Ok(None),
    }
}

/// The CSRF token of this browser (from its cookie), or a new one to set with the form.
pub struct Csrf {
    pub token: String,
    /// Set-Cookie to send when the token is new.
    pub set: Option<HeaderValue>,
}

impl Csrf {
    pub fn for_form(parts_headers: &HeaderMap, https: bool, ids: &dyn app::ports::Ids) -> Csrf {
        match cookie(parts_headers, CSRF_COOKIE).filter(|t| t.len() >= 32) {
            Some(token) => Csrf {
                token: token.to_owned(),
                set: None,
            },
            None => {
                let token = ids.secret().expose().clone();
                let set = set_cookie(CSRF_COOKIE, &token, "/", 60 * 60 * 12, https);
                Csrf {
                    token,
                    set: Some(set),
                }
            }
        }
    }

    /// Whether a posted form's token matches the browser's cookie.
    pub fn verify(headers: &HeaderMap, posted: &str) -> bool {
        cookie(headers, CSRF_COOKIE).is_some_and(|expected| {
            expected.len() >= 32 && bool::from(expected.as_bytes().ct_eq(posted.as_bytes()))
        })
    }
}

/// Whether the request came over HTTPS, as an extractor.
pub struct Transport {
    pub https: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Transport {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Transport {
            https: is_https(parts),
        })
    }
}

/// For a page of the org in the URL: the signed-in person, the org and their membership; or the
/// response to give instead: the sign-in page (coming back to `back`), `not_found` for
/// anyone who is not a member (nobody learns whether the org exists), or the account page for
/// a member of an org that requires two-factor sign-in who has not turned it on (no read of its
/// own: the org and the user are read here anyway).
pub(crate) async fn member_page(
    state: &AppState,
    parts: &Parts,
    org: &str,
    back: fn(&domain::OrgSlug) -> String,
    not_found: fn() -> axum::response::Response,
) -> Result<(app::ports::User, domain::Org, domain::Membership), axum::response::Response> {
    let Ok(slug) = domain::OrgSlug::parse(org) else {
        return Err(not_found());
    };
    let user = match signed_in_user(state, parts).await {
        Ok(Some(user)) => user,
        Ok(None) => return Err(crate::sign_in::sign_in_then(&back(&slug))),
        Err(e) => return Err(crate::html::unavailable(&e)),
    };
    match app::methods::membership(state, &slug, &user.id).await {
        Ok((org, _)) if app::two_factor::held_back(&org, &user) => {
            let to = format!("/account?required_by={}#two-factor", org.slug);
            Err(axum::response::Redirect::to(&to).into_response())
        }
        Ok((org, membership)) => Ok((user, org, membership)),
        Err(app::methods::MethodError::NotFound) => Err(not_found()),
        Err(e) => Err(crate::html::unavailable(&e)),
    }
}
