//! The `invite` function: an org's admin (session or API key) invites people by email, lists
//! the invitations with their status, resends (a new link; the old one stops working) and revokes.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
};
use domain::InvitationId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use app::invitations::{InviteCommand, InviteError, Sent};
use app::ports::Invitation;

use crate::auth::OrgAdmin;
use crate::{ApiJson, AppState, Problem};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    #[schema(example = "pat@harbor.test")]
    pub email: String,
    pub name: String,
    /// The customers (accounting system ids) a payer may pay for.
    #[serde(default)]
    pub customer_ids: Vec<String>,
    /// payer (default), staff or admin
    pub role: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub customer_ids: Vec<String>,
    /// pending, accepted, expired or revoked
    pub status: String,
    pub invited_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// Whether the email went out (false: resend it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emailed: Option<bool>,
    /// Whether an invitation that was pending already was reissued instead of a second one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reissued: Option<bool>,
}

pub(crate) fn view(i: Invitation, now: OffsetDateTime) -> InvitationView {
    InvitationView {
        id: i.id.to_string(),
        status: i.status(now).to_owned(),
        email: i.email.to_string(),
        name: i.name,
        role: i.role.as_str().to_owned(),
        customer_ids: i.customer_ids.iter().map(|c| c.to_string()).collect(),
        invited_by: i.invited_by,
        created_at: i.created_at,
        expires_at: i.expires_at,
        emailed: None,
        reissued: None,
    }
}

fn sent_view(sent: Sent, now: OffsetDateTime) -> InvitationView {
    InvitationView {
        emailed: Some(sent.emailed),
        reissued: Some(sent.reissued),
        ..view(sent.invitation, now)
    }
}

fn invite_problem(e: InviteError) -> Problem {
    match e {
        InviteError::Invalid(detail) => Problem::invalid(detail),
        InviteError::AlreadyMember(_) => Problem::new(
            StatusCode::CONFLICT,
            "already_member",
            "This person is a member already",
            e.to_string(),
        ),
        InviteError::NotFound => Problem::not_found("no such invitation"),
        InviteError::NotPending(_) => Problem::new(
            StatusCode::CONFLICT,
            "invitation_not_pending",
            "The invitation is not pending",
            e.to_string(),
        ),
        InviteError::Store(cause) => cause.into(),
    }
}

fn invitation_id(id: &str) -> Result<InvitationId, Problem> {
    InvitationId::parse(id).map_err(|_| Problem::not_found("no such invitation"))
}

/// Invites a person by email (or reissues their pending invitation).
#[utoipa::path(
    post,
    path = "/api/orgs/{org}/invitations",
    tag = "invite",
    params(("org" = String, Path)),
    request_body = InviteBody,
    responses(
        (status = 201, description = "invited; the email is on its way", body = InvitationView),
        (status = 400, description = "a field was refused", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "a member already", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn create(
    State(state): State<AppState>,
    admin: OrgAdmin,
    ApiJson(body): ApiJson<InviteBody>,
) -> Result<(StatusCode, Json<InvitationView>), Problem> {
    let command = InviteCommand {
        org: admin.org,
        email: body.email,
        name: body.name,
        customer_ids: body.customer_ids,
        role: body.role,
        invited_by: admin.acting,
    };
    let sent = app::invitations::invite(&state, command)
        .await
        .map_err(invite_problem)?;
    Ok((
        StatusCode::CREATED,
        Json(sent_view(sent, state.clock.now())),
    ))
}

/// The org's invitations, newest first, with their status.
#[utoipa::path(
    get,
    path = "/api/orgs/{org}/invitations",
    tag = "invite",
    params(("org" = String, Path)),
    responses((status = 200, description = "the invitations", body = Vec<InvitationView>)),
    security(("api_key" = []))
)]
async fn list(
    State(state): State<AppState>,
    admin: OrgAdmin,
) -> Result<Json<Vec<InvitationView>>, Problem> {
    let now = state.clock.now();
    let list = state.invitations.list_invitations(&admin.org).await?;
    Ok(Json(list.into_iter().map(|i| view(i, now)).collect()))
}

/// Sends a new link; the old one stops working.
#[utoipa::path(
    post,
    path = "/api/orgs/{org}/invitations/{id}/resend",
    tag = "invite",
    params(("org" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, description = "sent again", body = InvitationView),
        (status = 404, description = "no such invitation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "accepted, revoked or expired", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn resend(
    State(state): State<AppState>,
    admin: OrgAdmin,
    Path((_org, id)): Path<(String, String)>,
) -> Result<Json<InvitationView>, Problem> {
    let id = invitation_id(&id)?;
    let sent = app::invitations::resend(&state, &admin.org, &id, admin.acting)
        .await
        .map_err(invite_problem)?;
    Ok(Json(sent_view(sent, state.clock.now())))
}

/// Withdraws a pending invitation.
#[utoipa::path(
    delete,
    path = "/api/orgs/{org}/invitations/{id}",
    tag = "invite",
    params(("org" = String, Path), ("id" = String, Path)),
    responses(
        (status = 204, description = "revoked"),
        (status = 404, description = "no such invitation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not pending", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn revoke(
    State(state): State<AppState>,
    admin: OrgAdmin,
    Path((_org, id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let id = invitation_id(&id)?;
    app::invitations::revoke(&state, &admin.org, &id)
        .await
        .map_err(invite_problem)?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(resend))
        .routes(routes!(revoke))
}

/// The `invite` function's router.
pub fn router(state: AppState) -> Router {
    let (api, _) = routes().split_for_parts();
    crate::layers::common(crate::base_routes().merge(api)).with_state(state)
}
