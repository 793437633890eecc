//! The `accept-invite` function: the link from the invitation email, the accept page, and the
//! accept API. The token leaves the URL on the first request: it moves into a short-lived
//! HttpOnly cookie scoped to `/invite`, and the browser is sent to `/invite` (pages send
//! Referrer-Policy: no-referrer, so the token never reaches another site either).

use askama::Template;
use axum::{
    Form, Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use domain::Secret;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use app::invitations::{AcceptError, AcceptForm, LinkError, OpenError};
use app::sessions::SignIn;

use crate::html::{message, page, unavailable, with_cookie};
use crate::session::{
    Csrf, Transport, cookie, second_step_set_cookie, session_set_cookie, set_cookie,
};
use crate::{ApiJson, AppState, Problem};

const INVITE_COOKIE: &str = "invite";
/// Long enough to fill in the form; the invitation's own expiry still applies.
const INVITE_COOKIE_AGE: i64 = 30 * 60;

#[derive(Template)]
#[template(path = "invite_accept.html")]
struct AcceptPage {
    org_name: String,
    invited_by: String,
    email: String,
    customers: String,
    existing_user: bool,
    csrf: String,
    name: String,
    error: Option<String>,
}

/// The clear page for a link that does not work, saying what to do.
fn link_page(e: LinkError) -> Response {
    let (status, headline, what) = match e {
        LinkError::Unknown => (
            StatusCode::NOT_FOUND,
            "This invitation link is not valid",
            "Check that you opened the whole link from the email, or ask the business that invited you to send a new invitation.",
        ),
        LinkError::Used => (
            StatusCode::GONE,
            "This invitation was accepted already",
            "Sign in with the email address it was sent to. Forgot the password? Ask the business to invite you again.",
        ),
        LinkError::Revoked => (
            StatusCode::GONE,
            "This invitation was withdrawn",
            "The business that sent it withdrew it. Contact them if you still need access.",
        ),
        LinkError::Reissued => (
            StatusCode::GONE,
            "A newer invitation was sent",
            "This link was replaced by a newer one: use the link in the most recent invitation email.",
        ),
        LinkError::Expired => (
            StatusCode::GONE,
            "This invitation has expired",
            "Ask the business that invited you to send it again.",
        ),
    };
    message(status, headline, what)
}

/// `GET /invite/{token}`: a valid link moves its token into a cookie and on to `/invite`.
async fn follow_link(
    State(state): State<AppState>,
    Transport { https }: Transport,
    Path(token): Path<String>,
) -> Response {
    match app::invitations::open(&state, &token).await {
        Ok(_) => {
            let jar = set_cookie(INVITE_COOKIE, &token, "/invite", INVITE_COOKIE_AGE, https);
            ([(header::SET_COOKIE, jar)], Redirect::to("/invite")).into_response()
        }
        Err(OpenError::Link(e)) => link_page(e),
        Err(OpenError::Store(e)) => unavailable(&e),
    }
}

async fn accept_page(
    state: &AppState,
    headers: &HeaderMap,
    https: bool,
    error: Option<(StatusCode, String)>,
    name: String,
) -> Response {
    let Some(token) = cookie(headers, INVITE_COOKIE).filter(|t| !t.is_empty()) else {
        return link_page(LinkError::Unknown);
    };
    let opened = match app::invitations::open(state, token).await {
        Ok(opened) => opened,
        Err(OpenError::Link(e)) => return link_page(e),
        Err(OpenError::Store(e)) => return unavailable(&e),
    };
    let csrf = Csrf::for_form(headers, https, state.ids.as_ref());
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    let invitation = &opened.invitation;
    let accept = AcceptPage {
        org_name: opened.org_name,
        invited_by: invitation.invited_by.clone(),
        email: invitation.email.to_string(),
        customers: crate::payer_admin::joined(&invitation.customer_ids),
        existing_user: opened.existing_user.is_some(),
        csrf: csrf.token,
        name: if name.is_empty() {
            invitation.name.clone()
        } else {
            name
        },
        error,
    };
    with_cookie(page(status, &accept), csrf.set)
}

/// `GET /invite`: whom the invitation is for, which org, and the form to accept it.
async fn show(
    State(state): State<AppState>,
    Transport { https }: Transport,
    headers: HeaderMap,
) -> Response {
    accept_page(&state, &headers, https, None, String::new()).await
}

#[derive(Deserialize)]
struct AcceptFormBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    password: String,
    accept_terms: Option<String>,
}

/// `POST /invite`: the form. CSRF-checked; on success the person is signed in.
async fn submit(
    State(state): State<AppState>,
    Transport { https }: Transport,
    headers: HeaderMap,
    Form(form): Form<AcceptFormBody>,
) -> Response {
    if !Csrf::verify(&headers, &form.csrf) {
        return message(
            StatusCode::FORBIDDEN,
            "Please try again",
            "The form expired. Open the invitation link again.",
        );
    }
    let Some(token) = cookie(&headers, INVITE_COOKIE).map(str::to_owned) else {
        return link_page(LinkError::Unknown);
    };
    let accept = AcceptForm {
        name: Some(form.name.clone()),
        password: Secret::new(form.password),
        accept_terms: form.accept_terms.is_some(),
    };
    match app::invitations::accept(&state, &token, accept).await {
        Ok(user) => match app::sessions::sign_in_as(&state, user).await {
            // An account with two-factor sign-in: joined, and signed in once the code is given.
            Ok(SignIn::SecondStep(step)) => {
                let to = crate::two_factor::code_page_then("/portal");
                let mut response = Redirect::to(&to).into_response();
                let cookies = response.headers_mut();
                cookies.append(header::SET_COOKIE, second_step_set_cookie(&step, https));
                cookies.append(
                    header::SET_COOKIE,
                    set_cookie(INVITE_COOKIE, "", "/invite", 0, https),
                );
                response
            }
            Ok(SignIn::Session(session, user)) => {
                let welcome = format!(
                    "Welcome, {}. You can now see and pay your invoices.",
                    user.name
                );
                let mut response = message(StatusCode::OK, "You are in", &welcome);
                let cookies = response.headers_mut();
                cookies.append(header::SET_COOKIE, session_set_cookie(&session, https));
                cookies.append(
                    header::SET_COOKIE,
                    set_cookie(INVITE_COOKIE, "", "/invite", 0, https),
                );
                response
            }
            Err(e) => unavailable(&e),
        },
        Err(AcceptError::Link(e)) => link_page(e),
        Err(AcceptError::Store(e)) => unavailable(&e),
        Err(e) => {
            let error = Some((StatusCode::UNPROCESSABLE_ENTITY, e.to_string()));
            accept_page(&state, &headers, https, error, form.name).await
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// The token from the invitation link.
    pub token: String,
    /// A new person's name (ignored for an existing account).
    pub name: Option<String>,
    /// A new person's new password, or an existing user's password.
    #[schema(format = Password)]
    pub password: String,
    /// A new person must accept the terms.
    #[serde(default)]
    pub accept_terms: bool,
}

fn accept_problem(e: AcceptError) -> Problem {
    match e {
        AcceptError::Link(link) => {
            let status = if link == LinkError::Unknown {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::GONE
            };
            let code = match link {
                LinkError::Unknown => "invitation_unknown",
                LinkError::Used => "invitation_used",
                LinkError::Revoked => "invitation_revoked",
                LinkError::Reissued => "invitation_reissued",
                LinkError::Expired => "invitation_expired",
            };
            Problem::new(
                status,
                code,
                "The invitation cannot be accepted",
                link.to_string(),
            )
        }
        AcceptError::WrongPassword => Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "Sign-in failed",
            e.to_string(),
        ),
        AcceptError::AlreadyMember => Problem::new(
            StatusCode::CONFLICT,
            "already_member",
            "A member already",
            e.to_string(),
        ),
        AcceptError::Store(cause) => cause.into(),
        other => Problem::invalid(other.to_string()),
    }
}

/// Accepts an invitation (for clients other than the page); signs the person in.
#[utoipa::path(
    post,
    path = "/api/invitations/accept",
    tag = "accept-invite",
    request_body = AcceptBody,
    responses(
        (status = 201, description = "accepted; the session cookie is set (for an existing account with two-factor sign-in on, the second step's cookie instead: `POST /api/login/two-factor` with a code then signs in)", body = crate::portal::Me),
        (status = 401, description = "wrong password for the existing account", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "used, revoked, reissued or expired", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn accept_api(
    State(state): State<AppState>,
    Transport { https }: Transport,
    ApiJson(body): ApiJson<AcceptBody>,
) -> Result<Response, Problem> {
    let form = AcceptForm {
        name: body.name,
        password: Secret::new(body.password),
        accept_terms: body.accept_terms,
    };
    let user = app::invitations::accept(&state, &body.token, form)
        .await
        .map_err(accept_problem)?;
    let (cookie, user) = match app::sessions::sign_in_as(&state, user.clone()).await? {
        SignIn::Session(session, user) => (session_set_cookie(&session, https), user),
        SignIn::SecondStep(step) => (second_step_set_cookie(&step, https), user),
    };
    let me = crate::portal::me_of(&state, user).await?;
    let cookie = [(header::SET_COOKIE, cookie)];
    Ok((StatusCode::CREATED, cookie, Json(me)).into_response())
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(accept_api))
}

pub(crate) fn pages() -> Router<AppState> {
    Router::new()
        .route("/invite/{token}", get(follow_link))
        .route("/invite", get(show).post(submit))
}

/// The `accept-invite` function's router.
pub fn router(state: AppState) -> Router {
    let (api, _) = routes().split_for_parts();
    let routes = crate::base_routes().merge(api).merge(pages());
    crate::layers::common(routes).with_state(state)
}
