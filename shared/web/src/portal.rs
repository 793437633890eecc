//! The session part of `portal`: sign in, sign out, and who am I.

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use domain::Secret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use app::sessions::{LoginError, SignIn};

use crate::client::ClientAddr;
use crate::session::{
    SignedIn, Transport, is_https, second_step_set_cookie, session_clear_cookie,
    session_set_cookie, session_token,
};
use crate::{ApiJson, AppState, Problem};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub email: String,
    #[schema(format = Password)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeOrg {
    pub org: String,
    pub name: String,
    /// payer, staff or admin
    pub role: String,
    /// The customers a payer pays for.
    pub customer_ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub email: String,
    pub name: String,
    pub orgs: Vec<MeOrg>,
}

pub(crate) async fn me_of(state: &AppState, user: app::ports::User) -> Result<Me, Problem> {
    let orgs = app::sessions::my_orgs(state, &user.id)
        .await?
        .into_iter()
        .map(|(m, name)| MeOrg {
            org: m.org.to_string(),
            name,
            role: m.role.as_str().to_owned(),
            customer_ids: m.customer_ids.iter().map(|c| c.to_string()).collect(),
        })
        .collect();
    Ok(Me {
        id: user.id.to_string(),
        email: user.email.to_string(),
        name: user.name,
        orgs,
    })
}

/// Signs in: a new session in an HttpOnly cookie. An unknown email and a wrong password get the
/// same answer. For a person with two-factor sign-in on, a right password answers 401
/// `two_factor_code_needed` with a short-lived cookie instead: `POST /api/login/two-factor` with
/// a code then signs in.
#[utoipa::path(
    post,
    path = "/api/login",
    tag = "portal",
    request_body = LoginBody,
    responses(
        (status = 200, description = "signed in; the session cookie is set", body = Me),
        (status = 401, description = "the email or password is not right (`invalid_credentials`), or they are and a two-factor code is needed (`two_factor_code_needed`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many failed sign-ins from here", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Transport { https }: Transport,
    ApiJson(body): ApiJson<LoginBody>,
) -> Response {
    let client = client.map(|ip| ip.to_string());
    let password = Secret::new(body.password);
    match app::sessions::login(&state, &body.email, &password, client.as_deref()).await {
        Ok(SignIn::SecondStep(token)) => {
            let problem = Problem::new(
                StatusCode::UNAUTHORIZED,
                "two_factor_code_needed",
                "Enter your two-factor code",
                "the password is right; post a code of your authenticator app (or a recovery code) to /api/login/two-factor within 5 minutes",
            );
            let cookie = [(header::SET_COOKIE, second_step_set_cookie(&token, https))];
            (cookie, problem).into_response()
        }
        Ok(SignIn::Session(token, user)) => match me_of(&state, user).await {
            Ok(me) => (
                [(header::SET_COOKIE, session_set_cookie(&token, https))],
                Json(me),
            )
                .into_response(),
            Err(p) => p.into_response(),
        },
        Err(LoginError::Invalid) => Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "Sign-in failed",
            "the email or password is not right",
        )
        .into_response(),
        Err(e @ LoginError::TooMany(wait)) => {
            let retry_after = [(header::RETRY_AFTER, wait.whole_seconds().to_string())];
            let problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "Too many failed sign-ins",
                e.to_string(),
            );
            (retry_after, problem).into_response()
        }
        Err(LoginError::Store(e)) => Problem::from(e).into_response(),
    }
}

/// Signs out: the session ends on the server and its cookie is cleared.
#[utoipa::path(post, path = "/api/logout", tag = "portal", responses((status = 204, description = "signed out")))]
async fn logout(State(state): State<AppState>, request: Request) -> Result<Response, Problem> {
    let (parts, _) = request.into_parts();
    if let Some(token) = session_token(&parts) {
        app::sessions::logout(&state, token).await?;
    }
    let clear = [(header::SET_COOKIE, session_clear_cookie(is_https(&parts)))];
    Ok((StatusCode::NO_CONTENT, clear).into_response())
}

/// The signed-in person and their orgs with roles.
#[utoipa::path(
    get,
    path = "/api/me",
    tag = "portal",
    responses(
        (status = 200, description = "who is signed in", body = Me),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn me(State(state): State<AppState>, signed_in: SignedIn) -> Result<Json<Me>, Problem> {
    Ok(Json(me_of(&state, signed_in.user).await?))
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .merge(crate::sign_in::api_routes())
        .merge(crate::two_factor::api_routes())
        .merge(crate::schedules::routes())
        .merge(crate::payer_api::routes())
        .merge(crate::payer_payments::routes())
}

/// The `portal` function's router.
pub fn router(state: AppState) -> Router {
    let (api, _) = routes().split_for_parts();
    let routes = crate::base_routes()
        .merge(api)
        .merge(crate::sign_in::pages())
        .merge(crate::two_factor::pages())
        .merge(crate::portal_pages::pages())
        .merge(crate::autopay_pages::pages());
    crate::layers::common(routes).with_state(state)
}
