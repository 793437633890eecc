//! The payment methods page of `save-method`: `GET /portal/orgs/{org}/methods` lists the signed-in
//! payer's saved cards and bank accounts, with forms to make one the default or remove it, and a
//! form that saves a new one. Card and bank details go from the browser to the gateway's
//! tokenization script, exactly as on the Pay Now page; only the token is posted (to the JSON
//! API, with the authority the payer accepted).

use askama::Template;
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use domain::{MethodId, Org, OrgSlug};
use serde::Deserialize;

use app::methods::{MethodError, MethodKind, MethodPatch};
use app::ports::User;

use crate::AppState;
use crate::html::{
    CsrfForm, GatewayScripts, Tokenizing, csrf_refused, gateway_unavailable, message, not_set_up,
    page, tokenizing, unavailable, with_cookie,
};
use crate::pages::method_label;
use crate::session::{Csrf, is_https, member_page};

fn methods_path(org: &OrgSlug) -> String {
    format!("/portal/orgs/{org}/methods")
}

fn not_found() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "We could not find that page",
        "Check the address, or sign in with the account that was invited to this organisation.",
    )
}

/// The signed-in member of the org in the URL, or the response to give instead.
async fn member_of(state: &AppState, parts: &Parts, org: &str) -> Result<(User, Org), Response> {
    let (user, org, _) = member_page(state, parts, org, methods_path, not_found).await?;
    Ok((user, org))
}

struct MethodRow {
    id: String,
    label: String,
    is_default: bool,
    automatic: bool,
    used_by: String,
}

#[derive(Template)]
#[template(path = "methods.html")]
struct MethodsPage {
    org_name: String,
    org_slug: String,
    user_name: String,
    csrf: String,
    notice: Option<&'static str>,
    error: Option<String>,
    methods: Vec<MethodRow>,
    card_terms: String,
    bank_terms: String,
    terms_version: &'static str,
    /// The org's gateway's tokenization scripts; None: no form, `not_set_up` says why.
    gateway: Option<GatewayScripts>,
    not_set_up: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "saved" => "Saved.",
        "existing" => "You had saved these details already; nothing new was added.",
        "default" => "That is your default now.",
        "removed" => "Removed.",
        _ => return None,
    })
}

async fn render(
    state: &AppState,
    parts: &Parts,
    (user, org): (User, Org),
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Response {
    let methods = match app::methods::list(state, &org.slug, &user.id).await {
        Ok(methods) => methods,
        Err(e) => return unavailable(&e),
    };
    let (gateway, note) = match tokenizing(state, &org.slug).await {
        Tokenizing::Ready(scripts) => (Some(scripts), None),
        Tokenizing::NotSetUp => (None, Some(not_set_up(&org.name))),
        Tokenizing::Unavailable => return gateway_unavailable(),
    };
    let csrf = Csrf::for_form(&parts.headers, is_https(parts), state.ids.as_ref());
    let view = MethodsPage {
        card_terms: app::methods::terms(MethodKind::Card, &org.name).text,
        bank_terms: app::methods::terms(MethodKind::Bank, &org.name).text,
        terms_version: app::methods::TERMS_VERSION,
        org_slug: org.slug.to_string(),
        org_name: org.name,
        user_name: user.name,
        csrf: csrf.token,
        notice,
        error,
        methods: methods
            .iter()
            .map(|m| MethodRow {
                id: m.id.to_string(),
                label: method_label(m),
                is_default: m.is_default,
                automatic: m.mandate.is_some(),
                used_by: m.used_by.join(", "),
            })
            .collect(),
        gateway,
        not_set_up: note,
    };
    let response = page(status, &view);
    let response = match &view.gateway {
        Some(scripts) => scripts.with_csp(response),
        None => response,
    };
    with_cookie(response, csrf.set)
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

/// `GET /portal/orgs/{org}/methods`
async fn show(
    State(state): State<AppState>,
    parts: Parts,
    Path(org): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    match member_of(&state, &parts, &org).await {
        Ok(member) => {
            let notice = notice(done.done.as_deref());
            render(&state, &parts, member, StatusCode::OK, notice, None).await
        }
        Err(response) => response,
    }
}

/// `POST /portal/orgs/{org}/methods/{id}/{action}`: make it the default, or remove it.
async fn act(
    State(state): State<AppState>,
    parts: Parts,
    Path((org, id, action)): Path<(String, String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let member = match member_of(&state, &parts, &org).await {
        Ok(member) => member,
        Err(response) => return response,
    };
    if let Some(expired) = csrf_refused(&parts.headers, &form.csrf) {
        return expired;
    }
    let Ok(id) = MethodId::parse(&id) else {
        return not_found();
    };
    let (slug, user) = (member.1.slug.clone(), member.0.id.clone());
    let result = match action.as_str() {
        "default" => {
            let patch = MethodPatch {
                make_default: Some(true),
                ..MethodPatch::default()
            };
            app::methods::update(&state, &slug, &user, &id, patch)
                .await
                .map(|_| "default")
        }
        "remove" => app::methods::remove(&state, &slug, &user, &id)
            .await
            .map(|()| "removed"),
        _ => return not_found(),
    };
    match result {
        Ok(done) => Redirect::to(&format!("{}?done={done}", methods_path(&slug))).into_response(),
        Err(MethodError::NotFound) => not_found(),
        Err(e @ MethodError::InUse(_)) => {
            let error = app::notices::capitalised(&e.to_string());
            render(
                &state,
                &parts,
                member,
                StatusCode::CONFLICT,
                None,
                Some(error),
            )
            .await
        }
        Err(e) => unavailable(&e),
    }
}

pub(crate) fn pages() -> Router<AppState> {
    Router::new()
        .route("/portal/orgs/{org}/methods", get(show))
        .route("/portal/orgs/{org}/methods/{id}/{action}", post(act))
}
