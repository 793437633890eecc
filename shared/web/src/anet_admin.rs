//! The org's credentials for the Authorize.Net-compatible proxy, in the admin API: issued
//! (the Transaction Key shown once), listed (never a key), revoked.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::OrgAdmin;
use crate::{AppState, Problem};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    /// What it is for ("ConnectWise portal"); at most 100 characters.
    pub label: Option<String>,
}

/// A proxy credential as far as it may be shown: the key only in the answer that made it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProxyCredentialView {
    /// Authorize.Net's "API Login ID" field.
    pub api_login_id: String,
    /// Authorize.Net's "Transaction Key" field: shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_key: Option<String>,
    pub label: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Where an Authorize.Net API client posts (JSON or XML).
    pub api_url: String,
    /// Where a legacy AIM client posts (`transact.dll`).
    pub aim_url: String,
}

fn view(
    state: &AppState,
    org: &domain::OrgSlug,
    login: String,
    label: String,
    created_at: OffsetDateTime,
) -> ProxyCredentialView {
    let base = format!("{}/anet/{org}", state.public_url);
    ProxyCredentialView {
        api_login_id: login,
        transaction_key: None,
        label,
        created_at,
        api_url: format!("{base}/xml/v1/request.api"),
        aim_url: format!("{base}/gateway/transact.dll"),
    }
}

/// Issues a credential for the org's Authorize.Net-compatible proxy (ConnectWise's portal takes
/// it as an Authorize.Net API Login ID and Transaction Key). The key is shown this once.
#[utoipa::path(
    post,
    path = "/api/orgs/{org}/anet-credentials",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    request_body(content = IssueBody, description = "optional"),
    responses(
        (status = 201, description = "issued; `transaction_key` is shown this once", body = ProxyCredentialView),
        (status = 400, description = "a field was refused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn issue(
    State(state): State<AppState>,
    admin: OrgAdmin,
    body: Bytes,
) -> Result<(StatusCode, Json<ProxyCredentialView>), Problem> {
    let body: IssueBody = crate::problem::optional_json(&body, "{label?}")?;
    let label = body.label.unwrap_or_default().trim().to_owned();
    if label.chars().count() > 100 || label.chars().any(char::is_control) {
        return Err(Problem::invalid("label: at most 100 characters, one line"));
    }
    let issued = app::anet_proxy::issue_credential(&state, &admin.org, &label).await?;
    let mut shown = view(
        &state,
        &admin.org,
        issued.login,
        issued.label,
        issued.created_at,
    );
    shown.transaction_key = Some(issued.transaction_key.expose().clone());
    Ok((StatusCode::CREATED, Json(shown)))
}

/// The org's proxy credentials (never their keys).
#[utoipa::path(
    get,
    path = "/api/orgs/{org}/anet-credentials",
    tag = "admin",
    params(("org" = String, Path, description = "the org's slug")),
    responses((status = 200, description = "the credentials", body = Vec<ProxyCredentialView>)),
    security(("api_key" = []))
)]
async fn list(
    State(state): State<AppState>,
    admin: OrgAdmin,
) -> Result<Json<Vec<ProxyCredentialView>>, Problem> {
    let found = app::anet_proxy::credentials(&state, &admin.org).await?;
    Ok(Json(
        found
            .into_iter()
            .map(|c| view(&state, &admin.org, c.login, c.label, c.created_at))
            .collect(),
    ))
}

/// Revokes a credential: a caller using it is refused (E00007) from the next request.
#[utoipa::path(
    delete,
    path = "/api/orgs/{org}/anet-credentials/{login}",
    tag = "admin",
    params(
        ("org" = String, Path, description = "the org's slug"),
        ("login" = String, Path, description = "its API Login ID"),
    ),
    responses(
        (status = 204, description = "revoked"),
        (status = 404, description = "no such credential", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn revoke(
    State(state): State<AppState>,
    admin: OrgAdmin,
    Path((_org, login)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    if app::anet_proxy::revoke(&state, &admin.org, &login).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found("no such credential"))
    }
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue, list))
        .routes(routes!(revoke))
}
