//! The Payer Admin page of `admin`: `GET /admin/{org}/payers` lists the org's people and
//! invitations with their status, and its forms invite, resend and revoke. Only a signed-in admin
//! of the org sees it; someone signed out goes to the sign-in page and comes back; anyone else
//! gets the same "not found" as for an org that does not exist. Every form is CSRF-checked and
//! answers with a redirect back to the page (a reload never posts twice).

use askama::Template;
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use domain::{CustomerId, InvitationId, Org, OrgSlug, Role};
use serde::Deserialize;

use app::invitations::{InviteCommand, InviteError};
use app::ports::{InvitationState, User};

use crate::AppState;
use crate::html::{CsrfForm, csrf_refused, message, page, unavailable, with_cookie};
use crate::session::{Csrf, is_https, member_page};

/// Customer ids as the pages show them: "C-1, C-2".
pub(crate) fn joined(ids: &[CustomerId]) -> String {
    ids.iter()
        .map(CustomerId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn payers_path(org: &OrgSlug) -> String {
    format!("/admin/{org}/payers")
}

fn no_such_org() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "We could not find that page",
        "Check the address, or sign in with an account that administers this organisation.",
    )
}

/// The signed-in admin of the org in the URL, or the response to give instead.
async fn admin_of(state: &AppState, parts: &Parts, org: &str) -> Result<(User, Org), Response> {
    match member_page(state, parts, org, payers_path, no_such_org).await? {
        (user, org, membership) if membership.role == Role::Admin => Ok((user, org)),
        _ => Err(no_such_org()),
    }
}

struct PersonRow {
    name: String,
    email: String,
    role: &'static str,
    customers: String,
}

struct InvitationRow {
    id: String,
    name: String,
    email: String,
    role: &'static str,
    customers: String,
    status: &'static str,
    expires: String,
    /// Pending (also past its expiry): a new link can be sent.
    can_resend: bool,
    can_revoke: bool,
}

/// What the invite form held, to show again with its error.
#[derive(Default, Deserialize)]
struct InviteFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    customer_ids: String,
    #[serde(default)]
    role: String,
}

#[derive(Template)]
#[template(path = "payer_admin.html")]
struct PayerAdminPage {
    org_name: String,
    org_slug: String,
    admin_name: String,
    csrf: String,
    notice: Option<&'static str>,
    error: Option<String>,
    form: InviteFields,
    people: Vec<PersonRow>,
    invitations: Vec<InvitationRow>,
}

/// What a form did, for the notice after its redirect: a fixed set, so that no text of the
/// request is ever echoed into the page.
fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "invited" => "Invitation sent.",
        "reissued" => {
            "This person had a pending invitation: it was sent again with a new link, and the old link no longer works."
        }
        "resent" => "Invitation sent again with a new link; the old link no longer works.",
        "revoked" => "Invitation withdrawn; its link no longer works.",
        "not_emailed" => {
            "The invitation was saved but its email could not be sent just now. Use Resend to try again."
        }
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
    form: InviteFields,
) -> Response {
    let people = app::orgs::members(state.members.as_ref(), state.users.as_ref(), &org.slug);
    let invitations = state.invitations.list_invitations(&org.slug);
    let (people, invitations) = match tokio::try_join!(people, invitations) {
        Ok(found) => found,
        Err(e) => return unavailable(&e),
    };
    let now = state.clock.now();
    let csrf = Csrf::for_form(&parts.headers, is_https(parts), state.ids.as_ref());
    let view = PayerAdminPage {
        org_slug: org.slug.to_string(),
        org_name: org.name,
        admin_name: user.name,
        csrf: csrf.token,
        notice,
        error,
        form,
        people: people
            .into_iter()
            .map(|m| PersonRow {
                name: m.user.name,
                email: m.user.email.to_string(),
                role: m.membership.role.as_str(),
                customers: joined(&m.membership.customer_ids),
            })
            .collect(),
        invitations: invitations
            .into_iter()
            .map(|i| {
                let pending = i.state == InvitationState::Pending;
                InvitationRow {
                    id: i.id.to_string(),
                    status: i.status(now),
                    can_resend: pending,
                    can_revoke: pending && i.expires_at > now,
                    expires: i.expires_at.date().to_string(),
                    name: i.name,
                    email: i.email.to_string(),
                    role: i.role.as_str(),
                    customers: joined(&i.customer_ids),
                }
            })
            .collect(),
    };
    with_cookie(page(status, &view), csrf.set)
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

/// `GET /admin/{org}/payers`
async fn show(
    State(state): State<AppState>,
    parts: Parts,
    Path(org): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    match admin_of(&state, &parts, &org).await {
        Ok(admin) => {
            let notice = notice(done.done.as_deref());
            let form = InviteFields::default();
            render(&state, &parts, admin, StatusCode::OK, notice, None, form).await
        }
        Err(response) => response,
    }
}

fn back(org: &OrgSlug, done: &str) -> Response {
    Redirect::to(&format!("{}?done={done}", payers_path(org))).into_response()
}

/// A refused form: the page again, with what to fix (and the invite form as it was).
fn refusal(e: &InviteError) -> Result<(StatusCode, String), ()> {
    let status = match e {
        InviteError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        InviteError::AlreadyMember(_) | InviteError::NotPending(_) => StatusCode::CONFLICT,
        InviteError::NotFound => StatusCode::NOT_FOUND,
        InviteError::Store(_) => return Err(()),
    };
    Ok((status, app::notices::capitalised(&e.to_string())))
}

#[derive(Deserialize)]
struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    fields: InviteFields,
}

/// `POST /admin/{org}/payers/invitations`: the invite form.
async fn invite(
    State(state): State<AppState>,
    parts: Parts,
    Path(org): Path<String>,
    Form(form): Form<InviteForm>,
) -> Response {
    let admin = match admin_of(&state, &parts, &org).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    if let Some(expired) = csrf_refused(&parts.headers, &form.csrf) {
        return expired;
    }
    let fields = form.fields;
    let command = InviteCommand {
        org: admin.1.slug.clone(),
        email: fields.email.clone(),
        name: fields.name.clone(),
        customer_ids: fields
            .customer_ids
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        role: Some(fields.role.clone()).filter(|r| !r.is_empty()),
        invited_by: Some(admin.0.name.clone()),
    };
    match app::invitations::invite(&state, command).await {
        Ok(sent) if !sent.emailed => back(&admin.1.slug, "not_emailed"),
        Ok(sent) if sent.reissued => back(&admin.1.slug, "reissued"),
        Ok(_) => back(&admin.1.slug, "invited"),
        Err(e) => match refusal(&e) {
            Ok((status, error)) => {
                render(&state, &parts, admin, status, None, Some(error), fields).await
            }
            Err(()) => unavailable(&e),
        },
    }
}

/// `POST /admin/{org}/payers/invitations/{id}/{action}`: resend or revoke.
async fn act(
    State(state): State<AppState>,
    parts: Parts,
    Path((org, id, action)): Path<(String, String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let admin = match admin_of(&state, &parts, &org).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    if let Some(expired) = csrf_refused(&parts.headers, &form.csrf) {
        return expired;
    }
    let Ok(id) = InvitationId::parse(&id) else {
        return no_such_org();
    };
    let slug = admin.1.slug.clone();
    let result = match action.as_str() {
        "resend" => app::invitations::resend(&state, &slug, &id, Some(admin.0.name.clone()))
            .await
            .map(|sent| {
                if sent.emailed {
                    "resent"
                } else {
                    "not_emailed"
                }
            }),
        "revoke" => app::invitations::revoke(&state, &slug, &id)
            .await
            .map(|()| "revoked"),
        _ => return no_such_org(),
    };
    match result {
        Ok(done) => back(&slug, done),
        Err(e) => match refusal(&e) {
            Ok((status, error)) => {
                let form = InviteFields::default();
                render(&state, &parts, admin, status, None, Some(error), form).await
            }
            Err(()) => unavailable(&e),
        },
    }
}

pub(crate) fn pages() -> Router<AppState> {
    Router::new()
        .route("/admin/{org}/payers", get(show))
        .route("/admin/{org}/payers/invitations", post(invite))
        .route("/admin/{org}/payers/invitations/{id}/{action}", post(act))
}
