//! Who is calling: for now an org API key (`Authorization: Bearer pbk_...`); sessions come with
//! the login work. The tenant comes from the credential and must match the URL's org.

use axum::{
    extract::{FromRequestParts, RawPathParams},
    http::{header, request::Parts},
};
use domain::OrgSlug;

use crate::{AppState, Problem};

/// An authenticated caller acting for the org named in the URL: the org's API key, or a
/// signed-in admin of that org.
pub struct OrgAdmin {
    pub org: OrgSlug,
    /// Who acted, for the org's emails: the admin's name; None for the org's API key (the
    /// emails then name the org).
    pub acting: Option<String>,
}

impl FromRequestParts<AppState> for OrgAdmin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Problem::not_found("no such org"))?;
        let org = params
            .iter()
            .find(|(name, _)| *name == "org")
            .and_then(|(_, value)| OrgSlug::parse(value).ok())
            .ok_or_else(|| Problem::not_found("no such org"))?;
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(presented) = bearer else {
            return admin_by_session(parts, state, org).await;
        };
        let key = app::orgs::authenticate_api_key(state.api_keys.as_ref(), presented.trim())
            .await?
            .ok_or_else(Problem::unauthorized)?;
        // Another org's key learns nothing about this org, not even that it exists.
        if key.org != org {
            return Err(Problem::not_found("no such org"));
        }
        Ok(OrgAdmin { org, acting: None })
    }
}

/// A signed-in admin of `org`; anyone else learns nothing about the org (404).
async fn admin_by_session(
    parts: &mut Parts,
    state: &AppState,
    org: OrgSlug,
) -> Result<OrgAdmin, Problem> {
    let signed_in = crate::session::SignedIn::from_request_parts(parts, state).await?;
    let membership = state.members.membership(&org, &signed_in.user.id).await?;
    match membership {
        Some(m) if m.role == domain::Role::Admin => {
            // The org's requirement of two-factor sign-in holds for its admins' sessions too
            // (its API keys are no person's sign-in): the org is read only for an admin who
            // has not turned it on.
            if !signed_in.user.two_factor {
                let org_item = state.orgs.get_org(&org).await?;
                if org_item.is_some_and(|o| app::two_factor::held_back(&o, &signed_in.user)) {
                    return Err(crate::session::two_factor_required());
                }
            }
            Ok(OrgAdmin {
                org,
                acting: Some(signed_in.user.name),
            })
        }
        _ => Err(Problem::not_found("no such org")),
    }
}
